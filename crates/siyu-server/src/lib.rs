//! siyu's server: the HTTP API in front of one writer thread (store +
//! engine) and many readers (engine snapshot under a read lock, a second
//! store connection for timelines).
//!
//! `Application::build(config)` binds (port 0 works, for tests), rebuilds
//! the engine from the store (snapshot + the log after it), starts the
//! writer, and returns the app to `run`.
//!
//! Invariants (see `writer.rs`):
//! - acknowledged means durable and visible: a request is answered after
//!   its events' append transaction committed and the engine applied them;
//! - the engine reflects a prefix of the log, in offset order, including
//!   events another process appended to the same store (`siyu import`);
//!   a snapshot records the offset of that prefix;
//! - no snapshot ever holds erased data: it is deleted before an erasure
//!   and rewritten only from the rebuilt engine;
//! - a blocking store call never runs on an async worker thread (the
//!   writer is a plain thread; handlers use `spawn_blocking`).
//!
//! Owns HTTP (routing, auth, extraction, serialization), the writer, the
//! executor's I/O shell and the wiring of one `Application` per workspace; the
//! business rules live in the cores it calls (`siyu-engine`, `siyu-automation`,
//! `siyu-growth`, `siyu-commerce`). May depend on every siyu crate except the
//! `siyu` binary.

pub mod auth;
pub mod automation;
pub mod backfill;
pub mod browser;
pub mod cache;
pub mod channels;
pub mod cluster;
pub mod columns;
pub mod config;
pub mod connections;
pub mod conversations;
pub mod definitions;
pub mod error;
pub mod h5;
pub mod inbound;
pub mod ingest;
pub mod intents;
pub mod leader;
pub mod links;
pub mod llm;
pub mod log_pass;
pub mod metrics;
pub mod moments;
pub mod openapi;
pub mod preview;
pub mod privacy;
pub mod profile;
pub mod quarantine;
pub mod ratelimit;
pub mod references;
pub mod replay;
pub mod request;
pub mod rfm;
pub mod routes;
pub mod sensitive_words;
pub mod snapshot;
pub mod trace;
pub mod wecom_ops;
pub mod wecom_sync;
pub mod wecom_tags;
pub mod wecom_welcome;
pub mod workspace;
pub mod writer;
pub mod zone;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::writer::{PublishedChange, Writer, WriterHandle};
use anyhow::Context;
use axum::Router;
use siyu_engine::Engine;
use siyu_store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

