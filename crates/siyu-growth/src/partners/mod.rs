//! The partner program (达人 / KOC / MCN / 分销): partners with signed
//! links and codes, the persons who arrive through them attributed to
//! them (`attribution`: first or last touch within a window), commission
//! rules (`commission`: a percentage of net revenue, volume tiers,
//! per-product rates) and the commission ledger (`ledger`: accrued on a
//! purchase, held through the refund window, then payable, paid by a
//! payout; a refund reduces what is not paid yet and claws back what was
//! paid as a negative line). Anti-fraud: nothing for the partner's own
//! person (self-referral, across stitched identities) or for an arrival on
//! a device the partner or an earlier arrival used (shared device).
//!
//! An arrival is a `referral_signup` whose `properties.campaign` is
//! [`arrival_campaign`] (`partner/<id>`) and whose `ref` is the partner's
//! identity: the engine keeps these (`Engine::referrals`, with the device
//! fingerprint), so attribution needs no log pass. Orders are the
//! attributed persons' `purchase` and `refund` events with
//! `properties.order_id` (what order import writes), the product from
//! `properties.product` or `properties.sku`.
//!
//! Like the rest of this crate: no I/O of its own and no clock. The
//! ledger is reconciled, never incremented: [`ledger::plan`] is a pure
//! function of the partner, the orders as the log has them, the stored
//! lines and `now`, so a second plan over its own result changes nothing.
//! Definitions live in settings under [`PARTNER_PREFIX`], ledger rows
//! under [`LEDGER_PREFIX`] (`partner_ledger/<partner>/<order>`).

pub mod attribution;
pub mod commission;
pub mod ledger;

use serde::{Deserialize, Serialize};
use siyu_store::{Store, StoreError};
use std::collections::BTreeMap;

pub use attribution::{arrivals, partner_devices, Arrival, Attribution, FraudFlag, Model};
pub use commission::{dues, orders_from_events, Due, OrderFacts};
pub use ledger::{pay, plan, totals, LedgerLine, LedgerTotals, LineKind, LineStatus};

/// Settings prefix of partner definitions (`partner/<id>`).
pub const PARTNER_PREFIX: &str = "partner/";
/// Settings prefix of the commission ledger (`partner_ledger/<partner>/<order>`:
/// the order's lines).
pub const LEDGER_PREFIX: &str = "partner_ledger/";
/// Ids a partner cannot have: fixed paths beside `/v1/partners/{id}`.
pub const RESERVED_IDS: [&str; 2] = ["settings", "from-person"];
/// Settings key of the program-wide rules ([`Program`]).
pub const PROGRAM_KEY: &str = "partner_program";
/// Basis points in one whole (a `rate_bp` of 1000 is 10 %).
pub const BP: i64 = 10_000;
/// Longest refund window or attribution window accepted (two years).
pub const MAX_WINDOW_SECS: i64 = 2 * 366 * 86_400;

/// The `properties.campaign` of an arrival through partner `id`'s link
/// (a `referral_signup` whose `ref` is the partner's identity).
pub fn arrival_campaign(id: &str) -> String {
    format!("partner/{id}")
}

/// What partner `id`'s link code signs (the link-token purpose): a code is
/// valid for one partner only.
pub fn link_purpose(id: &str) -> String {
    format!("partner/{id}")
}

/// The settings key of partner `id`.
pub fn key(id: &str) -> String {
    format!("{PARTNER_PREFIX}{id}")
}

/// What kind of partner (reporting only; the rules are the same).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    /// 达人 / KOC: a creator or key opinion consumer.
    #[default]
    Koc,
    /// An MCN agency.
    Mcn,
    /// A distributor (分销), often a loyal customer.
    Distributor,
}

