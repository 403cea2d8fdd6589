//! Bulk reading of event files (JSONL or CSV): a reader thread cuts the
//! file into newline-aligned chunks (a CSV file between records: a line
//! break inside a quoted field stays in its record), parser threads validate every line and
//! turn chunks into compact records (strings stay in the chunk, identities
//! are pre-hashed), and the calling thread consumes chunks in file order —
//! straight into the engine (`bench`) or into the store (`import`).
//! Parsing is pure CPU and runs in parallel; only the consumer is sequential.
//! A chunk is handed over by value (the importer shares it between its
//! store and engine threads) and gives its buffers back to the reader when
//! dropped.

use anyhow::{Context, Result};
use siyu_domain::line::UTF8_BOM;
use siyu_domain::{
    csv_record_len, parse_csv_borrowed, parse_csv_header, parse_csv_quoted, parse_json_event,
    parse_jsonl_fast, CsvColumns, CsvRecordReader, Event, EventType, LineEvent, WireError,
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
                tie: None,
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

    /// Gives every comment its intent as the server's writer does
    /// (`siyu_server::intents::annotate`): a comment read in place becomes
    /// an owned event, since it now has properties.
    fn annotate_intents(&mut self) {
        for i in 0..self.recs.len() {
            if self.recs[i].event_type != EventType::Comment {
                continue;
            }
            let mut e = self.event(i);
            let before = e.properties.as_ref().map_or(0, |p| p.len());
            siyu_server::intents::annotate(std::slice::from_mut(&mut e));
            if e.properties.as_ref().map_or(0, |p| p.len()) != before {
                let line = self.recs[i].line as u64;
                self.recs[i] = owned_rec(e, line);
            }
        }
        self.owned = self.recs.iter().filter(|r| r.owned.is_some()).count();
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
/// `intents`: comments get their intent (`Chunk::annotate_intents`).
fn parse_chunk(
    (bytes, mut recs): Buffers,
    format: Format,
    cols: &CsvColumns,
    intents: bool,
) -> Chunk {
    let started = Instant::now();
    recs.clear();
    let mut errors = Vec::new();
    let mut lines = 0u64;
    let text = chunk_text(bytes, &mut errors);
    match format {
        Format::Csv => parse_csv_chunk(&text, cols, &mut recs, &mut errors, &mut lines),
        Format::Jsonl => parse_jsonl_chunk(&text, &mut recs, &mut errors, &mut lines),
    }
    errors.sort_by_key(|(idx, _)| *idx);
    let mut chunk = Chunk {
        owned: recs.iter().filter(|r| r.owned.is_some()).count(),
        text,
        recs,
        lines,
        errors,
        busy: started.elapsed(),
        first_data_line: 0,
        recycle: None,
    };
    if intents {
        chunk.annotate_intents();
        chunk.busy = started.elapsed();
    }
    chunk
}

/// The lines of a JSONL chunk: the fast path, else the full JSON parser.
fn parse_jsonl_chunk(
    text: &str,
    recs: &mut Vec<Rec>,
    errors: &mut Vec<(u64, WireError)>,
    lines: &mut u64,
) {
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
        let idx = *lines;
        *lines += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        match parse_jsonl_fast(line) {
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

/// The records of a CSV chunk: a line without a `"` is a whole record,
/// split in place; a record with one (it may span lines) is read by
/// `csv-core` (the `csv` crate's parser), one reader per chunk. A record is numbered by the line it starts on.
fn parse_csv_chunk(
    text: &str,
    cols: &CsvColumns,
    recs: &mut Vec<Rec>,
    errors: &mut Vec<(u64, WireError)>,
    lines: &mut u64,
) {
    let b = text.as_bytes();
    let mut reader: Option<CsvRecordReader> = None;
    let mut at = 0usize;
    while at < b.len() {
        let idx = *lines;
        let line_end = memchr::memchr(b'\n', &b[at..]).map_or(b.len(), |p| at + p + 1);
        // `\n` is ASCII, so line ends are char boundaries.
        let line = &text[at..line_end];
        if line.trim().is_empty() {
            *lines += 1;
            at = line_end;
            continue;
        }
        match parse_csv_borrowed(cols, line) {
            Some(parsed) => {
                *lines += 1;
                at = line_end;
                match parsed {
                    Ok(e) => recs.push(to_rec(b, &e, idx)),
                    Err(err) => errors.push((idx, err)),
                }
            }
            None => {
                let (end, parsed) = match csv_record_len(&b[at..]) {
                    // `"` and `\n` are ASCII: a record ends at a char boundary.
                    Some(len) => (
                        at + len,
                        parse_csv_quoted(
                            reader.get_or_insert_with(CsvRecordReader::default),
                            cols,
                            &text[at..at + len],
                        ),
                    ),
                    None => (
                        b.len(),
                        Err(WireError {
                            field: "event",
                            message: "a quoted field is never closed (a `\"` is missing); write a quote inside a quoted field as `\"\"`".into(),
                        }),
                    ),
                };
                let breaks = memchr::memchr_iter(b'\n', &b[at..end]).count();
                *lines += (breaks + usize::from(b[end - 1] != b'\n')) as u64;
                at = end;
                match parsed {
                    Ok(e) => recs.push(owned_rec(e, idx)),
                    Err(err) => errors.push((idx, err)),
                }
            }
        }
    }
}

/// Where to cut a buffer that starts at a record boundary: after its last
/// complete line, and in a CSV file with quotes after its last complete
/// record (a giant or never-closed quoted field falls back to the last
/// line; its record is then refused).
fn cut_at(buf: &[u8], csv: bool) -> Option<usize> {
    let last_line = memchr::memrchr(b'\n', buf).map(|p| p + 1);
    if !csv || memchr::memchr(b'"', buf).is_none() {
        return last_line;
    }
    let mut at = 0;
    while at < buf.len() {
        let nl = memchr::memchr(b'\n', &buf[at..]).map(|p| at + p + 1);
        let end = match nl {
            Some(nl) if memchr::memchr(b'"', &buf[at..nl]).is_none() => Some(nl),
            _ => csv_record_len(&buf[at..]).map(|l| at + l),
        };
        match end {
            Some(end) if buf[end - 1] == b'\n' => at = end,
            _ => break,
        }
    }
    if at > 0 {
        Some(at)
    } else {
        last_line
    }
}

/// Reads `path` in record-aligned chunks (after its first `skip` bytes:
/// a BOM, a CSV header) and sends them round-robin.
/// Buffers come back through `recycled` once consumed, so a read reuses a
/// handful of buffers instead of faulting in (and zeroing) fresh pages for
/// every chunk.
fn read_chunks(
    path: &Path,
    csv: bool,
    skip: u64,
    senders: Vec<SyncSender<Buffers>>,
    recycled: Receiver<Buffers>,
) -> Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut (&mut f).take(skip), &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))?;
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
            if let Some(p) = cut_at(&buf, csv) {
                carry.extend_from_slice(&buf[p..]);
                buf.truncate(p);
            }
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

/// What precedes the data of an events file: its byte length (a UTF-8
/// BOM, a CSV's header record) and lines, and the CSV's columns.
fn preamble(path: &Path, csv: bool) -> Result<(u64, u64, CsvColumns)> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(1 << 20)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    let bom = if head.starts_with(UTF8_BOM.as_bytes()) {
        UTF8_BOM.len()
    } else {
        0
    };
    if !csv {
        return Ok((bom as u64, 0, CsvColumns::default()));
    }
    let rest = &head[bom..];
    let len = csv_record_len(rest).unwrap_or(rest.len());
    let header = std::str::from_utf8(&rest[..len]).map_err(|_| {
        anyhow::anyhow!(
            "{}:1: the header is not UTF-8; save the file as UTF-8 (Excel: CSV UTF-8)",
            path.display()
        )
    })?;
    let cols = parse_csv_header(header.trim_end_matches(['\r', '\n']))
        .map_err(|e| anyhow::anyhow!("{}:1: {e}", path.display()))?;
    let lines = memchr::memchr_iter(b'\n', header.as_bytes()).count().max(1) as u64;
    Ok(((bom + len) as u64, lines, cols))
}

/// Reads an events file (`.csv`, else JSONL) and hands each parsed chunk,
/// in file order, to `consume`. `consume` may fail (e.g. the store); that
/// stops the read and is returned. `intents`: each comment is annotated
/// with its intent on the parser threads, as the server annotates what it
/// appends (`siyu import`; the bench reads files as they are).
pub fn for_each_chunk(
    path: &Path,
    threads: usize,
    intents: bool,
    mut consume: impl FnMut(Chunk) -> Result<()>,
) -> Result<LoadStats> {
    let started = Instant::now();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let format = if is_csv { Format::Csv } else { Format::Jsonl };
    let (skip, header_lines, cols) = preamble(path, is_csv)?;
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
                    if ptx
                        .send(parse_chunk(chunk, format, &cols, intents))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        let (recycle_tx, recycle_rx) = sync_channel::<Buffers>(threads * 4 + 4);
        let reader = scope.spawn(move || read_chunks(path, is_csv, skip, to_parser, recycle_rx));
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
    for_each_chunk(path, threads, false, |chunk| {
        engine.apply_batch_by(chunk.len(), |i| chunk.raw_event(i));
        Ok(())
    })
}
