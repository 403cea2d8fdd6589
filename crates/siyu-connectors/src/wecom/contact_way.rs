//! WeCom's own QR codes behind a siyu live code: 「联系我」 (contact me,
//! `externalcontact/*_contact_way`) for operators and 「加入群聊」 (join a
//! customer group, `externalcontact/groupchat/*_join_way`) for groups.
//!
//! Why: a siyu live code's link routes a newcomer only when someone opens
//! it; a WeCom QR code adds the customer in WeCom itself, and WeCom's
//! add-contact callback then carries the `state` the way was made with.
//! siyu makes every way with `state` = the live code's id, so the callback
//! names the code that brought the customer (`siyu-server`'s callbacks).
//!
//! Request and answer shapes (客户联系 → 联系我与客户入群方式):
//! - `POST /cgi-bin/externalcontact/add_contact_way` with
//!   `{"type": 1 (one user) | 2 (several), "scene": 2 (QR code), "remark",
//!   "skip_verify", "state", "user": [userid]}` → `{errcode, errmsg,
//!   config_id, qr_code}`;
//! - `update_contact_way` `{config_id, remark, skip_verify, state, user}`,
//!   `del_contact_way` `{config_id}` → `{errcode, errmsg}`;
//! - `POST /cgi-bin/externalcontact/groupchat/add_join_way` with
//!   `{"scene": 2, "remark", "auto_create_room": 0|1, "room_base_name",
//!   "room_base_id", "chat_id_list": [≤ 5 chat ids], "state"}` →
//!   `{errcode, errmsg, config_id}`; its QR code is read with
//!   `groupchat/get_join_way` `{config_id}` → `{join_way: {qr_code, …}}`;
//!   `update_join_way` (the add body with `config_id`), `del_join_way`
//!   `{config_id}`.
//!
//! - `POST /cgi-bin/externalcontact/groupchat/get` `{chat_id, need_name: 0}`
//!   → `{group_chat: {member_list: [{userid, type, join_scene, state, …}]}}`:
//!   the `state` of the join way each member came through (the
//!   member-change callback does not carry it), [`WeComConnector::join_states`].
//!
//! A `state` is at most [`MAX_STATE_CHARS`] characters; a join way takes at
//! most [`MAX_JOIN_CHATS`] groups. Both are checked here before any call.

use serde_json::json;

use super::{str_field, WeComConnector};
use crate::SendError;

/// WeCom's limit on a way's `state`.
pub const MAX_STATE_CHARS: usize = 30;
/// WeCom's limit on a join way's `chat_id_list`.
pub const MAX_JOIN_CHATS: usize = 5;
/// WeCom's limit on a way's `remark`.
pub const MAX_REMARK_CHARS: usize = 30;

/// A 「联系我」 QR code for one or more corp members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactWay {
    /// The corp members (`userid`s) it adds; one → `type` 1, more → 2.
    pub users: Vec<String>,
    pub state: String,
    /// Add without the member confirming (WeCom's default is true).
    pub skip_verify: bool,
    pub remark: Option<String>,
}

/// A 「加入群聊」 QR code for up to five customer groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinWay {
    pub chat_ids: Vec<String>,
    pub state: String,
    /// When the groups are full, WeCom creates a new one (named
    /// `room_base_name` + a number from `room_base_id`).
    pub auto_create_room: bool,
    pub room_base_name: Option<String>,
    pub room_base_id: Option<u32>,
    pub remark: Option<String>,
}

/// What WeCom made: the way's id (kept for updates and deletion) and its
/// QR code's image URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub config_id: String,
    pub qr_code: String,
}

fn check_state(state: &str) -> Result<(), SendError> {
    if state.is_empty() || state.chars().count() > MAX_STATE_CHARS {
        return Err(SendError::Permanent(format!(
            "wecom: state must be 1–{MAX_STATE_CHARS} characters, got {:?}",
            state
        )));
    }
    Ok(())
}

fn remark(r: &Option<String>) -> String {
    r.as_deref()
        .unwrap_or("")
        .chars()
        .take(MAX_REMARK_CHARS)
        .collect()
}

impl ContactWay {
    fn body(&self) -> Result<serde_json::Value, SendError> {
        check_state(&self.state)?;
        if self.users.is_empty() {
            return Err(SendError::Permanent(
                "wecom: a contact way needs at least one user".into(),
            ));
        }
        Ok(json!({
            "type": if self.users.len() == 1 { 1 } else { 2 },
            "scene": 2,
            "remark": remark(&self.remark),
            "skip_verify": self.skip_verify,
            "state": self.state,
            "user": self.users,
        }))
    }
}

