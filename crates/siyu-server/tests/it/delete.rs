//! Nothing can only be created (issue 14, item 8): `DELETE` removes
//! segments, properties, templates and auto-reply rules, and archives
//! journeys, campaigns, groups, live codes and content (their history
//! stays). A definition others use is refused with a 409 naming each
//! referrer; an unknown name is a 404; every removal is audited.
//! (Journeys' `finish` and `exit` are in `automation.rs`, beside the
//! webhook receiver they need.)

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn call(app: &TestApp, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    app.call(method, path, Some(&app.key), "application/json", body)
        .await
}

async fn put(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, b) = call(app, "PUT", path, body).await;
    assert_eq!(s, StatusCode::OK, "PUT {path}: {b}");
    b
}

async fn delete(app: &TestApp, path: &str) -> (StatusCode, Value) {
    call(app, "DELETE", path, Value::Null).await
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The newest audit rows as (action, subject), newest first.
fn audit(app: &TestApp) -> Vec<(String, String)> {
    app.other_store()
        .audit_log(20)
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.subject))
        .collect()
}

fn in_use(b: &Value) -> &str {
    assert_eq!(b["code"], "in_use", "{b}");
    b["message"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_deleted_everywhere_unless_something_reads_it() {
    let app = TestApp::spawn().await;
    app.post_events(
        r#"[{"ts": 1790000000, "identity": "wecom:a", "type": "purchase", "amount": 5000},
            {"ts": 1790000000, "identity": "wecom:b", "type": "purchase", "amount": 50000}]"#,
    )
    .await;
    put(
        &app,
        "/v1/segments/buyers",
        json!({"segment": "purchases >= 1"}),
    )
    .await;
    let b = put(
        &app,
        "/v1/segments/buyers",
        json!({"segment": "purchases >= 1 and not opted_out"}),
    )
    .await;
    assert_eq!(b["version"], 2, "{b}");
    put(
        &app,
        "/v1/segments/big",
        json!({"segment": "in_segment(\"buyers\") and spend >= 100"}),
    )
    .await;
    put(
        &app,
        "/v1/journeys/thanks",
        json!({
            "trigger": {"type": "segment_entry", "segment": "buyers"},
            "start": "tag",
            "steps": {"tag": {"type": "add_tag", "tag": "thanked"}}
        }),
    )
    .await;

    // Read by a segment and a journey: refused, naming both, nothing deleted.
    let (s, b) = delete(&app, "/v1/segments/buyers").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let m = in_use(&b);
    assert!(
        m.contains("segment `big`") && m.contains("journey `thanks`"),
        "{m}"
    );
    assert!(m.contains("DELETE /v1/journeys/thanks"), "the fix: {m}");
    assert_eq!(app.get("/v1/segments/buyers").await.0, StatusCode::OK);

    // The reader goes: out of the list, GET 404, out of every profile.
    let (_, p) = app.get("/v1/persons/wecom:b").await;
    assert_eq!(p["segments"], json!(["buyers", "big"]), "{p}");
    let (s, b) = delete(&app, "/v1/segments/big").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"kind": "segment", "name": "big", "deleted": true, "archived": false})
    );
    assert_eq!(app.get("/v1/segments/big").await.0, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/segments").await;
    assert_eq!(names(&list["segments"], "name"), ["buyers"]);
    let (_, p) = app.get("/v1/persons/wecom:b").await;
    assert_eq!(p["segments"], json!(["buyers"]), "{p}");

    // An archived journey nobody is in reads nothing any more.
    let (s, b) = delete(&app, "/v1/journeys/thanks").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = delete(&app, "/v1/segments/buyers").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        delete(&app, "/v1/segments/buyers").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&app, "/v1/segments/never").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/segments/buyers/members").await.0,
        StatusCode::NOT_FOUND
    );

    // Saved again under the same name: it works, and its version goes on.
    let b = put(
        &app,
        "/v1/segments/buyers",
        json!({"segment": "purchases >= 1"}),
    )
    .await;
    assert_eq!(
        (b["version"].clone(), b["count"].clone()),
        (json!(3), json!(2)),
        "{b}"
    );
    let a = audit(&app);
    assert!(
        a.contains(&("delete_segment".into(), "big".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("delete_segment".into(), "buyers".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("archive_journey".into(), "thanks".into())),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_read_by_a_segment_is_refused_then_deleted() {
    let app = TestApp::spawn().await;
    app.post_events(
        r#"[{"ts": 1790000000, "identity": "wecom:a", "type": "purchase", "amount": 5000}]"#,
    )
    .await;
    put(
        &app,
        "/v1/properties/orders",
        json!({"aggregate": "count", "event_type": "purchase"}),
    )
    .await;
    put(
        &app,
        "/v1/segments/loyal",
        json!({"segment": "prop.orders >= 1"}),
    )
    .await;
    let (s, b) = delete(&app, "/v1/properties/orders").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(in_use(&b).contains("segment `loyal`"), "{b}");
    assert_eq!(delete(&app, "/v1/segments/loyal").await.0, StatusCode::OK);
    let (s, b) = delete(&app, "/v1/properties/orders").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, list) = app.get("/v1/properties").await;
    assert_eq!(list["properties"], json!([]), "{list}");
    assert_eq!(
        delete(&app, "/v1/properties/orders").await.0,
        StatusCode::NOT_FOUND
    );
    // The engine was rebuilt without it: a segment reading it is refused.
    let (s, b) = call(
        &app,
        "PUT",
        "/v1/segments/loyal",
        json!({"segment": "prop.orders >= 1"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(audit(&app).contains(&("delete_property".into(), "orders".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_in_use_names_every_sender_and_a_rule_is_deleted_by_id() {
    let app = TestApp::spawn().await;
    put(&app, "/v1/templates/hello", json!({"body": "你好"})).await;
    put(&app, "/v1/templates/spare", json!({"body": "备用"})).await;
    put(
        &app,
        "/v1/journeys/greet",
        json!({
            "trigger": {"type": "event", "event": "add_friend"},
            "start": "hi",
            "steps": {"hi": {"type": "send", "template": "hello"}}
        }),
    )
    .await;
    put(
        &app,
        "/v1/autoreply",
        json!([
            {"id": "price", "matcher": {"contains": "价格"}, "reply_template": "hello"},
            {"id": "hours", "matcher": {"contains": "营业"}, "reply_template": "spare"}
        ]),
    )
    .await;
    let (s, b) = delete(&app, "/v1/templates/hello").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let m = in_use(&b);
    assert!(
        m.contains("journey `greet`") && m.contains("autoreply rule `price`"),
        "{m}"
    );
    let (_, list) = app.get("/v1/templates").await;
    assert_eq!(names(&list["templates"], "name"), ["hello", "spare"]);

    let (s, b) = delete(&app, "/v1/autoreply/price").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, rules) = app.get("/v1/autoreply").await;
    assert_eq!(names(&rules["rules"], "id"), ["hours"]);
    assert_eq!(
        delete(&app, "/v1/autoreply/price").await.0,
        StatusCode::NOT_FOUND
    );

    let (s, b) = delete(&app, "/v1/journeys/greet").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = delete(&app, "/v1/templates/hello").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["deleted"], true);
    let (_, list) = app.get("/v1/templates").await;
    assert_eq!(names(&list["templates"], "name"), ["spare"]);
    assert_eq!(
        delete(&app, "/v1/templates/hello").await.0,
        StatusCode::NOT_FOUND
    );
    // The archived journey that sent it is history, not a broken definition.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, list) = app.get("/v1/journeys?archived=true").await;
    assert_eq!(
        (
            list["journeys"][0]["status"].clone(),
            list["journeys"][0]["archived"].clone()
        ),
        (json!("ok"), json!(true)),
        "{list}"
    );
    let a = audit(&app);
    assert!(
        a.contains(&("delete_template".into(), "hello".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("delete_autoreply_rule".into(), "price".into())),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_campaign_takes_no_invites_and_keeps_its_report() {
    let app = TestApp::spawn().await;
    put(
        &app,
        "/v1/campaigns/c1",
        json!({
            "name": "老带新",
            "tiers": [{"invites": 2, "reward": "gift"}],
            "rewards": {"gift": {"stock": 5}}
        }),
    )
    .await;
    app.post_events(r#"[{"ts": 1790000000, "identity": "wecom:boss", "type": "add_friend"}]"#)
        .await;
    let (s, inv) = call(
        &app,
        "POST",
        "/v1/campaigns/c1/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap().to_string();

    let (s, b) = delete(&app, "/v1/campaigns/c1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"kind": "campaign", "name": "c1", "deleted": false, "archived": true})
    );
    let (s, b) = call(
        &app,
        "POST",
        "/v1/campaigns/c1/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    assert_eq!(s, StatusCode::GONE, "{b}");
    assert!(b["message"].as_str().unwrap().contains("archived"), "{b}");
    let (s, b) = app
        .call(
            "GET",
            &format!("/i/c1/{code}"),
            None,
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "a printed invite link: {b}");
    let (s, st) = app.get("/v1/campaigns/c1/stats").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(app.get("/v1/campaigns/c1/rewards").await.0, StatusCode::OK);
    let (_, list) = app.get("/v1/campaigns").await;
    assert_eq!(list["campaigns"], json!([]));
    let (_, list) = app.get("/v1/campaigns?archived=true").await;
    assert_eq!(list["campaigns"][0]["archived"], true, "{list}");
    assert_eq!(
        delete(&app, "/v1/campaigns/none").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(audit(&app).contains(&("archive_campaign".into(), "c1".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_live_code_no_longer_routes_and_an_archived_group_keeps_its_history() {
    let app = TestApp::spawn().await;
    put(&app, "/v1/operators/alice", json!({"name": "alice"})).await;
    put(
        &app,
        "/v1/groups/g1",
        json!({"channel": "wecom", "url": "https://work.weixin.qq.com/g/g1"}),
    )
    .await;
    put(
        &app,
        "/v1/livecodes/spring",
        json!({"targets": [{"group": "g1"}]}),
    )
    .await;
    let (s, b) = app
        .call("GET", "/l/spring", None, "application/json", "")
        .await;
    assert_eq!(
        (s, b["target"]["group"].clone()),
        (StatusCode::OK, json!("g1")),
        "{b}"
    );

    let (s, b) = delete(&app, "/v1/livecodes/spring").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["archived"], true);
    let (s, b) = app
        .call("GET", "/l/spring", None, "application/json", "")
        .await;
    assert_eq!(s, StatusCode::GONE, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("no longer active"),
        "{b}"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/v1/livecodes/spring/claims",
        json!({"identity": "wecom:n1"}),
    )
    .await;
    assert_eq!(s, StatusCode::GONE);
    let (_, list) = app.get("/v1/livecodes").await;
    assert_eq!(list["livecodes"], json!([]));
    let (_, list) = app.get("/v1/livecodes?archived=true").await;
    assert_eq!(names(&list["livecodes"], "id"), ["spring"]);
    // Saving it again restores it.
    put(
        &app,
        "/v1/livecodes/spring",
        json!({"targets": [{"group": "g1"}]}),
    )
    .await;
    assert_eq!(
        app.call("GET", "/l/spring", None, "application/json", "")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        delete(&app, "/v1/livecodes/none").await.0,
        StatusCode::NOT_FOUND
    );

    let (s, b) = delete(&app, "/v1/groups/g1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, list) = app.get("/v1/groups").await;
    assert_eq!(list["groups"], json!([]));
    let (_, list) = app.get("/v1/groups?archived=true").await;
    assert_eq!(names(&list["groups"], "id"), ["g1"]);
    let (s, g) = app.get("/v1/groups/g1").await;
    assert_eq!(
        (s, g["archived"].clone()),
        (StatusCode::OK, json!(true)),
        "{g}"
    );
    assert_eq!(app.get("/v1/groups/g1/health").await.0, StatusCode::OK);
    assert_eq!(
        delete(&app, "/v1/groups/none").await.0,
        StatusCode::NOT_FOUND
    );
    let a = audit(&app);
    assert!(
        a.contains(&("archive_livecode".into(), "spring".into())),
        "{a:?}"
    );
    assert!(a.contains(&("archive_group".into(), "g1".into())), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_content_leaves_the_library_but_sent_links_still_work() {
    let app = TestApp::spawn().await;
    put(
        &app,
        "/v1/content/guide",
        json!({"kind": "article", "title": "指南", "url": "https://example.com/guide"}),
    )
    .await;
    let (s, b) = delete(&app, "/v1/content/guide").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, list) = app.get("/v1/content").await;
    assert_eq!(list["content"], json!([]));
    let (_, list) = app.get("/v1/content?archived=true").await;
    assert_eq!(list["content"][0]["archived"], true, "{list}");
    let (s, _) = app
        .call("GET", "/c/guide", None, "application/json", "")
        .await;
    assert_eq!(s, StatusCode::FOUND);
    assert_eq!(
        delete(&app, "/v1/content/none").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(audit(&app).contains(&("archive_content".into(), "guide".into())));
}