pub struct Inner {
    pub engine: Arc<RwLock<Engine>>,
    /// A second connection for reads and rare admin writes.
    pub reader: Mutex<OffRuntimeDrop<Box<dyn Store>>>,
    pub writer: WriterHandle,
    /// Every API key: SHA-256 of the key → its scopes and browser origins
    /// (reloaded when another process changes one: `cluster`).
    pub keys: RwLock<HashMap<String, auth::KeyGrant>>,
    pub metrics: Arc<Metrics>,
    pub changes: broadcast::Sender<PublishedChange>,
    /// Conversation changes, for `GET /v1/conversations/stream`.
    pub conversations: broadcast::Sender<conversations::ConversationChange>,
    pub config: Config,
    /// Operator console sessions (siyu-console).
    pub console: siyu_console::Console,
    /// The automation executor's queue (journeys, sends, consent).
    pub automation: automation::AutomationHandle,
    /// Secret signing unsubscribe links and invite codes (settings
    /// `automation/link_secret`).
    pub link_secret: Vec<u8>,
    /// Keys for phone hashes and erasure pseudonyms (settings `privacy/secret`).
    pub privacy: privacy::PrivacyKeys,
    /// Fission campaigns' poster renderers and landing rate limit.
    pub fission: routes::fission::FissionState,
    /// Cached analytics answers (the dashboard).
    pub analytics_cache: cache::AnalyticsCache,
    /// `/openapi.json`, built once from the route table (`routes::all`)
    /// by the wiring, so no route module reads the table it is part of.
    pub openapi: Arc<serde_json::Value>,
    /// A random key valid only inside this process (the cache warmer).
    pub internal_key: String,
    /// Stored definitions that could not be loaded (listed as broken).
    pub quarantine: Arc<quarantine::Quarantine>,
    /// Requests per client address to the public links (`/l/`, `/i/`,
    /// `/c/`, `/u/`).
    pub public_limit: ratelimit::RateLimiter,
    /// Requests per client address to the inbound webhooks.
    pub inbound_limit: ratelimit::RateLimiter,
    /// Inbound webhook signatures accepted within their window.
    pub inbound_replays: replay::ReplayGuard,
    /// WeCom's own callbacks (`/callbacks/wecom`), when `[connectors.wecom]`
    /// has their token and key.
    pub wecom_callbacks: Option<Arc<routes::callbacks::WeComCallbacks>>,
    /// The WeChat Official Account (`[connectors.wechat]`): QR codes and,
    /// with its token, `/callbacks/wechat`.
    pub wechat_oa: Option<Arc<routes::callbacks::WeChatOa>>,
    /// The WeCom sync's client and whether this process runs it
    /// (`wecom_sync.rs`).
    pub wecom_sync: wecom_sync::SyncRunner,
    /// WeCom's customer-contact API (`[connectors.wecom]`): live codes'
    /// QR codes, hand-over transfers, group-send results (`wecom_ops.rs`).
    pub wecom: Option<Arc<siyu_connectors::WeComConnector>>,
    /// The workspace time zone (settings `workspace/time_zone`, `zone.rs`):
    /// what dates in analytics ranges mean and what the console shows.
    pub time_zone: RwLock<siyu_automation::schedule::Tz>,
    /// Whether this node holds the automation lease (`leader.rs`): what
    /// must run once (timers, sweeps, deliveries, reconciles, SOP
    /// calendars) runs where it is held.
    pub leader: Arc<leader::Leadership>,
    /// What each channel's platform sent this node (`channels.rs`): the
    /// console's "last callback".
    pub channel_activity: channels::Activity,
    /// The sensitive-word rules last compiled (`sensitive_words.rs`).
    pub sensitive_words: sensitive_words::Cache,
    /// The language model of `[ai]` (`llm.rs`), if configured.
    pub ai: Option<Arc<llm::Llm>>,
    /// The event columns full-log passes read (`columns.rs`).
    pub columns: Arc<columns::Columns>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// Owns a value whose drop blocks (the PostgreSQL client closes its
/// connection with a blocking call, which panics on an async runtime
/// thread): dropped on the runtime, the value is moved to a plain thread
/// and dropped there.
pub struct OffRuntimeDrop<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntimeDrop<T> {
    pub fn new(value: T) -> Self {
        OffRuntimeDrop(Some(value))
    }
}

impl<T: Send + 'static> std::ops::Deref for OffRuntimeDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `drop` takes the value out.
        self.0.as_ref().expect("value present until drop")
    }
}

impl<T: Send + 'static> std::ops::DerefMut for OffRuntimeDrop<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("value present until drop")
    }
}

impl<T: Send + 'static> Drop for OffRuntimeDrop<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("siyu-drop".into())
                    .spawn(move || drop(value));
            }
        }
    }
}

