//! PostgreSQL for scale: the same schema and behaviour as SQLite (one
//! conformance suite), multi-row inserts for appends. Each store may live
//! in its own schema (`connect_in_schema`), which is how tests isolate.

use crate::row::{to_event, Row};
use crate::sqlite::unix_now;
use crate::{
    migrations, Appended, AuditRecord, MergeRecord, Result, Store, StoreError, StoredEvent,
};
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use siyu_domain::{Event, Identity};
use std::collections::HashMap;

fn db(e: postgres::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub struct PostgresStore {
    client: Client,
    next_offset: u64,
}

const EVENT_COLUMNS: &str =
    "log_offset, event_id, seq, ts, identity, type, channel, amount, ref, grp, text, name, extra";
/// Rows per INSERT statement (13 parameters each, under PostgreSQL's 65535).
const ROWS_PER_INSERT: usize = 1000;

fn read_event(r: &postgres::Row) -> Result<StoredEvent> {
    let offset: i64 = r.get(0);
    let event = to_event(
        r.get(1),
        r.get(2),
        r.get(3),
        r.get::<_, &str>(4),
        r.get::<_, &str>(5),
        r.get::<_, &str>(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
        r.get(12),
    )?;
    Ok(StoredEvent {
        offset: offset as u64,
        event,
    })
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and migrates the
    /// default schema.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_in_schema(url, None)
    }

    /// Connects and uses (creating it if needed) `schema` for every table.
    pub fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut client = Client::connect(url, NoTls)
            .map_err(|e| StoreError::Database(format!("connecting to {}: {e}", redact(url))))?;
        if let Some(s) = schema {
            if !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Invalid(format!(
                    "schema name `{s}` must be lowercase letters, digits, `_`"
                )));
            }
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}"
                ))
                .map_err(db)?;
        }
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .map_err(db)?;
        let mut store = PostgresStore {
            client,
            next_offset: 0,
        };
        store.migrate()?;
        store.next_offset = store.last_offset()? + 1;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(db)?
            .get(0);
        if current > migrations::latest() {
            return Err(StoreError::Migration(format!(
                "database schema version {current} is newer than this build ({}); upgrade siyu",
                migrations::latest()
            )));
        }
        for (version, sql) in migrations::POSTGRES.iter().filter(|m| m.0 > current) {
            let mut tx = self.client.transaction().map_err(db)?;
            tx.batch_execute(sql)
                .map_err(|e| StoreError::Migration(format!("version {version}: {e}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[version, &unix_now()],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    /// Versions recorded in `schema_migrations`.
    pub fn applied_migrations(&mut self) -> Result<Vec<i64>> {
        let rows = self
            .client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Drops a schema and everything in it (test cleanup).
    pub fn drop_schema(url: &str, schema: &str) -> Result<()> {
        let mut client = Client::connect(url, NoTls).map_err(db)?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .map_err(db)
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store for PostgresStore {
    fn append(&mut self, events: &[Event]) -> Result<Vec<Appended>> {
        let mut tx = self.client.transaction().map_err(db)?;
        let ids: Vec<&str> = events.iter().filter_map(|e| e.id.as_deref()).collect();
        let mut known: HashMap<String, u64> = HashMap::new();
        if !ids.is_empty() {
            for r in tx
                .query(
                    "SELECT event_id, log_offset FROM events WHERE event_id = ANY($1)",
                    &[&ids],
                )
                .map_err(db)?
            {
                known.insert(r.get(0), r.get::<_, i64>(1) as u64);
            }
        }
        let mut out = Vec::with_capacity(events.len());
        let mut rows: Vec<(i64, Row)> = Vec::with_capacity(events.len());
        let mut next = self.next_offset;
        for e in events {
            if let Some(id) = e.id.as_deref() {
                if let Some(&o) = known.get(id) {
                    out.push(Appended::Duplicate(o));
                    continue;
                }
                known.insert(id.to_string(), next);
            }
            rows.push((next as i64, Row::from_event(e)));
            out.push(Appended::New(next));
            next += 1;
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut sql = format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES ");
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 13);
            for (i, (offset, r)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 13;
                sql.push('(');
                sql.push_str(
                    &(1..=13)
                        .map(|k| format!("${}", b + k))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                sql.push(')');
                params.extend_from_slice(&[
                    offset,
                    &r.event_id,
                    &r.seq,
                    &r.ts,
                    &r.identity,
                    &r.event_type,
                    &r.channel,
                    &r.amount,
                    &r.reference,
                    &r.group,
                    &r.text,
                    &r.name,
                    &r.extra,
                ]);
            }
            tx.execute(sql.as_str(), &params).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        self.next_offset = next;
        Ok(out)
    }

    fn last_offset(&mut self) -> Result<u64> {
        let v: i64 = self
            .client
            .query_one("SELECT COALESCE(MAX(log_offset), 0) FROM events", &[])
            .map_err(db)?
            .get(0);
        Ok(v as u64)
    }

    fn scan(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let rows = self
            .client
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE log_offset > $1 ORDER BY log_offset LIMIT $2"),
                &[&(after as i64), &(limit as i64)],
            )
            .map_err(db)?;
        rows.iter().map(read_event).collect()
    }

    fn events_of(
        &mut self,
        identities: &[Identity],
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let ids: Vec<&str> = identities.iter().map(|i| i.as_str()).collect();
        let rows = match before {
            None => self
                .client
                .query(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE identity = ANY($1) ORDER BY ts DESC, log_offset DESC LIMIT $2"),
                    &[&ids, &(limit as i64)],
                )
                .map_err(db)?,
            Some(b) => {
                let ts: Option<i64> = self
                    .client
                    .query_opt("SELECT ts FROM events WHERE log_offset = $1", &[&(b as i64)])
                    .map_err(db)?
                    .map(|r| r.get(0));
                let ts = ts.ok_or_else(|| StoreError::Invalid(format!("cursor {b} is not an event offset")))?;
                self.client
                    .query(
                        &format!(
                            "SELECT {EVENT_COLUMNS} FROM events WHERE identity = ANY($1) AND (ts < $2 OR (ts = $2 AND log_offset < $3))
                             ORDER BY ts DESC, log_offset DESC LIMIT $4"
                        ),
                        &[&ids, &ts, &(b as i64), &(limit as i64)],
                    )
                    .map_err(db)?
            }
        };
        rows.iter().map(read_event).collect()
    }

    fn erase(&mut self, identities: &[Identity], audit: &AuditRecord) -> Result<u64> {
        let ids: Vec<&str> = identities.iter().map(|i| i.as_str()).collect();
        let mut tx = self.client.transaction().map_err(db)?;
        let removed = tx
            .execute(
                "DELETE FROM events WHERE identity = ANY($1) OR ref = ANY($1)",
                &[&ids],
            )
            .map_err(db)?;
        tx.execute(
            "DELETE FROM merges WHERE identity = ANY($1) OR linked = ANY($1)",
            &[&ids],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO audit (at, action, subject, detail) VALUES ($1, $2, $3, $4)",
            &[
                &audit.at,
                &audit.action,
                &audit.subject,
                &audit.detail.to_string(),
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn record_merges(&mut self, merges: &[MergeRecord]) -> Result<()> {
        let mut tx = self.client.transaction().map_err(db)?;
        let st = tx
            .prepare("INSERT INTO merges (event_offset, ts, identity, linked, from_a, from_b, into_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .map_err(db)?;
        for m in merges {
            tx.execute(
                &st,
                &[
                    &(m.event_offset as i64),
                    &m.ts,
                    &m.identity.as_str(),
                    &m.linked.as_str(),
                    &m.from_a,
                    &m.from_b,
                    &m.into,
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn merges_of(&mut self, identities: &[Identity]) -> Result<Vec<MergeRecord>> {
        let ids: Vec<&str> = identities.iter().map(|i| i.as_str()).collect();
        let rows = self
            .client
            .query(
                "SELECT event_offset, ts, identity, linked, from_a, from_b, into_id FROM merges
                 WHERE identity = ANY($1) OR linked = ANY($1) ORDER BY id",
                &[&ids],
            )
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                crate::merge_record(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect()
    }

    fn audit(&mut self, record: &AuditRecord) -> Result<u64> {
        let row = self
            .client
            .query_one(
                "INSERT INTO audit (at, action, subject, detail) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&record.at, &record.action, &record.subject, &record.detail.to_string()],
            )
            .map_err(db)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>> {
        let rows = self
            .client
            .query(
                "SELECT id, at, action, subject, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                crate::audit_record(r.get(0), r.get(1), r.get(2), r.get(3), r.get::<_, &str>(4))
            })
            .collect()
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<serde_json::Value>> {
        let row = self
            .client
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .map_err(db)?;
        row.map(|r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
        })
        .transpose()
    }

    fn put_setting(&mut self, key: &str, value: Option<&serde_json::Value>) -> Result<()> {
        match value {
            Some(v) => self
                .client
                .execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&key, &v.to_string()],
                )
                .map_err(db)?,
            None => self.client.execute("DELETE FROM settings WHERE key = $1", &[&key]).map_err(db)?,
        };
        Ok(())
    }

    fn list_settings(&mut self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = self
            .client
            .query(
                "SELECT key, value FROM settings WHERE left(key, length($1)) = $1 ORDER BY key",
                &[&prefix],
            )
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let k: String = r.get(0);
                let v = serde_json::from_str(r.get::<_, &str>(1))
                    .map_err(|e| StoreError::Corrupt(format!("setting {k}: {e}")))?;
                Ok((k, v))
            })
            .collect()
    }
}
