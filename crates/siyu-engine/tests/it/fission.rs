//! Fission campaigns: the general evaluation agrees with WORKLOAD.md's Q5
//! (`analytics::valid_invitees`) on random histories, and the hold and
//! anti-fraud rules decide as documented.

use proptest::prelude::*;
use serde_json::json;
use siyu_domain::{parse_json_event, Event};
use siyu_engine::fission::{self, Burst, Reason, Rules, Verdict};
use siyu_engine::{analytics, Engine};
use std::collections::HashMap;

const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

fn ev(v: serde_json::Value) -> Event {
    parse_json_event(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn engine(events: &[Event], now: i64) -> Engine {
    let mut e = Engine::new();
    for (i, x) in events.iter().enumerate() {
        e.apply(i as u64 + 1, x);
    }
    e.start_live(now);
    e
}

fn history() -> impl Strategy<Value = Vec<(u8, u8, u8, i64)>> {
    prop::collection::vec((0u8..5, 0u8..12, 0u8..12, 0i64..30 * DAY), 1..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn agrees_with_workload_q5(h in history()) {
        let mut events: Vec<Event> = h
            .iter()
            .map(|&(kind, a, b, dt)| {
                let (a, b) = (format!("douyin:u{a}"), format!("wecom:w{b}"));
                let ts = T0 + dt;
                match kind {
                    0 => ev(json!({"ts": ts, "identity": a, "type": "referral_signup", "ref": format!("douyin:u{}", b.len() % 12)})),
                    1 => ev(json!({"ts": ts, "identity": a, "type": "referral_signup", "ref": b})),
                    2 => ev(json!({"ts": ts, "identity": a, "type": "purchase", "amount": 100})),
                    3 => ev(json!({"ts": ts, "identity": a, "type": "identify", "ref": b})),
                    _ => ev(json!({"ts": ts, "identity": b, "type": "touch"})),
                }
            })
            .collect();
        events.sort_by_key(|e| e.ts);
        let e = engine(&events, T0 + 60 * DAY);
        let general = fission::per_inviter(&fission::evaluate(&e, &Rules::workload_q5(), &HashMap::new()));
        let mut general: Vec<(u32, u64)> = general.into_iter().filter(|(_, (v, _))| *v > 0).map(|(k, (v, _))| (k, v)).collect();
        let mut q5 = analytics::valid_invitees(&e, 14 * DAY);
        general.sort();
        q5.sort();
        prop_assert_eq!(general, q5);
    }
}

fn signup(i: usize, inviter: &str, ts: i64, device: &str) -> Event {
    ev(
        json!({"ts": ts, "identity": format!("wecom:n{i}"), "type": "referral_signup", "ref": inviter,
              "properties": {"campaign": "double11", "device": device, "ip": format!("10.0.0.{i}")}}),
    )
}

#[test]
fn hold_period_catches_take_the_gift_and_leave() {
    let mut events = vec![ev(
        json!({"ts": T0 - DAY, "identity": "wecom:boss", "type": "add_friend"}),
    )];
    for i in 0..4 {
        events.push(signup(i, "wecom:boss", T0 + i as i64, &format!("d{i}")));
        events.push(ev(json!({"ts": T0 + 10 + i as i64, "identity": format!("wecom:n{i}"), "type": "join_group", "group": "g1"})));
    }
    // n1 leaves the group on day 3, n2 refunds on day 2, n3 leaves after the hold.
    events.push(ev(
        json!({"ts": T0 + 3 * DAY, "identity": "wecom:n1", "type": "leave_group", "group": "g1"}),
    ));
    events.push(ev(
        json!({"ts": T0 + 2 * DAY, "identity": "wecom:n2", "type": "purchase", "amount": 500}),
    ));
    events.push(ev(
        json!({"ts": T0 + 2 * DAY + 5, "identity": "wecom:n2", "type": "refund", "amount": 500}),
    ));
    events.push(ev(
        json!({"ts": T0 + 9 * DAY, "identity": "wecom:n3", "type": "leave_group", "group": "g1"}),
    ));
    events.sort_by_key(|e| e.ts);
    let rules = |e: &Engine| Rules {
        campaign: e.campaign_of("double11"),
        group: Some("g1".into()),
        hold: 7 * DAY,
        ..Rules::default()
    };
    // During the hold: n0 and n3 pending, n1/n2 already invalid.
    let during: Vec<Event> = events
        .iter()
        .filter(|e| e.ts <= T0 + 4 * DAY)
        .cloned()
        .collect();
    let e = engine(&during, T0 + 4 * DAY);
    let v: Vec<Verdict> = fission::evaluate(&e, &rules(&e), &HashMap::new())
        .into_iter()
        .map(|i| i.verdict)
        .collect();
    assert_eq!(
        v[0],
        Verdict::Pending {
            until: T0 + 7 * DAY
        }
    );
    assert_eq!(
        v[1],
        Verdict::Invalid {
            reason: Reason::LeftGroup
        }
    );
    assert_eq!(
        v[2],
        Verdict::Invalid {
            reason: Reason::Refunded
        }
    );
    // After the hold: n0 and n3 valid (n3 left after it ended).
    let e = engine(&events, T0 + 10 * DAY);
    let inv = fission::evaluate(&e, &rules(&e), &HashMap::new());
    let v: Vec<Verdict> = inv.iter().map(|i| i.verdict).collect();
    assert_eq!(
        v,
        vec![
            Verdict::Valid,
            Verdict::Invalid {
                reason: Reason::LeftGroup
            },
            Verdict::Invalid {
                reason: Reason::Refunded
            },
            Verdict::Valid
        ]
    );
    let board = fission::leaderboard(&e, &inv, 10);
    assert_eq!(board, vec![("wecom:boss".to_string(), 2, 0)]);
    let f = fission::funnel(
        &e,
        &inv,
        e.campaign_clicks(e.campaign_of("double11").unwrap()),
    );
    assert_eq!((f.signups, f.valid, f.invalid, f.inviters), (4, 2, 2, 1));
    assert_eq!(f.invalid_by_reason.get("left_group"), Some(&1));
}

#[test]
fn fraud_rules_flag_and_overrides_decide() {
    let mut events = vec![ev(
        json!({"ts": T0 - DAY, "identity": "wecom:boss", "type": "add_friend"}),
    )];
    // Six signups within an hour, three from one device; and a self-referral
    // through a linked identity; and a person who was known before.
    for i in 0..6 {
        let device = if i < 3 {
            "same-phone".to_string()
        } else {
            format!("d{i}")
        };
        events.push(signup(i, "wecom:boss", T0 + 60 * i as i64, &device));
        events.push(ev(
            json!({"ts": T0 + 3600 + i as i64, "identity": format!("wecom:n{i}"), "type": "touch"}),
        ));
    }
    // alt invites "self", an identity later linked to alt: one person.
    events.push(ev(json!({"ts": T0 + 10, "identity": "douyin:alt", "type": "referral_signup", "ref": "wecom:self"})));
    events.push(ev(
        json!({"ts": T0 + 11, "identity": "douyin:alt", "type": "identify", "ref": "wecom:self"}),
    ));
    events.push(ev(
        json!({"ts": T0 - 5 * DAY, "identity": "wecom:old", "type": "touch"}),
    ));
    events.push(ev(json!({"ts": T0 + 20, "identity": "wecom:old", "type": "referral_signup", "ref": "wecom:boss"})));
    events.push(ev(json!({"ts": T0 + 30, "identity": "wecom:zz", "type": "referral_signup", "ref": "wecom:boss"})));
    events.sort_by_key(|e| e.ts);
    let e = engine(&events, T0 + 10 * DAY);
    let rules = Rules {
        max_per_device: Some(2),
        burst: Some(Burst {
            max: 4,
            window: 3600,
        }),
        zombie_after: Some(3 * DAY),
        ..Rules::default()
    };
    let inv = fission::evaluate(&e, &rules, &HashMap::new());
    let reason = |who: &str| {
        let slot = e.person_of(who).unwrap();
        inv.iter()
            .find(|i| i.invitee == slot)
            .map(|i| i.verdict)
            .unwrap()
    };
    assert_eq!(reason("wecom:n0"), Verdict::Valid);
    assert_eq!(
        reason("wecom:n2"),
        Verdict::Invalid {
            reason: Reason::SharedDevice
        }
    );
    assert_eq!(
        reason("douyin:alt"),
        Verdict::Invalid {
            reason: Reason::SelfReferral
        }
    );
    assert_eq!(
        reason("wecom:old"),
        Verdict::Invalid {
            reason: Reason::NotNew
        }
    );
    assert_eq!(
        reason("wecom:zz"),
        Verdict::Invalid {
            reason: Reason::Zombie
        }
    );
    // The 5th and 6th signups within the hour are a burst (the 3rd device-flagged first).
    assert_eq!(
        reason("wecom:n5"),
        Verdict::Invalid {
            reason: Reason::Burst
        }
    );
    // An operator override counts a flagged invitee (and another can be refused).
    let mut o = HashMap::new();
    o.insert(e.person_of("wecom:n2").unwrap(), true);
    o.insert(e.person_of("wecom:n0").unwrap(), false);
    let inv = fission::evaluate(&e, &rules, &o);
    let v = |who: &str| {
        inv.iter()
            .find(|i| i.invitee == e.person_of(who).unwrap())
            .unwrap()
            .clone()
    };
    assert_eq!(v("wecom:n2").verdict, Verdict::Valid);
    assert_eq!(
        v("wecom:n2").flag,
        Some(Reason::SharedDevice),
        "the flag stays visible"
    );
    assert_eq!(
        v("wecom:n0").verdict,
        Verdict::Invalid {
            reason: Reason::Overridden
        }
    );
}
