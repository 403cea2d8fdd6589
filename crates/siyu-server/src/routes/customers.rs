//! The customer list: `GET /v1/customers` (filtered, sorted, paged, with a
//! total), the same list as CSV (`GET /v1/customers.csv`, streamed) and
//! bulk actions on it (`POST /v1/customers/bulk`: tag, untag, assign an
//! owner, enroll into a journey).
//!
//! Why this shape: the Persons page was an identity-prefix search an
//! operator could not browse. The filtering, sorting and paging are one
//! pass in the engine (`siyu_engine::customers`) under the engine's read
//! lock; this module only reads the parameters (each refused with its
//! name and the fix), hashes a phone number the way siyu keys phones
//! (`privacy.rs`: the engine holds no secret) and copies the page's rows.
//! Bulk actions take no path of their own: a tag is the identify event
//! with `traits.tags` / `remove_tags` the executor's tag actions append,
//! an owner is the trait `operator` (with `previous_operator`) a hand-over
//! appends, both through the writer; an enrollment goes to the executor,
//! which enters persons as an auto-reply rule's `enroll_journey` does.

use crate::error::ApiError;
use crate::request::{blocking, now, parse_json, read_engine, route, with_store, Route};
use crate::zone::{self, DateRange};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_automation::schedule::Tz;
use siyu_domain::time::format_rfc3339;
use siyu_domain::{Channel, Event, EventType, Identity, Traits};
use siyu_engine::customers::{self as list, Filter, Search, SortKey};
use siyu_engine::rfm::{layer_of, RfmLayer};
use siyu_engine::{Engine, PersonId};
use siyu_growth::community::operators::{operator_key, OperatorDef, OperatorStatus};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/customers", read, "The customer list: persons filtered by `segment` (saved segment), `tag`, `channel` (has an identity on it), `owner` (operator login), `rfm` (layer: 重要价值客户 … or its key), `spend_min`/`spend_max` (net spend in fen), `last_seen_from`/`last_seen_to` (YYYY-MM-DD in the workspace time zone, or RFC 3339), `q` (name or nickname contains, identity prefix, or a phone number in any writing: +86, spaces, dashes, matched by its keyed hash); sorted by `sort` (last_seen, spend, orders, first_seen, name) and `order` (asc|desc); paged by `offset` and `limit` (1–200, default 50) with the `total`.", list_customers),
        route!(get, "/v1/customers.csv", read, "The customer list with the same filters and sort as CSV (UTF-8 with BOM), every matching person, streamed.", customers_csv, answer_media = "text/csv"),
        route!(post, "/v1/customers/bulk", write, "A bulk action on the persons a filter keeps (`filter`, the parameters of GET /v1/customers) or on explicit `ids` (any identity of each): `action` = tag | untag (`tag`), assign_owner (`owner`, an active operator), enroll (`journey`). Tags and owners are identify events through the writer (`id` makes a repeat add nothing); enrollments go to the executor under the journey's re-entry rule. At most 100,000 persons.", bulk, body = BulkInput),
    ]
}

/// Most persons one bulk action touches.
pub const MAX_BULK: usize = 100_000;
/// Most explicit ids one bulk action names.
pub const MAX_IDS: usize = 10_000;
/// Identity strings a row shows.
const ROW_IDENTITIES: usize = 5;
/// Events per writer request of a bulk action.
const BULK_CHUNK: usize = 1_000;
/// Rows per part of the streamed CSV.
const CSV_CHUNK: usize = 1_000;

