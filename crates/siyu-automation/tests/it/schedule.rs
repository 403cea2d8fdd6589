//! schedule: timezones, cron, quiet hours, durations, birthdays.

use jiff::civil::DateTime;
use proptest::prelude::*;
use siyu_automation::schedule::{
    day_start, format_local, local_date, local_day, local_day_start, next_anniversary,
    next_time_of_day, parse_birthday, parse_duration, Cron, QuietHours, ScheduleError, TimeOfDay,
    Tz,
};

fn tz(name: &str) -> Tz {
    Tz::parse(name).unwrap()
}

/// Epoch seconds of a local "YYYY-MM-DDTHH:MM[:SS]" in `zone` (must be unambiguous).
fn at(zone: &str, local: &str) -> i64 {
    let dt: DateTime = local.parse().unwrap();
    tz(zone)
        .as_jiff()
        .to_ambiguous_timestamp(dt)
        .unambiguous()
        .unwrap()
        .as_second()
}

/// The local "YYYY-MM-DDTHH:MM:SS" of an instant in `zone`.
fn local(zone: &str, ts: i64) -> String {
    let t = jiff::Timestamp::from_second(ts).unwrap();
    tz(zone)
        .as_jiff()
        .to_datetime(t)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn tod(s: &str) -> TimeOfDay {
    TimeOfDay::parse(s).unwrap()
}

fn next(cron: &str, zone: &str, from_local: &str) -> Option<String> {
    let cron = Cron::parse(cron).unwrap();
    cron.next_after(at(zone, from_local), &tz(zone))
        .map(|ts| local(zone, ts))
}

#[test]
fn timezones_parse_names_and_offsets() {
    assert_eq!(tz("Asia/Shanghai").name(), "Asia/Shanghai");
    assert_eq!(tz("asia/shanghai").name(), "Asia/Shanghai");
    assert_eq!(tz("+08:00").name(), "+08:00");
    assert_eq!(tz("+0800").name(), "+08:00");
    assert_eq!(tz("-5").name(), "-05:00");
    assert_eq!(tz("UTC+05:30").name(), "+05:30");
    assert_eq!(tz("UTC").name(), "UTC");
    for bad in [
        "",
        "Mars/Olympus",
        "+99:00",
        "+08:61",
        "Etc/Unknown",
        "+",
        "08:00",
    ] {
        assert!(
            matches!(Tz::parse(bad), Err(ScheduleError::UnknownTimezone(_))),
            "{bad:?} should be rejected"
        );
    }
    assert_eq!(Tz::parse_or(Some("nope"), "nope").name(), "Asia/Shanghai");
    assert_eq!(Tz::parse_or(None, "Europe/Berlin").name(), "Europe/Berlin");
}

#[test]
fn time_of_day_parses_hh_mm() {
    assert_eq!(tod("09:30").to_string(), "09:30");
    assert_eq!(tod("9:05").to_string(), "09:05");
    assert_eq!(tod(" 23:59 ").to_string(), "23:59");
    for bad in [
        "24:00", "12:60", "12", "12:5", "a:bc", "", "-1:00", "123:00", "12:00:00",
    ] {
        assert!(TimeOfDay::parse(bad).is_err(), "{bad:?} should be rejected");
    }
    let err = TimeOfDay::parse("25:00").unwrap_err().to_string();
    assert!(err.contains("HH:MM"), "{err}");
}

#[test]
fn next_time_of_day_is_strictly_after_now() {
    let sh = "Asia/Shanghai";
    let t = next_time_of_day(at(sh, "2024-06-01T08:00"), tod("09:00"), &tz(sh));
    assert_eq!(local(sh, t), "2024-06-01T09:00:00");
    let t = next_time_of_day(at(sh, "2024-06-01T09:00"), tod("09:00"), &tz(sh));
    assert_eq!(local(sh, t), "2024-06-02T09:00:00");
    let t = next_time_of_day(at(sh, "2024-12-31T23:30"), tod("00:15"), &tz(sh));
    assert_eq!(local(sh, t), "2025-01-01T00:15:00");
}

#[test]
fn next_time_of_day_across_new_york_dst() {
    let ny = "America/New_York";
    // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
    let t = next_time_of_day(at(ny, "2024-03-10T00:00"), tod("02:30"), &tz(ny));
    assert_eq!(local(ny, t), "2024-03-10T03:30:00");
    assert_eq!(t, at("UTC", "2024-03-10T07:30"));
    // 9:00 the day after the switch is 9:00 EDT (13:00 UTC), not 14:00.
    let t = next_time_of_day(at(ny, "2024-03-10T12:00"), tod("09:00"), &tz(ny));
    assert_eq!(t, at("UTC", "2024-03-11T13:00"));
    // 2024-11-03: 01:30 happens twice; the first pass (EDT) is the answer.
    let t = next_time_of_day(at(ny, "2024-11-02T12:00"), tod("01:30"), &tz(ny));
    assert_eq!(t, at("UTC", "2024-11-03T05:30"));
    // During the second pass (EST 01:10) the next 01:30 is tomorrow's.
    let second_pass = at("UTC", "2024-11-03T06:10");
    let t = next_time_of_day(second_pass, tod("01:30"), &tz(ny));
    assert_eq!(t, at("UTC", "2024-11-04T06:30"));
}

#[test]
fn local_date_and_day_start() {
    let sh = "Asia/Shanghai";
    let now = at("UTC", "2024-06-01T17:00"); // 01:00 on June 2 in Shanghai
    assert_eq!(local_date(now, &tz(sh)), (2024, 6, 2));
    assert_eq!(local_date(now, &tz("UTC")), (2024, 6, 1));
    assert_eq!(day_start(now, &tz(sh)), at(sh, "2024-06-02T00:00"));
    assert_eq!(day_start(now, &tz("UTC")), at("UTC", "2024-06-01T00:00"));
    // Out-of-range instants clamp instead of panicking.
    let _ = local_date(i64::MAX, &tz(sh));
    let _ = day_start(i64::MIN, &tz(sh));
}

#[test]
fn quiet_hours_cross_midnight() {
    let sh = "Asia/Shanghai";
    let quiet = QuietHours::new(tod("21:00"), tod("09:00"));
    let cases = [
        ("2024-06-01T20:59:59", false, "2024-06-01T20:59:59"),
        ("2024-06-01T21:00", true, "2024-06-02T09:00:00"),
        ("2024-06-01T23:30", true, "2024-06-02T09:00:00"),
        ("2024-06-02T03:00", true, "2024-06-02T09:00:00"),
        ("2024-06-02T08:59:59", true, "2024-06-02T09:00:00"),
        ("2024-06-02T09:00", false, "2024-06-02T09:00:00"),
        ("2024-06-02T12:00", false, "2024-06-02T12:00:00"),
    ];
    for (now, quiet_now, end) in cases {
        let t = at(sh, now);
        assert_eq!(quiet.contains(t, &tz(sh)), quiet_now, "{now}");
        assert_eq!(local(sh, quiet.end_after(t, &tz(sh))), end, "{now}");
    }
    // A daytime window and an empty one.
    let lunch = QuietHours::new(tod("12:00"), tod("13:00"));
    assert!(lunch.contains(at(sh, "2024-06-02T12:30"), &tz(sh)));
    assert!(!lunch.contains(at(sh, "2024-06-02T13:00"), &tz(sh)));
    let empty = QuietHours::new(tod("10:00"), tod("10:00"));
    assert!(!empty.contains(at(sh, "2024-06-02T10:00"), &tz(sh)));
    // Serde: {"start":"21:00","end":"09:00"}.
    let json = serde_json::to_string(&quiet).unwrap();
    assert_eq!(json, r#"{"start":"21:00","end":"09:00"}"#);
    assert_eq!(serde_json::from_str::<QuietHours>(&json).unwrap(), quiet);
    assert!(serde_json::from_str::<QuietHours>(r#"{"start":"25:00","end":"09:00"}"#).is_err());
}

#[test]
fn cron_next_in_shanghai() {
    let sh = "Asia/Shanghai";
    let cases = [
        // (cron, from, next) — 2024-06-01 is a Saturday.
        ("0 9 * * MON-FRI", "2024-06-01T10:00", "2024-06-03T09:00:00"),
        ("0 9 * * 1-5", "2024-06-03T08:59:59", "2024-06-03T09:00:00"),
        ("0 9 * * 1-5", "2024-06-03T09:00", "2024-06-04T09:00:00"),
        ("*/15 * * * *", "2024-06-01T10:07", "2024-06-01T10:15:00"),
        ("*/15 * * * *", "2024-06-01T23:50", "2024-06-02T00:00:00"),
        ("5/20 * * * *", "2024-06-01T10:26", "2024-06-01T10:45:00"),
        ("0 0 1 * *", "2024-06-01T00:00", "2024-07-01T00:00:00"),
        ("30 8 1,15 * *", "2024-06-02T00:00", "2024-06-15T08:30:00"),
        (
            "0 12 * JAN,jul *",
            "2024-06-01T00:00",
            "2024-07-01T12:00:00",
        ),
        ("0 0 29 2 *", "2024-03-01T00:00", "2028-02-29T00:00:00"),
        ("59 23 31 12 *", "2024-06-01T00:00", "2024-12-31T23:59:00"),
        ("0 10 * * SUN", "2024-06-01T00:00", "2024-06-02T10:00:00"),
        ("0 10 * * 7", "2024-06-01T00:00", "2024-06-02T10:00:00"),
        ("0 10 * * 0", "2024-06-01T00:00", "2024-06-02T10:00:00"),
        ("0 10 * * 5-7", "2024-06-01T11:00", "2024-06-02T10:00:00"),
        ("@daily", "2024-06-01T10:00", "2024-06-02T00:00:00"),
        ("@hourly", "2024-06-01T10:00", "2024-06-01T11:00:00"),
        ("@weekly", "2024-06-01T10:00", "2024-06-02T00:00:00"),
        ("@yearly", "2024-06-01T10:00", "2025-01-01T00:00:00"),
    ];
    for (cron, from, expected) in cases {
        assert_eq!(
            next(cron, sh, from).as_deref(),
            Some(expected),
            "{cron} from {from}"
        );
    }
}

#[test]
fn cron_day_of_month_or_day_of_week() {
    let sh = "Asia/Shanghai";
    // Both restricted: the 13th OR any Friday. 2024-09-06 is a Friday.
    assert_eq!(
        next("0 9 13 * FRI", sh, "2024-09-01T00:00").as_deref(),
        Some("2024-09-06T09:00:00")
    );
    assert_eq!(
        next("0 9 13 * FRI", sh, "2024-09-06T10:00").as_deref(),
        Some("2024-09-13T09:00:00")
    );
    assert_eq!(
        next("0 9 13 * FRI", sh, "2024-09-13T10:00").as_deref(),
        Some("2024-09-20T09:00:00")
    );
    // Day-of-month starts with `*`: both must match (odd days that are Fridays).
    assert_eq!(
        next("0 9 */2 * FRI", sh, "2024-09-01T00:00").as_deref(),
        Some("2024-09-13T09:00:00")
    );
    // Day-of-week `*`: only the day of month counts.
    assert_eq!(
        next("0 9 13 * *", sh, "2024-09-01T00:00").as_deref(),
        Some("2024-09-13T09:00:00")
    );
}

#[test]
fn cron_that_never_fires() {
    let sh = tz("Asia/Shanghai");
    let now = at("Asia/Shanghai", "2024-06-01T00:00");
    for never in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"] {
        assert_eq!(
            Cron::parse(never).unwrap().next_after(now, &sh),
            None,
            "{never}"
        );
    }
    // At the end of time there is no next firing either.
    assert_eq!(
        Cron::parse("* * * * *").unwrap().next_after(i64::MAX, &sh),
        None
    );
    assert_eq!(
        Cron::parse("0 0 1 1 *")
            .unwrap()
            .next_after(253_402_300_000, &sh),
        None
    );
}

#[test]
fn cron_across_new_york_dst() {
    let ny = "America/New_York";
    // The 02:30 that does not exist on 2024-03-10 fires at 03:30 EDT.
    assert_eq!(
        next("30 2 * * *", ny, "2024-03-09T12:00").as_deref(),
        Some("2024-03-10T03:30:00")
    );
    let cron = Cron::parse("30 2 * * *").unwrap();
    let gap = cron
        .next_after(at(ny, "2024-03-09T12:00"), &tz(ny))
        .unwrap();
    assert_eq!(
        local(ny, cron.next_after(gap, &tz(ny)).unwrap()),
        "2024-03-11T02:30:00"
    );
    // The 01:30 that happens twice on 2024-11-03 fires once (EDT).
    let cron = Cron::parse("30 1 * * *").unwrap();
    let first = cron
        .next_after(at(ny, "2024-11-02T12:00"), &tz(ny))
        .unwrap();
    assert_eq!(first, at("UTC", "2024-11-03T05:30"));
    let second = cron.next_after(first, &tz(ny)).unwrap();
    assert_eq!(second, at("UTC", "2024-11-04T06:30"));
    // Every 30 minutes through the fall-back night keeps moving forward.
    let cron = Cron::parse("*/30 * * * *").unwrap();
    let mut t = at("UTC", "2024-11-03T04:00");
    for _ in 0..8 {
        let n = cron.next_after(t, &tz(ny)).unwrap();
        assert!(n > t);
        t = n;
    }
}

#[test]
fn cron_errors_name_the_field_and_token() {
    let cases = [
        ("61 * * * *", 1, "minute", "61"),
        ("* 24 * * *", 2, "hour", "24"),
        ("* * 0 * *", 3, "day-of-month", "0"),
        ("* * * 13 *", 4, "month", "13"),
        ("* * * FOO *", 4, "month", "FOO"),
        ("* * * * 8", 5, "day-of-week", "8"),
        ("* * * * MON-FOO", 5, "day-of-week", "FOO"),
        ("*/0 * * * *", 1, "minute", "*/0"),
        ("5-1 * * * *", 1, "minute", "5-1"),
        ("1,,2 * * * *", 1, "minute", "1,,2"),
        ("x * * * *", 1, "minute", "x"),
        ("1-2-3 * * * *", 1, "minute", "2-3"),
    ];
    for (line, index, field, token) in cases {
        match Cron::parse(line) {
            Err(ScheduleError::CronField {
                index: i,
                field: f,
                token: t,
                ..
            }) => assert_eq!((i, f, t.as_str()), (index, field, token), "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    assert_eq!(Cron::parse("* * *"), Err(ScheduleError::CronFieldCount(3)));
    assert_eq!(Cron::parse(""), Err(ScheduleError::CronFieldCount(0)));
    let msg = Cron::parse("* * 32 * *").unwrap_err().to_string();
    assert_eq!(
        msg,
        "cron field 3 (day-of-month): bad token \"32\": out of range 1-31"
    );
}

#[test]
fn cron_display_round_trips() {
    for line in [
        "0 9 * * MON-FRI",
        "*/15  *  * * *",
        "0 0 29 2 *",
        "5/20 1,2,3 1-7 jan-mar 0,7",
        "@daily",
    ] {
        let cron = Cron::parse(line).unwrap();
        let again = Cron::parse(&cron.to_string()).unwrap();
        assert_eq!(cron, again, "{line}");
        let json = serde_json::to_string(&cron).unwrap();
        assert_eq!(serde_json::from_str::<Cron>(&json).unwrap(), cron);
    }
    assert_eq!(
        Cron::parse(" */15  * * * * ").unwrap().to_string(),
        "*/15 * * * *"
    );
}

#[test]
fn durations() {
    let ok = [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43_200),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        ("1h 30m", 5_400),
        ("0s", 0),
        ("0m", 0),
        (" 90S ", 90),
    ];
    for (s, secs) in ok {
        assert_eq!(parse_duration(s), Ok(secs), "{s}");
    }
    let bad = [
        ("", "empty"),
        ("-5m", "negative"),
        ("5", "missing unit"),
        ("5y", "unknown unit"),
        ("m", "expected a number"),
        ("1h1h", "twice"),
        ("99999999999999999999s", "too large"),
        ("15250284452472w", "too large"),
        ("1.5h", "unknown unit"),
    ];
    for (s, why) in bad {
        let err = parse_duration(s).unwrap_err().to_string();
        assert!(err.contains(why), "{s:?}: {err}");
    }
}

#[test]
fn birthdays() {
    assert_eq!(parse_birthday("1990-05-17"), Some((5, 17)));
    assert_eq!(parse_birthday("05-17"), Some((5, 17)));
    assert_eq!(parse_birthday("5/17"), Some((5, 17)));
    assert_eq!(parse_birthday("1990/5/17"), Some((5, 17)));
    assert_eq!(parse_birthday("5月17日"), Some((5, 17)));
    assert_eq!(parse_birthday("1990年5月17日"), Some((5, 17)));
    assert_eq!(parse_birthday("02-29"), Some((2, 29)));
    assert_eq!(parse_birthday("2000-02-29"), Some((2, 29)));
    for bad in [
        "1991-02-29",
        "13-01",
        "04-31",
        "0-1",
        "5/17/1990",
        "",
        "abc",
        "1990-5",
        "５/17",
    ] {
        assert_eq!(parse_birthday(bad), None, "{bad:?}");
    }

    let sh = "Asia/Shanghai";
    let shanghai = tz(sh);
    let nine = tod("09:00");
    let t = next_anniversary(at(sh, "2024-03-01T00:00"), 5, 17, nine, &shanghai);
    assert_eq!(local(sh, t), "2024-05-17T09:00:00");
    let t = next_anniversary(at(sh, "2024-05-17T09:00"), 5, 17, nine, &shanghai);
    assert_eq!(local(sh, t), "2025-05-17T09:00:00");
    // Feb 29 birthdays are celebrated on Feb 28 in non-leap years.
    let t = next_anniversary(at(sh, "2024-03-01T00:00"), 2, 29, nine, &shanghai);
    assert_eq!(local(sh, t), "2025-02-28T09:00:00");
    let t = next_anniversary(at(sh, "2027-03-01T00:00"), 2, 29, nine, &shanghai);
    assert_eq!(local(sh, t), "2028-02-29T09:00:00");
    // Impossible dates clamp instead of panicking.
    let t = next_anniversary(at(sh, "2024-03-01T00:00"), 13, 40, nine, &shanghai);
    assert_eq!(local(sh, t), "2024-12-31T09:00:00");
    let _ = next_anniversary(i64::MAX, 0, 0, nine, &shanghai);
}

fn cron_field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (1..=hi.max(1)).prop_map(|s| format!("*/{s}")),
        proptest::collection::vec(lo..=hi, 1..4).prop_map(|v| v
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

fn cron_line() -> impl Strategy<Value = String> {
    (
        cron_field(0, 59),
        cron_field(0, 23),
        cron_field(1, 31),
        cron_field(1, 12),
        cron_field(0, 7),
    )
        .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn next_after_is_later_matches_and_is_the_first(
        line in cron_line(),
        now in 946_684_800i64..4_102_444_800,
        zone in prop_oneof![Just("Asia/Shanghai"), Just("UTC"), Just("+05:30"), Just("-09:45")],
    ) {
        let cron = Cron::parse(&line).unwrap();
        let zone = tz(zone);
        if let Some(next) = cron.next_after(now, &zone) {
            prop_assert!(next > now);
            let local = |ts: i64| zone.as_jiff().to_datetime(jiff::Timestamp::from_second(ts).unwrap());
            prop_assert!(cron.matches_local(local(next)), "{line}: {}", local(next));
            prop_assert_eq!(local(next).second(), 0);
            // No matching minute between now and next (checked when near).
            if next - now <= 3 * 86_400 {
                let mut t = now - now.rem_euclid(60) + 60;
                while t < next {
                    prop_assert!(!cron.matches_local(local(t)), "{line}: {} skipped", local(t));
                    t += 60;
                }
            }
        }
    }

    #[test]
    fn next_after_moves_forward_in_new_york(line in cron_line(), now in 946_684_800i64..4_102_444_800) {
        let cron = Cron::parse(&line).unwrap();
        if let Some(next) = cron.next_after(now, &tz("America/New_York")) {
            prop_assert!(next > now);
        }
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}", now in any::<i64>(), m in any::<u8>(), d in any::<u8>()) {
        let zone = tz("America/New_York");
        if let Ok(cron) = Cron::parse(&s) {
            let _ = cron.next_after(now, &zone);
            prop_assert_eq!(Cron::parse(&cron.to_string()), Ok(cron));
        }
        let _ = parse_duration(&s);
        let _ = TimeOfDay::parse(&s);
        let _ = parse_birthday(&s);
        let _ = Tz::parse(&s);
        let _ = next_anniversary(now, m, d, TimeOfDay::MIDNIGHT, &zone);
        let _ = next_time_of_day(now, TimeOfDay::MIDNIGHT, &zone);
        let _ = day_start(now, &zone);
        let _ = QuietHours::new(TimeOfDay::MIDNIGHT, TimeOfDay::MIDNIGHT).end_after(now, &zone);
    }

    #[test]
    fn cron_shaped_strings_never_panic(s in "[0-9*/,A-Za-z@-]{1,8}( [0-9*/,A-Za-z-]{1,8}){4}", now in any::<i64>()) {
        if let Ok(cron) = Cron::parse(&s) {
            let _ = cron.next_after(now, &tz("Asia/Shanghai"));
        }
    }
}

/// 2026-10-31T12:15Z is 20:15 that day in Shanghai; 17:00Z on 2026-11-01
/// is already Monday 2026-11-02 there. Local days start at local midnight,
/// including across a DST change (New York, 2026-11-01 is 25 hours long).
#[test]
fn local_days_and_local_rfc3339() {
    let sh = tz("Asia/Shanghai");
    let paid = siyu_domain::time::parse_rfc3339("2026-10-31T12:15:00Z").unwrap();
    assert_eq!(format_local(paid, &sh), "2026-10-31T20:15:00+08:00");
    assert_eq!(format_local(paid, &tz("UTC")), "2026-10-31T12:15:00Z");
    let oct31 = siyu_domain::time::parse_date("2026-10-31").unwrap();
    assert_eq!(local_day(paid, &sh), oct31);
    let monday = siyu_domain::time::parse_rfc3339("2026-11-01T17:00:00Z").unwrap();
    assert_eq!(local_day(monday, &sh), oct31 + 2);
    assert_eq!(local_day(monday, &tz("UTC")), oct31 + 1);
    assert_eq!(
        local_day_start(oct31 + 2, &sh),
        at("Asia/Shanghai", "2026-11-02T00:00")
    );
    let ny = tz("America/New_York");
    assert_eq!(
        local_day_start(oct31 + 1, &ny),
        at("America/New_York", "2026-11-01T00:00")
    );
    assert_eq!(
        local_day_start(oct31 + 2, &ny) - local_day_start(oct31 + 1, &ny),
        25 * 3600
    );
    proptest!(|(ts in siyu_domain::time::MIN_TS..siyu_domain::time::MAX_TS)| {
        let day = local_day(ts, &ny);
        prop_assert!(local_day_start(day, &ny) <= ts);
        prop_assert!(ts < local_day_start(day + 1, &ny));
    });
}
