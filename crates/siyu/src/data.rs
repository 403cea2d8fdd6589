//! `siyu import`: moving events in. Import goes through the same
//! validation, store and engine as the server (merges are recorded). The
//! export directory and its restore are `archive.rs`; its events come back
//! through [`load_events`] here.

use crate::bulk;
use anyhow::{bail, Context, Result};
use siyu_domain::Identity;
use siyu_engine::Engine;
use siyu_server::writer::merge_record;
use siyu_store::{Appended, EventRows, MergeRecord, Store};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Event files: .jsonl / .ndjson (wire format v1) or .csv (header with
    /// ts,identity,type,…); or one directory written by `siyu export`,
    /// restored with everything it holds into an empty store.
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
    /// Let this import's events trigger a running server's journeys and
    /// auto-replies. Without it an import is history: a server beside it
    /// applies the events but messages nobody. Even with it, events older
    /// than the server's `trigger_max_age_secs` (default 1 h) trigger nothing.
    #[arg(long)]
    pub trigger: bool,
}

/// The engine at the store's head, in bulk mode: from the data dir's
/// engine snapshot (or a newer one shared through the store) when the
/// store agrees with it, as `siyu serve` starts, then the definitions and
/// the log after it; else the whole log. Quarantined definitions are
/// logged by the loader and left out.
pub fn engine_from_store(store: &mut dyn Store, args: &StoreArgs) -> Result<Engine> {
    engine_start(store, args).map(|s| s.engine)
}

/// [`engine_from_store`] and where the engine came from.
pub struct EngineStart {
    pub engine: Engine,
    /// Whether a snapshot was used (else the whole log was replayed).
    pub from_snapshot: bool,
    /// Events replayed from the log.
    pub replayed: u64,
}

/// See [`engine_from_store`].
pub fn engine_start(store: &mut dyn Store, args: &StoreArgs) -> Result<EngineStart> {
    let config = args.config();
    let erasures = siyu_store::erasures(store)?;
    let chosen = siyu_server::snapshot::choose(
        store,
        &siyu_server::snapshot_path(&config),
        siyu_server::snapshot::shared_through_store(&config),
        erasures,
    );
    let rebuilt = siyu_server::writer::restore_to_head(
        store,
        chosen.map(siyu_server::snapshot::Chosen::engine),
    )?;
    Ok(EngineStart {
        engine: rebuilt.engine,
        from_snapshot: rebuilt.snapshot_events.is_some(),
        replayed: rebuilt.replayed,
    })
}

/// Work for the import's store thread.
enum StoreJob {
    Append(Arc<bulk::Chunk>),
    Merges(Vec<MergeRecord>),
}

/// Appends in flight at once: the store works on one batch while the
/// calling thread applies the previous one to the engine.
const IN_FLIGHT: usize = 2;

/// Merge records written to the store per transaction.
const MERGES_PER_TRANSACTION: usize = 100_000;

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

impl Tally {
    /// Counts `n` new events stored at offsets `first..first + n`.
    fn appended(&mut self, first: u64, n: u64) {
        self.accepted += n;
        self.interleaved |= first != self.next_offset;
        self.next_offset = first + n;
    }
}

