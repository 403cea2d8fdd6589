//! Abuse limits on the endpoints anyone can call without a key: a
//! token-bucket rate limiter keyed by the client address, and the one
//! function that decides that address ([`client_addr`]: the peer, or what
//! a configured trusted proxy forwarded). Public links (live codes
//! `/l/…`, invites `/i/…`, content `/c/…`, unsubscribe `/u/…`) share one
//! limiter per workspace; inbound webhooks (`/v1/inbound/…`, called by a
//! channel's servers in bursts) have their own, larger one.
//!
//! Memory is bounded: at `max_keys` the idle keys (whose bucket refilled
//! to full) are evicted, then, if every key is busy, the least recently
//! seen eighth. The clock is passed in (`now`), so the limiter is
//! deterministic in tests.

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
/// Inbound webhook requests per second one address may make, sustained.
pub const INBOUND_PER_SEC: f64 = 200.0;
/// Inbound webhook requests one address may make in a burst.
pub const INBOUND_BURST: f64 = 400.0;

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

    /// The limiter for inbound webhooks.
    pub fn inbound() -> Self {
        Self::new(INBOUND_PER_SEC, INBOUND_BURST, PUBLIC_LINK_MAX_KEYS)
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

/// The reverse proxies whose `X-Forwarded-For` is believed (config
/// `trusted_proxies`: IPs or CIDRs; default none). siyu reads no other
/// forwarding header: the scheme of links and of the `Secure` cookie
/// comes from `public_url`, never from a request.
/// A header from any other peer is the client's own claim and ignored:
/// otherwise rotating `X-Forwarded-For` would give every request a fresh
/// rate-limit bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses `["10.0.0.0/8", "127.0.0.1", "::1"]`; an error names the entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref().trim();
            let net = e
                .parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("trusted_proxies: {e:?} is not an IP address or CIDR (e.g. \"10.0.0.0/8\", \"127.0.0.1\")")
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack
/// listener reports) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address of the client behind a request: the peer, unless the peer
/// is a trusted proxy; then `X-Forwarded-For` is walked from the right
/// (each proxy appends the address it saw) while the hops are trusted, and
/// the first untrusted one is the client (a client can prepend anything,
/// but cannot forge what a trusted proxy appended). `None` without a peer
/// address (an in-process call). This is the one place that decides it:
/// rate limits on public links, webhooks and console logins all use it.
pub fn client_addr(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut addr = canonical(peer?.ip());
    if !trusted.contains(addr) {
        return Some(addr);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // Garbage (or `unknown`): the last trusted hop is all we know.
            break;
        };
        addr = canonical(ip);
        if !trusted.contains(addr) {
            break;
        }
    }
    Some(addr)
}

/// The peer address axum records for each connection (absent for
/// in-process calls), as a handler argument.
pub type Peer = Option<axum::Extension<axum::extract::ConnectInfo<SocketAddr>>>;

pub fn peer_addr(peer: &Peer) -> Option<SocketAddr> {
    peer.as_ref()
        .map(|axum::Extension(axum::extract::ConnectInfo(a))| *a)
}

/// Which per-address limit a public endpoint takes a token from.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// Live codes, invites, content and unsubscribe links (`/l/`, `/i/`,
    /// `/c/`, `/u/`).
    PublicLinks,
    /// Signed inbound webhooks (`/v1/inbound/*`).
    Inbound,
}

/// Takes a token for the request's client address (as `trusted_proxies`
/// let it be known) from the workspace's `limit`, or answers 429 (with
/// `Retry-After`). Every public endpoint calls this first.
pub fn check(
    state: &crate::AppState,
    limit: Limit,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<(), crate::error::ApiError> {
    let limiter = match limit {
        Limit::PublicLinks => &state.0.public_limit,
        Limit::Inbound => &state.0.inbound_limit,
    };
    let key = client_key(peer_addr(peer), headers, &state.0.config.trusted_proxies);
    if limiter.allow(&key, Instant::now()) {
        Ok(())
    } else {
        Err(crate::error::ApiError::TooManyRequests)
    }
}

/// The rate-limit key of a request: its client address, or "unknown" for
/// in-process calls (which then share one bucket).
pub fn client_key(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> String {
    client_addr(peer, headers, trusted).map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
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

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let h = xff("9.9.9.9, 203.0.113.7");
        let public: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let proxy: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let none = TrustedProxies::default();
        let lb = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        // Default: nobody is trusted, not even a private or loopback peer.
        assert_eq!(client_key(Some(proxy), &h, &none), "10.0.0.2");
        assert_eq!(
            client_key(Some("127.0.0.1:1".parse().unwrap()), &h, &none),
            "127.0.0.1"
        );
        assert_eq!(client_key(Some(public), &h, &lb), "198.51.100.1");
        // From the proxy: the rightmost hop it appended.
        assert_eq!(client_key(Some(proxy), &h, &lb), "203.0.113.7");
        assert_eq!(client_key(Some(proxy), &HeaderMap::new(), &lb), "10.0.0.2");
        // No peer (in process): nothing to trust.
        assert_eq!(client_key(None, &h, &lb), "unknown");
    }

    #[test]
    fn the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted() {
        let chain = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1", "::1"]).unwrap();
        let peer: SocketAddr = "10.0.0.2:80".parse().unwrap();
        // client (forged prefix), real client, inner proxy.
        let h = xff("1.1.1.1, 203.0.113.7, 192.168.1.1");
        assert_eq!(client_key(Some(peer), &h, &chain), "203.0.113.7");
        // Every hop trusted: the leftmost.
        assert_eq!(
            client_key(Some(peer), &xff("10.1.1.1, 192.168.1.1"), &chain),
            "10.1.1.1"
        );
        // Garbage right after the proxy: the proxy is the client.
        assert_eq!(
            client_key(Some(peer), &xff("1.1.1.1, nonsense"), &chain),
            "10.0.0.2"
        );
        // A v4-mapped v6 peer is its v4 address.
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:80".parse().unwrap();
        assert_eq!(
            client_key(Some(mapped), &xff("203.0.113.9"), &chain),
            "203.0.113.9"
        );
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(
            client_key(Some(v6), &xff("2001:db8::7"), &chain),
            "2001:db8::7"
        );
    }

    #[test]
    fn a_rotating_forwarded_for_from_an_untrusted_peer_is_one_bucket() {
        let rl = RateLimiter::new(0.0, 3.0, 100);
        let t0 = Instant::now();
        let peer: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let none = TrustedProxies::default();
        let allowed = (0..10)
            .filter(|i| {
                let key = client_key(Some(peer), &xff(&format!("203.0.113.{i}")), &none);
                rl.allow(&key, t0)
            })
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/8", "lan"]).unwrap_err();
        assert!(err.contains("\"lan\""), "{err}");
    }
}
