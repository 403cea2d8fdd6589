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
