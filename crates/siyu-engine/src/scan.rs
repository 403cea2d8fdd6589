//! Analytics that need each person's event sequence, not just their folded
//! properties: funnels over any steps and multi-touch channel attribution.
//! Both are one pass over the events, fed one event at a time
//! ([`FunnelPass`], [`AttributionPass`]): the caller streams the log from
//! the store page by page and resolves each identity to its person (with
//! the engine, or with an [`IdentityIndex`] copied from it, so the engine's
//! lock is not held for the pass).
//!
//! They answer in event time, whatever order the log holds the events in:
//! orders imported after the WeCom adds they preceded still come first.
//! A pass walks each person's events in `(ts, tie_break)` order
//! ([`crate::engine::tie_break`]) without sorting the log:
//!
//! - Round one ([`FunnelPass::feed`], [`AttributionPass::feed`]) streams:
//!   a person whose events arrive in event time is walked as they come,
//!   in a few bytes of state. A person with an event older than one
//!   already walked is set aside.
//! - Only if someone was set aside ([`FunnelPass::replay_needed`]), round
//!   two reads the same log again (same events, same order, same persons:
//!   [`EventTimePass`]) and keeps the events of those persons only (16 to
//!   24 bytes each); `finish` sorts each one's events and walks them.
//!   Attribution credit is summed in integers (linear shares per channel
//!   and per number of channels shared), so a set-aside person's credit
//!   from round one is taken back exactly, and the answer does not depend
//!   on the order persons are walked in.
//!
//! Memory is per person, plus per event of the persons whose events are
//! stored out of time order; time is one read of the log, two when some
//! are.

use crate::engine::{Engine, PersonId, RawEvent};
use crate::identity::IdentityGraph;
use crate::person::Ts;
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

/// Channel names as small numbers: per-event state holds a number, not a
/// copy of the name.
#[derive(Default)]
struct Channels {
    names: Vec<String>,
    ids: HashMap<String, u32, foldhash::fast::FixedState>,
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

/// A pass's state per person, by person slot (slots are dense, so a
/// vector: a pass over 11.5M events spent half its time hashing person
/// ids into a map).
struct PerPerson<T>(Vec<Option<T>>);

impl<T> Default for PerPerson<T> {
    fn default() -> Self {
        PerPerson(Vec::new())
    }
}

impl<T> PerPerson<T> {
    fn get(&self, p: PersonId) -> Option<&T> {
        self.0.get(p as usize).and_then(Option::as_ref)
    }

