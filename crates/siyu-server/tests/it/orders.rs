//! `POST /v1/orders`: marketplace orders land on the right person (by the
//! hashed phone linked to a known person's phone trait, by buyer id), are
//! idempotent on order id, and every bad order is reported by index and field.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn post_orders(t: &TestApp, body: &Value) -> (StatusCode, Value) {
    t.call(
        "POST",
        "/v1/orders",
        Some(&t.key),
        "application/json",
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn purchase_and_refund_land_on_the_person_with_that_phone_trait() {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .post_events(
            r#"[{"id":"w1","ts":"2026-10-01T08:00:00Z","identity":"wecom:x","type":"identify","traits":{"phone":"138 0000 0000","name":"王芳"}}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let paid = json!({"orders": [{"order_id": "T1001", "marketplace": "taobao", "status": "paid",
        "amount": "199.00", "paid_at": "2026-11-11 20:15:00", "phone": "+86 138-0000-0000"}]});
    let (s, b) = post_orders(&t, &paid).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(1), Some(0)),
        "{b}"
    );
    assert_eq!(b["matched"]["phone_existing_person"], 1, "{b}");
    assert_eq!(b["rejected"], json!([]));

    let (_, p) = t.get("/v1/persons/wecom:x").await;
    assert_eq!(
        (p["purchases"].as_u64(), p["gross_spend"].as_i64()),
        (Some(1), Some(19900)),
        "{p}"
    );
    let ids = p["identities"].as_array().unwrap();
    assert!(
        ids.iter()
            .any(|i| i.as_str().unwrap().starts_with("phone_hmac:")),
        "{p}"
    );

    // Later the order is partly refunded; in the same request a second
    // order, and its refund row that carries no buyer fields.
    let later = json!([
        {"order_id": "T1001", "channel": "taobao", "status": "partially_refunded", "amount": "199.00",
         "refund_amount": "50.00", "paid_at": "2026-11-11 20:15:00", "refunded_at": "2026-11-13T02:00:00Z",
         "phone": "13800000000"},
        {"order_id": "T1002", "channel": "taobao", "status": "paid", "amount_cents": 10000,
         "paid_at": 1_794_000_000, "phone": "138 0000 0000"},
        {"order_id": "T1002", "channel": "taobao", "event": "refund", "refund_amount": "100",
         "refunded_at": 1_794_100_000}
    ]);
    let (s, b) = post_orders(&t, &later).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // T1001's purchase is already in the log: its refund is the new event.
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(3), Some(0)),
        "{b}"
    );
    assert_eq!(b["events"], json!({"accepted": 3, "duplicates": 1}), "{b}");
    assert_eq!(b["matched"]["phone_existing_person"], 3, "{b}");

    let (_, p) = t.get("/v1/persons/wecom:x").await;
    assert_eq!(
        (
            p["purchases"].as_u64(),
            p["gross_spend"].as_i64(),
            p["refunded"].as_i64(),
            p["net_spend"].as_i64()
        ),
        (Some(2), Some(29900), Some(15000), Some(14900)),
        "{p}"
    );

    // Importing the same orders again adds nothing.
    for body in [&paid, &later] {
        let (s, b) = post_orders(&t, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["accepted"], 0, "{b}");
        assert_eq!(b["events"]["accepted"], 0, "{b}");
    }
    let (_, again) = t.get("/v1/persons/wecom:x").await;
    assert_eq!(again["events"], p["events"]);
    assert_eq!(again["net_spend"], 14900);

    // The imported events hold only the hash of the number.
    let (_, timeline) = t.get("/v1/persons/wecom:x/timeline").await;
    let imported: Vec<&Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["id"].as_str().unwrap().starts_with("order:"))
        .collect();
    assert_eq!(imported.len(), 5, "{timeline}");
    let text = serde_json::to_string(&imported).unwrap();
    for raw in ["13800000000", "138 0000 0000", "138-0000-0000"] {
        assert!(!text.contains(raw), "{text}");
    }
}

