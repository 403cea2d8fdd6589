//! What an operator sees of a request: its id on every log line it causes
//! (the handler's, a blocking thread's, the writer's, the executor's),
//! rejected ingest messages counted per route and reason and logged, and
//! the Segment routes' answers per Segment's spec (200 for a well-formed
//! request, the rejections in the body) beside `/v1/events`' strict 400.

use crate::{Backend, TestApp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::{Mutex, OnceLock};
use tower::ServiceExt;

/// Every log line of this test binary from the moment it is installed,
/// as the JSON format `siyu serve --log-format json` writes.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_thread_names(true)
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

/// The captured lines whose span is request `id`'s.
fn lines_of(id: &str) -> Vec<Value> {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&logs)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["span"]["request_id"] == id)
        .collect()
}

/// Waits (up to 10 s) for a line of request `id` with `message`.
async fn line_of(id: &str, message: &str) -> Value {
    for _ in 0..200 {
        if let Some(v) = lines_of(id)
            .into_iter()
            .find(|v| v["fields"]["message"] == message)
        {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mine = lines_of(id);
    let all = String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let last: Vec<&str> = all.lines().rev().take(40).collect();
    panic!(
        "no line {message:?} of request {id}; of it: {mine:?}; the last lines:\n{}",
        last.join("\n")
    );
}

async fn call_as(
    t: &TestApp,
    request_id: &str,
    method: &str,
    uri: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", t.key))
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = siyu_server::app(t.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn request_ids_reach_the_writer_and_the_executor_on(backend: Backend) {
    capture_logs();
    let t = TestApp::spawn_on(backend, 1024 * 1024).await;
    let tag = format!("{backend:?}-{}", std::process::id());

    // Rejections are logged by the handler, one warn line each.
    let ingest = format!("ingest-{tag}");
    let (s, b) = call_as(
        &t,
        &ingest,
        "POST",
        "/v1/events",
        json!([{"ts": 1_790_000_000, "identity": "wecom:w1", "type": "add_friend"},
               {"ts": 1_790_000_000, "identity": "", "type": "add_friend"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let warn = line_of(&ingest, "ingest: message rejected").await;
    assert_eq!(warn["level"], "WARN", "{warn}");
    assert_eq!(warn["fields"]["reason"], "identity", "{warn}");
    assert_eq!(warn["fields"]["index"], 1, "{warn}");
    assert!(
        warn["fields"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("channel:id")),
        "{warn}"
    );

    // The writer commits an erasure and logs it: in the request's span.
    let erase = format!("erase-{tag}");
    let (s, b) = call_as(&t, &erase, "DELETE", "/v1/persons/wecom:w1", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let line = line_of(
        &erase,
        "erasure committed; rebuilding the engine without it",
    )
    .await;
    assert_eq!(line["threadName"], "siyu-writer", "{line}");
    assert_eq!(line["spans"][0]["request_id"], erase.as_str(), "{line}");
    // The rebuild it started runs on its own thread, for the same request.
    let rebuilt = line_of(&erase, "engine rebuilt from the store").await;
    assert_eq!(rebuilt["threadName"], "siyu-rebuild", "{rebuilt}");

    // The executor handles a mass send in the request's span.
    let send = format!("send-{tag}");
    let (s, b) = call_as(
        &t,
        &send,
        "POST",
        "/v1/sends",
        json!({"id": "s1", "identities": ["wecom:w2"], "template": "no_such_template"}),
    )
    .await;
    assert!(s.is_client_error(), "{s} {b}");
    let line = line_of(&send, "mass send failed").await;
    assert_eq!(line["threadName"], "siyu-automation", "{line}");
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("no_such_template"),
        "{line}"
    );
    // Another request's id never shows up on these lines.
    assert!(lines_of(&send)
        .iter()
        .all(|v| v["span"]["request_id"] == send.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_the_writer_and_the_executor() {
    request_ids_reach_the_writer_and_the_executor_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_the_writer_and_the_executor_on_postgres() {
    if crate::pg_url().is_some() {
        request_ids_reach_the_writer_and_the_executor_on(Backend::Postgres).await;
    }
}

fn metric<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

#[tokio::test]
async fn segment_routes_answer_200_with_what_they_rejected_and_v1_events_stays_strict() {
    let t = TestApp::spawn().await;
    let post = |uri: &'static str, body: String| {
        let t = &t;
        async move {
            t.call("POST", uri, Some(&t.key), "application/json", body)
                .await
        }
    };
    // A batch none of whose messages is valid: 200, nothing stored, each
    // rejection listed, counted per reason.
    let batch = json!({"batch": [
        {"type": "track", "event": "A"},
        {"type": "track", "anonymousId": "a1"},
        {"type": "track", "event": "B"},
    ]});
    let (s, b) = post("/v1/batch", batch.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 0, "{b}");
    assert_eq!(b["offsets"], json!([]), "{b}");
    assert_eq!(
        b["rejected_by_reason"],
        json!({"userId": 2, "event": 1}),
        "{b}"
    );
    let indices: Vec<u64> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [0, 1, 2], "{b}");
    // A single message, on a short route as on its long one: the same.
    for uri in ["/v1/track", "/v1/t"] {
        let (s, b) = post(uri, json!({"event": "E"}).to_string()).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {b}");
        assert_eq!(b["rejected"][0]["field"], "userId", "{uri}: {b}");
        assert_eq!(b["rejected_by_reason"], json!({"userId": 1}), "{uri}: {b}");
    }
    // Some valid: 200 as always, the valid ones stored.
    let (s, b) = post(
        "/v1/batch",
        json!({"batch": [{"type": "identify", "userId": "u1"}, {"type": "alias"}]}).to_string(),
    )
    .await;
    assert_eq!((s, &b["accepted"]), (StatusCode::OK, &json!(1)), "{b}");
    assert_eq!(b["rejected_by_reason"], json!({"userId": 1}), "{b}");
    // Not JSON, or not a batch: 400, as Segment answers.
    let (s, b) = post("/v1/batch", "{\"batch\": [".into()).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{b}"
    );
    let (s, b) = post("/v1/t", "not json".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = post("/v1/batch", json!({"batch": {"no": "array"}}).to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // siyu's own API stays strict: nothing valid is a 400 with the list.
    let (s, b) = t
        .post_events(r#"[{"ts": 1790000000, "identity": "wecom:x", "type": "no_such_type"}]"#)
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_event")),
        "{b}"
    );
    assert_eq!(b["rejected_by_reason"], json!({"type": 1}), "{b}");

    let (s, m) = t
        .call("GET", "/metrics", None, "text/plain", Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let m = m.as_str().unwrap();
    for (series, want) in [
        (
            r#"siyu_ingest_rejected_total{workspace="default",route="/v1/batch",reason="userId"}"#,
            "3",
        ),
        (
            r#"siyu_ingest_rejected_total{workspace="default",route="/v1/batch",reason="event"}"#,
            "1",
        ),
        (
            r#"siyu_ingest_rejected_total{workspace="default",route="/v1/track",reason="userId"}"#,
            "1",
        ),
        (
            r#"siyu_ingest_rejected_total{workspace="default",route="/v1/t",reason="userId"}"#,
            "1",
        ),
        (
            r#"siyu_ingest_rejected_total{workspace="default",route="/v1/events",reason="type"}"#,
            "1",
        ),
        (
            r#"siyu_ingest_requests_total{workspace="default",route="/v1/batch"}"#,
            "2",
        ),
        (
            r#"siyu_http_requests_total{workspace="default",route="/v1/batch",method="POST",status="200"}"#,
            "2",
        ),
        (
            r#"siyu_http_requests_total{workspace="default",route="/v1/batch",method="POST",status="400"}"#,
            "2",
        ),
        (
            r#"siyu_http_requests_total{workspace="default",route="/v1/events",method="POST",status="400"}"#,
            "1",
        ),
    ] {
        assert_eq!(metric(m, series), Some(want), "{series} in\n{m}");
    }
}
