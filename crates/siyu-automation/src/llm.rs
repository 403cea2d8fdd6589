//! The pure half of the language-model features (reply suggestions,
//! conversation summaries, the fallback intent classifier): what is sent
//! to an OpenAI-compatible chat-completions endpoint and how its answer is
//! read. No I/O and no clock: the server's client (`siyu-server/src/llm.rs`)
//! does the HTTP with its timeouts and passes bytes in.
//!
//! - **Redaction** ([`Redactor`]): before any text leaves the machine,
//!   phones (mainland 11-digit mobiles with or without `+86`, landlines,
//!   international numbers), e-mail addresses, resident ID numbers,
//!   addresses by pattern (省/市/区/路/号/室…, `12 Main Street`), the
//!   person's known names and nicknames (and 张先生-style forms of a
//!   Chinese name) and the values of their identities are replaced by
//!   placeholders such as `[PHONE_1]`. Which kinds is configurable, and
//!   extra regular expressions may be added. The placeholders are kept on
//!   this side, so [`Redactor::restore`] puts the originals back into what
//!   the model wrote before an operator sees it.
//! - **Prompts** ([`suggest_prompt`], [`summary_prompt`],
//!   [`classify_prompt`]): grounded in a profile summary, the last messages
//!   and the quick replies closest to what the customer wrote
//!   ([`pick_quick_replies`]); every text goes through the redactor.
//! - **Answers** ([`parse_completion`], [`SseDecoder`] for `stream: true`,
//!   [`parse_suggestions`], [`parse_summary`], [`parse_classification`]):
//!   every size is bounded, and a body that is not a chat completion, an
//!   empty or truncated answer, or content that is not what was asked for
//!   is an [`LlmError`] saying which — never a panic.
//! - **Budget** ([`Budget::admit`]): requests and tokens per day; a call
//!   over either is refused naming the budget and when it resets.

use crate::intent::Intent;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The largest answer body read from the model server (bytes).
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// The longest line of an event stream (bytes).
pub const MAX_SSE_LINE_BYTES: usize = 64 * 1024;
/// The longest text the model may write (bytes of content).
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;
/// The longest suggestion kept (characters).
pub const MAX_SUGGESTION_CHARS: usize = 1000;
/// The most suggestions kept.
pub const MAX_SUGGESTIONS: usize = 3;
/// The longest summary kept (characters).
pub const MAX_SUMMARY_CHARS: usize = 2000;
/// The longest message text put into a prompt (characters); longer ones
/// are cut with `…`.
pub const MAX_PROMPT_MESSAGE_CHARS: usize = 500;
/// The most extra redaction patterns.
pub const MAX_EXTRA_PATTERNS: usize = 32;

/// Why a model's answer could not be used. The messages are lowercase
/// sentences naming what was wrong; none contains the answer's text
/// beyond a short excerpt of an error the server itself sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("the model server's answer is larger than {0} bytes")]
    Oversize(usize),
    #[error("the model server's answer is not JSON: {0}")]
    NotJson(String),
    #[error("the model server's answer is not a chat completion: {0}")]
    Shape(String),
    #[error("the model server answered an error: {0}")]
    Remote(String),
    #[error("the model answered nothing")]
    Empty,
    #[error("the model server's stream ended before its last event ([DONE] or a finish_reason)")]
    Truncated,
    #[error("the model's answer is not what was asked for: {0}")]
    BadAnswer(String),
}

// ---------- redaction ----------

/// A kind of personal data the redactor replaces.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RedactKind {
    /// Phone numbers: 11-digit mainland mobiles (with or without +86),
    /// landlines, international numbers (7–15 digits).
    Phone,
    /// E-mail addresses.
    Email,
    /// Resident ID numbers (18 characters, 身份证号).
    IdNumber,
    /// Street addresses by pattern (…路12号3栋, 12 Main Street).
    Address,
    /// The person's names and nicknames from the profile, and their
    /// identities' values.
    Name,
}

impl RedactKind {
    pub const ALL: [RedactKind; 5] = [
        RedactKind::Phone,
        RedactKind::Email,
        RedactKind::IdNumber,
        RedactKind::Address,
        RedactKind::Name,
    ];

    pub fn id(self) -> &'static str {
        match self {
            RedactKind::Phone => "phone",
            RedactKind::Email => "email",
            RedactKind::IdNumber => "id_number",
            RedactKind::Address => "address",
            RedactKind::Name => "name",
        }
    }

    pub fn from_id(id: &str) -> Option<RedactKind> {
        RedactKind::ALL.into_iter().find(|k| k.id() == id)
    }

    fn label(self) -> &'static str {
        match self {
            RedactKind::Phone => "PHONE",
            RedactKind::Email => "EMAIL",
            RedactKind::IdNumber => "ID",
            RedactKind::Address => "ADDRESS",
            RedactKind::Name => "NAME",
        }
    }
}

/// What is redacted: the kinds, and extra patterns (each a regular
/// expression whose matches become `[REDACTED_n]`). Built once from the
/// configuration.
#[derive(Clone, Debug)]
pub struct RedactionPolicy {
    kinds: Vec<RedactKind>,
    extra: Vec<Regex>,
}

