//! Customer groups: their definitions (`group/<id>`), who owns them, how
//! many members they have now (from the engine's `join_group` /
//! `leave_group` membership) and the live-code seats held for newcomers
//! who have not joined yet (`group/<id>/reserved`).

use super::operators::{group_loads, least_loaded, load_operators, OperatorStatus};
use super::{list_defs, read, write, CommunityError, Result, Skipped};
use super::{DEFAULT_CAPACITY, GROUP_PREFIX, RESERVATION_TTL};
use serde::{Deserialize, Serialize};
use siyu_domain::Channel;
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::{BTreeMap, HashMap};

/// The most members a group may be given on a channel without its own
/// limit in [`CHANNEL_CAPACITY`].
pub const MAX_CAPACITY: u32 = 100_000;

/// The most members a group holds on each channel that has a limit of its
/// own: a capacity above the platform's would route newcomers to a group
/// they cannot join. WeCom customer groups (客户群) and WeChat groups hold
/// 500.
pub const CHANNEL_CAPACITY: &[(&str, u32)] = &[("wecom", 500), ("wechat", 500)];

/// The most members a group on `channel` may be given.
pub fn channel_capacity(channel: &str) -> u32 {
    CHANNEL_CAPACITY
        .iter()
        .find(|(c, _)| *c == channel)
        .map_or(MAX_CAPACITY, |&(_, max)| max)
}

/// One change of a group's owner, kept in the group's history.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OwnerChange {
    pub from: String,
    pub to: String,
    pub at: i64,
    pub reason: String,
}

/// One group's stored definition; also the API's shape of a group.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupDef {
    pub id: String,
    pub channel: String,
    pub name: String,
    pub capacity: u32,
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub owner_history: Vec<OwnerChange>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The body of `PUT /v1/groups/{id}`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub channel: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// A group with its live numbers, as `GET /v1/groups` lists them.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GroupView {
    #[serde(flatten)]
    pub def: GroupDef,
    /// Members now.
    pub size: u64,
    /// Live-code seats held for newcomers not yet in the group.
    pub reserved: usize,
    /// Capacity left after members and seats.
    pub free: u64,
    /// Active groups the owner owns.
    pub owner_load: u32,
}

impl GroupView {
    pub fn new(def: GroupDef, size: u64, reserved: usize, owner_load: u32) -> GroupView {
        let used = size + reserved as u64;
        GroupView {
            free: u64::from(def.capacity).saturating_sub(used),
            def,
            size,
            reserved,
            owner_load,
        }
    }
}

pub fn group_key(id: &str) -> String {
    format!("{GROUP_PREFIX}{id}")
}
pub fn reserved_key(id: &str) -> String {
    format!("{GROUP_PREFIX}{id}/reserved")
}

/// Every readable group definition by id.
pub fn load_groups(
    store: &mut dyn Store,
    skipped: &mut Vec<Skipped>,
) -> Result<BTreeMap<String, GroupDef>> {
    Ok(list_defs(store, GROUP_PREFIX, skipped)?
        .into_iter()
        .collect())
}

/// One group's definition, or [`CommunityError::NoGroup`].
pub fn load_group(store: &mut dyn Store, id: &str) -> Result<GroupDef> {
    read(store, &group_key(id))?.ok_or_else(|| CommunityError::NoGroup { id: id.to_string() })
}

/// The checks of a group body that need no stored state.
pub fn check_group_input(input: &GroupInput) -> Result<u32> {
    if !Channel::is_valid(&input.channel) {
        return Err(CommunityError::Invalid(format!(
            "channel: {:?} is not a channel name (lowercase letters, digits, '_'), e.g. `wecom`",
            input.channel
        )));
    }
    let max = channel_capacity(&input.channel);
    let capacity = input.capacity.unwrap_or(DEFAULT_CAPACITY.min(max));
    if capacity == 0 || capacity > max {
        return Err(CommunityError::Invalid(format!(
            "capacity: {capacity} is not between 1 and {max}, the most members a group on channel `{}` holds; give at most {max}",
            input.channel
        )));
    }
    Ok(capacity)
}

