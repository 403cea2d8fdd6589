//! Message attribution: a purchase within a window after a person read a
//! journey's message is credited to that message (its key), its template
//! and its journey. One pass over the log, persons resolved through the
//! engine's identity graph as it stands (a purchase on Taobao counts for
//! a read on WeCom when both identities are stitched).
//!
//! A read names its message by `properties.key` (the outbox key the
//! connector sent as `Idempotency-Key`) when the channel reports it;
//! otherwise it is credited to the person's latest send before the read.
//! Each purchase is credited once, to the latest qualifying read.
//!
//! Pure over the seams: the log is read through `&mut dyn Store`, persons
//! are resolved through [`Persons`] — the engine itself, or the copy of its
//! identity table (`Engine::identity_index`) the server takes so that no
//! engine lock is held while the whole log is read.

use serde::Serialize;
use siyu_domain::EventType;
use siyu_engine::scan::IdentityIndex;
use siyu_engine::{Engine, PersonId};
use siyu_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// Who holds an identity, as the pass resolves it.
pub trait Persons {
    fn person_of(&self, identity: &str) -> Option<PersonId>;
}

impl Persons for Engine {
    fn person_of(&self, identity: &str) -> Option<PersonId> {
        Engine::person_of(self, identity)
    }
}

/// The engine's identity table as copied in one short read
/// (`Engine::identity_index`): a long pass resolves through it.
impl Persons for IdentityIndex {
    fn person_of(&self, identity: &str) -> Option<PersonId> {
        IdentityIndex::person_of(self, identity)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct TemplateConversions {
    pub sends: u64,
    pub reads: u64,
    pub conversions: u64,
    /// Cents.
    pub revenue: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct JourneyConversions {
    pub sends: u64,
    pub reads: u64,
    /// Purchases credited to the journey.
    pub conversions: u64,
    /// Cents.
    pub revenue: i64,
    pub by_template: BTreeMap<String, TemplateConversions>,
}

/// Attribution for one journey over the whole log: `window` is the
/// seconds after a read within which a purchase is credited to it.
pub fn journey_conversions(
    store: &mut dyn Store,
    persons: &dyn Persons,
    journey: &str,
    window: i64,
) -> Result<JourneyConversions, StoreError> {
    let mut out = JourneyConversions::default();
    // key → template, per person: sends (ts, key) and reads (ts, template).
    let mut template_of: HashMap<String, String> = HashMap::new();
    let mut sends: HashMap<PersonId, Vec<(i64, String)>> = HashMap::new();
    let mut reads: HashMap<PersonId, Vec<(i64, String)>> = HashMap::new();
    let mut purchases: Vec<(PersonId, i64, i64)> = Vec::new();
    siyu_store::for_each_page(store, 0, |page| -> Result<(), StoreError> {
        for s in page {
            let ev = &s.event;
            let prop = |k: &str| {
                ev.properties
                    .as_ref()
                    .and_then(|p| p.get(k))
                    .and_then(|v| v.as_str())
            };
            match ev.event_type {
                EventType::MessageSent if prop("journey") == Some(journey) => {
                    let (Some(key), Some(slot)) =
                        (prop("key"), persons.person_of(ev.identity.as_str()))
                    else {
                        continue;
                    };
                    let template = prop("template").unwrap_or("").to_string();
                    out.sends += 1;
                    out.by_template.entry(template.clone()).or_default().sends += 1;
                    template_of.insert(key.to_string(), template);
                    sends
                        .entry(slot)
                        .or_default()
                        .push((ev.ts, key.to_string()));
                }
                EventType::MessageRead => {
                    let Some(slot) = persons.person_of(ev.identity.as_str()) else {
                        continue;
                    };
                    let key = match prop("key") {
                        Some(k) => template_of.get(k).map(|_| k.to_string()),
                        None => sends
                            .get(&slot)
                            .and_then(|v| v.iter().rev().find(|(t, _)| *t <= ev.ts))
                            .map(|(_, k)| k.clone()),
                    };
                    if let Some(key) = key {
                        let template = template_of.get(&key).cloned().unwrap_or_default();
                        out.reads += 1;
                        out.by_template.entry(template.clone()).or_default().reads += 1;
                        reads.entry(slot).or_default().push((ev.ts, template));
                    }
                }
                EventType::Purchase => {
                    if let Some(slot) = persons.person_of(ev.identity.as_str()) {
                        purchases.push((slot, ev.ts, ev.amount));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    for (slot, ts, amount) in purchases {
        let Some(rs) = reads.get(&slot) else { continue };
        // The latest read at or before the purchase, within the window.
        let credited = rs
            .iter()
            .filter(|(t, _)| *t <= ts && ts - *t <= window)
            .max_by_key(|(t, _)| *t);
        if let Some((_, template)) = credited {
            out.conversions += 1;
            out.revenue += amount;
            let t = out.by_template.entry(template.clone()).or_default();
            t.conversions += 1;
            t.revenue += amount;
        }
    }
    Ok(out)
}
