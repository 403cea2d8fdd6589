//! The automation tables on PostgreSQL (same SQL shapes as SQLite's, with
//! typed parameters where PostgreSQL cannot infer them).

use super::{
    parse_json, parse_status, ArchiveQuery, ArchivedMessage, AutomationCommit, CommitOutcome,
    ConsentRow, EnrollmentRow, OutboxItem, OutboxQuery, OutboxStatus, SendAttempt, TaskRow,
    ARCHIVE_COLUMNS, ENROLLMENT_COLUMNS, OUTBOX_COLUMNS, TASK_COLUMNS,
};
use crate::row::to_sql_int;
use crate::{Result, StoreError};
use postgres::types::ToSql;
use postgres::{Client, Row};

fn db(step: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Database(format!("postgres {step}: {e}"))
}

fn outbox_item(r: &Row) -> Result<OutboxItem> {
    let status: String = r.get(3);
    let action: String = r.get(8);
    Ok(OutboxItem {
        key: r.get(0),
        created_at: r.get(1),
        not_before: r.get(2),
        status: parse_status(&status)?,
        attempts: r.get::<_, i64>(4).max(0) as u32,
        detail: r.get(5),
        journey: r.get(6),
        identity: r.get(7),
        action: parse_json("outbox action", &action)?,
        updated_at: r.get(9),
    })
}

fn enrollment(r: &Row) -> Result<EnrollmentRow> {
    let state: String = r.get(8);
    Ok(EnrollmentRow {
        id: r.get::<_, i64>(0).max(0) as u64,
        journey: r.get(1),
        version: r.get::<_, i64>(2).max(0) as u32,
        identity: r.get(3),
        entry_key: r.get(4),
        entered_at: r.get(5),
        wake_at: r.get(6),
        done: r.get::<_, i64>(7) != 0,
        state: parse_json("enrollment state", &state)?,
    })
}

fn task(r: &Row) -> TaskRow {
    TaskRow {
        key: r.get(0),
        created_at: r.get(1),
        identity: r.get(2),
        journey: r.get(3),
        operator: r.get(4),
        title: r.get(5),
        note: r.get(6),
        due: r.get(7),
        done_at: r.get(8),
    }
}

