//! rmcp as a conformance oracle for the core's hand-written MCP wire types.
//!
//! The core keeps its own sampling types (rmcp's are deprecated, require `model` in every result
//! and pull tokio, which the wasm worker cannot take). These tests hold them to an independent
//! implementation instead: every `sampling/createMessage` request the core encodes must read as
//! rmcp's strict request type (and pass rmcp's SEP-1577 checks), every result and error rmcp
//! produces must be understood by the core, and the `initialize` exchange must read both ways
//! for every handshake-era protocol version.
//!
//! They live in the native crate, which already has rmcp as a dev-dependency: the core's own
//! dev-dependency tree stays free of tokio, and no test-only crate has to be built.

// rmcp marks sampling deprecated (SEP-2577, removal no earlier than 2027); it is what we test.
#![allow(deprecated)]
// Test harness code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rmcp::model::{
    CancelledNotification, ClientCapabilities, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, ClientResult, ContentBlock, CreateMessageRequest,
    CreateMessageResult as RmcpResult, EmptyResult, ErrorCode, ErrorData, Implementation,
    InitializeRequest, InitializeRequestParams, InitializeResult, InitializedNotification,
    JsonRpcError, JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse,
    PingRequest, ProtocolVersion, RequestId, Role, SamplingMessage as RmcpMessage,
    SamplingMessageContentBlock as RmcpBlock, ServerJsonRpcMessage, ServerRequest,
};
use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::openai::{parse_chat_request, to_messages_request};
use sampling2api_core::convert::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::convert::to_sampling::{AnswerPlan, into_create_message_params};
use sampling2api_core::convert::tool_emulation::ToolMode;
use sampling2api_core::mcp::sampling::ClientSupport;
use sampling2api_core::mcp::sampling::{
    CreateMessageParams, CreateMessageResult, ModelHint, ModelPreferences, SamplingContent,
    SamplingMessage, SamplingRole, SamplingTool, SamplingToolChoice, ToolChoiceMode,
};
use sampling2api_core::mcp::session::{
    LATEST_PROTOCOL_VERSION, McpSession, SUPPORTED_PROTOCOL_VERSIONS, ServerInfo,
    encode_sampling_request,
};
use serde_json::{Value, json};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Numbers equal within f32 precision (rmcp reads `temperature` and priorities as f32).
fn same_json(core: &Value, oracle: &Value) -> bool {
    match (core, oracle) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => core == oracle,
    }
}

/// Encodes `params` as the core sends them and checks them against rmcp: the strict request
/// type reads them, the client-side message union sees a `sampling/createMessage` request, rmcp
/// writes back the same JSON (nothing dropped or renamed), and SEP-1577's message rules hold.
fn assert_rmcp_reads(
    params: &CreateMessageParams,
    case: &str,
) -> rmcp::model::CreateMessageRequestParams {
    let json = encode_sampling_request(7, params, params.size_hint()).expect("encodes");
    let strict: JsonRpcRequest<CreateMessageRequest> = serde_json::from_str(&json)
        .unwrap_or_else(|err| panic!("{case}: rmcp cannot read the request: {err}\n{json}"));
    assert_eq!(strict.id, RequestId::Number(7), "{case}");
    match serde_json::from_str::<ServerJsonRpcMessage>(&json) {
        Ok(JsonRpcMessage::Request(request)) => assert!(
            matches!(request.request, ServerRequest::CreateMessageRequest(_)),
            "{case}: rmcp reads another request kind: {:?}",
            request.request
        ),
        other => panic!("{case}: not a request to rmcp: {other:?}"),
    }
    let rmcp_params = strict.request.params;
    let sent: Value = serde_json::from_str::<Value>(&json).unwrap()["params"].clone();
    let written = serde_json::to_value(&rmcp_params).unwrap();
    assert!(
        same_json(&sent, &written),
        "{case}: rmcp reads something else than was sent\nsent:    {sent}\nread as: {written}"
    );
    rmcp_params
        .validate()
        .unwrap_or_else(|err| panic!("{case}: breaks an MCP sampling message rule: {err}\n{sent}"));
    // The bridge never asks for other servers' context (the spec's default is "none").
    assert!(rmcp_params.include_context.is_none(), "{case}");
    rmcp_params
}

