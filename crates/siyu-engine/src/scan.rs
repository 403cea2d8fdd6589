//! Analytics that need each person's event sequence, not just their folded
//! properties: funnels over any steps and multi-touch channel attribution.
//! Both are one pass over the events in log order, fed one event at a time
//! ([`FunnelPass`], [`AttributionPass`]): the caller streams the log from
//! the store page by page and resolves each identity to its person (with
//! the engine, or with an [`IdentityIndex`] copied from it, so the engine's
//! lock is not held for the pass). Memory is a few bytes of state per
//! person who matters plus the channel names, never per event.

use crate::engine::{Engine, PersonId, RawEvent};
use crate::identity::IdentityGraph;
use serde::{Deserialize, Serialize};
use siyu_domain::EventType;
use std::collections::{BTreeMap, HashMap};

/// A copy of the engine's identity → person table, taken in one short
/// critical section ([`Engine::identity_index`]) so a long pass over the
/// log resolves identities without holding the engine. Its size is the
/// engine's identity table (bytes per identity, not per event).
#[derive(Clone)]
pub struct IdentityIndex(pub(crate) IdentityGraph);

impl IdentityIndex {
    pub fn person_of(&self, identity: &str) -> Option<PersonId> {
        self.0.lookup(identity).map(|(_, slot)| slot)
    }
}

/// Channel names as small numbers: per-person state holds a number, not a
/// copy of the name.
#[derive(Default)]
struct Channels {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Channels {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// One funnel step: an event type, optionally on one channel, within
/// `within` seconds of the previous step (no limit if None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Seconds; a body may write `"7d"` or `{"seconds": n}` too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "siyu_domain::duration::deserialize_opt_secs"
    )]
    pub within: Option<i64>,
}

/// How many persons reached each step, per split value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunnelResult {
    /// Split value (the first step's channel when split by channel, else "all").
    pub split: String,
    pub reached: Vec<u64>,
}

/// A funnel over `steps`, fed the log in order: a person enters at their
/// earliest event matching step 0; each later step is the earliest
/// matching event after the previous step and within its window. With
/// `split_by_channel`, persons are grouped by the channel of their step-0
/// event.
pub struct FunnelPass {
    steps: Vec<FunnelStep>,
    split_by_channel: bool,
    channels: Channels,
    /// Per person who entered: (steps reached, ts of the last reached
    /// step, split channel).
    state: HashMap<PersonId, (usize, i64, u32)>,
}

impl FunnelPass {
    pub fn new(steps: &[FunnelStep], split_by_channel: bool) -> FunnelPass {
        FunnelPass {
            steps: steps.to_vec(),
            split_by_channel,
            channels: Channels::default(),
            state: HashMap::new(),
        }
    }

    /// The next event of the log, of `person`.
    pub fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        let matches = |s: &FunnelStep| {
            s.event_type == e.event_type && s.channel.as_deref().is_none_or(|c| c == e.channel)
        };
        match self.state.get_mut(&person) {
            None => {
                if self.steps.first().is_some_and(matches) {
                    let split = if self.split_by_channel {
                        self.channels.id(e.channel)
                    } else {
                        self.channels.id("all")
                    };
                    self.state.insert(person, (1, e.ts, split));
                }
            }
            Some((reached, last, _)) => {
                if let Some(s) = self.steps.get(*reached) {
                    if matches(s) && e.ts >= *last && s.within.is_none_or(|w| e.ts - *last <= w) {
                        *reached += 1;
                        *last = e.ts;
                    }
                }
            }
        }
    }

    pub fn finish(self) -> Vec<FunnelResult> {
        let mut out: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (reached, _, split) in self.state.into_values() {
            let row = out
                .entry(self.channels.name(split))
                .or_insert_with(|| vec![0; self.steps.len()]);
            for r in row.iter_mut().take(reached) {
                *r += 1;
            }
        }
        out.into_iter()
            .map(|(split, reached)| FunnelResult {
                split: split.to_string(),
                reached,
            })
            .collect()
    }
}

/// [`FunnelPass`] over `events`, persons resolved by `engine`.
pub fn funnel<'a>(
    engine: &Engine,
    events: impl IntoIterator<Item = RawEvent<'a>>,
    steps: &[FunnelStep],
    split_by_channel: bool,
) -> Vec<FunnelResult> {
    let mut pass = FunnelPass::new(steps, split_by_channel);
    for e in events {
        if let Some(p) = engine.person_of(e.identity) {
            pass.feed(p, &e);
        }
    }
    pass.finish()
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

/// One person's touches so far (channel numbers).
struct Touches {
    first: u32,
    last: u32,
    seen: Vec<u32>,
}

/// Credits every purchase (minus refunds) to channels, fed the log in
/// (time) order: the person's first channel, the channel of their last
/// non-commerce event before it, and evenly across all channels touched
/// up to it.
#[derive(Default)]
pub struct AttributionPass {
    channels: Channels,
    persons: HashMap<PersonId, Touches>,
    /// Per channel number, once credited.
    credit: Vec<Option<Attribution>>,
}

impl AttributionPass {
    pub fn new() -> AttributionPass {
        AttributionPass::default()
    }

    fn credit(&mut self, channel: u32, f: impl FnOnce(&mut Attribution)) {
        let i = channel as usize;
        if self.credit.len() <= i {
            self.credit.resize_with(i + 1, || None);
        }
        let name = &self.channels;
        f(self.credit[i].get_or_insert_with(|| Attribution {
            channel: name.name(channel).to_string(),
            ..Default::default()
        }))
    }

    /// The next event of the log, of `person`.
    pub fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        match e.event_type {
            EventType::Identify => {}
            EventType::Purchase | EventType::Refund => {
                let sign = if e.event_type == EventType::Refund {
                    -1
                } else {
                    1
                };
                let amount = sign * e.amount;
                let channel = self.channels.id(e.channel);
                let t = self.persons.entry(person).or_insert_with(|| Touches {
                    first: channel,
                    last: channel,
                    seen: vec![channel],
                });
                let (first, last) = (t.first, t.last);
                let seen = std::mem::take(&mut t.seen);
                self.credit(first, |a| a.first_touch += amount);
                self.credit(last, |a| a.last_touch += amount);
                let share = amount as f64 / seen.len() as f64;
                for &c in &seen {
                    self.credit(c, |a| a.linear += share);
                }
                if let Some(t) = self.persons.get_mut(&person) {
                    t.seen = seen;
                }
            }
            _ => {
                let channel = self.channels.id(e.channel);
                let t = self.persons.entry(person).or_insert_with(|| Touches {
                    first: channel,
                    last: channel,
                    seen: Vec::new(),
                });
                t.last = channel;
                if !t.seen.contains(&channel) {
                    t.seen.push(channel);
                }
            }
        }
    }

    /// Per credited channel, by channel name.
    pub fn finish(self) -> Vec<Attribution> {
        let mut out: Vec<Attribution> = self.credit.into_iter().flatten().collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }
}

/// [`AttributionPass`] over `events`, persons resolved by `engine`.
pub fn attribution<'a>(
    engine: &Engine,
    events: impl IntoIterator<Item = RawEvent<'a>>,
) -> Vec<Attribution> {
    let mut pass = AttributionPass::new();
    for e in events {
        if let Some(p) = engine.person_of(e.identity) {
            pass.feed(p, &e);
        }
    }
    pass.finish()
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