pub(crate) fn commit(client: &mut Client, c: &AutomationCommit) -> Result<CommitOutcome> {
    let mut out = CommitOutcome::default();
    if c.is_empty() {
        return Ok(out);
    }
    let mut tx = client
        .transaction()
        .map_err(db("starting an automation commit"))?;
    if let Some(f) = &c.fence {
        // FOR SHARE: a node taking the lease over waits for this commit,
        // so the check holds until it lands.
        let current: Option<i64> = tx
            .query_opt(
                "SELECT token FROM leases WHERE name = $1 FOR SHARE",
                &[&f.lease],
            )
            .map_err(db("checking the fencing token"))?
            .map(|r| r.get(0));
        if current != Some(to_sql_int(f.token)) {
            return Err(f.refused(current));
        }
    }
    if !c.enrollments.is_empty() {
        let upd = tx
            .prepare("UPDATE enrollments SET version = $2, wake_at = $3, done = $4, state = $5 WHERE id = $1")
            .map_err(db("preparing enrollment update"))?;
        let ins = tx
            .prepare(
                "INSERT INTO enrollments (id, journey, version, identity, entry_key, entered_at, wake_at, done, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (entry_key) DO NOTHING",
            )
            .map_err(db("preparing enrollment insert"))?;
        for e in &c.enrollments {
            let id = to_sql_int(e.id);
            let state = e.state.to_string();
            let version = e.version as i64;
            let done = e.done as i64;
            let n = tx
                .execute(&upd, &[&id, &version, &e.wake_at, &done, &state])
                .map_err(db("updating an enrollment"))?;
            if n == 0 {
                let n = tx
                    .execute(
                        &ins,
                        &[
                            &id,
                            &e.journey,
                            &version,
                            &e.identity,
                            &e.entry_key,
                            &e.entered_at,
                            &e.wake_at,
                            &done,
                            &state,
                        ],
                    )
                    .map_err(db("inserting an enrollment"))?;
                if n == 0 {
                    out.skipped.push(e.id);
                }
            }
        }
    }
    if !c.outbox.is_empty() {
        let ins = tx
            .prepare(
                "INSERT INTO outbox (key, created_at, not_before, status, attempts, detail, journey, identity, action, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key) DO NOTHING",
            )
            .map_err(db("preparing outbox insert"))?;
        for o in &c.outbox {
            let action = o.action.to_string();
            let attempts = o.attempts as i64;
            let n = tx
                .execute(
                    &ins,
                    &[
                        &o.key,
                        &o.created_at,
                        &o.not_before,
                        &o.status.as_str(),
                        &attempts,
                        &o.detail,
                        &o.journey,
                        &o.identity,
                        &action,
                        &o.updated_at,
                    ],
                )
                .map_err(db("inserting an outbox item"))?;
            if n == 0 {
                out.skipped_outbox.push(o.key.clone());
            }
        }
    }
    if !c.updates.is_empty() {
        let upd = tx
            .prepare(
                "UPDATE outbox SET status = $2, attempts = $3, detail = $4, not_before = $5, updated_at = $6 WHERE key = $1",
            )
            .map_err(db("preparing outbox update"))?;
        for u in &c.updates {
            let attempts = u.attempts as i64;
            tx.execute(
                &upd,
                &[
                    &u.key,
                    &u.status.as_str(),
                    &attempts,
                    &u.detail,
                    &u.not_before,
                    &u.updated_at,
                ],
            )
            .map_err(db("updating an outbox item"))?;
        }
    }
    if !c.consent.is_empty() {
        let ins = tx
            .prepare("INSERT INTO consent (ts, identity, channel, granted, source) VALUES ($1, $2, $3, $4, $5)")
            .map_err(db("preparing consent insert"))?;
        for r in &c.consent {
            let granted = r.granted as i64;
            tx.execute(&ins, &[&r.ts, &r.identity, &r.channel, &granted, &r.source])
                .map_err(db("recording consent"))?;
        }
    }
    if !c.tasks.is_empty() {
        let ins = tx
            .prepare(
                "INSERT INTO tasks (key, created_at, identity, journey, operator, title, note, due, done_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING",
            )
            .map_err(db("preparing task insert"))?;
        for t in &c.tasks {
            tx.execute(
                &ins,
                &[
                    &t.key,
                    &t.created_at,
                    &t.identity,
                    &t.journey,
                    &t.operator,
                    &t.title,
                    &t.note,
                    &t.due,
                    &t.done_at,
                ],
            )
            .map_err(db("inserting a task"))?;
        }
    }
    if !c.attempts.is_empty() {
        let ins = tx
            .prepare("INSERT INTO send_attempts (key, at, verdict, detail) VALUES ($1, $2, $3, $4)")
            .map_err(db("preparing send attempt insert"))?;
        for a in &c.attempts {
            tx.execute(&ins, &[&a.key, &a.at, &a.verdict, &a.detail])
                .map_err(db("recording a send attempt"))?;
        }
    }
    tx.commit().map_err(db("committing automation"))?;
    Ok(out)
}

fn enrollments_where(
    client: &mut Client,
    sql_where: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<Vec<EnrollmentRow>> {
    client
        .query(
            &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments {sql_where}"),
            p,
        )
        .map_err(db("reading enrollments"))?
        .iter()
        .map(enrollment)
        .collect()
}

pub(crate) fn active_enrollments(client: &mut Client) -> Result<Vec<EnrollmentRow>> {
    enrollments_where(client, "WHERE done = 0 ORDER BY id", &[])
}

pub(crate) fn enrollments(
    client: &mut Client,
    journey: &str,
    identity: Option<&str>,
    limit: usize,
) -> Result<Vec<EnrollmentRow>> {
    let limit = to_sql_int(limit as u64);
    enrollments_where(
        client,
        "WHERE journey = $1 AND ($2::TEXT IS NULL OR identity = $2) ORDER BY id DESC LIMIT $3",
        &[&journey, &identity, &limit],
    )
}

pub(crate) fn entry_index(client: &mut Client) -> Result<Vec<(String, String, i64, bool)>> {
    Ok(client
        .query(
            "SELECT journey, identity, entered_at, done FROM enrollments ORDER BY id",
            &[],
        )
        .map_err(db("reading the entry index"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) != 0))
        .collect())
}

