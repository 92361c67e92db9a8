//! sampling2api core: everything the native binary and the Cloudflare Worker share.
//!
//! Sans-I/O: plain types, functions and state machines; no async runtime, no sockets. It builds
//! for `wasm32-unknown-unknown`. The runtimes feed it bytes and carry out what it returns.
//!
//! Folders, each with its own map in its `mod.rs`; arrows only point down this list:
//! - `ops/`: settings both runtimes read, `/health`, `/metrics`, the status page.
//! - `http/`: the HTTP front: the one route table, error shapes per route (`flavor`), API keys
//!   (`auth`), the browser guard (Host, Origin, JSON bodies), the header bound.
//! - `lifecycle/`: one session's requests from admission to outcome, with time as an input (the
//!   machine, its value types, resume and resend, its refusals), and which session an API
//!   request goes to (`session_choice`).
//! - `flow/`: the runtime-neutral part of one sampling request, driven by both runtimes:
//!   `prepare` (estimate, params with hints, what the answer needs) and `answer` (the client's
//!   result as the caller's response).
//! - `convert/`: API request → `sampling/createMessage` params and the client's result → API
//!   response, tool emulation and structured outputs for clients that cannot take them, token
//!   estimates, `url` image policy.
//! - `mcp/`: JSON-RPC envelopes, the sampling types (with `ClientSupport`), the MCP session's
//!   protocol state, Streamable HTTP (what `/mcp` answers, event ids).
//! - `api/`: the Anthropic and OpenAI types, the model catalog and hints, SSE and the framing
//!   of streamed answers.
//! - `api_error` (the one error type: status, type, retry) and `ids`, used by all.
//!
//! A request's path: the runtime matches `http::routes`, checks `http::browser_guard` and
//! `http::auth`, parses with `api::anthropic`/`api::openai`, picks a session with
//! `lifecycle::session_choice` (by public handle or the client's own secret), prepares it with
//! `flow::prepare` (which converts with `convert::to_sampling`), and hands the params to that
//! session's `lifecycle` (`submit` → `Encode` → a `Transmit` to the client → `client_message`
//! with its answer → `Done`); `flow::answer` (with `convert::from_sampling`) turns the outcome
//! into the response, and `api::stream_framing` frames it when streamed.

pub mod api;
pub mod api_error;
pub mod convert;
pub mod flow;
pub mod http;
pub mod ids;
pub mod lifecycle;
pub mod mcp;
pub mod ops;

pub use api_error::{ApiError, ErrorKind};
