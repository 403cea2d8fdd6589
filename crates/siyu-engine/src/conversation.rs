//! A person's conversation (会话) with the brand, across every channel:
//! what the inbox lists and the unanswered queue reads.
//!
//! Inbound messages are `comment` events (a WeCom customer or kf message,
//! an Official Account text, an SMS reply, a Douyin/Xiaohongshu comment or
//! DM through its bridge); outbound ones are `message_sent` events. Only an
//! operator's reply (a `message_sent` whose properties say `reply: true`,
//! as the conversations API's sends do) answers the customer: a journey's
//! or an auto-reply's message is in the thread but leaves the question
//! waiting for a person. `conversation_resolved` (a custom event) closes
//! the conversation until the customer writes again.
//!
//! Why this shape: like every other per-person field it is a commutative
//! fold over the person's events (maxima, sums, and the inbound times
//! after a threshold that only rises), so two persons found to be one
//! merge into exactly the state recomputed from both event sets, in event
//! time, whatever order the events were stored in. The thread itself is
//! not kept here: it is the person's log offsets ([`crate::log_index`]),
//! read by primary key.

use crate::customers::{Filter, Page};
use crate::engine::{Engine, PersonId};
use crate::person::{Person, Ts, NO_CHANNEL, NO_TS};
use siyu_domain::intent::Intent;

/// The custom event that marks a conversation resolved.
pub const RESOLVED_EVENT: &str = "conversation_resolved";

/// Inbound times kept per person at most: a customer who writes more
/// without an answer is still waiting since the oldest one kept.
const MAX_PENDING: usize = 1_000;

/// The conversation state of one person (`Person::conversation`).
///
/// Compact: absent times are [`NO_TS`], not `Option`s, and what only
/// operators' replies, resolutions, intents and customers writing on two
/// channels or more set is boxed apart ([`Rare`]): four persons in ten
/// have a conversation box (every one who wrote), few of them were
/// replied to or resolved or wrote on another channel. 56 bytes, not
/// 104. Snapshots store it as [`ConversationJson`], the former layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Inbound messages (comments) and outbound ones (message_sent).
    pub inbound: u32,
    pub outbound: u32,
    /// The newest inbound message in event time: ts (NO_TS: none),
    /// tie-break, channel ([`Conversation::last_in`]).
    last_in_ts: Ts,
    /// The newest outbound message of any kind (NO_TS: none).
    last_out: Ts,
    last_in_tie: u64,
    last_in_channel: u16,
    /// Inbound times after `threshold()` (sorted): the waiting ones.
    pending: Box<[Ts]>,
    rare: Option<Box<Rare>>,
}

/// What few conversations have: replies, resolutions, intents, inbound
/// messages on more than one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rare {
    /// The newest inbound message per channel, sorted by channel code:
    /// what a channel's service window is measured from. Empty while the
    /// customer wrote on one channel only: it is then `last_in`'s.
    by_channel: Box<[(u16, Ts)]>,
    /// The newest operator reply (NO_TS: none).
    last_reply: Ts,
    /// The newest `conversation_resolved` (NO_TS: none).
    resolved: Ts,
    /// The newest inbound message of each intent its messages carried
    /// (`properties.intent`, `siyu_domain::intent`), sorted by intent:
    /// what the segment condition `intent(last 7d) = "price"` reads. A
    /// maximum per intent, so it merges like the rest.
    intents: Box<[(Intent, Ts)]>,
}

impl Default for Rare {
    fn default() -> Self {
        Rare {
            by_channel: Box::default(),
            last_reply: NO_TS,
            resolved: NO_TS,
            intents: Box::default(),
        }
    }
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            inbound: 0,
            outbound: 0,
            last_in_ts: NO_TS,
            last_out: NO_TS,
            last_in_tie: 0,
            last_in_channel: 0,
            pending: Box::default(),
            rare: None,
        }
    }
}

fn opt(t: Ts) -> Option<Ts> {
    (t != NO_TS).then_some(t)
}

