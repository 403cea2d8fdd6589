//! Communities (社群): groups per channel with a capacity and an owner,
//! operators with a load limit and a one-action hand-over, live codes
//! (活码: one stable public link that routes each newcomer to a group or an
//! operator with room), group health and the SOP calendar of group posts.
//!
//! A live code acts on a person only with proof: a claim token the channel
//! (which knows who scanned) had made with its key (`POST
//! /v1/livecodes/{id}/claims`, `links.rs`). Then the visit reserves the
//! seat, records the touch, tags and welcomes; an anonymous visit is only
//! told where to go and records nothing, so it can neither fill a group
//! nor tag, re-assign or message an existing customer.
//!
//! Definitions live in settings: `group/<id>` (plus `group/<id>/calendar`
//! and `group/<id>/reserved`, the live-code seats handed out but not yet
//! taken), `opsconf/<login>` (the console's login accounts are
//! `operator/<login>`; these are the ownership records) and
//! `livecode/<id>` (plus `livecode/<id>/day`, today's per-operator counts).
//! Everything that happens to a person is an event, so the log is the
//! history: a person's owner is the trait `operator`, set by `identify`
//! events; a hand-over appends new ones and the old owner stays in the log.
//!
//! Membership comes from `join_group`/`leave_group` events (the engine's
//! `extra.groups`); a group's size is one pass over the persons under the
//! engine read lock. Group health reads the group's own join/leave events
//! through the `(grp, ts)` index, activity from the engine's last-event
//! times and rewards from the leavers' own (indexed) timelines: it never
//! scans the log.

use crate::automation::{MassSend, TEMPLATE_PREFIX};
use crate::error::ApiError;
use crate::request::{blocking, now, parse_json, read_engine, route, valid_id, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_automation::guard::SendKind;
use siyu_automation::schedule::{self, QuietHours, TimeOfDay, Tz};
use siyu_domain::time::{format_rfc3339, parse_rfc3339};
use siyu_domain::{Channel, Event, EventType, Identity, Traits};
use siyu_engine::{Engine, PersonId};
use siyu_store::{AuditRecord, OutboxStatus, Store};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GROUP_PREFIX: &str = "group/";
pub const OPERATOR_PREFIX: &str = "opsconf/";
pub const LIVECODE_PREFIX: &str = "livecode/";
/// Members a group takes unless its definition says otherwise.
pub const DEFAULT_CAPACITY: u32 = 500;
/// Active groups one operator owns at most unless their record says otherwise.
pub const DEFAULT_MAX_GROUPS: u32 = 7;
/// How long a live-code seat in a group is held for a newcomer who has
/// not joined yet.
pub const RESERVATION_TTL: i64 = 2 * 3600;
/// Newest events read per leaver when looking for a reward before leaving.
const LEAVER_TIMELINE: usize = 500;
/// A leave this soon after a `reward_granted` counts as "left after a reward".
pub const LEFT_AFTER_REWARD: i64 = 3 * 86_400;
/// The custom event the fission campaign emits when it grants a reward.
pub const REWARD_EVENT: &str = "reward_granted";
/// How often the SOP calendar is checked for due posts.
pub const TICK_EVERY: Duration = Duration::from_secs(15);
/// A calendar entry more overdue than this (the server was down) is
/// reported as missed instead of being posted late.
pub const MISSED_AFTER: i64 = 86_400;
/// Identify events per writer request during a hand-over.
const HANDOVER_CHUNK: usize = 5000;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/groups", read, "Community groups with live size, reserved seats, capacity, owner and the owner's load.", list_groups),
        route!(put, "/v1/groups/{id}", write, "Save a group: `{channel, name, capacity (default 500), owner (operator login; absent: the least-loaded active operator under max_groups), tags, url, archived}`.", put_group),
        route!(get, "/v1/groups/{id}", read, "A group with its live size and owner history.", get_group),
        route!(get, "/v1/groups/{id}/health", read, "Size, joins and leaves in the window and per day, active rate, members who left within 3 days after a `reward_granted` (`days`, default 7; `timezone`). Indexed: no pass over the log.", group_health),
        route!(put, "/v1/groups/{id}/calendar", write, "Replace the group's SOP calendar: `[{id, at (RFC 3339 or epoch seconds), template, data}]`; due entries are posted through the guardrails.", put_calendar),
        route!(get, "/v1/groups/{id}/calendar", read, "The SOP calendar with each entry's outbox status (scheduled, pending, sent, suppressed and why, dead, missed).", get_calendar),
        route!(get, "/v1/operators", read, "Operators with their load: active groups owned and persons owned (trait `operator`).", list_operators),
        route!(put, "/v1/operators/{login}", write, "Save an operator: `{name, max_groups (default 7), status: active|left|banned, backup, url}`.", put_operator),
        route!(post, "/v1/operators/{login}/handover", write, "Hand over every person and group of an operator in one action: `{to: login | null (spread over the least-loaded), status: left|banned}`; one audit record, history kept in the log.", handover),
        route!(get, "/v1/livecodes", read, "Live codes (活码).", list_livecodes),
        route!(put, "/v1/livecodes/{id}", write, "Save a live code: `{targets: [{group} | {operator}], daily_cap_per_operator, working_hours: {start, end, timezone}, backup_operator, auto_tags, welcome_template, source_channel}`.", put_livecode),
        route!(post, "/v1/livecodes/{id}/claims", write, "A claim token for a newcomer the channel knows (`{\"identity\"}`): the live-code link with it (`/l/{id}?claim=…`, valid 30 min) reserves their seat, tags them and queues the welcome.", create_claim),
        route!(get, "/l/{id}", public, "Public live-code link (rate limited per address): answers the first group or operator with room `{target, url}` (409 when all are full). Only with a `claim` token (from the channel, POST /v1/livecodes/{id}/claims) is a seat reserved and the person tagged and welcomed; without one nothing is recorded.", live_code),
    ]
}

