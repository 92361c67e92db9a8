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
//!
//! Files: this one (limits, the accept loop, the connection builders), `protocol` (h1 or h2c
//! from the first bytes), `parking` (HTTP/1.1 connections taken apart while idle), `activity`
//! (open requests and idleness, the per-connection driver).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use sampling2api_core::http::request_headers;

use crate::config::FrontArgs;

mod activity;
mod parking;
mod protocol;

use activity::*;
use parking::*;
use protocol::*;

/// File descriptors kept free for what is not a connection (logs, pipes, the listener).
const SPARE_FILES: u64 = 64;
/// HTTP/2 streams a peer may reset before the server sees them (the rapid-reset attack); the
/// h2 default, set here so that it stays on.
const H2_PENDING_ACCEPT_RESETS: usize = 20;
/// Resets the server may send because of the peer's errors before it closes the connection
/// (the provoked-reset attack); the h2 default.
const H2_LOCAL_ERROR_RESETS: usize = 1024;
/// How long an HTTP/1.1 connection waits with no request open before it is parked: long
/// enough that a connection carrying back-to-back requests is not taken apart and rebuilt
/// between them (parking at once cost ~15% of requests/s in the bench), short enough that
/// connections opened in a burst do not all hold hyper's buffers at once (the allocator keeps
/// what a peak took).
const PARK_AFTER: Duration = Duration::from_millis(100);
/// A silent HTTP/2 peer is pinged this often and dropped when it does not answer in time.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// hyper's hard limits on a request's headers, above the bridge's own (core
/// `request_headers`, checked in the front layer with an Anthropic-shaped 431): headers
/// between the two reach the front and get that JSON error; only those past these get
/// hyper's bare 431 (HTTP/1.1, connection closed; HTTP/2, the stream refused). Twice the
/// bridge's limits, so that no request within them comes near these.
/// HTTP/1.1: the request line and headers together. hyper buffers at most this much of a head
/// (its read buffer is capped at ~408 KB anyway), so it is also the per-connection worst case
/// while a head is read.
const HARD_MAX_HEAD_BYTES: usize = 2 * request_headers::MAX_HEADER_BYTES;
/// HTTP/1.1 header lines. Past hyper's default of 100 it parses into a heap array of this
/// many slots (about 64 bytes each, freed once the head is parsed) instead of a stack one.
const HARD_MAX_HEADER_LINES: usize = 2 * request_headers::MAX_HEADER_FIELDS;
/// HTTP/2: the decoded header list, names and values plus 32 bytes per field (RFC 9113).
/// hyper's default is 16 KB, which refused even the headers the HTTP/1.1 side takes.
const HARD_MAX_H2_HEADER_LIST: u32 = 2 * request_headers::MAX_HEADER_BYTES as u32;

/// The connection bounds, from the flags.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub h2_max_streams: u32,
    /// An HTTP/1.1 connection with no request open for this long is parked (`serve_http1`).
    pub park_after: Duration,
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
            park_after: PARK_AFTER,
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
    serve_with_limits(listener, app, ServerLimits::for_process(front), shutdown).await;
}