impl Default for RedactionPolicy {
    /// Every kind, no extra pattern.
    fn default() -> Self {
        RedactionPolicy {
            kinds: RedactKind::ALL.to_vec(),
            extra: Vec::new(),
        }
    }
}

impl RedactionPolicy {
    /// The kinds given and extra patterns; a pattern that does not compile
    /// (or is too large) is an error naming its index.
    pub fn new(kinds: &[RedactKind], extra: &[String]) -> Result<RedactionPolicy, String> {
        if extra.len() > MAX_EXTRA_PATTERNS {
            return Err(format!(
                "redact_patterns: {} patterns; at most {MAX_EXTRA_PATTERNS}",
                extra.len()
            ));
        }
        let extra = extra
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.is_empty() {
                    return Err(format!("redact_patterns[{i}]: empty pattern"));
                }
                regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("redact_patterns[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        Ok(RedactionPolicy { kinds, extra })
    }

    pub fn kinds(&self) -> &[RedactKind] {
        &self.kinds
    }

    fn has(&self, k: RedactKind) -> bool {
        self.kinds.contains(&k)
    }
}

struct Patterns {
    email: Regex,
    id_number: Regex,
    phone: Regex,
    address_zh: Regex,
    address_en: Regex,
    date: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // Literal patterns, checked by the unit tests below.
        let re = |p: &str| Regex::new(p).expect("built-in redaction pattern compiles");
        Patterns {
            email: re(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
            id_number: re(r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"),
            // Digits with single spaces, dashes or dots between them, an
            // optional + and an optional (area code); the count of digits
            // is checked after the match.
            phone: re(r"\+?(?:\([0-9]{1,4}\)[ \-]?)?[0-9](?:[ \-]?[0-9]){5,16}"),
            address_zh: re(concat!(
                r"(?:[\p{Han}A-Za-z0-9]{1,12}?(?:省|自治区|特别行政区|市|自治州|盟|地区|区|县|旗|镇|乡|街道|村))*",
                r"[\p{Han}A-Za-z0-9]{1,16}?(?:大道|路|街|道|巷|弄|胡同|里|村|小区|花园|苑|大厦|广场)",
                r"[0-9０-９一二三四五六七八九十百零〇\-]+(?:号|弄|号院)",
                r"(?:[0-9０-９A-Za-z一二三四五六七八九十\-]+(?:号楼|栋|幢|座|单元|楼|层|室|号|户))*"
            )),
            // A date is not a phone number (2026-12-04 10).
            date: re(r"^(?:19|20)[0-9]{2}[\-/. ](?:0?[1-9]|1[0-2])[\-/. ]"),
            address_en: re(r"(?i)\b[0-9]{1,6}[A-Za-z]?\s+(?:[A-Za-z]+\.?\s+){1,4}(?:street|st|road|rd|avenue|ave|lane|ln|boulevard|blvd|drive|dr|way|court|ct|place|pl)\b\.?(?:,?\s*(?:apt|unit|suite|#)\.?\s*[0-9A-Za-z\-]+)?"),
        }
    })
}

/// One prompt's redactions: each original text and its placeholder, the
/// same original always the same placeholder, so a conversation reads
/// consistently and [`Redactor::restore`] can put the originals back.
#[derive(Debug)]
pub struct Redactor<'p> {
    policy: &'p RedactionPolicy,
    names: Option<AhoCorasick>,
    /// placeholder → original, in order of first use.
    map: Vec<(String, String)>,
    counts: BTreeMap<&'static str, usize>,
}

/// The honorifics a Chinese surname is used with (张先生, 王女士).
const HONORIFICS: &[&str] = &[
    "先生", "女士", "小姐", "总", "老师", "姐", "哥", "经理", "同学", "阿姨",
];