// ---------- definitions ----------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorStatus {
    Active,
    Left,
    Banned,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OperatorDef {
    login: String,
    name: String,
    max_groups: u32,
    status: OperatorStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Who took over at the last hand-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handed_to: Option<String>,
    updated_at: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    max_groups: Option<u32>,
    #[serde(default)]
    status: Option<OperatorStatus>,
    #[serde(default)]
    backup: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OwnerChange {
    from: String,
    to: String,
    at: i64,
    reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct GroupDef {
    id: String,
    channel: String,
    name: String,
    capacity: u32,
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    owner_history: Vec<OwnerChange>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupInput {
    channel: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    archived: bool,
}

/// Where a live code sends a newcomer: `{"group": id}` or `{"operator": login}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Group(String),
    Operator(String),
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Group(g) => format!("group:{g}"),
            Target::Operator(o) => format!("operator:{o}"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkingHours {
    start: String,
    end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveCode {
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    daily_cap_per_operator: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_hours: Option<WorkingHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup_operator: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    auto_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    welcome_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_channel: Option<String>,
}

impl LiveCode {
    fn timezone(&self) -> Tz {
        Tz::parse_or(
            self.working_hours
                .as_ref()
                .and_then(|w| w.timezone.as_deref()),
            schedule::DEFAULT_TZ,
        )
    }

    /// Whether operators are on duty at `now` (always, without working hours).
    fn on_duty(&self, now: i64) -> bool {
        let Some(w) = &self.working_hours else {
            return true;
        };
        match (TimeOfDay::parse(&w.start), TimeOfDay::parse(&w.end)) {
            (Ok(s), Ok(e)) => QuietHours::new(s, e).contains(now, &self.timezone()),
            // Validated at save time.
            _ => true,
        }
    }
}

/// Today's operator counts of one live code (reset at local midnight).
#[derive(Default, Serialize, Deserialize)]
struct DayState {
    date: String,
    counts: BTreeMap<String, u32>,
    /// Identity → operator it was routed to today (a revisit gets the same).
    seen: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CalendarEntry {
    id: String,
    at: i64,
    template: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    data: Value,
}

// ---------- helpers ----------

fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut dyn Store, &AppState) -> Result<T, ApiError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(store.as_mut(), &s)
    })
}

fn read<T: serde::de::DeserializeOwned>(
    store: &mut dyn Store,
    key: &str,
) -> Result<Option<T>, ApiError> {
    match store.get_setting(key)? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("setting {key}: {e}"))),
    }
}

fn write<T: Serialize>(store: &mut dyn Store, key: &str, value: &T) -> Result<(), ApiError> {
    let v = serde_json::to_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    store.put_setting(key, Some(&v))?;
    Ok(())
}

/// Every definition under `prefix` whose key has no further `/` (the
/// sub-keys `…/calendar`, `…/day` are state, not definitions).
fn list_defs<T: serde::de::DeserializeOwned>(
    store: &mut dyn Store,
    prefix: &str,
) -> Result<Vec<(String, T)>, ApiError> {
    let mut out = Vec::new();
    // One definition that cannot be read is logged and left out; it does
    // not take every group (and the SOP calendar) down with it.
    let (rows, _unreadable) = crate::quarantine::readable(store.list_settings_each(prefix)?);
    for (k, v) in rows {
        let Some(id) = k.strip_prefix(prefix).filter(|r| !r.contains('/')) else {
            continue;
        };
        match serde_json::from_value(v) {
            Ok(def) => out.push((id.to_string(), def)),
            Err(e) => {
                crate::quarantine::Broken::skipped(&k, e);
            }
        }
    }
    Ok(out)
}

fn load_operators(store: &mut dyn Store) -> Result<BTreeMap<String, OperatorDef>, ApiError> {
    Ok(list_defs(store, OPERATOR_PREFIX)?.into_iter().collect())
}

fn load_groups(store: &mut dyn Store) -> Result<BTreeMap<String, GroupDef>, ApiError> {
    Ok(list_defs(store, GROUP_PREFIX)?.into_iter().collect())
}

fn group_key(id: &str) -> String {
    format!("{GROUP_PREFIX}{id}")
}
fn reserved_key(id: &str) -> String {
    format!("{GROUP_PREFIX}{id}/reserved")
}
fn calendar_key(id: &str) -> String {
    format!("{GROUP_PREFIX}{id}/calendar")
}
fn sop_key(group: &str, entry: &str) -> String {
    format!("sop/{group}/{entry}")
}

fn no_group(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no group `{id}`; GET /v1/groups lists them, PUT /v1/groups/{id} creates it"
    ))
}

/// Active groups each operator owns.
fn group_loads(groups: &BTreeMap<String, GroupDef>) -> HashMap<String, u32> {
    let mut loads: HashMap<String, u32> = HashMap::new();
    for g in groups.values().filter(|g| !g.archived) {
        *loads.entry(g.owner.clone()).or_default() += 1;
    }
    loads
}

/// The active operator with the fewest active groups, under their
/// `max_groups` (ties: the smallest login), other than `except`.
fn least_loaded(
    ops: &BTreeMap<String, OperatorDef>,
    loads: &HashMap<String, u32>,
    except: Option<&str>,
) -> Option<String> {
    ops.values()
        .filter(|o| o.status == OperatorStatus::Active && Some(o.login.as_str()) != except)
        .map(|o| (loads.get(&o.login).copied().unwrap_or(0), o))
        .filter(|(load, o)| *load < o.max_groups)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.login.cmp(&b.1.login)))
        .map(|(_, o)| o.login.clone())
}

/// Members of each of `ids` now: one pass over the persons.
pub fn group_sizes(engine: &Engine, ids: &[&str]) -> Vec<u64> {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, g)| (*g, i)).collect();
    let mut sizes = vec![0u64; ids.len()];
    if index.is_empty() {
        return sizes;
    }
    for (_, p) in engine.persons() {
        let Some(extra) = p.extra.as_deref() else {
            continue;
        };
        for g in &extra.groups {
            if let Some(&i) = index.get(g.as_str()) {
                sizes[i] += 1;
            }
        }
    }
    sizes
}

/// Persons per owner (trait `operator`): one pass over the persons.
fn persons_by_owner(engine: &Engine) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for (_, p) in engine.persons() {
        if let Some(op) = owner_of(p) {
            *out.entry(op.to_string()).or_default() += 1;
        }
    }
    out
}

fn owner_of(p: &siyu_engine::person::Person) -> Option<&str> {
    p.extra
        .as_deref()?
        .traits
        .get("operator")
        .and_then(Value::as_str)
}

fn is_member(engine: &Engine, identity: &str, group: &str) -> bool {
    engine
        .person_of(identity)
        .and_then(|slot| engine.person(slot))
        .and_then(|p| p.extra.as_deref())
        .is_some_and(|e| e.groups.binary_search_by(|g| g.as_str().cmp(group)).is_ok())
}

/// An event of ours about a person, on the identity's own channel when it
/// names a valid one.
fn person_event(
    identity: &Identity,
    ty: EventType,
    channel: Option<&str>,
    ts: i64,
    id: String,
) -> Event {
    let channel = channel
        .and_then(Channel::parse)
        .or_else(|| Channel::parse(identity.channel()))
        .unwrap_or_else(|| Channel::parse("wecom").expect("a valid channel name"));
    let mut ev = Event::new(ts, identity.clone(), ty, channel);
    ev.id = Some(id);
    ev
}

async fn append(state: &AppState, events: Vec<Event>) -> Result<(), ApiError> {
    if events.is_empty() {
        return Ok(());
    }
    state
        .0
        .writer
        .append(events)
        .await
        .map(|_| ())
        .map_err(ApiError::Internal)
}

// ---------- operators ----------

