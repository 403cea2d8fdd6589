//! `siyu import FILE.csv` reads RFC 4180 as Excel's "CSV UTF-8" writes it:
//! a BOM, CRLF, quoted fields holding commas, doubled quotes and line
//! breaks — stored exactly, checked through `siyu export`.

use crate::{import, siyu, tempdir};
use std::path::Path;

/// The `text` of every exported event, by its `id`.
fn exported_texts(dir: &Path, out: &Path) -> std::collections::BTreeMap<String, String> {
    let o = siyu()
        .args(["export", "--data-dir"])
        .arg(dir)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| {
            Some((
                v["id"].as_str()?.to_string(),
                v["text"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

#[test]
fn an_excel_csv_utf8_file_is_stored_exactly() {
    let base = tempdir("csv-excel");
    let file = base.join("excel.csv");
    // As Excel saves "CSV UTF-8": BOM, CRLF, quotes only where needed.
    std::fs::write(
        &file,
        "\u{feff}id,ts,identity,type,channel,text\r\n\
         e1,1790000000,douyin:a,comment,douyin,\"你好, 多少钱？\"\r\n\
         e2,1790000001,douyin:a,comment,douyin,\"他说\"\"好\"\"\"\r\n\
         e3,1790000002,douyin:b,comment,douyin,\"第一行\r\n第二行, 还有\"\r\n\
         e4,1790000003,douyin:b,comment,douyin,plain\r\n\
         e5,1790000004,douyin:b,comment,douyin,a,b\r\n\
         e6,1790000005,douyin:c,comment,douyin,\"never closed\r\n",
    )
    .unwrap();
    let dir = base.join("d");
    let out = import(&dir, &file);
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 4") && stdout.contains("rejected 2"),
        "{stdout}{err}"
    );
    // Rejections name the line each record starts on (e3 spans lines 4–5).
    assert!(
        err.contains("excel.csv:7: field `event`: has 7 columns, the header has 6; quote a field"),
        "{err}"
    );
    assert!(
        err.contains("excel.csv:8: field `event`: a quoted field is never closed"),
        "{err}"
    );
    let texts = exported_texts(&dir, &base.join("ex"));
    assert_eq!(texts["e1"], "你好, 多少钱？");
    assert_eq!(texts["e2"], "他说\"好\"");
    assert_eq!(texts["e3"], "第一行\r\n第二行, 还有");
    assert_eq!(texts["e4"], "plain");
    assert_eq!(texts.len(), 4);
    std::fs::remove_dir_all(&base).ok();
}

/// A file larger than the bulk reader's chunks (4 MiB), where quoted
/// fields hold line breaks everywhere: every record is read whole, and a
/// bad record far into the file is named by its line.
#[test]
fn quoted_line_breaks_across_chunk_boundaries() {
    let base = tempdir("csv-chunks");
    let file = base.join("big.csv");
    let mut text = String::from("id,ts,identity,type,channel,text\n");
    let n = 60_000u64;
    let mut line = 2u64;
    let mut bad_line = 0;
    for i in 0..n {
        if i == n - 10 {
            bad_line = line;
            text.push_str("bad,1790000000,nochannel,comment,douyin,x\n");
            line += 1;
        }
        text.push_str(&format!(
            "e{i},{},douyin:u{},comment,douyin,\"第{i}条, \"\"引号\"\"\n{}\"\n",
            1_790_000_000 + i,
            i % 97,
            "很长的一行".repeat(6)
        ));
        line += 2;
    }
    assert!(text.len() > 2 * (4 << 20), "{}", text.len());
    std::fs::write(&file, &text).unwrap();
    let dir = base.join("d");
    let out = import(&dir, &file);
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("accepted {n}")) && stdout.contains("rejected 1"),
        "{stdout}{err}"
    );
    assert!(
        err.contains(&format!("big.csv:{bad_line}: field `identity`")),
        "line {bad_line}: {err}"
    );
    let texts = exported_texts(&dir, &base.join("ex"));
    assert_eq!(texts.len() as u64, n);
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(
            texts[&format!("e{i}")],
            format!("第{i}条, \"引号\"\n{}", "很长的一行".repeat(6))
        );
    }
    std::fs::remove_dir_all(&base).ok();
}

/// Issue 19.2: `siyu import` stores each comment with its intent, as the
/// server does for what it appends (`properties.intent` and
/// `intent_confidence`), in CSV and JSONL alike; a stated intent is kept
/// and an unknown one rejected naming the field.
#[test]
fn imported_comments_carry_their_intent() {
    let base = tempdir("import-intents");
    let csv = base.join("c.csv");
    std::fs::write(
        &csv,
        "id,ts,identity,type,channel,text\n\
         c1,1790000000,douyin:a,comment,douyin,\"你好, 多少钱？\"\n\
         c2,1790000001,douyin:a,add_friend,douyin,\n",
    )
    .unwrap();
    let jsonl = base.join("j.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"id":"j1","ts":1790000002,"identity":"douyin:b","type":"comment","text":"快递到哪了"}"#, "\n",
            r#"{"id":"j2","ts":1790000003,"identity":"douyin:b","type":"comment","text":"多少钱","properties":{"intent":"投诉"}}"#, "\n",
            r#"{"id":"j3","ts":1790000004,"identity":"douyin:b","type":"comment","text":"x","properties":{"intent":"pricey"}}"#, "\n",
        ),
    )
    .unwrap();
    let dir = base.join("d");
    let out = import(&dir, &csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = import(&dir, &jsonl);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("properties.intent"), "{err}");
    let o = siyu()
        .args(["export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(base.join("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: std::collections::BTreeMap<String, serde_json::Value> =
        std::fs::read_to_string(base.join("out").join("events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|v| Some((v["id"].as_str()?.to_string(), v)))
            .collect();
    assert_eq!(
        events["c1"]["properties"]["intent"], "price",
        "{:?}",
        events["c1"]
    );
    assert!(
        events["c1"]["properties"]["intent_confidence"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        events["c2"].get("properties").is_none(),
        "{:?}",
        events["c2"]
    );
    assert_eq!(
        events["j1"]["properties"]["intent"], "after_sales",
        "{:?}",
        events["j1"]
    );
    assert_eq!(
        events["j2"]["properties"]["intent"], "complaint",
        "{:?}",
        events["j2"]
    );
    assert!(!events.contains_key("j3"));
}
