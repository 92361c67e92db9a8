//! The HTTP server both modes run: hyper's HTTP/1.1 and HTTP/2 (h2c) connections around the
//! axum router, tuned for many concurrent requests, for little memory per idle connection, and
//! bounded against peers that hold connections open without using them.
//!
//! - The router is prepared once and shared (axum's own `serve` builds one per connection).
//! - A connection's protocol is told from its first bytes, peeked, not read: see
//!   `sniff_protocol` for what that saves per connection.
//! - At most `--max-connections` connections are open; past that a new one is closed as soon
//!   as it is accepted, so the listen backlog never fills with dead peers. The process's file
//!   limit is raised at start as far as the hard limit allows.
//! - A connection with no request open for `--header-read-timeout-secs` is closed (one that
//!   never sends a byte, headers that trickle in or never finish, an idle keep-alive, an idle
//!   HTTP/2 connection). Body reads have their own deadline (`request_body`).
//! - HTTP/2 multiplexes up to `--h2-max-streams` requests per connection, with h2's rapid- and
//!   provoked-reset protections set explicitly.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::FrontArgs;

/// File descriptors kept free for what is not a connection (logs, pipes, the listener).
const SPARE_FILES: u64 = 64;
/// HTTP/2 streams a peer may reset before the server sees them (the rapid-reset attack); the
/// h2 default, set here so that it stays on.
const H2_PENDING_ACCEPT_RESETS: usize = 20;
/// Resets the server may send because of the peer's errors before it closes the connection
/// (the provoked-reset attack); the h2 default.
const H2_LOCAL_ERROR_RESETS: usize = 1024;
/// A silent HTTP/2 peer is pinged this often and dropped when it does not answer in time.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The connection bounds, from the flags.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub h2_max_streams: u32,
}

