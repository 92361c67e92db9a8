//! Per-session admission: at most `max_in_flight` sampling requests at the MCP client, up to
//! `max_queued` more waiting in arrival order, and 429 beyond that; and the one set of error
//! texts for everything that ends a request's lifecycle early (see `lifecycle`).
//!
//! [`crate::lifecycle::SessionLifecycle`] owns the slots and the queue now; [`Admission`] stays
//! until the worker's session object drives the lifecycle too.

use std::collections::VecDeque;

use crate::api_error::{ApiError, ErrorKind, shown_millis};

/// The 429 a caller gets when the session's in-flight and queue limits are both reached.
pub fn too_busy() -> ApiError {
    let mut err = ApiError::new(
        ErrorKind::RateLimit,
        "this MCP session has as many requests in flight and queued as it allows; retry shortly",
    );
    err.retry_after_secs = Some(1);
    err
}

/// The 503 a caller gets when messages already waiting for the MCP client (which does not read
/// its stdout or its event stream) would exceed the session's bound with this one: the request
/// is refused instead of growing the queue. Retryable: a client that catches up drains it.
pub fn client_not_reading(queued_bytes: usize, limit: usize) -> ApiError {
    let mut err = ApiError::unavailable(format!(
        "the MCP client is not reading the messages sent to it: {queued_bytes} bytes wait for it \
         and this request would pass the limit of {limit} bytes; retry when it catches up"
    ));
    err.retry_after_secs = Some(1);
    err
}

/// The deadline (`timeout_ms`, the request's whole deadline) passed while the request was still
/// waiting for a slot.
pub fn queue_timeout(timeout_ms: u64) -> ApiError {
    ApiError::timeout(format!(
        "the request waited {} for the MCP session's in-flight limit",
        shown_millis(timeout_ms)
    ))
}

/// The 503 when a client over Streamable HTTP has had no event stream open (`GET mcp_path`)
/// for the whole stream wait.
pub fn no_event_stream(mcp_path: &str, waited_ms: u64) -> ApiError {
    ApiError::unavailable(format!(
        "the MCP client has no open event stream (GET {mcp_path}) to receive sampling requests; waited {}",
        shown_millis(waited_ms)
    ))
}

/// A request refused or failed because its session ended (closed, expired, or `DELETE`d).
pub fn session_ended() -> ApiError {
    ApiError::unavailable("the MCP session has ended")
}

/// The client's current event stream closed while a request sent on it waited for its answer.
pub fn stream_closed() -> ApiError {
    ApiError::unavailable("the MCP client's event stream closed before it answered")
}

/// The outcome recorded for a request whose API caller went away (nobody reads it; it keeps
/// the rule that every request ends exactly once).
pub fn caller_left() -> ApiError {
    ApiError::api("the API caller disconnected before the answer")
}

/// The `reason` of the `notifications/cancelled` sent when the API caller went away.
pub const CANCELLED_CALLER_LEFT: &str = "sampling2api: the API caller disconnected";
/// The `reason` of the `notifications/cancelled` sent when the request's deadline passed.
pub const CANCELLED_DEADLINE: &str = "sampling2api: the API request's deadline passed";

/// What happened to a request that asked for a slot.
#[derive(Debug)]
pub enum Decision {
    /// It holds a slot now; it must call [`Admission::release`] when done.
    Go,
    /// It waits; its waiter is handed back by a later `release` (it then holds the slot).
    Wait,
    /// Both limits are reached.
    Refuse(ApiError),
}

/// Slots and the queue of one session. `W` wakes a queued request (a channel sender).
#[derive(Debug)]
pub struct Admission<K, W> {
    max_in_flight: usize,
    max_queued: usize,
    in_flight: usize,
    queue: VecDeque<(K, W)>,
}

impl<K: PartialEq, W> Admission<K, W> {
    pub fn new(max_in_flight: usize, max_queued: usize) -> Self {
        Admission {
            max_in_flight: max_in_flight.max(1),
            max_queued,
            in_flight: 0,
            queue: VecDeque::new(),
        }
    }