/// An Anthropic request body converted as the bridge converts it.
fn convert(
    body: Value,
    support: ClientSupport,
    mode: ToolMode,
) -> (CreateMessageParams, AnswerPlan) {
    let request = parse_messages_request(body.to_string().as_bytes(), true).expect("valid request");
    into_create_message_params(request, support, mode, Vec::new()).expect("converts")
}

const SUPPORTS: [(ClientSupport, &str); 4] = [
    (ClientSupport::FULL, "2025-11-25 with sampling.tools"),
    (
        ClientSupport {
            tools: false,
            multi_block_messages: true,
        },
        "2025-11-25 without tools",
    ),
    (
        ClientSupport {
            tools: true,
            multi_block_messages: false,
        },
        "older version with sampling.tools",
    ),
    (
        ClientSupport {
            tools: false,
            multi_block_messages: false,
        },
        "older version without tools",
    ),
];

fn tool_conversation() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use tools."}],
        "temperature": 0.3,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "tools": [
            {"name": "get_weather", "description": "Weather for a city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "no_description", "input_schema": {"type": "object"}}
        ],
        "messages": [
            {"role": "user", "content": "Weather in Paris and London?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "London"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                    {"type": "text", "text": "station offline"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                ]}
            ]}
        ]
    })
}

#[test]
fn plain_requests_read_as_rmcp_requests() {
    let bodies = [
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        // Everything a plain request can carry.
        json!({
            "model": "claude-opus-4-1", "max_tokens": 1024, "temperature": 0.7,
            "system": "Be brief.", "stop_sequences": ["\n\nHuman:", "STOP"],
            "metadata": {"user_id": "abc"}, "top_p": 0.9, "top_k": 5,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                ]},
                {"role": "assistant", "content": "A pixel."},
                {"role": "system", "content": "Mind the pixel."},
                {"role": "user", "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a document"}, "title": "doc"},
                    {"type": "search_result", "source": "https://example.com", "title": "r",
                     "content": [{"type": "text", "text": "found"}]},
                    {"type": "thinking", "thinking": "hmm", "signature": "s"}
                ]}
            ]
        }),
        // A response schema goes into the system prompt.
        json!({
            "model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "json please"}],
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}
        }),
    ];
    for (index, body) in bodies.into_iter().enumerate() {
        for (support, label) in SUPPORTS {
            let (params, _) = convert(body.clone(), support, ToolMode::Auto);
            let read = assert_rmcp_reads(&params, &format!("body {index}, {label}"));
            assert_eq!(read.max_tokens as u64, params.max_tokens);
            assert_eq!(read.messages.len(), params.messages.len());
        }
    }
}

#[test]
fn native_tool_requests_read_as_rmcp_requests() {
    let choices = [
        None,
        Some(json!({"type": "auto"})),
        Some(json!({"type": "any", "disable_parallel_tool_use": true})),
        Some(json!({"type": "tool", "name": "get_weather"})),
        Some(json!({"type": "none"})),
    ];
    for choice in choices {
        let mut body = tool_conversation();
        if let Some(choice) = &choice {
            body["tool_choice"] = choice.clone();
        }
        for (support, label) in SUPPORTS.into_iter().filter(|(support, _)| support.tools) {
            let case = format!("tool_choice {choice:?}, {label}");
            let (params, plan) = convert(body.clone(), support, ToolMode::Native);
            assert!(plan.emulated_tools.is_none(), "{case}");
            let read = assert_rmcp_reads(&params, &case);
            let tools = read.tools.as_ref().expect("tools are sent natively");
            assert_eq!(tools.len(), 2, "{case}");
            assert_eq!(tools[0].name, "get_weather");
            assert!(read.tool_choice.is_some(), "{case}");
            let blocks: Vec<&RmcpBlock> = read
                .messages
                .iter()
                .flat_map(|m| m.content.iter())
                .collect();
            assert!(blocks.iter().any(|b| b.as_tool_use().is_some()), "{case}");
            let result = blocks
                .iter()
                .find_map(|b| b.as_tool_result().filter(|r| r.tool_use_id == "toolu_2"))
                .expect("the second tool result");
            assert_eq!(result.is_error, Some(true));
            assert!(
                matches!(result.content[1], ContentBlock::Image(_)),
                "{case}"
            );
        }
    }
}

