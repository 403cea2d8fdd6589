//! WeChat Official Accounts: the callbacks (plaintext signature, safe
//! mode through the one WXBizMsgCrypt implementation with the appid as
//! receiver, and what each documented callback XML means), template
//! messages and parametric QR codes against a local server speaking the
//! documented shapes (including a stale token refreshed on 42001), and
//! Tencent Cloud SMS requests signed with TC3-HMAC-SHA256.

use serde_json::json;
use siyu_connectors::wechat::callback::{map_callback, signature, signature_matches, Scene};
use siyu_connectors::wechat::{TemplateMessage, WeChatOfficialConfig, WeChatOfficialConnector};
use siyu_connectors::wecom::callback::CallbackXml;
use siyu_connectors::wecom::crypto::{CallbackCrypto, CryptoError};
use siyu_connectors::{Connector, SendError, SmsConfig, SmsConnector};
use siyu_domain::wire::to_json;
use siyu_domain::EventType;

use crate::support::{msg, HttpServer};
use crate::tencent::SMS_OK;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APPID: &str = "wx5823bf96d3bd56c7";

fn oa_xml(body: &str) -> CallbackXml {
    CallbackXml::parse(&format!(
        "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[oFOLLOWER1]]></FromUserName><CreateTime>1700000000</CreateTime>{body}</xml>"
    ))
    .expect("documented XML parses")
}

#[test]
fn the_plaintext_signature_is_the_sha1_of_the_sorted_three() {
    // sha1("1409304348" + "xxxxxx" + "spamtest") sorted byte-wise: the
    // three strings sort as timestamp, nonce? No: digits sort first.
    let sig = signature("spamtest", "1409304348", "xxxxxx");
    let mut parts = ["spamtest", "1409304348", "xxxxxx"];
    parts.sort();
    assert_eq!(parts, ["1409304348", "spamtest", "xxxxxx"]);
    use sha1_check::sha1_hex;
    assert_eq!(sig, sha1_hex("1409304348spamtestxxxxxx"));
    assert!(signature_matches(
        "spamtest",
        "1409304348",
        "xxxxxx",
        &sig.to_uppercase()
    ));
    assert!(!signature_matches("spamtest", "1409304349", "xxxxxx", &sig));
}

mod sha1_check {
    /// SHA-1 by the system's `sha1sum`, independent of the code under test.
    pub fn sha1_hex(s: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha1sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha1sum");
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()[..40].to_string()
    }
}

#[test]
fn safe_mode_is_wxbizmsgcrypt_with_the_appid_as_receiver() {
    let cfg = WeChatOfficialConfig {
        app_id: APPID.into(),
        secret: "s".into(),
        token: "QDG6eK".into(),
        encoding_aes_key: KEY.into(),
        ..WeChatOfficialConfig::default()
    };
    let settings = cfg.callback().unwrap().expect("configured");
    let crypto = settings.crypto.expect("safe mode");
    assert_eq!(crypto.receiver_id(), APPID);
    // WeCom's sample vector: the same scheme, the receiver id happens to
    // be this appid-shaped id, so Tencent's ciphertext opens here too.
    let plain = crypto
        .open(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "1409659589",
            "263014780",
            "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        )
        .unwrap();
    assert_eq!(plain, "1616140317555161061");
    // Another account's message: named by the app_id setting.
    let other =
        CallbackCrypto::for_receiver("wechat", "app_id", "QDG6eK", KEY, "wx0000000000000000")
            .unwrap();
    let e = other
        .open(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "1409659589",
            "263014780",
            "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        )
        .unwrap_err();
    assert!(matches!(
        e,
        CryptoError::WrongReceiver {
            field: "app_id",
            ..
        }
    ));
    assert!(e.to_string().contains("not the configured app_id"), "{e}");
    // A key without a token, a bad key: named.
    let e = WeChatOfficialConfig {
        encoding_aes_key: KEY.into(),
        ..WeChatOfficialConfig::default()
    }
    .callback()
    .unwrap_err();
    assert!(e.to_string().contains("wechat.token"), "{e}");
    let e = WeChatOfficialConfig {
        app_id: APPID.into(),
        token: "t".into(),
        encoding_aes_key: "short".into(),
        ..WeChatOfficialConfig::default()
    }
    .callback()
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("wechat.encoding_aes_key is invalid"),
        "{e}"
    );
    // Plaintext mode: a token alone.
    let plain_mode = WeChatOfficialConfig {
        token: "t".into(),
        ..WeChatOfficialConfig::default()
    }
    .callback()
    .unwrap()
    .unwrap();
    assert!(plain_mode.crypto.is_none());
}

#[test]
fn subscribe_from_a_siyu_qr_is_a_follow_with_its_source() {
    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_channel:xiaohongshu]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
    ))
    .unwrap();
    assert_eq!(m.kind, "event/subscribe");
    assert_eq!(m.events.len(), 2, "the source's touch and the follow");
    let touch = to_json(&m.events[0]);
    assert_eq!(touch["type"], "touch");
    assert_eq!(touch["channel"], "xiaohongshu");
    assert_eq!(m.events[0].ts, 1_699_999_999);
    let follow = to_json(&m.events[1]);
    assert_eq!(follow["type"], "follow");
    assert_eq!(follow["identity"], "wechat:oFOLLOWER1");
    assert_eq!(follow["channel"], "wechat");
    assert_eq!(follow["properties"]["scene"], "channel:xiaohongshu");
    assert_eq!(follow["properties"]["source"], "xiaohongshu");
    assert_eq!(follow["properties"]["ticket"], "TICKET");

    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_campaign:spring]]></EventKey>",
    ))
    .unwrap();
    assert_eq!(m.events.len(), 1);
    assert_eq!(to_json(&m.events[0])["properties"]["campaign"], "spring");

    // A plain subscribe (search, a shared card): a follow, no scene.
    let plain = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>",
    ))
    .unwrap();
    assert_eq!(plain.events.len(), 1);
    assert!(plain.events[0].properties.is_none());
    // The same callback again: the same ids.
    let again = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>",
    ))
    .unwrap();
    assert_eq!(plain.events[0].id, again.events[0].id);
}