    fn slot(&mut self, p: PersonId) -> &mut Option<T> {
        let i = p as usize;
        if i >= self.0.len() {
            self.0.resize_with(i + 1, || None);
        }
        &mut self.0[i]
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }
}

/// Per-person lists kept in round two (only the set-aside persons).
type Kept<T> = HashMap<PersonId, Vec<T>, foldhash::fast::FixedState>;

/// An event's place in event time: seconds (as the engine keeps them) and
/// its tie-break among events at the same second.
type EventTime = (Ts, u64);

fn event_time(e: &RawEvent<'_>) -> EventTime {
    (e.ts.clamp(0, Ts::MAX as i64 - 1) as Ts, e.tie_break())
}

/// Sorts one set-aside person's kept events into event time.
fn into_event_time<T>(events: &mut [T], key: impl Fn(&T) -> EventTime) {
    if !events.is_sorted_by_key(&key) {
        events.sort_by_key(key);
    }
}

/// A pass that answers in event time over a log read in log order: feed
/// every event to `feed`; if [`EventTimePass::replay_needed`], feed every
/// event again, the same events in the same order with the same persons,
/// to `replay`; then finish. [`in_event_time`] does this over a log that
/// can be read twice.
pub trait EventTimePass {
    /// Round one: the next event of the log, of `person`.
    fn feed(&mut self, person: PersonId, e: &RawEvent<'_>);
    /// Whether some person's events were not in time order (round two).
    fn replay_needed(&self) -> bool;
    /// Round two: the next event of the same log again.
    fn replay(&mut self, person: PersonId, e: &RawEvent<'_>);
}

/// `pass` fed only the events `admits` lets through, in both rounds (a
/// date range laid over a full-log pass).
pub struct Only<'a, P, F> {
    pub pass: &'a mut P,
    pub admits: F,
}

impl<P: EventTimePass, F: Fn(&RawEvent<'_>) -> bool> EventTimePass for Only<'_, P, F> {
    fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        if (self.admits)(e) {
            self.pass.feed(person, e);
        }
    }
    fn replay_needed(&self) -> bool {
        self.pass.replay_needed()
    }
    fn replay(&mut self, person: PersonId, e: &RawEvent<'_>) {
        if (self.admits)(e) {
            self.pass.replay(person, e);
        }
    }
}

/// Runs `pass` over a log `read` walks, once or twice: `read(feed)`
/// must call `feed` for every event, in the same order each time.
pub fn in_event_time<P: EventTimePass, E>(
    pass: &mut P,
    mut read: impl FnMut(&mut dyn FnMut(PersonId, &RawEvent<'_>)) -> Result<(), E>,
) -> Result<(), E> {
    read(&mut |p, e| pass.feed(p, e))?;
    if pass.replay_needed() {
        read(&mut |p, e| pass.replay(p, e))?;
    }
    Ok(())
}

/// One funnel step: an event type, optionally on one channel, within
/// `within` seconds of the previous step (no limit if None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FunnelResult {
    /// Split value (the first step's channel when split by channel, else "all").
    pub split: String,
    pub reached: Vec<u64>,
}

/// An event that matches some funnel step, as round two keeps it (16 bytes).
#[derive(Clone, Copy)]
struct StepEvent {
    tie: u64,
    ts: Ts,
    channel: u16,
    event_type: EventType,
}

/// One person in a funnel, as round one walks their events.
enum FunnelWalk {
    /// Their events so far arrived in event time: steps reached (0: not
    /// entered), the time of the last step reached, the split channel, and
    /// the latest event walked.
    InOrder {
        reached: u32,
        last: Ts,
        split: u32,
        latest: EventTime,
    },
    /// An event arrived older than one walked: walked again from round two.
    SetAside,
}

/// A funnel over `steps`, in event time: a person enters at their
/// earliest event matching step 0; each later step is the earliest
/// matching event after the previous step and within its window. With
/// `split_by_channel`, persons are grouped by the channel of their step-0
/// event. Events matching no step are not looked at.
pub struct FunnelPass {
    steps: Vec<FunnelStep>,
    split_by_channel: bool,
    channels: Channels,
    /// Per step, the number of its channel (None: any channel).
    step_channels: Vec<Option<u32>>,
    persons: PerPerson<FunnelWalk>,
    set_aside: usize,
    /// Round two: the set-aside persons' events that match a step.
    kept: Kept<StepEvent>,
}

/// The split value of a pass not split by channel ("all").
const ALL: u32 = u32::MAX;

impl FunnelPass {
    pub fn new(steps: &[FunnelStep], split_by_channel: bool) -> FunnelPass {
        let mut channels = Channels::default();
        let step_channels = steps
            .iter()
            .map(|s| s.channel.as_deref().map(|c| channels.id(c)))
            .collect();
        FunnelPass {
            steps: steps.to_vec(),
            split_by_channel,
            channels,
            step_channels,
            persons: PerPerson::default(),
            set_aside: 0,
            kept: Kept::default(),
        }
    }

    fn matches(&self, step: usize, e: &StepEvent) -> bool {
        self.steps[step].event_type == e.event_type
            && self.step_channels[step].is_none_or(|c| c == e.channel as u32)
    }

    /// `e` as the pass keeps it, if it matches some step.
    fn step_event(&mut self, e: &RawEvent<'_>) -> Option<StepEvent> {
        if !self.steps.iter().any(|s| s.event_type == e.event_type) {
            return None;
        }
        // More distinct channels than the engine itself can number (its
        // codes are u16 too): such an event matches no step.
        let channel = u16::try_from(self.channels.id(e.channel)).ok()?;
        let (ts, tie) = event_time(e);
        let kept = StepEvent {
            tie,
            ts,
            channel,
            event_type: e.event_type,
        };
        (0..self.steps.len())
            .any(|i| self.matches(i, &kept))
            .then_some(kept)
    }

    /// One step of a person's walk: `e` is their next event in event time.
    fn advance(&self, reached: &mut u32, last: &mut Ts, split: &mut u32, e: &StepEvent) {
        if *reached == 0 {
            if self.matches(0, e) {
                *reached = 1;
                *last = e.ts;
                *split = if self.split_by_channel {
                    e.channel as u32
                } else {
                    ALL
                };
            }
            return;
        }
        let i = *reached as usize;
        let Some(step) = self.steps.get(i) else {
            return;
        };
        if self.matches(i, e) && step.within.is_none_or(|w| e.ts as i64 - *last as i64 <= w) {
            *reached += 1;
            *last = e.ts;
        }
    }

    /// Round one: the next event of the log, of `person`.
    pub fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        let Some(kept) = self.step_event(e) else {
            return;
        };
        let at = (kept.ts, kept.tie);
        let walk = self
            .persons
            .slot(person)
            .take()
            .unwrap_or(FunnelWalk::InOrder {
                reached: 0,
                last: 0,
                split: ALL,
                latest: at,
            });
        let walk = match walk {
            FunnelWalk::InOrder { latest, .. } if at < latest => {
                self.set_aside += 1;
                FunnelWalk::SetAside
            }
            FunnelWalk::InOrder {
                mut reached,
                mut last,
                mut split,
                ..
            } => {
                self.advance(&mut reached, &mut last, &mut split, &kept);
                FunnelWalk::InOrder {
                    reached,
                    last,
                    split,
                    latest: at,
                }
            }
            FunnelWalk::SetAside => FunnelWalk::SetAside,
        };
        *self.persons.slot(person) = Some(walk);
    }

    /// Whether round two is needed: some person's events were stored out
    /// of time order.
    pub fn replay_needed(&self) -> bool {
        self.set_aside > 0
    }

    /// Round two: the next event of the same log again, of `person`.
    pub fn replay(&mut self, person: PersonId, e: &RawEvent<'_>) {
        if !matches!(self.persons.get(person), Some(FunnelWalk::SetAside)) {
            return;
        }
        if let Some(kept) = self.step_event(e) {
            self.kept.entry(person).or_default().push(kept);
        }
    }

    pub fn finish(mut self) -> Vec<FunnelResult> {
        let mut per_split: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut count = |reached: u32, split: u32| {
            if reached == 0 {
                return;
            }
            let row = per_split
                .entry(split)
                .or_insert_with(|| vec![0; self.steps.len()]);
            for r in row.iter_mut().take(reached as usize) {
                *r += 1;
            }
        };
        for walk in self.persons.values() {
            if let FunnelWalk::InOrder { reached, split, .. } = *walk {
                count(reached, split);
            }
        }
        for (_, mut events) in std::mem::take(&mut self.kept) {
            into_event_time(&mut events, |e| (e.ts, e.tie));
            let (mut reached, mut last, mut split) = (0, 0, ALL);
            for e in &events {
                self.advance(&mut reached, &mut last, &mut split, e);
            }
            count(reached, split);
        }
        let mut out: Vec<FunnelResult> = per_split
            .into_iter()
            .map(|(split, reached)| FunnelResult {
                split: if split == ALL {
                    "all".to_string()
                } else {
                    self.channels.name(split).to_string()
                },
                reached,
            })
            .collect();
        out.sort_by(|a, b| a.split.cmp(&b.split));
        out
    }
}

impl EventTimePass for FunnelPass {
    fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        FunnelPass::feed(self, person, e)
    }
    fn replay_needed(&self) -> bool {
        FunnelPass::replay_needed(self)
    }
    fn replay(&mut self, person: PersonId, e: &RawEvent<'_>) {
        FunnelPass::replay(self, person, e)
    }
}

/// [`FunnelPass`] over `events` (read twice if needed), persons resolved
/// by `engine`.
pub fn funnel<'a, I>(
    engine: &Engine,
    events: I,
    steps: &[FunnelStep],
    split_by_channel: bool,
) -> Vec<FunnelResult>
where
    I: IntoIterator<Item = RawEvent<'a>> + Clone,
{
    let mut pass = FunnelPass::new(steps, split_by_channel);
    over_engine(&mut pass, engine, events);
    pass.finish()
}

