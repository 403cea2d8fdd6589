//! The reward ledger and its reconcile planner. The ledger is one settings
//! row per (campaign, inviter, tier): `reward/<campaign>/<inviter>/<tier>`.
//!
//! A row's `inviter` is the identity the tier was first planned for and
//! never changes: a person's canonical id does (it is the smallest of its
//! identities, so stitching a `douyin:` identity to a `wecom:` person
//! changes it). Each pass therefore resolves every row to the person its
//! identity belongs to now ([`People::person`]) and compares per person
//! and tier; rows stored before this rule read the same way, so a row
//! keyed by an identity of a merged person is that person's. A person
//! holding a tier under any of its identities is never granted it again,
//! and a clawed-back row is granted again only when an operator override
//! counts one of the inviter's invitees ([`vouched`]): an override is a
//! deliberate decision, while pending invitees coming and going must not
//! make a reward flap.
//!
//! [`plan`] compares the ledger with what the evaluation supports now and returns
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
use siyu_engine::fission::{self, Invitee, Overrides, Verdict};
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where one ledger row stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    Granted,
    /// Granted, then no longer supported: granted again only after an
    /// operator override counts one of the inviter's invitees.
    ClawedBack,
    /// Reached while the reward had no stock left: granted by a later
    /// pass if stock frees up.
    OutOfStock,
}

/// One reward ledger row (stored, and listed by `GET …/rewards`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The inviters (canonical ids) with an invitee counted because an
/// operator override said so: a tier clawed back from them is granted
/// again when they reach it again.
pub fn vouched(engine: &Engine, invitees: &[Invitee], overrides: &Overrides) -> HashSet<String> {
    invitees
        .iter()
        .filter(|i| {
            overrides.get(&i.invitee) == Some(&true)
                && matches!(i.verdict, Verdict::Valid | Verdict::Pending { .. })
        })
        .map(|i| engine.canonical_id(i.inviter).to_string())
        .collect()
}

/// Each ledger row's inviter identity → the canonical id of the person it
/// belongs to now (an identity the engine does not know is left out).
pub fn resolve(engine: &Engine, rows: &[LedgerRow]) -> HashMap<String, String> {
    rows.iter()
        .filter_map(|r| {
            let slot = engine.person_of(&r.inviter)?;
            Some((r.inviter.clone(), engine.canonical_id(slot).to_string()))
        })
        .collect()
}

/// What a pass knows about people besides the counts.
pub struct People<'a> {
    /// The canonical id of the person a stored inviter identity belongs to
    /// now (`None`: unknown; the row stands for itself).
    pub person: &'a dyn Fn(&str) -> Option<String>,
    /// Inviters whose rows are final (an erased person's pseudonym: a
    /// clawback would append an event, and so a person, for it).
    pub settled: &'a dyn Fn(&str) -> bool,
    /// Whether an inviter (canonical id) is [`vouched`] for: a tier
    /// clawed back from them may be granted again.
    pub vouched: &'a dyn Fn(&str) -> bool,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
/// ledger, `counts` the counted invitees per inviter ([`tally`]), `people`
/// resolves rows to persons.
pub fn plan(
    c: &Campaign,
    rows: Vec<LedgerRow>,
    counts: &HashMap<String, u64>,
    now: i64,
    people: &People,
) -> Plan {
    let id = c.id.as_str();
    // Per (person, tier), in inviter order; ordered, so a pass's events
    // come in one order every time. Two rows share a key when two persons
    // holding the tier were merged: both stand.
    let mut ledger: BTreeMap<(String, usize), Vec<LedgerRow>> = BTreeMap::new();
    for r in rows {
        let person = (people.person)(&r.inviter).unwrap_or_else(|| r.inviter.clone());
        ledger.entry((person, r.tier)).or_default().push(r);
    }
    for rs in ledger.values_mut() {
        rs.sort_by(|a, b| a.inviter.cmp(&b.inviter));
    }
    let mut used: HashMap<String, u64> = HashMap::new();
    for r in ledger.values().flatten() {
        if r.status == LedgerStatus::Granted {
            *used.entry(r.reward.clone()).or_default() += 1;
        }
    }
    let mut out = Plan::default();
    // Claw back grants no longer supported.
    for ((person, tier), rs) in ledger.iter_mut() {
        let n = counts.get(person).copied().unwrap_or(0);
        let need = c.tiers.get(*tier).map_or(u64::MAX, |t| t.invites);
        for r in rs.iter_mut() {
            if (people.settled)(&r.inviter) {
                continue;
            }
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
            let held = ledger.get(&key).map(Vec::as_slice).unwrap_or_default();
            if held.iter().any(|r| r.status == LedgerStatus::Granted) {
                continue;
            }
            // The row this tier stands under: the person's existing one
            // (its identity is the stable key), else a new one.
            let existing = held.first();
            let clawed_at = existing
                .filter(|r| r.status == LedgerStatus::ClawedBack)
                .map(|r| r.at);
            if clawed_at.is_some() && !(people.vouched)(inviter) {
                continue; // a clawed-back reward is granted again only on an override
            }
            let holder = existing.map_or_else(|| inviter.clone(), |r| r.inviter.clone());
            let reward = c.rewards.get(&tier.reward);
            let stock = reward.map_or(0, |r| r.stock);
            let status = if used.get(&tier.reward).copied().unwrap_or(0) < stock {
                *used.entry(tier.reward.clone()).or_default() += 1;
                LedgerStatus::Granted
            } else {
                LedgerStatus::OutOfStock
            };
            if existing.is_some_and(|r| r.status == status) {
                continue;
            }
            let row = LedgerRow {
                inviter: holder.clone(),
                tier: i,
                reward: tier.reward.clone(),
                status,
                at: now,
                supported_by: n,
            };
            if status == LedgerStatus::Granted {
                let mut ev = reward_event(id, &row, "reward_granted", now);
                if let (Some(t), Some(key)) = (clawed_at, ev.id.as_mut()) {
                    // Distinct from the first grant's id even within its second.
                    key.push_str(&format!("/after/{t}"));
                }
                out.events.push(ev);
                if let Some(template) = reward.and_then(|r| r.template.clone()) {
                    // A grant after a clawback is a new send: its key names
                    // the clawback, so a repeated pass still sends it once.
                    let send = match clawed_at {
                        None => format!("fission/{id}/{holder}/{i}"),
                        Some(t) => format!("fission/{id}/{holder}/{i}/after/{t}"),
                    };
                    out.messages.push(RewardMessage {
                        id: send,
                        template,
                        channel: reward.and_then(|r| r.channel.clone()),
                        inviter: inviter.clone(),
                    });
                }
            }
            let slot = ledger.entry(key).or_default();
            match slot.first_mut() {
                Some(r) => *r = row.clone(),
                None => slot.push(row.clone()),
            }
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
