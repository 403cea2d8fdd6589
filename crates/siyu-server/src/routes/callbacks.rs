//! The channels' own callbacks: WeCom (企业微信) posts to
//! `/callbacks/wecom` (the default workspace) or `/callbacks/wecom/{workspace}`
//! (WeCom cannot send our headers, so the workspace is in the path;
//! `workspace.rs` routes on it).
//!
//! `GET` is WeCom's URL verification: the signature over `echostr` is
//! checked and the decrypted `echostr` answered as text. It stores
//! nothing, so it is not held to the timestamp window (WeCom's admin
//! console and Tencent's published example both verify with it).
//! `POST` is a callback: `msg_signature` over `<Encrypt>`, a `timestamp`
//! within [`CALLBACK_TOLERANCE_SECS`] of the server clock either way, the
//! plaintext's corp id = `[connectors.wecom] corp_id`; then
//! `siyu_connectors::wecom::callback::map_callback` says what it means and
//! the events go to the writer like every other event. Every refusal
//! (401 `bad_signature`, 400 `bad_request`) happens before anything is
//! stored. WeCom retries a callback it got no answer to: the events' ids
//! come from the callback's content, so the log stores a retry's events
//! once. A customer-service callback (`kf_msg_or_event`) carries only a
//! token: its messages are read with `kf/sync_msg` (the cursor kept in
//! the setting `wecom/kf_cursor/<open_kfid>`) and the customers' texts
//! appended as `comment` events, which keyword auto-replies and journeys
//! see as they see `/v1/inbound/{channel}`'s. A friend added through a
//! live code's WeCom QR code (`State` = the code's id) gets the code's
//! touch, and, for a WeCom-backed code, its tags and the operator as
//! owner; a customer joining a group through a WeCom-backed code's join
//! way (JoinScene 3) gets its touch and tags, the `state` read with
//! `groupchat/get`; a `transfer_fail` updates the hand-over transfers waiting on
//! that customer (`crate::wecom_ops`).

use crate::error::ApiError;
use crate::ratelimit::{self, Peer};
use crate::request::{blocking, now, read_body, read_engine, route, with_store, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use siyu_connectors::wecom::callback::{self, CallbackXml, KfPull, Mapped};
use siyu_connectors::wecom::crypto::{CallbackCrypto, CryptoError};
use siyu_connectors::WeComConnector;
use siyu_domain::{Event, EventType};
use std::sync::Arc;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/callbacks/wecom", inbound, "WeCom URL verification (接收事件服务器): `msg_signature` over `echostr` with `[connectors.wecom] token`; answers the decrypted `echostr` as text/plain.", verify_url, answer_media = "text/plain", statuses = [404]),
        route!(post, "/callbacks/wecom", inbound, "WeCom callback (XML with `Encrypt`): signature, timestamp (within 300 s) and corp id checked, then the customer contact, customer group and customer-service (kf) events become siyu events, once however often WeCom retries. Answers 200 with an empty body.", receive, body_media = "text/xml, application/xml", statuses = [404]),
        route!(get, "/callbacks/wecom/{workspace}", inbound, "WeCom URL verification for a workspace (`/callbacks/wecom/{workspace}`: WeCom cannot send the X-Siyu-Workspace header).", verify_url_in, answer_media = "text/plain"),
        route!(post, "/callbacks/wecom/{workspace}", inbound, "WeCom callback for a workspace.", receive_in, body_media = "text/xml, application/xml"),
    ]
}

/// How far a callback's `timestamp` may be from the server clock, either
/// way.
pub const CALLBACK_TOLERANCE_SECS: i64 = 300;
/// The largest callback body read (the envelope XML around `Encrypt`).
pub const MAX_CALLBACK_BODY: usize = callback::MAX_XML_BYTES;
/// `kf/sync_msg` pages read for one callback (1,000 messages each); the
/// rest is read at the next callback, from the stored cursor.
const MAX_KF_PAGES: usize = 10;

