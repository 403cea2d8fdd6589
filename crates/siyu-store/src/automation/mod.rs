//! The automation side tables (migration 3): journey enrollments, the
//! outbox of side effects, the consent ledger and operators' tasks.
//!
//! Why an outbox: a journey step's new state and the side effects it
//! produced are committed in ONE transaction ([`AutomationCommit`]); the
//! effects are delivered afterwards and marked done. A crash in between
//! leaves the effect pending under the same idempotency key, so it is
//! delivered again (never skipped) and the delivery layer, which checks
//! the key's status first and sends it to the remote as `Idempotency-Key`,
//! does not repeat it. Every send attempt's verdict (sent, suppressed and
//! why, dead-lettered) stays on its outbox row: that is the send audit.

use serde::{Deserialize, Serialize};

/// One person's enrollment in one journey version. `state` is the
/// automation crate's `Enrollment`, stored as JSON; the columns beside it
/// are what the executor and the API query by.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentRow {
    pub id: u64,
    pub journey: String,
    pub version: u32,
    pub identity: String,
    /// Unique per (journey, person, trigger occurrence): enrolling twice
    /// for one occurrence (a replay after a crash) is ignored.
    pub entry_key: String,
    pub entered_at: i64,
    /// When the executor must wake it; `None` once done.
    pub wake_at: Option<i64>,
    pub done: bool,
    pub state: serde_json::Value,
}

/// Where an outbox item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// To deliver at or after `not_before` (new, retried, or delayed by
    /// quiet hours).
    Pending,
    /// Delivered (a message sent, a tag applied, a webhook answered 2xx).
    Done,
    /// Stopped by a guardrail; `detail` is the reason code.
    Suppressed,
    /// Failed for good (permanent error or retries exhausted); `detail`
    /// is the last error. Listed as the dead-letter queue.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Done => "done",
            OutboxStatus::Suppressed => "suppressed",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Suppressed, Self::Dead]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One side effect, keyed by its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub key: String,
    pub created_at: i64,
    pub not_before: i64,
    pub status: OutboxStatus,
    pub attempts: u32,
    /// Suppression reason, delay reason or last error; empty otherwise.
    pub detail: String,
    /// The journey that produced it (None: mass send, auto-reply …).
    pub journey: Option<String>,
    pub identity: String,
    /// What to do (the executor's action, JSON).
    pub action: serde_json::Value,
    pub updated_at: i64,
}

/// A status change of an outbox item.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxUpdate {
    pub key: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub detail: String,
    pub not_before: i64,
    pub updated_at: i64,
}

/// One entry of the consent ledger: a grant or revocation for a channel
/// (or all channels), with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentRow {
    pub ts: i64,
    pub identity: String,
    /// `None`: every channel (a global opt-out).
    pub channel: Option<String>,
    pub granted: bool,
    /// `opt_out_event`, `unsubscribe_link`, `reply_keyword`, `api` …
    pub source: String,
}

/// A follow-up task for an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskRow {
    pub key: String,
    pub created_at: i64,
    pub identity: String,
    pub journey: Option<String>,
    pub operator: Option<String>,
    pub title: String,
    pub note: String,
    pub due: Option<i64>,
    pub done_at: Option<i64>,
}

/// One entry of the conversation archive (会话存档): an operator's
/// message to a person, or the resolution of a conversation, as the
/// conversations API made it. Kept for the workspace's retention, erased
/// with the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArchivedMessage {
    /// The outbox key of the send (`c/…`), or the resolve event's id.
    pub key: String,
    pub ts: i64,
    /// `message` (an operator's reply) or `resolution`.
    pub kind: String,
    /// The person's canonical identity when it was written.
    pub identity: String,
    pub operator: String,
    pub channel: String,
    pub text: String,
    /// A reply: seconds since the oldest message it answered (None: none
    /// was waiting). A resolution: seconds since the conversation opened.
    pub response_secs: Option<i64>,
    /// Sensitive-word rules the text hit (their ids).
    pub flags: Vec<String>,
}

