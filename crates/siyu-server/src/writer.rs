//! The single writer: one thread owns the store's write connection and is
//! the only one that mutates the engine. Requests queue on a channel; the
//! writer drains everything queued into one append transaction (group
//! commit), applies the new events to the engine in log order, records
//! merges, publishes segment changes, and only then answers: acknowledged
//! means durable and visible.
//!
//! A snapshot is written on a thread of its own under a read of the
//! engine ([`SnapshotJob`]), so ingestion does not stop for it (at 1M
//! persons it used to stop the writer 1.0–1.5 s): meanwhile appends are
//! committed and answered (durable), then applied in log order when it
//! lands; [`WriterHandle::visible`] waits for that. Every other command
//! waits for the snapshot first.
//!
//! An erasure or a new computed property needs the engine rebuilt from the
//! log. That runs on its own thread and connection while the writer keeps
//! appending to the current engine; when it lands the writer catches it up
//! with the events appended meanwhile (read back from the store), swaps it
//! in and only then answers the erasure. Erasures and definitions that
//! arrive during a rebuild wait for it; appends never do.

use crate::metrics::Metrics;
use crate::quarantine::{Broken, Quarantine};
use crate::trace::{self, RequestId};
use siyu_connectors::wecom::sync::is_sync_event;
use siyu_domain::{Event, Identity};
use siyu_engine::rfm::RfmThresholds;
use siyu_engine::snapshot::SnapshotError;
use siyu_engine::{Engine, SegmentChange};
use siyu_store::{Appended, AuditRecord, MergeRecord, SegmentChangeRecord, Store};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Most events folded into one group commit.
const MAX_GROUP_EVENTS: usize = 20_000;
/// Events applied under one hold of the engine's write lock.
const APPLY_SLICE: usize = 1024;
/// Backlog events applied per turn of the writer's loop (milliseconds of
/// work), between group commits ([`Writer::backlog`]).
const BACKLOG_SLICE: usize = 4096;
/// How long a commit waits for readers to release the engine before its
/// events join [`Writer::backlog`] instead (committed and acknowledged,
/// applied once the engine is free): a dashboard pass over a million
/// persons holds the read lock ~120 ms, and the writer must not stand
/// behind it.
const ENGINE_GRACE: Duration = Duration::from_millis(5);
/// A writer step that takes longer than this is logged ([`slow_step`]):
/// appends queue behind it.
const SLOW_STEP: Duration = Duration::from_millis(50);

/// Logs a writer step that held the writer longer than [`SLOW_STEP`]
/// (how pauses under load are found; `RUST_LOG=siyu_server=info`).
fn slow_step(what: &str, started: Instant) {
    let took = started.elapsed();
    if took > SLOW_STEP {
        tracing::info!(
            step = what,
            ms = took.as_millis() as u64,
            "writer step over 50 ms"
        );
    }
}

/// Events read back per step when catching up with another writer.
const CATCH_UP_PAGE: usize = siyu_store::SCAN_PAGE;
/// Write a fresh engine snapshot after at least this many new events...
const SNAPSHOT_EVERY: u64 = 1_000_000;
/// ... and at least this fraction of the events the engine holds: a
/// snapshot costs time in proportion to the engine (~2 s for 1M persons,
/// during which no append commits), so a large engine snapshots less often
/// and each event's share of that cost stays constant. A restart replays
/// at most this fraction of the log.
const SNAPSHOT_FRACTION: u64 = 4;

/// Whether applying `new` events that brought the engine to `applied`
/// calls for a snapshot, the last one having been at `last`.
fn snapshot_due(applied: u64, last: u64) -> bool {
    applied.saturating_sub(last) >= SNAPSHOT_EVERY.max(applied / SNAPSHOT_FRACTION)
}

pub type Reply<T> = oneshot::Sender<Result<T, String>>;

pub enum Command {
    Append {
        events: Vec<Event>,
        reply: Reply<Vec<Appended>>,
        /// The request that sent them (`trace`): a group commit's log
        /// lines name every request it serves.
        request: Option<RequestId>,
    },
    /// Events that are history (a WeCom sync's import of what happened
    /// before): appended and applied like [`Command::Append`]'s, but the
    /// executor is told they are backfill, so they trigger nothing
    /// ([`crate::backfill`]). Committed in a group of their own.
    AppendHistory {
        events: Vec<Event>,
        reply: Reply<Vec<Appended>>,
    },
    /// A command sent while handling a request: handled in that
    /// request's span (`trace::in_scope`), so its log lines carry the id.
    Traced(RequestId, Box<Command>),
    Erase {
        identities: Vec<Identity>,
        /// What settings and audit rows name instead (`Store::erase`).
        pseudonym: String,
        audit: AuditRecord,
        reply: Reply<u64>,
    },
    /// Saves a segment or property definition and applies it to the engine.
    Define {
        definition: Definition,
        reply: Reply<Vec<SegmentChange>>,
    },
    Snapshot {
        reply: Reply<()>,
    },
    /// Answered once every event acknowledged before it is applied: after
    /// the snapshot being written, if any, has landed ([`SnapshotJob`]).
    Visible {
        reply: Reply<()>,
    },
    /// Saves (or with `None` removes) the workspace's RFM thresholds and
    /// pins what then applies (`crate::rfm`); answers the segment
    /// entries/exits it caused.
    SetRfm {
        thresholds: Option<RfmThresholds>,
        reply: Reply<Vec<SegmentChange>>,
    },
    /// Deletes a saved segment or property (`Deletion`) and writes the
    /// audit row; a property starts a rebuild and answers when it lands.
    Delete {
        target: Deletion,
        audit: AuditRecord,
        reply: Reply<Deleted>,
    },
    /// Settings another process changed (`crate::cluster`: other nodes on
    /// the same database): brings the engine to what the store holds —
    /// segments redefined or removed, properties or an erasure rebuilt
    /// from the log, the RFM thresholds pinned. Empty: check everything.
    Follow {
        keys: Vec<String>,
    },
}

impl Command {
    /// What the command is, for the slow-step log ([`slow_step`]).
    fn name(&self) -> &'static str {
        match self {
            Command::Append { .. } => "an append",
            Command::AppendHistory { .. } => "a history append",
            Command::Traced(_, inner) => inner.name(),
            Command::Erase { .. } => "an erasure",
            Command::Define { .. } => "a definition",
            Command::Snapshot { .. } => "a snapshot",
            Command::Visible { .. } => "a visibility wait",
            Command::SetRfm { .. } => "RFM thresholds",
            Command::Delete { .. } => "a deletion",
            Command::Follow { .. } => "following the settings",
        }
    }
}

pub use crate::definitions::{Definition, Deleted, Deletion};

/// An append waiting for its group commit: the events, where the answer
/// goes, and the request that sent them.
type QueuedAppend = (Vec<Event>, Reply<Vec<Appended>>, Option<RequestId>);

/// A segment change as published to subscribers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishedChange {
    pub segment: String,
    pub change: &'static str,
    pub canonical_id: String,
    pub at: i64,
}

/// Opens another connection to the writer's store (for rebuilds).
pub type OpenStore = Arc<dyn Fn() -> anyhow::Result<Box<dyn Store>> + Send + Sync>;

