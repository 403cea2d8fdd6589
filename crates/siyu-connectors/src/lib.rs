//! Channel connectors: every way siyu talks to a person (webhook, e-mail,
//! SMS, WeCom, WeChat Official Accounts) behind ONE trait, [`Connector`], and
//! the [`Dispatcher`] that delivers through them with retries.
//!
//! Why one trait: the server's message executor resolves a journey step to
//! an [`OutboundMessage`] and must not care which remote it goes to. Each
//! connector classifies its remote's answers into the same two outcomes,
//! [`SendError::Retryable`] (try again later: timeouts, 5xx, 429, SMTP 4xx,
//! WeCom "system busy") and [`SendError::Permanent`] (retrying cannot help:
//! other 4xx, SMTP 5xx, unknown recipient), so the retry policy lives in one
//! place, the dispatcher.
//!
//! Why store-agnostic: this crate does network I/O and nothing else. What
//! happened to a message is reported through [`DeliverySink`]; the server
//! persists delivery records and dead letters in its own store. Nothing here
//! depends on `siyu-store` or `siyu-server`.
//!
//! Why one queue per channel: a remote that hangs or answers 5xx must never
//! delay the other channels. The dispatcher gives each channel its own task,
//! bounded queue and concurrency limit (see [`dispatch`]).
//!
//! Transport choices (kept small for a 2-core build, no C++ engines):
//! - HTTP: `reqwest` 0.12 without default features, `rustls` over `ring`
//!   (no aws-lc, no cmake), WebPKI roots compiled in, so `https://` remotes
//!   work without the system's certificate store.
//! - SMTP: `lettre` (builder + tokio transport + rustls over the same
//!   `ring`). A hand-written client would be smaller, but correct MIME
//!   (RFC 2047 encoded words for a Chinese subject, transfer encodings, line
//!   length limits, dot-stuffing) and STARTTLS/AUTH are exactly the parts that
//!   are easy to get subtly wrong; lettre is mature and shares our TLS stack.
//!
//! Inbound helpers used by the server's `POST /v1/inbound/{channel}`:
//! [`webhook::verify`] (HMAC-SHA256 with a timestamp window) and
//! [`wecom::wecom_callback_signature`] (WeCom's SHA1 callback signature);
//! for WeCom's own callbacks (`/callbacks/wecom`), [`wecom::crypto`] and
//! [`wecom::callback`].

pub mod config;
pub mod dispatch;
mod http;
pub mod sms;
pub mod smtp;
pub mod tc3;
pub mod webhook;
pub mod wechat;
pub mod wecom;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use config::{from_config, ConfigError, ConnectorsConfig, Secret};
pub use dispatch::{
    ChannelLimits, ChannelStats, DeliverySink, Dispatcher, DispatcherStats, RetryPolicy,
    SubmitError,
};
pub use http::{TokenHealth, TokenState};
pub use sms::{SmsConfig, SmsConnector};
pub use smtp::{SmtpConfig, SmtpConnector, SmtpTls};
pub use webhook::{
    sign, sign_inbound, verify, verify_inbound, VerifyError, WebhookConfig, WebhookConnector,
};
pub use wechat::{WeChatOfficialConfig, WeChatOfficialConnector};
pub use wecom::{
    verify_wecom_callback, wecom_callback_signature, KfPage, WeComConfig, WeComConnector,
};

/// One message to one recipient on one channel, as the executor hands it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutboundMessage {
    /// One per step execution. Sent to the remote as the `Idempotency-Key`
    /// header where the protocol allows (webhook, SMS), and used to derive
    /// the e-mail `Message-ID` and the WeCom customer-service `msgid`.
    pub idempotency_key: String,
    /// `"webhook" | "email" | "sms" | "wecom" | "wechat"` or a custom channel.
    pub channel: String,
    /// The channel-specific address: e-mail address, phone number (E.164),
    /// WeCom `external_userid`, WeChat OpenID, ...
    pub recipient: String,
    /// The siyu identity `"channel:id"` the recipient was resolved from.
    pub identity: String,
    pub subject: Option<String>,
    pub body: String,
    /// An HTML body beside `body` (e-mail: `multipart/alternative`); other
    /// channels send `body` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The recipient's one-click unsubscribe URL (`{public_url}/u/{token}`)
    /// for a marketing message: the e-mail connector sends it as
    /// `List-Unsubscribe` with `List-Unsubscribe-Post` (RFC 8058).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<String>,
    /// A mass/broadcast message (WeCom group-send) rather than a direct one.
    pub mass: bool,
    /// Extra JSON (journey, step, template, ...) passed through to webhook
    /// payloads; the SMS connector reads `template_params` from it.
    pub data: serde_json::Value,
    /// WeChat Official Account only: send this as a template message
    /// (`message/template/send`, 模板消息) rather than a customer-service
    /// text. For transactional notices (order shipped, appointment
    /// reminders): a template message is not bound to the 48-hour window
    /// after the follower's last message; `body` is then not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_template: Option<wechat::TemplateMessage>,
}

/// What the remote said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The remote's id for the message, when it returns one (WeCom `msgid`,
    /// SMS `SerialNo`, the SMTP server's queue reply, a webhook's `id`).
    pub remote_id: Option<String>,
    /// The HTTP status of the accepting response; 0 for non-HTTP (SMTP).
    pub status: u16,
}

/// Why a send failed, reduced to the one question the dispatcher asks:
/// is it worth trying again?
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    #[error("retryable: {0}")]
    Retryable(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }

    /// The message without the `retryable:`/`permanent:` prefix.
    pub fn detail(&self) -> &str {
        match self {
            SendError::Retryable(s) | SendError::Permanent(s) => s,
        }
    }
}

/// The boxed future every connector returns (the trait stays object-safe).
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivery, SendError>> + Send + 'a>>;

/// One way out. Implementations make exactly one attempt per call and bound
/// it by their own request timeout; retrying is the dispatcher's job.
pub trait Connector: Send + Sync {
    /// The channel name this connector serves (`"webhook"`, `"email"`, ...).
    fn name(&self) -> &str;
    fn send<'a>(
        &'a self,
        msg: &'a OutboundMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Delivery, SendError>> + Send + 'a>>;
}
