//! Live sessions (直播, `siyu_growth::live`): saved as the settings
//! `live_session/<id>`; a session's report is one pass over the log
//! (`crate::log_pass`: bounded pages, the engine's lock held only to copy
//! its identity table) finished against the engine.

use crate::error::ApiError;
use crate::request::{
    blocking, now, parse_json, read_engine, removal_audit, route, valid_id, with_store, Removed,
    Route,
};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, get, put};
use axum::Json;
use serde::Serialize;
use siyu_growth::live::{LiveReport, LiveSession, LiveTally, SETTINGS_PREFIX};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/live-sessions", read, "Live sessions (直播), newest first.", list_sessions),
        route!(get, "/v1/live-sessions/{id}", read, "One live session.", get_session, statuses = [404]),
        route!(put, "/v1/live-sessions/{id}", write, "Save a live session: `{\"title\", \"channel\", \"host\"?, \"starts_at\", \"ends_at\" (epoch seconds), \"products\"?, \"attribution_hours\"? (default 24)}`; every fault names its field.", put_session, body = LiveSession),
        route!(delete, "/v1/live-sessions/{id}", write, "Delete a live session (its events stay in the log).", delete_session, statuses = [404]),
        route!(get, "/v1/live-sessions/{id}/report", read, "What a session brought, whichever channel reported it: viewers who are known persons (an event on its channel during it, or a touch naming `live:<id>` in `properties.campaign`), new persons, comments and how many were answered within 24 h, the viewers' orders, buyers and revenue (net of refunds) from its start to `attribution_hours` after its end, and buyers who bought again within 30 days. One pass over the log.", report, statuses = [404]),
    ]
}

fn stored(id: String, v: serde_json::Value) -> Option<LiveSession> {
    let mut s: LiveSession = serde_json::from_value(v).ok()?;
    s.id = id;
    Some(s)
}

async fn load(state: &AppState, id: &str) -> Result<LiveSession, ApiError> {
    let key = format!("{SETTINGS_PREFIX}{id}");
    let v = with_store(state, move |store| Ok(store.get_setting(&key)?)).await?;
    v.and_then(|v| stored(id.to_string(), v)).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no live session `{id}`; GET /v1/live-sessions lists them"
        ))
    })
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Sessions {
    live_sessions: Vec<LiveSession>,
}

async fn list_sessions(State(state): State<AppState>) -> Result<Json<Sessions>, ApiError> {
    let rows = with_store(&state, |store| Ok(store.list_settings(SETTINGS_PREFIX)?)).await?;
    let mut live_sessions: Vec<LiveSession> = rows
        .into_iter()
        .filter_map(|(k, v)| stored(k.strip_prefix(SETTINGS_PREFIX)?.to_string(), v))
        .collect();
    live_sessions.sort_by(|a, b| b.starts_at.cmp(&a.starts_at).then(a.id.cmp(&b.id)));
    Ok(Json(Sessions { live_sessions }))
}

async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LiveSession>, ApiError> {
    Ok(Json(load(&state, &id).await?))
}

async fn put_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<LiveSession>, ApiError> {
    valid_id(&id, "id")?;
    let mut s: LiveSession = parse_json(&body, "live session")?;
    if !s.id.is_empty() && s.id != id {
        return Err(ApiError::InvalidDefinition(format!(
            "id: the body says {:?} but the path {id:?}; omit it or make them equal",
            s.id
        )));
    }
    s.id = id.clone();
    s.check().map_err(ApiError::InvalidDefinition)?;
    let mut value = serde_json::to_value(&s).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(o) = value.as_object_mut() {
        o.remove("id");
    }
    with_store(&state, move |store| {
        Ok(store.put_setting(&format!("{SETTINGS_PREFIX}{id}"), Some(&value))?)
    })
    .await?;
    Ok(Json(s))
}

async fn delete_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    load(&state, &id).await?;
    let n = id.clone();
    with_store(&state, move |store| {
        store.put_setting(&format!("{SETTINGS_PREFIX}{n}"), None)?;
        store.audit(&removal_audit(
            "delete_live_session",
            &n,
            serde_json::json!({}),
        ))?;
        Ok(())
    })
    .await?;
    Ok(Json(Removed::deleted("live_session", id)))
}

/// A session's report, with the session.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SessionReport {
    pub session: LiveSession,
    #[serde(flatten)]
    pub report: LiveReport,
}

async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionReport>, ApiError> {
    let session = load(&state, &id).await?;
    let s = state.clone();
    let sess = session.clone();
    let report = blocking(move || {
        let mut tally = LiveTally::default();
        crate::log_pass::log_pass(&s, |person, e| tally.feed(&sess, person, e))?;
        let engine = read_engine(&s);
        Ok(tally.finish(&sess, &engine, now()))
    })
    .await?;
    Ok(Json(SessionReport { session, report }))
}
