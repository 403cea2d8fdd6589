//! Prometheus metrics, hand-written: a few counters and latency histograms
//! are all the server needs, and the text format is simple.
//!
//! Labels: API requests per route template (never the concrete path: it
//! names a person), method and status (`siyu_http_requests_total`); sends
//! per channel and verdict (`siyu_sends_total`: submitted, delivered,
//! suppressed, delayed, dead); these and `siyu_build_info{version}`
//! (always 1) carry `workspace="NAME"`, the brand whose `/metrics` was
//! scraped (`Host` or `X-Siyu-Workspace`), so several brands scraped from
//! one process stay apart (the older unlabelled series are per workspace
//! too, told apart by the scrape target). The
//! label sets are bounded: route templates and methods come from the route
//! table, channels from the configuration and definitions.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Latency buckets, seconds.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Batch-size buckets, events.
pub const EVENTS: &[f64] = &[
    1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
];

/// A Prometheus histogram with fixed upper bounds (cumulative buckets).
pub struct Histogram {
    bounds: &'static [f64],
    /// (count per bucket, total count, sum of observed values)
    inner: Mutex<(Vec<u64>, u64, f64)>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new((vec![0; bounds.len()], 0, 0.0)),
        }
    }

    pub fn observe(&self, value: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in self.bounds.iter().enumerate() {
            if value <= *b {
                g.0[i] += 1;
            }
        }
        g.1 += 1;
        g.2 += value;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                g.0.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            g.1, g.2, g.1
        );
    }
}

