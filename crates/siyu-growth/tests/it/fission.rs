//! Fission without HTTP: campaign checks naming the field at fault, the
//! campaign kept in a SQLite store, invite codes, the cap on new
//! anonymous visitors, and the reward reconcile planner — grants while
//! stock lasts, clawbacks, no second grant of a clawed-back tier unless an
//! operator override brings the inviter back (then exactly one), erased
//! inviters left alone, a grant that follows its person when another of
//! its identities becomes canonical, and a pass over a committed plan
//! planning nothing.

use serde_json::json;
use siyu_domain::{parse_json_event, Event};
use siyu_engine::fission::{evaluate, Overrides};
use siyu_engine::Engine;
use siyu_growth::fission::{
    self, Campaign, FissionError, Grant, LedgerRow, LedgerStatus, People, Plan, VisitorCap,
};
use siyu_store::{SqliteStore, Store};
use std::collections::HashMap;

const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

fn campaign(v: serde_json::Value) -> Campaign {
    let mut c: Campaign = serde_json::from_value(v).expect("a campaign");
    c.id = "c1".into();
    c
}

/// Two tiers; the first reward has one unit of stock.
fn two_tiers() -> Campaign {
    campaign(json!({
        "name": "双11 老带新",
        "tiers": [{"invites": 2, "reward": "gift"}, {"invites": 3, "reward": "big"}],
        "rewards": {"gift": {"stock": 1, "cost": 1500, "template": "thanks"}, "big": {"stock": 5, "cost": 5000}},
        "rules": {"hold": "7d", "max_per_device": 2}
    }))
}

fn faults(c: &Campaign) -> Vec<String> {
    c.validate(&|t| t == "thanks").expect_err("invalid")
}

#[test]
fn a_valid_campaign_gives_its_rules() {
    let rules = two_tiers().validate(&|t| t == "thanks").expect("valid");
    assert_eq!((rules.hold, rules.max_per_device), (7 * DAY, Some(2)));
    assert_eq!(
        rules.campaign, None,
        "bound to the engine by fission::rules"
    );
}

#[test]
fn each_fault_names_its_field() {
    let c = campaign(json!({
        "name": " ",
        "starts_at": "2026-11-11T00:00:00+08:00", "ends_at": 1,
        "tiers": [{"invites": 3, "reward": "gift"}, {"invites": 3, "reward": "nope"}],
        "rewards": {"gift": {"stock": 0, "cost": -1, "template": "unknown"}},
        "rules": {"hold": "soon", "burst_max": 3}
    }));
    let f = faults(&c);
    for field in [
        "name:",
        "ends_at: must be after starts_at",
        "tiers[1].invites: tiers overlap",
        "tiers[1].reward: no reward named \"nope\"",
        "rewards.gift.stock:",
        "rewards.gift.cost:",
        "rewards.gift.template: unknown template \"unknown\"",
        "rules.hold:",
        "rules.burst_max: give burst_max and burst_window together",
    ] {
        assert!(f.iter().any(|x| x.starts_with(field)), "{field} in {f:?}");
    }
    let none = campaign(json!({"name": "x", "tiers": [], "rewards": {}, "starts_at": true}));
    let f = faults(&none);
    assert!(
        f.iter().any(|x| x.starts_with("tiers: at least one tier")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|x| x.starts_with("starts_at: use RFC 3339")),
        "{f:?}"
    );
    let unknown = serde_json::from_value::<Campaign>(
        json!({"name": "x", "tiers": [], "rewards": {}, "tiers_typo": 1}),
    );
    assert!(unknown.is_err(), "unknown fields are refused");
}

#[test]
fn a_campaign_is_kept_in_the_store() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let store: &mut dyn Store = &mut store;
    let err = fission::load(store, "c1").expect_err("nothing saved");
    assert!(matches!(err, FissionError::NoCampaign { .. }));
    assert_eq!(
        err.to_string(),
        "no campaign `c1`; GET /v1/campaigns lists them"
    );
    let mut bad = two_tiers();
    bad.tiers.clear();
    let err = fission::save(store, &bad, &|_| true).expect_err("no tiers");
    assert!(err.to_string().starts_with("tiers: "), "{err}");
    let err = fission::save(store, &two_tiers(), &|_| false).expect_err("no template");
    assert!(err.to_string().contains("rewards.gift.template"), "{err}");

    fission::save(store, &two_tiers(), &|_| true).expect("saved");
    let c = fission::load(store, "c1").expect("loaded");
    assert_eq!(
        (c.tiers, c.rewards),
        (two_tiers().tiers, two_tiers().rewards)
    );
    assert_eq!(fission::list(store).expect("list").len(), 1);
    let rules = fission::rules(&c_loaded(store), &Engine::new()).expect("rules");
    assert_eq!(rules.campaign, Some(u32::MAX), "no click or signup yet");
}

