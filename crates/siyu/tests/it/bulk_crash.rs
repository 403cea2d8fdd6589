//! A bulk `siyu import` (large enough that the store drops its secondary
//! indexes for the load) SIGKILLed midway: the store reopens with a prefix
//! of the file at dense offsets and its indexes built again, and importing
//! the whole file once more completes it with nothing stored twice.

use crate::{import, siyu, tempdir};
use siyu_store::{SqliteStore, Store, StoredEvent};
use std::process::Stdio;
use std::time::{Duration, Instant};

const EVENTS: u64 = 600_000;
const PERSONS: u64 = 7_000;

/// Every event stored, in offset order.
fn all_events(store: &mut dyn Store) -> Vec<StoredEvent> {
    let mut all = Vec::new();
    siyu_store::for_each_page(store, 0, |page| {
        all.extend(page);
        Ok::<(), siyu_store::StoreError>(())
    })
    .unwrap();
    all
}

/// How many events the timeline of `identity`'s person holds, read as the
/// server reads it: offsets from an engine rebuilt from the store, events
/// from the store by offset.
fn timeline_len(store: &mut dyn Store, identity: &str) -> usize {
    let engine = siyu_server::writer::rebuild(store, None, 0).unwrap();
    let slot = engine.person_of(identity).unwrap();
    let offsets = engine.event_offsets(slot).unwrap();
    let timeline = store.timeline(&offsets, None, 1_000).unwrap();
    assert_eq!(timeline.len(), offsets.len(), "every offset is stored");
    assert!(timeline
        .iter()
        .all(|e| e.event.identity.as_str() == identity));
    timeline.len()
}

/// The events are the file's first `events.len()` lines at offsets 1, 2 …
fn assert_prefix(events: &[StoredEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.offset, i as u64 + 1, "offsets are dense");
        assert_eq!(e.event.id.as_deref(), Some(format!("e{i}").as_str()));
    }
}

#[test]
fn sigkilled_bulk_import_leaves_a_prefix_and_a_reimport_completes_it() {
    let dir = tempdir("bulk-crash");
    let file = dir.join("events.jsonl");
    let mut text = String::new();
    for i in 0..EVENTS {
        text += &format!(
            "{{\"id\":\"e{i}\",\"ts\":{},\"identity\":\"douyin:u{}\",\"type\":\"touch\"}}\n",
            1_790_000_000 + i,
            i % PERSONS
        );
    }
    // Large enough for `siyu import` to take the bulk path (≥ 100 000 events
    // estimated from the size).
    assert!(text.len() as u64 / 100 >= 100_000);
    std::fs::write(&file, text).unwrap();
    let data = dir.join("data");

    let mut importing = siyu()
        .args(["import", "--quiet", "--data-dir"])
        .arg(&data)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches are committed: watched through the size
    // of the write-ahead log, since opening the store would wait for the
    // write lock, which the import takes back after every batch. A batch's
    // pages reach the WAL when it commits (the cache holds them until then).
    let wal = data.join("siyu.db-wal");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 12 << 20 {
        if let Some(status) = importing.try_wait().unwrap() {
            panic!("the import ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "the import committed nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    importing.kill().unwrap();
    importing.wait().unwrap();

    let mut store = SqliteStore::open(&data).unwrap();
    let events = all_events(&mut store);
    let kept = events.len() as u64;
    assert!(kept > 0 && kept < EVENTS, "killed midway: {kept} events");
    assert_eq!(store.last_offset().unwrap(), kept);
    assert_prefix(&events);
    assert!(
        !data.join("engine.snapshot").exists(),
        "no snapshot of an unfinished import"
    );
    let expected = (0..kept).filter(|i| i % PERSONS == 3).count();
    assert_eq!(timeline_len(&mut store, "douyin:u3"), expected);
    drop(store);

    let out = import(&data, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "accepted {}, duplicates {kept}, rejected 0",
            EVENTS - kept
        )),
        "{stdout}"
    );
    let mut store = SqliteStore::open(&data).unwrap();
    let events = all_events(&mut store);
    assert_eq!(events.len() as u64, EVENTS);
    assert_prefix(&events);
    let expected = (0..EVENTS).filter(|i| i % PERSONS == 3).count();
    assert_eq!(timeline_len(&mut store, "douyin:u3"), expected);
    std::fs::remove_dir_all(&dir).ok();
}
