//! Line-oriented parsing for bulk files (JSONL and CSV) without allocation:
//! a [`LineEvent`] borrows its strings from the line.
//!
//! CSV is RFC 4180 as the `csv` crate reads it (Excel's "CSV UTF-8" too:
//! a BOM, quoted fields holding commas, `""` and line breaks). A record
//! without a `"` has no quoted field, so it is split at its commas in place
//! ([`parse_csv_borrowed`]: the bulk path); one with a `"` is read by
//! `csv-core`, the `csv` crate's parser, into owned fields
//! ([`parse_csv_quoted`], [`CsvRecordReader`]). [`csv_record_len`]
//! finds where a record ends, so a bulk reader cuts files between records.
//!
//! The JSONL fast path only handles the flat shape bulk files use (string
//! and integer values, no escapes, no nested objects) and returns `None`
//! for anything else, so the caller falls back to the full parser
//! ([`crate::parse_json_event`]). Both apply the same per-type rules
//! ([`crate::wire`]), so a line is valid on one path iff it is on the other
//! (a property test checks this).

use crate::event::{Channel, Event, EventType};
use crate::identity::{self, Identity};
use crate::time::parse_rfc3339;
use crate::wire::{
    check_ts, check_type_rules, parse_ts_str, WireError, MAX_SHORT_LEN, MAX_TEXT_LEN,
};

/// One validated event borrowed from a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineEvent<'a> {
    pub id: Option<&'a str>,
    pub seq: Option<u64>,
    pub ts: i64,
    pub identity: &'a str,
    pub event_type: EventType,
    pub channel: &'a str,
    pub amount: i64,
    pub reference: Option<&'a str>,
    pub group: Option<&'a str>,
    pub text: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl LineEvent<'_> {
    /// The owned event (every field was validated when the line was parsed).
    pub fn to_event(&self) -> Event {
        let ident = |s: &str| Identity::parse(s).expect("validated when the line was parsed");
        Event {
            id: self.id.map(str::to_string),
            seq: self.seq,
            ts: self.ts,
            identity: ident(self.identity),
            event_type: self.event_type,
            channel: Channel::parse(self.channel).expect("validated when the line was parsed"),
            amount: self.amount,
            reference: self.reference.map(ident),
            group: self.group.map(str::to_string),
            text: self.text.map(str::to_string),
            name: self.name.map(str::to_string),
            properties: None,
            traits: None,
        }
    }
}

/// Raw field values of one line before validation.
#[derive(Default)]
struct RawFields<'a> {
    id: Option<&'a str>,
    seq: Option<&'a str>,
    ts: Option<&'a str>,
    ts_is_number: bool,
    identity: Option<&'a str>,
    event_type: Option<&'a str>,
    channel: Option<&'a str>,
    amount: Option<&'a str>,
    reference: Option<&'a str>,
    group: Option<&'a str>,
    text: Option<&'a str>,
    name: Option<&'a str>,
}

fn limit<'a>(
    field: &'static str,
    s: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>, WireError> {
    match s {
        Some(s) if s.len() > max => Err(WireError::new(
            field,
            format!("is {} bytes; at most {max} are accepted", s.len()),
        )),
        s => Ok(s),
    }
}

