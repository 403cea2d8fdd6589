//! An engine made [`Engine::for_log`] lists every person's events by log
//! offset exactly as a scan of the log would find them (the store reads
//! timelines by these offsets), across merges, gaps in the offsets, and a
//! snapshot round trip.

use crate::snapshot::events;
use siyu_domain::Event;
use siyu_engine::Engine;

/// Brute force: the offsets of the events whose identity is one of the
/// person's, newest first.
fn scanned(e: &Engine, log: &[(u64, Event)], slot: u32) -> Vec<u64> {
    let ids = e.identities_of(slot);
    let mut v: Vec<u64> = log
        .iter()
        .filter(|(_, ev)| ids.iter().any(|i| i == ev.identity.as_str()))
        .map(|(o, _)| *o)
        .collect();
    v.reverse();
    v
}

fn check_all(e: &Engine, log: &[(u64, Event)]) -> usize {
    let mut checked = 0;
    for (slot, _) in e.persons() {
        assert_eq!(
            e.event_offsets(slot).unwrap(),
            scanned(e, log, slot),
            "{}",
            e.canonical_id(slot)
        );
        checked += 1;
    }
    checked
}

#[test]
fn offsets_equal_a_scan_of_the_log_across_merges_and_gaps() {
    let mut engine = Engine::for_log();
    let mut log = Vec::new();
    // Offsets with gaps (erased or deduplicated events leave holes).
    let mut offset = 0;
    for (i, ev) in events(4000).into_iter().enumerate() {
        offset += if i % 97 == 0 { 5 } else { 1 };
        engine.apply(offset, &ev);
        log.push((offset, ev));
    }
    let persons = check_all(&engine, &log);
    assert!(persons > 100, "{persons} persons");
    let merged = engine
        .persons()
        .filter(|(slot, _)| engine.identities_of(*slot).len() > 1)
        .count();
    assert!(merged > 10, "merges must be exercised ({merged})");

    let (restored, at) = Engine::from_snapshot(&engine.to_snapshot(offset)).unwrap();
    assert_eq!(at, offset);
    assert!(restored.keeps_log_offsets());
    check_all(&restored, &log);

    // The restored engine keeps indexing as the log grows.
    let mut restored = restored;
    for ev in events(500) {
        offset += 1;
        restored.apply(offset, &ev);
        log.push((offset, ev));
    }
    check_all(&restored, &log);
}

#[test]
fn engines_over_a_file_keep_no_offsets() {
    let mut engine = Engine::new();
    for (i, ev) in events(50).iter().enumerate() {
        engine.apply(i as u64 + 1, ev);
    }
    let (slot, _) = engine.persons().next().unwrap();
    assert_eq!(engine.event_offsets(slot), None);
    let (restored, _) = Engine::from_snapshot(&engine.to_snapshot(50)).unwrap();
    assert!(!restored.keeps_log_offsets());
}

#[test]
fn compacting_slots_keeps_every_person_in_order_and_every_answer() {
    let mut engine = Engine::for_log();
    let mut log = Vec::new();
    for (i, ev) in events(4000).into_iter().enumerate() {
        engine.apply(i as u64 + 1, &ev);
        log.push((i as u64 + 1, ev));
    }
    // Each person by canonical id, with their identities and state.
    let persons = |engine: &Engine| -> Vec<(String, Vec<String>, siyu_engine::Person)> {
        engine
            .persons()
            .map(|(slot, p)| {
                (
                    engine.canonical_id(slot).to_string(),
                    engine.identities_of(slot),
                    p.clone(),
                )
            })
            .collect()
    };
    let before = persons(&engine);
    let dropped = engine.compact_slots();
    assert!(dropped > 10, "merges must leave dead slots ({dropped})");
    let after = persons(&engine);
    assert_eq!(before, after);
    // Every identity resolves to its own person's new slot.
    for (slot, _) in engine.persons() {
        for id in engine.identities_of(slot) {
            assert_eq!(engine.person_of(&id), Some(slot));
        }
    }
    check_all(&engine, &log);
    assert_eq!(engine.compact_slots(), 0);
    // Applying more events after a compaction still works (new slots
    // append after the compacted ones).
    for (i, ev) in events(200).into_iter().enumerate() {
        let offset = 4001 + i as u64;
        engine.apply(offset, &ev);
        log.push((offset, ev));
    }
    check_all(&engine, &log);
}
