//! The automation tables on SQLite.

use super::{
    parse_json, parse_status, ArchiveQuery, ArchivedMessage, AutomationCommit, CommitOutcome,
    ConsentRow, EnrollmentRow, OutboxItem, OutboxQuery, OutboxStatus, SendAttempt, TaskRow,
    ARCHIVE_COLUMNS, ENROLLMENT_COLUMNS, OUTBOX_COLUMNS, TASK_COLUMNS,
};
use crate::row::to_sql_int;
use crate::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

fn db(step: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(format!("sqlite {step}: {e}"))
}

type Raw<T> = rusqlite::Result<T>;

#[allow(clippy::type_complexity)]
fn outbox_row(
    r: &Row<'_>,
) -> Raw<(
    i64,
    i64,
    String,
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
)> {
    Ok((
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(0)?,
    ))
}

#[allow(clippy::type_complexity)]
fn outbox_item(
    (created_at, not_before, status, attempts, detail, journey, identity, action, updated_at, key): (
        i64,
        i64,
        String,
        i64,
        String,
        Option<String>,
        String,
        String,
        i64,
        String,
    ),
) -> Result<OutboxItem> {
    Ok(OutboxItem {
        key,
        created_at,
        not_before,
        status: parse_status(&status)?,
        attempts: attempts.max(0) as u32,
        detail,
        journey,
        identity,
        action: parse_json("outbox action", &action)?,
        updated_at,
    })
}

#[allow(clippy::type_complexity)]
fn enrollment_row(
    r: &Row<'_>,
) -> Raw<(
    i64,
    String,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    String,
)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

#[allow(clippy::type_complexity)]
fn enrollment(
    (id, journey, version, identity, entry_key, entered_at, wake_at, done, state): (
        i64,
        String,
        i64,
        String,
        String,
        i64,
        Option<i64>,
        i64,
        String,
    ),
) -> Result<EnrollmentRow> {
    Ok(EnrollmentRow {
        id: id.max(0) as u64,
        journey,
        version: version.max(0) as u32,
        identity,
        entry_key,
        entered_at,
        wake_at,
        done: done != 0,
        state: parse_json("enrollment state", &state)?,
    })
}

fn task_row(r: &Row<'_>) -> Raw<TaskRow> {
    Ok(TaskRow {
        key: r.get(0)?,
        created_at: r.get(1)?,
        identity: r.get(2)?,
        journey: r.get(3)?,
        operator: r.get(4)?,
        title: r.get(5)?,
        note: r.get(6)?,
        due: r.get(7)?,
        done_at: r.get(8)?,
    })
}

