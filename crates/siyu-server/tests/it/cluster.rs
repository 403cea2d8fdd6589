//! Several nodes on one PostgreSQL database behave as one system
//! (issue 16): two applications in this process on one schema, each with
//! its own engine, writer, executor, caches and data dir. A change made
//! through one is in force on the other within a second; an erasure
//! leaves the person in neither's memory, snapshot nor API.

use crate::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// What the issue asks: in force on every node within a second.
const CONVERGE: Duration = Duration::from_secs(1);

async fn two_nodes() -> Option<(TestApp, TestApp)> {
    if crate::pg_url().is_none() {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return None;
    }
    let a = TestApp::spawn_on(crate::Backend::Postgres, 1024 * 1024).await;
    let b = a.peer().await;
    Some((a, b))
}

/// Polls `check` until it holds; panics naming `what` after `within`.
/// Returns how long it took.
async fn until<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_with_key(t: &TestApp, key: &str, uri: &str) -> StatusCode {
    t.call("GET", uri, Some(key), "application/json", Body::empty())
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_and_revoked_on_one_node_hold_on_the_other_within_a_second() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let (s, made) = a
        .call(
            "POST",
            "/v1/admin/keys",
            Some("admin-secret"),
            "application/json",
            r#"{"name":"made-on-a","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let took = until("a key made on A works on B", CONVERGE, || {
        let (b, key) = (&b, key.clone());
        async move { status_with_key(b, &key, "/v1/segments").await == StatusCode::OK }
    })
    .await;
    eprintln!("key creation converged in {took:?}");
    let id = made["id"].as_str().unwrap();
    let (s, body) = b
        .call(
            "DELETE",
            &format!("/v1/admin/keys/{id}"),
            Some("admin-secret"),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let took = until("a key revoked on B is refused on A", CONVERGE, || {
        let (a, key) = (&a, key.clone());
        async move { status_with_key(a, &key, "/v1/segments").await == StatusCode::UNAUTHORIZED }
    })
    .await;
    eprintln!("key revocation converged in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_have_one_definition_and_one_version_on_every_node() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.post_events(
        r#"[{"id":"c1","ts":1790000000,"identity":"wecom:big","type":"purchase","amount":90000},
            {"id":"c2","ts":1790000000,"identity":"wecom:small","type":"purchase","amount":100}]"#,
    )
    .await;
    let (s, saved) = a
        .send(
            "PUT",
            "/v1/segments/vip",
            json!({"segment": "spend >= 500"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{saved}");
    let version = saved["version"].clone();
    until("a segment saved on A is served by B", CONVERGE, || async {
        let (s, seg) = b.get("/v1/segments/vip").await;
        s == StatusCode::OK && seg["version"] == version && seg["count"] == json!(1)
    })
    .await;

    // Both nodes define one name at once, differently: one definition
    // wins, every node serves it under one version, and no version
    // number was given twice.
    let (ra, rb) = tokio::join!(
        a.send(
            "PUT",
            "/v1/segments/race",
            json!({"segment": "spend >= 500"})
        ),
        b.send(
            "PUT",
            "/v1/segments/race",
            json!({"segment": "purchases >= 1"})
        ),
    );
    assert_eq!(ra.0, StatusCode::OK, "{}", ra.1);
    assert_eq!(rb.0, StatusCode::OK, "{}", rb.1);
    assert_ne!(ra.1["version"], rb.1["version"], "one number per save");
    let took = until(
        "both nodes agree on the segment defined on both",
        CONVERGE,
        || async {
            let ((_, sa), (_, sb)) =
                tokio::join!(a.get("/v1/segments/race"), b.get("/v1/segments/race"));
            sa["segment"] == sb["segment"]
                && sa["version"] == sb["version"]
                && sa["count"] == sb["count"]
        },
    )
    .await;
    eprintln!("concurrent definitions converged in {took:?}");
    let (_, sa) = a.get("/v1/segments/race").await;
    assert!(
        [&ra.1["version"], &rb.1["version"]].contains(&&sa["version"]),
        "the winner is one of the two saves: {sa}"
    );

    // Deleted on B: gone on A.
    let (s, body) = b.send("DELETE", "/v1/segments/vip", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    until("a segment deleted on B is gone on A", CONVERGE, || async {
        a.get("/v1/segments/vip").await.0 == StatusCode::NOT_FOUND
    })
    .await;
    // Saved again on A: the numbering goes on, on both.
    let (_, again) = a
        .send("PUT", "/v1/segments/vip", json!({"segment": "spend >= 1"}))
        .await;
    assert!(again["version"].as_u64() > version.as_u64(), "{again}");
    until("the new version is B's too", CONVERGE, || async {
        b.get("/v1/segments/vip").await.1["version"] == again["version"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_logout_on_one_node_ends_the_session_on_the_other() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let role = siyu_console::OperatorRole::Admin;
    let (token, session) = a.state.0.console.open_session("ops_li", role).unwrap();
    tokio::task::block_in_place(|| {
        let mut store = a.other_store();
        siyu_console::sessions::save(
            store.as_mut(),
            &siyu_console::sessions::token_hash(&token),
            &session,
        )
        .unwrap();
    });
    let cookie = format!("siyu_session={token}; siyu_csrf={}", session.csrf);
    let me = |t: &TestApp| {
        let req = Request::get("/console/api/me")
            .header("cookie", cookie.clone())
            .body(Body::empty())
            .unwrap();
        let app = siyu_server::app(t.state.clone());
        async move { app.oneshot(req).await.unwrap().status() }
    };
    assert_eq!(me(&b).await, StatusCode::OK, "B reads the session A stored");
    let req = Request::post("/console/api/logout")
        .header("cookie", cookie.clone())
        .header(siyu_console::CSRF_HEADER, session.csrf.clone())
        .body(Body::empty())
        .unwrap();
    let resp = siyu_server::app(a.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let took = until(
        "a session logged out on A is refused on B",
        CONVERGE,
        || async { me(&b).await == StatusCode::UNAUTHORIZED },
    )
    .await;
    eprintln!("logout converged in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_on_one_node_leaves_the_person_in_no_nodes_memory_snapshot_or_api() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let (s, body) = a
        .post_events(
            r#"[{"id":"x1","ts":1790000000,"identity":"wecom:erase_me_7","type":"identify","traits":{"name":"王小明"}},
                {"id":"x2","ts":1790000100,"identity":"wecom:erase_me_7","type":"purchase","amount":4200},
                {"id":"x3","ts":1790000100,"identity":"wecom:stays_8","type":"purchase","amount":100}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    until("B follows A's events", Duration::from_secs(5), || async {
        b.get("/v1/persons/wecom:erase_me_7").await.0 == StatusCode::OK
    })
    .await;
    // B holds the person in a snapshot written before the erasure.
    b.state.0.writer.snapshot().await.unwrap();
    let snapshot = siyu_server::snapshot_path(&b.state.0.config);
    let holds = |needle: &str| {
        std::fs::read(&snapshot)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(
        holds("erase_me_7"),
        "the test's premise: B's snapshot holds the person"
    );

    let (s, body) = a
        .call(
            "DELETE",
            "/v1/persons/wecom:erase_me_7",
            Some("admin-secret"),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let took = until(
        "B forgets the person A erased",
        Duration::from_secs(5),
        || async {
            let gone = b.get("/v1/persons/wecom:erase_me_7").await.0 == StatusCode::NOT_FOUND;
            let engine = b.state.0.engine.read().unwrap();
            gone && engine.person_of("wecom:erase_me_7").is_none()
        },
    )
    .await;
    eprintln!("erasure reached the other node in {took:?}");
    assert!(!holds("erase_me_7"), "B's old snapshot is gone");
    let (_, hits) = b.get("/v1/persons?q=wecom:erase").await;
    assert!(!hits.to_string().contains("erase_me_7"), "{hits}");
    // What B writes from now on holds nobody erased, and the rest is kept.
    b.state.0.writer.snapshot().await.unwrap();
    assert!(holds("stays_8") && !holds("erase_me_7"));
    assert_eq!(b.get("/v1/persons/wecom:stays_8").await.0, StatusCode::OK);
    for t in [&a, &b] {
        let (s, _) = t.get("/v1/persons/wecom:erase_me_7/timeline").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // A restart of B reads no erased data back.
    drop(hits);
    let b2 = a.peer().await;
    assert_eq!(
        b2.get("/v1/persons/wecom:erase_me_7").await.0,
        StatusCode::NOT_FOUND
    );
}

/// A snapshot B was writing while A erased is not kept: checked against
/// the store's erasure count before it replaces the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_has_not_seen_an_erasure_keeps_no_snapshot() {
    let Some((a, _b)) = two_nodes().await else {
        return;
    };
    a.post_events(
        r#"[{"id":"y1","ts":1790000000,"identity":"wecom:gone_9","type":"purchase","amount":1}]"#,
    )
    .await;
    // Another process erases (as another node would) without telling A.
    tokio::task::block_in_place(|| {
        let mut store = a.other_store();
        let person = [siyu_domain::Identity::parse("wecom:gone_9").unwrap()];
        let audit = siyu_store::AuditRecord {
            id: 0,
            at: 1_790_000_000,
            action: "erase".into(),
            subject: "test".into(),
            detail: json!({}),
        };
        store.erase(&person, "erased:test", &audit).unwrap();
    });
    let snapshot = siyu_server::snapshot_path(&a.state.0.config);
    std::fs::remove_file(&snapshot).ok();
    // Whatever the race with A's follower, no snapshot holding the person appears.
    let _ = a.state.0.writer.snapshot().await;
    let holds =
        std::fs::read(&snapshot).is_ok_and(|bytes| bytes.windows(6).any(|w| w == b"gone_9"));
    assert!(!holds, "a snapshot holding an erased person was kept");
    until(
        "A rebuilds without the person",
        Duration::from_secs(5),
        || async { a.get("/v1/persons/wecom:gone_9").await.0 == StatusCode::NOT_FOUND },
    )
    .await;
}

/// Nodes starting at once on an empty database make one privacy secret
/// and one link secret between them: the same phone hashes the same, and
/// a link signed by one node opens on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_on_an_empty_database_share_their_secrets() {
    let Some(url) = crate::pg_url() else {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    };
    let schema = format!("siyu_cluster_start_{}", std::process::id());
    let config = |n: u32| siyu_server::config::Config {
        listen: "127.0.0.1:0".into(),
        data_dir: std::env::temp_dir().join(format!("{schema}_{n}")),
        database_url: Some(url.clone()),
        database_schema: Some(schema.clone()),
        admin_token: Some("admin-secret".into()),
        ..Default::default()
    };
    let (a, b, c) = tokio::join!(
        siyu_server::Application::build(config(1)),
        siyu_server::Application::build(config(2)),
        siyu_server::Application::build(config(3)),
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let phone = |app: &siyu_server::Application| {
        app.state()
            .0
            .privacy
            .phone_identity("13800000000")
            .as_str()
            .to_string()
    };
    for n in &nodes[1..] {
        assert_eq!(n.state().0.link_secret, nodes[0].state().0.link_secret);
        assert_eq!(phone(n), phone(&nodes[0]));
    }
    for n in 1..=3 {
        std::fs::remove_dir_all(config(n).data_dir).ok();
    }
    drop(nodes);
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls)?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
    })
    .await
    .unwrap()
    .ok();
}

/// A fresh event, as JSON, for `identity` (id `id`).
fn fresh(kind: &str, identity: &str, id: &str) -> String {
    let now = siyu_server::writer::wall_clock();
    format!(r#"{{"ts": {now}, "identity": "{identity}", "type": "{kind}", "id": "{id}"}}"#)
}

/// Issue 16.5: one node leads (timers, triggers, deliveries); the other
/// stands by yet accepts events and requests, which the leader acts on
/// once: a friend added on either node is welcomed once, a send asked of
/// the standing-by node is delivered by the leader, and consent recorded
/// there holds on the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_and_acts_once_for_every_nodes_events_and_requests() {
    if crate::pg_url().is_none() {
        return;
    }
    let (a, hook) = crate::automation::app_with_hook_on(crate::Backend::Postgres).await;
    let b = a.peer().await;
    assert!(a.state.0.leader.is_leader(), "the first node leads");
    assert!(!b.state.0.leader.is_leader(), "the second stands by");
    crate::automation::welcome_and_autoreply(&a).await;
    let (s, body) = a
        .send(
            "PUT",
            "/v1/templates/promo",
            json!({"body": "上新啦", "class": "marketing"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    for (node, who) in [(&b, "wecom:via-b"), (&a, "wecom:via-a")] {
        let (s, body) = node.post_events(&fresh("add_friend", who, who)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let got = hook.wait_for(2).await;
    assert!(got.iter().all(|m| m["body"] == "欢迎！"), "{got:?}");
    let mut welcomed: Vec<String> = got
        .iter()
        .map(|m| m["identity"].as_str().unwrap_or_default().to_string())
        .collect();
    welcomed.sort();
    assert_eq!(welcomed, ["wecom:via-a", "wecom:via-b"]);

    // B knows the template made on A within a second.
    until("a send asked of B is queued", CONVERGE, || async {
        let (s, body) = b
            .send(
                "POST",
                "/v1/sends",
                json!({"id": "asked-of-b", "identities": ["wecom:via-b"], "template": "docs", "channel": "webhook", "kind": "direct"}),
            )
            .await;
        s == StatusCode::OK && body["queued"] == json!(1)
    })
    .await;
    let took = {
        let started = Instant::now();
        let got = hook.wait_for(3).await;
        assert_eq!(got[2]["body"], "资料已发您", "{got:?}");
        started.elapsed()
    };
    eprintln!("a send asked of the standing-by node delivered by the leader in {took:?}");

    let (s, body) = b
        .send(
            "POST",
            "/v1/consent",
            json!({"identity": "wecom:via-a", "granted": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // In force on the leader within a second (the settings poll).
    tokio::time::sleep(CONVERGE).await;
    let (s, body) = a
        .send(
            "POST",
            "/v1/sends",
            json!({"id": "promo-after-opt-out", "identities": ["wecom:via-a"], "template": "promo", "channel": "webhook"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    until(
        "the promo is suppressed by the opt-out made on B",
        Duration::from_secs(5),
        || async {
            let (_, v) = a
                .send("GET", "/v1/outbox?status=suppressed&person=wecom:via-a", "")
                .await;
            v["items"].as_array().is_some_and(|i| !i.is_empty())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = hook.idempotency_keys();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!((keys.len(), distinct.len()), (3, 3), "{keys:?}");

    // Both nodes see the segment entry a purchase on B causes; the history
    // records it once (the leader writes it).
    let (s, body) = a
        .send(
            "PUT",
            "/v1/segments/buyers",
            json!({"segment": "purchases >= 1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    until("B has the segment", CONVERGE, || async {
        b.send("GET", "/v1/segments/buyers", "").await.0 == StatusCode::OK
    })
    .await;
    let now = siyu_server::writer::wall_clock();
    let (s, body) = b
        .post_events(&format!(
            r#"{{"ts": {now}, "identity": "wecom:via-b", "type": "purchase", "amount": 990, "id": "buy-b"}}"#
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let history = "/v1/segments/buyers/history?person=wecom:via-b";
    for node in [&a, &b] {
        until("the entry is in the history", CONVERGE, || async {
            let (_, v) = node.send("GET", history, "").await;
            v["history"].as_array().is_some_and(|h| !h.is_empty())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = b.send("GET", history, "").await;
    assert_eq!(v["history"].as_array().map(Vec::len), Some(1), "{v}");
}

/// Issue 16.5: the leader dies without a word (its lease lapses); the
/// standing-by node takes timers and triggers over within 10 s. The dead
/// leader's executor goes on running, as a node paused past its lease
/// would: it sees the next event too and tries to act on it, and the
/// store refuses its commit (the fencing token), so the new friend is
/// welcomed once, by the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standing_by_node_takes_over_and_a_paused_old_leader_is_fenced() {
    if crate::pg_url().is_none() {
        return;
    }
    let (mut a, hook) = crate::automation::app_with_hook_on(crate::Backend::Postgres).await;
    let mut b = a.peer().await;
    crate::automation::welcome_and_autoreply(&a).await;
    assert!(a.state.0.leader.is_leader() && !b.state.0.leader.is_leader());
    let (s, body) = b
        .post_events(&fresh("add_friend", "wecom:before", "before"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    hook.wait_for(1).await;

    // B keeps the schema; A's application is dropped without stopping:
    // its lease thread ends and never releases, its writer and executor
    // threads run on.
    b.schema = a.schema.take();
    let a_leader = a.state.0.leader.clone();
    let died = Instant::now();
    a.abandon = true;
    drop(a);
    let took = until("B leads after A died", Duration::from_secs(10), || async {
        b.state.0.leader.is_leader()
    })
    .await;
    eprintln!("failover: B leads {took:?} after A died");
    assert!(
        a_leader.is_leader(),
        "A still believes it leads (nobody told it): the fencing token must stop it"
    );

    let (s, body) = b
        .post_events(&fresh("add_friend", "wecom:after", "after"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let got = hook.wait_for(2).await;
    assert_eq!(got[1]["identity"], "wecom:after", "{got:?}");
    eprintln!(
        "a friend added after the failover welcomed {:?} after A died",
        died.elapsed()
    );
    // A's executor saw the event too (its writer follows the log), acted
    // on it and was fenced.
    until("A's commit is fenced", Duration::from_secs(5), || async {
        !a_leader.is_leader()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = hook.idempotency_keys();
    assert_eq!(keys.len(), 2, "welcomed once each: {:?}", hook.bodies());
}
