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
//! that customer (`crate::wecom_ops`). An add with a `WelcomeCode`
//! queues the configured welcome (`crate::wecom_welcome`); an
//! `edit_external_contact` (a member changed the customer's remark or
//! tags) reads the customer's corp tags and brings them into siyu.
//!
//! A WeChat Official Account (公众号) posts to `/callbacks/wechat` or
//! `/callbacks/wechat/{workspace}`: `GET` answers `echostr` when
//! `signature` (SHA-1 of the sorted token, timestamp and nonce) matches;
//! `POST` is checked the same way and, in safe mode (`encoding_aes_key`
//! set: `encrypt_type=aes`, `msg_signature`, `<Encrypt>`), decrypted with
//! the one WXBizMsgCrypt implementation with the appid as receiver. With a
//! key configured, plaintext callbacks are refused: their signature does
//! not cover the body. The timestamp window, and the refusals before
//! anything is stored, are WeCom's. Follows, unfollows and QR scans become
//! events (`siyu_connectors::wechat::callback`); texts go through
//! `crate::inbound`, the path of `/v1/inbound/{channel}`.
//! `POST /v1/wechat/qrcodes` makes the parametric QR codes whose scenes
//! name a campaign or a source channel.
//!
//! Tencent Cloud SMS posts delivery receipts and replies to
//! `/callbacks/sms/tencent/{token}/status` and `/reply`; it cannot sign
//! them, so the URL carries an opaque token (`links::callback_token` of
//! the workspace, listed by `GET /v1/connectors`). A receipt names the
//! message by `sid` (the `SerialNo` `SendSms` answered, which the executor
//! keeps as the setting `sms/sid/<sid>` → outbox key) and is recorded on
//! that outbox row (`delivered`, or `undelivered` and dead-lettered). A
//! reply `TD`, `T`, `退订` or `N` revokes the number's SMS consent; any
//! other reply is an inbound message on `phone_hmac:` (`crate::inbound`).

