//! Analytics routes: whole-population answers from the engine (RFM grid,
//! RFM value layers and the workspace's thresholds for them (`crate::rfm`),
//! first-touch funnel, cohorts, referrals, ROI, repurchase, LTV; cached by
//! `crate::cache`), full-log passes in event time (`crate::log_pass`:
//! funnel steps, attribution) and the ad-spend table ROI reads (`PUT
//! /v1/spend`, parsed by `siyu_commerce::spend`, kept by day).
//!
//! Time is the workspace's (`crate::zone`): ROI, the funnel, attribution
//! and LTV take `from`/`to` (local dates or instants) as a filter laid
//! over the engine's folds and the log pass, cohort weeks start Monday
//! 00:00 local time and LTV months are local months; ranged answers name
//! their zone and range.

use crate::cache::{CohortQuery, FunnelQuery, RangeQuery, ReferralQuery, RfmLayersQuery};
use crate::error::ApiError;
use crate::log_pass::columns_pass_in_event_time;
use crate::request::{blocking, read_body, read_engine, require_json, route, Route};
use crate::zone::{self, DateRange, LocalWeeks, RangeView};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_automation::schedule::{self, Tz};
use siyu_commerce::spend::{self, parse_spend_csv, SpendError, SpendRow};
use siyu_domain::time::format_rfc3339;
use siyu_engine::analytics::{
    self, CohortRow, FunnelRow, LtvRow, ReferralSummary, Repurchase, RoiRow,
};
use siyu_engine::rfm::{layer_report, median_thresholds, LayerRow, RfmSource, RfmThresholds};
use siyu_engine::scan::{Attribution, FunnelResult, FunnelStep, Only};
use siyu_engine::RawEvent;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/analytics/rfm", read, "RFM grid (125 cells) at the engine clock.", analytics_rfm),
        route!(get, "/v1/analytics/rfm-layers", read, "The eight RFM value layers (重要价值客户 … 一般挽留客户) at the engine clock: persons, revenue, their shares and each layer's revenue per person against the average buyer, with the thresholds used (the workspace's; `recency_days`, `frequency`, `monetary_cents` try others).", analytics_rfm_layers),
        route!(get, "/v1/settings/rfm", read, "The workspace's RFM thresholds: the setting (or null) and those in effect (the setting, else the medians among buyers).", get_rfm_settings),
        route!(put, "/v1/settings/rfm", write, "Set the RFM thresholds `{\"recency_days\": 30, \"frequency\": 1, \"monetary_cents\": 50000}`; segments reading rfm_layer follow at once.", put_rfm_settings, body = RfmSettingsBody),
        route!(delete, "/v1/settings/rfm", write, "Remove the RFM thresholds setting: the medians among buyers apply again.", delete_rfm_settings),
        route!(get, "/v1/analytics/funnel", read, "First-touch funnel per channel: entered → friended (`friend_days`) → converted (`convert_days`), of the persons first seen in `from`..`to` (local dates, inclusive).", analytics_funnel),
        route!(get, "/v1/analytics/cohorts", read, "Weekly cohort retention by first add_friend (`t0`: epoch seconds, its week's Monday 00:00 in the workspace time zone starts week 0; `weeks`).", analytics_cohorts),
        route!(get, "/v1/analytics/referrals", read, "Referral tiers and top inviters (`tiers`: ascending invite counts, default `10,20`; `convert_days`; `top`).", analytics_referrals),
        route!(get, "/v1/analytics/roi", read, "Channel ROI: spend (from /v1/spend) on the days `from`..`to` (local dates, inclusive) against the revenue of the persons first seen in that range, by first-touch channel; beside it `partners`: each partner's revenue against commission and fees, of the persons who arrived through it in the range.", analytics_roi),
        route!(get, "/v1/analytics/repurchase", read, "Repurchase rate and median interval.", analytics_repurchase),
        route!(get, "/v1/analytics/ltv", read, "Historical LTV by first-seen month (local) and channel, of the persons first seen in `from`..`to`.", analytics_ltv),
        route!(post, "/v1/analytics/steps", read, "Funnel over any steps: `{\"steps\": [{\"event_type\": \"touch\"}, {\"event_type\": \"add_friend\", \"within\": \"7d\"}], \"split_by_channel\": true}` (`within`: a duration such as `\"7d\"` or `\"12h\"`, or seconds; in event time: one pass over the log, two when some person's events were stored out of time order).", analytics_steps, body = StepsBody),
        route!(get, "/v1/analytics/attribution", read, "Revenue of the purchases in `from`..`to` per channel under first-touch, last-touch and linear attribution (in event time: one pass over the log, two when some person's events were stored out of time order).", analytics_attribution),
        route!(put, "/v1/spend", write, "Replace the spend table: CSV `day,channel,spend` (cents per channel per day, days in the workspace time zone) or `channel,spend` (undated totals, counted only without a range).", put_spend, body_media = "text/csv"),
    ]
}

