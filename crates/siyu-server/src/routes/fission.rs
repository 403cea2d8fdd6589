//! Fission (裂变) campaigns over HTTP: definitions with tiered rewards and
//! stock, per-inviter invite codes, links and QR posters, the public
//! landing and signup endpoints, the reward ledger (grants, clawbacks)
//! and campaign analytics.
//!
//! Who counts is decided by one pure function, `siyu_engine::fission::
//! evaluate` (new to the brand across stitched identities, not the
//! inviter, anti-fraud flags with operator overrides, conversion window,
//! hold period); this module only feeds it the campaign's rules and acts
//! on the result. Rewards are reconciled against it: every pass grants the
//! tiers an inviter reached (while stock lasts), and claws back (or, for
//! rewards granted after the hold, never grants) what the invitees who
//! "took the gift and left" no longer support. The ledger lives in
//! settings (`reward/<campaign>/<inviter>/<tier>`), every grant and
//! clawback is also an event on the inviter (`reward_granted`,
//! `reward_clawed_back`: the log keeps the history) and the reward message
//! goes through the guardrails like every other send.
//!
//! Invite codes are opaque signed tokens (`links.rs`): the inviter's link
//! id and an HMAC, so a forged one is refused and none reveals who invited.

use crate::automation::MassSend;
use crate::error::ApiError;
use crate::request::{blocking, now, parse_json, read_engine, route, valid_id, with_store, Route};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use siyu_automation::schedule::parse_duration;
use siyu_domain::{Channel, Event, EventType, Identity};
use siyu_engine::fission::{self, Burst, Overrides, Rules, Verdict};
use siyu_engine::Engine;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CAMPAIGN_PREFIX: &str = "campaign/";
pub const REWARD_PREFIX: &str = "reward/";
pub const OVERRIDE_PREFIX: &str = "fission_override/";
pub const BACKGROUND_PREFIX: &str = "campaign_background/";

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/campaigns", read, "Fission campaigns.", list_campaigns),
        route!(put, "/v1/campaigns/{id}", write, "Save a fission campaign: tiers, rewards with stock, validity rules (convert_within, hold, group, anti-fraud), landing, poster.", put_campaign),
        route!(get, "/v1/campaigns/{id}", read, "A campaign's definition.", get_campaign),
        route!(put, "/v1/campaigns/{id}/background", write, "Upload the poster background (PNG body).", put_background),
        route!(post, "/v1/campaigns/{id}/invites", write, "An inviter's code, link and poster URL: `{\"identity\": \"wecom:…\"}`.", create_invite),
        route!(get, "/v1/campaigns/{id}/poster", read, "An inviter's QR poster as PNG (`identity`).", poster),
        route!(get, "/v1/campaigns/{id}/stats", read, "Clicks → signups → valid → converted, K-factor, cycle time, reward cost per valid invitee, referred revenue, invalid by reason.", campaign_stats),
        route!(get, "/v1/campaigns/{id}/leaderboard", read, "Top inviters by valid invitees (`limit`), with pending ones and the time the evaluation took.", leaderboard),
        route!(get, "/v1/campaigns/{id}/invitees", read, "Signups with verdict and fraud flag (`status` = valid|pending|invalid, `inviter`, `limit`).", invitees),
        route!(post, "/v1/campaigns/{id}/overrides", write, "Operator decision on a flagged invitee: `{\"invitee\": \"<identity>\", \"valid\": true|false}` (null clears).", put_override),
        route!(post, "/v1/campaigns/{id}/reconcile", write, "Grant reached tiers and claw back unsupported rewards now (also runs every 30 s).", reconcile_now),
        route!(get, "/v1/campaigns/{id}/rewards", read, "The reward ledger: grants, clawbacks, stock left.", rewards),
        route!(post, "/v1/campaigns/{id}/claims", write, "A claim token for an invitee the channel knows (`{\"identity\"}`, valid 30 min): the proof a public signup needs.", create_claim),
        route!(get, "/i/{campaign}/{code}", public, "Public invite landing (rate limited per address): records the click (once per visitor and day; the visitor is the `claim`ed person or the client address), names the inviter and the next step.", landing),
        route!(post, "/i/{campaign}/{code}/signup", public, "Public signup through an invite: `{\"claim\", \"device\"?}` (the claim from POST /v1/campaigns/{id}/claims; 401 without) records a referral_signup and returns the next step (add the operator, or a live code with the invitee's claim).", signup),
    ]
}