use crate::error::ApiError;
use crate::ratelimit::{self, Peer};
use crate::request::{blocking, now, read_body, read_engine, route, with_store, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use siyu_connectors::wechat::callback as oa;
use siyu_connectors::wechat::{CallbackSettings, QrCode, WeChatOfficialConnector};
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
        route!(get, "/callbacks/wechat", inbound, "WeChat Official Account server verification (服务器配置): `signature` = SHA-1 of the sorted token, timestamp and nonce with `[connectors.wechat] token`; answers `echostr` as text/plain.", wechat_verify, answer_media = "text/plain", statuses = [404]),
        route!(post, "/callbacks/wechat", inbound, "WeChat Official Account callback (XML; safe mode: `encrypt_type=aes`, `msg_signature`, `<Encrypt>`): signature, timestamp (within 300 s) and appid checked, then subscribe/unsubscribe/SCAN become follow/unfollow/touch (a siyu QR's scene as `source` or `campaign`) and texts inbound messages, once however often WeChat retries. Answers `success`.", wechat_receive, body_media = "text/xml, application/xml", answer_media = "text/plain", statuses = [404]),
        route!(get, "/callbacks/wechat/{workspace}", inbound, "WeChat Official Account verification for a workspace (`/callbacks/wechat/{workspace}`).", wechat_verify_in, answer_media = "text/plain"),
        route!(post, "/callbacks/wechat/{workspace}", inbound, "WeChat Official Account callback for a workspace.", wechat_receive_in, body_media = "text/xml, application/xml", answer_media = "text/plain"),
        route!(post, "/callbacks/sms/tencent/{token}/status", inbound, "Tencent Cloud SMS delivery receipts (JSON array of `{user_receive_time, nationcode, mobile, report_status, errmsg, description, sid}`); `{token}` is the workspace's opaque callback token (GET /v1/connectors). Each `sid` names the message it reports on; its outbox row is marked delivered or undelivered.", sms_status, body = (Vec<SmsReceipt>), statuses = [404]),
        route!(post, "/callbacks/sms/tencent/{token}/reply", inbound, "Tencent Cloud SMS replies (JSON array of `{extend, mobile, nationcode, sign, text, time}`): `TD`, `T`, `退订` or `N` revokes the number's SMS consent; other texts are inbound messages (auto-replies, journeys).", sms_reply, body = (Vec<SmsReply>), statuses = [404]),
        route!(post, "/v1/wechat/qrcodes", write, "Create a WeChat Official Account parametric QR code (`cgi-bin/qrcode/create`) whose scene is a campaign (`{\"campaign\": id}`) or a source channel (`{\"channel\": name}`); temporary with `expire_seconds` (≤ 2592000), else permanent. Answers the ticket, its URL and the image URL (`showqrcode?ticket=`). A follow through it records the source.", create_qrcode, body = QrBody, statuses = [404]),
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

/// What an Official Account needs: its connector (QR codes, sends) and,
/// when `token` is set, how its callbacks are checked.
pub struct WeChatOa {
    callbacks: Option<CallbackSettings>,
    client: WeChatOfficialConnector,
}

impl WeChatOa {
    /// The account's API client (its token health is the channel page's).
    pub fn client(&self) -> &WeChatOfficialConnector {
        &self.client
    }

    /// `None` without `[connectors.wechat]`.
    pub fn from_config(
        cfg: &siyu_connectors::ConnectorsConfig,
    ) -> Result<Option<Arc<WeChatOa>>, siyu_connectors::ConfigError> {
        let Some(w) = &cfg.wechat else {
            return Ok(None);
        };
        Ok(Some(Arc::new(WeChatOa {
            callbacks: w.callback()?,
            client: WeChatOfficialConnector::new(w)?,
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
    let activity = &state.0.channel_activity;
    activity.observe("wecom", verify(&state, &peer, &headers, q).await)
}

async fn verify_url_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<Signed>,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe(
        "wecom",
        match this_workspace(&state, &workspace) {
            Ok(()) => verify(&state, &peer, &headers, q).await,
            Err(e) => Err(e),
        },
    )
}

async fn receive(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<Signed>,
    body: Body,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe("wecom", accept(&state, &peer, &headers, q, body).await)
}

async fn receive_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<Signed>,
    body: Body,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe(
        "wecom",
        match this_workspace(&state, &workspace) {
            Ok(()) => accept(&state, &peer, &headers, q, body).await,
            Err(e) => Err(e),
        },
    )
}

/// The path's workspace must be the one serving the request (the front
/// router sends `/callbacks/wecom/{name}` to workspace `name`).
fn this_workspace(state: &AppState, workspace: &str) -> Result<(), ApiError> {
    this_workspace_of(state, workspace, "wecom")
}

fn this_workspace_of(state: &AppState, workspace: &str, channel: &str) -> Result<(), ApiError> {
    if workspace == state.0.config.workspace {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no such workspace; the callback URL is /callbacks/{channel}/<workspace name> (or /callbacks/{channel} for the default one)"
        )))
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
    let activity = &state.0.channel_activity;
    activity.accepted("wecom", "url verification", now());
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
    welcome(state, &mapped.events, at).await;
    if mapped.kind == "change_external_contact/edit_external_contact" {
        if let (Some(customer), Some(ts)) = (
            message.get("ExternalUserID"),
            message
                .get("CreateTime")
                .and_then(|t| t.parse::<i64>().ok()),
        ) {
            edited_tags(state, wecom, customer, ts).await;
        }
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
    state.0.channel_activity.accepted("wecom", &mapped.kind, at);
    Ok(StatusCode::OK.into_response())
}

/// A member edited a customer (remark, tags …): the customer's corp tags
/// are read (`externalcontact/get`) and the person's siyu tags made to
/// match them (`siyu_connectors::wecom::sync::tags_event`: an `identify`
/// whose id starts `wecom/`, so it is never sent back). A failed read is
/// logged: the edit itself is stored, and the next sync brings the tags.
async fn edited_tags(state: &AppState, wecom: &WeComCallbacks, customer: &str, ts: i64) {
    let detail = match wecom.client.contact(customer).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(%customer, error = %e, "wecom externalcontact/get for an edit");
            return;
        }
    };
    let corp = match wecom.client.corp_tags().await {
        Ok(g) => siyu_connectors::wecom::tags::CorpTags::from_groups(&g),
        Err(e) => {
            tracing::warn!(error = %e, "wecom get_corp_tag_list for an edit");
            return;
        }
    };
    let identity = format!("wecom:{customer}");
    let person_tags: Vec<String> = {
        let engine = read_engine(state);
        engine
            .person_of(&identity)
            .and_then(|slot| engine.person(slot))
            .and_then(|p| p.extra.as_ref())
            .map(|x| x.tags().to_vec())
            .unwrap_or_default()
    };
    let event = siyu_connectors::wecom::sync::tags_event(&detail, ts, &person_tags, |t| {
        corp.ids.contains_key(t)
    });
    match event {
        Ok(Some(e)) => {
            if let Err(err) = state.0.writer.append(vec![e]).await {
                tracing::warn!(%customer, error = %err, "wecom tags of an edit not stored");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(%customer, error = %e, "wecom tags of an edit"),
    }
}

/// An add carrying a `WelcomeCode`: the configured welcome is queued at
/// once (`crate::wecom_welcome`; its 20 s start now). A failure to queue
/// it is logged, not answered: the add is stored, and a retried callback
/// would come too late for the code anyway.
async fn welcome(state: &AppState, events: &[Event], now: i64) {
    if !events.iter().any(|e| {
        e.event_type == EventType::AddFriend
            && e.properties
                .as_ref()
                .is_some_and(|p| p.contains_key("welcome_code"))
    }) {
        return;
    }
    let events = events.to_vec();
    let calls = with_store(state, move |store| {
        Ok(crate::wecom_welcome::welcome_calls(store, &events, now)?)
    })
    .await;
    let calls = match calls {
        Ok(c) if c.is_empty() => return,
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "wecom welcome not queued");
            return;
        }
    };
    let n = calls.len();
    let items = calls.into_iter().map(|(i, a)| (i, a, None)).collect();
    match state.0.automation.enqueue(items).await {
        Ok(()) => tracing::info!(welcomes = n, "wecom welcome queued"),
        Err(e) => tracing::warn!(error = %e, "wecom welcome not queued"),
    }
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
        let code = engine.group_names().code(&group);
        for (slot, p) in engine.persons() {
            let in_group = code.is_some_and(|c| p.extra.as_deref().is_some_and(|e| e.in_group(c)));
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
        let (mut events, skipped) = callback::kf_events(&page.messages);
        crate::sensitive_words::flag(state, &mut events).await?;
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

// ---------- WeChat Official Account ----------

/// What an Official Account puts in a callback's query: `signature`,
/// `timestamp`, `nonce` always; `echostr` on the server verification;
/// `openid`, and in safe mode `encrypt_type=aes` and `msg_signature`, on
/// a message.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct OaSigned {
    /// SHA-1 (hex) of the sorted token, timestamp and nonce.
    signature: Option<String>,
    /// Epoch seconds.
    timestamp: Option<String>,
    nonce: Option<String>,
    /// Server verification only: the string to answer.
    echostr: Option<String>,
    /// The follower (also in the XML's FromUserName).
    #[allow(dead_code)]
    openid: Option<String>,
    /// `aes` in safe mode.
    encrypt_type: Option<String>,
    /// Safe mode: SHA-1 of the sorted token, timestamp, nonce and `<Encrypt>`.
    msg_signature: Option<String>,
}

fn oa_configured(state: &AppState) -> Result<(&WeChatOa, &CallbackSettings), ApiError> {
    state
        .0
        .wechat_oa
        .as_deref()
        .and_then(|w| w.callbacks.as_ref().map(|c| (w, c)))
        .ok_or_else(|| {
            ApiError::NotFound(
                "Official Account callbacks are not configured: set token (and for safe mode encoding_aes_key) in [connectors.wechat] (or SIYU_CONNECTORS__WECHAT__TOKEN / __ENCODING_AES_KEY)".into(),
            )
        })
}

fn oa_part<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::BadSignature(format!(
            "`{name}` is missing from the query; WeChat sends signature, timestamp and nonce"
        ))
    })
}

