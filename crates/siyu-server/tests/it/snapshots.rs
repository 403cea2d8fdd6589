//! A snapshot is written on its own thread, under a read of the engine:
//! appends go on meanwhile — committed and acknowledged without touching
//! the engine — and are applied, in log order, when it lands. The test
//! makes the snapshot wait by holding the engine's write lock itself,
//! then appends through the writer while the snapshot cannot proceed;
//! `WriterHandle::visible` waits until they are applied.

use crate::TestApp;
use siyu_domain::{parse_json_event, Event};
use std::time::Duration;

fn comment(i: usize) -> Event {
    parse_json_event(&serde_json::json!({
        "id": format!("during-{i}"), "ts": 1_790_000_000 + i as i64,
        "identity": format!("douyin:snap{i}"), "type": "comment", "text": "在吗"
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the engine's write lock across the awaits is the point: it is
// what keeps the snapshot thread from reading while the appends go on.
#[allow(clippy::await_holding_lock)]
async fn appends_are_acknowledged_while_a_snapshot_is_written_and_applied_after_it() {
    let t = TestApp::spawn().await;
    let writer = t.state.0.writer.clone();
    writer.append(vec![comment(0)]).await.unwrap();
    let before = t.state.0.engine.read().unwrap().events_applied();
    // Let the start's own settings changes come back (the follower polls
    // every 250 ms): a followed change is a command that waits for the
    // snapshot, and the appends behind it would wait with it.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The snapshot thread cannot read the engine while this is held.
    let held = t.state.0.engine.write().unwrap();
    let snapshot = tokio::spawn({
        let writer = writer.clone();
        async move { writer.snapshot().await }
    });
    // Its command is queued before the appends (the task sends it at
    // once), and long before the writer's idle tick (500 ms without a
    // command), which would wait for the lock held here.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Appends go through meanwhile, each acknowledged (durable) at once.
    for i in 1..=50 {
        let appended =
            tokio::time::timeout(Duration::from_secs(5), writer.append(vec![comment(i)]))
                .await
                .expect("an append waits for no snapshot")
                .unwrap();
        assert!(
            matches!(appended[0], siyu_store::Appended::New(_)),
            "{appended:?}"
        );
    }
    // A caller that reads what it appended waits for them to be visible.
    let visible = tokio::spawn({
        let writer = writer.clone();
        async move { writer.visible().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        held.events_applied(),
        before,
        "nothing applied while the snapshot reads"
    );
    assert!(!snapshot.is_finished(), "the snapshot waits for its read");
    assert!(
        !visible.is_finished(),
        "not visible before the snapshot lands"
    );
    drop(held);

    tokio::time::timeout(Duration::from_secs(10), visible)
        .await
        .expect("visible once the snapshot lands")
        .unwrap()
        .unwrap();
    // The deferred appends were applied, in order, when it landed.
    assert_eq!(
        t.state.0.engine.read().unwrap().events_applied(),
        before + 50
    );
    tokio::time::timeout(Duration::from_secs(10), snapshot)
        .await
        .expect("the snapshot is answered once it lands")
        .unwrap()
        .unwrap();
    let (_, p) = t.get("/v1/persons/douyin:snap50").await;
    assert_eq!(p["canonical_id"], "douyin:snap50", "{p}");

    // The snapshot holds the engine as it was when it was asked for: its
    // header's log offset (after the 8-byte magic and the u32 version) is
    // the last event applied then, before the 50.
    let file = std::fs::read(siyu_server::snapshot_path(&t.state.0.config)).unwrap();
    assert_eq!(&file[..8], b"SIYUNODE");
    let offset = u64::from_le_bytes(file[12..20].try_into().unwrap());
    let head = tokio::task::block_in_place(|| t.other_store().last_offset().unwrap());
    assert_eq!(offset + 50, head, "snapshot at {offset}, log head {head}");
}
