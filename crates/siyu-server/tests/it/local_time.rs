//! The workspace time zone (issue 14.6) and date ranges on analytics with
//! spend by day (issue 14.5): dates mean local calendar days (Shanghai by
//! default), cohort weeks start Monday 00:00 local, answers name the zone,
//! and bad values are 400s naming the field.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// Two persons: douyin:a first seen 2026-10-31T12:15Z (20:15 that day in
/// Shanghai) buys 129.00; wechat:b first seen 2026-10-31T17:00Z (01:00 on
/// 2026-11-01 in Shanghai, still 10-31 in UTC) buys 50.00.
const TWO_DAYS: &str = r#"[
 {"id":"a1","ts":"2026-10-31T12:15:00Z","identity":"douyin:a","type":"touch"},
 {"id":"a2","ts":"2026-10-31T12:20:00Z","identity":"douyin:a","type":"purchase","amount":12900},
 {"id":"b1","ts":"2026-10-31T17:00:00Z","identity":"wechat:b","type":"touch"},
 {"id":"b2","ts":"2026-10-31T17:05:00Z","identity":"wechat:b","type":"purchase","amount":5000}
]"#;

const SPEND: &str = "day,channel,spend\n2026-10-30,douyin,1000\n2026-10-31,douyin,2000\n2026-11-01,douyin,400\n2026-11-01,wechat,3000\n";

async fn two_days() -> TestApp {
    let t = TestApp::spawn().await;
    let (s, b) = t.post_events(TWO_DAYS).await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(4)),
        "{b}"
    );
    let (s, b) = t
        .call("PUT", "/v1/spend", Some(&t.key), "text/csv", SPEND)
        .await;
    assert_eq!((s, b["rows"].as_u64()), (StatusCode::OK, Some(4)), "{b}");
    t
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn roi_for_a_range_counts_local_days_of_spend_and_persons() {
    let t = two_days().await;
    // All time: every spend row, every person.
    let (s, all) = t.get("/v1/analytics/roi").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(
        rows(&all),
        [
            json!({"channel": "douyin", "spend": 3400, "revenue": 12900, "persons": 1}),
            json!({"channel": "wechat", "spend": 3000, "revenue": 5000, "persons": 1}),
        ]
    );
    // 2026-10-31 in Shanghai: douyin's day; wechat:b arrived at 01:00 the next day.
    let (s, oct31) = t
        .get("/v1/analytics/roi?from=2026-10-31&to=2026-10-31")
        .await;
    assert_eq!(s, StatusCode::OK, "{oct31}");
    assert_eq!(
        rows(&oct31),
        [json!({"channel": "douyin", "spend": 2000, "revenue": 12900, "persons": 1})]
    );
    assert_eq!(
        (&oct31["time_zone"], &oct31["from"], &oct31["to"]),
        (
            &json!("Asia/Shanghai"),
            &json!("2026-10-31T00:00:00+08:00"),
            &json!("2026-11-01T00:00:00+08:00")
        )
    );
    let (_, nov1) = t
        .get("/v1/analytics/roi?from=2026-11-01&to=2026-11-01")
        .await;
    assert_eq!(
        rows(&nov1),
        [
            json!({"channel": "douyin", "spend": 400, "revenue": 0, "persons": 0}),
            json!({"channel": "wechat", "spend": 3000, "revenue": 5000, "persons": 1}),
        ]
    );
    // A day outside every spend row and every arrival: nothing.
    let (_, dec) = t.get("/v1/analytics/roi?from=2026-12-01").await;
    assert_eq!(rows(&dec), Vec::<Value>::new(), "{dec}");
    // An instant bound: from 20:00 Shanghai on 10-31 (12:00Z) on.
    let (_, late) = t
        .get("/v1/analytics/roi?from=2026-10-31T12:00:00Z&to=2026-11-01")
        .await;
    assert_eq!(
        rows(&late),
        [
            json!({"channel": "douyin", "spend": 2400, "revenue": 12900, "persons": 1}),
            json!({"channel": "wechat", "spend": 3000, "revenue": 5000, "persons": 1}),
        ]
    );
}

#[tokio::test]
async fn spend_without_days_counts_only_without_a_range() {
    let t = two_days().await;
    let (s, b) = t
        .call(
            "PUT",
            "/v1/spend",
            Some(&t.key),
            "text/csv",
            "channel,spend\ndouyin,7000\n",
        )
        .await;
    assert_eq!((s, b["rows"].as_u64()), (StatusCode::OK, Some(1)), "{b}");
    let (_, all) = t.get("/v1/analytics/roi").await;
    assert_eq!(rows(&all)[0]["spend"], 7000, "{all}");
    let (_, day) = t
        .get("/v1/analytics/roi?from=2026-10-31&to=2026-10-31")
        .await;
    assert_eq!(rows(&day)[0]["spend"], 0, "{day}");
    assert_eq!(day["undated_spend_excluded"], 7000, "{day}");
}

