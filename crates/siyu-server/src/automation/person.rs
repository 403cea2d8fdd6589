//! A person as the automation sees them, read from the engine under its
//! lock: conditions for branches, timezone, template variables, the
//! address on a channel, and who is due for a sweep trigger.

use siyu_automation::journey::CompiledTrigger;
use siyu_automation::machine::PersonView;
use siyu_automation::schedule::{self, Tz};
use siyu_automation::template::Vars;
use siyu_engine::segment::Expr;
use siyu_engine::{Engine, PersonId};
use std::borrow::Cow;

pub struct PersonSnapshot<'a> {
    engine: &'a Engine,
    slot: PersonId,
    pub canonical: String,
    pub identities: Vec<String>,
    pub opted_out: bool,
}

impl<'a> PersonSnapshot<'a> {
    /// The person `identity` belongs to; `None` if unknown or erased.
    pub fn of(engine: &'a Engine, identity: &str) -> Option<PersonSnapshot<'a>> {
        let slot = engine.person_of(identity)?;
        let p = engine.person(slot)?;
        Some(PersonSnapshot {
            engine,
            slot,
            canonical: engine.canonical_id(slot).to_string(),
            identities: engine.identities_of(slot),
            opted_out: p.opted_out,
        })
    }

    fn trait_str(&self, name: &str) -> Option<String> {
        let p = self.engine.person(self.slot)?;
        let v = p.extra.as_ref()?.traits().get(name)?;
        Some(match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Template variables for this person, plus the unsubscribe link and
    /// campaign data carried by the outbox action.
    pub fn vars(&self, unsubscribe: &str, action: &serde_json::Value) -> PersonVars<'_> {
        PersonVars {
            person: self,
            unsubscribe: unsubscribe.to_string(),
            campaign: action.get("campaign").cloned().unwrap_or_default(),
            links: None,
        }
    }
}

impl PersonView for PersonSnapshot<'_> {
    fn holds(&self, condition: &Expr) -> bool {
        self.engine
            .explain(condition, self.slot)
            .is_some_and(|e| e.holds)
    }

    fn timezone(&self) -> Option<String> {
        self.trait_str("timezone")
    }
}

pub struct PersonVars<'a> {
    person: &'a PersonSnapshot<'a>,
    unsubscribe: String,
    campaign: serde_json::Value,
    /// (public URL, link secret) for `{{content.ID}}` tracked links.
    links: Option<(&'a str, &'a [u8])>,
}

impl<'a> PersonVars<'a> {
    /// Lets `{{content.ID}}` render as the person's tracked link.
    pub fn with_links(mut self, public_url: &'a str, secret: &'a [u8]) -> Self {
        self.links = Some((public_url, secret));
        self
    }
}

impl Vars for PersonVars<'_> {
    fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        let p = self.person;
        match path {
            "unsubscribe_link" => Some(Cow::Borrowed(&self.unsubscribe)),
            "person.id" => Some(Cow::Borrowed(&p.canonical)),
            "name" | "phone" | "city" => p.trait_str(path).map(Cow::Owned),
            _ => {
                if let Some(t) = path.strip_prefix("trait.") {
                    return p.trait_str(t).map(Cow::Owned);
                }
                if let Some(prop) = path.strip_prefix("prop.") {
                    return p
                        .engine
                        .property_value(p.slot, prop)
                        .map(|v| Cow::Owned(v.to_string()));
                }
                if let Some(c) = path.strip_prefix("campaign.") {
                    return match self.campaign.get(c)? {
                        serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
                        v => Some(Cow::Owned(v.to_string())),
                    };
                }
                if let Some(id) = path.strip_prefix("content.") {
                    let (url, secret) = self.links?;
                    let token = crate::links::sign(
                        secret,
                        siyu_growth::content::LINK_PURPOSE,
                        &p.canonical,
                    );
                    return Some(Cow::Owned(siyu_growth::content::tracked_link(
                        url, id, &token,
                    )));
                }
                if path == "invite_link" {
                    return match self.campaign.get("invite_link")? {
                        serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
                        _ => None,
                    };
                }
                None
            }
        }
    }
}

/// The address to send to on `channel`: the person's identity on that
/// channel (`wecom:wm_1` → `wm_1`), or for email/SMS the trait.
pub fn recipient(p: &PersonSnapshot<'_>, channel: &str) -> Option<String> {
    let on = |ch: &str| {
        p.identities
            .iter()
            .find_map(|i| i.strip_prefix(ch).and_then(|r| r.strip_prefix(':')))
            .map(str::to_string)
    };
    match channel {
        "webhook" => Some(p.canonical.clone()),
        "email" => on("email").or_else(|| p.trait_str("email")),
        "sms" => on("phone")
            .or_else(|| on("sms"))
            .or_else(|| p.trait_str("phone")),
        other => on(other),
    }
}

/// Persons whose sweep trigger instant falls in (from, to], with it.
pub fn sweep_due(
    engine: &Engine,
    trigger: &CompiledTrigger,
    from: i64,
    to: i64,
) -> Vec<(String, i64)> {
    const DAY: i64 = 86_400;
    let inside = |t: i64| t > from && t <= to;
    let mut out = Vec::new();
    match trigger {
        CompiledTrigger::Schedule { cron, tz, segment } => {
            let Some(at) = cron.next_after(from, tz).filter(|t| *t <= to) else {
                return out;
            };
            match segment {
                Some(s) => {
                    let segs = engine.live_segments();
                    if let Some(i) = segs.index_of(s) {
                        out.extend(
                            segs.segments()[i as usize]
                                .members()
                                .map(|slot| (engine.canonical_id(slot).to_string(), at)),
                        );
                    }
                }
                None => out.extend(
                    engine
                        .persons()
                        .map(|(slot, _)| (engine.canonical_id(slot).to_string(), at)),
                ),
            }
        }
        CompiledTrigger::Silent(days) => {
            for (slot, p) in engine.persons() {
                if p.events == 0 {
                    continue;
                }
                let t = p.last_event_ts as i64 + *days as i64 * DAY;
                if inside(t) {
                    out.push((engine.canonical_id(slot).to_string(), t));
                }
            }
        }
        CompiledTrigger::AfterFirstPurchase(days) => {
            for (slot, p) in engine.persons() {
                if let Some(first) = p.purchases().first() {
                    let t = first.ts as i64 + *days as i64 * DAY;
                    if inside(t) {
                        out.push((engine.canonical_id(slot).to_string(), t));
                    }
                }
            }
        }
        CompiledTrigger::Birthday(at) => {
            for (slot, p) in engine.persons() {
                let Some(extra) = p.extra.as_ref() else {
                    continue;
                };
                let Some(b) = extra.traits().get("birthday").and_then(|v| v.as_str()) else {
                    continue;
                };
                let Some((m, d)) = schedule::parse_birthday(b) else {
                    continue;
                };
                let tz = extra
                    .traits()
                    .get("timezone")
                    .and_then(|v| v.as_str())
                    .and_then(|t| Tz::parse(t).ok())
                    .unwrap_or_else(Tz::shanghai);
                let t = schedule::next_anniversary(from, m, d, *at, &tz);
                if inside(t) {
                    out.push((engine.canonical_id(slot).to_string(), t));
                }
            }
        }
        _ => {}
    }
    out
}
