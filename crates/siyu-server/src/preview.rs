//! A template rendered for a real person outside a send: the template
//! preview (`POST /v1/templates/{name}/preview`) and a quick reply filled
//! in for the customer being answered. The text must read exactly as a
//! sent message would, so its unsubscribe and content links are made the
//! same way and the person's link id is recorded, so they resolve.

use crate::error::ApiError;
use crate::request::{read_engine, with_store};
use crate::AppState;
use siyu_automation::template::{Compiled, Rendered};

/// `compiled` rendered for the person holding identity `person` on
/// `channel`: (their canonical identity, the rendered text). 404 for an
/// unknown person; 422 naming the person for a variable they lack.
pub async fn render_for_person(
    state: &AppState,
    compiled: &Compiled,
    person: &str,
    channel: &str,
) -> Result<(String, Rendered), ApiError> {
    let unknown = || {
        ApiError::NotFound(format!(
            "no person has identity `{person}`; use a full identity such as `wecom:wmA1`"
        ))
    };
    let canonical = {
        let engine = read_engine(state);
        crate::automation::person::PersonSnapshot::of(&engine, person).map(|s| s.canonical.clone())
    }
    .ok_or_else(unknown)?;
    let secret = state.0.link_secret.clone();
    with_store(state, move |store| {
        Ok(crate::links::remember(store, &secret, &canonical)?)
    })
    .await?;
    let engine = read_engine(state);
    let snap =
        crate::automation::person::PersonSnapshot::of(&engine, person).ok_or_else(unknown)?;
    let link = format!(
        "{}/u/{}",
        state.0.config.public_url.trim_end_matches('/'),
        crate::links::sign(&state.0.link_secret, "unsubscribe", &snap.canonical)
    );
    let vars = snap
        .vars(&link, &serde_json::Value::Null)
        .with_links(&state.0.config.public_url, &state.0.link_secret);
    let rendered = compiled
        .render(channel, &vars)
        .map_err(|e| ApiError::InvalidDefinition(format!("for {}: {e}", snap.canonical)))?;
    Ok((snap.canonical.clone(), rendered))
}