async fn put_operator(
    State(state): State<AppState>,
    Path(login): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_id(&login, "login")?;
    let input: OperatorInput = parse_json(&body, "operator")?;
    let at = now();
    with_store(&state, move |store, _| {
        let key = format!("{OPERATOR_PREFIX}{login}");
        let old: Option<OperatorDef> = read(store, &key)?;
        if let Some(b) = &input.backup {
            if *b == login {
                return Err(ApiError::InvalidDefinition(
                    "backup: an operator cannot be their own backup".into(),
                ));
            }
            if read::<OperatorDef>(store, &format!("{OPERATOR_PREFIX}{b}"))?.is_none() {
                return Err(ApiError::InvalidDefinition(format!(
                    "backup: no operator `{b}`; PUT /v1/operators/{b} first"
                )));
            }
        }
        if input.max_groups.is_some_and(|m| m > 10_000) {
            return Err(ApiError::InvalidDefinition(
                "max_groups: at most 10000".into(),
            ));
        }
        let def = OperatorDef {
            name: input.name.unwrap_or_else(|| login.clone()),
            max_groups: input.max_groups.unwrap_or(DEFAULT_MAX_GROUPS),
            status: input.status.unwrap_or(OperatorStatus::Active),
            backup: input.backup,
            url: input.url,
            handed_to: old.and_then(|o| o.handed_to),
            updated_at: at,
            login: login.clone(),
        };
        write(store, &key, &def)?;
        Ok(Json(json!(def)))
    })
    .await
}

