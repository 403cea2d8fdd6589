//! A person's computed properties: folded incrementally from their events,
//! and merged when two persons turn out to be one.
//!
//! Every field is a commutative fold (min, max, sum, or, sorted union), so
//! the state of a merged person equals the state recomputed from the union
//! of both event sets, which the oracle test checks.

use crate::conversation::Conversation;
use crate::identity::IdentityId;
pub use crate::lists::{Lists, Purchases};
use siyu_domain::EventType;
use std::borrow::Cow;

/// Timestamps inside the engine: epoch seconds as u32 (the domain only
/// accepts 2000..2100, which fits).
pub type Ts = u32;
/// Marks an absent timestamp.
pub const NO_TS: Ts = u32::MAX;
/// Marks an absent channel.
pub const NO_CHANNEL: u16 = u16::MAX;

/// One purchase, kept for windowed counts and sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Purchase {
    pub ts: Ts,
    pub amount: i64,
}

/// Less-used per-person state, boxed so the common case stays small.
#[derive(Clone, Debug, Default)]
pub struct PersonExtra {
    /// Groups the person is currently in, as [`GroupNames`] codes (sorted
    /// by code): 4 bytes a membership, not a string.
    pub groups: Box<[GroupCode]>,
    /// When the person left which group, and when they refunded or
    /// deleted the brand as a friend (custom event `unfriend`), sorted:
    /// what a fission campaign's hold period checks ("take the gift and
    /// leave").
    pub exits: Box<[(Ts, Exit)]>,
    /// The sum of the person's refunds (here, not in [`Person`]: one
    /// person in thirty refunds, and a refund records an exit here too).
    pub refunded: i64,
    /// Tags, traits and computed-property values, boxed apart: most
    /// persons with an extra only joined or left a group or refunded.
    more: Option<Box<MoreExtra>>,
}

/// The part of [`PersonExtra`] that traits and computed properties fill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MoreExtra {
    /// Tags (sorted, from traits).
    pub tags: Vec<String>,
    /// Other traits, last write wins.
    pub traits: serde_json::Map<String, serde_json::Value>,
    /// Matching (ts, value) pairs per user-defined property, sorted by ts.
    pub properties: Vec<Vec<(Ts, i64)>>,
}

/// An empty map for persons without traits.
static NO_TRAITS: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

/// Equal when every field reads the same: an empty [`MoreExtra`] box and
/// none are the same state.
impl PartialEq for PersonExtra {
    fn eq(&self, other: &Self) -> bool {
        self.groups == other.groups
            && self.exits == other.exits
            && self.refunded == other.refunded
            && self.tags() == other.tags()
            && self.traits() == other.traits()
            && self.properties() == other.properties()
    }
}

impl PersonExtra {
    /// An extra from its fields (snapshot loading); the [`MoreExtra`] box
    /// only if tags, traits or properties are not empty.
    pub fn from_fields(
        groups: Box<[GroupCode]>,
        exits: Box<[(Ts, Exit)]>,
        refunded: i64,
        more: MoreExtra,
    ) -> Self {
        let empty = more.tags.is_empty() && more.traits.is_empty() && more.properties.is_empty();
        PersonExtra {
            groups,
            exits,
            refunded,
            more: (!empty).then(|| Box::new(more)),
        }
    }

    /// Whether the person is in the group with this code.
    pub fn in_group(&self, code: GroupCode) -> bool {
        self.groups.binary_search(&code).is_ok()
    }

    /// Tags (sorted, from traits).
    pub fn tags(&self) -> &[String] {
        self.more.as_ref().map_or(&[], |m| &m.tags)
    }

    /// Other traits, last write wins.
    pub fn traits(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.more.as_ref().map_or(&NO_TRAITS, |m| &m.traits)
    }

    /// Matching (ts, value) pairs per user-defined property, sorted by ts.
    pub fn properties(&self) -> &[Vec<(Ts, i64)>] {
        self.more.as_ref().map_or(&[], |m| &m.properties)
    }

