//! HTTP handlers. Each route is declared once in [`routes`] with its
//! method, path, access (who may call it) and summary; the router, its
//! authorization layer (`auth::enforce`) and `/openapi.json` are all built
//! from that table, so neither the documentation nor the checks can drift
//! from the code. Handlers do not check credentials.

use crate::auth::{self, Scopes};
use crate::error::ApiError;
use crate::ingest::{self, Rejected};
use crate::request::{blocking, now, read_body, read_engine, route, with_store, Route};
use crate::writer::Definition;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_domain::{time::format_rfc3339, wire::to_json, Identity};
use siyu_engine::segment::{self, Expr};
use siyu_engine::{analytics, Engine, PersonId};
use siyu_store::{Appended, AuditRecord};
use std::time::Instant;
use tokio_stream::StreamExt;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/healthz", public, "Liveness: 200 when the engine is loaded.", healthz),
        route!(get, "/metrics", metrics, "Prometheus metrics (ingest counts, latencies, persons).", metrics),
        route!(get, "/openapi.json", public, "This API description.", openapi),
        route!(get, "/v1/workspace", any_key, "The workspace (brand) this request reached.", workspace),
        route!(post, "/v1/events", ingest, "Ingest events (JSON array or NDJSON, wire format v1). Valid events are stored; each rejected one is reported with its index, field and fix. Idempotent on `id`.", ingest_events),
        route!(post, "/v1/track", ingest, "Segment-compatible track (basic auth with the write key).", segment_track),
        route!(post, "/v1/identify", ingest, "Segment-compatible identify.", segment_identify),
        route!(post, "/v1/alias", ingest, "Segment-compatible alias.", segment_alias),
        route!(post, "/v1/page", ingest, "Segment-compatible page.", segment_page),
        route!(post, "/v1/batch", ingest, "Segment-compatible batch of track/identify/alias/page messages.", segment_batch),
        route!(get, "/v1/persons", read, "Search persons by identity prefix (`q`) or trait (`trait=city:上海`, value prefix).", search_persons),
        route!(get, "/v1/persons/{id}", read, "A person by any identity: all identities and computed properties.", get_person),
        route!(delete, "/v1/persons/{id}", erase, "Erase a person (PIPL/GDPR): every event and identity, recorded in the audit log.", erase_person),
        route!(get, "/v1/persons/{id}/timeline", read, "Cross-channel timeline, newest first; page with `before` (the last offset seen) and `limit`.", timeline),
        route!(get, "/v1/persons/{id}/export", read, "Everything the brand holds on a person, as wire-format JSONL (re-importable).", export_person),
        route!(get, "/v1/persons/{id}/merges", read, "Audit of the identity merges that formed this person.", person_merges),
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
        route!(post, "/v1/admin/keys", admin, "Create a key: `{\"name\": \"shop-sdk\", \"scopes\": [\"ingest\"]}` (scopes: ingest, read, write, erase, admin; absent: ingest, read, write, erase, what every key could do before scopes); the key is shown once.", create_key),
        route!(get, "/v1/admin/keys", admin, "Keys (id, name, created_at, scopes, legacy) — never the keys themselves.", list_keys),
        route!(delete, "/v1/admin/keys/{id}", admin, "Revoke a key by its id (the first 12 hex digits of its hash); effective at once, audited.", revoke_key),
    ]
}

// ---------- helpers ----------

fn resolve(engine: &Engine, id: &str) -> Result<PersonId, ApiError> {
    engine.person_of(id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no person has identity `{id}`; use a full identity such as `douyin:9f3a01`"
        ))
    })
}

// ---------- ops ----------

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let e = read_engine(&state);
    Json(
        json!({"status": "ok", "persons": e.person_count(), "identities": e.identity_count(), "events": e.events_applied()}),
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (p, i) = {
        let e = read_engine(&state);
        (e.person_count(), e.identity_count())
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(p, i),
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document(&routes()))
}

// ---------- ingestion ----------

