//! Credentials and what they may do. Every route declares its [`Access`]
//! in the route table (`routes::all()`, over the route modules); [`enforce`] is the
//! one layer that checks it, so no handler has to remember.
//!
//! A request's credential is resolved to a set of [`Scopes`]:
//! - an API key (`Authorization: Bearer <key>`, or HTTP basic auth with the
//!   key as user name, as Segment's SDKs send it): the scopes stored with
//!   it. Keys are random, shown once, and stored only as SHA-256 hashes
//!   (settings `write_key/<hash>` = `{"name", "created_at", "scopes"}`);
//! - the admin token from the configuration: every scope;
//! - a console session (cookie; its guard checked the CSRF token): the
//!   scopes of the operator's role (analyst = read; operator = ingest, read,
//!   write; admin = every scope);
//! - the process's internal key (the dashboard cache warmer): read.
//!
//! Migration: a key stored before scopes existed has no `scopes` field and
//! keeps what it could do before: [`Scopes::LEGACY`] = ingest, read, write
//! and erase (erasure used to take any key). It never gains `admin` (keys
//! were managed with the admin token only).
//!
//! The server reloads the keys from the store when another process on the
//! same store (another node, `siyu keys create`) changes one
//! (`crate::cluster`), so it takes effect within a second.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use siyu_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

