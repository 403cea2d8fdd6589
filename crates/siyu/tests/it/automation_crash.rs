//! Journeys survive SIGKILL: a real `siyu serve` runs a journey for 300
//! persons (send → tag → wait → send → webhook), is killed without
//! warning while it delivers, and restarts. Every step's effect must then
//! have reached the (local, real HTTP) receiver under its own idempotency
//! key — none skipped — and no key may stand for two different effects.
//! A redelivery of an effect the receiver already had (killed between the
//! remote's answer and the outbox commit) carries the same key, which is
//! what the receiver dedupes on; the test counts them.

use crate::{create_key, http, tempdir, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PERSONS: usize = 300;

/// Every request the receiver got: (Idempotency-Key, body).
pub type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A minimal HTTP/1.1 receiver: records (Idempotency-Key, body) and
/// answers 200, keeping connections alive.
pub fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got: Received = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut key) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap_or((h, ""));
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => len = value.trim().parse().unwrap_or(0),
                            "idempotency-key" => key = value.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    g.lock()
                        .unwrap()
                        .push((key, String::from_utf8_lossy(&body).into_owned()));
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/hook"), got)
}

fn put(addr: &str, key: &str, path: &str, body: &str) {
    let (status, resp) = http(addr, "PUT", path, key, body).unwrap();
    assert_eq!(status, 200, "PUT {path}: {resp}");
}

#[test]
fn sigkill_mid_journey_skips_no_step_and_repeats_no_effect() {
    let dir = tempdir("journey-crash");
    let (url, got) = receiver();
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("siyu.toml");
    std::fs::write(
        &config,
        // The fixture's fixed 2026 timestamps must still trigger.
        format!("trigger_max_age_secs = 31622400\n[connectors.webhook]\nurl = \"{url}\"\nsecret = \"s3cret\"\n"),
    )
    .unwrap();
    let key = create_key(&dir);
    let mut server = Server::start_with(&dir, &["--config", config.to_str().unwrap()]);
    put(
        &server.addr,
        &key,
        "/v1/guardrails",
        r#"{"quiet_hours": null}"#,
    );
    put(
        &server.addr,
        &key,
        "/v1/templates/hi",
        r#"{"body": "你好 {{person.id}}", "class": "transactional"}"#,
    );
    put(
        &server.addr,
        &key,
        "/v1/journeys/crash",
        r#"{"trigger": {"type": "event", "event": "add_friend"}, "start": "s1", "steps": {
            "s1": {"type": "send", "template": "hi", "channel": "webhook", "next": "s2"},
            "s2": {"type": "add_tag", "tag": "greeted", "next": "s3"},
            "s3": {"type": "wait", "duration": "2s", "next": "s4"},
            "s4": {"type": "send", "template": "hi", "channel": "webhook", "next": "s5"},
            "s5": {"type": "webhook", "payload": {"step": "s5"}}}}"#,
    );
    let events: Vec<String> = (0..PERSONS)
        .map(|i| {
            format!(
                r#"{{"id":"f{i}","ts":1790000000,"identity":"wecom:p{i:03}","type":"add_friend"}}"#
            )
        })
        .collect();
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/events",
        &key,
        &format!("[{}]", events.join(",")),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // Kill while deliveries are under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().len() < PERSONS * 3 / 2 {
        assert!(Instant::now() < deadline, "journey stalled before the kill");
        std::thread::sleep(Duration::from_millis(2));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let at_kill = got.lock().unwrap().len();

    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let expected = PERSONS * 3;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let distinct: BTreeSet<String> =
            got.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
        if distinct.len() >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after restart only {} of {expected} effects arrived",
            distinct.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = got.lock().unwrap().clone();
    // Key → every body delivered under it: one effect per key.
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, body) in &got {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        // The same effect re-sent keeps its key and content (sent_at aside).
        let effect = format!("{}|{}|{}", v["identity"], v["body"], v["data"]["payload"]);
        by_key.entry(k.clone()).or_default().insert(effect);
    }
    assert_eq!(by_key.len(), expected, "one key per step execution");
    assert!(
        by_key.values().all(|e| e.len() == 1),
        "a key stood for two effects"
    );
    let mut per_person: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for k in by_key.keys() {
        // j/crash/v1/e<id>/<step>
        let step = k.rsplit('/').next().unwrap().to_string();
        let enrollment = k.rsplit('/').nth(1).unwrap().to_string();
        per_person.entry(enrollment).or_default().insert(step);
    }
    assert_eq!(
        per_person.len(),
        PERSONS,
        "each person enrolled exactly once"
    );
    assert!(per_person
        .values()
        .all(|s| s.iter().map(String::as_str).eq(["s1", "s4", "s5"])));
    // The tag step ran for everyone (an event with the step's key as id).
    for i in [0, PERSONS / 2, PERSONS - 1] {
        let (_, p) = http(
            &server.addr,
            "GET",
            &format!("/v1/persons/wecom:p{i:03}"),
            &key,
            "",
        )
        .unwrap();
        assert!(p.contains("greeted"), "p{i:03}: {p}");
    }
    eprintln!(
        "journey crash test: {} deliveries before the kill, {} in all, {} distinct effects, {} redelivered under the same key",
        at_kill,
        got.len(),
        by_key.len(),
        got.len() - by_key.len()
    );
}
