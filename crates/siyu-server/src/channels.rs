//! Each channel's status, as the console's channel pages show it: is it
//! configured, what URL its platform must call, when it last called and
//! whether siyu accepted it, the health of its access token, the WeCom
//! sync's progress and the dispatcher's counters.
//!
//! Why it is kept: a brand connecting WeCom or an Official Account sees
//! nothing when the callback URL, token or key is wrong — the platform
//! just stops calling, or siyu answers 401 to every call. The last
//! accepted and the last rejected callback (with the reason siyu gave) is
//! what tells them which.
//!
//! Callback activity is counted in memory by the node that received it
//! and written every [`FLUSH_EVERY`] to the setting
//! `channel_activity/<channel>/<node>`, so any node behind a load balancer
//! shows the latest of all nodes (a node's own, fresher counts replace its
//! stored row). Counters are per node since it started. Nothing here names
//! a person: kinds and rejection reasons only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use siyu_connectors::{ChannelStats, TokenHealth};

use crate::error::ApiError;
use crate::request::{now, with_store};
use crate::AppState;

/// How often a node writes the callback activity it counted.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The setting prefix of stored activity: `channel_activity/<channel>/<node>`.
pub const ACTIVITY_PREFIX: &str = "channel_activity/";

/// Rejection reasons are kept to this many bytes.
const MAX_REASON: usize = 300;

/// What a channel's platform sent this node (or, stored, one node).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CallbackActivity {
    /// Callbacks accepted (signature, time and receiver checked).
    pub accepted: u64,
    /// Callbacks answered 4xx or 5xx.
    pub rejected: u64,
    pub last_accepted_at: Option<i64>,
    /// What the last accepted callback was (`change_external_contact/
    /// add_external_contact`, `subscribe`, `status`, `reply`, `url
    /// verification`, `events` …).
    pub last_kind: Option<String>,
    pub last_rejected_at: Option<i64>,
    /// The last rejection: its status and the message siyu answered.
    pub last_rejection: Option<String>,
    /// Whether the latest callback was the rejected one (times are
    /// seconds: both may fall in one).
    #[serde(default)]
    pub last_refused: bool,
}

impl CallbackActivity {
    fn latest(&self) -> Option<i64> {
        self.last_accepted_at.max(self.last_rejected_at)
    }

    fn merge(&mut self, other: &CallbackActivity) {
        self.last_refused = match other.latest().cmp(&self.latest()) {
            std::cmp::Ordering::Greater => other.last_refused,
            std::cmp::Ordering::Equal => self.last_refused || other.last_refused,
            std::cmp::Ordering::Less => self.last_refused,
        };
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        if other.last_accepted_at > self.last_accepted_at {
            self.last_accepted_at = other.last_accepted_at;
            self.last_kind = other.last_kind.clone();
        }
        if other.last_rejected_at > self.last_rejected_at {
            self.last_rejected_at = other.last_rejected_at;
            self.last_rejection = other.last_rejection.clone();
        }
    }
}

/// This node's callback activity per channel, and which changed since the
/// last flush.
#[derive(Default)]
pub struct Activity {
    inner: Mutex<(BTreeMap<String, CallbackActivity>, BTreeSet<String>)>,
}