/// Applies one appended chunk to the engine (in log order, each event with
/// its offset as the tie-breaker, exactly as a replay of the log would) and
/// returns the merges it caused, for the audit table.
///
/// The common case (every event new, none with properties or traits, no
/// computed property defined) goes through the engine's batch path with
/// the parser's identity hashes; anything else through [`Engine::apply`]
/// with the owned event.
fn apply_appended(
    engine: &mut Engine,
    chunk: &bulk::Chunk,
    results: &[Appended],
    tally: &mut Tally,
) -> Vec<MergeRecord> {
    let mut merges = Vec::new();
    let first = match results.first() {
        Some(Appended::New(o)) => *o,
        Some(Appended::Duplicate(_)) => 0,
        // A chunk whose every line was rejected: nothing was appended.
        None => return merges,
    };
    let dense = results
        .iter()
        .enumerate()
        .all(|(i, r)| *r == Appended::New(first + i as u64));
    if dense && !chunk.has_owned() && !engine.has_computed_properties() {
        tally.appended(first, results.len() as u64);
        engine.apply_batch_with(
            chunk.len(),
            |i| chunk.raw_event_at(i, first + i as u64),
            |i, applied| {
                if applied.merges.is_empty() {
                    return;
                }
                let offset = first + i as u64;
                let ts = chunk.raw_event_at(i, offset).ts;
                merges.extend(
                    applied
                        .merges
                        .into_iter()
                        .filter_map(|m| merge_record(offset, ts, m)),
                );
            },
        );
        return merges;
    }
    for (i, r) in results.iter().enumerate() {
        match r {
            Appended::New(offset) => {
                tally.appended(*offset, 1);
                let e = chunk.event(i);
                merges.extend(
                    engine
                        .apply(*offset, &e)
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

/// Import pipeline: parser threads (bulk.rs) → this thread (engine) ⇄ a
/// store thread (one transaction per chunk of ~70 000 CSV lines, merge
/// records). Both threads borrow the chunk's text; no owned `Event` is
/// built for a plain line. The engine applies a chunk only after the store
/// returned its offsets, so it sees exactly the log, in order. At the end
/// the store thread builds the indexes (see `Store::end_bulk_load`) while
/// this thread writes the engine snapshot.
pub fn import(args: ImportArgs) -> Result<()> {
    if let [dir] = &args.files[..] {
        if dir.is_dir() {
            return crate::archive::restore(&args, dir);
        }
    }
    load_events(&args, &args.files, Mode::Import)
}

/// Whether [`load_events`] adds to the brand's log or restores an export.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `siyu import FILE…`: merges are recorded as the engine finds them.
    Import,
    /// Part of `siyu import DIR` (an export into an empty store): the
    /// export's own merge rows are restored afterwards, so none are
    /// recorded here, and the events never trigger automation.
    Restore,
}

/// Appends `files` to the store's log through the engine (see [`import`]).
pub fn load_events(args: &ImportArgs, files: &[PathBuf], mode: Mode) -> Result<()> {
    let mut store = args.store.open()?;
    let started = Instant::now();
    // The head before the engine reads the log: anything appended later
    // shows as a gap in our offsets (see `Tally::interleaved`).
    let head = store.last_offset()?;
    // Before the first append: a server following the log sees whether
    // these events may trigger (`siyu_server::backfill`). A restore is
    // history and leaves the restored settings as they were.
    let trigger_range = match mode {
        Mode::Import => siyu_server::backfill::begin_import(
            store.as_mut(),
            args.trigger,
            siyu_server::writer::wall_clock(),
        )
        .context("recording whether this import may trigger automation")?,
        Mode::Restore => None,
    };
    // What the engine (and so its snapshot) reflects: an erasure
    // committed during the import must not be undone by the snapshot.
    let erasures = siyu_store::erasures(store.as_mut())?;
    let EngineStart {
        mut engine,
        from_snapshot,
        replayed,
    } = engine_start(store.as_mut(), &args.store)?;
    let engine_source = if from_snapshot {
        format!("the engine snapshot and {replayed} events after it")
    } else {
        format!("the whole log ({replayed} events)")
    };
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
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    store
        .begin_bulk_load(bytes / BYTES_PER_EVENT)
        .context("preparing the store for a bulk load")?;
    let mut load_secs = 0.0;
    let mut snapshot_secs = 0.0;
    let index_secs = std::thread::scope(|scope| -> Result<f64> {
        let (job_tx, job_rx) = std::sync::mpsc::channel::<StoreJob>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(Arc<bulk::Chunk>, Vec<Appended>)>();
        let store = &mut store;
        // Returns how long the index build took.
        let writer = scope.spawn(move || -> Result<f64> {
            let appended = (|| -> Result<()> {
                for job in job_rx {
                    match job {
                        StoreJob::Append(chunk) => {
                            let results = store
                                .append_rows(&*chunk)
                                .context("appending to the store")?;
                            if done_tx.send((chunk, results)).is_err() {
                                break;
                            }
                        }
                        StoreJob::Merges(merges) if mode == Mode::Import => {
                            store.record_merges(&merges).context("recording merges")?
                        }
                        StoreJob::Merges(_) => {}
                    }
                }
                Ok(())
            })();
            // Also after a failed load: the events appended so far need
            // their indexes (were this skipped, the next open would build
            // them).
            let building = Instant::now();
            let ended = store
                .end_bulk_load()
                .context("building the store's indexes after the bulk load");
            appended.and(ended)?;
            Ok(building.elapsed().as_secs_f64())
        });
        let mut in_flight = 0usize;
        // Merges go to the store in a few large transactions, not one per
        // chunk.
        let mut merges = Vec::new();
        let send_merges = |merges: &mut Vec<MergeRecord>| -> Result<()> {
            if merges.is_empty() {
                return Ok(());
            }
            job_tx
                .send(StoreJob::Merges(std::mem::take(merges)))
                .map_err(|_| anyhow::anyhow!("the store stopped"))
        };
        // Takes one appended chunk back and applies it; an Err means the
        // store thread stopped (its error comes from `join`).
        let mut finish_one = |engine: &mut Engine, tally: &mut Tally| -> Result<()> {
            let (chunk, results) = done_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("the store stopped"))?;
            merges.extend(apply_appended(engine, &chunk, &results, tally));
            if merges.len() >= MERGES_PER_TRANSACTION {
                send_merges(&mut merges)?;
            }
            Ok(())
        };
        let mut result = Ok(());
        for file in files {
            result = import_file(file, threads, args.quiet, |chunk| {
                job_tx
                    .send(StoreJob::Append(Arc::new(chunk)))
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
        // Also after a failure: these merges' events are stored.
        result = result.and(send_merges(&mut merges));
        // The store thread builds the indexes now (seconds on a large
        // load: say so rather than sit silent).
        drop(job_tx);
        load_secs = started.elapsed().as_secs_f64();
        let spinner = if args.quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        spinner.set_message("building indexes and writing the engine snapshot");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        if result.is_ok() && tally.accepted > 0 && !tally.interleaved {
            let writing = Instant::now();
            write_snapshot(&args.store, &engine, tally.next_offset - 1, erasures);
            snapshot_secs = writing.elapsed().as_secs_f64();
        }
        let stored = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the store thread panicked"))?;
        spinner.finish_and_clear();
        // The store's own error says more than "the store stopped".
        let index_secs = stored?;
        result.map(|()| index_secs)
    });
    // Also after a failure: the range ends at what was appended.
    if let Some(key) = &trigger_range {
        siyu_server::backfill::end_import(store.as_mut(), key)
            .context("closing this import's trigger range")?;
    }
    let index_secs = index_secs?;
    let secs = started.elapsed().as_secs_f64();
    let Tally {
        accepted,
        duplicates,
        ..
    } = tally;
    // An export of an earlier version may hold unkeyed phone hashes: then
    // the next server start (or import-orders) looks for them again. The
    // engine holds every identity of the log, so only a log that has one
    // pays for that scan (3 s at 11.5M events, ~21 s at 115M); a log
    // without one is marked as migrated, also when this import made the
    // store (its first start would otherwise scan it for nothing).
    if mode == Mode::Import {
        use siyu_server::privacy;
        let legacy = format!("{}:", privacy::LEGACY_PHONE_CHANNEL);
        let mut store = args.store.open()?;
        if !engine.search_identity_prefix(&legacy, 1).is_empty() {
            if accepted > 0 {
                store
                    .put_setting(privacy::PHONE_MIGRATION_KEY, None)
                    .context("asking for the phone hash migration")?;
            }
        } else if !privacy::phone_hashes_marked_keyed(store.as_mut())? {
            privacy::mark_phone_hashes_keyed(store.as_mut())
                .context("marking the phone hash migration done")?;
        }
    }
    println!(
        "imported {} file(s): accepted {accepted}, duplicates {duplicates}, rejected {rejected}; persons {} (+{}); {:.2} s, {:.0} events/s (load {load_secs:.2} s, then indexes {index_secs:.2} s alongside the engine snapshot {snapshot_secs:.2} s); the engine started from {engine_source}",
        files.len(),
        engine.person_count(),
        engine.person_count() as i64 - persons_before as i64,
        secs,
        accepted as f64 / secs.max(1e-9),
    );
    if rejected > 0 {
        bail!("{rejected} line(s) were rejected (listed above with file:line); the other lines were imported");
    }
    Ok(())
}

/// Writes the engine snapshot the next `siyu serve` starts from instead of
/// replaying the log (with PostgreSQL also stored in the database, where
/// every node finds it); a failure only costs that replay, so it is a note.
fn write_snapshot(store: &StoreArgs, engine: &Engine, last_offset: u64, erasures: u64) {
    let config = store.config();
    let shared = siyu_server::snapshot::shared_through_store(&config);
    let path = siyu_server::snapshot_path(&config);
    // With PostgreSQL the data dir holds only the snapshot: without one,
    // the file is a temporary one on its way into the database, rather
    // than a directory nobody asked for.
    let in_data_dir = path.parent().is_some_and(|d| d.is_dir());
    let path = match (in_data_dir, shared) {
        (true, _) => path,
        (false, true) => {
            std::env::temp_dir().join(format!("siyu-import-{}.snapshot", std::process::id()))
        }
        (false, false) => return,
    };
    let written = (|| -> Result<()> {
        let mut s = store.open()?;
        let position = siyu_server::snapshot::Position::of(s.as_mut(), last_offset, erasures)?;
        let unchanged = || siyu_store::erasures(s.as_mut()).is_ok_and(|n| n == erasures);
        if !siyu_server::write_snapshot_if(&path, engine, &position, unchanged)? {
            bail!("a person was erased during the import");
        }
        if shared {
            let now = siyu_server::writer::wall_clock();
            siyu_server::snapshot::share_file(store.open()?.as_mut(), &path, now)?;
        }
        Ok(())
    })();
    if !in_data_dir {
        let _ = std::fs::remove_file(&path);
    }
    if let Err(e) = written {
        eprintln!(
            "note: engine snapshot not written ({}: {e:#}); the server replays the log at start",
            path.display()
        );
    }
}

/// Reads one file chunk by chunk into `consume`, with a progress bar;
/// prints the rejected lines (file:line: field: message, the first 20)
/// and returns how many were rejected.
fn import_file(
    file: &std::path::Path,
    threads: usize,
    quiet: bool,
    mut consume: impl FnMut(bulk::Chunk) -> Result<()>,
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
    let stats = bulk::for_each_chunk(file, threads, true, |chunk| {
        bytes_done += chunk.byte_len() as u64;
        consume(chunk)?;
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
pub fn all_merges(store: &mut dyn Store, engine: &Engine) -> Result<Vec<MergeRecord>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain CSV chunk: 400 persons seen on two channels, every third
    /// one linking them with an identify (joins and merges), purchases,
    /// group joins and leaves, an unfriend.
    fn plain_csv() -> String {
        let mut s = String::new();
        let mut line = |ts: u64,
                        identity: &str,
                        ty: &str,
                        ch: &str,
                        amount: i64,
                        r: &str,
                        g: &str,
                        name: &str| {
            s.push_str(&format!(
                "{ts},{identity},{ty},{ch},{amount},{r},{g},{name}\n"
            ));
        };
        for p in 0..400u64 {
            let ts = 1_700_000_000 + p * 7;
            line(
                ts,
                &format!("douyin:d{p}"),
                "touch",
                "douyin",
                0,
                "",
                "",
                "",
            );
            line(
                ts + 1,
                &format!("wecom:w{p}"),
                "add_friend",
                "wecom",
                0,
                "",
                "",
                "",
            );
            if p % 3 == 0 {
                line(
                    ts + 2,
                    &format!("wecom:w{p}"),
                    "identify",
                    "wecom",
                    0,
                    &format!("douyin:d{p}"),
                    "",
                    "",
                );
            }
            if p % 5 == 0 {
                line(
                    ts + 3,
                    &format!("phone:h{}", p / 10),
                    "identify",
                    "offline",
                    0,
                    &format!("wecom:w{p}"),
                    "",
                    "",
                );
            }
            line(
                ts + 4,
                &format!("douyin:d{p}"),
                "purchase",
                "douyin",
                990 + p as i64,
                "",
                "",
                "",
            );
            line(
                ts + 5,
                &format!("wecom:w{p}"),
                "join_group",
                "wecom",
                0,
                "",
                &format!("g{}", p % 4),
                "",
            );
            if p % 7 == 0 {
                line(
                    ts + 6,
                    &format!("wecom:w{p}"),
                    "leave_group",
                    "wecom",
                    0,
                    "",
                    &format!("g{}", p % 4),
                    "",
                );
                line(
                    ts + 6,
                    &format!("wecom:w{p}"),
                    "custom",
                    "wecom",
                    0,
                    "",
                    "",
                    "unfriend",
                );
            }
        }
        s
    }

    /// The import's batch path leaves the engine exactly as applying each
    /// stored event with its offset (what a replay of the log does), and
    /// reports the same merges.
    #[test]
    fn batch_path_equals_applying_each_event() {
        let file = std::env::temp_dir().join(format!("siyu-batch-path-{}.csv", std::process::id()));
        std::fs::write(
            &file,
            format!(
                "ts,identity,type,channel,amount,ref,group,name\n{}",
                plain_csv()
            ),
        )
        .unwrap();
        let mut chunks = Vec::new();
        bulk::for_each_chunk(&file, 1, false, |c| {
            chunks.push(c);
            Ok(())
        })
        .unwrap();
        std::fs::remove_file(&file).unwrap();
        let head = 100u64;
        let (mut fast, mut each) = (Engine::for_log(), Engine::for_log());
        let mut tally = Tally {
            next_offset: head + 1,
            ..Tally::default()
        };
        let mut fast_merges = Vec::new();
        let mut each_merges = Vec::new();
        let mut offset = head;
        for chunk in &chunks {
            assert!(!chunk.has_owned());
            let results: Vec<Appended> = (0..chunk.len())
                .map(|_| {
                    offset += 1;
                    Appended::New(offset)
                })
                .collect();
            fast_merges.extend(apply_appended(&mut fast, chunk, &results, &mut tally));
            for (i, r) in results.iter().enumerate() {
                let Appended::New(o) = r else { unreachable!() };
                let e = chunk.event(i);
                each_merges.extend(
                    each.apply(*o, &e)
                        .merges
                        .into_iter()
                        .filter_map(|m| merge_record(*o, e.ts, m)),
                );
            }
        }
        assert_eq!(tally.accepted, offset - head);
        assert!(!tally.interleaved);
        assert!(fast_merges.len() > 20, "{}", fast_merges.len());
        assert_eq!(fast_merges, each_merges);
        assert_eq!(fast.person_count(), each.person_count());
        // A chunk of rejected lines appends nothing and changes no count.
        let before = (tally.accepted, tally.next_offset);
        let empty = &chunks[0];
        assert!(apply_appended(&mut fast, empty, &[], &mut tally).is_empty());
        assert_eq!((tally.accepted, tally.next_offset), before);
        assert!(!tally.interleaved);
        assert!(
            fast.to_snapshot(offset) == each.to_snapshot(offset),
            "snapshots differ"
        );
    }
}