/// A ranged answer that is a list of the engine's rows (funnel,
/// attribution, LTV): `{"rows": [...], "time_zone", "from", "to"}`, the
/// range and zone the rows were computed for.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RangedRows<T> {
    #[serde(flatten)]
    pub range: RangeView,
    pub rows: Vec<T>,
}

/// `GET /v1/analytics/roi`: ROI rows for a range.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Roi {
    #[serde(flatten)]
    pub range: RangeView,
    pub rows: Vec<RoiRow>,
    /// Cents of spend rows without a day (uploaded as `channel,spend`)
    /// left out because a range was asked for.
    pub undated_spend_excluded: i64,
    /// The partner program beside the channels: each partner's revenue
    /// against its commission and fees, of the persons who arrived through
    /// it in the range (fees, undated, only without a range).
    pub partners: Vec<crate::routes::partners::PartnerRoiRow>,
}

/// The workspace zone and the range `from`/`to` ask for, or a 400 naming
/// the bad field.
fn range_of(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Tz, DateRange), ApiError> {
    let tz = zone::current(state);
    let range = DateRange::parse(from, to, &tz).map_err(ApiError::BadRequest)?;
    Ok((tz, range))
}

/// `GET /v1/analytics/rfm`: the 125 cells of the RFM grid.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RfmGrid {
    /// The engine clock the scores are computed at.
    pub at: String,
    pub cells: Vec<RfmCell>,
}

/// Persons with these recency, frequency and monetary scores (1–5).
#[derive(Serialize, schemars::JsonSchema)]
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

/// Thresholds as the API shows them, with where they come from.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RfmThresholdsInEffect {
    #[serde(flatten)]
    pub thresholds: RfmThresholds,
    /// `setting`, `median` (no setting: the medians among buyers) or
    /// `query` (tried through the query string).
    pub source: &'static str,
    /// When medians were computed (the engine pins them hourly).
    pub computed_at: Option<String>,
}

/// `GET /v1/analytics/rfm-layers`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RfmLayers {
    /// The engine clock recency is measured at.
    pub at: String,
    /// Null while nobody has purchased (every layer is then empty).
    pub thresholds: Option<RfmThresholdsInEffect>,
    /// Persons with a purchase: the ones in some layer.
    pub buyers: u64,
    /// Net spend (purchases − refunds) of all buyers, cents.
    pub revenue_cents: i64,
    pub revenue_per_buyer_cents: i64,
    /// All eight layers in the classic order, empty ones included.
    pub layers: Vec<LayerRow>,
}

/// The thresholds in effect: the engine's pinned ones (the setting or the
/// medians of the last hour, `crate::rfm`), else the medians now.
fn thresholds_in_effect(e: &siyu_engine::Engine) -> Option<RfmThresholdsInEffect> {
    if let Some(b) = e.rfm_basis() {
        return Some(RfmThresholdsInEffect {
            thresholds: b.thresholds,
            source: match b.source {
                RfmSource::Setting => "setting",
                RfmSource::Median { .. } => "median",
            },
            computed_at: match b.source {
                RfmSource::Setting => None,
                RfmSource::Median { at } => Some(format_rfc3339(at)),
            },
        });
    }
    median_thresholds(e, e.now()).map(|thresholds| RfmThresholdsInEffect {
        thresholds,
        source: "median",
        computed_at: Some(format_rfc3339(e.now())),
    })
}

async fn analytics_rfm_layers(
    State(state): State<AppState>,
    Query(q): Query<RfmLayersQuery>,
) -> Result<Json<RfmLayers>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let mut used = thresholds_in_effect(&e);
        if q.recency_days.is_some() || q.frequency.is_some() || q.monetary_cents.is_some() {
            // What is not given is the workspace's (zero while nobody bought).
            let base = used.as_ref().map_or(RfmThresholds::ZERO, |u| u.thresholds);
            let tried = base.overridden(q.recency_days, q.frequency, q.monetary_cents);
            tried.validate().map_err(threshold_error)?;
            used = Some(RfmThresholdsInEffect {
                thresholds: tried,
                source: "query",
                computed_at: None,
            });
        }
        // Nobody has purchased: eight empty layers.
        let thresholds = used.as_ref().map_or(RfmThresholds::ZERO, |u| u.thresholds);
        let report = layer_report(&e, e.now(), &thresholds);
        Ok(Json(RfmLayers {
            at: format_rfc3339(e.now()),
            thresholds: used,
            buyers: report.buyers,
            revenue_cents: report.revenue_cents,
            revenue_per_buyer_cents: report.revenue_per_buyer_cents,
            layers: report.layers,
        }))
    })
    .await
}