fn max_ts(a: Ts, b: Ts) -> Ts {
    match (a, b) {
        (NO_TS, b) => b,
        (a, NO_TS) => a,
        (a, b) => a.max(b),
    }
}

/// [`Conversation`] in snapshots: its former layout, field for field.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ConversationJson {
    pub inbound: u32,
    pub outbound: u32,
    pub last_in: Option<(Ts, u64, u16)>,
    pub last_out: Option<Ts>,
    pub last_reply: Option<Ts>,
    pub resolved: Option<Ts>,
    pub last_in_by_channel: Box<[(u16, Ts)]>,
    pub pending: Box<[Ts]>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub intents: Box<[(Intent, Ts)]>,
}

impl From<&Conversation> for ConversationJson {
    fn from(c: &Conversation) -> Self {
        ConversationJson {
            inbound: c.inbound,
            outbound: c.outbound,
            last_in: c.last_in(),
            last_out: c.last_out(),
            last_reply: c.last_reply(),
            resolved: c.resolved(),
            last_in_by_channel: c.by_channel().into_boxed_slice(),
            pending: c.pending.clone(),
            intents: c
                .rare
                .as_ref()
                .map(|r| r.intents.clone())
                .unwrap_or_default(),
        }
    }
}

impl From<ConversationJson> for Conversation {
    fn from(j: ConversationJson) -> Self {
        let (last_in_ts, last_in_tie, last_in_channel) = j.last_in.unwrap_or((NO_TS, 0, 0));
        let rare = (j.last_reply.is_some()
            || j.resolved.is_some()
            || !j.intents.is_empty()
            || j.last_in_by_channel.len() > 1)
            .then(|| {
                Box::new(Rare {
                    by_channel: if j.last_in_by_channel.len() > 1 {
                        j.last_in_by_channel
                    } else {
                        Box::default()
                    },
                    last_reply: j.last_reply.unwrap_or(NO_TS),
                    resolved: j.resolved.unwrap_or(NO_TS),
                    intents: j.intents,
                })
            });
        Conversation {
            inbound: j.inbound,
            outbound: j.outbound,
            last_in_ts,
            last_out: j.last_out.unwrap_or(NO_TS),
            last_in_tie,
            last_in_channel,
            pending: j.pending,
            rare,
        }
    }
}

/// Changes a boxed slice as a `Vec` (one reallocation, to the exact new
/// length: a boxed slice holds no spare capacity).
fn edit<T, R>(b: &mut Box<[T]>, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut v = std::mem::take(b).into_vec();
    let r = f(&mut v);
    *b = v.into_boxed_slice();
    r
}

impl Conversation {
    /// A conversation of `outbound` messages only, the newest at `last_out`.
    pub fn outbound_only(outbound: u32, last_out: Option<Ts>) -> Self {
        Conversation {
            outbound,
            last_out: last_out.unwrap_or(NO_TS),
            ..Default::default()
        }
    }

    /// Whether it holds nothing but outbound messages (what
    /// [`Conversation::outbound_only`] makes).
    pub fn is_outbound_only(&self) -> bool {
        *self == Self::outbound_only(self.outbound, self.last_out())
    }

    /// Adds `n` outbound messages, the newest at `last` (a person found to
    /// be the same who was only written to).
    pub fn add_outbound(&mut self, n: u32, last: Option<Ts>) {
        self.outbound += n;
        self.last_out = max_ts(self.last_out, last.unwrap_or(NO_TS));
    }

    /// The newest inbound message in event time: (ts, tie-break, channel).
    pub fn last_in(&self) -> Option<(Ts, u64, u16)> {
        (self.last_in_ts != NO_TS).then_some((
            self.last_in_ts,
            self.last_in_tie,
            self.last_in_channel,
        ))
    }

    /// The newest outbound message of any kind.
    pub fn last_out(&self) -> Option<Ts> {
        opt(self.last_out)
    }

