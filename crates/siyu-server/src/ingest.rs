//! Turning request bodies into validated events: siyu's own wire format
//! (JSON array or NDJSON) and the Segment tracking spec.
//!
//! The Segment mapping (also served in `/openapi.json`):
//!
#![doc = include_str!("segment_mapping.md")]

/// The Segment mapping, as documented above (for the OpenAPI description).
pub const SEGMENT_MAPPING: &str = include_str!("segment_mapping.md");

use serde_json::{json, Map, Value};
use siyu_domain::{parse_json_event, Event, WireError};

/// One rejected item of a batch.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// The parsed body: the valid events (with their index) and the rejections.
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<(usize, Event)>,
    pub rejected: Vec<Rejected>,
}

/// Most events (or Segment messages) one request carries. With the wire
/// format's per-field limits this bounds what a request costs: the body is
/// read one event at a time, never as one JSON tree, and a longer batch is
/// refused before its rest is parsed.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

fn too_many() -> String {
    format!("a request carries at most {MAX_EVENTS_PER_REQUEST} events; split the batch")
}

/// Reads a JSON array one element at a time into `out` (the array as a
/// whole is never held as values), refusing it past
/// [`MAX_EVENTS_PER_REQUEST`] elements.
struct EventArray<'a> {
    out: &'a mut Parsed,
    /// Set when the array was refused for its length.
    too_long: &'a mut bool,
}

impl<'de> serde::de::Visitor<'de> for EventArray<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            if i == MAX_EVENTS_PER_REQUEST {
                *self.too_long = true;
                return Err(serde::de::Error::custom(too_many()));
            }
            match parse_json_event(&v) {
                Ok(e) => self.out.events.push((i, e)),
                Err(e) => self.out.rejected.push(reject(i, e)),
            }
            i += 1;
        }
        Ok(())
    }
}

/// Why a body could not be read at all.
#[derive(Debug)]
pub struct BodyError(pub String);

fn body_text(body: &[u8]) -> Result<&str, BodyError> {
    std::str::from_utf8(body).map_err(|e| {
        BodyError(format!(
            "body is not valid UTF-8 (first bad byte at offset {}); send UTF-8 JSON",
            e.valid_up_to()
        ))
    })
}

fn reject(index: usize, e: WireError) -> Rejected {
    Rejected {
        index,
        field: e.field.to_string(),
        message: e.message,
    }
}

/// Parses siyu wire-format events: a JSON array, or NDJSON (one object per
/// line; `ndjson` forces it, otherwise a body not starting with `[` is NDJSON).
pub fn parse_events(body: &[u8], ndjson: bool) -> Result<Parsed, BodyError> {
    let text = body_text(body)?;
    let mut out = Parsed::default();
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError(
            "body is empty; send a JSON array of events or NDJSON".into(),
        ));
    }
    if !ndjson && trimmed.starts_with('[') {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut too_long = false;
        let array = EventArray {
            out: &mut out,
            too_long: &mut too_long,
        };
        serde::Deserializer::deserialize_seq(&mut de, array)
            .and_then(|()| de.end())
            .map_err(|e| {
                if too_long {
                    BodyError(too_many())
                } else {
                    BodyError(format!(
                        "malformed JSON at line {}, column {}: {e}",
                        e.line(),
                        e.column()
                    ))
                }
            })?;
    } else {
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            if i == MAX_EVENTS_PER_REQUEST {
                return Err(BodyError(too_many()));
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) => match parse_json_event(&v) {
                    Ok(e) => out.events.push((i, e)),
                    Err(e) => out.rejected.push(reject(i, e)),
                },
                Err(e) => out.rejected.push(Rejected {
                    index: i,
                    field: "event".into(),
                    message: format!("malformed JSON at column {}: {e}", e.column()),
                }),
            }
        }
    }
    Ok(out)
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The main identity of a Segment message.
fn main_identity(m: &Map<String, Value>) -> Result<String, WireError> {
    if let Some(u) = str_field(m, "userId") {
        return Ok(format!("user:{u}"));
    }
    if let Some(a) = str_field(m, "anonymousId") {
        return Ok(format!("anon:{a}"));
    }
    Err(WireError {
        field: "userId",
        message: "a Segment message needs userId or anonymousId".into(),
    })
}

fn siyu_type_of(event: &str) -> Option<&'static str> {
    let snake = event.trim().to_lowercase().replace([' ', '-'], "_");
    match snake.as_str() {
        "order_completed" => Some("purchase"),
        "order_refunded" => Some("refund"),
        other => siyu_domain::EventType::parse(other)
            .filter(|t| *t != siyu_domain::EventType::Custom)
            .map(|t| t.as_str()),
    }
}

fn cents(props: &Map<String, Value>) -> Option<i64> {
    let v = props
        .get("revenue")
        .or_else(|| props.get("total"))
        .or_else(|| props.get("amount"))?;
    let yuan = v.as_f64().or_else(|| v.as_str()?.parse().ok())?;
    Some((yuan * 100.0).round() as i64)
}

