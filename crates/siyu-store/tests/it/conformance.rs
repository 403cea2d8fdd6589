//! The behaviours every backend must have (see `Store`'s invariants),
//! each written once against a [`Backend`] and run for SQLite and
//! PostgreSQL by the `conformance!` macro.

use crate::Backend;
use serde_json::json;
use siyu_domain::wire::to_json;
use siyu_domain::{parse_json_event, Event, Identity};
use siyu_store::{
    Appended, ArchiveQuery, ArchivedMessage, AuditRecord, MergeRecord, Store, StoredEvent,
};

conformance!(
    append_and_scan_round_trip_every_field,
    empty_batch_changes_nothing,
    offsets_are_dense_and_survive_reopen,
    replayed_batch_adds_nothing,
    ids_are_deduped_across_openers_and_after_erasure,
    duplicate_ids_inside_one_batch_are_stored_once,
    large_batch_is_dense_and_scans_in_pages,
    concurrent_writers_keep_offsets_dense,
    timeline_is_newest_first_and_pages,
    timeline_cursor_must_name_a_stored_event,
    erase_removes_identity_and_ref_events_with_audit,
    erase_never_reuses_offsets,
    erase_leaves_the_identity_nowhere,
    renamed_identities_are_renamed_everywhere,
    merges_round_trip_oldest_first,
    audit_log_is_newest_first,
    settings_crud_and_prefix,
    every_settings_change_is_numbered_in_commit_order,
    incremented_settings_give_every_caller_its_own_number,
    a_lease_has_one_holder_and_its_token_fences_commits,
    settings_batch_is_one_write,
    settings_refuse_what_would_not_read_back,
    group_events_are_read_by_group_and_time,
    everything_survives_reopen,
    migrations_are_recorded_once,
    segment_history_is_newest_first_per_segment_and_person,
    bulk_load_rebuilds_indexes_and_keeps_dedup,
    interrupted_bulk_load_is_repaired_on_open,
    small_bulk_load_keeps_indexes,
    side_tables_restore_exactly_and_ids_continue_after_them,
    events_without_ids_are_stored_once_under_their_content_id,
    log_anchor_is_the_newest_stored_event_at_or_below,
    snapshots_round_trip_in_parts_and_only_the_newest_are_kept,
    a_snapshot_is_kept_only_while_no_erasure_committed,
    an_erasure_during_a_snapshot_store_leaves_no_snapshot,
    a_damaged_stored_snapshot_is_refused_on_read,
    renaming_deletes_stored_snapshots,
    the_conversation_archive_is_searched_newest_first_and_pruned,
);

fn archived(
    key: &str,
    ts: i64,
    identity: &str,
    operator: &str,
    text: &str,
    flags: &[&str],
) -> ArchivedMessage {
    ArchivedMessage {
        key: key.into(),
        ts,
        kind: "message".into(),
        identity: identity.into(),
        operator: operator.into(),
        channel: "douyin".into(),
        text: text.into(),
        response_secs: Some(ts - 1_790_000_000),
        flags: flags.iter().map(|f| f.to_string()).collect(),
    }
}

pub fn the_conversation_archive_is_searched_newest_first_and_pruned(b: &dyn Backend) {
    let mut s = b.open();
    let rows = [
        archived(
            "c/a/1",
            1_790_000_010,
            "douyin:a",
            "li",
            "您好，价格 199 元",
            &[],
        ),
        archived(
            "c/a/2",
            1_790_000_020,
            "douyin:a",
            "li",
            "加我微信详聊",
            &["wechat"],
        ),
        archived("c/b/1", 1_790_000_020, "wecom:b", "wang", "已为您登记", &[]),
        archived(
            "c/b/2",
            1_790_000_030,
            "wecom:b",
            "wang",
            "价格表见附件",
            &[],
        ),
    ];
    for r in &rows {
        s.archive_message(r).unwrap();
    }
    // Archiving the same key again changes nothing.
    s.archive_message(&archived(
        "c/a/1",
        1_790_000_099,
        "douyin:a",
        "x",
        "other",
        &[],
    ))
    .unwrap();
    let keys = |q: ArchiveQuery, s: &mut Box<dyn Store>| -> Vec<String> {
        s.archived_messages(&ArchiveQuery {
            limit: q.limit.max(1),
            ..q
        })
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect()
    };
    let all = ArchiveQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        keys(all.clone(), &mut s),
        ["c/b/2", "c/b/1", "c/a/2", "c/a/1"]
    );
    let got = s.archived_messages(&all).unwrap();
    assert_eq!(got[3], rows[0], "every field round-trips");
    assert_eq!(got[1].flags, Vec::<String>::new());
    assert_eq!(got[2].flags, vec!["wechat".to_string()]);
    assert_eq!(
        keys(
            ArchiveQuery {
                text: Some("价格".into()),
                ..all.clone()
            },
            &mut s
        ),
        ["c/b/2", "c/a/1"]
    );
    assert_eq!(
        keys(
            ArchiveQuery {
                flagged: true,
                ..all.clone()
            },
            &mut s
        ),
        ["c/a/2"]
    );
    assert_eq!(
        keys(
            ArchiveQuery {
                operator: Some("li".into()),
                ..all.clone()
            },
            &mut s
        ),
        ["c/a/2", "c/a/1"]
    );
    assert_eq!(
        keys(
            ArchiveQuery {
                identities: Some(vec!["wecom:b".into(), "x:y".into()]),
                ..all.clone()
            },
            &mut s
        ),
        ["c/b/2", "c/b/1"]
    );
    // `to` is exclusive, `from` inclusive.
    assert_eq!(
        keys(
            ArchiveQuery {
                from: Some(1_790_000_020),
                to: Some(1_790_000_030),
                ..all.clone()
            },
            &mut s
        ),
        ["c/b/1", "c/a/2"]
    );
    // Pages continue after (ts, key), also between rows of one second.
    assert_eq!(
        keys(
            ArchiveQuery {
                before: Some((1_790_000_020, "c/b/1".into())),
                ..all.clone()
            },
            &mut s
        ),
        ["c/a/2", "c/a/1"]
    );
    assert_eq!(
        keys(
            ArchiveQuery {
                limit: 1,
                ..all.clone()
            },
            &mut s
        ),
        ["c/b/2"]
    );
    // Retention: older than the cut goes.
    assert_eq!(s.prune_archive(1_790_000_020).unwrap(), 1);
    assert_eq!(keys(all, &mut s), ["c/b/2", "c/b/1", "c/a/2"]);
}

fn ev(v: serde_json::Value) -> Event {
    parse_json_event(&v).unwrap_or_else(|e| panic!("test event {v}: {e}"))
}

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

fn offsets(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.offset).collect()
}

fn new_offsets(range: std::ops::RangeInclusive<u64>) -> Vec<Appended> {
    range.map(Appended::New).collect()
}

/// One event of every shape the wire format allows, every field used.
fn sample() -> Vec<Event> {
    vec![
        ev(
            json!({"id":"a1","seq":1,"ts":"2026-09-01T08:00:00Z","identity":"douyin:x","type":"comment","channel":"douyin","text":"多少钱? \"quoted\" 'single' \\ back\nnewline"}),
        ),
        ev(
            json!({"ts":1790000000,"identity":"wecom:wm1","type":"identify","ref":"douyin:x","traits":{"name":"王芳","phone":"13800000000","city":"上海","birthday":"1990-05-17","timezone":"Asia/Shanghai","tags":["vip","new"],"level":3,"pets":{"cat":true}}}),
        ),
        ev(
            json!({"id":"a3","seq":18446744073709551615u64,"ts":1790000100,"identity":"wecom:wm1","type":"purchase","amount":12900,"channel":"taobao"}),
        ),
        ev(json!({"ts":1790000200,"identity":"wecom:wm1","type":"join_group","group":"g-1"})),
        ev(
            json!({"ts":1790000300,"identity":"mp:o_1","type":"custom","channel":"miniprogram","name":"coupon_claimed","properties":{"coupon":"c9","value":500,"ratio":0.25,"nested":{"list":[1,"two",null,false]},"empty":{}}}),
        ),
        ev(
            json!({"ts":1790000400,"identity":"douyin:y","type":"referral_signup","ref":"wecom:wm1"}),
        ),
        ev(json!({"ts":1790000500,"identity":"wecom:wm2","type":"identify","traits":{}})),
        ev(json!({"ts":946684800,"identity":"offline:p1","type":"refund","amount":0})),
    ]
}

