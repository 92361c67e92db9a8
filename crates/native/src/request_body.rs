//! Reading a request's body without letting a peer choose how much memory it takes.
//!
//! Memory follows the bytes received, never the `Content-Length` a peer promises: the buffer
//! grows geometrically but never beyond the declared length, so an honest large body still
//! ends in one exactly-sized buffer and a lying one costs only what it sent. Every body being
//! received counts against one budget shared by all connections (`ReceivingBudget`), and a
//! body must arrive in full before its deadline, so trickling senders cannot pile up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use sampling2api_core::{ApiError, ErrorKind};

/// Bytes of bodies being received right now, across all connections, against a limit.
#[derive(Debug, Clone)]
pub struct ReceivingBudget {
    held: Arc<AtomicUsize>,
    limit: usize,
}

/// Bytes one body holds in the budget; given back when dropped.
struct Claim {
    budget: ReceivingBudget,
    bytes: usize,
}

impl ReceivingBudget {
    pub fn new(limit: usize) -> Self {
        ReceivingBudget {
            held: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Bytes currently held by bodies being received.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn claim(&self) -> Claim {
        Claim {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

impl Claim {
    /// Takes `more` bytes from the budget, or fails without taking any.
    fn grow(&mut self, more: usize) -> Result<(), ApiError> {
        let limit = self.budget.limit;
        self.budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|total| *total <= limit)
            })
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::Overloaded,
                    "the bridge is receiving too many large request bodies at once; retry shortly",
                )
            })?;
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The bounds one body is read under.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest body accepted (413 above).
    pub max_bytes: usize,
    /// The whole body must arrive within this (408 after).
    pub timeout: Duration,
    pub budget: ReceivingBudget,
}

/// Reads `body` in full under `limits`. `declared` is the request's `Content-Length`, used
/// only to refuse an announced oversize body at once and to cap buffer growth.
pub async fn read_body(
    body: Body,
    limits: &BodyLimits,
    declared: Option<u64>,
) -> Result<bytes::Bytes, ApiError> {
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(ApiError::body_too_large(limits.max_bytes));
    }
    let timeout = limits.timeout;
    let collecting = collect(body, limits, declared);
    tokio::pin!(collecting);
    // A small body has usually arrived with its headers: read it without arming a timer,
    // which would cost every request a timer-wheel insert and removal.
    if let std::task::Poll::Ready(result) = futures::poll!(collecting.as_mut()) {
        return result;
    }
    match tokio::time::timeout(timeout, collecting).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::body_too_slow(timeout.as_secs())),
    }
}

async fn collect(
    mut body: Body,
    limits: &BodyLimits,
    declared: Option<u64>,
) -> Result<bytes::Bytes, ApiError> {
    let declared = declared.map(|length| length as usize);
    let mut claim = limits.budget.claim();
    // A body that arrives in one frame is kept as that frame, with no copy.
    let mut first: Option<bytes::Bytes> = None;
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::invalid_request(format!("could not read the request body: {err}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let received = first.as_ref().map_or(0, bytes::Bytes::len) + collected.len();
        if received + data.len() > limits.max_bytes {
            return Err(ApiError::body_too_large(limits.max_bytes));
        }
        claim.grow(data.len())?;
        if first.is_none() && collected.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(earlier) = first.take() {
            collected = Vec::with_capacity(next_capacity(0, earlier.len() + data.len(), declared));
            collected.extend_from_slice(&earlier);
        }
        let needed = collected.len() + data.len();
        if needed > collected.capacity() {
            let target = next_capacity(collected.capacity(), needed, declared);
            collected.reserve_exact(target - collected.len());
        }
        collected.extend_from_slice(&data);
    }
    Ok(match first {
        Some(only) => only,
        None => bytes::Bytes::from(collected),
    })
}

/// Doubling growth from `capacity` to hold `needed`, never beyond the declared length while
/// the body stays within it.
fn next_capacity(capacity: usize, needed: usize, declared: Option<usize>) -> usize {
    let doubled = capacity.saturating_mul(2).max(needed).max(8 * 1024);
    match declared {
        Some(declared) if needed <= declared => doubled.min(declared),
        _ => doubled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn limits(max_bytes: usize, budget: usize) -> BodyLimits {
        BodyLimits {
            max_bytes,
            timeout: Duration::from_secs(5),
            budget: ReceivingBudget::new(budget),
        }
    }

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        Body::from_stream(stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from_static(chunk))),
        ))
    }

    #[tokio::test]
    async fn joins_frames_and_gives_the_budget_back() {
        let limits = limits(100, 100);
        let body = read_body(chunked(vec![b"ab", b"cd", b"e"]), &limits, Some(5))
            .await
            .unwrap();
        assert_eq!(&body[..], b"abcde");
        assert_eq!(limits.budget.held(), 0);
    }

    #[tokio::test]
    async fn a_promised_length_reserves_nothing_it_did_not_receive() {
        // 1 GB promised, 2 bytes sent: the buffer follows what arrived.
        let limits = limits(usize::MAX / 2, usize::MAX / 2);
        let body = read_body(chunked(vec![b"a", b"b"]), &limits, Some(1 << 30))
            .await
            .unwrap();
        assert_eq!(&body[..], b"ab");
        assert!(next_capacity(0, 2, Some(1 << 30)) <= 8 * 1024);
        assert_eq!(next_capacity(8192, 8193, Some(9000)), 9000);
    }

    #[tokio::test]
    async fn over_the_size_or_the_budget_is_refused() {
        let err = read_body(chunked(vec![b"abc", b"def"]), &limits(5, 100), None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
        let err = read_body(chunked(vec![b"a"]), &limits(5, 100), Some(6))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
        let shared = limits(100, 4);
        let err = read_body(chunked(vec![b"abc", b"de"]), &shared, None)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 529);
        assert_eq!(
            shared.budget.held(),
            0,
            "a refused body gives its claim back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let limits = BodyLimits {
            timeout: Duration::from_secs(2),
            ..limits(100, 100)
        };
        let stalled = Body::from_stream(stream::pending::<Result<bytes::Bytes, std::io::Error>>());
        let err = read_body(stalled, &limits, Some(10)).await.unwrap_err();
        assert_eq!(err.status(), 408);
        assert!(err.message.contains("2 s"), "{}", err.message);
    }
}
