//! Live codes (活码): one stable public link that routes each newcomer to
//! the first group or operator with room. [`route_newcomer`] is the rule,
//! a pure function of the definitions, what the engine says now and `at`;
//! [`RoutingInputs::load`] and [`RoutingInputs::observe`] gather those,
//! [`reserve`] records a claimed newcomer's seat or the operator's day
//! count, and [`newcomer_events`] plans the touch and traits the server
//! appends.

use super::groups::{group_key, group_sizes, groups_of, live_reservations, reserved_key};
use super::operators::{acting_operator, load_operators, OperatorDef};
use super::{list_defs, LIVECODE_PREFIX};
use super::{person_event, read, write, CommunityError, GroupDef, Result, Skipped};
use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_automation::schedule::{self, QuietHours, TimeOfDay, Tz};
use siyu_domain::{Channel, Event, EventType, Identity, Traits};
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::{BTreeMap, HashMap};

/// Where a live code sends a newcomer: `{"group": id}` or `{"operator": login}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Group(String),
    Operator(String),
}

impl Target {
    /// `group:<id>` or `operator:<login>`, as the touch event records it.
    pub fn label(&self) -> String {
        match self {
            Target::Group(g) => format!("group:{g}"),
            Target::Operator(o) => format!("operator:{o}"),
        }
    }
}

/// When operators are on duty (local times, `HH:MM`).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// One live code's stored definition; also the body of
/// `PUT /v1/livecodes/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveCode {
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap_per_operator: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<WorkingHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_operator: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_channel: Option<String>,
    /// `"wecom"`: the code is also a WeCom QR code of its own (「联系我」
    /// for operator targets, 「加入群聊」 for group targets, made with
    /// `state` = the code's id), answered as `wecom` beside the code.
    /// Absent: the siyu link only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<Backing>,
    /// Archived (`DELETE /v1/livecodes/{id}`): its printed link answers
    /// that the code is no longer active instead of routing; saving it
    /// again restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// What backs a live code beside its siyu link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// A WeCom QR code made through WeCom's API.
    Wecom,
}

/// Which WeCom QR code backs a live code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeComWayKind {
    /// 「联系我」 (`add_contact_way`): adds one of the operators as a friend.
    ContactWay,
    /// 「加入群聊」 (`groupchat/add_join_way`): joins one of the groups.
    JoinWay,
}

/// The WeCom QR code behind a live code, as WeCom made it (setting
/// `livecode/<id>/wecom`): its id for updates and deletion, the image
/// URL, and the members or groups it was made for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WeComWay {
    pub kind: WeComWayKind,
    pub config_id: String,
    /// The QR code's image URL (WeCom's).
    pub qr_code: String,
    /// The operators' WeCom `userid`s (contact way) or the groups' chat
    /// ids (join way) it was made or last updated for.
    pub members: Vec<String>,
    /// The `state` WeCom reports in its add-contact callbacks: the code's id.
    pub state: String,
    pub updated_at: i64,
}

/// WeCom's limit on a way's `state`: a WeCom-backed code's id fits in it.
pub const WECOM_STATE_MAX: usize = 30;
/// WeCom's limit on the groups of one join way.
pub const WECOM_JOIN_MAX: usize = 5;

/// A live code with its id, as the API answers it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LiveCodeView {
    #[serde(flatten)]
    pub code: LiveCode,
    pub id: String,
    /// The WeCom QR code behind it (`backing: "wecom"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<WeComWay>,
}

