//! Bulk reading of event files (JSONL or CSV): a reader thread cuts the
//! file into newline-aligned chunks, parser threads validate every line and
//! turn chunks into compact records (strings stay in the chunk, identities
//! are pre-hashed), and the calling thread consumes chunks in file order —
//! straight into the engine (`bench`) or into the store (`import`).
//! Parsing is pure CPU and runs in parallel; only the consumer is sequential.
//! A chunk is handed over by value (the importer shares it between its
//! store and engine threads) and gives its buffers back to the reader when
//! dropped.

use anyhow::{Context, Result};
use siyu_domain::{
    parse_csv_borrowed, parse_csv_header, parse_json_event, parse_jsonl_fast, CsvColumns, Event,
    EventType, LineEvent, WireError,
};
use siyu_engine::identity::identity_hash;
use siyu_engine::{Engine, RawEvent};
use siyu_store::{EventRow, EventRows};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

const CHUNK: usize = 4 << 20;

type Span = (u32, u32);

/// A chunk's reusable allocations: the text and the parsed records.
type Buffers = (Vec<u8>, Vec<Rec>);

/// A parsed line: strings as byte ranges into its chunk.
struct Rec {
    /// Line index within the chunk.
    line: u32,
    seq: Option<u64>,
    ts: i64,
    identity: Span,
    identity_hash: u64,
    event_type: EventType,
    channel: Span,
    amount: i64,
    reference: Option<Span>,
    group: Option<Span>,
    text: Option<Span>,
    name: Option<Span>,
    id: Option<Span>,
    /// Lines the full JSON parser read (nested properties, traits,
    /// escapes) keep their owned event here.
    owned: Option<Box<Event>>,
}

/// A rejected line.
#[derive(Debug, Clone)]
pub struct LineError {
    /// 1-based line number in the file (header included).
    pub line: u64,
    pub error: WireError,
}

/// What a read did.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejected lines (at most 20).
    pub errors: Vec<LineError>,
    /// CPU time of the parser threads, summed.
    pub parse_busy: Duration,
    /// Time the consumer spent on chunks.
    pub apply_busy: Duration,
    pub wall: Duration,
}

/// One parsed chunk, handed to the consumer in file order.
pub struct Chunk {
    /// The chunk's lines (valid UTF-8; invalid lines blanked).
    text: String,
    recs: Vec<Rec>,
    /// How many recs hold an owned event.
    owned: usize,
    lines: u64,
    errors: Vec<(u64, WireError)>,
    busy: Duration,
    /// 0-based index of this chunk's first data line in the file.
    first_data_line: u64,
    /// Where the buffers go back to when the chunk is dropped.
    recycle: Option<SyncSender<Buffers>>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(recycle) = self.recycle.take() {
            let text = std::mem::take(&mut self.text).into_bytes();
            // A full pool (or a finished reader) just frees them.
            let _ = recycle.try_send((text, std::mem::take(&mut self.recs)));
        }
    }
}

impl Chunk {
    fn s(&self, (a, l): Span) -> &str {
        // Spans were cut from a validated &str at char boundaries.
        &self.text[a as usize..(a + l) as usize]
    }

    fn seq(&self, r: &Rec) -> u64 {
        // Lines without a `seq` are ordered by their 0-based data line number.
        r.seq.unwrap_or(self.first_data_line + r.line as u64)
    }

