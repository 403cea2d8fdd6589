//! Segment and computed-property routes: saved segments (list, get, save
//! a new version, preview, members, explain, history, live changes over
//! SSE) and property definitions. Definitions go through the writer;
//! stored ones that could not be loaded are shown from `quarantine`.

use crate::error::ApiError;
use crate::request::{blocking, read_engine, resolve, route, Route};
use crate::writer::Definition;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use siyu_domain::time::format_rfc3339;
use siyu_engine::segment::{self, Expr};
use siyu_engine::Engine;
use tokio_stream::StreamExt;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/segments", read, "Saved segments with versions and live counts.", list_segments),
        route!(get, "/v1/segments/{name}", read, "One saved segment (`status` ok), or why a stored one could not be loaded (`status` broken, `error`).", get_segment),
        route!(put, "/v1/segments/{name}", write, "Save a segment (new or new version) from `{\"segment\": \"<language>\"}` or `{\"tree\": {...}}`.", put_segment),
        route!(post, "/v1/segments/preview", read, "Parse a segment and count its members now, without saving.", preview_segment),
        route!(get, "/v1/segments/{name}/members", read, "Members' canonical ids (`limit`, `after`).", segment_members),
        route!(get, "/v1/segments/{name}/explain", read, "Why a person (`person` = any identity) is in or out, clause by clause.", explain_segment),
        route!(get, "/v1/segments/{name}/history", read, "Membership history, newest first: every entry and exit with its time (`person` = any identity, `limit`).", segment_history),
        route!(get, "/v1/segments/{name}/changes", read, "Server-sent events: every entry and exit as it happens.", segment_changes),
        route!(get, "/v1/properties", read, "Computed property definitions (`status` ok), and stored ones that could not be loaded (`status` broken, `error`).", list_properties),
        route!(put, "/v1/properties/{name}", write, "Define a computed property (count/sum/min/max/first/last of an event type, filters, window).", put_property),
    ]
}

async fn list_segments(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let e = read_engine(&state);
    let mut items: Vec<Value> = e
        .live_segments()
        .segments()
        .iter()
        .map(segment_json)
        .collect();
    items.extend(
        state
            .0
            .quarantine
            .under("segment/")
            .into_iter()
            .map(|(name, error)| broken_segment_json(&name, &error)),
    );
    Ok(Json(json!({"segments": items})))
}

fn segment_json(s: &siyu_engine::segment::live::Segment) -> Value {
    json!({"name": s.name, "status": "ok", "version": s.version, "segment": s.source, "tree": s.expr, "count": s.count()})
}

/// A stored segment that could not be loaded (see `quarantine`).
fn broken_segment_json(name: &str, error: &str) -> Value {
    json!({"name": name, "status": "broken", "error": error, "fix": format!("PUT /v1/segments/{name} with a valid definition")})
}

fn broken_segment(name: &str, error: &str) -> String {
    format!("segment `{name}` is stored but could not be loaded ({error}); PUT /v1/segments/{name} with a valid definition to repair it")
}

async fn get_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = read_engine(&state);
    match e.live_segments().index_of(&name) {
        Some(i) => Ok(Json(segment_json(
            &e.live_segments().segments()[i as usize],
        ))),
        None => match state.0.quarantine.error(&format!("segment/{name}")) {
            Some(error) => Ok(Json(broken_segment_json(&name, &error))),
            None => Err(ApiError::NotFound(format!(
                "no segment named `{name}`; GET /v1/segments lists them"
            ))),
        },
    }
}

#[derive(Deserialize)]
struct SegmentBody {
    segment: Option<String>,
    tree: Option<Expr>,
}

fn parse_segment_body(b: SegmentBody) -> Result<(Expr, String), ApiError> {
    match (b.segment, b.tree) {
        (Some(src), _) => match segment::parse(&src) {
            Ok(e) => Ok((e, src)),
            Err(err) => Err(ApiError::InvalidSegment(format!("segment: {err}"))),
        },
        (None, Some(tree)) => {
            // Before anything walks the tree (printing it is a walk).
            tree.check_depth()
                .map_err(|e| ApiError::InvalidSegment(format!("tree: {e}")))?;
            let src = tree.to_string();
            Ok((tree, src))
        }
        (None, None) => Err(ApiError::InvalidSegment(
            "send {\"segment\": \"purchases(last 90d) >= 2 and not opted_out\"} or {\"tree\": {...}}".into(),
        )),
    }
}

