//! Authorization, generated from the route table: every route of
//! `siyu_server::routes::all()` is called with every kind of credential
//! (none, a wrong key, a key of each scope, a legacy key, the admin token,
//! each console role with and without its CSRF token), and the status must
//! be what the route's declared access says: 401, 403, or past
//! authorization (any other status: a body-less request may well be 400,
//! 404 or 415 there). A new route without a declared access, or one that
//! lets a credential through that its access refuses, fails this test.
//!
//! The scopes each credential holds are written out here, not computed by
//! the code under test, so the test is a second statement of the policy.

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use siyu_console::OperatorRole;
use siyu_server::auth::Access;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The scope names a credential holds (independent of `auth::Scopes`).
#[derive(Clone)]
enum Cred {
    Nothing,
    WrongKey,
    Key {
        label: String,
        key: String,
        holds: &'static [&'static str],
    },
    AdminToken,
    Session {
        role: OperatorRole,
        cookie: String,
        csrf: Option<String>,
        holds: &'static [&'static str],
    },
}

impl Cred {
    fn label(&self) -> String {
        match self {
            Cred::Nothing => "no credential".into(),
            Cred::WrongKey => "a wrong key".into(),
            Cred::Key { label, .. } => label.clone(),
            Cred::AdminToken => "the admin token".into(),
            Cred::Session { role, csrf, .. } => format!(
                "a {} session {} CSRF token",
                role.as_str(),
                if csrf.is_some() { "with" } else { "without" }
            ),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Expect {
    /// Past authorization: neither 401 nor 403.
    Allowed,
    Unauthorized,
    Forbidden,
}

const ALL: &[&str] = &["ingest", "read", "write", "erase", "admin"];

/// What the policy says for `access` and `cred` (`unsafe_method`: not
/// GET/HEAD, where a console session also needs its CSRF token).
fn expected(access: Access, cred: &Cred, unsafe_method: bool) -> Expect {
    if let Cred::Session { csrf: None, .. } = cred {
        if unsafe_method {
            return Expect::Forbidden;
        }
    }
    let holds: Option<&[&str]> = match cred {
        Cred::Nothing | Cred::WrongKey => None,
        Cred::Key { holds, .. } | Cred::Session { holds, .. } => Some(holds),
        Cred::AdminToken => Some(ALL),
    };
    match access {
        Access::Public | Access::Metrics => Expect::Allowed,
        // No request here carries a signature: refused whatever the key.
        Access::InboundSignature => Expect::Unauthorized,
        Access::AnyKey => match holds {
            None => Expect::Unauthorized,
            Some(_) => Expect::Allowed,
        },
        Access::Key(scope) => match holds {
            None => Expect::Unauthorized,
            Some(h) if h.contains(&scope.as_str()) => Expect::Allowed,
            Some(_) => Expect::Forbidden,
        },
        Access::Undeclared => panic!("undeclared access has no expectation"),
    }
}

/// A plausible value for each path parameter.
fn fill(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{id}" if path.starts_with("/v1/persons") => "wecom:nobody".to_string(),
            "{id}" if path.starts_with("/v1/admin/keys") => "0123456789ab".to_string(),
            "{channel}" => "wecom".to_string(),
            "{workspace}" => "default".to_string(),
            "{login}" => "op_nobody".to_string(),
            s if s.starts_with('{') => "nothing".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(t: &TestApp, method: &str, uri: &str, cred: &Cred) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    match cred {
        Cred::Nothing => {}
        Cred::WrongKey => {
            req = req.header("authorization", format!("Bearer sk_{}", "0".repeat(48)))
        }
        Cred::Key { key, .. } => req = req.header("authorization", format!("Bearer {key}")),
        Cred::AdminToken => req = req.header("authorization", "Bearer admin-secret"),
        Cred::Session { cookie, csrf, .. } => {
            req = req.header("cookie", cookie.as_str());
            if let Some(c) = csrf {
                req = req.header("x-csrf-token", c.as_str());
            }
        }
    }
    let resp = siyu_server::app(t.state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    // A server-sent event stream never ends: its status is the answer.
    if resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, Value::Null);
    }
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Creates a key with `scopes` through the API (admin token).
async fn key_with(t: &TestApp, scopes: &[&str]) -> String {
    let (s, b) = t
        .call(
            "POST",
            "/v1/admin/keys",
            Some("admin-secret"),
            "application/json",
            json!({"name": scopes.join("+"), "scopes": scopes}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["scopes"], json!(scopes), "{b}");
    b["key"].as_str().unwrap().to_string()
}

/// Saves a key the way siyu did before scopes (`{"name", "created_at"}`)
/// and reloads the server's keys, as its reloader does every second.
fn legacy_key(t: &TestApp) -> String {
    let key = siyu_server::auth::new_key().unwrap();
    let mut store = t.state.0.reader.lock().unwrap();
    store
        .put_setting(
            &format!("write_key/{}", siyu_server::auth::hash_key(&key)),
            Some(&json!({"name": "from-before-scopes", "created_at": 1_700_000_000})),
        )
        .unwrap();
    *t.state.0.keys.write().unwrap() = siyu_server::auth::load_keys(store.as_mut()).unwrap();
    key
}

fn session(t: &TestApp, role: OperatorRole, csrf: bool, holds: &'static [&'static str]) -> Cred {
    let (token, s) = t
        .state
        .0
        .console
        .open_session(&format!("{}_login", role.as_str()), role)
        .unwrap();
    // Stored, as a login stores it: nodes forget cached sessions (another
    // node may have ended them) and read the store again.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut store = t.other_store();
                let hash = siyu_console::sessions::token_hash(&token);
                siyu_console::sessions::save(store.as_mut(), &hash, &s).unwrap();
            })
            .join()
            .unwrap()
    });
    Cred::Session {
        role,
        cookie: format!("siyu_session={token}; siyu_csrf={}", s.csrf),
        csrf: csrf.then_some(s.csrf),
        holds,
    }
}

