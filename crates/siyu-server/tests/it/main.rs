//! Server tests, in process: the router with a real SQLite (or PostgreSQL,
//! when SIYU_TEST_DATABASE_URL is set) store in a fresh directory, driven
//! with `oneshot` requests.

mod ai;
mod authz;
mod automation;
mod bad_input;
mod channels;
mod cluster;
mod communities;
mod connections;
mod conversations;
mod customers;
mod delete;
mod email;
mod event_time;
mod fast_start;
mod fission;
mod h5;
mod ingest;
mod intent;
mod live;
mod llm;
mod local_time;
mod moments;
mod nesting;
mod observability;
mod orders;
mod parsers;
mod partners;
mod privacy;
mod quick_replies;
mod rebuild;
mod rfm_layers;
mod segment_spec;
mod sensitive;
mod shapes;
mod snapshots;
mod wechat;
mod wecom;
mod wecom_ops;
mod wecom_sync;
mod workspaces;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use siyu_server::config::Config;
use siyu_server::{app, AppState, Application};
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;

/// `SIYU_TEST_DATABASE_URL`, when set: the PostgreSQL server the tests
/// also run against (each test in a fresh schema, dropped afterwards).
pub fn pg_url() -> Option<String> {
    std::env::var("SIYU_TEST_DATABASE_URL").ok()
}

/// Which store a test app runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub state: AppState,
    pub key: String,
    pub dir: std::path::PathBuf,
    schema: Option<String>,
    /// Dropped as if the process died: its executor and writer run on
    /// (the failover tests); else they are told to stop.
    abandon: bool,
    _app: Application,
}

impl TestApp {
    /// SQLite in a fresh directory, body limit 1 MiB.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(Backend::Sqlite, 1024 * 1024).await
    }

    pub async fn spawn_on(backend: Backend, max_body_bytes: usize) -> TestApp {
        Self::spawn_with(backend, max_body_bytes, |_| {}).await
    }

    /// Like `spawn_on`, with a last say on the config (connectors …).
    pub async fn spawn_with(
        backend: Backend,
        max_body_bytes: usize,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("siyu-server-it-{}-{n}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let (database_url, schema) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => (
                Some(pg_url().expect("Backend::Postgres needs SIYU_TEST_DATABASE_URL")),
                Some(format!("siyu_server_it_{}_{n}", std::process::id())),
            ),
        };
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            database_url,
            database_schema: schema.clone(),
            admin_token: Some("admin-secret".into()),
            max_body_bytes,
            // The fixtures carry fixed 2026 timestamps: every event is
            // fresh enough to trigger here. History has its own tests,
            // which set the default back (`automation.rs`).
            trigger_max_age_secs: siyu_server::config::MAX_TRIGGER_MAX_AGE_SECS,
            ..Config::default()
        };
        tweak(&mut config);
        let application = Application::build(config).await.expect("build app");
        let state = application.state();
        let mut t = TestApp {
            state,
            key: String::new(),
            dir,
            schema,
            abandon: false,
            _app: application,
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
        t
    }

    /// Another node on this app's PostgreSQL schema (its own data dir,
    /// engine, writer and executor), as a second `siyu serve` on the same
    /// database; it uses this app's key. Only this app drops the schema.
    pub async fn peer(&self) -> TestApp {
        self.peer_with(|_| {}).await
    }

    /// [`Self::peer`], with `prepare` run on its config before it starts
    /// (its data dir is empty then: to put a snapshot file in it).
    pub async fn peer_with(&self, prepare: impl FnOnce(&Config)) -> TestApp {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("siyu-server-it-peer-{}-{n}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config {
            data_dir: dir.clone(),
            ..self.state.0.config.clone()
        };
        prepare(&config);
        let application = Application::build(config).await.expect("build peer");
        TestApp {
            state: application.state(),
            key: self.key.clone(),
            dir,
            schema: None,
            abandon: false,
            _app: application,
        }
    }

    /// A second connection to this app's store, as another process
    /// (`siyu import` beside the server) would open it.
    pub fn other_store(&self) -> Box<dyn siyu_store::Store> {
        siyu_server::config::open_store(
            &self.dir,
            self.schema.as_ref().and(pg_url()).as_deref(),
            self.schema.as_deref(),
        )
        .expect("opening the app's store again")
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

    /// A call with this app's key (ingest, read, write, erase) and a JSON
    /// body: a `Value`, or JSON text as it is.
    pub async fn send(&self, method: &str, uri: &str, body: impl ToString) -> (StatusCode, Value) {
        self.call(
            method,
            uri,
            Some(&self.key),
            "application/json",
            body.to_string(),
        )
        .await
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

    /// Waits until only a new event can change the analytics cache's
    /// stamp for the next ten seconds, so hit and miss counts are exact:
    /// the writer has pinned the RFM medians (its idle tick does so once
    /// buyers exist; the pin is part of the stamp), and the engine's
    /// minute (also part of it) is not about to turn.
    pub async fn settle_analytics_stamp(&self) {
        use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
        let started = Instant::now();
        while self
            .state
            .0
            .engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rfm_basis()
            .is_none()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the writer did not pin the RFM medians"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs()
            % 60;
        if !(2..50).contains(&second) {
            tokio::time::sleep(Duration::from_secs((62 - second) % 60)).await;
        }
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
        // The executor thread lives until it is told to stop, and with it
        // the state and the writer: each app's store connections would
        // stay open until the test process ends (PostgreSQL has 100).
        if !self.abandon {
            let _ = self
                .state
                .0
                .automation
                .tx
                .send(siyu_server::automation::AutoInput::Shutdown);
        }
        std::fs::remove_dir_all(&self.dir).ok();
        if let (Some(schema), Some(url)) = (self.schema.take(), pg_url()) {
            // Best effort: a leftover schema only costs space in a test database.
            let _ = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            })
            .join();
        }
    }
}
