//! Conversations (会话): the inbox list, one person's thread across
//! channels, replying, assigning, resolving, the live change stream, the
//! settings, and the compliance archive and report.
//!
//! Where each part comes from (see `crate::conversations` for why):
//! the list is one pass over the engine's per-person conversation state
//! (`siyu_engine::conversation::inbox`); a thread is the person's log
//! (comments in, `message_sent` out, resolves and assignments) read by
//! offset, with the archive's operator messages that were not (yet)
//! delivered; a reply is an `Action::Reply` through the outbox, the
//! guardrails and the channel's connector, archived first; assignment is
//! the `operator` trait a hand-over writes; a resolve is the custom event
//! `conversation_resolved`. Both go through the writer like any event.

use crate::conversations::{Settings, SETTINGS_KEY};
use crate::error::ApiError;
use crate::request::{now, parse_json, read_engine, resolve, route, with_store, Route};
use crate::sensitive_words::Hit;
use crate::zone::DateRange;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_automation::machine::{Action, ReplyTo};
use siyu_automation::sensitive::Speaker;
use siyu_domain::{Channel, Event, EventType, Identity, Traits};
use siyu_engine::conversation::{self, Conversation, InboxFilter, InboxSort, RESOLVED_EVENT};
use siyu_engine::customers as list;
use siyu_engine::{Engine, Person, PersonId};
use siyu_store::{ArchiveQuery, ArchivedMessage, OutboxStatus};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/conversations", read, "The inbox: persons who wrote or were written to, filtered by `operator` (their owner's login; `none`: unassigned), `unanswered` (true: waiting for an operator's reply), `waiting_minutes` (waiting at least this long), `channel` (of their last message), `tag`, `segment`, `status` (open | resolved | all); sorted by `sort` (recent: newest message first; waiting: longest waiting first); paged by `offset` and `limit` (1–200, default 50) with the `total`.", list_conversations),
        route!(get, "/v1/conversations/stream", read, "Server-sent events: every conversation change (`comment`, `message_sent`, `resolved`, `assigned`) with the person's canonical identity, on any node.", stream, answer_media = "text/event-stream"),
        route!(get, "/v1/conversations/settings", read, "The conversation settings: `unanswered_alert_minutes`, `archive_retention_days`, `service_windows` (hours per channel).", get_settings),
        route!(put, "/v1/conversations/settings", write, "Save the conversation settings (every field optional: defaults 30 min, 180 days, wechat 48 h); every fault names its field.", put_settings, body = Settings),
        route!(get, "/v1/conversations/archive", read, "The archive of operators' messages (会话存档), newest first: `operator`, `person` (any identity), `q` (the text contains), `flagged` (hit a sensitive-word rule), `from`/`to` (dates in the workspace time zone or RFC 3339), `kind` (message | resolution), `limit` (1–500), `before` (the `cursor` of the last page). 404 for a `person` siyu does not know.", archive, statuses = [404]),
        route!(get, "/v1/conversations/report", read, "Per operator over `from`/`to` (default the last 30 days): messages, persons answered, first-response times (median, p90), resolutions and their median time, sensitive-word hits, and conversations unanswered now among the persons they own.", report),
        route!(get, "/v1/conversations/{person}", read, "One person's conversation across channels (any identity): the messages in and out, oldest first (the last `limit`, 1–500, default 100; `before` = the first offset shown pages older), with the person's profile, service windows and the channels a reply can use.", thread, statuses = [404]),
        route!(post, "/v1/conversations/{person}/messages", write, "Reply: `{\"text\", \"channel\"?, \"quick_reply\"?}` on the channel the customer last wrote on (or `channel`), as a transactional message through the guardrails and the channel's connector, archived with its sensitive-word hits. 409 `outside_service_window` outside the platform's window; 422 when the person has no address on the channel. Answers the outbox key and its status after up to 3 s.", reply, body = ReplyBody, statuses = [404, 409, 422]),
        route!(post, "/v1/conversations/{person}/assign", write, "Assign the conversation (the person) to an operator: `{\"operator\": login | null}`; written as the person's `operator` trait.", assign, body = AssignBody, statuses = [404, 422]),
        route!(post, "/v1/conversations/{person}/tasks", write, "A follow-up task on the person, from the conversation: `{\"title\", \"note\"?, \"due\"? (epoch seconds), \"operator\"? (default: whoever asks, else the owner)}`; listed in the thread and `GET /v1/tasks`, completed with `POST /v1/tasks/done`.", add_task, body = TaskBody, statuses = [404, 422]),
        route!(post, "/v1/conversations/{person}/resolve", write, "Mark the conversation resolved (until the customer writes again): an empty body, or `{\"operator\"}` naming who resolved it when the caller is an API key; answers how long it was open.", resolve_conversation, body = ResolveBody, statuses = [404, 422]),
    ]
}

/// Most messages a thread page holds.
const MAX_THREAD: usize = 500;
/// Events read per store page while collecting a thread.
const THREAD_PAGE: usize = 200;
/// Events read (newest first) for a list row's preview.
const PREVIEW_LOOKBACK: usize = 40;
/// Longest preview, in characters.
const PREVIEW_CHARS: usize = 80;
/// Longest reply, in characters.
const MAX_REPLY_CHARS: usize = 4_000;
/// Open tasks read to find a person's (the task list has no person index).
const MAX_OPEN_TASKS_READ: usize = 10_000;
/// How long a reply waits for its outbox verdict before answering `pending`.
const VERDICT_WAIT: Duration = Duration::from_secs(3);

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// The conversation settings replies follow (`Settings::effective`).
async fn reply_settings(state: &AppState) -> Result<Settings, ApiError> {
    let kf = state
        .0
        .config
        .connectors
        .wecom
        .as_ref()
        .is_some_and(|w| w.open_kfid.as_deref().is_some_and(|k| !k.trim().is_empty()));
    Ok(with_store(state, |store| Ok(Settings::load(store)?))
        .await?
        .effective(kf))
}

/// The login of the console session making the request, if any.
fn session_login(state: &AppState, headers: &HeaderMap) -> Option<String> {
    siyu_console::session_of(&state.0.console, headers).map(|s| s.login)
}

// ---------- the list ----------

