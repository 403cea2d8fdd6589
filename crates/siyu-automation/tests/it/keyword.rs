//! keyword: normalization, rule order, channel/event filters, compile errors.

use proptest::prelude::*;
use siyu_automation::keyword::{normalize, Matcher, Rule, RuleSet};

fn rule(id: &str, matcher: Matcher, priority: i32) -> Rule {
    Rule {
        id: id.into(),
        matcher: Some(matcher),
        intents: vec![],
        channels: vec![],
        event_types: vec!["comment".into(), "message".into()],
        priority,
        reply_template: None,
        tags: vec![],
        create_lead: false,
        cooldown_secs: 600,
        assign_operator: None,
        enroll_journey: None,
        enabled: true,
    }
}

fn contains(s: &str) -> Matcher {
    Matcher::Contains(s.into())
}

fn ids(rules: Vec<&Rule>) -> Vec<&str> {
    rules.iter().map(|r| r.id.as_str()).collect()
}

fn set() -> RuleSet {
    let mut douyin_only = rule("douyin-vip", contains("ＶＩＰ"), 1);
    douyin_only.channels = vec!["douyin".into()];
    let mut off = rule("off", contains("价格"), 100);
    off.enabled = false;
    let mut dm_only = rule("dm", contains("加微信"), 0);
    dm_only.event_types = vec!["message".into()];
    RuleSet::compile(vec![
        rule("price", Matcher::Regex("价格|多少钱|how much".into()), 5),
        rule(
            "material",
            Matcher::AnyOf(vec!["求资料".into(), "资料".into()]),
            10,
        ),
        rule("low", contains("资料"), -1),
        douyin_only,
        off,
        dm_only,
        rule("tie-a", contains("hello world"), 0),
        rule("tie-b", contains("HELLO"), 0),
    ])
    .unwrap()
}

#[test]
fn normalizes_width_case_and_space() {
    assert_eq!(normalize("  ＶＩＰ　会员\t\n Price "), "vip 会员 price");
    assert_eq!(normalize("多少钱？"), "多少钱?");
    assert_eq!(normalize(""), "");
}

#[test]
fn matches_in_priority_order() {
    let s = set();
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("douyin", "comment", "这个多少钱", &["price"]),
        (
            "douyin",
            "comment",
            "求资料，多少钱",
            &["material", "price", "low"],
        ),
        ("wechat", "message", "资料", &["material", "low"]),
        ("douyin", "comment", "vip有吗", &["douyin-vip"]),
        ("douyin", "comment", "ｖｉｐ有吗", &["douyin-vip"]),
        ("xiaohongshu", "comment", "VIP有吗", &[]),
        ("douyin", "comment", "价格", &["price"]),
        ("douyin", "comment", "How  MUCH is it", &["price"]),
        ("douyin", "comment", "ＨＯＷ　ＭＵＣＨ", &["price"]),
        ("douyin", "comment", "加微信", &[]),
        ("douyin", "message", "加微信", &["dm"]),
        ("douyin", "follow", "多少钱", &[]),
        ("douyin", "comment", "Hello   World", &["tie-a", "tie-b"]),
        ("douyin", "comment", "你好", &[]),
        ("douyin", "comment", "", &[]),
    ];
    for (channel, event, text, expected) in cases {
        assert_eq!(
            ids(s.matches(channel, event, text)),
            *expected,
            "{channel} {event} {text}"
        );
        assert_eq!(
            s.first(channel, event, text).map(|r| r.id.as_str()),
            expected.first().copied(),
            "{text}"
        );
    }
    assert_eq!(s.rules().len(), 7, "disabled rules are not matched");
}

#[test]
fn rules_from_json() {
    let rules: Vec<Rule> = serde_json::from_str(
        r#"[
          {"id": "a", "matcher": {"contains": "多少钱"}, "reply_template": "price", "tags": ["询价"], "create_lead": true},
          {"id": "b", "matcher": {"any_of": ["求资料", "资料"]}, "channels": ["douyin"], "priority": 3, "enroll_journey": "nurture"},
          {"id": "c", "matcher": {"regex": "价格|多少钱"}, "event_types": [], "assign_operator": "li"}
        ]"#,
    )
    .unwrap();
    assert_eq!(rules[0].event_types, ["comment", "message"]);
    assert!(rules[0].enabled);
    assert_eq!(
        rules[1].matcher,
        Some(Matcher::AnyOf(vec!["求资料".into(), "资料".into()]))
    );
    let s = RuleSet::compile(rules).unwrap();
    assert_eq!(
        ids(s.matches("wechat", "live_comment", "多少钱")),
        ["c"],
        "empty event_types = all"
    );
    assert!(
        serde_json::from_str::<Rule>(r#"{"id": "x", "matcher": {"startswith": "a"}}"#).is_err()
    );
}