/// A partner definition: what `PUT /v1/partners/{id}` saves and the API
/// lists (the stored form and the wire form are the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    /// Taken from the path when saved.
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub kind: PartnerKind,
    /// The partner's own identity (`wecom:…`): the `ref` of their arrivals
    /// and the person whose own orders never earn commission.
    pub identity: String,
    #[serde(default)]
    pub attribution: AttributionRules,
    pub commission: Commission,
    /// The refund window: a line is held this long after its purchase,
    /// then payable ("7d", seconds, or `{"seconds": n}`; default 7 days).
    #[serde(
        default = "default_hold",
        deserialize_with = "siyu_domain::duration::deserialize_secs"
    )]
    #[schemars(schema_with = "siyu_domain::duration::secs_schema")]
    pub hold: i64,
    /// The partner's own device fingerprints (as the signups send them):
    /// an arrival on one of them earns nothing (shared device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Fixed fees paid to the partner (坑位费 and the like), fen: counted
    /// with commission as the partner's cost in its ROI.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fees: i64,
    /// A live code (communities) the partner's landing hands arrivals on
    /// to: its QR on the page, and a seat for whoever signs up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_code: Option<String>,
    /// Archived (`DELETE`): no new links or arrivals; the ledger stays
    /// readable and payable. Saving the definition again restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn default_hold() -> i64 {
    7 * 86_400
}

fn default_window() -> i64 {
    30 * 86_400
}

/// How persons are attributed to this partner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionRules {
    /// Orders within this long after the arrival earn commission ("30d";
    /// default 30 days): N days of attribution.
    #[serde(
        default = "default_window",
        deserialize_with = "siyu_domain::duration::deserialize_secs"
    )]
    #[schemars(schema_with = "siyu_domain::duration::secs_schema")]
    pub window: i64,
}

impl Default for AttributionRules {
    fn default() -> Self {
        AttributionRules {
            window: default_window(),
        }
    }
}

/// Commission rules: `rate_bp` of each order's net revenue (purchase minus
/// refunds), unless the partner's attributed net volume before the order
/// reached a tier (the highest tier whose `from` it reached applies), or
/// the order's product has its own rate (which wins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commission {
    /// Basis points: 1000 = 10 %.
    pub rate_bp: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<CommissionTier>,
    /// Product or SKU → basis points.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub products: BTreeMap<String, u32>,
}

/// From `from` fen of attributed net volume on, `rate_bp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionTier {
    /// Net volume in fen (integer cents) reached before the order.
    pub from: i64,
    pub rate_bp: u32,
}