/// Names worth redacting from a profile: trimmed, at least 2 characters
/// (a single character would redact every occurrence of it), and for a
/// Chinese name of 2–4 Han characters also its surname with the usual
/// honorifics.
pub fn name_variants(names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        if n.chars().count() < 2 || n.chars().count() > 64 {
            continue;
        }
        out.push(n.to_string());
        let han = n.chars().all(is_han);
        let len = n.chars().count();
        if han && (2..=4).contains(&len) {
            // Two-character surnames are rare; the first character is the
            // surname of all but a few names.
            let surname: String = n.chars().take(1).collect();
            for h in HONORIFICS {
                out.push(format!("{surname}{h}"));
            }
        }
        if !han {
            // "Jane Doe": each word of at least 3 letters alone too.
            for w in n.split_whitespace() {
                if w.chars().count() >= 3 && w != n {
                    out.push(w.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

impl<'p> Redactor<'p> {
    /// A redactor for one prompt about one person, whose `names` (profile
    /// names and nicknames, identity values) are replaced wherever they
    /// occur, ASCII case folded. See [`name_variants`] for what a name adds.
    pub fn new(policy: &'p RedactionPolicy, names: &[String]) -> Redactor<'p> {
        let names = if policy.has(RedactKind::Name) {
            let variants = name_variants(names);
            (!variants.is_empty())
                .then(|| {
                    AhoCorasickBuilder::new()
                        .ascii_case_insensitive(true)
                        .match_kind(MatchKind::LeftmostLongest)
                        .build(&variants)
                        .ok()
                })
                .flatten()
        } else {
            None
        };
        Redactor {
            policy,
            names,
            map: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// `text` with every redacted span replaced by its placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        let p = patterns();
        if self.policy.has(RedactKind::Email) {
            spans.extend(
                p.email
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), "EMAIL")),
            );
        }
        if self.policy.has(RedactKind::IdNumber) {
            spans.extend(
                p.id_number
                    .find_iter(text)
                    .filter(|m| alone(text, m.start(), m.end()))
                    .map(|m| (m.start(), m.end(), "ID")),
            );
        }
        if self.policy.has(RedactKind::Phone) {
            for m in p.phone.find_iter(text) {
                let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
                if (7..=15).contains(&digits)
                    && alone(text, m.start(), m.end())
                    && !p.date.is_match(m.as_str())
                {
                    spans.push((m.start(), m.end(), "PHONE"));
                }
            }
        }
        if self.policy.has(RedactKind::Address) {
            spans.extend(
                p.address_zh
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), "ADDRESS")),
            );
            spans.extend(
                p.address_en
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), "ADDRESS")),
            );
        }
        if let Some(names) = &self.names {
            spans.extend(names.find_iter(text).map(|m| (m.start(), m.end(), "NAME")));
        }
        for re in &self.policy.extra {
            spans.extend(
                re.find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| (m.start(), m.end(), "REDACTED")),
            );
        }
        // Leftmost first, the longest of those starting together; a span
        // overlapping one kept is dropped (it is covered by it).
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, label) in spans {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            let placeholder = self.placeholder(label, &text[start..end]);
            out.push_str(&placeholder);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    fn placeholder(&mut self, label: &'static str, original: &str) -> String {
        if let Some((p, _)) = self
            .map
            .iter()
            .find(|(p, o)| o == original && p[1..].starts_with(label))
        {
            return p.clone();
        }
        let n = self.counts.entry(label).or_insert(0);
        *n += 1;
        let p = format!("[{label}_{n}]");
        self.map.push((p.clone(), original.to_string()));
        p
    }

    /// `text` (the model's answer) with every placeholder of this
    /// redactor replaced by its original again.
    pub fn restore(&self, text: &str) -> String {
        if self.map.is_empty() {
            return text.to_string();
        }
        let placeholders: Vec<&str> = self.map.iter().map(|(p, _)| p.as_str()).collect();
        // Placeholders are distinct and none is a prefix of another
        // (each ends with `]`), so the automaton cannot fail to build.
        match AhoCorasick::new(&placeholders) {
            Ok(ac) => {
                let originals: Vec<&str> = self.map.iter().map(|(_, o)| o.as_str()).collect();
                ac.replace_all(text, &originals)
            }
            Err(_) => text.to_string(),
        }
    }

    /// How many distinct values of each kind were redacted (`phone`,
    /// `email`, `id_number`, `address`, `name`, `pattern`).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.counts
            .iter()
            .map(|(label, n)| {
                let kind = RedactKind::ALL
                    .into_iter()
                    .find(|k| k.label() == *label)
                    .map_or("pattern", RedactKind::id);
                (kind.to_string(), *n)
            })
            .collect()
    }
}

/// Whether `text[start..end]` is not part of a longer run of digits (a
/// 20-digit number is not a phone number and two more digits). Letters
/// may touch it: `tel13812345678` is still a phone number, and an order
/// code redacted by mistake costs less than a phone number kept.
fn alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    !joins(before) && !joins(after)
}

// ---------- prompts ----------

/// One message of the chat-completions request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// system | user | assistant
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }
    fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// Who wrote a message of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Operator,
}

/// One message of the conversation, oldest first in [`Grounding`].
#[derive(Clone, Debug)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
}

