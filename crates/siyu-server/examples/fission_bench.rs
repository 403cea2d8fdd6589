//! Fission campaign load on one machine, over real HTTP on loopback:
//! signups/s the public signup endpoint sustains (concurrent clients, each
//! its own address via X-Forwarded-For as behind a proxy), then the
//! leaderboard and stats of a campaign with N invitees (default 1M,
//! ingested through /v1/events), and the poster render.
//!
//! ```text
//! cargo run --release -p siyu-server --example fission_bench -- [invitees]
//! ```

use serde_json::{json, Value};
use siyu_server::config::Config;
use siyu_server::Application;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let invitees: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("siyu-fission-bench-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        admin_token: Some("admin".into()),
        ..Config::default()
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
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
    let call = |method: reqwest::Method, path: String, body: Value| {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        async move {
            let r = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{path}: {status} {v}");
            v
        }
    };
    let campaign = json!({"name": "bench", "tiers": [{"invites": 10, "reward": "a"}, {"invites": 20, "reward": "b"}],
        "rewards": {"a": {"stock": 100000, "cost": 1500}, "b": {"stock": 100000, "cost": 3000}},
        "rules": {"convert_within": "14d", "max_per_device": 5, "burst_max": 50, "burst_window": "1h"}});
    call(
        reqwest::Method::PUT,
        "/v1/campaigns/big".into(),
        campaign.clone(),
    )
    .await;
    call(reqwest::Method::PUT, "/v1/campaigns/live".into(), campaign).await;
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // (1) public signups, 32 concurrent clients.
    let inv = call(
        reqwest::Method::POST,
        "/v1/campaigns/live/invites".into(),
        json!({"identity": "wecom:boss"}),
    )
    .await;
    let code = inv["code"].as_str().unwrap().to_string();
    let n_signups = 20_000usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..32usize {
        let (http, base, code) = (http.clone(), base.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..n_signups).step_by(32) {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/i/live/{code}/signup"))
                    .header(
                        "x-forwarded-for",
                        format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                    )
                    .json(&json!({"identity": format!("douyin:s{i}"), "device": format!("d{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "signups: {n_signups} through POST /i/{{campaign}}/{{code}}/signup, 32 clients: {:.0} signups/s; p50 {:.1} ms, p99 {:.1} ms",
        n_signups as f64 / secs,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );

    // (2) a campaign with `invitees` signups from 50k inviters, 30% converting.
    let started = Instant::now();
    let inviters = 50_000usize;
    let batch = 5000usize;
    for start in (0..invitees).step_by(batch) {
        let mut events = Vec::with_capacity(batch * 2);
        for i in start..(start + batch).min(invitees) {
            let ts = 1_790_000_000 + i as i64;
            events.push(json!({"ts": ts, "identity": format!("wechat:i{i}"), "type": "referral_signup",
                "ref": format!("wecom:v{}", (i * 7919) % inviters), "properties": {"campaign": "big", "device": format!("d{}", i % 400_000)}}));
            if i % 10 < 3 {
                events.push(json!({"ts": ts + 3600, "identity": format!("wechat:i{i}"), "type": "purchase", "amount": 9900}));
            }
        }
        call(
            reqwest::Method::POST,
            "/v1/events".into(),
            Value::Array(events),
        )
        .await;
    }
    println!(
        "campaign 'big': {invitees} invitees of {inviters} inviters ingested in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut walls = Vec::new();
    let mut evals = Vec::new();
    let mut top = Value::Null;
    for _ in 0..5 {
        let t = Instant::now();
        let b = call(
            reqwest::Method::GET,
            "/v1/campaigns/big/leaderboard?limit=10".into(),
            json!(null),
        )
        .await;
        walls.push(t.elapsed().as_secs_f64() * 1000.0);
        evals.push(b["evaluation_ms"].as_f64().unwrap_or(0.0));
        top = b["top"][0].clone();
    }
    walls.sort_by(f64::total_cmp);
    evals.sort_by(f64::total_cmp);
    println!(
        "leaderboard (1 of 5 runs' median): {:.0} ms end to end, {:.0} ms evaluating {invitees} signups; top: {top}",
        walls[2], evals[2]
    );
    let t = Instant::now();
    let st = call(
        reqwest::Method::GET,
        "/v1/campaigns/big/stats".into(),
        json!(null),
    )
    .await;
    println!(
        "stats: {:.0} ms; funnel {}",
        t.elapsed().as_secs_f64() * 1000.0,
        st["funnel"]
    );
    let t = Instant::now();
    let r = call(
        reqwest::Method::POST,
        "/v1/campaigns/big/reconcile".into(),
        json!({}),
    )
    .await;
    println!(
        "reconcile (first, grants every reached tier): {:.0} ms, {r}",
        t.elapsed().as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::remove_dir_all(&dir).ok();
    std::process::exit(0);
}
