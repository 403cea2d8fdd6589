//! Analytics routes: whole-population answers from the engine (RFM,
//! first-touch funnel, cohorts, referrals, ROI, repurchase, LTV; cached by
//! `crate::cache`), full-log passes (`crate::log_pass`: funnel steps,
//! attribution) and the ad-spend table ROI reads (`PUT /v1/spend`, parsed
//! by `siyu_commerce::spend`).

use crate::cache::{CohortQuery, FunnelQuery, ReferralQuery};
use crate::error::ApiError;
use crate::log_pass::log_pass;
use crate::request::{blocking, read_body, read_engine, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post, put};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use siyu_commerce::spend::{parse_spend_csv, SpendError};
use siyu_domain::time::format_rfc3339;
use siyu_engine::analytics;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/analytics/rfm", read, "RFM grid (125 cells) at the engine clock.", analytics_rfm),
        route!(get, "/v1/analytics/funnel", read, "First-touch funnel per channel: entered → friended (`friend_days`) → converted (`convert_days`).", analytics_funnel),
        route!(get, "/v1/analytics/cohorts", read, "Weekly cohort retention by first add_friend (`t0`, `weeks`).", analytics_cohorts),
        route!(get, "/v1/analytics/referrals", read, "Referral tiers and top inviters (`tiers`, `convert_days`, `top`).", analytics_referrals),
        route!(get, "/v1/analytics/roi", read, "Channel ROI: spend (from /v1/spend) against revenue of first-touch persons.", analytics_roi),
        route!(get, "/v1/analytics/repurchase", read, "Repurchase rate and median interval.", analytics_repurchase),
        route!(get, "/v1/analytics/ltv", read, "Historical LTV by first-seen month and channel.", analytics_ltv),
        route!(post, "/v1/analytics/steps", read, "Funnel over any steps: `{\"steps\": [{\"event_type\": \"touch\"}, {\"event_type\": \"add_friend\", \"within\": 604800}], \"split_by_channel\": true}` (one pass over the log).", analytics_steps),
        route!(get, "/v1/analytics/attribution", read, "Revenue per channel under first-touch, last-touch and linear attribution (one pass over the log).", analytics_attribution),
        route!(put, "/v1/spend", write, "Replace the spend table (CSV `day,channel,spend` in cents).", put_spend),
    ]
}

async fn analytics_rfm(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let grid = analytics::rfm_grid(&e, e.now());
        let mut cells = Vec::new();
        for (r, plane) in grid.iter().enumerate() {
            for (f, row) in plane.iter().enumerate() {
                for (m, n) in row.iter().enumerate() {
                    cells.push(json!({"r": r + 1, "f": f + 1, "m": m + 1, "persons": n}));
                }
            }
        }
        Ok(Json(json!({"at": format_rfc3339(e.now()), "cells": cells})))
    })
    .await
}

async fn analytics_funnel(
    State(state): State<AppState>,
    Query(q): Query<FunnelQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let rows = analytics::first_touch_funnel(
            &e,
            q.friend_days.unwrap_or(7) * 86_400,
            q.convert_days.unwrap_or(30) * 86_400,
        );
        Ok(Json(json!({"rows": rows})))
    })
    .await
}

async fn analytics_cohorts(
    State(state): State<AppState>,
    Query(q): Query<CohortQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let t0 = q.t0.unwrap_or(e.now() - 364 * 86_400);
        let rows = analytics::cohort_retention(&e, t0, 7 * 86_400, q.weeks.unwrap_or(13).min(104));
        Ok(Json(json!({"t0": format_rfc3339(t0), "rows": rows})))
    })
    .await
}

async fn analytics_referrals(
    State(state): State<AppState>,
    Query(q): Query<ReferralQuery>,
) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let sum = analytics::referral_summary(
            &e,
            q.convert_days.unwrap_or(14) * 86_400,
            &[10, 20],
            q.top.unwrap_or(10).min(100),
        );
        Ok(Json(json!(sum)))
    })
    .await
}

fn load_spend(state: &AppState) -> Result<Vec<(String, i64)>, ApiError> {
    let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
    let v = store.get_setting("spend")?.unwrap_or(json!([]));
    Ok(serde_json::from_value(v).unwrap_or_default())
}

async fn analytics_roi(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let spend = load_spend(&s)?;
        let e = read_engine(&s);
        let rows = analytics::channel_roi(&e, spend.iter().map(|(c, x)| (c.as_str(), *x)));
        Ok(Json(json!({"rows": rows})))
    })
    .await
}

async fn analytics_repurchase(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || Ok(Json(json!(analytics::repurchase(&read_engine(&s)))))).await
}

#[derive(Deserialize)]
struct StepsBody {
    steps: Vec<siyu_engine::scan::FunnelStep>,
    #[serde(default)]
    split_by_channel: bool,
}

async fn analytics_steps(
    State(state): State<AppState>,
    Json(body): Json<StepsBody>,
) -> Result<Json<Value>, ApiError> {
    if body.steps.is_empty() || body.steps.len() > 20 {
        return Err(ApiError::BadRequest(
            "`steps` needs 1..=20 steps, e.g. [{\"event_type\": \"touch\"}]".into(),
        ));
    }
    if let Some(i) = body
        .steps
        .iter()
        .position(|s| s.within.is_some_and(|w| w <= 0))
    {
        return Err(ApiError::BadRequest(format!(
            "steps[{i}].within must be a positive number of seconds"
        )));
    }
    let s = state.clone();
    blocking(move || {
        let mut pass = siyu_engine::scan::FunnelPass::new(&body.steps, body.split_by_channel);
        log_pass(&s, |p, e| pass.feed(p, e))?;
        Ok(Json(json!({"steps": body.steps, "rows": pass.finish()})))
    })
    .await
}

async fn analytics_attribution(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let mut pass = siyu_engine::scan::AttributionPass::new();
        log_pass(&s, |p, e| pass.feed(p, e))?;
        Ok(Json(json!({"rows": pass.finish()})))
    })
    .await
}

async fn analytics_ltv(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        Ok(Json(
            json!({"rows": analytics::ltv_by_cohort_and_channel(&read_engine(&s))}),
        ))
    })
    .await
}

async fn put_spend(State(state): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, state.0.config.max_body_bytes).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("spend CSV must be UTF-8".into()))?;
    let rows = parse_spend_csv(text)?;
    let per_channel: Vec<(String, i64)> =
        rows.iter().map(|r| (r.channel.clone(), r.cents)).collect();
    let n = rows.len();
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        store.put_setting("spend", Some(&json!(per_channel)))?;
        Ok(())
    })
    .await?;
    state
        .0
        .analytics_cache
        .generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({"rows": n})))
}

/// A refused spend CSV is a 400 naming the line (`siyu_commerce::spend`).
impl From<SpendError> for ApiError {
    fn from(e: SpendError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}
