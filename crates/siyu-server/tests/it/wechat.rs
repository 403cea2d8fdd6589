//! A WeChat Official Account and Tencent Cloud SMS through the routes, in
//! process, with a local server standing in for WeChat's API (token,
//! `message/custom/send`, `qrcode/create`) and Tencent Cloud's
//! (`SendSms`), each answering the documented shapes. Callbacks are
//! signed (and in safe mode encrypted) with the one WXBizMsgCrypt
//! implementation, whose own tests check it against Tencent's vectors.

use crate::TestApp;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_connectors::wechat::callback::signature;
use siyu_connectors::wecom::crypto::CallbackCrypto;
use siyu_connectors::{Secret, SmsConfig, WeChatOfficialConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APPID: &str = "wx5823bf96d3bd56c7";
const SERIAL: &str = "2433:482345732210916372681231";

/// WeChat's and Tencent Cloud's APIs: every request's path, headers and
/// JSON body. `message/custom/send` answers 42001 (token expired) once,
/// then success, so the first auto-reply also proves the refresh.
#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<(String, axum::http::HeaderMap, Value)>>>,
    expired_once: Arc<Mutex<bool>>,
}

impl Fake {
    async fn start() -> (Fake, String) {
        let fake = Fake::default();
        let f = fake.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let f = f.clone();
                async move {
                    let path = uri.path().to_string();
                    let query = uri.query().unwrap_or("").to_string();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    f.requests.lock().unwrap().push((path.clone(), headers, v));
                    let answer = match path.as_str() {
                        "/cgi-bin/token" => {
                            let n = f.bodies("/cgi-bin/token").len();
                            json!({"access_token": format!("ACCESS{n}"), "expires_in": 7200})
                        }
                        "/cgi-bin/message/custom/send" => {
                            let mut once = f.expired_once.lock().unwrap();
                            if !*once && query.contains("access_token=ACCESS1") {
                                *once = true;
                                json!({"errcode": 42001, "errmsg": "access_token expired"})
                            } else {
                                json!({"errcode": 0, "errmsg": "ok"})
                            }
                        }
                        "/cgi-bin/message/template/send" => {
                            json!({"errcode": 0, "errmsg": "ok", "msgid": 200228332})
                        }
                        "/cgi-bin/qrcode/create" => json!({
                            "ticket": "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==",
                            "expire_seconds": 604800,
                            "url": "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI"
                        }),
                        "/" => json!({"Response": {"SendStatusSet": [{
                            "SerialNo": SERIAL, "PhoneNumber": "+8613800000000", "Fee": 1,
                            "SessionContext": "", "Code": "Ok", "Message": "send success", "IsoCode": "CN"
                        }], "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}),
                        _ => json!({"errcode": 404, "errmsg": "unknown path"}),
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

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, v)| v.clone())
            .collect()
    }

    fn headers(&self, path: &str) -> Vec<axum::http::HeaderMap> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, _)| h.clone())
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Value> {
        let started = Instant::now();
        while self.bodies(path).len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "waited for {n} calls of {path}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bodies(path)
    }
}

/// An app with the Official Account (safe mode unless `plaintext`) and
/// Tencent Cloud SMS, both pointed at the fake.
async fn oa_app(plaintext: bool) -> (TestApp, Fake) {
    let (fake, url) = Fake::start().await;
    let app = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.connectors.wechat = Some(WeChatOfficialConfig {
            base_url: url.clone(),
            app_id: APPID.into(),
            secret: Secret::new("app-secret"),
            timeout_ms: 2_000,
            token: Secret::new(TOKEN),
            encoding_aes_key: Secret::new(if plaintext { "" } else { KEY }),
        });
        c.connectors.sms = Some(SmsConfig {
            provider: "tencent".into(),
            base_url: url,
            sdk_app_id: "1400006666".into(),
            sign_name: "思语".into(),
            template_id: Some("449739".into()),
            secret_id: "AKIDtest".into(),
            secret_key: Secret::new("tc-secret"),
            region: "ap-guangzhou".into(),
            timeout_ms: 2_000,
            ..SmsConfig::default()
        });
    })
    .await;
    let (s, b) = app
        .send("PUT", "/v1/guardrails", json!({"quiet_hours": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (app, fake)
}

fn log_len(app: &TestApp) -> u64 {
    app.state.0.engine.read().unwrap().events_applied()
}

fn crypto(appid: &str) -> CallbackCrypto {
    CallbackCrypto::for_receiver("wechat", "app_id", TOKEN, KEY, appid).unwrap()
}

/// A safe-mode callback as WeChat posts it: the query (`signature`,
/// `timestamp`, `nonce`, `openid`, `encrypt_type=aes`, `msg_signature`)
/// and the envelope with `<Encrypt>`.
fn safe_request(path: &str, plain: &str, appid: &str, ts: i64) -> (String, String) {
    let nonce = "1320562132";
    let sealed = crypto(appid).seal(plain, &ts.to_string(), nonce).unwrap();
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
        sealed.encrypt
    );
    let uri = format!(
        "{path}?signature={}&timestamp={ts}&nonce={nonce}&openid=oFOLLOWER&encrypt_type=aes&msg_signature={}",
        signature(TOKEN, &ts.to_string(), nonce),
        sealed.msg_signature
    );
    (uri, body)
}

fn plain_request(path: &str, ts: i64) -> String {
    let nonce = "42";
    format!(
        "{path}?signature={}&timestamp={ts}&nonce={nonce}&openid=oFOLLOWER",
        signature(TOKEN, &ts.to_string(), nonce)
    )
}

fn event_xml(openid: &str, ts: i64, event: &str, key: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>"
    )
}

