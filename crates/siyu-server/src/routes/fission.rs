//! Fission (裂变) campaigns over HTTP: definitions with tiered rewards and
//! stock, per-inviter invite codes, links and QR posters, the public
//! landing and signup endpoints, the reward ledger and campaign analytics.
//!
//! The rules live in `siyu_growth::fission` (campaign checks, invite
//! codes, the events a landing records, the reward ledger's reconcile
//! planner, stats): this module extracts, calls them, commits what they
//! plan (events through the writer, reward messages through the executor,
//! ledger rows through the store, in that order), serializes, renders
//! posters and keeps what lives in the process: the renderer and campaign
//! caches, the visitor cap and the 30 s reconcile timer.
//!
//! Invite codes are opaque signed tokens (`links.rs`): the inviter's link
//! id and an HMAC, so a forged one is refused and none reveals who invited.

use crate::automation::MassSend;
use crate::error::ApiError;
use crate::request::{
    blocking, now, parse_json, read_engine, removal_audit, route, valid_id, with_store,
    ArchivedQuery, Removed, Route,
};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use siyu_domain::Identity;
use siyu_engine::fission::{self as evaluation, Invitee, Overrides, Rules};
use siyu_engine::Engine;
use siyu_growth::fission::{
    self, Campaign, FissionError, InviteeRow, InviteeStatus, LeaderRow, LedgerRow, Reconciled,
    RewardStats, VisitorCap, CAMPAIGN_PREFIX,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/campaigns", read, "Fission campaigns.", list_campaigns),
        route!(put, "/v1/campaigns/{id}", write, "Save a fission campaign: tiers, rewards with stock, validity rules (convert_within, hold, group, anti-fraud), landing, poster.", put_campaign, body = Campaign),
        route!(get, "/v1/campaigns/{id}", read, "A campaign's definition.", get_campaign),
        route!(delete, "/v1/campaigns/{id}", write, "Archive a campaign: no new invites, claims, clicks, signups or rewards (410 `gone`); its ledger, stats, leaderboard and invitees stay readable; PUT restores it.", delete_campaign),
        route!(put, "/v1/campaigns/{id}/background", write, "Upload the poster background (PNG body).", put_background, body_media = "image/png"),
        route!(post, "/v1/campaigns/{id}/invites", write, "An inviter's code, link and poster URL: `{\"identity\": \"wecom:…\"}`.", create_invite, body = InviteBody, statuses = [410]),
        route!(get, "/v1/campaigns/{id}/poster", read, "An inviter's QR poster as PNG (`identity`).", poster, answer_media = "image/png", statuses = [410]),
        route!(get, "/v1/campaigns/{id}/stats", read, "Clicks → signups → valid → converted, K-factor, cycle time, reward cost per valid invitee, referred revenue, invalid by reason.", campaign_stats),
        route!(get, "/v1/campaigns/{id}/leaderboard", read, "Top inviters by valid invitees (`limit`), with pending ones and the time the evaluation took.", leaderboard),
        route!(get, "/v1/campaigns/{id}/invitees", read, "Signups with verdict and fraud flag (`status` = valid|pending|invalid, `inviter`, `limit`).", invitees),
        route!(post, "/v1/campaigns/{id}/overrides", write, "Operator decision on a flagged invitee: `{\"invitee\": \"<identity>\", \"valid\": true|false}` (null clears).", put_override, body = OverrideBody, statuses = [410]),
        route!(post, "/v1/campaigns/{id}/reconcile", write, "Grant reached tiers and claw back unsupported rewards now (also runs every 30 s).", reconcile_now, statuses = [410]),
        route!(get, "/v1/campaigns/{id}/rewards", read, "The reward ledger: grants, clawbacks, stock left.", rewards),
        route!(post, "/v1/campaigns/{id}/claims", write, "A claim token for an invitee the channel knows (`{\"identity\"}`, valid 30 min): the proof a public signup needs.", create_claim, body = (crate::links::ClaimBody), statuses = [410]),
        route!(get, "/i/{campaign}/{code}", public, "Public invite landing (rate limited per address): records the click (once per visitor and day; the visitor is the `claim`ed person or the client address), names the inviter, the reward tiers and the next step. A browser (`Accept` preferring text/html) gets it as a mobile page, its errors too.", landing, statuses = [410]),
        route!(get, "/i/{campaign}/{code}/qr.png", public, "The invite link as a QR code (PNG, 400 px, rate limited per address): what an inviter shares without the poster.", invite_qr, answer_media = "image/png", statuses = [410]),
        route!(post, "/i/{campaign}/{code}/signup", public, "Public signup through an invite: `{\"claim\", \"device\"?}` (the claim from POST /v1/campaigns/{id}/claims; 401 without) records a referral_signup and returns the next step (add the operator, or a live code with the invitee's claim).", signup, body = SignupBody, statuses = [401, 409, 410]),
    ]
}

