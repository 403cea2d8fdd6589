//! Realistic demo data, generated deterministically in Rust (no Python):
//! persons first seen on public platforms, moved into WeCom and the
//! mini-program, buying, reading messages, joining groups and inviting
//! friends over the last 180 days.

use anyhow::{Context, Result};
use serde_json::json;
use siyu_console::OperatorRole;
use siyu_domain::{parse_json_event, time::format_rfc3339, Event};
use siyu_server::config::Config;
use std::path::Path;

const PERSONS: u64 = 5_000;
/// Community groups `g00`… the demo's customers join (saved by [`crate::demo_api`]).
pub const GROUPS: usize = 12;
const DAY: i64 = 86_400;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Demo events ending at `now`, oldest first.
pub fn events(now: i64) -> Vec<Event> {
    let mut rng = Rng(0x005E_ED0F_5170);
    let mut talk = Rng(0x7A1C_0C0F_FEE5);
    let channels = [
        "douyin",
        "douyin",
        "douyin",
        "kuaishou",
        "xiaohongshu",
        "taobao",
        "offline",
        "wechat",
    ];
    let comments = [
        "求资料",
        "多少钱",
        "怎么买",
        "有优惠吗",
        "好看",
        "链接在哪",
        "还有货吗",
    ];
    let names = [
        "王芳", "李娜", "张伟", "刘洋", "陈静", "杨敏", "赵磊", "黄婷", "周杰", "吴霞",
    ];
    let cities = ["上海", "北京", "杭州", "深圳", "成都", "广州"];
    let mut raw: Vec<serde_json::Value> = Vec::new();
    // Customers in WeCom and when they arrived: the fission campaign's inviters.
    let mut friends: Vec<(String, i64)> = Vec::new();
    let start = now - 180 * DAY;
    for p in 0..PERSONS {
        let ch = channels[rng.below(channels.len() as u64) as usize];
        let public = format!("{ch}:{:012x}", rng.next() & 0xFFFF_FFFF_FFFF);
        let wecom = format!("wecom:wm{p:06}");
        let mut t = start + rng.below(170 * DAY as u64) as i64;
        let ev = |t: i64, id: &str, ty: &str| json!({"ts": format_rfc3339(t), "identity": id, "type": ty});
        raw.push(ev(t, &public, "touch"));
        if rng.chance(40) {
            let mut c = ev(t + 60, &public, "comment");
            c["text"] = json!(comments[rng.below(comments.len() as u64) as usize]);
            raw.push(c);
        }
        if !rng.chance(45) {
            continue;
        }
        t += rng.below(5 * DAY as u64) as i64;
        let mut link = ev(t, &wecom, "identify");
        link["ref"] = json!(public);
        link["traits"] = json!({
            "name": names[rng.below(names.len() as u64) as usize],
            "city": cities[rng.below(cities.len() as u64) as usize],
            "timezone": "Asia/Shanghai",
            "tags": if rng.chance(20) { vec!["vip"] } else { vec![] },
        });
        if rng.chance(60) {
            // The community operator who owns this customer (trait `operator`).
            link["traits"]["operator"] =
                json!(OPERATORS[rng.below(OPERATORS.len() as u64) as usize].0);
        }
        friends.push((wecom.clone(), t));
        let owner = link["traits"]["operator"].as_str().map(str::to_string);
        raw.push(link);
        raw.push(ev(t + 1, &wecom, "add_friend"));
        // A conversation in WeCom over the last two weeks: the customer
        // asks, the owner (else the console's `operator`) answers most,
        // some are resolved; the newest wait in the inbox. Its own random
        // stream, so the rest of the history stays as it was.
        if talk.chance(30) {
            let mut at = now - 1 - talk.below(14 * DAY as u64) as i64;
            let by = owner.clone().unwrap_or_else(|| "operator".into());
            for turn in 0..1 + talk.below(3) {
                let mut c = ev(at, &wecom, "comment");
                c["id"] = json!(format!("demo-chat-{p}-{turn}"));
                c["text"] = json!(ASKS[talk.below(ASKS.len() as u64) as usize]);
                raw.push(c);
                at += 60 + talk.below(3600) as i64;
                if at >= now || !talk.chance(75) {
                    break;
                }
                let mut r = ev(at, &wecom, "message_sent");
                r["id"] = json!(format!("demo-reply-{p}-{turn}"));
                r["properties"] = json!({
                    "reply": true,
                    "operator": by,
                    "text": ANSWERS[talk.below(ANSWERS.len() as u64) as usize],
                });
                raw.push(r);
                at += 600 + talk.below(2 * DAY as u64) as i64;
                if at >= now {
                    break;
                }
            }
            if at < now && talk.chance(30) {
                let mut r = ev(at, &wecom, "custom");
                r["name"] = json!("conversation_resolved");
                r["id"] = json!(format!("demo-resolved-{p}"));
                raw.push(r);
            }
        }
        if rng.chance(30) {
            let mut j = ev(t + 3600, &wecom, "join_group");
            j["group"] = json!(format!("g{:02}", rng.below(GROUPS as u64)));
            raw.push(j);
        }
        if rng.chance(25) && p > 10 {
            let invitee = format!("douyin:{:012x}", rng.next() & 0xFFFF_FFFF_FFFF);
            let mut r = ev(t + 7200, &invitee, "referral_signup");
            r["ref"] = json!(wecom);
            raw.push(r);
            if rng.chance(60) {
                let mut b = ev(t + 3 * DAY, &invitee, "purchase");
                b["amount"] = json!(9_900 + rng.below(20_000) as i64);
                raw.push(b);
            }
        }
        let mut when = t;
        for _ in 0..rng.below(8) {
            when += rng.below(20 * DAY as u64) as i64;
            if when >= now {
                break;
            }
            raw.push(ev(when, &wecom, "message_sent"));
            if rng.chance(60) {
                raw.push(ev(when + 1800, &wecom, "message_read"));
            }
            if rng.chance(35) {
                let mut b = ev(when + 7200, &wecom, "purchase");
                b["channel"] = json!(if rng.chance(50) {
                    "miniprogram"
                } else {
                    "wecom"
                });
                b["amount"] = json!(4_900 + rng.below(60_000) as i64);
                let amount = b["amount"].clone();
                raw.push(b);
                if rng.chance(5) {
                    let mut r = ev(when + 5 * DAY, &wecom, "refund");
                    r["amount"] = amount;
                    raw.push(r);
                }
            }
        }
        if rng.chance(3) {
            raw.push(ev(when + DAY, &wecom, "opt_out"));
        }
    }
    let mut events: Vec<Event> = raw
        .iter()
        .filter_map(|v| parse_json_event(v).ok())
        .collect();
    events.extend(campaign_signups(&mut rng, &friends, now));
    events.extend(partner_arrivals(now));
    events.retain(|e| e.ts < now);
    events.sort_by_key(|e| e.ts);
    for (i, e) in events.iter_mut().enumerate() {
        // Signups keep the id the signup route gives them (one per invitee
        // and campaign), so a real signup later is not counted twice.
        e.id.get_or_insert_with(|| format!("demo-{i}"));
    }
    events
}