impl<'a> RawFields<'a> {
    fn validate(self) -> Result<LineEvent<'a>, WireError> {
        let Some(ty) = self.event_type else {
            return Err(WireError::new(
                "type",
                "is missing; e.g. \"type\": \"purchase\"",
            ));
        };
        let event_type = EventType::parse(ty).ok_or_else(|| {
            let names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            WireError::new(
                "type",
                format!("unknown event type `{ty}`; use one of {}", names.join(", ")),
            )
        })?;
        let ts = match self.ts {
            None => {
                return Err(WireError::new(
                    "ts",
                    "is missing; e.g. \"ts\": \"2026-10-31T08:00:00Z\"",
                ))
            }
            Some(s) if self.ts_is_number => match s.parse::<i64>() {
                Ok(n) => check_ts(n)?,
                Err(_) => {
                    return Err(WireError::new(
                        "ts",
                        "must be integer epoch seconds or an RFC 3339 string",
                    ))
                }
            },
            Some(s) => match parse_rfc3339(s) {
                Some(ts) => check_ts(ts)?,
                None => parse_ts_str(s)?,
            },
        };
        let Some(identity) = self.identity else {
            return Err(WireError::new(
                "identity",
                "is missing; write it as `channel:id`, e.g. \"identity\": \"wecom:wm000123\"",
            ));
        };
        identity::check(identity).map_err(|e| WireError::new("identity", e.to_string()))?;
        let channel = match self.channel {
            Some(c) if Channel::is_valid(c) => c,
            Some(c) => {
                return Err(WireError::new(
                    "channel",
                    format!(
                        "`{c}` must be lowercase letters, digits or `_` (at most 32), e.g. douyin"
                    ),
                ))
            }
            None => {
                let c = identity.split_once(':').map_or("", |(c, _)| c);
                if !Channel::is_valid(c) {
                    return Err(WireError::new(
                        "channel",
                        "is missing and the identity's channel is not a valid channel name",
                    ));
                }
                c
            }
        };
        let seq = self
            .seq
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|_| WireError::new("seq", "must be a non-negative integer"))
            })
            .transpose()?;
        let amount = self
            .amount
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    WireError::new(
                        "amount",
                        format!(
                            "`{s}` is not an integer number of cents (or it overflows 64 bits)"
                        ),
                    )
                })
            })
            .transpose()?;
        if let Some(r) = self.reference {
            identity::check(r).map_err(|e| WireError::new("ref", e.to_string()))?;
        }
        let group = limit("group", self.group, MAX_SHORT_LEN)?;
        let text = limit("text", self.text, MAX_TEXT_LEN)?;
        let name = limit("name", self.name, MAX_SHORT_LEN)?;
        let id = limit("id", self.id, MAX_SHORT_LEN)?;
        let amount = check_type_rules(
            event_type,
            amount,
            self.reference.is_some(),
            group.is_some(),
            name.is_some(),
            false,
        )?;
        Ok(LineEvent {
            id,
            seq,
            ts,
            identity,
            event_type,
            channel,
            amount,
            reference: self.reference,
            group,
            text,
            name,
        })
    }
}

/// Parses a flat JSON object line; `None` if the line needs the full parser.
pub fn parse_jsonl_fast(line: &str) -> Option<Result<LineEvent<'_>, WireError>> {
    let b = line.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\r') {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Option<&str> {
        // b[*i] == '"'
        let start = *i + 1;
        let mut j = start;
        loop {
            match *b.get(j)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => j += 1,
            }
        }
        *i = j + 1;
        // `"` is ASCII, so both ends are char boundaries.
        line.get(start..j)
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut f = RawFields::default();
    let mut seen = 0u16;
    loop {
        skip_ws(&mut i);
        if b.get(i) == Some(&b'}') && seen == 0 {
            i += 1;
            break;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key = string(&mut i)?;
        skip_ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        let (value, is_number) = match b.get(i)? {
            b'"' => (string(&mut i)?, false),
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && matches!(b[i], b'.' | b'e' | b'E') {
                    return None;
                }
                (line.get(start..i)?, true)
            }
            _ => return None,
        };
        // Empty strings mean "absent", as in the full parser.
        let v = (!value.is_empty()).then_some(value);
        let (bit, slot, numeric) = match key {
            "id" => (0, &mut f.id, false),
            "seq" => (1, &mut f.seq, true),
            "ts" => {
                f.ts_is_number = is_number;
                (2, &mut f.ts, is_number)
            }
            "identity" => (3, &mut f.identity, false),
            "type" => (4, &mut f.event_type, false),
            "channel" => (5, &mut f.channel, false),
            "amount" => (6, &mut f.amount, true),
            "ref" => (7, &mut f.reference, false),
            "group" => (8, &mut f.group, false),
            "text" => (9, &mut f.text, false),
            "name" => (10, &mut f.name, false),
            _ => return None,
        };
        if seen & (1 << bit) != 0 || numeric != is_number {
            return None;
        }
        seen |= 1 << bit;
        *slot = v;
        skip_ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        return None;
    }
    Some(f.validate())
}

