//! Segment and computed-property routes: saved segments (list, get, save
//! a new version, preview, members, explain, history, live changes over
//! SSE) and property definitions. Definitions go through the writer;
//! stored ones that could not be loaded are shown from `quarantine`.

use crate::error::ApiError;
use crate::references::{self, Referrer};
use crate::request::{
    blocking, read_engine, removal_audit, resolve, route, with_store, Removed, Route,
};
use crate::writer::{Definition, Deleted, Deletion};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use siyu_domain::time::format_rfc3339;
use siyu_engine::property::PropertyDef;
use siyu_engine::segment::{self, live, Explanation, Expr};
use siyu_engine::Engine;
use tokio_stream::StreamExt;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/segments", read, "Saved segments with versions and live counts.", list_segments),
        route!(get, "/v1/segments/{name}", read, "One saved segment (`status` ok), or why a stored one could not be loaded (`status` broken, `error`).", get_segment),
        route!(put, "/v1/segments/{name}", write, "Save a segment (new or new version) from `{\"segment\": \"<language>\"}` or `{\"tree\": {...}}`. Inbound messages' intents: `intent(last 7d) = \"price\"` (or 询价; tree `{\"kind\": \"intent\", \"intent\": \"price\", \"window\": \"7d\"}`).", put_segment),
        route!(delete, "/v1/segments/{name}", write, "Delete a segment: out of the store, live membership and every profile (its entry/exit history stays). 409 `in_use` naming each journey or segment that reads it; saving the name again continues its version numbers.", delete_segment, statuses = [409]),
        route!(post, "/v1/segments/preview", read, "Parse a segment and count its members now, without saving.", preview_segment),
        route!(get, "/v1/segments/{name}/members", read, "Members' canonical ids (`limit`, `after`).", segment_members),
        route!(get, "/v1/segments/{name}/explain", read, "Why a person (`person` = any identity) is in or out, clause by clause.", explain_segment),
        route!(get, "/v1/segments/{name}/history", read, "Membership history, newest first: every entry and exit with its time (`person` = any identity, `limit`).", segment_history),
        route!(get, "/v1/segments/{name}/changes", read, "Server-sent events: every entry and exit as it happens.", segment_changes, answer_media = "text/event-stream"),
        route!(get, "/v1/properties", read, "Computed property definitions (`status` ok), and stored ones that could not be loaded (`status` broken, `error`).", list_properties),
        route!(put, "/v1/properties/{name}", write, "Define a computed property (count/sum/min/max/first/last of an event type, filters, window).", put_property),
        route!(delete, "/v1/properties/{name}", write, "Delete a computed property (the engine is rebuilt without it). 409 `in_use` naming each segment that reads it.", delete_property, statuses = [409]),
    ]
}

/// A saved segment (`status` ok) or a stored one that could not be
/// loaded (`status` broken).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SegmentView {
    Ok(SavedSegment),
    Broken(Broken),
}

/// A saved segment: its current version and live count.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SavedSegment {
    pub name: String,
    /// Always `ok`.
    pub status: &'static str,
    pub version: u32,
    /// The segment in the language.
    pub segment: String,
    pub tree: Expr,
    pub count: usize,
}

impl SavedSegment {
    fn of(s: &live::Segment) -> Self {
        SavedSegment {
            name: s.name.clone(),
            status: "ok",
            version: s.version,
            segment: s.source.clone(),
            tree: s.expr.clone(),
            count: s.count(),
        }
    }
}

/// A stored definition (segment or property) that could not be loaded
/// (see `quarantine`), and how to repair it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Broken {
    pub name: String,
    /// Always `broken`.
    pub status: &'static str,
    pub error: String,
    pub fix: String,
}

impl Broken {
    /// `collection`: `segments` or `properties`, the path to PUT to.
    fn new(collection: &str, name: String, error: String) -> Self {
        let fix = format!("PUT /v1/{collection}/{name} with a valid definition");
        Broken {
            name,
            status: "broken",
            error,
            fix,
        }
    }
}

/// `GET /v1/segments`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentView>,
}

async fn list_segments(State(state): State<AppState>) -> Result<Json<SegmentList>, ApiError> {
    let e = read_engine(&state);
    let mut segments: Vec<SegmentView> = e
        .live_segments()
        .segments()
        .iter()
        .map(|s| SegmentView::Ok(SavedSegment::of(s)))
        .collect();
    segments.extend(
        state
            .0
            .quarantine
            .under("segment/")
            .into_iter()
            .map(|(name, error)| SegmentView::Broken(Broken::new("segments", name, error))),
    );
    Ok(Json(SegmentList { segments }))
}