/// A campaign as saved.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// What the invitee does next after signing up.
    #[serde(default)]
    pub landing: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<siyu_poster::PosterTemplate>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub invites: u64,
    pub reward: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    #[default]
    Instant,
    AfterHold,
}

/// Validity rules with durations as text ("14d").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// Every check, each error naming its field.
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
}

/// Posters are rendered with a font and background parsed once per
/// campaign version.
#[derive(Default)]
pub struct FissionState {
    renderers: Mutex<HashMap<String, (String, Arc<siyu_poster::Renderer>)>>,
    /// Campaigns as the public endpoints read them (dropped on save).
    campaigns: Mutex<HashMap<String, Arc<(Campaign, Rules)>>>,
    font: std::sync::OnceLock<Option<Vec<u8>>>,
    /// New anonymous visitors per campaign today.
    visitors: VisitorCap,
}

/// New anonymous visitor identities (landing clicks without a claim) one
/// campaign may create per day (UTC); clicks beyond it are answered but
/// not recorded. With one visitor per client address and campaign, this
/// bounds what anonymous traffic can add to the identity graph.
pub const MAX_NEW_VISITORS_PER_DAY: u32 = 20_000;

/// Counts new anonymous visitors per campaign and day (in memory: a
/// restart starts the day's count afresh).
pub struct VisitorCap {
    max: u32,
    counts: Mutex<HashMap<String, (i64, u32)>>,
}