/// What the WeCom callbacks need, built from `[connectors.wecom]` when it
/// has `token` and `encoding_aes_key`.
pub struct WeComCallbacks {
    crypto: CallbackCrypto,
    /// For `kf/sync_msg` (the app's `secret`).
    client: WeComConnector,
}

impl WeComCallbacks {
    /// `None` when the callbacks are not configured.
    pub fn from_config(
        cfg: &siyu_connectors::ConnectorsConfig,
    ) -> Result<Option<Arc<WeComCallbacks>>, siyu_connectors::ConfigError> {
        let Some(w) = &cfg.wecom else {
            return Ok(None);
        };
        let Some(crypto) = w.callback()? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(WeComCallbacks {
            crypto,
            client: WeComConnector::new(w)?,
        })))
    }
}

/// `msg_signature`, `timestamp`, `nonce` (and `echostr` for the URL
/// verification), as WeCom puts them in the query. All are needed; a
/// request without them is 401.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Signed {
    /// SHA-1 (hex) of the sorted token, timestamp, nonce and message.
    msg_signature: Option<String>,
    /// Epoch seconds.
    timestamp: Option<String>,
    nonce: Option<String>,
    /// URL verification only: the encrypted random string to answer.
    echostr: Option<String>,
}

async fn verify_url(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<Signed>,
) -> Result<Response, ApiError> {
    verify(&state, &peer, &headers, q).await
}

async fn verify_url_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<Signed>,
) -> Result<Response, ApiError> {
    this_workspace(&state, &workspace)?;
    verify(&state, &peer, &headers, q).await
}

async fn receive(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<Signed>,
    body: Body,
) -> Result<Response, ApiError> {
    accept(&state, &peer, &headers, q, body).await
}

async fn receive_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<Signed>,
    body: Body,
) -> Result<Response, ApiError> {
    this_workspace(&state, &workspace)?;
    accept(&state, &peer, &headers, q, body).await
}

/// The path's workspace must be the one serving the request (the front
/// router sends `/callbacks/wecom/{name}` to workspace `name`).
fn this_workspace(state: &AppState, workspace: &str) -> Result<(), ApiError> {
    if workspace == state.0.config.workspace {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "no such workspace; the callback URL is /callbacks/wecom/<workspace name> (or /callbacks/wecom for the default one)".into(),
        ))
    }
}

/// The signed query's three parts, or 401 naming the missing one.
fn signed_parts(q: &Signed) -> Result<(&str, &str, &str), ApiError> {
    fn part<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
        v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            ApiError::BadSignature(format!(
                "`{name}` is missing from the query; WeCom sends msg_signature, timestamp and nonce"
            ))
        })
    }
    Ok((
        part(&q.msg_signature, "msg_signature")?,
        part(&q.timestamp, "timestamp")?,
        part(&q.nonce, "nonce")?,
    ))
}

fn configured(state: &AppState) -> Result<&WeComCallbacks, ApiError> {
    state.0.wecom_callbacks.as_deref().ok_or_else(|| {
        ApiError::NotFound(
            "WeCom callbacks are not configured: set token, encoding_aes_key and corp_id in [connectors.wecom] (or SIYU_CONNECTORS__WECOM__TOKEN / __ENCODING_AES_KEY)".into(),
        )
    })
}

fn crypto_error(e: CryptoError) -> ApiError {
    match e {
        CryptoError::BadSignature => ApiError::BadSignature(e.to_string()),
        other => ApiError::BadRequest(format!("WeCom callback: {other}")),
    }
}

async fn verify(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    q: Signed,
) -> Result<Response, ApiError> {
    ratelimit::check(state, ratelimit::Limit::Inbound, peer, headers)?;
    let (signature, timestamp, nonce) = signed_parts(&q)?;
    let echostr = q.echostr.as_deref().unwrap_or("");
    let wecom = configured(state)?;
    let echo = wecom
        .crypto
        .open(signature, timestamp, nonce, echostr)
        .map_err(crypto_error)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echo,
    )
        .into_response())
}

