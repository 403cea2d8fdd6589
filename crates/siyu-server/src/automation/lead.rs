//! The executor leading or standing by (see `crate::leader`).
//!
//! Only the node holding the automation lease runs timers, sweeps,
//! triggers and deliveries, and every one of its commits carries the
//! lease's fencing token. A standing-by node still takes requests' work —
//! mass sends, queued effects, consent, retries, a journey to exit — and
//! commits it without a token (it acts on nothing itself); it then bumps
//! [`INBOX_KEY`], which the leader's settings follower sees
//! (`crate::cluster`) and answers by picking the work up from the store
//! ([`AutoInput::Inbox`](super::AutoInput::Inbox)).
//!
//! Taking over: the new leader loads the running state from the store and
//! replays the writer's applied inputs of the last [`RECENT_SECS`] (kept
//! leading or not), so events the old leader had not acted on still
//! trigger; an enrollment whose entry key is stored is not made again,
//! and effects are keyed (outbox, tasks), so nothing committed is
//! repeated.

use super::{AutoInput, Executor, Exited};
use siyu_store::{AutomationCommit, Fence, OutboxStatus};
use std::collections::HashSet;

/// Bumped by a standing-by node after it committed work for the leader.
pub const INBOX_KEY: &str = "cluster/automation/inbox";

/// `cluster/automation/exit/<journey>`: a journey archived with
/// `?enrollments=exit` on a standing-by node, for the leader to exit.
pub const EXIT_PREFIX: &str = "cluster/automation/exit/";

/// How long applied inputs are kept for a takeover: more than the
/// lease's lapse plus a renewal and the followers' delays.
pub const RECENT_SECS: i64 = 30;

/// At most this many events are kept for a takeover (the oldest go first).
const RECENT_EVENTS: usize = 200_000;

impl Executor {
    /// Acts on the lease thread's news.
    pub(super) fn follow_lease(&mut self, token: Option<u64>, now: i64) {
        match token {
            Some(t) if self.fence.as_ref().map(|f| f.token) == Some(t) => {}
            Some(t) => {
                if let Err(e) = self.lead(t, now) {
                    tracing::error!(error = %e, "taking over the automation failed; standing by");
                    self.stand_down();
                }
            }
            None if self.fence.is_some() => self.stand_down(),
            None => {}
        }
    }

    /// Starts leading under `token`: the running state from the store,
    /// then what was applied while standing by, then exits asked for.
    pub(super) fn lead(&mut self, token: u64, now: i64) -> anyhow::Result<()> {
        self.fence = Some(Fence {
            lease: crate::leader::LEASE.to_string(),
            token,
        });
        self.load_state(now)?;
        let recent: Vec<_> = self.recent.iter().map(|(_, a)| a.clone()).collect();
        let replayed: usize = recent.iter().map(|a| a.0.len()).sum();
        self.replaying = true;
        for applied in recent {
            self.on_applied(&applied.0, &applied.1, now);
        }
        self.replaying = false;
        self.exit_requests(now);
        self.flush()?;
        self.publish_interest();
        tracing::info!(
            token,
            enrollments = self.active.len(),
            replayed,
            "automation leading"
        );
        Ok(())
    }

    /// Stops leading: forgets the running state (the store keeps it for
    /// the next leader); verdicts of sends already handed to a connector
    /// are still recorded when they come.
    pub(super) fn stand_down(&mut self) {
        self.fence = None;
        self.active.clear();
        self.by_identity.clear();
        self.timers.clear();
        self.ready.clear();
        self.delayed.clear();
        self.delayed_items.clear();
        self.commit.enrollments.clear();
        self.publish_interest();
        tracing::info!("automation standing by");
    }

    pub(super) fn forget_old_recent(&mut self, now: i64) {
        let mut events: usize = self.recent.iter().map(|(_, a)| a.0.len()).sum();
        while let Some((at, a)) = self.recent.front() {
            if now - at <= RECENT_SECS && events <= RECENT_EVENTS {
                break;
            }
            events -= a.0.len();
            self.recent.pop_front();
        }
    }

