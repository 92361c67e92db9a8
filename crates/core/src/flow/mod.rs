//! The runtime-neutral part of one sampling request (`/v1/messages`, `/v1/chat/completions`),
//! which both runtimes drive: native `api/flow.rs` and the worker's `api/flow.rs`.
//!
//! - `prepare`: a parsed request, once its session is chosen, made ready for that session's
//!   client: token estimate, `sampling/createMessage` params with the model hints, and what the
//!   answer will need ([`prepare::Answering`]).
//! - `answer`: the client's result as the caller's response (Anthropic or OpenAI, as JSON; the
//!   streamed framing is `api::stream_framing`).
//!
//! Between the two the runtime admits the request at its session (`lifecycle`), sends the
//! params and waits for the outcome, which is the I/O this crate does not do.

pub mod answer;
pub mod prepare;
