//! `siyu serve` under a file-descriptor limit of 64 (`ulimit -n`): more
//! idle sockets than it has descriptors used to wedge it for good (the
//! sockets never closed, every accept failed with EMFILE). With
//! `[connections]` timeouts it closes them, keeps accepting, and answers
//! a fresh request.

use crate::{http, siyu, tempdir, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn idle_sockets_beyond_the_fd_limit_do_not_wedge_the_server() {
    let dir = tempdir("fd-limit");
    let config = dir.join("siyu.toml");
    std::fs::write(
        &config,
        "[connections]\nheader_read_timeout_secs = 0.5\nidle_timeout_secs = 0.5\n",
    )
    .unwrap();
    let data = dir.join("data");
    let bin = siyu().get_program().to_owned();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\" --config \"$2\"")
        .arg(&bin)
        .arg(&data)
        .arg(&config)
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    let server = Server::spawn(cmd);
    let addr = server.addr.clone();

    // 100 sockets that never send a byte: more than the server's 64
    // descriptors; the rest wait in the listen backlog.
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Every one of them is accepted and closed in turn.
    let started = Instant::now();
    for (i, s) in idle.iter_mut().enumerate() {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "idle socket {i} still open after {:?}: {other:?}",
                started.elapsed()
            ),
        }
    }
    // And a fresh request is answered.
    let (status, body) = http(&addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200, "{body}");
    // A request on a socket that waited in the backlog too.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
