//! Live streams (直播) as objects: a session on a channel (Douyin,
//! Kuaishou, WeChat Channels 视频号 …) with a host, a start, an end and
//! its products, and what it brought — whichever channel reported it.
//!
//! Who attended: a person with an event on the session's channel during
//! it (a view, a comment, a follow: what the platform's bridge posts), or
//! a `touch` whose `properties.campaign` names the session (`live:<id>`,
//! for a viewer reported through another channel or a live QR code).
//! What it brought: the attendees' purchases and refunds from its start
//! to `attribution_hours` after its end, on any channel (orders come from
//! order import on Taobao, the mini-program …); comments during it, and
//! how many were answered by a message to the commenter within
//! [`ANSWER_WITHIN_SECS`]; attendees siyu had not seen before it; buyers
//! who bought again within 30 days of their first order from it.
//!
//! Pure: the definition and its checks, and [`LiveTally`], fed every
//! event (any order: every part is a set or a sum), finished against the
//! engine (first-seen times, purchases). The server stores definitions as
//! settings and runs the pass over the log.

use serde::{Deserialize, Serialize};
use siyu_domain::EventType;
use siyu_engine::{Engine, PersonId, RawEvent};
use std::collections::{BTreeMap, BTreeSet};

/// The settings a session is saved under: `live_session/<id>`.
pub const SETTINGS_PREFIX: &str = "live_session/";
/// A comment counts as answered when a message reaches its writer within this.
pub const ANSWER_WITHIN_SECS: i64 = 24 * 3600;
/// A buyer "repeats" with another purchase within this after their first
/// order from the session.
pub const REPEAT_WITHIN_SECS: i64 = 30 * 86_400;
/// Longest session, and the longest attribution window after it.
const MAX_SESSION_SECS: i64 = 48 * 3600;
const MAX_ATTRIBUTION_HOURS: u32 = 30 * 24;

/// A live session, as saved with `PUT /v1/live-sessions/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSession {
    /// From the path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub title: String,
    /// The channel it streams on: douyin, kuaishou, channels (视频号) …
    pub channel: String,
    /// Who hosts it (a 达人, a store employee).
    #[serde(default)]
    pub host: String,
    /// Epoch seconds.
    pub starts_at: i64,
    pub ends_at: i64,
    /// Product ids (SKUs) it presents; shown in the report.
    #[serde(default)]
    pub products: Vec<String>,
    /// Purchases this many hours after the end still count (default 24).
    #[serde(default = "default_hours")]
    pub attribution_hours: u32,
}

fn default_hours() -> u32 {
    24
}

impl LiveSession {
    /// Every fault, naming its field and the fix.
    pub fn check(&self) -> Result<(), String> {
        let t = self.title.trim();
        if t.is_empty() || t.chars().count() > 200 {
            return Err("title: 1 to 200 characters".into());
        }
        if siyu_domain::Channel::parse(&self.channel).is_none() {
            return Err(format!(
                "channel: `{}` is not a channel name (douyin, kuaishou, channels …)",
                self.channel
            ));
        }
        if self.host.chars().count() > 128 {
            return Err("host: at most 128 characters".into());
        }
        if self.ends_at <= self.starts_at {
            return Err("ends_at: after starts_at (epoch seconds)".into());
        }
        if self.ends_at - self.starts_at > MAX_SESSION_SECS {
            return Err("ends_at: a session lasts at most 48 h; split a longer one".into());
        }
        if !(946_684_800..4_102_444_800).contains(&self.starts_at) {
            return Err("starts_at: epoch seconds between 2000 and 2100".into());
        }
        if self.attribution_hours > MAX_ATTRIBUTION_HOURS {
            return Err("attribution_hours: at most 720 (30 days)".into());
        }
        if self.products.len() > 200 {
            return Err("products: at most 200".into());
        }
        if let Some(p) = self
            .products
            .iter()
            .find(|p| p.is_empty() || p.chars().count() > 128)
        {
            return Err(format!("products: `{p}` must be 1 to 128 characters"));
        }
        Ok(())
    }

    /// Until when purchases count.
    pub fn attribution_end(&self) -> i64 {
        self.ends_at + self.attribution_hours as i64 * 3600
    }

    /// The `properties.campaign` a touch names this session with.
    pub fn campaign_tag(&self) -> String {
        format!("live:{}", self.id)
    }
}

