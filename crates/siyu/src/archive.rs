//! `siyu export` and its restore (`siyu import DIR`): everything the brand
//! owns, in one self-describing directory.
//!
//! Why a directory of JSONL files with a manifest: each file holds one kind
//! and reads with standard tools; `manifest.json` says the format version,
//! the siyu version and, per file, its lines, bytes and SHA-256, so a
//! restore refuses a truncated or edited export before it touches a store.
//!
//! What the directory holds:
//! - `events.jsonl`: the log in wire format v1, in log order, every event
//!   with its id (re-importable on its own with `siyu import FILE`).
//! - `settings/<kind>.jsonl`: every settings row as `{key, value}`, one file
//!   per first key segment, whatever the value holds (so a field another
//!   change adds to a stored definition, such as an `archived` flag, is
//!   carried without this module knowing it): segments, properties,
//!   templates, journeys with every version (`journey/<name>/<version>`),
//!   auto-reply rules, guardrails, campaigns with their reward ledger and
//!   overrides, groups, operators and their console accounts (argon2
//!   hashes, never a password), live codes and seats, content, the spend
//!   table, API keys (their SHA-256 and scopes, never the key: restored
//!   keys keep working), link ids, and the workspace secret
//!   (`privacy/secret`: phone hashes and erasure pseudonyms depend on it).
//!   Guard the directory like the database: it is created readable by its
//!   owner only.
//! - `tables/<table>.jsonl`: every row of each side table
//!   (`siyu_store::dump::SIDE_TABLES`: merges, audit log, segment history,
//!   enrollments, outbox history, consent ledger, tasks, send attempts),
//!   with its ids and timestamps.
//! - `events.parquet` (`--format parquet`): the same log as Parquet rows
//!   for analytics tools (`parquet_log.rs`), not read by a restore.
//! - `persons.csv` and `merges.jsonl`: readable views (canonical id →
//!   identities; merges with RFC 3339 times), not read by a restore.
//!
//! Not exported (the manifest lists it under `not_exported`): console
//! sessions (bearer credentials; operators sign in again), and connector
//! secrets, which live in the configuration file or environment, never in
//! the store. Erased persons are in no file: erasure deleted their events
//! and automation rows and left only their pseudonym in settings and audit.
//!
//! A restore works only into an empty store and keeps every id, version
//! and timestamp. Log offsets are kept when the log has no holes; erasure
//! leaves holes (offsets are never reused), and then the restored log is
//! numbered densely and the merge rows' `event_offset` with it (the
//! manifest's `log.holes`).

use crate::data::{self, ImportArgs, StoreArgs};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use siyu_domain::time::format_rfc3339;
use siyu_domain::wire::to_json;
use siyu_store::dump::{self, SIDE_TABLES};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output directory (created readable by its owner only; files of an
    /// earlier export in it are replaced). Restore it with `siyu import DIR`.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// `parquet` also writes the log as `events.parquet` (a view for
    /// analytics tools; a restore reads `events.jsonl`).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
}

/// The formats of the log in an export.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `events.jsonl` only.
    Jsonl,
    /// `events.jsonl` and `events.parquet`.
    Parquet,
}

/// `manifest.json`'s `format`.
const FORMAT: &str = "siyu-export";
/// The layout this build writes and reads; a newer one is refused.
const FORMAT_VERSION: u64 = 1;
const MANIFEST: &str = "manifest.json";
const EVENTS_FILE: &str = "events.jsonl";
/// The log as Parquet (`--format parquet`), a view (`parquet_log.rs`).
const PARQUET_FILE: &str = "events.parquet";
/// Settings never exported, by key prefix, and why (the manifest says so).
const NOT_EXPORTED_SETTINGS: &[(&str, &str)] = &[(
    "console_session/",
    "console sessions are bearer credentials: operators sign in again",
)];
const CONNECTOR_SECRETS: &str =
    "connector secrets live in the configuration file or environment, never in the store";
/// Rows restored per transaction.
const RESTORE_BATCH: usize = 10_000;

/// `manifest.json`.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u64,
    siyu_version: String,
    exported_at: String,
    log: LogShape,
    /// What the export leaves out on purpose, and why.
    not_exported: Vec<String>,
    files: Vec<FileEntry>,
}

/// The log the events came from.
#[derive(Serialize, Deserialize)]
struct LogShape {
    /// The highest offset ever assigned.
    head: u64,
    events: u64,
    /// Inclusive ranges of offsets with no event (erased), ascending.
    holes: Vec<[u64; 2]>,
}

