//! The generic webhook: POST the message as JSON to one URL, signed with
//! HMAC-SHA256 so the receiver can check it came from siyu and is fresh.
//!
//! Request: `POST {url}` with body
//! `{idempotency_key, channel, recipient, identity, subject, body, mass, data, sent_at}`
//! (`sent_at` is RFC 3339 UTC, the same second as the timestamp header) and
//! headers `Content-Type: application/json`, `Idempotency-Key`,
//! `X-Siyu-Timestamp: <unix secs>`,
//! `X-Siyu-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//!
//! Answers: 2xx delivered (a JSON body's string `id` becomes the remote id);
//! 408, 429, 5xx, timeouts and connection errors are retryable; any other
//! status is permanent.
//!
//! [`verify`] is the receiving side of the same scheme; the server also uses
//! it for inbound channel webhooks.
//!
//! Bridges (`[connectors.bridges.<channel>]`, e.g. `douyin`) are this same
//! connector serving another channel: platforms siyu has no client for
//! (Douyin, Xiaohongshu, Kuaishou) are answered by the brand's bridge, which
//! receives the message here. An auto-reply's `data.reply_to` names the
//! comment, conversation and item the customer wrote in, so the bridge can
//! answer in place.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{ConfigError, Secret};
use crate::http;
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

type HmacSha256 = Hmac<Sha256>;

/// `[webhook]` in the connectors config.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The full URL to POST to (its base is configurable like every remote).
    pub url: String,
    /// The HMAC key; the receiver holds the same one.
    pub secret: Secret,
    /// Request timeout; default 5000.
    #[serde(default = "http::default_timeout_ms")]
    pub timeout_ms: u64,
}

pub struct WebhookConnector {
    /// The channel served: `webhook`, or a bridge's channel.
    channel: String,
    url: String,
    secret: Secret,
    client: reqwest::Client,
}

impl WebhookConnector {
    pub fn new(cfg: &WebhookConfig) -> Result<Self, ConfigError> {
        Self::serving("webhook", "webhook", cfg)
    }

    /// The bridge of `channel` (`[connectors.bridges.<channel>]`): the
    /// webhook protocol, serving that channel.
    pub fn bridge(channel: &str, cfg: &WebhookConfig) -> Result<Self, ConfigError> {
        Self::serving(channel, &format!("bridges.{channel}"), cfg)
    }

    fn serving(channel: &str, section: &str, cfg: &WebhookConfig) -> Result<Self, ConfigError> {
        let url = http::url(&format!("{section}.url"), &cfg.url)?;
        if cfg.secret.expose().is_empty() {
            return Err(ConfigError::Missing(format!("{section}.secret")));
        }
        Ok(Self {
            channel: channel.to_string(),
            url,
            secret: cfg.secret.clone(),
            client: http::client(section, cfg.timeout_ms)?,
        })
    }

    async fn post(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        let now = unix_now();
        let body = payload(msg, now)?;
        let signature = sign(self.secret.expose().as_bytes(), now, &body);
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &msg.idempotency_key)
            .header("X-Siyu-Timestamp", now.to_string())
            .header("X-Siyu-Signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport_error(&self.channel, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| http::transport_error(&self.channel, e))?;
        if !status.is_success() {
            return Err(http::status_error(&self.channel, status, &text));
        }
        let remote_id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string));
        Ok(Delivery {
            remote_id,
            status: status.as_u16(),
        })
    }
}

impl Connector for WebhookConnector {
    fn name(&self) -> &str {
        &self.channel
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.post(msg))
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct Payload<'a> {
    idempotency_key: &'a str,
    channel: &'a str,
    recipient: &'a str,
    identity: &'a str,
    subject: Option<&'a str>,
    body: &'a str,
    mass: bool,
    data: &'a serde_json::Value,
    sent_at: String,
}

fn payload(msg: &OutboundMessage, now: i64) -> Result<Vec<u8>, SendError> {
    serde_json::to_vec(&Payload {
        idempotency_key: &msg.idempotency_key,
        channel: &msg.channel,
        recipient: &msg.recipient,
        identity: &msg.identity,
        subject: msg.subject.as_deref(),
        body: &msg.body,
        mass: msg.mass,
        data: &msg.data,
        sent_at: siyu_domain::time::format_rfc3339(now),
    })
    .map_err(|e| SendError::Permanent(format!("webhook: cannot encode the payload: {e}")))
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, the value of
/// `X-Siyu-Signature`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        http::hex(&mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<workspace>.<body>")>`:
/// the signature of an inbound webhook request to siyu. The workspace
/// name is signed too, so a request made for one workspace cannot be
/// replayed against another that shares the secret.
pub fn sign_inbound(secret: &[u8], workspace: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        http::hex(
            &inbound_mac(secret, workspace, timestamp, body)
                .finalize()
                .into_bytes()
        )
    )
}

