//! Automation throughput and latency on one machine, over real HTTP on
//! loopback: a `siyu` server (SQLite in a temp dir) and a local webhook
//! receiver standing in for the channel.
//!
//! ```text
//! cargo run --release -p siyu-server --example automation_bench -- [persons]
//! ```
//!
//! Measures: (1) a marketing mass send to every person through the
//! guardrails and the webhook connector (sends/s); (2) the same send
//! twice more, the third suppressed by the 2-per-7-days cap (guardrail
//! verdicts/s without a connector); (3) journey wakeups/s (a 2 s wait for
//! every person, then a tag); (4) inbound comment → keyword auto-reply
//! received by the channel, p50/p99 over sequential requests.

use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_connectors::{Secret, WebhookConfig};
use siyu_server::config::Config;
use siyu_server::Application;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Seen = Arc<Mutex<(usize, HashMap<String, Instant>)>>;

async fn receiver() -> (Seen, String) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut g = s.lock().unwrap();
                g.0 += 1;
                if key.starts_with("r/") {
                    g.1.insert(key, Instant::now());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url)
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let req = match method {
            "PUT" => self.http.put(format!("{}{path}", self.base)),
            "POST" => self.http.post(format!("{}{path}", self.base)),
            _ => self.http.get(format!("{}{path}", self.base)),
        };
        let resp = req
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// The sum of the series of `name` whose labels contain `having`
    /// (`""`: every series), e.g. `metric("siyu_sends_total", "verdict=\"dead\"")`.
    async fn metric(&self, name: &str, having: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let labels = series.strip_prefix(name)?;
                (labels.starts_with('{') && labels.contains(having))
                    .then(|| value.parse::<f64>().ok())?
            })
            .sum()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let persons: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("siyu-automation-bench-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let (seen, url) = receiver().await;
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        admin_token: Some("admin".into()),
        ..Config::default()
    };
    config.connectors.webhook = Some(WebhookConfig {
        url,
        secret: Secret::new("s"),
        timeout_ms: 5000,
    });
    config.inbound_secrets.insert("douyin".into(), "in".into());
    let app = Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    let key = http
        .post(format!("{base}/v1/admin/keys"))
        .bearer_auth("admin")
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let c = Client { http, base, key };
    c.call("PUT", "/v1/guardrails", json!({"quiet_hours": null}))
        .await;
    c.call(
        "PUT",
        "/v1/templates/promo",
        json!({"body": "{{name | default: \"朋友\"}}，双11 特价", "class": "marketing"}),
    )
    .await;
    c.call(
        "PUT",
        "/v1/templates/price",
        json!({"body": "您好，价格 199 元", "class": "transactional"}),
    )
    .await;
    c.call("PUT", "/v1/segments/all", json!({"segment": "friended"}))
        .await;

    let t = Instant::now();
    for chunk in (0..persons).collect::<Vec<_>>().chunks(5000) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"ts": 1_790_000_000, "identity": format!("wecom:p{i}"), "type": "add_friend"}))
            .collect();
        c.call("POST", "/v1/events", Value::Array(events)).await;
    }
    println!(
        "machine: {} cores; persons: {persons}; ingest {:.1} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        t.elapsed().as_secs_f64()
    );

    // (1) mass send through guardrails + connector.
    let t = Instant::now();
    c.call("POST", "/v1/sends", json!({"id": "s1", "segment": "all", "template": "promo", "channel": "webhook", "kind": "direct"})).await;
    let queued = t.elapsed();
    while seen.lock().unwrap().0 < persons {
        let done = c.metric("siyu_sends_total", "verdict=\"suppressed\"").await
            + c.metric("siyu_sends_total", "verdict=\"dead\"").await;
        assert!(
            done == 0.0,
            "a first send was suppressed or dead-lettered: see GET /v1/outbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "mass send: {persons} sends delivered in {secs:.2} s = {:.0} sends/s (queued into the outbox in {:.2} s)",
        persons as f64 / secs,
        queued.as_secs_f64()
    );
    // (2) two more sends: the second passes, the third is capped.
    c.call("POST", "/v1/sends", json!({"id": "s2", "segment": "all", "template": "promo", "channel": "webhook", "kind": "direct"})).await;
    while seen.lock().unwrap().0 < 2 * persons {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = c.metric("siyu_sends_total", "verdict=\"suppressed\"").await;
    let t = Instant::now();
    c.call("POST", "/v1/sends", json!({"id": "s3", "segment": "all", "template": "promo", "channel": "webhook", "kind": "direct"})).await;
    while c.metric("siyu_sends_total", "verdict=\"suppressed\"").await < before + persons as f64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("capped send: {persons} verdicts (suppressed: marketing_cap) in {secs:.2} s = {:.0} verdicts/s", persons as f64 / secs);

    // (3) journey wakeups.
    c.call(
        "PUT",
        "/v1/journeys/wake",
        json!({"trigger": {"type": "event", "event": "custom", "name": "go"}, "start": "w",
               "steps": {"w": {"type": "wait", "duration": "2s", "next": "t"}, "t": {"type": "add_tag", "tag": "woke"}}}),
    )
    .await;
    let t = Instant::now();
    for chunk in (0..persons).collect::<Vec<_>>().chunks(5000) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"ts": 1_790_000_100, "identity": format!("wecom:p{i}"), "type": "custom", "name": "go"}))
            .collect();
        c.call("POST", "/v1/events", Value::Array(events)).await;
    }
    while c.metric("siyu_journey_entries_total", "").await < persons as f64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let enrolled = t.elapsed().as_secs_f64();
    let mut first_wake = None;
    loop {
        let w = c.metric("siyu_journey_wakeups_total", "").await;
        if w > 0.0 && first_wake.is_none() {
            first_wake = Some(Instant::now());
        }
        if w >= persons as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wake_secs = first_wake
        .map_or(0.0, |f| f.elapsed().as_secs_f64())
        .max(0.001);
    println!(
        "journey: {persons} enrolled in {enrolled:.2} s ({:.0}/s); {persons} wakeups in {wake_secs:.2} s after the first = {:.0} wakeups/s",
        persons as f64 / enrolled,
        persons as f64 / wake_secs
    );

    // (4) inbound → auto-reply latency, sequential.
    c.call("PUT", "/v1/autoreply", json!([{"id": "price", "matcher": {"any_of": ["多少钱", "求资料"]}, "reply_template": "price"}])).await;
    let mut lat = Vec::new();
    for i in 0..200 {
        let body = json!({"id": format!("c-{i}"), "identity": format!("douyin:v{i}"), "type": "comment", "text": "请问多少钱？"}).to_string();
        let ts = siyu_server::writer::wall_clock();
        let sig = siyu_connectors::sign(b"in", ts, body.as_bytes());
        let started = Instant::now();
        let resp = c
            .http
            .post(format!("{}/v1/inbound/douyin", c.base))
            .header("content-type", "application/json")
            .header("x-siyu-timestamp", ts.to_string())
            .header("x-siyu-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let key = format!("r/price/c-{i}/reply");
        let at = loop {
            if let Some(at) = seen.lock().unwrap().1.get(&key) {
                break *at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        lat.push(at.duration_since(started).as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "auto-reply: inbound POST → reply at the channel, {} sequential: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    );
    std::fs::remove_dir_all(&dir).ok();
    std::process::exit(0);
}
