//! Keyword auto-reply rules: "a comment that says 多少钱 gets the price
//! reply, a tag and a lead". A rule may also (or only) name `intents`:
//! it then matches a message whose intent (`properties.intent`, set on
//! every inbound message at ingest: `siyu_domain::intent`) is one of them,
//! whatever its words — keywords OR intent, either is enough.
//!
//! Why it exists: every inbound comment and message on every channel is
//! checked against the operators' rules, so matching must be both forgiving
//! (full-width "ＶＩＰ", "Vip" and "vip" are the same word) and fast: all
//! literal keywords of all rules are searched in ONE Aho-Corasick pass and
//! all regexes in ONE `RegexSet` pass, so the cost barely grows with the
//! number of rules (`examples/keyword_speed.rs` measures it).
//!
//! Text and keywords are normalized the same way before matching:
//! full-width ASCII → half-width, ASCII lowercase, runs of whitespace → one
//! space, trimmed. Regexes run on the normalized text, case-insensitively.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::guard::half_width;
use siyu_domain::intent::Intent;

/// Longest regex pattern accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 512;
/// Compiled size limit per regex (and for the set), in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What text a rule reacts to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Matcher {
    /// The text contains this keyword.
    Contains(String),
    /// The text contains any of these keywords.
    AnyOf(Vec<String>),
    /// The normalized text matches this regex (case-insensitive).
    Regex(String),
}

/// One auto-reply rule as operators save it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    /// The words or pattern; may be left out when `intents` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
    /// The message's intent is one of these (ids or Chinese names,
    /// stored as ids): matches whatever the words. With a `matcher`,
    /// either one matching is enough.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "siyu_domain::intent::deserialize_lenient_vec"
    )]
    pub intents: Vec<Intent>,
    /// Channels the rule listens on; empty = all.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Event types the rule listens to; empty = all.
    #[serde(default = "default_event_types")]
    pub event_types: Vec<String>,
    /// Higher first; ties keep the rules' order.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub reply_template: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub create_lead: bool,
    /// Seconds after a reply during which the same person's further
    /// matches of this rule do nothing (no reply, tag, lead or enrollment);
    /// 0 answers every match. Default 600.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
    #[serde(default)]
    pub assign_operator: Option<String>,
    #[serde(default)]
    pub enroll_journey: Option<String>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn default_event_types() -> Vec<String> {
    vec!["comment".to_string(), "message".to_string()]
}

fn enabled() -> bool {
    true
}

/// A rule's default cooldown: ten minutes.
pub const DEFAULT_COOLDOWN_SECS: u64 = 600;
/// The longest cooldown accepted: 30 days.
pub const MAX_COOLDOWN_SECS: u64 = 30 * 86_400;

fn default_cooldown() -> u64 {
    DEFAULT_COOLDOWN_SECS
}

/// Whether `rule` may fire again for a person it last fired for at
/// `last` (None: never), at `now`.
pub fn cooled_down(rule: &Rule, last: Option<i64>, now: i64) -> bool {
    last.is_none_or(|at| now.saturating_sub(at) >= rule.cooldown_secs as i64)
}

/// A rule that cannot be compiled: which one, which field, what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index} (\"{id}\"), {field}: {message}")]
pub struct RuleError {
    /// 0-based position in the list given to [`RuleSet::compile`].
    pub index: usize,
    pub id: String,
    /// "id", "matcher.contains", "matcher.any_of[2]", "matcher.regex".
    pub field: String,
    pub message: String,
}

/// Rules compiled for matching.
#[derive(Debug)]
pub struct RuleSet {
    /// Enabled rules, sorted by priority (highest first, stable).
    rules: Vec<Rule>,
    literals: Option<AhoCorasick>,
    /// Per literal pattern: the rules (indices into `rules`) it belongs to.
    literal_rules: Vec<Vec<usize>>,
    regexes: Option<RegexSet>,
    /// Per regex in the set: its rule.
    regex_rules: Vec<usize>,
}

/// Full-width → half-width, ASCII lowercase, whitespace runs → one space, trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars().map(half_width) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

