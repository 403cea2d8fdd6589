//! README.md's recipes run as written: every `sh` block of its "Recipes"
//! section, in order, against a real `siyu demo` started in a fresh
//! directory (so `./siyu-demo-data` is the demo's), with the tour's `KEY`
//! and `ADMIN_TOKEN` exported, `siyu` on the PATH and `localhost:8080`
//! read as the demo's port. A recipe that stops working fails here.

use crate::siyu;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `sh` blocks of the README section that starts with `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).expect("the recipes section");
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("\n```").expect("a closed block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 4..];
    }
    blocks
}

#[test]
fn the_readme_recipes_work_against_the_demo() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let blocks = sh_blocks(&readme, "## Recipes (each one tested against the demo)");
    assert_eq!(blocks.len(), 4, "{blocks:#?}");

    let dir = crate::tempdir("readme");
    // The inbound recipe's config, as the README writes it.
    std::fs::write(
        dir.join("inbound.toml"),
        "[inbound]\ndouyin = \"demo-douyin-secret\"\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut demo = siyu()
        .args(["demo", "--config", "inbound.toml", "--listen"])
        .arg(format!(":{port}"))
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("login analyst") => break,
            Ok(_) => {}
            Err(_) => {
                let _ = demo.kill();
                panic!("siyu demo did not start");
            }
        }
    }
    let data = dir.join("siyu-demo-data");
    let read = |f: &str| {
        std::fs::read_to_string(data.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let (key, admin) = (read("demo-write-key.txt"), read("demo-admin-token.txt"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_siyu")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let addr = format!("127.0.0.1:{port}");

    let run = |block: &str| {
        let script = block.replace("localhost:8080", &addr);
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("KEY", &key)
            .env("ADMIN_TOKEN", &admin)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{block}\n→ {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let logins = run(&blocks[0]);
    for want in [
        "console login `alice` created with role admin",
        "alice\tadmin",
        "bob\tanalyst",
        r#""role":"admin""#,
    ] {
        assert!(logins.contains(want), "{want:?} in {logins}");
    }
    let inbound = run(&blocks[1]);
    assert!(inbound.contains(r#""accepted":1"#), "{inbound}");
    assert!(
        inbound.contains(r#""reply_template":"price""#) || inbound.contains(r#""price""#),
        "the price auto-reply: {inbound}"
    );
    let campaign = run(&blocks[2]);
    assert!(
        campaign.contains(&format!(r#""link":"http://{addr}/i/spring/"#)),
        "{campaign}"
    );
    let orders = run(&blocks[3]);
    assert!(orders.contains("accepted 3,"), "{orders}");
    assert!(orders.contains("over-refunded: 1 order(s)"), "{orders}");

    let _ = demo.kill();
    let _ = demo.wait();
    std::fs::remove_dir_all(&dir).ok();
}
