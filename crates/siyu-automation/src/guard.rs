//! Guardrails: the one decision every outgoing message passes through.
//!
//! Why it exists: journeys, keyword replies, mass sends and operators all
//! send messages, and every one of them must respect the same rules (the
//! person's consent, frequency caps, platform quotas, quiet hours). Putting
//! the rules in one pure function, [`decide`], means there is exactly one
//! place to read them, audit them and test them; the executor only records
//! what it sent in a [`SendLedger`] and obeys the [`Decision`].
//!
//! The checks, in order (the first that applies wins, so every suppress
//! reason wins over a delay):
//!
//! | # | check | applies to | outcome |
//! |---|-------|-----------|---------|
//! | 1 | consent for the channel explicitly revoked for that channel | all | `Suppress(no_consent)` |
//! | 2 | global marketing opt-out (`Contact::opted_out`) | marketing | `Suppress(opted_out)` |
//! | 3 | no marketing consent for the channel (revoked globally, or never granted under `require_opt_in`) | marketing | `Suppress(no_consent)` |
//! | 4 | platform mass quota per local day (`mass_per_local_day`) | mass sends, any class | `Suppress(platform_quota)` |
//! | 5 | marketing cap across channels | marketing | `Suppress(marketing_cap)` |
//! | 6 | per-channel cap | marketing | `Suppress(channel_cap)` |
//! | 7 | quiet hours in the person's timezone | marketing | `Delay(quiet_hours)` until they end |
//!
//! A customer-Moments post (`SendKind::Moment`, 客户朋友圈) is not a
//! message in the person's chat: it shows in their Moments feed, with no
//! notification. It passes checks 1–3 like any marketing message, then
//! only its own cap, `moments_per_local_day` (`Suppress(moment_cap)`:
//! posts that reached the person this local day); the message caps (5, 6)
//! neither limit it nor count it, and quiet hours do not delay it (one
//! post is published for everyone at once, at the operator's time).
//!
//! Transactional messages (receipts, verification codes, replies the person
//! asked for) ignore the marketing opt-out, the caps and quiet hours, but
//! not an explicit revocation for that very channel, and not the platform's
//! own mass quota (the platform would reject the send anyway).
//!
//! Windows follow the engine's rule: a send at `ts` counts against a window
//! `w` while `now <= ts + w`. Caps count marketing sends only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schedule::{self, QuietHours, TimeOfDay, Tz};

/// What a message is, which decides which rules apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// Something the person needs or asked for: never capped or delayed.
    Transactional,
    /// Anything promotional: consent, caps and quiet hours apply.
    Marketing,
}

/// How a message goes out: to one person, or as part of a platform mass
/// send (which platforms like WeCom ration per customer per day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    Direct,
    Mass,
    /// A post in the customer's Moments feed (WeCom 客户朋友圈).
    Moment,
}

/// At most `max` sends within `window_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cap {
    pub max: u32,
    pub window_secs: i64,
}

/// The guardrail settings. Every field has a default, so `{}` is a valid
/// policy: 2 marketing messages per person per 7 days, WeCom's 1 mass
/// message per customer per local day, quiet hours 21:00–09:00 in the
/// person's timezone (Asia/Shanghai when unknown). `"quiet_hours": null`
/// turns quiet hours off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub marketing_cap: u32,
    pub marketing_window_secs: i64,
    pub channel_caps: BTreeMap<String, Cap>,
    pub mass_per_local_day: BTreeMap<String, u32>,
    pub quiet_hours: Option<QuietHours>,
    pub default_timezone: String,
    /// When true, marketing needs an explicit grant for the channel (or a
    /// global one); by default it is allowed until revoked.
    pub require_opt_in: bool,
    /// Posts to one community group per local day (SOP calendars,
    /// campaign announcements); a group is spammed as easily as a person.
    pub group_posts_per_day: u32,
    /// Customer-Moments posts that may reach one person per local day
    /// (`SendKind::Moment`): a person over it is left out of the next
    /// post's audience.
    pub moments_per_local_day: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            marketing_cap: 2,
            marketing_window_secs: 7 * 86_400,
            channel_caps: BTreeMap::new(),
            mass_per_local_day: BTreeMap::from([("wecom".to_string(), 1)]),
            quiet_hours: TimeOfDay::new(21, 0)
                .zip(TimeOfDay::new(9, 0))
                .map(|(start, end)| QuietHours { start, end }),
            default_timezone: schedule::DEFAULT_TZ.to_string(),
            require_opt_in: false,
            group_posts_per_day: 3,
            moments_per_local_day: 1,
        }
    }
}

