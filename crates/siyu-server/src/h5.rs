//! The pages a customer sees (H5): the invite landing, the live code, the
//! unsubscribe page and the error answers of the public links, as small
//! mobile HTML pages.
//!
//! Why here and why this way: the public links are printed on posters
//! and scanned with a phone, mostly inside WeChat's in-app browser, where
//! a JSON answer is a dead end. The same links keep answering JSON to API
//! clients (the channel bridges, the console, tests): [`wants_html`] is the
//! one content-negotiation rule — HTML only when `Accept` prefers
//! `text/html`; absent, `*/*` or `application/json` is JSON — and
//! [`Answer`] carries either form out of a handler, documented in
//! `/openapi.json` as both (`Part::Page`).
//!
//! The pages load nothing from elsewhere: one inline `<style>` (allowed by
//! its hash in the page's own strict `Content-Security-Policy`, no
//! `unsafe-inline`), images only from this server (the QR PNGs), no
//! script at all, so they are light on a slow network and work where
//! scripts or CDNs are blocked. Text is zh-CN first with the English
//! underneath. Every value that reaches a page (campaign and group names,
//! landing text, URLs, tokens) goes through [`escape`] or
//! [`path_segment`] at the one place it is inserted: names are user input.
//! Route modules use this module; it uses none of them.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::OnceLock;

/// The whole style sheet of every page (inline, allowed by its hash).
const STYLE: &str = "*{box-sizing:border-box}\
body{margin:0;background:#f2f3f5;color:#1f2329;font:16px/1.55 -apple-system,BlinkMacSystemFont,\"PingFang SC\",\"Hiragino Sans GB\",\"Microsoft YaHei\",\"Noto Sans CJK SC\",sans-serif;-webkit-text-size-adjust:100%}\
main{max-width:480px;margin:0 auto;padding:20px 14px 32px}\
.card{background:#fff;border-radius:14px;padding:20px 18px;margin:0 0 12px}\
h1{font-size:22px;line-height:1.3;margin:0 0 6px}h2{font-size:16px;margin:0 0 8px}\
p{margin:0 0 10px}.en{display:block;color:#8a8f99;font-size:13px;font-weight:400;line-height:1.4}\
.kicker{color:#07a050;font-size:15px}.muted{color:#8a8f99;font-size:13px}\
ul{list-style:none;margin:0;padding:0}li{display:flex;justify-content:space-between;gap:12px;padding:10px 0;border-top:1px solid #eef0f2}\
li:first-child{border-top:0}li b{color:#e8590c;white-space:nowrap}\
.qr{display:block;width:220px;height:220px;margin:6px auto 8px;image-rendering:pixelated}.center{text-align:center}\
.btn{display:block;width:100%;margin:12px 0 0;padding:12px;border:0;border-radius:10px;background:#07c160;color:#fff;font-size:17px;text-align:center;text-decoration:none;font-family:inherit}\
.btn .en{color:#e6fff0}.icon{font-size:40px;line-height:1;margin:0 0 8px}.bad h1{color:#c92a2a}";

/// The page's `Content-Security-Policy`: nothing but this server's images
/// and the one inline style sheet.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; img-src 'self'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    })
}

/// `s` safe as HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    siyu_automation::template::escape_html(s)
}

/// `s` as one URL path segment or query value: everything but RFC 3986's
/// unreserved characters percent-encoded (so also safe in an attribute).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Chinese first, the English underneath (both escaped).
pub fn both(zh: &str, en: &str) -> String {
    format!("{}<span class=en lang=en>{}</span>", escape(zh), escape(en))
}

/// Whether the caller asked for a page: `Accept` names `text/html` (or
/// XHTML) with a higher weight than `application/json`. No `Accept`,
/// `*/*`, `application/json`, or a tie: JSON, as before pages existed.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut html, mut json) = (0.0f32, 0.0f32);
    // A browser sends a handful of ranges; more is not a browser.
    for range in accept.split(',').take(32) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
            })
            .and_then(|q| q.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" => json = json.max(q),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// A whole page: `title` (plain text) and `body` (HTML whose inserted
/// values are already escaped), with the headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <meta name=referrer content=no-referrer>\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    // The pages count visits and name people: never from a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The link's code or token never leaks to where the page leads.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Which public link an error page is for: it words the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Invite,
    LiveCode,
    Unsubscribe,
    Content,
    Partner,
}

