//! Analytics that need each person's event sequence, not just their folded
//! properties: funnels over any steps and multi-touch channel attribution.
//! Both are one pass over the events in log order (the caller streams them
//! from the store), with a few bytes of state per person; the engine only
//! resolves each identity to its person.

use crate::engine::{Engine, PersonId, RawEvent};
use serde::{Deserialize, Serialize};
use siyu_domain::EventType;
use std::collections::{BTreeMap, HashMap};

/// One funnel step: an event type, optionally on one channel, within
/// `within` seconds of the previous step (no limit if None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<i64>,
}

/// How many persons reached each step, per split value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunnelResult {
    /// Split value (the first step's channel when split by channel, else "all").
    pub split: String,
    pub reached: Vec<u64>,
}

/// Funnel over `steps`: a person enters at their earliest event matching
/// step 0; each later step is the earliest matching event after the
/// previous step and within its window. With `split_by_channel`, persons
/// are grouped by the channel of their step-0 event.
pub fn funnel<'a>(
    engine: &Engine,
    events: impl IntoIterator<Item = RawEvent<'a>>,
    steps: &[FunnelStep],
    split_by_channel: bool,
) -> Vec<FunnelResult> {
    // Per person: (steps reached, ts of the last reached step, split).
    let mut state: HashMap<PersonId, (usize, i64, String)> = HashMap::new();
    let matches = |s: &FunnelStep, e: &RawEvent<'_>| {
        s.event_type == e.event_type && s.channel.as_deref().is_none_or(|c| c == e.channel)
    };
    for e in events {
        let Some(p) = engine.person_of(e.identity) else {
            continue;
        };
        match state.get_mut(&p) {
            None => {
                if steps.first().is_some_and(|s| matches(s, &e)) {
                    let split = if split_by_channel {
                        e.channel.to_string()
                    } else {
                        "all".to_string()
                    };
                    state.insert(p, (1, e.ts, split));
                }
            }
            Some((reached, last, _)) => {
                if let Some(s) = steps.get(*reached) {
                    if matches(s, &e) && e.ts >= *last && s.within.is_none_or(|w| e.ts - *last <= w)
                    {
                        *reached += 1;
                        *last = e.ts;
                    }
                }
            }
        }
    }
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, (reached, _, split)) in state {
        let row = out.entry(split).or_insert_with(|| vec![0; steps.len()]);
        for r in row.iter_mut().take(reached) {
            *r += 1;
        }
    }
    out.into_iter()
        .map(|(split, reached)| FunnelResult { split, reached })
        .collect()
}

/// Revenue credited to one channel by each attribution model (cents).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Attribution {
    pub channel: String,
    pub first_touch: i64,
    pub last_touch: i64,
    /// Each purchase split evenly over the distinct channels the person
    /// touched up to it (fractions of a cent kept as f64).
    pub linear: f64,
}

/// Credits every purchase (minus refunds) to channels: the person's first
/// channel, the channel of their last non-commerce event before it, and
/// evenly across all channels touched up to it. Events must come in log
/// (time) order.
pub fn attribution<'a>(
    engine: &Engine,
    events: impl IntoIterator<Item = RawEvent<'a>>,
) -> Vec<Attribution> {
    struct Touches {
        first: String,
        last: String,
        seen: Vec<String>,
    }
    let mut persons: HashMap<PersonId, Touches> = HashMap::new();
    let mut out: BTreeMap<String, Attribution> = BTreeMap::new();
    let mut credit = |channel: &str, f: &mut dyn FnMut(&mut Attribution)| {
        f(out
            .entry(channel.to_string())
            .or_insert_with(|| Attribution {
                channel: channel.to_string(),
                ..Default::default()
            }))
    };
    for e in events {
        let Some(p) = engine.person_of(e.identity) else {
            continue;
        };
        match e.event_type {
            EventType::Identify => {}
            EventType::Purchase | EventType::Refund => {
                let sign = if e.event_type == EventType::Refund {
                    -1
                } else {
                    1
                };
                let amount = sign * e.amount;
                let t = persons.entry(p).or_insert_with(|| Touches {
                    first: e.channel.to_string(),
                    last: e.channel.to_string(),
                    seen: vec![e.channel.to_string()],
                });
                let (first, last, seen) = (t.first.clone(), t.last.clone(), t.seen.clone());
                credit(&first, &mut |a| a.first_touch += amount);
                credit(&last, &mut |a| a.last_touch += amount);
                let share = amount as f64 / seen.len() as f64;
                for c in &seen {
                    credit(c, &mut |a| a.linear += share);
                }
            }
            _ => {
                let t = persons.entry(p).or_insert_with(|| Touches {
                    first: e.channel.to_string(),
                    last: String::new(),
                    seen: Vec::new(),
                });
                t.last = e.channel.to_string();
                if !t.seen.iter().any(|c| c == e.channel) {
                    t.seen.push(e.channel.to_string());
                }
            }
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        ts: i64,
        who: &'static str,
        t: EventType,
        channel: &'static str,
        amount: i64,
    ) -> RawEvent<'static> {
        RawEvent {
            seq: ts as u64,
            ts,
            identity: who,
            identity_hash: None,
            event_type: t,
            channel,
            amount,
            reference: None,
            group: None,
            campaign: None,
            device: None,
            ip: None,
            name: None,
        }
    }

    #[test]
    fn funnel_and_attribution_over_a_small_log() {
        let log = vec![
            ev(100, "douyin:a", EventType::Touch, "douyin", 0),
            ev(200, "douyin:a", EventType::AddFriend, "wecom", 0),
            ev(300, "douyin:a", EventType::Purchase, "wecom", 1000),
            ev(100, "taobao:b", EventType::Touch, "taobao", 0),
            ev(10_000, "taobao:b", EventType::AddFriend, "wecom", 0),
            ev(10_100, "taobao:b", EventType::Refund, "taobao", 0),
        ];
        let mut engine = Engine::new();
        for e in &log {
            engine.apply_raw(*e);
        }
        let steps = [
            FunnelStep {
                event_type: EventType::Touch,
                channel: None,
                within: None,
            },
            FunnelStep {
                event_type: EventType::AddFriend,
                channel: None,
                within: Some(1000),
            },
            FunnelStep {
                event_type: EventType::Purchase,
                channel: None,
                within: Some(1000),
            },
        ];
        let f = funnel(&engine, log.iter().copied(), &steps, true);
        assert_eq!(
            f,
            vec![
                FunnelResult {
                    split: "douyin".into(),
                    reached: vec![1, 1, 1]
                },
                FunnelResult {
                    split: "taobao".into(),
                    reached: vec![1, 0, 0]
                },
            ]
        );
        let a = attribution(&engine, log.iter().copied());
        let douyin = a.iter().find(|x| x.channel == "douyin").unwrap();
        let wecom = a.iter().find(|x| x.channel == "wecom").unwrap();
        assert_eq!(
            (douyin.first_touch, douyin.last_touch, douyin.linear),
            (1000, 0, 500.0)
        );
        assert_eq!(
            (wecom.first_touch, wecom.last_touch, wecom.linear),
            (0, 1000, 500.0)
        );
    }
}
