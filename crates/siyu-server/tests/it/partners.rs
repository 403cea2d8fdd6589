//! The partner program end to end: a KOC's 20 referred persons arrive
//! through their link, buy, some refund (inside the refund window, after
//! it, after the payout); self-referral and a shared device earn nothing;
//! the ledger before and after the refund window, the payout, the
//! clawback after it, the CSV export; validation and errors.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

fn wall() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn events(t: &TestApp, evs: Vec<Value>) {
    let (s, b) = t.post_events(&Value::Array(evs).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

fn purchase(who: &str, order: &str, ts: i64, amount: i64, product: Option<&str>) -> Value {
    let mut p = json!({"order_id": order});
    if let Some(x) = product {
        p["product"] = x.into();
    }
    json!({"id": format!("buy-{order}"), "ts": ts, "identity": who, "type": "purchase",
           "channel": "douyin", "amount": amount, "properties": p})
}

fn refund(who: &str, order: &str, ts: i64, amount: i64) -> Value {
    json!({"id": format!("refund-{order}-{ts}"), "ts": ts, "identity": who, "type": "refund",
           "channel": "douyin", "amount": amount, "properties": {"order_id": order}})
}

fn fan(i: usize) -> String {
    format!("douyin:fan{i:02}")
}

/// `(totals, lines by order id)` of a ledger answer.
fn summary(l: &Value) -> (Value, Vec<(String, i64, String)>) {
    let lines = l["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                format!("{}#{}", x["order_id"].as_str().unwrap(), x["n"]),
                x["amount"].as_i64().unwrap(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (l["totals"].clone(), lines)
}

#[tokio::test]
async fn a_partners_twenty_referred_persons_through_the_refund_window_and_a_payout() {
    let t = TestApp::spawn().await;
    let now = wall();
    let arrived = now - 20 * DAY;
    // The KOC: 10 %, 12 % from ¥2,000 of attributed net volume, 20 % on
    // the VIP box; orders within 30 days of the arrival; 7-day refund
    // window; ¥100 of fixed fees.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/koc",
            json!({"name": "小红", "kind": "koc", "identity": "wecom:koc",
                   "attribution": {"window": "30d"}, "hold": "7d", "devices": ["koc-phone"], "fees": 10_000,
                   "commission": {"rate_bp": 1000, "tiers": [{"from": 200_000, "rate_bp": 1200}],
                                  "products": {"vip_box": 2000}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // fan19 is the KOC themself (stitched to wecom:koc); fan18 signs up on
    // fan01's phone, fan20 on the KOC's own phone.
    let mut evs = vec![
        json!({"id": "koc-alt", "ts": arrived - DAY, "identity": fan(19),
        "type": "identify", "channel": "douyin", "ref": "wecom:koc"}),
    ];
    for i in 1..=20 {
        let device = match i {
            18 => "dev-01".to_string(),
            20 => "koc-phone".to_string(),
            _ => format!("dev-{i:02}"),
        };
        // fan17 arrived earlier: its second order falls outside the window.
        let at = if i == 17 {
            now - 38 * DAY
        } else {
            arrived + i as i64
        };
        evs.push(
            json!({"id": format!("arrive-{i}"), "ts": at, "identity": fan(i),
            "type": "referral_signup", "channel": "douyin", "ref": "wecom:koc",
            "properties": {"campaign": "partner/koc", "device": device}}),
        );
    }
    // Each buys one order of ¥200 a day after arriving, an hour apart.
    let bought = |i: usize| now - 19 * DAY + i as i64 * HOUR;
    for i in 1..=20 {
        let product = matches!(i, 5 | 6).then_some("vip_box");
        evs.push(purchase(
            &fan(i),
            &format!("o{i}"),
            bought(i),
            20_000,
            product,
        ));
    }
    // Outside fan17's 30-day window: earns nothing.
    evs.push(purchase(&fan(17), "o17b", now - 2 * DAY, 50_000, None));
    // Refunds inside the refund window (fan03 in part, fan04 in full) and
    // after it, before any payout (fan07).
    evs.push(refund(&fan(3), "o3", now - 17 * DAY, 5_000));
    evs.push(refund(&fan(4), "o4", now - 14 * DAY, 20_000));
    evs.push(refund(&fan(7), "o7", now - 5 * DAY, 20_000));
    events(&t, evs).await;

    // Inside the refund window (15 days ago): everything is held.
    let (s, before) = t
        .get(&format!("/v1/partners/koc/ledger?at={}", now - 15 * DAY))
        .await;
    assert_eq!(s, StatusCode::OK, "{before}");
    let (tb, lb) = summary(&before);
    eprintln!("ledger inside the refund window (at now-15d): totals {tb}");
    eprintln!("  lines {lb:?}");
    // After the window: payable, fan07's refund taken off before payment.
    let (_, after) = t.get("/v1/partners/koc/ledger").await;
    let (ta, la) = summary(&after);
    eprintln!("ledger after the refund window (now), before payout: totals {ta}");
    eprintln!("  lines {la:?}");

    let (s, paid) = t.send("POST", "/v1/partners/koc/payouts", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{paid}");
    eprintln!(
        "payout {}: paid {} fen over {} lines",
        paid["payout"], paid["paid"], paid["lines"]
    );
    // Nothing left to pay.
    let (s, b) = t.send("POST", "/v1/partners/koc/payouts", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // After the payout: fan08 refunds in full, fan09 half; fan01 buys again.
    let later = wall();
    events(
        &t,
        vec![
            refund(&fan(8), "o8", later, 20_000),
            refund(&fan(9), "o9", later, 10_000),
            purchase(&fan(1), "o1b", later, 30_000, None),
        ],
    )
    .await;
    let (_, end) = t.get("/v1/partners/koc/ledger").await;
    let (te, le) = summary(&end);
    eprintln!("ledger after refunds that followed the payout: totals {te}");
    eprintln!("  lines {le:?}");
    // The clawbacks are deducted from the next payout: nothing positive to pay yet.
    let (s, b) = t.send("POST", "/v1/partners/koc/payouts", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // The numbers.
    assert_eq!(
        tb,
        json!({"held": 39_900, "payable": 0, "paid": 0, "clawed_back": 500,
               "refused_orders": 3, "refused_would_earn": 7_200, "orders": 20, "persons": 20}),
        "before"
    );
    assert_eq!(
        ta,
        json!({"held": 0, "payable": 35_100, "paid": 0, "clawed_back": 4_500,
               "refused_orders": 3, "refused_would_earn": 7_200, "orders": 20, "persons": 20}),
        "after the window"
    );
    assert_eq!(
        (paid["paid"].as_i64(), paid["lines"].as_u64()),
        (Some(35_100), Some(17))
    );
    assert_eq!(
        te,
        json!({"held": 3_600, "payable": -3_400, "paid": 35_100, "clawed_back": 7_900,
               "refused_orders": 3, "refused_would_earn": 7_200, "orders": 21, "persons": 20}),
        "after the later refunds"
    );
    let line = |l: &[(String, i64, String)], k: &str| {
        l.iter()
            .find(|x| x.0 == k)
            .map(|x| (x.1, x.2.clone()))
            .unwrap_or_else(|| panic!("no line {k} in {l:?}"))
    };
    assert_eq!(line(&lb, "o4#0"), (2_000, "held".into()));
    assert_eq!(line(&lb, "o12#0"), (2_400, "held".into()), "the 12 % tier");
    assert_eq!(
        line(&la, "o4#0"),
        (0, "payable".into()),
        "refunded in the window"
    );
    assert_eq!(
        line(&la, "o7#0"),
        (0, "payable".into()),
        "refunded before payment"
    );
    assert_eq!(
        line(&la, "o5#0"),
        (4_000, "payable".into()),
        "the VIP box's 20 %"
    );
    assert_eq!(
        line(&la, "o13#0"),
        (2_000, "payable".into()),
        "below the tier again"
    );
    assert_eq!(
        line(&le, "o8#1"),
        (-2_000, "payable".into()),
        "clawback after payout"
    );
    assert_eq!(line(&le, "o9#1"), (-1_000, "payable".into()));
    assert_eq!(
        line(&le, "o14#1"),
        (-400, "payable".into()),
        "fell below the tier"
    );
    assert_eq!(line(&le, "o1b#0"), (3_600, "held".into()));
    assert!(le.iter().all(|x| x.0 != "o17b#0"), "outside the window");
    let refused: Vec<(String, String)> = end["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "refused")
        .map(|x| {
            (
                x["person"].as_str().unwrap().to_string(),
                x["flag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    eprintln!("refused: {refused:?}");
    assert_eq!(
        refused,
        vec![
            (fan(18), "shared_device".to_string()),
            (fan(19), "self_referral".to_string()),
            (fan(20), "shared_device".to_string()),
        ]
    );

    // ROI: the credited customers' net revenue against commission + fees.
    let roi = &end["roi"];
    eprintln!("roi {roi}");
    assert_eq!(
        (
            &roi["revenue"],
            &roi["commission"],
            &roi["fees"],
            &roi["customers"],
            &roi["repeat_customers"]
        ),
        (
            &json!(295_000),
            &json!(35_300),
            &json!(10_000),
            &json!(17),
            &json!(1)
        ),
        "{roi}"
    );
    assert!(
        (roi["roi"].as_f64().unwrap() - 295_000.0 / 45_300.0).abs() < 1e-9,
        "{roi}"
    );

    // Beside channel ROI in analytics: the same numbers to date, and for
    // the persons who arrived in a range (the fees, undated, left out).
    let (s, a) = t.get("/v1/analytics/roi").await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let row = &a["partners"][0];
    assert_eq!(
        (
            &row["partner"],
            &row["name"],
            &row["revenue"],
            &row["commission"],
            &row["fees"],
            &row["persons"]
        ),
        (
            &json!("koc"),
            &json!("小红"),
            &json!(295_000),
            &json!(35_300),
            &json!(10_000),
            &json!(20)
        ),
        "{a}"
    );
    assert_eq!(row["roi"], roi["roi"]);
    let day = |ts: i64| siyu_domain::time::format_rfc3339(ts)[..10].to_string();
    // fan17 arrived 38 days ago, the rest 20 days ago: a range of the
    // latter days leaves fan17 (its one credited order, ¥200) out.
    let (s, ranged) = t
        .get(&format!(
            "/v1/analytics/roi?from={}&to={}",
            day(arrived - DAY),
            day(arrived + DAY)
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{ranged}");
    let r = &ranged["partners"][0];
    assert_eq!(
        (&r["persons"], &r["revenue"], &r["fees"]),
        (&json!(19), &json!(275_000), &json!(0)),
        "{ranged}"
    );

    // The payout export.
    let (s, csv) = t.get("/v1/partners/koc/ledger.csv").await;
    assert_eq!(s, StatusCode::OK);
    let csv = csv.as_str().unwrap();
    assert!(
        csv.starts_with("\u{feff}partner,order_id,line,person"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "koc,o8,1,{},,clawback,payable,0,1000,-2000",
            fan(8)
        )),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + le.len(), "{csv}");
}

#[tokio::test]
async fn links_arrivals_distributors_and_errors() {
    let t = TestApp::spawn().await;
    // Validation names each field.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/bad",
            json!({"name": " ", "identity": "nocolon",
                   "commission": {"rate_bp": 20_000, "tiers": [{"from": 0, "rate_bp": 100}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["code"], "invalid_definition", "{b}");
    let msg = b["message"].as_str().unwrap();
    for field in [
        "name:",
        "identity:",
        "commission.rate_bp:",
        "commission.tiers[0].from:",
    ] {
        assert!(msg.contains(field), "{field} in {msg}");
    }
    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/x",
            json!({"name": "x", "identity": "wecom:x", "commission": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _) = t.get("/v1/partners/nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.get("/v1/partners/nobody/ledger").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/mcn1",
            json!({"name": "MCN 一号", "kind": "mcn", "identity": "wecom:mcn1",
                   "commission": {"rate_bp": 800}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t.get("/v1/partners/mcn1/ledger?at=soon").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = t.get("/v1/partners/mcn1/ledger?at=5").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // The signed code: another partner's or a forged one is refused.
    let (s, link) = t.get("/v1/partners/mcn1/link").await;
    assert_eq!(s, StatusCode::OK, "{link}");
    let code = link["code"].as_str().unwrap().to_string();
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/mcn1/arrivals",
            json!({"identity": "douyin:w1", "code": format!("{code}x")}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("code:"), "{b}");
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/mcn1/arrivals",
            json!({"identity": "douyin:w1", "code": code, "device": "d1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, p) = t.get("/v1/persons/douyin:w1").await;
    assert!(p.is_object(), "{p}");
    // It buys now: held, 8 %.
    events(
        &t,
        vec![purchase("douyin:w1", "w1-1", wall(), 12_345, None)],
    )
    .await;
    let (_, l) = t.get("/v1/partners/mcn1/ledger").await;
    assert_eq!(l["totals"]["held"], 987, "{l}");

    // A loyal customer becomes a distributor.
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/from-person",
            json!({"identity": "douyin:nobody"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, d) = t
        .send(
            "POST",
            "/v1/partners/from-person",
            json!({"identity": "douyin:w1", "id": "fen1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["partner"]["kind"], "distributor", "{d}");
    assert_eq!(
        (d["purchases"].as_u64(), d["net_spend"].as_i64()),
        (Some(1), Some(12_345)),
        "{d}"
    );
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/from-person",
            json!({"identity": "douyin:w1", "id": "fen1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (_, list) = t.get("/v1/partners").await;
    assert_eq!(list["partners"].as_array().unwrap().len(), 2, "{list}");

    // Archived: listed only on request, no links or arrivals.
    let (s, _) = t.send("DELETE", "/v1/partners/mcn1", "").await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = t.get("/v1/partners").await;
    assert_eq!(list["partners"].as_array().unwrap().len(), 1, "{list}");
    let (s, _) = t.get("/v1/partners/mcn1/link").await;
    assert_eq!(s, StatusCode::GONE);
    let (s, l) = t.get("/v1/partners/mcn1/ledger").await;
    assert_eq!(
        (s, l["totals"]["held"].as_i64()),
        (StatusCode::OK, Some(987))
    );
}

/// A partner's credited revenue and ledger lines now.
async fn credited(t: &TestApp, id: &str) -> (i64, usize) {
    let (_, l) = t.get(&format!("/v1/partners/{id}/ledger")).await;
    (
        l["roi"]["revenue"].as_i64().unwrap(),
        l["lines"].as_array().unwrap().len(),
    )
}

/// A public call (no key), with an `Accept` header.
async fn public(
    t: &TestApp,
    method: &str,
    uri: &str,
    accept: &str,
    body: &str,
) -> (StatusCode, String, String) {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = siyu_server::app(t.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_public_link_brings_a_person_and_the_attribution_model_recredits_the_order() {
    let t = TestApp::spawn().await;
    // A live code that does not exist is refused, naming the field.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/pa",
            json!({"name": "x", "identity": "wecom:pa", "live_code": "lc1", "commission": {"rate_bp": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("live_code: no live code `lc1`"),
        "{b}"
    );
    let (s, b) = t
        .send("PUT", "/v1/operators/alice", json!({"name": "Alice"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .send(
            "PUT",
            "/v1/livecodes/lc1",
            json!({"targets": [{"operator": "alice"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (id, name) in [("pa", "达人甲"), ("pb", "达人乙")] {
        let (s, b) = t
            .send(
                "PUT",
                &format!("/v1/partners/{id}"),
                json!({"name": name, "identity": format!("wecom:{id}"), "live_code": "lc1",
                       "commission": {"rate_bp": 1000}}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // An unknown attribution model is refused.
    let (s, b) = t
        .send("PUT", "/v1/partners/settings", json!({"model": "nearest"}))
        .await;
    assert!(s.is_client_error(), "{b}");
    let (s, link) = t.get("/v1/partners/pa/link").await;
    assert_eq!(s, StatusCode::OK, "{link}");
    let code = link["code"].as_str().unwrap().to_string();
    let path = format!("/p/pa/{code}");
    assert!(link["link"].as_str().unwrap().ends_with(&path), "{link}");
    assert_eq!(
        link["qr"],
        format!("{}/qr.png", link["link"].as_str().unwrap())
    );

    // The landing, with no key: JSON for a client, a page for a browser.
    let (s, _, body) = public(&t, "GET", &path, "application/json", "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let l: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&l["name"], &l["counted"], &l["live_code"]),
        (&json!("达人甲"), &json!(true), &json!("lc1"))
    );
    let (s, ctype, page) = public(&t, "GET", &path, "text/html", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(
        page.contains("达人甲") && page.contains("/l/lc1/qr.png"),
        "{page}"
    );
    // The visit is a touch on a visitor identity under the partner's campaign.
    let (_, visits) = t.get("/v1/persons?q=visitor:").await;
    assert!(visits.to_string().contains("visitor:"), "{visits}");
    let (s, ctype, png) = public(&t, "GET", &format!("{path}/qr.png"), "*/*", "").await;
    assert_eq!((s, ctype.as_str()), (StatusCode::OK, "image/png"));
    assert!(png.starts_with("\u{FFFD}PNG"), "a PNG signature");
    // Another partner's code, an unknown partner, a made-up code: 404.
    let (_, lb) = t.get("/v1/partners/pb/link").await;
    let code_b = lb["code"].as_str().unwrap().to_string();
    for bad in [
        format!("/p/pa/{code_b}"),
        format!("/p/nobody/{code}"),
        "/p/pa/deadbeef".to_string(),
    ] {
        let (s, _, body) = public(&t, "GET", &bad, "application/json", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    // The poster: a PNG with the partner's name over the link's QR.
    let (s, poster) = t.get("/v1/partners/pa/poster").await;
    assert_eq!(s, StatusCode::OK, "{poster}");
    assert!(
        poster.as_str().unwrap().starts_with("\u{FFFD}PNG"),
        "a PNG signature"
    );

    // A signup needs the channel's claim; with it the arrival is recorded once.
    let signup = format!("{path}/signup");
    let (s, _, body) = public(&t, "POST", &signup, "application/json", "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("claim"), "{body}");
    let (s, c) = t
        .send(
            "POST",
            "/v1/partners/pa/claims",
            json!({"identity": "douyin:buyer"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let claim = c["claim"].as_str().unwrap();
    // A claim for partner pa does not open partner pb's signup.
    let (s, _, body) = public(
        &t,
        "POST",
        &format!("/p/pb/{code_b}/signup"),
        "application/json",
        &json!({"claim": claim}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let body = json!({"claim": claim, "device": "phone-1"}).to_string();
    let (s, _, first) = public(&t, "POST", &signup, "application/json", &body).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["recorded"], true, "{first}");
    assert!(
        first["live_code_url"]
            .as_str()
            .unwrap()
            .contains("/l/lc1?claim="),
        "{first}"
    );
    let (_, _, again) = public(&t, "POST", &signup, "application/json", &body).await;
    assert_eq!(
        serde_json::from_str::<Value>(&again).unwrap()["recorded"],
        false,
        "{again}"
    );

    // Arrivals are timed to the second: pb's comes a second after pa's,
    // else first and last touch were decided by the tie-break of two
    // arrivals in one second (their ids' hash, which names the day: this
    // test failed on some days).
    let signed_up = wall();
    while wall() <= signed_up {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Then through pb's link (the API a bridge calls), then an order.
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/pb/arrivals",
            json!({"identity": "douyin:buyer", "code": code_b}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    events(
        &t,
        vec![purchase("douyin:buyer", "ob1", wall() + 1, 30_000, None)],
    )
    .await;
    // The ledger counts orders up to now: let the order's second pass.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    // A partner id that is a route name is refused, naming the field.
    let (s, b) = t
        .send(
            "POST",
            "/v1/partners/from-person",
            json!({"identity": "douyin:buyer", "id": "settings"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("id: `settings`"),
        "{b}"
    );
    // First touch (the default): pa.
    let (_, program) = t.get("/v1/partners/settings").await;
    assert_eq!(program, json!({"model": "first_touch"}));
    assert_eq!(credited(&t, "pa").await, (30_000, 1));
    assert_eq!(credited(&t, "pb").await, (0, 0));
    // Last touch: pb; the ROI beside channel ROI follows.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/partners/settings",
            json!({"model": "last_touch"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(credited(&t, "pa").await, (0, 0));
    assert_eq!(credited(&t, "pb").await, (30_000, 1));
    let (_, a) = t.get("/v1/analytics/roi").await;
    let revenue: Vec<(&str, i64)> = a["partners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partner"].as_str().unwrap(),
                r["revenue"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(revenue, [("pa", 0), ("pb", 30_000)], "{a}");

    // Archived: the landing, QR, poster and signup are gone (410).
    let (s, _) = t.send("DELETE", "/v1/partners/pa", "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) = public(&t, "GET", &path, "application/json", "").await;
    assert_eq!(s, StatusCode::GONE, "{body}");
    let (s, _, page) = public(&t, "GET", &path, "text/html", "").await;
    assert_eq!(s, StatusCode::GONE);
    assert!(page.contains("二维码已失效"), "{page}");
    let (s, _) = t.get("/v1/partners/pa/poster").await;
    assert_eq!(s, StatusCode::GONE);
}

#[tokio::test]
async fn payouts_on_two_nodes_pay_each_line_once() {
    let Some(_) = crate::pg_url() else {
        eprintln!("SKIPPED: SIYU_TEST_DATABASE_URL is not set");
        return;
    };
    let a = TestApp::spawn_on(crate::Backend::Postgres, 1 << 20).await;
    let b = a.peer().await;
    let (s, body) = a
        .send(
            "PUT",
            "/v1/partners/k",
            json!({"name": "k", "identity": "wecom:k", "commission": {"rate_bp": 1000}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let now = wall();
    let mut evs = Vec::new();
    for i in 0..30 {
        evs.push(
            json!({"id": format!("arr-{i}"), "ts": now - 20 * DAY, "identity": fan(i),
            "type": "referral_signup", "channel": "douyin", "ref": "wecom:k",
            "properties": {"campaign": "partner/k"}}),
        );
        evs.push(purchase(
            &fan(i),
            &format!("p{i}"),
            now - 19 * DAY,
            10_000,
            None,
        ));
    }
    events(&a, evs).await;
    // Both nodes see every order as payable: ¥10 × 30.
    for node in [&a, &b] {
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = node.get("/v1/partners/k/ledger").await.1;
            if seen["totals"]["payable"] == 30_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen["totals"]["payable"], 30_000, "{seen}");
    }
    // Both pay at once: each line is paid once, by one of them.
    let (ra, rb) = tokio::join!(
        a.send("POST", "/v1/partners/k/payouts", json!({})),
        b.send("POST", "/v1/partners/k/payouts", json!({}))
    );
    let answers = [ra, rb];
    let paid: i64 = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, v)| v["paid"].as_i64().unwrap())
        .sum();
    assert_eq!(paid, 30_000, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CONFLICT)
            .count(),
        1,
        "{answers:?}"
    );
    for node in [&a, &b] {
        let (_, l) = node.get("/v1/partners/k/ledger").await;
        assert_eq!(
            (&l["totals"]["paid"], &l["totals"]["payable"]),
            (&json!(30_000), &json!(0)),
            "{l}"
        );
    }
}
