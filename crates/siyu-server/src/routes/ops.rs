//! Operations routes: liveness, Prometheus metrics, the API document, the
//! workspace a request reached and its settings (the time zone, `zone.rs`,
//! the one setting stored here).

use crate::error::ApiError;
use crate::request::{read_engine, route, with_store, Route};
use crate::zone;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Json;
use serde::{Deserialize, Serialize};
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
            metrics, answer_media = "text/plain"
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
            "The workspace (brand) this request reached, and its settings: `time_zone` (IANA name; dates in analytics ranges, cohort weeks, per-day caps and the console's times are in it).",
            workspace
        ),
        route!(
            get,
            "/v1/cluster",
            read,
            "This node and the automation lease: which node leads (runs timers, sweeps, triggers and deliveries), under which fencing token, for how long yet.",
            cluster
        ),
        route!(
            put,
            "/v1/workspace",
            admin,
            "Change the workspace settings: `{\"time_zone\": \"Asia/Shanghai\"}` (an IANA name; default Asia/Shanghai).",
            put_workspace, body = WorkspaceSettings
        ),
    ]
}

/// `GET /healthz`: the engine is loaded, and how much it holds.
#[derive(Serialize, schemars::JsonSchema)]
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
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
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

/// `GET /v1/cluster`: this node and who leads (`crate::leader`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct ClusterAnswer {
    /// This node's name (process id and a random part; new at each start).
    pub node: String,
    /// Whether this node leads.
    pub leads: bool,
    /// The automation lease as stored (`null`: never taken).
    pub lease: Option<siyu_store::LeaseRow>,
}

async fn cluster(State(state): State<AppState>) -> Result<Json<ClusterAnswer>, ApiError> {
    let lease = with_store(&state, |store| Ok(store.lease(crate::leader::LEASE)?)).await?;
    Ok(Json(ClusterAnswer {
        node: state.0.leader.node.clone(),
        leads: state.0.leader.is_leader(),
        lease,
    }))
}

/// `GET /v1/workspace`: the workspace (brand) a request reached, with
/// its settings.
#[derive(Serialize, schemars::JsonSchema)]
pub struct WorkspaceAnswer {
    pub workspace: String,
    /// The workspace time zone (IANA name).
    pub time_zone: String,
}

async fn workspace(State(state): State<AppState>) -> Result<Json<WorkspaceAnswer>, ApiError> {
    Ok(Json(WorkspaceAnswer {
        workspace: state.0.config.workspace.clone(),
        time_zone: zone::current(&state).name().to_string(),
    }))
}

/// `PUT /v1/workspace`: the settings to change (absent: unchanged).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WorkspaceSettings {
    time_zone: Option<String>,
}

async fn put_workspace(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<WorkspaceAnswer>, ApiError> {
    let settings: WorkspaceSettings = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "workspace settings: line {} column {}: {e}; e.g. {{\"time_zone\": \"Asia/Shanghai\"}}",
            e.line(),
            e.column()
        ))
    })?;
    if let Some(name) = settings.time_zone {
        let tz = zone::parse_time_zone("time_zone", &name).map_err(ApiError::BadRequest)?;
        let stored = serde_json::Value::String(tz.name().to_string());
        with_store(&state, move |store| {
            Ok(store.put_setting(zone::TIME_ZONE_KEY, Some(&stored))?)
        })
        .await?;
        *state.0.time_zone.write().unwrap_or_else(|e| e.into_inner()) = tz;
        // Cached answers were computed in the old zone; the guardrails'
        // default zone follows the workspace's.
        state.0.analytics_cache.invalidate();
        state.0.automation.reload();
    }
    workspace(State(state)).await
}
