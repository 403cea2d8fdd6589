//! AI helpers: a customer message's intent, offline (`siyu_automation::intent`,
//! a model trained at first use on the corpus compiled into the binary; no
//! network, no downloaded weights), and — when `[ai]` configures an
//! OpenAI-compatible endpoint (`crate::llm`) — reply suggestions, conversation
//! summaries and a fallback classification for messages the offline model is
//! unsure of, with the daily usage.
//!
//! Every answer that a language model wrote says so (`"ai": true`, the
//! model). Prompts are built by `siyu_automation::llm` from the person's
//! profile, recent messages and the closest quick replies, redacted before
//! they leave; the originals are put back into the answer here. Nothing is
//! sent to the customer: a suggestion is text for the operator's reply box,
//! and only the operator's reply (`POST /v1/conversations/{person}/messages`:
//! outbox, guardrails) sends.

use crate::error::ApiError;
use crate::llm;
use crate::request::{now, parse_json, read_engine, resolve, route, with_store, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_automation::intent::{self, Classification};
use siyu_automation::llm::{
    Budget, Grounding, QuickAnswer, Redactor, Speaker, Turn, MAX_SUGGESTIONS,
};
use siyu_automation::quick_reply::{QuickReply, SETTINGS_PREFIX as QUICK_REPLY_PREFIX};
use siyu_domain::EventType;
use std::collections::BTreeMap;

/// The longest text classified, in bytes.
pub const MAX_CLASSIFY_BYTES: usize = 4096;
/// Quick replies offered to the model per suggestion.
const QUICK_REPLIES_IN_PROMPT: usize = 3;
/// Events read per page while looking for a person's recent messages.
const PAGE: usize = 200;
/// Events read at most while looking for them.
const MAX_SCANNED: usize = 5000;

/// What an operator is told with every AI answer.
const NOTICE: &str =
    "AI-generated (AI 生成): check it before use; nothing was sent to the customer";

pub fn routes() -> Vec<Route> {
    vec![
        route!(post, "/v1/ai/classify", read, "The intent of a customer's message: `{\"text\"}` (1–4096 bytes) → `{\"intent\", \"confidence\", \"alternatives\": [{\"intent\", \"p\"}], \"source\"}`. Intents: `ask_material` 求资料, `price` 询价, `buy` 购买意向, `after_sales` 售后, `complaint` 投诉, `opt_out` 退订, `other` 闲聊/其他. Chinese (full-width forms, emoji, pinyin abbreviations such as dd, zl, jg) and English. Offline (`source: \"offline\"`); when `[ai]` is configured and the offline confidence is below `[ai] min_confidence`, the language model is asked (`source: \"llm\"`, `ai: true`, `model`), and if it fails the offline answer stands with `llm_error` saying why.", classify, body = ClassifyBody),
        route!(post, "/v1/ai/suggest", write, "Reply suggestions for a conversation, by the language model of `[ai]`: `{\"person\": identity, \"n\"?: 1–3}` → `{\"ai\": true, \"model\", \"suggestions\": [{\"text\", \"ai\": true}], \"grounding\", \"redacted\", \"tokens\"}`, grounded in the person's profile, their last messages and the closest quick replies, redacted before leaving (phones, e-mails, ID numbers, addresses, names; `[ai] redact`) and restored in the answer. Nothing is sent: the operator sends with the reply. 409 `ai_not_configured` without `[ai]`, 409 `conflict` for a person without messages; 429 `ai_budget_exhausted` over the daily budget; 502 when the model's answer is unusable; 504 when it does not answer within `[ai] timeout_ms`.", suggest, body = PersonBody, statuses = [404, 409, 429, 502, 504]),
        route!(post, "/v1/ai/summarize", write, "A summary of a person's conversation for an operator taking it over, by the language model of `[ai]`: `{\"person\": identity}` → `{\"ai\": true, \"model\", \"summary\", \"messages\", \"redacted\", \"tokens\"}`; redacted and restored like suggestions; not stored. Same errors as `/v1/ai/suggest`.", summarize, body = PersonBody, statuses = [404, 409, 429, 502, 504]),
        route!(get, "/v1/ai/usage", read, "The language model's use today (the workspace's day): `{\"configured\", \"model\", \"day\", \"requests\", \"tokens\", \"budget\": {\"requests_per_day\", \"tokens_per_day\"}, \"min_confidence\", \"redact\"}`; `configured: false` without `[ai]`.", usage),
    ]
}

fn body_fault(e: ApiError, shape: &str) -> ApiError {
    match e {
        ApiError::InvalidDefinition(m) => {
            ApiError::InvalidDefinition(format!("{m}; the body is {shape}"))
        }
        e => e,
    }
}

// ---------- classify ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
    /// The message, 1–4096 bytes.
    text: String,
}

