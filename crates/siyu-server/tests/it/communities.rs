//! Communities: groups with capacity filled through a live code, working
//! hours and the backup operator, least-loaded owners, the hand-over,
//! group health from the log, the SOP calendar posted once, and the rate
//! limit on the public link.

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use siyu_domain::time::format_rfc3339;
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn put(t: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    t.send("PUT", path, body).await
}

async fn post(t: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    t.send("POST", path, body).await
}

/// The claim token the channel gets (with a key) for a newcomer it knows.
async fn claim(t: &TestApp, code: &str, identity: &str) -> String {
    let (s, b) = post(
        t,
        &format!("/v1/livecodes/{code}/claims"),
        json!({ "identity": identity }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/l/{code}?claim={}", b["claim"].as_str().unwrap())),
        "{b}"
    );
    b["claim"].as_str().unwrap().to_string()
}

/// The public link, without a key, with the newcomer's claim.
async fn visit(t: &TestApp, code: &str, identity: &str) -> (StatusCode, Value) {
    let token = claim(t, code, identity).await;
    t.call(
        "GET",
        &format!("/l/{code}?claim={token}"),
        None,
        "application/json",
        Body::empty(),
    )
    .await
}

/// A public request from `peer`, as the server sees a connection.
fn from_peer(uri: &str, peer: &str) -> Request<Body> {
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    Request::builder()
        .uri(uri)
        .extension(axum::extract::ConnectInfo(addr))
        .body(Body::empty())
        .unwrap()
}

async fn operators(t: &TestApp, logins: &[&str]) {
    for l in logins {
        let (s, b) = put(t, &format!("/v1/operators/{l}"), json!({"name": l})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_live_code_fills_each_group_to_capacity_then_the_next_then_answers_409() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice"]).await;
    for g in ["g1", "g2"] {
        let (s, b) = put(
            &t,
            &format!("/v1/groups/{g}"),
            json!({"channel": "wecom", "capacity": 2, "url": format!("https://work.weixin.qq.com/g/{g}")}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["owner"], "alice", "{b}");
    }
    let (s, b) = put(&t, "/v1/templates/welcome", json!({"body": "欢迎入群"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(
        &t,
        "/v1/livecodes/spring",
        json!({"targets": [{"group": "g1"}, {"group": "g2"}], "auto_tags": ["spring_qr"],
               "welcome_template": "welcome", "source_channel": "douyin"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let mut went = Vec::new();
    for n in 1..=4 {
        let (s, b) = visit(&t, "spring", &format!("wecom:n{n}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        went.push(b["target"]["group"].as_str().unwrap().to_string());
        if n == 1 {
            assert_eq!(b["url"], "https://work.weixin.qq.com/g/g1", "{b}");
            assert_eq!(b["welcome"], "queued", "{b}");
        }
    }
    assert_eq!(went, ["g1", "g1", "g2", "g2"]);
    // Everything full: a clear 409 naming why.
    let (s, b) = visit(&t, "spring", "wecom:n5").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "conflict");
    let msg = b["message"].as_str().unwrap();
    assert!(
        msg.contains("group g1 is full (2/2)") && msg.contains("group g2 is full"),
        "{msg}"
    );
    // A revisit keeps its seat and takes no new one.
    let (s, b) = visit(&t, "spring", "wecom:n1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["target"]["group"].as_str(), b["again"].as_bool()),
        (Some("g1"), Some(true))
    );

    // The newcomer is tagged, and the source channel is their first touch.
    let (_, p) = t.get("/v1/persons/wecom:n1").await;
    assert_eq!(p["tags"], json!(["spring_qr"]), "{p}");
    assert_eq!(p["first_channel"], "douyin", "{p}");
    // The welcome went to the outbox under the live code's key.
    let (_, o) = t.get("/v1/outbox?person=wecom:n1").await;
    let keys: Vec<&str> = o["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["m/lc/spring/wecom:n1/wecom:n1"], "{o}");

    // Seats turn into members when they join (seen at the next look at
    // the group); the size is live.
    let (s, b) = t
        .post_events(r#"[{"ts":"2026-01-05T10:00:00Z","identity":"wecom:n1","type":"join_group","group":"g1"},
                        {"ts":"2026-01-05T10:00:00Z","identity":"wecom:n2","type":"join_group","group":"g1"}]"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, gs) = t.get("/v1/groups").await;
    let g1 = &gs["groups"][0];
    assert_eq!(
        (
            g1["id"].as_str(),
            g1["size"].as_u64(),
            g1["reserved"].as_u64(),
            g1["free"].as_u64()
        ),
        (Some("g1"), Some(2), Some(0), Some(0)),
        "{gs}"
    );
    // The list says how large a group may be per channel, so the console
    // refuses more before saving (the server refuses it too).
    assert_eq!(
        gs["capacity_limits"],
        json!({"default": 100000, "channels": {"wechat": 500, "wecom": 500}}),
        "{gs}"
    );
    // One leaves: a seat opens in g1 again.
    t.post_events(r#"[{"ts":"2026-01-06T10:00:00Z","identity":"wecom:n2","type":"leave_group","group":"g1"}]"#)
        .await;
    let (s, b) = visit(&t, "spring", "wecom:n6").await;
    assert_eq!(
        (s, b["target"]["group"].as_str()),
        (StatusCode::OK, Some("g1")),
        "{b}"
    );
}

#[tokio::test]
async fn outside_working_hours_or_over_the_daily_cap_the_backup_operator_takes_newcomers() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice", "bob"]).await;
    let hour = (now() % 86_400) / 3600;
    let hhmm = |h: i64| format!("{:02}:00", h.rem_euclid(24));
    // A window that starts two hours from now: now is outside it.
    let (s, b) = put(
        &t,
        "/v1/livecodes/night",
        json!({"targets": [{"operator": "alice"}], "backup_operator": "bob",
               "working_hours": {"start": hhmm(hour + 2), "end": hhmm(hour + 3), "timezone": "UTC"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = visit(&t, "night", "wecom:x1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["target"], json!({"operator": "bob"}), "{b}");
    assert_eq!(b["backup"], true);
    let (_, p) = t.get("/v1/persons/wecom:x1").await;
    assert_eq!(p["traits"]["operator"], "bob", "{p}");

    // A window around now, with a daily cap of one.
    let (s, b) = put(
        &t,
        "/v1/livecodes/day",
        json!({"targets": [{"operator": "alice"}], "backup_operator": "bob", "daily_cap_per_operator": 1,
               "working_hours": {"start": hhmm(hour - 1), "end": hhmm(hour + 2), "timezone": "UTC"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = visit(&t, "day", "wecom:y1").await;
    assert_eq!(
        (b["target"].clone(), b["backup"].clone()),
        (json!({"operator": "alice"}), json!(false)),
        "{b}"
    );
    let (_, b) = visit(&t, "day", "wecom:y2").await;
    assert_eq!(
        (b["target"].clone(), b["backup"].clone()),
        (json!({"operator": "bob"}), json!(true)),
        "{b}"
    );
    // The same newcomer again: the same operator, not counted twice.
    let (_, b) = visit(&t, "day", "wecom:y1").await;
    assert_eq!(
        (b["target"].clone(), b["again"].clone()),
        (json!({"operator": "alice"}), json!(true)),
        "{b}"
    );

    // Without a backup, a capped code has no room.
    let (s, _) = put(
        &t,
        "/v1/livecodes/solo",
        json!({"targets": [{"operator": "alice"}], "daily_cap_per_operator": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(visit(&t, "solo", "wecom:z1").await.0, StatusCode::OK);
    let (s, b) = visit(&t, "solo", "wecom:z2").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["message"].as_str().unwrap().contains("daily cap"), "{b}");
}

#[tokio::test]
async fn bad_live_codes_groups_and_calendars_are_4xx_naming_the_field() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice"]).await;
    let cases = [
        (json!({"targets": []}), "targets:"),
        (json!({}), "targets:"),
        (
            json!({"targets": [{"group": "nope"}]}),
            "targets[0].group: no group `nope`",
        ),
        (
            json!({"targets": [{"operator": "alice"}, {"operator": "ghost"}]}),
            "targets[1].operator: no operator `ghost`",
        ),
        (
            json!({"targets": [{"operator": "alice"}], "backup_operator": "ghost"}),
            "backup_operator:",
        ),
        (
            json!({"targets": [{"operator": "alice"}], "welcome_template": "nope"}),
            "welcome_template:",
        ),
        (
            json!({"targets": [{"operator": "alice"}], "working_hours": {"start": "9am", "end": "21:00"}}),
            "working_hours.start:",
        ),
        (
            json!({"targets": [{"operator": "alice"}], "working_hours": {"start": "09:00", "end": "21:00", "timezone": "Mars/Base"}}),
            "working_hours.timezone:",
        ),
        (
            json!({"targets": [{"operator": "alice"}], "source_channel": "Dou Yin"}),
            "source_channel:",
        ),
        (json!({"targets": [{"queue": "x"}]}), "unknown variant"),
    ];
    for (body, want) in cases {
        let (s, b) = put(&t, "/v1/livecodes/c", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
        assert_eq!(b["code"], "invalid_definition");
        assert!(
            b["message"].as_str().unwrap().contains(want),
            "{body}: want {want:?} in {b}"
        );
    }
    let (s, _) = t
        .call("GET", "/l/c", None, "application/json", Body::empty())
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post(&t, "/v1/livecodes/c/claims", json!({"identity": "wecom:a"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = put(
        &t,
        "/v1/livecodes/ok",
        json!({"targets": [{"operator": "alice"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &t,
        "/v1/livecodes/ok/claims",
        json!({"identity": "not-an-identity"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("identity:"),
        "{b}"
    );

    for (body, want) in [
        (json!({"channel": "wecom", "capacity": 0}), "capacity:"),
        (json!({"channel": "WeCom"}), "channel:"),
        (
            json!({"channel": "wecom", "owner": "ghost"}),
            "owner: no operator",
        ),
        (
            json!({"channel": "wecom", "size": 3}),
            "unknown field `size`",
        ),
    ] {
        let (s, b) = put(&t, "/v1/groups/g", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
        assert!(
            b["message"].as_str().unwrap().contains(want),
            "{body}: want {want:?} in {b}"
        );
    }
    let (s, _) = put(&t, "/v1/groups/g", json!({"channel": "wecom"})).await;
    assert_eq!(s, StatusCode::OK);
    for (body, want) in [
        (
            json!([{"id": "e1", "at": "tomorrow", "template": "x"}]),
            "[0].at:",
        ),
        (
            json!([{"id": "e1", "at": 1_900_000_000, "template": "nope"}]),
            "[0].template: no template",
        ),
        (
            json!([{"id": "e1", "at": 1_900_000_000, "template": "x", "when": 1}]),
            "[0].when: unknown field",
        ),
    ] {
        let (s, b) = put(&t, "/v1/groups/g/calendar", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
        assert!(
            b["message"].as_str().unwrap().contains(want),
            "{body}: want {want:?} in {b}"
        );
    }
    let (s, _) = put(&t, "/v1/groups/none/calendar", json!([])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.get("/v1/groups/none/health").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post(&t, "/v1/operators/ghost/handover", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = post(&t, "/v1/operators/alice/handover", json!({"to": "alice"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

#[tokio::test]
async fn new_groups_go_to_the_least_loaded_operator_under_max_groups() {
    let t = TestApp::spawn().await;
    let (s, _) = put(&t, "/v1/operators/a", json!({"max_groups": 2})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = put(&t, "/v1/operators/b", json!({"max_groups": 1})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = put(&t, "/v1/operators/c", json!({"status": "left"})).await;
    assert_eq!(s, StatusCode::OK);
    let mut owners = Vec::new();
    for g in ["g1", "g2", "g3"] {
        let (s, b) = put(&t, &format!("/v1/groups/{g}"), json!({"channel": "wecom"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["capacity"], 500, "the default capacity");
        owners.push(b["owner"].as_str().unwrap().to_string());
    }
    assert_eq!(owners, ["a", "b", "a"]);
    // Everyone at their limit (c has left): no owner for a fourth group.
    let (s, b) = put(&t, "/v1/groups/g4", json!({"channel": "wecom"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = put(
        &t,
        "/v1/groups/g4",
        json!({"channel": "wecom", "owner": "b"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("max_groups 1"),
        "{b}"
    );
    // Re-saving a group keeps its owner and does not count it twice.
    let (s, b) = put(
        &t,
        "/v1/groups/g2",
        json!({"channel": "wecom", "name": "VIP", "owner": "b"}),
    )
    .await;
    assert_eq!((s, b["owner"].as_str()), (StatusCode::OK, Some("b")), "{b}");
    // An archived group frees its owner's slot.
    let (s, _) = put(
        &t,
        "/v1/groups/g3",
        json!({"channel": "wecom", "archived": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, ops) = t.get("/v1/operators").await;
    let load: Vec<(String, u64)> = ops["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["login"].as_str().unwrap().to_string(),
                o["groups"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        load,
        [("a".into(), 1), ("b".into(), 1), ("c".into(), 0)],
        "{ops}"
    );
    let (s, b) = put(&t, "/v1/groups/g4", json!({"channel": "wecom"})).await;
    assert_eq!((s, b["owner"].as_str()), (StatusCode::OK, Some("a")), "{b}");
}

#[tokio::test]
async fn a_handover_moves_every_person_and_group_in_one_action_and_keeps_history() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice", "bob", "carol", "dave"]).await;
    let mut events = Vec::new();
    for i in 1..=5 {
        events.push(json!({"ts": "2026-01-01T08:00:00Z", "identity": format!("wecom:p{i}"), "type": "identify", "traits": {"operator": "alice"}}));
    }
    events.push(json!({"ts": "2026-01-01T08:00:00Z", "identity": "wecom:q1", "type": "identify", "traits": {"operator": "bob"}}));
    let (s, b) = t.post_events(&Value::Array(events).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for g in ["g1", "g2"] {
        let (s, b) = put(
            &t,
            &format!("/v1/groups/{g}"),
            json!({"channel": "wecom", "owner": "alice"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, ops) = t.get("/v1/operators").await;
    assert_eq!(
        (
            ops["operators"][0]["persons"].as_u64(),
            ops["operators"][0]["groups"].as_u64()
        ),
        (Some(5), Some(2)),
        "{ops}"
    );

    let (s, b) = post(
        &t,
        "/v1/operators/alice/handover",
        json!({"to": "bob", "reason": "resigned"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["handover"]["persons"].as_u64(),
            b["handover"]["groups"].as_u64()
        ),
        (Some(5), Some(2)),
        "{b}"
    );
    for i in 1..=5 {
        let (_, p) = t.get(&format!("/v1/persons/wecom:p{i}")).await;
        assert_eq!(p["traits"]["operator"], "bob", "{p}");
        assert_eq!(p["traits"]["previous_operator"], "alice", "{p}");
    }
    // The old owner stays in the person's history (the log).
    let (_, tl) = t.get("/v1/persons/wecom:p1/timeline").await;
    assert!(tl.to_string().contains(r#""operator":"alice""#), "{tl}");
    let (_, gs) = t.get("/v1/groups").await;
    for g in gs["groups"].as_array().unwrap() {
        assert_eq!(g["owner"], "bob", "{g}");
        assert_eq!(g["owner_history"][0]["from"], "alice", "{g}");
    }
    let (_, ops) = t.get("/v1/operators").await;
    let alice = &ops["operators"][0];
    assert_eq!(
        (
            alice["status"].as_str(),
            alice["persons"].as_u64(),
            alice["groups"].as_u64()
        ),
        (Some("left"), Some(0), Some(0)),
        "{ops}"
    );
    let audits = {
        let mut store = t.state.0.reader.lock().unwrap();
        store.audit_log(10).unwrap()
    };
    let handovers: Vec<_> = audits
        .iter()
        .filter(|a| a.action == "operator_handover")
        .collect();
    assert_eq!(handovers.len(), 1, "{audits:?}");
    assert_eq!(handovers[0].subject, "alice");
    assert_eq!(handovers[0].detail["persons"], 5);

    // bob is banned with nobody named: spread over the least-loaded.
    let (s, b) = post(
        &t,
        "/v1/operators/bob/handover",
        json!({"to": null, "status": "banned"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["handover"]["persons_to"],
        json!({"carol": 3, "dave": 3}),
        "{b}"
    );
    assert_eq!(
        b["handover"]["groups_to"],
        json!({"carol": ["g1"], "dave": ["g2"]}),
        "{b}"
    );
    let (_, ops) = t.get("/v1/operators").await;
    let persons: Vec<u64> = ops["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["persons"].as_u64().unwrap())
        .collect();
    assert_eq!(persons, [0, 0, 3, 3], "{ops}");
    assert_eq!(ops["operators"][1]["status"], "banned");
    // A live code still naming alice reaches whom she handed over to.
    let (s, _) = put(&t, "/v1/operators/bob", json!({"status": "active"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = put(
        &t,
        "/v1/livecodes/old",
        json!({"targets": [{"operator": "alice"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = visit(&t, "old", "wecom:new1").await;
    assert_eq!(b["target"], json!({"operator": "bob"}), "{b}");
}

#[tokio::test]
async fn group_health_counts_joins_leaves_activity_and_leavers_after_a_reward() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice"]).await;
    let (s, _) = put(&t, "/v1/groups/g1", json!({"channel": "wecom"})).await;
    assert_eq!(s, StatusCode::OK);
    let n = now();
    let at = |secs_ago: i64| format_rfc3339(n - secs_ago);
    let day = 86_400;
    let events = json!([
        {"ts": at(30 * day), "identity": "wecom:old", "type": "join_group", "group": "g1"},
        {"ts": at(2 * day), "identity": "wecom:j1", "type": "join_group", "group": "g1"},
        {"ts": at(2 * day), "identity": "wecom:j2", "type": "join_group", "group": "g1"},
        {"ts": at(2 * day), "identity": "wecom:j3", "type": "join_group", "group": "g1"},
        {"ts": at(2 * day), "identity": "wecom:j4", "type": "join_group", "group": "g1"},
        {"ts": at(2 * day), "identity": "wecom:x", "type": "join_group", "group": "other"},
        {"ts": at(2 * day - 3600), "identity": "wecom:j3", "type": "custom", "name": "reward_granted"},
        {"ts": at(day), "identity": "wecom:j3", "type": "leave_group", "group": "g1"},
        {"ts": at(day), "identity": "wecom:j4", "type": "leave_group", "group": "g1"},
        {"ts": at(3600), "identity": "wecom:j1", "type": "comment", "text": "好"},
    ]);
    let (s, b) = t.post_events(&events.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, h) = t.get("/v1/groups/g1/health?days=7").await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(
        (
            h["size"].as_u64(),
            h["joins"].as_u64(),
            h["leaves"].as_u64()
        ),
        (Some(3), Some(4), Some(2)),
        "{h}"
    );
    // j1 and j2 joined in the window; `old` did nothing.
    assert_eq!(h["active"], 2, "{h}");
    assert!(
        (h["active_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{h}"
    );
    assert_eq!(h["left_after_reward"]["count"], 1, "{h}");
    assert_eq!(
        h["left_after_reward"]["persons"],
        json!(["wecom:j3"]),
        "{h}"
    );
    let per_day = h["per_day"].as_array().unwrap();
    assert_eq!(per_day.len(), 7);
    let joins: u64 = per_day.iter().map(|d| d["joins"].as_u64().unwrap()).sum();
    assert_eq!(joins, 4);
    assert_eq!(
        per_day.last().unwrap()["joins"],
        0,
        "nobody joined today: {h}"
    );
}

#[tokio::test]
async fn a_calendar_entry_is_posted_once_through_the_outbox() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice"]).await;
    let (s, _) = put(
        &t,
        "/v1/groups/g1",
        json!({"channel": "wecom", "name": "宝妈群"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = put(
        &t,
        "/v1/templates/morning",
        json!({"body": "早安，今天的话题：早餐"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let n = now();
    let (s, b) = put(
        &t,
        "/v1/groups/g1/calendar",
        json!([{"id": "d1", "at": format_rfc3339(n - 60), "template": "morning"},
               {"id": "d2", "at": n + 3600, "template": "morning"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        siyu_server::routes::communities::tick(&t.state, n)
            .await
            .unwrap(),
        1
    );
    // The next tick (and one after) finds it posted.
    assert_eq!(
        siyu_server::routes::communities::tick(&t.state, n + 15)
            .await
            .unwrap(),
        0
    );
    let started = Instant::now();
    let items = loop {
        let (_, o) = t.get("/v1/outbox?person=group:g1").await;
        let items = o["items"].as_array().unwrap().clone();
        if items.iter().all(|i| i["status"] != "pending") {
            break items;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{o}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["key"], "sop/g1/d1");
    // No connector for the channel in tests: dead-lettered, and said so.
    assert_eq!(items[0]["status"], "dead");
    let (_, cal) = t.get("/v1/groups/g1/calendar").await;
    let e = &cal["entries"];
    assert_eq!(
        (e[0]["status"].as_str(), e[1]["status"].as_str()),
        (Some("dead"), Some("scheduled")),
        "{cal}"
    );
    assert!(
        e[0]["detail"].as_str().unwrap().contains("unknown channel"),
        "{cal}"
    );
    // Posting again is a no-op even when asked directly.
    assert_eq!(
        siyu_server::routes::communities::tick(&t.state, n + 30)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_public_link_is_rate_limited_per_address() {
    let t = TestApp::spawn().await;
    let router = siyu_server::app(t.state.clone());
    let mut statuses = Vec::new();
    let started = Instant::now();
    for i in 0..200 {
        // A rotating X-Forwarded-For from an untrusted peer (even a local
        // one: no proxy is trusted by default) changes nothing.
        let mut req = from_peer("/l/nope", "127.0.0.1:4000");
        req.headers_mut().insert(
            "x-forwarded-for",
            format!("198.51.100.{i}").parse().unwrap(),
        );
        let r = router.clone().oneshot(req).await.unwrap();
        let s = r.status();
        statuses.push(s);
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers()["retry-after"], "1");
            break;
        }
    }
    // The burst (40) gets answers (404: no such code), then 429 as soon
    // as the bucket is empty (it refills 20 a second meanwhile).
    let answered = statuses.len() - 1;
    let refilled = (started.elapsed().as_secs_f64() * 20.0).ceil() as usize;
    assert!(
        statuses[..answered]
            .iter()
            .all(|s| *s == StatusCode::NOT_FOUND)
            && (40..=40 + refilled).contains(&answered),
        "{answered} answered, {refilled} refilled: {statuses:?}"
    );
    assert_eq!(statuses[answered], StatusCode::TOO_MANY_REQUESTS);
    // The other public links share the address's budget (drained again
    // first: it refills while we look).
    for uri in ["/c/x", "/u/00.00", "/i/c/00.00"] {
        let mut last = StatusCode::OK;
        for _ in 0..40 {
            last = router
                .clone()
                .oneshot(from_peer(uri, "127.0.0.1:4002"))
                .await
                .unwrap()
                .status();
            if last == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
        }
        assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "{uri}");
    }
    // Another address is not affected.
    let other = router
        .clone()
        .oneshot(from_peer("/l/nope", "198.51.100.4:4000"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let t = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.trusted_proxies = siyu_server::ratelimit::TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
    })
    .await;
    let router = siyu_server::app(t.state.clone());
    let via_proxy = |client: &str| {
        let mut req = from_peer("/l/nope", "10.0.0.2:4000");
        req.headers_mut().insert(
            "x-forwarded-for",
            format!("6.6.6.6, {client}").parse().unwrap(),
        );
        req
    };
    let mut answered = 0;
    while router
        .clone()
        .oneshot(via_proxy("203.0.113.9"))
        .await
        .unwrap()
        .status()
        == StatusCode::NOT_FOUND
    {
        answered += 1;
        assert!(answered < 200, "never limited");
    }
    // That client is limited after its burst; another client behind the
    // same proxy is not.
    assert!(answered >= 40, "{answered}");
    let r = router
        .clone()
        .oneshot(via_proxy("203.0.113.10"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A group of 200 and a live code on it.
async fn one_group_code(t: &TestApp, capacity: u32) {
    operators(t, &["alice"]).await;
    let (s, b) = put(
        t,
        "/v1/groups/g1",
        json!({"channel": "wecom", "capacity": capacity, "url": "https://work.weixin.qq.com/g/g1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(t, "/v1/templates/welcome", json!({"body": "欢迎"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(
        t,
        "/v1/livecodes/spring",
        json!({"targets": [{"group": "g1"}], "auto_tags": ["spring_qr"], "welcome_template": "welcome"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn anonymous_visits_see_the_target_but_reserve_no_seat() {
    let t = TestApp::spawn().await;
    one_group_code(&t, 200).await;
    let router = siyu_server::app(t.state.clone());
    for i in 0..200u32 {
        let peer = format!("198.51.{}.{}:4000", i / 250, i % 250);
        let r = router
            .clone()
            .oneshot(from_peer("/l/spring", &peer))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "visit {i}");
        if i == 0 {
            let bytes = http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes();
            let b: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(b["url"], "https://work.weixin.qq.com/g/g1", "{b}");
            assert_eq!(b["reserved"], false, "{b}");
        }
    }
    let (_, g) = t.get("/v1/groups/g1").await;
    assert_eq!(
        (g["reserved"].as_u64(), g["free"].as_u64()),
        (Some(0), Some(200)),
        "{g}"
    );
    // A claimed newcomer still gets a seat.
    let (s, b) = visit(&t, "spring", "wecom:real").await;
    assert_eq!(
        (s, b["reserved"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
    let (_, g) = t.get("/v1/groups/g1").await;
    assert_eq!(g["reserved"].as_u64(), Some(1), "{g}");
}

#[tokio::test]
async fn an_identity_without_a_valid_claim_cannot_tag_reassign_or_queue() {
    let t = TestApp::spawn().await;
    one_group_code(&t, 10).await;
    operators(&t, &["bob"]).await;
    let (s, b) = put(
        &t,
        "/v1/livecodes/other",
        json!({"targets": [{"operator": "bob"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    t.post_events(r#"{"ts": 1790000000, "identity": "wecom:vip", "type": "identify", "traits": {"operator": "alice", "tags": ["vip"]}}"#)
        .await;
    let before = t.get("/v1/persons/wecom:vip").await.1;
    let secret = t.state.0.link_secret.clone();
    let other_code = claim(&t, "other", "wecom:vip").await;
    let now = siyu_server::writer::wall_clock();
    let expired = siyu_server::links::claim(&secret, "livecode/spring", "wecom:vip", now - 1);
    let forged =
        siyu_server::links::claim(b"not-the-secret", "livecode/spring", "wecom:vip", now + 600);
    for (query, why) in [
        ("identity=wecom:vip".to_string(), "identity"),
        (
            format!("claim={other_code}"),
            "claim: the claim token is not valid for livecode/spring",
        ),
        (format!("claim={expired}"), "claim: the claim token expired"),
        (
            format!("claim={forged}"),
            "claim: the claim token is not valid",
        ),
        (
            format!(
                "claim={}&identity=wecom:vip2",
                claim(&t, "spring", "wecom:vip").await
            ),
            "identity: does not match",
        ),
    ] {
        let (s, b) = t
            .call(
                "GET",
                &format!("/l/spring?{query}"),
                None,
                "application/json",
                Body::empty(),
            )
            .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("claim_required")),
            "{query}: {b}"
        );
        assert!(
            b["message"].as_str().unwrap().starts_with(why),
            "{query}: {b}"
        );
    }
    // Nothing happened to the customer: same tags and owner, no touch, no
    // queued message, no seat.
    assert_eq!(t.get("/v1/persons/wecom:vip").await.1, before);
    let (_, o) = t.get("/v1/outbox?person=wecom:vip").await;
    assert_eq!(o["items"], json!([]), "{o}");
    let (_, g) = t.get("/v1/groups/g1").await;
    assert_eq!(g["reserved"].as_u64(), Some(0), "{g}");
    // A claim for an unknown code is 404; a claim names no identity in clear.
    let (s, _) = post(
        &t,
        "/v1/livecodes/nope/claims",
        json!({"identity": "wecom:vip"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let token = claim(&t, "spring", "phone:13800138000").await;
    let hex: String = "13800138000".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !token.contains("13800138000") && !token.contains(&hex),
        "{token}"
    );
}

#[tokio::test]
async fn a_handover_to_a_named_operator_respects_max_groups_unless_forced() {
    let t = TestApp::spawn().await;
    operators(&t, &["alice"]).await;
    let (s, b) = put(
        &t,
        "/v1/operators/op",
        json!({"name": "op", "max_groups": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for i in 1..=5 {
        let (s, b) = put(
            &t,
            &format!("/v1/groups/g{i}"),
            json!({"channel": "wecom", "owner": "alice"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // op may own 1 group; the hand-over would give it 5: refused, nothing moved.
    let (s, b) = post(&t, "/v1/operators/alice/handover", json!({"to": "op"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let m = b.to_string();
    for says in ["`op`", "max_groups 1", "5 groups", "force"] {
        assert!(m.contains(says), "{says} in {m}");
    }
    let (_, ops) = t.get("/v1/operators").await;
    assert!(
        !ops.to_string().contains("\"left\""),
        "alice not marked: {ops}"
    );
    let (_, gs) = t.get("/v1/groups").await;
    assert!(
        gs["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["owner"] == "alice"),
        "{gs}"
    );
    // The operator says so: forced through.
    let (s, b) = post(
        &t,
        "/v1/operators/alice/handover",
        json!({"to": "op", "force": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["handover"]["groups"], 5, "{b}");
}
