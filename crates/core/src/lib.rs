//! sampling2api core: everything the native binary and the Cloudflare Worker share.
//!
//! Sans-I/O: plain types, functions and state machines; no async runtime, no sockets. It builds
//! for `wasm32-unknown-unknown`. The runtimes feed it bytes and carry out what it returns.
//!
//! Modules, by what they answer:
//! - the HTTP front: `routes` (the one route table), `browser_guard` (Host, Origin, JSON bodies),
//!   `auth` (API keys), `request_headers` (their size), `flavor` (Anthropic or OpenAI error
//!   shape), `api_error`, `ids`.
//! - the API: `anthropic` and `openai` (request and response types, validation),
//!   `to_sampling` (an API request → `sampling/createMessage` params), `tool_emulation` and
//!   `structured_output` (for clients that cannot take tools or schemas), `from_sampling` (the
//!   client's result → the API response), `sse` and `stream_framing` (streamed responses),
//!   `tokens`, `models`, `image_url`, `base64_check`.
//! - MCP: `jsonrpc` (typed envelopes), `mcp_session` (the protocol: `initialize`, ids, answers),
//!   `streamable_http` (what `/mcp` answers), `sampling` (the sampling types), `lifecycle` (one
//!   session's requests from admission to outcome, with time as an input), `admission` (the
//!   texts of its refusals), `routing` (which session an API request goes to).
//! - operations: `settings` (shared defaults and bounds), `health`, `metrics`, `status` (the
//!   status page).
//!
//! A request's path: the runtime matches `routes`, checks `browser_guard` and `auth`, parses with
//! `anthropic`/`openai`, picks a session with `routing`, converts with `to_sampling`, and hands
//! the params to that session's `lifecycle` (`submit` → `Encode` → a `Transmit` to the client →
//! `client_message` with its answer → `Done`); `from_sampling` (and `sse` when streamed) turns
//! the outcome into the response.

pub mod admission;
pub mod anthropic;
pub mod api_error;
pub mod auth;
pub mod base64_check;
pub mod browser_guard;
pub mod flavor;
pub mod from_sampling;
pub mod health;
pub mod ids;
pub mod image_url;
pub mod jsonrpc;
pub mod lifecycle;
pub mod mcp_session;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod request_headers;
pub mod routes;
pub mod routing;
pub mod sampling;
pub mod settings;
pub mod sse;
pub mod status;
pub mod stream_framing;
pub mod streamable_http;
pub mod structured_output;
pub mod to_sampling;
pub mod tokens;
pub mod tool_emulation;

pub use api_error::{ApiError, ErrorKind};
