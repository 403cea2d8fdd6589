//! Journey (SOP) definitions: the versioned JSON an operator saves, and
//! the checks that reject a bad one at save time with the path of the fault.
//!
//! A journey is a trigger, a re-entry rule and a graph of named steps. The
//! graph must be acyclic: every step runs at most once per enrollment, which
//! is what makes "one idempotency key per step execution" a stable key
//! (`machine::step_key`). Waiting is a step (`wait`, `wait_until`,
//! `wait_for_event`), so loops are not needed; a repeating SOP is a
//! scheduled or re-entering journey instead.
//!
//! ```json
//! {"name": "welcome", "trigger": {"type": "event", "event": "add_friend", "channel": "wecom"},
//!  "reentry": "once", "start": "hello",
//!  "steps": {
//!    "hello": {"type": "send", "template": "welcome", "next": "wait1"},
//!    "wait1": {"type": "wait_for_event", "event": "purchase", "timeout": "3d",
//!              "next": "thanks", "on_timeout": "nudge"},
//!    "thanks": {"type": "add_tag", "tag": "converted"},
//!    "nudge": {"type": "send", "template": "coupon"}}}
//! ```

use crate::guard::{MessageClass, SendKind};
use crate::schedule::{self, Cron, TimeOfDay, Tz};
use serde::{Deserialize, Serialize};
use siyu_engine::segment::{self, Expr};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A journey as saved: the wire and storage form (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    /// Taken from the path when saved through the API.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub reentry: Reentry,
    /// The first step.
    pub start: String,
    pub steps: BTreeMap<String, Step>,
    /// A paused journey enrolls nobody; persons already in it go on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Archived (`DELETE /v1/journeys/{name}`): enrolls nobody, hidden
    /// from the list unless asked for; its versions, enrollments and
    /// report stay. Saving the journey again restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

fn yes() -> bool {
    true
}

/// What enrolls a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// An event of this type (optionally: channel, custom-event name, text
    /// containing a string, and a condition on the person in the segment
    /// language).
    Event {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text_contains: Option<String>,
        /// Only inbound messages whose intent (`properties.intent`) is one
        /// of these (ids or Chinese names, kept as ids).
        #[serde(
            default,
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "siyu_domain::intent::deserialize_lenient_vec"
        )]
        intents: Vec<siyu_domain::intent::Intent>,
        #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    SegmentEntry {
        segment: String,
    },
    SegmentExit {
        segment: String,
    },
    /// Every member of `segment` (or everyone when absent) at each firing
    /// of `cron` in `timezone` (default Asia/Shanghai).
    Schedule {
        cron: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segment: Option<String>,
    },
    /// On the person's birthday (trait `birthday`), at `at` in their timezone.
    Birthday {
        #[serde(default = "nine")]
        at: String,
    },
    /// `days` after the person's first purchase.
    AfterFirstPurchase {
        days: u32,
    },
    /// After `days` without any event from the person.
    Silent {
        days: u32,
    },
}

fn nine() -> String {
    "09:00".into()
}

/// Whether a person may enter again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// At most one enrollment per person, ever.
    #[default]
    Once,
    /// Whenever the trigger fires and the person is not already in it.
    EveryTime,
    /// Like `every_time`, but not within this long of the last entry ("7d").
    Cooldown(String),
}

/// Where a step goes next; absent = the journey ends there.
pub type Next = Option<String>;