/// The fission campaign of the demo (saved by [`crate::demo_api`]).
pub const CAMPAIGN: &str = "double11";

/// Invitees per inviter in the demo campaign: one inviter past the second
/// tier (10), a few past the first (3), the rest below it.
const INVITES: [u64; 14] = [12, 6, 4, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1];

/// Signups through the demo campaign over its last 30 days, made by the
/// same core function the public signup route uses
/// (`siyu_growth::fission::signup_event`); most invitees buy within a few
/// days (valid once the hold passes), and two of them share the device of
/// a third, so the anti-fraud rule has something to flag.
fn campaign_signups(rng: &mut Rng, friends: &[(String, i64)], now: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let inviters = friends.iter().filter(|(_, t)| *t < now - 40 * DAY);
    let mut shared_device = None;
    for ((inviter, _), invites) in inviters.step_by(97).zip(INVITES) {
        for n in 0..invites {
            let invitee = format!("douyin:{:012x}", rng.next() & 0xFFFF_FFFF_FFFF);
            let at = now - 2 * DAY - rng.below(28 * DAY as u64) as i64;
            let ip = format!(
                "10.{}.{}.{}",
                rng.below(200),
                rng.below(250),
                1 + rng.below(250)
            );
            let device = match (&shared_device, invites == 4 && n < 3) {
                (Some(d), true) => String::clone(d),
                _ => format!("dev-{:08x}", rng.next() & 0xFFFF_FFFF),
            };
            if invites == 4 && n == 0 {
                shared_device = Some(device.clone());
            }
            let Ok(signup) = siyu_growth::fission::signup_event(
                CAMPAIGN,
                &invitee,
                inviter,
                &ip,
                Some(&device),
                at,
            ) else {
                continue;
            };
            out.push(signup);
            if rng.chance(70) {
                let bought = json!({
                    "ts": format_rfc3339(at + 3600 + rng.below(4 * DAY as u64) as i64),
                    "identity": invitee, "type": "purchase", "channel": "miniprogram",
                    "amount": 9_900 + rng.below(20_000) as i64,
                });
                out.extend(parse_json_event(&bought).ok());
            }
        }
    }
    out
}

