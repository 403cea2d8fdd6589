//! Saved segment and property definitions: stored as settings
//! (`segment/<name>`, `property/<name>`) with a creation number, loaded
//! into the engine in creation order (a segment may only read segments
//! defined before it). A segment's last version number is kept apart
//! (`segment_version/<name>`), so neither a restart nor a deletion and
//! re-creation under the same name ever gives a number twice; it is an
//! atomic counter in the store, so two nodes never give the same one, and
//! the row carries its version, so every node gives the segment the
//! version of the row that won.

use siyu_engine::property::PropertyDef;
use siyu_engine::segment::Expr;
use siyu_engine::{Engine, SegmentChange};
use siyu_store::Store;

use crate::quarantine::{readable, Broken};

pub enum Definition {
    Segment {
        name: String,
        expr: Expr,
        source: String,
    },
    Property(PropertyDef),
}

impl Definition {
    /// Rejects what the engine would reject, before anything is saved.
    pub fn check(&self, engine: &Engine) -> Result<(), String> {
        match self {
            Definition::Segment { name, expr, .. } => {
                if let Some(found) = expr.unknown_rfm_layer() {
                    return Err(format!(
                        "segment `{name}` compares rfm_layer with {found:?}; the layers are {}",
                        siyu_engine::rfm::RfmLayer::names()
                    ));
                }
                let mut props = Vec::new();
                expr.property_refs(&mut props);
                if let Some(p) = props
                    .iter()
                    .find(|p| !engine.properties().iter().any(|d| &d.name == *p))
                {
                    return Err(format!(
                        "segment `{name}` reads property `prop.{p}`, which is not defined"
                    ));
                }
                let mut segs = Vec::new();
                expr.segment_refs(&mut segs);
                let live = engine.live_segments();
                if let Some(s) = segs.iter().find(|s| live.index_of(s).is_none()) {
                    return Err(format!("segment `{name}` reads segment `{s}`, which does not exist (define it first)"));
                }
                if segs.iter().any(|s| s == name) {
                    return Err(format!("segment `{name}` cannot read itself"));
                }
                Ok(())
            }
            Definition::Property(def) => def.validate().map_err(|e| e.to_string()),
        }
    }

    pub fn key(&self) -> String {
        match self {
            Definition::Segment { name, .. } => format!("segment/{name}"),
            Definition::Property(def) => format!("property/{}", def.name),
        }
    }

    /// The stored row: the creation number, and for a segment its version
    /// (what every node gives it: `sync_segments`).
    pub fn to_setting(&self, seq: u64, version: u32) -> (String, serde_json::Value) {
        match self {
            Definition::Segment { name, expr, source } => (
                format!("segment/{name}"),
                serde_json::json!({"seq": seq, "version": version, "source": source, "tree": expr}),
            ),
            Definition::Property(def) => (
                format!("property/{}", def.name),
                serde_json::json!({"seq": seq, "definition": def}),
            ),
        }
    }
}

/// A saved definition to delete (`DELETE /v1/segments/{name}`,
/// `DELETE /v1/properties/{name}`).
#[derive(Clone, Debug)]
pub enum Deletion {
    Segment(String),
    Property(String),
}

impl Deletion {
    pub fn key(&self) -> String {
        match self {
            Deletion::Segment(name) => format!("segment/{name}"),
            Deletion::Property(name) => format!("property/{name}"),
        }
    }
}

/// What a [`Deletion`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted; a segment's last version.
    Deleted { version: Option<u32> },
    /// Nothing of that name is stored.
    NotFound,
    /// Refused: these segments read it (nothing was deleted).
    InUse(Vec<String>),
}

/// Where a segment's last version number is kept.
pub const SEGMENT_VERSION_PREFIX: &str = "segment_version/";