/// The filter, sort and page of the customer list. Every value is text
/// so a wrong one is refused naming its parameter and the fix.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerQuery {
    /// A saved segment's name: its live members.
    pub segment: Option<String>,
    /// Persons carrying this tag.
    pub tag: Option<String>,
    /// Persons with an identity on this channel, e.g. `wecom`.
    pub channel: Option<String>,
    /// Persons owned by this operator (trait `operator`).
    pub owner: Option<String>,
    /// RFM layer: 重要价值客户 … 一般挽留客户 (or 重要价值, or `important_value` …).
    pub rfm: Option<String>,
    /// Net spend at least this many fen.
    #[serde(default, deserialize_with = "text_or_number")]
    #[schemars(with = "Option<String>")]
    pub spend_min: Option<String>,
    /// Net spend at most this many fen.
    #[serde(default, deserialize_with = "text_or_number")]
    #[schemars(with = "Option<String>")]
    pub spend_max: Option<String>,
    /// Last seen on or after: YYYY-MM-DD (workspace time zone) or RFC 3339.
    pub last_seen_from: Option<String>,
    /// Last seen on or before: YYYY-MM-DD (through its end) or RFC 3339.
    pub last_seen_to: Option<String>,
    /// Name or nickname (contains), identity (prefix) or phone number.
    pub q: Option<String>,
    /// last_seen (default), spend, orders, first_seen, name.
    pub sort: Option<String>,
    /// asc or desc (default desc; name: asc).
    pub order: Option<String>,
    /// Rows to skip (default 0).
    #[serde(default, deserialize_with = "text_or_number")]
    #[schemars(with = "Option<String>")]
    pub offset: Option<String>,
    /// Rows to answer, 1–200 (default 50).
    #[serde(default, deserialize_with = "text_or_number")]
    #[schemars(with = "Option<String>")]
    pub limit: Option<String>,
}

/// A number parameter as text: the query string gives text, a bulk
/// action's JSON `filter` may give a number; either is read as text and
/// checked (and refused by name) like the rest.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Int(i64),
        Uint(u64),
    }
    Ok(Option::<TextOrNumber>::deserialize(d)?.map(|v| match v {
        TextOrNumber::Text(s) => s,
        TextOrNumber::Int(n) => n.to_string(),
        TextOrNumber::Uint(n) => n.to_string(),
    }))
}

fn bad(m: String) -> ApiError {
    ApiError::BadRequest(m)
}

fn text<'a>(v: &'a Option<String>, field: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > max => Err(bad(format!(
            "{field}: at most {max} characters; got {}",
            s.chars().count()
        ))),
        Some(s) => Ok(Some(s)),
    }
}

fn number<T: std::str::FromStr>(
    v: &Option<String>,
    field: &str,
    example: &str,
) -> Result<Option<T>, ApiError> {
    match text(v, field, 32)? {
        None => Ok(None),
        Some(s) => s.parse::<T>().map(Some).map_err(|_| {
            bad(format!(
                "{field}: `{s}` is not a whole number; give it in digits, e.g. {field}={example}"
            ))
        }),
    }
}

/// An instant bound of `last_seen_*`: the start of a day (`from`) or its
/// last second (`to`), or the instant given.
fn instant(v: &Option<String>, field: &str, to: bool, tz: &Tz) -> Result<Option<i64>, ApiError> {
    let Some(s) = text(v, field, 64)? else {
        return Ok(None);
    };
    let (from_text, to_text) = if to { (None, Some(s)) } else { (Some(s), None) };
    let r = DateRange::parse(from_text, to_text, tz).map_err(|_| {
        bad(format!(
            "{field}: `{s}` is neither a date nor an instant; give YYYY-MM-DD (a day in {tz}, e.g. {field}=2026-10-01) or RFC 3339 (e.g. {field}=2026-10-01T00:00:00+08:00)"
        ))
    })?;
    Ok(if to { r.to.map(|t| t - 1) } else { r.from })
}

/// What a [`CustomerQuery`] asks, read and checked (engine-free part).
struct Parsed {
    filter: Filter,
    segment: Option<String>,
    rfm: Option<RfmLayer>,
    /// A phone number in `q`: normalized, and its keyed identity.
    phone: Option<(String, Identity)>,
    sort: SortKey,
    desc: bool,
    offset: usize,
    limit: usize,
}