/// The demo's partners (saved by [`crate::demo_api`]): (id, definition).
pub fn partners() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "koc_amay",
            json!({"name": "小红书达人 · 阿May", "kind": "koc", "identity": "xiaohongshu:koc_amay",
                   "commission": {"rate_bp": 1000, "tiers": [{"from": 300_000, "rate_bp": 1200}]},
                   "attribution": {"window": "30d"}, "hold": "7d", "fees": 200_000, "live_code": "vip"}),
        ),
        (
            "mcn_star",
            json!({"name": "星火 MCN", "kind": "mcn", "identity": "douyin:mcn_star",
                   "commission": {"rate_bp": 800}, "attribution": {"window": "30d"}, "hold": "7d", "fees": 500_000}),
        ),
    ]
}

/// Arrivals through the demo partners' links over the last 40 days, made
/// by the same core function the arrival routes use
/// (`siyu_growth::partners::arrival_event`); most arrivals buy within
/// five days, some again, a few refund. Its own generator: the rest of
/// the demo stays as it was.
fn partner_arrivals(now: i64) -> Vec<Event> {
    let mut rng = Rng(0x9A27_4E55_0001);
    let mut out = Vec::new();
    for (id, definition) in partners() {
        let mut definition = definition;
        definition["id"] = id.into();
        let Ok(partner) = serde_json::from_value::<siyu_growth::partners::Partner>(definition)
        else {
            continue;
        };
        let (channel, fans) = if id == "koc_amay" {
            ("xiaohongshu", 36)
        } else {
            ("douyin", 20)
        };
        for n in 0..fans {
            let Ok(who) = siyu_domain::Identity::parse(&format!("{channel}:{id}_fan{n:02}")) else {
                continue;
            };
            let at = now - DAY - rng.below(40 * DAY as u64) as i64;
            let device = format!("dev-{:08x}", rng.next() & 0xFFFF_FFFF);
            let Ok(arrival) =
                siyu_growth::partners::arrival_event(&partner, &who, Some(&device), at)
            else {
                continue;
            };
            out.push(arrival);
            let mut bought = at + 3600 + rng.below(5 * DAY as u64) as i64;
            for order in 0..2 {
                if (order == 0 && !rng.chance(75)) || (order == 1 && !rng.chance(25)) {
                    break;
                }
                let amount = 9_900 + rng.below(30_000) as i64;
                let order_id = format!("P-{id}-{n:02}-{order}");
                let purchase = json!({"ts": format_rfc3339(bought), "identity": who.as_str(), "type": "purchase",
                    "channel": channel, "amount": amount, "properties": {"order_id": order_id}});
                out.extend(parse_json_event(&purchase).ok());
                if rng.chance(10) {
                    let refund = json!({"ts": format_rfc3339(bought + 2 * DAY), "identity": who.as_str(), "type": "refund",
                        "channel": channel, "amount": amount, "properties": {"order_id": order_id}});
                    out.extend(parse_json_event(&refund).ok());
                }
                bought += 3 * DAY + rng.below(10 * DAY as u64) as i64;
            }
        }
    }
    out
}