pub struct Metrics {
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_rejected: AtomicU64,
    /// Rejected events (and Segment messages) by the field that failed
    /// (`userId`, `ts`, `type` …: a fixed vocabulary, the wire format's).
    pub events_rejected_by_field: Mutex<std::collections::BTreeMap<String, u64>>,
    pub ingest_requests: AtomicU64,
    pub segment_changes: AtomicU64,
    /// Request receipt → durable and applied.
    pub ingest_latency: Histogram,
    /// One group commit (store append + engine apply + merge records).
    pub commit_latency: Histogram,
    /// The store append (one durable transaction) of a group commit.
    pub append_latency: Histogram,
    /// Events per group commit (all requests drained into one transaction).
    pub commit_events: Histogram,
    /// Group commits; events_accepted / commits is the mean batch.
    pub commits: AtomicU64,
    pub journey_entries: AtomicU64,
    pub journey_steps: AtomicU64,
    pub journey_wakeups: AtomicU64,
    pub sends_submitted: AtomicU64,
    pub sends_delivered: AtomicU64,
    pub sends_suppressed: AtomicU64,
    pub sends_delayed: AtomicU64,
    pub sends_dead: AtomicU64,
    pub auto_replies: AtomicU64,
    /// Triggers that did nothing, by (trigger, reason): see [`SKIPPED`].
    pub triggers_skipped: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Seconds the oldest due journey timer is late (executor lag).
    pub automation_lag_seconds: AtomicU64,
    /// One executor pass over queued inputs (commit + delivery).
    pub automation_pass: Histogram,
    /// API requests by (route template, method, status).
    pub http_requests: Mutex<std::collections::BTreeMap<(String, String, u16), u64>>,
    /// Send verdicts by (channel, verdict).
    pub sends: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Counts `n` events rejected for `field`.
    pub fn reject(&self, field: &str, n: u64) {
        let mut m = self
            .events_rejected_by_field
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match m.get_mut(field) {
            Some(c) => *c += n,
            None => {
                m.insert(field.to_string(), n);
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events_accepted: AtomicU64::new(0),
            events_duplicate: AtomicU64::new(0),
            events_rejected: AtomicU64::new(0),
            events_rejected_by_field: Mutex::default(),
            ingest_requests: AtomicU64::new(0),
            segment_changes: AtomicU64::new(0),
            ingest_latency: Histogram::new(SECONDS),
            commit_latency: Histogram::new(SECONDS),
            append_latency: Histogram::new(SECONDS),
            commit_events: Histogram::new(EVENTS),
            commits: AtomicU64::new(0),
            journey_entries: AtomicU64::new(0),
            journey_steps: AtomicU64::new(0),
            journey_wakeups: AtomicU64::new(0),
            sends_submitted: AtomicU64::new(0),
            sends_delivered: AtomicU64::new(0),
            sends_suppressed: AtomicU64::new(0),
            sends_delayed: AtomicU64::new(0),
            sends_dead: AtomicU64::new(0),
            auto_replies: AtomicU64::new(0),
            triggers_skipped: Mutex::new(SKIPPED.iter().map(|&(t, r, _)| ((t, r), 0)).collect()),
            automation_lag_seconds: AtomicU64::new(0),
            automation_pass: Histogram::new(SECONDS),
            http_requests: Mutex::new(Default::default()),
            sends: Mutex::new(Default::default()),
        }
    }
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

impl Metrics {
    /// Counts a trigger that did nothing (`trigger`, `reason` from [`SKIPPED`]).
    pub fn skipped(&self, trigger: &'static str, reason: &'static str, n: u64) {
        let mut m = self
            .triggers_skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry((trigger, reason)).or_default() += n;
    }

    /// Counts one API request (`route`: its template).
    pub fn request(&self, route: &str, method: &str, status: u16) {
        let mut m = self.http_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
    }

    /// Counts one send verdict on `channel`: `submitted`, `delivered`,
    /// `suppressed`, `delayed` or `dead`.
    pub fn send(&self, channel: &str, verdict: &'static str) {
        let mut m = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((channel.to_string(), verdict)).or_default() += 1;
    }

    /// The text format; the labelled families carry `workspace`.
    pub fn render(&self, workspace: &str, persons: usize, identities: usize) -> String {
        let workspace = escape_label(workspace);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP siyu_build_info The running build (always 1).\n# TYPE siyu_build_info gauge\nsiyu_build_info{{workspace=\"{workspace}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        {
            let m = self.http_requests.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                s,
                "# HELP siyu_http_requests_total API requests by route template, method and status.\n# TYPE siyu_http_requests_total counter"
            );
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "siyu_http_requests_total{{workspace=\"{workspace}\",route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape_label(route)
                );
            }
        }
        {
            let m = self.sends.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                s,
                "# HELP siyu_sends_total Send verdicts by channel: submitted (to a connector), delivered, suppressed (a guardrail), delayed (quiet hours), dead.\n# TYPE siyu_sends_total counter"
            );
            for ((channel, verdict), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "siyu_sends_total{{workspace=\"{workspace}\",channel=\"{}\",verdict=\"{verdict}\"}} {n}",
                    escape_label(channel)
                );
            }
        }
        {
            let m = self
                .triggers_skipped
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                s,
                "# HELP siyu_triggers_skipped_total Triggers that sent nothing: history (stale, backfill), auto-reply cooldowns, open leads.\n# TYPE siyu_triggers_skipped_total counter"
            );
            for ((trigger, reason), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "siyu_triggers_skipped_total{{trigger=\"{trigger}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        {
            let m = self
                .events_rejected_by_field
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                s,
                "# HELP siyu_events_rejected_by_field_total Events (and Segment messages) rejected, by the field that failed.\n# TYPE siyu_events_rejected_by_field_total counter"
            );
            for (field, n) in m.iter() {
                let _ = writeln!(
                    s,
                    "siyu_events_rejected_by_field_total{{field=\"{field}\"}} {n}"
                );
            }
        }
        let c = |s: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        c(
            &mut s,
            "siyu_events_accepted_total",
            "Events durably appended.",
            &self.events_accepted,
        );
        c(
            &mut s,
            "siyu_events_duplicate_total",
            "Events ignored as replays of an earlier id.",
            &self.events_duplicate,
        );
        c(
            &mut s,
            "siyu_events_rejected_total",
            "Events rejected by validation.",
            &self.events_rejected,
        );
        c(
            &mut s,
            "siyu_ingest_requests_total",
            "Ingestion requests.",
            &self.ingest_requests,
        );
        c(
            &mut s,
            "siyu_segment_changes_total",
            "Segment entries and exits emitted.",
            &self.segment_changes,
        );
        c(
            &mut s,
            "siyu_commits_total",
            "Group commits (one store transaction each).",
            &self.commits,
        );
        c(
            &mut s,
            "siyu_journey_entries_total",
            "Persons enrolled into journeys.",
            &self.journey_entries,
        );
        c(
            &mut s,
            "siyu_journey_steps_total",
            "Journey enrollment passes that changed state or produced effects.",
            &self.journey_steps,
        );
        c(
            &mut s,
            "siyu_journey_wakeups_total",
            "Journey timers fired (waits, timeouts).",
            &self.journey_wakeups,
        );
        c(
            &mut s,
            "siyu_sends_submitted_total",
            "Messages that passed the guardrails and went to a connector.",
            &self.sends_submitted,
        );
        c(
            &mut s,
            "siyu_sends_delivered_total",
            "Messages a connector confirmed.",
            &self.sends_delivered,
        );
        c(
            &mut s,
            "siyu_sends_suppressed_total",
            "Send attempts stopped by a guardrail (see the outbox for why).",
            &self.sends_suppressed,
        );
        c(
            &mut s,
            "siyu_sends_delayed_total",
            "Send attempts delayed (quiet hours).",
            &self.sends_delayed,
        );
        c(
            &mut s,
            "siyu_sends_dead_total",
            "Outbox items dead-lettered.",
            &self.sends_dead,
        );
        c(
            &mut s,
            "siyu_auto_replies_total",
            "Inbound texts that matched an auto-reply rule.",
            &self.auto_replies,
        );
        let _ = writeln!(
            s,
            "# HELP siyu_automation_lag_seconds How late the oldest due journey timer is.\n# TYPE siyu_automation_lag_seconds gauge\nsiyu_automation_lag_seconds {}",
            self.automation_lag_seconds.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP siyu_persons Persons in the engine.\n# TYPE siyu_persons gauge\nsiyu_persons {persons}");
        let _ = writeln!(s, "# HELP siyu_identities Identities in the engine.\n# TYPE siyu_identities gauge\nsiyu_identities {identities}");
        self.ingest_latency.render(
            "siyu_ingest_latency_seconds",
            "Ingest request latency until acknowledged.",
            &mut s,
        );
        self.commit_latency.render(
            "siyu_commit_latency_seconds",
            "Group commit latency (append + apply).",
            &mut s,
        );
        self.append_latency.render(
            "siyu_append_latency_seconds",
            "Store append latency: one durable transaction per group commit.",
            &mut s,
        );
        self.commit_events.render(
            "siyu_commit_events",
            "Events per group commit (every request queued meanwhile, one transaction).",
            &mut s,
        );
        self.automation_pass.render(
            "siyu_automation_pass_seconds",
            "One automation executor pass (commit and delivery of queued work).",
            &mut s,
        );
        s
    }
}

/// A label value as the text format wants it (`\\`, `\"`, `\n` escaped).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_families_carry_the_workspace_and_escape_labels() {
        let m = Metrics::default();
        m.request("/v1/persons/{id}", "GET", 200);
        m.request("/v1/persons/{id}", "GET", 200);
        m.request("/v1/events", "POST", 400);
        m.send("email", "delivered");
        m.send("we\"ird", "dead");
        m.ingest_latency.observe(0.002);
        let text = m.render("brand_a", 3, 4);
        for want in [
            "siyu_http_requests_total{workspace=\"brand_a\",route=\"/v1/persons/{id}\",method=\"GET\",status=\"200\"} 2",
            "siyu_http_requests_total{workspace=\"brand_a\",route=\"/v1/events\",method=\"POST\",status=\"400\"} 1",
            "siyu_sends_total{workspace=\"brand_a\",channel=\"email\",verdict=\"delivered\"} 1",
            "siyu_sends_total{workspace=\"brand_a\",channel=\"we\\\"ird\",verdict=\"dead\"} 1",
            "siyu_persons 3",
            "siyu_ingest_latency_seconds_count 1",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(text.contains(&format!(
            "siyu_build_info{{workspace=\"brand_a\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
