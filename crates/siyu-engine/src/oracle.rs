//! The brute-force oracle: recomputes persons and segment memberships from
//! the full event list, with none of the engine's incremental machinery
//! (no union-find, no folds, no timers). Tests check the live engine
//! against it; it is slow on purpose and simple enough to trust.

use crate::engine::{Engine, RawEvent};
use crate::rfm::{RfmBasis, RfmSource, RfmThresholds};
use crate::segment::Expr;
use siyu_domain::{Event, EventType};
use std::collections::{BTreeMap, BTreeSet};

/// Persons as sets of identities, each keyed by its canonical (smallest) id.
pub fn persons(events: &[Event]) -> BTreeMap<String, BTreeSet<String>> {
    // Repeatedly merge sets joined by identify links until nothing changes.
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for e in events {
        let mut ids = vec![e.identity.as_str().to_string()];
        if let (EventType::Identify, Some(r)) = (e.event_type, &e.reference) {
            ids.push(r.as_str().to_string());
        }
        if let (EventType::ReferralSignup, Some(r)) = (e.event_type, &e.reference) {
            sets.push(BTreeSet::from([r.as_str().to_string()]));
        }
        sets.push(ids.into_iter().collect());
    }
    loop {
        let mut merged = false;
        let mut out: Vec<BTreeSet<String>> = Vec::new();
        for s in sets {
            match out.iter().position(|o| !o.is_disjoint(&s)) {
                Some(i) => {
                    out[i].extend(s);
                    merged = true;
                }
                None => out.push(s),
            }
        }
        sets = out;
        if !merged {
            break;
        }
    }
    sets.into_iter()
        .map(|s| (s.iter().next().cloned().unwrap_or_default(), s))
        .collect()
}

/// Members (canonical ids) of `expr` at `now`, recomputed from scratch: a
/// fresh engine per person, fed only that person's events, reading
/// `rfm_layer` against `rfm` (set once, before any event: no threshold
/// change to follow).
pub fn members(
    events: &[(u64, Event)],
    expr: &Expr,
    now: i64,
    rfm: Option<RfmThresholds>,
) -> BTreeSet<String> {
    let plain: Vec<Event> = events.iter().map(|(_, e)| e.clone()).collect();
    let mut out = BTreeSet::new();
    for (canonical, ids) in persons(&plain) {
        let mut one = Engine::new();
        one.set_rfm_basis(rfm.map(|thresholds| RfmBasis {
            thresholds,
            source: RfmSource::Setting,
        }));
        for (seq, e) in events {
            if ids.contains(e.identity.as_str()) {
                let applied = one.apply_raw(RawEvent::from_event(*seq, e));
                // An inbound message's intent, read from its properties
                // here as `Engine::apply` does (`apply_raw` reads none).
                if let Some(intent) = siyu_domain::intent::Intent::of_event(e) {
                    let ts = e.ts.clamp(0, u32::MAX as i64 - 1) as u32;
                    one.note_intent(applied.person, intent, ts);
                }
            }
        }
        // The person's identities that only appear as refs must still be
        // linked so the canonical id and identity count agree.
        let Some(slot) = ids.iter().find_map(|i| one.person_of(i)) else {
            continue;
        };
        one.advance_to(now);
        if one.matching(expr).contains(&slot) {
            out.insert(canonical);
        }
    }
    out
}