#[test]
fn emulated_tool_requests_read_as_rmcp_requests() {
    for (support, label) in SUPPORTS {
        let (params, plan) = convert(tool_conversation(), support, ToolMode::Emulate);
        assert!(plan.emulated_tools.is_some(), "{label}");
        let read = assert_rmcp_reads(&params, &format!("emulated, {label}"));
        assert!(
            read.tools.is_none() && read.tool_choice.is_none(),
            "{label}"
        );
        // Tool history travels as text: no tool blocks reach a client that emulates.
        assert!(
            read.messages
                .iter()
                .flat_map(|m| m.content.iter())
                .all(|b| b.as_tool_use().is_none() && b.as_tool_result().is_none()),
            "{label}"
        );
        assert!(
            read.system_prompt
                .as_deref()
                .unwrap_or_default()
                .contains("get_weather")
        );
    }
}

/// Anthropic allows text beside `tool_result` blocks in a user turn (agents append reminders
/// there), and the bridge merges a `system` turn into the user turn next to it. MCP does not:
/// a user message holding tool results must hold nothing else (2025-11-25, "Tool Result
/// Messages"), and the tool results must directly follow the assistant's tool uses.
#[test]
fn tool_results_beside_other_content_read_as_rmcp_requests() {
    let mut body = tool_conversation();
    let messages = body["messages"].as_array_mut().unwrap();
    messages[2]["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "text", "text": "<reminder>keep going</reminder>"}));
    messages.push(json!({"role": "system", "content": "a note"}));
    // Text before the results too (the Anthropic API itself refuses this order, a bridge need not).
    let mut text_first = tool_conversation();
    text_first["messages"][2]["content"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"type": "text", "text": "results:"}));
    // A system turn between the tool uses and their results.
    let mut note_between = tool_conversation();
    note_between["messages"]
        .as_array_mut()
        .unwrap()
        .insert(2, json!({"role": "system", "content": "between"}));
    for (index, body) in [body, text_first, note_between].into_iter().enumerate() {
        for (support, label) in SUPPORTS.into_iter().filter(|(support, _)| support.tools) {
            let (params, _) = convert(body.clone(), support, ToolMode::Native);
            let read = assert_rmcp_reads(&params, &format!("mixed {index}, {label}"));
            // Nothing was dropped: every text still reaches the client.
            let sent = serde_json::to_string(&read.messages).unwrap();
            for text in ["keep going", "results:", "a note", "between", "18 C"] {
                let expected = serde_json::to_string(&body).unwrap().contains(text);
                assert_eq!(
                    sent.contains(text),
                    expected,
                    "{text} in mixed {index}, {label}"
                );
            }
        }
    }
}

#[test]
fn openai_requests_read_as_rmcp_requests() {
    let bodies = [
        json!({"model": "gpt-4o", "max_tokens": 20, "temperature": 1.2, "stop": "END",
               "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]}),
        json!({"model": "gpt-4o", "max_completion_tokens": 64, "stop": ["a", "b"],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "and now?"}
        ]}),
    ];
    for (index, body) in bodies.into_iter().enumerate() {
        let chat = parse_chat_request(body.to_string().as_bytes()).expect("valid chat request");
        let request = to_messages_request(chat).expect("converts to messages");
        for (support, label) in SUPPORTS {
            for mode in [ToolMode::Auto, ToolMode::Emulate] {
                let Ok((params, _)) =
                    into_create_message_params(request.clone(), support, mode, Vec::new())
                else {
                    continue;
                };
                assert_rmcp_reads(&params, &format!("openai {index}, {label}, {mode:?}"));
            }
        }
    }
}

