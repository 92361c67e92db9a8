//! The HTTP APIs the bridge speaks to callers: their request and response types and their
//! streamed framing. Nothing here knows MCP.
//!
//! - `anthropic`: Messages API types, parsing with field-path errors, validation.
//! - `openai`: Chat Completions, translated to and from the Anthropic types.
//! - `models`: the model catalog (`GET /v1/models`) and the hints sent to MCP clients.
//! - `model_hints`: the forms of a requested id that clients matching hints loosely (VS Code)
//!   can find among their models' ids.
//! - `request_bounds`: how many messages and content blocks one request may hold.
//! - `sse`: Anthropic SSE events in the order the SDKs require.
//! - `stream_framing`: a streamed answer per API (the first frame, keep-alives, the ending).

pub mod anthropic;
pub mod model_hints;
pub mod models;
pub mod openai;
pub mod request_bounds;
pub mod sse;
pub mod stream_framing;
