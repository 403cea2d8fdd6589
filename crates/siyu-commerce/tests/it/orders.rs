//! Marketplace orders without HTTP: the field rules of one order (money,
//! Beijing time, phones, channels), CSV records and the column mapping,
//! and matching: which person each order lands on (explicit identity,
//! buyer id, a phone linked to a known person's `phone` trait) and that an
//! order's events are the same every time it is imported (its id), so the
//! log keeps it once.

use serde_json::{json, Value};
use siyu_commerce::orders::{
    body_orders, csv_order, csv_records, normalize_phone, parse_order, parse_shanghai,
    phone_sha256, plan, tally, yuan_to_cents, Known, Mapping, Order, OrdersError, Planned,
    StatusTable,
};
use siyu_domain::time::parse_rfc3339;
use siyu_domain::{parse_json_event, Identity};
use siyu_engine::Engine;
use siyu_store::{Appended, SqliteStore, Store};
use std::collections::HashMap;

/// A stand-in for the workspace's keyed hash (siyu-server's `PrivacyKeys`).
fn keyed(sha256_hex: &str) -> Identity {
    Identity::parse(&format!("phone_hmac:k{}", &sha256_hex[..32])).unwrap()
}

fn order(v: Value) -> Order {
    parse_order(&v, None, &StatusTable::default()).expect("a valid order")
}

/// The engine of `events` (JSON wire events), applied in order.
fn engine_of(events: &[Value]) -> Engine {
    let mut engine = Engine::for_log();
    for (i, v) in events.iter().enumerate() {
        engine.apply(i as u64 + 1, &parse_json_event(v).unwrap());
    }
    engine
}

/// (order index, type, id, identity, ref) of each planned event.
fn kinds(p: &Planned) -> Vec<(usize, String, String, String, Option<String>)> {
    p.events
        .iter()
        .map(|(i, e)| {
            (
                *i,
                e.event_type.as_str().to_string(),
                e.id.clone().unwrap(),
                e.identity.as_str().to_string(),
                e.reference.as_ref().map(|r| r.as_str().to_string()),
            )
        })
        .collect()
}

#[test]
fn yuan_amounts() {
    assert_eq!(yuan_to_cents("199.00"), Ok(19900));
    assert_eq!(yuan_to_cents("¥199.5"), Ok(19950));
    assert_eq!(yuan_to_cents("7"), Ok(700));
    for bad in ["abc", "1.234", "-5", "1,299.00", "", ".5", "1e3"] {
        assert!(yuan_to_cents(bad).is_err(), "{bad}");
    }
}

#[test]
fn beijing_time() {
    // 2026-11-11 20:15:00 +08:00 = 12:15:00Z
    let utc = parse_rfc3339("2026-11-11T12:15:00Z");
    assert_eq!(parse_shanghai("2026-11-11 20:15:00"), utc);
    assert_eq!(parse_shanghai("2026/11/11 20:15"), utc);
    assert_eq!(
        parse_shanghai("2026-11-11"),
        parse_rfc3339("2026-11-10T16:00:00Z")
    );
    for bad in ["2026-13-01 00:00:00", "2026-11-11 24:00", "11/11/2026", "x"] {
        assert_eq!(parse_shanghai(bad), None, "{bad}");
    }
}

#[test]
fn phones_normalize_before_hashing() {
    for p in [
        "138 0000 0000",
        "+86 138-0000-0000",
        "008613800000000",
        "8613800000000",
    ] {
        assert_eq!(normalize_phone(p).as_deref(), Ok("13800000000"), "{p}");
    }
    assert_eq!(
        normalize_phone("+852 6123 4567").as_deref(),
        Ok("+85261234567")
    );
    assert!(normalize_phone("138****0000").is_err());
    assert!(normalize_phone("call me").is_err());
    assert_eq!(
        phone_sha256("13800000000"),
        phone_sha256(&normalize_phone("138-0000-0000").unwrap())
    );
}

