//! Moments SOPs (客户朋友圈) on the leading node: publishing the planned
//! posts that fell due, reading WeCom's job results, and reading the
//! customers' likes and comments back onto their timelines. The plans
//! and the audience rule are `siyu_growth::moments`; the WeCom calls are
//! `siyu_connectors::wecom::moments` and `tags`.
//!
//! How a post reaches exactly the customers siyu chose: WeCom's
//! `visible_range` names corp tags, not customers, and a siyu tag or
//! segment has no WeCom counterpart that could leave out the customers the
//! guardrails refused. So each post gets its own corp tag
//! (`siyu-moment-<id>`, group `siyu`, `add_corp_tag`), every reached
//! customer is marked with it as their operator sees them (`mark_tag`, one
//! call a customer), and the post is published to that one tag from the
//! chosen senders. A customer whose marking failed is left out
//! (`tag_failed`); an empty audience is never published (an empty
//! `visible_range` would mean every customer).
//!
//! Once, never twice: a plan is saved `publishing` before
//! `add_moment_task` and its job id right after; a plan found
//! `publishing` without a job id after [`INTERRUPTED_AFTER`] (the node
//! stopped mid-call) is failed, not published again. Only `planned` plans
//! due within `MISSED_AFTER` are published; an older one is `missed`.
//!
//! Engagement: for each post published within
//! `siyu_growth::moments::ENGAGEMENT_SECS`, `get_moment_comments` per
//! sender; each customer's like or comment becomes a `moment_like` /
//! `moment_comment` custom event on their `wecom:` identity with
//! properties `moment_id` and `plan`, its id the reaction's own (the log
//! stores it once however often it is read). They are live events: a
//! fresh one triggers journeys and auto-replies; segments and attribution
//! read them like any event.

