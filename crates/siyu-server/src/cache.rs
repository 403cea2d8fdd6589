//! Answers of the whole-population analytics (`GET /v1/analytics/*`),
//! cached per engine state so the console's dashboard never waits for a
//! full pass: an entry is valid while no event was applied, the engine's
//! minute has not changed and no spend table was saved. A background task
//! keeps the dashboard's queries warm after every change, so at 1M persons
//! a page load reads answers computed beforehand. An entry is keyed by
//! the path and the parameters its handler reads
//! ([`analytics_cache_key`], over the query types the analytics handlers
//! take: [`FunnelQuery`], [`CohortQuery`], [`ReferralQuery`],
//! [`RfmLayersQuery`], [`RangeQuery`]) and the workspace time zone:
//! made-up parameters cannot fill the cache, and a range is never
//! answered for another zone.

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The queries the console's dashboard makes (kept warm).
pub const DASHBOARD: &[&str] = &[
    "/v1/analytics/funnel",
    "/v1/analytics/roi",
    "/v1/analytics/cohorts?weeks=12",
    "/v1/analytics/rfm",
    "/v1/analytics/rfm-layers",
    "/v1/analytics/repurchase",
];

/// Most entries kept (different query strings); cleared when exceeded.
const MAX_ENTRIES: usize = 256;

/// (events applied, engine minute, spend generation, the RFM thresholds
/// the engine holds): what an answer depends on. The thresholds are in
/// it because the writer re-pins the medians on its own (`crate::rfm`),
/// not only when an operator saves a setting.
type Stamp = (u64, i64, u64, Option<siyu_engine::rfm::RfmBasis>);

#[derive(Default)]
pub struct AnalyticsCache {
    entries: Mutex<HashMap<String, (Stamp, StatusCode, Bytes)>>,
    /// Bumped when an input other than events changes (the spend table).
    generation: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl AnalyticsCache {
    /// Answers held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every held answer stops counting: an input other than the events
    /// changed (the spend table, the time zone, a definition, here or on
    /// another node).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

fn stamp(state: &AppState) -> Stamp {
    let e = state.0.engine.read().unwrap_or_else(|e| e.into_inner());
    (
        e.events_applied(),
        e.now().div_euclid(60),
        state.0.analytics_cache.generation.load(Ordering::Relaxed),
        e.rfm_basis(),
    )
}

/// The cache key of a `GET /v1/analytics/*` answer: its path
/// and the parameters its handler reads, parsed as the handler parses
/// them, so unknown parameters (`?x=1`, `?x=2` …) and their order do not
/// make new entries. None when the path is not a cached query or its
/// parameters do not parse (the handler answers the error, uncached).
/// The workspace time zone is part of every key: dates in a range and
/// cohort weeks mean different instants in another zone.
pub fn analytics_cache_key(uri: &axum::http::Uri, time_zone: &str) -> Option<String> {
    fn read<T: serde::de::DeserializeOwned + Serialize>(uri: &axum::http::Uri) -> Option<String> {
        let Query(q) = Query::<T>::try_from_uri(uri).ok()?;
        serde_json::to_string(&q).ok()
    }
    let params = match uri.path() {
        "/v1/analytics/funnel" => read::<FunnelQuery>(uri)?,
        "/v1/analytics/cohorts" => read::<CohortQuery>(uri)?,
        "/v1/analytics/referrals" => read::<ReferralQuery>(uri)?,
        "/v1/analytics/rfm-layers" => read::<RfmLayersQuery>(uri)?,
        "/v1/analytics/roi" | "/v1/analytics/ltv" | "/v1/analytics/attribution" => {
            read::<RangeQuery>(uri)?
        }
        "/v1/analytics/rfm" | "/v1/analytics/repurchase" => String::new(),
        _ => return None,
    };
    Some(format!("{} {time_zone} {params}", uri.path()))
}

/// The longest window in days an analytics question takes (100 years).
pub const MAX_WINDOW_DAYS: i64 = 36_500;

/// Parameters of `GET /v1/analytics/funnel` (days; defaults 7 and 30;
/// `from`/`to` as in [`RangeQuery`]).
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct FunnelQuery {
    #[schemars(range(min = 0, max = MAX_WINDOW_DAYS))]
    pub friend_days: Option<i64>,
    #[schemars(range(min = 0, max = MAX_WINDOW_DAYS))]
    pub convert_days: Option<i64>,
    /// Start of the range: a date `YYYY-MM-DD` in the workspace time zone
    /// (GET /v1/workspace; default Asia/Shanghai), from its first instant,
    /// or an RFC 3339 instant (`2026-10-01T00:00:00+08:00`). A bad value,
    /// or `from` after `to`, is a 400 naming the field.
    #[schemars(example = "2026-10-01")]
    pub from: Option<String>,
    /// End of the range (inclusive): a date `YYYY-MM-DD` in the workspace
    /// time zone, through its last instant, or an RFC 3339 instant.
    #[schemars(example = "2026-10-31")]
    pub to: Option<String>,
}

/// `from` and `to` of a ranged question (ROI, LTV, attribution): a local
/// date `YYYY-MM-DD` (both days included) or an RFC 3339 instant, read by
/// `crate::zone::DateRange::parse`. Kept as given in the key: with the
/// zone, the text says which instants are meant.
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct RangeQuery {
    /// Start of the range: a date `YYYY-MM-DD` in the workspace time zone
    /// (GET /v1/workspace; default Asia/Shanghai), from its first instant,
    /// or an RFC 3339 instant (`2026-10-01T00:00:00+08:00`). A bad value,
    /// or `from` after `to`, is a 400 naming the field.
    #[schemars(example = "2026-10-01")]
    pub from: Option<String>,
    /// End of the range (inclusive): a date `YYYY-MM-DD` in the workspace
    /// time zone, through its last instant, or an RFC 3339 instant.
    #[schemars(example = "2026-10-31")]
    pub to: Option<String>,
}

/// Parameters of `GET /v1/analytics/rfm-layers`: thresholds to try
/// instead of the workspace's (each optional; what is not given is the
/// workspace's). Part of the cache key, like every parameter.
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct RfmLayersQuery {
    pub recency_days: Option<u32>,
    pub frequency: Option<u32>,
    pub monetary_cents: Option<i64>,
}

/// Parameters of `GET /v1/analytics/cohorts` (`t0` epoch seconds).
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct CohortQuery {
    pub t0: Option<i64>,
    pub weeks: Option<usize>,
}

/// Parameters of `GET /v1/analytics/referrals`. `tiers` is read into its
/// list here, so `tiers=1,3` and `tiers=1, 3` are one cache entry and a
/// bad list is a 400 before any work.
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct ReferralQuery {
    #[schemars(range(min = 0, max = MAX_WINDOW_DAYS))]
    pub convert_days: Option<i64>,
    pub top: Option<usize>,
    /// Ascending lower bounds of valid invitees (`tiers=10,20`, the default).
    #[serde(default, deserialize_with = "referral_tiers")]
    #[schemars(with = "Option<String>", example = "10,20")]
    pub tiers: Option<Vec<u64>>,
}

/// The most tiers `GET /v1/analytics/referrals` counts.
pub const MAX_REFERRAL_TIERS: usize = 20;

/// `tiers=10,20`: at most [`MAX_REFERRAL_TIERS`] ascending counts ≥ 1.
fn referral_tiers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u64>>, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(d)?;
    let fix = "give ascending invite counts separated by commas, e.g. tiers=10,20";
    let tiers = text
        .split(',')
        .map(|t| match t.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(D::Error::custom(format!(
                "tiers: `{}` is not an invite count of at least 1; {fix}",
                t.trim()
            ))),
        })
        .collect::<Result<Vec<u64>, _>>()?;
    if tiers.len() > MAX_REFERRAL_TIERS {
        return Err(D::Error::custom(format!(
            "tiers: {} tiers, at most {MAX_REFERRAL_TIERS}; {fix}",
            tiers.len()
        )));
    }
    if tiers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(D::Error::custom(format!(
            "tiers: `{text}` is not ascending; {fix}"
        )));
    }
    Ok(Some(tiers))
}

