//! Sensitive-word rules (会话合规, `siyu_automation::sensitive`): saved as
//! one list (`crate::sensitive_words`), checked whole before it is saved,
//! and a check of any text against them.

use crate::error::ApiError;
use crate::request::{parse_json, route, with_store, Route};
use crate::sensitive_words::KEY;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_automation::sensitive::{SensitiveRule, SensitiveRules, Speaker};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/sensitive-words", read, "The sensitive-word rules (会话合规): words, keyword lists or regexes, each watching customers', operators' or both's messages, with a category. Customers' comments that hit one carry `properties.sensitive` (the rule ids); operators' quick replies answer the rules their text hits.", get_rules),
        route!(put, "/v1/sensitive-words", write, "Replace the sensitive-word rules: `{\"rules\": [{\"id\", \"matcher\": {\"contains\"|\"any_of\"|\"regex\"}, \"applies_to\"?: \"customer\"|\"operator\"|\"both\", \"category\"?, \"enabled\"?}]}` (at most 500); a fault names `rules[i].field`, and nothing is saved.", put_rules, body = RulesBody),
        route!(post, "/v1/sensitive-words/check", read, "The rules a text hits: `{\"text\", \"speaker\"?: \"customer\"|\"operator\"|\"both\"}` (text at most 4096 bytes).", check_text, body = CheckBody),
    ]
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    rules: Vec<SensitiveRule>,
}

async fn get_rules(State(state): State<AppState>) -> Result<Json<RulesBody>, ApiError> {
    let rules = crate::sensitive_words::current(&state).await?;
    Ok(Json(RulesBody {
        rules: rules.rules().to_vec(),
    }))
}

async fn put_rules(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<RulesBody>, ApiError> {
    let body: RulesBody = parse_json(&body, "sensitive-word rules")?;
    SensitiveRules::compile(body.rules.clone()).map_err(|e| {
        ApiError::InvalidDefinition(format!("rules[{}].{}: {}", e.index, e.field, e.message))
    })?;
    let value = serde_json::to_value(&body.rules).map_err(|e| ApiError::Internal(e.to_string()))?;
    with_store(&state, move |store| {
        Ok(store.put_setting(KEY, Some(&value))?)
    })
    .await?;
    Ok(Json(body))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    text: String,
    #[serde(default)]
    speaker: Speaker,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Checked {
    hits: Vec<crate::sensitive_words::Hit>,
}

async fn check_text(State(state): State<AppState>, body: Bytes) -> Result<Json<Checked>, ApiError> {
    let body: CheckBody = parse_json(&body, "check")?;
    if body.text.len() > siyu_domain::wire::MAX_TEXT_LEN {
        return Err(ApiError::InvalidDefinition(format!(
            "text: {} bytes; at most {}",
            body.text.len(),
            siyu_domain::wire::MAX_TEXT_LEN
        )));
    }
    let rules = crate::sensitive_words::current(&state).await?;
    Ok(Json(Checked {
        hits: crate::sensitive_words::hits(&rules, body.speaker, &body.text),
    }))
}
