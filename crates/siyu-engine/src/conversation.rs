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
use crate::person::{Person, Ts, NO_CHANNEL};
use siyu_domain::intent::Intent;

/// The custom event that marks a conversation resolved.
pub const RESOLVED_EVENT: &str = "conversation_resolved";

/// Inbound times kept per person at most: a customer who writes more
/// without an answer is still waiting since the oldest one kept.
const MAX_PENDING: usize = 1_000;

/// The conversation state of one person (`PersonExtra::conversation`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Conversation {
    /// Inbound messages (comments) and outbound ones (message_sent).
    pub inbound: u32,
    pub outbound: u32,
    /// The newest inbound message in event time: (ts, tie-break, channel).
    pub last_in: Option<(Ts, u64, u16)>,
    /// The newest outbound message of any kind.
    pub last_out: Option<Ts>,
    /// The newest operator reply.
    pub last_reply: Option<Ts>,
    /// The newest `conversation_resolved`.
    pub resolved: Option<Ts>,
    /// The newest inbound message per channel, sorted by channel code:
    /// what a channel's service window is measured from.
    pub last_in_by_channel: Vec<(u16, Ts)>,
    /// Inbound times after `threshold()` (sorted): the waiting ones.
    pub pending: Vec<Ts>,
    /// The newest inbound message of each intent its messages carried
    /// (`properties.intent`, `siyu_domain::intent`), sorted by intent:
    /// what the segment condition `intent(last 7d) = "price"` reads. A
    /// maximum per intent, so it merges like the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<(Intent, Ts)>,
}

impl Conversation {
    /// Below or at this time every inbound message is answered *and*
    /// resolved, so it is not kept.
    fn threshold(&self) -> Ts {
        self.last_reply.unwrap_or(0).min(self.resolved.unwrap_or(0))
    }

    fn prune(&mut self) {
        let t = self.threshold();
        let cut = self.pending.partition_point(|&x| x <= t);
        if cut > 0 {
            self.pending.drain(..cut);
        }
    }

    /// A message from the customer on `channel` (a channel code).
    pub fn inbound(&mut self, ts: Ts, tie: u64, channel: u16) {
        self.inbound += 1;
        if self.last_in.is_none_or(|(t, s, _)| (ts, tie) > (t, s)) {
            self.last_in = Some((ts, tie, channel));
        }
        match self
            .last_in_by_channel
            .binary_search_by_key(&channel, |x| x.0)
        {
            Ok(i) => self.last_in_by_channel[i].1 = self.last_in_by_channel[i].1.max(ts),
            Err(i) => self.last_in_by_channel.insert(i, (channel, ts)),
        }
        if ts > self.threshold() {
            crate::person::insert_sorted(&mut self.pending, ts);
            if self.pending.len() > MAX_PENDING {
                // Keep the oldest (it says since when) and the newest.
                self.pending.remove(1);
            }
        }
    }

    /// An inbound message at `ts` carried `intent`.
    pub fn note_intent(&mut self, intent: Intent, ts: Ts) {
        match self.intents.binary_search_by_key(&intent, |x| x.0) {
            Ok(i) => self.intents[i].1 = self.intents[i].1.max(ts),
            Err(i) => self.intents.insert(i, (intent, ts)),
        }
    }

    /// The newest inbound message with `intent`, if any.
    pub fn last_intent(&self, intent: Intent) -> Option<Ts> {
        self.intents
            .binary_search_by_key(&intent, |x| x.0)
            .ok()
            .map(|i| self.intents[i].1)
    }

    /// The intent of the customer's newest message, if it carried one
    /// (an intent whose newest message is at the newest inbound time).
    pub fn last_in_intent(&self) -> Option<Intent> {
        let (at, _, _) = self.last_in?;
        self.intents
            .iter()
            .rev()
            .find(|(_, t)| *t == at)
            .map(|(i, _)| *i)
    }

    /// A message to the customer (any source).
    pub fn outbound(&mut self, ts: Ts) {
        self.outbound += 1;
        self.last_out = Some(self.last_out.map_or(ts, |t| t.max(ts)));
    }

