//! The customer-contact calls beyond messages (`wecom::sync`, `tags`,
//! `welcome`, `calls`) against a local server answering WeCom's
//! documented shapes; the sync's events carry the callbacks' ids.

use std::time::Duration;

use serde_json::json;
use siyu_connectors::wecom::callback::{map_callback, CallbackXml};
use siyu_connectors::wecom::calls::{WeComCalls, CALLS_CHANNEL};
use siyu_connectors::wecom::sync::{contact_events, group_events, Contact};
use siyu_connectors::wecom::tags::CorpTags;
use siyu_connectors::wecom::welcome::MISSED;
use siyu_connectors::{Connector, OutboundMessage, SendError, WeComConfig, WeComConnector};
use std::sync::Arc;

use crate::support::HttpServer;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const FOLLOW: &str = "/cgi-bin/externalcontact/get_follow_user_list";
const BATCH: &str = "/cgi-bin/externalcontact/batch/get_by_user";
const TAGS: &str = "/cgi-bin/externalcontact/get_corp_tag_list";
const ADD_TAG: &str = "/cgi-bin/externalcontact/add_corp_tag";
const MARK: &str = "/cgi-bin/externalcontact/mark_tag";
const GROUPS: &str = "/cgi-bin/externalcontact/groupchat/list";
const GROUP: &str = "/cgi-bin/externalcontact/groupchat/get";
const WELCOME: &str = "/cgi-bin/externalcontact/send_welcome_msg";

fn token(t: &str) -> String {
    json!({"errcode": 0, "errmsg": "ok", "access_token": t, "expires_in": 7200}).to_string()
}

fn wecom(server: &HttpServer) -> WeComConnector {
    WeComConnector::new(&WeComConfig {
        base_url: server.url(""),
        corp_id: "ww1234".into(),
        secret: "corp-secret".into(),
        sender: "zhangsan".into(),
        timeout_ms: 2_000,
        ..WeComConfig::default()
    })
    .expect("wecom config")
}

fn contact(ext: &str, op: &str, ts: i64, tags: &[&str]) -> serde_json::Value {
    json!({
        "external_contact": {"external_userid": ext, "name": format!("客户{ext}"), "type": 1,
            "avatar": "http://wx.qlogo.cn/a.png", "gender": 2, "unionid": format!("u-{ext}")},
        "follow_info": {"userid": op, "remark": "老客户", "description": "", "createtime": ts,
            "tag_id": tags, "remark_corp_name": "", "remark_mobiles": [], "oper_userid": op,
            "add_way": 1, "state": ""}
    })
}

#[tokio::test]
async fn contacts_are_read_page_by_page_with_a_token_refresh() {
    let server = HttpServer::start().await;
    server
        .then(GETTOKEN, 200, &token("tok-1"))
        .then(GETTOKEN, 200, &token("tok-2"));
    server.then(
        FOLLOW,
        200,
        r#"{"errcode":0,"errmsg":"ok","follow_user":["zhangsan","lisi"]}"#,
    );
    server.then(
        BATCH,
        200,
        r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
    );
    server.then(
        BATCH,
        200,
        &json!({"errcode": 0, "errmsg": "ok", "external_contact_list": [contact("wmA", "zhangsan", 1_700_000_000, &["et1"])], "next_cursor": "C1"}).to_string(),
    );
    server.then(
        BATCH,
        200,
        &json!({"errcode": 0, "errmsg": "ok", "external_contact_list": [contact("wmB", "zhangsan", 1_700_000_100, &[])], "next_cursor": ""}).to_string(),
    );
    let w = wecom(&server);
    assert_eq!(w.follow_users().await.unwrap(), ["zhangsan", "lisi"]);
    let ops = vec!["zhangsan".to_string()];
    let first = w.contacts_page(&ops, "", 500).await.expect("refreshed");
    assert_eq!(first.contacts.len(), 1);
    assert_eq!(first.next_cursor, "C1");
    assert_eq!(first.contacts[0].follow_info.tag_id, ["et1"]);
    let second = w.contacts_page(&ops, "C1", 100).await.unwrap();
    assert_eq!(second.contacts[0].external_contact.external_userid, "wmB");
    assert!(second.next_cursor.is_empty());

    let follow = server.requests(FOLLOW);
    assert_eq!(follow[0].method, "GET");
    let batch = server.requests(BATCH);
    let used: Vec<&str> = batch
        .iter()
        .map(|r| r.query["access_token"].as_str())
        .collect();
    assert_eq!(used, ["tok-1", "tok-2", "tok-2"]);
    assert_eq!(
        batch[1].json(),
        json!({"userid_list": ["zhangsan"], "cursor": "", "limit": 100})
    );
    assert_eq!(batch[2].json()["cursor"], "C1");
}

