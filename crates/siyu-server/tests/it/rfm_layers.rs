//! RFM value layers over HTTP: the layer report with exact numbers, the
//! thresholds setting (validated, naming the field), segments reading
//! `rfm_layer` following a threshold change, and the cache following the
//! thresholds.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_domain::time::format_rfc3339;
use siyu_engine::rfm::RfmSource;

const DAY: i64 = 86_400;

/// (who, days since the last purchase, purchases, amount each, refund):
/// one buyer in each of the eight corners under the medians (10 days,
/// more than 1 purchase, more than ¥300), and a person who never bought.
const BUYERS: [(&str, i64, i64, i64, i64); 8] = [
    ("douyin:a", 2, 3, 100_000, 0),
    ("douyin:b", 5, 1, 200_000, 0),
    ("douyin:c", 60, 2, 80_000, 10_000),
    ("douyin:d", 90, 1, 120_000, 0),
    ("douyin:e", 10, 2, 10_000, 0),
    ("douyin:f", 1, 1, 5_000, 0),
    ("douyin:g", 45, 3, 10_000, 0),
    ("douyin:h", 200, 1, 10_000, 0),
];

fn events(now: i64) -> String {
    let mut v = Vec::new();
    for (who, days, n, amount, refund) in BUYERS {
        // An hour past the day boundary, so the whole days hold all test long.
        let last = now - days * DAY - 3600;
        for k in 0..n {
            let ts = format_rfc3339(last - k * 7 * DAY);
            v.push(json!({"ts": ts, "identity": who, "type": "purchase", "amount": amount}));
        }
        if refund > 0 {
            let ts = format_rfc3339(last);
            v.push(json!({"ts": ts, "identity": who, "type": "refund", "amount": refund}));
        }
    }
    v.push(json!({"ts": format_rfc3339(now - DAY), "identity": "douyin:z", "type": "touch"}));
    Value::Array(v).to_string()
}

