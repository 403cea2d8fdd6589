//! Timeline latency during a console login flood: starts a server in
//! process (SQLite in a temp dir), stores a few thousand events, then
//! reads one person's timeline back to back, first alone and then while
//! FLOODERS tasks send wrong console logins as fast as they are answered.
//! Each wrong login comes from its own loopback address (127.0.x.y) and
//! names its own account, as an attacker with many addresses would, so
//! the per-address and per-account lockouts do not end the flood; what
//! is measured is what a flood costs the readers.
//!
//! ```text
//! cargo run -p siyu-server --example login_flood -- [SECONDS] [FLOODERS]
//! # default: 10 s per phase, 32 flooders
//! ```

use serde_json::json;
use siyu_server::config::Config;
use siyu_server::Application;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Reads the timeline back to back for `seconds`; returns the latencies.
async fn read_for(url: &str, key: &str, seconds: u64) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut took = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        let r = client
            .get(format!("{url}/v1/persons/wechat:p7/timeline?limit=50"))
            .bearer_auth(key)
            .send()
            .await
            .expect("timeline request");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
        took.push(t.elapsed());
    }
    took.sort();
    took
}

fn report(phase: &str, took: &[Duration]) {
    println!(
        "{phase:<14} timeline reads {:>6}  p50 {:>9.2} ms  p99 {:>9.2} ms  max {:>9.2} ms",
        took.len(),
        percentile(took, 0.5).as_secs_f64() * 1e3,
        percentile(took, 0.99).as_secs_f64() * 1e3,
        took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let flooders: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(32);
    let dir = std::env::temp_dir().join(format!("siyu-login-flood-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        admin_token: Some("admin-secret".into()),
        ..Config::default()
    };
    let app = Application::build(config).await?;
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let key: serde_json::Value = http
        .post(format!("{url}/v1/admin/keys"))
        .bearer_auth("admin-secret")
        .json(&json!({"name": "flood"}))
        .send()
        .await?
        .json()
        .await?;
    let key = key["key"].as_str().unwrap_or_default().to_string();
    let r = http
        .put(format!("{url}/console/api/operators/ops"))
        .bearer_auth("admin-secret")
        .json(&json!({"role": "operator", "password": "password1"}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "creating an operator: {}",
        r.status()
    );
    for batch in 0..10 {
        let events: Vec<_> = (0..500)
            .map(|i| {
                json!({"type": "touch", "identity": format!("wechat:p{}", i % 50),
                       "ts": 1_780_000_000 + batch * 500 + i})
            })
            .collect();
        let r = http
            .post(format!("{url}/v1/events"))
            .bearer_auth(&key)
            .json(&events)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "ingest: {}", r.status());
    }

    report("alone", &read_for(&url, &key, seconds).await);

    let flooding = Arc::new(AtomicBool::new(true));
    let next = Arc::new(AtomicU32::new(0));
    let (checked, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..flooders {
        let (url, flooding, next) = (url.clone(), flooding.clone(), next.clone());
        let (checked, refused) = (checked.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            while flooding.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let from = Ipv4Addr::new(127, 0, 1 + (n / 250 % 250) as u8, 1 + (n % 250) as u8);
                let client = reqwest::Client::builder()
                    .local_address(IpAddr::V4(from))
                    .build()
                    .expect("client");
                let r = client
                    .post(format!("{url}/console/api/login"))
                    .json(&json!({"login": format!("guess{n}"), "password": "wrong-password"}))
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(401) => checked.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("login answered {other:?}"),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = read_for(&url, &key, seconds).await;
    flooding.store(false, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    report("during flood", &during);
    println!(
        "flood: {flooders} flooders, {} logins checked (401), {} refused at once (429)",
        checked.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    let _ = stop.send(());
    served.await??;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
