//! Message → purchase attribution over a real log (SQLite in memory) and
//! an engine built from the same events: a purchase within the window
//! after a read of the journey's message is credited to it, once, across
//! stitched identities; reads name their message by key or fall back to
//! the person's latest send.

use serde_json::{json, Value};
use siyu_commerce::attribution::{journey_conversions, JourneyConversions, TemplateConversions};
use siyu_domain::parse_json_event;
use siyu_engine::Engine;
use siyu_store::{Appended, SqliteStore, Store};

const T: i64 = 1_793_000_000;
const DAY: i64 = 86_400;

fn sent(id: &str, who: &str, ts: i64, journey: &str, key: &str, template: &str) -> Value {
    json!({"id": id, "ts": ts, "identity": who, "type": "message_sent",
        "properties": {"journey": journey, "key": key, "template": template}})
}

fn read(id: &str, who: &str, ts: i64, key: Option<&str>) -> Value {
    let mut v = json!({"id": id, "ts": ts, "identity": who, "type": "message_read"});
    if let Some(k) = key {
        v["properties"] = json!({"key": k});
    }
    v
}

fn purchase(id: &str, who: &str, ts: i64, cents: i64) -> Value {
    json!({"id": id, "ts": ts, "identity": who, "type": "purchase", "amount": cents})
}

/// The store holding `events` and the engine that applied them at their
/// log offsets.
fn log(events: &[Value]) -> (SqliteStore, Engine) {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut engine = Engine::for_log();
    let parsed: Vec<_> = events
        .iter()
        .map(|v| parse_json_event(v).unwrap())
        .collect();
    for (e, r) in parsed.iter().zip(store.append(&parsed).unwrap()) {
        let Appended::New(offset) = r else {
            panic!("{e:?} twice")
        };
        engine.apply(offset, e);
    }
    (store, engine)
}

#[test]
fn purchases_after_a_read_are_credited_to_its_message_once() {
    let (mut store, engine) = log(&first_log());
    check_first_log(&mut store, &engine);
}

/// The events of [`purchases_after_a_read_are_credited_to_its_message_once`],
/// in the order that test stores them.
fn first_log() -> Vec<Value> {
    vec![
        // a: read by key, then buys on Taobao (stitched to WeCom) twice;
        // one purchase before the read is not credited.
        json!({"id": "i1", "ts": T, "identity": "wecom:a", "type": "identify", "ref": "taobao:a"}),
        purchase("p0", "taobao:a", T - 10, 100),
        sent("s1", "wecom:a", T, "j", "k1", "t1"),
        read("r1", "wecom:a", T + 100, Some("k1")),
        purchase("p1", "taobao:a", T + 1_000, 5_000),
        purchase("p2", "taobao:a", T + 2 * DAY, 700),
        // b: a read without key takes the latest send before it; the
        // purchase falls outside the 7-day window.
        sent("s2", "wecom:b", T, "j", "k2", "t2"),
        read("r2", "wecom:b", T + 50, None),
        purchase("p3", "wecom:b", T + 8 * DAY, 9_000),
        // c: another journey's message, read and followed by a purchase.
        sent("s3", "wecom:c", T, "other", "k3", "t1"),
        read("r3", "wecom:c", T + 10, Some("k3")),
        purchase("p4", "wecom:c", T + 20, 300),
        // d: a read naming a key nobody sent counts for nothing.
        read("r4", "wecom:d", T + 10, Some("nope")),
        purchase("p5", "wecom:d", T + 20, 400),
    ]
}

fn check_first_log(store: &mut SqliteStore, engine: &Engine) {
    let got = journey_conversions(store, engine, "j", 7 * DAY).unwrap();
    let template = |sends, reads, conversions, revenue| TemplateConversions {
        sends,
        reads,
        conversions,
        revenue,
    };
    assert_eq!(
        got,
        JourneyConversions {
            sends: 2,
            reads: 2,
            conversions: 2,
            revenue: 5_700,
            by_template: [
                ("t1".to_string(), template(1, 1, 2, 5_700)),
                ("t2".to_string(), template(1, 1, 0, 0)),
            ]
            .into(),
        }
    );
    // The copied identity table (what the server passes, holding no
    // engine lock during the pass) answers the same.
    let copied = journey_conversions(store, &engine.identity_index(), "j", 7 * DAY).unwrap();
    assert_eq!(copied, got);
    // A window too short for any purchase credits none.
    let short = journey_conversions(store, engine, "j", 60).unwrap();
    assert_eq!((short.sends, short.reads, short.conversions), (2, 2, 0));
    // An unknown journey: nothing at all.
    assert_eq!(
        journey_conversions(store, engine, "none", 7 * DAY).unwrap(),
        JourneyConversions::default()
    );
}

#[test]
fn reads_and_purchases_count_in_event_time_whatever_the_log_order() {
    // Newest first: every purchase stored before the read it followed,
    // every read before the send it answers.
    let mut reversed = first_log();
    reversed.reverse();
    let (mut store, engine) = log(&reversed);
    check_first_log(&mut store, &engine);
    // Purchases imported last, as a marketplace export arrives.
    let (orders, mut rest): (Vec<Value>, Vec<Value>) = first_log()
        .into_iter()
        .partition(|e| e["type"] == "purchase");
    rest.extend(orders);
    let (mut store, engine) = log(&rest);
    check_first_log(&mut store, &engine);
}

#[test]
fn each_purchase_goes_to_the_latest_read_before_it() {
    let (mut store, engine) = log(&[
        sent("s1", "wecom:a", T, "j", "k1", "first"),
        sent("s2", "wecom:a", T + 100, "j", "k2", "second"),
        read("r1", "wecom:a", T + 50, Some("k1")),
        read("r2", "wecom:a", T + 150, Some("k2")),
        purchase("p1", "wecom:a", T + 120, 10),
        purchase("p2", "wecom:a", T + 200, 20),
    ]);
    let got = journey_conversions(&mut store, &engine, "j", DAY).unwrap();
    assert_eq!((got.conversions, got.revenue), (2, 30));
    assert_eq!(
        (
            got.by_template["first"].revenue,
            got.by_template["second"].revenue
        ),
        (10, 20)
    );
}
