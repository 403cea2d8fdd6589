//! Who a person's orders are credited to: the partner arrivals the engine
//! keeps (`referral_signup` with `properties.campaign = "partner/<id>"`),
//! resolved to persons at the time of the pass (so a later merge moves an
//! arrival with its person), and the anti-fraud flags of a partner's
//! arrivals (self-referral, shared device).

use super::Partner;
use serde::{Deserialize, Serialize};
use siyu_engine::Engine;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One arrival through a partner's link or code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The arriving person's canonical id.
    pub person: String,
    pub partner: String,
    pub ts: i64,
    /// Fingerprint of the signup's device (`siyu_engine::engine::fingerprint`; 0: none).
    pub device: u32,
    /// The signup's event-time tie-break (orders arrivals at one second).
    pub seq: u64,
}

/// Which arrival an order is credited to when several are in their window.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The earliest arrival still in its window (default).
    #[default]
    FirstTouch,
    /// The latest arrival before the order.
    LastTouch,
}

/// Why an arrival earns nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FraudFlag {
    /// The arriving person is the partner's own person (any of its identities).
    SelfReferral,
    /// The arrival's device is the partner's or an earlier arrival's of
    /// another person through the same partner.
    SharedDevice,
}

impl FraudFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            FraudFlag::SelfReferral => "self_referral",
            FraudFlag::SharedDevice => "shared_device",
        }
    }
}

