//! siyu's operator console: a web UI embedded in the binary (HTML, CSS and
//! vanilla JS, no build step, no CDN) plus what it needs on the server:
//! operator accounts ([`accounts`]), sessions that survive a restart
//! ([`sessions`]), and a guard layer that lets a session cookie stand in
//! for a write key.
//!
//! The host (siyu-server) implements [`Host`] for its state, merges
//! [`router`] into its router and wraps every route in [`guard`]. The
//! console's JS calls the host's `/v1/...` endpoints with the session
//! cookie; the host accepts a request whose [`session_of`] is valid where
//! it accepts a write key. The guard is what makes that safe:
//!
//! - a request carrying a valid session cookie and an unsafe method needs
//!   the `x-csrf-token` header equal to the session's token (the token is
//!   also in the readable `siyu_csrf` cookie: double submit, bound to the
//!   session), else 403 `forbidden`;
//! - what a session may do is decided by the host, not here: the server
//!   maps the role to scopes (analyst = read; operator = ingest, read,
//!   write; admin = every scope) and checks them against the access each
//!   route declares, in the one layer that checks keys too. The console's
//!   own operator management (`/console/api/operators`) needs an admin
//!   session or the admin token (checked by its handlers).
//!
//! Logins are throttled per account and per client address
//! ([`throttle`]: 429 with `Retry-After` after repeated failures), and the
//! argon2 check runs on a blocking thread outside the host's store lock,
//! at most [`PASSWORD_CHECKS`] at a time (429 beyond that), so a login
//! flood neither slows the host's readers nor takes its blocking threads.
//!
//! Sessions live in memory ([`Console`]) and in the store (settings
//! `console_session/<sha256 of the token>`, never the token itself). The
//! guard runs before every route: a cookie naming a session this process
//! has not seen is looked up in the store once and kept in memory, so the
//! host's synchronous [`session_of`] finds it.
//!
//! May depend on: `siyu-store` (operator accounts and sessions are settings),
//! axum and tokio (it is a set of routes the server mounts), argon2. Never on
//! `siyu-server`: the server reaches it through the `Host` trait.

pub mod accounts;
mod assets;
mod handlers;
pub mod sessions;
pub mod throttle;

use crate::accounts::Role;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use siyu_store::Store;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use accounts::Role as OperatorRole;

/// What the console needs from the server it is embedded in.
pub trait Host: Clone + Send + Sync + 'static {
    fn console(&self) -> &Console;
    /// Runs `f` on a store connection. Blocking: call from `spawn_blocking`.
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> T) -> T;
    /// The configured admin token (bootstraps the first operator).
    fn admin_token(&self) -> Option<&str>;
    /// The client's address, under which failed logins are counted:
    /// `peer` is the TCP peer (None when served in-process); the host
    /// decides which proxy headers, if any, it trusts.
    fn client_addr(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr;
    /// The address people reach the server at (`public_url`); session
    /// cookies are `Secure` when it is `https://`.
    fn public_url(&self) -> &str;
}

/// Argon2 password checks run at once at most (each takes ~19 MiB and a
/// core for tens of milliseconds); a login beyond that gets 429.
pub const PASSWORD_CHECKS: usize = 2;

pub const SESSION_COOKIE: &str = "siyu_session";
pub const CSRF_COOKIE: &str = "siyu_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session lasts this long from login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub login: String,
    pub role: Role,
    pub csrf: String,
    /// Epoch seconds; the session is over at this instant.
    pub expires_at: i64,
}

impl Session {
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// Epoch seconds now (sessions expire on the wall clock: they outlive the
/// process).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The sessions this process has seen, by the SHA-256 of their token. The
/// store holds them too ([`sessions`]); this table is the cache the guard
/// fills on a miss. Also the login throttle and the password-check slots.
pub struct Console {
    sessions: RwLock<HashMap<String, Session>>,
    login_throttle: throttle::LoginThrottle,
    password_checks: Arc<Semaphore>,
}

impl Default for Console {
    fn default() -> Self {
        Console::with_login_limits(throttle::LoginPolicy::default(), PASSWORD_CHECKS)
    }
}

impl Console {
    /// A console with its own throttling policy and number of concurrent
    /// password checks (tests use short delays).
    pub fn with_login_limits(policy: throttle::LoginPolicy, password_checks: usize) -> Self {
        Console {
            sessions: RwLock::default(),
            login_throttle: throttle::LoginThrottle::new(policy),
            password_checks: Arc::new(Semaphore::new(password_checks.max(1))),
        }
    }

