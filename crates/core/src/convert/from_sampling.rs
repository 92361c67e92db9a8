//! MCP `CreateMessageResult` → Anthropic `MessagesResponse`.
//!
//! Stop reasons map both ways (`endTurn`→`end_turn`, …); a result holding `tool_use` blocks is
//! always `tool_use`, since agents loop on that value. Image, audio and tool-result blocks
//! cannot appear in an Anthropic assistant message, so such a result is the client's failure.
//! The request's [`AnswerPlan`] applies in order: the caller's stop sequences cut the text
//! (clients may ignore them; see [`crate::convert::stop_sequences`]), emulated tool calls are
//! parsed out of what is left, and a structured answer's text is reduced to its JSON value.

use crate::api::anthropic::{MessagesResponse, ResponseBlock, StopReason, Usage};
use crate::api_error::ApiError;
use crate::convert::stop_sequences::StopSequences;
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
    let (blocks, stopped_at) = match StopSequences::new(&context.plan.stop_sequences) {
        Some(stops) => cut_at_stop(result.content, &stops),
        None => (result.content, None),
    };
    let mut content = Vec::with_capacity(blocks.len());
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
    for block in blocks {
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
    // The sequence the bridge cut at; or, when the client stopped at one itself and only one
    // was asked for, that one.
    let mut stop_sequence = match (
        &stopped_at,
        stop_reason,
        context.plan.stop_sequences.as_slice(),
    ) {
        (Some(sequence), _, _) => Some(sequence.clone()),
        (None, StopReason::StopSequence, [only]) => Some(only.clone()),
        _ => None,
    };
    if stopped_at.is_some() {
        stop_reason = StopReason::StopSequence;
    }
    let has_tool_use = content
        .iter()
        .any(|block| matches!(block, ResponseBlock::ToolUse { .. }));
    if has_tool_use && matches!(stop_reason, StopReason::EndTurn | StopReason::StopSequence) {
        stop_reason = StopReason::ToolUse;
        stop_sequence = None;
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
        stop_sequence,
        usage: Usage::new(input_tokens, output_tokens),
    })
}

/// `blocks` up to the first stop, and the sequence found there. Each run of text blocks is
/// searched as one text (a client may split its answer, and a sequence across two blocks is
/// still one) and keeps its block boundaries; everything after the stop is dropped, as the
/// model would not have written it.
fn cut_at_stop(
    blocks: Vec<SamplingContent>,
    stops: &StopSequences,
) -> (Vec<SamplingContent>, Option<String>) {
    let mut out = Vec::with_capacity(blocks.len());
    let mut run: Vec<String> = Vec::new();
    for block in blocks {
        match block {
            SamplingContent::Text { text } => run.push(text),
            other => {
                if let Some(sequence) = cut_run(&mut run, stops) {
                    out.extend(run.into_iter().map(|text| SamplingContent::Text { text }));
                    return (out, Some(sequence));
                }
                out.extend(run.drain(..).map(|text| SamplingContent::Text { text }));
                out.push(other);
            }
        }
    }
    let stopped = cut_run(&mut run, stops);
    out.extend(run.into_iter().map(|text| SamplingContent::Text { text }));
    (out, stopped)
}

