//! What siyu does in WeCom itself, through the routes, with siyu's WeCom
//! `base_url` pointing at a local HTTP server that answers in WeCom's
//! documented shapes (and a token refresh on 42001 on the way): a
//! WeCom-backed live code (「联系我」: add, update, delete, and the add
//! callback attributed to it), an operator hand-over's customer and group
//! transfers (in service and resigned, WeCom's refusals reported), and
//! group-send results fed into the outbox, with WeCom's one mass message
//! per customer per day held by the guardrails.

use crate::TestApp;
use serde_json::{json, Value};
use siyu_connectors::wecom::crypto::CallbackCrypto;
use siyu_connectors::{Secret, WeComConfig};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

// Tencent's sample callback settings (as in `wecom.rs`).
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";
const EC: &str = "/cgi-bin/externalcontact";

/// WeCom's API: records every request's path and JSON body; answers each
/// path (or `path#msgid`) from its script, then its default, else
/// `{"errcode":0}`. The first call of the test's first path after the
/// token meets `42001` when `expire_once` is set.
#[derive(Clone, Default)]
pub(crate) struct FakeWeCom {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    scripts: Arc<Mutex<HashMap<String, VecDeque<Value>>>>,
    defaults: Arc<Mutex<HashMap<String, Value>>>,
    tokens: Arc<Mutex<u32>>,
}

