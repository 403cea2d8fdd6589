//! The identity graph: every `channel:id` string interned once, each
//! mapped to the person slot it belongs to, and each person's identities
//! chained in a ring so they can be listed without a scan.
//!
//! Links only ever join persons (identify/alias). A join relabels the
//! identities of the person with fewer of them (union by size), so every
//! identity's slot is exact at all times and resolving an identity is one
//! hash probe and one read of the key in the arena: an 8-byte bucket
//! holds a 32-bit tag of the hash and the identity id, and the key's
//! place and the slot are read by id. (hashbrown entries of 16 bytes that
//! held the slot and the key's place took one cache miss less when probed
//! alone, but their chain of dependent reads could not be started ahead
//! of time; buckets that are plain words can: `Engine::apply_batch_with`
//! reads a block's buckets, then keys and persons, before applying it.)
//! This is the hot path of every event; see ARCHITECTURE.md for the
//! numbers.
//!
//! The table is [`SHARDS`] tables, picked by hash bits the tables do not
//! use themselves, so growing never rehashes more than 1/256 of the
//! identities at once: a whole-table doubling stops the writer for time
//! in proportion to the identities (as the store's client-id index did:
//! 1.0 s at 14.7M ids, `siyu_store::id_index`).

use crate::chunked::Chunked;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;

/// Dense index of an interned identity.
pub type IdentityId = u32;

/// The hash the identity table uses; bulk loaders compute it on parser
/// threads and pass it in.
pub fn identity_hash(s: &str) -> u64 {
    identity_hash_bytes(s.as_bytes())
}

fn identity_hash_bytes(s: &[u8]) -> u64 {
    FixedState::default().hash_one(s)
}

/// Tables the identity table is split into (see the module docs).
const SHARDS: usize = 256;

/// The shard of a hash: bits 48..56, which the shards use for neither the
/// bucket nor the tag (the low 32 bits).
fn shard(hash: u64) -> usize {
    (hash >> 48) as usize % SHARDS
}

/// `a == b`, inline: identities are 10 to 40
/// bytes, where a call to `memcmp` costs more than the compare. Compares
/// eight bytes at a time, the last word overlapping the one before.
#[inline]
fn same_len_and_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// An empty bucket (no identity has id `u32::MAX`: ids are below the
/// arena's `u32` offsets).
const EMPTY: u64 = u64::MAX;

/// One shard of the table: open addressing with linear probing over
/// 8-byte buckets, `tag << 32 | id`, where the tag is the hash's low 32
/// bits and also picks the home bucket. The key and the person slot are
/// read by id (`starts`, `slot`), so a bucket is all the table holds, a
/// merge changes no bucket, and growing re-places buckets by their tags
/// without hashing a key again. Identities are never removed.
#[derive(Clone, Default)]
struct Shard {
    /// A power of two long (or empty); at most 7/8 full.
    buckets: Vec<u64>,
    len: usize,
}

impl Shard {
    fn with_capacity(n: usize) -> Shard {
        let mut s = Shard::default();
        if n > 0 {
            s.buckets = vec![EMPTY; (n * 8 / 7 + 1).next_power_of_two()];
        }
        s
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The ids whose tag is `tag`, in probe order, until an empty bucket.
    fn candidates(&self, tag: u32) -> impl Iterator<Item = IdentityId> + '_ {
        let mask = self.mask();
        let mut i = tag as usize & mask;
        let mut done = self.buckets.is_empty();
        std::iter::from_fn(move || {
            while !done {
                let b = self.buckets[i];
                if b == EMPTY {
                    done = true;
                    break;
                }
                i = (i + 1) & mask;
                if (b >> 32) as u32 == tag {
                    return Some(b as IdentityId);
                }
            }
            None
        })
    }

    /// The home bucket of `tag` (a read that brings its cache line in).
    fn home(&self, tag: u32) -> u64 {
        self.buckets
            .get(tag as usize & self.mask())
            .copied()
            .unwrap_or(0)
    }

    fn insert(&mut self, tag: u32, id: IdentityId) {
        if (self.len + 1) * 8 > self.buckets.len() * 7 {
            self.grow();
        }
        Self::place(&mut self.buckets, tag, id);
        self.len += 1;
    }