#[tokio::test]
async fn groups_and_their_members_are_read() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok"));
    server.then(
        GROUPS,
        200,
        r#"{"errcode":0,"errmsg":"ok","group_chat_list":[{"chat_id":"wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA","status":0}],"next_cursor":""}"#,
    );
    server.then(
        GROUP,
        200,
        &json!({"errcode": 0, "errmsg": "ok", "group_chat": {
            "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", "name": "销售客服群", "owner": "zhangsan",
            "create_time": 1_572_505_490, "notice": "",
            "member_list": [
                {"userid": "zhangsan", "type": 1, "join_time": 1_572_505_491, "join_scene": 1, "invitor": {"userid": "zhangsan"}},
                {"userid": "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA", "type": 2, "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA", "join_time": 1_572_505_491, "join_scene": 3}
            ],
            "admin_list": []}}).to_string(),
    );
    let w = wecom(&server);
    let page = w
        .groups_page(&["zhangsan".to_string()], "", 1000)
        .await
        .unwrap();
    assert_eq!(page.chat_ids, ["wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"]);
    assert_eq!(
        server.requests(GROUPS)[0].json(),
        json!({"status_filter": 0, "owner_filter": {"userid_list": ["zhangsan"]}, "cursor": "", "limit": 1000})
    );
    let chat = w.group_chat(&page.chat_ids[0]).await.unwrap();
    assert_eq!(
        server.requests(GROUP)[0].json(),
        json!({"chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", "need_name": 1})
    );
    let (events, errors) = group_events(&chat);
    assert!(errors.is_empty());
    assert_eq!(events.len(), 1, "the corp's member is not a person");
    assert_eq!(
        events[0].identity.as_str(),
        "wecom:wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA"
    );
    assert_eq!(
        events[0].group.as_deref(),
        Some("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
    );
    // The same join as WeCom's add_member callback: the same id.
    let xml = "<xml><ToUserName><![CDATA[ww1234]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1572505491</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>0</JoinScene><MemChangeCnt>1</MemChangeCnt><MemChangeList><Item>wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA</Item></MemChangeList></xml>";
    let mapped = map_callback(&CallbackXml::parse(xml).unwrap()).unwrap();
    assert_eq!(mapped.events[0].id, events[0].id);
    assert!(siyu_connectors::wecom::sync::is_sync_event(&events[0]));
}

