//! WeChat Official Account (微信公众号): messages to a follower's OpenID,
//! parametric QR codes, and (in [`callback`]) what the account's server
//! callbacks mean.
//!
//! Token: `GET {base_url}/cgi-bin/token?grant_type=client_credential&appid=..&secret=..`
//! → `{access_token, expires_in}` (or `{errcode, errmsg}`), cached until
//! shortly before it expires and refreshed once on errcode 40001/40014/42001.
//!
//! Send (customer-service message, 客服消息): `POST /cgi-bin/message/custom/send?access_token=..`
//! with `{"touser":recipient,"msgtype":"text","text":{"content":body}}` →
//! `{errcode, errmsg}`. WeChat accepts it only within 48 hours of the
//! follower's last message to the account (errcode 45015 otherwise); the
//! server checks that window before sending (see its executor). Mass
//! messages go the same way, one recipient per call (`message/mass/send`
//! needs at least two OpenIDs and a review).
//!
//! Template messages (模板消息) for transactional notices: a message whose
//! [`OutboundMessage::wechat_template`] is set goes to
//! `POST /cgi-bin/message/template/send?access_token=..` with
//! `{"touser", "template_id", "url"?, "data": {key: {"value": ..}}}` →
//! `{errcode, errmsg, msgid}` (the remote id is `msgid`). No 48-hour
//! window applies; the template must exist in the account (模板消息 → 我的模板).
//!
//! QR codes: [`WeChatOfficialConnector::create_qrcode`],
//! `POST /cgi-bin/qrcode/create?access_token=..` with a string scene,
//! temporary (`QR_STR_SCENE`, `expire_seconds` up to 30 days) or permanent
//! (`QR_LIMIT_STR_SCENE`) → `{ticket, expire_seconds?, url}`; the image is
//! `https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=<ticket, URL-encoded>`.
//!
//! errcode -1, 45009 and 45033 are retryable, every other non-zero errcode
//! (e.g. 45015: the follower has not interacted within 48 h) permanent.
//! The API accepts no idempotency key.

pub mod callback;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{required, ConfigError, Secret};
use crate::http::{self, TencentApi, TokenHealth};
use crate::wecom::crypto::CallbackCrypto;
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// Where a QR code's image is fetched, by its ticket.
pub const SHOWQRCODE_URL: &str = "https://mp.weixin.qq.com/cgi-bin/showqrcode";
/// The longest a temporary QR code lives (30 days).
pub const MAX_QR_EXPIRE_SECONDS: u32 = 2_592_000;
/// The longest scene string WeChat takes.
pub const MAX_SCENE_LEN: usize = 64;

/// `[wechat]` in the connectors config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WeChatOfficialConfig {
    pub base_url: String,
    pub app_id: String,
    pub secret: Secret,
    pub timeout_ms: u64,
    /// The server configuration's Token (设置与开发 → 基本配置 → 服务器配置 →
    /// 令牌): signs every callback. Enables `/callbacks/wechat`.
    pub token: Secret,
    /// The server configuration's EncodingAESKey (43 characters). When
    /// set, callbacks must come in safe mode (安全模式, encrypted); without
    /// it, plaintext mode (明文模式).
    pub encoding_aes_key: Secret,
}

impl Default for WeChatOfficialConfig {
    fn default() -> Self {
        WeChatOfficialConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            app_id: String::new(),
            secret: Secret::default(),
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
            token: Secret::default(),
            encoding_aes_key: Secret::default(),
        }
    }
}

/// How an Official Account's callbacks are checked.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Signs every callback (`signature` over token, timestamp, nonce).
    pub token: String,
    /// Safe mode: the WXBizMsgCrypt settings with the appid as receiver.
    pub crypto: Option<CallbackCrypto>,
}

impl WeChatOfficialConfig {
    /// The callback settings when `token` is set (`Ok(None)` when it is
    /// not). An `encoding_aes_key` without a token, or a malformed one, is
    /// an error naming the field.
    pub fn callback(&self) -> Result<Option<CallbackSettings>, ConfigError> {
        let token = self.token.expose().trim();
        let key = self.encoding_aes_key.expose().trim();
        if token.is_empty() {
            if key.is_empty() {
                return Ok(None);
            }
            return Err(ConfigError::Missing(
                "wechat.token (callbacks need it with wechat.encoding_aes_key)".into(),
            ));
        }
        let crypto = if key.is_empty() {
            None
        } else {
            Some(CallbackCrypto::for_receiver(
                "wechat",
                "app_id",
                token,
                key,
                &self.app_id,
            )?)
        };
        Ok(Some(CallbackSettings {
            token: token.to_string(),
            crypto,
        }))
    }
}

/// A template message (模板消息): see the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateMessage {
    /// The template's id in the account (我的模板).
    pub template_id: String,
    /// The template's fields: `{"first": "..."}` or
    /// `{"first": {"value": "...", "color": "#173177"}}`.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Where tapping the message leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl TemplateMessage {
    /// The `data` object as WeChat takes it: every field `{"value": ..}`.
    pub fn wire_data(&self) -> Value {
        let fields = self
            .data
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Object(_) => v.clone(),
                    Value::String(s) => json!({ "value": s }),
                    other => json!({ "value": other.to_string() }),
                };
                (k.clone(), v)
            })
            .collect();
        Value::Object(fields)
    }
}

