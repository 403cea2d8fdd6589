//! Reading a corp's existing customers and customer groups from WeCom
//! (客户联系), and what each becomes as siyu events: the import that
//! brings what happened before siyu's callbacks were set up.
//!
//! Calls (all with `?access_token=`, refreshed once on 40001/40014/42001):
//! - `GET /cgi-bin/externalcontact/get_follow_user_list` →
//!   `{follow_user: [userid…]}`: the members with customer-contact
//!   permission, the operators whose customers are read.
//! - `POST /cgi-bin/externalcontact/batch/get_by_user`
//!   `{userid_list, cursor, limit ≤ 100}` →
//!   `{external_contact_list: [{external_contact, follow_info}], next_cursor}`.
//! - `POST /cgi-bin/externalcontact/groupchat/list`
//!   `{status_filter, owner_filter: {userid_list}, cursor, limit ≤ 1000}` →
//!   `{group_chat_list: [{chat_id, status}], next_cursor}`.
//! - `POST /cgi-bin/externalcontact/groupchat/get` `{chat_id, need_name: 1}` →
//!   `{group_chat: {chat_id, name, owner, member_list: [{userid, type, join_time, join_scene, unionid}]}}`.
//! - `GET /cgi-bin/externalcontact/get?external_userid=` →
//!   `{external_contact, follow_user: [{userid, tags: [{tag_name, type}]}]}`:
//!   one customer's tags now, read when an `edit_external_contact`
//!   callback says a member changed them ([`tags_event`]).
//!
//! What the answers become ([`contact_events`], [`group_events`]): the
//! same events the callbacks make, with the same ids, so a contact the
//! callbacks already recorded (or a second sync) stores nothing new:
//! - a contact of an operator: `add_friend` on `wecom:{external_userid}`
//!   at `follow_info.createtime`, the id of the `add_external_contact`
//!   callback for that customer, operator and second
//!   (`callback::event_id`); then an `identify` (name, avatar, gender,
//!   the operator, remark, the corp tags' names, and the `unionid` as a
//!   second identity `wechat_unionid:{unionid}`) whose id is a digest of
//!   what it sets, so an unchanged contact is stored once;
//! - a customer in a group: `join_group` at its `join_time`, the id of the
//!   `add_member` callback.
//!
//! The events are history: each carries `properties.source = "sync"`
//! ([`is_sync_event`]), which the server reads as backfill wherever the
//! event is applied, so it triggers no journey, auto-reply or welcome.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use siyu_domain::{parse_json_event, Event};
use std::collections::HashMap;

use super::callback::{event_id, is_external_userid, CHANNEL};
use crate::SendError;

/// `properties.source` of every event the sync makes: with an id from
/// WeCom (`wecom/…`), what marks it as history wherever it is applied
/// ([`is_sync_event`]).
pub const SYNC_SOURCE: &str = "sync";

/// Whether `e` was made by the sync (an id starting `wecom/` and
/// `properties.source` = [`SYNC_SOURCE`]): history, on every node that
/// applies it, at any time (a replay after a takeover included), so it
/// triggers nothing.
pub fn is_sync_event(e: &Event) -> bool {
    e.id.as_deref().is_some_and(|id| id.starts_with("wecom/"))
        && e.properties
            .as_ref()
            .and_then(|p| p.get("source"))
            .and_then(Value::as_str)
            == Some(SYNC_SOURCE)
}

/// `batch/get_by_user` answers at most this many contacts a page.
pub const CONTACTS_PAGE_LIMIT: u32 = 100;
/// `groupchat/list` answers at most this many groups a page.
pub const GROUPS_PAGE_LIMIT: u32 = 1000;
/// The identity channel of a WeChat `unionid` (one person across the
/// brand's Official Accounts, mini programs and WeCom).
pub const UNIONID_CHANNEL: &str = "wechat_unionid";

/// One customer of `batch/get_by_user` (`external_contact`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ExternalContact {
    pub external_userid: String,
    pub name: String,
    /// 1: a WeChat user; 2: a WeCom user of another corp.
    #[serde(rename = "type")]
    pub kind: i64,
    pub avatar: String,
    /// 0 unknown, 1 male, 2 female.
    pub gender: i64,
    pub unionid: String,
}

