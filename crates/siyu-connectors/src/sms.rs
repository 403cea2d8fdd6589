//! SMS through a cloud SMS gateway speaking the shape of Tencent Cloud SMS
//! `SendSms` (the de-facto shape of Chinese SMS APIs: signed, templated).
//!
//! Request: `POST {base_url}/sms/send` with headers
//! `Content-Type: application/json`, `Idempotency-Key: <key>` and, when an
//! `api_key` is configured, `Authorization: Bearer <api_key>`; body
//! ```json
//! {"SmsSdkAppId": "1400000000", "SignName": "思语", "TemplateId": "1234567",
//!  "PhoneNumberSet": ["+8613800000000"], "TemplateParamSet": ["..."],
//!  "SessionContext": "<idempotency key>"}
//! ```
//! `TemplateId` is `data.template_id` (string or number) or the configured
//! default; `TemplateParamSet` is `data.template_params` (strings or
//! numbers) or else `[body]`. Tencent's own TC3-HMAC-SHA256 request signing
//! is not implemented: point `base_url` at a gateway (or relay) that
//! authenticates with the bearer key.
//!
//! Response (HTTP 200):
//! ```json
//! {"Response": {"SendStatusSet": [{"SerialNo": "...", "PhoneNumber": "+86...",
//!   "Fee": 1, "SessionContext": "...", "Code": "Ok", "Message": "send success",
//!   "IsoCode": "CN"}], "RequestId": "..."}}
//! ```
//! or `{"Response": {"Error": {"Code": "...", "Message": "..."}, "RequestId": "..."}}`.
//! The recipient's entry in `SendStatusSet` decides: `Code` `"Ok"` is
//! delivered (remote id `SerialNo`); `InternalError*`,
//! `RequestLimitExceeded*` and `LimitExceeded*` (frequency limits) are
//! retryable, except daily limits; every other code is permanent. HTTP
//! statuses are classified as for the webhook (408/429/5xx retryable).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{required, ConfigError, Secret};
use crate::http;
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

/// `[sms]` in the connectors config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    pub base_url: String,
    pub sdk_app_id: String,
    pub sign_name: String,
    /// Used when the message's `data.template_id` is absent.
    pub template_id: Option<String>,
    pub api_key: Option<Secret>,
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            base_url: String::new(),
            sdk_app_id: String::new(),
            sign_name: String::new(),
            template_id: None,
            api_key: None,
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
        }
    }
}

pub struct SmsConnector {
    url: String,
    sdk_app_id: String,
    sign_name: String,
    template_id: Option<String>,
    api_key: Option<Secret>,
    client: reqwest::Client,
}

impl SmsConnector {
    pub fn new(cfg: &SmsConfig) -> Result<Self, ConfigError> {
        let base = http::base_url("sms.base_url", &cfg.base_url)?;
        required("sms.sdk_app_id", &cfg.sdk_app_id)?;
        required("sms.sign_name", &cfg.sign_name)?;
        Ok(Self {
            url: format!("{base}/sms/send"),
            sdk_app_id: cfg.sdk_app_id.clone(),
            sign_name: cfg.sign_name.clone(),
            template_id: cfg.template_id.clone().filter(|t| !t.trim().is_empty()),
            api_key: cfg.api_key.clone().filter(|k| !k.expose().is_empty()),
            client: http::client("sms", cfg.timeout_ms)?,
        })
    }

    /// The request body for `msg` (see the module doc).
    pub fn request_body(&self, msg: &OutboundMessage) -> Result<Value, SendError> {
        let template_id = match msg.data.get("template_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => self.template_id.clone().ok_or_else(|| {
                SendError::Permanent(
                    "sms: no template: set data.template_id or sms.template_id".into(),
                )
            })?,
        };
        let params: Vec<String> = match msg.data.get("template_params") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|p| match p {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(SendError::Permanent(format!(
                        "sms: template_params must be strings or numbers, got {other}"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            _ => vec![msg.body.clone()],
        };
        Ok(json!({
            "SmsSdkAppId": self.sdk_app_id,
            "SignName": self.sign_name,
            "TemplateId": template_id,
            "PhoneNumberSet": [msg.recipient],
            "TemplateParamSet": params,
            "SessionContext": msg.idempotency_key,
        }))
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        let body = self.request_body(msg)?;
        let mut req = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &msg.idempotency_key)
            .json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| http::transport_error("sms", e))?;
        let (status, v) = http::json_response("sms", resp).await?;
        let response = v.get("Response").unwrap_or(&Value::Null);
        if let Some(err) = response.get("Error") {
            return Err(code_error(str_of(err, "Code"), str_of(err, "Message")));
        }
        let set = response
            .get("SendStatusSet")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let entry = set
            .iter()
            .find(|e| str_of(e, "PhoneNumber") == msg.recipient)
            .or(if set.len() == 1 { set.first() } else { None })
            .ok_or_else(|| {
                SendError::Retryable(format!(
                    "sms: no status for {} in the response",
                    msg.recipient
                ))
            })?;
        let code = str_of(entry, "Code");
        if !code.eq_ignore_ascii_case("ok") {
            return Err(code_error(code, str_of(entry, "Message")));
        }
        Ok(Delivery {
            remote_id: Some(str_of(entry, "SerialNo").to_string()).filter(|s| !s.is_empty()),
            status,
        })
    }
}

impl Connector for SmsConnector {
    fn name(&self) -> &str {
        "sms"
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.deliver(msg))
    }
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Tencent-style error codes: transient ones are worth retrying.
fn code_error(code: &str, message: &str) -> SendError {
    let detail = format!("sms: {code}: {message}");
    let transient = code.starts_with("InternalError")
        || code.starts_with("RequestLimitExceeded")
        || (code.starts_with("LimitExceeded") && !code.contains("Daily"));
    if transient {
        SendError::Retryable(detail)
    } else {
        SendError::Permanent(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(code_error("InternalError.Timeout", "").is_retryable());
        assert!(code_error("RequestLimitExceeded", "").is_retryable());
        assert!(code_error("LimitExceeded.PhoneNumberThirtySecondLimit", "").is_retryable());
        assert!(!code_error("LimitExceeded.PhoneNumberDailyLimit", "").is_retryable());
        assert!(!code_error("InvalidParameterValue.IncorrectPhoneNumber", "").is_retryable());
        assert!(!code_error("", "").is_retryable());
    }
}