/// What one pass over the events collects for one session.
#[derive(Clone, Debug, Default)]
pub struct LiveTally {
    attendees: BTreeSet<PersonId>,
    /// Comments during the session: (person, ts).
    comments: Vec<(PersonId, i64)>,
    /// Messages to each person (ts), from the session's start on.
    messages: BTreeMap<PersonId, Vec<i64>>,
    /// Purchases and refunds in the attribution window: (person, ts, amount).
    purchases: Vec<(PersonId, i64, i64)>,
    refunds: Vec<(PersonId, i64, i64)>,
}

/// A session's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LiveReport {
    /// Persons who attended (known persons: siyu holds their profile).
    pub viewers: usize,
    /// Attendees siyu first saw during the session.
    pub new_persons: usize,
    pub comments: usize,
    /// Comments whose writer got a message within 24 h.
    pub comments_answered: usize,
    /// Attendees' purchases in the attribution window, any channel.
    pub orders: usize,
    pub buyers: usize,
    /// Purchases minus refunds in the window, fen.
    pub revenue: i64,
    pub refunded: i64,
    /// Buyers who bought again within 30 days of their first order from it.
    pub repeat_buyers: usize,
    /// Whether the 30 days of every buyer have passed (the count is final).
    pub repeat_final: bool,
}

impl LiveTally {
    /// Feeds one event of `person` (any order).
    pub fn feed(&mut self, s: &LiveSession, person: PersonId, e: &RawEvent<'_>) {
        let during = e.ts >= s.starts_at && e.ts <= s.ends_at;
        let attributed = e.ts >= s.starts_at && e.ts <= s.attribution_end();
        match e.event_type {
            EventType::Touch | EventType::Comment | EventType::Follow
                if during && e.channel == s.channel =>
            {
                self.attendees.insert(person);
                if e.event_type == EventType::Comment {
                    self.comments.push((person, e.ts));
                }
            }
            EventType::Touch if e.campaign == Some(s.campaign_tag().as_str()) => {
                self.attendees.insert(person);
            }
            EventType::MessageSent if e.ts >= s.starts_at => {
                self.messages.entry(person).or_default().push(e.ts);
            }
            EventType::Purchase if attributed => self.purchases.push((person, e.ts, e.amount)),
            EventType::Refund if attributed => self.refunds.push((person, e.ts, e.amount)),
            _ => {}
        }
    }