/// What a credential may do. `ingest` is publishable (safe in a browser
/// or an app); the others are secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send events: `/v1/events` and the Segment endpoints (order imports
    /// answer which orders matched a person, a read: they need `write`).
    /// Reads nothing.
    Ingest,
    /// Read persons, segments, analytics, definitions, the outbox.
    Read,
    /// Change definitions (segments, journeys, templates, campaigns …),
    /// send messages, record consent.
    Write,
    /// Erase a person. Legacy keys keep it; `admin` includes it.
    Erase,
    /// Manage keys (and erase).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Ingest,
        Scope::Read,
        Scope::Write,
        Scope::Erase,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Erase => "erase",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// What the scope allows, for error messages and the API document.
    pub fn meaning(self) -> &'static str {
        match self {
            Scope::Ingest => "send events (publishable: safe in a browser or app)",
            Scope::Read => "read persons, segments, analytics and definitions",
            Scope::Write => "change definitions, send messages, record consent",
            Scope::Erase => "erase persons",
            Scope::Admin => "manage keys and erase persons",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes(0b1_1111);
    /// A key stored without scopes (created before they existed): what any
    /// key could do then.
    pub const LEGACY: Scopes =
        Scopes::of(&[Scope::Ingest, Scope::Read, Scope::Write, Scope::Erase]);

    pub const fn of(scopes: &[Scope]) -> Scopes {
        let mut bits = 0u8;
        let mut i = 0;
        while i < scopes.len() {
            bits |= 1 << scopes[i] as u8;
            i += 1;
        }
        Scopes(bits)
    }

    /// Whether these scopes allow `needed`; `admin` includes `erase`.
    pub fn allow(self, needed: Scope) -> bool {
        self.0 & needed.bit() != 0 || (needed == Scope::Erase && self.0 & Scope::Admin.bit() != 0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Parses scope names (the API's `scopes`, the CLI's `--scope`); the
    /// error names the bad one and lists the valid ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut bits = 0u8;
        for name in names {
            let s = Scope::parse(name).ok_or_else(|| {
                format!(
                    "unknown scope `{name}`; use one or more of {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            bits |= s.bit();
        }
        if bits == 0 {
            return Err(format!(
                "give at least one scope: {}",
                Scope::ALL.map(Scope::as_str).join(", ")
            ));
        }
        Ok(Scopes(bits))
    }

    /// The scopes of a stored key record: its `scopes` list, or
    /// [`Scopes::LEGACY`] when it has none (a key from before scopes).
    pub fn of_record(record: &Value) -> Scopes {
        match record.get("scopes").and_then(Value::as_array) {
            None => Scopes::LEGACY,
            Some(list) => Scopes(
                list.iter()
                    .filter_map(|v| v.as_str().and_then(Scope::parse))
                    .fold(0, |bits, s| bits | s.bit()),
            ),
        }
    }

    /// The scopes of a console role.
    pub fn of_role(role: siyu_console::OperatorRole) -> Scopes {
        use siyu_console::OperatorRole as R;
        match role {
            R::Analyst => Scopes::of(&[Scope::Read]),
            R::Operator => Scopes::of(&[Scope::Ingest, Scope::Read, Scope::Write]),
            R::Admin => Scopes::ALL,
        }
    }
}

/// What a route needs, declared beside it in the route table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: liveness, the API document, and the public links whose
    /// handler checks a signed token (`/u/`, `/c/`, `/i/`, `/l/`).
    Public,
    /// `/metrics`: open unless `metrics_token` is configured, then that
    /// token (or the admin token) as a bearer credential.
    Metrics,
    /// A credential with this scope.
    Key(Scope),
    /// Any known credential, whatever its scopes (`/v1/workspace`: which
    /// workspace a key belongs to).
    AnyKey,
    /// An inbound channel webhook or a channel's own callback: the handler
    /// verifies its signature (the HMAC with the channel's `[inbound]`
    /// secret; WeCom's `msg_signature`).
    InboundSignature,
    /// A route declared without an access (the 4-argument `route!`):
    /// refused to everyone until it is declared.
    Undeclared,
}

impl Access {
    /// How the API document and error messages describe it.
    pub fn describe(self) -> String {
        match self {
            Access::Public => "Public: no credential.".into(),
            Access::Metrics => "Open, unless `metrics_token` is configured: then `Authorization: Bearer <metrics token>` (or the admin token).".into(),
            Access::Key(s) => format!(
                "Needs the `{}` scope ({}): a key created with it, a console session whose role has it, or the admin token.",
                s.as_str(),
                s.meaning()
            ),
            Access::InboundSignature => "Signed by the sending channel, no key: `/v1/inbound/{channel}` with the channel's `[inbound]` secret (`X-Siyu-Timestamp`, `X-Siyu-Signature: sha256=…`); `/callbacks/wecom` with WeCom's `msg_signature` (the `[connectors.wecom]` token).".into(),
            Access::AnyKey => "Any key (of any scope), console session or the admin token.".into(),
            Access::Undeclared => "Undeclared: refused.".into(),
        }
    }
}

/// Each route's access by (method, path template), built from the route
/// table for [`enforce`].
pub struct AccessTable(HashMap<(&'static str, &'static str), Access>);

impl AccessTable {
    pub fn new(routes: impl IntoIterator<Item = (&'static str, &'static str, Access)>) -> Self {
        AccessTable(
            routes
                .into_iter()
                .map(|(method, path, access)| ((method, path), access))
                .collect(),
        )
    }

    /// The access of `method path`; a route missing from the table is
    /// [`Access::Undeclared`] (refused). HEAD is answered by GET routes.
    pub fn get(&self, method: &Method, path: &str) -> Access {
        let m = match *method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "post",
            Method::PUT => "put",
            Method::DELETE => "delete",
            Method::PATCH => "patch",
            _ => return Access::Undeclared,
        };
        self.0
            .get(&(m, path))
            .copied()
            .unwrap_or(Access::Undeclared)
    }

    /// The methods declared on `path` (lowercase), for a 405's message.
    pub fn methods_of(&self, path: &str) -> Vec<&'static str> {
        let mut m: Vec<&'static str> = self
            .0
            .keys()
            .filter(|(_, p)| *p == path)
            .map(|(m, _)| *m)
            .collect();
        m.sort_unstable();
        m
    }
}

/// Who is calling, as far as authorization cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Nobody,
    /// A credential that is no known key, token or session.
    Unknown,
    AdminToken,
    Internal,
    Key(Scopes),
    Session(siyu_console::OperatorRole),
}

impl Caller {
    pub fn scopes(&self) -> Scopes {
        match self {
            Caller::Nobody | Caller::Unknown => Scopes::NONE,
            Caller::AdminToken => Scopes::ALL,
            Caller::Internal => Scopes::of(&[Scope::Read]),
            Caller::Key(s) => *s,
            Caller::Session(role) => Scopes::of_role(*role),
        }
    }
}

/// The caller of a request. A console session counts first (its guard
/// layer checked the CSRF token of unsafe requests), then the bearer or
/// basic credential.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Caller {
    if let Some(session) = siyu_console::session_of(&state.0.console, headers) {
        return Caller::Session(session.role);
    }
    let Some(given) = credential(headers) else {
        return Caller::Nobody;
    };
    if let Some(token) = state.0.config.admin_token.as_deref() {
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Caller::AdminToken;
        }
    }
    if constant_time_eq(given.as_bytes(), state.0.internal_key.as_bytes()) {
        return Caller::Internal;
    }
    let keys = state.0.keys.read().unwrap_or_else(|e| e.into_inner());
    match keys.get(&hash_key(&given)) {
        Some(grant) => Caller::Key(grant.scopes),
        None => Caller::Unknown,
    }
}

