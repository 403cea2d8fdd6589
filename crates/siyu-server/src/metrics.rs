//! Prometheus metrics through `prometheus-client` (one registry per
//! workspace, encoded in the Prometheus text format 0.0.4 on `/metrics`).
//!
//! Why this crate: it keeps a registry per value (each workspace's
//! `Application` owns one, so several brands in one process never share a
//! series) and adds three small crates to the build; the `metrics` facade
//! with its Prometheus exporter is process-global and, even without
//! default features, brought 30 more crates into the lock file.
//!
//! Every series carries `workspace="NAME"` (the registry's constant
//! label): the brand whose `/metrics` was scraped. Labels beyond it:
//! requests per route template (never the concrete path: it names a
//! person), method and status; sends per channel and verdict; ingest
//! requests per route; rejected ingest messages per route and reason
//! (the field that failed, a fixed vocabulary: the wire format's); skipped
//! triggers per trigger and reason. Every label set is bounded: routes and
//! methods come from the route table, channels from the configuration and
//! definitions, reasons from the wire format's field names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::borrow::Cow;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets, seconds.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Batch-size buckets, events.
pub const EVENTS: &[f64] = &[
    1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
];

/// `siyu_http_requests_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

/// `siyu_sends_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: String,
    verdict: &'static str,
}

/// `siyu_ai_calls_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AiLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// `siyu_ingest_requests_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// `siyu_ingest_rejected_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    route: String,
    reason: String,
}

/// `siyu_triggers_skipped_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkippedLabels {
    trigger: &'static str,
    reason: &'static str,
}

/// `siyu_engine_start_events`' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    from: &'static str,
}

/// How a workspace's engine was built at start.
#[derive(Debug, Clone)]
pub struct EngineStart {
    /// Where its snapshot came from: `file`, `store` (another node's,
    /// through the database) or `none`.
    pub snapshot: &'static str,
    /// Events the snapshot held.
    pub snapshot_events: u64,
    /// Events replayed from the log after it.
    pub replayed: u64,
    /// From opening the store to the engine in live mode.
    pub seconds: f64,
}

fn histogram(bounds: &[f64]) -> Histogram {
    Histogram::new(bounds.iter().copied())
}

/// One workspace's metrics. The handles are shared with its registry:
/// counting on a field is what `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    /// Events durably appended.
    pub events_accepted: Counter,
    /// Events ignored as replays of an earlier id.
    pub events_duplicate: Counter,
    ingest_requests: Family<RouteLabels, Counter>,
    ingest_rejected: Family<RejectedLabels, Counter>,
    pub segment_changes: Counter,
    /// Request receipt → durable and applied.
    pub ingest_latency: Histogram,
    /// One group commit (store append + engine apply + merge records).
    pub commit_latency: Histogram,
    /// The store append (one durable transaction) of a group commit.
    pub append_latency: Histogram,
    /// Events per group commit (all requests drained into one transaction).
    pub commit_events: Histogram,
    /// Group commits; events_accepted / commits is the mean batch.
    pub commits: Counter,
    pub journey_entries: Counter,
    pub journey_steps: Counter,
    pub journey_wakeups: Counter,
    pub auto_replies: Counter,
    triggers_skipped: Family<SkippedLabels, Counter>,
    /// Seconds the oldest due journey timer is late (executor lag).
    pub automation_lag_seconds: Gauge,
    /// One executor pass over queued inputs (commit + delivery).
    pub automation_pass: Histogram,
    http_requests: Family<RequestLabels, Counter>,
    sends: Family<SendLabels, Counter>,
    ai_calls: Family<AiLabels, Counter>,
    ai_tokens: Counter,
    persons: Gauge,
    identities: Gauge,
    engine_start_events: Family<StartLabels, Gauge>,
    engine_start_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// The skipped-trigger counters always shown (trigger, reason, meaning).
pub const SKIPPED: &[(&str, &str, &str)] = &[
    (
        "journey",
        "stale",
        "an event older than trigger_max_age_secs",
    ),
    (
        "journey",
        "backfill",
        "an event of a bulk import without --trigger",
    ),
    (
        "segment_journey",
        "stale",
        "a segment change caused by a stale event",
    ),
    (
        "segment_journey",
        "backfill",
        "a segment change caused by a backfill",
    ),
    (
        "auto_reply",
        "stale",
        "a comment older than trigger_max_age_secs",
    ),
    (
        "auto_reply",
        "backfill",
        "a comment of a bulk import without --trigger",
    ),
    (
        "auto_reply",
        "cooldown",
        "the rule answered this person within its cooldown_secs",
    ),
    (
        "lead",
        "open_lead",
        "the rule already has an open lead task for this person",
    ),
];

/// The send verdicts `siyu_sends_total` counts.
pub const SEND_VERDICTS: &[&str] = &["submitted", "delivered", "suppressed", "delayed", "dead"];

