//! Server configuration: one struct, filled from a TOML file, then
//! environment variables (`SIYU_*`), then command-line flags, each layer
//! overriding the one before.
//!
//! Every secret has an environment variable, so none has to be written in
//! the file (containers, secret stores): its TOML path in upper case, with
//! `__` between levels and `SIYU_` in front — `admin_token` →
//! `SIYU_ADMIN_TOKEN`, `[connectors.wecom] secret` →
//! `SIYU_CONNECTORS__WECOM__SECRET`, `[inbound] douyin` →
//! `SIYU_INBOUND__DOUYIN`, `[workspaces.brand_a] admin_token` →
//! `SIYU_WORKSPACES__BRAND_A__ADMIN_TOKEN`, `[workspaces.brand_a.inbound]
//! douyin` → `SIYU_WORKSPACES__BRAND_A__INBOUND__DOUYIN`. [`SECRET_ENV`]
//! lists them. A connector's other fields stay in the file: a secret for a
//! connector the file does not configure is an error naming the section to
//! add. Connectors are the process's, shared by every workspace: their
//! secrets are set once, for all. A variable stands for its TOML key: a
//! workspace's own inbound table (from the file or a variable) replaces
//! the main `[inbound]` for that workspace, as it does in the file.

use anyhow::Context;
use serde::Deserialize;
use siyu_store::Store;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: String,
    /// Directory of the embedded database and the engine snapshot.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// PostgreSQL schema holding siyu's tables (created if missing); None
    /// uses the connection's default. Lets several brands (or tests) share
    /// one database.
    pub database_schema: Option<String>,
    /// Token for admin endpoints (creating keys). None disables them.
    pub admin_token: Option<String>,
    /// Token `/metrics` requires (`Authorization: Bearer <token>`; the
    /// admin token works too). None: `/metrics` is open, as before.
    pub metrics_token: Option<String>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Outbound channels (`[connectors.webhook]`, `.email`, `.sms`,
    /// `.wecom`, `.wechat`); a channel without a section dead-letters.
    pub connectors: siyu_connectors::ConnectorsConfig,
    /// Shared secrets for inbound channel webhooks (`[inbound] wecom =
    /// "…"`): `POST /v1/inbound/{channel}` must be signed with it.
    pub inbound_secrets: std::collections::BTreeMap<String, String>,
    /// The address people reach this server at, for links in messages,
    /// invites and posters (unsubscribe, content views, QR codes). Empty
    /// (the default): the address the server listens on, resolved once
    /// bound ([`public_url_of`]), so `--listen :9000` links to port 9000.
    pub public_url: String,
    /// Retry policy of the connectors.
    pub retry: siyu_connectors::RetryPolicy,
    /// This store's workspace (one brand); "default" unless served as one
    /// of several (`[workspaces.NAME]`).
    pub workspace: String,
    /// Further brands served by the same process, each with its own store,
    /// engine, keys, console accounts and automation: data isolated.
    pub workspaces: std::collections::BTreeMap<String, WorkspaceConfig>,
    /// Connection timeouts and cap (`[connections]`; see
    /// [`crate::connections`]).
    pub connections: crate::connections::ConnectionLimits,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`trusted_proxies = ["10.0.0.0/8"]`, env
    /// `SIYU_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`); default none.
    pub trusted_proxies: crate::ratelimit::TrustedProxies,
    /// Oldest an event may be, in seconds on the server clock, and still
    /// trigger journeys, auto-replies and segment-entry journeys
    /// (`trigger_max_age_secs`, per brand `[workspaces.NAME]
    /// trigger_max_age_secs`, env `SIYU_TRIGGER_MAX_AGE_SECS`; default
    /// [`DEFAULT_TRIGGER_MAX_AGE_SECS`]): history never triggers a message.
    pub trigger_max_age_secs: u64,
    /// The language model (`[ai]`, see `crate::llm`); None: the AI routes
    /// answer 503 and intents are classified offline only.
    pub ai: Option<crate::llm::AiConfig>,
}

/// One hour: an event older than that is history, not a trigger.
pub const DEFAULT_TRIGGER_MAX_AGE_SECS: u64 = 3600;
/// The largest `trigger_max_age_secs` accepted: 366 days.
pub const MAX_TRIGGER_MAX_AGE_SECS: u64 = 366 * 86_400;

/// Checks a `trigger_max_age_secs` value; `field` names where it was given.
fn check_trigger_max_age(field: &str, v: u64) -> anyhow::Result<u64> {
    if v == 0 || v > MAX_TRIGGER_MAX_AGE_SECS {
        anyhow::bail!(
            "{field} = {v}: give seconds between 1 and {MAX_TRIGGER_MAX_AGE_SECS} (366 days), e.g. {field} = {DEFAULT_TRIGGER_MAX_AGE_SECS}"
        );
    }
    Ok(v)
}