impl VisitorCap {
    pub fn new(max: u32) -> Self {
        VisitorCap {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one new-visitor slot of `campaign` on `day`, if any is left.
    pub fn take(&self, campaign: &str, day: i64) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts.entry(campaign.to_string()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

impl Default for VisitorCap {
    fn default() -> Self {
        Self::new(MAX_NEW_VISITORS_PER_DAY)
    }
}

fn load(
    state: &AppState,
    id: &str,
) -> impl std::future::Future<Output = Result<(Campaign, Rules), ApiError>> {
    let s = state.clone();
    let id = id.to_string();
    blocking(move || {
        let v = {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            store.get_setting(&format!("{CAMPAIGN_PREFIX}{id}"))?
        };
        let Some(v) = v else {
            return Err(ApiError::NotFound(format!(
                "no campaign `{id}`; GET /v1/campaigns lists them"
            )));
        };
        let c: Campaign =
            serde_json::from_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut rules = c
            .validate(&|_| true)
            .map_err(|e| ApiError::Internal(e.join("; ")))?;
        rules.campaign = Some(read_engine(&s).campaign_of(&c.id).unwrap_or(u32::MAX));
        Ok((c, rules))
    })
}

fn overrides(state: &AppState, engine: &Engine, id: &str) -> Result<Overrides, ApiError> {
    let rows = {
        let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        store.list_settings(&format!("{OVERRIDE_PREFIX}{id}/"))?
    };
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

// ---------- definitions ----------

async fn put_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    valid_id(&id, "id")?;
    let mut c: Campaign = parse_json(&body, "campaign")?;
    c.id = id.clone();
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let templates = crate::automation::template_names(store.as_mut())?;
        c.validate(&|t| templates.contains(t))
            .map_err(|e| ApiError::InvalidDefinition(e.join("; ")))?;
        let v = serde_json::to_value(&c).map_err(|e| ApiError::Internal(e.to_string()))?;
        store.put_setting(&format!("{CAMPAIGN_PREFIX}{id}"), Some(&v))?;
        s.0.fission
            .campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        Ok(Json(
            json!({"id": id, "tiers": c.tiers.len(), "rewards": c.rewards.len()}),
        ))
    })
    .await
}

async fn get_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    Ok(Json(serde_json::to_value(c).unwrap_or_default()))
}

async fn list_campaigns(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    with_store(&state, |store| {
        let list: Vec<Value> = store
            .list_settings(CAMPAIGN_PREFIX)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok(Json(json!({"campaigns": list})))
    })
    .await
}

async fn put_background(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    let (w, h) = siyu_poster::validate_background(&body)
        .map_err(|e| ApiError::InvalidDefinition(format!("background: {e}")))?;
    if let Some(p) = &c.poster {
        siyu_poster::validate_template(p, Some((w, h)))
            .map_err(|e| ApiError::InvalidDefinition(format!("poster: {e}")))?;
    }
    let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
    with_store(&state, move |store| {
        store.put_setting(
            &format!("{BACKGROUND_PREFIX}{id}"),
            Some(&Value::String(hex)),
        )?;
        Ok(())
    })
    .await?;
    Ok(Json(json!({"width": w, "height": h})))
}

// ---------- invites and posters ----------

/// The self-verifying invite code of an inviter in a campaign.
pub fn invite_code(secret: &[u8], campaign: &str, inviter: &str) -> String {
    crate::links::sign(secret, &format!("invite/{campaign}"), inviter)
}

/// The inviter a valid code names (current or legacy form).
async fn resolve_code(
    state: &AppState,
    campaign: &str,
    code: &str,
) -> Result<Option<String>, ApiError> {
    let secret = state.0.link_secret.clone();
    let purpose = format!("invite/{campaign}");
    let code = code.to_string();
    with_store(state, move |store| {
        Ok(crate::links::resolve(
            store,
            &secret,
            &purpose,
            &code,
            now(),
        )?)
    })
    .await
}

/// Records the inviter's link id, so their code resolves.
async fn remember(state: &AppState, identity: &str) -> Result<(), ApiError> {
    let secret = state.0.link_secret.clone();
    let identity = identity.to_string();
    with_store(state, move |store| {
        crate::links::remember(store, &secret, &identity)?;
        Ok(())
    })
    .await
}

fn link(state: &AppState, campaign: &str, code: &str) -> String {
    format!(
        "{}/i/{campaign}/{code}",
        state.0.config.public_url.trim_end_matches('/')
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    identity: String,
}

async fn create_invite(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: InviteBody = parse_json(&body, "invite")?;
    Identity::parse(&b.identity)
        .map_err(|e| ApiError::InvalidDefinition(format!("identity: {e}")))?;
    let _ = load(&state, &id).await?;
    remember(&state, &b.identity).await?;
    let code = invite_code(&state.0.link_secret, &id, &b.identity);
    let url = link(&state, &id, &code);
    Ok(Json(
        json!({"campaign": id, "inviter": b.identity, "code": code, "link": url,
        "poster": format!("/v1/campaigns/{id}/poster?identity={}", b.identity)}),
    ))
}

/// `POST /v1/campaigns/{id}/claims`: the channel (or its bridge), which
/// knows who opened the invite, gets a short-lived token proving it.
async fn create_claim(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let _ = load(&state, &id).await?;
    let (_, claim, expires_at) =
        crate::links::claim_from_body(&state, format!("campaign/{id}"), &body).await?;
    Ok(Json(
        json!({"campaign": id, "claim": claim, "expires_at": expires_at}),
    ))
}

#[derive(Deserialize)]
struct PosterQuery {
    identity: String,
}

async fn poster(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PosterQuery>,
) -> Result<Response, ApiError> {
    let (c, _) = load(&state, &id).await?;
    let name = {
        let e = read_engine(&state);
        let Some(slot) = e.person_of(&q.identity) else {
            return Err(ApiError::NotFound(format!(
                "no person with identity `{}`",
                q.identity
            )));
        };
        e.person(slot)
            .and_then(|p| p.extra.as_ref())
            .and_then(|x| x.traits.get("name"))
            .and_then(|v| v.as_str())
            .map_or_else(|| "好友".to_string(), str::to_string)
    };
    remember(&state, &q.identity).await?;
    let code = invite_code(&state.0.link_secret, &id, &q.identity);
    let url = link(&state, &id, &code);
    let s = state.clone();
    let png = blocking(move || {
        let version = serde_json::to_string(&c.poster).unwrap_or_default();
        let cached = {
            let cache =
                s.0.fission
                    .renderers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
            cache
                .get(&id)
                .filter(|(v, _)| *v == version)
                .map(|(_, r)| r.clone())
        };
        let renderer = match cached {
            Some(r) => r,
            None => {
                let font =
                    s.0.fission
                        .font
                        .get_or_init(siyu_poster::system_cjk_font)
                        .clone()
                        .ok_or_else(|| {
                            ApiError::Internal(
                                "no CJK font on this machine: apt-get install fonts-wqy-microhei"
                                    .into(),
                            )
                        })?;
                let background = {
                    let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
                    store.get_setting(&format!("{BACKGROUND_PREFIX}{id}"))?
                };
                let background: Option<Vec<u8>> = background.and_then(|v| {
                    let h = v.as_str()?.to_string();
                    (0..h.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                        .collect()
                });
                let template = c.poster.clone().unwrap_or_else(default_poster);
                let r = Arc::new(
                    siyu_poster::Renderer::new(template, background.as_deref(), &font)
                        .map_err(|e| ApiError::InvalidDefinition(format!("poster: {e}")))?,
                );
                s.0.fission
                    .renderers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), (version, r.clone()));
                r
            }
        };
        renderer
            .render(&name, &url)
            .map_err(|e| ApiError::InvalidDefinition(format!("poster: {e}")))
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        png,
    )
        .into_response())
}

fn default_poster() -> siyu_poster::PosterTemplate {
    serde_json::from_value(json!({
        "qr": {"x": 195, "y": 760, "size": 360},
        "name": {"x": 75, "y": 560, "size_px": 56, "color": "#7A2E0E", "max_width": 600, "align": "center"},
        "caption": {"text": "邀请你一起领好礼 · 扫码加入", "x": 75, "y": 1180, "size_px": 34, "color": "#7A2E0E", "max_width": 600, "align": "center"}
    }))
    .expect("the default poster template is valid")
}

// ---------- public landing ----------

type Peer = crate::ratelimit::Peer;

fn campaign_open(c: &Campaign, rules: &Rules, now: i64) -> Result<(), ApiError> {
    if rules.ends.is_some_and(|e| now >= e) {
        return Err(ApiError::Gone(format!("campaign `{}` has ended", c.id)));
    }
    if rules.starts.is_some_and(|s| now < s) {
        return Err(ApiError::Gone(format!(
            "campaign `{}` has not started yet",
            c.id
        )));
    }
    Ok(())
}

/// What both public invite endpoints check first: the caller's rate, the
/// code's signature, the campaign's dates. Returns (client address,
/// inviter, campaign); the campaign comes from a cache the save refreshes.
async fn open_invite(
    state: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    campaign: &str,
    code: &str,
) -> Result<(String, String, Arc<(Campaign, Rules)>), ApiError> {
    let trusted = &state.0.config.trusted_proxies;
    crate::ratelimit::check(state, crate::ratelimit::Limit::PublicLinks, &peer, headers)?;
    let ip = crate::ratelimit::client_key(crate::ratelimit::peer_addr(&peer), headers, trusted);
    let inviter = resolve_code(state, campaign, code)
        .await?
        .ok_or_else(|| ApiError::NotFound("this invite link is not valid".into()))?;
    let cached = state
        .0
        .fission
        .campaigns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(campaign)
        .cloned();
    let c = match cached {
        Some(c) => c,
        None => {
            let c = Arc::new(load(state, campaign).await?);
            state
                .0
                .fission
                .campaigns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(campaign.to_string(), c.clone());
            c
        }
    };
    campaign_open(&c.0, &c.1, now())?;
    Ok((ip, inviter, c))
}

#[derive(Deserialize)]
struct LandingQuery {
    /// A claim token (`POST /v1/campaigns/{id}/claims`): the click is
    /// counted on that person's visitor identity instead of the address's.
    claim: Option<String>,
}

async fn landing(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((campaign, code)): Path<(String, String)>,
    Query(q): Query<LandingQuery>,
) -> Result<Json<Value>, ApiError> {
    let (ip, inviter, opened) = open_invite(&state, peer, &headers, &campaign, &code).await?;
    let c = &opened.0;
    // The click, as a touch naming the campaign (counted by the engine),
    // on a pseudonymous visitor identity: never on the person themself,
    // whose signup must stay their first event to count as new. The
    // visitor is the claimed person, else the client address (one per
    // address and campaign, never one the caller makes up); a click is
    // recorded once per visitor and day, and new anonymous visitors are
    // capped per campaign and day.
    let claimed = match q.claim.filter(|c| !c.is_empty()) {
        Some(token) => Some(claimed_identity(&state, &campaign, &token).await?),
        None => None,
    };
    let anonymous = claimed.is_none();
    let seed = claimed.unwrap_or(ip);
    // Keyed (the link secret): the visitor id of a phone number or an
    // address cannot be found by hashing candidates.
    let visitor = format!(
        "visitor:{}",
        &crate::links::link_id(
            &state.0.link_secret,
            &format!("visitor\n{seed}\n{campaign}")
        )[..16]
    );
    let at = now();
    let day = at.div_euclid(86_400);
    let known = read_engine(&state).person_of(&visitor).is_some();
    let counted = known || !anonymous || state.0.fission.visitors.take(&campaign, day);
    if let (true, Ok(identity)) = (counted, Identity::parse(&visitor)) {
        let channel = Channel::parse(identity.channel())
            .unwrap_or_else(|| Channel::parse("wechat").expect("valid"));
        let mut ev = Event::new(at, identity, EventType::Touch, channel);
        ev.id = Some(format!("click/{campaign}/{visitor}/{day}"));
        let mut p = serde_json::Map::new();
        p.insert("campaign".into(), campaign.clone().into());
        p.insert("code".into(), code.clone().into());
        ev.properties = Some(p);
        state
            .0
            .writer
            .append(vec![ev])
            .await
            .map_err(ApiError::Internal)?;
    }
    let name = {
        let e = read_engine(&state);
        e.person_of(&inviter)
            .and_then(|s| e.person(s))
            .and_then(|p| p.extra.as_ref())
            .and_then(|x| x.traits.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Ok(Json(
        json!({"campaign": c.id, "name": c.name, "inviter_name": name, "signup": format!("/i/{campaign}/{code}/signup"), "next": c.landing, "counted": counted}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    /// The claim token proving who signs up (`POST /v1/campaigns/{id}/claims`).
    #[serde(default)]
    claim: Option<String>,
    /// Optional: must be the claimed identity if given.
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    device: Option<String>,
}

/// The identity a campaign claim token proves (401 otherwise).
async fn claimed_identity(
    state: &AppState,
    campaign: &str,
    token: &str,
) -> Result<String, ApiError> {
    let secret = state.0.link_secret.clone();
    let scope = format!("campaign/{campaign}");
    let token = token.to_string();
    with_store(state, move |store| {
        crate::links::verify_claim(store, &secret, &scope, &token, now()).map_err(ApiError::from)
    })
    .await
}

async fn signup(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((campaign, code)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (ip, inviter, opened) = open_invite(&state, peer, &headers, &campaign, &code).await?;
    let c = &opened.0;
    let b: SignupBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    // A signup creates a person: only one the channel vouched for.
    let Some(token) = b.claim.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::ClaimRequired(format!(
            "claim: a signup needs the claim token the channel gets for the person from POST /v1/campaigns/{campaign}/claims; nothing was recorded"
        )));
    };
    let who = claimed_identity(&state, &campaign, token).await?;
    if b.identity.as_deref().is_some_and(|i| i != who) {
        return Err(ApiError::ClaimRequired(
            "identity: does not match the claim token; send the claim alone".into(),
        ));
    }
    let identity = Identity::parse(&who)
        .map_err(|e| ApiError::Internal(format!("a remembered identity does not parse: {e}")))?;
    let inviter_id = Identity::parse(&inviter).map_err(|e| ApiError::Internal(e.to_string()))?;
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wechat").expect("valid"));
    let mut ev = Event::new(now(), identity, EventType::ReferralSignup, channel);
    ev.reference = Some(inviter_id);
    // One signup per invitee and campaign: a repeated request adds nothing.
    ev.id = Some(format!("signup/{campaign}/{who}"));
    let mut p = serde_json::Map::new();
    p.insert("campaign".into(), campaign.clone().into());
    p.insert("ip".into(), ip.into());
    if let Some(d) = b.device.filter(|d| !d.is_empty() && d.len() <= 128) {
        p.insert("device".into(), d.into());
    }
    ev.properties = Some(p);
    let appended = state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    let new = matches!(appended.first(), Some(siyu_store::Appended::New(_)));
    // Hand the invitee on: a live code routes them to a group or an
    // operator with room (communities), else the landing as defined.
    let live_code = c
        .landing
        .get("live_code")
        .and_then(Value::as_str)
        .map(|code| {
            // The invitee proved who they are: the live code may seat them.
            let claim = crate::links::claim(
                &state.0.link_secret,
                &format!("livecode/{code}"),
                &who,
                now() + crate::links::CLAIM_TTL,
            );
            format!(
                "{}/l/{code}?claim={claim}",
                state.0.config.public_url.trim_end_matches('/'),
            )
        });
    Ok(Json(
        json!({"campaign": campaign, "recorded": new, "next": c.landing, "live_code_url": live_code}),
    ))
}

// ---------- evaluation, analytics, rewards ----------

/// Evaluates a campaign under the engine read lock.
fn evaluate(engine: &Engine, rules: &Rules, o: &Overrides) -> Vec<fission::Invitee> {
    fission::evaluate(engine, rules, o)
}

async fn campaign_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, rules) = load(&state, &id).await?;
    let ledger = ledger_rows(&state, &id).await?;
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &id)?;
        let started = std::time::Instant::now();
        let inv = evaluate(&engine, &rules, &o);
        let clicks = rules.campaign.map_or(0, |code| engine.campaign_clicks(code));
        let f = fission::funnel(&engine, &inv, clicks);
        let cost: i64 = ledger
            .iter()
            .filter(|r| r.status == "granted")
            .map(|r| c.rewards.get(&r.reward).map_or(0, |x| x.cost))
            .sum();
        Ok(Json(json!({
            "campaign": id,
            "funnel": f,
            "rewards_granted": ledger.iter().filter(|r| r.status == "granted").count(),
            "rewards_clawed_back": ledger.iter().filter(|r| r.status == "clawed_back").count(),
            "reward_cost": cost,
            "reward_cost_per_valid": if f.valid == 0 { None } else { Some(cost as f64 / f.valid as f64) },
            "evaluation_ms": started.elapsed().as_secs_f64() * 1000.0,
        })))
    })
    .await
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
    status: Option<String>,
    inviter: Option<String>,
}

