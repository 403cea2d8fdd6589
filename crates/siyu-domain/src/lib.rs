//! siyu's vocabulary: what an event, an identity and a person trait are, and
//! the versioned wire format that turns bytes into them.
//!
//! This crate is pure: it does no I/O and never reads the clock, so every
//! other crate (engine, store, server, CLI) can share one definition of
//! "a valid event" and one set of error messages.
//!
//! Owns the event, identity and trait types, the wire format v1 with its limits,
//! time parsing, the TOML nesting guard. May depend on serde only: every other
//! crate depends on it, so it depends on none of them.

pub mod duration;
pub mod event;
pub mod identity;
pub mod intent;
pub mod line;
pub mod time;
pub mod toml_nesting;
pub mod wire;

pub use event::{Channel, Event, EventType, Traits};
pub use identity::Identity;
pub use line::{
    csv_record_len, parse_csv_borrowed, parse_csv_header, parse_csv_line, parse_csv_quoted,
    parse_jsonl_fast, CsvColumns, CsvRecordReader, LineEvent,
};
pub use wire::{parse_json_event, WireError};

/// Seconds in a day; "N days" in every rule means N × DAY.
pub const DAY: i64 = 86_400;
/// Seconds in a week.
pub const WEEK: i64 = 7 * DAY;
