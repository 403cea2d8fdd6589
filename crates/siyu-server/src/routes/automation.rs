//! HTTP endpoints of the automation: journeys, templates, auto-reply
//! rules, the guardrail policy, mass sends, the outbox (send audit and
//! dead letters), consent, tasks, inbound channel webhooks and the public
//! unsubscribe link. Definitions are validated here, at save time, and
//! every fault is reported with its path. Each handler answers with a
//! typed struct (or the core type that is the answer, such as `Policy`,
//! `Template`, `Journey`, `TaskRow`); a journey's report is computed by
//! `siyu_automation::report` from the rows read here.

use crate::automation::{
    self, MassSend, StoreCatalog, JOURNEY_PREFIX, POLICY_KEY, RULES_KEY, TEMPLATE_PREFIX,
};
use crate::error::ApiError;
use crate::references;
use crate::request::{
    blocking, now, parse_json, read_engine, removal_audit, route, valid_id, with_store,
    ArchivedQuery, Removed, Route,
};
use crate::zone;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::guard::Policy;
use siyu_automation::journey::{Journey, Trigger};
use siyu_automation::keyword::{Rule, RuleSet};
use siyu_automation::report;
use siyu_automation::template::{self, Template};
use siyu_domain::{parse_json_event, Event};
use siyu_store::{
    ConsentRow, EnrollmentRow, OutboxItem, OutboxQuery, OutboxStatus, SendAttempt, TaskRow,
};
use std::collections::{BTreeMap, HashSet};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/journeys", read, "Journeys with their current version and active enrollments.", list_journeys),
        route!(put, "/v1/journeys/{name}", write, "Save a journey (new version); faults are rejected with their path (`steps.wait.timeout: …`). Persons already in it stay on their version.", put_journey, body = Journey),
        route!(get, "/v1/journeys/{name}", read, "A journey's current definition and its versions.", get_journey),
        route!(delete, "/v1/journeys/{name}", write, "Archive a journey (its versions, enrollments and report stay; saving it again restores it): it enrolls nobody from now on. `enrollments=finish`: running enrollments go on to their end; `enrollments=exit`: they end now and their pending messages are cancelled before this answers. Required while anyone is enrolled.", delete_journey, statuses = [409]),
        route!(get, "/v1/journeys/{name}/report", read, "Enrollments, sends, suppressions by reason, dead letters, reads, conversions and revenue (purchases within `days`, default 7, after a read), and `skipped_history: {stale, backfill}`: triggers that enrolled nobody because the event was history (older than `trigger_max_age_secs`, or a `siyu import` without `--trigger`).", journey_report),
        route!(get, "/v1/journeys/{name}/enrollments", read, "Enrollments, newest first (`person`, `limit`).", journey_enrollments),
        route!(get, "/v1/templates", read, "Message templates.", list_templates),
        route!(put, "/v1/templates/{name}", write, "Save a template; syntax errors and unknown variables are rejected with part, line and column.", put_template, body = Template),
        route!(post, "/v1/templates/{name}/preview", read, "Render a template for a real person (`person` = any identity, `channel`).", preview_template),
        route!(delete, "/v1/templates/{name}", write, "Delete a template. 409 `in_use` naming every journey, auto-reply rule, campaign, live code and group calendar that sends it.", delete_template, statuses = [409]),
        route!(get, "/v1/autoreply", read, "Keyword auto-reply rules.", get_rules),
        route!(delete, "/v1/autoreply/{id}", write, "Delete one auto-reply rule (by its `id`) from the rule list.", delete_rule),
        route!(put, "/v1/autoreply", write, "Replace the keyword auto-reply rules (contains / any_of / regex, and/or `intents`: the message's intent, e.g. `[\"price\"]` — either matching is enough; reply template, tags, lead, operator, journey). `cooldown_secs` (default 600, at most 2592000; 0 answers every match): after a rule fires for a person, their further matches of it within that time do nothing; a lead task is made only when the rule has no open lead task for that person. Comments older than `trigger_max_age_secs` or imported without `--trigger` get no reply.", put_rules, body = (Vec<Rule>)),
        route!(get, "/v1/connectors", read, "Configured outbound channels (with their dispatch counters) and inbound webhook channels; never secrets.", list_connectors),
        route!(get, "/v1/guardrails", read, "The guardrail policy every send passes (caps, quotas, quiet hours).", get_policy),
        route!(put, "/v1/guardrails", write, "Replace the guardrail policy.", put_policy, body = Policy),
        route!(post, "/v1/sends", write, "Mass send a template to a segment or identities, through the guardrails (idempotent on `id`).", mass_send, body = MassSend),
        route!(get, "/v1/outbox", read, "Every send attempt and side effect with its verdict (`status` = pending|done|suppressed|dead, `journey`, `person`, `limit`); `status=dead` is the dead-letter queue.", list_outbox),
        route!(get, "/v1/outbox/attempts", read, "The send audit of one item (`key`): every attempt and its verdict (sent, delayed, retrying, done, suppressed, dead, requeued) with why.", outbox_attempts, statuses = [404]),
        route!(post, "/v1/outbox/retry", write, "Re-queue a dead-lettered item: `{\"key\": \"…\"}`.", retry_outbox, body = KeyBody, statuses = [404]),
        route!(post, "/v1/consent", write, "Record consent: `{\"identity\", \"channel\" (omit for all), \"granted\"}`.", post_consent, body = ConsentBody),
        route!(get, "/v1/persons/{id}/consent", read, "The consent ledger of a person (every identity).", person_consent),
        route!(get, "/v1/tasks", read, "Operators' follow-up tasks (`open`=true|false, `limit`).", list_tasks),
        route!(post, "/v1/tasks/done", write, "Complete a task: `{\"key\": \"…\"}`.", complete_task, body = KeyBody, statuses = [404]),
        route!(post, "/v1/inbound/{channel}", inbound, "Inbound channel webhook: events (JSON array or one object) signed with the channel's `[inbound]` secret over `<timestamp>.<workspace>.<body>` (`X-Siyu-Timestamp`, `X-Siyu-Signature: sha256=…`); each signature is accepted once (409 on a replay), a channel writes only its own identities (403), rate limited per address.", inbound, body = (Vec<serde_json::Map<String, Value>>)),
        route!(get, "/u/{token}", public, "Public unsubscribe page (the link in messages; rate limited per address): a mobile page whose button posts to itself. Errors are pages for a browser, JSON otherwise.", unsubscribe_page, answer_media = "text/html"),
        route!(post, "/u/{token}", public, "Public unsubscribe (rate limited per address): revokes all marketing for the person, recorded in the consent ledger; answers the confirmation page.", unsubscribe, answer_media = "text/html"),
    ]
}