/// Converts one Segment message (`type` track/identify/alias/page/screen)
/// into siyu events, or the reason it cannot be.
pub fn segment_message(v: &Value, kind: Option<&str>, now: i64) -> Result<Vec<Event>, WireError> {
    let Value::Object(m) = v else {
        return Err(WireError {
            field: "event",
            message: "a Segment message must be a JSON object".into(),
        });
    };
    let kind = kind.or_else(|| str_field(m, "type")).unwrap_or("track");
    let ts = match m.get("timestamp") {
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => Value::from(now),
    };
    let id = str_field(m, "messageId");
    let identity = main_identity(m).or_else(|e| {
        if kind == "alias" {
            str_field(m, "userId").map(|u| format!("user:{u}")).ok_or(e)
        } else {
            Err(e)
        }
    })?;
    let props = m
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let channel = props
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| siyu_domain::Channel::parse(c).is_some())
        .map(str::to_string);
    let mut base = json!({"ts": ts, "identity": identity});
    if let Some(c) = &channel {
        base["channel"] = Value::from(c.as_str());
    }
    let mut raw: Vec<Value> = Vec::new();
    let with_id = |mut e: Value, suffix: &str| {
        if let Some(id) = id {
            e["id"] = Value::from(format!("{id}{suffix}"));
        }
        e
    };
    match kind {
        "track" | "page" | "screen" => {
            let name = match kind {
                "track" => str_field(m, "event")
                    .ok_or(WireError { field: "event", message: "track needs `event`, the event name".into() })?
                    .to_string(),
                other => format!("{other}_viewed"),
            };
            let mut e = base.clone();
            match siyu_type_of(&name) {
                Some(t) => {
                    e["type"] = Value::from(t);
                    if t == "purchase" || t == "refund" {
                        let amount = cents(&props).ok_or(WireError {
                            field: "properties",
                            message: format!("{name} needs properties.revenue (or total) in yuan"),
                        })?;
                        e["amount"] = Value::from(amount);
                    }
                    if t == "comment" {
                        if let Some(text) = props.get("text").and_then(Value::as_str) {
                            e["text"] = Value::from(text);
                        }
                    }
                    if t == "join_group" || t == "leave_group" {
                        e["group"] = props.get("group").cloned().unwrap_or(Value::Null);
                    }
                    if t == "identify" || t == "referral_signup" {
                        e["ref"] = props.get("ref").cloned().unwrap_or(Value::Null);
                    }
                }
                None => {
                    e["type"] = Value::from("custom");
                    e["name"] = Value::from(name);
                    e["properties"] = Value::Object(props.clone());
                }
            }
            raw.push(with_id(e, ""));
        }
        "identify" => {
            let mut e = base.clone();
            e["type"] = Value::from("identify");
            e["traits"] = m.get("traits").cloned().unwrap_or_else(|| json!({}));
            if let (Some(_), Some(a)) = (str_field(m, "userId"), str_field(m, "anonymousId")) {
                e["ref"] = Value::from(format!("anon:{a}"));
            }
            raw.push(with_id(e, ""));
        }
        "alias" => {
            let prev = str_field(m, "previousId")
                .ok_or(WireError { field: "previousId", message: "alias needs previousId".into() })?;
            let mut e = base.clone();
            e["type"] = Value::from("identify");
            e["ref"] = Value::from(format!("anon:{prev}"));
            raw.push(with_id(e, ""));
        }
        other => {
            return Err(WireError {
                field: "type",
                message: format!("Segment message type `{other}` is not supported; use track, identify, alias, page or screen"),
            })
        }
    }
    let externals = m
        .get("context")
        .and_then(|c| c.get("externalIds"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, x) in externals.iter().enumerate() {
        let (Some(t), Some(xid)) = (
            x.get("type").and_then(Value::as_str),
            x.get("id").and_then(Value::as_str),
        ) else {
            return Err(WireError {
                field: "context",
                message: format!("externalIds[{i}] needs `type` and `id`"),
            });
        };
        let mut e = base.clone();
        e["type"] = Value::from("identify");
        e["ref"] = Value::from(format!("{}:{xid}", t.to_lowercase()));
        raw.push(with_id(e, &format!(":x{i}")));
    }
    raw.iter().map(parse_json_event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_track_maps_to_siyu_events() {
        let v = json!({"type":"track","userId":"u1","event":"Order Completed","messageId":"m1",
            "timestamp":"2026-10-31T08:00:00Z","properties":{"revenue":129.5,"channel":"taobao"},
            "context":{"externalIds":[{"type":"wecom","id":"wm9"}]}});
        let events = segment_message(&v, None, 0).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_type, siyu_domain::EventType::Purchase);
        assert_eq!(events[0].amount, 12950);
        assert_eq!(events[0].identity.as_str(), "user:u1");
        assert_eq!(events[0].channel.as_str(), "taobao");
        assert_eq!(events[0].id.as_deref(), Some("m1"));
        assert_eq!(events[1].reference.as_ref().unwrap().as_str(), "wecom:wm9");
        let custom = segment_message(
            &json!({"anonymousId":"a","event":"Coupon Clicked","properties":{"c":1}}),
            Some("track"),
            1_790_000_000,
        )
        .unwrap();
        assert_eq!(custom[0].name.as_deref(), Some("Coupon Clicked"));
        assert_eq!(custom[0].identity.as_str(), "anon:a");
        let err = segment_message(&json!({"event":"x"}), Some("track"), 1_790_000_000).unwrap_err();
        assert_eq!(err.field, "userId");
    }
}
