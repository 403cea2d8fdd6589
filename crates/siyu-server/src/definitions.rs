//! Saved segment and property definitions: stored as settings
//! (`segment/<name>`, `property/<name>`) with a creation number, loaded
//! into the engine in creation order (a segment may only read segments
//! defined before it).

use siyu_engine::property::PropertyDef;
use siyu_engine::segment::Expr;
use siyu_engine::Engine;
use siyu_store::Store;

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

/// Defines every saved property and segment in the engine (skipping those
/// it already has with the same source, e.g. from a snapshot).
pub fn load_into(store: &mut dyn Store, engine: &mut Engine) -> anyhow::Result<()> {
    let mut props = store.list_settings("property/")?;
    props.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    for (key, v) in props {
        let def: PropertyDef = serde_json::from_value(v["definition"].clone())
            .map_err(|e| anyhow::anyhow!("saved property {key} is unreadable: {e}"))?;
        if !engine.properties().contains(&def) {
            engine
                .define_property(def)
                .map_err(|e| anyhow::anyhow!("saved property {key}: {e}"))?;
        }
    }
    let mut segs = store.list_settings("segment/")?;
    segs.sort_by_key(|(_, v)| v["seq"].as_u64().unwrap_or(0));
    for (key, v) in segs {
        let name = key.trim_start_matches("segment/").to_string();
        let source = v["source"].as_str().unwrap_or("").to_string();
        let expr: Expr = serde_json::from_value(v["tree"].clone())
            .map_err(|e| anyhow::anyhow!("saved segment {key} is unreadable: {e}"))?;
        let same = engine
            .live_segments()
            .segments()
            .iter()
            .any(|s| s.name == name && s.expr == expr);
        if !same {
            engine
                .define_segment(&name, expr, source)
                .map_err(|e| anyhow::anyhow!("saved segment {key}: {e}"))?;
        }
    }
    Ok(())
}
