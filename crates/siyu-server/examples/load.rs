//! A small load client for `POST /v1/events`: N keep-alive connections,
//! each sending requests back to back (closed loop), every event with a
//! fresh id so each one is a real append. Prints events/s and the request
//! latency distribution (each acknowledgement is durable: group commit).
//!
//! ```text
//! cargo run --release -p siyu-server --example load -- ADDR KEY [BATCH] [REQUESTS] [CONNECTIONS] [IDS]
//! # 500-event batches:   load 127.0.0.1:8080 sk_… 500 400 4
//! # single events:       load 127.0.0.1:8080 sk_… 1 5000 8
//! # random UUID-like ids (what Segment SDKs send as messageId):
//! #                      load 127.0.0.1:8080 sk_… 500 400 4 uuid
//! ```
//!
//! Standard library only: a minimal HTTP/1.1 client that reads
//! `Content-Length` bodies (what the server sends).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A random-looking 128-bit id in UUID form, a function of `n` (a 64-bit
/// mix twice), so ids land all over the id index as real SDK ids do.
fn uuid_like(n: u64) -> String {
    let mix = |mut x: u64| {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let (a, b) = (mix(n), mix(n ^ 0x9e37_79b9_7f4a_7c15));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xffff,
        b & 0xffff_ffff_ffff
    )
}

/// Events of one request: purchases and touches over 100 000 identities,
/// timestamps in the last 30 days of `now`. Ids are `load-{run}-…`
/// (increasing per connection) or, with `uuid`, random.
fn body(run: u64, conn: usize, req: usize, batch: usize, now: u64, uuid: bool) -> String {
    let mut s = String::with_capacity(batch * 120 + 2);
    s.push('[');
    for j in 0..batch {
        let n = (conn * 1_000_003 + req * batch + j) as u64;
        if j > 0 {
            s.push(',');
        }
        let ts = now - 30 * 86_400 + (n * 7919) % (30 * 86_400);
        let who = (n * 2_654_435_761) % 100_000;
        let id = if uuid {
            uuid_like(run << 40 ^ n)
        } else {
            format!("load-{run}-{conn}-{req}-{j}")
        };
        if n.is_multiple_of(10) {
            s.push_str(&format!(
                r#"{{"id":"{id}","ts":{ts},"identity":"douyin:u{who:05}","type":"purchase","amount":{}}}"#,
                1_000 + n % 50_000
            ));
        } else {
            s.push_str(&format!(
                r#"{{"id":"{id}","ts":{ts},"identity":"douyin:u{who:05}","type":"touch"}}"#
            ));
        }
    }
    s.push(']');
    s
}

/// Sends one request on a kept-alive connection; returns (status, body).
fn post(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    addr: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line `{status_line}`")))?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0u8; length];
    reader.read_exact(&mut buf)?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: load ADDR KEY [BATCH=500] [REQUESTS=200] [CONNECTIONS=4] [seq|uuid]");
        std::process::exit(2);
    }
    let addr = args[0].clone();
    let key = args[1].clone();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, requests, connections) = (arg(2, 500), arg(3, 200), arg(4, 4));
    let uuid = args.get(5).is_some_and(|a| a == "uuid");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run = now % 1_000_000_007;
    let per_conn = requests.div_ceil(connections);
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, key) = (addr.clone(), key.clone());
            std::thread::spawn(
                move || -> std::io::Result<(Vec<(Duration, Duration)>, u64)> {
                    // Bodies are built before the clock starts for each request.
                    let bodies: Vec<String> = (0..per_conn)
                        .map(|r| body(run, c, r, batch, now, uuid))
                        .collect();
                    let mut stream = TcpStream::connect(&addr)?;
                    stream.set_nodelay(true)?;
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut latencies = Vec::with_capacity(per_conn);
                    let mut accepted = 0u64;
                    for b in &bodies {
                        let t = Instant::now();
                        let (status, resp) = post(&mut stream, &mut reader, &addr, &key, b)?;
                        latencies.push((t - started, t.elapsed()));
                        if status != 200 {
                            return Err(std::io::Error::other(format!("HTTP {status}: {resp}")));
                        }
                        let v: serde_json::Value = serde_json::from_str(&resp)
                            .map_err(|e| std::io::Error::other(format!("response: {e}")))?;
                        accepted += v["accepted"].as_u64().unwrap_or(0);
                    }
                    Ok((latencies, accepted))
                },
            )
        })
        .collect();
    let mut latencies = Vec::new();
    let mut accepted = 0;
    for w in workers {
        match w.join().expect("worker thread") {
            Ok((l, a)) => {
                latencies.extend(l);
                accepted += a;
            }
            Err(e) => {
                eprintln!("load: {e}");
                std::process::exit(1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The stalls: every request slower than 100 ms, by when it was sent
    // (a server pause shows as one such request per connection).
    let mut slow: Vec<(Duration, Duration)> = latencies
        .iter()
        .copied()
        .filter(|(_, l)| *l > Duration::from_millis(100))
        .collect();
    slow.sort();
    let mut latencies: Vec<Duration> = latencies.into_iter().map(|(_, l)| l).collect();
    latencies.sort();
    println!(
        "{} requests x {batch} events over {connections} connections: accepted {accepted} in {secs:.2} s = {:.0} events/s, {:.0} requests/s",
        latencies.len(),
        accepted as f64 / secs,
        latencies.len() as f64 / secs
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0)
    );
    println!("requests over 100 ms: {}", slow.len());
    for (at, l) in slow {
        println!(
            "  sent at {:.2} s: {:.0} ms",
            at.as_secs_f64(),
            l.as_secs_f64() * 1000.0
        );
    }
}
