//! Journey validation (faults with their paths) and the step machine.

use serde_json::json;
use siyu_automation::journey::{Catalog, Compiled, Journey};
use siyu_automation::machine::{
    self, Action, Enrollment, EventView, Input, LastEntry, PersonView, State,
};
use siyu_engine::segment::Expr;

struct Known;
impl Catalog for Known {
    fn segment_exists(&self, name: &str) -> bool {
        name == "vip"
    }
    fn template_exists(&self, name: &str) -> bool {
        matches!(name, "welcome" | "coupon")
    }
}

fn compile(v: serde_json::Value) -> Result<Compiled, Vec<String>> {
    let j: Journey = serde_json::from_value(v).map_err(|e| vec![e.to_string()])?;
    j.compile(1, &Known)
        .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect())
}

fn welcome() -> serde_json::Value {
    json!({
        "name": "welcome",
        "trigger": {"type": "event", "event": "add_friend", "channel": "wecom"},
        "start": "hello",
        "steps": {
            "hello": {"type": "send", "template": "welcome", "next": "wait"},
            "wait": {"type": "wait_for_event", "event": "purchase", "timeout": "3d",
                     "next": "thanks", "on_timeout": "vip?"},
            "thanks": {"type": "add_tag", "tag": "converted"},
            "vip?": {"type": "branch", "condition": "in_segment(\"vip\")", "then": "call", "else": "ab"},
            "call": {"type": "task", "title": "call them", "due": "1d"},
            "ab": {"type": "split", "arms": [{"weight": 1, "next": "coupon"}, {"weight": 1}]},
            "coupon": {"type": "send", "template": "coupon", "next": "pause"},
            "pause": {"type": "wait", "duration": "2h", "next": "bye"},
            "bye": {"type": "exit"}
        }
    })
}

#[test]
fn a_valid_journey_compiles() {
    let j = compile(welcome()).unwrap();
    assert_eq!(j.def.steps.len(), 9);
    // The JSON form round-trips.
    let back: Journey = serde_json::from_value(serde_json::to_value(&j.def).unwrap()).unwrap();
    assert_eq!(back, j.def);
}

#[test]
fn faults_are_reported_with_their_paths() {
    let mut v = welcome();
    v["steps"]["hello"]["next"] = json!("nowhere");
    v["steps"]["coupon"]["template"] = json!("missing");
    v["steps"]["vip?"]["condition"] = json!("in_segment(\"gold\") and purchases >=");
    v["steps"]["pause"]["duration"] = json!("soon");
    v["trigger"] = json!({"type": "schedule", "cron": "61 * * * *"});
    v["steps"]["hello"]["kind"] = json!("moment");
    let errs = compile(v).unwrap_err();
    let has = |p: &str| errs.iter().any(|e| e.starts_with(p));
    assert!(has("steps.hello.kind: a journey sends"), "{errs:#?}");
    assert!(has("steps.hello.next: names no step"), "{errs:#?}");
    assert!(
        has("steps.coupon.template: unknown template \"missing\""),
        "{errs:#?}"
    );
    assert!(has("steps.vip?.condition"), "{errs:#?}");
    assert!(has("steps.pause.duration"), "{errs:#?}");
    assert!(has("trigger.cron"), "{errs:#?}");
}

#[test]
fn unknown_segments_and_cycles_are_rejected() {
    let mut v = welcome();
    v["steps"]["vip?"]["condition"] = json!("in_segment(\"gold\")");
    let errs = compile(v).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("unknown segment \"gold\"")),
        "{errs:#?}"
    );

    let mut v = welcome();
    v["steps"]["bye"] = json!({"type": "add_tag", "tag": "x", "next": "pause"});
    let errs = compile(v).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("cycle") && e.contains("pause → bye → pause")),
        "{errs:#?}"
    );

    let mut v = welcome();
    v["steps"]["orphan"] = json!({"type": "exit"});
    v["start"] = json!("nope");
    let errs = compile(v).unwrap_err();
    assert!(errs.iter().any(|e| e.starts_with("start:")), "{errs:#?}");

    let mut v = welcome();
    v["steps"]["orphan"] = json!({"type": "exit"});
    let errs = compile(v).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("steps.orphan: is never reached")),
        "{errs:#?}"
    );

    let v = json!({"name": "x", "trigger": {"type": "segment_entry", "segment": "nope"}, "start": "a",
                   "steps": {"a": {"type": "exit"}}, "surprise": 1});
    assert!(compile(v).unwrap_err()[0].contains("unknown field `surprise`"));
}

struct View {
    vip: bool,
}
impl PersonView for View {
    fn holds(&self, _: &Expr) -> bool {
        self.vip
    }
    fn timezone(&self) -> Option<String> {
        Some("Asia/Shanghai".into())
    }
}

const T0: i64 = 1_790_000_000;

fn purchase() -> Input<'static> {
    Input::Event(EventView {
        intent: None,
        event_type: "purchase",
        channel: "taobao",
        name: None,
        text: None,
    })
}

