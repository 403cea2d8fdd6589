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
//! "Before" and "latest" are in event time (`ts`, ties broken by
//! `siyu_engine::engine::tie_break`), never in log order: the pass collects
//! the journey's sends, every read and every purchase, and matches them
//! after the whole log is read, so orders imported after the reads they
//! followed, or reads stored before their sends, count the same.
//!
//! Pure over the seams: the log is read through `&mut dyn Store`, persons
//! are resolved through [`Persons`] — the engine itself, or the copy of its
//! identity table (`Engine::identity_index`) the server takes so that no
//! engine lock is held while the whole log is read.

use serde::Serialize;
use siyu_domain::EventType;
use siyu_engine::engine::tie_break;
use siyu_engine::scan::IdentityIndex;
use siyu_engine::{Engine, PersonId};
use siyu_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};

/// An event's place in event time: `(ts, tie_break)`.
type EventTime = (i64, u64);

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

#[derive(Debug, Default, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TemplateConversions {
    pub sends: u64,
    pub reads: u64,
    pub conversions: u64,
    /// Cents.
    pub revenue: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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
    // key → template; per person the journey's sends (event time, key);
    // every read (person, event time, the key it names) and purchase.
    let mut template_of: HashMap<String, String> = HashMap::new();
    let mut sends: HashMap<PersonId, Vec<(EventTime, String)>> = HashMap::new();
    let mut reads: Vec<(PersonId, EventTime, Option<String>)> = Vec::new();
    let mut purchases: Vec<(PersonId, EventTime, i64)> = Vec::new();
    siyu_store::for_each_page(store, 0, |page| -> Result<(), StoreError> {
        for s in page {
            let ev = &s.event;
            let prop = |k: &str| {
                ev.properties
                    .as_ref()
                    .and_then(|p| p.get(k))
                    .and_then(|v| v.as_str())
            };
            let at = (ev.ts, tie_break(ev.id.as_deref(), s.offset));
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
                    sends.entry(slot).or_default().push((at, key.to_string()));
                }
                EventType::MessageRead => {
                    if let Some(slot) = persons.person_of(ev.identity.as_str()) {
                        reads.push((slot, at, prop("key").map(str::to_string)));
                    }
                }
                EventType::Purchase => {
                    if let Some(slot) = persons.person_of(ev.identity.as_str()) {
                        purchases.push((slot, at, ev.amount));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    for v in sends.values_mut() {
        v.sort_unstable();
    }
    // Each read's message: the key it names, if this journey sent it, else
    // the person's latest send at or before it.
    let mut credited_reads: HashMap<PersonId, Vec<(EventTime, String)>> = HashMap::new();
    for (slot, at, named) in reads {
        let key = match named {
            Some(k) => template_of.contains_key(&k).then_some(k),
            None => sends.get(&slot).and_then(|v| {
                let before = v.partition_point(|(t, _)| t.0 <= at.0);
                v[..before].last().map(|(_, k)| k.clone())
            }),
        };
        let Some(key) = key else { continue };
        let template = template_of.get(&key).cloned().unwrap_or_default();
        out.reads += 1;
        out.by_template.entry(template.clone()).or_default().reads += 1;
        credited_reads.entry(slot).or_default().push((at, template));
    }
    for (slot, at, amount) in purchases {
        let Some(rs) = credited_reads.get(&slot) else {
            continue;
        };
        // The latest read at or before the purchase, within the window.
        let credited = rs
            .iter()
            .filter(|(t, _)| t.0 <= at.0 && at.0 - t.0 <= window)
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
