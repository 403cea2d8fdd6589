//! How the server accepts and keeps HTTP connections: the accept loop,
//! the per-connection timeouts and the cap on open connections
//! ([`ConnectionLimits`], `[connections]` in the config).
//!
//! Without them a client that opens a socket and sends nothing, or
//! trickles its headers or body a byte at a time (slowloris), keeps a
//! socket — a file descriptor — forever; a few thousand of them and the
//! process cannot accept anything. So every connection is watched:
//!
//! - a fresh connection must deliver a request's headers within
//!   `header_read_timeout` of being accepted; on a kept-alive connection
//!   the clock starts at the next request's first byte;
//! - a request's body must arrive within `body_read_timeout` of its
//!   headers (the handler gets an error, and the answer is 408
//!   `request_timeout` whatever the handler made of it);
//! - a kept-alive connection with no request in flight is closed after
//!   `idle_timeout`, and so is one whose response the client stops
//!   reading for that long;
//! - at most `max_connections` are open; the next one waits in the
//!   kernel's backlog until one closes.
//!
//! An accept error (EMFILE: out of file descriptors) is logged and the
//! loop pauses briefly, then goes on; it never ends the loop. Graceful
//! shutdown stops accepting, lets each connection finish its request and
//! waits for all of them. Each request carries `ConnectInfo<SocketAddr>`
//! (the TCP peer), as `axum::serve` would give it.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The timeouts and the cap (see the module docs for what each bounds).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            // Below the usual soft limit of 1,024 file descriptors, so the
            // store, the snapshot and the connectors still get theirs.
            max_connections: 768,
        }
    }
}

impl ConnectionLimits {
    /// How often a connection's watchdog looks at it: a quarter of the
    /// shortest timeout, between 10 ms and 1 s.
    fn tick(&self) -> Duration {
        let shortest = self
            .header_read_timeout
            .min(self.body_read_timeout)
            .min(self.idle_timeout);
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// What one connection is doing, as its watchdog sees it.
#[derive(Debug)]
struct Activity {
    /// Requests answered or being answered whose response is not yet
    /// written out.
    in_flight: usize,
    /// No request has been received yet.
    fresh: bool,
    /// When the connection was accepted or last had nothing in flight.
    idle_since: Instant,
    /// When the first byte of the next request arrived.
    request_started: Option<Instant>,
    /// Since when a write has been waiting for the client to read.
    write_blocked_since: Option<Instant>,
}

/// Why a watchdog closes a connection.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Close(&'static str),
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            in_flight: 0,
            fresh: true,
            idle_since: now,
            request_started: None,
            write_blocked_since: None,
        }
    }

    fn verdict(&self, limits: &ConnectionLimits, now: Instant) -> Verdict {
        let over = |since: Instant, limit: Duration| now.saturating_duration_since(since) > limit;
        if self.in_flight > 0 {
            return match self.write_blocked_since {
                Some(t) if over(t, limits.idle_timeout) => {
                    Verdict::Close("the client stopped reading the response")
                }
                _ => Verdict::Keep,
            };
        }
        match self.request_started {
            Some(t) if over(t, limits.header_read_timeout) => {
                Verdict::Close("request headers not received in time")
            }
            Some(_) => Verdict::Keep,
            None if self.fresh && over(self.idle_since, limits.header_read_timeout) => {
                Verdict::Close("no request received in time")
            }
            None if over(self.idle_since, limits.idle_timeout) => {
                Verdict::Close("idle keep-alive connection")
            }
            None => Verdict::Keep,
        }
    }
}

type Shared = Arc<Mutex<Activity>>;

fn lock(activity: &Shared) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(|e| e.into_inner())
}

/// The socket, reporting reads and stalled writes to the watchdog.
struct Watched {
    stream: TcpStream,
    activity: Shared,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut a = lock(&self.activity);
            if a.in_flight == 0 && a.request_started.is_none() {
                a.request_started = Some(Instant::now());
            }
        }
        result
    }
}