#[test]
fn a_contact_is_the_callbacks_add_friend_and_an_identify() {
    let c: Contact =
        serde_json::from_value(contact("wmA", "zhangsan", 1_700_000_000, &["et1", "gone"]))
            .unwrap();
    let tags = CorpTags::from_groups(
        &serde_json::from_value::<Vec<_>>(json!([
            {"group_id": "g1", "group_name": "客户等级", "tag": [{"id": "et1", "name": "VIP"}, {"id": "et2", "name": "old", "deleted": true}]}
        ]))
        .unwrap(),
    );
    let events = contact_events(&c, &tags.names).unwrap();
    assert_eq!(events.len(), 2);
    let (add, identify) = (&events[0], &events[1]);
    assert_eq!(add.event_type.as_str(), "add_friend");
    assert_eq!(add.ts, 1_700_000_000);
    let p = add.properties.as_ref().unwrap();
    assert_eq!(p["operator"], "zhangsan");
    let xml = "<xml><ToUserName><![CDATA[ww1234]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmA]]></ExternalUserID><WelcomeCode><![CDATA[W]]></WelcomeCode></xml>";
    let mapped = map_callback(&CallbackXml::parse(xml).unwrap()).unwrap();
    assert_eq!(mapped.events[0].id, add.id, "the callback's id");
    assert_eq!(identify.event_type.as_str(), "identify");
    // Both are history wherever they are applied; the callback's add is not.
    assert!(events
        .iter()
        .all(siyu_connectors::wecom::sync::is_sync_event));
    assert!(!siyu_connectors::wecom::sync::is_sync_event(
        &mapped.events[0]
    ));
    assert_eq!(
        identify.reference.as_ref().map(|r| r.as_str()),
        Some("wechat_unionid:u-wmA")
    );
    let t = identify.traits.as_ref().unwrap();
    assert_eq!(t.tags, ["VIP"], "a deleted or unknown tag id is left out");
    assert_eq!(t.name.as_deref(), Some("客户wmA"));
    assert_eq!(t.extra["operator"], "zhangsan");
    assert_eq!(t.extra["gender"], "female");
    // Unchanged, the same ids; a tag more, another identify.
    assert_eq!(contact_events(&c, &tags.names).unwrap(), events);
    let mut more = c.clone();
    more.follow_info.tag_id.push("et1".into());
    assert_eq!(
        contact_events(&more, &tags.names).unwrap()[1].id,
        identify.id
    );
    let mut other = tags.names.clone();
    other.insert("gone".into(), "新标签".into());
    assert_ne!(contact_events(&c, &other).unwrap()[1].id, identify.id);
}

fn call(data: serde_json::Value, body: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: "k".into(),
        channel: CALLS_CHANNEL.into(),
        recipient: "wmA".into(),
        identity: "wecom:wmA".into(),
        subject: None,
        body: body.into(),
        html: None,
        unsubscribe_url: None,
        mass: false,
        data,
        wechat_template: None,
    }
}

