//! Moments SOPs (客户朋友圈): posts planned per operator on a calendar,
//! shown to the customers an audience (tags or a segment) chooses, within
//! the guardrails, and what the customers did with them.
//!
//! A plan ([`MomentPlan`], setting `moment/<id>`) lives through
//! `planned` → `publishing` (WeCom's job id) → `published` (the moment's
//! id) or `failed` (why; WeCom's invalid senders), or `cancelled` by an
//! operator, or `missed` when it fell due more than [`MISSED_AFTER`] ago
//! (the server was down: a stale post is not published late). Only a
//! `planned` plan can be edited or cancelled.
//!
//! Who sees a post is decided here, before it is published
//! ([`plan_audience`]): every person the audience names, less those
//! without a `wecom:` identity, without an operator among the senders
//! (WeCom shows a member's post only to that member's customers, and a
//! customer is tagged as their operator sees them), and those
//! `siyu_automation::guard::decide` refuses for a `SendKind::Moment`:
//! opted out, consent revoked, or over `moments_per_local_day` counting
//! the posts already published to them ([`moment_history`]). The plan
//! records who was reached and how many were left out, per reason. The
//! server turns the reached customers into one WeCom corp tag per post
//! and publishes to that tag (see `siyu-server/src/moments.rs`).
//!
//! No I/O of its own and no clock: `now` is passed in, state through the
//! storage seam.

use crate::community::MISSED_AFTER;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::guard::{
    self, Consent, Contact, Decision, MessageClass, Policy, SendKind, SendRecord, SendRequest,
};
use siyu_domain::time::parse_rfc3339;
use siyu_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Settings prefix of the plans (`moment/<id>`).
pub const MOMENT_PREFIX: &str = "moment/";
/// The atomic counter new plans' ids are drawn from.
pub const ID_COUNTER: &str = "moment_seq";
/// WeCom's limits on one post (`siyu_connectors::wecom::moments`).
pub const MAX_TEXT_CHARS: usize = 2000;
pub const MAX_ATTACHMENTS: usize = 9;
/// Senders, tags per plan.
pub const MAX_SENDERS: usize = 100;
pub const MAX_TAGS: usize = 20;
/// How long after publishing a post's likes and comments are read.
pub const ENGAGEMENT_SECS: i64 = 7 * 86_400;
/// The channel a post goes out on (consent and the guardrails' channel).
pub const CHANNEL: &str = "wecom";

/// The domain's range of times (2000..2100).
const TIME_RANGE: std::ops::Range<i64> = 946_684_800..4_102_444_800;

/// Where a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Planned,
    Publishing,
    Published,
    Failed,
    Cancelled,
    Missed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Publishing => "publishing",
            Status::Published => "published",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Missed => "missed",
        }
    }
}

/// One attachment: a content-library item (a link card with its tracked
/// URL) or an image already uploaded to WeCom. Exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAttachment {
    /// A content-library item's id (`PUT /v1/content/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A WeCom media id (`media/upload_attachment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Who the post is for: customers with any of `tags`, or the members of
/// `segment`. Exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// What `POST /v1/moments` and `PUT /v1/moments/{id}` take.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MomentInput {
    /// Optional on create (one is drawn); ignored on edit.
    #[serde(default)]
    pub id: Option<String>,
    /// The corp members (operator logins = WeCom userids) who publish it.
    pub senders: Vec<String>,
    /// When to publish: RFC 3339 or epoch seconds, after now.
    #[schemars(with = "String")]
    pub at: Value,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<PlanAttachment>,
    pub audience: Audience,
}

/// One customer a published post was shown to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reached {
    /// Their `wecom:<external_userid>` identity.
    pub identity: String,
    /// The sender whose customer they are (their `operator`).
    pub operator: String,
}

/// Likes and comments read back from WeCom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Engagement {
    pub likes: u64,
    pub comments: u64,
    /// Customers who liked or commented.
    pub persons: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<i64>,
}

