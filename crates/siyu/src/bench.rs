//! `siyu bench`: loads the reference workload and answers Q0–Q6.

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Directory holding events.jsonl (or events.csv) and spend.csv.
    #[arg(long)]
    pub data: std::path::PathBuf,
    /// Directory the answers q0.csv … q6.csv are written to.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Also apply stream.jsonl one event at a time.
    #[arg(long)]
    pub stream: bool,
}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench is not built yet")
}
