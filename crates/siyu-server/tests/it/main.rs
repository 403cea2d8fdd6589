//! Server tests, in process: the router with a real SQLite (or PostgreSQL,
//! when SIYU_TEST_DATABASE_URL is set) store in a fresh directory, driven
//! with `oneshot` requests.

mod ingest;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use siyu_server::config::Config;
use siyu_server::{app, AppState, Application};
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;

pub struct TestApp {
    pub state: AppState,
    pub key: String,
    pub dir: std::path::PathBuf,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "siyu-server-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::remove_dir_all(&dir).ok();
        let config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            admin_token: Some("admin-secret".into()),
            max_body_bytes: 1024 * 1024,
            ..Config::default()
        };
        let application = Application::build(config).await.expect("build app");
        let state = application.state();
        let mut t = TestApp {
            state,
            key: String::new(),
            dir,
        };
        let (status, body) = t
            .call(
                "POST",
                "/v1/admin/keys",
                Some("admin-secret"),
                "application/json",
                r#"{"name":"test"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        t.key = body["key"].as_str().unwrap().to_string();
        // The application's listener is not used: requests go through `app` in process.
        std::mem::forget(application);
        t
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        ctype: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", ctype);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app(self.state.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    pub async fn post_events(&self, body: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/events",
            Some(&self.key),
            "application/json",
            body.to_string(),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(
            "GET",
            uri,
            Some(&self.key),
            "application/json",
            Body::empty(),
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