pub(crate) fn commit(conn: &mut Connection, c: &AutomationCommit) -> Result<CommitOutcome> {
    let mut out = CommitOutcome::default();
    if c.is_empty() {
        return Ok(out);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("starting an automation commit"))?;
    if let Some(f) = &c.fence {
        // The transaction is IMMEDIATE: it holds the write lock, so no
        // other process takes the lease before it lands.
        let current: Option<i64> = tx
            .query_row(
                "SELECT token FROM leases WHERE name = ?1",
                [&f.lease],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("checking the fencing token"))?;
        if current != Some(to_sql_int(f.token)) {
            return Err(f.refused(current));
        }
    }
    {
        let mut upd = tx
            .prepare_cached(
                "UPDATE enrollments SET version = ?2, wake_at = ?3, done = ?4, state = ?5 WHERE id = ?1",
            )
            .map_err(db("preparing enrollment update"))?;
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO enrollments (id, journey, version, identity, entry_key, entered_at, wake_at, done, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (entry_key) DO NOTHING",
            )
            .map_err(db("preparing enrollment insert"))?;
        for e in &c.enrollments {
            let id = to_sql_int(e.id);
            let state = e.state.to_string();
            let n = upd
                .execute(params![
                    id,
                    e.version as i64,
                    e.wake_at,
                    e.done as i64,
                    state
                ])
                .map_err(db("updating an enrollment"))?;
            if n == 0 {
                let n = ins
                    .execute(params![
                        id,
                        e.journey,
                        e.version as i64,
                        e.identity,
                        e.entry_key,
                        e.entered_at,
                        e.wake_at,
                        e.done as i64,
                        state
                    ])
                    .map_err(db("inserting an enrollment"))?;
                if n == 0 {
                    out.skipped.push(e.id);
                }
            }
        }
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO outbox (key, created_at, not_before, status, attempts, detail, journey, identity, action, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (key) DO NOTHING",
            )
            .map_err(db("preparing outbox insert"))?;
        for o in &c.outbox {
            let n = ins
                .execute(params![
                    o.key,
                    o.created_at,
                    o.not_before,
                    o.status.as_str(),
                    o.attempts as i64,
                    o.detail,
                    o.journey,
                    o.identity,
                    o.action.to_string(),
                    o.updated_at
                ])
                .map_err(db("inserting an outbox item"))?;
            if n == 0 {
                out.skipped_outbox.push(o.key.clone());
            }
        }
        let mut upd = tx
            .prepare_cached(
                "UPDATE outbox SET status = ?2, attempts = ?3, detail = ?4, not_before = ?5, updated_at = ?6 WHERE key = ?1",
            )
            .map_err(db("preparing outbox update"))?;
        for u in &c.updates {
            upd.execute(params![
                u.key,
                u.status.as_str(),
                u.attempts as i64,
                u.detail,
                u.not_before,
                u.updated_at
            ])
            .map_err(db("updating an outbox item"))?;
        }
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO consent (ts, identity, channel, granted, source) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(db("preparing consent insert"))?;
        for r in &c.consent {
            ins.execute(params![
                r.ts,
                r.identity,
                r.channel,
                r.granted as i64,
                r.source
            ])
            .map_err(db("recording consent"))?;
        }
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO tasks (key, created_at, identity, journey, operator, title, note, due, done_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (key) DO NOTHING",
            )
            .map_err(db("preparing task insert"))?;
        for t in &c.tasks {
            ins.execute(params![
                t.key,
                t.created_at,
                t.identity,
                t.journey,
                t.operator,
                t.title,
                t.note,
                t.due,
                t.done_at
            ])
            .map_err(db("inserting a task"))?;
        }
    }
    {
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO send_attempts (key, at, verdict, detail) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db("preparing send attempt insert"))?;
        for a in &c.attempts {
            ins.execute(params![a.key, a.at, a.verdict, a.detail])
                .map_err(db("recording a send attempt"))?;
        }
    }
    tx.commit().map_err(db("committing automation"))?;
    Ok(out)
}

fn enrollments_where(
    conn: &Connection,
    sql_where: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<EnrollmentRow>> {
    let step = "reading enrollments";
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments {sql_where}"
        ))
        .map_err(db(step))?;
    let rows = st
        .query_map(p, enrollment_row)
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    rows.into_iter().map(enrollment).collect()
}

pub(crate) fn active_enrollments(conn: &Connection) -> Result<Vec<EnrollmentRow>> {
    enrollments_where(conn, "WHERE done = 0 ORDER BY id", [])
}

pub(crate) fn enrollments(
    conn: &Connection,
    journey: &str,
    identity: Option<&str>,
    limit: usize,
) -> Result<Vec<EnrollmentRow>> {
    match identity {
        Some(i) => enrollments_where(
            conn,
            "WHERE journey = ?1 AND identity = ?2 ORDER BY id DESC LIMIT ?3",
            params![journey, i, to_sql_int(limit as u64)],
        ),
        None => enrollments_where(
            conn,
            "WHERE journey = ?1 ORDER BY id DESC LIMIT ?2",
            params![journey, to_sql_int(limit as u64)],
        ),
    }
}

pub(crate) fn entry_index(conn: &Connection) -> Result<Vec<(String, String, i64, bool)>> {
    let step = "reading the entry index";
    let mut st = conn
        .prepare_cached("SELECT journey, identity, entered_at, done FROM enrollments ORDER BY id")
        .map_err(db(step))?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
        })
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    Ok(rows)
}

