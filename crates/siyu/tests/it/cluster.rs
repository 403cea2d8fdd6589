//! Three real `siyu serve` processes on one PostgreSQL database (issue
//! 16.6), events posted round-robin, a follower SIGKILLed during ingest
//! (and started again), then the leader SIGKILLed while a journey waits
//! between two sends to a local webhook receiver. Asserted: every
//! acknowledged event is on every live node exactly once; every send
//! arrives, no effect under two keys and no person enrolled twice; the
//! live nodes agree on persons, segment members and settings within a
//! second of the last write; a survivor leads within 10 s of the kill.
//!
//! Skipped without `SIYU_TEST_DATABASE_URL` (CI sets it). Small: 120
//! persons, 360 events, a 3 s wait step; about 20 s.

use crate::automation_crash::receiver;
use crate::{http, tempdir, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PERSONS: usize = 120;
const ADMIN: &str = "cluster-admin";

struct Node {
    dir: PathBuf,
    server: Option<Server>,
}

impl Node {
    fn addr(&self) -> &str {
        &self.server.as_ref().expect("a live node").addr
    }

    fn kill(&mut self) {
        let mut s = self.server.take().expect("a live node");
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
}

fn start(dir: &Path, config: &Path) -> Server {
    Server::start_with(dir, &["--config", config.to_str().unwrap()])
}

fn get(addr: &str, key: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, key, "").unwrap();
    assert_eq!(status, 200, "GET {path} on {addr}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn call(addr: &str, key: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, resp) = http(addr, method, path, key, &body.to_string()).unwrap();
    assert!(status < 300, "{method} {path} on {addr}: {status} {resp}");
    serde_json::from_str(&resp).unwrap_or(Value::Null)
}

/// What a node says about the things every node must agree on.
fn view(addr: &str, key: &str) -> Value {
    let health = get(addr, key, "/healthz");
    let members = get(addr, key, "/v1/segments/friends/members?limit=1000");
    let journey = get(addr, key, "/v1/journeys/welcome");
    let segments = get(addr, key, "/v1/segments");
    let guardrails = get(addr, key, "/v1/guardrails");
    json!({
        "persons": health["persons"],
        "events": health["events"],
        "members": members,
        "journey": journey,
        "segments": segments,
        "guardrails": guardrails,
    })
}

fn leads(addr: &str, key: &str) -> bool {
    http(addr, "GET", "/v1/cluster", key, "")
        .ok()
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
        .is_some_and(|v| v["leads"] == json!(true))
}

#[test]
fn three_nodes_survive_sigkill_of_a_follower_and_of_the_leader() {
    let Ok(url) = std::env::var("SIYU_TEST_DATABASE_URL") else {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    };
    let root = tempdir("cluster");
    let (hook, got) = receiver();
    let schema = format!("siyu_cluster_it_{}", std::process::id());
    let config = root.join("siyu.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\ndatabase_schema = \"{schema}\"\nadmin_token = \"{ADMIN}\"\n\
             [connectors.webhook]\nurl = \"{hook}\"\nsecret = \"s3cret\"\n"
        ),
    )
    .unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let dir = root.join(format!("node{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            Node { dir, server: None }
        })
        .collect();
    // All three at once on the empty schema.
    let started: Vec<Server> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| s.spawn(|| start(&n.dir, &config)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (n, s) in nodes.iter_mut().zip(started) {
        n.server = Some(s);
    }
    let a0 = nodes[0].addr().to_string();
    let key = call(
        &a0,
        ADMIN,
        "POST",
        "/v1/admin/keys",
        json!({"name": "cluster"}),
    )["key"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &a0,
        &key,
        "PUT",
        "/v1/guardrails",
        json!({"quiet_hours": null}),
    );
    call(
        &a0,
        &key,
        "PUT",
        "/v1/templates/hi",
        json!({"body": "你好 {{person.id}}", "class": "transactional"}),
    );
    call(
        &a0,
        &key,
        "PUT",
        "/v1/segments/friends",
        json!({"segment": "purchases >= 1"}),
    );
    call(
        &a0,
        &key,
        "PUT",
        "/v1/journeys/welcome",
        json!({"trigger": {"type": "event", "event": "add_friend"}, "start": "s1", "steps": {
            "s1": {"type": "send", "template": "hi", "channel": "webhook", "next": "s2"},
            "s2": {"type": "wait", "duration": "3s", "next": "s3"},
            "s3": {"type": "send", "template": "hi", "channel": "webhook"}}}),
    );
    // Every node follows the definitions within a second; the leader must
    // have the journey before the first friend arrives.
    std::thread::sleep(Duration::from_secs(1));
    let leader = (0..3)
        .find(|&i| leads(nodes[i].addr(), &key))
        .expect("one node leads");
    let led: usize = (0..3).filter(|&i| leads(nodes[i].addr(), &key)).count();
    assert_eq!(led, 1, "exactly one leader");
    let follower = (leader + 1) % 3;

    // Ingest round-robin from a thread; the follower is killed midway.
    let now = siyu_server::writer::wall_clock();
    let batches: Vec<Vec<Value>> = (0..PERSONS)
        .map(|p| {
            vec![
                json!({"id": format!("f{p}"), "ts": now, "identity": format!("wecom:p{p:03}"), "type": "add_friend"}),
                json!({"id": format!("v{p}"), "ts": now, "identity": format!("wecom:p{p:03}"), "type": "custom", "name": "viewed"}),
                json!({"id": format!("b{p}"), "ts": now, "identity": format!("wecom:p{p:03}"), "type": "purchase", "amount": 100 + p}),
            ]
        })
        .collect();
    let addrs: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(
        nodes.iter().map(|n| Some(n.addr().to_string())).collect(),
    ));
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let poster = {
        let (addrs, acked, done, key) = (addrs.clone(), acked.clone(), done.clone(), key.clone());
        std::thread::spawn(move || {
            for (i, batch) in batches.chunks(4).enumerate() {
                let body = Value::Array(batch.iter().flatten().cloned().collect());
                let live: Vec<String> = addrs.lock().unwrap().iter().flatten().cloned().collect();
                let addr = &live[i % live.len()];
                // Unacknowledged (the node died under it): not counted; it
                // may or may not have been stored.
                if let Ok((200, answer)) = http(addr, "POST", "/v1/events", &key, &body.to_string())
                {
                    let answer: Value = serde_json::from_str(&answer).unwrap();
                    assert_eq!(answer["rejected"], json!([]), "{answer}");
                    let mut a = acked.lock().unwrap();
                    for e in batch.iter().flatten() {
                        a.insert(e["id"].as_str().unwrap().to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            done.store(true, Ordering::Release);
        })
    };
    while acked.lock().unwrap().len() < PERSONS * 3 / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    addrs.lock().unwrap()[follower] = None;
    nodes[follower].kill();
    poster.join().unwrap();
    assert!(done.load(Ordering::Acquire));
    // Back, on its data dir: it catches up from the log.
    nodes[follower].server = Some(start(&nodes[follower].dir, &config));
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= PERSONS * 3 * 2 / 3,
        "{} acknowledged",
        acked.len()
    );

    // Every s1 sent; then the leader dies while everyone waits for s3.
    // The friends are the add_friend events stored: the acknowledged ones
    // and any a node stored before it was killed under the request (one
    // request's events commit together). The leader follows them within
    // a second.
    let acked_friends = acked.iter().filter(|id| id.starts_with('f')).count();
    std::thread::sleep(Duration::from_millis(1500));
    let friends = get(
        nodes[leader].addr(),
        &key,
        "/v1/persons?q=wecom:p&limit=200",
    )["persons"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        friends >= acked_friends,
        "{friends} stored, {acked_friends} acknowledged"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < friends {
        assert!(
            Instant::now() < deadline,
            "first sends stalled: {}",
            got.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = Instant::now();
    nodes[leader].kill();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let takeover = loop {
        if survivors.iter().any(|&i| leads(nodes[i].addr(), &key)) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no survivor leads 10 s after the leader died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let distinct: BTreeSet<String> =
            got.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
        if distinct.len() >= friends * 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the failover {} of {} sends",
            distinct.len(),
            friends * 2
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let received = got.lock().unwrap().clone();
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, body) in &received {
        let v: Value = serde_json::from_str(body).unwrap();
        by_key
            .entry(k.clone())
            .or_default()
            .insert(format!("{}|{}", v["identity"], v["body"]));
    }
    assert_eq!(by_key.len(), friends * 2, "one key per send");
    assert!(
        by_key.values().all(|e| e.len() == 1),
        "a key stood for two messages"
    );
    let messaged: BTreeSet<&str> = by_key
        .values()
        .flatten()
        .map(|e| e.split('|').next().unwrap())
        .collect();
    let mut steps_per_enrollment: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in by_key.keys() {
        // j/welcome/v1/e<id>/<step>
        let mut parts = k.rsplit('/');
        let step = parts.next().unwrap().to_string();
        let enrollment = parts.next().unwrap().to_string();
        steps_per_enrollment
            .entry(enrollment)
            .or_default()
            .push(step);
    }
    assert_eq!(messaged.len(), friends, "every friend messaged");
    assert_eq!(
        steps_per_enrollment.len(),
        friends,
        "each friend enrolled once"
    );
    assert!(
        steps_per_enrollment.values().all(|s| s == &["s1", "s3"]),
        "{steps_per_enrollment:?}"
    );

    // The live nodes agree within a second of the last write, and each has
    // every acknowledged event exactly once.
    let live: Vec<String> = survivors
        .iter()
        .map(|&i| nodes[i].addr().to_string())
        .collect();
    let agreed_at = Instant::now();
    loop {
        let views: Vec<Value> = live.iter().map(|a| view(a, &key)).collect();
        if views.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            agreed_at.elapsed() < Duration::from_secs(1),
            "the nodes disagree: {views:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let agreed = agreed_at.elapsed();
    for addr in &live {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for p in 0..PERSONS {
            let t = get(
                addr,
                &key,
                &format!("/v1/persons/wecom:p{p:03}/timeline?limit=500"),
            );
            for e in t["events"].as_array().into_iter().flatten() {
                if let Some(id) = e["event"]["id"].as_str() {
                    *seen.entry(id.to_string()).or_default() += 1;
                }
            }
        }
        for id in &acked {
            assert_eq!(seen.get(id), Some(&1), "{id} on {addr}");
        }
    }
    eprintln!(
        "cluster: {} events acknowledged; {} sends, {} redelivered under the same key; a survivor led {takeover:?} after the leader's SIGKILL; the live nodes agreed {agreed:?} after the first comparison began (500 ms after the last send arrived)",
        acked.len(),
        by_key.len(),
        received.len() - by_key.len()
    );
    for n in &mut nodes {
        if n.server.is_some() {
            n.kill();
        }
    }
    if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
}
