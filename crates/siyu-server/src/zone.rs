//! The workspace time zone and the date ranges analytics are asked for.
//!
//! A brand lives in one time zone (default Asia/Shanghai): its operators
//! read "20:15", not "12:15Z", count "per day" from their midnight, and
//! mean their own calendar days when they ask for ROI "from 2026-10-01 to
//! 2026-10-31". The zone is a workspace setting ([`TIME_ZONE_KEY`], an
//! IANA name checked against the tz database bundled into the binary by
//! jiff, through `siyu_automation::schedule::Tz`); this module reads and
//! checks it, and turns `from`/`to` (local dates, inclusive, or RFC 3339
//! instants) into instants and local days. The pure cores take the zone
//! or the instants as parameters; nothing here reads the clock.
//!
//! Used by the analytics routes, `PUT /v1/workspace`, the automation
//! executor (the guardrails' default zone) and `siyu analytics`.

use siyu_automation::schedule::{self, Tz};
use siyu_engine::RawEvent;
use siyu_store::Store;
use std::ops::{Range, RangeInclusive};

/// The setting holding the workspace time zone (a JSON string).
pub const TIME_ZONE_KEY: &str = "workspace/time_zone";

/// The zone of a workspace that never set one.
pub const DEFAULT_TIME_ZONE: &str = schedule::DEFAULT_TZ;

/// Checks a time zone name given as `field`: the zone, or a message
/// naming the field, the value and an example.
pub fn parse_time_zone(field: &str, name: &str) -> Result<Tz, String> {
    Tz::parse(name).map_err(|_| {
        format!(
            "{field}: `{name}` is not a time zone; give an IANA name such as \"Asia/Shanghai\" or \"America/New_York\""
        )
    })
}

/// The workspace time zone as stored; the default when none is stored
/// (or the stored one no longer reads: it was checked when saved).
pub fn load_time_zone(store: &mut dyn Store) -> siyu_store::Result<Tz> {
    let stored = match store.get_setting(TIME_ZONE_KEY) {
        Ok(v) => v,
        // A row that cannot be read does not stop a start; the default applies.
        Err(siyu_store::StoreError::Corrupt(e)) => {
            tracing::warn!(error = %e, "workspace time zone unreadable; using {DEFAULT_TIME_ZONE}");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(stored
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|name| Tz::parse(name).ok())
        .unwrap_or_else(Tz::shanghai))
}

/// The workspace time zone in force.
pub fn current(state: &crate::AppState) -> Tz {
    state
        .0
        .time_zone
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// A guardrail policy as stored: one that names no `default_timezone`
/// (and the default policy, `None`) counts local days and quiet hours of
/// persons without a timezone in the workspace time zone.
pub fn policy_in_zone(
    stored: Option<serde_json::Value>,
    tz: &Tz,
) -> Result<siyu_automation::guard::Policy, serde_json::Error> {
    let mut v = stored.unwrap_or_else(|| serde_json::json!({}));
    if let Some(fields) = v.as_object_mut() {
        fields
            .entry("default_timezone")
            .or_insert_with(|| tz.name().into());
    }
    serde_json::from_value(v)
}

/// Calendar weeks in a time zone, Monday 00:00 local to the next Monday
/// (168 hours or not, across a DST change): cohort weeks. Week 0 is the
/// week holding `t0`.
pub struct LocalWeeks<'a> {
    /// Week 0's Monday, days since 1970-01-01.
    monday: i64,
    tz: &'a Tz,
}

impl<'a> LocalWeeks<'a> {
    pub fn containing(t0: i64, tz: &'a Tz) -> LocalWeeks<'a> {
        let day = schedule::local_day(t0, tz);
        // Day 0 (1970-01-01) was a Thursday: Mondays are days ≡ 4 (mod 7).
        LocalWeeks {
            monday: day - (day - 4).rem_euclid(7),
            tz,
        }
    }

    /// The week `ts` falls in (negative: before week 0).
    pub fn week_of(&self, ts: i64) -> i64 {
        (schedule::local_day(ts, self.tz) - self.monday).div_euclid(7)
    }

    /// The first instant of week `week`.
    pub fn start(&self, week: i64) -> i64 {
        schedule::local_day_start(self.monday + 7 * week, self.tz)
    }

    /// The Monday of week `week`, `YYYY-MM-DD`.
    pub fn monday(&self, week: i64) -> String {
        siyu_domain::time::format_date(self.monday + 7 * week)
    }
}

/// A range of time an analytics question is asked for, as instants:
/// `from` inclusive, `to` exclusive; `None` is unbounded on that side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl DateRange {
    /// Reads `from` and `to` as given in a query or on the command line:
    /// `YYYY-MM-DD` is a calendar day in `tz` (`from` at its start, `to`
    /// through its end: both days included), anything else must be an
    /// RFC 3339 instant (`to` included). `from` after `to` is refused.
    pub fn parse(from: Option<&str>, to: Option<&str>, tz: &Tz) -> Result<DateRange, String> {
        let read = |field: &str, text: &str| -> Result<(i64, i64), String> {
            let text = text.trim();
            if let Some(day) = siyu_domain::time::parse_date(text) {
                return Ok((
                    schedule::local_day_start(day, tz),
                    schedule::local_day_start(day + 1, tz),
                ));
            }
            match siyu_domain::time::parse_rfc3339(text) {
                Some(ts) => Ok((ts, ts + 1)),
                None => Err(format!(
                    "{field}: `{text}` is neither a date nor an instant; give YYYY-MM-DD (a day in {tz}, e.g. {field}=2026-10-01) or RFC 3339 (e.g. {field}=2026-10-01T00:00:00+08:00)"
                )),
            }
        };
        let from_text = from.filter(|s| !s.trim().is_empty());
        let to_text = to.filter(|s| !s.trim().is_empty());
        let from = from_text
            .map(|s| read("from", s))
            .transpose()?
            .map(|(start, _)| start);
        let to = to_text
            .map(|s| read("to", s))
            .transpose()?
            .map(|(_, end)| end);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(format!(
                    "from: `{}` is after to: `{}`; give a from on or before to",
                    from_text.unwrap_or_default().trim(),
                    to_text.unwrap_or_default().trim()
                ));
            }
        }
        Ok(DateRange { from, to })
    }

    /// True when no bound was given: the question is about all time.
    pub fn is_all_time(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// The instants of the range.
    pub fn instants(&self) -> Range<i64> {
        self.from.unwrap_or(i64::MIN)..self.to.unwrap_or(i64::MAX)
    }

    /// The local calendar days the range touches, for tables kept by day
    /// (spend); `None` when the range is all time.
    pub fn days(&self, tz: &Tz) -> Option<RangeInclusive<i64>> {
        if self.is_all_time() {
            return None;
        }
        let first = self.from.map_or(i64::MIN, |f| schedule::local_day(f, tz));
        let last = self.to.map_or(i64::MAX, |t| schedule::local_day(t - 1, tz));
        Some(first..=last)
    }

    /// Whether a full-log attribution pass needs `e`: purchases and
    /// refunds inside the range are what it credits; touches before the
    /// range still earn credit for them; nothing after the range can.
    pub fn admits_for_attribution(&self, e: &RawEvent<'_>) -> bool {
        use siyu_domain::EventType;
        if self.to.is_some_and(|t| e.ts >= t) {
            return false;
        }
        match e.event_type {
            EventType::Purchase | EventType::Refund => !matches!(self.from, Some(f) if e.ts < f),
            _ => true,
        }
    }

    /// How an answer names its range: local RFC 3339 (`from` inclusive,
    /// `to` exclusive), null for an open side.
    pub fn view(&self, tz: &Tz) -> RangeView {
        RangeView {
            time_zone: tz.name().to_string(),
            from: self.from.map(|f| schedule::format_local(f, tz)),
            to: self.to.map(|t| schedule::format_local(t, tz)),
        }
    }
}

