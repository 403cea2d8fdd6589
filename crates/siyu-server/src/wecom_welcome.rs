//! The WeCom welcome message (欢迎语): when an `add_external_contact`
//! callback carries a `WelcomeCode`, the configured welcome is queued at
//! once as an outbox call (`Action::ApiCall` on `wecom_api`:
//! `send_welcome_msg`), keyed by the add's event id so a retried callback
//! queues nothing more.
//!
//! Which text: the welcome template of the live code the callback's
//! `State` names (rendered for the person by the executor), else the
//! workspace's default, the setting [`WELCOME_KEY`]
//! (`PUT /v1/wecom/welcome`). Neither: nothing is sent (the operator's
//! own WeCom welcome applies).
//!
//! A welcome is transactional (the person just added the operator and
//! WeCom shows it as the greeting): the guardrails apply an explicit
//! revocation for `wecom`, not the marketing opt-out, caps or quiet
//! hours. The code is valid 20 s from the add
//! (`siyu_connectors::wecom::welcome::WELCOME_CODE_TTL_SECS`): the call
//! expires then, and one not made by then — the executor was behind, a
//! guardrail would delay it, the connector's retries ran out of time,
//! or WeCom answered 41051 — is recorded `suppressed` with a `missed: …`
//! reason and never retried.

use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_automation::guard::MessageClass;
use siyu_automation::machine::Action;
use siyu_connectors::wecom::calls::CALLS_CHANNEL;
use siyu_connectors::wecom::welcome::WELCOME_CODE_TTL_SECS;
use siyu_domain::{Event, EventType};
use siyu_store::Store;

/// The workspace's default welcome.
pub const WELCOME_KEY: &str = "wecom/welcome";
/// WeCom's limit on a text welcome's content, in bytes.
pub const MAX_WELCOME_BYTES: usize = 4000;

/// The default welcome (`PUT /v1/wecom/welcome`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WelcomeConfig {
    /// The text sent as the welcome (at most 4000 bytes).
    pub text: String,
    /// Off: no default welcome (live codes' welcome templates still apply).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl WelcomeConfig {
    /// `Err((field, why))` for a welcome WeCom would refuse.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.enabled && self.text.trim().is_empty() {
            return Err(("text", "is empty; an enabled welcome needs a text".into()));
        }
        if self.text.len() > MAX_WELCOME_BYTES {
            return Err((
                "text",
                format!(
                    "is {} bytes; WeCom takes at most {MAX_WELCOME_BYTES}",
                    self.text.len()
                ),
            ));
        }
        Ok(())
    }
}

pub fn load(store: &mut dyn Store) -> siyu_store::Result<Option<WelcomeConfig>> {
    Ok(store
        .get_setting(WELCOME_KEY)?
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// The welcome calls of a callback's events: each add carrying a
/// `welcome_code`, with its live code's template or the default text.
/// `now` bounds the expiry when the callback's time is ahead of the
/// server's.
pub fn welcome_calls(
    store: &mut dyn Store,
    events: &[Event],
    now: i64,
) -> siyu_store::Result<Vec<(String, Action)>> {
    let mut calls = Vec::new();
    let mut default: Option<Option<WelcomeConfig>> = None;
    for e in events
        .iter()
        .filter(|e| e.event_type == EventType::AddFriend)
    {
        let Some(p) = &e.properties else { continue };
        let Some(code) = p.get("welcome_code").and_then(|c| c.as_str()) else {
            continue;
        };
        let template = match p.get("state").and_then(|s| s.as_str()) {
            Some(state) if siyu_automation::journey::valid_name(state) => {
                match siyu_growth::community::livecode::load_livecode(store, state) {
                    Ok(Some(lc)) if !lc.archived => lc.welcome_template,
                    Ok(_) => None,
                    Err(err) => {
                        tracing::warn!(%state, error = %err, "live code of a welcome");
                        None
                    }
                }
            }
            _ => None,
        };
        let text = match &template {
            Some(_) => String::new(),
            None => {
                let d = match &default {
                    Some(d) => d.clone(),
                    None => {
                        let d = load(store)?;
                        default = Some(d.clone());
                        d
                    }
                };
                match d {
                    Some(d) if d.enabled && !d.text.is_empty() => d.text,
                    _ => continue,
                }
            }
        };
        let expires_at = e.ts.min(now) + WELCOME_CODE_TTL_SECS;
        let id = e.id.as_deref().unwrap_or("");
        calls.push((
            e.identity.as_str().to_string(),
            Action::ApiCall {
                key: format!("wecom_welcome/{id}"),
                channel: CALLS_CHANNEL.to_string(),
                call: json!({
                    "call": "send_welcome_msg",
                    "welcome_code": code,
                    "expires_at": expires_at,
                }),
                text,
                template,
                class: Some(MessageClass::Transactional),
                expires_at: Some(expires_at),
            },
        ));
    }
    Ok(calls)
}
