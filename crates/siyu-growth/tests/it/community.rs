//! Communities without HTTP: routing a newcomer (capacity counting members
//! and live seats, working hours, the daily cap and the backup operator,
//! revisits, seats expiring), the least-loaded owner, hand-over planning
//! (max_groups, spreading persons, chunks) and the SOP calendar planner
//! (what is due at a time, never twice). Stored state lives in an
//! in-memory SQLite store, as the server keeps it.

use serde_json::{json, Value};
use siyu_domain::parse_json_event;
use siyu_engine::Engine;
use siyu_growth::community::calendar::{self, CalendarEntry};
use siyu_growth::community::livecode::{self, RoutingInputs};
use siyu_growth::community::{
    groups, handover, operators, CommunityError, GroupInput, LiveCode, OperatorInput,
    OperatorStatus, Target, HANDOVER_CHUNK, MISSED_AFTER, RESERVATION_TTL,
};
use siyu_store::{SqliteStore, Store};
use std::collections::{BTreeMap, HashMap, HashSet};

/// 2026-01-05T10:00:00Z, a Monday.
const T0: i64 = 1_767_607_200;

fn store() -> Box<dyn Store> {
    Box::new(SqliteStore::open_in_memory().expect("an in-memory SQLite store"))
}

/// An engine that applied `events` (JSON wire events) in order.
fn engine(events: &[Value]) -> Engine {
    let mut e = Engine::new();
    for (i, v) in events.iter().enumerate() {
        let ev = parse_json_event(v).unwrap_or_else(|err| panic!("{v}: {err}"));
        e.apply(i as u64 + 1, &ev);
    }
    e.start_live(T0);
    e
}

fn join(identity: &str, group: &str) -> Value {
    json!({"ts": T0 - 60, "identity": identity, "type": "join_group", "group": group})
}

fn operator(store: &mut dyn Store, login: &str, max_groups: u32) {
    let input = OperatorInput {
        max_groups: Some(max_groups),
        ..OperatorInput::default()
    };
    operators::save_operator(store, login, input, T0).expect("operator saved");
}

fn group(store: &mut dyn Store, id: &str, capacity: u32, owner: Option<&str>) {
    let input: GroupInput = serde_json::from_value(
        json!({"channel": "wecom", "capacity": capacity, "owner": owner, "url": format!("https://g/{id}")}),
    )
    .expect("a group body");
    groups::save_group(store, id, input, T0, &mut Vec::new()).expect("group saved");
}

fn code(store: &mut dyn Store, id: &str, body: Value) {
    let code: LiveCode = serde_json::from_value(body).expect("a live code body");
    livecode::save_livecode(store, id, code, "template/", &mut Vec::new()).expect("code saved");
}

/// One claimed (or anonymous) visit the way the server runs it: load,
/// observe, route, reserve.
fn visit(
    store: &mut dyn Store,
    engine: &Engine,
    code_id: &str,
    who: Option<&str>,
    at: i64,
) -> Result<livecode::Routed, CommunityError> {
    let mut inputs = RoutingInputs::load(store, code_id, at, &mut Vec::new())?;
    inputs.observe(store, engine, who, at)?;
    let routed = livecode::route_newcomer(&inputs, who, at)?;
    livecode::reserve(store, &mut inputs, &routed, who, at)?;
    Ok(routed)
}

fn target(r: &Result<livecode::Routed, CommunityError>) -> Target {
    r.as_ref().expect("routed").target.clone()
}

