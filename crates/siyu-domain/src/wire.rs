//! Wire format v1: how events travel as JSON (API, JSONL import/export) and
//! as CSV (bulk import). Every rejection names the field and says how to fix it.
//!
//! JSON keys: `v` (optional, must be 1), `id`, `seq`, `ts` (RFC 3339 string or
//! integer epoch seconds), `identity`, `type`, `channel` (defaults to the
//! identity's channel), `amount` (integer cents, purchase/refund only), `ref`,
//! `group`, `text`, `name` (custom events), `properties` (object), `traits`
//! (object). Unknown keys are rejected so typos do not pass silently.

use crate::event::{Channel, Event, EventType, Traits};
use crate::identity::Identity;
#[cfg(test)]
use crate::line::{parse_csv_header, parse_csv_line};
use crate::time::{format_rfc3339, parse_date, parse_rfc3339, MAX_TS, MIN_TS};
use serde_json::{Map, Value};
use std::fmt;

/// The wire format version this build writes and reads.
pub const WIRE_VERSION: u64 = 1;
/// Largest amount accepted: 10^12 cents (10 billion yuan).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// Longest `text` accepted, in bytes (ids, names and groups: `MAX_SHORT_LEN`).
pub const MAX_TEXT_LEN: usize = 4096;
pub(crate) const MAX_SHORT_LEN: usize = 128;
/// Longest value of a named trait (`name`, `phone`, `city`, `timezone`,
/// `birthday`), in bytes.
pub const MAX_TRAIT_LEN: usize = 256;
/// Most tags one event adds (`tags`) or removes (`remove_tags`).
pub const MAX_TAGS: usize = 64;
/// Most keys of `properties`, and of `traits`.
pub const MAX_OBJECT_KEYS: usize = 64;
/// Largest `properties`, and `traits`, as compact JSON, in bytes. Traits
/// are kept in memory per person, so this bounds what one event adds.
pub const MAX_OBJECT_BYTES: usize = 16 * 1024;
/// Deepest nesting of arrays and objects inside `properties` or a trait.
pub const MAX_VALUE_DEPTH: usize = 8;

/// Counts bytes written, failing past a cap (so a huge value is not
/// serialized whole just to be measured).
struct CappedCount {
    n: usize,
    cap: usize,
}

