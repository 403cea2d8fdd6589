//! A journey's report from what the store holds about it: how many
//! persons entered and are still in it, where they wait, and what became
//! of its side effects (by status, suppressions by reason, per step).
//! Pure: the server reads the rows and passes them in; statuses are named
//! as the outbox and the API name them (`pending`, `done`, `suppressed`,
//! `dead`), and the triggers skipped as history (`skipped_history`).

use crate::history::HistorySkip;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Per step: persons `waiting` there now, and its effects by status.
pub type StepCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// One enrollment as the report sees it.
pub struct EnrollmentFacts<'a> {
    pub done: bool,
    /// The stored [`crate::machine::Enrollment`] (JSON); its `step` is
    /// where an active person is.
    pub state: &'a Value,
}

/// The report's counts (serialized as the API's report fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct JourneyReport {
    /// Enrollments ever (every version).
    pub enrolled: usize,
    /// Enrollments not done.
    pub active: usize,
    /// Side effects by status.
    pub outbox: BTreeMap<String, u64>,
    /// Effects done (sends delivered, tags applied …).
    pub sent: u64,
    /// Suppressed effects by reason (the guardrail's code).
    pub suppressed: BTreeMap<String, u64>,
    /// Dead-lettered effects.
    pub dead: u64,
    pub steps: StepCounts,
    /// Triggers that enrolled nobody because the event was history.
    pub skipped_history: SkippedHistory,
}

/// A journey's triggers skipped as history, by reason (see [`crate::history`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SkippedHistory {
    /// Events older than the workspace's `trigger_max_age_secs`.
    pub stale: u64,
    /// Events of bulk imports run without `--trigger`.
    pub backfill: u64,
}

/// The step an effect key names: its last segment
/// (see [`crate::machine::step_key`]).
pub fn step_of_key(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Builds the report from the journey's enrollments, its outbox items
/// (`(key, status)`, for the per-step counts) and its outbox totals
/// (`(status, detail, count)`) and its triggers skipped as history
/// (`(reason, count)`).
pub fn journey_report<'a>(
    enrollments: impl IntoIterator<Item = EnrollmentFacts<'a>>,
    effects: impl IntoIterator<Item = (&'a str, &'a str)>,
    totals: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    skipped_history: impl IntoIterator<Item = (&'a str, u64)>,
) -> JourneyReport {
    let mut r = JourneyReport::default();
    for (reason, n) in skipped_history {
        if reason == HistorySkip::Stale.as_str() {
            r.skipped_history.stale += n;
        } else if reason == HistorySkip::Backfill.as_str() {
            r.skipped_history.backfill += n;
        }
    }
    for e in enrollments {
        r.enrolled += 1;
        if e.done {
            continue;
        }
        r.active += 1;
        if let Some(step) = e.state.get("step").and_then(Value::as_str) {
            *r.steps
                .entry(step.to_string())
                .or_default()
                .entry("waiting".into())
                .or_default() += 1;
        }
    }
    for (key, status) in effects {
        *r.steps
            .entry(step_of_key(key).to_string())
            .or_default()
            .entry(status.into())
            .or_default() += 1;
    }
    for (status, detail, n) in totals {
        *r.outbox.entry(status.into()).or_default() += n;
        if status == "suppressed" {
            *r.suppressed.entry(detail.into()).or_default() += n;
        }
    }
    r.sent = r.outbox.get("done").copied().unwrap_or(0);
    r.dead = r.outbox.get("dead").copied().unwrap_or(0);
    r
}
