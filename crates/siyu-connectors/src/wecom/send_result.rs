//! What became of a WeCom group-send (`add_msg_template`): the task's
//! `msgid`, and the calls that say, per customer or group, whether it
//! went out.
//!
//! Why: `add_msg_template` only creates a task; the corp member (`sender`)
//! confirms it in WeCom later, and WeCom still drops the message for a
//! customer who is not the member's friend or who already received a
//! group message from the corp that day. So an outbox item accepted by
//! `add_msg_template` is marked done with [`awaiting`]'s detail (naming
//! the `msgid`), and the server's leader polls:
//! - `POST /cgi-bin/externalcontact/get_groupmsg_task` `{msgid, limit,
//!   cursor}` → `{task_list: [{userid, status: 0 not sent | 2 sent,
//!   send_time}], next_cursor}`: which members have sent it;
//! - `POST /cgi-bin/externalcontact/get_groupmsg_send_result` `{msgid,
//!   userid, limit, cursor}` → `{send_list: [{external_userid, chat_id,
//!   userid, status, send_time}], next_cursor}` with status 0 not sent, 1
//!   sent, 2 not the member's friend, 3 already received a group message
//!   today.
//!
//! Posts to a customer group go through the same call with
//! `chat_type: "group"` ([`group_template`]).

use serde::Deserialize;
use serde_json::json;

use super::{kf_msgid, list_field, str_field, WeComConnector};
use crate::{Delivery, OutboundMessage, SendError};

/// Rows asked per page (WeCom's maximum is 1000).
pub const PAGE: u32 = 1000;
/// The start of an outbox detail that names a group-send task still to
/// be confirmed: `wecom msgid <msgid>: waiting for the send result`.
const AWAITING_PREFIX: &str = "wecom msgid ";
const AWAITING_SUFFIX: &str = ": waiting for the send result";

/// The `add_msg_template` body of a post to a customer group (`identity`
/// `group:<chat id>`): `chat_type` group, the group as `chat_id_list`, the
/// sender from `data.sender` (the group's owner) or `default_sender`.
/// `None` for a message to a person.
pub fn group_template(msg: &OutboundMessage, default_sender: &str) -> Option<serde_json::Value> {
    msg.identity.strip_prefix("group:")?;
    let sender = msg
        .data
        .get("sender")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(default_sender);
    Some(json!({
        "chat_type": "group",
        "sender": sender,
        "chat_id_list": [msg.recipient],
        "text": {"content": msg.body},
    }))
}

/// The outbox detail of a WeCom message that `add_msg_template` accepted
/// as a group-send task (a `msgid` WeCom made; a `kf/send_msg` answer
/// echoes the id siyu chose, [`kf_msgid`], and is final): what
/// [`awaiting_msgid`] reads back. `None` for every other delivery.
pub fn awaiting(msg: &OutboundMessage, d: &Delivery) -> Option<String> {
    if msg.channel != "wecom" {
        return None;
    }
    let id = d.remote_id.as_deref().filter(|id| !id.is_empty())?;
    if id == kf_msgid(&msg.idempotency_key) {
        return None;
    }
    Some(format!("{AWAITING_PREFIX}{id}{AWAITING_SUFFIX}"))
}

/// The `msgid` of an [`awaiting`] detail.
pub fn awaiting_msgid(detail: &str) -> Option<&str> {
    detail
        .strip_prefix(AWAITING_PREFIX)?
        .strip_suffix(AWAITING_SUFFIX)
        .filter(|id| !id.is_empty())
}

/// A member's part of a group-send task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberTask {
    pub userid: String,
    /// 0 not sent yet, 2 sent.
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub send_time: i64,
}

/// What became of one recipient (`send_list` row).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Recipient {
    #[serde(default)]
    pub external_userid: String,
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub userid: String,
    /// 0 not sent, 1 sent, 2 not a friend, 3 already received today.
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub send_time: i64,
}

/// A recipient's status as a verdict: `None` while not sent (0), else
/// `Ok(())` delivered or `Err(reason)`.
pub fn verdict(status: i64) -> Option<Result<(), String>> {
    match status {
        0 => None,
        1 => Some(Ok(())),
        2 => Some(Err(
            "wecom: not the sender's customer (send_result status 2)".into(),
        )),
        3 => Some(Err(
            "wecom: the customer already received a group message today (send_result status 3)"
                .into(),
        )),
        other => Some(Err(format!("wecom: send_result status {other}"))),
    }
}

/// Every row of a paged call: `body` with `limit` and each page's
/// `cursor` until WeCom answers no (or the same) `next_cursor`.
async fn all_pages<T: serde::de::DeserializeOwned>(
    wecom: &WeComConnector,
    path: &str,
    mut body: serde_json::Value,
    field: &str,
) -> Result<Vec<T>, SendError> {
    body["limit"] = json!(PAGE);
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = wecom.call(path, &body).await?;
        out.extend(list_field::<T>(&v, field, path)?);
        let next = str_field(&v, "next_cursor").unwrap_or_default();
        if next.is_empty() || next == cursor {
            return Ok(out);
        }
        body["cursor"] = json!(next);
        cursor = next;
    }
}

impl WeComConnector {
    /// Every member's part of the task `msgid` (all pages).
    pub async fn groupmsg_task(&self, msgid: &str) -> Result<Vec<MemberTask>, SendError> {
        all_pages(
            self,
            "/cgi-bin/externalcontact/get_groupmsg_task",
            json!({"msgid": msgid}),
            "task_list",
        )
        .await
    }

    /// Every recipient of `userid`'s part of the task `msgid` (all pages).
    pub async fn groupmsg_send_result(
        &self,
        msgid: &str,
        userid: &str,
    ) -> Result<Vec<Recipient>, SendError> {
        all_pages(
            self,
            "/cgi-bin/externalcontact/get_groupmsg_send_result",
            json!({"msgid": msgid, "userid": userid}),
            "send_list",
        )
        .await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_awaiting_detail_reads_back_its_msgid() {
        let mut m = crate::OutboundMessage {
            idempotency_key: "m/spring/wecom:wmA".into(),
            channel: "wecom".into(),
            recipient: "wmA".into(),
            identity: "wecom:wmA".into(),
            subject: None,
            body: "hi".into(),
            html: None,
            unsubscribe_url: None,
            mass: true,
            data: json!({}),
            wechat_template: None,
        };
        let d = Delivery {
            remote_id: Some("msgGCAAA".into()),
            status: 200,
        };
        let detail = awaiting(&m, &d).unwrap();
        assert_eq!(awaiting_msgid(&detail), Some("msgGCAAA"));
        assert_eq!(awaiting_msgid("platform_quota"), None);
        // kf/send_msg echoes the id siyu chose: final, nothing to poll.
        let kf = Delivery {
            remote_id: Some(kf_msgid(&m.idempotency_key)),
            status: 200,
        };
        assert_eq!(awaiting(&m, &kf), None);
        m.channel = "sms".into();
        assert_eq!(awaiting(&m, &d), None);
    }
}
