//! The identity graph: every `channel:id` string interned once, each
//! mapped to the person slot it belongs to, and each person's identities
//! chained in a ring so they can be listed without a scan.
//!
//! Links only ever join persons (identify/alias). A join relabels the
//! identities of the person with fewer of them (union by size), so every
//! identity's slot is exact at all times and resolving an identity is one
//! hash probe: the table entry holds the key inline and the slot. This is
//! the hot path of every event; see ARCHITECTURE.md for the numbers.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Dense index of an interned identity.
pub type IdentityId = u32;

/// The hash the identity table uses; bulk loaders compute it on parser
/// threads and pass it in.
pub fn identity_hash(s: &str) -> u64 {
    FixedState::default().hash_one(s.as_bytes())
}

const INLINE: usize = 23;

/// A table entry: the key inline when it fits (most identities do), the
/// identity id, and the person slot.
#[derive(Clone, Copy)]
struct Entry {
    slot: u32,
    id: IdentityId,
    len: u8,
    key: [u8; INLINE],
}

/// Interned identities with their person slots.
#[derive(Clone)]
pub struct IdentityGraph {
    bytes: Vec<u8>,
    /// Start of identity `i` in `bytes`; `starts[i + 1]` is its end.
    starts: Vec<u32>,
    table: HashTable<Entry>,
    /// Person slot of each identity (mirrors the table entries).
    slot: Vec<u32>,
    /// Ring of each person's identities.
    next: Vec<IdentityId>,
}

impl Default for IdentityGraph {
    fn default() -> Self {
        IdentityGraph {
            bytes: Vec::new(),
            starts: vec![0],
            table: HashTable::new(),
            slot: Vec::new(),
            next: Vec::new(),
        }
    }
}

