//! The one error table of the API: every error has an HTTP status and a
//! stable snake_case code; bodies are `{"code", "message"}`. 5xx bodies are
//! generic and the details go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidEvent(String),
    #[error("{0}")]
    InvalidSegment(String),
    #[error("missing or invalid key: send `Authorization: Bearer <key>` (or HTTP basic auth with the key as user name)")]
    Unauthorized,
    /// A known credential without the scope the route needs; the message
    /// names the scope.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than {0} bytes; split the batch into smaller requests")]
    TooLarge(usize),
    #[error("content type `{0}` is not supported; send application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidDefinition(String),
    /// An inbound webhook or channel callback whose signature or
    /// timestamp does not verify; the message says which and how to sign.
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("{0}")]
    Conflict(String),
    /// A reply on a channel whose platform takes replies only within a
    /// window after the customer's last message, outside it; the message
    /// names the window, when the customer last wrote and what to do.
    #[error("{0}")]
    OutsideServiceWindow(String),
    /// A deletion refused because other definitions use what it deletes;
    /// the message names each and how to free it.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Replayed(String),
    #[error("{0}")]
    WrongChannel(String),
    #[error("{0}")]
    ClaimRequired(String),
    #[error("too many requests from this address; slow down and retry in a second")]
    TooManyRequests,
    #[error("{0}")]
    Gone(String),
    /// A known path asked with a method it does not take; the message
    /// names the ones it takes.
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    /// A channel's own API (WeCom) refused a call or did not answer; the
    /// message names the call and WeCom's errcode (never a token).
    #[error("{0}")]
    Upstream(String),
    /// The language model (`[ai]`) did not answer within its timeout.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// An AI route while no `[ai]` is configured; the message says how.
    #[error("{0}")]
    AiNotConfigured(String),
    /// The daily AI budget (`[ai] daily_budget_*`) is spent; the message
    /// names the budget and when it resets.
    #[error("{0}")]
    BudgetExhausted(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// One of every kind of error, for the documentation (`/openapi.json`
    /// lists each status and code from here, so the list cannot drift).
    pub fn catalog() -> Vec<(ApiError, &'static str)> {
        let s = String::new;
        vec![
            (ApiError::BadRequest(s()), "the body or a parameter cannot be read (invalid UTF-8, malformed JSON with line and column, a bad query parameter)"),
            (ApiError::InvalidEvent(s()), "no event of the request was valid; `rejected` names each index, field and fix"),
            (ApiError::InvalidSegment(s()), "the segment definition does not parse or reads something undefined"),
            (ApiError::Unauthorized, "no credential, or not a known key, token or session"),
            (ApiError::Forbidden(s()), "a known key or session without the scope the route needs (the message names it), or a console write without its CSRF token"),
            (ApiError::NotFound(s()), "no such person, segment or endpoint"),
            (ApiError::TooLarge(0), "the body is above the limit (default 8 MiB): split the batch"),
            (ApiError::UnsupportedMediaType(s()), "send application/json or application/x-ndjson"),
            (ApiError::InvalidDefinition(s()), "a journey, template, rule set, policy or send is invalid; the message names each fault's path and fix"),
            (ApiError::BadSignature(s()), "an inbound webhook or channel callback (WeCom) whose signature or timestamp does not verify, or that lacks one"),
            (ApiError::Conflict(s()), "the request is valid but the current state cannot take it (every group of a live code is full, no operator under the load limit)"),
            (ApiError::OutsideServiceWindow(s()), "a conversation reply on a channel whose platform takes replies only within a window after the customer's last message there (WeChat Official Accounts: 48 h), outside it; the message says when the customer last wrote; reply on another channel of the person or send a template message"),
            (ApiError::InUse(s()), "a DELETE refused because other definitions use what it would delete (a segment read by a journey or another segment, a property read by a segment, a template a journey, rule, campaign, live code or calendar sends); the message names every one and its fix, and nothing was deleted"),
            (ApiError::Replayed(s()), "a signed inbound webhook request that was already accepted (within the signature window); sign a new one to send again"),
            (ApiError::WrongChannel(s()), "an inbound webhook wrote an identity of another channel; each channel's secret writes only its own identities"),
            (ApiError::ClaimRequired(s()), "a public live code or signup named a person without a valid claim token; the channel bridge gets one with POST /v1/livecodes/{id}/claims or /v1/campaigns/{id}/claims"),
            (ApiError::TooManyRequests, "a public link (live code, invite, content, unsubscribe) or an inbound webhook was called too often from one address (`Retry-After` says when to retry)"),
            (ApiError::Gone(s()), "a campaign that ended (or has not started) was called"),
            (ApiError::MethodNotAllowed(s()), "the path exists but does not take this method; the message names the methods it takes"),
            (ApiError::RequestTimeout(s()), "the request body did not arrive within `body_read_timeout` (default 30 s)"),
            (ApiError::Upstream(s()), "a channel's own API (WeCom) refused the call siyu made for this request or did not answer; the message names the call and its errcode, and nothing was saved"),
            (ApiError::UpstreamTimeout(s()), "the language model ([ai] base_url) did not answer within [ai] timeout_ms; nothing was saved or sent"),
            (ApiError::AiNotConfigured(s()), "an AI route (suggestions, summaries) while the server has no [ai] section; the message says how to configure an OpenAI-compatible endpoint"),
            (ApiError::BudgetExhausted(s()), "the daily AI budget ([ai] daily_budget_requests or daily_budget_tokens) is spent; the message names it; it resets at midnight in the workspace time zone"),
            (ApiError::Internal(s()), "a server fault; details are in the server log, never in the response"),
        ]
    }

    /// (status, stable code) of every error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidEvent(_) => (StatusCode::BAD_REQUEST, "invalid_event"),
            ApiError::InvalidSegment(_) => (StatusCode::BAD_REQUEST, "invalid_segment"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::InvalidDefinition(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_definition")
            }
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::OutsideServiceWindow(_) => (StatusCode::CONFLICT, "outside_service_window"),
            ApiError::InUse(_) => (StatusCode::CONFLICT, "in_use"),
            ApiError::Replayed(_) => (StatusCode::CONFLICT, "replayed"),
            ApiError::WrongChannel(_) => (StatusCode::FORBIDDEN, "wrong_channel"),
            ApiError::ClaimRequired(_) => (StatusCode::UNAUTHORIZED, "claim_required"),
            ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream"),
            ApiError::UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ApiError::AiNotConfigured(_) => (StatusCode::CONFLICT, "ai_not_configured"),
            ApiError::BudgetExhausted(_) => (StatusCode::TOO_MANY_REQUESTS, "ai_budget_exhausted"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Every error's body (`/openapi.json`'s `Error` schema).
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// The stable snake_case code (`x-error-codes` in /openapi.json lists them).
    pub code: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = Json(ErrorBody {
            code,
            message: self.to_string(),
        });
        if let ApiError::TooManyRequests = self {
            return (status, [(axum::http::header::RETRY_AFTER, "1")], body).into_response();
        }
        (status, body).into_response()
    }
}

