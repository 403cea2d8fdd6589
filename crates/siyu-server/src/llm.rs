//! The language model by choice: any OpenAI-compatible chat-completions
//! endpoint (Ollama, vLLM, DeepSeek, Qwen/DashScope, OpenAI …) configured
//! in `[ai]`, and the I/O around `siyu_automation::llm` (which builds the
//! prompts, redacts, parses and keeps the budget's rule).
//!
//! What holds here:
//! - Nothing leaves the machine unredacted: every text of a prompt went
//!   through a `Redactor` (the routes build prompts only with one), and
//!   only the prompt is sent.
//! - A call never hangs: the connection has `connect_timeout_ms`, the
//!   whole call (connect, answer, every streamed chunk) `timeout_ms`; a
//!   body is read within `siyu_automation::llm::MAX_ANSWER_BYTES`.
//! - The daily budget is checked before a call and counted after it in the
//!   setting `ai/usage/<local date>` (`{"requests", "tokens"}`): a request
//!   is counted when it is made, its tokens when it answered (the server's
//!   `usage`, else an estimate). Nodes sharing a store share the count;
//!   two nodes calling at the same instant may overshoot by a request.
//! - Nothing is sent to a customer from here: suggestions are answers to
//!   the operator, who sends through the conversation reply (outbox,
//!   guardrails) with a click.
//!
//! `[ai]` absent: `state.0.ai` is None, the AI routes answer 409
//! `ai_not_configured` saying how to configure, and `/v1/ai/classify`
//! stays offline.

use crate::error::ApiError;
use crate::request::with_store;
use crate::AppState;
use serde::Deserialize;
use siyu_automation::llm::{
    self, Budget, BudgetExhausted, ChatMessage, Completion, DayUsage, LlmError, RedactKind,
    RedactionPolicy, SseDecoder,
};
use std::time::Duration;

/// Default whole-call timeout (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default connect timeout (ms).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default `min_confidence` below which `/v1/ai/classify` asks the model.
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.6;
/// Default number of recent messages a prompt is grounded in.
pub const DEFAULT_HISTORY: usize = 20;
/// Default `max_tokens` of an answer.
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// The setting prefix of the daily usage.
pub const USAGE_PREFIX: &str = "ai/usage/";

/// `[ai]` as written in the file; checked by [`AiFile::check`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiFile {
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    stream: Option<bool>,
    daily_budget_tokens: Option<u64>,
    daily_budget_requests: Option<u64>,
    redact: Option<Vec<String>>,
    redact_patterns: Option<Vec<String>>,
    min_confidence: Option<f64>,
    max_tokens: Option<u32>,
    history: Option<usize>,
}

/// `[ai]`, checked.
#[derive(Clone, Debug)]
pub struct AiConfig {
    /// The API root, e.g. `http://127.0.0.1:11434/v1` (Ollama),
    /// `https://api.deepseek.com/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`; env `SIYU_AI__API_KEY`.
    pub api_key: Option<siyu_connectors::Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Ask for `stream: true` and read the server-sent events.
    pub stream: bool,
    pub budget: Budget,
    pub redaction: RedactionPolicy,
    /// `/v1/ai/classify` asks the model when the offline confidence is below.
    pub min_confidence: f64,
    pub max_tokens: u32,
    /// Recent messages a prompt is grounded in.
    pub history: usize,
}

