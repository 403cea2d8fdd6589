//! Issue 19.2, a message's intent used everywhere, over real HTTP: every
//! inbound comment is stored with `properties.intent` (a caller's own
//! kept, an unknown one a 400 naming the field); the segment condition
//! `intent(last 7d) = "询价"` holds inside its window and not outside;
//! an auto-reply rule matching by intent alone answers a live message
//! and not imported history; the intent's auto-tag is added once; a hot
//! intent makes one lead task, for the person's owner, listed in the
//! inbox thread; bad settings are 422s naming the field.

use crate::automation::{app_with_hook_on_fresh, wait_until};
use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn timeline_comments(app: &TestApp, person: &str) -> Vec<Value> {
    let (s, t) = app.get(&format!("/v1/persons/{person}/timeline")).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let events = t["events"].as_array().cloned().unwrap_or_default();
    events
        .into_iter()
        .map(|item| item["event"].clone())
        .filter(|e| e["type"] == "comment")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_annotates_segments_replies_tags_and_leads_the_owner() {
    intent_used_everywhere(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_annotates_segments_replies_tags_and_leads_the_owner_on_postgres_too() {
    if crate::pg_url().is_none() {
        return;
    }
    intent_used_everywhere(Backend::Postgres).await;
}

async fn intent_used_everywhere(backend: Backend) {
    let (app, hook) = app_with_hook_on_fresh(backend).await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/price",
            json!({"body": "您好，价格表已发您", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A rule with no keywords at all: the intent alone (by its Chinese name).
    let (s, b) = app
        .send(
            "PUT",
            "/v1/autoreply",
            json!([
                {"id": "by_intent", "intents": ["询价"], "reply_template": "price"},
                {"id": "quote", "matcher": {"contains": "报价单"}, "create_lead": true, "priority": 9}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.get("/v1/intents/settings").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["hot"], json!(["buy", "price"]), "the defaults: {b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/intents/settings",
            json!({"auto_tags": {"price": ["询价客户"]}, "hot": ["询价"], "lead_window_secs": 3600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["hot"], json!(["price"]), "stored as ids: {b}");

    let now = siyu_server::writer::wall_clock();
    let year_ago = now - 365 * 86_400;
    // The owner, then two live price questions (neither says a keyword a
    // rule lists), a stated intent, and a year-old question (history).
    let events = json!([
        {"ts": now - 5, "identity": "douyin:p1", "type": "identify", "traits": {"operator": "li"}, "id": "own"},
        {"ts": now, "identity": "douyin:p1", "type": "comment", "text": "这个怎么卖？多少钱", "id": "m1"},
        {"ts": now, "identity": "douyin:p1", "type": "comment", "text": "价格多少呀", "id": "m2"},
        {"ts": now, "identity": "douyin:p2", "type": "comment", "text": "多少钱", "properties": {"intent": "complaint"}, "id": "s1"},
        {"ts": year_ago, "identity": "douyin:old", "type": "comment", "text": "这个多少钱？", "id": "h1"},
        {"ts": now, "identity": "douyin:p3", "type": "comment", "text": "发个报价单", "properties": {"intent": "price"}, "id": "q1"}
    ]);
    let (s, b) = app.post_events(&events.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Annotated in the log, history included; a stated intent kept.
    let p1 = timeline_comments(&app, "douyin:p1").await;
    assert_eq!(p1.len(), 2, "{p1:?}");
    for c in &p1 {
        assert_eq!(c["properties"]["intent"], "price", "{c}");
        let conf = c["properties"]["intent_confidence"].as_f64().unwrap();
        assert!(conf > 0.0 && conf <= 1.0, "{c}");
    }
    let old = timeline_comments(&app, "douyin:old").await;
    assert_eq!(old[0]["properties"]["intent"], "price", "{old:?}");
    let stated = timeline_comments(&app, "douyin:p2").await;
    assert_eq!(stated[0]["properties"]["intent"], "complaint", "{stated:?}");
    assert!(stated[0]["properties"].get("intent_confidence").is_none());

    // The live question gets the intent rule's reply, once (cooldown);
    // the year-old one none.
    let got = hook.wait_for(1).await;
    assert_eq!(got[0]["body"], "您好，价格表已发您", "{got:?}");
    assert_eq!(got[0]["recipient"], "p1", "{got:?}");

    // The auto-tag, once; one lead task for the owner, in the thread.
    let person = wait_until(&app, "/v1/persons/douyin:p1", |v| {
        v.to_string().contains("询价客户")
    })
    .await;
    wait_until(&app, "/v1/tasks?open=true", |v| {
        v["tasks"].as_array().is_some_and(|t| t.len() >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.bodies().len(), 1, "one reply: {:?}", hook.bodies());
    let (_, all) = app.get("/v1/tasks?open=true").await;
    let all = all["tasks"].as_array().cloned().unwrap_or_default();
    // p3's price question matched a rule that makes leads: that one only.
    let p3: Vec<&Value> = all
        .iter()
        .filter(|t| t["identity"] == "douyin:p3")
        .collect();
    assert_eq!(p3.len(), 1, "{all:?}");
    assert!(
        p3[0]["key"].as_str().unwrap().starts_with("r/quote/"),
        "{all:?}"
    );
    let tasks: Vec<Value> = all
        .into_iter()
        .filter(|t| t["identity"] != "douyin:p3")
        .collect();
    assert_eq!(
        tasks.len(),
        1,
        "one lead, none from history or complaints: {tasks:?}"
    );
    assert_eq!(tasks[0]["operator"], "li", "{tasks:?}");
    assert_eq!(tasks[0]["identity"], "douyin:p1", "{tasks:?}");
    assert!(
        tasks[0]["key"].as_str().unwrap().starts_with("i/price/"),
        "{tasks:?}"
    );
    let (_, thread) = app.get("/v1/conversations/douyin:p1").await;
    assert_eq!(thread["tasks"][0]["key"], tasks[0]["key"], "{thread}");
    let inbound: Vec<&Value> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .collect();
    assert!(
        inbound.iter().all(|m| m["intent"] == "price"),
        "{inbound:?}"
    );
    let tag_adds = app.get("/v1/persons/douyin:p1/timeline").await.1["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["event"].to_string().contains("询价客户"))
        .count();
    assert_eq!(tag_adds, 1, "the tag added once: {person}");
    let (_, old_person) = app.get("/v1/persons/douyin:old").await;
    assert!(!old_person.to_string().contains("询价客户"), "{old_person}");

    // Segments: inside the window and not outside; without one, ever.
    let preview = |segment: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app
                .send(
                    "POST",
                    "/v1/segments/preview",
                    json!({ "segment": segment }),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{segment}: {b}");
            let mut sample: Vec<String> = b["sample"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            sample.sort();
            sample
        }
    };
    assert_eq!(
        preview(r#"intent(last 7d) = "询价""#).await,
        ["douyin:p1", "douyin:p3"]
    );
    assert_eq!(
        preview(r#"intent = "price""#).await,
        ["douyin:old", "douyin:p1", "douyin:p3"]
    );
    assert_eq!(
        preview(r#"intent = "price" and not intent(last 7d) = "price""#).await,
        ["douyin:old"]
    );
    assert_eq!(
        preview(r#"intent(last 7d) = "complaint""#).await,
        ["douyin:p2"]
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/segments/askers",
            json!({"tree": {"kind": "intent", "intent": "price", "within": "7d"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["count"], 2, "{b}");
    let (_, m) = app.get("/v1/segments/askers/members").await;
    let mut members: Vec<String> = serde_json::from_value(m["members"].clone()).unwrap();
    members.sort();
    assert_eq!(members, ["douyin:p1", "douyin:p3"], "{m}");
    let (_, seg) = app.get("/v1/segments/askers").await;
    assert!(
        seg.to_string().contains(r#"intent(last 1w) = \"price\""#),
        "{seg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_intents_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let (s, b) = app
        .post_events(
            r#"[{"ts": 1790000000, "identity": "douyin:x", "type": "comment", "text": "hi", "properties": {"intent": "pricey"}}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.to_string().contains("properties.intent"), "{b}");
    assert!(b.to_string().contains("ask_material"), "{b}");
    for (body, field) in [
        (json!({"auto_tags": {"price": [""]}}), "auto_tags.price[0]"),
        (json!({"lead_window_secs": 5}), "lead_window_secs"),
        (json!({"min_confidence": 2}), "min_confidence"),
        (json!({"hot": ["pricey"]}), "unknown intent"),
        (json!({"auto_tags": {"pricey": ["x"]}}), "pricey"),
        (json!({"hots": []}), "hots"),
    ] {
        let (s, b) = app.send("PUT", "/v1/intents/settings", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains(field),
            "{body}: {b}"
        );
    }
    let (s, b) = app
        .send(
            "POST",
            "/v1/segments/preview",
            json!({"segment": "intent(last 7d) = \"pricey\""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("after_sales"),
        "{b}"
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/autoreply",
            json!([{"id": "x", "intents": ["nope"]}]),
        )
        .await;
    assert!(s.is_client_error(), "{s} {b}");
    assert!(b.to_string().contains("unknown intent"), "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/autoreply",
            json!([{"id": "x", "reply_template": null}]),
        )
        .await;
    assert!(s.is_client_error(), "{s} {b}");
    assert!(b.to_string().contains("matcher"), "{b}");
    let (s, b) = app.get("/v1/intents").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b[1], json!({"id": "price", "name_zh": "询价"}), "{b}");
}

/// A comment without an id is stored once however often it is sent: it
/// keeps the id its content had before the annotation, so a retry, and
/// one stored before messages were annotated, are the same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_less_comment_is_stored_once_across_the_annotation() {
    let app = TestApp::spawn().await;
    // Stored as before this feature: no intent.
    tokio::task::block_in_place(|| {
        let mut other = app.other_store();
        let mut c = siyu_domain::Event::new(
            1_790_000_000,
            siyu_domain::Identity::parse("douyin:r1").unwrap(),
            siyu_domain::EventType::Comment,
            siyu_domain::Channel::parse("douyin").unwrap(),
        );
        c.text = Some("这个多少钱？".into());
        other.append(&[c]).unwrap();
    });
    let body = r#"[{"ts": 1790000000, "identity": "douyin:r1", "type": "comment", "text": "这个多少钱？"},
                   {"ts": 1790000001, "identity": "douyin:r1", "type": "comment", "text": "发货了吗"}]"#;
    let (s, b) = app.post_events(body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    let (s, b) = app.post_events(body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["duplicates"], 2, "a retry: {b}");
}

/// A journey's event trigger with `intents`: only inbound messages of
/// those intents enroll (a stated one and a classified one), others not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_triggers_on_a_message_s_intent() {
    let (app, hook) = app_with_hook_on_fresh(Backend::Sqlite).await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/thanks",
            json!({"body": "已为您下单预留", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let journey = json!({
        "trigger": {"type": "event", "event": "comment", "intents": ["购买意向"]},
        "start": "hi",
        "steps": {"hi": {"type": "send", "template": "thanks", "channel": "webhook"}}
    });
    let (s, b) = app.send("PUT", "/v1/journeys/buyers", journey).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, j) = app.get("/v1/journeys/buyers").await;
    assert!(j.to_string().contains(r#""intents":["buy"]"#), "{j}");
    let now = siyu_server::writer::wall_clock();
    let events = json!([
        {"ts": now, "identity": "douyin:b1", "type": "comment", "text": "好的", "properties": {"intent": "buy"}, "id": "b1"},
        {"ts": now, "identity": "douyin:b2", "type": "comment", "text": "你好呀", "properties": {"intent": "other"}, "id": "b2"},
        {"ts": now, "identity": "douyin:b3", "type": "comment", "text": "质量太差了，我要投诉", "id": "b3"}
    ]);
    let (s, b) = app.post_events(&events.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = hook.wait_for(1).await;
    assert_eq!(got[0]["body"], "已为您下单预留", "{got:?}");
    assert!(got[0].to_string().contains("douyin:b1"), "{got:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.bodies().len(),
        1,
        "only the buyer: {:?}",
        hook.bodies()
    );
    let report = wait_until(&app, "/v1/journeys/buyers/report", |v| {
        v["enrolled"] == json!(1)
    })
    .await;
    assert_eq!(report["enrolled"], 1, "{report}");
}
