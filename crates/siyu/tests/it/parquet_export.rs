//! `siyu export --format parquet`: `events.parquet` beside `events.jsonl`,
//! read back with the parquet crate's reader and compared with the JSONL
//! export event by event; the manifest lists it and a restore still works.

use crate::{import, siyu, tempdir};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, RowAccessor};

#[test]
fn the_parquet_export_holds_the_same_events_as_the_jsonl_one() {
    let base = tempdir("parquet");
    let file = base.join("events.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id":"a1","ts":"2026-10-01T08:00:00Z","identity":"douyin:aa01","type":"touch","channel":"douyin"}"#,
            "\n",
            r#"{"ts":1790000000,"identity":"wecom:wm01","type":"identify","channel":"wecom","ref":"douyin:aa01","traits":{"name":"王芳","tags":["vip"]}}"#,
            "\n",
            r#"{"id":"p1","ts":1790000100,"identity":"wecom:wm01","type":"purchase","channel":"tmall","amount":12900,"properties":{"coupon":"c1"}}"#,
            "\n",
            r#"{"id":"c1","seq":7,"ts":1790000200,"identity":"douyin:aa01","type":"comment","channel":"douyin","text":"他说\"好\", 多少钱？"}"#,
            "\n",
        ),
    )
    .unwrap();
    let dir = base.join("d");
    let out = import(&dir, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = base.join("ex");
    let out = siyu()
        .args(["export", "--quiet", "--format", "parquet", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let jsonl: Vec<serde_json::Value> = std::fs::read_to_string(ex.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jsonl.len(), 4);
    let reader =
        SerializedFileReader::new(std::fs::File::open(ex.join("events.parquet")).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 4);
    let rows: Vec<parquet::record::Row> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.len(), jsonl.len());
    let col = |row: &parquet::record::Row, name: &str| -> Field {
        row.get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let text = |f: Field| match f {
        Field::Str(s) => serde_json::Value::String(s),
        Field::Null => serde_json::Value::Null,
        other => panic!("not text: {other:?}"),
    };
    for (i, (row, j)) in rows.iter().zip(&jsonl).enumerate() {
        assert_eq!(
            row.get_long(0).unwrap(),
            i as i64 + 1,
            "offsets in log order"
        );
        for name in ["id", "identity", "type", "channel", "ref", "text"] {
            assert_eq!(text(col(row, name)), j[name], "row {i} column {name}");
        }
        // Times: the wire format's epoch seconds as a UTC timestamp.
        assert_eq!(
            col(row, "ts"),
            Field::TimestampMillis(
                siyu_domain::time::parse_rfc3339(j["ts"].as_str().unwrap()).unwrap() * 1000
            ),
            "row {i}"
        );
        let amount = j["amount"].as_i64().unwrap_or(0);
        assert_eq!(col(row, "amount_cents"), Field::Long(amount), "row {i}");
        for name in ["properties", "traits"] {
            let v = match col(row, name) {
                Field::Str(s) => serde_json::from_str::<serde_json::Value>(&s).unwrap(),
                Field::Bytes(b) => serde_json::from_slice(b.data()).unwrap(),
                Field::Null => serde_json::Value::Null,
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(v, j[name], "row {i} column {name}");
        }
    }
    assert_eq!(text(col(&rows[3], "text")), "他说\"好\", 多少钱？");
    assert_eq!(col(&rows[3], "seq"), Field::Long(7));

    // The manifest lists it, with its bytes and checksum; a restore of the
    // directory still works.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ex.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "events.parquet")
        .expect("events.parquet in the manifest");
    assert_eq!(entry["kind"], "view");
    assert_eq!(entry["lines"], 4);
    assert_eq!(
        entry["bytes"].as_u64().unwrap(),
        std::fs::metadata(ex.join("events.parquet")).unwrap().len()
    );
    let out = import(&base.join("restored"), &ex);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&base).ok();
}