#[test]
fn a_newcomer_fills_each_group_to_capacity_counting_members_and_seats_then_conflicts() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    group(s, "g1", 2, None);
    group(s, "g2", 1, None);
    code(
        s,
        "c",
        json!({"targets": [{"group": "g1"}, {"group": "g2"}]}),
    );
    let e = engine(&[join("wecom:m1", "g1")]);

    // g1 has one member: one seat left.
    let b = visit(s, &e, "c", Some("wecom:b"), T0);
    assert_eq!(target(&b), Target::Group("g1".into()));
    assert_eq!(b.as_ref().unwrap().url.as_deref(), Some("https://g/g1"));
    // An anonymous visitor is shown g2 (g1 is full with b's seat) and takes nothing.
    assert_eq!(
        target(&visit(s, &e, "c", None, T0)),
        Target::Group("g2".into())
    );
    let c = visit(s, &e, "c", Some("wecom:c"), T0);
    assert_eq!(target(&c), Target::Group("g2".into()));
    // Everything is full now; the conflict says why for each target.
    match visit(s, &e, "c", Some("wecom:d"), T0) {
        Err(CommunityError::Conflict(m)) => {
            assert!(
                m.contains("group g1 is full (2/2), group g2 is full (1/1)"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A revisit gets the same group again and counts nothing twice.
    let again = visit(s, &e, "c", Some("wecom:b"), T0 + 5).expect("routed");
    assert!(again.again);
    assert_eq!(again.target, Target::Group("g1".into()));
    // A member of a target group is a revisit too.
    assert!(visit(s, &e, "c", Some("wecom:m1"), T0).unwrap().again);
}

#[test]
fn seats_expire_after_the_ttl_or_when_their_person_joins() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    group(s, "g1", 1, None);
    code(s, "c", json!({"targets": [{"group": "g1"}]}));
    let empty = engine(&[]);
    assert_eq!(
        target(&visit(s, &empty, "c", Some("wecom:a"), T0)),
        Target::Group("g1".into())
    );
    assert!(matches!(
        visit(s, &empty, "c", Some("wecom:b"), T0 + RESERVATION_TTL - 1),
        Err(CommunityError::Conflict(_))
    ));
    // The seat expired: b gets it.
    assert_eq!(
        target(&visit(
            s,
            &empty,
            "c",
            Some("wecom:b"),
            T0 + RESERVATION_TTL
        )),
        Target::Group("g1".into())
    );
    // b joined: the seat became a member, the group is still full.
    let joined = engine(&[join("wecom:b", "g1")]);
    let seats = groups::live_reservations(s, &joined, "g1", T0 + RESERVATION_TTL + 1).unwrap();
    assert!(seats.is_empty(), "{seats:?}");
    assert!(matches!(
        visit(s, &joined, "c", Some("wecom:c"), T0 + RESERVATION_TTL + 1),
        Err(CommunityError::Conflict(_))
    ));
    // The pure rule alone.
    let mut r = BTreeMap::from([("x".to_string(), T0), ("y".to_string(), T0 + 10)]);
    assert!(groups::tidy_reservations(
        &mut r,
        T0 + RESERVATION_TTL,
        |w| w == "y"
    ));
    assert!(r.is_empty());
}

#[test]
fn outside_working_hours_or_over_the_daily_cap_the_backup_operator_takes_newcomers() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    operator(s, "bob", 7);
    // On duty 09:00–18:00 UTC, one newcomer per operator a day.
    code(
        s,
        "c",
        json!({"targets": [{"operator": "amy"}], "backup_operator": "bob",
               "daily_cap_per_operator": 1,
               "working_hours": {"start": "09:00", "end": "18:00", "timezone": "UTC"}}),
    );
    let e = engine(&[]);
    let night = T0 + 10 * 3600; // 20:00 UTC
    let r = visit(s, &e, "c", Some("wecom:n"), night).unwrap();
    assert_eq!((r.target, r.backup), (Target::Operator("bob".into()), true));
    let r = visit(s, &e, "c", Some("wecom:a"), T0).unwrap();
    assert_eq!(
        (r.target, r.backup),
        (Target::Operator("amy".into()), false)
    );
    // amy reached the cap for today: the backup again; a revisit keeps amy.
    let r = visit(s, &e, "c", Some("wecom:b"), T0 + 60).unwrap();
    assert_eq!((r.target, r.backup), (Target::Operator("bob".into()), true));
    let r = visit(s, &e, "c", Some("wecom:a"), T0 + 120).unwrap();
    assert_eq!((r.target, r.again), (Target::Operator("amy".into()), true));
    // The next day the count starts again.
    let r = visit(s, &e, "c", Some("wecom:c"), T0 + 86_400).unwrap();
    assert_eq!(
        (r.target, r.backup),
        (Target::Operator("amy".into()), false)
    );
    // An operator who handed over routes to their successor.
    let mut amy = operators::load_operators(s, &mut Vec::new()).unwrap()["amy"].clone();
    amy.status = OperatorStatus::Left;
    amy.handed_to = Some("bob".into());
    let mut inputs = RoutingInputs::load(s, "c", T0 + 2 * 86_400, &mut Vec::new()).unwrap();
    inputs.operators.insert("amy".into(), amy);
    let r = livecode::route_newcomer(&inputs, Some("wecom:z"), T0 + 2 * 86_400).unwrap();
    assert_eq!(
        (r.target, r.backup),
        (Target::Operator("bob".into()), false)
    );
}

#[test]
fn new_groups_go_to_the_least_loaded_operator_under_max_groups() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 1);
    operator(s, "bob", 2);
    group(s, "g1", 10, None);
    group(s, "g2", 10, None);
    group(s, "g3", 10, None);
    let owners: Vec<String> = groups::load_groups(s, &mut Vec::new())
        .unwrap()
        .into_values()
        .map(|g| g.owner)
        .collect();
    assert_eq!(owners, ["amy", "bob", "bob"]);
    let err = groups::save_group(
        s,
        "g4",
        serde_json::from_value(json!({"channel": "wecom"})).unwrap(),
        T0,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CommunityError::Conflict(ref m) if m.starts_with("owner: no active operator")),
        "{err}"
    );
    let err = groups::save_group(
        s,
        "g4",
        serde_json::from_value(json!({"channel": "wecom", "owner": "amy"})).unwrap(),
        T0,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("already owns 1 active groups (max_groups 1)"),
        "{err}"
    );
}

