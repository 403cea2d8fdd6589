//! What siyu does in WeCom itself, beyond sending: the QR code behind a
//! WeCom-backed live code, the customer and group inheritance behind an
//! operator hand-over, and the results of group-send tasks. The calls are
//! `siyu_connectors::wecom::{contact_way, transfer, send_result}`; this
//! module keeps their state in the store and runs what must run once on
//! the leader (`crate::leader`): [`spawn`]'s loop, [`tick_transfers`] and
//! [`tick_send_results`] every [`TICK_EVERY`].
//!
//! Why the hand-over is a stored job ([`TransferJob`], setting
//! `wecom/handover/<login>/<at>`): WeCom answers a transfer at once only
//! per customer ("refused now", errcode), and the real outcome comes
//! later (the customer may refuse within 24 hours; the takeover member
//! may hit WeCom's customer limit). The job records each customer's and
//! group's state; the leader's loop makes the calls still to make (at
//! most 100 customers or groups a call), polls `transfer_result` while a
//! customer waits, and writes one `operator_handover_wecom` audit record
//! when nothing waits any more. A restart, or another node taking the
//! lease, resumes from the stored job. A crash between a WeCom call and
//! the job's save repeats that call once; WeCom then refuses the
//! customers it is already moving, which the job records as refused now
//! with WeCom's errcode. A `transfer_fail` callback updates the stored
//! job from whichever node received it; should the leader's tick save
//! the same job at that moment, the callback's word is lost, and the
//! next `transfer_result` (status 3 or 4) says the same.
//!
//! Why group-send results are polled: `add_msg_template` only makes a
//! task the operator confirms in WeCom; the outbox item it answered is
//! done with a detail naming the `msgid` (`send_result::awaiting`). The
//! loop reads each such recent task's per-member and per-recipient
//! results and hands the executor each item's verdict (delivered, or dead
//! with WeCom's reason: not a friend, already received a group message
//! today); a task nobody sent within [`SEND_RESULT_EXPIRY`] is dead too.

use crate::automation::SendReport;
use crate::error::ApiError;
use crate::request::with_store;
use crate::AppState;
use serde::{Deserialize, Serialize};
use siyu_connectors::wecom::contact_way::{ContactWay, JoinWay};
use siyu_connectors::wecom::send_result;
use siyu_connectors::wecom::transfer::{self, Mode, ResultStatus};
use siyu_connectors::{SendError, WeComConnector};
use siyu_growth::community::livecode::{LiveCode, WeComWay, WeComWayKind};
use siyu_store::{AuditRecord, OutboxItem};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How often the leader advances hand-over transfers and reads
/// group-send results.
pub const TICK_EVERY: Duration = Duration::from_secs(30);
/// Settings prefix of the hand-over transfer jobs.
pub const TRANSFER_PREFIX: &str = "wecom/handover/";
/// A group-send task not sent within this long is given up (dead).
pub const SEND_RESULT_EXPIRY: i64 = 3 * 86_400;
/// `transfer_result` pages read per takeover member and tick.
const MAX_RESULT_PAGES: usize = 50;
/// Group-send tasks read per tick (the rest at the next).
const MAX_TASKS_PER_TICK: usize = 200;

/// The WeCom API client, or a 422 naming what to configure.
pub fn client(state: &AppState, field: &str) -> Result<Arc<WeComConnector>, ApiError> {
    state.0.wecom.clone().ok_or_else(|| {
        ApiError::InvalidDefinition(format!(
            "{field}: WeCom is not configured; set [connectors.wecom] (corp_id, secret, sender) first"
        ))
    })
}

fn upstream(call: &str, e: &SendError) -> ApiError {
    ApiError::Upstream(format!("wecom {call}: {}", e.detail()))
}

// ---------- live codes ----------

fn contact_way(id: &str, members: &[String]) -> ContactWay {
    ContactWay {
        users: members.to_vec(),
        state: id.to_string(),
        skip_verify: true,
        remark: Some(id.to_string()),
    }
}

fn join_way(id: &str, members: &[String]) -> JoinWay {
    JoinWay {
        chat_ids: members.to_vec(),
        state: id.to_string(),
        auto_create_room: false,
        room_base_name: None,
        room_base_id: None,
        remark: Some(id.to_string()),
    }
}

