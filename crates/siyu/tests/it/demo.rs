//! `siyu demo`: it fills only a directory it made (or an empty one) and
//! its admin token is random per demo dir, printed and kept in the dir.

use crate::{siyu, tempdir};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn demo(dir: &Path) -> Child {
    siyu()
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The demo's printed admin token, once it listens (within 3 minutes);
/// the process is killed afterwards.
fn admin_token_printed(dir: &Path) -> String {
    let mut child = demo(dir);
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut token = None;
    let mut listening = false;
    while !(listening && token.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "siyu demo printed no admin token: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        listening |= line.starts_with("siyu demo on ");
        if let Some(t) = line.trim().strip_prefix("admin token:") {
            token = Some(t.trim().to_string());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    token.unwrap()
}

#[test]
fn the_admin_token_is_random_kept_in_the_dir_and_reused() {
    let dir = tempdir("demo-token");
    let token = admin_token_printed(&dir);
    assert!(token.starts_with("adm_") && token.len() == 52, "{token}");
    let kept = std::fs::read_to_string(dir.join("demo-admin-token.txt")).unwrap();
    assert_eq!(kept.trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("demo-admin-token.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads the token: {mode:o}");
    }
    assert!(dir.join("siyu-demo.marker").exists());
    // The same demo dir again: accepted, same token.
    assert_eq!(admin_token_printed(&dir), token);
    // Another demo dir: another token.
    let other = tempdir("demo-token");
    assert_ne!(admin_token_printed(&other), token);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&other).ok();
}

/// Runs `siyu demo` where it must refuse: it exits at once with an error
/// naming the dir and what to do, and writes nothing there.
fn assert_refused(dir: &Path) {
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut child = demo(dir);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "siyu demo did not refuse {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(
        err.contains("did not create") && err.contains("siyu serve --data-dir"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "nothing written");
}

#[test]
fn a_dir_holding_other_data_is_refused() {
    // A real store: a write key created by `siyu keys create`.
    let store = tempdir("demo-store");
    crate::create_key(&store);
    assert_refused(&store);
    // Any other file.
    let notes = tempdir("demo-notes");
    std::fs::write(notes.join("notes.txt"), "mine").unwrap();
    assert_refused(&notes);
    std::fs::remove_dir_all(&store).ok();
    std::fs::remove_dir_all(&notes).ok();
}

/// A running `siyu demo` with the lines it printed up to its banner.
struct RunningDemo {
    child: Child,
    printed: Vec<String>,
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(dir: &Path, args: &[&str]) -> RunningDemo {
    let mut child = siyu()
        .arg("demo")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !printed.iter().any(|l: &String| l.contains("login analyst")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("siyu demo did not start: {printed:?}"));
        printed.push(line);
    }
    RunningDemo { child, printed }
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn json(addr: &str, method: &str, path: &str, key: &str, body: &str) -> serde_json::Value {
    let (status, text) = crate::http(addr, method, path, key, body).unwrap();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

/// The status and first bytes of a GET (any body, binary too).
fn get_raw(addr: &str, path: &str, key: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&resp[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, resp[head_end..].to_vec())
}

/// The path of `url` after `base`, which it must start with.
fn path_under<'a>(url: &'a str, base: &str) -> &'a str {
    url.strip_prefix(base)
        .unwrap_or_else(|| panic!("link {url} does not start with {base}"))
}

#[test]
fn the_demo_links_to_the_port_it_listens_on_and_fills_every_page() {
    let dir = tempdir("demo-links");
    let port = free_port();
    let demo = start_demo(&dir, &["--listen", &format!(":{port}")]);
    let base = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    assert!(
        demo.printed
            .iter()
            .any(|l| l == &format!("siyu demo on {base}")),
        "{:?}",
        demo.printed
    );
    let key = std::fs::read_to_string(dir.join("demo-write-key.txt")).unwrap();
    let key = key.trim();

    // Invites and their posters name this port, and the link answers.
    let board = json(&addr, "GET", "/v1/campaigns/double11/leaderboard", key, "");
    let leader = &board["top"][0];
    let top = leader["inviter"]
        .as_str()
        .unwrap_or_else(|| panic!("a leaderboard: {board}"))
        .to_string();
    assert!(
        leader["valid"].as_u64().unwrap() + leader["pending"].as_u64().unwrap() >= 10,
        "one inviter past the second tier: {board}"
    );
    let invite = json(
        &addr,
        "POST",
        "/v1/campaigns/double11/invites",
        key,
        &format!(r#"{{"identity":"{top}"}}"#),
    );
    let link = invite["link"].as_str().unwrap();
    let (status, _) = get_raw(&addr, path_under(link, &base), "");
    assert_eq!(status, 200, "{link}");
    // The poster is an API path (it needs a key); its QR code holds `link`.
    let poster = invite["poster"].as_str().unwrap();
    let (status, png) = get_raw(&addr, poster, key);
    assert_eq!((status, &png[..4]), (200, &b"\x89PNG"[..]), "{poster}");

    // Live-code claims, unsubscribe and content links too.
    let claim = json(
        &addr,
        "POST",
        "/v1/livecodes/vip/claims",
        key,
        &format!(r#"{{"identity":"{top}"}}"#),
    );
    let url = claim["url"].as_str().unwrap();
    let (status, _) = get_raw(&addr, path_under(url, &base), "");
    assert_eq!(status, 200, "{url}");
    let preview = json(
        &addr,
        "POST",
        &format!("/v1/templates/winback/preview?person={top}&channel=email"),
        key,
        "",
    );
    let body = preview["body"].as_str().unwrap();
    let unsubscribe = &body[body.find("http").unwrap_or_else(|| panic!("{body}"))..];
    let (status, page) = get_raw(&addr, path_under(unsubscribe.trim(), &base), "");
    assert_eq!(
        status,
        200,
        "{unsubscribe}: {}",
        String::from_utf8_lossy(&page)
    );
    let preview = json(
        &addr,
        "POST",
        &format!("/v1/templates/new_article/preview?person={top}"),
        key,
        "",
    );
    let body = preview["body"].as_str().unwrap();
    let content = &body[body.find("http").unwrap_or_else(|| panic!("{body}"))..];
    let (status, _) = get_raw(&addr, path_under(content.trim(), &base), "");
    assert_eq!(status, 302, "{content}");

    // Every console page has something to show.
    let groups = json(&addr, "GET", "/v1/groups", key, "");
    let groups = groups["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{groups}"));
    assert_eq!(groups.len(), 12, "{groups:?}");
    assert!(
        groups.iter().all(|g| g["size"].as_u64() > Some(0)),
        "{groups:?}"
    );
    let operators = json(&addr, "GET", "/v1/operators", key, "");
    assert_eq!(
        operators["operators"].as_array().map(Vec::len),
        Some(3),
        "{operators}"
    );
    let content = json(&addr, "GET", "/v1/content", key, "");
    assert_eq!(
        content["content"].as_array().map(Vec::len),
        Some(3),
        "{content}"
    );
    let codes = json(&addr, "GET", "/v1/livecodes", key, "");
    assert_eq!(
        codes["livecodes"].as_array().map(Vec::len),
        Some(1),
        "{codes}"
    );
    let stats = json(&addr, "GET", "/v1/campaigns/double11/stats", key, "");
    let funnel = &stats["funnel"];
    assert!(funnel["signups"].as_u64() >= Some(30), "{stats}");
    assert!(
        funnel["clicks"].as_u64() > funnel["signups"].as_u64(),
        "{stats}"
    );
    assert!(funnel["valid"].as_u64() > Some(0), "{stats}");
    let rewards = json(&addr, "GET", "/v1/campaigns/double11/rewards", key, "");
    let granted = rewards["ledger"]
        .as_array()
        .unwrap_or_else(|| panic!("{rewards}"))
        .iter()
        .filter(|r| r["status"] == "granted")
        .count();
    assert!(granted >= 3, "a few inviters past a tier: {rewards}");

    // History triggers nothing: every message in the outbox is for one of
    // the newcomers who arrived as the demo started, and each of them was
    // welcomed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let items = loop {
        let outbox = json(&addr, "GET", "/v1/outbox?limit=10000", key, "");
        let items = outbox["items"].as_array().unwrap().clone();
        let welcomed = items.iter().filter(|i| i["journey"] == "welcome").count();
        if welcomed >= 3 || Instant::now() > deadline {
            break items;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!items.is_empty());
    // The live-code claim above welcomed the inviter it was made for: the
    // test's own fresh action, not history.
    let claimed: Vec<_> = items
        .iter()
        .filter(|i| {
            i["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("m/lc/vip/"))
        })
        .collect();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    for item in items.iter().filter(|i| !claimed.contains(i)) {
        let who = item["identity"].as_str().unwrap();
        assert!(
            who.contains("demo_new") || who.contains("wm_new"),
            "a message for the history: {item}"
        );
    }
    let report = json(&addr, "GET", "/v1/journeys/welcome/report", key, "");
    assert_eq!(report["enrolled"].as_u64(), Some(3), "{report}");
    drop(demo);
    std::fs::remove_dir_all(&dir).ok();
}
