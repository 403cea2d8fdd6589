//! The engine: the identity graph plus every person's computed properties
//! plus live segment memberships, advanced one event (or one clock tick) at
//! a time by a single writer.
//!
//! Pure by construction: no I/O, no clock. Callers pass events in and move
//! time forward with [`Engine::advance_to`].

use crate::chunked::Chunked;
use crate::identity::{identity_hash, IdentityGraph, IdentityId};
use crate::log_index::LogIndex;
use crate::person::{edit_boxed, insert_sorted};
use crate::person::{Exit, GroupNames, Person, Ts, NO_CHANNEL};
use crate::property::{PropertyDef, PropertyError};
use crate::rfm::RfmBasis;
use crate::segment::live::{LiveSegments, SegmentChange, SegmentError, World};
use crate::segment::{explain, Explanation, Expr};
use siyu_domain::{Event, EventType};

/// Below this many persons per thread, a pass stays on one thread.
pub const MIN_PERSONS_PER_THREAD: usize = 1024;

/// Index of a person slot. A slot dies when its person is merged into
/// another; resolve identities again after a merge. Dead slots are dropped
/// (and the others renumbered, in order) by [`Engine::compact_slots`].
pub type PersonId = u32;

/// One event as the engine needs it, borrowed (the bulk loader builds these
/// without allocating).
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    /// The file's `seq` or the log offset (what the [`LogIndex`] records);
    /// the tie-breaker for equal timestamps when the event has no `id`
    /// ([`RawEvent::tie_break`]).
    pub seq: u64,
    /// The event's own id (`Event::id`), if it has one.
    pub id: Option<&'a str>,
    pub ts: i64,
    pub identity: &'a str,
    /// Precomputed [`crate::identity::identity_hash`] of `identity`, if the caller has it.
    pub identity_hash: Option<u64>,
    pub event_type: EventType,
    pub channel: &'a str,
    pub amount: i64,
    pub reference: Option<&'a str>,
    pub group: Option<&'a str>,
    /// `referral_signup` only: `properties.campaign`, `.device`, `.ip`
    /// (fission campaigns and their anti-fraud fingerprints).
    pub campaign: Option<&'a str>,
    pub device: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// Custom events: the name (`unfriend` is recorded as an exit).
    pub name: Option<&'a str>,
    /// The tie-break computed when the event was first read, if it was
    /// (a column file keeps it instead of the id): overrides `id`/`seq`.
    pub tie: Option<u64>,
}

impl<'a> RawEvent<'a> {
    pub fn from_event(seq: u64, e: &'a Event) -> Self {
        RawEvent {
            seq,
            id: e.id.as_deref(),
            ts: e.ts,
            identity: e.identity.as_str(),
            identity_hash: None,
            event_type: e.event_type,
            channel: e.channel.as_str(),
            amount: e.amount,
            reference: e.reference.as_ref().map(|r| r.as_str()),
            group: e.group.as_deref(),
            campaign: None,
            device: None,
            ip: None,
            name: e.name.as_deref(),
            tie: None,
        }
        .with_referral_properties(e)
    }

    /// An event with only these fields (no id, reference, group, referral
    /// properties or name): what passes over a few columns build.
    pub fn bare(
        seq: u64,
        ts: i64,
        identity: &'a str,
        event_type: EventType,
        channel: &'a str,
        amount: i64,
    ) -> Self {
        RawEvent {
            seq,
            id: None,
            ts,
            identity,
            identity_hash: None,
            event_type,
            channel,
            amount,
            reference: None,
            group: None,
            campaign: None,
            device: None,
            ip: None,
            name: None,
            tie: None,
        }
    }

    /// Orders this event among events at the same second, the same way
    /// whatever order they were stored in ([`tie_break`]).
    pub fn tie_break(&self) -> u64 {
        self.tie.unwrap_or_else(|| tie_break(self.id, self.seq))
    }

    fn with_referral_properties(mut self, e: &'a Event) -> Self {
        if matches!(e.event_type, EventType::ReferralSignup | EventType::Touch) {
            if let Some(p) = &e.properties {
                let s = |k: &str| p.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
                self.campaign = s("campaign");
                self.device = s("device");
                self.ip = s("ip");
            }
        }
        self
    }
}

/// Event time is `(ts, tie_break)`: what every analysis that depends on
/// the order of a person's events (first touch, funnels, attribution,
/// referral validity) orders by, so the answer does not depend on the
/// order events were stored in (orders imported after the WeCom adds they
/// preceded). At the same second, events with an id come first, ordered by
/// a fixed 63-bit hash of it (ids are unique in the log, so this is a
/// property of the event set); events without one follow in `seq` order
/// (the log offset, or the file's line in `siyu bench`, where no line has
/// an id: its ties stay in file order).
pub fn tie_break(id: Option<&str>, seq: u64) -> u64 {
    const NO_ID: u64 = 1 << 63;
    match id {
        Some(id) => identity_hash(id) >> 1,
        None => NO_ID | seq,
    }
}

/// A `message_sent` an operator wrote in answer (`properties.reply` is
/// true: the conversations API's sends), which answers the customer's
/// waiting messages (`crate::conversation`). Only [`Engine::apply`] sees
/// properties: a bulk line with properties is applied through it.
pub fn is_operator_reply(e: &Event) -> bool {
    e.event_type == EventType::MessageSent
        && e.properties
            .as_ref()
            .and_then(|p| p.get("reply"))
            .and_then(|v| v.as_bool())
            == Some(true)
}