pub(crate) fn max_enrollment_id(client: &mut Client) -> Result<u64> {
    let row = client
        .query_one("SELECT MAX(id) FROM enrollments", &[])
        .map_err(db("reading the highest enrollment id"))?;
    Ok(row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64)
}

fn outbox_where(
    client: &mut Client,
    sql_where: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<Vec<OutboxItem>> {
    client
        .query(
            &format!("SELECT {OUTBOX_COLUMNS} FROM outbox {sql_where}"),
            p,
        )
        .map_err(db("reading the outbox"))?
        .iter()
        .map(outbox_item)
        .collect()
}

pub(crate) fn outbox_due(client: &mut Client, now: i64, limit: usize) -> Result<Vec<OutboxItem>> {
    let limit = to_sql_int(limit as u64);
    outbox_where(
        client,
        "WHERE status = 'pending' AND not_before <= $1 ORDER BY not_before, created_at, key LIMIT $2",
        &[&now, &limit],
    )
}

pub(crate) fn outbox_next_due(client: &mut Client) -> Result<Option<i64>> {
    let row = client
        .query_one(
            "SELECT MIN(not_before) FROM outbox WHERE status = 'pending'",
            &[],
        )
        .map_err(db("reading the next due outbox item"))?;
    Ok(row.get(0))
}

pub(crate) fn outbox_get(client: &mut Client, key: &str) -> Result<Option<OutboxItem>> {
    Ok(outbox_where(client, "WHERE key = $1", &[&key])?
        .into_iter()
        .next())
}

pub(crate) fn outbox_list(client: &mut Client, q: &OutboxQuery) -> Result<Vec<OutboxItem>> {
    let limit = to_sql_int(q.limit as u64);
    let status = q.status.map(|s| s.as_str());
    outbox_where(
        client,
        "WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR journey = $2)
           AND ($3::TEXT IS NULL OR identity = $3)
         ORDER BY updated_at DESC, key LIMIT $4",
        &[&status, &q.journey, &q.identity, &limit],
    )
}

pub(crate) fn outbox_counts(
    client: &mut Client,
    journey: Option<&str>,
) -> Result<Vec<(OutboxStatus, String, u64)>> {
    client
        .query(
            "SELECT status, detail, COUNT(*) FROM outbox WHERE ($1::TEXT IS NULL OR journey = $1)
             GROUP BY status, detail ORDER BY status, detail",
            &[&journey],
        )
        .map_err(db("counting the outbox"))?
        .iter()
        .map(|r| {
            let s: String = r.get(0);
            Ok((
                parse_status(&s)?,
                r.get(1),
                r.get::<_, i64>(2).max(0) as u64,
            ))
        })
        .collect()
}

pub(crate) fn outbox_done_since(client: &mut Client, since: i64) -> Result<Vec<OutboxItem>> {
    outbox_where(
        client,
        "WHERE status = 'done' AND updated_at >= $1 ORDER BY updated_at",
        &[&since],
    )
}

pub(crate) fn consent_ledger(
    client: &mut Client,
    identity: Option<&str>,
) -> Result<Vec<ConsentRow>> {
    Ok(client
        .query(
            "SELECT ts, identity, channel, granted, source FROM consent
             WHERE ($1::TEXT IS NULL OR identity = $1) ORDER BY id",
            &[&identity],
        )
        .map_err(db("reading the consent ledger"))?
        .iter()
        .map(|r| ConsentRow {
            ts: r.get(0),
            identity: r.get(1),
            channel: r.get(2),
            granted: r.get::<_, i64>(3) != 0,
            source: r.get(4),
        })
        .collect())
}

pub(crate) fn tasks(client: &mut Client, open_only: bool, limit: usize) -> Result<Vec<TaskRow>> {
    let limit = to_sql_int(limit as u64);
    Ok(client
        .query(
            &format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE (NOT $1 OR done_at IS NULL)
                 ORDER BY created_at DESC, key LIMIT $2"
            ),
            &[&open_only, &limit],
        )
        .map_err(db("reading tasks"))?
        .iter()
        .map(task)
        .collect())
}

