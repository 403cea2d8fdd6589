//! The console's router and guard in-process, over an in-memory SQLite
//! store: login, sessions, CSRF, roles, operators, assets.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use siyu_console::accounts::{self, Role};
use siyu_console::{Console, Host};
use siyu_store::{SqliteStore, Store};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// The store is shared so a second host (a restarted server) can be
/// built over it.
type SharedStore = Arc<Mutex<SqliteStore>>;

#[derive(Clone)]
struct TestHost(Arc<TestHostParts>);

struct TestHostParts {
    console: Console,
    store: SharedStore,
    public_url: &'static str,
}

impl Host for TestHost {
    fn console(&self) -> &Console {
        &self.0.console
    }
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> T) -> T {
        f(&mut *self.0.store.lock().unwrap())
    }
    fn admin_token(&self) -> Option<&str> {
        Some("admin-token")
    }
    /// The client address is what the test says in `x-test-client`.
    fn client_addr(&self, headers: &HeaderMap, _peer: Option<SocketAddr>) -> IpAddr {
        headers
            .get("x-test-client")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
    fn public_url(&self) -> &str {
        self.0.public_url
    }
}

/// A host with operators `ada` (admin), `otto` (operator), `ann` (analyst)
/// and a fake `/v1/thing` that stands for any host API route.
fn app() -> Router {
    app_over(store_with_operators())
}

fn store_with_operators() -> SharedStore {
    let mut store = SqliteStore::open_in_memory().unwrap();
    for (login, role) in [
        ("ada", Role::Admin),
        ("otto", Role::Operator),
        ("ann", Role::Analyst),
    ] {
        accounts::put_operator(&mut store, login, "password1", role, 0).unwrap();
    }
    Arc::new(Mutex::new(store))
}

/// The console over `store` with a fresh (empty) session table: what a
/// server process sees when it starts.
fn app_over(store: SharedStore) -> Router {
    app_with(TestHostParts {
        console: Console::default(),
        store,
        public_url: "http://127.0.0.1:8080",
    })
}

/// The console over a host made of `parts`.
fn app_with(parts: TestHostParts) -> Router {
    let host = TestHost(Arc::new(parts));
    Router::new()
        .route(
            "/v1/thing",
            get(|| async { "read" }).put(|| async { "wrote" }),
        )
        .route(
            "/v1/templates/{name}/preview",
            post(|| async { "rendered" }),
        )
        .merge(siyu_console::router())
        .layer(axum::middleware::from_fn_with_state(
            host.clone(),
            siyu_console::guard::<TestHost>,
        ))
        .with_state(host)
}

