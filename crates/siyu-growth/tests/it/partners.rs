//! The commission ledger against a recompute: whatever the orders,
//! refunds and payouts, and whenever the ledger is planned, each order's
//! lines add up to what it earns now, a second plan changes nothing, and
//! a paid line is never changed.

use proptest::prelude::*;
use siyu_growth::partners::{dues, pay, plan, LedgerLine, LineStatus, OrderFacts, Partner};
use std::collections::{BTreeMap, HashMap};

const DAY: i64 = 86_400;

fn partner() -> Partner {
    serde_json::from_value(serde_json::json!({
        "id": "k", "name": "k", "identity": "wecom:k", "hold": "7d",
        "commission": {"rate_bp": 1000, "tiers": [{"from": 50_000, "rate_bp": 1500}],
                       "products": {"vip": 2500}}
    }))
    .unwrap()
}

/// An order: day bought, amount, vip or not, refunds (day after purchase, fen).
type Spec = (i64, i64, bool, Vec<(i64, i64)>);

fn facts(specs: &[Spec]) -> Vec<OrderFacts> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (day, amount, vip, refunds))| OrderFacts {
            key: format!("o{i:02}"),
            order_id: format!("o{i:02}"),
            person: format!("p{}", i % 4),
            ts: day * DAY,
            amount: *amount,
            product: vip.then(|| "vip".to_string()),
            refunds: refunds
                .iter()
                .map(|(after, a)| (day * DAY + after * DAY + 1, (*a).min(*amount)))
                .collect(),
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0i64..30,
        1i64..40_000,
        any::<bool>(),
        prop::collection::vec((0i64..20, 1i64..40_000), 0..3),
    )
}

proptest! {
    #[test]
    fn the_ledger_always_adds_up_to_a_recompute(
        specs in prop::collection::vec(spec(), 1..12),
        steps in prop::collection::vec((1i64..6, any::<bool>()), 1..12),
    ) {
        let p = partner();
        let orders = facts(&specs);
        let no_flags = HashMap::new();
        let mut lines: Vec<LedgerLine> = Vec::new();
        let mut now = 0;
        for (n, (advance, payout)) in steps.iter().enumerate() {
            now += advance * DAY;
            let due = dues(&p, &orders, &no_flags, now);
            let before: Vec<LedgerLine> = lines.iter().filter(|l| l.status == LineStatus::Paid).cloned().collect();
            lines = plan(&p, &due, &lines, now);
            // A second plan changes nothing.
            prop_assert_eq!(&plan(&p, &due, &lines, now), &lines);
            // Paid lines stay as they were.
            for b in &before {
                prop_assert!(lines.contains(b), "paid line changed: {:?}", b);
            }
            // Each order's lines add up to what it earns now.
            let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
            for l in &lines {
                *sums.entry(l.order.as_str()).or_default() += l.amount;
            }
            for d in &due {
                prop_assert_eq!(sums.get(d.order.as_str()).copied().unwrap_or(0), d.commission, "order {}", d.order);
            }
            // Held lines are inside their window, payable ones past it.
            for l in &lines {
                match l.status {
                    LineStatus::Held => prop_assert!(now < l.hold_until),
                    LineStatus::Payable => prop_assert!(now >= l.hold_until),
                    _ => {}
                }
            }
            if *payout {
                pay(&mut lines, &format!("po{n}"), now);
            }
        }
    }
}
