//! WeCom (企业微信) messages to external contacts (customers), and the
//! signature WeCom puts on its callbacks.
//!
//! Token: `GET {base_url}/cgi-bin/gettoken?corpid=..&corpsecret=..` →
//! `{errcode, errmsg, access_token, expires_in}`, cached until shortly before
//! it expires; an answer with errcode 40001/40014/42001 (invalid or expired
//! token) refreshes it and repeats the call once.
//!
//! Sending (the text is `body`; `subject` is not used on this channel):
//! - mass messages, and direct ones when no `open_kfid` is configured:
//!   `POST /cgi-bin/externalcontact/add_msg_template?access_token=..` with
//!   `{"chat_type":"single","external_userid":[recipient],"sender":sender,"text":{"content":body}}`
//!   → `{errcode, errmsg, fail_list, msgid}`. WeCom turns this into a task the
//!   `sender` employee confirms; a recipient in `fail_list` (not the
//!   employee's customer) is a permanent failure. The remote id is `msgid`.
//! - posts to a customer group (`identity` `group:<chat id>`: SOP
//!   calendars, announcements): the same call with
//!   `{"chat_type":"group","sender":owner,"chat_id_list":[chat id],"text":..}`,
//!   the group owner from `data.sender` (else `sender`); see [`send_result`].
//! - direct messages when `open_kfid` is configured (WeChat Customer
//!   Service, 微信客服, which may message a customer within its session
//!   window): `POST /cgi-bin/kf/send_msg?access_token=..` with
//!   `{"touser":recipient,"open_kfid":..,"msgid":..,"msgtype":"text","text":{"content":body}}`;
//!   `msgid` is derived from the idempotency key (WeCom rejects a repeated
//!   one, which makes retries safe).
//!
//! errcode ≠ 0 is permanent except -1 (system busy) and 45009/45033 (rate
//! limits), which are retryable. WeCom has no `Idempotency-Key` header.
//!
//! Receiving: [`crypto`] (the callbacks' signature and AES, checked against
//! Tencent's published examples), [`callback`] (their XML and what each
//! means as siyu events), and [`WeComConnector::kf_sync_msg`] (reading the
//! customer-service messages a `kf_msg_or_event` callback announces).
//! `token`, `encoding_aes_key` and `corp_id` are the app's 接收事件服务器
//! settings ([`WeComConfig::callback`]).
//!
//! Customer contact beyond messages: [`sync`] (reading the existing
//! customers and groups), [`tags`] (corp tags, `mark_tag`), [`welcome`]
//! (`send_welcome_msg`) and [`calls`] (those calls as a connector on the
//! channel `wecom_api`, for the outbox). Customer contact administration,
//! each in its own module over the same token cache
//! ([`WeComConnector::call`]): [`contact_way`] (「联系我」 and 「加入群聊」 QR
//! codes behind live codes), [`transfer`] (customer and group inheritance
//! behind an operator hand-over), [`send_result`] (what became of a
//! group-send task, per recipient).

pub mod callback;
pub mod calls;
pub mod contact_way;
pub mod crypto;
pub mod moments;
pub mod send_result;
pub mod sync;
pub mod tags;
pub mod transfer;
pub mod welcome;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{required, ConfigError, Secret};
use crate::http::{self, TencentApi, TokenHealth};
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// `[wecom]` in the connectors config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WeComConfig {
    pub base_url: String,
    pub corp_id: String,
    /// The secret of the app allowed to use the external-contact APIs.
    pub secret: Secret,
    /// The employee (`userid`) that group-send tasks are created for.
    pub sender: String,
    /// The customer-service account for direct messages (`kf/send_msg`).
    pub open_kfid: Option<String>,
    pub timeout_ms: u64,
    /// The callback Token (接收事件服务器 → Token): signs every callback.
    /// With `encoding_aes_key`, enables `/callbacks/wecom`.
    pub token: Secret,
    /// The callback EncodingAESKey (43 characters): encrypts every
    /// callback.
    pub encoding_aes_key: Secret,
}

