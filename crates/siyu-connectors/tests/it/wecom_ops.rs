//! WeCom's customer-contact administration calls (live codes' QR codes,
//! hand-over transfers, group-send results) against a local server
//! answering in WeCom's documented shapes: request bodies, answers read,
//! the token refreshed on 40014/42001 like every other call.

use std::time::Duration;

use serde_json::json;
use siyu_connectors::wecom::contact_way::{ContactWay, JoinWay};
use siyu_connectors::wecom::send_result;
use siyu_connectors::wecom::transfer::{Mode, ResultStatus};
use siyu_connectors::{Connector, SendError, WeComConfig, WeComConnector};

use crate::support::{msg, HttpServer};

const GETTOKEN: &str = "/cgi-bin/gettoken";
const EC: &str = "/cgi-bin/externalcontact";

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

fn path(p: &str) -> String {
    format!("{EC}{p}")
}

#[tokio::test]
async fn contact_ways_are_made_updated_and_deleted_with_the_state() {
    let server = HttpServer::start().await;
    server
        .then(GETTOKEN, 200, &token("tok-1"))
        .then(GETTOKEN, 200, &token("tok-2"));
    // The first call meets an expired token: refreshed, repeated once.
    server.then(
        &path("/add_contact_way"),
        200,
        r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
    );
    server.then(
        &path("/add_contact_way"),
        200,
        r#"{"errcode":0,"errmsg":"ok","config_id":"42b34949e138eb6e027c123cba77fAAA","qr_code":"http://p.qpic.cn/wwhead/duc2TvpEgSdicZ9RrdUtBkv2UiaA/0"}"#,
    );
    server.always(
        &path("/update_contact_way"),
        200,
        Duration::ZERO,
        r#"{"errcode":0,"errmsg":"ok"}"#,
    );
    server.always(
        &path("/del_contact_way"),
        200,
        Duration::ZERO,
        r#"{"errcode":0,"errmsg":"ok"}"#,
    );
    let w = wecom(&server);
    let way = ContactWay {
        users: vec!["zhangsan".into()],
        state: "spring".into(),
        skip_verify: true,
        remark: Some("spring".into()),
    };
    let made = w.add_contact_way(&way).await.expect("made");
    assert_eq!(made.config_id, "42b34949e138eb6e027c123cba77fAAA");
    assert_eq!(
        made.qr_code,
        "http://p.qpic.cn/wwhead/duc2TvpEgSdicZ9RrdUtBkv2UiaA/0"
    );
    let adds = server.requests(&path("/add_contact_way"));
    assert_eq!(adds.len(), 2);
    assert_eq!(adds[0].query["access_token"], "tok-1");
    assert_eq!(adds[1].query["access_token"], "tok-2");
    assert_eq!(
        adds[1].json(),
        json!({"type": 1, "scene": 2, "remark": "spring", "skip_verify": true, "state": "spring", "user": ["zhangsan"]})
    );

    let two = ContactWay {
        users: vec!["zhangsan".into(), "lisi".into()],
        ..way.clone()
    };
    w.update_contact_way(&made.config_id, &two)
        .await
        .expect("updated");
    assert_eq!(
        server.requests(&path("/update_contact_way"))[0].json(),
        json!({"config_id": made.config_id, "remark": "spring", "skip_verify": true, "state": "spring", "user": ["zhangsan", "lisi"]})
    );
    w.del_contact_way(&made.config_id).await.expect("deleted");
    assert_eq!(
        server.requests(&path("/del_contact_way"))[0].json(),
        json!({"config_id": made.config_id})
    );

    // A state longer than WeCom's 30 characters is refused before any call.
    let long = ContactWay {
        state: "x".repeat(31),
        ..way
    };
    let err = w.add_contact_way(&long).await.unwrap_err();
    assert!(
        matches!(err, SendError::Permanent(ref e) if e.contains("state")),
        "{err}"
    );
    assert_eq!(server.requests(&path("/add_contact_way")).len(), 2);
    // WeCom's refusal is classified like every call's.
    server.then(
        &path("/add_contact_way"),
        200,
        r#"{"errcode":40098,"errmsg":"user not activated"}"#,
    );
    let err = w
        .add_contact_way(&ContactWay {
            users: vec!["nobody".into()],
            state: "s".into(),
            skip_verify: true,
            remark: None,
        })
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable() && err.detail().contains("40098"),
        "{err}"
    );
}