use crate::error::ApiError;
use crate::request::{read_engine, with_store};
use crate::AppState;
use serde::Serialize;
use siyu_automation::guard::ConsentEntry;
use siyu_connectors::wecom::moments::{self as wm, Attachment, Moment, TaskResult};
use siyu_connectors::{SendError, WeComConnector};
use siyu_growth::community::operators::owner_of;
use siyu_growth::content::{self, Content};
use siyu_growth::moments::{
    self as gm, Candidate, MomentError, MomentPlan, Status, ENGAGEMENT_SECS,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How often the leader publishes due posts and reads job results.
pub const TICK_EVERY: Duration = Duration::from_secs(30);
/// How often the leader reads likes and comments.
pub const SYNC_EVERY: i64 = 600;
/// A plan `publishing` without a job id this long: its node stopped
/// between saving it and WeCom's answer.
pub const INTERRUPTED_AFTER: i64 = 600;
/// A job WeCom still runs after this long is given up.
pub const JOB_EXPIRY: i64 = 86_400;

impl From<MomentError> for ApiError {
    fn from(e: MomentError) -> Self {
        match e {
            MomentError::Invalid(m) => ApiError::InvalidDefinition(m),
            MomentError::NotFound(_) => ApiError::NotFound(e.to_string()),
            MomentError::NotPlanned(m) => ApiError::Conflict(m),
            MomentError::Unreadable { .. } => ApiError::Internal(e.to_string()),
            MomentError::Store(e) => ApiError::from(e),
        }
    }
}

async fn save(state: &AppState, plan: MomentPlan) -> Result<(), ApiError> {
    with_store(state, move |store| Ok(gm::save(store, &plan)?)).await
}

async fn plans(state: &AppState) -> Result<Vec<MomentPlan>, ApiError> {
    with_store(state, move |store| {
        let mut skipped = Vec::new();
        let plans = gm::list(store, &mut skipped)?;
        for (key, error) in skipped {
            crate::quarantine::Broken::skipped(&key, error);
        }
        Ok(plans)
    })
    .await
}

/// The persons an audience names, read from the engine, with their
/// consent from the store's ledger.
fn candidates(
    state: &AppState,
    store: &mut dyn siyu_store::Store,
    audience: &gm::Audience,
) -> Result<Vec<Candidate>, ApiError> {
    let mut ledger: HashMap<String, Vec<ConsentEntry>> = HashMap::new();
    for row in store.consent_ledger(None)? {
        ledger
            .entry(row.identity.clone())
            .or_default()
            .push(crate::automation::consent_entry(&row));
    }
    let engine = read_engine(state);
    let slots: Vec<u32> = match &audience.segment {
        Some(s) => {
            let segs = engine.live_segments();
            let Some(i) = segs.index_of(s) else {
                return Err(ApiError::InvalidDefinition(format!(
                    "audience.segment: segment `{s}` was deleted since the post was planned"
                )));
            };
            segs.segments()[i as usize].members().collect()
        }
        None => engine
            .persons()
            .filter(|(_, p)| {
                p.extra
                    .as_ref()
                    .is_some_and(|x| gm::has_any_tag(x.tags(), &audience.tags))
            })
            .map(|(slot, _)| slot)
            .collect(),
    };
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let Some(p) = engine.person(slot) else {
            continue;
        };
        let identities = engine.identities_of(slot);
        let mut entries: Vec<&ConsentEntry> = identities
            .iter()
            .filter_map(|i| ledger.get(i))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.ts);
        let consent = siyu_automation::guard::Consent::from_entries(entries);
        out.push(Candidate {
            person: engine.canonical_id(slot).to_string(),
            wecom: identities.iter().find(|i| i.starts_with("wecom:")).cloned(),
            operator: owner_of(p).map(str::to_string),
            opted_out: crate::automation::effective_opt_out(p.opted_out, &consent, gm::CHANNEL),
            consent,
            timezone: p
                .extra
                .as_ref()
                .and_then(|x| x.traits().get("timezone"))
                .and_then(|v| v.as_str())
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// Decides plan `id`'s audience at `at` and saves it `publishing`
/// (reached, excluded). `None` when it is no longer planned.
async fn decide_audience(
    state: &AppState,
    id: String,
    at: i64,
) -> Result<Option<MomentPlan>, ApiError> {
    let s = state.clone();
    with_store(state, move |store| {
        let mut plan = gm::load(store, &id)?;
        if plan.status != Status::Planned {
            return Ok(None);
        }
        let mut skipped = Vec::new();
        let all = gm::list(store, &mut skipped)?;
        let tz = crate::zone::load_time_zone(store)?;
        let policy =
            crate::zone::policy_in_zone(store.get_setting(crate::automation::POLICY_KEY)?, &tz)
                .unwrap_or_default();
        let people = match candidates(&s, store, &plan.audience) {
            Ok(c) => c,
            Err(e) => {
                plan.status = Status::Failed;
                plan.error = Some(e.to_string());
                plan.updated_at = at;
                gm::save(store, &plan)?;
                return Ok(None);
            }
        };
        let mut history = {
            let engine = read_engine(&s);
            gm::moment_history(&all, &plan.id, |i| {
                engine
                    .person_of(i)
                    .map(|slot| engine.canonical_id(slot).to_string())
            })
        };
        let audience = gm::plan_audience(&policy, &plan.senders, &people, &mut history, at);
        plan.status = Status::Publishing;
        plan.audience_size = audience.size;
        plan.excluded = audience.excluded;
        plan.reached = audience.reached;
        plan.published_at = Some(at);
        plan.updated_at = at;
        gm::save(store, &plan)?;
        Ok(Some(plan))
    })
    .await
}

fn fail(plan: &mut MomentPlan, at: i64, why: String) {
    tracing::warn!(moment = %plan.id, error = %why, "moment not published");
    plan.status = Status::Failed;
    plan.error = Some(why);
    plan.updated_at = at;
}

/// The post WeCom is asked to publish: the text, the content item as a
/// link card with its tracked URL (`/c/<id>`, which counts the view), the
/// images, the senders and the per-post tag.
fn moment_of(
    plan: &MomentPlan,
    items: &HashMap<String, Content>,
    public_url: &str,
    tag: &str,
) -> Moment {
    let attachments = plan
        .attachments
        .iter()
        .filter_map(|a| match (&a.content, &a.image) {
            (Some(c), _) => items.get(c).map(|item| Attachment::Link {
                title: item.title.clone(),
                url: format!("{}/c/{}", public_url.trim_end_matches('/'), item.id),
                media_id: None,
            }),
            (None, Some(m)) => Some(Attachment::Image {
                media_id: m.clone(),
            }),
            (None, None) => None,
        })
        .collect();
    Moment {
        text: plan.text.clone(),
        attachments,
        senders: plan.senders.clone(),
        tag_ids: vec![tag.to_string()],
    }
}

/// Publishes plan `id`: its audience, the per-post tag on each reached
/// customer, then `add_moment_task`; every step's outcome is saved. Answers
/// the plan's status after (`Cancelled`: nothing was done).
async fn publish(
    state: &AppState,
    wecom: &WeComConnector,
    id: String,
    at: i64,
) -> Result<Status, ApiError> {
    let Some(mut plan) = decide_audience(state, id, at).await? else {
        // No longer planned (cancelled meanwhile), or refused before WeCom.
        return Ok(Status::Cancelled);
    };
    if plan.reached.is_empty() {
        let why = format!(
            "no customer left to show it to: {} in the audience, left out {:?}",
            plan.audience_size, plan.excluded
        );
        fail(&mut plan, at, why);
        save(state, plan).await?;
        return Ok(Status::Failed);
    }
    let ids: Vec<String> = plan
        .attachments
        .iter()
        .filter_map(|a| a.content.clone())
        .collect();
    let items = with_store(state, move |store| {
        let mut out = HashMap::new();
        for id in ids {
            if let Some(v) = store.get_setting(&content::key(&id))? {
                if let Ok(c) = serde_json::from_value::<Content>(v) {
                    out.insert(id, c);
                }
            }
        }
        Ok(out)
    })
    .await?;
    let tag = match wecom.add_corp_tag(&wm::moment_tag_name(&plan.id)).await {
        Ok(t) => t,
        Err(e) => {
            fail(&mut plan, at, format!("wecom add_corp_tag: {}", e.detail()));
            save(state, plan).await?;
            return Ok(Status::Failed);
        }
    };
    plan.wecom_tag = Some(tag.clone());
    let mut tagged = Vec::with_capacity(plan.reached.len());
    for r in std::mem::take(&mut plan.reached) {
        let external = r.identity.trim_start_matches("wecom:");
        match wecom
            .mark_tag(&r.operator, external, std::slice::from_ref(&tag), &[])
            .await
        {
            Ok(()) => tagged.push(r),
            Err(e) => {
                tracing::info!(moment = %plan.id, customer = %r.identity, error = %e.detail(), "moment tag not marked; left out");
                *plan.excluded.entry("tag_failed".into()).or_default() += 1;
            }
        }
    }
    plan.reached = tagged;
    if plan.reached.is_empty() {
        fail(
            &mut plan,
            at,
            "wecom mark_tag failed for every customer".into(),
        );
        save(state, plan).await?;
        return Ok(Status::Failed);
    }
    // Tagging many customers takes a while: what `INTERRUPTED_AFTER`
    // measures starts again here, right before the call.
    plan.updated_at = plan.updated_at.max(crate::request::now());
    save(state, plan.clone()).await?;
    let moment = moment_of(&plan, &items, &state.0.config.public_url, &tag);
    match wecom.add_moment_task(&moment).await {
        Ok(jobid) => {
            plan.jobid = Some(jobid);
            plan.updated_at = at;
        }
        Err(e) => fail(
            &mut plan,
            at,
            format!("wecom add_moment_task: {}", e.detail()),
        ),
    }
    let status = plan.status;
    save(state, plan).await?;
    Ok(status)
}

/// What one [`tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TickReport {
    /// Due plans handed to WeCom (`add_moment_task` answered a job).
    pub published: u64,
    /// Jobs WeCom finished publishing.
    pub confirmed: u64,
    /// Plans that failed (nobody left to show it to, a WeCom refusal …).
    pub failed: u64,
    pub missed: u64,
}

/// Marks stale plans missed, publishes the due ones and reads the jobs'
/// results. Called by [`spawn`]'s loop on the leader, and by tests.
pub async fn tick(state: &AppState, at: i64) -> Result<TickReport, ApiError> {
    let mut report = TickReport::default();
    let Some(wecom) = state.0.wecom.clone() else {
        return Ok(report);
    };
    let all = plans(state).await?;
    let (due, missed) = gm::due(&all, at);
    for mut plan in all.iter().filter(|p| missed.contains(&p.id)).cloned() {
        plan.status = Status::Missed;
        plan.error =
            Some("it fell due while no node was leading; a late post is not published".into());
        plan.updated_at = at;
        save(state, plan).await?;
        report.missed += 1;
    }
    for id in due {
        match publish(state, &wecom, id, at).await? {
            Status::Failed => report.failed += 1,
            Status::Publishing => report.published += 1,
            _ => {}
        }
    }
    for mut plan in plans(state)
        .await?
        .into_iter()
        .filter(|p| p.status == Status::Publishing)
    {
        let Some(jobid) = plan.jobid.clone() else {
            if at - plan.updated_at > INTERRUPTED_AFTER {
                fail(&mut plan, at, "interrupted before WeCom answered add_moment_task; check 客户朋友圈 in WeCom before planning it again".into());
                save(state, plan).await?;
                report.failed += 1;
            }
            continue;
        };
        match wecom.moment_task_result(&jobid).await {
            Ok(TaskResult::Running) => {
                if at - plan.updated_at > JOB_EXPIRY {
                    fail(
                        &mut plan,
                        at,
                        format!("wecom job {jobid} still running after a day"),
                    );
                    save(state, plan).await?;
                    report.failed += 1;
                }
            }
            Ok(TaskResult::Published {
                moment_id,
                invalid_senders,
                ..
            }) => {
                plan.status = Status::Published;
                plan.moment_id = Some(moment_id);
                plan.invalid_senders = invalid_senders;
                plan.updated_at = at;
                save(state, plan).await?;
                report.confirmed += 1;
            }
            Ok(TaskResult::Failed(why)) => {
                fail(&mut plan, at, format!("wecom job {jobid}: {why}"));
                save(state, plan).await?;
                report.failed += 1;
            }
            Err(e @ SendError::Retryable(_)) => {
                tracing::warn!(moment = %plan.id, error = %e, "wecom get_moment_task_result");
            }
            Err(e) => {
                fail(
                    &mut plan,
                    at,
                    format!("wecom get_moment_task_result: {}", e.detail()),
                );
                save(state, plan).await?;
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// What one engagement [`sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SyncReport {
    /// Published posts read: siyu's, and those made in WeCom itself.
    pub moments: u64,
    /// Likes and comments WeCom listed.
    pub reactions: u64,
    /// Of those, new on a timeline (the rest were stored before).
    pub new_events: u64,
    /// Calls that failed (named in the log; read again next time).
    pub errors: u64,
}

/// Reads the likes and comments of every post published within
/// `ENGAGEMENT_SECS` before `at` onto the customers' timelines: siyu's
/// plans, then the posts made in WeCom itself ([`sync_unplanned`]).
pub async fn sync(state: &AppState, at: i64) -> Result<SyncReport, ApiError> {
    let mut report = SyncReport::default();
    let Some(wecom) = state.0.wecom.clone() else {
        return Ok(report);
    };
    let plans = plans(state).await?;
    let planned: BTreeSet<String> = plans.iter().filter_map(|p| p.moment_id.clone()).collect();
    for mut plan in plans {
        let (Status::Published, Some(moment_id)) = (plan.status, plan.moment_id.clone()) else {
            continue;
        };
        if plan.published_at.unwrap_or(plan.at) < at - ENGAGEMENT_SECS {
            continue;
        }
        report.moments += 1;
        let senders: Vec<&str> = plan
            .senders
            .iter()
            .filter(|s| !plan.invalid_senders.contains(s))
            .map(String::as_str)
            .collect();
        let read = read_reactions(&wecom, &moment_id, &senders, Some(&plan.id), &mut report).await;
        let (likes, comments) = read
            .reactions
            .iter()
            .fold((0, 0), |(l, c), r| match r.kind {
                "like" => (l + 1, c),
                _ => (l, c + 1),
            });
        let persons: BTreeSet<&str> = read
            .reactions
            .iter()
            .map(|r| r.external_userid.as_str())
            .collect();
        let persons = persons.len() as u64;
        let complete = read.complete;
        append_reactions(state, read.events, &mut report).await?;
        if complete {
            plan.engagement = gm::Engagement {
                likes,
                comments,
                persons,
                synced_at: Some(at),
            };
            save(state, plan).await?;
        }
    }
    sync_unplanned(state, &wecom, at, &planned, &mut report).await?;
    Ok(report)
}

/// A moment's likes and comments as read from WeCom.
struct ReadReactions {
    reactions: Vec<wm::Reaction>,
    /// Their timeline events (`moment_id`, and `plan` for siyu's posts).
    events: Vec<siyu_domain::Event>,
    /// Whether every sender's list was read.
    complete: bool,
}

/// Reads `moment_id`'s likes and comments as each of `senders` published
/// it (`get_moment_comments`); a failed read is logged and counted in
/// `report.errors`.
async fn read_reactions(
    wecom: &siyu_connectors::wecom::WeComConnector,
    moment_id: &str,
    senders: &[&str],
    plan: Option<&str>,
    report: &mut SyncReport,
) -> ReadReactions {
    let mut read = ReadReactions {
        reactions: Vec::new(),
        events: Vec::new(),
        complete: true,
    };
    for sender in senders {
        let reactions = match wecom.moment_reactions(moment_id, sender).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(moment = %moment_id, %sender, error = %e, "wecom get_moment_comments");
                report.errors += 1;
                read.complete = false;
                continue;
            }
        };
        for r in reactions {
            let mut v = wm::reaction_event(moment_id, &r);
            if let Some(plan) = plan {
                v["properties"]["plan"] = serde_json::json!(plan);
            }
            match siyu_domain::wire::parse_json_event(&v) {
                Ok(e) => read.events.push(e),
                Err(e) => {
                    tracing::warn!(moment = %moment_id, error = %e, "a reaction's event was refused")
                }
            }
            read.reactions.push(r);
        }
    }
    read
}

/// Appends reaction events and counts them: all read, and the new ones
/// (the rest were stored by an earlier sync).
async fn append_reactions(
    state: &AppState,
    events: Vec<siyu_domain::Event>,
    report: &mut SyncReport,
) -> Result<(), ApiError> {
    report.reactions += events.len() as u64;
    if events.is_empty() {
        return Ok(());
    }
    let appended = state
        .0
        .writer
        .append(events)
        .await
        .map_err(ApiError::Internal)?;
    report.new_events += appended
        .iter()
        .filter(|a| matches!(a, siyu_store::Appended::New(_)))
        .count() as u64;
    Ok(())
}

/// Most `get_moment_list` pages read per sync (20 posts each).
const MAX_LIST_PAGES: usize = 25;

/// The posts made in WeCom itself (`get_moment_list`; a member's own, or
/// the corp's from its admin console) within `ENGAGEMENT_SECS`: their
/// likes and comments onto the timelines like a plan's, with `moment_id`
/// and no `plan`. A personal post's comments are read with its creator, a
/// corp post's with each member who published it (`get_moment_task`).
async fn sync_unplanned(
    state: &AppState,
    wecom: &siyu_connectors::wecom::WeComConnector,
    at: i64,
    planned: &BTreeSet<String>,
    report: &mut SyncReport,
) -> Result<(), ApiError> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let (list, next) = match wecom
            .moment_list(at - ENGAGEMENT_SECS, at, cursor.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "wecom get_moment_list");
                report.errors += 1;
                break;
            }
        };
        for m in list.into_iter().filter(|m| !planned.contains(&m.moment_id)) {
            let senders = if m.personal {
                vec![m.creator.clone()]
            } else {
                match wecom.moment_members(&m.moment_id).await {
                    Ok(members) => members,
                    Err(e) => {
                        tracing::warn!(moment = %m.moment_id, error = %e, "wecom get_moment_task");
                        report.errors += 1;
                        continue;
                    }
                }
            };
            report.moments += 1;
            let senders: Vec<&str> = senders
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let read = read_reactions(wecom, &m.moment_id, &senders, None, report).await;
            events.extend(read.events);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    append_reactions(state, events, report).await?;
    Ok(())
}

/// A plan's outcome: who it reached, who engaged, who ordered after.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// Persons the audience named.
    pub audience: u64,
    /// Customers it was shown to.
    pub reached: u64,
    /// Left out, all reasons.
    pub excluded: u64,
    pub likes: u64,
    pub comments: u64,
    /// Customers who liked or commented.
    pub engaged: u64,
    /// Reached customers with a purchase within 7 days after publishing.
    pub ordered: u64,
}

