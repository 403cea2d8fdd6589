//! The commission ledger as a pure planner. Each order a partner is
//! credited with has lines; their sum is what the order has earned so
//! far. [`plan`] compares that sum with what the order earns now
//! ([`super::Due`]) and changes the ledger by the difference:
//!
//! - a first accrual is **held** until `purchase + hold` (the refund
//!   window), then **payable**;
//! - a reduction (a refund, a flag) lowers the order's unpaid lines in
//!   place, recording it in their `clawed_back`; what a paid line no
//!   longer supports becomes a negative **clawback** line, payable at
//!   once (deducted from the next payout);
//! - an increase (a volume tier reached after a refund elsewhere was
//!   undone, say) is a new **adjustment** line held like an accrual;
//! - a flagged order (self-referral, shared device) gets one **refused**
//!   line of 0 fen naming the reason and what it would have earned.
//!
//! A first line records what refunds already took off the order
//! (`clawed_back`), so a fully refunded order shows as a line of 0 fen.
//! New lines are dated by the events that caused them (the purchase, the
//! order's newest refund), never by `now`, so the plan is a function of the log
//! and the ledger: repeated, it changes nothing. [`pay`] marks payable
//! lines paid (the only change a plan never undoes).

use super::{Due, FraudFlag, Partner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a line stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    /// Inside the refund window.
    Held,
    Payable,
    Paid,
    /// Flagged by anti-fraud: earns nothing.
    Refused,
}

/// Why a line exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Accrual,
    Adjustment,
    /// Negative: a refund after the commission was paid.
    Clawback,
    Refused,
}

/// One ledger line (stored per order, listed by `GET …/ledger`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerLine {
    /// The order's key (`<channel>:<order_id>`).
    pub order: String,
    pub order_id: String,
    /// The buyer's canonical id when the line was made.
    pub person: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The line's number within its order (0 first).
    pub n: u32,
    pub kind: LineKind,
    /// Fen; negative for a clawback.
    pub amount: i64,
    /// The order's net revenue (fen) when the line was made or last reduced.
    pub base: i64,
    pub rate_bp: u32,
    /// Epoch seconds of the event that caused it.
    pub at: i64,
    /// Payable from this instant on.
    pub hold_until: i64,
    pub status: LineStatus,
    /// Fen taken off this line by refunds before it was paid.
    #[serde(default)]
    pub clawed_back: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FraudFlag>,
    /// A refused line: what it would have earned.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub would_earn: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl LedgerLine {
    fn unpaid(&self) -> bool {
        matches!(self.status, LineStatus::Held | LineStatus::Payable)
    }
}

/// The ledger at `now`: `stored` changed as `dues` (the orders credited to
/// partner `p`, see [`super::dues`]) require. Orders with stored lines but
/// no due any more (no longer credited, erased) are due 0. Lines come
/// back ordered by order key and line number.
pub fn plan(p: &Partner, dues: &[Due], stored: &[LedgerLine], now: i64) -> Vec<LedgerLine> {
    let mut per_order: BTreeMap<&str, Vec<LedgerLine>> = BTreeMap::new();
    for l in stored {
        per_order
            .entry(l.order.as_str())
            .or_default()
            .push(l.clone());
    }
    let due_of: BTreeMap<&str, &Due> = dues.iter().map(|d| (d.order.as_str(), d)).collect();
    for d in dues {
        per_order.entry(d.order.as_str()).or_default();
    }
    let mut out = Vec::new();
    for (order, mut lines) in per_order {
        lines.sort_by_key(|l| l.n);
        let due = due_of.get(order).copied();
        settle(p, order, due, &mut lines);
        for l in &mut lines {
            if l.unpaid() {
                l.status = if now >= l.hold_until {
                    LineStatus::Payable
                } else {
                    LineStatus::Held
                };
            }
        }
        out.extend(lines);
    }
    out
}