/// A plan as stored and answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MomentPlan {
    pub id: String,
    pub senders: Vec<String>,
    /// When it is (or was) due, epoch seconds.
    pub at: i64,
    pub text: String,
    #[serde(default)]
    pub attachments: Vec<PlanAttachment>,
    pub audience: Audience,
    pub status: Status,
    pub created_at: i64,
    pub updated_at: i64,
    /// WeCom's `add_moment_task` job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<i64>,
    /// Why it failed (or was missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Senders WeCom refused (not in the app's visible range, left …).
    #[serde(default)]
    pub invalid_senders: Vec<String>,
    /// The per-post WeCom corp tag its audience was marked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_tag: Option<String>,
    /// Persons the audience named, before exclusions.
    #[serde(default)]
    pub audience_size: u64,
    /// Persons left out, per reason (`no_wecom_identity`,
    /// `not_senders_customer`, `opted_out`, `no_consent`, `moment_cap`,
    /// `tag_failed`).
    #[serde(default)]
    pub excluded: BTreeMap<String, u64>,
    /// The customers it was shown to.
    #[serde(default)]
    pub reached: Vec<Reached>,
    #[serde(default)]
    pub engagement: Engagement,
}

/// Why a plan was refused, or could not be found or changed.
#[derive(Debug, thiserror::Error)]
pub enum MomentError {
    /// Bad input; the message names the field and the fix (422).
    #[error("{0}")]
    Invalid(String),
    #[error("no moment plan `{0}`")]
    NotFound(String),
    /// Only a planned post can change (409).
    #[error("{0}")]
    NotPlanned(String),
    #[error("moment plan `{key}` cannot be read: {error}")]
    Unreadable { key: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, MomentError>;

fn invalid(msg: impl Into<String>) -> MomentError {
    MomentError::Invalid(msg.into())
}

/// The settings key of plan `id`.
pub fn key(id: &str) -> String {
    format!("{MOMENT_PREFIX}{id}")
}

fn valid_id(id: &str, field: &str) -> Result<()> {
    if siyu_automation::journey::valid_name(id) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: `{id}` is not a valid id (1–64 of letters, digits, _ and -)"
        )))
    }
}

fn short_name(s: &str, field: &str, what: &str) -> Result<()> {
    if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: {what} is 1–64 characters without control characters"
        )));
    }
    Ok(())
}

/// What [`check`] needs to know besides the store.
pub struct Known<'a> {
    /// Whether a segment of this name is defined.
    pub segment: &'a dyn Fn(&str) -> bool,
}

