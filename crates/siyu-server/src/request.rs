//! Request plumbing shared by every route module: the route declaration
//! (`route!`, [`Route`]), body parsing, path-name checks, blocking calls
//! off the async runtime, the reader store connection, engine access and
//! the server clock. Route modules (`crate::routes::*`) use this module;
//! it uses none of them, so the route modules form no circle through it.
//! Credentials are not checked here: `auth::enforce` checks each route's
//! declared access before any handler runs.

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::routing::MethodRouter;
use siyu_engine::Engine;

/// One documented route.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// Who may call it; enforced for every route by `auth::enforce`.
    pub access: Access,
    pub summary: &'static str,
    /// The handler's name: the operation's `operationId` (made unique by
    /// `openapi::document` where one handler serves several paths).
    pub operation: &'static str,
    /// What the handler's own extractors and answer type say (its
    /// `Query<Q>`, `Json<B>`, `Json<R>`), plus what `route!` adds for
    /// handlers that read their body or build their answer themselves.
    pub doc: crate::openapi::RouteDoc,
    pub handler: MethodRouter<AppState>,
}

/// The [`Access`] named by one word in `route!`: `public`, `metrics`,
/// `inbound` (signed webhook), `any_key` (any known credential), or a scope: `ingest`, `read`, `write`,
/// `erase`, `admin`.
macro_rules! access {
    (public) => {
        $crate::auth::Access::Public
    };
    (metrics) => {
        $crate::auth::Access::Metrics
    };
    (inbound) => {
        $crate::auth::Access::InboundSignature
    };
    (ingest) => {
        $crate::auth::Access::Key($crate::auth::Scope::Ingest)
    };
    (read) => {
        $crate::auth::Access::Key($crate::auth::Scope::Read)
    };
    (write) => {
        $crate::auth::Access::Key($crate::auth::Scope::Write)
    };
    (erase) => {
        $crate::auth::Access::Key($crate::auth::Scope::Erase)
    };
    (admin) => {
        $crate::auth::Access::Key($crate::auth::Scope::Admin)
    };
    (any_key) => {
        $crate::auth::Access::AnyKey
    };
}
pub(crate) use access;

/// `route!(get, "/path", read, "summary", handler)`: one documented route
/// and who may call it (see [`access!`]). Every route module uses this one
/// macro (`use crate::request::route;`). The query, body and answer types
/// in `/openapi.json` are read from the handler's signature
/// (`openapi::Documented`); a handler that reads its body or builds its
/// answer itself names them after the handler:
/// `body = Type` (or `body = (Vec<Type>)`: one token; a JSON body it parses with `parse_json`),
/// `body_media = "text/csv"` (a non-JSON body), `answer = Type` (the JSON it
/// serializes into a `Response`), `answer_media = "image/png"` (a non-JSON
/// answer), `statuses = [201, 409]` (statuses besides 200 and those every
/// route of its access and method can answer). The older 4-argument form
/// `route!(get, "/path", "summary", handler)` declares no access: the
/// route is refused to everyone and the authorization matrix test fails
/// until its access is declared.
macro_rules! route {
    ($m:ident, $path:expr, $access:ident, $summary:expr, $h:expr $(, $key:ident = $val:tt)* $(,)?) => {
        $crate::request::Route {
            method: stringify!($m),
            path: $path,
            access: $crate::request::access!($access),
            summary: $summary,
            operation: stringify!($h),
            doc: {
                #[allow(unused_mut)]
                let mut doc = $crate::openapi::RouteDoc::of(&$h);
                $($crate::request::route_doc!(doc, $key = $val);)*
                doc
            },
            handler: $m($h),
        }
    };
    ($m:ident, $path:expr, $summary:expr, $h:expr) => {
        $crate::request::Route {
            method: stringify!($m),
            path: $path,
            access: $crate::auth::Access::Undeclared,
            summary: $summary,
            operation: stringify!($h),
            doc: $crate::openapi::RouteDoc::of(&$h),
            handler: $m($h),
        }
    };
}
/// One `key = value` of `route!` (see there).
macro_rules! route_doc {
    ($doc:ident, body = ($t:ty)) => {
        $doc.body = Some($crate::openapi::Part::json::<$t>())
    };
    ($doc:ident, answer = ($t:ty)) => {
        $doc.answer = Some($crate::openapi::Part::json::<$t>())
    };
    ($doc:ident, body = $t:ty) => {
        $doc.body = Some($crate::openapi::Part::json::<$t>())
    };
    ($doc:ident, body_media = $m:expr) => {
        $doc.body = Some($crate::openapi::Part::media($m))
    };
    ($doc:ident, answer = $t:ty) => {
        $doc.answer = Some($crate::openapi::Part::json::<$t>())
    };
    ($doc:ident, answer_media = $m:expr) => {
        $doc.answer = Some($crate::openapi::Part::media($m))
    };
    ($doc:ident, statuses = [$($s:expr),*]) => {
        $doc.statuses = &[$($s),*]
    };
}
pub(crate) use route;
pub(crate) use route_doc;