#[test]
fn compile_errors_name_rule_and_field() {
    let cases = vec![
        (vec![rule("", contains("a"), 0)], 0, "id", "needs an id"),
        (
            vec![rule("a", contains("x"), 0), rule("a", contains("y"), 0)],
            1,
            "id",
            "same id",
        ),
        (
            vec![rule("a", contains(" 　"), 0)],
            0,
            "matcher.contains",
            "empty keyword",
        ),
        (
            vec![rule("a", Matcher::AnyOf(vec![]), 0)],
            0,
            "matcher.any_of",
            "at least one",
        ),
        (
            vec![rule("a", Matcher::AnyOf(vec!["x".into(), "".into()]), 0)],
            0,
            "matcher.any_of[1]",
            "empty keyword",
        ),
        (
            vec![rule("a", Matcher::Regex("(价格".into()), 0)],
            0,
            "matcher.regex",
            "invalid regex",
        ),
        (
            vec![rule("a", Matcher::Regex("".into()), 0)],
            0,
            "matcher.regex",
            "empty pattern",
        ),
        (
            vec![rule("a", Matcher::Regex("x".repeat(600)), 0)],
            0,
            "matcher.regex",
            "limit is 512",
        ),
        (
            vec![rule("a", Matcher::Regex("(\\w{100}){100}".into()), 0)],
            0,
            "matcher.regex",
            "too complex",
        ),
    ];
    for (rules, index, field, message) in cases {
        let err = RuleSet::compile(rules).unwrap_err();
        assert_eq!((err.index, err.field.as_str()), (index, field), "{err}");
        assert!(err.message.contains(message), "{err}");
    }
    let err = RuleSet::compile(vec![
        rule("ok", contains("a"), 0),
        rule("bad", Matcher::Regex("[".into()), 0),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("rule 1 (\"bad\"), matcher.regex: invalid regex"),
        "{err}"
    );
}

#[test]
fn empty_rule_set_matches_nothing() {
    let s = RuleSet::compile(vec![]).unwrap();
    assert!(s.matches("douyin", "comment", "多少钱").is_empty());
}

proptest! {
    #[test]
    fn matching_never_panics_and_agrees_with_contains(text in "\\PC{0,40}", keyword in "[a-zＡ-Ｚ价格钱 ]{1,3}") {
        let s = set();
        let _ = s.matches("douyin", "comment", &text);
        if !normalize(&keyword).is_empty() {
            let one = RuleSet::compile(vec![rule("k", contains(&keyword), 0)]).unwrap();
            let expected = normalize(&text).contains(&normalize(&keyword));
            prop_assert_eq!(one.first("x", "comment", &text).is_some(), expected);
        }
    }

    #[test]
    fn any_regex_compiles_or_errors(pattern in "\\PC{0,20}") {
        if let Ok(s) = RuleSet::compile(vec![rule("r", Matcher::Regex(pattern), 0)]) {
            let _ = s.matches("x", "comment", "多少钱 price");
        }
    }
}

#[test]
fn a_rule_cools_down_per_person() {
    use siyu_automation::keyword::cooled_down;
    let mut r = rule("docs", contains("求资料"), 0);
    assert!(cooled_down(&r, None, 1000), "never fired: may fire");
    assert!(!cooled_down(&r, Some(1000), 1000), "same second");
    assert!(!cooled_down(&r, Some(1000), 1599));
    assert!(cooled_down(&r, Some(1000), 1600), "600 s later");
    r.cooldown_secs = 0;
    assert!(cooled_down(&r, Some(1000), 1000), "0 answers every match");
    r.cooldown_secs = 31 * 86_400;
    let e = RuleSet::compile(vec![r]).unwrap_err();
    assert_eq!(e.field, "cooldown_secs", "{e}");
    assert!(e.to_string().contains("30 days"), "{e}");
}

#[test]
fn the_cooldown_defaults_to_ten_minutes() {
    let r: Rule =
        serde_json::from_value(serde_json::json!({"id": "a", "matcher": {"contains": "x"}}))
            .unwrap();
    assert_eq!(r.cooldown_secs, 600);
}

/// A rule naming `intents` matches a message of that intent whatever its
/// words; with a matcher too, either is enough; with neither it is refused.
#[test]
fn intents_match_by_the_message_s_intent_alone_or_beside_keywords() {
    use siyu_domain::intent::Intent;
    let rules: Vec<Rule> = serde_json::from_str(
        r#"[
          {"id": "price", "intents": ["询价", "buy"], "priority": 5},
          {"id": "words", "matcher": {"contains": "资料"}, "intents": ["ask_material"]}
        ]"#,
    )
    .unwrap();
    assert_eq!(rules[0].intents, [Intent::Price, Intent::Buy]);
    assert_eq!(rules[0].matcher, None);
    let s = RuleSet::compile(rules.clone()).unwrap();
    let first = |text, intent| {
        s.first_with_intent("wecom", "comment", text, intent)
            .map(|r| r.id.as_str())
    };
    assert_eq!(first("怎么卖", Some(Intent::Price)), Some("price"));
    assert_eq!(first("拍了", Some(Intent::Buy)), Some("price"));
    assert_eq!(first("怎么卖", None), None);
    assert_eq!(first("有资料吗", Some(Intent::Other)), Some("words"));
    assert_eq!(first("发一下", Some(Intent::AskMaterial)), Some("words"));
    assert_eq!(first("你好", Some(Intent::Other)), None);
    // Keywords alone still match without an intent.
    assert_eq!(
        s.first("wecom", "comment", "资料").map(|r| r.id.as_str()),
        Some("words")
    );
    let err = RuleSet::compile(vec![Rule {
        matcher: None,
        intents: vec![],
        ..rules[0].clone()
    }])
    .unwrap_err();
    assert_eq!(err.field, "matcher");
    let err = serde_json::from_str::<Vec<Rule>>(r#"[{"id": "x", "intents": ["pricey"]}]"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown intent") && err.contains("after_sales"),
        "{err}"
    );
}
