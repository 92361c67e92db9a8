//! What a streamed answer looks like on the wire, per API: the frame sent as soon as a request
//! is accepted, the keep-alive sent while the client works, and the ending (the answer, or the
//! error). Both runtimes stream through this, so the two APIs stream the same everywhere.

use crate::api::anthropic::MessagesResponse;
use crate::api_error::ApiError;
use crate::{api::openai, api::sse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFraming {
    /// Anthropic SSE: `message_start` + `ping`, `ping`s, content frames or `event: error`.
    Anthropic,
    /// OpenAI chunks: the role chunk, `: keepalive` comments, deltas, `data: [DONE]`.
    OpenAi { created: u64, include_usage: bool },
}

impl StreamFraming {
    pub fn opening(&self, message_id: &str, model: &str, input_tokens: u64) -> String {
        match self {
            StreamFraming::Anthropic => {
                sse::message_start(message_id, model, input_tokens) + sse::PING
            }
            StreamFraming::OpenAi { created, .. } => {
                openai::stream_start(message_id, *created, model)
            }
        }
    }

    pub fn keepalive(&self) -> &'static str {
        match self {
            StreamFraming::Anthropic => sse::PING,
            StreamFraming::OpenAi { .. } => openai::STREAM_KEEPALIVE,
        }
    }

    pub fn ending(&self, outcome: Result<MessagesResponse, ApiError>, model: &str) -> String {
        match (self, outcome) {
            (StreamFraming::Anthropic, Ok(response)) => sse::response_frames(&response),
            (StreamFraming::Anthropic, Err(err)) => sse::error(&err),
            (
                StreamFraming::OpenAi {
                    created,
                    include_usage,
                },
                Ok(response),
            ) => openai::stream_rest(&response, *created, model, *include_usage),
            (StreamFraming::OpenAi { .. }, Err(err)) => openai::stream_error(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_opens_keeps_alive_and_fails_in_its_own_shape() {
        let anthropic = StreamFraming::Anthropic;
        assert!(
            anthropic
                .opening("msg_1", "m", 3)
                .starts_with("event: message_start\n")
        );
        assert!(anthropic.opening("msg_1", "m", 3).ends_with(sse::PING));
        assert_eq!(anthropic.keepalive(), sse::PING);
        assert!(
            anthropic
                .ending(Err(ApiError::timeout("late")), "m")
                .starts_with("event: error\n")
        );
        let openai = StreamFraming::OpenAi {
            created: 1,
            include_usage: false,
        };
        assert!(openai.opening("msg_1", "m", 3).starts_with("data: {"));
        assert!(openai.keepalive().starts_with(':'));
        assert!(
            openai
                .ending(Err(ApiError::timeout("late")), "m")
                .ends_with("data: [DONE]\n\n")
        );
    }
}