#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The owner's login; `none`: persons with no owner.
    pub operator: Option<String>,
    /// true: waiting for an operator's reply; false: not waiting.
    pub unanswered: Option<String>,
    /// Waiting at least this many minutes.
    pub waiting_minutes: Option<String>,
    /// The channel of the person's last message (wecom, douyin …).
    pub channel: Option<String>,
    pub tag: Option<String>,
    /// A saved segment's name.
    pub segment: Option<String>,
    /// open | resolved | all (default all).
    pub status: Option<String>,
    /// recent (default) | waiting.
    pub sort: Option<String>,
    pub offset: Option<String>,
    pub limit: Option<String>,
}

fn parse_bool(v: &Option<String>, name: &str) -> Result<Option<bool>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(o) => Err(bad(format!("{name}: `true` or `false`, not `{o}`"))),
    }
}

fn parse_num(v: &Option<String>, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(bad(format!(
                "{name}: a whole number from {min} to {max}, not `{s}`"
            ))),
        },
    }
}

fn text_param<'a>(v: &'a Option<String>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match v.as_deref() {
        Some(s) if s.is_empty() || s.chars().count() > 128 => {
            Err(bad(format!("{name}: 1 to 128 characters")))
        }
        other => Ok(other),
    }
}

/// One conversation as the inbox lists it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ConversationRow {
    /// The person's canonical identity (use it in paths).
    pub person: String,
    /// Trait `name`, else `nickname`, else the canonical identity.
    pub display_name: String,
    /// The channel of the last message from the customer.
    pub channel: Option<String>,
    pub last_message_at: Option<i64>,
    pub last_inbound_at: Option<i64>,
    pub last_reply_at: Option<i64>,
    /// The oldest message from the customer after the last operator reply.
    pub unanswered_since: Option<i64>,
    /// Messages from the customer waiting for an operator.
    pub unanswered: usize,
    pub inbound: u32,
    pub outbound: u32,
    /// The owner (trait `operator`).
    pub operator: Option<String>,
    /// open | resolved
    pub status: &'static str,
    pub resolved_at: Option<i64>,
    pub tags: Vec<String>,
    /// The newest message's text (at most 80 characters).
    pub preview: Option<String>,
    /// The intent of the customer's newest message (`properties.intent`).
    pub last_intent: Option<siyu_domain::intent::Intent>,
}

fn row_of(e: &Engine, slot: PersonId, c: &Conversation) -> Option<ConversationRow> {
    let p = e.person(slot)?;
    let canonical = e.canonical_id(slot).to_string();
    Some(ConversationRow {
        display_name: list::name_of(p)
            .map(str::to_string)
            .unwrap_or_else(|| canonical.clone()),
        person: canonical,
        channel: c
            .last_channel()
            .and_then(|ch| e.channel_name(ch))
            .map(str::to_string),
        last_message_at: c.last_message().map(i64::from),
        last_inbound_at: c.last_in().map(|x| x.0 as i64),
        last_reply_at: c.last_reply().map(i64::from),
        unanswered_since: c.unanswered_since().map(i64::from),
        unanswered: c.unanswered(),
        inbound: c.inbound,
        outbound: c.outbound,
        operator: list::owner_of(p).map(str::to_string),
        status: if c.is_open() { "open" } else { "resolved" },
        resolved_at: c.resolved().map(i64::from),
        tags: p
            .extra
            .as_deref()
            .map(|x| x.tags().to_vec())
            .unwrap_or_default(),
        preview: None,
        last_intent: c.last_in_intent(),
    })
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ConversationList {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub conversations: Vec<ConversationRow>,
}

fn inbox_filter(q: &ListQuery, e: &Engine, now: i64) -> Result<InboxFilter, ApiError> {
    let mut f = InboxFilter::default();
    match text_param(&q.operator, "operator")? {
        Some("none") => f.unassigned = true,
        Some(login) => f.people.owner = Some(login.to_string()),
        None => {}
    }
    f.unanswered = parse_bool(&q.unanswered, "unanswered")?;
    if let Some(m) = parse_num(&q.waiting_minutes, "waiting_minutes", 0, 525_600)? {
        f.waiting_since_at_most = Some(now - m as i64 * 60);
    }
    if let Some(ch) = text_param(&q.channel, "channel")? {
        // A channel nobody wrote on keeps no one.
        f.channel = Some(e.channel_of(ch).unwrap_or(u16::MAX - 1));
    }
    if let Some(tag) = text_param(&q.tag, "tag")? {
        f.people.tag = Some(tag.to_string());
    }
    if let Some(name) = text_param(&q.segment, "segment")? {
        let i = e.live_segments().index_of(name).ok_or_else(|| {
            bad(format!(
                "segment: no saved segment `{name}`; GET /v1/segments lists them"
            ))
        })?;
        f.people.segment = Some(i);
    }
    f.open = match q.status.as_deref() {
        None | Some("all") => None,
        Some("open") => Some(true),
        Some("resolved") => Some(false),
        Some(o) => return Err(bad(format!("status: open, resolved or all, not `{o}`"))),
    };
    Ok(f)
}

async fn list_conversations(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let sort = match q.sort.as_deref() {
        None | Some("recent") => InboxSort::Recent,
        Some("waiting") => InboxSort::Waiting,
        Some(o) => return Err(bad(format!("sort: recent or waiting, not `{o}`"))),
    };
    let offset = parse_num(&q.offset, "offset", 0, 10_000_000)?.unwrap_or(0) as usize;
    let limit = parse_num(&q.limit, "limit", 1, 200)?.unwrap_or(50) as usize;
    let at = now();
    let (total, mut rows, offsets) = {
        let e = read_engine(&state);
        let filter = inbox_filter(&q, &e, at)?;
        let page = conversation::inbox(&e, &filter, sort, offset, limit);
        let mut rows = Vec::with_capacity(page.slots.len());
        let mut offsets = Vec::with_capacity(page.slots.len());
        for slot in page.slots {
            let Some(c) = e.person(slot).and_then(|p| p.conversation()) else {
                continue;
            };
            if let Some(r) = row_of(&e, slot, &c) {
                rows.push(r);
                offsets.push(e.event_offsets(slot).unwrap_or_default());
            }
        }
        (page.total, rows, offsets)
    };
    let previews = with_store(&state, move |store| {
        let mut out = Vec::with_capacity(offsets.len());
        for o in &offsets {
            let events = store.timeline(o, None, PREVIEW_LOOKBACK)?;
            out.push(
                // The newest message with a text (a message sent before
                // siyu kept texts has none).
                events
                    .iter()
                    .filter(|s| is_message(&s.event))
                    .find_map(|s| s.event.text.clone().or_else(|| sent_text(&s.event)))
                    .map(|t| t.chars().take(PREVIEW_CHARS).collect::<String>()),
            );
        }
        Ok(out)
    })
    .await?;
    for (r, p) in rows.iter_mut().zip(previews) {
        r.preview = p;
    }
    Ok(Json(ConversationList {
        total,
        offset,
        limit,
        conversations: rows,
    }))
}

fn is_message(e: &Event) -> bool {
    matches!(e.event_type, EventType::Comment | EventType::MessageSent)
}

/// A `message_sent`'s text (`properties.text`).
fn sent_text(e: &Event) -> Option<String> {
    e.properties
        .as_ref()?
        .get("text")?
        .as_str()
        .map(str::to_string)
}

fn prop_str<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    e.properties.as_ref()?.get(key)?.as_str()
}

