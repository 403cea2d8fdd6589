//! The console's channel pages through their API (`/v1/channels`): each
//! channel's callback URL with the last accepted and rejected callback,
//! its token health (a local server stands in for WeCom), the problems
//! that make its health, and callback activity shared between nodes
//! through the settings.

use crate::wecom::{add_contact_xml, callback_request, post, wecom_app, wecom_config, CORP};
use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

fn problem_codes(status: &Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wecom_page_shows_callbacks_accepted_and_refused_and_the_token() {
    let (app, _fake) = wecom_app().await;
    let (s, wecom) = app.get("/v1/channels/wecom").await;
    assert_eq!(s, StatusCode::OK, "{wecom}");
    assert_eq!(wecom["configured"], true);
    assert_eq!(wecom["health"], "ok", "{wecom}");
    assert_eq!(wecom["settings"]["corp_id"], CORP);
    assert!(
        !wecom.to_string().contains("corp-secret"),
        "never a secret: {wecom}"
    );
    let callback = &wecom["callbacks"][0];
    assert_eq!(callback["kind"], "events");
    assert!(
        callback["url"]
            .as_str()
            .unwrap()
            .ends_with("/callbacks/wecom"),
        "{callback}"
    );
    assert_eq!(callback["accepted"], 0);
    assert_eq!(callback["last_accepted_at"], Value::Null);
    assert_eq!(wecom["token"]["state"], "not_fetched", "{wecom}");

    let now = siyu_server::writer::wall_clock();
    let (uri, body) = callback_request(
        "/callbacks/wecom",
        &add_contact_xml("wmChannelPage", "", now),
        CORP,
        now,
    );
    let (s, b) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, wecom) = app.get("/v1/channels/wecom").await;
    let callback = &wecom["callbacks"][0];
    assert_eq!(callback["accepted"], 1, "{wecom}");
    assert_eq!(
        callback["last_kind"],
        "change_external_contact/add_external_contact"
    );
    assert!(callback["last_accepted_at"].as_i64().unwrap() >= now);
    assert_eq!(wecom["health"], "ok", "{wecom}");

    // A wrong token in WeCom's console: every callback is refused, and the
    // page says so with siyu's answer.
    let tampered = uri.replacen("msg_signature=", "msg_signature=0", 1);
    let (s, _) = post(&app, &tampered, &body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, wecom) = app.get("/v1/channels/wecom").await;
    let callback = &wecom["callbacks"][0];
    assert_eq!(callback["rejected"], 1, "{wecom}");
    let reason = callback["last_rejection"].as_str().unwrap();
    assert!(
        reason.starts_with("401: ") && reason.contains("msg_signature"),
        "{reason}"
    );
    assert_eq!(wecom["health"], "error", "{wecom}");
    assert_eq!(problem_codes(&wecom), ["callback_rejected"]);

    // A callback accepted after it: healthy again.
    let (uri, body) = callback_request(
        "/callbacks/wecom",
        &add_contact_xml("wmChannelPage2", "", now),
        CORP,
        now,
    );
    let (s, _) = post(&app, &uri, &body).await;
    assert_eq!(s, StatusCode::OK);
    let (_, wecom) = app.get("/v1/channels/wecom").await;
    assert_eq!(wecom["health"], "ok", "{wecom}");
    assert_eq!(wecom["callbacks"][0]["accepted"], 2);

    // The token check asks WeCom for a token now.
    let (s, checked) = app.send("POST", "/v1/channels/wecom/check", "").await;
    assert_eq!(s, StatusCode::OK, "{checked}");
    let token = &checked["token"];
    assert_eq!(token["state"], "valid", "{checked}");
    assert_eq!(token["fetches"], 1);
    let fetched = token["fetched_at"].as_i64().unwrap();
    let expires = token["expires_at"].as_i64().unwrap();
    // 7200 s, refreshed 300 s early.
    assert_eq!(expires - fetched, 6900, "{token}");

    // The list holds every built-in channel, this one configured.
    let (s, all) = app.get("/v1/channels").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let names: Vec<&str> = all["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wecom", "wechat", "sms", "email", "webhook"]);
    assert_eq!(all["channels"][1]["health"], "not_configured");
}