impl Activity {
    fn update(&self, channel: &str, f: impl FnOnce(&mut CallbackActivity)) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(inner.0.entry(channel.to_string()).or_default());
        inner.1.insert(channel.to_string());
    }

    /// A callback of `channel` was accepted; `kind` says what it was.
    pub fn accepted(&self, channel: &str, kind: &str, at: i64) {
        self.update(channel, |a| {
            a.accepted += 1;
            a.last_accepted_at = Some(at);
            a.last_kind = Some(kind.to_string());
            a.last_refused = false;
        });
    }

    /// A callback of `channel` was refused with `status` and `message`.
    pub fn rejected(&self, channel: &str, status: u16, message: &str, at: i64) {
        let mut reason = format!("{status}: {message}");
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        self.update(channel, |a| {
            a.rejected += 1;
            a.last_rejected_at = Some(at);
            a.last_rejection = Some(reason);
            a.last_refused = true;
        });
    }

    /// Records `result` of a callback of `channel`: an error as a
    /// rejection (an accepted one is recorded where its kind is known).
    pub fn observe<T>(&self, channel: &str, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &result {
            let message = match e {
                // Its detail is for the server log only.
                ApiError::Internal(_) => "a server fault; see the server log".to_string(),
                e => e.to_string(),
            };
            self.rejected(channel, e.status_and_code().0.as_u16(), &message, now());
        }
        result
    }

    /// Records `result` of a callback of `channel` whose kind is known
    /// before it is handled: accepted as `kind`, or refused.
    pub fn record<T>(
        &self,
        channel: &str,
        kind: &str,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if result.is_ok() {
            self.accepted(channel, kind, now());
        }
        self.observe(channel, result)
    }

    fn snapshot(&self) -> BTreeMap<String, CallbackActivity> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The channels changed since the last call, with their activity.
    fn take_dirty(&self) -> Vec<(String, CallbackActivity)> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let dirty = std::mem::take(&mut inner.1);
        dirty
            .into_iter()
            .filter_map(|c| inner.0.get(&c).map(|a| (c, a.clone())))
            .collect()
    }

    fn mark_dirty(&self, channels: impl IntoIterator<Item = String>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.extend(channels);
    }
}

/// Writes this node's changed activity every [`FLUSH_EVERY`] (and the
/// rest when the application stops: `stop` flushes).
pub fn spawn_flush(state: AppState) {
    // Holds the state only while flushing, so shutdown is not delayed.
    let app = std::sync::Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = app.upgrade() else { break };
            flush(&AppState(inner)).await;
        }
    });
}

/// Writes this node's changed activity now (also what a test calls).
pub async fn flush(state: &AppState) {
    let dirty = state.0.channel_activity.take_dirty();
    if dirty.is_empty() {
        return;
    }
    let node = state.0.leader.node.clone();
    let items: Vec<(String, Option<serde_json::Value>)> = dirty
        .iter()
        .filter_map(|(channel, a)| {
            let v = serde_json::to_value(a).ok()?;
            Some((format!("{ACTIVITY_PREFIX}{channel}/{node}"), Some(v)))
        })
        .collect();
    let written = with_store(state, move |store| Ok(store.put_settings(&items)?)).await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "writing channel activity; retried at the next flush");
        state
            .0
            .channel_activity
            .mark_dirty(dirty.into_iter().map(|(c, _)| c));
    }
}

/// Every node's activity per channel, this node's from memory.
async fn activity(state: &AppState) -> Result<BTreeMap<String, CallbackActivity>, ApiError> {
    let rows = with_store(state, |store| Ok(store.list_settings(ACTIVITY_PREFIX)?)).await?;
    let node = &state.0.leader.node;
    let mut all: BTreeMap<String, CallbackActivity> = BTreeMap::new();
    for (key, value) in rows {
        let Some((channel, row_node)) = key
            .strip_prefix(ACTIVITY_PREFIX)
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            continue;
        };
        if row_node == node {
            continue;
        }
        if let Ok(a) = serde_json::from_value::<CallbackActivity>(value) {
            all.entry(channel.to_string()).or_default().merge(&a);
        }
    }
    for (channel, a) in state.0.channel_activity.snapshot() {
        all.entry(channel).or_default().merge(&a);
    }
    Ok(all)
}

/// Where each platform posts its callbacks to this workspace (the URLs to
/// enter in its console); `None` where the channel's callbacks are not
/// configured.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct CallbackUrls {
    /// WeCom 接收事件服务器 URL.
    pub wecom: Option<String>,
    /// Official Account 服务器配置 URL.
    pub wechat: Option<String>,
    /// Tencent Cloud SMS 状态回执 (delivery receipt) URL.
    pub sms_status: Option<String>,
    /// Tencent Cloud SMS 回复 (reply) URL.
    pub sms_reply: Option<String>,
}

