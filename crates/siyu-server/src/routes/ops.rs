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
use serde::Serialize;
use serde_json::Value;

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

/// `GET /healthz`: the engine is loaded, and how much it holds.
#[derive(Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub persons: usize,
    pub identities: usize,
    /// Events applied to the engine.
    pub events: u64,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let e = read_engine(&state);
    Json(Health {
        status: "ok",
        persons: e.person_count(),
        identities: e.identity_count(),
        events: e.events_applied(),
    })
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

/// Documents every route of the table (`routes::all`), not only these:
/// the wiring builds it once (`Inner::openapi`). The document is generated
/// JSON (paths keyed by route), not a fixed shape.
async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(Value::clone(&state.0.openapi))
}

/// `GET /v1/workspace`: the workspace (brand) a request reached.
#[derive(Serialize)]
pub struct WorkspaceAnswer {
    pub workspace: String,
}

async fn workspace(State(state): State<AppState>) -> Result<Json<WorkspaceAnswer>, ApiError> {
    Ok(Json(WorkspaceAnswer {
        workspace: state.0.config.workspace.clone(),
    }))
}
