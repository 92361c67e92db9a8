//! sampling2api core: everything the native binary and the Cloudflare Worker share.
//!
//! Sans-I/O: plain types, functions and state machines; no async runtime, no sockets. It builds
//! for `wasm32-unknown-unknown`. The runtimes feed it bytes and carry out what it returns.

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
pub mod lifecycle;
pub mod mcp_session;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod routing;
pub mod sampling;
pub mod sse;
pub mod status;
pub mod stream_framing;
pub mod structured_output;
pub mod to_sampling;
pub mod tokens;
pub mod tool_emulation;

pub use api_error::{ApiError, ErrorKind};