/// `[connections]`: seconds (fractions allowed) and a count.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsFile {
    header_read_timeout_secs: Option<f64>,
    body_read_timeout_secs: Option<f64>,
    idle_timeout_secs: Option<f64>,
    max_connections: Option<usize>,
}

impl ConnectionsFile {
    /// `limits` with the values given here; a timeout must be a positive
    /// number of seconds (at most a day), the cap at least 1.
    fn apply(
        &self,
        mut limits: crate::connections::ConnectionLimits,
    ) -> anyhow::Result<crate::connections::ConnectionLimits> {
        let secs = |name: &str, v: Option<f64>, into: &mut std::time::Duration| {
            if let Some(v) = v {
                if !(v > 0.0 && v <= 86_400.0) {
                    anyhow::bail!("[connections] {name} = {v}: give seconds between 0 (exclusive) and 86400, e.g. {name} = 10");
                }
                *into = std::time::Duration::from_secs_f64(v);
            }
            Ok(())
        };
        secs(
            "header_read_timeout_secs",
            self.header_read_timeout_secs,
            &mut limits.header_read_timeout,
        )?;
        secs(
            "body_read_timeout_secs",
            self.body_read_timeout_secs,
            &mut limits.body_read_timeout,
        )?;
        secs(
            "idle_timeout_secs",
            self.idle_timeout_secs,
            &mut limits.idle_timeout,
        )?;
        if let Some(n) = self.max_connections {
            if n == 0 {
                anyhow::bail!("[connections] max_connections = 0: allow at least 1 connection");
            }
            limits.max_connections = n;
        }
        Ok(limits)
    }
}

/// `[workspaces.NAME]`: a brand. Requests reach it by `Host` (when `host`
/// is set) or by the `X-Siyu-Workspace: NAME` header.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// Host name routed to this workspace (e.g. `brand-a.crm.example.com`).
    pub host: Option<String>,
    /// Its data dir; default `<data_dir>/workspaces/NAME`.
    pub data_dir: Option<PathBuf>,
    /// Its PostgreSQL schema; default `<schema or "siyu">_NAME`.
    pub database_schema: Option<String>,
    /// Its admin token; default the main one.
    pub admin_token: Option<String>,
    /// Its public URL (links in messages); default the main one.
    pub public_url: Option<String>,
    /// Its inbound webhook secrets (`[workspaces.NAME.inbound] CHANNEL =
    /// "…"`); default the main `[inbound]`. Signatures cover the workspace
    /// name, so a request signed for one workspace fails at another even
    /// when they share a secret.
    pub inbound: Option<std::collections::BTreeMap<String, String>>,
    /// Its `trigger_max_age_secs`; default the main one.
    pub trigger_max_age_secs: Option<u64>,
}

impl Config {
    /// The configuration of workspace `name` (its own store; connectors,
    /// limits and the database server shared with the main one).
    pub fn for_workspace(&self, name: &str, w: &WorkspaceConfig) -> Config {
        let mut c = self.clone();
        c.workspace = name.to_string();
        c.workspaces.clear();
        c.listen = "127.0.0.1:0".into();
        c.data_dir = w
            .data_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("workspaces").join(name));
        if self.database_url.is_some() {
            c.database_schema = Some(w.database_schema.clone().unwrap_or_else(|| {
                format!(
                    "{}_{name}",
                    self.database_schema.as_deref().unwrap_or("siyu")
                )
            }));
        }
        if let Some(t) = &w.admin_token {
            c.admin_token = Some(t.clone());
        }
        if let Some(u) = &w.public_url {
            c.public_url = u.clone();
        }
        if let Some(i) = &w.inbound {
            c.inbound_secrets = i.clone();
        }
        if let Some(v) = w.trigger_max_age_secs {
            c.trigger_max_age_secs = v;
        }
        c
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./siyu-data"),
            database_url: None,
            database_schema: None,
            admin_token: None,
            metrics_token: None,
            max_body_bytes: 8 * 1024 * 1024,
            connectors: Default::default(),
            inbound_secrets: Default::default(),
            public_url: String::new(),
            retry: Default::default(),
            workspace: "default".into(),
            workspaces: Default::default(),
            connections: Default::default(),
            trusted_proxies: Default::default(),
            trigger_max_age_secs: DEFAULT_TRIGGER_MAX_AGE_SECS,
            ai: None,
        }
    }
}

/// The nesting guard of every TOML file siyu reads (`siyu_domain::toml_nesting`).
pub use siyu_domain::toml_nesting::{check_toml_nesting, MAX_TOML_DEPTH};

/// The TOML file's shape; every key optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_schema: Option<String>,
    admin_token: Option<String>,
    metrics_token: Option<String>,
    max_body_bytes: Option<usize>,
    connectors: Option<siyu_connectors::ConnectorsConfig>,
    inbound: Option<std::collections::BTreeMap<String, String>>,
    public_url: Option<String>,
    workspaces: Option<std::collections::BTreeMap<String, WorkspaceConfig>>,
    connections: Option<ConnectionsFile>,
    trusted_proxies: Option<Vec<String>>,
    trigger_max_age_secs: Option<u64>,
    ai: Option<crate::llm::AiFile>,
}