/// A policy field that cannot work, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("marketing_window_secs must be positive (seconds), got {0}")]
    MarketingWindow(i64),
    #[error("channel_caps.{0}.window_secs must be positive (seconds), got {1}")]
    ChannelWindow(String, i64),
    #[error("default_timezone: {0}")]
    Timezone(#[from] schedule::ScheduleError),
}

impl Policy {
    /// Checks what serde cannot: positive windows, a known timezone. Run it
    /// when a policy is saved; [`decide`] itself never fails (a bad default
    /// timezone falls back to Asia/Shanghai).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.marketing_window_secs <= 0 {
            return Err(PolicyError::MarketingWindow(self.marketing_window_secs));
        }
        for (channel, cap) in &self.channel_caps {
            if cap.window_secs <= 0 {
                return Err(PolicyError::ChannelWindow(channel.clone(), cap.window_secs));
            }
        }
        Tz::parse(&self.default_timezone)?;
        Ok(())
    }
}

/// One message already sent to a person. 32 bytes: the channel name is an
/// `Arc<str>` shared by every record of that channel in a [`SendLedger`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRecord {
    pub ts: i64,
    pub channel: Arc<str>,
    pub class: MessageClass,
    pub kind: SendKind,
}

impl SendRecord {
    pub fn new(ts: i64, channel: &str, class: MessageClass, kind: SendKind) -> SendRecord {
        SendRecord {
            ts,
            channel: Arc::from(channel),
            class,
            kind,
        }
    }
}

/// Where a consent change came from (kept for the audit trail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// An `opt_out` event from a channel connector.
    OptOutEvent,
    /// The person clicked an unsubscribe link.
    UnsubscribeLink,
    /// The person replied "退订" / "TD" / "STOP" ([`is_unsubscribe_reply`]).
    ReplyKeyword,
    /// Set through the API or the console.
    Api,
    /// The person opted in (form, double opt-in, re-subscribe).
    OptIn,
}

/// One change to a person's consent: for one channel, or for all channels
/// when `channel` is `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentEntry {
    pub ts: i64,
    #[serde(default)]
    pub channel: Option<String>,
    pub granted: bool,
    pub source: ConsentSource,
}

/// The latest consent mark for one scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentMark {
    pub ts: i64,
    pub granted: bool,
    pub source: ConsentSource,
}

impl ConsentMark {
    /// Whether `self` supersedes `other`: later wins; at the same second a
    /// revocation wins (the safe side).
    fn beats(&self, other: &ConsentMark) -> bool {
        (self.ts, !self.granted) > (other.ts, !other.granted)
    }
}

/// A person's consent, folded from their [`ConsentEntry`] ledger.
///
/// Per scope (each channel, and "all channels") the latest entry wins, in
/// whatever order entries are applied. For a channel, the later of its own
/// mark and the global mark decides: a global revocation revokes every
/// channel, and a later grant for one channel re-opens just that channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Consent {
    #[serde(default)]
    pub global: Option<ConsentMark>,
    #[serde(default)]
    pub channels: BTreeMap<String, ConsentMark>,
}

/// The effective consent for one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    /// Nothing recorded.
    Unknown,
    Granted,
    /// Revoked by an entry for this very channel.
    RevokedChannel,
    /// Revoked by an entry for all channels.
    RevokedGlobal,
}

impl Consent {
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a ConsentEntry>) -> Consent {
        let mut consent = Consent::default();
        for entry in entries {
            consent.apply(entry);
        }
        consent
    }

    pub fn apply(&mut self, entry: &ConsentEntry) {
        let mark = ConsentMark {
            ts: entry.ts,
            granted: entry.granted,
            source: entry.source,
        };
        let slot = match &entry.channel {
            None => &mut self.global,
            Some(channel) => match self.channels.get_mut(channel.as_str()) {
                Some(existing) => {
                    if mark.beats(existing) {
                        *existing = mark;
                    }
                    return;
                }
                None => {
                    self.channels.insert(channel.clone(), mark);
                    return;
                }
            },
        };
        if slot.as_ref().is_none_or(|existing| mark.beats(existing)) {
            *slot = Some(mark);
        }
    }

    pub fn state(&self, channel: &str) -> ConsentState {
        let own = self.channels.get(channel);
        let winner = match (own, &self.global) {
            (Some(own), Some(global)) if global.beats(own) => (global, true),
            (Some(own), _) => (own, false),
            (None, Some(global)) => (global, true),
            (None, None) => return ConsentState::Unknown,
        };
        match winner {
            (mark, _) if mark.granted => ConsentState::Granted,
            (_, true) => ConsentState::RevokedGlobal,
            (_, false) => ConsentState::RevokedChannel,
        }
    }

    /// Marketing may go out on `channel` unless revoked (opt-out model).
    pub fn allows_marketing(&self, channel: &str) -> bool {
        !matches!(
            self.state(channel),
            ConsentState::RevokedChannel | ConsentState::RevokedGlobal
        )
    }
}