async fn leaderboard(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, rules) = load(&state, &id).await?;
    let limit = q.limit.unwrap_or(10).clamp(1, 1000);
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &id)?;
        let started = std::time::Instant::now();
        let inv = evaluate(&engine, &rules, &o);
        let board = fission::leaderboard(&engine, &inv, limit);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let rows: Vec<Value> = board
            .into_iter()
            .map(|(id, v, p)| json!({"inviter": id, "valid": v, "pending": p}))
            .collect();
        Ok(Json(
            json!({"campaign": id, "signups": inv.len(), "top": rows, "evaluation_ms": ms}),
        ))
    })
    .await
}

async fn invitees(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, rules) = load(&state, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    if let Some(st) = q
        .status
        .as_deref()
        .filter(|s| !matches!(*s, "valid" | "pending" | "invalid"))
    {
        return Err(ApiError::BadRequest(format!(
            "status `{st}`: use valid, pending or invalid"
        )));
    }
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &id)?;
        let inviter = q.inviter.as_deref().and_then(|i| engine.person_of(i));
        let rows: Vec<Value> = evaluate(&engine, &rules, &o)
            .into_iter()
            .filter(|i| inviter.is_none_or(|x| i.inviter == x))
            .filter(|i| {
                matches!(
                    (q.status.as_deref(), i.verdict),
                    (None, _)
                        | (Some("valid"), Verdict::Valid)
                        | (Some("pending"), Verdict::Pending { .. })
                        | (Some("invalid"), Verdict::Invalid { .. })
                )
            })
            .take(limit)
            .map(|i| json!({"invitee": engine.canonical_id(i.invitee), "inviter": engine.canonical_id(i.inviter), "ts": i.ts, "verdict": i.verdict, "flag": i.flag, "converted": i.converted, "overridden": o.get(&i.invitee)}))
            .collect();
        Ok(Json(json!({"invitees": rows})))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    invitee: String,
    valid: Option<bool>,
}