/// Values given on the command line (None = not given).
#[derive(Default, Clone, Debug)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_schema: Option<String>,
    pub admin_token: Option<String>,
    pub metrics_token: Option<String>,
    pub public_url: Option<String>,
}

/// The public URL of a server bound to `addr` when none is configured:
/// `http://` and the address, with an unspecified host (`0.0.0.0`, `::`)
/// read as the loopback address, which is where such a server is reached
/// from the machine itself.
pub fn public_url_of(addr: std::net::SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// A listen address as given: `HOST:PORT`, or `:PORT` for the default
/// host (127.0.0.1) on that port. Anything else is kept as it is and
/// reported by the bind, naming the address.
pub fn listen_address(given: &str) -> String {
    match given.trim().strip_prefix(':') {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("127.0.0.1:{port}")
        }
        _ => given.trim().to_string(),
    }
}

/// The environment variables of the config's secrets (beyond the
/// top-level `SIYU_ADMIN_TOKEN`, `SIYU_METRICS_TOKEN`, `SIYU_DATABASE_URL`),
/// with the TOML key each replaces. `SIYU_CONNECTORS__BRIDGES__<CHANNEL>__SECRET`
/// (`[connectors.bridges.CHANNEL] secret`), `SIYU_INBOUND__<CHANNEL>`,
/// `SIYU_WORKSPACES__<NAME>__ADMIN_TOKEN` and
/// `SIYU_WORKSPACES__<NAME>__INBOUND__<CHANNEL>` follow the same scheme per
/// channel and workspace (`[workspaces.NAME] admin_token`,
/// `[workspaces.NAME.inbound] CHANNEL`).
pub const SECRET_ENV: &[(&str, &str)] = &[
    (
        "SIYU_CONNECTORS__WEBHOOK__SECRET",
        "[connectors.webhook] secret",
    ),
    (
        "SIYU_CONNECTORS__EMAIL__PASSWORD",
        "[connectors.email] password",
    ),
    ("SIYU_CONNECTORS__SMS__API_KEY", "[connectors.sms] api_key"),
    (
        "SIYU_CONNECTORS__WECOM__SECRET",
        "[connectors.wecom] secret",
    ),
    ("SIYU_CONNECTORS__WECOM__TOKEN", "[connectors.wecom] token"),
    (
        "SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY",
        "[connectors.wecom] encoding_aes_key",
    ),
    (
        "SIYU_CONNECTORS__WECHAT__SECRET",
        "[connectors.wechat] secret",
    ),
    (
        "SIYU_CONNECTORS__WECHAT__TOKEN",
        "[connectors.wechat] token",
    ),
    (
        "SIYU_CONNECTORS__WECHAT__ENCODING_AES_KEY",
        "[connectors.wechat] encoding_aes_key",
    ),
    (
        "SIYU_CONNECTORS__SMS__SECRET_KEY",
        "[connectors.sms] secret_key",
    ),
    ("SIYU_AI__API_KEY", "[ai] api_key"),
];

/// Channels whose inbound secret is looked up in the environment even when
/// the file's `[inbound]` does not name them.
const INBOUND_CHANNELS: &[&str] = &[
    "wecom",
    "wechat",
    "douyin",
    "xiaohongshu",
    "kuaishou",
    "weibo",
    "sms",
    "email",
    "webhook",
];

