//! A real server on a socket: idle, slow and surplus connections are
//! closed or held back by `[connections]` (short timeouts here), and a
//! fresh request is still answered; console logins are throttled per
//! client address as seen on the socket, and a login flood does not hold
//! up readers.

use serde_json::{json, Value};
use siyu_server::config::Config;
use siyu_server::connections::ConnectionLimits;
use siyu_server::Application;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server running on 127.0.0.1:0 until dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    pub key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: std::path::PathBuf,
}

impl Running {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Running {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("siyu-conn-it-{}-{n}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.clone(),
            admin_token: Some("admin-secret".into()),
            ..Config::default()
        };
        tweak(&mut config);
        let app = Application::build(config).await.expect("build app");
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}");
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/admin/keys"))
            .bearer_auth("admin-secret")
            .json(&json!({"name": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let key = r.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        Running {
            addr,
            url,
            key,
            stop: Some(stop),
            served: Some(served),
            dir,
        }
    }

    /// Stops the server gracefully; fails if that takes over 10 s.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let served = self.served.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("graceful shutdown within 10 s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn short_limits(c: &mut Config) {
    c.connections = ConnectionLimits {
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_millis(500),
        max_connections: 200,
    };
}

/// Whether the server closed `s` within `within` (reads until EOF or an
/// error; any bytes it sent are returned).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

async fn healthz(url: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_the_server_still_answers() {
    let server = Running::start(short_limits).await;
    // 100 sockets that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // A slowloris: a header line every 100 ms, never the blank line.
    let mut slowloris = TcpStream::connect(server.addr).await.unwrap();
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut trickled = 0;
    for i in 0..40 {
        let line = format!("X-Slow-{i}: y\r\n");
        if slowloris.write_all(line.as_bytes()).await.is_err() {
            break;
        }
        trickled += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Past the header timeout the server has hung up; a read sees it.
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), slowloris.read(&mut b)).await
        {
            break;
        }
    }
    let slowloris_lasted = started.elapsed();
    assert!(
        trickled < 40 && slowloris_lasted < Duration::from_secs(3),
        "the slowloris was cut off ({trickled} lines, {slowloris_lasted:?})"
    );
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(3)).await.is_some(),
            "idle socket {i} still open"
        );
    }
    // A kept-alive connection is closed once idle.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(closed_within(&mut kept, Duration::from_secs(3))
        .await
        .is_some());
    // A body trickled slower than the body timeout gets 408, whichever
    // way the route reads it (the events' reader, axum's `Json`).
    for (path, content_type) in [
        ("/v1/events", "application/json"),
        ("/console/api/login", "application/json"),
        ("/v1/journeys/slow", "application/json"),
    ] {
        let mut slow_body = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "{} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n[",
            if path.starts_with("/v1/journeys") { "PUT" } else { "POST" },
            server.key
        );
        slow_body.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..30 {
            if slow_body.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = closed_within(&mut slow_body, Duration::from_secs(3))
            .await
            .expect("the slow body's connection is closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.contains("request_timeout") && answer.contains("body_read_timeout"),
            "{path}: {answer}"
        );
    }
    // And a fresh request is answered.
    assert_eq!(healthz(&server.url).await, 200);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let server = Running::start(|c| {
        c.connections.max_connections = 3;
    })
    .await;
    // The key request's connection may still be kept alive in reqwest's
    // pool: it was dropped with its client, so the server sees EOF.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = server.url.clone();
    let waiting = tokio::spawn(async move { healthz(&url).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection is not served while 3 are open"
    );
    idle.pop();
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(status, 200);
    drop(idle);
    server.stop().await;
}

async fn login_from(url: &str, from: u8, login: &str, password: &str) -> (u16, Option<u64>) {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)))
        .build()
        .unwrap();
    let r = client
        .post(format!("{url}/console/api/login"))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), retry)
}

async fn create_operator(server: &Running, login: &str) {
    let r = reqwest::Client::new()
        .put(format!("{}/console/api/operators/{login}", server.url))
        .bearer_auth("admin-secret")
        .json(&json!({"role": "operator", "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn failed_logins_are_counted_per_socket_address() {
    let server = Running::start(|_| {}).await;
    create_operator(&server, "ops").await;
    for i in 0..20 {
        let (status, _) = login_from(&server.url, 21, &format!("guess{i}"), "wrong-pass").await;
        assert_eq!(status, 401, "guess {i}");
    }
    let (status, retry) = login_from(&server.url, 21, "ops", "password1").await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|s| s >= 1), "{retry:?}");
    let (status, _) = login_from(&server.url, 22, "ops", "password1").await;
    assert_eq!(status, 200, "another address is not locked");
    server.stop().await;
}

/// During a flood of wrong logins (from many addresses, so the address
/// lockout does not end it early), a reader endpoint is answered while
/// password checks are running, not after them: the checks no longer hold
/// the server's store connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_hold_up_the_timeline() {
    let server = Running::start(|_| {}).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&server.key)
        .json(&json!([{"type": "touch", "identity": "wechat:p1", "ts": "2024-05-01T00:00:00Z"}]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let timeline = format!("{}/v1/persons/wechat:p1/timeline", server.url);
    let reader = reqwest::Client::new();
    let read = |reader: reqwest::Client, url: String, key: String| async move {
        let t = Instant::now();
        let r = reader.get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        t.elapsed()
    };
    // One password check alone.
    let t = Instant::now();
    assert_eq!(
        login_from(&server.url, 30, "nobody", "wrong-pass").await.0,
        401
    );
    let one_check = t.elapsed();
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..24u8 {
        let url = server.url.clone();
        flood.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..4 {
                let who = format!("flood{i}x{round}");
                statuses.push(login_from(&url, 40 + i, &who, "wrong-pass").await.0);
            }
            statuses
        }));
    }
    tokio::time::sleep(one_check / 4).await;
    let mut reads = Vec::new();
    for _ in 0..5 {
        reads.push(read(reader.clone(), timeline.clone(), server.key.clone()).await);
    }
    let reads_done = flood_started.elapsed();
    let mut statuses = Vec::new();
    for f in flood {
        statuses.extend(f.await.unwrap());
    }
    let flood_took = flood_started.elapsed();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, statuses.len(), "{statuses:?}");
    assert!(refused > 0, "96 logins at once over 2 password-check slots");
    reads.sort();
    let slowest = *reads.last().unwrap();
    eprintln!(
        "one check {one_check:?}; flood {flood_took:?} ({checked} checked, {refused} refused); timeline reads {reads:?}"
    );
    // The reads finished while the flood was still being checked, and
    // each took less than one password check.
    assert!(
        reads_done < flood_took,
        "reads {reads_done:?}, flood {flood_took:?}"
    );
    assert!(
        slowest < one_check,
        "slowest read {slowest:?}, one check {one_check:?}"
    );
    server.stop().await;
}
