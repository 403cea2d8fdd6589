//! Analytics in event time (issue 14.4): one set of events — first touches
//! on several channels, WeCom adds stitched to Taobao buyers, orders with
//! refunds, journey messages sent, read and followed by purchases, touches
//! at the same second — ingested into two fresh servers, once in time order
//! and once as marketplace orders arrive in practice: everything else first
//! (newest first), the orders imported afterwards (newest first). Every
//! analytics answer must be the same in both, and the key ones equal the
//! values worked out by hand below.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_engine::engine::tie_break;

/// 2026-09-21T00:00:00Z, a Monday.
const T: i64 = 1_790_035_200;
const H: i64 = 3_600;
const D: i64 = 86_400;

fn ev(id: &str, ts: i64, identity: &str, ty: &str, channel: &str) -> Value {
    json!({"id": id, "ts": ts, "identity": identity, "type": ty, "channel": channel})
}

fn order(id: &str, ts: i64, identity: &str, ty: &str, channel: &str, cents: i64) -> Value {
    let mut v = ev(id, ts, identity, ty, channel);
    v["amount"] = json!(cents);
    v
}

fn link(id: &str, ts: i64, identity: &str, to: &str) -> Value {
    let mut v = ev(id, ts, identity, "identify", "wecom");
    v["ref"] = json!(to);
    v
}

fn message(id: &str, ts: i64, identity: &str, ty: &str, properties: Value) -> Value {
    let mut v = ev(id, ts, identity, ty, "wecom");
    v["properties"] = properties;
    v
}

/// The events, in time order.
fn events() -> Vec<Value> {
    let mut v = vec![
        // P1: a Taobao buyer first (¥126), added on WeCom a day later, reads
        // a promotion by key, buys again (¥300) and refunds ¥20.
        order(
            "order/tb/1",
            T,
            "taobao:buyer1",
            "purchase",
            "taobao",
            12_600,
        ),
        ev("add/1", T + D, "wecom:wm1", "add_friend", "wecom"),
        link("link/1", T + D + 60, "wecom:wm1", "taobao:buyer1"),
        message(
            "sent/k1",
            T + 2 * D,
            "wecom:wm1",
            "message_sent",
            json!({"journey": "j", "key": "k1", "template": "promo"}),
        ),
        message(
            "read/1",
            T + 2 * D + 100,
            "wecom:wm1",
            "message_read",
            json!({"key": "k1"}),
        ),
        order(
            "order/tb/2",
            T + 3 * D,
            "taobao:buyer1",
            "purchase",
            "taobao",
            30_000,
        ),
        order(
            "refund/tb/2",
            T + 4 * D,
            "taobao:buyer1",
            "refund",
            "taobao",
            2_000,
        ),
        // P2: a Douyin lead, added on WeCom two hours later, reads the
        // welcome message (no key: the latest send before it), touches on
        // Xiaohongshu, buys ¥500 within the window and ¥70 after it.
        ev("touch/2", T, "douyin:dy2", "touch", "douyin"),
        ev("add/2", T + 2 * H, "wecom:wm2", "add_friend", "wecom"),
        link("link/2", T + 2 * H + 1, "wecom:wm2", "douyin:dy2"),
        message(
            "sent/k2",
            T + 2 * D,
            "wecom:wm2",
            "message_sent",
            json!({"journey": "j", "key": "k2", "template": "welcome"}),
        ),
        message(
            "read/2",
            T + 2 * D + 600,
            "wecom:wm2",
            "message_read",
            json!({}),
        ),
        ev(
            "touch/2b",
            T + 2 * D + 1_000,
            "douyin:dy2",
            "touch",
            "xiaohongshu",
        ),
        order(
            "order/wx/2",
            T + 3 * D,
            "wecom:wm2",
            "purchase",
            "wecom",
            50_000,
        ),
        order(
            "order/wx/3",
            T + 10 * D,
            "wecom:wm2",
            "purchase",
            "wecom",
            7_000,
        ),
        // P3: a Xiaohongshu touch, a ¥80 Taobao order half a minute later,
        // ¥30 of it refunded.
        ev("touch/3", T + D, "xiaohongshu:x3", "touch", "xiaohongshu"),
        order(
            "order/x3",
            T + D + 30,
            "xiaohongshu:x3",
            "purchase",
            "taobao",
            8_000,
        ),
        order(
            "refund/x3",
            T + 10 * D,
            "xiaohongshu:x3",
            "refund",
            "taobao",
            3_000,
        ),
        // P4: touches on two channels in the same second, then ¥10.
        ev("touch/4a", T + 5 * D, "kuaishou:k4", "touch", "kuaishou"),
        ev("touch/4b", T + 5 * D, "kuaishou:k4", "touch", "douyin"),
        order(
            "order/k4",
            T + 6 * D,
            "kuaishou:k4",
            "purchase",
            "kuaishou",
            1_000,
        ),
    ];
    v.sort_by_key(|e| e["ts"].as_i64());
    v
}

