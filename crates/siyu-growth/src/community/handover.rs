//! The hand-over of an operator: every person they own and every group
//! they own to another operator (or spread over the least-loaded), in one
//! action. [`plan`] decides who goes where (pure); the server marks the
//! operator ([`mark_operator`]) so nothing new is routed to them, appends
//! the [`HandoverPlan::person_events`] chunk by chunk through the writer
//! (the old owner stays in the log), then [`finish`] moves the groups
//! (kept in their `owner_history`) and writes the one audit record.
//! Running it again picks up stragglers.

use super::groups::group_key;
use super::operators::group_loads;
use super::operators::{least_loaded, operator_key, owner_of, persons_by_owner};
use super::operators::{OperatorDef, OperatorStatus};
use super::HANDOVER_CHUNK;
use super::{person_event, read, write, CommunityError, GroupDef, OwnerChange, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_domain::{Event, EventType, Identity, Traits};
use siyu_engine::Engine;
use siyu_store::{AuditRecord, Store};
use std::collections::{BTreeMap, HashMap};

/// The body of `POST /v1/operators/{login}/handover` (empty: all defaults).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverInput {
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub status: Option<OperatorStatus>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Hand the groups to `to` even beyond its `max_groups`.
    #[serde(default)]
    pub force: bool,
    /// WeCom: the operator still works at the corp (在职继承:
    /// `transfer_customer`, `groupchat/onjob_transfer`; customers may
    /// refuse within 24 hours). Default false: they left or were banned
    /// (离职继承: `resigned/transfer_customer`, `groupchat/transfer`).
    #[serde(default)]
    pub in_service: bool,
    /// WeCom, in service only: the message customers get when the
    /// transfer succeeds (at most 200 characters; WeCom's default text
    /// when absent).
    #[serde(default)]
    pub transfer_success_msg: Option<String>,
}

impl HandoverInput {
    /// The status the operator leaves with: `left` (default) or `banned`.
    pub fn status(&self) -> Result<OperatorStatus> {
        let status = self.status.unwrap_or(OperatorStatus::Left);
        if status == OperatorStatus::Active {
            return Err(CommunityError::Invalid(
                "status: a hand-over sets `left` or `banned`".into(),
            ));
        }
        Ok(status)
    }

