//! Versioned schema migrations. Each backend has the same numbered steps
//! (the same logical schema); only types and id generation differ. A step
//! is applied once, in order, and recorded in `schema_migrations`.

/// (version, SQL) for SQLite.
pub const SQLITE: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE events (
        log_offset INTEGER PRIMARY KEY,
        event_id TEXT UNIQUE,
        seq INTEGER,
        ts INTEGER NOT NULL,
        identity TEXT NOT NULL,
        type TEXT NOT NULL,
        channel TEXT NOT NULL,
        amount INTEGER NOT NULL,
        ref TEXT,
        grp TEXT,
        text TEXT,
        name TEXT,
        extra TEXT
    );
    CREATE INDEX events_identity_ts ON events (identity, ts);
    CREATE INDEX events_ref ON events (ref) WHERE ref IS NOT NULL;
    CREATE TABLE merges (
        id INTEGER PRIMARY KEY,
        event_offset INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        identity TEXT NOT NULL,
        linked TEXT NOT NULL,
        from_a TEXT NOT NULL,
        from_b TEXT NOT NULL,
        into_id TEXT NOT NULL
    );
    CREATE INDEX merges_identity ON merges (identity);
    CREATE INDEX merges_linked ON merges (linked);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
)];

/// (version, SQL) for PostgreSQL.
pub const POSTGRES: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE events (
        log_offset BIGINT PRIMARY KEY,
        event_id TEXT UNIQUE,
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
        extra TEXT
    );
    CREATE INDEX events_identity_ts ON events (identity, ts);
    CREATE INDEX events_ref ON events (ref) WHERE ref IS NOT NULL;
    CREATE TABLE merges (
        id BIGSERIAL PRIMARY KEY,
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
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
)];

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    SQLITE.last().map_or(0, |m| m.0)
}