/// Whether `caller` may use a route with `access`: Ok, or the error to
/// answer (401 without a known credential, 403 naming the missing scope).
pub fn authorize(state: &AppState, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
    match access {
        Access::Public | Access::InboundSignature => Ok(()),
        Access::Undeclared => Err(ApiError::Forbidden(
            "this route declares no access, so it is refused to everyone".into(),
        )),
        Access::Metrics => {
            let Some(token) = state.0.config.metrics_token.as_deref() else {
                return Ok(());
            };
            let given = credential(headers).unwrap_or_default();
            let admin = state.0.config.admin_token.as_deref();
            if constant_time_eq(given.as_bytes(), token.as_bytes())
                || admin.is_some_and(|a| constant_time_eq(given.as_bytes(), a.as_bytes()))
            {
                Ok(())
            } else {
                Err(ApiError::Unauthorized)
            }
        }
        Access::AnyKey => match caller(state, headers) {
            Caller::Nobody | Caller::Unknown => Err(ApiError::Unauthorized),
            _ => Ok(()),
        },
        Access::Key(needed) => {
            let who = caller(state, headers);
            if matches!(who, Caller::Nobody | Caller::Unknown) {
                return Err(ApiError::Unauthorized);
            }
            if who.scopes().allow(needed) {
                return Ok(());
            }
            let how = match &who {
                Caller::Session(role) => format!(
                    "the {} role lacks the `{}` scope ({}); ask an admin",
                    role.as_str(),
                    needed.as_str(),
                    needed.meaning()
                ),
                _ => format!(
                    "this key lacks the `{0}` scope ({1}); use a key created with `--scope {0}` (or `\"scopes\": [\"{0}\"]`)",
                    needed.as_str(),
                    needed.meaning()
                ),
            };
            Err(ApiError::Forbidden(how))
        }
    }
}

/// The one authorization layer: looks up the matched route's declared
/// access and refuses the request unless the caller has it. On ingest
/// routes a key may come in the body (`writeKey`), and a browser's request
/// obeys the key's origins (`crate::browser`).
pub async fn enforce(
    State((state, table)): State<(AppState, Arc<AccessTable>)>,
    request: Request,
    next: Next,
) -> Response {
    let access = match request.extensions().get::<MatchedPath>() {
        Some(path) => table.get(request.method(), path.as_str()),
        None => Access::Undeclared,
    };
    if access == Access::Undeclared {
        // A known path asked with a method it does not take: say which it
        // takes (nothing is run either way).
        if let Some(path) = request.extensions().get::<MatchedPath>() {
            let methods = table.methods_of(path.as_str());
            if !methods.is_empty() {
                return ApiError::MethodNotAllowed(format!(
                    "method {} is not allowed on {}; it takes {}",
                    request.method(),
                    path.as_str(),
                    methods
                        .iter()
                        .map(|m| m.to_ascii_uppercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into_response();
            }
        }
    }
    let request = if access == Access::Key(Scope::Ingest) {
        // analytics.js may carry its key in the body only (`writeKey`).
        match crate::browser::write_key_from_body(&state, request).await {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    } else {
        request
    };
    let checked = authorize(&state, request.headers(), access).and_then(|()| {
        if access == Access::Key(Scope::Ingest) {
            crate::browser::browser_check(&state, request.headers())
        } else {
            Ok(())
        }
    });
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

pub fn hash_key(key: &str) -> String {
    siyu_console::accounts::hex(&Sha256::digest(key.as_bytes()))
}

/// A new random key (`sk_` + 48 hex digits from the OS generator).
pub fn new_key() -> std::io::Result<String> {
    let bytes = siyu_console::accounts::random_bytes::<24>()?;
    Ok(format!("sk_{}", siyu_console::accounts::hex(&bytes)))
}

/// Creates and saves a key with `scopes`; returns the key (shown once).
pub fn create_key(
    store: &mut dyn Store,
    name: &str,
    scopes: Scopes,
    now: i64,
) -> anyhow::Result<String> {
    create_key_for_origins(store, name, scopes, &[], now)
}

/// Checks a key's browser origins: each `scheme://host[:port]` (no path)
/// or `*`; only an ingest-only key may have any
/// ([`crate::browser::browser_check`]).
pub fn check_origins(scopes: Scopes, origins: &[String]) -> Result<(), String> {
    if origins.is_empty() {
        return Ok(());
    }
    if scopes != Scopes::of(&[Scope::Ingest]) {
        return Err(format!(
            "origins: only a key with exactly the `ingest` scope may be used from browsers (its key is public in the page); this key has {}",
            scopes.names().join(", ")
        ));
    }
    if origins.len() > 64 {
        return Err("origins: at most 64 per key".into());
    }
    for o in origins {
        let ok = o == "*"
            || ((o.starts_with("https://") || o.starts_with("http://"))
                && o.len() <= 256
                && !o.ends_with('/')
                && o.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty() && !rest.contains(['/', '?', '#', ' '])
                }));
        if !ok {
            return Err(format!(
                "origins: `{o}` is not an origin; write `https://shop.example` (scheme, host and port, no path) or `*`"
            ));
        }
    }
    Ok(())
}

/// Creates and saves a key with `scopes`, usable from browsers on
/// `origins` (see [`check_origins`]); returns the key (shown once).
pub fn create_key_for_origins(
    store: &mut dyn Store,
    name: &str,
    scopes: Scopes,
    origins: &[String],
    now: i64,
) -> anyhow::Result<String> {
    if name.is_empty() || name.len() > 64 {
        anyhow::bail!("key name must be 1..64 characters");
    }
    if scopes == Scopes::NONE {
        anyhow::bail!("a key needs at least one scope");
    }
    check_origins(scopes, origins).map_err(anyhow::Error::msg)?;
    let key = new_key()?;
    let mut record = serde_json::json!({"name": name, "created_at": now, "scopes": scopes.names()});
    if !origins.is_empty() {
        record["origins"] = serde_json::json!(origins);
    }
    store.put_setting(&format!("write_key/{}", hash_key(&key)), Some(&record))?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at: now,
        action: "write_key_created".into(),
        subject: name.into(),
        detail: serde_json::json!({"scopes": scopes.names(), "origins": origins}),
    })?;
    Ok(key)
}

/// What one stored key grants: its scopes, and the web origins a browser
/// may use it from (`origins`: `https://shop.example`, or `*`; only for
/// ingest-only keys, see `crate::browser`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyGrant {
    pub scopes: Scopes,
    pub origins: Vec<String>,
}