/// A time given as RFC 3339 or epoch seconds, within the domain's range.
pub fn parse_at(v: &Value, field: &str) -> Result<i64> {
    let bad = || {
        invalid(format!(
            "{field}: give an RFC 3339 time (`2026-11-11T20:00:00+08:00`) or epoch seconds"
        ))
    };
    let ts = match v {
        Value::String(s) => parse_rfc3339(s).ok_or_else(bad)?,
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if !TIME_RANGE.contains(&ts) {
        return Err(bad());
    }
    Ok(ts)
}

/// Checks `input` at `now` (the time must be after now; every sender an
/// operator, every content item in the library, the segment defined) and
/// answers the plan it makes, `planned`, under `id`.
pub fn check(
    store: &mut dyn Store,
    known: &Known,
    id: &str,
    input: MomentInput,
    now: i64,
) -> Result<MomentPlan> {
    valid_id(id, "id")?;
    let at = parse_at(&input.at, "at")?;
    if at <= now {
        return Err(invalid(format!(
            "at: {} is not in the future; plan a time after now",
            siyu_domain::time::format_rfc3339(at)
        )));
    }
    if input.senders.is_empty() {
        return Err(invalid(
            "senders: name at least one operator (their login is their WeCom userid)",
        ));
    }
    if input.senders.len() > MAX_SENDERS {
        return Err(invalid(format!(
            "senders: at most {MAX_SENDERS} operators a post"
        )));
    }
    let mut seen = HashSet::new();
    for (i, s) in input.senders.iter().enumerate() {
        short_name(s, &format!("senders[{i}]"), "an operator's login")?;
        if !seen.insert(s.as_str()) {
            return Err(invalid(format!("senders[{i}]: `{s}` appears twice")));
        }
        if store
            .get_setting(&crate::community::operators::operator_key(s))?
            .is_none()
        {
            return Err(invalid(format!(
                "senders[{i}]: no operator `{s}`; PUT /v1/operators/{s} first"
            )));
        }
    }
    let chars = input.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "text: {chars} characters; WeCom takes at most {MAX_TEXT_CHARS}"
        )));
    }
    if input.text.trim().is_empty() && input.attachments.is_empty() {
        return Err(invalid("text: give a text or an attachment"));
    }
    if input.attachments.len() > MAX_ATTACHMENTS {
        return Err(invalid(format!(
            "attachments: {} given; at most {MAX_ATTACHMENTS} images, or one link card",
            input.attachments.len()
        )));
    }
    for (i, a) in input.attachments.iter().enumerate() {
        let field = format!("attachments[{i}]");
        match (&a.content, &a.image) {
            (Some(c), None) => {
                if input.attachments.len() > 1 {
                    return Err(invalid(format!(
                        "{field}.content: a link card goes alone (WeCom: at most {MAX_ATTACHMENTS} images, or one link)"
                    )));
                }
                let item = match store.get_setting(&crate::content::key(c))? {
                    Some(v) => serde_json::from_value::<crate::content::Content>(v).ok(),
                    None => None,
                };
                match item {
                    Some(item) if !item.archived => {}
                    Some(_) => {
                        return Err(invalid(format!(
                            "{field}.content: content `{c}` is archived; PUT /v1/content/{c} restores it"
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "{field}.content: no content item `{c}`; PUT /v1/content/{c} first"
                        )))
                    }
                }
            }
            (None, Some(m)) => {
                if m.trim().is_empty() || m.len() > 256 || m.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "{field}.image: a WeCom media id (media/upload_attachment), 1–256 bytes"
                    )));
                }
            }
            _ => {
                return Err(invalid(format!(
                    "{field}: give exactly one of `content` (a content item's id) or `image` (a WeCom media id)"
                )))
            }
        }
    }
    let audience = input.audience;
    match (&audience.segment, audience.tags.is_empty()) {
        (Some(_), false) | (None, true) => {
            return Err(invalid(
                "audience: give either `tags` (customers with any of them) or `segment`",
            ))
        }
        (Some(s), true) => {
            if !(known.segment)(s) {
                return Err(invalid(format!(
                    "audience.segment: no segment `{s}`; PUT /v1/segments/{s} first"
                )));
            }
        }
        (None, false) => {
            if audience.tags.len() > MAX_TAGS {
                return Err(invalid(format!("audience.tags: at most {MAX_TAGS} tags")));
            }
            for (i, t) in audience.tags.iter().enumerate() {
                short_name(t, &format!("audience.tags[{i}]"), "a tag")?;
            }
        }
    }
    Ok(MomentPlan {
        id: id.to_string(),
        senders: input.senders,
        at,
        text: input.text,
        attachments: input.attachments,
        audience,
        status: Status::Planned,
        created_at: now,
        updated_at: now,
        jobid: None,
        moment_id: None,
        published_at: None,
        error: None,
        invalid_senders: Vec::new(),
        wecom_tag: None,
        audience_size: 0,
        excluded: BTreeMap::new(),
        reached: Vec::new(),
        engagement: Engagement::default(),
    })
}

/// Plan `id`.
pub fn load(store: &mut dyn Store, id: &str) -> Result<MomentPlan> {
    let k = key(id);
    let Some(v) = store.get_setting(&k)? else {
        return Err(MomentError::NotFound(id.to_string()));
    };
    serde_json::from_value(v).map_err(|e| MomentError::Unreadable {
        key: k,
        error: e.to_string(),
    })
}

/// Stores `plan` under its id.
pub fn save(store: &mut dyn Store, plan: &MomentPlan) -> Result<()> {
    let v = serde_json::to_value(plan).map_err(|e| MomentError::Unreadable {
        key: key(&plan.id),
        error: e.to_string(),
    })?;
    store.put_setting(&key(&plan.id), Some(&v))?;
    Ok(())
}

