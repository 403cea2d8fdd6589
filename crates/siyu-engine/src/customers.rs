//! The customer list: persons filtered by what an operator picks in the
//! console (saved segment, tag, channel, owner, RFM layer, spend and
//! last-seen ranges, a search box), sorted by a column and cut into a
//! page, with the total count.
//!
//! Why here and not in the server: it is one pass over the persons the
//! engine already holds (split over the engine's threads like the
//! analytics, [`Engine::fold_persons`]), reading the same fields the
//! segment language reads — live segment membership, tags, the `operator`
//! trait, [`crate::rfm::layer_of`] against the thresholds the segments
//! use — so the list and a segment never disagree. The caller holds the
//! engine's read lock for the pass and copies the page's rows out.

use crate::engine::{Engine, PersonId};
use crate::identity::IdentityId;
use crate::person::{Person, NO_TS};
use crate::rfm::{layer_of, RfmLayer, RfmThresholds};

/// What to keep. Every field narrows; an empty filter keeps everyone.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Members of the live segment with this index
    /// (`LiveSegments::index_of`).
    pub segment: Option<u32>,
    /// Persons carrying this tag.
    pub tag: Option<String>,
    /// Persons with an identity on this channel (`<channel>:…`).
    pub channel: Option<String>,
    /// Persons whose owner (trait `operator`) is this login.
    pub owner: Option<String>,
    /// Buyers in this RFM layer against these thresholds.
    pub rfm: Option<(RfmLayer, RfmThresholds)>,
    /// Net spend (fen) at least / at most.
    pub spend_min: Option<i64>,
    pub spend_max: Option<i64>,
    /// Last event (epoch seconds) at or after / at or before.
    pub last_seen_from: Option<i64>,
    pub last_seen_to: Option<i64>,
    pub search: Option<Search>,
    /// Only these persons (explicit ids of a bulk action), sorted.
    pub only: Option<Vec<PersonId>>,
}

/// The search box: a person matches when their name or nickname (traits)
/// contains `text`, one of their identities starts with it, or they are
/// one of `persons` (sorted: those a phone number names, by its keyed
/// hash or their `phone` trait — the caller normalizes and hashes, the
/// engine holds no secret and no phone rules).
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub text: String,
    pub persons: Vec<PersonId>,
}

/// The sortable columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    LastSeen,
    Spend,
    Orders,
    FirstSeen,
    Name,
}

impl SortKey {
    pub const ALL: [(&'static str, SortKey); 5] = [
        ("last_seen", SortKey::LastSeen),
        ("spend", SortKey::Spend),
        ("orders", SortKey::Orders),
        ("first_seen", SortKey::FirstSeen),
        ("name", SortKey::Name),
    ];

    pub fn parse(s: &str) -> Option<SortKey> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }
}

/// A person's owner: their trait `operator`.
pub fn owner_of(p: &Person) -> Option<&str> {
    p.extra.as_deref()?.traits().get("operator")?.as_str()
}

/// The name a list shows: trait `name`, else `nickname` (None: neither).
pub fn name_of(p: &Person) -> Option<&str> {
    let t = p.extra.as_deref()?.traits();
    t.get("name")
        .and_then(|v| v.as_str())
        .or_else(|| t.get("nickname").and_then(|v| v.as_str()))
}

fn trait_contains(p: &Person, key: &str, text: &str) -> bool {
    p.extra
        .as_deref()
        .and_then(|e| e.traits().get(key))
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.contains(text) || (text.is_ascii() && contains_ascii_ci(v, text)))
}

fn contains_ascii_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The identities of the person whose ring holds `anchor`, without allocating.
fn ring(engine: &Engine, anchor: IdentityId) -> impl Iterator<Item = &str> + '_ {
    let mut cur = Some(anchor);
    std::iter::from_fn(move || {
        let id = cur?;
        let next = engine.ids.next_in_ring(id);
        cur = (next != anchor).then_some(next);
        Some(engine.ids.get(id))
    })
}

