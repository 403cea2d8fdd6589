//! One leader per workspace for what must happen once.
//!
//! Several nodes on one database each run an executor, but journey
//! timers, sweeps (schedules, birthdays, silence), outbox deliveries,
//! event triggers, reward reconciles and SOP calendars must run on one
//! node at a time: two would enroll the same person twice under different
//! ids, or send one message twice. The node holding the store's lease
//! [`LEASE`] does them; the others stand by, still accepting writes and
//! serving reads.
//!
//! The lease lives in the store (`Store::acquire_lease`, by the database's
//! clock), is renewed every [`RENEW_EVERY`] and lapses [`TTL`] after its
//! holder's last renewal: a dead leader is replaced within
//! `TTL + RENEW_EVERY`. A node that stops releases it at once. Every
//! commit of the leader's executor carries the lease's fencing token and
//! the store refuses it once another node holds the lease, so a leader
//! that was paused (a stall, a partition) past its lease cannot act on
//! what it believed when it resumes: it finds itself fenced and stands
//! down.
//!
//! A node that cannot renew stands down on its own once the lease it last
//! renewed must have lapsed, whether or not anyone else took it.

use crate::automation::AutoInput;
use siyu_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The lease the executor's work runs under.
pub const LEASE: &str = "automation";

/// How long a lease lasts after its last renewal.
pub const TTL: Duration = Duration::from_secs(5);

/// How often the holder renews and the others try to take it.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// This node's view of the lease: its own name and, while it leads, the
/// fencing token (0: standing by).
#[derive(Debug)]
pub struct Leadership {
    /// Unique per process start, so a restarted node is a new holder and
    /// gets a new token.
    pub node: String,
    token: AtomicU64,
}

impl Leadership {
    pub fn new() -> std::io::Result<Self> {
        let bytes = siyu_console::accounts::random_bytes::<6>()?;
        Ok(Leadership {
            node: format!(
                "{}-{}",
                std::process::id(),
                siyu_console::accounts::hex(&bytes)
            ),
            token: AtomicU64::new(0),
        })
    }

    /// The fencing token while this node leads.
    pub fn token(&self) -> Option<u64> {
        match self.token.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.token().is_some()
    }

    /// Takes or renews the lease once; returns the token if this node
    /// holds it (and records it).
    pub fn try_lead(&self, store: &mut dyn Store) -> siyu_store::Result<Option<u64>> {
        let token = store.acquire_lease(LEASE, &self.node, TTL.as_millis() as u64)?;
        self.token.store(token.unwrap_or(0), Ordering::Release);
        Ok(token)
    }

    /// The store refused a commit under `token`: another node holds the
    /// lease. This node no longer leads (unless it took the lease again
    /// under a newer token meanwhile).
    pub fn fenced(&self, token: u64) {
        let _ = self
            .token
            .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    fn stand_down(&self) {
        self.token.store(0, Ordering::Release);
    }

    /// Gives the lease up (a node stopping): another node may take it at
    /// once instead of after [`TTL`].
    pub fn release(&self, store: &mut dyn Store) {
        self.stand_down();
        if let Err(e) = store.release_lease(LEASE, &self.node) {
            tracing::warn!(error = %e, "releasing the automation lease; it lapses on its own");
        }
    }
}

/// Starts the thread that keeps (or waits for) the lease on its own store
/// connection and tells the executor whenever this node starts or stops
/// leading. It holds the application weakly and ends with it.
pub fn spawn(
    app: Weak<crate::Inner>,
    leadership: Arc<Leadership>,
    mut store: Box<dyn Store>,
    executor: Sender<AutoInput>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("siyu-lease".into())
        .spawn(move || {
            let mut led = leadership.token();
            let mut renewed = Instant::now();
            loop {
                std::thread::sleep(RENEW_EVERY);
                if app.upgrade().is_none() {
                    break;
                }
                // Before asking: the lease runs TTL from a moment after this.
                let asked = Instant::now();
                let now = match leadership.try_lead(store.as_mut()) {
                    Ok(token) => {
                        if token.is_some() {
                            renewed = asked;
                        }
                        token
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing the automation lease");
                        // Unreachable store: lead on until the lease this
                        // node renewed last must have lapsed.
                        if led.is_some() && renewed.elapsed() < TTL {
                            continue;
                        }
                        leadership.stand_down();
                        None
                    }
                };
                if now != led {
                    match now {
                        Some(token) => tracing::info!(node = %leadership.node, token, "leading: timers, sweeps and deliveries run here"),
                        None => tracing::info!(node = %leadership.node, "standing by: another node leads"),
                    }
                    led = now;
                    if executor.send(AutoInput::Lead(now)).is_err() {
                        break;
                    }
                }
            }
        })
}
