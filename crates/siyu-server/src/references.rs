//! Who refers to a saved definition: what `DELETE` checks before it
//! deletes a segment, a property or a template, so a deletion never
//! leaves a journey, rule, campaign, live code or calendar pointing at
//! nothing. A refusal names every referrer and how to free it (a 409,
//! `in_use`); nothing is deleted. Used by the route modules; uses none.

use crate::automation::{JOURNEY_PREFIX, RULES_KEY};
use crate::error::ApiError;
use siyu_automation::journey::{Catalog, Journey};
use siyu_automation::keyword::Rule;
use siyu_growth::community::{self, CalendarEntry, GroupDef, LiveCode};
use siyu_growth::fission::{Campaign, CAMPAIGN_PREFIX};
use siyu_store::Store;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// One definition that refers to the one being deleted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Referrer {
    /// `journey`, `segment`, `autoreply rule`, `campaign`, `live code`, `group calendar`, `moment`.
    pub kind: &'static str,
    pub name: String,
    /// How to free the definition from this referrer.
    pub fix: String,
}

impl Referrer {
    pub fn segment(name: &str) -> Referrer {
        Referrer {
            kind: "segment",
            name: name.to_string(),
            fix: format!("change or DELETE /v1/segments/{name} first"),
        }
    }
}

/// The 409 refusing to delete `what` (`segment \`vip\``) while `referrers`
/// use it, naming each and its fix.
pub fn in_use(what: &str, referrers: &[Referrer]) -> ApiError {
    let list = referrers
        .iter()
        .map(|r| format!("{} `{}` ({})", r.kind, r.name, r.fix))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::InUse(format!(
        "{what} is used by {} definition(s), nothing was deleted: {list}",
        referrers.len()
    ))
}

/// Answers every name as existing and remembers what was asked: compiling
/// a stored journey against it lists the segments and templates it reads.
#[derive(Default)]
struct Recorder {
    segments: RefCell<BTreeSet<String>>,
    templates: RefCell<BTreeSet<String>>,
}

impl Catalog for Recorder {
    fn segment_exists(&self, name: &str) -> bool {
        self.segments.borrow_mut().insert(name.to_string());
        true
    }
    fn template_exists(&self, name: &str) -> bool {
        self.templates.borrow_mut().insert(name.to_string());
        true
    }
}

/// The journeys that still run a version reading segment or template
/// names (`reads` says which set to look in): a journey whose latest
/// version is not archived, or that has running enrollments. An archived
/// journey nobody is in refers to nothing any more.
fn journeys_reading(
    store: &mut dyn Store,
    reads: impl Fn(&Recorder) -> bool,
) -> siyu_store::Result<Vec<String>> {
    let running: HashSet<String> = store
        .active_enrollments()?
        .into_iter()
        .map(|e| e.journey)
        .collect();
    let mut versions: BTreeMap<String, Vec<(u32, Journey)>> = BTreeMap::new();
    for (key, v) in store.list_settings_each(JOURNEY_PREFIX)? {
        let Some((name, version)) = key
            .strip_prefix(JOURNEY_PREFIX)
            .and_then(|r| r.rsplit_once('/'))
        else {
            continue;
        };
        let (Ok(version), Ok(v)) = (version.parse::<u32>(), v) else {
            continue;
        };
        if let Ok(j) = serde_json::from_value::<Journey>(v) {
            versions
                .entry(name.to_string())
                .or_default()
                .push((version, j));
        }
    }
    let mut out = Vec::new();
    for (name, mut vs) in versions {
        vs.sort_by_key(|(v, _)| *v);
        let archived = vs.last().is_some_and(|(_, j)| j.archived);
        if archived && !running.contains(&name) {
            continue;
        }
        let uses = vs.into_iter().any(|(version, j)| {
            let recorder = Recorder::default();
            let _ = j.compile(version, &recorder);
            reads(&recorder)
        });
        if uses {
            out.push(name);
        }
    }
    Ok(out)
}

fn journey(name: String, what: &str) -> Referrer {
    Referrer {
        fix: format!("save a version of journey `{name}` without {what}, or DELETE /v1/journeys/{name}?enrollments=exit"),
        kind: "journey",
        name,
    }
}

