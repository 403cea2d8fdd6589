//! Which events another process appended may trigger automation.
//!
//! Why it exists: history never triggers a message. The writer follows
//! the log — events `siyu import` (or `siyu import-orders`) appended beside
//! a running server are applied by it too — and such bulk loads are
//! history by default: they trigger no journey, auto-reply or
//! segment-entry journey (the executor counts them as `backfill`). But
//! the log is also followed from other `siyu serve` nodes on the same
//! database, whose events are live, and only the leading node acts on
//! triggers (`crate::leader`), wherever the event came in.
//!
//! So every import records, in settings and BEFORE its first append, the
//! offsets it appends from: `import/backfill/<from>`, or with `--trigger`
//! `import/trigger/<from>` (`{from, to}`), and closes the range when it
//! ends; the next import closes a range left open (a killed import) at
//! the head. A followed event is backfill when a backfill range covers
//! it and no trigger range does. A range is written before the events it
//! covers and read before them, so an import's events are never seen
//! without it; an open range may cover other nodes' events appended
//! meanwhile, which then trigger nothing: the quiet side. The server's
//! own appends (HTTP, inbound webhooks, the executor's events) are never
//! backfill; every event is still subject to freshness
//! (`trigger_max_age_secs`), which also keeps an older `siyu import` that
//! records no range from messaging anyone about old events.

use serde::{Deserialize, Serialize};
use siyu_store::Store;

/// Settings prefix of triggering import ranges.
pub const TRIGGER_PREFIX: &str = "import/trigger/";

/// Settings prefix of the ranges of imports that must trigger nothing.
pub const BACKFILL_PREFIX: &str = "import/backfill/";

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

/// Which followed events are backfill: the import ranges in the store.
pub struct FollowedRanges {
    triggering: Vec<TriggeringImport>,
    backfill: Vec<TriggeringImport>,
}

impl FollowedRanges {
    pub fn read(store: &mut dyn Store) -> siyu_store::Result<Self> {
        Ok(FollowedRanges {
            triggering: ranges(store, TRIGGER_PREFIX)?,
            backfill: ranges(store, BACKFILL_PREFIX)?,
        })
    }

    /// Whether the followed event at `offset` must trigger nothing.
    pub fn is_backfill(&self, offset: u64) -> bool {
        self.backfill.iter().any(|r| r.covers(offset))
            && !self.triggering.iter().any(|r| r.covers(offset))
    }
}

/// The ranges under `prefix`. An unreadable row is skipped and logged; a
/// backfill row that cannot be read covers everything from offset 1 (the
/// quiet side) until the next import rewrites it.
fn ranges(store: &mut dyn Store, prefix: &str) -> siyu_store::Result<Vec<TriggeringImport>> {
    let quiet = prefix == BACKFILL_PREFIX;
    Ok(store
        .list_settings(prefix)?
        .into_iter()
        .filter_map(|(key, v)| match serde_json::from_value(v) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(%key, error = %e, "unreadable import range; its events trigger nothing");
                quiet.then_some(TriggeringImport {
                    from: 1,
                    to: None,
                    started_at: 0,
                })
            }
        })
        .collect())
}

/// Called by an import before its first append. Closes ranges left open
/// by an import that did not finish (at the current head), then records
/// its own open range — triggering when `trigger` — and returns its key.
pub fn begin_import(
    store: &mut dyn Store,
    trigger: bool,
    now: i64,
) -> siyu_store::Result<Option<String>> {
    let head = store.last_offset()?;
    let mut closes = Vec::new();
    let mut open = store.list_settings(TRIGGER_PREFIX)?;
    open.extend(store.list_settings(BACKFILL_PREFIX)?);
    for (key, v) in open {
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
    let r = TriggeringImport {
        from: head + 1,
        to: None,
        started_at: now,
    };
    let prefix = if trigger {
        TRIGGER_PREFIX
    } else {
        BACKFILL_PREFIX
    };
    let key = format!("{prefix}{}", r.from);
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