/// Every readable plan by time; unreadable ones are named in `skipped`
/// (key, error) and left out.
pub fn list(store: &mut dyn Store, skipped: &mut Vec<(String, String)>) -> Result<Vec<MomentPlan>> {
    let mut out = Vec::new();
    for (k, v) in store.list_settings_each(MOMENT_PREFIX)? {
        match v
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value::<MomentPlan>(v).map_err(|e| e.to_string()))
        {
            Ok(p) => out.push(p),
            Err(e) => skipped.push((k, e)),
        }
    }
    out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(out)
}

/// A new plan: its id is `input.id`, else drawn from the store's
/// counter (`m1`, `m2` …); an id already taken is a 422.
pub fn create(
    store: &mut dyn Store,
    known: &Known,
    input: MomentInput,
    now: i64,
) -> Result<MomentPlan> {
    let given = input.id.clone();
    if let Some(id) = &given {
        valid_id(id, "id")?;
        if store.get_setting(&key(id))?.is_some() {
            return Err(invalid(format!(
                "id: `{id}` is taken; PUT /v1/moments/{id} edits it"
            )));
        }
    }
    // Checked before an id is drawn: a refused plan uses up no number.
    let mut plan = check(store, known, given.as_deref().unwrap_or("new"), input, now)?;
    if given.is_none() {
        plan.id = format!("m{}", store.increment_setting(ID_COUNTER)?);
    }
    save(store, &plan)?;
    Ok(plan)
}

fn must_be_planned(plan: &MomentPlan, doing: &str) -> Result<()> {
    if plan.status != Status::Planned {
        return Err(MomentError::NotPlanned(format!(
            "moment `{}` is {}; only a planned post can be {doing}",
            plan.id,
            plan.status.as_str()
        )));
    }
    Ok(())
}

/// Replaces a planned post's content, time and audience.
pub fn edit(
    store: &mut dyn Store,
    known: &Known,
    id: &str,
    input: MomentInput,
    now: i64,
) -> Result<MomentPlan> {
    let old = load(store, id)?;
    must_be_planned(&old, "edited")?;
    let mut plan = check(store, known, id, input, now)?;
    plan.created_at = old.created_at;
    save(store, &plan)?;
    Ok(plan)
}

/// Cancels a planned post.
pub fn cancel(store: &mut dyn Store, id: &str, now: i64) -> Result<MomentPlan> {
    let mut plan = load(store, id)?;
    must_be_planned(&plan, "cancelled")?;
    plan.status = Status::Cancelled;
    plan.updated_at = now;
    save(store, &plan)?;
    Ok(plan)
}

/// What the leader does with the plans at `now`: the planned ones due
/// (at most [`MISSED_AFTER`] late) to publish, the ones due longer ago
/// to mark missed. Pure.
pub fn due(plans: &[MomentPlan], now: i64) -> (Vec<String>, Vec<String>) {
    let mut publish = Vec::new();
    let mut missed = Vec::new();
    for p in plans.iter().filter(|p| p.status == Status::Planned) {
        if p.at > now {
            continue;
        }
        if now - p.at > MISSED_AFTER {
            missed.push(p.id.clone());
        } else {
            publish.push(p.id.clone());
        }
    }
    (publish, missed)
}

/// The posts already shown to each person, as the guardrails count them:
/// one `SendKind::Moment` record per reached customer of every
/// publishing or published plan (at its publishing time), keyed by the
/// person's current canonical id (`canonical_of` an identity; a merged
/// person keeps the posts each of its identities got). `except` is left
/// out (the plan being decided). Pure.
pub fn moment_history(
    plans: &[MomentPlan],
    except: &str,
    canonical_of: impl Fn(&str) -> Option<String>,
) -> HashMap<String, Vec<SendRecord>> {
    let mut out: HashMap<String, Vec<SendRecord>> = HashMap::new();
    for p in plans {
        if p.id == except || !matches!(p.status, Status::Publishing | Status::Published) {
            continue;
        }
        let ts = p.published_at.unwrap_or(p.at);
        for r in &p.reached {
            let person = canonical_of(&r.identity).unwrap_or_else(|| r.identity.clone());
            out.entry(person).or_default().push(SendRecord::new(
                ts,
                CHANNEL,
                MessageClass::Marketing,
                SendKind::Moment,
            ));
        }
    }
    out
}

