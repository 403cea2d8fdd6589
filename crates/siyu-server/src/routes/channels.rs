//! Each channel's status for the console's channel pages (`crate::channels`):
//! configuration without secrets, callback URLs with the last accepted and
//! rejected callback, token health, the WeCom sync, dispatch counters.

use crate::channels::ChannelStatus;
use crate::error::ApiError;
use crate::request::{route, Route};
use crate::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Json;

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/channels", read, "Every channel's status (built-in ones, then inbound webhook and bridged channels): `health` (ok|attention|error|not_configured) with its `problems` ({code, health, detail}), settings without secrets, the callback URLs to enter in each platform with the last accepted and rejected callback (any node's), the access token's health (WeCom, Official Account), the dispatcher's counters and the WeCom sync's progress.", list_channels),
        route!(get, "/v1/channels/{channel}", read, "One channel's status (see GET /v1/channels); 404 for a channel neither built in nor configured.", get_channel, statuses = [404]),
        route!(post, "/v1/channels/{channel}/check", write, "Fetch the channel's access token now (wecom, wechat) so a wrong corp id, app id, secret or IP whitelist shows before a send needs it; answers the channel's status, whose `token` says how it went. 400 for a channel without a token, 404 when not configured.", check_channel, statuses = [400, 404]),
    ]
}

/// `GET /v1/channels`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelStatus>,
}

async fn list_channels(State(state): State<AppState>) -> Result<Json<ChannelList>, ApiError> {
    Ok(Json(ChannelList {
        channels: crate::channels::all(&state).await?,
    }))
}

async fn get_channel(
    State(state): State<AppState>,
    Path(channel): Path<String>,
) -> Result<Json<ChannelStatus>, ApiError> {
    Ok(Json(crate::channels::one(&state, &channel).await?))
}

async fn check_channel(
    State(state): State<AppState>,
    Path(channel): Path<String>,
) -> Result<Json<ChannelStatus>, ApiError> {
    Ok(Json(crate::channels::check(&state, &channel).await?))
}
