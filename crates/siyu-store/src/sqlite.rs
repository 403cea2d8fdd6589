//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so an
//! append that returned survives a crash or power loss. One connection per
//! store; appends take the write lock up front (`BEGIN IMMEDIATE`), so a
//! second process writing the same file waits instead of forking the log.
//!
//! Lists of identities go in as one JSON array parameter read with
//! `json_each`, so every statement has a fixed text and is prepared once.

use crate::automation;
use crate::dump;
use crate::id_index::{Confirm, IdIndex};
use crate::migrations::{self, Dialect};
use crate::pseudonym::Pseudonymize;
use crate::row::{self, to_sql_int, EventRows, StoredRow, EVENT_COLUMNS, EVENT_COLUMN_COUNT};
use crate::{
    Appended, AuditRecord, MergeRecord, Result, SegmentChangeRecord, Store, StoreError, StoredEvent,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use siyu_domain::Identity;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Adds one to an integer setting (absent: 0) and answers the new value
/// (`Store::increment_setting`, and the erasure count in `erase`).
const INCREMENT_SETTING: &str = "INSERT INTO settings (key, value) VALUES (?1, '1')
    ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS INTEGER) + 1 AS TEXT)
    RETURNING CAST(value AS INTEGER)";

/// Epoch milliseconds now: the processes sharing one SQLite file share
/// the machine's clock.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Takes the lease if it is free, expired or the caller's; the token
/// grows only when the holder changes (see [`Store::acquire_lease`]).
const ACQUIRE_LEASE: &str = "INSERT INTO leases (name, holder, token, expires_at)
    VALUES (?1, ?2, 1, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) + ?3)
    ON CONFLICT (name) DO UPDATE SET
        token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END,
        holder = excluded.holder,
        expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder
       OR leases.expires_at <= CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
    RETURNING token";

const DIALECT: Dialect = Dialect {
    offset_key: "INTEGER PRIMARY KEY",
    auto_key: "INTEGER PRIMARY KEY",
    drop_id_index: "DROP INDEX IF EXISTS events_event_id;",
    setting_seq_key: "INTEGER PRIMARY KEY AUTOINCREMENT",
    setting_triggers: "
    CREATE TRIGGER settings_inserted AFTER INSERT ON settings BEGIN
        INSERT INTO setting_changes (key, at) VALUES (NEW.key, CAST(strftime('%s', 'now') AS INTEGER));
    END;
    CREATE TRIGGER settings_updated AFTER UPDATE ON settings BEGIN
        INSERT INTO setting_changes (key, at) VALUES (NEW.key, CAST(strftime('%s', 'now') AS INTEGER));
    END;
    CREATE TRIGGER settings_deleted AFTER DELETE ON settings BEGIN
        INSERT INTO setting_changes (key, at) VALUES (OLD.key, CAST(strftime('%s', 'now') AS INTEGER));
    END;",
    blob: "BLOB",
    snapshot_parts_storage: "",
};

/// Deletes the stored snapshots (`erase`, `rename_identities`,
/// `delete_snapshots`); returns how many. One writer at a time: no lock
/// beyond the transaction's is needed.
fn delete_stored_snapshots(tx: &Connection) -> Result<u64> {
    tx.execute("DELETE FROM engine_snapshot_parts", [])
        .map_err(db("deleting stored snapshots"))?;
    tx.execute("DELETE FROM engine_snapshots", [])
        .map_err(db("deleting stored snapshots"))
        .map(|n| n as u64)
}

/// The columns of a stored snapshot's row, as [`stored_snapshot`] reads them.
const SNAPSHOT_COLUMNS: &str =
    "id, log_offset, erasures, anchor_offset, anchor_id, byte_len, sha256, created_at";

fn stored_snapshot(r: &rusqlite::Row<'_>) -> Result<crate::StoredSnapshot> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(format!("sqlite snapshot row: {e}"));
    let int = |i: usize| r.get::<_, i64>(i).map_err(get).and_then(row::offset_out);
    let anchor_offset = int(3)?;
    Ok(crate::StoredSnapshot {
        id: int(0)?,
        info: crate::SnapshotInfo {
            log_offset: int(1)?,
            erasures: int(2)?,
            anchor: match anchor_offset {
                0 => None,
                offset => Some(crate::LogAnchor {
                    offset,
                    event_id: r.get(4).map_err(get)?,
                }),
            },
            created_at: r.get(7).map_err(get)?,
        },
        len: int(5)?,
        sha256: r.get(6).map_err(get)?,
    })
}

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page size of a new database file, in bytes.
const PAGE_SIZE: i64 = 4 * 1024;

/// The database file inside the data dir.
pub const DB_FILE: &str = "siyu.db";

/// A `map_err` adapter naming the step that failed.
fn db(step: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(format!("sqlite {step}: {e}"))
}

/// The page cache, in KiB (see `init`).
const CACHE_KIB: i64 = 64 * 1024;

/// The page cache while building indexes, in KiB (see `build_indexes`).
const INDEX_BUILD_CACHE_KIB: i64 = 4 * 1024;

/// Next to the database file: a bulk load holds an exclusive lock on it
/// while the secondary indexes may be missing, so [`SqliteStore::open`]
/// can tell an import in progress (leave them) from one that died (build
/// them). The OS drops the lock when the process dies, however it dies.
pub const BULK_LOCK_FILE: &str = "siyu.db.bulk-lock";

/// A bulk load drops the secondary indexes only for at least this many
/// events (and at least as many as the log holds): below it, rebuilding
/// them costs more than it saves.
const BULK_MIN_EVENTS: u64 = 100_000;

/// A store in one SQLite database file (or in memory).
pub struct SqliteStore {
    conn: Connection,
    /// `DATA_DIR/siyu.db.bulk-lock`; `None` in memory.
    bulk_lock_path: Option<std::path::PathBuf>,
    /// The held lock while a bulk load is in progress.
    bulk: Option<BulkLoad>,
    /// Client ids → offsets (the idempotency check; the log has no index
    /// over ids, see `id_index`). Loaded from the log by the first append
    /// that carries ids.
    ids: IdIndex,
    /// The database file (`None` in memory): what [`Checkpointer`] opens.
    path: Option<std::path::PathBuf>,
    /// WAL checkpoints off the appending thread, once the store serves
    /// appends ([`Store::prepare_appends`]).
    checkpointer: Option<Checkpointer>,
}