/// The range and zone an analytics answer was computed for (every
/// ranged answer carries it, so a report names its zone).
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct RangeView {
    /// The workspace time zone dates were read in (`Asia/Shanghai`).
    pub time_zone: String,
    /// First instant included, local RFC 3339; null: from the beginning.
    pub from: Option<String>,
    /// First instant no longer included, local RFC 3339; null: up to now.
    pub to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_local_days_and_instants_are_instants() {
        let sh = Tz::shanghai();
        let r = DateRange::parse(Some("2026-10-31"), Some("2026-10-31"), &sh).unwrap();
        let start = siyu_domain::time::parse_rfc3339("2026-10-30T16:00:00Z").unwrap();
        assert_eq!(r.instants(), start..start + 86_400);
        let oct31 = siyu_domain::time::parse_date("2026-10-31").unwrap();
        assert_eq!(r.days(&sh), Some(oct31..=oct31));
        assert_eq!(
            r.view(&sh),
            RangeView {
                time_zone: "Asia/Shanghai".into(),
                from: Some("2026-10-31T00:00:00+08:00".into()),
                to: Some("2026-11-01T00:00:00+08:00".into()),
            }
        );
        let i = DateRange::parse(Some("2026-10-31T12:15:00Z"), None, &sh).unwrap();
        assert_eq!(
            i.from,
            siyu_domain::time::parse_rfc3339("2026-10-31T12:15:00Z")
        );
        assert_eq!(i.to, None);
        assert!(DateRange::parse(None, Some(""), &sh).unwrap().is_all_time());
    }

    #[test]
    fn bad_bounds_name_the_field() {
        let sh = Tz::shanghai();
        let e = DateRange::parse(Some("yesterday"), None, &sh).unwrap_err();
        assert!(e.starts_with("from: `yesterday` is neither a date nor an instant; give YYYY-MM-DD (a day in Asia/Shanghai"), "{e}");
        let e = DateRange::parse(None, Some("2026-02-30"), &sh).unwrap_err();
        assert!(e.starts_with("to: `2026-02-30`"), "{e}");
        let e = DateRange::parse(Some("2026-11-02"), Some("2026-11-01"), &sh).unwrap_err();
        assert_eq!(
            e,
            "from: `2026-11-02` is after to: `2026-11-01`; give a from on or before to"
        );
        let e = parse_time_zone("time_zone", "Mars/Olympus").unwrap_err();
        assert_eq!(e, "time_zone: `Mars/Olympus` is not a time zone; give an IANA name such as \"Asia/Shanghai\" or \"America/New_York\"");
    }
}
