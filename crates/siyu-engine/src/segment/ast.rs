//! The segment tree: what the parser produces, what the API accepts as
//! JSON, and what the evaluator walks.
//!
//! Every walk over the tree (evaluation, explanation, printing, serde) is
//! recursive, so a tree is only accepted up to [`MAX_DEPTH`] levels: the
//! parser stops there, and a tree that arrives as JSON is checked with
//! [`Expr::check_depth`] before anything walks it. Without the limit one
//! request with a few thousand nested `not`s overflowed the stack and
//! aborted the process, and a tree of ~126 levels was saved but could not
//! be read back (serde_json stops at 127 nested arrays/objects).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A time window: events with `ts >= now - seconds` (inclusive). Written
/// `{"seconds": n}`; read also from a duration string (`"7d"`) or a number
/// of seconds (`siyu_domain::duration`, one syntax everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub seconds: i64,
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Window {
            seconds: siyu_domain::duration::deserialize_secs(d)?,
        })
    }
}

/// What `Window` reads (`deserialize_secs`), not the `{"seconds"}` it writes.
impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        siyu_domain::duration::secs_schema(generator)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s % 604_800 == 0 {
            write!(f, "last {}w", s / 604_800)
        } else if s % 86_400 == 0 {
            write!(f, "last {}d", s / 86_400)
        } else if s % 3600 == 0 {
            write!(f, "last {}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "last {}m", s / 60)
        } else {
            write!(f, "last {}s", s)
        }
    }
}

/// `window` may be left out (serde reads a missing content as `None`), so
/// the schema does not require it.
fn window_optional(schema: &mut schemars::Schema) {
    for key in ["oneOf", "anyOf"] {
        if let Some(serde_json::Value::Array(variants)) = schema.get_mut(key) {
            for v in variants {
                if let Some(serde_json::Value::Array(required)) = v.get_mut("required") {
                    required.retain(|r| r != "window");
                }
            }
        }
    }
}

/// A person property a comparison reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "prop", content = "window")]
#[schemars(transform = window_optional)]
pub enum Prop {
    /// Number of purchases (in the window, if any).
    Purchases(Option<Window>),
    /// Sum of purchase amounts in cents (in the window, if any); refunds not subtracted.
    Spend(Option<Window>),
    /// message_read events (in the window, if any).
    Reads(Option<Window>),
    /// Purchases − refunds, all time, cents.
    NetSpend,
    /// Refunded cents, all time.
    Refunds,
    /// Channel of the first event.
    FirstChannel,
    /// Whole days since the first event.
    DaysSinceFirstSeen,
    /// Whole days since the last purchase.
    DaysSinceLastPurchase,
    /// RFM scores 1..5 (see analytics::rfm_scores).
    RfmR,
    RfmF,
    RfmM,
    /// The classic value layer (`crate::rfm`), compared by its Chinese
    /// name: `rfm_layer = "重要价值客户"`. Read against the thresholds the
    /// engine holds; missing for a non-buyer.
    RfmLayer,
    /// Number of identities stitched into the person.
    Identities,
    /// A trait value (string compare), e.g. `trait.city`.
    Trait(String),
    /// A user-defined computed property, e.g. `prop.big_orders_30d`.
    Custom(String),
}

impl Prop {
    /// Money properties take yuan literals (`500.00`) and compare in cents.
    pub fn is_money(&self) -> bool {
        matches!(self, Prop::Spend(_) | Prop::NetSpend | Prop::Refunds)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Prop::FirstChannel | Prop::Trait(_) | Prop::RfmLayer)
    }

    pub fn window(&self) -> Option<Window> {
        match self {
            Prop::Purchases(w) | Prop::Spend(w) | Prop::Reads(w) => *w,
            _ => None,
        }
    }
}