/// Journeys reading segment `name` (triggers, branch conditions) and
/// planned Moments posts showing to it. Segments reading it are the
/// engine's to name (`Deleted::InUse`).
pub fn of_segment(store: &mut dyn Store, name: &str) -> Result<Vec<Referrer>, ApiError> {
    let mut out: Vec<Referrer> = journeys_reading(store, |r| r.segments.borrow().contains(name))?
        .into_iter()
        .map(|j| journey(j, &format!("segment `{name}`")))
        .collect();
    let mut skipped = Vec::new();
    for p in siyu_growth::moments::list(store, &mut skipped)? {
        if p.status == siyu_growth::moments::Status::Planned
            && p.audience.segment.as_deref() == Some(name)
        {
            out.push(Referrer {
                kind: "moment",
                fix: format!(
                    "PUT /v1/moments/{} with another audience, or DELETE /v1/moments/{} to cancel it",
                    p.id, p.id
                ),
                name: p.id,
            });
        }
    }
    Ok(out)
}

/// Everything that sends template `name`: running journeys, auto-reply
/// rules, active campaigns' rewards, active live codes' welcomes and
/// active groups' SOP calendars.
pub fn of_template(store: &mut dyn Store, name: &str) -> Result<Vec<Referrer>, ApiError> {
    let what = format!("template `{name}`");
    let mut out: Vec<Referrer> = journeys_reading(store, |r| r.templates.borrow().contains(name))?
        .into_iter()
        .map(|j| journey(j, &what))
        .collect();
    if let Some(Ok(rules)) = store
        .get_setting(RULES_KEY)?
        .map(serde_json::from_value::<Vec<Rule>>)
    {
        for r in rules
            .iter()
            .filter(|r| r.reply_template.as_deref() == Some(name))
        {
            out.push(Referrer {
                kind: "autoreply rule",
                name: r.id.clone(),
                fix: format!(
                    "DELETE /v1/autoreply/{} or PUT /v1/autoreply with another reply_template",
                    r.id
                ),
            });
        }
    }
    for (key, v) in store.list_settings_each(CAMPAIGN_PREFIX)? {
        let Some(Ok(c)) = v.ok().map(serde_json::from_value::<Campaign>) else {
            continue;
        };
        if c.archived
            || key
                .strip_prefix(CAMPAIGN_PREFIX)
                .is_none_or(|r| r.contains('/'))
        {
            continue;
        }
        if c.rewards
            .values()
            .any(|r| r.template.as_deref() == Some(name))
        {
            out.push(Referrer {
                kind: "campaign",
                fix: format!("PUT /v1/campaigns/{} with rewards naming another template, or DELETE /v1/campaigns/{}", c.id, c.id),
                name: c.id,
            });
        }
    }
    let mut skipped = Vec::new();
    for (id, code) in
        community::list_defs::<LiveCode>(store, community::LIVECODE_PREFIX, &mut skipped)
            .map_err(|e| ApiError::Internal(e.to_string()))?
    {
        if !code.archived && code.welcome_template.as_deref() == Some(name) {
            out.push(Referrer {
                kind: "live code",
                fix: format!("PUT /v1/livecodes/{id} with another welcome_template, or DELETE /v1/livecodes/{id}"),
                name: id,
            });
        }
    }
    for (id, group) in
        community::list_defs::<GroupDef>(store, community::GROUP_PREFIX, &mut skipped)
            .map_err(|e| ApiError::Internal(e.to_string()))?
    {
        if group.archived {
            continue;
        }
        let entries: Vec<CalendarEntry> =
            community::read(store, &community::calendar::calendar_key(&id))
                .ok()
                .flatten()
                .unwrap_or_default();
        if entries.iter().any(|e| e.template == name) {
            out.push(Referrer {
                kind: "group calendar",
                fix: format!("PUT /v1/groups/{id}/calendar without it, or DELETE /v1/groups/{id}"),
                name: id,
            });
        }
    }
    Ok(out)
}
