//! Evaluating a segment for one person at one instant, explaining the
//! verdict clause by clause, and computing when the verdict could next
//! change with the clock alone (the window-expiry timer).
//!
//! A comparison on a missing value (no purchase yet, no first channel, an
//! unset trait) is false whatever the operator, as NULL is in SQL.

use super::ast::{CmpOp, Expr, Literal, Prop};
use crate::analytics::rfm_scores;
use crate::person::{Person, NO_TS};
use crate::property::PropertyDef;
use crate::rfm::{layer_of, r_turns_low_at, RfmThresholds};
use siyu_domain::DAY;

/// What an evaluation may read besides the person.
pub struct Ctx<'a> {
    pub channels: &'a [String],
    /// The identity rings (`identities` counts the person's).
    pub ids: &'a crate::identity::IdentityGraph,
    /// Group names by code (`in_group`).
    pub groups: &'a crate::person::GroupNames,
    pub properties: &'a [PropertyDef],
    pub now: i64,
    /// The thresholds `rfm_layer` is read against (none: no layer).
    pub rfm: Option<RfmThresholds>,
    /// Membership of another segment (by name) for this person.
    pub in_segment: &'a dyn Fn(&str) -> bool,
}

enum Val<'a> {
    Int(i64),
    Str(&'a str),
    Missing,
}

fn window_start(now: i64, w: Option<super::Window>) -> i64 {
    w.map_or(i64::MIN, |w| now - w.seconds)
}

fn value<'a>(p: &'a Person, prop: &'a Prop, ctx: &Ctx<'a>) -> Val<'a> {
    let now = ctx.now;
    match prop {
        Prop::Purchases(w) => {
            Val::Int(p.purchases_between(window_start(now, *w), i64::MAX).len() as i64)
        }
        Prop::Spend(w) => Val::Int(
            p.purchases_between(window_start(now, *w), i64::MAX)
                .iter()
                .map(|x| x.amount)
                .sum(),
        ),
        Prop::Reads(w) => {
            let from = window_start(now, *w);
            Val::Int((p.reads().len() - p.reads().partition_point(|&t| (t as i64) < from)) as i64)
        }
        Prop::NetSpend => Val::Int(p.net_spend()),
        Prop::Refunds => Val::Int(p.refunded()),
        Prop::FirstChannel => match ctx.channels.get(p.first_channel as usize) {
            Some(c) => Val::Str(c),
            None => Val::Missing,
        },
        Prop::DaysSinceFirstSeen if p.first_ts != NO_TS => {
            Val::Int((now - p.first_ts as i64).div_euclid(DAY))
        }
        Prop::DaysSinceLastPurchase if p.last_purchase_ts() != NO_TS => {
            Val::Int((now - p.last_purchase_ts() as i64).div_euclid(DAY))
        }
        Prop::RfmR | Prop::RfmF | Prop::RfmM => match rfm_scores(p, now) {
            Some((r, f, m)) => Val::Int(match prop {
                Prop::RfmR => r,
                Prop::RfmF => f,
                _ => m,
            } as i64),
            None => Val::Missing,
        },
        Prop::RfmLayer => match ctx.rfm.and_then(|t| layer_of(p, now, &t)) {
            Some(layer) => Val::Str(layer.name()),
            None => Val::Missing,
        },
        Prop::Identities => Val::Int(ctx.ids.ring_len(p.canonical) as i64),
        Prop::Trait(name) => match p.extra.as_ref().and_then(|e| e.traits().get(name)) {
            Some(serde_json::Value::String(s)) => Val::Str(s),
            _ => Val::Missing,
        },
        Prop::Custom(name) => {
            let Some(i) = ctx.properties.iter().position(|d| &d.name == name) else {
                return Val::Missing;
            };
            let values = p
                .extra
                .as_ref()
                .and_then(|e| e.properties().get(i))
                .map_or(&[][..], |v| v.as_slice());
            match ctx.properties[i].evaluate(values, now) {
                Some(v) => Val::Int(v),
                None => Val::Missing,
            }
        }
        Prop::DaysSinceFirstSeen | Prop::DaysSinceLastPurchase => Val::Missing,
    }
}

fn compare(v: Val<'_>, op: CmpOp, lit: &Literal) -> bool {
    match (v, lit) {
        (Val::Int(a), Literal::Int(b)) => op.holds(a, *b),
        (Val::Str(a), Literal::Str(b)) => op.holds(a, b.as_str()),
        _ => false,
    }
}

/// Whether `p` satisfies `e` at `ctx.now`.
pub fn eval(e: &Expr, p: &Person, ctx: &Ctx<'_>) -> bool {
    match e {
        // Clauses that read only the person's fixed-size fields go first:
        // most persons are decided before their purchase list is touched.
        Expr::And { all } => {
            all.iter().filter(|x| is_cheap(x)).all(|x| eval(x, p, ctx))
                && all.iter().filter(|x| !is_cheap(x)).all(|x| eval(x, p, ctx))
        }
        Expr::Or { any } => {
            any.iter().filter(|x| is_cheap(x)).any(|x| eval(x, p, ctx))
                || any.iter().filter(|x| !is_cheap(x)).any(|x| eval(x, p, ctx))
        }
        Expr::Not { expr } => !eval(expr, p, ctx),
        Expr::Cmp {
            prop,
            op,
            value: lit,
        } => compare(value(p, prop, ctx), *op, lit),
        Expr::OptedOut => p.opted_out,
        Expr::Friended => p.first_friend_ts != NO_TS,
        Expr::HasTag { tag } => p
            .extra
            .as_ref()
            .is_some_and(|x| x.tags().binary_search(tag).is_ok()),
        Expr::InGroup { group } => ctx
            .groups
            .code(group)
            .is_some_and(|c| p.extra.as_ref().is_some_and(|x| x.in_group(c))),
        Expr::InSegment { segment } => (ctx.in_segment)(segment),
        Expr::Intent { intent, window } => p
            .conversation()
            .and_then(|c| c.last_intent(*intent))
            .is_some_and(|t| t as i64 >= window_start(ctx.now, *window)),
    }
}