    pub fn request(&mut self, key: K, waiter: W) -> Decision {
        if self.in_flight < self.max_in_flight && self.queue.is_empty() {
            self.in_flight += 1;
            Decision::Go
        } else if self.queue.len() < self.max_queued {
            self.queue.push_back((key, waiter));
            Decision::Wait
        } else {
            Decision::Refuse(too_busy())
        }
    }

    /// A slot holder is done. The slot passes to the first queued request whose waiter
    /// `hand_over` accepts (false: that request is gone), or becomes free.
    pub fn release(&mut self, mut hand_over: impl FnMut(W) -> bool) {
        while let Some((_, waiter)) = self.queue.pop_front() {
            if hand_over(waiter) {
                return;
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Takes a queued request out (its caller left, or its deadline passed). `None`: it is not
    /// queued, because it already holds a slot or was never here.
    pub fn withdraw(&mut self, key: &K) -> Option<W> {
        let position = self.queue.iter().position(|(queued, _)| queued == key)?;
        self.queue.remove(position).map(|(_, waiter)| waiter)
    }

    /// Empties the queue (the session ended); the waiters are returned to be told.
    pub fn drain_queue(&mut self) -> Vec<W> {
        self.queue.drain(..).map(|(_, waiter)| waiter).collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_queues_then_refuses() {
        let mut admission = Admission::new(2, 1);
        assert!(matches!(admission.request(1, 'a'), Decision::Go));
        assert!(matches!(admission.request(2, 'b'), Decision::Go));
        assert!(matches!(admission.request(3, 'c'), Decision::Wait));
        let Decision::Refuse(err) = admission.request(4, 'd') else {
            panic!("a full queue must refuse");
        };
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after_secs, Some(1));
        assert_eq!((admission.in_flight(), admission.queued()), (2, 1));
    }

    #[test]
    fn release_hands_the_slot_to_the_first_live_waiter() {
        let mut admission = Admission::new(1, 3);
        assert!(matches!(admission.request(1, 'a'), Decision::Go));
        assert!(matches!(admission.request(2, 'b'), Decision::Wait));
        assert!(matches!(admission.request(3, 'c'), Decision::Wait));
        let mut woken = Vec::new();
        // 'b' is gone (its caller left without withdrawing): the slot goes on to 'c'.
        admission.release(|waiter| {
            woken.push(waiter);
            waiter == 'c'
        });
        assert_eq!(woken, vec!['b', 'c']);
        assert_eq!((admission.in_flight(), admission.queued()), (1, 0));
        admission.release(|_| true);
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn a_waiter_arriving_while_others_queue_does_not_jump_the_queue() {
        let mut admission = Admission::new(1, 2);
        assert!(matches!(admission.request(1, ()), Decision::Go));
        assert!(matches!(admission.request(2, ()), Decision::Wait));
        admission.release(|()| false);
        // The queued request left; the slot is free again and the next one goes at once.
        assert_eq!(admission.in_flight(), 0);
        assert!(matches!(admission.request(3, ()), Decision::Go));
    }

    #[test]
    fn error_texts_name_real_values() {
        assert!(queue_timeout(600_000).message.contains("waited 600 s for"));
        assert!(queue_timeout(1_500).message.contains("waited 1500 ms for"));
        let err = no_event_stream("/custom", 300);
        assert_eq!(err.status(), 503);
        assert!(err.message.contains("(GET /custom)") && err.message.contains("waited 300 ms"));
    }

    #[test]
    fn withdraw_and_drain() {
        let mut admission = Admission::new(1, 3);
        assert!(matches!(admission.request(1, 'a'), Decision::Go));
        assert!(matches!(admission.request(2, 'b'), Decision::Wait));
        assert!(matches!(admission.request(3, 'c'), Decision::Wait));
        assert_eq!(admission.withdraw(&2), Some('b'));
        assert_eq!(admission.withdraw(&1), None, "slot holders are not queued");
        assert_eq!(admission.drain_queue(), vec!['c']);
        assert_eq!(admission.queued(), 0);
    }
}