/// A quick reply offered to the model as a house answer.
#[derive(Clone, Debug)]
pub struct QuickAnswer {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// What a prompt about one person is grounded in.
#[derive(Clone, Debug, Default)]
pub struct Grounding {
    /// `label: value` lines about the person (tags, segments, purchases,
    /// spend, RFM layer …), chosen by the caller; redacted like the rest.
    pub profile: Vec<(String, String)>,
    /// The last messages, oldest first.
    pub turns: Vec<Turn>,
    /// House answers, the closest first.
    pub quick_replies: Vec<QuickAnswer>,
}

fn cut(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push('…');
    s
}

fn context_block(g: &Grounding, r: &mut Redactor<'_>) -> String {
    let mut s = String::new();
    s.push_str("## Customer profile\n");
    if g.profile.is_empty() {
        s.push_str("(nothing known)\n");
    }
    for (k, v) in &g.profile {
        s.push_str(&format!("- {k}: {}\n", r.redact(&cut(v, 200))));
    }
    s.push_str("\n## Conversation (oldest first)\n");
    if g.turns.is_empty() {
        s.push_str("(no messages)\n");
    }
    for t in &g.turns {
        let who = match t.speaker {
            Speaker::Customer => "customer",
            Speaker::Operator => "operator",
        };
        s.push_str(&format!(
            "{who}: {}\n",
            r.redact(&cut(&t.text, MAX_PROMPT_MESSAGE_CHARS))
        ));
    }
    s
}

const PLACEHOLDER_RULE: &str = "Personal data was replaced by placeholders such as [NAME_1] or [PHONE_1]; keep a placeholder exactly as written where you need it and never invent personal data.";

/// The request for reply suggestions: at most `n` (1–3) replies the
/// operator may send next, in the customer's language, as JSON
/// `{"suggestions": ["…"]}`.
pub fn suggest_prompt(g: &Grounding, r: &mut Redactor<'_>, n: usize) -> Vec<ChatMessage> {
    let n = n.clamp(1, MAX_SUGGESTIONS);
    let mut user = context_block(g, r);
    if !g.quick_replies.is_empty() {
        user.push_str("\n## House answers (prefer their wording and facts)\n");
        for q in &g.quick_replies {
            user.push_str(&format!(
                "- {}: {}\n",
                r.redact(&cut(&q.title, 100)),
                r.redact(&cut(&q.text, MAX_PROMPT_MESSAGE_CHARS))
            ));
        }
    }
    user.push_str(&format!(
        "\nWrite {n} different short replies the operator could send next. Answer only JSON: {{\"suggestions\": [\"…\"]}}"
    ));
    vec![
        ChatMessage::system(format!(
            "You help a customer-service operator of a Chinese brand answer customers. Replies are short, polite, factual, in the customer's language, and use only facts from the profile, the conversation and the house answers; never promise refunds, discounts or dates that are not given there. {PLACEHOLDER_RULE}"
        )),
        ChatMessage::user(user),
    ]
}

/// The request for a summary of the conversation for an operator taking
/// it over: plain text, a few sentences.
pub fn summary_prompt(g: &Grounding, r: &mut Redactor<'_>) -> Vec<ChatMessage> {
    let mut user = context_block(g, r);
    user.push_str("\nSummarize this customer's conversation for an operator taking it over: what they want, what was answered, what is still open, their mood. At most 5 short sentences, in Chinese, plain text.");
    vec![
        ChatMessage::system(format!(
            "You summarize customer-service conversations accurately and briefly; you never add facts. {PLACEHOLDER_RULE}"
        )),
        ChatMessage::user(user),
    ]
}

/// The request to classify one customer message into [`Intent`]s,
/// answered as JSON `{"intent": id, "confidence": 0–1}`.
pub fn classify_prompt(text: &str, r: &mut Redactor<'_>) -> Vec<ChatMessage> {
    let labels: Vec<String> = Intent::ALL
        .iter()
        .map(|i| format!("{} ({})", i.id(), i.name_zh()))
        .collect();
    vec![
        ChatMessage::system(format!(
            "You classify one customer message of a Chinese brand's customer service into exactly one intent: {}. Answer only JSON: {{\"intent\": \"<id>\", \"confidence\": <0..1>}}",
            labels.join(", ")
        )),
        ChatMessage::user(r.redact(&cut(text, 4096))),
    ]
}

/// The quick replies sharing the most character pairs (bigrams, case and
/// width folded) with `recent` (what the customer wrote last), the best
/// `k` with at least one pair in common, best first; ties by id.
pub fn pick_quick_replies(candidates: &[QuickAnswer], recent: &str, k: usize) -> Vec<QuickAnswer> {
    let grams = |s: &str| -> std::collections::HashSet<(char, char)> {
        let norm: Vec<char> = crate::intent::normalize(s)
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
            .collect();
        norm.windows(2).map(|w| (w[0], w[1])).collect()
    };
    let want = grams(recent);
    let mut scored: Vec<(usize, &QuickAnswer)> = candidates
        .iter()
        .map(|q| {
            let have = grams(&format!("{} {}", q.title, q.text));
            (want.intersection(&have).count(), q)
        })
        .filter(|(n, _)| *n > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    scored.into_iter().take(k).map(|(_, q)| q.clone()).collect()
}

// ---------- answers ----------

/// Tokens as the server counted them (`usage`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// A chat completion's text and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub content: String,
    /// The model that answered, as the server named it.
    pub model: Option<String>,
    /// None when the server did not say.
    pub usage: Option<Usage>,
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?;
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (p, c) = (n("prompt_tokens"), n("completion_tokens"));
    Some(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: u
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(p + c),
    })
}

/// The server's own error (`{"error": {"message"}}` or `{"error": "…"}`),
/// cut to 200 characters.
fn remote_error(v: &Value) -> Option<LlmError> {
    let e = v.get("error")?;
    let m = e
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.as_str())
        .unwrap_or("(no message)");
    Some(LlmError::Remote(cut(m, 200)))
}

/// An error body of a non-2xx answer: the server's message if it sent
/// one in the OpenAI shape, else nothing (the status says enough).
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match remote_error(&v)? {
        LlmError::Remote(m) => Some(m),
        _ => None,
    }
}

