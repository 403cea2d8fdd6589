//! `/openapi.json`, generated from the route table (`routes::all()`) and
//! from the types the handlers really read and answer: each handler's
//! `Query<Q>`, `Json<B>` and `Json<R>` are found in its signature
//! ([`Documented`], the way axum finds its extractors), and their JSON
//! Schemas come from `#[derive(JsonSchema)]` on those same types
//! (schemars, OpenAPI 3.0 settings). So the document cannot drift from
//! the code: a handler whose extractor or answer has no schema does not
//! compile. Why schemars and not utoipa or aide: it is one derive beside
//! serde's, reading serde's attributes, and leaves the route table
//! (`route!`, which also feeds the router and `auth::enforce`) as the one
//! place routes are declared; utoipa would declare each path a second
//! time in a `#[utoipa::path]` attribute, aide would replace that table
//! with its own router.

use crate::auth::Access;
use crate::error::ApiError;
use crate::ingest::SEGMENT_MAPPING;
use crate::request::Route;

/// What ingestion answers, for `/v1/events` and the Segment endpoints.
const INGEST_RESPONSES: &str =
    "Response: 200 `{accepted, duplicates, rejected: [{index, field, message}], offsets}` \
whenever at least one event was valid. A batch with some invalid events is still 200 (not 207): \
the valid ones are stored and each invalid one is listed in `rejected`, so check that list. \
400 `invalid_event` (same body) when no event was valid; 400 `bad_request` when the body cannot \
be read at all (invalid UTF-8; malformed JSON, with line and column); 413 `payload_too_large` \
above the body limit (default 8 MiB): split the batch. 200 means durable: the events are committed \
(group commit) and visible to reads. Idempotent on the event `id`: a replayed id is counted in \
`duplicates` and stored once.";

/// The long description of a path, where the summary is not enough.
fn description(path: &str) -> Option<String> {
    match path {
        "/v1/events" => Some(format!(
            "Body: a JSON array of wire-format v1 events, or NDJSON (Content-Type \
             application/x-ndjson, or any body not starting with `[`). Each event is validated \
             on its own.\n\n{INGEST_RESPONSES}"
        )),
        "/v1/track" | "/v1/identify" | "/v1/alias" | "/v1/page" | "/v1/batch" => {
            Some(format!("{SEGMENT_MAPPING}\n{INGEST_RESPONSES}"))
        }
        _ => None,
    }
}
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

/// A request body or an answer: a JSON type, or another media type.
#[derive(Clone, Copy)]
pub enum Part {
    Json(fn(&mut SchemaGenerator) -> Schema),
    Media(&'static str),
    /// A public link's answer: the JSON type, or a page for a browser
    /// (`text/html` preferred in `Accept`; `h5::Answer`).
    Page(fn(&mut SchemaGenerator) -> Schema),
}

impl Part {
    pub fn json<T: JsonSchema>() -> Part {
        Part::Json(|g| g.subschema_for::<T>())
    }
    pub fn page<T: JsonSchema>() -> Part {
        Part::Page(|g| g.subschema_for::<T>())
    }
    pub const fn media(media: &'static str) -> Part {
        Part::Media(media)
    }
}

/// What one route takes and answers besides its path.
#[derive(Clone, Copy, Default)]
pub struct RouteDoc {
    /// The handler's `Query<Q>`: each field of Q is one query parameter.
    pub query: Option<fn() -> Schema>,
    pub body: Option<Part>,
    /// The 2XX answer (`None`: no body, e.g. a redirect).
    pub answer: Option<Part>,
    /// Statuses the route may answer besides 200 and those every route
    /// of its access and method may (see [`error_statuses`]).
    pub statuses: &'static [u16],
}

impl RouteDoc {
    /// The doc a handler's signature gives (see [`Documented`]).
    pub fn of<Args, H: Documented<Args>>(_: &H) -> RouteDoc {
        H::doc()
    }
}

/// An extractor's part of the document (none for state, path, headers).
pub trait Extracted {
    fn add(_doc: &mut RouteDoc) {}
}

/// An answer type's part of the document.
pub trait Answered {
    fn add(_doc: &mut RouteDoc) {}
}

/// A handler whose arguments are all [`Extracted`] and whose output is
/// [`Answered`]: its document part, found from its signature.
pub trait Documented<Args> {
    fn doc() -> RouteDoc;
}

macro_rules! documented {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> Documented<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut,
            Fut: std::future::Future,
            Fut::Output: Answered,
            $($arg: Extracted,)*
        {
            fn doc() -> RouteDoc {
                #[allow(unused_mut)]
                let mut doc = RouteDoc::default();
                $($arg::add(&mut doc);)*
                <Fut::Output as Answered>::add(&mut doc);
                doc
            }
        }
    };
}
documented!();
documented!(A1);
documented!(A1, A2);
documented!(A1, A2, A3);
documented!(A1, A2, A3, A4);
documented!(A1, A2, A3, A4, A5);
documented!(A1, A2, A3, A4, A5, A6);