/// Makes WeCom's QR code behind live code `id` match `code`: made when
/// it has none (`add_contact_way` / `groupchat/add_join_way`), updated
/// when its operators or groups changed (same QR code), deleted when the
/// backing is gone or its kind changed. Returns what to store (None:
/// nothing). A WeCom refusal is a 502 naming the call; nothing changed
/// on siyu's side then.
pub async fn sync_way(
    state: &AppState,
    id: &str,
    code: &LiveCode,
    previous: Option<WeComWay>,
    at: i64,
) -> Result<Option<WeComWay>, ApiError> {
    let wanted = code.wecom_members(id)?;
    if wanted.is_none() && previous.is_none() {
        return Ok(None);
    }
    let wecom = client(state, "backing")?;
    match (wanted, previous) {
        (None, None) => Ok(None),
        (None, Some(p)) => {
            delete_way(&wecom, &p).await?;
            Ok(None)
        }
        (Some((kind, members)), Some(p)) if p.kind == kind => {
            if p.members == members {
                return Ok(Some(p));
            }
            match kind {
                WeComWayKind::ContactWay => wecom
                    .update_contact_way(&p.config_id, &contact_way(id, &members))
                    .await
                    .map_err(|e| upstream("update_contact_way", &e))?,
                WeComWayKind::JoinWay => wecom
                    .update_join_way(&p.config_id, &join_way(id, &members))
                    .await
                    .map_err(|e| upstream("groupchat/update_join_way", &e))?,
            }
            Ok(Some(WeComWay {
                members,
                updated_at: at,
                ..p
            }))
        }
        (Some((kind, members)), previous) => {
            if let Some(p) = previous {
                delete_way(&wecom, &p).await?;
            }
            let made = match kind {
                WeComWayKind::ContactWay => wecom
                    .add_contact_way(&contact_way(id, &members))
                    .await
                    .map_err(|e| upstream("add_contact_way", &e))?,
                WeComWayKind::JoinWay => wecom
                    .add_join_way(&join_way(id, &members))
                    .await
                    .map_err(|e| upstream("groupchat/add_join_way", &e))?,
            };
            Ok(Some(WeComWay {
                kind,
                config_id: made.config_id,
                qr_code: made.qr_code,
                members,
                state: id.to_string(),
                updated_at: at,
            }))
        }
    }
}

async fn delete_way(wecom: &WeComConnector, way: &WeComWay) -> Result<(), ApiError> {
    match way.kind {
        WeComWayKind::ContactWay => wecom
            .del_contact_way(&way.config_id)
            .await
            .map_err(|e| upstream("del_contact_way", &e)),
        WeComWayKind::JoinWay => wecom
            .del_join_way(&way.config_id)
            .await
            .map_err(|e| upstream("groupchat/del_join_way", &e)),
    }
}

/// Deletes the QR code behind an archived live code.
pub async fn remove_way(state: &AppState, way: &WeComWay) -> Result<(), ApiError> {
    let wecom = client(state, "backing")?;
    delete_way(&wecom, way).await
}

// ---------- hand-over transfers ----------

/// Where one customer's (or group's) transfer stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Not asked yet.
    Queued,
    /// WeCom took the request; the customer may still refuse.
    Waiting,
    /// Moved.
    Done,
    /// The customer refused (transfer_result status 3, or the
    /// `transfer_fail` callback).
    Refused,
    /// The takeover member reached WeCom's customer limit (status 4).
    Limit,
    /// Not the operator's friend in WeCom (status 5).
    NoRelationship,
    /// WeCom refused the request itself (the errcode in `errcode`).
    Failed,
}

impl TransferState {
    fn open(self) -> bool {
        matches!(self, TransferState::Queued | TransferState::Waiting)
    }
    fn refused(self) -> bool {
        matches!(
            self,
            TransferState::Refused
                | TransferState::Limit
                | TransferState::NoRelationship
                | TransferState::Failed
        )
    }
}

