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
//! share a hash go to a small map keyed by the id itself.
//!
//! Growth in steps: the table is [`SHARDS`] tables, chosen by hash bits
//! neither the buckets nor the tags use, so when one doubles it rehashes
//! 1/256 of the ids. A single table doubling at 14.7M ids held the writer
//! for 1.5 s (the 1M bench store under sustained ingest); a shard's
//! doubling at that size moves ~57k entries (~6 ms).
//!
//! The index covers
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

/// Tables the index is split into (see the module docs).
const SHARDS: usize = 256;

/// The shard of a hash: bits 40..48, which hashbrown uses for neither the
/// bucket (low bits) nor the tag (top 7 bits), so each shard's entries
/// still spread over all its buckets and tags.
fn shard(h: u64) -> usize {
    (h >> 40) as usize % SHARDS
}

/// See the module docs.
pub struct IdIndex {
    /// The log offset the index is complete up to (0: not loaded).
    upto: u64,
    /// Randomly keyed per process: ids come from clients, so nobody can
    /// choose ids that collide.
    hasher: RandomState,
    /// (hash, offset) in [`SHARDS`] tables; the hash is already uniform,
    /// so it is its own table hash (no second hashing per probe).
    by_hash: Vec<HashTable<(u64, u64)>>,
    /// Ids whose hash is already taken by another id.
    spilled: HashMap<String, u64>,
}

/// Rows on their way into an [`IdIndex`] ([`IdIndex::loading`]).
pub struct Loading {
    /// (hash, offset) per shard, in row order.
    lists: Vec<Vec<(u64, u64)>>,
}

impl Loading {
    /// Adds the row of the event at `offset` with client id `id`;
    /// `index` is the index the rows are for (its hasher).
    pub fn add(&mut self, index: &IdIndex, id: &str, offset: u64) {
        let h = index.hasher.hash_one(id);
        self.lists[shard(h)].push((h, offset));
    }
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex {
            upto: 0,
            hasher: RandomState::new(),
            by_hash: (0..SHARDS).map(|_| HashTable::new()).collect(),
            spilled: HashMap::new(),
        }
    }
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
        match self.by_hash[shard(h)].entry(h, |e| e.0 == h, |e| e.0) {
            Entry::Vacant(v) => {
                v.insert((h, offset));
            }
            Entry::Occupied(_) => {
                self.spilled.insert(id.to_string(), offset);
            }
        }
    }

    /// A bulk insert (a catch-up over a large log): [`Loading::add`]
    /// each row, then [`IdIndex::finish_loading`]. Each id's hash goes
    /// first to its shard's list; then each shard's table is built from
    /// its list at its final size, so the table being filled stays in the
    /// cache. Inserted one by one, every id was a cache miss in a table
    /// as large as the index, and every shard rehashed as it doubled:
    /// 5.9–6.0 s for the 11.5M ids of the 1M bench store before the
    /// first append could be accepted; 2.8–3.0 s so (2-core VM).
    pub fn loading(&self) -> Loading {
        Loading {
            lists: (0..SHARDS).map(|_| Vec::new()).collect(),
        }
    }

    /// Files the rows of `loading` (see [`IdIndex::loading`]) as
    /// [`IdIndex::insert`] in their order would: the first id with a hash
    /// takes the table entry, a later one with the same hash is kept by
    /// id in the spill map, its id read back from `log` (the lists hold
    /// hashes only).
    pub fn finish_loading(&mut self, loading: Loading, log: &mut dyn Confirm) -> crate::Result<()> {
        let mut collided = Vec::new();
        for (table, list) in self.by_hash.iter_mut().zip(loading.lists) {
            table.reserve(list.len(), |e| e.0);
            for (h, offset) in list {
                match table.entry(h, |e| e.0 == h, |e| e.0) {
                    Entry::Vacant(v) => {
                        v.insert((h, offset));
                    }
                    Entry::Occupied(_) => collided.push(offset),
                }
            }
        }
        for offset in collided {
            if let Some(id) = log.id_at(offset)? {
                self.spilled.insert(id, offset);
            }
        }
        Ok(())
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
        let table = &mut self.by_hash[shard(h)];
        let Some(&(_, offset)) = table.find(h, |e| e.0 == h) else {
            return Ok(None);
        };
        match log.id_at(offset)? {
            Some(stored) if stored == id => Ok(Some(offset)),
            Some(_) => Ok(None),
            // Erased: the hash is free for the next id.
            None => {
                if let Ok(entry) = self.by_hash[shard(h)].find_entry(h, |e| e.0 == h) {
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
        assert_eq!(ix.by_hash.iter().map(HashTable::len).sum::<usize>(), 1);
    }

    #[test]
    fn a_hash_shared_by_two_ids_is_confirmed_against_the_log() {
        let mut log = Log(HashMap::from([(1, "a".into()), (5, "z".into())]));
        let mut ix = IdIndex::default();
        ix.insert("a", 1);
        // Point the hash of "z" at the event of "a", as a collision would:
        // an id whose entry names another id's event is not stored…
        let hz = ix.hasher.hash_one("z");
        ix.by_hash[shard(hz)].insert_unique(hz, (hz, 1), |e| e.0);
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

    /// Rows filed through [`IdIndex::loading`] are found as rows inserted
    /// one by one are, and two ids with one hash (forced here by filing
    /// one row under the other's hash) keep the first in the table and
    /// the second, read back from the log, in the spill map.
    #[test]
    fn loaded_rows_are_found_as_inserted_ones_and_collisions_spill() {
        let ids: Vec<String> = (0..5000).map(|i| format!("c:{i:032x}")).collect();
        let mut log = Log(ids
            .iter()
            .enumerate()
            .map(|(i, id)| (i as u64 + 1, id.clone()))
            .collect());
        let mut ix = IdIndex::default();
        let mut loading = ix.loading();
        for (i, id) in ids.iter().enumerate() {
            loading.add(&ix, id, i as u64 + 1);
        }
        // The event at 5001 has its own id, filed under the hash of the
        // first id's.
        log.0.insert(5001, "c:collides".into());
        let h0 = ix.hasher.hash_one(&ids[0]);
        loading.lists[shard(h0)].push((h0, 5001));
        ix.finish_loading(loading, &mut log).unwrap();
        ix.covered_up_to(5001);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(ix.find(id, &mut log).unwrap(), Some(i as u64 + 1), "{id}");
        }
        assert_eq!(ix.find("c:collides", &mut log).unwrap(), Some(5001));
        assert_eq!(ix.find("c:absent", &mut log).unwrap(), None);
        assert_eq!(ix.spilled.len(), 1);
    }
}
