//! Moments SOPs (客户朋友圈) through the routes, with siyu's WeCom
//! `base_url` pointing at the local WeCom double of `wecom_ops.rs`: a post
//! is planned, published by the leader's tick only once due (per-post corp
//! tag marked on exactly the customers the guardrails let through, then
//! `add_moment_task`), confirmed by `get_moment_task_result`; its likes
//! and comments read twice land once on the customers' timelines; a
//! second post the same day leaves out the customers who already got
//! one; bad plans are 4xx naming the field.

use crate::wecom_ops::{ec, wecom_app, wecom_app_on};
use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn tick(app: &TestApp, at: i64) -> siyu_server::moments::TickReport {
    siyu_server::moments::tick(&app.state, at)
        .await
        .expect("moments tick")
}

async fn timeline_names(app: &TestApp, identity: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/v1/persons/{identity}/timeline?limit=100"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("moment_")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moment_is_published_when_due_to_the_guarded_audience_and_its_engagement_lands_once() {
    moment_lifecycle(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moment_is_published_and_its_engagement_lands_once_on_postgres() {
    let Some(_) = crate::pg_url() else {
        eprintln!("SKIPPED: SIYU_TEST_DATABASE_URL is not set");
        return;
    };
    moment_lifecycle(Backend::Postgres).await;
}

async fn moment_lifecycle(backend: Backend) {
    let (app, fake) = wecom_app_on(backend).await;
    let now = now();
    let (s, b) = app
        .send(
            "PUT",
            "/v1/content/guide",
            json!({"kind": "article", "title": "新品指南", "url": "https://shop.example/guide"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Customers as WeCom reported them (ids `wecom/…`: not echoed back as
    // tag calls): A, B, C of zhangsan (C opted out), D of lisi, and a
    // person without a WeCom identity; all tagged vip. E is not vip.
    let mut events = Vec::new();
    for (c, owner, tags) in [
        ("wecom:wmA", "zhangsan", json!(["vip"])),
        ("wecom:wmB", "zhangsan", json!(["vip"])),
        ("wecom:wmC", "zhangsan", json!(["vip"])),
        ("wecom:wmD", "lisi", json!(["vip"])),
        ("phone:13800000000", "zhangsan", json!(["vip"])),
        ("wecom:wmE", "zhangsan", json!(["new"])),
    ] {
        events.push(json!({"id": format!("wecom/test-{c}"), "ts": now - 3600, "identity": c, "channel": "wecom",
            "type": "identify", "traits": {"operator": owner, "tags": tags}}));
    }
    events.push(
        json!({"ts": now - 1800, "identity": "wecom:wmC", "channel": "wecom", "type": "opt_out"}),
    );
    let (s, b) = app.post_events(&Value::Array(events).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Planned for a minute from now.
    let (s, m1) = app
        .send(
            "POST",
            "/v1/moments",
            json!({"senders": ["zhangsan"], "at": now + 60, "text": "双11 新品上架",
                   "attachments": [{"content": "guide"}], "audience": {"tags": ["vip"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m1}");
    let id = m1["id"].as_str().unwrap().to_string();
    assert_eq!(m1["status"], "planned", "{m1}");

    // Not due yet: nothing happens.
    assert_eq!(tick(&app, now + 30).await.published, 0);
    assert!(fake.bodies(&ec("/add_moment_task")).is_empty());

    fake.then(
        &ec("/add_corp_tag"),
        json!({"errcode": 0, "errmsg": "ok", "tag_group": {"group_id": "etG", "group_name": "siyu",
               "tag": [{"id": "etM1", "name": format!("siyu-moment-{id}")}]}}),
    );
    fake.then(
        &ec("/add_moment_task"),
        json!({"errcode": 0, "errmsg": "ok", "jobid": "job1"}),
    );
    fake.then(
        &ec("/get_moment_task_result"),
        json!({"errcode": 0, "status": 1, "type": "add_moment_task"}),
    );
    fake.then(
        &ec("/get_moment_task_result"),
        json!({"errcode": 0, "status": 3, "type": "add_moment_task",
               "result": {"errcode": 0, "errmsg": "ok", "moment_id": "momA",
                          "invalid_sender_list": {"user_list": []},
                          "invalid_external_contact_list": {"tag_list": []}}}),
    );
    let r = tick(&app, now + 90).await;
    assert_eq!((r.published, r.confirmed), (1, 0), "{r:?}");
    // The per-post tag was made and marked on exactly A and B, as zhangsan sees them.
    assert_eq!(
        fake.bodies(&ec("/add_corp_tag")),
        [json!({"group_name": "siyu", "tag": [{"name": format!("siyu-moment-{id}")}]})]
    );
    let mut marked: Vec<Value> = fake.bodies(&ec("/mark_tag"));
    marked.sort_by_key(|v| v["external_userid"].as_str().unwrap().to_string());
    assert_eq!(
        marked,
        [
            json!({"userid": "zhangsan", "external_userid": "wmA", "add_tag": ["etM1"]}),
            json!({"userid": "zhangsan", "external_userid": "wmB", "add_tag": ["etM1"]}),
        ]
    );
    let tasks = fake.bodies(&ec("/add_moment_task"));
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["text"]["content"], "双11 新品上架");
    assert_eq!(tasks[0]["attachments"][0]["msgtype"], "link");
    assert_eq!(tasks[0]["attachments"][0]["link"]["title"], "新品指南");
    assert!(tasks[0]["attachments"][0]["link"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/c/guide"));
    assert_eq!(
        tasks[0]["visible_range"],
        json!({"sender_list": {"user_list": ["zhangsan"]}, "external_contact_list": {"tag_list": ["etM1"]}})
    );
    let (_, p) = app.get(&format!("/v1/moments/{id}")).await;
    assert_eq!(p["status"], "publishing", "{p}");
    assert_eq!(p["jobid"], "job1");
    assert_eq!(p["audience_size"], 5, "{p}");
    assert_eq!(
        p["excluded"],
        json!({"no_wecom_identity": 1, "not_senders_customer": 1, "opted_out": 1}),
        "{p}"
    );
    // Editing or cancelling is for planned posts only.
    let (s, b) = app.send("DELETE", &format!("/v1/moments/{id}"), "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // The job's result: published.
    let r = tick(&app, now + 120).await;
    assert_eq!((r.published, r.confirmed), (0, 1), "{r:?}");
    // Ticking again publishes nothing twice.
    tick(&app, now + 150).await;
    assert_eq!(fake.bodies(&ec("/add_moment_task")).len(), 1);
    let (_, p) = app.get(&format!("/v1/moments/{id}")).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(p["moment_id"], "momA");
    assert_eq!(p["report"]["reached"], 2, "{p}");
    assert_eq!(p["report"]["excluded"], 3, "{p}");

    // Engagement, read twice: each reaction once on its customer's timeline.
    fake.always(
        &ec("/get_moment_comments"),
        json!({"errcode": 0, "errmsg": "ok",
               "like_list": [{"external_userid": "wmA", "create_time": now + 200}],
               "comment_list": [{"external_userid": "wmB", "create_time": now + 300},
                                {"userid": "zhangsan", "create_time": now + 310}]}),
    );
    // A segment of the customers who liked a post (a property counting
    // `moment_like` events), defined before the sync.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/properties/moment_likes",
            json!({"aggregate": "count", "event_type": "custom", "event_name": "moment_like"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/segments/likers",
            json!({"segment": "prop.moment_likes >= 1"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, first) = app.send("POST", "/v1/moments/sync", "").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(
        first,
        json!({"moments": 1, "reactions": 2, "new_events": 2, "errors": 0})
    );
    let (_, second) = app.send("POST", "/v1/moments/sync", "").await;
    assert_eq!(
        second,
        json!({"moments": 1, "reactions": 2, "new_events": 0, "errors": 0})
    );
    assert_eq!(
        fake.bodies(&ec("/get_moment_comments"))[0],
        json!({"moment_id": "momA", "userid": "zhangsan"})
    );
    let a = timeline_names(&app, "wecom:wmA").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["name"], "moment_like");
    assert_eq!(a[0]["properties"]["moment_id"], "momA");
    assert_eq!(a[0]["properties"]["plan"], id.as_str());
    let mut likers = Value::Null;
    for _ in 0..50 {
        likers = app.get("/v1/segments/likers/members?limit=10").await.1;
        if likers.to_string().contains("wecom:wmA") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(likers.to_string().contains("wecom:wmA"), "{likers}");
    assert!(!likers.to_string().contains("wecom:wmB"), "{likers}");
    let b_events = timeline_names(&app, "wecom:wmB").await;
    assert_eq!(b_events.len(), 1, "{b_events:?}");
    assert_eq!(b_events[0]["name"], "moment_comment");
    let (_, p) = app.get(&format!("/v1/moments/{id}")).await;
    assert_eq!(
        (
            &p["report"]["likes"],
            &p["report"]["comments"],
            &p["report"]["engaged"]
        ),
        (&json!(1), &json!(1), &json!(2)),
        "{p}"
    );

    // An automatic answer to a Moments comment: a journey on the
    // `moment_comment` event (WeCom gives no comment text, so keyword
    // rules have nothing to match).
    for (path, body) in [
        (
            "/v1/templates/moment_thanks",
            json!({"body": "谢谢你的评论，送你一张券", "class": "transactional"}),
        ),
        (
            "/v1/journeys/moment_thanks",
            json!({"trigger": {"type": "event", "event": "custom", "name": "moment_comment"},
            "start": "thanks", "steps": {"thanks": {"type": "send", "template": "moment_thanks"}}}),
        ),
    ] {
        let (s, b) = app.send("PUT", path, body).await;
        assert!(s.is_success(), "{path}: {b}");
    }
    // Posts made in WeCom itself: lisi's own (read with lisi) and one the
    // corp made in its admin console (read with the members who published
    // it); siyu's own momA, listed too, is not read twice.
    fake.always(
        &ec("/get_moment_list"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "moment_list": [
            {"moment_id": "momA", "creator": "admin", "create_time": now, "create_type": 0},
            {"moment_id": "momP", "creator": "lisi", "create_time": now + 50, "create_type": 1},
            {"moment_id": "momC", "creator": "admin", "create_time": now + 60, "create_type": 0}]}),
    );
    fake.always(
        &ec("/get_moment_task"),
        json!({"errcode": 0, "errmsg": "ok", "task_list": [
            {"userid": "zhangsan", "publish_status": 1}, {"userid": "wangwu", "publish_status": 0}]}),
    );
    let (s, third) = app.send("POST", "/v1/moments/sync", "").await;
    assert_eq!(s, StatusCode::OK, "{third}");
    assert_eq!(
        third,
        json!({"moments": 3, "reactions": 6, "new_events": 4, "errors": 0})
    );
    let listed = fake.bodies(&ec("/get_moment_list"));
    assert_eq!(
        (
            &listed[0]["filter_type"],
            &listed[0]["end_time"]
                .as_i64()
                .map(|e| e - listed[0]["start_time"].as_i64().unwrap())
        ),
        (&json!(2), &Some(7 * 86_400)),
        "{listed:?}"
    );
    let read: Vec<Value> = fake
        .bodies(&ec("/get_moment_comments"))
        .into_iter()
        .skip(2)
        .collect();
    assert_eq!(
        read,
        [
            json!({"moment_id": "momA", "userid": "zhangsan"}),
            json!({"moment_id": "momP", "userid": "lisi"}),
            json!({"moment_id": "momC", "userid": "zhangsan"}),
        ]
    );
    assert_eq!(
        fake.bodies(&ec("/get_moment_task")),
        [json!({"moment_id": "momC", "limit": 1000})]
    );
    let a = timeline_names(&app, "wecom:wmA").await;
    let mut posts: Vec<&str> = a
        .iter()
        .map(|e| e["properties"]["moment_id"].as_str().unwrap())
        .collect();
    posts.sort_unstable();
    assert_eq!(posts, ["momA", "momC", "momP"], "{a:?}");
    assert!(
        a.iter()
            .filter(|e| e["properties"]["moment_id"] != "momA")
            .all(|e| e["properties"].get("plan").is_none()),
        "{a:?}"
    );
    let (_, again) = app.send("POST", "/v1/moments/sync", "").await;
    assert_eq!(again["new_events"], 0, "{again}");
    // B commented on the new posts: the journey answered B, through the guardrails.
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = fake.bodies(&ec("/add_msg_template"));
        if sent.iter().any(|b| b.to_string().contains("谢谢你的评论")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let thanks: Vec<&Value> = sent
        .iter()
        .filter(|b| b.to_string().contains("谢谢你的评论"))
        .collect();
    assert_eq!(thanks.len(), 1, "{sent:?}");
    assert_eq!(thanks[0]["external_userid"], json!(["wmB"]), "{thanks:?}");

    // A bought after seeing it: the report counts one customer who ordered.
    let (s, b) = app
        .post_events(
            &json!([{"ts": now + 400, "identity": "wecom:wmA", "channel": "wecom", "type": "purchase", "amount": 19900}])
                .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, p) = app.get(&format!("/v1/moments/{id}")).await;
    assert_eq!(p["report"]["ordered"], 1, "{p}");

    // A second post today: A and B already got one (the default cap is
    // one a day), so only D (lisi's) is shown it.
    let (s, m2) = app
        .send(
            "POST",
            "/v1/moments",
            json!({"id": "second", "senders": ["zhangsan", "lisi"], "at": now + 160,
                   "text": "第二条", "attachments": [{"image": "MEDIA1"}, {"image": "MEDIA2"}],
                   "audience": {"tags": ["vip"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m2}");
    fake.then(
        &ec("/add_corp_tag"),
        json!({"errcode": 0, "tag_group": {"group_id": "etG", "tag": [{"id": "etM2", "name": "siyu-moment-second"}]}}),
    );
    fake.then(
        &ec("/add_moment_task"),
        json!({"errcode": 0, "jobid": "job2"}),
    );
    fake.then(
        &ec("/get_moment_task_result"),
        json!({"errcode": 0, "status": 2}),
    );
    assert_eq!(tick(&app, now + 200).await.published, 1);
    let (_, p) = app.get("/v1/moments/second").await;
    assert_eq!(p["status"], "publishing", "{p}");
    assert_eq!(
        p["reached"],
        json!([{"identity": "wecom:wmD", "operator": "lisi"}]),
        "{p}"
    );
    assert_eq!(p["excluded"]["moment_cap"], 2, "{p}");
    assert_eq!(p["excluded"]["opted_out"], 1, "{p}");
    let tasks = fake.bodies(&ec("/add_moment_task"));
    assert_eq!(tasks.len(), 2);
    assert_eq!(
        tasks[1]["attachments"],
        json!([{"msgtype": "image", "image": {"media_id": "MEDIA1"}}, {"msgtype": "image", "image": {"media_id": "MEDIA2"}}])
    );
    assert_eq!(
        tasks[1]["visible_range"]["external_contact_list"]["tag_list"],
        json!(["etM2"])
    );
    assert!(fake
        .bodies(&ec("/mark_tag"))
        .contains(&json!({"userid": "lisi", "external_userid": "wmD", "add_tag": ["etM2"]})));

    // Erasing a customer takes them out of the plans that reached them.
    let (s, b) = app.send("DELETE", "/v1/persons/wecom:wmD", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, p) = app.get("/v1/moments/second").await;
    assert!(!p.to_string().contains("wmD"), "{p}");
    assert_eq!(p["reached"].as_array().unwrap().len(), 1, "{p}");

    // The calendar lists both, by time; a range narrows it.
    let (s, list) = app.get("/v1/moments").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), "second"]);
    let (_, list) = app
        .get(&format!("/v1/moments?from={}&to={}", now + 100, now + 1000))
        .await;
    assert_eq!(list["moments"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_moment_plans_are_refused_naming_the_field_and_only_planned_posts_change() {
    let (app, fake) = wecom_app().await;
    let now = now();
    let (s, b) = app
        .send(
            "PUT",
            "/v1/content/guide",
            json!({"kind": "article", "title": "Guide", "url": "https://shop.example/guide"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let good = json!({"senders": ["zhangsan"], "at": now + 3600, "text": "hi", "audience": {"tags": ["vip"]}});
    let with = |k: &str, v: Value| {
        let mut g = good.clone();
        g[k] = v;
        g
    };
    let cases = [
        (with("text", json!("字".repeat(2001))), "text"),
        (with("text", json!("")), "text"),
        (with("at", json!(now - 60)), "at"),
        (with("at", json!("tomorrow")), "at"),
        (with("senders", json!([])), "senders"),
        (with("senders", json!(["nobody"])), "senders[0]"),
        (
            with("attachments", json!(vec![json!({"image": "M"}); 10])),
            "attachments",
        ),
        (
            with("attachments", json!([{"content": "missing"}])),
            "attachments[0].content",
        ),
        (
            with("attachments", json!([{"content": "guide"}, {"image": "M"}])),
            "attachments[0].content",
        ),
        (with("attachments", json!([{}])), "attachments[0]"),
        (
            with("audience", json!({"segment": "nope"})),
            "audience.segment",
        ),
        (with("audience", json!({})), "audience"),
        (
            with("audience", json!({"tags": ["a"], "segment": "s"})),
            "audience",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = app.send("POST", "/v1/moments", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {b}");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{field}: {b}"
        );
    }
    // An unknown field is a client error too.
    let (s, b) = app
        .send("POST", "/v1/moments", with("colour", json!("red")))
        .await;
    assert!(s.is_client_error(), "{b}");
    // A segment audience; edit, then cancel; a cancelled post stays cancelled.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/segments/buyers",
            json!({"segment": "purchases >= 1"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, p) = app
        .send(
            "POST",
            "/v1/moments",
            with("audience", json!({"segment": "buyers"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap();
    // Its segment cannot be deleted while it is planned.
    let (s, b) = app.send("DELETE", "/v1/segments/buyers", "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains(&format!("moment `{id}`")),
        "{b}"
    );
    let (s, p) = app
        .send(
            "PUT",
            &format!("/v1/moments/{id}"),
            with("text", json!("edited")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["text"], "edited");
    let (s, p) = app.send("DELETE", &format!("/v1/moments/{id}"), "").await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "cancelled");
    let (s, _) = app.send("DELETE", &format!("/v1/moments/{id}"), "").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .send("PUT", &format!("/v1/moments/{id}"), good.clone())
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Edited to a tag audience and cancelled, it holds the segment no more.
    let (s, b) = app.send("DELETE", "/v1/segments/buyers", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app.get("/v1/moments/none").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A cancelled post is never published.
    assert_eq!(tick(&app, now + 7200).await.published, 0);

    // Due with nobody left to show it to: failed, WeCom never asked (an
    // empty visible range would show it to every customer).
    let (s, p) = app
        .send(
            "POST",
            "/v1/moments",
            with("audience", json!({"tags": ["ghost"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let empty = p["id"].as_str().unwrap().to_string();
    // And one WeCom refuses.
    let (s, b) = app
        .post_events(
            &json!([{"id": "wecom/test-z", "ts": now - 60, "identity": "wecom:wmZ", "channel": "wecom",
                     "type": "identify", "traits": {"operator": "zhangsan", "tags": ["z"]}}])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, p) = app
        .send(
            "POST",
            "/v1/moments",
            with("audience", json!({"tags": ["z"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let refused = p["id"].as_str().unwrap().to_string();
    fake.then(
        &ec("/add_corp_tag"),
        json!({"errcode": 0, "tag_group": {"group_id": "etG", "tag": [{"id": "etZ", "name": format!("siyu-moment-{refused}")}]}}),
    );
    fake.then(
        &ec("/add_moment_task"),
        json!({"errcode": 41003, "errmsg": "invalid text"}),
    );
    let r = tick(&app, now + 3700).await;
    assert_eq!((r.published, r.failed), (0, 2), "{r:?}");
    let (_, p) = app.get(&format!("/v1/moments/{empty}")).await;
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["error"].as_str().unwrap().contains("no customer left"),
        "{p}"
    );
    let (_, p) = app.get(&format!("/v1/moments/{refused}")).await;
    assert_eq!(p["status"], "failed", "{p}");
    assert!(
        p["error"].as_str().unwrap().contains("add_moment_task"),
        "{p}"
    );
    assert_eq!(fake.bodies(&ec("/add_moment_task")).len(), 1);
    // Moments are not a kind of send.
    let (s, b) = app
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "x", "identities": ["wecom:a"], "template": "t", "kind": "moment"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("kind:"), "{b}");
}

/// The Moments routes in the API document: the body's schema, the
/// statuses each answers.
#[tokio::test]
async fn the_moments_routes_are_documented() {
    let t = TestApp::spawn().await;
    let (_, doc) = t.get("/openapi.json").await;
    let post = &doc["paths"]["/v1/moments"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MomentInput"
    );
    for s in ["201", "401", "403", "422"] {
        assert!(post["responses"][s].is_object(), "POST /v1/moments {s}");
    }
    let one = &doc["paths"]["/v1/moments/{id}"];
    assert!(one["put"]["responses"]["409"].is_object());
    assert!(one["delete"]["responses"]["409"].is_object());
    assert!(one["get"]["responses"]["404"].is_object());
    assert!(doc["paths"]["/v1/moments/sync"]["post"].is_object());
    let view = doc["components"]["schemas"]["MomentView"].to_string();
    assert!(
        view.contains("\"report\"") && view.contains("\"status\""),
        "{view}"
    );
    // Without WeCom, reading engagement says what to configure.
    let (s, b) = t.send("POST", "/v1/moments/sync", "").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("connectors.wecom"),
        "{b}"
    );
}