/// A non-streamed chat completion (`choices[0].message.content`).
pub fn parse_completion(body: &[u8]) -> Result<Completion, LlmError> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(LlmError::Oversize(MAX_ANSWER_BYTES));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| LlmError::NotJson(e.to_string()))?;
    if let Some(e) = remote_error(&v) {
        return Err(e);
    }
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::Shape("no choices[0]".into()))?;
    let content = match choice.get("message").and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(_) => {
            return Err(LlmError::Shape(
                "choices[0].message.content is not a string".into(),
            ))
        }
    };
    if content.len() > MAX_CONTENT_BYTES {
        return Err(LlmError::Oversize(MAX_CONTENT_BYTES));
    }
    if content.trim().is_empty() {
        return Err(LlmError::Empty);
    }
    Ok(Completion {
        content,
        model: v.get("model").and_then(Value::as_str).map(|m| cut(m, 100)),
        usage: usage_of(&v),
    })
}

/// A streamed chat completion (`stream: true`), fed the body's bytes as
/// they arrive: server-sent events whose `data:` lines are chunks with
/// `choices[0].delta.content`, ended by `data: [DONE]`. Lines are at most
/// [`MAX_SSE_LINE_BYTES`], the text at most [`MAX_CONTENT_BYTES`].
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    content: String,
    model: Option<String>,
    usage: Option<Usage>,
    finished: bool,
    done: bool,
    total: usize,
}

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds the next bytes; an error ends the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), LlmError> {
        self.total += bytes.len();
        if self.total > MAX_ANSWER_BYTES {
            return Err(LlmError::Oversize(MAX_ANSWER_BYTES));
        }
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line)?;
            } else {
                if self.line.len() >= MAX_SSE_LINE_BYTES {
                    return Err(LlmError::Oversize(MAX_SSE_LINE_BYTES));
                }
                self.line.push(b);
            }
        }
        Ok(())
    }

    /// Whether `data: [DONE]` arrived (nothing more is needed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), LlmError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            // Blank lines end events; comments (`:`) and other fields
            // (`event:`, `id:`, `retry:`) carry nothing for us.
            return Ok(());
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        if self.done {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| LlmError::NotJson(format!("a stream event: {e}")))?;
        if let Some(e) = remote_error(&v) {
            return Err(e);
        }
        if self.model.is_none() {
            self.model = v.get("model").and_then(Value::as_str).map(|m| cut(m, 100));
        }
        if let Some(u) = usage_of(&v) {
            self.usage = Some(u);
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            // A usage-only chunk has `choices: []` or none.
            return if v.get("usage").is_some() {
                Ok(())
            } else {
                Err(LlmError::Shape("a stream event without choices".into()))
            };
        };
        if let Some(c) = choices.first() {
            if let Some(piece) = c
                .get("delta")
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
            {
                if self.content.len() + piece.len() > MAX_CONTENT_BYTES {
                    return Err(LlmError::Oversize(MAX_CONTENT_BYTES));
                }
                self.content.push_str(piece);
            }
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.finished = true;
            }
        }
        Ok(())
    }

    /// The completion, once the body ended: an error when the stream
    /// stopped before `[DONE]` or a `finish_reason`, or said nothing.
    pub fn finish(mut self) -> Result<Completion, LlmError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line)?;
        }
        if !(self.done || self.finished) {
            return Err(LlmError::Truncated);
        }
        if self.content.trim().is_empty() {
            return Err(LlmError::Empty);
        }
        Ok(Completion {
            content: self.content,
            model: self.model,
            usage: self.usage,
        })
    }
}

/// The JSON inside a model's text: the text itself, or inside a
/// ```` ```json ```` fence, or from the first `{`/`[` to the last `}`/`]`.
fn json_in(content: &str) -> Option<Value> {
    let t = content.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.trim_end().strip_suffix("```"));
    if let Some(v) = inner.and_then(|s| serde_json::from_str(s.trim()).ok()) {
        return Some(v);
    }
    let start = t.find(['{', '['])?;
    let end = t.rfind(['}', ']'])?;
    (end > start)
        .then(|| serde_json::from_str(&t[start..=end]).ok())
        .flatten()
}

/// The suggestions of an answer to [`suggest_prompt`]: `{"suggestions":
/// [..]}` or a bare array of strings; blanks dropped, each cut to
/// [`MAX_SUGGESTION_CHARS`], at most `n`.
pub fn parse_suggestions(content: &str, n: usize) -> Result<Vec<String>, LlmError> {
    let v = json_in(content).ok_or_else(|| {
        LlmError::BadAnswer("expected JSON {\"suggestions\": [\"…\"]}, got text".into())
    })?;
    let list = v
        .get("suggestions")
        .unwrap_or(&v)
        .as_array()
        .ok_or_else(|| LlmError::BadAnswer("expected a list of suggestions".into()))?;
    let out: Vec<String> = list
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, MAX_SUGGESTION_CHARS))
        .take(n.clamp(1, MAX_SUGGESTIONS))
        .collect();
    if out.is_empty() {
        return Err(LlmError::BadAnswer(
            "no suggestion is a non-empty string".into(),
        ));
    }
    Ok(out)
}