/// The router over every route of `routes::all()`, plus the operator
/// console (`/`, `/assets/*`, `/console/api/*`); every route is behind the
/// console's session/CSRF guard (a no-op for key-authenticated calls)
/// and, inside it, `auth::enforce`: the access each route declares.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    let mut access = Vec::new();
    for r in routes::all() {
        access.push((r.method, r.path, r.access));
        router = router.route(r.path, r.handler);
    }
    let access = Arc::new(auth::AccessTable::new(access));
    let ingest_paths = Arc::new(browser::IngestPaths::from_routes(&routes::all()));
    router
        // Cached answers are served only to authorized requests: inside enforce.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cache::layer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), access),
            auth::enforce,
        ))
        // Logged by route template: paths hold identities (personal data).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log_request,
        ))
        .merge(siyu_console::router())
        .fallback(|| async {
            error::ApiError::NotFound("no such endpoint; GET /openapi.json lists them".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            siyu_console::guard::<AppState>,
        ))
        // Outermost: preflights never reach routing (whose OPTIONS is 405).
        .layer(axum::middleware::from_fn_with_state(
            ingest_paths,
            browser::layer,
        ))
        // The framework's text/plain rejections as the API's JSON errors.
        .layer(axum::middleware::from_fn(error::json_rejections))
        // Outermost: every log line of a request carries its id.
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// The request id header, read and echoed.
pub const REQUEST_ID: &str = "x-request-id";

/// A request's id: the client's `x-request-id` when it is 1–128 visible
/// ASCII characters (a proxy's or a caller's, so one id follows a request
/// across systems), else a fresh one. Every log line written while the
/// request is handled carries it (the `request` span's `request_id`, in
/// the text and the JSON log format), on whichever thread the work runs
/// (`trace`: blocking calls, the writer, the executor), and the answer
/// echoes it.
async fn request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_string);
    let mut response = trace::scope(trace::RequestId::new(&id), next.run(request)).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// 16 hex digits, unique within the process and unlikely across processes.