/// 401 naming the first of `signature`, `timestamp`, `nonce` missing.
fn oa_parts(q: &OaSigned) -> Result<(), ApiError> {
    oa_part(&q.signature, "signature")?;
    oa_part(&q.timestamp, "timestamp")?;
    oa_part(&q.nonce, "nonce")?;
    Ok(())
}

/// 401 unless `signature` is the SHA-1 of the sorted token, timestamp
/// and nonce.
fn oa_signature(settings: &CallbackSettings, q: &OaSigned) -> Result<(), ApiError> {
    let signature = oa_part(&q.signature, "signature")?;
    let timestamp = oa_part(&q.timestamp, "timestamp")?;
    let nonce = oa_part(&q.nonce, "nonce")?;
    if oa::signature_matches(&settings.token, timestamp, nonce, signature) {
        Ok(())
    } else {
        Err(ApiError::BadSignature(
            "signature does not match the SHA-1 of the sorted token, timestamp and nonce (check the Token in 设置与开发 → 基本配置 → 服务器配置 against [connectors.wechat] token)".into(),
        ))
    }
}

async fn wechat_verify(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<OaSigned>,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe("wechat", oa_verify(&state, &peer, &headers, q).await)
}

async fn wechat_verify_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<OaSigned>,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe(
        "wechat",
        match this_workspace_of(&state, &workspace, "wechat") {
            Ok(()) => oa_verify(&state, &peer, &headers, q).await,
            Err(e) => Err(e),
        },
    )
}

