//! The MCP side: the bridge is a handshake-era MCP server whose only job is to send
//! `sampling/createMessage` to its client and route the answers back.
//!
//! - `jsonrpc`: typed JSON-RPC 2.0 envelopes, read in one pass.
//! - `sampling`: the `sampling/createMessage` wire types and `ClientSupport` (what a client
//!   declared it can take).
//! - `failures`: the client's JSON-RPC errors read as declines, rate limits, failures, and the
//!   API errors callers get for them; which clients ask a person before they sample.
//! - `session`: one MCP session's protocol state machine (`initialize`, request ids, answers).
//! - `streamable_http`: what `/mcp` answers (Streamable HTTP), SSE event ids and framing.

pub mod failures;
pub mod jsonrpc;
pub mod sampling;
pub mod session;
pub mod streamable_http;