fn inbound_mac(secret: &[u8], workspace: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(workspace.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks an inbound request signed by [`sign_inbound`] for `workspace`
/// (same rules as [`verify`]); returns the timestamp it carried.
pub fn verify_inbound(
    secret: &[u8],
    workspace: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, VerifyError> {
    let timestamp = fresh_timestamp(timestamp_header, now, tolerance_secs)?;
    let expected = signature_bytes(signature_header)?;
    inbound_mac(secret, workspace, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| VerifyError::Mismatch)?;
    Ok(timestamp)
}

fn fresh_timestamp(header: &str, now: i64, tolerance_secs: i64) -> Result<i64, VerifyError> {
    let timestamp: i64 = header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let age_secs = now.saturating_sub(timestamp);
    if age_secs.saturating_abs() > tolerance_secs {
        return Err(VerifyError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    Ok(timestamp)
}

fn signature_bytes(header: &str) -> Result<Vec<u8>, VerifyError> {
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed)?;
    http::unhex(hex_sig).ok_or(VerifyError::Malformed)
}

/// Why a signed request was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("timestamp header is not unix seconds")]
    BadTimestamp,
    #[error("timestamp is {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    Stale { age_secs: i64, tolerance_secs: i64 },
    #[error("signature header is not `sha256=<hex>`")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a request signed by [`sign`]: the timestamp must be within
/// `tolerance_secs` of `now` (either side, so replays of old requests fail),
/// and the signature must match, compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp = fresh_timestamp(timestamp_header, now, tolerance_secs)?;
    let expected = signature_bytes(signature_header)?;
    mac(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_a_known_vector() {
        // HMAC-SHA256("key", "1700000000.{}"), computed with Python's hmac module.
        let s = sign(b"key", 1_700_000_000, b"{}");
        assert!(s.starts_with("sha256="));
        assert_eq!(
            s,
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_eq!(
            verify(b"key", "1700000000", b"{}", &s, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn inbound_signatures_cover_the_workspace() {
        let s = sign_inbound(b"key", "brand_a", 100, b"{}");
        assert_eq!(
            verify_inbound(b"key", "brand_a", "100", b"{}", &s, 100, 300),
            Ok(100)
        );
        for (ws, body) in [
            ("brand_b", &b"{}"[..]),
            ("default", b"{}"),
            ("brand_a", b"[]"),
        ] {
            assert_eq!(
                verify_inbound(b"key", ws, "100", body, &s, 100, 300),
                Err(VerifyError::Mismatch),
                "{ws}"
            );
        }
        // The outbound form (no workspace) is not an inbound signature.
        let outbound = sign(b"key", 100, b"{}");
        assert_eq!(
            verify_inbound(b"key", "brand_a", "100", b"{}", &outbound, 100, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify_inbound(b"key", "brand_a", "100", b"{}", &s, 1000, 300),
            Err(VerifyError::Stale { .. })
        ));
    }

    #[test]
    fn verify_rejects_tampering_staleness_and_garbage() {
        let s = sign(b"key", 100, b"body");
        assert_eq!(
            verify(b"key", "100", b"bodx", &s, 100, 5),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"kez", "100", b"body", &s, 100, 5),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"key", "101", b"body", &s, 100, 5),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(b"key", "100", b"body", &s, 200, 5),
            Err(VerifyError::Stale { age_secs: 100, .. })
        ));
        assert!(matches!(
            verify(b"key", "100", b"body", &s, 0, 5),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(
            verify(b"key", "x", b"body", &s, 100, 5),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(b"key", "100", b"body", "md5=00", 100, 5),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(b"key", "100", b"body", "sha256=zz", 100, 5),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(b"key", "100", b"body", "sha256=00", 100, 5),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(b"key", "-9223372036854775808", b"", &s, i64::MAX, 5),
            Err(VerifyError::Stale { .. })
        ));
    }
}
