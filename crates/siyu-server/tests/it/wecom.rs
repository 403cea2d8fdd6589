//! WeCom's own callbacks through the routes (`/callbacks/wecom`), in
//! process, with a local server standing in for WeCom's API (token and
//! `kf/sync_msg`, `kf/send_msg`). The callbacks are encrypted and signed
//! with the WXBizMsgCrypt scheme (`siyu_connectors::wecom::crypto`, which
//! its own tests check against Tencent's published vectors) under
//! Tencent's sample settings; the URL verification uses Tencent's
//! example request itself.

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use siyu_connectors::wecom::crypto::CallbackCrypto;
use siyu_connectors::{Secret, WeComConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Tencent's sample settings (sbzhu/weworkapi_php callback/Sample.php,
// workweixin/weworkapi_cplusplus Sample.cpp).
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub(crate) const CORP: &str = "wx5823bf96d3bd56c7";

/// WeCom's API as far as the callbacks use it: every request's path and
/// JSON body; `kf/sync_msg` answers the messages queued with
/// [`FakeWeCom::queue_kf`] once, then none.
#[derive(Clone, Default)]
pub(crate) struct FakeWeCom {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    kf_queue: Arc<Mutex<Vec<Value>>>,
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
                    f.requests.lock().unwrap().push((path.clone(), v));
                    let answer = match path.as_str() {
                        "/cgi-bin/gettoken" => {
                            json!({"errcode": 0, "errmsg": "ok", "access_token": "TOKEN1", "expires_in": 7200})
                        }
                        "/cgi-bin/kf/sync_msg" => {
                            let list: Vec<Value> = std::mem::take(&mut *f.kf_queue.lock().unwrap());
                            json!({"errcode": 0, "errmsg": "ok", "next_cursor": "CURSOR1", "has_more": 0, "msg_list": list})
                        }
                        _ => json!({"errcode": 0, "errmsg": "ok", "msgid": "m1"}),
                    };
                    axum::Json(answer)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    fn queue_kf(&self, message: Value) {
        self.kf_queue.lock().unwrap().push(message);
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
                self.requests.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies(path)
    }
}

pub(crate) fn wecom_config(base_url: String) -> WeComConfig {
    WeComConfig {
        base_url,
        corp_id: CORP.into(),
        secret: Secret::new("corp-secret"),
        sender: "zhangsan".into(),
        open_kfid: Some("wkKF001".into()),
        timeout_ms: 2_000,
        token: Secret::new(TOKEN),
        encoding_aes_key: Secret::new(KEY),
    }
}

pub(crate) async fn wecom_app() -> (TestApp, FakeWeCom) {
    let (fake, url) = FakeWeCom::start().await;
    let app = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.connectors.wecom = Some(wecom_config(url));
    })
    .await;
    let (s, b) = app
        .send("PUT", "/v1/guardrails", json!({"quiet_hours": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (app, fake)
}

fn crypto(corp: &str) -> CallbackCrypto {
    CallbackCrypto::new(TOKEN, KEY, corp).unwrap()
}

/// `+`, `/` and `=` of base64 in a query.
fn query_escape(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// A callback as WeCom posts it: `plain` encrypted for `corp`, the
/// envelope XML, the signed query.
pub(crate) fn callback_request(path: &str, plain: &str, corp: &str, ts: i64) -> (String, String) {
    let nonce = "1372623149";
    let sealed = crypto(corp).seal(plain, &ts.to_string(), nonce).unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
        sealed.encrypt
    );
    let uri = format!(
        "{path}?msg_signature={}&timestamp={ts}&nonce={nonce}",
        sealed.msg_signature
    );
    (uri, body)
}

pub(crate) async fn post(app: &TestApp, uri: &str, body: &str) -> (StatusCode, Value) {
    app.call("POST", uri, None, "text/xml", body.to_string())
        .await
}

fn log_len(app: &TestApp) -> u64 {
    app.state.0.engine.read().unwrap().events_applied()
}

pub(crate) fn add_contact_xml(customer: &str, state: &str, ts: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID><State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>"
    )
}

/// Tencent's URL-verification example, as WeCom's admin console sends it:
/// the route answers the decrypted `echostr` as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencents_url_verification_example_passes_through_the_route() {
    let (app, _fake) = wecom_app().await;
    let echostr =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    for path in ["/callbacks/wecom", "/callbacks/wecom/default"] {
        let uri = format!(
            "{path}?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr={}",
            query_escape(echostr)
        );
        let resp = get_text(&app, &uri).await;
        assert_eq!(resp.0, StatusCode::OK, "{path}: {}", resp.2);
        assert!(resp.1.starts_with("text/plain"), "{}", resp.1);
        assert_eq!(resp.2, "1616140317555161061", "{path}");
    }
    // One character off: refused.
    let (s, b) = app
        .call(
            "GET",
            &format!(
                "/callbacks/wecom?msg_signature=6c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr={}",
                query_escape(echostr)
            ),
            None,
            "text/plain",
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_signature")),
        "{b}"
    );
    // Another workspace's path is not this one.
    let (s, _) = app
        .call(
            "GET",
            "/callbacks/wecom/brand_x",
            None,
            "text/plain",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A GET through the app: (status, content type, body text).
async fn get_text(app: &TestApp, uri: &str) -> (StatusCode, String, String) {
    use tower::ServiceExt;
    let resp = siyu_server::app(app.state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

/// A friend added through a live code's 「联系我」: a person
/// `wecom:{ExternalUserID}` with an `add_friend` naming the operator, the
/// state and the welcome code, and the live code's touch on its source
/// channel (the person's first channel). WeCom's retry, and the same
/// callback sealed again, add nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_external_contact_callback_makes_a_wecom_friend_once() {
    let (app, _fake) = wecom_app().await;
    let (s, b) = app
        .send("PUT", "/v1/operators/zhangsan", json!({"name": "张三"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"operator": "zhangsan"}], "source_channel": "douyin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = siyu_server::writer::wall_clock();
    let customer = "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA";
    let plain = add_contact_xml(customer, "spring", now);
    let (uri, body) = callback_request("/callbacks/wecom", &plain, CORP, now);
    let before = log_len(&app);
    let (s, b) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        log_len(&app),
        before + 2,
        "the add and the live code's touch"
    );

    let (s, person) = app.get(&format!("/v1/persons/wecom:{customer}")).await;
    assert_eq!(s, StatusCode::OK, "{person}");
    assert_eq!(person["first_channel"], "douyin", "{person}");
    let (_, timeline) = app
        .get(&format!("/v1/persons/wecom:{customer}/timeline"))
        .await;
    let events: Vec<&Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .collect();
    let add = events
        .iter()
        .find(|e| e["type"] == "add_friend")
        .expect("an add_friend");
    assert_eq!(add["channel"], "wecom");
    assert_eq!(add["properties"]["operator"], "zhangsan");
    assert_eq!(add["properties"]["state"], "spring");
    assert_eq!(add["properties"]["welcome_code"], "WELCOMECODE");
    let touch = events
        .iter()
        .find(|e| e["type"] == "touch")
        .expect("the live code's touch");
    assert_eq!(touch["channel"], "douyin");
    assert_eq!(touch["properties"]["livecode"], "spring");
    assert_eq!(touch["properties"]["target"], "operator:zhangsan");

    // WeCom retries the same request; it may also sign it anew.
    let (s, b) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (uri2, body2) = callback_request("/callbacks/wecom", &plain, CORP, now + 1);
    assert_ne!(body, body2);
    let (s, b) = post(&app, &uri2, &body2).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(log_len(&app), before + 2, "retries add nothing");
}

/// A bad signature, another corp's message, a stale or early timestamp,
/// a missing signature, a body that is not WeCom's: 4xx with the error
/// table's JSON, and the log unchanged. Tencent's own POST example is
/// refused as stale (it was signed in 2014).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callbacks_store_nothing() {
    let (app, _fake) = wecom_app().await;
    let now = siyu_server::writer::wall_clock();
    let plain = add_contact_xml("wmRefused", "", now);
    let before = log_len(&app);
    let mut cases: Vec<(String, String, StatusCode, &str, &str)> = Vec::new();

    let (uri, body) = callback_request("/callbacks/wecom", &plain, CORP, now);
    let tampered = uri.replacen("msg_signature=", "msg_signature=0", 1);
    cases.push((
        tampered,
        body.clone(),
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "msg_signature does not match",
    ));
    let (uri, body) = callback_request("/callbacks/wecom", &plain, "ww0000000000000000", now);
    cases.push((
        uri,
        body,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "not the configured corp_id",
    ));
    let (uri, body) = callback_request("/callbacks/wecom", &plain, CORP, now - 301);
    cases.push((
        uri,
        body,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "older than the server clock",
    ));
    let (uri, body) = callback_request("/callbacks/wecom", &plain, CORP, now + 400);
    cases.push((
        uri,
        body,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "newer than the server clock",
    ));
    cases.push((
        "/callbacks/wecom".into(),
        "<xml/>".into(),
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "`msg_signature` is missing",
    ));
    // Tencent's example POST (Sample.php, example two): authentic, but
    // from 2014.
    let tencent = "/callbacks/wecom?msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149";
    let tencent_body = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
    cases.push((
        tencent.into(),
        tencent_body.into(),
        StatusCode::UNAUTHORIZED,
        "bad_signature",
        "older than the server clock",
    ));
    // Signed, fresh, but not WeCom's envelope.
    let ts = now.to_string();
    let sig = siyu_connectors::wecom::crypto::signature(TOKEN, &ts, "1", "");
    cases.push((
        format!("/callbacks/wecom?msg_signature={sig}&timestamp={ts}&nonce=1"),
        "<html>".into(),
        StatusCode::BAD_REQUEST,
        "bad_request",
        "does not parse",
    ));
    for (uri, body, status, code, says) in cases {
        let (s, b) = post(&app, &uri, &body).await;
        assert_eq!(s, status, "{uri}: {b}");
        assert_eq!(b["code"], code, "{uri}: {b}");
        assert!(b["message"].as_str().unwrap().contains(says), "{uri}: {b}");
    }
    assert_eq!(log_len(&app), before, "nothing stored");
    let (s, _) = app.get("/v1/persons/wecom:wmRefused").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A customer writes to the corp's 微信客服: the callback carries only a
/// token; siyu reads the message with `kf/sync_msg`, stores it as a
/// `comment`, and the keyword auto-reply answers through `kf/send_msg`.
/// The cursor is kept for the next callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kf_customer_message_gets_a_keyword_auto_reply() {
    let (app, fake) = wecom_app().await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/price",
            json!({"body": "您好，价格是 199 元", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/autoreply",
            json!([{"id": "price", "matcher": {"any_of": ["多少钱"]}, "reply_template": "price", "create_lead": true}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = siyu_server::writer::wall_clock();
    let customer = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw";
    fake.queue_kf(json!({
        "msgid": "from_msgid_4622416642169452483", "open_kfid": "wkKF001",
        "external_userid": customer, "send_time": now, "origin": 3,
        "servicer_userid": "zhangsan", "msgtype": "text", "text": {"content": "请问多少钱？"}
    }));
    let kf_xml = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token><OpenKfId><![CDATA[wkKF001]]></OpenKfId></xml>"
    );
    let (uri, body) = callback_request("/callbacks/wecom", &kf_xml, CORP, now);
    let (s, b) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pulls = fake.bodies("/cgi-bin/kf/sync_msg");
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (&pulls[0]["token"], &pulls[0]["open_kfid"]),
        (
            &json!("ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"),
            &json!("wkKF001")
        )
    );
    assert!(
        pulls[0].get("cursor").is_none(),
        "the first read has no cursor"
    );

    let sent = fake.wait_for("/cgi-bin/kf/send_msg", 1).await;
    assert_eq!(sent[0]["touser"], customer);
    assert_eq!(sent[0]["open_kfid"], "wkKF001");
    assert_eq!(sent[0]["text"]["content"], "您好，价格是 199 元");
    let (_, timeline) = app
        .get(&format!("/v1/persons/wecom:{customer}/timeline"))
        .await;
    assert!(
        timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "comment" && e["event"]["text"] == "请问多少钱？"),
        "{timeline}"
    );
    // The next callback reads from the stored cursor.
    let (uri, body) = callback_request("/callbacks/wecom", &kf_xml, CORP, now + 1);
    let (s, b) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(fake.bodies("/cgi-bin/kf/sync_msg")[1]["cursor"], "CURSOR1");
}

/// `/callbacks/wecom/{workspace}` reaches that workspace behind the one
/// router (WeCom sends no X-Siyu-Workspace header), and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_callback_reaches_its_workspace() {
    let (a, _fake_a) = wecom_app().await;
    let (fake_b, url) = FakeWeCom::start().await;
    let _ = fake_b;
    let b = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.connectors.wecom = Some(wecom_config(url));
        c.workspace = "brand_b".into();
    })
    .await;
    let router = siyu_server::workspace::Workspaces::new(
        a.state.clone(),
        vec![("brand_b".into(), None, b.state.clone())],
    )
    .router();
    let now = siyu_server::writer::wall_clock();
    let plain = add_contact_xml("wmOnlyB", "", now);
    let (uri, body) = callback_request("/callbacks/wecom/brand_b", &plain, CORP, now);
    let resp = siyu_server::workspace::dispatch(
        &router,
        Request::post(&uri)
            .header("content-type", "text/xml")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, _) = b.get("/v1/persons/wecom:wmOnlyB").await;
    assert_eq!(s, StatusCode::OK, "in brand_b");
    let (s, _) = a.get("/v1/persons/wecom:wmOnlyB").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not in the default workspace");
    let resp = siyu_server::workspace::dispatch(
        &router,
        Request::get("/callbacks/wecom/nobody")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