impl Watched {
    fn note_write<T>(&self, result: &Poll<T>) {
        let mut a = lock(&self.activity);
        match result {
            Poll::Pending => {
                a.write_blocked_since.get_or_insert_with(Instant::now);
            }
            Poll::Ready(_) => a.write_blocked_since = None,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.note_write(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.note_write(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.note_write(&result);
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts a request as in flight from its headers until its response
/// body is written out or dropped.
struct InFlight(Shared);

impl InFlight {
    fn begin(activity: &Shared) -> Self {
        let mut a = lock(activity);
        a.in_flight += 1;
        a.fresh = false;
        a.request_started = None;
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = lock(&self.0);
        a.in_flight = a.in_flight.saturating_sub(1);
        if a.in_flight == 0 {
            a.idle_since = Instant::now();
            a.write_blocked_since = None;
        }
    }
}

/// A response body that ends its request's [`InFlight`] when done.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body gives when it is not received in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {} s (`body_read_timeout`); send it faster or in smaller requests", .0.as_secs_f64())]
pub struct BodyReadTimeout(pub Duration);

/// Whether `error` (from reading a request body) is, or was caused by, a
/// [`BodyReadTimeout`].
pub fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(error);
    while let Some(err) = e {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        e = err.source();
    }
    false
}

/// A request body that fails with [`BodyReadTimeout`] once its deadline
/// passes before its end.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Set when the deadline passed: the response becomes a 408 whatever
    /// the handler made of the error.
    timed_out: Arc<std::sync::atomic::AtomicBool>,
}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.timed_out
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    Poll::Ready(Some(Err(BodyReadTimeout(self.limit).into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown`, with `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // `true` once `shutdown` resolved: every connection then finishes.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = || {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    };
    let mut accept_errors = AcceptErrors::default();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stopped() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                accept_errors.pause_after(e, stopped()).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, &limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    // Every connection holds a slot until it is closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// What the accept loop does on an accept error. Connection-level errors
/// are the client's and are ignored; anything else (EMFILE, ENFILE,
/// ENOMEM) pauses accepting 100 ms (or until shutdown), so the loop neither
/// spins nor stops; it is logged at most every 10 s, with the count since.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    since_logged: u64,
}

impl AcceptErrors {
    async fn pause_after(&mut self, e: std::io::Error, stopped: impl Future<Output = ()>) {
        use std::io::ErrorKind::*;
        if matches!(
            e.kind(),
            ConnectionRefused | ConnectionAborted | ConnectionReset
        ) {
            return;
        }
        self.since_logged += 1;
        if self
            .last_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::error!(error = %e, times = self.since_logged, "accepting connections fails (out of file descriptors?); retrying every 100 ms");
            self.last_logged = Some(Instant::now());
            self.since_logged = 0;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stopped => {}
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity: Shared = Arc::new(Mutex::new(Activity::new(Instant::now())));
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let body_limit = limits.body_read_timeout;
    let on_request = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::begin(&on_request);
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut req = req.map(|inner| {
            Body::new(TimedBody {
                inner,
                limit: body_limit,
                deadline: Box::pin(tokio::time::sleep(body_limit)),
                timed_out: timed_out.clone(),
            })
        });
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let mut response = router.oneshot(req).await?;
            if timed_out.load(std::sync::atomic::Ordering::Relaxed) {
                let message = BodyReadTimeout(body_limit).to_string();
                response = crate::error::ApiError::RequestTimeout(message).into_response();
            }
            Ok::<_, std::convert::Infallible>(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below times headers (hyper's own timer would also
    // close idle keep-alive connections at the header timeout).
    builder.header_read_timeout(None).keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut ticks = tokio::time::interval(limits.tick());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stopped| *stopped), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                let verdict = lock(&activity).verdict(limits, Instant::now());
                if let Verdict::Close(why) = verdict {
                    tracing::debug!(%peer, why, "closing a connection");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
        }
    }

    #[test]
    fn each_state_has_its_own_clock() {
        let l = limits();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = Activity::new(t0);
        // Fresh: the header timeout counts from the accept.
        assert_eq!(a.verdict(&l, t0 + s(10)), Verdict::Keep);
        assert!(matches!(a.verdict(&l, t0 + s(11)), Verdict::Close(_)));
        // A request in flight is not timed here (its body is, by TimedBody).
        a.in_flight = 1;
        a.fresh = false;
        assert_eq!(a.verdict(&l, t0 + s(1000)), Verdict::Keep);
        // ... unless the client stops reading the response.
        a.write_blocked_since = Some(t0 + s(100));
        assert_eq!(a.verdict(&l, t0 + s(160)), Verdict::Keep);
        assert!(matches!(a.verdict(&l, t0 + s(161)), Verdict::Close(_)));
        // Kept alive: idle for up to 60 s.
        a.in_flight = 0;
        a.write_blocked_since = None;
        a.idle_since = t0 + s(200);
        assert_eq!(a.verdict(&l, t0 + s(259)), Verdict::Keep);
        assert!(matches!(a.verdict(&l, t0 + s(261)), Verdict::Close(_)));
        // A next request has begun: its headers get 10 s from the first byte.
        a.request_started = Some(t0 + s(250));
        assert_eq!(a.verdict(&l, t0 + s(260)), Verdict::Keep);
        assert!(matches!(a.verdict(&l, t0 + s(261)), Verdict::Close(_)));
    }

    #[test]
    fn the_watchdog_ticks_a_quarter_of_the_shortest_timeout() {
        assert_eq!(limits().tick(), Duration::from_secs(1));
        let short = ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            ..limits()
        };
        assert_eq!(short.tick(), Duration::from_millis(50));
    }
}
