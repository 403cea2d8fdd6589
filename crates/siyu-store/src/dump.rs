//! The brand's side tables as portable rows, for `siyu export` and the
//! restore of an export (`siyu import DIR`).
//!
//! Why generic: an export must carry every row the brand owns with its
//! ids and timestamps, and a restore must put them back exactly, on either
//! backend. One description per table ([`SIDE_TABLES`]) and two small
//! backend methods ([`Store::side_table_rows`], [`Store::restore_side_table`])
//! do that for every table at once, so a column added by a later migration
//! is one line here, not a new export path per kind. The log (exported as
//! wire-format events) and the settings (key → JSON, read with
//! `list_settings`) have their own readers already and are not listed.
//!
//! [`Store::side_table_rows`]: crate::Store::side_table_rows
//! [`Store::restore_side_table`]: crate::Store::restore_side_table

use crate::{Result, StoreError};
use serde_json::{Map, Value};

/// A column's portable type: both backends store only 64-bit integers and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

/// One column of a side table.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

/// One side table: its name, the column rows are ordered by (its primary
/// key), whether that key is store-assigned (then a restore moves the
/// backend's id generator past the restored ids), and its columns.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
    pub auto_key: bool,
    pub columns: &'static [Column],
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int,
        nullable: false,
    }
}
const fn int_or_null(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int,
        nullable: true,
    }
}
const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
        nullable: false,
    }
}
const fn text_or_null(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
        nullable: true,
    }
}

/// Every table besides the log, `log_head` and settings, as the
/// migrations made it (a test checks each column exists on both backends).
pub const SIDE_TABLES: &[Table] = &[
    Table {
        name: "merges",
        key: "id",
        auto_key: true,
        columns: &[
            int("id"),
            int("event_offset"),
            int("ts"),
            text("identity"),
            text("linked"),
            text("from_a"),
            text("from_b"),
            text("into_id"),
        ],
    },
    Table {
        name: "audit",
        key: "id",
        auto_key: true,
        columns: &[
            int("id"),
            int("at"),
            text("action"),
            text("subject"),
            text("detail"),
        ],
    },
    Table {
        name: "segment_history",
        key: "id",
        auto_key: true,
        columns: &[
            int("id"),
            text("segment"),
            text("canonical_id"),
            int("entered"),
            int("at"),
        ],
    },
    Table {
        name: "enrollments",
        key: "id",
        auto_key: false,
        columns: &[
            int("id"),
            text("journey"),
            int("version"),
            text("identity"),
            text("entry_key"),
            int("entered_at"),
            int_or_null("wake_at"),
            int("done"),
            text("state"),
        ],
    },
    Table {
        name: "outbox",
        key: "key",
        auto_key: false,
        columns: &[
            text("key"),
            int("created_at"),
            int("not_before"),
            text("status"),
            int("attempts"),
            text("detail"),
            text_or_null("journey"),
            text("identity"),
            text("action"),
            int("updated_at"),
        ],
    },
    Table {
        name: "consent",
        key: "id",
        auto_key: true,
        columns: &[
            int("id"),
            int("ts"),
            text("identity"),
            text_or_null("channel"),
            int("granted"),
            text("source"),
        ],
    },
    Table {
        name: "tasks",
        key: "key",
        auto_key: false,
        columns: &[
            text("key"),
            int("created_at"),
            text("identity"),
            text_or_null("journey"),
            text_or_null("operator"),
            text("title"),
            text("note"),
            int_or_null("due"),
            int_or_null("done_at"),
        ],
    },
    Table {
        name: "conversation_archive",
        key: "key",
        auto_key: false,
        columns: &[
            text("key"),
            int("ts"),
            text("kind"),
            text("identity"),
            text("operator"),
            text("channel"),
            text("text"),
            int_or_null("response_secs"),
            text("flags"),
        ],
    },
    Table {
        name: "send_attempts",
        key: "id",
        auto_key: true,
        columns: &[
            int("id"),
            text("key"),
            int("at"),
            text("verdict"),
            text("detail"),
        ],
    },
];

/// The side table called `name`, if there is one.
pub fn side_table(name: &str) -> Option<&'static Table> {
    SIDE_TABLES.iter().find(|t| t.name == name)
}

/// One cell on its way into a table, checked against its column.
pub enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

/// The cells of `row` in the table's column order: every column present
/// with its type (null only where the column allows it), no other key.
/// The error names the table, the row (0-based) and the column.
pub fn cells<'a>(
    table: &Table,
    index: usize,
    row: &'a Map<String, Value>,
) -> Result<Vec<Cell<'a>>> {
    let bad = |column: &str, what: &str| {
        StoreError::Invalid(format!("{} row {index}: `{column}` {what}", table.name))
    };
    if let Some(extra) = row
        .keys()
        .find(|k| !table.columns.iter().any(|c| c.name == k.as_str()))
    {
        return Err(bad(extra, "is not a column of this table"));
    }
    table
        .columns
        .iter()
        .map(|c| match (row.get(c.name), c.kind) {
            (None | Some(Value::Null), _) if c.nullable => Ok(Cell::Null),
            (None | Some(Value::Null), _) => Err(bad(c.name, "is missing (it may not be null)")),
            (Some(Value::Number(n)), Kind::Int) => n
                .as_i64()
                .map(Cell::Int)
                .ok_or_else(|| bad(c.name, "must be a 64-bit integer")),
            (Some(Value::String(s)), Kind::Text) => Ok(Cell::Text(s)),
            (Some(_), Kind::Int) => Err(bad(c.name, "must be an integer")),
            (Some(_), Kind::Text) => Err(bad(c.name, "must be a string")),
        })
        .collect()
}

/// `SELECT <columns> FROM <table> ORDER BY <key>`.
pub(crate) fn select_sql(table: &Table) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.name,
        table.key
    )
}

/// `INSERT INTO <table> (<columns>) VALUES (<placeholders>)`, placeholders
/// spelled by the backend (`?1` or `$1`).
pub(crate) fn insert_sql(table: &Table, placeholder: impl Fn(usize) -> String) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let values: Vec<String> = (1..=columns.len()).map(placeholder).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        columns.join(", "),
        values.join(", ")
    )
}