impl AiFile {
    /// The checked configuration; each fault names its key and the fix.
    pub fn check(self) -> anyhow::Result<AiConfig> {
        let base_url = self.base_url.unwrap_or_default();
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if base_url.is_empty() {
            anyhow::bail!("[ai] base_url: give the OpenAI-compatible API root, e.g. base_url = \"http://127.0.0.1:11434/v1\" (Ollama) or \"https://api.deepseek.com/v1\"");
        }
        if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            || reqwest::Url::parse(&base_url).is_err()
        {
            anyhow::bail!("[ai] base_url = {base_url:?}: give an http:// or https:// URL, e.g. \"http://127.0.0.1:11434/v1\"");
        }
        let model = self.model.unwrap_or_default().trim().to_string();
        if model.is_empty() || model.len() > 200 {
            anyhow::bail!(
                "[ai] model: give the model name the endpoint serves, e.g. model = \"qwen2.5:7b\""
            );
        }
        let ms = |name: &str, v: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            let v = v.unwrap_or(default);
            if !(1..=600_000).contains(&v) {
                anyhow::bail!("[ai] {name} = {v}: give milliseconds between 1 and 600000, e.g. {name} = {default}");
            }
            Ok(Duration::from_millis(v))
        };
        let timeout = ms("timeout_ms", self.timeout_ms, DEFAULT_TIMEOUT_MS)?;
        let connect_timeout = ms(
            "connect_timeout_ms",
            self.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        )?;
        for (name, v) in [
            ("daily_budget_tokens", self.daily_budget_tokens),
            ("daily_budget_requests", self.daily_budget_requests),
        ] {
            if v == Some(0) {
                anyhow::bail!(
                    "[ai] {name} = 0: give a positive number, or leave it out for no limit"
                );
            }
        }
        let kinds = match &self.redact {
            None => RedactKind::ALL.to_vec(),
            Some(list) => list
                .iter()
                .map(|k| {
                    RedactKind::from_id(k.trim()).ok_or_else(|| {
                        anyhow::anyhow!(
                            "[ai] redact: unknown kind {k:?}; the kinds are {}",
                            RedactKind::ALL.map(|k| k.id()).join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        let redaction =
            RedactionPolicy::new(&kinds, self.redact_patterns.as_deref().unwrap_or(&[]))
                .map_err(|e| anyhow::anyhow!("[ai] {e}"))?;
        let min_confidence = self.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE);
        if !(0.0..=1.0).contains(&min_confidence) {
            anyhow::bail!("[ai] min_confidence = {min_confidence}: give a number from 0 to 1 (0: never ask the model), e.g. 0.6");
        }
        let max_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(16..=8192).contains(&max_tokens) {
            anyhow::bail!("[ai] max_tokens = {max_tokens}: give 16 to 8192, e.g. 512");
        }
        let history = self.history.unwrap_or(DEFAULT_HISTORY);
        if !(1..=100).contains(&history) {
            anyhow::bail!("[ai] history = {history}: give 1 to 100 messages, e.g. 20");
        }
        Ok(AiConfig {
            base_url,
            model,
            api_key: self
                .api_key
                .filter(|k| !k.trim().is_empty())
                .map(siyu_connectors::Secret::new),
            timeout,
            connect_timeout,
            stream: self.stream.unwrap_or(false),
            budget: Budget {
                requests_per_day: self.daily_budget_requests,
                tokens_per_day: self.daily_budget_tokens,
            },
            redaction,
            min_confidence,
            max_tokens,
            history,
        })
    }
}

/// The configured model server: its checked config and one HTTP client
/// (the connectors' client crate, reqwest, with its own timeouts).
pub struct Llm {
    pub config: AiConfig,
    client: reqwest::Client,
}

/// Why a call to the model failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the model server did not answer within {0} ms ([ai] timeout_ms)")]
    Timeout(u128),
    #[error("cannot reach the model server at [ai] base_url: {0}")]
    Connect(String),
    #[error("the model server answered HTTP {status}{}{hint}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        status: u16,
        message: Option<String>,
        hint: &'static str,
    },
    #[error("{0}")]
    Answer(#[from] LlmError),
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Timeout(_) => ApiError::UpstreamTimeout(e.to_string()),
            e => ApiError::Upstream(e.to_string()),
        }
    }
}

impl Llm {
    pub fn new(config: AiConfig) -> anyhow::Result<Llm> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("siyu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("[ai]: cannot build the http client: {e}"))?;
        Ok(Llm { config, client })
    }

