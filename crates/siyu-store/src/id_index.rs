//! Client event ids → log offsets, in memory: the embedded store's
//! idempotency check without a B-tree over the ids.
//!
//! Why: ids from SDKs are random (UUID `messageId`s), so a unique index
//! over them costs an append about one written page per event once it
//! outgrows a group commit, exactly as the identity index did (measured on
//! the 1M bench store: 500-event HTTP batches fell from ~280k events/s
//! with increasing ids to 37–63k with UUIDs). Here each id costs a 64-bit
//! hash and its offset (16-byte entries: 18–39 bytes of memory as the
//! table doubles), and the log is appended in order only.
//!
//! Exactness: the log stays the truth. A hash hit is confirmed by reading
//! the event at that offset ([`Confirm`]); an erased row or another id
//! with the same hash is not a duplicate. Ids of different events that
//! share a hash go to a small map keyed by the id itself. The index covers
//! the log up to [`IdIndex::upto`]; the store catches it up from the log
//! (rows another process appended) before every append, under the write
//! lock, so two writers never both append one id.

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Reads the client id of the event stored at an offset (None: no such
/// event, erased say).
pub trait Confirm {
    fn id_at(&mut self, offset: u64) -> crate::Result<Option<String>>;
}

/// See the module docs.
#[derive(Default)]
pub struct IdIndex {
    /// The log offset the index is complete up to (0: not loaded).
    upto: u64,
    /// Randomly keyed per process: ids come from clients, so nobody can
    /// choose ids that collide.
    hasher: RandomState,
    /// (hash, offset); the hash is already uniform, so it is its own
    /// table hash (no second hashing per probe).
    by_hash: HashTable<(u64, u64)>,
    /// Ids whose hash is already taken by another id.
    spilled: HashMap<String, u64>,
}

impl IdIndex {
    /// The offset up to which every stored id is in the index.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Records that the event at `offset` has client id `id` (a row read
    /// in a catch-up from the log, or one just appended).
    pub fn insert(&mut self, id: &str, offset: u64) {
        let h = self.hasher.hash_one(id);
        match self.by_hash.entry(h, |e| e.0 == h, |e| e.0) {
            Entry::Vacant(v) => {
                v.insert((h, offset));
            }
            Entry::Occupied(_) => {
                self.spilled.insert(id.to_string(), offset);
            }
        }
    }

    /// Says every id stored up to log offset `upto` has been inserted.
    pub fn covered_up_to(&mut self, upto: u64) {
        self.upto = self.upto.max(upto);
    }

    /// The offset of the stored event with client id `id`, if any. Every
    /// hit is confirmed by reading the log; entries of erased events are
    /// dropped on the way.
    pub fn find(&mut self, id: &str, log: &mut dyn Confirm) -> crate::Result<Option<u64>> {
        if let Some(&offset) = self.spilled.get(id) {
            if log.id_at(offset)?.as_deref() == Some(id) {
                return Ok(Some(offset));
            }
            self.spilled.remove(id);
        }
        let h = self.hasher.hash_one(id);
        let Some(&(_, offset)) = self.by_hash.find(h, |e| e.0 == h) else {
            return Ok(None);
        };
        match log.id_at(offset)? {
            Some(stored) if stored == id => Ok(Some(offset)),
            Some(_) => Ok(None),
            // Erased: the hash is free for the next id.
            None => {
                if let Ok(entry) = self.by_hash.find_entry(h, |e| e.0 == h) {
                    entry.remove();
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log as offset → id.
    struct Log(HashMap<u64, String>);

    impl Confirm for Log {
        fn id_at(&mut self, offset: u64) -> crate::Result<Option<String>> {
            Ok(self.0.get(&offset).cloned())
        }
    }

    #[test]
    fn finds_stored_ids_and_only_those() {
        let mut log = Log(HashMap::from([(1, "a".into()), (2, "b".into())]));
        let mut ix = IdIndex::default();
        ix.insert("a", 1);
        ix.insert("b", 2);
        ix.covered_up_to(2);
        assert_eq!(ix.upto(), 2);
        assert_eq!(ix.find("a", &mut log).unwrap(), Some(1));
        assert_eq!(ix.find("b", &mut log).unwrap(), Some(2));
        assert_eq!(ix.find("c", &mut log).unwrap(), None);
        // Erased from the log: not a duplicate any more.
        log.0.remove(&1);
        assert_eq!(ix.find("a", &mut log).unwrap(), None);
        assert_eq!(ix.by_hash.len(), 1);
    }

    #[test]
    fn a_hash_shared_by_two_ids_is_confirmed_against_the_log() {
        let mut log = Log(HashMap::from([(1, "a".into()), (5, "z".into())]));
        let mut ix = IdIndex::default();
        ix.insert("a", 1);
        // Point the hash of "z" at the event of "a", as a collision would:
        // an id whose entry names another id's event is not stored…
        let hz = ix.hasher.hash_one("z");
        ix.by_hash.insert_unique(hz, (hz, 1), |e| e.0);
        assert_eq!(ix.find("z", &mut log).unwrap(), None);
        // …and once stored it is found through the spill map.
        ix.spilled.insert("z".into(), 5);
        assert_eq!(ix.find("z", &mut log).unwrap(), Some(5));
        assert_eq!(ix.find("a", &mut log).unwrap(), Some(1));
        // A spilled id whose event was erased is not a duplicate.
        log.0.remove(&5);
        assert_eq!(ix.find("z", &mut log).unwrap(), None);
        assert!(!ix.spilled.contains_key("z"));
    }

    #[test]
    fn insert_spills_an_id_whose_hash_is_taken() {
        let mut ix = IdIndex::default();
        ix.insert("a", 1);
        ix.covered_up_to(1);
        // Same hash (same id stored twice cannot happen; a colliding id can).
        ix.insert("a", 3);
        ix.covered_up_to(3);
        assert_eq!(ix.spilled.get("a"), Some(&3));
        assert_eq!(ix.upto(), 3);
    }
}
