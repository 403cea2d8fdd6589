//! Event ingestion over HTTP: the wire format (`POST /v1/events`, JSON
//! array or NDJSON) and the Segment-compatible endpoints (track, identify,
//! alias, page, screen, group, batch, and analytics.js's short routes
//! `/v1/t|p|i|a|g|s|b`). Bodies may be gzip or deflate compressed
//! (`request::read_body_decoded`). Bodies are parsed by `crate::ingest`;
//! valid events go to the writer, each rejected one is listed with its
//! index and field, counted per route and reason in `/metrics` and logged
//! (`ingest::account`). When no event is valid, `/v1/events` answers 400
//! and the Segment routes 200, as Segment does (`ingest::Answering`).

use crate::error::ApiError;
use crate::ingest::{self, Rejected};
use crate::ratelimit::{self, Peer};
use crate::request::{read_body_decoded, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
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
        route!(post, "/v1/events", ingest, "Ingest events (JSON array or NDJSON, wire format v1; gzip or deflate `Content-Encoding` accepted). Valid events are stored; each rejected one is reported with its index, field and fix. Idempotent on `id`.", ingest_events, body_media = "application/json, application/x-ndjson"),
        route!(post, "/v1/track", ingest, "Segment-compatible track (the write key as basic-auth user, as bearer, or `writeKey` in the body).", segment_track, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/identify", ingest, "Segment-compatible identify.", segment_identify, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/alias", ingest, "Segment-compatible alias.", segment_alias, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/page", ingest, "Segment-compatible page.", segment_page, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/screen", ingest, "Segment-compatible screen.", segment_screen, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/group", ingest, "Segment-compatible group: the group's id and traits become the person's traits `group_id` and `group`.", segment_group, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/batch", ingest, "Segment-compatible batch of track/identify/alias/page/screen/group messages.", segment_batch, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/t", ingest, "analytics.js short route: track.", segment_track, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/p", ingest, "analytics.js short route: page.", segment_page, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/i", ingest, "analytics.js short route: identify.", segment_identify, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/a", ingest, "analytics.js short route: alias.", segment_alias, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/g", ingest, "analytics.js short route: group.", segment_group, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/s", ingest, "analytics.js short route: screen.", segment_screen, body = (serde_json::Map<String, serde_json::Value>)),
        route!(post, "/v1/b", ingest, "analytics.js short route: batch.", segment_batch, body = (serde_json::Map<String, serde_json::Value>)),
    ]
}

/// What ingestion answers when at least one event was valid (200).
#[derive(Serialize, schemars::JsonSchema)]
pub struct IngestAnswer {
    /// Events stored now.
    pub accepted: usize,
    /// Events whose `id` was already stored (stored once).
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
    /// Rejected events per reason (the field that failed).
    pub rejected_by_reason: std::collections::BTreeMap<String, usize>,
    /// Where each valid event is in the log, by its index in the request.
    pub offsets: Vec<EventOffset>,
}

/// The log offset of one valid event of the request.
#[derive(Serialize, schemars::JsonSchema)]
pub struct EventOffset {
    pub index: usize,
    pub offset: u64,
    /// Present (`true`) only for a replayed `id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What ingestion answers when no event was valid: the error table's
/// `invalid_event` body with the per-event list added.
#[derive(Serialize, schemars::JsonSchema)]
pub struct AllRejected {
    pub code: &'static str,
    pub message: String,
    /// Always 0.
    pub accepted: usize,
    /// Always 0.
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
    /// Rejected events per reason (the field that failed).
    pub rejected_by_reason: std::collections::BTreeMap<String, usize>,
}

/// What an ingestion endpoint answers: 200 with [`IngestAnswer`], or,
/// when no event was valid on `/v1/events`, the `invalid_event` status
/// with [`AllRejected`].
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
    route: &str,
    answering: ingest::Answering,
) -> Result<Ingested, ApiError> {
    let m = &state.0.metrics;
    let rejected_by_reason = ingest::account(m, route, parsed.events.len(), &parsed.rejected);
    if parsed.events.is_empty() && answering == ingest::Answering::Strict {
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
            rejected_by_reason,
        };
        return Ok(Ingested::AllRejected(status, body));
    }
    let (indices, events): (Vec<usize>, Vec<_>) = parsed.events.into_iter().unzip();
    let results = if events.is_empty() {
        Vec::new()
    } else {
        state
            .0
            .writer
            .append(events)
            .await
            .map_err(ApiError::Internal)?
    };
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
        rejected_by_reason,
        offsets,
    }))
}

