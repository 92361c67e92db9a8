//! Any bytes as a `/v1/messages` or `/v1/chat/completions` body: parsing, conversion to MCP
//! sampling for every kind of client and tool mode (native and emulated tools), model hints, token
//! estimation and serialisation must return, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::model_hints::model_hints;
use sampling2api_core::api::openai::{parse_chat_request, to_messages_request};
use sampling2api_core::convert::to_sampling::to_create_message_params;
use sampling2api_core::mcp::sampling::ClientSupport;
use sampling2api_core::convert::tokens::estimate_request;
use sampling2api_core::convert::tool_emulation::ToolMode;

fuzz_target!(|data: &[u8]| {
    let supports = [
        ClientSupport { tools: true, multi_block_messages: true },
        ClientSupport { tools: false, multi_block_messages: false },
    ];
    for require_max_tokens in [true, false] {
        if let Ok(request) = parse_messages_request(data, require_max_tokens) {
            let _ = estimate_request(&request);
            let hints = model_hints(&request.model);
            for support in supports {
                for mode in [ToolMode::Auto, ToolMode::Native, ToolMode::Emulate] {
                    if let Ok((params, _plan)) = to_create_message_params(&request, support, mode, hints.clone()) {
                        let _ = serde_json::to_string(&params);
                    }
                }
            }
        }
    }
    if let Ok(chat) = parse_chat_request(data)
        && let Ok(request) = to_messages_request(chat)
    {
        let hints = model_hints(&request.model);
        let _ = to_create_message_params(&request, supports[1], ToolMode::Auto, hints);
    }
});
