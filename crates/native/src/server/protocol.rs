//! Which protocol a connection speaks, told from its first bytes (peeked, not read).

use std::time::Duration;

use tokio::net::TcpStream;

/// The two protocols a connection may speak: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before looking again at a connection whose bytes so far are only the
/// start of the HTTP/2 preface (a peek returns at once while unread bytes are waiting).
pub(super) const PREFACE_RECHECK: Duration = Duration::from_millis(5);

/// Which protocol `stream` speaks, from its first bytes, without reading them: hyper then
/// reads the request from the socket itself. (hyper-util's auto builder reads them into a
/// buffer of its own and hands them over first, which made hyper's read buffer grow from
/// 8 KB to 16 KB on every connection, and sized every connection's task for HTTP/2.)
pub(super) async fn sniff_protocol(stream: &TcpStream) -> std::io::Result<Protocol> {
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
pub(super) fn protocol_from_start(start: &[u8]) -> Option<Protocol> {
    if start.is_empty() || !H2_PREFACE.starts_with(start) {
        Some(Protocol::Http1)
    } else if start.len() == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}