impl fmt::Display for Prop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let windowed = |f: &mut fmt::Formatter<'_>, name: &str, w: &Option<Window>| match w {
            Some(w) => write!(f, "{name}({w})"),
            None => f.write_str(name),
        };
        match self {
            Prop::Purchases(w) => windowed(f, "purchases", w),
            Prop::Spend(w) => windowed(f, "spend", w),
            Prop::Reads(w) => windowed(f, "reads", w),
            Prop::NetSpend => f.write_str("net_spend"),
            Prop::Refunds => f.write_str("refunds"),
            Prop::FirstChannel => f.write_str("first_channel"),
            Prop::DaysSinceFirstSeen => f.write_str("days_since_first_seen"),
            Prop::DaysSinceLastPurchase => f.write_str("days_since_last_purchase"),
            Prop::RfmR => f.write_str("rfm_r"),
            Prop::RfmF => f.write_str("rfm_f"),
            Prop::RfmM => f.write_str("rfm_m"),
            Prop::RfmLayer => f.write_str("rfm_layer"),
            Prop::Identities => f.write_str("identities"),
            Prop::Trait(t) => write!(f, "trait.{t}"),
            Prop::Custom(p) => write!(f, "prop.{p}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum CmpOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A comparison's right-hand side. Money is stored in cents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Literal {
    Int(i64),
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// How many levels a segment tree may have: an atom is one level, and
/// each `not`, `and` group and `or` group around it adds one (so does each
/// pair of parentheses in the language, see `parse`). 32 is far beyond
/// what people write (a deep real segment has 4–6), and keeps every saved
/// tree well below serde_json's limit (127 nested arrays/objects): an `and`/`or`
/// level is two JSON levels, a comparison three, so the deepest accepted
/// tree is ~67 JSON levels, ~70 in the stored settings row.
pub const MAX_DEPTH: usize = 32;

/// A segment nested deeper than [`MAX_DEPTH`] levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the segment is nested {depth} levels deep; at most {max} levels (MAX_DEPTH) of `not`, `and`/`or` groups and parentheses are allowed: save an inner part as its own segment and refer to it with in_segment(\"…\")", max = MAX_DEPTH)]
pub struct TooDeep {
    /// The depth found (at least `MAX_DEPTH + 1`; counting stops there).
    pub depth: usize,
}

/// A segment condition.
///
/// Read through [`Expr`]'s own `Deserialize` (below), which refuses a
/// `kind` that is not a string before the derived reading (`remote =
/// "Self"`) sees it: serde's internally tagged enums take an integer tag as
/// the variant's index, so `{"kind": 0, "all": []}` was read as `and`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", remote = "Self")]
pub enum Expr {
    And {
        all: Vec<Expr>,
    },
    Or {
        any: Vec<Expr>,
    },
    Not {
        expr: Box<Expr>,
    },
    Cmp {
        prop: Prop,
        op: CmpOp,
        value: Literal,
    },
    OptedOut,
    /// Has any add_friend event.
    Friended,
    HasTag {
        tag: String,
    },
    InGroup {
        group: String,
    },
    /// Member of another saved segment (by name).
    InSegment {
        segment: String,
    },
    /// The person's inbound messages (in the window, if any) include one
    /// of this intent (`properties.intent`, which siyu sets on every
    /// inbound message: `siyu_domain::intent`). JSON
    /// `{"kind": "intent", "intent": "price", "window": "7d"}` (`within`
    /// is read as `window`; the intent by id or Chinese name, 询价);
    /// the language `intent(last 7d) = "price"`.
    Intent {
        #[serde(deserialize_with = "siyu_domain::intent::deserialize_lenient")]
        intent: siyu_domain::intent::Intent,
        #[serde(default, alias = "within", skip_serializing_if = "Option::is_none")]
        window: Option<Window>,
    },
}

/// The tag a buffered tree names its variant with must be a string: a
/// number is read by serde as the variant's index (`0` = the first), which
/// the schema (and the error a client needs) says nothing about.
fn tag_must_be_string<E: serde::de::Error>(
    tree: &serde_json::Value,
    field: &str,
    names: &[&str],
) -> Result<(), E> {
    match tree.get(field) {
        Some(tag) if !tag.is_string() => Err(E::custom(format_args!(
            "`{field}` must be a string, one of {}; found {tag}",
            names.join(", ")
        ))),
        _ => Ok(()),
    }
}

const EXPR_KINDS: &[&str] = &[
    "and",
    "or",
    "not",
    "cmp",
    "opted_out",
    "friended",
    "has_tag",
    "in_group",
    "in_segment",
    "intent",
];

impl Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Expr::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tree = serde_json::Value::deserialize(d)?;
        tag_must_be_string::<D::Error>(&tree, "kind", EXPR_KINDS)?;
        Expr::deserialize(tree).map_err(serde::de::Error::custom)
    }
}

