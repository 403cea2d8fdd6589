//! The eight classic RFM value layers (RFM 客户价值分层): each buyer is
//! High or Low on Recency, Frequency and Monetary against three
//! thresholds, and the 2×2×2 combinations are named:
//!
//! | R (recent) | F (frequent) | M (spends a lot) | layer |
//! | --- | --- | --- | --- |
//! | high | high | high | 重要价值客户 (Champions) |
//! | high | low  | high | 重要发展客户 (big spenders to develop) |
//! | low  | high | high | 重要保持客户 (loyal big spenders slipping away) |
//! | low  | low  | high | 重要挽留客户 (big spenders to win back) |
//! | high | high | low  | 一般价值客户 (loyal regulars, low spend) |
//! | high | low  | low  | 一般发展客户 (new or occasional buyers) |
//! | low  | high | low  | 一般保持客户 (frequent buyers going quiet) |
//! | low  | low  | low  | 一般挽留客户 (lost low-value buyers) |
//!
//! This is the standard mapping: M decides 重要 (important) against 一般
//! (general); within each, R and F say value (both high), development
//! (recent but infrequent: grow the frequency), keeping (frequent but not
//! recent: bring them back before they go) and win-back (neither).
//!
//! Against [`RfmThresholds`] a buyer is **R high** when the whole days
//! since the last purchase are at most `recency_days`, **F high** when
//! the purchases are more than `frequency`, and **M high** when the net
//! spend (purchases − refunds, cents) is more than `monetary_cents`. So
//! the default thresholds are simply the medians among buyers
//! ([`median_thresholds`]): R high is the more recent half, F and M high
//! are those above the typical buyer. (F uses "more than" because counts
//! tie heavily — most buyers buy once — and "at least the median" would
//! make almost everyone frequent.)
//!
//! A person with no purchase is in no layer: a comparison on the layer
//! is false for them, as for any missing value.
//!
//! Recency depends on the clock; the engine reads none. A buyer's layer is
//! evaluated at the instant passed in (the engine clock for live
//! segments), and the instant R turns low is known in advance
//! ([`r_turns_low_at`]), so live segments schedule a timer for it like any
//! window expiry. The thresholds are data, not clock: the engine holds
//! the ones it is given ([`crate::Engine::set_rfm_thresholds`]) and a
//! change re-evaluates every segment, so membership stays exact.

use crate::engine::Engine;
use crate::person::{Person, NO_TS};
use serde::{Deserialize, Serialize};
use siyu_domain::DAY;

/// What "high" means on each measure (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RfmThresholds {
    /// R high: the last purchase at most this many whole days ago.
    pub recency_days: u32,
    /// F high: more than this many purchases.
    pub frequency: u32,
    /// M high: net spend more than this many cents.
    pub monetary_cents: i64,
}

/// Where the thresholds the engine holds came from (it only stores this,
/// for the answers that report them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RfmSource {
    /// The workspace's own setting.
    Setting,
    /// The medians among buyers at this instant (no setting).
    Median { at: i64 },
}

/// The thresholds the engine's segments use, and their origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RfmBasis {
    pub thresholds: RfmThresholds,
    pub source: RfmSource,
}

/// The largest values a threshold may take (a century, a million
/// purchases, ¥100 billion): anything beyond is a typo.
pub const MAX_RECENCY_DAYS: u32 = 36_500;
pub const MAX_FREQUENCY: u32 = 1_000_000;
pub const MAX_MONETARY_CENTS: i64 = 10_000_000_000_000;

/// A threshold out of range, naming the field and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {expected}")]
pub struct ThresholdError {
    pub field: &'static str,
    pub expected: String,
}

impl RfmThresholds {
    /// What applies while nobody has purchased (every layer is empty).
    pub const ZERO: RfmThresholds = RfmThresholds {
        recency_days: 0,
        frequency: 0,
        monetary_cents: 0,
    };

    /// These thresholds with each one given replaced (what an operator
    /// tries against the workspace's, in the API and on the command line).
    pub fn overridden(
        self,
        recency_days: Option<u32>,
        frequency: Option<u32>,
        monetary_cents: Option<i64>,
    ) -> RfmThresholds {
        RfmThresholds {
            recency_days: recency_days.unwrap_or(self.recency_days),
            frequency: frequency.unwrap_or(self.frequency),
            monetary_cents: monetary_cents.unwrap_or(self.monetary_cents),
        }
    }