async fn list_operators(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    with_store(&state, |store, s| {
        let ops = load_operators(store)?;
        let loads = group_loads(&load_groups(store)?);
        let persons = persons_by_owner(&read_engine(s));
        let out: Vec<Value> = ops
            .values()
            .map(|o| {
                let mut v = json!(o);
                v["groups"] = json!(loads.get(&o.login).copied().unwrap_or(0));
                v["persons"] = json!(persons.get(&o.login).copied().unwrap_or(0));
                v
            })
            .collect();
        Ok(Json(json!({"operators": out})))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoverInput {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    status: Option<OperatorStatus>,
    #[serde(default)]
    reason: Option<String>,
}

/// Every person and group of an operator to another (or spread over the
/// least-loaded), in one action: the operator is marked left/banned
/// first (so nothing new is routed to them), then each person gets an
/// `identify` event with the new owner (the old one stays in the log),
/// then the groups change owner (kept in their `owner_history`) and one
/// audit record is written. Running it again picks up stragglers.
async fn handover(
    State(state): State<AppState>,
    Path(login): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let input: HandoverInput = if body.iter().all(u8::is_ascii_whitespace) {
        HandoverInput {
            to: None,
            status: None,
            reason: None,
        }
    } else {
        parse_json(&body, "handover")?
    };
    let status = input.status.unwrap_or(OperatorStatus::Left);
    if status == OperatorStatus::Active {
        return Err(ApiError::InvalidDefinition(
            "status: a hand-over sets `left` or `banned`".into(),
        ));
    }
    let at = now();
    // 1. Check, mark the operator, plan the groups and the persons.
    let plan = {
        let login = login.clone();
        let to = input.to.clone();
        with_store(&state, move |store, s| {
            let mut ops = load_operators(store)?;
            let Some(mut me) = ops.get(&login).cloned() else {
                return Err(ApiError::NotFound(format!(
                    "no operator `{login}`; GET /v1/operators lists them"
                )));
            };
            if let Some(to) = &to {
                if *to == login {
                    return Err(ApiError::InvalidDefinition(
                        "to: hand over to someone else".into(),
                    ));
                }
                match ops.get(to) {
                    Some(o) if o.status == OperatorStatus::Active => {}
                    Some(_) => {
                        return Err(ApiError::InvalidDefinition(format!(
                            "to: operator `{to}` is not active"
                        )))
                    }
                    None => {
                        return Err(ApiError::InvalidDefinition(format!(
                            "to: no operator `{to}`; PUT /v1/operators/{to} first"
                        )))
                    }
                }
            }
            let groups = load_groups(store)?;
            let mut loads = group_loads(&groups);
            loads.remove(&login);
            // Groups: explicit receiver, or the least-loaded under max_groups.
            let mut group_moves: Vec<(String, String)> = Vec::new();
            for g in groups.values().filter(|g| g.owner == login) {
                let new = match &to {
                    Some(to) => to.clone(),
                    None => least_loaded(&ops, &loads, Some(&login)).ok_or_else(|| {
                        ApiError::Conflict(format!(
                            "no active operator is under their group limit to take group `{}`; name `to`, add an operator or raise max_groups",
                            g.id
                        ))
                    })?,
                };
                *loads.entry(new.clone()).or_default() += 1;
                group_moves.push((g.id.clone(), new));
            }
            // Persons: under the engine read lock, the canonical ids owned.
            let (owned, mut person_loads) = {
                let engine = read_engine(s);
                let loads = persons_by_owner(&engine);
                let owned: Vec<String> = engine
                    .persons()
                    .filter(|(_, p)| owner_of(p) == Some(login.as_str()))
                    .map(|(slot, _)| engine.canonical_id(slot).to_string())
                    .collect();
                (owned, loads)
            };
            let receivers: Vec<String> = ops
                .values()
                .filter(|o| o.status == OperatorStatus::Active && o.login != login)
                .map(|o| o.login.clone())
                .collect();
            if to.is_none() && receivers.is_empty() && !owned.is_empty() {
                return Err(ApiError::Conflict(
                    "no other active operator to take the persons; add one first".into(),
                ));
            }
            let mut person_moves: Vec<(String, String)> = Vec::with_capacity(owned.len());
            for canonical in owned {
                let new = match &to {
                    Some(to) => to.clone(),
                    None => receivers
                        .iter()
                        .min_by_key(|r| (person_loads.get(*r).copied().unwrap_or(0), (*r).clone()))
                        .cloned()
                        .ok_or_else(|| ApiError::Internal("no receiver".into()))?,
                };
                *person_loads.entry(new.clone()).or_default() += 1;
                person_moves.push((canonical, new));
            }
            me.status = status;
            me.handed_to = to.clone();
            me.updated_at = at;
            write(store, &format!("{OPERATOR_PREFIX}{login}"), &me)?;
            ops.insert(login.clone(), me);
            Ok((group_moves, person_moves))
        })
        .await?
    };
    let (group_moves, person_moves) = plan;
    // 2. The persons: identify events, the log keeps the previous owner.
    let mut moved = 0u64;
    let mut skipped = 0u64;
    for chunk in person_moves.chunks(HANDOVER_CHUNK) {
        let mut events = Vec::with_capacity(chunk.len());
        for (canonical, new) in chunk {
            let Ok(identity) = Identity::parse(canonical) else {
                skipped += 1;
                continue;
            };
            let mut ev = person_event(
                &identity,
                EventType::Identify,
                None,
                at,
                format!("handover/{login}/{at}/{canonical}"),
            );
            let mut t = Traits::default();
            t.extra.insert("operator".into(), json!(new));
            t.extra.insert("previous_operator".into(), json!(login));
            ev.traits = Some(t);
            events.push(ev);
        }
        moved += events.len() as u64;
        append(&state, events).await?;
    }
    // 3. The groups and the one audit record.
    let mut persons_to: BTreeMap<String, u64> = BTreeMap::new();
    for (_, new) in &person_moves {
        *persons_to.entry(new.clone()).or_default() += 1;
    }
    let mut groups_to: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, new) in &group_moves {
        groups_to.entry(new.clone()).or_default().push(g.clone());
    }
    let detail = json!({
        "to": input.to,
        "status": status,
        "reason": input.reason,
        "persons": moved,
        "persons_skipped": skipped,
        "groups": group_moves.len(),
        "persons_to": persons_to,
        "groups_to": groups_to,
    });
    let out = detail.clone();
    let l = login.clone();
    with_store(&state, move |store, _| {
        for (g, new) in &group_moves {
            let key = group_key(g);
            let Some(mut def) = read::<GroupDef>(store, &key)? else {
                continue;
            };
            def.owner_history.push(OwnerChange {
                from: def.owner.clone(),
                to: new.clone(),
                at,
                reason: format!("handover ({})", json!(status).as_str().unwrap_or("left")),
            });
            def.owner = new.clone();
            def.updated_at = at;
            write(store, &key, &def)?;
        }
        store.audit(&AuditRecord {
            id: 0,
            at,
            action: "operator_handover".into(),
            subject: l,
            detail,
        })?;
        Ok(())
    })
    .await?;
    tracing::info!(operator = %login, persons = moved, "operator handed over");
    Ok(Json(json!({"operator": login, "handover": out})))
}

// ---------- groups ----------

async fn put_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_id(&id, "id")?;
    let input: GroupInput = parse_json(&body, "group")?;
    if !Channel::is_valid(&input.channel) {
        return Err(ApiError::InvalidDefinition(format!(
            "channel: {:?} is not a channel name (lowercase letters, digits, '_'), e.g. `wecom`",
            input.channel
        )));
    }
    let capacity = input.capacity.unwrap_or(DEFAULT_CAPACITY);
    if capacity == 0 || capacity > 100_000 {
        return Err(ApiError::InvalidDefinition(
            "capacity: between 1 and 100000".into(),
        ));
    }
    let at = now();
    with_store(&state, move |store, _| {
        let ops = load_operators(store)?;
        let groups = load_groups(store)?;
        let old = groups.get(&id).cloned();
        let mut loads = group_loads(&groups);
        if let Some(o) = old.as_ref().filter(|o| !o.archived) {
            if let Some(n) = loads.get_mut(&o.owner) {
                *n -= 1;
            }
        }
        let owner = match (&input.owner, &old) {
            (Some(owner), _) => {
                let Some(op) = ops.get(owner) else {
                    return Err(ApiError::InvalidDefinition(format!(
                        "owner: no operator `{owner}`; PUT /v1/operators/{owner} first"
                    )));
                };
                if op.status != OperatorStatus::Active {
                    return Err(ApiError::InvalidDefinition(format!(
                        "owner: operator `{owner}` is not active"
                    )));
                }
                let load = loads.get(owner).copied().unwrap_or(0);
                if !input.archived && load >= op.max_groups {
                    return Err(ApiError::Conflict(format!(
                        "owner: operator `{owner}` already owns {load} active groups (max_groups {}); pick another or omit `owner` for the least-loaded",
                        op.max_groups
                    )));
                }
                owner.clone()
            }
            (None, Some(old)) => old.owner.clone(),
            (None, None) => least_loaded(&ops, &loads, None).ok_or_else(|| {
                ApiError::Conflict(
                    "owner: no active operator is under their group limit (max_groups); add an operator (PUT /v1/operators/{login}) or raise max_groups".into(),
                )
            })?,
        };
        let mut owner_history = old.as_ref().map(|o| o.owner_history.clone()).unwrap_or_default();
        if let Some(o) = old.as_ref().filter(|o| o.owner != owner) {
            owner_history.push(OwnerChange {
                from: o.owner.clone(),
                to: owner.clone(),
                at,
                reason: "edited".into(),
            });
        }
        let def = GroupDef {
            name: input.name.unwrap_or_else(|| id.clone()),
            channel: input.channel,
            capacity,
            owner,
            tags: input.tags,
            url: input.url,
            archived: input.archived,
            owner_history,
            created_at: old.as_ref().map_or(at, |o| o.created_at),
            updated_at: at,
            id: id.clone(),
        };
        write(store, &group_key(&id), &def)?;
        Ok(Json(json!(def)))
    })
    .await
}

fn group_json(def: &GroupDef, size: u64, reserved: usize, owner_load: u32) -> Value {
    let mut v = json!(def);
    let used = size + reserved as u64;
    v["size"] = json!(size);
    v["reserved"] = json!(reserved);
    v["free"] = json!(u64::from(def.capacity).saturating_sub(used));
    v["owner_load"] = json!(owner_load);
    v
}

/// Seats held for newcomers not yet in the group. A seat ends when it
/// expires or when its person is seen in the group (the seat became a
/// member); the tidied list is written back. Someone who joins and leaves
/// between two looks keeps the seat until it expires.
fn live_reservations(
    store: &mut dyn Store,
    engine: &Engine,
    group: &str,
    at: i64,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let key = reserved_key(group);
    let mut r: BTreeMap<String, i64> = read(store, &key)?.unwrap_or_default();
    let before = r.len();
    r.retain(|who, ts| at - *ts < RESERVATION_TTL && !is_member(engine, who, group));
    if r.len() != before {
        write(store, &key, &r)?;
    }
    Ok(r)
}

async fn list_groups(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let at = now();
    with_store(&state, move |store, s| {
        let groups = load_groups(store)?;
        let loads = group_loads(&groups);
        let ids: Vec<&str> = groups.keys().map(String::as_str).collect();
        let engine = read_engine(s);
        let sizes = group_sizes(&engine, &ids);
        let mut out = Vec::with_capacity(groups.len());
        for (def, size) in groups.values().zip(sizes) {
            let reserved = live_reservations(store, &engine, &def.id, at)?.len();
            out.push(group_json(
                def,
                size,
                reserved,
                loads.get(&def.owner).copied().unwrap_or(0),
            ));
        }
        Ok(Json(json!({"groups": out})))
    })
    .await
}

async fn get_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let at = now();
    with_store(&state, move |store, s| {
        let groups = load_groups(store)?;
        let def = groups.get(&id).ok_or_else(|| no_group(&id))?;
        let engine = read_engine(s);
        let size = group_sizes(&engine, &[id.as_str()])[0];
        let reserved = live_reservations(store, &engine, &id, at)?.len();
        let load = group_loads(&groups).get(&def.owner).copied().unwrap_or(0);
        Ok(Json(group_json(def, size, reserved, load)))
    })
    .await
}