impl FakeWeCom {
    pub(crate) async fn start() -> (FakeWeCom, String) {
        let fake = FakeWeCom::default();
        let f = fake.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let f = f.clone();
                async move {
                    let path = uri.path().to_string();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    f.requests.lock().unwrap().push((path.clone(), v.clone()));
                    if path == "/cgi-bin/gettoken" {
                        let mut n = f.tokens.lock().unwrap();
                        *n += 1;
                        return axum::Json(
                            json!({"errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN{n}"), "expires_in": 7200}),
                        );
                    }
                    let by_id = v
                        .get("msgid")
                        .and_then(Value::as_str)
                        .map(|id| format!("{path}#{id}"));
                    let mut scripts = f.scripts.lock().unwrap();
                    let scripted = by_id
                        .iter()
                        .chain(std::iter::once(&path))
                        .find_map(|k| scripts.get_mut(k).and_then(VecDeque::pop_front));
                    drop(scripts);
                    let answer = scripted
                        .or_else(|| {
                            let d = f.defaults.lock().unwrap();
                            by_id
                                .iter()
                                .chain(std::iter::once(&path))
                                .find_map(|k| d.get(k).cloned())
                        })
                        .unwrap_or_else(|| json!({"errcode": 0, "errmsg": "ok"}));
                    axum::Json(answer)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    pub(crate) fn then(&self, key: &str, answer: Value) {
        self.scripts
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .push_back(answer);
    }

    pub(crate) fn always(&self, key: &str, answer: Value) {
        self.defaults
            .lock()
            .unwrap()
            .insert(key.to_string(), answer);
    }

    pub(crate) fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn tokens(&self) -> u32 {
        *self.tokens.lock().unwrap()
    }
}

pub(crate) fn ec(p: &str) -> String {
    format!("{EC}{p}")
}

pub(crate) async fn wecom_app() -> (TestApp, FakeWeCom) {
    wecom_app_on(crate::Backend::Sqlite).await
}

/// [`wecom_app`] on either store.
pub(crate) async fn wecom_app_on(backend: crate::Backend) -> (TestApp, FakeWeCom) {
    let (fake, url) = FakeWeCom::start().await;
    let app = TestApp::spawn_with(backend, 1 << 20, |c| {
        c.connectors.wecom = Some(WeComConfig {
            base_url: url,
            corp_id: CORP.into(),
            secret: Secret::new("corp-secret"),
            sender: "zhangsan".into(),
            open_kfid: None,
            timeout_ms: 2_000,
            token: Secret::new(TOKEN),
            encoding_aes_key: Secret::new(KEY),
        });
    })
    .await;
    let (s, b) = app
        .send("PUT", "/v1/guardrails", json!({"quiet_hours": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for login in ["zhangsan", "lisi"] {
        let (s, b) = app
            .send("PUT", &format!("/v1/operators/{login}"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    (app, fake)
}

/// A callback as WeCom posts it (see `wecom.rs`).
async fn callback(app: &TestApp, plain: &str, ts: i64) -> (StatusCode, Value) {
    let nonce = "1372623149";
    let sealed = CallbackCrypto::new(TOKEN, KEY, CORP)
        .unwrap()
        .seal(plain, &ts.to_string(), nonce)
        .unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
        sealed.encrypt
    );
    let uri = format!(
        "/callbacks/wecom?msg_signature={}&timestamp={ts}&nonce={nonce}",
        sealed.msg_signature
    );
    app.call("POST", &uri, None, "text/xml", body).await
}

fn contact_xml(change: &str, extra: &str, user: &str, customer: &str, ts: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType><UserID><![CDATA[{user}]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID>{extra}</xml>"
    )
}

/// A WeCom-backed live code: `add_contact_way` with state = the code's
/// id, the QR code answered; its operators changed: `update_contact_way`
/// (same QR code); a friend added through it is attributed to it; archived:
/// `del_contact_way`. Bad backings are refused naming the field, before
/// any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_backed_live_code_is_a_contact_way_and_its_scans_are_attributed() {
    let (app, fake) = wecom_app().await;
    const QR: &str = "http://p.qpic.cn/wwhead/duc2TvpEgSdicZ9RrdUtBkv2UiaA/0";
    // The token expired before the first call: refreshed, repeated once.
    fake.then(
        &ec("/add_contact_way"),
        json!({"errcode": 42001, "errmsg": "access_token expired"}),
    );
    fake.then(
        &ec("/add_contact_way"),
        json!({"errcode": 0, "errmsg": "ok", "config_id": "42b34949e138eb6e027c123cba77fAAA", "qr_code": QR}),
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"operator": "zhangsan"}], "backing": "wecom", "auto_tags": ["春季"], "source_channel": "douyin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["backing"], "wecom", "{b}");
    assert_eq!(b["wecom"]["qr_code"], QR, "{b}");
    assert_eq!(b["wecom"]["config_id"], "42b34949e138eb6e027c123cba77fAAA");
    assert_eq!(b["wecom"]["kind"], "contact_way");
    let adds = fake.bodies(&ec("/add_contact_way"));
    assert_eq!(adds.len(), 2, "the refused call and its repeat");
    assert_eq!(
        adds[1],
        json!({"type": 1, "scene": 2, "remark": "spring", "skip_verify": true, "state": "spring", "user": ["zhangsan"]})
    );
    assert_eq!(fake.tokens(), 2, "refreshed after 42001");
    let (_, list) = app.get("/v1/livecodes").await;
    assert_eq!(list["livecodes"][0]["wecom"]["qr_code"], QR, "{list}");

    // Saved again unchanged: no call. Its operators change: update.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"operator": "zhangsan"}], "backing": "wecom", "auto_tags": ["春季"], "source_channel": "douyin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(fake.bodies(&ec("/update_contact_way")).is_empty());
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"operator": "zhangsan"}, {"operator": "lisi"}], "backing": "wecom", "auto_tags": ["春季"], "source_channel": "douyin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["wecom"]["qr_code"], QR, "the same QR code: {b}");
    assert_eq!(
        fake.bodies(&ec("/update_contact_way")),
        [
            json!({"config_id": "42b34949e138eb6e027c123cba77fAAA", "remark": "spring", "skip_verify": true, "state": "spring", "user": ["zhangsan", "lisi"]})
        ]
    );
    assert_eq!(fake.bodies(&ec("/add_contact_way")).len(), 2);

    // A customer adds lisi through the QR code: the callback's State is
    // the code; the friend is attributed to it, tagged, owned by lisi.
    let now = siyu_server::writer::wall_clock();
    let customer = "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA";
    let plain = contact_xml(
        "add_external_contact",
        "<State><![CDATA[spring]]></State><WelcomeCode><![CDATA[WC]]></WelcomeCode>",
        "lisi",
        customer,
        now,
    );
    let (s, b) = callback(&app, &plain, now).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, person) = app.get(&format!("/v1/persons/wecom:{customer}")).await;
    assert_eq!(s, StatusCode::OK, "{person}");
    assert_eq!(person["first_channel"], "douyin", "{person}");
    assert_eq!(person["traits"]["operator"], "lisi", "{person}");
    assert_eq!(person["tags"], json!(["春季"]), "{person}");
    let (_, timeline) = app
        .get(&format!("/v1/persons/wecom:{customer}/timeline"))
        .await;
    let touch = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "touch")
        .cloned()
        .expect("the live code's touch");
    assert_eq!(touch["properties"]["livecode"], "spring", "{touch}");
    assert_eq!(touch["properties"]["target"], "operator:lisi", "{touch}");