    /// Tags, traits and properties to change, boxed on first use.
    pub fn more_mut(&mut self) -> &mut MoreExtra {
        self.more.get_or_insert_with(Default::default)
    }

    /// Heap bytes this extra holds, its own box included. Traits are an
    /// estimate: a B-tree entry's key and value plus the strings they
    /// own (the node overhead is not counted).
    pub fn heap_bytes(&self) -> usize {
        let strings = |v: &Vec<String>| {
            v.capacity() * std::mem::size_of::<String>()
                + v.iter().map(String::capacity).sum::<usize>()
        };
        let exits = std::mem::size_of_val::<[(Ts, Exit)]>(&self.exits);
        let more = self.more.as_ref().map_or(0, |m| {
            let traits: usize = m
                .traits
                .iter()
                .map(|(k, v)| {
                    std::mem::size_of::<(String, serde_json::Value)>()
                        + k.capacity()
                        + v.as_str().map_or(0, str::len)
                })
                .sum();
            std::mem::size_of::<MoreExtra>()
                + strings(&m.tags)
                + traits
                + m.properties.capacity() * std::mem::size_of::<Vec<(Ts, i64)>>()
                + m.properties
                    .iter()
                    .map(|v| v.capacity() * std::mem::size_of::<(Ts, i64)>())
                    .sum::<usize>()
        });
        std::mem::size_of::<Self>()
            + std::mem::size_of_val::<[GroupCode]>(&self.groups)
            + exits
            + more
    }
}

/// A group name's code in [`GroupNames`].
pub type GroupCode = u32;

/// The group names persons are in or left, interned engine-wide: a
/// person's groups and exits hold 4-byte codes (a few thousand groups,
/// hundreds of thousands of memberships). Codes are given in first-seen
/// order and are not stable across engines: snapshots store the names.
#[derive(Clone, Debug, Default)]
pub struct GroupNames {
    names: Vec<String>,
    codes: std::collections::HashMap<String, GroupCode>,
}

impl GroupNames {
    /// The code of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> GroupCode {
        if let Some(&c) = self.codes.get(name) {
            return c;
        }
        let c = self.names.len() as GroupCode;
        self.names.push(name.to_string());
        self.codes.insert(name.to_string(), c);
        c
    }

    /// The code of `name`, if a person was ever in that group.
    pub fn code(&self, name: &str) -> Option<GroupCode> {
        self.codes.get(name).copied()
    }

    /// The name of a code given by [`GroupNames::intern`].
    pub fn name(&self, code: GroupCode) -> &str {
        self.names.get(code as usize).map_or("", String::as_str)
    }

    /// The names of `codes`, sorted by name.
    pub fn names_of(&self, codes: &[GroupCode]) -> Vec<&str> {
        let mut v: Vec<&str> = codes.iter().map(|&c| self.name(c)).collect();
        v.sort_unstable();
        v
    }

    /// Heap bytes (the names twice: list and map keys).
    pub fn heap_bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 56).sum()
    }
}

/// A departure a hold period looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Left the group with this [`GroupNames`] code.
    LeftGroup(GroupCode),
    Refund,
    Unfriend,
}

