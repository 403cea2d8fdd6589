//! `/openapi.json`, generated from the route table (`routes::all()`).

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
use serde_json::{json, Map, Value};

/// The date range the ranged analytics take (`crate::zone::DateRange`).
fn range_params() -> Vec<Value> {
    let text = |bound: &str, rest: &str| {
        format!(
            "{bound} of the range: a date `YYYY-MM-DD` in the workspace time zone (GET /v1/workspace; default Asia/Shanghai), {rest}, or an RFC 3339 instant (`2026-10-01T00:00:00+08:00`). A bad value, or `from` after `to`, is a 400 naming the field."
        )
    };
    vec![
        json!({"name": "from", "in": "query", "required": false, "schema": {"type": "string", "example": "2026-10-01"},
               "description": text("Start", "from its first instant")}),
        json!({"name": "to", "in": "query", "required": false, "schema": {"type": "string", "example": "2026-10-31"},
               "description": text("End (inclusive)", "through its last instant")}),
    ]
}

/// Query parameters documented one by one (the others are in the summary).
fn query_params(path: &str) -> Vec<Value> {
    match path {
        "/v1/analytics/roi"
        | "/v1/analytics/funnel"
        | "/v1/analytics/ltv"
        | "/v1/analytics/attribution" => range_params(),
        _ => Vec::new(),
    }
}

/// The media types a write's body may have (the handler reads the body;
/// these say what it accepts).
fn request_body(path: &str) -> Value {
    let any = json!({});
    let content = match path {
        "/v1/events" => json!({
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}}
        }),
        "/v1/spend" => {
            json!({"text/csv": {"schema": {"type": "string", "example": "day,channel,spend\n2026-10-01,douyin,120000\n"}}})
        }
        "/v1/campaigns/{id}/background" => {
            json!({"image/png": {"schema": {"type": "string", "format": "binary"}}})
        }
        _ => json!({"application/json": {"schema": any}}),
    };
    json!({"required": false, "content": content})
}

pub fn document(routes: &[Route]) -> Value {
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
        if r.method == "get" {
            params.extend(query_params(r.path));
        }
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Error: {\"code\": stable snake_case code, \"message\": what to fix}",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "5XX": {"description": "Server fault (details in the server log)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "security": security(r.access),
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
        if matches!(r.method, "post" | "put" | "patch") {
            op["requestBody"] = request_body(r.path);
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
          "schemas": {"Error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "stable snake_case code (x-error-codes lists them)"},
            "message": {"type": "string", "description": "what went wrong and how to fix it"}}}},
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
            "metricsToken": {"type": "http", "scheme": "bearer",
                "description": "`metrics_token` from the configuration, when set (else `/metrics` is open)."}
        }}
    })
}

/// The OpenAPI `security` of an operation: the alternatives that satisfy
/// its access (`[]` = none needed; `[{}]` in the list = optional).
fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Metrics => json!([{}, {"metricsToken": []}, {"adminToken": []}]),
        Access::Key(_) | Access::AnyKey => json!([
            {"bearerKey": []}, {"basicKey": []}, {"adminToken": []}, {"consoleSession": []}
        ]),
        Access::InboundSignature => json!([{"inboundSignature": []}]),
        // Refused to everyone: no credential satisfies it.
        Access::Undeclared => json!([{"undeclared": []}]),
    }
}