/// Runs `pass` over `events` (twice if needed), persons resolved by `engine`.
fn over_engine<'a, I>(pass: &mut impl EventTimePass, engine: &Engine, events: I)
where
    I: IntoIterator<Item = RawEvent<'a>> + Clone,
{
    let read = |feed: &mut dyn FnMut(PersonId, &RawEvent<'_>)| {
        for e in events.clone() {
            if let Some(p) = engine.person_of(e.identity) {
                feed(p, &e);
            }
        }
        Ok::<(), std::convert::Infallible>(())
    };
    let Ok(()) = in_event_time(pass, read);
}

/// Revenue credited to one channel by each attribution model (cents).
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Attribution {
    pub channel: String,
    pub first_touch: i64,
    pub last_touch: i64,
    /// Each purchase split evenly over the distinct channels the person
    /// touched up to it (fractions of a cent kept as f64).
    pub linear: f64,
}

/// An event as [`AttributionPass`] looks at it (24 bytes): a touch, or a
/// purchase (refund) with its signed amount.
#[derive(Clone, Copy)]
struct Touch {
    tie: u64,
    /// Cents, refunds negative; 0 for a touch.
    amount: i64,
    ts: Ts,
    /// The channel's number, with [`COMMERCE`] set on purchases and refunds.
    channel: u32,
}