/// The environment variable of a name: upper case, `-` as `_`.
fn env_part(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Applies the secrets of [`SECRET_ENV`], `SIYU_INBOUND__*`,
/// `SIYU_WORKSPACES__*__ADMIN_TOKEN` and `SIYU_WORKSPACES__*__INBOUND__*`
/// found in `env`.
fn secrets_from_env(c: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    use siyu_connectors::Secret;
    let missing = |var: &str, section: &str| {
        anyhow::anyhow!(
            "{var} is set but the configuration has no [connectors.{section}]: add that section (its other fields) to the config file"
        )
    };
    let k = &mut c.connectors;
    if let Some(v) = env("SIYU_CONNECTORS__WEBHOOK__SECRET") {
        let w = k
            .webhook
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WEBHOOK__SECRET", "webhook"))?;
        w.secret = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__EMAIL__PASSWORD") {
        let e = k
            .email
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__EMAIL__PASSWORD", "email"))?;
        e.password = Some(Secret::new(v));
    }
    if let Some(v) = env("SIYU_CONNECTORS__SMS__API_KEY") {
        let s = k
            .sms
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__SMS__API_KEY", "sms"))?;
        s.api_key = Some(Secret::new(v));
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECOM__SECRET") {
        let w = k
            .wecom
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECOM__SECRET", "wecom"))?;
        w.secret = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECOM__TOKEN") {
        let w = k
            .wecom
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECOM__TOKEN", "wecom"))?;
        w.token = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY") {
        let w = k
            .wecom
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY", "wecom"))?;
        w.encoding_aes_key = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECHAT__SECRET") {
        let w = k
            .wechat
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECHAT__SECRET", "wechat"))?;
        w.secret = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECHAT__TOKEN") {
        let w = k
            .wechat
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECHAT__TOKEN", "wechat"))?;
        w.token = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__WECHAT__ENCODING_AES_KEY") {
        let w = k
            .wechat
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__WECHAT__ENCODING_AES_KEY", "wechat"))?;
        w.encoding_aes_key = Secret::new(v);
    }
    if let Some(v) = env("SIYU_CONNECTORS__SMS__SECRET_KEY") {
        let s = k
            .sms
            .as_mut()
            .ok_or_else(|| missing("SIYU_CONNECTORS__SMS__SECRET_KEY", "sms"))?;
        s.secret_key = Secret::new(v);
    }
    if let Some(v) = env("SIYU_AI__API_KEY") {
        let ai = c.ai.as_mut().ok_or_else(|| {
            anyhow::anyhow!("SIYU_AI__API_KEY is set but the configuration has no [ai]: add that section (base_url, model) to the config file")
        })?;
        ai.api_key = Some(Secret::new(v));
    }
    for (channel, b) in k.bridges.iter_mut() {
        if let Some(v) = env(&format!(
            "SIYU_CONNECTORS__BRIDGES__{}__SECRET",
            env_part(channel)
        )) {
            b.secret = Secret::new(v);
        }
    }
    // Every channel any inbound table names, and the known ones.
    let channels: std::collections::BTreeSet<String> = c
        .inbound_secrets
        .keys()
        .chain(
            c.workspaces
                .values()
                .flat_map(|w| w.inbound.iter().flatten().map(|(k, _)| k)),
        )
        .cloned()
        .chain(INBOUND_CHANNELS.iter().map(|s| s.to_string()))
        .collect();
    for channel in &channels {
        if let Some(v) = env(&format!("SIYU_INBOUND__{}", env_part(channel))) {
            c.inbound_secrets.insert(channel.clone(), v);
        }
    }
    for (name, w) in c.workspaces.iter_mut() {
        if let Some(v) = env(&format!("SIYU_WORKSPACES__{}__ADMIN_TOKEN", env_part(name))) {
            w.admin_token = Some(v);
        }
        for channel in &channels {
            let var = format!(
                "SIYU_WORKSPACES__{}__INBOUND__{}",
                env_part(name),
                env_part(channel)
            );
            if let Some(v) = env(&var) {
                w.inbound
                    .get_or_insert_with(Default::default)
                    .insert(channel.clone(), v);
            }
        }
    }
    Ok(())
}

impl Config {
    /// TOML file (if any) < environment < flags.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: Overrides,
    ) -> anyhow::Result<Config> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
            check_toml_nesting(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            let f: FileConfig = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            c.listen = f.listen.unwrap_or(c.listen);
            c.data_dir = f.data_dir.unwrap_or(c.data_dir);
            c.database_url = f.database_url.or(c.database_url);
            c.database_schema = f.database_schema.or(c.database_schema);
            c.admin_token = f.admin_token.or(c.admin_token);
            c.metrics_token = f.metrics_token.or(c.metrics_token);
            c.max_body_bytes = f.max_body_bytes.unwrap_or(c.max_body_bytes);
            c.connectors = f.connectors.unwrap_or_default();
            c.inbound_secrets = f.inbound.unwrap_or_default();
            c.public_url = f.public_url.unwrap_or(c.public_url);
            c.workspaces = f.workspaces.unwrap_or_default();
            if let Some(limits) = &f.connections {
                c.connections = limits
                    .apply(c.connections)
                    .with_context(|| format!("config file {}", path.display()))?;
            }
            if let Some(list) = f.trusted_proxies {
                c.trusted_proxies = crate::ratelimit::TrustedProxies::parse(&list)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            }
            if let Some(v) = f.trigger_max_age_secs {
                c.trigger_max_age_secs = check_trigger_max_age("trigger_max_age_secs", v)
                    .with_context(|| format!("config file {}", path.display()))?;
            }
            if let Some(ai) = f.ai {
                c.ai = Some(
                    ai.check()
                        .with_context(|| format!("config file {}", path.display()))?,
                );
            }
            for (name, w) in &c.workspaces {
                if name == "default" || !siyu_domain::Channel::is_valid(name) {
                    anyhow::bail!(
                        "config file {}: workspace name `{name}`: use lowercase letters, digits and _ (and not `default`)",
                        path.display()
                    );
                }
                if let Some(v) = w.trigger_max_age_secs {
                    check_trigger_max_age(&format!("[workspaces.{name}] trigger_max_age_secs"), v)
                        .with_context(|| format!("config file {}", path.display()))?;
                }
            }
        }
        if let Some(v) = env("SIYU_LISTEN") {
            c.listen = v;
        }
        if let Some(v) = env("SIYU_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = env("SIYU_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = env("SIYU_DATABASE_SCHEMA") {
            c.database_schema = Some(v);
        }
        if let Some(v) = env("SIYU_ADMIN_TOKEN") {
            c.admin_token = Some(v);
        }
        if let Some(v) = env("SIYU_METRICS_TOKEN") {
            c.metrics_token = Some(v);
        }
        if let Some(v) = env("SIYU_PUBLIC_URL") {
            c.public_url = v;
        }
        if let Some(v) = env("SIYU_TRIGGER_MAX_AGE_SECS") {
            let secs = v.trim().parse::<u64>().map_err(|_| {
                anyhow::anyhow!("SIYU_TRIGGER_MAX_AGE_SECS = {v:?}: give whole seconds, e.g. {DEFAULT_TRIGGER_MAX_AGE_SECS}")
            })?;
            c.trigger_max_age_secs = check_trigger_max_age("SIYU_TRIGGER_MAX_AGE_SECS", secs)?;
        }
        if let Some(v) = env("SIYU_TRUSTED_PROXIES") {
            let list: Vec<&str> = v.split(',').filter(|s| !s.trim().is_empty()).collect();
            c.trusted_proxies = crate::ratelimit::TrustedProxies::parse(&list)
                .map_err(|e| anyhow::anyhow!("SIYU_TRUSTED_PROXIES: {e}"))?;
        }
        secrets_from_env(&mut c, env)?;
        // The WeCom callback settings, checked here so a mistyped key is
        // named at start, not at WeCom's first callback.
        if let Some(w) = &c.connectors.wecom {
            w.callback().map_err(|e| {
                anyhow::anyhow!(
                    "config [connectors.wecom]: {e} (the file's token / encoding_aes_key, or SIYU_CONNECTORS__WECOM__TOKEN / SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY)"
                )
            })?;
        }
        c.listen = flags.listen.unwrap_or(c.listen);
        c.data_dir = flags.data_dir.unwrap_or(c.data_dir);
        c.database_url = flags.database_url.or(c.database_url);
        c.database_schema = flags.database_schema.or(c.database_schema);
        c.admin_token = flags.admin_token.or(c.admin_token);
        c.metrics_token = flags.metrics_token.or(c.metrics_token);
        c.public_url = flags.public_url.unwrap_or(c.public_url);
        c.public_url = c.public_url.trim().trim_end_matches('/').to_string();
        let has_scheme = ["http://", "https://"]
            .iter()
            .any(|scheme| c.public_url.starts_with(scheme));
        if !c.public_url.is_empty() && !has_scheme {
            anyhow::bail!(
                "public_url {:?}: give the address people reach the server at, starting with http:// or https://, e.g. https://crm.example.com",
                c.public_url
            );
        }
        c.listen = listen_address(&c.listen);
        Ok(c)
    }

    /// Opens the configured store (see [`open_store`]).
    pub fn open_store(&self) -> anyhow::Result<Box<dyn Store>> {
        open_store(
            &self.data_dir,
            self.database_url.as_deref(),
            self.database_schema.as_deref(),
        )
    }
}