/// One operator's relation to the customer (`follow_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FollowInfo {
    pub userid: String,
    pub remark: String,
    pub createtime: i64,
    pub tag_id: Vec<String>,
    pub state: String,
}

/// One entry of `external_contact_list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Contact {
    pub external_contact: ExternalContact,
    pub follow_info: FollowInfo,
}

/// One page of `batch/get_by_user`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactsPage {
    pub contacts: Vec<Contact>,
    /// Empty on the last page.
    pub next_cursor: String,
}

/// One page of `groupchat/list`: the groups' `chat_id`s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupsPage {
    pub chat_ids: Vec<String>,
    pub next_cursor: String,
}

/// A member of a customer group (`member_list[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GroupMember {
    pub userid: String,
    /// 1: a member of the corp; 2: an external contact.
    #[serde(rename = "type")]
    pub kind: i64,
    pub join_time: i64,
    /// 1 invited directly, 2 through an invite link, 3 by the group's QR code.
    pub join_scene: i64,
    pub unionid: String,
}

/// `groupchat/get`'s `group_chat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GroupChat {
    pub chat_id: String,
    pub name: String,
    pub owner: String,
    pub create_time: i64,
    pub member_list: Vec<GroupMember>,
}

fn unreadable(call: &str, e: serde_json::Error) -> SendError {
    SendError::Permanent(format!("wecom: {call} answer is not readable: {e}"))
}

fn list<T: serde::de::DeserializeOwned>(
    v: &Value,
    field: &str,
    call: &str,
) -> Result<Vec<T>, SendError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(l) => serde_json::from_value(l.clone()).map_err(|e| unreadable(call, e)),
    }
}

