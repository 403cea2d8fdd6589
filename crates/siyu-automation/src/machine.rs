//! The per-person step machine: given one enrollment's state, an input
//! (time passed, an event from the person) and a view of the person, it
//! runs steps until the enrollment waits or ends, and returns the side
//! effects to perform.
//!
//! It performs nothing itself. The server's executor commits the new state
//! and the returned actions in one transaction, then delivers the actions;
//! each carries a key that is unique per step execution (`step_key`), so a
//! crash between commit and delivery re-delivers under the same key and
//! the connector layer drops the duplicate. Because journeys are acyclic
//! (checked at save time), a step runs at most once per enrollment and
//! `run` always terminates within `steps.len()` iterations.

use crate::guard::{MessageClass, SendKind};
use crate::journey::{Compiled, CompiledTrigger, Step};
use crate::schedule::{self, Tz};
use serde::{Deserialize, Serialize};
use siyu_engine::segment::Expr;

/// One person's enrollment in one journey version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Enrollment {
    /// Unique, assigned by the store.
    pub id: u64,
    pub journey: String,
    pub version: u32,
    /// An identity of the person (the one that triggered the entry).
    pub identity: String,
    pub entered_at: i64,
    /// The step to run or being waited on.
    pub step: String,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Run `step` now.
    Ready,
    /// Sleeping until `until`, then go to `next`.
    Sleeping { until: i64, next: Option<String> },
    /// Waiting for an event; at `until` take the timeout branch.
    AwaitingEvent { until: i64 },
    /// Ended (`exit` step, a step with no next, or removed).
    Done { at: i64, reason: String },
}

impl Enrollment {
    /// When the executor must wake this enrollment, if it sleeps.
    pub fn wake_at(&self) -> Option<i64> {
        match self.state {
            State::Ready => Some(i64::MIN),
            State::Sleeping { until, .. } | State::AwaitingEvent { until } => Some(until),
            State::Done { .. } => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }
}

/// The key of one step execution: stable across crashes and replays.
pub fn step_key(e: &Enrollment, step: &str) -> String {
    format!("j/{}/v{}/e{}/{}", e.journey, e.version, e.id, step)
}

/// A side effect for the executor to perform (through the guardrails for
/// sends). `key` is the step execution's idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Send {
        key: String,
        template: String,
        channel: Option<String>,
        class: Option<MessageClass>,
        kind: SendKind,
        /// The inbound message this send answers (an auto-reply): passed
        /// to the connector so a channel's bridge can answer in place.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo>,
    },
    AddTag {
        key: String,
        tag: String,
    },
    RemoveTag {
        key: String,
        tag: String,
    },
    SetTrait {
        key: String,
        name: String,
        value: serde_json::Value,
    },
    Task {
        key: String,
        title: String,
        note: String,
        due: Option<i64>,
    },
    Webhook {
        key: String,
        payload: serde_json::Value,
    },
    /// A post to a community group (not a person): SOP calendars and
    /// campaign announcements. Capped per group per local day.
    GroupPost {
        key: String,
        group: String,
        channel: String,
        template: String,
        data: serde_json::Value,
    },
    /// A call to a channel's own API for a person that is not a template
    /// message (WeCom `mark_tag`, `send_welcome_msg`): handed to the
    /// connector of `channel` with `call` as its data and the text (the
    /// `template` rendered for the person, else `text`) as its body. With
    /// a `class` it is a message to the person and passes the guardrails;
    /// at or after `expires_at` it is missed, never made late.
    ApiCall {
        key: String,
        channel: String,
        call: serde_json::Value,
        #[serde(default)]
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<MessageClass>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// An operator's own message in a conversation (the inbox): the text
    /// as written, no template, transactional, on `channel`, through the
    /// guardrails like every send. Its `message_sent` carries `reply:
    /// true` and the operator: it answers the customer.
    Reply {
        key: String,
        channel: String,
        text: String,
        operator: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<ReplyTo>,
    },
}

/// The inbound comment or message a reply answers. A platform without a
/// built-in connector (Douyin, Xiaohongshu, Kuaishou) is answered by the
/// brand's bridge, which can only reply *in place* (under the comment, in
/// the DM conversation, under the video or note) if it is told where the
/// customer wrote: the ids its own webhook gave siyu, read back from the
/// inbound event's `properties`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplyTo {
    /// The inbound event's id (the platform's message or comment id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The channel the customer wrote on.
    pub channel: String,
    /// `comment` or `message`, from the inbound event's `properties.kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The comment to answer under (`properties.comment_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<String>,
    /// The DM conversation to answer in (`properties.conversation_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The video, note, post or live room written under
    /// (`properties.item_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