/// The last version number segment `name` was given (0: never saved).
pub fn last_segment_version(store: &mut dyn Store, name: &str) -> siyu_store::Result<u32> {
    Ok(store
        .get_setting(&format!("{SEGMENT_VERSION_PREFIX}{name}"))?
        .and_then(|v| v.as_u64())
        .map_or(0, |v| v.min(u32::MAX as u64) as u32))
}

/// The next version number of segment `name`, from the store's atomic
/// counter: no two saves give the same number, on any node, across
/// deletions and restarts. At least `after` (the engine's own count).
pub fn next_segment_version(
    store: &mut dyn Store,
    name: &str,
    after: u32,
) -> siyu_store::Result<u32> {
    let key = format!("{SEGMENT_VERSION_PREFIX}{name}");
    let next = store.increment_setting(&key)?.min(u32::MAX as u64) as u32;
    if next > after {
        return Ok(next);
    }
    store.put_setting(&key, Some(&serde_json::Value::from(after + 1)))?;
    Ok(after + 1)
}

/// The creation number of a new definition: after every stored one.
pub fn next_seq(store: &mut dyn Store) -> siyu_store::Result<u64> {
    let mut next = 0;
    for prefix in PREFIXES {
        for (_, v) in store.list_settings_each(prefix)? {
            if let Some(seq) = v.ok().and_then(|v| v["seq"].as_u64()) {
                next = next.max(seq + 1);
            }
        }
    }
    Ok(next)
}

/// The settings prefixes [`load_into`] loads (and quarantines under).
pub const PREFIXES: [&str; 2] = ["property/", "segment/"];

/// Defines every saved property and segment in the engine (skipping those
/// it already has with the same source, e.g. from a snapshot). A stored
/// definition that cannot be read or defined (corrupt, too deep, reading
/// one that is itself broken) is skipped, logged and returned: one bad
/// definition never stops a start-up (see `quarantine`). Only a failing
/// store is an error.
pub fn load_into(store: &mut dyn Store, engine: &mut Engine) -> anyhow::Result<Vec<Broken>> {
    let StoredProperties { defs, mut broken } = stored_properties(store)?;
    for (key, def) in defs {
        if !engine.properties().contains(&def) {
            if let Err(e) = engine.define_property(def) {
                broken.push(Broken::skipped(&key, e));
            }
        }
    }
    broken.extend(sync_segments(store, engine)?.1);
    Ok(broken)
}

/// The stored property definitions.
pub struct StoredProperties {
    /// (key, definition), in creation order.
    pub defs: Vec<(String, PropertyDef)>,
    /// The rows that cannot be read.
    pub broken: Vec<Broken>,
}

/// Reads every stored property definition: at start and when another
/// node changed one (the writer's `Follow`).
pub fn stored_properties(store: &mut dyn Store) -> anyhow::Result<StoredProperties> {
    let (mut rows, mut broken) = readable(store.list_settings_each("property/")?);
    rows.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    let mut defs = Vec::with_capacity(rows.len());
    for (key, v) in rows {
        match serde_json::from_value::<PropertyDef>(v["definition"].clone()) {
            Ok(def) => defs.push((key, def)),
            Err(e) => broken.push(Broken::skipped(&key, format!("unreadable: {e}"))),
        }
    }
    Ok(StoredProperties { defs, broken })
}

/// Whether `engine` computes exactly the `stored` properties.
pub fn same_properties(engine: &Engine, stored: &[(String, PropertyDef)]) -> bool {
    let current = engine.properties();
    stored.len() == current.len() && stored.iter().all(|(_, d)| current.contains(d))
}

