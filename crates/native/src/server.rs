//! The HTTP server both modes run: hyper-util's auto (HTTP/1.1 + h2c) connection builder
//! around the axum router, tuned for many concurrent requests.
//!
//! axum's own `serve` builds a router per connection and takes hyper's defaults. Here the router
//! is prepared once and shared, and HTTP/2 clients may multiplex up to `H2_MAX_STREAMS`
//! requests on one connection (hyper's default is 200), which is how one caller can have
//! thousands of requests waiting on slow models without a socket, and its buffers, for each.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Concurrent HTTP/2 streams per connection. Admission per MCP session (in-flight limit,
/// queue, 429) is what bounds the work; this only stops one connection from holding more.
const H2_MAX_STREAMS: u32 = 16_384;

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections
/// to finish their requests.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    // Turns every route into its final service once, not per connection or per request.
    let app: Router = app.with_state(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(H2_MAX_STREAMS);
    let graceful = GracefulShutdown::new();
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
        // Responses go out in pieces (SSE frames, the MCP event stream); with Nagle's algorithm
        // on, a client's delayed ACK would hold each later piece back by ~40 ms.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
