//! Where each identity's events are in the log: a chain of log offsets per
//! identity, newest first, so a person's timeline is read from the store
//! by primary key and the store needs no `(identity, ts)` index.
//!
//! Why: a secondary index with random keys costs a live append about one
//! written page per event once it outgrows a group commit (see
//! ARCHITECTURE.md, "Where the store's write cost goes"). The engine already
//! holds every identity and sees every event in log order, so it keeps the
//! index for ≈ 4 bytes per event plus 8 per identity instead.
//!
//! Layout: for the event at offset `o`, `back[o - base]` is how far back
//! the previous event of the same identity is (0: none); `newest[id]` is
//! where an identity's newest event is: its offset − base + 1 (0: none;
//! 4 bytes, not a u64 offset, per identity; beyond four billion events
//! from the base, [`FAR`] and the offset in a side map). Following the chain
//! from `newest` visits an identity's events newest first, one array read
//! per event. Distances that do not fit in 32 bits (logs beyond four
//! billion events) go to a side map.

use crate::chunked::Chunked;
use crate::identity::IdentityId;
use std::collections::HashMap;

/// Marks a distance stored in [`LogIndex::far`].
const FAR: u32 = u32::MAX;

/// A [`LogIndex`] as plain arrays, for snapshots.
pub struct Parts<'a> {
    pub base: u64,
    /// Distance back per offset from `base`, in chunks (together `len`).
    pub back: Vec<&'a [u32]>,
    pub back_len: usize,
    /// (offset, previous offset) of the far distances, by offset.
    pub far: Vec<(u64, u64)>,
    /// Newest offset per identity.
    pub newest: Vec<u64>,
}

/// The per-identity chains of log offsets (see the module docs).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct LogIndex {
    /// Offset of `back[0]` (0 until the first event is recorded).
    base: u64,
    back: Chunked<u32>,
    /// Offset → previous offset, for distances of [`FAR`] or more.
    far: HashMap<u64, u64>,
    /// Per identity: newest offset − base + 1, 0 for none, [`FAR`] for
    /// one in `far_newest`.
    newest: Chunked<u32>,
    far_newest: HashMap<IdentityId, u64>,
}

impl LogIndex {
    /// Records that the event at log `offset` has identity `id`. Offsets
    /// must increase from call to call (log order); an offset at or below
    /// the last one recorded is ignored, so a replay cannot corrupt chains.
    pub fn record(&mut self, id: IdentityId, offset: u64) {
        if offset == 0 {
            return;
        }
        if self.base == 0 {
            self.base = offset;
        }
        let next = self.base + self.back.len() as u64;
        if offset < next {
            return;
        }
        // Offsets skipped (erased, or appended by nobody) keep distance 0.
        let at = (offset - self.base) as usize;
        self.back.grow_to(at + 1, 0);
        let i = id as usize;
        self.newest.grow_to(i + 1, 0);
        let previous = self.newest(id);
        match offset - self.base + 1 {
            p if p < FAR as u64 => self.newest[i] = p as u32,
            _ => {
                self.newest[i] = FAR;
                self.far_newest.insert(id, offset);
            }
        }
        if previous != 0 {
            let distance = offset - previous;
            if distance < FAR as u64 {
                self.back[at] = distance as u32;
            } else {
                self.back[at] = FAR;
                self.far.insert(offset, previous);
            }
        }
    }

    /// The offset of identity `id`'s newest event (0: none).
    pub fn newest(&self, id: IdentityId) -> u64 {
        match self.newest.get(id as usize).copied().unwrap_or(0) {
            0 => 0,
            FAR => self.far_newest.get(&id).copied().unwrap_or(0),
            p => self.base + p as u64 - 1,
        }
    }

