//! The automation executor: one thread that turns events, segment changes
//! and the clock into journey steps and messages, with every send passing
//! the guardrails (`siyu_automation::guard`) and every side effect going
//! through the outbox (`siyu_store::automation`).
//!
//! ```text
//! writer (applied events, segment changes) ─┐
//! API (mass sends, consent, retries) ───────┼─► executor thread
//! timers (waits, timeouts, sweeps) ─────────┘     │ machine::run → actions
//!                                                 │ ONE store commit: enrollments + outbox items
//!                                                 ▼
//!                               deliver each due outbox item:
//!                                 tag / trait   → an event appended through the writer (id = key)
//!                                 send          → guard::decide → render → connector (Idempotency-Key)
//!                                 webhook       → connector
//!                               verdict committed on the item (done / suppressed+why / dead)
//! ```
//!
//! Crash safety: state and effects commit together, effects are marked
//! done only after they happened, and every effect carries its step
//! execution's key. After a SIGKILL the pending items are delivered again
//! under the same key: events dedupe on their id in the log, connectors
//! send the key as `Idempotency-Key`, and an item already done is never
//! picked up again — no step skipped, no effect repeated.
//!
//! History never triggers a message: an event triggers journeys,
//! auto-replies and segment-entry journeys only when it is fresh (at most
//! the workspace's `trigger_max_age_secs` older than the server clock) and
//! not a bulk import's backfill (`crate::backfill`); what is skipped is
//! counted in `/metrics` and, per journey, in its report. Consent is still
//! read from history (an old opt-out still counts).

mod lead;
pub mod person;

use crate::metrics::Metrics;
use crate::quarantine::{readable, Broken, Quarantine};
use crate::writer::Command;
use person::{recipient, PersonSnapshot};
use siyu_automation::guard::{
    self, Consent, ConsentEntry, ConsentSource, Decision, MessageClass, Policy, SendKind,
    SendLedger, SendRecord,
};
use siyu_automation::history::{history_skip, HistorySkip};
use siyu_automation::journey::{Catalog, Compiled, CompiledTrigger, Journey};
use siyu_automation::keyword::{self, RuleSet};
use siyu_automation::machine::{
    self, Action, Enrollment, EventView, Input, LastEntry, PersonView, ReplyTo,
};
use siyu_automation::schedule::{self, Tz};
use siyu_automation::template::{self, Template};
use siyu_connectors::{Delivery, DeliverySink, Dispatcher, OutboundMessage};
use siyu_domain::intent::Intent;
use siyu_domain::{Channel, Event, EventType, Identity, Traits};
use siyu_engine::Engine;
use siyu_store::{
    AutomationCommit, ConsentRow, EnrollmentRow, OutboxItem, OutboxStatus, OutboxUpdate, Store,
    TaskRow,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Settings keys (one concept, one place).
pub const JOURNEY_PREFIX: &str = "journey/";
pub const TEMPLATE_PREFIX: &str = "template/";
pub const RULES_KEY: &str = "autoreply/rules";
pub const POLICY_KEY: &str = "guardrails/policy";
pub const LINK_SECRET_KEY: &str = "automation/link_secret";
/// Per journey: its triggers skipped as history, by reason (`{"stale": n, "backfill": n}`).
pub const SKIPPED_PREFIX: &str = "journey_skipped/";
/// Settings other nodes write for the leading executor (`lead.rs`).
pub const INBOX_PREFIX: &str = "cluster/automation/";

/// Outbox items delivered per pass.
const DELIVER_BATCH: usize = 2000;
/// How often the sweep triggers (schedules, birthdays, silence) run.
const SWEEP_EVERY: i64 = 60;
/// Mass-send members enrolled into the outbox per commit.
const MASS_CHUNK: usize = 5000;
/// The most of a sent message's text its `message_sent` event keeps:
/// well inside the wire format's 16 KiB of properties, a re-import or an
/// export of it reads back.
const SENT_TEXT_BYTES: usize = 4096;

/// An event the writer applied.
pub struct AppliedEvent {
    pub offset: u64,
    pub event: Event,
    /// Appended by a bulk import that did not ask for triggers
    /// (`crate::backfill`): it triggers nothing.
    pub backfill: bool,
}

/// The event behind a segment change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cause {
    pub ts: i64,
    pub backfill: bool,
    /// The event's log offset: the same change on every node, so a
    /// segment-entry journey it triggers is entered once, whichever node
    /// leads when it is acted on.
    pub offset: u64,
}

/// A segment entry or exit the writer applied.
pub struct AppliedChange {
    pub segment: String,
    pub canonical: String,
    pub entered: bool,
    /// The event that caused it; None for the clock (a window lapsed) or
    /// a new definition.
    pub cause: Option<Cause>,
}

/// What reaches the executor.
pub enum AutoInput {
    /// Events the writer applied and the segment entries/exits they caused.
    Applied {
        events: Vec<AppliedEvent>,
        changes: Vec<AppliedChange>,
    },
    /// A connector's verdict on an outbox item; `detail` is what the
    /// done item says (a WeCom group-send task still to be confirmed:
    /// `siyu_connectors::wecom::send_result::awaiting`).
    Delivered {
        key: String,
        attempts: u32,
        /// An SMS's `SerialNo`: what its delivery receipt will name.
        sms_sid: Option<String>,
        detail: String,
    },
    /// What a channel later said became of delivered items (WeCom
    /// group-send results, `crate::wecom_ops`): each becomes done with
    /// its detail or dead with its reason; answers once committed.
    Reported(Vec<SendReport>, oneshot::Sender<Result<(), String>>),
    Dead {
        key: String,
        error: String,
        attempts: u32,
    },
    /// Enroll these persons (identities) into a journey now, as an
    /// auto-reply rule's `enroll_journey` does: its re-entry rule
    /// decides, `occurrence` keys the entries. Answers how many entered
    /// once committed.
    Enroll {
        journey: String,
        identities: Vec<String>,
        occurrence: String,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Stop: commit what is queued and return (server shutdown).
    Shutdown,
    /// A connector attempt failed and will be retried.
    Retrying {
        key: String,
        detail: String,
    },
    /// Journeys, templates, rules or the policy changed in settings.
    Reload,
    Mass(MassSend, oneshot::Sender<Result<u64, String>>),
    Consent(ConsentRow, oneshot::Sender<Result<(), String>>),
    Retry(String, oneshot::Sender<Result<bool, String>>),
    /// Queue side effects from outside journeys (group posts, rewards):
    /// (identity or `group:<id>`, action, journey/campaign label).
    Enqueue(
        Vec<(String, Action, Option<String>)>,
        oneshot::Sender<Result<(), String>>,
    ),
    /// An input sent while handling a request (or a writer commit for
    /// one): handled in that request's span (`crate::trace`), so the
    /// executor's log lines carry its id. Made by [`AutoInput::traced`].
    Traced(crate::trace::RequestId, Box<AutoInput>),
    /// A journey was archived with `?enrollments=exit`: reload the
    /// definitions (it enrolls nobody), end its running enrollments now
    /// and cancel their pending outbox items; answers once committed.
    ExitJourney(String, oneshot::Sender<Result<Exited, String>>),
    /// This node took the automation lease under this fencing token, or
    /// (`None`) stopped holding it (`crate::leader`).
    Lead(Option<u64>),
    /// Another node committed work for the leader (outbox items, consent,
    /// a journey to exit): the follower saw its signal (`lead::INBOX_PREFIX`).
    Inbox,
}

impl AutoInput {
    /// `input` as the current request's work (`crate::trace::current`),
    /// or as it is when no request is being handled.
    pub fn traced(input: AutoInput) -> AutoInput {
        match crate::trace::current() {
            Some(request) => AutoInput::Traced(request, Box::new(input)),
            None => input,
        }
    }
}

/// What [`AutoInput::ExitJourney`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Exited {
    /// Running enrollments ended.
    pub enrollments: usize,
    /// Pending outbox items (waiting sends and side effects) cancelled.
    pub cancelled: usize,
}

/// A channel's later word on a delivered outbox item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    pub key: String,
    /// The item's attempts (kept).
    pub attempts: u32,
    /// `Ok(detail)`: delivered; `Err(reason)`: failed.
    pub outcome: Result<String, String>,
}

/// Why an enrollment ended or an outbox item was cancelled by
/// [`AutoInput::ExitJourney`] (the enrollment's reason, the item's detail).
pub const EXITED_BY_ARCHIVE: &str = "journey archived: enrollments exited";

/// A one-off send to a segment's members (or listed identities).
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MassSend {
    /// Unique per campaign send: re-posting the same id sends nothing new.
    pub id: String,
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub identities: Vec<String>,
    pub template: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub class: Option<MessageClass>,
    #[serde(default = "mass")]
    pub kind: SendKind,
}

fn mass() -> SendKind {
    SendKind::Mass
}

/// The sender side, held by the server and the writer.
#[derive(Clone)]
pub struct AutomationHandle {
    pub tx: Sender<AutoInput>,
    /// The connectors' dispatcher (for its counters).
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// Shared with the writer and the executor (see `ExecutorParts`).
    pub wants_all: Arc<std::sync::atomic::AtomicBool>,
}

impl AutomationHandle {
    pub async fn mass_send(&self, m: MassSend) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Mass(m, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }
    pub async fn consent(&self, row: ConsentRow) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Consent(row, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }
    pub async fn retry(&self, key: String) -> Result<bool, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Retry(key, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }
    /// Records what a channel later said about delivered items.
    pub async fn report(&self, reports: Vec<SendReport>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Reported(reports, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }

    /// Queues effects through the outbox (idempotent on each action's key).
    pub async fn enqueue(
        &self,
        items: Vec<(String, Action, Option<String>)>,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Enqueue(items, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }

    /// Posts a template to a community group through the guardrails
    /// (`group_posts_per_day`); `key` makes it idempotent.
    pub async fn group_post(
        &self,
        key: String,
        group: String,
        channel: String,
        template: String,
        data: serde_json::Value,
    ) -> Result<(), String> {
        let identity = format!("group:{group}");
        self.enqueue(vec![(
            identity,
            Action::GroupPost {
                key,
                group,
                channel,
                template,
                data,
            },
            None,
        )])
        .await
    }

    /// Enrolls persons into a journey (see [`AutoInput::Enroll`]).
    pub async fn enroll(
        &self,
        journey: String,
        identities: Vec<String>,
        occurrence: String,
    ) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::Enroll {
                journey,
                identities,
                occurrence,
                reply: tx,
            }))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }

    /// Archives-with-exit a journey (see [`AutoInput::ExitJourney`]).
    pub async fn exit_journey(&self, journey: String) -> Result<Exited, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AutoInput::traced(AutoInput::ExitJourney(journey, tx)))
            .map_err(|_| "automation stopped".to_string())?;
        rx.await.map_err(|_| "automation stopped".to_string())?
    }

    /// Per-channel counters: queued, in flight, delivered, retried, dead
    /// (`None` without a dispatcher).
    pub fn dispatcher_stats(&self) -> Option<siyu_connectors::DispatcherStats> {
        self.dispatcher.as_ref().map(|d| d.stats())
    }

    /// Whether a message on `channel` has a connector to go out through:
    /// its own, or the generic webhook that bridges every other channel
    /// (the executor's `dispatch` makes that same choice).
    pub fn can_send_on(&self, channel: &str) -> bool {
        self.dispatcher
            .as_ref()
            .is_some_and(|d| d.has_channel(channel) || d.has_channel("webhook"))
    }

    pub fn reload(&self) {
        // Until the executor has looked, assume a journey needs every
        // event: none may slip past between the save and the reload.
        self.wants_all.store(true, Ordering::Relaxed);
        let _ = self.tx.send(AutoInput::traced(AutoInput::Reload));
    }
}

/// Connector verdicts back into the executor's queue.
struct Sink(Sender<AutoInput>);

impl DeliverySink for Sink {
    fn delivered(&self, msg: &OutboundMessage, d: &Delivery, attempts: u32) {
        let _ = self.0.send(AutoInput::Delivered {
            key: msg.idempotency_key.clone(),
            attempts,
            sms_sid: d.remote_id.clone().filter(|_| msg.channel == "sms"),
            detail: siyu_connectors::wecom::send_result::awaiting(msg, d).unwrap_or_default(),
        });
    }
    fn dead_lettered(&self, msg: &OutboundMessage, error: &str, attempts: u32) {
        let _ = self.0.send(AutoInput::Dead {
            key: msg.idempotency_key.clone(),
            error: error.to_string(),
            attempts,
        });
    }
    fn retrying(&self, msg: &OutboundMessage, error: &str, attempt: u32, next_in: Duration) {
        let _ = self.0.send(AutoInput::Retrying {
            key: msg.idempotency_key.clone(),
            detail: format!(
                "attempt {attempt} failed: {error}; next in {} ms",
                next_in.as_millis()
            ),
        });
    }
}