impl LiveCode {
    /// The WeCom QR code this code needs (`backing: "wecom"`): which kind
    /// and for whom, in target order, or `None` without the backing. A
    /// 「联系我」 takes operators only, a join way groups only (at most
    /// [`WECOM_JOIN_MAX`]), and `id` must fit WeCom's `state`.
    pub fn wecom_members(&self, id: &str) -> Result<Option<(WeComWayKind, Vec<String>)>> {
        if self.backing != Some(Backing::Wecom) {
            return Ok(None);
        }
        if id.chars().count() > WECOM_STATE_MAX {
            return Err(CommunityError::Invalid(format!(
                "id: a WeCom-backed live code's id is WeCom's `state`, at most {WECOM_STATE_MAX} characters; {id:?} has {}",
                id.chars().count()
            )));
        }
        let mut operators = Vec::new();
        let mut groups = Vec::new();
        for t in &self.targets {
            match t {
                Target::Operator(o) => operators.push(o.clone()),
                Target::Group(g) => groups.push(g.clone()),
            }
        }
        match (operators.is_empty(), groups.is_empty()) {
            (false, true) => Ok(Some((WeComWayKind::ContactWay, operators))),
            (true, false) if groups.len() <= WECOM_JOIN_MAX => {
                Ok(Some((WeComWayKind::JoinWay, groups)))
            }
            (true, false) => Err(CommunityError::Invalid(format!(
                "targets: a WeCom join way takes at most {WECOM_JOIN_MAX} groups, this code has {}",
                groups.len()
            ))),
            _ => Err(CommunityError::Invalid(
                "targets: a WeCom-backed live code targets operators only (「联系我」) or groups only (「加入群聊」), not both".into(),
            )),
        }
    }
}

impl LiveCode {
    pub fn timezone(&self) -> Tz {
        Tz::parse_or(
            self.working_hours
                .as_ref()
                .and_then(|w| w.timezone.as_deref()),
            schedule::DEFAULT_TZ,
        )
    }

    /// Whether operators are on duty at `now` (always, without working hours).
    pub fn on_duty(&self, now: i64) -> bool {
        let Some(w) = &self.working_hours else {
            return true;
        };
        match (TimeOfDay::parse(&w.start), TimeOfDay::parse(&w.end)) {
            (Ok(s), Ok(e)) => QuietHours::new(s, e).contains(now, &self.timezone()),
            // Validated at save time.
            _ => true,
        }
    }

    /// The checks that need no stored state, in the order they are made.
    pub fn check(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(CommunityError::Invalid(
                "targets: a live code needs at least one target, `{\"group\": id}` or `{\"operator\": login}`".into(),
            ));
        }
        if let Some(w) = &self.working_hours {
            for (field, v) in [("start", &w.start), ("end", &w.end)] {
                TimeOfDay::parse(v).map_err(|e| {
                    CommunityError::Invalid(format!("working_hours.{field}: {e} (use \"HH:MM\")"))
                })?;
            }
            if let Some(tz) = &w.timezone {
                Tz::parse(tz)
                    .map_err(|e| CommunityError::Invalid(format!("working_hours.timezone: {e}")))?;
            }
        }
        if let Some(c) = &self.source_channel {
            if !Channel::is_valid(c) {
                return Err(CommunityError::Invalid(format!(
                    "source_channel: {c:?} is not a channel name (lowercase letters, digits, '_')"
                )));
            }
        }
        if self.daily_cap_per_operator == Some(0) {
            return Err(CommunityError::Invalid(
                "daily_cap_per_operator: at least 1 (omit it for no cap)".into(),
            ));
        }
        for (i, t) in self.auto_tags.iter().enumerate() {
            if t.is_empty() || t.chars().count() > 64 {
                return Err(CommunityError::Invalid(format!(
                    "auto_tags[{i}]: 1–64 characters"
                )));
            }
        }
        Ok(())
    }
}

pub fn livecode_key(id: &str) -> String {
    format!("{LIVECODE_PREFIX}{id}")
}
pub fn day_key(id: &str) -> String {
    format!("{LIVECODE_PREFIX}{id}/day")
}
/// The WeCom QR code behind a live code ([`WeComWay`]).
pub fn wecom_key(id: &str) -> String {
    format!("{LIVECODE_PREFIX}{id}/wecom")
}