    // Archived: WeCom's QR code is deleted; the listing no longer has it.
    let (s, b) = app.send("DELETE", "/v1/livecodes/spring", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        fake.bodies(&ec("/del_contact_way")),
        [json!({"config_id": "42b34949e138eb6e027c123cba77fAAA"})]
    );
    let (_, list) = app.get("/v1/livecodes?archived=true").await;
    assert!(list["livecodes"][0].get("wecom").is_none(), "{list}");

    // Refused before WeCom is asked: an id longer than WeCom's state, a
    // code mixing operators and groups.
    let calls = fake.requests.lock().unwrap().len();
    let long = "a".repeat(31);
    let (s, b) = app
        .send(
            "PUT",
            &format!("/v1/livecodes/{long}"),
            json!({"targets": [{"operator": "zhangsan"}], "backing": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("id:"), "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/groups/wrG1",
            json!({"channel": "wecom", "owner": "zhangsan"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/mixed",
            json!({"targets": [{"operator": "zhangsan"}, {"group": "wrG1"}], "backing": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("targets:"),
        "{b}"
    );
    assert_eq!(fake.requests.lock().unwrap().len(), calls, "no WeCom call");
    // WeCom refuses: 502 naming the call, nothing saved.
    fake.then(
        &ec("/add_contact_way"),
        json!({"errcode": 40098, "errmsg": "the user is not activated"}),
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/autumn",
            json!({"targets": [{"operator": "zhangsan"}], "backing": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(b["code"], "upstream");
    assert!(
        b["message"].as_str().unwrap().contains("add_contact_way"),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("40098"), "{b}");
    let (_, list) = app.get("/v1/livecodes?archived=true").await;
    assert_eq!(list["livecodes"].as_array().unwrap().len(), 1, "{list}");
}

/// A WeCom-backed live code for groups: `groupchat/add_join_way`, then
/// `groupchat/get_join_way` for its QR code; more groups: the same way
/// updated. A customer who joins by scanning it (JoinScene 3) is
/// attributed to it: the member-change callback names no way, so the
/// group's members are read (`groupchat/get`) for their `state`. A
/// customer who joined otherwise gets no touch. Archived: `del_join_way`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_live_code_is_a_join_way_and_its_joins_are_attributed() {
    let (app, fake) = wecom_app().await;
    const QRJ: &str = "http://p.qpic.cn/wwhead/join/0";
    for g in ["wrG1", "wrG2"] {
        let (s, b) = app
            .send(
                "PUT",
                &format!("/v1/groups/{g}"),
                json!({"channel": "wecom", "owner": "zhangsan"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    fake.then(
        &ec("/groupchat/add_join_way"),
        json!({"errcode": 0, "errmsg": "ok", "config_id": "9ad7fa5cdaa6511298498f979c472aaa"}),
    );
    fake.always(
        &ec("/groupchat/get_join_way"),
        json!({"errcode": 0, "errmsg": "ok", "join_way": {"config_id": "9ad7fa5cdaa6511298498f979c472aaa", "scene": 2, "qr_code": QRJ, "state": "grp"}}),
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/grp",
            json!({"targets": [{"group": "wrG1"}], "backing": "wecom", "auto_tags": ["社群"], "source_channel": "xiaohongshu"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["wecom"]["kind"], "join_way", "{b}");
    assert_eq!(b["wecom"]["qr_code"], QRJ, "{b}");
    assert_eq!(
        fake.bodies(&ec("/groupchat/add_join_way")),
        [
            json!({"scene": 2, "remark": "grp", "auto_create_room": 0, "chat_id_list": ["wrG1"], "state": "grp"})
        ]
    );
    assert_eq!(
        fake.bodies(&ec("/groupchat/get_join_way")),
        [json!({"config_id": "9ad7fa5cdaa6511298498f979c472aaa"})]
    );
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/grp",
            json!({"targets": [{"group": "wrG1"}, {"group": "wrG2"}], "backing": "wecom", "auto_tags": ["社群"], "source_channel": "xiaohongshu"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        fake.bodies(&ec("/groupchat/update_join_way")),
        [
            json!({"config_id": "9ad7fa5cdaa6511298498f979c472aaa", "scene": 2, "remark": "grp", "auto_create_room": 0, "chat_id_list": ["wrG1", "wrG2"], "state": "grp"})
        ]
    );

    fake.always(
        &ec("/groupchat/get"),
        json!({"errcode": 0, "errmsg": "ok", "group_chat": {"chat_id": "wrG1", "owner": "zhangsan", "member_list": [
            {"userid": "zhangsan", "type": 1, "join_time": 1700000000, "join_scene": 1},
            {"userid": "wmJ", "type": 2, "join_time": 1700000100, "join_scene": 3, "state": "grp"},
            {"userid": "wmK", "type": 2, "join_time": 1700000100, "join_scene": 3}]}}),
    );
    let now = siyu_server::writer::wall_clock();
    let plain = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrG1]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>3</JoinScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmJ</Item><Item>wmK</Item></MemChangeList></xml>"
    );
    let (s, b) = callback(&app, &plain, now).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        fake.bodies(&ec("/groupchat/get")),
        [json!({"chat_id": "wrG1", "need_name": 0})]
    );
    let (_, j) = app.get("/v1/persons/wecom:wmJ").await;
    assert_eq!(j["first_channel"], "xiaohongshu", "{j}");
    assert_eq!(j["tags"], json!(["社群"]), "{j}");
    let (_, tl) = app.get("/v1/persons/wecom:wmJ/timeline").await;
    let touch = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "touch")
        .cloned()
        .expect("the live code's touch");
    assert_eq!(touch["properties"]["livecode"], "grp", "{touch}");
    assert_eq!(touch["properties"]["target"], "group:wrG1", "{touch}");
    let (s, k) = app.get("/v1/persons/wecom:wmK/timeline").await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert!(
        !k.to_string().contains("\"touch\""),
        "joined another way: {k}"
    );

    let (s, b) = app.send("DELETE", "/v1/livecodes/grp", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        fake.bodies(&ec("/groupchat/del_join_way")),
        [json!({"config_id": "9ad7fa5cdaa6511298498f979c472aaa"})]
    );
}

async fn owned_customers(app: &TestApp, owner: &str, customers: &[&str]) {
    let events: Vec<Value> = customers
        .iter()
        .map(|c| json!({"ts": "2026-01-01T08:00:00Z", "identity": format!("wecom:{c}"), "channel": "wecom", "type": "identify", "traits": {"operator": owner}}))
        .collect();
    let (s, b) = app.post_events(&Value::Array(events).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// An in-service operator with three WeCom customers and a group is
/// handed over: `transfer_customer` (100 a call, the success message),
/// `groupchat/onjob_transfer`, then `transfer_result` until nothing waits.
/// The customer who refused is reported, exactly that one, in the status
/// API and the audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_service_handover_reports_exactly_the_customer_who_refused() {
    let (app, fake) = wecom_app().await;
    owned_customers(&app, "zhangsan", &["wmA", "wmB", "wmC"]).await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/groups/wrG1",
            json!({"channel": "wecom", "owner": "zhangsan"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    fake.then(
        &ec("/transfer_customer"),
        json!({"errcode": 0, "errmsg": "ok", "customer": [
            {"external_userid": "wmA", "errcode": 0},
            {"external_userid": "wmB", "errcode": 0},
            {"external_userid": "wmC", "errcode": 0}]}),
    );
    fake.then(
        &ec("/groupchat/onjob_transfer"),
        json!({"errcode": 0, "errmsg": "ok", "failed_chat_list": []}),
    );
    fake.then(
        &ec("/transfer_result"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "customer": [
            {"external_userid": "wmA", "status": 1, "takeover_time": 1700000000},
            {"external_userid": "wmB", "status": 3, "takeover_time": 0},
            {"external_userid": "wmC", "status": 2, "takeover_time": 0}]}),
    );
    fake.then(
        &ec("/transfer_result"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "customer": [
            {"external_userid": "wmA", "status": 1, "takeover_time": 1700000000},
            {"external_userid": "wmB", "status": 3, "takeover_time": 0},
            {"external_userid": "wmC", "status": 1, "takeover_time": 1700000100}]}),
    );
    // WeCom's limits on the message are checked before anything moves.
    for (body, says) in [
        (
            json!({"to": "lisi", "in_service": true, "transfer_success_msg": "好".repeat(201)}),
            "transfer_success_msg: at most 200",
        ),
        (
            json!({"to": "lisi", "transfer_success_msg": "hi"}),
            "transfer_success_msg: WeCom sends it only",
        ),
    ] {
        let (s, b) = app
            .send("POST", "/v1/operators/zhangsan/handover", body)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["message"].as_str().unwrap().starts_with(says), "{b}");
    }
    let (_, ops) = app.get("/v1/operators").await;
    let zhangsan = ops["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["login"] == "zhangsan")
        .cloned()
        .unwrap();
    assert_eq!(zhangsan["status"], "active", "nothing moved: {zhangsan}");
    let (s, b) = app
        .send(
            "POST",
            "/v1/operators/zhangsan/handover",
            json!({"to": "lisi", "in_service": true, "transfer_success_msg": "您好，我是李四，接替张三为您服务"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["handover"]["persons"], 3, "{b}");
    assert_eq!(b["wecom"]["mode"], "in_service", "{b}");
    assert_eq!(b["wecom"]["customers"]["queued"], 3, "{b}");
    assert_eq!(b["wecom"]["groups"]["queued"], 1, "{b}");
    assert!(
        fake.bodies(&ec("/transfer_customer")).is_empty(),
        "the leader's loop calls"
    );

    let now = siyu_server::writer::wall_clock();
    assert_eq!(
        siyu_server::wecom_ops::tick_transfers(&app.state, now)
            .await
            .unwrap(),
        1
    );
    let asked = fake.bodies(&ec("/transfer_customer"));
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["handover_userid"], "zhangsan");
    assert_eq!(asked[0]["takeover_userid"], "lisi");
    assert_eq!(
        asked[0]["transfer_success_msg"],
        "您好，我是李四，接替张三为您服务"
    );
    assert_eq!(sorted(&asked[0]["external_userid"]), ["wmA", "wmB", "wmC"]);
    assert_eq!(
        fake.bodies(&ec("/groupchat/onjob_transfer")),
        [json!({"chat_id_list": ["wrG1"], "new_owner": "lisi"})]
    );
    assert!(fake.bodies(&ec("/resigned/transfer_customer")).is_empty());
    assert_eq!(
        fake.bodies(&ec("/transfer_result")),
        [json!({"handover_userid": "zhangsan", "takeover_userid": "lisi"})]
    );
    let (s, st) = app.get("/v1/operators/zhangsan/handover").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    let job = &st["wecom"][0];
    assert_eq!(job["finished"], false, "{st}");
    assert_eq!(
        job["customers"],
        json!({"waiting": 1, "done": 1, "refused": 1}),
        "{st}"
    );
    assert_eq!(job["groups"], json!({"done": 1}), "{st}");
    let refused = job["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{st}");
    assert_eq!(refused[0]["external_userid"], "wmB");
    assert_eq!(refused[0]["state"], "refused");

    // The next tick: the last waiting customer is taken over; finished.
    siyu_server::wecom_ops::tick_transfers(&app.state, now + 30)
        .await
        .unwrap();
    assert_eq!(
        fake.bodies(&ec("/transfer_customer")).len(),
        1,
        "asked once"
    );
    let (_, st) = app.get("/v1/operators/zhangsan/handover").await;
    let job = &st["wecom"][0];
    assert_eq!(job["finished"], true, "{st}");
    assert_eq!(job["customers"], json!({"done": 2, "refused": 1}), "{st}");
    let refused: Vec<&str> = job["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_userid"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["wmB"], "{st}");
    // Finished jobs are not advanced again.
    assert_eq!(
        siyu_server::wecom_ops::tick_transfers(&app.state, now + 60)
            .await
            .unwrap(),
        0
    );
    let audit = app.other_store().audit_log(20).unwrap();
    let record = audit
        .iter()
        .find(|a| a.action == "operator_handover_wecom")
        .expect("the transfer's audit record");
    assert_eq!(record.subject, "zhangsan");
    assert_eq!(record.detail["refused"][0]["external_userid"], "wmB");
    assert_eq!(record.detail["refused"].as_array().unwrap().len(), 1);
    // An unknown operator's status: 404.
    let (s, _) = app.get("/v1/operators/nobody/handover").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The API document has the status route and its answer's shape.
    let (_, doc) = app.get("/openapi.json").await;
    let op = &doc["paths"]["/v1/operators/{login}/handover"]["get"];
    assert!(op["responses"]["200"].is_object(), "{op}");
    assert!(op["responses"]["404"].is_object(), "{op}");
    let live = &doc["paths"]["/v1/livecodes/{id}"]["put"];
    assert!(live["responses"]["502"].is_object(), "{live}");
}

/// A resigned operator (the default): the resigned endpoints; a customer
/// WeCom refuses at once (its errcode) and one the `transfer_fail`
/// callback reports refused are both reported, and the job finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resigned_handover_uses_the_resigned_endpoints_and_transfer_fail_settles_it() {
    let (app, fake) = wecom_app().await;
    owned_customers(&app, "zhangsan", &["wmA", "wmB"]).await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/groups/wrG1",
            json!({"channel": "wecom", "owner": "zhangsan"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    fake.then(
        &ec("/resigned/transfer_customer"),
        json!({"errcode": 0, "errmsg": "ok", "customer": [
            {"external_userid": "wmA", "errcode": 0},
            {"external_userid": "wmB", "errcode": 40096}]}),
    );
    fake.then(
        &ec("/groupchat/transfer"),
        json!({"errcode": 0, "errmsg": "ok", "failed_chat_list": [{"chat_id": "wrG1", "errcode": 90501, "errmsg": "chat is not external group chat"}]}),
    );
    fake.always(
        &ec("/resigned/transfer_result"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "customer": [{"external_userid": "wmA", "status": 2, "takeover_time": 0}]}),
    );
    let (s, b) = app
        .send(
            "POST",
            "/v1/operators/zhangsan/handover",
            json!({"to": "lisi", "status": "banned"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["wecom"]["mode"], "resigned", "{b}");
    let now = siyu_server::writer::wall_clock();
    siyu_server::wecom_ops::tick_transfers(&app.state, now)
        .await
        .unwrap();
    assert!(fake.bodies(&ec("/transfer_customer")).is_empty());
    assert!(fake.bodies(&ec("/groupchat/onjob_transfer")).is_empty());
    let asked = fake.bodies(&ec("/resigned/transfer_customer"));
    assert_eq!(asked.len(), 1);
    assert!(asked[0].get("transfer_success_msg").is_none(), "{asked:?}");
    assert_eq!(
        fake.bodies(&ec("/groupchat/transfer")),
        [json!({"chat_id_list": ["wrG1"], "new_owner": "lisi"})]
    );
    assert_eq!(fake.bodies(&ec("/resigned/transfer_result")).len(), 1);
    let (_, st) = app.get("/v1/operators/zhangsan/handover").await;
    let job = &st["wecom"][0];
    assert_eq!(job["customers"], json!({"waiting": 1, "failed": 1}), "{st}");
    assert_eq!(job["refused"][0]["external_userid"], "wmB", "{st}");
    assert_eq!(job["refused"][0]["errcode"], 40096, "{st}");
    assert_eq!(job["groups_refused"][0]["chat_id"], "wrG1", "{st}");
    assert_eq!(job["groups_refused"][0]["errcode"], 90501, "{st}");

    // WeCom tells siyu that lisi could not take wmA: the job settles.
    let plain = contact_xml(
        "transfer_fail",
        "<FailReason><![CDATA[customer_refused]]></FailReason>",
        "lisi",
        "wmA",
        now,
    );
    let (s, b) = callback(&app, &plain, now).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, st) = app.get("/v1/operators/zhangsan/handover").await;
    let job = &st["wecom"][0];
    assert_eq!(job["finished"], true, "{st}");
    assert_eq!(job["customers"], json!({"refused": 1, "failed": 1}), "{st}");
    let reasons: Vec<&str> = job["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("customer_refused")),
        "{st}"
    );
    // The event is in the customer's history too.
    let (_, tl) = app.get("/v1/persons/wecom:wmA/timeline").await;
    assert!(tl.to_string().contains("wecom_transfer_failed"), "{tl}");
}

/// A transfer job is state in the store, not in a process: one a
/// previous process (or leader) left waiting is taken up by this node's
/// tick from where it stood — no transfer asked again, the result read,
/// the job finished with its audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_transfer_job_is_resumed_where_it_stood() {
    let (app, fake) = wecom_app().await;
    let left = json!({
        "login": "zhangsan", "at": 1_790_000_000, "mode": "resigned",
        "customers": [
            {"external_userid": "wmA", "takeover": "lisi", "state": "waiting"},
            {"external_userid": "wmB", "takeover": "lisi", "state": "done"}],
        "groups": []
    });
    let mut other = app.other_store();
    other
        .put_setting("wecom/handover/zhangsan/1790000000", Some(&left))
        .unwrap();
    drop(other);
    fake.then(
        &ec("/resigned/transfer_result"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "customer": [{"external_userid": "wmA", "status": 4, "takeover_time": 0}]}),
    );
    let now = siyu_server::writer::wall_clock();
    assert_eq!(
        siyu_server::wecom_ops::tick_transfers(&app.state, now)
            .await
            .unwrap(),
        1
    );
    assert!(
        fake.bodies(&ec("/resigned/transfer_customer")).is_empty(),
        "not asked again"
    );
    let (_, st) = app.get("/v1/operators/zhangsan/handover").await;
    let job = &st["wecom"][0];
    assert_eq!(job["finished"], true, "{st}");
    assert_eq!(job["customers"], json!({"done": 1, "limit": 1}), "{st}");
    assert_eq!(job["refused"][0]["external_userid"], "wmA", "{st}");
    assert!(app
        .other_store()
        .audit_log(5)
        .unwrap()
        .iter()
        .any(|a| a.action == "operator_handover_wecom" && a.subject == "zhangsan"));
}

async fn outbox_item(app: &TestApp, key: &str, until: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, list) = app.get("/v1/outbox?limit=1000").await;
        if let Some(item) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == key)
        {
            if until(item) {
                return item.clone();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited for outbox item {key}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A mass send through `add_msg_template`: each item is done awaiting its
/// task's result; the leader reads `get_groupmsg_task` and
/// `get_groupmsg_send_result` and each recipient's status reaches the
/// outbox (delivered, or dead with WeCom's reason). A second mass message
/// the same day to the same customer is held by the guardrails with the
/// quota reason, and WeCom is not asked; so is a direct send (no 微信客服
/// account: it would be a group-send task too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_send_results_reach_the_outbox_and_a_second_mass_message_is_held() {
    let (app, fake) = wecom_app().await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/promo",
            json!({"body": "春季上新", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    owned_customers(&app, "zhangsan", &["wmA", "wmB"]).await;
    for (id, msgid) in [("wmA", "msgA"), ("wmB", "msgB")] {
        let _ = id;
        fake.then(
            &ec("/add_msg_template"),
            json!({"errcode": 0, "errmsg": "ok", "fail_list": [], "msgid": msgid}),
        );
    }
    let (s, b) = app
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "spring", "identities": ["wecom:wmA"], "template": "promo", "channel": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let a = outbox_item(&app, "m/spring/wecom:wmA", |i| i["status"] == "done").await;
    let (s, b) = app
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "spring_b", "identities": ["wecom:wmB"], "template": "promo", "channel": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let b_item = outbox_item(&app, "m/spring_b/wecom:wmB", |i| i["status"] == "done").await;
    assert_eq!(
        a["detail"], "wecom msgid msgA: waiting for the send result",
        "{a}"
    );
    assert_eq!(
        b_item["detail"], "wecom msgid msgB: waiting for the send result",
        "{b_item}"
    );
    let sent = fake.bodies(&ec("/add_msg_template"));
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["chat_type"], "single");
    assert_eq!(sent[0]["external_userid"], json!(["wmA"]));

    // Not confirmed yet: nothing decided.
    fake.then(
        &format!("{}#msgA", ec("/get_groupmsg_task")),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "task_list": [{"userid": "zhangsan", "status": 0}]}),
    );
    fake.then(
        &format!("{}#msgB", ec("/get_groupmsg_task")),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "task_list": [{"userid": "zhangsan", "status": 0}]}),
    );
    let now = siyu_server::writer::wall_clock();
    assert_eq!(
        siyu_server::wecom_ops::tick_send_results(&app.state, now)
            .await
            .unwrap(),
        0
    );
    // Sent: wmA received it, wmB is not zhangsan's friend.
    fake.always(
        &ec("/get_groupmsg_task"),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "task_list": [{"userid": "zhangsan", "status": 2, "send_time": now}]}),
    );
    fake.always(
        &format!("{}#msgA", ec("/get_groupmsg_send_result")),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": [{"external_userid": "wmA", "chat_id": "", "userid": "zhangsan", "status": 1, "send_time": now}]}),
    );
    fake.always(
        &format!("{}#msgB", ec("/get_groupmsg_send_result")),
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": [{"external_userid": "wmB", "userid": "zhangsan", "status": 2, "send_time": 0}]}),
    );
    assert_eq!(
        siyu_server::wecom_ops::tick_send_results(&app.state, now)
            .await
            .unwrap(),
        2
    );
    let results = fake.bodies(&ec("/get_groupmsg_send_result"));
    assert!(
        results.contains(&json!({"msgid": "msgA", "userid": "zhangsan", "limit": 1000})),
        "{results:?}"
    );
    let a = outbox_item(&app, "m/spring/wecom:wmA", |i| i["detail"] != a["detail"]).await;
    assert_eq!(a["status"], "done", "{a}");
    assert!(
        a["detail"].as_str().unwrap().starts_with("delivered"),
        "{a}"
    );
    let b_item = outbox_item(&app, "m/spring_b/wecom:wmB", |i| i["status"] == "dead").await;
    assert!(
        b_item["detail"]
            .as_str()
            .unwrap()
            .contains("not the sender's customer"),
        "{b_item}"
    );
    let (_, attempts) = app.get("/v1/outbox/attempts?key=m/spring/wecom:wmA").await;
    assert!(attempts.to_string().contains("\"delivered\""), "{attempts}");
    // Decided items are not read again.
    assert_eq!(
        siyu_server::wecom_ops::tick_send_results(&app.state, now)
            .await
            .unwrap(),
        0
    );

    // A second mass message to wmA the same day: held with the quota
    // reason, WeCom not asked.
    let (s, b) = app
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "spring_again", "identities": ["wecom:wmA"], "template": "promo", "channel": "wecom"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let held = outbox_item(&app, "m/spring_again/wecom:wmA", |i| {
        i["status"] != "pending"
    })
    .await;
    assert_eq!(
        (held["status"].as_str(), held["detail"].as_str()),
        (Some("suppressed"), Some("platform_quota")),
        "{held}"
    );
    // Without a customer-service account every WeCom message is a
    // group-send task: a direct send to wmA is held the same way.
    let (s, b) = app
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "direct_again", "identities": ["wecom:wmA"], "template": "promo", "channel": "wecom", "kind": "direct"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let held = outbox_item(&app, "m/direct_again/wecom:wmA", |i| {
        i["status"] != "pending"
    })
    .await;
    assert_eq!(
        (held["status"].as_str(), held["detail"].as_str()),
        (Some("suppressed"), Some("platform_quota")),
        "{held}"
    );
    assert_eq!(fake.bodies(&ec("/add_msg_template")).len(), 2);
}