fn broken_segment(name: &str, error: &str) -> String {
    format!("segment `{name}` is stored but could not be loaded ({error}); PUT /v1/segments/{name} with a valid definition to repair it")
}

async fn get_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    let e = read_engine(&state);
    match e.live_segments().index_of(&name) {
        Some(i) => Ok(Json(SegmentView::Ok(SavedSegment::of(
            &e.live_segments().segments()[i as usize],
        )))),
        None => match state.0.quarantine.error(&format!("segment/{name}")) {
            Some(error) => Ok(Json(SegmentView::Broken(Broken::new(
                "segments", name, error,
            )))),
            None => Err(ApiError::NotFound(format!(
                "no segment named `{name}`; GET /v1/segments lists them"
            ))),
        },
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
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
            if let Some(found) = tree.unknown_rfm_layer() {
                return Err(ApiError::InvalidSegment(format!(
                    "tree: rfm_layer is compared with {found:?}; the layers are {}",
                    siyu_engine::rfm::RfmLayer::names()
                )));
            }
            let src = tree.to_string();
            Ok((tree, src))
        }
        (None, None) => Err(ApiError::InvalidSegment(
            "send {\"segment\": \"purchases(last 90d) >= 2 and not opted_out\"} or {\"tree\": {...}}".into(),
        )),
    }
}

/// `PUT /v1/segments/{name}`: the saved version, its live count and how
/// many persons entered or left.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SegmentSaved {
    pub name: String,
    pub version: Option<u32>,
    pub count: Option<usize>,
    pub changes: usize,
}

async fn put_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SegmentBody>,
) -> Result<Json<SegmentSaved>, ApiError> {
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
    Ok(Json(SegmentSaved {
        version: s.map(|s| s.version),
        count: s.map(|s| s.count()),
        name,
        changes: changes.len(),
    }))
}

/// `POST /v1/segments/preview`: members now, without saving.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Preview {
    pub count: usize,
    /// Up to 10 members' canonical ids.
    pub sample: Vec<String>,
    pub tree: Expr,
}

