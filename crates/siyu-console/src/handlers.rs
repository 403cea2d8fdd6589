//! `/console/api/*`: login, logout, the current session, operators and the
//! list of write keys. Everything that touches the store or argon2 runs in
//! `spawn_blocking`; argon2 never runs while the host's store is held.

use crate::accounts::{self, AccountError, Role};
use crate::sessions;
use crate::{
    cookie, error, is_admin_session, session_of, Host, CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL,
};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Instant;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn internal(detail: impl std::fmt::Display) -> Response {
    tracing::error!(%detail, "console internal error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

fn account_error(e: AccountError) -> Response {
    match e {
        AccountError::Invalid(m) => error(StatusCode::BAD_REQUEST, "bad_request", &m),
        other => internal(other),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "log in first (POST /console/api/login)",
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// An admin session, or the admin token as a bearer credential (how the
/// first operator is created on a fresh install).
fn is_admin<S: Host>(host: &S, headers: &HeaderMap) -> bool {
    if is_admin_session(host.console(), headers) {
        return true;
    }
    match (bearer(headers), host.admin_token()) {
        (Some(given), Some(token)) => crate::constant_time_eq(given.as_bytes(), token.as_bytes()),
        _ => false,
    }
}

fn forbidden_not_admin() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this needs an admin session or the admin token",
    )
}

/// Reads need a session (any role) or the admin token.
fn may_read<S: Host>(host: &S, headers: &HeaderMap) -> bool {
    session_of(host.console(), headers).is_some() || is_admin(host, headers)
}

#[derive(Deserialize)]
pub struct LoginBody {
    login: String,
    password: String,
}

/// A 429 telling the client to come back in `wait` (at least a second).
fn too_many(wait: std::time::Duration, message: &str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        &message.replace("{secs}", &secs.to_string()),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// `; Secure` when the server is reached over https (the browser then
/// never sends the cookie over plain http).
fn secure_attr<S: Host>(host: &S) -> &'static str {
    if host.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// Logs an operator in. In order: the throttle (a locked-out account or
/// address gets 429 before any check), a password-check slot (429 when
/// [`crate::PASSWORD_CHECKS`] are running), the credentials read under
/// the host's store lock, then argon2 on a blocking thread without it.
pub async fn login<S: Host>(
    State(host): State<S>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Response {
    let login = body.login.trim().to_lowercase();
    let addr = host.client_addr(&headers, peer.map(|Extension(ConnectInfo(a))| a));
    let throttle = host.console().login_throttle();
    if let Some(wait) = throttle.locked_for(&login, addr, Instant::now()) {
        tracing::debug!(login = %login, %addr, "console login refused: locked out");
        return too_many(
            wait,
            "too many failed logins for this account or from this address; try again in {secs} s",
        );
    }
    let Some(slot) = host.console().password_check_slot() else {
        return too_many(
            std::time::Duration::from_secs(1),
            "too many logins are being checked at once; try again in {secs} s",
        );
    };
    let h = host.clone();
    let who = login.clone();
    let credentials = match blocking(move || h.with_store(|s| accounts::credentials(s, &who))).await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return account_error(e),
        Err(r) => return r,
    };
    let checked = blocking(move || {
        let _slot = slot;
        accounts::check_password(&body.password, credentials.as_ref())
    })
    .await;
    let role = match checked {
        Ok(Some(role)) => role,
        Ok(None) => {
            let now = Instant::now();
            throttle.record_failure(&login, addr, now);
            match throttle.locked_for(&login, addr, now) {
                Some(wait) => {
                    tracing::warn!(login = %login, %addr, seconds = wait.as_secs_f64(), "console login failed; locked out")
                }
                None => tracing::info!(login = %login, %addr, "console login failed"),
            }
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong login or password",
            );
        }
        Err(r) => return r,
    };
    throttle.record_success(&login);
    let (id, session) = match host.console().open_session(&login, role) {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let csrf = session.csrf.clone();
    // Stored before the cookie is handed out: a restart keeps it.
    let h = host.clone();
    let hash = sessions::token_hash(&id);
    let stored = blocking(move || {
        h.with_store(|s| {
            sessions::sweep(s, crate::unix_now())?;
            sessions::save(s, &hash, &session)
        })
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            host.console().close_session(&id);
            return internal(e);
        }
        Err(r) => {
            host.console().close_session(&id);
            return r;
        }
    }
    let ttl = SESSION_TTL.as_secs();
    let secure = secure_attr(&host);
    let session_cookie =
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{secure}");
    let csrf_cookie =
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={ttl}{secure}");
    let mut resp =
        Json(json!({"login": login, "role": role.as_str(), "csrf": csrf})).into_response();
    for c in [session_cookie, csrf_cookie] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn logout<S: Host>(State(host): State<S>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        host.console().close_session(id);
        let h = host.clone();
        let hash = sessions::token_hash(id);
        match blocking(move || h.with_store(|s| sessions::forget(s, &hash))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return internal(e),
            Err(r) => return r,
        }
    }
    let mut resp = Json(json!({"logged_out": true})).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let c = format!(
            "{name}=; Path=/; SameSite=Strict; Max-Age=0{}",
            secure_attr(&host)
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn me<S: Host>(State(host): State<S>, headers: HeaderMap) -> Response {
    match session_of(host.console(), &headers) {
        Some(s) => {
            Json(json!({"login": s.login, "role": s.role.as_str(), "csrf": s.csrf})).into_response()
        }
        None => unauthorized(),
    }
}

pub async fn list_operators<S: Host>(State(host): State<S>, headers: HeaderMap) -> Response {
    if !may_read(&host, &headers) {
        return unauthorized();
    }
    let h = host.clone();
    match blocking(move || h.with_store(accounts::list_operators)).await {
        Ok(Ok(list)) => {
            let items: Vec<_> = list
                .into_iter()
                .map(|(login, role, at)| json!({"login": login, "role": role.as_str(), "created_at": at}))
                .collect();
            Json(json!({"operators": items})).into_response()
        }
        Ok(Err(e)) => account_error(e),
        Err(r) => r,
    }
}

/// Ends every session of `login`, in memory and in the store.
async fn end_sessions_of<S: Host>(host: &S, login: &str) -> Result<(), Response> {
    host.console().close_sessions_of(login);
    let h = host.clone();
    let who = login.to_string();
    match blocking(move || h.with_store(|s| sessions::forget_login(s, &who))).await? {
        Ok(_) => Ok(()),
        Err(e) => Err(internal(e)),
    }
}

#[derive(Deserialize)]
pub struct OperatorBody {
    role: String,
    password: Option<String>,
}

pub async fn put_operator<S: Host>(
    State(host): State<S>,
    headers: HeaderMap,
    Path(login): Path<String>,
    Json(body): Json<OperatorBody>,
) -> Response {
    if !is_admin(&host, &headers) {
        return forbidden_not_admin();
    }
    let Some(role) = Role::parse(&body.role) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "role must be admin, operator or analyst",
        );
    };
    if let Err(e) = accounts::validate_login(&login) {
        return account_error(e);
    }
    let created = body.password.is_some();
    // Hashed before the store is taken: argon2 must not hold it.
    let hash = match body.password {
        None => None,
        Some(pw) => match blocking(move || accounts::new_password_hash(&pw)).await {
            Ok(Ok(hash)) => Some(hash),
            Ok(Err(e)) => return account_error(e),
            Err(r) => return r,
        },
    };
    let h = host.clone();
    let who = login.clone();
    let result = blocking(move || {
        h.with_store(|s| match hash {
            Some(hash) => accounts::save_operator(s, &who, hash, role, now()).map(|_| true),
            None => accounts::set_role(s, &who, role, now()),
        })
    })
    .await;
    match result {
        Ok(Ok(true)) => {
            if let Err(r) = end_sessions_of(&host, &login).await {
                return r;
            }
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({"login": login, "role": role.as_str()}))).into_response()
        }
        Ok(Ok(false)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no operator `{login}`; send a password to create one"),
        ),
        Ok(Err(e)) => account_error(e),
        Err(r) => r,
    }
}

pub async fn delete_operator<S: Host>(
    State(host): State<S>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Response {
    if !is_admin(&host, &headers) {
        return forbidden_not_admin();
    }
    if session_of(host.console(), &headers).is_some_and(|s| s.login == login) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "an admin cannot delete their own login",
        );
    }
    let h = host.clone();
    let who = login.clone();
    match blocking(move || h.with_store(|s| accounts::delete_operator(s, &who, now()))).await {
        Ok(Ok(())) => {
            if let Err(r) = end_sessions_of(&host, &login).await {
                return r;
            }
            Json(json!({"deleted": login})).into_response()
        }
        Ok(Err(e)) => account_error(e),
        Err(r) => r,
    }
}

/// Keys by name, scopes and creation time (never the key or its full hash).
pub async fn list_keys<S: Host>(State(host): State<S>, headers: HeaderMap) -> Response {
    if !may_read(&host, &headers) {
        return unauthorized();
    }
    let h = host.clone();
    match blocking(move || h.with_store(|s| s.list_settings("write_key/"))).await {
        Ok(Ok(list)) => {
            let items: Vec<_> = list
                .into_iter()
                .map(|(k, v)| {
                    let hash = k.trim_start_matches("write_key/");
                    // A key stored before scopes has none: it may ingest, read, write and erase
                    // (siyu-server `auth::Scopes::LEGACY`, which enforces it).
                    let scopes = v.get("scopes").cloned().unwrap_or_else(|| json!(["ingest", "read", "write", "erase"]));
                    json!({"id": &hash[..hash.len().min(8)], "name": v.get("name"), "created_at": v.get("created_at"), "scopes": scopes})
                })
                .collect();
            Json(json!({"keys": items})).into_response()
        }
        Ok(Err(e)) => internal(e),
        Err(r) => r,
    }
}