impl<S> Extracted for axum::extract::State<S> {}
impl<T> Extracted for axum::extract::Path<T> {}
impl<T> Extracted for Option<axum::Extension<T>> {}
impl Extracted for axum::http::HeaderMap {}
impl Extracted for axum::extract::MatchedPath {}
impl Extracted for axum::body::Body {}
impl Extracted for axum::body::Bytes {}
impl<T: JsonSchema> Extracted for axum::extract::Query<T> {
    fn add(doc: &mut RouteDoc) {
        doc.query = Some(|| {
            SchemaSettings::openapi3()
                .with(|s| s.inline_subschemas = true)
                .into_generator()
                .into_root_schema_for::<T>()
        });
    }
}
impl<T: JsonSchema> Extracted for axum::Json<T> {
    fn add(doc: &mut RouteDoc) {
        doc.body = Some(Part::json::<T>());
    }
}

impl<T: JsonSchema> Answered for axum::Json<T> {
    fn add(doc: &mut RouteDoc) {
        doc.answer = Some(Part::json::<T>());
    }
}
impl<T: Answered, E> Answered for Result<T, E> {
    fn add(doc: &mut RouteDoc) {
        T::add(doc)
    }
}
impl<T: JsonSchema> Answered for (axum::http::StatusCode, axum::Json<T>) {
    fn add(doc: &mut RouteDoc) {
        doc.answer = Some(Part::json::<T>());
    }
}
impl<T> Answered for axum::response::Html<T> {
    fn add(doc: &mut RouteDoc) {
        doc.answer = Some(Part::media("text/html"));
    }
}
/// Built by hand: `route!` names its media type or JSON type.
impl Answered for axum::response::Response {}

/// The query parameters of a `Query<Q>`: one per field of Q's schema.
fn query_params(query: fn() -> Schema) -> Vec<Value> {
    let schema = query().to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop
                .as_object_mut()
                .and_then(|p| p.remove("description"))
                .unwrap_or(Value::Null);
            // An absent parameter is the Option's None; an empty one is
            // not a null.
            if let Some(p) = prop.as_object_mut() {
                p.remove("nullable");
                p.remove("default");
            }
            let mut param = json!({"name": name, "in": "query",
                "required": required.contains(&name.as_str()), "schema": prop});
            if !description.is_null() {
                param["description"] = description;
            }
            param
        })
        .collect()
}

/// The OpenAPI `content` of a body or an answer.
fn content(part: Part, generator: &mut SchemaGenerator) -> Value {
    match part {
        Part::Json(schema) | Part::Page(schema) => {
            let mut schema = schema(generator);
            for t in generator.transforms_mut() {
                t.transform(&mut schema);
            }
            let mut schema = schema.to_value();
            tuples_as_any_of(&mut schema);
            let mut content = json!({"application/json": {"schema": schema}});
            if matches!(part, Part::Page(_)) {
                content["text/html"] = json!({"schema": {"type": "string"}});
            }
            content
        }
        Part::Media(media) => {
            let schema = if media.starts_with("image/") {
                json!({"type": "string", "format": "binary"})
            } else {
                json!({"type": "string"})
            };
            let mut content = Map::new();
            for m in media.split(',') {
                content.insert(m.trim().to_string(), json!({"schema": schema}));
            }
            Value::Object(content)
        }
    }
}