/// Why a partner request cannot be done; each names the field or the fix.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("no partner `{id}`; GET /v1/partners lists them")]
    NoPartner { id: String },
    /// A definition to save breaks these rules (each names its field).
    #[error("{}", faults.join("; "))]
    Invalid { faults: Vec<String> },
    /// A stored row that no longer reads.
    #[error("stored `{key}` does not read: {error}")]
    Unreadable { key: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Partner {
    /// Every fault of the definition, each naming its field and the fix.
    pub fn faults(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.name.trim().is_empty() {
            f.push("name: give the partner a name".to_string());
        }
        if let Some(code) = &self.live_code {
            if code.is_empty() || code.len() > 64 || code.contains(['/', ':']) {
                f.push(format!(
                    "live_code: {code:?} is not a live code id (1–64 characters without '/' or ':')"
                ));
            }
        }
        if let Err(e) = siyu_domain::Identity::parse(&self.identity) {
            f.push(format!(
                "identity: {e}; use the partner's own identity such as `wecom:koc01`"
            ));
        }
        let rate = |bp: u32, field: &str, f: &mut Vec<String>| {
            if bp as i64 > BP {
                f.push(format!(
                    "{field}: {bp} basis points is more than 100 % (10000); 1000 is 10 %"
                ));
            }
        };
        rate(self.commission.rate_bp, "commission.rate_bp", &mut f);
        let mut last = None;
        for (i, t) in self.commission.tiers.iter().enumerate() {
            rate(t.rate_bp, &format!("commission.tiers[{i}].rate_bp"), &mut f);
            if t.from <= 0 {
                f.push(format!(
                    "commission.tiers[{i}].from: {} must be a positive volume in fen (the base rate covers 0)",
                    t.from
                ));
            }
            if last.is_some_and(|l| t.from <= l) {
                f.push(format!(
                    "commission.tiers[{i}].from: tiers must ascend by `from`"
                ));
            }
            last = Some(t.from);
        }
        for (p, bp) in &self.commission.products {
            if p.is_empty() || p.len() > 128 {
                f.push("commission.products: a product is 1–128 bytes".to_string());
            }
            rate(*bp, &format!("commission.products.{p}"), &mut f);
        }
        for (field, secs) in [
            ("hold", self.hold),
            ("attribution.window", self.attribution.window),
        ] {
            if !(0..=MAX_WINDOW_SECS).contains(&secs) {
                f.push(format!(
                    "{field}: {secs} s is outside 0 … {MAX_WINDOW_SECS} s (two years)"
                ));
            }
        }
        if self.attribution.window == 0 {
            f.push(
                "attribution.window: 0 attributes nothing; give a window such as \"30d\"".into(),
            );
        }
        if self.fees < 0 {
            f.push(format!(
                "fees: {} fen is negative; give the fixed fees paid, or 0",
                self.fees
            ));
        }
        if self.devices.len() > 64 || self.devices.iter().any(|d| d.is_empty() || d.len() > 128) {
            f.push("devices: at most 64 fingerprints of 1–128 bytes".to_string());
        }
        f
    }
}

/// Saves partner `id` (the path's id wins over the body's).
pub fn save(store: &mut dyn Store, id: &str, mut p: Partner) -> Result<Partner, PartnerError> {
    p.id = id.to_string();
    let mut faults = p.faults();
    if RESERVED_IDS.contains(&id) {
        faults.push(format!(
            "id: `{id}` names a route under /v1/partners/; choose another id"
        ));
    }
    if !faults.is_empty() {
        return Err(PartnerError::Invalid { faults });
    }
    let v = serde_json::to_value(&p).map_err(|e| PartnerError::Unreadable {
        key: key(id),
        error: e.to_string(),
    })?;
    store.put_setting(&key(id), Some(&v))?;
    Ok(p)
}

/// Partner `id`, or [`PartnerError::NoPartner`].
pub fn load(store: &mut dyn Store, id: &str) -> Result<Partner, PartnerError> {
    let v = store
        .get_setting(&key(id))?
        .ok_or_else(|| PartnerError::NoPartner { id: id.to_string() })?;
    serde_json::from_value(v).map_err(|e| PartnerError::Unreadable {
        key: key(id),
        error: e.to_string(),
    })
}

/// Rules of the whole program, one per workspace: which partner an order
/// is credited to when its buyer arrived through several within their
/// windows. Changing the model re-credits every order on the next
/// reconcile: a partner that loses an order loses its unpaid commission,
/// and what was already paid for it comes back as a clawback line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// `first_touch` (default) or `last_touch`.
    #[serde(default)]
    pub model: Model,
}

/// The program's rules (the defaults when never saved).
pub fn program(store: &mut dyn Store) -> Result<Program, PartnerError> {
    match store.get_setting(PROGRAM_KEY)? {
        None => Ok(Program::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| PartnerError::Unreadable {
            key: PROGRAM_KEY.into(),
            error: e.to_string(),
        }),
    }
}

/// Saves the program's rules.
pub fn save_program(store: &mut dyn Store, p: &Program) -> Result<(), PartnerError> {
    let v = serde_json::to_value(p).map_err(|e| PartnerError::Unreadable {
        key: PROGRAM_KEY.into(),
        error: e.to_string(),
    })?;
    Ok(store.put_setting(PROGRAM_KEY, Some(&v))?)
}

/// Every partner (a row that does not read is left out), by id.
pub fn list(store: &mut dyn Store) -> Result<Vec<Partner>, PartnerError> {
    Ok(store
        .list_settings(PARTNER_PREFIX)?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect())
}

/// Archives partner `id`; whether it was active.
pub fn archive(store: &mut dyn Store, id: &str) -> Result<bool, PartnerError> {
    let mut p = load(store, id)?;
    if p.archived {
        return Ok(false);
    }
    p.archived = true;
    let v = serde_json::to_value(&p).map_err(|e| PartnerError::Unreadable {
        key: key(id),
        error: e.to_string(),
    })?;
    store.put_setting(&key(id), Some(&v))?;
    Ok(true)
}

