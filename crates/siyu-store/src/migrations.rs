//! Versioned schema migrations, shared by both backends: one numbered list
//! of portable SQL steps, applied in order at open and recorded in
//! `schema_migrations(version, applied_at)`. The only backend-specific bits
//! are the primary-key column types, spelled by each backend's [`Dialect`].
//!
//! A released step is never edited: a schema change is a new step.

use crate::{Result, StoreError};

/// How a backend spells the few types that are not portable.
pub struct Dialect {
    /// The events table's offset column: a caller-assigned 64-bit key.
    /// SQLite needs exactly `INTEGER PRIMARY KEY` to make it the rowid.
    pub offset_key: &'static str,
    /// A store-assigned, increasing 64-bit id (merges, audit).
    pub auto_key: &'static str,
    /// Migration 8: SQLite drops the unique index on client ids (its
    /// store dedupes in memory, `id_index.rs`); PostgreSQL keeps it.
    pub drop_id_index: &'static str,
    /// Migration 9: the triggers that record every settings change in
    /// `setting_changes`: a row per inserted, updated or deleted settings
    /// row, `seq` increasing in commit order (PostgreSQL: the trigger takes
    /// a transaction-scoped advisory lock before it draws the number, so a
    /// later number is never visible before an earlier one; SQLite has one
    /// writer at a time). Numbers are never reused (an identity column;
    /// SQLite's AUTOINCREMENT).
    pub setting_triggers: &'static str,
    /// Migration 9: the feed's never-reused sequence column.
    pub setting_seq_key: &'static str,
    /// Migration 11: a column of bytes (the parts of engine snapshots).
    pub blob: &'static str,
    /// Migration 11: how the parts are kept (PostgreSQL: out of line and
    /// uncompressed, see `postgres.rs`).
    pub snapshot_parts_storage: &'static str,
}

/// The bookkeeping table itself, portable as written.
pub const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// One numbered schema step.
pub struct Migration {
    pub version: i64,
    /// Portable SQL; `{offset_key}`, `{auto_key}`, `{drop_id_index}`,
    /// `{setting_triggers}`, `{setting_seq_key}`, `{blob}` and
    /// `{snapshot_parts_storage}` are filled from the backend's [`Dialect`].
    sql: &'static str,
}

impl Migration {
    /// This step's SQL for one backend.
    pub fn sql(&self, dialect: &Dialect) -> String {
        self.sql
            .replace("{offset_key}", dialect.offset_key)
            .replace("{auto_key}", dialect.auto_key)
            .replace("{setting_seq_key}", dialect.setting_seq_key)
            .replace("{drop_id_index}", dialect.drop_id_index)
            .replace("{setting_triggers}", dialect.setting_triggers)
            .replace("{blob}", dialect.blob)
            .replace("{snapshot_parts_storage}", dialect.snapshot_parts_storage)
    }
}