/// Posters are rendered with a font and background parsed once per
/// campaign version.
#[derive(Default)]
pub struct FissionState {
    renderers: Mutex<HashMap<String, (String, Arc<siyu_poster::Renderer>)>>,
    /// Campaigns as the public endpoints read them (dropped on save).
    campaigns: Mutex<HashMap<String, Arc<(Campaign, Rules)>>>,
    font: std::sync::OnceLock<Option<Vec<u8>>>,
    /// New anonymous visitors per campaign today (in memory: a restart
    /// starts the day's count afresh).
    visitors: Mutex<VisitorCap>,
}

impl FissionState {
    /// Drops what this node keeps of campaign `id` (another node saved,
    /// archived it or uploaded its background); `None`: of every campaign.
    pub fn forget(&self, id: Option<&str>) {
        let mut campaigns = self.campaigns.lock().unwrap_or_else(|e| e.into_inner());
        let mut renderers = self.renderers.lock().unwrap_or_else(|e| e.into_inner());
        match id {
            Some(id) => {
                campaigns.remove(id);
                renderers.remove(id);
            }
            None => {
                campaigns.clear();
                renderers.clear();
            }
        }
    }
}

/// The one mapping of the growth core's fission errors to the API's.
impl From<FissionError> for ApiError {
    fn from(e: FissionError) -> Self {
        match e {
            FissionError::NoCampaign { .. } | FissionError::NoPerson { .. } => {
                ApiError::NotFound(e.to_string())
            }
            FissionError::Invalid { .. }
            | FissionError::Background { .. }
            | FissionError::Poster { .. } => ApiError::InvalidDefinition(e.to_string()),
            FissionError::Ended { .. }
            | FissionError::NotStarted { .. }
            | FissionError::Archived { .. } => ApiError::Gone(e.to_string()),
            FissionError::Status { .. } => ApiError::BadRequest(e.to_string()),
            FissionError::StoredUnreadable { error, .. } => ApiError::Internal(error),
            FissionError::StoredInvalid { .. }
            | FissionError::Unreadable { .. }
            | FissionError::Encode { .. } => ApiError::Internal(e.to_string()),
            FissionError::Store(e) => ApiError::from(e),
        }
    }
}

/// Campaign `id` and its rules (store first, then the engine: the lock
/// order of every reader).
fn load(
    state: &AppState,
    id: &str,
) -> impl std::future::Future<Output = Result<(Campaign, Rules), ApiError>> {
    let s = state.clone();
    let id = id.to_string();
    blocking(move || {
        let c = {
            let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
            fission::load(store.as_mut(), &id)?
        };
        let rules = fission::rules(&c, &read_engine(&s))?;
        Ok((c, rules))
    })
}

/// The operator overrides of campaign `id`, read while the caller holds
/// the engine.
fn overrides(state: &AppState, engine: &Engine, id: &str) -> Result<Overrides, ApiError> {
    let mut store = state.0.reader.lock().unwrap_or_else(|e| e.into_inner());
    Ok(fission::overrides(store.as_mut(), engine, id)?)
}