/// Outbox items read for the per-step statistics of a report.
const STEP_STATS_LIMIT: usize = 200_000;

// ---------- journeys ----------

/// Whether a listed definition is in use or quarantined.
#[derive(Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    Broken,
}

/// A stored definition that could not be loaded (see `quarantine`).
#[derive(Clone, Serialize, schemars::JsonSchema)]
struct BrokenDefinition {
    name: String,
    /// Journeys only (absent for templates): the version, `null` when the
    /// key's is not a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<Option<u32>>,
    status: Status,
    error: String,
}

impl BrokenDefinition {
    /// From its settings key after the kind's prefix (`rest`).
    fn new(rest: &str, error: impl Into<String>) -> BrokenDefinition {
        let (name, version) = match rest.rsplit_once('/') {
            // journey/<name>/<version>
            Some((name, version)) => (name, Some(version.parse::<u32>().ok())),
            None => (rest, None),
        };
        BrokenDefinition {
            name: name.to_string(),
            version,
            status: Status::Broken,
            error: error.into(),
        }
    }
}

/// A listed definition: loaded, or quarantined with why.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Listed<T> {
    Ok(T),
    Broken(BrokenDefinition),
}

/// `PUT /v1/journeys/{name}`.
#[derive(Serialize, schemars::JsonSchema)]
struct JourneySaved {
    name: String,
    version: u32,
    steps: usize,
    enabled: bool,
}

async fn put_journey(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<JourneySaved>, ApiError> {
    valid_id(&name, "name")?;
    let mut j: Journey = parse_json(&body, "journey")?;
    if j.name.is_empty() {
        j.name = name.clone();
    }
    if j.name != name {
        return Err(ApiError::InvalidDefinition(format!(
            "name: {:?} differs from the path's {name:?}",
            j.name
        )));
    }
    let segments: HashSet<String> = read_engine(&state)
        .live_segments()
        .segments()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let s = state.clone();
    let (version, j) = with_store(&state, move |store| {
        let templates = automation::template_names(store)?;
        let prefix = format!("{JOURNEY_PREFIX}{name}/");
        // Unreadable versions count too: a new version never reuses a key.
        let version = store
            .list_settings_each(&prefix)?
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix)?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let catalog = StoreCatalog {
            segments: &segments,
            templates: &templates,
        };
        let compiled = j.clone().compile(version, &catalog).map_err(|errs| {
            ApiError::InvalidDefinition(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let value =
            serde_json::to_value(&compiled.def).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put_setting(&format!("{prefix}{version:06}"), Some(&value))?;
        Ok((version, compiled.def))
    })
    .await?;
    s.0.automation.reload();
    Ok(Json(JourneySaved {
        name: j.name,
        version,
        steps: j.steps.len(),
        enabled: j.enabled,
    }))
}

fn journey_versions(
    store: &mut dyn siyu_store::Store,
    name: &str,
) -> Result<Vec<(u32, Value)>, ApiError> {
    let prefix = format!("{JOURNEY_PREFIX}{name}/");
    // Unreadable versions are quarantined (see `BrokenDefinition`).
    Ok(store
        .list_settings_each(&prefix)?
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse::<u32>().ok()?, v.ok()?)))
        .collect())
}

/// A stored journey version as its definition; one that does not read
/// back (which the loader quarantines) is listed as broken with why.
fn stored_journey(name: &str, version: u32, def: Value) -> Result<Journey, BrokenDefinition> {
    serde_json::from_value(def)
        .map_err(|e| BrokenDefinition::new(&format!("{name}/{version:06}"), e.to_string()))
}