/// 401 unless `timestamp` is epoch seconds within the window of `now`;
/// the message says which side and by how much.
fn check_fresh(timestamp: &str, now: i64) -> Result<(), ApiError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| {
        ApiError::BadSignature(format!("timestamp {timestamp:?} is not epoch seconds"))
    })?;
    let skew = now - ts;
    if skew > CALLBACK_TOLERANCE_SECS {
        return Err(ApiError::BadSignature(format!(
            "timestamp {ts} is {skew} s older than the server clock; a callback is accepted within {CALLBACK_TOLERANCE_SECS} s of it (a replay, or a clock to fix)"
        )));
    }
    if -skew > CALLBACK_TOLERANCE_SECS {
        return Err(ApiError::BadSignature(format!(
            "timestamp {ts} is {} s newer than the server clock; a callback is accepted within {CALLBACK_TOLERANCE_SECS} s of it (check the server's clock)",
            -skew
        )));
    }
    Ok(())
}

async fn accept(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    q: Signed,
    body: Body,
) -> Result<Response, ApiError> {
    ratelimit::check(state, ratelimit::Limit::Inbound, peer, headers)?;
    let (signature, timestamp, nonce) = signed_parts(&q)?;
    let wecom = configured(state)?;
    let at = now();
    check_fresh(timestamp, at)?;
    let limit = MAX_CALLBACK_BODY.min(state.0.config.max_body_bytes);
    let bytes = read_body(body, limit).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("the callback body is not UTF-8".into()))?;
    let envelope = CallbackXml::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("WeCom callback body: {e}")))?;
    let encrypted = envelope
        .get("Encrypt")
        .ok_or_else(|| ApiError::BadRequest("WeCom callback body: <Encrypt> is missing".into()))?;
    let plain = wecom
        .crypto
        .open(signature, timestamp, nonce, encrypted)
        .map_err(crypto_error)?;
    let message = CallbackXml::parse(&plain)
        .map_err(|e| ApiError::BadRequest(format!("WeCom callback message: {e}")))?;
    let mapped = callback::map_callback(&message)
        .map_err(|e| ApiError::BadRequest(format!("WeCom callback message: {e}")))?;
    let mut events = mapped.events.clone();
    events.splice(0..0, live_code_touches(state, &mapped).await);
    events.splice(0..0, join_way_touches(state, &mapped).await);
    if let Some(chat) = &mapped.dismissed_group {
        events.extend(dismissal(state, chat, &message).await?);
    }
    tracing::info!(
        kind = %mapped.kind,
        events = events.len(),
        note = mapped.note.as_deref().unwrap_or(""),
        "wecom callback"
    );
    if !events.is_empty() {
        state
            .0
            .writer
            .append(events)
            .await
            .map_err(ApiError::Internal)?;
    }
    if let Some(pull) = &mapped.kf_pull {
        pull_kf(state, wecom, pull).await?;
    }
    if mapped.kind == "change_external_contact/transfer_fail" {
        // A hand-over's customer the takeover member did not get.
        if let (Some(takeover), Some(customer)) =
            (message.get("UserID"), message.get("ExternalUserID"))
        {
            let reason = message.get("FailReason").unwrap_or("");
            let jobs =
                crate::wecom_ops::transfer_failed(state, takeover, customer, reason, at).await?;
            tracing::info!(%takeover, %customer, %reason, jobs, "wecom transfer_fail");
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// A friend added through a 「联系我」 whose `state` is a siyu live code's
/// id: the live code's touch (its source channel, the code, the
/// operator), one second before the add, so a newcomer's first touch is
/// the channel that brought them. The same touch, with the same id, as a
/// claimed visit of the code's link.
async fn live_code_touches(state: &AppState, mapped: &Mapped) -> Vec<Event> {
    let adds: Vec<(String, String, siyu_domain::Identity, i64)> = mapped
        .events
        .iter()
        .filter(|e| e.event_type == EventType::AddFriend)
        .filter_map(|e| {
            let p = e.properties.as_ref()?;
            let code = p.get("state")?.as_str()?.to_string();
            let operator = p.get("operator")?.as_str()?.to_string();
            Some((code, operator, e.identity.clone(), e.ts))
        })
        .collect();
    if adds.is_empty() {
        return Vec::new();
    }
    let found = with_store(state, move |store| {
        let mut touches = Vec::new();
        for (code_id, operator, identity, ts) in adds {
            if !siyu_automation::journey::valid_name(&code_id) {
                continue;
            }
            match siyu_growth::community::livecode::load_livecode(store, &code_id) {
                // The code's own WeCom QR code: no link visit tags the
                // newcomer or names their owner, the callback does.
                Ok(Some(code)) if code.backing.is_some() => {
                    touches.extend(siyu_growth::community::livecode::wecom_scan_events(
                        &code_id,
                        &code,
                        &siyu_growth::community::Target::Operator(operator),
                        &identity,
                        ts,
                    ));
                }
                Ok(Some(code)) => {
                    touches.push(siyu_growth::community::livecode::channel_scan_touch(
                        &code_id,
                        &code,
                        &operator,
                        &identity,
                        ts - 1,
                    ))
                }
                Ok(None) => {}
                // An unreadable definition does not lose the friend add.
                Err(e) => tracing::warn!(%code_id, error = %e, "live code of a wecom state"),
            }
        }
        Ok(touches)
    })
    .await;
    found.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "live codes of wecom states");
        Vec::new()
    })
}

