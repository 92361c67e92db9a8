//! HTTP/1.1 connections that are taken apart between requests ("parked"), so that an idle
//! one holds only its socket: see `serve_http1`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::activity::*;

/// The idle times of an HTTP/1.1 connection: closed after `idle_timeout` with no request open,
/// parked after `park_after`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Times {
    pub(super) idle_timeout: Duration,
    pub(super) park_after: Duration,
}

/// Serves HTTP/1.1 on `stream`, parking the connection whenever it has had nothing to do for
/// a while.
///
/// hyper keeps an 8 KB read buffer and an 8 KB write buffer (plus a cached header map and the
/// slot for a request's future) for as long as its connection object lives, idle or not, and
/// has no setting that shrinks them. So between requests the connection object is taken apart
/// (`into_parts`) and dropped: a parked connection holds only its socket, its task and any
/// bytes of a next request that had already arrived, and a new hyper connection takes over
/// when the socket becomes readable. Parking happens only when nothing can be lost (see
/// `Activity::parkable`).
pub(super) async fn serve_http1(
    mut stream: TcpStream,
    http1: &http1::Builder,
    mut service: Tracked,
    activity: &Arc<Activity>,
    times: Times,
    mut stopping: watch::Receiver<bool>,
) {
    let mut leftover = Bytes::new();
    loop {
        let io = ParkingIo {
            inner: TokioIo::new(stream),
            leftover,
            activity: activity.clone(),
        };
        let mut connection = http1.serve_connection(io, service);
        if let Run::Ended =
            run_until_parkable(&mut connection, activity, times, &mut stopping).await
        {
            return;
        }
        #[cfg(test)]
        super::tests::PARKED.fetch_add(1, Ordering::Relaxed);
        let parts = connection.into_parts();
        service = parts.service;
        stream = parts.io.inner.into_inner();
        // The start of a next request, if any, copied: these bytes share the allocation of
        // hyper's whole read buffer, which parking is meant to free.
        leftover = Bytes::copy_from_slice(&parts.read_buf);
        // Readable again: more of a request, or the peer's close (which hyper then sees).
        tokio::select! {
            ready = stream.readable() => if ready.is_err() { return },
            () = activity.idle_for(times.idle_timeout) => return,
            _ = stopping.changed() => return,
        }
    }
}

/// How a run of an HTTP/1.1 connection object ended.
pub(super) enum Run {
    /// The connection is over (closed by either side, idle too long, or shut down).
    Ended,
    /// No request is open and everything written has been sent: the object can go.
    Parkable,
}

/// Polls `connection` until it ends or can be parked (no request open for `park_after`),
/// closing it once it has had no request open for `idle_timeout` and shutting it down
/// gracefully when the server stops (a closing connection is never parked).
pub(super) async fn run_until_parkable(
    connection: &mut http1::Connection<ParkingIo, Tracked>,
    activity: &Activity,
    times: Times,
    stopping: &mut watch::Receiver<bool>,
) -> Run {
    let idle_timeout = times.idle_timeout;
    let idle = activity.idle_for(idle_timeout);
    // Quiet for `park_after` since this connection object started, too: a connection that
    // was parked and gets busy again is not taken apart between back-to-back requests.
    let quiet = async {
        tokio::time::sleep(times.park_after).await;
        activity.idle_for(times.park_after).await;
    };
    let stop = stopping.changed();
    tokio::pin!(idle, quiet, stop);
    let mut closing = false;
    let mut quiet_long_enough = false;
    // What an earlier connection object recorded says nothing about this one.
    activity.io.store(0, Ordering::Relaxed);
    std::future::poll_fn(|cx| {
        if !closing {
            if stop.as_mut().poll(cx).is_ready() {
                Pin::new(&mut *connection).graceful_shutdown();
                closing = true;
            } else if idle.as_mut().poll(cx).is_ready() {
                // No request is open, so nothing is lost by closing now; a graceful
                // shutdown would wait for headers that may never finish.
                tracing::debug!("closing a connection idle for {idle_timeout:?}");
                return Poll::Ready(Run::Ended);
            } else if !quiet_long_enough && quiet.as_mut().poll(cx).is_ready() {
                quiet_long_enough = true;
                // hyper has not been polled since it last returned `Pending`, so what that
                // poll recorded still holds.
                if activity.parkable() {
                    return Poll::Ready(Run::Parkable);
                }
            }
        }
        activity.io.store(0, Ordering::Relaxed);
        match Pin::new(&mut *connection).poll(cx) {
            Poll::Ready(result) => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                Poll::Ready(Run::Ended)
            }
            Poll::Pending if !closing && quiet_long_enough && activity.parkable() => {
                Poll::Ready(Run::Parkable)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The socket under a hyper HTTP/1.1 connection: first gives back the bytes a parked
/// connection had already read, and records on `activity` how the latest reads and writes of
/// the current poll ended, which is what tells whether the connection can be parked.
pub(super) struct ParkingIo {
    inner: TokioIo<TcpStream>,
    leftover: Bytes,
    activity: Arc<Activity>,
}

impl ParkingIo {
    pub(super) fn record(&self, bit: u8, pending: bool) {
        if pending {
            self.activity.io.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.activity.io.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    pub(super) fn recorded<T>(&self, bit: u8, polled: Poll<T>) -> Poll<T> {
        self.record(bit, polled.is_pending());
        polled
    }
}

impl hyper::rt::Read for ParkingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.leftover.is_empty() {
            let n = self.leftover.len().min(buf.remaining());
            let given = self.leftover.split_to(n);
            buf.put_slice(&given);
            self.record(READ_PENDING, false);
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.recorded(READ_PENDING, polled)
    }
}

impl hyper::rt::Write for ParkingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.recorded(WRITE_PENDING, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.recorded(WRITE_PENDING, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.recorded(WRITE_PENDING, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.recorded(WRITE_PENDING, polled)
    }
}
