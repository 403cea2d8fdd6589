//! The console's static files, embedded in the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const CHARTS_JS: &str = include_str!("../assets/charts.js");
const AUTOMATION_JS: &str = include_str!("../assets/automation.js");
const GROWTH_JS: &str = include_str!("../assets/growth.js");
const CHANNELS_JS: &str = include_str!("../assets/channels.js");
const QUICK_REPLIES_JS: &str = include_str!("../assets/quickreplies.js");
const INBOX_JS: &str = include_str!("../assets/inbox.js");
const LIVE_JS: &str = include_str!("../assets/live.js");
const COMPLIANCE_JS: &str = include_str!("../assets/compliance.js");
const PARTNERS_JS: &str = include_str!("../assets/partners.js");
const MOMENTS_JS: &str = include_str!("../assets/moments.js");
const EDITORS_JS: &str = include_str!("../assets/editors.js");
const I18N_JS: &str = include_str!("../assets/i18n.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// Security headers of every console page: no framing, no inline script,
/// nothing loaded from elsewhere. `blob:` images: the invite poster is
/// fetched with the session and shown from a blob URL.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "charts.js" => ("text/javascript; charset=utf-8", CHARTS_JS),
        "automation.js" => ("text/javascript; charset=utf-8", AUTOMATION_JS),
        "growth.js" => ("text/javascript; charset=utf-8", GROWTH_JS),
        "channels.js" => ("text/javascript; charset=utf-8", CHANNELS_JS),
        "quickreplies.js" => ("text/javascript; charset=utf-8", QUICK_REPLIES_JS),
        "inbox.js" => ("text/javascript; charset=utf-8", INBOX_JS),
        "live.js" => ("text/javascript; charset=utf-8", LIVE_JS),
        "compliance.js" => ("text/javascript; charset=utf-8", COMPLIANCE_JS),
        "partners.js" => ("text/javascript; charset=utf-8", PARTNERS_JS),
        "moments.js" => ("text/javascript; charset=utf-8", MOMENTS_JS),
        "editors.js" => ("text/javascript; charset=utf-8", EDITORS_JS),
        "i18n.js" => ("text/javascript; charset=utf-8", I18N_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => {
            return crate::error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no console asset `{file}`"),
            )
        }
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
