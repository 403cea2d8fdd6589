//! Live membership: every saved segment's members, kept exact by
//! re-evaluating only the persons an event touched, and by timers that fire
//! the instant a time window lapses (no periodic full recompute).
//!
//! Invariant (checked against a full recompute in the tests): after any
//! sequence of `after_event` and `fire_timers` calls, the member bits equal
//! evaluating every segment for every live person at the current clock.

use super::ast::Expr;
use super::eval::{decided_without_clock, eval, next_change, Ctx};
use crate::chunked::Chunked;
use crate::engine::MIN_PERSONS_PER_THREAD;
use crate::identity::{IdentityGraph, IdentityId};
use crate::person::Person;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A person entering or leaving a segment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct SegmentChange {
    /// Index of the segment (see [`LiveSegments::index_of`]).
    pub segment: u32,
    /// The person's slot after the change (a merged-away slot on exits).
    pub person: u32,
    /// Canonical id: on an exit, as it was when the person was a member.
    pub canonical_id: String,
    pub entered: bool,
    /// The engine clock when the change happened.
    pub at: i64,
}

/// A saved segment and its members.
pub struct Segment {
    pub name: String,
    pub version: u32,
    pub source: String,
    pub expr: Expr,
    members: Vec<u64>,
    count: usize,
    time_dependent: bool,
}

impl Segment {
    fn get(&self, slot: u32) -> bool {
        self.members
            .get(slot as usize / 64)
            .is_some_and(|w| w >> (slot % 64) & 1 == 1)
    }

    fn set(&mut self, slot: u32, on: bool) {
        let i = slot as usize / 64;
        if i >= self.members.len() {
            if !on {
                return;
            }
            self.members.resize(i + 1, 0);
        }
        let bit = 1u64 << (slot % 64);
        let was = self.members[i] & bit != 0;
        if was != on {
            self.members[i] ^= bit;
            if on {
                self.count += 1;
            } else {
                self.count -= 1;
            }
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Member slots in slot order.
    pub fn members(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

/// What segment evaluation reads from the engine.
pub struct World<'a> {
    pub persons: &'a Chunked<Person>,
    pub ids: &'a IdentityGraph,
    pub channels: &'a [String],
    pub groups: &'a crate::person::GroupNames,
    pub properties: &'a [crate::property::PropertyDef],
    /// The thresholds `rfm_layer` is read against.
    pub rfm: Option<crate::rfm::RfmThresholds>,
}

/// Why a segment cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment name `{0}` must be 1..64 characters of letters, digits, `_` or `-`")]
    BadName(String),
    #[error(
        "segment `{segment}` reads segment `{missing}`, which does not exist (define it first)"
    )]
    UnknownSegment { segment: String, missing: String },
    #[error(
        "segment `{0}` cannot read itself or a segment defined after it (that would be a cycle)"
    )]
    Cycle(String),
    #[error("segment `{segment}` reads property `prop.{missing}`, which is not defined")]
    UnknownProperty { segment: String, missing: String },
    #[error(
        "segment `{segment}` compares rfm_layer with {found}; the layers are {}",
        crate::rfm::RfmLayer::names()
    )]
    UnknownRfmLayer { segment: String, found: String },
    #[error("segment `{segment}`: {error}")]
    TooDeep {
        segment: String,
        error: super::ast::TooDeep,
    },
}

/// All saved segments, their members and pending window timers.
#[derive(Default)]
pub struct LiveSegments {
    segments: Vec<Segment>,
    live: bool,
    timers: BinaryHeap<Reverse<(i64, u32)>>,
    /// Per slot: the earliest pending timer ([`NO_TIMER`] if none), in
    /// [`timer_key`]'s 4 bytes (the heap holds the exact instants).
    timer_at: Vec<u32>,
}

/// No pending timer for the slot.
const NO_TIMER: u32 = u32::MAX;

/// A timer's instant as kept per slot: epoch seconds, as event times are.
/// Instants outside `0..u32::MAX` are clamped; two of them then share a
/// key, and a stale heap entry may fire: a harmless re-evaluation.
fn timer_key(t: i64) -> u32 {
    t.clamp(0, i64::from(NO_TIMER) - 1) as u32
}