/// Copies the WAL into the database on its own thread and connection, so
/// an append never does it.
///
/// Why: with automatic checkpoints the commit that crosses the threshold
/// copies the whole WAL (64 MiB) into the database and fsyncs it before it
/// returns: under sustained 500-event batches on the 1M bench store that
/// was a 150–500 ms pause every ~2 s. A PASSIVE checkpoint on another
/// connection runs beside the writer (WAL mode lets both go on; it takes
/// no lock the writer waits for) and copies what has committed since the
/// last one, four times a second.
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often [`Checkpointer`] checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

impl Checkpointer {
    fn spawn(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path).map_err(db("opening the checkpoint connection"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db("setting busy timeout"))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("siyu-checkpoint".into())
            .spawn(move || {
                let step = Duration::from_millis(10);
                let mut waited = Duration::ZERO;
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(step);
                    waited += step;
                    if waited < CHECKPOINT_EVERY {
                        continue;
                    }
                    waited = Duration::ZERO;
                    if let Err(e) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                    {
                        tracing::warn!(error = %e, "checkpointing the WAL failed");
                    }
                }
            })
            .map_err(|e| StoreError::Database(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The log as seen inside an append's transaction, for [`IdIndex::find`].
struct TxLog<'a, 'c>(&'a Transaction<'c>);

impl Confirm for TxLog<'_, '_> {
    fn id_at(&mut self, offset: u64) -> Result<Option<String>> {
        self.0
            .prepare_cached("SELECT event_id FROM events WHERE log_offset = ?1")
            .and_then(|mut st| {
                st.query_row([to_sql_int(offset)], |r| r.get::<_, Option<String>>(0))
                    .optional()
            })
            .map(Option::flatten)
            .map_err(db("confirming a duplicate id"))
    }
}

/// The newest migration applied; `None` for a file without the table.
fn schema_version(conn: &Connection) -> Result<Option<i64>> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(db("reading the schema"))?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map(Some)
    .map_err(db("reading schema version"))
}

/// Brings `ids` up to the log's `head`: the ids of the events appended
/// since it was last in step (by another process, or all of them on the
/// first call). A range scan of the newest rows, or of the whole log once
/// (then filed shard by shard: [`IdIndex::loading`]).
fn catch_up(tx: &Transaction<'_>, ids: &mut IdIndex, head: u64) -> Result<()> {
    if ids.upto() >= head {
        return Ok(());
    }
    /// Fewer new rows than this are inserted one by one.
    const BULK: u64 = 100_000;
    let step = "loading client ids";
    let mut st = tx
        .prepare_cached(
            "SELECT event_id, log_offset FROM events
             WHERE log_offset > ?1 AND event_id IS NOT NULL",
        )
        .map_err(db(step))?;
    let mut rows = st.query([to_sql_int(ids.upto())]).map_err(db(step))?;
    let mut loading = (head - ids.upto() >= BULK).then(|| ids.loading());
    while let Some(r) = rows.next().map_err(db(step))? {
        // Borrowed from the row: no allocation per id.
        let id = r
            .get_ref(0)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(db(step))?;
        let offset = row::offset_out(r.get(1).map_err(db(step))?)?;
        match &mut loading {
            Some(l) => l.add(ids, id, offset),
            None => ids.insert(id, offset),
        }
    }
    drop(rows);
    if let Some(l) = loading {
        ids.finish_loading(l, &mut TxLog(tx))?;
    }
    ids.covered_up_to(head);
    Ok(())
}

/// A bulk load in progress.
struct BulkLoad {
    /// Exclusive lock on [`BULK_LOCK_FILE`] (none in memory).
    _lock: Option<std::fs::File>,
    /// Whether the secondary indexes were dropped.
    dropped: bool,
}

/// Tries to take the bulk-load lock without waiting: `None` when another
/// process holds it.
fn try_bulk_lock(path: &Path) -> Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::Database(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "locking {}: {e}",
            path.display()
        ))),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `DATA_DIR/siyu.db` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(format!("creating data dir {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|e| {
            StoreError::Database(format!("opening sqlite database {}: {e}", path.display()))
        })?;
        let mut store = Self::init(conn, Some(data_dir.join(BULK_LOCK_FILE)))?;
        store.path = Some(path);
        Ok(store)
    }

    /// A private in-memory database: nothing is durable (tests, tools).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(
            Connection::open_in_memory().map_err(db("open in memory"))?,
            None,
        )
    }

    fn init(conn: Connection, bulk_lock_path: Option<std::path::PathBuf>) -> Result<Self> {
        let on_disk = bulk_lock_path.is_some();
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db("setting busy timeout"))?;
        // 4 KiB pages for a new file (an existing one keeps its size). Once
        // the identity index is much larger than a group commit, every
        // appended event lands on its own random leaf, and a commit writes
        // each dirty page whole to the WAL: the page size is the bytes
        // written per event. On the 11.5M-event bench store, HTTP batches
        // of 500 went from 36–56k to 82–120k events/s going from 16 KiB to
        // 4 KiB pages; `siyu import` (indexes built by one sort) was the
        // same within noise (469–528k events/s against 456–600k).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(db("setting page_size"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db("setting journal_mode"))?;
        if on_disk && !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "sqlite refused WAL mode (journal_mode is `{mode}`); is the data dir on a local file system?"
            )));
        }
        // FULL: a commit fsyncs the WAL, so an acknowledged append is durable.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db("setting synchronous"))?;
        // Erased rows must not stay readable in freed pages or free space
        // of a page: SQLite zeroes deleted content. The append path frees
        // nothing, so it costs appends nothing (measured with
        // `examples/append_throughput.rs`, see `Store::erase`).
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(db("setting secure_delete"))?;
        // 64 MiB of page cache (negative = KiB) keeps the hot index pages
        // of a large log in memory; checkpointing at ~64 MiB of WAL rather
        // than the default ~4 MiB writes a page that several batches
        // touched to the database once, not once per batch.
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(db("setting cache_size"))?;
        conn.pragma_update(None, "wal_autocheckpoint", 64 * 1024 * 1024 / PAGE_SIZE)
            .map_err(db("setting wal_autocheckpoint"))?;
        let mut store = SqliteStore {
            conn,
            bulk_lock_path,
            bulk: None,
            ids: IdIndex::default(),
            path: None,
            checkpointer: None,
        };
        store.migrate()?;
        store.repair_indexes()?;
        Ok(store)
    }

    /// The rebuildable indexes (see `migrations::REBUILDABLE_INDEXES`)
    /// that are missing.
    fn missing_indexes(&self) -> Result<Vec<&'static str>> {
        let mut missing = Vec::new();
        for &(name, sql) in migrations::REBUILDABLE_INDEXES {
            let exists: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
                    [name],
                    |r| r.get(0),
                )
                .map_err(db("looking for an index"))?;
            if !exists {
                missing.push(sql);
            }
        }
        Ok(missing)
    }

    /// Builds the indexes a bulk load dropped when that load is over: it
    /// died (nobody holds the bulk lock) before its end built them.
    /// While another process's bulk load holds the lock, leaves them to it.
    fn repair_indexes(&mut self) -> Result<()> {
        let Some(path) = self.bulk_lock_path.clone() else {
            return Ok(());
        };
        if self.missing_indexes()?.is_empty() {
            return Ok(());
        }
        let Some(lock) = try_bulk_lock(&path)? else {
            return Ok(());
        };
        self.build_indexes()?;
        drop(lock);
        Ok(())
    }

    /// Creates every missing rebuildable index in one transaction (each
    /// `CREATE INDEX` sorts the table's keys once, on a second sorter
    /// thread too) and commits (durably: `synchronous=FULL`).
    ///
    /// The sorter cuts its runs at the page cache's size, and small runs
    /// sort faster (they stay in the CPU's caches) and keep both threads
    /// busy: on the 11.5M-event bench set the identity index took ~10 s
    /// with the normal 64 MiB cache, ~6.3 s with 4 MiB (SQLite's floor of
    /// 250 pages) and 34 s with 1 GiB. So the build runs with the small
    /// cache; the table is read and the index written sequentially, which
    /// needs no cache.
    fn build_indexes(&mut self) -> Result<()> {
        let missing = self.missing_indexes()?;
        if missing.is_empty() {
            return Ok(());
        }
        self.conn
            .pragma_update(None, "threads", 2)
            .map_err(db("setting sorter threads"))?;
        self.conn
            .pragma_update(None, "cache_size", -INDEX_BUILD_CACHE_KIB)
            .map_err(db("setting the index build's cache_size"))?;
        let built = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("starting the index build"))?;
            for sql in missing {
                tx.execute_batch(sql).map_err(db("building an index"))?;
            }
            tx.commit().map_err(db("committing the index build"))
        })();
        let restored = self
            .conn
            .pragma_update(None, "threads", 0)
            .and_then(|()| self.conn.pragma_update(None, "cache_size", -CACHE_KIB))
            .map_err(db("restoring sorter threads and cache_size"));
        built.and(restored)
    }

    fn migrate(&mut self) -> Result<()> {
        // Most opens find the schema current: a read says so without the
        // write lock, so a connection opened beside a long write (an
        // import's index build, which holds the lock for seconds to a
        // minute) does not wait for it and time out.
        if let Some(current) = schema_version(&self.conn)? {
            if migrations::pending(current)?.next().is_none() {
                return Ok(());
            }
        }
        self.conn
            .execute_batch(migrations::CREATE_SCHEMA_MIGRATIONS)
            .map_err(db("creating schema_migrations"))?;
        // IMMEDIATE: two processes opening a fresh file migrate one at a time.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("starting migration"))?;
        let current = schema_version(&tx)?.unwrap_or(0);
        for m in migrations::pending(current)? {
            tx.execute_batch(&m.sql(&DIALECT))
                .map_err(|e| StoreError::Migration(format!("sqlite version {}: {e}", m.version)))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![m.version, migrations::unix_now()],
            )
            .map_err(db("recording migration"))?;
        }
        tx.commit().map_err(db("committing migrations"))
    }

    /// The rows of `schema_migrations`: (version, applied_at), oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<(i64, i64)>> {
        let mut st = self
            .conn
            .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
            .map_err(db("reading schema_migrations"))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db("reading schema_migrations"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("reading schema_migrations"))?;
        Ok(rows)
    }
}