fn new_request_id() -> String {
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let seed = SEED.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        t ^ (u128::from(std::process::id()) << 64)
    });
    let n = N.fetch_add(1, Ordering::Relaxed);
    let digest = sha2::Sha256::digest(format!("{seed}:{n}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl siyu_console::Host for AppState {
    fn console(&self) -> &siyu_console::Console {
        &self.0.console
    }
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> T) -> T {
        let mut store = self.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(store.as_mut())
    }
    fn admin_token(&self) -> Option<&str> {
        self.0.config.admin_token.as_deref()
    }
    /// The TCP peer only, for now: no proxy header is trusted here.
    /// The client as `ratelimit::client_addr` sees it: `X-Forwarded-For`
    /// counts only from `trusted_proxies`, so a rotating header cannot
    /// dodge the login throttle.
    fn client_addr(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> std::net::IpAddr {
        ratelimit::client_addr(peer, headers, &self.0.config.trusted_proxies)
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
    fn public_url(&self) -> &str {
        &self.0.config.public_url
    }
}

/// One structured log line per API request: method, route template (never
/// the concrete path: it names a person), status and latency. Server
/// errors at `error`, client errors at `info`, the rest at `debug`.
async fn log_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(String::new, |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    state.0.metrics.request(&route, method.as_str(), status);
    if status >= 500 {
        tracing::error!(%method, %route, status, ms, "request failed");
    } else if status >= 400 {
        tracing::info!(%method, %route, status, ms, "request rejected");
    } else {
        tracing::debug!(%method, %route, status, ms, "request");
    }
    response
}

pub use snapshot::{snapshot_path, write_snapshot, write_snapshot_if};

pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
    writer_thread: std::thread::JoinHandle<()>,
    executor_thread: std::thread::JoinHandle<()>,
}

/// Stops one workspace after the listener closed: the executor first (it
/// commits what it queued and lets go of the writer), then the writer
/// (its last sender goes with the state; it writes a final snapshot).
async fn stop(
    state: AppState,
    executor_thread: std::thread::JoinHandle<()>,
    writer_thread: std::thread::JoinHandle<()>,
) -> anyhow::Result<()> {
    channels::flush(&state).await;
    let _ = state.0.automation.tx.send(automation::AutoInput::Shutdown);
    tokio::task::spawn_blocking(move || executor_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("automation thread panicked"))?;
    // The executor has stopped: another node may lead from now on.
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = s.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        s.0.leader.release(reader.as_mut());
    })
    .await?;
    drop(state);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
    Ok(())
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        // Bound first: links made from here on (messages, invites, posters)
        // name the address the server really listens on unless a
        // `public_url` is configured.
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        if config.public_url.is_empty() {
            config.public_url = crate::config::public_url_of(listener.local_addr()?);
        }
        let snapshot_path = snapshot_path(&config);
        let store_config = config.clone();
        let (store, reader, follower, rebuilt, keys, privacy, time_zone, erasures, start) =
            tokio::task::spawn_blocking({
                let snapshot_path = snapshot_path.clone();
                move || -> anyhow::Result<_> {
                    // The data dir holds the SQLite files and the engine snapshot.
                    std::fs::create_dir_all(&store_config.data_dir)
                        .with_context(|| format!("creating {}", store_config.data_dir.display()))?;
                    let mut store = store_config.open_store()?;
                    let mut reader = store_config.open_store()?;
                    let privacy = privacy::prepare(store.as_mut(), &snapshot_path)?;
                    // Before the engine is built: an erasure committed later
                    // (by another node) is then seen as newer.
                    let erasures = siyu_store::erasures(store.as_mut())?;
                    let started = std::time::Instant::now();
                    let chosen = snapshot::choose(
                        store.as_mut(),
                        &snapshot_path,
                        snapshot::shared_through_store(&store_config),
                        erasures,
                    );
                    let chosen_source = chosen.as_ref().map(|c| c.source.name());
                    let rebuilt = writer::rebuild_to(
                        store.as_mut(),
                        chosen.map(snapshot::Chosen::engine),
                        writer::wall_clock(),
                    )?;
                    let source = rebuilt.snapshot_events.and(chosen_source).unwrap_or("none");
                    let seconds = started.elapsed().as_secs_f64();
                    tracing::info!(
                        persons = rebuilt.engine.person_count(),
                        events = rebuilt.engine.events_applied(),
                        snapshot = source,
                        replayed = rebuilt.replayed,
                        seconds,
                        "engine rebuilt from the store"
                    );
                    let start = metrics::EngineStart {
                        snapshot: source,
                        snapshot_events: rebuilt.snapshot_events.unwrap_or(0),
                        replayed: rebuilt.replayed,
                        seconds,
                    };
                    let keys = auth::load_keys(reader.as_mut())?;
                    let time_zone = zone::load_time_zone(reader.as_mut())?;
                    let follower = store_config.open_store()?;
                    Ok((
                        store, reader, follower, rebuilt, keys, privacy, time_zone, erasures, start,
                    ))
                }
            })
            .await??;
        let writer::Rebuilt {
            engine,
            offset: applied_offset,
            broken,
            snapshot_events,
            ..
        } = rebuilt;
        let quarantine = Arc::new(quarantine::Quarantine::default());
        quarantine.reload(&definitions::PREFIXES, broken);
        // The events the loaded snapshot held: a long replay after it
        // makes the writer take a new one at once.
        let snapshot_at = snapshot_events.unwrap_or(0);
        let engine = Arc::new(RwLock::new(engine));
        let metrics = Arc::new(Metrics::new(&config.workspace));
        metrics.engine_started(&start);
        let open_store: writer::OpenStore = {
            let config = config.clone();
            Arc::new(move || config.open_store())
        };
        let (changes, _) = broadcast::channel(4096);
        let (conversation_changes, _) = broadcast::channel(4096);
        let (tx, rx) = std::sync::mpsc::channel();
        let (auto_tx, auto_rx) = std::sync::mpsc::channel();
        let wants_all = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let wants_all_handle = wants_all.clone();
        // Before the writer and the executor: a node alone on its store leads from its
        // first request; beside a leader it stands by.
        let leadership = Arc::new(leader::Leadership::new()?);
        let lease_store = {
            let (config, leadership) = (config.clone(), leadership.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<Box<dyn Store>> {
                let mut store = config.open_store()?;
                leadership.try_lead(store.as_mut())?;
                Ok(store)
            })
            .await??
        };
        let columns = columns::Columns::new(&config.data_dir);
        let w = Writer {
            store,
            leadership: leadership.clone(),
            engine: engine.clone(),
            metrics: metrics.clone(),
            changes: changes.clone(),
            conversations: conversation_changes.clone(),
            sharing: snapshot::shared_through_store(&config)
                .then(|| snapshot::Sharing::new(open_store.clone(), snapshot_path.clone())),
            snapshot_path,
            clock: writer::wall_clock,
            open_store,
            rebuilding: None,
            snapshotting: None,
            backlog: Default::default(),
            pending_follow: None,
            backlog_answered: false,
            held: Default::default(),
            columns: columns.clone(),
            applied_offset,
            snapshot_at,
            automation: Some(auto_tx.clone()),
            automation_wants_all: wants_all.clone(),
            quarantine: quarantine.clone(),
            rfm_checked_at_events: 0,
            erasures,
        };
        let writer_thread = std::thread::Builder::new()
            .name("siyu-writer".into())
            .spawn(move || w.run(rx))?;
        // The intent model trains at first use (`siyu_automation::intent`):
        // here, off the runtime, rather than in the first request that
        // carries a comment (`intents::annotated`).
        std::thread::Builder::new()
            .name("siyu-intent-model".into())
            .spawn(|| {
                siyu_automation::intent::model();
            })?;
        let connectors = siyu_connectors::from_config(&config.connectors)
            .map_err(|e| anyhow::anyhow!("config [connectors]: {e}"))?;
        let dispatcher = Arc::new(siyu_connectors::Dispatcher::new(
            connectors,
            config.retry.clone(),
            automation::sink(auto_tx.clone()),
        ));
        let dispatcher_handle = dispatcher.clone();
        let wecom_callbacks = routes::callbacks::WeComCallbacks::from_config(&config.connectors)
            .map_err(|e| anyhow::anyhow!("config [connectors.wecom]: {e}"))?;
        let wechat_oa = routes::callbacks::WeChatOa::from_config(&config.connectors)
            .map_err(|e| anyhow::anyhow!("config [connectors.wechat]: {e}"))?;
        let wecom_sync = wecom_sync::SyncRunner::new(&config.connectors)
            .map_err(|e| anyhow::anyhow!("config [connectors.wecom]: {e}"))?;
        let wecom = match &config.connectors.wecom {
            Some(w) => Some(Arc::new(
                siyu_connectors::WeComConnector::new(w)
                    .map_err(|e| anyhow::anyhow!("config [connectors.wecom]: {e}"))?,
            )),
            None => None,
        };
        let link_secret = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || automation::link_secret(&config)).await??
        };
        let executor = {
            let leadership = leadership.clone();
            let config = config.clone();
            let quarantine = quarantine.clone();
            let engine = engine.clone();
            let writer_tx = tx.clone();
            let metrics = metrics.clone();
            let dispatcher = dispatcher.clone();
            let link_secret = link_secret.clone();
            tokio::task::spawn_blocking(move || {
                automation::Executor::new(automation::ExecutorParts {
                    store: config.open_store()?,
                    engine,
                    writer: writer_tx,
                    dispatcher: Some(dispatcher),
                    metrics,
                    clock: writer::wall_clock,
                    public_url: config.public_url.clone(),
                    link_secret,
                    wants_all,
                    quarantine,
                    trigger_max_age_secs: config.trigger_max_age_secs,
                    leadership,
                    wecom_sends_are_mass: config.connectors.wecom.as_ref().is_some_and(|w| {
                        w.open_kfid.as_deref().is_none_or(|k| k.trim().is_empty())
                    }),
                })
            })
            .await??
        };
        let executor_thread = std::thread::Builder::new()
            .name("siyu-automation".into())
            .spawn(move || executor.run(auto_rx))?;
        let ai = match &config.ai {
            Some(c) => Some(Arc::new(llm::Llm::new(c.clone())?)),
            None => None,
        };
        let state = AppState(Arc::new(Inner {
            engine,
            reader: Mutex::new(OffRuntimeDrop::new(reader)),
            writer: WriterHandle { tx },
            keys: RwLock::new(keys),
            metrics,
            changes,
            conversations: conversation_changes,
            config,
            console: Default::default(),
            automation: automation::AutomationHandle {
                tx: auto_tx,
                dispatcher: Some(dispatcher_handle),
                wants_all: wants_all_handle,
            },
            link_secret,
            privacy,
            fission: Default::default(),
            analytics_cache: Default::default(),
            openapi: Arc::new(openapi::document(&routes::all())),
            internal_key: auth::new_key()?,
            quarantine,
            public_limit: ratelimit::RateLimiter::public_links(),
            inbound_limit: ratelimit::RateLimiter::inbound(),
            inbound_replays: Default::default(),
            wecom_callbacks,
            wechat_oa,
            wecom_sync,
            wecom,
            time_zone: RwLock::new(time_zone),
            leader: leadership.clone(),
            channel_activity: Default::default(),
            sensitive_words: Default::default(),
            ai,
            columns,
        }));
        cluster::spawn_follower(&state.0, follower)?;
        leader::spawn(
            Arc::downgrade(&state.0),
            leadership,
            lease_store,
            state.0.automation.tx.clone(),
        )?;
        Ok(Application {
            listener,
            state,
            writer_thread,
            executor_thread,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address links name (`public_url`, else the listen address).
    pub fn public_url(&self) -> &str {
        &self.state.0.config.public_url
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Stops without having served (tests that restart on the same
    /// store): the executor, then the writer, which writes its final
    /// snapshot. Every clone of [`Self::state`] must be dropped first, or
    /// the writer waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        stop(self.state, self.executor_thread, self.writer_thread).await
    }

    /// Serves this application and the `others` (workspaces: name, host,
    /// application) on this one's listener until `shutdown`, then stops
    /// every writer (each writes a final engine snapshot).
    pub async fn run_with_workspaces(
        self,
        others: Vec<(String, Option<String>, Application)>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            writer_thread,
            executor_thread,
        } = self;
        let mut threads = vec![(executor_thread, writer_thread)];
        let mut states = vec![state.clone()];
        let mut routed = Vec::new();
        for (name, host, app) in others {
            let Application {
                state: s,
                writer_thread: w,
                executor_thread: x,
                ..
            } = app;
            threads.push((x, w));
            states.push(s.clone());
            routed.push((name, host, s));
        }
        for s in &states {
            crate::wecom_ops::spawn(s.clone());
            crate::moments::spawn(s.clone());
            crate::routes::communities::spawn(s.clone());
            crate::routes::fission::spawn(s.clone());
            crate::cache::spawn_warmer(s.clone());
            crate::columns::Columns::spawn_fill(s);
            crate::wecom_sync::spawn(s.clone());
            crate::channels::spawn_flush(s.clone());
        }
        let limits = state.0.config.connections.clone();
        let router = workspace::Workspaces::new(state, routed).router();
        connections::serve(listener, router, limits, shutdown).await;
        for (s, (x, w)) in states.into_iter().zip(threads) {
            stop(s, x, w).await?;
        }
        Ok(())
    }

    /// Serves until `shutdown` resolves, then stops the writer (which
    /// writes a final engine snapshot).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            writer_thread,
            executor_thread,
        } = self;
        crate::wecom_ops::spawn(state.clone());
        crate::moments::spawn(state.clone());
        crate::routes::communities::spawn(state.clone());
        crate::routes::fission::spawn(state.clone());
        crate::cache::spawn_warmer(state.clone());
        crate::columns::Columns::spawn_fill(&state);
        crate::channels::spawn_flush(state.clone());
        let limits = state.0.config.connections.clone();
        connections::serve(listener, app(state.clone()), limits, shutdown).await;
        stop(state, executor_thread, writer_thread).await
    }
}