/// An intent, offline or by the language model.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Classified {
    #[serde(flatten)]
    pub classification: Classification,
    /// offline | llm
    pub source: &'static str,
    /// Whether a language model gave it.
    pub ai: bool,
    /// The model that gave it (source llm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the language model was asked and did not answer (the offline
    /// answer stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_error: Option<String>,
}

async fn classify(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Classified>, ApiError> {
    let body: ClassifyBody = parse_json(&body, "classify").map_err(|e| {
        body_fault(
            e,
            &format!("{{\"text\": a string of 1 to {MAX_CLASSIFY_BYTES} bytes}}"),
        )
    })?;
    let len = body.text.len();
    if len == 0 || len > MAX_CLASSIFY_BYTES {
        return Err(ApiError::InvalidDefinition(format!(
            "text: {len} bytes; 1 to {MAX_CLASSIFY_BYTES}"
        )));
    }
    let offline = intent::classify(&body.text);
    let offline_answer = |llm_error| Classified {
        classification: offline.clone(),
        source: "offline",
        ai: false,
        model: None,
        llm_error,
    };
    let Some(llm_client) = state.0.ai.as_deref() else {
        return Ok(Json(offline_answer(None)));
    };
    if offline.confidence >= llm_client.config.min_confidence {
        return Ok(Json(offline_answer(None)));
    }
    let mut r = Redactor::new(&llm_client.config.redaction, &[]);
    let prompt = siyu_automation::llm::classify_prompt(&body.text, &mut r);
    let answer = match llm::call(&state, "classify", prompt).await {
        Ok(a) => a,
        Err(e) => return Ok(Json(offline_answer(Some(e.to_string())))),
    };
    match siyu_automation::llm::parse_classification(&answer.completion.content) {
        Ok((intent, confidence)) => Ok(Json(Classified {
            classification: Classification {
                intent,
                confidence,
                // The offline model's view, for comparison.
                alternatives: std::iter::once(siyu_automation::intent::Alternative {
                    intent: offline.intent,
                    p: offline.confidence,
                })
                .chain(offline.alternatives.iter().cloned())
                .filter(|a| a.intent != intent)
                .take(3)
                .collect(),
            },
            source: "llm",
            ai: true,
            model: Some(answer.model),
            llm_error: None,
        })),
        Err(e) => Ok(Json(offline_answer(Some(e.to_string())))),
    }
}

// ---------- grounding ----------

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonBody {
    /// Any identity of the person (`wechat:o123`, `phone:138…`).
    person: String,
    /// Suggestions wanted, 1–3 (default 3; suggestions only).
    #[serde(default)]
    n: Option<u8>,
}

/// What an AI answer was grounded in.
#[derive(Serialize, schemars::JsonSchema)]
pub struct GroundingInfo {
    /// Recent messages in the prompt.
    pub messages: usize,
    /// The quick replies offered as house answers (their ids).
    pub quick_replies: Vec<String>,
}

/// Trait keys holding a name of the person (redacted as names, not sent
/// as profile lines).
fn is_name_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("name")
        || k.contains("nick")
        || ["姓名", "昵称", "名字", "称呼"].contains(&k.as_str())
}

/// Trait keys never sent as profile lines (contact data, documents,
/// birthdays): they are personal data and say nothing about what to answer.
fn is_private_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    is_name_key(&k)
        || [
            "phone",
            "mobile",
            "tel",
            "mail",
            "addr",
            "birth",
            "id_card",
            "idcard",
            "wechat",
            "qq",
            "avatar",
            "电话",
            "手机",
            "地址",
            "邮箱",
            "身份证",
            "生日",
            "微信",
        ]
        .iter()
        .any(|w| k.contains(w))
}

struct PersonContext {
    canonical: String,
    names: Vec<String>,
    profile: Vec<(String, String)>,
    offsets: Vec<u64>,
}

