//! Work that holds a CPU for milliseconds (parsing or encoding a body of megabytes: a request
//! with images) runs on tokio's blocking pool, so the runtime's thread (one by default) keeps
//! serving everyone else meanwhile. Smaller work runs in place, where handing it over would
//! cost more than doing it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use sampling2api_core::ApiError;
use tokio::task::JoinHandle;

/// From this size on, parsing or encoding a body takes a few hundred microseconds or more.
pub const OFF_THE_RUNTIME_BYTES: usize = 256 * 1024;

/// Runs `work`, which handles about `bytes` of JSON: in place (at once) if small, else on the
/// blocking pool. Not an `async fn`: such a future would hold `work`, and with it whatever
/// `work` captured, for as long as the future that awaits it lives (a request waiting for its
/// answer keeps its future for seconds).
pub fn run<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> CpuWork<T> {
    if bytes < OFF_THE_RUNTIME_BYTES {
        CpuWork::Done(Some(work()))
    } else {
        CpuWork::Pool(tokio::task::spawn_blocking(work))
    }
}

/// The outcome of [`run`]: already there, or coming from the blocking pool.
pub enum CpuWork<T> {
    Done(Option<Result<T, ApiError>>),
    Pool(JoinHandle<Result<T, ApiError>>),
}

// The outcome is only ever moved out whole, never pinned in place.
impl<T> Unpin for CpuWork<T> {}

impl<T> Future for CpuWork<T> {
    type Output = Result<T, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CpuWork::Done(outcome) => Poll::Ready(
                outcome
                    .take()
                    .unwrap_or_else(|| Err(ApiError::api("the bridge polled finished work again"))),
            ),
            CpuWork::Pool(handle) => Pin::new(handle).poll(cx).map(|joined| match joined {
                Ok(outcome) => outcome,
                // Only a panic (a bug) or a runtime shutting down gets here.
                Err(err) => Err(ApiError::api(format!(
                    "the bridge failed while processing a large body: {err}"
                ))),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn small_work_stays_on_the_runtime_thread_and_large_work_leaves_it() {
        let here = std::thread::current().id();
        let small = run(10, || Ok(std::thread::current().id())).await;
        let large = run(OFF_THE_RUNTIME_BYTES, || Ok(std::thread::current().id())).await;
        assert_eq!(small.ok(), Some(here));
        assert!(large.is_ok_and(|thread| thread != here));
        let failed: Result<(), ApiError> = run(OFF_THE_RUNTIME_BYTES, || {
            Err(ApiError::invalid_request("bad"))
        })
        .await;
        assert_eq!(failed.map_err(|err| err.status()), Err(400));
    }
}
