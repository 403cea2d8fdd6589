//! The records of a marketplace CSV export (RFC 4180, read by the `csv`
//! crate: quoted fields with commas, doubled quotes and line breaks; a
//! UTF-8 BOM; blank lines), each with the line it starts on so a rejected
//! row is named by its line.

/// One CSV record: the line it starts on and its cells.
pub type CsvRecord = (usize, Vec<String>);

/// The records of a CSV text (RFC 4180: quoted fields may hold commas,
/// quotes as `""` and line breaks; a leading UTF-8 BOM is skipped; blank
/// lines are skipped), each with the 1-based line it starts on. A quoted
/// field never closed is an error naming the line its record starts on.
pub fn csv_records(text: &str) -> Result<Vec<CsvRecord>, (usize, String)> {
    let text = text
        .strip_prefix(siyu_domain::line::UTF8_BOM)
        .unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut record = ::csv::StringRecord::new();
    let bytes = text.as_bytes();
    // Lines counted up to `counted` (the csv crate's own line count lags
    // by one after each CRLF).
    let (mut counted, mut line) = (0usize, 1usize);
    let mut line_at = |at: usize| {
        line += bytes[counted..at].iter().filter(|&&b| b == b'\n').count();
        counted = at;
        line
    };
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(start, |p| p.byte() as usize);
                return Err((
                    line_at(at.min(bytes.len())),
                    format!("is not valid CSV: {e}"),
                ));
            }
        }
        // Where the record's first field starts: past a CRLF's `\n`.
        let mut at = record.position().map_or(start, |p| p.byte() as usize);
        while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        let line = line_at(at);
        // The csv crate reads a quote left open to the end of the text.
        if siyu_domain::csv_record_len(&bytes[at..]).is_none() {
            return Err((
                line,
                "a quoted field is never closed (a `\"` is missing)".into(),
            ));
        }
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        records.push((line, record.iter().map(str::to_string).collect()));
    }
    Ok(records)
}

/// A cell as exported: trimmed, and without the `="…"` or leading tab
/// spreadsheets use to keep long order ids from turning into numbers.
pub(crate) fn clean_cell(s: &str) -> &str {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let t = t
        .strip_prefix("=\"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(t);
    t.trim()
}