/// Marks a purchase or refund in [`Touch::channel`].
const COMMERCE: u32 = 1 << 31;

/// The channels one person touched so far, as their events are walked in
/// event time (16 bytes, no allocation): the first and the last, and the
/// set of all of them as bits. Channel numbers from [`WIDE`] up are rare
/// (a workspace with more channels than that) and kept in a [`Wide`] list
/// of the person's; the [`WIDE`] bit says they have one.
#[derive(Clone, Copy)]
struct Touched {
    /// [`NO_CHANNEL`] until the first touch, purchase or refund.
    first: u32,
    last: u32,
    bits: u64,
}

/// The first channel number [`Touched::bits`] has no bit for; that bit
/// marks a person with a [`Wide`] list.
const WIDE: u32 = 63;
const NO_CHANNEL: u32 = u32::MAX;

/// The touched channels numbered [`WIDE`] and up, per person.
type Wide = HashMap<PersonId, Vec<u32>, foldhash::fast::FixedState>;

impl Touched {
    const NONE: Touched = Touched {
        first: NO_CHANNEL,
        last: NO_CHANNEL,
        bits: 0,
    };

    fn see(&mut self, channel: u32, wide: &mut Wide, person: PersonId) {
        if channel < WIDE {
            self.bits |= 1 << channel;
            return;
        }
        self.bits |= 1 << WIDE;
        let list = wide.entry(person).or_default();
        if !list.contains(&channel) {
            list.push(channel);
        }
    }
}

/// One channel's credit, summed exactly.
#[derive(Default)]
struct Credit {
    /// How many purchase and refund credits reached the channel (net of
    /// those taken back): it is listed when some did, even if they sum to 0.
    credits: i64,
    first_touch: i64,
    last_touch: i64,
    /// Linear credit as sums of whole amounts per number of channels they
    /// are shared by (`linear[n]`): `linear = Σ amount / n`, divided once
    /// at the end.
    linear: Vec<i64>,
}