#[test]
fn a_handover_plan_respects_max_groups_spreads_persons_and_chunks_events() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    for g in ["g1", "g2", "g3"] {
        group(s, g, 10, Some("amy"));
    }
    operator(s, "bob", 1);
    operator(s, "cat", 2);
    let ops = operators::load_operators(s, &mut Vec::new()).unwrap();
    let defs = groups::load_groups(s, &mut Vec::new()).unwrap();
    let owned: Vec<String> = (0..3).map(|i| format!("wecom:p{i}")).collect();
    let loads = HashMap::from([("bob".to_string(), 1u64)]);
    let plan = handover::plan(
        &ops,
        &defs,
        "amy",
        None,
        false,
        OperatorStatus::Left,
        owned,
        loads,
        T0,
    )
    .expect("a plan");
    // bob takes one group (max_groups 1), cat the other two.
    assert_eq!(
        plan.group_moves,
        [("g1", "bob"), ("g2", "cat"), ("g3", "cat")].map(|(g, o)| (g.to_string(), o.to_string()))
    );
    // Persons go to whoever has fewest: cat, then bob and cat in turn.
    let to: Vec<&str> = plan.person_moves.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(to, ["cat", "bob", "cat"]);
    // One group more than the others can take: a conflict naming it.
    group(s, "g0", 10, Some("amy"));
    let defs = groups::load_groups(s, &mut Vec::new()).unwrap();
    let err = handover::plan(
        &ops,
        &defs,
        "amy",
        None,
        false,
        OperatorStatus::Left,
        vec![],
        HashMap::new(),
        T0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("to take group `g3`"), "{err}");
    // An explicit receiver over its limit: a conflict naming it, its
    // max_groups and what it would own …
    let err = handover::plan(
        &ops,
        &defs,
        "amy",
        Some("bob"),
        false,
        OperatorStatus::Banned,
        vec![],
        HashMap::new(),
        T0,
    )
    .unwrap_err();
    let m = err.to_string();
    assert!(
        m.contains("`bob` has max_groups 1 and would own 4 groups") && m.contains("force"),
        "{m}"
    );
    // … unless forced: then it takes everything, whatever its limit.
    let plan = handover::plan(
        &ops,
        &defs,
        "amy",
        Some("bob"),
        true,
        OperatorStatus::Banned,
        vec![],
        HashMap::new(),
        T0,
    )
    .unwrap();
    assert!(plan.group_moves.iter().all(|(_, o)| o == "bob"));
    for (to, want) in [
        ("amy", "to: hand over to someone else"),
        ("zed", "to: no operator `zed`"),
    ] {
        let err = handover::plan(
            &ops,
            &defs,
            "amy",
            Some(to),
            false,
            OperatorStatus::Left,
            vec![],
            HashMap::new(),
            T0,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with(want), "{err}");
    }
    // Persons in chunks of HANDOVER_CHUNK; an id that no longer parses is skipped.
    let mut many: Vec<String> = (0..HANDOVER_CHUNK + 1)
        .map(|i| format!("wecom:q{i}"))
        .collect();
    many.push("not an identity".into());
    let plan = handover::plan(
        &ops,
        &defs,
        "amy",
        Some("cat"),
        true,
        OperatorStatus::Left,
        many,
        HashMap::new(),
        T0,
    )
    .unwrap();
    let (chunks, skipped) = plan.person_events();
    assert_eq!(
        chunks.iter().map(Vec::len).collect::<Vec<_>>(),
        [HANDOVER_CHUNK, 1]
    );
    assert_eq!(skipped, 1);
    let first = &chunks[0][0];
    assert_eq!(
        first.id.as_deref(),
        Some(format!("handover/amy/{T0}/wecom:q0").as_str())
    );
    let traits = first.traits.as_ref().unwrap();
    assert_eq!(traits.extra["operator"], json!("cat"));
    assert_eq!(traits.extra["previous_operator"], json!("amy"));
}

