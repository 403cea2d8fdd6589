//! Workspaces: several brands served by one process, each a complete
//! siyu (its own store, engine, writer, automation, keys and console
//! accounts), so their data never meet. A request goes to the workspace
//! its `X-Siyu-Workspace` header names, else the one whose configured
//! host matches `Host`, else the default workspace; a channel callback
//! (`/callbacks/wecom/{name}`) to the one its path names.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// The workspaces of a process, with their routers.
pub struct Workspaces {
    default: Router,
    by_name: HashMap<String, Router>,
    by_host: HashMap<String, String>,
}

impl Workspaces {
    /// `others`: (name, host, state) of every workspace besides the default.
    pub fn new(default: AppState, others: Vec<(String, Option<String>, AppState)>) -> Workspaces {
        let mut by_name = HashMap::new();
        let mut by_host = HashMap::new();
        for (name, host, state) in others {
            if let Some(h) = host {
                by_host.insert(h.to_ascii_lowercase(), name.clone());
            }
            by_name.insert(name, crate::app(state));
        }
        Workspaces {
            default: crate::app(default),
            by_name,
            by_host,
        }
    }

    fn pick(&self, req: &Request) -> Result<&Router, ApiError> {
        // A channel's callback names its workspace in the path (WeCom
        // cannot send our headers): `/callbacks/wecom/{name}`.
        if let Some(name) = req
            .uri()
            .path()
            .strip_prefix("/callbacks/wecom/")
            .map(|n| n.trim_end_matches('/'))
        {
            if name == "default" {
                return Ok(&self.default);
            }
            return self.by_name.get(name).ok_or_else(|| {
                ApiError::NotFound(
                    "no such workspace; the callback URL is /callbacks/wecom/<workspace name> (your administrator knows the name)".into(),
                )
            });
        }
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        if let Some(name) = header("x-siyu-workspace") {
            if name == "default" {
                return Ok(&self.default);
            }
            // The message must not list the other workspaces: brands on
            // one server do not learn of each other.
            return self.by_name.get(name).ok_or_else(|| {
                ApiError::NotFound(
                    "no such workspace; check the X-Siyu-Workspace header (your administrator knows the name)".into(),
                )
            });
        }
        let host = header("host").map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        Ok(host
            .and_then(|h| self.by_host.get(&h))
            .and_then(|n| self.by_name.get(n))
            .unwrap_or(&self.default))
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }

    /// One router in front of every workspace.
    pub fn router(self) -> Router {
        let ws = Arc::new(self);
        Router::new().fallback(move |req: Request| {
            let ws = ws.clone();
            async move {
                match ws.pick(&req) {
                    Ok(r) => match r.clone().oneshot(req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    },
                    Err(e) => e.into_response(),
                }
            }
        })
    }
}

/// Routes a request the way [`Workspaces::router`] does (for tests that
/// drive the router in process).
pub async fn dispatch(router: &Router, req: Request) -> Response {
    router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|never| match never {})
}