/// Brings the engine's segments to what the store holds: each stored one
/// defined (unless the engine has the same tree), each one the store no
/// longer has removed (readers first), each given its stored version. At
/// start (a snapshot may predate a deletion or redefinition) and whenever
/// another node saved, redefined or deleted one (`crate::cluster`).
/// Returns the membership changes and the rows that cannot be defined.
pub fn sync_segments(
    store: &mut dyn Store,
    engine: &mut Engine,
) -> anyhow::Result<(Vec<SegmentChange>, Vec<Broken>)> {
    let (mut segs, mut broken) = readable(store.list_settings_each("segment/")?);
    segs.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    let stored: std::collections::HashSet<String> = segs
        .iter()
        .map(|(k, _)| k.trim_start_matches("segment/").to_string())
        .chain(
            broken
                .iter()
                .filter_map(|b| b.key.strip_prefix("segment/").map(str::to_string)),
        )
        .collect();
    let gone: Vec<String> = engine
        .live_segments()
        .segments()
        .iter()
        .rev()
        .filter(|s| !stored.contains(&s.name))
        .map(|s| s.name.clone())
        .collect();
    for name in gone {
        if let Err(readers) = engine.remove_segment(&name) {
            tracing::warn!(segment = %name, ?readers, "deleted segment still read; kept");
        }
    }
    let versions: Vec<(String, Option<u32>)> = segs
        .iter()
        .map(|(k, v)| {
            let version = v["version"].as_u64().map(|n| n.min(u32::MAX as u64) as u32);
            (k.trim_start_matches("segment/").to_string(), version)
        })
        .collect();
    let (changes, unloadable) = define_stored_segments(engine, segs);
    broken.extend(unloadable);
    for (name, version) in versions {
        // Rows saved before versions were kept in them: the counter's last.
        let version = match version {
            Some(v) => v,
            None => last_segment_version(store, &name)?,
        };
        if version > 0 {
            engine.set_segment_version(&name, version);
        }
    }
    Ok((changes, broken))
}

/// Defines stored segment rows in the engine, in the given order, as far
/// as they go: a segment that reads one failing only because of its place
/// (a repaired segment got a later creation number than its reader) is
/// tried again after each pass that defined something. Returns the
/// membership changes and the rows that still cannot be defined (logged).
/// Rows the engine already has with the same tree are left alone.
pub fn define_stored_segments(
    engine: &mut Engine,
    rows: Vec<(String, serde_json::Value)>,
) -> (Vec<SegmentChange>, Vec<Broken>) {
    let mut changes = Vec::new();
    let mut pending = Vec::new();
    let mut broken = Vec::new();
    for (key, v) in rows {
        match stored_segment(&key, &v) {
            Ok(segment) => pending.push((key, segment)),
            Err(e) => broken.push(Broken::skipped(&key, e)),
        }
    }
    loop {
        let mut failed = Vec::new();
        let before = pending.len();
        for (key, (name, expr, source)) in pending {
            let same = engine
                .live_segments()
                .segments()
                .iter()
                .any(|s| s.name == name && s.expr == expr);
            if same {
                continue;
            }
            match engine.define_segment(&name, expr.clone(), source.clone()) {
                Ok((_, c)) => changes.extend(c),
                Err(e) => failed.push((key, (name, expr, source), e)),
            }
        }
        if failed.is_empty() || failed.len() == before {
            broken.extend(
                failed
                    .into_iter()
                    .map(|(key, _, e)| Broken::skipped(&key, e)),
            );
            return (changes, broken);
        }
        pending = failed.into_iter().map(|(key, s, _)| (key, s)).collect();
    }
}

/// A stored segment row (`segment/<name>`) as (name, tree, source),
/// checked before anything walks the tree (an older build may have saved
/// one deeper than `segment::MAX_DEPTH`).
pub fn stored_segment(key: &str, v: &serde_json::Value) -> Result<(String, Expr, String), String> {
    let name = key.trim_start_matches("segment/").to_string();
    let source = v["source"].as_str().unwrap_or("").to_string();
    let expr = serde_json::from_value::<Expr>(v["tree"].clone())
        .map_err(|e| format!("unreadable: {e}"))?;
    expr.check_depth().map_err(|e| e.to_string())?;
    Ok((name, expr, source))
}