/// A definition body as JSON; a syntax error names `what`, line and column.
/// A body whose type is an object must be a JSON object: serde would also
/// read a struct from an array of its fields in order (`[null, 7]`), which
/// the API does not document and a typo should not save.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned + schemars::JsonSchema>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let schema = schemars::SchemaGenerator::default().root_schema_for::<T>();
        if schema.get("type").and_then(|t| t.as_str()) == Some("object") {
            return Err(ApiError::InvalidDefinition(format!(
                "{what}: the body must be a JSON object `{{…}}`, not an array"
            )));
        }
    }
    // Through serde_path_to_error: a value of the wrong type or an unknown
    // field is named by its path (`service_windows.wechat`), not only by
    // where it sits in the text.
    let mut de = serde_json::Deserializer::from_slice(body);
    let named = |e: serde_json::Error, path: String| {
        ApiError::InvalidDefinition(if path.is_empty() || path == "." {
            format!("{what}: line {} column {}: {e}", e.line(), e.column())
        } else {
            format!("{what}: `{path}`: {e}")
        })
    };
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        named(e.into_inner(), path)
    })?;
    de.end().map_err(|e| named(e, String::new()))?;
    Ok(value)
}

/// A name from the path (journey, template, campaign, group …): 1–64
/// characters, no `/`, `:` or control characters.
pub(crate) fn valid_id(id: &str, field: &str) -> Result<(), ApiError> {
    if siyu_automation::journey::valid_name(id) {
        Ok(())
    } else {
        Err(ApiError::InvalidDefinition(format!(
            "{field}: {id:?} must be 1–64 characters without '/', ':' or control characters"
        )))
    }
}

/// Runs `f` on the reader connection, off the async runtime.
pub(crate) fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut dyn siyu_store::Store) -> Result<T, ApiError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(store.as_mut())
    })
}

/// The person holding identity `id` (any of theirs), or 404 naming the fix.
pub(crate) fn resolve(engine: &Engine, id: &str) -> Result<siyu_engine::PersonId, ApiError> {
    engine.person_of(id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no person has identity `{id}`; use a full identity such as `douyin:9f3a01`"
        ))
    })
}

pub(crate) fn read_engine(state: &AppState) -> std::sync::RwLockReadGuard<'_, Engine> {
    state.0.engine.read().unwrap_or_else(|e| e.into_inner())
}

/// Refuses a body not declared as JSON (`application/json` or a `+json`
/// type), as axum's `Json` extractor does for the routes that use it, but
/// as the error table's JSON 415: for handlers that read their own body.
pub(crate) fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(if given.is_empty() {
            "(none)".into()
        } else {
            given.to_string()
        }))
    }
}

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let e = e.into_inner();
        if crate::connections::body_timed_out(e.as_ref()) {
            ApiError::RequestTimeout(e.to_string())
        } else {
            ApiError::TooLarge(limit)
        }
    })
}

/// Reads a body sent with `Content-Encoding: gzip` (or `x-gzip`),
/// `deflate` (zlib, or raw deflate as some clients send it) or none, as
/// analytics SDKs send it (RudderStack's by default). Both the body as
/// sent and the body decompressed are held to `limit`: a small gzip bomb
/// is a 413 once its output passes the limit, never more memory.
pub(crate) async fn read_body_decoded(
    headers: &axum::http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let raw = read_body(body, limit).await?;
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" | "deflate" => blocking(move || decode(&encoding, &raw, limit)).await,
        other => Err(ApiError::BadRequest(format!(
            "Content-Encoding `{other}` is not supported; send the body as is, gzip or deflate"
        ))),
    }
}

/// Decompresses `raw` (see [`read_body_decoded`]), at most `limit` bytes.
pub(crate) fn decode(
    encoding: &str,
    raw: &[u8],
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    use std::io::Read;
    let read = |reader: &mut dyn Read| -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.take(limit as u64 + 1).read_to_end(&mut out)?;
        Ok(out)
    };
    let out = match encoding {
        "deflate" => read(&mut flate2::read::ZlibDecoder::new(raw))
            .or_else(|_| read(&mut flate2::read::DeflateDecoder::new(raw))),
        _ => read(&mut flate2::read::MultiGzDecoder::new(raw)),
    }
    .map_err(|e| {
        ApiError::BadRequest(format!(
            "body is not valid {encoding} data ({e}); compress the whole body, or send it uncompressed without Content-Encoding"
        ))
    })?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(out.into())
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's id goes along: the thread's log lines carry it.
    let request = crate::trace::current();
    tokio::task::spawn_blocking(move || crate::trace::in_scope(request.as_ref(), f))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

pub(crate) fn now() -> i64 {
    crate::writer::wall_clock()
}

/// `?archived=true` on a listing: archived definitions are listed too
/// (they are hidden by default).
#[derive(serde::Deserialize, Default, schemars::JsonSchema)]
pub(crate) struct ArchivedQuery {
    #[serde(default)]
    pub archived: bool,
}

/// The answer of every `DELETE /v1/<kind>/{name}`: what was removed
/// (`deleted`) or archived (`archived`: history stays, saving it again
/// restores it).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Removed {
    /// `segment`, `property`, `template`, `autoreply_rule`, `journey`,
    /// `campaign`, `group`, `livecode`, `content`, `partner`.
    pub kind: &'static str,
    pub name: String,
    pub deleted: bool,
    pub archived: bool,
}

impl Removed {
    pub fn deleted(kind: &'static str, name: String) -> Removed {
        Removed {
            kind,
            name,
            deleted: true,
            archived: false,
        }
    }
    pub fn archived(kind: &'static str, name: String) -> Removed {
        Removed {
            kind,
            name,
            deleted: false,
            archived: true,
        }
    }
}

/// The audit row of a deletion or archive (`delete_segment`,
/// `archive_journey` …); `detail` is free-form per action (stored JSON).
pub(crate) fn removal_audit(
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> siyu_store::AuditRecord {
    siyu_store::AuditRecord {
        id: 0,
        at: now(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail,
    }
}