/// Column positions of a CSV header: `ts`, `identity`, `type` are required;
/// `seq`, `channel`, `amount`, `ref`, `group`, `text`, `id`, `name` are optional.
#[derive(Debug, Clone, Default)]
pub struct CsvColumns {
    pub count: usize,
    id: Option<usize>,
    seq: Option<usize>,
    ts: usize,
    identity: usize,
    event_type: usize,
    channel: Option<usize>,
    amount: Option<usize>,
    reference: Option<usize>,
    group: Option<usize>,
    text: Option<usize>,
    name: Option<usize>,
}

/// Most columns an events CSV may have.
pub const MAX_CSV_COLUMNS: usize = 32;

/// The UTF-8 byte order mark Excel writes at the start of a "CSV UTF-8" file.
pub const UTF8_BOM: &str = "\u{feff}";

/// Reads the header record of an events CSV (RFC 4180: names may be
/// quoted; a leading UTF-8 BOM is skipped).
pub fn parse_csv_header(line: &str) -> Result<CsvColumns, WireError> {
    let line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
    let mut reader = CsvRecordReader::default();
    let names: Vec<&str> = reader.fields(line)?.into_iter().map(str::trim).collect();
    if names.len() > MAX_CSV_COLUMNS {
        return Err(WireError::new(
            "header",
            format!("has {} columns; at most {MAX_CSV_COLUMNS}", names.len()),
        ));
    }
    let find = |n: &str| names.iter().position(|c| *c == n);
    let need = |n: &'static str| {
        find(n).ok_or_else(|| {
            WireError::new(
                n,
                format!("column `{n}` is missing from the header; an events CSV needs ts,identity,type (and optionally seq,channel,amount,ref,group,text,id,name)"),
            )
        })
    };
    Ok(CsvColumns {
        count: names.len(),
        id: find("id"),
        seq: find("seq"),
        ts: need("ts")?,
        identity: need("identity")?,
        event_type: need("type")?,
        channel: find("channel"),
        amount: find("amount"),
        reference: find("ref"),
        group: find("group"),
        text: find("text"),
        name: find("name"),
    })
}

/// The length in bytes of the CSV record at the start of `b`, its `\n`
/// included (the whole of `b` if it has none): a line break inside a
/// quoted field belongs to the record. `None` while a quoted field is
/// still open at the end of `b`.
///
/// The rule is the `csv` crate's (RFC 4180): a `"` opens a quoted field
/// only as a field's first byte; inside one, `""` is a quote and a single
/// `"` closes it; elsewhere a `"` is a plain character.
pub fn csv_record_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut field_start = true;
    let mut quoted = false;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if quoted {
            if c == b'"' {
                if b.get(i) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
            continue;
        }
        match c {
            b'"' if field_start => {
                quoted = true;
                field_start = false;
            }
            b',' => field_start = true,
            b'\n' => return Some(i),
            _ => field_start = false,
        }
    }
    (!quoted).then_some(b.len())
}

/// Reads one CSV record at a time with `csv-core`, the `csv` crate's
/// parser (same rules, same unescaping; a property test checks the two
/// agree), reusing its state and buffers: the bulk path keeps one per
/// parser thread.
pub struct CsvRecordReader {
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for CsvRecordReader {
    fn default() -> Self {
        CsvRecordReader {
            core: csv_core::Reader::new(),
            out: vec![0; 1024],
            ends: vec![0; MAX_CSV_COLUMNS + 1],
        }
    }
}

impl CsvRecordReader {
    /// The fields of the one record `record` holds (its line break
    /// optional). More than one record (a bare `\r` outside quotes) is
    /// refused.
    pub fn fields<'s>(&'s mut self, record: &str) -> Result<Vec<&'s str>, WireError> {
        use csv_core::ReadRecordResult::*;
        self.core.reset();
        let mut input = record.as_bytes();
        let (mut nout, mut nends) = (0, 0);
        let len = loop {
            let (res, nin, o, e) =
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nends..]);
            input = &input[nin..];
            nout += o;
            nends += e;
            match res {
                InputEmpty => continue,
                OutputFull => self.out.resize(self.out.len() * 2, 0),
                OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                Record => break nends,
                End => break 0,
            }
        };
        if input.iter().any(|&c| c != b'\n' && c != b'\r') {
            return Err(WireError::new(
                "event",
                "holds a line break outside a quoted field; quote the field (\"…\") that holds it",
            ));
        }
        if len == 0 {
            return Ok(vec![""]);
        }
        let mut fields = Vec::with_capacity(len);
        let mut start = 0;
        for &end in &self.ends[..len] {
            // Unquoting removes ASCII quotes only: the text stays UTF-8.
            let f = std::str::from_utf8(&self.out[start..end]).map_err(|_| {
                WireError::new("event", "is not valid UTF-8; save the file as UTF-8")
            })?;
            fields.push(f);
            start = end;
        }
        Ok(fields)
    }
}