fn c_loaded(store: &mut dyn Store) -> Campaign {
    fission::load(store, "c1").expect("loaded")
}

#[test]
fn invite_codes_sign_one_campaign_and_inviter() {
    let sign = |purpose: &str, identity: &str| format!("{purpose}|{identity}");
    assert_eq!(fission::invite_purpose("c1"), "invite/c1");
    assert_eq!(
        fission::invite_code(&sign, "c1", "wecom:boss"),
        "invite/c1|wecom:boss"
    );
    assert_ne!(
        fission::invite_code(&sign, "c1", "wecom:boss"),
        fission::invite_code(&sign, "c2", "wecom:boss"),
        "a code is valid for one campaign"
    );
    assert_eq!(fission::claim_scope("c1"), "campaign/c1");
}

#[test]
fn a_campaign_is_open_between_its_dates() {
    let mut c = two_tiers();
    c.starts_at = Some(json!(T0));
    c.ends_at = Some(json!(T0 + DAY));
    let rules = c.validate(&|_| true).expect("valid");
    assert!(matches!(
        fission::campaign_open(&c, &rules, T0 - 1),
        Err(FissionError::NotStarted { .. })
    ));
    assert!(fission::campaign_open(&c, &rules, T0).is_ok());
    let ended = fission::campaign_open(&c, &rules, T0 + DAY).expect_err("ended");
    assert_eq!(ended.to_string(), "campaign `c1` has ended");
}

#[test]
fn new_anonymous_visitors_are_capped_per_campaign_and_day() {
    let mut cap = VisitorCap::new(3);
    assert_eq!((0..5).filter(|_| cap.take("c1", 100)).count(), 3);
    assert!(cap.take("c2", 100), "another campaign has its own cap");
    assert!(cap.take("c1", 101), "a new day starts afresh");
}

/// The per-day click key and new-visitor cap reset at local midnight in
/// the workspace time zone (Shanghai here), not at UTC midnight.
#[test]
fn a_visitors_day_is_the_local_day() {
    let ts = |s| siyu_domain::time::parse_rfc3339(s).unwrap();
    let shanghai = siyu_automation::schedule::Tz::shanghai();
    let id = |at| {
        fission::click_event("c1", "code", "visitor:abc", at, &shanghai)
            .unwrap()
            .id
            .unwrap()
    };
    // 23:00 and 01:00 the next day in Shanghai, the same UTC day: two days.
    assert_ne!(
        id(ts("2026-11-01T15:00:00Z")),
        id(ts("2026-11-01T17:00:00Z"))
    );
    // 01:00 and 09:00 the same Shanghai day, across UTC midnight: one day.
    assert_eq!(
        id(ts("2026-11-01T17:00:00Z")),
        id(ts("2026-11-02T01:00:00Z"))
    );
    // The new-visitor cap counts the same local days.
    let day = |at| siyu_automation::schedule::local_day(at, &shanghai);
    let mut cap = VisitorCap::new(1);
    assert!(cap.take("c1", day(ts("2026-11-01T17:00:00Z"))));
    assert!(
        !cap.take("c1", day(ts("2026-11-02T01:00:00Z"))),
        "the same Shanghai day"
    );
    assert!(
        cap.take("c1", day(ts("2026-11-02T16:00:00Z"))),
        "Shanghai midnight passed"
    );
}

#[test]
fn clicks_and_signups_carry_keys_that_dedupe() {
    let shanghai = siyu_automation::schedule::Tz::shanghai();
    // T0 is 22:13 in Shanghai, the same day as in UTC.
    let click =
        fission::click_event("c1", "code", "visitor:abc", T0, &shanghai).expect("an identity");
    assert_eq!(
        click.id.as_deref(),
        Some(format!("click/c1/visitor:abc/{}", T0 / DAY).as_str())
    );
    assert!(fission::click_event("c1", "code", "not an identity", T0, &shanghai).is_none());
    let long = "d".repeat(fission::MAX_DEVICE_LEN + 1);
    let s = fission::signup_event("c1", "wecom:n1", "wecom:boss", "10.0.0.1", Some(&long), T0)
        .expect("signup");
    assert_eq!(s.id.as_deref(), Some("signup/c1/wecom:n1"));
    let p = s.properties.expect("properties");
    assert!(p.get("device").is_none(), "an over-long device is dropped");
    assert_eq!(p["ip"], "10.0.0.1");
}