#[test]
fn a_handover_commits_the_operator_the_groups_and_one_audit_record() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    operator(s, "bob", 7);
    group(s, "g1", 10, Some("amy"));
    let e = engine(&[
        json!({"ts": T0, "identity": "wecom:p", "type": "identify", "traits": {"operator": "amy"}}),
    ]);
    let (owned, loads) = handover::owned_persons(&e, "amy");
    assert_eq!(owned, ["wecom:p"]);
    let ops = operators::load_operators(s, &mut Vec::new()).unwrap();
    let defs = groups::load_groups(s, &mut Vec::new()).unwrap();
    let plan = handover::plan(
        &ops,
        &defs,
        "amy",
        None,
        false,
        OperatorStatus::Banned,
        owned,
        loads,
        T0 + 1,
    )
    .unwrap();
    handover::mark_operator(s, &ops, &plan).unwrap();
    let report = plan.report(Some("left the company".into()), 1, 0);
    handover::finish(s, &plan, &report).unwrap();
    let amy = &operators::load_operators(s, &mut Vec::new()).unwrap()["amy"];
    assert_eq!(
        (amy.status, amy.handed_to.as_deref()),
        (OperatorStatus::Banned, None)
    );
    let g1 = groups::load_group(s, "g1").unwrap();
    assert_eq!(g1.owner, "bob");
    assert_eq!(g1.owner_history.last().unwrap().reason, "handover (banned)");
    let audit = s.audit_log(10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "operator_handover");
    assert_eq!(
        audit[0].detail,
        json!({"to": null, "status": "banned", "reason": "left the company", "persons": 1,
               "persons_skipped": 0, "groups": 1, "persons_to": {"bob": 1}, "groups_to": {"bob": ["g1"]}})
    );
}

fn entry(id: &str, at: i64) -> CalendarEntry {
    CalendarEntry {
        id: id.into(),
        at,
        template: "t".into(),
        data: json!({"x": 1}),
    }
}

#[test]
fn the_calendar_planner_posts_what_is_due_once_and_reports_the_missed() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    group(s, "g1", 10, None);
    s.put_setting("template/t", Some(&json!({"body": "hi"})))
        .unwrap();
    let entries = vec![
        entry("past", T0 - 60),
        entry("soon", T0 + 60),
        entry("long-ago", T0 - MISSED_AFTER - 1),
    ];
    assert_eq!(
        calendar::save_calendar(s, "g1", &entries, "template/").unwrap(),
        3
    );
    // Due at T0: only `past`, with the group's data added.
    let due = calendar::due_posts(s, T0, &mut Vec::new()).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, "sop/g1/past");
    assert_eq!(
        (due[0].group.as_str(), due[0].channel.as_str()),
        ("g1", "wecom")
    );
    assert_eq!(
        due[0].data,
        json!({"x": 1, "group": "g1", "group_name": "g1", "entry": "past"})
    );
    // Never twice: what the outbox holds is not due again.
    let def = groups::load_group(s, "g1").unwrap();
    let mut posted: HashSet<String> = HashSet::new();
    for at in [T0, T0 + 15, T0 + 60, T0 + 75] {
        let due = calendar::plan_due("g1", &def, entries.clone(), at, |k| Ok(posted.contains(k)))
            .unwrap();
        posted.extend(due.into_iter().map(|p| p.key));
    }
    let mut all: Vec<_> = posted.into_iter().collect();
    all.sort();
    assert_eq!(all, ["sop/g1/past", "sop/g1/soon"]);
    let mut calls = 0;
    let due = calendar::plan_due("g1", &def, entries.clone(), T0 + 75, |_| {
        calls += 1;
        Ok(true)
    })
    .unwrap();
    assert!(due.is_empty());
    assert_eq!(calls, 2);
    // The status view: due, scheduled, missed.
    let st: Vec<(String, String)> = calendar::calendar_status(s, "g1", T0)
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.status))
        .collect();
    assert_eq!(
        st,
        [
            ("past", "due"),
            ("soon", "scheduled"),
            ("long-ago", "missed")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // An archived group posts nothing; an unreadable calendar is skipped, not fatal.
    let mut archived = def.clone();
    archived.archived = true;
    assert!(
        calendar::plan_due("g1", &archived, entries, T0, |_| Ok(false))
            .unwrap()
            .is_empty()
    );
    group(s, "g2", 10, None);
    s.put_setting("group/g2/calendar", Some(&json!({"not": "a list"})))
        .unwrap();
    let mut skipped = Vec::new();
    assert_eq!(calendar::due_posts(s, T0, &mut skipped).unwrap().len(), 1);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].key, "group/g2/calendar");
}

