//! The WeCom sync, tags both ways and welcome messages through the
//! routes, with a local HTTP server standing in for WeCom's API: it
//! answers `batch/get_by_user` by operator and cursor, pages
//! `groupchat/list`, and can fail a given page once with a 500.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_connectors::wecom::crypto::CallbackCrypto;
use siyu_connectors::{Secret, WeComConfig};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Tencent's sample callback settings (as in `wecom.rs`).
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";

const BATCH: &str = "/cgi-bin/externalcontact/batch/get_by_user";
const MARK: &str = "/cgi-bin/externalcontact/mark_tag";
const ADD_TAG: &str = "/cgi-bin/externalcontact/add_corp_tag";
const WELCOME: &str = "/cgi-bin/externalcontact/send_welcome_msg";

/// A customer as `batch/get_by_user` lists it for `op`.
fn contact(ext: &str, op: &str, ts: i64, tags: &[&str]) -> Value {
    json!({
        "external_contact": {"external_userid": ext, "name": format!("客户{ext}"), "type": 1,
            "avatar": "", "gender": 1, "unionid": format!("u{ext}")},
        "follow_info": {"userid": op, "remark": "", "description": "", "createtime": ts,
            "tag_id": tags, "remark_mobiles": [], "oper_userid": op, "add_way": 1, "state": ""}
    })
}

/// WeCom as the sync, tags and welcomes use it.
#[derive(Clone, Default)]
struct FakeWeCom {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// (userid, cursor) pages that answer 500 once.
    fail_once: Arc<Mutex<HashSet<(String, String)>>>,
    /// gettoken answers; a 42001 is answered to the first batch call of
    /// a token it lists as expired.
    expired: Arc<Mutex<HashSet<String>>>,
    tokens: Arc<Mutex<u32>>,
}

impl FakeWeCom {
    fn page(userid: &str, cursor: &str) -> Value {
        let t = 1_700_000_000;
        let (list, next) = match (userid, cursor) {
            ("zhangsan", "") => (
                vec![
                    contact("wmA", "zhangsan", t, &["et1"]),
                    contact("wmB", "zhangsan", t + 1, &[]),
                ],
                "Z1",
            ),
            ("zhangsan", "Z1") => (
                vec![
                    contact("wmC", "zhangsan", t + 2, &["et1", "et2"]),
                    contact("wmD", "zhangsan", t + 3, &[]),
                ],
                "Z2",
            ),
            ("zhangsan", "Z2") => (vec![contact("wmE", "zhangsan", t + 4, &["et2"])], ""),
            ("lisi", "") => (vec![contact("wmA", "lisi", t + 10, &["et2"])], "L1"),
            ("lisi", "L1") => (vec![contact("wmF", "lisi", t + 11, &[])], ""),
            _ => (Vec::new(), ""),
        };
        json!({"errcode": 0, "errmsg": "ok", "external_contact_list": list, "next_cursor": next})
    }

    fn group(chat_id: &str) -> Value {
        let members = match chat_id {
            "wrG1" => json!([
                {"userid": "zhangsan", "type": 1, "join_time": 1_700_000_100, "join_scene": 1},
                {"userid": "wmA", "type": 2, "join_time": 1_700_000_101, "join_scene": 3},
                {"userid": "wmB", "type": 2, "join_time": 1_700_000_102, "join_scene": 2}
            ]),
            _ => json!([
                {"userid": "lisi", "type": 1, "join_time": 1_700_000_200, "join_scene": 1},
                {"userid": "wmC", "type": 2, "join_time": 1_700_000_201, "join_scene": 1},
                {"userid": "wmNEW", "type": 2, "join_time": 1_700_000_202, "join_scene": 3}
            ]),
        };
        json!({"errcode": 0, "errmsg": "ok", "group_chat": {"chat_id": chat_id, "name": "群", "owner": "zhangsan", "create_time": 1_700_000_000, "member_list": members}})
    }