/// A parametric QR code as WeChat made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct QrCode {
    /// Exchanged for the image at [`SHOWQRCODE_URL`].
    pub ticket: String,
    /// What the QR encodes (`http://weixin.qq.com/q/…`).
    pub url: String,
    /// The image: `showqrcode?ticket=` with the ticket URL-encoded.
    pub image_url: String,
    /// Seconds it stays valid; `None` for a permanent code.
    pub expire_seconds: Option<u64>,
}

/// The image URL of a QR ticket.
pub fn showqrcode_url(ticket: &str) -> String {
    let mut u = reqwest::Url::parse(SHOWQRCODE_URL).expect("a valid constant URL");
    u.query_pairs_mut().append_pair("ticket", ticket);
    u.to_string()
}

pub struct WeChatOfficialConnector {
    api: TencentApi,
}

impl WeChatOfficialConnector {
    pub fn new(cfg: &WeChatOfficialConfig) -> Result<Self, ConfigError> {
        let base = http::base_url("wechat.base_url", &cfg.base_url)?;
        required("wechat.app_id", &cfg.app_id)?;
        required("wechat.secret", cfg.secret.expose())?;
        cfg.callback()?;
        Ok(Self {
            api: TencentApi::new(
                "wechat",
                http::client("wechat", cfg.timeout_ms)?,
                base,
                "/cgi-bin/token",
                vec![
                    ("grant_type", "client_credential".to_string()),
                    ("appid", cfg.app_id.clone()),
                    ("secret", cfg.secret.expose().to_string()),
                ],
            ),
        })
    }

    /// The access token's health (shared by every connector of this account).
    pub fn token_health(&self) -> TokenHealth {
        self.api.token_health()
    }

    /// Fetches an access token unless one is cached: whether `app_id` and
    /// `secret` work (and the server's IP is whitelisted), before any send.
    pub async fn check_token(&self) -> Result<TokenHealth, SendError> {
        self.api.check_token().await
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        if let Some(t) = &msg.wechat_template {
            return self.template_send(msg, t).await;
        }
        let body = json!({
            "touser": msg.recipient,
            "msgtype": "text",
            "text": {"content": msg.body},
        });
        let (status, _) = self.api.post("/cgi-bin/message/custom/send", &body).await?;
        Ok(Delivery {
            remote_id: None,
            status,
        })
    }

    async fn template_send(
        &self,
        msg: &OutboundMessage,
        t: &TemplateMessage,
    ) -> Result<Delivery, SendError> {
        if t.template_id.trim().is_empty() {
            return Err(SendError::Permanent(
                "wechat: wechat_template.template_id is empty".into(),
            ));
        }
        let mut body = json!({
            "touser": msg.recipient,
            "template_id": t.template_id,
            "data": t.wire_data(),
        });
        if let Some(url) = t.url.as_deref().filter(|u| !u.is_empty()) {
            body["url"] = json!(url);
        }
        let (status, v) = self
            .api
            .post("/cgi-bin/message/template/send", &body)
            .await?;
        let remote_id = match v.get("msgid") {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        Ok(Delivery { remote_id, status })
    }

    /// Creates a parametric QR code for `scene` (at most
    /// [`MAX_SCENE_LEN`] bytes): temporary for `expire_seconds` (at most
    /// [`MAX_QR_EXPIRE_SECONDS`]), permanent when `None`.
    pub async fn create_qrcode(
        &self,
        scene: &str,
        expire_seconds: Option<u32>,
    ) -> Result<QrCode, SendError> {
        if scene.is_empty() || scene.len() > MAX_SCENE_LEN {
            return Err(SendError::Permanent(format!(
                "wechat: a QR scene is 1 to {MAX_SCENE_LEN} bytes"
            )));
        }
        let scene_info = json!({"scene": {"scene_str": scene}});
        let body = match expire_seconds {
            Some(s) => json!({
                "expire_seconds": s.min(MAX_QR_EXPIRE_SECONDS),
                "action_name": "QR_STR_SCENE",
                "action_info": scene_info,
            }),
            None => json!({"action_name": "QR_LIMIT_STR_SCENE", "action_info": scene_info}),
        };
        let (_, v) = self.api.post("/cgi-bin/qrcode/create", &body).await?;
        let ticket = v
            .get("ticket")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SendError::Retryable("wechat qrcode/create: no ticket".into()))?
            .to_string();
        Ok(QrCode {
            url: v
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            image_url: showqrcode_url(&ticket),
            expire_seconds: expire_seconds
                .and_then(|_| v.get("expire_seconds").and_then(Value::as_u64)),
            ticket,
        })
    }
}

impl Connector for WeChatOfficialConnector {
    fn name(&self) -> &str {
        "wechat"
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.deliver(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tickets_image_url_is_url_encoded() {
        assert_eq!(
            showqrcode_url("gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="),
            "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw%3D%3D"
        );
        assert!(showqrcode_url("a+b/c").ends_with("ticket=a%2Bb%2Fc"));
    }

    #[test]
    fn template_data_values_are_wrapped() {
        let t: TemplateMessage = serde_json::from_value(json!({
            "template_id": "T1",
            "data": {"first": "已发货", "amount": 199, "remark": {"value": "谢谢", "color": "#173177"}}
        }))
        .unwrap();
        assert_eq!(
            t.wire_data(),
            json!({"first": {"value": "已发货"}, "amount": {"value": "199"}, "remark": {"value": "谢谢", "color": "#173177"}})
        );
    }
}
