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
#[derive(Debug, Clone, serde::Serialize, PartialEq, schemars::JsonSchema)]
pub struct Rejected {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// How an ingest route answers a request none of whose messages was
/// valid (a request that is not JSON at all is a 400 on every route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answering {
    /// siyu's own API (`/v1/events`): 400 `invalid_event` with the list.
    Strict,
    /// The Segment-compatible routes: 200 with the list, as Segment's
    /// HTTP Tracking API answers every well-formed request (see
    /// `segment_mapping.md`); what was rejected is in the body, in
    /// `/metrics` and in the log.
    Segment,
}

/// Most rejections of one request logged one line each; the rest are
/// counted in the request's summary line (and in `/metrics` and the
/// answer): a 10,000-message batch of garbage writes at most this many
/// lines.
pub const MAX_REJECTIONS_LOGGED: usize = 100;

/// Rejected messages per reason (the field that failed).
pub fn rejected_by_reason(rejected: &[Rejected]) -> std::collections::BTreeMap<String, usize> {
    let mut by_reason = std::collections::BTreeMap::new();
    for r in rejected {
        *by_reason.entry(r.field.clone()).or_default() += 1;
    }
    by_reason
}

/// Counts one ingest request on `route` and its rejected messages per
/// reason (`siyu_ingest_requests_total`, `siyu_ingest_rejected_total`)
/// and logs each rejection at `warn` (at most [`MAX_REJECTIONS_LOGGED`]
/// lines, then one summary line); the lines are written in the request's
/// span, so they carry its request id. Answers the per-reason counts.
pub fn account(
    metrics: &crate::metrics::Metrics,
    route: &str,
    accepted: usize,
    rejected: &[Rejected],
) -> std::collections::BTreeMap<String, usize> {
    metrics.ingest_request(route);
    let by_reason = rejected_by_reason(rejected);
    for (reason, n) in &by_reason {
        metrics.ingest_rejected(route, reason, *n as u64);
    }
    for r in rejected.iter().take(MAX_REJECTIONS_LOGGED) {
        tracing::warn!(
            %route,
            index = r.index,
            reason = %r.field,
            // Not `message`: that is the line's own text in the JSON format.
            detail = %r.message,
            "ingest: message rejected"
        );
    }
    if rejected.len() > MAX_REJECTIONS_LOGGED {
        tracing::warn!(
            %route,
            rejected = rejected.len(),
            accepted,
            by_reason = ?by_reason,
            not_logged = rejected.len() - MAX_REJECTIONS_LOGGED,
            "ingest: more messages rejected than logged one by one"
        );
    }
    by_reason
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

/// An id field of a Segment message (`userId`, `anonymousId`,
/// `previousId`, `groupId`): a non-empty string, or a number (`42`) as
/// its decimal text. Absent, null or "" is `None`.
fn id_field(m: &Map<String, Value>, field: &'static str) -> Result<Option<String>, WireError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(WireError {
            field,
            message: format!("`{field}` must be a string or a number"),
        }),
    }
}

/// What the request around a Segment message tells its mapping.
pub struct Received<'a> {
    /// When the request arrived, epoch milliseconds (`receivedAt`).
    pub at_ms: i64,
    /// The batch's own `sentAt`, for messages without one.
    pub batch_sent_at: Option<&'a Value>,
    /// The batch's `context`, for messages without one.
    pub batch_context: Option<&'a Value>,
    /// The client's address, kept as `context.ip` when a message has none.
    pub client_ip: Option<String>,
    /// Whether an identity is already known (stored, or earlier in the
    /// request): how `alias` tells a previous userId from an anonymousId.
    pub known: &'a dyn Fn(&str) -> bool,
}

impl Received<'_> {
    /// A request at `at_ms` knowing no identity (tests, one-off mapping).
    pub fn at(at_ms: i64) -> Received<'static> {
        Received {
            at_ms,
            batch_sent_at: None,
            batch_context: None,
            client_ip: None,
            known: &|_| false,
        }
    }
}

