//! Time in a person's timezone: when "09:00", a birthday, a cron line or a
//! quiet-hours window happens for *this* person, as epoch seconds.
//!
//! Why it exists: every automation that waits ("send at 10:00", "every
//! Monday", "not between 21:00 and 09:00") must agree on one calendar
//! arithmetic, including DST gaps and folds, and it must be pure: the caller
//! passes `now` in, nothing here reads the clock or the disk. Timezones come
//! from the tz database bundled into the binary (jiff's `tzdb-bundle-always`),
//! so every machine gives the same answers regardless of its
//! `/usr/share/zoneinfo`.
//!
//! Conventions shared by every function:
//! - instants are `i64` epoch seconds; inputs outside jiff's range
//!   (years -9999..=9999) are clamped, never a panic;
//! - "next" means strictly after `now`, so a scheduler that fires at the
//!   answer and asks again gets the following occurrence;
//! - a local time that does not exist (a DST gap, e.g. 02:30 on the day New
//!   York springs forward) happens at the same wall-clock offset after the
//!   gap (03:30), and a local time that happens twice (a fold) happens at
//!   its first occurrence only. This is RFC 5545 / Temporal "compatible"
//!   disambiguation.

use std::fmt;
use std::sync::OnceLock;

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone, TimeZoneDatabase};
use jiff::Timestamp;

/// The timezone assumed for a person whose timezone is unknown.
pub const DEFAULT_TZ: &str = "Asia/Shanghai";

/// Everything in this module that can be rejected, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown timezone \"{0}\": use an IANA name like \"Asia/Shanghai\" or a fixed offset like \"+08:00\"")]
    UnknownTimezone(String),
    #[error(
        "bad time of day \"{0}\": write HH:MM with hours 00-23 and minutes 00-59, e.g. \"09:30\""
    )]
    TimeOfDay(String),
    #[error("cron needs 5 fields (minute hour day-of-month month day-of-week), got {0}: e.g. \"0 9 * * MON-FRI\"")]
    CronFieldCount(usize),
    #[error("cron field {index} ({field}): bad token \"{token}\": {message}")]
    CronField {
        /// 1-based position of the field.
        index: usize,
        field: &'static str,
        token: String,
        message: String,
    },
    #[error("bad duration \"{input}\": {message}")]
    Duration { input: String, message: String },
}

fn tz_database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// A timezone: an IANA zone from the bundled database or a fixed offset.
#[derive(Clone, Debug)]
pub struct Tz {
    zone: TimeZone,
    name: String,
}

impl Tz {
    /// Parses an IANA name ("Asia/Shanghai", case-insensitive), "UTC", or a
    /// fixed offset ("+08:00", "-0530", "+8", "UTC+08:00").
    pub fn parse(s: &str) -> Result<Tz, ScheduleError> {
        let trimmed = s.trim();
        let unknown = || ScheduleError::UnknownTimezone(s.to_string());
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(unknown());
        }
        let offset_text = trimmed
            .strip_prefix("UTC")
            .or_else(|| trimmed.strip_prefix("GMT"))
            .filter(|rest| !rest.is_empty())
            .unwrap_or(trimmed);
        if offset_text.starts_with(['+', '-']) {
            let seconds = parse_offset(offset_text).ok_or_else(unknown)?;
            let offset = Offset::from_seconds(seconds).map_err(|_| unknown())?;
            return Ok(Tz {
                zone: TimeZone::fixed(offset),
                name: format_offset(seconds),
            });
        }
        let zone = tz_database().get(trimmed).map_err(|_| unknown())?;
        if zone.is_unknown() {
            return Err(unknown());
        }
        let name = zone.iana_name().unwrap_or(trimmed).to_string();
        Ok(Tz { zone, name })
    }

    /// `Asia/Shanghai` (falls back to a fixed +08:00 should the bundled
    /// database ever lack it, so this never fails).
    pub fn shanghai() -> Tz {
        Tz::parse(DEFAULT_TZ).unwrap_or_else(|_| Tz {
            zone: TimeZone::fixed(jiff::tz::offset(8)),
            name: "+08:00".to_string(),
        })
    }

    /// UTC.
    pub fn utc() -> Tz {
        Tz {
            zone: TimeZone::UTC,
            name: "UTC".to_string(),
        }
    }

    /// Parses `s`, falling back to `fallback` and then to [`DEFAULT_TZ`]:
    /// for a person's self-reported timezone, where a bad value must not
    /// stop a send.
    pub fn parse_or(s: Option<&str>, fallback: &str) -> Tz {
        s.and_then(|s| Tz::parse(s).ok())
            .or_else(|| Tz::parse(fallback).ok())
            .unwrap_or_else(Tz::shanghai)
    }

    /// The canonical name: the IANA name, or "+08:00" for a fixed offset.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff timezone underneath.
    pub fn as_jiff(&self) -> &TimeZone {
        &self.zone
    }

    fn local(&self, now: i64) -> DateTime {
        self.zone.to_datetime(timestamp(now))
    }

    /// The instant of local `dt` (compatible disambiguation), clamped.
    fn instant(&self, dt: DateTime) -> i64 {
        match self.zone.to_ambiguous_timestamp(dt).compatible() {
            Ok(ts) => ts.as_second(),
            Err(_) if dt.year() < 0 => Timestamp::MIN.as_second(),
            Err(_) => Timestamp::MAX.as_second(),
        }
    }
}