/// One customer of a hand-over in WeCom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CustomerTransfer {
    pub external_userid: String,
    /// The new owner's login (= WeCom `userid`).
    pub takeover: String,
    pub state: TransferState,
    /// WeCom's per-customer errcode when it refused the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One customer group of a hand-over in WeCom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupTransfer {
    pub chat_id: String,
    pub new_owner: String,
    pub state: TransferState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A hand-over's WeCom side, stored at `wecom/handover/<login>/<at>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TransferJob {
    pub login: String,
    pub at: i64,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_success_msg: Option<String>,
    pub customers: Vec<CustomerTransfer>,
    pub groups: Vec<GroupTransfer>,
    /// The last call that failed and will be made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl TransferJob {
    /// A job for `customers` (external_userid, new owner) and `groups`
    /// (chat id, new owner); `None` when there is nothing to move in WeCom.
    pub fn new(
        login: &str,
        at: i64,
        mode: Mode,
        transfer_success_msg: Option<String>,
        customers: Vec<(String, String)>,
        groups: Vec<(String, String)>,
    ) -> Option<TransferJob> {
        if customers.is_empty() && groups.is_empty() {
            return None;
        }
        let mut seen = BTreeSet::new();
        Some(TransferJob {
            login: login.to_string(),
            at,
            mode,
            transfer_success_msg,
            customers: customers
                .into_iter()
                .filter(|(c, _)| seen.insert(c.clone()))
                .map(|(external_userid, takeover)| CustomerTransfer {
                    external_userid,
                    takeover,
                    state: TransferState::Queued,
                    errcode: None,
                    reason: None,
                })
                .collect(),
            groups: groups
                .into_iter()
                .map(|(chat_id, new_owner)| GroupTransfer {
                    chat_id,
                    new_owner,
                    state: TransferState::Queued,
                    errcode: None,
                    reason: None,
                })
                .collect(),
            last_error: None,
            finished_at: None,
        })
    }

    pub fn key(&self) -> String {
        format!("{TRANSFER_PREFIX}{}/{}", self.login, self.at)
    }

    fn open(&self) -> bool {
        self.customers.iter().any(|c| c.state.open()) || self.groups.iter().any(|g| g.state.open())
    }

    /// What the status API and the audit record say.
    pub fn status(&self) -> TransferStatus {
        let mut customers: BTreeMap<TransferState, u64> = BTreeMap::new();
        for c in &self.customers {
            *customers.entry(c.state).or_default() += 1;
        }
        let mut groups: BTreeMap<TransferState, u64> = BTreeMap::new();
        for g in &self.groups {
            *groups.entry(g.state).or_default() += 1;
        }
        TransferStatus {
            login: self.login.clone(),
            at: self.at,
            mode: self.mode,
            finished: self.finished_at.is_some(),
            finished_at: self.finished_at,
            customers,
            groups,
            refused: self
                .customers
                .iter()
                .filter(|c| c.state.refused())
                .cloned()
                .collect(),
            groups_refused: self
                .groups
                .iter()
                .filter(|g| g.state.refused())
                .cloned()
                .collect(),
            last_error: self.last_error.clone(),
        }
    }
}

/// A hand-over's WeCom transfer as the API answers it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TransferStatus {
    pub login: String,
    /// The hand-over's time (epoch seconds).
    pub at: i64,
    pub mode: Mode,
    /// Nothing waits any more (the audit record is written).
    pub finished: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Customers per state.
    pub customers: BTreeMap<TransferState, u64>,
    /// Groups per state.
    pub groups: BTreeMap<TransferState, u64>,
    /// The customers WeCom did not move, each with why (errcode or
    /// reason).
    pub refused: Vec<CustomerTransfer>,
    pub groups_refused: Vec<GroupTransfer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Stores a new transfer job (the leader's loop runs it).
pub async fn start_transfer(
    state: &AppState,
    job: TransferJob,
) -> Result<TransferStatus, ApiError> {
    let status = job.status();
    save_job(state, job).await?;
    Ok(status)
}

async fn save_job(state: &AppState, job: TransferJob) -> Result<(), ApiError> {
    with_store(state, move |store| {
        let v = serde_json::to_value(&job).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put_setting(&job.key(), Some(&v))?;
        Ok(())
    })
    .await
}

/// Every transfer job of `login` (all when `None`), oldest first; an
/// unreadable one is logged and left out.
pub async fn load_jobs(
    state: &AppState,
    login: Option<&str>,
) -> Result<Vec<TransferJob>, ApiError> {
    let prefix = match login {
        Some(l) => format!("{TRANSFER_PREFIX}{l}/"),
        None => TRANSFER_PREFIX.to_string(),
    };
    with_store(state, move |store| {
        let mut jobs = Vec::new();
        for (key, v) in store.list_settings_each(&prefix)? {
            match v
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::from_value::<TransferJob>(v).map_err(|e| e.to_string()))
            {
                Ok(j) => jobs.push(j),
                Err(e) => {
                    crate::quarantine::Broken::skipped(&key, e);
                }
            }
        }
        jobs.sort_by_key(|j| j.at);
        Ok(jobs)
    })
    .await
}