impl CustomerQuery {
    fn parse(&self, state: &AppState) -> Result<Parsed, ApiError> {
        let tz = zone::current(state);
        let mut filter = Filter {
            tag: text(&self.tag, "tag", 256)?.map(str::to_string),
            owner: text(&self.owner, "owner", 128)?.map(str::to_string),
            ..Filter::default()
        };
        if let Some(c) = text(&self.channel, "channel", 64)? {
            if Channel::parse(c).is_none() {
                return Err(bad(format!(
                    "channel: `{c}` is not a channel name; give lowercase letters, digits or `_`, e.g. channel=wecom"
                )));
            }
            filter.channel = Some(c.to_string());
        }
        let rfm = match text(&self.rfm, "rfm", 32)? {
            None => None,
            Some(s) => Some(RfmLayer::parse(s).ok_or_else(|| {
                bad(format!(
                    "rfm: `{s}` is not an RFM layer; give one of {}",
                    RfmLayer::names()
                ))
            })?),
        };
        filter.spend_min = number(&self.spend_min, "spend_min", "10000")?;
        filter.spend_max = number(&self.spend_max, "spend_max", "50000")?;
        if let (Some(a), Some(b)) = (filter.spend_min, filter.spend_max) {
            if a > b {
                return Err(bad(format!(
                    "spend_min: {a} is above spend_max: {b}; give a spend_min at or below spend_max (both in fen)"
                )));
            }
        }
        filter.last_seen_from = instant(&self.last_seen_from, "last_seen_from", false, &tz)?;
        filter.last_seen_to = instant(&self.last_seen_to, "last_seen_to", true, &tz)?;
        if let (Some(a), Some(b)) = (filter.last_seen_from, filter.last_seen_to) {
            if a > b {
                return Err(bad(
                    "last_seen_from: is after last_seen_to; give a last_seen_from on or before last_seen_to".into(),
                ));
            }
        }
        let mut phone = None;
        if let Some(q) = text(&self.q, "q", 100)? {
            // A phone number in any writing (+86, spaces, dashes) names
            // one keyed hash; a name or identity fragment is not a number.
            if q.chars().filter(char::is_ascii_digit).count() >= 5 {
                if let Ok(n) = siyu_commerce::orders::normalize_phone(q) {
                    let id = state.0.privacy.phone_identity(&n);
                    phone = Some((n, id));
                }
            }
            filter.search = Some(Search {
                text: q.to_string(),
                persons: Vec::new(),
            });
        }
        let sort = match text(&self.sort, "sort", 32)? {
            None => SortKey::LastSeen,
            Some(s) => SortKey::parse(s).ok_or_else(|| {
                bad(format!(
                    "sort: `{s}` is not a column to sort by; give one of {}",
                    SortKey::ALL.map(|(n, _)| n).join(", ")
                ))
            })?,
        };
        let desc = match text(&self.order, "order", 8)? {
            None => sort != SortKey::Name,
            Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(bad(format!(
                    "order: `{o}` is neither asc nor desc; give order=asc or order=desc"
                )))
            }
        };
        let offset: usize = number(&self.offset, "offset", "50")?.unwrap_or(0);
        if offset > 10_000_000 {
            return Err(bad(format!(
                "offset: {offset} is beyond any list; give at most 10000000 (narrow the filter instead)"
            )));
        }
        let limit: usize = number(&self.limit, "limit", "50")?.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(bad(format!(
                "limit: {limit} is out of range; give 1 to 200"
            )));
        }
        Ok(Parsed {
            filter,
            segment: text(&self.segment, "segment", 128)?.map(str::to_string),
            rfm,
            phone,
            sort,
            desc,
            offset,
            limit,
        })
    }
}

