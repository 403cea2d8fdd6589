//! `siyu import` into the store of a running `siyu serve`: the server reads
//! the imported events back (on its next write or within a second when
//! idle), so its engine follows the log; a graceful restart (snapshot)
//! and a restart after SIGKILL (log replay) both come back identical.
//! Such an import is history: it messages nobody unless run with
//! `--trigger`, and then only for its fresh events.

use crate::{create_key, http, import, tempdir, Server};

use serde_json::Value;
use std::time::{Duration, Instant};

fn get(server: &Server, key: &str, path: &str) -> Value {
    let (status, body) = http(&server.addr, "GET", path, key, "").unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `/healthz` until it reports `events` (the server caught up).
fn wait_for_events(server: &Server, key: &str, events: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = get(server, key, "/healthz");
        if h["events"].as_u64() == Some(events) || Instant::now() > deadline {
            return h;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_import_beside_a_running_server_is_seen_by_it_and_survives_restarts() {
    let dir = tempdir("live-import");
    let key = create_key(&dir);
    let server = Server::start(&dir);
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/events",
        &key,
        r#"[{"id":"s1","ts":1790000000,"identity":"douyin:aa01","type":"comment","text":"求资料"},
            {"id":"s2","ts":1790000100,"identity":"wecom:wm01","type":"identify","ref":"douyin:aa01"}]"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    // 1 000 events of 500 persons, one of them linked to the server's person.
    let mut lines: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"id":"i{i}","ts":{},"identity":"kuaishou:k{}","type":"touch"}}"#,
                1_790_001_000 + i,
                i % 500
            )
        })
        .collect();
    lines.push(
        r#"{"id":"link","ts":1790002000,"identity":"kuaishou:k7","type":"identify","ref":"wecom:wm01"}"#
            .into(),
    );
    let file = dir.join("more.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = import(&dir, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Idle server: it notices the import by itself.
    let h = wait_for_events(&server, &key, 1003);
    assert_eq!(h["events"], 1003, "{h}");
    let p = get(&server, &key, "/v1/persons/kuaishou:k7");
    assert_eq!(
        p["identities"],
        serde_json::json!(["douyin:aa01", "kuaishou:k7", "wecom:wm01"]),
        "{p}"
    );
    // Its own writes continue after the imported offsets.
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/events",
        &key,
        r#"[{"id":"s3","ts":1790003000,"identity":"kuaishou:k7","type":"purchase","amount":9900}]"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let before = get(&server, &key, "/v1/persons/douyin:aa01");
    assert_eq!(before["net_spend"], 9900, "{before}");
    let persons_before = get(&server, &key, "/healthz")["persons"].clone();

    // Graceful stop (SIGTERM: final snapshot), then restart from it.
    let mut server = server;
    let pid = server.child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = server.child.wait().unwrap();
    assert!(stopped.success(), "graceful stop: {stopped:?}");
    drop(server);
    let snapshots = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snapshot"))
        .count();
    assert_eq!(snapshots, 1, "a snapshot was written at shutdown");
    let server = Server::start(&dir);
    let h = get(&server, &key, "/healthz");
    assert_eq!(
        (h["events"].as_u64(), &h["persons"]),
        (Some(1004), &persons_before),
        "{h}"
    );
    assert_eq!(get(&server, &key, "/v1/persons/wecom:wm01"), before);
    drop(server); // SIGKILL: no snapshot written this time

    // Another import while no server runs, then a start from the old
    // snapshot plus the log after it.
    std::fs::write(
        &file,
        r#"{"id":"late","ts":1790004000,"identity":"douyin:aa01","type":"purchase","amount":100}"#,
    )
    .unwrap();
    let out = import(&dir, &file);
    assert!(out.status.success());
    let server = Server::start(&dir);
    let h = get(&server, &key, "/healthz");
    assert_eq!(h["events"], 1005, "{h}");
    assert_eq!(
        get(&server, &key, "/v1/persons/kuaishou:k7")["net_spend"],
        10000
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14.1, end to end: a brand migrating its history with `siyu import`
/// beside a running server must not welcome every past contact. The
/// server applies the imported add_friends but sends only for the fresh
/// ones of an import run with `--trigger`, and for its own fresh events.
#[test]
fn an_import_beside_a_running_server_messages_nobody_unless_asked() {
    let dir = tempdir("history-import");
    let (url, got) = crate::automation_crash::receiver();
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("siyu.toml");
    std::fs::write(
        &config,
        format!("[connectors.webhook]\nurl = \"{url}\"\nsecret = \"s3cret\"\n"),
    )
    .unwrap();
    let key = create_key(&dir);
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let put = |path: &str, body: &str| {
        let (status, resp) = http(&server.addr, "PUT", path, &key, body).unwrap();
        assert_eq!(status, 200, "PUT {path}: {resp}");
    };
    put("/v1/guardrails", r#"{"quiet_hours": null}"#);
    put(
        "/v1/templates/hi",
        r#"{"body": "欢迎 {{person.id}}", "class": "transactional"}"#,
    );
    put(
        "/v1/journeys/welcome",
        r#"{"trigger": {"type": "event", "event": "add_friend"}, "start": "s1", "steps": {
            "s1": {"type": "send", "template": "hi", "channel": "webhook"}}}"#,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let file = dir.join("history.jsonl");
    let run_import = |lines: &str, trigger: bool| {
        std::fs::write(&file, lines).unwrap();
        let mut cmd = crate::siyu();
        cmd.args(["import", "--quiet"]);
        if trigger {
            cmd.arg("--trigger");
        }
        let out = cmd.arg("--data-dir").arg(&dir).arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The migration: a 2025 friend and a fresh one, no --trigger.
    run_import(
        &format!(
            "{{\"id\":\"a\",\"ts\":1735689600,\"identity\":\"wecom:old\",\"type\":\"add_friend\"}}\n\
             {{\"id\":\"b\",\"ts\":{now},\"identity\":\"wecom:migrated\",\"type\":\"add_friend\"}}\n"
        ),
        false,
    );
    assert_eq!(wait_for_events(&server, &key, 2)["events"], 2);
    // With --trigger: its fresh friend is welcomed, its 2025 one is not.
    run_import(
        &format!(
            "{{\"id\":\"c\",\"ts\":1735689600,\"identity\":\"wecom:old2\",\"type\":\"add_friend\"}}\n\
             {{\"id\":\"d\",\"ts\":{now},\"identity\":\"wecom:asked\",\"type\":\"add_friend\"}}\n"
        ),
        true,
    );
    // 4 events, and a 5th once the welcome's message_sent is logged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&server, &key, "/healthz")["events"].as_u64() < Some(4) {
        assert!(
            Instant::now() < deadline,
            "the server never saw the second import"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A friend the server itself hears of now.
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/events",
        &key,
        &format!(r#"{{"id":"e","ts":{now},"identity":"wecom:live","type":"add_friend"}}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut sent: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap()["identity"].to_string())
        .collect();
    sent.sort();
    assert_eq!(sent, [r#""wecom:asked""#, r#""wecom:live""#]);
    let report = get(&server, &key, "/v1/journeys/welcome/report");
    assert_eq!(
        report["skipped_history"],
        serde_json::json!({"stale": 1, "backfill": 2}),
        "{report}"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
