//! What each attributed order earns: its facts from the log (purchase,
//! refunds, product) and the partner's rate for it (base, volume tier or
//! product rate) on its net revenue.

use super::{FraudFlag, Partner, BP};
use siyu_domain::{Event, EventType};
use std::collections::{BTreeMap, HashMap};

/// One order as the log has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFacts {
    /// The order's key: `<channel>:<order_id>`, or `event:<id>` for a
    /// purchase without an order id.
    pub key: String,
    pub order_id: String,
    /// The buyer's canonical id.
    pub person: String,
    pub ts: i64,
    /// The purchase amount in fen.
    pub amount: i64,
    pub product: Option<String>,
    /// `(ts, fen)` of each refund naming the order.
    pub refunds: Vec<(i64, i64)>,
}

fn text(e: &Event, field: &str) -> Option<String> {
    match e.properties.as_ref()?.get(field)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The orders among one person's events (`person`: its canonical id).
/// A refund is tied to its purchase by channel and `properties.order_id`;
/// one naming no order seen here is left out.
pub fn orders_from_events<'a>(
    person: &str,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<OrderFacts> {
    let mut orders: BTreeMap<String, OrderFacts> = BTreeMap::new();
    let mut refunds: Vec<(String, i64, i64)> = Vec::new();
    for e in events {
        let order_id = text(e, "order_id");
        match e.event_type {
            EventType::Purchase => {
                let (key, order_id) = match order_id {
                    Some(o) => (format!("{}:{o}", e.channel.as_str()), o),
                    None => match &e.id {
                        Some(id) => (format!("event:{id}"), id.clone()),
                        None => continue,
                    },
                };
                orders.entry(key.clone()).or_insert(OrderFacts {
                    key,
                    order_id,
                    person: person.to_string(),
                    ts: e.ts,
                    amount: e.amount,
                    product: text(e, "product").or_else(|| text(e, "sku")),
                    refunds: Vec::new(),
                });
            }
            EventType::Refund => {
                if let Some(o) = order_id {
                    refunds.push((format!("{}:{o}", e.channel.as_str()), e.ts, e.amount));
                }
            }
            _ => {}
        }
    }
    for (key, ts, amount) in refunds {
        if let Some(o) = orders.get_mut(&key) {
            o.refunds.push((ts, amount));
        }
    }
    orders
        .into_values()
        .map(|mut o| {
            o.refunds.sort_unstable();
            o
        })
        .collect()
}

/// What one order earns at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub order: String,
    pub order_id: String,
    pub person: String,
    pub product: Option<String>,
    pub ts: i64,
    /// Purchase minus the refunds at or before the instant (never below 0).
    pub net: i64,
    pub rate_bp: u32,
    /// `net × rate_bp / 10000`, rounded down; 0 when flagged.
    pub commission: i64,
    /// What it would earn unflagged.
    pub would_earn: i64,
    /// What it would earn unflagged and without refunds (the purchase
    /// amount at the same rate): a first line records the difference as
    /// taken back by refunds.
    pub gross_commission: i64,
    pub flag: Option<FraudFlag>,
    /// The newest refund counted (when a reduction is dated).
    pub last_refund: Option<i64>,
}

/// The partner's rate for an order: the product's own rate, else the
/// highest tier the partner's net volume before it reached, else the base.
pub fn rate_for(p: &Partner, product: Option<&str>, volume_before: i64) -> u32 {
    if let Some(bp) = product.and_then(|x| p.commission.products.get(x)) {
        return *bp;
    }
    p.commission
        .tiers
        .iter()
        .rev()
        .find(|t| volume_before >= t.from)
        .map_or(p.commission.rate_bp, |t| t.rate_bp)
}