impl JoinWay {
    fn body(&self) -> Result<serde_json::Value, SendError> {
        check_state(&self.state)?;
        if self.chat_ids.is_empty() || self.chat_ids.len() > MAX_JOIN_CHATS {
            return Err(SendError::Permanent(format!(
                "wecom: a join way takes 1–{MAX_JOIN_CHATS} groups, got {}",
                self.chat_ids.len()
            )));
        }
        let mut body = json!({
            "scene": 2,
            "remark": remark(&self.remark),
            "auto_create_room": u8::from(self.auto_create_room),
            "chat_id_list": self.chat_ids,
            "state": self.state,
        });
        if self.auto_create_room {
            if let Some(n) = &self.room_base_name {
                body["room_base_name"] = json!(n);
            }
            if let Some(i) = self.room_base_id {
                body["room_base_id"] = json!(i);
            }
        }
        Ok(body)
    }
}

fn required(v: &serde_json::Value, field: &str, call: &str) -> Result<String, SendError> {
    str_field(v, field)
        .ok_or_else(|| SendError::Permanent(format!("wecom: {call} answered no {field}")))
}

impl WeComConnector {
    /// `add_contact_way`: a new 「联系我」 QR code.
    pub async fn add_contact_way(&self, way: &ContactWay) -> Result<Made, SendError> {
        let v = self
            .call("/cgi-bin/externalcontact/add_contact_way", &way.body()?)
            .await?;
        Ok(Made {
            config_id: required(&v, "config_id", "add_contact_way")?,
            qr_code: required(&v, "qr_code", "add_contact_way")?,
        })
    }

    /// `update_contact_way`: the same QR code, now for `way`'s users
    /// (WeCom keeps the code and its image).
    pub async fn update_contact_way(
        &self,
        config_id: &str,
        way: &ContactWay,
    ) -> Result<(), SendError> {
        let mut body = way.body()?;
        body["config_id"] = json!(config_id);
        // update_contact_way takes neither type nor scene.
        if let Some(o) = body.as_object_mut() {
            o.remove("type");
            o.remove("scene");
        }
        self.call("/cgi-bin/externalcontact/update_contact_way", &body)
            .await
            .map(|_| ())
    }

    /// `del_contact_way`: the QR code stops adding anyone.
    pub async fn del_contact_way(&self, config_id: &str) -> Result<(), SendError> {
        self.call(
            "/cgi-bin/externalcontact/del_contact_way",
            &json!({"config_id": config_id}),
        )
        .await
        .map(|_| ())
    }

    /// `groupchat/add_join_way`, then `groupchat/get_join_way` for its QR
    /// code (add answers only the id).
    pub async fn add_join_way(&self, way: &JoinWay) -> Result<Made, SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/groupchat/add_join_way",
                &way.body()?,
            )
            .await?;
        let config_id = required(&v, "config_id", "groupchat/add_join_way")?;
        let qr_code = self.join_way_qr(&config_id).await?;
        Ok(Made { config_id, qr_code })
    }

    /// `groupchat/get_join_way`: the join way's QR code.
    pub async fn join_way_qr(&self, config_id: &str) -> Result<String, SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/groupchat/get_join_way",
                &json!({"config_id": config_id}),
            )
            .await?;
        v.get("join_way")
            .and_then(|w| str_field(w, "qr_code"))
            .ok_or_else(|| {
                SendError::Permanent(
                    "wecom: groupchat/get_join_way answered no join_way.qr_code".into(),
                )
            })
    }

    /// `groupchat/update_join_way`: the same code for `way`'s groups.
    pub async fn update_join_way(&self, config_id: &str, way: &JoinWay) -> Result<(), SendError> {
        let mut body = way.body()?;
        body["config_id"] = json!(config_id);
        self.call("/cgi-bin/externalcontact/groupchat/update_join_way", &body)
            .await
            .map(|_| ())
    }

    /// `groupchat/del_join_way`.
    pub async fn del_join_way(&self, config_id: &str) -> Result<(), SendError> {
        self.call(
            "/cgi-bin/externalcontact/groupchat/del_join_way",
            &json!({"config_id": config_id}),
        )
        .await
        .map(|_| ())
    }
}

impl WeComConnector {
    /// `groupchat/get`: each member of the customer group who joined
    /// through a join way, with that way's `state` (members without one
    /// are left out).
    pub async fn join_states(&self, chat_id: &str) -> Result<Vec<(String, String)>, SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/groupchat/get",
                &json!({"chat_id": chat_id, "need_name": 0}),
            )
            .await?;
        let members = v
            .get("group_chat")
            .and_then(|g| g.get("member_list"))
            .and_then(|m| m.as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Ok(members
            .iter()
            .filter_map(|m| Some((str_field(m, "userid")?, str_field(m, "state")?)))
            .collect())
    }
}
