//! Automation end to end, in process: journeys, guardrails, auto-replies
//! and inbound webhooks, with messages delivered over real HTTP to a local
//! webhook receiver the test starts.

use crate::{Backend, TestApp};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use siyu_connectors::{Secret, WebhookConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "hook-secret";

/// A local webhook receiver: every request's headers and JSON body.
#[derive(Clone, Default)]
pub(crate) struct Receiver(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

impl Receiver {
    pub(crate) async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let store = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let ts = headers["x-siyu-timestamp"].to_str().unwrap().to_string();
                    let sig = headers["x-siyu-signature"].to_str().unwrap().to_string();
                    siyu_connectors::verify(
                        SECRET.as_bytes(),
                        &ts,
                        &body,
                        &sig,
                        siyu_server::writer::wall_clock(),
                        300,
                    )
                    .expect("siyu signs every webhook");
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    store.0.lock().unwrap().push((headers, v));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    /// The `Idempotency-Key` of every request received, in order.
    pub(crate) fn idempotency_keys(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| {
                h.get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Value> {
        let started = Instant::now();
        while self.0.lock().unwrap().len() < n {
            // Generous: on a loaded 2-core CI a PostgreSQL node's first
            // delivery once took longer than 15 s (lease renewals slowed).
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited for {n} webhook calls, got {:?}",
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies()
    }
}

async fn app_with_hook() -> (TestApp, Receiver) {
    app_with_hook_on(Backend::Sqlite).await
}

pub(crate) async fn app_with_hook_on(backend: Backend) -> (TestApp, Receiver) {
    let (rx, url) = Receiver::start().await;
    let app = TestApp::spawn_with(backend, 1 << 20, |c| {
        c.connectors.webhook = Some(WebhookConfig {
            url,
            secret: Secret::new(SECRET),
            timeout_ms: 2000,
        });
        c.inbound_secrets
            .insert("douyin".into(), "inbound-secret".into());
    })
    .await;
    // Tests run at any hour: no quiet hours here (they have their own test).
    let (s, b) = app
        .call(
            "PUT",
            "/v1/guardrails",
            Some(&app.key),
            "application/json",
            r#"{"quiet_hours": null}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (app, rx)
}

/// Like `app_with_hook_on`, with the default freshness for triggers
/// (the other tests' fixtures carry fixed 2026 timestamps).
pub(crate) async fn app_with_hook_on_fresh(backend: Backend) -> (TestApp, Receiver) {
    let (rx, url) = Receiver::start().await;
    let app = TestApp::spawn_with(backend, 1 << 20, |c| {
        c.connectors.webhook = Some(WebhookConfig {
            url,
            secret: Secret::new(SECRET),
            timeout_ms: 2000,
        });
        c.trigger_max_age_secs = siyu_server::config::DEFAULT_TRIGGER_MAX_AGE_SECS;
    })
    .await;
    let (s, b) = put(&app, "/v1/guardrails", json!({"quiet_hours": null})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (app, rx)
}

async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send("PUT", path, body).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send("POST", path, body).await
}

pub(crate) async fn wait_until<F: Fn(&Value) -> bool>(app: &TestApp, path: &str, ok: F) -> Value {
    let started = Instant::now();
    loop {
        let (_, v) = app
            .call("GET", path, Some(&app.key), "application/json", "")
            .await;
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{path} never satisfied: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_sends_through_a_signed_webhook_and_tags_the_person() {
    journey_sends_and_tags(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_sends_and_tags_on_postgres_too() {
    journey_sends_and_tags(Backend::Postgres).await;
}

async fn journey_sends_and_tags(backend: Backend) {
    let (app, hook) = app_with_hook_on(backend).await;
    let (s, b) = put(&app, "/v1/templates/welcome", json!({"body": "你好 {{name | default: \"朋友\"}}！退订: {{unsubscribe_link}}", "class": "transactional"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend", "channel": "wecom"},
        "start": "hello",
        "steps": {
            "hello": {"type": "send", "template": "welcome", "channel": "webhook", "next": "tag"},
            "tag": {"type": "add_tag", "tag": "welcomed", "next": "call"},
            "call": {"type": "task", "title": "回访"}
        }
    });
    let (s, b) = put(&app, "/v1/journeys/welcome", journey.clone()).await;
    assert_eq!((s, b["version"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let (s, _) = app
        .post_events(r#"[{"ts": 1790000000, "identity": "wecom:wm_a", "type": "identify", "traits": {"name": "王芳"}},
                         {"ts": 1790000001, "identity": "wecom:wm_a", "type": "add_friend", "channel": "wecom"}]"#)
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = hook.wait_for(1).await;
    assert!(
        got[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("你好 王芳！退订: http://"),
        "{}",
        got[0]
    );
    assert_eq!(got[0]["idempotency_key"], "j/welcome/v1/e1/hello");
    let person = wait_until(&app, "/v1/persons/wecom:wm_a", |v| {
        v.to_string().contains("welcomed")
    })
    .await;
    assert!(person.to_string().contains("王芳"));
    let tasks = wait_until(&app, "/v1/tasks", |v| {
        v["tasks"].as_array().is_some_and(|t| !t.is_empty())
    })
    .await;
    assert_eq!(tasks["tasks"][0]["title"], "回访");
    // `message_sent` is appended after the outbox row is marked done (the
    // executor hands it to the writer asynchronously): wait for both.
    let report = wait_until(&app, "/v1/journeys/welcome/report", |v| {
        v["sent"] == json!(2) && v["sends"] == json!(1)
    })
    .await;
    assert_eq!(report["enrolled"], 1, "{report}");
    assert_eq!(
        report["sends"], 1,
        "the message_sent event is in the log: {report}"
    );
    assert_eq!(report["steps"]["hello"]["done"], 1, "{report}");
    assert_eq!(report["steps"]["tag"]["done"], 1, "{report}");
    // The person's timeline shows what was sent, as the connector got it.
    let (_, timeline) = app.get("/v1/persons/wecom:wm_a/timeline").await;
    let sent = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "message_sent")
        .expect("a message_sent event");
    assert_eq!(sent["properties"]["text"], got[0]["body"], "{sent}");
    // Once: a second add_friend does not enroll again.
    app.post_events(
        r#"{"ts": 1790000100, "identity": "wecom:wm_a", "type": "add_friend", "channel": "wecom"}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.bodies().len(), 1);
    // A new version; the old enrollment keeps its version.
    let (_, b) = put(&app, "/v1/journeys/welcome", journey).await;
    assert_eq!(b["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_rejected_with_the_path_of_the_fault() {
    let (app, _hook) = app_with_hook().await;
    let (s, b) = put(&app, "/v1/journeys/j", json!({
        "trigger": {"type": "schedule", "cron": "0 25 * * *"},
        "start": "a",
        "steps": {"a": {"type": "send", "template": "nope", "next": "b"}, "b": {"type": "wait", "duration": "1d", "next": "a"}}
    })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let m = b["message"].as_str().unwrap();
    for part in [
        "trigger.cron",
        "steps.a.template: unknown template \"nope\"",
        "cycle",
    ] {
        assert!(m.contains(part), "{part} in {m}");
    }
    assert_eq!(b["code"], "invalid_definition");
    let (s, b) = put(&app, "/v1/templates/t", json!({"body": "hi {{ name"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["message"].as_str().unwrap().contains("body:1:"), "{b}");
    let (s, b) = app
        .call(
            "PUT",
            "/v1/journeys/j",
            Some(&app.key),
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"].as_str().unwrap().contains("line 1 column 2"),
        "{b}"
    );
    let (s, b) = put(
        &app,
        "/v1/autoreply",
        json!([{"id": "r", "matcher": {"regex": "(unclosed"}}]),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_cap_marketing_and_honour_unsubscribe_replies() {
    let (app, hook) = app_with_hook().await;
    put(
        &app,
        "/v1/templates/promo",
        json!({"body": "双11 特价", "class": "marketing"}),
    )
    .await;
    app.post_events(
        r#"[{"ts": 1790000000, "identity": "wecom:a", "type": "add_friend"},
                        {"ts": 1790000000, "identity": "wecom:b", "type": "add_friend"}]"#,
    )
    .await;
    for i in 0..3 {
        let (s, b) = post(&app, "/v1/sends", json!({"id": format!("promo-{i}"), "identities": ["wecom:a"], "template": "promo", "channel": "webhook", "kind": "direct"})).await;
        assert_eq!((s, b["queued"].clone()), (StatusCode::OK, json!(1)), "{b}");
    }
    hook.wait_for(2).await;
    let out = wait_until(&app, "/v1/outbox?status=suppressed", |v| {
        v["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(out["items"][0]["detail"], "marketing_cap", "{out}");
    assert_eq!(out["items"][0]["key"], "m/promo-2/wecom:a");
    let (_, audit) = app
        .call(
            "GET",
            "/v1/outbox/attempts?key=m/promo-0/wecom:a",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    let verdicts: Vec<&str> = audit["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["sent", "done"], "{audit}");
    let (_, audit) = app
        .call(
            "GET",
            "/v1/outbox/attempts?key=m/promo-2/wecom:a",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(audit["attempts"][0]["verdict"], "suppressed", "{audit}");
    assert_eq!(audit["attempts"][0]["detail"], "marketing_cap", "{audit}");
    // Replaying a send id sends nothing new.
    post(&app, "/v1/sends", json!({"id": "promo-0", "identities": ["wecom:a"], "template": "promo", "channel": "webhook"})).await;
    // b replies 退订: marketing to b stops, recorded in the ledger.
    app.post_events(
        r#"{"ts": 1790000500, "identity": "wecom:b", "type": "comment", "text": " 退订。"}"#,
    )
    .await;
    wait_until(&app, "/v1/persons/wecom:b/consent", |v| {
        v["ledger"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    post(&app, "/v1/sends", json!({"id": "promo-b", "identities": ["wecom:b"], "template": "promo", "channel": "webhook"})).await;
    let out = wait_until(&app, "/v1/outbox?person=wecom:b", |v| {
        v["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["status"] == "suppressed"))
    })
    .await;
    assert!(out.to_string().contains("opted_out"), "{out}");
    // And the reply became an opt_out event on the person.
    wait_until(&app, "/v1/persons/wecom:b", |v| {
        v.to_string().contains("\"opted_out\":true")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hook.bodies().len(),
        2,
        "nothing else was sent: {:?}",
        hook.bodies()
    );
    // An opt-in through the API lets marketing through again.
    post(
        &app,
        "/v1/consent",
        json!({"identity": "wecom:b", "granted": true}),
    )
    .await;
    post(&app, "/v1/sends", json!({"id": "promo-b2", "identities": ["wecom:b"], "template": "promo", "channel": "webhook"})).await;
    hook.wait_for(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_reply_rule_with_an_unknown_template_is_refused_like_a_journey() {
    let (app, _hook) = app_with_hook().await;
    let rules = json!([{"id": "ok", "matcher": {"contains": "hi"}},
                       {"id": "price", "matcher": {"contains": "多少钱"}, "reply_template": "nope"}]);
    let (s, b) = put(&app, "/v1/autoreply", rules.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(
        b["message"],
        "rules[1].reply_template: unknown template \"nope\"; save it first (PUT /v1/templates/nope)"
    );
    let (_, v) = app.get("/v1/autoreply").await;
    assert_eq!(v["rules"], json!([]), "nothing was saved: {v}");
    put(
        &app,
        "/v1/templates/nope",
        json!({"body": "199 元", "class": "transactional"}),
    )
    .await;
    let (s, b) = put(&app, "/v1/autoreply", rules).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rules"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_inbound_comment_gets_a_keyword_auto_reply() {
    let (app, hook) = app_with_hook().await;
    put(
        &app,
        "/v1/templates/price",
        json!({"body": "您好，价格是 199 元，资料已发您", "class": "transactional"}),
    )
    .await;
    let (s, b) = put(&app, "/v1/autoreply", json!([{"id": "price", "matcher": {"any_of": ["多少钱", "求资料"]}, "reply_template": "price", "tags": ["lead"], "create_lead": true}])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let body =
        json!({"identity": "douyin:u1", "type": "comment", "text": "请问多少钱？", "id": "c-1"})
            .to_string();
    let ts = siyu_server::writer::wall_clock();
    // Unsigned, and wrongly signed: refused.
    let (s, _) = app
        .call(
            "POST",
            "/v1/inbound/douyin",
            None,
            "application/json",
            body.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = inbound(&app, "douyin", ts, &body, "default").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = hook.wait_for(1).await;
    assert_eq!(got[0]["body"], "您好，价格是 199 元，资料已发您");
    assert_eq!(
        got[0]["recipient"], "u1",
        "the douyin identity, through the webhook bridge"
    );
    assert_eq!(got[0]["data"]["channel"], "douyin");
    wait_until(&app, "/v1/persons/douyin:u1", |v| {
        v.to_string().contains("\"lead\"")
    })
    .await;
    wait_until(&app, "/v1/tasks", |v| v.to_string().contains("请问多少钱")).await;
}

/// Platforms without a built-in client are answered by the brand's
/// bridges: each channel's own (`[connectors.bridges.<channel>]`) when
/// configured, the generic webhook otherwise; the auto-reply names the
/// comment, conversation and item the customer wrote in, so the bridge can
/// answer in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_gets_the_reply_with_where_to_answer_it() {
    let (generic, generic_url) = Receiver::start().await;
    let (xhs, xhs_url) = Receiver::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, 1 << 20, |c| {
        c.connectors.webhook = Some(WebhookConfig {
            url: generic_url,
            secret: Secret::new(SECRET),
            timeout_ms: 2000,
        });
        c.connectors.bridges.insert(
            "xiaohongshu".into(),
            WebhookConfig {
                url: xhs_url,
                secret: Secret::new(SECRET),
                timeout_ms: 2000,
            },
        );
        for ch in ["douyin", "xiaohongshu"] {
            c.inbound_secrets.insert(ch.into(), "inbound-secret".into());
        }
    })
    .await;
    put(&app, "/v1/guardrails", json!({"quiet_hours": null})).await;
    put(
        &app,
        "/v1/templates/price",
        json!({"body": "价格 199 元", "class": "transactional"}),
    )
    .await;
    let (s, b) = put(
        &app,
        "/v1/autoreply",
        json!([{"id": "price", "matcher": {"contains": "多少钱"}, "reply_template": "price"}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ts = siyu_server::writer::wall_clock();

    // A Xiaohongshu DM: its own bridge, told the conversation.
    let dm = json!({"id": "xhs-dm-77", "identity": "xiaohongshu:5f0e", "type": "comment", "text": "这个多少钱",
        "properties": {"kind": "message", "conversation_id": "conv-9", "item_id": "note-64a1"}})
    .to_string();
    let (s, b) = inbound(&app, "xiaohongshu", ts, &dm, "default").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = xhs.wait_for(1).await;
    assert_eq!(got[0]["channel"], "xiaohongshu", "{}", got[0]);
    assert_eq!(got[0]["recipient"], "5f0e");
    assert_eq!(got[0]["body"], "价格 199 元");
    assert_eq!(
        got[0]["data"]["reply_to"],
        json!({"event_id": "xhs-dm-77", "channel": "xiaohongshu", "kind": "message",
               "conversation_id": "conv-9", "item_id": "note-64a1"})
    );

    // A Douyin comment (numeric ids as Douyin sends them; a value that is
    // not an id is left out): no douyin bridge, so the generic webhook,
    // with the channel named.
    let comment =
        json!({"id": "dy-c-1", "identity": "douyin:u9", "type": "comment", "text": "多少钱呀",
        "properties": {"kind": "comment", "comment_id": 7301234567890123456_u64, "item_id": "v-88",
                       "conversation_id": {"not": "an id"}}})
        .to_string();
    let (s, b) = inbound(&app, "douyin", ts, &comment, "default").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = generic.wait_for(1).await;
    assert_eq!(got[0]["channel"], "webhook");
    assert_eq!(got[0]["data"]["channel"], "douyin");
    assert_eq!(
        got[0]["data"]["reply_to"],
        json!({"event_id": "dy-c-1", "channel": "douyin", "kind": "comment",
               "comment_id": "7301234567890123456", "item_id": "v-88"})
    );
    assert_eq!(xhs.bodies().len(), 1, "each channel to its own bridge");
}

/// A request to `/v1/inbound/{channel}` signed with the test secret for
/// `workspace`.
pub(crate) async fn inbound(
    app: &TestApp,
    channel: &str,
    ts: i64,
    body: &str,
    workspace: &str,
) -> (StatusCode, Value) {
    let sig = siyu_connectors::sign_inbound(b"inbound-secret", workspace, ts, body.as_bytes());
    inbound_signed(app, channel, ts, body, &sig).await
}

async fn inbound_signed(
    app: &TestApp,
    channel: &str,
    ts: i64,
    body: &str,
    sig: &str,
) -> (StatusCode, Value) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/v1/inbound/{channel}"))
        .header("content-type", "application/json")
        .header("x-siyu-timestamp", ts.to_string())
        .header("x-siyu-signature", sig)
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(siyu_server::app(app.state.clone()), req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_requests_are_accepted_once_for_their_workspace_and_channel() {
    let (app, _hook) = app_with_hook().await;
    let ts = siyu_server::writer::wall_clock();
    let body = json!({"identity": "douyin:r1", "type": "comment", "text": "hi"}).to_string();
    let (s, b) = inbound(&app, "douyin", ts, &body, "default").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The same signed request again, within the window: a replay.
    let (s, b) = inbound(&app, "douyin", ts, &body, "default").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("replayed")),
        "{b}"
    );
    // The same signature spelled differently (case, spaces) is the same
    // request.
    let sig = siyu_connectors::sign_inbound(b"inbound-secret", "default", ts, body.as_bytes());
    let respelled = format!(" sha256={} ", sig["sha256=".len()..].to_uppercase());
    let (s, b) = inbound_signed(&app, "douyin", ts, &body, &respelled).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("replayed")),
        "{b}"
    );
    // Signed anew (another timestamp): accepted.
    let (s, b) = inbound(&app, "douyin", ts - 1, &body, "default").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Signed for another workspace with the same secret: refused.
    let (s, b) = inbound(&app, "douyin", ts, &body.replace("r1", "r2"), "brand_b").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_signature")),
        "{b}"
    );
    // The old signature form (no workspace): refused.
    let fresh = body.replace("r1", "r5");
    let old = siyu_connectors::sign(b"inbound-secret", ts, fresh.as_bytes());
    let (s, b) = inbound_signed(&app, "douyin", ts, &fresh, &old).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // A douyin-signed request writing a WeCom identity: 403 naming the
    // channel, and nothing of it written.
    let cross = json!([{"identity": "douyin:r3", "type": "comment", "text": "a"},
                       {"identity": "wecom:victim", "type": "identify", "traits": {"tags": ["x"]}}])
    .to_string();
    let (s, b) = inbound(&app, "douyin", ts, &cross, "default").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("wrong_channel")),
        "{b}"
    );
    let m = b["message"].as_str().unwrap();
    assert!(
        m.contains("events[1].identity") && m.contains("`wecom:") && m.contains("`douyin`"),
        "{m}"
    );
    let merge =
        json!({"identity": "douyin:r4", "type": "identify", "ref": "wecom:victim"}).to_string();
    let (s, b) = inbound(&app, "douyin", ts, &merge, "default").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(
        app.get("/v1/persons/wecom:victim").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/persons/douyin:r3").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_webhooks_are_rate_limited_per_address() {
    let (app, _hook) = app_with_hook().await;
    let router = siyu_server::app(app.state.clone());
    let from = |peer: &str| {
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        axum::http::Request::builder()
            .method("POST")
            .uri("/v1/inbound/douyin")
            .header("x-forwarded-for", "203.0.113.1")
            .extension(axum::extract::ConnectInfo(addr))
            .body(axum::body::Body::from("{}"))
            .unwrap()
    };
    // Unsigned requests (401) from one address: its burst, then 429.
    let mut answered = 0;
    loop {
        let s = tower::ServiceExt::oneshot(router.clone(), from("198.51.100.7:1"))
            .await
            .unwrap()
            .status();
        if s == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        answered += 1;
        assert!(answered < 5000, "never limited");
    }
    assert!(answered >= 400, "{answered}");
    let other = tower::ServiceExt::oneshot(router.clone(), from("198.51.100.8:1"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_links_are_opaque_resolve_and_die_with_erasure() {
    let (app, hook) = app_with_hook().await;
    put(
        &app,
        "/v1/templates/bye",
        json!({"body": "退订：{{unsubscribe_link}} 指南：{{content.guide}}", "class": "transactional"}),
    )
    .await;
    put(
        &app,
        "/v1/content/guide",
        json!({"kind": "article", "title": "指南", "url": "https://example.com/guide"}),
    )
    .await;
    app.post_events(r#"{"ts": 1790000000, "identity": "phone:13800138000", "type": "add_friend", "channel": "webhook"}"#)
        .await;
    let (s, b) = post(
        &app,
        "/v1/sends",
        json!({"id": "u1", "identities": ["phone:13800138000"], "template": "bye", "channel": "webhook"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = hook.wait_for(1).await;
    let body = got[0]["body"].as_str().unwrap().to_string();
    // Neither the identity nor its hex is in any link.
    let hex: String = "phone:13800138000"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !body.contains("13800138000") && !body.contains(&hex),
        "{body}"
    );
    let start = body.find("/u/").expect(&body);
    let token = body[start + 3..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (s, page) = app
        .call("GET", &format!("/u/{token}"), None, "text/plain", "")
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let (s, _) = app
        .call("POST", &format!("/u/{token}"), None, "text/plain", "")
        .await;
    assert_eq!(s, StatusCode::OK);
    let c = wait_until(&app, "/v1/persons/phone:13800138000/consent", |v| {
        v.to_string().contains("unsubscribe_link")
    })
    .await;
    assert!(c.to_string().contains("false"), "{c}");
    // Erased: the link names nobody any more.
    let (s, b) = app
        .call(
            "DELETE",
            "/v1/persons/phone:13800138000",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .call("GET", &format!("/u/{token}"), None, "text/plain", "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_links_are_tracked_per_person() {
    let (app, hook) = app_with_hook().await;
    let (s, b) = put(
        &app,
        "/v1/content/guide",
        json!({"kind": "article", "title": "护肤指南", "url": "https://example.com/guide"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(
        &app,
        "/v1/content/bad",
        json!({"kind": "miniprogram", "title": "t", "url": "ftp://x"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    // A line break would split the redirect's Location header.
    let (s, b) = put(
        &app,
        "/v1/content/split",
        json!({"kind": "article", "title": "t", "url": "https://example.com/\r\nSet-Cookie: a=b"}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("url: control character"),
        "{b}"
    );
    assert_eq!(app.get("/c/split").await.0, StatusCode::NOT_FOUND);
    put(
        &app,
        "/v1/templates/guide",
        json!({"body": "指南：{{content.guide}}", "class": "transactional"}),
    )
    .await;
    app.post_events(r#"{"ts": 1790000000, "identity": "wecom:a", "type": "add_friend"}"#)
        .await;
    post(
        &app,
        "/v1/sends",
        json!({"id": "g1", "identities": ["wecom:a"], "template": "guide", "channel": "webhook"}),
    )
    .await;
    let got = hook.wait_for(1).await;
    let body = got[0]["body"].as_str().unwrap();
    let link = &body[body.find("/c/guide?p=").expect(body)..];
    let (s, _) = app.call("GET", link, None, "text/plain", "").await;
    assert_eq!(s, StatusCode::FOUND);
    let tl = wait_until(&app, "/v1/persons/wecom:a/timeline", |v| {
        v.to_string().contains("content_view")
    })
    .await;
    assert!(tl.to_string().contains("\"content\":\"guide\""), "{tl}");
    let (_, list) = app
        .call("GET", "/v1/content", Some(&app.key), "application/json", "")
        .await;
    assert_eq!(list["content"][0]["views"], 1);
    // A forged token still redirects but records nothing.
    let (s, _) = app
        .call("GET", "/c/guide?p=00.00", None, "text/plain", "")
        .await;
    assert_eq!(s, StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_listed_without_secrets() {
    let (app, _hook) = app_with_hook().await;
    let (s, v) = app
        .call(
            "GET",
            "/v1/connectors",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let on: Vec<&str> = v["outbound"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["configured"] == true)
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(on, ["webhook"]);
    assert_eq!(v["inbound"], json!(["douyin"]));
    assert!(
        !v.to_string().contains(SECRET) && !v.to_string().contains("inbound-secret"),
        "{v}"
    );
}

/// The fields of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// The typed answers keep the fields (and nulls) the console and the
/// API document rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_answers_keep_their_shapes() {
    let app = TestApp::spawn().await;
    let (_, v) = app.get("/v1/connectors").await;
    assert_eq!(
        keys(&v),
        [
            "callbacks",
            "inbound",
            "note",
            "outbound",
            "public_url",
            "stats"
        ]
    );
    // Nothing configured for callbacks: every URL null.
    assert_eq!(
        v["callbacks"],
        serde_json::json!({"wecom": null, "wechat": null, "sms_status": null, "sms_reply": null})
    );
    assert_eq!(
        v["stats"],
        json!({"channels": {}, "unknown_channel": 0}),
        "{v}"
    );
    assert_eq!(
        v["outbound"][0],
        json!({"channel": "webhook", "configured": false})
    );
    let (_, v) = app.get("/v1/guardrails").await;
    assert_eq!(
        v,
        serde_json::to_value(siyu_automation::guard::Policy::default()).unwrap()
    );
    let (_, v) = app.get("/v1/autoreply").await;
    assert_eq!(v, json!({"rules": []}));
    let (s, v) = put(&app, "/v1/templates/hi", json!({"body": "hi {{name}}"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"name": "hi", "variables": ["name"]}));
    let (_, v) = app.get("/v1/templates").await;
    assert_eq!(
        v,
        json!({"templates": [{"name": "hi", "body": "hi {{name}}", "subject": null, "variants": {}, "class": "marketing"}]})
    );
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend"},
        "start": "hello",
        "steps": {"hello": {"type": "send", "template": "hi", "channel": "webhook"}}
    });
    let (s, v) = put(&app, "/v1/journeys/w", journey).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"name": "w", "version": 1, "steps": 1, "enabled": true})
    );
    let (_, v) = app.get("/v1/journeys").await;
    let listed = &v["journeys"][0];
    assert_eq!(
        keys(listed),
        ["active", "archived", "enabled", "name", "status", "steps", "trigger", "version"]
    );
    assert_eq!(
        (
            &listed["status"],
            &listed["active"],
            &listed["trigger"]["event"]
        ),
        (&json!("ok"), &json!(0), &json!("add_friend"))
    );
    let (_, v) = app.get("/v1/journeys/w").await;
    assert_eq!(
        keys(&v),
        [
            "broken_versions",
            "definition",
            "name",
            "status",
            "version",
            "versions"
        ]
    );
    assert_eq!(
        (
            &v["versions"],
            &v["broken_versions"],
            &v["definition"]["start"]
        ),
        (&json!([1]), &json!([]), &json!("hello"))
    );
    let (_, v) = app.get("/v1/journeys/w/report").await;
    assert_eq!(
        keys(&v),
        [
            "active",
            "by_template",
            "conversions",
            "dead",
            "enrolled",
            "journey",
            "outbox",
            "reads",
            "revenue",
            "sends",
            "sent",
            "skipped_history",
            "steps",
            "suppressed",
            "window_days"
        ]
    );
    assert_eq!((&v["journey"], &v["window_days"]), (&json!("w"), &json!(7)));
    let (_, v) = app.get("/v1/journeys/w/enrollments").await;
    assert_eq!(v, json!({"enrollments": []}));
    let (s, v) = post(
        &app,
        "/v1/consent",
        json!({"identity": "wecom:a", "granted": false}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(keys(&v), ["channel", "granted", "identity", "ts"]);
    assert_eq!(v["channel"], Value::Null);
    let (_, v) = app.get("/v1/outbox").await;
    assert_eq!(v, json!({"items": []}));
    let (_, v) = app.get("/v1/tasks").await;
    assert_eq!(v, json!({"tasks": []}));
    let (s, v) = put(
        &app,
        "/v1/content/guide",
        json!({"kind": "article", "title": "Guide", "url": "https://example.com/g"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"id": "guide", "link": "{{content.guide}}"}));
    let (_, v) = app.get("/v1/content").await;
    assert_eq!(
        v,
        json!({"content": [{"id": "guide", "kind": "article", "title": "Guide", "url": "https://example.com/g", "views": 0}]})
    );
}

/// A welcome journey on `add_friend` and a 求资料 auto-reply rule with a
/// lead task, each sending through the test webhook.
pub(crate) async fn welcome_and_autoreply(app: &TestApp) {
    let (s, b) = put(
        app,
        "/v1/templates/welcome",
        json!({"body": "欢迎！", "class": "transactional"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(
        app,
        "/v1/templates/docs",
        json!({"body": "资料已发您", "class": "transactional"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend"},
        "start": "hello",
        "steps": {"hello": {"type": "send", "template": "welcome", "channel": "webhook"}}
    });
    let (s, b) = put(app, "/v1/journeys/welcome", journey).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(app, "/v1/autoreply", json!([{"id": "docs", "matcher": {"contains": "求资料"}, "reply_template": "docs", "create_lead": true}])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Issue 14.1: a brand migrating its history must not message every past
/// contact. Old events posted to the API, and events an import appended
/// to the store beside the server (its backfill range first), trigger
/// no journey and no auto-reply; a fresh event still does. What was
/// skipped is counted in /metrics and in the journey report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_never_triggers_a_message() {
    let (app, hook) = app_with_hook_on_fresh(Backend::Sqlite).await;
    history_never_triggers(app, hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_never_triggers_a_message_on_postgres_too() {
    if crate::pg_url().is_none() {
        return;
    }
    let (app, hook) = app_with_hook_on_fresh(Backend::Postgres).await;
    history_never_triggers(app, hook).await;
}

async fn history_never_triggers(app: TestApp, hook: Receiver) {
    welcome_and_autoreply(&app).await;
    // 2025-01-01: a year-old friend and a year-old comment, posted now.
    let (s, b) = app
        .post_events(
            r#"[{"ts": 1735689600, "identity": "wecom:old", "type": "add_friend", "id": "h1"},
                {"ts": 1735689601, "identity": "douyin:old", "type": "comment", "text": "求资料", "id": "h2"}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Fresh events another process appended to the same store (blocking
    // I/O: the PostgreSQL client runs its own runtime).
    let now = siyu_server::writer::wall_clock();
    tokio::task::block_in_place(|| {
        let mut other = app.other_store();
        let mut a = siyu_domain::Event::new(
            now,
            siyu_domain::Identity::parse("wecom:imported").unwrap(),
            siyu_domain::EventType::AddFriend,
            siyu_domain::Channel::parse("wecom").unwrap(),
        );
        a.id = Some("imp1".into());
        let mut c = siyu_domain::Event::new(
            now,
            siyu_domain::Identity::parse("douyin:imported").unwrap(),
            siyu_domain::EventType::Comment,
            siyu_domain::Channel::parse("douyin").unwrap(),
        );
        c.text = Some("求资料".into());
        c.id = Some("imp2".into());
        // As `siyu import` does: its range first, then the events.
        let range = siyu_server::backfill::begin_import(other.as_mut(), false, now)
            .unwrap()
            .unwrap();
        other.append(&[a, c]).unwrap();
        siyu_server::backfill::end_import(other.as_mut(), &range).unwrap();
    });
    wait_until(&app, "/v1/persons/douyin:imported", |v| {
        v.to_string().contains("douyin:imported")
    })
    .await;
    // A fresh friend is still welcomed, after everything above was seen.
    let fresh =
        format!(r#"{{"ts": {now}, "identity": "wecom:new", "type": "add_friend", "id": "f1"}}"#);
    let (s, b) = app.post_events(&fresh).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = hook.wait_for(1).await;
    assert_eq!(got[0]["body"], "欢迎！", "{got:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.bodies().len(),
        1,
        "only the fresh friend: {:?}",
        hook.bodies()
    );
    let (_, tasks) = app
        .call("GET", "/v1/tasks", Some(&app.key), "application/json", "")
        .await;
    assert_eq!(tasks["tasks"], json!([]), "no lead from history: {tasks}");
    let report = wait_until(&app, "/v1/journeys/welcome/report", |v| {
        v["enrolled"] == json!(1)
    })
    .await;
    assert_eq!(
        report["skipped_history"],
        json!({"stale": 1, "backfill": 1}),
        "{report}"
    );
    let (_, metrics) = app.call("GET", "/metrics", None, "text/plain", "").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        r#"siyu_triggers_skipped_total{workspace="default",trigger="journey",reason="stale"} 1"#,
        r#"siyu_triggers_skipped_total{workspace="default",trigger="journey",reason="backfill"} 1"#,
        r#"siyu_triggers_skipped_total{workspace="default",trigger="auto_reply",reason="stale"} 1"#,
        r#"siyu_triggers_skipped_total{workspace="default",trigger="auto_reply",reason="backfill"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

/// Issue 14.2: five 求资料 comments in one second get one reply and one
/// lead task (per person and rule: a cooldown, and one open lead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_reply_cools_down_per_person_and_rule() {
    let (app, hook) = app_with_hook_on_fresh(Backend::Sqlite).await;
    welcome_and_autoreply(&app).await;
    let now = siyu_server::writer::wall_clock();
    let comments: Vec<Value> = (0..5)
        .map(|i| json!({"ts": now, "identity": "douyin:eager", "type": "comment", "text": "求资料", "id": format!("c{i}")}))
        .chain([json!({"ts": now, "identity": "douyin:other", "type": "comment", "text": "求资料", "id": "o1"})])
        .collect();
    let (s, b) = app.post_events(&Value::from(comments).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    hook.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.bodies().len(),
        2,
        "one reply per person: {:?}",
        hook.bodies()
    );
    let (_, tasks) = app
        .call("GET", "/v1/tasks", Some(&app.key), "application/json", "")
        .await;
    assert_eq!(
        tasks["tasks"].as_array().map(Vec::len),
        Some(2),
        "one lead per person: {tasks}"
    );
}

/// Issue 14.2: after the cooldown a rule answers again, but makes a new
/// lead task only once the person's previous one was completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_lead_per_person_and_rule_after_the_cooldown() {
    let (app, hook) = app_with_hook_on_fresh(Backend::Sqlite).await;
    welcome_and_autoreply(&app).await;
    let (s, b) = put(&app, "/v1/autoreply", json!([{"id": "docs", "matcher": {"contains": "求资料"}, "reply_template": "docs", "create_lead": true, "cooldown_secs": 1}])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let comment = |id: &str| {
        let now = siyu_server::writer::wall_clock();
        json!([{"ts": now, "identity": "douyin:eager", "type": "comment", "text": "求资料", "id": id}]).to_string()
    };
    let open_tasks = || async {
        let (_, t) = app
            .call(
                "GET",
                "/v1/tasks?open=true",
                Some(&app.key),
                "application/json",
                "",
            )
            .await;
        t["tasks"].as_array().cloned().unwrap_or_default()
    };
    app.post_events(&comment("a")).await;
    hook.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.post_events(&comment("b")).await;
    hook.wait_for(2).await;
    let tasks = open_tasks().await;
    assert_eq!(tasks.len(), 1, "the first lead is still open: {tasks:?}");
    let (s, b) = post(&app, "/v1/tasks/done", json!({"key": tasks[0]["key"]})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.post_events(&comment("c")).await;
    hook.wait_for(3).await;
    let tasks = wait_until(&app, "/v1/tasks?open=true", |v| {
        v["tasks"].as_array().is_some_and(|t| t.len() == 1)
    })
    .await;
    assert!(tasks.to_string().contains("r/docs/c/lead"), "{tasks}");
    let (_, metrics) = app.call("GET", "/metrics", None, "text/plain", "").await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains(r#"siyu_triggers_skipped_total{workspace="default",trigger="lead",reason="open_lead"} 1"#),
        "{metrics}"
    );
}

/// Archiving a journey (issue 14.8): `exit` ends the running enrollments
/// and nothing they were waiting to send is ever sent; `finish` lets them
/// send it; neither enrolls anyone new, and the report stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_journey_finishes_or_exits_its_running_enrollments() {
    let (app, hook) = app_with_hook().await;
    let (s, b) = put(
        &app,
        "/v1/templates/later",
        json!({"body": "稍后见", "class": "transactional"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (name, event) in [("leaving", "add_friend"), ("staying", "comment")] {
        let journey = json!({
            "trigger": {"type": "event", "event": event},
            "start": "pause",
            "steps": {
                "pause": {"type": "wait", "duration": "2s", "next": "hello"},
                "hello": {"type": "send", "template": "later", "channel": "webhook"}
            }
        });
        let (s, b) = put(&app, &format!("/v1/journeys/{name}"), journey).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    app.post_events(
        r#"[{"ts": 1790000000, "identity": "wecom:x", "type": "add_friend"},
            {"ts": 1790000000, "identity": "wecom:y", "type": "comment", "text": "hi"}]"#,
    )
    .await;
    for name in ["leaving", "staying"] {
        wait_until(&app, "/v1/journeys", |v| {
            v["journeys"]
                .as_array()
                .is_some_and(|j| j.iter().any(|j| j["name"] == name && j["active"] == 1))
        })
        .await;
    }
    // Someone is in it: the operator must choose.
    let (s, b) = app
        .call(
            "DELETE",
            "/v1/journeys/leaving",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("enrollments=exit"),
        "{b}"
    );
    let (s, b) = app
        .call(
            "DELETE",
            "/v1/journeys/leaving?enrollments=exit",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["archived"].clone(),
            b["exited"].clone(),
            b["version"].clone()
        ),
        (json!(true), json!(1), json!(2)),
        "{b}"
    );
    let (s, b) = app
        .call(
            "DELETE",
            "/v1/journeys/staying?enrollments=finish",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["finishing"].clone(), b["exited"].clone()),
        (json!(1), json!(0)),
        "{b}"
    );

    // Past the wait: only the finishing enrollment sends.
    let got = hook.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let got_after = hook.bodies();
    assert_eq!(got_after.len(), 1, "{got_after:?}");
    assert!(
        got[0]["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("j/staying/"),
        "{got:?}"
    );
    // Archived journeys enroll nobody new.
    app.post_events(
        r#"[{"ts": 1790000100, "identity": "wecom:z", "type": "add_friend"},
            {"ts": 1790000100, "identity": "wecom:z", "type": "comment", "text": "hi"}]"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, list) = app.get("/v1/journeys").await;
    assert_eq!(
        list["journeys"],
        json!([]),
        "archived journeys are hidden: {list}"
    );
    let (_, list) = app.get("/v1/journeys?archived=true").await;
    assert_eq!(list["journeys"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        list["journeys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["archived"] == true && j["active"] == 0),
        "{list}"
    );
    let (s, report) = app.get("/v1/journeys/leaving/report").await;
    assert_eq!(
        (s, report["enrolled"].clone()),
        (StatusCode::OK, json!(1)),
        "{report}"
    );
    let (_, e) = app.get("/v1/journeys/leaving/enrollments").await;
    assert!(
        e.to_string()
            .contains("journey archived: enrollments exited"),
        "{e}"
    );
    // Saved again: restored, under a new version.
    let (s, b) = put(
        &app,
        "/v1/journeys/leaving",
        json!({
            "trigger": {"type": "event", "event": "add_friend"},
            "start": "hello",
            "steps": {"hello": {"type": "send", "template": "later", "channel": "webhook"}}
        }),
    )
    .await;
    assert_eq!((s, b["version"].clone()), (StatusCode::OK, json!(3)), "{b}");
    let (s, _) = app
        .call(
            "DELETE",
            "/v1/journeys/none?enrollments=exit",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
