//! Operators (客服/群主): the ownership records `opsconf/<login>`, their
//! status and load limit, and the loads the routing and the hand-over
//! weigh: active groups owned, persons owned (trait `operator`).

use super::{list_defs, read, write, CommunityError, GroupDef, Result, Skipped};
use super::{DEFAULT_MAX_GROUPS, OPERATOR_PREFIX};
use serde::{Deserialize, Serialize};
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::{BTreeMap, HashMap};

/// The most groups one operator may be allowed to own.
pub const MAX_GROUPS_LIMIT: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperatorStatus {
    Active,
    Left,
    Banned,
}

impl OperatorStatus {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorStatus::Active => "active",
            OperatorStatus::Left => "left",
            OperatorStatus::Banned => "banned",
        }
    }
}

/// One operator's stored record; also the API's shape of an operator.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OperatorDef {
    pub login: String,
    pub name: String,
    pub max_groups: u32,
    pub status: OperatorStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who took over at the last hand-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_to: Option<String>,
    pub updated_at: i64,
}

/// The body of `PUT /v1/operators/{login}`.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub max_groups: Option<u32>,
    #[serde(default)]
    pub status: Option<OperatorStatus>,
    #[serde(default)]
    pub backup: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// An operator with their load, as `GET /v1/operators` lists them.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct OperatorView {
    #[serde(flatten)]
    pub def: OperatorDef,
    /// Active groups owned.
    pub groups: u32,
    /// Persons owned (trait `operator`).
    pub persons: u64,
}

pub fn operator_key(login: &str) -> String {
    format!("{OPERATOR_PREFIX}{login}")
}

/// Every readable operator record by login.
pub fn load_operators(
    store: &mut dyn Store,
    skipped: &mut Vec<Skipped>,
) -> Result<BTreeMap<String, OperatorDef>> {
    Ok(list_defs(store, OPERATOR_PREFIX, skipped)?
        .into_iter()
        .collect())
}

/// Validates and saves an operator record (a hand-over's `handed_to` is
/// kept); returns what was stored.
pub fn save_operator(
    store: &mut dyn Store,
    login: &str,
    input: OperatorInput,
    at: i64,
) -> Result<OperatorDef> {
    let key = operator_key(login);
    let old: Option<OperatorDef> = read(store, &key)?;
    if let Some(b) = &input.backup {
        if b == login {
            return Err(CommunityError::Invalid(
                "backup: an operator cannot be their own backup".into(),
            ));
        }
        if read::<OperatorDef>(store, &operator_key(b))?.is_none() {
            return Err(CommunityError::Invalid(format!(
                "backup: no operator `{b}`; PUT /v1/operators/{b} first"
            )));
        }
    }
    if input.max_groups.is_some_and(|m| m > MAX_GROUPS_LIMIT) {
        return Err(CommunityError::Invalid(format!(
            "max_groups: at most {MAX_GROUPS_LIMIT}"
        )));
    }
    let def = OperatorDef {
        name: input.name.unwrap_or_else(|| login.to_string()),
        max_groups: input.max_groups.unwrap_or(DEFAULT_MAX_GROUPS),
        status: input.status.unwrap_or(OperatorStatus::Active),
        backup: input.backup,
        url: input.url,
        handed_to: old.and_then(|o| o.handed_to),
        updated_at: at,
        login: login.to_string(),
    };
    write(store, &key, &def)?;
    Ok(def)
}

/// Every operator with their load (`GET /v1/operators`).
pub fn operator_views(
    ops: BTreeMap<String, OperatorDef>,
    groups: &BTreeMap<String, GroupDef>,
    engine: &Engine,
) -> Vec<OperatorView> {
    let loads = group_loads(groups);
    let persons = persons_by_owner(engine);
    ops.into_values()
        .map(|def| OperatorView {
            groups: loads.get(&def.login).copied().unwrap_or(0),
            persons: persons.get(&def.login).copied().unwrap_or(0),
            def,
        })
        .collect()
}

/// Active groups each operator owns.
pub fn group_loads(groups: &BTreeMap<String, GroupDef>) -> HashMap<String, u32> {
    let mut loads: HashMap<String, u32> = HashMap::new();
    for g in groups.values().filter(|g| !g.archived) {
        *loads.entry(g.owner.clone()).or_default() += 1;
    }
    loads
}

/// The active operator with the fewest active groups, under their
/// `max_groups` (ties: the smallest login), other than `except`.
pub fn least_loaded(
    ops: &BTreeMap<String, OperatorDef>,
    loads: &HashMap<String, u32>,
    except: Option<&str>,
) -> Option<String> {
    ops.values()
        .filter(|o| o.status == OperatorStatus::Active && Some(o.login.as_str()) != except)
        .map(|o| (loads.get(&o.login).copied().unwrap_or(0), o))
        .filter(|(load, o)| *load < o.max_groups)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.login.cmp(&b.1.login)))
        .map(|(_, o)| o.login.clone())
}

/// Persons per owner (trait `operator`): one pass over the persons.
pub fn persons_by_owner(engine: &Engine) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for (_, p) in engine.persons() {
        if let Some(op) = owner_of(p) {
            *out.entry(op.to_string()).or_default() += 1;
        }
    }
    out
}

/// A person's owner: their trait `operator`.
pub fn owner_of(p: &siyu_engine::person::Person) -> Option<&str> {
    p.extra
        .as_deref()?
        .traits()
        .get("operator")
        .and_then(serde_json::Value::as_str)
}

/// An operator who can take newcomers: `login` if active, else whom they
/// handed over to or their backup (a few hops at most).
pub fn acting_operator<'a>(
    ops: &'a BTreeMap<String, OperatorDef>,
    login: &str,
) -> Option<&'a OperatorDef> {
    let mut op = ops.get(login)?;
    for _ in 0..5 {
        if op.status == OperatorStatus::Active {
            return Some(op);
        }
        let next = op.handed_to.as_ref().or(op.backup.as_ref())?;
        op = ops.get(next)?;
    }
    None
}