/// A summary: the text, trimmed, cut to [`MAX_SUMMARY_CHARS`].
pub fn parse_summary(content: &str) -> Result<String, LlmError> {
    let t = content.trim();
    if t.is_empty() {
        return Err(LlmError::Empty);
    }
    Ok(cut(t, MAX_SUMMARY_CHARS))
}

/// An answer to [`classify_prompt`]: a known intent id and a confidence
/// in 0–1 (absent: 0.5; out of range: clamped).
pub fn parse_classification(content: &str) -> Result<(Intent, f64), LlmError> {
    let v = json_in(content).ok_or_else(|| {
        LlmError::BadAnswer("expected JSON {\"intent\", \"confidence\"}, got text".into())
    })?;
    let id = v
        .get("intent")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::BadAnswer("no \"intent\" string".into()))?;
    let intent = Intent::from_id(id.trim())
        .ok_or_else(|| LlmError::BadAnswer(format!("unknown intent {:?}", cut(id, 40))))?;
    let confidence = v
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite())
        .unwrap_or(0.5)
        .clamp(0.0, 1.0);
    Ok((intent, confidence))
}

// ---------- budget ----------

/// What may be spent per day (the workspace's day); None: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Budget {
    pub requests_per_day: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// What was spent on one day.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct DayUsage {
    pub requests: u64,
    pub tokens: u64,
}

/// A call refused because a daily budget is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the daily AI budget of {limit} {unit} is spent ({used} used today); it resets at midnight in the workspace time zone, or raise [ai] daily_budget_{unit}")]
pub struct BudgetExhausted {
    pub unit: &'static str,
    pub limit: u64,
    pub used: u64,
}

impl Budget {
    /// Whether one more request may be made after `used`.
    pub fn admit(&self, used: DayUsage) -> Result<(), BudgetExhausted> {
        if let Some(limit) = self.requests_per_day {
            if used.requests >= limit {
                return Err(BudgetExhausted {
                    unit: "requests",
                    limit,
                    used: used.requests,
                });
            }
        }
        if let Some(limit) = self.tokens_per_day {
            if used.tokens >= limit {
                return Err(BudgetExhausted {
                    unit: "tokens",
                    limit,
                    used: used.tokens,
                });
            }
        }
        Ok(())
    }
}