impl std::io::Write for CappedCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n += buf.len();
        if self.n > self.cap {
            return Err(std::io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Deepest nesting of `v` (a scalar is 0), stopping once past `limit`.
fn depth(v: &Value, limit: usize) -> usize {
    let inner = |items: &mut dyn Iterator<Item = &Value>| {
        if limit == 0 {
            return 1;
        }
        1 + items.map(|x| depth(x, limit - 1)).max().unwrap_or(0)
    };
    match v {
        Value::Array(a) => inner(&mut a.iter()),
        Value::Object(m) => inner(&mut m.values()),
        _ => 0,
    }
}

/// The limits every `properties` and `traits` object obeys: keys, size,
/// nesting. Errors name the field, the limit and the fix.
fn check_object(field: &'static str, obj: &Map<String, Value>) -> Result<(), WireError> {
    if obj.len() > MAX_OBJECT_KEYS {
        return Err(WireError::new(
            field,
            format!(
                "has {} keys; at most {MAX_OBJECT_KEYS} are kept per event (put the rest in a later event or a nested value)",
                obj.len()
            ),
        ));
    }
    let mut count = CappedCount {
        n: 0,
        cap: MAX_OBJECT_BYTES,
    };
    if serde_json::to_writer(&mut count, obj).is_err() {
        return Err(WireError::new(
            field,
            format!("is larger than {MAX_OBJECT_BYTES} bytes of JSON; keep large content out of events (link to it)"),
        ));
    }
    if let Some((key, _)) = obj
        .iter()
        .find(|(_, v)| depth(v, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH - 1)
    {
        return Err(WireError::new(
            field,
            format!("`{key}` nests deeper than {MAX_VALUE_DEPTH} levels (counting `{field}` itself); flatten it"),
        ));
    }
    Ok(())
}

/// A rejected event: which field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The offending field (`ts`, `identity`, …) or `event` for the whole object.
    pub field: &'static str,
    pub message: String,
}

impl WireError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        WireError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for WireError {}

const KNOWN_KEYS: [&str; 14] = [
    "v",
    "id",
    "seq",
    "ts",
    "identity",
    "type",
    "channel",
    "amount",
    "ref",
    "group",
    "text",
    "name",
    "properties",
    "traits",
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<&'a str>, WireError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() > max => Err(WireError::new(
            field,
            format!("is {} bytes; at most {max} are accepted", s.len()),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(WireError::new(
            field,
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

/// Checks a timestamp is inside the accepted range.
pub fn check_ts(ts: i64) -> Result<i64, WireError> {
    if (MIN_TS..MAX_TS).contains(&ts) {
        Ok(ts)
    } else {
        Err(WireError::new(
            "ts",
            format!("{ts} is out of range; timestamps must lie in 2000-01-01..2100-01-01 (epoch seconds, not milliseconds)"),
        ))
    }
}

pub(crate) fn parse_ts_str(s: &str) -> Result<i64, WireError> {
    if let Ok(n) = s.parse::<i64>() {
        return check_ts(n);
    }
    match parse_rfc3339(s) {
        Some(ts) => check_ts(ts),
        None => Err(WireError::new(
            "ts",
            format!("`{s}` is not a timestamp; use RFC 3339 like `2026-10-31T08:00:00Z` or integer epoch seconds"),
        )),
    }
}

fn parse_identity(field: &'static str, s: &str) -> Result<Identity, WireError> {
    Identity::parse(s).map_err(|e| WireError::new(field, e.to_string()))
}

fn parse_amount_value(v: Option<&Value>) -> Result<Option<i64>, WireError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) => Ok(Some(a)),
            None if n.is_u64() => Err(WireError::new("amount", "overflows; at most 10^12 cents")),
            None => Err(WireError::new(
                "amount",
                format!("{n} is not an integer; amounts are integer cents (fen), e.g. 12900 for ¥129.00"),
            )),
        },
        Some(Value::String(s)) => s.parse::<i64>().map(Some).map_err(|_| {
            WireError::new("amount", format!("`{s}` is not an integer number of cents"))
        }),
        Some(other) => Err(WireError::new(
            "amount",
            format!("must be an integer number of cents, got {}", type_name(other)),
        )),
    }
}

fn parse_traits(v: &Value) -> Result<Traits, WireError> {
    let Value::Object(obj) = v else {
        return Err(WireError::new(
            "traits",
            format!("must be an object, got {}", type_name(v)),
        ));
    };
    check_object("traits", obj)?;
    let mut t = Traits::default();
    for (key, value) in obj {
        let as_string = || match value {
            Value::String(s) if s.len() <= MAX_TRAIT_LEN => Ok(s.clone()),
            Value::String(s) => Err(WireError::new(
                "traits",
                format!("`{key}` is {} bytes; at most {MAX_TRAIT_LEN}", s.len()),
            )),
            other => Err(WireError::new(
                "traits",
                format!("`{key}` must be a string, got {}", type_name(other)),
            )),
        };
        match key.as_str() {
            "name" => t.name = Some(as_string()?),
            "phone" => t.phone = Some(as_string()?),
            "city" => t.city = Some(as_string()?),
            "timezone" => t.timezone = Some(as_string()?),
            "birthday" => {
                let s = as_string()?;
                if parse_date(&s).is_none() {
                    return Err(WireError::new(
                        "traits",
                        format!("`birthday` `{s}` must be a date like 1990-05-17"),
                    ));
                }
                t.birthday = Some(s);
            }
            "tags" | "remove_tags" => {
                let Value::Array(items) = value else {
                    return Err(WireError::new(
                        "traits",
                        format!("`{key}` must be an array of strings"),
                    ));
                };
                if items.len() > MAX_TAGS {
                    return Err(WireError::new(
                        "traits",
                        format!(
                            "`{key}` has {} tags; at most {MAX_TAGS} per event",
                            items.len()
                        ),
                    ));
                }
                let list = if key == "tags" {
                    &mut t.tags
                } else {
                    &mut t.remove_tags
                };
                for item in items {
                    match item {
                        Value::String(s) if !s.is_empty() && s.len() <= MAX_SHORT_LEN => {
                            list.push(s.clone())
                        }
                        _ => {
                            return Err(WireError::new(
                                "traits",
                                format!("`{key}` must hold non-empty strings of at most 128 bytes"),
                            ))
                        }
                    }
                }
            }
            _ => {
                t.extra.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(t)
}

/// Parses and validates one event object of wire format v1.
pub fn parse_json_event(v: &Value) -> Result<Event, WireError> {
    let Value::Object(obj) = v else {
        return Err(WireError::new(
            "event",
            format!("must be a JSON object, got {}", type_name(v)),
        ));
    };
    if let Some(key) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(WireError::new(
            "event",
            format!(
                "unknown key `{key}`; known keys are {}",
                KNOWN_KEYS.join(", ")
            ),
        ));
    }
    match obj.get("v") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(WIRE_VERSION) => {}
        Some(other) => {
            return Err(WireError::new(
                "v",
                format!(
                "wire version {other} is not supported; this build reads version {WIRE_VERSION}"
            ),
            ))
        }
    }
    let event_type = match obj.get("type") {
        None | Some(Value::Null) => {
            return Err(WireError::new(
                "type",
                "is missing; e.g. \"type\": \"purchase\"",
            ))
        }
        Some(Value::String(s)) => EventType::parse(s).ok_or_else(|| {
            let names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            WireError::new(
                "type",
                format!("unknown event type `{s}`; use one of {}", names.join(", ")),
            )
        })?,
        Some(other) => {
            return Err(WireError::new(
                "type",
                format!("must be a string, got {}", type_name(other)),
            ))
        }
    };
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => {
            return Err(WireError::new(
                "ts",
                "is missing; e.g. \"ts\": \"2026-10-31T08:00:00Z\"",
            ))
        }
        Some(Value::String(s)) => parse_ts_str(s)?,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ts) => check_ts(ts)?,
            None => {
                return Err(WireError::new(
                    "ts",
                    "must be integer epoch seconds or an RFC 3339 string",
                ))
            }
        },
        Some(other) => {
            return Err(WireError::new(
                "ts",
                format!(
                    "must be an RFC 3339 string or epoch seconds, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    let identity = match opt_str(obj, "identity", crate::identity::MAX_IDENTITY_LEN + 1)? {
        Some(s) => parse_identity("identity", s)?,
        None => {
            return Err(WireError::new(
                "identity",
                "is missing; write it as `channel:id`, e.g. \"identity\": \"wecom:wm000123\"",
            ))
        }
    };
    let channel = match opt_str(obj, "channel", 64)? {
        Some(s) => Channel::parse(s).ok_or_else(|| {
            WireError::new(
                "channel",
                format!("`{s}` must be lowercase letters, digits or `_` (at most 32), e.g. douyin"),
            )
        })?,
        None => Channel::parse(identity.channel()).ok_or_else(|| {
            WireError::new(
                "channel",
                "is missing and the identity's channel is not a valid channel name",
            )
        })?,
    };
    let seq = match obj.get("seq") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| WireError::new("seq", "must be a non-negative integer"))?,
        ),
        Some(other) => {
            return Err(WireError::new(
                "seq",
                format!("must be a non-negative integer, got {}", type_name(other)),
            ))
        }
    };
    let amount = parse_amount_value(obj.get("amount"))?;
    let reference = opt_str(obj, "ref", crate::identity::MAX_IDENTITY_LEN + 1)?
        .map(|s| parse_identity("ref", s))
        .transpose()?;
    let traits = match obj.get("traits") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_traits(v)?),
    };
    let properties = match obj.get("properties") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            check_object("properties", m)?;
            Some(m.clone())
        }
        Some(other) => {
            return Err(WireError::new(
                "properties",
                format!("must be an object, got {}", type_name(other)),
            ))
        }
    };
    let fields = Fields {
        id: opt_str(obj, "id", MAX_SHORT_LEN)?.map(str::to_string),
        seq,
        ts,
        identity,
        event_type,
        channel,
        amount,
        reference,
        group: opt_str(obj, "group", MAX_SHORT_LEN)?.map(str::to_string),
        text: opt_str(obj, "text", MAX_TEXT_LEN)?.map(str::to_string),
        name: opt_str(obj, "name", MAX_SHORT_LEN)?.map(str::to_string),
        properties,
        traits,
    };
    fields.validate()
}

