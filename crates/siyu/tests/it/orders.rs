//! `siyu import-orders`: a Taobao-style export (Chinese headers, BOM, quoted
//! commas, refunds, an unpaid and a bad row) lands on the right persons;
//! re-importing adds nothing; a mapping that does not fit exits with 2.

use crate::{create_key, http, import, siyu, tempdir, Server};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const MAPPING: &str = r#"
channel = "taobao"

[columns]
order_id = "订单编号"
buyer_id = "买家会员名"
phone = "买家手机号"
status = "订单状态"
amount = "实付金额"
refund_amount = "退款金额"
paid_at = "付款时间"

[status]
"已签收" = "paid"
"#;

const ORDERS: &str = "\u{feff}订单编号,买家会员名,买家手机号,订单状态,实付金额,退款金额,付款时间,收货地址\r\n\
=\"3912345678901234567\",tb_wang,+86 138-0000-0000,交易成功,199.00,,2026-11-11 20:15:00,\"上海市, 浦东新区\"\r\n\
3912345678901234568,tb_li,,退款成功,88.00,88.00,2026/11/12 09:00,\"北京市, 朝阳区\"\r\n\
3912345678901234569,赵六,,部分退款,300.00,100.00,2026-11-12 10:00:00,广州\r\n\
3912345678901234570,tb_qian,,等待买家付款,50.00,,,深圳\r\n\
3912345678901234571,tb_sun,,已签收,abc,,2026-11-12 11:00:00,杭州\r\n";

fn import_orders(dir: &Path, file: &Path, mapping: &Path) -> Output {
    siyu()
        .args(["import-orders", "--quiet", "--data-dir"])
        .arg(dir)
        .arg("--mapping")
        .arg(mapping)
        .arg(file)
        .output()
        .unwrap()
}

fn person(addr: &str, key: &str, id: &str) -> Value {
    let (status, body) = http(addr, "GET", &format!("/v1/persons/{id}"), key, "").unwrap();
    assert_eq!(status, 200, "{id}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_taobao_export_lands_on_the_right_persons_once() {
    let base = tempdir("orders");
    let dir = base.join("data");
    // A customer the brand knows on WeCom, with her phone number.
    let known = base.join("known.jsonl");
    std::fs::write(
        &known,
        r#"{"ts":"2026-10-01T08:00:00Z","identity":"wecom:x","type":"identify","traits":{"phone":"138 0000 0000"}}"#,
    )
    .unwrap();
    let out = import(&dir, &known);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let file = base.join("orders.csv");
    let mapping = base.join("taobao.toml");
    std::fs::write(&file, ORDERS).unwrap();
    std::fs::write(&mapping, MAPPING).unwrap();
    let out = import_orders(&dir, &file, &mapping);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected row: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("orders.csv:6: field `amount` (column `实付金额`): `abc` is not an amount"),
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "accepted 3, duplicates 0, skipped 1, rejected 1; matched by identity 0, buyer_id 3"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("events 7 new, 0 already imported"),
        "{stdout}"
    );

    // Importing the same file again adds nothing (the phone is linked now,
    // so no link events are even proposed).
    let out = import_orders(&dir, &file, &mapping);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 0, duplicates 3") && stdout.contains("events 0 new"),
        "{stdout}"
    );

    let key = create_key(&dir);
    let server = Server::start(&dir);
    // The buyer account with the phone of the WeCom customer is her.
    let wang = person(&server.addr, &key, "wecom:x");
    assert_eq!(
        (wang["purchases"].as_u64(), wang["gross_spend"].as_i64()),
        (Some(1), Some(19900)),
        "{wang}"
    );
    let ids: Vec<&str> = wang["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ids.contains(&"taobao:tb_wang"), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("phone_hmac:")), "{ids:?}");
    let li = person(&server.addr, &key, "taobao:tb_li");
    assert_eq!(
        (
            li["purchases"].as_u64(),
            li["refunded"].as_i64(),
            li["net_spend"].as_i64()
        ),
        (Some(1), Some(8800), Some(0)),
        "{li}"
    );
    // A Chinese account name is percent-encoded into the identity
    // `taobao:%E8%B5%B5%E5%85%AD` (its `%` escaped again in the URL).
    let zhao = person(&server.addr, &key, "taobao:%25E8%25B5%25B5%25E5%2585%25AD");
    assert_eq!(zhao["net_spend"].as_i64(), Some(20000), "{zhao}");
    let (status, _) = http(&server.addr, "GET", "/v1/persons/taobao:tb_qian", &key, "").unwrap();
    assert_eq!(status, 404, "an unpaid order is skipped");
    drop(server);
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn a_mapping_naming_a_missing_column_is_a_usage_error() {
    let base = tempdir("orders-mapping");
    let file = base.join("orders.csv");
    std::fs::write(&file, ORDERS).unwrap();
    let mapping = base.join("bad.toml");
    std::fs::write(&mapping, MAPPING.replace("\"买家手机号\"", "\"手机号码\"")).unwrap();
    let out = import_orders(&base.join("d"), &file, &mapping);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("column `手机号码` (mapped to `phone`) is not in the file's header")
            && stderr.contains("买家手机号"),
        "{stderr}"
    );
    // A field the mapping cannot know, and no marketplace at all: also 2.
    std::fs::write(&mapping, "[columns]\norder_no = \"订单编号\"\n").unwrap();
    let out = import_orders(&base.join("d"), &file, &mapping);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`order_no` is not an order field"));
    std::fs::write(
        &mapping,
        "[columns]\norder_id = \"订单编号\"\nbuyer_id = \"买家会员名\"\n",
    )
    .unwrap();
    let out = import_orders(&base.join("d"), &file, &mapping);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--channel"));
    std::fs::remove_dir_all(&base).ok();
}

