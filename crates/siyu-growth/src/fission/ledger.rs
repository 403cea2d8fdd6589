//! The reward ledger and its reconcile planner. The ledger is one settings
//! row per (campaign, inviter, tier): `reward/<campaign>/<inviter>/<tier>`.
//! [`plan`] compares it with what the evaluation supports now and returns
//! the changes: clawbacks of grants no longer supported, then grants of
//! reached tiers in inviter and tier order while stock lasts, each with
//! its event (`reward_granted`, `reward_clawed_back`: the log keeps the
//! history) and, for a grant with a template, the message telling the
//! inviter. The server commits a plan in that order — events, messages,
//! ledger rows — and every effect carries its key (event ids, the send
//! id), so a pass repeated after a crash adds nothing twice; a pass over
//! a ledger that already matches plans nothing.

use super::{Campaign, FissionError, Grant, REWARD_PREFIX};
use serde::{Deserialize, Serialize};
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_engine::fission::{self, Invitee};
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::{BTreeMap, HashMap};

/// Where one ledger row stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    Granted,
    /// Granted, then no longer supported: never granted again.
    ClawedBack,
    /// Reached while the reward had no stock left: granted by a later
    /// pass if stock frees up.
    OutOfStock,
}

/// One reward ledger row (stored, and listed by `GET …/rewards`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub inviter: String,
    pub tier: usize,
    pub reward: String,
    pub status: LedgerStatus,
    pub at: i64,
    pub supported_by: u64,
}

impl LedgerRow {
    fn key(&self, campaign: &str) -> String {
        format!("{REWARD_PREFIX}{campaign}/{}/{}", self.inviter, self.tier)
    }
}

/// Campaign `id`'s ledger rows (a row that does not read is left out).
pub fn ledger(store: &mut dyn Store, id: &str) -> Result<Vec<LedgerRow>, FissionError> {
    Ok(store
        .list_settings(&format!("{REWARD_PREFIX}{id}/"))?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect())
}

/// Per reward: its stock minus the grants standing (negative if a
/// campaign's stock was lowered below them).
pub fn stock_left(c: &Campaign, rows: &[LedgerRow]) -> BTreeMap<String, i64> {
    c.rewards
        .iter()
        .map(|(name, r)| {
            let used = rows
                .iter()
                .filter(|x| x.reward == *name && x.status == LedgerStatus::Granted)
                .count() as i64;
            (name.clone(), r.stock as i64 - used)
        })
        .collect()
}

/// The invitees that count towards each inviter's tiers (canonical id →
/// count): valid and pending ones for `instant` grants, valid ones only
/// for `after_hold`.
pub fn tally(engine: &Engine, invitees: &[Invitee], grant: Grant) -> HashMap<String, u64> {
    fission::per_inviter(invitees)
        .into_iter()
        .map(|(slot, (v, p))| {
            let n = match grant {
                Grant::Instant => v + p,
                Grant::AfterHold => v,
            };
            (engine.canonical_id(slot).to_string(), n)
        })
        .collect()
}

/// The message telling an inviter about a grant (a direct, transactional
/// send through the guardrails); `id` is its idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardMessage {
    pub id: String,
    pub template: String,
    pub channel: Option<String>,
    pub inviter: String,
}

/// What one reconcile pass changes, in the order the server commits it.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// `reward_clawed_back` then `reward_granted` events (append first).
    pub events: Vec<Event>,
    /// Reward messages of the grants (send after the events).
    pub messages: Vec<RewardMessage>,
    /// Changed or new ledger rows (store last).
    pub changed: Vec<LedgerRow>,
}

/// What a reconcile pass did (the answer of `POST …/reconcile`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub campaign: String,
    pub changes: usize,
    pub granted: usize,
    pub clawed_back: usize,
}

impl Plan {
    /// The ledger rows to store, as settings.
    pub fn settings(
        &self,
        campaign: &str,
    ) -> Result<Vec<(String, Option<serde_json::Value>)>, FissionError> {
        self.changed
            .iter()
            .map(|r| {
                let v = serde_json::to_value(r).map_err(|e| FissionError::Encode {
                    error: e.to_string(),
                })?;
                Ok((r.key(campaign), Some(v)))
            })
            .collect()
    }

    pub fn summary(&self, campaign: &str) -> Reconciled {
        let count = |s: LedgerStatus| self.changed.iter().filter(|r| r.status == s).count();
        Reconciled {
            campaign: campaign.to_string(),
            changes: self.changed.len(),
            granted: count(LedgerStatus::Granted),
            clawed_back: count(LedgerStatus::ClawedBack),
        }
    }
}