async fn wechat_receive(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<OaSigned>,
    body: Body,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe("wechat", oa_accept(&state, &peer, &headers, q, body).await)
}

async fn wechat_receive_in(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(workspace): Path<String>,
    Query(q): Query<OaSigned>,
    body: Body,
) -> Result<Response, ApiError> {
    let activity = &state.0.channel_activity;
    activity.observe(
        "wechat",
        match this_workspace_of(&state, &workspace, "wechat") {
            Ok(()) => oa_accept(&state, &peer, &headers, q, body).await,
            Err(e) => Err(e),
        },
    )
}

fn text_answer(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn oa_verify(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    q: OaSigned,
) -> Result<Response, ApiError> {
    ratelimit::check(state, ratelimit::Limit::Inbound, peer, headers)?;
    oa_parts(&q)?;
    let (_, settings) = oa_configured(state)?;
    oa_signature(settings, &q)?;
    Ok(text_answer(q.echostr.unwrap_or_default()))
}

fn oa_crypto_error(e: CryptoError) -> ApiError {
    match e {
        CryptoError::BadSignature => ApiError::BadSignature(e.to_string()),
        other => ApiError::BadRequest(format!("WeChat callback: {other}")),
    }
}

async fn oa_accept(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    q: OaSigned,
    body: Body,
) -> Result<Response, ApiError> {
    ratelimit::check(state, ratelimit::Limit::Inbound, peer, headers)?;
    oa_parts(&q)?;
    let (_, settings) = oa_configured(state)?;
    oa_signature(settings, &q)?;
    let timestamp = oa_part(&q.timestamp, "timestamp")?;
    let nonce = oa_part(&q.nonce, "nonce")?;
    check_fresh(timestamp, now())?;
    let limit = MAX_CALLBACK_BODY.min(state.0.config.max_body_bytes);
    let bytes = read_body(body, limit).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("the callback body is not UTF-8".into()))?;
    let envelope = CallbackXml::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("WeChat callback body: {e}")))?;
    let safe = q.encrypt_type.as_deref() == Some("aes");
    let message = match (&settings.crypto, safe) {
        (Some(crypto), true) => {
            let msg_signature = oa_part(&q.msg_signature, "msg_signature")?;
            let encrypted = envelope.get("Encrypt").ok_or_else(|| {
                ApiError::BadRequest("WeChat callback body: <Encrypt> is missing".into())
            })?;
            let plain = crypto
                .open(msg_signature, timestamp, nonce, encrypted)
                .map_err(oa_crypto_error)?;
            CallbackXml::parse(&plain)
                .map_err(|e| ApiError::BadRequest(format!("WeChat callback message: {e}")))?
        }
        (Some(_), false) => {
            return Err(ApiError::BadSignature(
                "this Official Account is configured for safe mode (encoding_aes_key is set): a plaintext callback's signature does not cover its body, so it is refused; choose 安全模式 in 服务器配置".into(),
            ))
        }
        (None, true) => {
            return Err(ApiError::BadRequest(
                "an encrypted (safe mode) callback, but [connectors.wechat] has no encoding_aes_key: set it to the EncodingAESKey of 服务器配置".into(),
            ))
        }
        (None, false) => envelope,
    };
    let mapped = oa::map_callback(&message)
        .map_err(|e| ApiError::BadRequest(format!("WeChat callback message: {e}")))?;
    tracing::info!(
        kind = %mapped.kind,
        events = mapped.events.len(),
        note = mapped.note.as_deref().unwrap_or(""),
        "wechat callback"
    );
    crate::inbound::append(state, oa::CHANNEL, mapped.events).await?;
    // WeChat reads `success` (or an empty body) as "no passive reply".
    Ok(text_answer("success".into()))
}