/// Brings one order's lines to what it earns (`due`; none: 0).
fn settle(p: &Partner, order: &str, due: Option<&Due>, lines: &mut Vec<LedgerLine>) {
    let target = due.map_or(0, |d| d.commission);
    let current: i64 = lines
        .iter()
        .filter(|l| l.status != LineStatus::Refused)
        .map(|l| l.amount)
        .sum();
    let (order_id, person, product, base, rate_bp) = match (due, lines.first()) {
        (Some(d), _) => (
            d.order_id.clone(),
            d.person.clone(),
            d.product.clone(),
            d.net,
            d.rate_bp,
        ),
        (None, Some(l)) => (
            l.order_id.clone(),
            l.person.clone(),
            l.product.clone(),
            0,
            l.rate_bp,
        ),
        (None, None) => (order.to_string(), String::new(), None, 0, 0),
    };
    let template = |n: u32, kind, amount, at, hold_until, status| LedgerLine {
        order: order.to_string(),
        order_id: order_id.clone(),
        person: person.clone(),
        product: product.clone(),
        n,
        kind,
        amount,
        base,
        rate_bp,
        at,
        hold_until,
        status,
        clawed_back: 0,
        flag: due.and_then(|d| d.flag),
        would_earn: 0,
        paid_at: None,
        payout: None,
    };
    let next_n = |lines: &[LedgerLine]| lines.last().map_or(0, |l| l.n + 1);
    // A flagged order: one refused line, whatever it would earn.
    if let Some(d) = due.filter(|d| d.flag.is_some()) {
        if !lines.iter().any(|l| l.status == LineStatus::Refused) {
            let n = next_n(&lines[..]);
            let mut l = template(n, LineKind::Refused, 0, d.ts, d.ts, LineStatus::Refused);
            l.would_earn = d.would_earn;
            lines.push(l);
        }
    }
    let diff = target - current;
    let dated = due.map_or(0, |d| d.last_refund.unwrap_or(d.ts).max(d.ts));
    let earned_before = lines.iter().any(|l| l.status != LineStatus::Refused);
    if let Some(d) = due.filter(|d| d.flag.is_none() && !earned_before) {
        // The first line of an order: what it earns, and what refunds
        // already took off it (so a fully refunded order still shows).
        let n = next_n(&lines[..]);
        let mut l = template(
            n,
            LineKind::Accrual,
            target,
            d.ts,
            d.ts + p.hold,
            LineStatus::Held,
        );
        l.clawed_back = (d.gross_commission - target).max(0);
        lines.push(l);
    } else if let Some(d) = due.filter(|_| diff > 0) {
        let n = next_n(&lines[..]);
        lines.push(template(
            n,
            LineKind::Adjustment,
            diff,
            dated,
            d.ts + p.hold,
            LineStatus::Held,
        ));
    } else if diff < 0 {
        let mut left = -diff;
        // Unpaid lines first, newest first, in place.
        for l in lines.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if l.unpaid() && l.amount > 0 {
                let take = left.min(l.amount);
                l.amount -= take;
                l.clawed_back += take;
                l.base = due.map_or(0, |d| d.net);
                left -= take;
            }
        }
        if left > 0 {
            let at = if due.is_some() {
                dated
            } else {
                lines.last().map_or(0, |l| l.at)
            };
            let n = next_n(&lines[..]);
            lines.push(template(
                n,
                LineKind::Clawback,
                -left,
                at,
                at,
                LineStatus::Payable,
            ));
        }
    }
}

/// Marks every payable line paid by `payout` at `now`; the total paid
/// (fen; a clawback line counts negative).
pub fn pay(lines: &mut [LedgerLine], payout: &str, now: i64) -> i64 {
    let mut total = 0;
    for l in lines.iter_mut().filter(|l| l.status == LineStatus::Payable) {
        l.status = LineStatus::Paid;
        l.paid_at = Some(now);
        l.payout = Some(payout.to_string());
        total += l.amount;
    }
    total
}

/// A ledger's sums (fen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerTotals {
    /// Inside the refund window.
    pub held: i64,
    /// Payable now (clawback lines counted negative).
    pub payable: i64,
    pub paid: i64,
    /// Taken back by refunds: off unpaid lines plus clawback lines.
    pub clawed_back: i64,
    /// Orders refused by anti-fraud, and what they would have earned.
    pub refused_orders: u64,
    pub refused_would_earn: i64,
    /// Orders with lines, and their buyers.
    pub orders: u64,
    pub persons: u64,
}

