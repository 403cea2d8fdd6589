//! `siyu import` / `siyu export`: the round trip, and bad files.

use crate::{import, siyu, tempdir};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

const EVENTS: &str = r#"{"id":"x1","seq":0,"ts":"2026-09-01T08:00:00Z","identity":"douyin:aa01","type":"comment","channel":"douyin","text":"求资料"}
{"seq":1,"ts":"2026-09-01T08:05:00Z","identity":"wecom:wm01","type":"identify","channel":"wecom","ref":"douyin:aa01","traits":{"name":"王芳","tags":["vip"]}}
{"seq":2,"ts":"2026-09-02T10:00:00Z","identity":"wecom:wm01","type":"purchase","channel":"wecom","amount":12900}
{"seq":3,"ts":"2026-09-03T10:00:00Z","identity":"mp:o_1","type":"custom","channel":"miniprogram","name":"coupon_claimed","properties":{"coupon":"c1"}}
{"seq":4,"ts":"2026-09-04T10:00:00Z","identity":"douyin:bb02","type":"referral_signup","channel":"douyin","ref":"wecom:wm01"}
{"seq":5,"ts":"2026-09-05T10:00:00Z","identity":"douyin:bb02","type":"join_group","channel":"wecom","group":"g-1"}
{"seq":6,"ts":"2026-09-06T10:00:00Z","identity":"mp:o_1","type":"identify","channel":"miniprogram","ref":"douyin:bb02"}
"#;

/// Where a command's store lives: SQLite in a directory, or a fresh
/// PostgreSQL schema (dropped on drop).
pub(crate) enum Target {
    Sqlite(PathBuf),
    /// `dir` holds the engine snapshot an import writes.
    Postgres {
        url: String,
        schema: String,
        dir: PathBuf,
    },
}

impl Target {
    pub(crate) fn postgres(url: &str, tag: &str, base: &Path) -> Target {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "siyu_cli_it_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(&schema);
        std::fs::create_dir_all(&dir).unwrap();
        Target::Postgres {
            url: url.to_string(),
            schema,
            dir,
        }
    }