/// The fields of an event before the per-type rules are checked.
struct Fields {
    id: Option<String>,
    seq: Option<u64>,
    ts: i64,
    identity: Identity,
    event_type: EventType,
    channel: Channel,
    amount: Option<i64>,
    reference: Option<Identity>,
    group: Option<String>,
    text: Option<String>,
    name: Option<String>,
    properties: Option<Map<String, Value>>,
    traits: Option<Traits>,
}

/// The per-type rules shared by every parser: which fields a type needs and
/// which it must not have. Returns the amount to store.
pub(crate) fn check_type_rules(
    t: EventType,
    amount: Option<i64>,
    has_ref: bool,
    has_group: bool,
    has_name: bool,
    has_traits: bool,
) -> Result<i64, WireError> {
    let amount = match (t.has_amount(), amount) {
        (true, None) => {
            return Err(WireError::new(
                "amount",
                format!("is required on {t}: integer cents, e.g. 12900"),
            ))
        }
        (true, Some(a)) if !(0..=MAX_AMOUNT).contains(&a) => {
            return Err(WireError::new(
                "amount",
                format!(
                    "{a} is out of range; amounts are 0..=10^12 cents (refunds are positive too)"
                ),
            ))
        }
        (true, Some(a)) => a,
        (false, None | Some(0)) => 0,
        (false, Some(_)) => {
            return Err(WireError::new(
                "amount",
                format!("only purchase and refund carry an amount, not {t}"),
            ))
        }
    };
    match t {
        EventType::Identify if !has_ref && !has_traits => {
            return Err(WireError::new(
                "ref",
                "identify needs `ref` (the identity to link) or `traits` (what to record)",
            ))
        }
        EventType::ReferralSignup if !has_ref => {
            return Err(WireError::new(
                "ref",
                "referral_signup needs `ref`: the inviter's identity",
            ))
        }
        EventType::JoinGroup | EventType::LeaveGroup if !has_group => {
            return Err(WireError::new(
                "group",
                format!("{t} needs `group`: the community id"),
            ))
        }
        EventType::Custom if !has_name => {
            return Err(WireError::new(
                "name",
                "custom events need `name`, e.g. \"coupon_claimed\"",
            ))
        }
        _ => {}
    }
    if has_ref && !matches!(t, EventType::Identify | EventType::ReferralSignup) {
        return Err(WireError::new(
            "ref",
            format!("only identify and referral_signup take `ref`, not {t}"),
        ));
    }
    Ok(amount)
}

