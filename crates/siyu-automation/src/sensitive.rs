//! Sensitive-word rules (会话合规): words and patterns a brand does not
//! want in its conversations — an operator offering 私下转账 or 加我个人微信
//! (taking the customer off the brand's channels), a competitor's name, a
//! customer threatening a complaint — flagged where the text is written.
//!
//! Matching is the keyword rules' own ([`crate::keyword`]: one
//! Aho-Corasick pass for every word of every rule and one `RegexSet`
//! pass, on text folded the same way: full-width, case, blanks), so a
//! rule behaves alike in an auto-reply and here and the cost barely
//! grows with the number of rules. Pure: the rules, their checks and the
//! match; the server stores them and flags messages.

use serde::{Deserialize, Serialize};

use crate::keyword::{Matcher, Rule, RuleError, RuleSet};

/// At most this many rules.
pub const MAX_RULES: usize = 500;

/// Whose messages a rule watches.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// Customers' messages (inbound).
    Customer,
    /// Operators' messages (quick replies, replies).
    Operator,
    /// Both.
    #[default]
    Both,
}

/// One sensitive-word rule as a brand saves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SensitiveRule {
    pub id: String,
    /// `{"contains": "私下转账"}`, `{"any_of": [...]}` or `{"regex": "..."}`.
    pub matcher: Matcher,
    /// Whose messages it watches (default both).
    #[serde(default)]
    pub applies_to: Speaker,
    /// What it is about ("私下交易", "竞品", "投诉"), for the report.
    #[serde(default)]
    pub category: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// The rules, compiled.
pub struct SensitiveRules {
    rules: Vec<SensitiveRule>,
    set: RuleSet,
}

impl SensitiveRules {
    /// Checks every rule (ids unique, matchers valid, at most
    /// [`MAX_RULES`]); a fault names the rule and its field.
    pub fn compile(rules: Vec<SensitiveRule>) -> Result<SensitiveRules, RuleError> {
        if rules.len() > MAX_RULES {
            return Err(RuleError {
                index: MAX_RULES,
                id: String::new(),
                field: "rules".into(),
                message: format!("{} rules; at most {MAX_RULES}", rules.len()),
            });
        }
        for (index, r) in rules.iter().enumerate() {
            if r.category.chars().count() > 50 {
                return Err(RuleError {
                    index,
                    id: r.id.clone(),
                    field: "category".into(),
                    message: "at most 50 characters".into(),
                });
            }
        }
        let as_keyword = rules
            .iter()
            .map(|r| Rule {
                id: r.id.clone(),
                matcher: Some(r.matcher.clone()),
                intents: Vec::new(),
                channels: Vec::new(),
                event_types: Vec::new(),
                priority: 0,
                reply_template: None,
                tags: Vec::new(),
                create_lead: false,
                cooldown_secs: 0,
                assign_operator: None,
                enroll_journey: None,
                enabled: r.enabled,
            })
            .collect();
        let set = RuleSet::compile(as_keyword)?;
        Ok(SensitiveRules { rules, set })
    }

    pub fn rules(&self) -> &[SensitiveRule] {
        &self.rules
    }

    /// The enabled rules watching `speaker` that `text` hits, in the
    /// rules' order.
    pub fn check(&self, speaker: Speaker, text: &str) -> Vec<&SensitiveRule> {
        let hit: Vec<&str> = self
            .set
            .matches("", "", text)
            .into_iter()
            .map(|r| r.id.as_str())
            .collect();
        self.rules
            .iter()
            .filter(|r| r.enabled && hit.contains(&r.id.as_str()))
            .filter(|r| {
                r.applies_to == Speaker::Both || speaker == Speaker::Both || r.applies_to == speaker
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, matcher: Matcher, applies_to: Speaker) -> SensitiveRule {
        SensitiveRule {
            id: id.into(),
            matcher,
            applies_to,
            category: "私下交易".into(),
            enabled: true,
        }
    }

    #[test]
    fn words_and_patterns_are_flagged_for_whom_they_watch() {
        let rules = SensitiveRules::compile(vec![
            rule(
                "transfer",
                Matcher::Contains("私下转账".into()),
                Speaker::Operator,
            ),
            rule(
                "wechat",
                Matcher::Regex(r"加(我|个)?(个人)?(微信|vx|wx)".into()),
                Speaker::Operator,
            ),
            rule(
                "complaint",
                Matcher::AnyOf(vec!["投诉".into(), "12315".into()]),
                Speaker::Customer,
            ),
        ])
        .unwrap();
        let ids = |s: Speaker, t: &str| -> Vec<String> {
            rules.check(s, t).iter().map(|r| r.id.clone()).collect()
        };
        assert_eq!(ids(Speaker::Operator, "可以私下转账给我"), ["transfer"]);
        assert_eq!(
            ids(Speaker::Operator, "加我个人ＶＸ聊"),
            ["wechat"],
            "full-width folded"
        );
        assert!(
            ids(Speaker::Customer, "私下转账").is_empty(),
            "an operator rule"
        );
        assert_eq!(
            ids(Speaker::Customer, "再不退款我就打12315投诉"),
            ["complaint"]
        );
        assert_eq!(
            ids(Speaker::Both, "私下转账，不然投诉"),
            ["transfer", "complaint"]
        );
        assert!(ids(Speaker::Operator, "您好，请问有什么可以帮您").is_empty());
    }

    #[test]
    fn faults_name_the_rule_and_field() {
        let e = SensitiveRules::compile(vec![
            rule("a", Matcher::Contains("x".into()), Speaker::Both),
            rule("b", Matcher::Regex("(".into()), Speaker::Both),
        ])
        .err()
        .unwrap();
        assert_eq!((e.index, e.field.as_str()), (1, "matcher.regex"));
        let e = SensitiveRules::compile(vec![
            rule("a", Matcher::Contains("x".into()), Speaker::Both),
            rule("a", Matcher::Contains("y".into()), Speaker::Both),
        ])
        .err()
        .unwrap();
        assert_eq!((e.index, e.field.as_str()), (1, "id"));
        let mut disabled = rule("off", Matcher::Contains("x".into()), Speaker::Both);
        disabled.enabled = false;
        let rules = SensitiveRules::compile(vec![disabled]).unwrap();
        assert!(rules.check(Speaker::Both, "x").is_empty());
    }
}