/// `e` as the store keeps it: with its client id, else its content id.
fn as_stored(e: &Event) -> Event {
    let mut e = e.clone();
    if e.id.is_none() {
        e.id = Some(siyu_store::content_id(
            &siyu_store::EventRow::new(&e).unwrap(),
        ));
    }
    e
}

pub fn append_and_scan_round_trip_every_field(b: &dyn Backend) {
    let mut s = b.open();
    let events = sample();
    let n = events.len() as u64;
    let events: Vec<Event> = events.iter().map(as_stored).collect();
    assert_eq!(s.append(&events).unwrap(), new_offsets(1..=n));
    let back = s.scan(0, 100).unwrap();
    assert_eq!(offsets(&back), (1..=n).collect::<Vec<_>>());
    for (stored, original) in back.iter().zip(&events) {
        assert_eq!(&stored.event, original, "offset {}", stored.offset);
        assert_eq!(to_json(&stored.event), to_json(original));
    }
    assert_eq!(offsets(&s.scan(4, 1).unwrap()), vec![5]);
    assert_eq!(offsets(&s.scan(3, 2).unwrap()), vec![4, 5]);
    assert!(s.scan(n, 10).unwrap().is_empty());
    assert!(s.scan(0, 0).unwrap().is_empty());
    // A fresh connection reads the same.
    let again: Vec<Event> = b
        .open()
        .scan(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(again, events);
}

pub fn empty_batch_changes_nothing(b: &dyn Backend) {
    let mut s = b.open();
    assert_eq!(s.append(&[]).unwrap(), vec![]);
    assert_eq!(s.last_offset().unwrap(), 0);
    s.append(&sample()[..2]).unwrap();
    assert_eq!(s.append(&[]).unwrap(), vec![]);
    assert_eq!(s.last_offset().unwrap(), 2);
}

pub fn offsets_are_dense_and_survive_reopen(b: &dyn Backend) {
    let mut s = b.open();
    assert_eq!(s.last_offset().unwrap(), 0);
    assert_eq!(s.append(&sample()[..3]).unwrap(), new_offsets(1..=3));
    assert_eq!(s.last_offset().unwrap(), 3);
    drop(s);
    let mut again = b.open();
    assert_eq!(again.last_offset().unwrap(), 3);
    assert_eq!(again.append(&sample()[3..6]).unwrap(), new_offsets(4..=6));
    assert_eq!(again.append(&sample()[6..]).unwrap(), new_offsets(7..=8));
    assert_eq!(
        offsets(&again.scan(0, 100).unwrap()),
        (1..=8).collect::<Vec<_>>()
    );
}

fn with_ids(events: &[Event], prefix: &str) -> Vec<Event> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| Event {
            id: Some(format!("{prefix}{i}")),
            ..e.clone()
        })
        .collect()
}

pub fn replayed_batch_adds_nothing(b: &dyn Backend) {
    let mut s = b.open();
    let batch = with_ids(&sample(), "r-");
    let n = batch.len() as u64;
    assert_eq!(s.append(&batch).unwrap(), new_offsets(1..=n));
    // The same batch again, and again after reopening: nothing is added.
    let duplicates: Vec<Appended> = (1..=n).map(Appended::Duplicate).collect();
    assert_eq!(s.append(&batch).unwrap(), duplicates);
    assert_eq!(b.open().append(&batch).unwrap(), duplicates);
    assert_eq!(s.last_offset().unwrap(), n);
    assert_eq!(s.scan(0, 100).unwrap().len() as u64, n);
    // A batch mixing replays, new ids and id-less events.
    let mut fresh = sample()[0].clone();
    fresh.id = Some("r-new".into());
    let mut no_id = sample()[1].clone();
    no_id.id = None;
    let mixed = vec![
        batch[2].clone(),
        fresh,
        no_id.clone(),
        batch[0].clone(),
        no_id,
    ];
    assert_eq!(
        s.append(&mixed).unwrap(),
        vec![
            Appended::Duplicate(3),
            Appended::New(n + 1),
            Appended::New(n + 2),
            Appended::Duplicate(1),
            // No id: the same content is the same event (its content id).
            Appended::Duplicate(n + 2),
        ]
    );
    assert_eq!(s.last_offset().unwrap(), n + 2);
}

/// Two openers of one store, each appending ids the other wrote (as a
/// server and `siyu import` beside it do), and an erasure between them:
/// every id is stored once, and an erased event's id may be stored again.
pub fn ids_are_deduped_across_openers_and_after_erasure(b: &dyn Backend) {
    let mut one = b.open();
    let mut two = b.open();
    let batch = with_ids(&sample(), "x-");
    let n = batch.len() as u64;
    assert_eq!(one.append(&batch[..4]).unwrap(), new_offsets(1..=4));
    // `two` never saw those ids appended.
    assert_eq!(
        two.append(&batch[2..6]).unwrap(),
        vec![
            Appended::Duplicate(3),
            Appended::Duplicate(4),
            Appended::New(5),
            Appended::New(6)
        ]
    );
    // `one` is now behind the log by `two`'s appends.
    assert_eq!(
        one.append(&batch[4..]).unwrap(),
        [Appended::Duplicate(5), Appended::Duplicate(6)]
            .into_iter()
            .chain((7..=n).map(Appended::New))
            .collect::<Vec<_>>()
    );
    // Erase douyin:x through `two` (its comment at 1 and the identify
    // naming it at 2): those ids are free again for both openers, the
    // others stay stored.
    assert_eq!(
        two.erase(&[id("douyin:x")], "erased:test", &erase_audit())
            .unwrap(),
        2
    );
    assert_eq!(
        one.append(&batch[..3]).unwrap(),
        vec![
            Appended::New(n + 1),
            Appended::New(n + 2),
            Appended::Duplicate(3)
        ]
    );
    assert_eq!(
        two.append(&batch[..1]).unwrap(),
        vec![Appended::Duplicate(n + 1)]
    );
    // Many random-looking ids, replayed through a fresh opener.
    let many: Vec<Event> = (0..3_000)
        .map(|i| {
            let mut e = sample()[i % 8].clone();
            e.id = Some(format!(
                "{:016x}",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ));
            e
        })
        .collect();
    let first = one.append(&many).unwrap();
    assert!(first.iter().all(|a| matches!(a, Appended::New(_))));
    let offsets_first: Vec<u64> = first
        .iter()
        .map(|a| match a {
            Appended::New(o) | Appended::Duplicate(o) => *o,
        })
        .collect();
    let again = b.open().append(&many).unwrap();
    assert_eq!(
        again,
        offsets_first
            .into_iter()
            .map(Appended::Duplicate)
            .collect::<Vec<_>>()
    );
}

pub fn duplicate_ids_inside_one_batch_are_stored_once(b: &dyn Backend) {
    let mut s = b.open();
    let events = sample();
    s.append(&events[..1]).unwrap(); // id a1 at offset 1
    let mut first = events[2].clone();
    first.id = Some("b1".into());
    let mut second = events[3].clone();
    second.id = Some("b1".into());
    let batch = vec![
        first.clone(),
        events[0].clone(),
        second,
        first.clone(),
        events[4].clone(),
    ];
    assert_eq!(
        s.append(&batch).unwrap(),
        vec![
            Appended::New(2),
            Appended::Duplicate(1),
            Appended::Duplicate(2),
            Appended::Duplicate(2),
            Appended::New(3),
        ]
    );
    let stored = s.scan(0, 100).unwrap();
    assert_eq!(offsets(&stored), vec![1, 2, 3]);
    // The first occurrence is the one kept.
    assert_eq!(stored[1].event, first);
}