/// What no API request produces today but the wire types can carry: audio, tool results with
/// audio, every model preference field the core has, an empty stop list.
#[test]
fn hand_built_params_read_as_rmcp_requests() {
    let params = CreateMessageParams {
        messages: vec![
            SamplingMessage {
                role: SamplingRole::User,
                content: vec![
                    SamplingContent::Audio {
                        data: "UklGRg==".into(),
                        mime_type: "audio/wav".into(),
                    },
                    SamplingContent::Text {
                        text: "transcribe".into(),
                    },
                ],
            },
            SamplingMessage {
                role: SamplingRole::Assistant,
                content: vec![SamplingContent::ToolUse {
                    id: "t1".into(),
                    name: "play".into(),
                    input: json!({}),
                }],
            },
            SamplingMessage {
                role: SamplingRole::User,
                content: vec![SamplingContent::ToolResult {
                    tool_use_id: "t1".into(),
                    content: vec![SamplingContent::Audio {
                        data: "UklGRg==".into(),
                        mime_type: "audio/wav".into(),
                    }],
                    is_error: None,
                }],
            },
        ],
        max_tokens: u64::from(u32::MAX),
        system_prompt: Some(String::new()),
        temperature: Some(0.0),
        stop_sequences: Some(vec![]),
        model_preferences: Some(ModelPreferences {
            hints: vec![
                ModelHint {
                    name: "claude".into(),
                },
                ModelHint { name: "gpt".into() },
            ],
        }),
        metadata: Some(serde_json::Map::new()),
        tools: Some(vec![SamplingTool {
            name: "play".into(),
            description: None,
            input_schema: json!({"type": "object", "properties": {}}),
        }]),
        tool_choice: Some(SamplingToolChoice {
            mode: ToolChoiceMode::None,
        }),
    };
    let read = assert_rmcp_reads(&params, "hand-built");
    assert!(matches!(
        read.messages[0].content.first(),
        Some(RmcpBlock::Audio(_))
    ));
    assert_eq!(read.max_tokens, u32::MAX);
}

// ---------------------------------------------------------------------------------------------
// The other direction: what rmcp clients answer.

fn ready_session(version: &str, capabilities: Value) -> McpSession<u32> {
    let mut session = McpSession::new(ServerInfo::sampling2api());
    let capabilities: ClientCapabilities = serde_json::from_value(capabilities).unwrap();
    let params =
        InitializeRequestParams::new(capabilities, Implementation::new("rmcp-oracle", "3.9"))
            .with_protocol_version(serde_json::from_value(json!(version)).unwrap());
    let initialize = ClientJsonRpcMessage::request(
        ClientRequest::InitializeRequest(InitializeRequest::new(params)),
        RequestId::Number(0),
    );
    let handled = session.handle_incoming(serde_json::to_string(&initialize).unwrap().as_bytes());
    assert!(handled.initialized, "{version}");
    let initialized = ClientJsonRpcMessage::notification(
        ClientNotification::InitializedNotification(InitializedNotification::default()),
    );
    let handled = session.handle_incoming(serde_json::to_string(&initialized).unwrap().as_bytes());
    assert!(handled.replies.is_empty());
    session
}

/// Sends a sampling request and feeds the client's JSON-RPC message answering it.
fn answer_with(
    session: &mut McpSession<u32>,
    answer: impl FnOnce(RequestId) -> ClientJsonRpcMessage,
) -> Result<CreateMessageResult, sampling2api_core::mcp::session::SamplingFailure> {
    let params = CreateMessageParams::user_text("hi", 10);
    let request = session.begin_sampling(&params, 0, 42).expect("can sample");
    let message = answer(RequestId::Number(request.id as i64));
    let mut handled = session.handle_incoming(serde_json::to_string(&message).unwrap().as_bytes());
    assert!(handled.replies.is_empty());
    assert_eq!(handled.answers.len(), 1);
    let (waiter, outcome) = handled.answers.remove(0);
    assert_eq!(waiter, 42);
    outcome
}

fn respond(result: RmcpResult) -> impl FnOnce(RequestId) -> ClientJsonRpcMessage {
    move |id| {
        ClientJsonRpcMessage::response(ClientResult::CreateMessageResult(Box::new(result)), id)
    }
}

