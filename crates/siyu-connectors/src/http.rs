//! What the HTTP connectors share: building a client with a timeout, turning
//! transport errors and statuses into [`SendError`]s, the access-token cache
//! of the Tencent APIs (WeCom, WeChat) with its health, and small encoders.
//!
//! One token cache per account and process: the dispatcher's connector, the
//! WeCom sync's and the callbacks' each build a connector from the same
//! `[connectors.wecom]`, and each asking Tencent for its own token would
//! triple the `gettoken` calls (an Official Account's fetch even invalidates
//! the token before it). [`TokenCache::shared`] hands them one cache, and
//! its [`TokenHealth`] is what the console's channel page shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::ConfigError;
use crate::SendError;

/// Default request timeout of every remote.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 5_000;

pub(crate) fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// One client per connector: connection pool, total request timeout.
pub(crate) fn client(section: &str, timeout_ms: u64) -> Result<reqwest::Client, ConfigError> {
    let timeout = Duration::from_millis(timeout_ms.max(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("siyu-connectors/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Invalid {
            field: format!("{section}.timeout_ms"),
            reason: format!("cannot build the http client: {e}"),
        })
}

/// A `base_url` must be `http://` or `https://`; a trailing `/` is dropped so
/// paths can be appended with `format!("{base}/path")`.
pub(crate) fn base_url(field: &str, value: &str) -> Result<String, ConfigError> {
    Ok(url(field, value)?.trim_end_matches('/').to_string())
}

/// A full `http://` or `https://` URL, kept as given (trimmed).
pub(crate) fn url(field: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::Missing(field.to_string()));
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            field: field.to_string(),
            reason: "must start with http:// or https://".to_string(),
        });
    }
    reqwest::Url::parse(value).map_err(|e| ConfigError::Invalid {
        field: field.to_string(),
        reason: e.to_string(),
    })?;
    Ok(value.to_string())
}

/// Transport failures: a request that never got a status.
pub(crate) fn transport_error(what: &str, e: reqwest::Error) -> SendError {
    // The URL may carry an access_token or a secret in its query: never
    // let it into an error message (they end up in dead-letter records).
    let e = e.without_url();
    if e.is_builder() {
        // A URL or header the client refuses to send will never work.
        return SendError::Permanent(format!("{what}: invalid request: {e}"));
    }
    if e.is_timeout() {
        return SendError::Retryable(format!("{what}: timed out"));
    }
    if e.is_connect() {
        return SendError::Retryable(format!("{what}: cannot connect: {e}"));
    }
    SendError::Retryable(format!("{what}: {e}"))
}

/// Whether a non-2xx HTTP status is worth retrying: 408, 429 and 5xx are.
pub(crate) fn status_error(what: &str, status: reqwest::StatusCode, body: &str) -> SendError {
    let code = status.as_u16();
    let detail = format!("{what}: http {code}{}", snippet(body));
    if code == 408 || code == 429 || status.is_server_error() {
        SendError::Retryable(detail)
    } else {
        SendError::Permanent(detail)
    }
}

/// At most 200 characters of a response body, for error messages.
pub(crate) fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let cut: String = body.chars().take(200).collect();
    if cut.len() < body.len() {
        format!(": {cut}...")
    } else {
        format!(": {cut}")
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let pairs = s.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Tencent's `errcode`s meaning "this access_token is not (or no longer)
/// valid": 40001 invalid credential, 40014 invalid access_token, 42001
/// access_token expired. On these a connector refreshes the token once.
pub(crate) fn is_stale_token(errcode: i64) -> bool {
    matches!(errcode, 40001 | 40014 | 42001)
}

/// Tencent's `errcode`s worth retrying: -1 system busy, 45009 API rate limit.
/// 45033 (WeCom: too many concurrent calls) is the same kind.
pub(crate) fn is_retryable_errcode(errcode: i64) -> bool {
    matches!(errcode, -1 | 45009 | 45033)
}

pub(crate) fn errcode_error(what: &str, errcode: i64, errmsg: &str) -> SendError {
    let detail = format!("{what}: errcode {errcode}: {errmsg}");
    if is_retryable_errcode(errcode) {
        SendError::Retryable(detail)
    } else {
        SendError::Permanent(detail)
    }
}

/// A cached access_token with its expiry. The mutex is held while fetching,
/// so concurrent sends wait for one fetch instead of each asking for a token
/// (every fetch invalidates the previous token at Tencent's side).
#[derive(Default)]
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Option<(String, Instant)>>,
    health: Mutex<TokenHealth>,
}

