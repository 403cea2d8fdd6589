//! Group health: size, joins and leaves per local day, the active rate,
//! and members who left soon after a reward. The arithmetic lives here;
//! the server reads the group's own join/leave events through the store's
//! `(grp, ts)` index and the leavers' timelines by the log offsets the
//! engine keeps (it never scans the log), taking each lock only for its
//! step.

use super::{CommunityError, Result, LEFT_AFTER_REWARD, REWARD_EVENT};
use serde::Serialize;
use siyu_automation::schedule::{self, Tz};
use siyu_domain::time::format_rfc3339;
use siyu_domain::EventType;
use siyu_engine::{Engine, PersonId};
use siyu_store::StoredEvent;
use std::collections::{HashMap, HashSet};

/// Days a health window spans unless asked otherwise, and at most.
pub const DEFAULT_DAYS: u32 = 7;
pub const MAX_DAYS: u32 = 90;
/// Newest events read per leaver when looking for a reward before leaving.
pub const LEAVER_TIMELINE: usize = 500;
/// Leavers after a reward named in the answer, at most.
const EXAMPLES: usize = 100;

/// The window's days (1..=90, default 7).
pub fn window_days(days: Option<u32>) -> usize {
    days.unwrap_or(DEFAULT_DAYS).clamp(1, MAX_DAYS) as usize
}

/// The timezone parameter (default: the schedules' default zone).
pub fn timezone(name: Option<&str>) -> Result<Tz> {
    match name {
        None => Ok(Tz::parse_or(None, schedule::DEFAULT_TZ)),
        Some(t) => Tz::parse(t).map_err(|e| CommunityError::BadParameter(format!("timezone: {e}"))),
    }
}

/// The local starts of the window's `days` days ending with the day of
/// `at`, oldest first.
pub fn day_starts(at: i64, days: usize, tz: &Tz) -> Vec<i64> {
    let mut starts = vec![schedule::day_start(at, tz)];
    while starts.len() < days {
        let prev = schedule::day_start(starts[starts.len() - 1] - 1, tz);
        starts.push(prev);
    }
    starts.reverse();
    starts
}

/// Members of `group` now, and how many of them did anything since `from`
/// (the engine keeps each person's last event time).
pub fn members_and_active(engine: &Engine, group: &str, from: i64) -> (u32, usize) {
    let mut size = 0u32;
    let mut active = 0usize;
    let Some(code) = engine.group_names().code(group) else {
        return (0, 0);
    };
    for (_, p) in engine.persons() {
        let inside = p.extra.as_deref().is_some_and(|e| e.in_group(code));
        if inside {
            size += 1;
            if p.events > 0 && p.last_event_ts as i64 >= from {
                active += 1;
            }
        }
    }
    (size, active)
}

/// Joins and leaves per day of the window, and each leave (ts, identity).
pub struct Tally {
    pub joins: Vec<u64>,
    pub leaves: Vec<u64>,
    pub left: Vec<(i64, String)>,
}

/// Counts the group's join/leave events into the days of `starts`.
pub fn tally(starts: &[i64], group_events: &[StoredEvent]) -> Tally {
    let days = starts.len();
    let mut t = Tally {
        joins: vec![0; days],
        leaves: vec![0; days],
        left: Vec::new(),
    };
    for se in group_events {
        let e = &se.event;
        let day = starts.partition_point(|&d| d <= e.ts).saturating_sub(1);
        match e.event_type {
            EventType::JoinGroup => t.joins[day] += 1,
            EventType::LeaveGroup => {
                t.leaves[day] += 1;
                t.left.push((e.ts, e.identity.as_str().to_string()));
            }
            _ => {}
        }
    }
    t
}

/// The log offsets of each leaver's person (one list per person).
pub fn leaver_offsets(engine: &Engine, left: &[(i64, String)]) -> Vec<Vec<u64>> {
    left.iter()
        .filter_map(|(_, i)| engine.person_of(i))
        .collect::<HashSet<PersonId>>()
        .into_iter()
        .filter_map(|slot| engine.event_offsets(slot))
        .collect()
}