#[test]
fn csv_with_bom_quotes_and_crlf() {
    let text = "\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\r\n\"multi\nline\",2\n3,4";
    let r = csv_records(text).unwrap();
    assert_eq!(r[0], (1, vec!["a".to_string(), "b".into()]));
    assert_eq!(r[1], (2, vec!["x, y".to_string(), "say \"hi\"".into()]));
    assert_eq!(r[2], (4, vec!["multi\nline".to_string(), "2".into()]));
    assert_eq!(r[3], (6, vec!["3".to_string(), "4".into()]));
    assert_eq!(csv_records("a\n\"open").unwrap_err().0, 2);
    let r = csv_records("\"你好, 多少钱？\",\"他说\"\"好\"\"\"\n").unwrap();
    assert_eq!(
        r[0].1,
        vec!["你好, 多少钱？".to_string(), "他说\"好\"".into()]
    );
    // A spreadsheet's `="…"` and tab around a long order id are dropped.
    assert_eq!(
        csv_order(
            &[("order_id", 0)],
            &[" =\"3912345678901234567\"\t".to_string()]
        ),
        json!({"order_id": "3912345678901234567"})
    );
}

#[test]
fn a_mapping_binds_chinese_headers_and_adds_status_words() {
    let m = Mapping::from_toml(
        "channel = \"淘宝\"\n[columns]\norder_id = \"订单编号\"\namount = \"实付金额\"\nphone = \"买家手机号\"\n[status]\n\"已签收\" = \"paid\"\n",
    )
    .unwrap();
    let header: Vec<String> = ["买家手机号", "订单编号", "实付金额", "备注"]
        .map(String::from)
        .to_vec();
    let bound = m.bind(&header).unwrap();
    let row = ["138 0000 0000", "T1", "¥10.00", "x"].map(String::from);
    let v = csv_order(&bound, &row);
    assert_eq!(
        v,
        json!({"order_id": "T1", "amount": "¥10.00", "phone": "138 0000 0000"})
    );
    let mut v = v;
    v["status"] = json!("已签收");
    v["paid_at"] = json!("2026-11-11");
    let o = parse_order(&v, m.channel.as_ref(), &m.statuses).unwrap();
    assert_eq!((o.channel.as_str(), o.amount), ("taobao", Some(1000)));
    assert_eq!(m.column_of("amount"), Some("实付金额"));

    for (bad, says) in [
        ("[columns]\namount = \"x\"", "needs `order_id`"),
        (
            "[columns]\norder_id = \"a\"\nprice = \"b\"",
            "not an order field",
        ),
        (
            "[columns]\norder_id = \"a\"\n[status]\n\"x\" = \"done\"",
            "use paid",
        ),
        (
            "channel = \"phone_hmac\"\n[columns]\norder_id = \"a\"",
            "not a siyu channel",
        ),
        ("x = [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]", "nest"),
    ] {
        let e = Mapping::from_toml(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = m.bind(&["订单号".to_string()]).unwrap_err();
    assert!(e.contains("订单编号") && e.contains("订单号"), "{e}");
}

#[test]
fn ambiguous_amounts_and_missing_fields_are_rejected_by_field() {
    let t = StatusTable::default();
    let base = json!({"order_id": "1", "channel": "taobao", "amount": "10.00",
        "paid_at": "2026-11-11 20:15:00", "buyer_id": "b"});
    assert!(parse_order(&base, None, &t).is_ok());
    let with = |k: &str, v: Value| {
        let mut o = base.clone();
        o[k] = v;
        parse_order(&o, None, &t).unwrap_err().field
    };
    assert_eq!(with("amount", json!(10)), "amount");
    assert_eq!(with("amount_cents", json!(1000)), "amount");
    assert_eq!(with("status", json!("已签收")), "status");
    assert_eq!(with("channel", json!("Tao Bao")), "channel");
    assert_eq!(with("channel", json!("phone_sha256")), "channel");
    assert_eq!(with("paid_at", json!(1_793_000_000_000i64)), "paid_at");
    assert_eq!(with("order_id", Value::Null), "order_id");
    assert_eq!(with("status", json!("partially_refunded")), "refund_amount");
    assert_eq!(with("phone_sha256", json!("13900000000")), "phone_sha256");
    assert_eq!(with("extra", json!(1)), "order");
    let o = order(
        json!({"order_id": 42, "marketplace": "淘宝", "status": "退款成功",
        "amount_cents": 500, "paid_at": 1_793_000_000, "buyer_id": "王 五"}),
    );
    assert_eq!(o.buyer.unwrap().as_str(), "taobao:%E7%8E%8B%20%E4%BA%94");
    assert_eq!(
        (o.amount, o.refund, o.refunded_at),
        (Some(500), Some(500), Some(1_793_000_000))
    );
}

#[test]
fn a_number_amount_is_answered_with_a_correct_yuan_string() {
    let t = StatusTable::default();
    let says = |amount: Value| {
        let o = json!({"order_id": "1", "channel": "taobao", "amount": amount,
            "paid_at": "2026-11-11 20:15:00", "buyer_id": "b"});
        let e = parse_order(&o, None, &t).unwrap_err();
        assert_eq!(e.field, "amount");
        e.to_string()
    };
    for (n, yuan, cents) in [
        (json!(88.8), "\"88.80\"", "8880"),
        (json!(199), "\"199.00\"", "19900"),
        (json!(0.5), "\"0.50\"", "50"),
        (json!(12.34), "\"12.34\"", "1234"),
    ] {
        let e = says(n.clone());
        assert!(
            e.contains(yuan) && e.contains(&format!("\"amount_cents\": {cents}")),
            "{n}: {e}"
        );
        assert!(!e.contains(".00.") && !e.contains(".8.00"), "{n}: {e}");
    }
    // No exact yuan string: the rule, not a wrong suggestion.
    let e = says(json!(1.005));
    assert!(
        e.contains("at most two decimals") && !e.contains("1.005."),
        "{e}"
    );
}

#[test]
fn a_body_is_an_array_or_an_orders_object() {
    assert_eq!(body_orders(b"[1, 2]").unwrap().len(), 2);
    assert_eq!(body_orders(br#"{"orders": [{}]}"#).unwrap().len(), 1);
    for bad in [
        &br#"{"orders": [], "x": 1}"#[..],
        b"{}",
        b"5",
        br#"{"orders": 1}"#,
    ] {
        assert!(matches!(body_orders(bad), Err(OrdersError::NotOrders)));
    }
    let e = body_orders(b"[1,\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("malformed JSON at line 2, column 0: "),
        "{e}"
    );
}

#[test]
fn a_refund_without_buyer_takes_its_purchase_in_the_batch() {
    let p = order(json!({"order_id": "9", "channel": "douyin", "amount": "20",
        "paid_at": 1_793_000_000, "phone": "13900000000"}));
    let r = order(
        json!({"order_id": "9", "channel": "douyin", "event": "refund",
        "refund_amount": "5", "refunded_at": 1_793_100_000}),
    );
    let lone = order(
        json!({"order_id": "10", "channel": "douyin", "event": "refund",
        "refund_amount": "5", "refunded_at": 1_793_100_000}),
    );
    let sha = phone_sha256("13900000000");
    let known = Known {
        canonical: HashMap::new(),
        phone_owners: [(sha.clone(), vec!["wecom:x".to_string()])].into(),
        phone_identities: [(sha.clone(), keyed(&sha))].into(),
    };
    let planned = plan(vec![(0, p), (1, r), (2, lone)], &known);
    let hash = keyed(&sha).as_str().to_string();
    assert_eq!(
        kinds(&planned),
        [
            (
                0,
                "identify".into(),
                "order:douyin:9:link".into(),
                hash.clone(),
                Some("wecom:x".into())
            ),
            (
                0,
                "purchase".into(),
                "order:douyin:9".into(),
                hash.clone(),
                None
            ),
            (
                1,
                "refund".into(),
                "order:douyin:9:refund".into(),
                hash,
                None
            ),
        ]
    );
    assert_eq!(planned.matched.phone_existing_person, 2);
    assert_eq!(planned.rejected.len(), 1);
    assert_eq!(
        (
            planned.rejected[0].index,
            planned.rejected[0].field.as_str()
        ),
        (2, "buyer")
    );
    assert!(planned.all_rejected().is_none());
}

#[test]
fn plan_matches_by_phone_trait_buyer_id_and_identity_through_the_engine() {
    let engine = engine_of(&[
        json!({"id": "w1", "ts": "2026-10-01T08:00:00Z", "identity": "wecom:x", "type": "identify",
            "traits": {"phone": "+86 138-0000-0000"}}),
        json!({"id": "w2", "ts": "2026-10-01T08:00:00Z", "identity": "taobao:known", "type": "touch"}),
        // Two persons share this number: it links to neither.
        json!({"id": "w3", "ts": "2026-10-01T08:00:00Z", "identity": "wecom:a", "type": "identify",
            "traits": {"phone": "13700000000"}}),
        json!({"id": "w4", "ts": "2026-10-01T08:00:00Z", "identity": "wecom:b", "type": "identify",
            "traits": {"phone": "137 0000 0000"}}),
    ]);
    let orders = vec![
        // A phone of a known person: linked to them.
        (
            0,
            order(json!({"order_id": "1", "channel": "taobao", "amount": "1",
            "paid_at": 1_793_000_000, "phone": "13800000000"})),
        ),
        // A buyer id siyu knows, with that phone: buyer ↔ phone linked.
        (
            1,
            order(json!({"order_id": "2", "channel": "taobao", "amount": "2",
            "paid_at": 1_793_000_000, "buyer_id": "known", "phone": "138 0000 0000"})),
        ),
        // An explicit identity.
        (
            2,
            order(json!({"order_id": "3", "channel": "jd", "amount": "3",
            "paid_at": 1_793_000_000, "identity": "wecom:x"})),
        ),
        // A shared number and a new one: new phone persons.
        (
            3,
            order(json!({"order_id": "4", "channel": "jd", "amount": "4",
            "paid_at": 1_793_000_000, "phone": "13700000000"})),
        ),
        (
            4,
            order(json!({"order_id": "5", "channel": "jd", "amount": "5",
            "paid_at": 1_793_000_000, "phone": "13600000000"})),
        ),
        // Not a sale.
        (
            5,
            order(json!({"order_id": "6", "channel": "jd", "status": "已取消"})),
        ),
    ];
    let known = Known::from_engine(&engine, &orders, &keyed);
    assert_eq!(
        known.phone_owners[&phone_sha256("13800000000")],
        ["wecom:x"]
    );
    assert_eq!(known.phone_owners[&phone_sha256("13700000000")].len(), 2);
    let p = plan(orders, &known);
    let h = |n: &str| keyed(&phone_sha256(n)).as_str().to_string();
    let link = |i, id: &str, who: String, to: String| {
        (i, "identify".to_string(), id.to_string(), who, Some(to))
    };
    let buy = |i, id: &str, who: String| (i, "purchase".to_string(), id.to_string(), who, None);
    assert_eq!(
        kinds(&p),
        [
            link(0, "order:taobao:1:link", h("13800000000"), "wecom:x".into()),
            buy(0, "order:taobao:1", h("13800000000")),
            link(
                1,
                "order:taobao:2:phone",
                "taobao:known".into(),
                h("13800000000")
            ),
            buy(1, "order:taobao:2", "taobao:known".into()),
            buy(2, "order:jd:3", "wecom:x".into()),
            buy(3, "order:jd:4", h("13700000000")),
            buy(4, "order:jd:5", h("13600000000")),
        ]
    );
    assert_eq!(
        (
            p.matched.identity,
            p.matched.buyer_id,
            p.matched.phone_existing_person,
            p.matched.phone_new
        ),
        (1, 1, 1, 2)
    );
    assert_eq!((p.orders, p.skipped, p.rejected.len()), (5, 1, 0));
}

#[test]
fn an_order_imported_twice_is_kept_once() {
    let rows = || {
        vec![
            (
                0,
                order(
                    json!({"order_id": "A1", "channel": "taobao", "status": "partially_refunded",
                "amount": "100", "refund_amount": "30", "paid_at": 1_793_000_000,
                "refunded_at": 1_793_100_000, "buyer_id": "b1"}),
                ),
            ),
            // The same order again in the same batch: the same event ids.
            (
                1,
                order(
                    json!({"order_id": "A1", "channel": "taobao", "amount": "100",
                "paid_at": 1_793_000_000, "buyer_id": "b1"}),
                ),
            ),
            (
                2,
                order(json!({"order_id": "A2", "channel": "taobao", "amount": "5",
                "paid_at": 1_793_000_000, "buyer_id": "b2"})),
            ),
        ]
    };
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut append = |p: &Planned| {
        let events: Vec<_> = p.events.iter().map(|(_, e)| e.clone()).collect();
        store.append(&events).unwrap()
    };
    let engine = Engine::for_log();
    let first = plan(rows(), &Known::from_engine(&engine, &rows(), &keyed));
    let ids: Vec<_> = first
        .events
        .iter()
        .map(|(_, e)| e.id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "order:taobao:A1",
            "order:taobao:A1:refund",
            "order:taobao:A1",
            "order:taobao:A2"
        ]
    );
    let results = append(&first);
    assert!(matches!(results[2], Appended::Duplicate(_)), "{results:?}");
    let t = tally(&first.events, &results);
    assert_eq!(
        (t.accepted, t.duplicates, t.new_events, t.duplicate_events),
        (2, 1, 3, 1)
    );
    // Imported again: every order and event a duplicate.
    let again = plan(rows(), &Known::from_engine(&engine, &rows(), &keyed));
    let t = tally(&again.events, &append(&again));
    assert_eq!(
        (t.accepted, t.duplicates, t.new_events, t.duplicate_events),
        (0, 3, 0, 4)
    );
}

#[test]
fn a_batch_of_only_rejected_orders_is_refused_naming_the_first() {
    let p = plan(
        vec![(
            3,
            order(json!({"order_id": "R", "channel": "jd", "event": "refund",
            "refund_amount": "5", "refunded_at": 1_793_100_000})),
        )],
        &Known::default(),
    );
    let e = p.all_rejected().expect("nothing to store");
    assert_eq!(
        e.to_string(),
        "all 1 orders were rejected; nothing was stored (first: index 3, field `buyer`: order `R` names no buyer: give identity, buyer_id or phone (a refund without them needs its purchase in the same request or file))"
    );
    assert_eq!(
        plan(vec![], &Known::default())
            .all_rejected()
            .unwrap()
            .to_string(),
        "all 0 orders were rejected; nothing was stored"
    );
}

/// The order parsers on a 256 KiB stack (a tenth of a server worker's):
/// deep nesting and long input end in Ok or a clean error, never an
/// overflow. (siyu-server's `tests/it/parsers.rs` runs them beside every
/// other body parser of the server.)
#[test]
fn order_parsers_take_deep_and_long_input_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let statuses = StatusTable::default();
            for depth in [10, 127, 128, 10_000] {
                let deep = format!("{}\"x\"{}", "{\"k\":".repeat(depth), "}".repeat(depth));
                for field in [
                    "buyer_id", "amount", "status", "paid_at", "order_id", "phone",
                ] {
                    if let Ok(v) =
                        serde_json::from_str::<Value>(&format!(r#"{{"{field}":{deep}}}"#))
                    {
                        assert!(parse_order(&v, None, &statuses).is_err());
                    }
                    let body = format!(r#"{{"orders":[{{"{field}":{deep}}}]}}"#);
                    let _ = body_orders(body.as_bytes());
                }
                for text in [
                    format!("x = {}", "[".repeat(depth)),
                    format!("x = {}1{}", "{a=".repeat(depth), "}".repeat(depth)),
                ] {
                    let e = Mapping::from_toml(&text).unwrap_err();
                    assert!(depth <= 16 || e.contains("nest"), "{e}");
                }
            }
            let long = "9".repeat(1 << 20);
            assert!(csv_records(&format!("\"{long}")).is_err());
            let _ = csv_records(&"\"".repeat(1 << 16));
            assert!(yuan_to_cents(&long).is_err());
            assert!(normalize_phone(&long).is_err());
        })
        .expect("spawn")
        .join()
        .expect("an order parser panicked or overflowed");
}
