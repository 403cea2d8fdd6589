//! Operations routes: liveness, Prometheus metrics, the API document and
//! the workspace a request reached. Nothing here touches the store.

use crate::error::ApiError;
use crate::request::{read_engine, route, Route};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

pub fn routes() -> Vec<Route> {
    vec![
        route!(
            get,
            "/healthz",
            public,
            "Liveness: 200 when the engine is loaded.",
            healthz
        ),
        route!(
            get,
            "/metrics",
            metrics,
            "Prometheus metrics (ingest counts, latencies, persons).",
            metrics
        ),
        route!(
            get,
            "/openapi.json",
            public,
            "This API description.",
            openapi
        ),
        route!(
            get,
            "/v1/workspace",
            any_key,
            "The workspace (brand) this request reached.",
            workspace
        ),
    ]
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let e = read_engine(&state);
    Json(
        json!({"status": "ok", "persons": e.person_count(), "identities": e.identity_count(), "events": e.events_applied()}),
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (p, i) = {
        let e = read_engine(&state);
        (e.person_count(), e.identity_count())
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(p, i),
    )
        .into_response()
}

/// Documents every route of the table (`routes::all`), not only these.
async fn openapi() -> Json<Value> {
    Json(crate::openapi::document(&super::all()))
}

async fn workspace(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"workspace": state.0.config.workspace})))
}
