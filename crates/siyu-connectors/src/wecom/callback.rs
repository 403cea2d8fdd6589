//! WeCom callbacks as siyu events: the XML WeCom posts (read with size,
//! node and depth limits, no DTD), and [`map_callback`], the pure function
//! from one decrypted callback to the events it means. Field names are
//! those of WeCom's documentation (客户联系 → 变更回调 → 事件格式, and 微信客服
//! → 接收消息和事件).
//!
//! What each callback becomes (every event on channel `wecom`, at the
//! callback's `CreateTime`):
//!
//! | callback | siyu events |
//! | --- | --- |
//! | `change_external_contact` `add_external_contact`, `add_half_external_contact` | `add_friend` on `wecom:{ExternalUserID}`, properties `operator` (`UserID`), `state`, `welcome_code`, `change_type`; trait `operator` (who owns the person) |
//! | `edit_external_contact` | custom `wecom_contact_edited` (`operator`) |
//! | `del_external_contact` (the operator deleted the customer) | custom `friend_removed` (`operator`, `by: "operator"`, `source`) |
//! | `del_follow_user` (the customer deleted the operator) | custom `unfriend` (`operator`, `by: "customer"`): the engine's own "left the brand" exit, which fission hold periods check |
//! | `transfer_fail` | custom `wecom_transfer_failed` (`operator`, `fail_reason`) |
//! | `change_external_chat` `update` `add_member` / `del_member` | `join_group` / `leave_group` with group = `ChatId` for each customer in `MemChangeList` (properties `join_scene`/`quit_scene` and their meaning, `mem_change_cnt`) |
//! | `change_external_chat` `dismiss` | [`Mapped::dismissed_group`]: the server has every member it knows leave ([`leave_events`]) |
//! | `change_external_chat` `create`, other updates; `change_external_tag` | nothing: they name no customer (group and tag definitions are synced separately) |
//! | `kf_msg_or_event` (微信客服) | [`Mapped::kf_pull`]: the callback carries only a token; the messages are read with `kf/sync_msg` and become `comment` events ([`kf_events`]) |
//! | anything else (app messages from corp members, other events) | nothing |
//!
//! Why `unfriend` and `friend_removed` are two names: siyu's engine reads
//! the custom event `unfriend` as the person leaving the brand (a fission
//! hold period's "take the gift and leave"); that is what `del_follow_user`
//! says. An operator deleting a customer is the brand's act, so it is
//! another event, and a segment or report can tell them apart.
//!
//! Every event's id is derived from the callback's content (its kind, the
//! identities, `CreateTime`, and the event's role), so the retries WeCom
//! sends of one callback are stored once by the log's id dedup.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use siyu_domain::{parse_json_event, Event};

/// The largest XML document read (a callback is well under 4 KiB).
pub const MAX_XML_BYTES: usize = 64 * 1024;
/// The most XML nodes (elements, texts) read from one document.
pub const MAX_XML_NODES: u32 = 4096;
/// The deepest element read: `<xml>` → a field → a list item.
pub const MAX_XML_DEPTH: usize = 3;
/// The channel of every event a callback makes.
pub const CHANNEL: &str = "wecom";

/// Why a callback's XML or its content was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    #[error("the XML is {0} bytes; at most {MAX_XML_BYTES}")]
    TooLarge(usize),
    #[error("the XML does not parse: {0}")]
    Xml(String),
    #[error("the XML nests deeper than {MAX_XML_DEPTH} levels (<xml>, a field, a list item)")]
    TooDeep,
    #[error("the root element is <{0}>, not <xml>")]
    NotXmlRoot(String),
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

/// A callback document as its fields: each child of `<xml>` by name, its
/// text (CDATA or not, trimmed); a child with `<Item>`s (`MemChangeList`)
/// as a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackXml {
    fields: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

