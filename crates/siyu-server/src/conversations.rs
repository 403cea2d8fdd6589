//! Conversations (会话): the settings they follow, the change feed the
//! inbox listens to, and the alerts the leading node raises.
//!
//! The state of each person's conversation is the engine's
//! (`siyu_engine::conversation`, folded from the log like every other
//! property, so every node has it); the thread is the person's log; the
//! operators' own messages are also archived (`conversation_archive`,
//! `Store::archive_message`) so compliance can search them by operator
//! and text without a pass over the log, and prune them by retention.
//! `routes/conversations.rs` is the API over all of it.
//!
//! Why alerts are tasks: an operator's work list already is the task
//! list (lead tasks, journey tasks), keyed so a repeat adds nothing —
//! one task per waiting episode (`unanswered/<person>/<since>`), one per
//! flagged operator message (`sensitive/<key>`).

use serde::{Deserialize, Serialize};
use siyu_domain::{Event, EventType};
use siyu_engine::conversation::RESOLVED_EVENT;
use siyu_engine::Engine;
use siyu_store::{ArchiveQuery, Store, TaskRow};
use std::collections::BTreeMap;

/// The setting holding [`Settings`].
pub const SETTINGS_KEY: &str = "conversations/settings";

/// How the workspace runs its conversations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A customer waiting this long for an operator's reply raises an
    /// alert (a task for the person's owner); 0 turns alerts off.
    #[serde(default = "default_alert_minutes")]
    pub unanswered_alert_minutes: u32,
    /// Operator messages are kept this many days in the archive; 0 keeps
    /// them until the person is erased.
    #[serde(default = "default_retention_days")]
    pub archive_retention_days: u32,
    /// Hours after the customer's last message on a channel during which
    /// the platform takes a reply (WeChat Official Accounts' customer
    /// service messages: 48, the default; WeCom through 微信客服 gets 48
    /// too, see [`Settings::effective`]). A channel not listed has no
    /// window; a bridge whose platform has one (a DM channel that answers
    /// only within N hours) is listed here by its channel name.
    #[serde(default = "default_windows")]
    pub service_windows: BTreeMap<String, u32>,
}

fn default_alert_minutes() -> u32 {
    30
}
fn default_retention_days() -> u32 {
    180
}
fn default_windows() -> BTreeMap<String, u32> {
    BTreeMap::from([("wechat".to_string(), 48)])
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            unanswered_alert_minutes: default_alert_minutes(),
            archive_retention_days: default_retention_days(),
            service_windows: default_windows(),
        }
    }
}

impl Settings {
    /// Every fault, naming its field and the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.unanswered_alert_minutes > 7 * 24 * 60 {
            return Err(
                "unanswered_alert_minutes: at most 10080 (a week); 0 turns alerts off".into(),
            );
        }
        if self.archive_retention_days > 3650 {
            return Err(
                "archive_retention_days: at most 3650 (ten years); 0 keeps messages until erasure"
                    .into(),
            );
        }
        if self.service_windows.len() > 64 {
            return Err("service_windows: at most 64 channels".into());
        }
        for (ch, h) in &self.service_windows {
            if siyu_domain::Channel::parse(ch).is_none() {
                return Err(format!(
                    "service_windows.{ch}: not a channel name (lowercase letters, digits, _ or -)"
                ));
            }
            if *h == 0 || *h > 24 * 30 {
                return Err(format!(
                    "service_windows.{ch}: hours from 1 to 720; remove the channel for no window"
                ));
            }
        }
        Ok(())
    }

    /// These settings as replies follow them: WeCom with `open_kfid`
    /// configured sends direct messages through 微信客服 (`kf/send_msg`),
    /// which takes them only within 48 h of the customer's last message,
    /// so `wecom` gets that window unless the settings name one.
    pub fn effective(mut self, wecom_through_kf: bool) -> Settings {
        if wecom_through_kf {
            self.service_windows.entry("wecom".into()).or_insert(48);
        }
        self
    }

    /// The window of `channel`, in seconds, if it has one.
    pub fn window_secs(&self, channel: &str) -> Option<i64> {
        self.service_windows.get(channel).map(|h| *h as i64 * 3600)
    }

    /// The stored settings, else the defaults; an unreadable value is
    /// logged and the defaults used (the conversations keep working).
    pub fn load(store: &mut dyn Store) -> siyu_store::Result<Settings> {
        Ok(match store.get_setting(SETTINGS_KEY)? {
            None => Settings::default(),
            Some(v) => serde_json::from_value(v).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "conversations/settings unreadable; using the defaults");
                Settings::default()
            }),
        })
    }
}

