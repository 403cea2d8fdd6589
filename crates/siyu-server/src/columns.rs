//! Event columns: the five fields of every event that the full-log
//! analyses in event time read (funnel steps, attribution), 28 bytes per
//! event in a file, so such a pass reads the file instead of the log.
//!
//! Why: a pass over the log reads every row of the store and parses its
//! payload (JSON properties and traits) to use five fields of it: 25 s
//! and a 6.2 GB peak for 8M events. The file is read sequentially at the
//! speed of memory, and the pass keeps only its per-person state and a
//! 4-byte-per-identity copy of who is whom.
//!
//! What a record holds: the engine's identity id (not the identity: ids
//! are dense numbers in order of first appearance), the time in engine
//! seconds, the tie-break among events of the same second (the event id's
//! hash, else the offset: `siyu_engine::tie_break`), the amount, the
//! channel (a number in this file's own list) and the event type. The
//! person of an identity id is looked up when a pass starts, so merges
//! made after an event was recorded count, as they do when the log is read.
//!
//! Lifetime: the file is created and unlinked at once, so it is private
//! to this process and gone when it ends (nothing survives a crash, and no
//! other node on the same data dir sees it). It is filled from the store
//! up to the engine's applied offset when a pass starts (the first pass
//! after a start reads the whole log once, narrowly: `Store::scan_narrow`),
//! then only the events since. Identity ids change only when the engine is
//! rebuilt (an erasure, a new computed property): the writer then calls
//! [`Columns::engine_replaced`], which empties the file, so nothing erased
//! stays in it, and the next pass fills it again.

use crate::error::ApiError;
use crate::request::read_engine;
use crate::AppState;
use siyu_domain::EventType;
use siyu_engine::scan::EventTimePass;
use siyu_engine::{PersonId, RawEvent};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes per event.
const RECORD: usize = 28;
/// Rows read from the store per step while filling (the reader connection
/// is held for one step: ~10 ms on a quiet machine, ~90 ms under
/// sustained appends; the engine's read lock only for the identity
/// lookups after it).
const FILL_PAGE: usize = 20_000;
/// Records read per step of a pass.
const READ_RECORDS: usize = 32_768;

/// The column file of one workspace (see the module docs).
pub struct Columns {
    dir: PathBuf,
    /// Bumped whenever the engine is replaced (its identity ids change).
    generation: AtomicU64,
    file: Mutex<State>,
}

struct State {
    file: Option<File>,
    /// The engine generation the records were made with.
    generation: u64,
    /// The log offset the records cover up to.
    head: u64,
    records: u64,
    channels: Vec<String>,
    channel_ids: HashMap<String, u16>,
}

impl State {
    fn empty(generation: u64) -> State {
        State {
            file: None,
            generation,
            head: 0,
            records: 0,
            channels: Vec::new(),
            channel_ids: HashMap::new(),
        }
    }

    /// Forgets every record (the file is truncated: its blocks go).
    fn reset(&mut self, generation: u64) {
        if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
        let file = self.file.take();
        *self = State::empty(generation);
        self.file = file;
    }
}

/// A record, encoded little-endian.
struct Record {
    identity: u32,
    ts: u32,
    tie: u64,
    amount: i64,
    channel: u16,
    event_type: u8,
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.identity.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.tie.to_le_bytes());
        out.extend_from_slice(&self.amount.to_le_bytes());
        out.extend_from_slice(&self.channel.to_le_bytes());
        out.push(self.event_type);
        out.push(0);
    }

    fn decode(b: &[u8]) -> Record {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Record {
            identity: u32_at(0),
            ts: u32_at(4),
            tie: u64_at(8),
            amount: u64_at(16) as i64,
            channel: u16::from_le_bytes([b[24], b[25]]),
            event_type: b[26],
        }
    }
}

impl Columns {
    pub fn new(dir: &Path) -> Arc<Columns> {
        Arc::new(Columns {
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(0),
            file: Mutex::new(State::empty(0)),
        })
    }

    /// The engine was (or is about to be) replaced: its identity ids
    /// change. The records are dropped on another thread (a pass may hold
    /// the file; the writer does not wait for it).
    pub fn engine_replaced(self: &Arc<Self>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let columns = self.clone();
        let _ = std::thread::Builder::new()
            .name("siyu-columns-reset".into())
            .spawn(move || {
                let mut st = columns.file.lock().unwrap_or_else(|e| e.into_inner());
                if st.generation != generation {
                    st.reset(generation);
                }
            });
    }

    /// Bytes on disk (records × 28).
    pub fn bytes(&self) -> u64 {
        self.file.lock().map(|st| st.records).unwrap_or(0) * RECORD as u64
    }

    fn open(&self) -> std::io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!(
            "event-columns-{}-{:x}.tmp",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }

    /// Brings the records up to the engine's applied offset.
    fn fill(&self, state: &AppState, st: &mut State) -> Result<(), ApiError> {
        while self.fill_step(state, st)? {}
        Ok(())
    }