    fn place(buckets: &mut [u64], tag: u32, id: IdentityId) {
        let mask = buckets.len() - 1;
        let mut i = tag as usize & mask;
        while buckets[i] != EMPTY {
            i = (i + 1) & mask;
        }
        buckets[i] = (tag as u64) << 32 | id as u64;
    }

    fn grow(&mut self) {
        let mut bigger = vec![EMPTY; (self.buckets.len() * 2).max(16)];
        for &b in self.buckets.iter().filter(|&&b| b != EMPTY) {
            Self::place(&mut bigger, (b >> 32) as u32, b as IdentityId);
        }
        self.buckets = bigger;
    }
}

/// Whether `next` maps `0..n` onto itself one to one: then it is made of
/// rings only, and every walk around one returns to where it started.
fn is_permutation(next: &[IdentityId]) -> bool {
    let mut seen = vec![false; next.len()];
    next.iter().all(|&x| {
        seen.get_mut(x as usize)
            .is_some_and(|s| !std::mem::replace(s, true))
    })
}

fn empty_tables(capacity: usize) -> Vec<Shard> {
    (0..SHARDS)
        .map(|_| Shard::with_capacity(capacity / SHARDS))
        .collect()
}

/// Bytes per arena chunk (a key longer than this gets a chunk of its own).
const ARENA_CHUNK: usize = 1 << 20;
/// The offset bits of an arena position; the bits above are the chunk.
const ARENA_SHIFT: u32 = ARENA_CHUNK.trailing_zeros();

/// An arena position (`starts`) as (chunk, offset in it).
#[inline]
fn arena_place(position: u32) -> (usize, usize) {
    (
        (position >> ARENA_SHIFT) as usize,
        position as usize & (ARENA_CHUNK - 1),
    )
}

/// Interned identities with their person slots. Every array grows in
/// chunks and never copies itself (`crate::chunked` says why): the keys'
/// bytes in chunks of [`ARENA_CHUNK`] that no key crosses, the
/// per-identity arrays in [`Chunked`].
#[derive(Clone)]
pub struct IdentityGraph {
    /// The keys, end to end within a chunk; a key that does not fit in
    /// the rest of a chunk starts the next one.
    arena: Vec<Vec<u8>>,
    /// Where identity `i` starts, as `chunk << ARENA_SHIFT | offset`;
    /// `starts[i + 1]` is where it ends if that is in the same chunk,
    /// else it is the last key of its chunk and ends with the chunk.
    /// One more entry than identities: where the next key goes.
    starts: Chunked<u32>,
    /// [`SHARDS`] tables ([`shard`]).
    table: Vec<Shard>,
    /// Person slot of each identity.
    slot: Chunked<u32>,
    /// Ring of each person's identities.
    next: Chunked<IdentityId>,
}

impl Default for IdentityGraph {
    fn default() -> Self {
        IdentityGraph {
            arena: Vec::new(),
            starts: std::iter::once(0).collect(),
            table: empty_tables(0),
            slot: Chunked::new(),
            next: Chunked::new(),
        }
    }
}