/// Which archived messages to read (newest first).
#[derive(Debug, Clone, Default)]
pub struct ArchiveQuery {
    pub kind: Option<String>,
    pub operator: Option<String>,
    /// Any of these identities (a person's).
    pub identities: Option<Vec<String>>,
    /// The text contains this.
    pub text: Option<String>,
    /// Only messages that hit a sensitive-word rule.
    pub flagged: bool,
    /// From this instant (inclusive) to that one (exclusive).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Older than this (ts, key): the next page.
    pub before: Option<(i64, String)>,
    pub limit: usize,
}

/// One attempt at an outbox item and its verdict: the send audit, append
/// only (`sent`, `delivered`, `suppressed`, `delayed`, `retried`, `dead`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SendAttempt {
    pub key: String,
    pub at: i64,
    pub verdict: String,
    /// Why (the suppression or delay reason, the connector's error).
    pub detail: String,
}

/// Everything one executor step commits atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutomationCommit {
    /// Inserted, or replaced by id. A new row whose `entry_key` exists is
    /// skipped (and its id reported in [`CommitOutcome::skipped`]).
    pub enrollments: Vec<EnrollmentRow>,
    /// Inserted unless the key exists (idempotent).
    pub outbox: Vec<OutboxItem>,
    pub updates: Vec<OutboxUpdate>,
    pub consent: Vec<ConsentRow>,
    /// Inserted unless the key exists.
    pub tasks: Vec<TaskRow>,
    /// Appended.
    pub attempts: Vec<SendAttempt>,
    /// When set, the commit writes nothing (and fails with
    /// [`crate::StoreError::Fenced`]) unless this is still the lease's
    /// token: what keeps a node that lost the lease from acting on it.
    pub fence: Option<Fence>,
}

/// A lease and the fencing token its holder was given
/// ([`crate::Store::acquire_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub token: u64,
}

impl Fence {
    pub(crate) fn refused(&self, current: Option<i64>) -> crate::StoreError {
        crate::StoreError::Fenced(match current {
            Some(t) => format!(
                "lease {:?} is at token {t}, this commit holds {}",
                self.lease, self.token
            ),
            None => format!("lease {:?} is not held", self.lease),
        })
    }
}

impl AutomationCommit {
    pub fn is_empty(&self) -> bool {
        self.enrollments.is_empty()
            && self.outbox.is_empty()
            && self.updates.is_empty()
            && self.consent.is_empty()
            && self.tasks.is_empty()
            && self.attempts.is_empty()
    }
}

/// What a commit did not apply because it was already there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Ids of new enrollments whose entry key was taken.
    pub skipped: Vec<u64>,
    /// Keys of outbox items (and tasks) that existed already.
    pub skipped_outbox: Vec<String>,
}

/// A filter for listing outbox items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxQuery {
    pub status: Option<OutboxStatus>,
    pub journey: Option<String>,
    pub identity: Option<String>,
    pub limit: usize,
}

pub(crate) mod pg;
pub(crate) mod sqlite;

/// Columns of the outbox, in the order every SELECT lists them.
pub(crate) const OUTBOX_COLUMNS: &str =
    "key, created_at, not_before, status, attempts, detail, journey, identity, action, updated_at";
/// Columns of enrollments, in the order every SELECT lists them.
pub(crate) const ENROLLMENT_COLUMNS: &str =
    "id, journey, version, identity, entry_key, entered_at, wake_at, done, state";
pub(crate) const ARCHIVE_COLUMNS: &str =
    "key, ts, kind, identity, operator, channel, text, response_secs, flags";
pub(crate) const TASK_COLUMNS: &str =
    "key, created_at, identity, journey, operator, title, note, due, done_at";

pub(crate) fn parse_json(what: &str, text: &str) -> crate::Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| crate::StoreError::Corrupt(format!("{what} is not JSON: {e}")))
}

pub(crate) fn parse_status(text: &str) -> crate::Result<OutboxStatus> {
    OutboxStatus::parse(text)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("unknown outbox status {text:?}")))
}