/// The page a browser gets instead of an error's JSON: what happened and
/// what to do, in both languages, and the error's stable code.
pub fn error_page(e: ApiError, link: Link) -> Response {
    let (status, code) = e.status_and_code();
    let (zh, en, hint_zh, hint_en) = match (status.as_u16(), link) {
        (410, Link::Invite) => (
            "活动已结束",
            "This campaign is not open",
            "这个邀请活动已结束或尚未开始。",
            "The campaign has ended or has not started yet.",
        ),
        (410, _) => (
            "二维码已失效",
            "This code is no longer active",
            "请向商家索取新的二维码。",
            "Ask the shop for a new code.",
        ),
        (409, Link::LiveCode) => (
            "群已满",
            "All groups are full",
            "当前所有群和客服都已满员，请稍后再扫码。",
            "Every group and operator is full right now; scan again later.",
        ),
        (404, _) | (400, _) => (
            "链接无效",
            "This link is not valid",
            "请检查链接是否完整，或向发送者索取新的链接。",
            "Check that the link is complete, or ask the sender for a new one.",
        ),
        (401, _) => (
            "链接已过期",
            "This link has expired",
            "请回到聊天中重新打开最新的链接。",
            "Open the newest link from your chat again.",
        ),
        (429, _) => (
            "访问太频繁",
            "Too many requests",
            "请稍等几秒后刷新。",
            "Wait a few seconds, then reload.",
        ),
        _ => (
            "暂时无法打开",
            "Something went wrong",
            "请稍后再试。",
            "Please try again later.",
        ),
    };
    // The API's message speaks to the operator (routes, fixes): the page
    // names only the stable code, for the shop's support.
    let body = format!(
        "<div class=\"card bad center\"><div class=icon aria-hidden=true>!</div><h1>{}</h1><p>{}</p>\
         <p class=muted>错误代码 Error code: {}</p></div>",
        both(zh, en),
        both(hint_zh, hint_en),
        escape(code),
    );
    let retry = matches!(e, ApiError::TooManyRequests);
    if let ApiError::Internal(detail) = &e {
        tracing::error!(%detail, "internal error");
    }
    let mut response = page(status, &format!("{zh} · {en}"), &body);
    if retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An error answer for a caller that `html` or not: its page, else the
/// API's JSON error.
pub fn error(html: bool, e: ApiError, link: Link) -> Response {
    if html {
        error_page(e, link)
    } else {
        e.into_response()
    }
}

/// What a negotiated public link answers: its JSON (API clients) or a
/// page or error already made into a response (see [`wants_html`]).
/// Documented as the JSON type `T` or `text/html`.
pub enum Answer<T> {
    Json(T),
    Response(Response),
}

impl<T> Answer<T> {
    /// The answer to `result` for a caller that `html` or not: JSON or
    /// the API's error, else `page(value)` or the error's page.
    pub fn negotiate(
        html: bool,
        link: Link,
        result: Result<T, ApiError>,
        page: impl FnOnce(T) -> Response,
    ) -> Answer<T> {
        match (result, html) {
            (Ok(v), false) => Answer::Json(v),
            (Ok(v), true) => Answer::Response(page(v)),
            (Err(e), html) => Answer::Response(error(html, e, link)),
        }
    }
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let mut response = match self {
            Answer::Json(v) => Json(v).into_response(),
            Answer::Response(r) => r,
        };
        // The same URL answers two forms: caches must key on Accept.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        response
    }
}

impl<T: schemars::JsonSchema> crate::openapi::Answered for Answer<T> {
    fn add(doc: &mut crate::openapi::RouteDoc) {
        doc.answer = Some(crate::openapi::Part::page::<T>());
    }
}

/// A PNG answer (the QR codes), cacheable for `max_age` seconds.
pub fn png(bytes: Vec<u8>, max_age: u32) -> Response {
    png_cached(bytes, &format!("public, max-age={max_age}"))
}

/// A PNG answer with its `Cache-Control` (a poster drawn for one key:
/// `private, max-age=300`).
pub fn png_cached(bytes: Vec<u8>, cache: &str) -> Response {
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The side of a QR PNG, in pixels: about 8 px per module for a link of
/// 100 characters, sharp on a phone and on paper.
pub const QR_SIZE: u32 = 400;

/// A QR code of `link` as a PNG, rendered off the async runtime.
pub async fn qr(link: String) -> Result<Response, ApiError> {
    let bytes = crate::request::blocking(move || {
        siyu_poster::qr_png(&link, QR_SIZE)
            .map_err(|e| ApiError::Internal(format!("qr code of a public link: {e}")))
    })
    .await?;
    Ok(png(bytes, 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn browsers_get_pages_and_api_clients_json() {
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("text/html, application/json")));
        assert!(!wants_html(&accept("text/html;q=0")));
        assert!(!wants_html(&accept("text/html;q=0.5, application/json")));
        assert!(wants_html(&accept("text/html")));
        // Chromium's and WeChat's navigation Accept.
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        )));
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(path_segment("a b/ç?\"<"), "a%20b%2F%C3%A7%3F%22%3C");
    }

    #[test]
    fn the_style_is_allowed_by_its_hash_and_nothing_else_is() {
        let p = csp();
        assert!(p.starts_with("default-src 'none'; img-src 'self'; style-src 'sha256-"));
        assert!(!p.contains("unsafe-inline") && !p.contains("script-src"));
    }
}