async fn ingest_events(
    State(state): State<AppState>,
    path: MatchedPath,
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
    let bytes = read_body_decoded(&headers, body, state.0.config.max_body_bytes).await?;
    let parsed = ingest::parse_events(&bytes, ndjson).map_err(|e| ApiError::BadRequest(e.0))?;
    store_events(
        &state,
        parsed,
        started,
        path.as_str(),
        ingest::Answering::Strict,
    )
    .await
}

async fn segment_ingest(
    state: AppState,
    path: MatchedPath,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
    kind: Option<&'static str>,
) -> Result<Ingested, ApiError> {
    let started = Instant::now();
    let received_ms = now_ms();
    let bytes = read_body_decoded(&headers, body, state.0.config.max_body_bytes).await?;
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
    let client_ip = ratelimit::client_addr(
        ratelimit::peer_addr(&peer),
        &headers,
        &state.0.config.trusted_proxies,
    )
    .map(|ip| ip.to_string());
    // Identities named earlier in this request count as known (alias).
    let seen = std::cell::RefCell::new(std::collections::HashSet::<String>::new());
    let engine = state.0.engine.clone();
    let mut parsed = ingest::Parsed::default();
    {
        let known = |id: &str| {
            seen.borrow().contains(id)
                || engine
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .person_of(id)
                    .is_some()
        };
        let received = ingest::Received {
            at_ms: received_ms,
            batch_sent_at: kind.is_none().then(|| v.get("sentAt")).flatten(),
            batch_context: kind.is_none().then(|| v.get("context")).flatten(),
            client_ip,
            known: &known,
        };
        for (i, (m, k)) in messages.iter().enumerate() {
            match ingest::segment_message(m, *k, &received) {
                Ok(evs) => {
                    let mut seen = seen.borrow_mut();
                    for e in &evs {
                        seen.insert(e.identity.as_str().to_string());
                        if let Some(r) = &e.reference {
                            seen.insert(r.as_str().to_string());
                        }
                    }
                    parsed.events.extend(evs.into_iter().map(|e| (i, e)));
                }
                Err(e) => parsed.rejected.push(Rejected {
                    index: i,
                    field: e.field.into(),
                    message: e.message,
                }),
            }
        }
    }
    store_events(
        &state,
        parsed,
        started,
        path.as_str(),
        ingest::Answering::Segment,
    )
    .await
}

/// The server clock in epoch milliseconds (a message's `receivedAt`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

macro_rules! segment_route {
    ($name:ident, $kind:expr) => {
        async fn $name(
            State(s): State<AppState>,
            path: MatchedPath,
            peer: Peer,
            headers: HeaderMap,
            b: Body,
        ) -> Result<Ingested, ApiError> {
            segment_ingest(s, path, peer, headers, b, $kind).await
        }
    };
}
segment_route!(segment_track, Some("track"));
segment_route!(segment_identify, Some("identify"));
segment_route!(segment_alias, Some("alias"));
segment_route!(segment_page, Some("page"));
segment_route!(segment_screen, Some("screen"));
segment_route!(segment_group, Some("group"));
segment_route!(segment_batch, None);

impl crate::openapi::Answered for Ingested {
    fn add(doc: &mut crate::openapi::RouteDoc) {
        doc.answer = Some(crate::openapi::Part::json::<IngestAnswer>());
    }
}
