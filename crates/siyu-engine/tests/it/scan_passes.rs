//! The sequence analytics (`scan.rs`) against a per-person brute force:
//! the passes see the whole log interleaved, page after page; the oracle
//! looks at one person's events at a time, in event time. They must agree
//! for any log, any page size, and with the identities resolved by a copy
//! of the engine's table (`Engine::identity_index`) as by the engine
//! itself. And every analysis that depends on the order of a person's
//! events answers the same whatever order the log stores them in.

use proptest::prelude::*;
use siyu_domain::EventType;
use siyu_engine::analytics;
use siyu_engine::scan::{in_event_time, AttributionPass, FunnelPass, FunnelStep};
use siyu_engine::{Engine, RawEvent};
use std::collections::BTreeMap;

const IDS: [&str; 6] = [
    "douyin:a", "douyin:b", "wecom:a", "wecom:c", "taobao:d", "taobao:e",
];
const CHANNELS: [&str; 3] = ["douyin", "wecom", "taobao"];
const TYPES: [EventType; 5] = [
    EventType::Touch,
    EventType::AddFriend,
    EventType::Purchase,
    EventType::Refund,
    EventType::Identify,
];

#[derive(Clone, Debug)]
struct Ev {
    ts: i64,
    who: usize,
    kind: usize,
    channel: usize,
    amount: i64,
    link: Option<usize>,
}

fn raw(e: &Ev, seq: u64) -> RawEvent<'static> {
    with_id(e, None, seq)
}

fn with_id<'a>(e: &Ev, id: Option<&'a str>, seq: u64) -> RawEvent<'a> {
    RawEvent {
        id,
        reference: e.link.map(|l| IDS[l]),
        ..RawEvent::bare(
            seq,
            e.ts,
            IDS[e.who],
            TYPES[e.kind],
            CHANNELS[e.channel],
            e.amount,
        )
    }
}

fn log() -> impl Strategy<Value = Vec<Ev>> {
    let ev = (
        0i64..50,
        0..IDS.len(),
        0..TYPES.len(),
        0..CHANNELS.len(),
        0i64..1000,
        proptest::option::of(0..IDS.len()),
    )
        .prop_map(|(dt, who, kind, channel, amount, link)| Ev {
            ts: dt,
            who,
            kind,
            channel,
            amount,
            link: link.filter(|_| TYPES[kind] == EventType::Identify),
        });
    proptest::collection::vec(ev, 0..60).prop_map(|mut v| {
        // Log order is time order here, as the passes assume.
        let mut t = 1_790_000_000;
        for e in &mut v {
            t += e.ts;
            e.ts = t;
        }
        v
    })
}

/// Funnel of one person's own events, greedily.
fn person_funnel(events: &[RawEvent<'_>], steps: &[FunnelStep]) -> Option<(usize, String)> {
    let matches = |s: &FunnelStep, e: &RawEvent<'_>| {
        s.event_type == e.event_type && s.channel.as_deref().is_none_or(|c| c == e.channel)
    };
    let start = events.iter().position(|e| matches(&steps[0], e))?;
    let mut reached = 1;
    let mut last = events[start].ts;
    for e in &events[start + 1..] {
        if let Some(s) = steps.get(reached) {
            if matches(s, e) && e.ts >= last && s.within.is_none_or(|w| e.ts - last <= w) {
                reached += 1;
                last = e.ts;
            }
        }
    }
    Some((reached, events[start].channel.to_string()))
}

/// Attribution from each person's own events in event time (each list
/// sorted), summed per channel: (first touch, last touch, linear).
fn person_attribution<'a>(
    persons: impl IntoIterator<Item = &'a Vec<RawEvent<'a>>>,
) -> BTreeMap<String, (i64, i64, f64)> {
    let mut credit: BTreeMap<String, (i64, i64, f64)> = BTreeMap::new();
    for evs in persons {
        // Touches before each purchase or refund, from this person alone.
        let mut touched: Vec<&str> = Vec::new();
        let mut first: Option<&str> = None;
        let mut last: Option<&str> = None;
        for e in evs {
            match e.event_type {
                EventType::Identify => {}
                EventType::Purchase | EventType::Refund => {
                    let amount = if e.event_type == EventType::Refund {
                        -e.amount
                    } else {
                        e.amount
                    };
                    if first.is_none() {
                        first = Some(e.channel);
                        last = Some(e.channel);
                        touched.push(e.channel);
                    }
                    credit.entry(first.unwrap().into()).or_default().0 += amount;
                    credit.entry(last.unwrap().into()).or_default().1 += amount;
                    for c in &touched {
                        credit.entry(c.to_string()).or_default().2 +=
                            amount as f64 / touched.len() as f64;
                    }
                }
                _ => {
                    first.get_or_insert(e.channel);
                    last = Some(e.channel);
                    if !touched.contains(&e.channel) {
                        touched.push(e.channel);
                    }
                }
            }
        }
    }
    credit
}