/// What [`decide`] needs to know about the person.
#[derive(Clone, Copy, Debug)]
pub struct Contact<'a> {
    /// The engine's global marketing opt-out.
    pub opted_out: bool,
    pub consent: &'a Consent,
    /// IANA name or offset; `None` or unparsable → the policy's default.
    pub timezone: Option<&'a str>,
    /// This person's recent sends, any order (e.g. [`SendLedger::history`]).
    pub history: &'a [SendRecord],
}

/// The message about to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendRequest<'a> {
    pub channel: &'a str,
    pub class: MessageClass,
    pub kind: SendKind,
}

/// Why a send must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DelayReason {
    QuietHours,
}

impl DelayReason {
    /// Stable snake_case code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DelayReason::QuietHours => "quiet_hours",
        }
    }
}

/// Why a send must not happen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SuppressReason {
    OptedOut,
    NoConsent {
        channel: String,
    },
    MarketingCap,
    ChannelCap {
        channel: String,
    },
    PlatformQuota {
        channel: String,
    },
    /// `moments_per_local_day` posts already reached the person today.
    MomentCap,
}

impl SuppressReason {
    /// Stable snake_case code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SuppressReason::OptedOut => "opted_out",
            SuppressReason::NoConsent { .. } => "no_consent",
            SuppressReason::MarketingCap => "marketing_cap",
            SuppressReason::ChannelCap { .. } => "channel_cap",
            SuppressReason::PlatformQuota { .. } => "platform_quota",
            SuppressReason::MomentCap => "moment_cap",
        }
    }
}

/// The guardrails' answer. A `Delay` is a promise to ask again at `until`,
/// not to send then: caps may have changed by that time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Send,
    Delay { until: i64, reason: DelayReason },
    Suppress { reason: SuppressReason },
}

impl Decision {
    /// "send", or the delay/suppress reason's code.
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Send => "send",
            Decision::Delay { reason, .. } => reason.code(),
            Decision::Suppress { reason } => reason.code(),
        }
    }
}

/// Decides whether `req` may go to `contact` at `now`. See the module doc
/// for the rules and their order. Never fails and never panics.
pub fn decide(policy: &Policy, contact: &Contact, req: &SendRequest, now: i64) -> Decision {
    let suppress = |reason| Decision::Suppress { reason };
    let channel = req.channel;
    let state = contact.consent.state(channel);
    if state == ConsentState::RevokedChannel {
        return suppress(SuppressReason::NoConsent {
            channel: channel.to_string(),
        });
    }
    let marketing = req.class == MessageClass::Marketing;
    if marketing {
        if contact.opted_out {
            return suppress(SuppressReason::OptedOut);
        }
        let allowed = match state {
            ConsentState::Granted => true,
            ConsentState::Unknown => !policy.require_opt_in,
            ConsentState::RevokedChannel | ConsentState::RevokedGlobal => false,
        };
        if !allowed {
            return suppress(SuppressReason::NoConsent {
                channel: channel.to_string(),
            });
        }
    }

    // The timezone is only parsed when a rule needs it.
    let mut tz: Option<Tz> = None;
    let mut person_tz = || {
        tz.get_or_insert_with(|| Tz::parse_or(contact.timezone, &policy.default_timezone))
            .clone()
    };

    if req.kind == SendKind::Moment {
        let tz = person_tz();
        let start = schedule::day_start(now, &tz);
        let end = schedule::next_time_of_day(now, TimeOfDay::MIDNIGHT, &tz);
        let today = contact
            .history
            .iter()
            .filter(|r| r.kind == SendKind::Moment && start <= r.ts && r.ts < end)
            .count();
        if today >= policy.moments_per_local_day as usize {
            return suppress(SuppressReason::MomentCap);
        }
        return Decision::Send;
    }

    if req.kind == SendKind::Mass {
        if let Some(&quota) = policy.mass_per_local_day.get(channel) {
            let tz = person_tz();
            let start = schedule::day_start(now, &tz);
            let end = schedule::next_time_of_day(now, TimeOfDay::MIDNIGHT, &tz);
            let sent_today = contact
                .history
                .iter()
                .filter(|r| r.kind == SendKind::Mass && &*r.channel == channel)
                .filter(|r| start <= r.ts && r.ts < end)
                .count();
            if sent_today >= quota as usize {
                return suppress(SuppressReason::PlatformQuota {
                    channel: channel.to_string(),
                });
            }
        }
    }

    if !marketing {
        return Decision::Send;
    }

    let in_window = |r: &SendRecord, window: i64| now <= r.ts.saturating_add(window);
    let marketing_sent = contact
        .history
        .iter()
        .filter(|r| {
            r.class == MessageClass::Marketing
                && r.kind != SendKind::Moment
                && in_window(r, policy.marketing_window_secs)
        })
        .count();
    if marketing_sent >= policy.marketing_cap as usize {
        return suppress(SuppressReason::MarketingCap);
    }
    if let Some(cap) = policy.channel_caps.get(channel) {
        let channel_sent = contact
            .history
            .iter()
            .filter(|r| {
                r.class == MessageClass::Marketing
                    && r.kind != SendKind::Moment
                    && &*r.channel == channel
            })
            .filter(|r| in_window(r, cap.window_secs))
            .count();
        if channel_sent >= cap.max as usize {
            return suppress(SuppressReason::ChannelCap {
                channel: channel.to_string(),
            });
        }
    }

    if let Some(quiet) = &policy.quiet_hours {
        let tz = person_tz();
        if quiet.contains(now, &tz) {
            return Decision::Delay {
                until: quiet.end_after(now, &tz),
                reason: DelayReason::QuietHours,
            };
        }
    }
    Decision::Send
}