    /// One chat completion of `messages` (already redacted), asked for
    /// streamed or not as configured and read as the server answers (an
    /// event stream by its content type), within the timeouts and size
    /// limits.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, CallError> {
        let limit = self.config.timeout;
        match tokio::time::timeout(limit, self.complete_inner(messages)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout(limit.as_millis())),
        }
    }

    async fn complete_inner(&self, messages: &[ChatMessage]) -> Result<Completion, CallError> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "stream": self.config.stream,
            "temperature": 0.3,
            "max_tokens": self.config.max_tokens,
        });
        if self.config.stream {
            // The tokens of a streamed answer, in its last chunk (servers
            // that do not know it ignore it; the tokens are then estimated).
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        let mut req = self
            .client
            .post(format!("{}/chat/completions", self.config.base_url))
            .json(&body);
        if let Some(k) = &self.config.api_key {
            req = req.bearer_auth(k.expose());
        }
        let transport = |e: reqwest::Error| {
            let e = e.without_url();
            if e.is_timeout() {
                CallError::Timeout(self.config.timeout.as_millis())
            } else {
                CallError::Connect(e.to_string())
            }
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let mut body = Vec::new();
            while let Some(c) = resp.chunk().await.map_err(transport)? {
                body.extend_from_slice(&c);
                if body.len() > 16 * 1024 {
                    break;
                }
            }
            let hint = match status.as_u16() {
                401 | 403 => " (check [ai] api_key)",
                404 => " (check [ai] base_url — it usually ends in /v1 — and model)",
                429 => " (the model server's own rate limit; try again later)",
                _ => "",
            };
            return Err(CallError::Status {
                status: status.as_u16(),
                message: llm::error_message(&body),
                hint,
            });
        }
        // Read as the server answered, whatever was asked: a server that
        // ignores `stream` answers one JSON body, and an event stream is
        // read as one even when it was not asked for.
        let sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        if sse {
            let mut d = SseDecoder::new();
            while let Some(c) = resp.chunk().await.map_err(transport)? {
                d.push(&c)?;
                if d.is_done() {
                    break;
                }
            }
            Ok(d.finish()?)
        } else {
            let mut body = Vec::new();
            while let Some(c) = resp.chunk().await.map_err(transport)? {
                if body.len() + c.len() > llm::MAX_ANSWER_BYTES {
                    return Err(LlmError::Oversize(llm::MAX_ANSWER_BYTES).into());
                }
                body.extend_from_slice(&c);
            }
            Ok(llm::parse_completion(&body)?)
        }
    }
}

/// The configured model, or 409 saying how to configure one.
pub fn configured(state: &AppState) -> Result<&Llm, ApiError> {
    state.0.ai.as_deref().ok_or_else(|| {
        ApiError::AiNotConfigured(
            "no language model is configured: add an [ai] section to the server's config file (base_url of an OpenAI-compatible endpoint such as Ollama's http://127.0.0.1:11434/v1, model, and api_key or SIYU_AI__API_KEY if it needs one) and restart; the offline intent classifier needs none".into(),
        )
    })
}

/// Today's date in the workspace time zone, `YYYY-MM-DD`.
pub fn today(state: &AppState) -> String {
    let tz = crate::zone::current(state);
    let (y, m, d) = siyu_automation::schedule::local_date(crate::request::now(), &tz);
    format!("{y:04}-{m:02}-{d:02}")
}

