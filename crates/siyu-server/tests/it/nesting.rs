//! Deeply nested definitions over HTTP, and start-ups with bad stored
//! definitions.
//!
//! - a segment nested thousands of levels deep is a 400 naming the limit
//!   (it used to overflow the stack and abort the whole process);
//! - what is accepted survives a restart (126 nested `not`s used to be
//!   accepted, then no start-up could read them back);
//! - a stored definition that cannot be loaded (corrupt, or written by an
//!   older build) is quarantined: the server starts, serves the rest,
//!   lists it as broken, and a valid save repairs it.

use crate::{pg_url, Backend, TestApp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use siyu_engine::segment::MAX_DEPTH;
use siyu_server::config::Config;
use siyu_server::{app, AppState, Application};
use tower::ServiceExt;

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: String,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

fn segment_body(src: &str) -> String {
    json!({ "segment": src }).to_string()
}

fn nots(n: usize, atom: &str) -> String {
    format!("{}{atom}", "not ".repeat(n))
}

/// A JSON tree of `levels` levels, every level above the leaf an and/or
/// group (the JSON-deepest shape: two JSON levels per tree level).
fn group_tree(levels: usize) -> Value {
    let mut tree = json!({"kind": "cmp", "prop": {"prop": "purchases", "window": {"seconds": 86400}}, "op": ">=", "value": 0});
    for i in 1..levels {
        tree = if i % 2 == 0 {
            json!({"kind": "and", "all": [{"kind": "friended"}, tree]})
        } else {
            json!({"kind": "or", "any": [tree, {"kind": "opted_out"}]})
        };
    }
    tree
}

fn assert_names_the_limit(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("at most {MAX_DEPTH}")) && message.contains("MAX_DEPTH"),
        "{body}"
    );
}

#[tokio::test]
async fn preview_nested_thousands_deep_is_a_400_naming_the_limit_and_the_server_keeps_answering() {
    let t = TestApp::spawn().await;
    let preview = |body: String| {
        t.call(
            "POST",
            "/v1/segments/preview",
            Some(&t.key),
            "application/json",
            body,
        )
    };
    // The two bodies that aborted the process.
    let parens = format!("{}opted_out{}", "(".repeat(4_000), ")".repeat(4_000));
    let (status, body) = preview(segment_body(&parens)).await;
    assert_names_the_limit(status, &body);
    let (status, body) = preview(segment_body(&nots(6_450, "opted_out"))).await;
    assert_names_the_limit(status, &body);
    // A JSON tree: within serde_json's limit, beyond ours.
    let (status, body) = preview(json!({ "tree": group_tree(60) }).to_string()).await;
    assert_names_the_limit(status, &body);
    // Beyond serde_json's limit: its own 400.
    let (status, body) = preview(json!({ "tree": group_tree(200) }).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Still serving.
    let (status, body) = t
        .post_events(r#"{"ts":1790000000,"identity":"wecom:a","type":"purchase","amount":100}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = preview(segment_body(&nots(MAX_DEPTH - 1, "purchases >= 1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 0, "an odd number of nots: {body}");
    // A journey's branch condition is the same language: its fault names
    // the limit at its path (422, as every journey fault).
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend"},
        "start": "b",
        "steps": {
            "b": {"type": "branch", "condition": nots(6_450, "friended"), "then": "t"},
            "t": {"type": "add_tag", "tag": "x"}
        }
    });
    let (status, body) = t
        .call(
            "PUT",
            "/v1/journeys/deep",
            Some(&t.key),
            "application/json",
            journey.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("steps.b.condition") && message.contains("MAX_DEPTH"),
        "{body}"
    );
    let (status, _) = t.get("/v1/segments").await;
    assert_eq!(status, StatusCode::OK);
}

/// A server on a fresh store (SQLite in a fresh data dir, or a fresh
/// PostgreSQL schema) that can be stopped and started again on it.
struct Restartable {
    config: Config,
    key: String,
}

impl Restartable {
    fn new() -> Restartable {
        Self::on(Backend::Sqlite)
    }