    /// Whether the store holds an enrollment under `entry_key` (while
    /// replaying; an unreadable answer counts as yes: the quiet side).
    pub(super) fn entered_already(
        &mut self,
        journey: &str,
        identity: &str,
        entry_key: &str,
    ) -> bool {
        match self
            .store
            .enrollments(journey, Some(identity), usize::MAX >> 2)
        {
            Ok(rows) => rows.iter().any(|r| r.entry_key == entry_key),
            Err(e) => {
                tracing::error!(error = %e, "checking a replayed enrollment; not entered again");
                true
            }
        }
    }

    /// After a standing-by node's commit: tells the leader there is work.
    pub(super) fn signal_leader(&mut self, c: &AutomationCommit) -> anyhow::Result<()> {
        let for_leader = !c.outbox.is_empty()
            || !c.consent.is_empty()
            || c.updates.iter().any(|u| u.status == OutboxStatus::Pending);
        if for_leader {
            self.store.increment_setting(INBOX_KEY)?;
        }
        Ok(())
    }

    /// The leader picks up what other nodes committed: pending outbox
    /// items it does not hold, the consent ledger, journeys to exit.
    pub(super) fn pick_up(&mut self, now: i64) {
        if self.fence.is_none() {
            return;
        }
        // What it delivered is recorded first, so no done item reads as pending.
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "automation commit failed");
        }
        let known: HashSet<String> = self
            .ready
            .iter()
            .map(|i| i.key.clone())
            .chain(self.delayed_items.keys().cloned())
            .chain(self.in_flight.keys().cloned())
            .collect();
        match self.store.outbox_due(i64::MAX, usize::MAX >> 2) {
            Ok(items) => {
                for item in items.into_iter().filter(|i| !known.contains(&i.key)) {
                    self.remember_reply(&item.key, &item.identity, item.created_at);
                    self.schedule(item, now);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading other nodes' outbox items"),
        }
        match self.store.consent_ledger(None) {
            Ok(rows) => {
                self.consent.clear();
                for r in rows {
                    self.consent
                        .entry(r.identity.clone())
                        .or_default()
                        .push(super::consent_entry(&r));
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the consent ledger"),
        }
        self.exit_requests(now);
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "automation commit failed");
        }
    }

    /// Exits the journeys other nodes archived with `?enrollments=exit`.
    fn exit_requests(&mut self, now: i64) {
        let asked = match self.store.list_settings(EXIT_PREFIX) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "reading journeys to exit");
                return;
            }
        };
        if asked.is_empty() {
            return;
        }
        self.input(AutoInput::Reload, now);
        for (key, _) in asked {
            let journey = &key[EXIT_PREFIX.len()..];
            let exited = self.exit_journey(journey, now);
            match self.flush() {
                Ok(()) => {
                    tracing::info!(
                        journey,
                        exited = exited.enrollments,
                        cancelled = exited.cancelled,
                        "journey exited for another node"
                    );
                    if let Err(e) = self.store.put_setting(&key, None) {
                        tracing::warn!(error = %e, %key, "clearing an exit request; it is done again, harmlessly");
                    }
                }
                Err(e) => tracing::error!(error = %e, journey, "exiting a journey"),
            }
        }
    }

    /// A standing-by node's `?enrollments=exit`: asks the leader (through
    /// the store) and answers with what the leader will end, as stored now.
    pub(super) fn ask_leader_to_exit(&mut self, journey: &str, now: i64) -> Result<Exited, String> {
        let running = self
            .store
            .enrollments(journey, None, usize::MAX >> 2)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|e| !e.done)
            .count();
        let pending: u64 = self
            .store
            .outbox_counts(Some(journey))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(s, _, _)| *s == OutboxStatus::Pending)
            .map(|(_, _, n)| n)
            .sum();
        self.store
            .put_setting(
                &format!("{EXIT_PREFIX}{journey}"),
                Some(&serde_json::json!({ "asked_at": now })),
            )
            .map_err(|e| e.to_string())?;
        Ok(Exited {
            enrollments: running,
            cancelled: pending as usize,
        })
    }
}
