//! The ad-spend table: a CSV of `day,channel,spend` (integer cents per
//! channel per day) that channel ROI weighs revenue against, or
//! `channel,spend` when the spend has no day. Parsed here, without I/O, so
//! the rules (header, columns, a real date, a channel name, cents that are
//! not negative) hold the same for every caller; each error names the line
//! and what to fix. The day is kept (in the setting the table is stored
//! in, [`to_setting`] / [`from_setting`]) so ROI can be asked for a date
//! range ([`spend_in_days`]): days are calendar days where the brand is
//! (the workspace time zone), as the ad platforms report them.

use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;
use thiserror::Error;

/// The setting the table is stored in.
pub const SETTING: &str = "spend";

/// The header line of a spend CSV with days (the usual one).
pub const HEADER: &str = "day,channel,spend";

/// The header line of a spend CSV without days (totals per channel).
pub const HEADER_UNDATED: &str = "channel,spend";

/// One line of the spend table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpendRow {
    /// `YYYY-MM-DD`, a calendar day in the workspace time zone; `None`
    /// when the table has no day column.
    pub day: Option<String>,
    /// A channel name (`siyu_domain::Channel`).
    pub channel: String,
    /// Integer cents, not negative.
    pub cents: i64,
}

/// Why a spend CSV was refused; `line` counts from 1 (the header).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpendError {
    #[error("line 1: header must be `day,channel,spend` (or `channel,spend` without days), found `{found}`")]
    Header { found: String },
    #[error("line {line}: expected {expected} columns {header}, found {found}")]
    Columns {
        line: usize,
        expected: usize,
        header: &'static str,
        found: usize,
    },
    #[error("line {line}: day `{day}` must be YYYY-MM-DD")]
    Day { line: usize, day: String },
    #[error("line {line}: channel `{channel}` must be lowercase letters, digits or `_`")]
    Channel { line: usize, channel: String },
    #[error("line {line}: spend `{spend}` must be integer cents")]
    Cents { line: usize, spend: String },
    #[error("line {line}: spend must not be negative")]
    Negative { line: usize },
}

/// Parses a spend CSV (`day,channel,spend` or `channel,spend`); blank
/// lines are skipped.
pub fn parse_spend_csv(text: &str) -> Result<Vec<SpendRow>, SpendError> {
    let mut lines = text.lines();
    let header = match lines.next().map(str::trim) {
        Some(HEADER) => HEADER,
        Some(HEADER_UNDATED) => HEADER_UNDATED,
        other => {
            return Err(SpendError::Header {
                found: other.unwrap_or("").to_string(),
            })
        }
    };
    let dated = header == HEADER;
    let expected = if dated { 3 } else { 2 };
    let mut rows = Vec::new();
    for (i, text) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line = i + 2;
        let f: Vec<&str> = text.trim().split(',').collect();
        if f.len() != expected {
            return Err(SpendError::Columns {
                line,
                expected,
                header,
                found: f.len(),
            });
        }
        let (day, channel, spend) = if dated {
            (Some(f[0]), f[1], f[2])
        } else {
            (None, f[0], f[1])
        };
        if let Some(day) = day.filter(|d| siyu_domain::time::parse_date(d).is_none()) {
            return Err(SpendError::Day {
                line,
                day: day.to_string(),
            });
        }
        if siyu_domain::Channel::parse(channel).is_none() {
            return Err(SpendError::Channel {
                line,
                channel: channel.to_string(),
            });
        }
        let cents: i64 = spend.parse().map_err(|_| SpendError::Cents {
            line,
            spend: spend.to_string(),
        })?;
        if cents < 0 {
            return Err(SpendError::Negative { line });
        }
        rows.push(SpendRow {
            day: day.map(str::to_string),
            channel: channel.to_string(),
            cents,
        });
    }
    Ok(rows)
}

/// The stored form of the table (the `spend` setting): the rows as they
/// were uploaded, days included.
pub fn to_setting(rows: &[SpendRow]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| serde_json::json!({"day": r.day, "channel": r.channel, "cents": r.cents}))
            .collect(),
    )
}

/// The rows of a stored table. Tables saved before days were kept are
/// `[["douyin", 12000], …]` (channel totals): read as rows without a day.
/// An unreadable table reads as empty, as it always did.
pub fn from_setting(value: Option<serde_json::Value>) -> Vec<SpendRow> {
    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    enum Stored {
        Row(SpendRow),
        Total(String, i64),
    }
    let Some(value) = value else {
        return Vec::new();
    };
    serde_json::from_value::<Vec<Stored>>(value)
        .unwrap_or_default()
        .into_iter()
        .map(|s| match s {
            Stored::Row(r) => r,
            Stored::Total(channel, cents) => SpendRow {
                day: None,
                channel,
                cents,
            },
        })
        .collect()
}

/// The spend of a date range, per channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpendInRange {
    /// (channel, cents), channels in the order first met.
    pub per_channel: Vec<(String, i64)>,
    /// Cents of rows without a day, left out because a range was asked
    /// for (they cannot be placed in it).
    pub undated_cents: i64,
}

