//! Any bytes as what an MCP client sends back while request 1 is pending: the session state
//! machine, then the result → Anthropic response (plain, and with emulated tool calls and a
//! structured value parsed from its text, cut at stop sequences), SSE and OpenAI paths, must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::convert::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::mcp::session::{ClientFacts, McpSession, ServerInfo};
use sampling2api_core::convert::to_sampling::AnswerPlan;
use sampling2api_core::mcp::sampling::ClientSupport;
use sampling2api_core::convert::tool_emulation::EmulatedTools;
use sampling2api_core::{api::openai, api::sse};

fuzz_target!(|data: &[u8]| {
    let facts = ClientFacts {
        protocol_version: "2025-11-25".into(),
        sampling: Some(ClientSupport { tools: true, multi_block_messages: true }),
        client_name: None,
        client_version: None,
    };
    let mut session: McpSession<()> = McpSession::resume(ServerInfo::sampling2api(), facts.clone(), true, 1, false);
    let _ = session.begin_sampling(&serde_json::json!({"messages": [], "maxTokens": 1}), 0, ());
    let handled = session.handle_incoming(data);
    let _ = handled.reply_body();
    for ((), outcome) in handled.answers {
        match outcome {
            Ok(result) => {
                let plans = [
                    AnswerPlan::default(),
                    AnswerPlan {
                        emulated_tools: Some(EmulatedTools::new(["f"])),
                        structured_output: true,
                        stop_sequences: vec!["}".into(), "\n\n".into()],
                    },
                ];
                for plan in plans {
                    let context = ResponseContext {
                        message_id: "msg_fuzz".into(),
                        requested_model: "m",
                        estimated_input_tokens: 1,
                        plan,
                    };
                    if let Ok(response) = to_messages_response(result.clone(), context, || "toolu_fuzz".into()) {
                        let _ = sse::response_frames(&response);
                        let _ = openai::to_chat_completion(&response, 0);
                        let _ = openai::stream_rest(&response, 0, "m", true);
                    }
                }
            }
            Err(failure) => {
                let _ = failure.to_api_error(Some(&facts)).to_body("req");
            }
        }
    }
});