pub fn large_batch_is_dense_and_scans_in_pages(b: &dyn Backend) {
    let mut s = b.open();
    let batch: Vec<Event> = (0..12_345)
        .map(|i| {
            ev(json!({
                "id": format!("big-{i}"), "seq": i, "ts": 1_790_000_000 + i,
                "identity": format!("douyin:u{}", i % 97), "type": "touch"
            }))
        })
        .collect();
    assert_eq!(s.append(&batch).unwrap(), new_offsets(1..=12_345));
    let mut after = 0;
    let mut seen = 0;
    loop {
        let page = s.scan(after, 5_000).unwrap();
        let Some(last) = page.last() else { break };
        for e in &page {
            seen += 1;
            assert_eq!(e.offset, seen);
            assert_eq!(e.event, batch[seen as usize - 1]);
        }
        after = last.offset;
    }
    assert_eq!(seen, 12_345);
}

pub fn concurrent_writers_keep_offsets_dense(b: &dyn Backend) {
    const WRITERS: usize = 3;
    const BATCHES: usize = 20;
    let stores: Vec<Box<dyn Store>> = (0..WRITERS).map(|_| b.open()).collect();
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(w, mut s)| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for k in 0..BATCHES {
                    // Every writer also replays one shared id per batch.
                    let batch = vec![
                        ev(json!({"id": format!("w{w}-{k}"), "ts": 1_790_000_000, "identity": "douyin:c", "type": "touch"})),
                        ev(json!({"id": format!("shared-{k}"), "ts": 1_790_000_000, "identity": "douyin:c", "type": "touch"})),
                    ];
                    got.extend(s.append(&batch).expect("concurrent append"));
                }
                got
            })
        })
        .collect();
    let mut new = Vec::new();
    let mut duplicates = 0;
    for h in handles {
        for a in h.join().expect("writer thread") {
            match a {
                Appended::New(o) => new.push(o),
                Appended::Duplicate(_) => duplicates += 1,
            }
        }
    }
    new.sort_unstable();
    let expected = (WRITERS * BATCHES + BATCHES) as u64;
    assert_eq!(new, (1..=expected).collect::<Vec<_>>());
    assert_eq!(duplicates, (WRITERS - 1) * BATCHES);
    let mut s = b.open();
    assert_eq!(s.last_offset().unwrap(), expected);
    assert_eq!(
        offsets(&s.scan(0, 1_000).unwrap()),
        (1..=expected).collect::<Vec<_>>()
    );
}

/// The offsets of the events of `identities`, as the engine would list
/// them for a person (here by scanning the log).
fn offsets_of(s: &mut Box<dyn siyu_store::Store>, identities: &[Identity]) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .scan(0, 100_000)
        .unwrap()
        .iter()
        .filter(|e| identities.contains(&e.event.identity))
        .map(|e| e.offset)
        .collect();
    v.reverse();
    v
}

pub fn timeline_is_newest_first_and_pages(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    // Two more events tied on ts with offset 3: the later offset is newer.
    s.append(&[
        ev(json!({"ts":1790000100,"identity":"douyin:x","type":"touch"})),
        ev(json!({"ts":1790000100,"identity":"wecom:wm1","type":"follow"})),
    ])
    .unwrap();
    let ids = offsets_of(&mut s, &[id("wecom:wm1"), id("douyin:x")]);
    let all = s.timeline(&ids, None, 100).unwrap();
    assert_eq!(offsets(&all), vec![4, 10, 9, 3, 2, 1]);
    // Every field comes back, as `scan` returns it.
    let scanned = s.scan(0, 100).unwrap();
    for e in &all {
        assert_eq!(Some(e), scanned.iter().find(|x| x.offset == e.offset));
    }
    for page_size in 1..=4 {
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = s.timeline(&ids, before, page_size).unwrap();
            assert!(page.len() <= page_size);
            let Some(last) = page.last() else { break };
            before = Some(last.offset);
            paged.extend(offsets(&page));
        }
        assert_eq!(paged, vec![4, 10, 9, 3, 2, 1], "pages of {page_size}");
    }
    // Only the offsets asked for, in any order; unknown ones are skipped.
    assert_eq!(
        offsets(&s.timeline(&[1, 9], None, 100).unwrap()),
        vec![9, 1]
    );
    assert_eq!(
        offsets(&s.timeline(&[9, 77, 1], None, 100).unwrap()),
        vec![9, 1]
    );
    assert!(s.timeline(&[], None, 100).unwrap().is_empty());
    assert!(s.timeline(&[404], None, 100).unwrap().is_empty());
    assert!(s.timeline(&ids, None, 0).unwrap().is_empty());
    // events_at: offset order, unknown skipped, all fields.
    let at = s.events_at(&[9, 3, 404, 1]).unwrap();
    assert_eq!(offsets(&at), vec![1, 3, 9]);
    assert_eq!(
        s.timestamps_at(&[9, 404, 1]).unwrap(),
        vec![(1, at[0].event.ts), (9, at[2].event.ts)]
    );
}

pub fn timeline_cursor_must_name_a_stored_event(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let ids = offsets_of(&mut s, &[id("wecom:wm1")]);
    // wm1's oldest event ends the timeline.
    assert!(s.timeline(&ids, Some(2), 10).unwrap().is_empty());
    // Not an event at all, and a stored event of someone else.
    for cursor in [999, 1] {
        let err = s.timeline(&ids, Some(cursor), 10).unwrap_err();
        assert!(matches!(err, siyu_store::StoreError::Invalid(_)), "{err:?}");
    }
}

fn erase_audit() -> AuditRecord {
    AuditRecord {
        id: 0,
        at: 1_790_000_999,
        action: "erase_person".into(),
        subject: "douyin:x".into(),
        detail: json!({"identities": 2, "by": "admin"}),
    }
}

fn merge(offset: u64, a: &str, b: &str, into: &str) -> MergeRecord {
    MergeRecord {
        event_offset: offset,
        ts: 1_790_000_000 + offset as i64,
        identity: id(a),
        linked: id(b),
        from_a: a.into(),
        from_b: b.into(),
        into: into.into(),
    }
}

pub fn erase_removes_identity_and_ref_events_with_audit(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let kept_merge = merge(7, "wecom:wm2", "mp:o_1", "mp:o_1");
    s.record_merges(&[
        merge(2, "wecom:wm1", "douyin:x", "douyin:x"),
        kept_merge.clone(),
    ])
    .unwrap();
    let person = [id("wecom:wm1"), id("douyin:x")];
    let their_offsets = offsets_of(&mut s, &person);
    assert!(!their_offsets.is_empty());
    // wm1's three events, douyin:x's comment, and the referral naming wm1.
    assert_eq!(s.erase(&person, "erased:test", &erase_audit()).unwrap(), 5);
    let left: Vec<String> = s
        .scan(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.event.identity.as_str().to_string())
        .collect();
    assert_eq!(left, vec!["mp:o_1", "wecom:wm2", "offline:p1"]);
    assert!(s.timeline(&their_offsets, None, 100).unwrap().is_empty());
    assert!(s.events_at(&their_offsets).unwrap().is_empty());
    // The merge naming them is gone too; the unrelated one stays.
    assert!(s.merges_of(&person).unwrap().is_empty());
    assert_eq!(s.merges_of(&[id("mp:o_1")]).unwrap(), vec![kept_merge]);
    let log = s.audit_log(10).unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].id > 0);
    assert_eq!(
        AuditRecord {
            id: 0,
            ..log[0].clone()
        },
        erase_audit()
    );
    // Each erasure is counted in its own transaction (what other nodes follow).
    assert_eq!(siyu_store::erasures(s.as_mut()).unwrap(), 1);
    let head = s.setting_changes_head().unwrap();
    // Erasing again removes nothing but is still audited.
    assert_eq!(s.erase(&person, "erased:test", &erase_audit()).unwrap(), 0);
    assert_eq!(s.audit_log(10).unwrap().len(), 2);
    assert_eq!(siyu_store::erasures(s.as_mut()).unwrap(), 2);
    let changed: Vec<String> = s
        .setting_changes(head, 10)
        .unwrap()
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(changed, [siyu_store::ERASURES_KEY]);
}

