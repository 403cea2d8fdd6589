//! `siyu bench`: loads the reference workload (../shared/bench/WORKLOAD.md)
//! and answers Q0–Q6 through the same engine, segment language and
//! analytics the server uses, writing `q0.csv` … `q6.csv` byte-exact.
//! With `--stream` it then applies `stream.jsonl` one event at a time and
//! records every Q1 membership change.
//!
//! The clock is the workload's NOW, passed in; nothing here reads the time
//! of day except to measure durations.

use crate::bulk;
use anyhow::{bail, Context, Result};
use siyu_domain::{parse_json_event, parse_jsonl_fast, DAY, WEEK};
use siyu_engine::{analytics, segment, Engine, RawEvent};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workload's NOW: 2026-11-01T00:00:00Z.
pub const WORKLOAD_NOW: i64 = 1_793_491_200;
/// Q1 in the segment language.
pub const Q1_SEGMENT: &str = r#"purchases(last 90d) >= 2 and net_spend >= 500.00 and first_channel = "douyin" and not opted_out"#;
const Q1_NAME: &str = "q1_douyin_repeat_buyers";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Directory holding events.jsonl (or events.csv) and spend.csv.
    #[arg(long)]
    pub data: PathBuf,
    /// Directory the answers q0.csv … q6.csv are written to.
    #[arg(long)]
    pub out: PathBuf,
    /// Then apply stream.jsonl one event at a time (q1_stream.csv, after_stream/).
    #[arg(long)]
    pub stream: bool,
    /// Load events.csv even if events.jsonl exists.
    #[arg(long)]
    pub csv: bool,
    /// Parser threads (default: cores − 1, at least 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The clock, epoch seconds (default: the workload's NOW).
    #[arg(long, default_value_t = WORKLOAD_NOW)]
    pub now: i64,
}

struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push((name.to_string(), t.elapsed()));
        out
    }
}

fn read_spend(path: &Path) -> Result<Vec<(String, i64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header.trim() != "day,channel,spend" {
        bail!(
            "{}:1: header must be `day,channel,spend`, found `{header}`",
            path.display()
        );
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut it = line.split(',');
        let (Some(day), Some(channel), Some(spend), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            bail!(
                "{}:{}: expected 3 columns day,channel,spend",
                path.display(),
                i + 2
            );
        };
        if siyu_domain::time::parse_date(day).is_none() {
            bail!(
                "{}:{}: day `{day}` must be YYYY-MM-DD",
                path.display(),
                i + 2
            );
        }
        let spend: i64 = spend.parse().with_context(|| {
            format!(
                "{}:{}: spend `{spend}` must be integer cents",
                path.display(),
                i + 2
            )
        })?;
        rows.push((channel.to_string(), spend));
    }
    Ok(rows)
}

/// The seven answers, rendered exactly as WORKLOAD.md specifies.
fn answer_all(
    engine: &mut Engine,
    spend: &[(String, i64)],
    now: i64,
    t: &mut Timings,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    out.push(t.time("q0 identities", || {
        format!(
            "persons,identities\n{},{}\n",
            engine.person_count(),
            engine.identity_count()
        )
    }));
    out.push(t.time("q1 segment", || {
        if !engine.live_segments().is_live() {
            engine.start_live(now);
        }
        let segs = engine.live_segments();
        let idx = segs
            .index_of(Q1_NAME)
            .expect("Q1 segment is defined before loading");
        let mut ids: Vec<&str> = segs.segments()[idx as usize]
            .members()
            .map(|p| engine.canonical_id(p))
            .collect();
        ids.sort_unstable();
        let mut s = String::with_capacity(ids.len() * 22 + 16);
        s.push_str("canonical_id\n");
        for id in ids {
            s.push_str(id);
            s.push('\n');
        }
        s
    }));
    out.push(t.time("q2 rfm", || {
        let grid = analytics::rfm_grid(engine, now);
        let mut s = String::from("r,f,m,persons\n");
        for (r, plane) in grid.iter().enumerate() {
            for (f, row) in plane.iter().enumerate() {
                for (m, n) in row.iter().enumerate() {
                    let _ = writeln!(s, "{},{},{},{n}", r + 1, f + 1, m + 1);
                }
            }
        }
        s
    }));
    out.push(t.time("q3 funnel", || {
        let mut s = String::from("channel,entered,friended,converted\n");
        for r in analytics::first_touch_funnel(engine, 7 * DAY, 30 * DAY) {
            let _ = writeln!(
                s,
                "{},{},{},{}",
                r.channel, r.entered, r.friended, r.converted
            );
        }
        s
    }));
    out.push(t.time("q4 cohorts", || {
        let mut s = String::from("cohort,size,k0,k1,k2,k3,k4,k5,k6,k7,k8,k9,k10,k11,k12\n");
        for r in analytics::cohort_retention(engine, now - 364 * DAY, WEEK, 13) {
            let _ = write!(s, "{},{}", r.cohort, r.size);
            for k in r.active {
                let _ = write!(s, ",{k}");
            }
            s.push('\n');
        }
        s
    }));
    out.push(t.time("q5 referral", || {
        let sum = analytics::referral_summary(engine, 14 * DAY, &[10, 20], 10);
        let mut s = format!(
            "inviters,tier1,tier2\n{},{},{}\n\ncanonical_id,valid\n",
            sum.inviters, sum.tiers[0], sum.tiers[1]
        );
        for (id, n) in sum.top {
            let _ = writeln!(s, "{id},{n}");
        }
        s
    }));
    out.push(t.time("q6 channel roi", || {
        let mut s = String::from("channel,spend,revenue,persons\n");
        for r in analytics::channel_roi(engine, spend.iter().map(|(c, x)| (c.as_str(), *x))) {
            let _ = writeln!(s, "{},{},{},{}", r.channel, r.spend, r.revenue, r.persons);
        }
        s
    }));
    Ok(out)
}

