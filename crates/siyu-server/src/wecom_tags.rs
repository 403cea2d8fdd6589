//! siyu tags to WeCom: a tag added or removed in siyu (an API identify,
//! a journey's or auto-reply's tag step, a live code's auto tags) on a
//! person with a `wecom:` identity becomes a `mark_tag` call for the
//! operator who owns the person (trait `operator`, set by the add
//! callback, the sync, live codes and hand-overs), queued in the outbox
//! by the executor (`Executor::push_wecom_tags`) and made by the
//! `wecom_api` connector (`siyu_connectors::wecom::calls`).
//!
//! No echo loop: events that came from WeCom — callbacks and the sync,
//! whose ids all start `wecom/` (`siyu_connectors::wecom::callback`) —
//! are never sent back; neither are history (backfill) events.

use serde_json::json;
use siyu_automation::machine::Action;
use siyu_connectors::wecom::calls::CALLS_CHANNEL;
use siyu_domain::Event;
use siyu_engine::Engine;

/// The id prefix of every event WeCom's callbacks and the sync make.
pub const WECOM_EVENT_ID_PREFIX: &str = "wecom/";

/// Whether `e` adds or removes tags and did not come from WeCom.
pub fn tags_changed_in_siyu(e: &Event) -> bool {
    e.traits
        .as_ref()
        .is_some_and(|t| !t.tags.is_empty() || !t.remove_tags.is_empty())
        && !e
            .id
            .as_deref()
            .is_some_and(|id| id.starts_with(WECOM_EVENT_ID_PREFIX))
}

/// The `mark_tag` calls `e` (applied at log `offset`) means: one per
/// `wecom:` identity of its person, for the person's operator; none when
/// the person has no wecom identity or no operator.
pub fn mark_tag_calls(engine: &Engine, e: &Event, offset: u64) -> Vec<(String, Action)> {
    if !tags_changed_in_siyu(e) {
        return Vec::new();
    }
    let Some(t) = &e.traits else {
        return Vec::new();
    };
    let Some(slot) = engine.person_of(e.identity.as_str()) else {
        return Vec::new();
    };
    let operator = engine
        .person(slot)
        .and_then(|p| p.extra.as_ref())
        .and_then(|x| x.traits().get("operator"))
        .and_then(|o| o.as_str())
        .map(str::to_string);
    let wecom: Vec<String> = engine
        .identities_of(slot)
        .into_iter()
        .filter(|i| i.starts_with("wecom:"))
        .collect();
    let Some(operator) = operator else {
        if !wecom.is_empty() {
            tracing::info!(identity = %e.identity.as_str(), "tags not sent to WeCom: the person has no operator (trait `operator`)");
        }
        return Vec::new();
    };
    wecom
        .into_iter()
        .map(|identity| {
            let external = identity.trim_start_matches("wecom:").to_string();
            let action = Action::ApiCall {
                key: format!("wecom_tag/@{offset}/{identity}"),
                channel: CALLS_CHANNEL.to_string(),
                call: json!({
                    "call": "mark_tag",
                    "userid": operator,
                    "external_userid": external,
                    "add": t.tags,
                    "remove": t.remove_tags,
                }),
                text: String::new(),
                template: None,
                class: None,
                expires_at: None,
            };
            (identity, action)
        })
        .collect()
}
