//! Ingestion from web pages (analytics.js / `@segment/analytics-next`):
//! CORS for the ingest routes, and the rules for keys used from a browser.
//!
//! A key in a web page is public, so a browser may only use a key that can
//! do nothing but send events (exactly the `ingest` scope), and only from
//! the origins stored with it (`origins`, set when the key is created).
//! A request carrying `Origin` is a browser's: [`browser_check`] refuses
//! it (403 naming the fix) unless its key is such a key and lists that
//! origin. Console sessions are exempt: the console is same-origin and its
//! guard checks the CSRF token.
//!
//! A preflight (`OPTIONS` on an ingest route) carries no credential, so it
//! is answered for any origin ([`layer`]); what decides is the check on the
//! request itself. Every answer of an ingest route to a request with
//! `Origin` names that origin (`Access-Control-Allow-Origin`), so the page
//! can read successes and refusals alike. Credentials are never allowed
//! (no `Access-Control-Allow-Credentials`): a page cannot ride a console
//! session's cookie.
//!
//! analytics.js may send its key only inside the body (`writeKey`); for an
//! ingest route without `Authorization`, [`write_key_from_body`] reads the
//! body (decompressed, within the body limit) and takes the key from it.

use crate::auth::{Caller, Scope, Scopes};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::sync::Arc;

/// The paths of the ingest routes (access `ingest`), from the route table.
pub struct IngestPaths(pub HashSet<&'static str>);

impl IngestPaths {
    pub fn from_routes(routes: &[crate::request::Route]) -> Self {
        IngestPaths(
            routes
                .iter()
                .filter(|r| r.access == crate::auth::Access::Key(Scope::Ingest))
                .map(|r| r.path)
                .collect(),
        )
    }
}

fn allow_origin(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// CORS for the ingest routes: preflights answered (204), and every
/// answer to a request with `Origin` names it.
pub async fn layer(
    State(paths): State<Arc<IngestPaths>>,
    request: Request,
    next: Next,
) -> Response {
    if !paths.0.contains(request.uri().path()) {
        return next.run(request).await;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        if let Some(origin) = &origin {
            allow_origin(h, origin);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        let asked = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static(
                "authorization, content-type, content-encoding",
            ));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = &origin {
        allow_origin(response.headers_mut(), origin);
    }
    response
}

/// For an ingest request without `Authorization`: the `writeKey` of its
/// JSON body (analytics.js puts it there) becomes its credential. The body
/// is read (and decompressed) here, within the body limit, and handed on
/// decompressed.
pub async fn write_key_from_body(state: &AppState, request: Request) -> Result<Request, ApiError> {
    if request.headers().contains_key(header::AUTHORIZATION) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes =
        crate::request::read_body_decoded(&parts.headers, body, state.0.config.max_body_bytes)
            .await?;
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    #[derive(serde::Deserialize)]
    struct WithKey {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    // A body that is not such JSON keeps no key: the route then answers 401.
    if let Ok(WithKey {
        write_key: Some(key),
    }) = serde_json::from_slice::<WithKey>(&bytes)
    {
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", key.trim())) {
            parts.headers.insert(header::AUTHORIZATION, value);
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A browser's request (it has `Origin`) to an ingest route: its key must
/// be ingest-only and list that origin. Other requests pass.
pub fn browser_check(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let caller = crate::auth::caller(state, headers);
    if matches!(caller, Caller::Session(_)) {
        return Ok(());
    }
    let ingest_only = Scopes::of(&[Scope::Ingest]);
    let grant = crate::auth::credential(headers).and_then(|given| {
        state
            .0
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&crate::auth::hash_key(&given))
            .cloned()
    });
    let Some(grant) = grant.filter(|g| g.scopes == ingest_only) else {
        return Err(ApiError::Forbidden(format!(
            "a browser (Origin `{origin}`) may only use a key with exactly the `ingest` scope, since a key in a web page is public; create one with {{\"scopes\": [\"ingest\"], \"origins\": [\"{origin}\"]}}"
        )));
    };
    if grant.origins.iter().any(|o| o == "*" || o == origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this key may not be used from Origin `{origin}`; its origins are [{}]: create an ingest key with {{\"scopes\": [\"ingest\"], \"origins\": [\"{origin}\"]}}",
            grant.origins.join(", ")
        )))
    }
}