    async fn start() -> (FakeWeCom, String) {
        let fake = FakeWeCom::default();
        let f = fake.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let f = f.clone();
                async move {
                    let path = uri.path().to_string();
                    let token = uri
                        .query()
                        .unwrap_or("")
                        .split('&')
                        .find_map(|p| p.strip_prefix("access_token="))
                        .unwrap_or("")
                        .to_string();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    f.requests.lock().unwrap().push((path.clone(), v.clone()));
                    let ok = json!({"errcode": 0, "errmsg": "ok"});
                    let answer = match path.as_str() {
                        "/cgi-bin/gettoken" => {
                            let mut n = f.tokens.lock().unwrap();
                            *n += 1;
                            json!({"errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN{n}"), "expires_in": 7200})
                        }
                        "/cgi-bin/externalcontact/get_follow_user_list" => {
                            json!({"errcode": 0, "errmsg": "ok", "follow_user": ["zhangsan", "lisi"]})
                        }
                        "/cgi-bin/externalcontact/get_corp_tag_list" => json!({"errcode": 0, "errmsg": "ok", "tag_group": [
                            {"group_id": "g1", "group_name": "客户等级", "tag": [{"id": "et1", "name": "VIP"}, {"id": "et2", "name": "复购"}]}
                        ]}),
                        BATCH => {
                            if f.expired.lock().unwrap().remove(&token) {
                                return (
                                    StatusCode::OK,
                                    axum::Json(json!({"errcode": 42001, "errmsg": "access_token expired"})),
                                );
                            }
                            let userid = v["userid_list"][0].as_str().unwrap_or("").to_string();
                            let cursor = v["cursor"].as_str().unwrap_or("").to_string();
                            if f.fail_once.lock().unwrap().remove(&(userid.clone(), cursor.clone())) {
                                return (
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    axum::Json(json!({"error": "upstream"})),
                                );
                            }
                            Self::page(&userid, &cursor)
                        }
                        "/cgi-bin/externalcontact/groupchat/list" => {
                            match v["cursor"].as_str().unwrap_or("") {
                                "" => json!({"errcode": 0, "errmsg": "ok", "group_chat_list": [{"chat_id": "wrG1", "status": 0}], "next_cursor": "G1"}),
                                _ => json!({"errcode": 0, "errmsg": "ok", "group_chat_list": [{"chat_id": "wrG2", "status": 0}], "next_cursor": ""}),
                            }
                        }
                        "/cgi-bin/externalcontact/groupchat/get" => {
                            Self::group(v["chat_id"].as_str().unwrap_or(""))
                        }
                        "/cgi-bin/externalcontact/get" => json!({"errcode": 0, "errmsg": "ok",
                            "external_contact": {"external_userid": "wmT", "name": "客户T", "type": 1},
                            "follow_user": [{"userid": "zhangsan", "remark": "", "createtime": 1_700_000_000, "state": "",
                                "tags": [{"group_name": "客户等级", "tag_name": "复购", "tag_id": "et2", "type": 1},
                                         {"group_name": "", "tag_name": "个人标签", "type": 2}]}]}),
                        ADD_TAG => json!({"errcode": 0, "errmsg": "ok", "tag_group": {"group_id": "g9", "group_name": "siyu",
                            "tag": [{"id": "etNEW", "name": v["tag"][0]["name"]}]}}),
                        _ => ok,
                    };
                    (StatusCode::OK, axum::Json(answer))
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Value> {
        let started = Instant::now();
        while self.bodies(path).len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "waited for {n} calls of {path}, got {:?}",
                self.bodies(path)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies(path)
    }
}

async fn app_with(callbacks: bool) -> (TestApp, FakeWeCom) {
    app_on(crate::Backend::Sqlite, callbacks).await
}

async fn app_on(backend: crate::Backend, callbacks: bool) -> (TestApp, FakeWeCom) {
    let (fake, url) = FakeWeCom::start().await;
    let app = TestApp::spawn_with(backend, 1 << 20, |c| {
        c.connectors.wecom = Some(WeComConfig {
            base_url: url,
            corp_id: CORP.into(),
            secret: Secret::new("corp-secret"),
            sender: "zhangsan".into(),
            open_kfid: None,
            timeout_ms: 2_000,
            token: Secret::new(if callbacks { TOKEN } else { "" }),
            encoding_aes_key: Secret::new(if callbacks { KEY } else { "" }),
        });
    })
    .await;
    (app, fake)
}

fn log_len(app: &TestApp) -> u64 {
    app.state.0.engine.read().unwrap().events_applied()
}

/// Polls `GET /v1/wecom/sync` until the job is done or failed.
async fn finished(app: &TestApp) -> Value {
    let started = Instant::now();
    loop {
        let (s, b) = app.get("/v1/wecom/sync").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if b["status"] == "done" || b["status"] == "failed" {
            return b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sync still {b}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn person(app: &TestApp, identity: &str) -> Value {
    let (s, p) = app.get(&format!("/v1/persons/{identity}")).await;
    assert_eq!(s, StatusCode::OK, "{identity}: {p}");
    p
}

/// Two operators, one with three pages of customers, a customer both
/// follow, two groups over two `groupchat/list` pages: the persons, their
/// tags (the corp tags' names), unionids and groups; a token expiring
/// mid-sync is refreshed. Nothing of it is sent back to WeCom, and a
/// second run stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_imports_contacts_tags_and_groups_once() {
    let (app, fake) = app_with(false).await;
    sync_imports_once(app, fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_imports_contacts_tags_and_groups_once_on_postgres_too() {
    if crate::pg_url().is_none() {
        return;
    }
    let (app, fake) = app_on(crate::Backend::Postgres, false).await;
    sync_imports_once(app, fake).await;
}

async fn sync_imports_once(app: TestApp, fake: FakeWeCom) {
    let (s, b) = app.get("/v1/wecom/sync").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // A journey greeting every new friend on WeCom: the imported friends
    // are history (the test app counts any age as fresh), it greets none.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/hi",
            json!({"body": "你好", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let journey = json!({
        "trigger": {"type": "event", "event": "add_friend"},
        "start": "hello",
        "steps": {"hello": {"type": "send", "template": "hi", "channel": "wecom"}}
    });
    let (s, b) = app.send("PUT", "/v1/journeys/greet", journey).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The first token expires at the first page.
    fake.expired.lock().unwrap().insert("TOKEN1".into());
    let before = log_len(&app);
    let (s, b) = app.send("POST", "/v1/wecom/sync", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = app.send("POST", "/v1/wecom/sync", json!({})).await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a second start while one runs: {b}"
    );
    let done = finished(&app).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["operators_total"], 2);
    assert_eq!(done["operators_done"], 2);
    assert_eq!(done["contacts"], 7, "5 of zhangsan's, 2 of lisi's");
    assert_eq!(done["groups"], 2);
    assert_eq!(done["error_count"], 0, "{done}");
    // 7 adds + 7 identifies + 4 customers in groups.
    assert_eq!(done["events_stored"], 18, "{done}");
    assert_eq!(log_len(&app), before + 18);
    let pages: Vec<(String, String)> = fake
        .bodies(BATCH)
        .iter()
        .map(|b| {
            (
                b["userid_list"][0].as_str().unwrap().to_string(),
                b["cursor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |u: &str, c: &str| (u.to_string(), c.to_string());
    assert_eq!(
        pages,
        [
            want("zhangsan", ""),
            want("zhangsan", ""),
            want("zhangsan", "Z1"),
            want("zhangsan", "Z2"),
            want("lisi", ""),
            want("lisi", "L1"),
        ],
        "the first page again with a fresh token, then cursor by cursor"
    );
    assert_eq!(fake.bodies("/cgi-bin/gettoken").len(), 2);

    let a = person(&app, "wecom:wmA").await;
    let tags: HashSet<&str> = a["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        HashSet::from(["VIP", "复购"]),
        "zhangsan's and lisi's tags: {a}"
    );
    assert!(
        a["identities"]
            .as_array()
            .unwrap()
            .contains(&json!("wechat_unionid:uwmA")),
        "{a}"
    );
    assert_eq!(a["groups"], json!(["wrG1"]));
    assert_eq!(a["traits"]["name"], "客户wmA");
    let c = person(&app, "wecom:wmC").await;
    assert_eq!(c["groups"], json!(["wrG2"]));
    assert_eq!(c["tags"], json!(["VIP", "复购"]));
    let new = person(&app, "wecom:wmNEW").await;
    assert_eq!(new["groups"], json!(["wrG2"]));
    assert!(new["first_friend_at"].is_null(), "a group member only");
    let f = person(&app, "wecom:wmF").await;
    assert_eq!(f["traits"]["operator"], "lisi");
    assert!(f["first_friend_at"].is_string(), "{f}");

    // Again: the same events, nothing stored.
    let (s, b) = app.send("POST", "/v1/wecom/sync", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let again = finished(&app).await;
    assert_eq!(again["status"], "done", "{again}");
    assert_eq!(again["contacts"], 7);
    assert_eq!(again["events_stored"], 0, "{again}");
    assert_eq!(log_len(&app), before + 18);

    // WeCom's own tags were not sent back; history greeted nobody.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.bodies(MARK).is_empty(), "{:?}", fake.bodies(MARK));
    assert!(fake.bodies(WELCOME).is_empty());
    assert!(fake
        .bodies("/cgi-bin/externalcontact/add_msg_template")
        .is_empty());
    let (s, report) = app.get("/v1/journeys/greet/report").await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["skipped_history"]["backfill"], 7, "{report}");
    // The mark is the event's own (`source: sync` on a WeCom id), read
    // wherever it is applied — a node following the log, a replay after
    // a takeover — not only by this node's history appends: the same
    // event through the plain API is history too.
    let (s, b) = app
        .post_events(
            &json!([{"id": "wecom/0123456789abcdef0123456789abcdef", "ts": 1_700_000_500,
                "identity": "wecom:wmZ", "type": "add_friend", "channel": "wecom",
                "properties": {"operator": "zhangsan", "source": "sync"}}])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let started = Instant::now();
    loop {
        let (_, report) = app.get("/v1/journeys/greet/report").await;
        if report["skipped_history"]["backfill"] == 8 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{report}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(fake
        .bodies("/cgi-bin/externalcontact/add_msg_template")
        .is_empty());

    // A tag added in siyu reaches mark_tag once, for the operator, with a
    // corp tag created for it.
    let (s, b) = app
        .post_events(
            &json!([{"id": "t1", "ts": 1_800_000_000, "identity": "wecom:wmF", "type": "identify",
                "traits": {"tags": ["新客"]}}])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let marks = fake.wait_for(MARK, 1).await;
    assert_eq!(
        marks[0],
        json!({"userid": "lisi", "external_userid": "wmF", "add_tag": ["etNEW"]})
    );
    assert_eq!(
        fake.bodies(ADD_TAG),
        [json!({"group_name": "siyu", "tag": [{"name": "新客"}]})]
    );
    // Sent again (a client retry): stored once, marked once.
    let (s, _) = app
        .post_events(
            &json!([{"id": "t1", "ts": 1_800_000_000, "identity": "wecom:wmF", "type": "identify",
                "traits": {"tags": ["新客"]}}])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.bodies(MARK).len(), 1);
    let (_, outbox) = app.get("/v1/outbox?person=wecom:wmF").await;
    let items = outbox["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{outbox}");
    assert_eq!(items[0]["status"], "done", "{outbox}");
}

/// A 500 in the middle of an operator's pages stops the job as failed
/// at that cursor; the next start resumes there, re-reading nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_interrupted_by_a_5xx_resumes_from_its_checkpoint() {
    let (app, fake) = app_with(false).await;
    // Bad input first: 4xx naming the field, nothing started.
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (s, b) = app
        .send("POST", "/v1/wecom/sync", json!({"operators": many}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("operators"),
        "{b}"
    );
    let (s, b) = app
        .send("POST", "/v1/wecom/sync", json!({"operators": [""]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("operators[0]"),
        "{b}"
    );
    let (s, b) = app
        .send("POST", "/v1/wecom/sync", json!({"restart": "yes"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("restart"), "{b}");
    let (s, b) = app
        .send("POST", "/v1/wecom/sync", json!({"operator": ["zhangsan"]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("operator:"),
        "{b}"
    );
    let (s, _) = app.get("/v1/wecom/sync").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    fake.fail_once
        .lock()
        .unwrap()
        .insert(("zhangsan".into(), "Z2".into()));
    let (s, b) = app.send("POST", "/v1/wecom/sync", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let failed = finished(&app).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["phase"], "contacts");
    assert_eq!(failed["cursor"], "Z2");
    assert_eq!(failed["operators_done"], 0);
    assert_eq!(failed["contacts"], 4);
    let error = failed["errors"][0].as_str().unwrap();
    assert!(
        error.contains("http 500") && error.contains("Z2"),
        "{error}"
    );

    let (s, b) = app.send("POST", "/v1/wecom/sync", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["cursor"], "Z2", "resumes, not restarts: {b}");
    let done = finished(&app).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["contacts"], 7);
    assert_eq!(done["events_stored"], 18);
    let cursors: Vec<String> = fake
        .bodies(BATCH)
        .iter()
        .filter(|b| b["userid_list"][0] == "zhangsan")
        .map(|b| b["cursor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cursors,
        ["", "Z1", "Z2", "Z2"],
        "the failed page again, and nothing before it"
    );
    let _ = person(&app, "wecom:wmE").await;
}

// ---------- welcome ----------

fn callback_request(plain: &str, ts: i64) -> (String, String) {
    let nonce = "1372623149";
    let sealed = CallbackCrypto::new(TOKEN, KEY, CORP)
        .unwrap()
        .seal(plain, &ts.to_string(), nonce)
        .unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
        sealed.encrypt
    );
    (
        format!(
            "/callbacks/wecom?msg_signature={}&timestamp={ts}&nonce={nonce}",
            sealed.msg_signature
        ),
        body,
    )
}

fn add_contact_xml(customer: &str, code: &str, ts: i64) -> String {
    add_contact_xml_with_state(customer, code, ts, "")
}

fn add_contact_xml_with_state(customer: &str, code: &str, ts: i64, state: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID><State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[{code}]]></WelcomeCode></xml>"
    )
}

async fn outbox_of(app: &TestApp, identity: &str) -> Vec<Value> {
    let (s, b) = app.get(&format!("/v1/outbox?person={identity}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

/// The default welcome goes out once through `send_welcome_msg` with the
/// callback's code, however often WeCom retries the callback; a code
/// that expired before it could be used is recorded as missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_code_gets_the_configured_welcome_once_or_is_missed() {
    let (app, fake) = app_with(true).await;
    let (s, b) = app.get("/v1/wecom/welcome").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = app
        .send("PUT", "/v1/wecom/welcome", json!({"text": ""}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("text"), "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/wecom/welcome",
            json!({"text": "您好，欢迎光临！回复「菜单」看看新品"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.get("/v1/wecom/welcome").await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(true)));

    let now = siyu_server::writer::wall_clock();
    let (uri, body) = callback_request(&add_contact_xml("wmW1", "CODE-1", now), now);
    for _ in 0..2 {
        let (s, b) = app.call("POST", &uri, None, "text/xml", body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let sent = fake.wait_for(WELCOME, 1).await;
    assert_eq!(
        sent[0],
        json!({"welcome_code": "CODE-1", "text": {"content": "您好，欢迎光临！回复「菜单」看看新品"}, "attachments": []})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.bodies(WELCOME).len(), 1, "once");
    let items = outbox_of(&app, "wecom:wmW1").await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["status"], "done", "{items:?}");

    // Added 25 s ago (the request signed now): the code is gone.
    let (uri, body) = callback_request(&add_contact_xml("wmW2", "CODE-2", now - 25), now);
    let (s, b) = app.call("POST", &uri, None, "text/xml", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let started = Instant::now();
    let item = loop {
        let items = outbox_of(&app, "wecom:wmW2").await;
        if let Some(i) = items.first().filter(|i| i["status"] != "pending") {
            break i.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{items:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(item["status"], "suppressed", "{item}");
    assert!(
        item["detail"].as_str().unwrap().starts_with("missed:"),
        "{item}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.bodies(WELCOME).len(),
        1,
        "the expired code was not sent"
    );

    // A live code's welcome template wins over the default for the
    // friends its 「联系我」 (State) brings.
    let (s, b) = app
        .send("PUT", "/v1/operators/zhangsan", json!({"name": "张三"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/spring_hi",
            json!({"body": "春季活动欢迎您，领券请回复 1", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"operator": "zhangsan"}], "welcome_template": "spring_hi"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (uri, body) = callback_request(
        &add_contact_xml_with_state("wmW3", "CODE-3", now, "spring"),
        now,
    );
    let (s, b) = app.call("POST", &uri, None, "text/xml", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sent = fake.wait_for(WELCOME, 2).await;
    assert_eq!(
        sent[1],
        json!({"welcome_code": "CODE-3", "text": {"content": "春季活动欢迎您，领券请回复 1"}, "attachments": []})
    );
}

/// Only the node holding the automation lease runs the sync: one asked
/// on a standing-by node records the request, and the leader's loop
/// (`wecom_sync::spawn`) picks it up and runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_asked_on_a_standing_by_node_runs_on_the_leader() {
    if crate::pg_url().is_none() {
        return;
    }
    let (app, fake) = app_on(crate::Backend::Postgres, false).await;
    let peer = app.peer().await;
    assert!(app.state.0.leader.is_leader());
    assert!(!peer.state.0.leader.is_leader());
    let (s, b) = peer.send("POST", "/v1/wecom/sync", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["status"], "requested");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, b) = peer.get("/v1/wecom/sync").await;
    assert_eq!(b["status"], "requested", "the standing-by node ran it: {b}");
    assert!(fake.bodies(BATCH).is_empty());
    siyu_server::wecom_sync::spawn(app.state.clone());
    let done = finished(&peer).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["contacts"], 7);
    let _ = person(&app, "wecom:wmE").await;
    // The standing-by node follows the log to the same persons.
    let started = Instant::now();
    while peer.get("/v1/persons/wecom:wmE").await.0 != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A member changes a customer's tags in WeCom: the edit callback reads
/// the customer's corp tags and the person's siyu tags follow (a corp tag
/// WeCom no longer shows goes, a siyu-only tag stays), without sending
/// anything back; a siyu tag change goes to WeCom once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_go_both_ways_without_an_echo() {
    let (app, fake) = app_with(true).await;
    let now = siyu_server::writer::wall_clock();
    let (uri, body) = callback_request(&add_contact_xml("wmT", "CODE-T", now - 60), now);
    let (s, b) = app.call("POST", &uri, None, "text/xml", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = person(&app, "wecom:wmT").await;
    assert_eq!(
        t["traits"]["operator"], "zhangsan",
        "the add's operator: {t}"
    );
    let (s, b) = app
        .post_events(
            &json!([{"id": "tt1", "ts": now, "identity": "wecom:wmT", "type": "identify",
                "traits": {"tags": ["VIP", "老客"]}}])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let marks = fake.wait_for(MARK, 1).await;
    assert_eq!(
        marks[0],
        json!({"userid": "zhangsan", "external_userid": "wmT", "add_tag": ["et1", "etNEW"]})
    );

    let edit = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[edit_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmT]]></ExternalUserID></xml>"
    );
    let (uri, body) = callback_request(&edit, now);
    let (s, b) = app.call("POST", &uri, None, "text/xml", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = person(&app, "wecom:wmT").await;
    assert_eq!(
        t["tags"],
        json!(["复购", "老客"]),
        "WeCom's corp tags, the siyu-only tag kept: {t}"
    );
    let before = log_len(&app);
    let (s, _) = app.call("POST", &uri, None, "text/xml", body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(log_len(&app), before, "a retried edit stores nothing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.bodies(MARK).len(), 1, "WeCom's tags are not sent back");
    assert_eq!(
        fake.bodies("/cgi-bin/externalcontact/get").len(),
        2,
        "read at each edit"
    );
}

/// A job left `running` at a checkpoint (the node stopped mid-sync) is
/// resumed by the leading node's loop from that operator and cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_left_running_resumes_from_its_checkpoint_on_the_leader() {
    let (app, fake) = app_with(false).await;
    let left = json!({
        "status": "running", "phase": "contacts",
        "operators": ["zhangsan", "lisi"], "operators_done": 0, "operators_total": 2,
        "only_operators": [], "cursor": "Z2", "groups_in_page_done": 0,
        "contacts": 4, "groups": 0, "events_stored": 8, "pages": 2,
        "error_count": 0, "errors": [], "started_at": 1_800_000_000,
        "finished_at": null, "updated_at": 1_800_000_100
    });
    tokio::task::block_in_place(|| {
        app.other_store()
            .put_setting("wecom/sync", Some(&left))
            .unwrap()
    });
    siyu_server::wecom_sync::spawn(app.state.clone());
    let done = finished(&app).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["contacts"], 4 + 3, "Z2's one, lisi's two");
    let pages: Vec<String> = fake
        .bodies(BATCH)
        .iter()
        .map(|b| {
            format!(
                "{}@{}",
                b["userid_list"][0].as_str().unwrap(),
                b["cursor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(pages, ["zhangsan@Z2", "lisi@", "lisi@L1"]);
    let _ = person(&app, "wecom:wmE").await;
}
