//! A real `siyu serve --log-format json`: every log line of a request
//! carries its request id (the client's `x-request-id`, echoed; else a
//! fresh one), and `/metrics` has labelled series and `siyu_build_info`.

use crate::{siyu, tempdir, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

/// A request with extra headers; the raw response (status line, headers, body).
fn raw(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn json_logs_carry_the_request_id_and_metrics_have_labels() {
    let dir = tempdir("observability");
    let mut cmd = siyu();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
    ])
    .arg(&dir)
    .env("RUST_LOG", "info")
    .stderr(Stdio::piped());
    let mut server = Server::spawn(cmd);
    let addr = server.addr.clone();

    // A rejected request (logged at info), with the caller's id.
    let resp = raw(
        &addr,
        "POST",
        "/v1/events",
        "Authorization: Bearer nope\r\nX-Request-Id: trace-abc-123\r\n",
        "{}",
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert_eq!(header(&resp, "x-request-id"), Some("trace-abc-123"));
    // Without one, the server makes one.
    let resp = raw(&addr, "GET", "/v1/persons/x", "", "");
    let made = header(&resp, "x-request-id")
        .expect("a request id")
        .to_string();
    assert_eq!(made.len(), 16, "{made}");
    // A bad one (not visible ASCII) is replaced.
    let resp = raw(&addr, "GET", "/healthz", "X-Request-Id: a b\r\n", "");
    assert_ne!(header(&resp, "x-request-id"), Some("a b"));

    let metrics = raw(&addr, "GET", "/metrics", "", "");
    let body = metrics.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.contains(&format!(
            "siyu_build_info{{workspace=\"default\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
    assert!(
        body.contains("siyu_http_requests_total{workspace=\"default\",route=\"/v1/events\",method=\"POST\",status=\"401\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("siyu_http_requests_total{workspace=\"default\",route=\"/healthz\",method=\"GET\",status=\"200\"} 1"),
        "{body}"
    );

    server.child.kill().ok();
    let mut logs = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    server.child.wait().ok();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        // Log lines only: anything the command itself prints is not one.
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of = |id: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|v| v["span"]["request_id"] == id)
            .collect()
    };
    let traced = of("trace-abc-123");
    assert!(!traced.is_empty(), "no line with the request id: {logs}");
    for v in &traced {
        assert_eq!(v["spans"][0]["request_id"], "trace-abc-123", "{v}");
    }
    assert!(
        traced.iter().any(|v| v["fields"]["status"] == 401),
        "the request's own line: {logs}"
    );
    assert!(!of(&made).is_empty(), "{logs}");
    std::fs::remove_dir_all(&dir).ok();
}
