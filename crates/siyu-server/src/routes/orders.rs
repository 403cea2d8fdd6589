//! Marketplace order import: orders from Taobao, Douyin, JD, Pinduoduo …
//! (a CSV export read through a column mapping by `siyu import-orders`, or
//! JSON through `POST /v1/orders`) become `purchase` / `refund` events on the
//! right person, so revenue made in the public domain (the marketplaces)
//! counts in the private-domain profile the brand segments and messages on.
//!
//! Why here and not in the wire format: an order is not an event. One order
//! row may be two events (paid, then refunded), its amount is yuan, its time
//! is Beijing wall-clock time, and its buyer is named by a marketplace
//! account or a phone number rather than a siyu identity. This module turns
//! one into the other with the pure functions [`parse_order`] and [`plan`]
//! (the HTTP handler and the CLI both use them), and every produced event
//! still passes the one wire validation ([`siyu_domain::parse_json_event`]).
//!
//! An order (JSON keys; CSV columns are mapped onto the same names):
//! - `order_id` (string or integer, ≤ 64 bytes) — required;
//! - `status`: `paid` | `refunded` | `partially_refunded` | `skip`, or a
//!   marketplace's own word (`交易成功`, `退款成功`, `已完成` …, see
//!   [`StatusTable`]); or `event`: `purchase` | `refund`. Neither: `paid`;
//! - `amount`: yuan as a **string** (`"199.00"`, at most two decimals, `¥`
//!   allowed) or `amount_cents`: integer cents. A JSON *number* in `amount`
//!   is rejected as ambiguous (yuan or cents?);
//! - `refund_amount` / `refund_amount_cents`: likewise; a `refunded` order
//!   without one refunds the whole amount, `partially_refunded` needs one;
//! - `paid_at`, `refunded_at`: RFC 3339, epoch seconds, or Beijing time
//!   without offset (`2026-11-11 20:15:00`, `2026/11/11 20:15`, `2026-11-11`;
//!   Asia/Shanghai is UTC+8 all year). A refund without `refunded_at` is
//!   dated `paid_at`;
//! - `channel` (or `marketplace`): a siyu channel name (`taobao`, `douyin`,
//!   `kuaishou`, `xiaohongshu`, `jd`, `pinduoduo` …; `淘宝`, `抖音` … are
//!   accepted too);
//! - the buyer, at least one of: `identity` (`channel:id`), `buyer_id` (the
//!   marketplace account: identity `<channel>:<buyer_id>`, bytes outside
//!   printable ASCII percent-encoded, so `赵六` is `taobao:%E8%B5%B5%E5%85%AD`
//!   and `/v1/persons/taobao:%25E8…` in a URL), `phone`, `phone_sha256`
//!   (the lowercase hex SHA-256 of the normalized number, for a brand that
//!   only holds hashed numbers).
//!
//! The person is the first of: the explicit identity, the buyer id, the
//! phone. A phone is normalized (spaces, dashes and `+86` dropped) and only
//! a keyed hash of it is kept: identity `phone_hmac:<hex>`, an HMAC with the
//! workspace's secret (`privacy.rs`), so the stored value cannot be reversed
//! by trying every number; the raw number is never stored. The hash is made
//! here, on the server (send raw numbers over HTTPS, or `siyu
//! import-orders` on the host); the secret never leaves the workspace. When a known person's `phone` trait normalizes to the same
//! number, an `identify` event links the hash to that person, so the order's
//! revenue lands on them (a number two persons share links to neither); a
//! buyer id or identity given with a phone is linked to the hash as well.
//!
//! Event ids derive from the order: `order:<channel>:<order_id>` (purchase),
//! `…:refund`, `…:phone` (buyer ↔ phone link), `…:link` (phone ↔ known
//! person), with `properties.order_id`. The log ignores an id it holds, so
//! importing the same orders again adds nothing. A refund row without buyer
//! fields takes the buyer of its purchase **in the same request or file**;
//! otherwise it must carry the buyer fields itself.

use crate::error::ApiError;
use crate::ingest::Rejected;
use crate::privacy::{is_sha256_hex, PrivacyKeys, LEGACY_PHONE_CHANNEL, PHONE_CHANNEL};
use crate::request::{blocking, read_engine, route, Route};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Map, Value};
use siyu_domain::time::{parse_date, parse_rfc3339};
use siyu_domain::wire::{check_ts, MAX_AMOUNT};
use siyu_domain::{parse_json_event, Channel, Event, Identity};
use siyu_engine::Engine;
use siyu_store::Appended;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The order fields, as JSON keys and as the names a CSV mapping maps.
pub const FIELDS: [&str; 15] = [
    "order_id",
    "status",
    "event",
    "amount",
    "amount_cents",
    "refund_amount",
    "refund_amount_cents",
    "paid_at",
    "refunded_at",
    "channel",
    "marketplace",
    "phone",
    "phone_sha256",
    "buyer_id",
    "identity",
];

/// Longest order id accepted (event ids stay under the wire's 128 bytes).
pub const MAX_ORDER_ID_LEN: usize = 64;

pub fn routes() -> Vec<Route> {
    vec![route!(
        post,
        "/v1/orders",
        write,
        "Import marketplace orders (`{\"orders\": [...]}` or an array): purchase/refund events matched to persons by identity, buyer id or hashed phone (linked to a known person's phone trait). Idempotent on order id; each bad order is reported with index, field and fix; a refund without buyer fields needs its purchase in the same request.",
        post_orders
    )]
}

// ---------- the order ----------

/// What an order row says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Paid (shipped, completed …): a purchase.
    Paid,
    /// Paid, then refunded in full (or `refund_amount`): purchase + refund.
    Refunded,
    /// Paid, then `refund_amount` refunded: purchase + refund.
    PartiallyRefunded,
    /// `event: purchase`: the purchase alone.
    Purchase,
    /// `event: refund`: the refund alone.
    Refund,
    /// Not a sale (unpaid, cancelled): nothing is imported.
    Skip,
}

