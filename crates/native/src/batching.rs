//! Batching writes to the MCP client. A message for the client wakes its writer at once, and
//! tokio runs a task it just woke before anything else, so the writer usually finds a single
//! message to send, while the API requests that were ready in the same instant have yet to
//! hand over theirs. Stepping back once behind them puts such a burst into one write (one
//! syscall, and one wake-up of the client) instead of one each. It costs a trip through the
//! run queue, not a timer: with nothing else ready, the writer goes on at once.

use std::future::poll_fn;
use std::task::{Context, Poll};

/// One step back, for a writer that polls by hand: `poll` is pending once, then ready until
/// `reset` (after the writer took what was waiting).
#[derive(Debug, Default)]
pub struct StepBack {
    taken: bool,
}

impl StepBack {
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.taken {
            return Poll::Ready(());
        }
        self.taken = true;
        // A task woken while it runs goes to the back of the run queue (tokio's yield path).
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    pub fn reset(&mut self) {
        self.taken = false;
    }
}

/// Lets every task that is ready now run before the caller goes on.
pub async fn let_ready_tasks_run() {
    let mut step_back = StepBack::default();
    poll_fn(|cx| step_back.poll(cx)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// What a writer finds in its channel once woken by the first of three senders that were
    /// ready together.
    async fn burst_seen_by_writer(step_back: bool) -> usize {
        let (messages, mut outgoing) = mpsc::unbounded_channel::<u8>();
        let writer = tokio::spawn(async move {
            let _first = outgoing.recv().await;
            if step_back {
                let_ready_tasks_run().await;
            }
            let mut seen = 1;
            while outgoing.try_recv().is_ok() {
                seen += 1;
            }
            seen
        });
        // The writer is now waiting on its channel.
        tokio::task::yield_now().await;
        for message in 0..3 {
            let messages = messages.clone();
            tokio::spawn(async move { messages.send(message) });
        }
        writer.await.unwrap_or(0)
    }

    fn on_one_worker(step_back: bool) -> usize {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        runtime
            .block_on(async move { tokio::spawn(burst_seen_by_writer(step_back)).await.unwrap() })
    }

    #[test]
    fn a_woken_writer_that_steps_back_finds_the_whole_burst() {
        // Without stepping back, tokio runs the writer right after the first sender.
        assert_eq!(on_one_worker(false), 1);
        assert_eq!(on_one_worker(true), 3);
    }
}