/// The WeCom QR code behind live code `id`, if any.
pub fn load_wecom_way(store: &mut dyn Store, id: &str) -> Result<Option<WeComWay>> {
    read(store, &wecom_key(id))
}

/// One live code, or None.
pub fn load_livecode(store: &mut dyn Store, id: &str) -> Result<Option<LiveCode>> {
    read(store, &livecode_key(id))
}

/// Every readable live code with its id.
pub fn list_livecodes(
    store: &mut dyn Store,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<LiveCodeView>> {
    let mut out = Vec::new();
    for (id, code) in list_defs::<LiveCode>(store, LIVECODE_PREFIX, skipped)? {
        let wecom = if code.backing.is_some() {
            match load_wecom_way(store, &id) {
                Ok(w) => w,
                Err(e) => {
                    skipped.push(Skipped {
                        key: wecom_key(&id),
                        error: e.to_string(),
                    });
                    None
                }
            }
        } else {
            None
        };
        out.push(LiveCodeView { code, id, wecom });
    }
    Ok(out)
}

/// Validates a live code (its own fields, then that its groups, operators
/// and welcome template exist: a template is the setting
/// `<template_prefix><name>`) and saves it.
pub fn save_livecode(
    store: &mut dyn Store,
    id: &str,
    code: LiveCode,
    template_prefix: &str,
    skipped: &mut Vec<Skipped>,
) -> Result<LiveCodeView> {
    check_references(store, id, &code, template_prefix, skipped)?;
    write(store, &livecode_key(id), &code)?;
    let wecom = load_wecom_way(store, id)?;
    Ok(LiveCodeView {
        code,
        id: id.to_string(),
        wecom,
    })
}

/// Everything [`save_livecode`] checks before it writes: the code's own
/// fields, its WeCom backing, and that its groups (WeCom groups, for a
/// join way), operators and welcome template exist.
pub fn check_references(
    store: &mut dyn Store,
    id: &str,
    code: &LiveCode,
    template_prefix: &str,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    code.check()?;
    let wecom = code.wecom_members(id)?;
    let ops = load_operators(store, skipped)?;
    for (i, t) in code.targets.iter().enumerate() {
        match t {
            Target::Group(g) => match read::<GroupDef>(store, &group_key(g))? {
                None => {
                    return Err(CommunityError::Invalid(format!(
                        "targets[{i}].group: no group `{g}`; PUT /v1/groups/{g} first"
                    )));
                }
                Some(def) if wecom.is_some() && def.channel != "wecom" => {
                    return Err(CommunityError::Invalid(format!(
                        "targets[{i}].group: group `{g}` is on channel `{}`; a WeCom join way takes WeCom customer groups (their id is the chat id)",
                        def.channel
                    )));
                }
                Some(_) => {}
            },
            Target::Operator(o) => {
                if !ops.contains_key(o) {
                    return Err(CommunityError::Invalid(format!(
                        "targets[{i}].operator: no operator `{o}`; PUT /v1/operators/{o} first"
                    )));
                }
            }
        }
    }
    if let Some(b) = &code.backup_operator {
        if !ops.contains_key(b) {
            return Err(CommunityError::Invalid(format!(
                "backup_operator: no operator `{b}`; PUT /v1/operators/{b} first"
            )));
        }
    }
    if let Some(t) = &code.welcome_template {
        if store
            .get_setting(&format!("{template_prefix}{t}"))?
            .is_none()
        {
            return Err(CommunityError::Invalid(format!(
                "welcome_template: no template `{t}`; PUT /v1/templates/{t} first"
            )));
        }
    }
    Ok(())
}

/// Today's operator counts of one live code (reset at local midnight).
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DayState {
    pub date: String,
    pub counts: BTreeMap<String, u32>,
    /// Identity → operator it was routed to today (a revisit gets the same).
    pub seen: BTreeMap<String, String>,
}

/// Everything [`route_newcomer`] weighs.
#[derive(Clone, Debug)]
pub struct RoutingInputs {
    pub code_id: String,
    pub code: LiveCode,
    /// Today's counts (already reset when the stored ones are of another day).
    pub day: DayState,
    pub operators: BTreeMap<String, OperatorDef>,
    /// The code's target groups that exist.
    pub groups: BTreeMap<String, GroupDef>,
    /// Members of each target group now.
    pub sizes: HashMap<String, u64>,
    /// Live seats of each target group: identity → when it was reserved.
    pub reserved: HashMap<String, BTreeMap<String, i64>>,
    /// The groups the newcomer is in already.
    pub person_groups: Vec<String>,
}

impl RoutingInputs {
    /// The stored part: the code, today's counts, operators and target
    /// groups. `observe` adds what the engine says.
    pub fn load(
        store: &mut dyn Store,
        code_id: &str,
        at: i64,
        skipped: &mut Vec<Skipped>,
    ) -> Result<RoutingInputs> {
        let Some(code) = load_livecode(store, code_id)? else {
            return Err(CommunityError::NotFound(format!(
                "no live code `{code_id}`"
            )));
        };
        let (y, m, d) = schedule::local_date(at, &code.timezone());
        let today = format!("{y:04}-{m:02}-{d:02}");
        let mut day: DayState = read(store, &day_key(code_id))?.unwrap_or_default();
        if day.date != today {
            day = DayState {
                date: today,
                ..DayState::default()
            };
        }
        let operators = load_operators(store, skipped)?;
        let mut groups: BTreeMap<String, GroupDef> = BTreeMap::new();
        for t in &code.targets {
            if let Target::Group(g) = t {
                if let Some(def) = read::<GroupDef>(store, &group_key(g))? {
                    groups.insert(g.clone(), def);
                }
            }
        }
        Ok(RoutingInputs {
            code_id: code_id.to_string(),
            code,
            day,
            operators,
            groups,
            sizes: HashMap::new(),
            reserved: HashMap::new(),
            person_groups: Vec::new(),
        })
    }

    /// What the engine says now: group sizes, live seats (tidied and
    /// written back), the newcomer's groups.
    pub fn observe(
        &mut self,
        store: &mut dyn Store,
        engine: &Engine,
        identity: Option<&str>,
        at: i64,
    ) -> Result<()> {
        let ids: Vec<&str> = self.groups.keys().map(String::as_str).collect();
        self.sizes = ids
            .iter()
            .map(|g| g.to_string())
            .zip(group_sizes(engine, &ids))
            .collect();
        self.reserved.clear();
        for g in self.groups.keys() {
            self.reserved
                .insert(g.clone(), live_reservations(store, engine, g, at)?);
        }
        self.person_groups = identity.map(|i| groups_of(engine, i)).unwrap_or_default();
        Ok(())
    }
}

/// Where one newcomer goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    pub target: Target,
    pub url: Option<String>,
    /// The code's backup operator took the newcomer.
    pub backup: bool,
    /// The identity was routed here before (a revisit).
    pub again: bool,
}

