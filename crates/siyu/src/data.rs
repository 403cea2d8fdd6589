//! `siyu import` and `siyu export`: moving the brand's data in and out.
//! Import goes through the same validation, store and engine as the server
//! (merges are recorded); export writes everything re-importable.

use crate::bulk;
use anyhow::{bail, Context, Result};
use siyu_domain::time::format_rfc3339;
use siyu_domain::wire::to_json;
use siyu_domain::{Event, Identity};
use siyu_engine::Engine;
use siyu_server::writer::merge_record;
use siyu_store::{Appended, MergeRecord, Store};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Where the data lives (shared by every command that touches it).
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "SIYU_DATA_DIR", default_value = "./siyu-data")]
    pub data_dir: PathBuf,
    /// postgres://user@host:5432/db to use PostgreSQL instead.
    #[arg(long, env = "SIYU_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL schema for siyu's tables (created if missing).
    #[arg(long, env = "SIYU_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl StoreArgs {
    /// The server configuration naming the same store.
    pub fn config(&self) -> siyu_server::config::Config {
        siyu_server::config::Config {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            database_schema: self.database_schema.clone(),
            ..Default::default()
        }
    }

    pub fn open(&self) -> Result<Box<dyn Store>> {
        siyu_server::config::open_store(
            &self.data_dir,
            self.database_url.as_deref(),
            self.database_schema.as_deref(),
        )
    }
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Event files: .jsonl / .ndjson (wire format v1) or .csv (header with ts,identity,type,…).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Parser threads (default: cores − 1, at least 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output directory (created; existing files are replaced).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Rebuilds the engine from the store (definitions, then the log).
pub fn engine_from_store(store: &mut dyn Store) -> Result<Engine> {
    let mut engine = Engine::new();
    siyu_server::definitions::load_into(store, &mut engine)?;
    siyu_server::writer::replay_log(store, &mut engine, 0)?;
    Ok(engine)
}

/// Work for the import's store thread.
enum StoreJob {
    Append(Vec<Event>),
    Merges(Vec<MergeRecord>),
}

/// Appends in flight at once: the store works on one batch while the
/// calling thread applies the previous one to the engine.
const IN_FLIGHT: usize = 2;

/// A rough size of one event in an import file, in bytes (the bench
/// set has ~60 per CSV line and ~115 per JSONL line), to estimate an
/// import's size before reading it.
const BYTES_PER_EVENT: u64 = 100;

/// Counts of one import.
#[derive(Default)]
struct Tally {
    accepted: u64,
    duplicates: u64,
    /// The offset the next appended event gets if nobody else appends.
    next_offset: u64,
    /// Another writer appended meanwhile: this engine is not a prefix of
    /// the log, so it must not become a snapshot.
    interleaved: bool,
}

/// Applies one appended batch to the engine (in log order) and returns the
/// merges it caused, for the audit table.
fn apply_appended(
    engine: &mut Engine,
    events: &[Event],
    results: &[Appended],
    tally: &mut Tally,
) -> Vec<MergeRecord> {
    let mut merges = Vec::new();
    for (e, r) in events.iter().zip(results) {
        match r {
            Appended::New(offset) => {
                tally.accepted += 1;
                tally.interleaved |= *offset != tally.next_offset;
                tally.next_offset = offset + 1;
                merges.extend(
                    engine
                        .apply(*offset, e)
                        .merges
                        .into_iter()
                        .filter_map(|m| merge_record(*offset, e.ts, m)),
                );
            }
            Appended::Duplicate(_) => tally.duplicates += 1,
        }
    }
    merges
}

/// Import pipeline: parser threads (bulk.rs) → this thread (owned events,
/// engine) ⇄ a store thread (one transaction per chunk of ~40 000 events,
/// merge records). The engine applies a batch only after the store
/// returned its offsets, so it sees exactly the log, in order.
pub fn import(args: ImportArgs) -> Result<()> {
    let mut store = args.store.open()?;
    let started = Instant::now();
    // The head before the engine reads the log: anything appended later
    // shows as a gap in our offsets (see `Tally::interleaved`).
    let head = store.last_offset()?;
    let mut engine = engine_from_store(store.as_mut())?;
    let persons_before = engine.person_count();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    });
    let mut tally = Tally {
        next_offset: head + 1,
        ..Tally::default()
    };
    let mut rejected = 0u64;
    // A large import into a small log may let the store drop its secondary
    // indexes and build them once at the end (see `Store::begin_bulk_load`).
    let bytes: u64 = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    store
        .begin_bulk_load(bytes / BYTES_PER_EVENT)
        .context("preparing the store for a bulk load")?;
    let loaded = std::thread::scope(|scope| -> Result<()> {
        let (job_tx, job_rx) = std::sync::mpsc::channel::<StoreJob>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(Vec<Event>, Vec<Appended>)>();
        let store = &mut store;
        let writer = scope.spawn(move || -> Result<()> {
            for job in job_rx {
                match job {
                    StoreJob::Append(events) => {
                        let results = store.append(&events).context("appending to the store")?;
                        if done_tx.send((events, results)).is_err() {
                            break;
                        }
                    }
                    StoreJob::Merges(merges) => {
                        store.record_merges(&merges).context("recording merges")?
                    }
                }
            }
            Ok(())
        });
        let mut in_flight = 0usize;
        // Takes one appended batch back and applies it; an Err means the
        // store thread stopped (its error comes from `join`).
        let finish_one = |engine: &mut Engine, tally: &mut Tally| -> Result<()> {
            let (events, results) = done_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("the store stopped"))?;
            let merges = apply_appended(engine, &events, &results, tally);
            if !merges.is_empty() {
                job_tx
                    .send(StoreJob::Merges(merges))
                    .map_err(|_| anyhow::anyhow!("the store stopped"))?;
            }
            Ok(())
        };
        let mut result = Ok(());
        for file in &args.files {
            result = import_file(file, threads, args.quiet, |chunk| {
                job_tx
                    .send(StoreJob::Append(chunk.events()))
                    .map_err(|_| anyhow::anyhow!("the store stopped"))?;
                in_flight += 1;
                while in_flight >= IN_FLIGHT {
                    finish_one(&mut engine, &mut tally)?;
                    in_flight -= 1;
                }
                Ok(())
            })
            .map(|stats| rejected += stats);
            if result.is_err() {
                break;
            }
        }
        while result.is_ok() && in_flight > 0 {
            result = finish_one(&mut engine, &mut tally);
            in_flight -= 1;
        }
        drop(job_tx);
        let stored = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the store thread panicked"))?;
        // The store's own error says more than "the store stopped".
        stored.and(result)
    });
    // Also after a failed load: the events appended so far need their
    // indexes (were this skipped, the next open would build them).
    let ended = store
        .end_bulk_load()
        .context("building the store's indexes after the bulk load");
    loaded.and(ended)?;
    let secs = started.elapsed().as_secs_f64();
    let Tally {
        accepted,
        duplicates,
        next_offset,
        interleaved,
    } = tally;
    if accepted > 0 && !interleaved {
        // The next `siyu serve` starts from this instead of replaying the log.
        let path = siyu_server::snapshot_path(&args.store.config());
        // With PostgreSQL the data dir holds only the snapshot: skip it
        // rather than create a directory nobody asked for.
        let dir_exists = path.parent().is_some_and(|d| d.is_dir());
        let written = if dir_exists {
            siyu_server::write_snapshot(&path, &engine.to_snapshot(next_offset - 1))
        } else {
            Ok(())
        };
        if let Err(e) = written {
            eprintln!(
                "note: engine snapshot not written ({}: {e}); the server replays the log at start",
                path.display()
            );
        }
    }
    println!(
        "imported {} file(s): accepted {accepted}, duplicates {duplicates}, rejected {rejected}; persons {} (+{}); {:.2} s, {:.0} events/s",
        args.files.len(),
        engine.person_count(),
        engine.person_count() as i64 - persons_before as i64,
        secs,
        accepted as f64 / secs.max(1e-9)
    );
    if rejected > 0 {
        bail!("{rejected} line(s) were rejected (listed above with file:line); the other lines were imported");
    }
    Ok(())
}