/// Parses one data record of an events CSV that holds no `"` (so no
/// quoted field: RFC 4180 splits it at every comma), borrowing from it.
/// `None` if it holds a `"`: read it with [`parse_csv_quoted`].
pub fn parse_csv_borrowed<'a>(
    cols: &CsvColumns,
    line: &'a str,
) -> Option<Result<LineEvent<'a>, WireError>> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.as_bytes().contains(&b'"') {
        return None;
    }
    let mut fields = [""; MAX_CSV_COLUMNS];
    let mut n = 0;
    // Split at the commas by byte: `str::split(',')` looks for the comma's
    // last byte and then compares the whole of its UTF-8 form, a `memcmp`
    // call per field (about a sixth of a bulk load's instructions, on the
    // parser threads). A comma is ASCII, so every cut is a char boundary.
    let mut start = 0;
    for (i, &b) in line.as_bytes().iter().enumerate() {
        if b == b',' {
            if n == cols.count {
                break;
            }
            fields[n] = &line[start..i];
            n += 1;
            start = i + 1;
        }
    }
    if n < cols.count {
        fields[n] = &line[start..];
    }
    n += 1;
    if n != cols.count {
        return Some(Err(column_count(line.split(',').count(), cols)));
    }
    Some(fields_event(cols, &fields[..n]))
}

fn column_count(found: usize, cols: &CsvColumns) -> WireError {
    WireError::new(
        "event",
        format!(
            "has {found} columns, the header has {}; quote a field that holds a comma (\"a, b\")",
            cols.count
        ),
    )
}

/// The event of a record's fields (the header's columns, in order).
fn fields_event<'a>(cols: &CsvColumns, fields: &[&'a str]) -> Result<LineEvent<'a>, WireError> {
    let get = |i: Option<usize>| i.map(|i| fields[i]).filter(|s| !s.is_empty());
    let raw = RawFields {
        id: get(cols.id),
        seq: get(cols.seq),
        ts: get(Some(cols.ts)),
        ts_is_number: fields[cols.ts]
            .bytes()
            .all(|c| c.is_ascii_digit() || c == b'-'),
        identity: get(Some(cols.identity)),
        event_type: get(Some(cols.event_type)),
        channel: get(cols.channel),
        // `0` is how the bench CSV writes "no amount".
        amount: get(cols.amount),
        reference: get(cols.reference),
        group: get(cols.group),
        text: get(cols.text),
        name: get(cols.name),
    };
    raw.validate()
}

/// Parses one data record of an events CSV with quoted fields (commas,
/// `""` and line breaks inside quotes), read by `reader`.
pub fn parse_csv_quoted(
    reader: &mut CsvRecordReader,
    cols: &CsvColumns,
    record: &str,
) -> Result<Event, WireError> {
    let fields = reader.fields(record)?;
    if fields.len() != cols.count {
        return Err(column_count(fields.len(), cols));
    }
    fields_event(cols, &fields).map(|e| e.to_event())
}

