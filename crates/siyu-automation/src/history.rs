//! Whether an event may trigger anything: history never triggers a message.
//!
//! Why it exists: a brand that migrates its history (an import of last
//! year's friends and comments, an API client replaying old events) must
//! not welcome, answer or enroll every past contact now. An event triggers
//! journeys, auto-replies and segment-entry journeys only when it is
//! fresh — at most `max_age` seconds older than the server clock — and
//! was not appended as a backfill (`siyu import` without `--trigger`).
//! Pure: the server passes its clock and the workspace's `max_age`.

use serde::Serialize;

/// Why an event (or a segment change it caused) triggered nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistorySkip {
    /// Older than the workspace's `trigger_max_age_secs` on the server clock.
    Stale,
    /// Appended by a bulk import that did not ask for triggers.
    Backfill,
}

impl HistorySkip {
    /// The name in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            HistorySkip::Stale => "stale",
            HistorySkip::Backfill => "backfill",
        }
    }
}

/// `None` when an event at `event_ts` may trigger at `now`; else why not.
/// A backfill never triggers; an event from the future (a client clock
/// ahead of ours) is fresh.
pub fn history_skip(backfill: bool, event_ts: i64, now: i64, max_age: i64) -> Option<HistorySkip> {
    if backfill {
        Some(HistorySkip::Backfill)
    } else if now.saturating_sub(event_ts) > max_age {
        Some(HistorySkip::Stale)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stale_and_backfill() {
        assert_eq!(history_skip(false, 1000, 1000, 3600), None);
        assert_eq!(
            history_skip(false, 1000, 4600, 3600),
            None,
            "exactly max_age old is fresh"
        );
        assert_eq!(
            history_skip(false, 1000, 4601, 3600),
            Some(HistorySkip::Stale)
        );
        assert_eq!(
            history_skip(false, 9000, 1000, 3600),
            None,
            "future is fresh"
        );
        assert_eq!(
            history_skip(true, 1000, 1000, 3600),
            Some(HistorySkip::Backfill)
        );
    }
}