fn read_usage(store: &mut dyn siyu_store::Store, key: &str) -> siyu_store::Result<DayUsage> {
    Ok(store
        .get_setting(key)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// What was spent on `day`.
pub async fn usage(state: &AppState, day: &str) -> Result<DayUsage, ApiError> {
    let key = format!("{USAGE_PREFIX}{day}");
    with_store(state, move |store| Ok(read_usage(store, &key)?)).await
}

/// What one call answered, and what it cost.
pub struct Answer {
    pub completion: Completion,
    pub tokens: u64,
    pub model: String,
}

/// One call of `kind` (suggest, summarize, classify): the budget checked
/// and the request counted, the call, its tokens counted, the metrics.
pub async fn call(
    state: &AppState,
    kind: &'static str,
    messages: Vec<ChatMessage>,
) -> Result<Answer, ApiError> {
    let llm = configured(state)?;
    let key = format!("{USAGE_PREFIX}{}", today(state));
    let budget = llm.config.budget;
    let k = key.clone();
    with_store(state, move |store| {
        let mut used = read_usage(store, &k)?;
        budget
            .admit(used)
            .map_err(|e: BudgetExhausted| ApiError::BudgetExhausted(e.to_string()))?;
        used.requests += 1;
        store.put_setting(&k, Some(&serde_json::to_value(used).unwrap_or_default()))?;
        Ok(())
    })
    .await
    .inspect_err(|e| {
        if matches!(e, ApiError::BudgetExhausted(_)) {
            state.0.metrics.ai_call(kind, "budget", 0);
        }
    })?;
    let result = llm.complete(&messages).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(CallError::Timeout(_)) => "timeout",
        Err(CallError::Connect(_) | CallError::Status { .. }) => "error",
        Err(CallError::Answer(_)) => "bad_answer",
    };
    let completion = match result {
        Ok(c) => c,
        Err(e) => {
            state.0.metrics.ai_call(kind, outcome, 0);
            tracing::warn!(kind, error = %e, "ai call failed");
            return Err(e.into());
        }
    };
    let tokens = llm::tokens_spent(completion.usage.as_ref(), &messages, &completion.content);
    state.0.metrics.ai_call(kind, outcome, tokens);
    with_store(state, move |store| {
        let mut used = read_usage(store, &key)?;
        used.tokens = used.tokens.saturating_add(tokens);
        store.put_setting(&key, Some(&serde_json::to_value(used).unwrap_or_default()))?;
        Ok(())
    })
    .await?;
    Ok(Answer {
        model: completion
            .model
            .clone()
            .unwrap_or_else(|| llm.config.model.clone()),
        completion,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> anyhow::Result<AiConfig> {
        let f: AiFile = toml::from_str(toml_text)?;
        f.check()
    }

    #[test]
    fn ai_sections_are_checked_naming_the_key() {
        let c = file("base_url = \"http://127.0.0.1:11434/v1/\"\nmodel = \"qwen2.5\"").unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(c.redaction.kinds(), &RedactKind::ALL);
        assert_eq!(c.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        for (text, names) in [
            ("model = \"m\"", "base_url"),
            ("base_url = \"ftp://x\"\nmodel = \"m\"", "base_url"),
            ("base_url = \"http://x\"", "model"),
            (
                "base_url = \"http://x\"\nmodel = \"m\"\ntimeout_ms = 0",
                "timeout_ms",
            ),
            (
                "base_url = \"http://x\"\nmodel = \"m\"\nredact = [\"phones\"]",
                "redact",
            ),
            (
                "base_url = \"http://x\"\nmodel = \"m\"\nredact_patterns = [\"(\"]",
                "redact_patterns[0]",
            ),
            (
                "base_url = \"http://x\"\nmodel = \"m\"\nmin_confidence = 2.0",
                "min_confidence",
            ),
            (
                "base_url = \"http://x\"\nmodel = \"m\"\ndaily_budget_tokens = 0",
                "daily_budget_tokens",
            ),
        ] {
            let e = file(text).unwrap_err().to_string();
            assert!(e.contains(names), "{text}: {e}");
        }
        assert!(file("base_url = \"http://x\"\nmodel = \"m\"\nbudget = 1")
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }

    #[test]
    fn the_config_file_and_env_give_the_ai_section() {
        use crate::config::{Config, Overrides};
        let dir = std::env::temp_dir().join(format!("siyu-config-ai-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            "[ai]\nbase_url = \"https://api.deepseek.com/v1\"\nmodel = \"deepseek-chat\"\nredact = [\"phone\", \"name\"]\ndaily_budget_requests = 10\n",
        )
        .unwrap();
        let env = |k: &str| (k == "SIYU_AI__API_KEY").then(|| "sk-env".to_string());
        let c = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        let ai = c.ai.expect("[ai] read");
        assert_eq!(ai.api_key.as_ref().map(|k| k.expose()), Some("sk-env"));
        assert_eq!(ai.redaction.kinds(), &[RedactKind::Phone, RedactKind::Name]);
        assert_eq!(ai.budget.requests_per_day, Some(10));
        assert!(
            !format!("{ai:?}").contains("sk-env"),
            "the key is not in Debug output"
        );
        // No [ai]: none, and a key for it is an error naming the section.
        assert!(Config::load(None, &|_| None, Overrides::default())
            .unwrap()
            .ai
            .is_none());
        let e = Config::load(None, &env, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("SIYU_AI__API_KEY") && e.contains("[ai]"), "{e}");
        std::fs::write(
            &file,
            "[ai]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\nhistory = 0\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&file), &|_| None, Overrides::default()).unwrap_err()
        );
        assert!(e.contains("history") && e.contains("siyu.toml"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
