//! MCP `CreateMessageResult` → Anthropic `MessagesResponse`.
//!
//! Stop reasons map both ways (`endTurn`→`end_turn`, …); a result holding `tool_use` blocks is
//! always `tool_use`, since agents loop on that value. Image, audio and tool-result blocks
//! cannot appear in an Anthropic assistant message, so such a result is the client's failure.
//! The request's [`AnswerPlan`] applies last: emulated tool calls are parsed out of the text,
//! and a structured answer's text is reduced to its JSON value.

use crate::api::anthropic::{MessagesResponse, ResponseBlock, StopReason, Usage};
use crate::api_error::ApiError;
use crate::convert::structured_output::extract_json;
use crate::convert::to_sampling::AnswerPlan;
use crate::convert::tokens::estimate_output;
use crate::convert::tool_emulation::{EmulatedTools, ends_inside_call};
use crate::mcp::sampling::{CreateMessageResult, SamplingContent};

/// What the response needs from the request it answers.
#[derive(Debug, Clone)]
pub struct ResponseContext<'a> {
    pub message_id: String,
    pub requested_model: &'a str,
    pub estimated_input_tokens: u64,
    /// What the conversion decided the answer needs.
    pub plan: AnswerPlan,
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
    let mut parser = context
        .plan
        .emulated_tools
        .as_ref()
        .map(EmulatedTools::parser);
    // Emulation: text not parsed yet, and whether it ends inside a `<tool_call>` block. A
    // client may split its answer into several text blocks, so one that ends inside a block
    // continues in the next. Each join looks at the new text only: 20,000 small blocks after an
    // open tag once cost 20 s here.
    let mut unparsed: Option<(String, bool)> = None;
    for block in result.content {
        if let Some(parser) = &mut parser {
            match block {
                SamplingContent::Text { text } => {
                    match &mut unparsed {
                        Some((open, true)) => {
                            let from = open.len();
                            open.push_str(&text);
                            let still_open = ends_inside_call(open, from, true);
                            unparsed = unparsed.map(|(open, _)| (open, still_open));
                        }
                        _ => {
                            let open = ends_inside_call(&text, 0, false);
                            if let Some((done, _)) = unparsed.replace((text, open)) {
                                content.extend(parser.parse(done, &mut fresh_tool_use_id));
                            }
                        }
                    }
                    continue;
                }
                _ => {
                    if let Some((done, _)) = unparsed.take() {
                        content.extend(parser.parse(done, &mut fresh_tool_use_id));
                    }
                }
            }
        }
        let converted = match block {
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
        };
        content.push(converted);
    }
    if let (Some(parser), Some((done, _))) = (&mut parser, unparsed) {
        content.extend(parser.parse(done, &mut fresh_tool_use_id));
    }
    let mut stop_reason = stop_reason_from_mcp(result.stop_reason.as_deref());
    let has_tool_use = content
        .iter()
        .any(|block| matches!(block, ResponseBlock::ToolUse { .. }));
    if has_tool_use && matches!(stop_reason, StopReason::EndTurn | StopReason::StopSequence) {
        stop_reason = StopReason::ToolUse;
    }
    // A final answer (no tool call) with a response schema: only its JSON value.
    if context.plan.structured_output && !has_tool_use {
        let text: String = content
            .iter()
            .filter_map(|block| match block {
                ResponseBlock::Text { text } => Some(text.as_str()),
                ResponseBlock::ToolUse { .. } => None,
            })
            .collect();
        if let Some(value) = extract_json(&text) {
            content = vec![ResponseBlock::Text {
                text: value.to_string(),
            }];
        }
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
    use crate::mcp::sampling::{CreateMessageResult, ReportedUsage};
    use serde_json::json;

    fn context() -> ResponseContext<'static> {
        ResponseContext {
            message_id: "msg_x".into(),
            requested_model: "claude-test",
            estimated_input_tokens: 42,
            plan: AnswerPlan::default(),
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

    fn convert_with(
        plan: AnswerPlan,
        result: serde_json::Value,
    ) -> Result<MessagesResponse, ApiError> {
        let mut counter = 0;
        to_messages_response(
            CreateMessageResult::from_value(result).unwrap(),
            ResponseContext { plan, ..context() },
            move || {
                counter += 1;
                format!("toolu_{counter}")
            },
        )
    }

    fn emulating(names: &[&str]) -> AnswerPlan {
        AnswerPlan {
            emulated_tools: Some(EmulatedTools::new(names.iter().copied())),
            structured_output: false,
        }
    }

    #[test]
    fn emulated_calls_are_parsed_from_the_text() {
        let response = convert_with(
            emulating(&["get"]),
            json!({"role":"assistant","model":"m","stopReason":"endTurn","content":{"type":"text",
                "text":"Checking.\n<tool_call>{\"name\":\"get\",\"arguments\":{\"q\":1}}</tool_call>\n<tool_call>{\"name\":\"get\",\"arguments\":{\"q\":2}}</tool_call>"}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.content,
            vec![
                ResponseBlock::Text {
                    text: "Checking.".into()
                },
                ResponseBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "get".into(),
                    input: json!({"q":1})
                },
                ResponseBlock::ToolUse {
                    id: "toolu_2".into(),
                    name: "get".into(),
                    input: json!({"q":2})
                },
            ]
        );
        // A call split across two text blocks is still one call.
        let response = convert_with(
            emulating(&["get"]),
            json!({"role":"assistant","model":"m","content":[
                {"type":"text","text":"Sure.\n<tool_call>{\"name\":\"get\","},
                {"type":"text","text":"\"arguments\":{}}</tool_call>"},
                {"type":"text","text":"A separate block."}]}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![
                ResponseBlock::Text {
                    text: "Sure.".into()
                },
                ResponseBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "get".into(),
                    input: json!({})
                },
                ResponseBlock::Text {
                    text: "A separate block.".into()
                },
            ]
        );
        // A call to a tool not offered stays text, and the turn ends normally.
        let text = "<tool_call>{\"name\":\"rm\",\"arguments\":{}}</tool_call>";
        let response = convert_with(
            emulating(&["get"]),
            json!({"role":"assistant","model":"m","stopReason":"endTurn","content":{"type":"text","text":text}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text { text: text.into() }]
        );
        // Without emulation the same text is just text.
        let response = convert_with(
            AnswerPlan::default(),
            json!({"role":"assistant","model":"m","content":{"type":"text","text":"<tool_call>{\"name\":\"get\"}</tool_call>"}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::EndTurn);
    }

    #[test]
    fn structured_answers_are_reduced_to_their_value() {
        let structured = AnswerPlan {
            emulated_tools: None,
            structured_output: true,
        };
        let response = convert_with(
            structured.clone(),
            json!({"role":"assistant","model":"m","content":{"type":"text",
                "text":"Here you go:\n```json\n{\"city\": \"Paris\"}\n```"}}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "{\"city\": \"Paris\"}".into()
            }]
        );
        let response = convert_with(
            structured,
            json!({"role":"assistant","model":"m","content":{"type":"text","text":"I cannot."}}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "I cannot.".into()
            }]
        );
    }

    #[test]
    fn calls_plus_structured_output_keep_the_calls_and_the_text() {
        let plan = AnswerPlan {
            structured_output: true,
            ..emulating(&["get"])
        };
        let response = convert_with(
            plan.clone(),
            json!({"role":"assistant","model":"m","content":{"type":"text",
                "text":"First {\"draft\": 1}\n<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>"}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.content[0],
            ResponseBlock::Text {
                text: "First {\"draft\": 1}".into()
            }
        );
        // The final answer after the loop is reduced.
        let response = convert_with(
            plan,
            json!({"role":"assistant","model":"m","content":{"type":"text","text":"Done: {\"n\": 3}"}}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "{\"n\": 3}".into()
            }]
        );
    }

    #[test]
    fn a_tag_split_between_blocks_and_the_cap_over_blocks() {
        let response = convert_with(
            emulating(&["get"]),
            json!({"role":"assistant","model":"m","content":[
                {"type":"text","text":"Sure <tool_"},
                {"type":"text","text":"call>{\"name\":\"get\","},
                {"type":"text","text":"\"arguments\":{}}</tool_call>"}]}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![
                ResponseBlock::Text {
                    text: "Sure".into()
                },
                ResponseBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "get".into(),
                    input: json!({})
                },
            ]
        );
        let mut plan = emulating(&["get"]);
        plan.set_max_tool_calls(2);
        let call = json!({"type":"text","text":"<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>"});
        let response = convert_with(
            plan,
            json!({"role":"assistant","model":"m","content":[call, call, call]}),
        )
        .unwrap();
        let calls = response
            .content
            .iter()
            .filter(|block| matches!(block, ResponseBlock::ToolUse { .. }))
            .count();
        assert_eq!(calls, 2, "{:?}", response.content);
        assert_eq!(response.content.len(), 3);
    }

    #[test]
    fn many_blocks_after_an_open_tag_join_into_one_text() {
        let mut content = vec![json!({"type":"text","text":"<tool_call>"})];
        content.extend((0..2_000).map(|_| json!({"type":"text","text":" </tool_cal <tool_cal"})));
        let response = convert_with(
            emulating(&["get"]),
            json!({"role":"assistant","model":"m","content":content}),
        )
        .unwrap();
        let [ResponseBlock::Text { text }] = response.content.as_slice() else {
            panic!("one text block: {:?}", response.content);
        };
        assert_eq!(text.len(), "<tool_call>".len() + 2_000 * 21);
    }
}
