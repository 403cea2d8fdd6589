//! Sensitive-word rules (会话合规) through the API: saved whole and
//! checked before saving (faults name `rules[i].field`), a text checked
//! against them, customers' comments flagged on their way in through a
//! channel's webhook, operators' quick replies answered with the rules
//! their text hits.

use crate::{Backend, TestApp};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

fn rules() -> Value {
    json!({"rules": [
        {"id": "transfer", "matcher": {"contains": "私下转账"}, "applies_to": "operator", "category": "私下交易"},
        {"id": "wechat", "matcher": {"regex": "加(我|个)?(个人)?(微信|vx|wx)"}, "applies_to": "operator", "category": "私下交易"},
        {"id": "complaint", "matcher": {"any_of": ["投诉", "12315"]}, "applies_to": "customer", "category": "投诉"}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_flag_customers_comments_and_operators_replies() {
    let app = TestApp::spawn_with(Backend::Sqlite, 1 << 20, |c| {
        c.inbound_secrets
            .insert("douyin".into(), "inbound-secret".into());
    })
    .await;
    let (s, b) = app.send("PUT", "/v1/sensitive-words", rules()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, got) = app.get("/v1/sensitive-words").await;
    assert_eq!(got["rules"].as_array().unwrap().len(), 3, "{got}");
    assert_eq!(got["rules"][0]["enabled"], true);

    // A text checked, as whoever writes it.
    let check = |text: &str, speaker: &str| json!({"text": text, "speaker": speaker});
    let (s, b) = app
        .send(
            "POST",
            "/v1/sensitive-words/check",
            check("加我个人ＶＸ，私下转账更便宜", "operator"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<&str> = b["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["transfer", "wechat"]);
    assert_eq!(b["hits"][0]["category"], "私下交易");
    let (_, b) = app
        .send(
            "POST",
            "/v1/sensitive-words/check",
            check("私下转账", "customer"),
        )
        .await;
    assert_eq!(
        b["hits"],
        json!([]),
        "an operator rule does not watch customers"
    );

    // Customers' comments through the Douyin webhook: the one that hits is flagged.
    let ts = siyu_server::writer::wall_clock();
    let body = json!([
        {"id": "dy-c1", "identity": "douyin:dy_s1", "type": "comment", "text": "再不退款我就去12315投诉"},
        {"id": "dy-c2", "identity": "douyin:dy_s1", "type": "comment", "text": "多少钱"}
    ])
    .to_string();
    let sig = siyu_connectors::sign_inbound(b"inbound-secret", "default", ts, body.as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/inbound/douyin")
        .header("content-type", "application/json")
        .header("x-siyu-timestamp", ts.to_string())
        .header("x-siyu-signature", sig)
        .body(Body::from(body))
        .unwrap();
    let resp = siyu_server::app(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, timeline) = app.get("/v1/persons/douyin:dy_s1/timeline").await;
    let by_id = |id: &str| -> Value {
        timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].clone())
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {timeline}"))
    };
    assert_eq!(
        by_id("dy-c1")["properties"]["sensitive"],
        json!(["complaint"])
    );
    assert_eq!(by_id("dy-c2")["properties"]["sensitive"], Value::Null);

    // An operator's quick reply is saved, with the rules its text hits.
    let (s, b) = app
        .send(
            "PUT",
            "/v1/quick-replies/offline",
            json!({"title": "加微信", "text": "加我微信，私下聊"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["sensitive"][0]["id"], "wechat", "{b}");
    let (_, b) = app
        .send(
            "PUT",
            "/v1/quick-replies/hello",
            json!({"title": "问候", "text": "您好"}),
        )
        .await;
    assert_eq!(b["sensitive"], json!([]));
}

#[tokio::test]
async fn bad_rules_are_refused_naming_the_rule_and_field_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let (s, _) = app.send("PUT", "/v1/sensitive-words", rules()).await;
    assert_eq!(s, StatusCode::OK);
    for (body, says) in [
        (
            json!({"rules": [{"id": "a", "matcher": {"contains": "x"}}, {"id": "a", "matcher": {"contains": "y"}}]}),
            "rules[1].id",
        ),
        (
            json!({"rules": [{"id": "r", "matcher": {"regex": "("}}]}),
            "rules[0].matcher.regex",
        ),
        (
            json!({"rules": [{"id": "r", "matcher": {"contains": " "}}]}),
            "rules[0].matcher.contains",
        ),
        (
            json!({"rules": [{"id": "r", "matcher": {"contains": "x"}, "applies_to": "boss"}]}),
            "unknown variant `boss`",
        ),
        (
            json!({"rules": [{"id": "r", "matcher": {"contains": "x"}, "colour": 1}]}),
            "unknown field `colour`",
        ),
    ] {
        let (s, b) = app.send("PUT", "/v1/sensitive-words", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert!(b["message"].as_str().unwrap().contains(says), "{body}: {b}");
    }
    let (_, got) = app.get("/v1/sensitive-words").await;
    assert_eq!(
        got["rules"].as_array().unwrap().len(),
        3,
        "the saved rules stand"
    );
    let long = "字".repeat(2000);
    let (s, b) = app
        .send("POST", "/v1/sensitive-words/check", json!({"text": long}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}
