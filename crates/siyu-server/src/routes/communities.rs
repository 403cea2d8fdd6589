//! The HTTP side of communities (社群): groups, operators, live codes
//! (活码), the hand-over, group health and the SOP calendar. The rules
//! live in `siyu_growth::community` (pure, over the store seam and the
//! engine); this module extracts requests, takes the store and engine
//! locks, calls the core, appends the events it plans through the writer,
//! enqueues sends and group posts to the executor, rate-limits the public
//! link and runs the calendar's timer ([`spawn`], [`tick`]).
//!
//! A live code acts on a person only with proof: a claim token the channel
//! (which knows who scanned) had made with its key (`POST
//! /v1/livecodes/{id}/claims`, `links.rs`). Then the visit reserves the
//! seat, records the touch, tags and welcomes; an anonymous visit is only
//! told where to go and records nothing, so it can neither fill a group
//! nor tag, re-assign or message an existing customer.

use crate::automation::{MassSend, TEMPLATE_PREFIX};
use crate::error::ApiError;
use crate::request::{
    blocking, now, parse_json, read_engine, removal_audit, route, valid_id, with_store,
    ArchivedQuery, Removed, Route,
};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::guard::SendKind;
use siyu_domain::{Event, Identity};
use siyu_growth::community::calendar::{self, EntryStatus};
use siyu_growth::community::health::{self, GroupHealth, HealthFacts};
use siyu_growth::community::livecode::{self, RoutingInputs};
use siyu_growth::community::{groups, handover, operators, CommunityError, Skipped};
use siyu_growth::community::{
    GroupDef, GroupInput, GroupView, HandoverInput, HandoverReport, LiveCode, LiveCodeView,
    OperatorDef, OperatorInput, OperatorView, Target,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the SOP calendar is checked for due posts.
pub const TICK_EVERY: Duration = Duration::from_secs(15);

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/groups", read, "Community groups with live size, reserved seats, capacity, owner and the owner's load.", list_groups),
        route!(put, "/v1/groups/{id}", write, "Save a group: `{channel, name, capacity (default 500), owner (operator login; absent: the least-loaded active operator under max_groups), tags, url, archived}`.", put_group, body = GroupInput, statuses = [409]),
        route!(get, "/v1/groups/{id}", read, "A group with its live size and owner history.", get_group),
        route!(delete, "/v1/groups/{id}", write, "Archive a group: it posts no SOP entries, takes no live-code newcomers and counts in no operator's load; members, health and owner history stay readable; PUT with `archived: false` restores it.", delete_group),
        route!(get, "/v1/groups/{id}/health", read, "Size, joins and leaves in the window and per day, active rate, members who left within 3 days after a `reward_granted` (`days`, default 7; `timezone`). Indexed: no pass over the log.", group_health),
        route!(put, "/v1/groups/{id}/calendar", write, "Replace the group's SOP calendar: `[{id, at (RFC 3339 or epoch seconds), template, data}]`; due entries are posted through the guardrails.", put_calendar, body = (Vec<siyu_growth::community::calendar::CalendarEntry>)),
        route!(get, "/v1/groups/{id}/calendar", read, "The SOP calendar with each entry's outbox status (scheduled, pending, sent, suppressed and why, dead, missed).", get_calendar),
        route!(get, "/v1/operators", read, "Operators with their load: active groups owned and persons owned (trait `operator`).", list_operators),
        route!(put, "/v1/operators/{login}", write, "Save an operator: `{name, max_groups (default 7), status: active|left|banned, backup, url}`.", put_operator, body = OperatorInput),
        route!(post, "/v1/operators/{login}/handover", write, "Hand over every person and group of an operator in one action: `{to: login | null (spread over the least-loaded), status: left|banned, reason, force, in_service, transfer_success_msg}`; a named `to` that would own more groups than its max_groups is a 409 unless `force: true`; one audit record, history kept in the log. With WeCom configured, the operator's WeCom customers and groups are transferred too (in_service: 在职继承, else 离职继承), tracked until final (GET /v1/operators/{login}/handover).", handover, body = HandoverInput, statuses = [409]),
        route!(get, "/v1/operators/{login}/handover", read, "The WeCom side of the operator's hand-overs, oldest first: per hand-over, customers and groups per state (queued, waiting, done, refused, limit, no_relationship, failed) and each customer or group WeCom did not move with its errcode or reason. The leader advances them every 30 s.", handover_status),
        route!(get, "/v1/livecodes", read, "Live codes (活码).", list_livecodes),
        route!(put, "/v1/livecodes/{id}", write, "Save a live code: `{targets: [{group} | {operator}], daily_cap_per_operator, working_hours: {start, end, timezone}, backup_operator, auto_tags, welcome_template, source_channel, backing}`. `backing: \"wecom\"` also makes a WeCom QR code (「联系我」 for operator targets, 「加入群聊」 for up to 5 WeCom groups) with state = the id (≤ 30 characters), updated when the targets change; answered as `wecom.qr_code`.", put_livecode, body = LiveCode, statuses = [502]),
        route!(delete, "/v1/livecodes/{id}", write, "Archive a live code: its printed link answers 410 `gone` (\"this code is no longer active\") instead of routing, and it makes no claims; PUT restores it. A WeCom-backed code's QR code is deleted in WeCom first (502 if WeCom refuses: nothing archived).", delete_livecode, statuses = [502]),
        route!(post, "/v1/livecodes/{id}/claims", write, "A claim token for a newcomer the channel knows (`{\"identity\"}`): the live-code link with it (`/l/{id}?claim=…`, valid 30 min) reserves their seat, tags them and queues the welcome.", create_claim, body = (crate::links::ClaimBody), statuses = [410]),
        route!(get, "/l/{id}", public, "Public live-code link (rate limited per address): answers the first group or operator with room `{target, url}` (409 when all are full). Only with a `claim` token (from the channel, POST /v1/livecodes/{id}/claims) is a seat reserved and the person tagged and welcomed; without one nothing is recorded. A browser (`Accept` preferring text/html) gets a mobile page with the target's QR code, its errors too.", live_code, statuses = [401, 409, 410]),
        route!(get, "/l/{id}/qr.png", public, "The live code as a QR code (PNG, 400 px, rate limited per address): its public link, the code to print; with `target` (`group:<id>` or `operator:<login>`, one of the code's targets or its backup operator) the QR of that target's own `url` instead, as the live-code page shows it.", live_code_qr, answer_media = "image/png", statuses = [410]),
    ]
}

