//! HTTP endpoints of the partner program (`siyu_growth::partners`):
//! partner definitions, their signed link codes, arrivals through them,
//! the commission ledger (lines and totals at an instant, as CSV for
//! payouts) and payouts, and turning a customer into a distributor (分销).
//!
//! The ledger is reconciled on read: `GET …/ledger` answers what the log
//! supports at `now` (or `?at=`) without writing; `POST …/payouts`
//! reconciles at `now`, marks the payable lines paid and stores the
//! ledger, so what was paid is remembered and a later refund becomes a
//! negative line. Attribution is the program's model (`/v1/partners/settings`:
//! first touch by default, or last touch) within each partner's window.

use crate::error::ApiError;
use crate::request::{
    blocking, now, parse_json, read_engine, removal_audit, route, valid_id, with_store,
    ArchivedQuery, Removed, Route,
};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};
use siyu_domain::Identity;
use siyu_growth::partners::{self, LedgerLine, LedgerTotals, Partner, PartnerError, Program};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/partners", read, "Partners (达人 / KOC / MCN / distributors); archived ones with `?archived=true`.", list_partners),
        route!(post, "/v1/partners/from-person", write, "Turn a customer into a distributor (分销): `{\"identity\", \"id\"?, \"name\"?, \"rate_bp\"?}`; 404 for an unknown person, 409 if the id is taken.", partner_from_person, body = FromPerson, statuses = [404, 409]),
        route!(get, "/v1/partners/settings", read, "The program's rules: `{\"model\": \"first_touch\"|\"last_touch\"}`, which partner an order is credited to when its buyer arrived through several within their windows.", get_program),
        route!(put, "/v1/partners/settings", write, "Save the program's rules `{\"model\"}`; every ledger is re-credited on its next reconcile (paid commission on an order another partner now gets is clawed back).", put_program, body = Program),
        route!(get, "/v1/partners/{id}", read, "One partner's definition.", get_partner),
        route!(put, "/v1/partners/{id}", write, "Save a partner: `{\"name\", \"kind\"?: \"koc\"|\"mcn\"|\"distributor\", \"identity\", \"attribution\"?: {\"window\": \"30d\"}, \"commission\": {\"rate_bp\", \"tiers\"?: [{\"from\", \"rate_bp\"}], \"products\"?: {sku: rate_bp}}, \"hold\"?: \"7d\", \"fees\"?: fen, \"devices\"?: […]}`.", put_partner, body = Partner),
        route!(delete, "/v1/partners/{id}", write, "Archive a partner: no new links or arrivals (410); the ledger stays readable and payable; PUT restores it.", delete_partner),
        route!(get, "/v1/partners/{id}/link", read, "The partner's signed link code (an arrival with another code is refused) and the QR poster's campaign name.", partner_link, statuses = [410]),
        route!(post, "/v1/partners/{id}/arrivals", write, "Record an arrival through the partner's link: `{\"identity\", \"code\", \"device\"?}` (a referral_signup with the partner as `ref`, once per identity and day).", partner_arrival, body = ArrivalBody, statuses = [410]),
        route!(get, "/v1/partners/{id}/ledger", read, "The commission ledger at `now` (or `?at=` epoch seconds): lines per order (held, payable, paid, refused, clawback), totals in fen, and the partner's ROI (revenue against commission and fees, repeat rate).", partner_ledger),
        route!(get, "/v1/partners/{id}/ledger.csv", read, "The ledger as CSV (UTF-8 with BOM; `?at=`): the payout export, one row per line with its payout id.", partner_ledger_csv, answer_media = "text/csv"),
        route!(post, "/v1/partners/{id}/claims", write, "A claim token for a person the channel knows (`{\"identity\"}`, valid 30 min): the proof a public signup through the partner's link needs.", create_claim, body = (crate::links::ClaimBody), statuses = [410]),
        route!(get, "/v1/partners/{id}/poster", read, "The partner's QR poster (PNG, 750 × 1334): its name and its link as a QR code, to share.", partner_poster, answer_media = "image/png", statuses = [410]),
        route!(get, "/p/{partner}/{code}", public, "Public partner landing (rate limited per address): records the visit as a click (a `touch` with `campaign` `partner/<id>`, once per visitor and day; the visitor is the `claim`ed person or the client address), names the partner and the next step. A browser (`Accept` preferring text/html) gets a mobile page.", landing, statuses = [410]),
        route!(get, "/p/{partner}/{code}/qr.png", public, "The partner's link as a QR code (PNG, 400 px, rate limited per address).", landing_qr, answer_media = "image/png", statuses = [410]),
        route!(post, "/p/{partner}/{code}/signup", public, "Public arrival through a partner's link: `{\"claim\", \"device\"?}` (the claim from POST /v1/partners/{id}/claims; 401 without) records the arrival (a referral_signup crediting the partner) and returns the next step (the partner's live code with the person's claim).", public_signup, body = PublicSignup, statuses = [401, 410]),
        route!(post, "/v1/partners/{id}/payouts", write, "Pay what is payable now: marks the payable lines paid under a payout id (clawbacks counted negative); 409 when nothing positive is payable.", partner_payout, statuses = [409]),
    ]
}