    /// Event `i` of the chunk, borrowed, ordered by the file's `seq`
    /// (`siyu bench`).
    pub fn raw_event(&self, i: usize) -> RawEvent<'_> {
        self.raw_event_at(i, self.seq(&self.recs[i]))
    }

    /// Event `i` of the chunk, borrowed, with `seq` as its tie-breaker
    /// (the importer passes the log offset, as a replay of the log would).
    /// Custom properties and traits are not part of a RawEvent: callers
    /// that need them check [`Chunk::has_owned`] and use [`Chunk::event`].
    pub fn raw_event_at(&self, i: usize, seq: u64) -> RawEvent<'_> {
        let r = &self.recs[i];
        match &r.owned {
            Some(e) => {
                let mut raw = RawEvent::from_event(seq, e);
                raw.identity_hash = Some(r.identity_hash);
                raw
            }
            None => RawEvent {
                seq,
                id: r.id.map(|x| self.s(x)),
                ts: r.ts,
                identity: self.s(r.identity),
                identity_hash: Some(r.identity_hash),
                event_type: r.event_type,
                channel: self.s(r.channel),
                amount: r.amount,
                reference: r.reference.map(|x| self.s(x)),
                group: r.group.map(|x| self.s(x)),
                campaign: None,
                device: None,
                ip: None,
                name: r.name.map(|x| self.s(x)),
            },
        }
    }

    /// Whether some event of the chunk has properties or traits (a line
    /// the full JSON parser read).
    pub fn has_owned(&self) -> bool {
        self.owned > 0
    }

    /// A record's event, borrowed from its line (records parsed in place).
    fn line_event(&self, r: &Rec) -> LineEvent<'_> {
        LineEvent {
            id: r.id.map(|x| self.s(x)),
            seq: r.seq,
            ts: r.ts,
            identity: self.s(r.identity),
            event_type: r.event_type,
            channel: self.s(r.channel),
            amount: r.amount,
            reference: r.reference.map(|x| self.s(x)),
            group: r.group.map(|x| self.s(x)),
            text: r.text.map(|x| self.s(x)),
            name: r.name.map(|x| self.s(x)),
        }
    }

    /// Event `i`, owned (the engine's full path).
    pub fn event(&self, i: usize) -> Event {
        let r = &self.recs[i];
        match &r.owned {
            Some(e) => (**e).clone(),
            None => self.line_event(r).to_event(),
        }
    }

    /// Bytes of the file this chunk covers (progress).
    pub fn byte_len(&self) -> usize {
        self.text.len()
    }
}

/// The importer appends a chunk as it is: each row is built from the
/// line's spans when the store writes it.
impl EventRows for Chunk {
    fn len(&self) -> usize {
        self.recs.len()
    }

    fn event_id(&self, i: usize) -> Option<&str> {
        let r = &self.recs[i];
        match &r.owned {
            Some(e) => e.id.as_deref(),
            None => r.id.map(|x| self.s(x)),
        }
    }

    fn row(&self, i: usize) -> siyu_store::Result<EventRow<'_>> {
        let r = &self.recs[i];
        match &r.owned {
            Some(e) => EventRow::new(e),
            None => Ok(EventRow::from_line(&self.line_event(r))),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Csv,
}

fn span(base: &[u8], s: &str) -> Span {
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
        text: e.text.map(|t| span(text, t)),
        name: e.name.map(|t| span(text, t)),
        id: e.id.map(|t| span(text, t)),
        owned: None,
    }
}

fn owned_rec(e: Event, line: u64) -> Rec {
    Rec {
        line: line as u32,
        seq: e.seq,
        ts: e.ts,
        identity: (0, 0),
        identity_hash: identity_hash(e.identity.as_str()),
        event_type: e.event_type,
        channel: (0, 0),
        amount: e.amount,
        reference: None,
        group: None,
        text: None,
        name: None,
        id: None,
        owned: Some(Box::new(e)),
    }
}

/// Makes a chunk text: one UTF-8 check for the whole chunk; a chunk that
/// fails is rebuilt line by line with each invalid line blanked (and
/// reported), so line numbers stay aligned and every span is a `&str`.
fn chunk_text(bytes: Vec<u8>, errors: &mut Vec<(u64, WireError)>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let bytes = e.into_bytes();
            let mut clean = String::with_capacity(bytes.len());
            for (idx, line) in bytes.split(|&c| c == b'\n').enumerate() {
                if idx > 0 {
                    clean.push('\n');
                }
                match std::str::from_utf8(line) {
                    Ok(l) => clean.push_str(l),
                    Err(e) => {
                        let message = format!(
                            "line is not valid UTF-8 (byte {}); save the file as UTF-8",
                            e.valid_up_to() + 1
                        );
                        errors.push((
                            idx as u64,
                            WireError {
                                field: "event",
                                message,
                            },
                        ));
                    }
                }
            }
            clean
        }
    }
}