async fn preview_segment(
    State(state): State<AppState>,
    Json(body): Json<SegmentBody>,
) -> Result<Json<Preview>, ApiError> {
    let (expr, _) = parse_segment_body(body)?;
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let members = e.matching(&expr);
        let sample = members
            .iter()
            .take(10)
            .map(|p| e.canonical_id(*p).to_string())
            .collect();
        Ok(Json(Preview {
            count: members.len(),
            sample,
            tree: expr,
        }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
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

/// `GET /v1/segments/{name}/members`: one page of members.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Members {
    pub segment: String,
    pub count: usize,
    pub members: Vec<String>,
    /// The `after` of the next page; null on the last page.
    pub next_after: Option<u32>,
}

async fn segment_members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Members>, ApiError> {
    let e = read_engine(&state);
    let i = segment_index(&state, &e, &name)?;
    let limit = q.limit.unwrap_or(100).min(1000);
    let seg = &e.live_segments().segments()[i as usize];
    let slots: Vec<u32> = seg
        .members()
        .filter(|s| q.after.is_none_or(|a| *s > a))
        .take(limit)
        .collect();
    let members = slots
        .iter()
        .map(|p| e.canonical_id(*p).to_string())
        .collect();
    Ok(Json(Members {
        segment: name,
        count: seg.count(),
        members,
        next_after: (slots.len() == limit)
            .then(|| slots.last().copied())
            .flatten(),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ExplainQuery {
    person: String,
}

/// `GET /v1/segments/{name}/explain`: why a person is in or out.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Explained {
    pub segment: String,
    pub canonical_id: String,
    pub member: bool,
    /// Clause by clause; null if the person is no longer live.
    pub explanation: Option<Explanation>,
}

async fn explain_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<Explained>, ApiError> {
    let e = read_engine(&state);
    let i = segment_index(&state, &e, &name)?;
    let p = resolve(&e, &q.person)?;
    let expr = e.live_segments().segments()[i as usize].expr.clone();
    let explanation = e.explain(&expr, p);
    Ok(Json(Explained {
        segment: name,
        canonical_id: e.canonical_id(p).to_string(),
        member: e.live_segments().is_member(i, p),
        explanation,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct HistoryQuery {
    person: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/segments/{name}/history`: entries and exits, newest first.
#[derive(Serialize, schemars::JsonSchema)]
pub struct History {
    pub segment: String,
    pub history: Vec<HistoryItem>,
}

/// One entry or exit.
#[derive(Serialize, schemars::JsonSchema)]
pub struct HistoryItem {
    pub canonical_id: String,
    /// `enter` or `exit`.
    pub change: &'static str,
    pub at: String,
}

async fn segment_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
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
    let history = rows
        .into_iter()
        .map(|r| HistoryItem {
            change: if r.entered { "enter" } else { "exit" },
            at: format_rfc3339(r.at),
            canonical_id: r.canonical_id,
        })
        .collect();
    Ok(Json(History {
        segment: name,
        history,
    }))
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

/// A property definition (`status` ok: the stored definition itself, as
/// defined) or a stored one that could not be loaded (`status` broken).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PropertyView {
    Ok {
        #[serde(flatten)]
        definition: PropertyDef,
        /// Always `ok`.
        status: &'static str,
    },
    Broken(Broken),
}

/// `GET /v1/properties`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PropertyList {
    pub properties: Vec<PropertyView>,
}

async fn list_properties(State(state): State<AppState>) -> Result<Json<PropertyList>, ApiError> {
    let mut properties: Vec<PropertyView> = read_engine(&state)
        .properties()
        .iter()
        .map(|d| PropertyView::Ok {
            definition: d.clone(),
            status: "ok",
        })
        .collect();
    properties.extend(
        state
            .0
            .quarantine
            .under("property/")
            .into_iter()
            .map(|(name, error)| PropertyView::Broken(Broken::new("properties", name, error))),
    );
    Ok(Json(PropertyList { properties }))
}

/// `PUT /v1/properties/{name}`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PropertyDefined {
    pub name: String,
    /// Always true.
    pub defined: bool,
}

/// The body is a `PropertyDef` without its name (the path names it), so
/// it is read as JSON and the name put in before it is parsed (a body
/// that is not an object is refused by that parse, naming its type).
async fn put_property(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(mut def): Json<Value>,
) -> Result<Json<PropertyDefined>, ApiError> {
    if def.is_null() {
        def = Value::Object(Map::new());
    }
    if let Value::Object(fields) = &mut def {
        fields.insert("name".into(), Value::from(name.clone()));
    }
    let def: PropertyDef = serde_json::from_value(def)
        .map_err(|e| ApiError::BadRequest(format!("property definition: {e}")))?;
    state
        .0
        .writer
        .define(Definition::Property(def))
        .await
        .map_err(ApiError::BadRequest)?;
    Ok(Json(PropertyDefined {
        name,
        defined: true,
    }))
}

/// `DELETE /v1/segments/{name}`.
async fn delete_segment(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let mut referrers: Vec<Referrer> = read_engine(&state)
        .live_segments()
        .readers_of(&name)
        .iter()
        .filter(|r| **r != name)
        .map(|r| Referrer::segment(r))
        .collect();
    let n = name.clone();
    referrers.extend(with_store(&state, move |store| references::of_segment(store, &n)).await?);
    if !referrers.is_empty() {
        return Err(references::in_use(&format!("segment `{name}`"), &referrers));
    }
    let audit = removal_audit("delete_segment", &name, serde_json::json!({}));
    let deleted = state
        .0
        .writer
        .delete(Deletion::Segment(name.clone()), audit)
        .await
        .map_err(ApiError::Internal)?;
    removed(&state, "segment", name, deleted)
}

/// `DELETE /v1/properties/{name}`.
async fn delete_property(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let readers = read_engine(&state).property_readers(&name);
    if !readers.is_empty() {
        let referrers: Vec<Referrer> = readers.iter().map(|r| Referrer::segment(r)).collect();
        return Err(references::in_use(
            &format!("property `{name}`"),
            &referrers,
        ));
    }
    let audit = removal_audit("delete_property", &name, serde_json::json!({}));
    let deleted = state
        .0
        .writer
        .delete(Deletion::Property(name.clone()), audit)
        .await
        .map_err(ApiError::Internal)?;
    removed(&state, "property", name, deleted)
}

/// The answer to a writer deletion. Cached analytics answers were
/// computed with the definition: the cache's generation moves on.
fn removed(
    state: &AppState,
    kind: &'static str,
    name: String,
    deleted: Deleted,
) -> Result<Json<Removed>, ApiError> {
    match deleted {
        Deleted::Deleted { .. } => {
            state.0.analytics_cache.invalidate();
            Ok(Json(Removed::deleted(kind, name)))
        }
        Deleted::NotFound => Err(ApiError::NotFound(format!(
            "no {kind} named `{name}`; GET /v1/{} lists them",
            if kind == "property" {
                "properties"
            } else {
                "segments"
            }
        ))),
        Deleted::InUse(readers) => {
            let referrers: Vec<Referrer> = readers.iter().map(|r| Referrer::segment(r)).collect();
            Err(references::in_use(&format!("{kind} `{name}`"), &referrers))
        }
    }
}