pub(crate) fn max_enrollment_id(conn: &Connection) -> Result<u64> {
    let v: Option<i64> = conn
        .query_row("SELECT MAX(id) FROM enrollments", [], |r| r.get(0))
        .map_err(db("reading the highest enrollment id"))?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

fn outbox_where(
    conn: &Connection,
    sql_where: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<OutboxItem>> {
    let step = "reading the outbox";
    let mut st = conn
        .prepare_cached(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox {sql_where}"))
        .map_err(db(step))?;
    let rows = st
        .query_map(p, outbox_row)
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    rows.into_iter().map(outbox_item).collect()
}

pub(crate) fn outbox_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<OutboxItem>> {
    outbox_where(
        conn,
        "WHERE status = 'pending' AND not_before <= ?1 ORDER BY not_before, created_at, key LIMIT ?2",
        params![now, to_sql_int(limit as u64)],
    )
}

pub(crate) fn outbox_next_due(conn: &Connection) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(not_before) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )
    .map_err(db("reading the next due outbox item"))
}

pub(crate) fn outbox_get(conn: &Connection, key: &str) -> Result<Option<OutboxItem>> {
    let step = "reading an outbox item";
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE key = ?1"
        ))
        .and_then(|mut st| st.query_row([key], outbox_row).optional())
        .map_err(db(step))?;
    raw.map(outbox_item).transpose()
}

pub(crate) fn outbox_list(conn: &Connection, q: &OutboxQuery) -> Result<Vec<OutboxItem>> {
    outbox_where(
        conn,
        "WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR journey = ?2) AND (?3 IS NULL OR identity = ?3)
         ORDER BY updated_at DESC, key LIMIT ?4",
        params![
            q.status.map(|s| s.as_str()),
            q.journey,
            q.identity,
            to_sql_int(q.limit as u64)
        ],
    )
}

pub(crate) fn outbox_counts(
    conn: &Connection,
    journey: Option<&str>,
) -> Result<Vec<(OutboxStatus, String, u64)>> {
    let step = "counting the outbox";
    let mut st = conn
        .prepare_cached(
            "SELECT status, detail, COUNT(*) FROM outbox WHERE (?1 IS NULL OR journey = ?1)
             GROUP BY status, detail ORDER BY status, detail",
        )
        .map_err(db(step))?;
    let rows = st
        .query_map([journey], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    rows.into_iter()
        .map(|(s, d, n)| Ok((parse_status(&s)?, d, n.max(0) as u64)))
        .collect()
}

pub(crate) fn outbox_done_since(conn: &Connection, since: i64) -> Result<Vec<OutboxItem>> {
    outbox_where(
        conn,
        "WHERE status = 'done' AND updated_at >= ?1 ORDER BY updated_at",
        [since],
    )
}

pub(crate) fn consent_ledger(conn: &Connection, identity: Option<&str>) -> Result<Vec<ConsentRow>> {
    let step = "reading the consent ledger";
    let mut st = conn
        .prepare_cached(
            "SELECT ts, identity, channel, granted, source FROM consent
             WHERE (?1 IS NULL OR identity = ?1) ORDER BY id",
        )
        .map_err(db(step))?;
    let rows = st
        .query_map([identity], |r| {
            Ok(ConsentRow {
                ts: r.get(0)?,
                identity: r.get(1)?,
                channel: r.get(2)?,
                granted: r.get::<_, i64>(3)? != 0,
                source: r.get(4)?,
            })
        })
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    Ok(rows)
}

pub(crate) fn tasks(conn: &Connection, open_only: bool, limit: usize) -> Result<Vec<TaskRow>> {
    let step = "reading tasks";
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE (?1 = 0 OR done_at IS NULL)
             ORDER BY created_at DESC, key LIMIT ?2"
        ))
        .map_err(db(step))?;
    let rows = st
        .query_map(
            params![open_only as i64, to_sql_int(limit as u64)],
            task_row,
        )
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    Ok(rows)
}

pub(crate) fn complete_task(conn: &Connection, key: &str, at: i64) -> Result<bool> {
    let n = conn
        .execute(
            "UPDATE tasks SET done_at = ?2 WHERE key = ?1 AND done_at IS NULL",
            params![key, at],
        )
        .map_err(db("completing a task"))?;
    Ok(n > 0)
}

