//! `siyu import-orders`: a marketplace order export (Taobao, Douyin, JD …
//! CSV with Chinese headers) becomes purchase/refund events on the right
//! persons, so the revenue made on the marketplaces shows up in the
//! private-domain profiles. The mapping, matching and validation are
//! `siyu_commerce::orders` (shared with `POST /v1/orders`); this module reads
//! the file and the mapping, appends through the store directly (like
//! `siyu import`, so a server running beside it follows the log) and prints
//! a summary. Exit codes: 0 all imported, 1 some rows rejected (each listed
//! with its line, field and column) or an I/O fault, 2 the mapping or flags
//! do not fit the file (a mapped column missing, no channel, bad TOML).

use crate::data::{engine_from_store, StoreArgs};
use anyhow::{bail, Context, Result};
use siyu_commerce::orders::{
    self, csv_order, csv_records, parse_order, plan, Known, Mapping, Planned, Rejected,
};
use siyu_domain::Event;
use siyu_server::writer::merge_record;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ImportOrdersArgs {
    /// The order export: CSV, UTF-8 (with or without BOM), header on line 1.
    pub file: PathBuf,
    /// TOML mapping: `[columns]` field = "header" (order_id, status, amount,
    /// refund_amount, paid_at, refunded_at, phone, buyer_id, identity,
    /// channel …), optional `[status]` "word" = "paid|refunded|…" and
    /// `channel`. Without it the headers must be the field names.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// The marketplace of every row without a channel column (taobao,
    /// douyin, kuaishou, xiaohongshu, jd, pinduoduo …); overrides the
    /// mapping's `channel`.
    #[arg(long)]
    pub channel: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Let these purchases and refunds trigger a running server's journeys
    /// (e.g. a regular order sync). Without it they are history: a server
    /// beside it applies them but messages nobody. Even with it, orders
    /// older than the server's `trigger_max_age_secs` trigger nothing.
    #[arg(long)]
    pub trigger: bool,
}

/// Events per store transaction.
const CHUNK: usize = 2_000;
/// Rejected rows printed (the rest are counted).
const SHOWN: usize = 50;

/// Over-refunded orders printed (the rest are counted).
const OVER_REFUNDED_SHOWN: usize = 5;