/// One file of the export.
#[derive(Serialize, Deserialize)]
struct FileEntry {
    /// Relative to the export directory, `/`-separated.
    path: String,
    /// `events`, `settings`, `table` (restored) or `view` (not restored).
    kind: String,
    lines: u64,
    bytes: u64,
    sha256: String,
}

/// A file being written: counts its lines and bytes and hashes them.
struct Out {
    path: String,
    kind: &'static str,
    w: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    lines: u64,
    bytes: u64,
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

impl Out {
    fn create(dir: &Path, path: &str, kind: &'static str) -> Result<Out> {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file =
            std::fs::File::create(&full).with_context(|| format!("creating {}", full.display()))?;
        Ok(Out {
            path: path.to_string(),
            kind,
            w: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            lines: 0,
            bytes: 0,
        })
    }

    fn json_line(&mut self, v: &impl Serialize) -> Result<()> {
        serde_json::to_writer(&mut *self, v)?;
        self.text_line("")
    }

    fn text_line(&mut self, text: &str) -> Result<()> {
        self.write_all(text.as_bytes())?;
        self.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<FileEntry> {
        self.w
            .flush()
            .with_context(|| format!("writing {}", self.path))?;
        self.w
            .get_ref()
            .sync_all()
            .with_context(|| format!("syncing {}", self.path))?;
        Ok(FileEntry {
            path: self.path,
            kind: self.kind.to_string(),
            lines: self.lines,
            bytes: self.bytes,
            sha256: hex(&self.hash.finalize()),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The settings file of a key: its first segment (`journey/a/000002` →
/// `settings/journey.jsonl`), in characters safe in a file name.
fn settings_file(key: &str) -> String {
    let kind: String = key
        .split('/')
        .next()
        .unwrap_or(key)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("settings/{kind}.jsonl")
}

fn bar(quiet: bool, len: u64, message: &str) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Creates the export directory readable by its owner only (it holds
/// password and key hashes and the workspace secret).
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // Files of an earlier export of other kinds would linger unlisted.
    for sub in ["settings", "tables"] {
        let d = dir.join(sub);
        if d.is_dir() {
            std::fs::remove_dir_all(&d).with_context(|| format!("replacing {}", d.display()))?;
        }
    }
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let started = Instant::now();
    let mut store = args.store.open()?;
    create_private_dir(&args.out)?;
    let mut files = Vec::new();

    // The log, in wire format, noting the holes erasure left.
    let head = store.last_offset()?;
    let progress = bar(args.quiet, head, "events");
    let mut out = Out::create(&args.out, EVENTS_FILE, "events")?;
    let mut parquet = match args.format {
        ExportFormat::Parquet => Some(crate::parquet_log::ParquetLog::new(Out::create(
            &args.out,
            PARQUET_FILE,
            "view",
        )?)?),
        ExportFormat::Jsonl => None,
    };
    let mut holes: Vec<[u64; 2]> = Vec::new();
    let mut expected = 1u64;
    siyu_store::for_each_page(store.as_mut(), 0, |page| {
        for e in &page {
            if e.offset > expected {
                holes.push([expected, e.offset - 1]);
            }
            expected = e.offset + 1;
            out.json_line(&to_json(&e.event))?;
            if let Some(p) = &mut parquet {
                p.push(e.offset, &e.event)?;
            }
        }
        progress.set_position(expected - 1);
        Ok::<(), anyhow::Error>(())
    })?;
    if head >= expected {
        holes.push([expected, head]);
    }
    progress.finish_and_clear();
    let events = out.lines;
    files.push(out.finish()?);
    if let Some(p) = parquet {
        let mut out = p.finish()?;
        // A Parquet file has rows, not lines: one per event.
        out.lines = events;
        files.push(out.finish()?);
    }

    // Settings, one file per kind.
    let mut by_file: BTreeMap<String, Out> = BTreeMap::new();
    let mut skipped = 0usize;
    for (key, value) in store.list_settings("").context("reading settings")? {
        if NOT_EXPORTED_SETTINGS
            .iter()
            .any(|(prefix, _)| key.starts_with(prefix))
        {
            skipped += 1;
            continue;
        }
        let path = settings_file(&key);
        let out = match by_file.entry(path) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let out = Out::create(&args.out, v.key(), "settings")?;
                v.insert(out)
            }
        };
        out.json_line(&serde_json::json!({"key": key, "value": value}))?;
    }
    for (_, out) in by_file {
        files.push(out.finish()?);
    }

    // Side tables, row by row with their ids.
    for table in SIDE_TABLES {
        let rows = store
            .side_table_rows(table)
            .with_context(|| format!("reading table {}", table.name))?;
        let mut out = Out::create(&args.out, &format!("tables/{}.jsonl", table.name), "table")?;
        for r in &rows {
            out.json_line(r)?;
        }
        files.push(out.finish()?);
    }

    // Readable views: persons and merges.
    let spinner = bar(
        args.quiet,
        0,
        "persons (the engine: its snapshot and the log after it)",
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let engine = data::engine_from_store(store.as_mut(), &args.store)?;
    let mut persons: Vec<(String, Vec<String>)> = engine
        .persons()
        .map(|(p, _)| (engine.canonical_id(p).to_string(), engine.identities_of(p)))
        .collect();
    persons.sort();
    let mut out = Out::create(&args.out, "persons.csv", "view")?;
    out.text_line("canonical_id,identity")?;
    for (canonical, ids) in &persons {
        for id in ids {
            out.text_line(&format!("{canonical},{id}"))?;
        }
    }
    files.push(out.finish()?);
    let merges = data::all_merges(store.as_mut(), &engine)?;
    let mut out = Out::create(&args.out, "merges.jsonl", "view")?;
    for m in &merges {
        out.json_line(
            &serde_json::json!({"event_offset": m.event_offset, "ts": format_rfc3339(m.ts),
                "identity": m.identity.as_str(), "linked": m.linked.as_str(),
                "from": [m.from_a, m.from_b], "into": m.into}),
        )?;
    }
    files.push(out.finish()?);
    spinner.finish_and_clear();

    let mut not_exported: Vec<String> = NOT_EXPORTED_SETTINGS
        .iter()
        .map(|(prefix, why)| format!("settings {prefix}*: {why}"))
        .collect();
    not_exported.push(CONNECTOR_SECRETS.to_string());
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        siyu_version: env!("CARGO_PKG_VERSION").to_string(),
        exported_at: format_rfc3339(siyu_server::writer::wall_clock()),
        log: LogShape {
            head,
            events,
            holes,
        },
        not_exported,
        files,
    };
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let path = args.out.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let count = |kind: &str| -> u64 {
        manifest
            .files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.lines)
            .sum()
    };
    println!(
        "exported {events} events, {} settings rows ({skipped} sessions left out), {} table rows, {} persons and {} merges to {} ({} files, {bytes} bytes, {:.2} s); restore with `siyu import {}` into an empty store",
        count("settings"),
        count("table"),
        persons.len(),
        merges.len(),
        args.out.display(),
        manifest.files.len() + 1,
        started.elapsed().as_secs_f64(),
        args.out.display(),
    );
    Ok(())
}

/// Reads and checks `manifest.json`: the format, a version this build
/// reads, and file paths inside the directory.
fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "{} is a directory without {MANIFEST}: `siyu import DIR` restores a directory written by `siyu export`; to import event files, name them",
            dir.display()
        )
    })?;
    let m: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a siyu export manifest", path.display()))?;
    if m.format != FORMAT {
        bail!(
            "{}: format is `{}`, not `{FORMAT}`",
            path.display(),
            m.format
        );
    }
    if m.format_version > FORMAT_VERSION {
        bail!(
            "{}: export format version {} was written by siyu {}; this siyu ({}) reads up to version {FORMAT_VERSION}: upgrade siyu",
            path.display(),
            m.format_version,
            m.siyu_version,
            env!("CARGO_PKG_VERSION")
        );
    }
    for f in &m.files {
        let p = Path::new(&f.path);
        if !p.components().all(|c| matches!(c, Component::Normal(_))) {
            bail!(
                "{}: file path `{}` leaves the export directory",
                path.display(),
                f.path
            );
        }
    }
    Ok(m)
}