impl From<siyu_store::StoreError> for ApiError {
    fn from(e: siyu_store::StoreError) -> Self {
        match e {
            // A value the request supplied that the store cannot keep (a
            // setting nested too deeply to read back, a bad cursor …).
            siyu_store::StoreError::Invalid(m) => ApiError::BadRequest(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The framework's own rejections in the API's shape: an error answer
/// that is not JSON (axum's extractors answer text/plain: a query
/// parameter of the wrong type, a body of the wrong shape, a method a
/// path does not take) becomes `{"code", "message"}` with the same status,
/// its text kept and the fix added. Answers that are JSON already, HTML
/// pages and successes pass untouched.
pub async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Framework rejections are a line of text; anything longer is not one.
    let text = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (code, fix) = match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "see /openapi.json for this route's parameters and body",
        ),
        StatusCode::NOT_FOUND => ("not_found", "GET /openapi.json lists the endpoints"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "GET /openapi.json lists the methods each path takes",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "split the body into smaller requests"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "unprocessable_entity",
            "the JSON is well formed but a field is missing or of the wrong type; GET /openapi.json shows the body",
        ),
        s if s.is_server_error() => ("internal", ""),
        _ => ("bad_request", ""),
    };
    let message = match (status, text.is_empty()) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            format!("method {method} is not allowed on this path; {fix}")
        }
        (s, _) if s.is_server_error() => "internal error".to_string(),
        (_, true) => fix.to_string(),
        (_, false) if fix.is_empty() => text,
        (_, false) => format!("{text}; {fix}"),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_string(&ErrorBody { code, message }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