/// The settings key of partner `id`'s lines for order `order`.
pub fn ledger_key(id: &str, order: &str) -> String {
    format!("{LEDGER_PREFIX}{id}/{order}")
}

/// Partner `id`'s stored ledger lines (a row that does not read is an
/// error: money is not left out silently).
pub fn stored_lines(store: &mut dyn Store, id: &str) -> Result<Vec<LedgerLine>, PartnerError> {
    let mut out = Vec::new();
    for (k, v) in store.list_settings(&format!("{LEDGER_PREFIX}{id}/"))? {
        let lines: Vec<LedgerLine> =
            serde_json::from_value(v).map_err(|e| PartnerError::Unreadable {
                key: k.clone(),
                error: e.to_string(),
            })?;
        out.extend(lines);
    }
    Ok(out)
}

/// Writes partner `id`'s ledger (one row per order, one transaction).
pub fn store_lines(
    store: &mut dyn Store,
    id: &str,
    lines: &[LedgerLine],
) -> Result<(), PartnerError> {
    let mut per_order: BTreeMap<&str, Vec<&LedgerLine>> = BTreeMap::new();
    for l in lines {
        per_order.entry(l.order.as_str()).or_default().push(l);
    }
    let rows = per_order
        .into_iter()
        .map(|(order, ls)| {
            let v = serde_json::to_value(ls).map_err(|e| PartnerError::Unreadable {
                key: ledger_key(id, order),
                error: e.to_string(),
            })?;
            Ok((ledger_key(id, order), Some(v)))
        })
        .collect::<Result<Vec<_>, PartnerError>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    Ok(store.put_settings(&rows)?)
}

/// Partner `id`'s ledger at `now` under the program's attribution model
/// ([`Program`]): the stored lines brought to what the log supports
/// ([`plan`]); nothing is written. Reads the attributed persons' events
/// through the engine's log offsets (an engine without them, a snapshot
/// being replayed, sees no orders).
pub fn reconcile(
    engine: &siyu_engine::Engine,
    store: &mut dyn Store,
    id: &str,
    now: i64,
) -> Result<Reconciled, PartnerError> {
    let p = load(store, id)?;
    let partners = list(store)?;
    let model = program(store)?.model;
    let all = arrivals(engine);
    let credit = Attribution::new(&all, &partners, model);
    let own = engine
        .person_of(&p.identity)
        .map(|s| engine.canonical_id(s).to_string());
    let devices = partner_devices(engine, &p);
    let flagged = attribution::flags(&credit.arrivals_of(id), own.as_deref(), &devices);
    let mut orders = Vec::new();
    for person in credit.persons_of(id) {
        let Some(offsets) = engine
            .person_of(person)
            .and_then(|slot| engine.event_offsets(slot))
        else {
            continue;
        };
        let events = store.events_at(&offsets)?;
        orders.extend(
            orders_from_events(person, events.iter().map(|e| &e.event))
                .into_iter()
                .filter(|o| credit.credit(person, o.ts).is_some_and(|a| a.partner == id)),
        );
    }
    let mut arrived = BTreeMap::new();
    for a in credit.arrivals_of(id) {
        arrived.entry(a.person.clone()).or_insert(a.ts);
    }
    let stored = stored_lines(store, id)?;
    let due = dues(&p, &orders, &flagged, now);
    let lines = plan(&p, &due, &stored, now);
    Ok(Reconciled {
        partner: p,
        lines,
        dues: due,
        arrived,
    })
}

/// A partner's ledger at an instant and the orders it was planned from.
pub struct Reconciled {
    pub partner: Partner,
    pub lines: Vec<LedgerLine>,
    pub dues: Vec<Due>,
    /// Each person who arrived through the partner's link, and when first.
    pub arrived: BTreeMap<String, i64>,
}