async fn store_events(
    state: &AppState,
    parsed: ingest::Parsed,
    started: Instant,
) -> Result<Response, ApiError> {
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
        let body = json!({
            "code": code,
            "message": error.to_string(),
            "accepted": 0, "duplicates": 0, "rejected": parsed.rejected,
        });
        return Ok((status, Json(body)).into_response());
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
    let offsets: Vec<Value> = results
        .iter()
        .zip(&indices)
        .map(|(r, i)| match r {
            Appended::New(o) => {
                accepted += 1;
                json!({"index": i, "offset": o})
            }
            Appended::Duplicate(o) => {
                duplicates += 1;
                json!({"index": i, "offset": o, "duplicate": true})
            }
        })
        .collect();
    m.ingest_latency.observe(started.elapsed().as_secs_f64());
    let rejected: Vec<Rejected> = parsed.rejected;
    Ok(Json(json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "offsets": offsets})).into_response())
}

async fn ingest_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
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
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let bytes = read_body(body, state.0.config.max_body_bytes).await?;
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

async fn segment_track(State(s): State<AppState>, b: Body) -> Result<Response, ApiError> {
    segment_ingest(s, b, Some("track")).await
}
async fn segment_identify(State(s): State<AppState>, b: Body) -> Result<Response, ApiError> {
    segment_ingest(s, b, Some("identify")).await
}
async fn segment_alias(State(s): State<AppState>, b: Body) -> Result<Response, ApiError> {
    segment_ingest(s, b, Some("alias")).await
}
async fn segment_page(State(s): State<AppState>, b: Body) -> Result<Response, ApiError> {
    segment_ingest(s, b, Some("page")).await
}
async fn segment_batch(State(s): State<AppState>, b: Body) -> Result<Response, ApiError> {
    segment_ingest(s, b, None).await
}

// ---------- persons ----------

#[derive(Deserialize)]
struct SearchQuery {
    /// Identity prefix, e.g. `douyin:9f`.
    q: Option<String>,
    /// `key:value-prefix` of a trait, e.g. `city:上海` or `name:王`.
    #[serde(rename = "trait")]
    trait_: Option<String>,
    limit: Option<usize>,
}

/// Computed properties of a person as the API shows them.
pub fn profile(engine: &Engine, slot: PersonId) -> Value {
    let Some(p) = engine.person(slot) else {
        return Value::Null;
    };
    let ts = |t: u32| (t != siyu_engine::person::NO_TS).then(|| format_rfc3339(t as i64));
    let segs = engine.live_segments();
    let segments: Vec<&str> = segs
        .segments()
        .iter()
        .enumerate()
        .filter(|(i, _)| segs.is_member(*i as u32, slot))
        .map(|(_, s)| s.name.as_str())
        .collect();
    let extra = p.extra.as_deref();
    let props: serde_json::Map<String, Value> = engine
        .properties()
        .iter()
        .map(|d| (d.name.clone(), json!(engine.property_value(slot, &d.name))))
        .collect();
    json!({
        "canonical_id": engine.canonical_id(slot),
        "identities": engine.identities_of(slot),
        "first_seen": ts(p.first_ts),
        "first_channel": engine.channel_name(p.first_channel),
        "first_friend_at": ts(p.first_friend_ts),
        "last_event_at": (p.events > 0).then(|| format_rfc3339(p.last_event_ts as i64)),
        "events": p.events,
        "purchases": p.purchase_count,
        "gross_spend": p.gross_spend,
        "refunded": p.refunded,
        "net_spend": p.net_spend(),
        "last_purchase_at": ts(p.last_purchase_ts),
        "opted_out": p.opted_out,
        "rfm": analytics::rfm_scores(p, engine.now()).map(|(r, f, m)| json!({"r": r, "f": f, "m": m})),
        "groups": extra.map(|e| e.groups.clone()).unwrap_or_default(),
        "tags": extra.map(|e| e.tags.clone()).unwrap_or_default(),
        "traits": extra.map(|e| Value::Object(e.traits.clone())).unwrap_or(json!({})),
        "segments": segments,
        "properties": props,
    })
}