// ---------- the reconcile planner ----------

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// What the store holds after the server committed `plan` over `rows`.
fn commit(rows: Vec<LedgerRow>, plan: &Plan) -> Vec<LedgerRow> {
    let mut by_key: HashMap<(String, usize), LedgerRow> = rows
        .into_iter()
        .map(|r| ((r.inviter.clone(), r.tier), r))
        .collect();
    for r in &plan.changed {
        by_key.insert((r.inviter.clone(), r.tier), r.clone());
    }
    by_key.into_values().collect()
}

fn status(rows: &[LedgerRow], inviter: &str, tier: usize) -> Option<LedgerStatus> {
    rows.iter()
        .find(|r| r.inviter == inviter && r.tier == tier)
        .map(|r| r.status)
}

fn never_settled(_: &str) -> bool {
    false
}

/// Rows stand for themselves, nobody is settled or vouched for.
const PEOPLE: People<'static> = People {
    person: &|_| None,
    settled: &never_settled,
    vouched: &|_| false,
};

#[test]
fn grants_while_stock_lasts_then_claws_back_and_regrants_freed_stock() {
    let c = two_tiers();
    let n = counts(&[("wecom:a", 2), ("wecom:b", 2)]);
    let p = fission::plan(&c, vec![], &n, T0, &PEOPLE);
    // In inviter order: a takes the only gift, b finds none left.
    let rows = commit(vec![], &p);
    assert_eq!(status(&rows, "wecom:a", 0), Some(LedgerStatus::Granted));
    assert_eq!(status(&rows, "wecom:b", 0), Some(LedgerStatus::OutOfStock));
    assert_eq!((p.summary("c1").changes, p.summary("c1").granted), (2, 1));
    let names: Vec<_> = p.events.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["reward_granted"]);
    assert_eq!(
        p.events[0].id.as_deref(),
        Some(format!("reward_granted/c1/wecom:a/0/{T0}").as_str())
    );
    assert_eq!(p.messages.len(), 1, "the gift has a template");
    assert_eq!(
        (p.messages[0].id.as_str(), p.messages[0].inviter.as_str()),
        ("fission/c1/wecom:a/0", "wecom:a")
    );

    // Nothing changed: nothing planned.
    let again = fission::plan(&c, rows.clone(), &n, T0 + 60, &PEOPLE);
    assert!(again.changed.is_empty() && again.events.is_empty() && again.messages.is_empty());

    // a's invitees fall away: a's gift is clawed back and b gets it.
    let n = counts(&[("wecom:a", 1), ("wecom:b", 2)]);
    let p = fission::plan(&c, rows.clone(), &n, T0 + DAY, &PEOPLE);
    let names: Vec<_> = p.events.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["reward_clawed_back", "reward_granted"]);
    let s = p.summary("c1");
    assert_eq!((s.changes, s.granted, s.clawed_back), (2, 1, 1));
    let rows = commit(rows, &p);
    assert_eq!(status(&rows, "wecom:a", 0), Some(LedgerStatus::ClawedBack));
    assert_eq!(status(&rows, "wecom:b", 0), Some(LedgerStatus::Granted));
    let a = rows.iter().find(|r| r.inviter == "wecom:a").unwrap();
    assert_eq!((a.supported_by, a.at), (1, T0 + DAY));

    // a reaches the tier again: a clawed-back reward is not granted again;
    // b reaches the second tier.
    let n = counts(&[("wecom:a", 2), ("wecom:b", 3)]);
    let p = fission::plan(&c, rows.clone(), &n, T0 + 2 * DAY, &PEOPLE);
    assert_eq!(p.changed.len(), 1, "{:?}", p.changed);
    assert_eq!(
        (p.changed[0].inviter.as_str(), p.changed[0].tier),
        ("wecom:b", 1)
    );
    let rows = commit(rows, &p);
    let again = fission::plan(&c, rows.clone(), &n, T0 + 3 * DAY, &PEOPLE);
    assert!(again.changed.is_empty() && again.events.is_empty());
    let left = fission::stock_left(&c, &rows);
    assert_eq!((left["gift"], left["big"]), (0, 4));
}

#[test]
fn an_erased_inviters_rows_are_settled() {
    let c = two_tiers();
    let erased = format!("erased:{}", "0".repeat(32));
    let rows = vec![LedgerRow {
        inviter: erased.clone(),
        tier: 0,
        reward: "gift".into(),
        status: LedgerStatus::Granted,
        at: T0,
        supported_by: 2,
    }];
    let p = fission::plan(
        &c,
        rows.clone(),
        &counts(&[]),
        T0 + DAY,
        &People {
            settled: &|i| i == erased,
            ..PEOPLE
        },
    );
    assert!(p.changed.is_empty(), "no clawback event for a pseudonym");
    let p = fission::plan(&c, rows, &counts(&[]), T0 + DAY, &PEOPLE);
    assert_eq!(p.summary("c1").clawed_back, 1);
}