impl Expr {
    /// The number of levels of the tree (an atom is 1). Walks with an
    /// explicit stack, so it is safe on a tree of any depth.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((e, level)) = stack.pop() {
            deepest = deepest.max(level);
            match e {
                Expr::And { all: v } | Expr::Or { any: v } => {
                    stack.extend(v.iter().map(|c| (c, level + 1)))
                }
                Expr::Not { expr } => stack.push((expr, level + 1)),
                _ => {}
            }
        }
        deepest
    }

    /// Rejects a tree deeper than [`MAX_DEPTH`]: every tree that comes from
    /// outside the parser (JSON) passes here before it is evaluated or saved.
    pub fn check_depth(&self) -> Result<(), TooDeep> {
        match self.depth() {
            depth if depth > MAX_DEPTH => Err(TooDeep { depth }),
            _ => Ok(()),
        }
    }

    /// The first `rfm_layer` comparison whose value names no layer (a JSON
    /// tree can hold any string; the parser refuses one).
    pub fn unknown_rfm_layer(&self) -> Option<&str> {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::And { all: v } | Expr::Or { any: v } => stack.extend(v),
                Expr::Not { expr } => stack.push(expr),
                Expr::Cmp {
                    prop: Prop::RfmLayer,
                    value,
                    ..
                } => match value {
                    Literal::Str(s) if crate::rfm::RfmLayer::parse(s).is_some() => {}
                    Literal::Str(s) => return Some(s),
                    Literal::Int(_) => return Some("a number"),
                },
                _ => {}
            }
        }
        None
    }

    /// Names of the user-defined properties this segment reads.
    pub fn property_refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::And { all: v } | Expr::Or { any: v } => {
                v.iter().for_each(|e| e.property_refs(out))
            }
            Expr::Not { expr } => expr.property_refs(out),
            Expr::Cmp {
                prop: Prop::Custom(p),
                ..
            } => out.push(p.clone()),
            _ => {}
        }
    }

    /// Names of the segments this one reads.
    pub fn segment_refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::And { all: v } | Expr::Or { any: v } => {
                v.iter().for_each(|e| e.segment_refs(out))
            }
            Expr::Not { expr } => expr.segment_refs(out),
            Expr::InSegment { segment } => out.push(segment.clone()),
            _ => {}
        }
    }

    /// Whether membership can change with the clock alone.
    pub fn is_time_dependent(&self) -> bool {
        match self {
            Expr::And { all: v } | Expr::Or { any: v } => v.iter().any(Expr::is_time_dependent),
            Expr::Not { expr } => expr.is_time_dependent(),
            Expr::Cmp { prop, .. } => {
                prop.window().is_some()
                    || matches!(
                        prop,
                        Prop::DaysSinceFirstSeen
                            | Prop::DaysSinceLastPurchase
                            | Prop::RfmR
                            | Prop::RfmLayer
                            | Prop::Custom(_)
                    )
            }
            Expr::InSegment { .. } => true,
            Expr::Intent { window, .. } => window.is_some(),
            _ => false,
        }
    }
}

fn money(f: &mut fmt::Formatter<'_>, cents: i64) -> fmt::Result {
    let sign = if cents < 0 { "-" } else { "" };
    write!(
        f,
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

/// Prints the tree back in the segment language (parse(print(e)) == e).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Expr], sep: &str| {
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                match e {
                    Expr::And { .. } | Expr::Or { .. } => write!(f, "({e})")?,
                    _ => write!(f, "{e}")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::And { all } => join(f, all, "and"),
            Expr::Or { any } => join(f, any, "or"),
            Expr::Not { expr } => match **expr {
                Expr::And { .. } | Expr::Or { .. } => write!(f, "not ({expr})"),
                _ => write!(f, "not {expr}"),
            },
            Expr::Cmp { prop, op, value } => {
                write!(f, "{prop} {} ", op.as_str())?;
                match value {
                    Literal::Int(c) if prop.is_money() => money(f, *c),
                    v => write!(f, "{v}"),
                }
            }
            Expr::OptedOut => f.write_str("opted_out"),
            Expr::Friended => f.write_str("friended"),
            Expr::HasTag { tag } => write!(f, "tag({tag:?})"),
            Expr::InGroup { group } => write!(f, "in_group({group:?})"),
            Expr::InSegment { segment } => write!(f, "in_segment({segment:?})"),
            Expr::Intent { intent, window } => match window {
                Some(w) => write!(f, "intent({w}) = {:?}", intent.id()),
                None => write!(f, "intent = {:?}", intent.id()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Expr, String> {
        serde_json::from_str::<Expr>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_number_as_kind_is_refused_naming_the_field() {
        for json in [
            r#"{"all":[],"kind":0}"#,
            r#"{"kind":"not","expr":{"all":[],"kind":0}}"#,
            r#"{"kind":"and","all":[{"kind":"or","any":[{"kind":8,"segment":"x"}]}]}"#,
            r#"{"kind":true,"all":[]}"#,
        ] {
            let err = read(json).expect_err(json);
            assert!(err.contains("`kind` must be a string"), "{json}: {err}");
            assert!(err.contains("in_segment"), "{json}: {err}");
        }
    }

    #[test]
    fn a_number_as_prop_is_refused() {
        // `Prop` is adjacently tagged: serde reads its tag as a string, so a
        // number is refused without a check of ours.
        let json = r#"{"kind":"not","expr":{"kind":"cmp","prop":{"prop":0},"op":">=","value":1}}"#;
        let err = read(json).expect_err(json);
        assert!(err.contains("integer `0`"), "{err}");
    }

    #[test]
    fn string_tags_still_read() {
        let e = read(
            r#"{"kind":"not","expr":{"kind":"cmp","prop":{"prop":"purchases","window":"7d"},"op":">=","value":2}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            Expr::Not {
                expr: Box::new(Expr::Cmp {
                    prop: Prop::Purchases(Some(Window {
                        seconds: 7 * 86_400
                    })),
                    op: CmpOp::Ge,
                    value: Literal::Int(2),
                })
            }
        );
        assert_eq!(read(&serde_json::to_string(&e).unwrap()).unwrap(), e);
        let err = read(r#"{"kind":"nand","all":[]}"#).unwrap_err();
        assert!(err.contains("unknown variant `nand`"), "{err}");
    }
}