    fn on(backend: Backend) -> Restartable {
        let n = rand_suffix();
        let dir = std::env::temp_dir()
            .join(format!("siyu-server-it-nesting-{}-{n}", std::process::id(),));
        std::fs::remove_dir_all(&dir).ok();
        let (database_url, database_schema) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => (
                Some(pg_url().expect("Backend::Postgres needs SIYU_TEST_DATABASE_URL")),
                Some(format!("siyu_it_nesting_{}_{n}", std::process::id())),
            ),
        };
        let config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir,
            database_url,
            database_schema,
            admin_token: Some("admin-secret".into()),
            // Fixtures with fixed 2026 timestamps trigger here.
            trigger_max_age_secs: siyu_server::config::MAX_TRIGGER_MAX_AGE_SECS,
            ..Config::default()
        };
        Restartable {
            config,
            key: String::new(),
        }
    }

    async fn start(&mut self) -> (Application, AppState) {
        let application = Application::build(self.config.clone())
            .await
            .expect("the server starts");
        let state = application.state();
        if self.key.is_empty() {
            let (status, body) = call(
                &state,
                "POST",
                "/v1/admin/keys",
                "admin-secret",
                r#"{"name":"test"}"#.into(),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            self.key = body["key"].as_str().unwrap().to_string();
        }
        (application, state)
    }

    async fn stop(running: (Application, AppState)) {
        let (application, state) = running;
        drop(state);
        application.stop().await.expect("the server stops");
    }

    /// Deletes the engine snapshot, so the next start loads every
    /// definition from the settings rows (as after a property definition).
    fn forget_snapshot(&self) {
        let path = siyu_server::snapshot_path(&self.config);
        assert!(path.exists(), "a stopped server leaves a snapshot");
        std::fs::remove_file(path).unwrap();
    }

    /// Writes settings rows as they are, bypassing every check (data from
    /// an older build, or corrupted on disk).
    fn write_raw_settings(&self, rows: &[(&str, String)]) {
        let rows: Vec<(String, String)> = rows
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        match (&self.config.database_url, &self.config.database_schema) {
            (Some(url), Some(schema)) => {
                let (url, schema) = (url.clone(), schema.clone());
                // The blocking client may not run on the async runtime.
                std::thread::spawn(move || {
                    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    for (key, text) in rows {
                        db.execute(
                            &format!(
                                "INSERT INTO {schema}.settings (key, value) VALUES ($1, $2)
                                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                            ),
                            &[&key, &text],
                        )
                        .unwrap();
                    }
                })
                .join()
                .unwrap();
            }
            _ => {
                let db = rusqlite::Connection::open(self.config.data_dir.join("siyu.db")).unwrap();
                for (key, text) in rows {
                    db.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        rusqlite::params![key, text],
                    )
                    .unwrap();
                }
            }
        }
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.config.data_dir).ok();
        if let (Some(url), Some(schema)) = (
            self.config.database_url.clone(),
            self.config.database_schema.clone(),
        ) {
            // Best effort, as TestApp does.
            let _ = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            })
            .join();
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no segment {name} in {list}"))
}