impl Status {
    /// The canonical names, accepted everywhere.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "paid" => Status::Paid,
            "refunded" => Status::Refunded,
            "partially_refunded" => Status::PartiallyRefunded,
            "purchase" => Status::Purchase,
            "refund" => Status::Refund,
            "skip" => Status::Skip,
            _ => return None,
        })
    }
}

/// Marketplace status words → [`Status`]. The defaults cover Taobao/Tmall,
/// Douyin and JD exports; a CSV mapping's `[status]` table adds to and
/// overrides them. `交易关闭` (closed) is `skip`: Taobao uses it both for
/// unpaid and for fully refunded orders, so map it yourself when your export
/// has a refund column that tells them apart.
#[derive(Clone, Debug)]
pub struct StatusTable(HashMap<String, Status>);

impl Default for StatusTable {
    fn default() -> Self {
        use Status::*;
        let words = [
            // Taobao / Tmall
            ("交易成功", Paid),
            ("买家已付款", Paid),
            ("等待卖家发货", Paid),
            ("卖家已发货", Paid),
            ("等待买家确认收货", Paid),
            ("退款成功", Refunded),
            ("部分退款", PartiallyRefunded),
            ("部分退款成功", PartiallyRefunded),
            ("等待买家付款", Skip),
            ("交易关闭", Skip),
            // Douyin
            ("已完成", Paid),
            ("已支付", Paid),
            ("待发货", Paid),
            ("已发货", Paid),
            ("待收货", Paid),
            ("已退款", Refunded),
            ("全额退款", Refunded),
            ("待支付", Skip),
            ("已关闭", Skip),
            ("已取消", Skip),
            // JD
            ("完成", Paid),
            ("等待出库", Paid),
            ("等待确认收货", Paid),
            ("取消", Skip),
        ];
        StatusTable(words.into_iter().map(|(w, s)| (w.to_string(), s)).collect())
    }
}

impl StatusTable {
    pub fn insert(&mut self, word: &str, status: Status) {
        self.0.insert(word.trim().to_string(), status);
    }

    /// The status a word names: the canonical names (any case), then the table.
    pub fn lookup(&self, word: &str) -> Option<Status> {
        let w = word.trim();
        Status::parse(&w.to_ascii_lowercase()).or_else(|| self.0.get(w).copied())
    }
}

/// A validated order, before matching.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub order_id: String,
    pub channel: Channel,
    pub status: Status,
    /// Cents paid (purchase statuses).
    pub amount: Option<i64>,
    /// Cents refunded (refund statuses).
    pub refund: Option<i64>,
    /// Epoch seconds of the purchase.
    pub paid_at: Option<i64>,
    /// Epoch seconds of the refund.
    pub refunded_at: Option<i64>,
    pub identity: Option<Identity>,
    /// `<channel>:<buyer_id>`.
    pub buyer: Option<Identity>,
    /// The lowercase hex SHA-256 of the normalized phone number (the
    /// number itself is dropped once parsed; only a keyed hash of this is
    /// stored, see `privacy.rs`).
    pub phone_sha256: Option<String>,
}

impl Order {
    fn key(&self) -> (String, String) {
        (self.channel.as_str().to_string(), self.order_id.clone())
    }

    fn event_id(&self, suffix: &str) -> String {
        format!("order:{}:{}{suffix}", self.channel, self.order_id)
    }
}

/// Why one order is rejected: the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> OrderError {
    OrderError {
        field,
        message: message.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A present, non-empty field.
fn get<'a>(o: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    match o.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(v),
    }
}

