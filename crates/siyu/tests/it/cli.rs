//! `siyu import` / `siyu export`: the round trip, and bad files.

use crate::{siyu, tempdir};

const EVENTS: &str = r#"{"id":"x1","seq":0,"ts":"2026-09-01T08:00:00Z","identity":"douyin:aa01","type":"comment","channel":"douyin","text":"求资料"}
{"seq":1,"ts":"2026-09-01T08:05:00Z","identity":"wecom:wm01","type":"identify","channel":"wecom","ref":"douyin:aa01","traits":{"name":"王芳","tags":["vip"]}}
{"seq":2,"ts":"2026-09-02T10:00:00Z","identity":"wecom:wm01","type":"purchase","channel":"wecom","amount":12900}
{"seq":3,"ts":"2026-09-03T10:00:00Z","identity":"mp:o_1","type":"custom","channel":"miniprogram","name":"coupon_claimed","properties":{"coupon":"c1"}}
{"seq":4,"ts":"2026-09-04T10:00:00Z","identity":"douyin:bb02","type":"referral_signup","channel":"douyin","ref":"wecom:wm01"}
{"seq":5,"ts":"2026-09-05T10:00:00Z","identity":"douyin:bb02","type":"join_group","channel":"wecom","group":"g-1"}
"#;

fn import(dir: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    siyu()
        .args(["import", "--quiet", "--data-dir"])
        .arg(dir)
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn export_then_import_into_an_empty_store_is_identical() {
    let base = tempdir("roundtrip");
    let file = base.join("events.jsonl");
    std::fs::write(&file, EVENTS).unwrap();
    let a = base.join("a");
    let out = import(&a, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        summary.contains("accepted 6") && summary.contains("persons 3"),
        "{summary}"
    );
    // Importing the same file again adds nothing (ids are idempotent, but
    // lines without an id are new events: only x1 is a duplicate).
    let ex1 = base.join("ex1");
    assert!(siyu()
        .args(["export", "--data-dir"])
        .arg(&a)
        .arg("--out")
        .arg(&ex1)
        .status()
        .unwrap()
        .success());
    let b = base.join("b");
    let out = import(&b, &ex1.join("events.jsonl"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex2 = base.join("ex2");
    assert!(siyu()
        .args(["export", "--data-dir"])
        .arg(&b)
        .arg("--out")
        .arg(&ex2)
        .status()
        .unwrap()
        .success());
    for f in ["events.jsonl", "persons.csv"] {
        let (x, y) = (
            std::fs::read_to_string(ex1.join(f)).unwrap(),
            std::fs::read_to_string(ex2.join(f)).unwrap(),
        );
        assert_eq!(x, y, "{f} differs after the round trip");
    }
    let persons = std::fs::read_to_string(ex1.join("persons.csv")).unwrap();
    assert!(persons.contains("douyin:aa01,wecom:wm01"), "{persons}");
    let events = std::fs::read_to_string(ex1.join("events.jsonl")).unwrap();
    assert!(
        events.contains(r#""traits":{"name":"王芳","tags":["vip"]}"#),
        "{events}"
    );
    assert!(events.contains(r#""properties":{"coupon":"c1"}"#));
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
    let out = import(&base.join("f"), &base.join("nope.jsonl"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.jsonl"));
    std::fs::remove_dir_all(&base).ok();
}
