//! MCP `CreateMessageResult` → Anthropic `MessagesResponse`.
//!
//! Stop reasons map both ways (`endTurn`→`end_turn`, …); a result holding `tool_use` blocks is
//! always `tool_use`, since agents loop on that value. Image, audio and tool-result blocks
//! cannot appear in an Anthropic assistant message, so such a result is the client's failure.

use crate::anthropic::{MessagesResponse, ResponseBlock, StopReason, Usage};
use crate::api_error::ApiError;
use crate::sampling::{CreateMessageResult, SamplingContent};
use crate::tokens::estimate_output;

/// What the response needs from the request it answers.
#[derive(Debug, Clone)]
pub struct ResponseContext<'a> {
    pub message_id: String,
    pub requested_model: &'a str,
    pub estimated_input_tokens: u64,
}

pub fn stop_reason_from_mcp(reason: Option<&str>) -> StopReason {
    match reason {
        Some("maxTokens") => StopReason::MaxTokens,
        Some("stopSequence") => StopReason::StopSequence,
        Some("toolUse") => StopReason::ToolUse,
        Some("refusal") | Some("contentFilter") => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

pub fn to_messages_response(
    result: CreateMessageResult,
    context: ResponseContext<'_>,
    mut fresh_tool_use_id: impl FnMut() -> String,
) -> Result<MessagesResponse, ApiError> {
    let mut content = Vec::with_capacity(result.content.len());
    for block in result.content {
        content.push(match block {
            SamplingContent::Text { text } => ResponseBlock::Text { text },
            SamplingContent::ToolUse { id, name, input } => ResponseBlock::ToolUse {
                id: if id.is_empty() {
                    fresh_tool_use_id()
                } else {
                    id
                },
                name,
                input: if input.is_object() {
                    input
                } else {
                    return Err(invalid_result(
                        "a tool_use block whose input is not an object",
                    ));
                },
            },
            SamplingContent::Image { .. } => {
                return Err(invalid_result(
                    "an image block, which an Anthropic assistant message cannot carry",
                ));
            }
            SamplingContent::Audio { .. } => {
                return Err(invalid_result(
                    "an audio block, which an Anthropic assistant message cannot carry",
                ));
            }
            SamplingContent::ToolResult { .. } => {
                return Err(invalid_result(
                    "a tool_result block, which only a user message may carry",
                ));
            }
        });
    }
    let mut stop_reason = stop_reason_from_mcp(result.stop_reason.as_deref());
    let has_tool_use = content
        .iter()
        .any(|block| matches!(block, ResponseBlock::ToolUse { .. }));
    if has_tool_use && matches!(stop_reason, StopReason::EndTurn | StopReason::StopSequence) {
        stop_reason = StopReason::ToolUse;
    }
    let reported = result.usage;
    let input_tokens = reported
        .and_then(|usage| usage.input_tokens)
        .unwrap_or(context.estimated_input_tokens)
        .max(1);
    let output_tokens = reported
        .and_then(|usage| usage.output_tokens)
        .unwrap_or_else(|| estimate_output(&content))
        .max(1);
    let model = result
        .model
        .filter(|model| !model.is_empty())
        .unwrap_or_else(|| context.requested_model.to_string());
    Ok(MessagesResponse {
        id: context.message_id,
        kind: "message".into(),
        role: "assistant".into(),
        content,
        model,
        stop_reason,
        stop_sequence: None,
        usage: Usage::new(input_tokens, output_tokens),
    })
}

fn invalid_result(what: &str) -> ApiError {
    ApiError::api(format!("the MCP client's sampling result held {what}")).not_retryable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{CreateMessageResult, ReportedUsage};
    use serde_json::json;

    fn context() -> ResponseContext<'static> {
        ResponseContext {
            message_id: "msg_x".into(),
            requested_model: "claude-test",
            estimated_input_tokens: 42,
        }
    }

    fn convert(result: serde_json::Value) -> Result<MessagesResponse, ApiError> {
        to_messages_response(
            CreateMessageResult::from_value(result).unwrap(),
            context(),
            || "toolu_new".into(),
        )
    }

    #[test]
    fn text_result_maps_with_estimated_usage() {
        let response = convert(json!({"role":"assistant","content":{"type":"text","text":"hi there"},"model":"gpt-x","stopReason":"endTurn"})).unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "hi there".into()
            }]
        );
        assert_eq!(response.model, "gpt-x");
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.usage, Usage::new(42, 2));
    }

    #[test]
    fn stop_reasons_map() {
        for (mcp, api) in [
            ("endTurn", StopReason::EndTurn),
            ("maxTokens", StopReason::MaxTokens),
            ("stopSequence", StopReason::StopSequence),
            ("toolUse", StopReason::ToolUse),
            ("somethingElse", StopReason::EndTurn),
        ] {
            assert_eq!(stop_reason_from_mcp(Some(mcp)), api);
        }
        assert_eq!(stop_reason_from_mcp(None), StopReason::EndTurn);
    }

    #[test]
    fn tool_use_results_force_tool_use_and_fill_ids() {
        let response = convert(json!({"role":"assistant","model":"m","stopReason":"endTurn",
            "content":[{"type":"text","text":"calling"},{"type":"tool_use","id":"","name":"f","input":{"a":1}}]}))
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.content[1],
            ResponseBlock::ToolUse {
                id: "toolu_new".into(),
                name: "f".into(),
                input: json!({"a":1})
            }
        );
    }

    #[test]
    fn reported_usage_wins_and_model_falls_back() {
        let mut result = CreateMessageResult::from_value(
            json!({"role":"assistant","content":{"type":"text","text":"x"}}),
        )
        .unwrap();
        result.usage = Some(ReportedUsage {
            input_tokens: Some(100),
            output_tokens: Some(0),
        });
        let response = to_messages_response(result, context(), || unreachable!()).unwrap();
        assert_eq!(response.model, "claude-test");
        assert_eq!(response.usage.input_tokens, 100);
        assert_eq!(response.usage.output_tokens, 1, "zero is never reported");
    }

    #[test]
    fn content_the_api_cannot_carry_is_a_client_failure() {
        for block in [
            json!({"type":"image","data":"AA==","mimeType":"image/png"}),
            json!({"type":"audio","data":"AA==","mimeType":"audio/wav"}),
            json!({"type":"tool_result","toolUseId":"t","content":[]}),
            json!({"type":"tool_use","id":"t","name":"f","input":[1]}),
        ] {
            let err = convert(json!({"role":"assistant","model":"m","content":block})).unwrap_err();
            assert_eq!(err.status(), 500);
            assert!(!err.retryable);
        }
    }
}
