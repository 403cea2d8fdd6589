//! How the store's records become columns and back, shared by both
//! backends so they store exactly the same thing: an `Event` split into
//! the events table's columns (properties and traits as JSON text), and
//! merge and audit rows rebuilt into their public types.

use crate::{Appended, AuditRecord, MergeRecord, Result, StoreError, StoredEvent};
use serde_json::{Map, Value};
use siyu_domain::{Channel, Event, EventType, Identity, LineEvent, Traits};
use std::collections::HashMap;

/// The events table's columns in the order every statement uses.
pub const EVENT_COLUMNS: &str =
    "log_offset, event_id, seq, ts, identity, type, channel, amount, ref, grp, text, name, properties, traits";
/// How many there are (for building parameter lists).
pub const EVENT_COLUMN_COUNT: usize = 14;

/// Column values of one event on its way in, borrowing from a validated
/// event: an owned [`Event`] ([`EventRow::new`]) or a line a bulk reader
/// parsed in place ([`EventRow::from_line`], no allocation). Only those
/// two build one, so every stored row passed the domain's validation.
pub struct EventRow<'a> {
    pub(crate) event_id: Option<&'a str>,
    /// `u64` stored bit-for-bit in a signed 64-bit column (see [`seq_in`]).
    pub(crate) seq: Option<i64>,
    pub(crate) ts: i64,
    pub(crate) identity: &'a str,
    pub(crate) event_type: &'static str,
    pub(crate) channel: &'a str,
    pub(crate) amount: i64,
    pub(crate) reference: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) text: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
    /// JSON object text.
    pub(crate) properties: Option<String>,
    /// JSON object text, as `Traits` serializes.
    pub(crate) traits: Option<String>,
}

/// `seq` is a `u64` on the wire and a signed `BIGINT` in both databases:
/// stored as the same 64 bits, so values above `i64::MAX` round-trip
/// (they are never compared in SQL).
fn seq_in(seq: u64) -> i64 {
    seq as i64
}

fn seq_out(seq: i64) -> u64 {
    seq as u64
}