/// Picks the target for one newcomer at `at`: a revisit (a group they are
/// in or hold a seat of, or today's operator) gets the same again;
/// otherwise the first target with room (a group under capacity counting
/// members and live seats; an operator — or whom they handed over to —
/// on duty and under the daily cap), else the backup operator, else a
/// conflict naming why each target was passed over. Pure: [`reserve`]
/// records the choice.
pub fn route_newcomer(inputs: &RoutingInputs, identity: Option<&str>, at: i64) -> Result<Routed> {
    let RoutingInputs {
        code_id,
        code,
        day,
        operators: ops,
        groups,
        sizes,
        reserved,
        person_groups,
    } = inputs;
    if code.archived {
        return Err(CommunityError::Archived(format!(
            "this code is no longer active: live code `{code_id}` was archived (PUT /v1/livecodes/{code_id} restores it)"
        )));
    }
    let url_of = |t: &Target| match t {
        Target::Group(g) => groups.get(g).and_then(|d| d.url.clone()),
        Target::Operator(o) => ops.get(o).and_then(|d| d.url.clone()),
    };
    // A revisit: the same target again, nothing counted twice.
    if let Some(who) = identity {
        for t in &code.targets {
            if let Target::Group(g) = t {
                let held = reserved.get(g).is_some_and(|r| r.contains_key(who));
                if person_groups.contains(g) || held {
                    return Ok(Routed {
                        url: url_of(t),
                        target: t.clone(),
                        backup: false,
                        again: true,
                    });
                }
            }
        }
        if let Some(op) = day.seen.get(who) {
            let t = Target::Operator(op.clone());
            return Ok(Routed {
                url: url_of(&t),
                target: t,
                backup: false,
                again: true,
            });
        }
    }
    let on_duty = code.on_duty(at);
    let mut why: Vec<String> = Vec::new();
    let mut chosen: Option<(Target, bool)> = None;
    for t in &code.targets {
        match t {
            Target::Group(g) => {
                let Some(def) = groups.get(g).filter(|d| !d.archived) else {
                    why.push(format!("group {g} is archived or gone"));
                    continue;
                };
                let used = sizes.get(g).copied().unwrap_or(0)
                    + reserved.get(g).map_or(0, |r| r.len() as u64);
                if used < u64::from(def.capacity) {
                    chosen = Some((t.clone(), false));
                    break;
                }
                why.push(format!("group {g} is full ({used}/{})", def.capacity));
            }
            Target::Operator(o) => {
                let Some(op) = acting_operator(ops, o) else {
                    why.push(format!("operator {o} has left and has no active successor"));
                    continue;
                };
                if !on_duty {
                    why.push(format!("operator {} is outside working hours", op.login));
                    continue;
                }
                let n = day.counts.get(&op.login).copied().unwrap_or(0);
                if code.daily_cap_per_operator.is_some_and(|cap| n >= cap) {
                    why.push(format!("operator {} reached the daily cap ({n})", op.login));
                    continue;
                }
                chosen = Some((Target::Operator(op.login.clone()), false));
                break;
            }
        }
    }
    if chosen.is_none() {
        if let Some(b) = code
            .backup_operator
            .as_deref()
            .and_then(|b| acting_operator(ops, b))
        {
            chosen = Some((Target::Operator(b.login.clone()), true));
        }
    }
    let Some((target, backup)) = chosen else {
        return Err(CommunityError::Conflict(format!(
            "live code `{code_id}` has no room: {}; add a group (PUT /v1/groups/{{id}}) to its targets or set a backup_operator",
            why.join(", ")
        )));
    };
    Ok(Routed {
        url: url_of(&target),
        target,
        backup,
        again: false,
    })
}

