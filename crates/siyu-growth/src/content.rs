//! The content library: articles, images and mini-program cards that
//! messages link to, with view tracking. A template writes
//! `{{content.ID}}`; each recipient gets their own signed link
//! (`/c/ID?p=TOKEN`, [`tracked_link`]), and opening it counts a view
//! ([`record_view`]) and records a `content_view` event on the person
//! ([`view_event`]: segments, journeys — `wait_for_event` on `custom` —
//! and attribution see it) before the server redirects to the content.
//!
//! Items are kept in settings under [`CONTENT_PREFIX`], read and written
//! through the storage seam. Signing and resolving the person's token is
//! the server's (`siyu-server/src/links.rs`, shared by every public link):
//! this module names the token's purpose ([`LINK_PURPOSE`]) and takes the
//! signed token in. No I/O of its own, no clock: `now` is passed in.

use serde::{Deserialize, Serialize};
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_store::{Store, StoreError};

/// Settings prefix of the content items (`content/<id>`).
pub const CONTENT_PREFIX: &str = "content/";

/// The purpose a person's content link token is signed for: a token made
/// for another purpose (an unsubscribe link) is not a content link.
pub const LINK_PURPOSE: &str = "content";

/// The name of the custom event a view records.
pub const VIEW_EVENT: &str = "content_view";

/// One item of the library: what operators save and `GET /v1/content`
/// lists (the stored form and the wire form are the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Taken from the path when saved.
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
    /// Views counted so far (kept across saves).
    #[serde(default)]
    pub views: u64,
    /// Archived (`DELETE /v1/content/{id}`): hidden from the library list
    /// unless asked for; links already sent keep redirecting and counting
    /// views. Saving the item again restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Article,
    Image,
    Miniprogram,
}

/// Why a content item was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("title: give the item a title")]
    MissingTitle,
    /// The URL becomes a `Location` header: a line break would split the
    /// response.
    #[error("url: control character {ch:?} at byte {at}; a URL has no line breaks or control characters (percent-encode them)")]
    ControlCharacter { ch: char, at: usize },
    #[error("url: {url:?} must be an http(s) URL")]
    NotHttp { url: String },
    #[error("appid, path: a mini-program card needs both")]
    MiniprogramTarget,
    #[error("no such content")]
    NotFound { id: String },
    /// A stored item that does not read back as [`Content`].
    #[error("content `{key}` cannot be read: {error}")]
    Unreadable { key: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Content {
    /// Whether the item can be saved: a title, an http(s) URL without
    /// control characters, and for a mini-program card its app id and path.
    pub fn validate(&self) -> Result<(), ContentError> {
        if self.title.trim().is_empty() {
            return Err(ContentError::MissingTitle);
        }
        if let Some((at, ch)) = self.url.char_indices().find(|(_, ch)| ch.is_control()) {
            return Err(ContentError::ControlCharacter { ch, at });
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(ContentError::NotHttp {
                url: self.url.clone(),
            });
        }
        if self.kind == Kind::Miniprogram && (self.appid.is_none() || self.path.is_none()) {
            return Err(ContentError::MiniprogramTarget);
        }
        Ok(())
    }
}

/// The settings key of item `id`.
pub fn key(id: &str) -> String {
    format!("{CONTENT_PREFIX}{id}")
}

/// How a template links item `id`: `{{content.ID}}`.
pub fn placeholder(id: &str) -> String {
    format!("{{{{content.{id}}}}}")
}

/// The tracked link of item `content` for one person: `token` is the
/// person's link token signed for [`LINK_PURPOSE`].
pub fn tracked_link(public_url: &str, content: &str, token: &str) -> String {
    format!("{}/c/{content}?p={token}", public_url.trim_end_matches('/'))
}

fn to_setting(c: &Content) -> Result<serde_json::Value, ContentError> {
    serde_json::to_value(c).map_err(|e| ContentError::Unreadable {
        key: key(&c.id),
        error: e.to_string(),
    })
}

fn from_setting(key: &str, v: serde_json::Value) -> Result<Content, ContentError> {
    serde_json::from_value(v).map_err(|e| ContentError::Unreadable {
        key: key.to_string(),
        error: e.to_string(),
    })
}

/// Saves `content` as item `id` (validated; the views counted so far are
/// kept) and returns what was stored.
pub fn save(
    store: &mut dyn Store,
    id: &str,
    mut content: Content,
) -> Result<Content, ContentError> {
    content.id = id.to_string();
    content.validate()?;
    let key = key(id);
    if let Some(old) = store.get_setting(&key)? {
        content.views = old
            .get("views")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
    }
    store.put_setting(&key, Some(&to_setting(&content)?))?;
    Ok(content)
}

/// Every item, by id.
pub fn list(store: &mut dyn Store) -> Result<Vec<Content>, ContentError> {
    store
        .list_settings(CONTENT_PREFIX)?
        .into_iter()
        .map(|(key, v)| from_setting(&key, v))
        .collect()
}

/// Archives item `id` (see [`Content::archived`]); returns whether it
/// was archived by this call (false: it already was).
pub fn archive(store: &mut dyn Store, id: &str) -> Result<bool, ContentError> {
    let key = key(id);
    let Some(v) = store.get_setting(&key)? else {
        return Err(ContentError::NotFound { id: id.to_string() });
    };
    let mut c = from_setting(&key, v)?;
    if c.archived {
        return Ok(false);
    }
    c.archived = true;
    store.put_setting(&key, Some(&to_setting(&c)?))?;
    Ok(true)
}

/// Counts one view of item `id` and returns the item.
pub fn record_view(store: &mut dyn Store, id: &str) -> Result<Content, ContentError> {
    let key = key(id);
    let Some(v) = store.get_setting(&key)? else {
        return Err(ContentError::NotFound { id: id.to_string() });
    };
    let mut c = from_setting(&key, v)?;
    c.views += 1;
    store.put_setting(&key, Some(&to_setting(&c)?))?;
    Ok(c)
}

/// The `content_view` event a view records on the person a valid token
/// named (`canonical`, their canonical identity), at `now`; `None` when
/// `canonical` is not an identity.
pub fn view_event(content: &Content, canonical: &str, now: i64) -> Option<Event> {
    let identity = Identity::parse(canonical).ok()?;
    let channel = Channel::parse(identity.channel()).or_else(|| Channel::parse("wechat"))?;
    let mut ev = Event::new(now, identity, EventType::Custom, channel);
    ev.name = Some(VIEW_EVENT.into());
    let mut p = serde_json::Map::new();
    p.insert("content".into(), content.id.clone().into());
    p.insert(
        "kind".into(),
        serde_json::to_value(content.kind).unwrap_or_default(),
    );
    ev.properties = Some(p);
    Some(ev)
}