/// The demo's community operators: (login, name).
/// What demo customers ask in WeCom, and what operators answer.
const ASKS: [&str; 6] = [
    "在吗",
    "什么时候发货",
    "能开发票吗",
    "尺码偏大吗",
    "优惠券怎么用",
    "退货地址是哪里",
];
const ANSWERS: [&str; 5] = [
    "在的，您请说",
    "今天下单明天发货",
    "可以开，下单时备注抬头即可",
    "偏大半码，建议选小一码",
    "已为您登记，稍后回复您",
];

pub const OPERATORS: [(&str, &str); 3] =
    [("op_wang", "小王"), ("op_li", "小李"), ("op_chen", "小陈")];

/// Console logins of the demo (printed by `siyu demo`): (login, password, role).
pub const DEMO_LOGINS: [(&str, &str, OperatorRole); 3] = [
    ("admin", "siyu-demo", OperatorRole::Admin),
    ("operator", "siyu-demo", OperatorRole::Operator),
    ("analyst", "siyu-demo", OperatorRole::Analyst),
];

/// Creates the demo console logins that do not exist yet.
fn ensure_demo_logins(store: &mut dyn siyu_store::Store) -> Result<()> {
    use siyu_console::accounts;
    let now = siyu_server::writer::wall_clock();
    for (login, password, role) in DEMO_LOGINS {
        if accounts::get_operator(store, login)?.is_none() {
            accounts::put_operator(store, login, password, role, now)?;
        }
    }
    Ok(())
}

/// The demo's keys: `full` (ingest, read, write, erase: what every key
/// could do before scopes) and `ingest` (send events only, the key to put
/// into SDKs and apps), also written to `demo-write-key.txt` and
/// `demo-ingest-key.txt` in the data dir.
pub struct DemoKeys {
    pub full: String,
    pub ingest: String,
}

/// Reads the ingest key file, or creates the key (a demo dir from before
/// ingest keys) and writes the file.
fn ingest_key(store: &mut dyn siyu_store::Store, file: &std::path::Path) -> Result<String> {
    if let Ok(k) = std::fs::read_to_string(file) {
        return Ok(k.trim().to_string());
    }
    let key = siyu_server::auth::create_key(
        store,
        "demo-ingest",
        siyu_server::auth::Scopes::of(&[siyu_server::auth::Scope::Ingest]),
        siyu_server::writer::wall_clock(),
    )?;
    std::fs::write(file, &key).with_context(|| format!("writing {}", file.display()))?;
    Ok(key)
}

/// Written first into a data dir the demo fills: the dir holds demo data
/// only, so a later `siyu demo` may use it again.
pub const MARKER_FILE: &str = "siyu-demo.marker";
/// The demo's write key (printed, and kept here for the next run).
pub const KEY_FILE: &str = "demo-write-key.txt";
/// The demo's admin token, random per demo dir (printed, and kept here).
pub const ADMIN_TOKEN_FILE: &str = "demo-admin-token.txt";

/// Written into the data dir once the demo's definitions are saved
/// ([`crate::demo_api::seed`]): a later start leaves them as they are.
pub const SEEDED_FILE: &str = "demo-definitions-saved.marker";

/// What `siyu demo` prints (the credentials of its data) and whether its
/// definitions are still to be saved once the server is up.
pub struct DemoCredentials {
    pub keys: DemoKeys,
    pub admin_token: String,
    pub seed_definitions: bool,
}

