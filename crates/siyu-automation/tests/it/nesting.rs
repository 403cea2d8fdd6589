//! Deep nesting and long inputs in journeys and templates: any depth or
//! length is a compiled definition or a clean error with its path, never
//! a panic or a stack overflow.
//!
//! Everything runs on a thread with a 256 KiB stack (a server worker has
//! 2 MiB), so a recursion without a limit overflows here and aborts the
//! test binary instead of passing by luck.

use proptest::prelude::*;
use serde_json::{json, Value};
use siyu_automation::journey::{Catalog, Journey};
use siyu_automation::machine::{self, Input, PersonView};
use siyu_automation::template::{self, Template};
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_engine::segment::{Expr, MAX_DEPTH};
use siyu_engine::Engine;
use std::collections::BTreeMap;

const SMALL_STACK: usize = 256 * 1024;
const T0: i64 = 1_790_000_000;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawning the test thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

struct Everything;
impl Catalog for Everything {
    fn segment_exists(&self, _: &str) -> bool {
        true
    }
    fn template_exists(&self, _: &str) -> bool {
        true
    }
}

/// Branch conditions evaluated for real, by an engine with one person.
struct EngineView(Engine);
impl PersonView for EngineView {
    fn holds(&self, condition: &Expr) -> bool {
        self.0.explain(condition, 0).is_some_and(|x| x.holds)
    }
    fn timezone(&self) -> Option<String> {
        None
    }
}

fn one_person() -> EngineView {
    let mut e = Engine::new();
    e.start_live(T0);
    let id = Identity::parse("wecom:a").unwrap();
    let ch = Channel::parse(id.channel()).unwrap();
    e.apply(1, &Event::new(T0, id, EventType::AddFriend, ch));
    EngineView(e)
}

/// A journey whose trigger and branch both read `condition`.
fn branching(condition: &str) -> Value {
    json!({
        "name": "deep",
        "trigger": {"type": "event", "event": "add_friend", "where": condition},
        "start": "b",
        "steps": {
            "b": {"type": "branch", "condition": condition, "then": "yes", "else": "no"},
            "yes": {"type": "add_tag", "tag": "yes"},
            "no": {"type": "add_tag", "tag": "no"}
        }
    })
}

/// Parses, compiles and (when valid) runs a journey from its JSON text:
/// the path a `PUT /v1/journeys/{name}` body takes, then a stored one.
fn compile_and_run(text: &str) -> Result<(), String> {
    let j = Journey::from_json(text.as_bytes()).map_err(|e| e.to_string())?;
    let compiled = j.compile(1, &Everything).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Stored as JSON and read back at the next start.
    let stored = serde_json::to_string(&compiled.def).unwrap();
    let back: Value = serde_json::from_str(&stored).expect("an accepted journey reads back");
    assert_eq!(
        serde_json::from_value::<Journey>(back).unwrap(),
        compiled.def
    );
    let view = one_person();
    let mut e = machine::enroll(&compiled, 1, "wecom:a", T0);
    let actions = machine::run(&compiled, &mut e, Input::Tick, &view, T0);
    // None of these journeys waits: each runs to its end with effects.
    assert!(e.is_done(), "{:?}", e.state);
    assert!(!actions.is_empty());
    Ok(())
}

#[test]
fn a_branch_condition_thousands_deep_is_an_error_at_its_path() {
    on_small_stack(|| {
        for condition in [
            format!("{}friended{}", "(".repeat(4_000), ")".repeat(4_000)),
            format!("{}friended", "not ".repeat(6_450)),
            format!("{}friended", "not ".repeat(MAX_DEPTH)),
        ] {
            let err = compile_and_run(&branching(&condition).to_string()).unwrap_err();
            assert!(err.contains("steps.b.condition"), "{err}");
            assert!(err.contains("trigger.where"), "{err}");
            assert!(
                err.contains(&format!("at most {MAX_DEPTH} nested levels")),
                "{err}"
            );
        }
        let deepest = format!("{}friended", "not ".repeat(MAX_DEPTH - 1));
        compile_and_run(&branching(&deepest).to_string()).unwrap();
    });
}