/// A Segment time: an ISO 8601 / RFC 3339 string (fractions kept to the
/// millisecond), or a number: epoch milliseconds when at least 10^11
/// (what JavaScript's `Date.now()` gives), else epoch seconds.
fn time_ms(field: &'static str, v: &Value) -> Result<Option<i64>, WireError> {
    let bad = || {
        WireError {
        field,
        message: format!("`{field}` must be an ISO 8601 time like 2026-10-31T08:00:00.123Z, or epoch seconds or milliseconds"),
    }
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => {
            let secs = siyu_domain::time::parse_rfc3339(s).ok_or_else(bad)?;
            // Milliseconds: the digits after the seconds' `.`, if any.
            let frac = s
                .get(19..)
                .and_then(|t| t.strip_prefix('.'))
                .map(|t| {
                    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
                    format!("{digits:0<3}")[..3].parse::<i64>().unwrap_or(0)
                })
                .unwrap_or(0);
            Ok(Some(secs * 1000 + frac))
        }
        Value::Number(n) => {
            let x = n.as_f64().ok_or_else(bad)?;
            if !x.is_finite() {
                return Err(bad());
            }
            Ok(Some(if x.abs() >= 1e11 {
                x as i64
            } else {
                (x * 1000.0) as i64
            }))
        }
        _ => Err(bad()),
    }
}

/// The event time of a message, per the Segment spec: the client's time
/// (`originalTimestamp`, else `timestamp`) corrected for the client's
/// clock skew when it says when it sent the message (`sentAt`, its own or
/// the batch's): `receivedAt - (sentAt - client time)`. Without a client
/// time: `receivedAt`. Epoch seconds (floored).
fn event_time(m: &Map<String, Value>, r: &Received) -> Result<i64, WireError> {
    let original = match m.get("originalTimestamp") {
        Some(v) => time_ms("originalTimestamp", v)?,
        None => None,
    };
    let client = match original {
        Some(t) => Some(t),
        None => match m.get("timestamp") {
            Some(v) => time_ms("timestamp", v)?,
            None => None,
        },
    };
    let Some(client) = client else {
        return Ok(r.at_ms.div_euclid(1000));
    };
    let sent = match m.get("sentAt").or(r.batch_sent_at) {
        Some(v) => time_ms("sentAt", v)?,
        None => None,
    };
    let ms = match sent {
        Some(sent) => client + (r.at_ms - sent),
        None => client,
    };
    Ok(ms.div_euclid(1000))
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

/// The parts of `context` kept on every event (under
/// `properties.context`): where it came from (page, referrer, UTM
/// `campaign`), who sent it (`ip`, `userAgent`: anti-fraud), `locale`,
/// `timezone` and `library`. The rest (device details, screen …) is not
/// kept: `properties` is bounded.
const CONTEXT_KEPT: [&str; 9] = [
    "ip",
    "userAgent",
    "page",
    "campaign",
    "referrer",
    "locale",
    "timezone",
    "library",
    "app",
];

fn kept_context(context: Option<&Value>, client_ip: Option<&str>) -> Map<String, Value> {
    let mut kept = Map::new();
    if let Some(Value::Object(c)) = context {
        for k in CONTEXT_KEPT {
            if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
                kept.insert(k.to_string(), v.clone());
            }
        }
    }
    if !kept.contains_key("ip") {
        if let Some(ip) = client_ip {
            kept.insert("ip".into(), Value::from(ip));
        }
    }
    kept
}

/// The channel of a message: `properties.channel` if it is a channel
/// name, else the UTM source (`context.campaign.source`, lowercased) if it
/// is one, else none (the identity's channel).
fn channel_of(props: &Map<String, Value>, context: &Map<String, Value>) -> Option<String> {
    let named = props
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| siyu_domain::Channel::is_valid(c))
        .map(str::to_string);
    named.or_else(|| {
        context
            .get("campaign")
            .and_then(|c| c.get("source"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_lowercase())
            .filter(|s| siyu_domain::Channel::is_valid(s))
    })
}

