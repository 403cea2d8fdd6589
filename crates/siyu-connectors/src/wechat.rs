//! WeChat Official Account (微信公众号) customer-service messages to a
//! follower's OpenID.
//!
//! Token: `GET {base_url}/cgi-bin/token?grant_type=client_credential&appid=..&secret=..`
//! → `{access_token, expires_in}` (or `{errcode, errmsg}`), cached until
//! shortly before it expires and refreshed once on errcode 40001/40014/42001.
//!
//! Send: `POST /cgi-bin/message/custom/send?access_token=..` with
//! `{"touser":recipient,"msgtype":"text","text":{"content":body}}` →
//! `{errcode, errmsg}`. Mass messages go the same way, one recipient per
//! call (`message/mass/send` needs at least two OpenIDs and a review).
//! errcode -1, 45009 and 45033 are retryable, every other non-zero errcode
//! (e.g. 45015: the follower has not interacted within 48 h) permanent.
//! The API returns no message id and accepts no idempotency key.

use serde::Deserialize;
use serde_json::json;

use crate::config::{required, ConfigError, Secret};
use crate::http::{self, TencentApi, TokenCache};
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// `[wechat]` in the connectors config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WeChatOfficialConfig {
    pub base_url: String,
    pub app_id: String,
    pub secret: Secret,
    pub timeout_ms: u64,
}

impl Default for WeChatOfficialConfig {
    fn default() -> Self {
        WeChatOfficialConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            app_id: String::new(),
            secret: Secret::default(),
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
        }
    }
}

pub struct WeChatOfficialConnector {
    api: TencentApi,
}

impl WeChatOfficialConnector {
    pub fn new(cfg: &WeChatOfficialConfig) -> Result<Self, ConfigError> {
        let base = http::base_url("wechat.base_url", &cfg.base_url)?;
        required("wechat.app_id", &cfg.app_id)?;
        required("wechat.secret", cfg.secret.expose())?;
        Ok(Self {
            api: TencentApi {
                what: "wechat",
                client: http::client("wechat", cfg.timeout_ms)?,
                base,
                token_path: "/cgi-bin/token",
                token_query: vec![
                    ("grant_type", "client_credential".to_string()),
                    ("appid", cfg.app_id.clone()),
                    ("secret", cfg.secret.expose().to_string()),
                ],
                tokens: TokenCache::default(),
            },
        })
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
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
}

impl Connector for WeChatOfficialConnector {
    fn name(&self) -> &str {
        "wechat"
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.deliver(msg))
    }
}
