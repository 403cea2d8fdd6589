//! A journey's report from enrollments and outbox rows, without a store.

use serde_json::json;
use siyu_automation::machine::{step_key, Enrollment, State};
use siyu_automation::report::{journey_report, step_of_key, EnrollmentFacts};

#[test]
fn the_step_of_a_key_is_the_step_it_was_made_for() {
    let e = Enrollment {
        id: 7,
        journey: "welcome".into(),
        version: 2,
        identity: "wecom:a".into(),
        entered_at: 0,
        step: "hello".into(),
        state: State::Ready,
    };
    assert_eq!(step_of_key(&step_key(&e, "send_coupon")), "send_coupon");
    assert_eq!(step_of_key("plain"), "plain");
}

#[test]
fn counts_enrollments_waiting_steps_and_effects() {
    let states = [
        (false, json!({"step": "wait"})),
        (false, json!({"step": "wait"})),
        (false, json!({"step": "send"})),
        (true, json!({"step": "send"})),
        // No step recorded: active, waiting nowhere.
        (false, json!({})),
    ];
    let effects = [
        ("j/w/v1/e1/send", "done"),
        ("j/w/v1/e2/send", "suppressed"),
        ("j/w/v1/e3/tag", "dead"),
    ];
    let totals = [
        ("done", "", 4),
        ("suppressed", "quiet_hours", 1),
        ("suppressed", "no_consent", 2),
        ("suppressed", "quiet_hours", 1),
        ("dead", "timeout", 3),
        ("pending", "", 5),
    ];
    let r = journey_report(
        states
            .iter()
            .map(|(done, state)| EnrollmentFacts { done: *done, state }),
        effects,
        totals,
        [("stale", 7), ("backfill", 2)],
    );
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({
            "enrolled": 5,
            "active": 4,
            "outbox": {"done": 4, "suppressed": 4, "dead": 3, "pending": 5},
            "sent": 4,
            "suppressed": {"quiet_hours": 2, "no_consent": 2},
            "dead": 3,
            "steps": {
                "wait": {"waiting": 2},
                "send": {"waiting": 1, "done": 1, "suppressed": 1},
                "tag": {"dead": 1},
            },
            "skipped_history": {"stale": 7, "backfill": 2},
        })
    );
}

#[test]
fn an_empty_journey_reports_zeros() {
    let r = journey_report([], [], [], []);
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"enrolled": 0, "active": 0, "outbox": {}, "sent": 0, "suppressed": {}, "dead": 0, "steps": {}, "skipped_history": {"stale": 0, "backfill": 0}})
    );
}
