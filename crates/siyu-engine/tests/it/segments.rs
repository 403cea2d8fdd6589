//! Segment behaviour on hand-written scenarios: exact window expiry,
//! merges of persons in different segments, explanations, redefinition.

use siyu_domain::{Channel, Event, EventType, Identity, DAY};
use siyu_engine::{segment, Engine, SegmentChange};

const Q1: &str = r#"purchases(last 90d) >= 2 and net_spend >= 500.00 and first_channel = "douyin" and not opted_out"#;

fn ev(ts: i64, who: &str, ty: EventType) -> Event {
    let id = Identity::parse(who).unwrap();
    let ch = Channel::parse(id.channel()).unwrap();
    Event::new(ts, id, ty, ch)
}

fn purchase(ts: i64, who: &str, amount: i64) -> Event {
    let mut e = ev(ts, who, EventType::Purchase);
    e.amount = amount;
    e
}

fn link(ts: i64, who: &str, other: &str) -> Event {
    let mut e = ev(ts, who, EventType::Identify);
    e.reference = Some(Identity::parse(other).unwrap());
    e
}

fn summary(c: &[SegmentChange]) -> Vec<String> {
    c.iter()
        .map(|c| {
            format!(
                "{} {} @{}",
                if c.entered { "enter" } else { "exit" },
                c.canonical_id,
                c.at
            )
        })
        .collect()
}

#[test]
fn a_window_lapses_at_the_exact_second_without_any_event() {
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    e.define_segment("q1", segment::parse(Q1).unwrap(), Q1.into())
        .unwrap();
    e.start_live(t0);
    e.apply(1, &ev(t0, "douyin:x", EventType::Touch));
    e.apply(2, &purchase(t0, "douyin:x", 30_000));
    let c = e
        .apply(3, &purchase(t0 + 10 * DAY, "douyin:x", 30_000))
        .changes;
    assert_eq!(summary(&c), vec![format!("enter douyin:x @{t0}")]);
    // Still in at the last inclusive second: ts >= now - 90d.
    assert!(e.advance_to(t0 + 90 * DAY).is_empty());
    let c = e.advance_to(t0 + 200 * DAY);
    assert_eq!(
        summary(&c),
        vec![format!("exit douyin:x @{}", t0 + 90 * DAY + 1)]
    );
}

#[test]
fn merging_two_persons_in_different_segments_moves_membership_to_the_canonical_id() {
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    e.define_segment("q1", segment::parse(Q1).unwrap(), Q1.into())
        .unwrap();
    e.start_live(t0 + DAY);
    e.apply(1, &ev(t0, "douyin:m", EventType::Touch));
    e.apply(2, &purchase(t0, "douyin:m", 30_000));
    let c = e.apply(3, &purchase(t0 + 1, "douyin:m", 30_000)).changes;
    assert_eq!(summary(&c).len(), 1);
    // A second person, first seen earlier on douyin with a smaller id.
    e.apply(4, &ev(t0 - 100, "douyin:a", EventType::Touch));
    let applied = e.apply(5, &link(t0 + 2, "douyin:m", "douyin:a"));
    assert_eq!(applied.merges.len(), 1);
    assert_eq!(applied.merges[0].into, "douyin:a");
    assert_eq!(
        summary(&applied.changes),
        vec![
            format!("exit douyin:m @{}", t0 + DAY),
            format!("enter douyin:a @{}", t0 + DAY)
        ]
    );
    // An opt-out on any identity of the person removes her.
    let c = e
        .apply(6, &ev(t0 + 3, "douyin:m", EventType::OptOut))
        .changes;
    assert_eq!(summary(&c), vec![format!("exit douyin:a @{}", t0 + DAY)]);
}

#[test]
fn explain_says_which_clause_fails() {
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    e.start_live(t0);
    e.apply(1, &purchase(t0, "wecom:w", 70_000));
    let expr = segment::parse(Q1).unwrap();
    let p = e.person_of("wecom:w").unwrap();
    let x = e.explain(&expr, p).unwrap();
    assert!(!x.holds);
    let verdicts: Vec<(bool, Option<String>)> = x
        .parts
        .iter()
        .map(|p| (p.holds, p.actual.clone()))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (false, Some("1".into())),
            (true, Some("700.00".into())),
            (false, Some("\"wecom\"".into())),
            (true, None),
        ]
    );
}