fn threshold_error(e: siyu_engine::rfm::ThresholdError) -> ApiError {
    ApiError::BadRequest(format!(
        "{e}, e.g. {{\"recency_days\": 30, \"frequency\": 1, \"monetary_cents\": 50000}}"
    ))
}

/// `GET`, `PUT` and `DELETE /v1/settings/rfm`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RfmSettings {
    /// The workspace's own thresholds, or null (the medians apply).
    pub setting: Option<RfmThresholds>,
    /// What `rfm_layer` and the layer report use now (null while nobody
    /// has purchased and there is no setting).
    pub in_effect: Option<RfmThresholdsInEffect>,
    /// Segment entries and exits the change caused (0 for `GET`).
    pub segment_changes: usize,
}

fn rfm_settings(state: &AppState, segment_changes: usize) -> Result<RfmSettings, ApiError> {
    let setting = {
        let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        crate::rfm::stored(store.as_mut())?
    };
    let e = read_engine(state);
    Ok(RfmSettings {
        setting,
        in_effect: thresholds_in_effect(&e),
        segment_changes,
    })
}

async fn get_rfm_settings(State(state): State<AppState>) -> Result<Json<RfmSettings>, ApiError> {
    let s = state.clone();
    blocking(move || Ok(Json(rfm_settings(&s, 0)?))).await
}

/// The body of `PUT /v1/settings/rfm`: all three, nothing else (a typo
/// such as `recency` is named, not ignored).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RfmSettingsBody {
    recency_days: u32,
    frequency: u32,
    monetary_cents: i64,
}

async fn put_rfm_settings(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<RfmSettings>, ApiError> {
    let b: RfmSettingsBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "rfm thresholds: {e}; send {{\"recency_days\": 30, \"frequency\": 1, \"monetary_cents\": 50000}}"
        ))
    })?;
    let t = RfmThresholds {
        recency_days: b.recency_days,
        frequency: b.frequency,
        monetary_cents: b.monetary_cents,
    };
    t.validate().map_err(threshold_error)?;
    set_rfm(state, Some(t)).await
}

async fn delete_rfm_settings(State(state): State<AppState>) -> Result<Json<RfmSettings>, ApiError> {
    set_rfm(state, None).await
}

async fn set_rfm(
    state: AppState,
    thresholds: Option<RfmThresholds>,
) -> Result<Json<RfmSettings>, ApiError> {
    let changes = state
        .0
        .writer
        .set_rfm(thresholds)
        .await
        .map_err(ApiError::Internal)?;
    let s = state.clone();
    blocking(move || Ok(Json(rfm_settings(&s, changes.len())?))).await
}

/// A window in days (`friend_days`, `convert_days`) as seconds: 0 to
/// `cache::MAX_WINDOW_DAYS` (their schema's range), else a 400 naming the
/// field (an unchecked `i64` overflowed into a 500).
fn window_secs(days: Option<i64>, default: i64, field: &str) -> Result<i64, ApiError> {
    match days.unwrap_or(default) {
        d @ 0..=crate::cache::MAX_WINDOW_DAYS => Ok(d * 86_400),
        d => Err(ApiError::BadRequest(format!(
            "{field}: {d} is not a number of days from 0 to {}",
            crate::cache::MAX_WINDOW_DAYS
        ))),
    }
}

async fn analytics_funnel(
    State(state): State<AppState>,
    Query(q): Query<FunnelQuery>,
) -> Result<Json<RangedRows<FunnelRow>>, ApiError> {
    let (tz, range) = range_of(&state, q.from.as_deref(), q.to.as_deref())?;
    let friend_secs = window_secs(q.friend_days, 7, "friend_days")?;
    let convert_secs = window_secs(q.convert_days, 30, "convert_days")?;
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let rows =
            analytics::first_touch_funnel_in(&e, friend_secs, convert_secs, &range.instants());
        Ok(Json(RangedRows {
            range: range.view(&tz),
            rows,
        }))
    })
    .await
}

/// `GET /v1/analytics/cohorts`: weekly cohorts from `t0`, weeks starting
/// Monday 00:00 in the workspace time zone.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Cohorts {
    /// Week 0's first instant, local RFC 3339.
    pub t0: String,
    /// The zone the weeks are calendar weeks of.
    pub time_zone: String,
    pub rows: Vec<CohortWeek>,
}

/// One cohort: the persons whose first add_friend fell in week `cohort`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CohortWeek {
    /// Weeks after week 0.
    pub cohort: i64,
    /// The cohort's Monday (local date).
    pub week_start: String,
    pub size: u64,
    /// Active persons per week offset 0..weeks.
    pub active: Vec<u64>,
}