/// One step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Wait a duration ("2h", "3d").
    Wait {
        duration: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    /// Wait until the next `time` ("10:00") in the person's timezone.
    WaitUntil {
        time: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    /// Wait for an event from the person; `on_timeout` after `timeout`.
    WaitForEvent {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        timeout: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_timeout: Next,
    },
    /// A condition in the segment language (`in_segment("vip")`,
    /// `purchases >= 2`, `prop.visits > 3`).
    Branch {
        condition: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then: Next,
        #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
        otherwise: Next,
    },
    /// A/B: each person goes down one arm, chosen by weight (stable per
    /// enrollment).
    Split {
        arms: Vec<Arm>,
    },
    /// Send a template through the guardrails.
    Send {
        template: String,
        /// The channel; absent = the template's first variant channel the
        /// person can be reached on, else `wecom`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// Overrides the template's class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<MessageClass>,
        #[serde(default = "direct")]
        kind: SendKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    AddTag {
        tag: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    RemoveTag {
        tag: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    SetTrait {
        name: String,
        value: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    /// A follow-up task for the person's operator.
    Task {
        title: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
        /// Due this long after creation ("1d").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    /// POST the person and `payload` to the webhook connector (signed).
    Webhook {
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        payload: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Next,
    },
    Exit,
}

fn direct() -> SendKind {
    SendKind::Direct
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Next,
}

impl Step {
    /// The steps this one can go to, with the field naming each.
    pub fn successors(&self) -> Vec<(String, &str)> {
        fn one<'a>(field: &str, n: &'a Next) -> Option<(String, &'a str)> {
            n.as_deref().map(|s| (field.to_string(), s))
        }
        match self {
            Step::Wait { next, .. }
            | Step::WaitUntil { next, .. }
            | Step::Send { next, .. }
            | Step::AddTag { next, .. }
            | Step::RemoveTag { next, .. }
            | Step::SetTrait { next, .. }
            | Step::Task { next, .. }
            | Step::Webhook { next, .. } => one("next", next).into_iter().collect(),
            Step::WaitForEvent {
                next, on_timeout, ..
            } => one("next", next)
                .into_iter()
                .chain(one("on_timeout", on_timeout))
                .collect(),
            Step::Branch {
                then, otherwise, ..
            } => one("then", then)
                .into_iter()
                .chain(one("else", otherwise))
                .collect(),
            Step::Split { arms } => arms
                .iter()
                .enumerate()
                .filter_map(|(i, a)| one(&format!("arms[{i}].next"), &a.next))
                .collect(),
            Step::Exit => Vec::new(),
        }
    }
}

/// A fault in a definition: where (a JSON-ish path) and what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct JourneyError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for JourneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a definition may refer to, answered by the server.
pub trait Catalog {
    fn segment_exists(&self, name: &str) -> bool;
    fn template_exists(&self, name: &str) -> bool;
}

/// A validated journey with everything pre-parsed for the step machine.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub def: Journey,
    pub version: u32,
    pub trigger: CompiledTrigger,
    pub reentry_cooldown: Option<i64>,
    /// Pre-parsed parts of steps, by step name.
    pub(crate) durations: HashMap<String, i64>,
    pub(crate) times: HashMap<String, TimeOfDay>,
    pub(crate) conditions: HashMap<String, Expr>,
}

/// The trigger with its parts parsed.
#[derive(Clone, Debug)]
pub enum CompiledTrigger {
    Event {
        event: String,
        channel: Option<String>,
        name: Option<String>,
        text_contains: Option<String>,
        intents: Vec<siyu_domain::intent::Intent>,
        condition: Option<Expr>,
    },
    SegmentEntry(String),
    SegmentExit(String),
    Schedule {
        cron: Cron,
        tz: Tz,
        segment: Option<String>,
    },
    Birthday(TimeOfDay),
    AfterFirstPurchase(u32),
    Silent(u32),
}

const EVENT_TYPES: &[&str] = &[
    "touch",
    "comment",
    "follow",
    "add_friend",
    "identify",
    "join_group",
    "leave_group",
    "message_sent",
    "message_read",
    "purchase",
    "refund",
    "referral_signup",
    "opt_out",
    "custom",
];

/// A name for journeys, steps, tags: printable, no path separators.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 64
        && !s.chars().any(|c| c.is_control() || c == '/' || c == ':')
}

impl Journey {
    /// Parses the JSON form; serde's message names the field and position.
    pub fn from_json(body: &[u8]) -> Result<Journey, JourneyError> {
        serde_json::from_slice(body).map_err(|e| JourneyError {
            path: format!("line {} column {}", e.line(), e.column()),
            message: e.to_string(),
        })
    }

    /// Checks everything that can be checked at save time and returns every
    /// fault found (not just the first), each with its path.
    pub fn compile(
        self,
        version: u32,
        catalog: &dyn Catalog,
    ) -> Result<Compiled, Vec<JourneyError>> {
        let mut errs = Vec::new();
        let mut err = |path: &str, message: String| {
            errs.push(JourneyError {
                path: path.to_string(),
                message,
            })
        };
        if !valid_name(&self.name) {
            err(
                "name",
                "must be 1–64 characters without '/', ':' or control characters".into(),
            );
        }
        let trigger = compile_trigger(&self.trigger, catalog, &mut err);
        let reentry_cooldown = match &self.reentry {
            Reentry::Cooldown(d) => match schedule::parse_duration(d) {
                Ok(s) if s > 0 => Some(s),
                Ok(_) => {
                    err("reentry.cooldown", "must be longer than 0s".into());
                    None
                }
                Err(e) => {
                    err("reentry.cooldown", e.to_string());
                    None
                }
            },
            _ => None,
        };
        if self.steps.is_empty() {
            err("steps", "a journey needs at least one step".into());
        } else if !self.steps.contains_key(&self.start) {
            err(
                "start",
                format!("names no step: {:?} is not in steps", self.start),
            );
        }
        let mut durations = HashMap::new();
        let mut times = HashMap::new();
        let mut conditions = HashMap::new();
        for (id, step) in &self.steps {
            let at = |field: &str| format!("steps.{id}.{field}");
            if !valid_name(id) {
                err(
                    &format!("steps.{id}"),
                    "step names are 1–64 characters without '/', ':' or control characters".into(),
                );
            }
            for (field, target) in step.successors() {
                if !self.steps.contains_key(target) {
                    err(
                        &at(&field),
                        format!("names no step: {target:?} is not in steps"),
                    );
                }
            }
            let mut duration = |field: &str, d: &str, errs: &mut dyn FnMut(&str, String)| {
                match schedule::parse_duration(d) {
                    Ok(s) if s > 0 => {
                        durations.insert(id.clone(), s);
                    }
                    Ok(_) => errs(&at(field), "must be longer than 0s".into()),
                    Err(e) => errs(&at(field), e.to_string()),
                }
            };
            match step {
                Step::Wait { duration: d, .. } => duration("duration", d, &mut err),
                Step::WaitForEvent { event, timeout, .. } => {
                    duration("timeout", timeout, &mut err);
                    if !EVENT_TYPES.contains(&event.as_str()) {
                        err(
                            &at("event"),
                            format!(
                                "unknown event type {event:?}; use one of {}",
                                EVENT_TYPES.join(", ")
                            ),
                        );
                    }
                }
                Step::WaitUntil { time, .. } => match TimeOfDay::parse(time) {
                    Ok(t) => {
                        times.insert(id.clone(), t);
                    }
                    Err(e) => err(&at("time"), e.to_string()),
                },
                Step::Branch { condition, .. } => match segment::parse(condition) {
                    Ok(expr) => {
                        check_segment_refs(&expr, catalog, &at("condition"), &mut err);
                        conditions.insert(id.clone(), expr);
                    }
                    Err(e) => err(&at("condition"), e.to_string()),
                },
                Step::Split { arms } => {
                    if arms.len() < 2 {
                        err(&at("arms"), "a split needs at least two arms".into());
                    }
                    if arms.iter().map(|a| a.weight as u64).sum::<u64>() == 0 {
                        err(&at("arms"), "weights must not all be 0".into());
                    }
                }
                Step::Send {
                    template,
                    channel,
                    kind,
                    ..
                } => {
                    if *kind == SendKind::Moment {
                        err(&at("kind"), "a journey sends `direct` or `mass`; Moments posts are planned under /v1/moments".into());
                    }
                    if !catalog.template_exists(template) {
                        err(&at("template"), format!("unknown template {template:?}; save it first (PUT /v1/templates/{template})"));
                    }
                    if let Some(c) = channel {
                        if !siyu_domain::Channel::is_valid(c) {
                            err(
                                &at("channel"),
                                format!(
                                    "{c:?} is not a channel name (lowercase letters, digits, _)"
                                ),
                            );
                        }
                    }
                }
                Step::AddTag { tag, .. } | Step::RemoveTag { tag, .. } => {
                    if tag.trim().is_empty() || tag.chars().count() > 64 {
                        err(&at("tag"), "a tag is 1–64 characters".into());
                    }
                }
                Step::SetTrait { name, .. } => {
                    if name.trim().is_empty() || name.len() > 64 {
                        err(&at("name"), "a trait name is 1–64 bytes".into());
                    }
                }
                Step::Task { title, due, .. } => {
                    if title.trim().is_empty() {
                        err(&at("title"), "a task needs a title".into());
                    }
                    if let Some(d) = due {
                        duration("due", d, &mut err);
                    }
                }
                Step::Webhook { .. } | Step::Exit => {}
            }
        }
        if let Some(cycle) = find_cycle(&self) {
            err(
                &format!("steps.{}", cycle[0]),
                format!(
                    "the steps form a cycle ({}); journeys are acyclic: use a wait step, or re-entry, to repeat",
                    cycle.join(" → ")
                ),
            );
        }
        for id in unreachable(&self) {
            err(
                &format!("steps.{id}"),
                format!(
                    "is never reached from start {:?}; link it or remove it",
                    self.start
                ),
            );
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let trigger = trigger.expect("no errors, so the trigger compiled");
        Ok(Compiled {
            def: self,
            version,
            trigger,
            reentry_cooldown,
            durations,
            times,
            conditions,
        })
    }
}

fn check_segment_refs(
    expr: &Expr,
    catalog: &dyn Catalog,
    path: &str,
    err: &mut dyn FnMut(&str, String),
) {
    let mut refs = Vec::new();
    expr.segment_refs(&mut refs);
    for s in refs {
        if !catalog.segment_exists(&s) {
            err(
                path,
                format!("unknown segment {s:?}; define it first (PUT /v1/segments/{s})"),
            );
        }
    }
}

fn compile_trigger(
    t: &Trigger,
    catalog: &dyn Catalog,
    err: &mut dyn FnMut(&str, String),
) -> Option<CompiledTrigger> {
    let segment_known = |s: &str, path: &str, err: &mut dyn FnMut(&str, String)| {
        let ok = catalog.segment_exists(s);
        if !ok {
            err(
                path,
                format!("unknown segment {s:?}; define it first (PUT /v1/segments/{s})"),
            );
        }
        ok
    };
    match t {
        Trigger::Event {
            event,
            channel,
            name,
            text_contains,
            intents,
            condition,
        } => {
            let mut ok = true;
            if !EVENT_TYPES.contains(&event.as_str()) {
                err(
                    "trigger.event",
                    format!(
                        "unknown event type {event:?}; use one of {}",
                        EVENT_TYPES.join(", ")
                    ),
                );
                ok = false;
            }
            let condition = match condition.as_deref().map(segment::parse) {
                None => None,
                Some(Ok(e)) => {
                    check_segment_refs(&e, catalog, "trigger.where", err);
                    Some(e)
                }
                Some(Err(e)) => {
                    err("trigger.where", e.to_string());
                    ok = false;
                    None
                }
            };
            ok.then(|| CompiledTrigger::Event {
                event: event.clone(),
                channel: channel.clone(),
                name: name.clone(),
                text_contains: text_contains.clone(),
                intents: intents.clone(),
                condition,
            })
        }
        Trigger::SegmentEntry { segment } => segment_known(segment, "trigger.segment", err)
            .then(|| CompiledTrigger::SegmentEntry(segment.clone())),
        Trigger::SegmentExit { segment } => segment_known(segment, "trigger.segment", err)
            .then(|| CompiledTrigger::SegmentExit(segment.clone())),
        Trigger::Schedule {
            cron,
            timezone,
            segment,
        } => {
            let cron = Cron::parse(cron)
                .map_err(|e| err("trigger.cron", e.to_string()))
                .ok();
            let tz = Tz::parse(timezone.as_deref().unwrap_or(schedule::DEFAULT_TZ))
                .map_err(|e| err("trigger.timezone", e.to_string()))
                .ok();
            let seg_ok = segment
                .as_deref()
                .is_none_or(|s| segment_known(s, "trigger.segment", err));
            match (cron, tz, seg_ok) {
                (Some(cron), Some(tz), true) => Some(CompiledTrigger::Schedule {
                    cron,
                    tz,
                    segment: segment.clone(),
                }),
                _ => None,
            }
        }
        Trigger::Birthday { at } => TimeOfDay::parse(at)
            .map_err(|e| err("trigger.at", e.to_string()))
            .ok()
            .map(CompiledTrigger::Birthday),
        Trigger::AfterFirstPurchase { days } | Trigger::Silent { days }
            if *days == 0 || *days > 3650 =>
        {
            err("trigger.days", "must be 1–3650".into());
            None
        }
        Trigger::AfterFirstPurchase { days } => Some(CompiledTrigger::AfterFirstPurchase(*days)),
        Trigger::Silent { days } => Some(CompiledTrigger::Silent(*days)),
    }
}

/// The first cycle found (step names, first repeated at the end), if any.
fn find_cycle(j: &Journey) -> Option<Vec<String>> {
    // Iterative three-colour DFS over every step (not only reachable ones).
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: HashMap<&str, Colour> = j
        .steps
        .keys()
        .map(|k| (k.as_str(), Colour::White))
        .collect();
    for root in j.steps.keys() {
        if colour[root.as_str()] != Colour::White {
            continue;
        }
        let mut path: Vec<(&str, Vec<&str>)> = Vec::new();
        let succ = |id: &str| -> Vec<&str> {
            j.steps[id]
                .successors()
                .into_iter()
                .map(|(_, t)| t)
                .filter(|t| j.steps.contains_key(*t))
                .collect()
        };
        colour.insert(root, Colour::Grey);
        path.push((root, succ(root)));
        while let Some((node, pending)) = path.last_mut() {
            match pending.pop() {
                Some(next) => match colour[next] {
                    Colour::Grey => {
                        let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(next.to_string());
                        return Some(cycle);
                    }
                    Colour::White => {
                        colour.insert(next, Colour::Grey);
                        let s = succ(next);
                        path.push((next, s));
                    }
                    Colour::Black => {}
                },
                None => {
                    colour.insert(node, Colour::Black);
                    path.pop();
                }
            }
        }
    }
    None
}

fn unreachable(j: &Journey) -> Vec<String> {
    if !j.steps.contains_key(&j.start) {
        return Vec::new();
    }
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![j.start.as_str()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(s) = j.steps.get(id) {
            stack.extend(s.successors().into_iter().map(|(_, t)| t));
        }
    }
    j.steps
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .cloned()
        .collect()
}