/// `POST /v1/wechat/qrcodes`: exactly one of `campaign` and `channel`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QrBody {
    /// A saved fission campaign's id.
    #[serde(default)]
    campaign: Option<String>,
    /// A source channel name (`xiaohongshu`, `store_poster`): the
    /// follower's first channel.
    #[serde(default)]
    channel: Option<String>,
    /// Seconds a temporary code lives (60 to 2592000); omit for a
    /// permanent code (WeChat caps an account's permanent codes at 100,000).
    #[serde(default)]
    expire_seconds: Option<u32>,
}

/// A QR code and the scene it carries.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct QrCreated {
    /// `campaign:<id>` or `channel:<name>`.
    scene: String,
    permanent: bool,
    #[serde(flatten)]
    qrcode: QrCode,
}

async fn create_qrcode(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<axum::Json<QrCreated>, ApiError> {
    let b: QrBody = crate::request::parse_json(&body, "qrcode")?;
    let oa_state = state.0.wechat_oa.clone().ok_or_else(|| {
        ApiError::NotFound(
            "no Official Account: add [connectors.wechat] (app_id, secret) to the config".into(),
        )
    })?;
    let scene = match (b.campaign, b.channel) {
        (Some(c), None) => {
            crate::request::valid_id(&c, "campaign")?;
            let id = c.clone();
            with_store(&state, move |store| {
                siyu_growth::fission::load(store, &id)
                    .map(|_| ())
                    .map_err(|e| ApiError::InvalidDefinition(format!("campaign: {e}")))
            })
            .await?;
            oa::Scene::Campaign(c)
        }
        (None, Some(ch)) => {
            if !siyu_domain::Channel::is_valid(&ch) {
                return Err(ApiError::InvalidDefinition(format!(
                    "channel: {ch:?} is not a channel name (lowercase letters, digits, `_`, at most 32)"
                )));
            }
            oa::Scene::Channel(ch)
        }
        _ => {
            return Err(ApiError::InvalidDefinition(
                "qrcode: give exactly one of `campaign` (a campaign id) and `channel` (a source channel)".into(),
            ))
        }
    };
    if let Some(s) = b.expire_seconds {
        if !(60..=siyu_connectors::wechat::MAX_QR_EXPIRE_SECONDS).contains(&s) {
            return Err(ApiError::InvalidDefinition(format!(
                "expire_seconds: {s} is outside 60..={} (30 days); omit it for a permanent code",
                siyu_connectors::wechat::MAX_QR_EXPIRE_SECONDS
            )));
        }
    }
    let encoded = scene.encode();
    if encoded.len() > siyu_connectors::wechat::MAX_SCENE_LEN {
        return Err(ApiError::InvalidDefinition(format!(
            "the scene `{encoded}` is longer than WeChat's {} bytes; use a shorter id",
            siyu_connectors::wechat::MAX_SCENE_LEN
        )));
    }
    let qrcode = oa_state
        .client
        .create_qrcode(&encoded, b.expire_seconds)
        .await
        .map_err(|e| match e {
            siyu_connectors::SendError::Permanent(m) => {
                ApiError::BadRequest(format!("WeChat refused the QR code: {m}"))
            }
            siyu_connectors::SendError::Retryable(m) => {
                ApiError::Internal(format!("wechat qrcode/create: {m}"))
            }
        })?;
    Ok(axum::Json(QrCreated {
        scene: encoded,
        permanent: b.expire_seconds.is_none(),
        qrcode,
    }))
}

// ---------- Tencent Cloud SMS ----------

/// The most receipts or replies read from one request.
const MAX_SMS_ITEMS: usize = 1000;

/// One delivery receipt (状态回执) as Tencent Cloud SMS posts it.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct SmsReceipt {
    /// `YYYY-MM-DD HH:MM:SS`, Beijing time.
    #[serde(default)]
    user_receive_time: String,
    #[serde(default)]
    nationcode: String,
    #[serde(default)]
    mobile: String,
    /// `SUCCESS` or `FAIL`.
    report_status: String,
    /// The carrier's code (`DELIVRD`).
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    description: String,
    /// The `SerialNo` `SendSms` answered.
    sid: String,
}