/// Reads one file chunk by chunk into `consume`, with a progress bar;
/// prints the rejected lines (file:line: field: message, the first 20)
/// and returns how many were rejected.
fn import_file(
    file: &std::path::Path,
    threads: usize,
    quiet: bool,
    mut consume: impl FnMut(&bulk::Chunk) -> Result<()>,
) -> Result<u64> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(size)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(file.display().to_string());
    let mut bytes_done = 0u64;
    let stats = bulk::for_each_chunk(file, threads, |chunk| {
        consume(chunk)?;
        bytes_done += chunk.byte_len() as u64;
        bar.set_position(bytes_done.min(size));
        Ok(())
    })
    .with_context(|| format!("importing {}", file.display()))?;
    bar.finish_and_clear();
    for e in &stats.errors {
        eprintln!("{}:{}: {}", file.display(), e.line, e.error);
    }
    if stats.rejected > stats.errors.len() as u64 {
        eprintln!(
            "{}: … and {} more rejected lines",
            file.display(),
            stats.rejected - stats.errors.len() as u64
        );
    }
    Ok(stats.rejected)
}

/// Every recorded merge, oldest first: asked for by the identities of all
/// persons, a few thousand at a time (a merge naming identities of two
/// lookups is returned twice and kept once).
fn all_merges(store: &mut dyn Store, engine: &Engine) -> Result<Vec<MergeRecord>> {
    let identities: Vec<Identity> = engine
        .persons()
        .filter(|(p, _)| engine.identities_of(*p).len() > 1)
        .flat_map(|(p, _)| engine.identities_of(p))
        .filter_map(|s| Identity::parse(&s).ok())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut merges = Vec::new();
    for part in identities.chunks(5_000) {
        for m in store.merges_of(part).context("reading merge records")? {
            let key = (
                m.event_offset,
                m.identity.as_str().to_string(),
                m.linked.as_str().to_string(),
            );
            if seen.insert(key) {
                merges.push(m);
            }
        }
    }
    merges.sort_by_key(|m| m.event_offset);
    Ok(merges)
}