/// Whether any of `files` holds `needle` (a file that is not there holds nothing).
fn files_contain(files: &[std::path::PathBuf], needle: &[u8]) -> bool {
    files.iter().any(|f| {
        std::fs::read(f).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

pub fn erase_leaves_the_identity_nowhere(b: &dyn Backend) {
    let mut s = b.open();
    let marker = "erase-me-7c1f9a2e-unique-marker";
    s.append(&sample()).unwrap();
    s.append(&[ev(
        json!({"ts":1790000100,"identity":"douyin:x","type":"comment","channel":"douyin","text":marker}),
    )])
    .unwrap();
    s.put_settings(&[
        (
            "reward/c1/douyin:x/0".into(),
            Some(json!({"inviter": "douyin:x", "tier": 0, "status": "granted"})),
        ),
        (
            "group/g1/reserved".into(),
            Some(json!({"wecom:wm1": 1790000000, "wecom:other": 1790000001})),
        ),
        ("fission_override/c1/wecom:wm1".into(), Some(json!(true))),
        ("unrelated/douyin:xy".into(), Some(json!("douyin:xy"))),
    ])
    .unwrap();
    s.audit(&AuditRecord {
        id: 0,
        at: 1_790_000_500,
        action: "fission_override".into(),
        subject: "douyin:x".into(),
        detail: json!({"campaign": "c1", "invitee": "wecom:wm1"}),
    })
    .unwrap();
    // An operator's message to them in the conversation archive.
    s.archive_message(&archived(
        "c/douyin:x/1",
        1_790_000_200,
        "douyin:x",
        "li",
        marker,
        &[],
    ))
    .unwrap();
    // An engine snapshot taken before the erasure holds the person too.
    let mut held = format!("engine state naming douyin:x: {marker}").into_bytes();
    let info = snapshot_info(s.as_mut(), 9);
    s.put_snapshot(&info, &mut held.as_slice())
        .unwrap()
        .expect("stored");
    held.clear();
    let files = b.local_files();
    if !files.is_empty() {
        assert!(
            files_contain(&files, marker.as_bytes()),
            "the marker was written"
        );
    }
    let person = [id("wecom:wm1"), id("douyin:x")];
    let audit = AuditRecord {
        subject: "erased:ab12".into(),
        ..erase_audit()
    };
    s.erase(&person, "erased:ab12", &audit).unwrap();
    assert!(s.snapshots().unwrap().is_empty(), "the erasure deleted it");

    let settings = s.list_settings("").unwrap();
    for (key, value) in &settings {
        for who in ["\"wecom:wm1\"", "\"douyin:x\""] {
            assert!(!value.to_string().contains(who), "{key} = {value}");
        }
        assert!(
            !key.split('/').any(|k| k == "wecom:wm1" || k == "douyin:x"),
            "{key}"
        );
    }
    let get = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // Kept under the pseudonym (the reward used its stock), others untouched.
    assert_eq!(
        get("reward/c1/erased:ab12/0"),
        Some(json!({"inviter": "erased:ab12", "tier": 0, "status": "granted"}))
    );
    assert_eq!(
        get("group/g1/reserved"),
        Some(json!({"erased:ab12": 1790000000, "wecom:other": 1790000001}))
    );
    assert_eq!(get("unrelated/douyin:xy"), Some(json!("douyin:xy")));
    assert!(
        s.archived_messages(&ArchiveQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .is_empty(),
        "the archive keeps nothing of the person"
    );
    for row in s.audit_log(10).unwrap() {
        let detail = row.detail.to_string();
        for who in ["wecom:wm1", "douyin:x"] {
            assert_ne!(row.subject, who);
            assert!(!detail.contains(&format!("\"{who}\"")), "{detail}");
        }
    }
    // SQLite: freed pages are zeroed and the WAL is truncated, so the
    // erased text is in none of the files.
    if !files.is_empty() {
        assert!(
            !files_contain(&files, marker.as_bytes()),
            "erased text left in {files:?}"
        );
    }
}

pub fn renamed_identities_are_renamed_everywhere(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    s.record_merges(&[merge(2, "wecom:wm1", "douyin:x", "douyin:x")])
        .unwrap();
    s.put_setting(
        "reward/c1/douyin:x/0",
        Some(&json!({"inviter": "douyin:x"})),
    )
    .unwrap();
    assert_eq!(
        s.logged_identities_with_prefix("douyin:").unwrap(),
        vec![id("douyin:x"), id("douyin:y")]
    );
    // douyin:x is the identity of one event and the ref of another.
    let changed = s
        .rename_identities(&[(id("douyin:x"), id("douyin:renamed"))])
        .unwrap();
    assert_eq!(changed, 2);
    assert!(s
        .logged_identities_with_prefix("douyin:x")
        .unwrap()
        .is_empty());
    let events = s.scan(0, 100).unwrap();
    let names: Vec<&str> = events
        .iter()
        .flat_map(|e| {
            [
                Some(e.event.identity.as_str()),
                e.event.reference.as_ref().map(|r| r.as_str()),
            ]
        })
        .flatten()
        .collect();
    assert!(
        names.contains(&"douyin:renamed") && !names.contains(&"douyin:x"),
        "{names:?}"
    );
    let m = s.merges_of(&[id("douyin:renamed")]).unwrap();
    assert_eq!((m.len(), m[0].into.as_str()), (1, "douyin:renamed"));
    assert_eq!(
        s.list_settings("reward/").unwrap(),
        vec![(
            "reward/c1/douyin:renamed/0".to_string(),
            json!({"inviter": "douyin:renamed"})
        )]
    );
}

/// A renamed identity is not kept under its old name in a stored snapshot.
pub fn renaming_deletes_stored_snapshots(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let info = snapshot_info(s.as_mut(), 8);
    s.put_snapshot(&info, &mut &b"douyin:x"[..])
        .unwrap()
        .expect("stored");
    s.rename_identities(&[(id("douyin:x"), id("douyin:renamed"))])
        .unwrap();
    assert!(s.snapshots().unwrap().is_empty());
}

pub fn erase_never_reuses_offsets(b: &dyn Backend) {
    let mut s = b.open();
    let events = sample();
    s.append(&events).unwrap();
    // Offsets 7 and 8 are the newest; erase both.
    assert_eq!(
        s.erase(
            &[id("wecom:wm2"), id("offline:p1")],
            "erased:test",
            &erase_audit()
        )
        .unwrap(),
        2
    );
    assert_eq!(s.last_offset().unwrap(), 8);
    assert_eq!(b.open().last_offset().unwrap(), 8);
    assert_eq!(s.append(&events[6..7]).unwrap(), vec![Appended::New(9)]);
    assert_eq!(offsets(&s.scan(0, 100).unwrap()), vec![1, 2, 3, 4, 5, 6, 9]);
}

pub fn merges_round_trip_oldest_first(b: &dyn Backend) {
    let mut s = b.open();
    let first = merge(2, "wecom:wm1", "douyin:x", "douyin:x");
    let second = merge(6, "douyin:y", "wecom:wm1", "douyin:x");
    let other = merge(7, "wecom:wm2", "mp:o_1", "mp:o_1");
    s.record_merges(&[first.clone(), other.clone()]).unwrap();
    s.record_merges(&[]).unwrap();
    s.record_merges(std::slice::from_ref(&second)).unwrap();
    assert_eq!(s.merges_of(&[id("douyin:x")]).unwrap(), vec![first.clone()]);
    // By either side, each merge once, oldest first.
    assert_eq!(
        s.merges_of(&[id("wecom:wm1"), id("douyin:x"), id("douyin:y")])
            .unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(s.merges_of(&[id("mp:o_1")]).unwrap(), vec![other]);
    assert!(s.merges_of(&[id("nobody:here")]).unwrap().is_empty());
    assert!(s.merges_of(&[]).unwrap().is_empty());
}

pub fn audit_log_is_newest_first(b: &dyn Backend) {
    let mut s = b.open();
    assert!(s.audit_log(10).unwrap().is_empty());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.audit(&AuditRecord {
                id: 0,
                at: 100 + i,
                action: "key_created".into(),
                subject: format!("key-{i}"),
                detail: json!({"i": i, "scopes": ["write"]}),
            })
            .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let log = s.audit_log(3).unwrap();
    assert_eq!(
        log.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3], ids[2]]
    );
    assert_eq!(log[0].subject, "key-4");
    assert_eq!(log[0].at, 104);
    assert_eq!(log[0].detail, json!({"i": 4, "scopes": ["write"]}));
    assert_eq!(s.audit_log(100).unwrap().len(), 5);
}

pub fn settings_crud_and_prefix(b: &dyn Backend) {
    let mut s = b.open();
    assert_eq!(s.get_setting("segment/a").unwrap(), None);
    s.put_setting("segment/a", Some(&json!({"v": 1}))).unwrap();
    s.put_setting("segment/b", Some(&json!([1, "two"])))
        .unwrap();
    s.put_setting("segmentx", Some(&json!(3))).unwrap();
    s.put_setting("segment/a", Some(&json!({"v": 9}))).unwrap();
    // Byte order, whatever the database's locale: `B` < `_` < `a`.
    s.put_setting("segment/_", Some(&json!(null))).unwrap();
    s.put_setting("segment/B", Some(&json!("s"))).unwrap();
    s.put_setting("段/一", Some(&json!(true))).unwrap();
    assert_eq!(s.get_setting("segment/a").unwrap(), Some(json!({"v": 9})));
    assert_eq!(s.get_setting("segment/_").unwrap(), Some(json!(null)));
    let listed = s.list_settings("segment/").unwrap();
    assert_eq!(
        listed,
        vec![
            ("segment/B".to_string(), json!("s")),
            ("segment/_".to_string(), json!(null)),
            ("segment/a".to_string(), json!({"v": 9})),
            ("segment/b".to_string(), json!([1, "two"])),
        ]
    );
    assert_eq!(
        s.list_settings("段/").unwrap(),
        vec![("段/一".to_string(), json!(true))]
    );
    assert_eq!(s.list_settings("").unwrap().len(), 6);
    assert!(s.list_settings("nothing/").unwrap().is_empty());
    s.put_setting("segment/b", None).unwrap();
    s.put_setting("never/written", None).unwrap();
    assert_eq!(s.get_setting("segment/b").unwrap(), None);
    let mut again = b.open();
    assert_eq!(again.get_setting("segment/b").unwrap(), None);
    assert_eq!(
        again.get_setting("segment/a").unwrap(),
        Some(json!({"v": 9}))
    );
}

pub fn everything_survives_reopen(b: &dyn Backend) {
    let events = sample();
    let merges = vec![merge(2, "wecom:wm1", "douyin:x", "douyin:x")];
    {
        let mut s = b.open();
        s.append(&events).unwrap();
        s.record_merges(&merges).unwrap();
        s.audit(&erase_audit()).unwrap();
        s.put_setting("k", Some(&json!({"x": [1]}))).unwrap();
    }
    let mut s = b.open();
    let stored: Vec<Event> = s
        .scan(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(stored, events.iter().map(as_stored).collect::<Vec<_>>());
    assert_eq!(s.last_offset().unwrap(), events.len() as u64);
    assert_eq!(s.merges_of(&[id("douyin:x")]).unwrap(), merges);
    assert_eq!(s.audit_log(10).unwrap()[0].action, "erase_person");
    assert_eq!(s.get_setting("k").unwrap(), Some(json!({"x": [1]})));
}

pub fn migrations_are_recorded_once(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()[..1]).unwrap();
    drop(s);
    let first = b.migrations();
    let versions: Vec<i64> = first.iter().map(|m| m.0).collect();
    assert_eq!(
        versions,
        (1..=siyu_store::latest_schema_version()).collect::<Vec<i64>>(),
        "every known version, once, in order"
    );
    assert!(first.iter().all(|m| m.1 > 1_700_000_000), "{first:?}");
    // Reopening applies nothing again: same rows, same applied_at, data kept.
    for _ in 0..2 {
        let mut s = b.open();
        assert_eq!(s.last_offset().unwrap(), 1);
    }
    assert_eq!(b.migrations(), first);
}

pub fn segment_history_is_newest_first_per_segment_and_person(b: &dyn Backend) {
    use siyu_store::SegmentChangeRecord;
    let mut s = b.open();
    let rec = |segment: &str, id: &str, entered: bool, at: i64| SegmentChangeRecord {
        segment: segment.into(),
        canonical_id: id.into(),
        entered,
        at,
    };
    s.record_segment_changes(&[]).unwrap();
    s.record_segment_changes(&[
        rec("vip", "douyin:a", true, 100),
        rec("vip", "douyin:b", true, 101),
        rec("lapsed", "douyin:a", true, 102),
    ])
    .unwrap();
    s.record_segment_changes(&[rec("vip", "douyin:a", false, 200)])
        .unwrap();
    let vip = s.segment_history("vip", None, 10).unwrap();
    assert_eq!(
        vip,
        vec![
            rec("vip", "douyin:a", false, 200),
            rec("vip", "douyin:b", true, 101),
            rec("vip", "douyin:a", true, 100)
        ]
    );
    let a = b
        .open()
        .segment_history("vip", Some("douyin:a"), 10)
        .unwrap();
    assert_eq!(
        a,
        vec![
            rec("vip", "douyin:a", false, 200),
            rec("vip", "douyin:a", true, 100)
        ]
    );
    assert_eq!(s.segment_history("vip", None, 1).unwrap().len(), 1);
    assert!(s.segment_history("nope", None, 10).unwrap().is_empty());
    // Erasing a person erases their history rows too.
    let audit = AuditRecord {
        id: 0,
        at: 300,
        action: "erase_person".into(),
        subject: "douyin:a".into(),
        detail: json!({}),
    };
    s.erase(
        &[siyu_domain::Identity::parse("douyin:a").unwrap()],
        "erased:test",
        &audit,
    )
    .unwrap();
    assert_eq!(
        s.segment_history("vip", None, 10).unwrap(),
        vec![rec("vip", "douyin:b", true, 101)]
    );
    assert!(s.segment_history("lapsed", None, 10).unwrap().is_empty());
}

/// `n` events with ids `{prefix}-{i}` over 50 persons, every 10th linked.
fn bulk_events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = json!({
                "id": format!("{prefix}-{i}"), "ts": 1_790_000_000 + i,
                "identity": format!("douyin:u{}", i % 50), "type": "touch"
            });
            if i % 10 == 0 {
                e["type"] = json!("identify");
                e["ref"] = json!(format!("wecom:w{}", i % 50));
            }
            ev(e)
        })
        .collect()
}