/// Whether a clause reads only fields stored inline in the person.
fn is_cheap(e: &Expr) -> bool {
    match e {
        Expr::Not { expr } => is_cheap(expr),
        Expr::Cmp { prop, .. } => matches!(
            prop,
            // Not net_spend, refunds or days_since_last_purchase: they read
            // the purchases (and `extra`) behind a pointer.
            Prop::FirstChannel
                | Prop::DaysSinceFirstSeen
                | Prop::Identities
                | Prop::Purchases(None)
        ),
        Expr::OptedOut | Expr::Friended => true,
        _ => false,
    }
}

/// Whether the clock can never change `e`'s verdict for `p` because a
/// clock-independent part already decides it (an `and` with a false
/// clause, an `or` with a true one): no timer is needed.
pub fn decided_without_clock(e: &Expr, p: &Person, ctx: &Ctx<'_>) -> bool {
    match e {
        Expr::And { all } => all
            .iter()
            .any(|x| !x.is_time_dependent() && !eval(x, p, ctx)),
        Expr::Or { any } => any
            .iter()
            .any(|x| !x.is_time_dependent() && eval(x, p, ctx)),
        Expr::Not { expr } => decided_without_clock(expr, p, ctx),
        other => !other.is_time_dependent(),
    }
}

/// The earliest instant after `now` at which the clock alone could change
/// the verdict of `e` for `p`, if any (`rfm`: the thresholds `rfm_layer`
/// is read against).
pub fn next_change(
    e: &Expr,
    p: &Person,
    properties: &[PropertyDef],
    rfm: Option<&RfmThresholds>,
    now: i64,
) -> Option<i64> {
    let day_boundary = |base: u32| {
        (base != NO_TS).then(|| {
            let d = (now - base as i64).div_euclid(DAY);
            base as i64 + (d + 1) * DAY
        })
    };
    match e {
        Expr::And { all: v } | Expr::Or { any: v } => v
            .iter()
            .filter_map(|x| next_change(x, p, properties, rfm, now))
            .min(),
        Expr::Not { expr } => next_change(expr, p, properties, rfm, now),
        Expr::Cmp { prop, .. } => match prop {
            // An event at ts is inside `last w` while now <= ts + w.
            Prop::Purchases(Some(w)) | Prop::Spend(Some(w)) => p
                .purchases_between(now - w.seconds, i64::MAX)
                .first()
                .map(|x| x.ts as i64 + w.seconds + 1),
            Prop::Reads(Some(w)) => {
                let from = now - w.seconds;
                let i = p.reads().partition_point(|&t| (t as i64) < from);
                p.reads().get(i).map(|&t| t as i64 + w.seconds + 1)
            }
            Prop::DaysSinceFirstSeen => day_boundary(p.first_ts),
            Prop::DaysSinceLastPurchase | Prop::RfmR => day_boundary(p.last_purchase_ts()),
            // Only R moves with the clock, and only from high to low.
            Prop::RfmLayer => rfm.and_then(|t| r_turns_low_at(p, now, t)),
            Prop::Custom(name) => {
                let i = properties.iter().position(|d| &d.name == name)?;
                let values = p.extra.as_ref().and_then(|e| e.properties().get(i))?;
                properties[i].next_change(values, now)
            }
            _ => None,
        },
        // Holds while now <= ts + w for the newest such message.
        Expr::Intent {
            intent,
            window: Some(w),
        } => p
            .conversation()
            .and_then(|c| c.last_intent(*intent))
            .map(|t| t as i64 + w.seconds + 1),
        _ => None,
    }
    .filter(|&t| t > now)
}

/// One clause of an explanation: the clause as written and whether it holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Explanation {
    pub clause: String,
    pub holds: bool,
    /// The person's value for a comparison, as the language writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Explanation>,
}

/// Why `p` is in or out of `e`: every clause with its verdict.
pub fn explain(e: &Expr, p: &Person, ctx: &Ctx<'_>) -> Explanation {
    let parts = match e {
        Expr::And { all: v } | Expr::Or { any: v } => {
            v.iter().map(|x| explain(x, p, ctx)).collect()
        }
        Expr::Not { expr } => vec![explain(expr, p, ctx)],
        _ => Vec::new(),
    };
    let actual = match e {
        Expr::Cmp { prop, .. } => Some(match value(p, prop, ctx) {
            Val::Int(n) if prop.is_money() => format!("{}.{:02}", n / 100, (n % 100).abs()),
            Val::Int(n) => n.to_string(),
            Val::Str(s) => format!("{s:?}"),
            Val::Missing => "missing".to_string(),
        }),
        Expr::Intent { intent, .. } => Some(
            match p.conversation().and_then(|c| c.last_intent(*intent)) {
                Some(t) => format!("newest at {}", siyu_domain::time::format_rfc3339(t as i64)),
                None => "none".to_string(),
            },
        ),
        _ => None,
    };
    Explanation {
        clause: e.to_string(),
        holds: eval(e, p, ctx),
        actual,
        parts,
    }
}
