//! Which API's conventions a request follows, and so which error body it gets (each route's
//! is in `routes`).

use crate::api_error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Anthropic,
    OpenAi,
    /// The MCP endpoint: JSON-RPC error bodies.
    Mcp,
}

impl Flavor {
    /// The error body in this flavor's shape.
    pub fn error_body(self, err: &ApiError, request_id: &str) -> String {
        match self {
            Flavor::Anthropic => err.to_body(request_id),
            Flavor::OpenAi => crate::api::openai::error_body(err),
            Flavor::Mcp => crate::mcp::streamable_http::error_body(-32600, &err.message),
        }
    }

    /// The headers besides content-type and request-id that go with the error body: the
    /// retry hints the API SDKs read (a JSON-RPC client reads none).
    pub fn error_headers(self, err: &ApiError) -> Vec<(&'static str, String)> {
        match self {
            Flavor::Mcp => Vec::new(),
            Flavor::Anthropic | Flavor::OpenAi => err.extra_headers(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let err = ApiError::invalid_request("bad");
        assert!(
            Flavor::OpenAi
                .error_body(&err, "r")
                .contains("\"param\":null")
        );
        assert!(Flavor::Mcp.error_body(&err, "r").contains("-32600"));
        assert!(Flavor::Mcp.error_headers(&err).is_empty());
        assert_eq!(Flavor::OpenAi.error_headers(&err), err.extra_headers());
        assert!(
            Flavor::Anthropic
                .error_body(&err, "r")
                .contains("\"request_id\":\"r\"")
        );
    }
}
