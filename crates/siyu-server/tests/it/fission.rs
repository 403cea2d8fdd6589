//! Fission campaigns over HTTP: definitions rejected with the field at
//! fault, invite links and posters, public landing and signup, tiered
//! rewards with stock, clawback of "take the gift and leave", analytics.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send("PUT", path, body).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.send("POST", path, body).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.call("GET", path, Some(&app.key), "application/json", "")
        .await
}

/// The claim token the channel gets (with a key) for an invitee it knows.
async fn claim(app: &TestApp, campaign: &str, identity: &str) -> String {
    let (s, b) = post(
        app,
        &format!("/v1/campaigns/{campaign}/claims"),
        json!({ "identity": identity }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["claim"].as_str().unwrap().to_string()
}

fn campaign() -> Value {
    json!({
        "name": "双11 老带新",
        "tiers": [{"invites": 2, "reward": "gift"}, {"invites": 3, "reward": "big"}],
        "rewards": {"gift": {"stock": 1, "cost": 1500}, "big": {"stock": 5, "cost": 5000}},
        "rules": {"group": "g1", "hold": "7d", "max_per_device": 2},
        "landing": {"next": "add_friend", "operator": "小王"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_campaigns_name_the_field() {
    let app = TestApp::spawn().await;
    let mut c = campaign();
    c["tiers"] = json!([{"invites": 10, "reward": "gift"}, {"invites": 10, "reward": "nope"}]);
    c["rewards"]["gift"]["stock"] = json!(0);
    c["rules"]["hold"] = json!("soon");
    c["ends_at"] = json!("2020-01-01T00:00:00Z");
    c["starts_at"] = json!("2021-01-01T00:00:00Z");
    let (s, b) = put(&app, "/v1/campaigns/c1", c).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let m = b["message"].as_str().unwrap();
    for part in [
        "tiers[1].invites: tiers overlap",
        "tiers[1].reward: no reward named \"nope\"",
        "rewards.gift.stock",
        "rules.hold",
        "ends_at: must be after starts_at",
    ] {
        assert!(m.contains(part), "{part} in {m}");
    }
    // A campaign that ended refuses signups with 410.
    let mut c = campaign();
    c["ends_at"] = json!(1_600_000_000);
    assert_eq!(put(&app, "/v1/campaigns/old", c).await.0, StatusCode::OK);
    let (_, inv) = post(
        &app,
        "/v1/campaigns/old/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    let code = inv["code"].as_str().unwrap();
    let token = claim(&app, "old", "douyin:n1").await;
    let (s, b) = app
        .call(
            "POST",
            &format!("/i/old/{code}/signup"),
            None,
            "application/json",
            json!({ "claim": token }).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "{b}");
    // A forged code is refused; a background that is not a PNG too.
    let (s, _) = app
        .call(
            "GET",
            "/i/old/626f7373.000000000000",
            None,
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .call(
            "PUT",
            "/v1/campaigns/old/background",
            Some(&app.key),
            "image/jpeg",
            vec![0xFFu8, 0xD8, 0xFF, 0xE0, 0, 0],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().starts_with("background:"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_signups_rewards_and_clawback() {
    let app = TestApp::spawn().await;
    assert_eq!(
        put(&app, "/v1/campaigns/c1", campaign()).await.0,
        StatusCode::OK
    );
    app.post_events(r#"[{"ts": 1790000000, "identity": "wecom:boss", "type": "identify", "traits": {"name": "王芳"}},
                        {"ts": 1790000000, "identity": "wecom:boss", "type": "add_friend"},
                        {"ts": 1790000000, "identity": "wecom:old", "type": "add_friend"}]"#).await;
    let (s, inv) = post(
        &app,
        "/v1/campaigns/c1/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap().to_string();
    assert!(inv["link"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/i/c1/{code}")));
    // The landing page names the inviter and counts the click.
    let (s, land) = app
        .call(
            "GET",
            &format!("/i/c1/{code}"),
            None,
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{land}");
    assert_eq!(land["inviter_name"], "王芳");
    assert_eq!(land["next"]["next"], "add_friend");
    // Signups: n1, n2, n3 (new), old (known before: not new), n1 again (no-op).
    for who in [
        "douyin:n1",
        "douyin:n2",
        "douyin:n3",
        "wecom:old",
        "douyin:n1",
    ] {
        // Each signup in its own second: at one second, event time orders
        // signups by their ids (`siyu_engine::engine::tie_break`), not by
        // arrival, and this scenario is about arrival order.
        next_second().await;
        let token = claim(&app, "c1", who).await;
        let (s, b) = app
            .call(
                "POST",
                &format!("/i/c1/{code}/signup"),
                None,
                "application/json",
                json!({"claim": token, "device": "phone-1"}).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    for who in ["douyin:n1", "douyin:n2", "douyin:n3"] {
        app.post_events(&json!({"ts": siyu_server::writer::wall_clock(), "identity": who, "type": "join_group", "group": "g1"}).to_string()).await;
    }
    // n3 shares n1's and n2's device: over max_per_device (2), flagged.
    let (_, list) = get(&app, "/v1/campaigns/c1/invitees").await;
    let verdict = |who: &str| {
        list["invitees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["invitee"] == who)
            .map(|i| i["verdict"].clone())
    };
    assert_eq!(verdict("douyin:n1").unwrap()["status"], "pending", "{list}");
    assert_eq!(
        verdict("douyin:n3").unwrap()["reason"],
        "shared_device",
        "{list}"
    );
    assert_eq!(verdict("wecom:old").unwrap()["reason"], "not_new", "{list}");
    // Instant grant: 2 counted (pending in the hold) reach tier 0.
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["granted"], 1, "{r}");
    // The operator lets n3 count: tier 1 too.
    let (s, _) = post(
        &app,
        "/v1/campaigns/c1/overrides",
        json!({"invitee": "douyin:n3", "valid": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["granted"], 1, "{r}");
    // n1 takes the gift and leaves the group within the hold: clawed back.
    app.post_events(&json!({"ts": siyu_server::writer::wall_clock(), "identity": "douyin:n1", "type": "leave_group", "group": "g1"}).to_string()).await;
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["clawed_back"], 1, "{r}");
    let (_, ledger) = get(&app, "/v1/campaigns/c1/rewards").await;
    let statuses: Vec<&str> = ledger["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"clawed_back") && statuses.contains(&"granted"),
        "{ledger}"
    );
    // The grant and the clawback are events on the inviter.
    let (_, tl) = get(&app, "/v1/persons/wecom:boss/timeline").await;
    let s = tl.to_string();
    assert!(
        s.contains("reward_granted") && s.contains("reward_clawed_back"),
        "{tl}"
    );
    // Analytics.
    let (_, st) = get(&app, "/v1/campaigns/c1/stats").await;
    assert_eq!(st["funnel"]["clicks"], 1, "{st}");
    assert_eq!(st["funnel"]["signups"], 4, "{st}");
    assert_eq!(st["funnel"]["invalid_by_reason"]["left_group"], 1, "{st}");
    let (_, board) = get(&app, "/v1/campaigns/c1/leaderboard").await;
    assert_eq!(board["top"][0]["inviter"], "wecom:boss", "{board}");
    assert_eq!(board["top"][0]["pending"], 2, "{board}");
    // The inviter is erased: the ledger keeps the rows (stock stays used)
    // under a pseudonym, and reconciling does not bring anyone back.
    let (s, e) = app
        .call(
            "DELETE",
            "/v1/persons/wecom:boss",
            Some(&app.key),
            "application/json",
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["changes"], 0, "{r}");
    let (_, ledger) = get(&app, "/v1/campaigns/c1/rewards").await;
    assert!(!ledger.to_string().contains("wecom:boss"), "{ledger}");
    assert!(
        ledger["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["inviter"] == e["erasure_id"]),
        "{ledger}"
    );
    let (s, _) = get(&app, "/v1/persons/wecom:boss").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(
        &app,
        &format!("/v1/persons/{}", e["erasure_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poster_is_a_png_with_the_invite_qr() {
    let app = TestApp::spawn().await;
    put(&app, "/v1/campaigns/c1", campaign()).await;
    app.post_events(r#"{"ts": 1790000000, "identity": "wecom:boss", "type": "identify", "traits": {"name": "王芳"}}"#).await;
    let req = axum::http::Request::builder()
        .uri("/v1/campaigns/c1/poster?identity=wecom:boss")
        .header("authorization", format!("Bearer {}", app.key))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(siyu_server::app(app.state.clone()), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_without_a_claim_mints_nobody_and_visitors_are_bounded() {
    let app = TestApp::spawn().await;
    let mut c = campaign();
    c["landing"] = json!({"live_code": "spring"});
    assert_eq!(put(&app, "/v1/campaigns/c1", c).await.0, StatusCode::OK);
    let (_, inv) = post(
        &app,
        "/v1/campaigns/c1/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    let code = inv["code"].as_str().unwrap().to_string();
    // The code names no identity, in clear or in hex.
    let hex: String = "wecom:boss".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!code.contains("boss") && !code.contains(&hex), "{code}");
    let identities = |v: &Value| v["identities"].as_u64().unwrap();
    assert_eq!(
        put(&app, "/v1/campaigns/c2", campaign()).await.0,
        StatusCode::OK
    );
    let (_, before) = get(&app, "/healthz").await;
    let other_campaign = claim(&app, "c2", "douyin:fake").await;
    for body in [
        json!({"identity": "douyin:fake1"}),
        json!({"claim": "00.00.00"}),
        json!({"claim": other_campaign}),
        json!({"claim": claim(&app, "c1", "douyin:fake").await, "identity": "douyin:fake2"}),
    ] {
        let (s, b) = app
            .call(
                "POST",
                &format!("/i/c1/{code}/signup"),
                None,
                "application/json",
                body.to_string(),
            )
            .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("claim_required")),
            "{body}: {b}"
        );
    }
    for who in ["douyin:fake", "douyin:fake1", "douyin:fake2"] {
        assert_eq!(
            get(&app, &format!("/v1/persons/{who}")).await.0,
            StatusCode::NOT_FOUND,
            "{who}"
        );
    }
    // Landing clicks from one address: one visitor, one click a day,
    // whatever `visitor` the caller makes up.
    for i in 0..20 {
        let (s, b) = app
            .call(
                "GET",
                &format!("/i/c1/{code}?visitor=douyin:v{i}"),
                None,
                "application/json",
                "",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, after) = get(&app, "/healthz").await;
    assert_eq!(
        identities(&after),
        identities(&before) + 1,
        "{before} → {after}"
    );
    let (_, st) = get(&app, "/v1/campaigns/c1/stats").await;
    assert_eq!(st["funnel"]["clicks"], 1, "{st}");
    // With a claim: the signup counts and hands on a live-code claim, not
    // the identity.
    let token = claim(&app, "c1", "douyin:real").await;
    let (s, b) = app
        .call(
            "POST",
            &format!("/i/c1/{code}/signup"),
            None,
            "application/json",
            json!({"claim": token}).to_string(),
        )
        .await;
    assert_eq!(
        (s, b["recorded"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
    let next = b["live_code_url"].as_str().unwrap();
    assert!(
        next.contains("/l/spring?claim=") && !next.contains("douyin"),
        "{b}"
    );
}

/// How many events named `name` the person `who` has.
async fn named(app: &TestApp, who: &str, name: &str) -> usize {
    let (_, tl) = get(app, &format!("/v1/persons/{who}/timeline")).await;
    tl.to_string()
        .matches(&format!("\"name\":\"{name}\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reward_follows_its_person_across_a_merge_and_an_override_regrants_once() {
    let app = TestApp::spawn().await;
    assert_eq!(
        put(&app, "/v1/campaigns/c1", campaign()).await.0,
        StatusCode::OK
    );
    app.post_events(r#"[{"ts": 1790000000, "identity": "wecom:boss", "type": "add_friend"}]"#)
        .await;
    let (_, inv) = post(
        &app,
        "/v1/campaigns/c1/invites",
        json!({"identity": "wecom:boss"}),
    )
    .await;
    let code = inv["code"].as_str().unwrap().to_string();
    for (i, who) in ["douyin:n1", "douyin:n2"].into_iter().enumerate() {
        let token = claim(&app, "c1", who).await;
        let (s, b) = app
            .call(
                "POST",
                &format!("/i/c1/{code}/signup"),
                None,
                "application/json",
                json!({"claim": token, "device": format!("phone-{i}")}).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["granted"], 1, "{r}");
    // The boss's Douyin identity is stitched on and becomes canonical.
    app.post_events(&json!({"ts": siyu_server::writer::wall_clock(), "identity": "douyin:boss", "type": "identify", "ref": "wecom:boss"}).to_string()).await;
    let (_, p) = get(&app, "/v1/persons/wecom:boss").await;
    assert!(p.to_string().contains("douyin:boss"), "{p}");
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["changes"], 0, "same person, same reward: {r}");
    assert_eq!(named(&app, "douyin:boss", "reward_granted").await, 1);
    assert_eq!(named(&app, "douyin:boss", "reward_clawed_back").await, 0);
    // The operator rejects an invitee: below the tier, clawed back once.
    let (s, _) = post(
        &app,
        "/v1/campaigns/c1/overrides",
        json!({"invitee": "douyin:n1", "valid": false}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(
        (r["clawed_back"].as_u64(), r["changes"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    // … and takes it back: granted again, exactly once.
    let (s, _) = post(
        &app,
        "/v1/campaigns/c1/overrides",
        json!({"invitee": "douyin:n1", "valid": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(
        (r["granted"].as_u64(), r["changes"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let (_, r) = post(&app, "/v1/campaigns/c1/reconcile", json!({})).await;
    assert_eq!(r["changes"], 0, "{r}");
    assert_eq!(named(&app, "douyin:boss", "reward_granted").await, 2);
    assert_eq!(named(&app, "douyin:boss", "reward_clawed_back").await, 1);
    let (_, ledger) = get(&app, "/v1/campaigns/c1/rewards").await;
    let rows = ledger["ledger"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{ledger}");
    assert_eq!(rows[0]["status"], "granted", "{ledger}");
    assert_eq!(ledger["stock_left"]["gift"], 0, "{ledger}");
}

/// Sleeps until the server's wall clock (whole seconds) moves on.
async fn next_second() {
    let now = siyu_server::writer::wall_clock();
    while siyu_server::writer::wall_clock() == now {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