#[test]
fn redefining_a_segment_bumps_its_version_and_reports_changes() {
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    e.start_live(t0);
    e.apply(1, &purchase(t0, "wecom:w", 70_000));
    let (i, c) = e
        .define_segment(
            "big",
            segment::parse("net_spend >= 1000.00").unwrap(),
            String::new(),
        )
        .unwrap();
    assert!(c.is_empty());
    let (j, c) = e
        .define_segment(
            "big",
            segment::parse("net_spend >= 500.00").unwrap(),
            String::new(),
        )
        .unwrap();
    assert_eq!(i, j);
    assert_eq!(e.live_segments().segments()[i as usize].version, 2);
    assert_eq!(summary(&c), vec![format!("enter wecom:w @{t0}")]);
    let err = e
        .define_segment(
            "x",
            segment::parse(r#"in_segment("nope")"#).unwrap(),
            String::new(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("nope"));
}

#[test]
fn user_defined_properties_feed_segments_and_expire() {
    use siyu_engine::property::{Aggregate, PropertyDef, ValueOf};
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    let def = PropertyDef {
        name: "big_taobao_orders_7d".into(),
        aggregate: Aggregate::Count,
        event_type: EventType::Purchase,
        channel: Some("taobao".into()),
        event_name: None,
        min_value: Some(30_000),
        value: ValueOf::Amount,
        window: Some(siyu_engine::segment::Window { seconds: 7 * DAY }),
    };
    e.define_property(def).unwrap();
    let src = "prop.big_taobao_orders_7d >= 1";
    e.define_segment("big_taobao", segment::parse(src).unwrap(), src.into())
        .unwrap();
    let unknown = segment::parse("prop.nope > 1").unwrap();
    assert!(e
        .define_segment("x", unknown, String::new())
        .unwrap_err()
        .to_string()
        .contains("prop.nope"));
    e.start_live(t0);
    assert!(
        e.apply(1, &purchase(t0, "taobao:t1", 10_000))
            .changes
            .is_empty(),
        "below min_value"
    );
    assert!(
        e.apply(2, &purchase(t0, "douyin:d1", 90_000))
            .changes
            .is_empty(),
        "other channel"
    );
    let c = e.apply(3, &purchase(t0, "taobao:t1", 31_000)).changes;
    assert_eq!(summary(&c), vec![format!("enter taobao:t1 @{t0}")]);
    assert_eq!(
        e.property_value(e.person_of("taobao:t1").unwrap(), "big_taobao_orders_7d"),
        Some(1)
    );
    let c = e.advance_to(t0 + 8 * DAY);
    assert_eq!(
        summary(&c),
        vec![format!("exit taobao:t1 @{}", t0 + 7 * DAY + 1)]
    );
}

#[test]
fn windows_use_the_one_duration_syntax_and_round_trip_in_seconds() {
    // Seconds in the language, printed back exactly (a 90 s window used to
    // print as "last 1m").
    let e = segment::parse("purchases(last 90s) >= 1").unwrap();
    assert_eq!(e.to_string(), "purchases(last 90s) >= 1");
    assert_eq!(segment::parse(&e.to_string()).unwrap(), e);
    // A JSON tree may write its window as a duration string or seconds.
    let week = segment::parse("purchases(last 7d) >= 1").unwrap();
    let json = serde_json::to_string(&week).unwrap();
    assert!(json.contains(r#"{"seconds":604800}"#), "{json}");
    for other in [r#""7d""#, r#""1w""#, "604800"] {
        let text = json.replace(r#"{"seconds":604800}"#, other);
        let read: segment::Expr = serde_json::from_str(&text).unwrap();
        assert_eq!(read, week, "{text}");
    }
    let bad = json.replace(r#"{"seconds":604800}"#, r#""7 days""#);
    let err = serde_json::from_str::<segment::Expr>(&bad).unwrap_err();
    assert!(err.to_string().contains("use s, m, h, d or w"), "{err}");
}

fn said(ts: i64, who: &str, intent: &str) -> Event {
    let mut e = ev(ts, who, EventType::Comment);
    e.text = Some("多少钱".into());
    e.properties = Some(serde_json::Map::from_iter([(
        siyu_domain::intent::PROPERTY.to_string(),
        serde_json::Value::String(intent.into()),
    )]));
    e
}

/// `intent(last 7d) = "询价"`: in while the person's newest price
/// question is at most 7 days old, out at the exact second after, and
/// written by id or Chinese name alike (JSON too, `within` for `window`).
#[test]
fn an_intent_in_the_window_holds_until_the_newest_such_message_lapses() {
    let t0 = 1_790_000_000;
    let src = r#"intent(last 7d) = "询价""#;
    let tree = segment::parse(src).unwrap();
    assert_eq!(tree.to_string(), r#"intent(last 1w) = "price""#);
    let json: segment::Expr =
        serde_json::from_str(r#"{"kind":"intent","intent":"询价","within":"7d"}"#).unwrap();
    assert_eq!(json, tree);
    assert_eq!(
        serde_json::to_value(&tree).unwrap(),
        serde_json::json!({"kind": "intent", "intent": "price", "window": {"seconds": 604800}})
    );
    let mut e = Engine::new();
    e.define_segment("askers", tree, src.into()).unwrap();
    e.start_live(t0);
    // Another intent, and a price question older than the window: out.
    assert!(e.apply(1, &said(t0, "wecom:a", "buy")).changes.is_empty());
    assert!(e
        .apply(2, &said(t0 - 8 * DAY, "wecom:a", "price"))
        .changes
        .is_empty());
    // A message without an intent property is no price question.
    assert!(e
        .apply(3, &ev(t0, "wecom:a", EventType::Comment))
        .changes
        .is_empty());
    let c = e.apply(4, &said(t0 - DAY, "wecom:a", "price")).changes;
    assert_eq!(summary(&c), vec![format!("enter wecom:a @{t0}")]);
    // Newest at t0 - 1d: in through t0 + 6d, out at the second after.
    assert!(e.advance_to(t0 + 6 * DAY).is_empty());
    let c = e.advance_to(t0 + 30 * DAY);
    assert_eq!(
        summary(&c),
        vec![format!("exit wecom:a @{}", t0 + 6 * DAY + 1)]
    );
    // Without a window: any time.
    let ever = segment::parse(r#"intent = "price""#).unwrap();
    let p = e.person_of("wecom:a").unwrap();
    assert!(e.matching(&ever).contains(&p));
}

#[test]
fn an_intent_condition_names_the_intents_when_it_is_wrong() {
    for (src, says) in [
        (r#"intent = "pricey""#, "ask_material"),
        (r#"intent != "price""#, "not intent"),
        (r#"intent(last 7d) > "price""#, "`=` after `intent`"),
        (r#"intent = 3"#, "询价"),
    ] {
        let err = segment::parse(src).unwrap_err().to_string();
        assert!(err.contains(says), "{src}: {err}");
    }
    let err = serde_json::from_str::<segment::Expr>(r#"{"kind":"intent","intent":"nope"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown intent") && err.contains("after_sales"),
        "{err}"
    );
}
