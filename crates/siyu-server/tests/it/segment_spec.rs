//! The Segment tracking spec as the SDKs speak it (issue 15): compressed
//! bodies, analytics.js in a browser (CORS, `writeKey` in the body, the
//! short routes, keys' origins), group and screen, linking, context,
//! timestamps, Unicode and numeric ids, rejections counted per field.
//! The official SDKs themselves run in `tests/sdk` (scripts/test).

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::Write;
use tower::ServiceExt;

/// Sends `body` with the given headers; answers status, headers, JSON.
async fn send(
    t: &TestApp,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = siyu_server::app(t.state.clone())
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn key(t: &TestApp, body: Value) -> (StatusCode, Value) {
    t.call(
        "POST",
        "/v1/admin/keys",
        Some("admin-secret"),
        "application/json",
        body.to_string(),
    )
    .await
}

async fn person(t: &TestApp, id: &str) -> Value {
    let (s, b) = t.get(&format!("/v1/persons/{}", percent(id))).await;
    assert_eq!(s, StatusCode::OK, "{id}: {b}");
    b
}

async fn timeline(t: &TestApp, id: &str) -> Vec<Value> {
    let (s, b) = t
        .get(&format!("/v1/persons/{}/timeline?limit=500", percent(id)))
        .await;
    assert_eq!(s, StatusCode::OK, "{id}: {b}");
    b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_read_and_a_bomb_is_413() {
    let t = TestApp::spawn().await; // body limit 1 MiB
    let auth = format!("Bearer {}", t.key);
    let batch = json!({"batch": [
        {"type": "track", "userId": "gz1", "event": "Viewed", "messageId": "gz-m1", "timestamp": "2026-10-01T08:00:00Z"},
    ]});
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/batch",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(batch.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    let events =
        r#"[{"id":"df1","ts":"2026-10-01T08:00:00Z","identity":"wecom:df","type":"touch"}]"#;
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/events",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-encoding", "deflate"),
        ],
        zlib(events.as_bytes()),
    )
    .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    // 4 MiB of spaces compress to a few KiB: the decompressed size counts.
    let mut bomb = b"{\"batch\": [".to_vec();
    bomb.extend(vec![b' '; 4 << 20]);
    bomb.extend(b"]}");
    let packed = gzip(&bomb);
    assert!(packed.len() < 64 * 1024, "{}", packed.len());
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/batch",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        packed,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{b}"
    );
    // Not gzip at all, and an encoding siyu does not read: 400 saying so.
    for (encoding, needle) in [("gzip", "not valid gzip"), ("br", "`br` is not supported")] {
        let (s, _, b) = send(
            &t,
            "POST",
            "/v1/track",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("content-encoding", encoding),
            ],
            "{\"userId\": \"x\"}",
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["message"].as_str().unwrap().contains(needle), "{b}");
    }
}