/// The identities as the JSON array `json_each` reads.
fn json_list(identities: &[Identity]) -> String {
    let list: Vec<&str> = identities.iter().map(Identity::as_str).collect();
    serde_json::Value::from(list).to_string()
}

/// Offsets as a JSON array, for `json_each` (one bound parameter for a
/// list of any length).
fn offset_list(offsets: &[u64]) -> String {
    serde_json::Value::from(offsets).to_string()
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        offset: r.get(0)?,
        event_id: r.get(1)?,
        seq: r.get(2)?,
        ts: r.get(3)?,
        identity: r.get(4)?,
        event_type: r.get(5)?,
        channel: r.get(6)?,
        amount: r.get(7)?,
        reference: r.get(8)?,
        group: r.get(9)?,
        text: r.get(10)?,
        name: r.get(11)?,
        properties: r.get(12)?,
        traits: r.get(13)?,
    })
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    step: &'static str,
) -> Result<Vec<StoredEvent>> {
    let mut st = conn.prepare_cached(sql).map_err(db(step))?;
    let rows = st
        .query_map(params, read_row)
        .map_err(db(step))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db(step))?;
    rows.into_iter().map(StoredRow::into_stored_event).collect()
}

/// Rows per multi-row INSERT: one statement run per 64 events instead of
/// per event (64 × 14 parameters, far below SQLite's limit of 32 766).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT OR FAIL INTO events (...) VALUES (?, ...), ...` for `rows` rows.
/// `OR FAIL` spares SQLite a statement journal (a multi-row insert would
/// otherwise copy every page it touches, to undo just that statement on a
/// constraint error); a failed append rolls back the whole transaction.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; EVENT_COLUMN_COUNT].join(","));
    format!(
        "INSERT OR FAIL INTO events ({EVENT_COLUMNS}) VALUES {}",
        vec![one; rows].join(",")
    )
}