    /// The checks on the WeCom fields.
    pub fn check_wecom(&self) -> Result<()> {
        if let Some(m) = &self.transfer_success_msg {
            if m.chars().count() > 200 {
                return Err(CommunityError::Invalid(format!(
                    "transfer_success_msg: at most 200 characters (WeCom's limit), got {}",
                    m.chars().count()
                )));
            }
            if !self.in_service {
                return Err(CommunityError::Invalid(
                    "transfer_success_msg: WeCom sends it only for an operator in service (`in_service: true`)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Who moves from `login` to whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverPlan {
    pub login: String,
    pub to: Option<String>,
    pub status: OperatorStatus,
    pub at: i64,
    /// (group id, new owner), in group-id order.
    pub group_moves: Vec<(String, String)>,
    /// (canonical identity, new owner).
    pub person_moves: Vec<(String, String)>,
}

/// What a hand-over did: the answer and the audit record's detail.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HandoverReport {
    pub to: Option<String>,
    pub status: OperatorStatus,
    pub reason: Option<String>,
    /// Persons given a new owner.
    pub persons: u64,
    /// Persons whose canonical id no longer parses as an identity.
    pub persons_skipped: u64,
    /// Groups given a new owner.
    pub groups: usize,
    pub persons_to: BTreeMap<String, u64>,
    pub groups_to: BTreeMap<String, Vec<String>>,
}

/// The persons `login` owns (canonical ids) and every owner's person count.
pub fn owned_persons(engine: &Engine, login: &str) -> (Vec<String>, HashMap<String, u64>) {
    let loads = persons_by_owner(engine);
    let owned: Vec<String> = engine
        .persons()
        .filter(|(_, p)| owner_of(p) == Some(login))
        .map(|(slot, _)| engine.canonical_id(slot).to_string())
        .collect();
    (owned, loads)
}

/// Plans the hand-over of `login`: `to` must be another active operator,
/// and the groups it would own after the hand-over at most its
/// `max_groups` unless `force` (an operator limit is a workload decision
/// the caller overrides knowingly, never by accident); without `to`, each group goes to the least-loaded active operator
/// under `max_groups` and each person to the active operator with the
/// fewest persons (ties: the smallest login). `owned` and `person_loads`
/// come from [`owned_persons`]. Pure.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    ops: &BTreeMap<String, OperatorDef>,
    groups: &BTreeMap<String, GroupDef>,
    login: &str,
    to: Option<&str>,
    force: bool,
    status: OperatorStatus,
    owned: Vec<String>,
    mut person_loads: HashMap<String, u64>,
    at: i64,
) -> Result<HandoverPlan> {
    if !ops.contains_key(login) {
        return Err(CommunityError::NotFound(format!(
            "no operator `{login}`; GET /v1/operators lists them"
        )));
    }
    if let Some(to) = to {
        if to == login {
            return Err(CommunityError::Invalid(
                "to: hand over to someone else".into(),
            ));
        }
        match ops.get(to) {
            Some(o) if o.status == OperatorStatus::Active => {}
            Some(_) => {
                return Err(CommunityError::Invalid(format!(
                    "to: operator `{to}` is not active"
                )))
            }
            None => {
                return Err(CommunityError::Invalid(format!(
                    "to: no operator `{to}`; PUT /v1/operators/{to} first"
                )))
            }
        }
    }
    let mut loads = group_loads(groups);
    loads.remove(login);
    if let (Some(to), false) = (to, force) {
        let moving = groups
            .values()
            .filter(|g| g.owner == login && !g.archived)
            .count() as u32;
        let would = loads.get(to).copied().unwrap_or(0) + moving;
        let max = ops.get(to).map_or(0, |o| o.max_groups);
        if moving > 0 && would > max {
            return Err(CommunityError::Conflict(format!(
                "to: operator `{to}` has max_groups {max} and would own {would} groups after this hand-over ({moving} moving); raise its max_groups, leave out `to` to spread them, or send \"force\": true"
            )));
        }
    }
    // Groups: explicit receiver, or the least-loaded under max_groups.
    let mut group_moves: Vec<(String, String)> = Vec::new();
    for g in groups.values().filter(|g| g.owner == login) {
        let new = match to {
            Some(to) => to.to_string(),
            None => least_loaded(ops, &loads, Some(login)).ok_or_else(|| {
                CommunityError::Conflict(format!(
                    "no active operator is under their group limit to take group `{}`; name `to`, add an operator or raise max_groups",
                    g.id
                ))
            })?,
        };
        *loads.entry(new.clone()).or_default() += 1;
        group_moves.push((g.id.clone(), new));
    }
    let receivers: Vec<String> = ops
        .values()
        .filter(|o| o.status == OperatorStatus::Active && o.login != login)
        .map(|o| o.login.clone())
        .collect();
    if to.is_none() && receivers.is_empty() && !owned.is_empty() {
        return Err(CommunityError::Conflict(
            "no other active operator to take the persons; add one first".into(),
        ));
    }
    let mut person_moves: Vec<(String, String)> = Vec::with_capacity(owned.len());
    for canonical in owned {
        let new = match to {
            Some(to) => to.to_string(),
            // `receivers` is not empty here (checked above).
            None => match receivers
                .iter()
                .min_by_key(|r| (person_loads.get(*r).copied().unwrap_or(0), (*r).clone()))
            {
                Some(r) => r.clone(),
                None => continue,
            },
        };
        *person_loads.entry(new.clone()).or_default() += 1;
        person_moves.push((canonical, new));
    }
    Ok(HandoverPlan {
        login: login.to_string(),
        to: to.map(str::to_string),
        status,
        at,
        group_moves,
        person_moves,
    })
}

/// Marks the operator left/banned (and whom they handed to) first, so
/// nothing new is routed to them while the persons move.
pub fn mark_operator(
    store: &mut dyn Store,
    ops: &BTreeMap<String, OperatorDef>,
    plan: &HandoverPlan,
) -> Result<()> {
    let Some(mut me) = ops.get(&plan.login).cloned() else {
        return Err(CommunityError::NotFound(format!(
            "no operator `{}`; GET /v1/operators lists them",
            plan.login
        )));
    };
    me.status = plan.status;
    me.handed_to = plan.to.clone();
    me.updated_at = plan.at;
    write(store, &operator_key(&plan.login), &me)
}

impl HandoverPlan {
    /// The persons' `identify` events with the new owner (trait
    /// `operator`, and `previous_operator`), in chunks of
    /// [`HANDOVER_CHUNK`] moves, one writer request each; and how many
    /// persons were skipped because their id no longer parses. Event ids
    /// are `handover/<login>/<at>/<canonical>`.
    pub fn person_events(&self) -> (Vec<Vec<Event>>, u64) {
        let mut skipped = 0u64;
        let mut chunks = Vec::new();
        for chunk in self.person_moves.chunks(HANDOVER_CHUNK) {
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
                    self.at,
                    format!("handover/{}/{}/{canonical}", self.login, self.at),
                );
                let mut t = Traits::default();
                t.extra.insert("operator".into(), json!(new));
                t.extra
                    .insert("previous_operator".into(), json!(self.login));
                ev.traits = Some(t);
                events.push(ev);
            }
            chunks.push(events);
        }
        (chunks, skipped)
    }

    /// The report, once `moved` persons were appended and `skipped` not.
    pub fn report(&self, reason: Option<String>, moved: u64, skipped: u64) -> HandoverReport {
        let mut persons_to: BTreeMap<String, u64> = BTreeMap::new();
        for (_, new) in &self.person_moves {
            *persons_to.entry(new.clone()).or_default() += 1;
        }
        let mut groups_to: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, new) in &self.group_moves {
            groups_to.entry(new.clone()).or_default().push(g.clone());
        }
        HandoverReport {
            to: self.to.clone(),
            status: self.status,
            reason,
            persons: moved,
            persons_skipped: skipped,
            groups: self.group_moves.len(),
            persons_to,
            groups_to,
        }
    }
}

