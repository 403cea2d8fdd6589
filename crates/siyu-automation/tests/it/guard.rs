//! guard: consent, caps, quotas and quiet hours in one decision.

use proptest::prelude::*;
use siyu_automation::guard::{
    decide, is_unsubscribe_reply, Cap, Consent, ConsentEntry, ConsentSource, ConsentState, Contact,
    Decision, DelayReason, MessageClass, Policy, SendKind, SendLedger, SendRecord, SendRequest,
    SuppressReason,
};

const DAY: i64 = 86_400;
/// 2024-06-03 12:00 in Shanghai (04:00 UTC).
const NOON_SH: i64 = 1_717_387_200;

use MessageClass::{Marketing, Transactional};
use SendKind::{Direct, Mass};

fn rec(ts: i64, channel: &str, class: MessageClass, kind: SendKind) -> SendRecord {
    SendRecord::new(ts, channel, class, kind)
}

fn req(channel: &str, class: MessageClass, kind: SendKind) -> SendRequest<'_> {
    SendRequest {
        channel,
        class,
        kind,
    }
}

struct Case {
    name: &'static str,
    opted_out: bool,
    consent: Vec<ConsentEntry>,
    timezone: Option<&'static str>,
    history: Vec<SendRecord>,
    req: SendRequest<'static>,
    now: i64,
    expected: Decision,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            name: "",
            opted_out: false,
            consent: vec![],
            timezone: None,
            history: vec![],
            req: req("wechat", Marketing, Direct),
            now: NOON_SH,
            expected: Decision::Send,
        }
    }
}

fn entry(ts: i64, channel: Option<&str>, granted: bool) -> ConsentEntry {
    ConsentEntry {
        ts,
        channel: channel.map(str::to_string),
        granted,
        source: if granted {
            ConsentSource::OptIn
        } else {
            ConsentSource::ReplyKeyword
        },
    }
}

fn suppress(reason: SuppressReason) -> Decision {
    Decision::Suppress { reason }
}

fn quiet_until(until: i64) -> Decision {
    Decision::Delay {
        until,
        reason: DelayReason::QuietHours,
    }
}