    /// The newest operator reply.
    pub fn last_reply(&self) -> Option<Ts> {
        self.rare.as_ref().and_then(|r| opt(r.last_reply))
    }

    /// The newest `conversation_resolved`.
    pub fn resolved(&self) -> Option<Ts> {
        self.rare.as_ref().and_then(|r| opt(r.resolved))
    }

    /// Inbound times not yet both answered and resolved (sorted).
    pub fn pending(&self) -> &[Ts] {
        &self.pending
    }

    fn intents(&self) -> &[(Intent, Ts)] {
        self.rare.as_ref().map_or(&[], |r| &r.intents)
    }

    /// The newest inbound message per channel, sorted by channel code.
    fn by_channel(&self) -> Vec<(u16, Ts)> {
        match self.rare.as_ref().filter(|r| !r.by_channel.is_empty()) {
            Some(r) => r.by_channel.to_vec(),
            None => self
                .last_in()
                .map(|(t, _, ch)| vec![(ch, t)])
                .unwrap_or_default(),
        }
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }

    /// Below or at this time every inbound message is answered *and*
    /// resolved, so it is not kept.
    fn threshold(&self) -> Ts {
        self.last_reply()
            .unwrap_or(0)
            .min(self.resolved().unwrap_or(0))
    }

    fn prune(&mut self) {
        let t = self.threshold();
        let cut = self.pending.partition_point(|&x| x <= t);
        if cut > 0 {
            edit(&mut self.pending, |v| v.drain(..cut).for_each(drop));
        }
    }

    /// A message from the customer on `channel` (a channel code).
    pub fn inbound(&mut self, ts: Ts, tie: u64, channel: u16) {
        self.inbound += 1;
        let before = self.last_in();
        if before.is_none_or(|(t, s, _)| (ts, tie) > (t, s)) {
            (self.last_in_ts, self.last_in_tie, self.last_in_channel) = (ts, tie, channel);
        }
        match (&mut self.rare, before) {
            (Some(r), _) if !r.by_channel.is_empty() => {
                match r.by_channel.binary_search_by_key(&channel, |x| x.0) {
                    Ok(i) => r.by_channel[i].1 = r.by_channel[i].1.max(ts),
                    Err(i) => edit(&mut r.by_channel, |v| v.insert(i, (channel, ts))),
                }
            }
            // A second channel: the list is kept from now on.
            (_, Some((t, _, ch))) if ch != channel => {
                let mut v = vec![(ch, t), (channel, ts)];
                v.sort_unstable();
                self.rare_mut().by_channel = v.into_boxed_slice();
            }
            // The first message, or one more on the only channel: `last_in`.
            _ => {}
        }
        if ts > self.threshold() {
            edit(&mut self.pending, |v| {
                v.reserve_exact(1);
                crate::person::insert_sorted(v, ts);
                if v.len() > MAX_PENDING {
                    // Keep the oldest (it says since when) and the newest.
                    v.remove(1);
                }
            });
        }
    }

    /// An inbound message at `ts` carried `intent`.
    pub fn note_intent(&mut self, intent: Intent, ts: Ts) {
        let intents = &mut self.rare_mut().intents;
        match intents.binary_search_by_key(&intent, |x| x.0) {
            Ok(i) => intents[i].1 = intents[i].1.max(ts),
            Err(i) => edit(intents, |v| v.insert(i, (intent, ts))),
        }
    }

    /// The newest inbound message with `intent`, if any.
    pub fn last_intent(&self, intent: Intent) -> Option<Ts> {
        let intents = self.intents();
        intents
            .binary_search_by_key(&intent, |x| x.0)
            .ok()
            .map(|i| intents[i].1)
    }

    /// The intent of the customer's newest message, if it carried one
    /// (an intent whose newest message is at the newest inbound time).
    pub fn last_in_intent(&self) -> Option<Intent> {
        let (at, _, _) = self.last_in()?;
        self.intents()
            .iter()
            .rev()
            .find(|(_, t)| *t == at)
            .map(|(i, _)| *i)
    }