async fn search_persons(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(20).min(200);
    enum By {
        Identity(String),
        Trait(String, String),
    }
    let by = match (q.q, q.trait_) {
        (Some(p), None) if p.len() >= 2 => By::Identity(p),
        (None, Some(t)) => match t.split_once(':') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => By::Trait(k.to_string(), v.to_string()),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`trait` is `key:value`, e.g. `city:上海`; got `{t}`"
                )))
            }
        },
        _ => {
            return Err(ApiError::BadRequest(
                "search with `q` (at least 2 characters of an identity, e.g. `douyin:9f`) or `trait` (`key:value`, e.g. `city:上海`)".into(),
            ))
        }
    };
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        let slots = match &by {
            By::Identity(p) => e.search_identity_prefix(p, limit),
            By::Trait(k, v) => e.search_trait(k, v, limit),
        };
        let found: Vec<Value> = slots
            .into_iter()
            .map(|p| json!({"canonical_id": e.canonical_id(p), "identities": e.identities_of(p)}))
            .collect();
        Ok(Json(json!({"persons": found})))
    })
    .await
}

async fn get_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = read_engine(&state);
    let p = resolve(&e, &id)?;
    Ok(Json(profile(&e, p)))
}

fn identities_of(state: &AppState, id: &str) -> Result<(String, Vec<Identity>), ApiError> {
    let e = read_engine(state);
    let p = resolve(&e, id)?;
    let ids = e
        .identities_of(p)
        .iter()
        .filter_map(|s| Identity::parse(s).ok())
        .collect();
    Ok((e.canonical_id(p).to_string(), ids))
}

/// A person's canonical id and the log offsets of their events, newest
/// first: the engine keeps them, the store reads events by offset.
pub(crate) fn event_offsets_of(state: &AppState, id: &str) -> Result<(String, Vec<u64>), ApiError> {
    let e = read_engine(state);
    let p = resolve(&e, id)?;
    let offsets = e
        .event_offsets(p)
        .ok_or_else(|| ApiError::Internal("the engine keeps no log offsets".into()))?;
    Ok((e.canonical_id(p).to_string(), offsets))
}

#[derive(Deserialize)]
struct PageQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (canonical, offsets) = event_offsets_of(&state, &id)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let s = state.clone();
    let events = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        store
            .timeline(&offsets, q.before, limit)
            .map_err(|e| match e {
                siyu_store::StoreError::Invalid(m) => ApiError::BadRequest(m),
                other => other.into(),
            })
    })
    .await?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.offset))
        .flatten();
    let items: Vec<Value> = events
        .iter()
        .map(|e| json!({"offset": e.offset, "event": to_json(&e.event)}))
        .collect();
    Ok(Json(
        json!({"canonical_id": canonical, "events": items, "next_before": next}),
    ))
}

