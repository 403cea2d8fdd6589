//! The WeCom sync: a resumable job that imports the corp's existing
//! customers, their corp tags and the customer groups' members
//! (`siyu_connectors::wecom::sync`) as the events the callbacks make, with
//! the callbacks' ids — a second run, or a callback for a contact the
//! sync brought, stores nothing new.
//!
//! Phases: `tags` (the corp tag list, and the operators:
//! `get_follow_user_list`, or those the request names), `contacts`
//! (`batch/get_by_user` for one operator at a time, page by page),
//! `groups` (`groupchat/list` pages, `groupchat/get` for each group),
//! `done`. The job's state is the setting [`SYNC_KEY`], written after
//! every page (every group): the checkpoint. A failed call (5xx, a
//! timeout, an errcode) stops the job as `failed` with the error; the
//! next `POST /v1/wecom/sync` resumes from the checkpointed operator and
//! cursor, and a job left `running` by a node that stopped is resumed by
//! the node leading then ([`spawn`]). Only the node holding the
//! automation lease (`crate::leader`) runs it; it stops between pages if
//! the lease moves.
//!
//! History: the events are appended as backfill
//! (`WriterHandle::append_history`): no journey, auto-reply or welcome
//! reacts to a contact added months ago, however recently it was
//! imported.

use crate::error::ApiError;
use crate::request::with_store;
use crate::AppState;
use serde::{Deserialize, Serialize};
use siyu_connectors::wecom::sync::{
    contact_events, group_events, CONTACTS_PAGE_LIMIT, GROUPS_PAGE_LIMIT,
};
use siyu_connectors::wecom::tags::CorpTags;
use siyu_connectors::WeComConnector;
use siyu_domain::Event;
use siyu_store::Appended;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The job's state and checkpoint.
pub const SYNC_KEY: &str = "wecom/sync";
/// Errors kept in the state (the latest).
const KEPT_ERRORS: usize = 20;
/// How often the leader looks for a job to run or resume.
const LOOK_EVERY: Duration = Duration::from_secs(2);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Asked for; the leading node starts it.
    #[default]
    Requested,
    Running,
    Done,
    /// Stopped by an error; `POST` resumes from the checkpoint.
    Failed,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    #[default]
    Tags,
    Contacts,
    Groups,
    Done,
}

/// `GET /v1/wecom/sync`: what the job did and where it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct SyncState {
    pub status: SyncStatus,
    pub phase: SyncPhase,
    /// The operators (WeCom `userid`s) whose customers are read.
    pub operators: Vec<String>,
    /// Operators whose customers were all read.
    pub operators_done: usize,
    pub operators_total: usize,
    /// The operators named by the request (empty: every member with
    /// customer-contact permission).
    #[serde(default)]
    pub only_operators: Vec<String>,
    /// Where the next page starts: `batch/get_by_user`'s cursor for the
    /// current operator, or `groupchat/list`'s.
    pub cursor: String,
    /// Groups of the current `groupchat/list` page already read.
    pub groups_in_page_done: usize,
    /// Contacts read (one per customer and operator).
    pub contacts: u64,
    /// Customer groups read.
    pub groups: u64,
    /// Events the store did not have yet.
    pub events_stored: u64,
    /// Pages read (contacts and groups lists).
    pub pages: u64,
    /// Errors in all (a contact that cannot be an event, a failed call).
    pub error_count: u64,
    /// The latest errors.
    pub errors: Vec<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

impl SyncState {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        self.errors.push(e);
        if self.errors.len() > KEPT_ERRORS {
            self.errors.remove(0);
        }
    }
}

/// The WeCom client the sync uses and whether this process runs the job.
#[derive(Default)]
pub struct SyncRunner {
    pub client: Option<Arc<WeComConnector>>,
    running: AtomicBool,
}

impl SyncRunner {
    pub fn new(
        cfg: &siyu_connectors::ConnectorsConfig,
    ) -> Result<Self, siyu_connectors::ConfigError> {
        Ok(SyncRunner {
            client: match &cfg.wecom {
                Some(w) => Some(Arc::new(WeComConnector::new(w)?)),
                None => None,
            },
            running: AtomicBool::new(false),
        })
    }
}