impl CallbackXml {
    /// Reads a document: at most [`MAX_XML_BYTES`], [`MAX_XML_NODES`] and
    /// [`MAX_XML_DEPTH`]; DTDs (and so entity expansion) are refused by
    /// the parser. The first of repeated fields is kept.
    pub fn parse(text: &str) -> Result<Self, CallbackError> {
        if text.len() > MAX_XML_BYTES {
            return Err(CallbackError::TooLarge(text.len()));
        }
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_XML_NODES,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(text, options)
            .map_err(|e| CallbackError::Xml(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "xml" {
            return Err(CallbackError::NotXmlRoot(
                root.tag_name().name().to_string(),
            ));
        }
        // The tree is built without recursion and holds at most
        // MAX_XML_NODES nodes; its depth is checked before it is read, in
        // one pass (document order: a parent comes before its children).
        let mut depths = vec![0usize; doc.descendants().count() + 1];
        for node in doc.descendants() {
            let parent = node.parent().map_or(0, |p| depths[p.id().get_usize()]);
            let depth = parent + usize::from(node.is_element());
            if depth > MAX_XML_DEPTH {
                return Err(CallbackError::TooDeep);
            }
            depths[node.id().get_usize()] = depth;
        }
        let mut xml = CallbackXml::default();
        for field in root.children().filter(|n| n.is_element()) {
            let name = field.tag_name().name().to_string();
            let items: Vec<String> = field
                .children()
                .filter(|n| n.is_element())
                .map(|item| text_of(&item))
                .filter(|t| !t.is_empty())
                .collect();
            if !items.is_empty() {
                xml.lists.entry(name).or_insert(items);
            } else {
                xml.fields.entry(name).or_insert_with(|| text_of(&field));
            }
        }
        Ok(xml)
    }

    /// A field's text; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, name: &'static str) -> Result<&str, CallbackError> {
        self.get(name).ok_or(CallbackError::Missing(name))
    }

    /// A list field's items (`<MemChangeList><Item>…</Item></MemChangeList>`).
    pub fn list(&self, name: &str) -> &[String] {
        self.lists.get(name).map_or(&[], Vec::as_slice)
    }
}

/// The text of an element: its text and CDATA children, trimmed.
fn text_of(node: &roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect::<String>()
        .trim()
        .to_string()
}

/// A `kf_msg_or_event` callback: what `kf/sync_msg` needs to read the
/// messages it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfPull {
    /// Valid 10 minutes; lifts sync_msg's strict rate limit.
    pub token: String,
    /// The customer-service account with new messages (absent in older
    /// callbacks: every account then).
    pub open_kfid: Option<String>,
}

/// What one callback means.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    /// The callback's kind: `Event/ChangeType` (`change_external_contact/add_external_contact`),
    /// `Event` alone, or `MsgType`.
    pub kind: String,
    pub events: Vec<Event>,
    /// A customer-service callback: pull its messages with this.
    pub kf_pull: Option<KfPull>,
    /// A customer group was dismissed: every member leaves it.
    pub dismissed_group: Option<String>,
    /// Why the callback made no event, or what of it was not mapped.
    pub note: Option<String>,
}

/// The events one decrypted callback means (see the module's table).
/// Pure: the server appends the events, pulls kf messages and expands a
/// dismissal.
pub fn map_callback(xml: &CallbackXml) -> Result<Mapped, CallbackError> {
    let msg_type = xml.get("MsgType").unwrap_or("");
    let event = xml.get("Event").unwrap_or("");
    let change = xml.get("ChangeType").unwrap_or("");
    let mut mapped = Mapped {
        kind: match (msg_type, event, change) {
            ("event", e, "") => e.to_string(),
            ("event", e, c) => format!("{e}/{c}"),
            (m, _, _) => m.to_string(),
        },
        ..Mapped::default()
    };
    if msg_type != "event" {
        mapped.note = Some(format!(
            "a `{msg_type}` message to the app comes from a member of the corp, not a customer: not recorded (customers' messages arrive through 微信客服, kf_msg_or_event)"
        ));
        return Ok(mapped);
    }
    match event {
        "change_external_contact" => contact_change(xml, change, &mut mapped)?,
        "change_external_chat" => chat_change(xml, change, &mut mapped)?,
        "kf_msg_or_event" => {
            mapped.kf_pull = Some(KfPull {
                token: xml.require("Token")?.to_string(),
                open_kfid: xml.get("OpenKfId").map(str::to_string),
            });
        }
        "change_external_tag" => {
            mapped.note = Some(
                "a corp tag definition changed: no customer is named, nothing recorded".into(),
            );
        }
        other => {
            mapped.note = Some(format!("event `{other}` is not mapped to siyu events"));
        }
    }
    Ok(mapped)
}