/// Credit per channel number.
#[derive(Default)]
struct Ledger(Vec<Credit>);

impl Ledger {
    fn at(&mut self, channel: u32) -> &mut Credit {
        let i = channel as usize;
        if self.0.len() <= i {
            self.0.resize_with(i + 1, Credit::default);
        }
        &mut self.0[i]
    }

    fn share(&mut self, channel: u32, n: usize, amount: i64, sign: i64) {
        let shared = self.at(channel);
        if shared.linear.len() <= n {
            shared.linear.resize(n + 1, 0);
        }
        shared.linear[n] += amount;
        shared.credits += sign;
    }

    /// One step of `person`'s walk: `e` is their next event in event time;
    /// `sign` is -1 to take back what the same step credited.
    fn walk(&mut self, t: &mut Touched, wide: &mut Wide, person: PersonId, e: &Touch, sign: i64) {
        let channel = e.channel & !COMMERCE;
        if e.channel & COMMERCE == 0 {
            if t.first == NO_CHANNEL {
                t.first = channel;
            }
            t.last = channel;
            t.see(channel, wide, person);
            return;
        }
        if t.first == NO_CHANNEL {
            *t = Touched {
                first: channel,
                last: channel,
                bits: 0,
            };
            t.see(channel, wide, person);
        }
        let amount = sign * e.amount;
        let first = self.at(t.first);
        first.first_touch += amount;
        first.credits += sign;
        let last = self.at(t.last);
        last.last_touch += amount;
        last.credits += sign;
        let narrow = t.bits & !(1 << WIDE);
        let wide = match t.bits & (1 << WIDE) {
            0 => &[][..],
            _ => wide.get(&person).map_or(&[][..], Vec::as_slice),
        };
        let n = narrow.count_ones() as usize + wide.len();
        let mut bits = narrow;
        while bits != 0 {
            self.share(bits.trailing_zeros(), n, amount, sign);
            bits &= bits - 1;
        }
        for &c in wide {
            self.share(c, n, amount, sign);
        }
    }
}

/// One person in the attribution, as round one walks their events (32
/// bytes, in a vector by person slot: a pass touches it once per event,
/// so its size is what the pass's cache misses cost).
#[derive(Clone, Copy)]
struct AttributionWalk {
    /// The latest event walked, in event time (`ts`, `tie`).
    tie: u64,
    touched: Touched,
    ts: Ts,
    /// How many events were walked, with [`SET_ASIDE`] set once an event
    /// arrived older than one walked: the credit of those is taken back,
    /// and all their events walked again in event time, from round two.
    walked: u32,
}

const SET_ASIDE: u32 = 1 << 31;

impl AttributionWalk {
    /// A person before their first event: every event time is at or
    /// after (0, 0).
    const NEW: AttributionWalk = AttributionWalk {
        tie: 0,
        touched: Touched::NONE,
        ts: 0,
        walked: 0,
    };
}

/// Credits every purchase (minus refunds) to channels, in event time: the
/// person's first channel, the channel of their last non-commerce event
/// before it, and evenly across all channels touched up to it.
#[derive(Default)]
pub struct AttributionPass {
    channels: Channels,
    persons: Vec<AttributionWalk>,
    /// One bit per person slot: set aside (what round two looks at, so it
    /// reads 1 bit per person instead of their walk; round one reads the
    /// flag in the walk it has in hand). Grown only to set a bit, so it is
    /// empty while nobody is set aside.
    set_aside: Vec<u64>,
    /// Round one's [`Wide`] channel lists.
    wide: Wide,
    ledger: Ledger,
    /// Round two: the set-aside persons' events other than identify.
    kept: Kept<Touch>,
}

impl AttributionPass {
    pub fn new() -> AttributionPass {
        AttributionPass::default()
    }