fn string_field(o: &Map<String, Value>, field: &'static str) -> Result<Option<String>, OrderError> {
    match get(o, field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(err(
            field,
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

/// Yuan (`199`, `199.5`, `¥199.00`) to cents.
pub fn yuan_to_cents(s: &str) -> Result<i64, String> {
    let t = s.trim().trim_start_matches(['¥', '￥']).trim();
    if t.starts_with('-') {
        return Err(format!(
            "`{s}` is negative; amounts are positive (a refund is status `refunded` with a positive refund_amount)"
        ));
    }
    if t.contains(',') {
        return Err(format!(
            "`{s}` has a thousands separator; write the amount as plain yuan, e.g. 1299.00"
        ));
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 13 || !all_digits(int) || frac.len() > 2 || !all_digits(frac) {
        return Err(format!(
            "`{s}` is not an amount in yuan; write it like \"199.00\" (at most two decimals), or give integer cents in the *_cents field"
        ));
    }
    let int: i64 = int.parse().map_err(|_| format!("`{s}` is too large"))?;
    let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    Ok(int * 100 + frac)
}

/// `field` (yuan, string) or `field_cents` (integer), not both.
fn money(
    o: &Map<String, Value>,
    field: &'static str,
    cents_field: &'static str,
) -> Result<Option<i64>, OrderError> {
    let cents = match (get(o, field), get(o, cents_field)) {
        (Some(_), Some(_)) => {
            return Err(err(
                field,
                format!("give `{field}` (yuan) or `{cents_field}` (cents), not both"),
            ))
        }
        (None, None) => return Ok(None),
        (Some(Value::String(s)), None) => yuan_to_cents(s).map_err(|m| err(field, m))?,
        (Some(Value::Number(n)), None) => {
            return Err(err(
                field,
                format!("{n} is a number, which is ambiguous (yuan or cents?); write yuan as a string, \"{field}\": \"{n}.00\", or cents as \"{cents_field}\": {n}00"),
            ))
        }
        (Some(other), None) => {
            return Err(err(
                field,
                format!("must be yuan as a string like \"199.00\", got {}", type_name(other)),
            ))
        }
        (None, Some(v)) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
                    s.trim().parse().ok()
                }
                _ => None,
            };
            n.ok_or_else(|| {
                err(
                    cents_field,
                    format!("{v} is not integer cents; e.g. 19900 for ¥199.00"),
                )
            })?
        }
    };
    if !(0..=MAX_AMOUNT).contains(&cents) {
        return Err(err(
            field,
            format!("{cents} cents is out of range; amounts are 0..=10^12 cents"),
        ));
    }
    Ok(Some(cents))
}

fn small_number(s: &str, max_len: usize) -> Option<u32> {
    (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Beijing wall-clock time without an offset (`2026-11-11 20:15:00`,
/// `2026/11/11 20:15`, `2026-11-11`) to epoch seconds. Asia/Shanghai has
/// been UTC+8 without daylight saving since 1991.
pub fn parse_shanghai(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut parts = date.split(['-', '/']);
    let y = small_number(parts.next()?, 4).filter(|_| date.len() >= 8)?;
    let m = small_number(parts.next()?, 2)?;
    let d = small_number(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    let days = parse_date(&format!("{y:04}-{m:02}-{d:02}"))?;
    let (h, mi, sec) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let mut p = t.split(':');
            let h = small_number(p.next()?, 2)?;
            let mi = small_number(p.next()?, 2)?;
            let sec = match p.next() {
                Some(x) => small_number(x, 2)?,
                None => 0,
            };
            if p.next().is_some() || h > 23 || mi > 59 || sec > 59 {
                return None;
            }
            (h, mi, sec)
        }
    };
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - 8 * 3600)
}

fn time_field(o: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, OrderError> {
    let ts = match get(o, field) {
        None => return Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| err(field, format!("{n} is not integer epoch seconds")))?,
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Ok(n) = t.parse::<i64>() {
                n
            } else if let Some(ts) = parse_rfc3339(t).or_else(|| parse_shanghai(t)) {
                ts
            } else {
                return Err(err(
                    field,
                    format!("`{t}` is not a time; use Beijing time like `2026-11-11 20:15:00`, RFC 3339 like `2026-11-11T12:15:00Z`, or epoch seconds"),
                ));
            }
        }
        Some(other) => {
            return Err(err(
                field,
                format!(
                    "must be a time string or epoch seconds, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    check_ts(ts).map(Some).map_err(|e| err(field, e.message))
}

/// A channel name, or a marketplace's Chinese name.
pub fn parse_channel(field: &'static str, s: &str) -> Result<Channel, OrderError> {
    let s = s.trim();
    let alias = match s {
        "淘宝" => "taobao",
        "天猫" => "tmall",
        "抖音" | "抖店" => "douyin",
        "快手" => "kuaishou",
        "小红书" => "xiaohongshu",
        "京东" => "jd",
        "拼多多" => "pinduoduo",
        "有赞" => "youzan",
        "微店" => "weidian",
        "微信" => "wechat",
        "小程序" => "miniprogram",
        other => other,
    };
    let lower = alias.to_ascii_lowercase();
    match Channel::parse(&lower) {
        Some(c) if lower != PHONE_CHANNEL && lower != LEGACY_PHONE_CHANNEL => Ok(c),
        _ => Err(err(
            field,
            format!("`{s}` is not a siyu channel; use lowercase letters, digits or `_` (at most 32), e.g. taobao, douyin, kuaishou, xiaohongshu, jd, pinduoduo"),
        )),
    }
}

/// Normalizes a phone number: digits only, without spaces, dashes,
/// brackets or the `+86` / `0086` prefix; other country codes keep `+`.
pub fn normalize_phone(s: &str) -> Result<String, String> {
    if s.contains('*') {
        return Err(format!(
            "`{s}` is masked; a masked number cannot be matched: export full numbers or match by buyer_id"
        ));
    }
    let mut digits = String::new();
    let mut plus = false;
    for c in s.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' | '\u{3000}' | '\t' => {}
            '+' if digits.is_empty() && !plus => plus = true,
            other => {
                return Err(format!(
                    "`{s}` has `{other}`; a phone number is digits, with optional spaces, dashes and +86"
                ))
            }
        }
    }
    let national = if plus {
        digits.strip_prefix("86")
    } else if let Some(d) = digits.strip_prefix("0086") {
        Some(d)
    } else if digits.len() == 13 && digits.starts_with("861") {
        digits.strip_prefix("86")
    } else {
        Some(digits.as_str())
    };
    let normalized = match national {
        Some(d) => d.to_string(),
        None => format!("+{digits}"),
    };
    let n = normalized.trim_start_matches('+').len();
    if !(5..=15).contains(&n) {
        return Err(format!("`{s}` has {n} digits; a phone number has 5 to 15"));
    }
    Ok(normalized)
}

/// The lowercase hex SHA-256 of a normalized number (what the keyed
/// phone identity is made from: `PrivacyKeys::phone_identity_of_sha256`).
pub fn phone_sha256(normalized: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(normalized.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A marketplace account id as an identity id: printable ASCII is kept,
/// any other byte (and `%`, `,`, `"`) is percent-encoded.
fn encode_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'%') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses and validates one order object (see the module docs).
/// `default_channel` applies when the order names none (the CLI's `--channel`).
pub fn parse_order(
    v: &Value,
    default_channel: Option<&Channel>,
    statuses: &StatusTable,
) -> Result<Order, OrderError> {
    let Value::Object(o) = v else {
        return Err(err(
            "order",
            format!("must be a JSON object, got {}", type_name(v)),
        ));
    };
    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(
            "order",
            format!("unknown key `{k}`; known keys are {}", FIELDS.join(", ")),
        ));
    }
    let order_id = string_field(o, "order_id")?.ok_or_else(|| {
        err(
            "order_id",
            "is missing; every order needs its marketplace order id (idempotency and refunds use it)",
        )
    })?;
    if order_id.len() > MAX_ORDER_ID_LEN || order_id.chars().any(char::is_control) {
        return Err(err(
            "order_id",
            format!("must be at most {MAX_ORDER_ID_LEN} bytes without control characters"),
        ));
    }
    let channel = match (
        string_field(o, "channel")?,
        string_field(o, "marketplace")?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(
                "channel",
                format!("`{a}` differs from marketplace `{b}`; give one"),
            ))
        }
        (Some(c), _) => parse_channel("channel", &c)?,
        (None, Some(m)) => parse_channel("marketplace", &m)?,
        (None, None) => default_channel.cloned().ok_or_else(|| {
            err(
                "channel",
                "is missing; name the marketplace, e.g. \"channel\": \"taobao\" (the CLI: --channel)",
            )
        })?,
    };
    let status = match (string_field(o, "status")?, string_field(o, "event")?) {
        (Some(_), Some(_)) => {
            return Err(err("status", "give `status` or `event`, not both"));
        }
        (Some(s), None) => statuses.lookup(&s).ok_or_else(|| {
            err(
                "status",
                format!("`{s}` is not a known status; use paid, refunded, partially_refunded or skip (a CSV mapping can map it: [status] \"{s}\" = \"paid\")"),
            )
        })?,
        (None, Some(e)) => match e.as_str() {
            "purchase" => Status::Purchase,
            "refund" => Status::Refund,
            _ => return Err(err("event", format!("`{e}` must be purchase or refund"))),
        },
        (None, None) => Status::Paid,
    };
    let amount = money(o, "amount", "amount_cents")?;
    let refund_amount = money(o, "refund_amount", "refund_amount_cents")?;
    let paid_at = time_field(o, "paid_at")?;
    let refunded_at = time_field(o, "refunded_at")?;
    let identity = string_field(o, "identity")?
        .map(|s| Identity::parse(&s).map_err(|e| err("identity", e.to_string())))
        .transpose()?;
    let buyer = string_field(o, "buyer_id")?
        .map(|s| {
            Identity::parse(&format!("{channel}:{}", encode_id(&s)))
                .map_err(|e| err("buyer_id", e.to_string()))
        })
        .transpose()?;
    let phone = string_field(o, "phone")?
        .map(|s| normalize_phone(&s).map_err(|m| err("phone", m)))
        .transpose()?
        .map(|normalized| phone_sha256(&normalized));
    let given_sha256 = string_field(o, "phone_sha256")?
        .map(|s| {
            let lower = s.trim().to_ascii_lowercase();
            if is_sha256_hex(&lower) {
                Ok(lower)
            } else {
                Err(err(
                    "phone_sha256",
                    "must be the 64 hex digits of the SHA-256 of the number normalized as `phone` is (digits only, no +86)",
                ))
            }
        })
        .transpose()?;
    let phone_sha256 = match (phone, given_sha256) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(
                "phone_sha256",
                "does not match `phone`; give one of the two",
            ))
        }
        (a, b) => a.or(b),
    };
    let need = |v: Option<i64>, field: &'static str, what: &str| {
        v.ok_or_else(|| err(field, format!("is required for a {what} order")))
    };
    let (amount, refund, paid_at, refunded_at) = match status {
        Status::Skip => (None, None, paid_at, refunded_at),
        Status::Paid | Status::Purchase => (
            Some(need(amount, "amount", "paid")?),
            None,
            Some(need(paid_at, "paid_at", "paid")?),
            None,
        ),
        Status::Refunded | Status::PartiallyRefunded => {
            let what = if status == Status::Refunded {
                "refunded"
            } else {
                "partially refunded"
            };
            let amount = need(amount, "amount", what)?;
            let refund = match (status, refund_amount) {
                (_, Some(r)) if r > amount => {
                    return Err(err(
                        "refund_amount",
                        format!("{r} cents is more than the order's amount ({amount} cents)"),
                    ))
                }
                (_, Some(r)) => r,
                (Status::Refunded, None) => amount,
                _ => {
                    return Err(err(
                        "refund_amount",
                        "is required for a partially refunded order",
                    ))
                }
            };
            let paid_at = need(paid_at, "paid_at", what)?;
            (
                Some(amount),
                Some(refund),
                Some(paid_at),
                Some(refunded_at.unwrap_or(paid_at).max(paid_at)),
            )
        }
        Status::Refund => {
            let refund = need(refund_amount.or(amount), "refund_amount", "refund")?;
            let ts = need(refunded_at.or(paid_at), "refunded_at", "refund")?;
            (None, Some(refund), None, Some(ts))
        }
    };
    Ok(Order {
        order_id,
        channel,
        status,
        amount,
        refund,
        paid_at,
        refunded_at,
        identity,
        buyer,
        phone_sha256,
    })
}