fn contact_change(
    xml: &CallbackXml,
    change: &str,
    mapped: &mut Mapped,
) -> Result<(), CallbackError> {
    let ts = create_time(xml)?;
    let customer = xml.require("ExternalUserID")?;
    let operator = xml.get("UserID");
    let mut props = Map::new();
    if let Some(o) = operator {
        props.insert("operator".into(), json!(o));
    }
    let mut traits = None;
    let (event_type, name) = match change {
        "add_external_contact" | "add_half_external_contact" => {
            // The operator the customer added owns the person (trait
            // `operator`, as live codes and hand-overs set it).
            traits = operator.map(|o| json!({"operator": o}));
            props.insert("change_type".into(), json!(change));
            if let Some(s) = xml.get("State") {
                props.insert("state".into(), json!(s));
            }
            if let Some(w) = xml.get("WelcomeCode") {
                props.insert("welcome_code".into(), json!(w));
            }
            ("add_friend", None)
        }
        "edit_external_contact" => ("custom", Some("wecom_contact_edited")),
        "del_external_contact" => {
            props.insert("by".into(), json!("operator"));
            if let Some(s) = xml.get("Source") {
                props.insert("source".into(), json!(s));
            }
            ("custom", Some("friend_removed"))
        }
        "del_follow_user" => {
            props.insert("by".into(), json!("customer"));
            ("custom", Some("unfriend"))
        }
        "transfer_fail" => {
            if let Some(r) = xml.get("FailReason") {
                props.insert("fail_reason".into(), json!(r));
            }
            ("custom", Some("wecom_transfer_failed"))
        }
        other => {
            mapped.note = Some(format!(
                "change_external_contact `{other}` is not mapped to siyu events"
            ));
            return Ok(());
        }
    };
    let id = event_id(&[
        "change_external_contact",
        change,
        customer,
        operator.unwrap_or(""),
        &ts.to_string(),
    ]);
    mapped.events.push(event(EventParts {
        id,
        ts,
        customer,
        event_type,
        name,
        group: None,
        text: None,
        properties: props,
        traits,
    })?);
    Ok(())
}

/// What `JoinScene` and `QuitScene` say, as WeCom documents them.
fn scene(field: &str, value: &str) -> Option<&'static str> {
    match (field, value) {
        ("JoinScene", "0") => Some("invited"),
        ("JoinScene", "1") => Some("invite_link"),
        ("JoinScene", "3") => Some("qr_code"),
        ("QuitScene", "0") => Some("left"),
        ("QuitScene", "1") => Some("removed"),
        _ => None,
    }
}

/// Whether a group member id is a customer's `external_userid` (WeCom
/// gives customers ids starting `wm` (WeChat users) or `wo` (other
/// corps' WeCom users); the corp's own members have their `userid`).
pub fn is_external_userid(id: &str) -> bool {
    id.starts_with("wm") || id.starts_with("wo")
}

fn chat_change(xml: &CallbackXml, change: &str, mapped: &mut Mapped) -> Result<(), CallbackError> {
    let chat = xml.require("ChatId")?;
    match change {
        "dismiss" => {
            mapped.dismissed_group = Some(chat.to_string());
            Ok(())
        }
        "update" => {
            let detail = xml.get("UpdateDetail").unwrap_or("");
            let (event_type, scene_field) = match detail {
                "add_member" => ("join_group", "JoinScene"),
                "del_member" => ("leave_group", "QuitScene"),
                other => {
                    mapped.kind = format!("change_external_chat/update/{other}");
                    mapped.note = Some(format!(
                        "customer group update `{other}` names no member: nothing recorded"
                    ));
                    return Ok(());
                }
            };
            mapped.kind = format!("change_external_chat/update/{detail}");
            let ts = create_time(xml)?;
            let mut props = Map::new();
            let scene_key = if detail == "add_member" {
                "join_scene"
            } else {
                "quit_scene"
            };
            if let Some(v) = xml.get(scene_field) {
                props.insert(scene_key.into(), json!(v));
                if let Some(meaning) = scene(scene_field, v) {
                    props.insert("scene".into(), json!(meaning));
                }
            }
            if let Some(n) = xml.get("MemChangeCnt") {
                props.insert("mem_change_cnt".into(), json!(n));
            }
            let members = xml.list("MemChangeList");
            let (customers, staff): (Vec<&String>, Vec<&String>) =
                members.iter().partition(|m| is_external_userid(m));
            for customer in customers {
                let id = event_id(&[
                    "change_external_chat",
                    detail,
                    chat,
                    customer,
                    &ts.to_string(),
                ]);
                mapped.events.push(event(EventParts {
                    id,
                    ts,
                    customer,
                    event_type,
                    name: None,
                    group: Some(chat),
                    text: None,
                    properties: props.clone(),
                    traits: None,
                })?);
            }
            mapped.note = match (members.is_empty(), staff.len()) {
                (true, _) => Some(
                    "no MemChangeList: WeCom did not name the members, nothing recorded".into(),
                ),
                (false, 0) => None,
                (false, n) => Some(format!(
                    "{n} member(s) of the corp (not customers) not recorded"
                )),
            };
            Ok(())
        }
        other => {
            mapped.note = Some(format!(
                "customer group `{other}` names no customer: nothing recorded"
            ));
            Ok(())
        }
    }
}