/// The settings key of a sent SMS's `SerialNo` (`sid` in Tencent Cloud
/// SMS's receipts) → its outbox key.
pub fn sms_sid_key(sid: &str) -> String {
    format!("sms/sid/{sid}")
}

/// The value of an [`sms_sid_key`] row: the outbox key's `/`-separated
/// segments, so an erasure, which replaces every JSON string equal to one
/// of the person's identities (`siyu_store::pseudonym`), leaves no
/// identity in it (keys like `m/<send>/<identity>` name one).
pub fn sms_sid_value(key: &str) -> serde_json::Value {
    serde_json::Value::Array(
        key.split('/')
            .map(|s| serde_json::Value::String(s.to_string()))
            .collect(),
    )
}

/// The outbox key an [`sms_sid_value`] holds.
pub fn sms_sid_outbox_key(v: &serde_json::Value) -> Option<String> {
    let parts: Option<Vec<&str>> = v.as_array()?.iter().map(|p| p.as_str()).collect();
    Some(parts?.join("/"))
}

/// How long after a follower's last message an Official Account may send
/// it customer-service messages (WeChat's rule; errcode 45015 after).
pub const WECHAT_WINDOW_SECS: i64 = 48 * 3600;

/// A sink for [`Dispatcher::new`] that feeds verdicts to the executor.
pub fn sink(tx: Sender<AutoInput>) -> Arc<dyn DeliverySink> {
    Arc::new(Sink(tx))
}

/// Everything saved in settings that the executor runs on.
#[derive(Default)]
pub struct Definitions {
    /// Every version of every journey (persons stay on the one they entered).
    pub journeys: HashMap<String, BTreeMap<u32, Arc<Compiled>>>,
    pub templates: HashMap<String, (Template, template::Compiled)>,
    pub rules: Option<RuleSet>,
    pub policy: Policy,
    /// What a live message's intent does by itself (`crate::intents`).
    pub intents: crate::intents::IntentSettings,
    /// Stored definitions that were skipped (see `quarantine`).
    pub broken: Vec<Broken>,
}

/// The settings keys and prefixes [`load_definitions`] loads (and
/// quarantines under).
pub const DEFINITION_KEYS: [&str; 5] = [
    TEMPLATE_PREFIX,
    JOURNEY_PREFIX,
    RULES_KEY,
    POLICY_KEY,
    crate::intents::KEY,
];

impl Definitions {
    pub fn current(&self, journey: &str) -> Option<&Arc<Compiled>> {
        self.journeys
            .get(journey)
            .and_then(|v| v.values().next_back())
    }
}

/// Names of the saved templates (what definitions may refer to).
pub fn template_names(store: &mut dyn Store) -> siyu_store::Result<HashSet<String>> {
    // An unreadable (quarantined) template cannot be sent: not listed.
    Ok(store
        .list_settings_each(TEMPLATE_PREFIX)?
        .into_iter()
        .filter(|(_, v)| v.is_ok())
        .filter_map(|(k, _)| k.strip_prefix(TEMPLATE_PREFIX).map(str::to_string))
        .collect())
}

/// Checks references against what is saved (for journeys at save time).
pub struct StoreCatalog<'a> {
    pub segments: &'a HashSet<String>,
    pub templates: &'a HashSet<String>,
}

impl Catalog for StoreCatalog<'_> {
    fn segment_exists(&self, name: &str) -> bool {
        self.segments.contains(name)
    }
    fn template_exists(&self, name: &str) -> bool {
        self.templates.contains(name)
    }
}