#[tokio::test]
async fn the_deepest_accepted_segments_load_again_after_a_restart() {
    let mut server = Restartable::new();
    let running = server.start().await;
    let state = &running.1;
    let put = |name: &str, body: String| {
        let uri = format!("/v1/segments/{name}");
        let key = server.key.clone();
        async move { call(state, "PUT", &uri, &key, body).await }
    };
    // What bricked the store: 126 nested `not`s.
    let (status, body) = put("x", segment_body(&nots(126, "opted_out"))).await;
    assert_names_the_limit(status, &body);
    let (status, body) = put(
        "x",
        json!({ "tree": group_tree(MAX_DEPTH + 1) }).to_string(),
    )
    .await;
    assert_names_the_limit(status, &body);
    // The deepest accepted, in the language and as the JSON-deepest tree.
    let (status, body) = put("deep_nots", segment_body(&nots(MAX_DEPTH - 1, "opted_out"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(
        "deep_groups",
        json!({ "tree": group_tree(MAX_DEPTH) }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = call(state, "GET", "/v1/segments", &server.key, String::new()).await;
    Restartable::stop(running).await;

    // Once from the snapshot, once from the settings rows alone.
    for from_settings in [false, true] {
        if from_settings {
            server.forget_snapshot();
        }
        let running = server.start().await;
        let (status, after) = call(
            &running.1,
            "GET",
            "/v1/segments",
            &server.key,
            String::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{after}");
        for name in ["deep_nots", "deep_groups"] {
            let (b, a) = (by_name(&before, name), by_name(&after, name));
            assert_eq!(a["status"], "ok", "{a}");
            assert_eq!(a["tree"], b["tree"], "{name}");
            assert_eq!(a["segment"], b["segment"], "{name}");
        }
        Restartable::stop(running).await;
    }
}

#[tokio::test]
async fn a_bad_stored_definition_is_quarantined_and_everything_else_starts() {
    bad_stored_definitions_are_quarantined(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_bad_stored_definition_is_quarantined_on_postgres_too() {
    bad_stored_definitions_are_quarantined(Backend::Postgres).await;
}

async fn bad_stored_definitions_are_quarantined(backend: Backend) {
    let mut server = Restartable::on(backend);
    let running = server.start().await;
    let key = server.key.clone();
    let state = running.1.clone();
    let (status, body) = call(
        &state,
        "PUT",
        "/v1/segments/buyers",
        &key,
        segment_body("purchases >= 1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = r#"{"ts":1790000000,"identity":"wecom:a","type":"purchase","amount":100}"#;
    let (status, body) = call(&state, "POST", "/v1/events", &key, event.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(state);
    Restartable::stop(running).await;

    // As an older build stored 126 nested `not`s: one JSON level too many
    // to read back.
    let mut tree = json!({"kind": "opted_out"});
    for _ in 0..126 {
        tree = json!({"kind": "not", "expr": tree});
    }
    let too_deep = format!(r#"{{"seq":7,"source":"not … opted_out","tree":{tree}}}"#);
    server.write_raw_settings(&[
        ("segment/too_deep", too_deep),
        ("segment/garbled", r#"{"seq":8,"source":"?","tree":{"kind":"bogus"}}"#.into()),
        ("segment/not_json", "{\"seq\": 9, \"tree\": ".into()),
        // Valid, but reads a quarantined segment; created before it (seq 1),
        // so after the repair it loads only in a second pass.
        (
            "segment/reads_broken",
            r#"{"seq":1,"source":"in_segment(\"too_deep\")","tree":{"kind":"in_segment","segment":"too_deep"}}"#.into(),
        ),
        ("property/unreadable", "not json".into()),
    ]);

    let running = server.start().await;
    let state = running.1.clone();
    let (status, list) = call(&state, "GET", "/v1/segments", &key, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let buyers = by_name(&list, "buyers");
    assert_eq!(
        (buyers["status"].as_str(), buyers["count"].as_u64()),
        (Some("ok"), Some(1)),
        "{buyers}"
    );
    for (name, why) in [
        ("too_deep", "recursion limit"),
        ("garbled", "bogus"),
        ("not_json", "corrupt"),
        ("reads_broken", "too_deep"),
    ] {
        let s = by_name(&list, name);
        assert_eq!(s["status"], "broken", "{s}");
        assert!(s["error"].as_str().unwrap().contains(why), "{name}: {s}");
        let (status, one) = call(
            &state,
            "GET",
            &format!("/v1/segments/{name}"),
            &key,
            String::new(),
        )
        .await;
        assert_eq!(
            (status, &one["status"]),
            (StatusCode::OK, &json!("broken")),
            "{one}"
        );
        let (status, members) = call(
            &state,
            "GET",
            &format!("/v1/segments/{name}/members"),
            &key,
            String::new(),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{members}");
        assert!(
            members["message"]
                .as_str()
                .unwrap()
                .contains("could not be loaded"),
            "{members}"
        );
    }
    let (status, props) = call(&state, "GET", "/v1/properties", &key, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{props}");
    let p = &props["properties"][0];
    assert_eq!(
        (p["name"].as_str(), p["status"].as_str()),
        (Some("unreadable"), Some("broken")),
        "{props}"
    );
    assert!(p["error"].as_str().unwrap().contains("corrupt"), "{props}");
    // Everything else serves: ingestion, the healthy segment, timelines.
    let event = r#"{"ts":1790000100,"identity":"wecom:b","type":"purchase","amount":100}"#;
    let (status, body) = call(&state, "POST", "/v1/events", &key, event.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = call(&state, "GET", "/v1/segments/buyers", &key, String::new()).await;
    assert_eq!(one["count"], 2, "{one}");
    // A valid save under the same name repairs it, and it stays repaired.
    let (status, body) = call(
        &state,
        "PUT",
        "/v1/segments/too_deep",
        &key,
        segment_body("not opted_out"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = call(&state, "GET", "/v1/segments/too_deep", &key, String::new()).await;
    assert_eq!(
        (one["status"].as_str(), one["count"].as_u64()),
        (Some("ok"), Some(2)),
        "{one}"
    );
    // Its reader only failed because of what it read: it loads at once.
    let (_, one) = call(
        &state,
        "GET",
        "/v1/segments/reads_broken",
        &key,
        String::new(),
    )
    .await;
    assert_eq!(
        (one["status"].as_str(), one["count"].as_u64()),
        (Some("ok"), Some(2)),
        "{one}"
    );
    drop(state);
    Restartable::stop(running).await;

    server.forget_snapshot();
    let running = server.start().await;
    let (_, list) = call(&running.1, "GET", "/v1/segments", &key, String::new()).await;
    assert_eq!(by_name(&list, "too_deep")["status"], "ok", "{list}");
    assert_eq!(by_name(&list, "reads_broken")["status"], "ok", "{list}");
    assert_eq!(by_name(&list, "garbled")["status"], "broken", "{list}");
    Restartable::stop(running).await;
}

#[tokio::test]
async fn bad_stored_automation_definitions_are_quarantined_and_the_executor_starts() {
    let mut server = Restartable::new();
    let running = server.start().await;
    let key = server.key.clone();
    let state = running.1.clone();
    let template = json!({"body": "你好 {{name | default: \"朋友\"}}"}).to_string();
    let (status, body) = call(&state, "PUT", "/v1/templates/hello", &key, template).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend", "channel": "wecom"},
        "start": "tag",
        "steps": {"tag": {"type": "add_tag", "tag": "welcomed"}}
    });
    let (status, body) = call(
        &state,
        "PUT",
        "/v1/journeys/welcome",
        &key,
        journey.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(state);
    Restartable::stop(running).await;

    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    server.write_raw_settings(&[
        ("template/unreadable", deep.clone()),
        ("template/wrong_shape", r#"{"name":"wrong_shape"}"#.into()),
        (
            "journey/old/000001",
            r#"{"start":"a","steps":{"a":{"type":"teleport"}}}"#.into(),
        ),
        ("journey/deep/000001", deep.clone()),
        ("autoreply/rules", deep.clone()),
        ("guardrails/policy", r#"{"caps": "none"}"#.into()),
        ("group/unreadable", deep),
        ("group/wrong_shape", r#"{"capacity": "lots"}"#.into()),
    ]);

    let running = server.start().await;
    let state = running.1.clone();
    let (status, list) = call(&state, "GET", "/v1/templates", &key, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let templates = list["templates"].as_array().unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t["name"] == "hello" && t["body"].is_string()),
        "{list}"
    );
    for name in ["unreadable", "wrong_shape"] {
        let t = templates
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {list}"));
        assert_eq!(t["status"], "broken", "{t}");
        assert!(t["error"].as_str().is_some_and(|e| !e.is_empty()), "{t}");
    }
    let (status, list) = call(&state, "GET", "/v1/journeys", &key, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let journeys = list["journeys"].as_array().unwrap();
    let welcome = journeys.iter().find(|j| j["name"] == "welcome").unwrap();
    assert_eq!(welcome["status"], "ok", "{list}");
    for name in ["old", "deep"] {
        let j = journeys
            .iter()
            .find(|j| j["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {list}"));
        assert_eq!(
            (j["status"].as_str(), j["version"].as_u64()),
            (Some("broken"), Some(1)),
            "{j}"
        );
        let (status, one) = call(
            &state,
            "GET",
            &format!("/v1/journeys/{name}"),
            &key,
            String::new(),
        )
        .await;
        assert_eq!(
            (status, &one["status"]),
            (StatusCode::OK, &json!("broken")),
            "{one}"
        );
    }
    assert!(
        journeys.iter().find(|j| j["name"] == "deep").unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{list}"
    );
    let (_, rules) = call(&state, "GET", "/v1/autoreply", &key, String::new()).await;
    assert_eq!(rules["status"], "broken", "{rules}");
    let (status, policy) = call(&state, "GET", "/v1/guardrails", &key, String::new()).await;
    assert_eq!(
        (status, &policy["status"]),
        (StatusCode::OK, &json!("broken")),
        "{policy}"
    );
    // Groups: the bad ones are left out (and logged), the list still answers.
    let operator = json!({"name": "alice"}).to_string();
    let (status, body) = call(&state, "PUT", "/v1/operators/alice", &key, operator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let group = json!({"channel": "wecom", "name": "VIP 1"}).to_string();
    let (status, body) = call(&state, "PUT", "/v1/groups/g1", &key, group).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, groups) = call(&state, "GET", "/v1/groups", &key, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert!(groups.to_string().contains("VIP 1"), "{groups}");
    // The healthy journey still runs: a new friend is tagged.
    let events =
        r#"{"ts":1790000000,"identity":"wecom:wm_a","type":"add_friend","channel":"wecom"}"#;
    let (status, body) = call(&state, "POST", "/v1/events", &key, events.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut tagged = false;
    for _ in 0..100 {
        let (_, person) = call(&state, "GET", "/v1/persons/wecom:wm_a", &key, String::new()).await;
        if person.to_string().contains("welcomed") {
            tagged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(tagged, "the welcome journey tagged the new friend");
    // Saving valid definitions repairs them.
    let template = json!({"body": "hi"}).to_string();
    let (status, body) = call(&state, "PUT", "/v1/templates/unreadable", &key, template).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut repaired = false;
    for _ in 0..100 {
        let (_, list) = call(&state, "GET", "/v1/templates", &key, String::new()).await;
        let t = list["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "unreadable")
            .cloned();
        if t.is_some_and(|t| t["body"] == "hi") {
            repaired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(repaired, "a valid save repairs a quarantined template");
    drop(state);
    Restartable::stop(running).await;
}

/// The deepest webhook payload a journey body can carry ends up in an
/// outbox row (the action, with its key and type around it): that row
/// must read back, or the executor could not start again.
#[tokio::test]
async fn the_deepest_journey_payload_reaches_the_outbox_and_still_starts() {
    let mut server = Restartable::new();
    let running = server.start().await;
    let key = server.key.clone();
    let state = running.1.clone();
    // Find the deepest payload the body parser accepts.
    let journey = |depth: usize| {
        let payload = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        format!(
            r#"{{"trigger":{{"type":"event","event":"add_friend"}},"start":"w","steps":{{"w":{{"type":"webhook","payload":{payload}}}}}}}"#
        )
    };
    let mut depth = 130;
    let accepted = loop {
        let (status, _) = call(&state, "PUT", "/v1/journeys/deep", &key, journey(depth)).await;
        if status == StatusCode::OK {
            break depth;
        }
        depth -= 1;
        assert!(depth > 100, "no payload depth accepted");
    };
    assert!(accepted >= 120, "accepted payload depth {accepted}");
    let event = r#"{"ts":1790000000,"identity":"wecom:a","type":"add_friend","channel":"wecom"}"#;
    let (status, body) = call(&state, "POST", "/v1/events", &key, event.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut queued = false;
    for _ in 0..100 {
        let (status, outbox) = call(
            &state,
            "GET",
            "/v1/outbox?journey=deep",
            &key,
            String::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{outbox}");
        if outbox.to_string().contains("webhook") {
            queued = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(queued, "the webhook step reached the outbox");
    drop(state);
    Restartable::stop(running).await;
    let running = server.start().await;
    let (status, outbox) = call(
        &running.1,
        "GET",
        "/v1/outbox?journey=deep",
        &key,
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{outbox}");
    Restartable::stop(running).await;
}
