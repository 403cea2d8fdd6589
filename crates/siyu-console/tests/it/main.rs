//! The console's router and guard in-process, over an in-memory SQLite
//! store: login, sessions, CSRF, roles, operators, assets.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use siyu_console::accounts::{self, Role};
use siyu_console::{Console, Host};
use siyu_store::{SqliteStore, Store};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// The store is shared so a second host (a restarted server) can be
/// built over it.
type SharedStore = Arc<Mutex<SqliteStore>>;

#[derive(Clone)]
struct TestHost(Arc<(Console, SharedStore)>);

impl Host for TestHost {
    fn console(&self) -> &Console {
        &self.0 .0
    }
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> T) -> T {
        f(&mut *self.0 .1.lock().unwrap())
    }
    fn admin_token(&self) -> Option<&str> {
        Some("admin-token")
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
    let host = TestHost(Arc::new((Console::default(), store)));
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