/// What an account's access token has been doing in this process: the
/// console's "token health". Times are epoch seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TokenHealth {
    /// `valid` (a token is cached and not expired), `failing` (the last
    /// fetch failed: see `last_error`), `expired` (the cached one ran out
    /// and none was needed since) or `not_fetched` (no call yet).
    pub state: TokenState,
    /// When the cached token was fetched.
    pub fetched_at: Option<i64>,
    /// When siyu stops using it (Tencent's `expires_in`, less a margin).
    pub expires_at: Option<i64>,
    /// Tokens fetched since the process started.
    pub fetches: u64,
    /// Answers saying the token was invalid or expired (errcode
    /// 40001/40014/42001), each followed by a refresh.
    pub stale_answers: u64,
    /// The last failed fetch (Tencent's errcode and errmsg, or the
    /// transport error; never the secret).
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    #[default]
    NotFetched,
    Valid,
    Expired,
    Failing,
}

fn epoch_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TokenCache {
    /// The process's one cache for the account `key` names (the API, its
    /// base URL and credentials): every connector built from the same
    /// configuration shares its token and its health.
    pub(crate) fn shared(key: &str) -> Arc<TokenCache> {
        static CACHES: OnceLock<Mutex<HashMap<String, Weak<TokenCache>>>> = OnceLock::new();
        // The key holds a secret: only its digest is kept as the map key.
        let digest = crate::http::hex(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
        let mut caches = CACHES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        caches.retain(|_, c| c.strong_count() > 0);
        if let Some(cache) = caches.get(&digest).and_then(Weak::upgrade) {
            return cache;
        }
        let cache = Arc::new(TokenCache::default());
        caches.insert(digest, Arc::downgrade(&cache));
        cache
    }

    /// The cached token, or the one `fetch` returns (with its lifetime).
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<String, SendError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), SendError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((token, expires)) = slot.as_ref() {
            if Instant::now() < *expires {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = match fetch().await {
            Ok(fetched) => fetched,
            Err(e) => {
                let mut health = self.health();
                health.last_error = Some(e.to_string());
                health.last_error_at = Some(epoch_now());
                return Err(e);
            }
        };
        // `expires_in` is remote input: bound it so the Instant cannot overflow.
        let lifetime = lifetime.min(Duration::from_secs(86_400));
        // Refresh a little early: a token that expires in flight costs a retry.
        let margin = (lifetime / 10).min(Duration::from_secs(300));
        *slot = Some((token.clone(), Instant::now() + lifetime - margin));
        let now = epoch_now();
        let mut health = self.health();
        health.fetched_at = Some(now);
        health.expires_at = Some(now + (lifetime - margin).as_secs() as i64);
        health.fetches += 1;
        Ok(token)
    }

    /// Forgets `stale` if it is still the cached token (another send may
    /// already have replaced it).
    pub(crate) async fn invalidate(&self, stale: &str) {
        let mut slot = self.slot.lock().await;
        self.health().stale_answers += 1;
        if slot.as_ref().is_some_and(|(t, _)| t == stale) {
            *slot = None;
            let mut health = self.health();
            health.expires_at = Some(epoch_now());
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, TokenHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The health as of `now` (epoch seconds), its `state` derived.
    pub(crate) fn health_at(&self, now: i64) -> TokenHealth {
        let mut h = self.health().clone();
        h.state = match (h.fetched_at, h.last_error_at) {
            (_, Some(failed)) if h.fetched_at.is_none_or(|f| failed >= f) => TokenState::Failing,
            (None, _) => TokenState::NotFetched,
            (Some(_), _) if h.expires_at.is_some_and(|e| now >= e) => TokenState::Expired,
            _ => TokenState::Valid,
        };
        h
    }
}

/// A Tencent-style API (WeCom, WeChat Official Accounts): every call carries
/// `?access_token=`, fetched from `token_path` with `token_query` and cached;
/// an answer saying the token is stale refreshes it and repeats the call once.
pub(crate) struct TencentApi {
    pub(crate) what: &'static str,
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token_path: &'static str,
    pub(crate) token_query: Vec<(&'static str, String)>,
    pub(crate) tokens: Arc<TokenCache>,
}

impl TencentApi {
    /// An API whose token cache is the process's one for this account.
    pub(crate) fn new(
        what: &'static str,
        client: reqwest::Client,
        base: String,
        token_path: &'static str,
        token_query: Vec<(&'static str, String)>,
    ) -> TencentApi {
        let mut key = format!("{what}\n{base}{token_path}");
        for (k, v) in &token_query {
            key.push_str(&format!("\n{k}={v}"));
        }
        TencentApi {
            what,
            client,
            base,
            token_path,
            token_query,
            tokens: TokenCache::shared(&key),
        }
    }

    /// The token's health (see [`TokenHealth`]).
    pub(crate) fn token_health(&self) -> TokenHealth {
        self.tokens.health_at(epoch_now())
    }

    /// Fetches a token now unless one is cached: the console's "check".
    pub(crate) async fn check_token(&self) -> Result<TokenHealth, SendError> {
        self.tokens.get(|| self.fetch_token()).await?;
        Ok(self.token_health())
    }

    async fn fetch_token(&self) -> Result<(String, Duration), SendError> {
        let what = self.what;
        let resp = self
            .client
            .get(format!("{}{}", self.base, self.token_path))
            .query(&self.token_query)
            .send()
            .await
            .map_err(|e| transport_error(what, e))?;
        let (_, v) = json_response(what, resp).await?;
        let errcode = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
        if errcode != 0 {
            let errmsg = v.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
            return Err(errcode_error(&format!("{what} token"), errcode, errmsg));
        }
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SendError::Retryable(format!("{what} token: no access_token")))?;
        let expires_in = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(7200);
        Ok((token.to_string(), Duration::from_secs(expires_in)))
    }

    /// POSTs `body` to `path?access_token=..`; `Ok` only for `errcode` 0.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), SendError> {
        checked(self.what, self.call(path, &[], Some(body)).await?)
    }

    /// GETs `path?access_token=..&query..`; `Ok` only for `errcode` 0.
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Value), SendError> {
        checked(self.what, self.call(path, query, None).await?)
    }

    /// One call (a POST of `body`, else a GET), the token refreshed once
    /// if the answer says it is stale; the answer is returned whatever
    /// its `errcode` (for callers that give some errcodes a meaning).
    pub(crate) async fn call(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), SendError> {
        let what = self.what;
        let mut refreshed = false;
        loop {
            let token = self.tokens.get(|| self.fetch_token()).await?;
            let url = format!("{}{path}", self.base);
            let request = match body {
                Some(b) => self.client.post(url).json(b),
                None => self.client.get(url),
            };
            let resp = request
                .query(&[("access_token", token.as_str())])
                .query(query)
                .send()
                .await
                .map_err(|e| transport_error(what, e))?;
            let (status, v) = json_response(what, resp).await?;
            let errcode = errcode_of(&v);
            if is_stale_token(errcode) && !refreshed {
                refreshed = true;
                self.tokens.invalidate(&token).await;
                continue;
            }
            return Ok((status, v));
        }
    }
}

/// An answer's `errcode` (0 when absent).
pub(crate) fn errcode_of(v: &serde_json::Value) -> i64 {
    v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0)
}

/// `Ok` for `errcode` 0, else its [`errcode_error`].
fn checked(
    what: &str,
    (status, v): (u16, serde_json::Value),
) -> Result<(u16, serde_json::Value), SendError> {
    match errcode_of(&v) {
        0 => Ok((status, v)),
        errcode => {
            let errmsg = v.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
            Err(errcode_error(what, errcode, errmsg))
        }
    }
}

/// Reads a JSON object from a 2xx response; a non-2xx status is classified by
/// [`status_error`], an unreadable body is retryable (a proxy's error page).
pub(crate) async fn json_response(
    what: &str,
    resp: reqwest::Response,
) -> Result<(u16, serde_json::Value), SendError> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| transport_error(what, e))?;
    if !status.is_success() {
        return Err(status_error(what, status, &text));
    }
    let value = serde_json::from_str(&text).map_err(|e| {
        SendError::Retryable(format!(
            "{what}: unreadable response ({e}){}",
            snippet(&text)
        ))
    })?;
    Ok((status.as_u16(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&bytes), "00017f80ff");
        assert_eq!(unhex("00017F80ff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