    /// Checks each field's range (a negative amount, a century of days).
    pub fn validate(&self) -> Result<(), ThresholdError> {
        if self.recency_days > MAX_RECENCY_DAYS {
            return Err(ThresholdError {
                field: "recency_days",
                expected: format!("a whole number of days from 0 to {MAX_RECENCY_DAYS}"),
            });
        }
        if self.frequency > MAX_FREQUENCY {
            return Err(ThresholdError {
                field: "frequency",
                expected: format!("a purchase count from 0 to {MAX_FREQUENCY}"),
            });
        }
        if !(0..=MAX_MONETARY_CENTS).contains(&self.monetary_cents) {
            return Err(ThresholdError {
                field: "monetary_cents",
                expected: format!("an amount in cents from 0 to {MAX_MONETARY_CENTS}"),
            });
        }
        Ok(())
    }
}

/// One of the eight layers, in the table's order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RfmLayer {
    ImportantValue,
    ImportantDevelop,
    ImportantKeep,
    ImportantWinBack,
    GeneralValue,
    GeneralDevelop,
    GeneralKeep,
    GeneralWinBack,
}

impl RfmLayer {
    pub const ALL: [RfmLayer; 8] = [
        RfmLayer::ImportantValue,
        RfmLayer::ImportantDevelop,
        RfmLayer::ImportantKeep,
        RfmLayer::ImportantWinBack,
        RfmLayer::GeneralValue,
        RfmLayer::GeneralDevelop,
        RfmLayer::GeneralKeep,
        RfmLayer::GeneralWinBack,
    ];

    /// The layer of a buyer who is high or low on each measure.
    pub fn of(r_high: bool, f_high: bool, m_high: bool) -> RfmLayer {
        match (m_high, r_high, f_high) {
            (true, true, true) => RfmLayer::ImportantValue,
            (true, true, false) => RfmLayer::ImportantDevelop,
            (true, false, true) => RfmLayer::ImportantKeep,
            (true, false, false) => RfmLayer::ImportantWinBack,
            (false, true, true) => RfmLayer::GeneralValue,
            (false, true, false) => RfmLayer::GeneralDevelop,
            (false, false, true) => RfmLayer::GeneralKeep,
            (false, false, false) => RfmLayer::GeneralWinBack,
        }
    }

