//! Delivery: the [`Dispatcher`] takes messages, sends them through the
//! channel's [`Connector`] with retries and exponential backoff, and tells a
//! [`DeliverySink`] how each one ended (delivered or dead-lettered).
//!
//! Isolation is the point of the design: every channel has its own worker
//! task, its own bounded queue (`queue_capacity` messages waiting or in
//! flight, [`SubmitError::QueueFull`] beyond) and its own concurrency limit
//! (`concurrency` attempts at once). A remote that hangs until its timeout,
//! or answers 5xx, only ever fills its own channel; the other channels keep
//! their full throughput. A message waiting for its next retry holds no
//! concurrency permit, so retries do not starve fresh messages.
//!
//! The dispatcher keeps nothing durable: the sink (the server's executor)
//! records deliveries and dead letters in its store. Messages still queued
//! when the process dies are the executor's to resubmit.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::{Connector, Delivery, OutboundMessage, SendError};

/// How often and how patiently a message is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (≥ 1). Default 5.
    pub max_attempts: u32,
    /// The delay after the first failed attempt; doubled after each further
    /// one. Default 500 ms.
    pub base_delay: Duration,
    /// The cap of the doubled delay. Default 60 s.
    pub max_delay: Duration,
    /// The fraction (0.0..=1.0) of each delay taken off at random, so that
    /// messages failing together do not retry together. Default 0.2. The
    /// randomness is a hash of the idempotency key and the attempt, so a
    /// given message always waits the same (reproducible tests and logs).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based) of the
    /// message with this idempotency key.
    pub fn delay_after(&self, attempt: u32, idempotency_key: &str) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let delay = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            return delay;
        }
        let mut h = std::hash::DefaultHasher::new();
        idempotency_key.hash(&mut h);
        attempt.hash(&mut h);
        // A uniform fraction in [0, 1) from the top 53 bits of the hash.
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(1.0 - jitter * unit)
    }
}

/// Per-channel limits (the same for every channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Messages a channel holds at once, queued or in flight (including
    /// those waiting for a retry). Default 1024.
    pub queue_capacity: usize,
    /// Attempts in progress at once per channel. Default 16.
    pub concurrency: usize,
    /// A bound on one attempt on top of the connector's own request timeout,
    /// for connectors that have none; a lapse is retryable. Default 60 s.
    pub attempt_timeout: Duration,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        ChannelLimits {
            queue_capacity: 1024,
            concurrency: 16,
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the dispatcher reports outcomes. Called from the delivery tasks:
/// implementations must be quick and must not block (hand the record to a
/// channel or a writer thread).
pub trait DeliverySink: Send + Sync + 'static {
    fn delivered(&self, msg: &OutboundMessage, d: &Delivery, attempts: u32);
    /// The message will not be delivered: unknown channel (`attempts` 0),
    /// a permanent error, or retries exhausted.
    fn dead_lettered(&self, msg: &OutboundMessage, error: &str, attempts: u32);
    /// Attempt number `attempt` failed and the next one starts in `next_in`.
    fn retrying(&self, msg: &OutboundMessage, error: &str, attempt: u32, next_in: Duration) {
        let _ = (msg, error, attempt, next_in);
    }
}

#[derive(thiserror::Error, Debug)]
pub enum SubmitError {
    /// No connector serves this channel; the sink has already been told
    /// (`dead_lettered`, 0 attempts).
    #[error("unknown channel: {0}")]
    UnknownChannel(String),
    /// The channel holds `queue_capacity` messages; nothing was recorded,
    /// the message is handed back.
    #[error("queue of channel {channel} is full")]
    QueueFull {
        channel: String,
        message: Box<OutboundMessage>,
    },
    /// The dispatcher is shutting down (its runtime is gone).
    #[error("dispatcher is closed")]
    Closed(Box<OutboundMessage>),
}

