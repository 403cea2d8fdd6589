//! A person's computed properties: folded incrementally from their events,
//! and merged when two persons turn out to be one.
//!
//! Every field is a commutative fold (min, max, sum, or, sorted union), so
//! the state of a merged person equals the state recomputed from the union
//! of both event sets, which the oracle test checks.

use crate::conversation::Conversation;
use crate::identity::IdentityId;
use siyu_domain::EventType;

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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PersonExtra {
    /// Groups the person is currently in (sorted).
    pub groups: Vec<String>,
    /// Tags (sorted, from traits).
    pub tags: Vec<String>,
    /// Other traits, last write wins.
    pub traits: serde_json::Map<String, serde_json::Value>,
    /// Matching (ts, value) pairs per user-defined property, sorted by ts.
    pub properties: Vec<Vec<(Ts, i64)>>,
    /// When the person left which group, and when they refunded or
    /// deleted the brand as a friend (custom event `unfriend`), sorted:
    /// what a fission campaign's hold period checks ("take the gift and
    /// leave").
    pub exits: Vec<(Ts, Exit)>,
    /// Messages to and from the person (`crate::conversation`); none for
    /// a person who never wrote or was written to.
    pub conversation: Option<Box<Conversation>>,
}

/// A departure a hold period looks for.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    LeftGroup(String),
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
    /// message_read timestamps, sorted (retention analytics).
    pub reads: Vec<Ts>,
    pub first_friend_ts: Ts,
    pub purchase_count: u32,
    pub last_purchase_ts: Ts,
    /// The byte-wise smallest identity: the canonical id.
    pub canonical: IdentityId,
    // Second line: purchases, merges, rarely used state.
    pub gross_spend: i64,
    pub refunded: i64,
    /// Purchases sorted by ts.
    pub purchases: Vec<Purchase>,
    pub extra: Option<Box<PersonExtra>>,
    /// One of the person's identities: the entry into their identity ring.
    pub anchor: IdentityId,
    /// How many identities are stitched into the person.
    pub identities: u32,
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
            anchor: identity,
            identities: 1,
            canonical: identity,
            first_ts: NO_TS,
            first_seq: u64::MAX,
            first_channel: NO_CHANNEL,
            first_friend_ts: NO_TS,
            last_event_ts: 0,
            events: 0,
            purchase_count: 0,
            last_purchase_ts: NO_TS,
            gross_spend: 0,
            refunded: 0,
            opted_out: false,
            alive: true,
            purchases: Vec::new(),
            reads: Vec::new(),
            extra: None,
        }
    }

    pub fn net_spend(&self) -> i64 {
        self.gross_spend - self.refunded
    }

    pub fn has_first_event(&self) -> bool {
        self.first_ts != NO_TS
    }

    /// Records a departure (kept sorted).
    pub fn add_exit(&mut self, ts: Ts, exit: Exit) {
        let exits = &mut self.extra_mut().exits;
        let x = (ts, exit);
        let i = exits.partition_point(|y| *y <= x);
        exits.insert(i, x);
    }

    /// The person's conversation state, made on first use.
    pub fn conversation_mut(&mut self) -> &mut Conversation {
        self.extra_mut()
            .conversation
            .get_or_insert_with(Default::default)
    }

    /// The person's conversation state, if they ever wrote or were written to.
    pub fn conversation(&self) -> Option<&Conversation> {
        self.extra.as_ref()?.conversation.as_deref()
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
            EventType::Purchase => {
                self.purchase_count += 1;
                self.gross_spend += amount;
                self.last_purchase_ts = if self.last_purchase_ts == NO_TS {
                    ts
                } else {
                    self.last_purchase_ts.max(ts)
                };
                insert_sorted(&mut self.purchases, Purchase { ts, amount });
            }
            EventType::Refund => self.refunded += amount,
            EventType::MessageRead => insert_sorted(&mut self.reads, ts),
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
        self.identities += other.identities;
        self.purchase_count += other.purchase_count;
        self.last_purchase_ts = match (self.last_purchase_ts, other.last_purchase_ts) {
            (NO_TS, b) => b,
            (a, NO_TS) => a,
            (a, b) => a.max(b),
        };
        self.gross_spend += other.gross_spend;
        self.refunded += other.refunded;
        self.opted_out |= other.opted_out;
        merge_sorted(&mut self.purchases, other.purchases);
        merge_sorted(&mut self.reads, other.reads);
        if let Some(o) = other.extra {
            let e = self.extra_mut();
            for g in o.groups {
                if let Err(i) = e.groups.binary_search(&g) {
                    e.groups.insert(i, g);
                }
            }
            for t in o.tags {
                if let Err(i) = e.tags.binary_search(&t) {
                    e.tags.insert(i, t);
                }
            }
            for (k, v) in o.traits {
                e.traits.entry(k).or_insert(v);
            }
            if e.properties.len() < o.properties.len() {
                e.properties.resize(o.properties.len(), Vec::new());
            }
            for (mine, theirs) in e.properties.iter_mut().zip(o.properties) {
                merge_sorted(mine, theirs);
            }
            for x in o.exits {
                let i = e.exits.partition_point(|y| *y <= x);
                e.exits.insert(i, x);
            }
            if let Some(theirs) = o.conversation {
                match &mut e.conversation {
                    Some(mine) => mine.absorb(*theirs),
                    None => e.conversation = Some(theirs),
                }
            }
        }
    }

    /// Purchases with ts in `[from, to]`.
    pub fn purchases_between(&self, from: i64, to: i64) -> &[Purchase] {
        let lo = self.purchases.partition_point(|p| (p.ts as i64) < from);
        let hi = self.purchases.partition_point(|p| (p.ts as i64) <= to);
        &self.purchases[lo..hi.max(lo)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_fits_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Person>(), 120);
    }
}