/// Cents as yuan, `¥88.00`.
fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}¥{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// A mapping or flag that does not fit the file: exit code 2, like clap's
/// usage errors.
fn usage(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

pub fn run(args: ImportOrdersArgs) -> Result<()> {
    let started = Instant::now();
    let name = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {name}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not UTF-8 (first bad byte at offset {}); save it as \"CSV UTF-8\" (Excel) or convert it: iconv -f GBK -t UTF-8",
            e.utf8_error().valid_up_to()
        )
    })?;
    let records = csv_records(&text).map_err(|(line, m)| anyhow::anyhow!("{name}:{line}: {m}"))?;
    let Some(((_, header), rows)) = records.split_first() else {
        bail!("{name} is empty; it needs a header line and order rows");
    };
    let mut mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| usage(format!("reading {}: {e}", path.display())));
            Mapping::from_toml(&text).unwrap_or_else(|e| usage(format!("{}: {e}", path.display())))
        }
        None => Mapping::by_field_names(header),
    };
    if let Some(c) = &args.channel {
        mapping.channel = Some(
            orders::parse_channel("channel", c)
                .unwrap_or_else(|e| usage(format!("--channel: {}", e.message))),
        );
    }
    let bound = mapping
        .bind(header)
        .unwrap_or_else(|e| usage(format!("{name}: {e}")));
    let has_channel_column = bound
        .iter()
        .any(|(f, _)| matches!(*f, "channel" | "marketplace"));
    if mapping.channel.is_none() && !has_channel_column {
        usage(format!(
            "{name}: which marketplace are these orders from? pass --channel taobao (or douyin, jd …), set channel = \"taobao\" in the mapping, or map a channel column"
        ));
    }
    if !bound
        .iter()
        .any(|(f, _)| matches!(*f, "phone" | "buyer_id" | "identity"))
    {
        usage(format!(
            "{name}: no buyer column is mapped; map phone, buyer_id or identity so orders can find their person"
        ));
    }

    // Rows → orders (the index of an order is its CSV line).
    let mut parsed = Vec::with_capacity(rows.len());
    let mut rejected = Vec::new();
    for (line, record) in rows {
        match parse_order(
            &csv_order(&bound, record),
            mapping.channel.as_ref(),
            &mapping.statuses,
        ) {
            Ok(o) => parsed.push((*line, o)),
            Err(e) => rejected.push(Rejected::new(*line, e)),
        }
    }

    let mut store = args.store.open()?;
    let keys = siyu_server::privacy::prepare(
        store.as_mut(),
        &siyu_server::snapshot_path(&args.store.config()),
    )?;
    let mut engine = engine_from_store(store.as_mut(), &args.store)?;
    let persons_before = engine.person_count();
    let known = Known::from_engine(&engine, &parsed, &keys);
    let Planned {
        events,
        orders: order_count,
        skipped,
        matched,
        rejected: unmatched,
    } = plan(parsed, &known);
    rejected.extend(unmatched);
    rejected.sort_by_key(|r| r.index);

    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(events.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name.clone());
    let mut results = Vec::with_capacity(events.len());
    // Before the first append: a server following the log sees whether
    // these events may trigger (`siyu_server::backfill`).
    let trigger_range = siyu_server::backfill::begin_import(
        store.as_mut(),
        args.trigger,
        siyu_server::writer::wall_clock(),
    )
    .context("recording whether this import may trigger automation")?;
    let loaded = (|| -> Result<()> {
        for chunk in events.chunks(CHUNK) {
            let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
            let appended = store.append(&batch).context("appending to the store")?;
            let mut merges = Vec::new();
            for (e, r) in batch.iter().zip(&appended) {
                if let siyu_store::Appended::New(offset) = r {
                    merges.extend(
                        engine
                            .apply(*offset, e)
                            .merges
                            .into_iter()
                            .filter_map(|m| merge_record(*offset, e.ts, m)),
                    );
                }
            }
            if !merges.is_empty() {
                store.record_merges(&merges).context("recording merges")?;
            }
            results.extend(appended);
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    })();
    // Also after a failure: the range ends at what was appended.
    if let Some(key) = &trigger_range {
        siyu_server::backfill::end_import(store.as_mut(), key)
            .context("closing this import's trigger range")?;
    }
    loaded?;
    bar.finish_and_clear();

    for r in rejected.iter().take(SHOWN) {
        let column = mapping
            .column_of(&r.field)
            .filter(|c| *c != r.field)
            .map(|c| format!(" (column `{c}`)"))
            .unwrap_or_default();
        eprintln!(
            "{name}:{}: field `{}`{column}: {}",
            r.index, r.field, r.message
        );
    }
    if rejected.len() > SHOWN {
        eprintln!(
            "{name}: … and {} more rejected rows",
            rejected.len() - SHOWN
        );
    }
    let orders::Tally {
        accepted,
        duplicates,
        new_events,
        duplicate_events: dup_events,
    } = orders::tally(&events, &results);
    debug_assert_eq!(accepted + duplicates, order_count);
    println!(
        "imported orders from {name}: accepted {accepted}, duplicates {duplicates}, skipped {skipped}, rejected {}; matched by identity {}, buyer_id {}, phone of a known person {}, new phone {}; events {new_events} new, {dup_events} already imported; persons {} (+{}); {:.2} s",
        rejected.len(),
        matched.identity,
        matched.buyer_id,
        matched.phone_existing_person,
        matched.phone_new,
        engine.person_count(),
        engine.person_count() as i64 - persons_before as i64,
        started.elapsed().as_secs_f64(),
    );
    let over = orders::over_refunded(&engine, &events);
    if !over.is_empty() {
        println!(
            "over-refunded: {} order(s) leave their person with more refunded than purchased (stored as given; the profile shows refunds_exceed_purchases):",
            over.len()
        );
        for o in over.iter().take(OVER_REFUNDED_SHOWN) {
            println!(
                "  {name}:{}: order {} of {}: purchased {}, refunded {}",
                o.index,
                o.order_id,
                o.person,
                yuan(o.purchased_cents),
                yuan(o.refunded_cents)
            );
        }
        if over.len() > OVER_REFUNDED_SHOWN {
            println!("  … and {} more", over.len() - OVER_REFUNDED_SHOWN);
        }
    }
    if !rejected.is_empty() {
        bail!(
            "{} row(s) were rejected (listed above with file:line); the other rows were imported",
            rejected.len()
        );
    }
    Ok(())
}