/// An identity graph as plain pieces, for snapshots: the keys' bytes end
/// to end (in pieces), each identity's slot and ring successor. The
/// keys' starts in those bytes are [`IdentityGraph::key_starts`].
pub struct GraphParts<'a> {
    pub bytes: Vec<&'a [u8]>,
    pub slot: &'a Chunked<u32>,
    pub next: &'a Chunked<IdentityId>,
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

    #[inline]
    fn get_bytes(&self, id: IdentityId) -> &[u8] {
        let (chunk, from) = arena_place(self.starts[id as usize]);
        let bytes = &self.arena[chunk];
        match arena_place(self.starts[id as usize + 1]) {
            (same, to) if same == chunk => &bytes[from..to],
            _ => &bytes[from..],
        }
    }

    /// The id and person slot of `s`, if interned; `hash` is `identity_hash(s)`.
    pub fn lookup_hashed(&self, s: &str, hash: u64) -> Option<(IdentityId, u32)> {
        self.id_hashed(s, hash)
            .map(|id| (id, self.slot[id as usize]))
    }

    /// The id of `s`, if interned (no read of its slot).
    pub fn id_of(&self, s: &str) -> Option<IdentityId> {
        self.id_hashed(s, identity_hash(s))
    }

    fn id_hashed(&self, s: &str, hash: u64) -> Option<IdentityId> {
        self.table[shard(hash)]
            .candidates(hash as u32)
            .find(|&id| same_len_and_bytes(self.get_bytes(id), s.as_bytes()))
    }

    /// Reads the bucket where [`Self::lookup_hashed`] starts for `hash`.
    /// With [`Self::likely_id`] and [`Self::warm_key`], this lets a bulk
    /// loader bring a block of events' table lines, keys and persons into
    /// the cache with independent reads, many misses in flight at once,
    /// before applying the events one by one (where each miss would be
    /// waited for in turn). The value returned is only for
    /// `std::hint::black_box`.
    pub fn warm_bucket(&self, hash: u64) -> u64 {
        self.table[shard(hash)].home(hash as u32)
    }

    /// The first identity whose tag matches `hash` (likely, not surely,
    /// the one with that key), for warming its key, slot and person.
    pub fn likely_id(&self, hash: u64) -> Option<IdentityId> {
        self.table[shard(hash)].candidates(hash as u32).next()
    }

    /// Reads the first byte of `id`'s key (see [`Self::warm_bucket`]).
    pub fn warm_key(&self, id: IdentityId) -> u8 {
        let (chunk, at) = arena_place(self.starts.get(id as usize).copied().unwrap_or(0));
        self.arena
            .get(chunk)
            .and_then(|c| c.get(at))
            .copied()
            .unwrap_or(0)
    }

    pub fn lookup(&self, s: &str) -> Option<(IdentityId, u32)> {
        self.lookup_hashed(s, identity_hash(s))
    }

    /// Interns a new identity (the caller checked it is absent) into `slot`,
    /// as a ring of one.
    pub fn insert_hashed(&mut self, s: &str, hash: u64, slot: u32) -> IdentityId {
        let id = self.len() as IdentityId;
        self.put_key(s.as_bytes());
        self.slot.push(slot);
        self.next.push(id);
        self.insert_entry(id, hash);
        id
    }

    /// Appends a key to the arena and its end to `starts`.
    fn put_key(&mut self, key: &[u8]) {
        let at = self.len();
        let (chunk, used) = arena_place(self.starts[at]);
        if chunk == self.arena.len() || used + key.len() > ARENA_CHUNK {
            // A new chunk (the rest of the last one stays unused): the
            // previous key now ends with its chunk.
            let chunk = self.arena.len();
            self.arena
                .push(Vec::with_capacity(ARENA_CHUNK.max(key.len())));
            self.starts[at] = (chunk as u32) << ARENA_SHIFT;
        }
        let chunk = self.arena.len() - 1;
        let last = &mut self.arena[chunk];
        last.extend_from_slice(key);
        let end = if last.len() >= ARENA_CHUNK {
            (chunk as u32 + 1) << ARENA_SHIFT
        } else {
            (chunk as u32) << ARENA_SHIFT | last.len() as u32
        };
        self.starts.push(end);
    }

    /// Adds the table entry of an identity already in the arena.
    fn insert_entry(&mut self, id: IdentityId, hash: u64) {
        self.table[shard(hash)].insert(hash as u32, id);
    }

    /// Person slot of an identity.
    pub fn slot_of(&self, id: IdentityId) -> u32 {
        self.slot[id as usize]
    }

    /// Renumbers every identity's person slot: `remap[old] = new`
    /// (the engine dropping merged-away slots).
    pub(crate) fn remap_slots(&mut self, remap: &[u32]) {
        for s in self.slot.iter_mut() {
            *s = remap[*s as usize];
        }
    }

    /// Joins the rings of `a` and `b` (members of different persons).
    pub fn splice(&mut self, a: IdentityId, b: IdentityId) {
        self.next.swap(a as usize, b as usize);
    }

    /// Moves every identity in the ring of `member` to `slot`.
    pub fn relabel(&mut self, member: IdentityId, slot: u32) {
        let mut id = member;
        loop {
            self.slot[id as usize] = slot;
            id = self.next[id as usize];
            if id == member {
                break;
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

    /// How many identities the ring of `member` holds (the person's
    /// identity count: a walk, as persons keep no count).
    pub fn ring_len(&self, member: IdentityId) -> usize {
        let mut n = 1;
        let mut y = self.next[member as usize];
        while y != member {
            n += 1;
            y = self.next[y as usize];
        }
        n
    }

    /// Whether the ring of `a` holds at least as many identities as the
    /// ring of `b` (two different rings): both are walked in step, so the
    /// cost is the smaller ring's length, as with a stored count.
    pub fn ring_at_least_as_long(&self, a: IdentityId, b: IdentityId) -> bool {
        let (mut x, mut y) = (self.next[a as usize], self.next[b as usize]);
        loop {
            if y == b {
                return true;
            }
            if x == a {
                return false;
            }
            x = self.next[x as usize];
            y = self.next[y as usize];
        }
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

    /// The graph as plain pieces (for snapshots).
    pub fn parts(&self) -> GraphParts<'_> {
        GraphParts {
            bytes: self.arena.iter().map(Vec::as_slice).collect(),
            slot: &self.slot,
            next: &self.next,
        }
    }

    /// Where each key starts in [`GraphParts::bytes`] end to end, and
    /// where the last one ends (one more than identities).
    pub fn key_starts(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(0).chain((0..self.len() as IdentityId).scan(0u32, |at, id| {
            *at += self.get_bytes(id).len() as u32;
            Some(*at)
        }))
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
            && is_permutation(&next)
            && std::str::from_utf8(&bytes).is_ok();
        if !consistent {
            return None;
        }
        let mut g = IdentityGraph {
            table: empty_tables(n),
            slot: slot.into(),
            next: next.into(),
            ..IdentityGraph::default()
        };
        for w in starts.windows(2) {
            let key = &bytes[w[0] as usize..w[1] as usize];
            g.put_key(key);
            let id = g.len() as IdentityId - 1;
            g.insert_entry(id, identity_hash_bytes(key));
        }
        Some(g)
    }

    /// Heap bytes held: the arena, the per-identity arrays and the
    /// tables' allocations (buckets, control bytes, empty buckets too).
    pub fn heap_bytes(&self) -> usize {
        self.arena.iter().map(Vec::capacity).sum::<usize>()
            + self.arena.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.starts.heap_bytes()
            + self.slot.heap_bytes()
            + self.next.heap_bytes()
            + self.table.capacity() * std::mem::size_of::<Shard>()
            + self
                .table
                .iter()
                .map(|t| t.buckets.capacity() * 8)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of every length, some that do not fit in the rest of their
    /// chunk, one longer than a chunk and an empty one: each reads back
    /// whole, and the parts (keys end to end) rebuild the same graph.
    #[test]
    fn keys_never_cross_a_chunk_and_read_back_whole() {
        let mut g = IdentityGraph::new();
        let mut keys: Vec<String> = Vec::new();
        for i in 0..40_000usize {
            let key = match i {
                7 => String::new(),
                20_000 => "x".repeat(ARENA_CHUNK + ARENA_CHUNK / 2),
                _ => format!("wecom:{i}:{}", "ab".repeat(i % 97)),
            };
            g.insert_hashed(&key, identity_hash(&key), i as u32);
            keys.push(key);
        }
        assert!(g.arena.len() > 3, "{} chunks", g.arena.len());
        assert!(g
            .arena
            .iter()
            .all(|c| c.len() <= ARENA_CHUNK || c.len() == keys[20_000].len()));
        for (id, key) in keys.iter().enumerate() {
            assert_eq!(g.get(id as IdentityId), key, "key {id}");
            assert_eq!(g.lookup(key), Some((id as IdentityId, id as u32)));
            if let Some(first) = key.bytes().next() {
                assert_eq!(g.warm_key(id as IdentityId), first);
            }
        }
        let parts = g.parts();
        let bytes = parts.bytes.concat();
        assert_eq!(bytes, keys.concat().into_bytes());
        let starts: Vec<u32> = g.key_starts().collect();
        let again = IdentityGraph::from_parts(
            bytes,
            starts,
            parts.slot.iter().copied().collect(),
            parts.next.iter().copied().collect(),
        )
        .expect("consistent parts");
        for (id, key) in keys.iter().enumerate() {
            assert_eq!(again.get(id as IdentityId), key);
            assert_eq!(again.lookup(key), Some((id as IdentityId, id as u32)));
        }
    }

    #[test]
    fn rings_are_counted_and_compared_by_walking_them() {
        let mut g = IdentityGraph::new();
        let ids: Vec<IdentityId> = (0..6)
            .map(|i| {
                let s = format!("wecom:r{i}");
                g.insert_hashed(&s, identity_hash(&s), 0)
            })
            .collect();
        // Rings {0, 1, 2}, {3, 4} and {5}.
        g.splice(ids[0], ids[1]);
        g.splice(ids[0], ids[2]);
        g.splice(ids[3], ids[4]);
        for (id, len) in [(0, 3), (1, 3), (2, 3), (3, 2), (4, 2), (5, 1)] {
            assert_eq!(g.ring_len(ids[id]), len, "ring of {id}");
        }
        assert!(g.ring_at_least_as_long(ids[1], ids[4]));
        assert!(!g.ring_at_least_as_long(ids[4], ids[2]));
        assert!(g.ring_at_least_as_long(ids[3], ids[5]));
        assert!(!g.ring_at_least_as_long(ids[5], ids[3]));
        // Equal lengths: the first one is kept (union by size keeps `a`).
        let mut h = IdentityGraph::new();
        let a = h.insert_hashed("x:a", identity_hash("x:a"), 0);
        let b = h.insert_hashed("x:b", identity_hash("x:b"), 1);
        assert!(h.ring_at_least_as_long(a, b) && h.ring_at_least_as_long(b, a));
    }

    #[test]
    fn parts_whose_rings_do_not_close_are_refused() {
        let bytes = b"x:ax:bx:c".to_vec();
        let starts = vec![0, 3, 6, 9];
        let slot = vec![0, 0, 1];
        // 0 -> 1 -> 0 and 2 -> 2: rings.
        assert!(IdentityGraph::from_parts(
            bytes.clone(),
            starts.clone(),
            slot.clone(),
            vec![1, 0, 2]
        )
        .is_some());
        // 2 -> 0 as well: 0 has two predecessors, and a walk from 2 would
        // never come back to 2.
        assert!(IdentityGraph::from_parts(bytes, starts, slot, vec![1, 0, 0]).is_none());
    }

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

    /// Buckets with equal tags (a 32-bit tag collides once in about four
    /// billion pairs) are told apart by their keys, across growth.
    #[test]
    fn equal_tags_are_told_apart_by_the_key() {
        let mut g = IdentityGraph::new();
        let hash = identity_hash("wecom:x");
        // Every key filed under one hash: one shard, one tag, one chain.
        let keys: Vec<String> = (0..100).map(|i| format!("wecom:{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(g.lookup_hashed(k, hash), None);
            assert_eq!(g.insert_hashed(k, hash, i as u32), i as IdentityId);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(g.lookup_hashed(k, hash), Some((i as IdentityId, i as u32)));
        }
        // Some identity of the chain (growth may re-place it in another order).
        assert!(g.likely_id(hash).is_some_and(|id| id < 100));
        assert_eq!(g.lookup_hashed("wecom:none", hash), None);
    }

    #[test]
    fn a_table_grown_from_empty_finds_every_key_and_no_other() {
        let mut g = IdentityGraph::new();
        assert_eq!(g.lookup("douyin:0"), None);
        assert_eq!(g.likely_id(identity_hash("douyin:0")), None);
        let n = 50_000u32;
        for i in 0..n {
            let k = format!("douyin:{i}");
            g.insert_hashed(&k, identity_hash(&k), i * 2);
        }
        for i in 0..n {
            assert_eq!(g.lookup(&format!("douyin:{i}")), Some((i, i * 2)));
            assert_eq!(g.lookup(&format!("kuaishou:{i}")), None);
        }
        // Rebuilt from its parts, the table answers the same.
        let parts = g.parts();
        let again = IdentityGraph::from_parts(
            parts.bytes.concat(),
            g.key_starts().collect(),
            parts.slot.iter().copied().collect(),
            parts.next.iter().copied().collect(),
        )
        .expect("consistent parts");
        assert_eq!(again.lookup("douyin:49999"), Some((49_999, 99_998)));
        assert_eq!(again.lookup("douyin:50000"), None);
    }
}