/// One person the audience names, as the server read them.
#[derive(Clone, Debug, Default)]
pub struct Candidate {
    /// Their canonical id.
    pub person: String,
    /// Their first `wecom:` identity, if any.
    pub wecom: Option<String>,
    /// Their operator (trait `operator`).
    pub operator: Option<String>,
    /// The engine's marketing opt-out.
    pub opted_out: bool,
    /// Their consent ledger, folded.
    pub consent: Consent,
    pub timezone: Option<String>,
}

/// Who sees a post and who is left out, why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AudiencePlan {
    pub size: u64,
    pub reached: Vec<Reached>,
    pub excluded: BTreeMap<String, u64>,
}

/// Decides, per candidate, whether the post may reach them (see the
/// module doc): the guardrails' word is `guard::decide` for a
/// `SendKind::Moment` on [`CHANNEL`]. Each reached customer is recorded
/// in `history` as they are, so a person named twice is counted once.
pub fn plan_audience(
    policy: &Policy,
    senders: &[String],
    candidates: &[Candidate],
    history: &mut HashMap<String, Vec<SendRecord>>,
    now: i64,
) -> AudiencePlan {
    let mut plan = AudiencePlan::default();
    let mut excluded = |why: &str| *plan.excluded.entry(why.to_string()).or_default() += 1;
    let mut reached = Vec::new();
    let mut seen = HashSet::new();
    for c in candidates {
        if !seen.insert(c.person.as_str()) {
            continue;
        }
        plan.size += 1;
        let Some(wecom) = &c.wecom else {
            excluded("no_wecom_identity");
            continue;
        };
        let Some(operator) = c.operator.as_ref().filter(|o| senders.contains(o)) else {
            excluded("not_senders_customer");
            continue;
        };
        let past = history.get(&c.person).map_or(&[][..], Vec::as_slice);
        let decision = guard::decide(
            policy,
            &Contact {
                opted_out: c.opted_out,
                consent: &c.consent,
                timezone: c.timezone.as_deref(),
                history: past,
            },
            &SendRequest {
                channel: CHANNEL,
                class: MessageClass::Marketing,
                kind: SendKind::Moment,
            },
            now,
        );
        match decision {
            Decision::Send => {
                history
                    .entry(c.person.clone())
                    .or_default()
                    .push(SendRecord::new(
                        now,
                        CHANNEL,
                        MessageClass::Marketing,
                        SendKind::Moment,
                    ));
                reached.push(Reached {
                    identity: wecom.clone(),
                    operator: operator.clone(),
                });
            }
            // A post is published at once for everyone: a delay (never
            // given for a Moment) would be a miss for this person.
            other => excluded(other.code()),
        }
    }
    plan.reached = reached;
    plan
}

