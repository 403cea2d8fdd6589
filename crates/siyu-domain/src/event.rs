//! The event: one thing a person did (or that was done to them) on one channel.
//!
//! The thirteen built-in types are the private-domain vocabulary the engine
//! understands; `custom` carries anything else with free-form properties.

use crate::Identity;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// The kind of an event. The discriminants are stable: the engine and the
/// stores use them as compact codes.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EventType {
    Touch = 0,
    Comment = 1,
    Follow = 2,
    AddFriend = 3,
    Identify = 4,
    JoinGroup = 5,
    LeaveGroup = 6,
    MessageSent = 7,
    MessageRead = 8,
    Purchase = 9,
    Refund = 10,
    ReferralSignup = 11,
    OptOut = 12,
    /// A brand-defined event, named by [`Event::name`].
    Custom = 13,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::Touch,
        EventType::Comment,
        EventType::Follow,
        EventType::AddFriend,
        EventType::Identify,
        EventType::JoinGroup,
        EventType::LeaveGroup,
        EventType::MessageSent,
        EventType::MessageRead,
        EventType::Purchase,
        EventType::Refund,
        EventType::ReferralSignup,
        EventType::OptOut,
        EventType::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Touch => "touch",
            EventType::Comment => "comment",
            EventType::Follow => "follow",
            EventType::AddFriend => "add_friend",
            EventType::Identify => "identify",
            EventType::JoinGroup => "join_group",
            EventType::LeaveGroup => "leave_group",
            EventType::MessageSent => "message_sent",
            EventType::MessageRead => "message_read",
            EventType::Purchase => "purchase",
            EventType::Refund => "refund",
            EventType::ReferralSignup => "referral_signup",
            EventType::OptOut => "opt_out",
            EventType::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Purchase and refund carry an amount; nothing else does.
    pub fn has_amount(self) -> bool {
        matches!(self, EventType::Purchase | EventType::Refund)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name: lowercase ASCII letters, digits and `_`, at most 32 bytes.
/// The eight of [`Channel::KNOWN`] are the ones the console knows by name;
/// others are accepted so a brand can add its own.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Channel(String);

impl Channel {
    pub const KNOWN: [&'static str; 8] = [
        "douyin",
        "kuaishou",
        "xiaohongshu",
        "taobao",
        "offline",
        "wechat",
        "wecom",
        "miniprogram",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::is_valid(s).then(|| Channel(s.to_string()))
    }

    /// Whether `s` is a valid channel name (no allocation).
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Person traits a brand records: the well-known ones typed, the rest free-form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Traits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    /// IANA name, e.g. `Asia/Shanghai`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Tags taken off the person (applied after `tags`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    /// Any other trait, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Traits {
    pub fn is_empty(&self) -> bool {
        *self == Traits::default()
    }
}

/// One validated event. Build it with [`crate::parse_json_event`] or
/// [`crate::parse_csv_line`]; every field has already been checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Client-supplied id; a replay of the same id is ignored (idempotency).
    pub id: Option<String>,
    /// Source order (the bench files' `seq`); ties in `ts` are broken by it.
    pub seq: Option<u64>,
    /// Epoch seconds, UTC.
    pub ts: i64,
    pub identity: Identity,
    pub event_type: EventType,
    pub channel: Channel,
    /// Integer cents (fen); non-zero on purchase and refund only.
    pub amount: i64,
    /// The linked identity (`identify`) or the inviter (`referral_signup`).
    pub reference: Option<Identity>,
    /// Community id for join_group / leave_group.
    pub group: Option<String>,
    /// Comment or message text.
    pub text: Option<String>,
    /// Name of a custom event.
    pub name: Option<String>,
    /// Free-form properties (custom events, campaign data).
    pub properties: Option<Map<String, Value>>,
    /// Traits set on the person by this event.
    pub traits: Option<Traits>,
}

impl Event {
    /// A minimal event; the other fields default to empty.
    pub fn new(ts: i64, identity: Identity, event_type: EventType, channel: Channel) -> Self {
        Event {
            id: None,
            seq: None,
            ts,
            identity,
            event_type,
            channel,
            amount: 0,
            reference: None,
            group: None,
            text: None,
            name: None,
            properties: None,
            traits: None,
        }
    }
}