/// Every partner arrival the engine holds, in event time.
pub fn arrivals(engine: &Engine) -> Vec<Arrival> {
    let names = engine.campaigns();
    let mut out: Vec<Arrival> = engine
        .referrals()
        .iter()
        .filter_map(|r| {
            let name = names.get((r.campaign as usize).checked_sub(1)?)?;
            let partner = name.strip_prefix("partner/")?;
            let slot = engine.person_of_id(r.invitee);
            Some(Arrival {
                person: engine.canonical_id(slot).to_string(),
                partner: partner.to_string(),
                ts: r.ts as i64,
                device: r.device,
                seq: r.seq,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.ts, a.seq, &a.person).cmp(&(b.ts, b.seq, &b.person)));
    out
}

/// The partner's own devices: those the definition lists and those of
/// every signup the partner's own person made (through any campaign).
pub fn partner_devices(engine: &Engine, p: &Partner) -> HashSet<u32> {
    let mut out: HashSet<u32> = p
        .devices
        .iter()
        .map(|d| siyu_engine::engine::fingerprint(Some(d)))
        .collect();
    if let Some(me) = engine.person_of(&p.identity) {
        out.extend(
            engine
                .referrals()
                .iter()
                .filter(|r| r.device != 0 && engine.person_of_id(r.invitee) == me)
                .map(|r| r.device),
        );
    }
    out
}

/// The flag of each person among `arrivals` of one partner (in event
/// time): `own` is the partner's own canonical id, `devices` their devices.
/// A person's first arrival decides; a device is shared from the second
/// person on it.
pub fn flags(
    arrivals: &[&Arrival],
    own: Option<&str>,
    devices: &HashSet<u32>,
) -> HashMap<String, FraudFlag> {
    let mut first_on_device: HashMap<u32, &str> = HashMap::new();
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    for a in arrivals {
        if !seen.insert(a.person.as_str()) {
            continue;
        }
        let flag = if own == Some(a.person.as_str()) {
            Some(FraudFlag::SelfReferral)
        } else if a.device != 0
            && (devices.contains(&a.device)
                || *first_on_device.entry(a.device).or_insert(&a.person) != a.person)
        {
            Some(FraudFlag::SharedDevice)
        } else {
            None
        };
        if let Some(f) = flag {
            out.insert(a.person.clone(), f);
        }
    }
    out
}

/// Arrivals per person with each partner's window: answers who an order
/// is credited to.
pub struct Attribution<'a> {
    by_person: BTreeMap<&'a str, Vec<&'a Arrival>>,
    windows: HashMap<&'a str, i64>,
    model: Model,
}

impl<'a> Attribution<'a> {
    /// `arrivals` of every partner; `partners` gives the windows (an
    /// arrival of a partner not defined attributes nothing).
    pub fn new(arrivals: &'a [Arrival], partners: &'a [Partner], model: Model) -> Self {
        let mut by_person: BTreeMap<&str, Vec<&Arrival>> = BTreeMap::new();
        for a in arrivals {
            by_person.entry(a.person.as_str()).or_default().push(a);
        }
        for list in by_person.values_mut() {
            list.sort_by_key(|a| (a.ts, a.seq));
        }
        Attribution {
            by_person,
            windows: partners
                .iter()
                .map(|p| (p.id.as_str(), p.attribution.window))
                .collect(),
            model,
        }
    }

    /// The arrival an order of `person` at `at` is credited to: among the
    /// person's arrivals at or before `at` whose window still covers `at`
    /// (`at ≤ ts + window`), the first or the last.
    pub fn credit(&self, person: &str, at: i64) -> Option<&'a Arrival> {
        let mut live = self.by_person.get(person)?.iter().copied().filter(|a| {
            a.ts <= at
                && self
                    .windows
                    .get(a.partner.as_str())
                    .is_some_and(|w| at <= a.ts + w)
        });
        match self.model {
            Model::FirstTouch => live.next(),
            Model::LastTouch => live.next_back(),
        }
    }

    /// Persons with an arrival through `partner` (whose orders may be its).
    pub fn persons_of(&self, partner: &str) -> Vec<&'a str> {
        self.by_person
            .iter()
            .filter(|(_, l)| l.iter().any(|a| a.partner == partner))
            .map(|(p, _)| *p)
            .collect()
    }

    /// `partner`'s arrivals in event time (each person's every arrival).
    pub fn arrivals_of(&self, partner: &str) -> Vec<&'a Arrival> {
        let mut v: Vec<&Arrival> = self
            .by_person
            .values()
            .flatten()
            .copied()
            .filter(|a| a.partner == partner)
            .collect();
        v.sort_by(|a, b| (a.ts, a.seq, &a.person).cmp(&(b.ts, b.seq, &b.person)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(id: &str, window: i64) -> Partner {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "identity": format!("wecom:{id}"),
            "attribution": {"window": window}, "commission": {"rate_bp": 1000}
        }))
        .unwrap()
    }

    fn arr(person: &str, partner: &str, ts: i64, device: u32) -> Arrival {
        Arrival {
            person: person.into(),
            partner: partner.into(),
            ts,
            device,
            seq: ts as u64,
        }
    }

    #[test]
    fn first_touch_wins_inside_its_window_and_lapses_at_the_exact_second() {
        let partners = [partner("a", 100), partner("b", 1000)];
        let arrivals = [arr("x", "a", 10, 0), arr("x", "b", 20, 0)];
        let at = Attribution::new(&arrivals, &partners, Model::FirstTouch);
        assert_eq!(at.credit("x", 5), None, "before any arrival");
        assert_eq!(at.credit("x", 15).unwrap().partner, "a");
        assert_eq!(at.credit("x", 110).unwrap().partner, "a", "ts + window");
        assert_eq!(at.credit("x", 111).unwrap().partner, "b", "a lapsed");
        assert_eq!(at.credit("x", 1021), None, "both lapsed");
        let last = Attribution::new(&arrivals, &partners, Model::LastTouch);
        assert_eq!(last.credit("x", 50).unwrap().partner, "b");
        assert_eq!(last.credit("x", 15).unwrap().partner, "a");
    }

    #[test]
    fn an_undefined_partner_attributes_nothing() {
        let partners = [partner("a", 100)];
        let arrivals = [arr("x", "gone", 10, 0)];
        let at = Attribution::new(&arrivals, &partners, Model::FirstTouch);
        assert_eq!(at.credit("x", 11), None);
    }

    #[test]
    fn self_referral_and_shared_devices_are_flagged() {
        let a = [
            arr("me", "a", 1, 7),
            arr("p1", "a", 2, 9),
            arr("p2", "a", 3, 9),
            arr("p3", "a", 4, 5),
            arr("p4", "a", 5, 0),
            arr("p5", "a", 6, 0),
        ];
        let refs: Vec<&Arrival> = a.iter().collect();
        let f = flags(&refs, Some("me"), &HashSet::from([5]));
        assert_eq!(f.get("me"), Some(&FraudFlag::SelfReferral));
        assert_eq!(f.get("p1"), None, "first on device 9");
        assert_eq!(f.get("p2"), Some(&FraudFlag::SharedDevice));
        assert_eq!(
            f.get("p3"),
            Some(&FraudFlag::SharedDevice),
            "the partner's device"
        );
        assert_eq!(f.get("p4"), None, "no device given is no evidence");
        assert_eq!(f.get("p5"), None);
    }
}