#[tokio::test]
async fn funnel_attribution_and_ltv_take_local_ranges() {
    let t = two_days().await;
    let (s, f) = t
        .get("/v1/analytics/funnel?from=2026-10-31&to=2026-10-31")
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(
        rows(&f),
        [json!({"channel": "douyin", "entered": 1, "friended": 0, "converted": 0})]
    );
    assert_eq!(f["time_zone"], "Asia/Shanghai");
    let (s, a) = t
        .get("/v1/analytics/attribution?from=2026-11-01&to=2026-11-01")
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        rows(&a),
        [json!({"channel": "wechat", "first_touch": 5000, "last_touch": 5000, "linear": 5000.0})]
    );
    // Months are local too: wechat:b arrived in November in Shanghai.
    let (s, l) = t.get("/v1/analytics/ltv").await;
    assert_eq!(s, StatusCode::OK, "{l}");
    let months: Vec<String> = rows(&l)
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["cohort_month"].as_str().unwrap(),
                r["channel"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(months, ["2026-10 douyin", "2026-11 wechat"], "{l}");
    let (_, l) = t.get("/v1/analytics/ltv?from=2026-11-01").await;
    assert_eq!(
        rows(&l),
        [
            json!({"cohort_month": "2026-11", "channel": "wechat", "persons": 1, "revenue": 5000, "ltv": 5000.0})
        ]
    );
}

#[tokio::test]
async fn bad_ranges_and_zones_are_400s_naming_the_field() {
    let t = TestApp::spawn().await;
    for path in ["roi", "funnel", "attribution", "ltv"] {
        let (s, b) = t.get(&format!("/v1/analytics/{path}?from=yesterday")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        let m = b["message"].as_str().unwrap();
        assert!(m.starts_with("from: `yesterday` is neither a date nor an instant; give YYYY-MM-DD (a day in Asia/Shanghai"), "{path}: {m}");
        let (s, b) = t.get(&format!("/v1/analytics/{path}?to=2026-02-30")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .starts_with("to: `2026-02-30`"),
            "{b}"
        );
        let (s, b) = t
            .get(&format!(
                "/v1/analytics/{path}?from=2026-11-02&to=2026-11-01"
            ))
            .await;
        assert_eq!(
            (s, b["message"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                Some("from: `2026-11-02` is after to: `2026-11-01`; give a from on or before to")
            )
        );
    }
    let (s, b) = t
        .call(
            "PUT",
            "/v1/workspace",
            Some("admin-secret"),
            "application/json",
            r#"{"time_zone": "Mars/Olympus"}"#,
        )
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("time_zone: `Mars/Olympus` is not a time zone; give an IANA name such as \"Asia/Shanghai\" or \"America/New_York\"")
        )
    );
}

#[tokio::test]
async fn the_workspace_time_zone_is_a_setting_that_drives_ranges_and_guardrails() {
    let t = two_days().await;
    let (s, w) = t.get("/v1/workspace").await;
    assert_eq!(
        (s, &w["time_zone"]),
        (StatusCode::OK, &json!("Asia/Shanghai")),
        "{w}"
    );
    let (_, g) = t.get("/v1/guardrails").await;
    assert_eq!(g["default_timezone"], "Asia/Shanghai");
    let (s, w) = t
        .call(
            "PUT",
            "/v1/workspace",
            Some("admin-secret"),
            "application/json",
            r#"{"time_zone": "UTC"}"#,
        )
        .await;
    assert_eq!((s, &w["time_zone"]), (StatusCode::OK, &json!("UTC")), "{w}");
    let (_, w) = t.get("/v1/workspace").await;
    assert_eq!(w["time_zone"], "UTC");
    // A policy that names no zone follows the workspace's.
    let (_, g) = t.get("/v1/guardrails").await;
    assert_eq!(g["default_timezone"], "UTC");
    // In UTC, wechat:b (17:00Z) arrived on 10-31: the same question, a new
    // answer (the cached Shanghai one is not served).
    let (_, oct31) = t
        .get("/v1/analytics/roi?from=2026-10-31&to=2026-10-31")
        .await;
    assert_eq!(oct31["time_zone"], "UTC");
    assert_eq!(
        rows(&oct31),
        [
            json!({"channel": "douyin", "spend": 2000, "revenue": 12900, "persons": 1}),
            json!({"channel": "wechat", "spend": 0, "revenue": 5000, "persons": 1}),
        ]
    );
    // Only an admin changes it.
    let (s, _) = t
        .call(
            "PUT",
            "/v1/workspace",
            Some(&t.key),
            "application/json",
            r#"{"time_zone": "UTC"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// 2026-11-01T17:00Z is Monday 01:00 in Shanghai: the first add_friend
/// falls in the local week starting Monday 2026-11-02, whatever `t0` (here
/// 08:00 local on the Monday before) says about the hour.
#[tokio::test]
async fn cohort_weeks_start_monday_midnight_local() {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .post_events(
            r#"[{"id":"f","ts":"2026-11-01T17:00:00Z","identity":"wecom:c","type":"add_friend"},
                {"id":"r","ts":"2026-11-08T17:00:00Z","identity":"wecom:c","type":"message_read"}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t0 = siyu_domain::time::parse_rfc3339("2026-10-26T00:00:00Z").unwrap();
    let (s, c) = t
        .get(&format!("/v1/analytics/cohorts?t0={t0}&weeks=3"))
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(
        (&c["t0"], &c["time_zone"]),
        (&json!("2026-10-26T00:00:00+08:00"), &json!("Asia/Shanghai"))
    );
    assert_eq!(
        rows(&c),
        [json!({"cohort": 1, "week_start": "2026-11-02", "size": 1, "active": [0, 1, 0]})]
    );
}
