use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use siyu_connectors::{
    ChannelLimits, Connector, Dispatcher, SendError, SmsConfig, SmsConnector, SmtpConfig,
    SmtpConnector, SmtpTls, SubmitError,
};

use crate::support::{msg, next_final, ChannelSink, HttpServer, Outcome, SmtpServer};
use crate::tencent::SMS_OK;
use crate::webhook::{fast_policy, webhook};

fn smtp(port: u16) -> SmtpConnector {
    SmtpConnector::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        from: "noreply@siyu.test".into(),
        tls: SmtpTls::None,
        timeout_ms: 2_000,
        ..SmtpConfig::default()
    })
    .unwrap()
}

fn sms(server: &HttpServer) -> SmsConnector {
    SmsConnector::new(&SmsConfig {
        base_url: server.url(""),
        sdk_app_id: "1400000000".into(),
        sign_name: "思语".into(),
        template_id: Some("100".into()),
        timeout_ms: 2_000,
        ..SmsConfig::default()
    })
    .unwrap()
}

/// A webhook that hangs past its timeout, with more messages than its
/// concurrency, must not delay e-mail and SMS submitted after them.
#[tokio::test]
async fn a_hanging_webhook_does_not_delay_other_channels() {
    const WEBHOOK_TIMEOUT: Duration = Duration::from_millis(500);
    let hook_server = HttpServer::start().await;
    hook_server.always("/hook", 200, Duration::from_secs(5), "{}");
    let sms_server = HttpServer::start().await;
    sms_server.always("/sms/send", 200, Duration::ZERO, SMS_OK);
    let smtp_server = SmtpServer::start("250 2.1.5 OK").await;

    let connectors: HashMap<String, Arc<dyn Connector>> = HashMap::from([
        (
            "webhook".to_string(),
            Arc::new(webhook(&hook_server, WEBHOOK_TIMEOUT.as_millis() as u64))
                as Arc<dyn Connector>,
        ),
        (
            "email".to_string(),
            Arc::new(smtp(smtp_server.port)) as Arc<dyn Connector>,
        ),
        (
            "sms".to_string(),
            Arc::new(sms(&sms_server)) as Arc<dyn Connector>,
        ),
    ]);
    let limits = ChannelLimits {
        concurrency: 4,
        ..ChannelLimits::default()
    };
    let (sink, mut rx) = ChannelSink::new();
    let dispatcher = Dispatcher::with_limits(connectors, fast_policy(2), limits, sink);

    for i in 0..8 {
        dispatcher
            .submit(msg("webhook", "u-1", &format!("hook-{i}")))
            .unwrap();
    }
    // Let the webhook attempts start and hang.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = dispatcher.stats().channels["webhook"];
    assert_eq!((stats.in_flight, stats.queued), (4, 4), "{stats:?}");

    let start = Instant::now();
    dispatcher
        .submit(msg("email", "alice@example.com", "mail-1"))
        .unwrap();
    dispatcher
        .submit(msg("sms", "+8613800000000", "sms-1"))
        .unwrap();

    let mut others = HashMap::new();
    while others.len() < 2 {
        match next_final(&mut rx).await {
            Outcome::Delivered { key, at, .. } => {
                others.insert(key, at.duration_since(start));
            }
            other => panic!("nothing else may finish first: {other:?}"),
        }
    }
    for (key, took) in &others {
        assert!(took < &(WEBHOOK_TIMEOUT / 3), "{key} took {took:?}");
    }

    // The webhook messages all end as dead letters after 2 timed-out attempts.
    let mut dead = 0;
    while dead < 8 {
        match next_final(&mut rx).await {
            Outcome::Dead {
                key,
                attempts,
                error,
                at,
            } => {
                assert!(key.starts_with("hook-"), "{key}");
                assert_eq!(attempts, 2);
                assert!(error.contains("timed out"), "{error}");
                assert!(at.duration_since(start) > WEBHOOK_TIMEOUT);
                dead += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = dispatcher.stats();
    assert_eq!(stats.channels["webhook"].dead, 8);
    assert_eq!(stats.channels["webhook"].retried, 8);
    assert_eq!(stats.channels["email"].delivered, 1);
    assert_eq!(stats.channels["sms"].delivered, 1);
    assert_eq!(smtp_server.captured.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_channel_is_dead_lettered_at_submit() {
    let (sink, mut rx) = ChannelSink::new();
    let dispatcher = Dispatcher::new(HashMap::new(), fast_policy(3), sink);
    let err = dispatcher.submit(msg("fax", "+1", "k-fax")).unwrap_err();
    assert!(
        matches!(&err, SubmitError::UnknownChannel(c) if c == "fax"),
        "{err}"
    );
    match rx.recv().await.unwrap() {
        Outcome::Dead {
            key,
            attempts,
            error,
            ..
        } => {
            assert_eq!((key.as_str(), attempts), ("k-fax", 0));
            assert!(error.contains("unknown channel"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dispatcher.stats().unknown_channel, 1);
    assert!(matches!(
        dispatcher.send_now(&msg("fax", "+1", "k")).await,
        Err(SendError::Permanent(_))
    ));
}

#[tokio::test]
async fn a_full_queue_hands_the_message_back() {
    let server = HttpServer::start().await;
    server.always("/hook", 200, Duration::from_secs(5), "{}");
    let connectors = HashMap::from([(
        "webhook".to_string(),
        Arc::new(webhook(&server, 5_000)) as Arc<dyn Connector>,
    )]);
    let limits = ChannelLimits {
        queue_capacity: 2,
        concurrency: 1,
        ..ChannelLimits::default()
    };
    let (sink, _rx) = ChannelSink::new();
    let dispatcher = Dispatcher::with_limits(connectors, fast_policy(1), limits, sink);
    dispatcher.submit(msg("webhook", "u", "a")).unwrap();
    dispatcher.submit(msg("webhook", "u", "b")).unwrap();
    match dispatcher.submit(msg("webhook", "u", "c")) {
        Err(SubmitError::QueueFull { channel, message }) => {
            assert_eq!(channel, "webhook");
            assert_eq!(message.idempotency_key, "c");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn send_now_is_one_attempt() {
    let server = HttpServer::start().await;
    server.then("/hook", 503, "").then("/hook", 200, "{}");
    let connectors = HashMap::from([(
        "webhook".to_string(),
        Arc::new(webhook(&server, 2_000)) as Arc<dyn Connector>,
    )]);
    let (sink, mut rx) = ChannelSink::new();
    let dispatcher = Dispatcher::new(connectors, fast_policy(5), sink);
    let m = msg("webhook", "u", "now");
    assert!(matches!(
        dispatcher.send_now(&m).await,
        Err(SendError::Retryable(_))
    ));
    assert_eq!(dispatcher.send_now(&m).await.unwrap().status, 200);
    assert_eq!(server.requests("/hook").len(), 2);
    assert!(
        rx.try_recv().is_err(),
        "send_now does not report to the sink"
    );
}