/// The customers a tag audience names: persons with any of `tags`.
pub fn has_any_tag(person_tags: &[String], tags: &[String]) -> bool {
    tags.iter().any(|t| person_tags.binary_search(t).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use siyu_automation::guard::{ConsentEntry, ConsentSource};

    /// 2024-06-03 12:00 in Shanghai.
    const NOON_SH: i64 = 1_717_387_200;

    fn cand(person: &str, operator: Option<&str>) -> Candidate {
        Candidate {
            person: person.into(),
            wecom: Some(format!("wecom:{person}")),
            operator: operator.map(str::to_string),
            ..Candidate::default()
        }
    }

    fn plan(id: &str, status: Status, at: i64, reached: &[&str]) -> MomentPlan {
        MomentPlan {
            id: id.into(),
            senders: vec!["zhangsan".into()],
            at,
            text: "t".into(),
            attachments: vec![],
            audience: Audience {
                tags: vec!["vip".into()],
                segment: None,
            },
            status,
            created_at: 0,
            updated_at: 0,
            jobid: None,
            moment_id: None,
            published_at: Some(at),
            error: None,
            invalid_senders: vec![],
            wecom_tag: None,
            audience_size: 0,
            excluded: BTreeMap::new(),
            reached: reached
                .iter()
                .map(|p| Reached {
                    identity: format!("wecom:{p}"),
                    operator: "zhangsan".into(),
                })
                .collect(),
            engagement: Engagement::default(),
        }
    }

    #[test]
    fn the_audience_is_narrowed_by_identity_operator_consent_and_the_daily_cap() {
        let policy = Policy::default(); // one post a customer a day
        let earlier = [
            plan("m1", Status::Published, NOON_SH - 3600, &["a"]),
            // Yesterday (local): does not count today.
            plan("m0", Status::Published, NOON_SH - 13 * 3600, &["b"]),
            // Failed and cancelled plans reached nobody.
            plan("mf", Status::Failed, NOON_SH - 60, &["c"]),
        ];
        let mut history = moment_history(&earlier, "m2", |i| {
            Some(i.trim_start_matches("wecom:").to_string())
        });
        let revoked = Consent::from_entries(&[ConsentEntry {
            ts: NOON_SH - 86_400,
            channel: Some("wecom".into()),
            granted: false,
            source: ConsentSource::Api,
        }]);
        let candidates = vec![
            cand("a", Some("zhangsan")),
            cand("b", Some("zhangsan")),
            cand("c", Some("zhangsan")),
            cand("c", Some("zhangsan")), // named twice: once
            Candidate {
                wecom: None,
                ..cand("d", Some("zhangsan"))
            },
            cand("e", Some("lisi")),
            cand("f", None),
            Candidate {
                opted_out: true,
                ..cand("g", Some("zhangsan"))
            },
            Candidate {
                consent: revoked,
                ..cand("h", Some("zhangsan"))
            },
        ];
        let got = plan_audience(
            &policy,
            &["zhangsan".to_string()],
            &candidates,
            &mut history,
            NOON_SH,
        );
        assert_eq!(got.size, 8);
        assert_eq!(
            got.reached
                .iter()
                .map(|r| r.identity.as_str())
                .collect::<Vec<_>>(),
            vec!["wecom:b", "wecom:c"]
        );
        assert_eq!(
            got.excluded,
            BTreeMap::from([
                ("moment_cap".to_string(), 1),
                ("no_consent".to_string(), 1),
                ("no_wecom_identity".to_string(), 1),
                ("not_senders_customer".to_string(), 2),
                ("opted_out".to_string(), 1),
            ])
        );
        // What was reached now counts: a second post today reaches nobody new.
        let again = plan_audience(
            &policy,
            &["zhangsan".to_string()],
            &candidates[..3],
            &mut history,
            NOON_SH + 60,
        );
        assert!(again.reached.is_empty());
        assert_eq!(again.excluded.get("moment_cap"), Some(&3));
        // A higher cap lets them through.
        let two = Policy {
            moments_per_local_day: 3,
            ..Policy::default()
        };
        let got = plan_audience(
            &two,
            &["zhangsan".to_string()],
            &candidates[..3],
            &mut history,
            NOON_SH + 120,
        );
        assert_eq!(got.reached.len(), 3);
    }

    #[test]
    fn due_plans_are_published_once_and_stale_ones_missed() {
        let plans = [
            plan("soon", Status::Planned, NOON_SH + 60, &[]),
            plan("now", Status::Planned, NOON_SH, &[]),
            plan("stale", Status::Planned, NOON_SH - MISSED_AFTER - 1, &[]),
            plan("done", Status::Published, NOON_SH - 60, &[]),
            plan("off", Status::Cancelled, NOON_SH - 60, &[]),
        ];
        let (publish, missed) = due(&plans, NOON_SH);
        assert_eq!(publish, vec!["now".to_string()]);
        assert_eq!(missed, vec!["stale".to_string()]);
        assert!(has_any_tag(&["a".into(), "vip".into()], &["vip".into()]));
        assert!(!has_any_tag(&["a".into()], &["vip".into()]));
    }
}
