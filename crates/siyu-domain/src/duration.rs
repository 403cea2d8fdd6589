//! Durations, one syntax everywhere a person writes one: "30s", "15m",
//! "12h", "7d", "2w" and combinations like "1d12h" (journeys' waits and
//! cooldowns, campaign holds, property windows, funnel steps' `within`).
//! Bodies may also give a number of seconds or `{"seconds": n}`; the
//! segment language writes windows as `last 7d` with the same units.
//! Pure: no clock, no I/O.

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A duration that could not be read: the input and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duration {input:?}: {message}")]
pub struct DurationError {
    pub input: String,
    pub message: String,
}

/// Parses "30s", "15m", "12h", "7d", "2w" and combinations like "1d12h" or
/// "1h 30m" into seconds. Each unit at most once; zero is allowed ("0s",
/// "0m": a wait of nothing is a valid wait); signs, empty input, unknown
/// units and results above `i64::MAX` seconds are rejected.
pub fn parse(s: &str) -> Result<i64, DurationError> {
    let err = |message: &str| DurationError {
        input: s.to_string(),
        message: message.to_string(),
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(err(
            "empty: write a number and a unit, e.g. \"15m\" or \"1d12h\"",
        ));
    }
    if text.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    let mut total: i64 = 0;
    let mut seen = [false; 5];
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if !c.is_ascii_digit() {
            return Err(err("expected a number before each unit, e.g. \"1d12h\""));
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            end = i + 1;
            chars.next();
        }
        let number: i64 = text[start..end]
            .parse()
            .map_err(|_| err("number too large"))?;
        let (unit, secs) = match chars.next() {
            Some((_, 's' | 'S')) => (0, 1),
            Some((_, 'm' | 'M')) => (1, 60),
            Some((_, 'h' | 'H')) => (2, 3600),
            Some((_, 'd' | 'D')) => (3, 86_400),
            Some((_, 'w' | 'W')) => (4, 604_800),
            Some(_) => return Err(err("unknown unit: use s, m, h, d or w")),
            None => return Err(err("missing unit after the number: add s, m, h, d or w")),
        };
        if std::mem::replace(&mut seen[unit], true) {
            return Err(err(
                "a unit appears twice: write each unit once, e.g. \"1d12h\"",
            ));
        }
        total = number
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

/// What a body may give for a duration.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Given {
    Seconds(i64),
    Text(String),
    Object { seconds: i64 },
}

/// Reads a duration in seconds from a number, a duration string ("7d") or
/// `{"seconds": n}`: for `#[serde(deserialize_with = "...")]`.
pub fn deserialize_secs<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Given::deserialize(d).map_err(|_| {
        de::Error::custom(
            "a duration is a string such as \"30s\", \"2m\", \"7d\" or \"1d12h\", a number of seconds, or {\"seconds\": n}",
        )
    })? {
        Given::Seconds(n) | Given::Object { seconds: n } => Ok(n),
        Given::Text(t) => parse(&t).map_err(de::Error::custom),
    }
}

/// The JSON Schema of what [`deserialize_secs`] reads (for a type that
/// reads itself with it, such as the segment language's `Window`).
pub fn secs_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<Given>()
}

/// [`deserialize_secs`] for an optional field (absent or null: `None`).
pub fn deserialize_opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize, schemars::JsonSchema)]
    struct Wrap(#[serde(deserialize_with = "deserialize_secs")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, schemars::JsonSchema)]
    struct Body {
        #[serde(default, deserialize_with = "deserialize_opt_secs")]
        within: Option<i64>,
    }

    #[test]
    fn every_form_reads_the_same_seconds() {
        for (json, secs) in [
            (r#"{"within": 604800}"#, Some(604_800)),
            (r#"{"within": "7d"}"#, Some(604_800)),
            (r#"{"within": "1w"}"#, Some(604_800)),
            (r#"{"within": {"seconds": 604800}}"#, Some(604_800)),
            (r#"{"within": "30s"}"#, Some(30)),
            (r#"{"within": "1d12h"}"#, Some(129_600)),
            (r#"{"within": null}"#, None),
            (r#"{}"#, None),
        ] {
            let b: Body = serde_json::from_str(json).unwrap();
            assert_eq!(b.within, secs, "{json}");
        }
    }

    #[test]
    fn a_bad_duration_says_how_to_write_one() {
        let e = serde_json::from_str::<Body>(r#"{"within": "7 days"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown unit: use s, m, h, d or w"),
            "{e}"
        );
        let e = serde_json::from_str::<Body>(r#"{"within": true}"#).unwrap_err();
        assert!(e.to_string().contains("\"30s\""), "{e}");
        assert!(parse("-1d").is_err() && parse("").is_err() && parse("1d1d").is_err());
    }
}