#[tokio::test]
async fn analytics_js_in_a_browser_uses_an_ingest_key_from_its_origins() {
    let t = TestApp::spawn().await;
    // Only an ingest-only key may have origins.
    let (s, b) = key(
        &t,
        json!({"name": "web", "scopes": ["ingest", "read"], "origins": ["https://shop.example"]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("exactly the `ingest` scope"),
        "{b}"
    );
    let (s, b) = key(
        &t,
        json!({"name": "web", "scopes": ["ingest"], "origins": ["shop.example/path"]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = key(
        &t,
        json!({"name": "web", "scopes": ["ingest"], "origins": ["https://shop.example"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["origins"], json!(["https://shop.example"]));
    let web = b["key"].as_str().unwrap().to_string();

    // The preflight carries no key: answered for the route, naming the origin.
    let (s, h, _) = send(
        &t,
        "OPTIONS",
        "/v1/t",
        &[
            ("origin", "https://shop.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert!(h.get("access-control-allow-credentials").is_none());

    // analytics.js: text/plain, the key only in the body, a short route.
    let track = json!({"type": "track", "event": "Viewed", "userId": "b1", "writeKey": web,
        "messageId": "web-1", "timestamp": "2026-10-01T08:00:00Z"});
    let (s, h, b) = send(
        &t,
        "POST",
        "/v1/t",
        &[
            ("origin", "https://shop.example"),
            ("content-type", "text/plain"),
        ],
        track.to_string(),
    )
    .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");

    // Another origin, or a key that can read, from a browser: refused.
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/t",
        &[
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
        ],
        track.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("https://evil.example"),
        "{b}"
    );
    let full = json!({"type": "track", "event": "Viewed", "userId": "b1", "writeKey": t.key});
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/t",
        &[
            ("origin", "https://shop.example"),
            ("content-type", "text/plain"),
        ],
        full.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("exactly the `ingest` scope"),
        "{b}"
    );
    // No key anywhere: 401, as before.
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/batch",
        &[("content-type", "application/json")],
        r#"{"batch": []}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // A server (no Origin) may put its key in the body too, gzipped.
    let body =
        json!({"writeKey": t.key, "batch": [{"type": "screen", "userId": "b2", "name": "Cart"}]});
    let (s, _, b) = send(
        &t,
        "POST",
        "/v1/b",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
}

#[tokio::test]
async fn the_segment_spec_lands_on_the_person() {
    let t = TestApp::spawn().await;
    let ua = "Mozilla/5.0 test";
    let batch = json!({
        "sentAt": "2026-10-01T08:00:10.000Z",
        "batch": [
            // A previous userId, then its alias: user:, not anon:.
            {"type": "identify", "userId": "王@例子.cn", "traits": {"name": "王"}, "messageId": "m1",
             "timestamp": "2026-10-01T08:00:00Z"},
            {"type": "alias", "userId": 42, "previousId": "王@例子.cn", "messageId": "m2",
             "timestamp": "2026-10-01T08:00:01Z"},
            // Both ids on a track link them; context and UTM are kept.
            {"type": "track", "userId": 42, "anonymousId": "a-42", "event": "Order Completed",
             "properties": {"revenue": 99.9, "currency": "USD"}, "messageId": "m3",
             "context": {"ip": "203.0.113.9", "userAgent": ua, "device": {"id": "dropped"},
                         "campaign": {"source": "Douyin", "name": "双11", "medium": "live"},
                         "page": {"url": "https://shop.example/?utm_source=douyin"}},
             "timestamp": "2026-10-01T08:00:02Z"},
            {"type": "page", "userId": 42, "name": "Home", "category": "Shop",
             "properties": {"path": "/"}, "messageId": "m4", "timestamp": "2026-10-01T08:00:03Z"},
            {"type": "screen", "userId": 42, "name": "Cart", "messageId": "m5",
             "timestamp": "2026-10-01T08:00:04Z"},
            {"type": "group", "userId": 42, "groupId": 7, "traits": {"name": "Acme", "plan": "pro"},
             "messageId": "m6", "timestamp": "2026-10-01T08:00:05Z"},
        ]
    });
    let (s, b) = t
        .call(
            "POST",
            "/v1/batch",
            Some(&t.key),
            "application/json",
            batch.to_string(),
        )
        .await;
    assert_eq!((s, &b["rejected"]), (StatusCode::OK, &json!([])), "{b}");
    let p = person(&t, "user:42").await;
    let ids: Vec<&str> = p["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for id in ["user:42", "user:王@例子.cn", "anon:a-42"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"anon:王@例子.cn"), "{ids:?}");
    assert_eq!(p["traits"]["name"], "王");
    assert_eq!(p["traits"]["group_id"], "7");
    assert_eq!(
        p["traits"]["group"],
        json!({"id": "7", "name": "Acme", "plan": "pro"})
    );
    assert_eq!(p["gross_spend"], 9990);
    let events = timeline(&t, "user:42").await;
    let buy = events.iter().find(|e| e["type"] == "purchase").unwrap();
    assert_eq!(buy["channel"], "douyin", "UTM source → channel: {buy}");
    assert_eq!(buy["properties"]["currency"], "USD");
    assert_eq!(buy["properties"]["campaign"], "双11");
    let ctx = &buy["properties"]["context"];
    assert_eq!(ctx["ip"], "203.0.113.9");
    assert_eq!(ctx["userAgent"], ua);
    assert_eq!(ctx["campaign"]["medium"], "live");
    assert!(ctx.get("device").is_none(), "{ctx}");
    let custom = |n: &str| events.iter().find(|e| e["name"] == n).cloned().unwrap();
    let page = custom("page_viewed");
    assert_eq!(
        (&page["properties"]["name"], &page["properties"]["category"]),
        (&json!("Home"), &json!("Shop"))
    );
    assert_eq!(custom("screen_viewed")["properties"]["name"], "Cart");
    // sentAt skew: the client's clock is off by the difference between
    // its sentAt and our receipt, so each time moved by the same amount.
    let now = siyu_server::writer::wall_clock();
    let skew = now - 1_790_841_610; // receipt − sentAt (2026-10-01T08:00:10Z)
    let ts = |e: &Value| siyu_domain::time::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap();
    let page_ts = ts(&page) - skew;
    assert!(
        (1_790_841_602..=1_790_841_604).contains(&page_ts),
        "{page} skew {skew}"
    );
}

#[tokio::test]
async fn timestamps_follow_the_spec() {
    let t = TestApp::spawn().await;
    let at = |body: Value| {
        let t = &t;
        async move {
            let id = body["userId"].as_str().unwrap().to_string();
            let (s, b) = t
                .call(
                    "POST",
                    "/v1/track",
                    Some(&t.key),
                    "application/json",
                    body.to_string(),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            let e = timeline(t, &format!("user:{id}")).await;
            siyu_domain::time::parse_rfc3339(e[0]["ts"].as_str().unwrap()).unwrap()
        }
    };
    // Epoch milliseconds and seconds, and originalTimestamp without sentAt.
    assert_eq!(
        at(json!({"userId": "t1", "event": "E", "timestamp": 1_790_841_600_123_i64})).await,
        1_790_841_600
    );
    assert_eq!(
        at(json!({"userId": "t2", "event": "E", "timestamp": 1_790_841_600})).await,
        1_790_841_600
    );
    assert_eq!(at(json!({"userId": "t3", "event": "E", "originalTimestamp": "2026-10-01T08:00:00.900+08:00"})).await, 1_790_812_800);
    // A client clock an hour fast: sentAt an hour ahead of receipt.
    let now_ms = siyu_server::writer::wall_clock() * 1000;
    let ahead = |ms: i64| siyu_domain::time::format_rfc3339(ms / 1000);
    let got = at(json!({"userId": "t4", "event": "E",
        "originalTimestamp": ahead(now_ms + 3_600_000 - 60_000), "sentAt": ahead(now_ms + 3_600_000)}))
    .await;
    let want = now_ms / 1000 - 60;
    assert!((want - 2..=want + 2).contains(&got), "{got} vs {want}");
    // Without any time: the receipt.
    let got = at(json!({"userId": "t5", "event": "E"})).await;
    assert!(
        (now_ms / 1000 - 2..=now_ms / 1000 + 5).contains(&got),
        "{got}"
    );
    // A time that is none: named.
    let (s, b) = t
        .call(
            "POST",
            "/v1/track",
            Some(&t.key),
            "application/json",
            json!({"userId": "t6", "event": "E", "timestamp": "yesterday"}).to_string(),
        )
        .await;
    // Well-formed JSON: 200, as Segment answers; the rejection is listed.
    assert_eq!((s, &b["accepted"]), (StatusCode::OK, &json!(0)), "{b}");
    assert_eq!(b["rejected"][0]["field"], "timestamp");
}

#[tokio::test]
async fn rejected_messages_are_counted_per_field_and_ids_refuse_only_separators() {
    let t = TestApp::spawn().await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "ok", "event": "E"},
        {"type": "bogus", "userId": "u"},
        {"type": "track", "event": "E"},
        {"type": "track", "userId": "has space", "event": "E"},
        {"type": "group", "userId": "u"},
    ]});
    let (s, b) = t
        .call(
            "POST",
            "/v1/batch",
            Some(&t.key),
            "application/json",
            batch.to_string(),
        )
        .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    let fields: Vec<&str> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["type", "userId", "identity", "groupId"], "{b}");
    let space = &b["rejected"][2]["message"];
    assert!(space.as_str().unwrap().contains("whitespace"), "{space}");
    let (s, metrics) = t
        .call("GET", "/metrics", None, "text/plain", Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = metrics.as_str().unwrap();
    for field in ["type", "userId", "identity", "groupId"] {
        let line = format!("siyu_ingest_rejected_total{{workspace=\"default\",route=\"/v1/batch\",reason=\"{field}\"}} 1");
        assert!(m.contains(&line), "{line} in\n{m}");
    }
}
