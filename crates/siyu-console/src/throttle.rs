//! Login throttling: failed console logins are counted per account and per
//! client address, and after a few of them that account or address is
//! locked out for a delay that doubles with every further failure
//! ([`LoginPolicy`]). A locked-out login is refused with 429 and
//! `Retry-After` before any password is checked — the right password too,
//! so guessing cannot go on at full speed against one account or from one
//! address. A successful login clears the account's count (not the
//! address's: one valid account must not reset the counter of an address
//! that is guessing others).
//!
//! Memory is bounded: each table holds at most `max_entries` keys; entries
//! are forgotten `forget_after` their last failure once their lockout is
//! over, and when a table is full the least recently failed key that is
//! not locked out goes first. IPv6 addresses are counted per /64 (one host
//! usually owns a whole /64, so rotating within it must not reset the
//! count).
//!
//! The clock is passed in (`now`), so the policy is deterministic in tests.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How failures turn into lockouts.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    /// Failures of one account allowed before it is locked out.
    pub account_free_failures: u32,
    /// Failures from one address allowed before it is locked out (higher:
    /// an office shares one address).
    pub address_free_failures: u32,
    /// The lockout after the first failure over the free ones; each
    /// further failure doubles it.
    pub first_delay: Duration,
    /// The longest lockout.
    pub max_delay: Duration,
    /// A key's count is forgotten this long after its last failure (once
    /// its lockout is over).
    pub forget_after: Duration,
    /// Keys tracked at most per table (accounts, addresses).
    pub max_entries: usize,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            account_free_failures: 5,
            address_free_failures: 20,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_entries: 10_000,
        }
    }
}

impl LoginPolicy {
    /// The lockout after `failures` failures, when `free` are allowed.
    pub fn delay_after(&self, failures: u32, free: u32) -> Duration {
        if failures < free.max(1) {
            return Duration::ZERO;
        }
        let doublings = (failures - free.max(1)).min(30);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Instant,
}

impl Entry {
    /// When this entry may be dropped without changing any answer.
    fn forgettable_at(&self, forget_after: Duration) -> Instant {
        (self.last_failure + forget_after).max(self.locked_until)
    }
}

/// Failure counts of one kind of key, bounded in size.
struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    /// The time left of `key`'s lockout at `now`, if any.
    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        (e.locked_until > now).then(|| e.locked_until - now)
    }

    fn record_failure(&mut self, key: &K, free: u32, policy: &LoginPolicy, now: Instant) {
        if !self.entries.contains_key(key) && self.entries.len() >= policy.max_entries.max(1) {
            self.make_room(policy, now);
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: now,
        });
        if e.forgettable_at(policy.forget_after) <= now {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        e.locked_until = now + policy.delay_after(e.failures, free);
    }

    /// Drops the entries that may be forgotten; if none may, one entry:
    /// the least recently failed of those not locked out, else the one
    /// whose lockout ends first (so junk keys cannot push out a lockout).
    fn make_room(&mut self, policy: &LoginPolicy, now: Instant) {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.forgettable_at(policy.forget_after) > now);
        if self.entries.len() < before {
            return;
        }
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| {
                let locked = e.locked_until > now;
                (
                    locked,
                    if locked {
                        e.locked_until
                    } else {
                        e.last_failure
                    },
                )
            })
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.entries.remove(&k);
        }
    }
}

/// The address a failure is counted under: IPv4 as is, IPv6 by /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The per-account and per-address failure counts of one console.
pub struct LoginThrottle {
    policy: LoginPolicy,
    tables: Mutex<(Table<String>, Table<IpAddr>)>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(LoginPolicy::default())
    }
}

impl LoginThrottle {
    pub fn new(policy: LoginPolicy) -> Self {
        LoginThrottle {
            policy,
            tables: Mutex::new((Table::new(), Table::new())),
        }
    }

    /// How long `login` from `addr` must wait before its password is
    /// checked at all (None: it may try now).
    pub fn locked_for(&self, login: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let account = tables.0.locked_for(&login.to_string(), now);
        let address = tables.1.locked_for(&address_key(addr), now);
        account.max(address)
    }

    /// Counts a wrong password (or unknown login) for `login` and `addr`.
    pub fn record_failure(&self, login: &str, addr: IpAddr, now: Instant) {
        let p = &self.policy;
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables
            .0
            .record_failure(&login.to_string(), p.account_free_failures, p, now);
        tables
            .1
            .record_failure(&address_key(addr), p.address_free_failures, p, now);
    }

    /// Clears the account's count after a successful login.
    pub fn record_success(&self, login: &str) {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.0.entries.remove(login);
    }

    /// (accounts, addresses) tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        (tables.0.entries.len(), tables.1.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn the_delay_doubles_after_the_free_failures_up_to_the_cap() {
        let p = LoginPolicy::default();
        let delays: Vec<u64> = (1..=17).map(|n| p.delay_after(n, 5).as_secs()).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert_eq!(p.delay_after(u32::MAX, 5), p.max_delay);
    }

    #[test]
    fn an_account_is_locked_after_five_failures_from_any_address() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..4 {
            t.record_failure("ada", ip(i), t0);
            assert_eq!(t.locked_for("ada", ip(99), t0), None, "failure {i}");
        }
        t.record_failure("ada", ip(4), t0);
        assert_eq!(t.locked_for("ada", ip(99), t0), Some(SEC));
        assert_eq!(t.locked_for("otto", ip(99), t0), None);
        assert_eq!(t.locked_for("ada", ip(99), t0 + SEC), None);
        t.record_failure("ada", ip(5), t0 + SEC);
        assert_eq!(t.locked_for("ada", ip(99), t0 + SEC), Some(2 * SEC));
        t.record_success("ada");
        assert_eq!(t.locked_for("ada", ip(99), t0 + SEC), None);
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_over_any_accounts() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..20 {
            t.record_failure(&format!("user{i}"), ip(1), t0);
        }
        assert_eq!(t.locked_for("someone", ip(1), t0), Some(SEC));
        assert_eq!(t.locked_for("someone", ip(2), t0), None);
        // A success clears the account, not the address.
        t.record_success("someone");
        assert_eq!(t.locked_for("someone", ip(1), t0), Some(SEC));
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..20u16 {
            let a: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            t.record_failure(&format!("u{i}"), a, t0);
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.locked_for("x", same_64, t0).is_some());
        assert!(t.locked_for("x", other_64, t0).is_none());
    }

    #[test]
    fn counts_are_forgotten_after_a_quiet_hour() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            t.record_failure("ada", ip(1), t0);
        }
        let later = t0 + LoginPolicy::default().forget_after;
        t.record_failure("ada", ip(1), later);
        assert_eq!(t.locked_for("ada", ip(1), later), None, "count restarted");
    }

    #[test]
    fn memory_is_bounded_and_the_locked_entries_stay_longest() {
        let policy = LoginPolicy {
            max_entries: 50,
            ..LoginPolicy::default()
        };
        let t = LoginThrottle::new(policy);
        let t0 = Instant::now();
        for _ in 0..10 {
            t.record_failure("target", ip(1), t0);
        }
        let locked = t.locked_for("target", ip(2), t0).unwrap();
        for i in 0..1_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            t.record_failure(&format!("junk{i}"), addr, t0 + Duration::from_millis(1));
        }
        let (accounts, addresses) = t.tracked();
        assert!(accounts <= 50 && addresses <= 50, "{accounts} {addresses}");
        assert!(
            t.locked_for("target", ip(2), t0 + Duration::from_millis(1))
                .is_some_and(|d| d <= locked),
            "the locked account outlived the junk"
        );
    }
}