fn ev(v: serde_json::Value) -> Event {
    parse_json_event(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// The boss's two invitees signed up at T0 (hold 7 days); the engine's
/// clock at `now`.
fn engine(now: i64) -> Engine {
    let mut events = vec![ev(
        json!({"ts": T0 - DAY, "identity": "wecom:boss", "type": "add_friend"}),
    )];
    for i in 0..2 {
        events.push(ev(json!({"ts": T0 + i, "identity": format!("wecom:n{i}"), "type": "referral_signup", "ref": "wecom:boss",
            "properties": {"campaign": "c1", "device": format!("d{i}"), "ip": format!("10.0.0.{i}")}})));
    }
    let mut e = Engine::new();
    for (i, x) in events.iter().enumerate() {
        e.apply(i as u64 + 1, x);
    }
    e.start_live(now);
    e
}

#[test]
fn instant_grants_count_pending_invitees_after_hold_only_valid_ones() {
    let c = two_tiers();
    let during = engine(T0 + DAY);
    let rules = fission::rules(&c, &during).expect("rules");
    let inv = evaluate(&during, &rules, &Overrides::new());
    assert_eq!(
        fission::tally(&during, &inv, Grant::Instant)["wecom:boss"],
        2
    );
    assert_eq!(
        fission::tally(&during, &inv, Grant::AfterHold)["wecom:boss"],
        0
    );
    let after = engine(T0 + 8 * DAY);
    let inv = evaluate(&after, &rules, &Overrides::new());
    assert_eq!(
        fission::tally(&after, &inv, Grant::AfterHold)["wecom:boss"],
        2
    );
    let board = fission::leaderboard(&after, &inv, 10);
    assert_eq!(
        (board[0].inviter.as_str(), board[0].valid),
        ("wecom:boss", 2)
    );
}

#[test]
fn a_committed_plan_reads_back_and_plans_nothing_more() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let store: &mut dyn Store = &mut store;
    let c = two_tiers();
    fission::save(store, &c, &|_| true).expect("saved");
    let e = engine(T0 + DAY);
    let rules = fission::rules(&c, &e).expect("rules");
    let o = fission::overrides(store, &e, "c1").expect("overrides");
    let inv = evaluate(&e, &rules, &o);
    let n = fission::tally(&e, &inv, c.grant);

    let p = fission::plan(
        &c,
        fission::ledger(store, "c1").unwrap(),
        &n,
        T0 + DAY,
        &PEOPLE,
    );
    assert_eq!(p.summary("c1").granted, 1);
    store.put_settings(&p.settings("c1").unwrap()).unwrap();
    let rows = fission::ledger(store, "c1").unwrap();
    assert_eq!(rows, p.changed);
    let again = fission::plan(&c, rows, &n, T0 + DAY + 30, &PEOPLE);
    assert!(again.changed.is_empty() && again.events.is_empty() && again.messages.is_empty());

    // An operator decision is read back by person and shown per invitee.
    let n1 = e.canonical_id(e.person_of("wecom:n1").unwrap()).to_string();
    fission::set_override(store, "c1", &n1, Some(false), T0 + DAY).unwrap();
    let o = fission::overrides(store, &e, "c1").unwrap();
    assert_eq!(o.len(), 1);
    let inv = evaluate(&e, &rules, &o);
    let stats = fission::stats(&e, &c, &rules, &inv, &fission::ledger(store, "c1").unwrap());
    assert_eq!((stats.rewards_granted, stats.reward_cost), (1, 1500));
    let rows = fission::invitees(&e, &inv, &o, None, Some("wecom:boss"), 10);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter().filter(|r| r.overridden == Some(false)).count(),
        1
    );
}

/// One reconcile pass of campaign `c` over the engine and the ledger in
/// `store`, committed as the server commits it (the ledger rows last).
fn reconcile(store: &mut dyn Store, e: &Engine, c: &Campaign, now: i64) -> Plan {
    let rules = fission::rules(c, e).expect("rules");
    let o = fission::overrides(store, e, &c.id).expect("overrides");
    let inv = evaluate(e, &rules, &o);
    let n = fission::tally(e, &inv, c.grant);
    let vouched = fission::vouched(e, &inv, &o);
    let rows = fission::ledger(store, &c.id).expect("ledger");
    let persons = fission::resolve(e, &rows);
    let people = People {
        person: &|i| persons.get(i).cloned(),
        settled: &never_settled,
        vouched: &|i| vouched.contains(i),
    };
    let p = fission::plan(c, rows, &n, now, &people);
    store.put_settings(&p.settings(&c.id).unwrap()).unwrap();
    p
}