async fn credentials(t: &TestApp) -> Vec<Cred> {
    let mut creds = vec![Cred::Nothing, Cred::WrongKey, Cred::AdminToken];
    let scoped: [(&str, &'static [&'static str]); 5] = [
        ("ingest", &["ingest"]),
        ("read", &["read"]),
        ("write", &["write"]),
        ("erase", &["erase"]),
        // The admin scope includes erasure (the issue: admin = keys, erasure).
        ("admin", &["admin", "erase"]),
    ];
    for (scope, holds) in scoped {
        creds.push(Cred::Key {
            label: format!("a key with scope {scope}"),
            key: key_with(t, &[scope]).await,
            holds,
        });
    }
    creds.push(Cred::Key {
        label: "a key with scopes ingest+read".into(),
        key: key_with(t, &["ingest", "read"]).await,
        holds: &["ingest", "read"],
    });
    // Migration: a key from before scopes does what it did then.
    creds.push(Cred::Key {
        label: "a legacy key (no stored scopes)".into(),
        key: legacy_key(t),
        holds: &["ingest", "read", "write", "erase"],
    });
    for csrf in [true, false] {
        creds.push(session(t, OperatorRole::Analyst, csrf, &["read"]));
        creds.push(session(
            t,
            OperatorRole::Operator,
            csrf,
            &["ingest", "read", "write"],
        ));
        creds.push(session(t, OperatorRole::Admin, csrf, ALL));
    }
    creds
}