/// One reply (回复短信) as Tencent Cloud SMS posts it.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct SmsReply {
    #[serde(default)]
    extend: String,
    mobile: String,
    #[serde(default)]
    nationcode: String,
    #[serde(default)]
    sign: String,
    text: String,
    /// Epoch seconds.
    #[serde(default)]
    time: i64,
}

/// What Tencent Cloud SMS expects back (`result` 0), with what was done.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SmsAnswer {
    result: i64,
    errmsg: String,
    /// Receipts recorded on their outbox rows / replies handled.
    accepted: usize,
    /// Receipts whose `sid` names no message siyu sent (or replies that
    /// were not a phone number).
    unknown: usize,
}

/// 401 unless `token` is this workspace's SMS callback token (what
/// proves the request comes from where the URL was given); then 404
/// unless Tencent Cloud SMS is the configured provider.
fn sms_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    if !crate::links::verify_callback_token(
        &state.0.link_secret,
        crate::links::SMS_TENCENT_CALLBACK,
        &state.0.config.workspace,
        token,
    ) {
        return Err(ApiError::BadSignature(
            "the callback token in the URL is not this workspace's; copy the SMS callback URLs from GET /v1/connectors".into(),
        ));
    }
    let tencent = state
        .0
        .config
        .connectors
        .sms
        .as_ref()
        .is_some_and(|s| s.provider == "tencent");
    if tencent {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "Tencent Cloud SMS is not configured: set provider = \"tencent\" in [connectors.sms]"
                .into(),
        ))
    }
}

/// A JSON array of `T` (one object is read as an array of one), at most
/// [`MAX_SMS_ITEMS`].
fn sms_items<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    if items.len() > MAX_SMS_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "body: {} items; at most {MAX_SMS_ITEMS}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item)
                .map_err(|e| ApiError::BadRequest(format!("body[{i}]: {e}")))
        })
        .collect()
}