    /// The Chinese name, as the segment language writes it.
    pub fn name(self) -> &'static str {
        match self {
            RfmLayer::ImportantValue => "重要价值客户",
            RfmLayer::ImportantDevelop => "重要发展客户",
            RfmLayer::ImportantKeep => "重要保持客户",
            RfmLayer::ImportantWinBack => "重要挽留客户",
            RfmLayer::GeneralValue => "一般价值客户",
            RfmLayer::GeneralDevelop => "一般发展客户",
            RfmLayer::GeneralKeep => "一般保持客户",
            RfmLayer::GeneralWinBack => "一般挽留客户",
        }
    }

    /// The stable English key (`important_value` …), also accepted by
    /// the segment language.
    pub fn key(self) -> &'static str {
        match self {
            RfmLayer::ImportantValue => "important_value",
            RfmLayer::ImportantDevelop => "important_develop",
            RfmLayer::ImportantKeep => "important_keep",
            RfmLayer::ImportantWinBack => "important_win_back",
            RfmLayer::GeneralValue => "general_value",
            RfmLayer::GeneralDevelop => "general_develop",
            RfmLayer::GeneralKeep => "general_keep",
            RfmLayer::GeneralWinBack => "general_win_back",
        }
    }

    /// A layer by its Chinese name (with or without the trailing 客户, as
    /// in 一般价值) or its English key.
    pub fn parse(s: &str) -> Option<RfmLayer> {
        RfmLayer::ALL
            .into_iter()
            .find(|l| s == l.name() || s == l.key() || Some(s) == l.name().strip_suffix("客户"))
    }

    /// The eight names, for error messages.
    pub fn names() -> String {
        RfmLayer::ALL
            .iter()
            .map(|l| format!("\"{}\"", l.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whole days since the person's last purchase at `now`, if any.
fn days_since_last_purchase(p: &Person, now: i64) -> Option<i64> {
    (p.purchase_count() > 0 && p.last_purchase_ts() != NO_TS)
        .then(|| (now - p.last_purchase_ts() as i64).div_euclid(DAY))
}

/// The buyer's layer at `now`; None for a person who never purchased.
pub fn layer_of(p: &Person, now: i64, t: &RfmThresholds) -> Option<RfmLayer> {
    let days = days_since_last_purchase(p, now)?;
    Some(RfmLayer::of(
        days <= t.recency_days as i64,
        p.purchase_count() > t.frequency,
        p.net_spend() > t.monetary_cents,
    ))
}

/// The instant after `now` at which the buyer's R turns low (the clock
/// alone changes nothing else), if it is still high at `now`.
pub fn r_turns_low_at(p: &Person, now: i64, t: &RfmThresholds) -> Option<i64> {
    days_since_last_purchase(p, now)?;
    // days <= recency_days  ⇔  now < last + (recency_days + 1) days.
    let at = p.last_purchase_ts() as i64 + (t.recency_days as i64 + 1) * DAY;
    (at > now).then_some(at)
}

/// The lower median of a list (the middle value, the smaller of the two
/// middle ones for an even count).
fn lower_median<T: Ord + Copy>(mut v: Vec<T>) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    let mid = (v.len() - 1) / 2;
    let (_, m, _) = v.select_nth_unstable(mid);
    Some(*m)
}

/// The default thresholds: the (lower) medians among buyers at `now` of
/// the days since the last purchase, the purchase count and the net
/// spend. None when nobody has purchased.
pub fn median_thresholds(engine: &Engine, now: i64) -> Option<RfmThresholds> {
    let mut days = Vec::new();
    let mut counts = Vec::new();
    let mut spend = Vec::new();
    for (_, p) in engine.persons() {
        if let Some(d) = days_since_last_purchase(p, now) {
            days.push(d.clamp(0, MAX_RECENCY_DAYS as i64) as u32);
            counts.push(p.purchase_count().min(MAX_FREQUENCY));
            spend.push(p.net_spend().clamp(0, MAX_MONETARY_CENTS));
        }
    }
    Some(RfmThresholds {
        recency_days: lower_median(days)?,
        frequency: lower_median(counts)?,
        monetary_cents: lower_median(spend)?,
    })
}

/// One layer of [`layer_report`].
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LayerRow {
    pub layer: RfmLayer,
    /// The Chinese name (what `rfm_layer = "…"` takes).
    pub name: &'static str,
    pub persons: u64,
    /// persons / buyers (0 when there are no buyers).
    pub share_of_persons: f64,
    /// Net spend of the layer's persons, cents.
    pub revenue_cents: i64,
    /// revenue / all buyers' revenue (0 when that is not positive).
    pub share_of_revenue: f64,
    /// revenue / persons, cents (0 for an empty layer).
    pub revenue_per_person_cents: i64,
    /// revenue per person / revenue per buyer: "worth 5×" (0 when either
    /// is not positive).
    pub ratio_to_average: f64,
}

/// The eight layers at `now` under `t`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LayerReport {
    /// Persons with at least one purchase (the ones in some layer).
    pub buyers: u64,
    pub revenue_cents: i64,
    pub revenue_per_buyer_cents: i64,
    /// All eight, in [`RfmLayer::ALL`] order, empty ones included.
    pub layers: Vec<LayerRow>,
}

/// Persons and net spend per layer at `now` under `t` (one pass).
pub fn layer_report(engine: &Engine, now: i64, t: &RfmThresholds) -> LayerReport {
    let sums = engine.fold_persons(
        |persons| {
            let mut s = [(0u64, 0i64); 8];
            for (_, p) in persons {
                if let Some(l) = layer_of(p, now, t) {
                    let cell = &mut s[l as usize];
                    cell.0 += 1;
                    cell.1 += p.net_spend();
                }
            }
            s
        },
        |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.0 += y.0;
                x.1 += y.1;
            }
            a
        },
    );
    let buyers: u64 = sums.iter().map(|s| s.0).sum();
    let revenue: i64 = sums.iter().map(|s| s.1).sum();
    let per_buyer = if buyers > 0 {
        revenue / buyers as i64
    } else {
        0
    };
    let ratio = |a: i64, b: i64| {
        if a > 0 && b > 0 {
            a as f64 / b as f64
        } else {
            0.0
        }
    };
    let layers = RfmLayer::ALL
        .into_iter()
        .map(|layer| {
            let (persons, revenue_cents) = sums[layer as usize];
            let per_person = if persons > 0 {
                revenue_cents / persons as i64
            } else {
                0
            };
            LayerRow {
                layer,
                name: layer.name(),
                persons,
                share_of_persons: if buyers > 0 {
                    persons as f64 / buyers as f64
                } else {
                    0.0
                },
                revenue_cents,
                share_of_revenue: ratio(revenue_cents, revenue),
                revenue_per_person_cents: per_person,
                // Exact quotient of the two averages (not of the rounded cents).
                ratio_to_average: if persons > 0 && buyers > 0 && revenue > 0 && revenue_cents > 0 {
                    (revenue_cents as f64 / persons as f64) / (revenue as f64 / buyers as f64)
                } else {
                    0.0
                },
            }
        })
        .collect();
    LayerReport {
        buyers,
        revenue_cents: revenue,
        revenue_per_buyer_cents: per_buyer,
        layers,
    }
}
