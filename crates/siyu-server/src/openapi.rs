//! `/openapi.json`, generated from the route table in `api.rs`.

use crate::api::Route;
use serde_json::{json, Map, Value};

pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let path = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        path[r.method] = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Error: {\"code\": stable snake_case code, \"message\": what to fix}"}
            },
            "security": if r.path.starts_with("/v1/") { json!([{"writeKey": []}]) } else { json!([]) },
        });
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "siyu", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted customer operations: ingest, identity graph, live segments, analytics."},
        "paths": paths,
        "components": {"securitySchemes": {"writeKey": {"type": "http", "scheme": "bearer",
            "description": "A write key (`siyu keys create`); Segment SDKs may send it as the basic-auth user name."}}}
    })
}
