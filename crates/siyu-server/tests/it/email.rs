//! Marketing e-mail end to end: a template with an HTML body sent by the
//! executor through the SMTP connector to a real local SMTP server (in
//! this test), the raw message read back: `List-Unsubscribe` (mailto and
//! https, the https one the server's one-click `/u/{token}`),
//! `List-Unsubscribe-Post` (RFC 8058), multipart/alternative text + HTML;
//! then the mailbox provider's one-click POST unsubscribes the person.

use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_connectors::{SmtpConfig, SmtpTls};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 test ESMTP\r\n").await.ok();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go on\r\n").await.ok();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        keep.lock().unwrap().push(data);
                        b"250 2.0.0 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.ok();
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    w.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, got)
}

fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The base64-decoded bodies of a multipart message's parts, with their headers.
fn parts(raw: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let ct = header(raw, "Content-Type").unwrap();
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    body.split(&format!("--{boundary}"))
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let (h, b) = p.trim_start_matches("\r\n").split_once("\r\n\r\n").unwrap();
            let joined: String = b.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap();
            (h.to_string(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

async fn call(app: &TestApp, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        method,
        path,
        Some(&app.key),
        "application/json",
        body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketing_mail_is_multipart_with_one_click_unsubscribe() {
    let (port, got) = smtp_server().await;
    let app = TestApp::spawn_with(Backend::Sqlite, 1 << 20, |c| {
        c.public_url = "https://siyu.example".into();
        c.connectors.email = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            from: "思语 <noreply@siyu.example>".into(),
            tls: SmtpTls::None,
            timeout_ms: 2000,
            unsubscribe_mailto: Some("unsubscribe@siyu.example".into()),
            ..SmtpConfig::default()
        });
    })
    .await;
    let (s, b) = call(&app, "PUT", "/v1/guardrails", json!({"quiet_hours": null})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &app,
        "PUT",
        "/v1/templates/news",
        json!({
            "subject": "{{ name | default: \"朋友\" }}，本周上新",
            "body": "{{ name | default: \"朋友\" }}：本周上新。退订 {{ unsubscribe_link }}",
            "html": "<p>{{ name | default: \"朋友\" }}：<b>本周上新</b></p><a href=\"{{ unsubscribe_link }}\">退订</a>",
            "class": "marketing"
        }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post_events(r#"{"ts": 1790000000, "identity": "email:alice@example.com", "type": "identify", "channel": "email", "traits": {"name": "<王芳>"}}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &app,
        "POST",
        "/v1/sends",
        json!({"id": "n1", "identities": ["email:alice@example.com"], "template": "news", "channel": "email", "kind": "direct"}),
    )
    .await;
    assert_eq!((s, b["queued"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let started = Instant::now();
    let raw = loop {
        if let Some(m) = got.lock().unwrap().first().cloned() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no mail arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let list = header(&raw, "List-Unsubscribe").expect(&raw);
    let (mailto, https) = list.split_once(", ").expect(&list);
    let url = https
        .strip_prefix("<https://siyu.example/u/")
        .and_then(|t| t.strip_suffix('>'))
        .expect(&list);
    assert_eq!(
        mailto,
        format!("<mailto:unsubscribe@siyu.example?subject=unsubscribe%20{url}>")
    );
    assert_eq!(
        header(&raw, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(header(&raw, "Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    let p = parts(&raw);
    assert_eq!(p.len(), 2, "{raw}");
    assert!(
        p[0].0.to_ascii_lowercase().contains("text/plain"),
        "{}",
        p[0].0
    );
    assert!(p[0].1.starts_with("<王芳>：本周上新。"), "{}", p[0].1);
    assert!(
        p[1].0.to_ascii_lowercase().contains("text/html"),
        "{}",
        p[1].0
    );
    let link = format!("https://siyu.example/u/{url}");
    assert_eq!(
        p[1].1,
        format!("<p>&lt;王芳&gt;：<b>本周上新</b></p><a href=\"{link}\">退订</a>")
    );
    assert!(
        p[0].1.contains(&link),
        "the text body's link is the header's"
    );

    // The mailbox provider's one-click POST (RFC 8058).
    let (s, b) = app
        .call(
            "POST",
            &format!("/u/{url}"),
            None,
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let started = Instant::now();
    loop {
        let (_, c) = app.get("/v1/persons/email:alice@example.com/consent").await;
        if c.to_string().contains("unsubscribe_link") {
            assert!(c.to_string().contains("false"), "{c}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{c}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