#[test]
fn unsubscribe_scan_and_text() {
    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event><EventKey><![CDATA[]]></EventKey>",
    ))
    .unwrap();
    assert_eq!(m.events[0].event_type, EventType::Custom);
    assert_eq!(m.events[0].name.as_deref(), Some("unfollow"));

    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[campaign:spring]]></EventKey><Ticket><![CDATA[T2]]></Ticket>",
    ))
    .unwrap();
    let scan = to_json(&m.events[0]);
    assert_eq!(scan["type"], "touch");
    assert_eq!(scan["channel"], "wechat");
    assert_eq!(scan["properties"]["scene"], "campaign:spring");
    assert_eq!(scan["properties"]["campaign"], "spring");

    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[多少钱]]></Content><MsgId>1234567890123456</MsgId>",
    ))
    .unwrap();
    let text = to_json(&m.events[0]);
    assert_eq!(text["type"], "comment");
    assert_eq!(text["text"], "多少钱");
    assert_eq!(text["properties"]["msgid"], "1234567890123456");

    let m = map_callback(&oa_xml(
        "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x]]></PicUrl><MsgId>1</MsgId>",
    ))
    .unwrap();
    assert!(m.events.is_empty() && m.note.is_some());
    let e = map_callback(&oa_xml("<MsgType><![CDATA[text]]></MsgType>")).unwrap_err();
    assert!(e.to_string().contains("Content"), "{e}");
}

#[test]
fn scenes_round_trip_and_foreign_ones_are_not_siyus() {
    for s in [
        Scene::Campaign("spring".into()),
        Scene::Channel("douyin".into()),
    ] {
        assert_eq!(Scene::decode(&s.encode()), Some(s));
    }
    assert_eq!(Scene::decode("123"), None);
    assert_eq!(Scene::decode("channel:NOT A CHANNEL"), None);
}

