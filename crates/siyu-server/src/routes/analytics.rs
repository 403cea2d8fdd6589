//! Analytics routes: whole-population answers from the engine (RFM,
//! first-touch funnel, cohorts, referrals, ROI, repurchase, LTV; cached by
//! `crate::cache`), full-log passes (`crate::log_pass`: funnel steps,
//! attribution) and the ad-spend table ROI reads (`PUT /v1/spend`, parsed
//! by `siyu_commerce::spend`).

use crate::cache::{CohortQuery, FunnelQuery, ReferralQuery};
use crate::error::ApiError;
use crate::log_pass::log_pass;
use crate::request::{blocking, read_body, read_engine, require_json, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_commerce::spend::{parse_spend_csv, SpendError};
use siyu_domain::time::format_rfc3339;
use siyu_engine::analytics::{
    self, CohortRow, FunnelRow, LtvRow, ReferralSummary, Repurchase, RoiRow,
};
use siyu_engine::scan::{Attribution, FunnelResult, FunnelStep};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/analytics/rfm", read, "RFM grid (125 cells) at the engine clock.", analytics_rfm),
        route!(get, "/v1/analytics/funnel", read, "First-touch funnel per channel: entered → friended (`friend_days`) → converted (`convert_days`).", analytics_funnel),
        route!(get, "/v1/analytics/cohorts", read, "Weekly cohort retention by first add_friend (`t0`, `weeks`).", analytics_cohorts),
        route!(get, "/v1/analytics/referrals", read, "Referral tiers and top inviters (`tiers`: ascending invite counts, default `10,20`; `convert_days`; `top`).", analytics_referrals),
        route!(get, "/v1/analytics/roi", read, "Channel ROI: spend (from /v1/spend) against revenue of first-touch persons.", analytics_roi),
        route!(get, "/v1/analytics/repurchase", read, "Repurchase rate and median interval.", analytics_repurchase),
        route!(get, "/v1/analytics/ltv", read, "Historical LTV by first-seen month and channel.", analytics_ltv),
        route!(post, "/v1/analytics/steps", read, "Funnel over any steps: `{\"steps\": [{\"event_type\": \"touch\"}, {\"event_type\": \"add_friend\", \"within\": \"7d\"}], \"split_by_channel\": true}` (`within`: a duration such as `\"7d\"` or `\"12h\"`, or seconds; one pass over the log).", analytics_steps),
        route!(get, "/v1/analytics/attribution", read, "Revenue per channel under first-touch, last-touch and linear attribution (one pass over the log).", analytics_attribution),
        route!(put, "/v1/spend", write, "Replace the spend table (CSV `day,channel,spend` in cents).", put_spend),
    ]
}

/// An answer that is a list of the engine's rows (funnel, ROI, LTV,
/// attribution): `{"rows": [...]}`.
#[derive(Serialize)]
pub struct Rows<T> {
    pub rows: Vec<T>,
}

/// `GET /v1/analytics/rfm`: the 125 cells of the RFM grid.
#[derive(Serialize)]
pub struct RfmGrid {
    /// The engine clock the scores are computed at.
    pub at: String,
    pub cells: Vec<RfmCell>,
}

/// Persons with these recency, frequency and monetary scores (1–5).
#[derive(Serialize)]
pub struct RfmCell {
    pub r: usize,
    pub f: usize,
    pub m: usize,
    pub persons: u64,
}

async fn analytics_rfm(State(state): State<AppState>) -> Result<Json<RfmGrid>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let grid = analytics::rfm_grid(&e, e.now());
        let mut cells = Vec::new();
        for (r, plane) in grid.iter().enumerate() {
            for (f, row) in plane.iter().enumerate() {
                for (m, n) in row.iter().enumerate() {
                    cells.push(RfmCell {
                        r: r + 1,
                        f: f + 1,
                        m: m + 1,
                        persons: *n,
                    });
                }
            }
        }
        Ok(Json(RfmGrid {
            at: format_rfc3339(e.now()),
            cells,
        }))
    })
    .await
}

async fn analytics_funnel(
    State(state): State<AppState>,
    Query(q): Query<FunnelQuery>,
) -> Result<Json<Rows<FunnelRow>>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let rows = analytics::first_touch_funnel(
            &e,
            q.friend_days.unwrap_or(7) * 86_400,
            q.convert_days.unwrap_or(30) * 86_400,
        );
        Ok(Json(Rows { rows }))
    })
    .await
}