async fn put_override(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: OverrideBody = parse_json(&body, "override")?;
    let _ = load(&state, &id).await?;
    let canonical = {
        let e = read_engine(&state);
        let slot = e.person_of(&b.invitee).ok_or_else(|| {
            ApiError::NotFound(format!("no person with identity `{}`", b.invitee))
        })?;
        e.canonical_id(slot).to_string()
    };
    let c2 = canonical.clone();
    with_store(&state, move |store| {
        let key = format!("{OVERRIDE_PREFIX}{id}/{c2}");
        store.put_setting(&key, b.valid.map(Value::Bool).as_ref())?;
        store.audit(&siyu_store::AuditRecord {
            id: 0,
            at: now(),
            action: "fission_override".into(),
            subject: c2.clone(),
            detail: json!({"campaign": id, "valid": b.valid}),
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(json!({"invitee": canonical, "valid": b.valid})))
}

/// One reward ledger row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerRow {
    pub inviter: String,
    pub tier: usize,
    pub reward: String,
    /// `granted`, `clawed_back`, `out_of_stock`.
    pub status: String,
    pub at: i64,
    pub supported_by: u64,
}

async fn ledger_rows(state: &AppState, id: &str) -> Result<Vec<LedgerRow>, ApiError> {
    let prefix = format!("{REWARD_PREFIX}{id}/");
    with_store(state, move |store| {
        Ok(store
            .list_settings(&prefix)?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value(v).ok())
            .collect())
    })
    .await
}

async fn rewards(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    let rows = ledger_rows(&state, &id).await?;
    let stock: BTreeMap<&str, i64> = c
        .rewards
        .iter()
        .map(|(name, r)| {
            let used = rows
                .iter()
                .filter(|x| x.reward == *name && x.status == "granted")
                .count() as i64;
            (name.as_str(), r.stock as i64 - used)
        })
        .collect();
    Ok(Json(json!({"ledger": rows, "stock_left": stock})))
}

async fn reconcile_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = reconcile(&state, &id).await?;
    Ok(Json(r))
}