/// The sums of `lines`.
pub fn totals(lines: &[LedgerLine]) -> LedgerTotals {
    let mut t = LedgerTotals::default();
    let mut orders = std::collections::BTreeSet::new();
    let mut persons = std::collections::BTreeSet::new();
    for l in lines {
        orders.insert(l.order.as_str());
        persons.insert(l.person.as_str());
        t.clawed_back += l.clawed_back;
        match l.status {
            LineStatus::Held => t.held += l.amount,
            LineStatus::Payable => t.payable += l.amount,
            LineStatus::Paid => t.paid += l.amount,
            LineStatus::Refused => {
                t.refused_orders += 1;
                t.refused_would_earn += l.would_earn;
            }
        }
        if l.kind == LineKind::Clawback {
            t.clawed_back -= l.amount;
        }
    }
    t.orders = orders.len() as u64;
    t.persons = persons.len() as u64;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partners::{dues, OrderFacts};
    use std::collections::HashMap;

    const DAY: i64 = 86_400;

    fn partner() -> Partner {
        serde_json::from_value(serde_json::json!({
            "id": "k", "name": "k", "identity": "wecom:k", "hold": "7d",
            "commission": {"rate_bp": 1000}
        }))
        .unwrap()
    }

    fn order(key: &str, ts: i64, amount: i64, refunds: Vec<(i64, i64)>) -> OrderFacts {
        OrderFacts {
            key: key.into(),
            order_id: key.into(),
            person: "x".into(),
            ts,
            amount,
            product: None,
            refunds,
        }
    }

    fn at(p: &Partner, orders: &[OrderFacts], stored: &[LedgerLine], now: i64) -> Vec<LedgerLine> {
        plan(p, &dues(p, orders, &HashMap::new(), now), stored, now)
    }

    #[test]
    fn accrues_held_then_payable_at_the_end_of_the_refund_window() {
        let p = partner();
        let o = [order("a", 0, 10_000, vec![])];
        let l = at(&p, &o, &[], DAY);
        assert_eq!((l[0].amount, l[0].status), (1000, LineStatus::Held));
        let l = at(&p, &o, &l, 7 * DAY - 1);
        assert_eq!(l[0].status, LineStatus::Held);
        let l2 = at(&p, &o, &l, 7 * DAY);
        assert_eq!(l2[0].status, LineStatus::Payable);
        assert_eq!(
            at(&p, &o, &l2, 7 * DAY),
            l2,
            "a second plan changes nothing"
        );
    }

    #[test]
    fn a_refund_in_the_window_reduces_the_held_line_in_place() {
        let p = partner();
        let o = [order("a", 0, 10_000, vec![(DAY, 4_000)])];
        let l = at(&p, &o, &[], 2 * DAY);
        assert_eq!(l.len(), 1);
        // Computed after the refund: the first line records what it took.
        assert_eq!(
            (l[0].amount, l[0].clawed_back, l[0].base),
            (600, 400, 6_000)
        );
        // Accrued before the refund, then refunded: reduced in place.
        let before = at(&p, &o, &[], DAY - 1);
        assert_eq!(before[0].amount, 1000);
        let after = at(&p, &o, &before, 2 * DAY);
        assert_eq!((after[0].amount, after[0].clawed_back), (600, 400));
        assert_eq!(totals(&after).clawed_back, 400);
    }

    #[test]
    fn a_refund_after_payout_is_a_negative_line_deducted_from_the_next_payout() {
        let p = partner();
        let bought = [order("a", 0, 10_000, vec![])];
        let mut l = at(&p, &bought, &[], 8 * DAY);
        assert_eq!(pay(&mut l, "po1", 8 * DAY), 1000);
        let refunded = [order("a", 0, 10_000, vec![(9 * DAY, 10_000)])];
        let l = at(&p, &refunded, &l, 10 * DAY);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].amount, l[0].status), (1000, LineStatus::Paid));
        assert_eq!(
            (l[1].kind, l[1].amount, l[1].status, l[1].at),
            (LineKind::Clawback, -1000, LineStatus::Payable, 9 * DAY)
        );
        let t = totals(&l);
        assert_eq!((t.paid, t.payable, t.clawed_back), (1000, -1000, 1000));
        assert_eq!(at(&p, &refunded, &l, 10 * DAY), l, "stable");
    }

    #[test]
    fn a_flagged_order_gets_one_refused_line() {
        let p = partner();
        let o = [order("a", 0, 10_000, vec![])];
        let flags = HashMap::from([("x".to_string(), FraudFlag::SharedDevice)]);
        let l = plan(&p, &dues(&p, &o, &flags, DAY), &[], DAY);
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].status, l[0].amount, l[0].would_earn, l[0].flag),
            (LineStatus::Refused, 0, 1000, Some(FraudFlag::SharedDevice))
        );
        let again = plan(&p, &dues(&p, &o, &flags, DAY), &l, DAY);
        assert_eq!(again, l);
        let t = totals(&l);
        assert_eq!(
            (t.refused_orders, t.refused_would_earn, t.held),
            (1, 1000, 0)
        );
    }

    #[test]
    fn an_order_no_longer_credited_is_taken_back() {
        let p = partner();
        let o = [order("a", 0, 10_000, vec![])];
        let l = at(&p, &o, &[], DAY);
        let l = plan(&p, &[], &l, 2 * DAY);
        assert_eq!((l[0].amount, l[0].clawed_back), (0, 1000));
    }
}