    /// The report, reading first-seen times and later purchases from the
    /// engine (slots as the pass saw them), at `now`.
    pub fn finish(&self, s: &LiveSession, engine: &Engine, now: i64) -> LiveReport {
        let mut r = LiveReport {
            viewers: self.attendees.len(),
            ..Default::default()
        };
        for &p in &self.attendees {
            if let Some(person) = engine.person(p) {
                let first = person.first_ts as i64;
                if person.has_first_event() && first >= s.starts_at && first <= s.ends_at {
                    r.new_persons += 1;
                }
            }
        }
        r.comments = self.comments.len();
        r.comments_answered = self
            .comments
            .iter()
            .filter(|(p, ts)| {
                self.messages
                    .get(p)
                    .is_some_and(|ms| ms.iter().any(|&m| m > *ts && m - *ts <= ANSWER_WITHIN_SECS))
            })
            .count();
        let mut first_order: BTreeMap<PersonId, i64> = BTreeMap::new();
        for &(p, ts, amount) in &self.purchases {
            if !self.attendees.contains(&p) {
                continue;
            }
            r.orders += 1;
            r.revenue += amount;
            let f = first_order.entry(p).or_insert(ts);
            *f = (*f).min(ts);
        }
        for &(p, _, amount) in &self.refunds {
            if self.attendees.contains(&p) {
                r.refunded += amount;
                r.revenue -= amount;
            }
        }
        r.buyers = first_order.len();
        r.repeat_buyers = first_order
            .iter()
            .filter(|(p, first)| {
                engine.person(**p).is_some_and(|person| {
                    person
                        .purchases_between(**first + 1, **first + REPEAT_WITHIN_SECS)
                        .iter()
                        .next()
                        .is_some()
                })
            })
            .count();
        r.repeat_final = first_order
            .values()
            .all(|first| now > first + REPEAT_WITHIN_SECS);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siyu_domain::Event;

    fn ev(json: &str) -> Event {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        siyu_domain::wire::parse_json_event(&v).expect("valid event")
    }

    fn session() -> LiveSession {
        LiveSession {
            id: "s1".into(),
            title: "双11 预热直播".into(),
            channel: "douyin".into(),
            host: "小美".into(),
            starts_at: 1_790_000_000,
            ends_at: 1_790_007_200,
            products: vec!["sku-1".into()],
            attribution_hours: 24,
        }
    }

    #[test]
    fn a_session_gets_its_viewers_comments_orders_and_repeat_buyers() {
        let s = session();
        let t = s.starts_at;
        let events = [
            // Known before: a viewer who comments, is answered and buys twice.
            format!(
                r#"{{"ts":{},"identity":"douyin:a","type":"touch"}}"#,
                t - 86_400
            ),
            format!(
                r#"{{"ts":{},"identity":"douyin:a","type":"comment","text":"多少钱"}}"#,
                t + 60
            ),
            format!(
                r#"{{"ts":{},"identity":"douyin:a","type":"message_sent"}}"#,
                t + 600
            ),
            format!(
                r#"{{"ts":{},"identity":"wecom:a","type":"identify","ref":"douyin:a"}}"#,
                t + 700
            ),
            format!(
                r#"{{"ts":{},"identity":"wecom:a","type":"purchase","amount":19900,"channel":"taobao"}}"#,
                t + 3 * 3600
            ),
            format!(
                r#"{{"ts":{},"identity":"wecom:a","type":"purchase","amount":9900}}"#,
                t + 10 * 86_400
            ),
            // New during it: comments unanswered, buys, refunds.
            format!(
                r#"{{"ts":{},"identity":"douyin:b","type":"comment","text":"有货吗"}}"#,
                t + 120
            ),
            format!(
                r#"{{"ts":{},"identity":"douyin:b","type":"purchase","amount":5000}}"#,
                t + 7300
            ),
            format!(
                r#"{{"ts":{},"identity":"douyin:b","type":"refund","amount":5000}}"#,
                t + 8000
            ),
            // Through a live QR code on another channel; buys after the window.
            format!(
                r#"{{"ts":{},"identity":"wecom:c","type":"touch","properties":{{"campaign":"live:s1"}}}}"#,
                t + 30
            ),
            format!(
                r#"{{"ts":{},"identity":"wecom:c","type":"purchase","amount":7000}}"#,
                t + 4 * 86_400
            ),
            // On douyin but not during it; another channel during it.
            format!(
                r#"{{"ts":{},"identity":"douyin:d","type":"comment","text":"晚了"}}"#,
                t + 8000
            ),
            format!(
                r#"{{"ts":{},"identity":"kuaishou:e","type":"comment","text":"hi"}}"#,
                t + 100
            ),
        ];
        let mut engine = Engine::new();
        let parsed: Vec<Event> = events.iter().map(|j| ev(j)).collect();
        for (i, e) in parsed.iter().enumerate() {
            engine.apply(i as u64, e);
        }
        let mut tally = LiveTally::default();
        // Fed backwards: the answer does not depend on the order.
        for (i, e) in parsed.iter().enumerate().rev() {
            let raw = RawEvent::from_event(i as u64, e);
            let p = engine.person_of(raw.identity).expect("known");
            tally.feed(&s, p, &raw);
        }
        let r = tally.finish(&s, &engine, t + 40 * 86_400);
        assert_eq!(
            r,
            LiveReport {
                viewers: 3,
                new_persons: 2,
                comments: 2,
                comments_answered: 1,
                orders: 2,
                buyers: 2,
                revenue: 19_900,
                refunded: 5_000,
                repeat_buyers: 1,
                repeat_final: true,
            }
        );
    }

    #[test]
    fn faults_name_their_field() {
        let mut s = session();
        s.ends_at = s.starts_at;
        assert!(s.check().unwrap_err().starts_with("ends_at"));
        let mut s = session();
        s.channel = "抖 音".into();
        assert!(s.check().unwrap_err().starts_with("channel"));
        let mut s = session();
        s.attribution_hours = 10_000;
        assert!(s.check().unwrap_err().starts_with("attribution_hours"));
        assert!(session().check().is_ok());
    }
}
