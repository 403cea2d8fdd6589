//! Stored definitions that could not be loaded, and why.
//!
//! A start-up must never be blocked by one bad stored definition (a row
//! corrupted on disk, or written by an older build that accepted what this
//! one refuses, such as a segment nested deeper than the JSON reader
//! allows). Loaders skip such a definition, log it, and record it here by
//! its settings key; everything else starts. The API lists it as
//! `"status": "broken"` with the error, and saving a valid definition
//! under the same name takes it out of quarantine.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// One stored definition that was not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// Its settings key (`segment/vip`, `journey/welcome/3` …).
    pub key: String,
    /// Why it was not loaded, for people.
    pub error: String,
}

impl Broken {
    /// Records and logs a definition that a loader skips.
    pub fn skipped(key: &str, error: impl std::fmt::Display) -> Broken {
        let error = error.to_string();
        tracing::error!(%key, %error, "stored setting not loaded (quarantined); saving a valid one under the same key repairs it");
        Broken {
            key: key.to_string(),
            error,
        }
    }
}

/// Splits listed settings (`Store::list_settings_each`) into the readable
/// ones and the unreadable rest, each logged as skipped.
pub fn readable(
    rows: Vec<(String, siyu_store::Result<serde_json::Value>)>,
) -> (Vec<(String, serde_json::Value)>, Vec<Broken>) {
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for (key, value) in rows {
        match value {
            Ok(v) => ok.push((key, v)),
            Err(e) => broken.push(Broken::skipped(&key, e)),
        }
    }
    (ok, broken)
}

/// The quarantined definitions of one workspace, by settings key.
#[derive(Default)]
pub struct Quarantine {
    broken: RwLock<BTreeMap<String, String>>,
}

impl Quarantine {
    /// Replaces every entry under each of `prefixes` with `found` (what a
    /// loader found when it loaded those prefixes afresh).
    pub fn reload(&self, prefixes: &[&str], found: Vec<Broken>) {
        let mut broken = self.broken.write().unwrap_or_else(|e| e.into_inner());
        broken.retain(|key, _| !prefixes.iter().any(|p| key.starts_with(p)));
        broken.extend(found.into_iter().map(|b| (b.key, b.error)));
    }

    /// Records (or updates) one quarantined definition.
    pub fn set(&self, broken: Broken) {
        self.broken
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(broken.key, broken.error);
    }

    /// A definition saved anew under `key` is no longer broken.
    pub fn repaired(&self, key: &str) {
        self.broken
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Why the definition under `key` is quarantined, if it is.
    pub fn error(&self, key: &str) -> Option<String> {
        self.broken
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The quarantined definitions under `prefix`: (key without the
    /// prefix, error), sorted by key.
    pub fn under(&self, prefix: &str) -> Vec<(String, String)> {
        self.broken
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k[prefix.len()..].to_string(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_replaces_only_its_prefixes_and_a_save_repairs() {
        let q = Quarantine::default();
        q.reload(
            &["segment/", "property/"],
            vec![
                Broken::skipped("segment/a", "bad"),
                Broken::skipped("property/p", "worse"),
            ],
        );
        q.reload(&["journey/"], vec![Broken::skipped("journey/j/1", "no")]);
        assert_eq!(q.under("segment/"), vec![("a".into(), "bad".into())]);
        q.reload(&["segment/", "property/"], vec![]);
        assert!(q.under("segment/").is_empty());
        assert_eq!(q.error("journey/j/1").as_deref(), Some("no"));
        q.repaired("journey/j/1");
        assert_eq!(q.error("journey/j/1"), None);
    }
}
