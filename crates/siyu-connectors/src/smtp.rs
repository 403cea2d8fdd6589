//! E-mail over SMTP (`lettre`): one UTF-8 message per send.
//!
//! The message is `text/plain; charset=utf-8` with a base64 body (Chinese
//! text survives any 7-bit relay) and an RFC 2047 encoded `Subject`; with
//! an HTML body (the template's `html`) it is `multipart/alternative`, the
//! text part first and the HTML part (base64 too) last, as RFC 2046 orders
//! them (the last part is the preferred one).
//!
//! A marketing message carries the recipient's unsubscribe link
//! ([`OutboundMessage::unsubscribe_url`], the server's one-click endpoint
//! `/u/{token}`) as `List-Unsubscribe: <mailto:…>, <https://…/u/{token}>`
//! (RFC 2369) and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 8058): the mailbox provider POSTs `List-Unsubscribe=One-Click` to
//! the https URL, which unsubscribes without a page. The mailto goes to
//! `unsubscribe_mailto` (default: the `From` address) with the link's
//! token in the subject, for clients that only mail. The
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
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    /// The address of `List-Unsubscribe`'s mailto (a mailbox someone or
    /// something reads); default: `from`'s address.
    pub unsubscribe_mailto: Option<String>,
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
            unsubscribe_mailto: None,
        }
    }
}

pub struct SmtpConnector {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `from`, used in `Message-ID`s.
    domain: String,
    /// `List-Unsubscribe`'s mailto address.
    unsubscribe_mailto: String,
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
        let unsubscribe_mailto = match &cfg.unsubscribe_mailto {
            Some(a) => a
                .parse::<lettre::Address>()
                .map_err(|e| ConfigError::Invalid {
                    field: "email.unsubscribe_mailto".into(),
                    reason: format!("{e}: an address such as unsubscribe@example.com"),
                })?
                .to_string(),
            None => from.email.to_string(),
        };
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
            unsubscribe_mailto,
        })
    }

    /// The RFC 5322 message for `msg`, as it goes over the wire.
    pub fn build_message(&self, msg: &OutboundMessage) -> Result<Message, SendError> {
        let to: Mailbox = msg
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("email: bad recipient address: {e}")))?;
        let part = |text: &str, content_type: ContentType| {
            Body::new_with_encoding(text.to_string(), ContentTransferEncoding::Base64)
                .map(|body| SinglePart::builder().header(content_type).body(body))
                .map_err(|_| SendError::Permanent("email: body cannot be encoded".into()))
        };
        let text = part(&msg.body, ContentType::TEXT_PLAIN)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone().unwrap_or_default())
            .message_id(Some(message_id(&msg.idempotency_key, &self.domain)))
            .header(IdempotencyKeyHeader(msg.idempotency_key.clone()));
        if let Some(url) = &msg.unsubscribe_url {
            builder = builder
                .header(ListUnsubscribe(list_unsubscribe(
                    &self.unsubscribe_mailto,
                    url,
                )?))
                .header(ListUnsubscribePost);
        }
        let built = match &msg.html {
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(text)
                    .singlepart(part(html, ContentType::TEXT_HTML)?),
            ),
            None => builder.singlepart(text),
        };
        built.map_err(|e| SendError::Permanent(format!("email: cannot build the message: {e}")))
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

/// `List-Unsubscribe`'s value: the mailto (the link's token as its
/// subject) and the https one-click URL, each in `<>` (RFC 2369).
pub fn list_unsubscribe(mailto: &str, url: &str) -> Result<String, SendError> {
    let https = url.starts_with("https://") || url.starts_with("http://");
    if !https || url.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',') {
        return Err(SendError::Permanent(format!(
            "email: the unsubscribe URL `{url}` is not an http(s) URL; set public_url"
        )));
    }
    let token = url.rsplit('/').next().unwrap_or_default();
    let subject: String = format!("unsubscribe {token}")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(format!("<mailto:{mailto}?subject={subject}>, <{url}>"))
}

/// `List-Unsubscribe: <mailto:…>, <https://…>` (RFC 2369).
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
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
            html: None,
            unsubscribe_url: None,
            mass: false,
            data: serde_json::Value::Null,
            wechat_template: None,
        };
        let raw = String::from_utf8(connector().build_message(&msg).unwrap().formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
    }
}