/// What a partner brings against what it costs (fen), beside channel ROI.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PartnerRoi {
    /// Persons who arrived through the partner's link (in the range asked).
    pub persons: u64,
    /// Net revenue (purchases minus refunds) of the orders credited to
    /// the partner, flagged ones left out.
    pub revenue: i64,
    /// Commission standing: held + payable + paid.
    pub commission: i64,
    /// The partner's fixed fees (`fees` in the definition).
    pub fees: i64,
    /// `revenue / (commission + fees)`; none when nothing was spent.
    pub roi: Option<f64>,
    /// Buyers among the credited persons, and those with two orders or more.
    pub customers: u64,
    pub repeat_customers: u64,
    pub repeat_rate: Option<f64>,
}

/// The partner's ROI from a reconcile, to date.
pub fn roi(r: &Reconciled) -> PartnerRoi {
    roi_of(r, None)
}

/// [`roi`] of the persons who first arrived within `arrived` (epoch
/// seconds), as channel ROI counts the persons first seen in a range:
/// their revenue and commission to date. The fixed fees are undated and
/// counted only for the whole program's life (`arrived` none), as undated
/// spend is in channel ROI.
pub fn roi_of(r: &Reconciled, arrived: Option<&std::ops::Range<i64>>) -> PartnerRoi {
    let within = |person: &str| {
        arrived.is_none_or(|range| r.arrived.get(person).is_some_and(|ts| range.contains(ts)))
    };
    let lines: Vec<LedgerLine> = r
        .lines
        .iter()
        .filter(|l| within(&l.person))
        .cloned()
        .collect();
    let t = totals(&lines);
    let persons = r.arrived.keys().filter(|p| within(p)).count() as u64;
    let fees = if arrived.is_none() { r.partner.fees } else { 0 };
    let clean = r
        .dues
        .iter()
        .filter(|d| d.flag.is_none() && within(&d.person));
    let revenue: i64 = clean.clone().map(|d| d.net).sum();
    let mut per_person: BTreeMap<&str, u64> = BTreeMap::new();
    for d in clean {
        *per_person.entry(d.person.as_str()).or_default() += 1;
    }
    let customers = per_person.len() as u64;
    let repeat_customers = per_person.values().filter(|n| **n >= 2).count() as u64;
    let commission = t.held + t.payable + t.paid;
    let cost = commission + fees;
    PartnerRoi {
        persons,
        revenue,
        commission,
        fees,
        roi: (cost > 0).then(|| revenue as f64 / cost as f64),
        customers,
        repeat_customers,
        repeat_rate: (customers > 0).then(|| repeat_customers as f64 / customers as f64),
    }
}

/// The arrival of `who` through partner `p`'s link at `at`: a
/// `referral_signup` with the partner's identity as `ref` and
/// [`arrival_campaign`], once per identity, partner and UTC day (its id).
pub fn arrival_event(
    p: &Partner,
    who: &siyu_domain::Identity,
    device: Option<&str>,
    at: i64,
) -> Result<siyu_domain::Event, PartnerError> {
    let partner = siyu_domain::Identity::parse(&p.identity).map_err(|e| PartnerError::Invalid {
        faults: vec![format!("identity: {e}")],
    })?;
    let channel = siyu_domain::Channel::parse(who.channel())
        .or_else(|| siyu_domain::Channel::parse("wechat"))
        .ok_or_else(|| PartnerError::Invalid {
            faults: vec!["identity: no channel".into()],
        })?;
    let mut ev = siyu_domain::Event::new(
        at,
        who.clone(),
        siyu_domain::EventType::ReferralSignup,
        channel,
    );
    ev.reference = Some(partner);
    ev.id = Some(format!(
        "partner_arrival/{}/{}/{}",
        p.id,
        who.as_str(),
        at.div_euclid(86_400)
    ));
    let mut props = serde_json::Map::new();
    props.insert("campaign".into(), arrival_campaign(&p.id).into());
    if let Some(d) = device.filter(|d| !d.is_empty() && d.len() <= crate::fission::MAX_DEVICE_LEN) {
        props.insert("device".into(), d.into());
    }
    ev.properties = Some(props);
    Ok(ev)
}
