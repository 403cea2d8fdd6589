//! The public invite path's rules: what an invite code signs, when a
//! campaign is open, the click and signup events a landing records (their
//! ids make a repeated request add nothing), whose name the landing and
//! the poster show, and the cap on new anonymous visitors per campaign and
//! day. Signing itself (HMAC link tokens) is the server's (`links.rs`):
//! these functions say what is signed.

use super::{Campaign, FissionError};
use siyu_automation::schedule;
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_engine::fission::Rules;
use siyu_engine::Engine;
use std::collections::HashMap;

/// What an invite code of `campaign` signs (the link-token purpose): a
/// code is valid for one campaign only.
pub fn invite_purpose(campaign: &str) -> String {
    format!("invite/{campaign}")
}

/// The self-verifying invite code of `inviter` in `campaign`; `sign`
/// makes the link token of (purpose, identity) — the server's
/// `links::sign` with its secret.
pub fn invite_code(sign: &dyn Fn(&str, &str) -> String, campaign: &str, inviter: &str) -> String {
    sign(&invite_purpose(campaign), inviter)
}

/// The scope of a claim token proving who opened `campaign`'s invite.
pub fn claim_scope(campaign: &str) -> String {
    format!("campaign/{campaign}")
}

/// Whether campaign `c` takes clicks and signups at `now`.
pub fn campaign_open(c: &Campaign, rules: &Rules, now: i64) -> Result<(), FissionError> {
    if c.archived {
        return Err(FissionError::Archived {
            campaign: c.id.clone(),
        });
    }
    if rules.ends.is_some_and(|e| now >= e) {
        return Err(FissionError::Ended {
            campaign: c.id.clone(),
        });
    }
    if rules.starts.is_some_and(|s| now < s) {
        return Err(FissionError::NotStarted {
            campaign: c.id.clone(),
        });
    }
    Ok(())
}

/// The `name` trait of the person `identity` names, if any.
pub fn display_name(engine: &Engine, identity: &str) -> Option<String> {
    engine
        .person_of(identity)
        .and_then(|s| engine.person(s))
        .and_then(|p| p.extra.as_ref())
        .and_then(|x| x.traits().get("name"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// A landing click: a touch naming the campaign on the visitor identity
/// (never on the person themself, whose signup must stay their first
/// event to count as new), once per visitor and local day in `tz` (the
/// workspace time zone: the day turns at the brand's midnight). `None` if
/// the visitor id is not an identity.
pub fn click_event(
    campaign: &str,
    code: &str,
    visitor: &str,
    at: i64,
    tz: &schedule::Tz,
) -> Option<Event> {
    let identity = Identity::parse(visitor).ok()?;
    let day = schedule::local_day(at, tz);
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wechat").expect("valid"));
    let mut ev = Event::new(at, identity, EventType::Touch, channel);
    ev.id = Some(format!("click/{campaign}/{visitor}/{day}"));
    let mut p = serde_json::Map::new();
    p.insert("campaign".into(), campaign.into());
    p.insert("code".into(), code.into());
    ev.properties = Some(p);
    Some(ev)
}

/// Longest device fingerprint a signup keeps (a longer one is dropped).
pub const MAX_DEVICE_LEN: usize = 128;

/// The referral signup of `who` (a claimed identity) through `inviter`'s
/// code, from client address `ip`: one per invitee and campaign (the
/// event id), so a repeated request adds nothing.
pub fn signup_event(
    campaign: &str,
    who: &str,
    inviter: &str,
    ip: &str,
    device: Option<&str>,
    at: i64,
) -> Result<Event, FissionError> {
    let identity = Identity::parse(who).map_err(|e| FissionError::Unreadable {
        what: format!("a remembered identity does not parse: {e}"),
    })?;
    let inviter_id = Identity::parse(inviter).map_err(|e| FissionError::Unreadable {
        what: e.to_string(),
    })?;
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wechat").expect("valid"));
    let mut ev = Event::new(at, identity, EventType::ReferralSignup, channel);
    ev.reference = Some(inviter_id);
    ev.id = Some(format!("signup/{campaign}/{who}"));
    let mut p = serde_json::Map::new();
    p.insert("campaign".into(), campaign.into());
    p.insert("ip".into(), ip.into());
    if let Some(d) = device.filter(|d| !d.is_empty() && d.len() <= MAX_DEVICE_LEN) {
        p.insert("device".into(), d.into());
    }
    ev.properties = Some(p);
    Ok(ev)
}

/// New anonymous visitor identities (landing clicks without a claim) one
/// campaign may create per local day (the workspace time zone,
/// `schedule::local_day`); clicks beyond it are answered but
/// not recorded. With one visitor per client address and campaign, this
/// bounds what anonymous traffic can add to the identity graph.
pub const MAX_NEW_VISITORS_PER_DAY: u32 = 20_000;

/// Counts new anonymous visitors per campaign and day. The day is passed
/// in; the caller keeps it (the server: in memory, behind a lock, so a
/// restart starts the day's count afresh).
#[derive(Debug)]
pub struct VisitorCap {
    max: u32,
    counts: HashMap<String, (i64, u32)>,
}

impl VisitorCap {
    pub fn new(max: u32) -> Self {
        VisitorCap {
            max,
            counts: HashMap::new(),
        }
    }

    /// Takes one new-visitor slot of `campaign` on `day` (local days since
    /// 1970-01-01, `schedule::local_day`), if any is left.
    pub fn take(&mut self, campaign: &str, day: i64) -> bool {
        let entry = self.counts.entry(campaign.to_string()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

impl Default for VisitorCap {
    fn default() -> Self {
        Self::new(MAX_NEW_VISITORS_PER_DAY)
    }
}