impl Fields {
    fn validate(mut self) -> Result<Event, WireError> {
        if let Some(p) = &mut self.properties {
            crate::intent::check_properties(self.event_type, p)?;
        }
        let amount = check_type_rules(
            self.event_type,
            self.amount,
            self.reference.is_some(),
            self.group.is_some(),
            self.name.is_some(),
            self.traits.is_some(),
        )?;
        Ok(Event {
            id: self.id,
            seq: self.seq,
            ts: self.ts,
            identity: self.identity,
            event_type: self.event_type,
            channel: self.channel,
            amount,
            reference: self.reference,
            group: self.group,
            text: self.text,
            name: self.name,
            properties: self.properties,
            traits: self.traits,
        })
    }
}

/// Writes an event in wire format v1 (the export format; re-importable).
pub fn to_json(e: &Event) -> Value {
    let mut m = Map::new();
    if let Some(id) = &e.id {
        m.insert("id".into(), id.clone().into());
    }
    if let Some(seq) = e.seq {
        m.insert("seq".into(), seq.into());
    }
    m.insert("ts".into(), format_rfc3339(e.ts).into());
    m.insert("identity".into(), e.identity.as_str().into());
    m.insert("type".into(), e.event_type.as_str().into());
    m.insert("channel".into(), e.channel.as_str().into());
    if e.event_type.has_amount() {
        m.insert("amount".into(), e.amount.into());
    }
    if let Some(r) = &e.reference {
        m.insert("ref".into(), r.as_str().into());
    }
    if let Some(g) = &e.group {
        m.insert("group".into(), g.clone().into());
    }
    if let Some(t) = &e.text {
        m.insert("text".into(), t.clone().into());
    }
    if let Some(n) = &e.name {
        m.insert("name".into(), n.clone().into());
    }
    if let Some(p) = &e.properties {
        m.insert("properties".into(), Value::Object(p.clone()));
    }
    if let Some(t) = &e.traits {
        m.insert(
            "traits".into(),
            serde_json::to_value(t).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn err(v: Value) -> WireError {
        parse_json_event(&v).unwrap_err()
    }

    #[test]
    fn parses_a_bench_line() {
        let v: Value = serde_json::from_str(
            r#"{"seq":7,"ts":"2025-11-01T00:00:55Z","identity":"douyin:ab","type":"purchase","channel":"douyin","amount":12900}"#,
        )
        .unwrap();
        let e = parse_json_event(&v).unwrap();
        assert_eq!(e.seq, Some(7));
        assert_eq!(e.ts, 1_761_955_255);
        assert_eq!(e.amount, 12900);
        assert_eq!(e.event_type, EventType::Purchase);
        assert_eq!(parse_json_event(&to_json(&e)).unwrap(), e);
    }

    #[test]
    fn rejections_name_the_field() {
        let base = json!({"ts": 1761955255, "identity": "douyin:a", "type": "touch"});
        assert!(parse_json_event(&base).is_ok());
        assert_eq!(err(json!([1])).field, "event");
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "nope"})).field,
            "type"
        );
        assert_eq!(
            err(json!({"identity": "douyin:a", "type": "touch"})).field,
            "ts"
        );
        assert_eq!(
            err(json!({"ts": 1761955255000i64, "identity": "douyin:a", "type": "touch"})).field,
            "ts"
        );
        assert_eq!(
            err(json!({"ts": "yesterday", "identity": "douyin:a", "type": "touch"})).field,
            "ts"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "a", "type": "touch"})).field,
            "identity"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": 5, "type": "touch"})).field,
            "identity"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "purchase"})).field,
            "amount"
        );
        assert_eq!(
            err(
                json!({"ts": 1761955255, "identity": "douyin:a", "type": "purchase", "amount": 1.5})
            )
            .field,
            "amount"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "purchase", "amount": u64::MAX})).field,
            "amount"
        );
        assert_eq!(
            err(
                json!({"ts": 1761955255, "identity": "douyin:a", "type": "purchase", "amount": -5})
            )
            .field,
            "amount"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "identify"})).field,
            "ref"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "join_group"})).field,
            "group"
        );
        assert_eq!(
            err(json!({"ts": 1761955255, "identity": "douyin:a", "type": "touch", "tz": 1})).field,
            "event"
        );
        assert_eq!(
            err(json!({"v": 2, "ts": 1761955255, "identity": "douyin:a", "type": "touch"})).field,
            "v"
        );
    }

    #[test]
    fn every_field_has_a_limit_named_in_its_rejection() {
        let with = |k: &str, v: Value| {
            let mut e = json!({"ts": 1761955255, "identity": "douyin:a", "type": "identify", "ref": "wecom:b"});
            e[k] = v;
            parse_json_event(&e)
        };
        let many = |n: usize| -> Map<String, Value> {
            (0..n).map(|i| (format!("k{i}"), json!(i))).collect()
        };
        let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({ "x": inner }));
        // At the limits: accepted.
        assert!(with("properties", Value::Object(many(MAX_OBJECT_KEYS))).is_ok());
        assert!(with("traits", Value::Object(many(MAX_OBJECT_KEYS))).is_ok());
        assert!(with(
            "properties",
            json!({"big": "x".repeat(MAX_OBJECT_BYTES - 20)})
        )
        .is_ok());
        assert!(with("properties", json!({"n": nested(MAX_VALUE_DEPTH - 1)})).is_ok());
        assert!(with("traits", json!({"tags": vec!["t"; MAX_TAGS]})).is_ok());
        assert!(with("traits", json!({"name": "x".repeat(MAX_TRAIT_LEN)})).is_ok());
        assert!(with("text", json!("x".repeat(MAX_TEXT_LEN))).is_ok());
        // Past them: a rejection naming the field and the limit.
        for (field, value, limit) in [
            (
                "properties",
                Value::Object(many(MAX_OBJECT_KEYS + 1)),
                MAX_OBJECT_KEYS,
            ),
            (
                "traits",
                Value::Object(many(MAX_OBJECT_KEYS + 1)),
                MAX_OBJECT_KEYS,
            ),
            (
                "properties",
                json!({"big": "x".repeat(MAX_OBJECT_BYTES)}),
                MAX_OBJECT_BYTES,
            ),
            (
                "traits",
                json!({"big": "x".repeat(MAX_OBJECT_BYTES)}),
                MAX_OBJECT_BYTES,
            ),
            (
                "properties",
                json!({"n": nested(MAX_VALUE_DEPTH)}),
                MAX_VALUE_DEPTH,
            ),
            (
                "traits",
                json!({"n": nested(MAX_VALUE_DEPTH)}),
                MAX_VALUE_DEPTH,
            ),
            ("traits", json!({"tags": vec!["t"; MAX_TAGS + 1]}), MAX_TAGS),
            (
                "traits",
                json!({"remove_tags": vec!["t"; MAX_TAGS + 1]}),
                MAX_TAGS,
            ),
            (
                "traits",
                json!({"city": "x".repeat(MAX_TRAIT_LEN + 1)}),
                MAX_TRAIT_LEN,
            ),
            ("text", json!("x".repeat(MAX_TEXT_LEN + 1)), MAX_TEXT_LEN),
            ("name", json!("x".repeat(MAX_SHORT_LEN + 1)), MAX_SHORT_LEN),
            ("group", json!("x".repeat(MAX_SHORT_LEN + 1)), MAX_SHORT_LEN),
            ("id", json!("x".repeat(MAX_SHORT_LEN + 1)), MAX_SHORT_LEN),
        ] {
            let e = with(field, value).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(&limit.to_string()), "{field}: {e}");
        }
    }

    #[test]
    fn csv_lines_parse_like_json() {
        let cols = parse_csv_header("seq,ts,identity,type,channel,amount,ref,group,text").unwrap();
        let e =
            parse_csv_line(&cols, "3,1761955255,wecom:wm1,identify,wecom,0,douyin:x,,").unwrap();
        assert_eq!(e.reference.unwrap().as_str(), "douyin:x");
        let e = parse_csv_line(&cols, "4,1761955255,douyin:x,comment,douyin,0,,,多少钱").unwrap();
        assert_eq!(e.text.as_deref(), Some("多少钱"));
        assert_eq!(
            parse_csv_line(&cols, "4,1761955255,douyin:x")
                .unwrap_err()
                .field,
            "event"
        );
        assert_eq!(
            parse_csv_header("seq,identity,type").unwrap_err().field,
            "ts"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The parser never panics on arbitrary JSON-ish input.
        #[test]
        fn json_parser_never_panics(s in "\\PC{0,120}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = parse_json_event(&v);
            }
        }

        #[test]
        fn structured_events_never_panic(
            ts in proptest::option::of(any::<i64>()),
            ident in "[a-z:]{0,6}",
            ty in "[a-z_]{0,12}",
            amount in proptest::option::of(any::<i64>()),
            r in proptest::option::of("[a-z:]{0,6}"),
        ) {
            let mut m = Map::new();
            if let Some(ts) = ts { m.insert("ts".into(), ts.into()); }
            m.insert("identity".into(), ident.into());
            m.insert("type".into(), ty.into());
            if let Some(a) = amount { m.insert("amount".into(), a.into()); }
            if let Some(r) = r { m.insert("ref".into(), r.into()); }
            if let Ok(e) = parse_json_event(&Value::Object(m)) {
                prop_assert_eq!(parse_json_event(&to_json(&e)).unwrap(), e);
            }
        }

        #[test]
        fn csv_parser_never_panics(s in "\\PC{0,80}") {
            let cols = parse_csv_header("seq,ts,identity,type,channel,amount,ref,group,text").unwrap();
            let _ = parse_csv_line(&cols, &s);
        }
    }
}