// ---------- group health ----------

#[derive(Deserialize)]
struct HealthQuery {
    days: Option<u32>,
    timezone: Option<String>,
}

async fn group_health(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HealthQuery>,
) -> Result<Json<Value>, ApiError> {
    let days = q.days.unwrap_or(7).clamp(1, 90) as usize;
    let tz = match q.timezone.as_deref() {
        None => Tz::parse_or(None, schedule::DEFAULT_TZ),
        Some(t) => Tz::parse(t).map_err(|e| ApiError::BadRequest(format!("timezone: {e}")))?,
    };
    let at = now();
    let s = state.clone();
    blocking(move || {
        let started = Instant::now();
        let def: GroupDef = {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            read(store.as_mut(), &group_key(&id))?.ok_or_else(|| no_group(&id))?
        };
        // Local day starts, oldest first.
        let mut starts = vec![schedule::day_start(at, &tz)];
        while starts.len() < days {
            let prev = schedule::day_start(starts[starts.len() - 1] - 1, &tz);
            starts.push(prev);
        }
        starts.reverse();
        let from = starts[0];
        // Members now, and how many did anything in the window (the
        // engine keeps each person's last event time).
        let (size, active_n) = {
            let engine = read_engine(&s);
            let mut size = 0u32;
            let mut active = 0usize;
            for (_, p) in engine.persons() {
                let inside = p
                    .extra
                    .as_deref()
                    .is_some_and(|e| e.groups.binary_search(&id).is_ok());
                if inside {
                    size += 1;
                    if p.events > 0 && p.last_event_ts as i64 >= from {
                        active += 1;
                    }
                }
            }
            (size, active)
        };
        // Joins and leaves through the group index: no pass over the log.
        let mut joins = vec![0u64; days];
        let mut leaves = vec![0u64; days];
        let mut left: Vec<(i64, String)> = Vec::new();
        let group_events = {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            store.group_events(&id, from, at)?
        };
        let scanned = group_events.len() as u64;
        for se in &group_events {
            let e = &se.event;
            let day = starts.partition_point(|&d| d <= e.ts).saturating_sub(1);
            match e.event_type {
                EventType::JoinGroup => joins[day] += 1,
                EventType::LeaveGroup => {
                    leaves[day] += 1;
                    left.push((e.ts, e.identity.as_str().to_string()));
                }
                _ => {}
            }
        }
        // Rewards of the persons who left: their own timelines (by the log
        // offsets the engine keeps), only for the leavers of the window.
        let leaver_offsets: Vec<Vec<u64>> = {
            let engine = read_engine(&s);
            left.iter()
                .filter_map(|(_, i)| engine.person_of(i))
                .collect::<HashSet<PersonId>>()
                .into_iter()
                .filter_map(|slot| engine.event_offsets(slot))
                .collect()
        };
        let mut rewards: Vec<(i64, String)> = Vec::new();
        {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            for offsets in &leaver_offsets {
                for se in store.timeline(offsets, None, LEAVER_TIMELINE)? {
                    let e = se.event;
                    if e.event_type == EventType::Custom
                        && e.name.as_deref() == Some(REWARD_EVENT)
                        && e.ts >= from - LEFT_AFTER_REWARD
                    {
                        rewards.push((e.ts, e.identity.as_str().to_string()));
                    }
                }
            }
        }
        // Leaves right after a reward, matched per person (any identity).
        let (after_reward, examples) = {
            let engine = read_engine(&s);
            let mut by_person: HashMap<PersonId, Vec<i64>> = HashMap::new();
            for (ts, identity) in &rewards {
                if let Some(slot) = engine.person_of(identity) {
                    by_person.entry(slot).or_default().push(*ts);
                }
            }
            let mut persons: HashSet<PersonId> = HashSet::new();
            let mut count = 0u64;
            for (ts, identity) in &left {
                let Some(slot) = engine.person_of(identity) else {
                    continue;
                };
                let hit = by_person
                    .get(&slot)
                    .is_some_and(|r| r.iter().any(|&r| r <= *ts && ts - r <= LEFT_AFTER_REWARD));
                if hit {
                    count += 1;
                    persons.insert(slot);
                }
            }
            let mut examples: Vec<String> = persons
                .into_iter()
                .filter(|&slot| engine.person(slot).is_some())
                .map(|slot| engine.canonical_id(slot).to_string())
                .collect();
            examples.sort();
            examples.truncate(100);
            (count, examples)
        };
        let per_day: Vec<Value> = starts
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let (y, m, dd) = schedule::local_date(d, &tz);
                json!({"date": format!("{y:04}-{m:02}-{dd:02}"), "joins": joins[i], "leaves": leaves[i]})
            })
            .collect();
        let (j, l): (u64, u64) = (joins.iter().sum(), leaves.iter().sum());
        Ok(Json(json!({
            "group": id,
            "size": size,
            "capacity": def.capacity,
            "window": {"days": days, "from": format_rfc3339(from), "to": format_rfc3339(at), "timezone": tz.name()},
            "joins": j,
            "leaves": l,
            "net": j as i64 - l as i64,
            "per_day": per_day,
            "active": active_n,
            "active_rate": if size == 0 { 0.0 } else { active_n as f64 / f64::from(size) },
            "left_after_reward": {"count": after_reward, "within_days": LEFT_AFTER_REWARD / 86_400, "persons": examples},
            "events_scanned": scanned,
            "ms": started.elapsed().as_secs_f64() * 1000.0,
        })))
    })
    .await
}

// ---------- SOP calendar ----------

fn parse_at(v: &Value, field: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::InvalidDefinition(format!(
            "{field}: give an RFC 3339 time (`2026-11-11T20:00:00+08:00`) or epoch seconds"
        ))
    };
    let ts = match v {
        Value::String(s) => parse_rfc3339(s).ok_or_else(bad)?,
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    // The domain's range (2000..2100).
    if !(946_684_800..4_102_444_800).contains(&ts) {
        return Err(bad());
    }
    Ok(ts)
}

