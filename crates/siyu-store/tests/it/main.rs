//! siyu-store's one integration-test binary: the conformance suite
//! (`conformance.rs`), written once against a [`Backend`] and instantiated
//! for SQLite and PostgreSQL, plus backend-selection tests.
//!
//! PostgreSQL tests connect to `SIYU_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each in a fresh uniquely
//! named schema dropped afterwards, so they run in parallel and repeatedly.
//! They fail, never skip, when the server is unreachable.

use siyu_store::{PostgresStore, SqliteStore, Store};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// One database under test, which can be opened (again) as often as a
/// test needs: every `open` sees what earlier ones committed.
pub trait Backend {
    /// "sqlite" or "postgres".
    fn name(&self) -> &'static str;
    fn open(&self) -> Box<dyn Store>;
    /// The rows of `schema_migrations`: (version, applied_at).
    fn migrations(&self) -> Vec<(i64, i64)>;
    /// Names of the secondary indexes on the events table, sorted.
    fn event_indexes(&self) -> Vec<String>;
    /// The files the database lives in, when it is local (SQLite: the
    /// database, its WAL and shared-memory index; PostgreSQL: none).
    fn local_files(&self) -> Vec<PathBuf>;
    /// Runs SQL on the database past the store (to damage what it wrote).
    fn execute(&self, sql: &str);
}

/// Instantiates each conformance test for both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&crate::SqliteBackend::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&crate::PgBackend::new());
                }
            )*
        }
    };
}

mod automation;
mod conformance;

fn unique_suffix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh data dir, removed on drop.
struct SqliteBackend {
    dir: PathBuf,
}