    /// Adds one page of records ([`FILL_PAGE`] events); whether the
    /// engine's applied offset was not reached yet.
    fn fill_step(&self, state: &AppState, st: &mut State) -> Result<bool, ApiError> {
        let io = |what: &str, e: std::io::Error| {
            ApiError::Internal(format!("event columns: {what}: {e}"))
        };
        if st.file.is_none() {
            st.file = Some(self.open().map_err(|e| io("creating the file", e))?);
        }
        let (generation, target) = {
            let engine = read_engine(state);
            let target = engine.last_log_offset().unwrap_or(0);
            (self.generation.load(Ordering::SeqCst), target)
        };
        if st.generation != generation {
            st.reset(generation);
        }
        if st.head >= target {
            return Ok(false);
        }
        // The page is read from the store without the engine: under
        // sustained appends a 20,000-event scan took ~90 ms, and the
        // writer's next apply waited that long for its write lock. Only
        // the identities are looked up under the read lock, after.
        let mut identities = String::new();
        let mut page: Vec<(std::ops::Range<usize>, Record)> = Vec::with_capacity(FILL_PAGE);
        let last = {
            let mut reader = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            reader.scan_narrow(st.head, target, FILL_PAGE, &mut |e| {
                // Not a type the engine knows: a log pass skips it too.
                let Some(event_type) = EventType::parse(e.event_type) else {
                    return;
                };
                let channel = match st.channel_ids.get(e.channel) {
                    Some(&c) => c,
                    None if st.channels.len() < u16::MAX as usize => {
                        let c = st.channels.len() as u16;
                        st.channels.push(e.channel.to_string());
                        st.channel_ids.insert(e.channel.to_string(), c);
                        c
                    }
                    // More channels than the engine numbers: skipped.
                    None => return,
                };
                let from = identities.len();
                identities.push_str(e.identity);
                let record = Record {
                    identity: 0,
                    ts: e.ts.clamp(0, u32::MAX as i64 - 1) as u32,
                    tie: siyu_engine::engine::tie_break(e.id, e.offset),
                    amount: e.amount,
                    channel,
                    event_type: event_type as u8,
                };
                page.push((from..identities.len(), record));
            })?
        };
        let mut out = Vec::with_capacity(page.len() * RECORD);
        let mut added = 0u64;
        {
            let engine = read_engine(state);
            // Replaced while the page was read: its ids are another
            // engine's; the next step starts over.
            if self.generation.load(Ordering::SeqCst) != generation {
                return Ok(true);
            }
            for (span, mut record) in page {
                // Not in the engine (erased since): a log pass skips it too.
                let Some(identity) = engine.identity_id(&identities[span]) else {
                    continue;
                };
                record.identity = identity;
                record.encode(&mut out);
                added += 1;
            }
        }
        let Some(file) = st.file.as_mut() else {
            return Ok(false);
        };
        file.seek(SeekFrom::Start(st.records * RECORD as u64))
            .and_then(|_| file.write_all(&out))
            .map_err(|e| io("writing", e))?;
        st.records += added;
        st.head = last.unwrap_or(target);
        Ok(true)
    }

    /// Fills the columns once after a start, on its own thread, a page at
    /// a time (the first pass then reads only what came since), so no
    /// request pays for reading the whole log.
    pub fn spawn_fill(state: &AppState) {
        let app = Arc::downgrade(&state.0);
        let _ = std::thread::Builder::new()
            .name("siyu-columns".into())
            .spawn(move || loop {
                let Some(inner) = app.upgrade() else { break };
                let state = AppState(inner);
                let columns = state.0.columns.clone();
                let mut st = columns.file.lock().unwrap_or_else(|e| e.into_inner());
                match columns.fill_step(&state, &mut st) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "filling the event columns failed");
                        break;
                    }
                }
            });
    }

    /// Runs `pass` over every event up to the engine's applied offset when
    /// it starts, in log order, each with its person (twice if the pass
    /// needs it: `EventTimePass`). Passes run one at a time.
    pub fn pass_in_event_time(
        &self,
        state: &AppState,
        pass: &mut impl EventTimePass,
    ) -> Result<(), ApiError> {
        let mut st = self.file.lock().unwrap_or_else(|e| e.into_inner());
        self.fill(state, &mut st)?;
        let persons = read_engine(state).person_of_each_identity();
        self.read(&st, &persons, &mut |p, e| pass.feed(p, e))?;
        if pass.replay_needed() {
            self.read(&st, &persons, &mut |p, e| pass.replay(p, e))?;
        }
        Ok(())
    }

    fn read(
        &self,
        st: &State,
        persons: &[PersonId],
        feed: &mut dyn FnMut(PersonId, &RawEvent<'_>),
    ) -> Result<(), ApiError> {
        let Some(file) = &st.file else {
            return Ok(());
        };
        let io = |e: std::io::Error| ApiError::Internal(format!("event columns: reading: {e}"));
        let mut file =
            BufReader::with_capacity(READ_RECORDS * RECORD, file.try_clone().map_err(io)?);
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut buf = vec![0u8; READ_RECORDS * RECORD];
        let mut left = st.records;
        while left > 0 {
            let n = left.min(READ_RECORDS as u64) as usize;
            file.read_exact(&mut buf[..n * RECORD]).map_err(io)?;
            left -= n as u64;
            for b in buf[..n * RECORD].chunks_exact(RECORD) {
                let r = Record::decode(b);
                let (Some(&person), Some(channel), Some(&event_type)) = (
                    persons.get(r.identity as usize),
                    st.channels.get(r.channel as usize),
                    EventType::ALL.get(r.event_type as usize),
                ) else {
                    continue;
                };
                let e = RawEvent {
                    tie: Some(r.tie),
                    ..RawEvent::bare(0, r.ts as i64, "", event_type, channel, r.amount)
                };
                feed(person, &e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let mut out = Vec::new();
        Record {
            identity: 7,
            ts: 1_700_000_000,
            tie: (1 << 63) | 42,
            amount: -12_345_678_901,
            channel: 513,
            event_type: EventType::Refund as u8,
        }
        .encode(&mut out);
        assert_eq!(out.len(), RECORD);
        let r = Record::decode(&out);
        assert_eq!(
            (r.identity, r.ts, r.tie, r.amount, r.channel, r.event_type),
            (7, 1_700_000_000, (1 << 63) | 42, -12_345_678_901, 513, 10)
        );
        // Types are stored as their number and read back through ALL.
        for (i, t) in EventType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
    }
}
