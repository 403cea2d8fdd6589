//! A snapshot restores exactly the engine it was taken of: persons,
//! identities, analytics and (after `start_live`) segment members, and the
//! restored engine keeps applying events identically.

use siyu_domain::{Channel, Event, EventType, Identity, DAY};
use siyu_engine::snapshot::SnapshotError;
use siyu_engine::{analytics, segment, Engine};

pub fn events(n: usize) -> Vec<Event> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let chans = ["douyin", "wecom", "taobao", "mp"];
    (0..n)
        .map(|i| {
            let who = format!(
                "{}:{}",
                chans[(next() % 4) as usize],
                next() % (n as u64 / 8 + 40)
            );
            let id = Identity::parse(&who).unwrap();
            let ty = [
                EventType::Touch,
                EventType::Purchase,
                EventType::Identify,
                EventType::AddFriend,
                EventType::MessageRead,
                EventType::Refund,
                EventType::JoinGroup,
            ][(next() % 7) as usize];
            let mut e = Event::new(
                1_780_000_000 + i as i64 * 3600,
                id.clone(),
                ty,
                Channel::parse(id.channel()).unwrap(),
            );
            match ty {
                EventType::Purchase | EventType::Refund => e.amount = (next() % 50_000) as i64,
                EventType::Identify => {
                    e.reference = Some(
                        Identity::parse(&format!(
                            "{}:{}",
                            chans[(next() % 4) as usize],
                            next() % 40
                        ))
                        .unwrap(),
                    )
                }
                EventType::JoinGroup => e.group = Some(format!("g{}", next() % 3)),
                _ => {}
            }
            e
        })
        .collect()
}

fn fingerprint(e: &Engine) -> String {
    let mut persons: Vec<String> = e
        .persons()
        .map(|(p, _)| format!("{:?}", e.identities_of(p)))
        .collect();
    persons.sort();
    let segs = e.live_segments();
    let mut members: Vec<String> = segs.segments()[0]
        .members()
        .map(|p| e.canonical_id(p).to_string())
        .collect();
    members.sort();
    format!(
        "{persons:?}\n{members:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        analytics::rfm_grid(e, e.now()),
        analytics::first_touch_funnel(e, 7 * DAY, 30 * DAY),
        analytics::cohort_retention(e, 1_780_000_000, 7 * DAY, 4),
        analytics::referral_summary(e, 14 * DAY, &[1, 2], 5),
    )
}

/// An engine with the segment `buyers` that [`fingerprint`] lists.
fn with_buyers() -> Engine {
    let src = "purchases(last 30d) >= 1 and net_spend >= 100.00";
    let mut e = Engine::new();
    e.define_segment("buyers", segment::parse(src).unwrap(), src.into())
        .unwrap();
    e
}

#[test]
fn snapshot_round_trip_and_continue() {
    let all = events(3000);
    let mut a = with_buyers();
    for (i, e) in all[..2000].iter().enumerate() {
        a.apply(i as u64, e);
    }
    let bytes = a.to_snapshot(2000);
    let (mut b, offset) = Engine::from_snapshot(&bytes).unwrap();
    assert_eq!(offset, 2000);
    let now = 1_780_000_000 + 2000 * 3600;
    a.start_live(now);
    b.start_live(now);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    for (i, e) in all[2000..].iter().enumerate() {
        let (x, y) = (a.apply(2000 + i as u64, e), b.apply(2000 + i as u64, e));
        assert_eq!(x.changes, y.changes);
        assert_eq!(x.merges, y.merges);
    }
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn corrupt_snapshots_are_rejected_not_trusted() {
    let mut a = Engine::new();
    for (i, e) in events(200).iter().enumerate() {
        a.apply(i as u64, e);
    }
    let bytes = a.to_snapshot(200);
    assert_eq!(
        Engine::from_snapshot(b"NOTSNAP!").err(),
        Some(SnapshotError::BadMagic)
    );
    for cut in [9, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Engine::from_snapshot(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut wrong = bytes.clone();
    wrong[8] = 99;
    assert_eq!(
        Engine::from_snapshot(&wrong).err(),
        Some(SnapshotError::Version(99))
    );
}

/// A source that hands out at most 7 bytes a read and then, if told,
/// fails: what a slow or failing disk looks like to the decoder.
struct Trickle<'a> {
    left: &'a [u8],
    fail_at_end: bool,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.left.is_empty() && self.fail_at_end {
            return Err(std::io::Error::other("disk gone"));
        }
        let n = out.len().min(7).min(self.left.len());
        out[..n].copy_from_slice(&self.left[..n]);
        self.left = &self.left[n..];
        Ok(n)
    }
}

#[test]
fn a_snapshot_read_as_a_stream_is_the_one_read_from_bytes() {
    let all = events(3000);
    let mut a = with_buyers();
    for (i, e) in all.iter().enumerate() {
        a.apply(i as u64, e);
    }
    let bytes = a.to_snapshot(3000);
    let trickle = |left, fail_at_end| Trickle { left, fail_at_end };
    let (mut b, offset) =
        Engine::read_snapshot(trickle(&bytes, false), bytes.len() as u64).unwrap();
    assert_eq!(offset, 3000);
    let now = 1_780_000_000 + 3000 * 3600;
    a.start_live(now);
    b.start_live(now);
    assert_eq!(fingerprint(&a), fingerprint(&b));
    // Cut short with the whole length claimed: truncated, not trusted.
    let cut = &bytes[..bytes.len() / 2];
    assert!(matches!(
        Engine::read_snapshot(trickle(cut, false), bytes.len() as u64).err(),
        Some(SnapshotError::Corrupt(_))
    ));
    // A length claimed shorter than the data: a field does not fit in it.
    assert!(matches!(
        Engine::read_snapshot(trickle(&bytes, false), bytes.len() as u64 / 2).err(),
        Some(SnapshotError::Corrupt(_))
    ));
    // A read that fails says so, with the field it was reading.
    match Engine::read_snapshot(trickle(cut, true), bytes.len() as u64).err() {
        Some(SnapshotError::Read { error, .. }) => assert!(error.contains("disk gone"), "{error}"),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn parallel_passes_equal_the_single_threaded_ones() {
    let all = events(40_000);
    let src = "purchases(last 30d) >= 1 and net_spend >= 100.00";
    let build = |threads| {
        let mut e = Engine::new();
        e.set_parallelism(threads);
        e.define_segment("buyers", segment::parse(src).unwrap(), src.into())
            .unwrap();
        for (i, ev) in all.iter().enumerate() {
            e.apply(i as u64, ev);
        }
        e.start_live(1_780_000_000 + 40_000 * 3600);
        e
    };
    let (one, four) = (build(1), build(4));
    assert!(
        one.person_count() > 2 * siyu_engine::engine::MIN_PERSONS_PER_THREAD,
        "the parallel path must run"
    );
    assert_eq!(fingerprint(&one), fingerprint(&four));
}

#[test]
fn a_snapshot_streams_in_bounded_parts() {
    let mut a = Engine::new();
    for (i, e) in events(60_000).iter().enumerate() {
        a.apply(i as u64, e);
    }
    let mut parts = Vec::new();
    a.snapshot_parts(60_000, |p| parts.push(p.to_vec()));
    let whole = a.to_snapshot(60_000);
    assert!(whole.len() > 2 << 20, "{} bytes", whole.len());
    assert!(parts.len() >= 2, "{} parts", parts.len());
    assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= 1 << 20));
    assert_eq!(parts.concat(), whole);
}