impl<'a> EventRow<'a> {
    pub fn new(e: &'a Event) -> Result<EventRow<'a>> {
        let properties = e
            .properties
            .as_ref()
            .map(|p| serde_json::to_string(p).map_err(|err| invalid_json("properties", err)))
            .transpose()?;
        let traits = e
            .traits
            .as_ref()
            .map(|t| serde_json::to_string(t).map_err(|err| invalid_json("traits", err)))
            .transpose()?;
        Ok(EventRow {
            event_id: e.id.as_deref(),
            seq: e.seq.map(seq_in),
            ts: e.ts,
            identity: e.identity.as_str(),
            event_type: e.event_type.as_str(),
            channel: e.channel.as_str(),
            amount: e.amount,
            reference: e.reference.as_ref().map(Identity::as_str),
            group: e.group.as_deref(),
            text: e.text.as_deref(),
            name: e.name.as_deref(),
            properties,
            traits,
        })
    }

    /// The row of a line parsed in place (no properties or traits: lines
    /// with those are parsed into an owned [`Event`]).
    pub fn from_line(e: &LineEvent<'a>) -> EventRow<'a> {
        EventRow {
            event_id: e.id,
            seq: e.seq.map(seq_in),
            ts: e.ts,
            identity: e.identity,
            event_type: e.event_type.as_str(),
            channel: e.channel,
            amount: e.amount,
            reference: e.reference,
            group: e.group,
            text: e.text,
            name: e.name,
            properties: None,
            traits: None,
        }
    }
}

/// A batch of events on its way into the log, read by index: a slice of
/// events, or a bulk reader's parsed chunk. A row is built when it is
/// written and dropped right after, so a batch of 70 000 lines never
/// exists a second time as a vector of rows.
pub trait EventRows {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client-supplied id of event `i` (read before any row is built,
    /// to find the duplicates).
    fn event_id(&self, i: usize) -> Option<&str>;

    /// The row of event `i`.
    fn row(&self, i: usize) -> Result<EventRow<'_>>;
}

impl EventRows for &[Event] {
    fn len(&self) -> usize {
        <[Event]>::len(self)
    }

    fn event_id(&self, i: usize) -> Option<&str> {
        self[i].id.as_deref()
    }

    fn row(&self, i: usize) -> Result<EventRow<'_>> {
        EventRow::new(&self[i])
    }
}

/// The id an event that came without one is stored under: derived from
/// everything else the event says (seq, ts, identity, type, channel,
/// amount, ref, group, text, name, properties, traits), so ingesting the
/// same event twice — a re-import of one file, a client's retry without
/// an id — stores it once. Two byte-identical events without ids are one
/// event. `c:` and 32 hex digits (the first 128 bits of a SHA-256 over
/// the columns, each length-prefixed so no two contents share an input).
pub fn content_id(r: &EventRow<'_>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |tag: u8, bytes: Option<&[u8]>| {
        h.update([tag]);
        match bytes {
            None => h.update([0]),
            Some(b) => {
                h.update([1]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    };
    field(b's', r.seq.map(i64::to_le_bytes).as_ref().map(|b| &b[..]));
    field(b't', Some(&r.ts.to_le_bytes()));
    field(b'i', Some(r.identity.as_bytes()));
    field(b'y', Some(r.event_type.as_bytes()));
    field(b'c', Some(r.channel.as_bytes()));
    field(b'a', Some(&r.amount.to_le_bytes()));
    field(b'r', r.reference.map(str::as_bytes));
    field(b'g', r.group.map(str::as_bytes));
    field(b'x', r.text.map(str::as_bytes));
    field(b'n', r.name.map(str::as_bytes));
    field(b'p', r.properties.as_deref().map(str::as_bytes));
    field(b'T', r.traits.as_deref().map(str::as_bytes));
    let digest = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(34);
    id.push_str("c:");
    for b in &digest[..16] {
        id.push(HEX[(b >> 4) as usize] as char);
        id.push(HEX[(b & 15) as usize] as char);
    }
    id
}

/// A batch whose events without a client id carry their [`content_id`]:
/// what both backends append, so every ingest path (HTTP, the
/// Segment-compatible routes, `siyu import`, events the server makes)
/// stores every event under an id and dedupes alike.
pub(crate) struct WithContentIds<'r> {
    rows: &'r dyn EventRows,
    /// The content id of each event that has no client id.
    derived: Vec<Option<String>>,
}

pub(crate) fn with_content_ids(rows: &dyn EventRows) -> Result<WithContentIds<'_>> {
    let derived = (0..rows.len())
        .map(|i| match rows.event_id(i) {
            Some(_) => Ok(None),
            None => rows.row(i).map(|r| Some(content_id(&r))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WithContentIds { rows, derived })
}

impl EventRows for WithContentIds<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn event_id(&self, i: usize) -> Option<&str> {
        self.rows.event_id(i).or(self.derived[i].as_deref())
    }

    fn row(&self, i: usize) -> Result<EventRow<'_>> {
        let mut r = self.rows.row(i)?;
        if r.event_id.is_none() {
            r.event_id = self.derived[i].as_deref();
        }
        Ok(r)
    }
}

/// What an append will do, decided before it writes: per event, its new
/// offset or the earlier one of its id; and which events to write.
pub(crate) struct AppendPlan {
    pub out: Vec<Appended>,
    /// (offset, index into the batch) of each event to write, in order.
    pub new: Vec<(u64, usize)>,
    /// The log's head after the append.
    pub last: u64,
}

/// Plans an append after `head`, given the offsets of the batch's ids that
/// are stored already; an id repeated within the batch is a duplicate of
/// its first occurrence. Shared by both backends so they dedupe alike.
pub(crate) fn plan_append(
    rows: &dyn EventRows,
    head: u64,
    stored: &HashMap<String, u64>,
) -> AppendPlan {
    let mut last = head;
    let mut out = Vec::with_capacity(rows.len());
    let mut new = Vec::with_capacity(rows.len());
    let mut in_batch: HashMap<&str, u64> = HashMap::new();
    for i in 0..rows.len() {
        if let Some(id) = rows.event_id(i) {
            if let Some(&earlier) = stored.get(id).or_else(|| in_batch.get(id)) {
                out.push(Appended::Duplicate(earlier));
                continue;
            }
            in_batch.insert(id, last + 1);
        }
        last += 1;
        new.push((last, i));
        out.push(Appended::New(last));
    }
    AppendPlan { out, new, last }
}

/// The batch's ids, for the backend's "which are stored" query.
pub(crate) fn batch_ids(rows: &dyn EventRows) -> Vec<&str> {
    (0..rows.len()).filter_map(|i| rows.event_id(i)).collect()
}

fn invalid_json(field: &str, err: serde_json::Error) -> StoreError {
    StoreError::Invalid(format!("event {field} cannot be written as JSON: {err}"))
}

fn corrupt(what: impl std::fmt::Display, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// Column values of one event on its way out, as read from either backend.
pub struct StoredRow {
    pub offset: i64,
    pub event_id: Option<String>,
    pub seq: Option<i64>,
    pub ts: i64,
    pub identity: String,
    pub event_type: String,
    pub channel: String,
    pub amount: i64,
    pub reference: Option<String>,
    pub group: Option<String>,
    pub text: Option<String>,
    pub name: Option<String>,
    pub properties: Option<String>,
    pub traits: Option<String>,
}

impl StoredRow {
    /// Rebuilds the event; a column that does not parse is `Corrupt`.
    pub fn into_stored_event(self) -> Result<StoredEvent> {
        let at = |column: &str| format!("event {} column {column}", self.offset);
        let identity = Identity::parse(&self.identity).map_err(|e| corrupt(at("identity"), e))?;
        let event_type = EventType::parse(&self.event_type)
            .ok_or_else(|| corrupt(at("type"), &self.event_type))?;
        let channel =
            Channel::parse(&self.channel).ok_or_else(|| corrupt(at("channel"), &self.channel))?;
        let reference = self
            .reference
            .as_deref()
            .map(|r| Identity::parse(r).map_err(|e| corrupt(at("ref"), e)))
            .transpose()?;
        let properties = match &self.properties {
            None => None,
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => Some(map),
                Ok(other) => {
                    return Err(corrupt(at("properties"), format!("not an object: {other}")))
                }
                Err(e) => return Err(corrupt(at("properties"), e)),
            },
        };
        let traits = match &self.traits {
            None => None,
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => Some(traits_from_json(map)),
                Ok(other) => return Err(corrupt(at("traits"), format!("not an object: {other}"))),
                Err(e) => return Err(corrupt(at("traits"), e)),
            },
        };
        let event = Event {
            id: self.event_id,
            seq: self.seq.map(seq_out),
            ts: self.ts,
            identity,
            event_type,
            channel,
            amount: self.amount,
            reference,
            group: self.group,
            text: self.text,
            name: self.name,
            properties,
            traits,
        };
        Ok(StoredEvent {
            offset: offset_out(self.offset)?,
            event,
        })
    }
}

/// The exact inverse of `Traits`' serialization. It does not re-validate
/// (the event was validated on the way in, and an event built in code must
/// read back as it was written): a typed key whose value has another shape
/// stays in `extra`, which is where serialization would have put it.
fn traits_from_json(map: Map<String, Value>) -> Traits {
    let mut t = Traits::default();
    for (key, value) in map {
        let slot = match key.as_str() {
            "name" => Some(&mut t.name),
            "phone" => Some(&mut t.phone),
            "city" => Some(&mut t.city),
            "birthday" => Some(&mut t.birthday),
            "timezone" => Some(&mut t.timezone),
            _ => None,
        };
        match (slot, value) {
            (Some(slot), Value::String(s)) => *slot = Some(s),
            (None, Value::Array(items))
                if (key == "tags" || key == "remove_tags")
                    && items.iter().all(Value::is_string) =>
            {
                let list = if key == "tags" {
                    &mut t.tags
                } else {
                    &mut t.remove_tags
                };
                *list = items
                    .into_iter()
                    .filter_map(|i| match i {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
            }
            (_, value) => {
                t.extra.insert(key, value);
            }
        }
    }
    t
}

/// A stored offset or id back to `u64`; both are assigned from 1 upwards,
/// so a negative one means the table was written by something else.
pub fn offset_out(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("offset", format!("{v} is negative")))
}

/// An offset or limit going into a query as the databases' signed 64 bits.
pub fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A merges row back to a [`MergeRecord`].
pub fn merge_record(
    event_offset: i64,
    ts: i64,
    identity: &str,
    linked: &str,
    from_a: String,
    from_b: String,
    into: String,
) -> Result<MergeRecord> {
    let parse = |column: &str, s: &str| {
        Identity::parse(s).map_err(|e| corrupt(format!("merge column {column}"), e))
    };
    Ok(MergeRecord {
        event_offset: offset_out(event_offset)?,
        ts,
        identity: parse("identity", identity)?,
        linked: parse("linked", linked)?,
        from_a,
        from_b,
        into,
    })
}

/// An audit row back to an [`AuditRecord`].
pub fn audit_record(
    id: i64,
    at: i64,
    action: String,
    subject: String,
    detail: &str,
) -> Result<AuditRecord> {
    let detail =
        serde_json::from_str(detail).map_err(|e| corrupt(format!("audit {id} detail"), e))?;
    Ok(AuditRecord {
        id: offset_out(id)?,
        at,
        action,
        subject,
        detail,
    })
}

/// A settings value back to JSON.
pub fn setting_value(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("setting `{key}`"), e))
}

