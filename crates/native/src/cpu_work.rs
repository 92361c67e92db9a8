//! Work that holds a CPU for milliseconds (parsing or encoding a body of megabytes: a request
//! with images) runs on tokio's blocking pool, so the runtime's thread (one by default) keeps
//! serving everyone else meanwhile. Smaller work runs in place, where handing it over would
//! cost more than doing it.

use sampling2api_core::ApiError;

/// From this size on, parsing or encoding a body takes a few hundred microseconds or more.
pub const OFF_THE_RUNTIME_BYTES: usize = 256 * 1024;

/// Runs `work`, which handles about `bytes` of JSON: in place if small, else on the
/// blocking pool.
pub async fn run<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if bytes < OFF_THE_RUNTIME_BYTES {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(outcome) => outcome,
        // Only a panic (a bug) or a runtime shutting down gets here.
        Err(err) => Err(ApiError::api(format!(
            "the bridge failed while processing a large body: {err}"
        ))),
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
