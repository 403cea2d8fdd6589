//! Real local servers for the connectors to talk to (an HTTP server that
//! records requests and answers from a per-path script, a small SMTP server
//! that captures messages) and a sink that reports outcomes on a channel.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::Value;
use siyu_connectors::{Delivery, DeliverySink, OutboundMessage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub fn msg(channel: &str, recipient: &str, key: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: key.to_string(),
        channel: channel.to_string(),
        recipient: recipient.to_string(),
        identity: format!("{channel}:{recipient}"),
        subject: Some("订单已发货".to_string()),
        body: "您好，您的订单已发货。".to_string(),
        html: None,
        unsubscribe_url: None,
        mass: false,
        data: serde_json::json!({"journey": "welcome", "step": 2}),
        wechat_template: None,
    }
}

// ---------------------------------------------------------------- sink

#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        key: String,
        delivery: Delivery,
        attempts: u32,
        at: Instant,
    },
    Dead {
        key: String,
        error: String,
        attempts: u32,
        at: Instant,
    },
    Retrying {
        key: String,
        attempt: u32,
    },
}

pub struct ChannelSink(mpsc::UnboundedSender<Outcome>);

impl ChannelSink {
    pub fn new() -> (Arc<ChannelSink>, mpsc::UnboundedReceiver<Outcome>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(ChannelSink(tx)), rx)
    }
}

impl DeliverySink for ChannelSink {
    fn delivered(&self, msg: &OutboundMessage, d: &Delivery, attempts: u32) {
        let _ = self.0.send(Outcome::Delivered {
            key: msg.idempotency_key.clone(),
            delivery: d.clone(),
            attempts,
            at: Instant::now(),
        });
    }

    fn dead_lettered(&self, msg: &OutboundMessage, error: &str, attempts: u32) {
        let _ = self.0.send(Outcome::Dead {
            key: msg.idempotency_key.clone(),
            error: error.to_string(),
            attempts,
            at: Instant::now(),
        });
    }

    fn retrying(&self, msg: &OutboundMessage, _error: &str, attempt: u32, _next_in: Duration) {
        let _ = self.0.send(Outcome::Retrying {
            key: msg.idempotency_key.clone(),
            attempt,
        });
    }
}

/// The next delivered/dead outcome (retries skipped), within 10 s.
pub async fn next_final(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Outcome {
    loop {
        let o = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an outcome within 10 s")
            .expect("sink open");
        if !matches!(o, Outcome::Retrying { .. }) {
            return o;
        }
    }
}

// ---------------------------------------------------------------- http

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("header {name} missing"))
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    delay: Duration,
    body: String,
}

#[derive(Default)]
struct HttpState {
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    defaults: Mutex<HashMap<String, Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

/// An HTTP server on 127.0.0.1:0 that answers every path from its script
/// (then its default, then 404) and records every request.
#[derive(Clone)]
pub struct HttpServer {
    pub addr: SocketAddr,
    state: Arc<HttpState>,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        let state = Arc::new(HttpState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request to `path` gets this answer.
    pub fn then(&self, path: &str, status: u16, body: &str) -> &Self {
        self.then_after(path, status, Duration::ZERO, body)
    }

    pub fn then_after(&self, path: &str, status: u16, delay: Duration, body: &str) -> &Self {
        let reply = Reply {
            status,
            delay,
            body: body.to_string(),
        };
        let mut scripts = self.state.scripts.lock().unwrap();
        scripts
            .entry(path.to_string())
            .or_default()
            .push_back(reply);
        self
    }

    /// Every request to `path` once its script is used up.
    pub fn always(&self, path: &str, status: u16, delay: Duration, body: &str) -> &Self {
        let reply = Reply {
            status,
            delay,
            body: body.to_string(),
        };
        self.state
            .defaults
            .lock()
            .unwrap()
            .insert(path.to_string(), reply);
        self
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        let all = self.state.requests.lock().unwrap();
        all.iter().filter(|r| r.path == path).cloned().collect()
    }
}

async fn handle(
    State(state): State<Arc<HttpState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = uri.path().to_string();
    let query = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    state.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query,
        headers,
        body: body.to_vec(),
    });
    let reply = {
        let scripted = state
            .scripts
            .lock()
            .unwrap()
            .get_mut(&path)
            .and_then(|q| q.pop_front());
        scripted.or_else(|| state.defaults.lock().unwrap().get(&path).cloned())
    };
    let Some(reply) = reply else {
        return (StatusCode::NOT_FOUND, String::from("no script"));
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    (
        StatusCode::from_u16(reply.status).expect("status"),
        reply.body,
    )
}

// ---------------------------------------------------------------- smtp

#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

/// A small SMTP server on 127.0.0.1:0: 220 greeting, EHLO/HELO 250,
/// MAIL 250, RCPT answered with `rcpt_reply`, DATA 354 up to the lone ".",
/// QUIT 221. Captures each accepted message (dot-stuffing undone).
pub struct SmtpServer {
    pub port: u16,
    pub captured: Arc<Mutex<Vec<Captured>>>,
}

impl SmtpServer {
    pub async fn start(rcpt_reply: &'static str) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(stream, rcpt_reply, sink).await;
                });
            }
        });
        SmtpServer { port, captured }
    }
}

async fn smtp_session(
    stream: TcpStream,
    rcpt_reply: &str,
    sink: Arc<Mutex<Vec<Captured>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut current = Captured::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-test.local\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("HELO") || upper.starts_with("RSET") || upper == "NOOP" {
            "250 OK\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            current = Captured {
                mail_from: line[10..].trim().to_string(),
                ..Captured::default()
            };
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            if rcpt_reply.starts_with('2') {
                current.rcpt_to.push(line[8..].trim().to_string());
            }
            format!("{rcpt_reply}\r\n")
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                let l = l.strip_prefix('.').unwrap_or(&l);
                data.push_str(l);
                data.push_str("\r\n");
            }
            current.data = data;
            sink.lock().unwrap().push(std::mem::take(&mut current));
            "250 2.0.0 OK queued as Q123\r\n".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 unknown command\r\n".into()
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// The unfolded value of header `name` in a raw message.
pub fn header_value(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Decodes RFC 2047 `=?utf-8?b?...?=` words (whitespace between adjacent
/// words dropped, as the RFC says).
pub fn decode_words(value: &str) -> String {
    use base64::Engine;
    let mut out = Vec::new();
    for part in value.split_whitespace() {
        let lower = part.to_ascii_lowercase();
        if lower.starts_with("=?utf-8?b?") && lower.ends_with("?=") {
            let b64 = &part[10..part.len() - 2];
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64 word"),
            );
        } else {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend(part.as_bytes());
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// The decoded body of a base64 single-part message.
pub fn decode_body(raw: &str) -> String {
    use base64::Engine;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let joined: String = body.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(joined)
        .expect("base64 body");
    String::from_utf8(bytes).expect("utf-8 body")
}