/// Converts one Segment message (`type` track, identify, alias, page,
/// screen or group) into siyu events, or the reason it cannot be.
pub fn segment_message(
    v: &Value,
    kind: Option<&str>,
    r: &Received,
) -> Result<Vec<Event>, WireError> {
    let Value::Object(m) = v else {
        return Err(WireError {
            field: "event",
            message: "a Segment message must be a JSON object".into(),
        });
    };
    let kind = kind.or_else(|| str_field(m, "type")).unwrap_or("track");
    if !matches!(
        kind,
        "track" | "page" | "screen" | "identify" | "alias" | "group"
    ) {
        return Err(WireError {
            field: "type",
            message: format!("Segment message type `{kind}` is not supported; use track, identify, alias, page, screen or group"),
        });
    }
    let ts = event_time(m, r)?;
    let id = str_field(m, "messageId");
    let user = id_field(m, "userId")?.map(|u| format!("user:{u}"));
    let anon = id_field(m, "anonymousId")?.map(|a| format!("anon:{a}"));
    let identity = user.clone().or_else(|| anon.clone()).ok_or(WireError {
        field: "userId",
        message: "a Segment message needs userId or anonymousId (a string or a number)".into(),
    })?;
    let mut props = m
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let context = kept_context(m.get("context").or(r.batch_context), r.client_ip.as_deref());
    let channel = channel_of(&props, &context);
    if !props.contains_key("campaign") {
        if let Some(name) = context.get("campaign").and_then(|c| c.get("name")) {
            props.insert("campaign".into(), name.clone());
        }
    }
    let mut base = json!({"ts": ts, "identity": identity});
    if let Some(c) = &channel {
        base["channel"] = Value::from(c.as_str());
    }
    // `context` rides on every event of the message, beside its properties.
    let with_context = |mut p: Map<String, Value>| {
        if !context.is_empty() {
            p.insert("context".into(), Value::Object(context.clone()));
        }
        Value::Object(p)
    };
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
                    .ok_or(WireError {
                        field: "event",
                        message: "track needs `event`, the event name".into(),
                    })?
                    .to_string(),
                other => {
                    // A page's or screen's own name and category.
                    for k in ["name", "category"] {
                        if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                            props.entry(k).or_insert_with(|| v.clone());
                        }
                    }
                    format!("{other}_viewed")
                }
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
                }
            }
            e["properties"] = with_context(props.clone());
            raw.push(with_id(e, ""));
        }
        "identify" => {
            let mut e = base.clone();
            e["type"] = Value::from("identify");
            // `traits`, over `context.traits` (where RudderStack's SDKs
            // put them).
            let mut traits = m
                .get("context")
                .and_then(|c| c.get("traits"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            match m.get("traits") {
                None | Some(Value::Null) => {}
                Some(Value::Object(t)) => traits.extend(t.clone()),
                Some(_) => {
                    return Err(WireError {
                        field: "traits",
                        message: "identify traits must be an object".into(),
                    })
                }
            }
            e["traits"] = Value::Object(traits);
            if let (Some(_), Some(a)) = (&user, &anon) {
                e["ref"] = Value::from(a.as_str());
            }
            e["properties"] = with_context(props.clone());
            raw.push(with_id(e, ""));
        }
        "alias" => {
            let prev = id_field(m, "previousId")?
                .ok_or(WireError { field: "previousId", message: "alias needs previousId (the id the person had before: a userId or an anonymousId)".into() })?;
            // previousId is either kind of id: the message's own
            // anonymousId, else whichever is known, else a userId.
            let as_user = format!("user:{prev}");
            let as_anon = format!("anon:{prev}");
            let previous = if anon.as_deref() == Some(as_anon.as_str()) {
                as_anon
            } else if (r.known)(&as_user) {
                as_user
            } else if (r.known)(&as_anon) {
                as_anon
            } else {
                as_user
            };
            let mut e = base.clone();
            e["identity"] = Value::from(user.clone().unwrap_or(identity.clone()));
            e["type"] = Value::from("identify");
            e["ref"] = Value::from(previous);
            e["properties"] = with_context(props.clone());
            raw.push(with_id(e, ""));
        }
        _ => {
            // group: the group's id and traits become the person's traits
            // `group_id` and `group` (the last group a person was put in).
            let gid = id_field(m, "groupId")?.ok_or(WireError {
                field: "groupId",
                message: "group needs groupId".into(),
            })?;
            let mut group = match m.get("traits") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(t)) => t.clone(),
                Some(_) => {
                    return Err(WireError {
                        field: "traits",
                        message: "group traits must be an object".into(),
                    })
                }
            };
            group.insert("id".into(), Value::from(gid.as_str()));
            let mut e = base.clone();
            e["type"] = Value::from("identify");
            e["traits"] = json!({"group_id": gid, "group": group});
            e["properties"] = with_context(props.clone());
            raw.push(with_id(e, ""));
        }
    }
    // Both ids on a message that is not identify or alias: they are one person.
    if let (Some(u), Some(a), false) = (&user, &anon, matches!(kind, "identify" | "alias")) {
        let mut e = base.clone();
        e["identity"] = Value::from(u.as_str());
        e["type"] = Value::from("identify");
        e["ref"] = Value::from(a.as_str());
        raw.push(with_id(e, ":anon"));
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
        let events = segment_message(&v, None, &Received::at(0)).unwrap();
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
            &Received::at(1_790_000_000_000),
        )
        .unwrap();
        assert_eq!(custom[0].name.as_deref(), Some("Coupon Clicked"));
        assert_eq!(custom[0].identity.as_str(), "anon:a");
        let err = segment_message(
            &json!({"event":"x"}),
            Some("track"),
            &Received::at(1_790_000_000_000),
        )
        .unwrap_err();
        assert_eq!(err.field, "userId");
    }
}