pub struct Writer {
    pub store: Box<dyn Store>,
    /// Whether this node leads (`crate::leader`): only the leader records
    /// segment history.
    pub leadership: Arc<crate::leader::Leadership>,
    pub engine: Arc<RwLock<Engine>>,
    pub metrics: Arc<Metrics>,
    pub changes: broadcast::Sender<PublishedChange>,
    /// Conversation changes (a message in or out, a resolve, an
    /// assignment) for the inbox's stream; sent only while someone listens.
    pub conversations: broadcast::Sender<crate::conversations::ConversationChange>,
    pub snapshot_path: PathBuf,
    /// With PostgreSQL: copies each snapshot file the writer keeps into
    /// the store for other nodes to start from, on its own thread.
    pub sharing: Option<crate::snapshot::Sharing>,
    pub clock: fn() -> i64,
    pub open_store: OpenStore,
    /// The rebuild in progress, if any.
    pub rebuilding: Option<Rebuilding>,
    /// The snapshot being written on its own thread, if any: meanwhile
    /// appends are committed and acknowledged, and applied when it ends.
    pub snapshotting: Option<SnapshotJob>,
    /// Groups committed and acknowledged while a snapshot was written or
    /// readers held the engine longer than [`ENGINE_GRACE`], not applied
    /// yet: applied [`BACKLOG_SLICE`] events per turn of the loop once the
    /// engine is free, so catching up stops the writer no more than the
    /// snapshot did. Appends committed while it is not empty join it, in
    /// log order.
    pub backlog: VecDeque<(Vec<(u64, Event)>, bool)>,
    /// Settings keys followed ([`Command::Follow`]) while a snapshot or
    /// the backlog was pending: applied after them, so appends never
    /// wait behind a followed change (empty: everything).
    pub pending_follow: Option<Vec<String>>,
    /// Whether the backlog holds groups a snapshot held back (already
    /// answered): appends that join it are answered at once too.
    pub backlog_answered: bool,
    /// Answers of appends waiting in the backlog, with the offset the
    /// engine must have applied first (readers held the engine).
    pub held: VecDeque<(u64, Reply<Vec<Appended>>, Vec<Appended>)>,
    /// Emptied whenever the engine is replaced ([`Columns::engine_replaced`]).
    pub columns: std::sync::Arc<crate::columns::Columns>,
    /// The highest log offset the engine has applied. Events above it that
    /// this writer did not append (`siyu import` into the same store) are
    /// read back and applied before anything newer, so the engine always
    /// reflects a prefix of the log — and a snapshot says which.
    pub applied_offset: u64,
    /// The engine's `events_applied` when it was last written to a snapshot
    /// (or loaded), for [`snapshot_due`].
    pub snapshot_at: u64,
    /// The automation executor's queue: applied events and segment
    /// changes are forwarded to it (never blocks: unbounded channel).
    pub automation: Option<Sender<crate::automation::AutoInput>>,
    /// Set by the executor while any journey exists: then it needs every
    /// event (triggers, wait-for-event); else only the ones consent and
    /// auto-replies read, so a bulk import does not flood its queue.
    pub automation_wants_all: Arc<std::sync::atomic::AtomicBool>,
    /// Stored definitions that could not be loaded; a definition saved
    /// under the same key repairs it.
    pub quarantine: Arc<Quarantine>,
    /// `events_applied` when the medians were last tried while nothing
    /// was pinned (nobody had purchased): tried again only after new events.
    pub rfm_checked_at_events: u64,
    /// Erasures committed to the store (`siyu_store::erasures`) that this
    /// engine reflects: read before the engine was built from the store.
    /// A higher count in the store means an erasure by another node: the
    /// engine is rebuilt and no snapshot of the old one is kept.
    pub erasures: u64,
}

/// A snapshot written on its own thread under a read of the engine
/// ([`Writer::start_snapshot`]). The engine must not change meanwhile: the
/// events committed in the meantime wait in `deferred` (their requests are
/// answered: they are durable) and join [`Writer::backlog`] when it ends.
/// Every other command first waits for it and the backlog
/// ([`Writer::finish_snapshot`]).
pub struct SnapshotJob {
    /// The temporary file and the engine's `events_applied` it holds.
    done: Receiver<std::io::Result<(PathBuf, u64)>>,
    /// The log offset the snapshot reflects.
    offset: u64,
    started: Instant,
    /// Committed groups not applied yet: (offset, event) and whether they
    /// are history.
    deferred: Vec<(Vec<(u64, Event)>, bool)>,
    /// Who asked for it (`Command::Snapshot`): answered once it is kept
    /// and, with PostgreSQL, stored for other nodes.
    waiting: Vec<Reply<()>>,
}

/// The last offset of the last non-empty group.
fn last_offset_of<'a>(
    groups: impl DoubleEndedIterator<Item = &'a (Vec<(u64, Event)>, bool)>,
) -> Option<u64> {
    groups.rev().find_map(|(g, _)| g.last().map(|(o, _)| *o))
}

/// A rebuild of the engine from the store, running on its own thread.
pub struct Rebuilding {
    /// The rebuilt engine and the last log offset it applied.
    done: Receiver<anyhow::Result<Rebuilt>>,
    /// Requests answered when it lands.
    waiting: Vec<Waiting>,
    /// Erasures, definitions and snapshots that arrived meanwhile, in order.
    deferred: VecDeque<Command>,
}

/// A request whose answer is the rebuild landing.
enum Waiting {
    Erased(Reply<u64>, u64),
    Defined(Reply<Vec<SegmentChange>>),
    Deleted(Reply<Deleted>, Deleted),
    /// Another node's change (an erasure, a property): nobody to answer.
    Followed,
}

/// The audit row of an engine merge caused by the event at `offset`.
pub fn merge_record(offset: u64, ts: i64, m: siyu_engine::Merge) -> Option<MergeRecord> {
    Some(MergeRecord {
        event_offset: offset,
        ts,
        identity: Identity::parse(&m.identity).ok()?,
        linked: Identity::parse(&m.linked).ok()?,
        from_a: m.from_a,
        from_b: m.from_b,
        into: m.into,
    })
}