fn apply(e: &mut Engine, offset: u64, v: serde_json::Value) {
    e.apply(offset, &ev(v));
}

#[test]
fn a_grant_follows_its_person_when_another_identity_becomes_canonical() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let store: &mut dyn Store = &mut store;
    let c = two_tiers();
    fission::save(store, &c, &|_| true).expect("saved");
    // The boss (wecom:boss) reaches tier 0 and is granted the gift.
    let mut e = engine(T0 + DAY);
    let p = reconcile(store, &e, &c, T0 + DAY);
    assert_eq!(p.summary("c1").granted, 1);
    assert_eq!(
        e.canonical_id(e.person_of("wecom:boss").unwrap()),
        "wecom:boss"
    );
    // Their Douyin identity is stitched to them and becomes the canonical
    // id ("douyin:…" < "wecom:…").
    apply(
        &mut e,
        10,
        json!({"ts": T0 + DAY + 1, "identity": "douyin:boss", "type": "identify", "ref": "wecom:boss"}),
    );
    let person = e.person_of("wecom:boss").unwrap();
    assert_eq!(e.canonical_id(person), "douyin:boss");
    // Same person, same reward: nothing to claw back, nothing to grant,
    // no second "奖励已到账".
    let p = reconcile(store, &e, &c, T0 + DAY + 30);
    assert!(
        p.changed.is_empty() && p.events.is_empty() && p.messages.is_empty(),
        "{:?} {:?}",
        p.changed,
        p.events
    );
    let rows = fission::ledger(store, "c1").unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(status(&rows, "wecom:boss", 0), Some(LedgerStatus::Granted));
    assert_eq!(fission::stock_left(&c, &rows)["gift"], 0);
    // The invitees fall away: the reward is clawed back once, on the row
    // it was granted under.
    for who in ["wecom:n0", "wecom:n1"] {
        fission::set_override(store, "c1", who, Some(false), T0 + DAY).unwrap();
    }
    let p = reconcile(store, &e, &c, T0 + DAY + 60);
    assert_eq!(p.summary("c1").clawed_back, 1, "{:?}", p.changed);
    assert_eq!(p.summary("c1").changes, 1, "{:?}", p.changed);
    let p = reconcile(store, &e, &c, T0 + DAY + 90);
    assert!(
        p.changed.is_empty() && p.events.is_empty(),
        "{:?}",
        p.changed
    );
}

#[test]
fn an_override_that_brings_the_inviter_back_regrants_once() {
    let mut store = SqliteStore::open_in_memory().expect("store");
    let store: &mut dyn Store = &mut store;
    let c = two_tiers();
    fission::save(store, &c, &|_| true).expect("saved");
    let e = engine(T0 + DAY);
    let p = reconcile(store, &e, &c, T0 + DAY);
    assert_eq!(p.summary("c1").granted, 1);
    // The operator rejects an invitee: the boss drops below tier 0.
    fission::set_override(store, "c1", "wecom:n0", Some(false), T0 + DAY).unwrap();
    let p = reconcile(store, &e, &c, T0 + DAY + 30);
    assert_eq!(p.summary("c1").clawed_back, 1, "{:?}", p.changed);
    // The operator takes it back: the invitee counts, the tier is granted
    // again, with its event and a message under a new key.
    fission::set_override(store, "c1", "wecom:n0", Some(true), T0 + DAY + 40).unwrap();
    let p = reconcile(store, &e, &c, T0 + DAY + 60);
    let s = p.summary("c1");
    assert_eq!(
        (s.changes, s.granted, s.clawed_back),
        (1, 1, 0),
        "{:?}",
        p.changed
    );
    let names: Vec<_> = p.events.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["reward_granted"]);
    assert_eq!(p.messages.len(), 1);
    assert_ne!(
        p.messages[0].id, "fission/c1/wecom:boss/0",
        "a new send key"
    );
    // Exactly once.
    let p = reconcile(store, &e, &c, T0 + DAY + 90);
    assert!(
        p.changed.is_empty() && p.events.is_empty() && p.messages.is_empty(),
        "{:?}",
        p.changed
    );
    let rows = fission::ledger(store, "c1").unwrap();
    assert_eq!(status(&rows, "wecom:boss", 0), Some(LedgerStatus::Granted));
    assert_eq!(fission::stock_left(&c, &rows)["gift"], 0);
}
