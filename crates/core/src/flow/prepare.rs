//! A parsed request made ready for its session's client.

use crate::api::anthropic::MessagesRequest;
use crate::api_error::ApiError;
use crate::convert::to_sampling::{AnswerPlan, into_create_message_params};
use crate::convert::tokens::estimate_request;
use crate::convert::tool_emulation::ToolMode;
use crate::mcp::sampling::{ClientSupport, CreateMessageParams};

/// How requests are converted: the runtime's settings (`--tools`, `--max-emulated-tool-calls`;
/// the worker's `TOOLS`, `MAX_EMULATED_TOOL_CALLS`).
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    pub tool_mode: ToolMode,
    pub max_emulated_tool_calls: usize,
}

/// What answering the request needs from it, kept while the client works (the request itself
/// is gone by then: its content moved into the params).
#[derive(Debug, Clone)]
pub struct Answering {
    pub message_id: String,
    /// The model the caller asked for, echoed in the response.
    pub model: String,
    pub input_tokens: u64,
    /// What the answer needs (emulated tool calls to parse, a structured value to extract, stop
    /// sequences to cut at).
    pub plan: AnswerPlan,
}

/// A request ready to go to its client.
#[derive(Debug)]
pub struct Prepared {
    pub params: CreateMessageParams,
    pub answering: Answering,
    pub stream: bool,
}

/// Prepares `request` for a client that supports `support`. `hints` are the model hints from
/// the runtime's catalog (`ModelCatalog::hints_for`), worked out once per request. Linear in
/// the request's size; the native runtime runs it off the runtime thread for large bodies.
pub fn prepare(
    request: MessagesRequest,
    support: ClientSupport,
    hints: Vec<String>,
    conversion: Conversion,
    message_id: String,
) -> Result<Prepared, ApiError> {
    let input_tokens = estimate_request(&request).max(1);
    let model = request.model.clone();
    let stream = request.wants_stream();
    // The request's content moves into the params: a large request is held once.
    let (params, mut plan) =
        into_create_message_params(request, support, conversion.tool_mode, hints)?;
    plan.set_max_tool_calls(conversion.max_emulated_tool_calls);
    Ok(Prepared {
        params,
        answering: Answering {
            message_id,
            model,
            input_tokens,
            plan,
        },
        stream,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::anthropic::parse_messages_request;
    use crate::mcp::sampling::CreateMessageResult;

    fn request(body: serde_json::Value) -> MessagesRequest {
        parse_messages_request(body.to_string().as_bytes(), true).unwrap()
    }

    const PLAIN: ClientSupport = ClientSupport {
        tools: false,
        multi_block_messages: false,
    };

    #[test]
    fn a_request_carries_its_hints_its_stream_flag_and_what_its_answer_needs() {
        let prepared = prepare(
            request(
                json!({"model":"claude-haiku-4-5","max_tokens":9,"stream":true,
                "stop_sequences":["END"],
                "tools":[{"name":"get","input_schema":{"type":"object"}}],
                "messages":[{"role":"user","content":"hello there"}]}),
            ),
            PLAIN,
            vec!["claude-haiku-4-5".into(), "claude-haiku-4.5".into()],
            Conversion {
                tool_mode: ToolMode::Auto,
                max_emulated_tool_calls: 3,
            },
            "msg_1".into(),
        )
        .unwrap();
        assert!(prepared.stream);
        let params = serde_json::to_value(&prepared.params).unwrap();
        assert_eq!(
            params["modelPreferences"]["hints"],
            json!([{"name":"claude-haiku-4-5"},{"name":"claude-haiku-4.5"}])
        );
        assert_eq!(params["maxTokens"], 9);
        let answering = &prepared.answering;
        assert_eq!(
            (answering.message_id.as_str(), answering.model.as_str()),
            ("msg_1", "claude-haiku-4-5")
        );
        assert!(answering.input_tokens > 0);
        // A client without sampling tools: emulated, with the runtime's call cap.
        let tools = answering.plan.emulated_tools.as_ref().unwrap();
        assert_eq!(tools.max_calls, 3);
        assert_eq!(answering.plan.stop_sequences, vec!["END"]);
        // Its answer is parsed by that plan: the call becomes a tool_use, text after the stop
        // goes.
        let result = CreateMessageResult::from_value(json!({
            "role":"assistant","model":"copilot/claude-haiku-4.5",
            "content":{"type":"text","text":"<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>"}}))
        .unwrap();
        let response =
            crate::flow::answer::answer(prepared.answering.clone(), result, || "toolu_1".into())
                .unwrap();
        assert_eq!(response.id, "msg_1");
        // The model that answered, as the client named it.
        assert_eq!(response.model, "copilot/claude-haiku-4.5");
        assert!(matches!(
            response.content.as_slice(),
            [crate::api::anthropic::ResponseBlock::ToolUse { name, .. }] if name == "get"
        ));
    }

    #[test]
    fn a_conversion_failure_is_the_callers_error() {
        let err = prepare(
            request(
                json!({"model":"m","max_tokens":9,"tool_choice":{"type":"tool","name":"web_search"},
                "tools":[{"type":"web_search_20250305","name":"web_search"}],
                "messages":[{"role":"user","content":"x"}]}),
            ),
            PLAIN,
            Vec::new(),
            Conversion {
                tool_mode: ToolMode::Auto,
                max_emulated_tool_calls: 128,
            },
            "msg_2".into(),
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