/// `serve`, with the connection bounds given.
async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
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
        let park_after = limits.park_after;
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
            match protocol {
                Ok(Protocol::Http1) => {
                    let http1 = &builders.http1;
                    let times = Times {
                        idle_timeout,
                        park_after,
                    };
                    serve_http1(stream, http1, service, &activity, times, stopping).await;
                }
                Ok(Protocol::Http2) => {
                    // Boxed, so that the (far more common) HTTP/1.1 connection's task is not
                    // sized for HTTP/2's larger state.
                    let io = TokioIo::new(stream);
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

/// The listener on `address` and the address it got (a port of 0 picks one); `None`, logged,
/// when it cannot listen there.
pub async fn bind(address: std::net::SocketAddr) -> Option<(TcpListener, std::net::SocketAddr)> {
    match TcpListener::bind(address).await {
        Ok(listener) => {
            let bound = listener.local_addr().unwrap_or(address);
            Some((listener, bound))
        }
        Err(err) => {
            tracing::error!(%address, %err, "cannot listen");
            None
        }
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
        http1
            .max_header_size(HARD_MAX_HEAD_BYTES)
            .max_headers(HARD_MAX_HEADER_LINES);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_pending_accept_reset_streams(H2_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_LOCAL_ERROR_RESETS)
            .max_header_list_size(HARD_MAX_H2_HEADER_LIST)
            .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        Builders { http1, http2 }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use tokio::net::TcpStream;

    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Connections parked so far, by every server in this test binary.
    pub(super) static PARKED: AtomicUsize = AtomicUsize::new(0);

    const PARK: Duration = Duration::from_millis(50);
    /// Long enough for a connection to be parked.
    const PAUSE: Duration = Duration::from_millis(250);

    fn app() -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/echo", post(|body: Bytes| async move { body }))
            // Answers without reading the body.
            .route(
                "/refuse",
                post(|| async { axum::http::StatusCode::FORBIDDEN }),
            )
    }

    async fn start() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = ServerLimits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(30),
            h2_max_streams: 16,
            park_after: PARK,
        };
        tokio::spawn(serve_with_limits(
            listener,
            app(),
            limits,
            std::future::pending(),
        ));
        address
    }

    /// Reads one response (with a `Content-Length`) from `stream`, keeping what follows it in
    /// `pending`: its status and body, or `None` if the server closed the connection first.
    async fn response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(pending[..end].to_vec()).unwrap();
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap();
                if pending.len() >= end + 4 + length {
                    let body = pending[end + 4..end + 4 + length].to_vec();
                    pending.drain(..end + 4 + length);
                    return Some((status, body));
                }
            }
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn get_health() -> Vec<u8> {
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()
    }

    /// Parks and resumes a keep-alive connection across every boundary a request can straddle,
    /// and checks each is served as on an unbroken connection.
    #[tokio::test]
    async fn a_parked_http1_connection_serves_whatever_arrives_next() {
        let address = start().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        let mut pending = Vec::new();
        let ok = Some((200, b"ok".to_vec()));

        // Idle after a request: parked, then picked up again by the next request.
        let parked = PARKED.load(Ordering::Relaxed);
        stream.write_all(&get_health()).await.unwrap();
        assert_eq!(response(&mut stream, &mut pending).await, ok);
        tokio::time::sleep(PAUSE).await;
        assert!(
            PARKED.load(Ordering::Relaxed) > parked,
            "an idle connection is parked"
        );
        stream.write_all(&get_health()).await.unwrap();
        assert_eq!(response(&mut stream, &mut pending).await, ok);

        // Headers cut in two by a park: the first half is kept while parked.
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHo")
            .await
            .unwrap();
        tokio::time::sleep(PAUSE).await;
        stream.write_all(b"st: x\r\n\r\n").await.unwrap();
        assert_eq!(response(&mut stream, &mut pending).await, ok);

        // Three pipelined requests in one write, answered in order.
        let mut three = get_health();
        three
            .extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        three.extend_from_slice(&get_health());
        stream.write_all(&three).await.unwrap();
        assert_eq!(response(&mut stream, &mut pending).await, ok);
        assert_eq!(
            response(&mut stream, &mut pending).await,
            Some((200, b"hello".to_vec()))
        );
        assert_eq!(response(&mut stream, &mut pending).await, ok);

        // A body that trickles in with pauses longer than the park delay: a request being
        // read is never parked.
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(PAUSE).await;
        stream.write_all(b"cd").await.unwrap();
        tokio::time::sleep(PAUSE).await;
        stream.write_all(b"ef").await.unwrap();
        assert_eq!(
            response(&mut stream, &mut pending).await,
            Some((200, b"abcdef".to_vec()))
        );

        // 64 KB of headers after a park (Claude Code and the SDKs send up to ~8 KB).
        tokio::time::sleep(PAUSE).await;
        let mut large = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        for index in 0..16 {
            large.extend_from_slice(
                format!("x-filler-{index}: {}\r\n", "a".repeat(4096)).as_bytes(),
            );
        }
        large.extend_from_slice(b"\r\n");
        stream.write_all(&large).await.unwrap();
        assert_eq!(response(&mut stream, &mut pending).await, ok);
    }

    /// A request refused before its body arrived: the body's bytes, sent later, must never be
    /// read as a request of their own (hyper drains them, or closes such a connection).
    #[tokio::test]
    async fn a_body_left_unread_is_never_taken_for_a_request() {
        let address = start().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        let mut pending = Vec::new();
        // A body that is itself a request, which would get 404.
        let body = b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = format!(
            "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(
            response(&mut stream, &mut pending).await,
            Some((403, Vec::new()))
        );
        tokio::time::sleep(PAUSE).await;
        let mut rest = body.to_vec();
        rest.extend_from_slice(&get_health());
        let _ = stream.write_all(&rest).await;
        let next = response(&mut stream, &mut pending).await;
        assert!(
            next.is_none() || next == Some((200, b"ok".to_vec())),
            "{next:?}"
        );
    }

    /// hyper's hard limits sit above the bridge's own (which the front layer enforces with a
    /// JSON 431): heads between the two reach the app, only those past them get hyper's 431.
    #[tokio::test]
    async fn only_heads_past_the_hard_limits_are_refused_by_hyper() {
        let address = start().await;
        let head = |lines: usize, each: usize| {
            let mut head = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
            for index in 0..lines {
                head.extend_from_slice(format!("x-{index}: {}\r\n", "a".repeat(each)).as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            head
        };
        let bridge_bytes = request_headers::MAX_HEADER_BYTES;
        let bridge_fields = request_headers::MAX_HEADER_FIELDS;
        for (lines, each, status) in [
            // Past the bridge's bounds, within hyper's: the app sees them.
            (30, (bridge_bytes + 8192) / 30, 200),
            (bridge_fields + 50, 1, 200),
            // Past hyper's.
            (60, HARD_MAX_HEAD_BYTES / 60 + 16, 431),
            (HARD_MAX_HEADER_LINES + 1, 1, 431),
        ] {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(&head(lines, each)).await.unwrap();
            let mut pending = Vec::new();
            let got = response(&mut stream, &mut pending)
                .await
                .map(|(status, _)| status);
            assert_eq!(got, Some(status), "{lines} lines of {each} bytes");
        }
    }

    #[test]
    fn the_first_bytes_tell_http2_from_http1() {
        assert_eq!(protocol_from_start(b""), Some(Protocol::Http1));
        assert_eq!(
            protocol_from_start(b"GET / HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(
            protocol_from_start(b"PRI * HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(protocol_from_start(b"PRI * HTTP/2"), None);
        assert_eq!(protocol_from_start(H2_PREFACE), Some(Protocol::Http2));
    }
}