/// The one mapping of the community core's errors to the API's.
impl From<CommunityError> for ApiError {
    fn from(e: CommunityError) -> Self {
        match e {
            CommunityError::Invalid(m) => ApiError::InvalidDefinition(m),
            e @ CommunityError::NoGroup { .. } => ApiError::NotFound(e.to_string()),
            CommunityError::NotFound(m) => ApiError::NotFound(m),
            CommunityError::Conflict(m) => ApiError::Conflict(m),
            CommunityError::Archived(m) => ApiError::Gone(m),
            CommunityError::BadParameter(m) => ApiError::BadRequest(m),
            e @ CommunityError::Corrupt { .. } => ApiError::Internal(e.to_string()),
            CommunityError::Store(e) => ApiError::from(e),
        }
    }
}

/// The stored definitions core calls left out because they could not be
/// read (one bad row does not take the others down): logged when this goes
/// out of scope, so also when a later call in the same closure fails.
#[derive(Default)]
struct SkippedLog(Vec<Skipped>);

impl std::ops::Deref for SkippedLog {
    type Target = Vec<Skipped>;
    fn deref(&self) -> &Vec<Skipped> {
        &self.0
    }
}

impl std::ops::DerefMut for SkippedLog {
    fn deref_mut(&mut self) -> &mut Vec<Skipped> {
        &mut self.0
    }
}

