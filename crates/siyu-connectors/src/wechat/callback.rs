//! An Official Account's server callbacks (消息推送) as siyu events: the
//! plaintext-mode `signature`, siyu's QR scenes, and [`map_callback`], the
//! pure function from one callback's XML (read by
//! [`crate::wecom::callback::CallbackXml`], with its size, node and depth
//! limits) to the events it means. Field names are those of WeChat's
//! documentation (基础消息能力 → 接收普通消息 / 接收事件推送).
//!
//! | callback | siyu events (channel `wechat`, identity `wechat:{FromUserName}`) |
//! | --- | --- |
//! | event `subscribe` | `follow`; from a siyu QR (`EventKey` `qrscene_<scene>`): properties `scene`, `ticket` and the scene's `source` channel or `campaign`; a channel scene also records a `touch` on that channel one second before, so the source is the follower's first channel |
//! | event `unsubscribe` | custom `unfollow` |
//! | event `SCAN` (a follower scans a QR) | `touch` with `scene` (`EventKey`), `ticket`, `source`/`campaign` |
//! | message `text` | `comment` with the text (what keyword auto-replies and journeys read, as from `/v1/inbound/{channel}`), property `msgid` |
//! | other messages and events (images, menu clicks, locations, template send reports) | nothing |
//!
//! Every event's id comes from the callback's content (`MsgId` for a
//! message; `FromUserName`, `CreateTime` and the event for an event), so
//! WeChat's retries (three, 5 seconds apart, of a callback not answered)
//! are stored once by the log's id dedup.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use siyu_domain::{parse_json_event, Event};

use crate::wecom::callback::{CallbackError, CallbackXml};
use crate::wecom::crypto::{hex_matches, sorted_sha1};

/// The channel of every event a callback makes.
pub const CHANNEL: &str = "wechat";
/// How a siyu QR scene that names a campaign starts.
pub const CAMPAIGN_SCENE: &str = "campaign:";
/// How a siyu QR scene that names a source channel starts.
pub const CHANNEL_SCENE: &str = "channel:";

/// Plaintext mode's `signature`: the hex SHA-1 of the sorted token,
/// timestamp and nonce.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce])
}

/// Whether `given` is [`signature`] (constant time, hex case ignored).
pub fn signature_matches(token: &str, timestamp: &str, nonce: &str, given: &str) -> bool {
    hex_matches(&signature(token, timestamp, nonce), given)
}

/// What a siyu QR scene stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scene {
    /// A fission campaign (`campaign:<id>`).
    Campaign(String),
    /// A source channel (`channel:<name>`), e.g. a poster in a shop.
    Channel(String),
}

impl Scene {
    /// The scene string (`campaign:spring`).
    pub fn encode(&self) -> String {
        match self {
            Scene::Campaign(c) => format!("{CAMPAIGN_SCENE}{c}"),
            Scene::Channel(c) => format!("{CHANNEL_SCENE}{c}"),
        }
    }

    /// A scene siyu made; `None` for another (a QR made elsewhere).
    pub fn decode(scene: &str) -> Option<Scene> {
        if let Some(c) = scene.strip_prefix(CAMPAIGN_SCENE).filter(|c| !c.is_empty()) {
            return Some(Scene::Campaign(c.to_string()));
        }
        scene
            .strip_prefix(CHANNEL_SCENE)
            .filter(|c| siyu_domain::Channel::is_valid(c))
            .map(|c| Scene::Channel(c.to_string()))
    }
}

/// What one callback means.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    /// `event/<Event>` or the `MsgType`.
    pub kind: String,
    pub events: Vec<Event>,
    /// Why the callback made no event.
    pub note: Option<String>,
}

/// The events one (decrypted) callback means (see the module's table).
pub fn map_callback(xml: &CallbackXml) -> Result<Mapped, CallbackError> {
    let msg_type = xml.get("MsgType").unwrap_or("");
    let mut mapped = Mapped {
        kind: if msg_type == "event" {
            format!("event/{}", xml.get("Event").unwrap_or(""))
        } else {
            msg_type.to_string()
        },
        ..Mapped::default()
    };
    match msg_type {
        "event" => map_event(xml, &mut mapped)?,
        "text" => {
            let from = xml
                .get("FromUserName")
                .ok_or(CallbackError::Missing("FromUserName"))?;
            let ts = create_time(xml)?;
            let text = xml
                .get("Content")
                .ok_or(CallbackError::Missing("Content"))?;
            let msgid = xml.get("MsgId");
            let id = match msgid {
                Some(m) => event_id(&["msg", m]),
                None => event_id(&["text", from, &ts.to_string(), text]),
            };
            let mut props = Map::new();
            if let Some(m) = msgid {
                props.insert("msgid".into(), json!(m));
            }
            mapped.events.push(event(
                id,
                ts,
                from,
                "comment",
                None,
                CHANNEL,
                Some(text),
                props,
            )?);
        }
        other => {
            mapped.note = Some(format!("a `{other}` message is not mapped to siyu events"));
        }
    }
    Ok(mapped)
}

