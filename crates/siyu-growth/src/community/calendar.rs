//! The SOP calendar: per group, posts due at given times
//! (`group/<id>/calendar`). [`plan_due`] is the planner — what is due at
//! `at` and not posted yet — and the server enqueues each [`DuePost`] to
//! the executor under its outbox key `sop/<group>/<entry>`, which makes a
//! post happen once however often the calendar is looked at. An entry
//! more overdue than [`MISSED_AFTER`] (the server was down) is reported as
//! missed instead of being posted late.

use super::groups::{group_key, load_group};
use super::{read, valid_id, write, CommunityError, GroupDef, Result, Skipped};
use super::{GROUP_PREFIX, MISSED_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_domain::time::{format_rfc3339, parse_rfc3339};
use siyu_store::{OutboxItem, OutboxStatus, Store};
use std::collections::HashSet;

/// The domain's range of times (2000..2100).
const TIME_RANGE: std::ops::Range<i64> = 946_684_800..4_102_444_800;

/// One calendar entry as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalendarEntry {
    pub id: String,
    pub at: i64,
    pub template: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

pub fn calendar_key(group: &str) -> String {
    format!("{GROUP_PREFIX}{group}/calendar")
}

/// The outbox key of one entry's post: it is posted once.
pub fn sop_key(group: &str, entry: &str) -> String {
    format!("sop/{group}/{entry}")
}

/// A time given as RFC 3339 or epoch seconds, within the domain's range.
pub fn parse_at(v: &Value, field: &str) -> Result<i64> {
    let bad = || {
        CommunityError::Invalid(format!(
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

/// The body of `PUT /v1/groups/{id}/calendar`, checked entry by entry:
/// `[{id, at, template, data}]`, each fault named by its index and field.
pub fn parse_entries(raw: &[Value]) -> Result<Vec<CalendarEntry>> {
    let mut entries = Vec::with_capacity(raw.len());
    let mut ids = HashSet::new();
    for (i, v) in raw.iter().enumerate() {
        let Some(o) = v.as_object() else {
            return Err(CommunityError::Invalid(format!(
                "[{i}]: an entry is an object `{{id, at, template}}`"
            )));
        };
        if let Some(k) = o
            .keys()
            .find(|k| !["id", "at", "template", "data"].contains(&k.as_str()))
        {
            return Err(CommunityError::Invalid(format!(
                "[{i}].{k}: unknown field; an entry has id, at, template, data"
            )));
        }
        let entry_id = o.get("id").and_then(Value::as_str).unwrap_or("");
        valid_id(entry_id, &format!("[{i}].id"))?;
        if !ids.insert(entry_id.to_string()) {
            return Err(CommunityError::Invalid(format!(
                "[{i}].id: `{entry_id}` appears twice"
            )));
        }
        let at = parse_at(o.get("at").unwrap_or(&Value::Null), &format!("[{i}].at"))?;
        let Some(template) = o.get("template").and_then(Value::as_str) else {
            return Err(CommunityError::Invalid(format!(
                "[{i}].template: the name of a template (PUT /v1/templates/{{name}})"
            )));
        };
        let data = o.get("data").cloned().unwrap_or(Value::Null);
        if !(data.is_null() || data.is_object()) {
            return Err(CommunityError::Invalid(format!(
                "[{i}].data: an object of template variables"
            )));
        }
        entries.push(CalendarEntry {
            id: entry_id.to_string(),
            at,
            template: template.to_string(),
            data,
        });
    }
    Ok(entries)
}

/// Replaces a group's calendar; every template must exist (the setting
/// `<template_prefix><name>`). Returns how many entries it has.
pub fn save_calendar(
    store: &mut dyn Store,
    group: &str,
    entries: &[CalendarEntry],
    template_prefix: &str,
) -> Result<usize> {
    load_group(store, group)?;
    for (i, e) in entries.iter().enumerate() {
        if store
            .get_setting(&format!("{template_prefix}{}", e.template))?
            .is_none()
        {
            return Err(CommunityError::Invalid(format!(
                "[{i}].template: no template `{}`; PUT /v1/templates/{} first",
                e.template, e.template
            )));
        }
    }
    write(store, &calendar_key(group), &entries)?;
    Ok(entries.len())
}

/// One entry with its outbox status, as `GET /v1/groups/{id}/calendar`
/// lists them.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct EntryStatus {
    pub id: String,
    pub at: String,
    pub template: String,
    /// Always present (null without data).
    pub data: Value,
    pub key: String,
    /// scheduled, due, missed, sent, or the outbox status (pending,
    /// suppressed, dead …).
    pub status: String,
    pub detail: String,
    pub attempts: Option<u32>,
    pub updated_at: Option<String>,
}

/// An entry's status at `at` given its outbox item (if posted). Pure.
pub fn entry_status(
    group: &str,
    e: CalendarEntry,
    item: Option<&OutboxItem>,
    at: i64,
) -> EntryStatus {
    let (status, detail) = match item {
        Some(i) => (
            match i.status {
                OutboxStatus::Done => "sent",
                other => other.as_str(),
            },
            i.detail.clone(),
        ),
        None if e.at > at => ("scheduled", String::new()),
        None if at - e.at > MISSED_AFTER => (
            "missed",
            "the server was not running when it was due".into(),
        ),
        None => ("due", String::new()),
    };
    EntryStatus {
        key: sop_key(group, &e.id),
        at: format_rfc3339(e.at),
        id: e.id,
        template: e.template,
        data: e.data,
        status: status.to_string(),
        detail,
        attempts: item.map(|i| i.attempts),
        updated_at: item.map(|i| format_rfc3339(i.updated_at)),
    }
}

/// A group's calendar with each entry's status at `at`.
pub fn calendar_status(store: &mut dyn Store, group: &str, at: i64) -> Result<Vec<EntryStatus>> {
    load_group(store, group)?;
    let entries: Vec<CalendarEntry> = read(store, &calendar_key(group))?.unwrap_or_default();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let item = store.outbox_get(&sop_key(group, &e.id))?;
        out.push(entry_status(group, e, item.as_ref(), at));
    }
    Ok(out)
}

/// One group post to enqueue now.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DuePost {
    /// The outbox key `sop/<group>/<entry>`.
    pub key: String,
    pub group: String,
    pub channel: String,
    pub template: String,
    /// The entry's data plus `group`, `group_name` and `entry`.
    pub data: Value,
}

/// What of one group's calendar is due at `at`: entries whose time has
/// come, not more than [`MISSED_AFTER`] ago, not posted yet (`posted`
/// answers for an outbox key), in calendar order. An archived group posts
/// nothing. Pure but for `posted`.
pub fn plan_due(
    group: &str,
    def: &GroupDef,
    entries: Vec<CalendarEntry>,
    at: i64,
    mut posted: impl FnMut(&str) -> Result<bool>,
) -> Result<Vec<DuePost>> {
    let mut due = Vec::new();
    if def.archived {
        return Ok(due);
    }
    for e in entries {
        if e.at > at || at - e.at > MISSED_AFTER {
            continue;
        }
        let key = sop_key(group, &e.id);
        if posted(&key)? {
            continue;
        }
        let mut data = if e.data.is_object() {
            e.data
        } else {
            json!({})
        };
        data["group"] = json!(group);
        data["group_name"] = json!(def.name);
        data["entry"] = json!(e.id);
        due.push(DuePost {
            key,
            group: group.to_string(),
            channel: def.channel.clone(),
            template: e.template,
            data,
        });
    }
    Ok(due)
}

/// Every post due at `at` over all groups' calendars (see [`plan_due`];
/// posted = the outbox has the key). An unreadable calendar or group is
/// left out (listed in `skipped`); the others post.
pub fn due_posts(
    store: &mut dyn Store,
    at: i64,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<DuePost>> {
    let mut due = Vec::new();
    for (k, v) in store.list_settings_each(GROUP_PREFIX)? {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                skipped.push(Skipped {
                    key: k,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let Some(group) = k
            .strip_prefix(GROUP_PREFIX)
            .and_then(|r| r.strip_suffix("/calendar"))
            .map(str::to_string)
        else {
            continue;
        };
        let def = match read::<GroupDef>(store, &group_key(&group)) {
            Ok(Some(def)) => def,
            Ok(None) => continue,
            Err(e) => {
                skipped.push(Skipped {
                    key: group_key(&group),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if def.archived {
            continue;
        }
        let entries: Vec<CalendarEntry> = match serde_json::from_value(v) {
            Ok(entries) => entries,
            Err(e) => {
                skipped.push(Skipped {
                    key: k,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let posts = plan_due(&group, &def, entries, at, |key| {
            Ok(store.outbox_get(key)?.is_some())
        })?;
        due.extend(posts);
    }
    Ok(due)
}