fn context(plan: AnswerPlan) -> ResponseContext<'static> {
    ResponseContext {
        message_id: "msg_oracle".into(),
        requested_model: "requested-model",
        estimated_input_tokens: 3,
        plan,
    }
}

fn anthropic(result: CreateMessageResult) -> Result<Value, u16> {
    let mut ids = 0;
    to_messages_response(result, context(AnswerPlan::default()), || {
        ids += 1;
        format!("toolu_fresh{ids}")
    })
    .map(|response| serde_json::to_value(response).unwrap())
    .map_err(|err| err.status())
}

#[test]
fn rmcp_text_results_parse_in_the_core_with_every_stop_reason() {
    let mut session = ready_session("2025-11-25", json!({"sampling": {}}));
    let stops = [
        (Some(RmcpResult::STOP_REASON_END_TURN), "end_turn"),
        (Some(RmcpResult::STOP_REASON_END_SEQUENCE), "stop_sequence"),
        (Some(RmcpResult::STOP_REASON_END_MAX_TOKEN), "max_tokens"),
        // Plain text with `toolUse` is still what the client said.
        (Some(RmcpResult::STOP_REASON_TOOL_USE), "tool_use"),
        (Some("refusal"), "refusal"),
        (Some("provider_specific"), "end_turn"),
        (None, "end_turn"),
    ];
    for (stop, expected) in stops {
        let mut result = RmcpResult::new(RmcpMessage::assistant_text("hello"), "gpt-oracle".into());
        if let Some(stop) = stop {
            result = result.with_stop_reason(stop);
        }
        let parsed = answer_with(&mut session, respond(result)).expect("parses");
        assert_eq!(parsed.stop_reason.as_deref(), stop);
        let response = anthropic(parsed).expect("converts");
        assert_eq!(response["stop_reason"], expected, "{stop:?}");
        assert_eq!(response["model"], "gpt-oracle");
        assert_eq!(
            response["content"],
            json!([{"type": "text", "text": "hello"}])
        );
    }
}

#[test]
fn rmcp_results_with_and_without_a_model_parse_in_the_core() {
    let mut session = ready_session("2025-06-18", json!({"sampling": {}}));
    // rmcp always writes `model`; an empty one means the client did not say.
    let empty = RmcpResult::new(RmcpMessage::assistant_text("x"), String::new());
    let parsed = answer_with(&mut session, respond(empty)).unwrap();
    assert_eq!(anthropic(parsed).unwrap()["model"], "requested-model");
    // Other clients leave it out altogether, which rmcp cannot represent: fed as raw JSON.
    let request = session
        .begin_sampling(&json!({"messages": [], "maxTokens": 1}), 0, 1)
        .unwrap();
    let handled = session.handle_incoming(
        json!({"jsonrpc": "2.0", "id": request.id,
               "result": {"role": "assistant", "content": {"type": "text", "text": "y"}}})
        .to_string()
        .as_bytes(),
    );
    let outcome = handled.answers[0].1.clone().expect("parses without model");
    assert_eq!(outcome.model, None);
}

#[test]
fn rmcp_tool_use_results_parse_in_the_core() {
    let mut session = ready_session("2025-11-25", json!({"sampling": {"tools": {}}}));
    let input = json!({"city": "Paris"}).as_object().unwrap().clone();
    let message = RmcpMessage::new_multiple(
        Role::Assistant,
        vec![
            RmcpBlock::text("Let me check."),
            RmcpBlock::tool_use("call_1", "get_weather", input.clone()),
            RmcpBlock::tool_use("", "get_weather", serde_json::Map::new()),
        ],
    );
    for stop in [
        Some(RmcpResult::STOP_REASON_TOOL_USE),
        Some(RmcpResult::STOP_REASON_END_TURN),
        None,
    ] {
        let mut result = RmcpResult::new(message.clone(), "m".into());
        if let Some(stop) = stop {
            result = result.with_stop_reason(stop);
        }
        let parsed = answer_with(&mut session, respond(result)).unwrap();
        let response = anthropic(parsed).unwrap();
        // A result with tool calls is always `tool_use`: agents loop on that value.
        assert_eq!(response["stop_reason"], "tool_use", "{stop:?}");
        assert_eq!(
            response["content"],
            json!([
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_fresh1", "name": "get_weather", "input": {}}
            ])
        );
    }
    // A single tool_use block (not a list) reads the same.
    let single = RmcpResult::new(RmcpMessage::assistant_tool_use("c", "f", input), "m".into());
    let response = anthropic(answer_with(&mut session, respond(single)).unwrap()).unwrap();
    assert_eq!(response["content"][0]["name"], "f");
}