/// Loads every definition from settings. A stored definition that cannot
/// be read or no longer compiles (a segment deleted since) is logged,
/// skipped and listed in `broken`: it never stops the executor.
pub fn load_definitions(store: &mut dyn Store, engine: &Engine) -> anyhow::Result<Definitions> {
    let mut defs = Definitions::default();
    let (templates, unreadable) = readable(store.list_settings_each(TEMPLATE_PREFIX)?);
    defs.broken.extend(unreadable);
    for (key, value) in templates {
        match serde_json::from_value::<Template>(value)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let c = template::compile(&t).map_err(|e| e.to_string())?;
                Ok((t, c))
            }) {
            Ok((t, c)) => {
                defs.templates.insert(t.name.clone(), (t, c));
            }
            Err(e) => defs.broken.push(Broken::skipped(&key, e)),
        }
    }
    let segments: HashSet<String> = engine
        .live_segments()
        .segments()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let templates: HashSet<String> = defs.templates.keys().cloned().collect();
    let catalog = StoreCatalog {
        segments: &segments,
        templates: &templates,
    };
    let (journeys, unreadable) = readable(store.list_settings_each(JOURNEY_PREFIX)?);
    defs.broken.extend(unreadable);
    // Journeys whose latest version is archived: a version of theirs that
    // no longer compiles (a segment or template deleted since, which is
    // allowed once nobody runs it) is history, not a fault.
    let mut latest: HashMap<String, (u32, bool)> = HashMap::new();
    for (key, value) in &journeys {
        let Some((name, version)) = key
            .strip_prefix(JOURNEY_PREFIX)
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(n, v)| Some((n, v.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let archived = value.get("archived") == Some(&serde_json::Value::Bool(true));
        let entry = latest
            .entry(name.to_string())
            .or_insert((version, archived));
        if version >= entry.0 {
            *entry = (version, archived);
        }
    }
    for (key, value) in journeys {
        // journey/<name>/<version>
        let Some(version) = key.rsplit('/').next().and_then(|v| v.parse::<u32>().ok()) else {
            continue;
        };
        match serde_json::from_value::<Journey>(value) {
            Ok(j) => match (j.name.clone(), j.compile(version, &catalog)) {
                (_, Ok(c)) => {
                    defs.journeys
                        .entry(c.def.name.clone())
                        .or_default()
                        .insert(version, Arc::new(c));
                }
                (name, Err(_)) if latest.get(&name).is_some_and(|(_, archived)| *archived) => {
                    tracing::debug!(%key, "a version of an archived journey no longer compiles; left out");
                }
                (_, Err(errs)) => defs.broken.push(Broken::skipped(
                    &key,
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
            },
            Err(e) => defs.broken.push(Broken::skipped(&key, e)),
        }
    }
    match readable_setting(store, RULES_KEY)? {
        Ok(None) => {}
        Ok(Some(v)) => match serde_json::from_value(v)
            .map_err(|e| e.to_string())
            .and_then(|rules| RuleSet::compile(rules).map_err(|e| e.to_string()))
        {
            Ok(r) => defs.rules = Some(r),
            Err(e) => defs.broken.push(Broken::skipped(RULES_KEY, e)),
        },
        Err(broken) => defs.broken.push(broken),
    }
    match readable_setting(store, crate::intents::KEY)? {
        Ok(v) => defs.intents = crate::intents::IntentSettings::from_setting(v),
        Err(broken) => defs.broken.push(broken),
    }
    // A policy naming no default_timezone follows the workspace time zone.
    let tz = crate::zone::load_time_zone(store)?;
    if let Ok(p) = crate::zone::policy_in_zone(None, &tz) {
        defs.policy = p;
    }
    match readable_setting(store, POLICY_KEY)? {
        Ok(None) => {}
        Ok(Some(v)) => match crate::zone::policy_in_zone(Some(v), &tz) {
            Ok(p) => defs.policy = p,
            // As before: sends go on under the default policy.
            Err(e) => defs.broken.push(Broken::skipped(
                POLICY_KEY,
                format!("{e}; the default policy applies"),
            )),
        },
        Err(broken) => defs.broken.push(broken),
    }
    Ok(defs)
}

/// One setting, or its quarantine record when its row cannot be read;
/// only a failing store is an error.
fn readable_setting(
    store: &mut dyn Store,
    key: &str,
) -> siyu_store::Result<Result<Option<serde_json::Value>, Broken>> {
    match store.get_setting(key) {
        Ok(v) => Ok(Ok(v)),
        Err(e @ siyu_store::StoreError::Corrupt(_)) => Ok(Err(Broken::skipped(key, e))),
        Err(e) => Err(e),
    }
}

/// What an executor runs with.
pub struct ExecutorParts {
    /// Its own connection.
    pub store: Box<dyn Store>,
    pub engine: Arc<RwLock<Engine>>,
    /// The writer's queue, for events the automation records.
    pub writer: std::sync::mpsc::Sender<Command>,
    pub dispatcher: Option<Arc<Dispatcher>>,
    pub metrics: Arc<Metrics>,
    pub clock: fn() -> i64,
    pub public_url: String,
    pub link_secret: Vec<u8>,
    /// Tells the writer whether every event is needed (any journey).
    pub wants_all: Arc<std::sync::atomic::AtomicBool>,
    /// Where skipped stored definitions are reported.
    pub quarantine: Arc<Quarantine>,
    /// Oldest an event may be (seconds, server clock) and still trigger.
    pub trigger_max_age_secs: u64,
    /// This node's view of the automation lease (`crate::leader`): if it
    /// holds it at start, the executor leads from its first input, else
    /// it stands by until told to lead; a fenced commit is reported to it.
    pub leadership: Arc<crate::leader::Leadership>,
    /// Every `wecom` send is a WeCom group-send (`add_msg_template`: no
    /// `open_kfid` is configured for direct messages), so every one counts
    /// against WeCom's one group message per customer per day
    /// (`mass_per_local_day`), whatever kind the step asked for.
    pub wecom_sends_are_mass: bool,
}

/// Events the executor reads even with no journey: opt-outs (the consent
/// ledger) and inbound texts (unsubscribe replies, keyword auto-replies).
pub fn always_wanted(e: &Event) -> bool {
    matches!(e.event_type, EventType::OptOut | EventType::Comment)
        || (e.event_type == EventType::Custom && e.name.as_deref() == Some("message"))
        || crate::wecom_tags::tags_changed_in_siyu(e)
}

pub struct Executor {
    pub store: Box<dyn Store>,
    pub engine: Arc<RwLock<Engine>>,
    pub writer: std::sync::mpsc::Sender<Command>,
    pub dispatcher: Option<Arc<Dispatcher>>,
    pub metrics: Arc<Metrics>,
    pub clock: fn() -> i64,
    /// Base URL for unsubscribe links in messages.
    pub public_url: String,
    /// Secret for signing unsubscribe links.
    pub link_secret: Vec<u8>,
    defs: Definitions,
    /// Where skipped stored definitions are reported on every (re)load.
    quarantine: Arc<Quarantine>,
    active: HashMap<u64, Enrollment>,
    /// Active enrollments per identity (for wait-for-event).
    by_identity: HashMap<String, Vec<u64>>,
    timers: BinaryHeap<Reverse<(i64, u64)>>,
    /// Last entry per (journey, identity), for re-entry rules.
    entries: HashMap<(String, String), LastEntry>,
    next_id: u64,
    ledger: SendLedger,
    consent: HashMap<String, Vec<ConsentEntry>>,
    /// Outbox keys handed to a connector and not yet answered.
    in_flight: HashMap<String, OutboxItem>,
    /// The text of each message in flight: what its `message_sent` event
    /// records once delivered (the person's timeline shows what was sent).
    in_flight_text: HashMap<String, String>,
    /// Pending items to deliver now, in order (the store has them too:
    /// after a restart they are loaded from it).
    ready: std::collections::VecDeque<OutboxItem>,
    /// Pending items with a later `not_before` (quiet hours, back-pressure).
    delayed: BinaryHeap<Reverse<(i64, String)>>,
    delayed_items: HashMap<String, OutboxItem>,
    /// `message_sent` events of confirmed sends, appended once per pass.
    sent_events: Vec<Event>,
    wants_all: Arc<std::sync::atomic::AtomicBool>,
    last_sweep: i64,
    commit: AutomationCommit,
    trigger_max_age: i64,
    /// Journey triggers skipped as history since the last flush, by
    /// (journey, reason); added to the journey's settings row on flush.
    skipped_history: BTreeMap<(String, &'static str), u64>,
    /// When each auto-reply rule last fired per person: (rule id,
    /// canonical id) → server time.
    replied: HashMap<(String, String), i64>,
    /// Lead tasks this executor made or found open: (rule id, canonical
    /// id) → task key. Checked against the store before being trusted
    /// (an operator may have closed the task).
    open_leads: HashMap<(String, String), String>,
    /// When a hot intent last made a lead task, per (intent, person)
    /// (the message's time; at start, the open ones' creation): with the
    /// tasks' keys (one per window-long period), at most one task per
    /// person and intent within `lead_window_secs`.
    intent_leads: HashMap<(Intent, String), i64>,
    /// Set while this node leads (`crate::leader`): every commit carries
    /// it. `None`: standing by — no timers, sweeps, triggers or
    /// deliveries; requests' work is committed for the leader to pick up.
    fence: Option<siyu_store::Fence>,
    leadership: Arc<crate::leader::Leadership>,
    /// See [`ExecutorParts::wecom_sends_are_mass`].
    wecom_sends_are_mass: bool,
    /// The writer's applied inputs of the last `lead::RECENT_SECS` (server
    /// time received), leading or not: replayed on taking over, so what
    /// the old leader had not committed still triggers (`lead.rs`).
    recent: std::collections::VecDeque<(i64, Arc<AppliedInputs>)>,
    /// Set while `recent` is replayed: an enrollment whose entry key the
    /// store holds already is not made again (its steps' keys would
    /// differ: they carry the enrollment id).
    replaying: bool,
}

/// One applied input's events and segment changes.
type AppliedInputs = (Vec<AppliedEvent>, Vec<AppliedChange>);

/// The fields of an [`Action::ApiCall`] (`Executor::api_call`).
struct ApiCallParts {
    key: String,
    channel: String,
    call: serde_json::Value,
    text: String,
    template: Option<String>,
    class: Option<MessageClass>,
    expires_at: Option<i64>,
}

/// Converts the ledger's storage row to the guard's entry.
pub(crate) fn consent_entry(r: &ConsentRow) -> ConsentEntry {
    let source = match r.source.as_str() {
        "opt_out_event" => ConsentSource::OptOutEvent,
        "unsubscribe_link" => ConsentSource::UnsubscribeLink,
        "reply_keyword" => ConsentSource::ReplyKeyword,
        "opt_in" => ConsentSource::OptIn,
        _ => ConsentSource::Api,
    };
    ConsentEntry {
        ts: r.ts,
        channel: r.channel.clone(),
        granted: r.granted,
        source,
    }
}

impl Executor {
    pub fn new(parts: ExecutorParts) -> anyhow::Result<Executor> {
        let ExecutorParts {
            mut store,
            engine,
            writer,
            dispatcher,
            metrics,
            clock,
            public_url,
            link_secret,
            wants_all,
            quarantine,
            trigger_max_age_secs,
            leadership,
            wecom_sends_are_mass,
        } = parts;
        let lead = leadership.token();
        let mut defs = {
            let e = engine.read().unwrap_or_else(|e| e.into_inner());
            load_definitions(store.as_mut(), &e)?
        };
        quarantine.reload(&DEFINITION_KEYS, std::mem::take(&mut defs.broken));
        let now = clock();
        let mut x = Executor {
            next_id: store.max_enrollment_id()?,
            store,
            engine,
            writer,
            dispatcher,
            metrics,
            clock,
            public_url,
            link_secret,
            defs,
            active: HashMap::new(),
            by_identity: HashMap::new(),
            timers: BinaryHeap::new(),
            entries: HashMap::new(),
            ledger: SendLedger::new(),
            consent: HashMap::new(),
            in_flight: HashMap::new(),
            in_flight_text: HashMap::new(),
            ready: Default::default(),
            delayed: BinaryHeap::new(),
            delayed_items: HashMap::new(),
            sent_events: Vec::new(),
            wants_all,
            quarantine,
            last_sweep: now,
            commit: AutomationCommit::default(),
            trigger_max_age: trigger_max_age_secs.min(i64::MAX as u64) as i64,
            skipped_history: BTreeMap::new(),
            replied: HashMap::new(),
            open_leads: HashMap::new(),
            intent_leads: HashMap::new(),
            fence: None,
            leadership,
            wecom_sends_are_mass,
            recent: Default::default(),
            replaying: false,
        };
        match lead {
            Some(token) => x.lead(token, now)?,
            None => tracing::info!(
                journeys = x.defs.journeys.len(),
                "automation executor standing by (another node leads)"
            ),
        }
        x.publish_interest();
        Ok(x)
    }

    /// Loads the running state from the store (at start, and when this
    /// node takes the lease over): enrollments and their timers, re-entry
    /// index, pending and recent outbox items, open lead tasks, consent.
    fn load_state(&mut self, now: i64) -> anyhow::Result<()> {
        let x = self;
        x.active.clear();
        x.by_identity.clear();
        x.timers.clear();
        x.entries.clear();
        x.ready.clear();
        x.delayed.clear();
        x.delayed_items.clear();
        x.ledger = SendLedger::new();
        x.consent.clear();
        x.replied.clear();
        x.open_leads.clear();
        x.intent_leads.clear();
        x.last_sweep = now;
        x.next_id = x.store.max_enrollment_id()?;
        for (journey, identity, entered_at, done) in x.store.entry_index()? {
            x.entries.insert(
                (journey, identity),
                LastEntry {
                    entered_at,
                    active: !done,
                },
            );
        }
        for row in x.store.active_enrollments()? {
            match serde_json::from_value::<Enrollment>(row.state) {
                Ok(e) => x.track(e),
                Err(err) => {
                    tracing::error!(id = row.id, error = %err, "unreadable enrollment state; left as is")
                }
            }
        }
        let window = x.defs.policy.marketing_window_secs.max(86_400 * 2);
        let cooldown = x
            .defs
            .rules
            .as_ref()
            .and_then(|r| r.rules().iter().map(|r| r.cooldown_secs as i64).max())
            .unwrap_or(0);
        for item in x.store.outbox_done_since(now - window.max(cooldown))? {
            x.remember_reply(&item.key, &item.identity, item.created_at);
            if item.updated_at >= now - window {
                x.record_sent(&item);
            }
        }
        for item in x.store.outbox_due(i64::MAX, usize::MAX >> 2)? {
            x.remember_reply(&item.key, &item.identity, item.created_at);
            if !x.in_flight.contains_key(&item.key) {
                x.schedule(item, now);
            }
        }
        for task in x.store.tasks(true, usize::MAX >> 2)? {
            // An open hot-intent lead (`i/<intent>/<person>/<period>`):
            // no second one within the window after a restart either.
            let intent = task
                .key
                .strip_prefix("i/")
                .and_then(|rest| rest.split_once('/').and_then(|(id, _)| Intent::from_id(id)));
            if let Some(intent) = intent {
                let person = x.canonical(&task.identity);
                let at = x
                    .intent_leads
                    .entry((intent, person))
                    .or_insert(task.created_at);
                *at = (*at).max(task.created_at);
            }
            if task.journey.is_none() {
                if let Some(rule) = x.reply_rule_of(&task.key, "/lead") {
                    let person = x.canonical(&task.identity);
                    x.open_leads.insert((rule, person), task.key);
                }
            }
        }
        for r in x.store.consent_ledger(None)? {
            x.consent
                .entry(r.identity.clone())
                .or_default()
                .push(consent_entry(&r));
        }
        tracing::info!(
            enrollments = x.active.len(),
            journeys = x.defs.journeys.len(),
            "automation executor loaded"
        );
        Ok(())
    }

    /// Every event is needed while a journey exists or someone is enrolled.
    fn publish_interest(&self) {
        let all = !self.defs.journeys.is_empty() || !self.active.is_empty();
        self.wants_all.store(all, Ordering::Relaxed);
    }

    fn track(&mut self, e: Enrollment) {
        if let Some(at) = e.wake_at() {
            self.timers.push(Reverse((at, e.id)));
        }
        self.by_identity
            .entry(e.identity.clone())
            .or_default()
            .push(e.id);
        self.active.insert(e.id, e);
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, rx: Receiver<AutoInput>) {
        loop {
            let now = (self.clock)();
            if let Err(e) = self.tick(now) {
                tracing::error!(error = %e, "automation step failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            let wait = self.next_wake(now);
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let started = Instant::now();
                    let mut inputs = vec![first];
                    while inputs.len() < 10_000 {
                        match rx.try_recv() {
                            Ok(i) => inputs.push(i),
                            Err(_) => break,
                        }
                    }
                    let now = (self.clock)();
                    let stop = inputs.iter().any(|i| matches!(i, AutoInput::Shutdown));
                    // The pass commits and delivers for every request
                    // whose input it took: its lines name them all.
                    let requests: Vec<crate::trace::RequestId> = inputs
                        .iter()
                        .filter_map(|i| match i {
                            AutoInput::Traced(request, _) => Some(request.clone()),
                            _ => None,
                        })
                        .collect();
                    for i in inputs {
                        self.input(i, now);
                    }
                    if stop {
                        break;
                    }
                    crate::trace::in_scope_of_all(&requests, || {
                        if let Err(e) = self.flush() {
                            tracing::error!(error = %e, "automation commit failed");
                        }
                    });
                    self.metrics
                        .automation_pass
                        .observe(started.elapsed().as_secs_f64());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.flush();
    }

    fn next_wake(&self, now: i64) -> Duration {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let sweep = self.last_sweep + SWEEP_EVERY;
        let next = timer.map_or(sweep, |t| t.min(sweep));
        let secs = (next - now).clamp(0, 1);
        // Wake at least once a second: delayed outbox items come due.
        Duration::from_millis(if secs == 0 { 5 } else { 1000 })
    }

    /// Time-driven work: due timers, sweeps, due outbox items.
    fn tick(&mut self, now: i64) -> anyhow::Result<()> {
        if self.fence.is_none() {
            self.forget_old_recent(now);
            return self.flush();
        }
        let mut woke = 0u64;
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.active.get(&id) else {
                continue;
            };
            if e.wake_at() != Some(at) {
                continue; // stale timer
            }
            self.step(id, Input::Tick, now);
            woke += 1;
        }
        if woke > 0 {
            self.metrics.journey_wakeups.inc_by(woke);
        }
        self.metrics.automation_lag_seconds.set(
            self.timers
                .peek()
                .map_or(0, |Reverse((at, _))| (now - at).max(0)),
        );
        if now >= self.last_sweep + SWEEP_EVERY {
            self.sweep(self.last_sweep, now);
            self.last_sweep = now;
            // Cooldowns that ended are forgotten: the map stays the size
            // of the persons answered within the longest cooldown.
            let longest = self
                .defs
                .rules
                .as_ref()
                .and_then(|r| r.rules().iter().map(|r| r.cooldown_secs as i64).max())
                .unwrap_or(0);
            self.replied.retain(|_, at| now - *at < longest);
        }
        self.flush()?;
        Ok(())
    }

    fn input(&mut self, input: AutoInput, now: i64) {
        match input {
            AutoInput::Traced(request, input) => {
                crate::trace::in_scope(Some(&request), || self.input(*input, now))
            }
            AutoInput::Applied { events, changes } => {
                let applied = Arc::new((events, changes));
                self.recent.push_back((now, applied.clone()));
                self.forget_old_recent(now);
                if self.fence.is_some() {
                    self.on_applied(&applied.0, &applied.1, now);
                }
            }
            AutoInput::Lead(token) => self.follow_lease(token, now),
            AutoInput::Inbox => self.pick_up(now),
            AutoInput::Delivered {
                key,
                attempts,
                sms_sid,
                detail,
            } => {
                let detail = match sms_sid {
                    Some(sid) => {
                        // The receipt names the message by its SerialNo.
                        let v = sms_sid_value(&key);
                        if let Err(e) = self.store.put_setting(&sms_sid_key(&sid), Some(&v)) {
                            tracing::warn!(error = %e, "sms sid not recorded: its receipt will not be matched");
                        }
                        format!("sid {sid}")
                    }
                    None => detail,
                };
                self.finish(&key, OutboxStatus::Done, attempts, detail, now);
                let text = self.in_flight_text.remove(&key);
                if let Some(item) = self.in_flight.remove(&key) {
                    self.after_send(&item, text, now);
                }
            }
            AutoInput::Dead {
                key,
                error,
                attempts,
            } => {
                // An item delivered before a restart is no longer in
                // flight: its channel is not known here.
                self.in_flight_text.remove(&key);
                let channel = self
                    .in_flight
                    .remove(&key)
                    .map_or_else(|| "unknown".to_string(), |item| item_channel(&item));
                // A call that can no longer be made (a welcome whose
                // code expired: a permanent error `missed: …`) is missed,
                // not dead: there is nothing to retry.
                let missed = error
                    .strip_prefix("permanent: ")
                    .filter(|d| d.starts_with(siyu_connectors::wecom::welcome::MISSED));
                match missed {
                    Some(detail) => {
                        self.metrics.send(&channel, "suppressed");
                        let detail = detail.to_string();
                        self.finish(&key, OutboxStatus::Suppressed, attempts, detail, now);
                    }
                    None => {
                        self.metrics.send(&channel, "dead");
                        self.finish(&key, OutboxStatus::Dead, attempts, error, now);
                    }
                }
            }
            AutoInput::Shutdown => {}
            AutoInput::Retrying { key, detail } => self.attempt(&key, "retrying", &detail, now),
            AutoInput::ExitJourney(journey, reply) if self.fence.is_none() => {
                let _ = reply.send(self.ask_leader_to_exit(&journey, now));
            }
            AutoInput::ExitJourney(journey, reply) => {
                self.input(AutoInput::Reload, now);
                let exited = self.exit_journey(&journey, now);
                let _ = reply.send(self.flush().map(|_| exited).map_err(|e| e.to_string()));
            }
            AutoInput::Reload => {
                let loaded = {
                    let e = self.engine.read().unwrap_or_else(|e| e.into_inner());
                    load_definitions(self.store.as_mut(), &e)
                };
                match loaded {
                    Ok(mut d) => {
                        self.quarantine
                            .reload(&DEFINITION_KEYS, std::mem::take(&mut d.broken));
                        self.defs = d;
                        self.publish_interest();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reloading automation definitions failed")
                    }
                }
            }
            AutoInput::Mass(m, reply) => {
                let id = m.id.clone();
                let r = self.mass_send(m, now);
                match &r {
                    Ok(n) => tracing::info!(send = %id, queued = n, "mass send queued"),
                    Err(e) => tracing::warn!(send = %id, error = %e, "mass send failed"),
                }
                let _ = reply.send(r);
            }
            AutoInput::Consent(mut row, reply) => {
                // The ledger orders by time and a revocation wins a tie;
                // an entry recorded after another one is later.
                let latest = self
                    .consent
                    .get(&row.identity)
                    .and_then(|v| v.iter().map(|e| e.ts).max());
                if let Some(l) = latest {
                    row.ts = row.ts.max(l + 1);
                }
                self.consent
                    .entry(row.identity.clone())
                    .or_default()
                    .push(consent_entry(&row));
                self.commit.consent.push(row);
                let _ = reply.send(self.flush().map_err(|e| e.to_string()));
            }
            AutoInput::Reported(reports, reply) => {
                for r in reports {
                    let (status, verdict, detail) = match r.outcome {
                        Ok(detail) => (OutboxStatus::Done, "delivered", detail),
                        Err(reason) => (OutboxStatus::Dead, "failed", reason),
                    };
                    self.attempt(&r.key, verdict, &detail, now);
                    self.commit.updates.push(OutboxUpdate {
                        key: r.key,
                        status,
                        attempts: r.attempts,
                        detail,
                        not_before: now,
                        updated_at: now,
                    });
                }
                let _ = reply.send(self.flush().map_err(|e| e.to_string()));
            }
            AutoInput::Enroll {
                journey,
                identities,
                occurrence,
                reply,
            } => {
                let current = self.defs.current(&journey).filter(|j| !j.def.archived);
                let r = match current.cloned() {
                    None => Err(format!(
                        "journey: no journey `{journey}` (or it is archived); GET /v1/journeys lists them"
                    )),
                    Some(j) => {
                        let before = self.next_id;
                        for identity in &identities {
                            let ids = self.identities_of(identity);
                            self.enter(&j, identity, &ids, &occurrence, now);
                        }
                        let entered = self.next_id - before;
                        self.flush().map(|()| entered).map_err(|e| e.to_string())
                    }
                };
                let _ = reply.send(r);
            }
            AutoInput::Enqueue(items, reply) => {
                for (identity, action, label) in items {
                    self.queue_action(action, &identity, label.as_deref(), now);
                }
                let _ = reply.send(self.flush().map_err(|e| e.to_string()));
            }
            AutoInput::Retry(key, reply) => {
                let r = match self.store.outbox_get(&key) {
                    Ok(Some(mut item)) if item.status == OutboxStatus::Dead => {
                        self.finish(
                            &key,
                            OutboxStatus::Pending,
                            0,
                            "retry requested".into(),
                            now,
                        );
                        item.status = OutboxStatus::Pending;
                        item.attempts = 0;
                        if self.fence.is_some() {
                            self.ready.push_back(item);
                        }
                        self.flush().map(|_| true).map_err(|e| e.to_string())
                    }
                    Ok(_) => Ok(false),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// What the writer applied: journeys and auto-replies the events
    /// trigger, then segment-entry and exit journeys.
    fn on_applied(&mut self, events: &[AppliedEvent], changes: &[AppliedChange], now: i64) {
        for e in events {
            self.on_event(&e.event, e.backfill, now);
            if !e.backfill {
                self.push_wecom_tags(&e.event, e.offset, now);
            }
        }
        for c in changes {
            let skip = c
                .cause
                .and_then(|c| history_skip(c.backfill, c.ts, now, self.trigger_max_age));
            // The event's offset: the same on every node (the clock is not).
            let occurrence = c
                .cause
                .map_or_else(|| now.to_string(), |c| format!("@{}", c.offset));
            self.on_segment_change(&c.segment, &c.canonical, c.entered, &occurrence, skip, now);
        }
    }

    /// Ends every running enrollment of `journey` and cancels its pending
    /// outbox items (those already handed to a connector are not
    /// recalled: at most the message being sent at this instant).
    fn exit_journey(&mut self, journey: &str, now: i64) -> Exited {
        let ids: Vec<u64> = self
            .active
            .iter()
            .filter(|(_, e)| e.journey == journey)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            let Some(mut e) = self.active.remove(id) else {
                continue;
            };
            e.state = machine::State::Done {
                at: now,
                reason: EXITED_BY_ARCHIVE.into(),
            };
            self.commit.enrollments.push(row(&e, String::new()));
            if let Some(v) = self.by_identity.get_mut(&e.identity) {
                v.retain(|x| x != id);
            }
            if let Some(le) = self
                .entries
                .get_mut(&(e.journey.clone(), e.identity.clone()))
            {
                le.active = false;
            }
        }
        let of_journey = |i: &OutboxItem| i.journey.as_deref() == Some(journey);
        let mut cancelled: Vec<String> = self
            .ready
            .iter()
            .filter(|i| of_journey(i))
            .map(|i| i.key.clone())
            .collect();
        self.ready.retain(|i| !of_journey(i));
        let delayed: Vec<String> = self
            .delayed_items
            .values()
            .filter(|i| of_journey(i))
            .map(|i| i.key.clone())
            .collect();
        for key in &delayed {
            // Its heap entry is skipped when it comes due (no item).
            self.delayed_items.remove(key);
        }
        cancelled.extend(delayed);
        for key in &cancelled {
            self.finish(
                key,
                OutboxStatus::Suppressed,
                0,
                EXITED_BY_ARCHIVE.into(),
                now,
            );
        }
        self.publish_interest();
        Exited {
            enrollments: ids.len(),
            cancelled: cancelled.len(),
        }
    }

    fn finish(&mut self, key: &str, status: OutboxStatus, attempts: u32, detail: String, now: i64) {
        let verdict = match status {
            OutboxStatus::Done => "done",
            OutboxStatus::Suppressed => "suppressed",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Pending => "requeued",
        };
        self.attempt(key, verdict, &detail, now);
        self.commit.updates.push(OutboxUpdate {
            key: key.to_string(),
            status,
            attempts,
            detail,
            not_before: now,
            updated_at: now,
        });
    }

    /// Appends to the send audit (committed with the next transaction).
    fn attempt(&mut self, key: &str, verdict: &str, detail: &str, now: i64) {
        self.commit.attempts.push(siyu_store::SendAttempt {
            key: key.to_string(),
            at: now,
            verdict: verdict.to_string(),
            detail: detail.to_string(),
        });
    }

    // ---- triggers ----

    /// `backfill`: appended by a bulk import without `--trigger`. Consent
    /// is read from every event; triggers fire only for fresh ones.
    fn on_event(&mut self, ev: &Event, backfill: bool, now: i64) {
        let identity = ev.identity.as_str().to_string();
        let skip = history_skip(backfill, ev.ts, now, self.trigger_max_age);
        let view = EventView {
            event_type: ev.event_type.as_str(),
            channel: ev.channel.as_str(),
            name: ev.name.as_deref(),
            text: ev.text.as_deref(),
            intent: Intent::of_event(ev),
        };
        // Consent: an opt_out event, or a reply that says unsubscribe.
        if ev.event_type == EventType::OptOut {
            self.revoke(&identity, "opt_out_event", ev.ts.max(0));
        }
        let is_inbound_text = matches!(ev.event_type, EventType::Comment)
            || (ev.event_type == EventType::Custom && ev.name.as_deref() == Some("message"));
        if is_inbound_text {
            let mut rule_lead = false;
            if let Some(text) = ev.text.as_deref() {
                if guard::is_unsubscribe_reply(text) {
                    self.revoke(&identity, "reply_keyword", now);
                    self.opt_out_event(&identity, ev, now);
                } else {
                    rule_lead = self.auto_reply(&identity, ev, text, skip, now);
                }
            }
            self.intent_effects(&identity, ev, skip, rule_lead, now);
        }
        // Journeys this event triggers: the person is read once, under one
        // engine lock, and only when some journey has an event trigger.
        let candidates: Vec<Arc<Compiled>> = self
            .defs
            .journeys
            .values()
            .filter_map(|v| v.values().next_back())
            .filter(|j| matches!(j.trigger, CompiledTrigger::Event { .. }))
            .cloned()
            .collect();
        let fired: Vec<Arc<Compiled>> = if candidates.is_empty() {
            Vec::new()
        } else {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            match PersonSnapshot::of(&engine, &identity) {
                Some(snap) => candidates
                    .into_iter()
                    .filter(|j| machine::event_fires(j, &view, &snap))
                    .collect(),
                None => Vec::new(),
            }
        };
        let fired = match skip {
            Some(why) => {
                for j in fired.iter().filter(|j| j.def.enabled) {
                    self.skip_history("journey", &j.def.name, why);
                }
                Vec::new()
            }
            None => fired,
        };
        if self.by_identity.is_empty() && fired.is_empty() {
            return;
        }
        // Waiting enrollments of this person (any of their identities).
        let person_ids = self.identities_of(&identity);
        let waiting: Vec<u64> = person_ids
            .iter()
            .filter_map(|i| self.by_identity.get(i))
            .flatten()
            .copied()
            .collect();
        for id in waiting {
            self.step(id, Input::Event(view), now);
        }
        for j in fired {
            let occurrence = ev
                .id
                .clone()
                .unwrap_or_else(|| format!("{}:{}", ev.ts, ev.event_type));
            self.enter(&j, &identity, &person_ids, &occurrence, now);
        }
    }

    /// `skip`: the change was caused by history (a stale or backfilled
    /// event): the journeys it would start are counted, not entered.
    fn on_segment_change(
        &mut self,
        segment: &str,
        canonical: &str,
        entered: bool,
        occurrence: &str,
        skip: Option<HistorySkip>,
        now: i64,
    ) {
        let journeys: Vec<Arc<Compiled>> = self
            .defs
            .journeys
            .values()
            .filter_map(|v| v.values().next_back())
            .filter(|j| match &j.trigger {
                CompiledTrigger::SegmentEntry(s) => entered && s == segment,
                CompiledTrigger::SegmentExit(s) => !entered && s == segment,
                _ => false,
            })
            .cloned()
            .collect();
        if journeys.is_empty() {
            return;
        }
        if let Some(why) = skip {
            for j in &journeys {
                if j.def.enabled {
                    self.skip_history("segment_journey", &j.def.name, why);
                }
            }
            return;
        }
        let ids = self.identities_of(canonical);
        for j in journeys {
            self.enter(
                &j,
                canonical,
                &ids,
                &format!(
                    "{segment}:{}:{occurrence}",
                    if entered { "in" } else { "out" }
                ),
                now,
            );
        }
    }

    /// Schedules, birthdays, days after first purchase, silence: each
    /// person whose trigger instant fell in (from, to] is enrolled, keyed
    /// by that instant (a replayed sweep enrolls nobody twice).
    /// The conversations' alerts (tasks for customers waiting too long
    /// and for flagged operator messages) and the archive's retention,
    /// on the leading node once a sweep (`crate::conversations`).
    fn conversation_sweep(&mut self, from: i64, to: i64) {
        let settings = match crate::conversations::Settings::load(self.store.as_mut()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "conversation settings not read; no alerts this sweep");
                return;
            }
        };
        let waiting = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            crate::conversations::unanswered_alerts(&engine, &settings, to)
        };
        self.commit.tasks.extend(waiting);
        // From the previous sweep, with a minute's overlap: the task keys
        // make a repeat add nothing.
        match crate::conversations::sensitive_alerts(self.store.as_mut(), from - SWEEP_EVERY, to) {
            Ok(tasks) => self.commit.tasks.extend(tasks),
            Err(e) => tracing::warn!(error = %e, "flagged operator messages not read"),
        }
        if settings.archive_retention_days > 0 && to / 3600 != from / 3600 {
            let before = to - settings.archive_retention_days as i64 * 86_400;
            match self.store.prune_archive(before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "conversation archive pruned (retention)"),
                Err(e) => tracing::warn!(error = %e, "conversation archive not pruned"),
            }
        }
    }

    fn sweep(&mut self, from: i64, to: i64) {
        self.conversation_sweep(from, to);
        let journeys: Vec<Arc<Compiled>> = self
            .defs
            .journeys
            .values()
            .filter_map(|v| v.values().next_back())
            .filter(|j| j.def.enabled)
            .filter(|j| {
                matches!(
                    j.trigger,
                    CompiledTrigger::Schedule { .. }
                        | CompiledTrigger::Birthday(_)
                        | CompiledTrigger::AfterFirstPurchase(_)
                        | CompiledTrigger::Silent(_)
                )
            })
            .cloned()
            .collect();
        for j in journeys {
            let due: Vec<(String, i64)> = {
                let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
                person::sweep_due(&engine, &j.trigger, from, to)
            };
            for (canonical, at) in due {
                let ids = self.identities_of(&canonical);
                self.enter(&j, &canonical, &ids, &at.to_string(), to);
            }
        }
    }

    fn identities_of(&self, identity: &str) -> Vec<String> {
        let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
        match engine.person_of(identity) {
            Some(slot) => engine.identities_of(slot),
            None => vec![identity.to_string()],
        }
    }

    /// Enrolls a person if the re-entry rule allows it.
    fn enter(
        &mut self,
        j: &Arc<Compiled>,
        identity: &str,
        person_ids: &[String],
        occurrence: &str,
        now: i64,
    ) {
        let last = person_ids
            .iter()
            .filter_map(|i| self.entries.get(&(j.def.name.clone(), i.clone())))
            .fold(None::<LastEntry>, |acc, e| match acc {
                None => Some(*e),
                Some(a) => Some(LastEntry {
                    entered_at: a.entered_at.max(e.entered_at),
                    active: a.active || e.active,
                }),
            });
        if !machine::may_enter(j, last, now) {
            return;
        }
        let entry_key = format!("{}/{}/{}", j.def.name, identity, occurrence);
        if self.replaying && self.entered_already(&j.def.name, identity, &entry_key) {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let e = machine::enroll(j, id, identity, now);
        self.entries.insert(
            (j.def.name.clone(), identity.to_string()),
            LastEntry {
                entered_at: now,
                active: true,
            },
        );
        self.metrics.journey_entries.inc();
        self.commit.enrollments.push(row(&e, entry_key));
        self.track(e);
        self.step(id, Input::Tick, now);
    }

    /// Runs one enrollment and queues its new state and effects.
    fn step(&mut self, id: u64, input: Input<'_>, now: i64) {
        let Some(mut e) = self.active.get(&id).cloned() else {
            return;
        };
        let Some(j) = self
            .defs
            .journeys
            .get(&e.journey)
            .and_then(|v| v.get(&e.version))
            .cloned()
        else {
            return;
        };
        let before = e.clone();
        let actions = {
            let engine = self.engine.read().unwrap_or_else(|er| er.into_inner());
            match PersonSnapshot::of(&engine, &e.identity) {
                Some(view) => machine::run(&j, &mut e, input, &view, now),
                None => {
                    e.state = machine::State::Done {
                        at: now,
                        reason: "person erased".into(),
                    };
                    Vec::new()
                }
            }
        };
        if e == before && actions.is_empty() {
            return;
        }
        self.metrics.journey_steps.inc();
        for a in actions {
            self.queue_action(a, &e.identity, Some(&e.journey), now);
        }
        let entry_key = String::new(); // updates match by id
        self.commit.enrollments.push(row(&e, entry_key));
        if e.is_done() {
            self.active.remove(&id);
            if let Some(v) = self.by_identity.get_mut(&e.identity) {
                v.retain(|x| *x != id);
            }
            if let Some(le) = self
                .entries
                .get_mut(&(e.journey.clone(), e.identity.clone()))
            {
                le.active = false;
            }
        } else {
            if let Some(at) = e.wake_at() {
                if e.wake_at() != before.wake_at() {
                    self.timers.push(Reverse((at, id)));
                }
            }
            self.active.insert(id, e);
        }
    }

    fn queue_action(&mut self, a: Action, identity: &str, journey: Option<&str>, now: i64) {
        if let Action::Task {
            key,
            title,
            note,
            due,
        } = &a
        {
            self.commit.tasks.push(TaskRow {
                key: key.clone(),
                created_at: now,
                identity: identity.to_string(),
                journey: journey.map(str::to_string),
                operator: None,
                title: title.clone(),
                note: note.clone(),
                due: *due,
                done_at: None,
            });
            return;
        }
        self.commit.outbox.push(OutboxItem {
            key: a.key().to_string(),
            created_at: now,
            not_before: now,
            status: OutboxStatus::Pending,
            attempts: 0,
            detail: String::new(),
            journey: journey.map(str::to_string),
            identity: identity.to_string(),
            action: serde_json::to_value(&a).unwrap_or_default(),
            updated_at: now,
        });
    }

    /// A global revocation in the ledger; `source` is its stored code.
    fn revoke(&mut self, identity: &str, source: &str, ts: i64) {
        let row = ConsentRow {
            ts,
            identity: identity.to_string(),
            channel: None,
            granted: false,
            source: source.to_string(),
        };
        self.consent
            .entry(identity.to_string())
            .or_default()
            .push(consent_entry(&row));
        self.commit.consent.push(row);
    }

    /// Records an opt_out event for a reply like 退订, so segments and
    /// exports see it too (id derived from the reply: appended once).
    fn opt_out_event(&mut self, identity: &str, ev: &Event, now: i64) {
        let Ok(id) = Identity::parse(identity) else {
            return;
        };
        let mut out = Event::new(now, id, EventType::OptOut, ev.channel.clone());
        out.id = Some(format!(
            "optout/{}",
            ev.id
                .clone()
                .unwrap_or_else(|| format!("{identity}/{}", ev.ts))
        ));
        self.append_async(vec![out]);
    }

    /// Answers an inbound text with the first matching rule, at most once
    /// per person and rule within the rule's `cooldown_secs`, with at most
    /// one open lead task per person and rule; never for history (`skip`).
    /// Whether the rule that matched makes leads (then the message's hot
    /// intent makes none of its own: one lead per message).
    fn auto_reply(
        &mut self,
        identity: &str,
        ev: &Event,
        text: &str,
        skip: Option<HistorySkip>,
        now: i64,
    ) -> bool {
        let Some(rules) = &self.defs.rules else {
            return false;
        };
        let Some(rule) = rules.first_with_intent(
            ev.channel.as_str(),
            event_kind(ev),
            text,
            Intent::of_event(ev),
        ) else {
            return false;
        };
        let rule = rule.clone();
        if let Some(why) = skip {
            self.metrics.skipped("auto_reply", why.as_str(), 1);
            return false;
        }
        let leads = rule.create_lead || rule.assign_operator.is_some();
        let person = self.canonical(identity);
        let fired = (rule.id.clone(), person);
        if !keyword::cooled_down(&rule, self.replied.get(&fired).copied(), now) {
            self.metrics.skipped("auto_reply", "cooldown", 1);
            return leads;
        }
        self.replied.insert(fired.clone(), now);
        let base = format!(
            "r/{}/{}",
            rule.id,
            ev.id
                .clone()
                .unwrap_or_else(|| format!("{identity}/{}/{}", ev.ts, fnv(text)))
        );
        if let Some(t) = &rule.reply_template {
            self.queue_action(
                Action::Send {
                    key: format!("{base}/reply"),
                    template: t.clone(),
                    channel: Some(ev.channel.as_str().to_string()),
                    class: Some(MessageClass::Transactional),
                    kind: SendKind::Direct,
                    reply_to: Some(ReplyTo::of(
                        ev.id.as_deref(),
                        ev.channel.as_str(),
                        ev.properties.as_ref(),
                    )),
                },
                identity,
                None,
                now,
            );
        }
        for tag in &rule.tags {
            self.queue_action(
                Action::AddTag {
                    key: format!("{base}/tag/{tag}"),
                    tag: tag.clone(),
                },
                identity,
                None,
                now,
            );
        }
        if (rule.create_lead || rule.assign_operator.is_some()) && !self.lead_is_open(&fired) {
            self.open_leads
                .insert(fired.clone(), format!("{base}/lead"));
            self.commit.tasks.push(TaskRow {
                key: format!("{base}/lead"),
                created_at: now,
                identity: identity.to_string(),
                journey: None,
                operator: rule.assign_operator.clone(),
                title: format!("lead: {}", rule.id),
                note: text.chars().take(200).collect(),
                due: None,
                done_at: None,
            });
        }
        if let Some(jn) = &rule.enroll_journey {
            if let Some(j) = self.defs.current(jn).cloned() {
                let ids = self.identities_of(identity);
                self.enter(&j, identity, &ids, &base, now);
            }
        }
        self.metrics.auto_replies.inc();
        leads
    }

    /// What a live inbound message's intent does by itself
    /// (`crate::intents::IntentSettings`): the intent's tags the person
    /// does not have yet (one outbox key per person and tag, so never
    /// twice), and for a hot intent a lead task for the person's owner
    /// (the `operator` trait; without one the unassigned pool), keyed by
    /// intent, person and window-long period, and skipped while this
    /// executor made one for them within the window, or when the
    /// auto-reply rule that matched the message makes leads (`rule_lead`).
    /// Never for history.
    fn intent_effects(
        &mut self,
        identity: &str,
        ev: &Event,
        skip: Option<HistorySkip>,
        rule_lead: bool,
        now: i64,
    ) {
        let Some(intent) = Intent::of_event(ev) else {
            return;
        };
        let settings = &self.defs.intents;
        let tags = settings.auto_tags.get(&intent).cloned().unwrap_or_default();
        let hot = settings.hot.contains(&intent);
        if tags.is_empty() && !hot {
            return;
        }
        if crate::intents::confidence_of(ev) < settings.min_confidence {
            self.metrics.skipped("intent", "low_confidence", 1);
            return;
        }
        if let Some(why) = skip {
            self.metrics.skipped("intent", why.as_str(), 1);
            return;
        }
        let window = settings.lead_window_secs.max(1) as i64;
        let (canonical, held, owner) = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            let Some(slot) = engine.person_of(identity) else {
                return;
            };
            let extra = engine.person(slot).and_then(|p| p.extra.as_deref());
            (
                engine.canonical_id(slot).to_string(),
                extra.map(|x| x.tags().to_vec()).unwrap_or_default(),
                extra
                    .and_then(|x| x.traits().get("operator"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            )
        };
        for tag in tags.into_iter().filter(|t| !held.contains(t)) {
            let key = format!("i/tag/{canonical}/{tag}");
            // Two messages in one commit: one item (the store skips a key
            // it holds, and the commit then schedules no item of that key).
            if self.commit.outbox.iter().any(|o| o.key == key) {
                continue;
            }
            self.queue_action(Action::AddTag { key, tag }, identity, None, now);
        }
        if !hot {
            return;
        }
        if rule_lead {
            // The auto-reply rule that answered it makes the lead.
            self.metrics.skipped("lead", "rule_lead", 1);
            return;
        }
        let fired = (intent, canonical.clone());
        if let Some(&at) = self.intent_leads.get(&fired) {
            if (ev.ts - at).abs() < window {
                self.metrics.skipped("lead", "intent_window", 1);
                return;
            }
        }
        self.intent_leads.insert(fired, ev.ts);
        self.commit.tasks.push(TaskRow {
            key: format!("i/{}/{canonical}/{}", intent.id(), ev.ts.div_euclid(window)),
            created_at: now,
            identity: identity.to_string(),
            journey: None,
            operator: owner,
            title: format!("lead: {} ({})", intent.name_zh(), intent.id()),
            note: ev.text.as_deref().unwrap_or("").chars().take(200).collect(),
            due: None,
            done_at: None,
        });
    }

    /// Whether the rule's last lead task for this person is still open
    /// (asks the store only when this executor made or found one).
    fn lead_is_open(&mut self, fired: &(String, String)) -> bool {
        let Some(key) = self.open_leads.get(fired).cloned() else {
            return false;
        };
        if self.commit.tasks.iter().any(|t| t.key == key) {
            self.metrics.skipped("lead", "open_lead", 1);
            return true;
        }
        let open = match self.store.tasks(true, usize::MAX >> 2) {
            Ok(tasks) => tasks.iter().any(|t| t.key == key),
            Err(e) => {
                // Unknown: make no second lead (a duplicate task is the
                // complaint this rule answers).
                tracing::warn!(error = %e, "reading open tasks failed; no new lead");
                true
            }
        };
        if open {
            self.metrics.skipped("lead", "open_lead", 1);
        } else {
            self.open_leads.remove(fired);
        }
        open
    }

    /// The auto-reply rule an outbox or task key (`r/<rule>/…<suffix>`)
    /// belongs to, among the current rules.
    fn reply_rule_of(&self, key: &str, suffix: &str) -> Option<String> {
        let rest = key.strip_prefix("r/")?;
        if !key.ends_with(suffix) {
            return None;
        }
        self.defs.rules.as_ref()?.rules().iter().find_map(|r| {
            rest.strip_prefix(r.id.as_str())
                .filter(|t| t.starts_with('/'))
                .map(|_| r.id.clone())
        })
    }

    /// Remembers (at start) when an auto-reply rule last fired for a
    /// person, from its outbox items.
    fn remember_reply(&mut self, key: &str, identity: &str, at: i64) {
        if let Some(rule) = self.reply_rule_of(key, "") {
            let person = self.canonical(identity);
            let last = self.replied.entry((rule, person)).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// The person's canonical id (the identity itself when unknown).
    fn canonical(&self, identity: &str) -> String {
        self.identities_of(identity)
            .into_iter()
            .min()
            .unwrap_or_else(|| identity.to_string())
    }

    /// Counts a journey trigger skipped as history (metrics now, the
    /// journey's report on the next flush).
    fn skip_history(&mut self, trigger: &'static str, journey: &str, why: HistorySkip) {
        self.metrics.skipped(trigger, why.as_str(), 1);
        *self
            .skipped_history
            .entry((journey.to_string(), why.as_str()))
            .or_default() += 1;
    }

    /// Adds the skipped-as-history counts to each journey's settings row.
    fn save_skipped(&mut self) -> anyhow::Result<()> {
        if self.skipped_history.is_empty() {
            return Ok(());
        }
        let mut by_journey: BTreeMap<String, Vec<(&'static str, u64)>> = BTreeMap::new();
        for ((journey, why), n) in std::mem::take(&mut self.skipped_history) {
            by_journey.entry(journey).or_default().push((why, n));
        }
        let mut rows = Vec::with_capacity(by_journey.len());
        for (journey, counts) in by_journey {
            let key = format!("{SKIPPED_PREFIX}{journey}");
            let mut stored: BTreeMap<String, u64> = self
                .store
                .get_setting(&key)?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            for (why, n) in counts {
                *stored.entry(why.to_string()).or_default() += n;
            }
            rows.push((key, serde_json::to_value(&stored).ok()));
        }
        self.store.put_settings(&rows)?;
        Ok(())
    }

    fn mass_send(&mut self, m: MassSend, now: i64) -> Result<u64, String> {
        if !self.defs.templates.contains_key(&m.template) {
            return Err(format!(
                "unknown template {:?}; save it first (PUT /v1/templates/{})",
                m.template, m.template
            ));
        }
        let mut targets: Vec<String> = m.identities.clone();
        if let Some(s) = &m.segment {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            let segs = engine.live_segments();
            let Some(i) = segs.index_of(s) else {
                return Err(format!("unknown segment {s:?}"));
            };
            let members: Vec<u32> = segs.segments()[i as usize].members().collect();
            targets.extend(
                members
                    .into_iter()
                    .map(|slot| engine.canonical_id(slot).to_string()),
            );
        }
        let n = targets.len() as u64;
        for chunk in targets.chunks(MASS_CHUNK) {
            for identity in chunk {
                self.queue_action(
                    Action::Send {
                        key: format!("m/{}/{identity}", m.id),
                        template: m.template.clone(),
                        channel: m.channel.clone(),
                        class: m.class,
                        kind: m.kind,
                        reply_to: None,
                    },
                    identity,
                    None,
                    now,
                );
            }
            self.flush().map_err(|e| e.to_string())?;
        }
        Ok(n)
    }

    // ---- delivery ----

    /// Files a pending item for delivery now or at its `not_before`.
    fn schedule(&mut self, item: OutboxItem, now: i64) {
        if item.not_before <= now {
            self.ready.push_back(item);
        } else {
            self.delayed
                .push(Reverse((item.not_before, item.key.clone())));
            self.delayed_items.insert(item.key.clone(), item);
        }
    }

    /// Commits what is queued, then delivers what is ready until done or
    /// the connectors push back (their answers resume it).
    fn flush(&mut self) -> anyhow::Result<()> {
        let now = (self.clock)();
        self.commit_queued(now)?;
        if let Err(e) = self.save_skipped() {
            // Only the report's counts of this pass are lost; /metrics has them.
            tracing::warn!(error = %e, "recording triggers skipped as history failed");
        }
        while let Some(&Reverse((at, _))) = self.delayed.peek() {
            if at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.delayed.pop() else {
                break;
            };
            if let Some(item) = self.delayed_items.remove(&key) {
                self.ready.push_back(item);
            }
        }
        let mut events = Vec::new();
        let mut pushed_back = false;
        while !pushed_back {
            self.remember_links();
            let mut n = 0;
            while let Some(item) = self.ready.pop_front() {
                if self.in_flight.contains_key(&item.key) {
                    continue;
                }
                if !self.deliver(item, now, &mut events) {
                    pushed_back = true;
                    break;
                }
                n += 1;
                if n >= DELIVER_BATCH {
                    break;
                }
            }
            if !events.is_empty() {
                self.append_sync(std::mem::take(&mut events));
            }
            self.commit_queued(now)?;
            if self.ready.is_empty() {
                break;
            }
        }
        if !self.sent_events.is_empty() {
            let events = std::mem::take(&mut self.sent_events);
            self.append_async(events);
        }
        Ok(())
    }

    /// Records the link ids of the persons the next batch of sends goes to,
    /// in one transaction, before any of them is handed to a connector: a
    /// message's unsubscribe and content links resolve the moment it is
    /// out (`send` checks again, one read, for anything this missed).
    fn remember_links(&mut self) {
        let canonicals: Vec<String> = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            self.ready
                .iter()
                .take(DELIVER_BATCH)
                .filter(|i| i.action.get("action").and_then(|a| a.as_str()) == Some("send"))
                .filter_map(|i| engine.person_of(&i.identity))
                .map(|slot| engine.canonical_id(slot).to_string())
                .collect()
        };
        if let Err(e) =
            crate::links::remember_many(self.store.as_mut(), &self.link_secret, &canonicals)
        {
            tracing::warn!(error = %e, "link ids of a send batch not recorded; each send records its own");
        }
    }

    /// One store transaction for everything queued; new outbox items are
    /// filed for delivery (ones that existed already are not: a replay).
    fn commit_queued(&mut self, now: i64) -> anyhow::Result<()> {
        if self.commit.is_empty() {
            return Ok(());
        }
        let mut c = std::mem::take(&mut self.commit);
        c.enrollments = merge_rows(c.enrollments);
        c.fence = self.fence.clone();
        let out = match self.store.automation_commit(&c) {
            Err(siyu_store::StoreError::Fenced(why)) => {
                // Another node leads now: this one stands down. Journeys'
                // enrollments and effects are the new leader's to redo from
                // the events (keyed: once); the rest — a request's sends,
                // consent, verdicts of sends made — is committed for the
                // new leader to pick up.
                tracing::warn!(%why, "fenced: another node took the automation lease");
                if let Some(f) = &self.fence {
                    self.leadership.fenced(f.token);
                }
                self.stand_down();
                c.enrollments.clear();
                c.outbox.retain(|i| i.journey.is_none());
                c.tasks.retain(|t| t.journey.is_none());
                c.fence = None;
                self.store.automation_commit(&c)?
            }
            other => other?,
        };
        if self.fence.is_none() {
            return self.signal_leader(&c);
        }
        for id in out.skipped {
            // Already enrolled for this occurrence (a replay): forget it.
            if let Some(e) = self.active.remove(&id) {
                if let Some(v) = self.by_identity.get_mut(&e.identity) {
                    v.retain(|x| *x != id);
                }
            }
        }
        let skipped: HashSet<String> = out.skipped_outbox.into_iter().collect();
        for item in c.outbox {
            if !skipped.contains(&item.key) {
                self.schedule(item, now);
            }
        }
        Ok(())
    }

    /// One outbox item: internal effects become events, sends pass the
    /// guardrails and go to a connector.
    /// Returns false when the connector pushed back: the item went back
    /// to the front of the queue and delivery pauses.
    fn deliver(&mut self, item: OutboxItem, now: i64, events: &mut Vec<Event>) -> bool {
        let action: Action = match serde_json::from_value(item.action.clone()) {
            Ok(a) => a,
            Err(e) => {
                self.finish(
                    &item.key,
                    OutboxStatus::Dead,
                    item.attempts,
                    format!("unreadable action: {e}"),
                    now,
                );
                return true;
            }
        };
        match action {
            Action::AddTag { key, tag } => {
                self.trait_event(&item, key, now, events, |t| t.tags.push(tag));
                true
            }
            Action::RemoveTag { key, tag } => {
                self.trait_event(&item, key, now, events, |t| t.remove_tags.push(tag));
                true
            }
            Action::SetTrait { key, name, value } => {
                self.trait_event(&item, key, now, events, |t| {
                    t.extra.insert(name, value);
                });
                true
            }
            Action::Task { .. } => {
                self.finish(&item.key, OutboxStatus::Done, 1, String::new(), now);
                true
            }
            Action::Webhook { key, payload } => {
                let msg = OutboundMessage {
                    idempotency_key: key,
                    channel: "webhook".into(),
                    recipient: item.identity.clone(),
                    identity: item.identity.clone(),
                    subject: None,
                    body: String::new(),
                    html: None,
                    unsubscribe_url: None,
                    mass: false,
                    data: serde_json::json!({"journey": item.journey, "payload": payload}),
                    wechat_template: None,
                };
                self.dispatch(&item, msg, now)
            }
            Action::Send {
                key,
                template,
                channel,
                class,
                kind,
                reply_to,
            } => self.send(
                &item,
                key,
                Content::Template(&template),
                channel,
                class,
                kind,
                reply_to.as_ref(),
                now,
            ),
            Action::Reply {
                key,
                channel,
                text,
                operator,
                reply_to,
            } => self.send(
                &item,
                key,
                Content::Text {
                    text: &text,
                    operator: &operator,
                },
                Some(channel),
                Some(MessageClass::Transactional),
                SendKind::Direct,
                reply_to.as_ref(),
                now,
            ),
            Action::GroupPost {
                key,
                group,
                channel,
                template,
                data,
            } => self.group_post(&item, key, group, channel, &template, data, now),
            Action::ApiCall {
                key,
                channel,
                call,
                text,
                template,
                class,
                expires_at,
            } => self.api_call(
                &item,
                ApiCallParts {
                    key,
                    channel,
                    call,
                    text,
                    template,
                    class,
                    expires_at,
                },
                now,
            ),
        }
    }

    /// A tag added or removed in siyu on a person with a `wecom:`
    /// identity goes to WeCom (`mark_tag`, through the outbox: durable
    /// and retried), once per event (the key names its log offset, the
    /// same on every node). Tags that came from WeCom are not sent back.
    fn push_wecom_tags(&mut self, ev: &Event, offset: u64, now: i64) {
        let Some(d) = &self.dispatcher else {
            return;
        };
        if !d.has_channel(siyu_connectors::wecom::calls::CALLS_CHANNEL) {
            return;
        }
        let calls = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            crate::wecom_tags::mark_tag_calls(&engine, ev, offset)
        };
        for (identity, action) in calls {
            self.queue_action(action, &identity, None, now);
        }
    }

    /// A channel API call ([`Action::ApiCall`]): missed at or after its
    /// expiry; a message (`class`) rendered and passed through the
    /// guardrails like a send (a delay is a miss when the call expires:
    /// it would be made too late); then handed to the channel's connector.
    fn api_call(&mut self, item: &OutboxItem, p: ApiCallParts, now: i64) -> bool {
        if let Some(at) = p.expires_at.filter(|at| now >= *at) {
            self.suppress(
                item,
                &format!(
                    "missed: expired at {at}, {} s before it could be made",
                    now - at
                ),
                now,
            );
            return true;
        }
        let mut text = p.text;
        if let Some(class) = p.class {
            // A message to the person on the channel of their identity.
            let message_channel = item
                .identity
                .split_once(':')
                .map_or("", |(c, _)| c)
                .to_string();
            let prepared = {
                let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
                match PersonSnapshot::of(&engine, &item.identity) {
                    None => Err("person_erased".to_string()),
                    Some(snap) => {
                        let rendered = match &p.template {
                            None => Ok(None),
                            Some(t) => match self.defs.templates.get(t) {
                                None => Err("unknown_template".to_string()),
                                Some((_, compiled)) => {
                                    let vars = snap
                                        .vars("", &item.action)
                                        .with_links(&self.public_url, &self.link_secret);
                                    compiled
                                        .render(&message_channel, &vars)
                                        .map(|r| Some(r.body))
                                        .map_err(|e| format!("template_error: {e}"))
                                }
                            },
                        };
                        rendered.map(|r| {
                            (
                                r,
                                snap.identities.clone(),
                                snap.canonical.clone(),
                                snap.timezone(),
                                snap.opted_out,
                            )
                        })
                    }
                }
            };
            let (rendered, ids, canonical, tz, opted_out) = match prepared {
                Ok(p) => p,
                Err(reason) => {
                    self.suppress(item, &reason, now);
                    return true;
                }
            };
            if let Some(body) = rendered {
                text = body;
            }
            let mut entries: Vec<&ConsentEntry> = ids
                .iter()
                .filter_map(|i| self.consent.get(i))
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.ts);
            let consent = Consent::from_entries(entries.iter().copied());
            let contact = guard::Contact {
                opted_out: effective_opt_out(opted_out, &consent, &message_channel),
                consent: &consent,
                timezone: tz.as_deref(),
                history: self.ledger.history(&canonical),
            };
            let decision = guard::decide(
                &self.defs.policy,
                &contact,
                &guard::SendRequest {
                    channel: &message_channel,
                    class,
                    kind: SendKind::Direct,
                },
                now,
            );
            match decision {
                Decision::Send => {
                    self.ledger.record(
                        &canonical,
                        SendRecord::new(now, &message_channel, class, SendKind::Direct),
                    );
                }
                Decision::Suppress { reason } => {
                    self.suppress(item, reason.code(), now);
                    return true;
                }
                Decision::Delay { reason, .. } if p.expires_at.is_some() => {
                    self.suppress(
                        item,
                        &format!("missed: {} would delay it past its expiry", reason.code()),
                        now,
                    );
                    return true;
                }
                Decision::Delay { until, reason } => {
                    self.delay(item, until, reason.code(), now);
                    return true;
                }
            }
        }
        let recipient = item
            .identity
            .split_once(':')
            .map_or(item.identity.as_str(), |(_, id)| id)
            .to_string();
        let msg = OutboundMessage {
            idempotency_key: p.key,
            channel: p.channel,
            recipient,
            identity: item.identity.clone(),
            subject: None,
            body: text,
            html: None,
            unsubscribe_url: None,
            mass: false,
            data: p.call,
            wechat_template: None,
        };
        self.dispatch(item, msg, now)
    }

    fn trait_event(
        &mut self,
        item: &OutboxItem,
        key: String,
        now: i64,
        events: &mut Vec<Event>,
        set: impl FnOnce(&mut Traits),
    ) {
        let Ok(identity) = Identity::parse(&item.identity) else {
            self.finish(
                &item.key,
                OutboxStatus::Dead,
                1,
                "not an identity".into(),
                now,
            );
            return;
        };
        let channel = Channel::parse(identity.channel())
            .unwrap_or_else(|| Channel::parse("wecom").expect("valid"));
        let mut ev = Event::new(now, identity, EventType::Identify, channel);
        ev.id = Some(key);
        let mut t = Traits::default();
        set(&mut t);
        ev.traits = Some(t);
        events.push(ev);
        self.finish(&item.key, OutboxStatus::Done, 1, String::new(), now);
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        item: &OutboxItem,
        key: String,
        content: Content<'_>,
        channel: Option<String>,
        class: Option<MessageClass>,
        kind: SendKind,
        reply_to: Option<&ReplyTo>,
        now: i64,
    ) -> bool {
        let template = match content {
            Content::Template(name) => {
                let Some(t) = self.defs.templates.get(name) else {
                    self.suppress(item, "unknown_template", now);
                    return true;
                };
                Some(t)
            }
            Content::Text { .. } => None,
        };
        let class = class
            .or(template.map(|(t, _)| t.class))
            .unwrap_or(MessageClass::Transactional);
        let channel = channel.unwrap_or_else(|| {
            template
                .and_then(|(t, _)| t.variants.keys().next().cloned())
                .unwrap_or_else(|| "wecom".into())
        });
        // WeCom without customer service sends every message as a
        // group-send task: WeCom's daily quota applies to all of them.
        let kind = if self.wecom_sends_are_mass && channel == "wecom" {
            SendKind::Mass
        } else {
            kind
        };
        let unsubscribe_for = |canonical: &str| {
            format!(
                "{}/u/{}",
                self.public_url.trim_end_matches('/'),
                crate::links::sign(&self.link_secret, "unsubscribe", canonical)
            )
        };
        let prepared = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            match PersonSnapshot::of(&engine, &item.identity) {
                None => Err("person_erased"),
                Some(snap) => match recipient(&snap, &channel) {
                    None => Err("no_address"),
                    Some(to) => {
                        let unsubscribe = unsubscribe_for(&snap.canonical);
                        let vars = snap
                            .vars(&unsubscribe, &item.action)
                            .with_links(&self.public_url, &self.link_secret);
                        let (rendered, wechat_template) = match template {
                            Some((_, compiled)) => (
                                compiled.render(&channel, &vars),
                                // An Official Account send of a template with a
                                // template message goes out as that message.
                                (channel == "wechat")
                                    .then(|| compiled.render_wechat_template(&vars))
                                    .flatten(),
                            ),
                            // An operator's text goes out as written.
                            None => (
                                Ok(siyu_automation::template::Rendered {
                                    subject: None,
                                    body: content.text().to_string(),
                                    html: None,
                                }),
                                None,
                            ),
                        };
                        Ok((
                            unsubscribe,
                            to,
                            snap.identities.clone(),
                            snap.canonical.clone(),
                            snap.timezone(),
                            snap.opted_out,
                            (rendered, wechat_template),
                        ))
                    }
                },
            }
        };
        let (unsubscribe, to, ids, canonical, tz, opted_out, (rendered, wechat_template)) =
            match prepared {
                Ok(p) => p,
                Err(reason) => {
                    self.suppress(item, reason, now);
                    return true;
                }
            };
        // The message's unsubscribe and content links name the person by
        // an opaque link id, resolved through this record.
        if let Err(e) = crate::links::remember(self.store.as_mut(), &self.link_secret, &canonical) {
            tracing::warn!(error = %e, "link id not recorded: this message's links will not resolve");
        }
        // Consent across every identity of the person, in time order.
        let mut entries: Vec<&ConsentEntry> = ids
            .iter()
            .filter_map(|i| self.consent.get(i))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.ts);
        let consent = Consent::from_entries(entries.iter().copied());
        // An opt_out event is in the ledger; one from before the ledger
        // existed (imported history) still counts unless granted since.
        let contact = guard::Contact {
            opted_out: effective_opt_out(opted_out, &consent, &channel),
            consent: &consent,
            timezone: tz.as_deref(),
            history: self.ledger.history(&canonical),
        };
        let decision = guard::decide(
            &self.defs.policy,
            &contact,
            &guard::SendRequest {
                channel: &channel,
                class,
                kind,
            },
            now,
        );
        match decision {
            Decision::Suppress { reason } => {
                self.suppress(item, reason.code(), now);
                true
            }
            Decision::Delay { until, reason } => {
                self.delay(item, until, reason.code(), now);
                true
            }
            Decision::Send => {
                let rendered = match rendered {
                    Ok(r) => r,
                    Err(e) => {
                        self.suppress(item, &format!("template_error: {e}"), now);
                        return true;
                    }
                };
                let wechat_template = match wechat_template.transpose() {
                    Ok(t) => t.map(|t| siyu_connectors::wechat::TemplateMessage {
                        template_id: t.template_id,
                        data: t
                            .data
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect(),
                        url: t.url,
                    }),
                    Err(e) => {
                        self.suppress(item, &format!("template_error: {e}"), now);
                        return true;
                    }
                };
                // A customer-service message only within WeChat's window;
                // a template message is not bound to it.
                if channel == "wechat" && wechat_template.is_none() {
                    if let Some(refusal) = self.outside_wechat_window(&item.identity, &to, now) {
                        self.suppress(item, &refusal, now);
                        return true;
                    }
                }
                let msg = OutboundMessage {
                    idempotency_key: key,
                    channel: channel.clone(),
                    recipient: to,
                    identity: item.identity.clone(),
                    subject: rendered.subject,
                    body: rendered.body,
                    html: rendered.html,
                    // Marketing carries its one-click unsubscribe (e-mail:
                    // List-Unsubscribe, RFC 8058); transactional does not.
                    unsubscribe_url: (class == MessageClass::Marketing).then_some(unsubscribe),
                    mass: kind == SendKind::Mass,
                    data: {
                        let mut data = match content {
                            Content::Template(template) => {
                                serde_json::json!({"journey": item.journey, "template": template, "class": class})
                            }
                            Content::Text { operator, .. } => {
                                serde_json::json!({"operator": operator, "class": class})
                            }
                        };
                        if let Some(r) = reply_to {
                            data["reply_to"] = serde_json::to_value(r).unwrap_or_default();
                        }
                        data
                    },
                    wechat_template,
                };
                let text = msg.body.clone();
                let accepted = self.dispatch(item, msg, now);
                if accepted {
                    self.in_flight_text.insert(item.key.clone(), text);
                    self.ledger
                        .record(&canonical, SendRecord::new(now, &channel, class, kind));
                }
                accepted
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn group_post(
        &mut self,
        item: &OutboxItem,
        key: String,
        group: String,
        channel: String,
        template: &str,
        data: serde_json::Value,
        now: i64,
    ) -> bool {
        let Some((_, compiled)) = self.defs.templates.get(template) else {
            self.suppress(item, "unknown_template", now);
            return true;
        };
        let vars = |path: &str| -> Option<String> {
            let v = data.get(path.strip_prefix("campaign.").unwrap_or(path))?;
            Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))
        };
        let rendered = match compiled.render(&channel, &vars) {
            Ok(r) => r,
            Err(e) => {
                self.suppress(item, &format!("template_error: {e}"), now);
                return true;
            }
        };
        // One local day in the policy's timezone.
        let tz = person_tz(Some(&self.defs.policy.default_timezone));
        let day_start = schedule::day_start(now, &tz);
        let ledger_key = format!("group:{group}");
        let today = self
            .ledger
            .history(&ledger_key)
            .iter()
            .filter(|r| r.ts >= day_start)
            .count() as u32;
        if today >= self.defs.policy.group_posts_per_day {
            self.suppress(item, "group_daily_cap", now);
            return true;
        }
        let record = SendRecord::new(now, &channel, MessageClass::Marketing, SendKind::Mass);
        // The group's owner sends it (WeCom: the operator whose customer
        // group it is confirms the group-send task).
        let owner = match self
            .store
            .get_setting(&siyu_growth::community::groups::group_key(&group))
        {
            Ok(Some(def)) => def.get("owner").cloned(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%group, error = %e, "group owner not read; the default sender posts");
                None
            }
        };
        let mut data = serde_json::json!({"group": group, "template": template, "data": data});
        if let Some(owner) = owner {
            data["sender"] = owner;
        }
        let msg = OutboundMessage {
            idempotency_key: key,
            channel,
            recipient: group.clone(),
            identity: format!("group:{group}"),
            subject: rendered.subject,
            body: rendered.body,
            html: rendered.html,
            unsubscribe_url: None,
            mass: true,
            data,
            wechat_template: None,
        };
        let accepted = self.dispatch(item, msg, now);
        if accepted {
            self.ledger.record(&ledger_key, record);
        }
        accepted
    }

    /// Why a customer-service message to the Official Account follower
    /// `openid` cannot go now (WeChat accepts one only within 48 hours of
    /// the follower's last message, follow or scan), or `None` when it can.
    /// Read from the person's newest events (their own timeline).
    fn outside_wechat_window(&mut self, identity: &str, openid: &str, now: i64) -> Option<String> {
        const LOOK_AT: usize = 200;
        let wanted = format!("wechat:{openid}");
        let offsets = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            engine
                .person_of(identity)
                .and_then(|slot| engine.event_offsets(slot))
        };
        let last = offsets
            .and_then(|o| match self.store.timeline(&o, None, LOOK_AT) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "wechat window: timeline not read");
                    None
                }
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.event.identity.as_str() == wanted)
            .filter(|e| {
                matches!(
                    e.event.event_type,
                    EventType::Comment | EventType::Follow | EventType::Touch
                )
            })
            .map(|e| e.event.ts)
            .max();
        match last {
            Some(ts) if now - ts <= WECHAT_WINDOW_SECS => None,
            Some(ts) => Some(format!(
                "wechat_48h_window: the follower's last message, follow or scan was {} h ago; WeChat takes customer-service messages only within 48 h of it (send a template message for a transactional notice)",
                (now - ts) / 3600
            )),
            None => Some(
                "wechat_48h_window: this follower has not written to, followed or scanned the Official Account as far as siyu knows; WeChat takes customer-service messages only within 48 h of that".into(),
            ),
        }
    }

    /// The guardrails held a send until `until`: the item waits, pending,
    /// with the reason in its detail and its attempt log.
    fn delay(&mut self, item: &OutboxItem, until: i64, code: &str, now: i64) {
        self.metrics.send(&item_channel(item), "delayed");
        self.commit.updates.push(OutboxUpdate {
            key: item.key.clone(),
            status: OutboxStatus::Pending,
            attempts: item.attempts,
            detail: format!("delayed: {code}"),
            not_before: until,
            updated_at: now,
        });
        self.attempt(&item.key, "delayed", code, now);
        let mut later = item.clone();
        later.not_before = until;
        self.schedule(later, now);
    }

    fn suppress(&mut self, item: &OutboxItem, reason: &str, now: i64) {
        self.metrics.send(&item_channel(item), "suppressed");
        self.finish(
            &item.key,
            OutboxStatus::Suppressed,
            item.attempts,
            reason.to_string(),
            now,
        );
    }

    /// Hands a message to its channel's connector. A channel without one
    /// (Douyin, Xiaohongshu … reached through the brand's own bridge) goes
    /// to the webhook connector, with the channel in `data.channel`.
    fn dispatch(&mut self, item: &OutboxItem, mut msg: OutboundMessage, now: i64) -> bool {
        let Some(d) = &self.dispatcher else {
            self.finish(
                &item.key,
                OutboxStatus::Dead,
                1,
                "no connectors configured".into(),
                now,
            );
            return true;
        };
        if !d.has_channel(&msg.channel) && d.has_channel("webhook") {
            if let Some(o) = msg.data.as_object_mut() {
                o.insert("channel".into(), msg.channel.clone().into());
            }
            msg.channel = "webhook".into();
        }
        let channel = msg.channel.clone();
        match d.submit(msg) {
            Ok(()) => {
                self.in_flight.insert(item.key.clone(), item.clone());
                self.metrics.send(&item_channel(item), "submitted");
                self.attempt(&item.key, "sent", &channel, now);
                true
            }
            // The dispatcher dead-lettered it through the sink already.
            Err(siyu_connectors::SubmitError::UnknownChannel(_)) => {
                self.in_flight.insert(item.key.clone(), item.clone());
                true
            }
            Err(siyu_connectors::SubmitError::QueueFull { .. }) => {
                // Back-pressure: first in line again; answers resume it.
                self.ready.push_front(item.clone());
                false
            }
            Err(e) => {
                self.finish(&item.key, OutboxStatus::Dead, 1, e.to_string(), now);
                true
            }
        }
    }

    /// A message was delivered: count it for the caps and record a
    /// `message_sent` event (id = the key) for attribution, with the text
    /// sent when this process rendered it (at most [`SENT_TEXT_BYTES`]).
    fn after_send(&mut self, item: &OutboxItem, text: Option<String>, now: i64) {
        self.metrics.send(&item_channel(item), "delivered");
        let (key, template, channel, operator) =
            match serde_json::from_value::<Action>(item.action.clone()) {
                Ok(Action::Send {
                    key,
                    template,
                    channel,
                    ..
                }) => (key, Some(template), channel, None),
                Ok(Action::Reply {
                    key,
                    channel,
                    operator,
                    ..
                }) => (key, None, Some(channel), Some(operator)),
                _ => return,
            };
        let Ok(identity) = Identity::parse(&item.identity) else {
            return;
        };
        let ch = channel
            .as_deref()
            .and_then(Channel::parse)
            .or_else(|| Channel::parse(identity.channel()))
            .unwrap_or_else(|| Channel::parse("wecom").expect("valid"));
        let mut ev = Event::new(now, identity, EventType::MessageSent, ch);
        ev.id = Some(format!("sent/{key}"));
        let mut props = serde_json::Map::new();
        props.insert("key".into(), key.into());
        if let Some(template) = template {
            props.insert("template".into(), template.into());
        }
        if let Some(operator) = operator {
            // An operator's answer: it answers the customer's waiting
            // messages (`siyu_engine::conversation`).
            props.insert("operator".into(), operator.into());
            props.insert("reply".into(), true.into());
        }
        if let Some(j) = &item.journey {
            props.insert("journey".into(), j.clone().into());
        }
        if let Some(mut text) = text.filter(|t| !t.is_empty()) {
            if text.len() > SENT_TEXT_BYTES {
                let mut cut = SENT_TEXT_BYTES;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            props.insert("text".into(), text.into());
        }
        ev.properties = Some(props);
        self.sent_events.push(ev);
    }

    fn record_sent(&mut self, item: &OutboxItem) {
        let sent = match serde_json::from_value::<Action>(item.action.clone()) {
            Ok(Action::Send {
                channel,
                class,
                kind,
                template,
                ..
            }) => Some((
                channel,
                class
                    .or_else(|| self.defs.templates.get(&template).map(|t| t.0.class))
                    .unwrap_or(MessageClass::Marketing),
                kind,
            )),
            Ok(Action::Reply { channel, .. }) => {
                Some((Some(channel), MessageClass::Transactional, SendKind::Direct))
            }
            _ => None,
        };
        if let Some((channel, class, kind)) = sent {
            let channel = channel.unwrap_or_else(|| "wecom".into());
            let kind = if self.wecom_sends_are_mass && channel == "wecom" {
                SendKind::Mass
            } else {
                kind
            };
            let canonical = {
                let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
                engine.person_of(&item.identity).map_or_else(
                    || item.identity.clone(),
                    |s| engine.canonical_id(s).to_string(),
                )
            };
            self.ledger.record(
                &canonical,
                SendRecord::new(item.updated_at, &channel, class, kind),
            );
        }
    }

    /// Appends events through the writer and waits for the commit (the
    /// outbox item is marked done only after its event is durable).
    fn append_sync(&mut self, events: Vec<Event>) {
        let (tx, rx) = oneshot::channel();
        if self
            .writer
            .send(Command::Append {
                events,
                reply: tx,
                request: crate::trace::current(),
            })
            .is_err()
        {
            return;
        }
        match rx.blocking_recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // Not acknowledged: leave the items pending for a retry.
                tracing::error!(error = %e, "appending automation events failed");
                for u in &mut self.commit.updates {
                    if u.status == OutboxStatus::Done {
                        u.status = OutboxStatus::Pending;
                    }
                }
            }
            Err(_) => tracing::warn!("writer stopped before acknowledging automation events"),
        }
    }

    /// Appends without waiting (the writer may be waiting on us).
    fn append_async(&mut self, events: Vec<Event>) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.writer.send(Command::Append {
            events,
            reply: tx,
            request: crate::trace::current(),
        });
    }
}

