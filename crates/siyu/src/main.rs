//! The `siyu` binary: one entry point per job a brand runs. Each subcommand
//! lives in its own module and only parses flags and wires crates together.

mod bench;
mod bulk;

use clap::{Parser, Subcommand};

/// mimalloc: faster than glibc malloc for the engine's many small vectors,
/// and it can back the big tables with huge pages (fewer TLB misses).
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
    /// Answer the reference workload's questions (WORKLOAD.md Q0–Q6) through the engine.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(args),
    }
}