/// Evaluates campaign `id` under the engine read lock the caller holds.
fn evaluate(
    state: &AppState,
    engine: &Engine,
    id: &str,
    rules: &Rules,
) -> Result<(Vec<Invitee>, Overrides), ApiError> {
    let o = overrides(state, engine, id)?;
    Ok((evaluation::evaluate(engine, rules, &o), o))
}

async fn ledger_rows(state: &AppState, id: &str) -> Result<Vec<LedgerRow>, ApiError> {
    let id = id.to_string();
    with_store(state, move |store| Ok(fission::ledger(store, &id)?)).await
}

// ---------- definitions ----------

/// The stored definitions, as stored (each is a [`Campaign`]; listed
/// without re-reading, so a definition saved by an older version shows).
#[derive(Serialize, schemars::JsonSchema)]
struct CampaignList {
    campaigns: Vec<Value>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct CampaignSaved {
    id: String,
    tiers: usize,
    rewards: usize,
}

async fn put_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CampaignSaved>, ApiError> {
    valid_id(&id, "id")?;
    let mut c: Campaign = parse_json(&body, "campaign")?;
    c.id = id.clone();
    let s = state.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let templates = crate::automation::template_names(store.as_mut())?;
        fission::save(store.as_mut(), &c, &|t| templates.contains(t))?;
        s.0.fission
            .campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        Ok(Json(CampaignSaved {
            id,
            tiers: c.tiers.len(),
            rewards: c.rewards.len(),
        }))
    })
    .await
}

async fn get_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    Ok(Json(c))
}

/// Archived campaigns only with `?archived=true`.
async fn list_campaigns(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<CampaignList>, ApiError> {
    with_store(&state, move |store| {
        let mut campaigns = fission::list(store)?;
        if !shown.archived {
            campaigns.retain(|c| c.get("archived") != Some(&Value::Bool(true)));
        }
        Ok(Json(CampaignList { campaigns }))
    })
    .await
}

/// `DELETE /v1/campaigns/{id}`: archives (the reward ledger is history).
async fn delete_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let s = state.clone();
    let i = id.clone();
    blocking(move || {
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = fission::load(store.as_mut(), &i)?;
        if !c.archived {
            c.archived = true;
            let v = serde_json::to_value(&c).map_err(|e| ApiError::Internal(e.to_string()))?;
            store.put_setting(&format!("{CAMPAIGN_PREFIX}{i}"), Some(&v))?;
            store.audit(&removal_audit(
                "archive_campaign",
                &i,
                serde_json::json!({}),
            ))?;
        }
        s.0.fission
            .campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&i);
        Ok(())
    })
    .await?;
    Ok(Json(Removed::archived("campaign", id)))
}

#[derive(Serialize, schemars::JsonSchema)]
struct BackgroundSaved {
    width: u32,
    height: u32,
}

async fn put_background(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<BackgroundSaved>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    let (width, height) = with_store(&state, move |store| {
        Ok(fission::put_background(store, &c, &body)?)
    })
    .await?;
    Ok(Json(BackgroundSaved { width, height }))
}

// ---------- invites and posters ----------

/// The self-verifying invite code of an inviter in a campaign.
pub fn invite_code(secret: &[u8], campaign: &str, inviter: &str) -> String {
    fission::invite_code(
        &|purpose, identity| crate::links::sign(secret, purpose, identity),
        campaign,
        inviter,
    )
}