    /// The offsets of identity `id`'s events, newest first.
    pub fn offsets(&self, id: IdentityId) -> impl Iterator<Item = u64> + '_ {
        let mut at = self.newest(id);
        std::iter::from_fn(move || {
            if at == 0 {
                return None;
            }
            let here = at;
            at = match self
                .back
                .get((here - self.base) as usize)
                .copied()
                .unwrap_or(0)
            {
                0 => 0,
                FAR => self.far.get(&here).copied().unwrap_or(0),
                d => here - d as u64,
            };
            Some(here)
        })
    }

    /// The newest offset recorded (None before the first).
    pub fn last_offset(&self) -> Option<u64> {
        (!self.back.is_empty()).then(|| self.base + self.back.len() as u64 - 1)
    }

    /// Heap bytes held: (per event, per identity). The far map is
    /// counted per event (what it holds is per event).
    pub fn heap_bytes(&self) -> (usize, usize) {
        (
            self.back.heap_bytes() + self.far.capacity() * 24,
            self.newest.heap_bytes() + self.far_newest.capacity() * 16,
        )
    }

    /// The index as plain parts (snapshots).
    pub fn parts(&self) -> Parts<'_> {
        let mut far: Vec<(u64, u64)> = self.far.iter().map(|(&k, &v)| (k, v)).collect();
        far.sort_unstable();
        Parts {
            base: self.base,
            back: self.back.slices().collect(),
            back_len: self.back.len(),
            far,
            newest: (0..self.newest.len() as IdentityId)
                .map(|id| self.newest(id))
                .collect(),
        }
    }

    /// Rebuilds an index from [`Self::parts`]; None when they are
    /// inconsistent (a chain would leave the span or fail to descend).
    pub fn from_parts(
        base: u64,
        back: Vec<u32>,
        far: Vec<(u64, u64)>,
        newest: Vec<u64>,
    ) -> Option<Self> {
        let end = base + back.len() as u64;
        let inside = |o: u64| o == 0 || (o >= base && o < end);
        let far: HashMap<u64, u64> = far.into_iter().collect();
        let consistent = (base > 0 || back.is_empty())
            && newest.iter().all(|&o| inside(o))
            && back
                .iter()
                .enumerate()
                .all(|(i, &d)| d == FAR || d as u64 <= i as u64)
            && far.iter().all(|(&o, &p)| {
                inside(o) && p < o && inside(p) && back[(o - base) as usize] == FAR
            });
        if !consistent {
            return None;
        }
        let mut far_newest = HashMap::new();
        let newest: Vec<u32> = newest
            .iter()
            .enumerate()
            .map(|(id, &o)| match o {
                0 => 0,
                o if o - base + 1 < FAR as u64 => (o - base + 1) as u32,
                o => {
                    far_newest.insert(id as IdentityId, o);
                    FAR
                }
            })
            .collect();
        Some(LogIndex {
            base,
            back: Chunked::from(back),
            far,
            newest: Chunked::from(newest),
            far_newest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(ix: &LogIndex, id: IdentityId) -> Vec<u64> {
        ix.offsets(id).collect()
    }

    #[test]
    fn chains_list_each_identity_newest_first() {
        let mut ix = LogIndex::default();
        for (id, o) in [(0, 1), (1, 2), (0, 3), (2, 7), (0, 8), (1, 9)] {
            ix.record(id, o);
        }
        assert_eq!(chain(&ix, 0), [8, 3, 1]);
        assert_eq!(chain(&ix, 1), [9, 2]);
        assert_eq!(chain(&ix, 2), [7]);
        assert_eq!(chain(&ix, 3), Vec::<u64>::new());
        // An offset not above the last is ignored (a replayed event).
        ix.record(2, 9);
        assert_eq!(chain(&ix, 2), [7]);
        // The distances span offsets 1..=9.
        assert_eq!(ix.back.len(), 9);
    }

    #[test]
    fn a_log_may_start_anywhere_and_distances_may_be_far() {
        let mut ix = LogIndex::default();
        ix.record(0, 1_000);
        ix.record(0, 1_005);
        // Exercise the side map without allocating 4 GiB of distances.
        ix.back.grow_to(10, 0);
        ix.back[2] = FAR;
        ix.far.insert(1_002, 1_000);
        ix.newest[0] = 3;
        assert_eq!(chain(&ix, 0), [1_002, 1_000]);
        let p = ix.parts();
        let back_again = LogIndex::from_parts(p.base, p.back.concat(), p.far, p.newest);
        assert_eq!(back_again, Some(ix.clone()));
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        let mut ix = LogIndex::default();
        ix.record(0, 5);
        ix.record(0, 6);
        let p = ix.parts();
        let rebuild = |back: &[u32], newest: &[u64]| {
            LogIndex::from_parts(p.base, back.to_vec(), p.far.clone(), newest.to_vec())
        };
        assert!(rebuild(&p.back.concat(), &p.newest).is_some());
        // A distance reaching before the base.
        assert!(rebuild(&[0, 2], &p.newest).is_none());
        // A newest offset outside the span.
        assert!(rebuild(&p.back.concat(), &[99]).is_none());
    }

    #[test]
    fn the_arrays_grow_across_chunks_and_survive_parts() {
        let mut ix = LogIndex::default();
        // Identity i's events at offsets 1 + i and 1 + i + 3 * Chunked::<u32>::PER / 2:
        // both arrays cross chunk boundaries, and so do the chains.
        let n = Chunked::<u32>::PER + 10;
        for i in 0..n as u64 {
            ix.record(i as IdentityId, 1 + i);
        }
        let late = 1 + 3 * Chunked::<u32>::PER as u64 / 2;
        for i in (0..n as u64).step_by(99_991) {
            ix.record(i as IdentityId, late + i);
        }
        for i in (0..n as u64).step_by(99_991) {
            assert_eq!(chain(&ix, i as IdentityId), [late + i, 1 + i]);
        }
        assert_eq!(chain(&ix, 5), [6]);
        let newest = (0..n as u64).step_by(99_991).last().unwrap();
        assert_eq!(ix.last_offset(), Some(late + newest));
        let p = ix.parts();
        assert_eq!(p.back.iter().map(|c| c.len()).sum::<usize>(), p.back_len);
        let again = LogIndex::from_parts(p.base, p.back.concat(), p.far, p.newest).unwrap();
        assert_eq!(again, ix);
        for i in (0..n as u64).step_by(99_991) {
            assert_eq!(chain(&again, i as IdentityId), [late + i, 1 + i]);
        }
    }
}
