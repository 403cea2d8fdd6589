//! Replay protection for signed inbound webhooks. A signature is valid for
//! the tolerance window around its timestamp (5 minutes), so a captured
//! request could be sent again within it; the guard remembers every
//! signature it accepted until its timestamp leaves the window, and a
//! second request with the same signature is refused.
//!
//! Memory is bounded: at most `capacity` signatures (32 bytes of digest
//! and an expiry each) are held. Expired ones are dropped first; if the
//! guard is still full of live ones, a new request is refused (429) rather
//! than an old signature forgotten, which would reopen the replay.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Signatures remembered at most per workspace (≈ 100 bytes each: 20 MB);
/// at 300 s tolerance, ~650 accepted webhook requests per second sustained.
pub const REPLAY_CAPACITY: usize = 200_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// First time: remembered until its window closes.
    New,
    /// The same signature was accepted before: a replay.
    Replayed,
    /// The guard is full of live signatures.
    Full,
}

pub struct ReplayGuard {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    expiry_of: HashMap<[u8; 32], i64>,
    by_expiry: BTreeMap<(i64, [u8; 32]), ()>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `signature` (any bytes naming the signed request; hashed
    /// here, so a whole body may be passed) as seen until
    /// `expires_at`; `now` drops what expired.
    pub fn check(&self, signature: &[u8], expires_at: i64, now: i64) -> Seen {
        let key: [u8; 32] = Sha256::digest(signature).into();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((&(exp, k), _)) = g.by_expiry.first_key_value() {
            if exp > now {
                break;
            }
            g.by_expiry.remove(&(exp, k));
            g.expiry_of.remove(&k);
        }
        if g.expiry_of.contains_key(&key) {
            return Seen::Replayed;
        }
        if g.expiry_of.len() >= self.capacity {
            return Seen::Full;
        }
        g.expiry_of.insert(key, expires_at);
        g.by_expiry.insert((expires_at, key), ());
        Seen::New
    }

    /// Forgets a signature (its request was not carried out after all).
    pub fn forget(&self, signature: &[u8]) {
        let key: [u8; 32] = Sha256::digest(signature).into();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(exp) = g.expiry_of.remove(&key) {
            g.by_expiry.remove(&(exp, key));
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expiry_of
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(REPLAY_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once_within_its_window() {
        let g = ReplayGuard::new(10);
        assert_eq!(g.check(b"sig-a", 400, 100), Seen::New);
        assert_eq!(g.check(b"sig-a", 400, 200), Seen::Replayed);
        assert_eq!(g.check(b"sig-b", 400, 200), Seen::New);
        // After the window the request itself is stale (the verifier
        // refuses it), so forgetting it is safe.
        assert_eq!(g.check(b"sig-c", 900, 401), Seen::New);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn memory_is_bounded_and_a_full_guard_refuses_instead_of_forgetting() {
        let g = ReplayGuard::new(3);
        for s in [b"1", b"2", b"3"] {
            assert_eq!(g.check(s, 100, 0), Seen::New);
        }
        assert_eq!(g.check(b"4", 100, 0), Seen::Full);
        assert_eq!(g.check(b"1", 100, 50), Seen::Replayed);
        // Once they expire there is room again.
        assert_eq!(g.check(b"4", 200, 100), Seen::New);
        assert_eq!(g.len(), 1);
    }
}
