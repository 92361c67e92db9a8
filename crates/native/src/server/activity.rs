//! What a connection is doing: its open requests and since when it has had none (`Activity`),
//! tracked by wrapping the service and the bodies (`Tracked`), and the loop that closes an
//! idle connection or shuts it down gracefully (`drive`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::Body as _;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

/// `Activity::io` bit: the latest read found no bytes waiting (hyper is waiting for more).
pub(super) const READ_PENDING: u8 = 1;
/// `Activity::io` bit: the latest write or flush could not finish (bytes wait in hyper).
pub(super) const WRITE_PENDING: u8 = 2;

/// Runs `connection` to its end, closing it once it has had no request open for
/// `idle_timeout`, and shutting it down gracefully when the server stops.
pub(super) async fn drive<C>(
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
pub(super) struct Activity {
    open: AtomicUsize,
    started: Instant,
    /// Milliseconds after `started` when the last request closed (or the connection opened).
    idle_since_ms: AtomicU64,
    /// How the current poll's latest HTTP/1.1 reads and writes ended (`READ_PENDING`,
    /// `WRITE_PENDING`); reset before each poll.
    pub(super) io: AtomicU8,
    /// A request body was dropped before its end: hyper may then still be in the middle of
    /// that message (draining it, or about to close), so the connection is never parked.
    body_left_unread: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            open: AtomicUsize::new(0),
            started: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
            io: AtomicU8::new(0),
            body_left_unread: AtomicBool::new(false),
        }
    }

    /// Whether an HTTP/1.1 connection object that has just returned `Pending` can be dropped
    /// without losing anything: no request is open (every response has been handed to hyper in
    /// full and every request body read to its end, so hyper is not in the middle of a
    /// message), no request body was ever abandoned halfway, the poll ended waiting to read
    /// (hyper waits for the next request; any part of it it holds comes back from
    /// `into_parts`), and its last write or flush finished (hyper flushes whatever it buffered
    /// on every poll, so none is left).
    pub(super) fn parkable(&self) -> bool {
        self.open.load(Ordering::Acquire) == 0
            && !self.body_left_unread.load(Ordering::Relaxed)
            && self.io.load(Ordering::Relaxed) == READ_PENDING
    }

    pub(super) fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest(self.clone())
    }

    /// Completes once the connection has had no request open for `idle`.
    pub(super) async fn idle_for(&self, idle: Duration) {
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
pub(super) struct OpenRequest(Arc<Activity>);

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
pub(super) struct Tracked {
    pub(super) app: Router,
    pub(super) activity: Arc<Activity>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    /// Boxed: hyper keeps a slot for the future in every connection, idle or not, so a
    /// pointer there instead of the router's whole future saves ~600 bytes per connection.
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let open = self.activity.begin();
        // The request's body counts open too until it has been read to its end (or dropped):
        // until then hyper may still be reading it, and the connection must not be parked.
        let body_open = (!request.body().is_end_stream()).then(|| self.activity.begin());
        let request = request.map(|body| TrackedRequestBody {
            body,
            open: body_open,
        });
        let app = self.app.clone();
        let is_http1 = request.version() <= axum::http::Version::HTTP_11;
        let activity = self.activity.clone();
        Box::pin(async move {
            let mut response = app.oneshot(request).await?;
            // A response that refused the request without reading its body (a bad key, origin
            // or content type): hyper will not reuse the connection, whose next bytes are that
            // body. Say so, as Go's server does, so that a client does not send its next request
            // on a connection that is about to close (which it sees as "server disconnected").
            if is_http1 && activity.body_left_unread.load(Ordering::Relaxed) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|body| Body::new(TrackedBody { body, _open: open })))
        })
    }
}

/// A request body that keeps its request counted open until it has been read to its end.
pub(super) struct TrackedRequestBody {
    body: hyper::body::Incoming,
    open: Option<OpenRequest>,
}

impl http_body::Body for TrackedRequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.open = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for TrackedRequestBody {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.0.body_left_unread.store(true, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request counted open while it is being sent.
pub(super) struct TrackedBody {
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
