//! One state on every node. Several `siyu serve` nodes on one PostgreSQL
//! database (or a server and `siyu keys create` on one SQLite file) share
//! the store, but each keeps parts of it in memory: keys, console
//! sessions, the engine's segments and properties, the executor's
//! journeys, templates, auto-replies and guardrails, the workspace time
//! zone, cached campaigns, cached analytics answers. The follower keeps
//! them true.
//!
//! Every insert, update and delete of a settings row is numbered in the
//! store, in commit order, whoever wrote it (`Store::setting_changes`,
//! written by triggers). One thread per workspace and node reads the
//! numbers after the last it saw every [`POLL_EVERY`] on its own
//! connection and hands each changed key to whoever keeps it in memory
//! ([`apply`]): a change on any node is in force on every node well within
//! a second. Its own node's changes come back too and change nothing.
//! Every [`FULL_CHECK_EVERY`], and whenever numbers were missed (pruned,
//! or a gap), everything is reloaded: the safety net. Erasures are
//! numbered the same way (`siyu_store::ERASURES_KEY`, in the erasure's own
//! transaction): each node rebuilds its engine and keeps no snapshot
//! taken before.
//!
//! Polling a primary-key range is cheap (four small queries a second per
//! node); it needs no second kind of connection (LISTEN) and has no
//! missed-notification case to handle.

use crate::Inner;
use siyu_store::Store;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often each node reads the settings changes.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// How often everything is reloaded whatever the changes said.
pub const FULL_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Changes older than this are pruned (by every node; any may).
const KEEP_CHANGES_SECS: i64 = 3600;
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What to bring up to date: some keys, or everything.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    Keys(Vec<String>),
    Everything,
}

/// Starts the follower thread of one workspace on its own store
/// connection. It holds the application weakly and ends with it.
pub fn spawn_follower(
    inner: &Arc<Inner>,
    mut store: Box<dyn Store>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let app: Weak<Inner> = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("siyu-follower".into())
        .spawn(move || {
            let mut follower = Follower::new(store.as_mut());
            loop {
                std::thread::sleep(POLL_EVERY);
                let Some(inner) = app.upgrade() else { break };
                if let Some(changed) = follower.poll(store.as_mut()) {
                    apply(&inner, store.as_mut(), &changed);
                }
            }
        })
}

/// The reading side: which numbered changes were seen.
pub struct Follower {
    seen: u64,
    full_check_at: Instant,
    pruned_at: Instant,
}

impl Follower {
    /// Starts after the newest change, with a full check first (the
    /// application loaded its state before this existed).
    pub fn new(store: &mut dyn Store) -> Self {
        let seen = store.setting_changes_head().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the settings changes head");
            0
        });
        let long_ago = Instant::now()
            .checked_sub(FULL_CHECK_EVERY)
            .unwrap_or_else(Instant::now);
        Follower {
            seen,
            full_check_at: long_ago,
            pruned_at: Instant::now(),
        }
    }

    /// What changed since the last poll (`None`: nothing).
    pub fn poll(&mut self, store: &mut dyn Store) -> Option<Changed> {
        if self.pruned_at.elapsed() >= PRUNE_EVERY {
            self.pruned_at = Instant::now();
            let before = crate::writer::wall_clock() - KEEP_CHANGES_SECS;
            if let Err(e) = store.prune_setting_changes(before) {
                tracing::warn!(error = %e, "pruning settings changes");
            }
        }
        let mut keys = Vec::new();
        let mut missed = false;
        loop {
            let page = match store.setting_changes(self.seen, 1000) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "reading settings changes");
                    return None;
                }
            };
            let Some(&(last, _)) = page.last() else { break };
            // A number skipped: pruned before this node read it, or a
            // transaction that drew one and rolled back. Either way,
            // reload everything.
            missed |= page
                .iter()
                .scan(self.seen, |prev, &(n, _)| {
                    let gap = n != *prev + 1;
                    *prev = n;
                    Some(gap)
                })
                .any(|gap| gap);
            self.seen = last;
            keys.extend(page.into_iter().map(|(_, k)| k));
            if keys.len() > 10_000 {
                missed = true;
                break;
            }
        }
        if missed || self.full_check_at.elapsed() >= FULL_CHECK_EVERY {
            self.full_check_at = Instant::now();
            return Some(Changed::Everything);
        }
        if keys.is_empty() {
            return None;
        }
        keys.sort_unstable();
        keys.dedup();
        Some(Changed::Keys(keys))
    }
}