async fn sms_status(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    path: Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<SmsAnswer>, ApiError> {
    let answer = take_sms_status(State(state.clone()), peer, headers, path, body).await;
    state
        .0
        .channel_activity
        .record("sms/status", "status", answer)
}

async fn take_sms_status(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<SmsAnswer>, ApiError> {
    ratelimit::check(&state, ratelimit::Limit::Inbound, &peer, &headers)?;
    sms_token(&state, &token)?;
    let receipts: Vec<SmsReceipt> = sms_items(&body)?;
    for (i, r) in receipts.iter().enumerate() {
        if r.sid.is_empty() || r.sid.len() > 128 {
            return Err(ApiError::BadRequest(format!(
                "body[{i}].sid: 1 to 128 characters"
            )));
        }
        if !matches!(r.report_status.as_str(), "SUCCESS" | "FAIL") {
            return Err(ApiError::BadRequest(format!(
                "body[{i}].report_status: {:?} is not SUCCESS or FAIL",
                r.report_status
            )));
        }
    }
    let at = now();
    let (accepted, unknown) = with_store(&state, move |store| {
        let mut commit = siyu_store::AutomationCommit::default();
        let (mut accepted, mut unknown) = (0, 0);
        for r in &receipts {
            let key = store
                .get_setting(&crate::automation::sms_sid_key(&r.sid))?
                .and_then(|v| crate::automation::sms_sid_outbox_key(&v));
            let Some(item) = key.map(|k| store.outbox_get(&k)).transpose()?.flatten() else {
                unknown += 1;
                continue;
            };
            let delivered = r.report_status == "SUCCESS";
            let detail = format!(
                "{}: sid {}, {} {}, received {} (+{} {})",
                if delivered {
                    "delivered"
                } else {
                    "undelivered"
                },
                r.sid,
                r.errmsg,
                r.description,
                r.user_receive_time,
                r.nationcode,
                mask(&r.mobile),
            );
            commit.attempts.push(siyu_store::SendAttempt {
                key: item.key.clone(),
                at,
                verdict: if delivered {
                    "delivered"
                } else {
                    "undelivered"
                }
                .into(),
                detail: detail.clone(),
            });
            commit.updates.push(siyu_store::OutboxUpdate {
                key: item.key.clone(),
                status: if delivered {
                    siyu_store::OutboxStatus::Done
                } else {
                    siyu_store::OutboxStatus::Dead
                },
                attempts: item.attempts,
                detail,
                not_before: item.not_before,
                updated_at: at,
            });
            accepted += 1;
        }
        if !commit.is_empty() {
            store.automation_commit(&commit)?;
        }
        Ok((accepted, unknown))
    })
    .await?;
    tracing::info!(accepted, unknown, "sms receipts");
    Ok(axum::Json(SmsAnswer {
        result: 0,
        errmsg: "OK".into(),
        accepted,
        unknown,
    }))
}

/// A phone number in logs and details: its last four digits.
fn mask(mobile: &str) -> String {
    let n = mobile.chars().count();
    let tail: String = mobile.chars().skip(n.saturating_sub(4)).collect();
    format!("***{tail}")
}

/// Whether an SMS reply asks to stop: `TD`, `T`, `退订` or `N` (case and
/// surrounding blanks ignored), the replies carriers and Tencent's
/// templates name for unsubscribing.
pub fn is_sms_opt_out(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    matches!(t.as_str(), "td" | "t" | "退订" | "n")
}

async fn sms_reply(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    path: Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<SmsAnswer>, ApiError> {
    let answer = take_sms_reply(State(state.clone()), peer, headers, path, body).await;
    state
        .0
        .channel_activity
        .record("sms/reply", "reply", answer)
}

async fn take_sms_reply(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<SmsAnswer>, ApiError> {
    ratelimit::check(&state, ratelimit::Limit::Inbound, &peer, &headers)?;
    sms_token(&state, &token)?;
    let replies: Vec<SmsReply> = sms_items(&body)?;
    let at = now();
    let mut events = Vec::new();
    let mut opt_outs = Vec::new();
    let mut unknown = 0;
    for (i, r) in replies.iter().enumerate() {
        let cc = r.nationcode.trim().trim_start_matches('+');
        let number = if cc.is_empty() || cc == "86" {
            r.mobile.clone()
        } else {
            format!("+{cc}{}", r.mobile)
        };
        let Ok(normalized) = siyu_commerce::orders::normalize_phone(&number) else {
            unknown += 1;
            continue;
        };
        let identity = state.0.privacy.phone_identity(&normalized);
        if is_sms_opt_out(&r.text) {
            opt_outs.push(identity);
            continue;
        }
        let ts = if r.time > 0 { r.time } else { at };
        let mut props = serde_json::Map::new();
        if !r.sign.is_empty() {
            props.insert("sign".into(), r.sign.clone().into());
        }
        if !r.extend.is_empty() {
            props.insert("extend".into(), r.extend.clone().into());
        }
        let mut v = serde_json::json!({
            "id": format!("sms/reply/{}", crate::links::link_id(&state.0.link_secret, &format!("{}\n{ts}\n{}", identity.as_str(), r.text))),
            "ts": ts,
            "identity": identity.as_str(),
            "channel": "sms",
            "type": "comment",
            "text": r.text,
        });
        if !props.is_empty() {
            v["properties"] = serde_json::Value::Object(props);
        }
        let e = siyu_domain::parse_json_event(&v).map_err(|e| {
            ApiError::BadRequest(format!(
                "body[{i}].{}: {}",
                if e.field == "text" { "text" } else { e.field },
                e.message
            ))
        })?;
        events.push(e);
    }
    let accepted = events.len() + opt_outs.len();
    // The phone's SMS consent, for each person the number is (or will
    // be) an identity of: the same ledger the executor checks.
    for identity in opt_outs {
        let canonical = {
            let engine = read_engine(&state);
            engine
                .person_of(identity.as_str())
                .map(|slot| engine.canonical_id(slot).to_string())
        };
        let mut whom = vec![identity.as_str().to_string()];
        whom.extend(canonical.filter(|c| c != identity.as_str()));
        for who in whom {
            state
                .0
                .automation
                .consent(siyu_store::ConsentRow {
                    ts: at,
                    identity: who,
                    channel: Some("sms".into()),
                    granted: false,
                    source: "sms_reply".into(),
                })
                .await
                .map_err(ApiError::Internal)?;
        }
    }
    crate::inbound::append(&state, "phone_hmac", events).await?;
    Ok(axum::Json(SmsAnswer {
        result: 0,
        errmsg: "OK".into(),
        accepted,
        unknown,
    }))
}
