//! Every kind of bad input, one request each, data-driven: the status, the
//! stable code, and a message that names the field (or the line and column
//! of broken JSON) — and the data accepted before is untouched.

use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::json;
use siyu_server::config::Config;

const GOOD: &str = r#"[
 {"id":"g1","ts":"2026-10-01T08:00:00Z","identity":"douyin:9f3a01","type":"comment","text":"多少钱"},
 {"id":"g2","ts":"2026-10-01T09:00:00Z","identity":"douyin:9f3a01","type":"purchase","amount":12900}
]"#;

/// (what, content type, body, status, code, text the message must contain)
type Case = (
    &'static str,
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
    &'static str,
);

fn event(fields: &str) -> Vec<u8> {
    format!("[{{{fields}}}]").into_bytes()
}

fn cases() -> Vec<Case> {
    let json = "application/json";
    let bad = StatusCode::BAD_REQUEST;
    vec![
        (
            "malformed JSON",
            json,
            br#"[{"ts": 1,"#.to_vec(),
            bad,
            "bad_request",
            "line 1, column",
        ),
        (
            "malformed JSON on a later line",
            json,
            b"[\n{\"ts\": 1}\n{\"ts\": 2}]".to_vec(),
            bad,
            "bad_request",
            "line 3, column 1",
        ),
        (
            "invalid UTF-8",
            json,
            vec![b'[', 0xff, 0xfe, b']'],
            bad,
            "bad_request",
            "UTF-8",
        ),
        (
            "empty body",
            json,
            Vec::new(),
            bad,
            "bad_request",
            "body is empty",
        ),
        (
            "unknown event type",
            json,
            event(r#""ts":1790000000,"identity":"douyin:a","type":"teleport""#),
            bad,
            "invalid_event",
            "field `type`",
        ),
        (
            "missing ts",
            json,
            event(r#""identity":"douyin:a","type":"touch""#),
            bad,
            "invalid_event",
            "field `ts`",
        ),
        (
            "missing identity",
            json,
            event(r#""ts":1790000000,"type":"touch""#),
            bad,
            "invalid_event",
            "field `identity`",
        ),
        (
            "missing type",
            json,
            event(r#""ts":1790000000,"identity":"douyin:a""#),
            bad,
            "invalid_event",
            "field `type`",
        ),
        (
            "purchase without amount",
            json,
            event(r#""ts":1790000000,"identity":"douyin:a","type":"purchase""#),
            bad,
            "invalid_event",
            "field `amount`",
        ),
        (
            "amount of the wrong type",
            json,
            event(r#""ts":1790000000,"identity":"douyin:a","type":"purchase","amount":"lots""#),
            bad,
            "invalid_event",
            "field `amount`",
        ),
        (
            "identity of the wrong type",
            json,
            event(r#""ts":1790000000,"identity":42,"type":"touch""#),
            bad,
            "invalid_event",
            "field `identity`",
        ),
        (
            "ts of the wrong type",
            json,
            event(r#""ts":true,"identity":"douyin:a","type":"touch""#),
            bad,
            "invalid_event",
            "field `ts`",
        ),
        (
            "ts far in the future",
            json,
            event(r#""ts":17900000000000,"identity":"douyin:a","type":"touch""#),
            bad,
            "invalid_event",
            "field `ts`",
        ),
        (
            "ts before 2000",
            json,
            event(r#""ts":"1999-12-31T23:59:59Z","identity":"douyin:a","type":"touch""#),
            bad,
            "invalid_event",
            "field `ts`",
        ),
        (
            "ts not a date",
            json,
            event(r#""ts":"yesterday","identity":"douyin:a","type":"touch""#),
            bad,
            "invalid_event",
            "field `ts`",
        ),
        (
            "amount overflowing i64",
            json,
            event(
                r#""ts":1790000000,"identity":"douyin:a","type":"purchase","amount":99999999999999999999"#,
            ),
            bad,
            "invalid_event",
            "field `amount`",
        ),
        (
            "amount above the maximum",
            json,
            event(
                r#""ts":1790000000,"identity":"douyin:a","type":"purchase","amount":10000000000000"#,
            ),
            bad,
            "invalid_event",
            "field `amount`",
        ),
        (
            "negative amount",
            json,
            event(r#""ts":1790000000,"identity":"douyin:a","type":"refund","amount":-5"#),
            bad,
            "invalid_event",
            "field `amount`",
        ),
        (
            "identity without a channel",
            json,
            event(r#""ts":1790000000,"identity":"9f3a01","type":"touch""#),
            bad,
            "invalid_event",
            "field `identity`",
        ),
        (
            "identify without ref",
            json,
            event(r#""ts":1790000000,"identity":"wecom:wm1","type":"identify""#),
            bad,
            "invalid_event",
            "field `ref`",
        ),
        (
            "a number instead of an event",
            json,
            b"[42]".to_vec(),
            bad,
            "invalid_event",
            "index 0",
        ),
        (
            "NDJSON line that is not JSON",
            "application/x-ndjson",
            b"{\"ts\":1790000000,".to_vec(),
            bad,
            "invalid_event",
            "field `event`",
        ),
        (
            "properties larger than the limit",
            json,
            event(&format!(
                r#""ts":1790000000,"identity":"douyin:a","type":"touch","properties":{{"blob":"{}"}}"#,
                "x".repeat(siyu_domain::wire::MAX_OBJECT_BYTES)
            )),
            bad,
            "invalid_event",
            "field `properties`: is larger than 16384 bytes",
        ),
        (
            "more trait keys than the limit",
            json,
            event(&format!(
                r#""ts":1790000000,"identity":"douyin:a","type":"identify","traits":{{{}}}"#,
                (0..=siyu_domain::wire::MAX_OBJECT_KEYS)
                    .map(|i| format!(r#""k{i}":1"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            bad,
            "invalid_event",
            "field `traits`: has 65 keys; at most 64",
        ),
        (
            "more tags than the limit",
            json,
            event(&format!(
                r#""ts":1790000000,"identity":"douyin:a","type":"identify","traits":{{"tags":[{}]}}"#,
                vec![r#""t""#; siyu_domain::wire::MAX_TAGS + 1].join(",")
            )),
            bad,
            "invalid_event",
            "`tags` has 65 tags; at most 64",
        ),
        (
            "more events than a request may carry",
            json,
            format!(
                "[{}]",
                vec!["1"; siyu_server::ingest::MAX_EVENTS_PER_REQUEST + 1].join(",")
            )
            .into_bytes(),
            bad,
            "bad_request",
            "at most 10000 events; split the batch",
        ),
        (
            "more NDJSON lines than a request may carry",
            "application/x-ndjson",
            "1\n"
                .repeat(siyu_server::ingest::MAX_EVENTS_PER_REQUEST + 1)
                .into_bytes(),
            bad,
            "bad_request",
            "at most 10000 events; split the batch",
        ),
        (
            "unsupported content type",
            "text/csv",
            b"ts,identity\n".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "text/csv",
        ),
    ]
}

async fn assert_good_data_intact(t: &TestApp) {
    let (s, p) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (p["events"].as_u64(), p["net_spend"].as_i64()),
        (Some(2), Some(12900)),
        "{p}"
    );
    let (_, h) = t.get("/healthz").await;
    assert_eq!(
        h["events"], 2,
        "nothing was added by a rejected request: {h}"
    );
}

async fn check_every_case(t: &TestApp) {
    let (s, b) = t.post_events(GOOD).await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{b}"
    );
    for (what, ctype, body, status, code, says) in cases() {
        let (s, b) = t
            .call("POST", "/v1/events", Some(&t.key), ctype, body)
            .await;
        assert_eq!(s, status, "{what}: {b}");
        assert_eq!(b["code"], code, "{what}: {b}");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{what}: message `{message}` should contain `{says}`"
        );
        if code == "invalid_event" {
            assert_eq!(b["accepted"], 0, "{what}: {b}");
            let field = b["rejected"][0]["field"].as_str().unwrap_or_default();
            assert!(
                !field.is_empty() && b["rejected"][0]["message"].as_str().is_some(),
                "{what}: {b}"
            );
        }
    }
    assert_good_data_intact(t).await;
}

#[tokio::test]
async fn every_bad_input_is_named_and_nothing_accepted_is_lost() {
    check_every_case(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn every_bad_input_on_postgres_too() {
    if crate::pg_url().is_none() {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    }
    check_every_case(&TestApp::spawn_on(Backend::Postgres, 1024 * 1024).await).await;
}

#[tokio::test]
async fn a_ten_megabyte_body_gets_413_with_the_limit_and_what_to_do() {
    let limit = Config::default().max_body_bytes;
    let t = TestApp::spawn_on(Backend::Sqlite, limit).await;
    t.post_events(GOOD).await;
    let one = r#"{"ts":1790000000,"identity":"douyin:a","type":"touch"}"#;
    let big = format!("[{}]", vec![one; 10 * 1024 * 1024 / one.len()].join(","));
    assert!(big.len() >= 10 * 1024 * 1024);
    let (s, b) = t.post_events(&big).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{b}"
    );
    let message = b["message"].as_str().unwrap();
    assert!(
        message.contains(&limit.to_string()) && message.contains("split the batch"),
        "{message}"
    );
    assert_good_data_intact(&t).await;
}

#[tokio::test]
async fn no_key_or_a_wrong_key_is_401_on_every_write_and_read() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    let basic_wrong = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sk_nope:")
        )
    };
    for (method, uri) in [
        ("POST", "/v1/events"),
        ("POST", "/v1/track"),
        ("POST", "/v1/batch"),
        ("GET", "/v1/persons/douyin:9f3a01"),
        ("GET", "/v1/persons/douyin:9f3a01/timeline"),
        ("GET", "/v1/persons?q=douyin"),
        ("DELETE", "/v1/persons/douyin:9f3a01"),
    ] {
        for auth in [
            None,
            Some("Bearer sk_wrong".to_string()),
            Some(basic_wrong.clone()),
        ] {
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let body = axum::body::Body::from(GOOD);
            let resp = tower::ServiceExt::oneshot(
                siyu_server::app(t.state.clone()),
                req.body(body).unwrap(),
            )
            .await
            .unwrap();
            let status = resp.status();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            let b: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (status, b["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{method} {uri} {auth:?}"
            );
            assert!(
                b["message"].as_str().unwrap().contains("Authorization"),
                "{b}"
            );
        }
    }
    assert_good_data_intact(&t).await;
}

#[tokio::test]
async fn bad_segment_messages_name_the_field() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    for (uri, body, field) in [
        (
            "/v1/track",
            json!({"event": "Order Completed", "properties": {"revenue": 10}}),
            "userId",
        ),
        ("/v1/track", json!({"userId": "u1"}), "event"),
        (
            "/v1/track",
            json!({"userId": "u1", "event": "Order Completed"}),
            "properties",
        ),
        ("/v1/alias", json!({"userId": "u1"}), "previousId"),
        (
            "/v1/identify",
            json!({"userId": "u1", "context": {"externalIds": [{"type": "wecom"}]}}),
            "context",
        ),
        (
            "/v1/batch",
            json!({"batch": [{"type": "checkout", "userId": "u1"}]}),
            "type",
        ),
    ] {
        let (s, b) = t
            .call(
                "POST",
                uri,
                Some(&t.key),
                "application/json",
                body.to_string(),
            )
            .await;
        // Well-formed JSON: 200 as Segment answers, nothing stored, the
        // message's rejection named (segment_mapping.md).
        assert_eq!(
            (s, b["accepted"].as_u64()),
            (StatusCode::OK, Some(0)),
            "{uri} {body}: {b}"
        );
        assert_eq!(b["rejected"][0]["field"], field, "{uri} {body}: {b}");
        assert_eq!(b["rejected_by_reason"][field], 1, "{uri} {body}: {b}");
        assert!(
            b["rejected"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{b}"
        );
    }
    // A Segment batch longer than a request may carry is refused whole.
    let long = json!({"batch": vec![json!(1); siyu_server::ingest::MAX_EVENTS_PER_REQUEST + 1]});
    let (s, b) = t
        .call(
            "POST",
            "/v1/batch",
            Some(&t.key),
            "application/json",
            long.to_string(),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{b}"
    );
    assert!(
        b["message"].as_str().unwrap().contains("at most 10000"),
        "{b}"
    );
    let (s, b) = t
        .call(
            "POST",
            "/v1/batch",
            Some(&t.key),
            "application/json",
            r#"{"messages": []}"#,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("batch"), "{b}");
    assert_good_data_intact(&t).await;
}

/// axum's own rejections (a query parameter of the wrong type, a JSON body
/// of the wrong shape, a method a path does not take) answer the API's
/// JSON error like every other, with a code and a message saying what to
/// fix: never text/plain.
#[tokio::test]
async fn framework_rejections_are_json_errors_with_a_code() {
    let t = TestApp::spawn().await;
    let cases: [(&str, &str, &str, u16, &str, &str); 4] = [
        // A query parameter that is not a number.
        (
            "GET",
            "/v1/persons/douyin:x/timeline?limit=lots",
            "",
            400,
            "bad_request",
            "limit",
        ),
        // A JSON body of the wrong shape (axum's Json extractor).
        (
            "PUT",
            "/v1/segments/s1",
            r#"{"segment": 5}"#,
            422,
            "unprocessable_entity",
            "segment",
        ),
        // A method the path does not take.
        (
            "DELETE",
            "/v1/events",
            "",
            405,
            "method_not_allowed",
            "DELETE",
        ),
        // A body that is not JSON at all.
        ("PUT", "/v1/segments/s1", "{", 400, "bad_request", "JSON"),
    ];
    for (method, uri, body, status, code, mentions) in cases {
        let (s, b) = t
            .call(
                method,
                uri,
                Some(&t.key),
                "application/json",
                body.to_string(),
            )
            .await;
        assert_eq!(s.as_u16(), status, "{method} {uri}: {b}");
        assert_eq!(b["code"], code, "{method} {uri}: {b}");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{method} {uri}: {b}");
    }
}

/// A definition body with a value of the wrong type or an unknown field
/// names it by its path, whatever the route (`request::parse_json`).
#[tokio::test]
async fn a_definition_field_of_the_wrong_type_is_named_by_its_path() {
    let t = TestApp::spawn().await;
    for (path, body, says) in [
        (
            "/v1/partners/p1",
            json!({"name": "p", "identity": "wecom:p", "commission": {"rate_bp": "ten"}}),
            "`commission.rate_bp`",
        ),
        (
            "/v1/conversations/settings",
            json!({"unanswered_alert_minutes": 30, "service_windows": {"wechat": [48]}}),
            "`service_windows.wechat`",
        ),
        (
            "/v1/partners/settings",
            json!({"model": "first_touch", "modle": "x"}),
            "modle",
        ),
    ] {
        let (s, b) = t.send("PUT", path, body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {b}");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{path}: `{message}` should name {says}"
        );
    }
}
