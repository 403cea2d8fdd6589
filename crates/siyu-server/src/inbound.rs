//! Inbound messages: the one path by which what a person sends on a
//! channel (a signed `/v1/inbound/{channel}` webhook, an Official
//! Account's text, an SMS reply) enters siyu. Each caller turns its own
//! request into events; this module checks that a channel writes only its
//! own identities and appends them through the writer, where the executor
//! sees them as it sees every event (keyword auto-replies, unsubscribe
//! replies, journey triggers). One function, so the channels cannot drift
//! apart in what they allow or in how their events reach automation.

use crate::error::ApiError;
use crate::AppState;
use siyu_domain::Event;

/// 403 unless the event's identity (and reference) are `channel:`
/// identities; `index` names the event in the message.
pub fn own_identities(channel: &str, index: usize, e: &Event) -> Result<(), ApiError> {
    for (field, id) in [
        ("identity", Some(&e.identity)),
        ("reference", e.reference.as_ref()),
    ] {
        if let Some(id) = id.filter(|id| id.channel() != channel) {
            return Err(ApiError::WrongChannel(format!(
                "events[{index}].{field}: the `{channel}` webhook may only write `{channel}:` identities, not `{}:…`; send it through that channel's own webhook",
                id.channel()
            )));
        }
    }
    Ok(())
}

/// Checks every event with [`own_identities`], flags comments that hit
/// a sensitive-word rule (`crate::sensitive_words::flag`), then appends
/// them all (nothing when one is refused); answers how many were appended.
pub async fn append(
    state: &AppState,
    channel: &str,
    mut events: Vec<Event>,
) -> Result<usize, ApiError> {
    for (i, e) in events.iter().enumerate() {
        own_identities(channel, i, e)?;
    }
    crate::sensitive_words::flag(state, &mut events).await?;
    let n = events.len();
    if n > 0 {
        state
            .0
            .writer
            .append(events)
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(n)
}
