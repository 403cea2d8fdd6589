//! Property: after every event and every clock advance, each live segment's
//! members equal a from-scratch recompute (the oracle), and replaying the
//! emitted enter/exit changes reproduces the membership exactly.

use proptest::prelude::*;
use siyu_domain::{Channel, Event, EventType, Identity, DAY};
use siyu_engine::rfm::{RfmBasis, RfmSource, RfmThresholds};
use siyu_engine::{oracle, segment, Engine};
use std::collections::BTreeSet;

const SEGMENTS: [(&str, &str); 8] = [
    (
        "q1",
        r#"purchases(last 3d) >= 2 and net_spend >= 5.00 and first_channel = "douyin" and not opted_out"#,
    ),
    ("lapsed", "days_since_last_purchase >= 2 and purchases >= 1"),
    ("readers", "reads(last 1d) >= 1 or friended"),
    (
        "q1_not_readers",
        r#"in_segment("q1") and not in_segment("readers")"#,
    ),
    ("champions", r#"rfm_layer = "重要价值客户""#),
    (
        "slipping",
        r#"rfm_layer = "重要保持客户" or rfm_layer = "重要挽留客户" or (rfm_layer != "一般发展客户" and reads >= 1)"#,
    ),
    // Inbound messages' intents (`properties.intent`), in a window and not.
    ("asked_price", r#"intent(last 1d) = "price""#),
    (
        "buyers_or_recent_askers",
        r#"intent = "buy" or (intent(last 2d) = "询价" and not intent(last 12h) = "complaint")"#,
    ),
];

const IDENTITIES: [&str; 10] = [
    "douyin:a",
    "douyin:b",
    "douyin:c",
    "wecom:wm1",
    "wecom:wm2",
    "mp:o_1",
    "mp:o_2",
    "phone:h1",
    "kuaishou:k",
    "taobao:t",
];

#[derive(Clone, Debug)]
enum Step {
    Event {
        who: usize,
        kind: u8,
        other: usize,
        amount: i64,
        dt: i64,
    },
    Advance(i64),
    /// New RFM thresholds: every segment reading `rfm_layer` moves.
    Thresholds(RfmThresholds),
}

fn thresholds() -> impl Strategy<Value = RfmThresholds> {
    (0u32..3, 0u32..3, 0i64..1_500).prop_map(|(recency_days, frequency, monetary_cents)| {
        RfmThresholds {
            recency_days,
            frequency,
            monetary_cents,
        }
    })
}

fn basis(thresholds: RfmThresholds) -> Option<RfmBasis> {
    Some(RfmBasis {
        thresholds,
        source: RfmSource::Setting,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..IDENTITIES.len(), 0u8..11, 0..IDENTITIES.len(), 100i64..600, 0i64..DAY / 2)
            .prop_map(|(who, kind, other, amount, dt)| Step::Event { who, kind, other, amount, dt }),
        1 => (0i64..3 * DAY).prop_map(Step::Advance),
        1 => thresholds().prop_map(Step::Thresholds),
    ]
}

fn make_event(who: usize, kind: u8, other: usize, amount: i64, ts: i64) -> Event {
    let identity = Identity::parse(IDENTITIES[who]).unwrap();
    let channel = Channel::parse(identity.channel()).unwrap();
    let ty = match kind {
        0 => EventType::Touch,
        1 | 2 => EventType::Purchase,
        3 => EventType::Refund,
        4 => EventType::Identify,
        5 => EventType::AddFriend,
        6 => EventType::MessageRead,
        7 => EventType::OptOut,
        _ => EventType::Comment,
    };
    let mut e = Event::new(ts, identity, ty, channel);
    if ty == EventType::Comment {
        // An inbound message with one of three intents (by `other`).
        e.text = Some("?".into());
        let intent = ["price", "buy", "complaint"][other % 3];
        e.properties = Some(serde_json::Map::from_iter([(
            siyu_domain::intent::PROPERTY.to_string(),
            serde_json::Value::String(intent.into()),
        )]));
    }
    if ty.has_amount() {
        e.amount = if ty == EventType::Refund {
            amount / 3
        } else {
            amount
        };
    }
    if ty == EventType::Identify {
        e.reference = Some(Identity::parse(IDENTITIES[other]).unwrap());
    }
    e
}

fn live_members(engine: &Engine, name: &str) -> BTreeSet<String> {
    let segs = engine.live_segments();
    let i = segs.index_of(name).unwrap();
    segs.segments()[i as usize]
        .members()
        .map(|p| engine.canonical_id(p).to_string())
        .collect()
}

/// Runs `steps` against a live engine holding `segments` and checks every
/// segment against the oracle after each step.
fn check(
    segments: &[(&str, &str)],
    steps: Vec<Step>,
    first_thresholds: RfmThresholds,
) -> Result<(), TestCaseError> {
    let start = 1_790_000_000i64;
    let mut engine = Engine::new();
    let mut rfm = first_thresholds;
    engine.set_rfm_basis(basis(rfm));
    for (name, src) in segments {
        engine
            .define_segment(name, segment::parse(src).unwrap(), src.to_string())
            .unwrap();
    }
    engine.start_live(start);
    let exprs: Vec<_> = segments
        .iter()
        .map(|(_, s)| segment::parse(s).unwrap())
        .collect();
    let mut now = start;
    let mut log: Vec<(u64, Event)> = Vec::new();
    let mut replayed: Vec<BTreeSet<String>> = vec![BTreeSet::new(); segments.len()];
    for (seq, s) in steps.into_iter().enumerate() {
        let changes = match s {
            Step::Event {
                who,
                kind,
                other,
                amount,
                dt,
            } => {
                // Events may arrive slightly in the past, never after the clock.
                let e = make_event(who, kind, other, amount, now - dt);
                log.push((seq as u64, e.clone()));
                engine.apply(seq as u64, &e).changes
            }
            Step::Advance(d) => {
                now += d;
                engine.advance_to(now)
            }
            Step::Thresholds(t) => {
                rfm = t;
                engine.set_rfm_basis(basis(t))
            }
        };
        for c in changes {
            let set = &mut replayed[c.segment as usize];
            if c.entered {
                prop_assert!(set.insert(c.canonical_id.clone()), "entered twice: {c:?}");
            } else {
                prop_assert!(set.remove(&c.canonical_id), "exit without entry: {c:?}");
            }
        }
        // q1_not_readers reads other segments: the oracle resolves it by name.
        for (i, (name, _)) in segments.iter().enumerate() {
            let live = live_members(&engine, name);
            let expected = if *name == "q1_not_readers" {
                // Only in the full list, after q1 (0) and readers (2).
                let q1 = oracle::members(&log, &exprs[0], now, Some(rfm));
                let readers = oracle::members(&log, &exprs[2], now, Some(rfm));
                q1.difference(&readers).cloned().collect()
            } else {
                oracle::members(&log, &exprs[i], now, Some(rfm))
            };
            prop_assert_eq!(&live, &expected, "segment {} at step {}", name, seq);
            prop_assert_eq!(&replayed[i], &live, "replayed changes of {}", name);
        }
        // Persons and identities agree with the oracle's components.
        let plain: Vec<Event> = log.iter().map(|(_, e)| e.clone()).collect();
        let persons = oracle::persons(&plain);
        prop_assert_eq!(engine.person_count(), persons.len());
        for (canonical, ids) in &persons {
            let p = engine.person_of(canonical).unwrap();
            prop_assert_eq!(engine.canonical_id(p), canonical.as_str());
            let got: BTreeSet<String> = engine.identities_of(p).into_iter().collect();
            prop_assert_eq!(&got, ids);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn live_segments_equal_a_full_recompute(
        steps in proptest::collection::vec(step(), 1..60),
        first_thresholds in thresholds(),
    ) {
        check(&SEGMENTS, steps, first_thresholds)?;
    }

    /// The layer segments alone: no other segment's timer can stand in
    /// for the one that must fire when a buyer's recency lapses.
    #[test]
    fn rfm_layer_segments_alone_equal_a_full_recompute(
        steps in proptest::collection::vec(step(), 1..60),
        first_thresholds in thresholds(),
    ) {
        check(&SEGMENTS[4..6], steps, first_thresholds)?;
    }

    /// The intent segments alone: their window timers must fire by
    /// themselves.
    #[test]
    fn intent_segments_alone_equal_a_full_recompute(
        steps in proptest::collection::vec(step(), 1..60),
        first_thresholds in thresholds(),
    ) {
        check(&SEGMENTS[6..], steps, first_thresholds)?;
    }
}
