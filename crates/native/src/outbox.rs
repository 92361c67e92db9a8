//! The messages waiting for one client's stream (the pipe, or its open `GET` stream), between
//! the session that queues them and the writer that writes them out.
//!
//! A channel would do, but what waits in a channel cannot be taken back. A client that stops
//! reading keeps every message queued: requests that timed out or whose callers left would
//! wait there (their bytes counted against `--max-client-queue-bytes`, 100–200 MB held) for a
//! client that, if it ever reads again, gets requests nobody waits for. Here a message that
//! carries a request is indexed by it, and the session withdraws it when the request ends
//! unwritten: its memory goes at once, and so does its place under the queue's bound.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use sampling2api_core::lifecycle::{KeyMap, RequestKey};

/// Withdrawn messages leave a gap that the writer skips; once gaps outnumber the messages
/// still waiting (and this many at least), the queue is compacted, so that a client that
/// never reads cannot grow it with gaps.
const COMPACT_AFTER_GAPS: usize = 64;

struct Slot<T> {
    request: Option<RequestKey>,
    /// `None`: withdrawn.
    message: Option<T>,
}

struct Queue<T> {
    slots: VecDeque<Slot<T>>,
    /// The sequence number of `slots[0]`.
    front: u64,
    /// The sequence number of each waiting message that carries a request.
    requests: KeyMap<u64>,
    gaps: usize,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<T> Queue<T> {
    fn pop(&mut self) -> Option<T> {
        while let Some(slot) = self.slots.pop_front() {
            self.front += 1;
            match slot.message {
                Some(message) => {
                    if let Some(key) = slot.request {
                        self.requests.remove(&key);
                    }
                    return Some(message);
                }
                None => self.gaps -= 1,
            }
        }
        None
    }

    fn compact(&mut self) {
        self.slots.retain(|slot| slot.message.is_some());
        self.gaps = 0;
        self.requests.clear();
        for (offset, slot) in self.slots.iter().enumerate() {
            if let Some(key) = slot.request {
                self.requests.insert(key, self.front + offset as u64);
            }
        }
    }
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // No code panics while holding it; a poisoned queue is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The session's end: queues messages and withdraws them.
pub struct OutboxSender<T> {
    shared: Arc<Shared<T>>,
}

/// The writer's end.
pub struct OutboxReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// A new, empty outbox.
pub fn outbox<T>() -> (OutboxSender<T>, OutboxReceiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            slots: VecDeque::new(),
            front: 0,
            requests: KeyMap::default(),
            gaps: 0,
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
    });
    (
        OutboxSender {
            shared: shared.clone(),
        },
        OutboxReceiver { shared },
    )
}

