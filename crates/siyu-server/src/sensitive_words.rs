//! The workspace's sensitive-word rules (`siyu_automation::sensitive`),
//! stored as the setting `sensitive/rules` and compiled once per stored
//! value: every node reads the setting when it needs the rules, so a
//! change on one node holds on all at their next message, with no reload
//! to follow. Customers' messages are flagged on their way in
//! ([`flag`]: `properties.sensitive` lists the rules hit, so the
//! timeline, segments and exports carry it); operators' texts are checked
//! where they are written (quick replies).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use siyu_automation::sensitive::{SensitiveRule, SensitiveRules, Speaker};
use siyu_domain::{Event, EventType};

use crate::error::ApiError;
use crate::request::with_store;
use crate::AppState;

pub const KEY: &str = "sensitive/rules";

/// The last compiled rules and the stored value they came from.
#[derive(Default)]
pub struct Cache(Mutex<Option<(Value, Arc<SensitiveRules>)>>);

fn empty() -> Arc<SensitiveRules> {
    Arc::new(SensitiveRules::compile(Vec::new()).expect("no rules compile"))
}

/// The rules as stored now (none when none are saved). A stored value
/// that no longer compiles flags nothing and is logged: `PUT` checks
/// every value before it is saved.
pub async fn current(state: &AppState) -> Result<Arc<SensitiveRules>, ApiError> {
    let stored = with_store(state, |store| Ok(store.get_setting(KEY)?)).await?;
    let Some(value) = stored else {
        return Ok(empty());
    };
    let cache = &state.0.sensitive_words;
    let mut slot = cache.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((v, rules)) = slot.as_ref() {
        if *v == value {
            return Ok(rules.clone());
        }
    }
    let rules = match serde_json::from_value::<Vec<SensitiveRule>>(value.clone())
        .map_err(|e| e.to_string())
        .and_then(|r| SensitiveRules::compile(r).map_err(|e| e.to_string()))
    {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(error = %e, "stored sensitive-word rules do not compile; none apply");
            empty()
        }
    };
    *slot = Some((value, rules.clone()));
    Ok(rules)
}

/// Marks each comment in `events` that hits a customer rule with
/// `properties.sensitive` = the ids of the rules hit.
pub async fn flag(state: &AppState, events: &mut [Event]) -> Result<(), ApiError> {
    if !events
        .iter()
        .any(|e| e.event_type == EventType::Comment && e.text.is_some())
    {
        return Ok(());
    }
    let rules = current(state).await?;
    if rules.rules().is_empty() {
        return Ok(());
    }
    for e in events
        .iter_mut()
        .filter(|e| e.event_type == EventType::Comment)
    {
        let Some(text) = &e.text else { continue };
        let hits: Vec<Value> = rules
            .check(Speaker::Customer, text)
            .iter()
            .map(|r| Value::String(r.id.clone()))
            .collect();
        if !hits.is_empty() {
            e.properties
                .get_or_insert_with(Default::default)
                .insert("sensitive".into(), Value::Array(hits));
        }
    }
    Ok(())
}

/// A rule a text hits.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Hit {
    pub id: String,
    pub category: String,
}

/// Rule ids recorded on a message (an archived operator message's
/// flags, a comment's `properties.sensitive`) as the API lists them, each
/// with its category in the current rules (empty for a rule since removed).
pub fn hits_of(rules: &SensitiveRules, ids: &[String]) -> Vec<Hit> {
    ids.iter()
        .map(|id| Hit {
            id: id.clone(),
            category: rules
                .rules()
                .iter()
                .find(|r| &r.id == id)
                .map(|r| r.category.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// The rules `text` hits for `speaker`, as the API lists them.
pub fn hits(rules: &SensitiveRules, speaker: Speaker, text: &str) -> Vec<Hit> {
    rules
        .check(speaker, text)
        .into_iter()
        .map(|r| Hit {
            id: r.id.clone(),
            category: r.category.clone(),
        })
        .collect()
}
