//! `siyu analytics`: the operator's questions from the command line, over
//! the brand's own store, through the same engine and analytics code as
//! the server. Output is CSV (or JSON) on stdout. Dates are the
//! workspace's (its stored time zone, `siyu_server::zone`): `--from`/`--to`
//! on ROI, the funnel, attribution and LTV, Monday-to-Monday local cohort
//! weeks; ranged answers name the zone and range on stderr (stdout stays
//! CSV).

use crate::data::{engine_from_store, StoreArgs};
use anyhow::{bail, Context, Result};
use siyu_automation::schedule;
use siyu_commerce::spend;
use siyu_domain::{duration, EventType, DAY};
use siyu_engine::rfm::{layer_report, RfmSource, RfmThresholds};
use siyu_engine::scan::{self, FunnelStep};
use siyu_engine::{analytics, Engine, RawEvent};
use siyu_server::zone::{self, DateRange, LocalWeeks};
use std::fmt::Write as _;

#[derive(clap::Args)]
pub struct AnalyticsArgs {
    #[command(subcommand)]
    pub question: Question,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The clock, epoch seconds (default: now).
    #[arg(long, global = true)]
    pub now: Option<i64>,
    /// Start of the range (roi, funnel, attribution, ltv): YYYY-MM-DD in the
    /// workspace time zone, or an RFC 3339 instant.
    #[arg(long, global = true)]
    pub from: Option<String>,
    /// End of the range, inclusive (a date through its last instant).
    #[arg(long, global = true)]
    pub to: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Question {
    /// RFM grid: persons per (r, f, m) cell.
    Rfm,
    /// First-touch funnel per channel: entered → friended → converted.
    Funnel {
        /// How soon after the first touch the add_friend counts: a duration
        /// (36h, 7d, 2w; units s, m, h, d, w) or a number of days.
        #[arg(long = "friend-within", visible_alias = "friend-days", default_value = "7d", value_parser = days_or_duration)]
        friend_within: i64,
        /// How soon after the add_friend the purchase counts (like --friend-within).
        #[arg(long = "convert-within", visible_alias = "convert-days", default_value = "30d", value_parser = days_or_duration)]
        convert_within: i64,
    },
    /// Funnel over any steps, e.g. `--step touch --step add_friend:7d --step purchase:30d`.
    Steps {
        /// TYPE[@CHANNEL][:WINDOW] with WINDOW a duration like 7d, 12h or 1d12h (units s, m, h, d, w; from the previous step).
        #[arg(long = "step", required = true)]
        steps: Vec<String>,
        /// Split persons by the channel of their first step.
        #[arg(long)]
        split_by_channel: bool,
    },
    /// Weekly cohort retention by first add_friend (weeks from Monday 00:00 local).
    Cohorts {
        /// Cohort week 0 is the local week holding this instant (epoch seconds; default: now − 364 days).
        #[arg(long)]
        t0: Option<i64>,
        #[arg(long, default_value_t = 13)]
        weeks: usize,
    },
    /// Referral tiers and top inviters.
    Referrals {
        /// How soon after the signup the invitee's purchase counts: a
        /// duration (36h, 14d, 2w) or a number of days.
        #[arg(long = "convert-within", visible_alias = "convert-days", default_value = "14d", value_parser = days_or_duration)]
        convert_within: i64,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The eight RFM value layers (重要价值客户 … 一般挽留客户): persons,
    /// revenue, their shares and revenue per person against the average
    /// buyer, under the workspace's thresholds (PUT /v1/settings/rfm), else
    /// the buyers' medians; each flag given replaces one threshold.
    RfmLayers {
        #[arg(long)]
        recency_days: Option<u32>,
        #[arg(long)]
        frequency: Option<u32>,
        /// Net spend in cents.
        #[arg(long)]
        monetary_cents: Option<i64>,
    },
    /// Channel ROI: spend (saved with PUT /v1/spend) against first-touch revenue.
    Roi,
    /// Revenue by channel under first-touch, last-touch and linear attribution.
    Attribution,
    /// Repurchase rate and median interval.
    Repurchase,
    /// Historical LTV by first-seen month and channel.
    Ltv,
}

/// A span flag's value in seconds: a duration in the one syntax every
/// body takes (`siyu_domain::duration`: "36h", "7d", "2w", "1d12h") or, as
/// these flags always took, a bare number of days.
fn days_or_duration(given: &str) -> Result<i64, String> {
    let text = given.trim();
    if let Ok(days) = text.parse::<i64>() {
        if days < 0 {
            return Err("negative spans are not allowed; give a duration such as 36h, 7d or 2w (units s, m, h, d, w) or a number of days".into());
        }
        return days.checked_mul(DAY).ok_or_else(|| "too large".to_string());
    }
    duration::parse(text).map_err(|e| {
        format!(
            "{}; give a duration such as 36h, 7d or 2w (units s, m, h, d, w) or a number of days",
            e.message
        )
    })
}

fn parse_step(s: &str) -> Result<FunnelStep> {
    let (head, window) = match s.split_once(':') {
        Some((h, w)) => (h, Some(w)),
        None => (s, None),
    };
    let (ty, channel) = match head.split_once('@') {
        Some((t, c)) => (t, Some(c.to_string())),
        None => (head, None),
    };
    let event_type = EventType::parse(ty).with_context(|| {
        format!("step `{s}`: `{ty}` is not an event type (touch, add_friend, purchase, …)")
    })?;
    let within = window
        .map(|w| {
            duration::parse(w).map_err(|e| {
                anyhow::anyhow!(
                    "--step `{s}`: window `{w}`: {}; write a duration such as 30m, 12h, 7d or 1d12h (units s, m, h, d, w)",
                    e.message
                )
            })
        })
        .transpose()?;
    Ok(FunnelStep {
        event_type,
        channel,
        within,
    })
}

pub fn run(args: AnalyticsArgs) -> Result<()> {
    let mut store = args.store.open()?;
    let mut engine: Engine = engine_from_store(store.as_mut(), &args.store)?;
    let now = args.now.unwrap_or_else(siyu_server::writer::wall_clock);
    engine.start_live(now);
    let tz = zone::load_time_zone(store.as_mut())?;
    let range = DateRange::parse(args.from.as_deref(), args.to.as_deref(), &tz)
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let ranged = matches!(
        args.question,
        Question::Roi | Question::Funnel { .. } | Question::Attribution | Question::Ltv
    );
    if !ranged && !range.is_all_time() {
        bail!("--from/--to apply to roi, funnel, attribution and ltv only");
    }
    let mut out = String::new();
    match args.question {
        Question::Rfm => {
            out.push_str("r,f,m,persons\n");
            for (r, plane) in analytics::rfm_grid(&engine, now).iter().enumerate() {
                for (f, row) in plane.iter().enumerate() {
                    for (m, n) in row.iter().enumerate() {
                        let _ = writeln!(out, "{},{},{},{n}", r + 1, f + 1, m + 1);
                    }
                }
            }
        }
        Question::RfmLayers {
            recency_days,
            frequency,
            monetary_cents,
        } => {
            let setting = siyu_server::rfm::stored(store.as_mut())?;
            let basis = siyu_server::rfm::basis(setting, &engine, now);
            let from = match &basis {
                None => "nobody has purchased",
                Some(b) if matches!(b.source, RfmSource::Setting) => "the workspace setting",
                Some(_) => "the buyers' medians",
            };
            let t = basis
                .map_or(RfmThresholds::ZERO, |b| b.thresholds)
                .overridden(recency_days, frequency, monetary_cents);
            t.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            let tried = recency_days.is_some() || frequency.is_some() || monetary_cents.is_some();
            eprintln!(
                "thresholds: recent within {} days, frequent over {} purchases, high value over {} cents ({})",
                t.recency_days,
                t.frequency,
                t.monetary_cents,
                if tried { "given on the command line" } else { from }
            );
            let report = layer_report(&engine, now, &t);
            out.push_str("layer,name,persons,share_of_persons,revenue_cents,share_of_revenue,revenue_per_person_cents,ratio_to_average\n");
            for l in &report.layers {
                let _ = writeln!(
                    out,
                    "{},{},{},{:.4},{},{:.4},{},{:.2}",
                    l.layer.key(),
                    l.name,
                    l.persons,
                    l.share_of_persons,
                    l.revenue_cents,
                    l.share_of_revenue,
                    l.revenue_per_person_cents,
                    l.ratio_to_average
                );
            }
        }
        Question::Funnel {
            friend_within,
            convert_within,
        } => {
            out.push_str("channel,entered,friended,converted\n");
            for r in analytics::first_touch_funnel_in(
                &engine,
                friend_within,
                convert_within,
                &range.instants(),
            ) {
                let _ = writeln!(
                    out,
                    "{},{},{},{}",
                    r.channel, r.entered, r.friended, r.converted
                );
            }
        }
        Question::Steps {
            steps,
            split_by_channel,
        } => {
            let steps: Vec<FunnelStep> =
                steps.iter().map(|s| parse_step(s)).collect::<Result<_>>()?;
            let mut pass = scan::FunnelPass::new(&steps, split_by_channel);
            feed_log(store.as_mut(), &engine, &mut pass)?;
            let rows = pass.finish();
            out.push_str("split");
            for i in 0..steps.len() {
                let _ = write!(out, ",step{}", i + 1);
            }
            out.push('\n');
            for r in rows {
                out.push_str(&r.split);
                for n in r.reached {
                    let _ = write!(out, ",{n}");
                }
                out.push('\n');
            }
        }
        Question::Cohorts { t0, weeks } => {
            out.push_str("cohort,week_start,size");
            for k in 0..weeks {
                let _ = write!(out, ",k{k}");
            }
            out.push('\n');
            let local = LocalWeeks::containing(t0.unwrap_or(now - 364 * DAY), &tz);
            for r in analytics::cohort_retention_by(
                &engine,
                &|ts| local.week_of(ts),
                &|c| local.start(c),
                weeks,
            ) {
                let _ = write!(out, "{},{},{}", r.cohort, local.monday(r.cohort), r.size);
                for k in r.active {
                    let _ = write!(out, ",{k}");
                }
                out.push('\n');
            }
        }
        Question::Referrals {
            convert_within,
            top,
        } => {
            let s = analytics::referral_summary(&engine, convert_within, &[10, 20], top);
            let _ = write!(
                out,
                "inviters,tier1,tier2\n{},{},{}\n\ncanonical_id,valid\n",
                s.inviters, s.tiers[0], s.tiers[1]
            );
            for (id, n) in s.top {
                let _ = writeln!(out, "{id},{n}");
            }
        }
        Question::Roi => {
            let spend = spend::spend_in_days(
                &spend::from_setting(store.get_setting(spend::SETTING)?),
                range.days(&tz),
            );
            out.push_str("channel,spend,revenue,persons\n");
            for r in analytics::channel_roi_in(
                &engine,
                spend.per_channel.iter().map(|(c, x)| (c.as_str(), *x)),
                &range.instants(),
            ) {
                let _ = writeln!(out, "{},{},{},{}", r.channel, r.spend, r.revenue, r.persons);
            }
            if spend.undated_cents > 0 {
                eprintln!(
                    "{} cents of spend without a day left out of the range",
                    spend.undated_cents
                );
            }
        }
        Question::Attribution => {
            let mut pass = scan::AttributionPass::new();
            feed_log(
                store.as_mut(),
                &engine,
                &mut scan::Only {
                    pass: &mut pass,
                    admits: |e: &RawEvent<'_>| range.admits_for_attribution(e),
                },
            )?;
            let rows = pass.finish();
            out.push_str("channel,first_touch,last_touch,linear\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{:.0}",
                    r.channel, r.first_touch, r.last_touch, r.linear
                );
            }
        }
        Question::Repurchase => {
            let r = analytics::repurchase(&engine);
            out.push_str("buyers,repeat_buyers,rate,median_interval_days\n");
            let _ = writeln!(
                out,
                "{},{},{:.4},{}",
                r.buyers,
                r.repeat_buyers,
                r.rate,
                r.median_interval_days
                    .map_or(String::new(), |d| format!("{d:.2}"))
            );
        }
        Question::Ltv => {
            out.push_str("cohort_month,channel,persons,revenue,ltv\n");
            for r in analytics::ltv_by_cohort_and_channel_in(&engine, &range.instants(), &|ts| {
                schedule::local_day(ts, &tz)
            }) {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.2}",
                    r.cohort_month, r.channel, r.persons, r.revenue, r.ltv
                );
            }
        }
    }
    if ranged {
        // On stderr, so stdout stays plain CSV.
        let view = range.view(&tz);
        eprintln!(
            "time zone {}, from {} to {}",
            view.time_zone,
            view.from.as_deref().unwrap_or("the start"),
            view.to.as_deref().unwrap_or("now")
        );
    }
    print!("{out}");
    Ok(())
}

/// Feeds the log to a sequence analysis page by page (bounded memory),
/// each event with its person: once, or twice when some person's events
/// were not stored in time order (`scan::in_event_time`).
fn feed_log(
    store: &mut dyn siyu_store::Store,
    engine: &siyu_engine::Engine,
    pass: &mut impl scan::EventTimePass,
) -> Result<()> {
    // Both rounds read the same events: up to the head at the start.
    let head = store.last_offset()?;
    scan::in_event_time(pass, |feed| {
        siyu_store::for_each_page(&mut *store, 0, |page| {
            for stored in page.iter().take_while(|e| e.offset <= head) {
                let raw = RawEvent::from_event(stored.offset, &stored.event);
                if let Some(p) = engine.person_of(raw.identity) {
                    feed(p, &raw);
                }
            }
            Ok::<(), siyu_store::StoreError>(())
        })
        .map(|_| ())
    })?;
    Ok(())
}