/// Checks every file's size and SHA-256 against the manifest.
fn verify(dir: &Path, m: &Manifest, quiet: bool) -> Result<()> {
    let total: u64 = m.files.iter().map(|f| f.bytes).sum();
    let progress = bar(quiet, total, "checking the export");
    for f in &m.files {
        let path = dir.join(&f.path);
        let mut file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            bytes += n as u64;
            progress.inc(n as u64);
        }
        if bytes != f.bytes || hex(&hash.finalize()) != f.sha256 {
            bail!(
                "{} does not match the manifest ({bytes} bytes, expected {} with sha256 {}): the export is damaged or was edited; export again",
                path.display(),
                f.bytes,
                f.sha256
            );
        }
    }
    progress.finish_and_clear();
    Ok(())
}

/// Each line of a JSONL file of the export, parsed.
fn read_jsonl<T: serde::de::DeserializeOwned>(
    dir: &Path,
    f: &FileEntry,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let path = dir.join(&f.path);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let v = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a row of this file", path.display(), i + 1))?;
        each(v)?;
    }
    Ok(())
}

/// One settings row of the export.
#[derive(Deserialize)]
struct SettingRow {
    key: String,
    value: serde_json::Value,
}

/// The offset a restored event gets: its exported offset less the holes
/// before it (the restored log is dense).
fn renumbered(holes: &[[u64; 2]], offset: u64) -> u64 {
    offset
        - holes
            .iter()
            .filter(|h| h[1] < offset)
            .map(|h| h[1] - h[0] + 1)
            .sum::<u64>()
}