impl IdentityGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many identities are interned.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The string of an interned identity.
    pub fn get(&self, id: IdentityId) -> &str {
        // Only `&str`s are interned, so the bytes are valid UTF-8.
        std::str::from_utf8(self.get_bytes(id)).unwrap_or("")
    }

    fn get_bytes(&self, id: IdentityId) -> &[u8] {
        let (a, b) = (self.starts[id as usize], self.starts[id as usize + 1]);
        &self.bytes[a as usize..b as usize]
    }

    fn matches(bytes: &[u8], starts: &[u32], e: &Entry, s: &[u8]) -> bool {
        if e.len as usize <= INLINE {
            e.len as usize == s.len() && &e.key[..s.len()] == s
        } else {
            let (a, b) = (
                starts[e.id as usize] as usize,
                starts[e.id as usize + 1] as usize,
            );
            &bytes[a..b] == s
        }
    }

    /// The id and person slot of `s`, if interned; `hash` is `identity_hash(s)`.
    pub fn lookup_hashed(&self, s: &str, hash: u64) -> Option<(IdentityId, u32)> {
        let (bytes, starts) = (&self.bytes, &self.starts);
        self.table
            .find(hash, |e| Self::matches(bytes, starts, e, s.as_bytes()))
            .map(|e| (e.id, e.slot))
    }

    pub fn lookup(&self, s: &str) -> Option<(IdentityId, u32)> {
        self.lookup_hashed(s, identity_hash(s))
    }

    /// Interns a new identity (the caller checked it is absent) into `slot`,
    /// as a ring of one.
    pub fn insert_hashed(&mut self, s: &str, hash: u64, slot: u32) -> IdentityId {
        let id = self.len() as IdentityId;
        self.bytes.extend_from_slice(s.as_bytes());
        self.starts.push(self.bytes.len() as u32);
        self.slot.push(slot);
        self.next.push(id);
        self.insert_entry(id, hash, slot);
        id
    }

    /// Adds the table entry of an identity already in the arena.
    fn insert_entry(&mut self, id: IdentityId, hash: u64, slot: u32) {
        let s = self.get_bytes(id);
        let mut key = [0u8; INLINE];
        let len = if s.len() <= INLINE {
            key[..s.len()].copy_from_slice(s);
            s.len() as u8
        } else {
            u8::MAX
        };
        let (bytes, starts) = (&self.bytes, &self.starts);
        self.table
            .insert_unique(hash, Entry { slot, id, len, key }, |e| {
                let (a, b) = (
                    starts[e.id as usize] as usize,
                    starts[e.id as usize + 1] as usize,
                );
                FixedState::default().hash_one(&bytes[a..b])
            });
    }

    /// Person slot of an identity.
    pub fn slot_of(&self, id: IdentityId) -> u32 {
        self.slot[id as usize]
    }

    /// Joins the rings of `a` and `b` (members of different persons).
    pub fn splice(&mut self, a: IdentityId, b: IdentityId) {
        self.next.swap(a as usize, b as usize);
    }

    /// Moves every identity in the ring of `member` to `slot`.
    pub fn relabel(&mut self, member: IdentityId, slot: u32) {
        for id in self.members(member) {
            self.slot[id as usize] = slot;
            let hash = identity_hash(self.get(id));
            if let Some(e) = self.table.find_mut(hash, |e| e.id == id) {
                e.slot = slot;
            }
        }
    }

    /// The identities in the ring of `member`.
    pub fn members(&self, member: IdentityId) -> Vec<IdentityId> {
        let mut out = vec![member];
        let mut y = self.next[member as usize];
        while y != member {
            out.push(y);
            y = self.next[y as usize];
        }
        out
    }

    /// The identity after `member` in its person's ring (`member` itself
    /// when it is alone): walking the ring without allocating.
    pub fn next_in_ring(&self, member: IdentityId) -> IdentityId {
        self.next[member as usize]
    }

    /// Identities starting with `prefix`, in id order (a scan of the arena).
    pub fn with_prefix(&self, prefix: &str, limit: usize) -> Vec<IdentityId> {
        (0..self.len() as IdentityId)
            .filter(|&id| self.get_bytes(id).starts_with(prefix.as_bytes()))
            .take(limit)
            .collect()
    }

    /// The graph as plain arrays (for snapshots): identity bytes, their
    /// starts, each identity's slot and ring successor.
    pub fn parts(&self) -> (&[u8], &[u32], &[u32], &[IdentityId]) {
        (&self.bytes, &self.starts, &self.slot, &self.next)
    }

    /// Rebuilds a graph from [`Self::parts`]; None if they are inconsistent.
    pub fn from_parts(
        bytes: Vec<u8>,
        starts: Vec<u32>,
        slot: Vec<u32>,
        next: Vec<IdentityId>,
    ) -> Option<Self> {
        let n = slot.len();
        let consistent = starts.len() == n + 1
            && next.len() == n
            && starts.first() == Some(&0)
            && starts.last().map(|&l| l as usize) == Some(bytes.len())
            && starts.windows(2).all(|w| w[0] <= w[1])
            && next.iter().all(|&x| (x as usize) < n)
            && std::str::from_utf8(&bytes).is_ok();
        if !consistent {
            return None;
        }
        let mut g = IdentityGraph {
            bytes,
            starts,
            table: HashTable::with_capacity(n),
            slot,
            next,
        };
        for id in 0..n as IdentityId {
            let hash = identity_hash(g.get(id));
            g.insert_entry(id, hash, g.slot[id as usize]);
        }
        Some(g)
    }

    /// Returns spare capacity (the hash table keeps its own sizing).
    pub fn shrink_to_fit(&mut self) {
        let headroom = self.len() / 16;
        self.bytes.shrink_to_fit();
        self.bytes.reserve_exact(self.bytes.len() / 16);
        for v in [&mut self.starts, &mut self.slot, &mut self.next] {
            v.shrink_to_fit();
            v.reserve_exact(headroom);
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + (self.starts.capacity() + self.slot.capacity() + self.next.capacity()) * 4
            + self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_maps_identities_to_slots() {
        let mut g = IdentityGraph::new();
        let long = "wechat:o6_bmjrPTlm6_2sgVt7hMZOPfL2M";
        let a = g.insert_hashed("wecom:a", identity_hash("wecom:a"), 7);
        let b = g.insert_hashed(long, identity_hash(long), 8);
        assert_eq!(g.lookup("wecom:a"), Some((a, 7)));
        assert_eq!(g.lookup(long), Some((b, 8)));
        assert_eq!(g.lookup("wecom:b"), None);
        assert_eq!(g.get(b), long);
        g.splice(a, b);
        g.relabel(b, 7);
        assert_eq!(g.lookup(long), Some((b, 7)));
        let mut m = g.members(a);
        m.sort();
        assert_eq!(m, vec![a, b]);
        assert_eq!(g.with_prefix("wecom", 10), vec![a]);
    }
}