    /// The data directory (with PostgreSQL: where the engine snapshot goes).
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Target::Sqlite(dir) | Target::Postgres { dir, .. } => dir,
        }
    }

    /// `siyu ARGS… <store flags>`, asserting it succeeded.
    pub(crate) fn run(&self, args: &[&OsStr]) -> Output {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "siyu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `siyu ARGS… <store flags>`, however it ends.
    pub(crate) fn command(&self, args: &[&OsStr]) -> Output {
        let mut cmd = siyu();
        cmd.args(args);
        match self {
            Target::Sqlite(dir) => cmd.arg("--data-dir").arg(dir),
            Target::Postgres { url, schema, dir } => cmd
                .args(["--database-url", url, "--database-schema", schema])
                .arg("--data-dir")
                .arg(dir),
        };
        cmd.output().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Postgres { url, schema, .. } = self {
            if let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// Import → export → import the export into an empty store → export
/// again: the two exports are identical (events, persons, merges).
fn round_trip(a: Target, b: Target, base: &Path) {
    let file = base.join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    let (ex1, ex2) = (base.join("ex1"), base.join("ex2"));
    let os = |s: &'static str| OsStr::new(s);
    let out = a.run(&[os("import"), os("--quiet"), file.as_os_str()]);
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        summary.contains("accepted 7") && summary.contains("persons 2"),
        "{summary}"
    );
    a.run(&[os("export"), os("--out"), ex1.as_os_str()]);
    let out = b.run(&[
        os("import"),
        os("--quiet"),
        ex1.join("events.jsonl").as_os_str(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 7"));
    b.run(&[os("export"), os("--out"), ex2.as_os_str()]);
    for f in ["events.jsonl", "persons.csv", "merges.jsonl"] {
        let (x, y) = (
            std::fs::read_to_string(ex1.join(f)).unwrap(),
            std::fs::read_to_string(ex2.join(f)).unwrap(),
        );
        assert_eq!(x, y, "{f} differs after the round trip");
    }
    let persons = std::fs::read_to_string(ex1.join("persons.csv")).unwrap();
    assert!(persons.contains("douyin:aa01,wecom:wm01"), "{persons}");
    let merges = std::fs::read_to_string(ex1.join("merges.jsonl")).unwrap();
    assert_eq!(merges.lines().count(), 1, "{merges}");
    // Two known persons linked by the identify of line 7 (a new identity
    // linked to a known one just joins it: no merge).
    assert!(
        merges.contains(r#""event_offset":7"#) && merges.contains(r#""into":"douyin:bb02""#),
        "{merges}"
    );
    let events = std::fs::read_to_string(ex1.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 7);
    assert!(
        events.contains(r#""traits":{"name":"王芳","tags":["vip"]}"#),
        "{events}"
    );
    assert!(events.contains(r#""properties":{"coupon":"c1"}"#));
    // Every exported event has an id (its client's, else its content id):
    // importing the export again adds nothing.
    let out = b.run(&[
        os("import"),
        os("--quiet"),
        ex1.join("events.jsonl").as_os_str(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accepted 0, duplicates 7"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn export_then_import_into_an_empty_store_is_identical() {
    let base = tempdir("roundtrip");
    round_trip(
        Target::Sqlite(base.join("a")),
        Target::Sqlite(base.join("b")),
        &base,
    );
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn round_trip_through_postgres_and_across_backends() {
    let Ok(url) = std::env::var("SIYU_TEST_DATABASE_URL") else {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    };
    let base = tempdir("roundtrip-pg");
    round_trip(
        Target::postgres(&url, "a", &base),
        Target::postgres(&url, "b", &base),
        &base,
    );
    // SQLite → PostgreSQL: the export is the portable format.
    let cross = tempdir("roundtrip-cross");
    round_trip(
        Target::Sqlite(cross.join("a")),
        Target::postgres(&url, "c", &cross),
        &cross,
    );
    std::fs::remove_dir_all(&base).ok();
    std::fs::remove_dir_all(&cross).ok();
}

/// An import into PostgreSQL stores its engine snapshot in the database,
/// where every node finds it (issue 16's fast start), also without a
/// data dir, which it then does not create.
#[test]
fn an_import_into_postgres_stores_its_snapshot_in_the_database() {
    let Ok(url) = std::env::var("SIYU_TEST_DATABASE_URL") else {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    };
    let base = tempdir("import-snapshot");
    let file = base.join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    let target = Target::postgres(&url, "snap", &base);
    std::fs::remove_dir_all(target.dir()).unwrap();
    target.run(&["import".as_ref(), "--quiet".as_ref(), file.as_os_str()]);
    assert!(!target.dir().exists(), "no data dir was asked for");
    let Target::Postgres { schema, .. } = &target else {
        unreachable!()
    };
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let stored: Vec<(i64, i64)> = c
        .query(
            &format!("SELECT log_offset, byte_len FROM {schema}.engine_snapshots"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, EVENTS.lines().count() as i64);
    assert!(stored[0].1 > 0);
    drop(target);
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn bad_lines_are_reported_with_file_and_line_and_the_rest_is_imported() {
    let base = tempdir("badlines");
    let file = base.join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"ts\":1790000000,\"identity\":\"douyin:a\",\"type\":\"touch\"}\n{\"ts\":1790000000,\"identity\":\"a\",\"type\":\"touch\"}\nnot json\n{\"ts\":1790000001,\"identity\":\"douyin:a\",\"type\":\"follow\"}\n",
    )
    .unwrap();
    let out = import(&base.join("d"), &file);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2: field `identity`"), "{err}");
    assert!(
        err.contains("bad.jsonl:3: field `event`: malformed JSON"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 2"));
    let csv = base.join("missing.csv");
    std::fs::write(&csv, "seq,identity,type\n1,douyin:a,touch\n").unwrap();
    let out = import(&base.join("e"), &csv);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.csv:1") && err.contains("column `ts` is missing"),
        "{err}"
    );
    let csv = base.join("bench-shaped.csv");
    std::fs::write(
        &csv,
        "seq,ts,identity,type,channel,amount,ref,group,text\n\
         0,1790000000,douyin:a,touch,douyin,0,,,\n\
         1,1790000001,douyin:a,purchase,douyin,lots,,,\n\
         2,1790000002,douyin:a,purchase,douyin,99999999999999999999,,,\n\
         3,1790000003,a,touch,douyin,0,,,\n\
         4,1790000004,douyin:a,purchase,douyin,12900,,,\n",
    )
    .unwrap();
    let out = import(&base.join("g"), &csv);
    assert!(
        !out.status.success(),
        "a rejected line makes the exit code non-zero"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "bench-shaped.csv:3: field `amount`",
        "bench-shaped.csv:4: field `amount`",
        "bench-shaped.csv:5: field `identity`",
    ] {
        assert!(err.contains(line), "{line} missing from: {err}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 2") && stdout.contains("rejected 3"),
        "{stdout}"
    );
    let out = import(&base.join("f"), &base.join("nope.jsonl"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.jsonl"));
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn analytics_answer_from_the_store() {
    let base = tempdir("analytics");
    let file = base.join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    let dir = base.join("d");
    assert!(import(&dir, &file).status.success());
    let run = |args: &[&str]| {
        let out = siyu()
            .arg("analytics")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--now", "1790000000"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Two persons: douyin:aa01 (+ wecom:wm01), first seen on Douyin; douyin:bb02
    // (+ mp:o_1), first seen in the mini-program. Nobody added a friend.
    assert_eq!(
        run(&["funnel"]),
        "channel,entered,friended,converted\ndouyin,1,0,0\nminiprogram,1,0,0\n"
    );
    assert_eq!(
        run(&["steps", "--step", "comment", "--step", "purchase:2d"]),
        "split,step1,step2\nall,1,1\n"
    );
    let attribution = run(&["attribution"]);
    // The one purchase (¥129, on WeCom) followed only a Douyin comment: every model credits Douyin.
    assert_eq!(
        attribution,
        "channel,first_touch,last_touch,linear\ndouyin,12900,12900,12900\n"
    );
    // Ranges are local days (Asia/Shanghai, the default workspace zone):
    // the purchase at 2026-09-02T10:00Z is 18:00 on 09-02 there.
    assert_eq!(
        run(&["attribution", "--from", "2026-09-02", "--to", "2026-09-02"]),
        attribution
    );
    assert_eq!(
        run(&["attribution", "--from", "2026-09-03"]),
        "channel,first_touch,last_touch,linear\n"
    );
    assert_eq!(
        run(&["funnel", "--to", "2026-08-31"]),
        "channel,entered,friended,converted\n"
    );
    // The one buyer (¥129, 18 days before --now, one purchase) under
    // given thresholds is an important-value customer; the eight layers
    // are listed, empty ones included.
    let layers = run(&[
        "rfm-layers",
        "--recency-days",
        "30",
        "--frequency",
        "0",
        "--monetary-cents",
        "10000",
    ]);
    let lines: Vec<&str> = layers.lines().collect();
    assert_eq!(lines.len(), 9, "{layers}");
    assert_eq!(
        lines[1],
        "important_value,重要价值客户,1,1.0000,12900,1.0000,12900,1.00"
    );
    assert!(
        lines[8].starts_with("general_win_back,一般挽留客户,0,"),
        "{layers}"
    );
    // Recency 10 days: the same buyer, frequent and high value but not
    // recent, is one to keep (重要保持).
    let layers = run(&[
        "rfm-layers",
        "--recency-days",
        "10",
        "--frequency",
        "0",
        "--monetary-cents",
        "10000",
    ]);
    assert!(
        layers.contains("\nimportant_keep,重要保持客户,1,1.0000,12900,"),
        "{layers}"
    );
    let bad_range = siyu()
        .arg("analytics")
        .arg("--data-dir")
        .arg(&dir)
        .args(["roi", "--from", "2026-10-02", "--to", "2026-10-01"])
        .output()
        .unwrap();
    assert!(!bad_range.status.success());
    assert!(
        String::from_utf8_lossy(&bad_range.stderr)
            .contains("--from: `2026-10-02` is after to: `2026-10-01`"),
        "{}",
        String::from_utf8_lossy(&bad_range.stderr)
    );
    let bad = siyu()
        .arg("analytics")
        .arg("--data-dir")
        .arg(&dir)
        .args(["steps", "--step", "teleport"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`teleport` is not an event type"));
    std::fs::remove_dir_all(&base).ok();
}

/// Every span flag of `siyu analytics` takes the one duration syntax
/// (`siyu_domain::duration`); a bare number keeps meaning days, as the
/// `--*-days` flags always did; a bad value names the flag and the units.
#[test]
fn analytics_span_flags_take_durations() {
    let base = tempdir("analytics-spans");
    let file = base.join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    let dir = base.join("d");
    assert!(import(&dir, &file).status.success());
    let run = |args: &[&str]| {
        siyu()
            .arg("analytics")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--now", "1790000000"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The purchase came 26 hours after the comment.
    assert_eq!(
        ok(&["steps", "--step", "comment", "--step", "purchase:1d3h"]),
        "split,step1,step2\nall,1,1\n"
    );
    assert_eq!(
        ok(&["steps", "--step", "comment", "--step", "purchase:25h"]),
        "split,step1,step2\nall,1,0\n"
    );
    // Durations and bare days give the same answers.
    let by_days = ok(&["funnel", "--friend-days", "7", "--convert-days", "30"]);
    assert_eq!(
        by_days,
        ok(&[
            "funnel",
            "--friend-within",
            "1w",
            "--convert-within",
            "720h"
        ])
    );
    assert_eq!(by_days, ok(&["funnel"]));
    let by_days = ok(&["referrals", "--convert-days", "14"]);
    assert_eq!(by_days, ok(&["referrals", "--convert-within", "2w"]));
    assert!(by_days.starts_with("inviters,tier1,tier2\n"), "{by_days}");
    for (args, flag) in [
        (&["funnel", "--friend-within", "7x"][..], "--friend-within"),
        (&["referrals", "--convert-days=-3"][..], "--convert-within"),
        (
            &["steps", "--step", "comment", "--step", "purchase:2"][..],
            "--step",
        ),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains(flag) && err.contains("units s, m, h, d, w"),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&base).ok();
}

/// `siyu keys create --scope …` beside a running server on the same store:
/// the key works there within 2 s (the server rereads the keys every
/// second) and only for its scope; a bad scope is refused with the list.
#[test]
fn a_scoped_key_from_the_cli_works_on_a_running_server_within_2_s() {
    let dir = tempdir("scoped-key");
    let server = crate::Server::start(&dir);
    let out = siyu()
        .args([
            "keys",
            "create",
            "--name",
            "sdk",
            "--scope",
            "ingest",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("scopes ingest"));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let event = r#"[{"ts": 1790000000, "identity": "wecom:w1", "type": "touch"}]"#;
    let created = std::time::Instant::now();
    loop {
        let (status, body) = crate::http(&server.addr, "POST", "/v1/events", &key, event).unwrap();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401, "{body}");
        assert!(
            created.elapsed() < std::time::Duration::from_secs(2),
            "the new key did not work within 2 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, body) =
        crate::http(&server.addr, "GET", "/v1/persons/wecom:w1", &key, "").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("`read` scope"), "{body}");
    let bad = siyu()
        .args([
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "all",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown scope `all`") && err.contains("ingest, read, write, erase, admin"),
        "{err}"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