/// What each of `orders` (already credited to partner `p`) earns at
/// `now`: purchases after `now` are left out and only refunds at or before
/// `now` count. Volume tiers follow the orders in event time (ts, then
/// key), counting the net of unflagged orders before each.
pub fn dues(
    p: &Partner,
    orders: &[OrderFacts],
    flags: &HashMap<String, FraudFlag>,
    now: i64,
) -> Vec<Due> {
    let mut sorted: Vec<&OrderFacts> = orders.iter().filter(|o| o.ts <= now).collect();
    sorted.sort_by(|a, b| (a.ts, &a.key).cmp(&(b.ts, &b.key)));
    let mut volume = 0i64;
    sorted
        .into_iter()
        .map(|o| {
            let counted = o.refunds.iter().filter(|(ts, _)| *ts <= now);
            let refunded: i64 = counted.clone().map(|(_, a)| a).sum();
            let last_refund = counted.map(|(ts, _)| *ts).max();
            let net = (o.amount - refunded).max(0);
            let flag = flags.get(&o.person).copied();
            let rate_bp = rate_for(p, o.product.as_deref(), volume);
            let would_earn = net * rate_bp as i64 / BP;
            if flag.is_none() {
                volume += net;
            }
            Due {
                order: o.key.clone(),
                order_id: o.order_id.clone(),
                person: o.person.clone(),
                product: o.product.clone(),
                ts: o.ts,
                net,
                rate_bp,
                commission: if flag.is_some() { 0 } else { would_earn },
                would_earn,
                gross_commission: o.amount.max(0) * rate_bp as i64 / BP,
                flag,
                last_refund,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn partner() -> Partner {
        serde_json::from_value(json!({
            "name": "k", "identity": "wecom:k",
            "commission": {"rate_bp": 1000, "tiers": [{"from": 100_000, "rate_bp": 1500}],
                           "products": {"vip": 2000}}
        }))
        .unwrap()
    }

    fn ev(v: serde_json::Value) -> Event {
        siyu_domain::wire::parse_json_event(&v).unwrap()
    }

    #[test]
    fn refunds_are_tied_to_their_purchase_by_channel_and_order_id() {
        let events = [
            ev(
                json!({"ts": 1_800_000_000, "identity": "douyin:a", "type": "purchase", "channel": "douyin", "amount": 5000, "properties": {"order_id": "o1", "product": "vip"}}),
            ),
            ev(
                json!({"ts": 1_800_000_100, "identity": "douyin:a", "type": "refund", "channel": "douyin", "amount": 2000, "properties": {"order_id": "o1"}}),
            ),
            ev(
                json!({"ts": 1_800_000_100, "identity": "douyin:a", "type": "refund", "channel": "wecom", "amount": 2000, "properties": {"order_id": "o1"}}),
            ),
            ev(
                json!({"id": "e9", "ts": 1_800_000_200, "identity": "douyin:a", "type": "purchase", "channel": "douyin", "amount": 700, "properties": {"order_id": 42}}),
            ),
        ];
        let o = orders_from_events("douyin:a", &events);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].key, "douyin:42");
        assert_eq!(o[1].key, "douyin:o1");
        assert_eq!(o[1].product.as_deref(), Some("vip"));
        assert_eq!(
            o[1].refunds,
            vec![(1_800_000_100, 2000)],
            "the wecom refund names another order"
        );
    }

    #[test]
    fn tiers_follow_volume_before_the_order_and_products_win() {
        let p = partner();
        let mk = |key: &str, ts: i64, amount: i64, product: Option<&str>| OrderFacts {
            key: key.into(),
            order_id: key.into(),
            person: "x".into(),
            ts,
            amount,
            product: product.map(str::to_string),
            refunds: vec![],
        };
        let orders = [
            mk("a", 1, 80_000, None),
            mk("b", 2, 30_000, None),
            mk("c", 3, 10_000, None),
            mk("d", 4, 10_000, Some("vip")),
        ];
        let d = dues(&p, &orders, &HashMap::new(), 10);
        let got: Vec<(u32, i64)> = d.iter().map(|d| (d.rate_bp, d.commission)).collect();
        assert_eq!(
            got,
            vec![(1000, 8000), (1000, 3000), (1500, 1500), (2000, 2000)]
        );
        // Before `c` existed, it is not due; a refund after `now` is not counted.
        let mut late = orders.to_vec();
        late[0].refunds.push((20, 80_000));
        let d = dues(&p, &late, &HashMap::new(), 2);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].net, 80_000);
        let d = dues(&p, &late, &HashMap::new(), 20);
        assert_eq!(d[0].commission, 0);
        assert_eq!(
            d[2].rate_bp, 1000,
            "the refund took the volume below the tier"
        );
        let flags = HashMap::from([("x".to_string(), FraudFlag::SelfReferral)]);
        let d = dues(&p, &orders, &flags, 10);
        assert!(d.iter().all(|d| d.commission == 0 && d.flag.is_some()));
        assert_eq!(d[0].would_earn, 8000);
    }
}