/// More channels than the pass keeps as bits (80 > 63), persons who touch
/// dozens of them, and a log stored partly out of time order: attribution
/// agrees with the per-person walk over sorted events.
#[test]
fn channels_beyond_the_bits_are_credited_like_the_rest() {
    let channels: Vec<String> = (0..80).map(|i| format!("ch{i}")).collect();
    let persons: Vec<String> = (0..12).map(|i| format!("p:{i}")).collect();
    // A fixed pseudo-random sequence (xorshift), no dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut raws = Vec::new();
    for seq in 0..3000u64 {
        let who = next(persons.len() as u64) as usize;
        let channel = next(channels.len() as u64) as usize;
        let (t, amount) = match next(10) {
            0 | 1 => (EventType::Purchase, 1 + next(5000) as i64),
            2 => (EventType::Refund, 1 + next(500) as i64),
            _ => (EventType::Touch, 0),
        };
        // Every seventh event is stored an hour before its neighbours.
        let ts = 1_790_000_000 + seq as i64 * 10 - if seq % 7 == 0 { 3600 } else { 0 };
        raws.push(RawEvent::bare(
            seq,
            ts,
            &persons[who],
            t,
            &channels[channel],
            amount,
        ));
    }
    let mut engine = Engine::new();
    for e in &raws {
        engine.apply_raw(*e);
    }
    let got = siyu_engine::scan::attribution(&engine, raws.iter().copied());

    let mut by_person: BTreeMap<&str, Vec<RawEvent<'_>>> = BTreeMap::new();
    for e in &raws {
        by_person.entry(e.identity).or_default().push(*e);
    }
    for evs in by_person.values_mut() {
        evs.sort_by_key(|e| (e.ts, e.tie_break()));
    }
    let credit = person_attribution(by_person.values());
    assert!(credit.len() > 63, "the log reaches the wide channels");
    assert_eq!(got.len(), credit.len());
    for a in got {
        let (f, l, lin) = credit[&a.channel];
        assert_eq!((a.first_touch, a.last_touch), (f, l), "{}", a.channel);
        assert!(
            (a.linear - lin).abs() < 1e-6,
            "{}: {} vs {lin}",
            a.channel,
            a.linear
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn passes_agree_with_a_per_person_brute_force(
        events in log(),
        page in 1usize..8,
        within in proptest::option::of(1i64..200),
        split in any::<bool>(),
    ) {
        let mut engine = Engine::new();
        let raws: Vec<RawEvent<'static>> =
            events.iter().enumerate().map(|(i, e)| raw(e, i as u64)).collect();
        for r in &raws {
            engine.apply_raw(*r);
        }
        let steps = [
            FunnelStep { event_type: EventType::Touch, channel: None, within: None },
            FunnelStep { event_type: EventType::AddFriend, channel: None, within },
            FunnelStep { event_type: EventType::Purchase, channel: Some("wecom".into()), within },
        ];
        // The passes, fed in pages, persons from a copy of the table.
        let index = engine.identity_index();
        let mut funnel = FunnelPass::new(&steps, split);
        let mut attribution = AttributionPass::new();
        for chunk in raws.chunks(page) {
            for e in chunk {
                let p = index.person_of(e.identity).expect("every identity is known");
                prop_assert_eq!(Some(p), engine.person_of(e.identity));
                funnel.feed(p, e);
                attribution.feed(p, e);
            }
        }
        // The oracle: each person's events on their own, in event time.
        let mut by_person: BTreeMap<u32, Vec<RawEvent<'static>>> = BTreeMap::new();
        for e in &raws {
            by_person.entry(engine.person_of(e.identity).unwrap()).or_default().push(*e);
        }
        for evs in by_person.values_mut() {
            evs.sort_by_key(|e| (e.ts, e.tie_break()));
        }
        let mut expected_funnel: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for evs in by_person.values() {
            if let Some((reached, channel)) = person_funnel(evs, &steps) {
                let key = if split { channel } else { "all".to_string() };
                let row = expected_funnel.entry(key).or_insert_with(|| vec![0; steps.len()]);
                for r in row.iter_mut().take(reached) {
                    *r += 1;
                }
            }
        }
        let credit = person_attribution(by_person.values());
        let got: BTreeMap<String, Vec<u64>> =
            funnel.finish().into_iter().map(|r| (r.split, r.reached)).collect();
        prop_assert_eq!(got, expected_funnel);
        let got = attribution.finish();
        prop_assert_eq!(got.len(), credit.len());
        for a in got {
            let (f, l, lin) = credit[&a.channel];
            prop_assert_eq!((a.first_touch, a.last_touch), (f, l), "{}", a.channel);
            prop_assert!((a.linear - lin).abs() < 1e-6, "{}: {} vs {}", a.channel, a.linear, lin);
        }
    }
}

/// Every answer that depends on the order of a person's events, from an
/// engine that applied `log` in that order (offsets 0..) and passes fed
/// the same order.
fn answers(log: &[RawEvent<'_>]) -> String {
    let mut engine = Engine::for_log();
    for (offset, e) in log.iter().enumerate() {
        engine.apply_raw(RawEvent {
            seq: offset as u64,
            ..*e
        });
    }
    let steps = [
        FunnelStep {
            event_type: EventType::Touch,
            channel: None,
            within: None,
        },
        FunnelStep {
            event_type: EventType::AddFriend,
            channel: None,
            within: Some(40),
        },
        FunnelStep {
            event_type: EventType::Purchase,
            channel: Some("wecom".into()),
            within: Some(60),
        },
    ];
    let index = engine.identity_index();
    let mut split = FunnelPass::new(&steps, true);
    let mut all = FunnelPass::new(&steps, false);
    let mut attribution = AttributionPass::new();
    // Each pass reads the log once, or twice when some person's events
    // are out of time order.
    let read = |feed: &mut dyn FnMut(u32, &RawEvent<'_>)| {
        for (offset, e) in log.iter().enumerate() {
            let e = RawEvent {
                seq: offset as u64,
                ..*e
            };
            feed(
                index
                    .person_of(e.identity)
                    .expect("every identity is known"),
                &e,
            );
        }
        Ok::<(), ()>(())
    };
    in_event_time(&mut split, read).unwrap();
    in_event_time(&mut all, read).unwrap();
    in_event_time(&mut attribution, read).unwrap();
    let t0 = log.iter().map(|e| e.ts).min().unwrap_or(0);
    format!(
        "steps {:?}\nall {:?}\nattribution {:?}\nfunnel {:?}\nroi {:?}\ncohorts {:?}\nltv {:?}\nrepurchase {:?}",
        split.finish(),
        all.finish(),
        attribution.finish(),
        analytics::first_touch_funnel(&engine, 40, 60),
        analytics::channel_roi(&engine, [("douyin", 5)]),
        analytics::cohort_retention(&engine, t0, 30, 8),
        analytics::ltv_by_cohort_and_channel(&engine),
        analytics::repurchase(&engine),
    )
}

/// A log in time order (many events share a second) and the same events
/// in another order, as a later import of orders would store them.
fn log_and_shuffled() -> impl Strategy<Value = (Vec<Ev>, Vec<usize>)> {
    log().prop_flat_map(|events| {
        let order: Vec<usize> = (0..events.len()).collect();
        (Just(events), Just(order).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn answers_do_not_depend_on_the_order_events_were_stored_in(
        (events, order) in log_and_shuffled(),
        same_second in any::<bool>(),
    ) {
        // Events carry ids, as API and order-import events do: their
        // order at the same second is a property of the set, not of the log.
        let ids: Vec<String> = (0..events.len()).map(|i| format!("e{i}")).collect();
        let mut events = events;
        if same_second {
            // Ties everywhere: a few distinct seconds only.
            for e in &mut events {
                e.ts = 1_790_000_000 + e.ts % 3;
            }
        }
        let in_time: Vec<RawEvent<'_>> = events
            .iter()
            .zip(&ids)
            .map(|(e, id)| with_id(e, Some(id), 0))
            .collect();
        let shuffled: Vec<RawEvent<'_>> = order.iter().map(|&i| in_time[i]).collect();
        prop_assert_eq!(answers(&in_time), answers(&shuffled));
    }
}