impl Drop for SkippedLog {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            crate::quarantine::Broken::skipped(&s.key, s.error);
        }
    }
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
) -> Result<Json<OperatorDef>, ApiError> {
    valid_id(&login, "login")?;
    let input: OperatorInput = parse_json(&body, "operator")?;
    let at = now();
    with_store(&state, move |store| {
        Ok(Json(operators::save_operator(store, &login, input, at)?))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct OperatorList {
    operators: Vec<OperatorView>,
}

async fn list_operators(State(state): State<AppState>) -> Result<Json<OperatorList>, ApiError> {
    let s = state.clone();
    with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let ops = operators::load_operators(store, &mut skipped)?;
        let groups = groups::load_groups(store, &mut skipped)?;
        let operators = operators::operator_views(ops, &groups, &read_engine(&s));
        Ok(Json(OperatorList { operators }))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct HandoverAnswer {
    operator: String,
    handover: HandoverReport,
    /// The WeCom transfer this hand-over started (WeCom configured and
    /// WeCom customers or groups moving); its progress:
    /// GET /v1/operators/{login}/handover.
    #[serde(skip_serializing_if = "Option::is_none")]
    wecom: Option<crate::wecom_ops::TransferStatus>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct HandoverStatusAnswer {
    operator: String,
    /// One per hand-over that moved WeCom customers or groups, oldest first.
    wecom: Vec<crate::wecom_ops::TransferStatus>,
}

/// `GET /v1/operators/{login}/handover`.
async fn handover_status(
    State(state): State<AppState>,
    Path(login): Path<String>,
) -> Result<Json<HandoverStatusAnswer>, ApiError> {
    let l = login.clone();
    with_store(&state, move |store| {
        match siyu_growth::community::read::<OperatorDef>(store, &operators::operator_key(&l))? {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!(
                "no operator `{l}`; GET /v1/operators lists them"
            ))),
        }
    })
    .await?;
    let jobs = crate::wecom_ops::load_jobs(&state, Some(&login)).await?;
    Ok(Json(HandoverStatusAnswer {
        operator: login,
        wecom: jobs.iter().map(|j| j.status()).collect(),
    }))
}

/// Every person and group of an operator to another (or spread over the
/// least-loaded), in one action: the core plans it, the operator is
/// marked left/banned first (so nothing new is routed to them), then each
/// person gets an `identify` event with the new owner through the writer
/// (the old one stays in the log), then the groups change owner and one
/// audit record is written. Running it again picks up stragglers.
async fn handover(
    State(state): State<AppState>,
    Path(login): Path<String>,
    body: Bytes,
) -> Result<Json<HandoverAnswer>, ApiError> {
    let input: HandoverInput = if body.iter().all(u8::is_ascii_whitespace) {
        HandoverInput::default()
    } else {
        parse_json(&body, "handover")?
    };
    let status = input.status()?;
    input.check_wecom()?;
    let at = now();
    let wecom = state.0.wecom.is_some();
    // 1. Check, plan the groups and the persons, mark the operator.
    let (plan, wecom_moves) = {
        let login = login.clone();
        let to = input.to.clone();
        let force = input.force;
        let s = state.clone();
        with_store(&state, move |store| {
            let mut skipped = SkippedLog::default();
            let ops = operators::load_operators(store, &mut skipped)?;
            let groups = groups::load_groups(store, &mut skipped)?;
            // Persons: under the engine read lock, the canonical ids owned.
            let (owned, person_loads) = handover::owned_persons(&read_engine(&s), &login);
            let plan = handover::plan(
                &ops,
                &groups,
                &login,
                to.as_deref(),
                force,
                status,
                owned,
                person_loads,
                at,
            )?;
            handover::mark_operator(store, &ops, &plan)?;
            let moves = wecom.then(|| handover::wecom_moves(&read_engine(&s), &groups, &plan));
            Ok((plan, moves))
        })
        .await?
    };
    // 2. The persons: identify events, the log keeps the previous owner.
    let (chunks, skipped) = plan.person_events();
    let mut moved = 0u64;
    for events in chunks {
        moved += events.len() as u64;
        append(&state, events).await?;
    }
    // 3. The groups and the one audit record.
    let report = plan.report(input.reason, moved, skipped);
    let handover = {
        let report = report.clone();
        with_store(&state, move |store| {
            handover::finish(store, &plan, &report)?;
            Ok(report)
        })
        .await?
    };
    // 4. WeCom: the transfers the leader makes and follows.
    let mode = if input.in_service {
        siyu_connectors::wecom::transfer::Mode::InService
    } else {
        siyu_connectors::wecom::transfer::Mode::Resigned
    };
    let job = wecom_moves.and_then(|moves| {
        crate::wecom_ops::TransferJob::new(
            &login,
            at,
            mode,
            input.transfer_success_msg.clone(),
            moves.customers,
            moves.chats,
        )
    });
    let wecom = match job {
        Some(job) => Some(crate::wecom_ops::start_transfer(&state, job).await?),
        None => None,
    };
    tracing::info!(operator = %login, persons = moved, "operator handed over");
    Ok(Json(HandoverAnswer {
        operator: login,
        handover,
        wecom,
    }))
}

// ---------- groups ----------

async fn put_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<GroupDef>, ApiError> {
    valid_id(&id, "id")?;
    let input: GroupInput = parse_json(&body, "group")?;
    // The stateless checks answer before the store lock is taken (the
    // core makes them again when it saves).
    groups::check_group_input(&input)?;
    let at = now();
    with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let def = groups::save_group(store, &id, input, at, &mut skipped);
        Ok(Json(def?))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct GroupList {
    groups: Vec<GroupView>,
    /// The most members a group may be given, so a form can refuse more
    /// before saving (`siyu_growth::community::groups::CHANNEL_CAPACITY`).
    capacity_limits: CapacityLimits,
}

/// A group's largest capacity: `channels[channel]` where the channel has a
/// limit of its own, else `default`.
#[derive(Serialize, schemars::JsonSchema)]
struct CapacityLimits {
    default: u32,
    channels: std::collections::BTreeMap<&'static str, u32>,
}

impl CapacityLimits {
    fn new() -> Self {
        CapacityLimits {
            default: groups::MAX_CAPACITY,
            channels: groups::CHANNEL_CAPACITY.iter().copied().collect(),
        }
    }
}

/// Archived groups only with `?archived=true`.
async fn list_groups(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<GroupList>, ApiError> {
    let at = now();
    let s = state.clone();
    with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let mut defs = groups::load_groups(store, &mut skipped)?;
        if !shown.archived {
            defs.retain(|_, g| !g.archived);
        }
        let engine = read_engine(&s);
        let groups = groups::group_views(store, &engine, defs, at)?;
        Ok(Json(GroupList {
            groups,
            capacity_limits: CapacityLimits::new(),
        }))
    })
    .await
}

async fn get_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let at = now();
    let s = state.clone();
    with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let defs = groups::load_groups(store, &mut skipped)?;
        let engine = read_engine(&s);
        Ok(Json(groups::group_view(store, &engine, &defs, &id, at)?))
    })
    .await
}