/// Advances every open transfer job once (the calls still to make, then
/// the results of waiting customers); finished jobs get their audit
/// record. Returns the jobs touched. Called by [`spawn`]'s loop on the
/// leader, and by tests.
pub async fn tick_transfers(state: &AppState, at: i64) -> Result<usize, ApiError> {
    let Some(wecom) = state.0.wecom.clone() else {
        return Ok(0);
    };
    let jobs: Vec<TransferJob> = load_jobs(state, None)
        .await?
        .into_iter()
        .filter(|j| j.finished_at.is_none())
        .collect();
    let n = jobs.len();
    for mut job in jobs {
        advance(state, &wecom, &mut job, at).await?;
    }
    Ok(n)
}

/// One job: each call's outcome is saved before the next call.
async fn advance(
    state: &AppState,
    wecom: &WeComConnector,
    job: &mut TransferJob,
    at: i64,
) -> Result<(), ApiError> {
    // 1. Customers not asked yet, per takeover member, 100 a call.
    let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in job
        .customers
        .iter()
        .filter(|c| c.state == TransferState::Queued)
    {
        queued
            .entry(c.takeover.clone())
            .or_default()
            .push(c.external_userid.clone());
    }
    for (takeover, ids) in queued {
        for chunk in ids.chunks(transfer::MAX_PER_CALL) {
            let answer = wecom
                .transfer_customers(
                    job.mode,
                    &job.login,
                    &takeover,
                    chunk,
                    job.transfer_success_msg.as_deref(),
                )
                .await;
            let answers =
                match answer {
                    Ok(a) => a,
                    Err(e @ SendError::Retryable(_)) => {
                        job.last_error = Some(e.detail().to_string());
                        return save_job(state, job.clone()).await;
                    }
                    Err(e) => {
                        for c in job.customers.iter_mut().filter(|c| {
                            c.takeover == takeover && chunk.contains(&c.external_userid)
                        }) {
                            c.state = TransferState::Failed;
                            c.reason = Some(e.detail().to_string());
                        }
                        save_job(state, job.clone()).await?;
                        continue;
                    }
                };
            let errcodes: BTreeMap<&str, i64> = answers
                .iter()
                .map(|a| (a.external_userid.as_str(), a.errcode))
                .collect();
            for c in job
                .customers
                .iter_mut()
                .filter(|c| c.takeover == takeover && chunk.contains(&c.external_userid))
            {
                match errcodes
                    .get(c.external_userid.as_str())
                    .copied()
                    .unwrap_or(0)
                {
                    0 => c.state = TransferState::Waiting,
                    code => {
                        c.state = TransferState::Failed;
                        c.errcode = Some(code);
                        c.reason = Some(format!("WeCom refused the transfer (errcode {code})"));
                    }
                }
            }
            job.last_error = None;
            save_job(state, job.clone()).await?;
        }
    }
    // 2. Groups, per new owner, 100 a call: moved at once unless listed.
    let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in job
        .groups
        .iter()
        .filter(|g| g.state == TransferState::Queued)
    {
        queued
            .entry(g.new_owner.clone())
            .or_default()
            .push(g.chat_id.clone());
    }
    for (owner, chats) in queued {
        for chunk in chats.chunks(transfer::MAX_PER_CALL) {
            let failed = match wecom.transfer_groups(job.mode, chunk, &owner).await {
                Ok(f) => f,
                Err(e @ SendError::Retryable(_)) => {
                    job.last_error = Some(e.detail().to_string());
                    return save_job(state, job.clone()).await;
                }
                Err(e) => chunk
                    .iter()
                    .map(|c| transfer::FailedChat {
                        chat_id: c.clone(),
                        errcode: 0,
                        errmsg: e.detail().to_string(),
                    })
                    .collect(),
            };
            for g in job
                .groups
                .iter_mut()
                .filter(|g| g.new_owner == owner && chunk.contains(&g.chat_id))
            {
                match failed.iter().find(|f| f.chat_id == g.chat_id) {
                    None => g.state = TransferState::Done,
                    Some(f) => {
                        g.state = TransferState::Failed;
                        g.errcode = (f.errcode != 0).then_some(f.errcode);
                        g.reason = Some(if f.errmsg.is_empty() {
                            format!("WeCom refused the transfer (errcode {})", f.errcode)
                        } else {
                            f.errmsg.clone()
                        });
                    }
                }
            }
            job.last_error = None;
            save_job(state, job.clone()).await?;
        }
    }
    // 3. The results of waiting customers, per takeover member.
    let waiting: BTreeSet<String> = job
        .customers
        .iter()
        .filter(|c| c.state == TransferState::Waiting)
        .map(|c| c.takeover.clone())
        .collect();
    for takeover in waiting {
        let mut cursor = String::new();
        for _ in 0..MAX_RESULT_PAGES {
            let page = match wecom
                .transfer_result(job.mode, &job.login, &takeover, &cursor)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    job.last_error = Some(e.detail().to_string());
                    break;
                }
            };
            for r in &page.customers {
                let Some(c) = job.customers.iter_mut().find(|c| {
                    c.takeover == takeover
                        && c.external_userid == r.external_userid
                        && c.state == TransferState::Waiting
                }) else {
                    continue;
                };
                let (settled, reason) = match r.status {
                    ResultStatus::Done => (TransferState::Done, None),
                    ResultStatus::Refused => (
                        TransferState::Refused,
                        Some("the customer refused the transfer (transfer_result status 3)"),
                    ),
                    ResultStatus::Limit => (
                        TransferState::Limit,
                        Some("the takeover member reached WeCom's customer limit (transfer_result status 4)"),
                    ),
                    ResultStatus::NoRelationship => (
                        TransferState::NoRelationship,
                        Some("not the operator's WeCom customer (transfer_result status 5)"),
                    ),
                    ResultStatus::Waiting | ResultStatus::Unknown => continue,
                };
                c.state = settled;
                c.reason = reason.map(str::to_string);
            }
            if page.next_cursor.is_empty() || page.next_cursor == cursor {
                break;
            }
            cursor = page.next_cursor;
        }
    }
    finish_if_done(state, job, at).await
}

