//! The customer list (`GET /v1/customers`, `GET /v1/customers.csv`,
//! `POST /v1/customers/bulk`): filters, sort, paging, search by name,
//! nickname and phone (written another way than stored), validation
//! messages, bulk tag/untag/owner/enroll seen on the profiles, the CSV.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Five persons:
/// - 张三 (wecom:zs): vip, owner alice, phone trait `138 0013 8000`, 2 orders 300.00
/// - 小李 (nickname; wecom:xl + douyin:xl): owner bob, 1 order 50.00
/// - 李四 (wecom:ls): phone linked by an order (keyed hash), 1 order 120.00
/// - douyin:anon: a touch only
/// - 王五 (wecom:ww): vip, no order, seen last
async fn fixture() -> TestApp {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .post_events(
            r#"[
{"id":"1","ts":"2026-03-01T08:00:00Z","identity":"wecom:zs","type":"identify","traits":{"name":"张三","phone":"138 0013 8000","tags":["vip"],"operator":"alice"}},
{"id":"2","ts":"2026-03-02T08:00:00Z","identity":"wecom:zs","type":"purchase","amount":10000},
{"id":"3","ts":"2026-03-05T08:00:00Z","identity":"wecom:zs","type":"purchase","amount":20000},
{"id":"4","ts":"2026-03-03T08:00:00Z","identity":"douyin:xl","type":"touch"},
{"id":"5","ts":"2026-03-04T08:00:00Z","identity":"wecom:xl","type":"identify","ref":"douyin:xl","traits":{"nickname":"小李","operator":"bob"}},
{"id":"6","ts":"2026-03-06T08:00:00Z","identity":"wecom:xl","type":"purchase","amount":5000},
{"id":"7","ts":"2026-03-02T09:00:00Z","identity":"wecom:ls","type":"identify","traits":{"name":"李四"}},
{"id":"8","ts":"2026-02-01T08:00:00Z","identity":"douyin:anon","type":"touch"},
{"id":"9","ts":"2026-03-10T08:00:00Z","identity":"wecom:ww","type":"identify","traits":{"name":"王五","tags":["vip"]}}
]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // 李四's phone reaches siyu only through an order: the keyed hash.
    let (s, b) = t
        .send(
            "POST",
            "/v1/orders",
            json!({"orders": [{"order_id": "T1", "marketplace": "taobao", "status": "paid",
                "amount": "120.00", "paid_at": "2026-03-07 10:00:00", "phone": "13900139000",
                "identity": "wecom:ls"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    t
}

/// The rows' display names (李四's canonical id is his keyed phone hash,
/// the smallest of his identities).
fn ids(page: &Value) -> Vec<String> {
    page["customers"]
        .as_array()
        .unwrap_or_else(|| panic!("no customers: {page}"))
        .iter()
        .map(|c| c["display_name"].as_str().unwrap().to_string())
        .collect()
}

async fn list(t: &TestApp, query: &str) -> Value {
    let (s, b) = t.get(&format!("/v1/customers?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{query}: {b}");
    b
}

#[tokio::test]
async fn filters_sort_and_pages_the_persons() {
    let t = fixture().await;
    // Everyone, last seen first (the default).
    let all = list(&t, "").await;
    assert_eq!(all["total"], 5, "{all}");
    assert_eq!(
        ids(&all),
        ["王五", "李四", "小李", "张三", "douyin:anon"],
        "{all}"
    );
    assert_eq!(
        (all["sort"].as_str(), all["order"].as_str()),
        (Some("last_seen"), Some("desc"))
    );
    // A row: display name, identities split, tags, owner, spend, orders, last seen.
    let zs = &list(&t, "q=张三").await["customers"][0];
    assert_eq!(zs["display_name"], "张三", "{zs}");
    assert_eq!(
        zs["identities"][0],
        json!({"channel": "wecom", "id": "zs", "hashed": false})
    );
    assert_eq!(
        (zs["tags"].clone(), zs["owner"].clone()),
        (json!(["vip"]), json!("alice"))
    );
    assert_eq!(
        (zs["spend"].as_i64(), zs["orders"].as_u64()),
        (Some(30000), Some(2)),
        "{zs}"
    );
    assert_eq!(zs["last_seen"], "2026-03-05T08:00:00Z");
    assert!(
        zs["rfm_layer"]
            .as_str()
            .is_some_and(|l| l.ends_with("客户")),
        "{zs}"
    );
    // The keyed phone identity is shown as hashed.
    let ls = &list(&t, "q=李四").await["customers"][0];
    assert!(
        ls["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["channel"] == "phone_hmac" && i["hashed"] == true),
        "{ls}"
    );

    // Sort by spend, both ways; ties by slot, never overlapping pages.
    let by_spend = list(&t, "sort=spend&order=desc").await;
    assert_eq!(ids(&by_spend)[..3], ["张三", "李四", "小李"]);
    let asc = list(&t, "sort=spend&order=asc").await;
    assert_eq!(ids(&asc)[3..], ["李四", "张三"]);
    let by_orders = list(&t, "sort=orders").await;
    assert_eq!(ids(&by_orders)[0], "张三");
    let by_first = list(&t, "sort=first_seen&order=asc").await;
    assert_eq!(ids(&by_first)[0], "douyin:anon");
    // Names sort ascending by default (canonical id for the nameless).
    let by_name = list(&t, "sort=name").await;
    assert_eq!(by_name["order"], "asc");
    assert_eq!(ids(&by_name)[0], "douyin:anon");

    // Paging: two at a time covers everyone once, in order.
    let mut seen = Vec::new();
    let mut offset = Some(0);
    while let Some(o) = offset {
        let p = list(&t, &format!("sort=spend&limit=2&offset={o}")).await;
        assert_eq!(p["total"], 5);
        seen.extend(ids(&p));
        offset = p["next_offset"].as_u64();
    }
    assert_eq!(seen, ids(&list(&t, "sort=spend").await));
    assert_eq!(ids(&list(&t, "offset=99").await), Vec::<String>::new());

    // Filters.
    assert_eq!(ids(&list(&t, "tag=vip&sort=name").await), ["张三", "王五"]);
    assert_eq!(ids(&list(&t, "owner=bob").await), ["小李"]);
    assert_eq!(
        ids(&list(&t, "channel=douyin&sort=name").await),
        ["douyin:anon", "小李"]
    );
    assert_eq!(
        ids(&list(&t, "spend_min=10000&spend_max=20000").await),
        ["李四"]
    );
    assert_eq!(ids(&list(&t, "spend_min=1").await).len(), 3);
    assert_eq!(
        ids(&list(&t, "last_seen_from=2026-03-05&last_seen_to=2026-03-07").await),
        ["李四", "小李", "张三"]
    );
    assert_eq!(
        ids(&list(&t, "last_seen_to=2026-02-01T08:00:00Z").await),
        ["douyin:anon"]
    );
    // Filters combine.
    assert_eq!(ids(&list(&t, "tag=vip&spend_min=1").await), ["张三"]);
    // RFM: each buyer is in exactly one layer, non-buyers in none.
    let mut in_layers = 0;
    for layer in [
        "重要价值客户",
        "重要发展客户",
        "重要保持客户",
        "重要挽留客户",
        "一般价值客户",
        "一般发展客户",
        "一般保持客户",
        "一般挽留客户",
    ] {
        let p = list(&t, &format!("rfm={layer}")).await;
        for c in p["customers"].as_array().unwrap() {
            assert_eq!(c["rfm_layer"], layer, "{p}");
        }
        in_layers += p["total"].as_u64().unwrap();
    }
    assert_eq!(in_layers, 3);
    // A saved segment: exactly its live members.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/segments/buyers",
            json!({"segment": "purchases >= 1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, members) = t.get("/v1/segments/buyers/members?limit=100").await;
    let mut want: Vec<String> =
        serde_json::from_value(members["members"].clone()).unwrap_or_else(|_| panic!("{members}"));
    want.sort();
    let page = list(&t, "segment=buyers").await;
    let mut got: Vec<String> = page["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn search_finds_names_nicknames_identities_and_phones_written_any_way() {
    let t = fixture().await;
    for (q, want) in [
        ("张三", "张三"),
        ("张", "张三"),
        ("小李", "小李"),
        ("wecom:x", "小李"),
        ("douyin:an", "douyin:anon"),
        // The phone trait, written another way than stored.
        ("+86 138-0013-8000", "张三"),
        ("13800138000", "张三"),
        // Only the keyed hash knows this one (from an order).
        ("139 0013 9000", "李四"),
        ("+86-139-0013-9000", "李四"),
    ] {
        let p = list(&t, &format!("q={}", urlencode(q))).await;
        assert_eq!(ids(&p), [want], "q={q}: {p}");
    }
    assert_eq!(list(&t, "q=赵六").await["total"], 0);
    assert_eq!(list(&t, "q=13700000000").await["total"], 0);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_parameter_and_the_fix() {
    let t = fixture().await;
    for (query, names) in [
        (
            "sort=age",
            vec!["sort", "last_seen, spend, orders, first_seen, name"],
        ),
        ("order=up", vec!["order", "asc"]),
        ("spend_min=abc", vec!["spend_min", "whole number"]),
        (
            "spend_min=500&spend_max=100",
            vec!["spend_min", "spend_max"],
        ),
        (
            "last_seen_from=yesterday",
            vec!["last_seen_from", "YYYY-MM-DD"],
        ),
        (
            "last_seen_from=2026-03-05&last_seen_to=2026-03-01",
            vec!["last_seen_from", "last_seen_to"],
        ),
        ("limit=0", vec!["limit", "1 to 200"]),
        ("limit=201", vec!["limit", "1 to 200"]),
        ("offset=-1", vec!["offset"]),
        ("rfm=gold", vec!["rfm", "重要价值客户"]),
        ("segment=nope", vec!["segment", "GET /v1/segments"]),
        ("channel=We%20Com", vec!["channel"]),
        ("colour=red", vec!["colour"]),
    ] {
        for path in ["/v1/customers", "/v1/customers.csv"] {
            let (s, b) = t.get(&format!("{path}?{query}")).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}?{query}: {b}");
            let m = b["message"].as_str().unwrap_or_default();
            for n in &names {
                assert!(m.contains(n), "{path}?{query}: {m:?} should name {n:?}");
            }
        }
    }
}

async fn wait_for(t: &TestApp, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, v) = t.get(path).await;
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{path} never satisfied: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_tag_untag_assign_and_enroll() {
    let t = fixture().await;
    // Tag the persons a filter keeps: the tag is on their profiles at once.
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "tag", "tag": "春节", "filter": {"tag": "vip"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["persons"].as_u64(), b["applied"].as_u64()),
        (Some(2), Some(2)),
        "{b}"
    );
    for who in ["wecom:zs", "wecom:ww"] {
        let (_, p) = t.get(&format!("/v1/persons/{who}")).await;
        assert!(
            p["tags"].as_array().unwrap().contains(&json!("春节")),
            "{p}"
        );
    }
    assert_eq!(
        ids(&list(&t, "tag=%E6%98%A5%E8%8A%82&sort=name").await),
        ["张三", "王五"]
    );
    // Explicit ids, any identity of the person; an unknown one is named.
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "tag", "tag": "回访", "ids": ["wecom:xl", "douyin:xl", "wecom:nobody"], "id": "call-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["persons"].as_u64(), b["unknown_ids"].clone()),
        (Some(1), json!(["wecom:nobody"])),
        "{b}"
    );
    let (_, p) = t.get("/v1/persons/wecom:xl").await;
    assert_eq!(p["tags"], json!(["回访"]), "{p}");
    // The same `id` again appends nothing new (the log dedupes on it).
    let (_, events_before) = t.get("/v1/persons/wecom:xl").await;
    t.send(
        "POST",
        "/v1/customers/bulk",
        json!({"action": "tag", "tag": "回访", "ids": ["wecom:xl"], "id": "call-1"}),
    )
    .await;
    let (_, events_after) = t.get("/v1/persons/wecom:xl").await;
    assert_eq!(events_before["events"], events_after["events"]);
    // Untag.
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "untag", "tag": "春节", "ids": ["wecom:ww"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ids(&list(&t, "tag=%E6%98%A5%E8%8A%82").await), ["张三"]);

    // Owner: an active operator only; the trait `operator` moves, the
    // previous one is kept as a hand-over keeps it.
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "assign_owner", "owner": "carol", "ids": ["wecom:zs"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("owner"), "{b}");
    let (s, b) = t
        .send("PUT", "/v1/operators/carol", json!({"name": "Carol"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "assign_owner", "owner": "carol", "filter": {"owner": "alice"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["applied"], 1, "{b}");
    let (_, p) = t.get("/v1/persons/wecom:zs").await;
    assert_eq!(
        (
            p["traits"]["operator"].clone(),
            p["traits"]["previous_operator"].clone()
        ),
        (json!("carol"), json!("alice")),
        "{p}"
    );
    assert_eq!(ids(&list(&t, "owner=carol").await), ["张三"]);

    // Enroll: through the executor; the journey's first step tags them.
    let journey = json!({
        "trigger": {"type": "event", "event": "custom", "name": "never_sent"},
        "start": "mark",
        "steps": {"mark": {"type": "add_tag", "tag": "in_journey"}}
    });
    let (s, b) = t.send("PUT", "/v1/journeys/care", journey).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "enroll", "journey": "care", "filter": {"spend_min": "1"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["persons"].as_u64(), b["applied"].as_u64()),
        (Some(3), Some(3)),
        "{b}"
    );
    for who in ["wecom:zs", "wecom:xl", "wecom:ls"] {
        wait_for(&t, &format!("/v1/persons/{who}"), |p| {
            p["tags"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("in_journey")))
        })
        .await;
    }
    let (_, r) = t.get("/v1/journeys/care/report").await;
    assert_eq!(r["enrolled"], 3, "{r}");
    // Its re-entry rule (once, by default) keeps them from entering again.
    let (_, b) = t
        .send(
            "POST",
            "/v1/customers/bulk",
            json!({"action": "enroll", "journey": "care", "ids": ["wecom:zs"]}),
        )
        .await;
    assert_eq!(b["applied"], 0, "{b}");

    // Bad bodies name the field.
    for (body, field) in [
        (json!({"action": "tag", "filter": {}}), "tag"),
        (json!({"action": "tag", "tag": "x"}), "filter or ids"),
        (
            json!({"action": "tag", "tag": "x", "filter": {}, "ids": ["wecom:zs"]}),
            "filter or ids",
        ),
        (json!({"action": "enroll", "ids": ["wecom:zs"]}), "journey"),
        (
            json!({"action": "enroll", "journey": "nope", "ids": ["wecom:zs"]}),
            "journey",
        ),
        // A body of the wrong shape is the JSON parser's 422, naming the choices.
        (
            json!({"action": "paint", "ids": ["wecom:zs"]}),
            "`tag`, `untag`, `assign_owner`, `enroll`",
        ),
        (
            json!({"action": "tag", "tag": "x", "filter": {"sort": "age"}}),
            "sort",
        ),
        (
            json!({"action": "tag", "tag": "x", "ids": ["wecom:zs"], "id": "a b"}),
            "id",
        ),
    ] {
        let (s, b) = t.send("POST", "/v1/customers/bulk", body.clone()).await;
        let want = if body["action"] == "paint" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(s, want, "{body}: {b}");
        assert!(
            b["message"].as_str().unwrap_or_default().contains(field),
            "{body}: {b}"
        );
    }
}

#[tokio::test]
async fn the_csv_has_every_matching_person_with_the_same_filters() {
    let t = fixture().await;
    let (s, body) = t.get("/v1/customers.csv?tag=vip&sort=name").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let text = body.as_str().unwrap();
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a BOM for spreadsheets");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,display_name,identities,tags,owner,rfm_layer,spend_fen,orders,last_seen,first_seen"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[2].starts_with("wecom:ww,王五,wecom:ww,vip,,,0,0,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[1].starts_with("wecom:zs,张三,wecom:zs,vip,alice,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[1].contains(",30000,2,2026-03-05T08:00:00Z,"),
        "{}",
        lines[2]
    );
    // Everyone, with every identity of a person.
    let (_, all) = t.get("/v1/customers.csv").await;
    let all = all.as_str().unwrap();
    assert_eq!(all.lines().count(), 6, "{all}");
    assert!(all.contains("douyin:xl,小李,douyin:xl wecom:xl,"), "{all}");
}