    /// A message to the customer (any source).
    pub fn outbound(&mut self, ts: Ts) {
        self.outbound += 1;
        self.last_out = max_ts(self.last_out, ts);
    }

    /// An operator's reply (also counted by [`Conversation::outbound`]).
    pub fn replied(&mut self, ts: Ts) {
        let r = self.rare_mut();
        r.last_reply = max_ts(r.last_reply, ts);
        self.prune();
    }

    /// The conversation was marked resolved at `ts`.
    pub fn resolve(&mut self, ts: Ts) {
        let r = self.rare_mut();
        r.resolved = max_ts(r.resolved, ts);
        self.prune();
    }

    /// Folds the conversation of a person found to be the same.
    pub fn absorb(&mut self, other: Conversation) {
        let mut channels = self.by_channel();
        for (ch, ts) in other.by_channel() {
            match channels.binary_search_by_key(&ch, |x| x.0) {
                Ok(i) => channels[i].1 = channels[i].1.max(ts),
                Err(i) => channels.insert(i, (ch, ts)),
            }
        }
        if channels.len() > 1 {
            self.rare_mut().by_channel = channels.into_boxed_slice();
        }
        self.inbound += other.inbound;
        self.outbound += other.outbound;
        if let Some(o) = other.last_in() {
            if self.last_in().is_none_or(|s| (o.0, o.1) > (s.0, s.1)) {
                (self.last_in_ts, self.last_in_tie, self.last_in_channel) = o;
            }
        }
        self.last_out = max_ts(self.last_out, other.last_out);
        if let Some(o) = &other.rare {
            let r = self.rare_mut();
            r.last_reply = max_ts(r.last_reply, o.last_reply);
            r.resolved = max_ts(r.resolved, o.resolved);
        }
        for &(intent, ts) in other.intents() {
            self.note_intent(intent, ts);
        }
        let mut both = std::mem::take(&mut self.pending).into_vec();
        both.extend_from_slice(&other.pending);
        both.sort_unstable();
        let t = self.threshold();
        let cut = both.partition_point(|&x| x <= t);
        both.drain(..cut);
        if both.len() > MAX_PENDING {
            let keep_first = both[0];
            let from = both.len() - (MAX_PENDING - 1);
            both.drain(..from);
            both.insert(0, keep_first);
        }
        self.pending = both.into_boxed_slice();
    }

    /// The oldest inbound message after the last operator reply.
    pub fn unanswered_since(&self) -> Option<Ts> {
        let r = self.last_reply().unwrap_or(0);
        self.pending.iter().copied().find(|&t| t > r)
    }

    /// Inbound messages after the last operator reply.
    pub fn unanswered(&self) -> usize {
        let r = self.last_reply().unwrap_or(0);
        self.pending.len() - self.pending.partition_point(|&t| t <= r)
    }