async fn put_calendar(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let raw: Vec<Value> = parse_json(&body, "calendar")?;
    let mut entries = Vec::with_capacity(raw.len());
    let mut ids = HashSet::new();
    for (i, v) in raw.iter().enumerate() {
        let Some(o) = v.as_object() else {
            return Err(ApiError::InvalidDefinition(format!(
                "[{i}]: an entry is an object `{{id, at, template}}`"
            )));
        };
        if let Some(k) = o
            .keys()
            .find(|k| !["id", "at", "template", "data"].contains(&k.as_str()))
        {
            return Err(ApiError::InvalidDefinition(format!(
                "[{i}].{k}: unknown field; an entry has id, at, template, data"
            )));
        }
        let entry_id = o.get("id").and_then(Value::as_str).unwrap_or("");
        valid_id(entry_id, &format!("[{i}].id"))?;
        if !ids.insert(entry_id.to_string()) {
            return Err(ApiError::InvalidDefinition(format!(
                "[{i}].id: `{entry_id}` appears twice"
            )));
        }
        let at = parse_at(o.get("at").unwrap_or(&Value::Null), &format!("[{i}].at"))?;
        let Some(template) = o.get("template").and_then(Value::as_str) else {
            return Err(ApiError::InvalidDefinition(format!(
                "[{i}].template: the name of a template (PUT /v1/templates/{{name}})"
            )));
        };
        let data = o.get("data").cloned().unwrap_or(Value::Null);
        if !(data.is_null() || data.is_object()) {
            return Err(ApiError::InvalidDefinition(format!(
                "[{i}].data: an object of template variables"
            )));
        }
        entries.push(CalendarEntry {
            id: entry_id.to_string(),
            at,
            template: template.to_string(),
            data,
        });
    }
    with_store(&state, move |store, _| {
        if read::<GroupDef>(store, &group_key(&id))?.is_none() {
            return Err(no_group(&id));
        }
        for (i, e) in entries.iter().enumerate() {
            if store
                .get_setting(&format!("{TEMPLATE_PREFIX}{}", e.template))?
                .is_none()
            {
                return Err(ApiError::InvalidDefinition(format!(
                    "[{i}].template: no template `{}`; PUT /v1/templates/{} first",
                    e.template, e.template
                )));
            }
        }
        write(store, &calendar_key(&id), &entries)?;
        Ok(Json(json!({"group": id, "entries": entries.len()})))
    })
    .await
}

async fn get_calendar(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let at = now();
    with_store(&state, move |store, _| {
        if read::<GroupDef>(store, &group_key(&id))?.is_none() {
            return Err(no_group(&id));
        }
        let entries: Vec<CalendarEntry> = read(store, &calendar_key(&id))?.unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let key = sop_key(&id, &e.id);
            let item = store.outbox_get(&key)?;
            let (status, detail) = match &item {
                Some(i) => (
                    match i.status {
                        OutboxStatus::Done => "sent",
                        other => other.as_str(),
                    },
                    i.detail.clone(),
                ),
                None if e.at > at => ("scheduled", String::new()),
                None if at - e.at > MISSED_AFTER => (
                    "missed",
                    "the server was not running when it was due".into(),
                ),
                None => ("due", String::new()),
            };
            out.push(json!({
                "id": e.id, "at": format_rfc3339(e.at), "template": e.template, "data": e.data,
                "key": key, "status": status, "detail": detail,
                "attempts": item.as_ref().map(|i| i.attempts),
                "updated_at": item.as_ref().map(|i| format_rfc3339(i.updated_at)),
            }));
        }
        Ok(Json(json!({"group": id, "entries": out})))
    })
    .await
}

/// Posts every due calendar entry not posted yet (the outbox key
/// `sop/<group>/<entry>` makes a post happen once); returns how many were
/// queued. Called by [`spawn`]'s loop, and by tests with their own clock.
pub async fn tick(state: &AppState, at: i64) -> Result<usize, ApiError> {
    let due = with_store(state, move |store, _| {
        let mut due = Vec::new();
        // An unreadable calendar is logged and skipped; the others post.
        let (calendars, _unreadable) =
            crate::quarantine::readable(store.list_settings_each(GROUP_PREFIX)?);
        for (k, v) in calendars {
            let Some(group) = k
                .strip_prefix(GROUP_PREFIX)
                .and_then(|r| r.strip_suffix("/calendar"))
                .map(str::to_string)
            else {
                continue;
            };
            let def = match read::<GroupDef>(store, &group_key(&group)) {
                Ok(Some(def)) => def,
                Ok(None) => continue,
                Err(e) => {
                    crate::quarantine::Broken::skipped(&group_key(&group), e);
                    continue;
                }
            };
            if def.archived {
                continue;
            }
            let entries: Vec<CalendarEntry> = match serde_json::from_value(v) {
                Ok(entries) => entries,
                Err(e) => {
                    crate::quarantine::Broken::skipped(&k, e);
                    continue;
                }
            };
            for e in entries {
                if e.at > at || at - e.at > MISSED_AFTER {
                    continue;
                }
                let key = sop_key(&group, &e.id);
                if store.outbox_get(&key)?.is_some() {
                    continue;
                }
                let mut data = if e.data.is_object() {
                    e.data
                } else {
                    json!({})
                };
                data["group"] = json!(group);
                data["group_name"] = json!(def.name);
                data["entry"] = json!(e.id);
                due.push((key, group.clone(), def.channel.clone(), e.template, data));
            }
        }
        Ok(due)
    })
    .await?;
    let n = due.len();
    for (key, group, channel, template, data) in due {
        state
            .0
            .automation
            .group_post(key, group, channel, template, data)
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(n)
}

/// The SOP calendar's loop: [`tick`] every [`TICK_EVERY`]. It holds the
/// app only while a tick runs, so shutting down is not held up.
pub fn spawn(state: AppState) {
    let app = Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let Some(inner) = app.upgrade() else { break };
            let state = AppState(inner);
            match tick(&state, now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(posts = n, "sop calendar posts queued"),
                Err(e) => tracing::warn!(error = %e, "sop calendar tick failed"),
            }
        }
    });
}

// ---------- live codes ----------