    /// The failed-login counts.
    pub fn login_throttle(&self) -> &throttle::LoginThrottle {
        &self.login_throttle
    }

    /// A slot for one password check, if one is free.
    pub(crate) fn password_check_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.password_checks.clone().try_acquire_owned().ok()
    }

    /// Opens a session in memory; returns (token, session). The caller
    /// stores it ([`sessions::save`]) before handing the token out.
    pub fn open_session(&self, login: &str, role: Role) -> std::io::Result<(String, Session)> {
        let token = accounts::hex(&accounts::random_bytes::<32>()?);
        let csrf = accounts::hex(&accounts::random_bytes::<24>()?);
        let now = unix_now();
        let session = Session {
            login: login.into(),
            role,
            csrf,
            expires_at: now + SESSION_TTL.as_secs() as i64,
        };
        let mut table = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        table.retain(|_, s| s.is_live(now));
        table.insert(sessions::token_hash(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of `token` if this process knows it (see
    /// [`guard`] for the store lookup on a miss).
    pub fn session(&self, token: &str) -> Option<Session> {
        let table = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        table
            .get(&sessions::token_hash(token))
            .filter(|s| s.is_live(unix_now()))
            .cloned()
    }

    /// Remembers a session loaded from the store.
    pub fn remember(&self, hash: String, session: Session) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, session);
    }

    /// Forgets the session of `token` in memory (logout also deletes it
    /// from the store: [`sessions::forget`]).
    pub fn close_session(&self, token: &str) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sessions::token_hash(token));
    }

    /// Forgets the session stored as `hash` in memory: another node
    /// changed or deleted its record (logout, role change); the next
    /// request reads the store again.
    pub fn forget_cached(&self, hash: &str) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    /// Forgets every session in memory (the periodic full check of what
    /// other nodes changed): each is read from the store again on its next
    /// request.
    pub fn forget_all_cached(&self) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Ends every session of `login` in memory (after a role change or
    /// deletion; the store's: [`sessions::forget_login`]).
    pub fn close_sessions_of(&self, login: &str) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.login != login);
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The live session named by the request's session cookie.
pub fn session_of(console: &Console, headers: &HeaderMap) -> Option<Session> {
    console.session(cookie(headers, SESSION_COOKIE)?)
}

/// Whether the request carries an admin session (the guard has already
/// checked its CSRF token if the method is unsafe).
pub fn is_admin_session(console: &Console, headers: &HeaderMap) -> bool {
    session_of(console, headers).is_some_and(|s| s.role == Role::Admin)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// A console error body, shaped like the API's: `{"code", "message"}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"code": code, "message": message})),
    )
        .into_response()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Loads the session the request's cookie names from the store when this
/// process does not know it (after a restart, or opened by another
/// process over the same store).
async fn load_on_miss<S: Host>(host: &S, headers: &HeaderMap) {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return;
    };
    if !sessions::plausible_token(token) || host.console().session(token).is_some() {
        return;
    }
    let hash = sessions::token_hash(token);
    let h = host.clone();
    let key = hash.clone();
    let loaded =
        tokio::task::spawn_blocking(move || h.with_store(|s| sessions::load(s, &key, unix_now())))
            .await;
    match loaded {
        Ok(Ok(Some(session))) => host.console().remember(hash, session),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "loading a console session"),
        Err(e) => tracing::warn!(error = %e, "loading a console session"),
    }
}

/// The session/CSRF guard around every route (see the module docs).
pub async fn guard<S: Host>(State(host): State<S>, req: Request, next: Next) -> Response {
    load_on_miss(&host, req.headers()).await;
    if is_safe(req.method()) {
        return next.run(req).await;
    }
    let Some(session) = session_of(host.console(), req.headers()) else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/console/api/login" {
        return next.run(req).await;
    }
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "missing or wrong CSRF token: send the `x-csrf-token` header with the value of the `siyu_csrf` cookie",
        );
    }
    next.run(req).await
}

/// The console's routes: the page, its assets and `/console/api/*`.
pub fn router<S: Host>() -> Router<S> {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/console/api/login", post(handlers::login::<S>))
        .route("/console/api/logout", post(handlers::logout::<S>))
        .route("/console/api/me", get(handlers::me::<S>))
        .route("/console/api/operators", get(handlers::list_operators::<S>))
        .route(
            "/console/api/operators/{login}",
            put(handlers::put_operator::<S>).delete(handlers::delete_operator::<S>),
        )
        .route("/console/api/keys", get(handlers::list_keys::<S>))
}