impl LiveSegments {
    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.segments
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as u32)
    }

    pub fn grow(&mut self, slots: usize) {
        if self.timer_at.len() < slots {
            self.timer_at.resize(slots, NO_TIMER);
        }
    }

    /// Drops per-slot state beyond `slots` persons (the engine compacted
    /// its slots in bulk mode, when no slot is a member or has a timer).
    pub(crate) fn truncate_slots(&mut self, slots: usize) {
        debug_assert!(!self.live && self.timers.is_empty());
        self.timer_at.truncate(slots);
        self.timer_at.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.members.capacity() * 8)
            .sum::<usize>()
            + self.timers.capacity() * 16
            + self.timer_at.capacity() * 4
    }

    /// Saves a segment (a new name, or a new version of an existing one).
    /// Returns its index. Membership is computed by [`Self::evaluate_segment`].
    pub fn define(&mut self, name: &str, expr: Expr, source: String) -> Result<u32, SegmentError> {
        let ok = !name.is_empty()
            && name.chars().count() <= 64
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(SegmentError::BadName(name.to_string()));
        }
        // Every walk below and every later evaluation recurses over the tree.
        expr.check_depth().map_err(|error| SegmentError::TooDeep {
            segment: name.to_string(),
            error,
        })?;
        if let Some(found) = expr.unknown_rfm_layer() {
            return Err(SegmentError::UnknownRfmLayer {
                segment: name.to_string(),
                found: format!("{found:?}"),
            });
        }
        let existing = self.index_of(name);
        let mut refs = Vec::new();
        expr.segment_refs(&mut refs);
        for r in refs {
            match self.index_of(&r) {
                None => {
                    return Err(SegmentError::UnknownSegment {
                        segment: name.into(),
                        missing: r,
                    })
                }
                Some(i) if existing.is_some_and(|e| i >= e) => {
                    return Err(SegmentError::Cycle(name.into()))
                }
                Some(_) => {}
            }
        }
        let time_dependent = expr.is_time_dependent();
        match existing {
            Some(i) => {
                let s = &mut self.segments[i as usize];
                s.version += 1;
                s.expr = expr;
                s.source = source;
                s.time_dependent = time_dependent;
                Ok(i)
            }
            None => {
                self.segments.push(Segment {
                    name: name.to_string(),
                    version: 1,
                    source,
                    expr,
                    members: Vec::new(),
                    count: 0,
                    time_dependent,
                });
                Ok(self.segments.len() as u32 - 1)
            }
        }
    }

    /// Deletes a saved segment and its members (the other segments keep
    /// theirs: none may read it, see [`Self::readers_of`]). Returns its
    /// last version; None if there is no such segment. Pending window
    /// timers of its members stay queued and are harmless: a timer only
    /// re-evaluates the segments that exist when it fires.
    pub fn remove(&mut self, name: &str) -> Option<u32> {
        let i = self.index_of(name)?;
        Some(self.segments.remove(i as usize).version)
    }

    /// The saved segments whose definition reads segment `name`
    /// (`in_segment("name")`), in definition order.
    pub fn readers_of(&self, name: &str) -> Vec<String> {
        self.segments
            .iter()
            .filter(|s| {
                let mut refs = Vec::new();
                s.expr.segment_refs(&mut refs);
                refs.iter().any(|r| r == name)
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Sets a segment's version number (a stored definition restores the
    /// number it was saved under, so a number is never given twice).
    pub fn set_version(&mut self, name: &str, version: u32) {
        if let Some(i) = self.index_of(name) {
            self.segments[i as usize].version = version;
        }
    }

    /// Evaluates every segment for one person, in definition order (so
    /// `in_segment` sees the fresh verdicts of earlier segments).
    fn verdicts(&self, w: &World<'_>, slot: u32, now: i64) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.segments.len());
        self.verdicts_into(w, slot, now, &mut out);
        out
    }

    /// [`Self::verdicts`] into a reused buffer (the full recompute calls it
    /// once per person).
    fn verdicts_into(&self, w: &World<'_>, slot: u32, now: i64, out: &mut Vec<bool>) {
        out.clear();
        let p = &w.persons[slot as usize];
        for s in &self.segments {
            let v = {
                let lookup = |name: &str| {
                    self.index_of(name)
                        .is_some_and(|j| out.get(j as usize) == Some(&true))
                };
                let ctx = Ctx {
                    channels: w.channels,
                    ids: w.ids,
                    groups: w.groups,
                    properties: w.properties,
                    now,
                    rfm: w.rfm,
                    in_segment: &lookup,
                };
                p.alive && eval(&s.expr, p, &ctx)
            };
            out.push(v);
        }
    }

    /// When the clock alone could next change any verdict for this person.
    fn next_timer(&self, w: &World<'_>, slot: u32, now: i64) -> Option<i64> {
        let p = &w.persons[slot as usize];
        let lookup = |name: &str| self.index_of(name).is_some_and(|j| self.is_member(j, slot));
        let ctx = Ctx {
            channels: w.channels,
            ids: w.ids,
            groups: w.groups,
            properties: w.properties,
            now,
            rfm: w.rfm,
            in_segment: &lookup,
        };
        self.segments
            .iter()
            .filter(|s| s.time_dependent && !decided_without_clock(&s.expr, p, &ctx))
            .filter_map(|s| next_change(&s.expr, p, w.properties, w.rfm.as_ref(), now))
            .min()
    }

    fn schedule(&mut self, w: &World<'_>, slot: u32, now: i64) {
        let next = self.next_timer(w, slot, now);
        self.grow(slot as usize + 1);
        if let Some(t) = next {
            let cur = self.timer_at[slot as usize];
            if timer_key(t) < cur || (cur != NO_TIMER && i64::from(cur) <= now) {
                self.timer_at[slot as usize] = timer_key(t);
                self.timers.push(Reverse((t, slot)));
            }
        }
    }

    /// Computes every membership from scratch and turns live mode on,
    /// splitting the persons over `threads` threads.
    pub fn start(&mut self, w: &World<'_>, now: i64, threads: usize) {
        self.live = true;
        self.timers.clear();
        self.timer_at.clear();
        self.grow(w.persons.len());
        for s in &mut self.segments {
            s.members.clear();
            s.count = 0;
        }
        let n = w.persons.len();
        let parts = threads.clamp(1, n / MIN_PERSONS_PER_THREAD + 1);
        let bounds: Vec<usize> = (0..=parts).map(|k| k * n / parts).collect();
        let this = &*self;
        // Phase 1, parallel: every person's verdicts (one bit per segment).
        let per_part = |f: &(dyn Fn(usize, usize) -> Vec<(u32, u64)> + Sync)| -> Vec<(u32, u64)> {
            std::thread::scope(|s| {
                let handles: Vec<_> = bounds
                    .windows(2)
                    .map(|b| {
                        let (lo, hi) = (b[0], b[1]);
                        s.spawn(move || f(lo, hi))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("segment worker panicked"))
                    .collect()
            })
        };
        let wide = self.segments.len() > 64;
        let verdicts = per_part(&|lo, hi| {
            let mut v = Vec::with_capacity(this.segments.len());
            let mut out = Vec::new();
            for slot in lo as u32..hi as u32 {
                if !w.persons[slot as usize].alive {
                    continue;
                }
                this.verdicts_into(w, slot, now, &mut v);
                let mask = v
                    .iter()
                    .take(64)
                    .enumerate()
                    .fold(0u64, |m, (i, on)| m | (*on as u64) << i);
                if mask != 0 || wide {
                    out.push((slot, mask));
                }
            }
            out
        });
        // Phase 2: set the bits.
        if wide {
            let mut v = Vec::new();
            for &(slot, _) in &verdicts {
                self.verdicts_into(w, slot, now, &mut v);
                for (s, on) in self.segments.iter_mut().zip(&v) {
                    s.set(slot, *on);
                }
            }
        } else {
            for &(slot, mask) in &verdicts {
                for (i, s) in self.segments.iter_mut().enumerate() {
                    if mask >> i & 1 == 1 {
                        s.set(slot, true);
                    }
                }
            }
        }
        // Phase 3, parallel: window-expiry timers (they read the bits).
        if self.segments.iter().any(|s| s.time_dependent) {
            let this = &*self;
            let timers = per_part(&|lo, hi| {
                (lo as u32..hi as u32)
                    .filter(|&slot| w.persons[slot as usize].alive)
                    .filter_map(|slot| this.next_timer(w, slot, now).map(|t| (slot, t as u64)))
                    .collect()
            });
            let mut heap = Vec::with_capacity(timers.len());
            for (slot, t) in timers {
                self.timer_at[slot as usize] = timer_key(t as i64);
                heap.push(Reverse((t as i64, slot)));
            }
            // One O(n) heapify instead of n pushes.
            self.timers = BinaryHeap::from(heap);
        }
    }

    /// Updates memberships after one event. `touched` holds the persons the
    /// event involved before it was applied (slot, canonical id then);
    /// `slot` is the person the event belongs to now.
    pub fn after_event(
        &mut self,
        w: &World<'_>,
        slot: u32,
        touched: &[Option<(u32, IdentityId)>; 2],
        now: i64,
    ) -> Vec<SegmentChange> {
        let verdicts = self.verdicts(w, slot, now);
        let canonical_now = w.persons[slot as usize].canonical;
        let mut changes = Vec::new();
        for (i, (s, on)) in self.segments.iter_mut().zip(verdicts).enumerate() {
            let mut before: Vec<(IdentityId, u32)> = Vec::new();
            for &(t_slot, t_canon) in touched.iter().flatten() {
                if s.get(t_slot) {
                    before.push((t_canon, t_slot));
                }
                s.set(t_slot, false);
            }
            s.set(slot, on);
            let stays = |c: IdentityId| on && c == canonical_now;
            let mut exits: Vec<(&str, u32)> = before
                .iter()
                .filter(|(c, _)| !stays(*c))
                .map(|&(c, sl)| (w.ids.get(c), sl))
                .collect();
            exits.sort_unstable();
            exits.dedup();
            for (c, sl) in exits {
                changes.push(SegmentChange {
                    segment: i as u32,
                    person: sl,
                    canonical_id: c.to_string(),
                    entered: false,
                    at: now,
                });
            }
            if on && !before.iter().any(|(c, _)| *c == canonical_now) {
                changes.push(SegmentChange {
                    segment: i as u32,
                    person: slot,
                    canonical_id: w.ids.get(canonical_now).to_string(),
                    entered: true,
                    at: now,
                });
            }
        }
        self.schedule(w, slot, now);
        changes
    }

    /// Re-evaluates one person whose canonical id did not change (a trait
    /// update, a timer).
    pub fn reevaluate(&mut self, w: &World<'_>, slot: u32, now: i64) -> Vec<SegmentChange> {
        let canonical = w.persons[slot as usize].canonical;
        self.after_event(w, slot, &[Some((slot, canonical)), None], now)
    }

    /// Fires every timer due at or before `now`, each at its own instant.
    pub fn fire_timers(&mut self, w: &World<'_>, now: i64) -> Vec<SegmentChange> {
        let mut changes = Vec::new();
        while let Some(&Reverse((t, slot))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.timer_at.get(slot as usize) != Some(&timer_key(t))
                || !w.persons[slot as usize].alive
            {
                continue;
            }
            self.timer_at[slot as usize] = NO_TIMER;
            changes.extend(self.reevaluate(w, slot, t));
        }
        changes
    }

    /// Re-evaluates every segment for every person (the thresholds
    /// `rfm_layer` reads changed); returns the changes.
    pub fn reevaluate_all(&mut self, w: &World<'_>, now: i64) -> Vec<SegmentChange> {
        let mut changes = Vec::new();
        for slot in 0..w.persons.len() as u32 {
            if w.persons[slot as usize].alive {
                changes.extend(self.reevaluate(w, slot, now));
            }
        }
        changes
    }

    /// Recomputes one segment for every person (after it is defined or
    /// redefined while live); returns the changes.
    pub fn evaluate_segment(&mut self, w: &World<'_>, index: u32, now: i64) -> Vec<SegmentChange> {
        let mut changes = Vec::new();
        for slot in 0..w.persons.len() as u32 {
            let p = &w.persons[slot as usize];
            if !p.alive {
                continue;
            }
            let on = self.verdicts(w, slot, now)[index as usize];
            let s = &mut self.segments[index as usize];
            if s.get(slot) != on {
                s.set(slot, on);
                changes.push(SegmentChange {
                    segment: index,
                    person: slot,
                    canonical_id: w.ids.get(p.canonical).to_string(),
                    entered: on,
                    at: now,
                });
            }
            self.schedule(w, slot, now);
        }
        changes
    }

    /// Whether a person is a member of segment `index`.
    pub fn is_member(&self, index: u32, slot: u32) -> bool {
        self.segments
            .get(index as usize)
            .is_some_and(|s| s.get(slot))
    }
}