pub fn export(args: ExportArgs) -> Result<()> {
    let mut store = args.store.open()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let engine = engine_from_store(store.as_mut())?;
    let path = args.out.join("events.jsonl");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut n = 0u64;
    siyu_store::for_each_page(store.as_mut(), 0, |page| {
        for e in &page {
            serde_json::to_writer(&mut w, &to_json(&e.event))?;
            w.write_all(b"\n")?;
            n += 1;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    w.flush()?;
    let path = args.out.join("persons.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(w, "canonical_id,identity")?;
    let mut persons: Vec<(String, Vec<String>)> = engine
        .persons()
        .map(|(p, _)| (engine.canonical_id(p).to_string(), engine.identities_of(p)))
        .collect();
    persons.sort();
    for (canonical, ids) in &persons {
        for id in ids {
            writeln!(w, "{canonical},{id}")?;
        }
    }
    w.flush()?;
    let path = args.out.join("merges.jsonl");
    let merges = all_merges(store.as_mut(), &engine)?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    for m in &merges {
        serde_json::to_writer(
            &mut w,
            &serde_json::json!({"event_offset": m.event_offset, "ts": format_rfc3339(m.ts),
                "identity": m.identity.as_str(), "linked": m.linked.as_str(),
                "from": [m.from_a, m.from_b], "into": m.into}),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let path = args.out.join("audit.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for a in store.audit_log(usize::MAX >> 1)?.into_iter().rev() {
        serde_json::to_writer(
            &mut w,
            &serde_json::json!({"id": a.id, "at": a.at, "action": a.action, "subject": a.subject, "detail": a.detail}),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let path = args.out.join("settings.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for prefix in ["segment/", "property/", "spend"] {
        for (k, v) in store.list_settings(prefix)? {
            serde_json::to_writer(&mut w, &serde_json::json!({"key": k, "value": v}))?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    println!(
        "exported {n} events, {} persons and {} merges to {} (events.jsonl re-imports with `siyu import`)",
        persons.len(),
        merges.len(),
        args.out.display()
    );
    Ok(())
}