fn text_xml(openid: &str, ts: i64, text: &str, msgid: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content><MsgId>{msgid}</MsgId></xml>"
    )
}

async fn post_xml(app: &TestApp, uri: &str, body: &str) -> (StatusCode, Value) {
    app.call("POST", uri, None, "text/xml", body.to_string())
        .await
}

/// The server verification echoes `echostr`; bad or missing signatures,
/// stale timestamps, another account's message and a plaintext callback
/// to a safe-mode account are refused before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_and_refused_callbacks_store_nothing() {
    let (app, _fake) = oa_app(false).await;
    let now = siyu_server::writer::wall_clock();
    for path in ["/callbacks/wechat", "/callbacks/wechat/default"] {
        let uri = format!(
            "{}&echostr=5830928837219842910",
            plain_request(path, 1409304348)
        );
        let (s, b) = app
            .call("GET", &uri, None, "text/plain", Body::empty())
            .await;
        assert_eq!(
            (s, b),
            (StatusCode::OK, json!(5830928837219842910u64)),
            "{path}"
        );
    }
    let (s, b) = app
        .call(
            "GET",
            "/callbacks/wechat?signature=0000000000000000000000000000000000000000&timestamp=1&nonce=2&echostr=x",
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

    let plain = event_xml("oREFUSED", now, "subscribe", "");
    let before = log_len(&app);
    let mut cases: Vec<(String, String, StatusCode, &str)> = Vec::new();
    let (uri, body) = safe_request("/callbacks/wechat", &plain, APPID, now);
    cases.push((
        uri.replacen("msg_signature=", "msg_signature=0", 1),
        body.clone(),
        StatusCode::UNAUTHORIZED,
        "msg_signature does not match",
    ));
    cases.push((
        uri.replacen("&signature=", "&signature=0", 1)
            .replacen("?signature=", "?signature=0", 1),
        body.clone(),
        StatusCode::UNAUTHORIZED,
        "signature does not match",
    ));
    let (uri, body) = safe_request("/callbacks/wechat", &plain, "wx0000000000000000", now);
    cases.push((
        uri,
        body,
        StatusCode::BAD_REQUEST,
        "not the configured app_id",
    ));
    let (uri, body) = safe_request("/callbacks/wechat", &plain, APPID, now - 301);
    cases.push((
        uri,
        body,
        StatusCode::UNAUTHORIZED,
        "older than the server clock",
    ));
    cases.push((
        plain_request("/callbacks/wechat", now),
        plain.clone(),
        StatusCode::UNAUTHORIZED,
        "configured for safe mode",
    ));
    cases.push((
        "/callbacks/wechat".into(),
        plain.clone(),
        StatusCode::UNAUTHORIZED,
        "`signature` is missing",
    ));
    for (uri, body, status, says) in cases {
        let (s, b) = post_xml(&app, &uri, &body).await;
        assert_eq!(s, status, "{uri}: {b}");
        assert!(b["message"].as_str().unwrap().contains(says), "{uri}: {b}");
    }
    assert_eq!(log_len(&app), before, "nothing stored");
    let (s, _) = app.get("/v1/persons/wechat:oREFUSED").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A QR made for a source channel; a follow through it (safe mode)
/// records the source as the follower's first channel and on the follow;
/// WeChat's retry and a re-signed copy store nothing more. A SCAN by a
/// follower is a touch with the scene; unsubscribe an `unfollow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_through_a_qr_records_its_source_once() {
    let (app, fake) = oa_app(false).await;
    let (s, qr) = app
        .send(
            "POST",
            "/v1/wechat/qrcodes",
            json!({"channel": "xiaohongshu", "expire_seconds": 604800}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{qr}");
    assert_eq!(qr["scene"], "channel:xiaohongshu");
    assert_eq!(qr["permanent"], false);
    assert_eq!(qr["url"], "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI");
    assert!(
        qr["image_url"]
            .as_str()
            .unwrap()
            .starts_with("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH47jo"),
        "{qr}"
    );
    assert_eq!(
        fake.bodies("/cgi-bin/qrcode/create")[0],
        json!({"expire_seconds": 604800, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "channel:xiaohongshu"}}})
    );
    for (body, says) in [
        (json!({"campaign": "no_such_campaign"}), "campaign"),
        (json!({"channel": "Not A Channel"}), "channel"),
        (json!({}), "exactly one"),
        (
            json!({"channel": "douyin", "expire_seconds": 10}),
            "expire_seconds",
        ),
    ] {
        let (s, b) = app.send("POST", "/v1/wechat/qrcodes", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["message"].as_str().unwrap().contains(says), "{b}");
    }

    let now = siyu_server::writer::wall_clock();
    let plain = event_xml("oQRFAN", now, "subscribe", "qrscene_channel:xiaohongshu");
    let (uri, body) = safe_request("/callbacks/wechat", &plain, APPID, now);
    let before = log_len(&app);
    let (s, b) = post_xml(&app, &uri, &body).await;
    assert_eq!((s, b), (StatusCode::OK, json!("success")));
    assert_eq!(
        log_len(&app),
        before + 2,
        "the source's touch and the follow"
    );
    let (s, person) = app.get("/v1/persons/wechat:oQRFAN").await;
    assert_eq!(s, StatusCode::OK, "{person}");
    assert_eq!(person["first_channel"], "xiaohongshu", "{person}");
    let (_, timeline) = app.get("/v1/persons/wechat:oQRFAN/timeline").await;
    let follow = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "follow")
        .cloned()
        .expect("a follow");
    assert_eq!(follow["channel"], "wechat");
    assert_eq!(follow["properties"]["source"], "xiaohongshu");
    assert_eq!(follow["properties"]["scene"], "channel:xiaohongshu");

    // WeChat retries the same request, or the same callback signed anew.
    let (s, _) = post_xml(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK);
    let (uri2, body2) = safe_request("/callbacks/wechat", &plain, APPID, now + 1);
    let (s, _) = post_xml(&app, &uri2, &body2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(log_len(&app), before + 2, "retries add nothing");

    let (uri, body) = safe_request(
        "/callbacks/wechat",
        &event_xml("oQRFAN", now + 5, "SCAN", "channel:douyin"),
        APPID,
        now,
    );
    assert_eq!(post_xml(&app, &uri, &body).await.0, StatusCode::OK);
    let (uri, body) = safe_request(
        "/callbacks/wechat",
        &event_xml("oQRFAN", now + 9, "unsubscribe", ""),
        APPID,
        now,
    );
    assert_eq!(post_xml(&app, &uri, &body).await.0, StatusCode::OK);
    let (_, timeline) = app.get("/v1/persons/wechat:oQRFAN/timeline").await;
    let events: Vec<&Value> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .collect();
    assert!(
        events.iter().any(|e| e["type"] == "touch"
            && e["channel"] == "wechat"
            && e["properties"]["source"] == "douyin"),
        "{timeline}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "custom" && e["name"] == "unfollow"),
        "{timeline}"
    );
}

