//! One conformance suite for every Store backend: each test is written once
//! against `&mut dyn Store` and instantiated for SQLite and PostgreSQL.
//! PostgreSQL tests use `SIYU_TEST_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/test), each in a fresh schema; they
//! fail (never skip) when the server is unreachable.

/// Instantiates a conformance test `fn(&mut dyn Store, reopen)` for both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = crate::tempdir();
                    let mut s = siyu_store::SqliteStore::open(&dir).unwrap();
                    let reopen = || -> Box<dyn siyu_store::Store> { Box::new(siyu_store::SqliteStore::open(&dir).unwrap()) };
                    super::$name(&mut s, &reopen);
                    std::fs::remove_dir_all(&dir).ok();
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let fx = crate::PgFixture::new();
                    let mut s = fx.reopen();
                    let reopen = || -> Box<dyn siyu_store::Store> { Box::new(fx.reopen()) };
                    super::$name(&mut s, &reopen);
                    drop(fx);
                }
            )*
        }
    };
}

mod conformance;

use siyu_store::{PostgresStore, SqliteStore, Store};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn pg_url() -> String {
    std::env::var("SIYU_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store in a fresh, uniquely named PostgreSQL schema, dropped on drop.
pub struct PgFixture {
    pub store: PostgresStore,
    schema: String,
}

impl Default for PgFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl PgFixture {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "siyu_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        PostgresStore::drop_schema(&pg_url(), &schema).ok();
        let store = PostgresStore::connect_in_schema(&pg_url(), Some(&schema)).unwrap_or_else(|e| {
            panic!("PostgreSQL at {} is required for these tests (set SIYU_TEST_DATABASE_URL): {e}", pg_url())
        });
        PgFixture { store, schema }
    }

    pub fn reopen(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&pg_url(), Some(&self.schema)).expect("reopen")
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        PostgresStore::drop_schema(&pg_url(), &self.schema).ok();
    }
}

pub fn tempdir() -> std::path::PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "siyu-store-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::remove_dir_all(&d).ok();
    d
}

#[test]
fn migrations_are_recorded_once() {
    let dir = crate::tempdir();
    let s = SqliteStore::open(&dir).unwrap();
    assert_eq!(s.applied_migrations().unwrap(), vec![1]);
    drop(s);
    let s = SqliteStore::open(&dir).unwrap();
    assert_eq!(s.applied_migrations().unwrap(), vec![1]);
    let fx = PgFixture::new();
    let mut again = fx.reopen();
    assert_eq!(again.applied_migrations().unwrap(), vec![1]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn open_store_picks_the_backend_from_the_url() {
    let dir = crate::tempdir();
    let mut s = siyu_store::open_store(&dir, None).unwrap();
    assert_eq!(s.last_offset().unwrap(), 0);
    assert!(dir.join("siyu.db").exists());
    let err = siyu_store::open_store(&dir, Some("mysql://x"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("postgres://"), "{err}");
    let _: &mut dyn Store = s.as_mut();
    std::fs::remove_dir_all(&dir).ok();
}