impl<T> OutboxSender<T> {
    /// Queues `message` (which carries `request`, if it is a request). Gives it back if the
    /// writer is gone.
    pub fn send(&self, message: T, request: Option<RequestKey>) -> Result<(), T> {
        let waker = {
            let mut queue = self.shared.lock();
            if queue.receiver_gone {
                return Err(message);
            }
            if let Some(key) = request {
                let seq = queue.front + queue.slots.len() as u64;
                queue.requests.insert(key, seq);
            }
            queue.slots.push_back(Slot {
                request,
                message: Some(message),
            });
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Takes back the message carrying `request` if the writer has not taken it yet; whether
    /// it did (the client never saw the request).
    pub fn withdraw(&self, request: RequestKey) -> bool {
        let withdrawn = {
            let mut queue = self.shared.lock();
            let Some(seq) = queue.requests.remove(&request) else {
                return false;
            };
            let offset = usize::try_from(seq - queue.front).unwrap_or(usize::MAX);
            let withdrawn = queue
                .slots
                .get_mut(offset)
                .and_then(|slot| slot.message.take());
            if withdrawn.is_some() {
                queue.gaps += 1;
                if queue.gaps >= COMPACT_AFTER_GAPS && queue.gaps * 2 > queue.slots.len() {
                    queue.compact();
                }
            }
            withdrawn
        };
        // Dropped outside the lock: freeing megabytes need not hold up the writer.
        withdrawn.is_some()
    }
}

impl<T> Drop for OutboxSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut queue = self.shared.lock();
            queue.sender_gone = true;
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> OutboxReceiver<T> {
    /// The next message; `None` once the session let go of the outbox and it is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut queue = self.shared.lock();
        if let Some(message) = queue.pop() {
            return Poll::Ready(Some(message));
        }
        if queue.sender_gone {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message, if one waits.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().pop()
    }

    /// Whether no message waits (withdrawn ones do not count).
    pub fn is_empty(&self) -> bool {
        let queue = self.shared.lock();
        queue.slots.len() == queue.gaps
    }
}

impl<T> Drop for OutboxReceiver<T> {
    fn drop(&mut self) {
        // What waits goes now: nobody will write it.
        let left = {
            let mut queue = self.shared.lock();
            queue.receiver_gone = true;
            queue.requests.clear();
            queue.gaps = 0;
            std::mem::take(&mut queue.slots)
        };
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampling2api_core::lifecycle::{LifecycleLimits, SessionLifecycle};
    use sampling2api_core::mcp::session::{McpSession, ServerInfo};
    use std::time::Duration;

    /// Request keys come from a lifecycle; `n` of them.
    fn keys(n: usize) -> Vec<RequestKey> {
        let mut machine = SessionLifecycle::new(
            McpSession::new(ServerInfo::sampling2api()),
            LifecycleLimits {
                max_in_flight: 1,
                max_queued: n,
                stream_wait: Duration::from_secs(1),
                session_idle: Duration::from_secs(1),
                liveness_interval: None,
                mcp_path: "/mcp".into(),
                max_resend_bytes: 0,
            },
            sampling2api_core::lifecycle::Millis(0),
        );
        machine.client_message(
            sampling2api_core::lifecycle::Millis(0),
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}}}}"#,
        );
        machine.client_message(
            sampling2api_core::lifecycle::Millis(0),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        (0..n)
            .map(|_| {
                machine
                    .submit(
                        sampling2api_core::lifecycle::Millis(0),
                        sampling2api_core::lifecycle::Millis(10),
                    )
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn messages_come_out_in_order_and_withdrawn_ones_never() {
        let keys = keys(3);
        let (sender, mut receiver) = outbox::<&str>();
        sender.send("a", Some(keys[0])).unwrap();
        sender.send("notice", None).unwrap();
        sender.send("b", Some(keys[1])).unwrap();
        sender.send("c", Some(keys[2])).unwrap();
        assert!(sender.withdraw(keys[1]));
        assert!(!sender.withdraw(keys[1]), "once");
        assert_eq!(receiver.recv().await, Some("a"));
        // Written already: nothing to withdraw.
        assert!(!sender.withdraw(keys[0]));
        assert_eq!(receiver.try_recv(), Some("notice"));
        assert!(!receiver.is_empty());
        assert_eq!(receiver.try_recv(), Some("c"));
        assert!(receiver.is_empty());
        assert!(!sender.withdraw(keys[2]));
        drop(sender);
        assert_eq!(receiver.recv().await, None);
    }

    #[tokio::test]
    async fn gaps_are_compacted_and_the_index_survives() {
        let keys = keys(1000);
        let (sender, mut receiver) = outbox::<usize>();
        for (index, key) in keys.iter().enumerate() {
            sender.send(index, Some(*key)).unwrap();
        }
        // Every other one is withdrawn, the later half in reverse order: gaps never pile up.
        for (index, key) in keys.iter().enumerate().rev() {
            if index % 2 == 1 {
                assert!(sender.withdraw(*key), "{index}");
            }
            let queue = sender.shared.lock();
            assert!(queue.gaps < COMPACT_AFTER_GAPS.max(queue.slots.len() / 2 + 1));
        }
        // Withdrawing still finds messages after compaction.
        assert!(sender.withdraw(keys[998]));
        let mut seen = Vec::new();
        while let Some(index) = receiver.try_recv() {
            seen.push(index);
        }
        let expected: Vec<usize> = (0..998).step_by(2).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_gone_writer_refuses_messages_and_drops_what_waited() {
        let (sender, receiver) = outbox::<Arc<String>>();
        let text = Arc::new("x".repeat(100));
        sender.send(text.clone(), None).unwrap();
        assert_eq!(Arc::strong_count(&text), 2);
        drop(receiver);
        assert_eq!(Arc::strong_count(&text), 1);
        assert!(sender.send(text.clone(), None).is_err());
    }
}
