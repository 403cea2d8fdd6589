//! The behaviours every backend must have (see `Store`'s invariants).

use serde_json::json;
use siyu_domain::{parse_json_event, Event, Identity};
use siyu_store::{Appended, AuditRecord, MergeRecord, Store};

conformance!(
    append_and_scan_round_trip_every_field,
    offsets_are_dense_and_survive_reopen,
    replayed_batches_add_nothing,
    timeline_is_newest_first_and_pages,
    erase_removes_identity_and_ref_events_with_audit,
    merges_round_trip,
    settings_crud_and_prefix,
);

fn ev(v: serde_json::Value) -> Event {
    parse_json_event(&v).unwrap()
}

fn sample() -> Vec<Event> {
    vec![
        ev(
            json!({"id":"a1","seq":1,"ts":"2026-09-01T08:00:00Z","identity":"douyin:x","type":"comment","channel":"douyin","text":"多少钱"}),
        ),
        ev(
            json!({"ts":1790000000,"identity":"wecom:wm1","type":"identify","ref":"douyin:x","traits":{"name":"王芳","city":"上海","tags":["vip"],"level":3}}),
        ),
        ev(
            json!({"id":"a3","ts":1790000100,"identity":"wecom:wm1","type":"purchase","amount":12900}),
        ),
        ev(json!({"ts":1790000200,"identity":"wecom:wm1","type":"join_group","group":"g-1"})),
        ev(
            json!({"ts":1790000300,"identity":"mp:o_1","type":"custom","name":"coupon_claimed","properties":{"coupon":"c9","value":500}}),
        ),
        ev(
            json!({"ts":1790000400,"identity":"douyin:y","type":"referral_signup","ref":"wecom:wm1"}),
        ),
    ]
}

pub fn append_and_scan_round_trip_every_field(s: &mut dyn Store, _: &dyn Fn() -> Box<dyn Store>) {
    let events = sample();
    let out = s.append(&events).unwrap();
    assert_eq!(out, (1..=6).map(Appended::New).collect::<Vec<_>>());
    let back = s.scan(0, 100).unwrap();
    assert_eq!(back.len(), 6);
    for (i, stored) in back.iter().enumerate() {
        assert_eq!(stored.offset, i as u64 + 1);
        assert_eq!(stored.event, events[i], "event {i}");
    }
    assert_eq!(s.scan(4, 1).unwrap()[0].offset, 5);
    assert!(s.scan(6, 10).unwrap().is_empty());
}

pub fn offsets_are_dense_and_survive_reopen(
    s: &mut dyn Store,
    reopen: &dyn Fn() -> Box<dyn Store>,
) {
    s.append(&sample()[..3]).unwrap();
    assert_eq!(s.last_offset().unwrap(), 3);
    let mut again = reopen();
    assert_eq!(again.last_offset().unwrap(), 3);
    let out = again.append(&sample()[3..]).unwrap();
    assert_eq!(
        out,
        vec![Appended::New(4), Appended::New(5), Appended::New(6)]
    );
    assert_eq!(again.scan(0, 100).unwrap().len(), 6);
}

pub fn replayed_batches_add_nothing(s: &mut dyn Store, _: &dyn Fn() -> Box<dyn Store>) {
    let events = sample();
    s.append(&events).unwrap();
    let again = s.append(&events).unwrap();
    // Events with ids are recognized; those without are new (no id, no idempotency).
    assert_eq!(again[0], Appended::Duplicate(1));
    assert_eq!(again[2], Appended::Duplicate(3));
    assert_eq!(again[1], Appended::New(7));
    // A duplicate id inside one batch is stored once.
    let twice = vec![
        events[0].clone(),
        {
            let mut e = events[2].clone();
            e.id = Some("b1".into());
            e
        },
        {
            let mut e = events[3].clone();
            e.id = Some("b1".into());
            e
        },
    ];
    let out = s.append(&twice).unwrap();
    assert_eq!(out[0], Appended::Duplicate(1));
    assert!(matches!(out[1], Appended::New(_)));
    assert_eq!(
        out[2],
        Appended::Duplicate(match out[1] {
            Appended::New(o) => o,
            _ => 0,
        })
    );
}

