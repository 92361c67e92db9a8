//! Which API's conventions a request follows, and so which error body it gets.

use serde_json::json;

use crate::api_error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Anthropic,
    OpenAi,
    /// The MCP endpoint: JSON-RPC error bodies.
    Mcp,
}

impl Flavor {
    /// `/v1/chat/*` is OpenAI's; `/v1/models` is OpenAI's unless the caller speaks Anthropic
    /// (`anthropic-version` or `x-api-key`, which every Anthropic SDK sends); other `/v1/` and
    /// the bridge's own routes are Anthropic's; the rest is the MCP endpoint.
    pub fn of(path: &str, speaks_anthropic: bool) -> Flavor {
        if path.starts_with("/v1/chat/") || (path.starts_with("/v1/models") && !speaks_anthropic) {
            Flavor::OpenAi
        } else if path.starts_with("/v1/")
            || matches!(path, "/" | "/health" | "/sessions" | "/metrics")
        {
            Flavor::Anthropic
        } else {
            Flavor::Mcp
        }
    }

    /// The error body in this flavor's shape.
    pub fn error_body(self, err: &ApiError, request_id: &str) -> String {
        match self {
            Flavor::Anthropic => err.to_body(request_id),
            Flavor::OpenAi => crate::openai::error_body(err),
            Flavor::Mcp => json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": err.message}})
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors() {
        assert_eq!(Flavor::of("/v1/chat/completions", true), Flavor::OpenAi);
        assert_eq!(Flavor::of("/v1/models", false), Flavor::OpenAi);
        assert_eq!(Flavor::of("/v1/models/x", true), Flavor::Anthropic);
        assert_eq!(Flavor::of("/v1/messages", false), Flavor::Anthropic);
        assert_eq!(Flavor::of("/health", false), Flavor::Anthropic);
        assert_eq!(Flavor::of("/mcp", false), Flavor::Mcp);
        let err = ApiError::invalid_request("bad");
        assert!(
            Flavor::OpenAi
                .error_body(&err, "r")
                .contains("\"param\":null")
        );
        assert!(Flavor::Mcp.error_body(&err, "r").contains("-32600"));
        assert!(
            Flavor::Anthropic
                .error_body(&err, "r")
                .contains("\"request_id\":\"r\"")
        );
    }
}
