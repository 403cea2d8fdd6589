//! Event ingestion over HTTP: the wire format (`POST /v1/events`, JSON
//! array or NDJSON) and the Segment-compatible endpoints (track, identify,
//! alias, page, batch). Bodies are parsed by `crate::ingest`; valid events
//! go to the writer, each rejected one is listed with its index and field.

use crate::error::ApiError;
use crate::ingest::{self, Rejected};
use crate::request::{now, read_body, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use siyu_store::Appended;
use std::time::Instant;

pub fn routes() -> Vec<Route> {
    vec![
        route!(post, "/v1/events", ingest, "Ingest events (JSON array or NDJSON, wire format v1). Valid events are stored; each rejected one is reported with its index, field and fix. Idempotent on `id`.", ingest_events),
        route!(post, "/v1/track", ingest, "Segment-compatible track (basic auth with the write key).", segment_track),
        route!(post, "/v1/identify", ingest, "Segment-compatible identify.", segment_identify),
        route!(post, "/v1/alias", ingest, "Segment-compatible alias.", segment_alias),
        route!(post, "/v1/page", ingest, "Segment-compatible page.", segment_page),
        route!(post, "/v1/batch", ingest, "Segment-compatible batch of track/identify/alias/page messages.", segment_batch),
    ]
}

/// What ingestion answers when at least one event was valid (200).
#[derive(Serialize)]
pub struct IngestAnswer {
    /// Events stored now.
    pub accepted: usize,
    /// Events whose `id` was already stored (stored once).
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
    /// Where each valid event is in the log, by its index in the request.
    pub offsets: Vec<EventOffset>,
}

/// The log offset of one valid event of the request.
#[derive(Serialize)]
pub struct EventOffset {
    pub index: usize,
    pub offset: u64,
    /// Present (`true`) only for a replayed `id`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What ingestion answers when no event was valid: the error table's
/// `invalid_event` body with the per-event list added.
#[derive(Serialize)]
pub struct AllRejected {
    pub code: &'static str,
    pub message: String,
    /// Always 0.
    pub accepted: usize,
    /// Always 0.
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

/// What an ingestion endpoint answers: 200 with [`IngestAnswer`], or,
/// when no event was valid, the `invalid_event` status with [`AllRejected`].
pub enum Ingested {
    Stored(IngestAnswer),
    AllRejected(StatusCode, AllRejected),
}

impl IntoResponse for Ingested {
    fn into_response(self) -> Response {
        match self {
            Ingested::Stored(answer) => Json(answer).into_response(),
            Ingested::AllRejected(status, body) => (status, Json(body)).into_response(),
        }
    }
}

async fn store_events(
    state: &AppState,
    parsed: ingest::Parsed,
    started: Instant,
) -> Result<Ingested, ApiError> {
    use std::sync::atomic::Ordering;
    let m = &state.0.metrics;
    m.ingest_requests.fetch_add(1, Ordering::Relaxed);
    m.events_rejected
        .fetch_add(parsed.rejected.len() as u64, Ordering::Relaxed);
    if parsed.events.is_empty() {
        let n = parsed.rejected.len();
        let first = parsed.rejected.first().map(|r| {
            format!(
                " (first: index {}, field `{}`: {})",
                r.index, r.field, r.message
            )
        });
        // The error table's `invalid_event`, with the per-event list added.
        let error = ApiError::InvalidEvent(format!(
            "all {n} events were rejected; nothing was stored{}",
            first.unwrap_or_default()
        ));
        let (status, code) = error.status_and_code();
        let body = AllRejected {
            code,
            message: error.to_string(),
            accepted: 0,
            duplicates: 0,
            rejected: parsed.rejected,
        };
        return Ok(Ingested::AllRejected(status, body));
    }
    let (indices, events): (Vec<usize>, Vec<_>) = parsed.events.into_iter().unzip();
    let results = state
        .0
        .writer
        .append(events)
        .await
        .map_err(ApiError::Internal)?;
    let mut accepted = 0;
    let mut duplicates = 0;
    let offsets: Vec<EventOffset> = results
        .iter()
        .zip(indices)
        .map(|(r, index)| match *r {
            Appended::New(offset) => {
                accepted += 1;
                EventOffset {
                    index,
                    offset,
                    duplicate: false,
                }
            }
            Appended::Duplicate(offset) => {
                duplicates += 1;
                EventOffset {
                    index,
                    offset,
                    duplicate: true,
                }
            }
        })
        .collect();
    m.ingest_latency.observe(started.elapsed().as_secs_f64());
    Ok(Ingested::Stored(IngestAnswer {
        accepted,
        duplicates,
        rejected: parsed.rejected,
        offsets,
    }))
}

async fn ingest_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Ingested, ApiError> {
    let started = Instant::now();
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let ndjson = ctype.contains("ndjson") || ctype.contains("jsonlines");
    if !ndjson && !ctype.contains("json") && !ctype.starts_with("text/plain") {
        return Err(ApiError::UnsupportedMediaType(ctype.to_string()));
    }
    let bytes = read_body(body, state.0.config.max_body_bytes).await?;
    let parsed = ingest::parse_events(&bytes, ndjson).map_err(|e| ApiError::BadRequest(e.0))?;
    store_events(&state, parsed, started).await
}

async fn segment_ingest(
    state: AppState,
    body: Body,
    kind: Option<&'static str>,
) -> Result<Ingested, ApiError> {
    let started = Instant::now();
    let bytes = read_body(body, state.0.config.max_body_bytes).await?;
    // Segment messages are open JSON (the Segment spec, mapped field by
    // field in `ingest::segment_message`), so they are read as a Value.
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let messages: Vec<(&Value, Option<&str>)> = match kind {
        Some(k) => vec![(&v, Some(k))],
        None => v
            .get("batch")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::BadRequest("a batch body is {\"batch\": [messages]}".into()))?
            .iter()
            .map(|m| (m, None))
            .collect(),
    };
    if messages.len() > ingest::MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "`batch` holds {} messages; at most {} per request, split the batch",
            messages.len(),
            ingest::MAX_EVENTS_PER_REQUEST
        )));
    }
    let mut parsed = ingest::Parsed::default();
    let t = now();
    for (i, (m, k)) in messages.iter().enumerate() {
        match ingest::segment_message(m, *k, t) {
            Ok(evs) => parsed.events.extend(evs.into_iter().map(|e| (i, e))),
            Err(e) => parsed.rejected.push(Rejected {
                index: i,
                field: e.field.into(),
                message: e.message,
            }),
        }
    }
    store_events(&state, parsed, started).await
}

async fn segment_track(State(s): State<AppState>, b: Body) -> Result<Ingested, ApiError> {
    segment_ingest(s, b, Some("track")).await
}
async fn segment_identify(State(s): State<AppState>, b: Body) -> Result<Ingested, ApiError> {
    segment_ingest(s, b, Some("identify")).await
}
async fn segment_alias(State(s): State<AppState>, b: Body) -> Result<Ingested, ApiError> {
    segment_ingest(s, b, Some("alias")).await
}
async fn segment_page(State(s): State<AppState>, b: Body) -> Result<Ingested, ApiError> {
    segment_ingest(s, b, Some("page")).await
}
async fn segment_batch(State(s): State<AppState>, b: Body) -> Result<Ingested, ApiError> {
    segment_ingest(s, b, None).await
}
