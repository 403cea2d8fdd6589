//! HTTP endpoints of the content library (`siyu_growth::content`): save
//! and list items, and the public tracked link `/c/ID?p=TOKEN` that counts
//! a view, records a `content_view` event on the person the signed token
//! names, and redirects to the content.

use crate::error::ApiError;
use crate::request::{
    now, parse_json, removal_audit, route, valid_id, with_store, ArchivedQuery, Removed, Route,
};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_growth::content::{self, Content, ContentError};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/content", read, "The content library with view counts.", list_content),
        route!(put, "/v1/content/{id}", write, "Save a content item: `{\"kind\": \"article\"|\"image\"|\"miniprogram\", \"title\", \"url\", \"appid\"?, \"path\"?}`; templates link it as `{{content.ID}}`.", put_content, body = Content),
        route!(delete, "/v1/content/{id}", write, "Archive a content item: hidden from the library (`?archived=true` lists it); links already sent keep redirecting and counting; PUT restores it.", delete_content),
        route!(get, "/c/{id}", public, "Public tracked link (rate limited per address): records a content_view on the person the signed `p` names, then redirects. A bad link is a page for a browser (`Accept` preferring text/html), JSON otherwise.", view, statuses = [302]),
    ]
}

/// The one mapping of the content library's errors to API errors.
impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::MissingTitle
            | ContentError::NotHttp { .. }
            | ContentError::MiniprogramTarget => ApiError::InvalidDefinition(e.to_string()),
            ContentError::ControlCharacter { .. } => ApiError::BadRequest(e.to_string()),
            ContentError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            ContentError::Unreadable { .. } => ApiError::Internal(e.to_string()),
            ContentError::Store(e) => ApiError::from(e),
        }
    }
}

/// `PUT /v1/content/{id}`: the item's id and how a template links it.
#[derive(Serialize, schemars::JsonSchema)]
struct Saved {
    id: String,
    link: String,
}

async fn put_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Saved>, ApiError> {
    valid_id(&id, "id")?;
    let c: Content = parse_json(&body, "content")?;
    with_store(&state, move |store| {
        let saved = content::save(store, &id, c)?;
        Ok(Json(Saved {
            link: content::placeholder(&saved.id),
            id,
        }))
    })
    .await
}

/// `GET /v1/content`.
#[derive(Serialize, schemars::JsonSchema)]
struct Library {
    content: Vec<Content>,
}

/// Archived items only with `?archived=true`.
async fn list_content(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<Library>, ApiError> {
    with_store(&state, move |store| {
        let mut content = content::list(store)?;
        if !shown.archived {
            content.retain(|c| !c.archived);
        }
        Ok(Json(Library { content }))
    })
    .await
}

/// `DELETE /v1/content/{id}`: archives (sent links must keep working).
async fn delete_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let i = id.clone();
    with_store(&state, move |store| {
        if content::archive(store, &i)? {
            store.audit(&removal_audit("archive_content", &i, serde_json::json!({})))?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(Removed::archived("content", id)))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ViewQuery {
    p: Option<String>,
}

/// Redirects to the content; a bad or unknown link is a page for a
/// browser (`h5`), the API's error otherwise.
async fn view(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Result<Response, Response> {
    let html = crate::h5::wants_html(&headers);
    view_inner(state, peer, headers, id, q)
        .await
        .map_err(|e| crate::h5::error(html, e, crate::h5::Link::Content))
}

async fn view_inner(
    state: AppState,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    id: String,
    q: ViewQuery,
) -> Result<Response, ApiError> {
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )?;
    let secret = state.0.link_secret.clone();
    let (item, person) = with_store(&state, move |store| {
        let item = content::record_view(store, &id)?;
        // A valid token names the person; an invalid or missing one still
        // redirects (the reader gets the content) but records nothing.
        let person = match q.p.as_deref() {
            Some(t) => crate::links::resolve(store, &secret, content::LINK_PURPOSE, t, now())?,
            None => None,
        };
        Ok((item, person))
    })
    .await?;
    if let Some(ev) = person.and_then(|canonical| content::view_event(&item, &canonical, now())) {
        state
            .0
            .writer
            .append(vec![ev])
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, item.url)]).into_response())
}
