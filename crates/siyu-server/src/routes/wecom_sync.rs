//! WeCom customer contact beyond callbacks: the sync that imports the
//! corp's existing customers, tags and groups (`crate::wecom_sync`: a
//! resumable job the leading node runs), and the workspace's default
//! welcome message (`crate::wecom_welcome`).

use crate::error::ApiError;
use crate::request::{parse_json, route, with_store, Route};
use crate::wecom_sync::{SyncRequest, SyncState};
use crate::wecom_welcome::{WelcomeConfig, WELCOME_KEY};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Json;

pub fn routes() -> Vec<Route> {
    vec![
        route!(post, "/v1/wecom/sync", write, "Start the WeCom sync (`{\"restart\"?: bool, \"operators\"?: [userid]}`, body optional): the corp's existing customers of every operator (`get_follow_user_list`, `batch/get_by_user`), their corp tags and the customer groups' members become the callbacks' events (add_friend, identify with tags and the unionid, join_group) with the callbacks' ids, as history (no journey, reply or welcome). A failed job resumes from its checkpoint unless `restart`. 202 with the state; 409 while one is requested or running; 404 without [connectors.wecom].", start_sync, body = SyncRequest, statuses = [202, 404, 409]),
        route!(get, "/v1/wecom/sync", read, "The WeCom sync's state: `status` (requested|running|done|failed), `phase` (tags|contacts|groups|done), `operators_done`/`operators_total`, `contacts`, `groups`, `events_stored`, `cursor` (the checkpoint), `errors`, `started_at`, `finished_at`. 404 before the first sync.", sync_state, statuses = [404]),
        route!(get, "/v1/wecom/welcome", read, "The default WeCom welcome message `{text, enabled}` (sent with an add_external_contact's WelcomeCode when the live code of its State has no welcome template). 404 when none is set.", get_welcome, statuses = [404]),
        route!(put, "/v1/wecom/welcome", write, "Set the default WeCom welcome message: `{\"text\": \"…\", \"enabled\": true}` (text at most 4000 bytes).", put_welcome, body = WelcomeConfig),
    ]
}

/// The most operators a sync may be limited to (`groupchat/list`'s
/// `owner_filter.userid_list` takes 100).
const MAX_OPERATORS: usize = 100;

async fn start_sync(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<SyncState>), ApiError> {
    let req: SyncRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        SyncRequest::default()
    } else {
        let v: serde_json::Value = parse_json(&body, "sync")?;
        let Some(fields) = v.as_object() else {
            return Err(ApiError::BadRequest(
                "sync: the body is a JSON object `{\"restart\"?, \"operators\"?}`".into(),
            ));
        };
        for (k, f) in fields {
            let fits = match k.as_str() {
                "restart" => f.is_boolean(),
                "operators" => f
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string)),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "{k}: unknown field; a sync takes `restart` and `operators`"
                    )))
                }
            };
            if !fits {
                return Err(ApiError::BadRequest(format!(
                    "{k}: must be {}",
                    if k == "restart" {
                        "true or false"
                    } else {
                        "a list of WeCom userids"
                    }
                )));
            }
        }
        serde_json::from_value(v).map_err(|e| ApiError::BadRequest(format!("sync: {e}")))?
    };
    if req.operators.len() > MAX_OPERATORS {
        return Err(ApiError::BadRequest(format!(
            "operators: {} given; at most {MAX_OPERATORS} (WeCom's owner filter), or none for every member",
            req.operators.len()
        )));
    }
    for (i, o) in req.operators.iter().enumerate() {
        if o.trim().is_empty() || o.len() > 64 {
            return Err(ApiError::BadRequest(format!(
                "operators[{i}]: a WeCom userid of 1–64 characters"
            )));
        }
    }
    let s = crate::wecom_sync::request(&state, req).await?;
    Ok((StatusCode::ACCEPTED, Json(s)))
}

async fn sync_state(State(state): State<AppState>) -> Result<Json<SyncState>, ApiError> {
    crate::wecom_sync::load(&state)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound("no WeCom sync yet; POST /v1/wecom/sync starts one".into())
        })
}

async fn get_welcome(State(state): State<AppState>) -> Result<Json<WelcomeConfig>, ApiError> {
    with_store(&state, |store| Ok(crate::wecom_welcome::load(store)?))
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(
                "no default WeCom welcome; PUT /v1/wecom/welcome {\"text\": …} sets one".into(),
            )
        })
}

async fn put_welcome(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<WelcomeConfig>, ApiError> {
    let w: WelcomeConfig = parse_json(&body, "welcome")?;
    w.check()
        .map_err(|(field, why)| ApiError::BadRequest(format!("{field}: {why}")))?;
    let v = serde_json::to_value(&w).map_err(|e| ApiError::Internal(e.to_string()))?;
    with_store(&state, move |store| {
        Ok(store.put_setting(WELCOME_KEY, Some(&v))?)
    })
    .await?;
    Ok(Json(w))
}