#[test]
fn rmcp_image_and_audio_results_are_typed_client_failures() {
    let mut session = ready_session("2025-11-25", json!({"sampling": {}}));
    let blocks: [RmcpBlock; 2] = [
        serde_json::from_value(json!({"type": "image", "data": PNG, "mimeType": "image/png"}))
            .unwrap(),
        serde_json::from_value(
            json!({"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"}),
        )
        .unwrap(),
    ];
    for block in blocks {
        let result = RmcpResult::new(RmcpMessage::new(Role::Assistant, block), "m".into());
        // The core reads it (it is valid MCP) ...
        let parsed = answer_with(&mut session, respond(result)).expect("parses");
        // ... and refuses to put it in an Anthropic assistant message, as a 500.
        assert_eq!(anthropic(parsed).unwrap_err(), 500);
    }
}

#[test]
fn rmcp_usage_in_meta_reaches_the_response() {
    let mut session = ready_session("2025-11-25", json!({"sampling": {}}));
    let mut message = RmcpMessage::assistant_text("counted");
    message.meta = Some(
        serde_json::from_value(json!({"usage": {"inputTokens": 11, "outputTokens": 4}})).unwrap(),
    );
    let parsed = answer_with(&mut session, respond(RmcpResult::new(message, "m".into()))).unwrap();
    let response = anthropic(parsed).unwrap();
    assert_eq!(response["usage"]["input_tokens"], 11);
    assert_eq!(response["usage"]["output_tokens"], 4);
}

#[test]
fn rmcp_error_responses_become_typed_failures() {
    let mut session = ready_session("2025-11-25", json!({"sampling": {}}));
    let cases = [
        (
            ErrorData::new(ErrorCode(-1), "User rejected sampling request", None),
            403,
        ),
        (
            ErrorData::new(
                ErrorCode::INTERNAL_ERROR,
                "model crashed",
                Some(json!({"x": 1})),
            ),
            500,
        ),
        (
            ErrorData::new(ErrorCode(-32000), "Connection closed", None),
            503,
        ),
        (
            ErrorData::new(ErrorCode::INVALID_PARAMS, "bad params", None),
            500,
        ),
    ];
    for (error, status) in cases {
        let failure = answer_with(&mut session, |id| {
            ClientJsonRpcMessage::error(error, Some(id))
        })
        .expect_err("a JSON-RPC error");
        assert_eq!(failure.to_api_error(None).status(), status);
    }
}

// ---------------------------------------------------------------------------------------------
// The handshake, read both ways.