#[tokio::test]
async fn mark_tag_resolves_names_and_creates_a_missing_tag() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok"));
    server.always(
        TAGS,
        200,
        Duration::ZERO,
        r#"{"errcode":0,"errmsg":"ok","tag_group":[{"group_id":"g1","group_name":"等级","create_time":1,"order":1,"deleted":false,"tag":[{"id":"et1","name":"VIP","create_time":1,"order":1,"deleted":false}]}]}"#,
    );
    server.then(
        ADD_TAG,
        200,
        r#"{"errcode":0,"errmsg":"ok","tag_group":{"group_id":"g2","group_name":"siyu","create_time":2,"order":1,"tag":[{"id":"et9","name":"复购","create_time":2,"order":1}]}}"#,
    );
    server.always(MARK, 200, Duration::ZERO, r#"{"errcode":0,"errmsg":"ok"}"#);
    let calls = WeComCalls::new(Arc::new(wecom(&server)));
    calls
        .send(&call(
            json!({"call": "mark_tag", "userid": "zhangsan", "external_userid": "wmA", "add": ["VIP"], "remove": ["never-there"]}),
            "",
        ))
        .await
        .unwrap();
    calls
        .send(&call(
            json!({"call": "mark_tag", "userid": "zhangsan", "external_userid": "wmA", "add": ["复购"]}),
            "",
        ))
        .await
        .unwrap();
    let marks: Vec<serde_json::Value> = server.requests(MARK).iter().map(|r| r.json()).collect();
    assert_eq!(
        marks,
        [
            json!({"userid": "zhangsan", "external_userid": "wmA", "add_tag": ["et1"]}),
            json!({"userid": "zhangsan", "external_userid": "wmA", "add_tag": ["et9"]}),
        ]
    );
    assert_eq!(
        server.requests(ADD_TAG)[0].json(),
        json!({"group_name": "siyu", "tag": [{"name": "复购"}]})
    );
    // A call this connector does not make is permanent.
    let err = calls
        .send(&call(json!({"call": "delete_everything"}), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn a_welcome_is_sent_once_and_an_expired_code_is_missed() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok"));
    server.then(WELCOME, 200, r#"{"errcode":0,"errmsg":"ok"}"#);
    server.then(
        WELCOME,
        200,
        r#"{"errcode":41051,"errmsg":"externaluser has started chatting"}"#,
    );
    server.then(WELCOME, 200, r#"{"errcode":-1,"errmsg":"system busy"}"#);
    let calls = WeComCalls::new(Arc::new(wecom(&server)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh =
        json!({"call": "send_welcome_msg", "welcome_code": "CODE1", "expires_at": now + 20});
    calls.send(&call(fresh.clone(), "欢迎！")).await.unwrap();
    assert_eq!(
        server.requests(WELCOME)[0].json(),
        json!({"welcome_code": "CODE1", "text": {"content": "欢迎！"}, "attachments": []})
    );
    let used = calls
        .send(&call(fresh.clone(), "欢迎！"))
        .await
        .unwrap_err();
    assert!(
        matches!(&used, SendError::Permanent(d) if d.starts_with(MISSED) && d.contains("41051")),
        "{used}"
    );
    let busy = calls.send(&call(fresh, "欢迎！")).await.unwrap_err();
    assert!(busy.is_retryable(), "{busy}");
    let expired = calls
        .send(&call(
            json!({"call": "send_welcome_msg", "welcome_code": "CODE2", "expires_at": now - 1}),
            "欢迎！",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&expired, SendError::Permanent(d) if d.starts_with(MISSED)),
        "{expired}"
    );
    assert_eq!(
        server.requests(WELCOME).len(),
        3,
        "an expired code is not sent"
    );
}

#[tokio::test]
async fn an_edited_contact_is_read_and_its_corp_tags_become_siyu_tags() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok"));
    server.then(
        "/cgi-bin/externalcontact/get",
        200,
        r#"{"errcode":0,"errmsg":"ok","external_contact":{"external_userid":"wmT","name":"李四","type":1,"avatar":"","gender":1,"unionid":"u1"},"follow_user":[{"userid":"zhangsan","remark":"","description":"","createtime":1525779812,"tags":[{"group_name":"客户等级","tag_name":"复购","tag_id":"et2","type":1},{"group_name":"","tag_name":"个人","type":2}],"state":""},{"userid":"lisi","createtime":1525779813,"tags":[{"group_name":"客户等级","tag_name":"VIP","tag_id":"et1","type":1},{"group_name":"siyu","tag_name":"siyu-moment-m1","tag_id":"etM1","type":1}]}]}"#,
    );
    let w = wecom(&server);
    let detail = w.contact("wmT").await.unwrap();
    let r = &server.requests("/cgi-bin/externalcontact/get")[0];
    assert_eq!(
        (r.method.as_str(), r.query["external_userid"].as_str()),
        ("GET", "wmT")
    );
    let corp = |t: &str| ["VIP", "复购", "旧标签"].contains(&t);
    let person = vec![
        "旧标签".to_string(),
        "VIP".to_string(),
        "siyu-only".to_string(),
    ];
    let e = siyu_connectors::wecom::sync::tags_event(&detail, 1_800_000_000, &person, corp)
        .unwrap()
        .expect("a change");
    let t = e.traits.as_ref().unwrap();
    assert_eq!(
        t.tags,
        ["复购"],
        "every member's corp tags, not a member's own, nor a Moments post's audience tag"
    );
    assert_eq!(
        t.remove_tags,
        ["旧标签"],
        "a corp tag WeCom no longer shows"
    );
    assert!(e.id.as_deref().unwrap().starts_with("wecom/"));
    let same = vec!["VIP".to_string(), "复购".to_string()];
    assert_eq!(
        siyu_connectors::wecom::sync::tags_event(&detail, 1_800_000_000, &same, corp).unwrap(),
        None
    );
}