/// The report of `plan` from the engine (purchases after publishing).
pub fn report(state: &AppState, plan: &MomentPlan) -> Report {
    let mut r = Report {
        audience: plan.audience_size,
        reached: plan.reached.len() as u64,
        excluded: plan.excluded.values().sum(),
        likes: plan.engagement.likes,
        comments: plan.engagement.comments,
        engaged: plan.engagement.persons,
        ordered: 0,
    };
    if let Some(from) = plan.published_at {
        let engine = read_engine(state);
        let mut seen = BTreeSet::new();
        for reached in &plan.reached {
            let Some(slot) = engine.person_of(&reached.identity) else {
                continue;
            };
            let Some(p) = engine.person(slot) else {
                continue;
            };
            let bought = p
                .purchases()
                .iter()
                .any(|b| (from..from + ENGAGEMENT_SECS).contains(&i64::from(b.ts)));
            if bought && seen.insert(slot) {
                r.ordered += 1;
            }
        }
    }
    r
}

/// The leader's loop: [`tick`] every [`TICK_EVERY`], [`sync`] every
/// [`SYNC_EVERY`], while this node holds the lease.
pub fn spawn(state: AppState) {
    if state.0.wecom.is_none() {
        return;
    }
    let app = Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_sync = 0;
        loop {
            every.tick().await;
            let Some(inner) = app.upgrade() else { break };
            if !inner.leader.is_leader() {
                continue;
            }
            let state = AppState(inner);
            let at = crate::request::now();
            match tick(&state, at).await {
                Ok(r) if r == TickReport::default() => {}
                Ok(r) => tracing::info!(?r, "moments tick"),
                Err(e) => tracing::warn!(error = %e, "moments tick failed"),
            }
            if at - last_sync >= SYNC_EVERY {
                last_sync = at;
                if let Err(e) = sync(&state, at).await {
                    tracing::warn!(error = %e, "moments engagement sync failed");
                }
            }
        }
    });
}