const SECONDARY: [&str; 1] = ["events_grp_ts"];

pub fn bulk_load_rebuilds_indexes_and_keeps_dedup(b: &dyn Backend) {
    let mut s = b.open();
    let before = b.event_indexes();
    for name in SECONDARY {
        assert!(before.iter().any(|i| i == name), "{name} in {before:?}");
    }
    // Timelines are read by offset (migration 7): no identity index.
    assert!(
        !before.iter().any(|i| i == "events_identity_ts"),
        "{before:?}"
    );
    // The unique id index: PostgreSQL's writers share it; SQLite dedupes
    // in memory against the log (migration 8).
    let id_index: Vec<String> = before
        .iter()
        .filter(|i| *i == "events_event_id")
        .cloned()
        .collect();
    assert_eq!(id_index.is_empty(), b.name() == "sqlite", "{before:?}");
    s.begin_bulk_load(1_000_000).unwrap();
    let during = b.event_indexes();
    assert_eq!(during, id_index);
    let batch = bulk_events("bulk", 2_000);
    assert_eq!(s.append(&batch).unwrap(), new_offsets(1..=2_000));
    // The unique id index stays: a replay is still recognised.
    let again = s.append(&batch[..10]).unwrap();
    assert_eq!(again, (1..=10).map(Appended::Duplicate).collect::<Vec<_>>());
    // Another opener leaves the indexes to the load in progress, and its
    // reads are right without them.
    let mut other = b.open();
    assert_eq!(b.event_indexes(), during);
    let u7 = offsets_of(&mut other, &[id("douyin:u7")]);
    let timeline = other.timeline(&u7, None, 1_000).unwrap();
    assert_eq!(timeline.len(), 40);
    assert_eq!(timeline[0].offset, 1_958);
    other.append(&bulk_events("other", 3)).unwrap();
    drop(other);

    s.end_bulk_load().unwrap();
    assert_eq!(b.event_indexes(), before);
    s.end_bulk_load().unwrap();
    assert_eq!(s.last_offset().unwrap(), 2_003);
    let timeline = s.timeline(&u7, None, 1_000).unwrap();
    assert_eq!(timeline.len(), 40);
    let erased = s
        .erase(&[id("wecom:w10")], "erased:test", &erase_audit())
        .unwrap();
    assert_eq!(erased, 40);
}

