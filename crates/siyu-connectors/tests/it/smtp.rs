use siyu_connectors::{Connector, SendError, SmtpConfig, SmtpConnector, SmtpTls};

use crate::support::{decode_body, decode_words, header_value, msg, SmtpServer};

fn connector(port: u16) -> SmtpConnector {
    SmtpConnector::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        from: "思语 <noreply@siyu.test>".into(),
        tls: SmtpTls::None,
        timeout_ms: 2_000,
        ..SmtpConfig::default()
    })
    .expect("smtp config")
}

#[tokio::test]
async fn delivers_a_utf8_message_with_a_stable_message_id() {
    let server = SmtpServer::start("250 2.1.5 OK").await;
    let mut m = msg("email", "alice@example.com", "journey-7/step-2/person-9");
    m.subject = Some(
        "您的订单已发货 — 请注意查收，这是一条足够长的中文主题，用来检查折行后的编码字".into(),
    );
    m.body = "您好，张三：\n\n您的订单已发货。\n.以点开头的一行\n祝好".into();

    let d = connector(server.port).send(&m).await.expect("delivered");
    assert_eq!(d.status, 0);
    assert!(
        d.remote_id.as_deref().unwrap_or("").contains("Q123"),
        "{d:?}"
    );

    let captured = server.captured.lock().unwrap().clone();
    assert_eq!(captured.len(), 1);
    let c = &captured[0];
    assert_eq!(c.mail_from, "<noreply@siyu.test>");
    assert_eq!(c.rcpt_to, ["<alice@example.com>"]);
    let raw = &c.data;
    assert_eq!(
        header_value(raw, "To").as_deref(),
        Some("alice@example.com")
    );
    let from = header_value(raw, "From").unwrap();
    assert_eq!(decode_words(&from), "思语 <noreply@siyu.test>", "{from}");
    assert_eq!(
        decode_words(&header_value(raw, "Subject").unwrap()),
        m.subject.clone().unwrap()
    );
    let content_type = header_value(raw, "Content-Type").unwrap();
    assert!(
        content_type.to_ascii_lowercase().contains("charset=utf-8"),
        "{content_type}"
    );
    assert_eq!(
        header_value(raw, "Content-Transfer-Encoding").as_deref(),
        Some("base64")
    );
    assert_eq!(decode_body(raw), m.body.replace('\n', "\r\n"));
    assert_eq!(
        header_value(raw, "X-Siyu-Idempotency-Key").as_deref(),
        Some("journey-7/step-2/person-9")
    );
    let message_id = header_value(raw, "Message-ID").unwrap();
    assert_eq!(
        message_id,
        siyu_connectors::smtp::message_id(&m.idempotency_key, "siyu.test")
    );
    assert!(message_id.starts_with('<') && message_id.ends_with("@siyu.test>"));

    // The same step retried carries the same Message-ID.
    connector(server.port)
        .send(&m)
        .await
        .expect("delivered again");
    let again = server.captured.lock().unwrap()[1].data.clone();
    assert_eq!(header_value(&again, "Message-ID").unwrap(), message_id);
}

#[tokio::test]
async fn rcpt_451_is_retryable_and_550_permanent() {
    let busy = SmtpServer::start("451 4.7.1 greylisted, try later").await;
    let err = connector(busy.port)
        .send(&msg("email", "bob@example.com", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err}");
    assert!(err.detail().contains("451"), "{err}");

    let gone = SmtpServer::start("550 5.1.1 no such user").await;
    let err = connector(gone.port)
        .send(&msg("email", "bob@example.com", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(err.detail().contains("550"), "{err}");
    assert!(busy.captured.lock().unwrap().is_empty() && gone.captured.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_recipient_is_permanent_and_no_server_is_retryable() {
    let server = SmtpServer::start("250 OK").await;
    let err = connector(server.port)
        .send(&msg("email", "not an address", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connector(closed)
        .send(&msg("email", "bob@example.com", "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable(_)), "{err}");
}

/// The parts of a `multipart/*` message: each part's headers and its
/// base64-decoded body.
fn parts(raw: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let content_type = header_value(raw, "Content-Type").unwrap();
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"')
        .to_string();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let sep = format!("--{boundary}");
    body.split(&sep)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let (head, b) = p.trim_start_matches("\r\n").split_once("\r\n\r\n").unwrap();
            let joined: String = b.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .expect("base64 part");
            (head.to_string(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn marketing_mail_has_one_click_unsubscribe_and_an_html_part() {
    let server = SmtpServer::start("250 2.1.5 OK").await;
    let mut m = msg("email", "alice@example.com", "journey-8/step-1/person-3");
    m.subject = Some("本周上新".into());
    m.body = "您好：本周上新。\n退订：https://siyu.example/u/0a1b.2c3d".into();
    m.html = Some(
        "<p>您好：<b>本周上新</b></p><a href=\"https://siyu.example/u/0a1b.2c3d\">退订</a>".into(),
    );
    m.unsubscribe_url = Some("https://siyu.example/u/0a1b.2c3d".into());
    let c = SmtpConnector::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(server.port),
        from: "思语 <noreply@siyu.test>".into(),
        tls: SmtpTls::None,
        timeout_ms: 2_000,
        unsubscribe_mailto: Some("unsubscribe@siyu.test".into()),
        ..SmtpConfig::default()
    })
    .unwrap();
    c.send(&m).await.expect("delivered");
    let raw = server.captured.lock().unwrap()[0].data.clone();
    assert_eq!(
        header_value(&raw, "List-Unsubscribe").as_deref(),
        Some("<mailto:unsubscribe@siyu.test?subject=unsubscribe%200a1b.2c3d>, <https://siyu.example/u/0a1b.2c3d>"),
        "{raw}"
    );
    assert_eq!(
        header_value(&raw, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let content_type = header_value(&raw, "Content-Type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let p = parts(&raw);
    assert_eq!(p.len(), 2, "{raw}");
    // Text first, HTML last (the preferred one), both UTF-8 base64.
    assert!(
        p[0].0
            .to_ascii_lowercase()
            .contains("text/plain; charset=utf-8"),
        "{}",
        p[0].0
    );
    assert_eq!(p[0].1, m.body.replace('\n', "\r\n"));
    assert!(
        p[1].0
            .to_ascii_lowercase()
            .contains("text/html; charset=utf-8"),
        "{}",
        p[1].0
    );
    assert!(
        p[1].0.contains("Content-Transfer-Encoding: base64"),
        "{}",
        p[1].0
    );
    assert_eq!(p[1].1, m.html.clone().unwrap());

    // A transactional message (no unsubscribe URL) has neither header;
    // the mailto defaults to the From address.
    let mut t = msg("email", "bob@example.com", "k2");
    connector(server.port).send(&t).await.unwrap();
    let raw = server.captured.lock().unwrap()[1].data.clone();
    assert_eq!(header_value(&raw, "List-Unsubscribe"), None);
    assert_eq!(header_value(&raw, "List-Unsubscribe-Post"), None);
    t.unsubscribe_url = Some("https://siyu.example/u/ff.ee".into());
    connector(server.port).send(&t).await.unwrap();
    let raw = server.captured.lock().unwrap()[2].data.clone();
    assert_eq!(
        header_value(&raw, "List-Unsubscribe").as_deref(),
        Some("<mailto:noreply@siyu.test?subject=unsubscribe%20ff.ee>, <https://siyu.example/u/ff.ee>")
    );
    // A link that is not http(s) is refused rather than sent broken.
    t.unsubscribe_url = Some("/u/ff.ee".into());
    let err = connector(server.port).send(&t).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(err.detail().contains("public_url"), "{err}");
}
