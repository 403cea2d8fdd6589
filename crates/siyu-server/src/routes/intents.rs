//! The intents inbound messages are annotated with (`crate::intents`) and
//! the workspace's intent settings: the tags each intent adds to its
//! person and the hot intents that make a lead task for the owner.

use crate::error::ApiError;
use crate::intents::{IntentSettings, KEY};
use crate::request::{parse_json, route, with_store, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, put};
use axum::Json;
use serde::Serialize;
use siyu_domain::intent::Intent;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/intents", read, "The intents every inbound message (a `comment` with text) is annotated with at ingest, as `properties.intent` (the id) and `properties.intent_confidence`: each id with its Chinese name. Segments read them as `intent(last 7d) = \"price\"`, auto-reply rules and journey event triggers as `intents`.", list),
        route!(get, "/v1/intents/settings", read, "What a live inbound message's intent does by itself: `auto_tags` (intent id → tags added to the person, once), `hot` (intents that make a lead task for the person's owner, default buy and price), `lead_window_secs` (one task per person and intent within it, default 86400), `min_confidence` (default 0.5). The defaults until saved.", get_settings),
        route!(put, "/v1/intents/settings", write, "Replace the intent settings: `{\"auto_tags\"?: {\"price\": [\"询价客户\"]}, \"hot\"?: [\"buy\", \"询价\"], \"lead_window_secs\"?, \"min_confidence\"?}`; a fault names its field (`auto_tags.price[0]`, `hot`, `lead_window_secs`) and nothing is saved. Applies to messages from then on.", put_settings, body = IntentSettings),
    ]
}

/// One intent.
#[derive(Serialize, schemars::JsonSchema)]
pub struct IntentInfo {
    pub id: Intent,
    pub name_zh: &'static str,
}

async fn list() -> Json<Vec<IntentInfo>> {
    Json(
        Intent::ALL
            .into_iter()
            .map(|id| IntentInfo {
                id,
                name_zh: id.name_zh(),
            })
            .collect(),
    )
}

async fn get_settings(State(state): State<AppState>) -> Result<Json<IntentSettings>, ApiError> {
    let v = with_store(&state, |store| Ok(store.get_setting(KEY)?)).await?;
    Ok(Json(IntentSettings::from_setting(v)))
}

async fn put_settings(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<IntentSettings>, ApiError> {
    let body: IntentSettings = parse_json(&body, "intent settings")?;
    body.check()?;
    let value = serde_json::to_value(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    with_store(&state, move |store| {
        Ok(store.put_setting(KEY, Some(&value))?)
    })
    .await?;
    state.0.automation.reload();
    Ok(Json(body))
}