/// The spend of the days in `days` (days since 1970-01-01, inclusive;
/// `None`: every row, dated or not).
pub fn spend_in_days(rows: &[SpendRow], days: Option<RangeInclusive<i64>>) -> SpendInRange {
    let mut out = SpendInRange::default();
    for r in rows {
        let inside = match (&days, &r.day) {
            (None, _) => true,
            (Some(_), None) => {
                out.undated_cents += r.cents;
                false
            }
            (Some(range), Some(day)) => {
                siyu_domain::time::parse_date(day).is_some_and(|d| range.contains(&d))
            }
        };
        if !inside {
            continue;
        }
        match out.per_channel.iter_mut().find(|(c, _)| *c == r.channel) {
            Some((_, cents)) => *cents += r.cents,
            None => out.per_channel.push((r.channel.clone(), r.cents)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_spend_csv(text).unwrap_err().to_string()
    }

    #[test]
    fn rows_are_read_and_blank_lines_skipped() {
        let rows = parse_spend_csv(
            "day,channel,spend\n2026-10-01,douyin,12000\n\n 2026-10-02,wechat,0 \n",
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                SpendRow {
                    day: Some("2026-10-01".into()),
                    channel: "douyin".into(),
                    cents: 12000
                },
                SpendRow {
                    day: Some("2026-10-02".into()),
                    channel: "wechat".into(),
                    cents: 0
                },
            ]
        );
        assert_eq!(parse_spend_csv("day,channel,spend\n").unwrap(), []);
    }

    #[test]
    fn each_error_names_its_line_and_the_fix() {
        assert_eq!(
            err("date,channel,spend\n"),
            "line 1: header must be `day,channel,spend` (or `channel,spend` without days), found `date,channel,spend`"
        );
        assert_eq!(
            err(""),
            "line 1: header must be `day,channel,spend` (or `channel,spend` without days), found ``"
        );
        assert_eq!(
            err("day,channel,spend\n2026-10-01,douyin\n"),
            "line 2: expected 3 columns day,channel,spend, found 2"
        );
        assert_eq!(
            err("channel,spend\ndouyin,1,2\n"),
            "line 2: expected 2 columns channel,spend, found 3"
        );
        assert_eq!(
            err("day,channel,spend\n\n2026-13-01,douyin,1\n"),
            "line 3: day `2026-13-01` must be YYYY-MM-DD"
        );
        assert_eq!(
            err("day,channel,spend\n2026-10-01,Douyin,1\n"),
            "line 2: channel `Douyin` must be lowercase letters, digits or `_`"
        );
        assert_eq!(
            err("day,channel,spend\n2026-10-01,douyin,1.5\n"),
            "line 2: spend `1.5` must be integer cents"
        );
        assert_eq!(
            err("day,channel,spend\n2026-10-01,douyin,-1\n"),
            "line 2: spend must not be negative"
        );
    }

    /// Spend keeps its day: a range takes the days inside it (inclusive),
    /// leaves the others and the undated rows out, and says how much
    /// undated spend it left out.
    #[test]
    fn spend_by_day_and_range() {
        let rows = parse_spend_csv(
            "day,channel,spend\n2026-10-30,douyin,100\n2026-10-31,douyin,200\n2026-10-31,wechat,5\n2026-11-01,douyin,400\n",
        )
        .unwrap();
        let day = |s| siyu_domain::time::parse_date(s).unwrap();
        let all = spend_in_days(&rows, None);
        assert_eq!(
            all.per_channel,
            [("douyin".to_string(), 700), ("wechat".to_string(), 5)]
        );
        let oct31 = spend_in_days(&rows, Some(day("2026-10-31")..=day("2026-10-31")));
        assert_eq!(
            oct31.per_channel,
            [("douyin".to_string(), 200), ("wechat".to_string(), 5)]
        );
        let tail = spend_in_days(&rows, Some(day("2026-10-31")..=day("2026-11-30")));
        assert_eq!(
            tail.per_channel,
            [("douyin".to_string(), 600), ("wechat".to_string(), 5)]
        );
        assert_eq!(
            spend_in_days(&rows, Some(day("2026-12-01")..=day("2026-12-31"))),
            SpendInRange::default()
        );

        let undated = parse_spend_csv("channel,spend\ndouyin,900\n").unwrap();
        assert_eq!(undated[0].day, None);
        assert_eq!(
            spend_in_days(&undated, None).per_channel,
            [("douyin".to_string(), 900)]
        );
        let ranged = spend_in_days(&undated, Some(day("2026-10-31")..=day("2026-10-31")));
        assert_eq!((ranged.per_channel.len(), ranged.undated_cents), (0, 900));

        // Stored and read back, days included; the older totals-only form reads as undated rows.
        assert_eq!(from_setting(Some(to_setting(&rows))), rows);
        assert_eq!(
            from_setting(Some(serde_json::json!([["douyin", 12000]]))),
            [SpendRow {
                day: None,
                channel: "douyin".into(),
                cents: 12000
            }]
        );
        assert_eq!(from_setting(None), []);
    }
}