impl Filter {
    /// Whether `p` (in `slot`) passes, at engine time `now`.
    pub fn keeps(&self, engine: &Engine, slot: PersonId, p: &Person, now: i64) -> bool {
        if let Some(only) = &self.only {
            if only.binary_search(&slot).is_err() {
                return false;
            }
        }
        let spend = p.net_spend();
        if self.spend_min.is_some_and(|m| spend < m) || self.spend_max.is_some_and(|m| spend > m) {
            return false;
        }
        let seen = last_seen(p);
        if self
            .last_seen_from
            .is_some_and(|f| seen.is_none_or(|s| s < f))
            || self
                .last_seen_to
                .is_some_and(|t| seen.is_none_or(|s| s > t))
        {
            return false;
        }
        if let Some(i) = self.segment {
            if !engine.segments.is_member(i, slot) {
                return false;
            }
        }
        if let Some(tag) = &self.tag {
            let has = p
                .extra
                .as_deref()
                .is_some_and(|e| e.tags().binary_search(tag).is_ok());
            if !has {
                return false;
            }
        }
        if let Some(owner) = &self.owner {
            if owner_of(p) != Some(owner.as_str()) {
                return false;
            }
        }
        if let Some((layer, t)) = &self.rfm {
            if layer_of(p, now, t) != Some(*layer) {
                return false;
            }
        }
        if let Some(ch) = &self.channel {
            let on = ring(engine, p.canonical).any(|id| {
                id.strip_prefix(ch.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
            });
            if !on {
                return false;
            }
        }
        if let Some(s) = &self.search {
            let hit = s.persons.binary_search(&slot).is_ok()
                || trait_contains(p, "name", &s.text)
                || trait_contains(p, "nickname", &s.text)
                || ring(engine, p.canonical).any(|id| id.starts_with(s.text.as_str()));
            if !hit {
                return false;
            }
        }
        true
    }
}

/// The person's last event, if they have any.
pub fn last_seen(p: &Person) -> Option<i64> {
    (p.events > 0).then_some(p.last_event_ts as i64)
}

/// One sort key value; absent values sort last in either direction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Num(i64),
    Text(&'a str),
}

fn key_of<'a>(engine: &'a Engine, p: &'a Person, sort: SortKey) -> Option<Key<'a>> {
    match sort {
        SortKey::LastSeen => last_seen(p).map(Key::Num),
        SortKey::Spend => Some(Key::Num(p.net_spend())),
        SortKey::Orders => Some(Key::Num(p.purchase_count() as i64)),
        SortKey::FirstSeen => (p.first_ts != NO_TS).then_some(Key::Num(p.first_ts as i64)),
        SortKey::Name => Some(Key::Text(
            name_of(p).unwrap_or_else(|| engine.ids.get(p.canonical)),
        )),
    }
}

/// A page of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// How many persons the filter keeps.
    pub total: usize,
    /// The persons of the page, in order.
    pub slots: Vec<PersonId>,
}

/// The persons `filter` keeps, sorted by `sort` (descending when `desc`;
/// ties by slot, so pages never overlap), from `offset`, at most `limit`.
/// One pass over the persons on the engine's threads, then a partial
/// sort of what the page needs.
pub fn page(
    engine: &Engine,
    filter: &Filter,
    sort: SortKey,
    desc: bool,
    offset: usize,
    limit: usize,
) -> Page {
    let mut hits = matches(engine, filter, sort);
    let total = hits.len();
    let cmp = |a: &(Option<Key>, PersonId), b: &(Option<Key>, PersonId)| {
        let by_key = match (&a.0, &b.0) {
            (Some(x), Some(y)) if desc => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_key.then(a.1.cmp(&b.1))
    };
    let end = offset.saturating_add(limit).min(total);
    if offset >= end {
        return Page {
            total,
            slots: Vec::new(),
        };
    }
    if end < total {
        hits.select_nth_unstable_by(end, cmp);
        hits.truncate(end);
    }
    if offset > 0 {
        hits.select_nth_unstable_by(offset, cmp);
        hits.drain(..offset);
    }
    hits.sort_unstable_by(cmp);
    Page {
        total,
        slots: hits.into_iter().map(|(_, s)| s).collect(),
    }
}

/// Every person `filter` keeps, sorted like [`page`] (for bulk actions
/// and the CSV export).
pub fn all(engine: &Engine, filter: &Filter, sort: SortKey, desc: bool) -> Vec<PersonId> {
    page(engine, filter, sort, desc, 0, usize::MAX).slots
}

fn matches<'a>(
    engine: &'a Engine,
    filter: &Filter,
    sort: SortKey,
) -> Vec<(Option<Key<'a>>, PersonId)> {
    let now = engine.now();
    if let Some(only) = &filter.only {
        // A handful of explicit ids: no pass over everyone.
        return only
            .iter()
            .filter_map(|&s| engine.person(s).map(|p| (s, p)))
            .filter(|(s, p)| filter.keeps(engine, *s, p, now))
            .map(|(s, p)| (key_of(engine, p, sort), s))
            .collect();
    }
    engine.fold_persons(
        |it| {
            it.filter(|(s, p)| filter.keeps(engine, *s, p, now))
                // The slot's person again, borrowed for the engine's
                // lifetime rather than the pass's.
                .map(|(s, _)| (key_of(engine, &engine.persons[s as usize], sort), s))
                .collect::<Vec<_>>()
        },
        |mut a, b| {
            a.extend(b);
            a
        },
    )
}