fn map_event(xml: &CallbackXml, mapped: &mut Mapped) -> Result<(), CallbackError> {
    let event_name = xml.get("Event").unwrap_or("");
    let from = || {
        xml.get("FromUserName")
            .ok_or(CallbackError::Missing("FromUserName"))
    };
    let key = xml.get("EventKey");
    let scene = match event_name {
        "subscribe" => key.and_then(|k| k.strip_prefix("qrscene_")),
        "SCAN" => key,
        _ => None,
    };
    let (event_type, name) = match event_name {
        "subscribe" => ("follow", None),
        "unsubscribe" => ("custom", Some("unfollow")),
        "SCAN" => ("touch", None),
        other => {
            mapped.note = Some(format!("event `{other}` is not mapped to siyu events"));
            return Ok(());
        }
    };
    let from = from()?;
    let ts = create_time(xml)?;
    let mut props = Map::new();
    let decoded = scene.and_then(Scene::decode);
    if let Some(s) = scene {
        props.insert("scene".into(), json!(s));
        if let Some(t) = xml.get("Ticket") {
            props.insert("ticket".into(), json!(t));
        }
    }
    match &decoded {
        Some(Scene::Campaign(c)) => {
            props.insert("campaign".into(), json!(c));
        }
        Some(Scene::Channel(c)) => {
            props.insert("source".into(), json!(c));
        }
        None => {}
    }
    let ts_s = ts.to_string();
    if let (Some(Scene::Channel(source)), "subscribe") = (&decoded, event_name) {
        // The source's touch first, as a live code's: the person's first
        // channel is where the QR hung.
        let mut touch_props = Map::new();
        touch_props.insert("scene".into(), json!(scene.unwrap_or("")));
        touch_props.insert("via".into(), json!("wechat_qrcode"));
        mapped.events.push(event(
            event_id(&["event", "subscribe/touch", from, &ts_s]),
            ts - 1,
            from,
            "touch",
            None,
            source,
            None,
            touch_props,
        )?);
    }
    mapped.events.push(event(
        event_id(&["event", event_name, from, &ts_s]),
        ts,
        from,
        event_type,
        name,
        CHANNEL,
        None,
        props,
    )?);
    Ok(())
}

/// `wechat/` and 32 hex digits of SHA-256 over the parts (length-prefixed,
/// so two parts never run together): a retry gives the same id.
fn event_id(parts: &[&str]) -> String {
    let mut sha = Sha256::new();
    for p in parts {
        sha.update((p.len() as u64).to_be_bytes());
        sha.update(p.as_bytes());
    }
    format!("wechat/{}", &crate::http::hex(&sha.finalize())[..32])
}

fn create_time(xml: &CallbackXml) -> Result<i64, CallbackError> {
    let v = xml
        .get("CreateTime")
        .ok_or(CallbackError::Missing("CreateTime"))?;
    v.parse::<i64>().map_err(|_| CallbackError::Invalid {
        field: "CreateTime".into(),
        reason: format!("{v:?} is not epoch seconds"),
    })
}

/// Built through the wire format's own parser (the same checks as every
/// other event); a refusal names the callback's field.
#[allow(clippy::too_many_arguments)]
fn event(
    id: String,
    ts: i64,
    openid: &str,
    event_type: &str,
    name: Option<&str>,
    channel: &str,
    text: Option<&str>,
    properties: Map<String, Value>,
) -> Result<Event, CallbackError> {
    let mut v = json!({
        "id": id,
        "ts": ts,
        "identity": format!("{CHANNEL}:{openid}"),
        "channel": channel,
        "type": event_type,
    });
    if let Some(n) = name {
        v["name"] = json!(n);
    }
    if let Some(t) = text {
        v["text"] = json!(t);
    }
    if !properties.is_empty() {
        v["properties"] = Value::Object(properties);
    }
    parse_json_event(&v).map_err(|e| CallbackError::Invalid {
        field: match e.field {
            "identity" => "FromUserName".to_string(),
            "ts" => "CreateTime".to_string(),
            "text" => "Content".to_string(),
            other => other.to_string(),
        },
        reason: e.message,
    })
}