/// The rewards in a leaver's timeline that can explain a leave in a
/// window starting at `from`: (ts, identity).
pub fn rewards_in(timeline: Vec<StoredEvent>, from: i64) -> Vec<(i64, String)> {
    timeline
        .into_iter()
        .map(|se| se.event)
        .filter(|e| {
            e.event_type == EventType::Custom
                && e.name.as_deref() == Some(REWARD_EVENT)
                && e.ts >= from - LEFT_AFTER_REWARD
        })
        .map(|e| (e.ts, e.identity.as_str().to_string()))
        .collect()
}

/// Leaves at most [`LEFT_AFTER_REWARD`] after a reward, matched per
/// person (any of their identities): how many, and up to 100 of the
/// persons (canonical ids, sorted).
pub fn left_after_reward(
    engine: &Engine,
    rewards: &[(i64, String)],
    left: &[(i64, String)],
) -> (u64, Vec<String>) {
    let mut by_person: HashMap<PersonId, Vec<i64>> = HashMap::new();
    for (ts, identity) in rewards {
        if let Some(slot) = engine.person_of(identity) {
            by_person.entry(slot).or_default().push(*ts);
        }
    }
    let mut persons: HashSet<PersonId> = HashSet::new();
    let mut count = 0u64;
    for (ts, identity) in left {
        let Some(slot) = engine.person_of(identity) else {
            continue;
        };
        let hit = by_person
            .get(&slot)
            .is_some_and(|r| r.iter().any(|&r| r <= *ts && ts - r <= LEFT_AFTER_REWARD));
        if hit {
            count += 1;
            persons.insert(slot);
        }
    }
    let mut examples: Vec<String> = persons
        .into_iter()
        .filter(|&slot| engine.person(slot).is_some())
        .map(|slot| engine.canonical_id(slot).to_string())
        .collect();
    examples.sort();
    examples.truncate(EXAMPLES);
    (count, examples)
}

/// `GET /v1/groups/{id}/health`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GroupHealth {
    pub group: String,
    pub size: u32,
    pub capacity: u32,
    pub window: Window,
    pub joins: u64,
    pub leaves: u64,
    pub net: i64,
    pub per_day: Vec<DayCount>,
    pub active: usize,
    pub active_rate: f64,
    pub left_after_reward: LeftAfterReward,
    pub events_scanned: u64,
    /// Time taken, measured by the server.
    pub ms: f64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Window {
    pub days: usize,
    pub from: String,
    pub to: String,
    pub timezone: String,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DayCount {
    pub date: String,
    pub joins: u64,
    pub leaves: u64,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LeftAfterReward {
    pub count: u64,
    pub within_days: i64,
    pub persons: Vec<String>,
}

/// What the health answer says, from the steps above (`ms` is 0 until
/// the server sets it).
pub struct HealthFacts<'a> {
    pub group: &'a str,
    pub capacity: u32,
    pub at: i64,
    pub tz: &'a Tz,
    pub starts: &'a [i64],
    pub size: u32,
    pub active: usize,
    pub tally: &'a Tally,
    pub after_reward: (u64, Vec<String>),
    pub events_scanned: u64,
}

impl GroupHealth {
    pub fn new(f: HealthFacts<'_>) -> GroupHealth {
        let per_day: Vec<DayCount> = f
            .starts
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let (y, m, dd) = schedule::local_date(d, f.tz);
                DayCount {
                    date: format!("{y:04}-{m:02}-{dd:02}"),
                    joins: f.tally.joins[i],
                    leaves: f.tally.leaves[i],
                }
            })
            .collect();
        let (j, l): (u64, u64) = (f.tally.joins.iter().sum(), f.tally.leaves.iter().sum());
        GroupHealth {
            group: f.group.to_string(),
            size: f.size,
            capacity: f.capacity,
            window: Window {
                days: f.starts.len(),
                from: format_rfc3339(f.starts[0]),
                to: format_rfc3339(f.at),
                timezone: f.tz.name().to_string(),
            },
            joins: j,
            leaves: l,
            net: j as i64 - l as i64,
            per_day,
            active: f.active,
            active_rate: if f.size == 0 {
                0.0
            } else {
                f.active as f64 / f64::from(f.size)
            },
            left_after_reward: LeftAfterReward {
                count: f.after_reward.0,
                within_days: LEFT_AFTER_REWARD / 86_400,
                persons: f.after_reward.1,
            },
            events_scanned: f.events_scanned,
            ms: 0.0,
        }
    }
}
