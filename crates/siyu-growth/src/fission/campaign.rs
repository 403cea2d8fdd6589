//! A fission campaign as saved: tiers, rewards with stock, validity rules
//! with durations as text, the grant mode, the landing and the poster;
//! every check on it ([`Campaign::validate`], each fault naming its
//! field), and how a campaign, its operator overrides and its poster
//! background are kept in settings.

use super::{FissionError, BACKGROUND_PREFIX, CAMPAIGN_PREFIX, OVERRIDE_PREFIX};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_automation::schedule::parse_duration;
use siyu_engine::fission::{Burst, Overrides, Rules};
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::BTreeMap;

/// A campaign as saved (and as `GET /v1/campaigns/{id}` answers it).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    #[serde(default)]
    pub id: String,
    pub name: String,
    /// RFC 3339 or epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Value>,
    pub tiers: Vec<Tier>,
    pub rewards: BTreeMap<String, Reward>,
    #[serde(default)]
    pub rules: RuleText,
    /// `instant`: a tier is granted as soon as valid + pending invitees
    /// reach it, and clawed back if they fall away within the hold;
    /// `after_hold`: only valid (held) invitees count.
    #[serde(default)]
    pub grant: Grant,
    /// What the invitee does next after signing up (open: the console
    /// and the channel bridge read it; `live_code` names a live code).
    #[serde(default)]
    pub landing: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<siyu_poster::PosterTemplate>,
    /// Archived (`DELETE /v1/campaigns/{id}`): no new invites, clicks,
    /// signups or rewards; its ledger and reports stay readable. Saving
    /// the campaign again restores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub invites: u64,
    pub reward: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    pub stock: u64,
    /// Cost per unit, cents (for cost per valid invitee).
    #[serde(default)]
    pub cost: i64,
    /// The message telling the inviter (a saved template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    #[default]
    Instant,
    AfterHold,
}

/// Validity rules with durations as text ("14d").
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleText {
    pub convert_within: Option<String>,
    pub group: Option<String>,
    pub hold: Option<String>,
    pub burst_max: Option<u32>,
    pub burst_window: Option<String>,
    pub zombie_after: Option<String>,
    pub max_per_device: Option<u32>,
    pub max_per_ip: Option<u32>,
}

fn time_value(v: &Value, field: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{field}: epoch seconds must be an integer")),
        Value::String(s) => siyu_domain::time::parse_rfc3339(s).ok_or_else(|| {
            format!("{field}: {s:?} is not RFC 3339 (2026-11-11T00:00:00+08:00) or epoch seconds")
        }),
        _ => Err(format!("{field}: use RFC 3339 text or epoch seconds")),
    }
}