#[tokio::test]
async fn a_join_way_is_made_then_read_for_its_qr_code() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok-1"));
    server.then(
        &path("/groupchat/add_join_way"),
        200,
        r#"{"errcode":0,"errmsg":"ok","config_id":"9ad7fa5cdaa6511298498f979c472aaa"}"#,
    );
    server.then(
        &path("/groupchat/get_join_way"),
        200,
        r#"{"errcode":0,"errmsg":"ok","join_way":{"config_id":"9ad7fa5cdaa6511298498f979c472aaa","scene":2,"remark":"g","auto_create_room":0,"chat_id_list":["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa"],"qr_code":"http://p.qpic.cn/wwhead/join/0","state":"groups"}}"#,
    );
    let w = wecom(&server);
    let made = w
        .add_join_way(&JoinWay {
            chat_ids: vec!["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa".into()],
            state: "groups".into(),
            auto_create_room: false,
            room_base_name: None,
            room_base_id: None,
            remark: Some("g".into()),
        })
        .await
        .expect("made");
    assert_eq!(made.config_id, "9ad7fa5cdaa6511298498f979c472aaa");
    assert_eq!(made.qr_code, "http://p.qpic.cn/wwhead/join/0");
    assert_eq!(
        server.requests(&path("/groupchat/add_join_way"))[0].json(),
        json!({"scene": 2, "remark": "g", "auto_create_room": 0, "chat_id_list": ["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa"], "state": "groups"})
    );
    assert_eq!(
        server.requests(&path("/groupchat/get_join_way"))[0].json(),
        json!({"config_id": "9ad7fa5cdaa6511298498f979c472aaa"})
    );
    // Six groups: more than WeCom takes, refused before any call.
    let err = w
        .add_join_way(&JoinWay {
            chat_ids: (0..6).map(|i| format!("wr{i}")).collect(),
            state: "g".into(),
            auto_create_room: false,
            room_base_name: None,
            room_base_id: None,
            remark: None,
        })
        .await
        .unwrap_err();
    assert!(err.detail().contains("1–5 groups"), "{err}");
}

#[tokio::test]
async fn transfers_use_the_mode_s_endpoints_and_report_each_customer() {
    let server = HttpServer::start().await;
    server
        .then(GETTOKEN, 200, &token("tok-1"))
        .then(GETTOKEN, 200, &token("tok-2"));
    // An invalid token (40014) on the first call: refreshed, repeated once.
    server.then(
        &path("/transfer_customer"),
        200,
        r#"{"errcode":40014,"errmsg":"invalid access_token"}"#,
    );
    server.then(
        &path("/transfer_customer"),
        200,
        r#"{"errcode":0,"errmsg":"ok","customer":[{"external_userid":"wmA","errcode":0},{"external_userid":"wmB","errcode":40096}]}"#,
    );
    server.then(
        &path("/resigned/transfer_customer"),
        200,
        r#"{"errcode":0,"errmsg":"ok","customer":[{"external_userid":"wmC","errcode":0}]}"#,
    );
    server.then(
        &path("/transfer_result"),
        200,
        r#"{"errcode":0,"errmsg":"ok","customer":[{"external_userid":"wmA","status":2,"takeover_time":0}],"next_cursor":"C2"}"#,
    );
    server.then(
        &path("/transfer_result"),
        200,
        r#"{"errcode":0,"errmsg":"ok","customer":[{"external_userid":"wmZ","status":3,"takeover_time":1588262400}],"next_cursor":""}"#,
    );
    server.then(
        &path("/groupchat/onjob_transfer"),
        200,
        r#"{"errcode":0,"errmsg":"ok","failed_chat_list":[{"chat_id":"wrB","errcode":90500,"errmsg":"the owner of this chat is not resigned"}]}"#,
    );
    server.then(
        &path("/groupchat/transfer"),
        200,
        r#"{"errcode":0,"errmsg":"ok","failed_chat_list":[]}"#,
    );
    let w = wecom(&server);
    let ids = vec!["wmA".to_string(), "wmB".to_string()];
    let answers = w
        .transfer_customers(
            Mode::InService,
            "zhangsan",
            "lisi",
            &ids,
            Some("您好，我来接替张三"),
        )
        .await
        .expect("asked");
    assert_eq!(
        answers
            .iter()
            .map(|a| (a.external_userid.as_str(), a.errcode))
            .collect::<Vec<_>>(),
        [("wmA", 0), ("wmB", 40096)]
    );
    let asked = server.requests(&path("/transfer_customer"));
    assert_eq!(asked.len(), 2);
    assert_eq!(
        (
            asked[0].query["access_token"].as_str(),
            asked[1].query["access_token"].as_str()
        ),
        ("tok-1", "tok-2")
    );
    assert_eq!(server.requests(GETTOKEN).len(), 2);
    assert_eq!(
        asked[1].json(),
        json!({"handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userid": ["wmA", "wmB"], "transfer_success_msg": "您好，我来接替张三"})
    );
    // Resigned: its own endpoint, and no message (WeCom takes none there).
    w.transfer_customers(
        Mode::Resigned,
        "zhangsan",
        "lisi",
        &["wmC".into()],
        Some("x"),
    )
    .await
    .expect("asked");
    assert_eq!(
        server.requests(&path("/resigned/transfer_customer"))[0].json(),
        json!({"handover_userid": "zhangsan", "takeover_userid": "lisi", "external_userid": ["wmC"]})
    );
    // Results, page by page.
    let p1 = w
        .transfer_result(Mode::InService, "zhangsan", "lisi", "")
        .await
        .unwrap();
    assert_eq!(p1.customers[0].status, ResultStatus::Waiting);
    assert_eq!(p1.next_cursor, "C2");
    let p2 = w
        .transfer_result(Mode::InService, "zhangsan", "lisi", "C2")
        .await
        .unwrap();
    assert_eq!(p2.customers[0].status, ResultStatus::Refused);
    assert_eq!(p2.next_cursor, "");
    let asked = server.requests(&path("/transfer_result"));
    assert_eq!(
        asked[0].json(),
        json!({"handover_userid": "zhangsan", "takeover_userid": "lisi"})
    );
    assert_eq!(asked[1].json()["cursor"], "C2");
    // Groups.
    let failed = w
        .transfer_groups(Mode::InService, &["wrA".into(), "wrB".into()], "lisi")
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].chat_id.as_str(), failed[0].errcode),
        ("wrB", 90500)
    );
    assert_eq!(
        server.requests(&path("/groupchat/onjob_transfer"))[0].json(),
        json!({"chat_id_list": ["wrA", "wrB"], "new_owner": "lisi"})
    );
    assert!(w
        .transfer_groups(Mode::Resigned, &["wrC".into()], "lisi")
        .await
        .unwrap()
        .is_empty());
    // More than 100 customers in one call: refused before any call.
    let many: Vec<String> = (0..101).map(|i| format!("wm{i}")).collect();
    let err = w
        .transfer_customers(Mode::Resigned, "zhangsan", "lisi", &many, None)
        .await
        .unwrap_err();
    assert!(err.detail().contains("1–100"), "{err}");
}