impl PartialEq for Tz {
    fn eq(&self, other: &Tz) -> bool {
        self.name == other.name
    }
}

impl fmt::Display for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// "+08:00", "+0800", "+8", "-05:30" → seconds east of UTC (max ±25:59).
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 25 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60)
}

/// `now` as a jiff timestamp, clamped into jiff's range.
fn timestamp(now: i64) -> Timestamp {
    let clamped = now.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A wall-clock time of day, minute precision ("09:30").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    h: u8,
    m: u8,
}

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay { h: 0, m: 0 };

    /// `None` unless `h < 24` and `m < 60`.
    pub fn new(h: u8, m: u8) -> Option<TimeOfDay> {
        (h < 24 && m < 60).then_some(TimeOfDay { h, m })
    }

    /// Parses "HH:MM" (one-digit hours like "9:30" accepted).
    pub fn parse(s: &str) -> Result<TimeOfDay, ScheduleError> {
        let bad = || ScheduleError::TimeOfDay(s.to_string());
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let digits = |p: &str, max_len| {
            !p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
            return Err(bad());
        }
        let h: u8 = h.parse().map_err(|_| bad())?;
        let m: u8 = m.parse().map_err(|_| bad())?;
        TimeOfDay::new(h, m).ok_or_else(bad)
    }

    pub fn hour(self) -> u8 {
        self.h
    }

    pub fn minute(self) -> u8 {
        self.m
    }

    fn minutes(self) -> u32 {
        u32::from(self.h) * 60 + u32::from(self.m)
    }

    fn on(self, date: Date) -> DateTime {
        // h < 24 and m < 60 are guaranteed by construction.
        date.at(self.h as i8, self.m as i8, 0, 0)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.h, self.m)
    }
}

impl std::str::FromStr for TimeOfDay {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeOfDay::parse(s)
    }
}

impl serde::Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TimeOfDay::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// "HH:MM" as the API documents it (the pattern [`TimeOfDay::parse`] takes).
impl schemars::JsonSchema for TimeOfDay {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeOfDay".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
            "example": "09:30"
        })
    }
}