async fn export_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (canonical, mut offsets) = event_offsets_of(&state, &id)?;
    let s = state.clone();
    let body = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Oldest first, as a log re-imports.
        offsets.reverse();
        for part in offsets.chunks(1000) {
            for e in store.events_at(part)? {
                out.push_str(&to_json(&e.event).to_string());
                out.push('\n');
            }
        }
        Ok(out)
    })
    .await?;
    let disposition = format!(
        "attachment; filename=\"{}.jsonl\"",
        canonical.replace([':', '"', '/'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

async fn person_merges(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (canonical, ids) = identities_of(&state, &id)?;
    let s = state.clone();
    let merges = blocking(move || {
        Ok(s.0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merges_of(&ids)?)
    })
    .await?;
    let items: Vec<Value> = merges
        .iter()
        .map(|m| {
            json!({"event_offset": m.event_offset, "at": format_rfc3339(m.ts), "identity": m.identity, "linked": m.linked,
                   "from": [m.from_a, m.from_b], "into": m.into})
        })
        .collect();
    Ok(Json(json!({"canonical_id": canonical, "merges": items})))
}

async fn erase_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (canonical, ids) = identities_of(&state, &id)?;
    // The audit row must not name whom it erased: a keyed pseudonym
    // (`privacy.rs`), which settings and older audit rows get too.
    let pseudonym = state.0.privacy.erasure_pseudonym(&canonical);
    let audit = AuditRecord {
        id: 0,
        at: now(),
        action: "erase_person".into(),
        subject: pseudonym.clone(),
        detail: json!({"identities": ids.len()}),
    };
    let n = ids.len();
    let names: Vec<String> = ids.iter().map(|i| i.as_str().to_string()).collect();
    let removed = state
        .0
        .writer
        .erase(ids, pseudonym.clone(), audit)
        .await
        .map_err(ApiError::Internal)?;
    // Links already sent (unsubscribe, content, invites) resolve to nobody.
    let secret = state.0.link_secret.clone();
    with_store(&state, move |store| {
        Ok(crate::links::forget(store, &secret, &names)?)
    })
    .await?;
    Ok(Json(
        json!({"erased": canonical, "erasure_id": pseudonym, "identities": n, "events_removed": removed}),
    ))
}

// ---------- segments ----------

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

// ---------- analytics ----------

/// The cache key of a `GET /v1/analytics/*` answer (`cache.rs`): its path
/// and the parameters its handler reads, parsed as the handler parses
/// them, so unknown parameters (`?x=1`, `?x=2` …) and their order do not
/// make new entries. None when the path is not a cached query or its
/// parameters do not parse (the handler answers the error, uncached).
pub fn analytics_cache_key(uri: &axum::http::Uri) -> Option<String> {
    fn read<T: serde::de::DeserializeOwned + Serialize>(uri: &axum::http::Uri) -> Option<String> {
        let Query(q) = Query::<T>::try_from_uri(uri).ok()?;
        serde_json::to_string(&q).ok()
    }
    let params = match uri.path() {
        "/v1/analytics/funnel" => read::<FunnelQuery>(uri)?,
        "/v1/analytics/cohorts" => read::<CohortQuery>(uri)?,
        "/v1/analytics/referrals" => read::<ReferralQuery>(uri)?,
        "/v1/analytics/rfm"
        | "/v1/analytics/roi"
        | "/v1/analytics/repurchase"
        | "/v1/analytics/ltv"
        | "/v1/analytics/attribution" => String::new(),
        _ => return None,
    };
    Some(format!("{} {params}", uri.path()))
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

#[derive(Deserialize, Serialize)]
struct FunnelQuery {
    friend_days: Option<i64>,
    convert_days: Option<i64>,
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

#[derive(Deserialize, Serialize)]
struct CohortQuery {
    t0: Option<i64>,
    weeks: Option<usize>,
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

#[derive(Deserialize, Serialize)]
struct ReferralQuery {
    convert_days: Option<i64>,
    top: Option<usize>,
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

/// Events read per page by [`log_pass`]: small, because other readers
/// wait for the reader connection while a page is read (at 50,000 a
/// timeline waited up to 1.1 s in a debug build during a pass).
pub const LOG_PASS_PAGE: usize = 10_000;

/// Feeds every stored event up to the log's head at the start, in log
/// order, with its person, to `feed` (the analytics that need sequences).
///
/// Bounded and never in anyone's way: the engine's read lock is held only
/// to copy its identity table (`Engine::identity_index`), the reader
/// connection only while one page ([`LOG_PASS_PAGE`] events) is read,
/// so the writer keeps writing and other requests keep reading between
/// pages; memory is that copy, one page and the pass's per-person state.
/// Events appended after the start are not part of the answer.
pub fn log_pass(
    state: &AppState,
    mut feed: impl FnMut(PersonId, &siyu_engine::RawEvent<'_>),
) -> Result<(), ApiError> {
    let head = state
        .0
        .reader
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_offset()?;
    let persons = read_engine(state).identity_index();
    let mut after = 0;
    while after < head {
        let page = state
            .0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scan(after, LOG_PASS_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.offset;
        for stored in page.iter().take_while(|e| e.offset <= head) {
            let raw = siyu_engine::RawEvent::from_event(stored.offset, &stored.event);
            if let Some(p) = persons.person_of(raw.identity) {
                feed(p, &raw);
            }
        }
    }
    Ok(())
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

/// Parses a spend CSV (`day,channel,spend`); errors name the line.
pub fn parse_spend_csv(text: &str) -> Result<Vec<(String, String, i64)>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("day,channel,spend") => {}
        other => {
            return Err(format!(
                "line 1: header must be `day,channel,spend`, found `{}`",
                other.unwrap_or("")
            ))
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 2;
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 3 {
            return Err(format!(
                "line {n}: expected 3 columns day,channel,spend, found {}",
                f.len()
            ));
        }
        if siyu_domain::time::parse_date(f[0]).is_none() {
            return Err(format!("line {n}: day `{}` must be YYYY-MM-DD", f[0]));
        }
        if siyu_domain::Channel::parse(f[1]).is_none() {
            return Err(format!(
                "line {n}: channel `{}` must be lowercase letters, digits or `_`",
                f[1]
            ));
        }
        let spend: i64 = f[2]
            .parse()
            .map_err(|_| format!("line {n}: spend `{}` must be integer cents", f[2]))?;
        if spend < 0 {
            return Err(format!("line {n}: spend must not be negative"));
        }
        rows.push((f[0].to_string(), f[1].to_string(), spend));
    }
    Ok(rows)
}

async fn put_spend(State(state): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, state.0.config.max_body_bytes).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("spend CSV must be UTF-8".into()))?;
    let rows = parse_spend_csv(text).map_err(ApiError::BadRequest)?;
    let per_channel: Vec<(String, i64)> = rows.iter().map(|(_, c, s)| (c.clone(), *s)).collect();
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    /// Scope names; absent: [`Scopes::LEGACY`] (what every key could do
    /// before scopes existed).
    scopes: Option<Vec<String>>,
}

async fn create_key(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: KeyBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "key: {e}; send {{\"name\": \"shop-sdk\", \"scopes\": [\"ingest\"]}}"
        ))
    })?;
    let scopes = match &body.scopes {
        None => Scopes::LEGACY,
        Some(names) => Scopes::parse(names.iter().map(String::as_str))
            .map_err(|e| ApiError::BadRequest(format!("scopes: {e}")))?,
    };
    let s = state.clone();
    let name = body.name.clone();
    let key = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        auth::create_key(store.as_mut(), &name, scopes, now())
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .await?;
    state
        .0
        .keys
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(auth::hash_key(&key), scopes);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key": key,
            "id": &auth::hash_key(&key)[..KEY_ID_LEN],
            "name": body.name,
            "scopes": scopes.names(),
            "note": "shown once; store it now",
        })),
    ))
}

