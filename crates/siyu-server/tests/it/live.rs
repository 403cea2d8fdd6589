//! Live sessions (直播) through the API: saved with their faults named,
//! and a session's report over events from several channels.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_live_session_reports_what_it_brought_from_every_channel() {
    let app = TestApp::spawn().await;
    let t: i64 = 1_790_000_000;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/live-sessions/s1",
            json!({"title": "双11 预热", "channel": "douyin", "host": "小美", "starts_at": t, "ends_at": t + 7200, "products": ["sku-1"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["attribution_hours"], 24);
    for (body, field) in [
        (
            json!({"title": "x", "channel": "douyin", "starts_at": t, "ends_at": t}),
            "ends_at",
        ),
        (
            json!({"title": "", "channel": "douyin", "starts_at": t, "ends_at": t + 1}),
            "title",
        ),
        (
            json!({"title": "x", "channel": "抖 音", "starts_at": t, "ends_at": t + 1}),
            "channel",
        ),
    ] {
        let (s, b) = app.send("PUT", "/v1/live-sessions/bad", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["message"].as_str().unwrap().starts_with(field), "{b}");
    }
    let events = json!([
        {"ts": t - 86_400, "identity": "douyin:a", "type": "touch"},
        {"ts": t + 60, "identity": "douyin:a", "type": "comment", "text": "多少钱"},
        {"ts": t + 600, "identity": "douyin:a", "type": "message_sent"},
        {"ts": t + 700, "identity": "wecom:a", "type": "identify", "ref": "douyin:a"},
        {"ts": t + 3 * 3600, "identity": "wecom:a", "type": "purchase", "amount": 19900, "channel": "taobao"},
        {"ts": t + 10 * 86_400, "identity": "wecom:a", "type": "purchase", "amount": 9900},
        {"ts": t + 120, "identity": "douyin:b", "type": "comment", "text": "有货吗"},
        {"ts": t + 7300, "identity": "douyin:b", "type": "purchase", "amount": 5000},
        {"ts": t + 8000, "identity": "douyin:b", "type": "refund", "amount": 5000},
        {"ts": t + 30, "identity": "wecom:c", "type": "touch", "properties": {"campaign": "live:s1"}},
        {"ts": t + 4 * 86_400, "identity": "wecom:c", "type": "purchase", "amount": 7000},
        {"ts": t + 8000, "identity": "douyin:d", "type": "comment", "text": "晚了"},
        {"ts": t + 100, "identity": "kuaishou:e", "type": "comment", "text": "hi"}
    ]);
    let (s, b) = app.post_events(&events.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, r) = app.get("/v1/live-sessions/s1/report").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["session"]["title"], "双11 预热");
    for (k, v) in [
        ("viewers", json!(3)),
        ("new_persons", json!(2)),
        ("comments", json!(2)),
        ("comments_answered", json!(1)),
        ("orders", json!(2)),
        ("buyers", json!(2)),
        ("revenue", json!(19_900)),
        ("refunded", json!(5_000)),
        ("repeat_buyers", json!(1)),
        ("repeat_final", json!(true)),
    ] {
        assert_eq!(r[k], v, "{k}: {r}");
    }
    let (_, list) = app.get("/v1/live-sessions").await;
    assert_eq!(list["live_sessions"][0]["id"], "s1");
    let (s, _) = app.get("/v1/live-sessions/nope/report").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app.send("DELETE", "/v1/live-sessions/s1", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app.get("/v1/live-sessions/s1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
