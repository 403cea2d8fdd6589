//! `siyu serve`, `siyu demo` and `siyu keys`: running the server, with or
//! without generated demo data, and managing write keys.

use crate::data::StoreArgs;
use anyhow::{Context, Result};
use siyu_server::config::{Config, Overrides};
use siyu_server::Application;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, or :PORT for 127.0.0.1:PORT (default 127.0.0.1:8080).
    #[arg(long, env = "SIYU_LISTEN")]
    pub listen: Option<String>,
    /// The address people reach the server at, for the links in messages,
    /// invites and posters (e.g. https://crm.example.com; env
    /// SIYU_PUBLIC_URL, config `public_url`). Default: the listen address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Directory of the embedded SQLite database and the engine snapshot.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// postgres://user@host:5432/db to use PostgreSQL instead.
    #[arg(long)]
    pub database_url: Option<String>,
    /// PostgreSQL schema for siyu's tables (created if missing).
    #[arg(long)]
    pub database_schema: Option<String>,
    /// Admin token for /v1/admin endpoints.
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Token /metrics requires (`Authorization: Bearer <token>`); unset: /metrics is open.
    #[arg(long)]
    pub metrics_token: Option<String>,
    /// Log lines as `text` (default) or `json` (one object per line, with
    /// the request's `request_id` in its `span`/`spans` on every line a
    /// request writes).
    #[arg(long, value_enum, env = "SIYU_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A TOML file with any of: listen, data_dir, database_url, database_schema, admin_token, metrics_token, max_body_bytes, public_url, trusted_proxies, [connectors.*], [inbound], [workspaces.NAME] (each may have its own [workspaces.NAME.inbound]).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once. A running server on the same
    /// store accepts it within a second.
    Create {
        #[arg(long)]
        name: String,
        /// What the key may do (repeat for several): ingest (send events
        /// only; safe in a browser or app: use it in SDKs), read, write,
        /// erase, admin. Default: ingest, read, write and erase (what every
        /// key could do before scopes).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A web origin (`https://shop.example`, or `*`) whose pages may
        /// send events with this key from the browser (repeat for several);
        /// only for a key with exactly `--scope ingest`.
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `span`, `spans`).
    Json,
}

pub fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Logs go to stderr; stdout carries what a command prints (URL, key, summary).
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

fn config_from(args: ServeArgs, default_dir: Option<&str>) -> Result<Config> {
    let env = |k: &str| std::env::var(k).ok();
    let flags = Overrides {
        listen: args.listen,
        data_dir: args.data_dir.or(default_dir.map(PathBuf::from)),
        database_url: args.database_url,
        database_schema: args.database_schema,
        admin_token: args.admin_token,
        metrics_token: args.metrics_token,
        public_url: args.public_url,
    };
    Config::load(args.config.as_deref(), &env, flags)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Builds the server (and its workspaces), runs `before_serving` on the
/// main one, prints the banner and serves until a shutdown signal.
async fn run(
    config: Config,
    before_serving: impl AsyncFnOnce(&Application) -> Result<()>,
    banner: impl FnOnce(&str),
) -> Result<()> {
    let workspaces = config.workspaces.clone();
    let main = config.clone();
    let app = Application::build(config).await?;
    let mut others = Vec::new();
    for (name, w) in &workspaces {
        let mut workspace = main.for_workspace(name, w);
        if workspace.public_url.is_empty() {
            // Served on the main listener: its links name the main address.
            workspace.public_url = app.public_url().to_string();
        }
        let built = Application::build(workspace)
            .await
            .with_context(|| format!("starting workspace {name}"))?;
        others.push((name.clone(), w.host.clone(), built));
    }
    before_serving(&app).await?;
    let url = siyu_server::config::public_url_of(app.local_addr());
    tracing::info!(%url, public_url = app.public_url(), workspaces = others.len() + 1, "siyu listening");
    banner(&url);
    if others.is_empty() {
        app.run_until(shutdown_signal()).await
    } else {
        app.run_with_workspaces(others, shutdown_signal()).await
    }
}

pub fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    let config = config_from(args, None)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(
        config,
        async |_: &Application| -> Result<()> { Ok(()) },
        |url| println!("siyu serving on {url}"),
    ))
}

pub fn demo(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    let mut config = config_from(args, Some("./siyu-demo-data"))?;
    let crate::demo::DemoCredentials {
        keys,
        admin_token: admin,
        seed_definitions,
    } = crate::demo::prepare(&mut config)?;
    let seeded_file = config.data_dir.join(crate::demo::SEEDED_FILE);
    let rt = tokio::runtime::Runtime::new()?;
    let token = admin.clone();
    let seed = async |app: &Application| -> Result<()> {
        if seed_definitions {
            let started = std::time::Instant::now();
            crate::demo_api::seed(app, &token, siyu_server::writer::wall_clock()).await?;
            std::fs::write(&seeded_file, "the demo's definitions are saved\n")
                .with_context(|| format!("writing {}", seeded_file.display()))?;
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "demo definitions saved through the API"
            );
        }
        Ok(())
    };
    rt.block_on(run(config, seed, |url| {
        println!("siyu demo on {url}");
        println!("  write key:   {} (ingest, read, write, erase)", keys.full);
        println!(
            "  ingest key:  {} (send events only: the one for SDKs and apps)",
            keys.ingest
        );
        println!("  admin token: {admin}");
        println!(
            "  try:         curl -H 'Authorization: Bearer {}' {url}/v1/segments",
            keys.full
        );
        println!("  console:     {url}/");
        for (login, password, role) in crate::demo::DEMO_LOGINS {
            println!("    login {login} / {password} ({})", role.as_str());
        }
    }))
}

pub fn keys(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            scopes,
            origins,
            store,
        } => {
            use siyu_server::auth::Scopes;
            let scopes = if scopes.is_empty() {
                Scopes::LEGACY
            } else {
                Scopes::parse(scopes.iter().map(String::as_str))
                    .map_err(|e| anyhow::anyhow!("--scope: {e}"))?
            };
            let mut s = store.open()?;
            let key = siyu_server::auth::create_key_for_origins(
                s.as_mut(),
                &name,
                scopes,
                &origins,
                siyu_server::writer::wall_clock(),
            )
            .context("creating the key")?;
            println!("{key}");
            let from = if origins.is_empty() {
                String::new()
            } else {
                format!(", usable from browsers on {}", origins.join(", "))
            };
            eprintln!(
                "key `{name}` created with scopes {}{from}; it is shown only once",
                scopes.names().join(", ")
            );
            Ok(())
        }
    }
}
