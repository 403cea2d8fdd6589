//! The segment language parser: hand-written so every error says where
//! (line, column) and what was expected.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | atom
//! atom    := "opted_out" | "friended"
//!          | ("tag" | "in_group" | "in_segment") "(" STRING ")"
//!          | prop ["(" "last" DURATION ")"] OP literal
//!          | "intent" ["(" "last" DURATION ")"] "=" STRING   (an intent id or 中文名)
//! literal := NUMBER | STRING          (money props take yuan: 500.00)
//! DURATION:= INT ("s" | "m" | "h" | "d" | "w")
//! ```
//!
//! The parser is recursive descent, so nesting is bounded: at most
//! [`MAX_DEPTH`] levels of `not` and parentheses, and a resulting tree of
//! at most [`MAX_DEPTH`] levels (see `ast`). Past either the parser stops
//! with an error at the offending token, before its own stack or any later
//! walk over the tree could overflow. A tree of at most `MAX_DEPTH` levels
//! prints (`Display`) with fewer nested levels than that, so every accepted
//! tree parses back.

use super::ast::{CmpOp, Expr, Literal, Prop, Window, MAX_DEPTH};
use crate::rfm::RfmLayer;
use std::fmt;

/// A syntax error with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: expected {}, found {}",
            self.line, self.column, self.expected, self.found
        )
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// Integer part, fraction digits (as written), e.g. 500.05 → (500, "05").
    Num(i64, String),
    Dur(i64),
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Num(n, fr) if fr.is_empty() => write!(f, "number {n}"),
            Tok::Num(n, fr) => write!(f, "number {n}.{fr}"),
            Tok::Dur(s) => write!(f, "duration of {s} s"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Op(o) => write!(f, "`{}`", o.as_str()),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::End => f.write_str("end of input"),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn position(src: &str, byte: usize) -> (usize, usize) {
    let before = &src[..byte.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn err_at(
    src: &str,
    byte: usize,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> ParseError {
    let (line, column) = position(src, byte);
    ParseError {
        line,
        column,
        expected: expected.into(),
        found: found.into(),
    }
}

impl<'a> Lexer<'a> {
    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut out = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            let start = self.pos;
            let Some(c) = trimmed.chars().next() else {
                out.push((Tok::End, start));
                return Ok(out);
            };
            let b = trimmed.as_bytes();
            let tok = match c {
                '(' => {
                    self.pos += 1;
                    Tok::LParen
                }
                ')' => {
                    self.pos += 1;
                    Tok::RParen
                }
                '=' => {
                    self.pos += if b.get(1) == Some(&b'=') { 2 } else { 1 };
                    Tok::Op(CmpOp::Eq)
                }
                '!' if b.get(1) == Some(&b'=') => {
                    self.pos += 2;
                    Tok::Op(CmpOp::Ne)
                }
                '<' | '>' => {
                    let eq = b.get(1) == Some(&b'=');
                    self.pos += if eq { 2 } else { 1 };
                    Tok::Op(match (c, eq) {
                        ('<', true) => CmpOp::Le,
                        ('<', false) => CmpOp::Lt,
                        (_, true) => CmpOp::Ge,
                        _ => CmpOp::Gt,
                    })
                }
                '"' => {
                    let mut s = String::new();
                    let mut chars = trimmed[1..].char_indices();
                    let mut end = None;
                    while let Some((i, ch)) = chars.next() {
                        match ch {
                            '"' => {
                                end = Some(i + 2);
                                break;
                            }
                            '\\' => match chars.next() {
                                Some((_, e @ ('"' | '\\'))) => s.push(e),
                                Some((_, 'n')) => s.push('\n'),
                                _ => {
                                    return Err(err_at(
                                        self.src,
                                        start + i + 1,
                                        "`\\\"`, `\\\\` or `\\n`",
                                        "another escape",
                                    ))
                                }
                            },
                            ch => s.push(ch),
                        }
                    }
                    let Some(end) = end else {
                        return Err(err_at(
                            self.src,
                            start,
                            "a closing `\"`",
                            "an unterminated string",
                        ));
                    };
                    self.pos += end;
                    Tok::Str(s)
                }
                '0'..='9' | '-' => {
                    let neg = c == '-';
                    let digits_start = if neg { 1 } else { 0 };
                    let n = b[digits_start..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if n == 0 {
                        return Err(err_at(self.src, start, "a number", "`-`"));
                    }
                    let int_str = &trimmed[digits_start..digits_start + n];
                    let int: i64 = int_str.parse().map_err(|_| {
                        err_at(
                            self.src,
                            start,
                            "a number that fits 64 bits",
                            format!("`{int_str}`"),
                        )
                    })?;
                    let int = if neg { -int } else { int };
                    let mut len = digits_start + n;
                    let mut frac = String::new();
                    if b.get(len) == Some(&b'.') {
                        let f = b[len + 1..]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .count();
                        if f == 0 {
                            return Err(err_at(
                                self.src,
                                start + len + 1,
                                "digits after `.`",
                                "nothing",
                            ));
                        }
                        frac = trimmed[len + 1..len + 1 + f].to_string();
                        len += 1 + f;
                    }
                    let unit = b.get(len).copied();
                    let is_unit = matches!(unit, Some(b's' | b'm' | b'h' | b'd' | b'w'))
                        && !b
                            .get(len + 1)
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                    if is_unit && frac.is_empty() && !neg {
                        let mult = match unit {
                            Some(b's') => 1,
                            Some(b'm') => 60,
                            Some(b'h') => 3600,
                            Some(b'd') => 86_400,
                            _ => 604_800,
                        };
                        self.pos += len + 1;
                        Tok::Dur(int.saturating_mul(mult))
                    } else {
                        self.pos += len;
                        Tok::Num(int, frac)
                    }
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let n = b
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.')
                        .count();
                    self.pos += n;
                    Tok::Ident(trimmed[..n].to_string())
                }
                other => {
                    return Err(err_at(
                        self.src,
                        start,
                        "a property, `(`, `not` or a value",
                        format!("`{other}`"),
                    ))
                }
            };
            out.push((tok, start));
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    i: usize,
    /// `not`s and open parentheses around the current token.
    nesting: usize,
}

/// A parsed subtree and its number of levels (an atom is 1).
type Sub = (Expr, usize);

fn too_deep_message() -> String {
    format!(
        "at most {MAX_DEPTH} nested levels (MAX_DEPTH) of `not`, `and`/`or` groups and parentheses; \
         save an inner part as its own segment and use in_segment(\"…\")"
    )
}

const PROPS: &str = "a property (purchases, spend, reads, net_spend, refunds, first_channel, days_since_first_seen, days_since_last_purchase, rfm_r, rfm_f, rfm_m, rfm_layer, identities, trait.NAME, prop.NAME), intent(last 7d) = \"price\", opted_out, friended, tag(..), in_group(..), in_segment(..), `not` or `(`";

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn fail<T>(&self, expected: impl Into<String>) -> Result<T, ParseError> {
        let (tok, at) = &self.toks[self.i];
        Err(err_at(self.src, *at, expected, tok.to_string()))
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == k)
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// Fails at `at` when a node of `levels` levels would exceed the limit.
    fn check_levels(&self, levels: usize, at: usize) -> Result<(), ParseError> {
        if levels > MAX_DEPTH {
            return Err(err_at(
                self.src,
                at,
                too_deep_message(),
                format!("a group {levels} levels deep"),
            ));
        }
        Ok(())
    }

    /// A list of operands joined by `and` or `or`: one operand is itself,
    /// more become a group one level above the deepest.
    fn group(
        &self,
        mut v: Vec<Sub>,
        at: usize,
        make: fn(Vec<Expr>) -> Expr,
    ) -> Result<Sub, ParseError> {
        if v.len() == 1 {
            return Ok(v.pop().unwrap_or((Expr::OptedOut, 1)));
        }
        let levels = 1 + v.iter().map(|(_, l)| *l).max().unwrap_or(0);
        self.check_levels(levels, at)?;
        Ok((make(v.into_iter().map(|(e, _)| e).collect()), levels))
    }

    fn or(&mut self) -> Result<Sub, ParseError> {
        let at = self.toks[self.i].1;
        let mut v = vec![self.and()?];
        while self.keyword("or") {
            self.next();
            v.push(self.and()?);
        }
        self.group(v, at, |any| Expr::Or { any })
    }

    fn and(&mut self) -> Result<Sub, ParseError> {
        let at = self.toks[self.i].1;
        let mut v = vec![self.unary()?];
        while self.keyword("and") {
            self.next();
            v.push(self.unary()?);
        }
        self.group(v, at, |all| Expr::And { all })
    }

    /// Enters one more `not` or `(`, refusing the level past the limit
    /// before recursing.
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.nesting >= MAX_DEPTH {
            return self.fail(too_deep_message());
        }
        self.nesting += 1;
        Ok(())
    }

    fn unary(&mut self) -> Result<Sub, ParseError> {
        if self.keyword("not") {
            let at = self.toks[self.i].1;
            self.enter()?;
            self.next();
            let (e, levels) = self.unary()?;
            self.nesting -= 1;
            self.check_levels(levels + 1, at)?;
            return Ok((Expr::Not { expr: Box::new(e) }, levels + 1));
        }
        if *self.peek() == Tok::LParen {
            self.enter()?;
            self.next();
            let e = self.or()?;
            self.expect(Tok::RParen, "`)`, `and` or `or`")?;
            self.nesting -= 1;
            return Ok(e);
        }
        Ok((self.atom()?, 1))
    }

    fn string_arg(&mut self) -> Result<String, ParseError> {
        self.expect(Tok::LParen, "`(`")?;
        let s = match self.peek().clone() {
            Tok::Str(s) => s,
            _ => return self.fail("a quoted string"),
        };
        self.next();
        self.expect(Tok::RParen, "`)`")?;
        Ok(s)
    }

    fn window(&mut self) -> Result<Option<Window>, ParseError> {
        if *self.peek() != Tok::LParen {
            return Ok(None);
        }
        self.next();
        if !self.keyword("last") {
            return self.fail("`last`, as in purchases(last 90d)");
        }
        self.next();
        let seconds = match self.peek() {
            Tok::Dur(s) if *s > 0 => *s,
            _ => return self.fail("a duration such as 90d, 12h, 2w or 30m"),
        };
        self.next();
        self.expect(Tok::RParen, "`)`")?;
        Ok(Some(Window { seconds }))
    }

    /// `intent(last 7d) = "price"` after the word `intent`: only `=`
    /// (its negation is `not intent(…) = "…"`), the intent by id or
    /// Chinese name, kept as the intent.
    fn intent(&mut self) -> Result<Expr, ParseError> {
        use siyu_domain::intent::Intent;
        let window = self.window()?;
        if *self.peek() != Tok::Op(CmpOp::Eq) {
            return self
                .fail("`=` after `intent` (write `not intent(last 7d) = \"price\"` for none)");
        }
        self.next();
        let intent = match self.peek() {
            Tok::Str(s) => Intent::parse(s),
            _ => None,
        };
        let Some(intent) = intent else {
            return self.fail(format!(
                "an intent after `intent =`: one of {} (or its Chinese name, e.g. \"询价\")",
                Intent::ids()
            ));
        };
        self.next();
        Ok(Expr::Intent { intent, window })
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let name = match self.peek() {
            Tok::Ident(s) if !matches!(s.as_str(), "and" | "or") => s.clone(),
            _ => return self.fail(PROPS),
        };
        let name_at = self.toks[self.i].1;
        self.next();
        let prop = match name.as_str() {
            "opted_out" => return Ok(Expr::OptedOut),
            "friended" => return Ok(Expr::Friended),
            "tag" => {
                return Ok(Expr::HasTag {
                    tag: self.string_arg()?,
                })
            }
            "in_group" => {
                return Ok(Expr::InGroup {
                    group: self.string_arg()?,
                })
            }
            "in_segment" => {
                return Ok(Expr::InSegment {
                    segment: self.string_arg()?,
                })
            }
            "intent" => return self.intent(),
            "purchases" => Prop::Purchases(self.window()?),
            "spend" => Prop::Spend(self.window()?),
            "reads" => Prop::Reads(self.window()?),
            "net_spend" => Prop::NetSpend,
            "refunds" => Prop::Refunds,
            "first_channel" => Prop::FirstChannel,
            "days_since_first_seen" => Prop::DaysSinceFirstSeen,
            "days_since_last_purchase" => Prop::DaysSinceLastPurchase,
            "rfm_r" => Prop::RfmR,
            "rfm_f" => Prop::RfmF,
            "rfm_m" => Prop::RfmM,
            "rfm_layer" => Prop::RfmLayer,
            "identities" => Prop::Identities,
            t if t.starts_with("trait.") && t.len() > 6 => Prop::Trait(t[6..].to_string()),
            t if t.starts_with("prop.") && t.len() > 5 => Prop::Custom(t[5..].to_string()),
            other => {
                return Err(err_at(self.src, name_at, PROPS, format!("`{other}`")));
            }
        };
        let op = match self.peek() {
            Tok::Op(o) => *o,
            _ => return self.fail(format!("a comparison (=, !=, <, <=, >, >=) after `{prop}`")),
        };
        self.next();
        let value = match (self.peek().clone(), prop.is_string(), prop.is_money()) {
            // A layer is written by its Chinese name; its short form and
            // English key are read as the same layer and print as the name.
            (Tok::Str(s), true, _) if prop == Prop::RfmLayer => match RfmLayer::parse(&s) {
                Some(layer) => Literal::Str(layer.name().to_string()),
                None => {
                    return self.fail(format!(
                        "one of the eight RFM layers after `rfm_layer {}`: {}",
                        op.as_str(),
                        RfmLayer::names()
                    ))
                }
            },
            (Tok::Str(s), true, _) => Literal::Str(s),
            (Tok::Num(n, frac), false, true) => {
                if frac.len() > 2 {
                    return self.fail("an amount in yuan with at most 2 decimals, e.g. 500.00");
                }
                let cents = format!("{frac:0<2}").parse::<i64>().unwrap_or(0);
                let sign = if n < 0 { -1 } else { 1 };
                Literal::Int(n.saturating_mul(100).saturating_add(sign * cents))
            }
            (Tok::Num(n, frac), false, false) if frac.is_empty() => Literal::Int(n),
            (_, true, _) => {
                return self.fail(format!("a quoted string after `{prop} {}`", op.as_str()))
            }
            (_, false, true) => {
                return self.fail(format!(
                    "an amount in yuan after `{prop} {}`, e.g. 500.00",
                    op.as_str()
                ))
            }
            _ => return self.fail(format!("a whole number after `{prop} {}`", op.as_str())),
        };
        if prop.is_string() && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Err(err_at(
                self.src,
                name_at,
                format!("`=` or `!=` for `{prop}`"),
                format!("`{}`", op.as_str()),
            ));
        }
        self.next();
        Ok(Expr::Cmp { prop, op, value })
    }
}

/// Parses the segment language into a tree.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = Lexer { src, pos: 0 }.tokens()?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        nesting: 0,
    };
    let (e, _) = p.or()?;
    if *p.peek() != Tok::End {
        return p.fail("`and`, `or` or end of input");
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_q1_segment() {
        let e = parse(r#"purchases(last 90d) >= 2 and net_spend >= 500.00 and first_channel = "douyin" and not opted_out"#)
            .unwrap();
        let Expr::And { all } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(all.len(), 4);
        assert_eq!(
            all[0],
            Expr::Cmp {
                prop: Prop::Purchases(Some(Window {
                    seconds: 90 * 86_400
                })),
                op: CmpOp::Ge,
                value: Literal::Int(2)
            }
        );
        assert_eq!(
            all[1],
            Expr::Cmp {
                prop: Prop::NetSpend,
                op: CmpOp::Ge,
                value: Literal::Int(50_000)
            }
        );
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
    }

    #[test]
    fn precedence_and_grouping() {
        let e = parse(r#"tag("vip") or in_group("g1") and not (friended or opted_out)"#).unwrap();
        assert!(matches!(&e, Expr::Or { any } if any.len() == 2));
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        let e = parse("spend(last 2w) > 12.5 and trait.city = \"上海\"").unwrap();
        assert_eq!(parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn rfm_layer_round_trips_by_its_chinese_name() {
        let e = parse(r#"rfm_layer = "重要价值客户""#).unwrap();
        assert_eq!(
            e,
            Expr::Cmp {
                prop: Prop::RfmLayer,
                op: CmpOp::Eq,
                value: Literal::Str("重要价值客户".into())
            }
        );
        assert_eq!(e.to_string(), r#"rfm_layer = "重要价值客户""#);
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        // The short form and the English key are the same layer.
        for alias in [
            r#"rfm_layer = "一般挽留""#,
            r#"rfm_layer = "general_win_back""#,
        ] {
            assert_eq!(
                parse(alias).unwrap().to_string(),
                r#"rfm_layer = "一般挽留客户""#
            );
        }
        let e = parse(r#"rfm_layer != "重要挽留客户" and purchases >= 2"#).unwrap();
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
        // An unknown layer lists all eight.
        let err = parse(r#"rfm_layer = "vip""#).unwrap_err();
        for layer in RfmLayer::ALL {
            assert!(err.expected.contains(layer.name()), "{err}");
        }
        assert_eq!(err.found, r#"string "vip""#);
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("purchases >= ", 1, 14, "a whole number"),
            ("purchases(90d) >= 2", 1, 11, "`last`"),
            ("net_spend >= 1.234", 1, 14, "at most 2 decimals"),
            ("first_channel > \"douyin\"", 1, 1, "`=` or `!=`"),
            ("purchases >= 2 and\n  bogus = 1", 2, 3, "a property"),
            ("purchases >= 2 extra", 1, 16, "`and`, `or`"),
            ("(purchases >= 2", 1, 16, "`)`"),
            ("tag(vip)", 1, 5, "a quoted string"),
            ("first_channel = \"douyin", 1, 17, "closing"),
            ("rfm_layer = \"vip\"", 1, 13, "重要价值客户"),
            ("rfm_layer > \"重要价值客户\"", 1, 1, "`=` or `!=`"),
            ("rfm_layer = 3", 1, 13, "a quoted string"),
        ];
        for (src, line, column, expected) in cases {
            let e = parse(src).unwrap_err();
            assert_eq!((e.line, e.column), (line, column), "{src}: {e}");
            assert!(e.expected.contains(expected), "{src}: {e}");
        }
    }
}