/// Middleware: serve a cached answer when the engine has not changed.
/// It runs inside `auth::enforce`: the request is already authorized.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = if req.method() == Method::GET {
        analytics_cache_key(req.uri(), crate::zone::current(&state).name())
    } else {
        None
    };
    let Some(key) = key else {
        return next.run(req).await;
    };
    let now = stamp(&state);
    let cache = &state.0.analytics_cache;
    if let Some((s, status, body)) = cache
        .entries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        if *s == now {
            cache.hits.fetch_add(1, Ordering::Relaxed);
            return respond(*status, body.clone());
        }
    }
    cache.misses.fetch_add(1, Ordering::Relaxed);
    let resp = next.run(req).await;
    let status = resp.status();
    if status != StatusCode::OK {
        return resp;
    }
    let Ok(body) = axum::body::to_bytes(resp.into_body(), 64 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
    entries.insert(key, (now, status, body.clone()));
    respond(status, body)
}

fn respond(status: StatusCode, body: Bytes) -> Response {
    let mut r = (status, Body::from(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Recomputes the dashboard's answers after every change (checked each
/// few seconds), through the router so they land in the cache.
pub fn spawn_warmer(state: AppState) {
    // Holds the state only while working, so shutdown is not delayed.
    let app = std::sync::Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut last = None;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
        loop {
            tick.tick().await;
            let Some(inner) = app.upgrade() else { break };
            let state = AppState(inner);
            let now = stamp(&state);
            if last == Some(now) {
                continue;
            }
            let router = crate::app(state.clone());
            for uri in DASHBOARD {
                let req = Request::builder()
                    .uri(*uri)
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", state.0.internal_key),
                    )
                    .body(Body::empty())
                    .expect("a valid request");
                let _ = tower::ServiceExt::oneshot(router.clone(), req).await;
            }
            last = Some(now);
        }
    });
}
