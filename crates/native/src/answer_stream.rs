//! The body of a streamed answer: the opening frame, keep-alives while the client works, then
//! the ending. The body itself drives the sampling request, so no task or channel stands
//! between the two; when the caller goes away, hyper drops the body, and with it the request's
//! future, which cancels the request at the client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use sampling2api_core::ApiError;
use sampling2api_core::api::stream_framing::StreamFraming;

/// The stream's ending, encoded where the answer was converted (see `flow::complete`), or the
/// error it ends with.
type PendingAnswer = Pin<Box<dyn Future<Output = Result<String, ApiError>> + Send>>;

enum Phase {
    /// The opening frame, not yet handed to hyper.
    Opening(Bytes),
    /// The opening was handed over; let hyper write it before the client hears of the request.
    Flushing,
    Waiting(tokio::time::Interval),
    Done,
}

pub struct AnswerStream {
    phase: Phase,
    completion: PendingAnswer,
    framing: StreamFraming,
    model: String,
    ping_interval: Duration,
}

impl AnswerStream {
    pub fn new(
        opening: Bytes,
        completion: PendingAnswer,
        framing: StreamFraming,
        model: String,
        ping_interval: Duration,
    ) -> Self {
        AnswerStream {
            phase: Phase::Opening(opening),
            completion,
            framing,
            model,
            ping_interval,
        }
    }
}

impl futures::Stream for AnswerStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match &mut this.phase {
            Phase::Opening(opening) => {
                let opening = std::mem::take(opening);
                this.phase = Phase::Flushing;
                Poll::Ready(Some(Ok(opening)))
            }
            Phase::Flushing => {
                // hyper writes what it holds when the body is not ready, and polls again
                // at once because of the wake: the first byte leaves before sampling starts.
                let start = tokio::time::Instant::now() + this.ping_interval;
                this.phase = Phase::Waiting(tokio::time::interval_at(start, this.ping_interval));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Phase::Waiting(keepalives) => {
                if let Poll::Ready(outcome) = this.completion.as_mut().poll(cx) {
                    this.phase = Phase::Done;
                    let ending = match outcome {
                        Ok(ending) => ending,
                        Err(err) => this.framing.ending(Err(err), &this.model),
                    };
                    return Poll::Ready(Some(Ok(Bytes::from(ending))));
                }
                match keepalives.poll_tick(cx) {
                    Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(
                        this.framing.keepalive().as_bytes(),
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Phase::Done => Poll::Ready(None),
        }
    }
}