/// A 32-bit fingerprint of a device or IP string (0 = none).
pub fn fingerprint(s: Option<&str>) -> u32 {
    let Some(s) = s else { return 0 };
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// Two persons found to be one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Merge {
    /// The identities the linking event joined.
    pub identity: String,
    pub linked: String,
    /// Canonical ids of the two persons before, and of the person after.
    pub from_a: String,
    pub from_b: String,
    pub into: String,
}

/// What applying one event did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The person the event now belongs to.
    pub person: PersonId,
    pub merges: Vec<Merge>,
    /// Segment entries and exits the event caused (exits first).
    pub changes: Vec<SegmentChange>,
}

/// A referral signup, kept for referral analytics.
#[derive(Clone, Copy, Debug)]
pub struct Referral {
    pub invitee: IdentityId,
    pub inviter: IdentityId,
    pub ts: Ts,
    /// Campaign code: 0 = none, else index + 1 into [`Engine::campaigns`].
    pub campaign: u32,
    /// [`fingerprint`]s of the signup's device and IP (0 = not given).
    pub device: u32,
    pub ip: u32,
    /// The signup's [`tie_break`]: with `ts`, its place in event time,
    /// compared with the invitee's first event (`Person::first_seq`).
    pub seq: u64,
}

/// What a snapshot restores an engine from.
pub(crate) struct Parts {
    pub ids: IdentityGraph,
    pub persons: Chunked<Person>,
    pub channels: Vec<String>,
    pub groups: GroupNames,
    pub referrals: Vec<Referral>,
    pub campaigns: Vec<String>,
    pub campaign_clicks: Vec<u64>,
    pub properties: Vec<PropertyDef>,
    pub now: i64,
    pub events_applied: u64,
    pub log_index: Option<LogIndex>,
}

/// What segment evaluation reads of the engine, borrowed field by field
/// (a macro, not a method, so `self.segments` can still be borrowed
/// mutably beside it).
macro_rules! world {
    ($engine:expr) => {
        World {
            persons: &$engine.persons,
            ids: &$engine.ids,
            channels: &$engine.channels,
            groups: &$engine.groups,
            properties: &$engine.properties,
            rfm: $engine.rfm.map(|b| b.thresholds),
        }
    };
}