/// Records a claimed newcomer's choice: the seat in the group, or the
/// operator's count for today. A revisit or an anonymous visitor
/// (`identity` None) records nothing, so anonymous traffic cannot fill a
/// group or use up an operator's day. Call it under the same store lock
/// as [`RoutingInputs::observe`], so two newcomers never take the same
/// last seat.
pub fn reserve(
    store: &mut dyn Store,
    inputs: &mut RoutingInputs,
    routed: &Routed,
    identity: Option<&str>,
    at: i64,
) -> Result<()> {
    if routed.again {
        return Ok(());
    }
    match (&routed.target, identity) {
        (_, None) => {}
        (Target::Group(g), Some(who)) => {
            let seats = inputs.reserved.entry(g.clone()).or_default();
            seats.insert(who.to_string(), at);
            write(store, &reserved_key(g), seats)?;
        }
        (Target::Operator(o), Some(who)) => {
            *inputs.day.counts.entry(o.clone()).or_default() += 1;
            inputs.day.seen.insert(who.to_string(), o.clone());
            write(store, &day_key(&inputs.code_id), &inputs.day)?;
        }
    }
    Ok(())
}

/// The events a claimed newcomer's visit appends: the touch (where they
/// came from, for ROI by first touch) and, when the code tags or the
/// target is an operator, an `identify` with the tags and the owner. Their
/// ids make a revisit append nothing new.
pub fn newcomer_events(
    code_id: &str,
    code: &LiveCode,
    routed: &Routed,
    identity: &Identity,
    at: i64,
) -> Vec<Event> {
    let mut events = vec![touch_event(code_id, code, &routed.target, identity, at)];
    events.extend(traits_event(code_id, code, &routed.target, identity, at));
    events
}

