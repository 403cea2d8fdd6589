//! Measures `Store::append` throughput: small events in fixed-size batches,
//! one transaction (one durable commit) per batch.
//!
//! ```text
//! cargo run -p siyu-store --release --example append_throughput -- [sqlite|postgres] [EVENTS] [BATCH]
//! ```
//!
//! SQLite writes to a fresh temp dir (WAL, synchronous=FULL); PostgreSQL to
//! a fresh schema of `SIYU_TEST_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/test), dropped afterwards. Each run
//! appends the events twice: once with client ids (idempotency checked),
//! once without.

use siyu_domain::{parse_json_event, Event};
use siyu_store::{PostgresStore, SqliteStore, Store};
use std::time::Instant;

fn events(n: usize, with_ids: bool, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut v = serde_json::json!({
                "seq": i,
                "ts": 1_790_000_000 + (i as i64 / 10),
                "identity": format!("douyin:u{}", i % 50_000),
                "type": if i % 20 == 0 { "purchase" } else { "touch" },
            });
            if i % 20 == 0 {
                v["amount"] = 12_900.into();
            }
            if with_ids {
                v["id"] = format!("{tag}-{i}").into();
            }
            parse_json_event(&v).expect("benchmark events are valid")
        })
        .collect()
}

/// This process's user + system CPU seconds (Linux; 0 elsewhere), to tell
/// the store's cost from time spent waiting for a shared CPU or the disk.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

fn run(store: &mut dyn Store, label: &str, events: &[Event], batch: usize) {
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut new = 0usize;
    for chunk in events.chunks(batch) {
        new += store
            .append(chunk)
            .expect("append")
            .iter()
            .filter(|a| matches!(a, siyu_store::Appended::New(_)))
            .count();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    assert_eq!(new, events.len(), "every event is new");
    println!(
        "{label:<24} {:>8} events, batches of {batch:>6}: {secs:>6.3} s wall = {:>7.0} events/s; {cpu:>6.2} s cpu = {:>7.0} events/cpu-s",
        events.len(),
        events.len() as f64 / secs,
        events.len() as f64 / cpu.max(0.01),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map_or("sqlite", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500_000);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let with_ids = events(n, true, "bench");
    let without_ids = events(n, false, "");
    match backend {
        "sqlite" => {
            let dir =
                std::env::temp_dir().join(format!("siyu-append-bench-{}", std::process::id()));
            std::fs::remove_dir_all(&dir).ok();
            let mut s = SqliteStore::open(&dir).expect("open sqlite");
            run(&mut s, "sqlite, with ids", &with_ids, batch);
            run(&mut s, "sqlite, without ids", &without_ids, batch);
            drop(s);
            std::fs::remove_dir_all(&dir).ok();
        }
        "postgres" => {
            let url = std::env::var("SIYU_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("siyu_bench_{}", std::process::id());
            let mut s =
                PostgresStore::connect_in_schema(&url, Some(&schema)).expect("connect postgres");
            run(&mut s, "postgres, with ids", &with_ids, batch);
            run(&mut s, "postgres, without ids", &without_ids, batch);
            drop(s);
            PostgresStore::drop_schema(&url, &schema).expect("drop bench schema");
        }
        other => panic!("unknown backend `{other}`; use sqlite or postgres"),
    }
}