pub async fn load(state: &AppState) -> Result<Option<SyncState>, ApiError> {
    with_store(state, |store| {
        Ok(store
            .get_setting(SYNC_KEY)?
            .and_then(|v| serde_json::from_value(v).ok()))
    })
    .await
}

async fn save(state: &AppState, s: &mut SyncState) -> Result<(), ApiError> {
    s.updated_at = crate::request::now();
    let v = serde_json::to_value(&*s).map_err(|e| ApiError::Internal(e.to_string()))?;
    with_store(state, move |store| {
        Ok(store.put_setting(SYNC_KEY, Some(&v))?)
    })
    .await
}

/// What `POST /v1/wecom/sync` asks.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Start over rather than resume a failed job from its checkpoint.
    #[serde(default)]
    pub restart: bool,
    /// Only these operators' customers and groups (WeCom `userid`s).
    #[serde(default)]
    pub operators: Vec<String>,
}

/// Records the request (409 while a job is requested or running) and,
/// on the leading node, starts the job. Answers the state recorded.
pub async fn request(state: &AppState, req: SyncRequest) -> Result<SyncState, ApiError> {
    if state.0.wecom_sync.client.is_none() {
        return Err(ApiError::NotFound(
            "WeCom is not configured: set [connectors.wecom] corp_id, secret and sender".into(),
        ));
    }
    let now = crate::request::now();
    let current = load(state).await?;
    let mut next = match current {
        Some(s) if matches!(s.status, SyncStatus::Requested | SyncStatus::Running) => {
            return Err(ApiError::Conflict(format!(
                "a WeCom sync is {} (phase {:?}, {} of {} operators); GET /v1/wecom/sync shows its progress",
                if s.status == SyncStatus::Running { "running" } else { "requested" },
                s.phase,
                s.operators_done,
                s.operators_total
            )));
        }
        Some(s) if s.status == SyncStatus::Failed && !req.restart && req.operators.is_empty() => {
            SyncState {
                status: SyncStatus::Requested,
                finished_at: None,
                ..s
            }
        }
        _ => SyncState {
            status: SyncStatus::Requested,
            only_operators: req.operators,
            started_at: Some(now),
            ..SyncState::default()
        },
    };
    save(state, &mut next).await?;
    if state.0.leader.is_leader() {
        start(state.clone());
    }
    Ok(next)
}

/// Runs the job in a task of its own unless this process runs it already.
fn start(state: AppState) {
    if state.0.wecom_sync.running.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        let result = run(&state).await;
        state.0.wecom_sync.running.store(false, Ordering::SeqCst);
        if let Err(e) = result {
            tracing::warn!(error = %e, "wecom sync stopped");
        }
    });
}

/// On the leading node: starts a requested job and resumes one left
/// running (by a node that stopped, or before a restart).
pub fn spawn(state: AppState) {
    if state.0.wecom_sync.client.is_none() {
        return;
    }
    let app = Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(LOOK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let Some(inner) = app.upgrade() else { break };
            if !inner.leader.is_leader() || inner.wecom_sync.running.load(Ordering::SeqCst) {
                continue;
            }
            let state = AppState(inner);
            match load(&state).await {
                Ok(Some(s)) if matches!(s.status, SyncStatus::Requested | SyncStatus::Running) => {
                    tracing::info!(phase = ?s.phase, "wecom sync resumed by the leading node");
                    start(state);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "wecom sync state unreadable"),
            }
        }
    });
}

/// Appends `events` as history; how many were new.
async fn append(state: &AppState, events: Vec<Event>) -> Result<u64, String> {
    if events.is_empty() {
        return Ok(0);
    }
    let appended = state.0.writer.append_history(events).await?;
    Ok(appended
        .iter()
        .filter(|a| matches!(a, Appended::New(_)))
        .count() as u64)
}