/// The same events as a later order import stores them: everything but
/// purchases and refunds first, newest first, then the orders, newest first.
fn orders_imported_after_the_adds() -> Vec<Value> {
    let is_order = |e: &Value| matches!(e["type"].as_str(), Some("purchase" | "refund"));
    let (mut orders, mut rest): (Vec<Value>, Vec<Value>) = events().into_iter().partition(is_order);
    rest.reverse();
    orders.reverse();
    rest.extend(orders);
    rest
}

/// A fresh server holding `events`, stored in that order (one request per
/// event, so each is its own append), with the same spend table and journey.
async fn server_with(events: Vec<Value>) -> TestApp {
    let t = TestApp::spawn().await;
    for e in events {
        let (s, b) = t.post_events(&Value::Array(vec![e]).to_string()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let put = |path: &'static str, ctype: &'static str, body: String| {
        let t = &t;
        async move {
            let (s, b) = t.call("PUT", path, Some(&t.key), ctype, body).await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
        }
    };
    put(
        "/v1/spend",
        "text/csv",
        "day,channel,spend\n2026-09-21,douyin,20000\n2026-09-21,taobao,10000\n".into(),
    )
    .await;
    put(
        "/v1/templates/promo",
        "application/json",
        json!({"body": "hi"}).to_string(),
    )
    .await;
    // Triggered by an event none of these is: it only names the journey
    // whose messages the report attributes.
    put(
        "/v1/journeys/j",
        "application/json",
        json!({
            "trigger": {"type": "event", "event": "follow"},
            "start": "hello",
            "steps": {"hello": {"type": "send", "template": "promo", "channel": "webhook"}}
        })
        .to_string(),
    )
    .await;
    t
}

/// Every analytics answer, by name.
async fn answers(t: &TestApp) -> Vec<(String, Value)> {
    let steps = [
        json!({"steps": [
            {"event_type": "touch"},
            {"event_type": "add_friend", "within": "1d"},
            {"event_type": "purchase", "within": "7d"}
        ], "split_by_channel": true}),
        json!({"steps": [
            {"event_type": "add_friend"},
            {"event_type": "purchase", "within": "3d"}
        ]}),
        json!({"steps": [
            {"event_type": "message_read"},
            {"event_type": "purchase", "channel": "wecom", "within": "1d"}
        ], "split_by_channel": true}),
    ];
    let mut out = Vec::new();
    for path in [
        "/v1/analytics/attribution".to_string(),
        "/v1/analytics/roi".to_string(),
        "/v1/analytics/funnel".to_string(),
        "/v1/analytics/funnel?friend_days=1&convert_days=2".to_string(),
        format!("/v1/analytics/cohorts?t0={T}&weeks=3"),
        "/v1/analytics/ltv".to_string(),
        "/v1/analytics/repurchase".to_string(),
        "/v1/analytics/rfm".to_string(),
        "/v1/journeys/j/report".to_string(),
        "/v1/journeys/j/report?days=30".to_string(),
        "/v1/persons/taobao:buyer1".to_string(),
        "/v1/persons/kuaishou:k4".to_string(),
    ] {
        let (s, mut b) = t.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        // The engine clock an answer was computed at (RFM's `at`) is when
        // the server was asked, not a property of the events.
        if let Some(o) = b.as_object_mut() {
            o.remove("at");
        }
        out.push((path, b));
    }
    for body in steps {
        let (s, b) = t
            .call(
                "POST",
                "/v1/analytics/steps",
                Some(&t.key),
                "application/json",
                body.to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}: {b}");
        out.push((format!("steps {body}"), b));
    }
    out
}

fn answer<'a>(all: &'a [(String, Value)], path: &str) -> &'a Value {
    &all.iter().find(|(p, _)| p == path).expect(path).1
}