impl Metrics {
    /// The metrics of workspace `workspace` (its `workspace` label).
    pub fn new(workspace: &str) -> Metrics {
        let mut registry = Registry::with_prefix_and_labels(
            "siyu",
            std::iter::once((
                Cow::Borrowed("workspace"),
                Cow::Owned(workspace.to_string()),
            )),
        );
        let m = Metrics {
            registry: Registry::default(),
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            ingest_requests: Family::default(),
            ingest_rejected: Family::default(),
            segment_changes: Counter::default(),
            ingest_latency: histogram(SECONDS),
            commit_latency: histogram(SECONDS),
            append_latency: histogram(SECONDS),
            commit_events: histogram(EVENTS),
            commits: Counter::default(),
            journey_entries: Counter::default(),
            journey_steps: Counter::default(),
            journey_wakeups: Counter::default(),
            auto_replies: Counter::default(),
            triggers_skipped: Family::default(),
            automation_lag_seconds: Gauge::default(),
            automation_pass: histogram(SECONDS),
            http_requests: Family::default(),
            sends: Family::default(),
            ai_calls: Family::default(),
            ai_tokens: Counter::default(),
            persons: Gauge::default(),
            identities: Gauge::default(),
            engine_start_events: Family::default(),
            engine_start_seconds: Gauge::default(),
        };
        let r = &mut registry;
        r.register(
            "build",
            "The running build (always 1)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "http_requests",
            "API requests by route template, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "sends",
            "Send verdicts by channel: submitted (to a connector), delivered, suppressed (a guardrail; the outbox says why), delayed (quiet hours), dead (dead-lettered)",
            m.sends.clone(),
        );
        r.register(
            "ai_calls",
            "Calls of the language model ([ai]) by kind (suggest, summarize, classify) and outcome (ok, timeout, error, bad_answer, budget)",
            m.ai_calls.clone(),
        );
        r.register(
            "ai_tokens",
            "Tokens the language model's answered calls cost (its usage, else an estimate)",
            m.ai_tokens.clone(),
        );
        r.register(
            "ingest_requests",
            "Ingestion requests by route template",
            m.ingest_requests.clone(),
        );
        r.register(
            "ingest_rejected",
            "Events and Segment messages rejected inside an ingest request, by route template and reason (the field that failed)",
            m.ingest_rejected.clone(),
        );
        r.register(
            "triggers_skipped",
            "Triggers that sent nothing: history (stale, backfill), auto-reply cooldowns, open leads",
            m.triggers_skipped.clone(),
        );
        for (name, help, counter) in [
            (
                "events_accepted",
                "Events durably appended",
                &m.events_accepted,
            ),
            (
                "events_duplicate",
                "Events ignored as replays of an earlier id",
                &m.events_duplicate,
            ),
            (
                "segment_changes",
                "Segment entries and exits emitted",
                &m.segment_changes,
            ),
            (
                "commits",
                "Group commits (one store transaction each)",
                &m.commits,
            ),
            (
                "journey_entries",
                "Persons enrolled into journeys",
                &m.journey_entries,
            ),
            (
                "journey_steps",
                "Journey enrollment passes that changed state or produced effects",
                &m.journey_steps,
            ),
            (
                "journey_wakeups",
                "Journey timers fired (waits, timeouts)",
                &m.journey_wakeups,
            ),
            (
                "auto_replies",
                "Inbound texts that matched an auto-reply rule",
                &m.auto_replies,
            ),
        ] {
            r.register(name, help, counter.clone());
        }
        r.register(
            "automation_lag_seconds",
            "How late the oldest due journey timer is",
            m.automation_lag_seconds.clone(),
        );
        r.register("persons", "Persons in the engine", m.persons.clone());
        r.register(
            "engine_start_events",
            "Events in the engine at start, by where they came from: the snapshot it started from (from=\"file\", the node's own; from=\"store\", stored in the database by a node) and the log replayed after it (from=\"log\")",
            m.engine_start_events.clone(),
        );
        r.register(
            "engine_start_seconds",
            "Seconds the engine took to build at start (snapshot and replay)",
            m.engine_start_seconds.clone(),
        );
        r.register(
            "identities",
            "Identities in the engine",
            m.identities.clone(),
        );
        for (name, help, h) in [
            (
                "ingest_latency_seconds",
                "Ingest request latency until acknowledged",
                &m.ingest_latency,
            ),
            (
                "commit_latency_seconds",
                "Group commit latency (append + apply)",
                &m.commit_latency,
            ),
            (
                "append_latency_seconds",
                "Store append latency: one durable transaction per group commit",
                &m.append_latency,
            ),
            (
                "commit_events",
                "Events per group commit (every request queued meanwhile, one transaction)",
                &m.commit_events,
            ),
            (
                "automation_pass_seconds",
                "One automation executor pass (commit and delivery of queued work)",
                &m.automation_pass,
            ),
        ] {
            r.register(name, help, h.clone());
        }
        // Shown at 0 before they first happen: an alert on a rate needs
        // the series to exist.
        for &(trigger, reason, _) in SKIPPED {
            m.triggers_skipped
                .get_or_create(&SkippedLabels { trigger, reason })
                .inc_by(0);
        }
        Metrics { registry, ..m }
    }

