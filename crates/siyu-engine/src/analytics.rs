//! Commerce analytics over the engine's persons: RFM, funnels, cohort
//! retention, referral tiers, channel ROI. Each is one pass over the
//! persons (or referrals); none re-reads events.
//!
//! The parameters are explicit (windows, T0, tiers) so the reference
//! workload's questions (WORKLOAD.md Q0–Q6) are just one set of arguments.

use crate::engine::{Engine, PersonId};
use crate::person::{Person, NO_CHANNEL, NO_TS};
use siyu_domain::DAY;
use std::collections::BTreeMap;
use std::ops::Range;

/// RFM scores (1..=5 each) of a person with at least one purchase, at `now`.
/// R by days since the last purchase (≤30→5, ≤60→4, ≤120→3, ≤240→2, else 1),
/// F by purchase count (1, 2, 3–4, 5–7, ≥8), M by net spend in cents
/// (<10000, <30000, <80000, <200000, else).
pub fn rfm_scores(p: &Person, now: i64) -> Option<(u8, u8, u8)> {
    if p.purchase_count() == 0 || p.last_purchase_ts() == NO_TS {
        return None;
    }
    let days = (now - p.last_purchase_ts() as i64).div_euclid(DAY);
    let r = match days {
        d if d <= 30 => 5,
        d if d <= 60 => 4,
        d if d <= 120 => 3,
        d if d <= 240 => 2,
        _ => 1,
    };
    let f = match p.purchase_count() {
        1 => 1,
        2 => 2,
        3..=4 => 3,
        5..=7 => 4,
        _ => 5,
    };
    let m = match p.net_spend() {
        x if x < 10_000 => 1,
        x if x < 30_000 => 2,
        x if x < 80_000 => 3,
        x if x < 200_000 => 4,
        _ => 5,
    };
    Some((r, f, m))
}

/// Persons per RFM cell: `grid[r-1][f-1][m-1]`.
pub fn rfm_grid(engine: &Engine, now: i64) -> [[[u64; 5]; 5]; 5] {
    engine.fold_persons(
        |persons| {
            let mut grid = [[[0u64; 5]; 5]; 5];
            for (_, p) in persons {
                if let Some((r, f, m)) = rfm_scores(p, now) {
                    grid[r as usize - 1][f as usize - 1][m as usize - 1] += 1;
                }
            }
            grid
        },
        |mut a, b| {
            for (x, y) in a
                .iter_mut()
                .flatten()
                .flatten()
                .zip(b.iter().flatten().flatten())
            {
                *x += y;
            }
            a
        },
    )
}

/// One row of the first-touch funnel.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FunnelRow {
    pub channel: String,
    pub entered: u64,
    pub friended: u64,
    pub converted: u64,
}

/// Per first-touch channel: persons, those who added a friend within
/// `friend_within` seconds of their first event, and of those, who purchased
/// within `convert_within` seconds of their first add_friend. Sorted by channel.
pub fn first_touch_funnel(
    engine: &Engine,
    friend_within: i64,
    convert_within: i64,
) -> Vec<FunnelRow> {
    first_touch_funnel_in(engine, friend_within, convert_within, &ALL_TIME)
}

/// Every instant: the range of an analytics question asked without one.
pub const ALL_TIME: Range<i64> = i64::MIN..i64::MAX;

/// [`first_touch_funnel`] of the persons first seen within `first_seen`
/// (a date range the caller has turned into instants, end exclusive).
pub fn first_touch_funnel_in(
    engine: &Engine,
    friend_within: i64,
    convert_within: i64,
    first_seen: &Range<i64>,
) -> Vec<FunnelRow> {
    // (entered, friended, converted) per channel code.
    let counts = engine.fold_persons(
        |persons| {
            let mut c: Vec<[u64; 3]> = vec![[0; 3]; engine.channel_count()];
            for (_, p) in persons {
                if p.first_channel == NO_CHANNEL || !first_seen.contains(&(p.first_ts as i64)) {
                    continue;
                }
                let row = &mut c[p.first_channel as usize];
                row[0] += 1;
                // The earliest add_friend is never before the first event (both
                // exclude identify), so "an add_friend within the window" is "the
                // earliest one is".
                if p.first_friend_ts == NO_TS
                    || (p.first_friend_ts - p.first_ts) as i64 > friend_within
                {
                    continue;
                }
                row[1] += 1;
                let af = p.first_friend_ts as i64;
                if !p.purchases_between(af, af + convert_within).is_empty() {
                    row[2] += 1;
                }
            }
            c
        },
        |mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                for k in 0..3 {
                    x[k] += y[k];
                }
            }
            a
        },
    );
    let mut rows: Vec<FunnelRow> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c[0] > 0)
        .map(|(code, c)| FunnelRow {
            channel: engine.channel_name(code as u16).unwrap_or("").to_string(),
            entered: c[0],
            friended: c[1],
            converted: c[2],
        })
        .collect();
    rows.sort_by(|a, b| a.channel.cmp(&b.channel));
    rows
}