    fn touch(&mut self, e: &RawEvent<'_>) -> Option<Touch> {
        let (kind, amount) = match e.event_type {
            EventType::Identify => return None,
            EventType::Purchase => (COMMERCE, e.amount),
            EventType::Refund => (COMMERCE, -e.amount),
            _ => (0, 0),
        };
        let channel = self.channels.id(e.channel);
        debug_assert!(channel < COMMERCE, "2^31 channels");
        let (ts, tie) = event_time(e);
        Some(Touch {
            tie,
            amount,
            ts,
            channel: channel | kind,
        })
    }

    fn is_set_aside(&self, person: PersonId) -> bool {
        let i = person as usize;
        self.set_aside
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Round one: the next event of the log, of `person`.
    pub fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        let Some(touch) = self.touch(e) else {
            return;
        };
        let i = person as usize;
        if i >= self.persons.len() {
            self.persons.resize(i + 1, AttributionWalk::NEW);
        }
        let walk = &mut self.persons[i];
        if walk.walked & SET_ASIDE != 0 {
            return;
        }
        if (touch.ts, touch.tie) < (walk.ts, walk.tie) {
            walk.walked |= SET_ASIDE;
            if self.set_aside.len() <= i / 64 {
                self.set_aside.resize(i / 64 + 1, 0);
            }
            self.set_aside[i / 64] |= 1 << (i % 64);
            return;
        }
        self.ledger
            .walk(&mut walk.touched, &mut self.wide, person, &touch, 1);
        walk.ts = touch.ts;
        walk.tie = touch.tie;
        walk.walked += 1;
    }

    /// Whether round two is needed: some person's events were stored out
    /// of time order.
    pub fn replay_needed(&self) -> bool {
        !self.set_aside.is_empty()
    }

    /// Round two: the next event of the same log again, of `person`.
    pub fn replay(&mut self, person: PersonId, e: &RawEvent<'_>) {
        if !self.is_set_aside(person) {
            return;
        }
        if let Some(touch) = self.touch(e) {
            self.kept.entry(person).or_default().push(touch);
        }
    }

    /// Per credited channel, by channel name.
    pub fn finish(mut self) -> Vec<Attribution> {
        for (person, mut events) in std::mem::take(&mut self.kept) {
            let walked = self.persons[person as usize].walked & !SET_ASIDE;
            // Take back what round one credited: the same steps over the
            // same first events, in log order.
            let (mut touched, mut wide) = (Touched::NONE, Wide::default());
            for e in &events[..(walked as usize).min(events.len())] {
                self.ledger.walk(&mut touched, &mut wide, person, e, -1);
            }
            into_event_time(&mut events, |e| (e.ts, e.tie));
            let (mut touched, mut wide) = (Touched::NONE, Wide::default());
            for e in &events {
                self.ledger.walk(&mut touched, &mut wide, person, e, 1);
            }
        }
        let mut out: Vec<Attribution> = self
            .ledger
            .0
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.credits > 0)
            .map(|(i, c)| Attribution {
                channel: self.channels.name(i as u32).to_string(),
                first_touch: c.first_touch,
                last_touch: c.last_touch,
                linear: c
                    .linear
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(n, &sum)| sum as f64 / n as f64)
                    .sum(),
            })
            .collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }
}

impl EventTimePass for AttributionPass {
    fn feed(&mut self, person: PersonId, e: &RawEvent<'_>) {
        AttributionPass::feed(self, person, e)
    }
    fn replay_needed(&self) -> bool {
        AttributionPass::replay_needed(self)
    }
    fn replay(&mut self, person: PersonId, e: &RawEvent<'_>) {
        AttributionPass::replay(self, person, e)
    }
}

/// [`AttributionPass`] over `events` (read twice if needed), persons
/// resolved by `engine`.
pub fn attribution<'a, I>(engine: &Engine, events: I) -> Vec<Attribution>
where
    I: IntoIterator<Item = RawEvent<'a>> + Clone,
{
    let mut pass = AttributionPass::new();
    over_engine(&mut pass, engine, events);
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
        RawEvent::bare(ts as u64, ts, who, t, channel, amount)
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
