//! What an operator reads about a campaign, from one evaluation
//! (`siyu_engine::fission::evaluate`) over the engine: the funnel with
//! reward cost, the leaderboard of inviters and the invitees with their
//! verdicts. The caller evaluates (and times the evaluation if it wants).

use super::{Campaign, FissionError, LedgerRow, LedgerStatus};
use serde::Serialize;
use siyu_engine::fission::{self, Funnel, Invitee, Overrides, Reason, Rules, Verdict};
use siyu_engine::Engine;

/// The funnel of a campaign and what its rewards cost.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RewardStats {
    pub funnel: Funnel,
    pub rewards_granted: usize,
    pub rewards_clawed_back: usize,
    /// Cents: the cost of every standing grant.
    pub reward_cost: i64,
    /// `null` while no invitee is valid.
    pub reward_cost_per_valid: Option<f64>,
}

/// The funnel (clicks → signups → valid → converted …) of evaluated
/// `invitees` and the cost of the `ledger`'s standing grants.
pub fn stats(
    engine: &Engine,
    c: &Campaign,
    rules: &Rules,
    invitees: &[Invitee],
    ledger: &[LedgerRow],
) -> RewardStats {
    let clicks = rules
        .campaign
        .map_or(0, |code| engine.campaign_clicks(code));
    let funnel = fission::funnel(engine, invitees, clicks);
    let granted = || ledger.iter().filter(|r| r.status == LedgerStatus::Granted);
    let cost: i64 = granted()
        .map(|r| c.rewards.get(&r.reward).map_or(0, |x| x.cost))
        .sum();
    RewardStats {
        rewards_granted: granted().count(),
        rewards_clawed_back: ledger
            .iter()
            .filter(|r| r.status == LedgerStatus::ClawedBack)
            .count(),
        reward_cost: cost,
        reward_cost_per_valid: if funnel.valid == 0 {
            None
        } else {
            Some(cost as f64 / funnel.valid as f64)
        },
        funnel,
    }
}

/// One inviter on the leaderboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LeaderRow {
    pub inviter: String,
    pub valid: u64,
    pub pending: u64,
}

/// The top `limit` inviters by valid invitees, then pending, then id.
pub fn leaderboard(engine: &Engine, invitees: &[Invitee], limit: usize) -> Vec<LeaderRow> {
    fission::leaderboard(engine, invitees, limit)
        .into_iter()
        .map(|(inviter, valid, pending)| LeaderRow {
            inviter,
            valid,
            pending,
        })
        .collect()
}

/// Which invitees to list by verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteeStatus {
    Valid,
    Pending,
    Invalid,
}

impl InviteeStatus {
    /// `valid`, `pending` or `invalid`.
    pub fn parse(s: &str) -> Result<Self, FissionError> {
        match s {
            "valid" => Ok(InviteeStatus::Valid),
            "pending" => Ok(InviteeStatus::Pending),
            "invalid" => Ok(InviteeStatus::Invalid),
            other => Err(FissionError::Status {
                status: other.to_string(),
            }),
        }
    }

    fn matches(self, v: &Verdict) -> bool {
        matches!(
            (self, v),
            (InviteeStatus::Valid, Verdict::Valid)
                | (InviteeStatus::Pending, Verdict::Pending { .. })
                | (InviteeStatus::Invalid, Verdict::Invalid { .. })
        )
    }
}

/// One signup with its verdict, by canonical ids.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct InviteeRow {
    pub invitee: String,
    pub inviter: String,
    pub ts: i64,
    pub verdict: Verdict,
    /// The anti-fraud flag, even when an override made it count.
    pub flag: Option<Reason>,
    pub converted: bool,
    /// The operator's decision, `null` if none.
    pub overridden: Option<bool>,
}

/// The first `limit` evaluated invitees (signup order) of `inviter` (an
/// identity; every inviter's if `None` or if it names nobody) with
/// verdict `status` (any if `None`).
pub fn invitees(
    engine: &Engine,
    evaluated: &[Invitee],
    overrides: &Overrides,
    status: Option<InviteeStatus>,
    inviter: Option<&str>,
    limit: usize,
) -> Vec<InviteeRow> {
    let inviter = inviter.and_then(|i| engine.person_of(i));
    evaluated
        .iter()
        .filter(|i| inviter.is_none_or(|x| i.inviter == x))
        .filter(|i| status.is_none_or(|s| s.matches(&i.verdict)))
        .take(limit)
        .map(|i| InviteeRow {
            invitee: engine.canonical_id(i.invitee).to_string(),
            inviter: engine.canonical_id(i.inviter).to_string(),
            ts: i.ts,
            verdict: i.verdict,
            flag: i.flag,
            converted: i.converted,
            overridden: overrides.get(&i.invitee).copied(),
        })
        .collect()
}