impl Campaign {
    /// Every check, each fault naming its field; `templates` says whether
    /// a reward's message template is saved. The rules it returns name no
    /// campaign code yet (see [`rules`]).
    pub fn validate(&self, templates: &dyn Fn(&str) -> bool) -> Result<Rules, Vec<String>> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push("name: a campaign needs a name".to_string());
        }
        let starts = self.starts_at.as_ref().map(|v| time_value(v, "starts_at"));
        let ends = self.ends_at.as_ref().map(|v| time_value(v, "ends_at"));
        let starts = match starts {
            Some(Err(e)) => {
                errs.push(e);
                None
            }
            Some(Ok(t)) => Some(t),
            None => None,
        };
        let ends = match ends {
            Some(Err(e)) => {
                errs.push(e);
                None
            }
            Some(Ok(t)) => Some(t),
            None => None,
        };
        if let (Some(s), Some(e)) = (starts, ends) {
            if e <= s {
                errs.push("ends_at: must be after starts_at".into());
            }
        }
        if self.tiers.is_empty() {
            errs.push(
                "tiers: at least one tier, e.g. {\"invites\": 10, \"reward\": \"gift\"}".into(),
            );
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.invites == 0 {
                errs.push(format!("tiers[{i}].invites: must be at least 1"));
            }
            if i > 0 && t.invites <= self.tiers[i - 1].invites {
                errs.push(format!(
                    "tiers[{i}].invites: tiers overlap — {} is not above the previous tier's {}; list tiers in increasing order",
                    t.invites,
                    self.tiers[i - 1].invites
                ));
            }
            if !self.rewards.contains_key(&t.reward) {
                errs.push(format!(
                    "tiers[{i}].reward: no reward named {:?} in rewards",
                    t.reward
                ));
            }
        }
        for (name, r) in &self.rewards {
            if r.stock == 0 {
                errs.push(format!("rewards.{name}.stock: a reward with no stock can never be granted; set stock ≥ 1"));
            }
            if r.cost < 0 {
                errs.push(format!("rewards.{name}.cost: cents, not negative"));
            }
            if let Some(t) = &r.template {
                if !templates(t) {
                    errs.push(format!(
                        "rewards.{name}.template: unknown template {t:?}; save it first"
                    ));
                }
            }
        }
        let dur = |v: &Option<String>, field: &str, errs: &mut Vec<String>| -> Option<i64> {
            let s = v.as_ref()?;
            match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    errs.push(format!("rules.{field}: {e}"));
                    None
                }
            }
        };
        let r = &self.rules;
        let rules = Rules {
            campaign: None,
            starts,
            ends,
            convert_within: dur(&r.convert_within, "convert_within", &mut errs),
            group: r.group.clone(),
            hold: dur(&r.hold, "hold", &mut errs).unwrap_or(0),
            burst: match (r.burst_max, dur(&r.burst_window, "burst_window", &mut errs)) {
                (Some(max), Some(window)) => Some(Burst { max, window }),
                (None, None) => None,
                _ => {
                    errs.push("rules.burst_max: give burst_max and burst_window together".into());
                    None
                }
            },
            zombie_after: dur(&r.zombie_after, "zombie_after", &mut errs),
            max_per_device: r.max_per_device,
            max_per_ip: r.max_per_ip,
        };
        if let Some(p) = &self.poster {
            if let Err(e) = siyu_poster::validate_template(p, None) {
                errs.push(format!("poster: {e}"));
            }
        }
        if errs.is_empty() {
            Ok(rules)
        } else {
            Err(errs)
        }
    }

    /// The live code the landing hands an invitee on to, if any.
    pub fn live_code(&self) -> Option<&str> {
        self.landing.get("live_code").and_then(Value::as_str)
    }

    /// The poster template, or the default one when none is set.
    pub fn poster_or_default(&self) -> siyu_poster::PosterTemplate {
        self.poster.clone().unwrap_or_else(default_poster)
    }
}

/// The poster of a campaign that sets none.
pub fn default_poster() -> siyu_poster::PosterTemplate {
    serde_json::from_value(serde_json::json!({
        "qr": {"x": 195, "y": 760, "size": 360},
        "name": {"x": 75, "y": 560, "size_px": 56, "color": "#7A2E0E", "max_width": 600, "align": "center"},
        "caption": {"text": "邀请你一起领好礼 · 扫码加入", "x": 75, "y": 1180, "size_px": 34, "color": "#7A2E0E", "max_width": 600, "align": "center"}
    }))
    .expect("the default poster template is valid")
}

/// Checks `c` (`templates`: whether a template is saved) and saves it
/// under its id.
pub fn save(
    store: &mut dyn Store,
    c: &Campaign,
    templates: &dyn Fn(&str) -> bool,
) -> Result<(), FissionError> {
    c.validate(templates)
        .map_err(|faults| FissionError::Invalid { faults })?;
    let v = serde_json::to_value(c).map_err(|e| FissionError::Encode {
        error: e.to_string(),
    })?;
    store.put_setting(&format!("{CAMPAIGN_PREFIX}{}", c.id), Some(&v))?;
    Ok(())
}

/// The saved campaign `id`.
pub fn load(store: &mut dyn Store, id: &str) -> Result<Campaign, FissionError> {
    let Some(v) = store.get_setting(&format!("{CAMPAIGN_PREFIX}{id}"))? else {
        return Err(FissionError::NoCampaign {
            campaign: id.to_string(),
        });
    };
    serde_json::from_value(v).map_err(|e| FissionError::StoredUnreadable {
        campaign: id.to_string(),
        error: e.to_string(),
    })
}