fn write_answers(dir: &Path, answers: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, a) in answers.iter().enumerate() {
        let p = dir.join(format!("q{i}.csv"));
        std::fs::write(&p, a).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Peak resident set size of this process, from /proc (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(args: BenchArgs) -> Result<()> {
    // The start of the end-to-end time: files in, answers written (what
    // `total wall` reports; the process's own start is microseconds before).
    let started = Instant::now();
    let jsonl = args.data.join("events.jsonl");
    let csv = args.data.join("events.csv");
    let events = if !args.csv && jsonl.exists() {
        jsonl
    } else {
        csv
    };
    if !events.exists() {
        bail!(
            "no events.jsonl or events.csv in {}; generate them with shared/bench/gen.py",
            args.data.display()
        );
    }
    let spend = read_spend(&args.data.join("spend.csv"))?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    });

    // A log's engine, as `siyu serve` and `siyu import` make it: it also
    // keeps each identity's offsets (here the file's `seq`; seq 0 is not
    // recorded, as no log has an offset 0), so the memory printed below
    // is what a server holds for the same events.
    let mut engine = Engine::for_log();
    // Whole-population passes (the questions, start_live) use every core.
    engine.set_parallelism(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let q1 = segment::parse(Q1_SEGMENT).map_err(|e| anyhow::anyhow!("Q1 segment: {e}"))?;
    engine.define_segment(Q1_NAME, q1, Q1_SEGMENT.to_string())?;

    eprintln!("loading {} ({threads} parser threads)…", events.display());
    let stats = bulk::load_file(&mut engine, &events, threads)?;
    for e in &stats.errors {
        eprintln!("{}:{}: {}", events.display(), e.line, e.error);
    }
    if stats.rejected > 0 {
        bail!(
            "{} lines rejected; the bench needs a clean file",
            stats.rejected
        );
    }
    // As `siyu serve` does after replaying the log: drop the slots of
    // merged-away persons before going live.
    engine.compact_slots();
    let mut t = Timings(Vec::new());
    let answers = answer_all(&mut engine, &spend, args.now, &mut t)?;
    write_answers(&args.out, &answers)?;
    let wall = started.elapsed();

    let total: Duration = t.0.iter().map(|(_, d)| *d).sum();
    println!(
        "siyu bench: {} events, {} persons, {} identities",
        stats.accepted,
        engine.person_count(),
        engine.identity_count()
    );
    println!("{:<28} {:>10}", "step", "seconds");
    println!(
        "{:<28} {:>10.3}",
        "load (parse+resolve+build)",
        stats.wall.as_secs_f64()
    );
    println!(
        "{:<28} {:>10.3}",
        "  parse (parser threads, cpu)",
        stats.parse_busy.as_secs_f64()
    );
    println!(
        "{:<28} {:>10.3}",
        "  identity + state (apply)",
        stats.apply_busy.as_secs_f64()
    );
    for (name, d) in &t.0 {
        println!("{name:<28} {:>10.4}", d.as_secs_f64());
    }
    engine.shrink_to_fit();
    let mem = engine.memory();
    let mib = |b: usize| b as f64 / 1048576.0;
    let persons = engine.person_count().max(1) as f64;
    let per_person = mem.per_person_part() as f64 / persons;
    let per_event = mem.per_event_part() as f64 / stats.accepted.max(1) as f64;
    println!(
        "engine heap: {:.1} MiB = persons {:.1} ({} slots, {} merged away) + identities {:.1} + extra {:.1} + conversations {:.1} + segments {:.1} + log index/identity {:.1} | purchase/read lists {:.1} + referrals {:.1} + log index/event {:.1}",
        mib(mem.total()),
        mib(mem.persons),
        mem.slots,
        mem.slots - engine.person_count(),
        mib(mem.identities),
        mib(mem.extra),
        mib(mem.conversations),
        mib(mem.segments),
        mib(mem.log_index_identities),
        mib(mem.event_lists),
        mib(mem.referrals),
        mib(mem.log_index_events),
    );
    println!(
        "  = {per_person:.0} B/person (left of |, over live persons) + {per_event:.1} B/event (right of |); peak RSS {:.1} MiB",
        peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0
    );

    let snap_started = Instant::now();
    let snapshot = engine.to_snapshot(stats.accepted);
    let snap_write = snap_started.elapsed();
    let restore_started = Instant::now();
    let restored =
        Engine::from_snapshot(&snapshot).map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let snap_read = restore_started.elapsed();
    drop(restored);
    println!(
        "snapshot: {:.1} MiB, encode {:.3} s, restore {:.3} s (vs load {:.3} s)",
        snapshot.len() as f64 / 1048576.0,
        snap_write.as_secs_f64(),
        snap_read.as_secs_f64(),
        stats.wall.as_secs_f64()
    );
    drop(snapshot);

    if args.stream {
        stream(&mut engine, &args, &spend)?;
    }
    // Files in → every answer written (load, identity resolution, the
    // questions, the CSVs), the end-to-end figure DuckDB's is compared with.
    println!("total wall: {:.4} s", wall.as_secs_f64());
    println!("total queries: {:.4} s", total.as_secs_f64());
    Ok(())
}

/// Applies stream.jsonl one event at a time, writing q1_stream.csv and the
/// answers over events + stream.
fn stream(engine: &mut Engine, args: &BenchArgs, spend: &[(String, i64)]) -> Result<()> {
    let path = args.data.join("stream.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let q1 = engine.live_segments().index_of(Q1_NAME).expect("defined");
    let mut changes_csv = String::from("seq,change,canonical_id\n");
    let mut latencies = Vec::new();
    let mut change_latencies = Vec::new();
    let started = Instant::now();
    let mut n = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let arrived = Instant::now();
        let owned;
        let raw = match parse_jsonl_fast(line) {
            Some(Ok(e)) => RawEvent {
                seq: e.seq.unwrap_or(i as u64),
                id: e.id,
                ts: e.ts,
                identity: e.identity,
                identity_hash: None,
                event_type: e.event_type,
                channel: e.channel,
                amount: e.amount,
                reference: e.reference,
                group: e.group,
                campaign: None,
                device: None,
                ip: None,
                name: None,
                tie: None,
            },
            Some(Err(err)) => bail!("{}:{}: {err}", path.display(), i + 1),
            None => {
                let v: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", path.display(), i + 1))?;
                owned = parse_json_event(&v)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
                RawEvent::from_event(owned.seq.unwrap_or(i as u64), &owned)
            }
        };
        let seq = raw.seq;
        let applied = engine.apply_raw(raw);
        let elapsed = arrived.elapsed();
        latencies.push(elapsed);
        let mut changed = false;
        for c in applied.changes.iter().filter(|c| c.segment == q1) {
            changed = true;
            let _ = writeln!(
                changes_csv,
                "{seq},{},{}",
                if c.entered { "enter" } else { "exit" },
                c.canonical_id
            );
        }
        if changed {
            change_latencies.push(elapsed);
        }
        n += 1;
    }
    let wall = started.elapsed();
    let after = args.out.join("after_stream");
    std::fs::create_dir_all(&after)?;
    std::fs::write(after.join("q1_stream.csv"), &changes_csv)?;
    let mut t = Timings(Vec::new());
    let answers = answer_all(engine, spend, args.now, &mut t)?;
    write_answers(&after, &answers)?;
    latencies.sort_unstable();
    change_latencies.sort_unstable();
    println!(
        "stream: {n} events in {:.3} s = {:.0} events/s; event → segment change visible + trigger emitted: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over all events; p50 {:.1} µs, p99 {:.1} µs over the {} events that changed Q1",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        percentile(&change_latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&change_latencies, 0.99).as_secs_f64() * 1e6,
        change_latencies.len(),
    );
    let total: Duration = t.0.iter().map(|(_, d)| *d).sum();
    println!("after stream queries: {:.4} s", total.as_secs_f64());
    Ok(())
}
