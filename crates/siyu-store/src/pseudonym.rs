//! What erasure leaves behind in the side tables: a settings row or an
//! audit row may name the erased person (a live-code seat, a reward ledger
//! row keyed `reward/<campaign>/<inviter>/<tier>`, an override, an earlier
//! audit entry's subject). Those rows are not deleted (a granted reward
//! still used its stock, an audit entry still happened): every JSON string
//! (value or object key) and every `/`-separated key segment that equals
//! one of the person's identities is replaced by the erasure's pseudonym.
//! Pure functions, shared by both backends, applied inside the erasure's
//! transaction. Renaming identities (`Store::rename_identities`, the
//! keyed phone hashes' migration) rewrites these rows the same way.

use std::collections::HashMap;

/// Every (table, column) holding an identity or a canonical id, besides
/// settings and audit (JSON): what `Store::rename_identities` rewrites.
pub(crate) const IDENTITY_COLUMNS: &[(&str, &str)] = &[
    ("events", "identity"),
    ("events", "ref"),
    ("merges", "identity"),
    ("merges", "linked"),
    ("merges", "from_a"),
    ("merges", "from_b"),
    ("merges", "into_id"),
    ("segment_history", "canonical_id"),
    ("enrollments", "identity"),
    ("outbox", "identity"),
    ("consent", "identity"),
    ("tasks", "identity"),
    ("conversation_archive", "identity"),
];

/// Above this many names, every row is parsed rather than pre-filtered
/// by substring search (a migration renaming thousands of identities).
const SUBSTRING_FILTER_MAX: usize = 16;

/// Identities and the name each gets instead.
pub(crate) struct Pseudonymize<'a> {
    renames: HashMap<&'a str, &'a str>,
}

impl<'a> Pseudonymize<'a> {
    /// Every identity of an erased person gets the same pseudonym.
    pub(crate) fn new(identities: impl IntoIterator<Item = &'a str>, pseudonym: &'a str) -> Self {
        Pseudonymize {
            renames: identities.into_iter().map(|i| (i, pseudonym)).collect(),
        }
    }

    /// Each `(old, new)` pair renames one identity.
    pub(crate) fn pairs(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Pseudonymize {
            renames: pairs.into_iter().collect(),
        }
    }

    fn get(&self, s: &str) -> Option<&'a str> {
        self.renames.get(s).copied()
    }

    /// Cheap pre-filter: whether `text` may name an identity at all.
    fn mentions(&self, text: &str) -> bool {
        self.renames.len() > SUBSTRING_FILTER_MAX || self.renames.keys().any(|id| text.contains(id))
    }

    /// A settings key with every segment naming an identity replaced, or
    /// None when it names none.
    pub(crate) fn key(&self, key: &str) -> Option<String> {
        if !self.mentions(key) {
            return None;
        }
        let mut changed = false;
        let out: Vec<&str> = key
            .split('/')
            .map(|segment| match self.get(segment) {
                Some(new) => {
                    changed = true;
                    new
                }
                None => segment,
            })
            .collect();
        changed.then(|| out.join("/"))
    }

    /// A plain text column (an audit subject): the pseudonym if it is an
    /// identity.
    pub(crate) fn text(&self, text: &str) -> Option<String> {
        self.get(text).map(str::to_string)
    }

    /// A JSON document with every string and object key naming an
    /// identity replaced, or None when it names none (or is not JSON).
    pub(crate) fn json(&self, text: &str) -> Option<String> {
        if !self.mentions(text) {
            return None;
        }
        let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
        self.walk(&mut value).then(|| value.to_string())
    }

    fn walk(&self, v: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::String(s) => match self.get(s) {
                Some(new) => {
                    *s = new.to_string();
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.walk(item) | changed),
            Value::Object(map) => {
                let mut changed = false;
                let renamed: Vec<(String, &str)> = map
                    .keys()
                    .filter_map(|k| self.get(k).map(|new| (k.clone(), new)))
                    .collect();
                for (old, new) in renamed {
                    if let Some(inner) = map.remove(&old) {
                        map.insert(new.to_string(), inner);
                        changed = true;
                    }
                }
                for item in map.values_mut() {
                    changed |= self.walk(item);
                }
                changed
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_object_keys_are_replaced_whole_only() {
        let p = Pseudonymize::new(["wecom:a", "douyin:x"], "erased:1f");
        assert_eq!(
            p.key("reward/c1/wecom:a/0").as_deref(),
            Some("reward/c1/erased:1f/0")
        );
        assert_eq!(p.key("reward/c1/wecom:ab/0"), None);
        assert_eq!(
            p.json(r#"{"wecom:a":5,"wecom:ab":6,"who":["douyin:x","douyin:xy"]}"#)
                .as_deref(),
            Some(r#"{"erased:1f":5,"wecom:ab":6,"who":["erased:1f","douyin:xy"]}"#)
        );
        assert_eq!(p.json(r#"{"note":"wecom:a was here"}"#), None);
        assert_eq!(p.text("douyin:x").as_deref(), Some("erased:1f"));
        assert_eq!(p.text("douyin:xy"), None);
    }
}
