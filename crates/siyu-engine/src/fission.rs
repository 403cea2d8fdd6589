//! Fission (裂变) campaigns over the referral signups the engine keeps:
//! which invitees are valid, pending or invalid (and why), per-inviter
//! counts, the leaderboard and the funnel. A pure recompute from the
//! engine's state at its clock, so it can be checked against a brute force
//! and against WORKLOAD.md's Q5, which is the special case "every signup,
//! purchase within 14 days, no hold, no fraud rules"
//! ([`Rules::workload_q5`]; `analytics::valid_invitees` must agree).
//!
//! Validity, in order (the first that fails is the reason):
//! 1. new to the brand: the signup is the first event (identify excluded)
//!    of the invitee's person, over ALL of its stitched identities;
//! 2. not the inviter: the invitee's person is not the inviter's;
//! 3. anti-fraud flags (an operator override decides instead): a burst
//!    (more than `burst.max` signups by one inviter within `burst.window`),
//!    a device or IP fingerprint shared by more than `max_per_device` /
//!    `max_per_ip` signups, a zombie (no event after the signup within
//!    `zombie_after`);
//! 4. conversion, when required: a purchase within `convert_within` after
//!    the signup — pending until the window closes;
//! 5. the hold: no refund, no leaving `group`, no `unfriend` within `hold`
//!    after the signup ("take the gift and leave") — pending until it ends.
//!
//! An invitee person counts once, for its first signup in the campaign.

use crate::engine::{Engine, PersonId, Referral};
use crate::person::{Exit, GroupCode, Person};
use std::collections::HashMap;

/// A campaign's validity rules, in seconds.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Only signups naming this campaign (engine code); None: every signup.
    #[serde(skip)]
    pub campaign: Option<u32>,
    /// Signups before `starts` or at/after `ends` (epoch s) are ignored.
    pub starts: Option<i64>,
    pub ends: Option<i64>,
    /// A purchase within this long after the signup is required.
    pub convert_within: Option<i64>,
    /// The invitee must not leave this group within the hold.
    pub group: Option<String>,
    pub hold: i64,
    pub burst: Option<Burst>,
    pub zombie_after: Option<i64>,
    pub max_per_device: Option<u32>,
    pub max_per_ip: Option<u32>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Burst {
    pub max: u32,
    pub window: i64,
}

impl Rules {
    /// WORKLOAD.md Q5: every signup, a purchase within 14 days, no hold.
    pub fn workload_q5() -> Rules {
        Rules {
            convert_within: Some(14 * 86_400),
            ..Rules::default()
        }
    }
}

/// Why an invitee does not count.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NotNew,
    SelfReferral,
    AlreadyCounted,
    Burst,
    SharedDevice,
    SharedIp,
    Zombie,
    NotConverted,
    Refunded,
    LeftGroup,
    Unfriended,
    /// An operator marked it invalid.
    Overridden,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    /// Not decided before `until` (conversion window or hold still open).
    Pending {
        until: i64,
    },
    Invalid {
        reason: Reason,
    },
}

/// One signup of the campaign and its verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Invitee {
    pub invitee: PersonId,
    pub inviter: PersonId,
    pub ts: i64,
    pub verdict: Verdict,
    /// The anti-fraud flag, even when an override made it count.
    pub flag: Option<Reason>,
    pub converted: bool,
}

/// Operator decisions on flagged invitees: `true` = count it anyway.
pub type Overrides = HashMap<PersonId, bool>;