async fn put_livecode(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_id(&id, "id")?;
    let code: LiveCode = parse_json(&body, "live code")?;
    if code.targets.is_empty() {
        return Err(ApiError::InvalidDefinition(
            "targets: a live code needs at least one target, `{\"group\": id}` or `{\"operator\": login}`".into(),
        ));
    }
    if let Some(w) = &code.working_hours {
        for (field, v) in [("start", &w.start), ("end", &w.end)] {
            TimeOfDay::parse(v).map_err(|e| {
                ApiError::InvalidDefinition(format!("working_hours.{field}: {e} (use \"HH:MM\")"))
            })?;
        }
        if let Some(tz) = &w.timezone {
            Tz::parse(tz)
                .map_err(|e| ApiError::InvalidDefinition(format!("working_hours.timezone: {e}")))?;
        }
    }
    if let Some(c) = &code.source_channel {
        if !Channel::is_valid(c) {
            return Err(ApiError::InvalidDefinition(format!(
                "source_channel: {c:?} is not a channel name (lowercase letters, digits, '_')"
            )));
        }
    }
    if code.daily_cap_per_operator == Some(0) {
        return Err(ApiError::InvalidDefinition(
            "daily_cap_per_operator: at least 1 (omit it for no cap)".into(),
        ));
    }
    for (i, t) in code.auto_tags.iter().enumerate() {
        if t.is_empty() || t.chars().count() > 64 {
            return Err(ApiError::InvalidDefinition(format!(
                "auto_tags[{i}]: 1–64 characters"
            )));
        }
    }
    with_store(&state, move |store, _| {
        let ops = load_operators(store)?;
        for (i, t) in code.targets.iter().enumerate() {
            match t {
                Target::Group(g) => {
                    if read::<GroupDef>(store, &group_key(g))?.is_none() {
                        return Err(ApiError::InvalidDefinition(format!(
                            "targets[{i}].group: no group `{g}`; PUT /v1/groups/{g} first"
                        )));
                    }
                }
                Target::Operator(o) => {
                    if !ops.contains_key(o) {
                        return Err(ApiError::InvalidDefinition(format!(
                            "targets[{i}].operator: no operator `{o}`; PUT /v1/operators/{o} first"
                        )));
                    }
                }
            }
        }
        if let Some(b) = &code.backup_operator {
            if !ops.contains_key(b) {
                return Err(ApiError::InvalidDefinition(format!(
                    "backup_operator: no operator `{b}`; PUT /v1/operators/{b} first"
                )));
            }
        }
        if let Some(t) = &code.welcome_template {
            if store
                .get_setting(&format!("{TEMPLATE_PREFIX}{t}"))?
                .is_none()
            {
                return Err(ApiError::InvalidDefinition(format!(
                    "welcome_template: no template `{t}`; PUT /v1/templates/{t} first"
                )));
            }
        }
        write(store, &format!("{LIVECODE_PREFIX}{id}"), &code)?;
        let mut v = json!(code);
        v["id"] = json!(id);
        Ok(Json(v))
    })
    .await
}

async fn list_livecodes(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    with_store(&state, |store, _| {
        let codes: Vec<Value> = list_defs::<LiveCode>(store, LIVECODE_PREFIX)?
            .into_iter()
            .map(|(id, c)| {
                let mut v = json!(c);
                v["id"] = json!(id);
                v
            })
            .collect();
        Ok(Json(json!({"livecodes": codes})))
    })
    .await
}

#[derive(Deserialize)]
struct LiveQuery {
    /// Kept only to refuse it with a clear message: an identity without a
    /// claim proves nothing.
    identity: Option<String>,
    /// A claim token from `POST /v1/livecodes/{id}/claims`.
    claim: Option<String>,
}

struct Routed {
    target: Target,
    url: Option<String>,
    /// The code's backup operator took the newcomer.
    backup: bool,
    /// The identity was routed here before (a revisit).
    again: bool,
}

/// An operator who can take newcomers: `login` if active, else whom they
/// handed over to or their backup (a few hops at most).
fn acting_operator<'a>(
    ops: &'a BTreeMap<String, OperatorDef>,
    login: &str,
) -> Option<&'a OperatorDef> {
    let mut op = ops.get(login)?;
    for _ in 0..5 {
        if op.status == OperatorStatus::Active {
            return Some(op);
        }
        let next = op.handed_to.as_ref().or(op.backup.as_ref())?;
        op = ops.get(next)?;
    }
    None
}

/// Picks the target for one newcomer and, for a claimed identity, records
/// the seat (group) or the day's count (operator); an anonymous visitor
/// (`identity` None) is only shown the target and reserves nothing, so
/// anonymous traffic cannot fill a group or use up an operator's day.
/// Runs under the store lock, so two newcomers never take the same last
/// seat.
fn route_newcomer(
    store: &mut dyn Store,
    state: &AppState,
    code_id: &str,
    identity: Option<&str>,
    at: i64,
) -> Result<Routed, ApiError> {
    let Some(code) = read::<LiveCode>(store, &format!("{LIVECODE_PREFIX}{code_id}"))? else {
        return Err(ApiError::NotFound(format!("no live code `{code_id}`")));
    };
    let tz = code.timezone();
    let (y, m, d) = schedule::local_date(at, &tz);
    let today = format!("{y:04}-{m:02}-{d:02}");
    let day_key = format!("{LIVECODE_PREFIX}{code_id}/day");
    let mut day: DayState = read(store, &day_key)?.unwrap_or_default();
    if day.date != today {
        day = DayState {
            date: today,
            ..DayState::default()
        };
    }
    let ops = load_operators(store)?;
    let mut groups: BTreeMap<String, GroupDef> = BTreeMap::new();
    for t in &code.targets {
        if let Target::Group(g) = t {
            if let Some(def) = read::<GroupDef>(store, &group_key(g))? {
                groups.insert(g.clone(), def);
            }
        }
    }
    let (sizes, mut reserved, person_groups) = {
        let engine = read_engine(state);
        let ids: Vec<&str> = groups.keys().map(String::as_str).collect();
        let sizes: HashMap<String, u64> = ids
            .iter()
            .map(|g| g.to_string())
            .zip(group_sizes(&engine, &ids))
            .collect();
        let mut reserved = HashMap::new();
        for g in groups.keys() {
            reserved.insert(g.clone(), live_reservations(store, &engine, g, at)?);
        }
        let person_groups: Vec<String> = identity
            .and_then(|i| engine.person_of(i))
            .and_then(|slot| engine.person(slot))
            .and_then(|p| p.extra.as_deref())
            .map(|e| e.groups.clone())
            .unwrap_or_default();
        (sizes, reserved, person_groups)
    };
    let url_of = |t: &Target| match t {
        Target::Group(g) => groups.get(g).and_then(|d| d.url.clone()),
        Target::Operator(o) => ops.get(o).and_then(|d| d.url.clone()),
    };
    // A revisit: the same target again, nothing counted twice.
    if let Some(who) = identity {
        for t in &code.targets {
            if let Target::Group(g) = t {
                let held = reserved.get(g).is_some_and(|r| r.contains_key(who));
                if person_groups.contains(g) || held {
                    return Ok(Routed {
                        url: url_of(t),
                        target: t.clone(),
                        backup: false,
                        again: true,
                    });
                }
            }
        }
        if let Some(op) = day.seen.get(who) {
            let t = Target::Operator(op.clone());
            return Ok(Routed {
                url: url_of(&t),
                target: t,
                backup: false,
                again: true,
            });
        }
    }
    let on_duty = code.on_duty(at);
    let mut why: Vec<String> = Vec::new();
    let mut chosen: Option<(Target, bool)> = None;
    for t in &code.targets {
        match t {
            Target::Group(g) => {
                let Some(def) = groups.get(g).filter(|d| !d.archived) else {
                    why.push(format!("group {g} is archived or gone"));
                    continue;
                };
                let used = sizes.get(g).copied().unwrap_or(0)
                    + reserved.get(g).map_or(0, |r| r.len() as u64);
                if used < u64::from(def.capacity) {
                    chosen = Some((t.clone(), false));
                    break;
                }
                why.push(format!("group {g} is full ({used}/{})", def.capacity));
            }
            Target::Operator(o) => {
                let Some(op) = acting_operator(&ops, o) else {
                    why.push(format!("operator {o} has left and has no active successor"));
                    continue;
                };
                if !on_duty {
                    why.push(format!("operator {} is outside working hours", op.login));
                    continue;
                }
                let n = day.counts.get(&op.login).copied().unwrap_or(0);
                if code.daily_cap_per_operator.is_some_and(|cap| n >= cap) {
                    why.push(format!("operator {} reached the daily cap ({n})", op.login));
                    continue;
                }
                chosen = Some((Target::Operator(op.login.clone()), false));
                break;
            }
        }
    }
    if chosen.is_none() {
        if let Some(b) = code
            .backup_operator
            .as_deref()
            .and_then(|b| acting_operator(&ops, b))
        {
            chosen = Some((Target::Operator(b.login.clone()), true));
        }
    }
    let Some((target, backup)) = chosen else {
        return Err(ApiError::Conflict(format!(
            "live code `{code_id}` has no room: {}; add a group (PUT /v1/groups/{{id}}) to its targets or set a backup_operator",
            why.join(", ")
        )));
    };
    match (&target, identity) {
        (_, None) => {}
        (Target::Group(g), Some(who)) => {
            let seats = reserved.entry(g.clone()).or_default();
            seats.insert(who.to_string(), at);
            write(store, &reserved_key(g), seats)?;
        }
        (Target::Operator(o), Some(who)) => {
            *day.counts.entry(o.clone()).or_default() += 1;
            day.seen.insert(who.to_string(), o.clone());
            write(store, &day_key, &day)?;
        }
    }
    Ok(Routed {
        url: url_of(&target),
        target,
        backup,
        again: false,
    })
}

