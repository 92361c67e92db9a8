//! The HTTP server both modes run: hyper-util's auto (HTTP/1.1 + h2c) connection builder
//! around the axum router, tuned for many concurrent requests and bounded against peers that
//! hold connections open without using them.
//!
//! - The router is prepared once and shared (axum's own `serve` builds one per connection).
//! - At most `--max-connections` connections are open; past that a new one is closed as soon
//!   as it is accepted, so the listen backlog never fills with dead peers. The process's file
//!   limit is raised at start as far as the hard limit allows.
//! - A connection with no request open for `--header-read-timeout-secs` is closed (one that
//!   never sends a byte, headers that trickle in or never finish, an idle keep-alive, an idle
//!   HTTP/2 connection). Body reads have their own deadline (`request_body`).
//! - HTTP/2 multiplexes up to `--h2-max-streams` requests per connection, with h2's rapid- and
//!   provoked-reset protections set explicitly.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
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
    let mut builder = Builder::new(TokioExecutor::new());
    // No hyper header-read timer for HTTP/1.1: the per-connection idle watchdog below already
    // closes a connection that has no request open (headers that never finish included) after
    // `idle_timeout`, and hyper's timer would cost every request a timer reset.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_pending_accept_reset_streams(H2_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_LOCAL_ERROR_RESETS)
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
    let builder = Arc::new(builder);
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
        let service = TowerToHyperService::new(tracked(app.clone(), activity.clone()));
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::pin!(connection);
            let mut closing = *stopping.borrow_and_update();
            if closing {
                connection.as_mut().graceful_shutdown();
            }
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
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every open connection holds a slot: having them all back means all have finished.
    let _ = slots
        .acquire_many(limits.max_connections.min(Semaphore::MAX_PERMITS) as u32)
        .await;
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
fn tracked(
    app: Router,
    activity: Arc<Activity>,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let open = activity.begin();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| Body::new(TrackedBody { body, _open: open })))
        }
    })
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
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