    /// An operator's reply (also counted by [`Conversation::outbound`]).
    pub fn replied(&mut self, ts: Ts) {
        self.last_reply = Some(self.last_reply.map_or(ts, |t| t.max(ts)));
        self.prune();
    }

    /// The conversation was marked resolved at `ts`.
    pub fn resolve(&mut self, ts: Ts) {
        self.resolved = Some(self.resolved.map_or(ts, |t| t.max(ts)));
        self.prune();
    }

    /// Folds the conversation of a person found to be the same.
    pub fn absorb(&mut self, other: Conversation) {
        self.inbound += other.inbound;
        self.outbound += other.outbound;
        if let Some(o) = other.last_in {
            if self.last_in.is_none_or(|s| (o.0, o.1) > (s.0, s.1)) {
                self.last_in = Some(o);
            }
        }
        let max = |a: Option<Ts>, b: Option<Ts>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last_out = max(self.last_out, other.last_out);
        self.last_reply = max(self.last_reply, other.last_reply);
        self.resolved = max(self.resolved, other.resolved);
        for (ch, ts) in other.last_in_by_channel {
            match self.last_in_by_channel.binary_search_by_key(&ch, |x| x.0) {
                Ok(i) => self.last_in_by_channel[i].1 = self.last_in_by_channel[i].1.max(ts),
                Err(i) => self.last_in_by_channel.insert(i, (ch, ts)),
            }
        }
        for (intent, ts) in other.intents {
            self.note_intent(intent, ts);
        }
        let mut both = std::mem::take(&mut self.pending);
        both.extend(other.pending);
        both.sort_unstable();
        self.pending = both;
        self.prune();
        if self.pending.len() > MAX_PENDING {
            let keep_first = self.pending[0];
            let from = self.pending.len() - (MAX_PENDING - 1);
            self.pending.drain(..from);
            self.pending.insert(0, keep_first);
        }
    }

    /// The oldest inbound message after the last operator reply.
    pub fn unanswered_since(&self) -> Option<Ts> {
        let r = self.last_reply.unwrap_or(0);
        self.pending.iter().copied().find(|&t| t > r)
    }

    /// Inbound messages after the last operator reply.
    pub fn unanswered(&self) -> usize {
        let r = self.last_reply.unwrap_or(0);
        self.pending.len() - self.pending.partition_point(|&t| t <= r)
    }

    /// Open: the customer wrote after the last resolve (or it was never
    /// resolved and they wrote at all).
    pub fn is_open(&self) -> bool {
        match (self.last_in, self.resolved) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((t, _, _)), Some(r)) => t > r,
        }
    }

    /// The oldest inbound message after the last resolve: where a
    /// resolution time is measured from.
    pub fn open_since(&self) -> Option<Ts> {
        let r = self.resolved.unwrap_or(0);
        self.pending.iter().copied().find(|&t| t > r)
    }

    /// The channel of the newest inbound message.
    pub fn last_channel(&self) -> Option<u16> {
        self.last_in.map(|x| x.2).filter(|&c| c != NO_CHANNEL)
    }

    /// The newest inbound message on `channel`.
    pub fn last_in_on(&self, channel: u16) -> Option<Ts> {
        self.last_in_by_channel
            .binary_search_by_key(&channel, |x| x.0)
            .ok()
            .map(|i| self.last_in_by_channel[i].1)
    }

    /// The newest message either way.
    pub fn last_message(&self) -> Option<Ts> {
        match (self.last_in.map(|x| x.0), self.last_out) {
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
                filter.keeps(engine, s, p, c).then(|| (key(c), s))
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
            assert_eq!(a.last_in, newest_in);
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
        let before = e.person(slot).and_then(|p| p.conversation()).cloned();
        assert!(!before.as_ref().unwrap().is_open());
        let back = Engine::from_snapshot(&e.to_snapshot(6)).expect("loads").0;
        let slot = back.person_of("wecom:b").expect("known");
        assert_eq!(
            back.person(slot).and_then(|p| p.conversation()).cloned(),
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