/// Hands what changed to whoever keeps it in memory.
pub fn apply(inner: &Inner, store: &mut dyn Store, changed: &Changed) {
    let any = |prefix: &str| match changed {
        Changed::Everything => true,
        Changed::Keys(keys) => keys.iter().any(|k| k.starts_with(prefix)),
    };
    let each = |prefix: &'static str| -> Vec<&str> {
        match changed {
            Changed::Everything => Vec::new(),
            Changed::Keys(keys) => keys.iter().filter_map(|k| k.strip_prefix(prefix)).collect(),
        }
    };
    if any("write_key/") {
        match crate::auth::load_keys(store) {
            Ok(keys) => *inner.keys.write().unwrap_or_else(|e| e.into_inner()) = keys,
            Err(e) => tracing::warn!(error = %e, "reloading keys"),
        }
    }
    // Logout, a role change or a deleted operator deletes the session
    // rows: the next request reads the store and finds none.
    match changed {
        Changed::Everything => inner.console.forget_all_cached(),
        Changed::Keys(_) => {
            for hash in each(siyu_console::sessions::PREFIX) {
                inner.console.forget_cached(hash);
            }
        }
    }
    let zone_changed = any(crate::zone::TIME_ZONE_KEY);
    if zone_changed {
        match crate::zone::load_time_zone(store) {
            Ok(tz) => *inner.time_zone.write().unwrap_or_else(|e| e.into_inner()) = tz,
            Err(e) => tracing::warn!(error = %e, "reloading the workspace time zone"),
        }
    }
    if zone_changed || any(siyu_commerce::spend::SETTING) || any("segment/") || any("property/") {
        inner.analytics_cache.invalidate();
    }
    let automation = [
        crate::automation::TEMPLATE_PREFIX,
        crate::automation::JOURNEY_PREFIX,
        crate::automation::RULES_KEY,
        crate::automation::POLICY_KEY,
        crate::intents::KEY,
        crate::zone::TIME_ZONE_KEY,
    ];
    // Segments: the writer reloads the executor once it has them.
    if automation.iter().any(|p| any(p)) {
        inner.automation.reload();
    }
    // Work another node committed for the leader (a standing-by executor
    // ignores it).
    if any(crate::automation::INBOX_PREFIX) {
        let _ = inner
            .automation
            .tx
            .send(crate::automation::AutoInput::Inbox);
    }
    match changed {
        Changed::Everything => inner.fission.forget(None),
        Changed::Keys(_) => {
            for id in each(siyu_growth::fission::CAMPAIGN_PREFIX)
                .into_iter()
                .chain(each(siyu_growth::fission::BACKGROUND_PREFIX))
            {
                inner.fission.forget(Some(id));
            }
        }
    }
    let engine = [
        "segment/",
        crate::definitions::SEGMENT_VERSION_PREFIX,
        "property/",
        crate::rfm::SETTING,
        siyu_store::ERASURES_KEY,
    ];
    if engine.iter().any(|p| any(p)) {
        let keys = match changed {
            Changed::Everything => Vec::new(),
            Changed::Keys(keys) => keys
                .iter()
                .filter(|k| engine.iter().any(|p| k.starts_with(p)))
                .cloned()
                .collect(),
        };
        inner.writer.follow(keys);
    }
}