async fn run(state: &AppState) -> Result<(), ApiError> {
    let Some(client) = state.0.wecom_sync.client.clone() else {
        return Ok(());
    };
    let Some(mut s) = load(state).await? else {
        return Ok(());
    };
    if !matches!(s.status, SyncStatus::Requested | SyncStatus::Running) {
        return Ok(());
    }
    s.status = SyncStatus::Running;
    save(state, &mut s).await?;
    let outcome = steps(state, &client, &mut s).await;
    match outcome {
        Ok(true) => {
            s.status = SyncStatus::Done;
            s.phase = SyncPhase::Done;
            s.finished_at = Some(crate::request::now());
            tracing::info!(
                contacts = s.contacts,
                groups = s.groups,
                stored = s.events_stored,
                "wecom sync done"
            );
        }
        // The lease moved: the new leader resumes it.
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "wecom sync failed; POST /v1/wecom/sync resumes it");
            s.error(e);
            s.status = SyncStatus::Failed;
            s.finished_at = Some(crate::request::now());
        }
    }
    save(state, &mut s).await
}

/// The phases from where `s` stands. `Ok(false)`: stopped because this
/// node no longer leads; `Err`: the call or append that failed.
async fn steps(
    state: &AppState,
    client: &WeComConnector,
    s: &mut SyncState,
) -> Result<bool, String> {
    let corp_tags = client
        .corp_tags()
        .await
        .map_err(|e| format!("get_corp_tag_list: {e}"))?;
    let tags = CorpTags::from_groups(&corp_tags);
    if s.phase == SyncPhase::Tags {
        s.operators = if s.only_operators.is_empty() {
            client
                .follow_users()
                .await
                .map_err(|e| format!("get_follow_user_list: {e}"))?
        } else {
            s.only_operators.clone()
        };
        s.operators_total = s.operators.len();
        s.operators_done = 0;
        s.cursor.clear();
        s.phase = SyncPhase::Contacts;
        save(state, s).await.map_err(|e| e.to_string())?;
    }
    while s.phase == SyncPhase::Contacts {
        if !state.0.leader.is_leader() {
            return Ok(false);
        }
        let Some(operator) = s.operators.get(s.operators_done).cloned() else {
            s.phase = SyncPhase::Groups;
            s.cursor.clear();
            s.groups_in_page_done = 0;
            save(state, s).await.map_err(|e| e.to_string())?;
            break;
        };
        let page = client
            .contacts_page(
                std::slice::from_ref(&operator),
                &s.cursor,
                CONTACTS_PAGE_LIMIT,
            )
            .await
            .map_err(|e| {
                format!(
                    "batch/get_by_user for {operator} at cursor {:?}: {e}",
                    s.cursor
                )
            })?;
        let mut events = Vec::new();
        for c in &page.contacts {
            match contact_events(c, &tags.names) {
                Ok(evs) => events.extend(evs),
                Err(e) => s.error(e.to_string()),
            }
        }
        s.events_stored += append(state, events).await?;
        s.contacts += page.contacts.len() as u64;
        s.pages += 1;
        if page.next_cursor.is_empty() {
            s.operators_done += 1;
            s.cursor.clear();
        } else {
            s.cursor = page.next_cursor;
        }
        save(state, s).await.map_err(|e| e.to_string())?;
    }
    while s.phase == SyncPhase::Groups {
        if !state.0.leader.is_leader() {
            return Ok(false);
        }
        let page = client
            .groups_page(&s.only_operators, &s.cursor, GROUPS_PAGE_LIMIT)
            .await
            .map_err(|e| format!("groupchat/list at cursor {:?}: {e}", s.cursor))?;
        for chat_id in page.chat_ids.iter().skip(s.groups_in_page_done) {
            let chat = client
                .group_chat(chat_id)
                .await
                .map_err(|e| format!("groupchat/get {chat_id}: {e}"))?;
            let (events, errors) = group_events(&chat);
            for e in errors {
                s.error(e.to_string());
            }
            s.events_stored += append(state, events).await?;
            s.groups += 1;
            s.groups_in_page_done += 1;
            save(state, s).await.map_err(|e| e.to_string())?;
        }
        s.pages += 1;
        s.groups_in_page_done = 0;
        if page.next_cursor.is_empty() {
            s.phase = SyncPhase::Done;
            s.cursor.clear();
        } else {
            s.cursor = page.next_cursor;
        }
        save(state, s).await.map_err(|e| e.to_string())?;
    }
    Ok(true)
}