/// One cohort of the retention table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct CohortRow {
    pub cohort: i64,
    pub size: u64,
    /// Active persons per offset 0..periods.
    pub active: Vec<u64>,
}

/// Cohorts by the period of the first add_friend (period = floor((ts − t0) /
/// period_secs), negative cohorts dropped); a person is active in offset k
/// if they have a message_read or purchase in period cohort + k.
pub fn cohort_retention(
    engine: &Engine,
    t0: i64,
    period_secs: i64,
    periods: usize,
) -> Vec<CohortRow> {
    cohort_retention_by(
        engine,
        &|ts| (ts - t0).div_euclid(period_secs),
        &|c| t0 + c * period_secs,
        periods,
    )
}

/// [`cohort_retention`] over periods the caller defines: `period_of(ts)`
/// numbers the period an instant falls in (negative: before the first,
/// dropped), and `period_start(c)` is the first instant of period `c`;
/// they must agree. Calendar weeks in a time zone (Monday 00:00 local,
/// whatever the zone's offsets that week) are such periods, which a fixed
/// number of seconds is not.
pub fn cohort_retention_by(
    engine: &Engine,
    period_of: &(dyn Fn(i64) -> i64 + Sync),
    period_start: &(dyn Fn(i64) -> i64 + Sync),
    periods: usize,
) -> Vec<CohortRow> {
    let period = |ts: u32| period_of(ts as i64);
    let cohorts = engine.fold_persons(
        |persons| {
            let mut cohorts: BTreeMap<i64, CohortRow> = BTreeMap::new();
            let mut active = vec![false; periods];
            for (_, p) in persons {
                if p.first_friend_ts == NO_TS {
                    continue;
                }
                let c = period(p.first_friend_ts);
                if c < 0 {
                    continue;
                }
                active.iter_mut().for_each(|a| *a = false);
                let mut mark = |ts: u32| {
                    let k = period(ts) - c;
                    if k >= 0 && (k as usize) < periods {
                        active[k as usize] = true;
                    }
                };
                // Activity before the cohort's start cannot count; skip it cheaply.
                let from = period_start(c);
                let start = p.reads().partition_point(|&t| (t as i64) < from);
                p.reads()[start..].iter().for_each(|&t| mark(t));
                p.purchases_between(from, i64::MAX)
                    .iter()
                    .for_each(|x| mark(x.ts));
                let row = cohorts.entry(c).or_insert_with(|| CohortRow {
                    cohort: c,
                    size: 0,
                    active: vec![0; periods],
                });
                row.size += 1;
                for (n, a) in row.active.iter_mut().zip(&active) {
                    *n += *a as u64;
                }
            }
            cohorts
        },
        |mut a, b| {
            for (c, row) in b {
                let into = a.entry(c).or_insert_with(|| CohortRow {
                    cohort: c,
                    size: 0,
                    active: vec![0; periods],
                });
                into.size += row.size;
                for (x, y) in into.active.iter_mut().zip(&row.active) {
                    *x += y;
                }
            }
            a
        },
    );
    cohorts.into_values().collect()
}

/// The referral summary: who brought valid invitees, and the tiers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ReferralSummary {
    pub inviters: u64,
    /// Inviter counts per tier, tiers as given (lower bounds, ascending).
    pub tiers: Vec<u64>,
    /// Top inviters: (canonical id, valid invitees), valid desc then id asc.
    pub top: Vec<(String, u64)>,
}

