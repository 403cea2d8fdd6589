//! Latency of the offline intent classifier: classifies every message of
//! the held-out split many times and prints the per-message p50/p99 (and
//! the one-time training cost of the built-in model).
//!
//! `cargo run --release --example intent_bench -p siyu-automation`

use siyu_automation::intent::{self, parse_corpus};
use std::time::Instant;

fn main() {
    let t = Instant::now();
    let _ = intent::model();
    let train = t.elapsed();
    let test = parse_corpus(include_str!("../data/intents/test.tsv")).expect("test.tsv parses");
    let rounds = 200;
    let mut times = Vec::with_capacity(test.len() * rounds);
    let mut sink = 0usize;
    for _ in 0..rounds {
        for (_, text) in &test {
            let t = Instant::now();
            let c = intent::classify(text);
            times.push(t.elapsed().as_nanos() as u64);
            sink += c.alternatives.len();
        }
    }
    times.sort_unstable();
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "training at first use: {:.1} ms; {} classifications of {} messages: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({sink})",
        train.as_secs_f64() * 1000.0,
        times.len(),
        test.len(),
        q(0.50),
        q(0.99),
        *times.last().unwrap() as f64 / 1000.0,
    );
}
