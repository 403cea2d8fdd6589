//! Communities (社群): groups per channel with a capacity and an owner,
//! operators with a load limit and a one-action hand-over, live codes
//! (活码: one stable public link that routes each newcomer to a group or
//! an operator with room), group health and the SOP calendar of group
//! posts. The rules live here, without HTTP, clock or threads; the server
//! (`siyu-server/src/routes/communities.rs`) extracts requests, holds the
//! locks, appends the events this module plans and enqueues the sends.
//!
//! Definitions live in settings: `group/<id>` (plus `group/<id>/calendar`
//! and `group/<id>/reserved`, the live-code seats handed out but not yet
//! taken), `opsconf/<login>` (the console's login accounts are
//! `operator/<login>`; these are the ownership records) and
//! `livecode/<id>` (plus `livecode/<id>/day`, today's per-operator
//! counts). Everything that happens to a person is an event, so the log
//! is the history: a person's owner is the trait `operator`, set by
//! `identify` events; a hand-over appends new ones and the old owner stays
//! in the log.
//!
//! Membership comes from `join_group`/`leave_group` events (the engine's
//! `extra.groups`); a group's size is one pass over the persons.
//!
//! Submodules: [`operators`] (ownership records and loads), [`groups`]
//! (group definitions, sizes, seats), [`livecode`] (live codes and the
//! routing of a newcomer), [`handover`] (the plan of a hand-over),
//! [`health`] (group health arithmetic), [`calendar`] (the SOP calendar and
//! what is due at a time).

pub mod calendar;
pub mod groups;
pub mod handover;
pub mod health;
pub mod livecode;
pub mod operators;

pub use calendar::{CalendarEntry, DuePost};
pub use groups::{GroupDef, GroupInput, GroupView, OwnerChange};
pub use handover::{HandoverInput, HandoverPlan, HandoverReport};
pub use livecode::{LiveCode, LiveCodeView, Routed, Target, WorkingHours};
pub use operators::{OperatorDef, OperatorInput, OperatorStatus, OperatorView};

use serde::de::DeserializeOwned;
use serde::Serialize;
use siyu_store::Store;

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
/// A leave this soon after a `reward_granted` counts as "left after a reward".
pub const LEFT_AFTER_REWARD: i64 = 3 * 86_400;
/// The custom event the fission campaign emits when it grants a reward.
pub const REWARD_EVENT: &str = "reward_granted";
/// A calendar entry more overdue than this (the server was down) is
/// reported as missed instead of being posted late.
pub const MISSED_AFTER: i64 = 86_400;
/// Identify events per writer request during a hand-over.
pub const HANDOVER_CHUNK: usize = 5000;

/// What a community request cannot do, and what to fix. The server maps
/// each kind to its HTTP status in one `From` impl.
#[derive(Debug, thiserror::Error)]
pub enum CommunityError {
    /// A definition or body is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No group `id`.
    #[error("no group `{id}`; GET /v1/groups lists them, PUT /v1/groups/{id} creates it")]
    NoGroup { id: String },
    /// Something named does not exist (operator, live code …).
    #[error("{0}")]
    NotFound(String),
    /// Valid, but the current state cannot take it (full, over the limit).
    #[error("{0}")]
    Conflict(String),
    /// Archived: it takes nothing new (a live code no longer routes).
    #[error("{0}")]
    Archived(String),
    /// A parameter cannot be read (a timezone …).
    #[error("{0}")]
    BadParameter(String),
    /// A stored setting does not read back as what this build expects.
    #[error("setting {key}: {error}")]
    Corrupt { key: String, error: String },
    #[error(transparent)]
    Store(#[from] siyu_store::StoreError),
}

pub type Result<T, E = CommunityError> = std::result::Result<T, E>;

/// A stored setting that was left out because it could not be read; the
/// caller logs it (this crate does no I/O, logging included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its settings key.
    pub key: String,
    pub error: String,
}

/// One setting read as `T` (None when absent).
pub fn read<T: DeserializeOwned>(store: &mut dyn Store, key: &str) -> Result<Option<T>> {
    match store.get_setting(key)? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| CommunityError::Corrupt {
                key: key.to_string(),
                error: e.to_string(),
            }),
    }
}

/// Writes one setting.
pub fn write<T: Serialize>(store: &mut dyn Store, key: &str, value: &T) -> Result<()> {
    let v = serde_json::to_value(value).map_err(|e| CommunityError::Corrupt {
        key: key.to_string(),
        error: e.to_string(),
    })?;
    store.put_setting(key, Some(&v))?;
    Ok(())
}

/// Every definition under `prefix` whose key has no further `/` (the
/// sub-keys `…/calendar`, `…/day` are state, not definitions). One
/// definition that cannot be read is left out (listed in `skipped`); it
/// does not take every group (and the SOP calendar) down with it.
pub fn list_defs<T: DeserializeOwned>(
    store: &mut dyn Store,
    prefix: &str,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for (k, v) in store.list_settings_each(prefix)? {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                skipped.push(Skipped {
                    key: k,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let Some(id) = k.strip_prefix(prefix).filter(|r| !r.contains('/')) else {
            continue;
        };
        match serde_json::from_value(v) {
            Ok(def) => out.push((id.to_string(), def)),
            Err(e) => skipped.push(Skipped {
                key: k.clone(),
                error: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// A name (calendar entry id …): 1–64 characters, no `/`, `:` or control
/// characters (the same rule as the server's path names).
pub fn valid_id(id: &str, field: &str) -> Result<()> {
    if siyu_automation::journey::valid_name(id) {
        Ok(())
    } else {
        Err(CommunityError::Invalid(format!(
            "{field}: {id:?} must be 1–64 characters without '/', ':' or control characters"
        )))
    }
}

/// An event of ours about a person, on `channel` when it names a valid
/// one, else on the identity's own channel (else `wecom`).
pub fn person_event(
    identity: &siyu_domain::Identity,
    ty: siyu_domain::EventType,
    channel: Option<&str>,
    ts: i64,
    id: String,
) -> siyu_domain::Event {
    use siyu_domain::Channel;
    let channel = channel
        .and_then(Channel::parse)
        .or_else(|| Channel::parse(identity.channel()))
        .unwrap_or_else(|| Channel::parse("wecom").expect("a valid channel name"));
    let mut ev = siyu_domain::Event::new(ts, identity.clone(), ty, channel);
    ev.id = Some(id);
    ev
}
