//! Conversion between the API types (`crate::api`) and MCP sampling (`crate::mcp::sampling`).
//!
//! - `to_sampling`: an Anthropic request → `sampling/createMessage` params.
//! - `tool_emulation` and `structured_output`: tools and response schemas in the prompt, for
//!   clients that cannot take them, and the answer's text parsed back.
//! - `fence`: Markdown code fences, shared by both of those.
//! - `anthropic_tools`: Anthropic-defined tools (`bash_…`, `web_search_…`): offered with their
//!   published schema, left out, or named unavailable to the model.
//! - `stop_sequences`: the caller's stop sequences applied to the answer's text.
//! - `framing`: the bridge's tags in a prompt, and the escape that keeps caller text from
//!   forging them.
//! - `quoting`: where an answer only quotes text (code fences, block quotes, inline code).
//! - `from_sampling`: the client's result → the Anthropic response.
//! - `tokens`: token estimates for `usage` and `count_tokens`.
//! - `image_url` (the SSRF policy for `url` images) and `base64_check` (cheap base64 checks).

pub mod anthropic_tools;
pub mod base64_check;
pub mod fence;
pub mod framing;
pub mod from_sampling;
pub mod image_url;
pub mod quoting;
pub mod stop_sequences;
pub mod structured_output;
pub mod to_sampling;
pub mod tokens;
pub mod tool_emulation;