async fn analytics_cohorts(
    State(state): State<AppState>,
    Query(q): Query<CohortQuery>,
) -> Result<Json<Cohorts>, ApiError> {
    let tz = zone::current(&state);
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let t0 = q.t0.unwrap_or(e.now() - 364 * 86_400);
        let weeks = LocalWeeks::containing(t0, &tz);
        let rows: Vec<CohortRow> = analytics::cohort_retention_by(
            &e,
            &|ts| weeks.week_of(ts),
            &|c| weeks.start(c),
            q.weeks.unwrap_or(13).min(104),
        );
        Ok(Json(Cohorts {
            t0: schedule::format_local(weeks.start(0), &tz),
            time_zone: tz.name().to_string(),
            rows: rows
                .into_iter()
                .map(|r| CohortWeek {
                    week_start: weeks.monday(r.cohort),
                    cohort: r.cohort,
                    size: r.size,
                    active: r.active,
                })
                .collect(),
        }))
    })
    .await
}

async fn analytics_referrals(
    State(state): State<AppState>,
    Query(q): Query<ReferralQuery>,
) -> Result<Json<ReferralSummary>, ApiError> {
    let convert_secs = window_secs(q.convert_days, 14, "convert_days")?;
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let sum = analytics::referral_summary(
            &e,
            convert_secs,
            q.tiers.as_deref().unwrap_or(&[10, 20]),
            q.top.unwrap_or(10).min(100),
        );
        Ok(Json(sum))
    })
    .await
}

fn load_spend(state: &AppState) -> Result<Vec<SpendRow>, ApiError> {
    let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
    Ok(spend::from_setting(store.get_setting(spend::SETTING)?))
}

async fn analytics_roi(
    State(state): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<Roi>, ApiError> {
    let (tz, range) = range_of(&state, q.from.as_deref(), q.to.as_deref())?;
    let s = state.clone();
    blocking(move || {
        let spend = spend::spend_in_days(&load_spend(&s)?, range.days(&tz));
        let e = read_engine(&s);
        let instants = range.instants();
        let rows = analytics::channel_roi_in(
            &e,
            spend.per_channel.iter().map(|(c, x)| (c.as_str(), *x)),
            &instants,
        );
        let partners = {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            crate::routes::partners::roi_rows(
                &e,
                store.as_mut(),
                (!range.is_all_time()).then_some(&instants),
            )?
        };
        Ok(Json(Roi {
            range: range.view(&tz),
            rows,
            undated_spend_excluded: spend.undated_cents,
            partners,
        }))
    })
    .await
}

async fn analytics_repurchase(State(state): State<AppState>) -> Result<Json<Repurchase>, ApiError> {
    let s = state.clone();
    blocking(move || Ok(Json(analytics::repurchase(&read_engine(&s))))).await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct StepsBody {
    steps: Vec<FunnelStep>,
    #[serde(default)]
    split_by_channel: bool,
}

/// `POST /v1/analytics/steps`: the steps asked for and who reached each.
#[derive(Serialize, schemars::JsonSchema)]
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
        columns_pass_in_event_time(&s, &mut pass)?;
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
    Query(q): Query<RangeQuery>,
) -> Result<Json<RangedRows<Attribution>>, ApiError> {
    let (tz, range) = range_of(&state, q.from.as_deref(), q.to.as_deref())?;
    let s = state.clone();
    blocking(move || {
        let mut pass = siyu_engine::scan::AttributionPass::new();
        columns_pass_in_event_time(
            &s,
            &mut Only {
                pass: &mut pass,
                admits: |e: &RawEvent<'_>| range.admits_for_attribution(e),
            },
        )?;
        Ok(Json(RangedRows {
            range: range.view(&tz),
            rows: pass.finish(),
        }))
    })
    .await
}

async fn analytics_ltv(
    State(state): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<RangedRows<LtvRow>>, ApiError> {
    let (tz, range) = range_of(&state, q.from.as_deref(), q.to.as_deref())?;
    let s = state.clone();
    blocking(move || {
        let rows =
            analytics::ltv_by_cohort_and_channel_in(&read_engine(&s), &range.instants(), &|ts| {
                schedule::local_day(ts, &tz)
            });
        Ok(Json(RangedRows {
            range: range.view(&tz),
            rows,
        }))
    })
    .await
}

/// `PUT /v1/spend`: how many rows the saved table holds.
#[derive(Serialize, schemars::JsonSchema)]
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
    let n = rows.len();
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        store.put_setting(spend::SETTING, Some(&spend::to_setting(&rows)))?;
        Ok(())
    })
    .await?;
    state.0.analytics_cache.invalidate();
    Ok(Json(SpendSaved { rows: n }))
}

/// A refused spend CSV is a 400 naming the line (`siyu_commerce::spend`).
impl From<SpendError> for ApiError {
    fn from(e: SpendError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}