fn cursor(v: &Value) -> String {
    v.get("next_cursor")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl super::WeComConnector {
    /// The members with customer-contact permission (`get_follow_user_list`).
    pub async fn follow_users(&self) -> Result<Vec<String>, SendError> {
        let (_, v) = self
            .api
            .get("/cgi-bin/externalcontact/get_follow_user_list", &[])
            .await?;
        list(&v, "follow_user", "get_follow_user_list")
    }

    /// One page of the customers of `userids` (`batch/get_by_user`);
    /// `cursor` empty for the first page, `limit` at most 100.
    pub async fn contacts_page(
        &self,
        userids: &[String],
        cursor_in: &str,
        limit: u32,
    ) -> Result<ContactsPage, SendError> {
        let body = json!({
            "userid_list": userids,
            "cursor": cursor_in,
            "limit": limit.clamp(1, CONTACTS_PAGE_LIMIT),
        });
        let (_, v) = self
            .api
            .post("/cgi-bin/externalcontact/batch/get_by_user", &body)
            .await?;
        Ok(ContactsPage {
            contacts: list(&v, "external_contact_list", "batch/get_by_user")?,
            next_cursor: cursor(&v),
        })
    }

    /// One page of the customer groups (`groupchat/list`, every status),
    /// those owned by `owners` when it is not empty.
    pub async fn groups_page(
        &self,
        owners: &[String],
        cursor_in: &str,
        limit: u32,
    ) -> Result<GroupsPage, SendError> {
        let mut body = json!({
            "status_filter": 0,
            "cursor": cursor_in,
            "limit": limit.clamp(1, GROUPS_PAGE_LIMIT),
        });
        if !owners.is_empty() {
            body["owner_filter"] = json!({"userid_list": owners});
        }
        let (_, v) = self
            .api
            .post("/cgi-bin/externalcontact/groupchat/list", &body)
            .await?;
        #[derive(Deserialize)]
        struct Listed {
            chat_id: String,
        }
        let listed: Vec<Listed> = list(&v, "group_chat_list", "groupchat/list")?;
        Ok(GroupsPage {
            chat_ids: listed.into_iter().map(|g| g.chat_id).collect(),
            next_cursor: cursor(&v),
        })
    }

    /// One customer group with its members (`groupchat/get`).
    pub async fn group_chat(&self, chat_id: &str) -> Result<GroupChat, SendError> {
        let body = json!({"chat_id": chat_id, "need_name": 1});
        let (_, v) = self
            .api
            .post("/cgi-bin/externalcontact/groupchat/get", &body)
            .await?;
        let chat = v.get("group_chat").cloned().unwrap_or(Value::Null);
        serde_json::from_value(chat).map_err(|e| unreadable("groupchat/get", e))
    }
}

/// Why a contact or member could not become events (an id WeCom sent
/// that is not a valid identity, a time out of range): the sync counts
/// it as an error and goes on.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{what}: {reason}")]
pub struct MapError {
    pub what: String,
    pub reason: String,
}

fn built(v: Value, what: &str) -> Result<Event, MapError> {
    parse_json_event(&v).map_err(|e| MapError {
        what: what.to_string(),
        reason: format!("{}: {}", e.field, e.message),
    })
}

/// The events of one contact of one operator (see the module's doc).
/// `tag_names` maps corp tag ids to their names; an id it does not know
/// (a tag deleted since) is left out.
pub fn contact_events(
    contact: &Contact,
    tag_names: &HashMap<String, String>,
) -> Result<Vec<Event>, MapError> {
    let c = &contact.external_contact;
    let f = &contact.follow_info;
    let what = format!("contact {} of {}", c.external_userid, f.userid);
    let identity = format!("{CHANNEL}:{}", c.external_userid);
    let ts = f.createtime;
    let mut props = Map::new();
    props.insert("operator".into(), json!(f.userid));
    props.insert("change_type".into(), json!("add_external_contact"));
    if !f.state.is_empty() {
        props.insert("state".into(), json!(f.state));
    }
    props.insert("source".into(), json!(SYNC_SOURCE));
    let add = json!({
        // The `add_external_contact` callback's id for this add.
        "id": event_id(&[
            "change_external_contact",
            "add_external_contact",
            &c.external_userid,
            &f.userid,
            &ts.to_string(),
        ]),
        "ts": ts,
        "identity": identity,
        "channel": CHANNEL,
        "type": "add_friend",
        "properties": props,
        "traits": {"operator": f.userid},
    });
    let mut tags: Vec<&str> = f
        .tag_id
        .iter()
        .filter_map(|id| tag_names.get(id).map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let mut traits = Map::new();
    traits.insert("operator".into(), json!(f.userid));
    if !c.name.is_empty() {
        traits.insert("name".into(), json!(c.name));
    }
    if !c.avatar.is_empty() {
        traits.insert("avatar".into(), json!(c.avatar));
    }
    if let Some(g) = match c.gender {
        1 => Some("male"),
        2 => Some("female"),
        _ => None,
    } {
        traits.insert("gender".into(), json!(g));
    }
    if !f.remark.is_empty() {
        traits.insert("wecom_remark".into(), json!(f.remark));
    }
    if !tags.is_empty() {
        traits.insert("tags".into(), json!(tags));
    }
    let traits = Value::Object(traits);
    let digest_of = traits.to_string();
    let mut identify = json!({
        "id": event_id(&["sync", "contact", &c.external_userid, &f.userid, &ts.to_string(), &c.unionid, &digest_of]),
        "ts": ts,
        "identity": identity,
        "channel": CHANNEL,
        "type": "identify",
        "traits": traits,
        "properties": {"source": SYNC_SOURCE},
    });
    if !c.unionid.is_empty() {
        identify["ref"] = json!(format!("{UNIONID_CHANNEL}:{}", c.unionid));
    }
    Ok(vec![built(add, &what)?, built(identify, &what)?])
}

/// What `groupchat/get`'s `join_scene` says.
fn join_scene(scene: i64) -> Option<&'static str> {
    match scene {
        1 => Some("invited"),
        2 => Some("invite_link"),
        3 => Some("qr_code"),
        _ => None,
    }
}

/// The `join_group` events of a group's customers (members of the corp
/// are not persons), each with the `add_member` callback's id. A member
/// that cannot be an event is returned as an error beside the others.
pub fn group_events(chat: &GroupChat) -> (Vec<Event>, Vec<MapError>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for m in &chat.member_list {
        if m.kind != 2 && !is_external_userid(&m.userid) {
            continue;
        }
        let mut props = Map::new();
        props.insert("join_scene".into(), json!(m.join_scene.to_string()));
        if let Some(s) = join_scene(m.join_scene) {
            props.insert("scene".into(), json!(s));
        }
        props.insert("source".into(), json!(SYNC_SOURCE));
        let v = json!({
            "id": event_id(&[
                "change_external_chat",
                "add_member",
                &chat.chat_id,
                &m.userid,
                &m.join_time.to_string(),
            ]),
            "ts": m.join_time,
            "identity": format!("{CHANNEL}:{}", m.userid),
            "channel": CHANNEL,
            "type": "join_group",
            "group": chat.chat_id,
            "properties": props,
        });
        match built(v, &format!("member {} of group {}", m.userid, chat.chat_id)) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    (events, errors)
}

/// A corp member's tag on a customer, as `externalcontact/get` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FollowTag {
    pub group_name: String,
    pub tag_name: String,
    pub tag_id: String,
    /// 1: a corp tag; 2: the member's own tag; 3: a rule tag.
    #[serde(rename = "type")]
    pub kind: i64,
}

/// One member following the customer (`follow_user[]` of `externalcontact/get`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FollowUser {
    pub userid: String,
    pub remark: String,
    pub createtime: i64,
    pub tags: Vec<FollowTag>,
    pub state: String,
}