impl ReplyTo {
    /// Longest id copied from an inbound event's properties, in bytes:
    /// longer values are not ids, and are left out.
    pub const MAX_ID_LEN: usize = 256;

    /// What a reply to an inbound event needs: its id, channel and the
    /// string (or integer) `kind`, `comment_id`, `conversation_id` and
    /// `item_id` properties.
    pub fn of(
        event_id: Option<&str>,
        channel: &str,
        properties: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> ReplyTo {
        let prop = |name: &str| {
            let v = properties?.get(name)?;
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!s.is_empty() && s.len() <= Self::MAX_ID_LEN).then_some(s)
        };
        ReplyTo {
            event_id: event_id.map(str::to_string),
            channel: channel.to_string(),
            kind: prop("kind"),
            comment_id: prop("comment_id"),
            conversation_id: prop("conversation_id"),
            item_id: prop("item_id"),
        }
    }
}

impl Action {
    pub fn key(&self) -> &str {
        match self {
            Action::Send { key, .. }
            | Action::AddTag { key, .. }
            | Action::RemoveTag { key, .. }
            | Action::SetTrait { key, .. }
            | Action::Task { key, .. }
            | Action::Webhook { key, .. }
            | Action::GroupPost { key, .. }
            | Action::ApiCall { key, .. }
            | Action::Reply { key, .. } => key,
        }
    }
}

/// What the machine needs to know about the person, at the current clock.
pub trait PersonView {
    /// A branch condition (segment language) for this person now.
    fn holds(&self, condition: &Expr) -> bool;
    /// The person's timezone trait, if any.
    fn timezone(&self) -> Option<String>;
}

/// An event from the enrolled person, as much as wait steps look at.
#[derive(Clone, Copy, Debug)]
pub struct EventView<'a> {
    pub event_type: &'a str,
    pub channel: &'a str,
    pub name: Option<&'a str>,
    pub text: Option<&'a str>,
    /// An inbound message's intent (`properties.intent`), if it has one.
    pub intent: Option<siyu_domain::intent::Intent>,
}

/// What woke the enrollment.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// The clock reached `now` (a sleep or timeout may be due).
    Tick,
    /// The person did something.
    Event(EventView<'a>),
}

/// Runs the enrollment as far as it can go at `now`. Returns the side
/// effects in step order; the enrollment is updated in place.
pub fn run(
    j: &Compiled,
    e: &mut Enrollment,
    input: Input<'_>,
    view: &dyn PersonView,
    now: i64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    // Resolve what the input does to a waiting enrollment.
    match (&e.state, input) {
        (State::Sleeping { until, next }, _) if *until <= now => {
            let next = next.clone();
            advance(e, next, now);
        }
        (State::AwaitingEvent { until }, Input::Event(ev)) if *until >= now => {
            if let Some(Step::WaitForEvent {
                event, name, next, ..
            }) = j.def.steps.get(&e.step)
            {
                if ev.event_type == event && name.as_deref().is_none_or(|n| ev.name == Some(n)) {
                    let next = next.clone();
                    advance(e, next, now);
                }
            }
        }
        (State::AwaitingEvent { until }, _)
            if *until < now || (*until == now && matches!(input, Input::Tick)) =>
        {
            let next = match j.def.steps.get(&e.step) {
                Some(Step::WaitForEvent { on_timeout, .. }) => on_timeout.clone(),
                _ => None,
            };
            advance(e, next, now);
        }
        _ => {}
    }
    // Run ready steps; acyclic, so at most steps.len() iterations.
    for _ in 0..=j.def.steps.len() {
        if e.state != State::Ready {
            break;
        }
        let Some(step) = j.def.steps.get(&e.step) else {
            // The version the person entered lacks the step: end cleanly.
            e.state = State::Done {
                at: now,
                reason: format!("step {:?} not in version {}", e.step, e.version),
            };
            break;
        };
        let key = step_key(e, &e.step);
        let next = match step {
            Step::Wait { next, .. } => {
                let secs = j.durations.get(&e.step).copied().unwrap_or(0);
                e.state = State::Sleeping {
                    until: now.saturating_add(secs),
                    next: next.clone(),
                };
                continue;
            }
            Step::WaitUntil { next, .. } => {
                let tz = person_tz(view);
                let until = j
                    .times
                    .get(&e.step)
                    .map_or(now, |t| schedule::next_time_of_day(now, *t, &tz));
                e.state = State::Sleeping {
                    until,
                    next: next.clone(),
                };
                continue;
            }
            Step::WaitForEvent { .. } => {
                let secs = j.durations.get(&e.step).copied().unwrap_or(0);
                e.state = State::AwaitingEvent {
                    until: now.saturating_add(secs),
                };
                continue;
            }
            Step::Branch {
                then, otherwise, ..
            } => {
                let holds = j.conditions.get(&e.step).is_some_and(|c| view.holds(c));
                if holds {
                    then.clone()
                } else {
                    otherwise.clone()
                }
            }
            Step::Split { arms } => {
                let total: u64 = arms.iter().map(|a| a.weight as u64).sum();
                let mut pick = split_point(&key) % total.max(1);
                let mut chosen = None;
                for a in arms {
                    if pick < a.weight as u64 {
                        chosen = a.next.clone();
                        break;
                    }
                    pick -= a.weight as u64;
                }
                chosen
            }
            Step::Send {
                template,
                channel,
                class,
                kind,
                next,
            } => {
                actions.push(Action::Send {
                    key,
                    template: template.clone(),
                    channel: channel.clone(),
                    class: *class,
                    kind: *kind,
                    reply_to: None,
                });
                next.clone()
            }
            Step::AddTag { tag, next } => {
                actions.push(Action::AddTag {
                    key,
                    tag: tag.clone(),
                });
                next.clone()
            }
            Step::RemoveTag { tag, next } => {
                actions.push(Action::RemoveTag {
                    key,
                    tag: tag.clone(),
                });
                next.clone()
            }
            Step::SetTrait { name, value, next } => {
                actions.push(Action::SetTrait {
                    key,
                    name: name.clone(),
                    value: value.clone(),
                });
                next.clone()
            }
            Step::Task {
                title, note, next, ..
            } => {
                let due = j.durations.get(&e.step).map(|d| now.saturating_add(*d));
                actions.push(Action::Task {
                    key,
                    title: title.clone(),
                    note: note.clone(),
                    due,
                });
                next.clone()
            }
            Step::Webhook { payload, next } => {
                actions.push(Action::Webhook {
                    key,
                    payload: payload.clone(),
                });
                next.clone()
            }
            Step::Exit => {
                e.state = State::Done {
                    at: now,
                    reason: "exit".into(),
                };
                break;
            }
        };
        advance(e, next, now);
    }
    actions
}