/// The `identify` a newcomer gets: the code's tags and, for an operator
/// target, the operator as owner (trait `operator`); none when there is
/// neither. One id per code and identity.
fn traits_event(
    code_id: &str,
    code: &LiveCode,
    target: &Target,
    identity: &Identity,
    at: i64,
) -> Option<Event> {
    let owner = match target {
        Target::Operator(o) => Some(o),
        Target::Group(_) => None,
    };
    if code.auto_tags.is_empty() && owner.is_none() {
        return None;
    }
    let mut ev = person_event(
        identity,
        EventType::Identify,
        None,
        at,
        format!("lc/{code_id}/{}/traits", identity.as_str()),
    );
    let mut t = Traits {
        tags: code.auto_tags.clone(),
        ..Traits::default()
    };
    if let Some(o) = owner {
        t.extra.insert("operator".into(), json!(o));
    }
    ev.traits = Some(t);
    Some(ev)
}

/// The touch of a newcomer this live code brought: on the code's
/// `source_channel` (the first touch ROI and funnels count), naming the
/// code and the target. One id per code and identity, so a revisit, or
/// the same newcomer seen through the link and through the channel's own
/// callback, is one touch.
fn touch_event(
    code_id: &str,
    code: &LiveCode,
    target: &Target,
    identity: &Identity,
    at: i64,
) -> Event {
    let mut touch = person_event(
        identity,
        EventType::Touch,
        code.source_channel.as_deref(),
        at,
        format!("lc/{code_id}/{}/touch", identity.as_str()),
    );
    let mut props = serde_json::Map::new();
    props.insert("livecode".into(), json!(code_id));
    props.insert("target".into(), json!(target.label()));
    touch.properties = Some(props);
    touch
}

/// The touch of a newcomer who added `operator` through this live code on
/// the channel itself (a WeCom 「联系我」 whose `state` is the code's id,
/// reported by the add-contact callback), at `at`: the same touch
/// [`newcomer_events`] records for a claimed visit of the link.
pub fn channel_scan_touch(
    code_id: &str,
    code: &LiveCode,
    operator: &str,
    identity: &Identity,
    at: i64,
) -> Event {
    touch_event(
        code_id,
        code,
        &Target::Operator(operator.to_string()),
        identity,
        at,
    )
}

/// The events of a newcomer who came through a WeCom-backed live code's
/// own QR code, reported by WeCom's callback at `at`: added `target`'s
/// operator (「联系我」) or joined `target`'s group (join way). The code's
/// touch one second before, and its tags and owner: what a claimed visit
/// of the link records ([`newcomer_events`]), with the same ids, so the
/// two paths record one.
pub fn wecom_scan_events(
    code_id: &str,
    code: &LiveCode,
    target: &Target,
    identity: &Identity,
    at: i64,
) -> Vec<Event> {
    let mut events = vec![touch_event(code_id, code, target, identity, at - 1)];
    events.extend(traits_event(code_id, code, target, identity, at));
    events
}

/// The welcome send's id for a newcomer (one per code and identity: a
/// revisit queues nothing new).
pub fn welcome_id(code_id: &str, identity: &str) -> String {
    format!("lc/{code_id}/{identity}")
}