/// A settings value as the text to store, refused (`Invalid`) when
/// [`setting_value`] could not read it back: serde_json reads at most 127
/// nested arrays/objects, and a value built in memory (a definition
/// wrapped with its version …) can be deeper than any request was. What
/// is stored must load, or the next start-up fails on it.
pub fn setting_text(key: &str, value: &Value) -> Result<String> {
    let text = value.to_string();
    match serde_json::from_str::<Value>(&text) {
        Ok(_) => Ok(text),
        Err(e) => Err(StoreError::Invalid(format!(
            "setting `{key}` cannot be saved: it would not read back ({e}); \
             nest its JSON less deeply"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(t: Traits) {
        let Value::Object(map) = serde_json::to_value(&t).unwrap() else {
            panic!("traits serialize to an object");
        };
        assert_eq!(traits_from_json(map), t);
    }

    #[test]
    fn traits_read_back_exactly_as_serialized() {
        round_trip(Traits::default());
        round_trip(Traits {
            name: Some("王芳".into()),
            phone: Some("13800000000".into()),
            city: Some("上海".into()),
            birthday: Some("1990-05-17".into()),
            timezone: Some("Asia/Shanghai".into()),
            tags: vec!["vip".into(), "new".into()],
            remove_tags: vec!["old".into()],
            extra: json!({"level": 3, "pets": ["cat"], "nested": {"a": null}})
                .as_object()
                .unwrap()
                .clone(),
        });
        // Not something the wire parser makes, but an event built in code
        // must still read back as written.
        round_trip(Traits {
            extra: json!({"tagz": [1, 2], "score": 1.5})
                .as_object()
                .unwrap()
                .clone(),
            ..Traits::default()
        });
    }

    #[test]
    fn seq_round_trips_above_i64_max() {
        for s in [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(seq_out(seq_in(s)), s);
        }
    }
}
