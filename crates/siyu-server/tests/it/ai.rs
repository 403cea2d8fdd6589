//! `POST /v1/ai/classify`: a customer message's intent, offline, with its
//! confidence and the alternatives; the text 1–4096 bytes, else a 422
//! naming `text`; a key with read scope needed.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_answers_an_intent_and_names_text_when_it_is_wrong() {
    let app = TestApp::spawn().await;
    for (text, want) in [
        ("这个多少钱？", "price"),
        ("ｚｌ发我一下🙏", "ask_material"),
        ("快递到哪了", "after_sales"),
        ("TD", "opt_out"),
        ("unsubscribe", "opt_out"),
    ] {
        let (s, b) = app
            .send("POST", "/v1/ai/classify", json!({ "text": text }))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["intent"], want, "{text}: {b}");
        let c = b["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0, "{b}");
        for a in b["alternatives"].as_array().unwrap() {
            assert_ne!(a["intent"], b["intent"], "{b}");
            assert!(a["p"].as_f64().unwrap() <= c, "{b}");
        }
    }

    for body in [
        json!({}),
        json!({ "text": "" }),
        json!({ "text": "多".repeat(2000) }),
        json!({ "text": 5 }),
    ] {
        let (s, b) = app.send("POST", "/v1/ai/classify", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert!(b["message"].as_str().unwrap().contains("text"), "{b}");
    }
    let (s, _) = app
        .send(
            "POST",
            "/v1/ai/classify",
            json!({ "text": "a", "extra": 1 }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, _) = app
        .call(
            "POST",
            "/v1/ai/classify",
            None,
            "application/json",
            json!({ "text": "多少钱" }).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
