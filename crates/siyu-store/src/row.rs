//! The events table's columns, shared by both backends: how an `Event` is
//! split into columns and put back together. One place, so both backends
//! store exactly the same thing.

use crate::{Result, StoreError};
use serde_json::{Map, Value};
use siyu_domain::{Channel, Event, EventType, Identity, Traits};

/// Column values of one event row (besides its offset).
pub struct Row {
    pub event_id: Option<String>,
    pub seq: Option<i64>,
    pub ts: i64,
    pub identity: String,
    pub event_type: &'static str,
    pub channel: String,
    pub amount: i64,
    pub reference: Option<String>,
    pub group: Option<String>,
    pub text: Option<String>,
    pub name: Option<String>,
    /// JSON `{"properties": {...}, "traits": {...}}`, absent when both are.
    pub extra: Option<String>,
}

impl Row {
    pub fn from_event(e: &Event) -> Row {
        let mut extra = Map::new();
        if let Some(p) = &e.properties {
            extra.insert("properties".into(), Value::Object(p.clone()));
        }
        if let Some(t) = &e.traits {
            extra.insert(
                "traits".into(),
                serde_json::to_value(t).unwrap_or(Value::Null),
            );
        }
        Row {
            event_id: e.id.clone(),
            seq: e.seq.map(|s| s as i64),
            ts: e.ts,
            identity: e.identity.as_str().to_string(),
            event_type: e.event_type.as_str(),
            channel: e.channel.as_str().to_string(),
            amount: e.amount,
            reference: e.reference.as_ref().map(|r| r.as_str().to_string()),
            group: e.group.clone(),
            text: e.text.clone(),
            name: e.name.clone(),
            extra: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        }
    }
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

fn parse_traits(v: &Value) -> Result<Traits> {
    // Stored traits were validated on the way in; re-run the wire parser so
    // the typed fields come back exactly.
    let probe =
        serde_json::json!({"ts": 946684800, "identity": "x:x", "type": "identify", "traits": v});
    siyu_domain::parse_json_event(&probe)
        .map_err(|e| corrupt("stored traits", e))?
        .traits
        .ok_or_else(|| corrupt("stored traits", "missing"))
}

/// Rebuilds an event from its columns.
#[allow(clippy::too_many_arguments)]
pub fn to_event(
    event_id: Option<String>,
    seq: Option<i64>,
    ts: i64,
    identity: &str,
    event_type: &str,
    channel: &str,
    amount: i64,
    reference: Option<String>,
    group: Option<String>,
    text: Option<String>,
    name: Option<String>,
    extra: Option<String>,
) -> Result<Event> {
    let identity = Identity::parse(identity).map_err(|e| corrupt("identity", e))?;
    let event_type = EventType::parse(event_type).ok_or_else(|| corrupt("type", event_type))?;
    let channel = Channel::parse(channel).ok_or_else(|| corrupt("channel", channel))?;
    let mut e = Event::new(ts, identity, event_type, channel);
    e.id = event_id;
    e.seq = seq.map(|s| s as u64);
    e.amount = amount;
    e.reference = reference
        .map(|r| Identity::parse(&r).map_err(|e| corrupt("ref", e)))
        .transpose()?;
    e.group = group;
    e.text = text;
    e.name = name;
    if let Some(x) = extra {
        let v: Value = serde_json::from_str(&x).map_err(|e| corrupt("extra", e))?;
        if let Some(Value::Object(p)) = v.get("properties") {
            e.properties = Some(p.clone());
        }
        if let Some(t) = v.get("traits") {
            e.traits = Some(parse_traits(t)?);
        }
    }
    Ok(e)
}