/// The inviter a valid code names (current or legacy form).
async fn resolve_code(
    state: &AppState,
    campaign: &str,
    code: &str,
) -> Result<Option<String>, ApiError> {
    let secret = state.0.link_secret.clone();
    let purpose = fission::invite_purpose(campaign);
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    identity: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Invite {
    campaign: String,
    inviter: String,
    code: String,
    link: String,
    poster: String,
}

async fn create_invite(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Invite>, ApiError> {
    let b: InviteBody = parse_json(&body, "invite")?;
    Identity::parse(&b.identity)
        .map_err(|e| ApiError::InvalidDefinition(format!("identity: {e}")))?;
    let (c, _) = load(&state, &id).await?;
    refuse_archived(&c)?;
    remember(&state, &b.identity).await?;
    let code = invite_code(&state.0.link_secret, &id, &b.identity);
    let link = link(&state, &id, &code);
    Ok(Json(Invite {
        poster: format!("/v1/campaigns/{id}/poster?identity={}", b.identity),
        campaign: id,
        inviter: b.identity,
        code,
        link,
    }))
}

/// An archived campaign makes nothing new (410).
fn refuse_archived(c: &Campaign) -> Result<(), ApiError> {
    if c.archived {
        return Err(FissionError::Archived {
            campaign: c.id.clone(),
        }
        .into());
    }
    Ok(())
}

#[derive(Serialize, schemars::JsonSchema)]
struct Claim {
    campaign: String,
    claim: String,
    expires_at: i64,
}

/// `POST /v1/campaigns/{id}/claims`: the channel (or its bridge), which
/// knows who opened the invite, gets a short-lived token proving it.
async fn create_claim(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Claim>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    refuse_archived(&c)?;
    let (claim, expires_at) =
        crate::links::claim_from_body(&state, fission::claim_scope(&id), &body).await?;
    Ok(Json(Claim {
        campaign: id,
        claim,
        expires_at,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
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
        fission::canonical_person(&e, &q.identity)?;
        fission::display_name(&e, &q.identity).unwrap_or_else(|| "好友".to_string())
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
                let font = poster_font(&s)?;
                let background = {
                    let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
                    fission::background(store.as_mut(), &id)?
                };
                let r = Arc::new(
                    siyu_poster::Renderer::new(c.poster_or_default(), background.as_deref(), &font)
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
    Ok(crate::h5::png_cached(png, "private, max-age=300"))
}

// ---------- public landing ----------

type Peer = crate::ratelimit::Peer;

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
    fission::campaign_open(&c.0, &c.1, now())?;
    Ok((ip, inviter, c))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LandingQuery {
    /// A claim token (`POST /v1/campaigns/{id}/claims`): the click is
    /// counted on that person's visitor identity instead of the address's.
    claim: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Landing {
    campaign: String,
    name: String,
    inviter_name: Option<String>,
    signup: String,
    /// The campaign's landing as defined (open: see [`Campaign::landing`];
    /// its page shows `title` and `text`, then the next step: the
    /// `live_code`'s QR, else a button to `url`).
    next: Value,
    /// The reward tiers: invites needed → reward.
    tiers: Vec<fission::Tier>,
    counted: bool,
    /// This invite's QR code (PNG) to share.
    qr: String,
}

/// The landing as JSON, or as a page for a browser (`h5`): what the
/// campaign is, who invited, the reward tiers and the next step.
async fn landing(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((campaign, code)): Path<(String, String)>,
    Query(q): Query<LandingQuery>,
) -> crate::h5::Answer<Landing> {
    let html = crate::h5::wants_html(&headers);
    let result = landing_answer(state, peer, headers, campaign, code, q).await;
    crate::h5::Answer::negotiate(html, crate::h5::Link::Invite, result, |l| {
        crate::h5::page(StatusCode::OK, &l.name, &landing_page(&l))
    })
}

async fn landing_answer(
    state: AppState,
    peer: Peer,
    headers: HeaderMap,
    campaign: String,
    code: String,
    q: LandingQuery,
) -> Result<Landing, ApiError> {
    let (ip, inviter, opened) = open_invite(&state, peer, &headers, &campaign, &code).await?;
    let c = &opened.0;
    let claimed = match q.claim.filter(|c| !c.is_empty()) {
        Some(token) => Some(claimed_identity(&state, &campaign, &token).await?),
        None => None,
    };
    let counted = record_click(&state, &campaign, &code, claimed, ip).await?;
    let inviter_name = fission::display_name(&read_engine(&state), &inviter);
    Ok(Landing {
        campaign: c.id.clone(),
        name: c.name.clone(),
        inviter_name,
        signup: format!("/i/{campaign}/{code}/signup"),
        next: c.landing.clone(),
        tiers: c.tiers.clone(),
        counted,
        qr: format!("/i/{campaign}/{code}/qr.png"),
    })
}

/// Records a click on a public link of `campaign` (a fission campaign, or
/// a partner's `partner/<id>`) as a `touch` on a pseudonymous visitor
/// identity: the `claimed` person, else the client address `ip` (one per
/// address and campaign, never one the caller makes up), once per visitor
/// and day; new anonymous visitors are capped per campaign and day.
/// Whether the click was counted.
pub(crate) async fn record_click(
    state: &AppState,
    campaign: &str,
    code: &str,
    claimed: Option<String>,
    ip: String,
) -> Result<bool, ApiError> {
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
    // Per day in the workspace time zone: the cap turns at local midnight.
    let tz = crate::zone::current(state);
    let day = siyu_automation::schedule::local_day(at, &tz);
    let known = read_engine(state).person_of(&visitor).is_some();
    let counted = known
        || !anonymous
        || state
            .0
            .fission
            .visitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(campaign, day);
    if let Some(ev) = counted
        .then(|| fission::click_event(campaign, code, &visitor, at, &tz))
        .flatten()
    {
        state
            .0
            .writer
            .append(vec![ev])
            .await
            .map_err(ApiError::Internal)?;
    }
    Ok(counted)
}

/// The CJK font posters are drawn with (found once per process).
pub(crate) fn poster_font(state: &AppState) -> Result<Vec<u8>, ApiError> {
    state
        .0
        .fission
        .font
        .get_or_init(siyu_poster::system_cjk_font)
        .clone()
        .ok_or_else(|| {
            ApiError::Internal(
                "no CJK font on this machine: apt-get install fonts-wqy-microhei".into(),
            )
        })
}

/// The landing page's body: every inserted value escaped (names and the
/// landing text are the operator's or the inviter's input).
fn landing_page(l: &Landing) -> String {
    use crate::h5::{both, escape, path_segment};
    let invited = match &l.inviter_name {
        Some(n) => both(&format!("{n} 邀请你参加"), &format!("{n} invited you")),
        None => both("好友邀请你参加", "A friend invited you"),
    };
    let mut body = format!(
        "<section class=card><p class=kicker>{invited}</p><h1>{}</h1>",
        escape(&l.name)
    );
    for key in ["title", "text"] {
        if let Some(t) = l.next.get(key).and_then(Value::as_str) {
            body.push_str(&format!("<p>{}</p>", escape(t)));
        }
    }
    body.push_str("</section>");
    if !l.tiers.is_empty() {
        body.push_str(&format!(
            "<section class=card><h2>{}</h2><ul>",
            both("邀请好友，领取奖励", "Invite friends, earn rewards")
        ));
        for t in &l.tiers {
            body.push_str(&format!(
                "<li><span>{}</span><b>{}</b></li>",
                both(
                    &format!("邀请 {} 位好友", t.invites),
                    &format!(
                        "Invite {} friend{}",
                        t.invites,
                        if t.invites == 1 { "" } else { "s" }
                    )
                ),
                escape(&t.reward)
            ));
        }
        body.push_str("</ul></section>");
    }
    body.push_str(&format!(
        "<section class=\"card center\"><h2>{}</h2>",
        both("下一步", "Next step")
    ));
    let url = l
        .next
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    if let Some(live) = l.next.get("live_code").and_then(Value::as_str) {
        let live = path_segment(live);
        body.push_str(&format!(
            "<p>{}</p><img class=qr src=\"/l/{live}/qr.png\" width=220 height=220 alt=\"QR\">\
             <a class=btn href=\"/l/{live}\">{}</a>",
            both(
                "长按识别二维码，加入会员群",
                "Press and hold the QR code to join the members' group"
            ),
            both("加入会员群", "Join the group"),
        ));
    } else if let Some(url) = url {
        body.push_str(&format!(
            "<p>{}</p><a class=btn href=\"{}\">{}</a>",
            both("点击下方按钮继续", "Tap below to continue"),
            escape(url),
            both("继续", "Continue"),
        ));
    } else {
        body.push_str(&format!(
            "<p>{}</p>",
            both(
                "添加邀请你的好友或商家客服，告诉对方你来自这个邀请。",
                "Add your friend or the shop's service account and say this invite sent you."
            )
        ));
    }
    body.push_str("</section>");
    body
}

/// The invite link (`link`, the one public-URL rule) as a QR PNG; the
/// same checks as the landing (rate, signature, campaign open), nothing
/// recorded.
async fn invite_qr(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path((campaign, code)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    open_invite(&state, peer, &headers, &campaign, &code).await?;
    crate::h5::qr(link(&state, &campaign, &code)).await
}

#[derive(Deserialize, schemars::JsonSchema)]
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

#[derive(Serialize, schemars::JsonSchema)]
struct Signup {
    campaign: String,
    recorded: bool,
    /// The campaign's landing as defined (open: see [`Campaign::landing`]).
    next: Value,
    live_code_url: Option<String>,
}

/// The identity a campaign claim token proves (401 otherwise).
async fn claimed_identity(
    state: &AppState,
    campaign: &str,
    token: &str,
) -> Result<String, ApiError> {
    let secret = state.0.link_secret.clone();
    let scope = fission::claim_scope(campaign);
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
) -> Result<Json<Signup>, ApiError> {
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
    let ev = fission::signup_event(&campaign, &who, &inviter, &ip, b.device.as_deref(), now())?;
    let appended = state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    let recorded = matches!(appended.first(), Some(siyu_store::Appended::New(_)));
    // Hand the invitee on: a live code routes them to a group or an
    // operator with room (communities), else the landing as defined.
    let live_code_url = c
        .live_code()
        .map(|code| crate::links::seat_link(&state, code, &who, now()));
    Ok(Json(Signup {
        campaign,
        recorded,
        next: c.landing.clone(),
        live_code_url,
    }))
}

// ---------- evaluation, analytics, rewards ----------

#[derive(Serialize, schemars::JsonSchema)]
struct Stats {
    campaign: String,
    #[serde(flatten)]
    stats: RewardStats,
    evaluation_ms: f64,
}

async fn campaign_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Stats>, ApiError> {
    let (c, rules) = load(&state, &id).await?;
    let ledger = ledger_rows(&state, &id).await?;
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &id)?;
        let started = std::time::Instant::now();
        let inv = evaluation::evaluate(&engine, &rules, &o);
        let stats = fission::stats(&engine, &c, &rules, &inv, &ledger);
        Ok(Json(Stats {
            campaign: id,
            stats,
            evaluation_ms: started.elapsed().as_secs_f64() * 1000.0,
        }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LimitQuery {
    limit: Option<usize>,
    status: Option<String>,
    inviter: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Leaderboard {
    campaign: String,
    signups: usize,
    top: Vec<LeaderRow>,
    evaluation_ms: f64,
}

async fn leaderboard(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Leaderboard>, ApiError> {
    let (_, rules) = load(&state, &id).await?;
    let limit = q.limit.unwrap_or(10).clamp(1, 1000);
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let o = overrides(&s, &engine, &id)?;
        let started = std::time::Instant::now();
        let inv = evaluation::evaluate(&engine, &rules, &o);
        let top = fission::leaderboard(&engine, &inv, limit);
        let evaluation_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(Json(Leaderboard {
            campaign: id,
            signups: inv.len(),
            top,
            evaluation_ms,
        }))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
struct Invitees {
    invitees: Vec<InviteeRow>,
}

async fn invitees(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Invitees>, ApiError> {
    let (_, rules) = load(&state, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let status = q.status.as_deref().map(InviteeStatus::parse).transpose()?;
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let (inv, o) = evaluate(&s, &engine, &id, &rules)?;
        let invitees = fission::invitees(&engine, &inv, &o, status, q.inviter.as_deref(), limit);
        Ok(Json(Invitees { invitees }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    invitee: String,
    valid: Option<bool>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct OverrideSaved {
    invitee: String,
    /// `null`: the decision was cleared.
    valid: Option<bool>,
}

async fn put_override(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<OverrideSaved>, ApiError> {
    let b: OverrideBody = parse_json(&body, "override")?;
    let _ = load(&state, &id).await?;
    let canonical = fission::canonical_person(&read_engine(&state), &b.invitee)?;
    let c2 = canonical.clone();
    with_store(&state, move |store| {
        Ok(fission::set_override(store, &id, &c2, b.valid, now())?)
    })
    .await?;
    Ok(Json(OverrideSaved {
        invitee: canonical,
        valid: b.valid,
    }))
}

#[derive(Serialize, schemars::JsonSchema)]
struct Rewards {
    ledger: Vec<LedgerRow>,
    stock_left: BTreeMap<String, i64>,
}

async fn rewards(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Rewards>, ApiError> {
    let (c, _) = load(&state, &id).await?;
    let ledger = ledger_rows(&state, &id).await?;
    let stock_left = fission::stock_left(&c, &ledger);
    Ok(Json(Rewards { ledger, stock_left }))
}

async fn reconcile_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Reconciled>, ApiError> {
    Ok(Json(reconcile(&state, &id).await?))
}

/// Grants and claws back rewards to match the current evaluation: the
/// growth core plans the pass, this commits it — events through the
/// writer, then reward messages through the executor (keyed, so a repeat
/// sends nothing twice), then the ledger rows.
pub async fn reconcile(state: &AppState, id: &str) -> Result<Reconciled, ApiError> {
    let (c, rules) = load(state, id).await?;
    if c.archived {
        // Its ledger is history: nothing granted or clawed back any more.
        return Ok(Reconciled {
            campaign: id.to_string(),
            changes: 0,
            granted: 0,
            clawed_back: 0,
        });
    }
    let rows = ledger_rows(state, id).await?;
    let s = state.clone();
    let idc = id.to_string();
    let grant = c.grant;
    // The rows' inviters are resolved to persons under the same engine
    // read as the counts, so both name the same canonical ids.
    let (counts, vouched, persons, rows) = blocking(move || {
        let engine = read_engine(&s);
        let (inv, o) = evaluate(&s, &engine, &idc, &rules)?;
        let persons = fission::resolve(&engine, &rows);
        Ok((
            fission::tally(&engine, &inv, grant),
            fission::vouched(&engine, &inv, &o),
            persons,
            rows,
        ))
    })
    .await?;
    let plan = fission::plan(
        &c,
        rows,
        &counts,
        now(),
        &fission::People {
            person: &|i| persons.get(i).cloned(),
            settled: &crate::privacy::is_erasure_pseudonym,
            vouched: &|i| vouched.contains(i),
        },
    );
    let summary = plan.summary(id);
    let settings = plan.settings(id)?;
    if !plan.events.is_empty() {
        state
            .0
            .writer
            .append(plan.events)
            .await
            .map_err(ApiError::Internal)?;
    }
    for m in plan.messages {
        let _ = state
            .0
            .automation
            .mass_send(MassSend {
                id: m.id,
                segment: None,
                identities: vec![m.inviter],
                template: m.template,
                channel: m.channel,
                class: Some(siyu_automation::guard::MessageClass::Transactional),
                kind: siyu_automation::guard::SendKind::Direct,
            })
            .await;
    }
    with_store(state, move |store| {
        store.put_settings(&settings)?;
        Ok(())
    })
    .await?;
    Ok(summary)
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
            if !inner.leader.is_leader() {
                continue; // the node holding the lease reconciles (`crate::leader`)
            }
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
