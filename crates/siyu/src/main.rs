//! The `siyu` binary: one entry point per job a brand runs. Each subcommand
//! lives in its own module and only parses flags and wires crates together.
//!
//! Owns the command line (`serve`, `demo`, `import`, `export`, `import-orders`,
//! `keys`, `logins`, `analytics`, `bench`), progress bars and exit codes. May depend on
//! every siyu crate; nothing depends on it.

mod analytics;
mod archive;
mod bench;
mod bulk;
mod data;
mod demo;
mod demo_api;
mod logins;
mod orders;
mod parquet_log;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc: faster than glibc malloc for the engine's many small vectors.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "siyu",
    version,
    about = "siyu (私域): own your customer relationships"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(serve::ServeArgs),
    /// Run the HTTP API on generated demo data (./siyu-demo-data), no configuration.
    Demo(serve::ServeArgs),
    /// Import event files (JSONL or CSV) into the store, or restore an export directory into an empty one.
    Import(data::ImportArgs),
    /// Export everything the brand owns (re-importable).
    Export(archive::ExportArgs),
    /// Import marketplace orders (CSV export + column mapping) as purchases and refunds.
    ImportOrders(orders::ImportOrdersArgs),
    /// Manage write keys.
    #[command(subcommand)]
    Keys(serve::KeysCommand),
    /// Console logins (admin, operator, analyst) of a store.
    #[command(subcommand)]
    Logins(logins::LoginsCommand),
    /// Analytics over the store: rfm, funnel, steps, cohorts, referrals, roi, attribution, repurchase, ltv.
    Analytics(analytics::AnalyticsArgs),
    /// Answer the reference workload's questions (WORKLOAD.md Q0–Q6) through the engine.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Demo(args) => serve::demo(args),
        Command::Import(args) => data::import(args),
        Command::Export(args) => archive::export(args),
        Command::ImportOrders(args) => orders::run(args),
        Command::Keys(cmd) => serve::keys(cmd),
        Command::Logins(cmd) => logins::run(cmd),
        Command::Analytics(args) => analytics::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