#[test]
fn rmcp_initialize_reads_in_the_core_and_the_answer_reads_in_rmcp() {
    let versions = [
        ProtocolVersion::V_2024_11_05,
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        // Modern clients probe first; one that still sends initialize gets our newest version.
        ProtocolVersion::V_2026_07_28,
    ];
    let capabilities = [
        (json!({}), None),
        (json!({"sampling": {}}), Some(false)),
        (
            json!({"sampling": {"tools": {}, "context": {}}, "roots": {"listChanged": true}}),
            Some(true),
        ),
        (json!({"elicitation": {}, "experimental": {"x": {}}}), None),
    ];
    for version in versions {
        for (declared, tools) in &capabilities {
            let case = format!("{version} {declared}");
            let mut session: McpSession<u32> = McpSession::new(ServerInfo::sampling2api());
            let mut client_info = Implementation::new("rmcp-oracle", "3.9.0");
            client_info.title = Some("Oracle".into());
            let params = InitializeRequestParams::new(
                serde_json::from_value(declared.clone()).unwrap(),
                client_info,
            )
            .with_protocol_version(version.clone());
            let request = ClientJsonRpcMessage::request(
                ClientRequest::InitializeRequest(InitializeRequest::new(params)),
                RequestId::String("init-1".into()),
            );
            let handled =
                session.handle_incoming(serde_json::to_string(&request).unwrap().as_bytes());
            assert!(handled.initialized, "{case}");
            let reply = handled.reply_body().unwrap();
            let answer: JsonRpcResponse<InitializeResult> = serde_json::from_str(&reply)
                .unwrap_or_else(|err| panic!("{case}: rmcp cannot read {reply}: {err}"));
            assert_eq!(answer.id, RequestId::String("init-1".into()));
            let expected = if SUPPORTED_PROTOCOL_VERSIONS.contains(&version.to_string().as_str()) {
                version.to_string()
            } else {
                LATEST_PROTOCOL_VERSION.to_string()
            };
            assert_eq!(
                answer.result.protocol_version.to_string(),
                expected,
                "{case}"
            );
            assert_eq!(answer.result.server_info.name, "sampling2api");
            assert!(answer.result.instructions.is_some());
            let facts = session.client().unwrap();
            assert_eq!(facts.client_name.as_deref(), Some("rmcp-oracle"));
            assert_eq!(facts.client_version.as_deref(), Some("3.9.0"));
            assert_eq!(facts.sampling.map(|s| s.tools), *tools, "{case}");
            assert_eq!(
                facts.sampling.map(|s| s.multi_block_messages),
                tools.map(|_| expected.as_str() >= "2025-11-25"),
                "{case}"
            );
            assert!(!session.can_sample());
            let initialized = ClientJsonRpcMessage::notification(
                ClientNotification::InitializedNotification(InitializedNotification::default()),
            );
            session.handle_incoming(serde_json::to_string(&initialized).unwrap().as_bytes());
            assert_eq!(session.can_sample(), tools.is_some(), "{case}");
        }
    }
}

#[test]
fn the_core_answers_rmcp_pings_probes_and_cancels_in_rmcp_types() {
    let mut session: McpSession<u32> = McpSession::new(ServerInfo::sampling2api());
    // rmcp's dual-era probe before initialize: a JSON-RPC error it can read.
    let probe: ClientJsonRpcMessage = serde_json::from_value(json!({
        "jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
    }))
    .unwrap();
    let handled = session.handle_incoming(serde_json::to_string(&probe).unwrap().as_bytes());
    let error: JsonRpcError = serde_json::from_str(&handled.reply_body().unwrap()).unwrap();
    assert_eq!(error.id, Some(RequestId::Number(1)));
    assert_eq!(error.error.code, ErrorCode::METHOD_NOT_FOUND);

    let ping = ClientJsonRpcMessage::request(
        ClientRequest::PingRequest(PingRequest::default()),
        RequestId::Number(2),
    );
    let handled = session.handle_incoming(serde_json::to_string(&ping).unwrap().as_bytes());
    let pong: JsonRpcResponse<EmptyResult> =
        serde_json::from_str(&handled.reply_body().unwrap()).unwrap();
    assert_eq!(pong.id, RequestId::Number(2));

    let mut session = ready_session("2025-11-25", json!({"sampling": {}}));
    let request = session
        .begin_sampling(&json!({"messages": [], "maxTokens": 1}), 0, 9)
        .unwrap();
    let (_, cancel) = session.cancel(request.id, "caller went away").unwrap();
    let cancel: JsonRpcNotification<CancelledNotification> = serde_json::from_str(&cancel).unwrap();
    assert_eq!(
        cancel.notification.params.request_id,
        Some(RequestId::Number(request.id as i64))
    );
    assert_eq!(
        cancel.notification.params.reason.as_deref(),
        Some("caller went away")
    );
    // And rmcp's own cancellation of a request the client got from us needs no answer.
    let theirs = ClientJsonRpcMessage::notification(ClientNotification::CancelledNotification(
        CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
            Some(RequestId::Number(5)),
            None,
        )),
    ));
    let handled = session.handle_incoming(serde_json::to_string(&theirs).unwrap().as_bytes());
    assert!(handled.replies.is_empty() && handled.answers.is_empty());
}
