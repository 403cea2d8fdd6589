//! A customer message's intent, used everywhere: every inbound message is
//! annotated with it on its way into the log ([`annotate`]), and the
//! workspace's intent settings ([`IntentSettings`], setting
//! `intents/settings`) say what a live message of each intent does by
//! itself — the tags it adds to its person, and which intents are "hot"
//! and make a lead task for the person's owner (the executor,
//! `automation::Executor::intent_effects`). Segments read it as
//! `intent(last 7d) = "price"` (the engine), auto-reply rules as
//! `intents`, journeys' event triggers as `intents`.
//!
//! Where and why the annotation happens: in [`crate::writer::WriterHandle`]'s
//! `append` and `append_history`, the one door every event of a request,
//! callback, bridge or WeCom sync takes to the log, before the writer
//! thread appends it. So the stored event carries `properties.intent`
//! (the id, `siyu_domain::intent`) and `properties.intent_confidence`
//! (the classifier's posterior, 3 decimals): the log, not the model,
//! is what segments, exports and replays read, so a rebuild or another
//! node reading the log sees the same intent even after the model
//! changes. A message whose caller gave `properties.intent` keeps it (the
//! wire format checked it is an intent, `siyu_domain::intent::check_properties`).
//! History is annotated too (a WeCom sync's import, old events through
//! `/v1/events`), but history never triggers: the executor's tags and
//! leads, like auto-replies, are for live messages only.
//! Not annotated: `siyu import` files appended by the command line
//! without the server (their comments may carry `properties.intent`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::intent;
use siyu_domain::intent::{Intent, CONFIDENCE_PROPERTY, PROPERTY};
use siyu_domain::{Event, EventType};

use crate::error::ApiError;

/// The setting holding [`IntentSettings`].
pub const KEY: &str = "intents/settings";

/// Above this many messages to classify, the work goes to a blocking
/// thread (the model takes tens of microseconds a message).
const INLINE_MAX: usize = 16;

/// Whether `e` is an inbound message siyu should classify: a comment with
/// text and no intent of its own.
fn wants_intent(e: &Event) -> bool {
    e.event_type == EventType::Comment
        && e.text.as_deref().is_some_and(|t| !t.trim().is_empty())
        && e.properties
            .as_ref()
            .is_none_or(|p| !p.contains_key(PROPERTY))
}

/// Sets `properties.intent` and `properties.intent_confidence` on every
/// comment with text and no intent. A comment without a client id first
/// gets the id the store would give it without the annotation
/// (`siyu_store::content_id`), so a retry or a re-import still stores
/// it once, whatever the model says this time and whether it was first
/// stored before messages were annotated.
pub fn annotate(events: &mut [Event]) {
    for e in events.iter_mut().filter(|e| wants_intent(e)) {
        if e.id.is_none() {
            e.id = siyu_store::EventRow::new(e)
                .ok()
                .map(|r| siyu_store::content_id(&r));
        }
        let Some(text) = e.text.as_deref() else {
            continue;
        };
        let c = intent::classify(text);
        let confidence = (c.confidence * 1000.0).round() / 1000.0;
        let p = e.properties.get_or_insert_with(Default::default);
        p.insert(PROPERTY.into(), Value::String(c.intent.id().into()));
        p.insert(CONFIDENCE_PROPERTY.into(), Value::from(confidence));
    }
}

/// [`annotate`], on a blocking thread when there are many messages.
pub async fn annotated(mut events: Vec<Event>) -> Vec<Event> {
    let n = events.iter().filter(|e| wants_intent(e)).count();
    if n == 0 {
        return events;
    }
    if n <= INLINE_MAX {
        annotate(&mut events);
        return events;
    }
    match tokio::task::spawn_blocking(move || {
        annotate(&mut events);
        events
    })
    .await
    {
        Ok(events) => events,
        // The blocking pool is shutting down: nothing is appended anyway.
        Err(e) => {
            tracing::warn!(error = %e, "annotating intents failed");
            Vec::new()
        }
    }
}

/// What a live inbound message's intent does by itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntentSettings {
    /// Tags a live message of each intent adds to its person, by intent id:
    /// `{"price": ["询价客户"]}`. Added once per person and tag: a tag an
    /// operator later removes is not added again. Default: none.
    #[serde(default)]
    pub auto_tags: BTreeMap<Intent, Vec<String>>,
    /// Hot intents: a live message of one makes a lead task for the
    /// person's owner (`operator` trait; without one, the unassigned
    /// pool). Ids or Chinese names. Default `["buy", "price"]` (购买意向,
    /// 询价: the customer is close to buying; material requests are
    /// answered by auto-replies, not sales).
    #[serde(
        default = "default_hot",
        deserialize_with = "siyu_domain::intent::deserialize_lenient_vec"
    )]
    pub hot: Vec<Intent>,
    /// At most one hot-intent task per person and intent within this many
    /// seconds (60 to 30 days; default 86400).
    #[serde(default = "default_lead_window")]
    pub lead_window_secs: u64,
    /// Messages classified below this confidence add no tag and no task
    /// (0 to 1; default 0.5). A caller-given intent without a confidence
    /// counts as certain.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
}

