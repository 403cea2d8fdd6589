//! AI helpers that run in the binary, offline: a customer message's intent
//! (`siyu_automation::intent`, a model trained at first use on the corpus
//! compiled into the binary; no network, no downloaded weights).

use crate::error::ApiError;
use crate::request::{parse_json, route, Route};
use axum::body::Bytes;
use axum::routing::post;
use axum::Json;
use serde::Deserialize;
use siyu_automation::intent::{self, Classification};

/// The longest text classified, in bytes.
pub const MAX_CLASSIFY_BYTES: usize = 4096;

pub fn routes() -> Vec<Route> {
    vec![route!(post, "/v1/ai/classify", read, "The intent of a customer's message, offline: `{\"text\"}` (1–4096 bytes) → `{\"intent\", \"confidence\", \"alternatives\": [{\"intent\", \"p\"}]}`. Intents: `ask_material` 求资料, `price` 询价, `buy` 购买意向, `after_sales` 售后, `complaint` 投诉, `opt_out` 退订, `other` 闲聊/其他. Chinese (full-width forms, emoji, pinyin abbreviations such as dd, zl, jg) and English.", classify, body = ClassifyBody)]
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
    /// The message, 1–4096 bytes.
    text: String,
}

async fn classify(body: Bytes) -> Result<Json<Classification>, ApiError> {
    let body: ClassifyBody = parse_json(&body, "classify").map_err(|e| match e {
        ApiError::InvalidDefinition(m) => ApiError::InvalidDefinition(format!(
            "{m}; the body is {{\"text\": a string of 1 to {MAX_CLASSIFY_BYTES} bytes}}"
        )),
        e => e,
    })?;
    let len = body.text.len();
    if len == 0 || len > MAX_CLASSIFY_BYTES {
        return Err(ApiError::InvalidDefinition(format!(
            "text: {len} bytes; 1 to {MAX_CLASSIFY_BYTES}"
        )));
    }
    Ok(Json(intent::classify(&body.text)))
}