pub fn callback_urls(state: &AppState) -> CallbackUrls {
    let c = &state.0.config;
    let cfg = &c.connectors;
    let base = c.public_url.trim_end_matches('/');
    let named = |channel: &str| {
        if c.workspace == "default" {
            format!("{base}/callbacks/{channel}")
        } else {
            format!("{base}/callbacks/{channel}/{}", c.workspace)
        }
    };
    let sms_token = cfg
        .sms
        .as_ref()
        .filter(|s| s.provider == "tencent")
        .map(|_| {
            crate::links::callback_token(
                &state.0.link_secret,
                crate::links::SMS_TENCENT_CALLBACK,
                &c.workspace,
            )
        });
    CallbackUrls {
        wecom: state.0.wecom_callbacks.as_ref().map(|_| named("wecom")),
        wechat: cfg
            .wechat
            .as_ref()
            .filter(|w| !w.token.expose().trim().is_empty())
            .map(|_| named("wechat")),
        sms_status: sms_token
            .as_ref()
            .map(|t| format!("{base}/callbacks/sms/tencent/{t}/status")),
        sms_reply: sms_token
            .as_ref()
            .map(|t| format!("{base}/callbacks/sms/tencent/{t}/reply")),
    }
}

/// How a channel is doing, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Something fails: the token cannot be fetched, the last callback
    /// was refused, the sync failed.
    Error,
    /// Works, with something to look at: dead letters, callbacks not set up.
    Attention,
    Ok,
    /// No section in the configuration.
    NotConfigured,
}

/// One thing to look at on a channel: a stable `code` the console
/// translates and the detail (an error message, a count).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// `token_failing`, `callback_rejected`, `callbacks_not_configured`,
    /// `dead_letters`, `sync_failed`.
    pub code: &'static str,
    pub health: Health,
    pub detail: String,
}

/// A callback endpoint of a channel: its URL and what arrived there.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Callback {
    /// What the URL is for: `events` (WeCom, Official Account, inbound
    /// webhook), `status` or `reply` (SMS).
    pub kind: &'static str,
    pub url: String,
    #[serde(flatten)]
    pub activity: CallbackActivity,
}

/// `GET /v1/channels`, one per channel.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ChannelStatus {
    /// `wecom`, `wechat`, `sms`, `email`, `webhook`, or an inbound/bridged
    /// channel (`douyin`, `xiaohongshu`, …).
    pub channel: String,
    pub configured: bool,
    pub health: Health,
    pub problems: Vec<Problem>,
    /// What is configured, never a secret: corp id, app id, provider,
    /// base URL, sender, bridge URL.
    pub settings: BTreeMap<String, String>,
    /// The URLs its platform calls, with what arrived (empty when none).
    pub callbacks: Vec<Callback>,
    /// The access token (WeCom, Official Account).
    pub token: Option<TokenHealth>,
    /// The dispatcher's counters for its outbound channels (`wecom` and
    /// `wecom_api` for WeCom).
    pub outbound: BTreeMap<String, ChannelStats>,
    /// The WeCom sync's state (WeCom, after the first sync).
    pub sync: Option<crate::wecom_sync::SyncState>,
    /// Where it is configured.
    pub configure: &'static str,
}

/// The channels siyu has a client for, in the order the console lists them.
pub const KNOWN: [&str; 5] = ["wecom", "wechat", "sms", "email", "webhook"];

/// Every channel's status: the built-in ones, then each inbound webhook or
/// bridged channel.
pub async fn all(state: &AppState) -> Result<Vec<ChannelStatus>, ApiError> {
    let activity = activity(state).await?;
    let sync = crate::wecom_sync::load(state).await?;
    let mut names: Vec<String> = KNOWN.iter().map(|c| c.to_string()).collect();
    let extra: BTreeSet<String> = state
        .0
        .config
        .inbound_secrets
        .keys()
        .chain(state.0.config.connectors.bridges.keys())
        .filter(|c| !KNOWN.contains(&c.as_str()))
        .cloned()
        .collect();
    names.extend(extra);
    Ok(names
        .into_iter()
        .map(|c| status_of(state, &c, &activity, sync.as_ref()))
        .collect())
}

