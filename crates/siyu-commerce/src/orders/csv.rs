//! The records of a marketplace CSV export (RFC 4180: quoted fields with
//! commas, doubled quotes and line breaks; a UTF-8 BOM; blank lines), each
//! with the line it starts on so a rejected row is named by its line.

/// One CSV record: the line it starts on and its cells.
pub type CsvRecord = (usize, Vec<String>);

/// The records of a CSV text (RFC 4180: quoted fields may hold commas,
/// quotes as `""` and line breaks; a leading UTF-8 BOM is skipped; blank
/// lines are skipped), each with the 1-based line it starts on.
pub fn csv_records(text: &str) -> Result<Vec<CsvRecord>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut in_quotes = false;
    let mut quoted_start = 0usize;
    let mut chars = text.chars().peekable();
    let end_record = |record: &mut Vec<String>,
                      field: &mut String,
                      records: &mut Vec<CsvRecord>,
                      start: usize| {
        record.push(std::mem::take(field));
        let r = std::mem::take(record);
        if !(r.len() == 1 && r[0].trim().is_empty()) {
            records.push((start, r));
        }
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quoted_start = line;
            }
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                end_record(&mut record, &mut field, &mut records, start_line);
                line += 1;
                start_line = line;
            }
            other => field.push(other),
        }
    }
    if in_quotes {
        return Err((
            quoted_start,
            "a quoted field is never closed (a `\"` is missing)".into(),
        ));
    }
    if !field.is_empty() || !record.is_empty() {
        end_record(&mut record, &mut field, &mut records, start_line);
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