/// The secret that signs unsubscribe links: made once, kept in settings.
pub fn link_secret(config: &crate::config::Config) -> anyhow::Result<Vec<u8>> {
    let mut store = config.open_store()?;
    if let Some(serde_json::Value::String(hex)) = store.get_setting(LINK_SECRET_KEY)? {
        return Ok(hex.into_bytes());
    }
    let hex = siyu_console::accounts::hex(&siyu_console::accounts::random_bytes::<32>()?);
    // Nodes starting at once on an empty database: one secret wins, and
    // every node reads back the winner's.
    store.put_setting_if_absent(LINK_SECRET_KEY, &serde_json::Value::String(hex))?;
    match store.get_setting(LINK_SECRET_KEY)? {
        Some(serde_json::Value::String(hex)) => Ok(hex.into_bytes()),
        _ => anyhow::bail!("setting `{LINK_SECRET_KEY}` is not a string; restore it from a backup"),
    }
}

fn consent_is_default(c: &Consent) -> bool {
    *c == Consent::default()
}

/// The opt-out `guard::decide` is given for a send on `channel`: the
/// engine's (an `opt_out` event, imported history too) unless the ledger
/// has a word since, or a global revocation in the ledger. The executor's
/// sends and the Moments audience (`crate::moments`) read it here.
pub(crate) fn effective_opt_out(engine_opted_out: bool, consent: &Consent, channel: &str) -> bool {
    let ledger_has_global = !consent_is_default(consent);
    let revoked_globally = consent.state(channel) == guard::ConsentState::RevokedGlobal;
    (engine_opted_out && !ledger_has_global) || revoked_globally
}