pub fn interrupted_bulk_load_is_repaired_on_open(b: &dyn Backend) {
    drop(b.open());
    let before = b.event_indexes();
    let batch = bulk_events("crash", 1_000);
    {
        let mut s = b.open();
        s.begin_bulk_load(1_000_000).unwrap();
        s.append(&batch[..600]).unwrap();
        // Dropped without `end_bulk_load`: what a killed import leaves.
    }
    assert!(!b.event_indexes().contains(&SECONDARY[0].to_string()));
    // A closed PostgreSQL session releases its locks a moment after the
    // client hangs up; until then an opener leaves the indexes alone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut s = loop {
        let s = b.open();
        if b.event_indexes() == before || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(b.event_indexes(), before);
    assert_eq!(
        offsets(&s.scan(0, 10_000).unwrap()),
        (1..=600).collect::<Vec<_>>()
    );
    // Importing the whole file again adds only what was missing.
    let results = s.append(&batch).unwrap();
    assert_eq!(
        results[..600],
        (1..=600).map(Appended::Duplicate).collect::<Vec<_>>()[..]
    );
    assert_eq!(results[600..], new_offsets(601..=1_000)[..]);
}

pub fn small_bulk_load_keeps_indexes(b: &dyn Backend) {
    let mut s = b.open();
    let before = b.event_indexes();
    s.begin_bulk_load(10).unwrap();
    assert_eq!(b.event_indexes(), before);
    s.append(&bulk_events("small", 10)).unwrap();
    s.end_bulk_load().unwrap();
    assert_eq!(b.event_indexes(), before);
}

pub fn settings_batch_is_one_write(b: &dyn Backend) {
    let mut s = b.open();
    s.put_setting("r/old", Some(&json!(1))).unwrap();
    s.put_settings(&[
        ("r/a".to_string(), Some(json!({"x": 1}))),
        ("r/b".to_string(), Some(json!("二"))),
        ("r/old".to_string(), None),
        ("r/a".to_string(), Some(json!({"x": 2}))),
    ])
    .unwrap();
    assert_eq!(
        s.list_settings("r/").unwrap(),
        vec![
            ("r/a".to_string(), json!({"x": 2})),
            ("r/b".to_string(), json!("二"))
        ]
    );
    s.put_settings(&[]).unwrap();
}

/// `depth` nested arrays around a number.
fn nested_arrays(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// What a setting write accepts, a later read returns: a value nested
/// deeper than serde_json reads back (127 nested arrays or objects) is refused with `Invalid`
/// (before this, it was stored and every later list of its prefix failed
/// with "recursion limit exceeded": the server could not start).
pub fn settings_refuse_what_would_not_read_back(b: &dyn Backend) {
    let mut s = b.open();
    s.put_setting("deep/ok", Some(&nested_arrays(127))).unwrap();
    let err = s
        .put_setting("deep/too", Some(&nested_arrays(128)))
        .unwrap_err();
    assert!(matches!(err, siyu_store::StoreError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("deep/too"), "{err}");
    let err = s
        .put_settings(&[
            ("deep/a".to_string(), Some(json!(1))),
            ("deep/b".to_string(), Some(nested_arrays(300))),
        ])
        .unwrap_err();
    assert!(matches!(err, siyu_store::StoreError::Invalid(_)), "{err:?}");
    let listed = s.list_settings("deep/").unwrap();
    assert_eq!(listed, vec![("deep/ok".to_string(), nested_arrays(127))]);
    let each = s.list_settings_each("deep/").unwrap();
    assert_eq!(each.len(), 1);
    assert_eq!(each[0].1.as_ref().unwrap(), &nested_arrays(127));
}

pub fn group_events_are_read_by_group_and_time(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&[
        ev(json!({"ts": 1790000100, "identity": "wecom:a", "type": "join_group", "group": "g1"})),
        ev(json!({"ts": 1790000150, "identity": "wecom:b", "type": "join_group", "group": "g2"})),
        ev(json!({"ts": 1790000200, "identity": "wecom:a", "type": "leave_group", "group": "g1"})),
        ev(json!({"ts": 1790000300, "identity": "wecom:c", "type": "join_group", "group": "g1"})),
    ])
    .unwrap();
    let got: Vec<i64> = s
        .group_events("g1", 1790000100, 1790000200)
        .unwrap()
        .iter()
        .map(|e| e.event.ts)
        .collect();
    assert_eq!(got, vec![1790000100, 1790000200]);
    assert_eq!(s.group_events("g1", 0, i64::MAX).unwrap().len(), 3);
    assert!(s.group_events("g9", 0, i64::MAX).unwrap().is_empty());
}

/// A row for every column of `table`: distinct per `i`, nulls where
/// allowed on odd rows.
fn synthetic_row(
    table: &siyu_store::dump::Table,
    i: i64,
) -> serde_json::Map<String, serde_json::Value> {
    use siyu_store::dump::Kind;
    table
        .columns
        .iter()
        .map(|c| {
            let v = match c.kind {
                _ if c.nullable && i % 2 == 1 => serde_json::Value::Null,
                Kind::Int if c.name == "id" => json!(100 + i),
                Kind::Int => json!(1_780_000_000 + i),
                Kind::Text if c.name == "detail" => json!(format!("{{\"n\":{i}}}")),
                Kind::Text if c.name == "state" => json!("{}"),
                Kind::Text => json!(format!("{}-{i}", c.name)),
            };
            (c.name.to_string(), v)
        })
        .collect()
}

pub fn side_tables_restore_exactly_and_ids_continue_after_them(b: &dyn Backend) {
    use siyu_store::dump::SIDE_TABLES;
    let mut s = b.open();
    assert!(s.is_empty_store().unwrap());
    for table in SIDE_TABLES {
        // Every listed column exists: the empty table reads.
        assert!(
            s.side_table_rows(table).unwrap().is_empty(),
            "{}",
            table.name
        );
        let rows: Vec<_> = (0..3).map(|i| synthetic_row(table, i)).collect();
        s.restore_side_table(table, &rows).unwrap();
        assert_eq!(s.side_table_rows(table).unwrap(), rows, "{}", table.name);
        assert!(!s.is_empty_store().unwrap());
    }
    // The store's id generators continue after the restored ids.
    let id = s.audit(&erase_audit()).unwrap();
    assert_eq!(id, 103);
    // A row that does not fit is refused, naming the table, row and column.
    let audit = siyu_store::dump::side_table("audit").unwrap();
    let mut bad = synthetic_row(audit, 9);
    bad.insert("at".into(), json!("yesterday"));
    let err = s.restore_side_table(audit, &[bad]).unwrap_err().to_string();
    assert!(
        err.contains("audit row 0: `at` must be an integer"),
        "{err}"
    );
    // A key that exists fails the whole batch.
    let rows = vec![synthetic_row(audit, 50), synthetic_row(audit, 0)];
    assert!(s.restore_side_table(audit, &rows).is_err());
    assert_eq!(s.side_table_rows(audit).unwrap().len(), 4);
}

pub fn events_without_ids_are_stored_once_under_their_content_id(b: &dyn Backend) {
    let mut s = b.open();
    let mut plain = sample();
    for e in &mut plain {
        e.id = None;
    }
    let n = plain.len() as u64;
    assert_eq!(s.append(&plain).unwrap(), new_offsets(1..=n));
    // Again, and from another opener: every one is a duplicate.
    let duplicates: Vec<Appended> = (1..=n).map(Appended::Duplicate).collect();
    assert_eq!(s.append(&plain).unwrap(), duplicates);
    assert_eq!(b.open().append(&plain).unwrap(), duplicates);
    let stored = s.scan(0, 100).unwrap();
    for (e, stored) in plain.iter().zip(&stored) {
        let id = stored.event.id.clone().unwrap();
        assert!(id.starts_with("c:") && id.len() == 34, "{id}");
        let mut with_id = e.clone();
        with_id.id = Some(id);
        assert_eq!(stored.event, with_id);
    }
    // One field apart is another event.
    let mut other = plain[0].clone();
    other.ts += 1;
    assert_eq!(s.append(&[other]).unwrap(), vec![Appended::New(n + 1)]);
}

/// What nodes sharing a store follow: every insert, update and delete of
/// a settings row, by any connection (batch, single, increment), numbered
/// in order; pruning keeps the newest and the head.
pub fn every_settings_change_is_numbered_in_commit_order(b: &dyn Backend) {
    let mut s = b.open();
    let mut other = b.open();
    let start = s.setting_changes_head().unwrap();
    s.put_setting("write_key/a", Some(&json!({"n": 1})))
        .unwrap();
    other
        .put_setting("write_key/a", Some(&json!({"n": 2})))
        .unwrap();
    other
        .put_settings(&[
            ("segment/x".into(), Some(json!({"seq": 0}))),
            ("write_key/a".into(), None),
        ])
        .unwrap();
    s.increment_setting("segment_version/x").unwrap();
    s.put_setting("never/written", None).unwrap();
    let changes = s.setting_changes(start, 100).unwrap();
    let keys: Vec<&str> = changes.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "write_key/a",
            "write_key/a",
            "segment/x",
            "write_key/a",
            "segment_version/x"
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].0 < w[1].0), "{changes:?}");
    let head = s.setting_changes_head().unwrap();
    assert_eq!(head, changes.last().unwrap().0);
    assert_eq!(s.setting_changes(head, 100).unwrap(), vec![]);
    assert_eq!(s.setting_changes(start, 2).unwrap(), changes[..2].to_vec());
    // Pruning everything still keeps the newest, and the numbering goes on.
    assert_eq!(
        s.prune_setting_changes(i64::MAX).unwrap(),
        changes.len() as u64 - 1
    );
    assert_eq!(s.setting_changes(0, 100).unwrap(), vec![changes[4].clone()]);
    assert_eq!(s.setting_changes_head().unwrap(), head);
    other.put_setting("write_key/b", Some(&json!(1))).unwrap();
    let next = s.setting_changes(head, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].0 > head);
}