fn oa(server: &HttpServer) -> WeChatOfficialConnector {
    WeChatOfficialConnector::new(&WeChatOfficialConfig {
        base_url: server.url(""),
        app_id: APPID.into(),
        secret: "app-secret".into(),
        timeout_ms: 2_000,
        ..WeChatOfficialConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn template_messages_and_qr_codes_use_the_documented_shapes() {
    let server = HttpServer::start().await;
    server
        .then(
            "/cgi-bin/token",
            200,
            r#"{"access_token":"T1","expires_in":7200}"#,
        )
        .then(
            "/cgi-bin/token",
            200,
            r#"{"access_token":"T2","expires_in":7200}"#,
        );
    const TPL: &str = "/cgi-bin/message/template/send";
    server.then(
        TPL,
        200,
        r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
    );
    server.then(TPL, 200, r#"{"errcode":0,"errmsg":"ok","msgid":200228332}"#);
    let wechat = oa(&server);
    let mut m = msg("wechat", "oFOLLOWER1", "k-tpl");
    m.wechat_template = Some(TemplateMessage {
        template_id: "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY".into(),
        data: serde_json::from_value(json!({"first": "您的订单已发货", "keyword1": "SY2026"}))
            .unwrap(),
        url: Some("https://shop.example.com/o/1".into()),
    });
    let d = wechat.send(&m).await.expect("sent after the refresh");
    assert_eq!(d.remote_id.as_deref(), Some("200228332"));
    let sent = server.requests(TPL);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].query["access_token"], "T1");
    assert_eq!(sent[1].query["access_token"], "T2");
    assert_eq!(
        sent[1].json(),
        json!({
            "touser": "oFOLLOWER1",
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "url": "https://shop.example.com/o/1",
            "data": {"first": {"value": "您的订单已发货"}, "keyword1": {"value": "SY2026"}},
        })
    );
    assert!(server.requests("/cgi-bin/message/custom/send").is_empty());

    const QR: &str = "/cgi-bin/qrcode/create";
    server.then(QR, 200, r#"{"ticket":"gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==","expire_seconds":604800,"url":"http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI"}"#);
    server.then(
        QR,
        200,
        r#"{"ticket":"PERM","url":"http://weixin.qq.com/q/perm"}"#,
    );
    server.then(QR, 200, r#"{"errcode":40013,"errmsg":"invalid appid"}"#);
    let temp = wechat
        .create_qrcode("campaign:spring", Some(604_800))
        .await
        .unwrap();
    assert_eq!(temp.expire_seconds, Some(604_800));
    assert_eq!(temp.url, "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI");
    assert!(temp
        .image_url
        .starts_with("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH47jo"));
    assert!(temp.image_url.ends_with("%3D%3D"));
    let perm = wechat.create_qrcode("channel:douyin", None).await.unwrap();
    assert_eq!((perm.ticket.as_str(), perm.expire_seconds), ("PERM", None));
    let reqs = server.requests(QR);
    assert_eq!(
        reqs[0].json(),
        json!({"expire_seconds": 604800, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "campaign:spring"}}})
    );
    assert_eq!(
        reqs[1].json(),
        json!({"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "channel:douyin"}}})
    );
    let e = wechat
        .create_qrcode("channel:douyin", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SendError::Permanent(ref m) if m.contains("40013")),
        "{e}"
    );
    assert!(wechat.create_qrcode(&"x".repeat(65), None).await.is_err());
}

#[tokio::test]
async fn tencent_cloud_sms_is_tc3_signed_send_sms() {
    let server = HttpServer::start().await;
    server.then("/", 200, SMS_OK);
    let sms = SmsConnector::new(&SmsConfig {
        provider: "tencent".into(),
        base_url: server.url(""),
        sdk_app_id: "1400006666".into(),
        sign_name: "思语".into(),
        template_id: Some("449739".into()),
        secret_id: "AKIDtest".into(),
        secret_key: "tc-secret".into(),
        region: "ap-guangzhou".into(),
        timeout_ms: 2_000,
        ..SmsConfig::default()
    })
    .unwrap();
    let mut m = msg("sms", "+8613800000000", "sms-k1");
    m.data = json!({"template_params": ["1234", 5]});
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let d = sms.send(&m).await.expect("sent");
    assert_eq!(
        d.remote_id.as_deref(),
        Some("5000:1045710669157053657849499619")
    );
    let r = &server.requests("/")[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    assert_eq!(r.header("x-tc-action"), "SendSms");
    assert_eq!(r.header("x-tc-version"), "2021-01-11");
    assert_eq!(r.header("x-tc-region"), "ap-guangzhou");
    let host = r.header("host").to_string();
    assert_eq!(host, server.addr.to_string());
    let ts: i64 = r.header("x-tc-timestamp").parse().unwrap();
    assert!((before..=before + 5).contains(&ts));
    assert_eq!(
        r.json(),
        json!({
            "SmsSdkAppId": "1400006666", "SignName": "思语", "TemplateId": "449739",
            "PhoneNumberSet": ["+8613800000000"], "TemplateParamSet": ["1234", "5"],
            "SessionContext": "sms-k1",
        })
    );
    // The server side of TC3: the signature over what arrived.
    let expected =
        siyu_connectors::tc3::authorization("AKIDtest", "tc-secret", "sms", &host, &r.body, ts);
    assert_eq!(r.header("authorization"), expected);
    assert!(expected.starts_with(&format!(
        "TC3-HMAC-SHA256 Credential=AKIDtest/{}/sms/tc3_request, SignedHeaders=content-type;host, Signature=",
        siyu_connectors::tc3::utc_date(ts)
    )));
    assert!(r.headers.get("idempotency-key").is_none());

    // Tencent's errors keep their classes.
    server.then("/", 200, r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"r"}}"#);
    assert!(
        matches!(sms.send(&m).await, Err(SendError::Permanent(ref e)) if e.contains("AuthFailure"))
    );

    // Missing credentials and unknown providers are named.
    for (cfg, says) in [
        (
            SmsConfig {
                provider: "tencent".into(),
                sdk_app_id: "1".into(),
                sign_name: "s".into(),
                ..SmsConfig::default()
            },
            "sms.secret_id",
        ),
        (
            SmsConfig {
                provider: "aliyun".into(),
                sdk_app_id: "1".into(),
                sign_name: "s".into(),
                ..SmsConfig::default()
            },
            "sms.provider",
        ),
    ] {
        let e = SmsConnector::new(&cfg).err().expect("refused").to_string();
        assert!(e.contains(says), "{e}");
    }
}