/// An export of an earlier version holds unkeyed `phone_sha256:` hashes;
/// importing it into a store that was migrated already asks for the
/// migration again, and the next start keys them.
#[test]
fn an_old_export_with_unkeyed_phone_hashes_is_keyed_at_the_next_start() {
    let base = tempdir("old-export");
    let dir = base.join("data");
    // A store that ran once (migrated, nothing to do).
    let first = base.join("first.jsonl");
    std::fs::write(
        &first,
        r#"{"ts":"2026-10-01T08:00:00Z","identity":"wecom:x","type":"add_friend"}"#,
    )
    .unwrap();
    assert!(import(&dir, &first).status.success());
    let migrated = || {
        siyu_server::config::open_store(&dir, None, None)
            .expect("opening the store")
            .get_setting(siyu_server::privacy::PHONE_MIGRATION_KEY)
            .expect("reading the setting")
            .is_some()
    };
    // The import that made the store saw no phone hash: marked done, so
    // the first start does not scan the log for them.
    assert!(migrated());
    let key = create_key(&dir);
    drop(Server::start(&dir));
    assert!(migrated());
    // A file without phone hashes leaves the migration done: the next
    // start does not scan the log for them again.
    let plain = base.join("plain.jsonl");
    std::fs::write(
        &plain,
        r#"{"ts":"2026-10-02T08:00:00Z","identity":"wecom:y","type":"add_friend"}"#,
    )
    .unwrap();
    let out = import(&dir, &plain);
    assert!(out.status.success());
    assert!(migrated());
    // The server's snapshot is where this import's engine started.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the engine started from the engine snapshot and 0 events after it"),
        "{said}"
    );
    // The old export: a purchase by a phone hash linked to a buyer account.
    let legacy = "phone_sha256:76b3bc961ab030f63500d07b0904b200b28c01e47bc8e59e979885634dfa0a4c";
    let old = base.join("old.jsonl");
    std::fs::write(
        &old,
        format!(
            "{{\"ts\":1790000000,\"identity\":\"taobao:tb_zhou\",\"type\":\"identify\",\"ref\":\"{legacy}\"}}\n\
             {{\"ts\":1790000001,\"identity\":\"{legacy}\",\"type\":\"purchase\",\"channel\":\"taobao\",\"amount\":500}}\n"
        ),
    )
    .unwrap();
    let out = import(&dir, &old);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !migrated(),
        "an import with a phone_sha256 identity asks again"
    );
    let server = Server::start(&dir);
    let zhou = person(&server.addr, &key, "taobao:tb_zhou");
    let ids: Vec<&str> = zhou["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!ids.contains(&legacy), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("phone_hmac:")), "{ids:?}");
    assert_eq!(zhou["purchases"], 1, "{zhou}");
}

/// A refund larger than its person's purchases is stored as given and
/// printed after the import (count and the first orders), as
/// `POST /v1/orders` answers it in `over_refunded`.
#[test]
fn refunds_beyond_the_purchases_are_printed_after_the_import() {
    let base = tempdir("orders-over");
    let dir = base.join("data");
    let file = base.join("refunds.csv");
    std::fs::write(
        &file,
        "order_id,channel,buyer_id,status,amount,refund_amount,paid_at,refunded_at\n\
         1,taobao,b1,paid,10.00,,2026-11-11 20:15:00,\n\
         2,taobao,b1,refund,,1000.00,,2026-11-12 10:00:00\n\
         3,taobao,b2,paid,20.00,,2026-11-11 21:00:00,\n",
    )
    .unwrap();
    let out = siyu()
        .args(["import-orders", "--quiet", "--data-dir"])
        .arg(&dir)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepted 3,"), "{stdout}");
    assert!(
        stdout.contains(
            "over-refunded: 1 order(s) leave their person with more refunded than purchased"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("refunds.csv:3: order 2 of taobao:b1: purchased ¥10.00, refunded ¥1000.00"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&base).ok();
}