/// A change to someone's conversation, as the inbox hears it
/// (`GET /v1/conversations/stream`).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ConversationChange {
    /// The person's canonical identity.
    pub person: String,
    /// comment | message_sent | resolved | assigned
    pub kind: &'static str,
    pub at: i64,
}

/// What kind of conversation change `e` is, if any.
pub fn change_kind(e: &Event) -> Option<&'static str> {
    match e.event_type {
        EventType::Comment => Some("comment"),
        EventType::MessageSent => Some("message_sent"),
        EventType::Custom if e.name.as_deref() == Some(RESOLVED_EVENT) => Some("resolved"),
        EventType::Identify
            if e.traits
                .as_ref()
                .is_some_and(|t| t.extra.contains_key("operator")) =>
        {
            Some("assigned")
        }
        _ => None,
    }
}

/// How long after it became due an alert is still raised: a customer who
/// has waited since before this (imported history, a long outage) is in
/// the unanswered queue, not in a flood of new tasks.
pub const ALERT_LOOKBACK_SECS: i64 = 2 * 86_400;

/// The alert tasks due at `now`: one per person waiting longer than the
/// settings allow (for their owner), keyed by the waiting episode.
pub fn unanswered_alerts(engine: &Engine, settings: &Settings, now: i64) -> Vec<TaskRow> {
    if settings.unanswered_alert_minutes == 0 {
        return Vec::new();
    }
    let limit = settings.unanswered_alert_minutes as i64 * 60;
    engine.fold_persons(
        |it| {
            it.filter_map(|(slot, p)| {
                let since = p.conversation()?.unanswered_since()? as i64;
                if now - since < limit || now - since > limit + ALERT_LOOKBACK_SECS {
                    return None;
                }
                let canonical = engine.canonical_id(slot).to_string();
                let owner = siyu_engine::customers::owner_of(p).map(str::to_string);
                let name = siyu_engine::customers::name_of(p).unwrap_or(&canonical);
                Some(TaskRow {
                    key: format!("unanswered/{canonical}/{since}"),
                    created_at: now,
                    identity: canonical.clone(),
                    journey: None,
                    operator: owner,
                    title: format!("unanswered: {name}"),
                    note: format!(
                        "waiting for a reply for {} min (alert after {} min)",
                        (now - since) / 60,
                        settings.unanswered_alert_minutes
                    ),
                    due: None,
                    done_at: None,
                })
            })
            .collect::<Vec<_>>()
        },
        |mut a, b| {
            a.extend(b);
            a
        },
    )
}

/// The alert tasks for operator messages archived since `since` that hit
/// a sensitive-word rule (for review: no operator).
pub fn sensitive_alerts(
    store: &mut dyn Store,
    since: i64,
    now: i64,
) -> siyu_store::Result<Vec<TaskRow>> {
    let flagged = store.archived_messages(&ArchiveQuery {
        kind: Some("message".into()),
        flagged: true,
        from: Some(since),
        limit: 10_000,
        ..Default::default()
    })?;
    Ok(flagged
        .into_iter()
        .map(|m| TaskRow {
            key: format!("sensitive/{}", m.key),
            created_at: now,
            identity: m.identity,
            journey: None,
            operator: None,
            title: format!("sensitive words: {} ({})", m.operator, m.flags.join(", ")),
            note: m.text.chars().take(200).collect(),
            due: None,
            done_at: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wecom_through_kf_gets_the_48_hour_window_unless_the_settings_name_one() {
        let plain = Settings::default();
        assert_eq!(plain.clone().effective(false).window_secs("wecom"), None);
        assert_eq!(
            plain.clone().effective(true).window_secs("wecom"),
            Some(48 * 3600)
        );
        assert_eq!(plain.effective(true).window_secs("wechat"), Some(48 * 3600));
        let mut own = Settings::default();
        own.service_windows.insert("wecom".into(), 24);
        assert_eq!(own.effective(true).window_secs("wecom"), Some(24 * 3600));
    }
}