/// Opens a store: PostgreSQL when `database_url` is given (in `schema` if
/// set), else SQLite in `data_dir`. Every command opens stores this way.
pub fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
    schema: Option<&str>,
) -> anyhow::Result<Box<dyn Store>> {
    let what = || match (database_url, schema) {
        (Some(_), Some(s)) => format!("opening the PostgreSQL store (schema `{s}`)"),
        (Some(_), None) => "opening the PostgreSQL store".to_string(),
        (None, _) => format!("opening the SQLite store in {}", data_dir.display()),
    };
    match (database_url, schema) {
        (Some(url), Some(schema)) => {
            let store = siyu_store::PostgresStore::connect_in_schema(url, Some(schema))
                .with_context(what)?;
            Ok(Box::new(store))
        }
        (None, Some(_)) => {
            anyhow::bail!("a database schema needs a postgres:// database URL (SQLite has none)")
        }
        (url, None) => siyu_store::open_store(data_dir, url).with_context(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_can_come_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("siyu-config-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            r#"
            [connectors.webhook]
            url = "https://hook.example"
            secret = "from-file"
            [connectors.email]
            host = "smtp.example"
            from = "a@example.com"
            username = "a"
            [connectors.sms]
            base_url = "https://sms.example"
            sdk_app_id = "1"
            sign_name = "s"
            [connectors.wecom]
            corp_id = "c"
            sender = "s"
            [connectors.wechat]
            app_id = "w"
            [inbound]
            my-bridge = "file"
            [workspaces.brand_a]
            host = "a.example"
            [ai]
            base_url = "http://127.0.0.1:11434/v1"
            model = "qwen2.5:7b"
            "#,
        )
        .unwrap();
        let vars: std::collections::BTreeMap<&str, &str> = [
            ("SIYU_CONNECTORS__WEBHOOK__SECRET", "hook-env"),
            ("SIYU_CONNECTORS__EMAIL__PASSWORD", "mail-env"),
            ("SIYU_CONNECTORS__SMS__API_KEY", "sms-env"),
            ("SIYU_CONNECTORS__WECOM__SECRET", "wecom-env"),
            ("SIYU_CONNECTORS__WECOM__TOKEN", "wecom-token-env"),
            (
                "SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY",
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            ),
            ("SIYU_CONNECTORS__WECHAT__SECRET", "wechat-env"),
            ("SIYU_CONNECTORS__WECHAT__TOKEN", "wechat-token-env"),
            (
                "SIYU_CONNECTORS__WECHAT__ENCODING_AES_KEY",
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            ),
            ("SIYU_CONNECTORS__SMS__SECRET_KEY", "sms-secret-key-env"),
            ("SIYU_AI__API_KEY", "ai-env"),
            ("SIYU_INBOUND__MY_BRIDGE", "bridge-env"),
            ("SIYU_INBOUND__DOUYIN", "douyin-env"),
            ("SIYU_WORKSPACES__BRAND_A__ADMIN_TOKEN", "brand-a-env"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            vars.len(),
            SECRET_ENV.len() + 3,
            "one per listed secret, and the patterns"
        );
        let env = |k: &str| vars.get(k).map(|v| v.to_string());
        let c = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        let k = &c.connectors;
        assert_eq!(k.webhook.as_ref().unwrap().secret.expose(), "hook-env");
        assert_eq!(
            k.email
                .as_ref()
                .unwrap()
                .password
                .as_ref()
                .unwrap()
                .expose(),
            "mail-env"
        );
        assert_eq!(
            k.sms.as_ref().unwrap().api_key.as_ref().unwrap().expose(),
            "sms-env"
        );
        assert_eq!(k.wecom.as_ref().unwrap().secret.expose(), "wecom-env");
        assert_eq!(k.wecom.as_ref().unwrap().token.expose(), "wecom-token-env");
        assert!(k.wecom.as_ref().unwrap().callback().unwrap().is_some());
        assert_eq!(k.wechat.as_ref().unwrap().secret.expose(), "wechat-env");
        assert_eq!(
            k.wechat.as_ref().unwrap().token.expose(),
            "wechat-token-env"
        );
        let oa = k.wechat.as_ref().unwrap().callback().unwrap().unwrap();
        assert_eq!(oa.crypto.unwrap().receiver_id(), "w");
        assert_eq!(
            k.sms.as_ref().unwrap().secret_key.expose(),
            "sms-secret-key-env"
        );
        assert_eq!(
            c.ai.as_ref().unwrap().api_key.as_ref().unwrap().expose(),
            "ai-env"
        );
        assert_eq!(c.inbound_secrets["my-bridge"], "bridge-env");
        assert_eq!(c.inbound_secrets["douyin"], "douyin-env");
        assert_eq!(
            c.workspaces["brand_a"].admin_token.as_deref(),
            Some("brand-a-env")
        );
        // The connectors build from it (the secrets reach them).
        siyu_connectors::from_config(&c.connectors).unwrap();
        // A secret for a connector the file does not configure names the section.
        let only = |k: &str| (k == "SIYU_CONNECTORS__WECOM__SECRET").then(|| "x".to_string());
        let e = Config::load(None, &only, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SIYU_CONNECTORS__WECOM__SECRET") && e.contains("[connectors.wecom]"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A mistyped EncodingAESKey stops the start with the field, the
    /// problem and where the value came from; a token without a key too.
    #[test]
    fn the_wecom_callback_settings_are_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("siyu-config-wecom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        let load = |toml: &str, env: &dyn Fn(&str) -> Option<String>| {
            std::fs::write(&file, toml).unwrap();
            Config::load(Some(&file), env, Overrides::default())
        };
        let base = "[connectors.wecom]\ncorp_id = \"ww1\"\nsender = \"s\"\nsecret = \"x\"\n";
        let none = |_: &str| None;
        let e = load(
            &format!("{base}token = \"t\"\nencoding_aes_key = \"tooShort\"\n"),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("[connectors.wecom]")
                && e.contains("wecom.encoding_aes_key is invalid")
                && e.contains("is 8 characters")
                && e.contains("SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY"),
            "{e}"
        );
        let e = load(&format!("{base}token = \"t\"\n"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wecom.encoding_aes_key"), "{e}");
        let key = |k: &str| {
            (k == "SIYU_CONNECTORS__WECOM__ENCODING_AES_KEY")
                .then(|| "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C".to_string())
        };
        let c = load(&format!("{base}token = \"t\"\n"), &key).unwrap();
        let crypto = c.connectors.wecom.unwrap().callback().unwrap().unwrap();
        assert_eq!(crypto.receiver_id(), "ww1");
        // Without token and key: no callbacks, and no error.
        assert!(load(base, &none)
            .unwrap()
            .connectors
            .wecom
            .unwrap()
            .callback()
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_workspace_secret_can_come_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("siyu-config-ws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            r#"
            [connectors.wecom]
            corp_id = "c"
            sender = "s"
            secret = "from-file"
            [inbound]
            douyin = "main-file"
            [workspaces.brand_a]
            host = "a.example"
            [workspaces.brand_a.inbound]
            partner-x = "a-file"
            [workspaces.brand_b]
            host = "b.example"
            [workspaces.brand_c]
            host = "c.example"
            "#,
        )
        .unwrap();
        let vars: std::collections::BTreeMap<&str, &str> = [
            ("SIYU_CONNECTORS__WECOM__SECRET", "wecom-env"),
            ("SIYU_INBOUND__DOUYIN", "main-env"),
            // A channel only brand_a's own table names.
            ("SIYU_WORKSPACES__BRAND_A__INBOUND__PARTNER_X", "a-env"),
            ("SIYU_WORKSPACES__BRAND_A__ADMIN_TOKEN", "a-admin"),
            // A workspace without an inbound table in the file.
            ("SIYU_WORKSPACES__BRAND_B__INBOUND__DOUYIN", "b-env"),
            ("SIYU_WORKSPACES__BRAND_B__ADMIN_TOKEN", "b-admin"),
        ]
        .into_iter()
        .collect();
        let env = |k: &str| vars.get(k).map(|v| v.to_string());
        let c = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        assert_eq!(c.inbound_secrets["douyin"], "main-env");
        let of = |name: &str| c.for_workspace(name, &c.workspaces[name]);
        let a = of("brand_a");
        assert_eq!(a.admin_token.as_deref(), Some("a-admin"));
        assert_eq!(
            a.inbound_secrets,
            [("partner-x".to_string(), "a-env".to_string())].into()
        );
        let b = of("brand_b");
        assert_eq!(b.admin_token.as_deref(), Some("b-admin"));
        // Its own table, as `[workspaces.brand_b.inbound]` in the file
        // would be: it replaces the main one.
        assert_eq!(
            b.inbound_secrets,
            [("douyin".to_string(), "b-env".to_string())].into()
        );
        // No variable of its own: the main table, env included.
        let c_ws = of("brand_c");
        assert_eq!(c_ws.inbound_secrets["douyin"], "main-env");
        // The connectors are the process's: every workspace sends with
        // the secret from the environment.
        for w in [&c, &a, &b, &c_ws] {
            assert_eq!(
                w.connectors.wecom.as_ref().unwrap().secret.expose(),
                "wecom-env",
                "workspace {}",
                w.workspace
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = std::env::temp_dir().join(format!("siyu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\ndata_dir = \"/file\"\nadmin_token = \"f\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "SIYU_DATA_DIR" => Some("/env".to_string()),
            "SIYU_METRICS_TOKEN" => Some("env-metrics".to_string()),
            _ => None,
        };
        let flags = Overrides {
            admin_token: Some("flag".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &env, flags).unwrap();
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.data_dir, PathBuf::from("/env"));
        assert_eq!(c.admin_token.as_deref(), Some("flag"));
        assert_eq!(c.metrics_token.as_deref(), Some("env-metrics"));
        let c = Config::load(
            Some(&file),
            &env,
            Overrides {
                metrics_token: Some("flag-metrics".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.metrics_token.as_deref(), Some("flag-metrics"));
        std::fs::write(&file, "metrics_token = \"file-metrics\"\n").unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert_eq!(c.metrics_token.as_deref(), Some("file-metrics"));
        std::fs::write(&file, "lisen = 1\n").unwrap();
        let err = Config::load(Some(&file), &|_| None, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn links_name_the_listen_address_unless_a_public_url_is_given() {
        let c = Config::load(
            None,
            &|_| None,
            Overrides {
                listen: Some(":9000".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (c.listen.as_str(), c.public_url.as_str()),
            ("127.0.0.1:9000", "")
        );
        let bound = |s: &str| public_url_of(s.parse().unwrap());
        assert_eq!(bound("127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(bound("0.0.0.0:9000"), "http://127.0.0.1:9000");
        assert_eq!(bound("[::]:9000"), "http://[::1]:9000");
        assert_eq!(bound("10.1.2.3:80"), "http://10.1.2.3:80");
        let env = |k: &str| (k == "SIYU_PUBLIC_URL").then(|| "https://env.example.com".to_string());
        let c = Config::load(None, &env, Overrides::default()).unwrap();
        assert_eq!(c.public_url, "https://env.example.com");
        let c = Config::load(
            None,
            &env,
            Overrides {
                public_url: Some("https://crm.example.com/".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.public_url, "https://crm.example.com",
            "flags win; no trailing slash"
        );
        let err = Config::load(
            None,
            &|_| None,
            Overrides {
                public_url: Some("crm.example.com".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("public_url") && err.contains("https://"),
            "{err}"
        );
    }

    #[test]
    fn connection_limits_come_from_the_file_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("siyu-config-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        let defaults = crate::connections::ConnectionLimits::default();
        std::fs::write(&file, "").unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert_eq!(c.connections, defaults);
        assert_eq!(defaults.header_read_timeout.as_secs(), 10);
        assert_eq!(defaults.body_read_timeout.as_secs(), 30);
        assert_eq!(defaults.idle_timeout.as_secs(), 60);
        std::fs::write(
            &file,
            "[connections]\nheader_read_timeout_secs = 2.5\nmax_connections = 50\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert_eq!(c.connections.header_read_timeout.as_millis(), 2500);
        assert_eq!(c.connections.max_connections, 50);
        assert_eq!(c.connections.idle_timeout, defaults.idle_timeout);
        for bad in [
            "idle_timeout_secs = 0",
            "body_read_timeout_secs = -1",
            "max_connections = 0",
            "idle_timout_secs = 5",
        ] {
            std::fs::write(&file, format!("[connections]\n{bad}\n")).unwrap();
            let err = format!(
                "{:#}",
                Config::load(Some(&file), &|_| None, Overrides::default()).unwrap_err()
            );
            let name = bad.split(' ').next().unwrap();
            assert!(err.contains(name), "{bad}: {err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn trusted_proxies_from_file_and_env_and_per_workspace_inbound() {
        let dir = std::env::temp_dir().join(format!("siyu-config-tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            "trusted_proxies = [\"10.0.0.0/8\"]\n[inbound]\ndouyin = \"main\"\n[workspaces.b]\n[workspaces.b.inbound]\nwecom = \"b-secret\"\n[workspaces.c]\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        let b = c.for_workspace("b", &c.workspaces["b"]);
        assert_eq!(b.inbound_secrets.keys().collect::<Vec<_>>(), ["wecom"]);
        let cc = c.for_workspace("c", &c.workspaces["c"]);
        assert_eq!(cc.inbound_secrets["douyin"], "main");
        let env = |k: &str| (k == "SIYU_TRUSTED_PROXIES").then(|| "127.0.0.1, ::1".to_string());
        let e = Config::load(Some(&file), &env, Overrides::default()).unwrap();
        assert!(e.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(!e.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        let bad = |k: &str| (k == "SIYU_TRUSTED_PROXIES").then(|| "10.0.0.0/33".to_string());
        let err = Config::load(None, &bad, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SIYU_TRUSTED_PROXIES") && err.contains("10.0.0.0/33"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn trigger_max_age_is_per_workspace_and_checked() {
        let dir = std::env::temp_dir().join(format!("siyu-cfg-age-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "trigger_max_age_secs = 600\n[workspaces.b]\ntrigger_max_age_secs = 86400\n[workspaces.c]\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert_eq!(c.trigger_max_age_secs, 600);
        assert_eq!(
            c.for_workspace("b", &c.workspaces["b"])
                .trigger_max_age_secs,
            86400
        );
        assert_eq!(
            c.for_workspace("c", &c.workspaces["c"])
                .trigger_max_age_secs,
            600
        );
        assert_eq!(
            Config::default().trigger_max_age_secs,
            DEFAULT_TRIGGER_MAX_AGE_SECS
        );
        std::fs::write(&file, "[workspaces.b]\ntrigger_max_age_secs = 0\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&file), &|_| None, Overrides::default()).unwrap_err()
        );
        assert!(
            e.contains("[workspaces.b] trigger_max_age_secs = 0: give seconds between 1"),
            "{e}"
        );
        let e = Config::load(
            None,
            &|k| (k == "SIYU_TRIGGER_MAX_AGE_SECS").then(|| "1h".to_string()),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SIYU_TRIGGER_MAX_AGE_SECS"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn workspaces_get_their_own_store() {
        let dir = std::env::temp_dir().join(format!("siyu-config-ws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("siyu.toml");
        std::fs::write(
            &file,
            "data_dir = \"/d\"\n[workspaces.brand_b]\nhost = \"b.example.com\"\n[workspaces.brand_c]\nadmin_token = \"c\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), &|_| None, Overrides::default()).unwrap();
        assert_eq!(c.workspaces.len(), 2);
        let b = c.for_workspace("brand_b", &c.workspaces["brand_b"]);
        assert_eq!(b.data_dir, PathBuf::from("/d/workspaces/brand_b"));
        assert_eq!(b.workspace, "brand_b");
        assert!(b.workspaces.is_empty());
        let mut pg = c.clone();
        pg.database_url = Some("postgres://x".into());
        let cc = pg.for_workspace("brand_c", &pg.workspaces["brand_c"]);
        assert_eq!(cc.database_schema.as_deref(), Some("siyu_brand_c"));
        assert_eq!(cc.admin_token.as_deref(), Some("c"));
        std::fs::write(&file, "[workspaces.Bad-Name]\n").unwrap();
        let err = Config::load(Some(&file), &|_| None, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Bad-Name"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