/// Truncates a run of text blocks at its first stop, if it has one.
fn cut_run(run: &mut Vec<String>, stops: &StopSequences) -> Option<String> {
    let joined = run.concat();
    let (start, sequence) = stops.find(&joined)?;
    let mut remaining = start;
    let mut kept = Vec::with_capacity(run.len());
    for mut text in run.drain(..) {
        if remaining >= text.len() {
            remaining -= text.len();
            kept.push(text);
            continue;
        }
        // Block boundaries and the match's start are character boundaries of the joined text.
        if text.is_char_boundary(remaining) {
            text.truncate(remaining);
        }
        if !text.is_empty() || kept.is_empty() {
            kept.push(text);
        }
        break;
    }
    *run = kept;
    Some(sequence.to_string())
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
            stop_sequences: Vec::new(),
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
            structured_output: true,
            ..AnswerPlan::default()
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

    fn stopping(sequences: &[&str]) -> AnswerPlan {
        AnswerPlan {
            stop_sequences: sequences.iter().map(|s| s.to_string()).collect(),
            ..AnswerPlan::default()
        }
    }

    #[test]
    fn answers_are_cut_at_the_first_stop_sequence() {
        // VS Code's result: one text, no stop reason.
        let response = convert_with(
            stopping(&["END", "\n\nHuman:"]),
            json!({"role":"assistant","model":"copilot/gpt-4.1","content":{"type":"text",
                "text":"one two\n\nHuman: three END four"}}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "one two".into()
            }]
        );
        assert_eq!(response.stop_reason, StopReason::StopSequence);
        assert_eq!(response.stop_sequence.as_deref(), Some("\n\nHuman:"));
        // No stop in the text: unchanged, end_turn.
        let response = convert_with(
            stopping(&["END"]),
            json!({"role":"assistant","model":"m","content":{"type":"text","text":"fine"}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.stop_sequence, None);
        // Across two blocks, which keep their boundary; later blocks go.
        let response = convert_with(
            stopping(&["STOP"]),
            json!({"role":"assistant","model":"m","content":[
                {"type":"text","text":"ab ST"},{"type":"text","text":"OP cd"},
                {"type":"tool_use","id":"t","name":"f","input":{}}]}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text { text: "ab ".into() }]
        );
        assert_eq!(response.stop_reason, StopReason::StopSequence);
        // A stop right at a block's start leaves the blocks before it whole.
        let response = convert_with(
            stopping(&["STOP"]),
            json!({"role":"assistant","model":"m","content":[
                {"type":"text","text":"ab"},{"type":"text","text":"STOP"}]}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text { text: "ab".into() }]
        );
        // A client that stopped by itself at the one sequence asked for: it is named.
        let response = convert_with(
            stopping(&["END"]),
            json!({"role":"assistant","model":"m","stopReason":"stopSequence","content":{"type":"text","text":"x"}}),
        )
        .unwrap();
        assert_eq!(response.stop_sequence.as_deref(), Some("END"));
    }

    #[test]
    fn the_stop_applies_to_the_raw_text_before_tool_calls_and_values() {
        // Emulated tool calls: a call before the stop is kept and wins the stop reason; a call
        // after it was never written.
        let plan = AnswerPlan {
            stop_sequences: vec!["Observation:".into()],
            ..emulating(&["get"])
        };
        let response = convert_with(
            plan.clone(),
            json!({"role":"assistant","model":"m","content":{"type":"text",
                "text":"Thinking.\n<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>\nObservation: made up"}}),
        )
        .unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(response.stop_sequence, None);
        assert!(matches!(
            response.content.last(),
            Some(ResponseBlock::ToolUse { .. })
        ));
        let response = convert_with(
            plan,
            json!({"role":"assistant","model":"m","content":{"type":"text",
                "text":"Done.\nObservation: <tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>"}}),
        )
        .unwrap();
        // The text as written up to the stop (the real API keeps trailing whitespace too).
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "Done.\n".into()
            }]
        );
        assert_eq!(response.stop_reason, StopReason::StopSequence);
        // Structured output: the value is taken from the text before the stop.
        let plan = AnswerPlan {
            structured_output: true,
            stop_sequences: vec!["---".into()],
            ..AnswerPlan::default()
        };
        let response = convert_with(
            plan,
            json!({"role":"assistant","model":"m","content":{"type":"text",
                "text":"{\"n\": 1}\n---\n{\"n\": 2}"}}),
        )
        .unwrap();
        assert_eq!(
            response.content,
            vec![ResponseBlock::Text {
                text: "{\"n\": 1}".into()
            }]
        );
        assert_eq!(response.stop_reason, StopReason::StopSequence);
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