struct Reply {
    status: StatusCode,
    /// The `Retry-After` header, seconds.
    retry_after: Option<u64>,
    cookies: Vec<String>,
    body: Value,
    text: String,
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let cookies = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    Reply {
        status,
        retry_after,
        cookies,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

/// Logs in; returns (cookie header, csrf token).
async fn login(app: &Router, who: &str) -> (String, String) {
    let r = send(
        app,
        "POST",
        "/console/api/login",
        &[],
        Some(json!({"login": who, "password": "password1"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let session = r
        .cookies
        .iter()
        .find(|c| c.starts_with("siyu_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf = r.body["csrf"].as_str().unwrap().to_string();
    let cookie = r
        .cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    (cookie, csrf)
}

#[tokio::test]
async fn serves_the_page_and_assets_with_a_strict_csp() {
    let app = app();
    let r = send(&app, "GET", "/", &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("/assets/app.js"));
    for a in [
        "app.js",
        "charts.js",
        "automation.js",
        "growth.js",
        "i18n.js",
        "partners.js",
        "moments.js",
        "app.css",
        "favicon.svg",
    ] {
        let r = send(&app, "GET", &format!("/assets/{a}"), &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{a}");
    }
    assert_eq!(
        send(&app, "GET", "/assets/nope.js", &[], None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_login_are_the_same_401() {
    let app = app();
    for (l, p) in [
        ("ada", "wrong-password"),
        ("nobody", "password1"),
        ("BAD LOGIN", "x"),
    ] {
        let r = send(
            &app,
            "POST",
            "/console/api/login",
            &[],
            Some(json!({"login": l, "password": p})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{l}");
        assert_eq!(r.body["code"], "unauthorized");
        assert!(r.cookies.is_empty());
    }
    assert_eq!(
        send(&app, "GET", "/console/api/me", &[], None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn writes_need_the_csrf_token() {
    let app = app();
    let (cookie, csrf) = login(&app, "otto").await;
    let me = send(&app, "GET", "/console/api/me", &[("cookie", &cookie)], None).await;
    assert_eq!(me.body["role"], "operator");
    // Reads need no token.
    assert_eq!(
        send(&app, "GET", "/v1/thing", &[("cookie", &cookie)], None)
            .await
            .text,
        "read"
    );
    // Writes (a preview POST too) without or with a wrong token are refused.
    let preview = "/v1/templates/welcome/preview?person=wecom:wm1&channel=wecom";
    for (m, p) in [("PUT", "/v1/thing"), ("POST", preview)] {
        for token in [None, Some("0000")] {
            let mut h = vec![("cookie", cookie.as_str())];
            if let Some(t) = token {
                h.push(("x-csrf-token", t));
            }
            let r = send(&app, m, p, &h, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
            assert_eq!(r.body["code"], "forbidden");
        }
    }
    let r = send(
        &app,
        "PUT",
        "/v1/thing",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.text, "wrote");
}

/// The guard checks the session and its CSRF token; what a role may do on
/// the host's routes is the host's decision (siyu-server maps roles to
/// scopes and checks each route's declared access: its authorization
/// matrix test covers every route and role). The console's own operator
/// management needs an admin.
#[tokio::test]
async fn roles_are_the_hosts_decision_but_operator_management_needs_an_admin() {
    let app = app();
    let (cookie, csrf) = login(&app, "ann").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    assert_eq!(send(&app, "GET", "/v1/thing", &h, None).await.text, "read");
    assert_eq!(
        send(&app, "PUT", "/v1/thing", &h, None).await.text,
        "wrote",
        "the guard leaves roles on host routes to the host"
    );
    for (m, p) in [
        ("DELETE", "/console/api/operators/otto"),
        ("PUT", "/console/api/operators/zed"),
    ] {
        let r = send(
            &app,
            m,
            p,
            &h,
            Some(json!({"role": "admin", "password": "password1"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
        assert_eq!(r.body["code"], "forbidden");
    }
    // Logging out is allowed, and ends the session.
    assert_eq!(
        send(&app, "POST", "/console/api/logout", &h, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/console/api/me", &h, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admins_manage_operators_and_a_role_change_ends_sessions() {
    let app = app();
    let (admin, csrf) = login(&app, "ada").await;
    let h = [("cookie", admin.as_str()), ("x-csrf-token", csrf.as_str())];
    let (otto, _) = login(&app, "otto").await;
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/otto",
        &h,
        Some(json!({"role": "analyst"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        send(&app, "GET", "/console/api/me", &[("cookie", &otto)], None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/neo",
        &h,
        Some(json!({"role": "operator", "password": "short"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/neo",
        &h,
        Some(json!({"role": "operator", "password": "long-enough"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let list = send(&app, "GET", "/console/api/operators", &h, None).await;
    let logins: Vec<&str> = list.body["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["ada", "ann", "neo", "otto"]);
    assert!(
        !list.text.contains("argon2"),
        "hashes never leave the server"
    );
    let r = send(&app, "DELETE", "/console/api/operators/ada", &h, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no deleting oneself");
    // The admin token bootstraps operators without a session.
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/first",
        &[("authorization", "Bearer admin-token")],
        Some(json!({"role": "admin", "password": "long-enough"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/first",
        &[("authorization", "Bearer nope")],
        Some(json!({"role": "admin", "password": "long-enough"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[test]
fn password_hashes_are_argon2id_and_salted() {
    let a = accounts::hash_password("password1").unwrap();
    let b = accounts::hash_password("password1").unwrap();
    assert!(a.starts_with("$argon2id$"));
    assert_ne!(a, b);
    assert!(accounts::verify_password("password1", &a));
    assert!(!accounts::verify_password("password2", &a));
}

fn stored_sessions(store: &SharedStore) -> Vec<(String, Value)> {
    store
        .lock()
        .unwrap()
        .list_settings(siyu_console::sessions::PREFIX)
        .unwrap()
}

fn token_of(cookie: &str) -> &str {
    cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("siyu_session="))
        .unwrap()
}

#[tokio::test]
async fn a_session_survives_a_new_console_over_the_same_store() {
    let store = store_with_operators();
    let (cookie, csrf) = login(&app_over(store.clone()), "otto").await;
    // Only the SHA-256 of the token is stored, never the token.
    let token = token_of(&cookie);
    let stored = stored_sessions(&store);
    assert_eq!(stored.len(), 1);
    let (key, record) = &stored[0];
    assert_eq!(
        key,
        &format!(
            "console_session/{}",
            siyu_console::sessions::token_hash(token)
        )
    );
    assert!(!key.contains(token) && !record.to_string().contains(token));
    assert_eq!(record["login"], "otto");
    assert_eq!(record["role"], "operator");

    // "Restart": a new Console over the same store knows the session,
    // with its role and CSRF token.
    let restarted = app_over(store.clone());
    let me = send(
        &restarted,
        "GET",
        "/console/api/me",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["login"], "otto");
    assert_eq!(me.body["role"], "operator");
    assert_eq!(me.body["csrf"], csrf.as_str());
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    assert_eq!(
        send(&restarted, "PUT", "/v1/thing", &h, None).await.status,
        StatusCode::OK
    );
    let wrong = [("cookie", cookie.as_str()), ("x-csrf-token", "nope")];
    assert_eq!(
        send(&restarted, "PUT", "/v1/thing", &wrong, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Logout deletes it from the store: a third process does not know it.
    let r = send(&restarted, "POST", "/console/api/logout", &h, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(stored_sessions(&store).is_empty());
    let again = app_over(store.clone());
    let me = send(
        &again,
        "GET",
        "/console/api/me",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_and_revoked_sessions_are_not_loaded_and_are_deleted() {
    use siyu_console::sessions;
    let store = store_with_operators();
    let (cookie, _) = login(&app_over(store.clone()), "ann").await;
    let hash = sessions::token_hash(token_of(&cookie));
    // Expire it in the store.
    {
        let mut s = store.lock().unwrap();
        let key = format!("{}{hash}", sessions::PREFIX);
        let mut v = s.get_setting(&key).unwrap().unwrap();
        v["expires_at"] = json!(1);
        s.put_setting(&key, Some(&v)).unwrap();
    }
    let restarted = app_over(store.clone());
    let me = send(
        &restarted,
        "GET",
        "/console/api/me",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        stored_sessions(&store).is_empty(),
        "expired record deleted on load"
    );

    // A role change ends the operator's sessions in the store too.
    let app = app_over(store.clone());
    let (admin, csrf) = login(&app, "ada").await;
    let (otto, _) = login(&app, "otto").await;
    assert_eq!(stored_sessions(&store).len(), 2);
    let h = [("cookie", admin.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = send(
        &app,
        "PUT",
        "/console/api/operators/otto",
        &h,
        Some(json!({"role": "analyst"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let restarted = app_over(store.clone());
    let me = send(
        &restarted,
        "GET",
        "/console/api/me",
        &[("cookie", &otto)],
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let left: Vec<Value> = stored_sessions(&store)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["login"], "ada");
}

/// A console whose lockouts are short (`first_delay`), with `checks`
/// concurrent password checks.
fn throttled_app(first_delay: std::time::Duration, checks: usize) -> Router {
    let policy = siyu_console::throttle::LoginPolicy {
        first_delay,
        ..Default::default()
    };
    app_with(TestHostParts {
        console: Console::with_login_limits(policy, checks),
        store: store_with_operators(),
        public_url: "http://127.0.0.1:8080",
    })
}

async fn try_login(app: &Router, who: &str, password: &str, client: &str) -> Reply {
    send(
        app,
        "POST",
        "/console/api/login",
        &[("x-test-client", client)],
        Some(json!({"login": who, "password": password})),
    )
    .await
}

fn retry_after(r: &Reply) -> u64 {
    r.retry_after.expect("a 429 carries Retry-After")
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_with_429_and_retry_after() {
    let delay = std::time::Duration::from_millis(600);
    let app = throttled_app(delay, siyu_console::PASSWORD_CHECKS);
    for i in 0..5 {
        let r = try_login(&app, "ada", "wrong-password", "10.0.0.1").await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "failure {i}: {}",
            r.text
        );
    }
    // Locked: even the right password is refused, from any address.
    for client in ["10.0.0.1", "10.0.0.2"] {
        let r = try_login(&app, "ada", "password1", client).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.body["code"], "too_many_requests");
        assert_eq!(retry_after(&r), 1, "0.6 s rounds up to 1 s");
        assert!(r.text.contains("try again in 1 s"), "{}", r.text);
        assert!(r.cookies.is_empty());
    }
    // Another account from another address is not affected.
    let r = try_login(&app, "otto", "password1", "10.0.0.3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Once the delay has passed, the right password works and clears the count.
    tokio::time::sleep(delay + std::time::Duration::from_millis(100)).await;
    let r = try_login(&app, "ada", "password1", "10.0.0.1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = try_login(&app, "ada", "wrong-password", "10.0.0.1").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the count was reset");
}

#[tokio::test]
async fn the_lockout_grows_with_every_further_failure() {
    let delay = std::time::Duration::from_millis(300);
    let app = throttled_app(delay, siyu_console::PASSWORD_CHECKS);
    let mut waits = Vec::new();
    for _ in 0..5 {
        try_login(&app, "ann", "wrong-password", "10.0.1.1").await;
    }
    for _ in 0..3 {
        // Wait the lockout out, fail once more, read the new lockout.
        let mut r = try_login(&app, "ann", "wrong-password", "10.0.1.1").await;
        let mut rounds = 0;
        while r.status == StatusCode::TOO_MANY_REQUESTS {
            rounds += 1;
            assert!(rounds < 50, "the lockout never ended");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            r = try_login(&app, "ann", "wrong-password", "10.0.1.1").await;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        waits.push(rounds);
    }
    // 0.3 s, then 0.6 s, then 1.2 s of 100 ms rounds (at least).
    assert!(
        waits[0] >= 2 && waits[1] >= 5 && waits[2] >= 11,
        "{waits:?}"
    );
    assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_locked_out() {
    let app = throttled_app(
        std::time::Duration::from_secs(30),
        siyu_console::PASSWORD_CHECKS,
    );
    for i in 0..20 {
        let r = try_login(&app, &format!("guess{i}"), "wrong-password", "10.0.2.1").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = try_login(&app, "otto", "password1", "10.0.2.1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 30);
    let r = try_login(&app, "otto", "password1", "10.0.2.2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_beyond_the_slots_get_429_at_once() {
    let app = throttled_app(std::time::Duration::from_secs(1), 1);
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let (who, client) = (format!("flood{i}"), format!("10.0.3.{i}"));
                try_login(&app, &who, "wrong-password", &client).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for a in attempts {
        replies.push(a.await.unwrap());
    }
    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::UNAUTHORIZED
                || r.status == StatusCode::TOO_MANY_REQUESTS),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        !refused.is_empty(),
        "8 logins at once over 1 slot: some wait their turn"
    );
    assert!(refused.len() < 8, "one was checked");
    for r in refused {
        assert_eq!(retry_after(r), 1);
        assert!(r.text.contains("at once"), "{}", r.text);
    }
}

#[tokio::test]
async fn session_cookies_are_secure_when_the_public_url_is_https() {
    for (url, secure) in [
        ("https://crm.example.com", true),
        ("http://127.0.0.1:8080", false),
    ] {
        let app = app_with(TestHostParts {
            console: Console::default(),
            store: store_with_operators(),
            public_url: url,
        });
        let r = try_login(&app, "ada", "password1", "10.0.4.1").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.cookies.len(), 2);
        for c in &r.cookies {
            assert_eq!(c.contains("; Secure"), secure, "{url}: {c}");
        }
        let cookie = r
            .cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let csrf = r.body["csrf"].as_str().unwrap().to_string();
        let out = send(
            &app,
            "POST",
            "/console/api/logout",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            None,
        )
        .await;
        assert_eq!(out.status, StatusCode::OK);
        for c in &out.cookies {
            assert_eq!(c.contains("; Secure"), secure, "{url}: {c}");
        }
    }
}
