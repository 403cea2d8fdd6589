//! E-mail over SMTP (`lettre`): one plain-text UTF-8 message per send.
//!
//! The message is `text/plain; charset=utf-8` with a base64 body (Chinese
//! text survives any 7-bit relay) and an RFC 2047 encoded `Subject`. The
//! `Message-ID` is derived from the idempotency key
//! (`<sha256(key)[..32]@from-domain>`), so a retried step produces the same
//! id and receivers that deduplicate on it see one message; the key itself
//! travels as `X-Siyu-Idempotency-Key`.
//!
//! Transport security per [`SmtpTls`]: `starttls` (default, port 587),
//! `tls` (implicit TLS, port 465) or `none` (plaintext: local relays and
//! tests only). Credentials are optional (AUTH PLAIN/LOGIN when given).
//!
//! Answers: SMTP 4xx (greylisting, mailbox busy) and connection problems or
//! timeouts are retryable; 5xx (no such user, policy rejection) and
//! addresses that do not parse are permanent.

use std::time::Duration;

use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{required, ConfigError, Secret};
use crate::http;
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plaintext, then `STARTTLS` (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plaintext only: a relay on localhost, or tests.
    None,
}

/// `[email]` in the connectors config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    /// The `From` mailbox, e.g. `"思语 <noreply@example.com>"`.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: SmtpTls,
    /// Timeout of each SMTP command; default 5000.
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            from: String::new(),
            username: None,
            password: None,
            tls: SmtpTls::default(),
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
        }
    }
}

pub struct SmtpConnector {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `from`, used in `Message-ID`s.
    domain: String,
}

impl SmtpConnector {
    pub fn new(cfg: &SmtpConfig) -> Result<Self, ConfigError> {
        required("email.host", &cfg.host)?;
        required("email.from", &cfg.from)?;
        let from: Mailbox = cfg.from.parse().map_err(|e| ConfigError::Invalid {
            field: "email.from".into(),
            reason: format!("{e}"),
        })?;
        let domain = from.email.domain().to_string();
        let tls_params = || {
            TlsParameters::new(cfg.host.clone()).map_err(|e| ConfigError::Invalid {
                field: "email.tls".into(),
                reason: e.to_string(),
            })
        };
        let (tls, default_port) = match cfg.tls {
            SmtpTls::Starttls => (Tls::Required(tls_params()?), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls_params()?), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port.unwrap_or(default_port))
            .tls(tls)
            .hello_name(ClientId::Domain(domain.clone()))
            .timeout(Some(Duration::from_millis(cfg.timeout_ms.max(1))));
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ));
            }
            (Some(_), None) => return Err(ConfigError::Missing("email.password".into())),
            (None, Some(_)) => return Err(ConfigError::Missing("email.username".into())),
            (None, None) => {}
        }
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The RFC 5322 message for `msg`, as it goes over the wire.
    pub fn build_message(&self, msg: &OutboundMessage) -> Result<Message, SendError> {
        let to: Mailbox = msg
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("email: bad recipient address: {e}")))?;
        let body = Body::new_with_encoding(msg.body.clone(), ContentTransferEncoding::Base64)
            .map_err(|_| SendError::Permanent("email: body cannot be encoded".into()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone().unwrap_or_default())
            .message_id(Some(message_id(&msg.idempotency_key, &self.domain)))
            .header(IdempotencyKeyHeader(msg.idempotency_key.clone()))
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
            .map_err(|e| SendError::Permanent(format!("email: cannot build the message: {e}")))
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        let message = self.build_message(msg)?;
        let response = self.transport.send(message).await.map_err(classify)?;
        let reply: Vec<&str> = response.message().collect();
        Ok(Delivery {
            remote_id: Some(reply.join(" ")).filter(|s| !s.is_empty()),
            status: 0,
        })
    }
}

impl Connector for SmtpConnector {
    fn name(&self) -> &str {
        "email"
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.deliver(msg))
    }
}

/// `<first 32 hex digits of sha256(key)@domain>`: stable per idempotency key,
/// and always a valid `msg-id` whatever characters the key has.
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    format!("<{}@{domain}>", &http::hex(&digest)[..32])
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let detail = match e.status() {
        Some(code) => format!("email: smtp {code}: {e}"),
        None => format!("email: {e}"),
    };
    if e.is_permanent() {
        SendError::Permanent(detail)
    } else {
        // 4xx replies, timeouts, connection and TLS failures.
        SendError::Retryable(detail)
    }
}

/// `X-Siyu-Idempotency-Key: <key>`.
#[derive(Clone)]
struct IdempotencyKeyHeader(String);

impl Header for IdempotencyKeyHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Siyu-Idempotency-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> SmtpConnector {
        SmtpConnector::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            from: "noreply@siyu.test".into(),
            tls: SmtpTls::None,
            ..SmtpConfig::default()
        })
        .expect("config")
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        let msg = OutboundMessage {
            idempotency_key: "k\r\nBcc: evil@example.com".into(),
            channel: "email".into(),
            recipient: "alice@example.com".into(),
            identity: "email:alice@example.com".into(),
            subject: Some("hi\r\nBcc: evil@example.com".into()),
            body: "body".into(),
            mass: false,
            data: serde_json::Value::Null,
        };
        let raw = String::from_utf8(connector().build_message(&msg).unwrap().formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
    }
}
