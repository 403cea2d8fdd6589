//! Orders to events: what the engine knows about a batch's buyers
//! ([`Known`], read in one go), which person each order lands on and the
//! events that say so ([`plan`], pure), what an append of them did
//! ([`tally`]), and the refunds that left their person with more refunded
//! than purchased ([`over_refunded`]). Such a refund is stored as the
//! marketplace reported it and flagged rather than refused: the engine's
//! folds stay commutative sums (a refund may arrive before its purchase,
//! or the purchase may predate siyu), so only the answer and the profile
//! can say that the numbers do not add up.

use super::parse::{err, normalize_phone, phone_sha256, Order, OrderError, Status};
use super::OrdersError;
use serde_json::{json, Value};
use siyu_domain::{parse_json_event, Event, EventType, Identity};
use siyu_engine::Engine;
use siyu_store::Appended;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The keyed phone hash, which needs the workspace's secret (siyu-server's
/// `privacy::PrivacyKeys` implements it): the core never holds the secret.
/// A closure `Fn(&str) -> Identity` is one too (tests).
pub trait PhoneKeys {
    /// The keyed identity (`phone_hmac:<hex>`) of a number given as the
    /// lowercase hex SHA-256 of its normalized form ([`phone_sha256`]).
    fn phone_identity(&self, sha256_hex: &str) -> Identity;
}

impl<F: Fn(&str) -> Identity> PhoneKeys for F {
    fn phone_identity(&self, sha256_hex: &str) -> Identity {
        self(sha256_hex)
    }
}

/// One order that produces no events: its index (in the request's array,
/// or the CSV line), the field at fault and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl Rejected {
    pub fn new(index: usize, e: OrderError) -> Rejected {
        Rejected {
            index,
            field: e.field.into(),
            message: e.message,
        }
    }
}

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
    pub fn from_engine(engine: &Engine, orders: &[(usize, Order)], keys: &dyn PhoneKeys) -> Known {
        let mut known = Known::default();
        let mut phones = HashSet::new();
        for (_, o) in orders {
            let hashed = o.phone_sha256.as_deref().map(|sha| {
                known
                    .phone_identities
                    .entry(sha.to_string())
                    .or_insert_with(|| keys.phone_identity(sha))
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
                .and_then(|e| e.traits().get("phone"))
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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

impl Planned {
    /// The batch as a whole is refused when no order produces events or
    /// is skipped (every one was rejected, or there were none): nothing
    /// would be stored. `rejected` must be sorted by index.
    pub fn all_rejected(&self) -> Option<OrdersError> {
        (self.orders == 0 && self.skipped == 0).then(|| OrdersError::AllRejected {
            count: self.rejected.len(),
            first: self.rejected.first().cloned(),
        })
    }
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
            Err(e) => out.rejected.push(Rejected::new(index, e)),
        }
    }
    out
}

/// What an append of a batch's events did, per order and per event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Orders with at least one new event.
    pub accepted: u64,
    /// Orders whose every event the log held already.
    pub duplicates: u64,
    pub new_events: u64,
    pub duplicate_events: u64,
}

/// Per-order outcome of an append (`results` in the order of `events`):
/// an order is new when any of its events is.
pub fn tally(events: &[(usize, Event)], results: &[Appended]) -> Tally {
    let mut by_order: BTreeMap<usize, bool> = BTreeMap::new();
    let mut t = Tally::default();
    for ((index, _), r) in events.iter().zip(results) {
        let is_new = matches!(r, Appended::New(_));
        if is_new {
            t.new_events += 1;
        } else {
            t.duplicate_events += 1;
        }
        *by_order.entry(*index).or_default() |= is_new;
    }
    t.accepted = by_order.values().filter(|n| **n).count() as u64;
    t.duplicates = by_order.len() as u64 - t.accepted;
    t
}

/// A refund of an accepted order after which its person has more refunded
/// than purchased (net spend below zero): listed in the import's answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct OverRefunded {
    /// The order's index in the request or file.
    pub index: usize,
    pub order_id: String,
    /// The person's canonical id.
    pub person: String,
    /// The person's purchases, in cents.
    pub purchased_cents: i64,
    /// The person's refunds, in cents, more than `purchased_cents`.
    pub refunded_cents: i64,
}

/// The refund events of a batch (as appended, and so applied to `engine`)
/// whose person now has more refunded than purchased; one per order.
pub fn over_refunded(engine: &Engine, events: &[(usize, Event)]) -> Vec<OverRefunded> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (index, e) in events {
        if e.event_type != EventType::Refund || !seen.insert(*index) {
            continue;
        }
        let Some(slot) = engine.person_of(e.identity.as_str()) else {
            continue;
        };
        let Some(p) = engine.person(slot) else {
            continue;
        };
        if p.refunded() > p.gross_spend() {
            let order_id = e
                .properties
                .as_ref()
                .and_then(|m| m.get("order_id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            out.push(OverRefunded {
                index: *index,
                order_id,
                person: engine.canonical_id(slot).to_string(),
                purchased_cents: p.gross_spend(),
                refunded_cents: p.refunded(),
            });
        }
    }
    out
}