/// Wall clock in epoch seconds: the engine's time source in the server.
pub fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Writer {
    /// Broadcasts segment changes to subscribers and returns them as
    /// membership-history rows (the caller writes them once the engine
    /// lock is released).
    fn publish(&self, engine: &Engine, changes: &[SegmentChange]) -> Vec<SegmentChangeRecord> {
        self.publish_caused(engine, changes, &[])
    }

    /// Like [`Writer::publish`], with each change's cause for the
    /// executor (`causes[i]` for `changes[i]`; missing = the clock or a
    /// definition, never history).
    fn publish_caused(
        &self,
        engine: &Engine,
        changes: &[SegmentChange],
        causes: &[Option<crate::automation::Cause>],
    ) -> Vec<SegmentChangeRecord> {
        if changes.is_empty() {
            return Vec::new();
        }
        self.metrics.segment_changes.inc_by(changes.len() as u64);
        let segs = engine.live_segments().segments();
        for c in changes {
            let _ = self.changes.send(PublishedChange {
                segment: segs
                    .get(c.segment as usize)
                    .map_or(String::new(), |s| s.name.clone()),
                change: if c.entered { "enter" } else { "exit" },
                canonical_id: c.canonical_id.clone(),
                at: c.at,
            });
        }
        if let Some(tx) = &self.automation {
            let _ = tx.send(crate::automation::AutoInput::traced(
                crate::automation::AutoInput::Applied {
                    events: Vec::new(),
                    changes: changes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| crate::automation::AppliedChange {
                            segment: segs
                                .get(c.segment as usize)
                                .map_or(String::new(), |s| s.name.clone()),
                            canonical: c.canonical_id.clone(),
                            entered: c.entered,
                            cause: causes.get(i).copied().flatten(),
                        })
                        .collect(),
                },
            ));
        }
        changes
            .iter()
            .map(|c| SegmentChangeRecord {
                segment: segs
                    .get(c.segment as usize)
                    .map_or(String::new(), |s| s.name.clone()),
                canonical_id: c.canonical_id.clone(),
                entered: c.entered,
                at: c.at,
            })
            .collect()
    }

    /// Keeps segment entries/exits in the membership history. Only the
    /// leading node writes it (`crate::leader`): every node computes the
    /// same changes from the shared log, and the leader applies every
    /// node's events, so each change is recorded once.
    fn record_history(&mut self, history: Vec<SegmentChangeRecord>) {
        if history.is_empty() || !self.leadership.is_leader() {
            return;
        }
        if let Err(e) = self.store.record_segment_changes(&history) {
            // Memberships themselves are derived from the log; only the
            // history rows of this instant are lost.
            tracing::error!(error = %e, "recording segment history failed");
        }
    }

    /// Writes the engine snapshot, unless an erasure committed (by another
    /// node) since this engine was built: checked after the file is written
    /// and before it replaces the last one, so a snapshot that may hold an
    /// erased person is never kept.
    /// With PostgreSQL the kept file is then copied into the store
    /// ([`crate::snapshot::Sharing`]) without holding the writer.
    fn write_snapshot(&mut self) -> Result<(), String> {
        self.finish_snapshot();
        let engine = self.engine.clone();
        let engine = engine.read().map_err(|_| "engine lock poisoned")?;
        let started = Instant::now();
        let position =
            crate::snapshot::Position::of(self.store.as_mut(), self.applied_offset, self.erasures)
                .map_err(|e| format!("reading the log at the snapshot's offset: {e}"))?;
        let (store, known) = (&mut self.store, self.erasures);
        let unchanged = || siyu_store::erasures(store.as_mut()).is_ok_and(|n| n <= known);
        let kept =
            crate::snapshot::write_snapshot_if(&self.snapshot_path, &engine, &position, unchanged)
                .map_err(|e| format!("writing {}: {e}", self.snapshot_path.display()))?;
        if !kept {
            return Err("an erasure committed since the engine was built; snapshot dropped until the engine is rebuilt".into());
        }
        self.snapshot_at = engine.events_applied();
        tracing::info!(
            offset = position.offset,
            events = self.snapshot_at,
            seconds = started.elapsed().as_secs_f64(),
            "engine snapshot written"
        );
        if let Some(sharing) = &mut self.sharing {
            sharing.share();
        }
        Ok(())
    }

    /// Starts writing a snapshot on its own thread (none while a rebuild
    /// runs or another snapshot is being written): the writer thread does
    /// not stop for it; see [`SnapshotJob`].
    fn start_snapshot(&mut self) {
        if self.snapshotting.is_some() || self.rebuilding.is_some() {
            return;
        }
        let position = match crate::snapshot::Position::of(
            self.store.as_mut(),
            self.applied_offset,
            self.erasures,
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the log at the snapshot's offset");
                return;
            }
        };
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let (engine, path) = (self.engine.clone(), self.snapshot_path.clone());
        let spawned = std::thread::Builder::new()
            .name("siyu-snapshot".into())
            .spawn(move || {
                let engine = engine.read().unwrap_or_else(|e| e.into_inner());
                let written = crate::snapshot::write_temp(&path, &engine, &position)
                    .map(|tmp| (tmp, engine.events_applied()));
                let _ = tx.send(written);
            });
        match spawned {
            Ok(_) => {
                self.snapshotting = Some(SnapshotJob {
                    done,
                    offset: self.applied_offset,
                    started: Instant::now(),
                    deferred: Vec::new(),
                    waiting: Vec::new(),
                })
            }
            Err(e) => tracing::warn!(error = %e, "starting the snapshot thread"),
        }
    }

    /// Lands the snapshot being written if it is done (or, with `wait`,
    /// once it is): keeps the file unless an erasure committed meanwhile
    /// (as [`Writer::write_snapshot`]), then applies the events committed
    /// while it was written.
    fn poll_snapshot(&mut self, wait: bool) {
        let Some(job) = &self.snapshotting else {
            return;
        };
        let written = if wait {
            job.done
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("the snapshot thread stopped")))
        } else {
            match job.done.try_recv() {
                Ok(w) => w,
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Err(std::io::Error::other("the snapshot thread stopped"))
                }
            }
        };
        let job = self.snapshotting.take().expect("checked above");
        let mut outcome = Ok(());
        match written {
            Ok((tmp, events)) => {
                let (store, known) = (&mut self.store, self.erasures);
                let unchanged = || siyu_store::erasures(store.as_mut()).is_ok_and(|n| n <= known);
                match crate::snapshot::keep_if(&tmp, &self.snapshot_path, unchanged) {
                    Ok(true) => {
                        self.snapshot_at = events;
                        tracing::info!(
                            offset = job.offset,
                            events,
                            seconds = job.started.elapsed().as_secs_f64(),
                            deferred = job.deferred.iter().map(|(g, _)| g.len()).sum::<usize>(),
                            "engine snapshot written beside the writer"
                        );
                        if let Some(sharing) = &mut self.sharing {
                            sharing.share();
                        }
                    }
                    Ok(false) => {
                        outcome = Err("an erasure committed since the engine was built; snapshot dropped until the engine is rebuilt".to_string());
                    }
                    Err(e) => outcome = Err(format!("keeping the snapshot: {e}")),
                }
            }
            Err(e) => outcome = Err(format!("writing the snapshot: {e}")),
        }
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "snapshot failed");
        }
        if !job.waiting.is_empty() {
            // Asked for: answered once other nodes can start from it.
            if let Some(sharing) = &mut self.sharing {
                sharing.finish();
            }
            for reply in job.waiting {
                let _ = reply.send(outcome.clone());
            }
        }
        if !job.deferred.is_empty() {
            self.backlog_answered = true;
            self.backlog.extend(job.deferred);
        }
    }

    /// Waits for the snapshot being written, if any, lands it, and applies
    /// the whole backlog: the engine then reflects every committed event.
    fn finish_snapshot(&mut self) {
        self.poll_snapshot(true);
        while !self.backlog.is_empty() {
            self.apply_backlog(usize::MAX);
        }
    }

    /// Applies backlog events, oldest first, up to `max` of them (a group
    /// larger than what is left is split: a 20 000-event group would hold
    /// the writer ~100 ms on a million persons).
    fn apply_backlog(&mut self, max: usize) {
        let mut left = max;
        while left > 0 {
            let Some((mut group, as_history)) = self.backlog.pop_front() else {
                break;
            };
            if group.len() > left {
                let rest = group.split_off(left);
                self.backlog.push_front((rest, as_history));
            }
            let refs: Vec<(u64, &Event)> = group.iter().map(|(o, e)| (*o, e)).collect();
            self.apply_committed(&refs, as_history);
            left -= group.len();
        }
        if self.backlog.is_empty() {
            self.backlog_answered = false;
        }
    }

    /// Answers the held appends the engine has now applied.
    fn answer_applied(&mut self) {
        while let Some((offset, _, _)) = self.held.front() {
            if *offset > self.applied_offset {
                break;
            }
            let (_, reply, appended) = self.held.pop_front().expect("looked at above");
            let _ = reply.send(Ok(appended));
        }
    }

    /// Whether the engine's write lock can be taken within `grace` (readers
    /// hold it now and then: a dashboard pass, a person list). Polls, so
    /// meanwhile new readers are not held up either.
    fn engine_free(&self, grace: Duration) -> bool {
        let started = Instant::now();
        loop {
            match self.engine.try_write() {
                Ok(_) | Err(std::sync::TryLockError::Poisoned(_)) => return true,
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if started.elapsed() >= grace {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The last offset committed: applied, in the backlog, or deferred by
    /// the snapshot being written.
    fn last_committed(&self) -> u64 {
        self.snapshotting
            .as_ref()
            .and_then(|job| last_offset_of(job.deferred.iter()))
            .or_else(|| last_offset_of(self.backlog.iter()))
            .unwrap_or(self.applied_offset)
    }

    /// Applies a committed group's new events (offset order) and records
    /// what they caused: segment history, merges.
    fn apply_committed(&mut self, new: &[(u64, &Event)], as_history: bool) {
        let (merges, history) = self.apply_logged(new, &|_| as_history);
        if let Some(&(last, _)) = new.last() {
            self.applied_offset = self.applied_offset.max(last);
        }
        self.answer_applied();
        self.record_history(history);
        if !merges.is_empty() {
            if let Err(e) = self.store.record_merges(&merges) {
                // The events are durable; only these audit rows are lost.
                tracing::error!(error = %e, "recording merges failed");
            }
        }
    }

    /// Applies events that are in the log, in offset order, in slices (the
    /// write lock released between them, so a reader never waits for a
    /// whole 20 000-event group; what it sees in between is the engine
    /// after a prefix of the log). Publishes segment changes; returns the
    /// merges and history rows to record. `backfill(offset)` says whether
    /// an event is a bulk load that must trigger nothing ([`crate::backfill`]);
    /// an event the WeCom sync made is history too, by its own marker
    /// (`siyu_connectors::wecom::sync::is_sync_event`), on every node;
    /// the executor is told, with each event and each change it caused.
    fn apply_logged(
        &self,
        events: &[(u64, &Event)],
        backfill: &dyn Fn(u64) -> bool,
    ) -> (Vec<MergeRecord>, Vec<SegmentChangeRecord>) {
        let mut merges = Vec::new();
        let mut history = Vec::new();
        let now = (self.clock)();
        for slice in events.chunks(APPLY_SLICE) {
            let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
            let mut changes = engine.advance_to(now);
            let mut causes: Vec<Option<crate::automation::Cause>> = vec![None; changes.len()];
            let listening = self.conversations.receiver_count() > 0;
            for &(offset, e) in slice {
                let applied = engine.apply(offset, e);
                if listening {
                    if let Some(kind) = crate::conversations::change_kind(e) {
                        let _ = self
                            .conversations
                            .send(crate::conversations::ConversationChange {
                                person: engine.canonical_id(applied.person).to_string(),
                                kind,
                                at: e.ts,
                            });
                    }
                }
                causes.extend(std::iter::repeat_n(
                    Some(crate::automation::Cause {
                        ts: e.ts,
                        backfill: backfill(offset) || is_sync_event(e),
                        offset,
                    }),
                    applied.changes.len(),
                ));
                changes.extend(applied.changes);
                merges.extend(
                    applied
                        .merges
                        .into_iter()
                        .filter_map(|m| merge_record(offset, e.ts, m)),
                );
            }
            // Events first: a journey triggered by an event sees the
            // person's segment entries that event caused after it.
            if let Some(tx) = &self.automation {
                let all = self.automation_wants_all.load(Ordering::Relaxed);
                let events: Vec<crate::automation::AppliedEvent> = slice
                    .iter()
                    .filter(|(_, e)| all || crate::automation::always_wanted(e))
                    .map(|&(offset, e)| crate::automation::AppliedEvent {
                        offset,
                        event: e.clone(),
                        backfill: backfill(offset) || is_sync_event(e),
                    })
                    .collect();
                if !events.is_empty() {
                    let _ = tx.send(crate::automation::AutoInput::traced(
                        crate::automation::AutoInput::Applied {
                            events,
                            changes: Vec::new(),
                        },
                    ));
                }
            }
            history.extend(self.publish_caused(&engine, &changes, &causes));
        }
        (merges, history)
    }

    /// Applies the events other writers appended after `applied_offset`
    /// (below `before`, when given; at most `max` of them). Their merges
    /// were recorded by their writer; segment changes are this engine's.
    /// They are backfill (trigger nothing) when an import's backfill
    /// range covers them; other nodes' events are live ([`crate::backfill`]).
    /// Returns whether it stopped at `max` with more to read.
    fn catch_up(&mut self, before: Option<u64>, max: usize) -> siyu_store::Result<bool> {
        let mut done = 0usize;
        // Read before the events: a range is written before its import's
        // first append, so every followed event it covers is seen with it.
        let ranges = crate::backfill::FollowedRanges::read(self.store.as_mut())?;
        let backfill = |offset: u64| ranges.is_backfill(offset);
        loop {
            // Offsets up to the head are committed; read the head first, so
            // an empty scan below it means erased, not yet to come.
            let head = self.store.last_offset()?;
            let page = self.store.scan(self.applied_offset, CATCH_UP_PAGE)?;
            let page: Vec<(u64, &Event)> = page
                .iter()
                .filter(|e| e.offset <= head && before.is_none_or(|b| e.offset < b))
                .map(|e| (e.offset, &e.event))
                .collect();
            if page.is_empty() {
                let end = before.map_or(head, |b| b.saturating_sub(1).min(head));
                self.applied_offset = self.applied_offset.max(end);
                return Ok(false);
            }
            let (_, history) = self.apply_logged(&page, &backfill);
            self.applied_offset = page.last().map_or(self.applied_offset, |(o, _)| *o);
            self.record_history(history);
            done += page.len();
            if done >= max {
                return Ok(true);
            }
        }
    }

    fn remove_snapshot(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.snapshot_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", self.snapshot_path.display())),
        }
    }

    /// A computed property was defined or deleted: no snapshot holds the
    /// new set. The file goes, and with PostgreSQL the stored ones too: a
    /// start refuses them anyway, but one at the log's head would keep the
    /// rebuilt engine's snapshot (no newer) from being stored.
    fn remove_snapshots_of_other_properties(&mut self) -> Result<(), String> {
        self.remove_snapshot()?;
        if self.sharing.is_some() {
            self.store
                .delete_snapshots()
                .map_err(|e| format!("deleting the stored snapshots: {e}"))?;
        }
        Ok(())
    }

    /// One transaction for every queued request, written (and logged)
    /// as the work of all of them (`trace::in_scope_of_all`).
    fn group_commit(&mut self, batch: Vec<QueuedAppend>) {
        let requests: Vec<RequestId> = batch.iter().filter_map(|q| q.2.clone()).collect();
        trace::in_scope_of_all(&requests, || self.commit_group(batch, false));
    }

    /// `as_history`: the events trigger nothing (`Command::AppendHistory`).
    fn commit_group(&mut self, batch: Vec<QueuedAppend>, as_history: bool) {
        let started = Instant::now();
        // One transaction for every queued request: their events in queue order.
        let total = batch.iter().map(|(e, _, _)| e.len()).sum();
        let mut owned: Vec<Event> = Vec::with_capacity(total);
        let mut replies = Vec::with_capacity(batch.len());
        for (events, reply, _) in batch {
            replies.push((events.len(), reply));
            owned.extend(events);
        }
        let appending = Instant::now();
        let result = self.store.append(&owned);
        slow_step("a store append", appending);
        self.metrics
            .append_latency
            .observe(appending.elapsed().as_secs_f64());
        self.metrics.commit_events.observe(owned.len() as f64);
        let appended = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "append failed; nothing acknowledged");
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
                return;
            }
        };
        if appended.len() != owned.len() {
            let e = format!(
                "store returned {} results for {} events",
                appended.len(),
                owned.len()
            );
            tracing::error!(error = %e, "append broke the store contract; nothing acknowledged");
            for (_, reply) in replies {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
        let first_new = appended.iter().find_map(|a| match a {
            Appended::New(offset) => Some(*offset),
            Appended::Duplicate(_) => None,
        });
        let waiting = self.snapshotting.is_some() || !self.backlog.is_empty();
        if let (Some(first), true) = (first_new, waiting) {
            if first > self.last_committed() + 1 {
                // Another writer appended in between: it is read back in
                // order, after the snapshot and the backlog (rare: several
                // writers).
                self.finish_snapshot();
            }
        }
        let readers_hold_engine = || {
            // Only when these events follow the engine's own (no other
            // writer's events to read back first).
            first_new.is_some_and(|f| f == self.applied_offset + 1)
                && !self.engine_free(ENGINE_GRACE)
        };
        let new_events;
        // The offset these answers wait for, when they wait.
        let mut hold_until = None;
        if self.snapshotting.is_some() || !self.backlog.is_empty() || readers_hold_engine() {
            // The snapshot thread reads the engine, the events it held
            // back are still being applied, or readers hold the engine:
            // these wait, durable, and are applied in log order after
            // them. While a snapshot is written (and until what it held
            // back is applied) they are answered now; otherwise the
            // answers wait until they are applied, so what a client was
            // told is stored is also what it reads next.
            if self.snapshotting.is_none() && !self.backlog_answered {
                hold_until = appended
                    .iter()
                    .filter_map(|a| match a {
                        Appended::New(offset) => Some(*offset),
                        Appended::Duplicate(_) => None,
                    })
                    .max()
                    .or_else(|| last_offset_of(self.backlog.iter()));
            }
            let group: Vec<(u64, Event)> = owned
                .into_iter()
                .zip(&appended)
                .filter_map(|(e, a)| match a {
                    Appended::New(offset) => Some((*offset, e)),
                    Appended::Duplicate(_) => None,
                })
                .collect();
            new_events = group.len() as u64;
            if !group.is_empty() {
                match &mut self.snapshotting {
                    Some(job) => job.deferred.push((group, as_history)),
                    None => self.backlog.push_back((group, as_history)),
                }
            }
        } else {
            let new: Vec<(u64, &Event)> = owned
                .iter()
                .zip(&appended)
                .filter_map(|(e, a)| match a {
                    Appended::New(offset) => Some((*offset, e)),
                    Appended::Duplicate(_) => None,
                })
                .collect();
            new_events = new.len() as u64;
            if let Some(&(first, _)) = new.first() {
                if first > self.applied_offset + 1 {
                    // Another writer appended in between: the engine follows the log.
                    if let Err(e) = self.catch_up(Some(first), usize::MAX) {
                        tracing::error!(error = %e, "reading back other writers' events failed");
                    }
                }
            }
            self.apply_committed(&new, as_history);
        }
        self.metrics.events_accepted.inc_by(new_events);
        self.metrics
            .events_duplicate
            .inc_by(appended.len() as u64 - new_events);
        self.metrics.commits.inc();
        self.metrics
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        let mut rest = appended.as_slice();
        for (n, reply) in replies {
            let (mine, tail) = rest.split_at(n);
            rest = tail;
            match hold_until {
                Some(offset) => self.held.push_back((offset, reply, mine.to_vec())),
                None => {
                    let _ = reply.send(Ok(mine.to_vec()));
                }
            }
        }
        if self.snapshotting.is_some() || !self.backlog.is_empty() {
            return;
        }
        let applied = self.engine.read().map(|e| e.events_applied()).unwrap_or(0);
        // During a rebuild the current engine may still hold erased data:
        // it is never written to a snapshot.
        if new_events > 0 && self.rebuilding.is_none() && snapshot_due(applied, self.snapshot_at) {
            self.start_snapshot();
        }
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, rx: Receiver<Command>) {
        // Before the first request needs it (a scan of the log on a
        // large embedded store); requests queue meanwhile.
        let started = std::time::Instant::now();
        match self.store.prepare_appends() {
            Ok(()) => tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "store ready for appends"
            ),
            // The first append tries again and answers with the error.
            Err(e) => tracing::warn!(error = %e, "preparing the store for appends failed"),
        }
        // Started from an old snapshot or none (a long replay): the next
        // start, here or on another node, need not replay it again.
        let applied = self.engine.read().map(|e| e.events_applied()).unwrap_or(0);
        if snapshot_due(applied, self.snapshot_at) {
            if let Err(e) = self.write_snapshot() {
                tracing::warn!(error = %e, "snapshot after the start's replay failed");
            }
        }
        loop {
            let step = Instant::now();
            self.poll_rebuild();
            slow_step("landing a rebuild", step);
            let step = Instant::now();
            self.poll_snapshot(false);
            slow_step("landing a snapshot", step);
            let mut engine_busy = false;
            if self.snapshotting.is_none() && !self.backlog.is_empty() {
                if self.engine_free(Duration::ZERO) {
                    let step = Instant::now();
                    self.apply_backlog(BACKLOG_SLICE);
                    slow_step("applying the backlog", step);
                } else {
                    engine_busy = true;
                }
            }
            if self.snapshotting.is_none() && self.backlog.is_empty() {
                if let Some(keys) = self.pending_follow.take() {
                    if let Err(e) = self.follow(&keys) {
                        tracing::error!(error = %e, "following another node's settings failed");
                    }
                }
            }
            if let Some(sharing) = &mut self.sharing {
                sharing.poll();
            }
            // Wake often while a rebuild, a snapshot or a backlog runs.
            let busy = self.rebuilding.is_some()
                || self.snapshotting.is_some()
                || !self.backlog.is_empty();
            let wait = Duration::from_millis(if engine_busy {
                1
            } else if !self.backlog.is_empty() {
                0
            } else if busy {
                5
            } else {
                500
            });
            let first = match rx.recv_timeout(wait) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) if busy => continue,
                Err(RecvTimeoutError::Timeout) => {
                    // Events another process (an import) appended become
                    // visible without waiting for this server's next write.
                    match self.store.last_offset() {
                        Ok(head) if head > self.applied_offset => {
                            if let Err(e) = self.catch_up(None, CATCH_UP_PAGE * 4) {
                                tracing::error!(error = %e, "reading back other writers' events failed");
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "reading the log head failed"),
                    }
                    // Let window expiries fire without any new event.
                    let now = (self.clock)();
                    let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
                    let mut changes = engine.advance_to(now);
                    // No setting: pin the medians once there are buyers, and
                    // again each hour (`crate::rfm`).
                    if crate::rfm::medians_due(&engine, now, self.rfm_checked_at_events) {
                        self.rfm_checked_at_events = engine.events_applied();
                        let basis = crate::rfm::basis(None, &engine, now);
                        changes.extend(engine.set_rfm_basis(basis));
                    }
                    let history = self.publish(&engine, &changes);
                    drop(engine);
                    self.record_history(history);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut pending = Some(first);
            let mut batch: Vec<QueuedAppend> = Vec::new();
            let mut events = 0usize;
            while let Some(cmd) = pending.take() {
                match cmd {
                    Command::Append {
                        events: e,
                        reply,
                        request,
                    } => {
                        events += e.len();
                        batch.push((e, reply, request));
                        if events < MAX_GROUP_EVENTS {
                            pending = rx.try_recv().ok();
                        }
                    }
                    other => {
                        if !batch.is_empty() {
                            let step = Instant::now();
                            self.group_commit(std::mem::take(&mut batch));
                            slow_step("a group commit", step);
                        }
                        let (step, what) = (Instant::now(), other.name());
                        self.other(other);
                        slow_step(what, step);
                    }
                }
            }
            if !batch.is_empty() {
                let step = Instant::now();
                self.group_commit(batch);
                slow_step("a group commit", step);
            }
        }
        // Every sender is gone; finish what was asked before stopping.
        self.finish_snapshot();
        while let Some(r) = self.rebuilding.take() {
            let result = r
                .done
                .recv()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the rebuild thread stopped")));
            self.rebuilding = Some(r);
            self.land(result);
        }
        if let Err(e) = self.write_snapshot() {
            tracing::warn!(error = %e, "final snapshot failed");
        }
        // Other nodes start from it: stopped only once it is stored.
        if let Some(sharing) = &mut self.sharing {
            sharing.finish();
        }
    }

    /// Starts rebuilding the engine from the store on another thread;
    /// `waiting` is answered when it lands.
    fn start_rebuild(&mut self, waiting: Waiting) {
        // The event columns may hold what an erasure removes.
        self.columns.engine_replaced();
        debug_assert!(self.rebuilding.is_none(), "one rebuild at a time");
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let (open, clock) = (self.open_store.clone(), self.clock);
        let request = trace::current();
        let spawned = std::thread::Builder::new()
            .name("siyu-rebuild".into())
            .spawn(move || {
                let _request = request.as_ref().map(|r| r.span().entered());
                let started = Instant::now();
                let result = open().and_then(|mut store| rebuild_to(store.as_mut(), None, clock()));
                if let Ok(Rebuilt { engine, offset, .. }) = &result {
                    tracing::info!(
                        persons = engine.person_count(),
                        offset,
                        seconds = started.elapsed().as_secs_f64(),
                        "engine rebuilt from the store"
                    );
                }
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            // No thread: rebuild here (the writer pauses meanwhile).
            tracing::warn!(error = %e, "cannot start a rebuild thread; rebuilding inline");
            let result = rebuild_to(self.store.as_mut(), None, (self.clock)());
            let (tx, done) = std::sync::mpsc::sync_channel(1);
            let _ = tx.send(result);
            self.rebuilding = Some(Rebuilding {
                done,
                waiting: vec![waiting],
                deferred: VecDeque::new(),
            });
            return;
        }
        self.rebuilding = Some(Rebuilding {
            done,
            waiting: vec![waiting],
            deferred: VecDeque::new(),
        });
    }

    /// Lands the rebuild if it finished.
    fn poll_rebuild(&mut self) {
        let Some(r) = &self.rebuilding else { return };
        let result = match r.done.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(anyhow::anyhow!("the rebuild thread stopped")),
        };
        self.land(result);
    }

    /// Catches the rebuilt engine up with the events appended since its
    /// last scan, swaps it in, answers the waiting requests, then runs the
    /// deferred commands (which may start the next rebuild).
    fn land(&mut self, result: anyhow::Result<Rebuilt>) {
        let Some(Rebuilding {
            waiting, deferred, ..
        }) = self.rebuilding.take()
        else {
            return;
        };
        let caught_up = result.and_then(|mut rebuilt| {
            // The current engine already published these events' segment
            // changes and merges; the rebuilt one only needs their effect.
            rebuilt.offset = replay_log(self.store.as_mut(), &mut rebuilt.engine, rebuilt.offset)?;
            let _ = rebuilt.engine.advance_to((self.clock)());
            Ok(rebuilt)
        });
        let outcome = match caught_up {
            Ok(Rebuilt {
                engine,
                offset,
                broken,
                ..
            }) => {
                *self.engine.write().unwrap_or_else(|e| e.into_inner()) = engine;
                self.columns.engine_replaced();
                self.quarantine
                    .reload(&crate::definitions::PREFIXES, broken);
                self.applied_offset = offset;
                self.answer_applied();
                if let Err(e) = self.write_snapshot() {
                    tracing::warn!(error = %e, "snapshot after rebuild failed");
                }
                Ok(())
            }
            Err(e) => {
                // The store is right (the erasure is committed), the engine
                // is stale until a rebuild succeeds: say so to the caller.
                tracing::error!(error = %e, "rebuilding the engine failed");
                Err(format!("rebuilding the engine failed: {e}"))
            }
        };
        for w in waiting {
            match w {
                Waiting::Erased(reply, n) => {
                    let _ = reply.send(outcome.clone().map(|()| n));
                }
                Waiting::Defined(reply) => {
                    let _ = reply.send(outcome.clone().map(|()| Vec::new()));
                }
                Waiting::Deleted(reply, deleted) => {
                    let _ = reply.send(outcome.clone().map(|()| deleted));
                }
                Waiting::Followed => {}
            }
        }
        for cmd in deferred {
            self.other(cmd);
        }
    }

    /// Saves a definition; a segment applies at once, a property starts a
    /// rebuild (it must see the whole log) and answers when that lands.
    fn define(&mut self, definition: Definition, reply: Reply<Vec<SegmentChange>>) {
        match self.save_definition(definition) {
            Ok(Some(changes)) => {
                let _ = reply.send(Ok(changes));
            }
            Ok(None) => self.start_rebuild(Waiting::Defined(reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Saves a definition; `Ok(None)` when the engine must be rebuilt.
    fn save_definition(
        &mut self,
        definition: Definition,
    ) -> Result<Option<Vec<SegmentChange>>, String> {
        // Check against a scratch copy of the definitions before saving anything.
        {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            definition.check(&engine)?;
        }
        // A redefinition keeps its creation number, so load order stays valid.
        // A quarantined row that cannot be read is being replaced: it has
        // no creation number to keep.
        let existing = match self.store.get_setting(&definition.key()) {
            Ok(existing) => existing,
            Err(siyu_store::StoreError::Corrupt(_)) => None,
            Err(e) => return Err(e.to_string()),
        };
        let seq = match existing.as_ref().and_then(|v| v["seq"].as_u64()) {
            Some(seq) => seq,
            // After the highest one: rows may have been deleted, so the
            // count of rows could repeat a number still in use.
            None => crate::definitions::next_seq(self.store.as_mut()).map_err(|e| e.to_string())?,
        };
        if matches!(definition, Definition::Property(_)) {
            // A snapshot cannot hold a property defined after it was taken:
            // it goes before the definition is saved, so a restart replays.
            self.remove_snapshots_of_other_properties()?;
        }
        // A segment's version is drawn before its row is written: the row
        // carries it to every node.
        let version = match &definition {
            Definition::Segment { name, .. } => {
                let current = {
                    let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
                    let live = engine.live_segments();
                    live.index_of(name)
                        .map_or(0, |i| live.segments()[i as usize].version)
                };
                crate::definitions::next_segment_version(self.store.as_mut(), name, current)
                    .map_err(|e| e.to_string())?
            }
            Definition::Property(_) => 0,
        };
        let (key, value) = definition.to_setting(seq, version);
        self.store
            .put_setting(&key, Some(&value))
            .map_err(|e| e.to_string())?;
        self.quarantine.repaired(&key);
        match definition {
            Definition::Segment { name, expr, source } => {
                let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
                let (_, changes) = engine
                    .define_segment(&name, expr, source)
                    .map_err(|e| e.to_string())?;
                engine.set_segment_version(&name, version);
                let history = self.publish(&engine, &changes);
                drop(engine);
                self.record_history(history);
                self.retry_quarantined_segments();
                Ok(Some(changes))
            }
            // A new property must see the whole history: rebuild from the log.
            Definition::Property(_) => Ok(None),
        }
    }

    /// Deletes a saved segment (at once: out of the store, the engine's
    /// live state and so every profile) or a property (its row, then a
    /// rebuild from the log, as when one is defined). Refuses while other
    /// segments read it; a quarantined (unloadable) row is deleted too.
    fn delete(&mut self, target: Deletion, audit: AuditRecord, reply: Reply<Deleted>) {
        match self.delete_definition(&target, &audit) {
            Ok(Some(deleted @ Deleted::Deleted { .. }))
                if matches!(target, Deletion::Property(_)) =>
            {
                self.start_rebuild(Waiting::Deleted(reply, deleted))
            }
            Ok(Some(deleted)) => {
                let _ = reply.send(Ok(deleted));
            }
            Ok(None) => {
                let _ = reply.send(Ok(Deleted::NotFound));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `Ok(None)`: nothing of that name is stored.
    fn delete_definition(
        &mut self,
        target: &Deletion,
        audit: &AuditRecord,
    ) -> Result<Option<Deleted>, String> {
        let key = target.key();
        let stored = match self.store.get_setting(&key) {
            Ok(v) => v.is_some(),
            Err(siyu_store::StoreError::Corrupt(_)) => true,
            Err(e) => return Err(e.to_string()),
        };
        let readers = {
            let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
            match target {
                Deletion::Segment(name) => engine
                    .live_segments()
                    .readers_of(name)
                    .into_iter()
                    .filter(|r| r != name)
                    .collect::<Vec<_>>(),
                Deletion::Property(name) => engine.property_readers(name),
            }
        };
        if !readers.is_empty() {
            return Ok(Some(Deleted::InUse(readers)));
        }
        if !stored {
            return Ok(None);
        }
        if matches!(target, Deletion::Property(_)) {
            // As for a definition: a restart must not load a snapshot
            // holding the deleted property.
            self.remove_snapshots_of_other_properties()?;
        }
        self.store
            .put_setting(&key, None)
            .map_err(|e| e.to_string())?;
        self.store.audit(audit).map_err(|e| e.to_string())?;
        self.quarantine.repaired(&key);
        let version = match target {
            Deletion::Segment(name) => {
                let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
                engine.remove_segment(name).map_err(|readers| {
                    format!("segment `{name}` is read by {}", readers.join(", "))
                })?
            }
            Deletion::Property(_) => None,
        };
        Ok(Some(Deleted::Deleted { version }))
    }

    /// After a segment is saved, quarantined segments that only failed
    /// because they read a missing (broken) one may load now: each
    /// readable one is tried again from its stored row.
    fn retry_quarantined_segments(&mut self) {
        let rows: Vec<(String, serde_json::Value)> = self
            .quarantine
            .under("segment/")
            .into_iter()
            .filter_map(|(name, _)| {
                let key = format!("segment/{name}");
                let row = self.store.get_setting(&key).ok()??;
                Some((key, row))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let keys: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
        let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
        let (changes, still) = crate::definitions::define_stored_segments(&mut engine, rows);
        let history = self.publish(&engine, &changes);
        drop(engine);
        self.record_history(history);
        for key in keys.iter().filter(|k| !still.iter().any(|b| &b.key == *k)) {
            tracing::info!(%key, "quarantined segment loaded after the one it reads was saved");
            self.quarantine.repaired(key);
        }
        for b in still {
            self.quarantine.set(b);
        }
    }

    fn other(&mut self, cmd: Command) {
        if let Command::Append {
            events,
            reply,
            request,
        } = cmd
        {
            // Appends never wait for a rebuild.
            return self.group_commit(vec![(events, reply, request)]);
        }
        if let Command::AppendHistory { events, reply } = cmd {
            return self.commit_group(vec![(events, reply, None)], true);
        }
        if let Command::Follow { keys } = &cmd {
            if self.snapshotting.is_some() || !self.backlog.is_empty() {
                let keys = keys.clone();
                // Applied after them by the loop: appends queued behind
                // this command must not wait for the snapshot.
                self.pending_follow = Some(match self.pending_follow.take() {
                    Some(mut pending) if !pending.is_empty() && !keys.is_empty() => {
                        pending.extend(keys);
                        pending
                    }
                    Some(_) => Vec::new(),
                    None => keys,
                });
                return;
            }
        }
        // Everything else reads or changes the engine as the log has it.
        self.finish_snapshot();
        let cmd = match cmd {
            Command::Traced(_, inner) if matches!(*inner, Command::Visible { .. }) => *inner,
            cmd => cmd,
        };
        if let Command::Visible { reply } = cmd {
            // Appends are applied to the engine in place during a rebuild:
            // they are visible now.
            let _ = reply.send(Ok(()));
            return;
        }
        if let Some(r) = &mut self.rebuilding {
            // They must see (and a snapshot must hold) the rebuilt engine.
            r.deferred.push_back(cmd);
            return;
        }
        match cmd {
            Command::Append { .. } | Command::AppendHistory { .. } => {}
            Command::Traced(request, cmd) => trace::in_scope(Some(&request), || self.other(*cmd)),
            Command::Erase {
                identities,
                pseudonym,
                audit,
                reply,
            } => {
                // The snapshot holds the person's data too: it goes first, so
                // a crash at any point cannot bring erased data back.
                let erased = self.remove_snapshot().and_then(|()| {
                    self.store
                        .erase(&identities, &pseudonym, &audit)
                        .map_err(|e| e.to_string())
                });
                // The rebuild below reflects this erasure (and any before it).
                if erased.is_ok() {
                    match siyu_store::erasures(self.store.as_mut()) {
                        Ok(n) => self.erasures = n,
                        Err(e) => tracing::warn!(error = %e, "reading the erasure count"),
                    }
                }
                match erased {
                    // Links may be gone: rebuild the graph from what remains.
                    Ok(n) => {
                        tracing::info!(
                            identities = identities.len(),
                            erased = n,
                            "erasure committed; rebuilding the engine without it"
                        );
                        self.start_rebuild(Waiting::Erased(reply, n))
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Define { definition, reply } => self.define(definition, reply),
            Command::Delete {
                target,
                audit,
                reply,
            } => self.delete(target, audit, reply),
            Command::Snapshot { reply } => {
                // On its own thread like the periodic one: appends go on
                // meanwhile; answered when it lands (`poll_snapshot`).
                self.start_snapshot();
                if let Some(job) = &mut self.snapshotting {
                    job.waiting.push(reply);
                    return;
                }
                let written = self.write_snapshot();
                // Asked for: answered once other nodes can start from it.
                if let Some(sharing) = &mut self.sharing {
                    sharing.finish();
                }
                let _ = reply.send(written);
            }
            Command::Visible { reply } => {
                let _ = reply.send(Ok(()));
            }
            Command::SetRfm { thresholds, reply } => {
                let _ = reply.send(self.set_rfm(thresholds));
            }
            Command::Follow { keys } => {
                if let Err(e) = self.follow(&keys) {
                    tracing::error!(error = %e, "following another node's settings failed");
                }
            }
        }
    }

    /// [`Command::Follow`]. The node's own changes come back here too and
    /// change nothing: the engine already matches the store.
    fn follow(&mut self, keys: &[String]) -> anyhow::Result<()> {
        let touched = |prefix: &str| keys.is_empty() || keys.iter().any(|k| k.starts_with(prefix));
        if touched(siyu_store::ERASURES_KEY) {
            let erasures = siyu_store::erasures(self.store.as_mut())?;
            if erasures > self.erasures {
                tracing::info!(
                    erasures,
                    "another node erased a person: rebuilding the engine"
                );
                self.erasures = erasures;
                self.remove_snapshot().map_err(anyhow::Error::msg)?;
                self.start_rebuild(Waiting::Followed);
                return Ok(());
            }
        }
        if touched("property/") {
            let stored = crate::definitions::stored_properties(self.store.as_mut())?.defs;
            let differs = {
                let engine = self.engine.read().unwrap_or_else(|e| e.into_inner());
                !crate::definitions::same_properties(&engine, &stored)
            };
            if differs {
                tracing::info!("another node changed a computed property: rebuilding the engine");
                self.remove_snapshots_of_other_properties()
                    .map_err(anyhow::Error::msg)?;
                self.start_rebuild(Waiting::Followed);
                return Ok(());
            }
        }
        if touched("segment/") || touched(crate::definitions::SEGMENT_VERSION_PREFIX) {
            let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
            let (changes, broken) =
                crate::definitions::sync_segments(self.store.as_mut(), &mut engine)?;
            // Published to this node's subscribers; the history rows are
            // the defining node's to write.
            let _ = self.publish(&engine, &changes);
            drop(engine);
            self.quarantine.reload(&["segment/"], broken);
            // Journeys are compiled against the segments: after them.
            if let Some(tx) = &self.automation {
                let _ = tx.send(crate::automation::AutoInput::Reload);
            }
        }
        if touched(crate::rfm::SETTING) {
            let setting = crate::rfm::stored(self.store.as_mut())?;
            let now = (self.clock)();
            let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
            if !crate::rfm::follows(setting.as_ref(), engine.rfm_basis().as_ref()) {
                let basis = crate::rfm::basis(setting, &engine, now);
                let mut changes = engine.advance_to(now);
                changes.extend(engine.set_rfm_basis(basis));
                let _ = self.publish(&engine, &changes);
            }
        }
        Ok(())
    }

    /// Saves the thresholds setting, then pins the setting (or, removed,
    /// the medians at the clock) in the engine and publishes the changes.
    fn set_rfm(&mut self, thresholds: Option<RfmThresholds>) -> Result<Vec<SegmentChange>, String> {
        let value = thresholds
            .map(|t| serde_json::to_value(t).map_err(|e| e.to_string()))
            .transpose()?;
        self.store
            .put_setting(crate::rfm::SETTING, value.as_ref())
            .map_err(|e| e.to_string())?;
        let now = (self.clock)();
        let mut engine = self.engine.write().unwrap_or_else(|e| e.into_inner());
        let mut changes = engine.advance_to(now);
        let basis = crate::rfm::basis(thresholds, &engine, now);
        changes.extend(engine.set_rfm_basis(basis));
        self.rfm_checked_at_events = engine.events_applied();
        let history = self.publish(&engine, &changes);
        drop(engine);
        self.record_history(history);
        Ok(changes)
    }
}

/// Builds the engine from the store: saved definitions first, then the
/// snapshot (if given and valid) and the log after it, then live mode at `now`.
pub fn rebuild(store: &mut dyn Store, snapshot: Option<&[u8]>, now: i64) -> anyhow::Result<Engine> {
    rebuild_to(store, snapshot.map(Engine::from_snapshot), now).map(|rebuilt| rebuilt.engine)
}

/// What [`rebuild_to`] built.
pub struct Rebuilt {
    pub engine: Engine,
    /// The last log offset applied.
    pub offset: u64,
    /// The stored segment and property definitions it could not load
    /// (see `quarantine`); published when this engine is swapped in.
    pub broken: Vec<Broken>,
    /// The events of the snapshot it started from (`None`: none was
    /// given, or it was refused).
    pub snapshot_events: Option<u64>,
    /// The events replayed from the log after it.
    pub replayed: u64,
}

/// [`rebuild`], also returning the last log offset applied and the
/// definitions it quarantined.
pub fn rebuild_to(
    store: &mut dyn Store,
    snapshot: Option<Result<(Engine, u64), SnapshotError>>,
    now: i64,
) -> anyhow::Result<Rebuilt> {
    let mut rebuilt = restore_to_head(store, snapshot)?;
    let engine = &mut rebuilt.engine;
    // Not in the snapshot: the setting (or the medians now) is pinned here.
    let setting = crate::rfm::stored(store)?;
    let basis = crate::rfm::basis(setting, engine, now);
    engine.set_rfm_basis(basis);
    // Nothing holds a person id yet: drop the merged-away persons' slots.
    engine.compact_slots();
    // A snapshot decodes into arrays of exactly their length: without
    // headroom the first new person or event after a start doubles them
    // (copying the person slots: 216 ms at 1M persons, in the first
    // commit). Here, before the server answers, the copy costs nobody.
    engine.shrink_to_fit();
    engine.start_live(now);
    Ok(rebuilt)
}

/// The engine at the log's head, in bulk mode (not live): the snapshot
/// if given and the store agrees with it, then the saved definitions and
/// the log after it. What [`rebuild_to`] makes live, and what the CLI's
/// bulk commands (`siyu import`, `export`, `analytics`, `import-orders`)
/// start from, so adding a file to a large store replays only what the
/// snapshot does not hold.
pub fn restore_to_head(
    store: &mut dyn Store,
    snapshot: Option<Result<(Engine, u64), SnapshotError>>,
) -> anyhow::Result<Rebuilt> {
    let restored = match snapshot {
        None => None,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring engine snapshot; replaying the whole log");
            None
        }
        Some(Ok((e, o))) => match snapshot_refusal(store, &e, o)? {
            None => Some((e, o)),
            Some(why) => {
                tracing::warn!(why, "ignoring engine snapshot; replaying the whole log");
                None
            }
        },
    };
    let snapshot_events = restored.as_ref().map(|(e, _)| e.events_applied());
    let (mut engine, offset) = restored.unwrap_or_else(|| (Engine::for_log(), 0));
    // Whole-population passes (going live, previews, analytics) split the
    // persons over the machine's cores.
    engine.set_parallelism(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let broken = crate::definitions::load_into(store, &mut engine)?;
    let offset = replay_log(store, &mut engine, offset)?;
    let replayed = engine.events_applied() - snapshot_events.unwrap_or(0);
    Ok(Rebuilt {
        engine,
        offset,
        broken,
        snapshot_events,
        replayed,
    })
}

/// Why an engine restored from a snapshot at log offset `offset` cannot
/// be caught up from the log instead of rebuilt: `None` when it can.
fn snapshot_refusal(
    store: &mut dyn Store,
    engine: &Engine,
    offset: u64,
) -> anyhow::Result<Option<&'static str>> {
    if offset > store.last_offset()? {
        return Ok(Some("it is beyond the log's head"));
    }
    // Only an engine that keeps log offsets serves timelines (the store
    // has no identity index), so a snapshot without them is replayed too.
    if !engine.keeps_log_offsets() {
        return Ok(Some("it keeps no log offsets"));
    }
    // A computed property must see the whole log: a snapshot of other
    // definitions (changed while this node was down) cannot be caught up.
    let stored = crate::definitions::stored_properties(store)?.defs;
    if !crate::definitions::same_properties(engine, &stored) {
        return Ok(Some("its computed properties are not the stored ones"));
    }
    Ok(None)
}

/// Applies every stored event after offset `after` to `engine`, in log
/// order; returns the last offset applied (`after` if none).
pub fn replay_log(
    store: &mut dyn Store,
    engine: &mut Engine,
    after: u64,
) -> siyu_store::Result<u64> {
    siyu_store::for_each_page(store, after, |page| {
        for e in &page {
            engine.apply(e.offset, &e.event);
        }
        Ok::<(), siyu_store::StoreError>(())
    })
}

/// The handle request handlers hold.
#[derive(Clone)]
pub struct WriterHandle {
    pub tx: Sender<Command>,
}

impl WriterHandle {
    /// Sends `cmd`, in the current request's span if there is one.
    fn send(&self, cmd: Command) -> Result<(), String> {
        let cmd = match trace::current() {
            Some(request) => Command::Traced(request, Box::new(cmd)),
            None => cmd,
        };
        self.tx.send(cmd).map_err(|_| "writer stopped".to_string())
    }

    /// Appends `events`; inbound messages are first annotated with their
    /// intent (`crate::intents::annotated`), so the log holds it.
    pub async fn append(&self, events: Vec<Event>) -> Result<Vec<Appended>, String> {
        let events = crate::intents::annotated(events).await;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Append {
                events,
                reply,
                request: trace::current(),
            })
            .map_err(|_| "writer stopped".to_string())?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    /// Appends events that are history: they trigger nothing
    /// ([`Command::AppendHistory`]).
    pub async fn append_history(&self, events: Vec<Event>) -> Result<Vec<Appended>, String> {
        let events = crate::intents::annotated(events).await;
        let (reply, rx) = oneshot::channel();
        self.send(Command::AppendHistory { events, reply })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    pub async fn erase(
        &self,
        identities: Vec<Identity>,
        pseudonym: String,
        audit: AuditRecord,
    ) -> Result<u64, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Erase {
            identities,
            pseudonym,
            audit,
            reply,
        })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    pub async fn define(&self, definition: Definition) -> Result<Vec<SegmentChange>, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Define { definition, reply })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    pub async fn set_rfm(
        &self,
        thresholds: Option<RfmThresholds>,
    ) -> Result<Vec<SegmentChange>, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetRfm { thresholds, reply })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    pub async fn delete(&self, target: Deletion, audit: AuditRecord) -> Result<Deleted, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Delete {
            target,
            audit,
            reply,
        })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    /// Waits until every event acknowledged before this call is visible
    /// to readers. An append is answered once committed; it is applied
    /// before the answer except while a snapshot is being written, when it
    /// is applied as soon as the snapshot lands. A caller that reads the
    /// engine for what it just appended waits here first.
    pub async fn visible(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Visible { reply })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    pub async fn snapshot(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Snapshot { reply })?;
        rx.await.map_err(|_| "writer stopped".to_string())?
    }

    /// Settings keys another process changed ([`Command::Follow`]);
    /// answers nothing (the follower does not wait).
    pub fn follow(&self, keys: Vec<String>) {
        let _ = self.tx.send(Command::Follow { keys });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_come_every_million_events_or_every_quarter_of_the_engine() {
        assert!(!snapshot_due(999_999, 0));
        assert!(snapshot_due(1_000_000, 0));
        assert!(!snapshot_due(3_000_000, 2_000_001));
        // 12M applied: the next one after 3M more, not 1M.
        assert!(!snapshot_due(14_000_000, 12_000_000));
        assert!(snapshot_due(16_000_000, 12_000_000));
        // A snapshot newer than the count (a rebuild shrank the engine).
        assert!(!snapshot_due(10, 500));
    }
}