fn person_context(state: &AppState, id: &str) -> Result<PersonContext, ApiError> {
    let e = read_engine(state);
    let slot = resolve(&e, id)?;
    let p = crate::profile::profile(&e, slot)
        .ok_or_else(|| ApiError::NotFound(format!("no person has identity `{id}` (erased)")))?;
    let mut names: Vec<String> = p
        .identities
        .iter()
        .filter_map(|i| i.split_once(':').map(|(_, v)| v.to_string()))
        .filter(|v| v.chars().count() >= 4)
        .collect();
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| {
        if !v.is_empty() {
            lines.push((k.to_string(), v));
        }
    };
    push("first channel", p.first_channel.clone().unwrap_or_default());
    push(
        "first seen",
        p.first_seen
            .clone()
            .unwrap_or_default()
            .chars()
            .take(10)
            .collect(),
    );
    push("tags", p.tags.join(", "));
    push("segments", p.segments.join(", "));
    push("purchases", p.purchases.to_string());
    push(
        "net spend (CNY)",
        format!("{}.{:02}", p.net_spend / 100, (p.net_spend % 100).abs()),
    );
    push(
        "last purchase",
        p.last_purchase_at
            .clone()
            .unwrap_or_default()
            .chars()
            .take(10)
            .collect(),
    );
    if let Some(layer) = siyu_engine::customers::rfm_thresholds(&e).and_then(|t| {
        e.person(slot)
            .and_then(|person| siyu_engine::rfm::layer_of(person, e.now(), &t))
    }) {
        push("RFM layer", layer.name().to_string());
    }
    if p.opted_out {
        push("opted out of marketing", "yes".into());
    }
    let mut traits = 0;
    for (k, v) in &p.traits {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if is_name_key(k) {
            names.push(text);
        } else if !is_private_key(k) && traits < 10 && k.chars().count() <= 40 {
            traits += 1;
            push(k, text);
        }
    }
    Ok(PersonContext {
        canonical: p.canonical_id,
        names,
        profile: lines,
        offsets: e.event_offsets(slot).unwrap_or_default(),
    })
}

/// The person's last `history` messages (oldest first) and the team's
/// quick replies.
async fn conversation_of(
    state: &AppState,
    offsets: Vec<u64>,
    history: usize,
) -> Result<(Vec<Turn>, Vec<QuickAnswer>), ApiError> {
    with_store(state, move |store| {
        let mut turns = Vec::new();
        let mut cursor = None;
        let mut scanned = 0;
        'pages: loop {
            let page = store.timeline(&offsets, cursor, PAGE)?;
            let full = page.len() == PAGE;
            cursor = page.last().map(|s| s.offset);
            scanned += page.len();
            for s in page {
                let e = &s.event;
                let (speaker, text) = match e.event_type {
                    EventType::Comment => (Speaker::Customer, e.text.clone()),
                    EventType::MessageSent => (
                        Speaker::Operator,
                        e.properties
                            .as_ref()
                            .and_then(|p| p.get("text"))
                            .and_then(|t| t.as_str())
                            .map(str::to_string),
                    ),
                    _ => continue,
                };
                if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
                    turns.push(Turn { speaker, text });
                    if turns.len() == history {
                        break 'pages;
                    }
                }
            }
            if !full || scanned >= MAX_SCANNED {
                break;
            }
        }
        turns.reverse();
        let quick = store
            .list_settings(QUICK_REPLY_PREFIX)?
            .into_iter()
            .filter_map(|(key, v)| {
                let r: QuickReply = serde_json::from_value(v).ok()?;
                // The team's replies; personal ones are their owner's.
                r.owner.is_none().then(|| QuickAnswer {
                    id: key
                        .strip_prefix(QUICK_REPLY_PREFIX)
                        .unwrap_or(&key)
                        .to_string(),
                    title: r.title,
                    text: r.text,
                })
            })
            .collect();
        Ok((turns, quick))
    })
    .await
}

/// The grounding of a prompt about `person`: profile, last messages,
/// closest quick replies; and the person's canonical identity and names.
async fn ground(
    state: &AppState,
    person: &str,
    with_quick_replies: bool,
) -> Result<(PersonContext, Grounding), ApiError> {
    let history = llm::configured(state)?.config.history;
    let mut ctx = person_context(state, person)?;
    let offsets = std::mem::take(&mut ctx.offsets);
    let (turns, quick) = conversation_of(state, offsets, history).await?;
    let recent: String = turns
        .iter()
        .rev()
        .filter(|t| t.speaker == Speaker::Customer)
        .take(3)
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if turns.is_empty() {
        return Err(ApiError::Conflict(format!(
            "{person} has no messages yet: there is nothing to ground an AI answer in (nothing was sent to the model)"
        )));
    }
    let quick_replies = if with_quick_replies {
        siyu_automation::llm::pick_quick_replies(&quick, &recent, QUICK_REPLIES_IN_PROMPT)
    } else {
        Vec::new()
    };
    let g = Grounding {
        profile: std::mem::take(&mut ctx.profile),
        turns,
        quick_replies,
    };
    Ok((ctx, g))
}

fn parse_person(body: &Bytes) -> Result<PersonBody, ApiError> {
    let b: PersonBody = parse_json(body, "ai").map_err(|e| {
        body_fault(
            e,
            "{\"person\": an identity such as \"wechat:o123\", \"n\"?: 1 to 3}",
        )
    })?;
    if b.person.trim().is_empty() {
        return Err(ApiError::InvalidDefinition(
            "person: give an identity of the person, such as \"wechat:o123\"".into(),
        ));
    }
    Ok(b)
}