/// The thresholds an RFM filter reads: the engine's pinned ones (what the
/// segments use), else the buyers' medians now.
pub fn rfm_thresholds(engine: &Engine) -> Option<RfmThresholds> {
    engine
        .rfm_basis()
        .map(|b| b.thresholds)
        .or_else(|| crate::rfm::median_thresholds(engine, engine.now()))
}

/// The identities of `slot`'s person, at most `max`, sorted with the
/// canonical one first.
pub fn main_identities(engine: &Engine, slot: PersonId, max: usize) -> Vec<String> {
    let Some(p) = engine.person(slot) else {
        return Vec::new();
    };
    let canonical = engine.ids.get(p.canonical);
    let mut rest: Vec<&str> = ring(engine, p.canonical)
        .filter(|i| *i != canonical)
        .collect();
    rest.sort_unstable();
    std::iter::once(canonical)
        .chain(rest)
        .take(max)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use siyu_domain::Event;

    fn ev(json: &str) -> Event {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        siyu_domain::wire::parse_json_event(&v).expect("valid event")
    }

    fn engine() -> Engine {
        let mut e = Engine::new();
        let events = [
            r#"{"ts":"2026-01-01T00:00:00Z","identity":"wecom:a","type":"identify","traits":{"name":"张三","tags":["vip"],"operator":"li"}}"#,
            r#"{"ts":"2026-01-02T00:00:00Z","identity":"wecom:a","type":"purchase","amount":5000}"#,
            r#"{"ts":"2026-01-03T00:00:00Z","identity":"douyin:b","type":"touch"}"#,
            r#"{"ts":"2026-01-04T00:00:00Z","identity":"wecom:c","type":"identify","traits":{"nickname":"小李"},"ref":"douyin:c"}"#,
            r#"{"ts":"2026-01-05T00:00:00Z","identity":"wecom:c","type":"purchase","amount":9000}"#,
        ];
        for (i, j) in events.iter().enumerate() {
            e.apply(i as u64, &ev(j));
        }
        e
    }

    fn names(e: &Engine, slots: &[PersonId]) -> Vec<String> {
        slots
            .iter()
            .map(|&s| e.canonical_id(s).to_string())
            .collect()
    }

    #[test]
    fn filters_sort_and_pages() {
        let e = engine();
        let all = page(&e, &Filter::default(), SortKey::Spend, true, 0, 10);
        assert_eq!(all.total, 3);
        assert_eq!(names(&e, &all.slots), ["douyin:c", "wecom:a", "douyin:b"]);
        let second = page(&e, &Filter::default(), SortKey::Spend, true, 1, 1);
        assert_eq!(
            (second.total, names(&e, &second.slots)),
            (3, vec!["wecom:a".to_string()])
        );
        let f = Filter {
            tag: Some("vip".into()),
            ..Default::default()
        };
        assert_eq!(names(&e, &all_of(&e, &f)), ["wecom:a"]);
        let f = Filter {
            channel: Some("douyin".into()),
            ..Default::default()
        };
        assert_eq!(names(&e, &all_of(&e, &f)), ["douyin:b", "douyin:c"]);
        let f = Filter {
            owner: Some("li".into()),
            spend_min: Some(5000),
            ..Default::default()
        };
        assert_eq!(names(&e, &all_of(&e, &f)), ["wecom:a"]);
        let f = Filter {
            spend_min: Some(5001),
            ..Default::default()
        };
        assert_eq!(names(&e, &all_of(&e, &f)), ["douyin:c"]);
        for (text, who) in [
            ("张", "wecom:a"),
            ("小李", "douyin:c"),
            ("douyin:b", "douyin:b"),
        ] {
            let f = Filter {
                search: Some(Search {
                    text: text.into(),
                    persons: Vec::new(),
                }),
                ..Default::default()
            };
            assert_eq!(names(&e, &all_of(&e, &f)), [who], "search {text}");
        }
    }

    fn all_of(e: &Engine, f: &Filter) -> Vec<PersonId> {
        all(e, f, SortKey::Name, false)
    }

    /// The time of one list request on a million persons (not a timed
    /// assertion: run it to measure, in release:
    /// `cargo test --release -p siyu-engine --lib customers::tests::one_million -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn one_million_persons() {
        use siyu_domain::{Channel, EventType, Identity, Traits};
        let names = [
            "王芳", "李娜", "张伟", "刘洋", "陈静", "杨敏", "赵磊", "黄婷", "周杰", "吴霞",
        ];
        let wecom = Channel::parse("wecom").unwrap();
        let built = std::time::Instant::now();
        let mut e = Engine::new();
        let mut seq = 0u64;
        let base = 1_780_000_000i64;
        for i in 0..1_000_000u64 {
            let id = Identity::parse(&format!("wecom:c{i:07}")).unwrap();
            let ts = base + (i as i64 * 7919) % 15_000_000;
            let mut ev = Event::new(ts, id.clone(), EventType::Identify, wecom.clone());
            let mut t = Traits {
                name: Some(format!("{}{}", names[(i % 10) as usize], i % 1000)),
                ..Traits::default()
            };
            if i % 10 == 0 {
                t.tags.push("vip".into());
            }
            t.extra
                .insert("operator".into(), format!("op{}", i % 20).into());
            ev.traits = Some(t);
            e.apply(seq, &ev);
            seq += 1;
            if i % 5 < 2 {
                let mut p = Event::new(ts + 3600, id, EventType::Purchase, wecom.clone());
                p.amount = 1000 + (i as i64 * 31) % 90_000;
                e.apply(seq, &p);
                seq += 1;
            }
        }
        e.advance_to(base + 15_000_000);
        eprintln!(
            "built {} persons in {:?}",
            e.person_count(),
            built.elapsed()
        );
        let t = rfm_thresholds(&e).unwrap();
        // A layer some buyers are in: the first buyer's.
        let buyer = e.person(e.person_of("wecom:c0000001").unwrap()).unwrap();
        let layer = layer_of(buyer, e.now(), &t).unwrap();
        let cases: Vec<(&str, Filter, SortKey)> = vec![
            (
                "everyone, last_seen desc",
                Filter::default(),
                SortKey::LastSeen,
            ),
            ("everyone, name asc", Filter::default(), SortKey::Name),
            (
                "tag=vip, spend desc",
                Filter {
                    tag: Some("vip".into()),
                    ..Default::default()
                },
                SortKey::Spend,
            ),
            (
                "owner=op1 + spend 10000..50000",
                Filter {
                    owner: Some("op1".into()),
                    spend_min: Some(10_000),
                    spend_max: Some(50_000),
                    ..Default::default()
                },
                SortKey::LastSeen,
            ),
            (
                "rfm=<a buyer's layer>",
                Filter {
                    rfm: Some((layer, t)),
                    ..Default::default()
                },
                SortKey::LastSeen,
            ),
            (
                "channel=wecom",
                Filter {
                    channel: Some("wecom".into()),
                    ..Default::default()
                },
                SortKey::LastSeen,
            ),
            (
                "q=张伟42",
                Filter {
                    search: Some(Search {
                        text: "张伟42".into(),
                        persons: Vec::new(),
                    }),
                    ..Default::default()
                },
                SortKey::LastSeen,
            ),
        ];
        for threads in [1, 2] {
            e.set_parallelism(threads);
            for (label, f, sort) in &cases {
                let mut best = std::time::Duration::MAX;
                let mut total = 0;
                for _ in 0..3 {
                    let at = std::time::Instant::now();
                    let p = page(&e, f, *sort, *sort != SortKey::Name, 100, 50);
                    best = best.min(at.elapsed());
                    total = p.total;
                }
                eprintln!(
                    "{threads} thread(s) | {label:<34} | total {total:>7} | best of 3: {best:?}"
                );
            }
        }
    }
}