/// Grants and claws back rewards to match the current evaluation.
pub async fn reconcile(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let (c, rules) = load(state, id).await?;
    let rows = ledger_rows(state, id).await?;
    let s = state.clone();
    let idc = id.to_string();
    let grant = c.grant.clone();
    // (inviter canonical, counted invitees)
    let counts: Vec<(String, u64)> = blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &idc)?;
        let inv = evaluate(&engine, &rules, &o);
        Ok(fission::per_inviter(&inv)
            .into_iter()
            .map(|(slot, (v, p))| {
                let n = match grant {
                    Grant::Instant => v + p,
                    Grant::AfterHold => v,
                };
                (engine.canonical_id(slot).to_string(), n)
            })
            .collect())
    })
    .await?;
    let mut ledger: HashMap<(String, usize), LedgerRow> = rows
        .into_iter()
        .map(|r| ((r.inviter.clone(), r.tier), r))
        .collect();
    let mut used: HashMap<String, u64> = HashMap::new();
    for r in ledger.values() {
        if r.status == "granted" {
            *used.entry(r.reward.clone()).or_default() += 1;
        }
    }
    let counts: HashMap<String, u64> = counts.into_iter().collect();
    let t = now();
    let mut changed: Vec<LedgerRow> = Vec::new();
    let mut events = Vec::new();
    let mut messages: Vec<(String, String, Option<String>, String)> = Vec::new();
    // Claw back grants no longer supported.
    for r in ledger.values_mut() {
        // An erased inviter's rows are settled (they name its pseudonym):
        // a clawback would append an event, and so a person, for it.
        if crate::privacy::is_erasure_pseudonym(&r.inviter) {
            continue;
        }
        let n = counts.get(&r.inviter).copied().unwrap_or(0);
        let need = c.tiers.get(r.tier).map_or(u64::MAX, |t| t.invites);
        if r.status == "granted" && n < need {
            r.status = "clawed_back".into();
            r.at = t;
            r.supported_by = n;
            *used.entry(r.reward.clone()).or_default() -= 1;
            events.push(reward_event(id, r, "reward_clawed_back", t));
            changed.push(r.clone());
        }
    }
    // Grant reached tiers (in tier order, while stock lasts).
    let mut inviters: Vec<(&String, &u64)> = counts.iter().collect();
    inviters.sort();
    for (inviter, &n) in inviters {
        for (i, tier) in c.tiers.iter().enumerate() {
            if n < tier.invites {
                break;
            }
            let key = (inviter.clone(), i);
            if ledger
                .get(&key)
                .is_some_and(|r| r.status == "granted" || r.status == "clawed_back")
            {
                continue; // a clawed-back reward is not granted again
            }
            let stock = c.rewards.get(&tier.reward).map_or(0, |r| r.stock);
            let status = if used.get(&tier.reward).copied().unwrap_or(0) < stock {
                *used.entry(tier.reward.clone()).or_default() += 1;
                "granted"
            } else {
                "out_of_stock"
            };
            if ledger.get(&key).is_some_and(|r| r.status == status) {
                continue;
            }
            let row = LedgerRow {
                inviter: inviter.clone(),
                tier: i,
                reward: tier.reward.clone(),
                status: status.into(),
                at: t,
                supported_by: n,
            };
            if status == "granted" {
                events.push(reward_event(id, &row, "reward_granted", t));
                if let Some(tpl) = c.rewards.get(&tier.reward).and_then(|r| r.template.clone()) {
                    let channel = c.rewards.get(&tier.reward).and_then(|r| r.channel.clone());
                    messages.push((
                        format!("fission/{id}/{inviter}/{i}"),
                        tpl,
                        channel,
                        inviter.clone(),
                    ));
                }
            }
            ledger.insert(key, row.clone());
            changed.push(row);
        }
    }
    if !events.is_empty() {
        state
            .0
            .writer
            .append(events)
            .await
            .map_err(ApiError::Internal)?;
    }
    for (send_id, template, channel, inviter) in messages {
        let _ = state
            .0
            .automation
            .mass_send(MassSend {
                id: send_id,
                segment: None,
                identities: vec![inviter],
                template,
                channel,
                class: Some(siyu_automation::guard::MessageClass::Transactional),
                kind: siyu_automation::guard::SendKind::Direct,
            })
            .await;
    }
    let idc = id.to_string();
    let n = changed.len();
    let granted = changed.iter().filter(|r| r.status == "granted").count();
    let clawed = changed.iter().filter(|r| r.status == "clawed_back").count();
    with_store(state, move |store| {
        let items = changed
            .into_iter()
            .map(|r| {
                let v = serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok((
                    format!("{REWARD_PREFIX}{idc}/{}/{}", r.inviter, r.tier),
                    Some(v),
                ))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        store.put_settings(&items)?;
        Ok(())
    })
    .await?;
    Ok(json!({"campaign": id, "changes": n, "granted": granted, "clawed_back": clawed}))
}

fn reward_event(campaign: &str, r: &LedgerRow, name: &str, t: i64) -> Event {
    let identity = Identity::parse(&r.inviter)
        .unwrap_or_else(|_| Identity::parse("unknown:unknown").expect("valid"));
    let channel = Channel::parse(identity.channel())
        .unwrap_or_else(|| Channel::parse("wecom").expect("valid"));
    let mut ev = Event::new(t, identity, EventType::Custom, channel);
    ev.name = Some(name.to_string());
    ev.id = Some(format!("{name}/{campaign}/{}/{}/{t}", r.inviter, r.tier));
    let mut p = serde_json::Map::new();
    p.insert("campaign".into(), campaign.into());
    p.insert("tier".into(), (r.tier as u64).into());
    p.insert("reward".into(), r.reward.clone().into());
    ev.properties = Some(p);
    ev
}

/// Reconciles every campaign every 30 s.
pub fn spawn(state: AppState) {
    // Holds the state only while working, so shutdown is not delayed.
    let app = Arc::downgrade(&state.0);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let Some(inner) = app.upgrade() else { break };
            let state = AppState(inner);
            let ids: Vec<String> = {
                with_store(&state, |store| {
                    // Every campaign by key, readable or not: one that
                    // cannot be loaded fails (and is logged) on its own.
                    Ok(store
                        .list_settings_each(CAMPAIGN_PREFIX)?
                        .into_iter()
                        .map(|(k, _)| k[CAMPAIGN_PREFIX.len()..].to_string())
                        .collect())
                })
                .await
                .unwrap_or_default()
            };
            for id in ids {
                if let Err(e) = reconcile(&state, &id).await {
                    tracing::warn!(campaign = %id, error = %e, "reward reconcile failed");
                }
            }
        }
    });
}