impl SqliteBackend {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("siyu-store-test-{}", unique_suffix()));
        std::fs::remove_dir_all(&dir).ok();
        SqliteBackend { dir }
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.dir).expect("opening the sqlite store"))
    }

    fn migrations(&self) -> Vec<(i64, i64)> {
        SqliteStore::open(&self.dir)
            .and_then(|s| s.applied_migrations())
            .expect("reading sqlite migrations")
    }

    fn event_indexes(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.dir.join("siyu.db")).unwrap();
        let mut st = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'
                 ORDER BY name",
            )
            .unwrap();
        let names = st.query_map([], |r| r.get(0)).unwrap();
        names.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn local_files(&self) -> Vec<PathBuf> {
        ["siyu.db", "siyu.db-wal", "siyu.db-shm"]
            .iter()
            .map(|f| self.dir.join(f))
            .collect()
    }

    fn execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.dir.join("siyu.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

pub fn pg_url() -> String {
    std::env::var("SIYU_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, uniquely named PostgreSQL schema, dropped on drop.
struct PgBackend {
    schema: String,
}

impl PgBackend {
    fn new() -> Self {
        let schema = format!("siyu_test_{}", unique_suffix());
        // Creates the schema and migrates it; fails loudly without a server.
        PostgresStore::connect_in_schema(&pg_url(), Some(&schema)).unwrap_or_else(|e| {
            panic!(
                "these tests need PostgreSQL at {} (set SIYU_TEST_DATABASE_URL to point elsewhere): {e}",
                pg_url()
            )
        });
        PgBackend { schema }
    }

    fn connect(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&pg_url(), Some(&self.schema))
            .expect("reconnecting to the test schema")
    }
}

impl Backend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn open(&self) -> Box<dyn Store> {
        Box::new(self.connect())
    }

    fn migrations(&self) -> Vec<(i64, i64)> {
        self.connect()
            .applied_migrations()
            .expect("reading postgres migrations")
    }

    fn event_indexes(&self) -> Vec<String> {
        let mut client = postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap();
        client
            .query(
                "SELECT indexname::text FROM pg_indexes
                 WHERE schemaname = $1 AND tablename = 'events' AND indexname <> 'events_pkey'
                 ORDER BY indexname",
                &[&self.schema],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn local_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn execute(&self, sql: &str) {
        let mut client = postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {}; {sql}", self.schema))
            .unwrap();
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        if let Err(e) = PostgresStore::drop_schema(&pg_url(), &self.schema) {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

#[test]
fn open_store_without_url_is_sqlite_in_the_data_dir() {
    let b = SqliteBackend::new();
    let mut s = siyu_store::open_store(&b.dir, None).unwrap();
    assert_eq!(s.last_offset().unwrap(), 0);
    assert!(b.dir.join("siyu.db").exists());
}

#[test]
fn open_store_with_a_postgres_url_is_postgres() {
    let b = PgBackend::new();
    let mut direct = b.open();
    direct
        .put_setting("probe", Some(&serde_json::json!(1)))
        .unwrap();
    // The same schema through the URL: libpq's `options` sets search_path.
    let sep = if pg_url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-csearch_path%3D{}", pg_url(), b.schema);
    let dir = SqliteBackend::new();
    let mut s = siyu_store::open_store(&dir.dir, Some(&url)).unwrap();
    assert_eq!(s.get_setting("probe").unwrap(), Some(serde_json::json!(1)));
    assert!(!dir.dir.join("siyu.db").exists());
    let url = url.replacen("postgres://", "postgresql://", 1);
    let mut s = siyu_store::open_store(&dir.dir, Some(&url)).unwrap();
    assert_eq!(s.get_setting("probe").unwrap(), Some(serde_json::json!(1)));
}

#[test]
fn open_store_refuses_other_urls() {
    let b = SqliteBackend::new();
    let err = siyu_store::open_store(&b.dir, Some("mysql://x"))
        .err()
        .expect("mysql is not a backend")
        .to_string();
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn unreachable_postgres_is_a_clear_error() {
    let err = PostgresStore::connect("postgres://nobody:secret@127.0.0.1:1/none")
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(err.contains("connecting to"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

#[test]
fn sqlite_file_is_wal_with_small_pages() {
    let b = SqliteBackend::new();
    let mut s = b.open();
    s.append(&[siyu_domain::parse_json_event(
        &serde_json::json!({"ts": 1790000000, "identity": "douyin:a", "type": "touch"}),
    )
    .unwrap()])
        .unwrap();
    // Read the file's own header settings through a second connection.
    let conn = rusqlite::Connection::open(b.dir.join("siyu.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), page_size), ("wal", 4 * 1024));
}

/// Cluster nodes start at once on one database: every one of them opens
/// the same fresh schema, none fails, and each migration is recorded once.
#[test]
fn nodes_opening_one_fresh_postgres_schema_at_once_all_start() {
    let schema = format!("siyu_test_{}", unique_suffix());
    for round in 0..3 {
        let schema = format!("{schema}_{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let nodes: Vec<_> = (0..6)
            .map(|_| {
                let (schema, barrier) = (schema.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PostgresStore::connect_in_schema(&pg_url(), Some(&schema)).map(|_| ())
                })
            })
            .collect();
        let results: Vec<_> = nodes.into_iter().map(|n| n.join().unwrap()).collect();
        let mut store = PostgresStore::connect_in_schema(&pg_url(), Some(&schema)).unwrap();
        let versions: Vec<i64> = store
            .applied_migrations()
            .unwrap()
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        PostgresStore::drop_schema(&pg_url(), &schema).unwrap();
        for r in results {
            r.unwrap_or_else(|e| panic!("a node failed to start in round {round}: {e}"));
        }
        let expected: Vec<i64> = SqliteBackend::new()
            .migrations()
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(versions, expected, "each migration recorded exactly once");
    }
}

/// `siyu import` builds its indexes on one connection, holding SQLite's
/// write lock for seconds to a minute, and writes the engine snapshot
/// meanwhile through another it opens then: opening a store whose schema
/// is current must not wait for that lock (it waited out the busy timeout
/// and failed, and the import kept no snapshot).
#[test]
fn a_current_sqlite_store_opens_while_another_connection_holds_the_write_lock() {
    let backend = SqliteBackend::new();
    let mut first = backend.open();
    first
        .put_setting("held/by", Some(&serde_json::json!("the first connection")))
        .unwrap();
    drop(first);
    let writer = rusqlite::Connection::open(backend.dir.join("siyu.db")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Before the fix this waited out the busy timeout and failed.
    let mut second = backend.open();
    assert_eq!(
        second.get_setting("held/by").unwrap(),
        Some(serde_json::json!("the first connection"))
    );
    writer.execute_batch("COMMIT").unwrap();
}