/// Parses one chunk; every line is validated, rejected lines are kept with
/// their index.
fn parse_chunk((bytes, mut recs): Buffers, format: Format, cols: &CsvColumns) -> Chunk {
    let started = Instant::now();
    recs.clear();
    let mut errors = Vec::new();
    let mut lines = 0u64;
    let text = chunk_text(bytes, &mut errors);
    {
        let b = text.as_bytes();
        let mut line_start = 0usize;
        let ends = memchr::memchr_iter(b'\n', b).chain(std::iter::once(b.len()));
        for end in ends {
            if line_start >= b.len() {
                break;
            }
            // `\n` is ASCII, so line ends are char boundaries.
            let line = &text[line_start..end];
            line_start = end + 1;
            let idx = lines;
            lines += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let parsed = match format {
                Format::Csv => Some(parse_csv_borrowed(cols, line)),
                Format::Jsonl => parse_jsonl_fast(line),
            };
            match parsed {
                Some(Ok(e)) => recs.push(to_rec(b, &e, idx)),
                Some(Err(err)) => errors.push((idx, err)),
                None => match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(v) => match parse_json_event(&v) {
                        Ok(e) => recs.push(owned_rec(e, idx)),
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
    errors.sort_by_key(|(idx, _)| *idx);
    Chunk {
        owned: recs.iter().filter(|r| r.owned.is_some()).count(),
        text,
        recs,
        lines,
        errors,
        busy: started.elapsed(),
        first_data_line: 0,
        recycle: None,
    }
}

/// Reads `path` in newline-aligned chunks and sends them round-robin.
/// Buffers come back through `recycled` once consumed, so a read reuses a
/// handful of buffers instead of faulting in (and zeroing) fresh pages for
/// every chunk.
fn read_chunks(
    path: &Path,
    mut skip_header: bool,
    senders: Vec<SyncSender<Buffers>>,
    recycled: Receiver<Buffers>,
) -> Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut carry: Vec<u8> = Vec::new();
    let mut n = 0usize;
    loop {
        let (mut buf, recs) = recycled.try_recv().unwrap_or_else(|_| {
            (
                Vec::with_capacity(CHUNK + 64 * 1024),
                Vec::with_capacity(CHUNK / 100),
            )
        });
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
        if senders[n % senders.len()].send((buf, recs)).is_err() {
            return Ok(());
        }
        n += 1;
        if eof {
            return Ok(());
        }
    }
}

/// Reads an events file (`.csv`, else JSONL) and hands each parsed chunk,
/// in file order, to `consume`. `consume` may fail (e.g. the store); that
/// stops the read and is returned.
pub fn for_each_chunk(
    path: &Path,
    threads: usize,
    mut consume: impl FnMut(Chunk) -> Result<()>,
) -> Result<LoadStats> {
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
    let mut stats = LoadStats::default();
    std::thread::scope(|scope| -> Result<()> {
        let mut to_parser = Vec::new();
        let mut from_parser: Vec<Receiver<Chunk>> = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Buffers>(2);
            let (ptx, prx) = sync_channel::<Chunk>(2);
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
        let (recycle_tx, recycle_rx) = sync_channel::<Buffers>(threads * 4 + 4);
        let reader = scope.spawn(move || read_chunks(path, is_csv, to_parser, recycle_rx));
        let header_lines = if is_csv { 1 } else { 0 };
        let mut data_lines = 0u64;
        let mut i = 0usize;
        let mut result = Ok(());
        while let Ok(mut chunk) = from_parser[i % threads].recv() {
            i += 1;
            chunk.first_data_line = data_lines;
            chunk.recycle = Some(recycle_tx.clone());
            stats.parse_busy += chunk.busy;
            stats.accepted += chunk.recs.len() as u64;
            stats.rejected += chunk.errors.len() as u64;
            for (idx, error) in chunk.errors.drain(..) {
                if stats.errors.len() < 20 {
                    stats.errors.push(LineError {
                        line: header_lines + data_lines + idx + 1,
                        error,
                    });
                }
            }
            stats.lines += chunk.lines;
            data_lines += chunk.lines;
            let consuming = Instant::now();
            result = consume(chunk);
            stats.apply_busy += consuming.elapsed();
            if result.is_err() {
                break;
            }
        }
        drop(from_parser);
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        result
    })?;
    stats.wall = started.elapsed();
    Ok(stats)
}

/// Loads an events file straight into the engine (bulk mode).
pub fn load_file(engine: &mut Engine, path: &Path, threads: usize) -> Result<LoadStats> {
    for_each_chunk(path, threads, |chunk| {
        engine.apply_batch_by(chunk.len(), |i| chunk.raw_event(i));
        Ok(())
    })
}