/// The computed properties of one person. `repr(C)` keeps the fields every
/// event touches in the first cache line.
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct Person {
    // First cache line: what most events read or write.
    /// (ts, tie-break) of the first event in event time, identify
    /// excluded; NO_TS if none yet. `first_seq` is the event's
    /// `RawEvent::tie_break` (its id's hash, else its seq), so the first
    /// event is the same whatever order the events were stored in.
    pub first_ts: Ts,
    pub events: u32,
    pub first_seq: u64,
    pub last_event_ts: Ts,
    pub first_channel: u16,
    pub opted_out: bool,
    pub alive: bool,
    /// Purchases sorted by ts (also the purchase count, the newest
    /// purchase and the gross spend) and message_read times (retention),
    /// in one slice: [`Lists`].
    lists: Lists,
    pub first_friend_ts: Ts,
    /// Outbound messages and the newest one (NO_TS: none) of a person
    /// whose conversation is only that: nine persons in ten have one
    /// (every `message_sent` counts), far fewer ever wrote, were replied
    /// to or resolved. Once the person has a [`Conversation`] box these
    /// move into it (and are 0 / NO_TS here): see [`Person::conversation`].
    outbound: u32,
    last_outbound: Ts,
    /// The byte-wise smallest identity: the canonical id, also the entry
    /// into the person's identity ring (the ring's length is the identity
    /// count: [`crate::identity::IdentityGraph::ring_len`]).
    pub canonical: IdentityId,
    // Second line: rarely used state.
    pub extra: Option<Box<PersonExtra>>,
    /// Messages to and from the person (`crate::conversation`) once they
    /// wrote, were replied to, resolved or carried an intent; a person
    /// who was only written to keeps `outbound`/`last_outbound` inline
    /// instead (read both through [`Person::conversation`]).
    conversation: Option<Box<Conversation>>,
}

/// Edits a boxed slice as a `Vec` and boxes it again: the slice keeps no
/// spare capacity, so an edit that grows it reserves exactly what it adds.
pub(crate) fn edit_boxed<T>(b: &mut Box<[T]>, edit: impl FnOnce(&mut Vec<T>)) {
    let mut v = std::mem::take(b).into_vec();
    edit(&mut v);
    *b = v.into_boxed_slice();
}

pub(crate) fn insert_sorted<T: Ord + Copy>(v: &mut Vec<T>, x: T) {
    if v.last().is_none_or(|&l| l <= x) {
        v.push(x);
    } else {
        let i = v.partition_point(|&y| y <= x);
        v.insert(i, x);
    }
}