/// The one mapping of the partner program's errors to API errors.
impl From<PartnerError> for ApiError {
    fn from(e: PartnerError) -> Self {
        match e {
            PartnerError::NoPartner { .. } => ApiError::NotFound(e.to_string()),
            PartnerError::Invalid { .. } => ApiError::InvalidDefinition(e.to_string()),
            PartnerError::Unreadable { .. } => ApiError::Internal(e.to_string()),
            PartnerError::Store(e) => ApiError::from(e),
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
struct PartnerList {
    partners: Vec<Partner>,
}

async fn list_partners(
    State(state): State<AppState>,
    Query(shown): Query<ArchivedQuery>,
) -> Result<Json<PartnerList>, ApiError> {
    with_store(&state, move |store| {
        let mut partners = partners::list(store)?;
        if !shown.archived {
            partners.retain(|p| !p.archived);
        }
        Ok(Json(PartnerList { partners }))
    })
    .await
}

async fn get_program(State(state): State<AppState>) -> Result<Json<Program>, ApiError> {
    with_store(&state, |store| Ok(Json(partners::program(store)?))).await
}

async fn put_program(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Program>, ApiError> {
    let p: Program = parse_json(&body, "partner program")?;
    with_store(&state, move |store| {
        partners::save_program(store, &p)?;
        Ok(Json(p))
    })
    .await
}

async fn get_partner(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    with_store(&state, move |store| Ok(Json(partners::load(store, &id)?))).await
}

async fn put_partner(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Partner>, ApiError> {
    valid_id(&id, "id")?;
    let p: Partner = parse_json(&body, "partner")?;
    with_store(&state, move |store| {
        if let Some(code) = &p.live_code {
            if siyu_growth::community::livecode::load_livecode(store, code)?.is_none() {
                return Err(ApiError::InvalidDefinition(format!(
                    "live_code: no live code `{code}`; create it with PUT /v1/livecodes/{code}, or leave live_code out"
                )));
            }
        }
        Ok(Json(partners::save(store, &id, p)?))
    })
    .await
}

async fn delete_partner(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let i = id.clone();
    with_store(&state, move |store| {
        if partners::archive(store, &i)? {
            store.audit(&removal_audit("archive_partner", &i, serde_json::json!({})))?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(Removed::archived("partner", id)))
}

/// An archived partner makes nothing new (410).
fn refuse_archived(p: &Partner) -> Result<(), ApiError> {
    if p.archived {
        return Err(ApiError::Gone(format!(
            "partner `{}` is archived: no new links or arrivals; PUT /v1/partners/{} restores it",
            p.id, p.id
        )));
    }
    Ok(())
}

/// `GET /v1/partners/{id}/link`.
#[derive(Serialize, schemars::JsonSchema)]
struct PartnerLink {
    partner: String,
    /// The signed code an arrival carries (HMAC over the partner's link id).
    code: String,
    /// What an arrival's `referral_signup` carries as `properties.campaign`.
    campaign: String,
    /// The public landing (`/p/{id}/{code}`).
    link: String,
    /// The landing as a QR code (PNG).
    qr: String,
    /// The partner's poster (PNG, needs a key that reads).
    poster: String,
}

fn code_of(state: &AppState, p: &Partner) -> String {
    crate::links::sign(
        &state.0.link_secret,
        &partners::link_purpose(&p.id),
        &p.identity,
    )
}

/// Whether `code` is partner `p`'s link code.
fn is_code_of(state: &AppState, p: &Partner, code: &str) -> bool {
    let secret = &state.0.link_secret;
    crate::links::verify(secret, &partners::link_purpose(&p.id), code)
        == Some(crate::links::link_id(secret, &p.identity))
}

/// The partner's public link (the landing; what its QR and poster carry).
fn public_link(state: &AppState, id: &str, code: &str) -> String {
    format!(
        "{}/p/{}/{code}",
        state.0.config.public_url.trim_end_matches('/'),
        crate::h5::path_segment(id)
    )
}

async fn partner_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PartnerLink>, ApiError> {
    let p = with_store(&state, move |store| Ok(partners::load(store, &id)?)).await?;
    refuse_archived(&p)?;
    let code = code_of(&state, &p);
    let link = public_link(&state, &p.id, &code);
    Ok(Json(PartnerLink {
        qr: format!("{link}/qr.png"),
        poster: format!("/v1/partners/{}/poster", crate::h5::path_segment(&p.id)),
        link,
        code,
        campaign: partners::arrival_campaign(&p.id),
        partner: p.id,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ArrivalBody {
    /// The arriving person's identity.
    identity: String,
    /// The partner's code (`GET /v1/partners/{id}/link`).
    code: String,
    /// The device fingerprint the landing saw (anti-fraud).
    #[serde(default)]
    device: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Arrived {
    partner: String,
    identity: String,
    event_id: String,
}

async fn partner_arrival(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Arrived>, ApiError> {
    let b: ArrivalBody = parse_json(&body, "arrival")?;
    let who = Identity::parse(&b.identity)
        .map_err(|e| ApiError::InvalidDefinition(format!("identity: {e}")))?;
    let p = with_store(&state, move |store| Ok(partners::load(store, &id)?)).await?;
    refuse_archived(&p)?;
    if !is_code_of(&state, &p, &b.code) {
        return Err(ApiError::InvalidDefinition(format!(
            "code: not partner `{}`'s code; GET /v1/partners/{}/link gives it",
            p.id, p.id
        )));
    }
    let ev = partners::arrival_event(&p, &who, b.device.as_deref(), now())?;
    let event_id = ev.id.clone().unwrap_or_default();
    state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(Arrived {
        partner: p.id,
        identity: b.identity,
        event_id,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    /// The instant (epoch seconds) to show the ledger at; default now.
    #[serde(default)]
    at: Option<i64>,
}

/// `GET /v1/partners/{id}/ledger`.
#[derive(Serialize, schemars::JsonSchema)]
struct PartnerLedger {
    partner: String,
    at: i64,
    totals: LedgerTotals,
    /// Revenue against commission and fees, and the customers' repeat rate.
    roi: partners::PartnerRoi,
    lines: Vec<LedgerLine>,
}

/// Partner `id`'s ledger at `at` (the program's attribution model), not written.
async fn reconciled(
    state: &AppState,
    id: String,
    at: i64,
) -> Result<partners::Reconciled, ApiError> {
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        Ok(partners::reconcile(&engine, store.as_mut(), &id, at)?)
    })
    .await
}

/// One partner's row beside channel ROI (`GET /v1/analytics/roi`).
#[derive(Serialize, schemars::JsonSchema)]
pub struct PartnerRoiRow {
    pub partner: String,
    pub name: String,
    pub kind: partners::PartnerKind,
    pub archived: bool,
    #[serde(flatten)]
    pub roi: partners::PartnerRoi,
}

/// Every partner's ROI now, of the persons who arrived within `arrived`
/// (all time: none, fees included), by id. The engine is read before the
/// store, as everywhere.
pub(crate) fn roi_rows(
    engine: &siyu_engine::Engine,
    store: &mut dyn siyu_store::Store,
    arrived: Option<&std::ops::Range<i64>>,
) -> Result<Vec<PartnerRoiRow>, ApiError> {
    let at = now();
    let mut rows = Vec::new();
    for p in partners::list(store)? {
        let r = partners::reconcile(engine, store, &p.id, at)?;
        rows.push(PartnerRoiRow {
            roi: partners::roi_of(&r, arrived),
            partner: p.id,
            name: p.name,
            kind: p.kind,
            archived: p.archived,
        });
    }
    Ok(rows)
}

fn instant(q: &LedgerQuery) -> Result<i64, ApiError> {
    match q.at {
        None => Ok(now()),
        Some(t) if (946_684_800..4_102_444_800).contains(&t) => Ok(t),
        Some(t) => Err(ApiError::BadRequest(format!(
            "at: {t} is not an instant between 2000 and 2100; give epoch seconds"
        ))),
    }
}

async fn partner_ledger(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Result<Json<PartnerLedger>, ApiError> {
    let at = instant(&q)?;
    let r = reconciled(&state, id, at).await?;
    Ok(Json(PartnerLedger {
        at,
        totals: partners::totals(&r.lines),
        roi: partners::roi(&r),
        partner: r.partner.id,
        lines: r.lines,
    }))
}

/// A text cell with a leading `=`, `+`, `-` or `@` defused (a spreadsheet
/// would run it as a formula); numbers are written as they are.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn json_word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn partner_ledger_csv(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Result<Response, ApiError> {
    let at = instant(&q)?;
    let partners::Reconciled {
        partner: p, lines, ..
    } = reconciled(&state, id, at).await?;
    let mut w = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    let csv_err = |e: csv::Error| ApiError::Internal(format!("ledger csv: {e}"));
    w.write_record([
        "partner",
        "order_id",
        "line",
        "person",
        "product",
        "kind",
        "status",
        "base_fen",
        "rate_bp",
        "amount_fen",
        "clawed_back_fen",
        "flag",
        "at",
        "hold_until",
        "paid_at",
        "payout",
    ])
    .map_err(csv_err)?;
    for l in &lines {
        w.write_record([
            cell(&p.id),
            cell(&l.order_id),
            l.n.to_string(),
            cell(&l.person),
            cell(l.product.as_deref().unwrap_or("")),
            json_word(&l.kind),
            json_word(&l.status),
            l.base.to_string(),
            l.rate_bp.to_string(),
            l.amount.to_string(),
            l.clawed_back.to_string(),
            l.flag.map(|f| f.as_str().to_string()).unwrap_or_default(),
            l.at.to_string(),
            l.hold_until.to_string(),
            l.paid_at.map(|t| t.to_string()).unwrap_or_default(),
            cell(l.payout.as_deref().unwrap_or("")),
        ])
        .map_err(csv_err)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| ApiError::Internal(format!("ledger csv: {e}")))?;
    let disposition = format!("attachment; filename=\"partner-{}-ledger.csv\"", p.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `POST /v1/partners/{id}/payouts`.
#[derive(Serialize, schemars::JsonSchema)]
struct PartnerPayout {
    partner: String,
    payout: String,
    /// Fen paid (clawback lines deducted).
    paid: i64,
    lines: usize,
    totals: LedgerTotals,
}

/// How long a payout may hold its partner's payout lease: far longer than
/// a reconcile takes; a node that dies mid-payout frees it after this.
const PAYOUT_LEASE_MS: u64 = 30_000;

/// Reconciles, pays and stores under one hold of the reader connection
/// (two payouts in this process never pay one line twice) and under the
/// partner's payout lease in the store (`partner_payout/<id>`), so two
/// nodes on one database cannot both pay the same lines: the second
/// answers 409 while the first runs, and nothing payable after it.
async fn partner_payout(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PartnerPayout>, ApiError> {
    let s = state.clone();
    blocking(move || {
        // The engine before the reader connection, as everywhere.
        let engine = read_engine(&s);
        let mut guard = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let store = guard.as_mut();
        let lease = format!("partner_payout/{id}");
        let holder = format!("{}/payout", s.0.leader.node);
        if store
            .acquire_lease(&lease, &holder, PAYOUT_LEASE_MS)?
            .is_none()
        {
            return Err(ApiError::Conflict(format!(
                "a payout of partner `{id}` is running on another node; retry when it ends (its ledger then shows what it paid)"
            )));
        }
        let paid = pay_now(&engine, store, &id);
        // Released whatever the outcome; if this fails the lease expires.
        let _ = store.release_lease(&lease, &holder);
        paid
    })
    .await
}

/// The payout itself, under the partner's payout lease.
fn pay_now(
    engine: &siyu_engine::Engine,
    store: &mut dyn siyu_store::Store,
    id: &str,
) -> Result<Json<PartnerPayout>, ApiError> {
    let at = now();
    let partners::Reconciled {
        partner: p,
        mut lines,
        ..
    } = partners::reconcile(engine, store, id, at)?;
    let payable = partners::totals(&lines).payable;
    if payable <= 0 {
        return Err(ApiError::Conflict(format!(
                "partner `{}` has {payable} fen payable: nothing to pay (held lines become payable when their refund window ends; clawbacks are deducted from the next payout)",
                p.id
            )));
    }
    let payout = format!("{}-{at}", p.id);
    let count = lines
        .iter()
        .filter(|l| l.status == partners::LineStatus::Payable)
        .count();
    let paid = partners::pay(&mut lines, &payout, at);
    partners::store_lines(store, &p.id, &lines)?;
    store.audit(&removal_audit(
        "partner_payout",
        &p.id,
        serde_json::json!({"payout": payout, "paid_fen": paid, "lines": count}),
    ))?;
    Ok(Json(PartnerPayout {
        partner: p.id,
        payout,
        paid,
        lines: count,
        totals: partners::totals(&lines),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FromPerson {
    /// Any identity of the customer.
    identity: String,
    /// The partner id; default `d-` and the start of the person's link id.
    #[serde(default)]
    id: Option<String>,
    /// Default: the person's `name` trait, else the identity.
    #[serde(default)]
    name: Option<String>,
    /// Commission in basis points (default 1000, 10 %).
    #[serde(default)]
    rate_bp: Option<u32>,
}

/// `POST /v1/partners/from-person`.
#[derive(Serialize, schemars::JsonSchema)]
struct Distributor {
    partner: Partner,
    code: String,
    /// The customer's purchases and net spend (fen) when they became a partner.
    purchases: u32,
    net_spend: i64,
}

async fn partner_from_person(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Distributor>, ApiError> {
    let b: FromPerson = parse_json(&body, "from-person")?;
    if b.identity.is_empty() {
        return Err(ApiError::InvalidDefinition(
            "identity: the customer's identity, such as `wecom:wm0001`".into(),
        ));
    }
    let (canonical, name, purchases, net_spend) = {
        let e = read_engine(&state);
        let slot = crate::request::resolve(&e, &b.identity)?;
        let person = e.person(slot);
        (
            e.canonical_id(slot).to_string(),
            siyu_growth::fission::display_name(&e, &b.identity),
            person.map_or(0, |x| x.purchase_count()),
            person.map_or(0, |x| x.net_spend()),
        )
    };
    let id = match b.id {
        Some(id) => id,
        None => format!(
            "d-{}",
            &crate::links::link_id(&state.0.link_secret, &canonical)[..12]
        ),
    };
    valid_id(&id, "id")?;
    let p = Partner {
        id: id.clone(),
        name: b.name.or(name).unwrap_or_else(|| b.identity.clone()),
        kind: partners::PartnerKind::Distributor,
        identity: b.identity.clone(),
        attribution: Default::default(),
        commission: partners::Commission {
            rate_bp: b.rate_bp.unwrap_or(1000),
            tiers: Vec::new(),
            products: Default::default(),
        },
        hold: 7 * 86_400,
        fees: 0,
        devices: Vec::new(),
        live_code: None,
        archived: false,
    };
    let saved = with_store(&state, move |store| {
        if store.get_setting(&partners::key(&id))?.is_some() {
            return Err(ApiError::Conflict(format!(
                "partner `{id}` exists; give another `id` or edit it with PUT /v1/partners/{id}"
            )));
        }
        Ok(partners::save(store, &id, p)?)
    })
    .await?;
    Ok(Json(Distributor {
        code: code_of(&state, &saved),
        partner: saved,
        purchases,
        net_spend,
    }))
}

// ---------- claims, poster and the public landing ----------

#[derive(Serialize, schemars::JsonSchema)]
struct Claim {
    partner: String,
    claim: String,
    expires_at: i64,
}

/// The claim scope of partner `id`'s public signup.
fn claim_scope(id: &str) -> String {
    format!("partner-claim/{id}")
}

/// `POST /v1/partners/{id}/claims`: the channel (or its bridge), which
/// knows who opened the partner's link, gets a short-lived token proving it.
async fn create_claim(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Claim>, ApiError> {
    let i = id.clone();
    let p = with_store(&state, move |store| Ok(partners::load(store, &i)?)).await?;
    refuse_archived(&p)?;
    let (claim, expires_at) =
        crate::links::claim_from_body(&state, claim_scope(&id), &body).await?;
    Ok(Json(Claim {
        partner: id,
        claim,
        expires_at,
    }))
}

/// The poster of a partner: the fission default with the partner's name
/// over the QR of its landing.
fn poster_template() -> siyu_poster::PosterTemplate {
    let mut t = siyu_growth::fission::default_poster();
    if let Some(c) = t.caption.as_mut() {
        c.text = "扫码了解 · 专属福利".into();
    }
    t
}

async fn partner_poster(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = with_store(&state, move |store| Ok(partners::load(store, &id)?)).await?;
    refuse_archived(&p)?;
    let url = public_link(&state, &p.id, &code_of(&state, &p));
    let s = state.clone();
    let png = blocking(move || {
        let font = crate::routes::fission::poster_font(&s)?;
        siyu_poster::Renderer::new(poster_template(), None, &font)
            .and_then(|r| r.render(&p.name, &url))
            .map_err(|e| ApiError::Internal(format!("partner poster: {e}")))
    })
    .await?;
    Ok(crate::h5::png_cached(png, "private, max-age=300"))
}

type Peer = crate::ratelimit::Peer;

/// What every public partner endpoint checks first: the caller's rate,
/// the partner (404 unknown, 410 archived) and its code's signature.
/// Returns (client address, partner).
async fn open_link(
    state: &AppState,
    peer: Peer,
    headers: &axum::http::HeaderMap,
    id: &str,
    code: &str,
) -> Result<(String, Partner), ApiError> {
    let trusted = &state.0.config.trusted_proxies;
    crate::ratelimit::check(state, crate::ratelimit::Limit::PublicLinks, &peer, headers)?;
    let ip = crate::ratelimit::client_key(crate::ratelimit::peer_addr(&peer), headers, trusted);
    let i = id.to_string();
    let p = with_store(state, move |store| match partners::load(store, &i) {
        Err(PartnerError::NoPartner { .. }) => Ok(None),
        r => Ok(Some(r?)),
    })
    .await?
    .filter(|p| is_code_of(state, p, code))
    .ok_or_else(|| ApiError::NotFound("this partner link is not valid".into()))?;
    refuse_archived(&p)?;
    Ok((ip, p))
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LandingQuery {
    /// A claim token (`POST /v1/partners/{id}/claims`): the visit is
    /// counted on that person's visitor identity instead of the address's.
    claim: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Landing {
    partner: String,
    name: String,
    kind: partners::PartnerKind,
    /// Where a signup with the person's claim goes.
    signup: String,
    /// The partner's live code, if arrivals are handed on to one.
    live_code: Option<String>,
    counted: bool,
    /// This link's QR code (PNG) to share.
    qr: String,
}

/// The identity a partner claim token proves (401 otherwise).
async fn claimed_identity(state: &AppState, id: &str, token: &str) -> Result<String, ApiError> {
    let secret = state.0.link_secret.clone();
    let scope = claim_scope(id);
    let token = token.to_string();
    with_store(state, move |store| {
        crate::links::verify_claim(store, &secret, &scope, &token, now()).map_err(ApiError::from)
    })
    .await
}

/// The landing as JSON, or as a mobile page for a browser (`h5`).
async fn landing(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    Path((id, code)): Path<(String, String)>,
    Query(q): Query<LandingQuery>,
) -> crate::h5::Answer<Landing> {
    let html = crate::h5::wants_html(&headers);
    let result = async {
        let (ip, p) = open_link(&state, peer, &headers, &id, &code).await?;
        let claimed = match q.claim.filter(|c| !c.is_empty()) {
            Some(token) => Some(claimed_identity(&state, &p.id, &token).await?),
            None => None,
        };
        let campaign = partners::arrival_campaign(&p.id);
        let counted =
            crate::routes::fission::record_click(&state, &campaign, &code, claimed, ip).await?;
        let seg = crate::h5::path_segment(&p.id);
        Ok(Landing {
            signup: format!("/p/{seg}/{code}/signup"),
            qr: format!("/p/{seg}/{code}/qr.png"),
            partner: p.id,
            name: p.name,
            kind: p.kind,
            live_code: p.live_code,
            counted,
        })
    }
    .await;
    crate::h5::Answer::negotiate(html, crate::h5::Link::Partner, result, |l| {
        crate::h5::page(axum::http::StatusCode::OK, &l.name, &landing_page(&l))
    })
}

/// The landing page's body: every inserted value escaped (the name is
/// the operator's input).
fn landing_page(l: &Landing) -> String {
    use crate::h5::{both, escape, path_segment};
    let kicker = match l.kind {
        partners::PartnerKind::Distributor => both("好友推荐", "Recommended by a friend"),
        _ => both("达人推荐", "Recommended by"),
    };
    let mut body = format!(
        "<section class=card><p class=kicker>{kicker}</p><h1>{}</h1><p>{}</p></section>",
        escape(&l.name),
        both(
            "通过 TA 的专属链接加入，享受专属福利与服务。",
            "Join through this personal link for members' offers and service."
        )
    );
    body.push_str(&format!(
        "<section class=\"card center\"><h2>{}</h2>",
        both("下一步", "Next step")
    ));
    match &l.live_code {
        Some(live) => {
            let live = path_segment(live);
            body.push_str(&format!(
                "<p>{}</p><img class=qr src=\"/l/{live}/qr.png\" width=220 height=220 alt=\"QR\">\
                 <a class=btn href=\"/l/{live}\">{}</a>",
                both(
                    "长按识别二维码，添加专属顾问",
                    "Press and hold the QR code to add your adviser"
                ),
                both("添加顾问", "Add the adviser"),
            ));
        }
        None => body.push_str(&format!(
            "<p>{}</p>",
            both(
                "添加商家客服，告诉对方你来自这位推荐人。",
                "Add the shop's service account and say who recommended you."
            )
        )),
    }
    body.push_str("</section>");
    body
}

/// The landing link as a QR PNG; the same checks, nothing recorded.
async fn landing_qr(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    Path((id, code)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, p) = open_link(&state, peer, &headers, &id, &code).await?;
    crate::h5::qr(public_link(&state, &p.id, &code)).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PublicSignup {
    /// The claim token proving who arrives (`POST /v1/partners/{id}/claims`).
    #[serde(default)]
    claim: Option<String>,
    /// The device fingerprint the page saw (anti-fraud: shared devices).
    #[serde(default)]
    device: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Signed {
    partner: String,
    /// Whether this request recorded the arrival (false: already recorded today).
    recorded: bool,
    /// The partner's live code with the person's claim: it may seat them.
    live_code_url: Option<String>,
}

async fn public_signup(
    State(state): State<AppState>,
    peer: Peer,
    headers: axum::http::HeaderMap,
    Path((id, code)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Signed>, ApiError> {
    let (_, p) = open_link(&state, peer, &headers, &id, &code).await?;
    let b: PublicSignup = parse_json(&body, "signup")?;
    // An arrival creates a person: only one the channel vouched for.
    let Some(token) = b.claim.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::ClaimRequired(format!(
            "claim: an arrival needs the claim token the channel gets for the person from POST /v1/partners/{}/claims; nothing was recorded",
            p.id
        )));
    };
    let who = claimed_identity(&state, &p.id, token).await?;
    let who = Identity::parse(&who).map_err(|e| ApiError::Internal(format!("claim: {e}")))?;
    let ev = partners::arrival_event(&p, &who, b.device.as_deref(), now())?;
    let appended = state
        .0
        .writer
        .append(vec![ev])
        .await
        .map_err(ApiError::Internal)?;
    let recorded = matches!(appended.first(), Some(siyu_store::Appended::New(_)));
    let live_code_url = p
        .live_code
        .as_deref()
        .map(|live| crate::links::seat_link(&state, live, who.as_str(), now()));
    Ok(Json(Signed {
        partner: p.id,
        recorded,
        live_code_url,
    }))
}