fn default_hot() -> Vec<Intent> {
    vec![Intent::Buy, Intent::Price]
}

fn default_lead_window() -> u64 {
    86_400
}

fn default_min_confidence() -> f64 {
    0.5
}

impl Default for IntentSettings {
    fn default() -> Self {
        IntentSettings {
            auto_tags: BTreeMap::new(),
            hot: default_hot(),
            lead_window_secs: default_lead_window(),
            min_confidence: default_min_confidence(),
        }
    }
}

/// Most tags per intent.
pub const MAX_TAGS_PER_INTENT: usize = 16;
/// Longest tag, in bytes (the wire format's limit for a tag).
const MAX_TAG_BYTES: usize = 128;

impl IntentSettings {
    /// Each fault with the field it is in.
    pub fn check(&self) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::InvalidDefinition(m));
        for (intent, tags) in &self.auto_tags {
            let field = format!("auto_tags.{}", intent.id());
            if tags.len() > MAX_TAGS_PER_INTENT {
                return bad(format!(
                    "{field}: {} tags; at most {MAX_TAGS_PER_INTENT}",
                    tags.len()
                ));
            }
            for (i, t) in tags.iter().enumerate() {
                if t.trim().is_empty() || t.len() > MAX_TAG_BYTES || t.trim() != t {
                    return bad(format!(
                        "{field}[{i}]: {t:?} must be 1 to {MAX_TAG_BYTES} bytes without surrounding spaces, e.g. \"询价客户\""
                    ));
                }
            }
        }
        if !(60..=30 * 86_400).contains(&self.lead_window_secs) {
            return bad(format!(
                "lead_window_secs: {}; give 60 to 2592000 seconds (30 days)",
                self.lead_window_secs
            ));
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return bad(format!(
                "min_confidence: {}; give a number from 0 to 1",
                self.min_confidence
            ));
        }
        Ok(())
    }

    /// The stored settings, else the defaults; a stored value that no
    /// longer reads is logged and the defaults apply (`PUT` checks
    /// every value before it is saved).
    pub fn from_setting(v: Option<Value>) -> IntentSettings {
        match v.map(serde_json::from_value::<IntentSettings>) {
            None => IntentSettings::default(),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "stored intent settings do not read; the defaults apply");
                IntentSettings::default()
            }
        }
    }
}

/// The confidence a message's intent was given with (a caller-given
/// intent without one: 1).
pub fn confidence_of(e: &Event) -> f64 {
    e.properties
        .as_ref()
        .and_then(|p| p.get(CONFIDENCE_PROPERTY))
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siyu_domain::{Channel, Identity};

    fn comment(text: &str) -> Event {
        let mut e = Event::new(
            1_790_000_000,
            Identity::parse("wecom:wm1").unwrap(),
            EventType::Comment,
            Channel::parse("wecom").unwrap(),
        );
        e.text = Some(text.into());
        e
    }

    #[test]
    fn comments_get_an_intent_and_a_given_one_is_kept() {
        let mut given = comment("多少钱");
        given.properties = Some(serde_json::Map::from_iter([(
            PROPERTY.to_string(),
            Value::String("complaint".into()),
        )]));
        let mut events = vec![comment("这个多少钱？"), given, comment("  ")];
        annotate(&mut events);
        let p = events[0].properties.as_ref().unwrap();
        assert_eq!(p[PROPERTY], "price");
        let c = p[CONFIDENCE_PROPERTY].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0, "{c}");
        assert_eq!(Intent::of_event(&events[1]), Some(Intent::Complaint));
        assert!(!events[1]
            .properties
            .as_ref()
            .unwrap()
            .contains_key(CONFIDENCE_PROPERTY));
        assert!(events[2].properties.is_none(), "no text, no intent");
        // Stored under the id its content had before the annotation.
        let plain = comment("这个多少钱？");
        let id = siyu_store::content_id(&siyu_store::EventRow::new(&plain).unwrap());
        assert!(id.starts_with("c:"), "{id}");
        assert_eq!(events[0].id.as_deref(), Some(id.as_str()));
        assert_eq!(events[1].id, None, "a stated intent changes nothing");
        // The inbox browser test's comment.
        assert_eq!(
            intent::classify("这个多少钱？可以私下转账吗").intent,
            Intent::Price
        );
    }

    #[test]
    fn settings_default_and_name_the_faulty_field() {
        let s: IntentSettings =
            serde_json::from_str(r#"{"auto_tags": {"price": ["询价客户"]}, "hot": ["购买意向"]}"#)
                .unwrap();
        assert_eq!(s.hot, [Intent::Buy]);
        assert_eq!(s.lead_window_secs, 86_400);
        s.check().unwrap();
        let mut bad = s.clone();
        bad.auto_tags.insert(Intent::Buy, vec![" ".into()]);
        let err = bad.check().unwrap_err().to_string();
        assert!(err.contains("auto_tags.buy[0]"), "{err}");
        let bad = IntentSettings {
            lead_window_secs: 1,
            ..s
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("lead_window_secs"));
    }
}
