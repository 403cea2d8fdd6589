//! Conversations (会话) through the API, with replies delivered over real
//! HTTP to a local bridge: the inbox list and its filters, a thread
//! across channels, a reply through the guardrails and the connector (with
//! where to answer it), sensitive words flagged and archived, assignment,
//! resolution, service windows, the report, the change feed, alerts and
//! erasure of the archive.

use crate::automation::{inbound, Receiver, SECRET};
use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_connectors::{Secret, WebhookConfig};
use std::time::{Duration, Instant};

async fn app_with_bridge() -> (TestApp, Receiver) {
    app_with_bridge_on(Backend::Sqlite).await
}

/// A node whose Douyin replies go to a local bridge (the returned
/// receiver), with an inbound secret for Douyin and no quiet hours.
async fn app_with_bridge_on(backend: Backend) -> (TestApp, Receiver) {
    let (bridge, url) = Receiver::start().await;
    let app = TestApp::spawn_with(backend, 1 << 20, |c| {
        c.connectors.bridges.insert(
            "douyin".into(),
            WebhookConfig {
                url,
                secret: Secret::new(SECRET),
                timeout_ms: 2000,
            },
        );
        c.inbound_secrets
            .insert("douyin".into(), "inbound-secret".into());
    })
    .await;
    // Replies may go out at any hour in a test.
    let (s, b) = app
        .send("PUT", "/v1/guardrails", json!({"quiet_hours": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (app, bridge)
}

async fn comment(app: &TestApp, id: &str, who: &str, ts: i64, text: &str) {
    let body = json!([{"id": id, "ts": ts, "identity": who, "type": "comment", "text": text,
        "properties": {"kind": "comment", "comment_id": format!("cid-{id}"), "item_id": "v-1"}}])
    .to_string();
    let (s, b) = inbound(
        app,
        "douyin",
        siyu_server::writer::wall_clock(),
        &body,
        "default",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["accepted"], 1, "{b}");
}

async fn wait_until(app: &TestApp, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, v) = app.get(path).await;
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{path} never satisfied: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn people(list: &Value) -> Vec<&str> {
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["person"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_listed_answered_archived_assigned_and_resolved() {
    let (app, bridge) = app_with_bridge().await;
    let mut changes = app.state.0.conversations.subscribe();
    let now = siyu_server::writer::wall_clock();
    comment(&app, "m1", "douyin:c1", now - 120, "这个多少钱").await;
    comment(&app, "m2", "douyin:c2", now - 60, "有货吗").await;
    let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("open feed");
    assert_eq!(
        (change.person.as_str(), change.kind),
        ("douyin:c1", "comment")
    );

    // The inbox: newest first, both waiting, with the preview.
    let (s, list) = app.get("/v1/conversations").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(people(&list), ["douyin:c2", "douyin:c1"]);
    let c1 = &list["conversations"][1];
    assert_eq!(c1["channel"], "douyin");
    assert_eq!(c1["preview"], "这个多少钱");
    assert_eq!(c1["unanswered"], 1);
    assert_eq!(c1["unanswered_since"], now - 120);
    assert_eq!(c1["status"], "open");
    let (_, waiting) = app.get("/v1/conversations?sort=waiting").await;
    assert_eq!(people(&waiting), ["douyin:c1", "douyin:c2"]);
    let (_, none) = app.get("/v1/conversations?channel=wecom").await;
    assert_eq!(none["total"], 0);
    let (_, long) = app.get("/v1/conversations?waiting_minutes=2").await;
    assert_eq!(people(&long), ["douyin:c1"]);
    for (q, field) in [
        ("unanswered=yes", "unanswered"),
        ("limit=0", "limit"),
        ("sort=oldest", "sort"),
        ("status=closed", "status"),
        ("segment=nope", "segment"),
    ] {
        let (s, b) = app.get(&format!("/v1/conversations?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        assert!(
            b["message"].as_str().unwrap().starts_with(field),
            "{q}: {b}"
        );
    }

    // A reply: through the guardrails to the Douyin bridge, told where
    // to answer; a sensitive word is flagged and archived, not blocked.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/sensitive-words",
            json!({"rules": [{"id": "wechat", "matcher": {"contains": "加我微信"}, "applies_to": "operator", "category": "私下交易"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, sent) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/messages",
            json!({"text": "您好，199 元，加我微信详聊", "operator": "li"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["channel"], "douyin");
    assert_eq!(sent["status"], "done", "{sent}");
    assert_eq!(
        sent["sensitive"],
        json!([{"id": "wechat", "category": "私下交易"}])
    );
    assert!(sent["response_secs"].as_i64().unwrap() >= 120);
    let got = bridge.wait_for(1).await;
    assert_eq!(got[0]["recipient"], "c1");
    assert_eq!(got[0]["body"], "您好，199 元，加我微信详聊");
    assert_eq!(got[0]["data"]["operator"], "li");
    assert_eq!(got[0]["data"]["class"], "transactional");
    assert_eq!(got[0]["data"]["reply_to"]["comment_id"], "cid-m1");

    // Answered: no longer waiting; the thread shows both sides in order.
    wait_until(&app, "/v1/conversations?unanswered=true", |v| {
        v["total"] == 1
    })
    .await;
    let (s, thread) = app.get("/v1/conversations/douyin:c1").await;
    assert_eq!(s, StatusCode::OK, "{thread}");
    let msgs = thread["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{thread}");
    assert_eq!(
        (msgs[0]["direction"].as_str(), msgs[0]["text"].as_str()),
        (Some("in"), Some("这个多少钱"))
    );
    assert_eq!(msgs[1]["direction"], "out");
    assert_eq!(msgs[1]["operator"], "li");
    assert_eq!(msgs[1]["source"], "operator");
    assert_eq!(msgs[1]["status"], "done");
    assert_eq!(msgs[1]["sensitive"][0]["id"], "wechat");
    assert_eq!(thread["reply_channels"][0], "douyin");
    assert_eq!(thread["person"]["unanswered"], 0);
    assert_eq!(thread["profile"]["identities"], json!(["douyin:c1"]));

    // The archive: by text, flag, operator and person.
    for q in [
        "q=%E5%BE%AE%E4%BF%A1",
        "flagged=true",
        "operator=li",
        "person=douyin:c1",
    ] {
        let (s, a) = app.get(&format!("/v1/conversations/archive?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["messages"].as_array().unwrap().len(), 1, "{q}: {a}");
        assert_eq!(a["messages"][0]["sensitive"][0]["category"], "私下交易");
    }
    let (_, a) = app.get("/v1/conversations/archive?operator=wang").await;
    assert!(a["messages"].as_array().unwrap().is_empty());

    // Assignment (the owner) filters the inbox; an unknown login is refused.
    let (s, b) = app
        .send("PUT", "/v1/operators/li", json!({"name": "小李"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/assign",
            json!({"operator": "li"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/assign",
            json!({"operator": "ghost"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("operator:"),
        "{b}"
    );
    let mine = wait_until(&app, "/v1/conversations?operator=li", |v| v["total"] == 1).await;
    assert_eq!(people(&mine), ["douyin:c1"]);
    let (_, free) = app.get("/v1/conversations?operator=none").await;
    assert_eq!(people(&free), ["douyin:c2"]);

    // A follow-up task in place, listed in the thread.
    let (s, t) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/tasks",
            json!({"title": "明天回电确认尺码", "operator": "li"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (_, thread) = app.get("/v1/conversations/douyin:c1").await;
    assert_eq!(thread["tasks"][0]["title"], "明天回电确认尺码", "{thread}");
    assert_eq!(thread["tasks"][0]["operator"], "li");
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/tasks",
            json!({"title": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("title:"), "{b}");

    // Resolved until the customer writes again.
    let (s, r) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/resolve",
            json!({"operator": "li"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["resolution_secs"].as_i64().unwrap() >= 120, "{r}");
    wait_until(&app, "/v1/conversations?status=resolved", |v| {
        v["total"] == 1
    })
    .await;
    // Times are seconds: a message in the second of the resolve is before it.
    while siyu_server::writer::wall_clock() <= r["resolved_at"].as_i64().unwrap() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    comment(
        &app,
        "m3",
        "douyin:c1",
        siyu_server::writer::wall_clock(),
        "还有优惠吗",
    )
    .await;
    let open = wait_until(&app, "/v1/conversations?status=open", |v| v["total"] == 2).await;
    assert_eq!(open["conversations"][0]["person"], "douyin:c1");
    assert_eq!(open["conversations"][0]["unanswered"], 1);

    // The report per operator.
    let (s, rep) = app.get("/v1/conversations/report").await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    let li = rep["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operator"] == "li")
        .expect("li is in the report")
        .clone();
    assert_eq!(li["messages"], 1);
    assert_eq!(li["persons"], 1);
    assert_eq!(li["first_responses"], 1);
    assert_eq!(li["sensitive_hits"], 1);
    assert_eq!(li["unanswered_now"], 1, "c1 wrote again and is li's");
    assert_eq!(li["resolved"], 1, "the resolve named li");

    // Faults name the field and the fix.
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/messages",
            json!({"text": "  "}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("text:"), "{b}");
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:c1/messages",
            json!({"text": "hi", "channel": "sms"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("no connector sends on `sms`"),
        "{b}"
    );
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:nobody/messages",
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = app.get("/v1/conversations/douyin:nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // Erasure takes the archive with it.
    let (s, b) = app.send("DELETE", "/v1/persons/douyin:c1", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, a) = app
        .get("/v1/conversations/archive?q=%E5%BE%AE%E4%BF%A1")
        .await;
    assert!(a["messages"].as_array().unwrap().is_empty(), "{a}");
}

/// A platform that takes replies only within a window after the
/// customer's last message refuses one outside it, saying when they last
/// wrote; the settings say which channels have windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_outside_the_service_window_is_refused_with_the_reason() {
    let (app, bridge) = app_with_bridge().await;
    let (s, b) = app.get("/v1/conversations/settings").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["service_windows"]["wechat"], 48);
    let (s, b) = app
        .send(
            "PUT",
            "/v1/conversations/settings",
            json!({"service_windows": {"douyin": 0}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("service_windows.douyin"),
        "{b}"
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/conversations/settings",
            json!({"service_windows": {"douyin": 1}, "unanswered_alert_minutes": 10}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = siyu_server::writer::wall_clock();
    comment(&app, "old", "douyin:late", now - 2 * 3600, "还在吗").await;
    wait_until(&app, "/v1/conversations", |v| v["total"] == 1).await;
    let (s, b) = app
        .send(
            "POST",
            "/v1/conversations/douyin:late/messages",
            json!({"text": "在的"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "outside_service_window");
    let m = b["message"].as_str().unwrap();
    assert!(m.contains("within 1 h") && m.contains("2 h ago"), "{m}");
    assert!(bridge.bodies().is_empty(), "nothing was sent");

    // Alerts: the customer has waited two hours, past the 10 minutes.
    let settings = siyu_server::conversations::Settings {
        unanswered_alert_minutes: 10,
        ..Default::default()
    };
    let tasks = {
        let e = app.state.0.engine.read().unwrap();
        siyu_server::conversations::unanswered_alerts(&e, &settings, now)
    };
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].identity, "douyin:late");
    assert_eq!(
        tasks[0].key,
        format!("unanswered/douyin:late/{}", now - 2 * 3600)
    );

    // Writing again opens the window.
    comment(&app, "new", "douyin:late", now, "在吗？").await;
    let started = Instant::now();
    loop {
        let (s, b) = app
            .send(
                "POST",
                "/v1/conversations/douyin:late/messages",
                json!({"text": "在的"}),
            )
            .await;
        if s == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert!(started.elapsed() < Duration::from_secs(10), "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bridge.wait_for(1).await[0]["body"], "在的");
}

/// Two nodes on one PostgreSQL database: a customer's message taken by
/// one node reaches the other node's inbox and change stream; a reply
/// made on the node that does not lead is delivered (by the leader) and
/// answers the customer on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_work_across_nodes_on_postgres() {
    let Some(_) = crate::pg_url() else {
        eprintln!("SKIPPED: SIYU_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, bridge) = app_with_bridge_on(Backend::Postgres).await;
    let b = a.peer().await;
    assert!(a.state.0.leader.is_leader() && !b.state.0.leader.is_leader());
    let mut heard_on_b = b.state.0.conversations.subscribe();
    comment(
        &a,
        "x1",
        "douyin:n1",
        siyu_server::writer::wall_clock(),
        "两个节点都看得到吗",
    )
    .await;
    let change = tokio::time::timeout(Duration::from_secs(15), heard_on_b.recv())
        .await
        .expect("the other node hears it within 15 s")
        .expect("open feed");
    assert_eq!(
        (change.person.as_str(), change.kind),
        ("douyin:n1", "comment")
    );
    let listed = wait_until(&b, "/v1/conversations?unanswered=true", |v| v["total"] == 1).await;
    assert_eq!(people(&listed), ["douyin:n1"]);

    // The reply is made on B; A leads, so A's executor delivers it.
    let (s, sent) = b
        .send(
            "POST",
            "/v1/conversations/douyin:n1/messages",
            json!({"text": "看得到", "operator": "li"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(bridge.wait_for(1).await[0]["body"], "看得到");
    for node in [&a, &b] {
        wait_until(node, "/v1/conversations?unanswered=true", |v| {
            v["total"] == 0
        })
        .await;
        let (_, archive) = node.get("/v1/conversations/archive?operator=li").await;
        assert_eq!(
            archive["messages"].as_array().unwrap().len(),
            1,
            "{archive}"
        );
    }
}