// ---------- the stream ----------

async fn stream(State(state): State<AppState>) -> Response {
    let rx = state.0.conversations.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|c| match c {
        Ok(c) => Some(Ok::<_, std::convert::Infallible>(
            SseEvent::default()
                .event("conversation")
                .data(serde_json::to_string(&c).unwrap_or_default()),
        )),
        // A slow listener missed changes: tell it to reload everything.
        Err(_) => Some(Ok(SseEvent::default().event("lagged").data("{}"))),
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ---------- settings ----------

async fn get_settings(State(state): State<AppState>) -> Result<Json<Settings>, ApiError> {
    Ok(Json(
        with_store(&state, |store| Ok(Settings::load(store)?)).await?,
    ))
}

async fn put_settings(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Settings>, ApiError> {
    let settings: Settings = parse_json(&body, "conversation settings")?;
    settings.check().map_err(ApiError::InvalidDefinition)?;
    let value = serde_json::to_value(&settings).map_err(|e| ApiError::Internal(e.to_string()))?;
    with_store(&state, move |store| {
        Ok(store.put_setting(SETTINGS_KEY, Some(&value))?)
    })
    .await?;
    Ok(Json(settings))
}

// ---------- one thread ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadQuery {
    pub limit: Option<String>,
    /// The offset of the oldest message shown: the page before it.
    pub before: Option<String>,
}

/// One line of a thread.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Message {
    /// The log offset (None: an operator message not delivered yet).
    pub offset: Option<u64>,
    pub at: i64,
    /// in | out | event
    pub direction: &'static str,
    /// comment | message_sent | reply (an operator message not delivered) | resolved | assigned
    pub kind: &'static str,
    pub channel: String,
    pub identity: String,
    pub text: Option<String>,
    /// Who wrote it (out) or did it (resolved, assigned).
    pub operator: Option<String>,
    /// out: operator | auto_reply | journey | other
    pub source: Option<&'static str>,
    /// out: done | pending | suppressed | dead
    pub status: Option<String>,
    /// Why it is pending, suppressed or dead.
    pub detail: Option<String>,
    /// The sensitive-word rules it hit.
    pub sensitive: Vec<Hit>,
    /// The outbox key of a message sent.
    pub key: Option<String>,
    /// in: the message's intent (`properties.intent`, set at ingest) and
    /// the classifier's confidence in it, if siyu classified it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<siyu_domain::intent::Intent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_confidence: Option<f64>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Journeys {
    pub journey: String,
    pub entered_at: i64,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Fission {
    /// Persons this person invited (referral signups naming them).
    pub invited: usize,
    /// The identity of who invited this person, if anyone.
    pub invited_by: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ServiceWindow {
    pub channel: String,
    pub hours: u32,
    pub open: bool,
    /// When it closes (open), or closed (open = false), if the customer wrote on it.
    pub closes_at: Option<i64>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Thread {
    pub person: ConversationRow,
    pub profile: crate::profile::Profile,
    pub rfm_layer: Option<String>,
    pub journeys: Vec<Journeys>,
    pub fission: Fission,
    pub service_windows: Vec<ServiceWindow>,
    /// Channels a reply can go out on (the person has an address there
    /// and a connector sends on it), the default first.
    pub reply_channels: Vec<String>,
    /// The person's open tasks (leads, follow-ups), newest first.
    pub tasks: Vec<siyu_store::TaskRow>,
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Older messages exist: ask with `before` = the first message's offset.
    pub more: bool,
}

/// The channels a reply to this person can use: the channel they last
/// wrote on first, then each channel of their identities (phone and
/// e-mail as sms and email).
fn reply_channels(identities: &[String], last: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = last.map(str::to_string).into_iter().collect();
    for i in identities {
        let ch = i.split_once(':').map_or("", |x| x.0);
        let ch = match ch {
            "phone" => "sms",
            c if c == crate::privacy::PHONE_CHANNEL
                || c == crate::privacy::LEGACY_PHONE_CHANNEL =>
            {
                continue
            }
            c => c,
        };
        if !ch.is_empty() && !out.iter().any(|o| o == ch) {
            out.push(ch.to_string());
        }
    }
    out
}

struct ThreadBase {
    row: ConversationRow,
    profile: crate::profile::Profile,
    rfm_layer: Option<String>,
    fission: Fission,
    windows: Vec<ServiceWindow>,
    reply_channels: Vec<String>,
    offsets: Vec<u64>,
    identities: Vec<String>,
}

/// The person holding identity `id`: their slot and state (404 naming it).
fn person_of<'e>(e: &'e Engine, id: &str) -> Result<(PersonId, &'e Person), ApiError> {
    let slot = resolve(e, id)?;
    let p = e
        .person(slot)
        .ok_or_else(|| ApiError::NotFound(format!("no person has identity `{id}` (erased)")))?;
    Ok((slot, p))
}

fn thread_base(e: &Engine, id: &str, settings: &Settings, at: i64) -> Result<ThreadBase, ApiError> {
    let (slot, p) = person_of(e, id)?;
    let c = p.conversation().unwrap_or_default();
    let row = row_of(e, slot, &c).ok_or_else(|| ApiError::Internal(format!("{id}: no row")))?;
    let profile = crate::profile::profile(e, slot)
        .ok_or_else(|| ApiError::Internal(format!("{id}: no profile")))?;
    let rfm_layer = list::rfm_thresholds(e)
        .and_then(|t| siyu_engine::rfm::layer_of(p, e.now(), &t))
        .map(|l| l.name().to_string());
    let (mut invited, mut invited_by) = (0, None);
    for r in e.referrals() {
        if e.person_of_id(r.inviter) == slot {
            invited += 1;
        }
        if e.person_of_id(r.invitee) == slot && invited_by.is_none() {
            invited_by = Some(e.identity_str(r.inviter).to_string());
        }
    }
    let windows = settings
        .service_windows
        .iter()
        .filter(|(ch, _)| {
            profile
                .identities
                .iter()
                .any(|i| i.split_once(':').is_some_and(|x| x.0 == ch.as_str()))
        })
        .map(|(ch, hours)| {
            let last = e.channel_of(ch).and_then(|code| c.last_in_on(code));
            let closes = last.map(|t| t as i64 + *hours as i64 * 3600);
            ServiceWindow {
                channel: ch.clone(),
                hours: *hours,
                open: closes.is_some_and(|c| c > at),
                closes_at: closes,
            }
        })
        .collect();
    let identities = profile.identities.clone();
    Ok(ThreadBase {
        reply_channels: reply_channels(&identities, row.channel.as_deref()),
        row,
        rfm_layer,
        fission: Fission {
            invited,
            invited_by,
        },
        windows,
        offsets: e.event_offsets(slot).unwrap_or_default(),
        identities,
        profile,
    })
}

fn journey_names(store: &mut dyn siyu_store::Store) -> siyu_store::Result<Vec<String>> {
    let mut names: Vec<String> = store
        .list_settings(crate::automation::JOURNEY_PREFIX)?
        .into_iter()
        .filter_map(|(k, _)| {
            k.strip_prefix(crate::automation::JOURNEY_PREFIX)?
                .rsplit_once('/')
                .map(|(n, _)| n.to_string())
        })
        .collect();
    names.dedup();
    Ok(names)
}

/// The kind of a thread line an event is, if it is one.
fn thread_kind(e: &Event) -> Option<&'static str> {
    crate::conversations::change_kind(e)
}

fn source_of(e: &Event) -> &'static str {
    if prop_str(e, "operator").is_some() {
        "operator"
    } else if prop_str(e, "key").is_some_and(|k| k.starts_with("r/")) {
        "auto_reply"
    } else if prop_str(e, "journey").is_some() {
        "journey"
    } else {
        "other"
    }
}

async fn thread(
    State(state): State<AppState>,
    Path(person): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> Result<Json<Thread>, ApiError> {
    let limit = parse_num(&q.limit, "limit", 1, MAX_THREAD as u64)?.unwrap_or(100) as usize;
    let before = parse_num(&q.before, "before", 0, u64::MAX)?;
    let settings = reply_settings(&state).await?;
    let at = now();
    let base = {
        let e = read_engine(&state);
        thread_base(&e, &person, &settings, at)?
    };
    let rules = crate::sensitive_words::current(&state).await?;
    let offsets = base.offsets.clone();
    let identities = base.identities.clone();
    let canonical = base.row.person.clone();
    let task_ids = identities.clone();
    let (events, more, archived, statuses, journeys, tasks) = with_store(&state, move |store| {
        // Newest first, until `limit` thread lines or the person's start.
        let mut lines = Vec::new();
        let mut cursor = before;
        let mut more = false;
        loop {
            let page = store.timeline(&offsets, cursor, THREAD_PAGE)?;
            let full = page.len() == THREAD_PAGE;
            cursor = page.last().map(|s| s.offset);
            for s in page {
                if thread_kind(&s.event).is_some() {
                    if lines.len() == limit {
                        more = true;
                        break;
                    }
                    lines.push(s);
                }
            }
            if more || !full {
                break;
            }
        }
        // The operator messages of this span (those not delivered have
        // no message_sent: they are shown from the archive).
        let oldest = if more {
            lines.last().map(|s| s.event.ts)
        } else {
            None
        };
        let newest = before.and_then(|_| lines.first().map(|s| s.event.ts + 1));
        let archived = store.archived_messages(&ArchiveQuery {
            kind: Some("message".into()),
            identities: Some(identities),
            from: oldest,
            to: newest,
            limit: MAX_THREAD,
            ..Default::default()
        })?;
        let mut statuses = HashMap::new();
        for m in &archived {
            if let Some(item) = store.outbox_get(&m.key)? {
                statuses.insert(m.key.clone(), (item.status, item.detail));
            }
        }
        let mut journeys = Vec::new();
        for j in journey_names(store)? {
            for r in store.enrollments(&j, Some(&canonical), 3)? {
                if !r.done {
                    journeys.push(Journeys {
                        journey: r.journey,
                        entered_at: r.entered_at,
                    });
                }
            }
        }
        let tasks: Vec<siyu_store::TaskRow> = store
            .tasks(true, MAX_OPEN_TASKS_READ)?
            .into_iter()
            .filter(|t| task_ids.contains(&t.identity))
            .collect();
        Ok((lines, more, archived, statuses, journeys, tasks))
    })
    .await?;
    let hits = |ids: &[String]| crate::sensitive_words::hits_of(&rules, ids);
    let by_key: HashMap<&str, &ArchivedMessage> =
        archived.iter().map(|m| (m.key.as_str(), m)).collect();
    let mut delivered = HashSet::new();
    let mut messages: Vec<Message> = events
        .iter()
        .rev()
        .map(|s| {
            let e = &s.event;
            let kind = thread_kind(e).unwrap_or("comment");
            let key = prop_str(e, "key").map(str::to_string);
            let archived = key.as_deref().and_then(|k| by_key.get(k));
            if let Some(k) = &key {
                delivered.insert(k.clone());
            }
            let (direction, text, operator, source, sensitive) = match kind {
                "comment" => {
                    let ids: Vec<String> = e
                        .properties
                        .as_ref()
                        .and_then(|p| p.get("sensitive"))
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    ("in", e.text.clone(), None, None, hits(&ids))
                }
                "message_sent" => (
                    "out",
                    sent_text(e),
                    prop_str(e, "operator").map(str::to_string),
                    Some(source_of(e)),
                    archived.map(|m| hits(&m.flags)).unwrap_or_default(),
                ),
                "assigned" => (
                    "event",
                    None,
                    e.traits
                        .as_ref()
                        .and_then(|t| t.extra.get("operator"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    None,
                    Vec::new(),
                ),
                _ => (
                    "event",
                    None,
                    prop_str(e, "operator").map(str::to_string),
                    None,
                    Vec::new(),
                ),
            };
            Message {
                offset: Some(s.offset),
                at: e.ts,
                direction,
                kind,
                channel: e.channel.as_str().to_string(),
                identity: e.identity.as_str().to_string(),
                text,
                operator,
                source,
                status: (direction == "out").then(|| "done".to_string()),
                detail: None,
                sensitive,
                key: if direction == "out" { key } else { None },
                intent: siyu_domain::intent::Intent::of_event(e),
                intent_confidence: siyu_domain::intent::Intent::of_event(e)
                    .and_then(|_| e.properties.as_ref()?.get("intent_confidence")?.as_f64()),
            }
        })
        .collect();
    for m in &archived {
        if delivered.contains(&m.key) {
            continue;
        }
        let (status, detail) = statuses
            .get(&m.key)
            .map(|(s, d)| (s.as_str().to_string(), d.clone()))
            .unwrap_or_else(|| ("pending".into(), String::new()));
        messages.push(Message {
            offset: None,
            at: m.ts,
            direction: "out",
            kind: "reply",
            channel: m.channel.clone(),
            identity: m.identity.clone(),
            text: Some(m.text.clone()),
            operator: Some(m.operator.clone()),
            source: Some("operator"),
            status: Some(status),
            detail: (!detail.is_empty()).then_some(detail),
            sensitive: hits(&m.flags),
            intent: None,
            intent_confidence: None,
            key: Some(m.key.clone()),
        });
    }
    messages.sort_by_key(|m| (m.at, m.offset.unwrap_or(u64::MAX)));
    let mut reply_channels = base.reply_channels;
    reply_channels.retain(|ch| state.0.automation.can_send_on(ch));
    Ok(Json(Thread {
        reply_channels,
        person: base.row,
        profile: base.profile,
        rfm_layer: base.rfm_layer,
        journeys,
        tasks,
        fission: base.fission,
        service_windows: base.windows,
        messages,
        more,
    }))
}

// ---------- replying ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// What to send (1–4000 characters), as written.
    pub text: String,
    /// The channel to reply on; default: the one the customer last wrote on.
    #[serde(default)]
    pub channel: Option<String>,
    /// The quick reply it came from (counts a use).
    #[serde(default)]
    pub quick_reply: Option<String>,
    /// Who is replying, when the caller is an API key (a console
    /// session's login otherwise).
    #[serde(default)]
    pub operator: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Replied {
    /// The outbox key (GET /v1/outbox/{key} follows it).
    pub key: String,
    pub person: String,
    pub channel: String,
    /// done | pending | suppressed | dead, after up to 3 s.
    pub status: String,
    /// Why it is pending, suppressed or dead.
    pub detail: String,
    /// The operator sensitive-word rules the text hit (sent all the same, flagged).
    pub sensitive: Vec<Hit>,
    /// Seconds since the oldest message it answers (None: none was waiting).
    pub response_secs: Option<i64>,
}

/// Where and to whom a reply goes, decided under the engine lock.
struct Target {
    canonical: String,
    channel: String,
    waiting_since: Option<i64>,
}

fn reply_target(
    e: &Engine,
    person: &str,
    wanted: Option<&str>,
    settings: &Settings,
    at: i64,
) -> Result<Target, ApiError> {
    let (_, p) = person_of(e, person)?;
    let snap = crate::automation::person::PersonSnapshot::of(e, person)
        .ok_or_else(|| ApiError::Internal(format!("{person}: no snapshot")))?;
    let c = p.conversation();
    let c = c.as_deref();
    let last = c
        .and_then(|c| c.last_channel())
        .and_then(|ch| e.channel_name(ch))
        .map(str::to_string);
    let channel = match (wanted, last) {
        (Some(w), _) => w.to_string(),
        (None, Some(l)) => l,
        (None, None) => {
            return Err(ApiError::InvalidDefinition(format!(
            "channel: {} has not written on any channel; name the channel to reply on (one of: {})",
            snap.canonical,
            reply_channels(&snap.identities, None).join(", ")
        )))
        }
    };
    if crate::automation::person::recipient(&snap, &channel).is_none() {
        return Err(ApiError::InvalidDefinition(format!(
            "channel: {} has no address on `{channel}`; reply on one of: {}",
            snap.canonical,
            reply_channels(&snap.identities, None).join(", ")
        )));
    }
    if let Some(window) = settings.window_secs(&channel) {
        let last_in = e
            .channel_of(&channel)
            .and_then(|code| c.and_then(|c| c.last_in_on(code)))
            .map(i64::from);
        let hours = window / 3600;
        match last_in {
            Some(t) if at - t <= window => {}
            Some(t) => {
                return Err(ApiError::OutsideServiceWindow(format!(
                    "outside_service_window: {channel} takes replies only within {hours} h of the customer's last message there, and {} last wrote on {channel} {} h ago; reply on another channel of theirs ({}) or send a template message",
                    snap.canonical,
                    (at - t) / 3600,
                    reply_channels(&snap.identities, None)
                        .into_iter()
                        .filter(|c| *c != channel)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            None => {
                return Err(ApiError::OutsideServiceWindow(format!(
                    "outside_service_window: {channel} takes replies only within {hours} h of the customer's last message there, and {} has not written on {channel}; reply on another channel of theirs or send a template message",
                    snap.canonical
                )))
            }
        }
    }
    Ok(Target {
        canonical: snap.canonical.clone(),
        channel,
        waiting_since: c.and_then(|c| c.unanswered_since()).map(i64::from),
    })
}

/// The newest comment of the person on `channel` among `offsets`: what a
/// bridge needs to answer in place.
fn reply_to(
    store: &mut dyn siyu_store::Store,
    offsets: &[u64],
    channel: &str,
) -> siyu_store::Result<Option<ReplyTo>> {
    let page = store.timeline(offsets, None, THREAD_PAGE)?;
    Ok(page
        .iter()
        .find(|s| s.event.event_type == EventType::Comment && s.event.channel.as_str() == channel)
        .map(|s| ReplyTo::of(s.event.id.as_deref(), channel, s.event.properties.as_ref())))
}

fn outbox_key(canonical: &str) -> Result<String, ApiError> {
    let nonce = siyu_console::accounts::random_bytes::<8>()
        .map_err(|e| ApiError::Internal(format!("random key: {e}")))?;
    Ok(format!(
        "c/{canonical}/{}",
        siyu_console::accounts::hex(&nonce)
    ))
}

async fn reply(
    State(state): State<AppState>,
    Path(person): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Replied>), ApiError> {
    let body: ReplyBody = parse_json(&body, "reply")?;
    let text = body.text.trim().to_string();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_REPLY_CHARS {
        return Err(ApiError::InvalidDefinition(format!(
            "text: 1 to {MAX_REPLY_CHARS} characters (got {chars}); split a long answer"
        )));
    }
    if let Some(ch) = &body.channel {
        if Channel::parse(ch).is_none() {
            return Err(ApiError::InvalidDefinition(format!(
                "channel: `{ch}` is not a channel name (wecom, wechat, sms, email, douyin …)"
            )));
        }
    }
    let operator = match (session_login(&state, &headers), body.operator) {
        (Some(login), _) => login,
        (None, Some(op)) if !op.is_empty() && op.chars().count() <= 128 => op,
        (None, Some(_)) => {
            return Err(ApiError::InvalidDefinition(
                "operator: 1 to 128 characters (the login of who is replying)".into(),
            ))
        }
        (None, None) => "api".to_string(),
    };
    if let Some(qr) = &body.quick_reply {
        crate::request::valid_id(qr, "quick_reply")?;
    }
    if let Some(ch) = &body.channel {
        if !state.0.automation.can_send_on(ch) {
            return Err(ApiError::InvalidDefinition(format!(
                "channel: no connector sends on `{ch}`; configure a connector for it (or [connectors.webhook], the bridge for every other channel) or reply on another channel"
            )));
        }
    }
    let settings = reply_settings(&state).await?;
    let at = now();
    let (target, offsets) = {
        let e = read_engine(&state);
        let t = reply_target(&e, &person, body.channel.as_deref(), &settings, at)?;
        let slot = resolve(&e, &person)?;
        (t, e.event_offsets(slot).unwrap_or_default())
    };
    if !state.0.automation.can_send_on(&target.channel) {
        return Err(ApiError::InvalidDefinition(format!(
            "channel: no connector sends on `{ch}`, the channel {who} last wrote on; configure a connector for it (or [connectors.webhook], the bridge for every other channel) or name another `channel`",
            ch = target.channel,
            who = target.canonical
        )));
    }
    let rules = crate::sensitive_words::current(&state).await?;
    let sensitive = crate::sensitive_words::hits(&rules, Speaker::Operator, &text);
    let key = outbox_key(&target.canonical)?;
    let response_secs = target.waiting_since.map(|s| (at - s).max(0));
    let archived = ArchivedMessage {
        key: key.clone(),
        ts: at,
        kind: "message".into(),
        identity: target.canonical.clone(),
        operator: operator.clone(),
        channel: target.channel.clone(),
        text: text.clone(),
        response_secs,
        flags: sensitive.iter().map(|h| h.id.clone()).collect(),
    };
    let channel = target.channel.clone();
    let quick_reply = body.quick_reply.clone();
    let reply_to = with_store(&state, move |store| {
        // Archived before it can be sent: nothing an operator sends is
        // missing from the archive.
        store.archive_message(&archived)?;
        if let Some(id) = quick_reply {
            store.increment_setting(&format!(
                "{}{id}",
                siyu_automation::quick_reply::USES_PREFIX
            ))?;
        }
        Ok(reply_to(store, &offsets, &channel)?)
    })
    .await?;
    let action = Action::Reply {
        key: key.clone(),
        channel: target.channel.clone(),
        text,
        operator,
        reply_to,
    };
    state
        .0
        .automation
        .enqueue(vec![(target.canonical.clone(), action, None)])
        .await
        .map_err(ApiError::Internal)?;
    // The verdict usually comes within milliseconds (a local connector);
    // a slow channel answers `pending`, and the thread shows the rest.
    let started = Instant::now();
    let (status, detail) = loop {
        let k = key.clone();
        let item = with_store(&state, move |store| Ok(store.outbox_get(&k)?)).await?;
        match item {
            Some(i) if i.status != OutboxStatus::Pending || started.elapsed() >= VERDICT_WAIT => {
                break (i.status.as_str().to_string(), i.detail)
            }
            None if started.elapsed() >= VERDICT_WAIT => break ("pending".into(), String::new()),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(Replied {
            key,
            person: target.canonical,
            channel: target.channel,
            status,
            detail,
            sensitive,
            response_secs,
        }),
    ))
}

// ---------- assign and resolve ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// An operator's login, or null to unassign.
    pub operator: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Assigned {
    pub person: String,
    pub operator: Option<String>,
    pub previous_operator: Option<String>,
}

fn event_for(canonical: &str, at: i64, ty: EventType) -> Result<Event, ApiError> {
    let identity = Identity::parse(canonical).map_err(|e| ApiError::Internal(e.to_string()))?;
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wecom").expect("valid channel name"));
    Ok(Event::new(at, identity, ty, channel))
}

async fn assign(
    State(state): State<AppState>,
    Path(person): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Assigned>, ApiError> {
    let body: AssignBody = parse_json(&body, "assignment")?;
    if let Some(op) = &body.operator {
        crate::request::valid_id(op, "operator")?;
        let key = siyu_growth::community::operators::operator_key(op);
        let known = with_store(&state, move |store| Ok(store.get_setting(&key)?.is_some())).await?;
        let login = format!("operator/{op}");
        let has_login = with_store(&state, move |store| {
            Ok(store.get_setting(&login)?.is_some())
        })
        .await?;
        if !known && !has_login {
            return Err(ApiError::InvalidDefinition(format!(
                "operator: no operator or console login `{op}`; GET /v1/operators lists them"
            )));
        }
    }
    let (canonical, previous) = {
        let e = read_engine(&state);
        let (slot, p) = person_of(&e, &person)?;
        (
            e.canonical_id(slot).to_string(),
            list::owner_of(p).map(str::to_string),
        )
    };
    let at = now();
    let mut ev = event_for(&canonical, at, EventType::Identify)?;
    let mut t = Traits::default();
    t.extra.insert("operator".into(), json!(body.operator));
    if let Some(old) = previous
        .as_ref()
        .filter(|o| Some(*o) != body.operator.as_ref())
    {
        t.extra.insert("previous_operator".into(), json!(old));
    }
    if let Some(by) = session_login(&state, &headers) {
        t.extra.insert("assigned_by".into(), json!(by));
    }
    ev.traits = Some(t);
    state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(Assigned {
        person: canonical,
        operator: body.operator,
        previous_operator: previous,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBody {
    /// What to do (1–200 characters).
    pub title: String,
    #[serde(default)]
    pub note: Option<String>,
    /// When it is due (epoch seconds).
    #[serde(default)]
    pub due: Option<i64>,
    /// Whose task (a login); default: whoever asks, else the person's owner.
    #[serde(default)]
    pub operator: Option<String>,
}

async fn add_task(
    State(state): State<AppState>,
    Path(person): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<siyu_store::TaskRow>), ApiError> {
    let body: TaskBody = parse_json(&body, "task")?;
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::InvalidDefinition(
            "title: 1 to 200 characters".into(),
        ));
    }
    let note = body.note.unwrap_or_default();
    if note.chars().count() > 2_000 {
        return Err(ApiError::InvalidDefinition(
            "note: at most 2000 characters".into(),
        ));
    }
    if let Some(op) = &body.operator {
        crate::request::valid_id(op, "operator")?;
    }
    let (canonical, owner) = {
        let e = read_engine(&state);
        let slot = resolve(&e, &person)?;
        (
            e.canonical_id(slot).to_string(),
            e.person(slot).and_then(list::owner_of).map(str::to_string),
        )
    };
    let at = now();
    let nonce = siyu_console::accounts::random_bytes::<6>()
        .map_err(|e| ApiError::Internal(format!("random key: {e}")))?;
    let task = siyu_store::TaskRow {
        key: format!(
            "conversation/{canonical}/{}",
            siyu_console::accounts::hex(&nonce)
        ),
        created_at: at,
        identity: canonical,
        journey: None,
        operator: body
            .operator
            .or_else(|| session_login(&state, &headers))
            .or(owner),
        title: title.to_string(),
        note,
        due: body.due,
        done_at: None,
    };
    let row = task.clone();
    with_store(&state, move |store| {
        store.automation_commit(&siyu_store::AutomationCommit {
            tasks: vec![row],
            ..Default::default()
        })?;
        Ok(())
    })
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(task)))
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Resolved {
    pub person: String,
    pub resolved_at: i64,
    /// Seconds since the customer's oldest message after the last resolve
    /// (None: nothing was open).
    pub resolution_secs: Option<i64>,
}

/// The optional body of a resolve.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Who resolved it, when the caller is an API key (a console
    /// session's login otherwise).
    #[serde(default)]
    pub operator: Option<String>,
}

async fn resolve_conversation(
    State(state): State<AppState>,
    Path(person): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Resolved>, ApiError> {
    let body: ResolveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveBody { operator: None }
    } else {
        parse_json(&body, "resolve")?
    };
    if let Some(op) = &body.operator {
        if op.is_empty() || op.chars().count() > 128 {
            return Err(ApiError::InvalidDefinition(
                "operator: 1 to 128 characters (the login of who resolved it)".into(),
            ));
        }
    }
    let (canonical, open_since) = {
        let e = read_engine(&state);
        let slot = resolve(&e, &person)?;
        let c = e.person(slot).and_then(|p| p.conversation());
        (
            e.canonical_id(slot).to_string(),
            c.and_then(|c| c.open_since()).map(i64::from),
        )
    };
    let at = now();
    let operator = session_login(&state, &headers)
        .or(body.operator)
        .unwrap_or_else(|| "api".into());
    let resolution_secs = open_since.map(|s| (at - s).max(0));
    let id = format!("resolved/{canonical}/{at}");
    let mut ev = event_for(&canonical, at, EventType::Custom)?;
    ev.name = Some(RESOLVED_EVENT.to_string());
    ev.id = Some(id.clone());
    let mut props = serde_json::Map::new();
    props.insert("operator".into(), json!(operator));
    if let Some(s) = resolution_secs {
        props.insert("resolution_secs".into(), json!(s));
    }
    ev.properties = Some(props);
    let archived = ArchivedMessage {
        key: id,
        ts: at,
        kind: "resolution".into(),
        identity: canonical.clone(),
        operator,
        channel: String::new(),
        text: String::new(),
        response_secs: resolution_secs,
        flags: Vec::new(),
    };
    with_store(&state, move |store| Ok(store.archive_message(&archived)?)).await?;
    state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(Resolved {
        person: canonical,
        resolved_at: at,
        resolution_secs,
    }))
}

// ---------- archive and report ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveParams {
    pub operator: Option<String>,
    /// Any identity of the person.
    pub person: Option<String>,
    /// The text contains this.
    pub q: Option<String>,
    pub flagged: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// message (default) | resolution
    pub kind: Option<String>,
    pub limit: Option<String>,
    /// The `cursor` of the previous page.
    pub before: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ArchiveEntry {
    #[serde(flatten)]
    pub message: ArchivedMessage,
    pub sensitive: Vec<Hit>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct ArchivePage {
    pub messages: Vec<ArchiveEntry>,
    /// Pass as `before` for the next (older) page; null at the end.
    pub cursor: Option<String>,
}

fn range_of(
    state: &AppState,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let tz = state
        .0
        .time_zone
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let r = DateRange::parse(from.as_deref(), to.as_deref(), &tz).map_err(bad)?;
    Ok((r.from, r.to))
}

async fn archive(
    State(state): State<AppState>,
    Query(p): Query<ArchiveParams>,
) -> Result<Json<ArchivePage>, ApiError> {
    let limit = parse_num(&p.limit, "limit", 1, 500)?.unwrap_or(100) as usize;
    let (from, to) = range_of(&state, &p.from, &p.to)?;
    let kind = match p.kind.as_deref() {
        None | Some("message") => "message",
        Some("resolution") => "resolution",
        Some(o) => return Err(bad(format!("kind: message or resolution, not `{o}`"))),
    };
    let before = match p.before.as_deref() {
        None => None,
        Some(c) => {
            let (ts, key) = c
                .split_once('|')
                .and_then(|(t, k)| Some((t.parse::<i64>().ok()?, k.to_string())))
                .ok_or_else(|| bad("before: the `cursor` a previous page answered"))?;
            Some((ts, key))
        }
    };
    let identities = match &p.person {
        None => None,
        Some(id) if id.is_empty() || id.len() > 512 => {
            return Err(bad("person: a full identity such as `wecom:wm0001`"))
        }
        Some(id) => {
            let e = read_engine(&state);
            let slot = resolve(&e, id)?;
            Some(e.identities_of(slot))
        }
    };
    if p.q
        .as_ref()
        .is_some_and(|q| q.is_empty() || q.chars().count() > 200)
    {
        return Err(bad("q: 1 to 200 characters"));
    }
    let query = ArchiveQuery {
        kind: Some(kind.into()),
        operator: text_param(&p.operator, "operator")?.map(str::to_string),
        identities,
        text: p.q.clone(),
        flagged: parse_bool(&p.flagged, "flagged")?.unwrap_or(false),
        from,
        to,
        before,
        limit,
    };
    let rows = with_store(&state, move |store| Ok(store.archived_messages(&query)?)).await?;
    let rules = crate::sensitive_words::current(&state).await?;
    let cursor = (rows.len() == limit)
        .then(|| rows.last().map(|m| format!("{}|{}", m.ts, m.key)))
        .flatten();
    Ok(Json(ArchivePage {
        messages: rows
            .into_iter()
            .map(|m| ArchiveEntry {
                sensitive: crate::sensitive_words::hits_of(&rules, &m.flags),
                message: m,
            })
            .collect(),
        cursor,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One operator's row of the report.
#[derive(Serialize, schemars::JsonSchema, Default)]
pub struct OperatorReport {
    pub operator: String,
    pub messages: u64,
    /// Distinct persons they wrote to.
    pub persons: u64,
    /// Replies that answered a waiting customer.
    pub first_responses: u64,
    pub first_response_median_secs: Option<i64>,
    pub first_response_p90_secs: Option<i64>,
    pub resolved: u64,
    pub resolution_median_secs: Option<i64>,
    /// Their messages that hit a sensitive-word rule.
    pub sensitive_hits: u64,
    /// Persons they own who are waiting for a reply now.
    pub unanswered_now: u64,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Report {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub operators: Vec<OperatorReport>,
}

fn quantile(v: &mut [i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    Some(v[i])
}

/// One operator's report while it is being counted.
struct Acc {
    r: OperatorReport,
    persons: HashSet<String>,
    firsts: Vec<i64>,
    resolutions: Vec<i64>,
}

fn acc<'a>(by: &'a mut BTreeMap<String, Acc>, operator: &str) -> &'a mut Acc {
    by.entry(operator.to_string()).or_insert_with(|| Acc {
        r: OperatorReport {
            operator: operator.to_string(),
            ..Default::default()
        },
        persons: HashSet::new(),
        firsts: Vec::new(),
        resolutions: Vec::new(),
    })
}

/// Archive rows read per page while building the report.
const REPORT_PAGE: usize = 10_000;

async fn report(
    State(state): State<AppState>,
    Query(p): Query<ReportParams>,
) -> Result<Json<Report>, ApiError> {
    let (from, to) = range_of(&state, &p.from, &p.to)?;
    let from = from.or(Some(now() - 30 * 86_400));
    let rows = with_store(&state, move |store| {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = store.archived_messages(&ArchiveQuery {
                from,
                to,
                before: before.clone(),
                limit: REPORT_PAGE,
                ..Default::default()
            })?;
            let full = page.len() == REPORT_PAGE;
            before = page.last().map(|m| (m.ts, m.key.clone()));
            all.extend(page);
            if !full {
                break;
            }
        }
        Ok(all)
    })
    .await?;
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    for m in rows {
        let a = acc(&mut by, &m.operator);
        if m.kind == "resolution" {
            a.r.resolved += 1;
            if let Some(s) = m.response_secs {
                a.resolutions.push(s);
            }
        } else {
            a.r.messages += 1;
            a.persons.insert(m.identity.clone());
            if let Some(s) = m.response_secs {
                a.firsts.push(s);
            }
            if !m.flags.is_empty() {
                a.r.sensitive_hits += 1;
            }
        }
    }
    let waiting: HashMap<String, u64> = {
        let e = read_engine(&state);
        e.fold_persons(
            |it| {
                let mut m: HashMap<String, u64> = HashMap::new();
                for (_, p) in it {
                    if p.conversation()
                        .is_some_and(|c| c.unanswered_since().is_some())
                    {
                        if let Some(o) = list::owner_of(p) {
                            *m.entry(o.to_string()).or_default() += 1;
                        }
                    }
                }
                m
            },
            |mut a, b| {
                for (k, v) in b {
                    *a.entry(k).or_default() += v;
                }
                a
            },
        )
    };
    for (op, n) in waiting {
        acc(&mut by, &op).r.unanswered_now = n;
    }
    let operators = by
        .into_values()
        .map(|mut a| {
            a.r.persons = a.persons.len() as u64;
            a.r.first_responses = a.firsts.len() as u64;
            a.r.first_response_median_secs = quantile(&mut a.firsts, 0.5);
            a.r.first_response_p90_secs = quantile(&mut a.firsts, 0.9);
            a.r.resolution_median_secs = quantile(&mut a.resolutions, 0.5);
            a.r
        })
        .collect();
    Ok(Json(Report {
        from,
        to,
        operators,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_channels_put_the_last_one_first_and_phones_as_sms() {
        let ids = vec![
            "douyin:u1".to_string(),
            "phone:13800000000".to_string(),
            "wecom:wm1".to_string(),
            format!("{}:abc", crate::privacy::PHONE_CHANNEL),
        ];
        assert_eq!(
            reply_channels(&ids, Some("wecom")),
            vec!["wecom", "douyin", "sms"]
        );
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        assert_eq!(quantile(&mut [], 0.5), None);
        assert_eq!(quantile(&mut [30, 10, 20], 0.5), Some(20));
        assert_eq!(quantile(&mut [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), Some(9));
    }
}