impl Default for WeComConfig {
    fn default() -> Self {
        WeComConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            corp_id: String::new(),
            secret: Secret::default(),
            sender: String::new(),
            open_kfid: None,
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
            token: Secret::default(),
            encoding_aes_key: Secret::default(),
        }
    }
}

impl WeComConfig {
    /// The callback crypto, when `token` and `encoding_aes_key` are set
    /// (`Ok(None)` when neither is). One without the other, a malformed
    /// key or a missing corp id is an error naming the field.
    pub fn callback(&self) -> Result<Option<crypto::CallbackCrypto>, ConfigError> {
        let token = self.token.expose().trim();
        let key = self.encoding_aes_key.expose().trim();
        match (token.is_empty(), key.is_empty()) {
            (true, true) => Ok(None),
            (false, true) => Err(ConfigError::Missing(
                "wecom.encoding_aes_key (callbacks need it with wecom.token)".into(),
            )),
            (true, false) => Err(ConfigError::Missing(
                "wecom.token (callbacks need it with wecom.encoding_aes_key)".into(),
            )),
            (false, false) => crypto::CallbackCrypto::new(token, key, &self.corp_id).map(Some),
        }
    }
}

pub struct WeComConnector {
    api: TencentApi,
    sender: String,
    open_kfid: Option<String>,
}

impl WeComConnector {
    pub fn new(cfg: &WeComConfig) -> Result<Self, ConfigError> {
        let base = http::base_url("wecom.base_url", &cfg.base_url)?;
        required("wecom.corp_id", &cfg.corp_id)?;
        required("wecom.secret", cfg.secret.expose())?;
        required("wecom.sender", &cfg.sender)?;
        cfg.callback()?;
        Ok(Self {
            api: TencentApi::new(
                "wecom",
                http::client("wecom", cfg.timeout_ms)?,
                base,
                "/cgi-bin/gettoken",
                vec![
                    ("corpid", cfg.corp_id.clone()),
                    ("corpsecret", cfg.secret.expose().to_string()),
                ],
            ),
            sender: cfg.sender.clone(),
            open_kfid: cfg.open_kfid.clone().filter(|k| !k.trim().is_empty()),
        })
    }

    /// The access token's health (shared by every connector of this corp).
    pub fn token_health(&self) -> TokenHealth {
        self.api.token_health()
    }

    /// Fetches an access token unless one is cached: whether `corp_id`
    /// and `secret` work, before any send needs them.
    pub async fn check_token(&self) -> Result<TokenHealth, SendError> {
        self.api.check_token().await
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        match (&self.open_kfid, msg.mass) {
            (Some(open_kfid), false) => self.kf_send(msg, open_kfid).await,
            _ => self.msg_template(msg).await,
        }
    }

    /// POSTs `body` to `path` with the cached access token (refreshed
    /// once on 40001/40014/42001); the answer when its `errcode` is 0.
    /// What the external-contact modules ([`contact_way`], [`transfer`],
    /// [`send_result`]) call.
    pub(crate) async fn call(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SendError> {
        self.api.post(path, body).await.map(|(_, v)| v)
    }

    async fn msg_template(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        if let Some(body) = send_result::group_template(msg, &self.sender) {
            let (status, v) = self
                .api
                .post("/cgi-bin/externalcontact/add_msg_template", &body)
                .await?;
            return Ok(Delivery {
                remote_id: str_field(&v, "msgid"),
                status,
            });
        }
        let body = json!({
            "chat_type": "single",
            "external_userid": [msg.recipient],
            "sender": self.sender,
            "text": {"content": msg.body},
        });
        let (status, v) = self
            .api
            .post("/cgi-bin/externalcontact/add_msg_template", &body)
            .await?;
        let failed = v
            .get("fail_list")
            .and_then(|f| f.as_array())
            .is_some_and(|f| f.iter().any(|u| u.as_str() == Some(msg.recipient.as_str())));
        if failed {
            return Err(SendError::Permanent(format!(
                "wecom: {} is in fail_list (not a customer of {})",
                msg.recipient, self.sender
            )));
        }
        Ok(Delivery {
            remote_id: str_field(&v, "msgid"),
            status,
        })
    }

    async fn kf_send(&self, msg: &OutboundMessage, open_kfid: &str) -> Result<Delivery, SendError> {
        let body = json!({
            "touser": msg.recipient,
            "open_kfid": open_kfid,
            "msgid": kf_msgid(&msg.idempotency_key),
            "msgtype": "text",
            "text": {"content": msg.body},
        });
        let (status, v) = self.api.post("/cgi-bin/kf/send_msg", &body).await?;
        Ok(Delivery {
            remote_id: str_field(&v, "msgid"),
            status,
        })
    }
}

/// One page of `kf/sync_msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfPage {
    pub messages: Vec<callback::KfMessage>,
    /// Where the next read starts (store it: WeCom answers the last 3 days
    /// from the start without it).
    pub next_cursor: String,
    pub has_more: bool,
}