/// The engine state. See the module docs.
pub struct Engine {
    pub(crate) ids: IdentityGraph,
    /// Person slots, in chunks: growing never copies them ([`Chunked`]).
    pub(crate) persons: Chunked<Person>,
    live_persons: usize,
    pub(crate) channels: Vec<String>,
    /// The names of the groups persons are in or left.
    pub(crate) groups: GroupNames,
    pub(crate) referrals: Vec<Referral>,
    /// Campaign names referral signups named (interned; code = index + 1).
    pub(crate) campaigns: Vec<String>,
    /// Touch events per campaign (invite-link clicks), by code − 1.
    pub(crate) campaign_clicks: Vec<u64>,
    pub(crate) segments: LiveSegments,
    pub(crate) properties: Vec<PropertyDef>,
    /// Threads whole-population passes may use (set by the caller; the
    /// engine does not probe the machine).
    pub(crate) parallelism: usize,
    now: i64,
    events_applied: u64,
    /// Each identity's log offsets, kept when the engine replays a log
    /// ([`Engine::for_log`]): timelines are read by offset.
    pub(crate) log_index: Option<LogIndex>,
    /// The thresholds `rfm_layer` reads (set by the caller, never
    /// computed here; not in the snapshot: the server sets them after
    /// loading one).
    rfm: Option<RfmBasis>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        Engine {
            ids: IdentityGraph::new(),
            persons: Chunked::new(),
            live_persons: 0,
            channels: Vec::new(),
            groups: GroupNames::default(),
            referrals: Vec::new(),
            campaigns: Vec::new(),
            campaign_clicks: Vec::new(),
            segments: LiveSegments::default(),
            properties: Vec::new(),
            parallelism: 1,
            now: 0,
            events_applied: 0,
            log_index: None,
            rfm: None,
        }
    }

    /// An engine whose events are a log's, each applied with its log
    /// offset as `seq`, in offset order: it also keeps every identity's
    /// offsets ([`Engine::event_offsets`]), so a store can serve a
    /// person's timeline by primary key instead of an identity index.
    /// The server's and the importer's engines are made this way; one-off
    /// engines over a file (bench, analytics) are not.
    pub fn for_log() -> Self {
        Engine {
            log_index: Some(LogIndex::default()),
            ..Engine::new()
        }
    }

    /// Whether this engine keeps log offsets ([`Engine::for_log`]).
    pub fn keeps_log_offsets(&self) -> bool {
        self.log_index.is_some()
    }

    /// Reassembles an engine from its parts (snapshot loading).
    pub(crate) fn restore(parts: Parts) -> Engine {
        let live_persons = parts.persons.iter().filter(|p| p.alive).count();
        let mut segments = LiveSegments::default();
        segments.grow(parts.persons.len());
        Engine {
            ids: parts.ids,
            persons: parts.persons,
            live_persons,
            channels: parts.channels,
            groups: parts.groups,
            referrals: parts.referrals,
            campaigns: parts.campaigns,
            campaign_clicks: parts.campaign_clicks,
            segments,
            properties: parts.properties,
            parallelism: 1,
            now: parts.now,
            events_applied: parts.events_applied,
            log_index: parts.log_index,
            rfm: None,
        }
    }

    /// The engine's clock (epoch seconds), as last advanced.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn person_count(&self) -> usize {
        self.live_persons
    }

    pub fn identity_count(&self) -> usize {
        self.ids.len()
    }

    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    fn campaign_code(&mut self, name: &str) -> u32 {
        match self.campaigns.iter().position(|c| c == name) {
            Some(i) => i as u32 + 1,
            None => {
                self.campaigns.push(name.to_string());
                self.campaigns.len() as u32
            }
        }
    }

    /// Campaign names referral signups carried; a referral's `campaign`
    /// code is an index + 1 into this.
    pub fn campaigns(&self) -> &[String] {
        &self.campaigns
    }

    /// Invite-link clicks (touch events naming the campaign) of a campaign.
    pub fn campaign_clicks(&self, code: u32) -> u64 {
        (code as usize)
            .checked_sub(1)
            .and_then(|i| self.campaign_clicks.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The code of a campaign name, if any signup carried it.
    pub fn campaign_of(&self, name: &str) -> Option<u32> {
        self.campaigns
            .iter()
            .position(|c| c == name)
            .map(|i| i as u32 + 1)
    }

    fn channel_code(&mut self, name: &str) -> u16 {
        match self.channels.iter().position(|c| c == name) {
            Some(i) => i as u16,
            None => {
                self.channels.push(name.to_string());
                (self.channels.len() - 1) as u16
            }
        }
    }

    /// The code of a channel name, if any event carried it.
    pub fn channel_of(&self, name: &str) -> Option<u16> {
        self.channels
            .iter()
            .position(|c| c == name)
            .map(|i| i as u16)
    }

    /// The groups persons are in or left, by code.
    pub fn group_names(&self) -> &GroupNames {
        &self.groups
    }

    /// Whether `p` is in the group `name` now.
    pub fn in_group(&self, p: &Person, name: &str) -> bool {
        self.groups
            .code(name)
            .is_some_and(|c| p.extra.as_ref().is_some_and(|e| e.in_group(c)))
    }

    /// The groups `p` is in now, sorted by name.
    pub fn groups_of(&self, p: &Person) -> Vec<&str> {
        p.extra
            .as_ref()
            .map_or_else(Vec::new, |e| self.groups.names_of(&e.groups))
    }

    /// Number of distinct channels seen.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Name of a channel code.
    pub fn channel_name(&self, code: u16) -> Option<&str> {
        self.channels.get(code as usize).map(String::as_str)
    }

    /// The person slot of `s`, interning it if new: a new identity becomes
    /// a new person unless `attach_to` names the slot it joins. The bool
    /// says whether the identity was new.
    fn resolve(
        &mut self,
        s: &str,
        hash: Option<u64>,
        attach_to: Option<u32>,
    ) -> (u32, bool, IdentityId) {
        let hash = hash.unwrap_or_else(|| identity_hash(s));
        if let Some((id, slot)) = self.ids.lookup_hashed(s, hash) {
            return (slot, false, id);
        }
        match attach_to {
            Some(slot) => {
                let id = self.ids.insert_hashed(s, hash, slot);
                let p = &mut self.persons[slot as usize];
                self.ids.splice(p.canonical, id);
                if s < self.ids.get(p.canonical) {
                    p.canonical = id;
                }
                (slot, true, id)
            }
            None => {
                let slot = self.persons.len() as u32;
                let id = self.ids.insert_hashed(s, hash, slot);
                self.persons.push(Person::new(id));
                self.live_persons += 1;
                self.segments.grow(self.persons.len());
                (slot, true, id)
            }
        }
    }

    /// Joins persons `a` and `b`; returns the surviving slot. The person
    /// with fewer identities is relabelled (union by size; the rings are
    /// compared in O(the smaller one)).
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (ra, rb) = (
            self.persons[a as usize].canonical,
            self.persons[b as usize].canonical,
        );
        let (keep, gone) = if self.ids.ring_at_least_as_long(ra, rb) {
            (a, b)
        } else {
            (b, a)
        };
        let mut dead = Person::new(0);
        dead.alive = false;
        let other = std::mem::replace(&mut self.persons[gone as usize], dead);
        self.ids.relabel(other.canonical, keep);
        let ring = self.persons[keep as usize].canonical;
        self.ids.splice(ring, other.canonical);
        let p = &mut self.persons[keep as usize];
        if self.ids.get(other.canonical) < self.ids.get(p.canonical) {
            p.canonical = other.canonical;
        }
        p.absorb(other);
        self.live_persons -= 1;
        keep
    }

    /// Drops the slots of merged-away persons (a quarter of the slots
    /// after loading the bench set), in bulk mode only: before
    /// [`Engine::start_live`] no segment member or timer names a slot.
    /// Live persons keep their relative order, so every pass in slot
    /// order (and every answer) is unchanged, but their [`PersonId`]s
    /// change: ids handed out before are stale. Returns the slots dropped
    /// (0 when live).
    pub fn compact_slots(&mut self) -> usize {
        let dead = self.persons.len() - self.live_persons;
        if self.segments.is_live() || dead == 0 {
            return 0;
        }
        let mut remap = Vec::with_capacity(self.persons.len());
        let mut next = 0u32;
        for p in &self.persons {
            remap.push(next);
            next += p.alive as u32;
        }
        self.persons.retain(|p| p.alive);
        self.ids.remap_slots(&remap);
        self.segments.truncate_slots(self.persons.len());
        dead
    }

    /// Applies one event. In bulk mode (before [`Engine::start_live`]) no
    /// segment is evaluated; afterwards every affected membership is
    /// updated before this returns.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Applied {
        let mut applied = self.apply_raw(RawEvent::from_event(seq, event));
        let ts = event.ts.clamp(0, u32::MAX as i64 - 1) as Ts;
        if is_operator_reply(event) {
            self.persons[applied.person as usize]
                .conversation_mut()
                .replied(ts);
        }
        let mut matched = false;
        if let Some(intent) = siyu_domain::intent::Intent::of_event(event) {
            self.note_intent(applied.person, intent, ts);
            matched = true;
        }
        for (i, def) in self.properties.iter().enumerate() {
            if let Some(v) = def.matches(event) {
                let e = self.persons[applied.person as usize].extra_mut().more_mut();
                if e.properties.len() <= i {
                    e.properties.resize(i + 1, Vec::new());
                }
                insert_sorted(&mut e.properties[i], (ts, v));
                matched = true;
            }
        }
        if matched && event.traits.is_none() && self.segments.is_live() {
            let world = world!(self);
            let changes = self.segments.reevaluate(&world, applied.person, self.now);
            applied.changes.extend(changes);
        }
        if let Some(t) = &event.traits {
            let slot = applied.person;
            let e = self.persons[slot as usize].extra_mut().more_mut();
            for tag in &t.tags {
                if let Err(i) = e.tags.binary_search(tag) {
                    e.tags.reserve_exact(1);
                    e.tags.insert(i, tag.clone());
                }
            }
            for tag in &t.remove_tags {
                if let Ok(i) = e.tags.binary_search(tag) {
                    e.tags.remove(i);
                }
            }
            let fields = [
                ("name", &t.name),
                ("phone", &t.phone),
                ("city", &t.city),
                ("birthday", &t.birthday),
                ("timezone", &t.timezone),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    e.traits.insert(k.to_string(), v.clone().into());
                }
            }
            for (k, v) in &t.extra {
                e.traits.insert(k.clone(), v.clone());
            }
            if self.segments.is_live() {
                let now = self.now;
                let world = world!(self);
                let changes = self.segments.reevaluate(&world, slot, now);
                applied.changes.extend(changes);
            }
        }
        applied
    }

    /// Applies many events in order (bulk loading). Equivalent to calling
    /// [`Engine::apply_raw`] on each, but first reads, for a block of
    /// events, each identity's bucket, then its key, slot and log-index
    /// entry, then its person: the reads of one stage are independent
    /// across the block, so the CPU has many cache misses in flight
    /// instead of waiting for each event's chain of them in turn.
    pub fn apply_batch(&mut self, events: &[RawEvent<'_>]) {
        self.apply_batch_by(events.len(), |i| events[i]);
    }

    /// [`Engine::apply_batch`] over events produced on demand (`get(i)` for
    /// i in 0..len, each called twice), so callers need not build a slice.
    pub fn apply_batch_by<'a>(&mut self, len: usize, get: impl Fn(usize) -> RawEvent<'a>) {
        self.apply_batch_with(len, get, |_, _| {});
    }

    /// [`Engine::apply_batch_by`] that hands each event's [`Applied`] (its
    /// merges, say) to `each`, with the event's index.
    pub fn apply_batch_with<'a>(
        &mut self,
        len: usize,
        get: impl Fn(usize) -> RawEvent<'a>,
        mut each: impl FnMut(usize, Applied),
    ) {
        const BLOCK: usize = 32;
        let mut start = 0;
        while start < len {
            let end = (start + BLOCK).min(len);
            let mut hashes = [0u64; BLOCK];
            let mut types = [EventType::Custom; BLOCK];
            let mut likely = [None; BLOCK];
            let mut sink = 0u64;
            for (k, i) in (start..end).enumerate() {
                let ev = get(i);
                hashes[k] = ev
                    .identity_hash
                    .unwrap_or_else(|| identity_hash(ev.identity));
                types[k] = ev.event_type;
                sink ^= self.ids.warm_bucket(hashes[k]);
            }
            for k in 0..end - start {
                likely[k] = self.ids.likely_id(hashes[k]);
                if let Some(id) = likely[k] {
                    sink ^= self.ids.slot_of(id) as u64;
                    if let Some(index) = &self.log_index {
                        sink ^= index.newest(id);
                    }
                }
            }
            for id in likely.iter().take(end - start).flatten() {
                sink ^= self.ids.warm_key(*id) as u64;
                // A person spans two cache lines: a field from the front
                // and one from the back of its layout.
                let p = &self.persons[self.ids.slot_of(*id) as usize];
                sink ^= p.events as u64 ^ p.has_conversation() as u64;
            }
            // The list or box the event will change, behind the person's pointer.
            for (k, id) in likely.iter().take(end - start).enumerate() {
                if let Some(id) = id {
                    sink ^= self.persons[self.ids.slot_of(*id) as usize].warm(types[k]);
                }
            }
            std::hint::black_box(sink);
            for i in start..end {
                let mut ev = get(i);
                ev.identity_hash = Some(hashes[i - start]);
                let applied = self.apply_raw(ev);
                each(i, applied);
            }
            start = end;
        }
    }

    /// Whether [`Engine::apply`] does more than [`Engine::apply_raw`] for an
    /// event without properties or traits: computed properties are
    /// defined, and they read the whole event.
    pub fn has_computed_properties(&self) -> bool {
        !self.properties.is_empty()
    }

    /// Records that an inbound message of person `slot` at `ts` carried
    /// `intent` (what [`Engine::apply`] does for a comment with
    /// `properties.intent`; `apply_raw` does not read properties).
    /// Segments are not re-evaluated here: the caller does.
    pub fn note_intent(&mut self, slot: PersonId, intent: siyu_domain::intent::Intent, ts: Ts) {
        self.persons[slot as usize]
            .conversation_mut()
            .note_intent(intent, ts);
    }

    /// [`Engine::apply`] without allocation for the built-in fields.
    pub fn apply_raw(&mut self, ev: RawEvent<'_>) -> Applied {
        self.events_applied += 1;
        let live = self.segments.is_live();
        let hash = ev
            .identity_hash
            .unwrap_or_else(|| identity_hash(ev.identity));
        // A new identity linked to a known one joins that person directly
        // (no throwaway person, no merge).
        let mut join = None;
        if let (EventType::Identify, Some(r)) = (ev.event_type, ev.reference) {
            if self.ids.lookup_hashed(ev.identity, hash).is_none() {
                join = self.ids.lookup(r).map(|(_, slot)| slot);
            }
        }
        let mut touched: [Option<(u32, IdentityId)>; 2] = [None, None];
        if let (true, Some(j)) = (live, join) {
            touched[0] = Some((j, self.persons[j as usize].canonical));
        }
        let (mut slot, new, id) = self.resolve(ev.identity, Some(hash), join);
        if let Some(index) = &mut self.log_index {
            index.record(id, ev.seq);
        }
        if live && !new {
            touched[0] = Some((slot, self.persons[slot as usize].canonical));
        }
        let mut merges = Vec::new();
        if let (EventType::Identify, Some(r)) = (ev.event_type, ev.reference) {
            let (other, new_ref, _) = self.resolve(r, None, Some(slot));
            if !new_ref && other != slot {
                let (ca, cb) = (
                    self.persons[slot as usize].canonical,
                    self.persons[other as usize].canonical,
                );
                if live {
                    touched[1] = Some((other, cb));
                }
                slot = self.union(slot, other);
                let into = self.persons[slot as usize].canonical;
                merges.push(Merge {
                    identity: ev.identity.to_string(),
                    linked: r.to_string(),
                    from_a: self.ids.get(ca).to_string(),
                    from_b: self.ids.get(cb).to_string(),
                    into: self.ids.get(into).to_string(),
                });
            }
        }
        let ts = ev.ts.clamp(0, u32::MAX as i64 - 1) as Ts;
        let channel = if ev.event_type == EventType::Identify {
            NO_CHANNEL
        } else {
            self.channel_code(ev.channel)
        };
        let group = match ev.event_type {
            EventType::JoinGroup | EventType::LeaveGroup => ev.group.map(|g| self.groups.intern(g)),
            _ => None,
        };
        let person = &mut self.persons[slot as usize];
        person.apply(ts, ev.tie_break(), ev.event_type, channel, ev.amount);
        match ev.event_type {
            EventType::JoinGroup | EventType::LeaveGroup => {
                if let Some(g) = group {
                    let groups = &mut person.extra_mut().groups;
                    let pos = groups.binary_search(&g);
                    match (ev.event_type, pos) {
                        (EventType::JoinGroup, Err(i)) => edit_boxed(groups, |v| {
                            v.reserve_exact(1);
                            v.insert(i, g);
                        }),
                        (EventType::LeaveGroup, Ok(i)) => edit_boxed(groups, |v| {
                            v.remove(i);
                        }),
                        _ => {}
                    }
                    if ev.event_type == EventType::LeaveGroup {
                        person.add_exit(ts, Exit::LeftGroup(g));
                    }
                }
            }
            EventType::Refund => person.add_exit(ts, Exit::Refund),
            EventType::Custom if ev.name == Some("unfriend") => person.add_exit(ts, Exit::Unfriend),
            EventType::Custom if ev.name == Some(crate::conversation::RESOLVED_EVENT) => {
                person.conversation_mut().resolve(ts)
            }
            EventType::Comment => person
                .conversation_mut()
                .inbound(ts, ev.tie_break(), channel),
            EventType::MessageSent => person.note_outbound(ts),
            EventType::Touch => {
                if let Some(c) = ev.campaign {
                    let code = self.campaign_code(c) as usize;
                    if self.campaign_clicks.len() < code {
                        self.campaign_clicks.resize(code, 0);
                    }
                    self.campaign_clicks[code - 1] += 1;
                }
            }
            EventType::ReferralSignup => {
                if let Some(r) = ev.reference {
                    // The inviter may not have been seen yet; intern it as its own person.
                    // Any identity of the person stands for it (read back
                    // with `person_of_id`).
                    let invitee = self.persons[slot as usize].canonical;
                    let inviter = match self.ids.lookup(r) {
                        Some((id, _)) => id,
                        None => self.resolve(r, None, None).2,
                    };
                    let campaign = ev.campaign.map_or(0, |c| self.campaign_code(c));
                    self.referrals.push(Referral {
                        invitee,
                        inviter,
                        ts,
                        campaign,
                        device: fingerprint(ev.device),
                        ip: fingerprint(ev.ip),
                        seq: ev.tie_break(),
                    });
                }
            }
            _ => {}
        }
        let mut changes = Vec::new();
        if live {
            let world = world!(self);
            changes = self.segments.after_event(&world, slot, &touched, self.now);
        }
        Applied {
            person: slot,
            merges,
            changes,
        }
    }

    /// Moves the clock forward, firing every window expiry due by `now`.
    pub fn advance_to(&mut self, now: i64) -> Vec<SegmentChange> {
        if now < self.now {
            return Vec::new();
        }
        self.now = now;
        if !self.segments.is_live() {
            return Vec::new();
        }
        let world = world!(self);
        self.segments.fire_timers(&world, now)
    }

    /// Ends bulk mode: sets the clock, evaluates every segment for every
    /// person and schedules window expiries. Returns nothing: the initial
    /// memberships are not changes.
    pub fn start_live(&mut self, now: i64) {
        self.now = now;
        let world = world!(self);
        self.segments.start(&world, now, self.parallelism);
    }

    /// The thresholds segments read `rfm_layer` against, if set.
    pub fn rfm_basis(&self) -> Option<RfmBasis> {
        self.rfm
    }

    /// Sets (or clears) the thresholds `rfm_layer` is read against. While
    /// live and the thresholds differ, every segment is re-evaluated for
    /// every person (a threshold change is rare and moves persons between
    /// layers anywhere; it holds the engine for one full pass) and the
    /// entries/exits are returned.
    pub fn set_rfm_basis(&mut self, basis: Option<RfmBasis>) -> Vec<SegmentChange> {
        let same_thresholds = self.rfm.map(|b| b.thresholds) == basis.map(|b| b.thresholds);
        self.rfm = basis;
        // Medians pinned again to the same values: nothing to re-evaluate.
        if same_thresholds || !self.segments.is_live() {
            return Vec::new();
        }
        let world = world!(self);
        self.segments.reevaluate_all(&world, self.now)
    }

    /// Defines (or redefines) a computed property. It folds events applied
    /// from now on; to cover history, rebuild the engine from the log with
    /// the property defined first (what the server does).
    pub fn define_property(&mut self, def: PropertyDef) -> Result<usize, PropertyError> {
        def.validate()?;
        match self.properties.iter().position(|d| d.name == def.name) {
            Some(i) => {
                self.properties[i] = def;
                Ok(i)
            }
            None => {
                self.properties.push(def);
                Ok(self.properties.len() - 1)
            }
        }
    }

    pub fn properties(&self) -> &[PropertyDef] {
        &self.properties
    }

    /// The value of a computed property for a person at the engine clock.
    pub fn property_value(&self, slot: PersonId, name: &str) -> Option<i64> {
        let i = self.properties.iter().position(|d| d.name == name)?;
        let p = self.person(slot)?;
        let values = p
            .extra
            .as_ref()
            .and_then(|e| e.properties().get(i))
            .map_or(&[][..], |v| v.as_slice());
        self.properties[i].evaluate(values, self.now)
    }

    /// Saves a segment (or a new version of one) and computes its members.
    /// While live, returns the entries/exits the (re)definition caused.
    pub fn define_segment(
        &mut self,
        name: &str,
        expr: Expr,
        source: String,
    ) -> Result<(u32, Vec<SegmentChange>), SegmentError> {
        // Before any walk over the tree (see `segment::MAX_DEPTH`).
        expr.check_depth().map_err(|error| SegmentError::TooDeep {
            segment: name.to_string(),
            error,
        })?;
        let mut props = Vec::new();
        expr.property_refs(&mut props);
        if let Some(missing) = props
            .into_iter()
            .find(|p| !self.properties.iter().any(|d| &d.name == p))
        {
            return Err(SegmentError::UnknownProperty {
                segment: name.to_string(),
                missing,
            });
        }
        let index = self.segments.define(name, expr, source)?;
        if !self.segments.is_live() {
            return Ok((index, Vec::new()));
        }
        let world = world!(self);
        let changes = self.segments.evaluate_segment(&world, index, self.now);
        Ok((index, changes))
    }

    /// Deletes saved segment `name`; refused (naming them) while other
    /// segments read it. Returns its last version, None if there is none.
    pub fn remove_segment(&mut self, name: &str) -> Result<Option<u32>, Vec<String>> {
        let readers: Vec<String> = self
            .segments
            .readers_of(name)
            .into_iter()
            .filter(|r| r != name)
            .collect();
        if !readers.is_empty() {
            return Err(readers);
        }
        Ok(self.segments.remove(name))
    }

    /// See [`LiveSegments::set_version`].
    pub fn set_segment_version(&mut self, name: &str, version: u32) {
        self.segments.set_version(name, version);
    }

    /// The saved segments that read computed property `name`
    /// (`prop.name`): while there are any, the property cannot be deleted.
    pub fn property_readers(&self, name: &str) -> Vec<String> {
        self.segments
            .segments()
            .iter()
            .filter(|s| {
                let mut refs = Vec::new();
                s.expr.property_refs(&mut refs);
                refs.iter().any(|r| r == name)
            })
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn live_segments(&self) -> &LiveSegments {
        &self.segments
    }

    /// Evaluates an ad-hoc condition for one person at the engine clock,
    /// clause by clause ("why is she in or out").
    pub fn explain(&self, expr: &Expr, slot: PersonId) -> Option<Explanation> {
        let p = self.person(slot)?;
        let in_segment = |name: &str| self.in_segment(name, slot);
        Some(explain(expr, p, &self.eval_ctx(&in_segment)))
    }

    /// Whether person `slot` is a member of the segment `name` now.
    fn in_segment(&self, name: &str, slot: PersonId) -> bool {
        self.segments
            .index_of(name)
            .is_some_and(|i| self.segments.is_member(i, slot))
    }

    /// What an ad-hoc condition is evaluated against, with `in_segment`
    /// answering for the person being evaluated.
    fn eval_ctx<'a>(
        &'a self,
        in_segment: &'a dyn Fn(&str) -> bool,
    ) -> crate::segment::eval::Ctx<'a> {
        crate::segment::eval::Ctx {
            channels: &self.channels,
            ids: &self.ids,
            groups: &self.groups,
            properties: &self.properties,
            now: self.now,
            rfm: self.rfm.map(|b| b.thresholds),
            in_segment,
        }
    }

    /// Persons matching an ad-hoc condition at the engine clock (a full scan).
    pub fn matching(&self, expr: &Expr) -> Vec<PersonId> {
        // Over the engine's threads, like the analytics: a preview of ten
        // million persons is a pass over gigabytes of person slots.
        self.fold_persons(
            |persons| {
                persons
                    .filter(|(slot, p)| {
                        let in_segment = |name: &str| self.in_segment(name, *slot);
                        crate::segment::eval::eval(expr, p, &self.eval_ctx(&in_segment))
                    })
                    .map(|(slot, _)| slot)
                    .collect::<Vec<_>>()
            },
            |mut a, b| {
                a.extend(b);
                a
            },
        )
    }

    // ---- reads ----

    /// The person an identity belongs to.
    /// A copy of the identity → person table, for a pass over the log
    /// that must not hold the engine (`scan.rs`): a memory copy of the
    /// identity table, not a walk over persons.
    pub fn identity_index(&self) -> crate::scan::IdentityIndex {
        crate::scan::IdentityIndex(self.ids.clone())
    }

    pub fn person_of(&self, identity: &str) -> Option<PersonId> {
        let (_, slot) = self.ids.lookup(identity)?;
        Some(slot)
    }

    /// The interned id of an identity. Ids are dense, in order of first
    /// appearance, and stay the same until the engine is rebuilt.
    pub fn identity_id(&self, identity: &str) -> Option<IdentityId> {
        self.ids.id_of(identity)
    }

    /// The person of every identity, by identity id: a copy a long pass
    /// resolves ids with, without the engine's lock (4 bytes per identity).
    pub fn person_of_each_identity(&self) -> Vec<PersonId> {
        (0..self.ids.len() as IdentityId)
            .map(|id| self.ids.slot_of(id))
            .collect()
    }

    /// The newest log offset applied ([`Engine::for_log`] engines; None
    /// before the first event or for other engines).
    pub fn last_log_offset(&self) -> Option<u64> {
        self.log_index.as_ref().and_then(LogIndex::last_offset)
    }

    /// The person a canonical id or any identity names.
    pub fn person(&self, slot: PersonId) -> Option<&Person> {
        self.persons.get(slot as usize).filter(|p| p.alive)
    }

    pub fn canonical_id(&self, slot: PersonId) -> &str {
        self.ids.get(self.persons[slot as usize].canonical)
    }

    /// How many identities are stitched into the person (a walk of their
    /// ring; 0 for an unknown slot).
    pub fn identity_count_of(&self, slot: PersonId) -> u32 {
        self.person(slot)
            .map_or(0, |p| self.ids.ring_len(p.canonical) as u32)
    }

    /// Every identity of a person, sorted.
    pub fn identities_of(&self, slot: PersonId) -> Vec<String> {
        let Some(p) = self.person(slot) else {
            return Vec::new();
        };
        let mut v: Vec<String> = self
            .ids
            .members(p.canonical)
            .into_iter()
            .map(|i| self.ids.get(i).to_string())
            .collect();
        v.sort();
        v
    }

    /// The log offsets of every event of a person's identities, newest
    /// first; None when this engine keeps no offsets (see
    /// [`Engine::for_log`]) or the person is unknown. May name events
    /// erased since (the store skips them).
    pub fn event_offsets(&self, slot: PersonId) -> Option<Vec<u64>> {
        let index = self.log_index.as_ref()?;
        let p = self.person(slot)?;
        let mut offsets: Vec<u64> = self
            .ids
            .members(p.canonical)
            .into_iter()
            .flat_map(|id| index.offsets(id))
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        Some(offsets)
    }

    /// Persons whose string trait `key` starts with `value` (a scan of the
    /// persons that have traits; at most `limit`).
    pub fn search_trait(&self, key: &str, value: &str, limit: usize) -> Vec<PersonId> {
        self.persons()
            .filter(|(_, p)| {
                p.extra
                    .as_ref()
                    .and_then(|e| e.traits().get(key))
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| v.starts_with(value))
            })
            .map(|(slot, _)| slot)
            .take(limit)
            .collect()
    }

    /// Persons having an identity that starts with `prefix` (distinct, at most `limit`).
    pub fn search_identity_prefix(&self, prefix: &str, limit: usize) -> Vec<PersonId> {
        let mut out = Vec::new();
        for id in self.ids.with_prefix(prefix, usize::MAX) {
            let slot = self.ids.slot_of(id);
            if !out.contains(&slot) {
                out.push(slot);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    /// Live persons (slot, state), in slot order.
    /// Lets whole-population passes (analytics, `start_live`) split the
    /// persons over `threads` threads.
    pub fn set_parallelism(&mut self, threads: usize) {
        self.parallelism = threads.max(1);
    }

    /// Folds the live persons in `parallelism` contiguous parts, one thread
    /// each, and merges the parts' results in slot order.
    pub fn fold_persons<R: Send>(
        &self,
        fold: impl Fn(&mut dyn Iterator<Item = (PersonId, &Person)>) -> R + Sync,
        merge: impl Fn(R, R) -> R,
    ) -> R {
        let n = self.persons.len();
        let parts = self.parallelism.min(n / MIN_PERSONS_PER_THREAD + 1).max(1);
        let run = |lo: usize, hi: usize| {
            let mut it = self
                .persons
                .range(lo, hi)
                .enumerate()
                .filter(|(_, p)| p.alive)
                .map(move |(i, p)| ((lo + i) as PersonId, p));
            fold(&mut it)
        };
        if parts == 1 {
            return run(0, n);
        }
        let bounds: Vec<usize> = (0..=parts).map(|k| k * n / parts).collect();
        let results: Vec<R> = std::thread::scope(|s| {
            let run = &run;
            let handles: Vec<_> = bounds
                .windows(2)
                .skip(1)
                .map(|w| {
                    let (lo, hi) = (w[0], w[1]);
                    s.spawn(move || run(lo, hi))
                })
                .collect();
            let first = run(bounds[0], bounds[1]);
            std::iter::once(first)
                .chain(
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("analytics worker panicked")),
                )
                .collect()
        });
        results
            .into_iter()
            .reduce(merge)
            .expect("at least one part")
    }

    pub fn persons(&self) -> impl Iterator<Item = (PersonId, &Person)> {
        self.persons
            .iter()
            .enumerate()
            .filter(|(_, p)| p.alive)
            .map(|(i, p)| (i as PersonId, p))
    }

    /// The identity string of an interned id.
    pub fn identity_str(&self, id: IdentityId) -> &str {
        self.ids.get(id)
    }

    /// Person of an interned identity id.
    pub fn person_of_id(&self, id: IdentityId) -> PersonId {
        self.ids.slot_of(id)
    }

    pub fn referrals(&self) -> &[Referral] {
        &self.referrals
    }

    /// Heap bytes of the engine state, by component: everything the
    /// engine holds that grows with persons, identities or events (the
    /// definitions and names are left out).
    pub fn memory(&self) -> Memory {
        let mut lists = 0;
        let mut extra = 0;
        let mut conversations = 0;
        for p in &self.persons {
            lists += p.lists_heap_bytes();
            extra += p.extra.as_ref().map_or(0, |e| e.heap_bytes());
            conversations += p.conversation_heap_bytes();
        }
        // The group names the extras' codes stand for.
        extra += self.groups.heap_bytes();
        let (log_events, log_identities) =
            self.log_index.as_ref().map_or((0, 0), LogIndex::heap_bytes);
        Memory {
            persons: self.persons.heap_bytes(),
            slots: self.persons.len(),
            identities: self.ids.heap_bytes(),
            event_lists: lists,
            extra,
            conversations,
            referrals: self.referrals.capacity() * std::mem::size_of::<Referral>(),
            segments: self.segments.heap_bytes(),
            log_index_events: log_events,
            log_index_identities: log_identities,
        }
    }

    /// Approximate heap bytes of the engine state.
    pub fn heap_bytes(&self) -> usize {
        self.memory().total()
    }

    /// Returns spare capacity after a bulk load (the big arrays grow in
    /// chunks and hold none to speak of; the referrals still double).
    pub fn shrink_to_fit(&mut self) {
        self.referrals.shrink_to_fit();
    }
}

/// Heap bytes by component (see [`Engine::memory`]).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Memory {
    /// The person slots (live and merged-away ones).
    pub persons: usize,
    /// Person slots in use (live and merged-away), not bytes.
    pub slots: usize,
    pub identities: usize,
    /// Purchase and read lists.
    pub event_lists: usize,
    /// `PersonExtra` boxes: groups, tags, traits, properties, exits.
    pub extra: usize,
    /// Conversation boxes (`Person::conversation`).
    pub conversations: usize,
    pub referrals: usize,
    pub segments: usize,
    /// [`Engine::for_log`]'s offsets: the per-event distances and the
    /// newest offset per identity.
    pub log_index_events: usize,
    pub log_index_identities: usize,
}

impl Memory {
    pub fn total(&self) -> usize {
        self.persons
            + self.identities
            + self.event_lists
            + self.extra
            + self.conversations
            + self.referrals
            + self.segments
            + self.log_index_events
            + self.log_index_identities
    }

    /// Bytes that grow with persons and identities.
    pub fn per_person_part(&self) -> usize {
        self.persons
            + self.identities
            + self.extra
            + self.conversations
            + self.segments
            + self.log_index_identities
    }

    /// Bytes that grow with events.
    pub fn per_event_part(&self) -> usize {
        self.event_lists + self.referrals + self.log_index_events
    }
}