impl Parsed {
    /// The parts only the engine can resolve: the segment's index, the
    /// RFM thresholds, the phone's person.
    fn resolve(&mut self, e: &Engine) -> Result<(), ApiError> {
        if let Some(name) = &self.segment {
            let i = e.live_segments().index_of(name).ok_or_else(|| {
                bad(format!(
                    "segment: no saved segment `{name}`; GET /v1/segments lists them"
                ))
            })?;
            self.filter.segment = Some(i);
        }
        if let Some(layer) = self.rfm {
            match list::rfm_thresholds(e) {
                Some(t) => self.filter.rfm = Some((layer, t)),
                // Nobody bought yet: no one is in any layer.
                None => self.filter.only = Some(Vec::new()),
            }
        }
        if let (Some(s), Some((number, id))) = (&mut self.filter.search, &self.phone) {
            s.persons = phone_persons(e, number, id);
        }
        Ok(())
    }
}

/// The persons a normalized phone number names: by its keyed hash (an
/// order or SMS linked it), or by their `phone` trait written any way
/// (as order matching reads it).
fn phone_persons(e: &Engine, number: &str, id: &Identity) -> Vec<PersonId> {
    let mut out: Vec<PersonId> = e.person_of(id.as_str()).into_iter().collect();
    for (slot, p) in e.persons() {
        let Some(raw) = p
            .extra
            .as_deref()
            .and_then(|x| x.traits().get("phone"))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        if siyu_commerce::orders::normalize_phone(raw).is_ok_and(|n| n == number) {
            out.push(slot);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One identity of a row, split for display.
#[derive(Serialize, schemars::JsonSchema)]
pub struct IdentityView {
    pub channel: String,
    pub id: String,
    /// A keyed hash (`phone_hmac`, `phone_sha256`): not a readable number.
    pub hashed: bool,
}

fn identity_view(s: &str) -> IdentityView {
    let (channel, id) = s.split_once(':').unwrap_or(("", s));
    IdentityView {
        channel: channel.to_string(),
        id: id.to_string(),
        hashed: channel == crate::privacy::PHONE_CHANNEL
            || channel == crate::privacy::LEGACY_PHONE_CHANNEL,
    }
}

/// One row of the customer list.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CustomerRow {
    /// The canonical id: what `/v1/persons/{id}` takes.
    pub id: String,
    /// Trait `name`, else `nickname`, else the canonical id.
    pub display_name: String,
    /// The canonical identity first, then up to four others, sorted.
    pub identities: Vec<IdentityView>,
    /// How many identities the person has in all.
    pub identity_count: u32,
    pub tags: Vec<String>,
    /// Operator login (trait `operator`).
    pub owner: Option<String>,
    /// The RFM layer's name (重要价值客户 …); null for a non-buyer.
    pub rfm_layer: Option<String>,
    /// The same layer's stable key (`important_value` …).
    pub rfm_layer_key: Option<String>,
    /// Net spend in fen.
    pub spend: i64,
    pub orders: u32,
    pub last_seen: Option<String>,
    pub first_seen: Option<String>,
}

fn row(
    e: &Engine,
    slot: PersonId,
    t: Option<&siyu_engine::rfm::RfmThresholds>,
) -> Option<CustomerRow> {
    let p = e.person(slot)?;
    let canonical = e.canonical_id(slot).to_string();
    let layer = t.and_then(|t| layer_of(p, e.now(), t));
    Some(CustomerRow {
        display_name: list::name_of(p)
            .map(str::to_string)
            .unwrap_or_else(|| canonical.clone()),
        identities: {
            // Readable identities first: a keyed phone hash (often the
            // canonical id, being the smallest string) tells an operator
            // nothing.
            let mut v: Vec<IdentityView> = list::main_identities(e, slot, usize::MAX)
                .iter()
                .map(|s| identity_view(s))
                .collect();
            v.sort_by_key(|i| i.hashed);
            v.truncate(ROW_IDENTITIES);
            v
        },
        identity_count: e.identity_count_of(slot),
        id: canonical,
        tags: p
            .extra
            .as_deref()
            .map(|x| x.tags().to_vec())
            .unwrap_or_default(),
        owner: list::owner_of(p).map(str::to_string),
        rfm_layer: layer.map(|l| l.name().to_string()),
        rfm_layer_key: layer.map(|l| l.key().to_string()),
        spend: p.net_spend(),
        orders: p.purchase_count(),
        last_seen: list::last_seen(p).map(format_rfc3339),
        first_seen: (p.first_ts != siyu_engine::person::NO_TS)
            .then(|| format_rfc3339(p.first_ts as i64)),
    })
}

/// `GET /v1/customers`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CustomerPage {
    /// Persons the filter keeps.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub sort: String,
    pub order: String,
    /// The `offset` of the next page; null on the last.
    pub next_offset: Option<usize>,
    pub customers: Vec<CustomerRow>,
}

async fn list_customers(
    State(state): State<AppState>,
    Query(q): Query<CustomerQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    let mut parsed = q.parse(&state)?;
    let s = state.clone();
    blocking(move || {
        let e = read_engine(&s);
        parsed.resolve(&e)?;
        let page = list::page(
            &e,
            &parsed.filter,
            parsed.sort,
            parsed.desc,
            parsed.offset,
            parsed.limit,
        );
        let t = list::rfm_thresholds(&e);
        let customers: Vec<CustomerRow> = page
            .slots
            .iter()
            .filter_map(|&slot| row(&e, slot, t.as_ref()))
            .collect();
        drop(e);
        let end = parsed.offset + customers.len();
        Ok(Json(CustomerPage {
            total: page.total,
            offset: parsed.offset,
            limit: parsed.limit,
            sort: SortKey::ALL
                .iter()
                .find(|(_, k)| *k == parsed.sort)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
            order: if parsed.desc { "desc" } else { "asc" }.into(),
            next_offset: (end < page.total).then_some(end),
            customers,
        }))
    })
    .await
}

/// A CSV field: quoted when it must be, and a leading `=`, `+`, `-` or
/// `@` defused (a spreadsheet would run it as a formula).
fn csv_field(out: &mut String, s: &str) {
    let formula = s.starts_with(['=', '+', '-', '@']);
    if formula || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

const CSV_HEADER: &str =
    "id,display_name,identities,tags,owner,rfm_layer,spend_fen,orders,last_seen,first_seen\r\n";

fn csv_rows(e: &Engine, slots: &[PersonId], out: &mut String) {
    let t = list::rfm_thresholds(e);
    for &slot in slots {
        let Some(r) = row(e, slot, t.as_ref()) else {
            continue;
        };
        let ids: Vec<String> = list::main_identities(e, slot, usize::MAX);
        let fields = [
            r.id,
            r.display_name,
            ids.join(" "),
            r.tags.join(";"),
            r.owner.unwrap_or_default(),
            r.rfm_layer.unwrap_or_default(),
            r.spend.to_string(),
            r.orders.to_string(),
            r.last_seen.unwrap_or_default(),
            r.first_seen.unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(out, f);
        }
        out.push_str("\r\n");
    }
}

/// The list as CSV: the matching persons are listed in one pass, then
/// their rows are made and sent a thousand at a time, each part under
/// its own short read lock, so a large export neither holds the engine
/// nor sits in memory as one string.
async fn customers_csv(
    State(state): State<AppState>,
    Query(q): Query<CustomerQuery>,
) -> Result<Response, ApiError> {
    let mut parsed = q.parse(&state)?;
    let s = state.clone();
    let slots = blocking(move || {
        let e = read_engine(&s);
        parsed.resolve(&e)?;
        Ok(list::all(&e, &parsed.filter, parsed.sort, parsed.desc))
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut head = String::from("\u{feff}");
        head.push_str(CSV_HEADER);
        if tx.blocking_send(Ok(Bytes::from(head))).is_err() {
            return;
        }
        for part in slots.chunks(CSV_CHUNK) {
            let mut out = String::new();
            csv_rows(&read_engine(&s), part, &mut out);
            // The client went away: stop.
            if tx.blocking_send(Ok(Bytes::from(out))).is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"customers.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// What a bulk action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Tag,
    Untag,
    AssignOwner,
    Enroll,
}

/// The body of `POST /v1/customers/bulk`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    pub action: BulkAction,
    /// The persons: the filter of GET /v1/customers (`sort`, `order`,
    /// `offset`, `limit` are ignored) …
    #[serde(default)]
    pub filter: Option<CustomerQuery>,
    /// … or any identity of each person.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// `tag` / `untag`: the tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// `assign_owner`: an active operator's login.
    #[serde(default)]
    pub owner: Option<String>,
    /// `enroll`: the journey.
    #[serde(default)]
    pub journey: Option<String>,
    /// Makes the action idempotent: repeating it with the same `id`
    /// appends and enrolls nothing more (1–64 of `A-Za-z0-9_-`).
    #[serde(default)]
    pub id: Option<String>,
}

/// The answer of a bulk action.
#[derive(Serialize, schemars::JsonSchema)]
pub struct BulkAnswer {
    pub action: BulkAction,
    /// Persons the filter or the ids named.
    pub persons: usize,
    /// Identities in `ids` that name nobody.
    pub unknown_ids: Vec<String>,
    /// tag/untag/assign_owner: identify events appended; enroll: persons
    /// who entered the journey (its re-entry rule may keep some out).
    pub applied: u64,
}

fn bulk_id(id: &Option<String>) -> Result<String, ApiError> {
    match id {
        Some(id) => {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(bad(format!(
                    "id: `{id}` is not 1–64 of letters, digits, `_` or `-`"
                )));
            }
            Ok(id.clone())
        }
        // Each action its own: two actions in one second (tag, then
        // untag) must not share event ids, or the log would drop one.
        None => siyu_console::accounts::random_bytes::<8>()
            .map(|b| format!("r{}", siyu_console::accounts::hex(&b)))
            .map_err(|e| ApiError::Internal(e.to_string())),
    }
}

async fn bulk(State(state): State<AppState>, body: Bytes) -> Result<Json<BulkAnswer>, ApiError> {
    let input: BulkInput = parse_json(&body, "bulk action")?;
    let key = bulk_id(&input.id)?;
    // What the action needs, checked before anyone is listed.
    let tag = match input.action {
        BulkAction::Tag | BulkAction::Untag => {
            let t = input.tag.as_deref().map(str::trim).unwrap_or_default();
            if t.is_empty() || t.chars().count() > siyu_domain::wire::MAX_TRAIT_LEN {
                return Err(bad(format!(
                    "tag: give the tag to {} (1–{} characters)",
                    if input.action == BulkAction::Tag {
                        "add"
                    } else {
                        "remove"
                    },
                    siyu_domain::wire::MAX_TRAIT_LEN
                )));
            }
            Some(t.to_string())
        }
        _ => None,
    };
    if input.action == BulkAction::AssignOwner {
        let Some(login) = input.owner.clone().filter(|o| !o.trim().is_empty()) else {
            return Err(bad("owner: give the operator login to assign".into()));
        };
        let l = login.clone();
        with_store(&state, move |store| {
            match siyu_growth::community::read::<OperatorDef>(store, &operator_key(&l))? {
                Some(op) if op.status == OperatorStatus::Active => Ok(()),
                Some(_) => Err(bad(format!(
                    "owner: operator `{l}` is not active; assign an active operator"
                ))),
                None => Err(bad(format!(
                    "owner: no operator `{l}`; GET /v1/operators lists them"
                ))),
            }
        })
        .await?;
    }
    if input.action == BulkAction::Enroll && input.journey.as_deref().is_none_or(str::is_empty) {
        return Err(bad(
            "journey: give the journey to enroll the persons in".into()
        ));
    }
    // The persons.
    let mut parsed = match (&input.filter, &input.ids) {
        (Some(f), None) => Some(f.parse(&state)?),
        (None, Some(ids)) if !ids.is_empty() && ids.len() <= MAX_IDS => None,
        (None, Some(ids)) => {
            return Err(bad(format!(
                "ids: {} given; give 1 to {MAX_IDS} (or a filter)",
                ids.len()
            )))
        }
        _ => {
            return Err(bad(
                "filter or ids: give exactly one — the filter of GET /v1/customers, or the persons' ids".into(),
            ))
        }
    };
    let ids = input.ids.clone().unwrap_or_default();
    let s = state.clone();
    // (canonical id, current owner) of each person, and the unknown ids.
    let (persons, unknown_ids) = blocking(move || {
        let e = read_engine(&s);
        let mut unknown = Vec::new();
        let slots: Vec<PersonId> = match &mut parsed {
            Some(p) => {
                p.resolve(&e)?;
                list::all(&e, &p.filter, SortKey::LastSeen, true)
            }
            None => {
                let mut v: Vec<PersonId> = Vec::new();
                for id in &ids {
                    match e.person_of(id) {
                        Some(slot) => v.push(slot),
                        None => unknown.push(id.clone()),
                    }
                }
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        if slots.len() > MAX_BULK {
            return Err(bad(format!(
                "filter: keeps {} persons; one bulk action takes at most {MAX_BULK}: narrow the filter",
                slots.len()
            )));
        }
        let persons: Vec<(String, Option<String>)> = slots
            .iter()
            .filter_map(|&slot| {
                let p = e.person(slot)?;
                Some((
                    e.canonical_id(slot).to_string(),
                    list::owner_of(p).map(str::to_string),
                ))
            })
            .collect();
        Ok((persons, unknown))
    })
    .await?;
    let at = now();
    let applied = match input.action {
        BulkAction::Enroll => {
            let journey = input.journey.clone().unwrap_or_default();
            let identities = persons.iter().map(|(c, _)| c.clone()).collect();
            state
                .0
                .automation
                .enroll(journey, identities, format!("bulk/{key}"))
                .await
                .map_err(bad)?
        }
        action => {
            let mut applied = 0u64;
            for chunk in persons.chunks(BULK_CHUNK) {
                let events: Vec<Event> = chunk
                    .iter()
                    .filter_map(|(canonical, owner)| {
                        let identity = Identity::parse(canonical).ok()?;
                        // The event the executor's tag actions append.
                        let channel = Channel::parse(identity.channel())
                            .unwrap_or_else(|| Channel::parse("wecom").expect("valid"));
                        let mut ev = Event::new(at, identity, EventType::Identify, channel);
                        ev.id = Some(format!("customers/{key}/{canonical}"));
                        let mut t = Traits::default();
                        match action {
                            BulkAction::Tag => t.tags.push(tag.clone()?),
                            BulkAction::Untag => t.remove_tags.push(tag.clone()?),
                            // As a hand-over writes it: the owner and whom from.
                            _ => {
                                let new = input.owner.clone()?;
                                t.extra.insert("operator".into(), json!(new));
                                if let Some(old) = owner.as_ref().filter(|o| **o != new) {
                                    t.extra.insert("previous_operator".into(), json!(old));
                                }
                            }
                        }
                        ev.traits = Some(t);
                        Some(ev)
                    })
                    .collect();
                if events.is_empty() {
                    continue;
                }
                applied += events.len() as u64;
                state
                    .0
                    .writer
                    .append(events)
                    .await
                    .map_err(ApiError::Internal)?;
            }
            applied
        }
    };
    tracing::info!(action = ?input.action, persons = persons.len(), applied, "customers bulk action");
    Ok(Json(BulkAnswer {
        action: input.action,
        persons: persons.len(),
        unknown_ids,
        applied,
    }))
}