/// Every step, in order. Versions are 1, 2, 3 … without gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
    CREATE TABLE events (
        log_offset {offset_key},
        event_id TEXT,
        seq BIGINT,
        ts BIGINT NOT NULL,
        identity TEXT NOT NULL,
        type TEXT NOT NULL,
        channel TEXT NOT NULL,
        amount BIGINT NOT NULL,
        ref TEXT,
        grp TEXT,
        text TEXT,
        name TEXT,
        properties TEXT,
        traits TEXT
    );
    -- Client ids for idempotency; most events have none, so only the
    -- ones that do are indexed.
    CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX events_identity_ts ON events (identity, ts);
    -- The log's head: the highest offset ever assigned. Offsets are never
    -- reused, even after the newest events are erased; appends lock this row.
    CREATE TABLE log_head (
        id BIGINT PRIMARY KEY,
        last_offset BIGINT NOT NULL
    );
    INSERT INTO log_head (id, last_offset) VALUES (1, 0);
    CREATE INDEX events_ref ON events (ref) WHERE ref IS NOT NULL;
    CREATE TABLE merges (
        id {auto_key},
        event_offset BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        identity TEXT NOT NULL,
        linked TEXT NOT NULL,
        from_a TEXT NOT NULL,
        from_b TEXT NOT NULL,
        into_id TEXT NOT NULL
    );
    CREATE INDEX merges_identity ON merges (identity);
    CREATE INDEX merges_linked ON merges (linked);
    CREATE TABLE audit (
        id {auto_key},
        at BIGINT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
    },
    Migration {
        version: 2,
        sql: "
    -- Segment membership history: every entry and exit, when it happened.
    CREATE TABLE segment_history (
        id {auto_key},
        segment TEXT NOT NULL,
        canonical_id TEXT NOT NULL,
        entered BIGINT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX segment_history_segment ON segment_history (segment, id);
    CREATE INDEX segment_history_person ON segment_history (canonical_id, id);
    ",
    },
    Migration {
        version: 3,
        sql: "
    -- Automation: journey enrollments, the outbox of side effects (also
    -- the audit of every send attempt), the consent ledger, tasks.
    CREATE TABLE enrollments (
        id BIGINT PRIMARY KEY,
        journey TEXT NOT NULL,
        version BIGINT NOT NULL,
        identity TEXT NOT NULL,
        entry_key TEXT NOT NULL,
        entered_at BIGINT NOT NULL,
        wake_at BIGINT,
        done BIGINT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE UNIQUE INDEX enrollments_entry ON enrollments (entry_key);
    CREATE INDEX enrollments_journey ON enrollments (journey, identity, id);
    CREATE INDEX enrollments_active ON enrollments (done, id);
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        not_before BIGINT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        detail TEXT NOT NULL,
        journey TEXT,
        identity TEXT NOT NULL,
        action TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (status, not_before);
    CREATE INDEX outbox_journey ON outbox (journey, status);
    CREATE INDEX outbox_identity ON outbox (identity);
    CREATE INDEX outbox_updated ON outbox (status, updated_at);
    CREATE TABLE consent (
        id {auto_key},
        ts BIGINT NOT NULL,
        identity TEXT NOT NULL,
        channel TEXT,
        granted BIGINT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX consent_identity ON consent (identity, id);
    CREATE TABLE tasks (
        key TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        identity TEXT NOT NULL,
        journey TEXT,
        operator TEXT,
        title TEXT NOT NULL,
        note TEXT NOT NULL,
        due BIGINT,
        done_at BIGINT
    );
    CREATE INDEX tasks_open ON tasks (done_at, created_at);
    ",
    },
    Migration {
        version: 4,
        sql: "
    -- The send audit: every attempt at an outbox item and its verdict.
    CREATE TABLE send_attempts (
        id {auto_key},
        key TEXT NOT NULL,
        at BIGINT NOT NULL,
        verdict TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX send_attempts_key ON send_attempts (key, id);
    ",
    },
    Migration {
        version: 5,
        sql: "
    -- Group health reads a group's joins and leaves, not the whole log.
    CREATE INDEX events_grp_ts ON events (grp, ts) WHERE grp IS NOT NULL;
    ",
    },
    Migration {
        version: 6,
        sql: "
    -- Only erasure read events by ref. It now scans the log (a rare
    -- operation), so appends stop paying a random index insert for every
    -- identify and referral, and an import stops sorting it.
    DROP INDEX IF EXISTS events_ref;
    ",
    },
    Migration {
        version: 7,
        sql: "
    -- Timelines are read by log offset: the engine keeps each identity's
    -- offsets. Erasure scans. Appends stop paying a random index insert
    -- per event (about one written page each on a large store).
    DROP INDEX IF EXISTS events_identity_ts;
    ",
    },
    Migration {
        version: 8,
        sql: "
    -- Random client ids (SDK UUIDs) made the unique id index cost about
    -- one written page per event. The embedded store dedupes in memory,
    -- checked against the log; PostgreSQL, shared by several writers,
    -- keeps the index.
    {drop_id_index}
    ",
    },
    Migration {
        version: 9,
        sql: "
    -- Every settings change (key only), numbered in commit order, so every
    -- node on one database follows keys, sessions and definitions written
    -- by the others (siyu-server's cluster.rs). Written by triggers, so no
    -- path that touches settings (erasure's pseudonyms, a restore) can
    -- skip it; old rows are pruned.
    CREATE TABLE setting_changes (
        seq {setting_seq_key},
        key TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX setting_changes_at ON setting_changes (at);
    {setting_triggers}
    ",
    },
    Migration {
        version: 10,
        sql: "
    -- Leases: what must run on one node at a time (the automation
    -- executor's timers, sweeps and deliveries) is done by the node that
    -- holds the lease. `token` grows each time another holder takes it:
    -- the fencing token every outbox and enrollment commit of the holder
    -- checks, so a node that lost the lease while paused cannot act.
    -- `expires_at` is in milliseconds of the database's own clock.
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    ",
    },
    Migration {
        version: 11,
        sql: "
    -- Engine snapshots shared by every node on the database (siyu-store's
    -- snapshots.rs): a node with no snapshot of its own starts from the
    -- newest valid one and replays only the log after it. Each row says
    -- what it reflects (checked against the log before it is loaded); its
    -- bytes are in parts of a few MiB, with their length and SHA-256.
    CREATE TABLE engine_snapshots (
        id {auto_key},
        log_offset BIGINT NOT NULL,
        erasures BIGINT NOT NULL,
        anchor_offset BIGINT NOT NULL,
        anchor_id TEXT,
        byte_len BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE engine_snapshot_parts (
        snapshot BIGINT NOT NULL,
        part BIGINT NOT NULL,
        data {blob} NOT NULL,
        PRIMARY KEY (snapshot, part)
    );
    {snapshot_parts_storage}
    ",
    },
    Migration {
        version: 12,
        sql: "
    -- The conversation archive (会话存档): every message an operator sent
    -- through the conversations API and every resolution, with the
    -- sensitive-word rules it hit and its response time. Searchable by
    -- operator, person, time and text; pruned by the workspace's
    -- retention; erased with the person.
    CREATE TABLE conversation_archive (
        key TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        identity TEXT NOT NULL,
        operator TEXT NOT NULL,
        channel TEXT NOT NULL,
        text TEXT NOT NULL,
        response_secs BIGINT,
        flags TEXT NOT NULL
    );
    CREATE INDEX conversation_archive_ts ON conversation_archive (ts);
    CREATE INDEX conversation_archive_identity ON conversation_archive (identity);
    CREATE INDEX conversation_archive_operator ON conversation_archive (operator, ts);
    ",
    },
];

/// The secondary indexes of the tables a bulk load fills (the log and the
/// merge audit) that it may drop and build again at its end (one sorted
/// build instead of millions of random B-tree inserts), with their
/// portable definitions; each must equal the index a migration created (a
/// test checks). The unique `events_event_id` index is never dropped:
/// appends need it for idempotency.
pub const REBUILDABLE_INDEXES: &[(&str, &str)] = &[
    (
        "events_grp_ts",
        "CREATE INDEX IF NOT EXISTS events_grp_ts ON events (grp, ts) WHERE grp IS NOT NULL",
    ),
    (
        "merges_identity",
        "CREATE INDEX IF NOT EXISTS merges_identity ON merges (identity)",
    ),
    (
        "merges_linked",
        "CREATE INDEX IF NOT EXISTS merges_linked ON merges (linked)",
    ),
];

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The steps still to apply to a database at version `current`; an error
/// when the database was written by a newer build.
pub fn pending(current: i64) -> Result<impl Iterator<Item = &'static Migration>> {
    if current > latest() {
        return Err(StoreError::Migration(format!(
            "database schema version {current} is newer than this build's ({}); upgrade siyu",
            latest()
        )));
    }
    Ok(MIGRATIONS.iter().filter(move |m| m.version > current))
}

/// Wall-clock seconds for `applied_at`: bookkeeping only, never data.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let d = Dialect {
            offset_key: "A",
            auto_key: "B",
            drop_id_index: "C",
            setting_triggers: "D",
            setting_seq_key: "E",
            blob: "F",
            snapshot_parts_storage: "G",
        };
        for m in MIGRATIONS {
            assert!(!m.sql(&d).contains('{'), "version {}", m.version);
        }
    }

    #[test]
    fn rebuildable_indexes_match_their_migration() {
        let d = Dialect {
            offset_key: "A",
            auto_key: "B",
            drop_id_index: "C",
            setting_triggers: "D",
            setting_seq_key: "E",
            blob: "F",
            snapshot_parts_storage: "G",
        };
        let all: String = MIGRATIONS.iter().map(|m| m.sql(&d)).collect();
        for (name, sql) in REBUILDABLE_INDEXES {
            let created = sql.replace("IF NOT EXISTS ", "");
            assert!(all.contains(&format!("{created};")), "{name}");
            assert!(created.contains(&format!("INDEX {name} ON")), "{name}");
        }
    }

    #[test]
    fn a_newer_database_is_refused() {
        assert!(pending(latest() + 1).is_err());
        assert_eq!(pending(0).unwrap().count(), MIGRATIONS.len());
        assert_eq!(pending(latest()).unwrap().count(), 0);
    }
}