/// The error statuses a route can answer, from what it takes and who may
/// call it (each is the Error body), with its own extra ones.
fn error_statuses(r: &Route) -> Vec<u16> {
    let has_path_params = r.path.contains('{');
    let mut statuses = Vec::new();
    if has_path_params || r.doc.query.is_some() || r.doc.body.is_some() {
        statuses.push(400);
    }
    match r.access {
        Access::Key(_) | Access::AnyKey => statuses.extend([401, 403]),
        Access::Metrics => statuses.push(401),
        Access::InboundSignature => statuses.extend([401, 403, 409, 429]),
        Access::Undeclared => statuses.extend([401, 403]),
        Access::Public => {
            if ["/l/", "/i/", "/c/", "/u/", "/p/"]
                .iter()
                .any(|p| r.path.starts_with(p))
            {
                statuses.push(429);
            }
        }
    }
    if has_path_params {
        statuses.push(404);
    }
    if r.doc.body.is_some() {
        statuses.extend([408, 413, 415]);
        if matches!(r.doc.body, Some(Part::Json(_))) {
            statuses.push(422);
        }
    }
    statuses.extend(r.doc.statuses.iter().copied().filter(|s| *s >= 400));
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

/// OpenAPI 3.0 has no tuple schema (`items` as a list, which schemars
/// writes for Rust tuples such as `(String, u64)`): each becomes an array
/// whose items are any of the tuple's types, its length kept.
fn tuples_as_any_of(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get("items") {
                let mut any_of: Vec<Value> = Vec::new();
                for item in items {
                    if !any_of.contains(item) {
                        any_of.push(item.clone());
                    }
                }
                map.insert("items".into(), json!({ "anyOf": any_of }));
            }
            map.values_mut().for_each(tuples_as_any_of);
        }
        Value::Array(list) => list.iter_mut().for_each(tuples_as_any_of),
        _ => {}
    }
}

/// The meaning of an error status, from the error table.
fn status_meaning(status: u16) -> String {
    let codes: Vec<String> = ApiError::catalog()
        .into_iter()
        .filter(|(e, _)| e.status_and_code().0.as_u16() == status)
        .map(|(e, _)| format!("`{}`", e.status_and_code().1))
        .collect();
    if codes.is_empty() {
        "Error".to_string()
    } else {
        format!("Error: {}", codes.join(", "))
    }
}

