//! The welcome message (欢迎语) of a customer who just added an operator:
//! `POST /cgi-bin/externalcontact/send_welcome_msg`
//! `{welcome_code, text: {content}, attachments}`.
//!
//! The `add_external_contact` callback carries a `WelcomeCode` that is
//! valid [`WELCOME_CODE_TTL_SECS`] and good for one message: a welcome
//! not sent by then is missed, never retried. errcode 41051 (the code
//! expired or was used — by the operator's own welcome, or a send already
//! made) is final too. Both come back as [`SendError::Permanent`] whose
//! detail starts with [`MISSED`], so the server records the welcome as
//! missed with the reason.

use serde_json::json;

use crate::http::errcode_of;
use crate::SendError;

/// How long WeCom accepts a `WelcomeCode` after the callback.
pub const WELCOME_CODE_TTL_SECS: i64 = 20;
/// The start of the detail of a welcome that can no longer be sent.
pub const MISSED: &str = "missed: ";
/// errcode: the welcome code expired or was used.
pub const WELCOME_CODE_EXPIRED: i64 = 41051;

impl super::WeComConnector {
    /// Sends `text` as the welcome of `welcome_code`, unless `now` is at
    /// or past `expires_at` (epoch seconds).
    pub async fn send_welcome_msg(
        &self,
        welcome_code: &str,
        text: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), SendError> {
        if now >= expires_at {
            return Err(SendError::Permanent(format!(
                "{MISSED}the welcome code expired at {expires_at} ({WELCOME_CODE_TTL_SECS} s after the add); it is now {now}"
            )));
        }
        let body = json!({
            "welcome_code": welcome_code,
            "text": {"content": text},
            "attachments": [],
        });
        let (_, v) = self
            .api
            .call(
                "/cgi-bin/externalcontact/send_welcome_msg",
                &[],
                Some(&body),
            )
            .await?;
        match errcode_of(&v) {
            0 => Ok(()),
            WELCOME_CODE_EXPIRED => Err(SendError::Permanent(format!(
                "{MISSED}errcode {WELCOME_CODE_EXPIRED}: the welcome code expired or was already used"
            ))),
            errcode => {
                let errmsg = v.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
                Err(crate::http::errcode_error(
                    "wecom send_welcome_msg",
                    errcode,
                    errmsg,
                ))
            }
        }
    }
}