/// Valid invitees per inviter person. A signup is valid when it is the
/// invitee person's first event, the inviter is another person, and the
/// invitee purchased within `[t, t + convert_within]`. An invitee person
/// counts once (only its first event can be valid).
pub fn valid_invitees(engine: &Engine, convert_within: i64) -> Vec<(PersonId, u64)> {
    let count = |refs: &[crate::engine::Referral]| {
        let mut counts: std::collections::HashMap<PersonId, u64> = std::collections::HashMap::new();
        for r in refs {
            let invitee = engine.person_of_id(r.invitee);
            let Some(p) = engine.person(invitee) else {
                continue;
            };
            if (p.first_ts, p.first_seq) != (r.ts, r.seq) {
                continue;
            }
            let inviter = engine.person_of_id(r.inviter);
            if inviter == invitee {
                continue;
            }
            if p.purchases_between(r.ts as i64, r.ts as i64 + convert_within)
                .is_empty()
            {
                continue;
            }
            *counts.entry(inviter).or_default() += 1;
        }
        counts
    };
    let refs = engine.referrals();
    let parts = engine
        .parallelism
        .clamp(1, refs.len() / crate::engine::MIN_PERSONS_PER_THREAD + 1);
    let chunk = refs.len().div_ceil(parts).max(1);
    let maps: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = refs
            .chunks(chunk)
            .map(|c| s.spawn(move || count(c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("referral worker panicked"))
            .collect()
    });
    let mut total: std::collections::HashMap<PersonId, u64> = std::collections::HashMap::new();
    for m in maps {
        for (k, v) in m {
            *total.entry(k).or_default() += v;
        }
    }
    total.into_iter().collect()
}

/// Referral tiers (`tiers` are ascending lower bounds; a person is in the
/// highest tier they reach) and the top `top_n` inviters.
pub fn referral_summary(
    engine: &Engine,
    convert_within: i64,
    tiers: &[u64],
    top_n: usize,
) -> ReferralSummary {
    let counts = valid_invitees(engine, convert_within);
    let mut tier_counts = vec![0u64; tiers.len()];
    for &(_, n) in &counts {
        if let Some(t) = tiers.iter().rposition(|&lo| n >= lo) {
            tier_counts[t] += 1;
        }
    }
    let mut ranked: Vec<(&str, u64)> = counts
        .iter()
        .map(|&(p, n)| (engine.canonical_id(p), n))
        .collect();
    let k = top_n.min(ranked.len());
    let cmp = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
    if k > 0 && k < ranked.len() {
        ranked.select_nth_unstable_by(k - 1, cmp);
        ranked.truncate(k);
    }
    ranked.sort_by(cmp);
    ranked.truncate(k);
    ReferralSummary {
        inviters: counts.len() as u64,
        tiers: tier_counts,
        top: ranked
            .into_iter()
            .map(|(c, n)| (c.to_string(), n))
            .collect(),
    }
}

/// One channel's spend against the revenue of the persons it brought.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RoiRow {
    pub channel: String,
    pub spend: i64,
    pub revenue: i64,
    pub persons: u64,
}

/// First-touch channel ROI: spend per channel (from `(channel, cents)` rows)
/// against net spend and count of persons by first-touch channel. Every
/// channel of either side appears; sorted by channel.
pub fn channel_roi<'a>(
    engine: &Engine,
    spend: impl IntoIterator<Item = (&'a str, i64)>,
) -> Vec<RoiRow> {
    channel_roi_in(engine, spend, &ALL_TIME)
}