/// `GET /v1/analytics/cohorts`: weekly cohorts from `t0`.
#[derive(Serialize)]
pub struct Cohorts {
    pub t0: String,
    pub rows: Vec<CohortRow>,
}

async fn analytics_cohorts(
    State(state): State<AppState>,
    Query(q): Query<CohortQuery>,
) -> Result<Json<Cohorts>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let t0 = q.t0.unwrap_or(e.now() - 364 * 86_400);
        let rows = analytics::cohort_retention(&e, t0, 7 * 86_400, q.weeks.unwrap_or(13).min(104));
        Ok(Json(Cohorts {
            t0: format_rfc3339(t0),
            rows,
        }))
    })
    .await
}

async fn analytics_referrals(
    State(state): State<AppState>,
    Query(q): Query<ReferralQuery>,
) -> Result<Json<ReferralSummary>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let sum = analytics::referral_summary(
            &e,
            q.convert_days.unwrap_or(14) * 86_400,
            q.tiers.as_deref().unwrap_or(&[10, 20]),
            q.top.unwrap_or(10).min(100),
        );
        Ok(Json(sum))
    })
    .await
}

fn load_spend(state: &AppState) -> Result<Vec<(String, i64)>, ApiError> {
    let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match store.get_setting("spend")? {
        Some(v) => serde_json::from_value(v).unwrap_or_default(),
        None => Vec::new(),
    })
}

async fn analytics_roi(State(state): State<AppState>) -> Result<Json<Rows<RoiRow>>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let spend = load_spend(&s)?;
        let e = read_engine(&s);
        let rows = analytics::channel_roi(&e, spend.iter().map(|(c, x)| (c.as_str(), *x)));
        Ok(Json(Rows { rows }))
    })
    .await
}

async fn analytics_repurchase(State(state): State<AppState>) -> Result<Json<Repurchase>, ApiError> {
    let s = state.clone();
    blocking(move || Ok(Json(analytics::repurchase(&read_engine(&s))))).await
}

#[derive(Deserialize)]
struct StepsBody {
    steps: Vec<FunnelStep>,
    #[serde(default)]
    split_by_channel: bool,
}

/// `POST /v1/analytics/steps`: the steps asked for and who reached each.
#[derive(Serialize)]
pub struct Steps {
    pub steps: Vec<FunnelStep>,
    pub rows: Vec<FunnelResult>,
}

async fn analytics_steps(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Steps>, ApiError> {
    require_json(&headers)?;
    // Read here rather than by axum's `Json`, so a bad field (a duration
    // such as "1 day") is a JSON 400 naming it, like every other error.
    let body: StepsBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "steps body: line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
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
        let rows = pass.finish();
        Ok(Json(Steps {
            steps: body.steps,
            rows,
        }))
    })
    .await
}

async fn analytics_attribution(
    State(state): State<AppState>,
) -> Result<Json<Rows<Attribution>>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let mut pass = siyu_engine::scan::AttributionPass::new();
        log_pass(&s, |p, e| pass.feed(p, e))?;
        Ok(Json(Rows {
            rows: pass.finish(),
        }))
    })
    .await
}

async fn analytics_ltv(State(state): State<AppState>) -> Result<Json<Rows<LtvRow>>, ApiError> {
    let s = state.clone();
    blocking(move || {
        Ok(Json(Rows {
            rows: analytics::ltv_by_cohort_and_channel(&read_engine(&s)),
        }))
    })
    .await
}

/// `PUT /v1/spend`: how many rows the saved table holds.
#[derive(Serialize)]
pub struct SpendSaved {
    pub rows: usize,
}

async fn put_spend(
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<SpendSaved>, ApiError> {
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
        let table = serde_json::to_value(&per_channel)
            .map_err(|e| ApiError::Internal(format!("spend table: {e}")))?;
        store.put_setting("spend", Some(&table))?;
        Ok(())
    })
    .await?;
    state
        .0
        .analytics_cache
        .generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(SpendSaved { rows: n }))
}

/// A refused spend CSV is a 400 naming the line (`siyu_commerce::spend`).
impl From<SpendError> for ApiError {
    fn from(e: SpendError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}