#[test]
fn calendar_bodies_are_checked_entry_by_entry() {
    let cases = [
        (json!([1]), "[0]: an entry is an object"),
        (
            json!([{"id": "a", "at": T0, "template": "t", "extra": 1}]),
            "[0].extra: unknown field",
        ),
        (
            json!([{"id": "a/b", "at": T0, "template": "t"}]),
            "[0].id: \"a/b\" must be",
        ),
        (
            json!([{"id": "a", "at": T0, "template": "t"}, {"id": "a", "at": T0, "template": "t"}]),
            "[1].id: `a` appears twice",
        ),
        (
            json!([{"id": "a", "at": "tomorrow", "template": "t"}]),
            "[0].at: give an RFC 3339 time",
        ),
        (json!([{"id": "a", "at": 5, "template": "t"}]), "[0].at:"),
        (
            json!([{"id": "a", "at": T0}]),
            "[0].template: the name of a template",
        ),
        (
            json!([{"id": "a", "at": T0, "template": "t", "data": [1]}]),
            "[0].data: an object",
        ),
    ];
    for (body, want) in cases {
        let raw: Vec<Value> = serde_json::from_value(body.clone()).unwrap();
        match calendar::parse_entries(&raw) {
            Err(CommunityError::Invalid(m)) => assert!(m.starts_with(want), "{body}: {m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let ok = calendar::parse_entries(&[
        json!({"id": "a", "at": "2026-11-11T20:00:00+08:00", "template": "t"}),
    ])
    .unwrap();
    assert_eq!(ok[0].at, 1_794_398_400);
}

#[test]
fn a_groups_capacity_is_bounded_by_its_channels_limit() {
    let check = |channel: &str, capacity: u32| {
        let input: GroupInput =
            serde_json::from_value(json!({"channel": channel, "capacity": capacity}))
                .expect("a group body");
        groups::check_group_input(&input).map_err(|e| e.to_string())
    };
    // A WeCom customer group holds at most 500.
    assert_eq!(check("wecom", 500), Ok(500));
    let e = check("wecom", 600).unwrap_err();
    for says in ["capacity", "600", "500", "wecom"] {
        assert!(e.contains(says), "{says} in {e}");
    }
    // The table names the limit of each channel it knows.
    assert_eq!(groups::channel_capacity("wecom"), 500);
    assert!(check("wechat", 501).is_err());
    // A channel without its own limit takes up to MAX_CAPACITY.
    assert_eq!(check("telegram", 600), Ok(600));
    let e = check("telegram", groups::MAX_CAPACITY + 1).unwrap_err();
    assert!(e.contains("capacity") && e.contains("telegram"), "{e}");
}

/// A WeCom-backed live code: a 「联系我」 for operators, a join way for at
/// most five WeCom groups; its id must fit WeCom's 30-character `state`;
/// mixing, six groups, or a group of another channel are refused naming
/// the field. Without the backing, nothing is asked of WeCom.
#[test]
fn a_wecom_backing_is_a_contact_way_or_a_join_way_and_fits_wecom_s_limits() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    operator(s, "bob", 7);
    for g in ["w1", "w2", "w3", "w4", "w5", "w6"] {
        group(s, g, 10, Some("amy"));
    }
    let input: GroupInput =
        serde_json::from_value(json!({"channel": "douyin", "owner": "amy"})).unwrap();
    groups::save_group(s, "dy", input, T0, &mut Vec::new()).unwrap();
    let body = |v: Value| -> LiveCode { serde_json::from_value(v).expect("a live code body") };
    let ops =
        body(json!({"targets": [{"operator": "amy"}, {"operator": "bob"}], "backing": "wecom"}));
    assert_eq!(
        ops.wecom_members("spring").unwrap(),
        Some((
            livecode::WeComWayKind::ContactWay,
            vec!["amy".to_string(), "bob".to_string()]
        ))
    );
    let five = body(
        json!({"targets": [{"group": "w1"}, {"group": "w2"}, {"group": "w3"}, {"group": "w4"}, {"group": "w5"}], "backing": "wecom"}),
    );
    assert_eq!(
        five.wecom_members("g").unwrap().map(|(k, m)| (k, m.len())),
        Some((livecode::WeComWayKind::JoinWay, 5))
    );
    livecode::check_references(s, "g", &five, "template/", &mut Vec::new()).unwrap();
    let plain = body(json!({"targets": [{"operator": "amy"}]}));
    assert_eq!(plain.wecom_members(&"x".repeat(64)).unwrap(), None);

    let refused = |id: &str, code: &LiveCode| -> String {
        match code.wecom_members(id) {
            Err(CommunityError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        }
    };
    assert!(refused(&"x".repeat(31), &ops).starts_with("id:"));
    let six = body(
        json!({"targets": [{"group": "w1"}, {"group": "w2"}, {"group": "w3"}, {"group": "w4"}, {"group": "w5"}, {"group": "w6"}], "backing": "wecom"}),
    );
    assert!(refused("g", &six).contains("at most 5 groups"));
    let mixed =
        body(json!({"targets": [{"operator": "amy"}, {"group": "w1"}], "backing": "wecom"}));
    assert!(refused("m", &mixed).starts_with("targets:"));
    let douyin = body(json!({"targets": [{"group": "dy"}], "backing": "wecom"}));
    match livecode::check_references(s, "d", &douyin, "template/", &mut Vec::new()) {
        Err(CommunityError::Invalid(m)) => {
            assert!(
                m.starts_with("targets[0].group") && m.contains("douyin"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// The WeCom side of a hand-over: every `wecom:` identity of each moving
/// person (not only the canonical one) with its new owner, and the WeCom
/// groups only.
#[test]
fn a_handover_s_wecom_moves_are_the_persons_wecom_ids_and_the_wecom_groups() {
    let mut s = store();
    let s = s.as_mut();
    operator(s, "amy", 7);
    operator(s, "bob", 7);
    group(s, "wrG1", 10, Some("amy"));
    let input: GroupInput =
        serde_json::from_value(json!({"channel": "douyin", "owner": "amy"})).unwrap();
    groups::save_group(s, "dy", input, T0, &mut Vec::new()).unwrap();
    let e = engine(&[
        json!({"ts": T0, "identity": "phone_hmac:aa", "type": "identify", "traits": {"operator": "amy"}}),
        json!({"ts": T0, "identity": "wecom:wmA", "type": "identify", "ref": "phone_hmac:aa"}),
        json!({"ts": T0, "identity": "douyin:d1", "type": "identify", "traits": {"operator": "amy"}}),
    ]);
    let (owned, loads) = handover::owned_persons(&e, "amy");
    let ops = operators::load_operators(s, &mut Vec::new()).unwrap();
    let defs = groups::load_groups(s, &mut Vec::new()).unwrap();
    let plan = handover::plan(
        &ops,
        &defs,
        "amy",
        Some("bob"),
        true,
        OperatorStatus::Left,
        owned,
        loads,
        T0 + 1,
    )
    .unwrap();
    let moves = handover::wecom_moves(&e, &defs, &plan);
    assert_eq!(moves.customers, [("wmA".to_string(), "bob".to_string())]);
    assert_eq!(moves.chats, [("wrG1".to_string(), "bob".to_string())]);
}