impl RuleSet {
    /// Checks every rule and builds the matchers. Disabled rules are checked
    /// too (so they can be enabled later without surprises) but never match.
    pub fn compile(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut seen = std::collections::HashSet::new();
        let mut checked: Vec<(usize, Rule)> = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            let err = |field: &str, message: String| RuleError {
                index,
                id: rule.id.clone(),
                field: field.to_string(),
                message,
            };
            if rule.id.trim().is_empty() {
                return Err(err("id", "the rule needs an id".into()));
            }
            if !seen.insert(rule.id.clone()) {
                return Err(err(
                    "id",
                    "another rule has the same id: ids must be unique".into(),
                ));
            }
            if rule.cooldown_secs > MAX_COOLDOWN_SECS {
                return Err(err(
                    "cooldown_secs",
                    format!(
                        "{} is more than 30 days: give seconds up to {MAX_COOLDOWN_SECS} (0 answers every match)",
                        rule.cooldown_secs
                    ),
                ));
            }
            match &rule.matcher {
                None if rule.intents.is_empty() => {
                    return Err(err(
                        "matcher",
                        "the rule matches nothing: give a `matcher` (contains, any_of or regex), `intents` (e.g. [\"price\"]), or both".into(),
                    ));
                }
                None => {}
                Some(Matcher::Contains(k)) if normalize(k).is_empty() => {
                    return Err(err(
                        "matcher.contains",
                        "empty keyword: write the word to look for".into(),
                    ));
                }
                Some(Matcher::AnyOf(list)) if list.is_empty() => {
                    return Err(err(
                        "matcher.any_of",
                        "empty list: give at least one keyword".into(),
                    ));
                }
                Some(Matcher::AnyOf(list)) => {
                    if let Some(i) = list.iter().position(|k| normalize(k).is_empty()) {
                        return Err(err(
                            &format!("matcher.any_of[{i}]"),
                            "empty keyword: remove it or write a word".into(),
                        ));
                    }
                }
                Some(Matcher::Regex(pattern)) => {
                    build_regexes(std::slice::from_ref(pattern))
                        .map_err(|message| err("matcher.regex", message))?;
                }
                Some(Matcher::Contains(_)) => {}
            }
            checked.push((index, rule));
        }
        let mut rules: Vec<Rule> = checked
            .into_iter()
            .filter(|(_, r)| r.enabled)
            .map(|(_, r)| r)
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.priority));

        let mut patterns: Vec<String> = Vec::new();
        let mut literal_rules: Vec<Vec<usize>> = Vec::new();
        let mut by_pattern = std::collections::HashMap::new();
        let mut regex_patterns = Vec::new();
        let mut regex_rules = Vec::new();
        for (at, rule) in rules.iter().enumerate() {
            let keywords: &[String] = match &rule.matcher {
                None => continue,
                Some(Matcher::Contains(k)) => std::slice::from_ref(k),
                Some(Matcher::AnyOf(list)) => list,
                Some(Matcher::Regex(p)) => {
                    regex_patterns.push(p.clone());
                    regex_rules.push(at);
                    continue;
                }
            };
            for keyword in keywords {
                let keyword = normalize(keyword);
                let id = *by_pattern.entry(keyword.clone()).or_insert_with(|| {
                    patterns.push(keyword);
                    literal_rules.push(Vec::new());
                    patterns.len() - 1
                });
                if literal_rules[id].last() != Some(&at) {
                    literal_rules[id].push(at);
                }
            }
        }
        let set_error = |message: String| RuleError {
            index: 0,
            id: String::new(),
            field: "matcher".into(),
            message,
        };
        let literals = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .map_err(|e| set_error(format!("too many keywords together: {e}")))?,
            )
        };
        let regexes = if regex_patterns.is_empty() {
            None
        } else {
            Some(
                build_regexes(&regex_patterns)
                    .map_err(|m| set_error(format!("the regexes together are too large: {m}")))?,
            )
        };
        Ok(RuleSet {
            rules,
            literals,
            literal_rules,
            regexes,
            regex_rules,
        })
    }

    /// The enabled rules listening on `channel`/`event_type` whose matcher
    /// matches `text`, highest priority first.
    pub fn matches<'a>(&'a self, channel: &str, event_type: &str, text: &str) -> Vec<&'a Rule> {
        let hits = self.hits(text, None);
        hits.iter()
            .enumerate()
            .filter(|&(at, &hit)| hit && self.listens(at, channel, event_type))
            .map(|(at, _)| &self.rules[at])
            .collect()
    }

    /// The highest-priority matching rule.
    pub fn first<'a>(&'a self, channel: &str, event_type: &str, text: &str) -> Option<&'a Rule> {
        self.first_with_intent(channel, event_type, text, None)
    }

    /// The highest-priority rule whose matcher matches `text` or whose
    /// `intents` hold the message's `intent`.
    pub fn first_with_intent<'a>(
        &'a self,
        channel: &str,
        event_type: &str,
        text: &str,
        intent: Option<Intent>,
    ) -> Option<&'a Rule> {
        let hits = self.hits(text, intent);
        hits.iter()
            .enumerate()
            .find(|&(at, &hit)| hit && self.listens(at, channel, event_type))
            .map(|(at, _)| &self.rules[at])
    }

    /// The enabled rules, in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn listens(&self, at: usize, channel: &str, event_type: &str) -> bool {
        let rule = &self.rules[at];
        (rule.channels.is_empty() || rule.channels.iter().any(|c| c == channel))
            && (rule.event_types.is_empty() || rule.event_types.iter().any(|e| e == event_type))
    }

    /// Per rule (in `rules` order): whether its matcher matches `text`
    /// or its `intents` hold `intent`.
    fn hits(&self, text: &str, intent: Option<Intent>) -> Vec<bool> {
        let mut hits = vec![false; self.rules.len()];
        if self.rules.is_empty() {
            return hits;
        }
        if let Some(i) = intent {
            for (at, rule) in self.rules.iter().enumerate() {
                hits[at] = rule.intents.contains(&i);
            }
        }
        let text = normalize(text);
        if let Some(ac) = &self.literals {
            for m in ac.find_overlapping_iter(&text) {
                for &at in &self.literal_rules[m.pattern().as_usize()] {
                    hits[at] = true;
                }
            }
        }
        if let Some(set) = &self.regexes {
            for i in set.matches(&text).iter() {
                hits[self.regex_rules[i]] = true;
            }
        }
        hits
    }
}

fn build_regexes(patterns: &[String]) -> Result<RegexSet, String> {
    if let Some(p) = patterns.iter().find(|p| p.len() > MAX_REGEX_LEN) {
        return Err(format!(
            "pattern is {} bytes; the limit is {MAX_REGEX_LEN}: split it into several rules",
            p.len()
        ));
    }
    if patterns.iter().any(|p| p.is_empty()) {
        return Err("empty pattern: write what to look for, e.g. 价格|多少钱".into());
    }
    RegexSetBuilder::new(patterns)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(32)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "pattern too complex (compiles past {limit} bytes): simplify repetitions like {{1000}}"
            ),
            regex::Error::Syntax(detail) => format!("invalid regex: {}", detail.lines().last().unwrap_or("syntax error").trim()),
            other => format!("invalid regex: {other}"),
        })
}