// ---------- matching ----------

/// What the engine knows about the identities and phones of a batch, read
/// in one go under the engine lock (see [`Known::from_engine`]).
#[derive(Default, Debug)]
pub struct Known {
    /// Canonical id of the person holding each identity the batch names.
    pub canonical: HashMap<String, String>,
    /// Canonical ids of the persons whose `phone` trait normalizes to each
    /// phone of the batch (by the number's SHA-256 hex).
    pub phone_owners: HashMap<String, Vec<String>>,
    /// The keyed identity of each phone of the batch (by SHA-256 hex).
    pub phone_identities: HashMap<String, Identity>,
}

impl Known {
    /// Looks up the batch's identities, and scans the persons' `phone`
    /// traits for the batch's numbers (only when it has any).
    pub fn from_engine(engine: &Engine, orders: &[(usize, Order)], keys: &PrivacyKeys) -> Known {
        let mut known = Known::default();
        let mut phones = HashSet::new();
        for (_, o) in orders {
            let hashed = o.phone_sha256.as_deref().map(|sha| {
                known
                    .phone_identities
                    .entry(sha.to_string())
                    .or_insert_with(|| keys.phone_identity_of_sha256(sha))
                    .clone()
            });
            for id in [&o.identity, &o.buyer, &hashed].into_iter().flatten() {
                if let Some(p) = engine.person_of(id.as_str()) {
                    known
                        .canonical
                        .insert(id.to_string(), engine.canonical_id(p).to_string());
                }
            }
            if let Some(p) = &o.phone_sha256 {
                phones.insert(p.clone());
            }
        }
        if phones.is_empty() {
            return known;
        }
        for (slot, person) in engine.persons() {
            let Some(raw) = person
                .extra
                .as_ref()
                .and_then(|e| e.traits.get("phone"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let Ok(normalized) = normalize_phone(raw) else {
                continue;
            };
            let phone = phone_sha256(&normalized);
            if phones.contains(&phone) {
                let owners = known.phone_owners.entry(phone).or_default();
                let canonical = engine.canonical_id(slot).to_string();
                if !owners.contains(&canonical) {
                    owners.push(canonical);
                }
            }
        }
        known
    }
}

/// How accepted orders found their person (each order counts once, by
/// the first rule that named its person).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Matched {
    /// An explicit `identity`.
    pub identity: u64,
    /// `<channel>:<buyer_id>`.
    pub buyer_id: u64,
    /// The phone hash, which belongs (or is now linked) to a known person.
    pub phone_existing_person: u64,
    /// The phone hash of a person siyu did not know.
    pub phone_new: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Identity,
    BuyerId,
    PhoneExisting,
    PhoneNew,
}

impl Matched {
    fn count(&mut self, r: Rule) {
        match r {
            Rule::Identity => self.identity += 1,
            Rule::BuyerId => self.buyer_id += 1,
            Rule::PhoneExisting => self.phone_existing_person += 1,
            Rule::PhoneNew => self.phone_new += 1,
        }
    }
}

/// The events of a batch of orders.
#[derive(Debug, Default)]
pub struct Planned {
    /// Events to append, each with the index of the order it came from.
    pub events: Vec<(usize, Event)>,
    /// Orders that produce events.
    pub orders: u64,
    /// Orders whose status is `skip`.
    pub skipped: u64,
    pub matched: Matched,
    pub rejected: Vec<Rejected>,
}

fn make_event(
    order: &Order,
    suffix: &str,
    ts: i64,
    identity: &Identity,
    kind: &str,
    amount: Option<i64>,
    reference: Option<&Identity>,
) -> Result<Event, OrderError> {
    let mut v = json!({
        "id": order.event_id(suffix), "ts": ts, "identity": identity.as_str(), "type": kind,
        "channel": order.channel.as_str(), "properties": {"order_id": order.order_id},
    });
    if let Some(a) = amount {
        v["amount"] = a.into();
    }
    if let Some(r) = reference {
        v["ref"] = r.as_str().into();
    }
    // The one definition of a valid event; the order was checked already,
    // so a failure here names the order as a whole.
    parse_json_event(&v).map_err(|e| err("order", e.to_string()))
}

/// Matches orders to persons and turns them into events (pure: what the
/// engine knows comes in as `known`).
pub fn plan(orders: Vec<(usize, Order)>, known: &Known) -> Planned {
    let mut out = Planned::default();
    // Refund rows without buyer fields take their purchase's person.
    let mut buyer_of: HashMap<(String, String), (Identity, Rule)> = HashMap::new();
    let mut resolved = Vec::with_capacity(orders.len());
    for (index, order) in orders {
        let hashed = order
            .phone_sha256
            .as_deref()
            .and_then(|sha| known.phone_identities.get(sha).cloned());
        let rule_and_id = if let Some(id) = &order.identity {
            Some((id.clone(), Rule::Identity))
        } else if let Some(id) = &order.buyer {
            Some((id.clone(), Rule::BuyerId))
        } else {
            hashed.clone().map(|h| (h, Rule::PhoneNew))
        };
        if let Some(found) = &rule_and_id {
            buyer_of.entry(order.key()).or_insert_with(|| found.clone());
        }
        resolved.push((index, order, hashed, rule_and_id));
    }
    // Phones linked to a known person by this batch (hash → canonical).
    let mut linked: HashMap<String, String> = HashMap::new();
    let mut phone_links: HashSet<(String, String)> = HashSet::new();
    for (index, order, hashed, rule_and_id) in resolved {
        if order.status == Status::Skip {
            out.skipped += 1;
            continue;
        }
        let Some((primary, mut rule)) = rule_and_id.or_else(|| buyer_of.get(&order.key()).cloned())
        else {
            out.rejected.push(Rejected {
                index,
                field: "buyer".into(),
                message: format!(
                    "order `{}` names no buyer: give identity, buyer_id or phone (a refund without them needs its purchase in the same request or file)",
                    order.order_id
                ),
            });
            continue;
        };
        let ts = order.paid_at.or(order.refunded_at).unwrap_or_default();
        let mut made: Vec<Result<Event, OrderError>> = Vec::new();
        if let (Some(hash), Some(phone)) = (&hashed, &order.phone_sha256) {
            let h = hash.as_str();
            let existing = known.canonical.contains_key(h) || linked.contains_key(h);
            if !existing {
                if let Some([owner]) = known.phone_owners.get(phone).map(Vec::as_slice) {
                    made.push(
                        Identity::parse(owner)
                            .map_err(|e| err("phone", e.to_string()))
                            .and_then(|owner_id| {
                                make_event(
                                    &order,
                                    ":link",
                                    ts,
                                    hash,
                                    "identify",
                                    None,
                                    Some(&owner_id),
                                )
                            }),
                    );
                    linked.insert(h.to_string(), owner.clone());
                }
            }
            // A buyer id / identity given with a phone: link the two, unless
            // the engine already has them on one person.
            let same_person = matches!(
                (known.canonical.get(primary.as_str()), known.canonical.get(h)),
                (Some(a), Some(b)) if a == b
            );
            if primary != *hash
                && !same_person
                && phone_links.insert((primary.to_string(), h.to_string()))
            {
                made.push(make_event(
                    &order,
                    ":phone",
                    ts,
                    &primary,
                    "identify",
                    None,
                    Some(hash),
                ));
            }
        }
        let p = primary.as_str();
        if rule == Rule::PhoneNew && (known.canonical.contains_key(p) || linked.contains_key(p)) {
            rule = Rule::PhoneExisting;
        }
        if let (Some(amount), Some(paid_at)) = (order.amount, order.paid_at) {
            made.push(make_event(
                &order,
                "",
                paid_at,
                &primary,
                "purchase",
                Some(amount),
                None,
            ));
        }
        if let (Some(refund), Some(at)) = (order.refund, order.refunded_at) {
            made.push(make_event(
                &order,
                ":refund",
                at,
                &primary,
                "refund",
                Some(refund),
                None,
            ));
        }
        let result: Result<Vec<Event>, OrderError> = made.into_iter().collect();
        match result {
            Ok(events) => {
                out.orders += 1;
                out.matched.count(rule);
                out.events.extend(events.into_iter().map(|e| (index, e)));
            }
            Err(e) => out.rejected.push(Rejected {
                index,
                field: e.field.into(),
                message: e.message,
            }),
        }
    }
    out
}

/// Per-order outcome of an append: `(new orders, duplicate orders, new
/// events, duplicate events)`. An order is new when any of its events is.
pub fn tally(events: &[(usize, Event)], results: &[Appended]) -> (u64, u64, u64, u64) {
    let mut by_order: BTreeMap<usize, bool> = BTreeMap::new();
    let (mut new_events, mut dup_events) = (0, 0);
    for ((index, _), r) in events.iter().zip(results) {
        let is_new = matches!(r, Appended::New(_));
        if is_new {
            new_events += 1;
        } else {
            dup_events += 1;
        }
        *by_order.entry(*index).or_default() |= is_new;
    }
    let new_orders = by_order.values().filter(|n| **n).count() as u64;
    let dup_orders = by_order.len() as u64 - new_orders;
    (new_orders, dup_orders, new_events, dup_events)
}

// ---------- CSV ----------

/// One CSV record: the line it starts on and its cells.
pub type CsvRecord = (usize, Vec<String>);

/// The records of a CSV text (RFC 4180: quoted fields may hold commas,
/// quotes as `""` and line breaks; a leading UTF-8 BOM is skipped; blank
/// lines are skipped), each with the 1-based line it starts on.
pub fn csv_records(text: &str) -> Result<Vec<CsvRecord>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut in_quotes = false;
    let mut quoted_start = 0usize;
    let mut chars = text.chars().peekable();
    let end_record = |record: &mut Vec<String>,
                      field: &mut String,
                      records: &mut Vec<CsvRecord>,
                      start: usize| {
        record.push(std::mem::take(field));
        let r = std::mem::take(record);
        if !(r.len() == 1 && r[0].trim().is_empty()) {
            records.push((start, r));
        }
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quoted_start = line;
            }
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                end_record(&mut record, &mut field, &mut records, start_line);
                line += 1;
                start_line = line;
            }
            other => field.push(other),
        }
    }
    if in_quotes {
        return Err((
            quoted_start,
            "a quoted field is never closed (a `\"` is missing)".into(),
        ));
    }
    if !field.is_empty() || !record.is_empty() {
        end_record(&mut record, &mut field, &mut records, start_line);
    }
    Ok(records)
}