#[test]
fn decisions() {
    let policy = Policy::default();
    let m = |ts| rec(ts, "wechat", Marketing, Direct);
    let cases = vec![
        Case {
            name: "nothing sent yet",
            ..Case::default()
        },
        Case {
            name: "2nd marketing within 7 days is allowed",
            history: vec![m(NOON_SH - DAY)],
            ..Case::default()
        },
        Case {
            name: "3rd marketing within 7 days hits the cap",
            history: vec![m(NOON_SH - 6 * DAY), m(NOON_SH - DAY)],
            expected: suppress(SuppressReason::MarketingCap),
            ..Case::default()
        },
        Case {
            name: "the cap counts across channels",
            history: vec![
                rec(NOON_SH - DAY, "sms", Marketing, Direct),
                rec(NOON_SH - DAY, "wecom", Marketing, Mass),
            ],
            expected: suppress(SuppressReason::MarketingCap),
            ..Case::default()
        },
        Case {
            name: "a send exactly 7 days ago still counts",
            history: vec![m(NOON_SH - 7 * DAY), m(NOON_SH - DAY)],
            expected: suppress(SuppressReason::MarketingCap),
            ..Case::default()
        },
        Case {
            name: "on the 8th day the oldest send no longer counts",
            history: vec![m(NOON_SH - 7 * DAY - 1), m(NOON_SH - DAY)],
            ..Case::default()
        },
        Case {
            name: "transactional sends do not count against the cap",
            history: vec![
                rec(NOON_SH - DAY, "wechat", Transactional, Direct),
                rec(NOON_SH - DAY, "wechat", Transactional, Direct),
                m(NOON_SH - DAY),
            ],
            ..Case::default()
        },
        Case {
            name: "transactional is never capped",
            history: vec![m(NOON_SH - 2), m(NOON_SH - 1)],
            req: req("wechat", Transactional, Direct),
            ..Case::default()
        },
        Case {
            name: "transactional goes through at night",
            now: NOON_SH + 11 * 3600, // 23:00 Shanghai
            req: req("wechat", Transactional, Direct),
            ..Case::default()
        },
        Case {
            name: "marketing at 23:00 Shanghai waits until 09:00",
            now: NOON_SH + 11 * 3600,
            expected: quiet_until(NOON_SH + 21 * 3600),
            ..Case::default()
        },
        Case {
            name: "marketing at 03:00 Shanghai waits until 09:00 the same day",
            now: NOON_SH - 9 * 3600,
            expected: quiet_until(NOON_SH - 3 * 3600),
            ..Case::default()
        },
        Case {
            name: "noon in Shanghai is 05:00 in London: wait until 09:00 London",
            timezone: Some("Europe/London"),
            // 2024-06-03 09:00 BST = 08:00 UTC.
            expected: quiet_until(NOON_SH + 4 * 3600),
            ..Case::default()
        },
        Case {
            name: "an unparsable person timezone falls back to the default",
            timezone: Some("Moon/Base"),
            ..Case::default()
        },
        Case {
            name: "opted out: suppressed, even at night (suppress wins over delay)",
            opted_out: true,
            now: NOON_SH + 11 * 3600,
            expected: suppress(SuppressReason::OptedOut),
            ..Case::default()
        },
        Case {
            name: "the global opt-out does not stop transactional",
            opted_out: true,
            req: req("wechat", Transactional, Direct),
            ..Case::default()
        },
        Case {
            name: "channel consent revoked: marketing suppressed",
            consent: vec![entry(NOON_SH - DAY, Some("wechat"), false)],
            expected: suppress(SuppressReason::NoConsent {
                channel: "wechat".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "channel consent revoked: transactional suppressed too",
            consent: vec![entry(NOON_SH - DAY, Some("wechat"), false)],
            req: req("wechat", Transactional, Direct),
            expected: suppress(SuppressReason::NoConsent {
                channel: "wechat".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "revoked on another channel only",
            consent: vec![entry(NOON_SH - DAY, Some("sms"), false)],
            ..Case::default()
        },
        Case {
            name: "global revocation stops marketing on every channel",
            consent: vec![entry(NOON_SH - DAY, None, false)],
            req: req("douyin", Marketing, Direct),
            expected: suppress(SuppressReason::NoConsent {
                channel: "douyin".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "global revocation does not stop transactional",
            consent: vec![entry(NOON_SH - DAY, None, false)],
            req: req("douyin", Transactional, Direct),
            ..Case::default()
        },
        Case {
            name: "opt-out then opt-in later: allowed again",
            consent: vec![
                entry(NOON_SH - 2 * DAY, Some("wechat"), false),
                entry(NOON_SH - DAY, Some("wechat"), true),
            ],
            ..Case::default()
        },
        Case {
            name: "opt-in then opt-out later: suppressed",
            consent: vec![
                entry(NOON_SH - DAY, Some("wechat"), false),
                entry(NOON_SH - 2 * DAY, Some("wechat"), true),
            ],
            expected: suppress(SuppressReason::NoConsent {
                channel: "wechat".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "wecom: 1 mass message per customer per local day",
            req: req("wecom", Marketing, Mass),
            history: vec![rec(NOON_SH - 3 * 3600, "wecom", Transactional, Mass)],
            expected: suppress(SuppressReason::PlatformQuota {
                channel: "wecom".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "wecom quota applies to transactional mass sends too",
            req: req("wecom", Transactional, Mass),
            history: vec![rec(NOON_SH - 3 * 3600, "wecom", Marketing, Mass)],
            expected: suppress(SuppressReason::PlatformQuota {
                channel: "wecom".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "wecom quota resets at local midnight (sent 23:59 yesterday)",
            req: req("wecom", Transactional, Mass),
            history: vec![rec(NOON_SH - 12 * 3600 - 60, "wecom", Marketing, Mass)],
            ..Case::default()
        },
        Case {
            name: "wecom quota: sent 00:00 today counts",
            req: req("wecom", Transactional, Mass),
            history: vec![rec(NOON_SH - 12 * 3600, "wecom", Marketing, Mass)],
            expected: suppress(SuppressReason::PlatformQuota {
                channel: "wecom".into(),
            }),
            ..Case::default()
        },
        Case {
            name: "wecom quota: the local day is the person's (UTC midnight = 08:00 Shanghai)",
            req: req("wecom", Transactional, Mass),
            timezone: Some("UTC"),
            // 2024-06-02 23:30 UTC: yesterday in UTC, today in Shanghai.
            history: vec![rec(NOON_SH - 4 * 3600 - 1800, "wecom", Marketing, Mass)],
            ..Case::default()
        },
        Case {
            name: "direct wecom messages are not mass sends",
            req: req("wecom", Marketing, Direct),
            history: vec![rec(NOON_SH - 3 * 3600, "wecom", Transactional, Mass)],
            ..Case::default()
        },
    ];
    for case in cases {
        let consent = Consent::from_entries(&case.consent);
        let contact = Contact {
            opted_out: case.opted_out,
            consent: &consent,
            timezone: case.timezone,
            history: &case.history,
        };
        let got = decide(&policy, &contact, &case.req, case.now);
        assert_eq!(got, case.expected, "{}", case.name);
    }
}

#[test]
fn channel_caps_and_policy_json() {
    let policy: Policy = serde_json::from_str(
        r#"{"channel_caps": {"sms": {"max": 1, "window_secs": 86400}}, "marketing_cap": 5,
            "quiet_hours": null, "require_opt_in": false}"#,
    )
    .unwrap();
    assert_eq!(
        policy.channel_caps["sms"],
        Cap {
            max: 1,
            window_secs: 86_400
        }
    );
    assert_eq!(policy.marketing_window_secs, 7 * DAY);
    assert_eq!(policy.mass_per_local_day["wecom"], 1);
    assert_eq!(policy.quiet_hours, None);
    policy.validate().unwrap();

    let consent = Consent::default();
    let history = [rec(NOON_SH - 3600, "sms", Marketing, Direct)];
    let contact = Contact {
        opted_out: false,
        consent: &consent,
        timezone: None,
        history: &history,
    };
    let night = NOON_SH + 11 * 3600;
    assert_eq!(
        decide(&policy, &contact, &req("sms", Marketing, Direct), night).code(),
        "channel_cap"
    );
    // No quiet hours in this policy: wechat goes out at night.
    assert_eq!(
        decide(&policy, &contact, &req("wechat", Marketing, Direct), night),
        Decision::Send
    );
    assert_eq!(
        decide(
            &policy,
            &contact,
            &req("sms", Marketing, Direct),
            NOON_SH + DAY
        ),
        Decision::Send
    );

    let defaults: Policy = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, Policy::default());
    assert!(serde_json::from_str::<Policy>(r#"{"marketing_cpa": 1}"#).is_err());
    let bad = Policy {
        default_timezone: "Nowhere".into(),
        ..Policy::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("Nowhere"));
    let bad = Policy {
        marketing_window_secs: 0,
        ..Policy::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn require_opt_in_needs_a_grant() {
    let policy = Policy {
        require_opt_in: true,
        ..Policy::default()
    };
    let none = Consent::default();
    let granted = Consent::from_entries(&[entry(1, None, true)]);
    let contact = |consent| Contact {
        opted_out: false,
        consent,
        timezone: None,
        history: &[],
    };
    let r = req("wechat", Marketing, Direct);
    assert_eq!(
        decide(&policy, &contact(&none), &r, NOON_SH).code(),
        "no_consent"
    );
    assert_eq!(
        decide(&policy, &contact(&granted), &r, NOON_SH),
        Decision::Send
    );
    let transactional = req("wechat", Transactional, Direct);
    assert_eq!(
        decide(&policy, &contact(&none), &transactional, NOON_SH),
        Decision::Send
    );
}

#[test]
fn consent_latest_wins_in_any_order() {
    let entries = [
        entry(10, Some("sms"), false),
        entry(20, None, false),
        entry(30, Some("wechat"), true),
        entry(5, Some("wechat"), false),
    ];
    let forward = Consent::from_entries(&entries);
    let backward = Consent::from_entries(entries.iter().rev());
    assert_eq!(forward, backward);
    assert_eq!(forward.state("wechat"), ConsentState::Granted);
    assert_eq!(forward.state("sms"), ConsentState::RevokedGlobal);
    assert_eq!(forward.state("douyin"), ConsentState::RevokedGlobal);
    assert!(forward.allows_marketing("wechat"));
    assert!(!forward.allows_marketing("sms"));
    assert_eq!(Consent::default().state("sms"), ConsentState::Unknown);
    // Same second: the revocation wins.
    let tie = Consent::from_entries(&[entry(7, Some("sms"), true), entry(7, Some("sms"), false)]);
    assert_eq!(tie.state("sms"), ConsentState::RevokedChannel);
    let json = serde_json::to_string(&forward).unwrap();
    assert_eq!(serde_json::from_str::<Consent>(&json).unwrap(), forward);
}

#[test]
fn reason_codes_are_stable() {
    let codes = [
        SuppressReason::OptedOut.code(),
        SuppressReason::NoConsent {
            channel: "x".into(),
        }
        .code(),
        SuppressReason::MarketingCap.code(),
        SuppressReason::ChannelCap {
            channel: "x".into(),
        }
        .code(),
        SuppressReason::PlatformQuota {
            channel: "x".into(),
        }
        .code(),
        DelayReason::QuietHours.code(),
        Decision::Send.code(),
    ];
    assert_eq!(
        codes,
        [
            "opted_out",
            "no_consent",
            "marketing_cap",
            "channel_cap",
            "platform_quota",
            "quiet_hours",
            "send"
        ]
    );
    assert_eq!(
        serde_json::to_string(&MessageClass::Transactional).unwrap(),
        "\"transactional\""
    );
    assert_eq!(serde_json::to_string(&SendKind::Mass).unwrap(), "\"mass\"");
}

#[test]
fn unsubscribe_replies() {
    let yes = [
        "退订",
        "退订。",
        " 退订！",
        "退訂",
        "TD",
        "td",
        "Td",
        "ＴＤ",
        "ｔｄ",
        "T",
        "t.",
        "STOP",
        "stop!",
        "Unsubscribe",
        "取消订阅",
        "【退订】",
        "\u{3000}TD\u{3000}",
    ];
    for text in yes {
        assert!(is_unsubscribe_reply(text), "{text:?} should unsubscribe");
    }
    let no = [
        "我不想退订",
        "退订是什么",
        "TDD",
        "n",
        "N",
        "no",
        "",
        "   ",
        "stop it",
        "please stop",
        "退 订 了",
        "tt",
    ];
    for text in no {
        assert!(
            !is_unsubscribe_reply(text),
            "{text:?} should not unsubscribe"
        );
    }
}

#[test]
fn ledger_records_prunes_and_interns() {
    let mut ledger = SendLedger::new();
    for i in 0..1_000 {
        let person = format!("p{}", i % 100);
        ledger.record(&person, rec(i, "wechat", Marketing, Direct));
    }
    assert_eq!(ledger.persons(), 100);
    assert_eq!(ledger.records(), 1_000);
    assert_eq!(ledger.history("p7").len(), 10);
    assert!(ledger.history("nobody").is_empty());
    // Every record shares one channel allocation.
    let h = ledger.history("p7");
    assert!(std::sync::Arc::ptr_eq(&h[0].channel, &h[1].channel));
    assert_eq!(std::mem::size_of::<SendRecord>(), 32);

    ledger.prune(950);
    assert_eq!(ledger.records(), 50);
    assert_eq!(ledger.persons(), 50);
    assert!(ledger.history("p7").is_empty());
    assert_eq!(
        ledger.history("p50"),
        &[rec(950, "wechat", Marketing, Direct)]
    );
    ledger.forget("p50");
    assert_eq!(ledger.records(), 49);

    // The ledger feeds decide directly.
    let consent = Consent::default();
    ledger.record("p99", rec(998, "sms", Marketing, Direct));
    let contact = Contact {
        opted_out: false,
        consent: &consent,
        timezone: Some("UTC"),
        history: ledger.history("p99"),
    };
    let at_noon_utc = 12 * 3600;
    assert_eq!(
        decide(
            &Policy::default(),
            &contact,
            &req("sms", Marketing, Direct),
            at_noon_utc
        )
        .code(),
        "marketing_cap"
    );
}

proptest! {
    #[test]
    fn decide_and_replies_never_panic(
        text in "\\PC{0,20}",
        now in any::<i64>(),
        ts in proptest::collection::vec(any::<i64>(), 0..6),
        tz in "\\PC{0,12}",
        mass in any::<bool>(),
        marketing in any::<bool>(),
    ) {
        let _ = is_unsubscribe_reply(&text);
        let history: Vec<SendRecord> = ts.iter().map(|&t| rec(t, "wecom", Marketing, Mass)).collect();
        let consent = Consent::from_entries(ts.iter().map(|&t| entry(t, Some("wecom"), t % 2 == 0)).collect::<Vec<_>>().iter());
        let contact = Contact { opted_out: false, consent: &consent, timezone: Some(&tz), history: &history };
        let class = if marketing { Marketing } else { Transactional };
        let kind = if mass { Mass } else { Direct };
        let decision = decide(&Policy::default(), &contact, &req("wecom", class, kind), now);
        if let Decision::Delay { until, .. } = decision {
            prop_assert!(until > now);
        }
    }
}

/// A Moments post: consent and the opt-out apply, then only its own cap
/// per local day; it neither counts against nor is held by the message
/// caps, and quiet hours do not delay it.
#[test]
fn a_moment_has_its_own_daily_cap_and_leaves_the_message_caps_alone() {
    let policy = Policy {
        moments_per_local_day: 2,
        ..Policy::default()
    };
    let moment = req("wecom", Marketing, SendKind::Moment);
    let none = Consent::default();
    let decide_with = |history: &[SendRecord], consent: &Consent, opted_out: bool, now: i64| {
        decide(
            &policy,
            &Contact {
                opted_out,
                consent,
                timezone: None,
                history,
            },
            &moment,
            now,
        )
    };
    // Two marketing messages this week (the message cap is full): a post still goes.
    let messages = vec![
        rec(NOON_SH - DAY, "wecom", Marketing, Direct),
        rec(NOON_SH - 2 * DAY, "wecom", Marketing, Mass),
    ];
    assert_eq!(
        decide_with(&messages, &none, false, NOON_SH),
        Decision::Send
    );
    // 23:00 in Shanghai: quiet hours, yet a post is not delayed.
    assert_eq!(
        decide_with(&[], &none, false, NOON_SH + 11 * 3600),
        Decision::Send
    );
    // Two posts reached the person today (Shanghai day): the third is capped.
    let two = vec![
        rec(NOON_SH - 3600, "wecom", Marketing, SendKind::Moment),
        rec(NOON_SH - 11 * 3600, "wecom", Marketing, SendKind::Moment),
    ];
    assert_eq!(
        decide_with(&two, &none, false, NOON_SH),
        Decision::Suppress {
            reason: SuppressReason::MomentCap
        }
    );
    assert_eq!(SuppressReason::MomentCap.code(), "moment_cap");
    // One of them was yesterday (local): room for one more.
    let one_today = vec![
        rec(NOON_SH - 3600, "wecom", Marketing, SendKind::Moment),
        rec(
            NOON_SH - 12 * 3600 - 1,
            "wecom",
            Marketing,
            SendKind::Moment,
        ),
    ];
    assert_eq!(
        decide_with(&one_today, &none, false, NOON_SH),
        Decision::Send
    );
    // Opted out, or WeCom revoked: left out before any cap.
    assert_eq!(
        decide_with(&[], &none, true, NOON_SH),
        Decision::Suppress {
            reason: SuppressReason::OptedOut
        }
    );
    let revoked = Consent::from_entries(&[entry(NOON_SH - DAY, Some("wecom"), false)]);
    assert_eq!(
        decide_with(&[], &revoked, false, NOON_SH).code(),
        "no_consent"
    );
    // Posts never fill the message caps: a direct message after three posts goes.
    let posts = vec![rec(NOON_SH - 60, "wecom", Marketing, SendKind::Moment); 3];
    let direct = decide(
        &policy,
        &Contact {
            opted_out: false,
            consent: &none,
            timezone: None,
            history: &posts,
        },
        &req("wecom", Marketing, Direct),
        NOON_SH,
    );
    assert_eq!(direct, Decision::Send);
    // The default: one post a customer a day.
    assert_eq!(Policy::default().moments_per_local_day, 1);
}
