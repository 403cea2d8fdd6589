//! The identity graph: every `channel:id` string interned once, and a
//! union-find over them whose components are persons.
//!
//! Links only ever join components (identify/alias), so union-find with
//! path halving and union by size gives near-constant time per event. Each
//! component also keeps a circular member list, so a person's identities can
//! be listed without scanning the graph, and the byte-wise smallest member,
//! which is the person's canonical id.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Dense index of an interned identity.
pub type IdentityId = u32;

/// The hash the identity table uses; bulk loaders compute it on parser
/// threads and pass it in ([`IdentityTable::intern_hashed`]).
pub fn identity_hash(s: &str) -> u64 {
    FixedState::default().hash_one(s.as_bytes())
}

/// Interned identity strings: one arena of bytes and one hash table.
#[derive(Default)]
pub struct IdentityTable {
    bytes: Vec<u8>,
    /// Start of identity `i` in `bytes`; `starts[i + 1]` is its end.
    starts: Vec<u32>,
    table: HashTable<IdentityId>,
    hasher: FixedState,
}

impl IdentityTable {
    pub fn new() -> Self {
        IdentityTable {
            starts: vec![0],
            ..Default::default()
        }
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
        let (a, b) = (self.starts[id as usize], self.starts[id as usize + 1]);
        // Only valid UTF-8 `&str`s are ever interned.
        std::str::from_utf8(&self.bytes[a as usize..b as usize]).unwrap_or("")
    }

    fn get_bytes(&self, id: IdentityId) -> &[u8] {
        let (a, b) = (self.starts[id as usize], self.starts[id as usize + 1]);
        &self.bytes[a as usize..b as usize]
    }

    /// The hash used by [`Self::intern_hashed`]; callers on a hot path may
    /// compute it on another thread.
    pub fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s.as_bytes())
    }

    pub fn lookup(&self, s: &str) -> Option<IdentityId> {
        let h = self.hash(s);
        self.table
            .find(h, |&id| self.get_bytes(id) == s.as_bytes())
            .copied()
    }

    /// Returns the id of `s`, interning it if new; the bool says whether it was new.
    pub fn intern(&mut self, s: &str) -> (IdentityId, bool) {
        let h = self.hash(s);
        self.intern_hashed(s, h)
    }

    /// [`Self::intern`] with a precomputed `hash(s)`.
    pub fn intern_hashed(&mut self, s: &str, hash: u64) -> (IdentityId, bool) {
        let (bytes, starts, hasher) = (&self.bytes, &self.starts, &self.hasher);
        let get =
            |id: IdentityId| &bytes[starts[id as usize] as usize..starts[id as usize + 1] as usize];
        if let Some(&id) = self.table.find(hash, |&id| get(id) == s.as_bytes()) {
            return (id, false);
        }
        let id = self.len() as IdentityId;
        self.bytes.extend_from_slice(s.as_bytes());
        self.starts.push(self.bytes.len() as u32);
        let (bytes, starts) = (&self.bytes, &self.starts);
        self.table.insert_unique(hash, id, |&id| {
            hasher.hash_one(&bytes[starts[id as usize] as usize..starts[id as usize + 1] as usize])
        });
        (id, true)
    }

    /// Identities starting with `prefix`, in id order (a scan of the arena).
    pub fn with_prefix(&self, prefix: &str, limit: usize) -> Vec<IdentityId> {
        (0..self.len() as IdentityId)
            .filter(|&id| self.get_bytes(id).starts_with(prefix.as_bytes()))
            .take(limit)
            .collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.starts.capacity() * 4 + self.table.capacity() * 5
    }
}

/// Union-find over identity ids, with member lists.
#[derive(Default)]
pub struct UnionFind {
    parent: Vec<u32>,
    /// Component size at roots.
    size: Vec<u32>,
    /// Circular singly linked list of each component's members.
    next: Vec<u32>,
}

impl UnionFind {
    /// Adds a singleton for the next identity id.
    pub fn push(&mut self) -> u32 {
        let id = self.parent.len() as u32;
        self.parent.push(id);
        self.size.push(1);
        self.next.push(id);
        id
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Root without path compression (for readers holding `&self`).
    pub fn find_const(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    /// Joins the components of roots `a` and `b` (a != b); returns (winner, loser).
    pub fn union_roots(&mut self, a: u32, b: u32) -> (u32, u32) {
        debug_assert!(a != b && self.parent[a as usize] == a && self.parent[b as usize] == b);
        let (w, l) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[l as usize] = w;
        self.size[w as usize] += self.size[l as usize];
        self.next.swap(w as usize, l as usize);
        (w, l)
    }

    /// Members of the component whose root (or any member) is `x`.
    pub fn members(&self, x: u32) -> Vec<u32> {
        let mut out = vec![x];
        let mut y = self.next[x as usize];
        while y != x {
            out.push(y);
            y = self.next[y as usize];
        }
        out
    }

    pub fn component_size(&self, root: u32) -> u32 {
        self.size[root as usize]
    }

    pub fn heap_bytes(&self) -> usize {
        (self.parent.capacity() + self.size.capacity() + self.next.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable() {
        let mut t = IdentityTable::new();
        assert_eq!(t.intern("wecom:a"), (0, true));
        assert_eq!(t.intern("douyin:b"), (1, true));
        assert_eq!(t.intern("wecom:a"), (0, false));
        assert_eq!(t.get(1), "douyin:b");
        assert_eq!(t.lookup("douyin:b"), Some(1));
        assert_eq!(t.lookup("douyin:c"), None);
        assert_eq!(t.with_prefix("dou", 10), vec![1]);
    }

    #[test]
    fn union_find_joins_and_lists_members() {
        let mut uf = UnionFind::default();
        for _ in 0..5 {
            uf.push();
        }
        let (w, _) = uf.union_roots(0, 1);
        let r = uf.find(3);
        let (w2, _) = uf.union_roots(w, r);
        let mut m = uf.members(w2);
        m.sort();
        assert_eq!(m, vec![0, 1, 3]);
        assert_eq!(uf.find(1), uf.find(3));
        assert_ne!(uf.find(2), uf.find(3));
        assert_eq!(uf.members(4), vec![4]);
    }
}