/// Every signup of the campaign with its verdict at the engine clock, in
/// signup order.
pub fn evaluate(engine: &Engine, rules: &Rules, overrides: &Overrides) -> Vec<Invitee> {
    let now = engine.now();
    // The hold's group by code: a group no one was ever in, no one left.
    let hold_group = rules
        .group
        .as_deref()
        .and_then(|g| engine.group_names().code(g));
    let in_campaign = |r: &&Referral| {
        rules.campaign.is_none_or(|c| r.campaign == c)
            && rules.starts.is_none_or(|s| r.ts as i64 >= s)
            && rules.ends.is_none_or(|e| (r.ts as i64) < e)
    };
    let mut refs: Vec<&Referral> = engine.referrals().iter().filter(in_campaign).collect();
    refs.sort_by_key(|r| (r.ts, r.seq));
    // Fingerprint and burst counts over the campaign's signups.
    let mut per_device: HashMap<u32, u32> = HashMap::new();
    let mut per_ip: HashMap<u32, u32> = HashMap::new();
    let mut recent: HashMap<PersonId, std::collections::VecDeque<i64>> = HashMap::new();
    let mut counted: std::collections::HashSet<PersonId> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let ts = r.ts as i64;
        let invitee = engine.person_of_id(r.invitee);
        let inviter = engine.person_of_id(r.inviter);
        let Some(p) = engine.person(invitee) else {
            continue;
        };
        let converted = !p
            .purchases_between(ts, rules.convert_within.map_or(i64::MAX, |w| ts + w))
            .is_empty();
        // Fraud flags are counted over every signup, valid or not.
        let mut flag = None;
        if r.device != 0 {
            let n = per_device.entry(r.device).or_default();
            *n += 1;
            if rules.max_per_device.is_some_and(|m| *n > m) {
                flag = Some(Reason::SharedDevice);
            }
        }
        if r.ip != 0 {
            let n = per_ip.entry(r.ip).or_default();
            *n += 1;
            if flag.is_none() && rules.max_per_ip.is_some_and(|m| *n > m) {
                flag = Some(Reason::SharedIp);
            }
        }
        if let Some(b) = rules.burst {
            let q = recent.entry(inviter).or_default();
            while q.front().is_some_and(|&t| t + b.window <= ts) {
                q.pop_front();
            }
            q.push_back(ts);
            if flag.is_none() && q.len() as u32 > b.max {
                flag = Some(Reason::Burst);
            }
        }
        if flag.is_none() {
            if let Some(z) = rules.zombie_after {
                if now >= ts + z && (p.last_event_ts as i64) <= ts {
                    flag = Some(Reason::Zombie);
                }
            }
        }
        let verdict = verdict(
            p, r, invitee, inviter, flag, converted, rules, hold_group, overrides, &counted, now,
        );
        if verdict == Verdict::Valid || matches!(verdict, Verdict::Pending { .. }) {
            counted.insert(invitee);
        }
        out.push(Invitee {
            invitee,
            inviter,
            ts,
            verdict,
            flag,
            converted,
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn verdict(
    p: &Person,
    r: &Referral,
    invitee: PersonId,
    inviter: PersonId,
    flag: Option<Reason>,
    converted: bool,
    rules: &Rules,
    hold_group: Option<GroupCode>,
    overrides: &Overrides,
    counted: &std::collections::HashSet<PersonId>,
    now: i64,
) -> Verdict {
    let invalid = |reason| Verdict::Invalid { reason };
    let ts = r.ts as i64;
    if (p.first_ts, p.first_seq) != (r.ts, r.seq) {
        return invalid(Reason::NotNew);
    }
    if invitee == inviter {
        return invalid(Reason::SelfReferral);
    }
    if counted.contains(&invitee) {
        return invalid(Reason::AlreadyCounted);
    }
    match overrides.get(&invitee) {
        Some(false) => return invalid(Reason::Overridden),
        Some(true) => {}
        None => {
            if let Some(f) = flag {
                return invalid(f);
            }
        }
    }
    // Departures within the hold invalidate at once, even while it runs.
    let hold_end = ts + rules.hold;
    if rules.hold > 0 {
        if let Some(e) = &p.extra {
            for (t, x) in &e.exits {
                let t = *t as i64;
                if t < ts || t > hold_end {
                    continue;
                }
                match x {
                    Exit::Refund => return invalid(Reason::Refunded),
                    Exit::Unfriend => return invalid(Reason::Unfriended),
                    Exit::LeftGroup(g) if hold_group == Some(*g) => {
                        return invalid(Reason::LeftGroup)
                    }
                    Exit::LeftGroup(_) => {}
                }
            }
        }
    }
    if let Some(w) = rules.convert_within {
        if !converted {
            return if now <= ts + w {
                Verdict::Pending { until: ts + w }
            } else {
                invalid(Reason::NotConverted)
            };
        }
    }
    if rules.hold > 0 && now < hold_end {
        return Verdict::Pending { until: hold_end };
    }
    Verdict::Valid
}

/// Per inviter: (valid, pending) invitees.
pub fn per_inviter(invitees: &[Invitee]) -> HashMap<PersonId, (u64, u64)> {
    let mut m: HashMap<PersonId, (u64, u64)> = HashMap::new();
    for i in invitees {
        match i.verdict {
            Verdict::Valid => m.entry(i.inviter).or_default().0 += 1,
            Verdict::Pending { .. } => m.entry(i.inviter).or_default().1 += 1,
            Verdict::Invalid { .. } => {}
        }
    }
    m
}

/// The top `n` inviters by valid invitees (desc), canonical id (asc):
/// (canonical id, valid, pending).
pub fn leaderboard(engine: &Engine, invitees: &[Invitee], n: usize) -> Vec<(String, u64, u64)> {
    let counts = per_inviter(invitees);
    let mut rows: Vec<(&str, u64, u64)> = counts
        .iter()
        .filter(|(_, (v, p))| v + p > 0)
        .map(|(&slot, &(v, p))| (engine.canonical_id(slot), v, p))
        .collect();
    let cmp = |a: &(&str, u64, u64), b: &(&str, u64, u64)| {
        b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0))
    };
    let k = n.min(rows.len());
    if k > 0 && k < rows.len() {
        rows.select_nth_unstable_by(k - 1, cmp);
        rows.truncate(k);
    }
    rows.sort_by(cmp);
    rows.truncate(k);
    rows.into_iter()
        .map(|(c, v, p)| (c.to_string(), v, p))
        .collect()
}

/// The campaign funnel and growth numbers.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Funnel {
    pub clicks: u64,
    pub signups: u64,
    pub valid: u64,
    pub pending: u64,
    pub invalid: u64,
    /// Valid invitees with a purchase after signing up.
    pub converted: u64,
    pub invalid_by_reason: std::collections::BTreeMap<String, u64>,
    /// Inviters with at least one signup.
    pub inviters: u64,
    /// Valid invitees per inviter (i × c).
    pub k_factor: f64,
    /// Median seconds from an inviter's first event to a valid invitee's signup.
    pub cycle_time_median_secs: Option<i64>,
    /// Net spend (cents) of valid invitees.
    pub referred_revenue: i64,
}

