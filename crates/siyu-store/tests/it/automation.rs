//! Conformance of the automation tables (enrollments, outbox, consent,
//! tasks), run against both backends like the rest of the suite.

use crate::Backend;
use serde_json::json;
use siyu_domain::Identity;
use siyu_store::{
    AuditRecord, AutomationCommit, ConsentRow, EnrollmentRow, OutboxItem, OutboxQuery,
    OutboxStatus, OutboxUpdate, SendAttempt, TaskRow,
};

conformance!(
    enrollments_insert_update_and_dedupe_by_entry_key,
    outbox_is_idempotent_and_due_in_order,
    outbox_updates_counts_and_done_since,
    consent_ledger_and_tasks_round_trip,
    erase_removes_automation_rows,
    automation_survives_reopen,
    send_attempts_are_appended_in_order_and_erased,
);

pub fn send_attempts_are_appended_in_order_and_erased(b: &dyn Backend) {
    let mut s = b.open();
    let a = |verdict: &str, at| SendAttempt {
        key: "k".into(),
        at,
        verdict: verdict.into(),
        detail: format!("d{at}"),
    };
    s.automation_commit(&AutomationCommit {
        outbox: vec![item("k", "wecom:a", 1)],
        attempts: vec![a("delayed", 1)],
        ..Default::default()
    })
    .unwrap();
    s.automation_commit(&AutomationCommit {
        attempts: vec![a("sent", 2), a("delivered", 3)],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        s.send_attempts("k").unwrap(),
        vec![a("delayed", 1), a("sent", 2), a("delivered", 3)]
    );
    assert!(s.send_attempts("other").unwrap().is_empty());
    let audit = AuditRecord {
        id: 0,
        at: 9,
        action: "erase_person".into(),
        subject: "wecom:a".into(),
        detail: json!({}),
    };
    s.erase(
        &[Identity::parse("wecom:a").unwrap()],
        "erased:test",
        &audit,
    )
    .unwrap();
    assert!(s.send_attempts("k").unwrap().is_empty());
}

fn enrollment(id: u64, identity: &str, entry: &str, wake: Option<i64>) -> EnrollmentRow {
    EnrollmentRow {
        id,
        journey: "welcome".into(),
        version: 1,
        identity: identity.into(),
        entry_key: entry.into(),
        entered_at: 100,
        wake_at: wake,
        done: wake.is_none(),
        state: json!({"step": "a", "n": id}),
    }
}

fn item(key: &str, identity: &str, not_before: i64) -> OutboxItem {
    OutboxItem {
        key: key.into(),
        created_at: 10,
        not_before,
        status: OutboxStatus::Pending,
        attempts: 0,
        detail: String::new(),
        journey: Some("welcome".into()),
        identity: identity.into(),
        action: json!({"action": "send", "template": "hi", "文本": "你好"}),
        updated_at: 10,
    }
}

pub fn enrollments_insert_update_and_dedupe_by_entry_key(b: &dyn Backend) {
    let mut s = b.open();
    assert_eq!(s.max_enrollment_id().unwrap(), 0);
    let c = AutomationCommit {
        enrollments: vec![
            enrollment(1, "wecom:a", "welcome/wecom:a/0", Some(200)),
            enrollment(2, "wecom:b", "welcome/wecom:b/0", Some(300)),
        ],
        ..Default::default()
    };
    assert!(s.automation_commit(&c).unwrap().skipped.is_empty());
    // Same entry key under a new id: skipped, reported.
    let dup = AutomationCommit {
        enrollments: vec![enrollment(3, "wecom:a", "welcome/wecom:a/0", Some(1))],
        ..Default::default()
    };
    assert_eq!(s.automation_commit(&dup).unwrap().skipped, vec![3]);
    // Update by id: state and wake change, done flips.
    let mut e1 = enrollment(1, "wecom:a", "welcome/wecom:a/0", None);
    e1.state = json!({"step": "b"});
    let upd = AutomationCommit {
        enrollments: vec![e1.clone()],
        ..Default::default()
    };
    assert!(s.automation_commit(&upd).unwrap().skipped.is_empty());
    let active = s.active_enrollments().unwrap();
    assert_eq!(active.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(s.max_enrollment_id().unwrap(), 2);
    let of_a = s.enrollments("welcome", Some("wecom:a"), 10).unwrap();
    assert_eq!(of_a, vec![e1]);
    assert_eq!(s.enrollments("welcome", None, 10).unwrap().len(), 2);
    assert_eq!(s.enrollments("welcome", None, 1).unwrap()[0].id, 2);
    assert!(s.enrollments("other", None, 10).unwrap().is_empty());
    let index = s.entry_index().unwrap();
    assert_eq!(
        index,
        vec![
            ("welcome".into(), "wecom:a".into(), 100, true),
            ("welcome".into(), "wecom:b".into(), 100, false)
        ]
    );
}

pub fn outbox_is_idempotent_and_due_in_order(b: &dyn Backend) {
    let mut s = b.open();
    let c = AutomationCommit {
        outbox: vec![
            item("k2", "wecom:a", 50),
            item("k1", "wecom:a", 20),
            item("k3", "wecom:b", 90),
        ],
        ..Default::default()
    };
    s.automation_commit(&c).unwrap();
    // Replaying the same items (a crash before delivery) adds nothing and
    // does not reset their status.
    s.automation_commit(&AutomationCommit {
        updates: vec![OutboxUpdate {
            key: "k1".into(),
            status: OutboxStatus::Done,
            attempts: 1,
            detail: String::new(),
            not_before: 20,
            updated_at: 60,
        }],
        ..Default::default()
    })
    .unwrap();
    s.automation_commit(&c).unwrap();
    let due: Vec<String> = s
        .outbox_due(60, 10)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(due, vec!["k2"]);
    let due: Vec<String> = s
        .outbox_due(100, 10)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(due, vec!["k2", "k3"]);
    assert_eq!(s.outbox_due(100, 1).unwrap().len(), 1);
    assert_eq!(s.outbox_next_due().unwrap(), Some(50));
    let k1 = s.outbox_get("k1").unwrap().unwrap();
    assert_eq!(k1.status, OutboxStatus::Done);
    assert_eq!(k1.action, item("k1", "wecom:a", 20).action);
    assert!(s.outbox_get("nope").unwrap().is_none());
}

pub fn outbox_updates_counts_and_done_since(b: &dyn Backend) {
    let mut s = b.open();
    let mut other = item("m1", "wecom:c", 5);
    other.journey = None;
    s.automation_commit(&AutomationCommit {
        outbox: vec![
            item("a", "wecom:a", 1),
            item("b", "wecom:b", 1),
            item("c", "wecom:c", 1),
            other,
        ],
        ..Default::default()
    })
    .unwrap();
    let up = |key: &str, status, detail: &str, at| OutboxUpdate {
        key: key.into(),
        status,
        attempts: 1,
        detail: detail.into(),
        not_before: 1,
        updated_at: at,
    };
    s.automation_commit(&AutomationCommit {
        updates: vec![
            up("a", OutboxStatus::Done, "", 100),
            up("b", OutboxStatus::Suppressed, "marketing_cap", 110),
            up("c", OutboxStatus::Dead, "permanent: 400 bad request", 120),
            up("m1", OutboxStatus::Done, "", 130),
        ],
        ..Default::default()
    })
    .unwrap();
    let counts = s.outbox_counts(Some("welcome")).unwrap();
    assert_eq!(
        counts,
        vec![
            (OutboxStatus::Dead, "permanent: 400 bad request".into(), 1),
            (OutboxStatus::Done, String::new(), 1),
            (OutboxStatus::Suppressed, "marketing_cap".into(), 1),
        ]
    );
    assert_eq!(
        s.outbox_counts(None)
            .unwrap()
            .iter()
            .map(|c| c.2)
            .sum::<u64>(),
        4
    );
    let done: Vec<String> = s
        .outbox_done_since(105)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(done, vec!["m1"]);
    let dead = s
        .outbox_list(&OutboxQuery {
            status: Some(OutboxStatus::Dead),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].detail, "permanent: 400 bad request");
    let all = s
        .outbox_list(&OutboxQuery {
            journey: Some("welcome".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["c", "b", "a"]
    );
    let of_c = s
        .outbox_list(&OutboxQuery {
            identity: Some("wecom:c".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(of_c.len(), 2);
}

pub fn consent_ledger_and_tasks_round_trip(b: &dyn Backend) {
    let mut s = b.open();
    let entries = vec![
        ConsentRow {
            ts: 1,
            identity: "wecom:a".into(),
            channel: None,
            granted: false,
            source: "reply_keyword".into(),
        },
        ConsentRow {
            ts: 2,
            identity: "wecom:b".into(),
            channel: Some("sms".into()),
            granted: false,
            source: "unsubscribe_link".into(),
        },
        ConsentRow {
            ts: 3,
            identity: "wecom:a".into(),
            channel: None,
            granted: true,
            source: "api".into(),
        },
    ];
    let task = TaskRow {
        key: "j/welcome/v1/e1/call".into(),
        created_at: 5,
        identity: "wecom:a".into(),
        journey: Some("welcome".into()),
        operator: Some("小王".into()),
        title: "回访".into(),
        note: "问问用得怎么样".into(),
        due: Some(86405),
        done_at: None,
    };
    s.automation_commit(&AutomationCommit {
        consent: entries.clone(),
        tasks: vec![task.clone(), task.clone()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.consent_ledger(None).unwrap(), entries);
    assert_eq!(
        s.consent_ledger(Some("wecom:a")).unwrap(),
        vec![entries[0].clone(), entries[2].clone()]
    );
    assert_eq!(s.tasks(true, 10).unwrap(), vec![task.clone()]);
    assert!(s.complete_task(&task.key, 99).unwrap());
    assert!(!s.complete_task(&task.key, 100).unwrap());
    assert!(s.tasks(true, 10).unwrap().is_empty());
    assert_eq!(s.tasks(false, 10).unwrap()[0].done_at, Some(99));
}

pub fn erase_removes_automation_rows(b: &dyn Backend) {
    let mut s = b.open();
    s.automation_commit(&AutomationCommit {
        enrollments: vec![
            enrollment(1, "wecom:a", "e/a", Some(5)),
            enrollment(2, "wecom:b", "e/b", Some(5)),
        ],
        outbox: vec![item("a", "wecom:a", 1), item("b", "wecom:b", 1)],
        consent: vec![ConsentRow {
            ts: 1,
            identity: "wecom:a".into(),
            channel: None,
            granted: false,
            source: "api".into(),
        }],
        tasks: vec![TaskRow {
            key: "t".into(),
            created_at: 1,
            identity: "wecom:a".into(),
            journey: None,
            operator: None,
            title: "x".into(),
            note: String::new(),
            due: None,
            done_at: None,
        }],
        ..Default::default()
    })
    .unwrap();
    let audit = AuditRecord {
        id: 0,
        at: 9,
        action: "erase_person".into(),
        subject: "wecom:a".into(),
        detail: json!({}),
    };
    s.erase(
        &[Identity::parse("wecom:a").unwrap()],
        "erased:test",
        &audit,
    )
    .unwrap();
    assert_eq!(
        s.active_enrollments()
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert!(s.outbox_get("a").unwrap().is_none());
    assert!(s.outbox_get("b").unwrap().is_some());
    assert!(s.consent_ledger(None).unwrap().is_empty());
    assert!(s.tasks(false, 10).unwrap().is_empty());
}

pub fn automation_survives_reopen(b: &dyn Backend) {
    {
        let mut s = b.open();
        s.automation_commit(&AutomationCommit {
            enrollments: vec![enrollment(7, "wecom:a", "e/a", Some(5))],
            outbox: vec![item("a", "wecom:a", 1)],
            ..Default::default()
        })
        .unwrap();
    }
    let mut s = b.open();
    assert_eq!(s.max_enrollment_id().unwrap(), 7);
    assert_eq!(s.outbox_due(1, 10).unwrap().len(), 1);
}
