//! The connectors' configuration as the server reads it (TOML or JSON): one
//! optional section per built-in channel, and [`from_config`] which builds
//! the channel → connector map the [`crate::Dispatcher`] takes.
//!
//! Every field has a serde default so that a half-filled section still
//! parses and [`from_config`] can name what is missing with its full path
//! (`wecom.corp_id`); unknown fields are rejected so a typo is not silently
//! ignored.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::{
    Connector, SmsConfig, SmsConnector, SmtpConfig, SmtpConnector, WeChatOfficialConfig,
    WeChatOfficialConnector, WeComConfig, WeComConnector, WebhookConfig, WebhookConnector,
};

/// `[connectors]`: each present section enables that channel.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorsConfig {
    pub webhook: Option<WebhookConfig>,
    pub email: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    pub wecom: Option<WeComConfig>,
    pub wechat: Option<WeChatOfficialConfig>,
    /// `[connectors.bridges.<channel>]`: a channel siyu has no client for
    /// (`douyin`, `xiaohongshu`, `kuaishou`, ...) is sent to the brand's
    /// bridge with the webhook protocol; its replies carry `reply_to`.
    pub bridges: BTreeMap<String, WebhookConfig>,
}

/// The built-in channels, which a bridge may not take over.
pub const BUILT_IN_CHANNELS: [&str; 6] =
    ["webhook", "email", "sms", "wecom", "wechat", "wecom_api"];

/// A configuration problem, naming the field (`section.field`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is missing")]
    Missing(String),
    #[error("{field} is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

/// Builds one connector per configured section, keyed by channel name
/// (`webhook`, `email`, `sms`, `wecom`, `wechat`; with `wecom`, also
/// `wecom_api`: [`crate::wecom::calls`]).
pub fn from_config(
    cfg: &ConnectorsConfig,
) -> Result<HashMap<String, Arc<dyn Connector>>, ConfigError> {
    let mut map: HashMap<String, Arc<dyn Connector>> = HashMap::new();
    if let Some(c) = &cfg.webhook {
        map.insert("webhook".into(), Arc::new(WebhookConnector::new(c)?));
    }
    if let Some(c) = &cfg.email {
        map.insert("email".into(), Arc::new(SmtpConnector::new(c)?));
    }
    if let Some(c) = &cfg.sms {
        map.insert("sms".into(), Arc::new(SmsConnector::new(c)?));
    }
    if let Some(c) = &cfg.wecom {
        let wecom = Arc::new(WeComConnector::new(c)?);
        map.insert(
            crate::wecom::calls::CALLS_CHANNEL.into(),
            Arc::new(crate::wecom::calls::WeComCalls::new(wecom.clone())),
        );
        map.insert("wecom".into(), wecom);
    }
    if let Some(c) = &cfg.wechat {
        map.insert("wechat".into(), Arc::new(WeChatOfficialConnector::new(c)?));
    }
    for (channel, c) in &cfg.bridges {
        check_bridge_channel(channel)?;
        map.insert(
            channel.clone(),
            Arc::new(WebhookConnector::bridge(channel, c)?),
        );
    }
    Ok(map)
}

/// A bridge's channel is a channel name (what identities start with, see
/// [`siyu_domain::Channel`]) and not a built-in one.
fn check_bridge_channel(channel: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        field: format!("bridges.{channel}"),
        reason: reason.to_string(),
    };
    if BUILT_IN_CHANNELS.contains(&channel) {
        return Err(invalid(
            "a built-in channel has its own section ([connectors.<channel>]); a bridge serves another channel",
        ));
    }
    if !siyu_domain::Channel::is_valid(channel) {
        return Err(invalid(
            "a channel name is 1-32 lowercase ASCII letters, digits or `_` (e.g. douyin)",
        ));
    }
    Ok(())
}

/// A credential from the config. `Debug` prints `<redacted>` so a logged
/// config never leaks it; [`Secret::expose`] is the one way to read it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// `Err(Missing("section.field"))` when a required string is empty.
pub(crate) fn required(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::Missing(field.to_string()))
    } else {
        Ok(())
    }
}
