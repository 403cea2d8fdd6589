//! Person routes: search by identity or trait, the profile (identities and
//! computed properties), the cross-channel timeline, the JSONL export, the
//! merge audit and erasure (PIPL/GDPR). The engine resolves identities and
//! lists a person's log offsets; the reader store reads the events.

use crate::error::ApiError;
use crate::profile::{profile, Profile};
use crate::request::{blocking, now, read_engine, resolve, route, with_store, Route};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_domain::{time::format_rfc3339, wire::to_json, Identity};
use siyu_store::AuditRecord;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/persons", read, "Search persons by identity prefix (`q`) or trait (`trait=city:上海`, value prefix).", search_persons),
        route!(get, "/v1/persons/{id}", read, "A person by any identity: all identities and computed properties.", get_person),
        route!(delete, "/v1/persons/{id}", erase, "Erase a person (PIPL/GDPR): every event and identity, recorded in the audit log.", erase_person),
        route!(get, "/v1/persons/{id}/timeline", read, "Cross-channel timeline, newest first; page with `before` (the last offset seen) and `limit`.", timeline),
        route!(get, "/v1/persons/{id}/export", read, "Everything the brand holds on a person, as wire-format JSONL (re-importable).", export_person, answer_media = "application/x-ndjson"),
        route!(get, "/v1/persons/{id}/merges", read, "Audit of the identity merges that formed this person.", person_merges),
    ]
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SearchQuery {
    /// Identity prefix, e.g. `douyin:9f`.
    q: Option<String>,
    /// `key:value-prefix` of a trait, e.g. `city:上海` or `name:王`.
    #[serde(rename = "trait")]
    trait_: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/persons`: the persons found.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SearchAnswer {
    pub persons: Vec<PersonIds>,
}

/// A person's canonical id and all their identities.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PersonIds {
    pub canonical_id: String,
    pub identities: Vec<String>,
}

async fn search_persons(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchAnswer>, ApiError> {
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
        let persons = slots
            .into_iter()
            .map(|p| PersonIds {
                canonical_id: e.canonical_id(p).to_string(),
                identities: e.identities_of(p),
            })
            .collect();
        Ok(Json(SearchAnswer { persons }))
    })
    .await
}

/// Null (as before) if the slot holds no live person.
async fn get_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Option<Profile>>, ApiError> {
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

#[derive(Deserialize, schemars::JsonSchema)]
struct PageQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/persons/{id}/timeline`: one page of events, newest first.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Timeline {
    pub canonical_id: String,
    pub events: Vec<TimelineItem>,
    /// The `before` of the next page; null on the last page.
    pub next_before: Option<u64>,
}

/// One event of a timeline and its log offset.
#[derive(Serialize, schemars::JsonSchema)]
pub struct TimelineItem {
    pub offset: u64,
    /// The event in wire format v1 (`siyu_domain::wire::to_json`).
    pub event: Value,
}

async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Timeline>, ApiError> {
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
    let events = events
        .iter()
        .map(|e| TimelineItem {
            offset: e.offset,
            event: to_json(&e.event),
        })
        .collect();
    Ok(Json(Timeline {
        canonical_id: canonical,
        events,
        next_before: next,
    }))
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

/// `GET /v1/persons/{id}/merges`: the merges that formed this person.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Merges {
    pub canonical_id: String,
    pub merges: Vec<Merge>,
}

/// One identity merge: the event that linked two identities, and the
/// canonical ids of the two persons before and of the one after.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Merge {
    pub event_offset: u64,
    pub at: String,
    pub identity: Identity,
    pub linked: Identity,
    pub from: [String; 2],
    pub into: String,
}

async fn person_merges(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Merges>, ApiError> {
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
    let merges = merges
        .into_iter()
        .map(|m| Merge {
            event_offset: m.event_offset,
            at: format_rfc3339(m.ts),
            identity: m.identity,
            linked: m.linked,
            from: [m.from_a, m.from_b],
            into: m.into,
        })
        .collect();
    Ok(Json(Merges {
        canonical_id: canonical,
        merges,
    }))
}

/// `DELETE /v1/persons/{id}`: whom the erasure removed and how much.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Erased {
    /// The erased person's canonical id (the caller named them).
    pub erased: String,
    /// The pseudonym the audit log and settings name them by now.
    pub erasure_id: String,
    pub identities: usize,
    pub events_removed: u64,
}

async fn erase_person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Erased>, ApiError> {
    let (canonical, ids) = identities_of(&state, &id)?;
    // The audit row must not name whom it erased: a keyed pseudonym
    // (`privacy.rs`), which settings and older audit rows get too.
    let pseudonym = state.0.privacy.erasure_pseudonym(&canonical);
    let audit = AuditRecord {
        id: 0,
        at: now(),
        action: "erase_person".into(),
        subject: pseudonym.clone(),
        // The audit row's detail is free-form per action (stored JSON).
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
    Ok(Json(Erased {
        erased: canonical,
        erasure_id: pseudonym,
        identities: n,
        events_removed: removed,
    }))
}
