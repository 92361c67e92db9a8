//! The client's result as the caller's response.

use crate::api::anthropic::MessagesResponse;
use crate::api::openai;
use crate::api::stream_framing::StreamFraming;
use crate::api_error::ApiError;
use crate::convert::from_sampling::{ResponseContext, to_messages_response};
use crate::flow::prepare::Answering;
use crate::mcp::sampling::CreateMessageResult;

/// The Anthropic response to `result` (the OpenAI one is made from it). `fresh_tool_use_id`
/// names the calls parsed from an emulated answer.
pub fn answer(
    answering: Answering,
    result: CreateMessageResult,
    fresh_tool_use_id: impl FnMut() -> String,
) -> Result<MessagesResponse, ApiError> {
    to_messages_response(
        result,
        ResponseContext {
            message_id: answering.message_id,
            requested_model: &answering.model,
            estimated_input_tokens: answering.input_tokens,
            plan: answering.plan,
        },
        fresh_tool_use_id,
    )
}

/// A non-streamed response's body in the caller's API (`framing` names it; a streamed one is
/// written by [`StreamFraming`] itself).
pub fn json_body(framing: StreamFraming, response: &MessagesResponse) -> Result<String, ApiError> {
    match framing {
        StreamFraming::Anthropic => serde_json::to_string(response)
            .map_err(|err| ApiError::api(format!("could not encode the response: {err}"))),
        StreamFraming::OpenAi { created, .. } => {
            Ok(openai::to_chat_completion(response, created).to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::anthropic::{ResponseBlock, StopReason, Usage};

    fn response() -> MessagesResponse {
        MessagesResponse {
            id: "msg_1".into(),
            kind: "message".into(),
            role: "assistant".into(),
            content: vec![ResponseBlock::Text { text: "hi".into() }],
            model: "claude-x".into(),
            stop_reason: StopReason::EndTurn,
            stop_sequence: None,
            usage: Usage::new(3, 1),
        }
    }

    #[test]
    fn each_api_gets_its_own_body() {
        let anthropic: Value =
            serde_json::from_str(&json_body(StreamFraming::Anthropic, &response()).unwrap())
                .unwrap();
        assert_eq!(anthropic["type"], "message");
        assert_eq!(anthropic["content"], json!([{"type":"text","text":"hi"}]));
        let framing = StreamFraming::OpenAi {
            created: 7,
            include_usage: false,
        };
        let openai: Value =
            serde_json::from_str(&json_body(framing, &response()).unwrap()).unwrap();
        assert_eq!(openai["object"], "chat.completion");
        assert_eq!(openai["created"], 7);
        assert_eq!(openai["choices"][0]["message"]["content"], "hi");
    }
}