/// Customers who joined a group by scanning a QR code (`JoinScene` 3)
/// that is a WeCom-backed live code's join way: the member-change
/// callback does not say which way, so the group's members are read
/// (`groupchat/get`, only for groups some join way holds) and each
/// joining customer whose `state` is such a code gets its touch and tags.
/// A failed read loses the attribution, never the join.
async fn join_way_touches(state: &AppState, mapped: &Mapped) -> Vec<Event> {
    use siyu_growth::community::livecode::{self, WeComWayKind};
    let joins: Vec<(String, siyu_domain::Identity, i64)> = mapped
        .events
        .iter()
        .filter(|e| e.event_type == EventType::JoinGroup)
        .filter(|e| {
            e.properties
                .as_ref()
                .and_then(|p| p.get("scene"))
                .and_then(|s| s.as_str())
                == Some("qr_code")
        })
        .filter_map(|e| Some((e.group.clone()?, e.identity.clone(), e.ts)))
        .collect();
    let Some(wecom) = state.0.wecom.clone() else {
        return Vec::new();
    };
    if joins.is_empty() {
        return Vec::new();
    }
    let chats: std::collections::BTreeSet<String> = joins.iter().map(|j| j.0.clone()).collect();
    let wanted = chats.clone();
    let codes = with_store(state, move |store| {
        let mut skipped = Vec::new();
        let codes = livecode::list_livecodes(store, &mut skipped)?;
        Ok(codes
            .into_iter()
            .filter(|c| {
                c.wecom.as_ref().is_some_and(|w| {
                    w.kind == WeComWayKind::JoinWay && w.members.iter().any(|m| wanted.contains(m))
                })
            })
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "live codes of wecom join ways");
        Vec::new()
    });
    let mut events = Vec::new();
    for chat in chats {
        let held: Vec<_> = codes
            .iter()
            .filter(|c| c.wecom.as_ref().is_some_and(|w| w.members.contains(&chat)))
            .collect();
        if held.is_empty() {
            continue;
        }
        let states = match wecom.join_states(&chat).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%chat, error = %e, "wecom groupchat/get: joins not attributed");
                continue;
            }
        };
        for (_, identity, ts) in joins.iter().filter(|j| j.0 == chat) {
            let Some(external) = identity.as_str().strip_prefix("wecom:") else {
                continue;
            };
            let Some((_, code_state)) = states.iter().find(|(u, _)| u == external) else {
                continue;
            };
            if let Some(code) = held.iter().find(|c| &c.id == code_state) {
                events.extend(livecode::wecom_scan_events(
                    &code.id,
                    &code.code,
                    &siyu_growth::community::Target::Group(chat.clone()),
                    identity,
                    *ts,
                ));
            }
        }
    }
    events
}

