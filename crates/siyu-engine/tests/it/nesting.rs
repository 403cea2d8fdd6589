//! Deep nesting and long inputs: the segment language and JSON trees of
//! any depth or length give a tree or a clean error, never a panic or a
//! stack overflow; what is accepted round-trips (language, JSON, the
//! stored settings row) and evaluates.
//!
//! Parsing the language runs on a thread with a 256 KiB stack (a server
//! worker has 2 MiB), so a recursion without a limit overflows here and
//! aborts the test binary instead of passing by luck; accepted trees and
//! serde_json's own bounded reading get `ACCEPTED_STACK`.

use proptest::prelude::*;
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_engine::segment::{self, Expr, MAX_DEPTH};
use siyu_engine::Engine;

const SMALL_STACK: usize = 256 * 1024;

/// The stack an ACCEPTED tree (at most `MAX_DEPTH` levels) is used on:
/// printed, stored as JSON and read back, evaluated, explained, saved. In a
/// debug build serde's and the evaluator's frames for a 32-level tree
/// sometimes needed more than 256 KiB (an intermittent abort in about one
/// run in three), so that use gets half of a server worker's 2 MiB. Parsing
/// any input, however deep, stays on `SMALL_STACK`: that is where a
/// recursion without a limit would show.
const ACCEPTED_STACK: usize = 1024 * 1024;

/// Runs `f` on a thread with a small stack and returns its result.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    on_stack(SMALL_STACK, f)
}

