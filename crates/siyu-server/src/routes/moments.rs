//! HTTP endpoints of the Moments SOPs (客户朋友圈, `siyu_growth::moments`):
//! plan, edit and cancel posts; list them with their status and report;
//! read likes and comments now. Publishing and the job results are the
//! leader's (`crate::moments`).

use crate::error::ApiError;
use crate::moments::{self, Report, SyncReport};
use crate::request::{now, parse_json, read_engine, route, valid_id, with_store, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_growth::moments::{self as gm, Known, MomentInput, MomentPlan, Status};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/moments", read, "Moments posts (客户朋友圈) with their status and report, by time; `?from=&to=` (RFC 3339 or epoch seconds) narrow to the posts due in that range, `?status=` to one status.", list_moments, statuses = [422]),
        route!(post, "/v1/moments", write, "Plan a Moments post: `{\"senders\": [operator login], \"at\" (after now), \"text\"?, \"attachments\"?: [{\"content\": id} | {\"image\": media_id}], \"audience\": {\"tags\": [..]} | {\"segment\": name}, \"id\"?}`; the leading node publishes it when due through WeCom, to the audience less the customers the guardrails leave out.", create_moment, body = MomentInput, statuses = [201, 422]),
        route!(post, "/v1/moments/sync", write, "Read the likes and comments of the posts published in the last 7 days now (the leader also does every 10 minutes): each becomes a `moment_like`/`moment_comment` event on the customer, stored once.", sync_moments, statuses = [422]),
        route!(get, "/v1/moments/{id}", read, "One Moments post with its status (planned, publishing, published, failed, cancelled, missed) and report: audience, reached, excluded by reason, likes, comments, customers who ordered within 7 days.", get_moment, statuses = [404]),
        route!(put, "/v1/moments/{id}", write, "Edit a planned Moments post (the body of POST /v1/moments); 409 once it is publishing or done.", put_moment, body = MomentInput, statuses = [404, 409, 422]),
        route!(delete, "/v1/moments/{id}", write, "Cancel a planned Moments post; 409 once it is publishing or done.", cancel_moment, statuses = [404, 409]),
    ]
}

/// A plan with its report.
#[derive(Serialize, schemars::JsonSchema)]
struct MomentView {
    #[serde(flatten)]
    plan: MomentPlan,
    report: Report,
}

fn view(state: &AppState, plan: MomentPlan) -> MomentView {
    MomentView {
        report: moments::report(state, &plan),
        plan,
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct MomentList {
    moments: Vec<MomentView>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// RFC 3339 or epoch seconds.
    from: Option<String>,
    to: Option<String>,
    status: Option<Status>,
}

fn bound(v: &Option<String>, field: &str) -> Result<Option<i64>, ApiError> {
    let Some(s) = v else { return Ok(None) };
    let value = match s.parse::<i64>() {
        Ok(n) => serde_json::json!(n),
        Err(_) => serde_json::json!(s),
    };
    Ok(Some(gm::parse_at(&value, field)?))
}

async fn list_moments(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<MomentList>, ApiError> {
    let from = bound(&q.from, "from")?;
    let to = bound(&q.to, "to")?;
    let plans = with_store(&state, move |store| {
        let mut skipped = Vec::new();
        let plans = gm::list(store, &mut skipped)?;
        for (key, error) in skipped {
            crate::quarantine::Broken::skipped(&key, error);
        }
        Ok(plans)
    })
    .await?;
    let moments = plans
        .into_iter()
        .filter(|p| from.is_none_or(|f| p.at >= f) && to.is_none_or(|t| p.at < t))
        .filter(|p| q.status.is_none_or(|s| p.status == s))
        .map(|p| view(&state, p))
        .collect();
    Ok(Json(MomentList { moments }))
}

/// The segments the engine holds, for the checks.
fn segments(state: &AppState) -> std::collections::HashSet<String> {
    read_engine(state)
        .live_segments()
        .segments()
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

async fn create_moment(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<MomentView>), ApiError> {
    let input: MomentInput = parse_json(&body, "moment")?;
    let names = segments(&state);
    let at = now();
    let plan = with_store(&state, move |store| {
        let segment = |s: &str| names.contains(s);
        Ok(gm::create(store, &Known { segment: &segment }, input, at)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, plan))))
}

async fn get_moment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MomentView>, ApiError> {
    // Any other id names no plan: 404.
    let plan = with_store(&state, move |store| Ok(gm::load(store, &id)?)).await?;
    Ok(Json(view(&state, plan)))
}

async fn put_moment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MomentView>, ApiError> {
    valid_id(&id, "id")?;
    let input: MomentInput = parse_json(&body, "moment")?;
    let names = segments(&state);
    let at = now();
    let plan = with_store(&state, move |store| {
        let segment = |s: &str| names.contains(s);
        Ok(gm::edit(
            store,
            &Known { segment: &segment },
            &id,
            input,
            at,
        )?)
    })
    .await?;
    Ok(Json(view(&state, plan)))
}

async fn cancel_moment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MomentView>, ApiError> {
    let at = now();
    let plan = with_store(&state, move |store| Ok(gm::cancel(store, &id, at)?)).await?;
    Ok(Json(view(&state, plan)))
}

async fn sync_moments(State(state): State<AppState>) -> Result<Json<SyncReport>, ApiError> {
    crate::wecom_ops::client(&state, "wecom")?;
    Ok(Json(moments::sync(&state, now()).await?))
}