/// Hex digits of a key's hash that name it in the API.
const KEY_ID_LEN: usize = 12;

async fn list_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Value> = store
            .list_settings("write_key/")?
            .into_iter()
            .map(|(k, v)| {
                let hash = k.trim_start_matches("write_key/");
                json!({
                    "id": &hash[..KEY_ID_LEN.min(hash.len())],
                    "name": v.get("name"),
                    "created_at": v.get("created_at"),
                    "scopes": Scopes::of_record(&v).names(),
                    // Stored before scopes existed: has Scopes::LEGACY.
                    "legacy": v.get("scopes").is_none(),
                })
            })
            .collect();
        Ok(Json(json!({"keys": keys})))
    })
    .await
}

async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(format!(
            "key id `{id}`: give at least 8 hex digits from GET /v1/admin/keys"
        )));
    }
    let s = state.clone();
    let hash = blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let matches: Vec<(String, Value)> =
            store.list_settings(&format!("write_key/{}", id.to_ascii_lowercase()))?;
        let (key, v) = match matches.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ApiError::NotFound(format!(
                    "no write key with id `{id}`; GET /v1/admin/keys lists them"
                )))
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "key id `{id}` names several keys; give more digits"
                )))
            }
        };
        store.put_setting(&key, None)?;
        store.audit(&AuditRecord {
            id: 0,
            at: now(),
            action: "write_key_revoked".into(),
            subject: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            detail: json!({"id": id}),
        })?;
        Ok(key.trim_start_matches("write_key/").to_string())
    })
    .await?;
    state
        .0
        .keys
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&hash);
    Ok(Json(json!({"id": &hash[..KEY_ID_LEN], "revoked": true})))
}

async fn workspace(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"workspace": state.0.config.workspace})))
}
