//! The eight RFM value layers on a hand-computed population: which buyer
//! lands where under explicit and median thresholds, the report's sums,
//! the segment condition `rfm_layer = "…"` and the instant recency lapses.

use siyu_domain::{Channel, Event, EventType, Identity, DAY};
use siyu_engine::rfm::{
    layer_of, layer_report, median_thresholds, RfmBasis, RfmLayer, RfmSource, RfmThresholds,
};
use siyu_engine::{segment, Engine};

const NOW: i64 = 1_790_000_000;

fn ev(ts: i64, who: &str, ty: EventType, amount: i64) -> Event {
    let id = Identity::parse(who).unwrap();
    let ch = Channel::parse(id.channel()).unwrap();
    let mut e = Event::new(ts, id, ty, ch);
    e.amount = amount;
    e
}

/// (who, days since the last purchase, purchases, amount each, refund,
/// expected layer): the eight corners, one buyer each.
const BUYERS: [(&str, i64, i64, i64, i64, RfmLayer); 8] = [
    ("douyin:a", 2, 3, 100_000, 0, RfmLayer::ImportantValue),
    ("douyin:b", 5, 1, 200_000, 0, RfmLayer::ImportantDevelop),
    ("douyin:c", 60, 2, 80_000, 10_000, RfmLayer::ImportantKeep),
    ("douyin:d", 90, 1, 120_000, 0, RfmLayer::ImportantWinBack),
    ("douyin:e", 10, 2, 10_000, 0, RfmLayer::GeneralValue),
    ("douyin:f", 1, 1, 5_000, 0, RfmLayer::GeneralDevelop),
    ("douyin:g", 45, 3, 10_000, 0, RfmLayer::GeneralKeep),
    ("douyin:h", 200, 1, 10_000, 0, RfmLayer::GeneralWinBack),
];

fn population() -> Engine {
    let mut e = Engine::new();
    let mut seq = 0;
    let mut apply = |e: &mut Engine, ev: Event| {
        e.apply(seq, &ev);
        seq += 1;
    };
    for (who, days, n, amount, refund) in BUYERS.map(|b| (b.0, b.1, b.2, b.3, b.4)) {
        let last = NOW - days * DAY - 3600;
        // Earlier purchases a week apart; the last one `days` (and an hour) ago.
        for k in (0..n).rev() {
            apply(
                &mut e,
                ev(last - k * 7 * DAY, who, EventType::Purchase, amount),
            );
        }
        if refund > 0 {
            apply(&mut e, ev(last, who, EventType::Refund, refund));
        }
    }
    // A person who never bought is in no layer.
    apply(&mut e, ev(NOW - DAY, "douyin:z", EventType::Touch, 0));
    e.advance_to(NOW);
    e
}

fn setting(t: RfmThresholds) -> Option<RfmBasis> {
    Some(RfmBasis {
        thresholds: t,
        source: RfmSource::Setting,
    })
}

#[test]
fn the_medians_among_buyers_are_the_default_thresholds() {
    let e = population();
    // days 1,2,5,10,45,60,90,200; purchases 1,1,1,1,2,2,3,3; net spend
    // 50.00 100.00 200.00 300.00 1200.00 1500.00 2000.00 3000.00 (c: 1600 − 100):
    // the lower medians are the 4th of 8.
    assert_eq!(
        median_thresholds(&e, NOW),
        Some(RfmThresholds {
            recency_days: 10,
            frequency: 1,
            monetary_cents: 30_000
        })
    );
    assert_eq!(median_thresholds(&Engine::new(), NOW), None);
}

#[test]
fn every_buyer_lands_in_its_corner_and_non_buyers_in_none() {
    let e = population();
    let t = median_thresholds(&e, NOW).unwrap();
    for (who, .., layer) in BUYERS {
        let p = e.person(e.person_of(who).unwrap()).unwrap();
        assert_eq!(layer_of(p, NOW, &t), Some(layer), "{who}");
    }
    let z = e.person(e.person_of("douyin:z").unwrap()).unwrap();
    assert_eq!(layer_of(z, NOW, &t), None);
    // Explicit thresholds move the boundaries: 30 days, more than 2
    // purchases, more than ¥1,000 → only a (3 purchases, ¥3,000, 2 days) is
    // a champion; e (10 days, 2 × ¥100) becomes 一般发展.
    let strict = RfmThresholds {
        recency_days: 30,
        frequency: 2,
        monetary_cents: 100_000,
    };
    let layer = |who: &str| layer_of(e.person(e.person_of(who).unwrap()).unwrap(), NOW, &strict);
    assert_eq!(layer("douyin:a"), Some(RfmLayer::ImportantValue));
    assert_eq!(layer("douyin:e"), Some(RfmLayer::GeneralDevelop));
    assert_eq!(layer("douyin:c"), Some(RfmLayer::ImportantWinBack));
    assert_eq!(layer("douyin:g"), Some(RfmLayer::GeneralKeep));
}

