use std::time::Duration;

use serde_json::json;
use siyu_connectors::{
    Connector, SendError, SmsConfig, SmsConnector, WeChatOfficialConfig, WeChatOfficialConnector,
    WeComConfig, WeComConnector,
};

use crate::support::{msg, HttpServer};

pub const SMS_OK: &str = r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8613800000000","Fee":1,"SessionContext":"","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#;

const GETTOKEN: &str = "/cgi-bin/gettoken";
const TEMPLATE: &str = "/cgi-bin/externalcontact/add_msg_template";
const TEMPLATE_OK: &str =
    r#"{"errcode":0,"errmsg":"ok","fail_list":[],"msgid":"msgGCAAAXtWyujaWJHDDGi0mAAAA"}"#;

fn token(t: &str) -> String {
    json!({"errcode": 0, "errmsg": "ok", "access_token": t, "expires_in": 7200}).to_string()
}

fn wecom(server: &HttpServer, open_kfid: Option<&str>) -> WeComConnector {
    WeComConnector::new(&WeComConfig {
        base_url: server.url(""),
        corp_id: "ww1234".into(),
        secret: "corp-secret".into(),
        sender: "zhangsan".into(),
        open_kfid: open_kfid.map(str::to_string),
        timeout_ms: 2_000,
        ..WeComConfig::default()
    })
    .expect("wecom config")
}

#[tokio::test]
async fn wecom_fetches_the_token_once_and_reuses_it() {
    let server = HttpServer::start().await;
    server.then(GETTOKEN, 200, &token("tok-1"));
    server.always(TEMPLATE, 200, Duration::ZERO, TEMPLATE_OK);
    let wecom = wecom(&server, None);
    let mut m = msg("wecom", "wmEXTERNAL1", "k1");
    m.mass = true;
    for _ in 0..2 {
        let d = wecom.send(&m).await.expect("sent");
        assert_eq!(d.remote_id.as_deref(), Some("msgGCAAAXtWyujaWJHDDGi0mAAAA"));
        assert_eq!(d.status, 200);
    }
    let tokens = server.requests(GETTOKEN);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].method, "GET");
    assert_eq!(tokens[0].query["corpid"], "ww1234");
    assert_eq!(tokens[0].query["corpsecret"], "corp-secret");
    let sends = server.requests(TEMPLATE);
    assert_eq!(sends.len(), 2);
    for s in &sends {
        assert_eq!(s.method, "POST");
        assert_eq!(s.query["access_token"], "tok-1");
        assert_eq!(
            s.json(),
            json!({
                "chat_type": "single",
                "external_userid": ["wmEXTERNAL1"],
                "sender": "zhangsan",
                "text": {"content": "您好，您的订单已发货。"},
            })
        );
    }
}

