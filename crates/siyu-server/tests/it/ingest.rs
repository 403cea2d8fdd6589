//! Ingestion, reads, segments and erasure through the HTTP API, including
//! every kind of bad input: each gets a 4xx naming the field, and nothing
//! accepted before is lost.

use crate::TestApp;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{json, Value};

const GOOD: &str = r#"[
 {"id":"e1","ts":"2026-10-01T08:00:00Z","identity":"douyin:9f3a01","type":"comment","text":"多少钱"},
 {"id":"e2","ts":"2026-10-01T08:05:00Z","identity":"wecom:wm0001","type":"identify","ref":"douyin:9f3a01"},
 {"id":"e3","ts":"2026-10-01T09:00:00Z","identity":"wecom:wm0001","type":"purchase","amount":12900}
]"#;

#[tokio::test]
async fn accepts_good_events_and_finds_the_person_by_any_identity() {
    happy_path(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn accepts_good_events_and_finds_the_person_on_postgres_too() {
    if crate::pg_url().is_none() {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    }
    let t = TestApp::spawn_on(crate::Backend::Postgres, 1024 * 1024).await;
    happy_path(&t).await;
    let (s, b) = t.post_events(GOOD).await;
    assert_eq!(
        (s, b["duplicates"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{b}"
    );
    let (s, e) = t
        .call(
            "DELETE",
            "/v1/persons/wecom:wm0001",
            Some(&t.key),
            "application/json",
            Body::empty(),
        )
        .await;
    // GOOD's three events plus the two of the merged mp:o_9 identity.
    assert_eq!(
        (s, e["events_removed"].as_u64()),
        (StatusCode::OK, Some(5)),
        "{e}"
    );
    let (s, _) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn happy_path(t: &TestApp) {
    let (s, b) = t.post_events(GOOD).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    for id in ["douyin:9f3a01", "wecom:wm0001"] {
        let (s, p) = t.get(&format!("/v1/persons/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(p["canonical_id"], "douyin:9f3a01");
        assert_eq!(p["identities"], json!(["douyin:9f3a01", "wecom:wm0001"]));
        assert_eq!(p["net_spend"], 12900);
        assert_eq!(p["first_channel"], "douyin");
    }
    let (_, tl) = t.get("/v1/persons/wecom:wm0001/timeline?limit=2").await;
    assert_eq!(tl["events"].as_array().unwrap().len(), 2);
    assert_eq!(tl["events"][0]["event"]["type"], "purchase");
    let next = tl["next_before"].as_u64().unwrap();
    let (_, tl2) = t
        .get(&format!(
            "/v1/persons/wecom:wm0001/timeline?limit=2&before={next}"
        ))
        .await;
    assert_eq!(tl2["events"].as_array().unwrap().len(), 1);
    assert_eq!(tl2["events"][0]["event"]["text"], "多少钱");
    // The WeCom identity was new when it was linked: it joined the person, no merge.
    let (_, merges) = t.get("/v1/persons/douyin:9f3a01/merges").await;
    assert_eq!(merges["merges"].as_array().unwrap().len(), 0, "{merges}");
    // Two persons with history each, then linked: one audited merge.
    let (s, _) = t
        .post_events(r#"[{"ts":"2026-10-02T08:00:00Z","identity":"mp:o_9","type":"touch"},
                        {"ts":"2026-10-02T08:01:00Z","identity":"mp:o_9","type":"identify","ref":"wecom:wm0001"}]"#)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, merges) = t.get("/v1/persons/mp:o_9/merges").await;
    assert_eq!(merges["merges"].as_array().unwrap().len(), 1, "{merges}");
    assert_eq!(merges["merges"][0]["into"], "douyin:9f3a01");
    assert_eq!(
        merges["merges"][0]["from"],
        json!(["mp:o_9", "douyin:9f3a01"])
    );
}

#[tokio::test]
async fn replayed_batches_add_nothing() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    let (s, b) = t.post_events(GOOD).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    let (_, h) = t.get("/healthz").await;
    assert_eq!(h["events"], 3);
}

#[tokio::test]
async fn partial_batches_keep_the_good_events_and_name_each_bad_one() {
    let t = TestApp::spawn().await;
    let body = r#"[
      {"ts":"2026-10-01T08:00:00Z","identity":"douyin:a","type":"touch"},
      {"ts":"2026-10-01T08:00:00Z","identity":"douyin:a","type":"teleport"},
      {"ts":"2026-10-01T08:00:00Z","identity":"a","type":"touch"},
      {"identity":"douyin:a","type":"touch"},
      {"ts":"2026-10-01T08:00:00Z","identity":"douyin:a","type":"purchase","amount":"lots"},
      {"ts":"2026-10-01T08:00:00Z","identity":"douyin:a","type":"purchase","amount":99999999999999999999},
      {"ts":17900000000000,"identity":"douyin:a","type":"touch"},
      {"ts":"2026-10-01T08:00:00Z","identity":"douyin:a","type":"purchase"},
      {"ts":"2026-10-01T08:00:00Z","identity":42,"type":"touch"}
    ]"#;
    let (s, b) = t.post_events(body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 1);
    let rejected: Vec<(u64, String)> = b["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let fields = |v: &[(u64, &str)]| {
        v.iter()
            .map(|(i, f)| (*i, f.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rejected,
        fields(&[
            (1, "type"),
            (2, "identity"),
            (3, "ts"),
            (4, "amount"),
            (5, "amount"),
            (6, "ts"),
            (7, "amount"),
            (8, "identity")
        ])
    );
    for r in b["rejected"].as_array().unwrap() {
        assert!(
            r["message"].as_str().unwrap().len() > 10,
            "message says what to fix: {r}"
        );
    }
}

#[tokio::test]
async fn unreadable_bodies_get_a_clear_4xx_and_lose_nothing() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    let (s, b) = t.post_events("[{\"ts\": 1,").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    assert!(
        b["message"].as_str().unwrap().contains("line 1, column"),
        "{b}"
    );
    let (s, b) = t
        .call(
            "POST",
            "/v1/events",
            Some(&t.key),
            "application/json",
            vec![b'[', 0xff, 0xfe, b']'],
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    assert!(b["message"].as_str().unwrap().contains("UTF-8"));
    let big = format!(
        "[{}]",
        vec![r#"{"ts":1790000000,"identity":"douyin:a","type":"touch"}"#; 40_000].join(",")
    );
    assert!(big.len() > 1024 * 1024);
    let (s, b) = t.post_events(&big).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    assert!(b["message"].as_str().unwrap().contains("split the batch"));
    let (s, b) = t
        .call("POST", "/v1/events", Some(&t.key), "text/csv", "a,b")
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let (s, b) = t
        .post_events(r#"[{"ts":"x","identity":"douyin:a","type":"touch"}]"#)
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_event"))
    );
    assert_eq!(b["rejected"][0]["field"], "ts");
    let (_, h) = t.get("/healthz").await;
    assert_eq!(
        h["events"], 3,
        "earlier accepted events are all still there"
    );
}

#[tokio::test]
async fn ndjson_lines_are_judged_one_by_one() {
    let t = TestApp::spawn().await;
    let body = "{\"ts\":1790000000,\"identity\":\"douyin:a\",\"type\":\"touch\"}\nnot json\n{\"ts\":1790000001,\"identity\":\"douyin:a\",\"type\":\"follow\"}\n";
    let (s, b) = t
        .call(
            "POST",
            "/v1/events",
            Some(&t.key),
            "application/x-ndjson",
            body,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 2);
    assert_eq!(b["rejected"][0]["index"], 1);
}

#[tokio::test]
async fn no_key_no_write() {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .call("POST", "/v1/events", None, "application/json", GOOD)
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _) = t
        .call(
            "POST",
            "/v1/events",
            Some("sk_wrong"),
            "application/json",
            GOOD,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = t
        .call(
            "POST",
            "/v1/admin/keys",
            Some(&t.key),
            "application/json",
            r#"{"name":"x"}"#,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (_, h) = t.get("/healthz").await;
    assert_eq!(h["events"], 0);
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let t = TestApp::spawn().await;
    let admin = Some("admin-secret");
    let (s, b) = t
        .call(
            "POST",
            "/v1/admin/keys",
            admin,
            "application/json",
            r#"{"name":"pos"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (key, id) = (
        b["key"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        t.call("POST", "/v1/events", Some(&key), "application/json", GOOD)
            .await
            .0,
        StatusCode::OK
    );
    let (_, list) = t
        .call("GET", "/v1/admin/keys", admin, "application/json", "")
        .await;
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str() && k["name"] == "pos"),
        "{list}"
    );
    assert!(
        !list.to_string().contains(&key),
        "keys are never shown again"
    );
    // Only with the admin token; a bad id says what to give.
    assert_eq!(
        t.call(
            "DELETE",
            &format!("/v1/admin/keys/{id}"),
            Some(&key),
            "application/json",
            ""
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(
            "DELETE",
            "/v1/admin/keys/xyz",
            admin,
            "application/json",
            ""
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let (s, b) = t
        .call(
            "DELETE",
            &format!("/v1/admin/keys/{id}"),
            admin,
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        t.call("POST", "/v1/events", Some(&key), "application/json", GOOD)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.call(
            "DELETE",
            &format!("/v1/admin/keys/{id}"),
            admin,
            "application/json",
            ""
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // The test's own key still works.
    assert_eq!(
        t.call("POST", "/v1/events", Some(&t.key), "application/json", GOOD)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn segment_sdk_messages_land_as_siyu_events() {
    let t = TestApp::spawn().await;
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", t.key))
    };
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/batch")
        .header("content-type", "application/json")
        .header("authorization", format!("Basic {basic}"))
        .body(Body::from(
            json!({"batch": [
                {"type":"identify","userId":"u1","anonymousId":"a1","traits":{"name":"王芳","city":"上海"},"messageId":"m1","timestamp":"2026-10-01T08:00:00Z"},
                {"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":88.5},"messageId":"m2","timestamp":"2026-10-01T09:00:00Z"},
                {"type":"track","event":"oops"}
            ]})
            .to_string(),
        ))
        .unwrap();
    use tower::ServiceExt;
    let resp = siyu_server::app(t.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, p) = t.get("/v1/persons/anon:a1").await;
    assert_eq!(p["identities"], json!(["anon:a1", "user:u1"]));
    assert_eq!(p["net_spend"], 8850);
    assert_eq!(p["traits"]["city"], "上海");
    let (_, found) = t.get("/v1/persons?trait=city:%E4%B8%8A").await;
    assert_eq!(found["persons"][0]["canonical_id"], "anon:a1", "{found}");
    let (s, b) = t.get("/v1/persons?trait=city").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
}

#[tokio::test]
async fn segments_explain_and_erase() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    let (s, b) = t
        .call(
            "PUT",
            "/v1/segments/buyers",
            Some(&t.key),
            "application/json",
            r#"{"segment":"purchases >= 1 and first_channel = \"douyin\""}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["version"].as_u64(), b["count"].as_u64()),
        (Some(1), Some(1))
    );
    let (s, b) = t
        .call(
            "PUT",
            "/v1/segments/bad",
            Some(&t.key),
            "application/json",
            r#"{"segment":"purchases >= "}"#,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_segment"))
    );
    assert!(
        b["message"].as_str().unwrap().contains("line 1, column 14"),
        "{b}"
    );
    let (s, f) = t
        .call(
            "POST",
            "/v1/analytics/steps",
            Some(&t.key),
            "application/json",
            r#"{"steps":[{"event_type":"comment"},{"event_type":"purchase","within":86400}],"split_by_channel":true}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["rows"], json!([{"split": "douyin", "reached": [1, 1]}]));
    // One duration syntax: "1d" and {"seconds": …} mean 86400 here too.
    for within in [r#""1d""#, r#""24h""#, r#"{"seconds":86400}"#] {
        let (s, g) = t
            .call(
                "POST",
                "/v1/analytics/steps",
                Some(&t.key),
                "application/json",
                format!(r#"{{"steps":[{{"event_type":"comment"}},{{"event_type":"purchase","within":{within}}}],"split_by_channel":true}}"#),
            )
            .await;
        assert_eq!(
            (s, &g["rows"]),
            (StatusCode::OK, &f["rows"]),
            "{within}: {g}"
        );
        assert_eq!(g["steps"][1]["within"], 86400, "{g}");
    }
    let (s, g) = t
        .call(
            "POST",
            "/v1/analytics/steps",
            Some(&t.key),
            "application/json",
            r#"{"steps":[{"event_type":"comment"},{"event_type":"purchase","within":"1 day"}]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{g}");
    assert!(
        g["message"]
            .as_str()
            .unwrap()
            .contains("use s, m, h, d or w"),
        "{g}"
    );
    let (s, b) = t
        .call(
            "POST",
            "/v1/analytics/steps",
            Some(&t.key),
            "application/json",
            r#"{"steps":[]}"#,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    // It reads its own body, and still refuses what is not JSON: a 415
    // with the error table's JSON body.
    let steps = r#"{"steps":[{"event_type":"comment"}]}"#;
    let (s, b) = t
        .call(
            "POST",
            "/v1/analytics/steps",
            Some(&t.key),
            "text/plain",
            steps,
        )
        .await;
    let (s2, b2) = t
        .call(
            "PUT",
            "/v1/segments/typed",
            Some(&t.key),
            "text/plain",
            r#"{"segment":"purchases >= 1"}"#,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        ),
        "{b}"
    );
    // Same status as a route on axum's `Json` extractor (whose own
    // rejection body is still plain text, not the error table's JSON).
    assert_eq!(s2, s, "{b2}");
    assert!(b["message"].as_str().unwrap().contains("text/plain"), "{b}");
    let (_, a) = t.get("/v1/analytics/attribution").await;
    assert_eq!(
        a["rows"],
        json!([{"channel": "douyin", "first_touch": 12900, "last_touch": 12900, "linear": 12900.0}])
    );
    let (_, h) = t.get("/v1/segments/buyers/history").await;
    assert_eq!(h["history"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(
        (
            h["history"][0]["change"].as_str(),
            h["history"][0]["canonical_id"].as_str()
        ),
        (Some("enter"), Some("douyin:9f3a01"))
    );
    let (_, m) = t.get("/v1/segments/buyers/members").await;
    assert_eq!(m["members"], json!(["douyin:9f3a01"]));
    let (_, x) = t
        .get("/v1/segments/buyers/explain?person=wecom:wm0001")
        .await;
    assert_eq!(x["member"], true);
    assert_eq!(x["explanation"]["parts"][0]["actual"], "1");
    let (_, p) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(p["segments"], json!(["buyers"]));
    let (s, e) = t
        .call(
            "DELETE",
            "/v1/persons/wecom:wm0001",
            Some(&t.key),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["events_removed"], 3);
    let (s, b) = t.get("/v1/persons/douyin:9f3a01").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (_, m) = t.get("/v1/segments/buyers/members").await;
    assert_eq!(m["count"], 0);
}

#[tokio::test]
async fn openapi_lists_every_route_and_metrics_count_ingest() {
    let t = TestApp::spawn().await;
    t.post_events(GOOD).await;
    let (_, doc) = t.get("/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/events",
        "/v1/track",
        "/v1/persons/{id}/timeline",
        "/v1/segments/{name}/changes",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every operation has its own operationId; every error status it
    // lists has the one Error schema.
    let mut ids = std::collections::HashSet::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(
                ids.insert(id.to_string()),
                "{method} {path}: operationId {id} repeated"
            );
            for (status, answer) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // Bodies, query parameters and answers come from the handlers' types.
    let search = &doc["paths"]["/v1/persons"]["get"];
    let params: Vec<&str> = search["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        params.contains(&"q") && params.contains(&"trait"),
        "{params:?}"
    );
    // The profile, or null (`Json<Option<Profile>>`).
    let profile = &doc["paths"]["/v1/persons/{id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(
        profile.to_string().contains("#/components/schemas/Profile"),
        "{profile}"
    );
    assert!(doc["components"]["schemas"]["Profile"]["properties"]["identities"].is_object());
    assert_eq!(
        doc["paths"]["/v1/admin/keys"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/KeyBody"
    );
    assert!(doc["paths"]["/v1/admin/keys"]["post"]["responses"]["201"].is_object());
    assert!(doc["paths"]["/v1/persons/{id}"]["get"]["responses"]["404"].is_object());
    assert_eq!(
        doc["paths"]["/v1/events"]["post"]["operationId"],
        "ingest_events"
    );
    assert!(doc["paths"]["/v1/spend"]["put"]["requestBody"]["content"]["text/csv"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["Error"]["required"],
        serde_json::json!(["code", "message"])
    );
    let events_doc = doc["paths"]["/v1/events"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(events_doc.contains("not 207") && events_doc.contains("payload_too_large"));
    let track_doc = doc["paths"]["/v1/track"]["post"]["description"]
        .as_str()
        .unwrap();
    for needle in ["externalIds", "`user:<userId>`", "messageId", "cents"] {
        assert!(track_doc.contains(needle), "Segment mapping lacks {needle}");
    }
    let codes: Vec<&str> = doc["x-error-codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    for code in [
        "bad_request",
        "invalid_event",
        "unauthorized",
        "payload_too_large",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    let (_, m) = t.get("/metrics").await;
    let text = m.as_str().unwrap().to_string();
    assert!(
        text.contains("siyu_events_accepted_total{workspace=\"default\"} 3"),
        "{text}"
    );
    assert!(text.contains("siyu_ingest_latency_seconds_count{workspace=\"default\"} 1"));
    assert!(
        text.contains("siyu_append_latency_seconds_count{workspace=\"default\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("siyu_commit_events_bucket{workspace=\"default\",le=\"10\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("siyu_commit_events_sum{workspace=\"default\"} 3.0"),
        "{text}"
    );
    let (s, v): (StatusCode, Value) = t.get("/v1/nope").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn analytics_answers_are_cached_until_the_engine_changes() {
    use std::sync::atomic::Ordering;
    let t = TestApp::spawn().await;
    t.post_events(
        r#"{"ts": 1790000000, "identity": "douyin:a", "type": "purchase", "amount": 100}"#,
    )
    .await;
    t.settle_analytics_stamp().await;
    let (_, first) = t.get("/v1/analytics/repurchase").await;
    let cache = &t.state.0.analytics_cache;
    let hits = cache.hits.load(Ordering::Relaxed);
    let (_, again) = t.get("/v1/analytics/repurchase").await;
    assert_eq!(again, first);
    assert_eq!(cache.hits.load(Ordering::Relaxed), hits + 1);
    // Unauthorized requests are refused before the cache is consulted.
    let (s, _) = t
        .call(
            "GET",
            "/v1/analytics/repurchase",
            Some("sk_wrong"),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A new event makes the next answer a fresh one.
    t.post_events(
        r#"{"ts": 1790000100, "identity": "douyin:a", "type": "purchase", "amount": 100}"#,
    )
    .await;
    let (_, fresh) = t.get("/v1/analytics/repurchase").await;
    assert_ne!(fresh, first, "{fresh}");
}

#[tokio::test]
async fn unknown_analytics_parameters_cannot_fill_the_cache() {
    use std::sync::atomic::Ordering;
    let t = TestApp::spawn().await;
    t.post_events(
        r#"{"ts": 1790000000, "identity": "douyin:a", "type": "purchase", "amount": 100}"#,
    )
    .await;
    t.settle_analytics_stamp().await;
    let cache = &t.state.0.analytics_cache;
    let (s, first) = t.get("/v1/analytics/rfm?x=0").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let before = cache.len();
    let hits = cache.hits.load(Ordering::Relaxed);
    for i in 1..=60 {
        let (s, b) = t.get(&format!("/v1/analytics/rfm?x={i}&y=z{i}")).await;
        assert_eq!((s, &b), (StatusCode::OK, &first));
    }
    // One entry serves them all.
    assert_eq!(cache.len(), before);
    assert_eq!(cache.hits.load(Ordering::Relaxed), hits + 60);
    // Known parameters still make their own answers, in any order.
    let (_, a) = t
        .get("/v1/analytics/funnel?friend_days=1&convert_days=2")
        .await;
    let misses = cache.misses.load(Ordering::Relaxed);
    let (_, b) = t
        .get("/v1/analytics/funnel?convert_days=2&zz=1&friend_days=1")
        .await;
    assert_eq!(a, b);
    assert_eq!(cache.misses.load(Ordering::Relaxed), misses);
    // A parameter the handler rejects is answered by the handler, uncached.
    let (s, _) = t.get("/v1/analytics/cohorts?weeks=many").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// A full-log analytics pass holds neither the engine nor the reader
/// connection while it works: paused in the middle of the log, the engine
/// can be write-locked, the reader connection taken and an append
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_pass_blocks_neither_the_writer_nor_other_readers() {
    let t = TestApp::spawn().await;
    let batch: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"ts": {}, "identity": "douyin:p{}", "type": "touch", "channel": "douyin"}}"#,
                1_790_000_000 + i,
                i % 50
            )
        })
        .collect();
    let (s, b) = t.post_events(&format!("[{}]", batch.join(","))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (paused_tx, paused_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let state = t.state.clone();
    let pass = std::thread::spawn(move || {
        let mut seen = 0u64;
        siyu_server::log_pass::log_pass(&state, |_, _| {
            seen += 1;
            if seen == 100 {
                paused_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            }
        })
        .unwrap();
        seen
    });
    paused_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    // Mid-pass: nothing is held.
    assert!(
        t.state.0.engine.try_write().is_ok(),
        "the pass holds the engine"
    );
    assert!(
        t.state.0.reader.try_lock().is_ok(),
        "the pass holds the reader connection"
    );
    let (s, b) = t
        .post_events(r#"{"ts": 1790001000, "identity": "douyin:late", "type": "touch"}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    go_tx.send(()).unwrap();
    // The answer is the log as it was at the start.
    assert_eq!(pass.join().unwrap(), 200);
}
