//! `POST /v1/orders`: marketplace orders (JSON) become `purchase` / `refund`
//! events on the right person. The rules — fields, money, Beijing time,
//! phones, matching, event ids — are `siyu_commerce::orders` (shared with
//! `siyu import-orders`); this module reads the body, reads what the engine
//! knows about the batch's buyers, appends through the writer and answers.
//! The keyed phone hash is the workspace's (`privacy.rs`): [`PrivacyKeys`]
//! is the core's [`PhoneKeys`].

use crate::error::ApiError;
use crate::ingest::Rejected;
use crate::privacy::PrivacyKeys;
use crate::request::{blocking, read_engine, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde::Serialize;
use siyu_commerce::orders::{
    self, body_orders, parse_order, plan, Known, Matched, OrdersError, OverRefunded, PhoneKeys,
    Planned, StatusTable,
};
use siyu_domain::Identity;

pub fn routes() -> Vec<Route> {
    vec![route!(
        post,
        "/v1/orders",
        write,
        "Import marketplace orders (`{\"orders\": [...]}` or an array): purchase/refund events matched to persons by identity, buyer id or hashed phone (linked to a known person's phone trait). Idempotent on order id; each bad order is reported with index, field and fix; a refund without buyer fields needs its purchase in the same request.",
        post_orders, body = (Vec<serde_json::Map<String, serde_json::Value>>), answer = OrdersResponse, statuses = [422]
    )]
}

impl PhoneKeys for PrivacyKeys {
    fn phone_identity(&self, sha256_hex: &str) -> Identity {
        self.phone_identity_of_sha256(sha256_hex)
    }
}

/// The order errors' place in the one error table: a body that is no list
/// of orders is a bad request; a batch with nothing to store is an invalid
/// definition (422), its message naming the first rejection.
impl From<OrdersError> for ApiError {
    fn from(e: OrdersError) -> Self {
        match e {
            OrdersError::MalformedJson { .. } | OrdersError::NotOrders => {
                ApiError::BadRequest(e.to_string())
            }
            OrdersError::AllRejected { .. } => ApiError::InvalidDefinition(e.to_string()),
        }
    }
}

impl From<orders::Rejected> for Rejected {
    fn from(r: orders::Rejected) -> Self {
        Rejected {
            index: r.index,
            field: r.field,
            message: r.message,
        }
    }
}

/// Events of the accepted orders: new, or held by the log already.
#[derive(Serialize, schemars::JsonSchema)]
struct EventCounts {
    accepted: u64,
    duplicates: u64,
}

/// The answer to an import (fields in the order the API has always
/// listed them: alphabetical).
#[derive(Serialize, schemars::JsonSchema)]
struct OrdersResponse {
    /// Orders with at least one new event.
    accepted: u64,
    /// Orders the log held already.
    duplicates: u64,
    events: EventCounts,
    matched: Matched,
    /// Refunds after which their person has more refunded than purchased:
    /// stored as reported, flagged for a look (`[]`: none).
    over_refunded: Vec<OverRefunded>,
    rejected: Vec<Rejected>,
    /// Orders whose status is `skip`.
    skipped: u64,
}

/// The 422 answer when every order was rejected: the error (`code`,
/// `message`) with the import's counts, so the client sees every rejection.
#[derive(Serialize, schemars::JsonSchema)]
struct OrdersRefused {
    accepted: u64,
    code: &'static str,
    duplicates: u64,
    matched: Matched,
    message: String,
    rejected: Vec<Rejected>,
    skipped: u64,
}

async fn post_orders(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let limit = state.0.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    let items = body_orders(&bytes)?;
    let s = state.clone();
    let planned = blocking(move || {
        let statuses = StatusTable::default();
        let mut orders = Vec::new();
        let mut rejected = Vec::new();
        for (index, v) in items.iter().enumerate() {
            match parse_order(v, None, &statuses) {
                Ok(o) => orders.push((index, o)),
                Err(e) => rejected.push(orders::Rejected::new(index, e)),
            }
        }
        let known = Known::from_engine(&read_engine(&s), &orders, &s.0.privacy);
        let mut planned = plan(orders, &known);
        planned.rejected.extend(rejected);
        planned.rejected.sort_by_key(|r| r.index);
        Ok(planned)
    })
    .await?;
    if let Some(refused) = planned.all_rejected() {
        let error = ApiError::from(refused);
        let (status, code) = error.status_and_code();
        let body = OrdersRefused {
            accepted: 0,
            code,
            duplicates: 0,
            matched: planned.matched,
            message: error.to_string(),
            rejected: planned.rejected.into_iter().map(Rejected::from).collect(),
            skipped: 0,
        };
        return Ok((status, Json(body)).into_response());
    }
    let Planned {
        events,
        skipped,
        matched,
        rejected,
        ..
    } = planned;
    let results = if events.is_empty() {
        Vec::new()
    } else {
        state
            .0
            .writer
            .append(events.iter().map(|(_, e)| e.clone()).collect())
            .await
            .map_err(ApiError::Internal)?
    };
    let t = orders::tally(&events, &results);
    // Read only once the engine holds the batch's refunds (an append is
    // answered before it is applied while a snapshot is being written).
    state.0.writer.visible().await.map_err(ApiError::Internal)?;
    let s = state.clone();
    let over_refunded =
        blocking(move || Ok(orders::over_refunded(&read_engine(&s), &events))).await?;
    let answer = OrdersResponse {
        accepted: t.accepted,
        duplicates: t.duplicates,
        events: EventCounts {
            accepted: t.new_events,
            duplicates: t.duplicate_events,
        },
        matched,
        over_refunded,
        rejected: rejected.into_iter().map(Rejected::from).collect(),
        skipped,
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use crate::privacy::{LEGACY_PHONE_CHANNEL, PHONE_CHANNEL};

    /// The core refuses the phone hash channels as marketplaces by name;
    /// they must be the ones `privacy.rs` makes identities in.
    #[test]
    fn the_core_refuses_the_phone_hash_channels_privacy_uses() {
        assert_eq!(
            siyu_commerce::orders::PHONE_HASH_CHANNELS,
            [PHONE_CHANNEL, LEGACY_PHONE_CHANNEL]
        );
    }
}
