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
//! (the HTTP handler `POST /v1/orders` and `siyu import-orders` both use
//! them), and every produced event still passes the one wire validation
//! ([`siyu_domain::parse_json_event`]).
//!
//! The parts: `parse.rs` (one order's fields: money, Beijing time,
//! channels, phones; a request body's orders), `csv.rs` (RFC-4180-ish
//! records), `mapping.rs` (the TOML column mapping of a CSV export),
//! `matching.rs` (what the engine knows: [`Known`]; orders to events:
//! [`plan`]; what an append did: [`tally`]). Pure: no I/O, no clock, no
//! secret — the keyed phone hash comes in as [`PhoneKeys`].
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
//! workspace's secret (siyu-server's `privacy.rs`, passed in as
//! [`PhoneKeys`]), so the stored value cannot be reversed by trying every
//! number; the raw number is never stored. The hash is made on the server
//! (send raw numbers over HTTPS, or `siyu import-orders` on the host); the
//! secret never leaves the workspace. When a known person's `phone` trait
//! normalizes to the same number, an `identify` event links the hash to
//! that person, so the order's revenue lands on them (a number two persons share links to neither); a
//! buyer id or identity given with a phone is linked to the hash as well.
//!
//! Event ids derive from the order: `order:<channel>:<order_id>` (purchase),
//! `…:refund`, `…:phone` (buyer ↔ phone link), `…:link` (phone ↔ known
//! person), with `properties.order_id`. The log ignores an id it holds, so
//! importing the same orders again adds nothing. A refund row without buyer
//! fields takes the buyer of its purchase **in the same request or file**;
//! otherwise it must carry the buyer fields itself.

mod csv;
mod mapping;
mod matching;
mod parse;

pub use csv::{csv_records, CsvRecord};
pub use mapping::{csv_order, Mapping};
pub use matching::{
    over_refunded, plan, tally, Known, Matched, OverRefunded, PhoneKeys, Planned, Rejected, Tally,
};
pub use parse::{
    body_orders, normalize_phone, parse_channel, parse_order, parse_shanghai, phone_sha256,
    yuan_to_cents, Order, OrderError, Status, StatusTable, PHONE_HASH_CHANNELS,
};

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

/// Why a batch of orders is refused as a whole (one order's fault is an
/// [`OrderError`], reported beside the others as a [`Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// The body is not JSON at all.
    #[error("malformed JSON at line {line}, column {column}: {source}")]
    MalformedJson {
        line: usize,
        column: usize,
        source: serde_json::Error,
    },
    /// JSON, but neither `{"orders": [...]}` nor an array.
    #[error("send {{\"orders\": [order, …]}} or a JSON array of orders")]
    NotOrders,
    /// No order of the batch was accepted or skipped: nothing to store.
    #[error("all {count} orders were rejected; nothing was stored{}", first_of(.first.as_ref()))]
    AllRejected {
        count: usize,
        /// The first rejection, by index.
        first: Option<Rejected>,
    },
}

fn first_of(first: Option<&Rejected>) -> String {
    first
        .map(|r| {
            format!(
                " (first: index {}, field `{}`: {})",
                r.index, r.field, r.message
            )
        })
        .unwrap_or_default()
}