fn thresholds(v: &Value) -> (u64, u64, u64) {
    (
        v["recency_days"].as_u64().unwrap(),
        v["frequency"].as_u64().unwrap(),
        v["monetary_cents"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn eight_layers_with_their_share_of_revenue_and_thresholds_that_segments_follow() {
    let t = TestApp::spawn().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (s, b) = t.post_events(&events(now)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // No setting: the medians among the 8 buyers (z never bought).
    let (s, r) = t.get("/v1/analytics/rfm-layers").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(thresholds(&r["thresholds"]), (10, 1, 30_000), "{r}");
    assert_eq!(r["thresholds"]["source"], "median");
    assert_eq!(r["buyers"], 8);
    assert_eq!(r["revenue_cents"], 835_000);
    assert_eq!(r["revenue_per_buyer_cents"], 104_375);

    // The periodic full settings check (every 30 s on every node) finds the
    // medians already pinned and leaves them: no pass over every person,
    // no threshold change published. Only their hourly refresh re-pins.
    // The writer pins them on its idle tick, once there are buyers.
    let mut pinned = None;
    for _ in 0..100 {
        pinned = t.state.0.engine.read().unwrap().rfm_basis();
        if pinned.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pinned = pinned.expect("the medians pinned within 5 s");
    assert!(
        matches!(pinned.source, RfmSource::Median { .. }),
        "{pinned:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    t.state.0.writer.follow(Vec::new());
    // Commands are taken in order: once the snapshot is written, the
    // writer has followed.
    t.state.0.writer.snapshot().await.unwrap();
    assert_eq!(t.state.0.engine.read().unwrap().rfm_basis(), Some(pinned));
    let layers = r["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "重要价值客户",
            "重要发展客户",
            "重要保持客户",
            "重要挽留客户",
            "一般价值客户",
            "一般发展客户",
            "一般保持客户",
            "一般挽留客户"
        ]
    );
    // One buyer per layer; revenue as hand-computed (c: 2 × 800 − 100 yuan).
    let revenue: Vec<i64> = layers
        .iter()
        .map(|l| l["revenue_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(
        revenue,
        [300_000, 200_000, 150_000, 120_000, 20_000, 5_000, 30_000, 10_000]
    );
    assert!(layers
        .iter()
        .all(|l| l["persons"] == 1 && l["share_of_persons"] == 0.125));
    let champions = &layers[0];
    assert_eq!(champions["layer"], "important_value");
    assert_eq!(
        champions["share_of_revenue"].as_f64().unwrap(),
        300_000.0 / 835_000.0
    );
    assert_eq!(champions["revenue_per_person_cents"], 300_000);
    assert_eq!(
        champions["ratio_to_average"].as_f64().unwrap(),
        300_000.0 / 104_375.0
    );

    // Bad thresholds: 400 naming the field, nothing saved.
    for (body, field) in [
        (
            json!({"recency_days": 30, "frequency": 1, "monetary_cents": -5}),
            "monetary_cents",
        ),
        (
            json!({"recency_days": 40_000, "frequency": 1, "monetary_cents": 5}),
            "recency_days",
        ),
        (
            json!({"recency_days": 30, "monetary_cents": 5}),
            "frequency",
        ),
        (
            json!({"recency": 30, "recency_days": 30, "frequency": 1, "monetary_cents": 5}),
            "recency",
        ),
        (
            json!({"recency_days": "30", "frequency": 1, "monetary_cents": 5}),
            "recency_days",
        ),
    ] {
        let (s, e) = t.send("PUT", "/v1/settings/rfm", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    for (q, field) in [
        ("monetary_cents=-1", "monetary_cents"),
        ("recency_days=abc", "recency_days"),
    ] {
        let (s, e) = t.get(&format!("/v1/analytics/rfm-layers?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert!(e["message"].as_str().unwrap().contains(field), "{q}: {e}");
    }
    let (_, st) = t.get("/v1/settings/rfm").await;
    assert_eq!(st["setting"], Value::Null, "{st}");

    // A segment on a layer, under a setting; a looser recency takes c in.
    let (s, st) = t
        .send(
            "PUT",
            "/v1/settings/rfm",
            json!({"recency_days": 30, "frequency": 1, "monetary_cents": 30_000}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["in_effect"]["source"], "setting");
    let (s, saved) = t
        .send(
            "PUT",
            "/v1/segments/champions",
            json!({"segment": "rfm_layer = \"重要价值客户\""}),
        )
        .await;
    assert_eq!(
        (s, saved["count"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{saved}"
    );
    let (_, st) = t
        .send(
            "PUT",
            "/v1/settings/rfm",
            json!({"recency_days": 60, "frequency": 1, "monetary_cents": 30_000}),
        )
        .await;
    assert_eq!(st["segment_changes"], 1, "{st}");
    assert_eq!(thresholds(&st["setting"]), (60, 1, 30_000));
    let (_, m) = t.get("/v1/segments/champions/members").await;
    assert_eq!(m["members"], json!(["douyin:a", "douyin:c"]), "{m}");
    // The cached report follows the thresholds.
    let (_, r) = t.get("/v1/analytics/rfm-layers").await;
    assert_eq!(r["thresholds"]["source"], "setting", "{r}");
    assert_eq!(thresholds(&r["thresholds"]), (60, 1, 30_000));
    assert_eq!(r["layers"][0]["persons"], 2);
    assert_eq!(r["layers"][2]["persons"], 0);
    // Thresholds tried in the query, not saved.
    let (_, q) = t.get("/v1/analytics/rfm-layers?recency_days=10").await;
    assert_eq!(q["thresholds"]["source"], "query");
    assert_eq!(thresholds(&q["thresholds"]), (10, 1, 30_000));
    assert_eq!(q["layers"][0]["persons"], 1);
    // Removing the setting brings the medians back, and c leaves.
    let (s, st) = t.send("DELETE", "/v1/settings/rfm", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["setting"], Value::Null);
    assert_eq!(st["in_effect"]["source"], "median");
    assert_eq!(thresholds(&st["in_effect"]), (10, 1, 30_000));
    assert_eq!(st["segment_changes"], 1);
    let (_, m) = t.get("/v1/segments/champions/members").await;
    assert_eq!(m["members"], json!(["douyin:a"]), "{m}");

    // An unknown layer is refused, listing the eight.
    let (s, e) = t
        .send(
            "POST",
            "/v1/segments/preview",
            json!({"segment": "rfm_layer = \"vip\""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("重要价值客户") && msg.contains("一般挽留客户"),
        "{msg}"
    );
    let tree = json!({"kind": "cmp", "prop": {"prop": "rfm_layer"}, "op": "=", "value": "vip"});
    let (s, e) = t
        .send("PUT", "/v1/segments/bogus", json!({"tree": tree}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e["message"].as_str().unwrap().contains("\"vip\""), "{e}");
}