/// Moves the groups to their new owners (kept in `owner_history`) and
/// writes the one `operator_handover` audit record with `report`.
pub fn finish(store: &mut dyn Store, plan: &HandoverPlan, report: &HandoverReport) -> Result<()> {
    for (g, new) in &plan.group_moves {
        let key = group_key(g);
        let Some(mut def) = read::<GroupDef>(store, &key)? else {
            continue;
        };
        def.owner_history.push(OwnerChange {
            from: def.owner.clone(),
            to: new.clone(),
            at: plan.at,
            reason: format!("handover ({})", plan.status.as_str()),
        });
        def.owner = new.clone();
        def.updated_at = plan.at;
        write(store, &key, &def)?;
    }
    let detail = serde_json::to_value(report).map_err(|e| CommunityError::Corrupt {
        key: "audit".into(),
        error: e.to_string(),
    })?;
    store.audit(&AuditRecord {
        id: 0,
        at: plan.at,
        action: "operator_handover".into(),
        subject: plan.login.clone(),
        detail,
    })?;
    Ok(())
}

/// The WeCom side of a hand-over: each moving person's WeCom customer ids
/// (their `wecom:` identities' external_userids) with the new owner, and
/// each moving WeCom group (channel `wecom`: its id is the chat id) with
/// its new owner. What WeCom's customer and group inheritance is asked to
/// move (operator logins are the members' WeCom `userid`s).
pub fn wecom_moves(
    engine: &Engine,
    groups: &BTreeMap<String, GroupDef>,
    plan: &HandoverPlan,
) -> WeComMoves {
    let mut customers = Vec::new();
    for (canonical, new) in &plan.person_moves {
        let Some(slot) = engine.person_of(canonical) else {
            continue;
        };
        for id in engine.identities_of(slot) {
            if let Some(external) = id.strip_prefix("wecom:") {
                customers.push((external.to_string(), new.clone()));
            }
        }
    }
    let chats = plan
        .group_moves
        .iter()
        .filter(|(g, _)| groups.get(g).is_some_and(|d| d.channel == "wecom"))
        .cloned()
        .collect();
    WeComMoves { customers, chats }
}

/// What a hand-over moves in WeCom ([`wecom_moves`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeComMoves {
    /// (external_userid, new owner).
    pub customers: Vec<(String, String)>,
    /// (chat id, new owner).
    pub chats: Vec<(String, String)>,
}
