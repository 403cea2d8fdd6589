//! One order: its fields read from a JSON object (or a CSV row mapped onto
//! the same names), each fault naming the field and the fix; the money,
//! Beijing-time, channel and phone rules; and a request body's orders.

use super::{OrdersError, FIELDS, MAX_ORDER_ID_LEN};
use serde_json::{Map, Value};
use siyu_domain::time::{parse_date, parse_rfc3339};
use siyu_domain::wire::{check_ts, MAX_AMOUNT};
use siyu_domain::{Channel, Identity};
use std::collections::HashMap;

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
    /// stored, see [`PhoneKeys`](super::PhoneKeys)).
    pub phone_sha256: Option<String>,
}

impl Order {
    pub(crate) fn key(&self) -> (String, String) {
        (self.channel.as_str().to_string(), self.order_id.clone())
    }

    pub(crate) fn event_id(&self, suffix: &str) -> String {
        format!("order:{}:{}{suffix}", self.channel, self.order_id)
    }
}

/// Why one order is rejected: the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OrderError {
    pub field: &'static str,
    pub message: String,
}

pub(crate) fn err(field: &'static str, message: impl Into<String>) -> OrderError {
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

/// A JSON number read as yuan, for the suggestion in its rejection: the
/// yuan string with two decimals and the cents (`88.8` → `"88.80"`, 8880),
/// or `None` when no exact one exists (more than two decimals, exponent,
/// negative, out of range): a wrong suggestion is worse than the rule.
fn number_as_yuan(n: &serde_json::Number) -> Option<(String, i64)> {
    let s = n.to_string();
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if frac.len() > 2
        || int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    let cents = int
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac.parse::<i64>().ok()?)?;
    Some((format!("{int}.{frac}"), cents))
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
            let fix = match number_as_yuan(n) {
                Some((yuan, cents)) => format!(
                    "write yuan as a string, \"{field}\": \"{yuan}\", or cents as \"{cents_field}\": {cents}"
                ),
                None => format!(
                    "write yuan as a string with at most two decimals, e.g. \"{field}\": \"199.00\", or integer cents in \"{cents_field}\""
                ),
            };
            return Err(err(
                field,
                format!("{n} is a number, which is ambiguous (yuan or cents?); {fix}"),
            ));
        }
        (Some(other), None) => {
            return Err(err(
                field,
                format!(
                    "must be yuan as a string like \"199.00\", got {}",
                    type_name(other)
                ),
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

/// The identity channels of phone hashes, never a marketplace: a buyer id
/// under one of them would name a phone hash. The keyed `phone_hmac`
/// (siyu-server's `privacy::PHONE_CHANNEL`, made by [`PhoneKeys`]) and the
/// unkeyed `phone_sha256` of earlier versions
/// (`privacy::LEGACY_PHONE_CHANNEL`); a server test keeps the two lists equal.
///
/// [`PhoneKeys`]: super::PhoneKeys
pub const PHONE_HASH_CHANNELS: [&str; 2] = ["phone_hmac", "phone_sha256"];

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
        Some(c) if !PHONE_HASH_CHANNELS.contains(&lower.as_str()) => Ok(c),
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

/// Whether `s` is a SHA-256 digest in lowercase hex.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lowercase hex SHA-256 of a normalized number (what the keyed
/// phone identity is made from: [`PhoneKeys::phone_identity`]).
///
/// [`PhoneKeys::phone_identity`]: super::PhoneKeys::phone_identity
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

/// The orders of a request body: `{"orders": [...]}` or a bare array, each
/// order still an open JSON value: [`parse_order`] reads it field by field
/// so every fault names its field (a derived struct would stop at the
/// first and word it as serde does).
pub fn body_orders(bytes: &[u8]) -> Result<Vec<Value>, OrdersError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| OrdersError::MalformedJson {
        line: e.line(),
        column: e.column(),
        source: e,
    })?;
    match v {
        Value::Array(items) => Ok(items),
        Value::Object(mut o) => match o.remove("orders") {
            Some(Value::Array(items)) if o.is_empty() => Ok(items),
            _ => Err(OrdersError::NotOrders),
        },
        _ => Err(OrdersError::NotOrders),
    }
}
