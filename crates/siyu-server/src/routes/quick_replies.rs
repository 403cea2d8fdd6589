//! Quick replies (话术库, `siyu_automation::quick_reply`): saved as the
//! settings `quick_reply/<id>`, each use counted by the store's atomic
//! counter `quick_reply_uses/<id>` (so every node counts into one number),
//! and filled in for a person like a template preview.

use crate::error::ApiError;
use crate::request::{parse_json, removal_audit, route, valid_id, with_store, Removed, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::quick_reply::QuickReply;
use siyu_automation::sensitive::Speaker;

use siyu_automation::quick_reply::{SETTINGS_PREFIX as PREFIX, USES_PREFIX};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/quick-replies", read, "Quick replies (话术库), shared and personal: `q` (every word in the title, text, group or keywords; case and full-width folded), `group`, `owner` (a console login: the team's shared replies and that login's own; without it only shared ones, or with `all=true` every one). Each with its use count; sorted by group, most used first.", list_quick_replies),
        route!(put, "/v1/quick-replies/{id}", write, "Save a quick reply: `{\"title\", \"text\", \"group\"?, \"owner\"?, \"keywords\"?}`. The text is a template (`{{name}}`, `{{trait.city | default: \"…\"}}`); every fault names its field. The answer lists the operator sensitive-word rules its text hits (`sensitive`).", put_quick_reply, body = QuickReply),
        route!(delete, "/v1/quick-replies/{id}", write, "Delete a quick reply (its use count goes with it).", delete_quick_reply, statuses = [404]),
        route!(post, "/v1/quick-replies/{id}/use", write, "Fill a quick reply in for a person (`{\"person\": identity, \"channel\"?}`) and count the use: answers the text to send (the operator still sends it: nothing is sent here).", use_quick_reply, body = UseBody, statuses = [404]),
    ]
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Words to find.
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    group: Option<String>,
    /// A console login: shared replies and this login's own.
    #[serde(default)]
    owner: Option<String>,
    /// Every reply, whoever owns it (an admin's view).
    #[serde(default)]
    all: bool,
}

/// One quick reply with its use count.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Listed {
    #[serde(flatten)]
    reply: QuickReply,
    uses: u64,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct QuickReplies {
    quick_replies: Vec<Listed>,
    /// Every group of the replies listed (for a filter), sorted.
    groups: Vec<String>,
}

async fn list_quick_replies(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<QuickReplies>, ApiError> {
    if let Some(owner) = &q.owner {
        // A query parameter: 400 (a body's fault is 422).
        valid_id(owner, "owner").map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::BadRequest(
            "q: at most 200 characters; search with fewer words".into(),
        ));
    }
    let (replies, uses) = with_store(&state, |store| {
        Ok((
            store.list_settings(PREFIX)?,
            store.list_settings(USES_PREFIX)?,
        ))
    })
    .await?;
    let uses: std::collections::HashMap<String, u64> = uses
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(USES_PREFIX)?.to_string(), v.as_u64()?)))
        .collect();
    let mut listed: Vec<Listed> = replies
        .into_iter()
        .filter_map(|(key, v)| {
            let mut reply: QuickReply = serde_json::from_value(v).ok()?;
            reply.id = key.strip_prefix(PREFIX)?.to_string();
            Some(reply)
        })
        .filter(|r| q.all || r.visible_to(q.owner.as_deref()))
        .filter(|r| q.group.as_ref().is_none_or(|g| &r.group == g))
        .filter(|r| q.q.as_ref().is_none_or(|s| r.matches(s)))
        .map(|reply| Listed {
            uses: uses.get(&reply.id).copied().unwrap_or(0),
            reply,
        })
        .collect();
    listed.sort_by(|a, b| {
        (&a.reply.group, std::cmp::Reverse(a.uses), &a.reply.title).cmp(&(
            &b.reply.group,
            std::cmp::Reverse(b.uses),
            &b.reply.title,
        ))
    });
    let mut groups: Vec<String> = listed.iter().map(|l| l.reply.group.clone()).collect();
    groups.sort();
    groups.dedup();
    Ok(Json(QuickReplies {
        quick_replies: listed,
        groups,
    }))
}

/// A saved quick reply, with the operator rules its text hits (saved
/// all the same: the operator sees the warning and decides).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Saved {
    #[serde(flatten)]
    reply: QuickReply,
    sensitive: Vec<crate::sensitive_words::Hit>,
}

async fn put_quick_reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Saved>, ApiError> {
    valid_id(&id, "id")?;
    let mut reply: QuickReply = parse_json(&body, "quick reply")?;
    if !reply.id.is_empty() && reply.id != id {
        return Err(ApiError::InvalidDefinition(format!(
            "id: the body says {:?} but the path {id:?}; omit it or make them equal",
            reply.id
        )));
    }
    reply.id = id.clone();
    reply
        .check()
        .map_err(|e| ApiError::InvalidDefinition(e.to_string()))?;
    let mut stored = serde_json::to_value(&reply).map_err(|e| ApiError::Internal(e.to_string()))?;
    // The id is the key's.
    if let Some(o) = stored.as_object_mut() {
        o.remove("id");
    }
    with_store(&state, move |store| {
        Ok(store.put_setting(&format!("{PREFIX}{id}"), Some(&stored))?)
    })
    .await?;
    let rules = crate::sensitive_words::current(&state).await?;
    let sensitive = crate::sensitive_words::hits(&rules, Speaker::Operator, &reply.text);
    Ok(Json(Saved { reply, sensitive }))
}

async fn delete_quick_reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    // A name no reply can have is simply not found (404).
    let n = id.clone();
    with_store(&state, move |store| {
        let key = format!("{PREFIX}{n}");
        if store.get_setting(&key)?.is_none() {
            return Err(ApiError::NotFound(format!(
                "no quick reply `{n}`; GET /v1/quick-replies lists them"
            )));
        }
        store.put_settings(&[(key, None), (format!("{USES_PREFIX}{n}"), None)])?;
        store.audit(&removal_audit(
            "delete_quick_reply",
            &n,
            serde_json::json!({}),
        ))?;
        Ok(())
    })
    .await?;
    Ok(Json(Removed::deleted("quick_reply", id)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UseBody {
    /// Any identity of the person being answered.
    person: String,
    /// The channel it will go out on (a template variant's; default wecom).
    #[serde(default)]
    channel: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Used {
    id: String,
    /// The person's canonical identity.
    person: String,
    /// The text to send.
    text: String,
    /// Uses so far, this one included.
    uses: u64,
}

async fn use_quick_reply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Used>, ApiError> {
    let body: UseBody = parse_json(&body, "use")?;
    let key = format!("{PREFIX}{id}");
    let stored: Option<Value> =
        with_store(&state, move |store| Ok(store.get_setting(&key)?)).await?;
    let Some(v) = stored else {
        return Err(ApiError::NotFound(format!(
            "no quick reply `{id}`; GET /v1/quick-replies lists them"
        )));
    };
    let mut reply: QuickReply =
        serde_json::from_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    reply.id = id.clone();
    let compiled = reply
        .check()
        .map_err(|e| ApiError::Internal(format!("stored quick reply {id}: {e}")))?;
    let channel = body.channel.unwrap_or_else(|| "wecom".into());
    let (canonical, rendered) =
        crate::preview::render_for_person(&state, &compiled, &body.person, &channel).await?;
    let text = rendered.body;
    let counter = format!("{USES_PREFIX}{id}");
    let uses = with_store(&state, move |store| Ok(store.increment_setting(&counter)?)).await?;
    Ok(Json(Used {
        id,
        person: canonical,
        text,
        uses,
    }))
}