/// A snapshot of the counters of one channel (served as is by
/// `GET /v1/connectors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ChannelStats {
    /// Submitted, not yet started.
    pub queued: u64,
    /// Started, not finished (in an attempt or waiting for a retry).
    pub in_flight: u64,
    pub delivered: u64,
    /// Failed attempts followed by another attempt.
    pub retried: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DispatcherStats {
    pub channels: BTreeMap<String, ChannelStats>,
    /// Messages dead-lettered because no connector serves their channel.
    pub unknown_channel: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    in_flight: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ChannelStats {
        ChannelStats {
            queued: self.queued.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
        }
    }
}

/// One queued message; `_slot` is its place in the channel's capacity and is
/// released when the message is finished, however it ends.
struct Job {
    msg: OutboundMessage,
    _slot: OwnedSemaphorePermit,
}

struct Channel {
    connector: Arc<dyn Connector>,
    tx: mpsc::UnboundedSender<Job>,
    slots: Arc<Semaphore>,
    counters: Arc<Counters>,
}

/// See the module doc.
pub struct Dispatcher {
    channels: HashMap<String, Channel>,
    workers: Vec<JoinHandle<()>>,
    sink: Arc<dyn DeliverySink>,
    attempt_timeout: Duration,
    unknown_channel: AtomicU64,
}

/// What every delivery task of a channel shares.
struct Shared {
    connector: Arc<dyn Connector>,
    policy: RetryPolicy,
    sink: Arc<dyn DeliverySink>,
    counters: Arc<Counters>,
    concurrency: Arc<Semaphore>,
    attempt_timeout: Duration,
}

impl Dispatcher {
    /// A dispatcher with the default [`ChannelLimits`].
    ///
    /// # Panics
    /// Outside a Tokio runtime (it spawns one worker task per channel).
    pub fn new(
        connectors: HashMap<String, Arc<dyn Connector>>,
        policy: RetryPolicy,
        sink: Arc<dyn DeliverySink>,
    ) -> Self {
        Self::with_limits(connectors, policy, ChannelLimits::default(), sink)
    }

    /// # Panics
    /// Outside a Tokio runtime (it spawns one worker task per channel).
    pub fn with_limits(
        connectors: HashMap<String, Arc<dyn Connector>>,
        policy: RetryPolicy,
        limits: ChannelLimits,
        sink: Arc<dyn DeliverySink>,
    ) -> Self {
        let policy = RetryPolicy {
            max_attempts: policy.max_attempts.max(1),
            ..policy
        };
        let mut channels = HashMap::new();
        let mut workers = Vec::new();
        for (name, connector) in connectors {
            let (tx, rx) = mpsc::unbounded_channel();
            let counters = Arc::new(Counters::default());
            let shared = Arc::new(Shared {
                connector: connector.clone(),
                policy: policy.clone(),
                sink: sink.clone(),
                counters: counters.clone(),
                concurrency: Arc::new(Semaphore::new(limits.concurrency.max(1))),
                attempt_timeout: limits.attempt_timeout,
            });
            workers.push(tokio::spawn(run_channel(rx, shared)));
            channels.insert(
                name,
                Channel {
                    connector,
                    tx,
                    slots: Arc::new(Semaphore::new(limits.queue_capacity.max(1))),
                    counters,
                },
            );
        }
        Dispatcher {
            channels,
            workers,
            sink,
            attempt_timeout: limits.attempt_timeout,
            unknown_channel: AtomicU64::new(0),
        }
    }

    /// Whether a connector serves `channel`.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// Queues `msg` on its channel; never waits. The outcome reaches the sink.
    pub fn submit(&self, msg: OutboundMessage) -> Result<(), SubmitError> {
        let Some(channel) = self.channels.get(&msg.channel) else {
            self.unknown_channel.fetch_add(1, Ordering::Relaxed);
            let error = format!("unknown channel: {}", msg.channel);
            self.sink.dead_lettered(&msg, &error, 0);
            return Err(SubmitError::UnknownChannel(msg.channel));
        };
        let Ok(slot) = channel.slots.clone().try_acquire_owned() else {
            return Err(SubmitError::QueueFull {
                channel: msg.channel.clone(),
                message: Box::new(msg),
            });
        };
        channel.counters.queued.fetch_add(1, Ordering::Relaxed);
        channel
            .tx
            .send(Job { msg, _slot: slot })
            .map_err(|mpsc::error::SendError(job)| {
                channel.counters.queued.fetch_sub(1, Ordering::Relaxed);
                SubmitError::Closed(Box::new(job.msg))
            })
    }