/// One channel's status; 404 for a channel neither built in nor configured.
pub async fn one(state: &AppState, channel: &str) -> Result<ChannelStatus, ApiError> {
    all(state)
        .await?
        .into_iter()
        .find(|s| s.channel == channel)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no channel `{channel}`: the built-in ones are {}; others exist once `[inbound] {channel}` or `[connectors.bridges.{channel}]` is configured",
                KNOWN.join(", ")
            ))
        })
}

fn status_of(
    state: &AppState,
    channel: &str,
    activity: &BTreeMap<String, CallbackActivity>,
    sync: Option<&crate::wecom_sync::SyncState>,
) -> ChannelStatus {
    let cfg = &state.0.config.connectors;
    let urls = callback_urls(state);
    let stats = state.0.automation.dispatcher_stats().unwrap_or_default();
    let mut settings = BTreeMap::new();
    let mut callbacks = Vec::new();
    let mut problems = Vec::new();
    let mut token = None;
    let mut outbound_channels = vec![channel.to_string()];
    let mut callback = |kind: &'static str, url: Option<String>, key: &str| {
        if let Some(url) = url {
            callbacks.push(Callback {
                kind,
                url,
                activity: activity.get(key).cloned().unwrap_or_default(),
            });
        }
    };
    let (configured, configure) = match channel {
        "wecom" => {
            if let Some(w) = &cfg.wecom {
                settings.insert("corp_id".into(), w.corp_id.clone());
                settings.insert("sender".into(), w.sender.clone());
                settings.insert("base_url".into(), w.base_url.clone());
                if let Some(kf) = w.open_kfid.as_ref().filter(|k| !k.trim().is_empty()) {
                    settings.insert("open_kfid".into(), kf.clone());
                }
                if urls.wecom.is_none() {
                    problems.push(Problem {
                        code: "callbacks_not_configured",
                        health: Health::Attention,
                        detail: "add `token` and `encoding_aes_key` to [connectors.wecom] to receive friend adds, deletions, group changes and messages".into(),
                    });
                }
            }
            token = state.0.wecom.as_ref().map(|w| w.token_health());
            outbound_channels.push("wecom_api".into());
            callback("events", urls.wecom.clone(), "wecom");
            (
                cfg.wecom.is_some(),
                "[connectors.wecom] corp_id, secret, sender, token, encoding_aes_key",
            )
        }
        "wechat" => {
            if let Some(w) = &cfg.wechat {
                settings.insert("app_id".into(), w.app_id.clone());
                settings.insert("base_url".into(), w.base_url.clone());
                if urls.wechat.is_none() {
                    problems.push(Problem {
                        code: "callbacks_not_configured",
                        health: Health::Attention,
                        detail: "add `token` (and `encoding_aes_key` for safe mode) to [connectors.wechat] to receive follows, scans and messages".into(),
                    });
                }
            }
            token = state
                .0
                .wechat_oa
                .as_ref()
                .map(|oa| oa.client().token_health());
            callback("events", urls.wechat.clone(), "wechat");
            (
                cfg.wechat.is_some(),
                "[connectors.wechat] app_id, secret, token, encoding_aes_key",
            )
        }
        "sms" => {
            if let Some(s) = &cfg.sms {
                settings.insert("provider".into(), s.provider.clone());
                settings.insert("base_url".into(), s.base_url.clone());
                if !s.sdk_app_id.is_empty() {
                    settings.insert("sdk_app_id".into(), s.sdk_app_id.clone());
                }
                if !s.sign_name.is_empty() {
                    settings.insert("sign_name".into(), s.sign_name.clone());
                }
            }
            callback("status", urls.sms_status.clone(), "sms/status");
            callback("reply", urls.sms_reply.clone(), "sms/reply");
            (cfg.sms.is_some(), "[connectors.sms] provider = \"tencent\", secret_id, secret_key, sdk_app_id, sign_name, template_id")
        }
        "email" => {
            if let Some(e) = &cfg.email {
                settings.insert("host".into(), e.host.clone());
                settings.insert("from".into(), e.from.clone());
            }
            (
                cfg.email.is_some(),
                "[connectors.email] host, port, from, username, password",
            )
        }
        "webhook" => {
            if let Some(w) = &cfg.webhook {
                settings.insert("url".into(), w.url.clone());
            }
            (cfg.webhook.is_some(), "[connectors.webhook] url, secret")
        }
        other => {
            let inbound = state.0.config.inbound_secrets.contains_key(other);
            let bridge = cfg.bridges.get(other);
            if let Some(b) = bridge {
                settings.insert("bridge_url".into(), b.url.clone());
            }
            settings.insert("inbound_webhook".into(), inbound.to_string());
            let base = state.0.config.public_url.trim_end_matches('/');
            callback(
                "events",
                inbound.then(|| format!("{base}/v1/inbound/{other}")),
                other,
            );
            (inbound || bridge.is_some(), "[inbound] <channel> = \"secret\" (its webhooks), [connectors.bridges.<channel>] url, secret (its replies)")
        }
    };
    if let Some(t) = token
        .as_ref()
        .filter(|t| t.state == siyu_connectors::TokenState::Failing)
    {
        problems.push(Problem {
            code: "token_failing",
            health: Health::Error,
            detail: t.last_error.clone().unwrap_or_default(),
        });
    }
    for c in &callbacks {
        if c.activity.last_refused {
            problems.push(Problem {
                code: "callback_rejected",
                health: Health::Error,
                detail: c.activity.last_rejection.clone().unwrap_or_default(),
            });
        }
    }
    let outbound: BTreeMap<String, ChannelStats> = outbound_channels
        .iter()
        .filter_map(|c| stats.channels.get(c).map(|s| (c.clone(), *s)))
        .collect();
    let dead: u64 = outbound.values().map(|s| s.dead).sum();
    if dead > 0 {
        problems.push(Problem {
            code: "dead_letters",
            health: Health::Attention,
            detail: dead.to_string(),
        });
    }
    let sync = if channel == "wecom" {
        sync.cloned()
    } else {
        None
    };
    if let Some(s) = sync
        .as_ref()
        .filter(|s| s.status == crate::wecom_sync::SyncStatus::Failed)
    {
        problems.push(Problem {
            code: "sync_failed",
            health: Health::Error,
            detail: s.errors.last().cloned().unwrap_or_default(),
        });
    }
    let health = if !configured {
        Health::NotConfigured
    } else {
        problems
            .iter()
            .map(|p| p.health)
            .min()
            .unwrap_or(Health::Ok)
    };
    ChannelStatus {
        channel: channel.to_string(),
        configured,
        health,
        problems,
        settings,
        callbacks,
        token,
        outbound,
        sync,
        configure,
    }
}

/// `POST /v1/channels/{channel}/check`: fetch an access token now (WeCom,
/// Official Account), so a wrong secret shows before a send needs it.
pub async fn check(state: &AppState, channel: &str) -> Result<ChannelStatus, ApiError> {
    let result = match channel {
        "wecom" => match &state.0.wecom {
            Some(w) => w.check_token().await.map(|_| ()),
            None => return Err(not_configured(channel)),
        },
        "wechat" => match &state.0.wechat_oa {
            Some(oa) => oa.client().check_token().await.map(|_| ()),
            None => return Err(not_configured(channel)),
        },
        other => {
            return Err(ApiError::BadRequest(format!(
                "channel `{other}` has no access token to check; only wecom and wechat do"
            )))
        }
    };
    if let Err(e) = result {
        // The failure is in the token's health, which the answer carries.
        tracing::warn!(channel, error = %e, "token check failed");
    }
    one(state, channel).await
}

fn not_configured(channel: &str) -> ApiError {
    ApiError::NotFound(format!(
        "channel `{channel}` is not configured; add [connectors.{channel}] to the config"
    ))
}