/// Plans one reconcile pass of campaign `c` at `now`: `rows` is its
/// ledger, `counts` the counted invitees per inviter ([`tally`]).
/// `settled` names inviters whose rows are final (an erased person's
/// pseudonym: a clawback would append an event, and so a person, for it).
pub fn plan(
    c: &Campaign,
    rows: Vec<LedgerRow>,
    counts: &HashMap<String, u64>,
    now: i64,
    settled: &dyn Fn(&str) -> bool,
) -> Plan {
    let id = c.id.as_str();
    // Ordered, so a pass's events come in one order every time.
    let mut ledger: BTreeMap<(String, usize), LedgerRow> = rows
        .into_iter()
        .map(|r| ((r.inviter.clone(), r.tier), r))
        .collect();
    let mut used: HashMap<String, u64> = HashMap::new();
    for r in ledger.values() {
        if r.status == LedgerStatus::Granted {
            *used.entry(r.reward.clone()).or_default() += 1;
        }
    }
    let mut out = Plan::default();
    // Claw back grants no longer supported.
    for r in ledger.values_mut() {
        if settled(&r.inviter) {
            continue;
        }
        let n = counts.get(&r.inviter).copied().unwrap_or(0);
        let need = c.tiers.get(r.tier).map_or(u64::MAX, |t| t.invites);
        if r.status == LedgerStatus::Granted && n < need {
            r.status = LedgerStatus::ClawedBack;
            r.at = now;
            r.supported_by = n;
            if let Some(u) = used.get_mut(&r.reward) {
                *u = u.saturating_sub(1);
            }
            out.events
                .push(reward_event(id, r, "reward_clawed_back", now));
            out.changed.push(r.clone());
        }
    }
    // Grant reached tiers (in inviter and tier order, while stock lasts).
    let mut inviters: Vec<(&String, &u64)> = counts.iter().collect();
    inviters.sort();
    for (inviter, &n) in inviters {
        for (i, tier) in c.tiers.iter().enumerate() {
            if n < tier.invites {
                break;
            }
            let key = (inviter.clone(), i);
            if ledger.get(&key).is_some_and(|r| {
                matches!(r.status, LedgerStatus::Granted | LedgerStatus::ClawedBack)
            }) {
                continue; // a clawed-back reward is not granted again
            }
            let reward = c.rewards.get(&tier.reward);
            let stock = reward.map_or(0, |r| r.stock);
            let status = if used.get(&tier.reward).copied().unwrap_or(0) < stock {
                *used.entry(tier.reward.clone()).or_default() += 1;
                LedgerStatus::Granted
            } else {
                LedgerStatus::OutOfStock
            };
            if ledger.get(&key).is_some_and(|r| r.status == status) {
                continue;
            }
            let row = LedgerRow {
                inviter: inviter.clone(),
                tier: i,
                reward: tier.reward.clone(),
                status,
                at: now,
                supported_by: n,
            };
            if status == LedgerStatus::Granted {
                out.events
                    .push(reward_event(id, &row, "reward_granted", now));
                if let Some(template) = reward.and_then(|r| r.template.clone()) {
                    out.messages.push(RewardMessage {
                        id: format!("fission/{id}/{inviter}/{i}"),
                        template,
                        channel: reward.and_then(|r| r.channel.clone()),
                        inviter: inviter.clone(),
                    });
                }
            }
            ledger.insert(key, row.clone());
            out.changed.push(row);
        }
    }
    out
}

/// The event recording a grant or clawback (`name`) of ledger row `r` on
/// the inviter at `t`; its id makes a repeated append add nothing.
pub fn reward_event(campaign: &str, r: &LedgerRow, name: &str, t: i64) -> Event {
    let identity = Identity::parse(&r.inviter)
        .unwrap_or_else(|_| Identity::parse("unknown:unknown").expect("valid"));
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wecom").expect("valid"));
    let mut ev = Event::new(t, identity, EventType::Custom, channel);
    ev.name = Some(name.to_string());
    ev.id = Some(format!("{name}/{campaign}/{}/{}/{t}", r.inviter, r.tier));
    let mut p = serde_json::Map::new();
    p.insert("campaign".into(), campaign.into());
    p.insert("tier".into(), (r.tier as u64).into());
    p.insert("reward".into(), r.reward.clone().into());
    ev.properties = Some(p);
    ev
}
