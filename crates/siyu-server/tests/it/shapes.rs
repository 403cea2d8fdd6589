//! The answers of the core routes (ops, ingestion, persons, segments,
//! properties, analytics, spend, keys) have the shapes the console and
//! clients read: exactly these fields, null where a value is missing and
//! absent only where it always was (an ingested event's `duplicate`). The
//! handlers answer with typed structs; this pins the JSON they replaced.

use crate::TestApp;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;

/// The field names of an object, sorted.
fn fields(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

const EVENTS: &str = r#"[
 {"id":"s0","ts":"2026-10-01T07:00:00Z","identity":"wecom:wm01","type":"comment","text":"hello"},
 {"id":"s1","ts":"2026-10-01T08:00:00Z","identity":"douyin:aa01","type":"comment","text":"hi"},
 {"id":"s2","ts":"2026-10-01T08:05:00Z","identity":"wecom:wm01","type":"identify","ref":"douyin:aa01","traits":{"city":"上海"}},
 {"id":"s3","ts":"2026-10-01T09:00:00Z","identity":"wecom:wm01","type":"purchase","amount":12900},
 {"id":"s4","ts":"2026-10-02T09:00:00Z","identity":"douyin:bb02","type":"comment","text":"yo"}
]"#;

/// A call with the admin token (the key routes).
async fn admin(t: &TestApp, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    t.call(
        method,
        uri,
        Some("admin-secret"),
        "application/json",
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn ops_and_ingestion_answers_keep_their_fields() {
    let t = TestApp::spawn().await;
    let (_, h) = t.get("/healthz").await;
    assert_eq!(fields(&h), ["events", "identities", "persons", "status"]);
    assert_eq!(h["status"], "ok");
    let (_, w) = t.get("/v1/workspace").await;
    assert_eq!(fields(&w), ["time_zone", "workspace"]);

    let (s, b) = t.post_events(EVENTS).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        fields(&b),
        [
            "accepted",
            "duplicates",
            "offsets",
            "rejected",
            "rejected_by_reason"
        ]
    );
    assert_eq!(fields(&b["offsets"][0]), ["index", "offset"]);
    let (_, b) = t
        .post_events(r#"[{"id":"s1","ts":"2026-10-01T08:00:00Z","identity":"douyin:aa01","type":"comment","text":"hi"},{"id":"x"}]"#)
        .await;
    assert_eq!(fields(&b["offsets"][0]), ["duplicate", "index", "offset"]);
    assert_eq!(b["offsets"][0]["duplicate"], true);
    assert_eq!(fields(&b["rejected"][0]), ["field", "index", "message"]);
    let (s, b) = t.post_events(r#"[{"id":"x"}]"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        fields(&b),
        [
            "accepted",
            "code",
            "duplicates",
            "message",
            "rejected",
            "rejected_by_reason"
        ]
    );
    assert_eq!(
        (b["accepted"].as_u64(), b["code"].as_str()),
        (Some(0), Some("invalid_event"))
    );
}

#[tokio::test]
async fn person_answers_keep_their_fields_and_nulls() {
    let t = TestApp::spawn().await;
    t.post_events(EVENTS).await;
    let (_, d) = t
        .send(
            "PUT",
            "/v1/properties/spent",
            r#"{"aggregate":"sum","event_type":"purchase"}"#,
        )
        .await;
    assert_eq!(fields(&d), ["defined", "name"]);
    let (_, p) = t.get("/v1/persons/wecom:wm01").await;
    assert_eq!(
        fields(&p),
        [
            "canonical_id",
            "events",
            "first_channel",
            "first_friend_at",
            "first_seen",
            "gross_spend",
            "groups",
            "identities",
            "last_event_at",
            "last_purchase_at",
            "net_spend",
            "opted_out",
            "properties",
            "purchases",
            "refunded",
            "refunds_exceed_purchases",
            "rfm",
            "segments",
            "tags",
            "traits",
        ]
    );
    assert_eq!(fields(&p["rfm"]), ["f", "m", "r"]);
    assert_eq!(p["first_friend_at"], Value::Null);
    assert_eq!(p["traits"]["city"], "上海");
    assert_eq!(p["properties"]["spent"], 12900);
    let (_, q) = t.get("/v1/persons/douyin:bb02").await;
    assert_eq!(
        (&q["rfm"], &q["last_purchase_at"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(q["traits"], serde_json::json!({}));

    let (_, f) = t.get("/v1/persons?q=douyin:").await;
    assert_eq!(fields(&f), ["persons"]);
    assert_eq!(fields(&f["persons"][0]), ["canonical_id", "identities"]);
    let (_, tl) = t.get("/v1/persons/douyin:aa01/timeline").await;
    assert_eq!(fields(&tl), ["canonical_id", "events", "next_before"]);
    assert_eq!(tl["next_before"], Value::Null);
    assert_eq!(fields(&tl["events"][0]), ["event", "offset"]);
    let (_, m) = t.get("/v1/persons/douyin:aa01/merges").await;
    assert_eq!(fields(&m), ["canonical_id", "merges"]);
    assert_eq!(
        fields(&m["merges"][0]),
        ["at", "event_offset", "from", "identity", "into", "linked"]
    );
    assert_eq!(m["merges"][0]["from"].as_array().map(Vec::len), Some(2));
    let (s, e) = t
        .call(
            "DELETE",
            "/v1/persons/douyin:bb02",
            Some(&t.key),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(
        fields(&e),
        ["erased", "erasure_id", "events_removed", "identities"]
    );
}

#[tokio::test]
async fn segment_and_property_answers_keep_their_fields() {
    let t = TestApp::spawn().await;
    t.post_events(EVENTS).await;
    let (_, b) = t
        .send(
            "PUT",
            "/v1/segments/buyers",
            r#"{"segment":"purchases >= 1"}"#,
        )
        .await;
    assert_eq!(fields(&b), ["changes", "count", "name", "version"]);
    let (_, l) = t.get("/v1/segments").await;
    assert_eq!(
        fields(&l["segments"][0]),
        ["count", "name", "segment", "status", "tree", "version"]
    );
    let (_, g) = t.get("/v1/segments/buyers").await;
    assert_eq!(g["status"], "ok");
    let (_, p) = t
        .send(
            "POST",
            "/v1/segments/preview",
            r#"{"segment":"purchases >= 1"}"#,
        )
        .await;
    assert_eq!(fields(&p), ["count", "sample", "tree"]);
    let (_, m) = t.get("/v1/segments/buyers/members").await;
    assert_eq!(fields(&m), ["count", "members", "next_after", "segment"]);
    assert_eq!(m["next_after"], Value::Null);
    let (_, x) = t.get("/v1/segments/buyers/explain?person=wecom:wm01").await;
    assert_eq!(
        fields(&x),
        ["canonical_id", "explanation", "member", "segment"]
    );
    let (_, h) = t.get("/v1/segments/buyers/history").await;
    assert_eq!(fields(&h), ["history", "segment"]);
    assert_eq!(fields(&h["history"][0]), ["at", "canonical_id", "change"]);
    assert_eq!(h["history"][0]["change"], "enter");

    t.send(
        "PUT",
        "/v1/properties/spent",
        r#"{"aggregate":"sum","event_type":"purchase"}"#,
    )
    .await;
    let (_, ps) = t.get("/v1/properties").await;
    assert_eq!(fields(&ps), ["properties"]);
    let def = &ps["properties"][0];
    assert_eq!(
        (&def["name"], &def["status"]),
        (&Value::from("spent"), &Value::from("ok"))
    );
    assert!(
        def.get("aggregate").is_some() && def.get("channel").is_none(),
        "{def}"
    );
    // Every DELETE answers the same four fields (journeys add their counts).
    let (_, d) = t.send("DELETE", "/v1/segments/buyers", "").await;
    assert_eq!(fields(&d), ["archived", "deleted", "kind", "name"]);
    t.send("PUT", "/v1/journeys/j", r#"{"trigger":{"type":"event","event":"comment"},"start":"t","steps":{"t":{"type":"add_tag","tag":"x"}}}"#).await;
    let (_, j) = t.send("DELETE", "/v1/journeys/j", "").await;
    assert_eq!(
        fields(&j),
        [
            "archived",
            "cancelled",
            "deleted",
            "enrollments",
            "exited",
            "finishing",
            "kind",
            "name",
            "version"
        ]
    );
}

#[tokio::test]
async fn analytics_spend_and_key_answers_keep_their_fields() {
    let t = TestApp::spawn().await;
    t.post_events(EVENTS).await;
    let (s, b) = t
        .call(
            "PUT",
            "/v1/spend",
            Some(&t.key),
            "text/csv",
            "day,channel,spend\n2026-10-01,douyin,5000\n",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, serde_json::json!({"rows": 1}));
    let (_, r) = t.get("/v1/analytics/rfm").await;
    assert_eq!(fields(&r), ["at", "cells"]);
    assert_eq!(r["cells"].as_array().map(Vec::len), Some(125));
    assert_eq!(fields(&r["cells"][0]), ["f", "m", "persons", "r"]);
    let (_, l) = t.get("/v1/analytics/rfm-layers").await;
    assert_eq!(
        fields(&l),
        [
            "at",
            "buyers",
            "layers",
            "revenue_cents",
            "revenue_per_buyer_cents",
            "thresholds"
        ]
    );
    assert_eq!(l["layers"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        fields(&l["layers"][0]),
        [
            "layer",
            "name",
            "persons",
            "ratio_to_average",
            "revenue_cents",
            "revenue_per_person_cents",
            "share_of_persons",
            "share_of_revenue"
        ]
    );
    assert_eq!(
        fields(&l["thresholds"]),
        [
            "computed_at",
            "frequency",
            "monetary_cents",
            "recency_days",
            "source"
        ]
    );
    let (_, st) = t.get("/v1/settings/rfm").await;
    assert_eq!(fields(&st), ["in_effect", "segment_changes", "setting"]);
    assert_eq!(st["setting"], serde_json::Value::Null);
    for (path, want) in [
        (
            "/v1/analytics/funnel",
            vec!["from", "rows", "time_zone", "to"],
        ),
        ("/v1/analytics/cohorts", vec!["rows", "t0", "time_zone"]),
        ("/v1/analytics/referrals", vec!["inviters", "tiers", "top"]),
        (
            "/v1/analytics/roi",
            vec![
                "from",
                "partners",
                "rows",
                "time_zone",
                "to",
                "undated_spend_excluded",
            ],
        ),
        (
            "/v1/analytics/repurchase",
            vec!["buyers", "median_interval_days", "rate", "repeat_buyers"],
        ),
        ("/v1/analytics/ltv", vec!["from", "rows", "time_zone", "to"]),
        (
            "/v1/analytics/attribution",
            vec!["from", "rows", "time_zone", "to"],
        ),
    ] {
        let (s, a) = t.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {a}");
        assert_eq!(fields(&a), want, "{path}");
    }
    let (_, roi) = t.get("/v1/analytics/roi").await;
    assert_eq!(roi["rows"][0]["channel"], "douyin");
    // An open range is null on both sides; the zone is named.
    assert_eq!(
        (&roi["from"], &roi["to"], &roi["time_zone"]),
        (
            &Value::Null,
            &Value::Null,
            &serde_json::json!("Asia/Shanghai")
        )
    );
    t.post_events(
        r#"[{"id":"s5","ts":"2026-10-01T10:00:00Z","identity":"wecom:wm01","type":"add_friend"}]"#,
    )
    .await;
    let (_, c) = t.get("/v1/analytics/cohorts?t0=1790000000&weeks=2").await;
    assert_eq!(
        fields(&c["rows"][0]),
        ["active", "cohort", "size", "week_start"],
        "{c}"
    );
    let (_, st) = t
        .send(
            "POST",
            "/v1/analytics/steps",
            r#"{"steps":[{"event_type":"comment"}]}"#,
        )
        .await;
    assert_eq!(fields(&st), ["rows", "steps"]);

    let (s, k) = admin(
        &t,
        "POST",
        "/v1/admin/keys",
        r#"{"name":"k2","scopes":["read"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        fields(&k),
        ["id", "key", "name", "note", "origins", "scopes"]
    );
    assert_eq!(k["scopes"], serde_json::json!(["read"]));
    let (_, l) = admin(&t, "GET", "/v1/admin/keys", "").await;
    assert_eq!(fields(&l), ["keys"]);
    assert_eq!(
        fields(&l["keys"][0]),
        ["created_at", "id", "legacy", "name", "origins", "scopes"]
    );
    let id = k["id"].as_str().unwrap();
    let (_, r) = admin(&t, "DELETE", &format!("/v1/admin/keys/{id}"), "").await;
    assert_eq!(r, serde_json::json!({"id": id, "revoked": true}));
}

#[tokio::test]
async fn referrals_honour_their_tiers_and_the_cache_keys_them() {
    let t = TestApp::spawn().await;
    let mut events = Vec::new();
    for (inviter, n) in [("wecom:boss", 3), ("wecom:solo", 1)] {
        for i in 0..n {
            let who = format!("douyin:{}-{i}", &inviter[6..]);
            events.push(serde_json::json!({"ts": 1_790_000_000 + i, "identity": who, "type": "referral_signup", "ref": inviter}));
            events.push(serde_json::json!({"ts": 1_790_000_100 + i, "identity": who, "type": "purchase", "amount": 1000}));
        }
    }
    let (s, b) = t.post_events(&Value::Array(events).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The default tiers (10, 20): nobody reaches them.
    let (_, d) = t.get("/v1/analytics/referrals").await;
    assert_eq!(
        (d["inviters"].as_u64(), &d["tiers"]),
        (Some(2), &serde_json::json!([0, 0])),
        "{d}"
    );
    // tiers=1,3: one inviter in each (and not the cached default answer).
    let (s, r) = t.get("/v1/analytics/referrals?tiers=1,3").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["tiers"], serde_json::json!([1, 1]), "{r}");
    let (_, r) = t.get("/v1/analytics/referrals?tiers=2").await;
    assert_eq!(r["tiers"], serde_json::json!([1]), "{r}");
    // Tiers are ascending invite counts: anything else is a 400 naming them.
    for bad in ["3,1", "x", "0", ""] {
        let (s, e) = t.get(&format!("/v1/analytics/referrals?tiers={bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert!(e.to_string().contains("tiers"), "{bad}: {e}");
    }
}