/// A follower's text (plaintext mode) is an inbound message: the keyword
/// rule answers through `message/custom/send`, after refreshing the
/// expired token once. A follower last heard from three days ago gets no
/// customer-service message: suppressed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_gets_the_keyword_auto_reply_within_48_hours_only() {
    let (app, fake) = oa_app(true).await;
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
            json!([{"id": "price", "matcher": {"any_of": ["多少钱"]}, "reply_template": "price"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = siyu_server::writer::wall_clock();
    let uri = plain_request("/callbacks/wechat", now);
    let (s, b) = post_xml(
        &app,
        &uri,
        &text_xml("oBUYER", now, "请问多少钱？", "6054768590064713728"),
    )
    .await;
    assert_eq!((s, b), (StatusCode::OK, json!("success")));
    let sent = fake.wait_for("/cgi-bin/message/custom/send", 2).await;
    assert_eq!(
        sent[1],
        json!({"touser": "oBUYER", "msgtype": "text", "text": {"content": "您好，价格是 199 元"}})
    );
    assert_eq!(
        fake.bodies("/cgi-bin/token").len(),
        2,
        "refreshed once after 42001"
    );
    let (_, timeline) = app.get("/v1/persons/wechat:oBUYER/timeline").await;
    assert!(
        timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "comment" && e["event"]["text"] == "请问多少钱？"),
        "{timeline}"
    );
    // The same message again (a retry): stored once, answered once.
    let (s, _) = post_xml(
        &app,
        &uri,
        &text_xml("oBUYER", now, "请问多少钱？", "6054768590064713728"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Three days ago: outside WeChat's window.
    let old = now - 3 * 86_400;
    let (s, b) = app
        .post_events(&json!([{"identity": "wechat:oOLD", "channel": "wechat", "type": "comment", "text": "多少钱", "ts": old}]).to_string())
        .await;
    assert!(s.is_success(), "{b}");
    let started = Instant::now();
    let item = loop {
        let (_, list) = app.get("/v1/outbox?status=suppressed").await;
        if let Some(i) = list["items"].as_array().unwrap().iter().find(|i| {
            i["detail"]
                .as_str()
                .unwrap_or("")
                .contains("wechat_48h_window")
        }) {
            break i.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        item["detail"].as_str().unwrap().contains("72 h ago"),
        "{item}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.bodies("/cgi-bin/message/custom/send").len(),
        2,
        "nothing sent to oOLD, no second reply to oBUYER"
    );

    // A transactional template with a template message reaches oOLD
    // anyway: as 模板消息, its fields rendered for the person.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/shipped",
            json!({"body": "您的订单已发货", "class": "transactional", "wechat_template": {
                "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
                "data": {"first": "{{ name | default: \"您好\" }}，您的订单已发货", "remark": "感谢惠顾"},
                "url": "https://shop.example.com/orders"
            }}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send("POST", "/v1/sends", json!({"id": "ship-old", "identities": ["wechat:oOLD"], "template": "shipped", "channel": "wechat", "kind": "direct"}))
        .await;
    assert_eq!((s, b["queued"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let sent = fake.wait_for("/cgi-bin/message/template/send", 1).await;
    assert_eq!(
        sent[0],
        json!({
            "touser": "oOLD",
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "url": "https://shop.example.com/orders",
            "data": {"first": {"value": "您好，您的订单已发货"}, "remark": {"value": "感谢惠顾"}}
        })
    );
    assert_eq!(
        fake.bodies("/cgi-bin/message/custom/send").len(),
        2,
        "not as a customer-service text"
    );
}

/// An SMS sent through Tencent Cloud (TC3-signed `SendSms`) keeps its
/// `SerialNo`; the delivery receipt naming it marks the outbox row
/// delivered. A reply `TD` revokes the number's SMS consent; another
/// reply is an inbound message. A wrong token is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_receipt_marks_its_row_delivered_and_td_opts_out() {
    let (app, fake) = oa_app(false).await;
    let (s, b) = app
        .send(
            "PUT",
            "/v1/templates/ship",
            json!({"body": "您的订单已发货", "class": "transactional"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let now = siyu_server::writer::wall_clock();
    let (s, b) = app
        .post_events(&json!([{"identity": "sms:+8613800000000", "channel": "sms", "type": "touch", "ts": now}]).to_string())
        .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = app
        .send("POST", "/v1/sends", json!({"id": "ship1", "identities": ["sms:+8613800000000"], "template": "ship", "channel": "sms", "kind": "direct"}))
        .await;
    assert_eq!((s, b["queued"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let sent = fake.wait_for("/", 1).await;
    assert_eq!(sent[0]["PhoneNumberSet"], json!(["+8613800000000"]));
    assert_eq!(sent[0]["SmsSdkAppId"], "1400006666");
    let h = &fake.headers("/")[0];
    assert_eq!(h["x-tc-action"], "SendSms");
    assert!(h["authorization"]
        .to_str()
        .unwrap()
        .starts_with("TC3-HMAC-SHA256 Credential=AKIDtest/"));

    let started = Instant::now();
    let key = loop {
        let (_, list) = app.get("/v1/outbox?status=done").await;
        if let Some(i) = list["items"].as_array().unwrap().first() {
            break i["key"].as_str().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, connectors) = app.get("/v1/connectors").await;
    let status_url = connectors["callbacks"]["sms_status"]
        .as_str()
        .expect("listed")
        .to_string();
    let reply_url = connectors["callbacks"]["sms_reply"]
        .as_str()
        .expect("listed")
        .to_string();
    let path = |url: &str| format!("/callbacks/{}", url.split_once("/callbacks/").unwrap().1);
    // Tencent's receipt for the message, and one naming nothing siyu sent.
    let receipts = json!([
        {"user_receive_time": "2026-12-04 12:00:03", "nationcode": "86", "mobile": "13800000000",
         "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": SERIAL},
        {"user_receive_time": "2026-12-04 12:00:03", "nationcode": "86", "mobile": "13900000000",
         "report_status": "FAIL", "errmsg": "MK:0001", "description": "", "sid": "0:unknown"}
    ]);
    let (s, b) = app
        .call(
            "POST",
            &path(&status_url),
            None,
            "application/json",
            receipts.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (
            b["result"].clone(),
            b["accepted"].clone(),
            b["unknown"].clone()
        ),
        (json!(0), json!(1), json!(1))
    );
    let (_, attempts) = app
        .get(&format!("/v1/outbox/attempts?key={}", urlencode(&key)))
        .await;
    assert_eq!(attempts["status"], "done", "{attempts}");
    let delivered = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["verdict"] == "delivered")
        .cloned()
        .expect("a delivered verdict");
    assert!(
        delivered["detail"].as_str().unwrap().contains("DELIVRD"),
        "{delivered}"
    );
    assert!(
        !delivered["detail"]
            .as_str()
            .unwrap()
            .contains("13800000000"),
        "the number is masked"
    );

    // Erasing the person leaves no phone number in the sid record.
    let (s, b) = app
        .send("DELETE", "/v1/persons/sms:+8613800000000", "")
        .await;
    assert!(s.is_success(), "{b}");
    let kept = app
        .other_store()
        .get_setting(&format!("sms/sid/{SERIAL}"))
        .unwrap()
        .expect("the sid record stays");
    assert!(!kept.to_string().contains("13800000000"), "{kept}");

    let bad = path(&status_url).replace("/callbacks/sms/tencent/", "/callbacks/sms/tencent/0");
    let (s, b) = app
        .call("POST", &bad, None, "application/json", receipts.to_string())
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_signature")),
        "{b}"
    );

    // Replies: TD revokes SMS consent for the number; a question is an inbound message.
    let phone = app.state.0.privacy.phone_identity("13800000000");
    let replies = json!([
        {"extend": "", "mobile": "13800000000", "nationcode": "86", "sign": "思语", "text": " td ", "time": now},
        {"extend": "", "mobile": "13900000000", "nationcode": "86", "sign": "思语", "text": "什么时候到？", "time": now}
    ]);
    let before = log_len(&app);
    let (s, b) = app
        .call(
            "POST",
            &path(&reply_url),
            None,
            "application/json",
            replies.to_string(),
        )
        .await;
    assert_eq!(
        (s, b["accepted"].clone()),
        (StatusCode::OK, json!(2)),
        "{b}"
    );
    assert_eq!(log_len(&app), before + 1, "the question only");
    let ledger = app
        .other_store()
        .consent_ledger(Some(phone.as_str()))
        .unwrap();
    assert!(
        ledger
            .iter()
            .any(|r| r.channel.as_deref() == Some("sms") && !r.granted && r.source == "sms_reply"),
        "{ledger:?}"
    );
    let asker = app.state.0.privacy.phone_identity("13900000000");
    let (s, timeline) = app
        .get(&format!("/v1/persons/{}/timeline", asker.as_str()))
        .await;
    assert_eq!(s, StatusCode::OK, "{timeline}");
    assert_eq!(timeline["events"][0]["event"]["text"], "什么时候到？");
    assert_eq!(timeline["events"][0]["event"]["channel"], "sms");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Behind the one router, `/callbacks/wechat/{workspace}` reaches that
/// workspace, and an SMS callback URL the workspace whose token it
/// carries (Tencent sends no header naming it); an unknown token is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_reach_the_workspace_their_path_names() {
    let (a, _fake_a) = oa_app(true).await;
    let (_fake_b, url) = Fake::start().await;
    let b = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.workspace = "brand_b".into();
        c.connectors.wechat = Some(WeChatOfficialConfig {
            base_url: url.clone(),
            app_id: APPID.into(),
            secret: Secret::new("app-secret"),
            token: Secret::new(TOKEN),
            ..WeChatOfficialConfig::default()
        });
        c.connectors.sms = Some(SmsConfig {
            provider: "tencent".into(),
            base_url: url,
            sdk_app_id: "1400006666".into(),
            sign_name: "思语".into(),
            secret_id: "AKIDtest".into(),
            secret_key: Secret::new("tc-secret"),
            ..SmsConfig::default()
        });
    })
    .await;
    let router = siyu_server::workspace::Workspaces::new(
        a.state.clone(),
        vec![("brand_b".into(), None, b.state.clone())],
    )
    .router();
    let now = siyu_server::writer::wall_clock();
    let post = |uri: String, ctype: &'static str, body: String| {
        siyu_server::workspace::dispatch(
            &router,
            axum::http::Request::post(uri)
                .header("content-type", ctype)
                .body(Body::from(body))
                .unwrap(),
        )
    };
    let resp = post(
        plain_request("/callbacks/wechat/brand_b", now),
        "text/xml",
        event_xml("oONLYB", now, "subscribe", ""),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(b.get("/v1/persons/wechat:oONLYB").await.0, StatusCode::OK);
    assert_eq!(
        a.get("/v1/persons/wechat:oONLYB").await.0,
        StatusCode::NOT_FOUND
    );

    let (_, connectors) = b.get("/v1/connectors").await;
    assert_eq!(
        connectors["callbacks"]["wechat"],
        format!(
            "{}/callbacks/wechat/brand_b",
            b.state.0.config.public_url.trim_end_matches('/')
        )
    );
    let reply_url = connectors["callbacks"]["sms_reply"].as_str().unwrap();
    let reply_path = format!(
        "/callbacks/{}",
        reply_url.split_once("/callbacks/").unwrap().1
    );
    let (_, a_connectors) = a.get("/v1/connectors").await;
    assert_ne!(
        a_connectors["callbacks"]["sms_reply"],
        connectors["callbacks"]["sms_reply"]
    );
    let replies = json!([{"extend": "", "mobile": "13700000000", "nationcode": "86", "sign": "思语", "text": "你好", "time": now}]);
    let resp = post(reply_path, "application/json", replies.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let who = b.state.0.privacy.phone_identity("13700000000");
    assert_eq!(
        b.get(&format!("/v1/persons/{}", who.as_str())).await.0,
        StatusCode::OK
    );
    let resp = post(
        format!("/callbacks/sms/tencent/{}/reply", "0".repeat(32)),
        "application/json",
        replies.to_string(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