    /// Counts a trigger that did nothing (`trigger`, `reason` from [`SKIPPED`]).
    pub fn skipped(&self, trigger: &'static str, reason: &'static str, n: u64) {
        self.triggers_skipped
            .get_or_create(&SkippedLabels { trigger, reason })
            .inc_by(n);
    }

    /// Records how the engine was built at start.
    pub fn engine_started(&self, start: &EngineStart) {
        if start.snapshot != "none" {
            self.engine_start_events
                .get_or_create(&StartLabels {
                    from: start.snapshot,
                })
                .set(start.snapshot_events as i64);
        }
        self.engine_start_events
            .get_or_create(&StartLabels { from: "log" })
            .set(start.replayed as i64);
        self.engine_start_seconds.set(start.seconds);
    }

    /// Counts one API request (`route`: its template).
    pub fn request(&self, route: &str, method: &str, status: u16) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
    }

    /// Counts one send verdict on `channel`: one of [`SEND_VERDICTS`].
    pub fn send(&self, channel: &str, verdict: &'static str) {
        debug_assert!(SEND_VERDICTS.contains(&verdict), "{verdict}");
        self.sends
            .get_or_create(&SendLabels {
                channel: channel.to_string(),
                verdict,
            })
            .inc();
    }

    /// Counts one call of the language model: `kind` (suggest, summarize,
    /// classify), `outcome` (ok, timeout, error, bad_answer, budget) and
    /// the tokens it cost.
    pub fn ai_call(&self, kind: &'static str, outcome: &'static str, tokens: u64) {
        self.ai_calls
            .get_or_create(&AiLabels { kind, outcome })
            .inc();
        self.ai_tokens.inc_by(tokens);
    }

    /// Counts one ingest request on `route` (its template).
    pub fn ingest_request(&self, route: &str) {
        self.ingest_requests
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .inc();
    }

    /// Counts `n` messages of an ingest request on `route` rejected for
    /// `reason` (the field that failed).
    pub fn ingest_rejected(&self, route: &str, reason: &str, n: u64) {
        self.ingest_rejected
            .get_or_create(&RejectedLabels {
                route: route.to_string(),
                reason: reason.to_string(),
            })
            .inc_by(n);
    }

    /// The Prometheus text format ([`CONTENT_TYPE`]), with the engine's
    /// current `persons` and `identities`.
    pub fn render(&self, persons: usize, identities: usize) -> String {
        self.persons.set(persons as i64);
        self.identities.set(identities as i64);
        let mut s = String::new();
        // Writing to a String cannot fail; the encoder only forwards
        // the writer's errors.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_the_workspace_and_labels_are_escaped() {
        let m = Metrics::new("brand_a");
        m.request("/v1/persons/{id}", "GET", 200);
        m.request("/v1/persons/{id}", "GET", 200);
        m.request("/v1/events", "POST", 400);
        m.send("email", "delivered");
        m.send("we\"ird", "dead");
        m.ingest_request("/v1/batch");
        m.ingest_rejected("/v1/batch", "userId", 2);
        m.skipped("journey", "stale", 1);
        m.events_accepted.inc_by(3);
        m.ingest_latency.observe(0.002);
        let text = m.render(3, 4);
        for want in [
            "siyu_http_requests_total{workspace=\"brand_a\",route=\"/v1/persons/{id}\",method=\"GET\",status=\"200\"} 2",
            "siyu_http_requests_total{workspace=\"brand_a\",route=\"/v1/events\",method=\"POST\",status=\"400\"} 1",
            "siyu_sends_total{workspace=\"brand_a\",channel=\"email\",verdict=\"delivered\"} 1",
            "siyu_sends_total{workspace=\"brand_a\",channel=\"we\\\"ird\",verdict=\"dead\"} 1",
            "siyu_ingest_requests_total{workspace=\"brand_a\",route=\"/v1/batch\"} 1",
            "siyu_ingest_rejected_total{workspace=\"brand_a\",route=\"/v1/batch\",reason=\"userId\"} 2",
            "siyu_triggers_skipped_total{workspace=\"brand_a\",trigger=\"journey\",reason=\"stale\"} 1",
            "siyu_triggers_skipped_total{workspace=\"brand_a\",trigger=\"lead\",reason=\"open_lead\"} 0",
            "siyu_events_accepted_total{workspace=\"brand_a\"} 3",
            "siyu_persons{workspace=\"brand_a\"} 3",
            "siyu_identities{workspace=\"brand_a\"} 4",
            "siyu_ingest_latency_seconds_count{workspace=\"brand_a\"} 1",
            "siyu_ingest_latency_seconds_bucket{workspace=\"brand_a\",le=\"0.0025\"} 1",
            "siyu_ingest_latency_seconds_bucket{workspace=\"brand_a\",le=\"0.001\"} 0",
            "siyu_automation_lag_seconds{workspace=\"brand_a\"} 0",
            "# TYPE siyu_sends_total counter",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(text.contains(&format!(
            "siyu_build_info{{workspace=\"brand_a\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        // No series without the workspace.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("{workspace=\"brand_a\""), "{line}");
        }
    }
}