impl WeComConnector {
    /// Reads one page of customer-service messages:
    /// `POST /cgi-bin/kf/sync_msg?access_token=..` with
    /// `{"cursor", "token", "limit": 1000, "open_kfid"}` →
    /// `{errcode, errmsg, next_cursor, has_more, msg_list}`. `token` is the
    /// `kf_msg_or_event` callback's (valid 10 minutes).
    pub async fn kf_sync_msg(
        &self,
        cursor: &str,
        token: &str,
        open_kfid: Option<&str>,
    ) -> Result<KfPage, SendError> {
        let mut body = json!({"token": token, "limit": 1000});
        if !cursor.is_empty() {
            body["cursor"] = json!(cursor);
        }
        if let Some(k) = open_kfid {
            body["open_kfid"] = json!(k);
        }
        let (_, v) = self.api.post("/cgi-bin/kf/sync_msg", &body).await?;
        let messages = list_field(&v, "msg_list", "kf/sync_msg")?;
        Ok(KfPage {
            messages,
            next_cursor: str_field(&v, "next_cursor").unwrap_or_default(),
            has_more: v.get("has_more").and_then(|h| h.as_i64()).unwrap_or(0) == 1,
        })
    }
}

impl Connector for WeComConnector {
    fn name(&self) -> &str {
        "wecom"
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.deliver(msg))
    }
}

/// The list `field` of `call`'s answer as `T`s (absent or null: none);
/// an unreadable one is a permanent error naming the call and the field.
pub(crate) fn list_field<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    field: &str,
    call: &str,
) -> Result<Vec<T>, SendError> {
    match v.get(field) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(list) => serde_json::from_value(list.clone()).map_err(|e| {
            SendError::Permanent(format!("wecom: {call} {field} is not readable: {e}"))
        }),
    }
}

pub(crate) fn str_field(v: &serde_json::Value, name: &str) -> Option<String> {
    v.get(name)
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// `kf/send_msg` takes a client `msgid` of at most 32 characters from
/// `[0-9a-zA-Z_-]`: the key itself when it fits, else a digest of it.
pub fn kf_msgid(idempotency_key: &str) -> String {
    let fits = !idempotency_key.is_empty()
        && idempotency_key.len() <= 32
        && idempotency_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits {
        idempotency_key.to_string()
    } else {
        http::hex(&Sha256::digest(idempotency_key.as_bytes()))[..32].to_string()
    }
}

/// WeCom's callback `msg_signature` (see [`crypto::signature`]).
pub fn wecom_callback_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypted: &str,
) -> String {
    crypto::signature(token, timestamp, nonce, encrypted)
}

/// Checks a callback's `msg_signature` (see [`crypto::signature_matches`]).
pub fn verify_wecom_callback(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypted: &str,
    msg_signature: &str,
) -> bool {
    crypto::signature_matches(token, timestamp, nonce, encrypted, msg_signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kf_msgid_is_the_key_when_it_fits() {
        assert_eq!(kf_msgid("run-42_step-3"), "run-42_step-3");
        let long = kf_msgid("journey/7/step/3/person/张三/attempt");
        assert_eq!(long.len(), 32);
        assert!(long.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(long, kf_msgid("journey/7/step/3/person/张三/attempt"));
    }
}
