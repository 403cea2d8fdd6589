//! Bulk loading of event files (JSONL or CSV) straight into the engine:
//! a reader thread cuts the file into newline-aligned chunks, parser
//! threads turn chunks into compact records (validating every line and
//! hashing identities), and the calling thread applies the records to the
//! engine in file order. Parsing is pure CPU and runs in parallel; only
//! the identity graph and the folds are sequential.

use anyhow::{Context, Result};
use siyu_domain::{
    parse_csv_borrowed, parse_csv_header, parse_json_event, parse_jsonl_fast, CsvColumns,
    EventType, LineEvent, WireError,
};
use siyu_engine::identity::identity_hash;
use siyu_engine::{Engine, RawEvent};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

const CHUNK: usize = 4 << 20;

/// A parsed line: strings as byte ranges into its chunk.
struct Rec {
    /// Line index within the chunk.
    line: u32,
    seq: Option<u64>,
    ts: i64,
    identity: (u32, u32),
    identity_hash: u64,
    event_type: EventType,
    channel: (u32, u32),
    amount: i64,
    reference: Option<(u32, u32)>,
    group: Option<(u32, u32)>,
}

/// A rejected line.
#[derive(Debug, Clone)]
pub struct LineError {
    pub line: u64,
    pub error: WireError,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejected lines (at most 20).
    pub errors: Vec<LineError>,
    /// Wall time spent by parser threads, summed.
    pub parse_busy: Duration,
    /// Time the applying thread spent in the engine.
    pub apply_busy: Duration,
    pub wall: Duration,
}

struct Parsed {
    chunk: Vec<u8>,
    recs: Vec<Rec>,
    lines: u64,
    errors: Vec<(u64, WireError)>,
    busy: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Csv,
}

fn span(base: &[u8], s: &str) -> (u32, u32) {
    let start = s.as_ptr() as usize - base.as_ptr() as usize;
    (start as u32, s.len() as u32)
}

fn to_rec(text: &[u8], e: &LineEvent<'_>, line: u64) -> Rec {
    Rec {
        line: line as u32,
        seq: e.seq,
        ts: e.ts,
        identity: span(text, e.identity),
        identity_hash: identity_hash(e.identity),
        event_type: e.event_type,
        channel: span(text, e.channel),
        amount: e.amount,
        reference: e.reference.map(|r| span(text, r)),
        group: e.group.map(|g| span(text, g)),
    }
}

/// Parses one chunk. Lines the fast JSONL path declines go through the
/// full parser; their strings are appended to the chunk so every record
/// can still point into it.
fn parse_chunk(mut chunk: Vec<u8>, format: Format, cols: &CsvColumns) -> Parsed {
    let started = Instant::now();
    let mut recs = Vec::with_capacity(chunk.len() / 100);
    let mut errors = Vec::new();
    let mut lines = 0u64;
    let mut slow: Vec<(u64, siyu_domain::Event)> = Vec::new();
    {
        let bytes: &[u8] = &chunk;
        // One UTF-8 check per chunk; only a chunk that fails is checked line by line.
        let text = std::str::from_utf8(bytes).ok();
        let mut line_start = 0usize;
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        for end in ends {
            if line_start >= bytes.len() {
                break;
            }
            let range = line_start..end;
            line_start = end + 1;
            let idx = lines;
            lines += 1;
            let decoded = match text {
                // `\n` is ASCII, so line ends are char boundaries.
                Some(t) => Ok(&t[range]),
                None => std::str::from_utf8(&bytes[range]),
            };
            let line = match decoded {
                Ok(l) => l.strip_suffix('\r').unwrap_or(l),
                Err(e) => {
                    let message = format!(
                        "line is not valid UTF-8 (byte {}); save the file as UTF-8",
                        e.valid_up_to() + 1
                    );
                    errors.push((
                        idx,
                        WireError {
                            field: "event",
                            message,
                        },
                    ));
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = match format {
                Format::Csv => Some(parse_csv_borrowed(cols, line)),
                Format::Jsonl => parse_jsonl_fast(line),
            };
            match parsed {
                Some(Ok(e)) => recs.push(to_rec(bytes, &e, idx)),
                Some(Err(err)) => errors.push((idx, err)),
                None => match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(v) => match parse_json_event(&v) {
                        Ok(e) => {
                            slow.push((recs.len() as u64, e));
                            // Placeholder, replaced below once the strings live in the chunk.
                            recs.push(Rec {
                                line: idx as u32,
                                seq: None,
                                ts: 0,
                                identity: (0, 0),
                                identity_hash: 0,
                                event_type: EventType::Touch,
                                channel: (0, 0),
                                amount: 0,
                                reference: None,
                                group: None,
                            });
                        }
                        Err(err) => errors.push((idx, err)),
                    },
                    Err(err) => errors.push((
                        idx,
                        WireError {
                            field: "event",
                            message: format!("malformed JSON at column {}: {err}", err.column()),
                        },
                    )),
                },
            }
        }
    }
    for (i, e) in slow {
        let mut push = |s: &str| {
            let start = chunk.len() as u32;
            chunk.extend_from_slice(s.as_bytes());
            (start, s.len() as u32)
        };
        let identity = push(e.identity.as_str());
        let channel = push(e.channel.as_str());
        let reference = e.reference.as_ref().map(|r| push(r.as_str()));
        let group = e.group.as_deref().map(&mut push);
        let r = &mut recs[i as usize];
        r.seq = e.seq;
        r.ts = e.ts;
        r.identity = identity;
        r.identity_hash = identity_hash(e.identity.as_str());
        r.event_type = e.event_type;
        r.channel = channel;
        r.amount = e.amount;
        r.reference = reference;
        r.group = group;
    }
    Parsed {
        chunk,
        recs,
        lines,
        errors,
        busy: started.elapsed(),
    }
}

/// Reads `path` in newline-aligned chunks and sends them round-robin.
/// Buffers come back through `recycled` once applied, so the load reuses a
/// handful of buffers instead of faulting in fresh pages for every chunk.
fn read_chunks(
    path: &Path,
    mut skip_header: bool,
    senders: Vec<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
) -> Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut carry: Vec<u8> = Vec::new();
    let mut n = 0usize;
    loop {
        let mut buf = recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + 64 * 1024));
        buf.clear();
        buf.append(&mut carry);
        let before = buf.len();
        (&mut f)
            .take(CHUNK as u64)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        let eof = buf.len() == before;
        if !eof {
            if let Some(p) = memchr::memrchr(b'\n', &buf) {
                carry.extend_from_slice(&buf[p + 1..]);
                buf.truncate(p + 1);
            }
        }
        if skip_header {
            skip_header = false;
            let p = memchr::memchr(b'\n', &buf).map_or(buf.len(), |p| p + 1);
            buf.drain(..p);
        }
        if buf.is_empty() && eof {
            return Ok(());
        }
        if senders[n % senders.len()].send(buf).is_err() {
            return Ok(());
        }
        n += 1;
        if eof {
            return Ok(());
        }
    }
}