/// Validates and saves a group. Its owner is the one named (active and
/// under their `max_groups` unless the group is archived), else the old
/// owner, else the least-loaded active operator; a change of owner is
/// kept in `owner_history`.
pub fn save_group(
    store: &mut dyn Store,
    id: &str,
    input: GroupInput,
    at: i64,
    skipped: &mut Vec<Skipped>,
) -> Result<GroupDef> {
    let capacity = check_group_input(&input)?;
    let ops = load_operators(store, skipped)?;
    let groups = load_groups(store, skipped)?;
    let old = groups.get(id).cloned();
    let mut loads = group_loads(&groups);
    if let Some(o) = old.as_ref().filter(|o| !o.archived) {
        if let Some(n) = loads.get_mut(&o.owner) {
            *n -= 1;
        }
    }
    let owner = match (&input.owner, &old) {
        (Some(owner), _) => {
            let Some(op) = ops.get(owner) else {
                return Err(CommunityError::Invalid(format!(
                    "owner: no operator `{owner}`; PUT /v1/operators/{owner} first"
                )));
            };
            if op.status != OperatorStatus::Active {
                return Err(CommunityError::Invalid(format!(
                    "owner: operator `{owner}` is not active"
                )));
            }
            let load = loads.get(owner).copied().unwrap_or(0);
            if !input.archived && load >= op.max_groups {
                return Err(CommunityError::Conflict(format!(
                    "owner: operator `{owner}` already owns {load} active groups (max_groups {}); pick another or omit `owner` for the least-loaded",
                    op.max_groups
                )));
            }
            owner.clone()
        }
        (None, Some(old)) => old.owner.clone(),
        (None, None) => least_loaded(&ops, &loads, None).ok_or_else(|| {
            CommunityError::Conflict(
                "owner: no active operator is under their group limit (max_groups); add an operator (PUT /v1/operators/{login}) or raise max_groups".into(),
            )
        })?,
    };
    let mut owner_history = old
        .as_ref()
        .map(|o| o.owner_history.clone())
        .unwrap_or_default();
    if let Some(o) = old.as_ref().filter(|o| o.owner != owner) {
        owner_history.push(OwnerChange {
            from: o.owner.clone(),
            to: owner.clone(),
            at,
            reason: "edited".into(),
        });
    }
    let def = GroupDef {
        name: input.name.unwrap_or_else(|| id.to_string()),
        channel: input.channel,
        capacity,
        owner,
        tags: input.tags,
        url: input.url,
        archived: input.archived,
        owner_history,
        created_at: old.as_ref().map_or(at, |o| o.created_at),
        updated_at: at,
        id: id.to_string(),
    };
    write(store, &group_key(id), &def)?;
    Ok(def)
}

/// Every group with its size, seats and owner's load (`GET /v1/groups`).
/// Tidies each group's seats (see [`live_reservations`]).
pub fn group_views(
    store: &mut dyn Store,
    engine: &Engine,
    groups: BTreeMap<String, GroupDef>,
    at: i64,
) -> Result<Vec<GroupView>> {
    let loads = group_loads(&groups);
    let ids: Vec<&str> = groups.keys().map(String::as_str).collect();
    let sizes = group_sizes(engine, &ids);
    let mut out = Vec::with_capacity(groups.len());
    for (def, size) in groups.values().zip(sizes) {
        let reserved = live_reservations(store, engine, &def.id, at)?.len();
        let load = loads.get(&def.owner).copied().unwrap_or(0);
        out.push(GroupView::new(def.clone(), size, reserved, load));
    }
    Ok(out)
}

/// One group with its size, seats and owner's load (`GET /v1/groups/{id}`).
pub fn group_view(
    store: &mut dyn Store,
    engine: &Engine,
    groups: &BTreeMap<String, GroupDef>,
    id: &str,
    at: i64,
) -> Result<GroupView> {
    let def = groups
        .get(id)
        .ok_or_else(|| CommunityError::NoGroup { id: id.to_string() })?;
    let size = group_sizes(engine, &[id])[0];
    let reserved = live_reservations(store, engine, id, at)?.len();
    let load = group_loads(groups).get(&def.owner).copied().unwrap_or(0);
    Ok(GroupView::new(def.clone(), size, reserved, load))
}

/// Members of each of `ids` now: one pass over the persons.
pub fn group_sizes(engine: &Engine, ids: &[&str]) -> Vec<u64> {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, g)| (*g, i)).collect();
    let mut sizes = vec![0u64; ids.len()];
    if index.is_empty() {
        return sizes;
    }
    for (_, p) in engine.persons() {
        let Some(extra) = p.extra.as_deref() else {
            continue;
        };
        for &g in &extra.groups {
            if let Some(&i) = index.get(engine.group_names().name(g)) {
                sizes[i] += 1;
            }
        }
    }
    sizes
}

/// Whether `identity`'s person is in `group` now.
pub fn is_member(engine: &Engine, identity: &str, group: &str) -> bool {
    engine
        .person_of(identity)
        .and_then(|slot| engine.person(slot))
        .is_some_and(|p| engine.in_group(p, group))
}

/// The groups `identity`'s person is in now (none for an unknown one).
pub fn groups_of(engine: &Engine, identity: &str) -> Vec<String> {
    engine
        .person_of(identity)
        .and_then(|slot| engine.person(slot))
        .map(|p| {
            engine
                .groups_of(p)
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The seats still held at `at`: a seat ends when it expires
/// ([`RESERVATION_TTL`]) or when its person is in the group (the seat
/// became a member). Pure; [`live_reservations`] stores the result.
pub fn tidy_reservations(
    seats: &mut BTreeMap<String, i64>,
    at: i64,
    member: impl Fn(&str) -> bool,
) -> bool {
    let before = seats.len();
    seats.retain(|who, ts| at - *ts < RESERVATION_TTL && !member(who));
    seats.len() != before
}

/// Seats held for newcomers not yet in the group. The tidied list (see
/// [`tidy_reservations`]) is written back. Someone who joins and leaves
/// between two looks keeps the seat until it expires.
pub fn live_reservations(
    store: &mut dyn Store,
    engine: &Engine,
    group: &str,
    at: i64,
) -> Result<BTreeMap<String, i64>> {
    let key = reserved_key(group);
    let mut r: BTreeMap<String, i64> = read(store, &key)?.unwrap_or_default();
    if tidy_reservations(&mut r, at, |who| is_member(engine, who, group)) {
        write(store, &key, &r)?;
    }
    Ok(r)
}