#[test]
fn the_machine_runs_until_it_waits_and_takes_the_right_branches() {
    let j = compile(welcome()).unwrap();
    let mut e = machine::enroll(&j, 7, "wecom:a", T0);
    let acts = machine::run(&j, &mut e, Input::Tick, &View { vip: false }, T0);
    assert_eq!(acts.len(), 1);
    assert!(
        matches!(&acts[0], Action::Send { key, template, .. } if key == "j/welcome/v1/e7/hello" && template == "welcome")
    );
    assert_eq!(
        e.state,
        State::AwaitingEvent {
            until: T0 + 3 * 86400
        }
    );
    // A purchase before the timeout goes to `next`.
    let mut bought = e.clone();
    let acts = machine::run(&j, &mut bought, purchase(), &View { vip: false }, T0 + 100);
    assert_eq!(
        acts,
        vec![Action::AddTag {
            key: "j/welcome/v1/e7/thanks".into(),
            tag: "converted".into()
        }]
    );
    assert!(bought.is_done());
    // Another event type changes nothing.
    let mut other = e.clone();
    let comment = Input::Event(EventView {
        intent: None,
        event_type: "comment",
        channel: "douyin",
        name: None,
        text: Some("hi"),
    });
    assert!(machine::run(&j, &mut other, comment, &View { vip: false }, T0 + 100).is_empty());
    assert_eq!(other, e);
    // The timeout: a VIP gets a task due a day later.
    let mut vip = e.clone();
    let at = T0 + 3 * 86400;
    let acts = machine::run(&j, &mut vip, Input::Tick, &View { vip: true }, at);
    assert!(
        matches!(&acts[0], Action::Task { due: Some(d), .. } if *d == at + 86400),
        "{acts:?}"
    );
    assert!(vip.is_done());
    // A non-VIP goes down the split; the arm is stable for this enrollment.
    let mut a = e.clone();
    let first = machine::run(&j, &mut a, Input::Tick, &View { vip: false }, at);
    let mut b = e.clone();
    assert_eq!(
        machine::run(&j, &mut b, Input::Tick, &View { vip: false }, at),
        first
    );
    assert_eq!(a, b);
}

#[test]
fn splits_follow_their_weights() {
    let j = compile(welcome()).unwrap();
    let mut coupon = 0;
    for id in 0..2000u64 {
        let mut e = machine::enroll(&j, id, "wecom:a", T0);
        e.step = "ab".into();
        let acts = machine::run(&j, &mut e, Input::Tick, &View { vip: false }, T0);
        if !acts.is_empty() {
            coupon += 1;
            assert!(matches!(e.state, State::Sleeping { until, .. } if until == T0 + 7200));
        }
    }
    assert!(
        (900..1100).contains(&coupon),
        "{coupon} of 2000 took the 50% arm"
    );
}

#[test]
fn reentry_rules() {
    let mut v = welcome();
    let once = compile(v.clone()).unwrap();
    let done = Some(LastEntry {
        entered_at: T0,
        active: false,
    });
    let active = Some(LastEntry {
        entered_at: T0,
        active: true,
    });
    assert!(machine::may_enter(&once, None, T0));
    assert!(!machine::may_enter(&once, done, T0 + 1_000_000));
    v["reentry"] = json!("every_time");
    let every = compile(v.clone()).unwrap();
    assert!(machine::may_enter(&every, done, T0));
    assert!(!machine::may_enter(&every, active, T0));
    v["reentry"] = json!({"cooldown": "7d"});
    let cool = compile(v.clone()).unwrap();
    assert!(!machine::may_enter(&cool, done, T0 + 7 * 86400 - 1));
    assert!(machine::may_enter(&cool, done, T0 + 7 * 86400));
    v["enabled"] = json!(false);
    assert!(!machine::may_enter(&compile(v).unwrap(), None, T0));
}

#[test]
fn event_triggers_filter_on_type_channel_and_text() {
    let mut v = welcome();
    v["trigger"] = json!({"type": "event", "event": "comment", "text_contains": "多少钱"});
    let j = compile(v).unwrap();
    let ev = |channel, text| EventView {
        intent: None,
        event_type: "comment",
        channel,
        name: None,
        text: Some(text),
    };
    assert!(machine::event_fires(
        &j,
        &ev("douyin", "请问多少钱？"),
        &View { vip: false }
    ));
    assert!(!machine::event_fires(
        &j,
        &ev("douyin", "好看"),
        &View { vip: false }
    ));
    let j = compile(welcome()).unwrap();
    let add = |channel| EventView {
        intent: None,
        event_type: "add_friend",
        channel,
        name: None,
        text: None,
    };
    assert!(machine::event_fires(
        &j,
        &add("wecom"),
        &View { vip: false }
    ));
    assert!(!machine::event_fires(
        &j,
        &add("wechat"),
        &View { vip: false }
    ));
}

/// `intents` on an event trigger: only messages of those intents fire it
/// (by id or Chinese name); a message without an intent never does.
#[test]
fn event_triggers_filter_on_the_message_s_intent() {
    use siyu_domain::intent::Intent;
    let mut v = welcome();
    v["trigger"] = json!({"type": "event", "event": "comment", "intents": ["购买意向", "price"]});
    let j = compile(v.clone()).unwrap();
    let ev = |intent| EventView {
        intent,
        event_type: "comment",
        channel: "wecom",
        name: None,
        text: Some("拍了"),
    };
    let vip = View { vip: false };
    assert!(machine::event_fires(&j, &ev(Some(Intent::Buy)), &vip));
    assert!(machine::event_fires(&j, &ev(Some(Intent::Price)), &vip));
    assert!(!machine::event_fires(&j, &ev(Some(Intent::Other)), &vip));
    assert!(!machine::event_fires(&j, &ev(None), &vip));
    v["trigger"]["intents"] = json!(["nope"]);
    assert!(serde_json::from_value::<siyu_automation::journey::Journey>(v).is_err());
}

#[test]
fn a_missing_step_in_an_old_version_ends_cleanly() {
    let j = compile(welcome()).unwrap();
    let mut e: Enrollment = machine::enroll(&j, 1, "wecom:a", T0);
    e.step = "gone".into();
    assert!(machine::run(&j, &mut e, Input::Tick, &View { vip: false }, T0).is_empty());
    assert!(e.is_done());
}
