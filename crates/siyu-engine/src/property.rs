//! User-defined computed properties: count / sum / min / max / first /
//! last of one event type, optionally filtered by channel or custom event
//! name, optionally over a sliding window ("orders over ¥300 on taobao in
//! the last 30 days"). Segments read them as `prop.NAME`.
//!
//! Each person keeps the matching events' (ts, value) pairs sorted, so a
//! windowed aggregate is exact at any clock and a merge is a sorted union.

use crate::person::Ts;
use crate::segment::Window;
use serde::{Deserialize, Serialize};
use siyu_domain::{Event, EventType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    /// Value of the earliest matching event.
    First,
    /// Value of the latest matching event.
    Last,
}

/// Where an event's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueOf {
    /// The amount in cents (purchase, refund).
    Amount,
    /// An integer property of a custom event.
    Property(String),
}

/// A brand-defined computed property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PropertyDef {
    pub name: String,
    pub aggregate: Aggregate,
    pub event_type: EventType,
    /// Only events on this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Only custom events with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// Only events with at least this value (e.g. orders over ¥300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<i64>,
    #[serde(default = "default_value_of")]
    pub value: ValueOf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

fn default_value_of() -> ValueOf {
    ValueOf::Amount
}

/// Why a property definition is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("property name `{0}` must be 1..64 characters of lowercase letters, digits or `_`")]
    BadName(String),
    #[error("property `{0}`: `event_name` only applies to custom events")]
    NameOnBuiltin(String),
    #[error("property `{0}`: the value of a {1} event is its amount; use \"value\": \"amount\" or a custom event")]
    NoValue(String, EventType),
    #[error("property `{0}`: window must be positive")]
    BadWindow(String),
}

impl PropertyDef {
    pub fn validate(&self) -> Result<(), PropertyError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(PropertyError::BadName(self.name.clone()));
        }
        if self.event_name.is_some() && self.event_type != EventType::Custom {
            return Err(PropertyError::NameOnBuiltin(self.name.clone()));
        }
        if let ValueOf::Property(_) = self.value {
            if self.event_type != EventType::Custom {
                return Err(PropertyError::NoValue(self.name.clone(), self.event_type));
            }
        }
        if self.window.is_some_and(|w| w.seconds <= 0) {
            return Err(PropertyError::BadWindow(self.name.clone()));
        }
        Ok(())
    }

    /// The value this event contributes, if it matches.
    pub fn matches(&self, e: &Event) -> Option<i64> {
        if e.event_type != self.event_type {
            return None;
        }
        if self
            .channel
            .as_deref()
            .is_some_and(|c| c != e.channel.as_str())
        {
            return None;
        }
        if self.event_name.is_some() && self.event_name != e.name {
            return None;
        }
        let v = match &self.value {
            ValueOf::Amount => e.amount,
            ValueOf::Property(p) => e.properties.as_ref()?.get(p)?.as_i64()?,
        };
        if self.min_value.is_some_and(|m| v < m) {
            return None;
        }
        Some(v)
    }

    /// The aggregate over `values` (sorted by ts) at `now`; None if no event counts.
    pub fn evaluate(&self, values: &[(Ts, i64)], now: i64) -> Option<i64> {
        let from = self.window.map_or(i64::MIN, |w| now - w.seconds);
        let start = values.partition_point(|(t, _)| (*t as i64) < from);
        let v = &values[start..];
        match self.aggregate {
            Aggregate::Count => Some(v.len() as i64),
            Aggregate::Sum => Some(v.iter().map(|x| x.1).sum()),
            Aggregate::Min => v.iter().map(|x| x.1).min(),
            Aggregate::Max => v.iter().map(|x| x.1).max(),
            Aggregate::First => v.first().map(|x| x.1),
            Aggregate::Last => v.last().map(|x| x.1),
        }
    }

    /// When the windowed value next changes with the clock alone.
    pub fn next_change(&self, values: &[(Ts, i64)], now: i64) -> Option<i64> {
        let w = self.window?;
        let start = values.partition_point(|(t, _)| (*t as i64) < now - w.seconds);
        values.get(start).map(|(t, _)| *t as i64 + w.seconds + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_aggregates() {
        let def = PropertyDef {
            name: "big_orders_30d".into(),
            aggregate: Aggregate::Count,
            event_type: EventType::Purchase,
            channel: None,
            event_name: None,
            min_value: Some(30_000),
            value: ValueOf::Amount,
            window: Some(Window {
                seconds: 30 * 86_400,
            }),
        };
        def.validate().unwrap();
        let v = [(1_000, 40_000), (2_000_000, 50_000)];
        // Inclusive bound: the first order counts through ts + 30d, not after.
        assert_eq!(def.evaluate(&v, 1_000 + 30 * 86_400), Some(2));
        assert_eq!(def.evaluate(&v, 1_000 + 30 * 86_400 + 1), Some(1));
        assert_eq!(def.next_change(&v, 1_000), Some(1_000 + 30 * 86_400 + 1));
        let sum = PropertyDef {
            aggregate: Aggregate::Max,
            window: None,
            ..def.clone()
        };
        assert_eq!(sum.evaluate(&v, 0), Some(50_000));
        let bad = PropertyDef {
            name: "Bad Name".into(),
            ..def
        };
        assert!(bad.validate().is_err());
    }
}