/// `depth` nested arrays around a number, as JSON text.
fn nested_json(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn with_payload(payload: &str) -> String {
    format!(
        r#"{{"name":"p","trigger":{{"type":"event","event":"add_friend"}},"start":"w","steps":{{"w":{{"type":"webhook","payload":{payload},"next":"t"}},"t":{{"type":"set_trait","name":"x","value":{payload}}}}}}}"#
    )
}

/// A chain of `n` steps, each leading to the next.
fn chain(n: usize) -> String {
    let steps: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            let step = if i + 1 < n {
                json!({"type": "add_tag", "tag": format!("t{i}"), "next": format!("s{}", i + 1)})
            } else {
                json!({"type": "exit"})
            };
            (format!("s{i}"), step)
        })
        .collect();
    json!({"name": "chain", "trigger": {"type": "event", "event": "add_friend"}, "start": "s0", "steps": steps})
        .to_string()
}

#[test]
fn deep_json_payloads_and_long_step_chains_are_bounded() {
    on_small_stack(|| {
        // serde_json refuses past its limit, with the position.
        let err = compile_and_run(&with_payload(&nested_json(5_000))).unwrap_err();
        assert!(err.contains("recursion limit"), "{err}");
        // The deepest payload the body parser takes is compiled, stored, read back.
        compile_and_run(&with_payload(&nested_json(120))).unwrap();
        // Steps are a graph walked with explicit stacks, not recursion.
        compile_and_run(&chain(5_000)).unwrap();
    });
}

fn condition_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("not "),
        Just("("),
        Just(")"),
        Just(" and "),
        Just(" or "),
        Just("friended"),
        Just("opted_out"),
        Just("in_segment(\"vip\")"),
        Just("purchases(last 3d) >= 1"),
    ];
    prop_oneof![
        prop::collection::vec(token, 0..4_000).prop_map(|t| t.concat()),
        (0usize..3_000, any::<bool>()).prop_map(|(n, parens)| if parens {
            format!("{}friended{}", "(".repeat(n), ")".repeat(n))
        } else {
            format!("{}friended", "not ".repeat(n))
        }),
    ]
}

fn template_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{{"),
        Just("}}"),
        Just("{"),
        Just("}"),
        Just(" name "),
        Just("trait.city"),
        Just(" | default: "),
        Just("\"朋友\""),
        Just("'"),
        Just("“"),
        Just("\\"),
        Just("\n"),
        Just("你好"),
    ];
    prop::collection::vec(token, 0..20_000).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_branch_condition_compiles_or_fails_cleanly(condition in condition_strategy()) {
        on_small_stack(move || {
            let _ = compile_and_run(&branching(&condition).to_string());
        });
    }

    #[test]
    fn any_payload_depth_compiles_or_fails_cleanly(depth in 0usize..3_000) {
        on_small_stack(move || {
            let _ = compile_and_run(&with_payload(&nested_json(depth)));
        });
    }

    #[test]
    fn long_templates_compile_or_fail_cleanly_and_round_trip(body in template_strategy()) {
        on_small_stack(move || {
            let t = Template {
                name: "t".into(),
                body: body.clone(),
                subject: Some(body),
                html: None,
                variants: BTreeMap::new(),
                class: siyu_automation::guard::MessageClass::Marketing,
                wechat_template: None,
            };
            if let Ok(c) = template::compile(&t) {
                let again = template::compile(&c.to_template()).expect("a printed template compiles");
                assert_eq!(again.to_template(), c.to_template());
                let vars: BTreeMap<String, String> = [("name".to_string(), "王芳".to_string())].into();
                let _ = c.render("wecom", &vars);
            }
        });
    }
}