/// A cell as exported: trimmed, and without the `="…"` or leading tab
/// spreadsheets use to keep long order ids from turning into numbers.
fn clean_cell(s: &str) -> &str {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let t = t
        .strip_prefix("=\"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(t);
    t.trim()
}

/// Which CSV column holds each order field, how status words map, and the
/// marketplace when the file has no channel column. Read from TOML:
///
/// ```toml
/// channel = "taobao"            # optional (or --channel, or a channel column)
/// [columns]                     # field = "column header"
/// order_id = "订单编号"
/// status = "订单状态"
/// amount = "实付金额"
/// paid_at = "付款时间"
/// phone = "买家手机号"
/// buyer_id = "买家会员名"
/// [status]                      # extra / overriding status words
/// "已签收" = "paid"
/// ```
///
/// Without a mapping the columns are named like the fields.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    /// (field, column header), in [`FIELDS`] order.
    pub columns: Vec<(&'static str, String)>,
    pub statuses: StatusTable,
    pub channel: Option<Channel>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    channel: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    status: BTreeMap<String, String>,
}

impl Mapping {
    /// Parses a mapping file; every fault names its key and the fix.
    pub fn from_toml(text: &str) -> Result<Mapping, String> {
        crate::config::check_toml_nesting(text).map_err(|e| format!("mapping: {e}"))?;
        let f: MappingFile = toml::from_str(text).map_err(|e| format!("mapping: {e}"))?;
        let mut m = Mapping::default();
        for (field, column) in &f.columns {
            let Some(known) = FIELDS.iter().find(|f| *f == field) else {
                return Err(format!(
                    "mapping: [columns] `{field}` is not an order field; fields are {}",
                    FIELDS.join(", ")
                ));
            };
            if column.trim().is_empty() {
                return Err(format!(
                    "mapping: [columns] `{field}` names an empty column"
                ));
            }
            m.columns.push((known, column.trim().to_string()));
        }
        m.columns
            .sort_by_key(|(f, _)| FIELDS.iter().position(|x| x == f));
        if !m.columns.iter().any(|(f, _)| *f == "order_id") {
            return Err("mapping: [columns] needs `order_id`, the order number column (e.g. order_id = \"订单编号\")".into());
        }
        for (word, status) in &f.status {
            let s = Status::parse(status).ok_or_else(|| {
                format!("mapping: [status] \"{word}\" = \"{status}\": use paid, refunded, partially_refunded, purchase, refund or skip")
            })?;
            m.statuses.insert(word, s);
        }
        if let Some(c) = &f.channel {
            m.channel = Some(
                parse_channel("channel", c)
                    .map_err(|e| format!("mapping: channel: {}", e.message))?,
            );
        }
        Ok(m)
    }

    /// The identity mapping: every header named like a field.
    pub fn by_field_names(header: &[String]) -> Mapping {
        let columns = FIELDS
            .iter()
            .filter(|f| header.iter().any(|h| clean_cell(h) == **f))
            .map(|f| (*f, f.to_string()))
            .collect();
        Mapping {
            columns,
            ..Mapping::default()
        }
    }

    /// Column positions of the mapped fields in `header`, or which mapped
    /// column is missing (with the header's columns, to spot the typo).
    pub fn bind(&self, header: &[String]) -> Result<Vec<(&'static str, usize)>, String> {
        let names: Vec<&str> = header.iter().map(|h| clean_cell(h)).collect();
        let mut bound = Vec::new();
        for (field, column) in &self.columns {
            match names.iter().position(|h| h == column) {
                Some(i) => bound.push((*field, i)),
                None => {
                    return Err(format!(
                        "column `{column}` (mapped to `{field}`) is not in the file's header; its columns are: {}",
                        names.join(", ")
                    ))
                }
            }
        }
        if !bound.iter().any(|(f, _)| *f == "order_id") {
            return Err(format!(
                "no `order_id` column; map one with --mapping (the header has: {})",
                names.join(", ")
            ));
        }
        Ok(bound)
    }

    /// The column a field is read from (for error messages).
    pub fn column_of(&self, field: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| c.as_str())
    }
}