/// One data record of an events CSV, owned: [`parse_csv_borrowed`], else
/// [`parse_csv_quoted`].
pub fn parse_csv_line(cols: &CsvColumns, line: &str) -> Result<Event, WireError> {
    match parse_csv_borrowed(cols, line) {
        Some(r) => r.map(|e| e.to_event()),
        None => parse_csv_quoted(&mut CsvRecordReader::default(), cols, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_json_event;
    use proptest::prelude::*;

    #[test]
    fn fast_path_reads_bench_lines() {
        let l = r#"{"seq":1155461,"ts":"2026-10-31T00:00:07Z","identity":"wecom:wm094036","type":"identify","channel":"wecom","ref":"douyin:6d33e1d20058"}"#;
        let e = parse_jsonl_fast(l).unwrap().unwrap();
        assert_eq!(e.reference, Some("douyin:6d33e1d20058"));
        assert_eq!(e.seq, Some(1_155_461));
        let full = parse_json_event(&serde_json::from_str(l).unwrap()).unwrap();
        assert_eq!(e.to_event(), full);
        // Escapes and nested values go to the full parser.
        assert!(parse_jsonl_fast(r#"{"ts":1,"text":"a\"b"}"#).is_none());
        assert!(parse_jsonl_fast(r#"{"ts":1,"properties":{}}"#).is_none());
    }

    const COLS: &str = "seq,ts,identity,type,channel,amount,ref,group,text";

    #[test]
    fn the_fast_path_counts_columns_exactly() {
        let cols = parse_csv_header(COLS).unwrap();
        let line =
            |extra: &str| format!("1,1761955255,douyin:甲,comment,douyin,0,,,多少钱{extra}\n");
        let whole = line("");
        let e = parse_csv_borrowed(&cols, &whole).unwrap().unwrap();
        assert_eq!(e.text, Some("多少钱"));
        assert_eq!(e.identity, "douyin:甲");
        // Empty last field.
        let e = parse_csv_borrowed(&cols, "1,1761955255,douyin:x,touch,douyin,0,,,\n").unwrap();
        assert_eq!(e.unwrap().text, None);
        for (extra, found) in [(",", 10), (",a,b", 11)] {
            let err = parse_csv_borrowed(&cols, &line(extra))
                .unwrap()
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("has {found} columns, the header has 9")),
                "{err}"
            );
        }
        let short = "1,1761955255,douyin:x,touch,douyin,0,,\n";
        let err = parse_csv_borrowed(&cols, short).unwrap().unwrap_err();
        assert!(
            err.to_string().contains("has 8 columns, the header has 9"),
            "{err}"
        );
    }

    #[test]
    fn quoted_fields_are_rfc_4180() {
        let cols = parse_csv_header(&format!("{UTF8_BOM}{COLS}\r\n")).unwrap();
        let e = parse_csv_line(
            &cols,
            "1,1761955255,douyin:x,comment,douyin,0,,,\"你好, 多少钱？\"\r\n",
        )
        .unwrap();
        assert_eq!(e.text.as_deref(), Some("你好, 多少钱？"));
        let e = parse_csv_line(
            &cols,
            "1,1761955255,douyin:x,comment,douyin,0,,,\"他说\"\"好\"\"\"",
        )
        .unwrap();
        assert_eq!(e.text.as_deref(), Some("他说\"好\""));
        let rec =
            "1,1761955255,douyin:x,comment,douyin,0,,,\"两行\n第二行\"\n2,1761955255,douyin:y";
        let len = csv_record_len(rec.as_bytes()).unwrap();
        let e = parse_csv_line(&cols, &rec[..len]).unwrap();
        assert_eq!(e.text.as_deref(), Some("两行\n第二行"));
        assert_eq!(csv_record_len(b"1,\"open\n"), None);
        // A quote inside an unquoted field is a character, as the csv crate reads it.
        let e = parse_csv_line(&cols, "1,1761955255,douyin:x,comment,douyin,0,,,5\"屏").unwrap();
        assert_eq!(e.text.as_deref(), Some("5\"屏"));
        let err =
            parse_csv_line(&cols, "1,1761955255,douyin:x,comment,douyin,0,,,a,b").unwrap_err();
        assert!(err.message.contains("quote a field"), "{err}");
        // A quoted header, and the fast path on a quote-free record.
        let q = parse_csv_header("\"ts\",identity,\"type\"").unwrap();
        assert!(parse_csv_borrowed(&q, "1761955255,douyin:x,touch")
            .unwrap()
            .is_ok());
        assert!(parse_csv_borrowed(&q, "1761955255,\"douyin:x\",touch").is_none());
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("douyin:ab".to_string()),
            Just("comment".to_string()),
            Just("1761955255".to_string()),
            Just("douyin".to_string()),
            Just("你好, 多少钱？".to_string()),
            Just("他说\"好\"".to_string()),
            Just("两行\n第二行".to_string()),
            Just("a\r\nb".to_string()),
            Just("5\"屏".to_string()),
            "[a-z,\" \n0-9]{0,6}",
        ]
    }

    /// How a CSV writer (Excel, the csv crate) writes a cell.
    fn write_cell(c: &str, force: bool) -> String {
        if force || c.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", c.replace('"', "\"\""))
        } else {
            c.to_string()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        /// Records cut by `csv_record_len` and read one by one are what the
        /// csv crate reads from the whole text, and the in-place fast path
        /// agrees with the csv crate on every record it takes.
        #[test]
        fn records_agree_with_the_csv_crate(
            rows in proptest::collection::vec(proptest::collection::vec((cell(), any::<bool>()), 9), 1..5),
            raw in any::<bool>(),
        ) {
            let cols = parse_csv_header(COLS).unwrap();
            let text: String = rows
                .iter()
                .map(|r| {
                    let cells: Vec<String> = r
                        .iter()
                        .map(|(c, q)| if raw && !c.contains(['\n', '\r', ',']) && !c.starts_with('"') { c.clone() } else { write_cell(c, *q) })
                        .collect();
                    format!("{}\n", cells.join(","))
                })
                .collect();
            let whole: Vec<csv::StringRecord> = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes())
                .records()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut reader = CsvRecordReader::default();
            let mut at = 0;
            let mut mine = Vec::new();
            while at < text.len() {
                let len = csv_record_len(&text.as_bytes()[at..]).unwrap();
                mine.push(&text[at..at + len]);
                at += len;
            }
            // A bare `\r` ends a record for the csv crate; such records are refused here.
            if whole.len() == mine.len() {
                for (rec, w) in mine.iter().zip(&whole) {
                    let fields: Vec<&str> = w.iter().collect();
                    let expected = if fields.len() == cols.count {
                        fields_event(&cols, &fields).map(|e| e.to_event())
                    } else {
                        Err(column_count(fields.len(), &cols))
                    };
                    prop_assert_eq!(parse_csv_quoted(&mut reader, &cols, rec), expected.clone());
                    if let Some(fast) = parse_csv_borrowed(&cols, rec) {
                        prop_assert_eq!(fast.map(|e| e.to_event()), expected);
                    }
                }
            } else {
                prop_assert!(text.contains('\r'));
            }
        }
    }

    fn field() -> impl Strategy<Value = (String, String)> {
        let key = prop_oneof![
            Just("seq"),
            Just("ts"),
            Just("identity"),
            Just("type"),
            Just("channel"),
            Just("amount"),
            Just("ref"),
            Just("group"),
            Just("text"),
            Just("id"),
            Just("name"),
            Just("bogus")
        ];
        let value = prop_oneof![
            Just("\"douyin:ab\"".to_string()),
            Just("\"purchase\"".to_string()),
            Just("\"identify\"".to_string()),
            Just("\"touch\"".to_string()),
            Just("\"2026-10-31T00:00:07Z\"".to_string()),
            Just("\"\"".to_string()),
            Just("\"Douyin\"".to_string()),
            Just("\"多少钱\"".to_string()),
            (0i64..2_000_000_000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("99999999999999999999".to_string()),
            Just("1.5".to_string()),
            Just("null".to_string()),
            // Both sides of every length limit.
            Just(format!("\"{}\"", "x".repeat(MAX_SHORT_LEN))),
            Just(format!("\"{}\"", "x".repeat(MAX_SHORT_LEN + 1))),
            Just(format!("\"{}\"", "x".repeat(MAX_TEXT_LEN))),
            Just(format!("\"{}\"", "x".repeat(MAX_TEXT_LEN + 1))),
            Just(format!(
                "\"douyin:{}\"",
                "x".repeat(crate::identity::MAX_IDENTITY_LEN - 7)
            )),
            Just(format!(
                "\"douyin:{}\"",
                "x".repeat(crate::identity::MAX_IDENTITY_LEN - 6)
            )),
        ];
        (key.prop_map(str::to_string), value)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The fast path agrees with the full parser on every line it takes.
        #[test]
        fn fast_path_agrees_with_full_parser(fields in proptest::collection::vec(field(), 0..9)) {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let line = format!("{{{}}}", body.join(","));
            if let Some(fast) = parse_jsonl_fast(&line) {
                let full = serde_json::from_str::<serde_json::Value>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|v| parse_json_event(&v).map_err(|e| e.to_string()));
                match (fast, full) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a.to_event(), b),
                    (Err(_), Err(_)) => {}
                    (a, b) => prop_assert!(false, "{line}: fast {a:?} vs full {b:?}"),
                }
            }
        }
    }
}