/// The `leave_group` events of a dismissed group's members (`wecom:`
/// identities the engine has in the group), at the callback's time.
pub fn leave_events(
    chat: &str,
    members: &[String],
    xml: &CallbackXml,
) -> Result<Vec<Event>, CallbackError> {
    let ts = create_time(xml)?;
    let mut props = Map::new();
    props.insert("scene".into(), json!("dismissed"));
    members
        .iter()
        .filter_map(|identity| identity.strip_prefix("wecom:"))
        .map(|customer| {
            event(EventParts {
                id: event_id(&[
                    "change_external_chat",
                    "dismiss",
                    chat,
                    customer,
                    &ts.to_string(),
                ]),
                ts,
                customer,
                event_type: "leave_group",
                name: None,
                group: Some(chat),
                text: None,
                properties: props.clone(),
                traits: None,
            })
        })
        .collect()
}

/// One message of a `kf/sync_msg` answer (`msg_list[]`), the fields siyu
/// reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KfMessage {
    pub msgid: String,
    #[serde(default)]
    pub open_kfid: String,
    #[serde(default)]
    pub external_userid: String,
    #[serde(default)]
    pub send_time: i64,
    /// 3: sent by the customer; 4: a system event; 5: sent by a servicer.
    #[serde(default)]
    pub origin: i64,
    #[serde(default)]
    pub msgtype: String,
    #[serde(default)]
    pub text: Option<KfText>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KfText {
    #[serde(default)]
    pub content: String,
}

/// The customers' text messages of a `kf/sync_msg` page as `comment`
/// events on `wecom:{external_userid}` (text = the message, id from the
/// `msgid`): what keyword auto-replies and journeys read, as from
/// `/v1/inbound/{channel}`. Messages of servicers, system events and
/// non-text messages are skipped and counted in the second value; a
/// message siyu cannot store (an invalid id) is skipped too.
pub fn kf_events(messages: &[KfMessage]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut skipped = 0;
    for m in messages {
        let text = match (&m.text, m.origin, m.msgtype.as_str()) {
            (Some(t), 3, "text") if !t.content.is_empty() => t.content.as_str(),
            _ => {
                skipped += 1;
                continue;
            }
        };
        let mut props = Map::new();
        props.insert("open_kfid".into(), json!(m.open_kfid));
        props.insert("msgid".into(), json!(m.msgid));
        let made = event(EventParts {
            id: event_id(&["kf", &m.msgid]),
            ts: m.send_time,
            customer: &m.external_userid,
            event_type: "comment",
            name: None,
            group: None,
            text: Some(text),
            properties: props,
            traits: None,
        });
        match made {
            Ok(e) => events.push(e),
            Err(_) => skipped += 1,
        }
    }
    (events, skipped)
}

/// `wecom/` and 32 hex digits of SHA-256 over the parts: the same callback
/// (a retry) gives the same id, two parts never run together.
pub(crate) fn event_id(parts: &[&str]) -> String {
    let mut sha = Sha256::new();
    for p in parts {
        sha.update((p.len() as u64).to_be_bytes());
        sha.update(p.as_bytes());
    }
    let digest = sha.finalize();
    format!("wecom/{}", &crate::http::hex(&digest)[..32])
}

fn create_time(xml: &CallbackXml) -> Result<i64, CallbackError> {
    let v = xml.require("CreateTime")?;
    v.parse::<i64>().map_err(|_| CallbackError::Invalid {
        field: "CreateTime".into(),
        reason: format!("{v:?} is not epoch seconds"),
    })
}

struct EventParts<'a> {
    id: String,
    ts: i64,
    customer: &'a str,
    event_type: &'static str,
    name: Option<&'static str>,
    group: Option<&'a str>,
    text: Option<&'a str>,
    properties: Map<String, Value>,
    /// Traits the event sets (an add's `operator`: who owns the person).
    traits: Option<Value>,
}

/// Built through the wire format's own parser, so a callback's event
/// passes exactly the checks every other event passes (identity, ts
/// range, per-field limits); a refusal names the callback's field.
fn event(p: EventParts<'_>) -> Result<Event, CallbackError> {
    let mut v = json!({
        "id": p.id,
        "ts": p.ts,
        "identity": format!("{CHANNEL}:{}", p.customer),
        "channel": CHANNEL,
        "type": p.event_type,
    });
    if let Some(n) = p.name {
        v["name"] = json!(n);
    }
    if let Some(g) = p.group {
        v["group"] = json!(g);
    }
    if let Some(t) = p.text {
        v["text"] = json!(t);
    }
    if !p.properties.is_empty() {
        v["properties"] = Value::Object(p.properties);
    }
    if let Some(t) = p.traits {
        v["traits"] = t;
    }
    parse_json_event(&v).map_err(|e| CallbackError::Invalid {
        field: match e.field {
            "identity" => "ExternalUserID".to_string(),
            "ts" => "CreateTime".to_string(),
            "group" => "ChatId".to_string(),
            other => other.to_string(),
        },
        reason: e.message,
    })
}
