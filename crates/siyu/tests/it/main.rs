//! End-to-end tests of the `siyu` binary: real processes, real files, a
//! real store (SQLite; PostgreSQL too where noted), real HTTP.

mod automation_crash;
mod bulk_crash;
mod cli;
mod cluster;
mod crash;
mod csv_import;
mod demo;
mod export;
mod fd_limit;
mod live_import;
mod observability;
mod orders;
mod parquet_export;
mod readme;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub fn siyu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siyu"))
}

/// Runs `siyu import --quiet` of `file` into the SQLite store at `dir`.
pub fn import(dir: &Path, file: &Path) -> std::process::Output {
    siyu()
        .args(["import", "--quiet", "--data-dir"])
        .arg(dir)
        .arg(file)
        .output()
        .unwrap()
}

pub fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "siyu-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Creates a write key in the store at `dir`.
pub fn create_key(dir: &Path) -> String {
    let out = siyu()
        .args(["keys", "create", "--name", "test", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running `siyu serve` and the address it printed.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// `siyu serve` with extra arguments (e.g. `--config FILE`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = siyu();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit());
        Self::spawn(cmd)
    }

    /// Spawns `cmd` (a `siyu serve`, perhaps behind a shell) and waits for
    /// the address it prints on its first line of stdout.
    pub fn spawn(mut cmd: std::process::Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let addr = line
            .rsplit("http://")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        assert!(addr.contains(':'), "server did not start: `{line}`");
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request (no dependency): returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {resp}")))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
