//! SMS: Tencent Cloud SMS itself (`provider = "tencent"`), or a gateway
//! speaking the shape of its `SendSms` (`provider = "gateway"`, the
//! default; the de-facto shape of Chinese SMS APIs: signed, templated).
//!
//! **Tencent Cloud** (`provider = "tencent"`): `POST {base_url}/` (default
//! `https://sms.tencentcloudapi.com`), the 2021-01-11 API, with headers
//! `Content-Type: application/json; charset=utf-8`, `Host`,
//! `X-TC-Action: SendSms`, `X-TC-Version: 2021-01-11`, `X-TC-Timestamp`,
//! `X-TC-Region` (`region`, default `ap-guangzhou`) and the
//! `TC3-HMAC-SHA256` `Authorization` of [`crate::tc3`] with `secret_id` and
//! `secret_key`; the body below. The `SerialNo` it answers is the
//! delivery's remote id, which Tencent's delivery receipts name as `sid`.
//!
//! **Gateway**: `POST {base_url}/sms/send` with headers
//! `Content-Type: application/json`, `Idempotency-Key: <key>` and, when an
//! `api_key` is configured, `Authorization: Bearer <api_key>`; body
//! ```json
//! {"SmsSdkAppId": "1400000000", "SignName": "思语", "TemplateId": "1234567",
//!  "PhoneNumberSet": ["+8613800000000"], "TemplateParamSet": ["..."],
//!  "SessionContext": "<idempotency key>"}
//! ```
//! `TemplateId` is `data.template_id` (string or number) or the configured
//! default; `TemplateParamSet` is `data.template_params` (strings or
//! numbers) or else `[body]`. A gateway authenticates with the bearer key.
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

/// Tencent Cloud SMS's API host.
pub const TENCENT_BASE_URL: &str = "https://sms.tencentcloudapi.com";
/// The `SendSms` version siyu speaks.
pub const TENCENT_VERSION: &str = "2021-01-11";

/// `[sms]` in the connectors config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `"gateway"` (default: `base_url` + `/sms/send`, bearer `api_key`)
    /// or `"tencent"` (Tencent Cloud SMS, TC3-signed with `secret_id` and
    /// `secret_key`).
    pub provider: String,
    /// Gateway: required. Tencent: defaults to `https://sms.tencentcloudapi.com`.
    pub base_url: String,
    pub sdk_app_id: String,
    pub sign_name: String,
    /// Used when the message's `data.template_id` is absent.
    pub template_id: Option<String>,
    pub api_key: Option<Secret>,
    /// Tencent: the API key's SecretId (访问管理 → API 密钥).
    pub secret_id: String,
    /// Tencent: the API key's SecretKey.
    pub secret_key: Secret,
    /// Tencent: `X-TC-Region` (default `ap-guangzhou`).
    pub region: String,
    pub timeout_ms: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: "gateway".to_string(),
            base_url: String::new(),
            sdk_app_id: String::new(),
            sign_name: String::new(),
            template_id: None,
            api_key: None,
            secret_id: String::new(),
            secret_key: Secret::default(),
            region: "ap-guangzhou".to_string(),
            timeout_ms: http::DEFAULT_TIMEOUT_MS,
        }
    }
}

/// Tencent Cloud's credentials and where they sign for.
struct Tencent {
    secret_id: String,
    secret_key: Secret,
    region: String,
    /// The `Host` header (and signed host): the base URL's authority.
    host: String,
}

pub struct SmsConnector {
    url: String,
    tencent: Option<Tencent>,
    sdk_app_id: String,
    sign_name: String,
    template_id: Option<String>,
    api_key: Option<Secret>,
    client: reqwest::Client,
}

impl SmsConnector {
    pub fn new(cfg: &SmsConfig) -> Result<Self, ConfigError> {
        required("sms.sdk_app_id", &cfg.sdk_app_id)?;
        required("sms.sign_name", &cfg.sign_name)?;
        let (url, tencent) = match cfg.provider.trim() {
            "" | "gateway" => {
                let base = http::base_url("sms.base_url", &cfg.base_url)?;
                (format!("{base}/sms/send"), None)
            }
            "tencent" => {
                let given = cfg.base_url.trim();
                let base = http::base_url(
                    "sms.base_url",
                    if given.is_empty() {
                        TENCENT_BASE_URL
                    } else {
                        given
                    },
                )?;
                required("sms.secret_id", &cfg.secret_id)?;
                required("sms.secret_key", cfg.secret_key.expose())?;
                required("sms.region", &cfg.region)?;
                let parsed = reqwest::Url::parse(&base).map_err(|e| ConfigError::Invalid {
                    field: "sms.base_url".into(),
                    reason: e.to_string(),
                })?;
                let host = match (parsed.host_str(), parsed.port()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (Some(h), None) => h.to_string(),
                    (None, _) => {
                        return Err(ConfigError::Invalid {
                            field: "sms.base_url".into(),
                            reason: "has no host".into(),
                        })
                    }
                };
                (
                    format!("{base}/"),
                    Some(Tencent {
                        secret_id: cfg.secret_id.trim().to_string(),
                        secret_key: cfg.secret_key.clone(),
                        region: cfg.region.trim().to_string(),
                        host,
                    }),
                )
            }
            other => {
                return Err(ConfigError::Invalid {
                    field: "sms.provider".into(),
                    reason: format!("{other:?} is not a provider; use \"tencent\" or \"gateway\""),
                })
            }
        };
        Ok(Self {
            url,
            tencent,
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
        let mut req = self.client.post(&self.url);
        if let Some(tc) = &self.tencent {
            let payload =
                serde_json::to_vec(&body).map_err(|e| SendError::Permanent(format!("sms: {e}")))?;
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let authorization = crate::tc3::authorization(
                &tc.secret_id,
                tc.secret_key.expose(),
                "sms",
                &tc.host,
                &payload,
                timestamp,
            );
            req = req
                .header("Content-Type", crate::tc3::CONTENT_TYPE)
                .header("Host", &tc.host)
                .header("X-TC-Action", "SendSms")
                .header("X-TC-Version", TENCENT_VERSION)
                .header("X-TC-Timestamp", timestamp.to_string())
                .header("X-TC-Region", &tc.region)
                .header("Authorization", authorization)
                .body(payload);
        } else {
            req = req
                .header("Idempotency-Key", &msg.idempotency_key)
                .json(&body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key.expose());
            }
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
