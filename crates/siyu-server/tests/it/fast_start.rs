//! Fast start (issue 16): a node on PostgreSQL with no snapshot file of
//! its own starts from the newest snapshot another node stored in the
//! database and replays only the log after it; a stored snapshot (or a
//! file) the store disagrees with is refused and the log replayed; none
//! loaded after an erasure holds the erased person. How many events a
//! node replayed is read from its `/metrics`
//! (`siyu_engine_start_events`), as an operator would.

use crate::TestApp;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use std::time::Duration;

async fn pg_node() -> Option<TestApp> {
    if crate::pg_url().is_none() {
        eprintln!("skipped: SIYU_TEST_DATABASE_URL is not set (CI sets it)");
        return None;
    }
    Some(TestApp::spawn_on(crate::Backend::Postgres, 1024 * 1024).await)
}

/// `n` purchases of persons `wecom:{prefix}{i}`, each with its own id.
async fn post_purchases(t: &TestApp, prefix: &str, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}-{i}"), "ts": 1_790_000_000 + i,
                   "identity": format!("wecom:{prefix}{i}"), "type": "purchase", "amount": 100})
        })
        .collect();
    let (s, body) = t.post_events(&json!(events).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

/// Events the node's engine holds (`/healthz`).
async fn engine_events(t: &TestApp) -> u64 {
    let (_, health) = t.get("/healthz").await;
    health["events"].as_u64().unwrap()
}

/// `siyu_engine_start_events{from="…"}` of the node's `/metrics`: the
/// events its engine started with from its snapshot file (`file`), a
/// stored snapshot (`store`), or the log replayed after it (`log`).
async fn start_events(t: &TestApp, from: &str) -> Option<u64> {
    let (s, text) = t
        .call("GET", "/metrics", None, "text/plain", Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    let label = format!("from=\"{from}\"");
    text.as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("siyu_engine_start_events{") && l.contains(&label))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// Runs `sql` in the node's schema, past the store.
fn execute(t: &TestApp, sql: &str) {
    let url = crate::pg_url().unwrap();
    let schema = t.state.0.config.database_schema.clone().unwrap();
    let sql = format!("SET search_path TO {schema}; {sql}");
    tokio::task::block_in_place(|| {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&sql).unwrap();
    });
}

fn stored_snapshots(t: &TestApp) -> Vec<siyu_store::StoredSnapshot> {
    tokio::task::block_in_place(|| t.other_store().snapshots().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_starts_from_the_snapshot_another_stored_and_replays_only_the_tail() {
    let Some(a) = pg_node().await else {
        return;
    };
    post_purchases(&a, "early", 40).await;
    // Answered once the snapshot is in the database.
    a.state.0.writer.snapshot().await.unwrap();
    let in_snapshot = engine_events(&a).await;
    let stored = stored_snapshots(&a);
    assert_eq!(stored.len(), 1, "{stored:?}");
    post_purchases(&a, "late", 7).await;

    // A new node: its data dir is empty.
    let b = a.peer().await;
    assert_eq!(start_events(&b, "store").await, Some(in_snapshot));
    assert_eq!(start_events(&b, "log").await, Some(7), "only the tail");
    assert_eq!(start_events(&b, "file").await, None);
    assert_eq!(engine_events(&b).await, engine_events(&a).await);
    for person in ["wecom:early3", "wecom:late5"] {
        let (s, body) = b.get(&format!("/v1/persons/{person}")).await;
        assert_eq!(s, StatusCode::OK, "{person}: {body}");
        assert_eq!(body, a.get(&format!("/v1/persons/{person}")).await.1);
    }

    // A node whose own file is as new starts from its file.
    b.state.0.writer.snapshot().await.unwrap();
    let file = std::fs::read(siyu_server::snapshot_path(&b.state.0.config)).unwrap();
    let c = a
        .peer_with(|config| std::fs::write(siyu_server::snapshot_path(config), &file).unwrap())
        .await;
    assert_eq!(start_events(&c, "file").await, Some(in_snapshot + 7));
    assert_eq!(start_events(&c, "log").await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_snapshot_the_store_disagrees_with_is_refused_and_the_log_replayed() {
    let Some(a) = pg_node().await else {
        return;
    };
    post_purchases(&a, "p", 30).await;
    let all = engine_events(&a).await;
    for (what, damage) in [
        (
            "beyond the log's head",
            "UPDATE engine_snapshots SET log_offset = log_offset + 1000",
        ),
        (
            "taken of another log",
            "UPDATE engine_snapshots SET anchor_id = 'c:another-log'",
        ),
        (
            "bytes that are not the ones stored",
            "UPDATE engine_snapshot_parts
             SET data = set_byte(data, 100, (get_byte(data, 100) + 1) % 256) WHERE part = 0",
        ),
        (
            "an erasure count that is not the store's",
            "UPDATE engine_snapshots SET erasures = erasures + 1",
        ),
    ] {
        tokio::task::block_in_place(|| a.other_store().delete_snapshots().unwrap());
        a.state.0.writer.snapshot().await.unwrap();
        assert_eq!(stored_snapshots(&a).len(), 1, "{what}: stored");
        execute(&a, damage);
        let b = a.peer().await;
        assert_eq!(start_events(&b, "store").await, None, "{what}: refused");
        assert_eq!(start_events(&b, "log").await, Some(all), "{what}: replayed");
        assert_eq!(b.get("/v1/persons/wecom:p7").await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_snapshot_loaded_after_an_erasure_holds_the_erased_person() {
    let Some(a) = pg_node().await else {
        return;
    };
    let (s, body) = a
        .post_events(
            r#"[{"id":"e1","ts":1790000000,"identity":"wecom:erase_me_5","type":"identify","traits":{"name":"王小明"}},
                {"id":"e2","ts":1790000100,"identity":"wecom:erase_me_5","type":"purchase","amount":4200},
                {"id":"e3","ts":1790000100,"identity":"wecom:stays_6","type":"purchase","amount":100}]"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    a.state.0.writer.snapshot().await.unwrap();
    let holds = |bytes: &[u8]| bytes.windows(10).any(|w| w == b"erase_me_5");
    let stored = stored_snapshots(&a);
    let before = tokio::task::block_in_place(|| {
        a.other_store()
            .read_snapshot(stored[0].id)
            .unwrap()
            .unwrap()
    });
    assert!(
        holds(&before),
        "the premise: the stored snapshot holds the person"
    );
    // Another node's own file, written before the erasure; that node is
    // down while the person is erased.
    let b = a.peer().await;
    b.state.0.writer.snapshot().await.unwrap();
    let old_file = std::fs::read(siyu_server::snapshot_path(&b.state.0.config)).unwrap();
    assert!(holds(&old_file));
    drop(b);

    let (s, body) = a
        .call(
            "DELETE",
            "/v1/persons/wecom:erase_me_5",
            Some("admin-secret"),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // What is stored now (A's snapshot of its rebuilt engine, once its
    // copy lands, or nothing) holds nobody erased.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| {
        let mut store = a.other_store();
        for s in store.snapshots().unwrap() {
            let bytes = store.read_snapshot(s.id).unwrap().unwrap_or_default();
            assert!(
                !holds(&bytes),
                "stored snapshot {} holds the erased person",
                s.id
            );
        }
    });

    // Node B comes back with its old file: refused, whatever else it loads.
    let b = a
        .peer_with(|config| std::fs::write(siyu_server::snapshot_path(config), &old_file).unwrap())
        .await;
    assert_eq!(
        start_events(&b, "file").await,
        None,
        "the old file is refused"
    );
    assert_eq!(
        b.get("/v1/persons/wecom:erase_me_5").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(b
        .state
        .0
        .engine
        .read()
        .unwrap()
        .person_of("wecom:erase_me_5")
        .is_none());
    assert_eq!(b.get("/v1/persons/wecom:stays_6").await.0, StatusCode::OK);
    let (_, hits) = b.get("/v1/persons?q=wecom:erase").await;
    assert!(!hits.to_string().contains("erase_me_5"), "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_other_computed_properties_is_not_loaded() {
    let Some(a) = pg_node().await else {
        return;
    };
    post_purchases(&a, "q", 5).await;
    a.state.0.writer.snapshot().await.unwrap();
    let without = std::fs::read(siyu_server::snapshot_path(&a.state.0.config)).unwrap();
    let (s, body) = a
        .send(
            "PUT",
            "/v1/properties/orders",
            json!({"aggregate": "count", "event_type": "purchase"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The stored snapshots went with the definition: the rebuilt
    // engine's, at the same offset, is stored in their place.
    a.state.0.writer.snapshot().await.unwrap();
    let orders = |person: serde_json::Value| person["properties"]["orders"].clone();

    // A new node starts from the snapshot of the rebuilt engine.
    let b = a.peer().await;
    assert!(start_events(&b, "store").await.is_some());
    assert_eq!(orders(b.get("/v1/persons/wecom:q1").await.1), json!(1));
    // A node whose file predates the definition replays the log.
    let c = a
        .peer_with(|config| std::fs::write(siyu_server::snapshot_path(config), &without).unwrap())
        .await;
    assert_eq!(start_events(&c, "file").await, None);
    assert_eq!(start_events(&c, "log").await, Some(engine_events(&a).await));
    assert_eq!(orders(c.get("/v1/persons/wecom:q1").await.1), json!(1));
}
