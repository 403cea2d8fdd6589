//! Workspaces: two brands behind one router, each with its own store,
//! keys and persons; requests routed by header or host.

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use siyu_server::workspace::{dispatch, Workspaces};

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = dispatch(router, req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn req(method: &str, uri: &str, key: &str, extra: (&str, &str), body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header(extra.0, extra.1)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brands_are_isolated_and_routed_by_header_or_host() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let router = Workspaces::new(
        a.state.clone(),
        vec![(
            "brand_b".into(),
            Some("b.example.com".into()),
            b.state.clone(),
        )],
    )
    .router();
    let ev = r#"{"ts": 1790000000, "identity": "wecom:only_b", "type": "add_friend"}"#;
    // Brand B's key writes to brand B, by header.
    let (s, _) = call(
        &router,
        req(
            "POST",
            "/v1/events",
            &b.key,
            ("x-siyu-workspace", "brand_b"),
            ev,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Brand A's key is not a key of brand B.
    let (s, _) = call(
        &router,
        req(
            "POST",
            "/v1/events",
            &a.key,
            ("x-siyu-workspace", "brand_b"),
            ev,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The person exists in B (reached by host), not in A (the default).
    let (s, _) = call(
        &router,
        req(
            "GET",
            "/v1/persons/wecom:only_b",
            &b.key,
            ("host", "b.example.com:8080"),
            "",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &router,
        req(
            "GET",
            "/v1/persons/wecom:only_b",
            &a.key,
            ("host", "a.example.com"),
            "",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Each says which workspace it is; an unknown one does not list the
    // others (brands on one server do not learn of each other).
    let (_, w) = call(
        &router,
        req("GET", "/v1/workspace", &a.key, ("x-unused", "1"), ""),
    )
    .await;
    assert_eq!(w["workspace"], "default");
    let (s, e) = call(
        &router,
        req(
            "GET",
            "/v1/workspace",
            &a.key,
            ("x-siyu-workspace", "brand_c"),
            "",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("X-Siyu-Workspace"), "{e}");
    assert!(
        !message.contains("brand_b") && !message.contains("default"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_request_signed_for_one_workspace_fails_at_another() {
    // Both brands share the douyin secret (brand B inherits the main one).
    let with_secret = |name: &'static str| {
        move |c: &mut siyu_server::config::Config| {
            c.workspace = name.into();
            c.inbound_secrets.insert("douyin".into(), "shared".into());
        }
    };
    let a = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, with_secret("default")).await;
    let b = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, with_secret("brand_b")).await;
    let router = Workspaces::new(
        a.state.clone(),
        vec![("brand_b".into(), None, b.state.clone())],
    )
    .router();
    let body = r#"{"identity": "douyin:w1", "type": "comment", "text": "hi"}"#;
    let ts = siyu_server::writer::wall_clock();
    let signed = |ws: &str, to: &str| {
        Request::builder()
            .method("POST")
            .uri("/v1/inbound/douyin")
            .header("content-type", "application/json")
            .header("x-siyu-workspace", to)
            .header("x-siyu-timestamp", ts.to_string())
            .header(
                "x-siyu-signature",
                siyu_connectors::sign_inbound(b"shared", ws, ts, body.as_bytes()),
            )
            .body(Body::from(body))
            .unwrap()
    };
    // Made for the default workspace, replayed at brand B: refused.
    let (s, v) = call(&router, signed("default", "brand_b")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = call(&router, signed("default", "default")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(&router, signed("brand_b", "brand_b")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