/// `POST /v1/livecodes/{id}/claims`: the channel (or its bridge), which
/// knows who scanned, gets a short-lived token proving it for this code.
async fn create_claim(
    State(state): State<AppState>,
    Path(code_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = code_id.clone();
    with_store(&state, move |store, _| {
        match read::<LiveCode>(store, &format!("{LIVECODE_PREFIX}{id}"))? {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!(
                "no live code `{id}`; GET /v1/livecodes lists them"
            ))),
        }
    })
    .await?;
    let (_, claim, expires_at) =
        crate::links::claim_from_body(&state, format!("livecode/{code_id}"), &body).await?;
    Ok(Json(json!({
        "code": code_id,
        "claim": claim,
        "url": format!("{}/l/{code_id}?claim={claim}", state.0.config.public_url.trim_end_matches('/')),
        "expires_at": expires_at,
    })))
}

/// `GET /l/{id}`: the public live-code link.
async fn live_code(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(code_id): Path<String>,
    Query(q): Query<LiveQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )?;
    live_code_inner(state, code_id, q).await
}

/// The identity a live-code request proves with its claim token; an
/// identity without one is refused (it would let anyone tag, re-assign
/// or message an existing customer).
async fn claimed_identity(
    state: &AppState,
    code_id: &str,
    q: &LiveQuery,
) -> Result<Option<Identity>, ApiError> {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let (claim, given) = (nonempty(&q.claim), nonempty(&q.identity));
    let Some(claim) = claim else {
        return match given {
            None => Ok(None),
            Some(_) => Err(ApiError::ClaimRequired(format!(
                "identity: a live code routes a named person only with a claim token (`claim`) the channel gets for them from POST /v1/livecodes/{code_id}/claims; without one, open /l/{code_id} with no identity (nothing is reserved)"
            ))),
        };
    };
    let secret = state.0.link_secret.clone();
    let scope = format!("livecode/{code_id}");
    let who = with_store(state, move |store, _| {
        crate::links::verify_claim(store, &secret, &scope, &claim, now()).map_err(ApiError::from)
    })
    .await?;
    if given.is_some_and(|g| g != who) {
        return Err(ApiError::ClaimRequired(
            "identity: does not match the claim token; send the claim alone".into(),
        ));
    }
    Identity::parse(&who)
        .map(Some)
        .map_err(|e| ApiError::Internal(format!("a remembered identity does not parse: {e}")))
}

async fn live_code_inner(
    state: AppState,
    code_id: String,
    q: LiveQuery,
) -> Result<Json<Value>, ApiError> {
    let identity = claimed_identity(&state, &code_id, &q).await?;
    let at = now();
    let (code, routed) = {
        let code_id = code_id.clone();
        let who = identity.as_ref().map(|i| i.as_str().to_string());
        with_store(&state, move |store, s| {
            let routed = route_newcomer(store, s, &code_id, who.as_deref(), at)?;
            let code: LiveCode = read(store, &format!("{LIVECODE_PREFIX}{code_id}"))?
                .ok_or_else(|| ApiError::NotFound(format!("no live code `{code_id}`")))?;
            Ok((code, routed))
        })
        .await?
    };
    let mut welcome = Value::Null;
    if let Some(identity) = &identity {
        let who = identity.as_str();
        // The touch records where the newcomer came from (ROI by first
        // touch); ids make a revisit append nothing new.
        let mut touch = person_event(
            identity,
            EventType::Touch,
            code.source_channel.as_deref(),
            at,
            format!("lc/{code_id}/{who}/touch"),
        );
        let mut props = serde_json::Map::new();
        props.insert("livecode".into(), json!(code_id));
        props.insert("target".into(), json!(routed.target.label()));
        touch.properties = Some(props);
        let mut events = vec![touch];
        let owner = match &routed.target {
            Target::Operator(o) => Some(o.clone()),
            Target::Group(_) => None,
        };
        if !code.auto_tags.is_empty() || owner.is_some() {
            let mut ev = person_event(
                identity,
                EventType::Identify,
                None,
                at,
                format!("lc/{code_id}/{who}/traits"),
            );
            let mut t = Traits {
                tags: code.auto_tags.clone(),
                ..Traits::default()
            };
            if let Some(o) = owner {
                t.extra.insert("operator".into(), json!(o));
            }
            ev.traits = Some(t);
            events.push(ev);
        }
        append(&state, events).await?;
        if let Some(template) = &code.welcome_template {
            let send = MassSend {
                id: format!("lc/{code_id}/{who}"),
                segment: None,
                identities: vec![who.to_string()],
                template: template.clone(),
                channel: None,
                class: None,
                kind: SendKind::Direct,
            };
            welcome = match state.0.automation.mass_send(send).await {
                Ok(_) => json!("queued"),
                Err(e) => {
                    tracing::warn!(code = %code_id, error = %e, "live code welcome not queued");
                    json!(format!("not queued: {e}"))
                }
            };
        }
    }
    let mut out = json!({
        "code": code_id,
        "target": routed.target,
        "backup": routed.backup,
        "again": routed.again,
        "reserved": identity.is_some(),
    });
    if let Some(url) = routed.url {
        out["url"] = json!(url);
    }
    if !welcome.is_null() {
        out["welcome"] = welcome;
    }
    Ok(Json(out))
}