impl ServerLimits {
    /// The limits for `front`, with the file limit raised and the connection cap lowered to
    /// what the file limit allows.
    pub fn for_process(front: &FrontArgs) -> Self {
        let mut max_connections = front.max_connections as usize;
        if let Some(files) = raise_file_limit() {
            let room = files.saturating_sub(SPARE_FILES).max(1);
            if (max_connections as u64) > room {
                tracing::warn!(
                    max_connections,
                    file_limit = files,
                    "the file limit allows fewer connections than --max-connections; capping at {room}"
                );
                max_connections = room as usize;
            }
        }
        ServerLimits {
            max_connections,
            idle_timeout: Duration::from_secs(front.header_read_timeout_secs),
            h2_max_streams: front.h2_max_streams,
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit in force.
#[cfg(unix)]
fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(err) => {
            tracing::warn!(%err, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

#[cfg(not(unix))]
fn raise_file_limit() -> Option<u64> {
    None
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections
/// to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    front: &FrontArgs,
    shutdown: impl Future<Output = ()>,
) {
    let limits = ServerLimits::for_process(front);
    // Turns every route into its final service once, not per connection or per request.
    let app: Router = app.with_state(());
    let builders = Arc::new(Builders::new(&limits));
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!(%err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                max_connections = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        };
        // Responses go out in pieces (SSE frames, the MCP event stream); with Nagle's algorithm
        // on, a client's delayed ACK would hold each later piece back by ~40 ms.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let service = Tracked {
            app: app.clone(),
            activity: activity.clone(),
        };
        let builders = builders.clone();
        let mut stopping = stopping.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            if *stopping.borrow_and_update() {
                return;
            }
            // Nothing is allocated for the connection until its first bytes show which
            // protocol it speaks; a peer that stays silent is closed by the idle watchdog.
            let protocol = tokio::select! {
                protocol = sniff_protocol(&stream) => protocol,
                () = activity.idle_for(idle_timeout) => return,
                _ = stopping.changed() => return,
            };
            let io = TokioIo::new(stream);
            match protocol {
                Ok(Protocol::Http1) => {
                    let connection = builders.http1.serve_connection(io, service);
                    tokio::pin!(connection);
                    drive(connection, &activity, idle_timeout, stopping).await;
                }
                Ok(Protocol::Http2) => {
                    // Boxed, so that the (far more common) HTTP/1.1 connection's task is not
                    // sized for HTTP/2's larger state.
                    let mut connection = Box::pin(builders.http2.serve_connection(io, service));
                    drive(connection.as_mut(), &activity, idle_timeout, stopping).await;
                }
                Err(err) => tracing::debug!(%err, "connection ended before its first request"),
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every open connection holds a slot: having them all back means all have finished.
    let _ = slots
        .acquire_many(limits.max_connections.min(Semaphore::MAX_PERMITS) as u32)
        .await;
}

/// The two protocols a connection may speak: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before looking again at a connection whose bytes so far are only the
/// start of the HTTP/2 preface (a peek returns at once while unread bytes are waiting).
const PREFACE_RECHECK: Duration = Duration::from_millis(5);

/// Which protocol `stream` speaks, from its first bytes, without reading them: hyper then
/// reads the request from the socket itself. (hyper-util's auto builder reads them into a
/// buffer of its own and hands them over first, which made hyper's read buffer grow from
/// 8 KB to 16 KB on every connection, and sized every connection's task for HTTP/2.)
async fn sniff_protocol(stream: &TcpStream) -> std::io::Result<Protocol> {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        let seen = stream.peek(&mut first).await?;
        if let Some(protocol) = protocol_from_start(first.get(..seen).unwrap_or_default()) {
            return Ok(protocol);
        }
        tokio::time::sleep(PREFACE_RECHECK).await;
    }
}

/// The protocol that a connection's first bytes `start` show, or `None` while they are a
/// proper beginning of the HTTP/2 preface. No bytes (the peer closed) go to HTTP/1.1, which
/// ends the connection.
fn protocol_from_start(start: &[u8]) -> Option<Protocol> {
    if start.is_empty() || !H2_PREFACE.starts_with(start) {
        Some(Protocol::Http1)
    } else if start.len() == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// The HTTP/1.1 and HTTP/2 connection settings, built once.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ServerLimits) -> Self {
        let mut http1 = http1::Builder::new();
        // No hyper header-read timer for HTTP/1.1: the per-connection idle watchdog already
        // closes a connection that has no request open (headers that never finish included)
        // after `idle_timeout`, and hyper's timer would cost every request a timer reset.
        http1.header_read_timeout(None);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_pending_accept_reset_streams(H2_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_LOCAL_ERROR_RESETS)
            .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        Builders { http1, http2 }
    }
}

/// Runs `connection` to its end, closing it once it has had no request open for
/// `idle_timeout`, and shutting it down gracefully when the server stops.
async fn drive<C>(
    mut connection: Pin<&mut C>,
    activity: &Activity,
    idle_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                break;
            }
            () = activity.idle_for(idle_timeout), if !closing => {
                // No request is open, so nothing is lost by closing now; a graceful
                // shutdown would wait for headers that may never finish.
                tracing::debug!("closing a connection idle for {idle_timeout:?}");
                break;
            }
            _ = stopping.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Whether a connection has requests open, and since when it has had none.
struct Activity {
    open: AtomicUsize,
    started: Instant,
    /// Milliseconds after `started` when the last request closed (or the connection opened).
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            open: AtomicUsize::new(0),
            started: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest(self.clone())
    }

    /// Completes once the connection has had no request open for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let since =
                self.started + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            let deadline = since + idle;
            if self.open.load(Ordering::Acquire) == 0 && Instant::now() >= deadline {
                return;
            }
            // With requests open, look again after a whole period: a request that ends then
            // restarts the clock.
            let next = if self.open.load(Ordering::Acquire) == 0 {
                deadline
            } else {
                Instant::now() + idle
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// One request open on a connection, until its response body is done or dropped.
struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.started.elapsed().as_millis() as u64;
        activity.idle_since_ms.store(now, Ordering::Release);
        activity.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `app` with each request counted open on `activity` until its response body ends.
#[derive(Clone)]
struct Tracked {
    app: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    /// Boxed: hyper keeps a slot for the future in every connection, idle or not, so a
    /// pointer there instead of the router's whole future saves ~600 bytes per connection.
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let open = self.activity.begin();
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| Body::new(TrackedBody { body, _open: open })))
        })
    }
}

/// A response body that keeps its request counted open while it is being sent.
struct TrackedBody {
    body: Body,
    _open: OpenRequest,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