/// A dismissed customer group: every member the engine has in it leaves.
async fn dismissal(
    state: &AppState,
    chat: &str,
    message: &CallbackXml,
) -> Result<Vec<Event>, ApiError> {
    let s = state.clone();
    let group = chat.to_string();
    let members = blocking(move || {
        let engine = read_engine(&s);
        let mut members = Vec::new();
        for (slot, p) in engine.persons() {
            // A person's groups are kept sorted (`PersonExtra::groups`).
            let in_group = p
                .extra
                .as_deref()
                .is_some_and(|e| e.groups.binary_search(&group).is_ok());
            if in_group {
                if let Some(id) = engine
                    .identities_of(slot)
                    .into_iter()
                    .find(|i| i.starts_with("wecom:"))
                {
                    members.push(id);
                }
            }
        }
        Ok(members)
    })
    .await?;
    callback::leave_events(chat, &members, message)
        .map_err(|e| ApiError::BadRequest(format!("WeCom callback message: {e}")))
}

/// Reads the customer-service messages a `kf_msg_or_event` announced,
/// from the stored cursor, and appends the customers' texts. A failed
/// read answers 500, so WeCom sends the callback again (its token lasts
/// 10 minutes); what was appended stays, once, by its ids.
async fn pull_kf(state: &AppState, wecom: &WeComCallbacks, pull: &KfPull) -> Result<(), ApiError> {
    let key = format!(
        "wecom/kf_cursor/{}",
        pull.open_kfid.as_deref().unwrap_or("all")
    );
    let cursor_key = key.clone();
    let mut cursor: String = with_store(state, move |store| {
        Ok(store
            .get_setting(&cursor_key)?
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default())
    })
    .await?;
    for _ in 0..MAX_KF_PAGES {
        let page = wecom
            .client
            .kf_sync_msg(&cursor, &pull.token, pull.open_kfid.as_deref())
            .await
            .map_err(|e| ApiError::Internal(format!("wecom kf/sync_msg: {e}")))?;
        let (events, skipped) = callback::kf_events(&page.messages);
        tracing::info!(
            messages = page.messages.len(),
            stored = events.len(),
            skipped,
            "wecom kf/sync_msg"
        );
        if !events.is_empty() {
            state
                .0
                .writer
                .append(events)
                .await
                .map_err(ApiError::Internal)?;
        }
        if !page.next_cursor.is_empty() && page.next_cursor != cursor {
            cursor = page.next_cursor.clone();
            let (k, v) = (key.clone(), serde_json::Value::String(cursor.clone()));
            with_store(state, move |store| Ok(store.put_setting(&k, Some(&v))?)).await?;
        }
        if !page.has_more {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_fresh_within_the_window_either_way() {
        let now = 1_800_000_000;
        assert!(check_fresh("1800000000", now).is_ok());
        assert!(check_fresh("1799999700", now).is_ok());
        assert!(check_fresh("1800000300", now).is_ok());
        let old = check_fresh("1799999699", now).unwrap_err().to_string();
        assert!(old.contains("301 s older"), "{old}");
        let new = check_fresh("1800000301", now).unwrap_err().to_string();
        assert!(new.contains("301 s newer"), "{new}");
        assert!(check_fresh("soon", now).is_err());
    }
}
