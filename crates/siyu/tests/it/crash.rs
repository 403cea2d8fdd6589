//! Acknowledged means durable: a real `siyu serve` is SIGKILLed in the
//! middle of a stream of ingest requests; after a restart every
//! acknowledged event is present exactly once, and re-sending every batch
//! (acknowledged or not) adds nothing twice.

use crate::{create_key, http, siyu, tempdir, Server};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn batch(n: usize) -> String {
    let events: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"id":"b{n}-{i}","ts":{},"identity":"douyin:u{}","type":"purchase","amount":{}}}"#,
                1_790_000_000 + n * 20 + i,
                (n * 7 + i) % 300,
                100 + i
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_event() {
    let dir = tempdir("crash");
    let key = create_key(&dir);
    let mut server = Server::start(&dir);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // One past the highest batch number any client has started to send.
    let sent = Arc::new(AtomicUsize::new(0));
    let last_error: Arc<Mutex<String>> = Arc::default();
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (addr, key, acked, stop, sent) = (
                server.addr.clone(),
                key.clone(),
                acked.clone(),
                stop.clone(),
                sent.clone(),
            );
            let last_error = last_error.clone();
            std::thread::spawn(move || {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    sent.fetch_max(n + 1, Ordering::SeqCst);
                    match http(&addr, "POST", "/v1/events", &key, &batch(n)) {
                        Ok((200, _)) => acked.lock().unwrap().push(n),
                        other => *last_error.lock().unwrap() = format!("{other:?}"),
                    }
                    n += 3;
                }
            })
        })
        .collect();
    // Let the stream run, then kill without warning while requests are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "ingest stalled; last error: {}",
            last_error.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.load(Ordering::SeqCst);
    assert!(acked.len() >= 60);

    let server = Server::start(&dir);
    let (_, health) = http(&server.addr, "GET", "/healthz", &key, "").unwrap();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(
        health["events"].as_u64().unwrap() >= acked.len() as u64 * 20,
        "{health}"
    );
    // Clients retry everything they ever sent: the store keeps one copy.
    for n in 0..sent + 3 {
        let (status, body) = http(&server.addr, "POST", "/v1/events", &key, &batch(n)).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    drop(server);

    let out = dir.join("export");
    let status = siyu()
        .args(["export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *seen
            .entry(v["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for n in &acked {
        for i in 0..20 {
            assert_eq!(
                seen.get(&format!("b{n}-{i}")),
                Some(&1),
                "acknowledged event b{n}-{i} present exactly once"
            );
        }
    }
    assert!(seen.values().all(|&c| c == 1), "no event stored twice");
    assert_eq!(
        seen.len(),
        (sent + 3) * 20,
        "every batch ever sent is stored once after the retries"
    );
    std::fs::remove_dir_all(&dir).ok();
}