#[test]
fn the_report_sums_persons_and_revenue_per_layer() {
    let e = population();
    let t = median_thresholds(&e, NOW).unwrap();
    let r = layer_report(&e, NOW, &t);
    assert_eq!(r.buyers, 8);
    // 3000 + 2000 + 1500 + 1200 + 200 + 50 + 300 + 100 yuan.
    assert_eq!(r.revenue_cents, 835_000);
    assert_eq!(r.revenue_per_buyer_cents, 104_375);
    let layers: Vec<RfmLayer> = r.layers.iter().map(|l| l.layer).collect();
    assert_eq!(layers, RfmLayer::ALL);
    let champions = &r.layers[0];
    assert_eq!(champions.name, "重要价值客户");
    assert_eq!(champions.persons, 1);
    assert_eq!(champions.share_of_persons, 0.125);
    assert_eq!(champions.revenue_cents, 300_000);
    assert_eq!(champions.share_of_revenue, 300_000.0 / 835_000.0);
    assert_eq!(champions.revenue_per_person_cents, 300_000);
    assert_eq!(champions.ratio_to_average, 300_000.0 / 104_375.0);
    let lost = &r.layers[7];
    assert_eq!((lost.persons, lost.revenue_cents), (1, 10_000));
    // Shares add up to one.
    let persons: f64 = r.layers.iter().map(|l| l.share_of_persons).sum();
    let revenue: f64 = r.layers.iter().map(|l| l.share_of_revenue).sum();
    assert!((persons - 1.0).abs() < 1e-12 && (revenue - 1.0).abs() < 1e-12);
    // Nobody bought: eight empty layers, no division by zero.
    let empty = layer_report(&Engine::new(), NOW, &t);
    assert_eq!(empty.buyers, 0);
    assert!(empty
        .layers
        .iter()
        .all(|l| l.persons == 0 && l.ratio_to_average == 0.0));
}

#[test]
fn a_layer_segment_follows_the_clock_and_the_thresholds() {
    let mut e = population();
    let t = median_thresholds(&e, NOW).unwrap();
    e.set_rfm_basis(setting(t));
    let src = r#"rfm_layer = "一般价值客户""#;
    e.define_segment("regulars", segment::parse(src).unwrap(), src.into())
        .unwrap();
    e.start_live(NOW);
    let members = |e: &Engine| -> Vec<String> {
        let s = &e.live_segments().segments()[0];
        s.members().map(|p| e.canonical_id(p).to_string()).collect()
    };
    assert_eq!(members(&e), ["douyin:e"]);
    // e bought 10 days and an hour ago: R stays high (≤ 10 whole days)
    // until the 11th day since the purchase begins, to the second.
    let last = NOW - 10 * DAY - 3600;
    let lapse = last + 11 * DAY;
    assert!(e.advance_to(lapse - 1).is_empty());
    let c = e.advance_to(lapse);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].canonical_id.as_str(), c[0].entered, c[0].at),
        ("douyin:e", false, lapse)
    );
    // A looser recency takes her back at once; clearing the thresholds
    // empties every layer.
    let c = e.set_rfm_basis(setting(RfmThresholds {
        recency_days: 30,
        ..t
    }));
    assert_eq!(c.len(), 1);
    assert!(c[0].entered);
    assert_eq!(members(&e), ["douyin:e"]);
    let c = e.set_rfm_basis(None);
    assert_eq!((c.len(), c[0].entered), (1, false));
    // A JSON tree naming no layer is refused when saved, listing the eight.
    let bogus: segment::Expr = serde_json::from_value(serde_json::json!(
        {"kind": "cmp", "prop": {"prop": "rfm_layer"}, "op": "=", "value": "vip"}
    ))
    .unwrap();
    let err = e.define_segment("bogus", bogus, String::new()).unwrap_err();
    assert!(err.to_string().contains("\"vip\""), "{err}");
    assert!(err.to_string().contains("一般挽留客户"), "{err}");
}
