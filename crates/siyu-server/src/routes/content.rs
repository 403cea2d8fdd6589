//! The content library: articles, images and mini-program cards that
//! messages link to, with view tracking. A template writes
//! `{{content.ID}}`; each recipient gets their own signed link
//! (`/c/ID?p=TOKEN`), and opening it records a `content_view` event on
//! the person (so segments, journeys — `wait_for_event` on `custom` —
//! and attribution see it) before redirecting to the content.

use crate::error::ApiError;
use crate::request::{now, parse_json, route, valid_id, with_store, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_domain::{Channel, Event, EventType, Identity};

pub const CONTENT_PREFIX: &str = "content/";

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/content", read, "The content library with view counts.", list_content),
        route!(put, "/v1/content/{id}", write, "Save a content item: `{\"kind\": \"article\"|\"image\"|\"miniprogram\", \"title\", \"url\", \"appid\"?, \"path\"?}`; templates link it as `{{content.ID}}`.", put_content),
        route!(get, "/c/{id}", public, "Public tracked link (rate limited per address): records a content_view on the person the signed `p` names, then redirects.", view),
    ]
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub id: String,
    pub kind: Kind,
    pub title: String,
    /// Where the link goes (an article, an image); for a mini-program card
    /// the H5 fallback.
    pub url: String,
    /// Mini-program cards: the app id and page path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub views: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Article,
    Image,
    Miniprogram,
}

/// The tracked link of a content item for one person.
pub fn tracked_link(public_url: &str, secret: &[u8], content: &str, canonical: &str) -> String {
    format!(
        "{}/c/{content}?p={}",
        public_url.trim_end_matches('/'),
        crate::links::sign(secret, "content", canonical)
    )
}

async fn put_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_id(&id, "id")?;
    let mut c: Content = parse_json(&body, "content")?;
    c.id = id.clone();
    if c.title.trim().is_empty() {
        return Err(ApiError::InvalidDefinition(
            "title: give the item a title".into(),
        ));
    }
    // The URL becomes a `Location` header: a line break would split the
    // response (and make every view a 500).
    if let Some((at, ch)) = c.url.char_indices().find(|(_, ch)| ch.is_control()) {
        return Err(ApiError::BadRequest(format!(
            "url: control character {ch:?} at byte {at}; a URL has no line breaks or control characters (percent-encode them)"
        )));
    }
    if !(c.url.starts_with("https://") || c.url.starts_with("http://")) {
        return Err(ApiError::InvalidDefinition(format!(
            "url: {:?} must be an http(s) URL",
            c.url
        )));
    }
    if c.kind == Kind::Miniprogram && (c.appid.is_none() || c.path.is_none()) {
        return Err(ApiError::InvalidDefinition(
            "appid, path: a mini-program card needs both".into(),
        ));
    }
    with_store(&state, move |store| {
        let key = format!("{CONTENT_PREFIX}{id}");
        if let Some(old) = store.get_setting(&key)? {
            c.views = old.get("views").and_then(Value::as_u64).unwrap_or(0);
        }
        store.put_setting(
            &key,
            Some(&serde_json::to_value(&c).map_err(|e| ApiError::Internal(e.to_string()))?),
        )?;
        Ok(Json(
            json!({"id": id, "link": format!("{{{{content.{}}}}}", c.id)}),
        ))
    })
    .await
}

async fn list_content(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    with_store(&state, |store| {
        let items: Vec<Value> = store
            .list_settings(CONTENT_PREFIX)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok(Json(json!({"content": items})))
    })
    .await
}

#[derive(Deserialize)]
struct ViewQuery {
    p: Option<String>,
}

async fn view(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, ApiError> {
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )?;
    let key = format!("{CONTENT_PREFIX}{id}");
    let secret = state.0.link_secret.clone();
    let (item, person) = with_store(&state, move |store| {
        let Some(v) = store.get_setting(&key)? else {
            return Err(ApiError::NotFound("no such content".into()));
        };
        let mut c: Content =
            serde_json::from_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
        c.views += 1;
        store.put_setting(
            &key,
            Some(&serde_json::to_value(&c).map_err(|e| ApiError::Internal(e.to_string()))?),
        )?;
        // A valid token names the person; an invalid or missing one still
        // redirects (the reader gets the content) but records nothing.
        let person = match q.p.as_deref() {
            Some(t) => crate::links::resolve(store, &secret, "content", t, now())?,
            None => None,
        };
        Ok((c, person))
    })
    .await?;
    if let Some(canonical) = person.and_then(|c| Identity::parse(&c).ok()) {
        let channel = Channel::parse(canonical.channel())
            .unwrap_or_else(|| Channel::parse("wechat").expect("valid"));
        let mut ev = Event::new(now(), canonical, EventType::Custom, channel);
        ev.name = Some("content_view".into());
        let mut p = serde_json::Map::new();
        p.insert("content".into(), id.clone().into());
        p.insert(
            "kind".into(),
            serde_json::to_value(item.kind).unwrap_or_default(),
        );
        ev.properties = Some(p);
        state
            .0
            .writer
            .append(vec![ev])
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, item.url)]).into_response())
}