#[tokio::test]
async fn group_sends_report_per_recipient_and_group_posts_use_chat_type_group() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok-1"));
    server.then(
        &path("/get_groupmsg_task"),
        200,
        r#"{"errcode":0,"errmsg":"ok","next_cursor":"T2","task_list":[{"userid":"zhangsan","status":2,"send_time":1700000000}]}"#,
    );
    server.then(
        &path("/get_groupmsg_task"),
        200,
        r#"{"errcode":0,"errmsg":"ok","next_cursor":"","task_list":[{"userid":"lisi","status":0}]}"#,
    );
    server.then(
        &path("/get_groupmsg_send_result"),
        200,
        r#"{"errcode":0,"errmsg":"ok","next_cursor":"","send_list":[{"external_userid":"wmA","chat_id":"","userid":"zhangsan","status":1,"send_time":1700000001},{"external_userid":"wmB","userid":"zhangsan","status":3,"send_time":0}]}"#,
    );
    let w = wecom(&server);
    let tasks = w.groupmsg_task("msgGCAAA").await.unwrap();
    assert_eq!(
        tasks
            .iter()
            .map(|t| (t.userid.as_str(), t.status))
            .collect::<Vec<_>>(),
        [("zhangsan", 2), ("lisi", 0)]
    );
    let asked = server.requests(&path("/get_groupmsg_task"));
    assert_eq!(asked[0].json(), json!({"msgid": "msgGCAAA", "limit": 1000}));
    assert_eq!(asked[1].json()["cursor"], "T2");
    let rows = w
        .groupmsg_send_result("msgGCAAA", "zhangsan")
        .await
        .unwrap();
    assert_eq!(
        server.requests(&path("/get_groupmsg_send_result"))[0].json(),
        json!({"msgid": "msgGCAAA", "userid": "zhangsan", "limit": 1000})
    );
    assert_eq!(send_result::verdict(rows[0].status), Some(Ok(())));
    let refused = send_result::verdict(rows[1].status).unwrap().unwrap_err();
    assert!(refused.contains("already received"), "{refused}");
    assert_eq!(send_result::verdict(0), None);

    // A post to a customer group: chat_type group, its owner sends it.
    server.then(
        &path("/add_msg_template"),
        200,
        r#"{"errcode":0,"errmsg":"ok","fail_list":[],"msgid":"msgGROUP"}"#,
    );
    let mut post = msg("wecom", "wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa", "sop/g1/e1");
    post.identity = "group:wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa".into();
    post.mass = true;
    post.data = json!({"group": "wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa", "sender": "lisi"});
    let d = w.send(&post).await.expect("posted");
    assert_eq!(d.remote_id.as_deref(), Some("msgGROUP"));
    assert_eq!(
        server.requests(&path("/add_msg_template"))[0].json(),
        json!({"chat_type": "group", "sender": "lisi", "chat_id_list": ["wrOgQhDgAAH2Yy-CTZ6POca8mlBEdaaa"], "text": {"content": "您好，您的订单已发货。"}})
    );
    assert!(send_result::awaiting(&post, &d)
        .and_then(|a| send_result::awaiting_msgid(&a).map(str::to_string))
        .is_some_and(|id| id == "msgGROUP"));
}