/// `externalcontact/get`: the customer and every member following them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactDetail {
    pub external_contact: ExternalContact,
    pub follow_user: Vec<FollowUser>,
}

impl super::WeComConnector {
    /// One customer with the members following them and their tags
    /// (`GET /cgi-bin/externalcontact/get?external_userid=`).
    pub async fn contact(&self, external_userid: &str) -> Result<ContactDetail, SendError> {
        let (_, v) = self
            .api
            .get(
                "/cgi-bin/externalcontact/get",
                &[("external_userid", external_userid)],
            )
            .await?;
        serde_json::from_value(v).map_err(|e| unreadable("externalcontact/get", e))
    }
}

/// The corp tags a customer carries in WeCom (every member's, by name),
/// as an `identify` on `wecom:{external_userid}` at `ts` that adds those
/// `person_tags` lacks and removes the corp tags (`is_corp_tag`) the
/// person has and WeCom no longer shows; `None` when they agree. Its id
/// is a digest of the customer, `ts` and the tags, starting `wecom/` like
/// every event from WeCom (so it is never sent back with `mark_tag`).
pub fn tags_event(
    detail: &ContactDetail,
    ts: i64,
    person_tags: &[String],
    is_corp_tag: impl Fn(&str) -> bool,
) -> Result<Option<Event>, MapError> {
    let ext = &detail.external_contact.external_userid;
    let mut wecom: Vec<&str> = detail
        .follow_user
        .iter()
        .flat_map(|f| &f.tags)
        .filter(|t| t.kind == 1 && !t.tag_name.is_empty())
        .filter(|t| !t.tag_name.starts_with(super::moments::MOMENT_TAG_PREFIX))
        .map(|t| t.tag_name.as_str())
        .collect();
    wecom.sort_unstable();
    wecom.dedup();
    let add: Vec<&str> = wecom
        .iter()
        .copied()
        .filter(|t| !person_tags.iter().any(|p| p == t))
        .collect();
    let remove: Vec<&str> = person_tags
        .iter()
        .map(String::as_str)
        .filter(|p| is_corp_tag(p) && !wecom.contains(p))
        .collect();
    if add.is_empty() && remove.is_empty() {
        return Ok(None);
    }
    let mut traits = Map::new();
    if !add.is_empty() {
        traits.insert("tags".into(), json!(add));
    }
    if !remove.is_empty() {
        traits.insert("remove_tags".into(), json!(remove));
    }
    let mut parts = vec!["edit_external_contact", "tags", ext.as_str()];
    let ts_text = ts.to_string();
    parts.push(&ts_text);
    parts.extend(wecom.iter().copied());
    let v = json!({
        "id": event_id(&parts),
        "ts": ts,
        "identity": format!("{CHANNEL}:{ext}"),
        "channel": CHANNEL,
        "type": "identify",
        "traits": traits,
    });
    built(v, &format!("tags of {ext}")).map(Some)
}
