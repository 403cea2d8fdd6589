//! Saved segment and property definitions: stored as settings
//! (`segment/<name>`, `property/<name>`) with a creation number, loaded
//! into the engine in creation order (a segment may only read segments
//! defined before it).

use siyu_engine::property::PropertyDef;
use siyu_engine::segment::Expr;
use siyu_engine::Engine;
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

    pub fn to_setting(&self, seq: u64) -> (String, serde_json::Value) {
        match self {
            Definition::Segment { name, expr, source } => (
                format!("segment/{name}"),
                serde_json::json!({"seq": seq, "source": source, "tree": expr}),
            ),
            Definition::Property(def) => (
                format!("property/{}", def.name),
                serde_json::json!({"seq": seq, "definition": def}),
            ),
        }
    }
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
    let mut broken = Vec::new();
    let (mut props, unreadable) = readable(store.list_settings_each("property/")?);
    broken.extend(unreadable);
    props.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    for (key, v) in props {
        let def = match serde_json::from_value::<PropertyDef>(v["definition"].clone()) {
            Ok(def) => def,
            Err(e) => {
                broken.push(Broken::skipped(&key, format!("unreadable: {e}")));
                continue;
            }
        };
        if !engine.properties().contains(&def) {
            if let Err(e) = engine.define_property(def) {
                broken.push(Broken::skipped(&key, e));
            }
        }
    }
    let (mut segs, unreadable) = readable(store.list_settings_each("segment/")?);
    broken.extend(unreadable);
    segs.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    for (key, v) in segs {
        let name = key.trim_start_matches("segment/").to_string();
        let source = v["source"].as_str().unwrap_or("").to_string();
        let expr = match serde_json::from_value::<Expr>(v["tree"].clone()) {
            Ok(expr) => expr,
            Err(e) => {
                broken.push(Broken::skipped(&key, format!("unreadable: {e}")));
                continue;
            }
        };
        // Before any walk over a tree saved by an older build.
        if let Err(e) = expr.check_depth() {
            broken.push(Broken::skipped(&key, e));
            continue;
        }
        let same = engine
            .live_segments()
            .segments()
            .iter()
            .any(|s| s.name == name && s.expr == expr);
        if !same {
            if let Err(e) = engine.define_segment(&name, expr, source) {
                broken.push(Broken::skipped(&key, e));
            }
        }
    }
    Ok(broken)
}