/// One CSV record as an order object (string values; empty cells absent).
pub fn csv_order(bound: &[(&'static str, usize)], record: &[String]) -> Value {
    let mut o = Map::new();
    for (field, i) in bound {
        if let Some(cell) = record.get(*i) {
            let cell = clean_cell(cell);
            if !cell.is_empty() {
                o.insert(field.to_string(), Value::String(cell.to_string()));
            }
        }
    }
    Value::Object(o)
}

// ---------- HTTP ----------

/// The orders of a request body: `{"orders": [...]}` or a bare array.
fn body_orders(bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    match v {
        Value::Array(items) => Ok(items),
        Value::Object(mut o) => match o.remove("orders") {
            Some(Value::Array(items)) if o.is_empty() => Ok(items),
            _ => Err(ApiError::BadRequest(
                "send {\"orders\": [order, …]} or a JSON array of orders".into(),
            )),
        },
        _ => Err(ApiError::BadRequest(
            "send {\"orders\": [order, …]} or a JSON array of orders".into(),
        )),
    }
}

async fn post_orders(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let limit = state.0.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    let items = body_orders(&bytes)?;
    let s = state.clone();
    let planned = blocking(move || {
        let statuses = StatusTable::default();
        let mut orders = Vec::new();
        let mut rejected = Vec::new();
        for (index, v) in items.iter().enumerate() {
            match parse_order(v, None, &statuses) {
                Ok(o) => orders.push((index, o)),
                Err(e) => rejected.push(Rejected {
                    index,
                    field: e.field.into(),
                    message: e.message,
                }),
            }
        }
        let known = Known::from_engine(&read_engine(&s), &orders, &s.0.privacy);
        let mut planned = plan(orders, &known);
        planned.rejected.extend(rejected);
        planned.rejected.sort_by_key(|r| r.index);
        Ok(planned)
    })
    .await?;
    let Planned {
        events,
        orders,
        skipped,
        matched,
        rejected,
    } = planned;
    if orders == 0 && skipped == 0 {
        let n = rejected.len();
        let first = rejected
            .first()
            .map(|r| {
                format!(
                    " (first: index {}, field `{}`: {})",
                    r.index, r.field, r.message
                )
            })
            .unwrap_or_default();
        let error = ApiError::InvalidDefinition(format!(
            "all {n} orders were rejected; nothing was stored{first}"
        ));
        let (status, code) = error.status_and_code();
        let body = json!({
            "code": code, "message": error.to_string(),
            "accepted": 0, "duplicates": 0, "skipped": 0, "rejected": rejected, "matched": matched,
        });
        return Ok((status, Json(body)).into_response());
    }
    let results = if events.is_empty() {
        Vec::new()
    } else {
        state
            .0
            .writer
            .append(events.iter().map(|(_, e)| e.clone()).collect())
            .await
            .map_err(ApiError::Internal)?
    };
    let (accepted, duplicates, new_events, dup_events) = tally(&events, &results);
    Ok(Json(json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "skipped": skipped,
        "rejected": rejected,
        "matched": matched,
        "events": {"accepted": new_events, "duplicates": dup_events},
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_amounts() {
        assert_eq!(yuan_to_cents("199.00"), Ok(19900));
        assert_eq!(yuan_to_cents("¥199.5"), Ok(19950));
        assert_eq!(yuan_to_cents("7"), Ok(700));
        for bad in ["abc", "1.234", "-5", "1,299.00", "", ".5", "1e3"] {
            assert!(yuan_to_cents(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn beijing_time() {
        // 2026-11-11 20:15:00 +08:00 = 12:15:00Z
        let utc = parse_rfc3339("2026-11-11T12:15:00Z");
        assert_eq!(parse_shanghai("2026-11-11 20:15:00"), utc);
        assert_eq!(parse_shanghai("2026/11/11 20:15"), utc);
        assert_eq!(
            parse_shanghai("2026-11-11"),
            parse_rfc3339("2026-11-10T16:00:00Z")
        );
        for bad in ["2026-13-01 00:00:00", "2026-11-11 24:00", "11/11/2026", "x"] {
            assert_eq!(parse_shanghai(bad), None, "{bad}");
        }
    }

    #[test]
    fn phones_normalize_before_hashing() {
        for p in [
            "138 0000 0000",
            "+86 138-0000-0000",
            "008613800000000",
            "8613800000000",
        ] {
            assert_eq!(normalize_phone(p).as_deref(), Ok("13800000000"), "{p}");
        }
        assert_eq!(
            normalize_phone("+852 6123 4567").as_deref(),
            Ok("+85261234567")
        );
        assert!(normalize_phone("138****0000").is_err());
        assert!(normalize_phone("call me").is_err());
        assert_eq!(
            phone_sha256("13800000000"),
            phone_sha256(&normalize_phone("138-0000-0000").unwrap())
        );
    }

    #[test]
    fn csv_with_bom_quotes_and_crlf() {
        let text = "\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\r\n\"multi\nline\",2\n3,4";
        let r = csv_records(text).unwrap();
        assert_eq!(r[0], (1, vec!["a".to_string(), "b".into()]));
        assert_eq!(r[1], (2, vec!["x, y".to_string(), "say \"hi\"".into()]));
        assert_eq!(r[2], (4, vec!["multi\nline".to_string(), "2".into()]));
        assert_eq!(r[3], (6, vec!["3".to_string(), "4".into()]));
        assert_eq!(csv_records("a\n\"open").unwrap_err().0, 2);
        assert_eq!(
            clean_cell(" =\"3912345678901234567\"\t"),
            "3912345678901234567"
        );
    }

    #[test]
    fn ambiguous_amounts_and_missing_fields_are_rejected_by_field() {
        let t = StatusTable::default();
        let base = json!({"order_id": "1", "channel": "taobao", "amount": "10.00",
            "paid_at": "2026-11-11 20:15:00", "buyer_id": "b"});
        assert!(parse_order(&base, None, &t).is_ok());
        let with = |k: &str, v: Value| {
            let mut o = base.clone();
            o[k] = v;
            parse_order(&o, None, &t).unwrap_err().field
        };
        assert_eq!(with("amount", json!(10)), "amount");
        assert_eq!(with("amount_cents", json!(1000)), "amount");
        assert_eq!(with("status", json!("已签收")), "status");
        assert_eq!(with("channel", json!("Tao Bao")), "channel");
        assert_eq!(with("paid_at", json!(1_793_000_000_000i64)), "paid_at");
        assert_eq!(with("order_id", Value::Null), "order_id");
        assert_eq!(with("status", json!("partially_refunded")), "refund_amount");
        assert_eq!(with("extra", json!(1)), "order");
        let o = parse_order(
            &json!({"order_id": 42, "marketplace": "淘宝", "status": "退款成功",
            "amount_cents": 500, "paid_at": 1_793_000_000, "buyer_id": "王 五"}),
            None,
            &t,
        )
        .unwrap();
        assert_eq!(o.buyer.unwrap().as_str(), "taobao:%E7%8E%8B%20%E4%BA%94");
        assert_eq!(
            (o.amount, o.refund, o.refunded_at),
            (Some(500), Some(500), Some(1_793_000_000))
        );
    }

    #[test]
    fn a_refund_without_buyer_takes_its_purchase_in_the_batch() {
        let t = StatusTable::default();
        let p = parse_order(
            &json!({"order_id": "9", "channel": "douyin", "amount": "20",
            "paid_at": 1_793_000_000, "phone": "13900000000"}),
            None,
            &t,
        )
        .unwrap();
        let r = parse_order(
            &json!({"order_id": "9", "channel": "douyin", "event": "refund",
            "refund_amount": "5", "refunded_at": 1_793_100_000}),
            None,
            &t,
        )
        .unwrap();
        let lone = parse_order(
            &json!({"order_id": "10", "channel": "douyin", "event": "refund",
            "refund_amount": "5", "refunded_at": 1_793_100_000}),
            None,
            &t,
        )
        .unwrap();
        let known = Known {
            canonical: HashMap::new(),
            phone_owners: [(phone_sha256("13900000000"), vec!["wecom:x".to_string()])].into(),
            phone_identities: [(
                phone_sha256("13900000000"),
                PrivacyKeys::from_secret(b"test").phone_identity("13900000000"),
            )]
            .into(),
        };
        let planned = plan(vec![(0, p), (1, r), (2, lone)], &known);
        let kinds: Vec<(usize, &str, &str)> = planned
            .events
            .iter()
            .map(|(i, e)| (*i, e.event_type.as_str(), e.id.as_deref().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, "identify", "order:douyin:9:link"),
                (0, "purchase", "order:douyin:9"),
                (1, "refund", "order:douyin:9:refund"),
            ]
        );
        assert_eq!(
            planned.events[0].1.reference.as_ref().unwrap().as_str(),
            "wecom:x"
        );
        assert_eq!(planned.matched.phone_existing_person, 2);
        assert_eq!(planned.rejected.len(), 1);
        assert_eq!(
            (
                planned.rejected[0].index,
                planned.rejected[0].field.as_str()
            ),
            (2, "buyer")
        );
    }
}