/// Loads an events file (`.jsonl`/`.ndjson` or `.csv`) into the engine.
/// Lines without a `seq` get their 0-based line number.
pub fn load_file(engine: &mut Engine, path: &Path, threads: usize) -> Result<LoadStats> {
    let started = Instant::now();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let (format, cols) = if is_csv {
        let mut header = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            ),
            &mut header,
        )?;
        let cols = parse_csv_header(header.trim_end())
            .map_err(|e| anyhow::anyhow!("{}:1: {e}", path.display()))?;
        (Format::Csv, cols)
    } else {
        (Format::Jsonl, CsvColumns::default())
    };
    let threads = threads.max(1);
    let mut to_parser = Vec::new();
    let mut from_parser: Vec<Receiver<Parsed>> = Vec::new();
    let mut stats = LoadStats::default();
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Vec<u8>>(2);
            let (ptx, prx) = sync_channel::<Parsed>(2);
            to_parser.push(tx);
            from_parser.push(prx);
            let cols = cols.clone();
            scope.spawn(move || {
                for chunk in rx {
                    if ptx.send(parse_chunk(chunk, format, &cols)).is_err() {
                        break;
                    }
                }
            });
        }
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(threads * 4 + 4);
        let reader = scope.spawn(move || read_chunks(path, is_csv, to_parser, recycle_rx));
        let mut line_base = if is_csv { 1 } else { 0 };
        let mut i = 0usize;
        while let Ok(parsed) = from_parser[i % threads].recv() {
            i += 1;
            let applying = Instant::now();
            let text = &parsed.chunk;
            let s = |(a, l): (u32, u32)| {
                // Spans were cut from a &str at char boundaries.
                std::str::from_utf8(&text[a as usize..(a + l) as usize]).unwrap_or("")
            };
            // Lines without a `seq` are ordered by their 0-based data line number.
            let data_line_base = line_base - if is_csv { 1 } else { 0 };
            let batch: Vec<RawEvent<'_>> = parsed
                .recs
                .iter()
                .map(|r| RawEvent {
                    seq: r.seq.unwrap_or(data_line_base + r.line as u64),
                    ts: r.ts,
                    identity: s(r.identity),
                    identity_hash: Some(r.identity_hash),
                    event_type: r.event_type,
                    channel: s(r.channel),
                    amount: r.amount,
                    reference: r.reference.map(s),
                    group: r.group.map(s),
                })
                .collect();
            engine.apply_batch(&batch);
            drop(batch);
            stats.apply_busy += applying.elapsed();
            let _ = recycle_tx.try_send(parsed.chunk);
            stats.parse_busy += parsed.busy;
            stats.accepted += parsed.recs.len() as u64;
            stats.rejected += parsed.errors.len() as u64;
            for (idx, error) in parsed.errors {
                if stats.errors.len() < 20 {
                    stats.errors.push(LineError {
                        line: line_base + idx + 1,
                        error,
                    });
                }
            }
            stats.lines += parsed.lines;
            line_base += parsed.lines;
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        Ok(())
    })?;
    stats.wall = started.elapsed();
    Ok(stats)
}
