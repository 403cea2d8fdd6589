//! Workspaces: several brands served by one process, each a complete
//! siyu (its own store, engine, writer, automation, keys and console
//! accounts), so their data never meet. A request goes to the workspace
//! its `X-Siyu-Workspace` header names, else the one whose configured
//! host matches `Host`, else the default workspace; a channel callback
//! to the one its path names: by name (`/callbacks/wecom/{name}`,
//! `/callbacks/wechat/{name}`: [`NAMED_CALLBACKS`]) or by an opaque token
//! (`/callbacks/sms/tencent/{token}/…`: [`TOKEN_CALLBACKS`], each
//! workspace's `links::callback_token`).

use crate::error::ApiError;
use crate::AppState;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// Callback paths whose next segment names the workspace (the channel
/// cannot send our headers): `/callbacks/wecom/{name}`.
pub const NAMED_CALLBACKS: &[&str] = &["/callbacks/wecom/", "/callbacks/wechat/"];

/// Callback paths whose next segment is the workspace's opaque callback
/// token for that purpose (`links::callback_token`), with the purpose.
pub const TOKEN_CALLBACKS: &[(&str, &str)] = &[(
    "/callbacks/sms/tencent/",
    crate::links::SMS_TENCENT_CALLBACK,
)];

/// The workspaces of a process, with their routers.
pub struct Workspaces {
    default: Router,
    by_name: HashMap<String, Router>,
    by_host: HashMap<String, String>,
    /// (purpose, token) → workspace name; the default workspace as `default`.
    by_token: HashMap<(&'static str, String), String>,
}

impl Workspaces {
    /// `others`: (name, host, state) of every workspace besides the default.
    pub fn new(default: AppState, others: Vec<(String, Option<String>, AppState)>) -> Workspaces {
        let mut by_name = HashMap::new();
        let mut by_host = HashMap::new();
        let mut by_token = HashMap::new();
        let mut tokens = |name: &str, state: &AppState| {
            for (_, purpose) in TOKEN_CALLBACKS {
                let token = crate::links::callback_token(
                    &state.0.link_secret,
                    purpose,
                    &state.0.config.workspace,
                );
                by_token.insert((*purpose, token), name.to_string());
            }
        };
        tokens("default", &default);
        for (name, _, state) in &others {
            tokens(name, state);
        }
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
            by_token,
        }
    }

    fn pick(&self, req: &Request) -> Result<&Router, ApiError> {
        // A channel's callback names its workspace in the path (WeCom and
        // WeChat cannot send our headers): `/callbacks/wecom/{name}`.
        let path = req.uri().path();
        for prefix in NAMED_CALLBACKS {
            if let Some(name) = path.strip_prefix(prefix).map(|n| n.trim_end_matches('/')) {
                if name == "default" {
                    return Ok(&self.default);
                }
                return self.by_name.get(name).ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "no such workspace; the callback URL is {prefix}<workspace name> (your administrator knows the name)"
                    ))
                });
            }
        }
        for (prefix, purpose) in TOKEN_CALLBACKS {
            if let Some(rest) = path.strip_prefix(prefix) {
                let token = rest.split('/').next().unwrap_or("");
                return match self.by_token.get(&(*purpose, token.to_string())) {
                    Some(name) if name == "default" => Ok(&self.default),
                    Some(name) => self.by_name.get(name).ok_or_else(|| {
                        ApiError::NotFound("no such workspace".into())
                    }),
                    None => Err(ApiError::NotFound(format!(
                        "no such callback URL; copy it again from GET /v1/connectors ({prefix}<token>/…)"
                    ))),
                };
            }
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