#[tokio::test]
async fn every_route_answers_each_credential_as_its_declared_access_says() {
    let t = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.inbound_secrets
            .insert("wecom".into(), "inbound-secret".into());
    })
    .await;
    let routes = siyu_server::routes::all();
    let undeclared: Vec<String> = routes
        .iter()
        .filter(|r| r.access == Access::Undeclared)
        .map(|r| format!("{} {}", r.method.to_uppercase(), r.path))
        .collect();
    assert!(
        undeclared.is_empty(),
        "routes without a declared access (use route!(method, path, ACCESS, summary, handler)): {undeclared:?}"
    );
    let creds = credentials(&t).await;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut checked = 0;
    for r in &routes {
        let method = r.method.to_uppercase();
        let uri = fill(r.path);
        let unsafe_method = method != "GET";
        for cred in &creds {
            let want = expected(r.access, cred, unsafe_method);
            let (status, body) = send(&t, &method, &uri, cred).await;
            checked += 1;
            let got = match status {
                StatusCode::UNAUTHORIZED => Expect::Unauthorized,
                StatusCode::FORBIDDEN => Expect::Forbidden,
                _ => Expect::Allowed,
            };
            if got != want {
                failures.push(format!(
                    "{method} {uri} ({:?}) with {}: expected {want:?}, got {status} {body}",
                    r.access,
                    cred.label()
                ));
                continue;
            }
            // A key or session refused for its scope is told which scope it lacks.
            let scoped_cred =
                matches!(cred, Cred::Key { .. } | Cred::Session { csrf: Some(_), .. });
            if let (Expect::Forbidden, Access::Key(scope), true) = (got, r.access, scoped_cred) {
                let message = body["message"].as_str().unwrap_or("");
                if body["code"] != "forbidden" || !message.contains(scope.as_str()) {
                    failures.push(format!(
                        "{method} {uri} with {}: the 403 must name the `{}` scope: {body}",
                        cred.label(),
                        scope.as_str()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, routes.len() * creds.len());
    // Bounded: the whole matrix is in-process requests.
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// The routes that need no key and the routes an ingest key (the one
/// shipped in browsers and apps) reaches are pinned here: widening either
/// is a decision this test makes visible.
#[test]
fn public_and_ingest_routes_are_exactly_these() {
    let with = |want: Access| -> Vec<String> {
        let mut v: Vec<String> = siyu_server::routes::all()
            .iter()
            .filter(|r| r.access == want)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        with(Access::Key(siyu_server::auth::Scope::Ingest)),
        [
            "post /v1/a",
            "post /v1/alias",
            "post /v1/b",
            "post /v1/batch",
            "post /v1/events",
            "post /v1/g",
            "post /v1/group",
            "post /v1/i",
            "post /v1/identify",
            "post /v1/p",
            "post /v1/page",
            "post /v1/s",
            "post /v1/screen",
            "post /v1/t",
            "post /v1/track",
        ]
    );
    assert_eq!(
        with(Access::Public),
        [
            "get /c/{id}",
            "get /healthz",
            "get /i/{campaign}/{code}",
            "get /i/{campaign}/{code}/qr.png",
            "get /l/{id}",
            "get /l/{id}/qr.png",
            "get /openapi.json",
            "get /p/{partner}/{code}",
            "get /p/{partner}/{code}/qr.png",
            "get /u/{token}",
            "post /i/{campaign}/{code}/signup",
            "post /p/{partner}/{code}/signup",
            "post /u/{token}",
        ]
    );
    assert_eq!(
        with(Access::InboundSignature),
        [
            "get /callbacks/wechat",
            "get /callbacks/wechat/{workspace}",
            "get /callbacks/wecom",
            "get /callbacks/wecom/{workspace}",
            "post /callbacks/sms/tencent/{token}/reply",
            "post /callbacks/sms/tencent/{token}/status",
            "post /callbacks/wechat",
            "post /callbacks/wechat/{workspace}",
            "post /callbacks/wecom",
            "post /callbacks/wecom/{workspace}",
            "post /v1/inbound/{channel}",
        ]
    );
    assert_eq!(with(Access::Metrics), ["get /metrics"]);
}

/// The WeCom, workbench and channel routes (the matrix above calls each
/// with every credential): reading takes `read`; starting a sync, setting
/// the welcome, saving, deleting, using a quick reply (it counts the use)
/// and checking a channel's token (a call to the platform) take `write`.
#[test]
fn workbench_and_channel_routes_declare_their_access() {
    use siyu_server::auth::Scope;
    let read = Access::Key(Scope::Read);
    let write = Access::Key(Scope::Write);
    for (prefix, expected) in [
        (
            "/v1/wecom/",
            vec![
                ("get /v1/wecom/sync", read),
                ("get /v1/wecom/welcome", read),
                ("post /v1/wecom/sync", write),
                ("put /v1/wecom/welcome", write),
            ],
        ),
        (
            "/v1/channels",
            vec![
                ("get /v1/channels", read),
                ("get /v1/channels/{channel}", read),
                ("post /v1/channels/{channel}/check", write),
            ],
        ),
        (
            "/v1/quick-replies",
            vec![
                ("delete /v1/quick-replies/{id}", write),
                ("get /v1/quick-replies", read),
                ("post /v1/quick-replies/{id}/use", write),
                ("put /v1/quick-replies/{id}", write),
            ],
        ),
        (
            "/v1/ai/",
            vec![
                ("get /v1/ai/usage", read),
                ("post /v1/ai/classify", read),
                ("post /v1/ai/suggest", write),
                ("post /v1/ai/summarize", write),
            ],
        ),
        (
            "/v1/intents",
            vec![
                ("get /v1/intents", read),
                ("get /v1/intents/settings", read),
                ("put /v1/intents/settings", write),
            ],
        ),
        (
            "/v1/sensitive-words",
            vec![
                ("get /v1/sensitive-words", read),
                ("post /v1/sensitive-words/check", read),
                ("put /v1/sensitive-words", write),
            ],
        ),
        (
            "/v1/live-sessions",
            vec![
                ("delete /v1/live-sessions/{id}", write),
                ("get /v1/live-sessions", read),
                ("get /v1/live-sessions/{id}", read),
                ("get /v1/live-sessions/{id}/report", read),
                ("put /v1/live-sessions/{id}", write),
            ],
        ),
        (
            "/v1/conversations",
            vec![
                ("get /v1/conversations", read),
                ("get /v1/conversations/archive", read),
                ("get /v1/conversations/report", read),
                ("get /v1/conversations/settings", read),
                ("get /v1/conversations/stream", read),
                ("get /v1/conversations/{person}", read),
                ("post /v1/conversations/{person}/assign", write),
                ("post /v1/conversations/{person}/messages", write),
                ("post /v1/conversations/{person}/resolve", write),
                ("post /v1/conversations/{person}/tasks", write),
                ("put /v1/conversations/settings", write),
            ],
        ),
        (
            "/v1/partners",
            vec![
                ("delete /v1/partners/{id}", write),
                ("get /v1/partners", read),
                ("get /v1/partners/settings", read),
                ("get /v1/partners/{id}", read),
                ("get /v1/partners/{id}/ledger", read),
                ("get /v1/partners/{id}/ledger.csv", read),
                ("get /v1/partners/{id}/link", read),
                ("get /v1/partners/{id}/poster", read),
                ("post /v1/partners/from-person", write),
                ("post /v1/partners/{id}/arrivals", write),
                ("post /v1/partners/{id}/claims", write),
                ("post /v1/partners/{id}/payouts", write),
                ("put /v1/partners/settings", write),
                ("put /v1/partners/{id}", write),
            ],
        ),
    ] {
        let mut v: Vec<(String, Access)> = siyu_server::routes::all()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .map(|r| (format!("{} {}", r.method, r.path), r.access))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<(String, Access)> = expected
            .into_iter()
            .map(|(r, a)| (r.to_string(), a))
            .collect();
        assert_eq!(v, expected, "{prefix}");
    }
}

/// The publishable key: it sends events (the Segment endpoints too) and
/// reads nothing; the refusal names the scope to ask for.
#[tokio::test]
async fn an_ingest_key_sends_events_and_reads_nothing() {
    let t = TestApp::spawn().await;
    let ingest = key_with(&t, &["ingest"]).await;
    let (s, b) = t
        .call(
            "POST",
            "/v1/events",
            Some(&ingest),
            "application/json",
            r#"[{"ts": 1790000000, "identity": "wecom:w1", "type": "touch"}]"#,
        )
        .await;
    assert_eq!(
        (s, b["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    let (s, b) = t
        .call(
            "POST",
            "/v1/track",
            Some(&ingest),
            "application/json",
            r#"{"userId": "u1", "event": "Viewed", "timestamp": "2026-09-21T10:00:00Z"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for path in [
        "/v1/persons/wecom:w1",
        "/v1/persons/wecom:w1/export",
        "/v1/segments",
    ] {
        let (s, b) = t
            .call("GET", path, Some(&ingest), "application/json", "")
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        let m = b["message"].as_str().unwrap();
        assert!(
            m.contains("`read` scope") && m.contains("--scope read"),
            "{m}"
        );
    }
    let (s, b) = t
        .call(
            "DELETE",
            "/v1/persons/wecom:w1",
            Some(&ingest),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["message"].as_str().unwrap().contains("`erase` scope"));
    // The person is still there.
    assert_eq!(t.get("/v1/persons/wecom:w1").await.0, StatusCode::OK);
}

/// Keys are listed with their scopes; legacy keys say so; bad scopes are
/// a 400 naming the valid ones.
#[tokio::test]
async fn keys_are_listed_with_scopes_and_bad_scopes_are_named() {
    let t = TestApp::spawn().await;
    key_with(&t, &["ingest"]).await;
    legacy_key(&t);
    let (_, list) = t
        .call(
            "GET",
            "/v1/admin/keys",
            Some("admin-secret"),
            "application/json",
            "",
        )
        .await;
    let keys = list["keys"].as_array().unwrap();
    let by_name = |n: &str| keys.iter().find(|k| k["name"] == n).unwrap().clone();
    assert_eq!(by_name("ingest")["scopes"], json!(["ingest"]));
    assert_eq!(by_name("ingest")["legacy"], false);
    let old = by_name("from-before-scopes");
    assert_eq!(old["scopes"], json!(["ingest", "read", "write", "erase"]));
    assert_eq!(old["legacy"], true);
    for (body, needle) in [
        (
            json!({"name": "x", "scopes": ["everything"]}),
            "unknown scope `everything`",
        ),
        (json!({"name": "x", "scopes": []}), "at least one scope"),
        (
            json!({"name": "x", "scope": ["read"]}),
            "unknown field `scope`",
        ),
    ] {
        let (s, b) = t
            .call(
                "POST",
                "/v1/admin/keys",
                Some("admin-secret"),
                "application/json",
                body.to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["message"].as_str().unwrap().contains(needle), "{b}");
    }
    // A key with the admin scope manages keys; a legacy key does not.
    let admin = key_with(&t, &["admin"]).await;
    let (s, _) = t
        .call(
            "GET",
            "/v1/admin/keys",
            Some(&admin),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// `/metrics` stays open by default; with `metrics_token` it needs that
/// token (or the admin token), and a write key is not enough.
#[tokio::test]
async fn metrics_can_require_a_token() {
    let open = TestApp::spawn().await;
    assert_eq!(
        open.call("GET", "/metrics", None, "text/plain", "").await.0,
        StatusCode::OK
    );
    let t = TestApp::spawn_with(crate::Backend::Sqlite, 1 << 20, |c| {
        c.metrics_token = Some("scrape-me".into())
    })
    .await;
    for (token, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
        (Some(t.key.as_str()), StatusCode::UNAUTHORIZED),
        (Some("scrape-me"), StatusCode::OK),
        (Some("admin-secret"), StatusCode::OK),
    ] {
        let (s, b) = t.call("GET", "/metrics", token, "text/plain", "").await;
        assert_eq!(s, want, "{token:?}: {b}");
    }
}

/// `/openapi.json` states each operation's security and scope.
#[tokio::test]
async fn the_api_document_states_each_routes_security() {
    let t = TestApp::spawn().await;
    let (_, doc) = t.call("GET", "/openapi.json", None, "", "").await;
    let schemes = &doc["components"]["securitySchemes"];
    for s in [
        "bearerKey",
        "basicKey",
        "adminToken",
        "consoleSession",
        "inboundSignature",
        "wecomSignature",
        "wechatSignature",
        "metricsToken",
    ] {
        assert!(schemes.get(s).is_some(), "securityScheme {s}");
    }
    for r in siyu_server::routes::all() {
        let op = &doc["paths"][r.path][r.method];
        let security = op["security"].as_array().unwrap();
        let description = op["description"].as_str().unwrap();
        match r.access {
            Access::Public => assert!(security.is_empty(), "{}", r.path),
            Access::Key(scope) => {
                assert!(security.contains(&json!({"bearerKey": []})), "{}", r.path);
                assert_eq!(op["x-siyu-scope"], scope.as_str(), "{}", r.path);
                assert!(
                    description.contains(&format!("`{}` scope", scope.as_str())),
                    "{}: {description}",
                    r.path
                );
            }
            Access::InboundSignature if r.path.starts_with("/callbacks/wecom") => {
                assert_eq!(
                    op["security"],
                    json!([{"wecomSignature": []}]),
                    "{}",
                    r.path
                )
            }
            Access::InboundSignature if r.path.starts_with("/callbacks/wechat") => {
                assert_eq!(
                    op["security"],
                    json!([{"wechatSignature": []}]),
                    "{}",
                    r.path
                )
            }
            // The opaque `{token}` in the path is the credential.
            Access::InboundSignature if r.path.starts_with("/callbacks/sms/tencent/{token}") => {
                assert_eq!(op["security"], json!([]), "{}", r.path)
            }
            Access::InboundSignature => {
                assert_eq!(op["security"], json!([{"inboundSignature": []}]))
            }
            _ => assert!(!security.is_empty(), "{}", r.path),
        }
    }
}

/// Item 4 of issue 12: a key created by another process on the same store
/// (what `siyu keys create` does: `auth::create_key` on its own
/// connection) works on a running server within 2 s, and a key revoked
/// there stops working within 2 s. A real server on a port.
#[tokio::test]
async fn keys_created_or_revoked_by_another_process_take_effect_within_2_s() {
    let dir = std::env::temp_dir().join(format!("siyu-authz-reload-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = siyu_server::config::Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        ..Default::default()
    };
    let app = siyu_server::Application::build(config.clone())
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    let http = reqwest::Client::new();
    let status_with = |key: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(format!("{url}/v1/segments"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Another connection to the same store, as the CLI opens.
    let c = config.clone();
    let key = tokio::task::spawn_blocking(move || {
        let mut store = c.open_store().unwrap();
        siyu_server::auth::create_key(
            store.as_mut(),
            "cli",
            siyu_server::auth::Scopes::of(&[siyu_server::auth::Scope::Read]),
            0,
        )
        .unwrap()
    })
    .await
    .unwrap();
    let created = Instant::now();
    loop {
        let s = status_with(key.clone()).await;
        if s == StatusCode::OK {
            break;
        }
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(
            created.elapsed() < Duration::from_secs(2),
            "the new key did not work within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_to_work = created.elapsed();
    // Revoked by another process: the setting is deleted.
    let c = config.clone();
    let hash = siyu_server::auth::hash_key(&key);
    tokio::task::spawn_blocking(move || {
        let mut store = c.open_store().unwrap();
        store
            .put_setting(&format!("write_key/{hash}"), None)
            .unwrap()
    })
    .await
    .unwrap();
    let revoked = Instant::now();
    loop {
        let s = status_with(key.clone()).await;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "the revoked key still worked after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "a key from another process worked after {took_to_work:?}, a revocation after {:?}",
        revoked.elapsed()
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// The dashboard cache warmer calls the router with the process's internal
/// key, which holds the `read` scope only: its answers land in the cache
/// (a user's next dashboard request is a hit), and it cannot write.
#[tokio::test]
async fn the_cache_warmers_internal_key_reads_and_only_reads() {
    use std::sync::atomic::Ordering;
    let t = TestApp::spawn().await;
    let internal = t.state.0.internal_key.clone();
    assert_eq!(
        t.call(
            "PUT",
            "/v1/segments/x",
            Some(&internal),
            "application/json",
            r#"{"segment": "purchases >= 1"}"#
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    siyu_server::cache::spawn_warmer(t.state.clone());
    let cache = &t.state.0.analytics_cache;
    let started = Instant::now();
    while cache.misses.load(Ordering::Relaxed) < siyu_server::cache::DASHBOARD.len() as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the warmer did not fill the cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The warmer asks one query after the other: once the last one
    // started, the answer to /v1/analytics/rfm (an earlier one) is stored.
    assert_eq!(
        siyu_server::cache::DASHBOARD.last(),
        Some(&"/v1/analytics/repurchase")
    );
    let hits = cache.hits.load(Ordering::Relaxed);
    let (s, _) = t.get("/v1/analytics/rfm").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        cache.hits.load(Ordering::Relaxed),
        hits + 1,
        "a warmed answer"
    );
}