/// A secret WeCom refuses: the check answers the status with the token
/// `failing` and WeCom's errcode, the channel's health `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_shows_as_a_failing_token() {
    let app = axum::Router::new().fallback(|| async {
        axum::Json(json!({"errcode": 40001, "errmsg": "invalid credential"}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let app = TestApp::spawn_with(Backend::Sqlite, 1 << 20, |c| {
        let mut w = wecom_config(url);
        // No callbacks: the page says what to add.
        w.token = siyu_connectors::Secret::new("");
        w.encoding_aes_key = siyu_connectors::Secret::new("");
        c.connectors.wecom = Some(w);
    })
    .await;
    let (_, wecom) = app.get("/v1/channels/wecom").await;
    assert_eq!(wecom["health"], "attention", "{wecom}");
    assert_eq!(problem_codes(&wecom), ["callbacks_not_configured"]);
    assert_eq!(wecom["callbacks"], json!([]));

    let (s, checked) = app.send("POST", "/v1/channels/wecom/check", "").await;
    assert_eq!(s, StatusCode::OK, "{checked}");
    assert_eq!(checked["token"]["state"], "failing", "{checked}");
    let error = checked["token"]["last_error"].as_str().unwrap();
    assert!(error.contains("40001"), "{error}");
    assert_eq!(checked["health"], "error");
    assert_eq!(
        problem_codes(&checked),
        ["callbacks_not_configured", "token_failing"]
    );
}

/// Unknown channels are 404 naming the built-in ones; a channel without a
/// token cannot be checked (400); an unconfigured one is 404.
#[tokio::test]
async fn channels_that_are_not_there_are_refused_with_the_fix() {
    let app = TestApp::spawn().await;
    let (s, b) = app.get("/v1/channels/myspace").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("wecom, wechat"),
        "{b}"
    );
    let (s, b) = app.send("POST", "/v1/channels/email/check", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.send("POST", "/v1/channels/wecom/check", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("[connectors.wecom]"));
}

/// An inbound webhook channel has its page: its URL, and a request with a
/// bad signature counted as refused. What one node counted reaches the
/// other through the settings (flushed every few seconds; here at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_channels_and_activity_shared_between_nodes() {
    let Some(_) = crate::pg_url() else {
        eprintln!("SKIPPED: SIYU_TEST_DATABASE_URL is not set");
        return;
    };
    let a = TestApp::spawn_with(Backend::Postgres, 1 << 20, |c| {
        c.inbound_secrets
            .insert("douyin".into(), "inbound-secret".into());
    })
    .await;
    let b = a.peer().await;
    let ts = siyu_server::writer::wall_clock();
    let body =
        r#"[{"identity": "douyin:dy1", "type": "comment", "properties": {"text": "多少钱"}}]"#;
    let sig = siyu_connectors::sign_inbound(b"inbound-secret", "default", ts, body.as_bytes());
    let signed = |sig: &str| {
        axum::http::Request::builder()
            .method("POST")
            .uri("/v1/inbound/douyin")
            .header("content-type", "application/json")
            .header("x-siyu-timestamp", ts.to_string())
            .header("x-siyu-signature", sig)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    use tower::ServiceExt;
    let resp = siyu_server::app(a.state.clone())
        .oneshot(signed(&sig))
        .await
        .unwrap();
    let status = resp.status();
    let answer = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(status, StatusCode::OK, "{answer:?}");
    let resp = siyu_server::app(a.state.clone())
        .oneshot(signed("sha256=00"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let (s, douyin) = a.get("/v1/channels/douyin").await;
    assert_eq!(s, StatusCode::OK, "{douyin}");
    assert_eq!(douyin["configured"], true);
    let callback = &douyin["callbacks"][0];
    assert!(callback["url"]
        .as_str()
        .unwrap()
        .ends_with("/v1/inbound/douyin"));
    assert_eq!(
        (callback["accepted"].as_u64(), callback["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(douyin["health"], "error", "the last request was refused");

    // Node B saw nothing itself; once A has flushed, B shows A's counts.
    let (_, before) = b.get("/v1/channels/douyin").await;
    assert_eq!(before["callbacks"][0]["accepted"], 0, "{before}");
    siyu_server::channels::flush(&a.state).await;
    let (_, after) = b.get("/v1/channels/douyin").await;
    assert_eq!(after["callbacks"][0]["accepted"], 1, "{after}");
    assert_eq!(after["callbacks"][0]["rejected"], 1, "{after}");
    assert_eq!(
        after["callbacks"][0]["last_rejection"],
        douyin["callbacks"][0]["last_rejection"]
    );
    // A's own page does not count its stored row twice.
    siyu_server::channels::flush(&a.state).await;
    let (_, again) = a.get("/v1/channels/douyin").await;
    assert_eq!(again["callbacks"][0]["accepted"], 1, "{again}");
}