pub fn document(routes: &[Route]) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error_schema = generator.subschema_for::<crate::error::ErrorBody>();
    let mut paths = Map::new();
    let mut operations = std::collections::HashMap::<&str, usize>::new();
    for r in routes {
        *operations.entry(r.operation).or_default() += 1;
    }
    for r in routes {
        let path = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(query) = r.doc.query {
            params.extend(query_params(query));
        }
        let mut responses = Map::new();
        let mut ok = json!({"description": "OK"});
        if let Some(answer) = r.doc.answer {
            ok["content"] = content(answer, &mut generator);
        }
        let success = r
            .doc
            .statuses
            .iter()
            .copied()
            .find(|s| *s < 400)
            .unwrap_or(200);
        responses.insert(success.to_string(), ok);
        // A page's errors are pages too, for a browser.
        let mut error_content = json!({"application/json": {"schema": error_schema}});
        if matches!(r.doc.answer, Some(Part::Page(_))) {
            error_content["text/html"] = json!({"schema": {"type": "string"}});
        }
        for status in error_statuses(r) {
            responses.insert(
                status.to_string(),
                json!({"description": status_meaning(status), "content": error_content}),
            );
        }
        responses.insert(
            "5XX".into(),
            json!({"description": "Server fault (details in the server log)",
                   "content": {"application/json": {"schema": error_schema}}}),
        );
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
            "security": security(r.access, r.path),
        });
        // One handler serving several paths (Segment's short routes) gets
        // its path in the id, so every operationId is unique.
        op["operationId"] = Value::from(if operations[r.operation] > 1 {
            let tail: String = r
                .path
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{}_{}{}", r.operation, r.method, tail.trim_end_matches('_'))
        } else {
            r.operation.to_string()
        });
        if let Some(body) = r.doc.body {
            op["requestBody"] = json!({"required": true, "content": content(body, &mut generator)});
        }
        let who = r.access.describe();
        op["description"] = Value::from(match description(r.path) {
            Some(d) => format!("{who}\n\n{d}"),
            None => who,
        });
        if let Access::Key(scope) = r.access {
            op["x-siyu-scope"] = Value::from(scope.as_str());
        }
        path[r.method] = op;
    }
    let mut schemas = Value::Object(generator.take_definitions(true));
    tuples_as_any_of(&mut schemas);
    let errors: Vec<Value> = ApiError::catalog()
        .into_iter()
        .map(|(e, meaning)| {
            let (status, code) = e.status_and_code();
            json!({"status": status.as_u16(), "code": code, "meaning": meaning})
        })
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {"title": "siyu", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted customer operations: ingest, identity graph, live segments, analytics."},
        "paths": paths,
        "x-error-codes": errors,
        "components": {
          "schemas": schemas,
          "securitySchemes": {
            "bearerKey": {"type": "http", "scheme": "bearer",
                "description": "An API key (`siyu keys create --scope …`, `POST /v1/admin/keys`) with the scope the operation names. Scopes: ingest (send events; publishable), read, write, erase, admin (keys and erasure)."},
            "basicKey": {"type": "http", "scheme": "basic",
                "description": "The same key as the basic-auth user name, password empty (what Segment's SDKs send)."},
            "adminToken": {"type": "http", "scheme": "bearer",
                "description": "The configured admin token (`admin_token`): every scope."},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": siyu_console::SESSION_COOKIE,
                "description": "A console session; unsafe methods also need the `x-csrf-token` header. Roles: analyst = read; operator = ingest, read, write; admin = every scope."},
            "inboundSignature": {"type": "apiKey", "in": "header", "name": "X-Siyu-Signature",
                "description": "`sha256=<hex HMAC-SHA256 of \"<X-Siyu-Timestamp>.<workspace>.<body>\">` with the channel's `[inbound]` secret (the workspace's own, else the main one); each signature is accepted once."},
            "wecomSignature": {"type": "apiKey", "in": "query", "name": "msg_signature",
                "description": "WeCom's callback signature: the hex SHA-1 of the `[connectors.wecom]` token, `timestamp`, `nonce` and the encrypted message (`echostr`, or the body's `Encrypt`), sorted and concatenated; `timestamp` within 300 s of the server clock on POST."},
            "wechatSignature": {"type": "apiKey", "in": "query", "name": "signature",
                "description": "A WeChat Official Account's callback signature: the hex SHA-1 of the `[connectors.wechat]` token, `timestamp` and `nonce`, sorted and concatenated; in safe mode (`encrypt_type=aes`) also `msg_signature` over them and the body's `Encrypt`; `timestamp` within 300 s of the server clock on POST."},
            "metricsToken": {"type": "http", "scheme": "bearer",
                "description": "`metrics_token` from the configuration, when set (else `/metrics` is open)."}
        }}
    })
}

/// The OpenAPI `security` of an operation: the alternatives that satisfy
/// its access (`[]` = none needed; `[{}]` in the list = optional).
fn security(access: Access, path: &str) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Metrics => json!([{}, {"metricsToken": []}, {"adminToken": []}]),
        Access::Key(_) | Access::AnyKey => json!([
            {"bearerKey": []}, {"basicKey": []}, {"adminToken": []}, {"consoleSession": []}
        ]),
        Access::InboundSignature if path.starts_with("/callbacks/wecom") => {
            json!([{"wecomSignature": []}])
        }
        Access::InboundSignature if path.starts_with("/callbacks/wechat") => {
            json!([{"wechatSignature": []}])
        }
        // The credential is the opaque token in the path (OpenAPI has no
        // security scheme in a path): `{token}`, refused with 401 unless
        // it is the workspace's.
        Access::InboundSignature if path.starts_with("/callbacks/sms/") => json!([]),
        Access::InboundSignature => json!([{"inboundSignature": []}]),
        // Refused to everyone: no credential satisfies it.
        Access::Undeclared => json!([{"undeclared": []}]),
    }
}