    /// Open: the customer wrote after the last resolve (or it was never
    /// resolved and they wrote at all).
    pub fn is_open(&self) -> bool {
        match (self.last_in(), self.resolved()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((t, _, _)), Some(r)) => t > r,
        }
    }

    /// The oldest inbound message after the last resolve: where a
    /// resolution time is measured from.
    pub fn open_since(&self) -> Option<Ts> {
        let r = self.resolved().unwrap_or(0);
        self.pending.iter().copied().find(|&t| t > r)
    }

    /// The channel of the newest inbound message.
    pub fn last_channel(&self) -> Option<u16> {
        self.last_in().map(|x| x.2).filter(|&c| c != NO_CHANNEL)
    }

    /// The newest inbound message on `channel`.
    pub fn last_in_on(&self, channel: u16) -> Option<Ts> {
        match self.rare.as_ref().filter(|r| !r.by_channel.is_empty()) {
            Some(r) => r
                .by_channel
                .binary_search_by_key(&channel, |x| x.0)
                .ok()
                .map(|i| r.by_channel[i].1),
            None => self.last_in().filter(|x| x.2 == channel).map(|x| x.0),
        }
    }

    /// Heap bytes this conversation holds (its own box included).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + std::mem::size_of_val::<[Ts]>(&self.pending)
            + self.rare.as_ref().map_or(0, |r| {
                std::mem::size_of::<Rare>()
                    + std::mem::size_of_val::<[(u16, Ts)]>(&r.by_channel)
                    + std::mem::size_of_val::<[(Intent, Ts)]>(&r.intents)
            })
    }

    /// The newest message either way.
    pub fn last_message(&self) -> Option<Ts> {
        match (self.last_in().map(|x| x.0), self.last_out()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which conversations the inbox keeps.
#[derive(Clone, Debug, Default)]
pub struct InboxFilter {
    /// Tag, segment and owner (`operator` trait) as the customer list reads them.
    pub people: Filter,
    /// Only persons with no owner.
    pub unassigned: bool,
    /// Some(true): waiting for an operator's reply; Some(false): not.
    pub unanswered: Option<bool>,
    /// Only those waiting since at or before this instant.
    pub waiting_since_at_most: Option<i64>,
    /// The channel code of the newest inbound message.
    pub channel: Option<u16>,
    /// Some(true): open; Some(false): resolved.
    pub open: Option<bool>,
}

/// The inbox's orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboxSort {
    /// The newest message first.
    Recent,
    /// The longest-waiting first (then those not waiting, newest first).
    Waiting,
}

impl InboxFilter {
    fn keeps(&self, engine: &Engine, slot: PersonId, p: &Person, c: &Conversation) -> bool {
        if self.unassigned && crate::customers::owner_of(p).is_some() {
            return false;
        }
        if let Some(u) = self.unanswered {
            if c.unanswered_since().is_some() != u {
                return false;
            }
        }
        if let Some(at) = self.waiting_since_at_most {
            if c.unanswered_since().is_none_or(|t| t as i64 > at) {
                return false;
            }
        }
        if self.channel.is_some() && c.last_channel() != self.channel {
            return false;
        }
        if self.open.is_some_and(|o| c.is_open() != o) {
            return false;
        }
        self.people.keeps(engine, slot, p, engine.now())
    }
}

/// A page of the inbox: persons with a conversation whom `filter` keeps,
/// in `sort` order (ties by slot, so pages never overlap), with the
/// total. One pass over the persons on the engine's threads.
pub fn inbox(
    engine: &Engine,
    filter: &InboxFilter,
    sort: InboxSort,
    offset: usize,
    limit: usize,
) -> Page {
    // Sort key: smaller first.
    let key = |c: &Conversation| -> (u8, i64) {
        let recent = -(c.last_message().unwrap_or(0) as i64);
        match sort {
            InboxSort::Recent => (0, recent),
            InboxSort::Waiting => match c.unanswered_since() {
                Some(t) => (0, t as i64),
                None => (1, recent),
            },
        }
    };
    let mut hits: Vec<((u8, i64), PersonId)> = engine.fold_persons(
        |it| {
            it.filter_map(|(s, p)| {
                let c = p.conversation()?;
                filter.keeps(engine, s, p, &c).then(|| (key(&c), s))
            })
            .collect::<Vec<_>>()
        },
        |mut a, b| {
            a.extend(b);
            a
        },
    );
    let total = hits.len();
    let end = offset.saturating_add(limit).min(total);
    if offset >= end {
        return Page {
            total,
            slots: Vec::new(),
        };
    }
    if end < total {
        hits.select_nth_unstable(end);
        hits.truncate(end);
    }
    hits.sort_unstable();
    Page {
        total,
        slots: hits.into_iter().skip(offset).map(|(_, s)| s).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum M {
        In(Ts, u16),
        Out(Ts),
        Reply(Ts),
        Resolve(Ts),
    }

    fn fold(c: &mut Conversation, m: M, tie: u64) {
        match m {
            M::In(t, ch) => c.inbound(t, tie, ch),
            M::Out(t) => c.outbound(t),
            M::Reply(t) => {
                c.outbound(t);
                c.replied(t)
            }
            M::Resolve(t) => c.resolve(t),
        }
    }

    /// The answer from scratch: the messages in event time, read once.
    fn brute(ms: &[(M, u64)]) -> (Option<Ts>, usize, bool, Option<Ts>) {
        let last_reply = ms
            .iter()
            .filter_map(|(m, _)| match m {
                M::Reply(t) => Some(*t),
                _ => None,
            })
            .max();
        let resolved = ms
            .iter()
            .filter_map(|(m, _)| match m {
                M::Resolve(t) => Some(*t),
                _ => None,
            })
            .max();
        let ins: Vec<Ts> = ms
            .iter()
            .filter_map(|(m, _)| match m {
                M::In(t, _) => Some(*t),
                _ => None,
            })
            .collect();
        let waiting: Vec<Ts> = ins
            .iter()
            .copied()
            .filter(|&t| last_reply.is_none_or(|r| t > r))
            .collect();
        let open = ins.iter().any(|&t| resolved.is_none_or(|r| t > r));
        let open_since = ins
            .iter()
            .copied()
            .filter(|&t| resolved.is_none_or(|r| t > r))
            .min();
        (
            waiting.iter().copied().min(),
            waiting.len(),
            open,
            open_since,
        )
    }

    #[test]
    fn any_split_and_order_folds_to_the_brute_force_answer() {
        // A small deterministic generator: messages split over two persons
        // in shuffled orders, merged, against the answer from scratch.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..2_000 {
            let n = 1 + next(12) as usize;
            let ms: Vec<(M, u64)> = (0..n)
                .map(|i| {
                    let t = 100 + next(20) as Ts;
                    let m = match next(4) {
                        0 | 1 => M::In(t, next(3) as u16),
                        2 => {
                            if next(2) == 0 {
                                M::Reply(t)
                            } else {
                                M::Out(t)
                            }
                        }
                        _ => M::Resolve(t),
                    };
                    (m, i as u64)
                })
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, next(i as u64 + 1) as usize);
            }
            let split = next(n as u64 + 1) as usize;
            let (mut a, mut b) = (Conversation::default(), Conversation::default());
            for (k, &i) in order.iter().enumerate() {
                let (m, tie) = ms[i];
                fold(if k < split { &mut a } else { &mut b }, m, tie);
            }
            a.absorb(b);
            let (since, waiting, open, open_since) = brute(&ms);
            assert_eq!(a.unanswered_since(), since, "{ms:?}");
            assert_eq!(a.unanswered(), waiting, "{ms:?}");
            assert_eq!(a.is_open(), open, "{ms:?}");
            assert_eq!(a.open_since(), open_since, "{ms:?}");
            let ins = ms.iter().filter(|(m, _)| matches!(m, M::In(..))).count();
            assert_eq!(a.inbound as usize, ins);
            let newest_in = ms
                .iter()
                .filter_map(|(m, tie)| match m {
                    M::In(t, ch) => Some((*t, *tie, *ch)),
                    _ => None,
                })
                .max_by_key(|x| (x.0, x.1));
            assert_eq!(a.last_in(), newest_in);
            for channel in 0..3 {
                let newest_on = ms
                    .iter()
                    .filter_map(|(m, _)| match m {
                        M::In(t, ch) if *ch == channel => Some(*t),
                        _ => None,
                    })
                    .max();
                assert_eq!(a.last_in_on(channel), newest_on, "{ms:?}");
            }
            let json = ConversationJson::from(&a);
            assert_eq!(Conversation::from(json.clone()), a, "{ms:?}");
            assert_eq!(json.last_in_by_channel.len(), {
                let mut chs: Vec<u16> = ms
                    .iter()
                    .filter_map(|(m, _)| match m {
                        M::In(_, ch) => Some(*ch),
                        _ => None,
                    })
                    .collect();
                chs.sort_unstable();
                chs.dedup();
                chs.len()
            });
        }
    }

    fn ev(json: &str) -> siyu_domain::Event {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        siyu_domain::wire::parse_json_event(&v).expect("valid event")
    }

    #[test]
    fn the_engine_keeps_it_across_merges_and_snapshots() {
        let mut e = Engine::for_log();
        let events = [
            r#"{"id":"1","ts":1790000000,"identity":"douyin:a","type":"comment","text":"多少钱"}"#,
            r#"{"id":"2","ts":1790000060,"identity":"wecom:b","type":"comment","text":"在吗"}"#,
            r#"{"id":"3","ts":1790000100,"identity":"wecom:b","type":"message_sent","properties":{"journey":"welcome"}}"#,
            r#"{"id":"4","ts":1790000200,"identity":"wecom:b","type":"identify","ref":"douyin:a"}"#,
        ];
        for (i, j) in events.iter().enumerate() {
            e.apply(i as u64 + 1, &ev(j));
        }
        let slot = e.person_of("douyin:a").expect("known");
        let c = e
            .person(slot)
            .and_then(|p| p.conversation())
            .expect("state");
        assert_eq!((c.inbound, c.outbound), (2, 1));
        assert_eq!(c.unanswered(), 2, "a journey's message answers nobody");
        assert_eq!(c.unanswered_since(), Some(1_790_000_000));
        assert_eq!(e.channel_name(c.last_channel().unwrap()), Some("wecom"));
        e.apply(
            5,
            &ev(r#"{"id":"5","ts":1790000300,"identity":"wecom:b","type":"message_sent","properties":{"reply":true,"operator":"li"}}"#),
        );
        let c = e
            .person(slot)
            .and_then(|p| p.conversation())
            .expect("state");
        assert_eq!(c.unanswered_since(), None);
        assert!(c.is_open());
        e.apply(
            6,
            &ev(r#"{"id":"6","ts":1790000400,"identity":"douyin:a","type":"custom","name":"conversation_resolved"}"#),
        );
        let before = e
            .person(slot)
            .and_then(|p| p.conversation())
            .map(std::borrow::Cow::into_owned);
        assert!(!before.as_ref().unwrap().is_open());
        let back = Engine::from_snapshot(&e.to_snapshot(6)).expect("loads").0;
        let slot = back.person_of("wecom:b").expect("known");
        assert_eq!(
            back.person(slot)
                .and_then(|p| p.conversation())
                .map(std::borrow::Cow::into_owned),
            before
        );
        let page = inbox(&back, &InboxFilter::default(), InboxSort::Recent, 0, 10);
        assert_eq!((page.total, page.slots), (1, vec![slot]));
        let waiting = InboxFilter {
            unanswered: Some(true),
            ..Default::default()
        };
        assert_eq!(inbox(&back, &waiting, InboxSort::Waiting, 0, 10).total, 0);
    }

    #[test]
    fn an_operator_reply_answers_but_a_journey_message_does_not() {
        let mut c = Conversation::default();
        c.inbound(100, 1, 0);
        c.outbound(110);
        assert_eq!(c.unanswered_since(), Some(100));
        c.inbound(120, 2, 0);
        assert_eq!(c.unanswered(), 2);
        c.outbound(130);
        c.replied(130);
        assert_eq!(c.unanswered_since(), None);
        assert!(c.is_open(), "answered is not resolved");
        c.resolve(140);
        assert!(!c.is_open());
        assert!(
            c.pending.is_empty(),
            "nothing kept once answered and resolved"
        );
        c.inbound(150, 3, 1);
        assert!(c.is_open());
        assert_eq!(
            (c.unanswered_since(), c.open_since()),
            (Some(150), Some(150))
        );
        assert_eq!(c.last_channel(), Some(1));
        assert_eq!((c.last_in_on(0), c.last_in_on(1)), (Some(120), Some(150)));
    }
}