fn merge_sorted<T: Ord + Copy>(a: &mut Vec<T>, b: Vec<T>) {
    if b.is_empty() {
        return;
    }
    if a.is_empty() {
        *a = b;
        return;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    *a = out;
}

impl Person {
    pub fn new(identity: IdentityId) -> Self {
        Person {
            canonical: identity,
            first_ts: NO_TS,
            first_seq: u64::MAX,
            first_channel: NO_CHANNEL,
            first_friend_ts: NO_TS,
            last_event_ts: 0,
            events: 0,
            outbound: 0,
            last_outbound: NO_TS,
            opted_out: false,
            alive: true,
            lists: Lists::default(),
            extra: None,
            conversation: None,
        }
    }

    pub fn net_spend(&self) -> i64 {
        self.gross_spend() - self.refunded()
    }

    /// The sum of the purchases' amounts.
    pub fn gross_spend(&self) -> i64 {
        self.purchases().iter().map(|p| p.amount).sum()
    }

    /// Purchases, sorted by time then amount.
    pub fn purchases(&self) -> Purchases<'_> {
        self.lists.purchases()
    }

    /// Message-read times, sorted.
    pub fn reads(&self) -> &[Ts] {
        self.lists.reads()
    }

    /// Heap bytes of the purchase and read lists.
    pub fn lists_heap_bytes(&self) -> usize {
        self.lists.heap_bytes()
    }

    /// Sets both lists (snapshot loading; each sorted).
    pub(crate) fn set_lists(&mut self, purchases: &[Purchase], reads: &[Ts]) {
        self.lists = Lists::from_parts(purchases.iter().copied(), reads);
    }

    /// The sum of the refunds' amounts.
    pub fn refunded(&self) -> i64 {
        self.extra.as_ref().map_or(0, |e| e.refunded)
    }

    pub fn has_first_event(&self) -> bool {
        self.first_ts != NO_TS
    }

    /// Records a departure (kept sorted).
    pub fn add_exit(&mut self, ts: Ts, exit: Exit) {
        let exits = &mut self.extra_mut().exits;
        // Exact growth: most persons leave once or twice.
        edit_boxed(exits, |v| {
            v.reserve_exact(1);
            insert_sorted(v, (ts, exit));
        });
    }

    /// Purchases made (the length of [`Person::purchases`]).
    pub fn purchase_count(&self) -> u32 {
        self.purchases().len() as u32
    }

    /// The newest purchase's time, NO_TS if none (purchases are sorted).
    pub fn last_purchase_ts(&self) -> Ts {
        self.purchases().last().map_or(NO_TS, |p| p.ts)
    }

    /// The person's conversation state, boxed on first use (carrying the
    /// outbound messages counted inline so far).
    /// Reads what applying an event of type `t` reads first behind the
    /// person's pointers (the conversation, the purchase or read list), so
    /// a bulk load can bring it into the cache ahead of time
    /// (`Engine::apply_batch_with`). The value is only for `black_box`.
    pub(crate) fn warm(&self, t: EventType) -> u64 {
        match t {
            EventType::Comment => self.conversation.as_ref().map_or(0, |c| c.inbound as u64),
            EventType::Purchase | EventType::MessageRead => self.lists.warm(),
            _ => 0,
        }
    }

    pub fn conversation_mut(&mut self) -> &mut Conversation {
        let (outbound, last_out) = (self.outbound, self.last_outbound);
        let c = self.conversation.get_or_insert_with(|| {
            Box::new(Conversation::outbound_only(
                outbound,
                (last_out != NO_TS).then_some(last_out),
            ))
        });
        self.outbound = 0;
        self.last_outbound = NO_TS;
        c
    }

    /// A message sent to the person at `ts`.
    pub fn note_outbound(&mut self, ts: Ts) {
        match &mut self.conversation {
            Some(c) => c.outbound(ts),
            None => {
                self.outbound += 1;
                self.last_outbound = if self.last_outbound == NO_TS {
                    ts
                } else {
                    self.last_outbound.max(ts)
                };
            }
        }
    }

    /// The person's conversation state, if they ever wrote or were
    /// written to: borrowed from its box, or (a person only written to)
    /// made from the inline counts, without allocating.
    pub fn conversation(&self) -> Option<Cow<'_, Conversation>> {
        match &self.conversation {
            Some(c) => Some(Cow::Borrowed(c)),
            None if self.outbound > 0 => Some(Cow::Owned(Conversation::outbound_only(
                self.outbound,
                (self.last_outbound != NO_TS).then_some(self.last_outbound),
            ))),
            None => None,
        }
    }

    /// Whether [`Person::conversation`] is Some.
    pub fn has_conversation(&self) -> bool {
        self.conversation.is_some() || self.outbound > 0
    }

    /// Sets the conversation state (snapshot loading): a conversation of
    /// outbound messages only is kept inline, as [`Person::note_outbound`]
    /// keeps it, so the state is the one the events built.
    pub fn set_conversation(&mut self, c: Option<Conversation>) {
        self.conversation = None;
        self.outbound = 0;
        self.last_outbound = NO_TS;
        let Some(c) = c else { return };
        match (c.is_outbound_only(), c.last_out()) {
            (true, Some(t)) if c.outbound > 0 => {
                self.outbound = c.outbound;
                self.last_outbound = t;
            }
            _ => self.conversation = Some(Box::new(c)),
        }
    }

    /// Heap bytes of the conversation box, if any (its own size included).
    pub fn conversation_heap_bytes(&self) -> usize {
        self.conversation.as_ref().map_or(0, |c| c.heap_bytes())
    }

    pub fn extra_mut(&mut self) -> &mut PersonExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Folds one event of a built-in type into the state (identify excluded
    /// from "first event"; its links are the graph's business).
    pub fn apply(&mut self, ts: Ts, seq: u64, ty: EventType, channel: u16, amount: i64) {
        self.events += 1;
        self.last_event_ts = self.last_event_ts.max(ts);
        if ty == EventType::Identify {
            return;
        }
        if (ts, seq) < (self.first_ts, self.first_seq) {
            self.first_ts = ts;
            self.first_seq = seq;
            self.first_channel = channel;
        }
        match ty {
            EventType::AddFriend => self.first_friend_ts = self.first_friend_ts.min(ts),
            EventType::Purchase => self.lists.insert_purchase(Purchase { ts, amount }),
            EventType::Refund => self.extra_mut().refunded += amount,
            EventType::MessageRead => self.lists.insert_read(ts),
            EventType::OptOut => self.opted_out = true,
            _ => {}
        }
    }

    /// Folds `other` (a person found to be the same) into `self`.
    pub fn absorb(&mut self, other: Person) {
        if (other.first_ts, other.first_seq) < (self.first_ts, self.first_seq) {
            self.first_ts = other.first_ts;
            self.first_seq = other.first_seq;
            self.first_channel = other.first_channel;
        }
        self.first_friend_ts = self.first_friend_ts.min(other.first_friend_ts);
        self.last_event_ts = self.last_event_ts.max(other.last_event_ts);
        self.events += other.events;
        self.opted_out |= other.opted_out;
        self.lists.merge(other.lists);
        match (other.conversation, &mut self.conversation) {
            (Some(theirs), Some(mine)) => mine.absorb(*theirs),
            (Some(mut theirs), None) => {
                if self.outbound > 0 {
                    theirs.add_outbound(self.outbound, Some(self.last_outbound));
                }
                self.outbound = 0;
                self.last_outbound = NO_TS;
                self.conversation = Some(theirs);
            }
            (None, Some(mine)) => {
                if other.outbound > 0 {
                    mine.add_outbound(other.outbound, Some(other.last_outbound));
                }
            }
            (None, None) => {
                if other.outbound > 0 {
                    self.outbound += other.outbound;
                    self.last_outbound = if self.last_outbound == NO_TS {
                        other.last_outbound
                    } else {
                        self.last_outbound.max(other.last_outbound)
                    };
                }
            }
        }
        if let Some(o) = other.extra {
            let e = self.extra_mut();
            e.refunded += o.refunded;
            edit_boxed(&mut e.groups, |g| {
                g.extend_from_slice(&o.groups);
                g.sort_unstable();
                g.dedup();
            });
            edit_boxed(&mut e.exits, |x| {
                x.extend_from_slice(&o.exits);
                x.sort();
            });
            if let Some(o) = o.more {
                let MoreExtra {
                    tags,
                    traits,
                    properties,
                } = *o;
                let e = e.more_mut();
                for t in tags {
                    if let Err(i) = e.tags.binary_search(&t) {
                        e.tags.reserve_exact(1);
                        e.tags.insert(i, t);
                    }
                }
                for (k, v) in traits {
                    e.traits.entry(k).or_insert(v);
                }
                if e.properties.len() < properties.len() {
                    e.properties.resize(properties.len(), Vec::new());
                }
                for (mine, theirs) in e.properties.iter_mut().zip(properties) {
                    merge_sorted(mine, theirs);
                }
            }
        }
    }

    /// Purchases with ts in `[from, to]`.
    pub fn purchases_between(&self, from: i64, to: i64) -> Purchases<'_> {
        let ps = self.purchases();
        let lo = ps.partition_point(|p| (p.ts as i64) < from);
        let hi = ps.partition_point(|p| (p.ts as i64) <= to);
        ps.range(lo, hi.max(lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_fits_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Person>(), 72);
        assert_eq!(std::mem::size_of::<PersonExtra>(), 48);
        assert_eq!(std::mem::size_of::<crate::conversation::Conversation>(), 56);
    }
}
