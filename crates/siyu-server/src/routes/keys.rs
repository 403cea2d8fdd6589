//! Admin routes for API keys: create (shown once, with its scopes), list
//! (never the keys themselves) and revoke (effective at once, audited).
//! Keys are stored hashed (`crate::auth`).

use crate::auth::{self, Scopes};
use crate::error::ApiError;
use crate::request::{blocking, now, route, Route};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_store::AuditRecord;

pub fn routes() -> Vec<Route> {
    vec![
        route!(post, "/v1/admin/keys", admin, "Create a key: `{\"name\": \"shop-sdk\", \"scopes\": [\"ingest\"], \"origins\": [\"https://shop.example\"]}` (scopes: ingest, read, write, erase, admin; absent: ingest, read, write, erase, what every key could do before scopes; `origins`: the web pages that may send events with it from a browser, for ingest-only keys); the key is shown once.", create_key, body = KeyBody, statuses = [201]),
        route!(get, "/v1/admin/keys", admin, "Keys (id, name, created_at, scopes, legacy) — never the keys themselves.", list_keys),
        route!(delete, "/v1/admin/keys/{id}", admin, "Revoke a key by its id (the first 12 hex digits of its hash); effective at once, audited.", revoke_key),
    ]
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    /// Scope names; absent: [`Scopes::LEGACY`] (what every key could do
    /// before scopes existed).
    scopes: Option<Vec<String>>,
    /// Web origins a browser may send events from with this key
    /// (`https://shop.example` or `*`); ingest-only keys only.
    #[serde(default)]
    origins: Vec<String>,
}

/// `POST /v1/admin/keys` (201): the key itself, shown this once.
#[derive(Serialize, schemars::JsonSchema)]
pub struct KeyCreated {
    pub key: String,
    /// What names the key in the API (the first 12 hex digits of its hash).
    pub id: String,
    pub name: String,
    pub scopes: Vec<&'static str>,
    pub origins: Vec<String>,
    pub note: &'static str,
}

async fn create_key(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let body: KeyBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "key: {e}; send {{\"name\": \"shop-sdk\", \"scopes\": [\"ingest\"]}}"
        ))
    })?;
    let scopes = match &body.scopes {
        None => Scopes::LEGACY,
        Some(names) => Scopes::parse(names.iter().map(String::as_str))
            .map_err(|e| ApiError::BadRequest(format!("scopes: {e}")))?,
    };
    auth::check_origins(scopes, &body.origins).map_err(ApiError::BadRequest)?;
    let s = state.clone();
    let name = body.name.clone();
    let origins = body.origins.clone();
    let key = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        auth::create_key_for_origins(store.as_mut(), &name, scopes, &origins, now())
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .await?;
    state
        .0
        .keys
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            auth::hash_key(&key),
            auth::KeyGrant {
                scopes,
                origins: body.origins.clone(),
            },
        );
    let id = auth::hash_key(&key)[..KEY_ID_LEN].to_string();
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            key,
            id,
            name: body.name,
            scopes: scopes.names(),
            origins: body.origins,
            note: "shown once; store it now",
        }),
    ))
}

/// Hex digits of a key's hash that name it in the API.
const KEY_ID_LEN: usize = 12;

/// `GET /v1/admin/keys`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// One key, never the key itself.
#[derive(Serialize, schemars::JsonSchema)]
pub struct KeyInfo {
    pub id: String,
    /// As stored in the key's record (null if the record has none).
    pub name: Option<Value>,
    /// As stored in the key's record (null if the record has none).
    pub created_at: Option<Value>,
    pub scopes: Vec<&'static str>,
    /// Web origins a browser may use the key from.
    pub origins: Vec<String>,
    /// Stored before scopes existed: has `Scopes::LEGACY`.
    pub legacy: bool,
}

async fn list_keys(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let keys = store
            .list_settings("write_key/")?
            .into_iter()
            .map(|(k, v)| {
                let hash = k.trim_start_matches("write_key/");
                KeyInfo {
                    id: hash[..KEY_ID_LEN.min(hash.len())].to_string(),
                    name: v.get("name").cloned(),
                    created_at: v.get("created_at").cloned(),
                    scopes: Scopes::of_record(&v).names(),
                    origins: auth::KeyGrant::of_record(&v).origins,
                    legacy: v.get("scopes").is_none(),
                }
            })
            .collect();
        Ok(Json(KeyList { keys }))
    })
    .await
}

/// `DELETE /v1/admin/keys/{id}`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct KeyRevoked {
    pub id: String,
    /// Always true.
    pub revoked: bool,
}

async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyRevoked>, ApiError> {
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(format!(
            "key id `{id}`: give at least 8 hex digits from GET /v1/admin/keys"
        )));
    }
    let s = state.clone();
    let hash = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let matches: Vec<(String, Value)> =
            store.list_settings(&format!("write_key/{}", id.to_ascii_lowercase()))?;
        let (key, v) = match matches.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ApiError::NotFound(format!(
                    "no write key with id `{id}`; GET /v1/admin/keys lists them"
                )))
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "key id `{id}` names several keys; give more digits"
                )))
            }
        };
        store.put_setting(&key, None)?;
        store.audit(&AuditRecord {
            id: 0,
            at: now(),
            action: "write_key_revoked".into(),
            subject: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            // The audit row's detail is free-form per action (stored JSON).
            detail: json!({"id": id}),
        })?;
        Ok(key.trim_start_matches("write_key/").to_string())
    })
    .await?;
    state
        .0
        .keys
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&hash);
    Ok(Json(KeyRevoked {
        id: hash[..KEY_ID_LEN].to_string(),
        revoked: true,
    }))
}
