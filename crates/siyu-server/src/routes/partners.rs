//! HTTP endpoints of the partner program (`siyu_growth::partners`):
//! partner definitions, their signed link codes, arrivals through them,
//! the commission ledger (lines and totals at an instant, as CSV for
//! payouts) and payouts, and turning a customer into a distributor (分销).
//!
//! The ledger is reconciled on read: `GET …/ledger` answers what the log
//! supports at `now` (or `?at=`) without writing; `POST …/payouts`
//! reconciles at `now`, marks the payable lines paid and stores the
//! ledger, so what was paid is remembered and a later refund becomes a
//! negative line. Attribution is first touch.

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
use siyu_growth::partners::{self, LedgerLine, LedgerTotals, Model, Partner, PartnerError};

pub fn routes() -> Vec<Route> {
    vec![
        route!(get, "/v1/partners", read, "Partners (达人 / KOC / MCN / distributors); archived ones with `?archived=true`.", list_partners),
        route!(post, "/v1/partners/from-person", write, "Turn a customer into a distributor (分销): `{\"identity\", \"id\"?, \"name\"?, \"rate_bp\"?}`; 404 for an unknown person, 409 if the id is taken.", partner_from_person, body = FromPerson, statuses = [404, 409]),
        route!(get, "/v1/partners/{id}", read, "One partner's definition.", get_partner),
        route!(put, "/v1/partners/{id}", write, "Save a partner: `{\"name\", \"kind\"?: \"koc\"|\"mcn\"|\"distributor\", \"identity\", \"attribution\"?: {\"window\": \"30d\"}, \"commission\": {\"rate_bp\", \"tiers\"?: [{\"from\", \"rate_bp\"}], \"products\"?: {sku: rate_bp}}, \"hold\"?: \"7d\", \"fees\"?: fen, \"devices\"?: […]}`.", put_partner, body = Partner),
        route!(delete, "/v1/partners/{id}", write, "Archive a partner: no new links or arrivals (410); the ledger stays readable and payable; PUT restores it.", delete_partner),
        route!(get, "/v1/partners/{id}/link", read, "The partner's signed link code (an arrival with another code is refused) and the QR poster's campaign name.", partner_link, statuses = [410]),
        route!(post, "/v1/partners/{id}/arrivals", write, "Record an arrival through the partner's link: `{\"identity\", \"code\", \"device\"?}` (a referral_signup with the partner as `ref`, once per identity and day).", partner_arrival, body = ArrivalBody, statuses = [410]),
        route!(get, "/v1/partners/{id}/ledger", read, "The commission ledger at `now` (or `?at=` epoch seconds): lines per order (held, payable, paid, refused, clawback), totals in fen, and the partner's ROI (revenue against commission and fees, repeat rate).", partner_ledger),
        route!(get, "/v1/partners/{id}/ledger.csv", read, "The ledger as CSV (UTF-8 with BOM; `?at=`): the payout export, one row per line with its payout id.", partner_ledger_csv, answer_media = "text/csv"),
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
}

fn code_of(state: &AppState, p: &Partner) -> String {
    crate::links::sign(
        &state.0.link_secret,
        &partners::link_purpose(&p.id),
        &p.identity,
    )
}

async fn partner_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PartnerLink>, ApiError> {
    let p = with_store(&state, move |store| Ok(partners::load(store, &id)?)).await?;
    refuse_archived(&p)?;
    Ok(Json(PartnerLink {
        code: code_of(&state, &p),
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
    let secret = &state.0.link_secret;
    let expected = crate::links::link_id(secret, &p.identity);
    if crate::links::verify(secret, &partners::link_purpose(&p.id), &b.code) != Some(expected) {
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

/// Partner `id`'s ledger at `at` (first touch), not written.
async fn reconciled(
    state: &AppState,
    id: String,
    at: i64,
) -> Result<partners::Reconciled, ApiError> {
    let s = state.clone();
    blocking(move || {
        let engine = read_engine(&s);
        let mut store = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        Ok(partners::reconcile(
            &engine,
            store.as_mut(),
            &id,
            Model::FirstTouch,
            at,
        )?)
    })
    .await
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

/// Reconciles, pays and stores under one hold of the reader connection,
/// so two payouts in this process never pay one line twice.
async fn partner_payout(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PartnerPayout>, ApiError> {
    let s = state.clone();
    blocking(move || {
        let at = now();
        let engine = read_engine(&s);
        let mut guard = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        let store = guard.as_mut();
        let partners::Reconciled {
            partner: p,
            mut lines,
            ..
        } = partners::reconcile(&engine, store, &id, Model::FirstTouch, at)?;
        drop(engine);
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
    })
    .await
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
            person.map_or(0, |x| x.purchase_count),
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
