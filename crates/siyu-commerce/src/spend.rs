//! The ad-spend table: a CSV of `day,channel,spend` (integer cents) that
//! channel ROI weighs revenue against. Parsed here, without I/O, so the
//! rules (header, three columns, a real date, a channel name, cents that
//! are not negative) hold the same for every caller; each error names the
//! line and what to fix.

use thiserror::Error;

/// The header line a spend CSV must start with.
pub const HEADER: &str = "day,channel,spend";

/// One line of the spend table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// A channel name (`siyu_domain::Channel`).
    pub channel: String,
    /// Integer cents, not negative.
    pub cents: i64,
}

/// Why a spend CSV was refused; `line` counts from 1 (the header).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpendError {
    #[error("line 1: header must be `day,channel,spend`, found `{found}`")]
    Header { found: String },
    #[error("line {line}: expected 3 columns day,channel,spend, found {found}")]
    Columns { line: usize, found: usize },
    #[error("line {line}: day `{day}` must be YYYY-MM-DD")]
    Day { line: usize, day: String },
    #[error("line {line}: channel `{channel}` must be lowercase letters, digits or `_`")]
    Channel { line: usize, channel: String },
    #[error("line {line}: spend `{spend}` must be integer cents")]
    Cents { line: usize, spend: String },
    #[error("line {line}: spend must not be negative")]
    Negative { line: usize },
}

/// Parses a spend CSV (`day,channel,spend`); blank lines are skipped.
pub fn parse_spend_csv(text: &str) -> Result<Vec<SpendRow>, SpendError> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some(HEADER) => {}
        other => {
            return Err(SpendError::Header {
                found: other.unwrap_or("").to_string(),
            })
        }
    }
    let mut rows = Vec::new();
    for (i, text) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line = i + 2;
        let f: Vec<&str> = text.trim().split(',').collect();
        if f.len() != 3 {
            return Err(SpendError::Columns {
                line,
                found: f.len(),
            });
        }
        if siyu_domain::time::parse_date(f[0]).is_none() {
            return Err(SpendError::Day {
                line,
                day: f[0].to_string(),
            });
        }
        if siyu_domain::Channel::parse(f[1]).is_none() {
            return Err(SpendError::Channel {
                line,
                channel: f[1].to_string(),
            });
        }
        let cents: i64 = f[2].parse().map_err(|_| SpendError::Cents {
            line,
            spend: f[2].to_string(),
        })?;
        if cents < 0 {
            return Err(SpendError::Negative { line });
        }
        rows.push(SpendRow {
            day: f[0].to_string(),
            channel: f[1].to_string(),
            cents,
        });
    }
    Ok(rows)
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
                    day: "2026-10-01".into(),
                    channel: "douyin".into(),
                    cents: 12000
                },
                SpendRow {
                    day: "2026-10-02".into(),
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
            "line 1: header must be `day,channel,spend`, found `date,channel,spend`"
        );
        assert_eq!(
            err(""),
            "line 1: header must be `day,channel,spend`, found ``"
        );
        assert_eq!(
            err("day,channel,spend\n2026-10-01,douyin\n"),
            "line 2: expected 3 columns day,channel,spend, found 2"
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
}