/// Runs `f` on a thread with a `size`-byte stack and returns its result.
fn on_stack<T: Send + 'static>(size: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(size)
        .spawn(f)
        .expect("spawning the test thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// An engine with one person who matches most atoms.
fn engine_with_one_person() -> Engine {
    let t0 = 1_790_000_000;
    let mut e = Engine::new();
    e.start_live(t0);
    let id = Identity::parse("douyin:deep").unwrap();
    let ch = Channel::parse(id.channel()).unwrap();
    let mut buy = Event::new(t0, id.clone(), EventType::Purchase, ch.clone());
    buy.amount = 60_000;
    e.apply(1, &Event::new(t0, id, EventType::Touch, ch));
    e.apply(2, &buy);
    e
}

/// Everything a saved or previewed segment goes through: print → parse,
/// JSON inside a settings-like row → back, evaluate, explain, save.
fn use_everywhere(expr: Expr) {
    on_stack(ACCEPTED_STACK, move || use_everywhere_here(expr))
}

fn use_everywhere_here(expr: Expr) {
    assert!(
        expr.depth() <= MAX_DEPTH,
        "accepted a tree of {}",
        expr.depth()
    );
    let printed = expr.to_string();
    assert_eq!(segment::parse(&printed).as_ref(), Ok(&expr), "{printed}");
    let row = serde_json::json!({"seq": 1, "source": printed, "tree": expr}).to_string();
    let back: serde_json::Value = serde_json::from_str(&row).expect("the stored row reads back");
    let tree: Expr = serde_json::from_value(back["tree"].clone()).unwrap();
    assert_eq!(tree, expr);
    let mut engine = engine_with_one_person();
    let matching = engine.matching(&expr);
    let why = engine.explain(&expr, 0).expect("person 0 exists");
    assert_eq!(why.holds, matching.contains(&0));
    engine
        .define_segment("deep", expr, printed)
        .expect("an accepted tree is saved");
}

fn nested(prefix: &str, n: usize, atom: &str, suffix: &str) -> String {
    format!("{}{atom}{}", prefix.repeat(n), suffix.repeat(n))
}

#[test]
fn thousands_of_parentheses_or_nots_are_a_clean_error_naming_the_limit() {
    on_small_stack(|| {
        for src in [
            nested("(", 4_000, "opted_out", ")"),
            nested("not ", 6_450, "opted_out", ""),
            nested("not ", 126, "opted_out", ""),
            nested("not (", 2_000, "friended", ")"),
            nested("(friended or ", 3_000, "opted_out", ")"),
            // Unbalanced: the limit is hit before the missing `)` matters.
            "(".repeat(100_000),
            "not ".repeat(100_000),
        ] {
            let err = segment::parse(&src).unwrap_err();
            assert!(
                err.expected
                    .contains(&format!("at most {MAX_DEPTH} nested levels")),
                "{err}"
            );
        }
    });
}

#[test]
fn the_limit_is_exact_in_the_language() {
    on_small_stack(|| {
        // MAX_DEPTH - 1 `not`s around an atom: a tree of MAX_DEPTH levels.
        let deepest = nested("not ", MAX_DEPTH - 1, "opted_out", "");
        let expr = segment::parse(&deepest).unwrap();
        assert_eq!(expr.depth(), MAX_DEPTH);
        use_everywhere(expr);
        let err = segment::parse(&nested("not ", MAX_DEPTH, "opted_out", "")).unwrap_err();
        assert!(err.expected.contains("MAX_DEPTH"), "{err}");
        // Parentheses alone add no tree level but count as nesting.
        let parens = nested("(", MAX_DEPTH, "opted_out", ")");
        assert_eq!(segment::parse(&parens).unwrap().depth(), 1);
        let err = segment::parse(&nested("(", MAX_DEPTH + 1, "opted_out", ")")).unwrap_err();
        assert!(err.expected.contains("MAX_DEPTH"), "{err}");
        assert_eq!((err.line, err.column), (1, MAX_DEPTH + 1), "{err}");
        // And/or groups inside parentheses: two tree levels per pair.
        let groups = nested("(friended or tag(\"a\") and ", 15, "opted_out", ")");
        let expr = segment::parse(&groups).unwrap();
        assert_eq!(expr.depth(), 31);
        use_everywhere(expr);
        let err = segment::parse(&nested(
            "(friended or tag(\"a\") and ",
            16,
            "opted_out",
            ")",
        ))
        .unwrap_err();
        assert!(err.found.contains("33 levels"), "{err}");
    });
}

/// A JSON tree `levels` deep, alternating not / and / or by `shape`.
fn json_tree(shape: &[u8], levels: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..levels.saturating_sub(1) {
        match shape.get(i % shape.len().max(1)).copied().unwrap_or(0) % 3 {
            0 => {
                open.push_str(r#"{"kind":"not","expr":"#);
                close.insert(0, '}');
            }
            1 => {
                open.push_str(r#"{"kind":"and","all":[{"kind":"friended"},"#);
                close.insert_str(0, "]}");
            }
            _ => {
                open.push_str(r#"{"kind":"or","any":["#);
                close.insert_str(0, r#",{"kind":"opted_out"}]}"#);
            }
        }
    }
    format!(
        r#"{open}{{"kind":"cmp","prop":{{"prop":"spend","window":{{"seconds":86400}}}},"op":">=","value":100}}{close}"#
    )
}

#[test]
fn the_limit_is_exact_for_json_trees_and_the_deepest_tree_is_stored_and_read_back() {
    on_small_stack(|| {
        // The JSON-deepest shape: every level an and/or group.
        for shape in [&[1u8][..], &[2], &[0], &[0, 1, 2]] {
            let expr: Expr = serde_json::from_str(&json_tree(shape, MAX_DEPTH)).unwrap();
            assert_eq!(expr.depth(), MAX_DEPTH);
            expr.check_depth().unwrap();
            use_everywhere(expr);
            let too_deep: Expr = serde_json::from_str(&json_tree(shape, MAX_DEPTH + 1)).unwrap();
            let err = too_deep.check_depth().unwrap_err();
            assert!(err.to_string().contains("MAX_DEPTH"), "{err}");
            let err = engine_with_one_person()
                .define_segment("deep", too_deep, String::new())
                .unwrap_err();
            assert!(err.to_string().contains("at most 32 levels"), "{err}");
        }
    });
}

fn atom() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("opted_out"),
        Just("friended"),
        Just("tag(\"vip\")"),
        Just("purchases(last 90d) >= 1"),
        Just("net_spend >= 500.00"),
        Just("first_channel = \"douyin\""),
    ]
}

/// Well-formed sources nested up to thousands of levels: each level is a
/// `not`, a parenthesis, or a parenthesised and/or group.
fn nested_source() -> impl Strategy<Value = String> {
    (prop::collection::vec(0u8..4, 0..3_000), atom()).prop_map(|(levels, atom)| {
        let mut open = String::new();
        let mut close = String::new();
        for l in levels {
            match l {
                0 => open.push_str("not "),
                1 => {
                    open.push('(');
                    close.insert(0, ')');
                }
                2 => {
                    open.push_str("(friended and ");
                    close.insert(0, ')');
                }
                _ => {
                    open.push_str("(opted_out or not ");
                    close.insert_str(0, " or tag(\"x\"))");
                }
            }
        }
        format!("{open}{atom}{close}")
    })
}

/// Token soup: long, unbalanced, often meaningless.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("not "),
        Just("("),
        Just(")"),
        Just(" and "),
        Just(" or "),
        Just("opted_out"),
        Just("tag(\"a\")"),
        Just("purchases(last 2d) > 1"),
        Just("\""),
        Just("-"),
        Just("9999999999999999999999"),
        Just("\n"),
        Just("上海"),
    ];
    prop::collection::vec(token, 0..8_000).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_nesting_depth_parses_or_fails_cleanly(src in nested_source()) {
        on_small_stack(move || {
            if let Ok(expr) = segment::parse(&src) {
                use_everywhere(expr);
            }
        });
    }

    #[test]
    fn long_token_soup_parses_or_fails_cleanly(src in token_soup()) {
        on_small_stack(move || {
            if let Ok(expr) = segment::parse(&src) {
                use_everywhere(expr);
            }
        });
    }

    #[test]
    fn json_trees_of_any_depth_are_read_or_refused_cleanly(
        shape in prop::collection::vec(0u8..3, 1..8),
        levels in 1usize..3_000,
    ) {
        // serde_json refuses past 128 nested values, so its recursion is
        // bounded, but in a debug build its frames for some 128-level
        // shapes need more than 256 KiB (one run in about twelve aborted
        // the binary): reading gets the accepted-tree stack; below 128
        // levels the depth check decides before any walk of ours.
        on_stack(ACCEPTED_STACK, move || {
            let Ok(expr) = serde_json::from_str::<Expr>(&json_tree(&shape, levels)) else {
                return;
            };
            match expr.check_depth() {
                Ok(()) => use_everywhere(expr),
                Err(e) => assert!(e.depth > MAX_DEPTH),
            }
        });
    }
}