/// A row of `rows` by its `key` field.
fn row<'a>(rows: &'a Value, key: &str, value: &str) -> &'a Value {
    rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row {key}={value} in {rows}"))
}

#[tokio::test]
async fn every_analysis_answers_in_event_time_whatever_the_import_order() {
    let in_time = server_with(events()).await;
    let imported_later = server_with(orders_imported_after_the_adds()).await;
    let a = answers(&in_time).await;
    let b = answers(&imported_later).await;
    for ((path, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(
            x, y,
            "{path}: in time order vs orders imported after the adds"
        );
    }

    // P4's two touches share a second: the one whose id sorts first in
    // event time is its first touch, the other its last.
    let (first4, other4) = if tie_break(Some("touch/4a"), 0) < tie_break(Some("touch/4b"), 0) {
        ("kuaishou", "douyin")
    } else {
        ("douyin", "kuaishou")
    };
    let p4 = |channel: &str, which: &str| if channel == which { 1_000 } else { 0 };

    // First touch: P1 is Taobao's (¥126 + ¥300 − ¥20), P2 Douyin's
    // (¥500 + ¥70), P3 Xiaohongshu's (¥80 − ¥30), P4 its first channel's.
    // Last touch: P1's Taobao order before any touch, then WeCom; P2's
    // Xiaohongshu touch. Linear: P1's later orders over Taobao and WeCom,
    // P2's over Douyin, WeCom and Xiaohongshu, P4's over both channels.
    let attribution = answer(&a, "/v1/analytics/attribution");
    for (channel, first, last, linear) in [
        ("taobao", 40_600, 12_600, 26_600.0),
        ("wecom", 0, 28_000, 14_000.0 + 19_000.0),
        (
            "douyin",
            57_000 + p4("douyin", first4),
            p4("douyin", other4),
            19_000.0 + 500.0,
        ),
        ("xiaohongshu", 5_000, 57_000 + 5_000, 19_000.0 + 5_000.0),
        (
            "kuaishou",
            p4("kuaishou", first4),
            p4("kuaishou", other4),
            500.0,
        ),
    ] {
        assert_eq!(
            row(attribution, "channel", channel),
            &json!({"channel": channel, "first_touch": first, "last_touch": last, "linear": linear}),
            "{attribution}"
        );
    }
    assert_eq!(
        attribution["rows"].as_array().unwrap().len(),
        5,
        "{attribution}"
    );

    // ROI's revenue is first-touch revenue: the same numbers (the issue's
    // Taobao ¥126 against ¥425 is gone).
    let roi = answer(&a, "/v1/analytics/roi");
    for r in roi["rows"].as_array().unwrap() {
        let channel = r["channel"].as_str().unwrap();
        let credited = attribution["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["channel"] == channel)
            .map_or(0, |x| x["first_touch"].as_i64().unwrap());
        assert_eq!(r["revenue"].as_i64().unwrap(), credited, "{channel}: {roi}");
    }
    assert_eq!(
        row(roi, "channel", "taobao"),
        &json!({"channel": "taobao", "spend": 10_000, "revenue": 40_600, "persons": 1})
    );

    // Funnel over steps, split by the first touch's channel: P2 goes all
    // the way on Douyin, P3 and P4 only touch.
    let split = answer(
        &a,
        &format!(
            "steps {}",
            json!({"steps": [
                {"event_type": "touch"},
                {"event_type": "add_friend", "within": "1d"},
                {"event_type": "purchase", "within": "7d"}
            ], "split_by_channel": true})
        ),
    );
    let mut expected = vec![
        json!({"split": "douyin", "reached": [1, 1, 1]}),
        json!({"split": "xiaohongshu", "reached": [1, 0, 0]}),
    ];
    if first4 == "douyin" {
        expected[0] = json!({"split": "douyin", "reached": [2, 1, 1]});
    } else {
        expected.insert(1, json!({"split": "kuaishou", "reached": [1, 0, 0]}));
    }
    assert_eq!(split["rows"], json!(expected), "{split}");

    // First-touch funnel: P1 enters on Taobao (its first event is the
    // order), friended a day later and bought within 30 days of that.
    let funnel = answer(&a, "/v1/analytics/funnel");
    assert_eq!(
        row(funnel, "channel", "taobao"),
        &json!({"channel": "taobao", "entered": 1, "friended": 1, "converted": 1})
    );

    // Cohorts from T (weeks start Monday 00:00 Asia/Shanghai, the
    // default zone): P1 and P2 added in week 0, both active then; P2
    // buys again in week 1.
    let cohorts = answer(&a, &format!("/v1/analytics/cohorts?t0={T}&weeks=3"));
    assert_eq!(
        cohorts["rows"],
        json!([{"cohort": 0, "size": 2, "active": [2, 1, 0], "week_start": "2026-09-21"}])
    );

    // Message attribution: P1's purchase after reading promo (by key), P2's
    // ¥500 after reading welcome (its latest send); P2's ¥70 is 8 days
    // after the read, outside the 7-day window.
    let report = answer(&a, "/v1/journeys/j/report");
    assert_eq!(
        (
            &report["sends"],
            &report["reads"],
            &report["conversions"],
            &report["revenue"],
            &report["by_template"]
        ),
        (
            &json!(2),
            &json!(2),
            &json!(2),
            &json!(80_000),
            &json!({
                "promo": {"sends": 1, "reads": 1, "conversions": 1, "revenue": 30_000},
                "welcome": {"sends": 1, "reads": 1, "conversions": 1, "revenue": 50_000}
            })
        ),
        "{report}"
    );
    let month = answer(&a, "/v1/journeys/j/report?days=30");
    assert_eq!(
        (&month["conversions"], &month["revenue"]),
        (&json!(3), &json!(87_000)),
        "{month}"
    );
}

/// Steps and attribution read the event columns (`columns.rs`): a merge
/// made after the columns were filled counts at the next pass, an erasure
/// empties them (the erased person's orders leave the answer, and the
/// file holds exactly the remaining events), and events appended since
/// the last pass are read.
#[tokio::test]
async fn the_event_columns_follow_merges_erasures_and_new_events() {
    let t = TestApp::spawn().await;
    let post = |events: Vec<Value>| {
        let t = &t;
        async move {
            let (s, b) = t.post_events(&Value::Array(events).to_string()).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    };
    post(vec![
        ev("t/a", T, "douyin:a", "touch", "douyin"),
        order("o/a", T + H, "taobao:a", "purchase", "taobao", 10_000),
        ev("t/b", T, "xhs:b", "touch", "xiaohongshu"),
        order("o/b", T + H, "xhs:b", "purchase", "xiaohongshu", 5_000),
    ])
    .await;
    let first_touch = |body: &Value| -> Vec<(String, i64)> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["channel"].as_str().unwrap().to_string(),
                    r["first_touch"].as_i64().unwrap(),
                )
            })
            .filter(|(_, v)| *v != 0)
            .collect()
    };
    let attribution = || {
        let t = &t;
        async move {
            let (s, b) = t.get("/v1/analytics/attribution?to=2026-12-31").await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b
        }
    };
    // First-touch credit per channel, and the events the file holds.
    let expect = |credited: &'static [(&'static str, i64)], events: u64| {
        let t = &t;
        async move {
            let b = attribution().await;
            let want: Vec<(String, i64)> =
                credited.iter().map(|&(c, v)| (c.to_string(), v)).collect();
            assert_eq!(first_touch(&b), want, "{b}");
            assert_eq!(t.state.0.columns.bytes(), events * 28);
        }
    };
    // douyin:a and taobao:a are two persons yet: the order is Taobao's.
    expect(&[("taobao", 10_000), ("xiaohongshu", 5_000)], 4).await;
    // Linked afterwards: the same events now credit the Douyin touch.
    post(vec![link("link/a", T + 2 * H, "douyin:a", "taobao:a")]).await;
    expect(&[("douyin", 10_000), ("xiaohongshu", 5_000)], 5).await;
    // Erased: its order leaves the answer, its events the file.
    let (s, b) = t.send("DELETE", "/v1/persons/xhs:b", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    expect(&[("douyin", 10_000)], 3).await;
    // Steps read the same columns, with the event appended since.
    post(vec![ev(
        "add/a",
        T + 3 * H,
        "douyin:a",
        "add_friend",
        "wecom",
    )])
    .await;
    let (s, b) = t
        .send(
            "POST",
            "/v1/analytics/steps",
            json!({"steps": [{"event_type": "touch"}, {"event_type": "purchase"}, {"event_type": "add_friend"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["rows"],
        json!([{"split": "all", "reached": [1, 1, 1]}]),
        "{b}"
    );
    assert_eq!(t.state.0.columns.bytes(), 4 * 28);
}