pub(crate) fn send_attempts(conn: &Connection, key: &str) -> Result<Vec<SendAttempt>> {
    let step = "reading send attempts";
    let mut st = conn
        .prepare_cached(
            "SELECT key, at, verdict, detail FROM send_attempts WHERE key = ?1 ORDER BY id",
        )
        .map_err(db(step))?;
    let rows = st
        .query_map([key], |r| {
            Ok(SendAttempt {
                key: r.get(0)?,
                at: r.get(1)?,
                verdict: r.get(2)?,
                detail: r.get(3)?,
            })
        })
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    Ok(rows)
}

/// Erasure: every automation row naming one of `ids` (a JSON array).
pub(crate) fn erase(tx: &rusqlite::Transaction<'_>, ids: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM send_attempts WHERE key IN (SELECT key FROM outbox WHERE identity IN (SELECT value FROM json_each(?1)))",
        [ids],
    )
    .map_err(db("erasing send attempts"))?;
    for (table, step) in [
        ("enrollments", "erasing enrollments"),
        ("outbox", "erasing outbox items"),
        ("consent", "erasing consent entries"),
        ("tasks", "erasing tasks"),
        ("conversation_archive", "erasing archived messages"),
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE identity IN (SELECT value FROM json_each(?1))"),
            [ids],
        )
        .map_err(db(step))?;
    }
    Ok(())
}

fn archive_flags(flags: &[String]) -> String {
    serde_json::to_string(flags).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn archive_message(conn: &Connection, m: &ArchivedMessage) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO conversation_archive ({ARCHIVE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (key) DO NOTHING"
    ))
    .and_then(|mut st| {
        st.execute(params![
            m.key,
            m.ts,
            m.kind,
            m.identity,
            m.operator,
            m.channel,
            m.text,
            m.response_secs,
            archive_flags(&m.flags)
        ])
    })
    .map_err(db("archiving a message"))?;
    Ok(())
}

pub(crate) fn archived_messages(
    conn: &Connection,
    q: &ArchiveQuery,
) -> Result<Vec<ArchivedMessage>> {
    let step = "reading the conversation archive";
    let ids = q
        .identities
        .as_ref()
        .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
    let (before_ts, before_key) = match &q.before {
        Some((t, k)) => (Some(*t), Some(k.as_str())),
        None => (None, None),
    };
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ARCHIVE_COLUMNS} FROM conversation_archive
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR operator = ?2)
               AND (?3 IS NULL OR identity IN (SELECT value FROM json_each(?3)))
               AND (?4 IS NULL OR instr(text, ?4) > 0) AND (NOT ?5 OR flags <> '[]')
               AND (?6 IS NULL OR ts >= ?6) AND (?7 IS NULL OR ts < ?7)
               AND (?8 IS NULL OR ts < ?8 OR (ts = ?8 AND key < ?9))
             ORDER BY ts DESC, key DESC LIMIT ?10"
        ))
        .map_err(db(step))?;
    let rows = st
        .query_map(
            params![
                q.kind,
                q.operator,
                ids,
                q.text,
                q.flagged,
                q.from,
                q.to,
                before_ts,
                before_key,
                to_sql_int(q.limit as u64)
            ],
            |r| {
                Ok((
                    ArchivedMessage {
                        key: r.get(0)?,
                        ts: r.get(1)?,
                        kind: r.get(2)?,
                        identity: r.get(3)?,
                        operator: r.get(4)?,
                        channel: r.get(5)?,
                        text: r.get(6)?,
                        response_secs: r.get(7)?,
                        flags: Vec::new(),
                    },
                    r.get::<_, String>(8)?,
                ))
            },
        )
        .map_err(db(step))?
        .collect::<Raw<Vec<_>>>()
        .map_err(db(step))?;
    rows.into_iter()
        .map(|(mut m, flags)| {
            m.flags = serde_json::from_str(&flags).map_err(|e| {
                StoreError::Corrupt(format!("archived message {}: flags: {e}", m.key))
            })?;
            Ok(m)
        })
        .collect()
}

pub(crate) fn prune_archive(conn: &Connection, before: i64) -> Result<u64> {
    let n = conn
        .execute("DELETE FROM conversation_archive WHERE ts < ?1", [before])
        .map_err(db("pruning the conversation archive"))?;
    Ok(n as u64)
}