    /// One attempt, now, bypassing the queue, the retries, the sink and the
    /// stats: for the auto-reply path, where a late answer is worthless.
    pub async fn send_now(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        let Some(channel) = self.channels.get(&msg.channel) else {
            return Err(SendError::Permanent(format!(
                "unknown channel: {}",
                msg.channel
            )));
        };
        attempt(channel.connector.as_ref(), msg, self.attempt_timeout).await
    }

    pub fn stats(&self) -> DispatcherStats {
        DispatcherStats {
            channels: self
                .channels
                .iter()
                .map(|(name, c)| (name.clone(), c.counters.snapshot()))
                .collect(),
            unknown_channel: self.unknown_channel.load(Ordering::Relaxed),
        }
    }

    /// Stops taking messages and waits until every submitted message has
    /// been delivered or dead-lettered (retries included).
    pub async fn shutdown(self) {
        drop(self.channels);
        for worker in self.workers {
            // A worker only ends by its queue closing; a JoinError means a
            // panic in a connector, already reported by the runtime.
            let _ = worker.await;
        }
    }
}

async fn attempt(
    connector: &dyn Connector,
    msg: &OutboundMessage,
    limit: Duration,
) -> Result<Delivery, SendError> {
    match tokio::time::timeout(limit, connector.send(msg)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Retryable(format!(
            "{}: attempt exceeded {} ms",
            connector.name(),
            limit.as_millis()
        ))),
    }
}

/// A channel's worker: starts messages in submission order as concurrency
/// permits free up, each in its own task.
async fn run_channel(mut rx: mpsc::UnboundedReceiver<Job>, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    while let Some(job) = rx.recv().await {
        // The semaphore is never closed, so this only fails if it were.
        let Ok(permit) = shared.concurrency.clone().acquire_owned().await else {
            break;
        };
        shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
        shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(deliver(job, permit, shared.clone()));
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Decrements `in_flight` however the delivery task ends (even by a panic).
struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn deliver(job: Job, permit: OwnedSemaphorePermit, shared: Arc<Shared>) {
    let _in_flight = InFlight(shared.counters.clone());
    let msg = &job.msg;
    let mut first_permit = Some(permit);
    let mut attempts = 0u32;
    loop {
        let permit = match first_permit.take() {
            Some(p) => p,
            None => match shared.concurrency.clone().acquire_owned().await {
                Ok(p) => p,
                // Never closed; see run_channel.
                Err(_) => return,
            },
        };
        attempts += 1;
        let result = attempt(shared.connector.as_ref(), msg, shared.attempt_timeout).await;
        // No permit while waiting for a retry.
        drop(permit);
        match result {
            Ok(delivery) => {
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                shared.sink.delivered(msg, &delivery, attempts);
                return;
            }
            Err(SendError::Retryable(error)) if attempts < shared.policy.max_attempts => {
                let next_in = shared.policy.delay_after(attempts, &msg.idempotency_key);
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                shared.sink.retrying(msg, &error, attempts, next_in);
                tokio::time::sleep(next_in).await;
            }
            Err(e) => {
                shared.counters.dead.fetch_add(1, Ordering::Relaxed);
                shared.sink.dead_lettered(msg, &e.to_string(), attempts);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_reproducibly() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            jitter: 0.0,
        };
        let delays: Vec<u128> = (1..=6).map(|a| p.delay_after(a, "k").as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay_after(u32::MAX, "k"), Duration::from_millis(1000));

        let j = RetryPolicy { jitter: 0.5, ..p };
        for a in 1..=6 {
            let d = j.delay_after(a, "key-1");
            let full = p.delay_after(a, "key-1");
            assert!(d <= full && d >= full / 2, "{d:?} vs {full:?}");
            assert_eq!(d, j.delay_after(a, "key-1"));
        }
        let nan = RetryPolicy {
            jitter: f64::NAN,
            ..p
        };
        assert_eq!(nan.delay_after(1, "k"), Duration::from_millis(100));
    }
}