/// Binds and runs `insert` (prepared by [`insert_sql`] for `which.len()`
/// rows) with the events `which` names: (offset, index into `events`).
fn insert_rows(
    insert: &mut rusqlite::CachedStatement<'_>,
    events: &dyn EventRows,
    which: &[(u64, usize)],
) -> Result<()> {
    let bind = db("binding an event");
    for (i, &(offset, index)) in which.iter().enumerate() {
        let r = events.row(index)?;
        let base = i * EVENT_COLUMN_COUNT;
        let mut col = 0;
        let mut put = |v: &dyn rusqlite::ToSql| {
            col += 1;
            insert.raw_bind_parameter(base + col, v)
        };
        put(&to_sql_int(offset)).map_err(&bind)?;
        put(&r.event_id).map_err(&bind)?;
        put(&r.seq).map_err(&bind)?;
        put(&r.ts).map_err(&bind)?;
        put(&r.identity).map_err(&bind)?;
        put(&r.event_type).map_err(&bind)?;
        put(&r.channel).map_err(&bind)?;
        put(&r.amount).map_err(&bind)?;
        put(&r.reference).map_err(&bind)?;
        put(&r.group).map_err(&bind)?;
        put(&r.text).map_err(&bind)?;
        put(&r.name).map_err(&bind)?;
        put(&r.properties).map_err(&bind)?;
        put(&r.traits).map_err(&bind)?;
        debug_assert_eq!(col, EVENT_COLUMN_COUNT);
    }
    insert.raw_execute().map_err(db("inserting events"))?;
    Ok(())
}

fn head(tx: &Transaction<'_>) -> Result<u64> {
    let v: i64 = tx
        .query_row("SELECT last_offset FROM log_head WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(db("reading the log head"))?;
    row::offset_out(v)
}

fn insert_audit(conn: &Connection, record: &AuditRecord) -> Result<u64> {
    conn.prepare_cached("INSERT INTO audit (at, action, subject, detail) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut st| {
            st.execute(params![
                record.at,
                record.action,
                record.subject,
                record.detail.to_string()
            ])
        })
        .map_err(db("writing audit"))?;
    row::offset_out(conn.last_insert_rowid())
}