/// The first instant strictly after `now` whose local time in `tz` is `tod`
/// (in a DST gap: shifted forward by the gap; in a fold: the first pass).
pub fn next_time_of_day(now: i64, tod: TimeOfDay, tz: &Tz) -> i64 {
    let mut date = tz.local(now).date();
    for _ in 0..4 {
        let at = tz.instant(tod.on(date));
        if at > now {
            return at;
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    // Only reachable at the end of jiff's range.
    now.saturating_add(1)
}

/// The local calendar date of `now` in `tz`: (year, month 1-12, day 1-31).
pub fn local_date(now: i64, tz: &Tz) -> (i32, u8, u8) {
    let date = tz.local(now).date();
    (
        i32::from(date.year()),
        date.month().unsigned_abs(),
        date.day().unsigned_abs(),
    )
}

/// The first instant of the local day containing `now` (usually local
/// midnight; where midnight falls in a DST gap, the first instant after it).
pub fn day_start(now: i64, tz: &Tz) -> i64 {
    let date = tz.local(now).date();
    tz.instant(date.to_datetime(jiff::civil::Time::midnight()))
        .min(now)
}

/// The local calendar day of `now` in `tz`, as days since 1970-01-01 (the
/// numbering of `siyu_domain::time::days_from_civil`): what "per day" and
/// "which week" mean in a workspace's time zone.
pub fn local_day(now: i64, tz: &Tz) -> i64 {
    let (y, m, d) = local_date(now, tz);
    siyu_domain::time::days_from_civil(i64::from(y), u32::from(m), u32::from(d))
}

/// The first instant of local calendar day `day` (days since 1970-01-01)
/// in `tz`: local midnight, or the first instant after it where midnight
/// falls in a DST gap.
pub fn local_day_start(day: i64, tz: &Tz) -> i64 {
    let (y, m, d) = siyu_domain::time::civil_from_days(day);
    let Ok(date) = Date::new(y.clamp(-9999, 9999) as i16, m as i8, d as i8) else {
        return if day < 0 { i64::MIN / 2 } else { i64::MAX / 2 };
    };
    tz.instant(date.to_datetime(jiff::civil::Time::midnight()))
}

/// `now` as local RFC 3339 with its offset in `tz`
/// (`2026-10-31T20:15:00+08:00`): an instant a reader in that zone reads
/// as their own time.
pub fn format_local(now: i64, tz: &Tz) -> String {
    let dt = tz.local(now);
    let offset = tz.zone.to_offset(timestamp(now)).seconds();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        if offset == 0 {
            "Z".to_string()
        } else {
            format_offset(offset)
        }
    )
}

/// A daily window of local time in which marketing must wait, e.g. 21:00–09:00.
/// `start` is inside, `end` is outside; `start > end` wraps midnight and
/// `start == end` is an empty window (never quiet).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct QuietHours {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl QuietHours {
    pub fn new(start: TimeOfDay, end: TimeOfDay) -> QuietHours {
        QuietHours { start, end }
    }

    /// Whether `now` is inside the window in local time of `tz`.
    pub fn contains(&self, now: i64, tz: &Tz) -> bool {
        let local = tz.local(now);
        let t = local.hour().unsigned_abs() as u32 * 60 + local.minute().unsigned_abs() as u32;
        let (s, e) = (self.start.minutes(), self.end.minutes());
        match s.cmp(&e) {
            std::cmp::Ordering::Less => s <= t && t < e,
            std::cmp::Ordering::Greater => t >= s || t < e,
            std::cmp::Ordering::Equal => false,
        }
    }

    /// When the quiet hours that contain `now` end (the next local `end`);
    /// `now` itself when `now` is not quiet. Delay a send until this instant.
    pub fn end_after(&self, now: i64, tz: &Tz) -> i64 {
        if self.contains(now, tz) {
            next_time_of_day(now, self.end, tz)
        } else {
            now
        }
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

// ---------------------------------------------------------------------------
// Cron

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A standard 5-field cron line (minute hour day-of-month month
/// day-of-week), evaluated in a person's local time.
///
/// Supported: `*`, numbers, lists `1,15`, ranges `1-5`, steps `*/15`,
/// `0-30/10`, `5/15` (= `5-max/15`), names `JAN`-`DEC` and `SUN`-`SAT`
/// (case-insensitive), day-of-week `0` and `7` both Sunday, and the macros
/// `@hourly @daily @midnight @weekly @monthly @yearly @annually`.
///
/// Day matching follows Vixie cron: when both day-of-month and day-of-week
/// are restricted (neither field starts with `*`), a day matches if EITHER
/// matches ("0 9 1 * MON" = the 1st and every Monday); otherwise both must.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    dom_star: bool,
    dow_star: bool,
    source: String,
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, ScheduleError> {
        let trimmed = s.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" | "@midnight" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            _ => None,
        };
        let fields: Vec<&str> = expanded.unwrap_or(trimmed).split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::CronFieldCount(fields.len()));
        }
        let minutes = parse_field(fields[0], 0, 0, 59, &[])?;
        let hours = parse_field(fields[1], 1, 0, 23, &[])?;
        let days = parse_field(fields[2], 2, 1, 31, &[])?;
        let months = parse_field(fields[3], 3, 1, 12, &MONTH_NAMES)?;
        let mut weekdays = parse_field(fields[4], 4, 0, 7, &DOW_NAMES)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        let source = match expanded {
            Some(_) => trimmed.to_ascii_lowercase(),
            None => fields.join(" "),
        };
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
            source,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether the local date-time (minute precision) matches every field.
    pub fn matches_local(&self, dt: DateTime) -> bool {
        self.months & (1 << dt.month()) != 0
            && self.day_matches(dt.date())
            && self.hours & (1 << dt.hour()) != 0
            && self.minutes & (1 << dt.minute()) != 0
    }

    /// The next firing strictly after `now`, in local time of `tz`; `None`
    /// if the line never fires (e.g. "0 0 30 2 *") or not before year 9999.
    ///
    /// Walks months, then days, then only the hours and minutes the line
    /// names: at most ~150k day steps for a line that never fires (the
    /// Gregorian calendar with weekdays repeats every 400 years, which bounds
    /// the search).
    pub fn next_after(&self, now: i64, tz: &Tz) -> Option<i64> {
        if self.minutes == 0 || self.hours == 0 || self.months == 0 {
            return None;
        }
        let start = tz.local(now.checked_add(1)?);
        let last_year = start.year().saturating_add(401);
        let mut date = start.date();
        let mut first_day = true;
        loop {
            if date.year() > last_year {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                // Jump to the first day of the next month the line names.
                let later = (date.month() + 1..=12).find(|m| self.months & (1 << m) != 0);
                date = match later {
                    Some(m) => Date::new(date.year(), m, 1).ok()?,
                    None => {
                        let m = (1..=12).find(|m| self.months & (1 << m) != 0)?;
                        Date::new(date.year().checked_add(1)?, m, 1).ok()?
                    }
                };
                first_day = false;
                continue;
            }
            if self.day_matches(date) {
                let (from_h, from_m) = if first_day {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for h in from_h..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let m0 = if h == from_h { from_m } else { 0 };
                    for m in m0..60 {
                        if self.minutes & (1 << m) == 0 {
                            continue;
                        }
                        let at = tz.instant(date.at(h, m, 0, 0));
                        if at > now {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
            first_day = false;
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Cron {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

impl serde::Serialize for Cron {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cron {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Cron::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One cron field as a bitset of the values it names.
fn parse_field(
    field: &str,
    index: usize,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, ScheduleError> {
    let err = |token: &str, message: String| ScheduleError::CronField {
        index: index + 1,
        field: FIELD_NAMES[index],
        token: token.to_string(),
        message,
    };
    let mut bits = 0u64;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(err(field, "empty list item: remove the extra comma".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|&s| s >= 1 && s <= max)
                    .ok_or_else(|| err(item, format!("step must be a number from 1 to {max}")))?;
                (range, step)
            }
            None => (item, 1),
        };
        let value = |token: &str| -> Result<u32, ScheduleError> {
            let number = if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
                token.parse::<u32>().ok()
            } else {
                names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(token))
                    .map(|i| i as u32 + min)
            };
            match number {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                Some(_) => Err(err(token, format!("out of range {min}-{max}"))),
                None if names.is_empty() => Err(err(
                    token,
                    format!("expected a number {min}-{max}, `*`, a range a-b or a step */n"),
                )),
                None => Err(err(
                    token,
                    format!(
                        "expected a number {min}-{max} or a name {}-{}",
                        names[0],
                        names[names.len() - 1]
                    ),
                )),
            }
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(err(
                    item,
                    format!("range {a}-{b} runs backwards: write the smaller value first"),
                ));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // "5/15" means "5-max/15"; a plain "5" is just 5.
            (
                a,
                if step > 1 || item.contains('/') {
                    max
                } else {
                    a
                },
            )
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

// ---------------------------------------------------------------------------
// Durations

/// Parses "30s", "15m", "12h", "7d", "2w" and combinations like "1d12h"
/// into seconds: the one duration syntax (`siyu_domain::duration::parse`),
/// with its error as a [`ScheduleError`].
pub fn parse_duration(s: &str) -> Result<i64, ScheduleError> {
    siyu_domain::duration::parse(s).map_err(|e| ScheduleError::Duration {
        input: e.input,
        message: e.message,
    })
}

// ---------------------------------------------------------------------------
// Birthdays

fn days_in_month(year: i16, month: i8) -> i8 {
    Date::new(year, month, 1)
        .map(|d| d.days_in_month())
        .unwrap_or(28)
}

/// The next instant strictly after `now` at `tod` local time on
/// `month`/`day` in `tz`. Feb 29 falls on Feb 28 in non-leap years; an
/// impossible date is clamped (month to 1-12, day to the month's length).
pub fn next_anniversary(now: i64, month: u8, day: u8, tod: TimeOfDay, tz: &Tz) -> i64 {
    let month = month.clamp(1, 12) as i8;
    let day = day.clamp(1, 31) as i8;
    let year = tz.local(now).year();
    for y in year..year.saturating_add(3) {
        let d = day.min(days_in_month(y, month));
        let Ok(date) = Date::new(y, month, d) else {
            break;
        };
        let at = tz.instant(tod.on(date));
        if at > now {
            return at;
        }
    }
    // Only reachable at the end of jiff's range.
    now.saturating_add(1)
}

/// Parses a birthday into (month, day): "1990-05-17", "1990/5/17",
/// "05-17", "5/17", "5月17日", "1990年5月17日". A given year is used to
/// check Feb 29; without one Feb 29 is accepted.
pub fn parse_birthday(s: &str) -> Option<(u8, u8)> {
    let s = s.trim();
    let s = s.strip_suffix('日').unwrap_or(s);
    let parts: Vec<&str> = s.split(['-', '/', '.', '年', '月']).collect();
    let number = |p: &str, len: std::ops::RangeInclusive<usize>| -> Option<u32> {
        (len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (year, month, day) = match parts.as_slice() {
        [y, m, d] => (
            Some(number(y, 4..=4)?),
            number(m, 1..=2)?,
            number(d, 1..=2)?,
        ),
        [m, d] => (None, number(m, 1..=2)?, number(d, 1..=2)?),
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    let check_year = match year {
        Some(y) if (1..=9999).contains(&y) => y as i16,
        Some(_) => return None,
        None => 2000, // a leap year: Feb 29 is a real birthday
    };
    (day as i8 <= days_in_month(check_year, month as i8)).then_some((month as u8, day as u8))
}
