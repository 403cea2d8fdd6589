//! siyu's durable store: the event log plus the brand's side tables, behind
//! one [`Store`] trait with two implementations (SQLite embedded by default,
//! PostgreSQL for scale) that pass one conformance suite.
//!
//! The store is the system of record. The identity graph and every computed
//! property live in the engine's memory and are rebuilt from the log, so the
//! store never has to agree with a second copy of the truth.
//!
//! May depend on: `siyu-domain`, `rusqlite` (bundled SQLite), `postgres`,
//! `sha2` (the content ids of events stored without a client id).
//! Never on the engine or the server: the store keeps rows, not rules.

use siyu_domain::{Event, Identity};
use std::path::Path;

pub mod automation;
pub mod dump;
mod id_index;
mod migrations;
mod postgres;
mod pseudonym;
mod row;
mod snapshots;
mod sqlite;

pub use crate::automation::{
    ArchiveQuery, ArchivedMessage, AutomationCommit, CommitOutcome, ConsentRow, EnrollmentRow,
    Fence, OutboxItem, OutboxQuery, OutboxStatus, OutboxUpdate, SendAttempt, TaskRow,
};
/// The newest schema version this build knows (its last migration).
pub use crate::migrations::latest as latest_schema_version;
pub use crate::postgres::PostgresStore;
pub use crate::row::{content_id, EventRow, EventRows};
pub use crate::snapshots::{
    LogAnchor, SnapshotInfo, StoredSnapshot, SNAPSHOTS_KEPT, SNAPSHOT_PART,
};
pub use crate::sqlite::SqliteStore;

/// Opens the store a command was pointed at: PostgreSQL when
/// `database_url` is a `postgres://` or `postgresql://` URL, else SQLite in
/// `data_dir`.
/// Events read per `scan` by [`for_each_page`].
pub const SCAN_PAGE: usize = 50_000;

/// Reads the log after offset `after` page by page, in offset order,
/// handing each page to `f`; returns the last offset read (`after` if
/// none). Every whole-log pass (replay, export, sequence analytics) uses it.
pub fn for_each_page<E: From<StoreError>>(
    store: &mut dyn Store,
    after: u64,
    mut f: impl FnMut(Vec<StoredEvent>) -> std::result::Result<(), E>,
) -> std::result::Result<u64, E> {
    let mut offset = after;
    loop {
        let page = store.scan(offset, SCAN_PAGE)?;
        let Some(last) = page.last() else { break };
        offset = last.offset;
        f(page)?;
    }
    Ok(offset)
}

pub fn open_store(data_dir: &Path, database_url: Option<&str>) -> Result<Box<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Box::new(PostgresStore::connect(url)?))
        }
        Some(other) => Err(StoreError::Invalid(format!(
            "database URL `{other}` is not supported; use postgres://user@host:5432/db, or omit it for SQLite in the data dir"
        ))),
        None => Ok(Box::new(SqliteStore::open(data_dir)?)),
    }
}

/// The columns of a stored event a full-log analysis reads
/// ([`Store::scan_narrow`]), borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub struct NarrowEvent<'a> {
    pub offset: u64,
    pub id: Option<&'a str>,
    pub ts: i64,
    pub identity: &'a str,
    /// As stored (`EventType::as_str`).
    pub event_type: &'a str,
    pub channel: &'a str,
    pub amount: i64,
}

/// An event as stored: its position in the log (1-based, dense per store,
/// assigned at append) and the event itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub offset: u64,
    pub event: Event,
}

/// One identity merge, recorded so it can be audited: which two persons
/// became one, through which event, when.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRecord {
    /// Log offset of the event that caused the merge.
    pub event_offset: u64,
    /// Event time of that event (epoch seconds).
    pub ts: i64,
    /// The two identities the event linked.
    pub identity: Identity,
    pub linked: Identity,
    /// Canonical ids of the two persons before and of the one after.
    pub from_a: String,
    pub from_b: String,
    pub into: String,
}

