//! Erasure rebuilds the engine from the store on another thread: ingestion
//! keeps being acknowledged meanwhile, and the rebuilt engine, caught up
//! with those events, is the one every later read sees.

use crate::TestApp;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

const PERSON: &str = r#"[
 {"id":"p1","ts":"2026-10-01T08:00:00Z","identity":"douyin:9f3a01","type":"comment","text":"多少钱"},
 {"id":"p2","ts":"2026-10-01T08:05:00Z","identity":"wecom:wm0001","type":"identify","ref":"douyin:9f3a01"},
 {"id":"p3","ts":"2026-10-01T09:00:00Z","identity":"wecom:wm0001","type":"purchase","amount":12900}
]"#;

/// `n` touch events of 5 000 other persons, as one JSON array.
fn background(batch: usize, n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"ts":{},"identity":"douyin:bg{}","type":"touch"}}"#,
                // Each event its own second: events without an id are
                // stored under their content id, so equal ones are one.
                1_790_000_000 + batch * n + i,
                (batch * n + i) % 5_000
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

#[tokio::test]
async fn ingest_is_acknowledged_during_the_erasure_rebuild_and_lands_in_the_new_engine() {
    let t = TestApp::spawn().await;
    // Enough history that the rebuild takes a while.
    for b in 0..80 {
        let (s, r) = t.post_events(&background(b, 500)).await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    t.post_events(PERSON).await;

    let erased = AtomicBool::new(false);
    let erase = async {
        let r = t
            .call(
                "DELETE",
                "/v1/persons/wecom:wm0001",
                Some(&t.key),
                "application/json",
                Body::empty(),
            )
            .await;
        erased.store(true, Ordering::SeqCst);
        r
    };
    let ingest = async {
        // Acknowledged while the erasure was still rebuilding / after it.
        let (mut during, mut after) = (0u32, 0u32);
        let mut i = 0;
        while after < 3 {
            let was_erased = erased.load(Ordering::SeqCst);
            let body = json!([
                {"id": format!("c{i}"), "ts": 1_790_100_000 + i, "identity": format!("kuaishou:c{i}"), "type": "follow"},
                {"id": format!("l{i}"), "ts": 1_790_100_000 + i, "identity": format!("mp:o_c{i}"), "type": "identify", "ref": format!("kuaishou:c{i}")}
            ]);
            let (s, r) = t.post_events(&body.to_string()).await;
            assert_eq!(
                (s, r["accepted"].as_u64()),
                (StatusCode::OK, Some(2)),
                "{r}"
            );
            if was_erased {
                after += 1;
            } else if !erased.load(Ordering::SeqCst) {
                during += 1;
            }
            i += 1;
        }
        (during, i)
    };
    let ((status, body), (during, sent)) = tokio::join!(erase, ingest);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events_removed"], 3);
    assert!(
        during > 0,
        "no ingest request was acknowledged while the erasure rebuilt the engine"
    );

    let (s, _) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the rebuilt engine is in place");
    let (_, h) = t.get("/healthz").await;
    assert_eq!(
        h["events"].as_u64(),
        Some(80 * 500 + 2 * sent),
        "every event appended during the rebuild is in the new engine: {h}"
    );
    for i in [0, sent / 2, sent - 1] {
        let (s, p) = t.get(&format!("/v1/persons/mp:o_c{i}")).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(
            p["identities"],
            json!([format!("kuaishou:c{i}"), format!("mp:o_c{i}")]),
            "links made during the rebuild hold"
        );
    }
}

#[tokio::test]
async fn a_property_defined_later_sees_the_whole_log() {
    let t = TestApp::spawn().await;
    t.post_events(PERSON).await;
    let (s, b) = t
        .call(
            "PUT",
            "/v1/properties/purchases_total",
            Some(&t.key),
            "application/json",
            r#"{"aggregate":"sum","event_type":"purchase"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, p) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(p["properties"]["purchases_total"], 12900, "{p}");
}