/// Saves the job; once nothing waits, marks it finished and writes its
/// `operator_handover_wecom` audit record (with the refused customers).
async fn finish_if_done(state: &AppState, job: &mut TransferJob, at: i64) -> Result<(), ApiError> {
    let finishing = job.finished_at.is_none() && !job.open();
    if finishing {
        job.finished_at = Some(at);
    }
    let j = job.clone();
    with_store(state, move |store| {
        let v = serde_json::to_value(&j).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put_setting(&j.key(), Some(&v))?;
        if finishing {
            let detail =
                serde_json::to_value(j.status()).map_err(|e| ApiError::Internal(e.to_string()))?;
            store.audit(&AuditRecord {
                id: 0,
                at,
                action: "operator_handover_wecom".into(),
                subject: j.login.clone(),
                detail,
            })?;
        }
        Ok(())
    })
    .await?;
    if finishing {
        let s = job.status();
        tracing::info!(operator = %job.login, refused = s.refused.len(), "wecom hand-over transfer finished");
    }
    Ok(())
}

/// WeCom's `transfer_fail` callback: `takeover` could not take
/// `customer` (`fail_reason` `customer_refused` or
/// `customer_limit_exceed`). Every open job waiting on that customer and
/// member records it. Returns the jobs changed.
pub async fn transfer_failed(
    state: &AppState,
    takeover: &str,
    customer: &str,
    fail_reason: &str,
    at: i64,
) -> Result<usize, ApiError> {
    let mut changed = 0;
    for mut job in load_jobs(state, None).await? {
        if job.finished_at.is_some() {
            continue;
        }
        let Some(c) = job
            .customers
            .iter_mut()
            .find(|c| c.takeover == takeover && c.external_userid == customer && c.state.open())
        else {
            continue;
        };
        c.state = if fail_reason == "customer_limit_exceed" {
            TransferState::Limit
        } else {
            TransferState::Refused
        };
        c.reason = Some(format!("transfer_fail callback: {fail_reason}"));
        changed += 1;
        finish_if_done(state, &mut job, at).await?;
    }
    Ok(changed)
}