/// `DELETE /v1/groups/{id}`: archives (members and history stay).
async fn delete_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let at = now();
    let i = id.clone();
    with_store(&state, move |store| {
        let mut def = groups::load_group(store, &i)?;
        if !def.archived {
            def.archived = true;
            def.updated_at = at;
            siyu_growth::community::write(store, &groups::group_key(&i), &def)?;
            store.audit(&removal_audit("archive_group", &i, serde_json::json!({})))?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(Removed::archived("group", id)))
}

// ---------- group health ----------

#[derive(Deserialize, schemars::JsonSchema)]
struct HealthQuery {
    days: Option<u32>,
    timezone: Option<String>,
}

/// Each step takes only the lock it needs (the store's reader connection
/// or the engine), one at a time.
async fn group_health(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HealthQuery>,
) -> Result<Json<GroupHealth>, ApiError> {
    let days = health::window_days(q.days);
    let tz = health::timezone(q.timezone.as_deref())?;
    let at = now();
    let s = state.clone();
    blocking(move || {
        let started = Instant::now();
        let lock_store = || s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let def = groups::load_group(lock_store().as_mut(), &id)?;
        let starts = health::day_starts(at, days, &tz);
        let from = starts[0];
        let (size, active) = health::members_and_active(&read_engine(&s), &id, from);
        // Joins and leaves through the group index: no pass over the log.
        let group_events = lock_store().group_events(&id, from, at)?;
        let tally = health::tally(&starts, &group_events);
        // Rewards of the persons who left: their own timelines (by the log
        // offsets the engine keeps), only for the leavers of the window.
        let leaver_offsets = health::leaver_offsets(&read_engine(&s), &tally.left);
        let mut rewards = Vec::new();
        {
            let mut store = lock_store();
            for offsets in &leaver_offsets {
                let timeline = store.timeline(offsets, None, health::LEAVER_TIMELINE)?;
                rewards.extend(health::rewards_in(timeline, from));
            }
        }
        let after_reward = health::left_after_reward(&read_engine(&s), &rewards, &tally.left);
        let mut answer = GroupHealth::new(HealthFacts {
            group: &id,
            capacity: def.capacity,
            at,
            tz: &tz,
            starts: &starts,
            size,
            active,
            tally: &tally,
            after_reward,
            events_scanned: group_events.len() as u64,
        });
        answer.ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Json(answer))
    })
    .await
}

