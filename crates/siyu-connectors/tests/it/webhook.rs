use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use siyu_connectors::{
    verify, Connector, Dispatcher, RetryPolicy, SendError, WebhookConfig, WebhookConnector,
};

use crate::support::{msg, next_final, ChannelSink, HttpServer, Outcome};

const SECRET: &str = "whsec-test";

pub fn webhook(server: &HttpServer, timeout_ms: u64) -> WebhookConnector {
    WebhookConnector::new(&WebhookConfig {
        url: server.url("/hook"),
        secret: SECRET.into(),
        timeout_ms,
    })
    .expect("webhook config")
}

pub fn fast_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        jitter: 0.0,
    }
}

#[tokio::test]
async fn post_is_signed_and_carries_the_message() {
    let server = HttpServer::start().await;
    server.then("/hook", 200, r#"{"id":"evt_1"}"#);
    let m = msg("webhook", "u-1", "run-1/step-2");

    let d = webhook(&server, 2_000).send(&m).await.expect("delivered");
    assert_eq!(d.status, 200);
    assert_eq!(d.remote_id.as_deref(), Some("evt_1"));

    let reqs = server.requests("/hook");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("idempotency-key"), "run-1/step-2");
    let now = siyu_now();
    verify(
        SECRET.as_bytes(),
        r.header("x-siyu-timestamp"),
        &r.body,
        r.header("x-siyu-signature"),
        now,
        60,
    )
    .expect("signature verifies");
    assert!(verify(
        b"other",
        r.header("x-siyu-timestamp"),
        &r.body,
        r.header("x-siyu-signature"),
        now,
        60
    )
    .is_err());

    let body = r.json();
    let ts: i64 = r.header("x-siyu-timestamp").parse().unwrap();
    assert_eq!(body["idempotency_key"], "run-1/step-2");
    assert_eq!(body["channel"], "webhook");
    assert_eq!(body["recipient"], "u-1");
    assert_eq!(body["identity"], "webhook:u-1");
    assert_eq!(body["subject"], "订单已发货");
    assert_eq!(body["body"], "您好，您的订单已发货。");
    assert_eq!(body["mass"], false);
    assert_eq!(
        body["data"],
        serde_json::json!({"journey": "welcome", "step": 2})
    );
    assert_eq!(body["sent_at"], siyu_domain_rfc3339(ts));
    assert_eq!(body.as_object().unwrap().len(), 9);
}

fn siyu_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn siyu_domain_rfc3339(ts: i64) -> String {
    siyu_domain::time::format_rfc3339(ts)
}

#[tokio::test]
async fn statuses_are_classified() {
    let server = HttpServer::start().await;
    let hook = webhook(&server, 2_000);
    let m = msg("webhook", "u-1", "k");
    for (status, retryable) in [
        (408, true),
        (429, true),
        (500, true),
        (503, true),
        (400, false),
        (401, false),
        (404, false),
        (422, false),
    ] {
        server.then("/hook", status, "nope");
        let err = hook.send(&m).await.expect_err("not 2xx");
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(err.detail().contains(&status.to_string()), "{err}");
    }
    server.then("/hook", 204, "");
    assert_eq!(hook.send(&m).await.expect("204 is ok").status, 204);

    // Nobody listens: a connection error is retryable.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone = WebhookConnector::new(&WebhookConfig {
        url: format!("http://{closed}/hook"),
        secret: SECRET.into(),
        timeout_ms: 1_000,
    })
    .unwrap();
    assert!(matches!(gone.send(&m).await, Err(SendError::Retryable(_))));
}

#[tokio::test]
async fn two_503s_then_200_is_delivered_on_the_third_attempt() {
    let server = HttpServer::start().await;
    server
        .then("/hook", 503, "busy")
        .then("/hook", 503, "busy")
        .then("/hook", 200, "{}");
    let (sink, mut rx) = ChannelSink::new();
    let connectors = HashMap::from([(
        "webhook".to_string(),
        Arc::new(webhook(&server, 2_000)) as Arc<dyn Connector>,
    )]);
    let dispatcher = Dispatcher::new(connectors, fast_policy(5), sink);
    dispatcher.submit(msg("webhook", "u-1", "k-503")).unwrap();

    let mut retries = Vec::new();
    let outcome = loop {
        match rx.recv().await.expect("outcome") {
            Outcome::Retrying { key, attempt } => {
                assert_eq!(key, "k-503");
                retries.push(attempt)
            }
            other => break other,
        }
    };
    assert_eq!(retries, [1, 2]);
    let Outcome::Delivered {
        attempts, delivery, ..
    } = outcome
    else {
        panic!("expected delivery, got {outcome:?}");
    };
    assert_eq!(attempts, 3);
    assert_eq!(delivery.status, 200);
    let reqs = server.requests("/hook");
    assert_eq!(reqs.len(), 3);
    // Every attempt carries the same idempotency key.
    assert!(reqs.iter().all(|r| r.header("idempotency-key") == "k-503"));
    let stats = dispatcher.stats().channels["webhook"];
    assert_eq!((stats.delivered, stats.retried, stats.dead), (1, 2, 0));
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn a_400_is_dead_lettered_without_retry() {
    let server = HttpServer::start().await;
    server.always("/hook", 400, Duration::ZERO, "bad payload");
    let (sink, mut rx) = ChannelSink::new();
    let connectors = HashMap::from([(
        "webhook".to_string(),
        Arc::new(webhook(&server, 2_000)) as Arc<dyn Connector>,
    )]);
    let dispatcher = Dispatcher::new(connectors, fast_policy(5), sink);
    dispatcher.submit(msg("webhook", "u-1", "k-400")).unwrap();

    let outcome = rx.recv().await.expect("outcome");
    let Outcome::Dead {
        attempts, error, ..
    } = outcome
    else {
        panic!("expected a dead letter, got {outcome:?}");
    };
    assert_eq!(attempts, 1);
    assert!(
        error.contains("permanent") && error.contains("400"),
        "{error}"
    );
    dispatcher.shutdown().await;
    assert_eq!(server.requests("/hook").len(), 1);
    assert!(rx.try_recv().is_err(), "nothing after the dead letter");
}

#[tokio::test]
async fn retries_exhausted_is_a_dead_letter() {
    let server = HttpServer::start().await;
    server.always("/hook", 500, Duration::ZERO, "");
    let (sink, mut rx) = ChannelSink::new();
    let connectors = HashMap::from([(
        "webhook".to_string(),
        Arc::new(webhook(&server, 2_000)) as Arc<dyn Connector>,
    )]);
    let dispatcher = Dispatcher::new(connectors, fast_policy(3), sink);
    dispatcher.submit(msg("webhook", "u-1", "k-500")).unwrap();
    match next_final(&mut rx).await {
        Outcome::Dead {
            attempts, error, ..
        } => {
            assert_eq!(attempts, 3);
            assert!(error.starts_with("retryable: webhook: http 500"), "{error}");
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(server.requests("/hook").len(), 3);
}
