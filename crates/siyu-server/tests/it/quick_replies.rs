//! Quick replies (话术库) through the API: shared and personal ones,
//! search (every word, case and full-width folded), groups, faults named
//! by field, filling one in for a person, use counts, deletion.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<&str> {
    list["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn quick_replies_are_saved_found_filled_in_and_counted() {
    let app = TestApp::spawn().await;
    for (id, body) in [
        (
            "price",
            json!({"title": "价格表", "text": "{{name | default: \"亲\"}}，正价 199 元，VIP 159 元", "group": "售前", "keywords": ["多少钱"]}),
        ),
        (
            "ship",
            json!({"title": "发货时间", "text": "下单后 48 小时内发货", "group": "售前"}),
        ),
        (
            "refund",
            json!({"title": "退款流程", "text": "在订单页点「申请退款」", "group": "售后"}),
        ),
        (
            "mine",
            json!({"title": "我的开场白", "text": "我是小王", "owner": "wang"}),
        ),
    ] {
        let (s, b) = app
            .send("PUT", &format!("/v1/quick-replies/{id}"), body)
            .await;
        assert_eq!(s, StatusCode::OK, "{id}: {b}");
        assert_eq!(b["id"], id);
    }

    // Shared ones only, by group; a login adds its own.
    let (s, list) = app.get("/v1/quick-replies").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), ["price", "ship", "refund"]);
    assert_eq!(list["groups"], json!(["售前", "售后"]));
    let (_, list) = app.get("/v1/quick-replies?owner=wang").await;
    assert_eq!(ids(&list), ["mine", "price", "ship", "refund"]);
    let (_, list) = app.get("/v1/quick-replies?owner=li").await;
    assert_eq!(ids(&list), ["price", "ship", "refund"]);
    let (_, list) = app.get("/v1/quick-replies?all=true").await;
    assert_eq!(list["quick_replies"].as_array().unwrap().len(), 4);

    // Search: a keyword, full-width letters, every word must occur.
    let q = |s: &str| format!("/v1/quick-replies?q={}", urlencode(s));
    let (_, list) = app.get(&q("多少钱")).await;
    assert_eq!(ids(&list), ["price"]);
    let (_, list) = app.get(&q("ｖｉｐ")).await;
    assert_eq!(ids(&list), ["price"]);
    let (_, list) = app.get(&q("售前 48")).await;
    assert_eq!(ids(&list), ["ship"]);
    let (_, list) = app.get("/v1/quick-replies?group=%E5%94%AE%E5%90%8E").await;
    assert_eq!(ids(&list), ["refund"]);

    // Filled in for a person, counted; the most used comes first.
    let (s, b) = app
        .post_events(r#"[{"ts": 1790000000, "identity": "wecom:wmQ1", "type": "identify", "traits": {"name": "张三"}}]"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, used) = app
        .send(
            "POST",
            "/v1/quick-replies/ship/use",
            json!({"person": "wecom:wmQ1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{used}");
    assert_eq!(used["uses"], 1);
    let (s, used) = app
        .send(
            "POST",
            "/v1/quick-replies/price/use",
            json!({"person": "wecom:wmQ1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{used}");
    assert_eq!(used["text"], "张三，正价 199 元，VIP 159 元");
    assert_eq!(used["person"], "wecom:wmQ1");
    let (_, used) = app
        .send(
            "POST",
            "/v1/quick-replies/ship/use",
            json!({"person": "wecom:wmQ1"}),
        )
        .await;
    assert_eq!(used["uses"], 2);
    let (_, list) = app.get("/v1/quick-replies").await;
    assert_eq!(ids(&list), ["ship", "price", "refund"], "售前 by uses");
    assert_eq!(list["quick_replies"][0]["uses"], 2);

    // Unknown person or reply: 404 with the fix.
    let (s, b) = app
        .send(
            "POST",
            "/v1/quick-replies/ship/use",
            json!({"person": "wecom:nobody"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _) = app
        .send(
            "POST",
            "/v1/quick-replies/nope/use",
            json!({"person": "wecom:wmQ1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Deleted with its count.
    let (s, b) = app.send("DELETE", "/v1/quick-replies/ship", "").await;
    assert_eq!((s, &b["deleted"]), (StatusCode::OK, &json!(true)), "{b}");
    let (s, _) = app.send("DELETE", "/v1/quick-replies/ship", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/quick-replies").await;
    assert_eq!(ids(&list), ["price", "refund"]);
    let (_, b) = app
        .send(
            "PUT",
            "/v1/quick-replies/ship",
            json!({"title": "发货", "text": "x", "group": "售前"}),
        )
        .await;
    assert_eq!(b["id"], "ship");
    let (_, list) = app.get(&q("发货")).await;
    assert_eq!(
        list["quick_replies"][0]["uses"], 0,
        "a new reply starts at 0"
    );
}

#[tokio::test]
async fn bad_quick_replies_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"title": "", "text": "x"}), "title:"),
        (
            json!({"title": "t", "text": "{{ name "}),
            "text: line 1 column",
        ),
        (
            json!({"title": "t", "text": "x", "keywords": [""]}),
            "keywords[0]:",
        ),
        (json!({"title": "t", "text": "x", "owner": "a/b"}), "owner:"),
        (json!({"title": "t", "text": "x", "id": "other"}), "id:"),
        (
            json!({"title": "t", "text": "x", "colour": "red"}),
            "unknown field `colour`",
        ),
        (json!({"title": "t"}), "missing field `text`"),
    ] {
        let (s, b) = app.send("PUT", "/v1/quick-replies/q1", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (s, b) = app
        .send("PUT", "/v1/quick-replies/q1", "[\"t\", \"x\"]")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let long = "字".repeat(201);
    let (s, b) = app
        .get(&format!("/v1/quick-replies?q={}", urlencode(&long)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.get("/v1/quick-replies?owner=").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("owner:"), "{b}");
    let (_, list) = app.get("/v1/quick-replies").await;
    assert_eq!(list["quick_replies"], json!([]), "nothing was saved");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}