pub fn timeline_is_newest_first_and_pages(s: &mut dyn Store, _: &dyn Fn() -> Box<dyn Store>) {
    s.append(&sample()).unwrap();
    let ids = [
        Identity::parse("wecom:wm1").unwrap(),
        Identity::parse("douyin:x").unwrap(),
    ];
    let all = s.events_of(&ids, None, 10).unwrap();
    assert_eq!(
        all.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    let page1 = s.events_of(&ids, None, 2).unwrap();
    let page2 = s.events_of(&ids, Some(page1[1].offset), 2).unwrap();
    assert_eq!(
        page1
            .iter()
            .chain(&page2)
            .map(|e| e.offset)
            .collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert!(s.events_of(&ids, Some(1), 2).unwrap().is_empty());
    assert!(s.events_of(&ids, Some(999), 2).is_err());
}

pub fn erase_removes_identity_and_ref_events_with_audit(
    s: &mut dyn Store,
    _: &dyn Fn() -> Box<dyn Store>,
) {
    s.append(&sample()).unwrap();
    let person = [
        Identity::parse("wecom:wm1").unwrap(),
        Identity::parse("douyin:x").unwrap(),
    ];
    let audit = AuditRecord {
        id: 0,
        at: 1_790_000_999,
        action: "erase_person".into(),
        subject: "douyin:x".into(),
        detail: json!({"identities": 2}),
    };
    // wm1's 3 events, douyin:x's comment, and the referral naming wm1 as inviter.
    assert_eq!(s.erase(&person, &audit).unwrap(), 5);
    let left = s.scan(0, 100).unwrap();
    assert_eq!(
        left.iter()
            .map(|e| e.event.identity.as_str())
            .collect::<Vec<_>>(),
        vec!["mp:o_1"]
    );
    let log = s.audit_log(10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].subject.as_str(), log[0].at),
        ("erase_person", "douyin:x", 1_790_000_999)
    );
    assert_eq!(log[0].detail, json!({"identities": 2}));
}

pub fn merges_round_trip(s: &mut dyn Store, _: &dyn Fn() -> Box<dyn Store>) {
    let m = MergeRecord {
        event_offset: 2,
        ts: 1_790_000_000,
        identity: Identity::parse("wecom:wm1").unwrap(),
        linked: Identity::parse("douyin:x").unwrap(),
        from_a: "wecom:wm1".into(),
        from_b: "douyin:x".into(),
        into: "douyin:x".into(),
    };
    s.record_merges(std::slice::from_ref(&m)).unwrap();
    assert_eq!(
        s.merges_of(&[Identity::parse("douyin:x").unwrap()])
            .unwrap(),
        vec![m.clone()]
    );
    assert_eq!(
        s.merges_of(&[
            Identity::parse("douyin:x").unwrap(),
            Identity::parse("wecom:wm1").unwrap()
        ])
        .unwrap(),
        vec![m]
    );
    assert!(s
        .merges_of(&[Identity::parse("mp:o_1").unwrap()])
        .unwrap()
        .is_empty());
    let id = s
        .audit(&AuditRecord {
            id: 0,
            at: 5,
            action: "key_created".into(),
            subject: "k".into(),
            detail: json!({}),
        })
        .unwrap();
    assert!(id > 0);
}

pub fn settings_crud_and_prefix(s: &mut dyn Store, reopen: &dyn Fn() -> Box<dyn Store>) {
    s.put_setting("segment/a", Some(&json!({"v": 1}))).unwrap();
    s.put_setting("segment/b", Some(&json!({"v": 2}))).unwrap();
    s.put_setting("segmentx", Some(&json!(3))).unwrap();
    s.put_setting("segment/a", Some(&json!({"v": 9}))).unwrap();
    assert_eq!(s.get_setting("segment/a").unwrap(), Some(json!({"v": 9})));
    let listed: Vec<String> = s
        .list_settings("segment/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec!["segment/a", "segment/b"]);
    s.put_setting("segment/b", None).unwrap();
    assert_eq!(reopen().get_setting("segment/b").unwrap(), None);
    assert_eq!(
        reopen().get_setting("segment/a").unwrap(),
        Some(json!({"v": 9}))
    );
}