// ---------- group-send results ----------

/// Reads the results of recent group-send tasks still awaiting one and
/// hands each decided outbox item's verdict to the executor. Returns the
/// items decided. Called by [`spawn`]'s loop on the leader, and by tests.
pub async fn tick_send_results(state: &AppState, at: i64) -> Result<usize, ApiError> {
    let Some(wecom) = state.0.wecom.clone() else {
        return Ok(0);
    };
    let since = at - SEND_RESULT_EXPIRY - 86_400;
    let items = with_store(state, move |store| Ok(store.outbox_done_since(since)?)).await?;
    let mut by_msgid: BTreeMap<String, Vec<OutboxItem>> = BTreeMap::new();
    for item in items {
        if let Some(id) = send_result::awaiting_msgid(&item.detail) {
            by_msgid.entry(id.to_string()).or_default().push(item);
        }
    }
    let mut reports = Vec::new();
    for (msgid, items) in by_msgid.into_iter().take(MAX_TASKS_PER_TICK) {
        let tasks = match wecom.groupmsg_task(&msgid).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%msgid, error = %e, "wecom get_groupmsg_task");
                continue;
            }
        };
        let mut decided: BTreeMap<String, Result<String, String>> = BTreeMap::new();
        for task in tasks.iter().filter(|t| t.status == 2) {
            let rows = match wecom.groupmsg_send_result(&msgid, &task.userid).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%msgid, error = %e, "wecom get_groupmsg_send_result");
                    continue;
                }
            };
            for row in rows {
                let Some(verdict) = send_result::verdict(row.status) else {
                    continue;
                };
                let target = if row.chat_id.is_empty() {
                    format!("wecom:{}", row.external_userid)
                } else {
                    format!("group:{}", row.chat_id)
                };
                let item = items
                    .iter()
                    .find(|i| i.identity == target)
                    .or_else(|| (items.len() == 1).then(|| &items[0]));
                let Some(item) = item else { continue };
                let outcome = verdict.map(|()| {
                    format!(
                        "delivered: wecom msgid {msgid} sent by {} at {}",
                        row.userid, row.send_time
                    )
                });
                decided.entry(item.key.clone()).or_insert(outcome);
            }
        }
        for item in &items {
            let outcome = match decided.remove(&item.key) {
                Some(o) => o,
                None if at - item.updated_at > SEND_RESULT_EXPIRY => Err(format!(
                    "wecom: group-send task {msgid} was not sent within {} days",
                    SEND_RESULT_EXPIRY / 86_400
                )),
                None => continue,
            };
            reports.push(SendReport {
                key: item.key.clone(),
                attempts: item.attempts,
                outcome,
            });
        }
    }
    let n = reports.len();
    if n > 0 {
        state
            .0
            .automation
            .report(reports)
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(n)
}

/// The leader's loop: [`tick_transfers`] and [`tick_send_results`] every
/// [`TICK_EVERY`] while this node holds the lease. It holds the app only
/// while a tick runs.
pub fn spawn(state: AppState) {
    if state.0.wecom.is_none() {
        return;
    }
    let app = Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let Some(inner) = app.upgrade() else { break };
            if !inner.leader.is_leader() {
                continue;
            }
            let state = AppState(inner);
            let at = crate::request::now();
            if let Err(e) = tick_transfers(&state, at).await {
                tracing::warn!(error = %e, "wecom hand-over transfers tick failed");
            }
            match tick_send_results(&state, at).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(items = n, "wecom group-send results recorded"),
                Err(e) => tracing::warn!(error = %e, "wecom group-send results tick failed"),
            }
        }
    });
}