fn advance(e: &mut Enrollment, next: Option<String>, now: i64) {
    match next {
        Some(n) => {
            e.step = n;
            e.state = State::Ready;
        }
        None => {
            e.state = State::Done {
                at: now,
                reason: "completed".into(),
            }
        }
    }
}

fn person_tz(view: &dyn PersonView) -> Tz {
    view.timezone()
        .and_then(|t| Tz::parse(&t).ok())
        .unwrap_or_else(|| Tz::parse(schedule::DEFAULT_TZ).expect("the default timezone parses"))
}

/// A stable pseudo-random number from the step key (FNV-1a + mix), so a
/// replayed split takes the same arm.
fn split_point(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// A person's last enrollment in a journey, for the re-entry rule.
#[derive(Clone, Copy, Debug)]
pub struct LastEntry {
    pub entered_at: i64,
    pub active: bool,
}

/// Whether the trigger may enroll the person now, under the re-entry rule.
pub fn may_enter(j: &Compiled, last: Option<LastEntry>, now: i64) -> bool {
    if !j.def.enabled || j.def.archived {
        return false;
    }
    let Some(last) = last else { return true };
    if last.active {
        return false;
    }
    match &j.def.reentry {
        crate::journey::Reentry::Once => false,
        crate::journey::Reentry::EveryTime => true,
        crate::journey::Reentry::Cooldown(_) => {
            now >= last
                .entered_at
                .saturating_add(j.reentry_cooldown.unwrap_or(0))
        }
    }
}

/// Whether an event fires an event trigger (the `where` condition is the
/// caller's, through `view`).
pub fn event_fires(j: &Compiled, ev: &EventView<'_>, view: &dyn PersonView) -> bool {
    let CompiledTrigger::Event {
        event,
        channel,
        name,
        text_contains,
        intents,
        condition,
    } = &j.trigger
    else {
        return false;
    };
    event == ev.event_type
        && channel.as_deref().is_none_or(|c| c == ev.channel)
        && name.as_deref().is_none_or(|n| ev.name == Some(n))
        && text_contains
            .as_deref()
            .is_none_or(|t| ev.text.is_some_and(|x| x.contains(t)))
        && (intents.is_empty() || ev.intent.is_some_and(|i| intents.contains(&i)))
        && condition.as_ref().is_none_or(|c| view.holds(c))
}

/// A fresh enrollment at the start step (id assigned by the store).
pub fn enroll(j: &Compiled, id: u64, identity: &str, now: i64) -> Enrollment {
    Enrollment {
        id,
        journey: j.def.name.clone(),
        version: j.version,
        identity: identity.to_string(),
        entered_at: now,
        step: j.def.start.clone(),
        state: State::Ready,
    }
}