#[tokio::test]
async fn bad_orders_are_reported_by_index_and_field_while_good_ones_land() {
    let t = TestApp::spawn().await;
    let good = json!({"order_id": "D1", "channel": "douyin", "status": "已完成", "amount": "59.90",
        "paid_at": "2026-11-11T12:00:00Z", "buyer_id": "dy_123"});
    let body = json!([
        good,
        {"channel": "douyin", "amount": "1.00", "paid_at": 1_794_000_000, "buyer_id": "a"},
        {"order_id": "D3", "channel": "douyin", "amount": "abc", "paid_at": 1_794_000_000, "buyer_id": "a"},
        {"order_id": "D4", "channel": "amazon.com", "amount": "1.00", "paid_at": 1_794_000_000, "buyer_id": "a"},
        {"order_id": "D5", "channel": "douyin", "amount": "1.00", "paid_at": 1_794_000_000_000i64, "buyer_id": "a"},
        {"order_id": "D6", "channel": "douyin", "amount": 12, "paid_at": 1_794_000_000, "buyer_id": "a"},
        {"order_id": "D7", "channel": "douyin", "amount": "1.00", "paid_at": 1_794_000_000},
        {"order_id": "D8", "channel": "douyin", "amount": "1.00", "paid_at": 1_794_000_000, "phone": "138****0000"}
    ]);
    let (s, b) = post_orders(&t, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 1, "{b}");
    assert_eq!(b["matched"]["buyer_id"], 1, "{b}");
    let rejected: Vec<(u64, &str)> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "order_id"),
            (2, "amount"),
            (3, "channel"),
            (4, "paid_at"),
            (5, "amount"),
            (6, "buyer"),
            (7, "phone")
        ],
        "{b}"
    );
    let messages = b["rejected"].to_string();
    assert!(
        messages.contains("epoch seconds, not milliseconds"),
        "{messages}"
    );
    assert!(messages.contains("ambiguous"), "{messages}");

    let (_, p) = t.get("/v1/persons/douyin:dy_123").await;
    assert_eq!(
        (p["purchases"].as_u64(), p["gross_spend"].as_i64()),
        (Some(1), Some(5990)),
        "{p}"
    );

    // Nothing valid: 422 with the same list; an unreadable body: 400; no key: 401.
    let (s, b) = post_orders(&t, &json!({"orders": [{"order_id": "x"}]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["code"], "invalid_definition");
    assert_eq!(b["rejected"][0]["field"], "channel", "{b}");
    let (s, b) = t
        .call(
            "POST",
            "/v1/orders",
            Some(&t.key),
            "application/json",
            "{\"orders\": [",
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (s, _) = t
        .call(
            "POST",
            "/v1/orders",
            None,
            "application/json",
            body.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refund_beyond_the_persons_purchases_is_flagged_in_the_answer_and_the_profile() {
    let t = TestApp::spawn().await;
    let (s, b) = post_orders(
        &t,
        &json!([{"order_id": "1", "channel": "taobao", "buyer_id": "b1", "status": "paid",
                 "amount": "10.00", "paid_at": "2026-11-11 20:15:00"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["over_refunded"], json!([]), "{b}");
    // A refund row of ¥1000 for a buyer who paid ¥10: stored (the log keeps
    // what the marketplace said) but flagged, by order and person.
    let (s, b) = post_orders(
        &t,
        &json!([{"order_id": "2", "channel": "taobao", "buyer_id": "b1", "status": "refund",
                 "refund_amount": "1000.00", "refunded_at": "2026-11-12 10:00:00"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let flagged = &b["over_refunded"][0];
    assert_eq!(
        (
            flagged["index"].as_u64(),
            flagged["order_id"].as_str(),
            flagged["person"].as_str(),
            flagged["purchased_cents"].as_i64(),
            flagged["refunded_cents"].as_i64()
        ),
        (
            Some(0),
            Some("2"),
            Some("taobao:b1"),
            Some(1000),
            Some(100_000)
        ),
        "{b}"
    );
    let (_, p) = t.get("/v1/persons/taobao:b1").await;
    assert_eq!(p["refunds_exceed_purchases"], true, "{p}");
    assert_eq!(p["net_spend"], -99_000, "{p}");
}