// ---------- SOP calendar ----------

#[derive(Serialize, schemars::JsonSchema)]
struct CalendarSaved {
    group: String,
    entries: usize,
}

async fn put_calendar(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CalendarSaved>, ApiError> {
    // Entries are checked one by one (each fault named by its index), so
    // the body is read as open JSON values first.
    let raw: Vec<Value> = parse_json(&body, "calendar")?;
    let entries = calendar::parse_entries(&raw)?;
    with_store(&state, move |store| {
        let entries = calendar::save_calendar(store, &id, &entries, TEMPLATE_PREFIX)?;
        Ok(Json(CalendarSaved { group: id, entries }))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct CalendarAnswer {
    group: String,
    entries: Vec<EntryStatus>,
}

async fn get_calendar(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CalendarAnswer>, ApiError> {
    let at = now();
    with_store(&state, move |store| {
        let entries = calendar::calendar_status(store, &id, at)?;
        Ok(Json(CalendarAnswer { group: id, entries }))
    })
    .await
}

/// Posts every due calendar entry not posted yet (the core's planner;
/// the outbox key `sop/<group>/<entry>` makes a post happen once);
/// returns how many were queued. Called by [`spawn`]'s loop, and by tests
/// with their own clock.
pub async fn tick(state: &AppState, at: i64) -> Result<usize, ApiError> {
    let due = with_store(state, move |store| {
        let mut skipped = SkippedLog::default();
        let due = calendar::due_posts(store, at, &mut skipped);
        Ok(due?)
    })
    .await?;
    let n = due.len();
    for post in due {
        state
            .0
            .automation
            .group_post(post.key, post.group, post.channel, post.template, post.data)
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
            if !inner.leader.is_leader() {
                continue; // the node holding the lease posts (`crate::leader`)
            }
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
) -> Result<Json<LiveCodeView>, ApiError> {
    valid_id(&id, "id")?;
    let code: LiveCode = parse_json(&body, "live code")?;
    // As for groups: the stateless checks before the store lock.
    code.check()?;
    code.wecom_members(&id)?;
    let at = now();
    // Everything siyu checks, before WeCom is asked for anything.
    let previous = {
        let (id, code) = (id.clone(), code.clone());
        with_store(&state, move |store| {
            let mut skipped = SkippedLog::default();
            livecode::check_references(store, &id, &code, TEMPLATE_PREFIX, &mut skipped)?;
            Ok(livecode::load_wecom_way(store, &id)?)
        })
        .await?
    };
    let way = crate::wecom_ops::sync_way(&state, &id, &code, previous, at).await?;
    with_store(&state, move |store| {
        let key = livecode::wecom_key(&id);
        match &way {
            Some(w) => siyu_growth::community::write(store, &key, w)?,
            None => store.put_setting(&key, None)?,
        }
        let mut skipped = SkippedLog::default();
        let saved = livecode::save_livecode(store, &id, code, TEMPLATE_PREFIX, &mut skipped);
        Ok(Json(saved?))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct LiveCodeList {
    livecodes: Vec<LiveCodeView>,
}

/// Archived live codes only with `?archived=true`.
async fn list_livecodes(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<LiveCodeList>, ApiError> {
    with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let mut livecodes = livecode::list_livecodes(store, &mut skipped)?;
        if !shown.archived {
            livecodes.retain(|c| !c.code.archived);
        }
        Ok(Json(LiveCodeList { livecodes }))
    })
    .await
}

/// `DELETE /v1/livecodes/{id}`: archives (it may be printed on posters).
async fn delete_livecode(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let i = id.clone();
    let way = with_store(&state, move |store| {
        if livecode::load_livecode(store, &i)?.is_none() {
            return Err(ApiError::NotFound(format!(
                "no live code `{i}`; GET /v1/livecodes?archived=true lists them"
            )));
        }
        Ok(livecode::load_wecom_way(store, &i)?)
    })
    .await?;
    // Its WeCom QR code stops adding anyone first.
    if let Some(way) = &way {
        crate::wecom_ops::remove_way(&state, way).await?;
    }
    let i = id.clone();
    with_store(&state, move |store| {
        store.put_setting(&livecode::wecom_key(&i), None)?;
        let Some(mut code) = livecode::load_livecode(store, &i)? else {
            return Err(ApiError::NotFound(format!(
                "no live code `{i}`; GET /v1/livecodes?archived=true lists them"
            )));
        };
        if !code.archived {
            code.archived = true;
            siyu_growth::community::write(store, &livecode::livecode_key(&i), &code)?;
            store.audit(&removal_audit(
                "archive_livecode",
                &i,
                serde_json::json!({}),
            ))?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(Removed::archived("livecode", id)))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LiveQuery {
    /// Kept only to refuse it with a clear message: an identity without a
    /// claim proves nothing.
    identity: Option<String>,
    /// A claim token from `POST /v1/livecodes/{id}/claims`.
    claim: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct ClaimAnswer {
    code: String,
    claim: String,
    url: String,
    expires_at: i64,
}

/// `POST /v1/livecodes/{id}/claims`: the channel (or its bridge), which
/// knows who scanned, gets a short-lived token proving it for this code.
async fn create_claim(
    State(state): State<AppState>,
    Path(code_id): Path<String>,
    body: Bytes,
) -> Result<Json<ClaimAnswer>, ApiError> {
    let id = code_id.clone();
    with_store(&state, move |store| {
        match livecode::load_livecode(store, &id)? {
            Some(code) if code.archived => Err(ApiError::Gone(format!(
                "this code is no longer active: live code `{id}` was archived (PUT /v1/livecodes/{id} restores it)"
            ))),
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!(
                "no live code `{id}`; GET /v1/livecodes lists them"
            ))),
        }
    })
    .await?;
    let (claim, expires_at) =
        crate::links::claim_from_body(&state, format!("livecode/{code_id}"), &body).await?;
    Ok(Json(ClaimAnswer {
        url: crate::links::live_code_url(&state, &code_id, &claim),
        code: code_id,
        claim,
        expires_at,
    }))
}

/// `GET /l/{id}`: the public live-code link.
/// The live code's answer as JSON, or as a page for a browser (`h5`).
async fn live_code(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(code_id): Path<String>,
    Query(q): Query<LiveQuery>,
) -> crate::h5::Answer<LiveAnswer> {
    let html = crate::h5::wants_html(&headers);
    let checked = crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    );
    let result = match checked {
        Ok(()) => live_code_inner(state, code_id, q).await,
        Err(e) => Err(e),
    };
    crate::h5::Answer::negotiate(html, crate::h5::Link::LiveCode, result, |a| {
        let title = a.name.clone().unwrap_or_else(|| "扫码加入 Join".into());
        crate::h5::page(axum::http::StatusCode::OK, &title, &live_code_page(&a))
    })
}

/// The live-code page's body: where the newcomer goes and the QR code to
/// press (the target's own `url`; without one, the code's own link, for
/// a page opened on a computer); every inserted value escaped.
fn live_code_page(a: &LiveAnswer) -> String {
    use crate::h5::{both, escape, path_segment};
    let code = path_segment(&a.code);
    let name = a.name.as_deref().unwrap_or(match &a.target {
        Target::Group(g) => g,
        Target::Operator(o) => o,
    });
    let (zh, en) = match &a.target {
        Target::Group(_) => ("加入群聊", "Join the group chat"),
        Target::Operator(_) => ("添加客服为好友", "Add our service account"),
    };
    let mut body = format!(
        "<section class=\"card center\"><p class=kicker>{}</p><h1>{}</h1>",
        both(zh, en),
        escape(name)
    );
    if a.backup {
        body.push_str(&format!(
            "<p class=muted>{}</p>",
            both(
                "群已满或不在服务时间，已为你安排值班客服。",
                "The groups are full or closed now: our on-duty operator will add you."
            )
        ));
    }
    if let Some(url) = a
        .url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        let target = path_segment(&a.target.label());
        body.push_str(&format!(
            "<img class=qr src=\"/l/{code}/qr.png?target={target}\" width=220 height=220 alt=\"QR\">\
             <p>{}</p><a class=btn href=\"{}\">{}</a>",
            both("长按识别二维码", "Press and hold the QR code to scan it"),
            escape(url),
            both("打开", "Open"),
        ));
    } else {
        body.push_str(&format!(
            "<img class=qr src=\"/l/{code}/qr.png\" width=220 height=220 alt=\"QR\">\
             <p>{}</p>",
            both(
                "在电脑上打开？请用手机微信扫描此二维码。",
                "Opened on a computer? Scan this code with WeChat on your phone."
            ),
        ));
    }
    body.push_str("</section>");
    body
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LiveQrQuery {
    /// `group:<id>` or `operator:<login>`: one of the code's targets (or
    /// its backup operator); the QR code of that target's `url`.
    target: Option<String>,
}

/// The live code's QR PNG: its public link (`public_url`, the one rule
/// for links), or a target's stored `url` — only URLs the operator saved,
/// so the endpoint draws nothing a caller makes up.
async fn live_code_qr(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(code_id): Path<String>,
    Query(q): Query<LiveQrQuery>,
) -> Result<axum::response::Response, ApiError> {
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )?;
    let public = format!(
        "{}/l/{}",
        state.0.config.public_url.trim_end_matches('/'),
        crate::h5::path_segment(&code_id)
    );
    let target = q.target.filter(|t| !t.is_empty());
    let link = with_store(&state, move |store| {
        let mut skipped = SkippedLog::default();
        let inputs = RoutingInputs::load(store, &code_id, now(), &mut skipped)?;
        if inputs.code.archived {
            return Err(ApiError::Gone(format!(
                "this code is no longer active: live code `{code_id}` was archived"
            )));
        }
        let Some(label) = target else {
            return Ok(public);
        };
        let backup = inputs
            .code
            .backup_operator
            .clone()
            .map(Target::Operator);
        let Some(t) = inputs
            .code
            .targets
            .iter()
            .chain(backup.iter())
            .find(|t| t.label() == label)
        else {
            return Err(ApiError::NotFound(format!(
                "target: `{label}` is not a target of live code `{code_id}`; use `group:<id>` or `operator:<login>` of one of its targets"
            )));
        };
        let url = match t {
            Target::Group(g) => inputs.groups.get(g).and_then(|d| d.url.clone()),
            Target::Operator(o) => inputs.operators.get(o).and_then(|d| d.url.clone()),
        };
        url.filter(|u| !u.is_empty()).ok_or_else(|| {
            ApiError::NotFound(format!(
                "target: `{label}` has no `url` to draw; save one on the group or operator"
            ))
        })
    })
    .await?;
    crate::h5::qr(link).await
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
    let who = with_store(state, move |store| {
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

/// The answer of the public live-code link.
#[derive(Serialize, schemars::JsonSchema)]
struct LiveAnswer {
    code: String,
    target: Target,
    backup: bool,
    again: bool,
    /// Whether a seat (or the operator's count) was taken: a claimed visit.
    reserved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// `queued`, or `not queued: <why>`; absent without a welcome template
    /// or for an anonymous visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    welcome: Option<String>,
    /// The target group's or operator's name, for the page.
    #[serde(skip)]
    name: Option<String>,
}

async fn live_code_inner(
    state: AppState,
    code_id: String,
    q: LiveQuery,
) -> Result<LiveAnswer, ApiError> {
    let identity = claimed_identity(&state, &code_id, &q).await?;
    let at = now();
    // Routing and reserving run under the store lock, so two newcomers
    // never take the same last seat.
    let (code, routed, name) = {
        let code_id = code_id.clone();
        let who = identity.as_ref().map(|i| i.as_str().to_string());
        let s = state.clone();
        with_store(&state, move |store| {
            let who = who.as_deref();
            let mut skipped = SkippedLog::default();
            let inputs = RoutingInputs::load(store, &code_id, at, &mut skipped);
            let mut inputs = inputs?;
            inputs.observe(store, &read_engine(&s), who, at)?;
            let routed = livecode::route_newcomer(&inputs, who, at)?;
            livecode::reserve(store, &mut inputs, &routed, who, at)?;
            let name = match &routed.target {
                Target::Group(g) => inputs.groups.get(g).map(|d| d.name.clone()),
                Target::Operator(o) => inputs.operators.get(o).map(|d| d.name.clone()),
            };
            Ok((inputs.code, routed, name))
        })
        .await?
    };
    let mut welcome = None;
    if let Some(identity) = &identity {
        let who = identity.as_str();
        append(
            &state,
            livecode::newcomer_events(&code_id, &code, &routed, identity, at),
        )
        .await?;
        if let Some(template) = &code.welcome_template {
            let send = MassSend {
                id: livecode::welcome_id(&code_id, who),
                segment: None,
                identities: vec![who.to_string()],
                template: template.clone(),
                channel: None,
                class: None,
                kind: SendKind::Direct,
            };
            welcome = Some(match state.0.automation.mass_send(send).await {
                Ok(_) => "queued".to_string(),
                Err(e) => {
                    tracing::warn!(code = %code_id, error = %e, "live code welcome not queued");
                    format!("not queued: {e}")
                }
            });
        }
    }
    Ok(LiveAnswer {
        code: code_id,
        target: routed.target,
        backup: routed.backup,
        again: routed.again,
        reserved: identity.is_some(),
        url: routed.url,
        welcome,
        name,
    })
}