/// `siyu import DIR`: restores an export into an empty store (settings,
/// then the events through the importer, then the side tables).
pub fn restore(args: &ImportArgs, dir: &Path) -> Result<()> {
    let started = Instant::now();
    let m = read_manifest(dir)?;
    verify(dir, &m, args.quiet)?;
    let mut store = args.store.open()?;
    if !store.is_empty_store()? {
        bail!(
            "the store is not empty ({} events ever appended, {} settings rows): an export is restored only into an empty store, so nothing it holds is mixed with other data. Point --data-dir (or --database-url/--database-schema) at a new store, or import only the events with `siyu import {}`",
            store.last_offset()?,
            store.list_settings("")?.len(),
            dir.join(EVENTS_FILE).display()
        );
    }
    // Settings first: the importer's engine loads the segment and property
    // definitions before the events, as the server would.
    let mut settings = 0u64;
    for f in m.files.iter().filter(|f| f.kind == "settings") {
        let mut rows = Vec::new();
        read_jsonl(dir, f, |r: SettingRow| {
            rows.push((r.key, Some(r.value)));
            Ok(())
        })?;
        for batch in rows.chunks(RESTORE_BATCH) {
            store
                .put_settings(batch)
                .with_context(|| format!("restoring {}", f.path))?;
        }
        settings += rows.len() as u64;
    }
    drop(store);
    let events: Vec<PathBuf> = m
        .files
        .iter()
        .filter(|f| f.kind == "events")
        .map(|f| dir.join(&f.path))
        .collect();
    data::load_events(args, &events, data::Mode::Restore)?;
    let mut store = args.store.open()?;
    let mut table_rows = 0u64;
    for f in m.files.iter().filter(|f| f.kind == "table") {
        let name = Path::new(&f.path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let Some(table) = dump::side_table(name) else {
            bail!("{}: no table `{name}` in this siyu; upgrade siyu", f.path);
        };
        let progress = bar(args.quiet, f.lines, &f.path);
        let mut rows = Vec::new();
        read_jsonl(
            dir,
            f,
            |mut r: serde_json::Map<String, serde_json::Value>| {
                if table.name == "merges" && !m.log.holes.is_empty() {
                    if let Some(o) = r.get("event_offset").and_then(|v| v.as_u64()) {
                        r.insert("event_offset".into(), renumbered(&m.log.holes, o).into());
                    }
                }
                rows.push(r);
                Ok(())
            },
        )?;
        for batch in rows.chunks(RESTORE_BATCH) {
            store
                .restore_side_table(table, batch)
                .with_context(|| format!("restoring {}", f.path))?;
            progress.inc(batch.len() as u64);
        }
        progress.finish_and_clear();
        table_rows += rows.len() as u64;
    }
    let holes = if m.log.holes.is_empty() {
        String::new()
    } else {
        format!(
            "; the exported log had {} hole(s) left by erasure: offsets are renumbered densely",
            m.log.holes.len()
        )
    };
    println!(
        "restored {} (siyu {}, exported {}): {} events, {settings} settings rows, {table_rows} table rows in {:.2} s{holes}",
        dir.display(),
        m.siyu_version,
        m.exported_at,
        m.log.events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_after_holes_move_down_by_the_holes_before_them() {
        let holes = [[3, 4], [8, 8]];
        assert_eq!(renumbered(&holes, 1), 1);
        assert_eq!(renumbered(&holes, 2), 2);
        assert_eq!(renumbered(&holes, 5), 3);
        assert_eq!(renumbered(&holes, 7), 5);
        assert_eq!(renumbered(&holes, 9), 6);
        assert_eq!(renumbered(&[], 9), 9);
    }

    #[test]
    fn settings_are_filed_by_their_first_key_segment() {
        assert_eq!(settings_file("journey/a/000002"), "settings/journey.jsonl");
        assert_eq!(settings_file("spend"), "settings/spend.jsonl");
        assert_eq!(settings_file("we ird.key/x"), "settings/we_ird_key.jsonl");
    }
}
