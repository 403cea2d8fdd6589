//! Data protection: an erasure leaves the identity in no settings or audit
//! row and no readable byte of the SQLite files; phones are matched by a
//! keyed hash, and the unkeyed hashes of earlier versions are migrated.

use crate::{Backend, TestApp};
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use siyu_domain::parse_json_event;

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn files_contain(dir: &std::path::Path, needle: &str) -> bool {
    ["siyu.db", "siyu.db-wal"].iter().any(|f| {
        std::fs::read(dir.join(f))
            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

#[tokio::test]
async fn erasure_leaves_the_identity_in_no_setting_audit_row_or_file() {
    let t = TestApp::spawn().await;
    let marker = "只有她知道的秘密-4b9e1d";
    let (s, b) = t
        .post_events(&format!(
            r#"[{{"ts":"2026-10-01T08:00:00Z","identity":"wecom:erase_me","type":"identify","traits":{{"name":"{marker}"}}}},
               {{"ts":"2026-10-01T09:00:00Z","identity":"wecom:erase_me","type":"comment","channel":"wecom","text":"{marker}"}},
               {{"ts":"2026-10-01T09:00:00Z","identity":"wecom:keep_me","type":"comment","channel":"wecom","text":"hello"}}]"#
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    {
        // What live codes, fission rewards and overrides leave in settings.
        let mut store = t.state.0.reader.lock().unwrap();
        store
            .put_settings(&[
                (
                    "group/g1/reserved".into(),
                    Some(json!({"wecom:erase_me": 1_790_000_000, "wecom:keep_me": 1_790_000_001})),
                ),
                (
                    "livecode/lc/day".into(),
                    Some(json!({"day": 1, "counts": {"op": 2}, "seen": {"wecom:erase_me": "op"}})),
                ),
                (
                    "reward/c1/wecom:erase_me/0".into(),
                    Some(json!({"inviter": "wecom:erase_me", "tier": 0, "reward": "r", "status": "granted", "at": 1, "supported_by": 3})),
                ),
                ("fission_override/c1/wecom:erase_me".into(), Some(json!(true))),
            ])
            .unwrap();
        store
            .audit(&siyu_store::AuditRecord {
                id: 0,
                at: 1_790_000_000,
                action: "fission_override".into(),
                subject: "wecom:erase_me".into(),
                detail: json!({"campaign": "c1", "valid": true}),
            })
            .unwrap();
    }
    assert!(
        files_contain(&t.dir, marker),
        "the marker reached the files"
    );

    let (s, e) = t
        .call(
            "DELETE",
            "/v1/persons/wecom:erase_me",
            Some(&t.key),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let pseudonym = e["erasure_id"].as_str().unwrap().to_string();
    assert!(
        pseudonym.starts_with("erased:") && !pseudonym.contains("erase_me"),
        "{e}"
    );

    let mut store = t.state.0.reader.lock().unwrap();
    let settings = store.list_settings("").unwrap();
    for (key, value) in &settings {
        assert!(
            !key.contains("wecom:erase_me") && !value.to_string().contains("wecom:erase_me"),
            "{key} = {value}"
        );
    }
    let get = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // The reward row still counts against its stock, under the pseudonym.
    assert_eq!(
        get(&format!("reward/c1/{pseudonym}/0")).map(|v| v["status"].clone()),
        Some(json!("granted"))
    );
    assert_eq!(
        get("group/g1/reserved").unwrap()["wecom:keep_me"],
        json!(1_790_000_001)
    );
    let audit = store.audit_log(100).unwrap();
    assert!(audit
        .iter()
        .any(|r| r.action == "erase_person" && r.subject == pseudonym));
    for r in &audit {
        let text = format!("{} {}", r.subject, r.detail);
        assert!(!text.contains("wecom:erase_me"), "{text}");
    }
    drop(store);
    // Freed pages are zeroed and the WAL truncated: the text is gone from disk.
    assert!(
        !files_contain(&t.dir, marker),
        "erased text left in {}",
        t.dir.display()
    );
}

/// Orders matched by phone before the upgrade stored `phone_sha256:<hex>`
/// identities; after it the log holds only keyed hashes, and an order
/// with the same phone still lands on that person.
#[tokio::test]
async fn unkeyed_phone_hashes_are_migrated_and_still_match() {
    let legacy = format!("phone_sha256:{}", sha256_hex("13900000000"));
    let legacy_in_tweak = legacy.clone();
    let t = TestApp::spawn_with(Backend::Sqlite, 1 << 20, move |config| {
        // A store as the previous version left it.
        let mut store = config.open_store().unwrap();
        let events: Vec<_> = [
            json!({"ts": 1_790_000_000, "identity": "taobao:tb_wang", "type": "identify", "ref": legacy_in_tweak}),
            json!({"id": "order:taobao:1", "ts": 1_790_000_000, "identity": legacy_in_tweak, "type": "purchase", "channel": "taobao", "amount": 1000}),
        ]
        .iter()
        .map(|v| parse_json_event(v).unwrap())
        .collect();
        store.append(&events).unwrap();
    })
    .await;
    let (s, p) = t.get("/v1/persons/taobao:tb_wang").await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let ids: Vec<String> = p["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!ids.contains(&legacy), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("phone_hmac:")), "{ids:?}");
    assert_eq!(p["purchases"], 1, "{p}");
    {
        let mut store = t.state.0.reader.lock().unwrap();
        let prefix = "phone_sha256:";
        assert!(store
            .logged_identities_with_prefix(prefix)
            .unwrap()
            .is_empty());
    }
    // The same phone, raw and as its SHA-256, still finds the person.
    let orders = json!([
        {"order_id": "2", "channel": "taobao", "amount": "20", "paid_at": 1_790_100_000, "phone": "139 0000 0000"},
        {"order_id": "3", "channel": "taobao", "amount": "30", "paid_at": 1_790_200_000, "phone_sha256": sha256_hex("13900000000")}
    ]);
    let (s, b) = t
        .call(
            "POST",
            "/v1/orders",
            Some(&t.key),
            "application/json",
            orders.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["matched"]["phone_existing_person"], 2, "{b}");
    let (_, p) = t.get("/v1/persons/taobao:tb_wang").await;
    assert_eq!(p["purchases"], 3, "{p}");
    // Nothing names the unkeyed hash any more.
    let (_, p) = t.get(&format!("/v1/persons/{legacy}")).await;
    assert_eq!(p["code"], "not_found", "{p}");
}

#[tokio::test]
async fn a_phone_sha256_that_is_not_a_digest_is_refused_by_field() {
    let t = TestApp::spawn().await;
    let orders = json!([{"order_id": "1", "channel": "taobao", "amount": "20", "paid_at": 1_790_100_000, "phone_sha256": "13900000000"}]);
    let (s, b) = t
        .call(
            "POST",
            "/v1/orders",
            Some(&t.key),
            "application/json",
            orders.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["rejected"][0]["field"], "phone_sha256", "{b}");
}