/// Segment versions across nodes: concurrent increments never repeat a number.
pub fn incremented_settings_give_every_caller_its_own_number(b: &dyn Backend) {
    let mut s = b.open();
    assert!(s.put_setting_if_absent("secret", &json!("first")).unwrap());
    assert!(!s.put_setting_if_absent("secret", &json!("second")).unwrap());
    assert_eq!(s.get_setting("secret").unwrap(), Some(json!("first")));
    assert_eq!(s.increment_setting("segment_version/a").unwrap(), 1);
    assert_eq!(s.increment_setting("segment_version/a").unwrap(), 2);
    s.put_setting("segment_version/b", Some(&json!(41)))
        .unwrap();
    assert_eq!(s.increment_setting("segment_version/b").unwrap(), 42);
    assert_eq!(s.get_setting("segment_version/b").unwrap(), Some(json!(42)));
    let stores: Vec<_> = (0..4).map(|_| b.open()).collect();
    let threads: Vec<_> = stores
        .into_iter()
        .map(|mut st| {
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| st.increment_setting("segment_version/c").unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<u64>>());
}

/// One holder at a time; renewing keeps the token, a new holder gets a
/// larger one, and a commit fenced with an old token writes nothing.
pub fn a_lease_has_one_holder_and_its_token_fences_commits(b: &dyn Backend) {
    use siyu_store::{AutomationCommit, ConsentRow, Fence, StoreError};
    let mut a = b.open();
    let mut other = b.open();
    assert_eq!(a.lease("automation").unwrap(), None);
    let t1 = a
        .acquire_lease("automation", "node-a", 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        other.acquire_lease("automation", "node-b", 60_000).unwrap(),
        None
    );
    assert_eq!(
        a.acquire_lease("automation", "node-a", 60_000).unwrap(),
        Some(t1)
    );
    let held = other.lease("automation").unwrap().unwrap();
    assert_eq!((held.holder.as_str(), held.token), ("node-a", t1));
    assert!(
        held.remaining_ms > 50_000 && held.remaining_ms <= 60_000,
        "{held:?}"
    );
    // Another lease name is independent.
    assert!(other
        .acquire_lease("other", "node-b", 60_000)
        .unwrap()
        .is_some());

    let consent = |identity: &str| ConsentRow {
        ts: 1,
        identity: identity.into(),
        channel: None,
        granted: false,
        source: "api".into(),
    };
    let fenced = |token: u64, identity: &str| AutomationCommit {
        consent: vec![consent(identity)],
        fence: Some(Fence {
            lease: "automation".into(),
            token,
        }),
        ..Default::default()
    };
    a.automation_commit(&fenced(t1, "user:kept")).unwrap();

    // A release lets the other node in at once, under a larger token.
    other.release_lease("automation", "node-b").unwrap(); // not its lease: nothing
    assert_eq!(
        other.acquire_lease("automation", "node-b", 60_000).unwrap(),
        None
    );
    a.release_lease("automation", "node-a").unwrap();
    let t2 = other
        .acquire_lease("automation", "node-b", 60_000)
        .unwrap()
        .unwrap();
    assert!(t2 > t1, "{t2} > {t1}");
    match a.automation_commit(&fenced(t1, "user:lost")) {
        Err(StoreError::Fenced(m)) => assert!(m.contains(&t2.to_string()), "{m}"),
        other => panic!("the old holder's commit was not fenced: {other:?}"),
    }
    let fresh = AutomationCommit {
        fence: Some(Fence {
            lease: "never-taken".into(),
            token: 1,
        }),
        ..fenced(t1, "user:lost")
    };
    assert!(matches!(
        a.automation_commit(&fresh),
        Err(StoreError::Fenced(_))
    ));
    other.automation_commit(&fenced(t2, "user:new")).unwrap();
    let ledger: Vec<String> = a
        .consent_ledger(None)
        .unwrap()
        .into_iter()
        .map(|r| r.identity)
        .collect();
    assert_eq!(ledger, ["user:kept", "user:new"]);

    // An expired lease is free; its old holder taking it back gets a new token.
    assert_eq!(
        other.acquire_lease("automation", "node-b", 0).unwrap(),
        Some(t2)
    );
    let t3 = a
        .acquire_lease("automation", "node-a", 60_000)
        .unwrap()
        .unwrap();
    assert!(t3 > t2);
    assert!(other.lease("automation").unwrap().unwrap().remaining_ms > 0);
}

pub fn log_anchor_is_the_newest_stored_event_at_or_below(b: &dyn Backend) {
    let mut s = b.open();
    assert_eq!(s.log_anchor(5).unwrap(), None, "an empty log");
    let events = with_ids(&sample(), "anchor");
    s.append(&events).unwrap();
    let anchor = |s: &mut Box<dyn Store>, offset| {
        s.log_anchor(offset)
            .unwrap()
            .map(|a| (a.offset, a.event_id.unwrap_or_default()))
    };
    assert_eq!(anchor(&mut s, 0), None);
    assert_eq!(anchor(&mut s, 3), Some((3, "anchor2".to_string())));
    assert_eq!(anchor(&mut s, 100), Some((8, "anchor7".to_string())));
    // The newest events erased: the one below them names the same point.
    s.erase(
        &[id("wecom:wm2"), id("offline:p1")],
        "erased:t",
        &erase_audit(),
    )
    .unwrap();
    assert_eq!(anchor(&mut s, 8), Some((6, "anchor5".to_string())));
    // Events stored without a client id are named by their content id.
    let mut s = b.open();
    let plain = ev(json!({"ts":1790000900,"identity":"douyin:plain","type":"touch"}));
    s.append(std::slice::from_ref(&plain)).unwrap();
    let stored = s.log_anchor(9).unwrap().unwrap();
    assert_eq!(stored.offset, 9);
    assert!(stored.event_id.unwrap().starts_with("c:"));
}

/// What a snapshot of the log up to `offset` says, as a node would write it.
fn snapshot_info(s: &mut dyn Store, offset: u64) -> siyu_store::SnapshotInfo {
    siyu_store::SnapshotInfo {
        log_offset: offset,
        erasures: siyu_store::erasures(s).unwrap(),
        anchor: s.log_anchor(offset).unwrap(),
        created_at: 1_790_000_000 + offset as i64,
    }
}

/// `n` bytes that differ from part to part.
fn snapshot_bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8 ^ seed)
        .collect()
}