/// [`channel_roi`] for a date range: `spend` is the range's spend (the
/// caller picks the days), weighed against the persons each channel
/// brought within `first_seen` (their net spend, to date).
pub fn channel_roi_in<'a>(
    engine: &Engine,
    spend: impl IntoIterator<Item = (&'a str, i64)>,
    first_seen: &Range<i64>,
) -> Vec<RoiRow> {
    let mut rows: BTreeMap<String, RoiRow> = BTreeMap::new();
    for (channel, cents) in spend {
        rows.entry(channel.to_string())
            .or_insert_with(|| RoiRow {
                channel: channel.to_string(),
                ..Default::default()
            })
            .spend += cents;
    }
    let per_code = engine.fold_persons(
        |persons| {
            let mut per_code: Vec<(i64, u64)> = vec![(0, 0); engine.channel_count()];
            for (_, p) in persons {
                if p.first_channel != NO_CHANNEL && first_seen.contains(&(p.first_ts as i64)) {
                    let e = &mut per_code[p.first_channel as usize];
                    e.0 += p.net_spend();
                    e.1 += 1;
                }
            }
            per_code
        },
        |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.0 += y.0;
                x.1 += y.1;
            }
            a
        },
    );
    for (code, (revenue, persons)) in per_code.into_iter().enumerate() {
        if persons == 0 {
            continue;
        }
        let name = engine.channel_name(code as u16).unwrap_or("");
        let row = rows.entry(name.to_string()).or_insert_with(|| RoiRow {
            channel: name.to_string(),
            ..Default::default()
        });
        row.revenue += revenue;
        row.persons += persons;
    }
    rows.into_values().collect()
}

/// Repurchase: of persons with ≥1 purchase, how many bought again, and the
/// median days between consecutive purchases.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Repurchase {
    pub buyers: u64,
    pub repeat_buyers: u64,
    pub rate: f64,
    pub median_interval_days: Option<f64>,
}

pub fn repurchase(engine: &Engine) -> Repurchase {
    let mut out = Repurchase::default();
    let mut gaps: Vec<u32> = Vec::new();
    for (_, p) in engine.persons() {
        if p.purchases().is_empty() {
            continue;
        }
        out.buyers += 1;
        if p.purchases().len() > 1 {
            out.repeat_buyers += 1;
        }
        let ps = p.purchases();
        gaps.extend(ps.iter().zip(ps.iter().skip(1)).map(|(a, b)| b.ts - a.ts));
    }
    out.rate = if out.buyers > 0 {
        out.repeat_buyers as f64 / out.buyers as f64
    } else {
        0.0
    };
    if !gaps.is_empty() {
        let mid = gaps.len() / 2;
        let (_, m, _) = gaps.select_nth_unstable(mid);
        out.median_interval_days = Some(*m as f64 / DAY as f64);
    }
    out
}

/// Historical LTV (mean net spend per person) by first-touch channel and
/// first-seen month (`YYYY-MM`), sorted by month, then channel.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct LtvRow {
    pub cohort_month: String,
    pub channel: String,
    pub persons: u64,
    pub revenue: i64,
    pub ltv: f64,
}

pub fn ltv_by_cohort_and_channel(engine: &Engine) -> Vec<LtvRow> {
    ltv_by_cohort_and_channel_in(engine, &ALL_TIME, &|ts| ts.div_euclid(DAY))
}

/// [`ltv_by_cohort_and_channel`] of the persons first seen within
/// `first_seen`, months by `local_day(ts)` (days since 1970-01-01 of the
/// calendar day `ts` falls on where the brand is, so a person first seen
/// 2026-10-31T20:00Z is in November in Shanghai).
pub fn ltv_by_cohort_and_channel_in(
    engine: &Engine,
    first_seen: &Range<i64>,
    local_day: &dyn Fn(i64) -> i64,
) -> Vec<LtvRow> {
    let mut rows: BTreeMap<(String, u16), (u64, i64)> = BTreeMap::new();
    for (_, p) in engine.persons() {
        if p.first_ts == NO_TS || !first_seen.contains(&(p.first_ts as i64)) {
            continue;
        }
        let date = siyu_domain::time::format_date(local_day(p.first_ts as i64));
        let e = rows
            .entry((date[..7].to_string(), p.first_channel))
            .or_default();
        e.0 += 1;
        e.1 += p.net_spend();
    }
    let mut out: Vec<LtvRow> = rows
        .into_iter()
        .map(|((month, code), (persons, revenue))| LtvRow {
            cohort_month: month,
            channel: engine.channel_name(code).unwrap_or("").to_string(),
            persons,
            revenue,
            ltv: revenue as f64 / persons as f64,
        })
        .collect();
    // By month, then channel name: channel codes are numbered in the order
    // the log first named them, which is not part of the answer.
    out.sort_by(|a, b| (&a.cohort_month, &a.channel).cmp(&(&b.cohort_month, &b.channel)));
    out
}