/// The tokens a call cost: the server's `total_tokens`, else an estimate
/// of one token per 3 bytes of prompt and answer (CJK runs near one
/// token per character, which is 3 bytes in UTF-8).
pub fn tokens_spent(usage: Option<&Usage>, prompt: &[ChatMessage], answer: &str) -> u64 {
    match usage {
        Some(u) if u.total_tokens > 0 => u.total_tokens,
        _ => {
            let bytes: usize = prompt.iter().map(|m| m.content.len()).sum::<usize>() + answer.len();
            bytes.div_ceil(3) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> RedactionPolicy {
        RedactionPolicy::default()
    }

    #[test]
    fn phones_of_every_form_are_redacted_and_other_numbers_kept() {
        let p = all();
        for text in [
            "13812345678",
            "+86 138 1234 5678",
            "+8613812345678",
            "138-1234-5678",
            "010-62345678",
            "(0571) 8888 6666",
            "+1 415 555 0100",
        ] {
            let mut r = Redactor::new(&p, &[]);
            let out = r.redact(&format!("我的电话{text}谢谢 call {text} now"));
            assert_eq!(out, "我的电话[PHONE_1]谢谢 call [PHONE_1] now", "{text}");
            assert_eq!(
                r.restore(&out),
                format!("我的电话{text}谢谢 call {text} now")
            );
        }
        let mut r = Redactor::new(&p, &[]);
        for keep in [
            "买了3件，共299元",
            "订单 2026-12-04 10:30 到",
            "尺码 42",
            "价格 1999.00",
            "单号 1234567890123456789",
        ] {
            assert_eq!(r.redact(keep), keep);
        }
        // The same number twice: one placeholder, restored.
        let text = "13812345678 或 138 1234 5678";
        let out = r.redact("13812345678 和 13812345678");
        assert_eq!(out, "[PHONE_1] 和 [PHONE_1]");
        assert_eq!(r.restore(&out), "13812345678 和 13812345678");
        assert_ne!(r.redact(text), text);
    }

    #[test]
    fn emails_ids_addresses_and_extra_patterns() {
        let p = RedactionPolicy::new(&RedactKind::ALL, &[r"ORD-[0-9]+".into()]).unwrap();
        let mut r = Redactor::new(&p, &[]);
        let out =
            r.redact("邮箱 Li.Na+shop@example.com.cn，身份证11010519491231002X，订单ORD-7788");
        assert_eq!(out, "邮箱 [EMAIL_1]，身份证[ID_1]，订单[REDACTED_1]");
        let out = r.redact("寄到浙江省杭州市西湖区文三路90号5栋302室吧");
        assert!(out.contains("[ADDRESS_1]"), "{out}");
        assert!(!out.contains("文三路") && !out.contains("302"), "{out}");
        let out = r.redact("ship to 221B Baker Street, apt 4 please");
        assert!(
            out.contains("[ADDRESS_2]") && !out.contains("Baker"),
            "{out}"
        );
        assert_eq!(
            r.counts().into_iter().collect::<Vec<_>>(),
            vec![
                ("address".to_string(), 2),
                ("email".to_string(), 1),
                ("id_number".to_string(), 1),
                ("pattern".to_string(), 1)
            ]
        );
        assert!(RedactionPolicy::new(&[], &["(".into()])
            .unwrap_err()
            .contains("redact_patterns[0]"));
    }

    #[test]
    fn names_and_their_forms_are_redacted_and_restored() {
        let p = all();
        let names = vec!["王小芳".to_string(), "Jane Doe".into(), "x".into()];
        let mut r = Redactor::new(&p, &names);
        let out = r.redact("王女士您好，王小芳的订单已发。jane doe / Jane 收到");
        assert!(
            !out.contains('王') && !out.to_lowercase().contains("jane"),
            "{out}"
        );
        assert!(out.contains("[NAME_1]"), "{out}");
        // A one-character name is not redacted (it would eat every x).
        assert_eq!(r.redact("xx"), "xx");
        let answer = format!("{} 您好！", out.split('，').next().unwrap());
        assert_eq!(r.restore(&answer), "王女士您好 您好！");
        // Names off: kept.
        let p = RedactionPolicy::new(&[RedactKind::Phone], &[]).unwrap();
        let mut r = Redactor::new(&p, &names);
        assert_eq!(r.redact("王小芳 a@b.cn"), "王小芳 a@b.cn");
    }

    #[test]
    fn completions_are_parsed_and_garbage_is_a_clear_error() {
        let ok = br#"{"model":"qwen","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let c = parse_completion(ok).unwrap();
        assert_eq!(c.content, "hi");
        assert_eq!(c.model.as_deref(), Some("qwen"));
        assert_eq!(c.usage.unwrap().total_tokens, 4);
        for (body, want) in [
            (&b"<html>bad gateway</html>"[..], "not JSON"),
            (b"{}", "no choices[0]"),
            (br#"{"choices":[]}"#, "no choices[0]"),
            (
                br#"{"choices":[{"message":{"content":7}}]}"#,
                "not a string",
            ),
            (
                br#"{"choices":[{"message":{"content":"  "}}]}"#,
                "answered nothing",
            ),
            (
                br#"{"error":{"message":"model not found"}}"#,
                "model not found",
            ),
            (b"", "not JSON"),
        ] {
            let e = parse_completion(body).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let big = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert_eq!(
            parse_completion(&big),
            Err(LlmError::Oversize(MAX_ANSWER_BYTES))
        );
        let long = format!(
            r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#,
            "a".repeat(MAX_CONTENT_BYTES + 1)
        );
        assert_eq!(
            parse_completion(long.as_bytes()),
            Err(LlmError::Oversize(MAX_CONTENT_BYTES))
        );
    }

    fn chunk(s: &str) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"model": "m", "choices": [{"delta": {"content": s}, "finish_reason": null}]})
        )
    }

    #[test]
    fn streams_are_decoded_across_any_split_and_truncation_is_an_error() {
        let body = format!(
            ": keep-alive\n\n{}{}data: {}\n\ndata: [DONE]\n\n",
            chunk("你好，"),
            chunk("world"),
            serde_json::json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        );
        let bytes = body.as_bytes();
        // Every split point, including inside a multi-byte character.
        for at in 0..bytes.len() {
            let mut d = SseDecoder::new();
            d.push(&bytes[..at]).unwrap();
            d.push(&bytes[at..]).unwrap();
            assert!(d.is_done());
            let c = d.finish().unwrap();
            assert_eq!(c.content, "你好，world");
            assert_eq!(c.usage.unwrap().total_tokens, 7);
        }
        // Cut before [DONE] and without a finish_reason: truncated.
        let cut_at = body.find("data: [DONE]").unwrap();
        let mut d = SseDecoder::new();
        d.push(&bytes[..cut_at]).unwrap();
        assert_eq!(d.finish(), Err(LlmError::Truncated));
        // Cut in the middle of an event: its JSON does not parse.
        let mut d = SseDecoder::new();
        d.push(&bytes[..30]).unwrap();
        assert!(matches!(d.finish(), Err(LlmError::NotJson(_))));
        // A finish_reason without [DONE] is a whole answer.
        let mut d = SseDecoder::new();
        d.push(
            format!(
                "data: {}\n",
                serde_json::json!({"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]})
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(d.finish().unwrap().content, "ok");
        // Garbage and endless lines.
        let mut d = SseDecoder::new();
        assert!(matches!(
            d.push(b"data: not json\n"),
            Err(LlmError::NotJson(_))
        ));
        let mut d = SseDecoder::new();
        assert_eq!(
            d.push(&vec![b'a'; MAX_SSE_LINE_BYTES + 1]),
            Err(LlmError::Oversize(MAX_SSE_LINE_BYTES))
        );
        let mut d = SseDecoder::new();
        let err = d
            .push(b"data: {\"error\": {\"message\": \"rate limited\"}}\n")
            .unwrap_err();
        assert_eq!(err, LlmError::Remote("rate limited".into()));
        // Only [DONE]: nothing said.
        let mut d = SseDecoder::new();
        d.push(b"data: [DONE]\n").unwrap();
        assert_eq!(d.finish(), Err(LlmError::Empty));
    }

    #[test]
    fn suggestions_summaries_and_classifications_are_checked() {
        assert_eq!(
            parse_suggestions(
                "```json\n{\"suggestions\": [\"a\", \" \", \"b\", \"c\", \"d\"]}\n```",
                3
            )
            .unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(parse_suggestions("Sure! [\"x\"]", 2).unwrap(), vec!["x"]);
        for bad in [
            "hello there",
            "{\"suggestions\": []}",
            "{\"suggestions\": [1, 2]}",
            "{\"s\": 1}",
        ] {
            assert!(
                matches!(parse_suggestions(bad, 3), Err(LlmError::BadAnswer(_))),
                "{bad}"
            );
        }
        let long = format!("[\"{}\"]", "长".repeat(MAX_SUGGESTION_CHARS + 50));
        assert_eq!(
            parse_suggestions(&long, 1).unwrap()[0].chars().count(),
            MAX_SUGGESTION_CHARS + 1
        );
        assert_eq!(parse_summary("  客户询价。 ").unwrap(), "客户询价。");
        assert_eq!(parse_summary(" \n"), Err(LlmError::Empty));
        assert_eq!(
            parse_classification("{\"intent\": \"price\", \"confidence\": 1.7}").unwrap(),
            (Intent::Price, 1.0)
        );
        assert!(parse_classification("{\"intent\": \"pricing\"}")
            .unwrap_err()
            .to_string()
            .contains("unknown intent"));
        assert!(parse_classification("price").is_err());
    }

    #[test]
    fn budgets_refuse_at_their_limit_naming_it() {
        let b = Budget {
            requests_per_day: Some(2),
            tokens_per_day: Some(100),
        };
        assert!(b
            .admit(DayUsage {
                requests: 1,
                tokens: 99
            })
            .is_ok());
        let e = b
            .admit(DayUsage {
                requests: 2,
                tokens: 0,
            })
            .unwrap_err();
        assert_eq!(e.unit, "requests");
        assert!(e.to_string().contains("daily_budget_requests"), "{e}");
        let e = b
            .admit(DayUsage {
                requests: 0,
                tokens: 100,
            })
            .unwrap_err();
        assert!(e.to_string().contains("100 tokens"), "{e}");
        assert!(Budget::default()
            .admit(DayUsage {
                requests: u64::MAX,
                tokens: u64::MAX
            })
            .is_ok());
        let prompt = vec![ChatMessage::user("abcdef")];
        assert_eq!(tokens_spent(None, &prompt, "abc"), 3);
        let u = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            total_tokens: 2,
        };
        assert_eq!(tokens_spent(Some(&u), &prompt, "abc"), 2);
    }

    #[test]
    fn prompts_carry_the_grounding_redacted_and_the_closest_quick_replies() {
        let p = all();
        let mut r = Redactor::new(&p, &["李雷".to_string()]);
        let qr = |id: &str, title: &str, text: &str| QuickAnswer {
            id: id.into(),
            title: title.into(),
            text: text.into(),
        };
        let candidates = vec![
            qr("ship", "发货时间", "下单后48小时内发货"),
            qr("price", "价格表", "标准版199元，专业版399元"),
            qr("hello", "问候", "您好，在的"),
        ];
        let picked = pick_quick_replies(&candidates, "请问什么时候发货？", 2);
        assert_eq!(picked[0].id, "ship");
        assert!(picked.iter().all(|q| q.id != "hello"));
        let g = Grounding {
            profile: vec![("tags".into(), "vip".into())],
            turns: vec![
                Turn {
                    speaker: Speaker::Customer,
                    text: "我是李雷，电话13812345678，什么时候发货".into(),
                },
                Turn {
                    speaker: Speaker::Operator,
                    text: "李先生您好".into(),
                },
            ],
            quick_replies: picked,
        };
        let msgs = suggest_prompt(&g, &mut r, 2);
        let all_text: String = msgs.iter().map(|m| m.content.as_str()).collect();
        assert!(
            !all_text.contains("李") && !all_text.contains("13812345678"),
            "{all_text}"
        );
        assert!(all_text.contains("下单后48小时内发货") && all_text.contains("vip"));
        assert!(all_text.contains("Write 2 different"));
        assert_eq!(r.restore("[NAME_1]，[PHONE_1]"), "李雷，13812345678");
        let msgs = classify_prompt("多少钱 13812345678", &mut r);
        assert!(msgs[1].content.contains("[PHONE_1]"));
        assert!(msgs[0].content.contains("ask_material"));
    }
}