/// Rewrites the settings and audit rows that name an erased identity
/// (see `pseudonym.rs`), inside the erasure's transaction.
fn pseudonymize_side_tables(tx: &Connection, p: &Pseudonymize<'_>) -> Result<()> {
    let step = "pseudonymizing settings";
    let settings: Vec<(String, String)> = tx
        .prepare("SELECT key, value FROM settings")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(db(step))?;
    for (key, value) in settings {
        let new_key = p.key(&key);
        let new_value = p.json(&value);
        if new_key.is_none() && new_value.is_none() {
            continue;
        }
        tx.execute("DELETE FROM settings WHERE key = ?1", [&key])
            .map_err(db(step))?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![new_key.unwrap_or(key), new_value.unwrap_or(value)],
        )
        .map_err(db(step))?;
    }
    let step = "pseudonymizing the audit log";
    let audit: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, subject, detail FROM audit")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(db(step))?;
    for (id, subject, detail) in audit {
        let new_subject = p.text(&subject);
        let new_detail = p.json(&detail);
        if new_subject.is_none() && new_detail.is_none() {
            continue;
        }
        tx.execute(
            "UPDATE audit SET subject = ?2, detail = ?3 WHERE id = ?1",
            params![
                id,
                new_subject.unwrap_or(subject),
                new_detail.unwrap_or(detail)
            ],
        )
        .map_err(db(step))?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn append_rows(&mut self, events: &dyn EventRows) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Every event is stored under an id: its client's, else its content's.
        let with_ids = row::with_content_ids(events)?;
        let events: &dyn EventRows = &with_ids;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("starting append"))?;
        let head = head(&tx)?;

        // Which ids are stored already: in memory, confirmed against the
        // log. The write lock is held, so nothing can add one before we
        // insert.
        let mut stored = HashMap::new();
        let ids = row::batch_ids(events);
        if !ids.is_empty() {
            catch_up(&tx, &mut self.ids, head)?;
            let mut log = TxLog(&tx);
            for id in ids {
                if let Some(offset) = self.ids.find(id, &mut log)? {
                    stored.insert(id.to_string(), offset);
                }
            }
        }
        let plan = row::plan_append(events, head, &stored);

        let mut chunks = plan.new.chunks_exact(ROWS_PER_INSERT);
        if chunks.len() > 0 {
            let mut insert = tx
                .prepare_cached(&insert_sql(ROWS_PER_INSERT))
                .map_err(db("preparing append"))?;
            for chunk in &mut chunks {
                insert_rows(&mut insert, events, chunk)?;
            }
        }
        if !chunks.remainder().is_empty() {
            let mut insert = tx
                .prepare_cached(&insert_sql(1))
                .map_err(db("preparing append"))?;
            for one in chunks.remainder().chunks(1) {
                insert_rows(&mut insert, events, one)?;
            }
        }
        tx.execute(
            "UPDATE log_head SET last_offset = ?1 WHERE id = 1",
            [to_sql_int(plan.last)],
        )
        .map_err(db("moving the log head"))?;
        tx.commit().map_err(db("committing append"))?;
        // Still in step only if it was before this append.
        if self.ids.upto() == head {
            for &(offset, i) in &plan.new {
                if let Some(id) = events.event_id(i) {
                    self.ids.insert(id, offset);
                }
            }
            self.ids.covered_up_to(plan.last);
        }
        Ok(plan.out)
    }

    fn prepare_appends(&mut self) -> Result<()> {
        // A read transaction: the head and the rows are one snapshot.
        let tx = self
            .conn
            .transaction()
            .map_err(db("starting to load client ids"))?;
        let head = head(&tx)?;
        catch_up(&tx, &mut self.ids, head)?;
        tx.commit().map_err(db("loading client ids"))?;
        if let (None, Some(path)) = (&self.checkpointer, &self.path) {
            self.checkpointer = Some(Checkpointer::spawn(path)?);
            self.conn
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(db("handing checkpoints to their thread"))?;
        }
        Ok(())
    }

    fn begin_bulk_load(&mut self, expected: u64) -> Result<()> {
        if self.bulk.is_some() {
            return Ok(());
        }
        let lock = match &self.bulk_lock_path {
            Some(path) => match try_bulk_lock(path)? {
                Some(lock) => Some(lock),
                // Another process is bulk loading (its end builds the
                // indexes over our events too): append as usual.
                None => return Ok(()),
            },
            None => None,
        };
        // The head bounds the number of stored events from above.
        let stored = self.last_offset()?;
        let dropped = expected >= BULK_MIN_EVENTS && expected >= stored;
        if dropped {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db("starting the bulk load"))?;
            for (name, _) in migrations::REBUILDABLE_INDEXES {
                tx.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))
                    .map_err(db("dropping an index for the bulk load"))?;
            }
            tx.commit().map_err(db("committing the bulk load start"))?;
        }
        self.bulk = Some(BulkLoad {
            _lock: lock,
            dropped,
        });
        Ok(())
    }

    fn end_bulk_load(&mut self) -> Result<()> {
        let Some(bulk) = self.bulk.take() else {
            return Ok(());
        };
        if bulk.dropped {
            self.build_indexes()?;
        }
        // The lock is released only now, after the indexes are committed.
        drop(bulk);
        Ok(())
    }

    fn last_offset(&mut self) -> Result<u64> {
        let v: i64 = self
            .conn
            .prepare_cached("SELECT last_offset FROM log_head WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(db("reading the log head"))?;
        row::offset_out(v)
    }

    fn scan(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        query_events(
            &self.conn,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE log_offset > ?1 ORDER BY log_offset LIMIT ?2"
            ),
            params![to_sql_int(after), to_sql_int(limit as u64)],
            "scanning events",
        )
    }

    fn scan_narrow(
        &mut self,
        after: u64,
        upto: u64,
        limit: usize,
        f: &mut dyn FnMut(&crate::NarrowEvent<'_>),
    ) -> Result<Option<u64>> {
        let step = "scanning event columns";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT log_offset, event_id, ts, identity, type, channel, amount FROM events
                 WHERE log_offset > ?1 AND log_offset <= ?2 ORDER BY log_offset LIMIT ?3",
            )
            .map_err(db(step))?;
        let mut rows = st
            .query(params![
                to_sql_int(after),
                to_sql_int(upto),
                to_sql_int(limit as u64)
            ])
            .map_err(db(step))?;
        let mut last = None;
        while let Some(r) = rows.next().map_err(db(step))? {
            let text = |i: usize| -> Result<&str> {
                r.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map_err(db(step))
            };
            let offset = r.get::<_, i64>(0).map_err(db(step))? as u64;
            let id = match r.get_ref(1).map_err(db(step))? {
                rusqlite::types::ValueRef::Null => None,
                v => Some(
                    v.as_str()
                        .map_err(|e| StoreError::Database(format!("{step}: {e}")))?,
                ),
            };
            f(&crate::NarrowEvent {
                offset,
                id,
                ts: r.get(2).map_err(db(step))?,
                identity: text(3)?,
                event_type: text(4)?,
                channel: text(5)?,
                amount: r.get(6).map_err(db(step))?,
            });
            last = Some(offset);
        }
        Ok(last)
    }

    fn events_at(&mut self, offsets: &[u64]) -> Result<Vec<StoredEvent>> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        query_events(
            &self.conn,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE log_offset IN (SELECT value FROM json_each(?1)) ORDER BY log_offset"
            ),
            [offset_list(offsets)],
            "reading events by offset",
        )
    }

    fn timestamps_at(&mut self, offsets: &[u64]) -> Result<Vec<(u64, i64)>> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let step = "reading event times by offset";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT log_offset, ts FROM events
                 WHERE log_offset IN (SELECT value FROM json_each(?1)) ORDER BY log_offset",
            )
            .map_err(db(step))?;
        let rows = st
            .query_map([offset_list(offsets)], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?))
            })
            .map_err(db(step))?;
        rows.collect::<rusqlite::Result<_>>().map_err(db(step))
    }

    fn group_events(&mut self, group: &str, from: i64, to: i64) -> Result<Vec<StoredEvent>> {
        query_events(
            &self.conn,
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE grp = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts, log_offset"
            ),
            params![group, from, to],
            "reading a group's events",
        )
    }

    fn erase(
        &mut self,
        identities: &[Identity],
        pseudonym: &str,
        audit: &AuditRecord,
    ) -> Result<u64> {
        let ids = json_list(identities);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("starting erase"))?;
        // One scan of the log (no index: erasure is rare, appends are not).
        let removed = tx
            .execute(
                "DELETE FROM events WHERE identity IN (SELECT value FROM json_each(?1))
                    OR ref IN (SELECT value FROM json_each(?1))",
                [&ids],
            )
            .map_err(db("erasing events"))?;
        tx.execute(
            "DELETE FROM merges WHERE identity IN (SELECT value FROM json_each(?1))
                OR linked IN (SELECT value FROM json_each(?1))",
            [&ids],
        )
        .map_err(db("erasing merges"))?;
        tx.execute(
            "DELETE FROM segment_history WHERE canonical_id IN (SELECT value FROM json_each(?1))",
            [&ids],
        )
        .map_err(db("erasing segment history"))?;
        crate::automation::sqlite::erase(&tx, &ids)?;
        pseudonymize_side_tables(
            &tx,
            &Pseudonymize::new(identities.iter().map(Identity::as_str), pseudonym),
        )?;
        tx.query_row(INCREMENT_SETTING, [crate::ERASURES_KEY], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(db("counting the erasure"))?;
        delete_stored_snapshots(&tx)?;
        insert_audit(&tx, audit)?;
        tx.commit().map_err(db("committing erase"))?;
        // The WAL still holds the pages as they were before the erasure
        // (and before secure_delete zeroed them): copy the zeroed pages
        // into the database and truncate the WAL. TRUNCATE waits (busy
        // timeout) for readers of older snapshots; if one outlives it the
        // frames are overwritten by later commits instead, and the next
        // erasure or automatic checkpoint tries again.
        // The first column says whether it was blocked: not an error, the
        // erasure itself is committed.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(db("checkpointing after erase"))?;
        Ok(removed as u64)
    }

    fn logged_identities_with_prefix(&mut self, prefix: &str) -> Result<Vec<Identity>> {
        let step = "listing logged identities";
        let names: Vec<String> = self
            .conn
            .prepare(
                "SELECT identity FROM events WHERE substr(identity, 1, length(?1)) = ?1
                 UNION SELECT ref FROM events WHERE substr(ref, 1, length(?1)) = ?1
                 ORDER BY 1",
            )
            .and_then(|mut st| {
                st.query_map([prefix], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(db(step))?;
        names
            .iter()
            .map(|n| {
                Identity::parse(n)
                    .map_err(|e| StoreError::Corrupt(format!("logged identity `{n}`: {e}")))
            })
            .collect()
    }

    fn rename_identities(&mut self, renames: &[(Identity, Identity)]) -> Result<u64> {
        if renames.is_empty() {
            return Ok(0);
        }
        let step = "renaming identities";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(step))?;
        tx.execute_batch("CREATE TEMP TABLE renames (old TEXT PRIMARY KEY, new TEXT NOT NULL)")
            .map_err(db(step))?;
        {
            let mut st = tx
                .prepare("INSERT INTO temp.renames (old, new) VALUES (?1, ?2)")
                .map_err(db(step))?;
            for (old, new) in renames {
                st.execute([old.as_str(), new.as_str()]).map_err(db(step))?;
            }
        }
        let mut events = 0;
        for &(table, column) in crate::pseudonym::IDENTITY_COLUMNS {
            let n = tx
                .execute(
                    &format!(
                        "UPDATE {table} SET {column} =
                            (SELECT new FROM temp.renames WHERE old = {table}.{column})
                         WHERE {column} IN (SELECT old FROM temp.renames)"
                    ),
                    [],
                )
                .map_err(db(step))?;
            if table == "events" {
                events += n as u64;
            }
        }
        pseudonymize_side_tables(
            &tx,
            &Pseudonymize::pairs(renames.iter().map(|(o, n)| (o.as_str(), n.as_str()))),
        )?;
        tx.execute_batch("DROP TABLE temp.renames")
            .map_err(db(step))?;
        // They name the old identities.
        delete_stored_snapshots(&tx)?;
        tx.commit().map_err(db(step))?;
        Ok(events)
    }

    fn record_merges(&mut self, merges: &[MergeRecord]) -> Result<()> {
        let tx = self.conn.transaction().map_err(db("starting merges"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO merges (event_offset, ts, identity, linked, from_a, from_b, into_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db("preparing merges"))?;
            for m in merges {
                st.execute(params![
                    to_sql_int(m.event_offset),
                    m.ts,
                    m.identity.as_str(),
                    m.linked.as_str(),
                    m.from_a,
                    m.from_b,
                    m.into
                ])
                .map_err(db("writing a merge"))?;
            }
        }
        tx.commit().map_err(db("committing merges"))
    }

    fn record_segment_changes(&mut self, changes: &[SegmentChangeRecord]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction()
            .map_err(db("starting segment history"))?;
        {
            let mut st = tx
                .prepare_cached("INSERT INTO segment_history (segment, canonical_id, entered, at) VALUES (?1, ?2, ?3, ?4)")
                .map_err(db("preparing segment history"))?;
            for c in changes {
                st.execute(params![c.segment, c.canonical_id, c.entered as i64, c.at])
                    .map_err(db("writing segment history"))?;
            }
        }
        tx.commit().map_err(db("committing segment history"))
    }

    fn segment_history(
        &mut self,
        segment: &str,
        canonical_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SegmentChangeRecord>> {
        let step = "reading segment history";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT segment, canonical_id, entered, at FROM segment_history
                 WHERE segment = ?1 AND (?2 IS NULL OR canonical_id = ?2) ORDER BY id DESC LIMIT ?3",
            )
            .map_err(db(step))?;
        let rows = st
            .query_map(
                params![segment, canonical_id, limit.min(i64::MAX as usize) as i64],
                |r| {
                    Ok(SegmentChangeRecord {
                        segment: r.get(0)?,
                        canonical_id: r.get(1)?,
                        entered: r.get::<_, i64>(2)? != 0,
                        at: r.get(3)?,
                    })
                },
            )
            .map_err(db(step))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db(step))?;
        Ok(rows)
    }

    fn merges_of(&mut self, identities: &[Identity]) -> Result<Vec<MergeRecord>> {
        let step = "reading merges";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT event_offset, ts, identity, linked, from_a, from_b, into_id FROM merges
                 WHERE identity IN (SELECT value FROM json_each(?1))
                    OR linked IN (SELECT value FROM json_each(?1))
                 ORDER BY id",
            )
            .map_err(db(step))?;
        let rows = st
            .query_map([json_list(identities)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(db(step))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db(step))?;
        rows.into_iter()
            .map(|(offset, ts, identity, linked, a, b, into)| {
                row::merge_record(offset, ts, &identity, &linked, a, b, into)
            })
            .collect()
    }

    fn audit(&mut self, record: &AuditRecord) -> Result<u64> {
        insert_audit(&self.conn, record)
    }

    fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>> {
        let step = "reading the audit log";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, at, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(db(step))?;
        let rows = st
            .query_map([to_sql_int(limit as u64)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db(step))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db(step))?;
        rows.into_iter()
            .map(|(id, at, action, subject, detail)| {
                row::audit_record(id, at, action, subject, &detail)
            })
            .collect()
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .map_err(db("reading a setting"))?;
        text.map(|t| row::setting_value(key, &t)).transpose()
    }

    fn put_setting(&mut self, key: &str, value: Option<&serde_json::Value>) -> Result<()> {
        match value {
            Some(v) => {
                let text = row::setting_text(key, v)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .and_then(|mut st| st.execute(params![key, text]))
                    .map_err(db("writing a setting"))?
            }
            None => self
                .conn
                .prepare_cached("DELETE FROM settings WHERE key = ?1")
                .and_then(|mut st| st.execute([key]))
                .map_err(db("deleting a setting"))?,
        };
        Ok(())
    }

    fn put_setting_if_absent(&mut self, key: &str, value: &serde_json::Value) -> Result<bool> {
        let text = row::setting_text(key, value)?;
        let n = self
            .conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, text],
            )
            .map_err(db("writing a setting"))?;
        Ok(n == 1)
    }

    fn put_settings(&mut self, items: &[(String, Option<serde_json::Value>)]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("starting a settings batch"))?;
        let texts = items
            .iter()
            .map(|(key, value)| {
                value
                    .as_ref()
                    .map(|v| row::setting_text(key, v))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .map_err(db("preparing a settings batch"))?;
            let mut del = tx
                .prepare_cached("DELETE FROM settings WHERE key = ?1")
                .map_err(db("preparing a settings batch"))?;
            for ((key, _), text) in items.iter().zip(texts) {
                match text {
                    Some(text) => put.execute(params![key, text]),
                    None => del.execute([key]),
                }
                .map_err(db("writing a settings batch"))?;
            }
        }
        tx.commit().map_err(db("committing a settings batch"))
    }

    fn setting_changes(&mut self, after: u64, limit: usize) -> Result<Vec<(u64, String)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, key FROM setting_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(db("reading settings changes"))?;
        let rows = st
            .query_map(params![after as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })
            .map_err(db("reading settings changes"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("reading settings changes"))
    }

    fn setting_changes_head(&mut self) -> Result<u64> {
        // The AUTOINCREMENT counter: right even when every row was pruned.
        let head: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'setting_changes'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("reading the settings changes head"))?;
        Ok(head.unwrap_or(0).max(0) as u64)
    }

    fn prune_setting_changes(&mut self, before: i64) -> Result<u64> {
        let n = self
            .conn
            .execute(
                "DELETE FROM setting_changes WHERE at < ?1
                 AND seq < (SELECT MAX(seq) FROM setting_changes)",
                [before],
            )
            .map_err(db("pruning settings changes"))?;
        Ok(n as u64)
    }

    fn increment_setting(&mut self, key: &str) -> Result<u64> {
        let v: i64 = self
            .conn
            .query_row(INCREMENT_SETTING, [key], |r| r.get(0))
            .map_err(db("incrementing a setting"))?;
        Ok(v.max(0) as u64)
    }

    fn list_settings_each(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, Result<serde_json::Value>)>> {
        let step = "listing settings";
        // SQLite compares TEXT bytewise: the same order as PostgreSQL's "C".
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key, value FROM settings
                 WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )
            .map_err(db(step))?;
        let rows = st
            .query_map([prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db(step))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db(step))?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| {
                let value = row::setting_value(&k, &v);
                (k, value)
            })
            .collect())
    }

    fn acquire_lease(&mut self, name: &str, holder: &str, ttl_ms: u64) -> Result<Option<u64>> {
        let token: Option<i64> = self
            .conn
            .query_row(
                ACQUIRE_LEASE,
                params![name, holder, to_sql_int(ttl_ms)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("taking a lease"))?;
        Ok(token.map(|t| t.max(0) as u64))
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ?1 AND holder = ?2",
                [name, holder],
            )
            .map_err(db("releasing a lease"))?;
        Ok(())
    }

    fn lease(&mut self, name: &str) -> Result<Option<crate::LeaseRow>> {
        self.conn
            .query_row(
                &format!("SELECT holder, token, expires_at - {NOW_MS} FROM leases WHERE name = ?1"),
                [name],
                |r| {
                    Ok(crate::LeaseRow {
                        holder: r.get(0)?,
                        token: r.get::<_, i64>(1)?.max(0) as u64,
                        remaining_ms: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(db("reading a lease"))
    }

    fn automation_commit(
        &mut self,
        commit: &crate::AutomationCommit,
    ) -> Result<crate::CommitOutcome> {
        automation::sqlite::commit(&mut self.conn, commit)
    }

    fn active_enrollments(&mut self) -> Result<Vec<crate::EnrollmentRow>> {
        automation::sqlite::active_enrollments(&self.conn)
    }

    fn entry_index(&mut self) -> Result<Vec<(String, String, i64, bool)>> {
        automation::sqlite::entry_index(&self.conn)
    }

    fn max_enrollment_id(&mut self) -> Result<u64> {
        automation::sqlite::max_enrollment_id(&self.conn)
    }

    fn enrollments(
        &mut self,
        journey: &str,
        identity: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::EnrollmentRow>> {
        automation::sqlite::enrollments(&self.conn, journey, identity, limit)
    }

    fn outbox_due(&mut self, now: i64, limit: usize) -> Result<Vec<crate::OutboxItem>> {
        automation::sqlite::outbox_due(&self.conn, now, limit)
    }

    fn outbox_next_due(&mut self) -> Result<Option<i64>> {
        automation::sqlite::outbox_next_due(&self.conn)
    }

    fn outbox_get(&mut self, key: &str) -> Result<Option<crate::OutboxItem>> {
        automation::sqlite::outbox_get(&self.conn, key)
    }

    fn outbox_list(&mut self, query: &crate::OutboxQuery) -> Result<Vec<crate::OutboxItem>> {
        automation::sqlite::outbox_list(&self.conn, query)
    }

    fn outbox_counts(
        &mut self,
        journey: Option<&str>,
    ) -> Result<Vec<(crate::OutboxStatus, String, u64)>> {
        automation::sqlite::outbox_counts(&self.conn, journey)
    }

    fn outbox_done_since(&mut self, since: i64) -> Result<Vec<crate::OutboxItem>> {
        automation::sqlite::outbox_done_since(&self.conn, since)
    }

    fn consent_ledger(&mut self, identity: Option<&str>) -> Result<Vec<crate::ConsentRow>> {
        automation::sqlite::consent_ledger(&self.conn, identity)
    }

    fn tasks(&mut self, open_only: bool, limit: usize) -> Result<Vec<crate::TaskRow>> {
        automation::sqlite::tasks(&self.conn, open_only, limit)
    }

    fn complete_task(&mut self, key: &str, at: i64) -> Result<bool> {
        automation::sqlite::complete_task(&self.conn, key, at)
    }

    fn archive_message(&mut self, m: &crate::ArchivedMessage) -> Result<()> {
        automation::sqlite::archive_message(&self.conn, m)
    }

    fn archived_messages(
        &mut self,
        q: &crate::ArchiveQuery,
    ) -> Result<Vec<crate::ArchivedMessage>> {
        automation::sqlite::archived_messages(&self.conn, q)
    }

    fn prune_archive(&mut self, before: i64) -> Result<u64> {
        automation::sqlite::prune_archive(&self.conn, before)
    }

    fn send_attempts(&mut self, key: &str) -> Result<Vec<crate::SendAttempt>> {
        automation::sqlite::send_attempts(&self.conn, key)
    }

    fn side_table_rows(&mut self, table: &dump::Table) -> Result<Vec<Map<String, Value>>> {
        let step = "reading a table for export";
        let mut st = self
            .conn
            .prepare(&dump::select_sql(table))
            .map_err(db(step))?;
        let mut rows = st.query([]).map_err(db(step))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db(step))? {
            let mut m = Map::new();
            for (i, c) in table.columns.iter().enumerate() {
                let v = match c.kind {
                    dump::Kind::Int => r.get::<_, Option<i64>>(i).map(|v| v.map(Value::from)),
                    dump::Kind::Text => r.get::<_, Option<String>>(i).map(|v| v.map(Value::from)),
                }
                .map_err(db(step))?;
                m.insert(c.name.to_string(), v.unwrap_or(Value::Null));
            }
            out.push(m);
        }
        Ok(out)
    }

    fn restore_side_table(
        &mut self,
        table: &dump::Table,
        rows: &[Map<String, Value>],
    ) -> Result<()> {
        let step = "restoring a table";
        let tx = self.conn.transaction().map_err(db(step))?;
        {
            let mut insert = tx
                .prepare(&dump::insert_sql(table, |i| format!("?{i}")))
                .map_err(db(step))?;
            for (index, row) in rows.iter().enumerate() {
                let cells = dump::cells(table, index, row)?;
                let values: Vec<rusqlite::types::Value> = cells
                    .into_iter()
                    .map(|c| match c {
                        dump::Cell::Null => rusqlite::types::Value::Null,
                        dump::Cell::Int(v) => rusqlite::types::Value::Integer(v),
                        dump::Cell::Text(s) => rusqlite::types::Value::Text(s.to_string()),
                    })
                    .collect();
                insert
                    .execute(rusqlite::params_from_iter(values))
                    .map_err(|e| StoreError::Invalid(format!("{} row {index}: {e}", table.name)))?;
            }
        }
        // An INTEGER PRIMARY KEY continues after the highest id by itself.
        tx.commit().map_err(db(step))
    }

    fn side_table_has_rows(&mut self, table: &dump::Table) -> Result<bool> {
        self.conn
            .query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", table.name),
                [],
                |r| r.get::<_, bool>(0),
            )
            .map_err(db("looking for rows"))
    }

    fn put_snapshot(
        &mut self,
        info: &crate::SnapshotInfo,
        bytes: &mut dyn std::io::Read,
    ) -> Result<Option<crate::StoredSnapshot>> {
        let step = "storing an engine snapshot";
        // The write lock from the start: nothing (an erasure) commits
        // between the checks and the commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(step))?;
        let erasures: i64 = tx
            .query_row(
                "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?1), 0)",
                [crate::ERASURES_KEY],
                |r| r.get(0),
            )
            .map_err(db("reading the erasure count"))?;
        let newer: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM engine_snapshots
                                WHERE erasures = ?1 AND log_offset >= ?2)",
                params![erasures, to_sql_int(info.log_offset)],
                |r| r.get(0),
            )
            .map_err(db(step))?;
        if erasures != to_sql_int(info.erasures) || newer {
            return Ok(None);
        }
        let (anchor_offset, anchor_id) = match &info.anchor {
            Some(a) => (to_sql_int(a.offset), a.event_id.as_deref()),
            None => (0, None),
        };
        tx.execute(
            "INSERT INTO engine_snapshots
                 (log_offset, erasures, anchor_offset, anchor_id, byte_len, sha256, created_at)
             VALUES (?1, ?2, ?3, ?4, 0, '', ?5)",
            params![
                to_sql_int(info.log_offset),
                erasures,
                anchor_offset,
                anchor_id,
                info.created_at
            ],
        )
        .map_err(db(step))?;
        let id = tx.last_insert_rowid();
        let mut parts = crate::snapshots::Parts::new(bytes);
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO engine_snapshot_parts (snapshot, part, data) VALUES (?1, ?2, ?3)",
                )
                .map_err(db(step))?;
            let mut n: i64 = 0;
            while let Some(part) = parts.next_part()? {
                insert.execute(params![id, n, part]).map_err(db(step))?;
                n += 1;
            }
        }
        let (len, sha256) = parts.finish();
        tx.execute(
            "UPDATE engine_snapshots SET byte_len = ?2, sha256 = ?3 WHERE id = ?1",
            params![id, to_sql_int(len), sha256],
        )
        .map_err(db(step))?;
        let kept = "SELECT id FROM engine_snapshots WHERE erasures = ?1
                    ORDER BY log_offset DESC, id DESC LIMIT ?2";
        let keep = to_sql_int(crate::SNAPSHOTS_KEPT as u64);
        tx.execute(
            &format!("DELETE FROM engine_snapshot_parts WHERE snapshot NOT IN ({kept})"),
            params![erasures, keep],
        )
        .map_err(db("pruning stored snapshots"))?;
        tx.execute(
            &format!("DELETE FROM engine_snapshots WHERE id NOT IN ({kept})"),
            params![erasures, keep],
        )
        .map_err(db("pruning stored snapshots"))?;
        tx.commit().map_err(db(step))?;
        Ok(Some(crate::StoredSnapshot {
            id: row::offset_out(id)?,
            info: info.clone(),
            len,
            sha256,
        }))
    }

    fn snapshots(&mut self) -> Result<Vec<crate::StoredSnapshot>> {
        let step = "listing stored snapshots";
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM engine_snapshots ORDER BY log_offset DESC, id DESC"
            ))
            .map_err(db(step))?;
        let mut rows = st.query([]).map_err(db(step))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db(step))? {
            out.push(stored_snapshot(r)?);
        }
        Ok(out)
    }

    fn read_snapshot(&mut self, id: u64) -> Result<Option<Vec<u8>>> {
        let step = "reading a stored snapshot";
        // A read transaction: the row and its parts are one view.
        let tx = self.conn.transaction().map_err(db(step))?;
        let id = to_sql_int(id);
        let Some((len, sha256)) = tx
            .query_row(
                "SELECT byte_len, sha256 FROM engine_snapshots WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db(step))?
        else {
            return Ok(None);
        };
        let mut gather = crate::snapshots::Gather::new(row::offset_out(len)?, sha256);
        {
            let mut st = tx
                .prepare("SELECT data FROM engine_snapshot_parts WHERE snapshot = ?1 ORDER BY part")
                .map_err(db(step))?;
            let mut rows = st.query([id]).map_err(db(step))?;
            while let Some(r) = rows.next().map_err(db(step))? {
                let part = r
                    .get_ref(0)
                    .and_then(|v| Ok(v.as_blob()?))
                    .map_err(|e| StoreError::Corrupt(format!("sqlite snapshot part: {e}")))?;
                gather.part(part)?;
            }
        }
        tx.commit().map_err(db(step))?;
        gather.finish().map(Some)
    }

    fn delete_snapshots(&mut self) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db("deleting stored snapshots"))?;
        let n = delete_stored_snapshots(&tx)?;
        tx.commit().map_err(db("deleting stored snapshots"))?;
        Ok(n)
    }

    fn log_anchor(&mut self, offset: u64) -> Result<Option<crate::LogAnchor>> {
        self.conn
            .query_row(
                "SELECT log_offset, event_id FROM events WHERE log_offset <= ?1
                 ORDER BY log_offset DESC LIMIT 1",
                [to_sql_int(offset)],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()
            .map_err(db("reading the log at an offset"))?
            .map(|(offset, event_id)| {
                Ok(crate::LogAnchor {
                    offset: row::offset_out(offset)?,
                    event_id,
                })
            })
            .transpose()
    }
}