/// Whether `siyu demo` may fill `data_dir`: yes when it made the dir (the
/// marker, or the key file of a demo from before the marker) or the dir
/// is empty; otherwise an error naming the dir and what to do instead.
/// Returns whether the dir is a demo dir already.
fn claim_data_dir(data_dir: &Path) -> Result<bool> {
    if data_dir.join(MARKER_FILE).exists() || data_dir.join(KEY_FILE).exists() {
        return Ok(true);
    }
    let mut found: Vec<String> = std::fs::read_dir(data_dir)
        .with_context(|| format!("reading {}", data_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if found.is_empty() {
        return Ok(false);
    }
    found.sort();
    found.truncate(3);
    anyhow::bail!(
        "{dir} holds data that `siyu demo` did not create ({files}): the demo fills its data dir with sample customers, keys and logins, so it only uses an empty directory or one it made. Give it a new directory (`siyu demo --data-dir ./siyu-demo-data-2`), or serve this data with `siyu serve --data-dir {dir}`",
        dir = data_dir.display(),
        files = found.join(", ")
    )
}

/// The demo's admin token: the one configured, else the one kept in the
/// demo dir, else a new random one (written there, readable by the owner only).
fn admin_token(config: &Config) -> Result<String> {
    if let Some(t) = &config.admin_token {
        return Ok(t.clone());
    }
    let file = config.data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&file) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let bytes = siyu_console::accounts::random_bytes::<24>().context("reading random bytes")?;
    let token = format!("adm_{}", siyu_console::accounts::hex(&bytes));
    write_private(&file, &token)?;
    Ok(token)
}

/// Writes `text` to a new file only its owner can read (on Unix).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Fills a fresh demo store (history, keys, logins; the definitions are
/// saved through the API once the server is up) unless it
/// already holds demo data; refuses a data dir (or database) holding
/// anything else. Sets the config's admin token to the demo's when none
/// was given; returns the credentials to print.
pub fn prepare(config: &mut Config) -> Result<DemoCredentials> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let is_demo_dir = claim_data_dir(&data_dir)?;
    let mut store = config.open_store().context("opening the demo store")?;
    if !is_demo_dir {
        // An empty dir, but the store may be a database server's.
        if store.last_offset()? > 0 || !store.list_settings("")?.is_empty() {
            anyhow::bail!(
                "the database of this demo already holds data that `siyu demo` did not create: give the demo its own database or schema (`--database-schema siyu_demo`), or serve this data with `siyu serve`"
            );
        }
        std::fs::write(
            data_dir.join(MARKER_FILE),
            "siyu demo data: `siyu demo` may reuse this directory\n",
        )
        .with_context(|| format!("writing {}", data_dir.join(MARKER_FILE).display()))?;
    }
    let admin_token = admin_token(config)?;
    config.admin_token = Some(admin_token.clone());
    let key_file = data_dir.join(KEY_FILE);
    let ingest_file = data_dir.join("demo-ingest-key.txt");
    ensure_demo_logins(store.as_mut())?;
    if store.last_offset()? > 0 {
        if let Ok(k) = std::fs::read_to_string(&key_file) {
            return Ok(DemoCredentials {
                keys: DemoKeys {
                    full: k.trim().to_string(),
                    ingest: ingest_key(store.as_mut(), &ingest_file)?,
                },
                admin_token,
                seed_definitions: !data_dir.join(SEEDED_FILE).exists(),
            });
        }
    }
    let now = siyu_server::writer::wall_clock();
    let mut events = events(now);
    // As the server and `siyu import` store them: comments with their intent.
    siyu_server::intents::annotate(&mut events);
    for chunk in events.chunks(5_000) {
        store.append(chunk)?;
    }
    let key = siyu_server::auth::create_key(
        store.as_mut(),
        "demo",
        siyu_server::auth::Scopes::LEGACY,
        now,
    )?;
    std::fs::write(&key_file, &key).with_context(|| format!("writing {}", key_file.display()))?;
    std::fs::remove_file(&ingest_file).ok();
    let ingest = ingest_key(store.as_mut(), &ingest_file)?;
    println!(
        "demo data: {} events for {} customers written to {}",
        events.len(),
        PERSONS,
        data_dir.display()
    );
    Ok(DemoCredentials {
        keys: DemoKeys { full: key, ingest },
        admin_token,
        seed_definitions: true,
    })
}