pub fn funnel(engine: &Engine, invitees: &[Invitee], clicks: u64) -> Funnel {
    let mut f = Funnel {
        clicks,
        signups: invitees.len() as u64,
        ..Funnel::default()
    };
    let mut inviters = std::collections::HashSet::new();
    let mut cycles = Vec::new();
    for i in invitees {
        inviters.insert(i.inviter);
        match i.verdict {
            Verdict::Valid => {
                f.valid += 1;
                let p = engine.person(i.invitee);
                if p.is_some_and(|p| !p.purchases_between(i.ts, i64::MAX).is_empty()) {
                    f.converted += 1;
                }
                f.referred_revenue += p.map_or(0, |p| p.net_spend());
                if let Some(inv) = engine.person(i.inviter) {
                    if inv.first_ts != crate::person::NO_TS {
                        cycles.push(i.ts - inv.first_ts as i64);
                    }
                }
            }
            Verdict::Pending { .. } => f.pending += 1,
            Verdict::Invalid { reason } => {
                f.invalid += 1;
                let key = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *f.invalid_by_reason.entry(key).or_default() += 1;
            }
        }
    }
    f.inviters = inviters.len() as u64;
    f.k_factor = if f.inviters == 0 {
        0.0
    } else {
        f.valid as f64 / f.inviters as f64
    };
    if !cycles.is_empty() {
        let mid = cycles.len() / 2;
        let (_, m, _) = cycles.select_nth_unstable(mid);
        f.cycle_time_median_secs = Some(*m);
    }
    f
}
