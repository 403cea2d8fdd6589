//! Which events another process appended may trigger automation.
//!
//! Why it exists: history never triggers a message. The writer follows
//! the log — events `siyu import` (or `siyu import-orders`) appended beside
//! a running server are applied by it too — and such bulk loads are
//! history by default: they trigger no journey, auto-reply or
//! segment-entry journey (the executor counts them as `backfill`). Only an
//! import run with `--trigger` records, in settings and BEFORE its first
//! append, the offsets from which its events may trigger
//! (`import/trigger/<from>`: `{from, to}`), and closes the range when it
//! ends. The rule is "followed events are backfill unless a range says
//! otherwise", not the reverse: a range written late, lost, or an import
//! killed before it closed its range can only make the server too quiet,
//! never message a past contact. The server's own appends (HTTP, inbound
//! webhooks, the executor's events) are never backfill; every event is
//! still subject to freshness (`trigger_max_age_secs`).

use serde::{Deserialize, Serialize};
use siyu_store::Store;

/// Settings prefix of triggering import ranges.
pub const TRIGGER_PREFIX: &str = "import/trigger/";

/// The log offsets a `siyu import --trigger` appended (or is appending).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggeringImport {
    /// First offset the import may have appended (the head + 1 when it began).
    pub from: u64,
    /// Last offset it appended; None while it runs.
    pub to: Option<u64>,
    /// When it began (epoch seconds).
    pub started_at: i64,
}

impl TriggeringImport {
    pub fn covers(&self, offset: u64) -> bool {
        offset >= self.from && self.to.is_none_or(|to| offset <= to)
    }
}

/// The triggering ranges in the store (an unreadable row is skipped and
/// logged: it then triggers nothing, the safe side).
pub fn triggering_ranges(store: &mut dyn Store) -> siyu_store::Result<Vec<TriggeringImport>> {
    Ok(store
        .list_settings(TRIGGER_PREFIX)?
        .into_iter()
        .filter_map(|(key, v)| match serde_json::from_value(v) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(%key, error = %e, "unreadable triggering import range; its events trigger nothing");
                None
            }
        })
        .collect())
}

/// Called by an import before its first append. Closes ranges left open
/// by an import that did not finish (at the current head), then, when
/// `trigger`, records a new open range and returns its key.
pub fn begin_import(
    store: &mut dyn Store,
    trigger: bool,
    now: i64,
) -> siyu_store::Result<Option<String>> {
    let head = store.last_offset()?;
    let mut closes = Vec::new();
    for (key, v) in store.list_settings(TRIGGER_PREFIX)? {
        if let Ok(mut r) = serde_json::from_value::<TriggeringImport>(v) {
            if r.to.is_none() {
                r.to = Some(head);
                closes.push((key, serde_json::to_value(&r).ok()));
            }
        }
    }
    if !closes.is_empty() {
        store.put_settings(&closes)?;
    }
    if !trigger {
        return Ok(None);
    }
    let r = TriggeringImport {
        from: head + 1,
        to: None,
        started_at: now,
    };
    let key = format!("{TRIGGER_PREFIX}{}", r.from);
    store.put_setting(&key, serde_json::to_value(&r).ok().as_ref())?;
    Ok(Some(key))
}

/// Called when the import ends (also after a failure): closes its range
/// at the current head.
pub fn end_import(store: &mut dyn Store, key: &str) -> siyu_store::Result<()> {
    let head = store.last_offset()?;
    let Some(v) = store.get_setting(key)? else {
        return Ok(());
    };
    if let Ok(mut r) = serde_json::from_value::<TriggeringImport>(v) {
        r.to = Some(head);
        store.put_setting(key, serde_json::to_value(&r).ok().as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_covers_its_offsets() {
        let open = TriggeringImport {
            from: 10,
            to: None,
            started_at: 0,
        };
        assert!(!open.covers(9) && open.covers(10) && open.covers(u64::MAX));
        let closed = TriggeringImport {
            to: Some(12),
            ..open
        };
        assert!(closed.covers(12) && !closed.covers(13));
    }
}