async fn put_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SegmentBody>,
) -> Result<Json<Value>, ApiError> {
    let (expr, source) = parse_segment_body(body)?;
    let changes = state
        .0
        .writer
        .define(Definition::Segment {
            name: name.clone(),
            expr,
            source,
        })
        .await
        .map_err(ApiError::InvalidSegment)?;
    let e = read_engine(&state);
    let segs = e.live_segments();
    let s = segs.index_of(&name).map(|i| &segs.segments()[i as usize]);
    Ok(Json(
        json!({"name": name, "version": s.map(|s| s.version), "count": s.map(|s| s.count()), "changes": changes.len()}),
    ))
}

async fn preview_segment(
    State(state): State<AppState>,
    Json(body): Json<SegmentBody>,
) -> Result<Json<Value>, ApiError> {
    let (expr, _) = parse_segment_body(body)?;
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let members = e.matching(&expr);
        let sample: Vec<&str> = members
            .iter()
            .take(10)
            .map(|p| e.canonical_id(*p))
            .collect();
        Ok(Json(
            json!({"count": members.len(), "sample": sample, "tree": expr}),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct MembersQuery {
    limit: Option<usize>,
    after: Option<u32>,
}

fn segment_index(state: &AppState, e: &Engine, name: &str) -> Result<u32, ApiError> {
    e.live_segments().index_of(name).ok_or_else(|| {
        match state.0.quarantine.error(&format!("segment/{name}")) {
            Some(error) => ApiError::Conflict(broken_segment(name, &error)),
            None => ApiError::NotFound(format!(
                "no segment named `{name}`; GET /v1/segments lists them"
            )),
        }
    })
}

async fn segment_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Value>, ApiError> {
    let e = read_engine(&state);
    let i = segment_index(&state, &e, &name)?;
    let limit = q.limit.unwrap_or(100).min(1000);
    let seg = &e.live_segments().segments()[i as usize];
    let slots: Vec<u32> = seg
        .members()
        .filter(|s| q.after.is_none_or(|a| *s > a))
        .take(limit)
        .collect();
    let members: Vec<&str> = slots.iter().map(|p| e.canonical_id(*p)).collect();
    Ok(Json(
        json!({"segment": name, "count": seg.count(), "members": members, "next_after": (slots.len() == limit).then(|| slots.last()).flatten()}),
    ))
}

#[derive(Deserialize)]
struct ExplainQuery {
    person: String,
}

async fn explain_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<Value>, ApiError> {
    let e = read_engine(&state);
    let i = segment_index(&state, &e, &name)?;
    let p = resolve(&e, &q.person)?;
    let expr = e.live_segments().segments()[i as usize].expr.clone();
    let why = e.explain(&expr, p);
    Ok(Json(
        json!({"segment": name, "canonical_id": e.canonical_id(p), "member": e.live_segments().is_member(i, p), "explanation": why}),
    ))
}

#[derive(Deserialize)]
struct HistoryQuery {
    person: Option<String>,
    limit: Option<usize>,
}

async fn segment_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let canonical = {
        let e = read_engine(&state);
        segment_index(&state, &e, &name)?;
        match &q.person {
            Some(id) => Some(e.canonical_id(resolve(&e, id)?).to_string()),
            None => None,
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let s = state.clone();
    let seg = name.clone();
    let rows = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        Ok(store.segment_history(&seg, canonical.as_deref(), limit)?)
    })
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({"canonical_id": r.canonical_id, "change": if r.entered { "enter" } else { "exit" }, "at": format_rfc3339(r.at)}))
        .collect();
    Ok(Json(json!({"segment": name, "history": items})))
}

async fn segment_changes(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    {
        let e = read_engine(&state);
        segment_index(&state, &e, &name)?;
    }
    let rx = state.0.changes.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |c| match c {
        Ok(c) if c.segment == name => Some(Ok::<_, std::convert::Infallible>(
            SseEvent::default()
                .event(c.change)
                .data(serde_json::to_string(&c).unwrap_or_default()),
        )),
        _ => None,
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn list_properties(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut items: Vec<Value> = read_engine(&state)
        .properties()
        .iter()
        .map(|d| {
            let mut v = json!(d);
            v["status"] = json!("ok");
            v
        })
        .collect();
    items.extend(state.0.quarantine.under("property/").into_iter().map(|(name, error)| {
        json!({"name": name, "status": "broken", "error": error, "fix": format!("PUT /v1/properties/{name} with a valid definition")})
    }));
    Ok(Json(json!({"properties": items})))
}

async fn put_property(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(mut def): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    def["name"] = Value::from(name.clone());
    let def: siyu_engine::property::PropertyDef = serde_json::from_value(def)
        .map_err(|e| ApiError::BadRequest(format!("property definition: {e}")))?;
    state
        .0
        .writer
        .define(Definition::Property(def))
        .await
        .map_err(ApiError::BadRequest)?;
    Ok(Json(json!({"name": name, "defined": true})))
}