impl KeyGrant {
    /// The grant of a stored key record.
    pub fn of_record(record: &Value) -> KeyGrant {
        KeyGrant {
            scopes: Scopes::of_record(record),
            origins: record
                .get("origins")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Every saved key: hash → what it grants. A key whose row cannot be read is
/// logged and left out (it stops working) instead of stopping the start-up.
pub fn load_keys(store: &mut dyn Store) -> anyhow::Result<HashMap<String, KeyGrant>> {
    let (keys, _unreadable) = crate::quarantine::readable(store.list_settings_each("write_key/")?);
    Ok(keys
        .into_iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches("write_key/").to_string(),
                KeyGrant::of_record(&v),
            )
        })
        .collect())
}

/// The credential of a request: `Authorization: Bearer <key>`, or HTTP basic
/// auth with the key as user name (what Segment's SDKs send).
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    let basic = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(user, _)| user)
            .to_string(),
    )
}

/// Equal bytes, compared in constant time (`subtle`); lengths are public.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_scopes_and_the_legacy_migration() {
        // A key saved before scopes existed keeps what it could do then.
        let legacy = Scopes::of_record(&json!({"name": "old", "created_at": 1}));
        assert_eq!(legacy.names(), ["ingest", "read", "write", "erase"]);
        assert!(!legacy.allow(Scope::Admin));
        let ingest = Scopes::of_record(&json!({"name": "sdk", "scopes": ["ingest"]}));
        assert!(ingest.allow(Scope::Ingest));
        assert!(!ingest.allow(Scope::Read) && !ingest.allow(Scope::Erase));
        // `admin` includes erasure, nothing else.
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(admin.allow(Scope::Erase) && !admin.allow(Scope::Read));
        assert_eq!(
            Scopes::parse(["read", "write"]).unwrap().names(),
            ["read", "write"]
        );
        assert!(Scopes::parse(["root"])
            .unwrap_err()
            .contains("unknown scope `root`"));
        assert!(Scopes::parse([]).unwrap_err().contains("at least one"));
    }

    #[test]
    fn head_is_answered_by_get_and_unknown_routes_are_undeclared() {
        let table = AccessTable::new([("get", "/v1/x", Access::Key(Scope::Read))]);
        assert_eq!(table.get(&Method::HEAD, "/v1/x"), Access::Key(Scope::Read));
        assert_eq!(table.get(&Method::POST, "/v1/x"), Access::Undeclared);
        assert_eq!(table.get(&Method::GET, "/v1/y"), Access::Undeclared);
    }
}