// ---------- suggest ----------

/// One suggested reply.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Suggestion {
    pub text: String,
    /// Always true: a language model wrote it.
    pub ai: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Suggestions {
    /// Always true: a language model wrote these.
    pub ai: bool,
    pub model: String,
    /// The person's canonical identity.
    pub person: String,
    pub suggestions: Vec<Suggestion>,
    pub grounding: GroundingInfo,
    /// What was redacted before the prompt left, per kind (distinct values).
    pub redacted: BTreeMap<String, usize>,
    /// Tokens this call cost.
    pub tokens: u64,
    pub notice: &'static str,
}

async fn suggest(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Suggestions>, ApiError> {
    let b = parse_person(&body)?;
    let n = match b.n {
        None => MAX_SUGGESTIONS,
        Some(n) if (1..=MAX_SUGGESTIONS as u8).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::InvalidDefinition(format!(
                "n: {n}; ask for 1 to {MAX_SUGGESTIONS} suggestions"
            )))
        }
    };
    let client = llm::configured(&state)?;
    let (ctx, g) = ground(&state, &b.person, true).await?;
    let mut r = Redactor::new(&client.config.redaction, &ctx.names);
    let prompt = siyu_automation::llm::suggest_prompt(&g, &mut r, n);
    let answer = llm::call(&state, "suggest", prompt).await?;
    let texts = siyu_automation::llm::parse_suggestions(&answer.completion.content, n)
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    Ok(Json(Suggestions {
        ai: true,
        model: answer.model,
        person: ctx.canonical,
        suggestions: texts
            .iter()
            .map(|t| Suggestion {
                text: r.restore(t),
                ai: true,
            })
            .collect(),
        grounding: GroundingInfo {
            messages: g.turns.len(),
            quick_replies: g.quick_replies.iter().map(|q| q.id.clone()).collect(),
        },
        redacted: r.counts(),
        tokens: answer.tokens,
        notice: NOTICE,
    }))
}

// ---------- summarize ----------

#[derive(Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Always true: a language model wrote it.
    pub ai: bool,
    pub model: String,
    pub person: String,
    pub summary: String,
    /// Messages it summarizes.
    pub messages: usize,
    pub redacted: BTreeMap<String, usize>,
    pub tokens: u64,
    /// When it was written (epoch seconds).
    pub at: i64,
    pub notice: &'static str,
}

async fn summarize(State(state): State<AppState>, body: Bytes) -> Result<Json<Summary>, ApiError> {
    let b = parse_person(&body)?;
    if b.n.is_some() {
        return Err(ApiError::InvalidDefinition(
            "n: only suggestions take n; send {\"person\"}".into(),
        ));
    }
    let client = llm::configured(&state)?;
    let (ctx, g) = ground(&state, &b.person, false).await?;
    let mut r = Redactor::new(&client.config.redaction, &ctx.names);
    let prompt = siyu_automation::llm::summary_prompt(&g, &mut r);
    let answer = llm::call(&state, "summarize", prompt).await?;
    let summary = siyu_automation::llm::parse_summary(&answer.completion.content)
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    Ok(Json(Summary {
        ai: true,
        model: answer.model,
        person: ctx.canonical,
        summary: r.restore(&summary),
        messages: g.turns.len(),
        redacted: r.counts(),
        tokens: answer.tokens,
        at: now(),
        notice: NOTICE,
    }))
}

// ---------- usage ----------

#[derive(Serialize, schemars::JsonSchema)]
pub struct AiUsage {
    /// Whether `[ai]` configures a language model.
    pub configured: bool,
    pub model: Option<String>,
    /// Today in the workspace time zone.
    pub day: String,
    pub requests: u64,
    pub tokens: u64,
    pub budget: Budget,
    /// `/v1/ai/classify` asks the model below this offline confidence.
    pub min_confidence: Option<f64>,
    /// The kinds of personal data redacted before a prompt leaves.
    pub redact: Vec<siyu_automation::llm::RedactKind>,
}

async fn usage(State(state): State<AppState>) -> Result<Json<AiUsage>, ApiError> {
    let day = llm::today(&state);
    let used = llm::usage(&state, &day).await?;
    let cfg = state.0.ai.as_deref().map(|l| &l.config);
    Ok(Json(AiUsage {
        configured: cfg.is_some(),
        model: cfg.map(|c| c.model.clone()),
        day,
        requests: used.requests,
        tokens: used.tokens,
        budget: cfg.map(|c| c.budget).unwrap_or_default(),
        min_confidence: cfg.map(|c| c.min_confidence),
        redact: cfg
            .map(|c| c.redaction.kinds().to_vec())
            .unwrap_or_default(),
    }))
}
