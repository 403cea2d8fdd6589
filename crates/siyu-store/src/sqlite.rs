//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so a
//! committed append survives a crash or power loss. One connection, owned
//! by the single writer.

use crate::row::{to_event, Row};
use crate::{
    migrations, Appended, AuditRecord, MergeRecord, Result, Store, StoreError, StoredEvent,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use siyu_domain::{Event, Identity};
use std::collections::HashMap;
use std::path::Path;

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub struct SqliteStore {
    conn: Connection,
    next_offset: u64,
}

const EVENT_COLUMNS: &str =
    "log_offset, event_id, seq, ts, identity, type, channel, amount, ref, grp, text, name, extra";

fn read_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, Result<Event>)> {
    let offset: i64 = r.get(0)?;
    let identity: String = r.get(4)?;
    let ty: String = r.get(5)?;
    let channel: String = r.get(6)?;
    let event = to_event(
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        &identity,
        &ty,
        &channel,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    );
    Ok((offset as u64, event))
}

fn collect(rows: Vec<(u64, Result<Event>)>) -> Result<Vec<StoredEvent>> {
    rows.into_iter()
        .map(|(offset, e)| Ok(StoredEvent { offset, event: e? }))
        .collect()
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/siyu.db` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(format!("creating data dir {}: {e}", data_dir.display()))
        })?;
        let conn = Connection::open(data_dir.join("siyu.db")).map_err(db)?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .map_err(db)?;
        let mut store = SqliteStore {
            conn,
            next_offset: 0,
        };
        store.migrate()?;
        store.next_offset = store.last_offset()? + 1;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if current > migrations::latest() {
            return Err(StoreError::Migration(format!(
                "database schema version {current} is newer than this build ({}); upgrade siyu",
                migrations::latest()
            )));
        }
        for (version, sql) in migrations::SQLITE.iter().filter(|m| m.0 > current) {
            let tx = self.conn.transaction().map_err(db)?;
            tx.execute_batch(sql)
                .map_err(|e| StoreError::Migration(format!("version {version}: {e}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, unix_now()],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    /// Versions recorded in `schema_migrations`.
    pub fn applied_migrations(&self) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .map_err(db)?;
        let v = st
            .query_map([], |r| r.get(0))
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .map_err(db)?;
        Ok(v)
    }
}

/// Wall-clock seconds, for migration bookkeeping only.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

impl Store for SqliteStore {
    fn append(&mut self, events: &[Event]) -> Result<Vec<Appended>> {
        let tx = self.conn.transaction().map_err(db)?;
        let mut out = Vec::with_capacity(events.len());
        let mut next = self.next_offset;
        let mut batch_ids: HashMap<&str, u64> = HashMap::new();
        {
            let mut find = tx
                .prepare_cached("SELECT log_offset FROM events WHERE event_id = ?1")
                .map_err(db)?;
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .map_err(db)?;
            for e in events {
                if let Some(id) = e.id.as_deref() {
                    if let Some(&o) = batch_ids.get(id) {
                        out.push(Appended::Duplicate(o));
                        continue;
                    }
                    let existing: Option<i64> =
                        find.query_row([id], |r| r.get(0)).optional().map_err(db)?;
                    if let Some(o) = existing {
                        out.push(Appended::Duplicate(o as u64));
                        continue;
                    }
                    batch_ids.insert(id, next);
                }
                let r = Row::from_event(e);
                insert
                    .execute(params![
                        next as i64,
                        r.event_id,
                        r.seq,
                        r.ts,
                        r.identity,
                        r.event_type,
                        r.channel,
                        r.amount,
                        r.reference,
                        r.group,
                        r.text,
                        r.name,
                        r.extra
                    ])
                    .map_err(db)?;
                out.push(Appended::New(next));
                next += 1;
            }
        }
        tx.commit().map_err(db)?;
        self.next_offset = next;
        Ok(out)
    }

    fn last_offset(&mut self) -> Result<u64> {
        let v: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(log_offset), 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        Ok(v as u64)
    }

    fn scan(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE log_offset > ?1 ORDER BY log_offset LIMIT ?2"))
            .map_err(db)?;
        let rows = st
            .query_map(params![after as i64, limit as i64], read_event)
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        collect(rows)
    }

    fn events_of(
        &mut self,
        identities: &[Identity],
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut params: Vec<rusqlite::types::Value> = identities
            .iter()
            .map(|i| rusqlite::types::Value::Text(i.as_str().to_string()))
            .collect();
        let mut cursor = String::new();
        if let Some(b) = before {
            let ts: Option<i64> = self
                .conn
                .query_row(
                    "SELECT ts FROM events WHERE log_offset = ?1",
                    [b as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let ts = ts
                .ok_or_else(|| StoreError::Invalid(format!("cursor {b} is not an event offset")))?;
            cursor = format!(
                " AND (ts < ?{} OR (ts = ?{} AND log_offset < ?{}))",
                params.len() + 1,
                params.len() + 1,
                params.len() + 2
            );
            params.push(rusqlite::types::Value::Integer(ts));
            params.push(rusqlite::types::Value::Integer(b as i64));
        }
        params.push(rusqlite::types::Value::Integer(limit as i64));
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE identity IN ({}){cursor} ORDER BY ts DESC, log_offset DESC LIMIT ?{}",
            (1..=identities.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(","),
            params.len()
        );
        let mut st = self.conn.prepare(&sql).map_err(db)?;
        let rows = st
            .query_map(params_from_iter(params.iter()), read_event)
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        collect(rows)
    }

    fn erase(&mut self, identities: &[Identity], audit: &AuditRecord) -> Result<u64> {
        let tx = self.conn.transaction().map_err(db)?;
        let mut removed = 0u64;
        for chunk in identities.chunks(400) {
            let ids: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            let ph = placeholders(ids.len());
            removed += tx
                .execute(
                    &format!("DELETE FROM events WHERE identity IN ({ph}) OR ref IN ({ph})"),
                    params_from_iter(ids.iter().chain(ids.iter())),
                )
                .map_err(db)? as u64;
            tx.execute(
                &format!("DELETE FROM merges WHERE identity IN ({ph}) OR linked IN ({ph})"),
                params_from_iter(ids.iter().chain(ids.iter())),
            )
            .map_err(db)?;
        }
        tx.execute(
            "INSERT INTO audit (at, action, subject, detail) VALUES (?1, ?2, ?3, ?4)",
            params![
                audit.at,
                audit.action,
                audit.subject,
                audit.detail.to_string()
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn record_merges(&mut self, merges: &[MergeRecord]) -> Result<()> {
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO merges (event_offset, ts, identity, linked, from_a, from_b, into_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db)?;
            for m in merges {
                st.execute(params![
                    m.event_offset as i64,
                    m.ts,
                    m.identity.as_str(),
                    m.linked.as_str(),
                    m.from_a,
                    m.from_b,
                    m.into
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn merges_of(&mut self, identities: &[Identity]) -> Result<Vec<MergeRecord>> {
        let mut out = Vec::new();
        for chunk in identities.chunks(400) {
            let ids: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            let ph = placeholders(ids.len());
            let mut st = self
                .conn
                .prepare(&format!(
                    "SELECT id, event_offset, ts, identity, linked, from_a, from_b, into_id FROM merges WHERE identity IN ({ph}) OR linked IN ({ph})"
                ))
                .map_err(db)?;
            let rows = st
                .query_map(params_from_iter(ids.iter().chain(ids.iter())), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                })
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            for (id, offset, ts, identity, linked, a, b, into) in rows {
                out.push((
                    id,
                    crate::merge_record(offset, ts, &identity, &linked, a, b, into)?,
                ));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        out.dedup_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, m)| m).collect())
    }

    fn audit(&mut self, record: &AuditRecord) -> Result<u64> {
        self.conn
            .execute(
                "INSERT INTO audit (at, action, subject, detail) VALUES (?1, ?2, ?3, ?4)",
                params![
                    record.at,
                    record.action,
                    record.subject,
                    record.detail.to_string()
                ],
            )
            .map_err(db)?;
        Ok(self.conn.last_insert_rowid() as u64)
    }

    fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, at, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(db)?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(id, at, action, subject, detail)| {
                crate::audit_record(id, at, action, subject, &detail)
            })
            .collect()
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<serde_json::Value>> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
        })
        .transpose()
    }

    fn put_setting(&mut self, key: &str, value: Option<&serde_json::Value>) -> Result<()> {
        match value {
            Some(v) => self
                .conn
                .execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, v.to_string()],
                )
                .map_err(db)?,
            None => self.conn.execute("DELETE FROM settings WHERE key = ?1", [key]).map_err(db)?,
        };
        Ok(())
    }

    fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key")
            .map_err(db)?;
        let rows = st
            .query_map([prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)?;
        rows.into_iter()
            .map(|(k, v)| {
                let parsed = serde_json::from_str(&v)
                    .map_err(|e| StoreError::Corrupt(format!("setting {k}: {e}")))?;
                Ok((k, parsed))
            })
            .collect()
    }
}