/// A segment entry or exit, as kept in the membership history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentChangeRecord {
    pub segment: String,
    /// The person's canonical id when the change happened.
    pub canonical_id: String,
    pub entered: bool,
    /// Engine clock of the change (epoch seconds).
    pub at: i64,
}

/// An audit-log entry (erasures, key changes, hand-overs …).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: u64,
    /// Epoch seconds, supplied by the caller (the store reads no clock).
    pub at: i64,
    /// Stable action name, e.g. `erase_person`.
    pub action: String,
    /// What was acted on, e.g. a canonical id.
    pub subject: String,
    /// Free-form details (JSON object).
    pub detail: serde_json::Value,
}

/// What an append did with each event of the batch, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this log offset.
    New(u64),
    /// An event with the same client id was stored before; nothing added.
    Duplicate(u64),
}

/// Errors of the store. Messages are lowercase and say what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A commit carried a fencing token that is no longer the lease's:
    /// another node took the lease; nothing was written.
    #[error("fenced: {0}")]
    Fenced(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A lease as stored ([`Store::lease`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct LeaseRow {
    pub holder: String,
    pub token: u64,
    /// Milliseconds left by the database's clock; ≤ 0 once expired.
    pub remaining_ms: i64,
}

/// The setting counting erasures: [`Store::erase`] adds one in its own
/// transaction, so every node on the store (following the settings
/// changes) learns that an erasure committed, and a snapshot taken by an
/// engine that has not rebuilt since can be told apart.
pub const ERASURES_KEY: &str = "cluster/erasures";

/// The number of erasures ever committed to `store` ([`ERASURES_KEY`]).
pub fn erasures(store: &mut dyn Store) -> Result<u64> {
    Ok(store
        .get_setting(ERASURES_KEY)?
        .and_then(|v| v.as_u64())
        .unwrap_or(0))
}

/// The storage seam. Implementations: `SqliteStore`, `PostgresStore`.
///
/// Invariants every implementation keeps (checked by the conformance suite):
/// - `append` is atomic and durable on return (one transaction per batch:
///   that is the group commit), offsets are dense and increasing;
/// - an event whose `id` was appended before is not appended again;
/// - `scan` returns events in offset order and round-trips every field.
pub trait Store: Send {
    /// Appends a batch in one transaction and returns, per input event, its
    /// new offset or the offset of the earlier event with the same id.
    fn append(&mut self, events: &[Event]) -> Result<Vec<Appended>> {
        self.append_rows(&events)
    }

    /// [`Store::append`] of any batch of validated events (the bulk
    /// importer passes its parsed chunks: no owned `Event` per line).
    fn append_rows(&mut self, rows: &dyn EventRows) -> Result<Vec<Appended>>;

    /// Prepares for appending about `expected` events in large batches
    /// (`siyu import`). When that is large against the log, the backend may
    /// drop the secondary indexes of the events and merges tables (not the
    /// unique id index) and build them again in [`Store::end_bulk_load`]:
    /// one sort instead of random inserts. Appends stay atomic, durable and deduplicated;
    /// timelines and erasure stay correct, only slower, until the end. A
    /// store whose bulk load was interrupted (crash) rebuilds the indexes
    /// when it is next opened. The default does nothing.
    fn begin_bulk_load(&mut self, expected: u64) -> Result<()> {
        let _ = expected;
        Ok(())
    }

    /// Loads ahead of time what the first append would otherwise load
    /// (the embedded store's in-memory id index: one scan of the log), so
    /// a server pays it at start, not in its first request; the embedded
    /// store also moves its WAL checkpoints to their own thread from here
    /// on (the appending connection then never checkpoints). The default
    /// does nothing.
    fn prepare_appends(&mut self) -> Result<()> {
        Ok(())
    }

    /// Ends a bulk load: builds every index [`Store::begin_bulk_load`]
    /// dropped and restores the normal settings; durable on return. Does
    /// nothing when no bulk load is in progress.
    fn end_bulk_load(&mut self) -> Result<()> {
        Ok(())
    }

    /// The head of the log: the highest offset ever assigned (0 when
    /// nothing was appended). Offsets are never reused, so after `erase`
    /// removed the newest events this is above the highest one stored.
    fn last_offset(&mut self) -> Result<u64>;

    /// Up to `limit` events with offset > `after`, in offset order.
    fn scan(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>>;

    /// Feeds `f` up to `limit` events with `after < offset <= upto`, in
    /// offset order, as the few columns a full-log analysis reads
    /// ([`NarrowEvent`]); returns the last offset fed (None: no more).
    /// The default reads whole events ([`Store::scan`]); the embedded
    /// store reads only those columns (no payload parsed, no allocation).
    fn scan_narrow(
        &mut self,
        after: u64,
        upto: u64,
        limit: usize,
        f: &mut dyn FnMut(&NarrowEvent<'_>),
    ) -> Result<Option<u64>> {
        let page = self.scan(after, limit)?;
        let mut last = None;
        for stored in page.iter().take_while(|e| e.offset <= upto) {
            let e = &stored.event;
            f(&NarrowEvent {
                offset: stored.offset,
                id: e.id.as_deref(),
                ts: e.ts,
                identity: e.identity.as_str(),
                event_type: e.event_type.as_str(),
                channel: e.channel.as_str(),
                amount: e.amount,
            });
            last = Some(stored.offset);
        }
        Ok(last)
    }

    /// The events stored at `offsets` (any order; offsets with no stored
    /// event, erased say, are skipped), in offset order. Primary-key
    /// lookups: the engine knows each person's offsets
    /// (`Engine::event_offsets`), so the log needs no identity index.
    fn events_at(&mut self, offsets: &[u64]) -> Result<Vec<StoredEvent>>;

    /// `(offset, ts)` of the events stored at `offsets`, skipping offsets
    /// with no stored event, in offset order.
    fn timestamps_at(&mut self, offsets: &[u64]) -> Result<Vec<(u64, i64)>>;

    /// A page of a person's timeline: of the events stored at `offsets`
    /// (the person's, from the engine), newest first by ts, then offset.
    /// `before` is a cursor, the offset of the last event of the previous
    /// page; the page continues strictly after it in that order. A cursor
    /// that names none of these stored events is `StoreError::Invalid`.
    fn timeline(
        &mut self,
        offsets: &[u64],
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut keys = self.timestamps_at(offsets)?;
        keys.sort_unstable_by_key(|&(offset, ts)| std::cmp::Reverse((ts, offset)));
        let start = match before {
            None => 0,
            Some(cursor) => {
                keys.iter().position(|&(o, _)| o == cursor).ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "cursor {cursor} is not the offset of an event on this timeline; \
                             pass the `next_before` of the previous page"
                    ))
                })? + 1
            }
        };
        let page: Vec<u64> = keys.iter().skip(start).take(limit).map(|k| k.0).collect();
        let mut events = self.events_at(&page)?;
        // Back into timeline order (events_at returns offset order).
        let rank: std::collections::HashMap<u64, usize> =
            page.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        events.sort_by_key(|e| rank.get(&e.offset).copied().unwrap_or(usize::MAX));
        Ok(events)
    }

    /// Events of community `group` (join/leave) with `from <= ts <= to`,
    /// oldest first (indexed: group health never scans the log).
    fn group_events(&mut self, group: &str, from: i64, to: i64) -> Result<Vec<StoredEvent>>;

    /// Deletes every event whose `identity` or `ref` is one of `identities`
    /// (one scan of the log: erasure is rare, and an index for it would tax
    /// every append) and writes `audit` in the same transaction. Returns
    /// events removed.
    /// Merge records and segment-history rows naming any of `identities`
    /// are deleted too: they hold the same personal identifiers. Settings
    /// and earlier audit rows are kept but name `pseudonym` instead: every
    /// key segment, JSON string and JSON object key equal to one of
    /// `identities` is replaced (a reward ledger row still used its stock).
    /// On SQLite the freed pages are zeroed (`secure_delete`) and the WAL
    /// is checkpointed and truncated, so no erased text stays in the files.
    fn erase(
        &mut self,
        identities: &[Identity],
        pseudonym: &str,
        audit: &AuditRecord,
    ) -> Result<u64>;

    /// The distinct identities of the log (its `identity` and `ref`
    /// columns) that start with `prefix`, sorted: one scan of the log.
    fn logged_identities_with_prefix(&mut self, prefix: &str) -> Result<Vec<Identity>>;

    /// Renames identities everywhere the store keeps them, in one
    /// transaction: the log's `identity` and `ref` (one scan), merges,
    /// segment history, enrollments, outbox items, consent and tasks, and
    /// settings and audit rows as [`Store::erase`] rewrites them. Each pair
    /// is `(old, new)`; a new name must not be in use already. Returns the
    /// events changed. (The keyed phone hashes' migration; an engine built
    /// before must be rebuilt.)
    fn rename_identities(&mut self, renames: &[(Identity, Identity)]) -> Result<u64>;

    /// Records identity merges for audit.
    fn record_merges(&mut self, merges: &[MergeRecord]) -> Result<()>;

    /// Merges that involved any of `identities`, oldest first.
    fn merges_of(&mut self, identities: &[Identity]) -> Result<Vec<MergeRecord>>;

    /// Appends segment entries/exits to the membership history.
    fn record_segment_changes(&mut self, changes: &[SegmentChangeRecord]) -> Result<()>;

    /// Membership history of `segment` (of one person when `canonical_id`
    /// is given), newest first, at most `limit` rows.
    fn segment_history(
        &mut self,
        segment: &str,
        canonical_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SegmentChangeRecord>>;

    /// Appends to the audit log (the `id` field is assigned by the store).
    fn audit(&mut self, record: &AuditRecord) -> Result<u64>;

    /// The newest `limit` audit records, newest first.
    fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>>;

    /// Reads a value of the key-value settings table (write keys, segment
    /// definitions, spend tables … each under its own key prefix).
    fn get_setting(&mut self, key: &str) -> Result<Option<serde_json::Value>>;

    /// Writes (or with `None` deletes) a settings value.
    fn put_setting(&mut self, key: &str, value: Option<&serde_json::Value>) -> Result<()>;

    /// Writes `value` under `key` only if no row has that key; returns
    /// whether it did. What nodes starting at once use to make a secret
    /// once: each tries, one wins, all read back the winner's.
    fn put_setting_if_absent(&mut self, key: &str, value: &serde_json::Value) -> Result<bool>;

    /// Writes (or deletes) several settings in one transaction.
    fn put_settings(&mut self, items: &[(String, Option<serde_json::Value>)]) -> Result<()>;

    /// Settings whose key starts with `prefix`, sorted by key. Fails on
    /// the first row that cannot be read (see [`Store::list_settings_each`]).
    fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>> {
        self.list_settings_each(prefix)?
            .into_iter()
            .map(|(key, value)| Ok((key, value?)))
            .collect()
    }

    /// Settings whose key starts with `prefix`, sorted by key, each read on
    /// its own: a row that cannot be read (corrupt, or written by an older
    /// build nested deeper than the JSON reader allows) is its `Corrupt`
    /// error in place of its value, and does not hide the others. Start-up
    /// loaders use this to quarantine one bad definition and load the rest.
    fn list_settings_each(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, Result<serde_json::Value>)>>;

    /// The settings changes numbered after `after`, oldest first, at most
    /// `limit`: (number, key). Every insert, update and delete of a
    /// settings row is one, in commit order, by whichever process wrote it
    /// (migration 9): what several nodes on one
    /// database follow. Old ones are pruned ([`Store::prune_setting_changes`]),
    /// so a gap before the first number means some were missed.
    fn setting_changes(&mut self, after: u64, limit: usize) -> Result<Vec<(u64, String)>>;

    /// The newest settings change's number (0: none recorded).
    fn setting_changes_head(&mut self) -> Result<u64>;

    /// Forgets settings changes recorded before `before` (epoch seconds)
    /// but never the newest one; returns how many went.
    fn prune_setting_changes(&mut self, before: i64) -> Result<u64>;

    /// Adds one to the integer setting `key` (absent: 0) in one atomic
    /// statement and returns the new value: a number no other process on
    /// the same store is given (segment versions across nodes).
    fn increment_setting(&mut self, key: &str) -> Result<u64>;

    // ---- leases (migration 10) ----

    /// Takes or renews the lease `name` for `holder` until `ttl_ms` from
    /// now by the database's clock, if it is free, expired or already
    /// `holder`'s; returns its fencing token, or `None` while another
    /// holder's lease runs. The token stays the same while one holder
    /// keeps renewing and grows whenever the holder changes.
    fn acquire_lease(&mut self, name: &str, holder: &str, ttl_ms: u64) -> Result<Option<u64>>;

    /// Ends `holder`'s lease `name` now (nothing if another holds it), so
    /// another node need not wait for it to expire.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()>;

    /// The lease `name` as stored: holder, token and how many
    /// milliseconds it has left by the database's clock (≤ 0: expired).
    fn lease(&mut self, name: &str) -> Result<Option<LeaseRow>>;

    // ---- automation (see `automation`) ----

    /// Commits one executor step atomically: enrollments (insert or
    /// replace by id; a new one whose entry key is taken is skipped),
    /// new outbox items and tasks (ignored when the key exists), outbox
    /// status changes and consent entries.
    fn automation_commit(&mut self, commit: &AutomationCommit) -> Result<CommitOutcome>;

    /// Enrollments not done, by id.
    fn active_enrollments(&mut self) -> Result<Vec<EnrollmentRow>>;

    /// Every enrollment's (journey, identity, entered_at, done), for the
    /// re-entry rules, oldest first.
    fn entry_index(&mut self) -> Result<Vec<(String, String, i64, bool)>>;

    /// The highest enrollment id ever stored (0 if none).
    fn max_enrollment_id(&mut self) -> Result<u64>;

    /// Enrollments of a journey (of one identity when given), newest first.
    fn enrollments(
        &mut self,
        journey: &str,
        identity: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EnrollmentRow>>;

    /// Pending outbox items with `not_before <= now`, oldest due first.
    fn outbox_due(&mut self, now: i64, limit: usize) -> Result<Vec<OutboxItem>>;

    /// The earliest `not_before` of a pending item.
    fn outbox_next_due(&mut self) -> Result<Option<i64>>;

    fn outbox_get(&mut self, key: &str) -> Result<Option<OutboxItem>>;

    /// Outbox items matching the query, newest first.
    fn outbox_list(&mut self, query: &OutboxQuery) -> Result<Vec<OutboxItem>>;

    /// Counts by (status, detail), for a journey's report or all items.
    fn outbox_counts(&mut self, journey: Option<&str>) -> Result<Vec<(OutboxStatus, String, u64)>>;

    /// Items done with `updated_at >= since`: the recent sends the
    /// frequency caps count, reloaded at start.
    fn outbox_done_since(&mut self, since: i64) -> Result<Vec<OutboxItem>>;

    /// The consent ledger (of one identity when given), oldest first.
    fn consent_ledger(&mut self, identity: Option<&str>) -> Result<Vec<ConsentRow>>;

    /// Tasks, newest first; only open ones when `open_only`.
    fn tasks(&mut self, open_only: bool, limit: usize) -> Result<Vec<TaskRow>>;

    /// Marks a task done; false when no open task has that key.
    fn complete_task(&mut self, key: &str, at: i64) -> Result<bool>;

    /// Every attempt at an outbox item, oldest first.
    fn send_attempts(&mut self, key: &str) -> Result<Vec<SendAttempt>>;

    /// Adds to the conversation archive (nothing when the key exists).
    fn archive_message(&mut self, m: &ArchivedMessage) -> Result<()>;

    /// Archived messages the query keeps, newest first.
    fn archived_messages(&mut self, q: &ArchiveQuery) -> Result<Vec<ArchivedMessage>>;

    /// Deletes archived messages older than `before` (retention); how many.
    fn prune_archive(&mut self, before: i64) -> Result<u64>;

    // ---- export and restore (see `dump`) ----

    /// Every row of a side table, ordered by its key, each as a JSON
    /// object column → value (integers, strings, nulls).
    fn side_table_rows(
        &mut self,
        table: &dump::Table,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>>;

    /// Inserts rows read by [`Store::side_table_rows`] (keys and ids
    /// included) in one transaction, then moves the table's id generator
    /// past the highest id. For restoring an export into an empty store: a
    /// key that exists already fails the whole batch. A row that does not
    /// fit the table is `StoreError::Invalid` naming the row and column.
    fn restore_side_table(
        &mut self,
        table: &dump::Table,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<()>;

    /// Whether the store holds nothing a brand made: no event ever appended
    /// and no row in settings or any side table. `siyu import DIR` restores
    /// an export only into such a store.
    fn is_empty_store(&mut self) -> Result<bool> {
        if self.last_offset()? > 0 || !self.list_settings("")?.is_empty() {
            return Ok(false);
        }
        for table in dump::SIDE_TABLES {
            if self.side_table_has_rows(table)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether a side table holds any row.
    fn side_table_has_rows(&mut self, table: &dump::Table) -> Result<bool>;

    // ---- engine snapshots shared by every node (see `snapshots`) ----

    /// Stores an engine snapshot, `bytes` read to their end, in parts of
    /// [`SNAPSHOT_PART`] bytes, in one transaction, with their length and
    /// SHA-256. It is kept only if, at commit, the store still counts
    /// `info.erasures` erasures and holds no snapshot of that count at
    /// `info.log_offset` or beyond (checked under a lock that
    /// [`Store::erase`] takes too, so an erasure either deletes it or
    /// refuses it); then every stored snapshot but the newest
    /// [`SNAPSHOTS_KEPT`] of the current erasure count is deleted. Returns
    /// the stored snapshot, or `None` when it was not kept.
    fn put_snapshot(
        &mut self,
        info: &SnapshotInfo,
        bytes: &mut dyn std::io::Read,
    ) -> Result<Option<StoredSnapshot>>;

    /// The stored snapshots, newest (highest log offset) first.
    fn snapshots(&mut self) -> Result<Vec<StoredSnapshot>>;

    /// The bytes of stored snapshot `id`, read in one consistent view and
    /// checked against its length and SHA-256 (`Corrupt` when they
    /// differ); `None` when it is no longer stored (a newer one pruned it,
    /// or an erasure deleted it).
    fn read_snapshot(&mut self, id: u64) -> Result<Option<Vec<u8>>>;

    /// Deletes every stored snapshot; returns how many there were.
    /// [`Store::erase`] and [`Store::rename_identities`] do it in their
    /// own transaction.
    fn delete_snapshots(&mut self) -> Result<u64>;

    /// The newest stored event at or below `offset`: its offset and id
    /// (`None`: no event is stored there). What ties a snapshot to the
    /// log it was taken of ([`SnapshotInfo::anchor`]).
    fn log_anchor(&mut self, offset: u64) -> Result<Option<LogAnchor>>;
}
