//! A token-bucket rate limiter keyed by a string (a client address), for
//! the public links anyone can call without a key: live codes (`/l/{id}`)
//! and invite links. Memory is bounded: at `max_keys` the idle keys (whose
//! bucket refilled to full) are evicted, then, if every key is busy, the
//! least recently seen eighth.
//!
//! The clock is passed in (`now`), so the limiter is deterministic in tests.

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Requests per second one address may make to a public link, sustained.
pub const PUBLIC_LINK_PER_SEC: f64 = 20.0;
/// Requests one address may make in a burst.
pub const PUBLIC_LINK_BURST: f64 = 40.0;
/// Addresses tracked at most (≈ 100 bytes each).
pub const PUBLIC_LINK_MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_sec` tokens refill each second up to `burst`; each request
    /// takes one. `max_keys` bounds the keys held (at least 1).
    pub fn new(per_sec: f64, burst: f64, max_keys: usize) -> Self {
        RateLimiter {
            per_sec: per_sec.max(0.0),
            burst: burst.max(1.0),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limiter for public links, with the constants above.
    pub fn public_links() -> Self {
        Self::new(PUBLIC_LINK_PER_SEC, PUBLIC_LINK_BURST, PUBLIC_LINK_MAX_KEYS)
    }

    /// Whether a request under `key` at `now` may proceed (and, if so,
    /// takes a token).
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(key) {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
            b.last = now.max(b.last);
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        buckets.insert(
            key.to_string(),
            Bucket {
                tokens: self.burst - 1.0,
                last: now,
            },
        );
        true
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        // A bucket that has refilled is indistinguishable from a new one.
        let full_after = if self.per_sec > 0.0 {
            self.burst / self.per_sec
        } else {
            f64::INFINITY
        };
        buckets.retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < full_after);
        if buckets.len() < self.max_keys {
            return;
        }
        // Every key is busy (many addresses at once): drop the least
        // recently seen eighth, so this O(n log n) pass stays rare.
        let mut seen: Vec<Instant> = buckets.values().map(|b| b.last).collect();
        seen.sort_unstable();
        let cut = seen[(seen.len() / 8).min(seen.len() - 1)];
        buckets.retain(|_, b| b.last > cut);
    }
}

/// The address a public request is limited by: the peer address, unless
/// the peer is a local or private address (a reverse proxy in front of
/// siyu) and it sent `X-Forwarded-For`, whose rightmost entry is the one
/// the proxy added (a client cannot forge it). Without a peer address (an
/// in-process call) the rightmost `X-Forwarded-For` entry, else "unknown".
pub fn client_key(peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    let forwarded = || {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    match peer {
        Some(p) if !is_proxy(p.ip()) => p.ip().to_string(),
        Some(p) => forwarded().unwrap_or(p.ip()).to_string(),
        None => forwarded().map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
    }
}

fn is_proxy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_refusals_then_refill() {
        let rl = RateLimiter::new(2.0, 4.0, 100);
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(rl.allow("1.2.3.4", t0), "request {i} of the burst");
        }
        assert!(!rl.allow("1.2.3.4", t0));
        assert!(
            rl.allow("5.6.7.8", t0),
            "other addresses have their own bucket"
        );
        // Half a second refills one token (2/s).
        let t1 = t0 + Duration::from_millis(500);
        assert!(rl.allow("1.2.3.4", t1));
        assert!(!rl.allow("1.2.3.4", t1));
        // Long idle: back to a full burst, never more.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..4 {
            assert!(rl.allow("1.2.3.4", t2));
        }
        assert!(!rl.allow("1.2.3.4", t2));
    }

    #[test]
    fn keys_are_bounded() {
        let rl = RateLimiter::new(1.0, 2.0, 1000);
        let t0 = Instant::now();
        for i in 0..10_000 {
            rl.allow(&format!("k{i}"), t0 + Duration::from_millis(i));
            assert!(rl.len() <= 1000);
        }
        // Later, every old bucket has refilled (idle): new addresses
        // replace them all and each is tracked (its burst of 2 runs out).
        let later = t0 + Duration::from_secs(30);
        for i in 0..1000 {
            assert!(rl.allow(&format!("new{i}"), later));
        }
        assert!(rl.len() <= 1000);
        for i in 0..1000 {
            let key = format!("new{i}");
            assert!(rl.allow(&key, later));
            assert!(!rl.allow(&key, later), "{key} was evicted");
        }
    }

    #[test]
    fn a_busy_key_keeps_its_state_while_others_churn() {
        let rl = RateLimiter::new(0.0, 3.0, 4);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(rl.allow(&format!("old{i}"), t0));
        }
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..3 {
            assert!(rl.allow("attacker", t1));
        }
        // Full: the least recently seen keys go, the attacker's empty bucket stays.
        let t2 = t1 + Duration::from_secs(1);
        assert!(rl.allow("new", t2));
        assert!(rl.len() <= 4);
        assert!(!rl.allow("attacker", t2));
    }

    #[test]
    fn the_client_key_trusts_forwarded_for_only_from_a_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "9.9.9.9, 203.0.113.7".parse().unwrap());
        let public: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_key(Some(public), &h), "198.51.100.1");
        assert_eq!(client_key(Some(proxy), &h), "203.0.113.7");
        assert_eq!(client_key(None, &h), "203.0.113.7");
        assert_eq!(client_key(None, &HeaderMap::new()), "unknown");
        assert_eq!(client_key(Some(proxy), &HeaderMap::new()), "127.0.0.1");
    }
}