#[tokio::test]
async fn wecom_refreshes_the_token_after_42001_once() {
    let server = HttpServer::start().await;
    server
        .then(GETTOKEN, 200, &token("tok-1"))
        .then(GETTOKEN, 200, &token("tok-2"));
    server.then(
        TEMPLATE,
        200,
        r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
    );
    server.always(TEMPLATE, 200, Duration::ZERO, TEMPLATE_OK);
    let wecom = wecom(&server, None);
    wecom
        .send(&msg("wecom", "wmEXTERNAL1", "k1"))
        .await
        .expect("sent after refresh");
    wecom
        .send(&msg("wecom", "wmEXTERNAL1", "k2"))
        .await
        .expect("sent with the new token");
    assert_eq!(server.requests(GETTOKEN).len(), 2);
    let used: Vec<String> = server
        .requests(TEMPLATE)
        .iter()
        .map(|r| r.query["access_token"].clone())
        .collect();
    assert_eq!(used, ["tok-1", "tok-2", "tok-2"]);

    // A token refused twice in a row is not refreshed forever.
    server.then(
        TEMPLATE,
        200,
        r#"{"errcode":40014,"errmsg":"invalid access_token"}"#,
    );
    server.then(
        TEMPLATE,
        200,
        r#"{"errcode":40014,"errmsg":"invalid access_token"}"#,
    );
    server.then(GETTOKEN, 200, &token("tok-3"));
    let err = wecom
        .send(&msg("wecom", "wmEXTERNAL1", "k3"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert_eq!(server.requests(GETTOKEN).len(), 3);
}

#[tokio::test]
async fn wecom_errcodes_are_classified() {
    let server = HttpServer::start().await;
    server.always(GETTOKEN, 200, Duration::ZERO, &token("tok-1"));
    let wecom = wecom(&server, None);
    let m = msg("wecom", "wmEXTERNAL1", "k");
    for (errcode, retryable) in [
        (45009, true),
        (-1, true),
        (41001, false),
        (40003, false),
        (48002, false),
    ] {
        server.then(
            TEMPLATE,
            200,
            &json!({"errcode": errcode, "errmsg": "x"}).to_string(),
        );
        let err = wecom.send(&m).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{errcode}: {err}");
        assert!(
            err.detail().contains(&format!("errcode {errcode}")),
            "{err}"
        );
    }
    server.then(TEMPLATE, 503, "");
    assert!(wecom.send(&m).await.unwrap_err().is_retryable());
    server.then(
        TEMPLATE,
        200,
        r#"{"errcode":0,"errmsg":"ok","fail_list":["wmEXTERNAL1"],"msgid":"m"}"#,
    );
    let err = wecom.send(&m).await.unwrap_err();
    assert!(
        matches!(err, SendError::Permanent(ref e) if e.contains("fail_list")),
        "{err}"
    );

    // A token refused by WeCom: permanent for a bad secret, retryable when busy.
    let other = HttpServer::start().await;
    other.then(
        GETTOKEN,
        200,
        r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
    );
    other.then(GETTOKEN, 200, r#"{"errcode":-1,"errmsg":"system busy"}"#);
    let w = self::wecom(&other, None);
    assert!(matches!(w.send(&m).await, Err(SendError::Permanent(_))));
    assert!(matches!(w.send(&m).await, Err(SendError::Retryable(_))));
    assert!(other.requests(TEMPLATE).is_empty());
}

#[tokio::test]
async fn wecom_direct_message_goes_through_customer_service() {
    let server = HttpServer::start().await;
    server.then(GETTOKEN, 200, &token("tok-1"));
    server.then(
        "/cgi-bin/kf/send_msg",
        200,
        r#"{"errcode":0,"errmsg":"ok","msgid":"step-42"}"#,
    );
    let wecom = wecom(&server, Some("wkKF001"));
    let d = wecom
        .send(&msg("wecom", "wmEXTERNAL1", "step-42"))
        .await
        .expect("sent");
    assert_eq!(d.remote_id.as_deref(), Some("step-42"));
    let sent = server.requests("/cgi-bin/kf/send_msg");
    assert_eq!(sent[0].query["access_token"], "tok-1");
    assert_eq!(
        sent[0].json(),
        json!({
            "touser": "wmEXTERNAL1",
            "open_kfid": "wkKF001",
            "msgid": "step-42",
            "msgtype": "text",
            "text": {"content": "您好，您的订单已发货。"},
        })
    );
}

#[tokio::test]
async fn wechat_official_sends_custom_text_messages() {
    const SEND: &str = "/cgi-bin/message/custom/send";
    let server = HttpServer::start().await;
    server
        .then(
            "/cgi-bin/token",
            200,
            r#"{"access_token":"wx-tok-1","expires_in":7200}"#,
        )
        .then(
            "/cgi-bin/token",
            200,
            r#"{"access_token":"wx-tok-2","expires_in":7200}"#,
        );
    server.then(SEND, 200, r#"{"errcode":0,"errmsg":"ok"}"#);
    server.then(
        SEND,
        200,
        r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
    );
    server.then(SEND, 200, r#"{"errcode":0,"errmsg":"ok"}"#);
    server.then(
        SEND,
        200,
        r#"{"errcode":45015,"errmsg":"response out of time limit"}"#,
    );
    server.then(
        SEND,
        200,
        r#"{"errcode":45009,"errmsg":"reach max api daily quota limit"}"#,
    );
    let wechat = WeChatOfficialConnector::new(&WeChatOfficialConfig {
        base_url: server.url("/"),
        app_id: "wx0001".into(),
        secret: "app-secret".into(),
        timeout_ms: 2_000,
        ..WeChatOfficialConfig::default()
    })
    .unwrap();
    let m = msg("wechat", "oOPENID1", "k");
    assert_eq!(wechat.send(&m).await.unwrap().status, 200);
    wechat.send(&m).await.expect("sent after a refresh");
    assert!(matches!(
        wechat.send(&m).await,
        Err(SendError::Permanent(_))
    ));
    assert!(matches!(
        wechat.send(&m).await,
        Err(SendError::Retryable(_))
    ));

    let tokens = server.requests("/cgi-bin/token");
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].query["grant_type"], "client_credential");
    assert_eq!(tokens[0].query["appid"], "wx0001");
    assert_eq!(tokens[0].query["secret"], "app-secret");
    let sends = server.requests(SEND);
    let used: Vec<&str> = sends
        .iter()
        .map(|r| r.query["access_token"].as_str())
        .collect();
    assert_eq!(
        used,
        ["wx-tok-1", "wx-tok-1", "wx-tok-2", "wx-tok-2", "wx-tok-2"]
    );
    assert_eq!(
        sends[0].json(),
        json!({"touser": "oOPENID1", "msgtype": "text", "text": {"content": "您好，您的订单已发货。"}})
    );
}

fn sms(server: &HttpServer) -> SmsConnector {
    SmsConnector::new(&SmsConfig {
        base_url: server.url(""),
        sdk_app_id: "1400000000".into(),
        sign_name: "思语".into(),
        template_id: Some("100".into()),
        api_key: Some("sms-key".into()),
        timeout_ms: 2_000,
        ..SmsConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn sms_request_shape_and_per_number_status() {
    let server = HttpServer::start().await;
    server.then("/sms/send", 200, SMS_OK);
    let sms = sms(&server);
    let mut m = msg("sms", "+8613800000000", "sms-k1");
    m.data = json!({"template_id": 2001, "template_params": ["张三", 42]});
    let d = sms.send(&m).await.expect("sent");
    assert_eq!(
        d.remote_id.as_deref(),
        Some("5000:1045710669157053657849499619")
    );
    let r = &server.requests("/sms/send")[0];
    assert_eq!(r.header("idempotency-key"), "sms-k1");
    assert_eq!(r.header("authorization"), "Bearer sms-key");
    assert_eq!(
        r.json(),
        json!({
            "SmsSdkAppId": "1400000000",
            "SignName": "思语",
            "TemplateId": "2001",
            "PhoneNumberSet": ["+8613800000000"],
            "TemplateParamSet": ["张三", "42"],
            "SessionContext": "sms-k1",
        })
    );

    // Without template data: the configured template, the body as parameter.
    server.then("/sms/send", 200, SMS_OK);
    sms.send(&msg("sms", "+8613800000000", "sms-k2"))
        .await
        .expect("sent");
    let r = &server.requests("/sms/send")[1];
    assert_eq!(r.json()["TemplateId"], "100");
    assert_eq!(
        r.json()["TemplateParamSet"],
        json!(["您好，您的订单已发货。"])
    );

    let status = |code: &str| {
        json!({"Response": {"SendStatusSet": [{"SerialNo": "", "PhoneNumber": "+8613800000000", "Code": code, "Message": "m"}], "RequestId": "r"}}).to_string()
    };
    let m = msg("sms", "+8613800000000", "k");
    server.then(
        "/sms/send",
        200,
        &status("LimitExceeded.PhoneNumberThirtySecondLimit"),
    );
    assert!(matches!(sms.send(&m).await, Err(SendError::Retryable(_))));
    server.then(
        "/sms/send",
        200,
        &status("InvalidParameterValue.IncorrectPhoneNumber"),
    );
    assert!(matches!(sms.send(&m).await, Err(SendError::Permanent(_))));
    server.then("/sms/send", 200, r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad"},"RequestId":"r"}}"#);
    let err = sms.send(&m).await.unwrap_err();
    assert!(
        matches!(err, SendError::Permanent(ref e) if e.contains("AuthFailure")),
        "{err}"
    );
    server.then(
        "/sms/send",
        200,
        r#"{"Response":{"Error":{"Code":"InternalError.Timeout","Message":"t"},"RequestId":"r"}}"#,
    );
    assert!(matches!(sms.send(&m).await, Err(SendError::Retryable(_))));
    server.then("/sms/send", 502, "bad gateway");
    assert!(matches!(sms.send(&m).await, Err(SendError::Retryable(_))));
    server.then("/sms/send", 200, "<html>proxy</html>");
    assert!(matches!(sms.send(&m).await, Err(SendError::Retryable(_))));
}