/// The evaluation rules of a loaded campaign, bound to the engine's code
/// for its name (a campaign nobody clicked or signed up for yet gets a
/// code that matches no referral).
pub fn rules(c: &Campaign, engine: &Engine) -> Result<Rules, FissionError> {
    let mut rules = c
        .validate(&|_| true)
        .map_err(|faults| FissionError::StoredInvalid {
            campaign: c.id.clone(),
            faults,
        })?;
    rules.campaign = Some(engine.campaign_of(&c.id).unwrap_or(u32::MAX));
    Ok(rules)
}

/// Every saved campaign definition as stored.
pub fn list(store: &mut dyn Store) -> Result<Vec<Value>, FissionError> {
    Ok(store
        .list_settings(CAMPAIGN_PREFIX)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// The operator decisions on campaign `id`'s invitees, by person.
pub fn overrides(
    store: &mut dyn Store,
    engine: &Engine,
    id: &str,
) -> Result<Overrides, FissionError> {
    let rows = store.list_settings(&format!("{OVERRIDE_PREFIX}{id}/"))?;
    let mut o = Overrides::new();
    for (k, v) in rows {
        let Some(identity) = k.rsplit('/').next() else {
            continue;
        };
        if let (Some(slot), Some(b)) = (engine.person_of(identity), v.as_bool()) {
            o.insert(slot, b);
        }
    }
    Ok(o)
}

/// The canonical id of the person `identity` names.
pub fn canonical_person(engine: &Engine, identity: &str) -> Result<String, FissionError> {
    let slot = engine
        .person_of(identity)
        .ok_or_else(|| FissionError::NoPerson {
            identity: identity.to_string(),
        })?;
    Ok(engine.canonical_id(slot).to_string())
}

/// Records (or, with `None`, clears) the operator's decision on a flagged
/// invitee (`invitee`: a canonical id), audited at `at`.
pub fn set_override(
    store: &mut dyn Store,
    campaign: &str,
    invitee: &str,
    valid: Option<bool>,
    at: i64,
) -> Result<(), FissionError> {
    let key = format!("{OVERRIDE_PREFIX}{campaign}/{invitee}");
    store.put_setting(&key, valid.map(Value::Bool).as_ref())?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at,
        action: "fission_override".into(),
        subject: invitee.to_string(),
        detail: serde_json::json!({"campaign": campaign, "valid": valid}),
    })?;
    Ok(())
}

/// Checks a poster background (PNG) against the campaign's poster and
/// keeps it; returns its (width, height).
pub fn put_background(
    store: &mut dyn Store,
    c: &Campaign,
    png: &[u8],
) -> Result<(u32, u32), FissionError> {
    let (w, h) = check_background(c, png)?;
    let hex: String = png.iter().map(|b| format!("{b:02x}")).collect();
    store.put_setting(
        &format!("{BACKGROUND_PREFIX}{}", c.id),
        Some(&Value::String(hex)),
    )?;
    Ok((w, h))
}

/// A background's size, if it is a PNG the campaign's poster fits.
fn check_background(c: &Campaign, png: &[u8]) -> Result<(u32, u32), FissionError> {
    let (w, h) = siyu_poster::validate_background(png).map_err(|e| FissionError::Background {
        error: e.to_string(),
    })?;
    if let Some(p) = &c.poster {
        siyu_poster::validate_template(p, Some((w, h))).map_err(|e| FissionError::Poster {
            error: e.to_string(),
        })?;
    }
    Ok((w, h))
}

/// Campaign `id`'s poster background (PNG), if one was uploaded.
pub fn background(store: &mut dyn Store, id: &str) -> Result<Option<Vec<u8>>, FissionError> {
    let v = store.get_setting(&format!("{BACKGROUND_PREFIX}{id}"))?;
    Ok(v.and_then(|v| {
        let h = v.as_str()?.to_string();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
            .collect()
    }))
}