fn event_kind(ev: &Event) -> &str {
    match ev.event_type {
        EventType::Comment => "comment",
        _ => "message",
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One row per enrollment id: the latest state, the first (real) entry key.
fn merge_rows(rows: Vec<EnrollmentRow>) -> Vec<EnrollmentRow> {
    let mut out: Vec<EnrollmentRow> = Vec::with_capacity(rows.len());
    let mut at: HashMap<u64, usize> = HashMap::new();
    for r in rows {
        match at.get(&r.id) {
            Some(&i) => {
                let key = std::mem::take(&mut out[i].entry_key);
                out[i] = r;
                if !key.is_empty() {
                    out[i].entry_key = key;
                }
            }
            None => {
                at.insert(r.id, out.len());
                out.push(r);
            }
        }
    }
    out
}

fn row(e: &Enrollment, entry_key: String) -> EnrollmentRow {
    EnrollmentRow {
        id: e.id,
        journey: e.journey.clone(),
        version: e.version,
        identity: e.identity.clone(),
        entry_key,
        entered_at: e.entered_at,
        wake_at: e.wake_at().map(|w| w.max(0)),
        done: e.is_done(),
        state: serde_json::to_value(e).unwrap_or_default(),
    }
}

/// The timezone a person's local times are computed in.
pub fn person_tz(tz: Option<&str>) -> Tz {
    Tz::parse_or(tz, schedule::DEFAULT_TZ)
}

/// What a send says: a template rendered for the person (journeys, mass
/// sends, auto-replies) or an operator's own text (the inbox).
#[derive(Clone, Copy)]
enum Content<'a> {
    Template(&'a str),
    Text { text: &'a str, operator: &'a str },
}

impl Content<'_> {
    /// An operator's text (empty for a template).
    fn text(&self) -> &str {
        match self {
            Content::Text { text, .. } => text,
            Content::Template(_) => "",
        }
    }
}

/// The channel an outbox item is for, as `/metrics` labels its sends: the
/// step's channel (`default`: the template's first variant), `webhook`, a
/// group post's channel, `internal` for effects that send nothing.
fn item_channel(item: &OutboxItem) -> String {
    match serde_json::from_value::<Action>(item.action.clone()) {
        Ok(Action::Send { channel, .. }) => channel.unwrap_or_else(|| "default".into()),
        Ok(Action::GroupPost { channel, .. }) => channel,
        Ok(Action::Webhook { .. }) => "webhook".into(),
        Ok(Action::ApiCall { channel, .. }) => channel,
        Ok(Action::Reply { channel, .. }) => channel,
        Ok(_) => "internal".into(),
        Err(_) => "unknown".into(),
    }
}