pub fn snapshots_round_trip_in_parts_and_only_the_newest_are_kept(b: &dyn Backend) {
    let mut s = b.open();
    assert!(s.snapshots().unwrap().is_empty());
    s.append(&sample()).unwrap();
    // Two whole parts and a piece of a third.
    let bytes = snapshot_bytes(2 * siyu_store::SNAPSHOT_PART + 12_345, 1);
    let info = snapshot_info(s.as_mut(), 4);
    let stored = s
        .put_snapshot(&info, &mut bytes.as_slice())
        .unwrap()
        .expect("the first snapshot is kept");
    assert_eq!(
        (stored.info.clone(), stored.len),
        (info, bytes.len() as u64)
    );
    assert_eq!(stored.sha256.len(), 64);
    // Another connection (another node) lists and reads it.
    let mut other = b.open();
    assert_eq!(other.snapshots().unwrap(), vec![stored.clone()]);
    assert!(other.read_snapshot(stored.id).unwrap() == Some(bytes.clone()));
    // Not newer than what is stored: not kept.
    for offset in [4, 3] {
        let older = snapshot_info(s.as_mut(), offset);
        assert_eq!(s.put_snapshot(&older, &mut &b"older"[..]).unwrap(), None);
    }
    // Newer ones are; the newest SNAPSHOTS_KEPT stay, newest first.
    let mut ids = vec![stored.id];
    for offset in [6, 8] {
        let newer = snapshot_bytes(1000 + offset as usize, offset as u8);
        let info = snapshot_info(s.as_mut(), offset);
        let kept = s
            .put_snapshot(&info, &mut newer.as_slice())
            .unwrap()
            .unwrap();
        assert!(kept.id > *ids.last().unwrap());
        assert_eq!(s.read_snapshot(kept.id).unwrap(), Some(newer));
        ids.push(kept.id);
    }
    let listed = other.snapshots().unwrap();
    assert_eq!(siyu_store::SNAPSHOTS_KEPT, 2);
    let offsets: Vec<u64> = listed.iter().map(|l| l.info.log_offset).collect();
    assert_eq!(offsets, [8, 6]);
    assert_eq!(other.read_snapshot(ids[0]).unwrap(), None, "pruned");
    // An empty snapshot round-trips too, and everything survives reopening.
    let mut s = b.open();
    s.append(&[ev(
        json!({"ts":1790000900,"identity":"douyin:z","type":"touch"}),
    )])
    .unwrap();
    let info = snapshot_info(s.as_mut(), 9);
    let empty = s.put_snapshot(&info, &mut &b""[..]).unwrap().unwrap();
    assert_eq!(b.open().read_snapshot(empty.id).unwrap(), Some(Vec::new()));
    assert_eq!(s.delete_snapshots().unwrap(), 2);
    assert!(b.open().snapshots().unwrap().is_empty());
}

pub fn a_snapshot_is_kept_only_while_no_erasure_committed(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let before = snapshot_info(s.as_mut(), 8);
    s.put_snapshot(&before, &mut &b"holds douyin:y"[..])
        .unwrap()
        .expect("stored");
    // Another node erases: the stored one goes, and one of an engine built
    // before the erasure is refused.
    let mut other = b.open();
    other
        .erase(&[id("douyin:y")], "erased:t", &erase_audit())
        .unwrap();
    assert!(s.snapshots().unwrap().is_empty());
    assert_eq!(
        s.put_snapshot(&before, &mut &b"holds douyin:y"[..])
            .unwrap(),
        None
    );
    let after = snapshot_info(s.as_mut(), 8);
    assert_eq!(after.erasures, before.erasures + 1);
    let kept = s.put_snapshot(&after, &mut &b"rebuilt"[..]).unwrap();
    assert_eq!(kept.map(|k| k.info), Some(after));
}

/// A reader that hands out `bytes` in `step`-byte reads and calls `pause`
/// once, after the first.
struct Pausing<'a, F: FnMut()> {
    bytes: &'a [u8],
    step: usize,
    pause: Option<F>,
}

impl<F: FnMut()> std::io::Read for Pausing<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        if n > 0 {
            if let Some(mut pause) = self.pause.take() {
                pause();
            }
        }
        Ok(n)
    }
}

pub fn an_erasure_during_a_snapshot_store_leaves_no_snapshot(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let info = snapshot_info(s.as_mut(), 8);
    let bytes = snapshot_bytes(3 * siyu_store::SNAPSHOT_PART, 7);
    // Opened first: on SQLite opening waits for the store's write lock.
    let mut other = Some(b.open());
    std::thread::scope(|scope| {
        let mut eraser = None;
        let mut reader = Pausing {
            bytes: &bytes,
            step: siyu_store::SNAPSHOT_PART,
            // Midway through the store, another node erases: on PostgreSQL
            // it commits at once, on SQLite it waits for the store's commit.
            pause: Some(|| {
                let mut other = other.take().expect("paused once");
                eraser = Some(scope.spawn(move || {
                    other
                        .erase(&[id("douyin:y")], "erased:t", &erase_audit())
                        .unwrap()
                }));
                std::thread::sleep(std::time::Duration::from_millis(300));
            }),
        };
        s.put_snapshot(&info, &mut reader).unwrap();
        // The reader's last use ends its borrow of `eraser`.
        eraser.expect("paused once").join().unwrap();
    });
    assert_eq!(siyu_store::erasures(s.as_mut()).unwrap(), info.erasures + 1);
    assert!(
        b.open().snapshots().unwrap().is_empty(),
        "a snapshot of the engine before the erasure outlived it"
    );
}

pub fn a_damaged_stored_snapshot_is_refused_on_read(b: &dyn Backend) {
    let mut s = b.open();
    s.append(&sample()).unwrap();
    let bytes = snapshot_bytes(siyu_store::SNAPSHOT_PART + 10, 3);
    let info = snapshot_info(s.as_mut(), 8);
    let stored = s
        .put_snapshot(&info, &mut bytes.as_slice())
        .unwrap()
        .unwrap();
    b.execute("UPDATE engine_snapshot_parts SET data = data || data WHERE part = 1");
    let err = b.open().read_snapshot(stored.id).unwrap_err();
    assert!(matches!(err, siyu_store::StoreError::Corrupt(_)), "{err:?}");
    // Same length, other bytes.
    b.execute("DELETE FROM engine_snapshot_parts WHERE part = 1");
    let mut other = b.open();
    let same_len = snapshot_bytes(10, 4);
    let sql_bytes: String = same_len.iter().map(|b| format!("{b:02x}")).collect();
    let literal = if b.name() == "postgres" {
        format!("'\\x{sql_bytes}'::bytea")
    } else {
        format!("X'{sql_bytes}'")
    };
    b.execute(&format!(
        "INSERT INTO engine_snapshot_parts (snapshot, part, data) VALUES ({}, 1, {literal})",
        stored.id
    ));
    let err = other.read_snapshot(stored.id).unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
}