/// Recognizes a reply that means "unsubscribe me": 退订, 退訂, 取消订阅,
/// TD, T, STOP, UNSUBSCRIBE (any case, full-width letters too), when it is
/// the whole message after trimming whitespace and punctuation. "退订。"
/// and "ＴＤ" count; "我不想退订" does not. A bare "N" does not count: people
/// answer "n" to questions far more often than they mean to unsubscribe.
pub fn is_unsubscribe_reply(text: &str) -> bool {
    const REPLIES: [&str; 8] = [
        "退订",
        "退訂",
        "取消订阅",
        "取消訂閱",
        "td",
        "t",
        "stop",
        "unsubscribe",
    ];
    if text.len() > 64 {
        return false;
    }
    let normalized: String = text
        .chars()
        .map(half_width)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let core = normalized.trim_matches(|c: char| c.is_whitespace() || !c.is_alphanumeric());
    REPLIES.contains(&core)
}

/// Full-width ASCII (U+FF01..U+FF5E) and the ideographic space to their
/// half-width forms; every other char unchanged.
pub(crate) fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Every person's recent sends, in memory, for [`decide`] at 100k+ persons.
///
/// Memory: 32 bytes per record (`SendRecord`: i64 + `Arc<str>` shared per
/// channel + two one-byte enums, padded), plus per person the id's bytes
/// and about 60 bytes of map entry and `Vec` header. Call [`prune`] with
/// `now - longest window` (e.g. daily) to keep only what the caps can see;
/// 100k persons × 5 recent sends ≈ 22 MB.
///
/// [`prune`]: SendLedger::prune
#[derive(Debug, Default)]
pub struct SendLedger {
    persons: HashMap<Box<str>, Vec<SendRecord>>,
    channels: HashSet<Arc<str>>,
    records: usize,
}

impl SendLedger {
    pub fn new() -> SendLedger {
        SendLedger::default()
    }

    /// Records that `rec` was sent to `person`.
    pub fn record(&mut self, person: &str, mut rec: SendRecord) {
        rec.channel = self.intern(&rec.channel);
        match self.persons.get_mut(person) {
            Some(history) => history.push(rec),
            None => {
                self.persons.insert(Box::from(person), vec![rec]);
            }
        }
        self.records += 1;
    }

    fn intern(&mut self, channel: &Arc<str>) -> Arc<str> {
        match self.channels.get(channel) {
            Some(shared) => Arc::clone(shared),
            None => {
                self.channels.insert(Arc::clone(channel));
                Arc::clone(channel)
            }
        }
    }

    /// `person`'s recorded sends, oldest recorded first (empty if none).
    pub fn history(&self, person: &str) -> &[SendRecord] {
        self.persons.get(person).map_or(&[], Vec::as_slice)
    }

    /// Drops every record with `ts < older_than`, and persons left with none.
    pub fn prune(&mut self, older_than: i64) {
        let mut kept = 0;
        self.persons.retain(|_, history| {
            history.retain(|r| r.ts >= older_than);
            if history.capacity() > 2 * history.len() + 4 {
                history.shrink_to_fit();
            }
            kept += history.len();
            !history.is_empty()
        });
        self.records = kept;
        self.channels.retain(|c| Arc::strong_count(c) > 1);
    }

    /// Persons with at least one record.
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// Records held.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Forgets `person` (erasure).
    pub fn forget(&mut self, person: &str) {
        if let Some(history) = self.persons.remove(person) {
            self.records -= history.len();
        }
    }
}