/// One journey in `GET /v1/journeys`.
#[derive(Serialize, schemars::JsonSchema)]
struct JourneySummary {
    name: String,
    version: u32,
    status: Status,
    enabled: bool,
    trigger: Trigger,
    steps: usize,
    /// Enrollments not done.
    active: usize,
    /// Archived (`DELETE /v1/journeys/{name}`): listed only with `?archived=true`.
    archived: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
struct JourneyList {
    journeys: Vec<Listed<JourneySummary>>,
}

async fn list_journeys(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<JourneyList>, ApiError> {
    let quarantine = state.0.quarantine.clone();
    with_store(&state, move |store| {
        let mut latest: BTreeMap<String, (u32, Value)> = BTreeMap::new();
        for (k, v) in store.list_settings_each(JOURNEY_PREFIX)? {
            // Unreadable or invalid: quarantined, listed below.
            let Ok(v) = v else { continue };
            if quarantine.error(&k).is_some() {
                continue;
            }
            let Some((name, ver)) = k
                .strip_prefix(JOURNEY_PREFIX)
                .and_then(|r| r.rsplit_once('/'))
            else {
                continue;
            };
            let Ok(ver) = ver.parse::<u32>() else {
                continue;
            };
            latest.insert(name.to_string(), (ver, v));
        }
        let mut out = Vec::new();
        for (name, (ver, def)) in latest {
            let def = match stored_journey(&name, ver, def) {
                Ok(def) => def,
                Err(broken) => {
                    out.push(Listed::Broken(broken));
                    continue;
                }
            };
            if def.archived && !shown.archived {
                continue;
            }
            let active = store
                .enrollments(&name, None, 100_000)?
                .iter()
                .filter(|e| !e.done)
                .count();
            out.push(Listed::Ok(JourneySummary {
                name,
                version: ver,
                status: Status::Ok,
                enabled: def.enabled,
                steps: def.steps.len(),
                trigger: def.trigger,
                active,
                archived: def.archived,
            }));
        }
        out.extend(
            quarantine
                .under(JOURNEY_PREFIX)
                .iter()
                .map(|(rest, error)| Listed::Broken(BrokenDefinition::new(rest, error.as_str()))),
        );
        Ok(Json(JourneyList { journeys: out }))
    })
    .await
}

/// `GET /v1/journeys/{name}`: the current version.
#[derive(Serialize, schemars::JsonSchema)]
struct JourneyDetail {
    name: String,
    version: u32,
    status: Status,
    definition: Journey,
    versions: Vec<u32>,
    broken_versions: Vec<BrokenDefinition>,
}

async fn get_journey(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Listed<JourneyDetail>>, ApiError> {
    let quarantined = state
        .0
        .quarantine
        .under(&format!("{JOURNEY_PREFIX}{name}/"));
    let broken: Vec<BrokenDefinition> = quarantined
        .iter()
        .map(|(version, error)| BrokenDefinition::new(&format!("{name}/{version}"), error.as_str()))
        .collect();
    with_store(&state, move |store| {
        let mut versions = journey_versions(store, &name)?;
        versions.retain(|(v, _)| {
            !quarantined
                .iter()
                .any(|(q, _)| q.parse::<u32>().ok() == Some(*v))
        });
        let Some((ver, def)) = versions.last().cloned() else {
            if let Some(latest) = broken.last() {
                return Ok(Json(Listed::Broken(latest.clone())));
            }
            return Err(ApiError::NotFound(format!(
                "no journey named `{name}`; GET /v1/journeys lists them"
            )));
        };
        let definition = match stored_journey(&name, ver, def) {
            Ok(def) => def,
            Err(broken) => return Ok(Json(Listed::Broken(broken))),
        };
        Ok(Json(Listed::Ok(JourneyDetail {
            version: ver,
            status: Status::Ok,
            definition,
            versions: versions.iter().map(|v| v.0).collect(),
            broken_versions: broken,
            name,
        })))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ArchiveJourneyQuery {
    enrollments: Option<String>,
}

/// `DELETE /v1/journeys/{name}`.
#[derive(Serialize, schemars::JsonSchema)]
struct JourneyArchived {
    #[serde(flatten)]
    removed: Removed,
    /// The archived version (a new one when the journey was not archived yet).
    version: u32,
    /// `finish` or `exit`.
    enrollments: &'static str,
    /// Enrollments ended now (`exit`; 0 for `finish`).
    exited: usize,
    /// Pending messages and side effects cancelled (`exit`).
    cancelled: usize,
    /// Enrollments still running to their end (`finish`).
    finishing: usize,
}

async fn delete_journey(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ArchiveJourneyQuery>,
) -> Result<Json<JourneyArchived>, ApiError> {
    let exit = match q.enrollments.as_deref() {
        None => None,
        Some("finish") => Some(false),
        Some("exit") => Some(true),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "enrollments: {other:?} is neither `finish` (running enrollments go on to their end) nor `exit` (they end now, pending messages cancelled)"
            )))
        }
    };
    let n = name.clone();
    let (version, running) = with_store(&state, move |store| {
        let versions = journey_versions(store, &n)?;
        let Some((latest, def)) = versions.last().cloned() else {
            return Err(ApiError::NotFound(format!(
                "no journey named `{n}`; GET /v1/journeys?archived=true lists them"
            )));
        };
        let running = store.enrollments(&n, None, usize::MAX >> 2)?.iter().filter(|e| !e.done).count();
        if running > 0 && exit.is_none() {
            return Err(ApiError::BadRequest(format!(
                "enrollments: {running} person(s) are in journey `{n}`; DELETE /v1/journeys/{n}?enrollments=finish lets them go on to the end, ?enrollments=exit ends them now and cancels their pending messages"
            )));
        }
        let mut j: Journey = serde_json::from_value(def).map_err(|e| {
            ApiError::Conflict(format!(
                "journey `{n}` version {latest} cannot be read ({e}); PUT /v1/journeys/{n} with a valid definition first"
            ))
        })?;
        if j.archived {
            return Ok((latest, running));
        }
        // A new version, so enrollments keep the one they entered and
        // version numbers are never reused.
        j.archived = true;
        j.enabled = false;
        let version = latest + 1;
        let value = serde_json::to_value(&j).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put_setting(&format!("{JOURNEY_PREFIX}{n}/{version:06}"), Some(&value))?;
        Ok((version, running))
    })
    .await?;
    state.0.automation.reload();
    let exited = if exit == Some(true) {
        state
            .0
            .automation
            .exit_journey(name.clone())
            .await
            .map_err(ApiError::Internal)?
    } else {
        automation::Exited::default()
    };
    let mode = if exit == Some(true) { "exit" } else { "finish" };
    let audit = removal_audit(
        "archive_journey",
        &name,
        serde_json::json!({"version": version, "enrollments": mode, "exited": exited.enrollments, "cancelled": exited.cancelled}),
    );
    with_store(&state, move |store| Ok(store.audit(&audit)?)).await?;
    Ok(Json(JourneyArchived {
        removed: Removed::archived("journey", name),
        version,
        enrollments: mode,
        exited: exited.enrollments,
        cancelled: exited.cancelled,
        finishing: if exit == Some(true) { 0 } else { running },
    }))
}

/// `DELETE /v1/templates/{name}`.
async fn delete_template(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let n = name.clone();
    with_store(&state, move |store| {
        let key = format!("{TEMPLATE_PREFIX}{n}");
        let stored = match store.get_setting(&key) {
            Ok(v) => v.is_some(),
            Err(siyu_store::StoreError::Corrupt(_)) => true,
            Err(e) => return Err(e.into()),
        };
        if !stored {
            return Err(ApiError::NotFound(format!(
                "no template named `{n}`; GET /v1/templates lists them"
            )));
        }
        let referrers = references::of_template(store, &n)?;
        if !referrers.is_empty() {
            return Err(references::in_use(&format!("template `{n}`"), &referrers));
        }
        store.put_setting(&key, None)?;
        store.audit(&removal_audit("delete_template", &n, serde_json::json!({})))?;
        Ok(())
    })
    .await?;
    state
        .0
        .quarantine
        .repaired(&format!("{TEMPLATE_PREFIX}{name}"));
    state.0.automation.reload();
    Ok(Json(Removed::deleted("template", name)))
}

/// `DELETE /v1/autoreply/{id}`: the rule list without that rule.
async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let i = id.clone();
    with_store(&state, move |store| {
        // Stored as sent (see `Rules`): edited as JSON, not re-serialized.
        let mut rules = match store.get_setting(RULES_KEY)? {
            Some(Value::Array(rules)) => rules,
            _ => Vec::new(),
        };
        let before = rules.len();
        rules.retain(|r| r.get("id").and_then(Value::as_str) != Some(i.as_str()));
        if rules.len() == before {
            return Err(ApiError::NotFound(format!(
                "no auto-reply rule with id `{i}`; GET /v1/autoreply lists them"
            )));
        }
        store.put_setting(RULES_KEY, Some(&Value::Array(rules)))?;
        store.audit(&removal_audit(
            "delete_autoreply_rule",
            &i,
            serde_json::json!({}),
        ))?;
        Ok(())
    })
    .await?;
    state.0.automation.reload();
    Ok(Json(Removed::deleted("autoreply_rule", id)))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ReportQuery {
    days: Option<u32>,
}

/// `GET /v1/journeys/{name}/report`: the counts of
/// `siyu_automation::report` and the message attribution `A` (sends,
/// reads, conversions, revenue, by template) side by side.
#[derive(Serialize, schemars::JsonSchema)]
struct JourneyReportBody<A> {
    journey: String,
    #[serde(flatten)]
    counts: report::JourneyReport,
    window_days: u32,
    #[serde(flatten)]
    attribution: A,
}

async fn journey_report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<JourneyReportBody<siyu_commerce::attribution::JourneyConversions>>, ApiError> {
    let days = q.days.unwrap_or(7).clamp(1, 365);
    let n2 = name.clone();
    let counts = with_store(&state, move |store| {
        if journey_versions(store, &n2)?.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no journey named `{n2}`; GET /v1/journeys lists them"
            )));
        }
        let all = store.enrollments(&n2, None, usize::MAX >> 1)?;
        let items = store.outbox_list(&OutboxQuery {
            journey: Some(n2.clone()),
            limit: STEP_STATS_LIMIT,
            ..Default::default()
        })?;
        let totals = store.outbox_counts(Some(&n2))?;
        let skipped: std::collections::BTreeMap<String, u64> = store
            .get_setting(&format!("{}{n2}", crate::automation::SKIPPED_PREFIX))?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        Ok(report::journey_report(
            all.iter().map(|e| report::EnrollmentFacts {
                done: e.done,
                state: &e.state,
            }),
            items.iter().map(|o| (o.key.as_str(), o.status.as_str())),
            totals
                .iter()
                .map(|(status, detail, n)| (status.as_str(), detail.as_str(), *n)),
            skipped.iter().map(|(reason, n)| (reason.as_str(), *n)),
        ))
    })
    .await?;
    // Reads, conversions and revenue: one pass over the log attributing a
    // purchase within `days` after a read of this journey's message.
    let s = state.clone();
    let n3 = name.clone();
    let attribution = blocking(move || {
        // The engine's identity table, copied in one short read: no engine
        // lock is held while the whole log is read.
        let persons = read_engine(&s).identity_index();
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        siyu_commerce::attribution::journey_conversions(
            store.as_mut(),
            &persons,
            &n3,
            days as i64 * 86_400,
        )
        .map_err(ApiError::from)
    })
    .await?;
    Ok(Json(JourneyReportBody {
        journey: name,
        counts,
        window_days: days,
        attribution,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EnrollmentsQuery {
    person: Option<String>,
    limit: Option<usize>,
}

/// One enrollment in `GET /v1/journeys/{name}/enrollments`.
#[derive(Serialize, schemars::JsonSchema)]
struct EnrollmentView {
    id: u64,
    identity: String,
    version: u32,
    entered_at: i64,
    done: bool,
    wake_at: Option<i64>,
    /// The step machine's state as the store keeps it (its JSON column).
    state: Value,
}

impl From<EnrollmentRow> for EnrollmentView {
    fn from(r: EnrollmentRow) -> Self {
        EnrollmentView {
            id: r.id,
            identity: r.identity,
            version: r.version,
            entered_at: r.entered_at,
            done: r.done,
            wake_at: r.wake_at,
            state: r.state,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct EnrollmentList {
    enrollments: Vec<EnrollmentView>,
}

async fn journey_enrollments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<EnrollmentsQuery>,
) -> Result<Json<EnrollmentList>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    with_store(&state, move |store| {
        let rows = store.enrollments(&name, q.person.as_deref(), limit)?;
        Ok(Json(EnrollmentList {
            enrollments: rows.into_iter().map(EnrollmentView::from).collect(),
        }))
    })
    .await
}

// ---------- templates ----------

/// `PUT /v1/templates/{name}`: the variables the template reads.
#[derive(Serialize, schemars::JsonSchema)]
struct TemplateSaved {
    name: String,
    variables: Vec<String>,
}

async fn put_template(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<TemplateSaved>, ApiError> {
    valid_id(&name, "name")?;
    let mut v: Value = parse_json(&body, "template")?;
    if let Some(o) = v.as_object_mut() {
        o.entry("name")
            .or_insert_with(|| Value::String(name.clone()));
    }
    let t: Template = serde_json::from_value(v)
        .map_err(|e| ApiError::InvalidDefinition(format!("template: {e}")))?;
    if t.name != name {
        return Err(ApiError::InvalidDefinition(format!(
            "name: {:?} differs from the path's {name:?}",
            t.name
        )));
    }
    let compiled = template::compile(&t).map_err(|e| ApiError::InvalidDefinition(e.to_string()))?;
    let variables = compiled.variables();
    let value = serde_json::to_value(&t).map_err(|e| ApiError::Internal(e.to_string()))?;
    let key = format!("{TEMPLATE_PREFIX}{name}");
    with_store(&state, move |store| {
        Ok(store.put_setting(&key, Some(&value))?)
    })
    .await?;
    state.0.automation.reload();
    Ok(Json(TemplateSaved { name, variables }))
}

#[derive(Serialize, schemars::JsonSchema)]
struct TemplateList {
    templates: Vec<Listed<Template>>,
}

async fn list_templates(State(state): State<AppState>) -> Result<Json<TemplateList>, ApiError> {
    let quarantine = state.0.quarantine.clone();
    with_store(&state, move |store| {
        // Unreadable rows are quarantined: listed with why, not as values.
        // A row that does not read back as a template (which the loader
        // quarantines) is listed the same way.
        let mut list: Vec<Listed<Template>> = store
            .list_settings_each(TEMPLATE_PREFIX)?
            .into_iter()
            .filter_map(|(key, v)| {
                let v = v.ok().filter(|_| quarantine.error(&key).is_none())?;
                Some(serde_json::from_value(v).map_or_else(
                    |e| {
                        let name = key.strip_prefix(TEMPLATE_PREFIX).unwrap_or(&key);
                        Listed::Broken(BrokenDefinition::new(name, e.to_string()))
                    },
                    Listed::Ok,
                ))
            })
            .collect();
        list.extend(
            quarantine
                .under(TEMPLATE_PREFIX)
                .iter()
                .map(|(name, error)| Listed::Broken(BrokenDefinition::new(name, error.as_str()))),
        );
        Ok(Json(TemplateList { templates: list }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct PreviewQuery {
    person: String,
    channel: Option<String>,
}

/// A template rendered for one person.
#[derive(Serialize, schemars::JsonSchema)]
struct Preview {
    person: String,
    channel: String,
    subject: Option<String>,
    body: String,
}

async fn preview_template(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<Json<Preview>, ApiError> {
    let key = format!("{TEMPLATE_PREFIX}{name}");
    let stored = with_store(&state, move |store| Ok(store.get_setting(&key)?)).await?;
    let Some(v) = stored else {
        return Err(ApiError::NotFound(format!(
            "no template named `{name}`; GET /v1/templates lists them"
        )));
    };
    let t: Template = serde_json::from_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    let compiled = template::compile(&t).map_err(|e| ApiError::Internal(e.to_string()))?;
    let channel = q.channel.unwrap_or_else(|| "wecom".into());
    let (person, r) =
        crate::preview::render_for_person(&state, &compiled, &q.person, &channel).await?;
    Ok(Json(Preview {
        person,
        channel,
        subject: r.subject,
        body: r.body,
    }))
}

// ---------- rules and policy ----------

/// `PUT /v1/autoreply`: how many rules were saved.
#[derive(Serialize, schemars::JsonSchema)]
struct RulesSaved {
    rules: usize,
}

async fn put_rules(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<RulesSaved>, ApiError> {
    let v: Value = parse_json(&body, "rules")?;
    let list = v.get("rules").cloned().unwrap_or(v);
    let rules: Vec<Rule> = serde_json::from_value(list.clone())
        .map_err(|e| ApiError::InvalidDefinition(format!("rules: {e}")))?;
    let n = rules.len();
    // The templates a rule replies with must exist, as a journey's do.
    let replies: Vec<(usize, String)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.reply_template.clone().map(|t| (i, t)))
        .collect();
    RuleSet::compile(rules).map_err(|e| ApiError::InvalidDefinition(e.to_string()))?;
    with_store(&state, move |store| {
        let templates = crate::automation::template_names(store)?;
        if let Some((i, t)) = replies.iter().find(|(_, t)| !templates.contains(t)) {
            return Err(ApiError::InvalidDefinition(format!(
                "rules[{i}].reply_template: unknown template {t:?}; save it first (PUT /v1/templates/{t})"
            )));
        }
        Ok(store.put_setting(RULES_KEY, Some(&list))?)
    })
    .await?;
    state.0.automation.reload();
    Ok(Json(RulesSaved { rules: n }))
}

/// `GET /v1/autoreply`.
#[derive(Serialize, schemars::JsonSchema)]
struct Rules {
    /// The rule list exactly as it was saved (stored as sent, so fields the
    /// operator left to their defaults stay absent): not re-serialized.
    rules: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn get_rules(State(state): State<AppState>) -> Result<Json<Rules>, ApiError> {
    if let Some(error) = state.0.quarantine.error(RULES_KEY) {
        return Ok(Json(Rules {
            rules: Value::Array(Vec::new()),
            status: Some(Status::Broken),
            error: Some(error),
        }));
    }
    let v = with_store(&state, |store| Ok(store.get_setting(RULES_KEY)?)).await?;
    Ok(Json(Rules {
        rules: v.unwrap_or_else(|| Value::Array(Vec::new())),
        status: None,
        error: None,
    }))
}

async fn put_policy(State(state): State<AppState>, body: Bytes) -> Result<Json<Policy>, ApiError> {
    let p: Policy = parse_json(&body, "policy")?;
    // Without its own default_timezone the policy follows the workspace
    // time zone (`zone::policy_in_zone`), now and after it changes.
    let names_zone = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|v| v.get("default_timezone").is_some());
    let mut v = serde_json::to_value(&p).map_err(|e| ApiError::Internal(e.to_string()))?;
    let p = if names_zone {
        p
    } else {
        if let Some(fields) = v.as_object_mut() {
            fields.remove("default_timezone");
        }
        zone::policy_in_zone(Some(v.clone()), &zone::current(&state))
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    p.validate()
        .map_err(|e| ApiError::InvalidDefinition(e.to_string()))?;
    with_store(&state, move |store| {
        Ok(store.put_setting(POLICY_KEY, Some(&v))?)
    })
    .await?;
    state.0.automation.reload();
    Ok(Json(p))
}

/// `GET /v1/guardrails`: the policy in force; when the stored one cannot
/// be read, the default with `status` and `error` saying why.
#[derive(Serialize, schemars::JsonSchema)]
struct PolicyView {
    #[serde(flatten)]
    policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn get_policy(State(state): State<AppState>) -> Result<Json<PolicyView>, ApiError> {
    // A stored policy that cannot be read: the default applies; say why.
    let broken = state.0.quarantine.error(POLICY_KEY);
    let v = match broken {
        Some(_) => None,
        None => with_store(&state, |store| Ok(store.get_setting(POLICY_KEY)?)).await?,
    };
    let tz = zone::current(&state);
    let policy: Policy = zone::policy_in_zone(v, &tz)
        .or_else(|_| zone::policy_in_zone(None, &tz))
        .unwrap_or_default();
    Ok(Json(PolicyView {
        policy,
        status: broken.as_ref().map(|_| Status::Broken),
        error: broken,
    }))
}

// ---------- sends, outbox, consent, tasks ----------

/// `POST /v1/sends`: how many messages were queued (0 for a repeated id).
#[derive(Serialize, schemars::JsonSchema)]
struct Queued {
    id: String,
    queued: u64,
}

async fn mass_send(State(state): State<AppState>, body: Bytes) -> Result<Json<Queued>, ApiError> {
    let m: MassSend = parse_json(&body, "send")?;
    if m.id.is_empty() || m.id.len() > 128 {
        return Err(ApiError::InvalidDefinition(
            "id: 1–128 bytes, unique per send".into(),
        ));
    }
    if m.segment.is_none() && m.identities.is_empty() {
        return Err(ApiError::InvalidDefinition(
            "segment or identities: name who to send to".into(),
        ));
    }
    if m.kind == siyu_automation::guard::SendKind::Moment {
        return Err(ApiError::InvalidDefinition(
            "kind: a send is `direct` or `mass`; plan Moments posts under /v1/moments".into(),
        ));
    }
    let id = m.id.clone();
    let queued = state
        .0
        .automation
        .mass_send(m)
        .await
        .map_err(ApiError::InvalidDefinition)?;
    Ok(Json(Queued { id, queued }))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct OutboxParams {
    status: Option<String>,
    journey: Option<String>,
    person: Option<String>,
    limit: Option<usize>,
}

/// One outbox item (a side effect and its verdict).
#[derive(Serialize, schemars::JsonSchema)]
struct OutboxView {
    key: String,
    status: OutboxStatus,
    detail: String,
    attempts: u32,
    journey: Option<String>,
    identity: String,
    /// The executor's action as the store keeps it (its JSON column).
    action: Value,
    created_at: i64,
    updated_at: i64,
    not_before: i64,
}

impl From<OutboxItem> for OutboxView {
    fn from(o: OutboxItem) -> Self {
        OutboxView {
            key: o.key,
            status: o.status,
            detail: o.detail,
            attempts: o.attempts,
            journey: o.journey,
            identity: o.identity,
            action: o.action,
            created_at: o.created_at,
            updated_at: o.updated_at,
            not_before: o.not_before,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct OutboxList {
    items: Vec<OutboxView>,
}

async fn list_outbox(
    State(state): State<AppState>,
    Query(q): Query<OutboxParams>,
) -> Result<Json<OutboxList>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(OutboxStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status `{s}`: use pending, done, suppressed or dead"
            ))
        })?),
    };
    let query = OutboxQuery {
        status,
        journey: q.journey,
        identity: q.person,
        limit: q.limit.unwrap_or(100).min(10_000),
    };
    with_store(&state, move |store| {
        Ok(Json(OutboxList {
            items: store
                .outbox_list(&query)?
                .into_iter()
                .map(OutboxView::from)
                .collect(),
        }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    key: String,
}

/// `POST /v1/outbox/retry`: the item is pending again.
#[derive(Serialize, schemars::JsonSchema)]
struct Requeued {
    key: String,
    status: OutboxStatus,
}

async fn retry_outbox(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Requeued>, ApiError> {
    let b: KeyBody = parse_json(&body, "retry")?;
    let ok = state
        .0
        .automation
        .retry(b.key.clone())
        .await
        .map_err(ApiError::Internal)?;
    if !ok {
        return Err(ApiError::NotFound(format!(
            "no dead-lettered item `{}`; GET /v1/outbox?status=dead lists them",
            b.key
        )));
    }
    Ok(Json(Requeued {
        key: b.key,
        status: OutboxStatus::Pending,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    identity: String,
    #[serde(default)]
    channel: Option<String>,
    granted: bool,
}

/// `POST /v1/consent`: what was recorded.
#[derive(Serialize, schemars::JsonSchema)]
struct ConsentRecorded {
    identity: String,
    channel: Option<String>,
    granted: bool,
    ts: i64,
}

async fn post_consent(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ConsentRecorded>, ApiError> {
    let b: ConsentBody = parse_json(&body, "consent")?;
    siyu_domain::Identity::parse(&b.identity)
        .map_err(|e| ApiError::InvalidDefinition(format!("identity: {e}")))?;
    if let Some(c) = &b.channel {
        if !siyu_domain::Channel::is_valid(c) {
            return Err(ApiError::InvalidDefinition(format!(
                "channel: {c:?} is not a channel name"
            )));
        }
    }
    let row = ConsentRow {
        ts: now(),
        identity: b.identity,
        channel: b.channel,
        granted: b.granted,
        source: "api".into(),
    };
    let out = ConsentRecorded {
        identity: row.identity.clone(),
        channel: row.channel.clone(),
        granted: row.granted,
        ts: row.ts,
    };
    state
        .0
        .automation
        .consent(row)
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(out))
}

/// `GET /v1/persons/{id}/consent`: every identity's entries, oldest first.
#[derive(Serialize, schemars::JsonSchema)]
struct ConsentLedger {
    ledger: Vec<ConsentRow>,
}

async fn person_consent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConsentLedger>, ApiError> {
    let ids = {
        let e = read_engine(&state);
        match e.person_of(&id) {
            Some(slot) => e.identities_of(slot),
            None => {
                return Err(ApiError::NotFound(format!(
                    "no person with identity `{id}`"
                )))
            }
        }
    };
    with_store(&state, move |store| {
        let mut rows = Vec::new();
        for i in &ids {
            rows.extend(store.consent_ledger(Some(i))?);
        }
        rows.sort_by_key(|r| r.ts);
        Ok(Json(ConsentLedger { ledger: rows }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TaskParams {
    open: Option<bool>,
    limit: Option<usize>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Tasks {
    tasks: Vec<TaskRow>,
}

async fn list_tasks(
    State(state): State<AppState>,
    Query(q): Query<TaskParams>,
) -> Result<Json<Tasks>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    with_store(&state, move |store| {
        Ok(Json(Tasks {
            tasks: store.tasks(q.open.unwrap_or(true), limit)?,
        }))
    })
    .await
}

/// `POST /v1/tasks/done`.
#[derive(Serialize, schemars::JsonSchema)]
struct TaskDone {
    key: String,
    /// Always true: an unknown or finished task is a 404.
    done: bool,
}

async fn complete_task(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<TaskDone>, ApiError> {
    let b: KeyBody = parse_json(&body, "task")?;
    let key = b.key.clone();
    let done = with_store(&state, move |store| Ok(store.complete_task(&key, now())?)).await?;
    if !done {
        return Err(ApiError::NotFound(format!("no open task `{}`", b.key)));
    }
    Ok(Json(TaskDone {
        key: b.key,
        done: true,
    }))
}

// ---------- inbound and unsubscribe ----------

/// How far a webhook's timestamp may be from now (either side).
pub const INBOUND_TOLERANCE_SECS: i64 = 300;

/// A channel's webhook: the remote signs `<timestamp>.<workspace>.<body>`
/// with the channel's secret (this workspace's `[inbound]`); a signature
/// is accepted once (replays within the tolerance window are 409), and a
/// channel writes only its own identities (`douyin` → `douyin:…`, else
/// 403 and nothing is written). The events go through the same
/// validation and writer as `/v1/events`.
/// An inbound event that was not valid: its index in the request, the
/// field and why. Fields in alphabetical order: the 400's message lists
/// them as JSON in this order.
#[derive(Serialize, schemars::JsonSchema)]
struct RejectedEvent {
    field: &'static str,
    index: usize,
    message: String,
}

/// `POST /v1/inbound/{channel}`.
#[derive(Serialize, schemars::JsonSchema)]
struct InboundAccepted {
    accepted: usize,
    rejected: Vec<RejectedEvent>,
}

async fn inbound(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Bytes,
) -> Result<Json<InboundAccepted>, ApiError> {
    let answer = take_inbound(&state, peer, headers, &channel, body).await;
    let activity = &state.0.channel_activity;
    // Only configured channels are counted: any path would make a row.
    if !state.0.config.inbound_secrets.contains_key(&channel) {
        return answer;
    }
    activity.record(&channel, "events", answer)
}

async fn take_inbound(
    state: &AppState,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    channel: &str,
    body: Bytes,
) -> Result<Json<InboundAccepted>, ApiError> {
    crate::ratelimit::check(state, crate::ratelimit::Limit::Inbound, &peer, &headers)?;
    let Some(secret) = state.0.config.inbound_secrets.get(channel) else {
        return Err(ApiError::NotFound(format!(
            "no inbound webhook for channel `{channel}`; add `[inbound] {channel} = \"<secret>\"` to the config"
        )));
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let at = now();
    let signature = header("x-siyu-signature");
    let ts = siyu_connectors::verify_inbound(
        secret.as_bytes(),
        &state.0.config.workspace,
        header("x-siyu-timestamp"),
        &body,
        signature,
        at,
        INBOUND_TOLERANCE_SECS,
    )
    .map_err(|e| {
        ApiError::BadSignature(format!(
            "{e}; sign `<timestamp>.<workspace>.<body>` with HMAC-SHA256 and the channel's secret"
        ))
    })?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let items = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut events: Vec<Event> = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (i, mut item) in items.into_iter().enumerate() {
        if let Some(o) = item.as_object_mut() {
            o.entry("channel")
                .or_insert_with(|| Value::String(channel.to_string()));
            o.entry("ts").or_insert_with(|| Value::from(at));
        }
        match parse_json_event(&item) {
            Ok(e) => {
                crate::inbound::own_identities(channel, i, &e)?;
                events.push(e)
            }
            Err(e) => rejected.push(RejectedEvent {
                field: e.field,
                index: i,
                message: e.message,
            }),
        }
    }
    if events.is_empty() {
        let listed =
            serde_json::to_string(&rejected).map_err(|e| ApiError::Internal(e.to_string()))?;
        return Err(ApiError::InvalidEvent(format!("no valid event: {listed}")));
    }
    // Checked last, so a request refused above can be fixed and re-signed
    // freely; remembered until its timestamp leaves the window.
    // Keyed by what was signed (channel, timestamp, body), not by the
    // header's spelling: ` sha256=AB…` and `sha256=ab…` are one request.
    let mut replay_key = format!("{channel}\n{ts}\n").into_bytes();
    replay_key.extend_from_slice(&body);
    match state
        .0
        .inbound_replays
        .check(&replay_key, ts + INBOUND_TOLERANCE_SECS, at)
    {
        crate::replay::Seen::New => {}
        crate::replay::Seen::Replayed => {
            return Err(ApiError::Replayed(
                "this signed request was already accepted; sign a new request (new X-Siyu-Timestamp) to send again".into(),
            ))
        }
        crate::replay::Seen::Full => return Err(ApiError::TooManyRequests),
    }
    let n = match crate::inbound::append(state, channel, events).await {
        Ok(n) => n,
        Err(e) => {
            // Nothing was written: the sender may retry the same request.
            state.0.inbound_replays.forget(&replay_key);
            return Err(e);
        }
    };
    Ok(Json(InboundAccepted {
        accepted: n,
        rejected,
    }))
}

/// The person an unsubscribe token names (current or legacy form).
async fn unsubscribe_target(state: &AppState, token: &str) -> Result<String, ApiError> {
    let secret = state.0.link_secret.clone();
    let token = token.to_string();
    with_store(state, move |store| {
        Ok(crate::links::resolve(
            store,
            &secret,
            "unsubscribe",
            &token,
            now(),
        )?)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("this unsubscribe link is not valid".into()))
}

/// The unsubscribe page (`h5`): one button, posting to itself.
async fn unsubscribe_page(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, Response> {
    let html = crate::h5::wants_html(&headers);
    let fail = |e| crate::h5::error(html, e, crate::h5::Link::Unsubscribe);
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )
    .map_err(fail)?;
    unsubscribe_target(&state, &token).await.map_err(fail)?;
    use crate::h5::{both, path_segment};
    let body = format!(
        "<section class=\"card center\"><h1>{}</h1><p>{}</p>\
         <form method=post action=\"/u/{}\"><button class=btn type=submit>{}</button></form></section>",
        both("退订营销消息", "Unsubscribe"),
        both(
            "退订后，你将不再收到我们的营销消息；订单和服务通知不受影响。",
            "You will get no more marketing messages from us; order and service notices still arrive."
        ),
        path_segment(&token),
        both("确认退订", "Unsubscribe"),
    );
    Ok(crate::h5::page(StatusCode::OK, "退订 Unsubscribe", &body))
}

/// Unsubscribes (the page's button, or a mail client's RFC 8058 one-click
/// POST) and answers the confirmation page.
async fn unsubscribe(
    State(state): State<AppState>,
    peer: crate::ratelimit::Peer,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, Response> {
    let html = crate::h5::wants_html(&headers);
    let fail = |e| crate::h5::error(html, e, crate::h5::Link::Unsubscribe);
    crate::ratelimit::check(
        &state,
        crate::ratelimit::Limit::PublicLinks,
        &peer,
        &headers,
    )
    .map_err(fail)?;
    let canonical = unsubscribe_target(&state, &token).await.map_err(fail)?;
    let row = ConsentRow {
        ts: now(),
        identity: canonical,
        channel: None,
        granted: false,
        source: "unsubscribe_link".into(),
    };
    state
        .0
        .automation
        .consent(row)
        .await
        .map_err(|e| fail(ApiError::Internal(e)))?;
    let body = format!(
        "<section class=\"card center\"><div class=icon aria-hidden=true>✓</div><h1>{}</h1><p>{}</p></section>",
        crate::h5::both("已退订", "You are unsubscribed"),
        crate::h5::both(
            "你将不再收到我们的营销消息。",
            "You will get no more marketing messages from us."
        ),
    );
    Ok(crate::h5::page(
        StatusCode::OK,
        "已退订 Unsubscribed",
        &body,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AttemptsQuery {
    key: String,
}

/// `GET /v1/outbox/attempts`: one item's verdict and its send audit.
#[derive(Serialize, schemars::JsonSchema)]
struct Attempts {
    key: String,
    status: OutboxStatus,
    detail: String,
    attempts: Vec<SendAttempt>,
}

async fn outbox_attempts(
    State(state): State<AppState>,
    Query(q): Query<AttemptsQuery>,
) -> Result<Json<Attempts>, ApiError> {
    with_store(&state, move |store| {
        let item = store.outbox_get(&q.key)?;
        let Some(item) = item else {
            return Err(ApiError::NotFound(format!(
                "no outbox item `{}`; GET /v1/outbox lists them",
                q.key
            )));
        };
        let attempts = store.send_attempts(&q.key)?;
        Ok(Json(Attempts {
            key: q.key,
            status: item.status,
            detail: item.detail,
            attempts,
        }))
    })
    .await
}

/// One outbound channel and whether it is configured.
#[derive(Serialize, schemars::JsonSchema)]
struct Outbound {
    channel: &'static str,
    configured: bool,
}

/// `GET /v1/connectors`: never secrets.
#[derive(Serialize, schemars::JsonSchema)]
struct Connectors {
    outbound: Vec<Outbound>,
    /// The dispatcher's counters per channel (`null` without a dispatcher).
    stats: Option<siyu_connectors::DispatcherStats>,
    /// Channels with an inbound webhook.
    inbound: Vec<String>,
    public_url: String,
    /// The URLs to enter in each channel's console, for this workspace
    /// (`null` where the channel is not configured for callbacks).
    callbacks: crate::channels::CallbackUrls,
    note: &'static str,
}

async fn list_connectors(State(state): State<AppState>) -> Result<Json<Connectors>, ApiError> {
    let c = &state.0.config;
    let cfg = &c.connectors;
    let outbound = [
        ("webhook", cfg.webhook.is_some()),
        ("email", cfg.email.is_some()),
        ("sms", cfg.sms.is_some()),
        ("wecom", cfg.wecom.is_some()),
        ("wechat", cfg.wechat.is_some()),
    ]
    .into_iter()
    .map(|(channel, configured)| Outbound {
        channel,
        configured,
    })
    .collect();
    let callbacks = crate::channels::callback_urls(&state);
    Ok(Json(Connectors {
        outbound,
        stats: state.0.automation.dispatcher_stats(),
        inbound: c.inbound_secrets.keys().cloned().collect(),
        public_url: c.public_url.clone(),
        callbacks,
        note: "configure in the TOML file: [connectors.webhook|email|sms|wecom|wechat], [inbound] CHANNEL = \"secret\"",
    }))
}