pub(crate) fn complete_task(client: &mut Client, key: &str, at: i64) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE tasks SET done_at = $2 WHERE key = $1 AND done_at IS NULL",
            &[&key, &at],
        )
        .map_err(db("completing a task"))?;
    Ok(n > 0)
}

pub(crate) fn send_attempts(client: &mut Client, key: &str) -> Result<Vec<SendAttempt>> {
    Ok(client
        .query(
            "SELECT key, at, verdict, detail FROM send_attempts WHERE key = $1 ORDER BY id",
            &[&key],
        )
        .map_err(db("reading send attempts"))?
        .iter()
        .map(|r| SendAttempt {
            key: r.get(0),
            at: r.get(1),
            verdict: r.get(2),
            detail: r.get(3),
        })
        .collect())
}

/// Erasure: every automation row naming one of `ids`.
pub(crate) fn erase(tx: &mut postgres::Transaction<'_>, ids: &[&str]) -> Result<()> {
    tx.execute(
        "DELETE FROM send_attempts WHERE key IN (SELECT key FROM outbox WHERE identity = ANY($1))",
        &[&ids],
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
            &format!("DELETE FROM {table} WHERE identity = ANY($1)"),
            &[&ids],
        )
        .map_err(db(step))?;
    }
    Ok(())
}

pub(crate) fn archive_message(client: &mut Client, m: &ArchivedMessage) -> Result<()> {
    let flags = serde_json::to_string(&m.flags).unwrap_or_else(|_| "[]".into());
    client
        .execute(
            &format!(
                "INSERT INTO conversation_archive ({ARCHIVE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (key) DO NOTHING"
            ),
            &[
                &m.key,
                &m.ts,
                &m.kind,
                &m.identity,
                &m.operator,
                &m.channel,
                &m.text,
                &m.response_secs,
                &flags,
            ],
        )
        .map_err(db("archiving a message"))?;
    Ok(())
}

pub(crate) fn archived_messages(
    client: &mut Client,
    q: &ArchiveQuery,
) -> Result<Vec<ArchivedMessage>> {
    let (before_ts, before_key) = match &q.before {
        Some((t, k)) => (Some(*t), Some(k.clone())),
        None => (None, None),
    };
    let limit = to_sql_int(q.limit as u64);
    let rows = client
        .query(
            &format!(
                "SELECT {ARCHIVE_COLUMNS} FROM conversation_archive
                 WHERE ($1::TEXT IS NULL OR kind = $1) AND ($2::TEXT IS NULL OR operator = $2)
                   AND ($3::TEXT[] IS NULL OR identity = ANY($3))
                   AND ($4::TEXT IS NULL OR strpos(text, $4) > 0) AND (NOT $5 OR flags <> '[]')
                   AND ($6::BIGINT IS NULL OR ts >= $6) AND ($7::BIGINT IS NULL OR ts < $7)
                   AND ($8::BIGINT IS NULL OR ts < $8 OR (ts = $8 AND key < $9))
                 ORDER BY ts DESC, key DESC LIMIT $10"
            ),
            &[
                &q.kind,
                &q.operator,
                &q.identities,
                &q.text,
                &q.flagged,
                &q.from,
                &q.to,
                &before_ts,
                &before_key,
                &limit,
            ],
        )
        .map_err(db("reading the conversation archive"))?;
    rows.iter()
        .map(|r| {
            let key: String = r.get(0);
            let flags: String = r.get(8);
            let flags = serde_json::from_str(&flags)
                .map_err(|e| StoreError::Corrupt(format!("archived message {key}: flags: {e}")))?;
            Ok(ArchivedMessage {
                key,
                ts: r.get(1),
                kind: r.get(2),
                identity: r.get(3),
                operator: r.get(4),
                channel: r.get(5),
                text: r.get(6),
                response_secs: r.get(7),
                flags,
            })
        })
        .collect()
}

pub(crate) fn prune_archive(client: &mut Client, before: i64) -> Result<u64> {
    client
        .execute("DELETE FROM conversation_archive WHERE ts < $1", &[&before])
        .map_err(db("pruning the conversation archive"))
}
