//! Every body parser of the server, fed deep nesting and long inputs: each
//! answers Ok or a clean error, never a panic or a stack overflow. The
//! parsers run on a 256 KiB stack (a tenth of a server worker's), so a
//! missing depth limit fails here instead of aborting a production process.
//!
//! Covered: wire-format event bodies (JSON array and NDJSON), Segment
//! messages, the spend CSV, order objects, order CSV files and order
//! mapping TOML. The segment language, journeys and templates have their
//! own such tests (`siyu-engine`/`siyu-automation` `tests/it/nesting.rs`).

use proptest::prelude::*;
use serde_json::Value;
use siyu_commerce::{orders, spend};
use siyu_server::ingest;

/// Runs `f` on a thread with a small stack; a panic or overflow fails the test.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the parser panicked");
}

/// `depth` nested containers (`[`/`{"k":`) around `leaf`, closed or not.
fn nested(depth: usize, objects: bool, leaf: &str, closed: bool) -> String {
    let (open, close) = if objects {
        ("{\"k\":", "}")
    } else {
        ("[", "]")
    };
    let mut s = open.repeat(depth);
    s.push_str(leaf);
    if closed {
        s.push_str(&close.repeat(depth));
    }
    s
}

fn event_with(field: &str, value: &str) -> String {
    format!(
        r#"{{"id":"e1","ts":"2026-10-31T08:00:00Z","identity":"douyin:9f3a01","type":"touch","{field}":{value}}}"#
    )
}

#[test]
fn event_bodies_thousands_deep_are_refused_cleanly() {
    on_small_stack(|| {
        for depth in [100, 127, 128, 129, 1_000, 100_000] {
            for objects in [false, true] {
                for closed in [false, true] {
                    let deep = nested(depth, objects, "1", closed);
                    // The body itself, an event field, NDJSON, Segment.
                    let _ = ingest::parse_events(deep.as_bytes(), false);
                    let _ = ingest::parse_events(deep.as_bytes(), true);
                    for field in ["properties", "traits", "text"] {
                        let body = format!("[{}]", event_with(field, &deep));
                        if let Ok(p) = ingest::parse_events(body.as_bytes(), false) {
                            assert!(p.events.is_empty(), "{field} {depth} deep was accepted");
                        }
                        let line = event_with(field, &deep);
                        let _ = ingest::parse_events(line.as_bytes(), true);
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&format!(
                        r#"{{"type":"track","event":"x","userId":"u1","properties":{deep}}}"#
                    )) {
                        let _ = ingest::segment_message(
                            &v,
                            None,
                            &ingest::Received::at(1_790_000_000_000),
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn order_and_spend_files_with_deep_or_long_input_are_refused_cleanly() {
    on_small_stack(|| {
        let statuses = orders::StatusTable::default();
        for depth in [10, 127, 128, 10_000] {
            let deep = nested(depth, true, "\"x\"", true);
            for field in ["buyer", "amount", "status", "paid_at", "order_id", "phone"] {
                let text = format!(r#"{{"{field}":{deep}}}"#);
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    let _ = orders::parse_order(&v, None, &statuses);
                }
            }
        }
        let long = "9".repeat(1 << 20);
        let _ = spend::parse_spend_csv(&format!("day,channel,spend\n2026-10-01,douyin,{long}\n"));
        let _ = orders::csv_records(&format!("\"{long}"));
        let _ = orders::csv_records(&"\"".repeat(1 << 16));
        let _ = orders::yuan_to_cents(&long);
        let _ = orders::normalize_phone(&long);
    });
}

#[test]
fn toml_files_nested_deeply_are_refused_cleanly() {
    on_small_stack(|| {
        for depth in [10, 80, 127, 128, 10_000] {
            // Repeated tables are not nesting: a clean error of its own.
            assert!(orders::Mapping::from_toml(&"[a]\n".repeat(depth)).is_err() || depth == 1);
            for text in [
                format!("x = {}", "[".repeat(depth)),
                format!("x = {}1{}", "[".repeat(depth), "]".repeat(depth)),
                format!("x = {}", "{a=".repeat(depth)),
                format!("x = {}1{}", "{a=".repeat(depth), "}".repeat(depth)),
            ] {
                let mapping = orders::Mapping::from_toml(&text);
                if depth > siyu_server::config::MAX_TOML_DEPTH {
                    let err = mapping.expect_err("too deep is an error");
                    assert!(err.contains("nest"), "{err}");
                }
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary nesting of arrays and objects, closed or cut short, in any
    /// field of an event or as the body: never a panic or an overflow.
    #[test]
    fn any_nesting_in_any_event_field_is_handled(
        shape in proptest::collection::vec(any::<bool>(), 0..3_000),
        field in prop_oneof![Just("properties"), Just("traits"), Just("text"), Just("amount"), Just("ts"), Just("identity")],
        closed in any::<bool>(),
    ) {
        let mut deep = String::new();
        for &obj in &shape { deep.push_str(if obj { "{\"k\":" } else { "[" }); }
        deep.push('0');
        if closed { for &obj in shape.iter().rev() { deep.push(if obj { '}' } else { ']' }); } }
        let body = format!("[{}]", event_with(field, &deep));
        let line = event_with(field, &deep);
        on_small_stack(move || {
            let _ = ingest::parse_events(body.as_bytes(), false);
            let _ = ingest::parse_events(line.as_bytes(), true);
        });
    }

    /// Long arbitrary text in the string fields and as whole bodies.
    #[test]
    fn long_arbitrary_input_is_handled(
        s in "\\PC{0,2000}",
        repeat in 1usize..200,
    ) {
        let long = s.repeat(repeat);
        let escaped = serde_json::to_string(&long).unwrap();
        let bodies = vec![
            long.clone(),
            format!("[{}]", event_with("text", &escaped)),
            format!("[{}]", event_with("properties", &format!("{{\"note\":{escaped}}}"))),
            format!(r#"[{{"id":{escaped},"ts":"2026-10-31T08:00:00Z","identity":"douyin:{}","type":"touch"}}]"#, long.len()),
        ];
        on_small_stack(move || {
            for b in &bodies {
                let _ = ingest::parse_events(b.as_bytes(), false);
                let _ = ingest::parse_events(b.as_bytes(), true);
            }
            let _ = spend::parse_spend_csv(&long);
            let _ = orders::csv_records(&long);
            let _ = orders::Mapping::from_toml(&long);
        });
    }
}
