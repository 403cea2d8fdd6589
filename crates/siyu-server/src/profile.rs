//! A person as the API shows them — identities and computed properties —
//! shared by the person routes and the conversation thread, so both show
//! one person the same way.

use serde::Serialize;
use serde_json::{Map, Value};
use siyu_domain::time::format_rfc3339;
use siyu_engine::{analytics, Engine, PersonId};
use std::collections::BTreeMap;

/// A person as the API shows them: identities and computed properties.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Profile {
    pub canonical_id: String,
    pub identities: Vec<String>,
    pub first_seen: Option<String>,
    pub first_channel: Option<String>,
    pub first_friend_at: Option<String>,
    pub last_event_at: Option<String>,
    pub events: u32,
    pub purchases: u32,
    pub gross_spend: i64,
    pub refunded: i64,
    /// More refunded than purchased (net spend below zero): a refund the
    /// purchases siyu knows do not cover, flagged rather than refused.
    pub refunds_exceed_purchases: bool,
    pub net_spend: i64,
    pub last_purchase_at: Option<String>,
    pub opted_out: bool,
    /// Null when the person has not purchased.
    pub rfm: Option<Rfm>,
    pub groups: Vec<String>,
    pub tags: Vec<String>,
    /// The brand's own traits: open, whatever identify events set.
    pub traits: Map<String, Value>,
    pub segments: Vec<String>,
    /// Each user-defined property by name; null where it has no value.
    pub properties: BTreeMap<String, Option<i64>>,
}

/// RFM scores, 1–5 each.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Rfm {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// The person in `slot` as the API shows them (None: no such person).
pub fn profile(engine: &Engine, slot: PersonId) -> Option<Profile> {
    let p = engine.person(slot)?;
    let ts = |t: u32| (t != siyu_engine::person::NO_TS).then(|| format_rfc3339(t as i64));
    let segs = engine.live_segments();
    let segments = segs
        .segments()
        .iter()
        .enumerate()
        .filter(|(i, _)| segs.is_member(*i as u32, slot))
        .map(|(_, s)| s.name.clone())
        .collect();
    let extra = p.extra.as_deref();
    let properties = engine
        .properties()
        .iter()
        .map(|d| (d.name.clone(), engine.property_value(slot, &d.name)))
        .collect();
    Some(Profile {
        canonical_id: engine.canonical_id(slot).to_string(),
        identities: engine.identities_of(slot),
        first_seen: ts(p.first_ts),
        first_channel: engine.channel_name(p.first_channel).map(str::to_string),
        first_friend_at: ts(p.first_friend_ts),
        last_event_at: (p.events > 0).then(|| format_rfc3339(p.last_event_ts as i64)),
        events: p.events,
        purchases: p.purchase_count(),
        gross_spend: p.gross_spend(),
        refunded: p.refunded(),
        refunds_exceed_purchases: p.refunded() > p.gross_spend(),
        net_spend: p.net_spend(),
        last_purchase_at: ts(p.last_purchase_ts()),
        opted_out: p.opted_out,
        rfm: analytics::rfm_scores(p, engine.now()).map(|(r, f, m)| Rfm { r, f, m }),
        groups: engine
            .groups_of(p)
            .into_iter()
            .map(str::to_string)
            .collect(),
        tags: extra.map(|e| e.tags().to_vec()).unwrap_or_default(),
        traits: extra.map(|e| e.traits().clone()).unwrap_or_default(),
        segments,
        properties,
    })
}
