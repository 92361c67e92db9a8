//! OpenAI Chat Completions (`POST /v1/chat/completions`), translated to and from the Anthropic
//! types, so that one mapping (Anthropic → MCP sampling) serves both APIs.
//!
//! Request: `system`/`developer` messages → the system prompt; `image_url` parts (data URLs or
//! http(s) URLs) → image blocks; assistant `tool_calls` → `tool_use`; `tool` messages →
//! `tool_result`; `max_completion_tokens`/`max_tokens` → `max_tokens` (default
//! [`DEFAULT_MAX_TOKENS`]); `stop`, `temperature`, `tools`, `tool_choice`,
//! `parallel_tool_calls`, `user` map to their Anthropic twins; `response_format` (`json_schema`,
//! `json_object`) → `output_format` (a `json_object` is the schema `{"type":"object"}`).
//! `n` > 1 is refused.
//! Response: text → `message.content`, `tool_use` → `tool_calls`, stop reasons → `finish_reason`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::anthropic::{
    ContentBlock, ImageSource, InputMessage, MessageContent, MessagesRequest, MessagesResponse,
    OutputFormat, ResponseBlock, Role, StopReason, StringOrList, SystemPrompt, ToolChoice,
    ToolDefinition, ToolResultContent,
};
use crate::api::request_bounds;
use crate::api_error::{ApiError, ErrorKind};

/// `max_tokens` when a Chat Completions request sets none (OpenAI does not require one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(deserialize_with = "request_bounds::messages")]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(default)]
    pub tool_choice: Option<ChatToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
}

/// `response_format`: plain text, any JSON object, or JSON matching a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text {},
    JsonObject {},
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub schema: Option<Value>,
}

impl ResponseFormat {
    fn output_format(self) -> Option<OutputFormat> {
        match self {
            ResponseFormat::Text {} => None,
            ResponseFormat::JsonObject {} => Some(OutputFormat::JsonSchema {
                schema: json!({"type": "object"}),
            }),
            ResponseFormat::JsonSchema { json_schema } => Some(OutputFormat::JsonSchema {
                schema: json_schema.schema.unwrap_or_else(|| json!({})),
            }),
        }
    }
}

impl ChatRequest {
    pub fn wants_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|options| options.include_usage.unwrap_or(false))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    #[serde(default)]
    pub content: Option<ChatContent>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ChatPart>),
}

impl<'de> Deserialize<'de> for ChatContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Not `untagged`: that buffers the whole list before reading it, and the parts count
        // against the request's block bound as they are read.
        match StringOrList::<ChatPart>::deserialize(deserializer)? {
            StringOrList::Text(text) => Ok(ChatContent::Text(text)),
            StringOrList::List(parts) => Ok(ChatContent::Parts(parts)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    /// Assistant history may hold refusals; they are text to the model.
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChatToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// Parses a Chat Completions body; errors name the path like the Anthropic parser does.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let request: ChatRequest = crate::api::anthropic::parse_json_object(body)?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid_request(
            "messages: at least one message is required",
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_request(
            "n: only one choice per request is supported (MCP sampling returns one message)",
        ));
    }
    Ok(request)
}

/// The Anthropic request this Chat Completions request means.
pub fn to_messages_request(chat: ChatRequest) -> Result<MessagesRequest, ApiError> {
    let mut system_parts: Vec<String> = Vec::new();
    let mut messages: Vec<InputMessage> = Vec::new();
    let mut seen_user_or_assistant = false;
    for (index, message) in chat.messages.into_iter().enumerate() {
        let path = format!("messages.{index}");
        match message.role {
            ChatRole::System | ChatRole::Developer => {
                let text = content_text(message.content.as_ref());
                if seen_user_or_assistant {
                    // A mid-conversation instruction stays at its place.
                    messages.push(InputMessage {
                        role: Role::System,
                        content: MessageContent::Text(text),
                    });
                } else {
                    system_parts.push(text);
                }
            }
            ChatRole::User => {
                seen_user_or_assistant = true;
                let blocks = user_blocks(message.content, &path)?;
                push_blocks(&mut messages, Role::User, blocks);
            }
            ChatRole::Assistant => {
                seen_user_or_assistant = true;
                let mut blocks = Vec::new();
                let text = content_text(message.content.as_ref());
                if !text.is_empty() {
                    blocks.push(ContentBlock::Text { text });
                }
                for (call_index, call) in message.tool_calls.into_iter().flatten().enumerate() {
                    let input: Value = if call.function.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&call.function.arguments).map_err(|err| {
                            ApiError::invalid_request(format!(
                                "{path}.tool_calls.{call_index}.function.arguments: not valid JSON ({err})"
                            ))
                        })?
                    };
                    blocks.push(ContentBlock::ToolUse {
                        id: call.id,
                        name: call.function.name,
                        input,
                    });
                }
                push_blocks(&mut messages, Role::Assistant, blocks);
            }
            ChatRole::Tool => {
                seen_user_or_assistant = true;
                let tool_use_id = message.tool_call_id.ok_or_else(|| {
                    ApiError::invalid_request(format!("{path}.tool_call_id: Field required"))
                })?;
                let result = ContentBlock::ToolResult {
                    tool_use_id,
                    content: Some(ToolResultContent::Blocks(user_blocks(
                        message.content,
                        &path,
                    )?)),
                    is_error: None,
                };
                push_blocks(&mut messages, Role::User, vec![result]);
            }
        }
    }
    let tools = chat.tools.map(|tools| {
        tools
            .into_iter()
            .filter(|tool| tool.kind == "function")
            .map(|tool| ToolDefinition {
                kind: None,
                name: tool.function.name,
                description: tool.function.description,
                input_schema: Some(
                    tool.function
                        .parameters
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
            })
            .collect::<Vec<_>>()
    });
    let disable_parallel = chat.parallel_tool_calls.map(|parallel| !parallel);
    let tool_choice = match chat.tool_choice {
        None => disable_parallel.map(|_| ToolChoice::Auto {
            disable_parallel_tool_use: disable_parallel,
        }),
        Some(ChatToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => ToolChoice::None {},
            other => {
                return Err(ApiError::invalid_request(format!(
                    "tool_choice: unknown mode `{other}` (expected auto, required or none)"
                )));
            }
        }),
        Some(ChatToolChoice::Named { function }) => Some(ToolChoice::Tool {
            name: function.name,
            disable_parallel_tool_use: disable_parallel,
        }),
    };
    let mut metadata = Map::new();
    if let Some(user) = chat.user {
        metadata.insert("user_id".into(), Value::String(user));
    }
    let request = MessagesRequest {
        model: chat.model,
        max_tokens: Some(
            chat.max_completion_tokens
                .or(chat.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
        ),
        messages,
        system: (!system_parts.is_empty()).then(|| SystemPrompt::Text(system_parts.join("\n\n"))),
        stop_sequences: chat.stop.map(|stop| match stop {
            Stop::One(one) => vec![one],
            Stop::Many(many) => many,
        }),
        stream: chat.stream,
        temperature: chat.temperature,
        top_p: None,
        top_k: None,
        tools,
        tool_choice,
        metadata: (!metadata.is_empty()).then_some(metadata),
        thinking: None,
        output_config: None,
        output_format: chat.response_format.and_then(ResponseFormat::output_format),
    };
    crate::api::anthropic::validate(&request, true)?;
    Ok(request)
}

fn push_blocks(messages: &mut Vec<InputMessage>, role: Role, blocks: Vec<ContentBlock>) {
    if blocks.is_empty() {
        return;
    }
    // Consecutive tool results (one `tool` message per call) form one user turn.
    if let Some(last) = messages.last_mut()
        && last.role == role
        && let MessageContent::Blocks(existing) = &mut last.content
    {
        existing.extend(blocks);
        return;
    }
    messages.push(InputMessage {
        role,
        content: MessageContent::Blocks(blocks),
    });
}

fn content_text(content: Option<&ChatContent>) -> String {
    match content {
        None => String::new(),
        Some(ChatContent::Text(text)) => text.clone(),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .filter_map(|part| match part {
                ChatPart::Text { text } => Some(text.as_str()),
                ChatPart::Refusal { refusal } => Some(refusal.as_str()),
                ChatPart::ImageUrl { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn user_blocks(content: Option<ChatContent>, path: &str) -> Result<Vec<ContentBlock>, ApiError> {
    Ok(match content {
        None => Vec::new(),
        Some(ChatContent::Text(text)) => vec![ContentBlock::Text { text }],
        Some(ChatContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (index, part) in parts.into_iter().enumerate() {
                blocks.push(match part {
                    ChatPart::Text { text } => ContentBlock::Text { text },
                    ChatPart::Refusal { refusal } => ContentBlock::Text { text: refusal },
                    ChatPart::ImageUrl { image_url } => ContentBlock::Image {
                        source: image_source(&image_url.url, &format!("{path}.content.{index}"))?,
                    },
                });
            }
            blocks
        }
    })
}

/// `data:image/png;base64,...` becomes a base64 source; http(s) URLs are fetched like
/// Anthropic `url` images.
fn image_source(url: &str, path: &str) -> Result<ImageSource, ApiError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest.split_once(',').ok_or_else(|| {
            ApiError::invalid_request(format!("{path}.image_url.url: malformed data URL"))
        })?;
        let media_type = header.strip_suffix(";base64").ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{path}.image_url.url: only base64 data URLs are supported"
            ))
        })?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    Ok(ImageSource::Url {
        url: url.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Responses

pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::Refusal => "content_filter",
        StopReason::EndTurn | StopReason::StopSequence | StopReason::PauseTurn => "stop",
    }
}

/// `chatcmpl-…` from a `msg_…` id, so one request keeps one identity in logs.
pub fn completion_id(message_id: &str) -> String {
    format!(
        "chatcmpl-{}",
        message_id.strip_prefix("msg_").unwrap_or(message_id)
    )
}

fn tool_calls(response: &MessagesResponse) -> Vec<ToolCall> {
    response
        .content
        .iter()
        .filter_map(|block| match block {
            ResponseBlock::ToolUse { id, name, input } => Some(ToolCall {
                id: id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
            }),
            ResponseBlock::Text { .. } => None,
        })
        .collect()
}

fn text_of(response: &MessagesResponse) -> String {
    response
        .content
        .iter()
        .filter_map(|block| match block {
            ResponseBlock::Text { text } => Some(text.as_str()),
            ResponseBlock::ToolUse { .. } => None,
        })
        .collect()
}

fn usage_json(response: &MessagesResponse) -> Value {
    let usage = response.usage;
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

/// The `chat.completion` object. `created` is Unix seconds, from the runtime's clock.
pub fn to_chat_completion(response: &MessagesResponse, created: u64) -> Value {
    let calls = tool_calls(response);
    let text = text_of(response);
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({
        "id": completion_id(&response.id),
        "object": "chat.completion",
        "created": created,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(response.stop_reason), "logprobs": null}],
        "usage": usage_json(response),
    })
}

fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
    });
    format!("data: {chunk}\n\n")
}

/// The first chunk, sent as soon as the request is accepted.
pub fn stream_start(message_id: &str, created: u64, model: &str) -> String {
    chunk(
        &completion_id(message_id),
        created,
        model,
        json!({"role": "assistant", "content": ""}),
        None,
    )
}

/// A comment line: OpenAI SDKs skip it, proxies see traffic.
pub const STREAM_KEEPALIVE: &str = ": keepalive\n\n";

/// Everything after the first chunk: content, tool calls, the finishing chunk, optional usage,
/// and `data: [DONE]`.
pub fn stream_rest(
    response: &MessagesResponse,
    created: u64,
    model: &str,
    include_usage: bool,
) -> String {
    let id = completion_id(&response.id);
    let mut out = String::new();
    let text = text_of(response);
    let pieces: Vec<&str> = crate::api::sse::split_text(&text, 48);
    for piece in pieces {
        out += &chunk(&id, created, model, json!({"content": piece}), None);
    }
    for (index, call) in tool_calls(response).into_iter().enumerate() {
        out += &chunk(
            &id,
            created,
            model,
            json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                   "function": {"name": call.function.name, "arguments": ""}}]}),
            None,
        );
        for piece in crate::api::sse::split_bytes_at_char_boundaries(&call.function.arguments, 64) {
            out += &chunk(
                &id,
                created,
                model,
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                None,
            );
        }
    }
    out += &chunk(
        &id,
        created,
        model,
        json!({}),
        Some(finish_reason(response.stop_reason)),
    );
    if include_usage {
        let usage_chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage_json(response),
        });
        out += &format!("data: {usage_chunk}\n\n");
    }
    out += "data: [DONE]\n\n";
    out
}

/// OpenAI's error object for `err`.
pub fn error_body(err: &ApiError) -> String {
    json!({"error": {"message": err.message, "type": openai_error_type(err.kind), "param": null, "code": null}})
        .to_string()
}

/// A failure after the stream started: an error object as a data line, then `[DONE]`.
pub fn stream_error(err: &ApiError) -> String {
    format!("data: {}\n\ndata: [DONE]\n\n", error_body(err))
}

fn openai_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest
        | ErrorKind::MethodNotAllowed
        | ErrorKind::RequestTooLarge
        | ErrorKind::HeadersTooLarge => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Timeout | ErrorKind::RequestTimeout => "timeout_error",
        ErrorKind::Api | ErrorKind::Unavailable | ErrorKind::Overloaded => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::Usage;

    fn convert(body: Value) -> Result<MessagesRequest, ApiError> {
        to_messages_request(parse_chat_request(body.to_string().as_bytes())?)
    }

    #[test]
    fn model_ids_are_bounded_as_on_the_messages_route() {
        let body =
            |model: String| json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
        assert!(convert(body("m".repeat(256))).is_ok());
        let err = convert(body("m".repeat(257))).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.starts_with("model: "), "{}", err.message);
    }

    #[test]
    fn response_formats_become_output_schemas() {
        let with = |format: Value| {
            convert(
                json!({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":format}),
            )
        };
        let schema = json!({"type":"object","properties":{"a":{"type":"integer"}}});
        let request = with(json!({"type":"json_schema","json_schema":{"name":"out","strict":true,"schema":schema}})).unwrap();
        assert_eq!(request.output_schema(), Some(&schema));
        let request = with(json!({"type":"json_object"})).unwrap();
        assert_eq!(request.output_schema(), Some(&json!({"type":"object"})));
        assert_eq!(with(json!({"type":"text"})).unwrap().output_schema(), None);
        let err = with(json!({"type":"yaml"})).unwrap_err();
        assert!(
            err.message.starts_with("response_format"),
            "{}",
            err.message
        );
    }

    #[test]
    fn messages_roles_and_parts_map() {
        let request = convert(json!({
            "model": "gpt-x", "max_completion_tokens": 50, "temperature": 0.3, "stop": "END", "user": "u1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "result"},
                {"role": "system", "content": "late note"}
            ]
        }))
        .unwrap();
        assert_eq!(request.max_tokens, Some(50));
        assert_eq!(request.stop_sequences, Some(vec!["END".to_string()]));
        assert_eq!(
            request.system.as_ref().map(SystemPrompt::texts),
            Some(vec!["be brief\n\nand kind"])
        );
        assert_eq!(request.metadata.as_ref().unwrap()["user_id"], "u1");
        assert_eq!(request.messages.len(), 4);
        let MessageContent::Blocks(user) = &request.messages[0].content else {
            panic!()
        };
        assert!(
            matches!(&user[1], ContentBlock::Image { source: ImageSource::Base64 { media_type, .. } } if media_type == "image/png")
        );
        let MessageContent::Blocks(assistant) = &request.messages[1].content else {
            panic!()
        };
        assert!(
            matches!(&assistant[0], ContentBlock::ToolUse { id, input, .. } if id == "call_1" && input["a"] == 1)
        );
        let MessageContent::Blocks(tool) = &request.messages[2].content else {
            panic!()
        };
        assert!(
            matches!(&tool[0], ContentBlock::ToolResult { tool_use_id, .. } if tool_use_id == "call_1")
        );
        assert_eq!(request.messages[3].role, Role::System);
    }

    #[test]
    fn tools_and_choices_map() {
        let base = |choice: Value| {
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                   "tool_choice": choice, "parallel_tool_calls": false})
        };
        let request = convert(base(json!("required"))).unwrap();
        assert_eq!(
            request.tool_choice,
            Some(ToolChoice::Any {
                disable_parallel_tool_use: Some(true)
            })
        );
        assert_eq!(request.tools.as_ref().unwrap()[0].name, "f");
        let named = convert(base(json!({"type": "function", "function": {"name": "f"}}))).unwrap();
        assert!(
            matches!(named.tool_choice, Some(ToolChoice::Tool { ref name, .. }) if name == "f")
        );
        assert_eq!(
            convert(base(json!("none"))).unwrap().tool_choice,
            Some(ToolChoice::None {})
        );
        assert!(
            convert(base(json!("sometimes")))
                .unwrap_err()
                .message
                .contains("unknown mode")
        );
        assert_eq!(
            convert(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
                .unwrap()
                .max_tokens,
            Some(DEFAULT_MAX_TOKENS)
        );
    }

    #[test]
    fn bad_requests_are_400_with_paths() {
        let err = convert(json!({"model": "m", "messages": []})).unwrap_err();
        assert!(err.message.contains("at least one"));
        let err =
            convert(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}))
                .unwrap_err();
        assert!(err.message.starts_with("n:"));
        let err = convert(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("messages.0.tool_calls.0.function.arguments"),
            "{}",
            err.message
        );
        let err = convert(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}))
            .unwrap_err();
        assert_eq!(err.message, "messages.0.tool_call_id: Field required");
        let err = convert(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
        )
        .unwrap_err();
        assert!(err.message.contains("base64 data URLs"));
        let err =
            parse_chat_request(br#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap_err();
        assert_eq!(err.message, "model: Field required");
    }

    fn response(content: Vec<ResponseBlock>, stop: StopReason) -> MessagesResponse {
        MessagesResponse {
            id: "msg_01abc".into(),
            kind: "message".into(),
            role: "assistant".into(),
            content,
            model: "m".into(),
            stop_reason: stop,
            stop_sequence: None,
            usage: Usage::new(7, 3),
        }
    }

    #[test]
    fn completion_objects() {
        let text = to_chat_completion(
            &response(
                vec![ResponseBlock::Text { text: "hi".into() }],
                StopReason::EndTurn,
            ),
            5,
        );
        assert_eq!(text["id"], "chatcmpl-01abc");
        assert_eq!(text["object"], "chat.completion");
        assert_eq!(
            text["choices"][0]["message"],
            json!({"role": "assistant", "content": "hi"})
        );
        assert_eq!(text["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            text["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
        );
        let tools = to_chat_completion(
            &response(
                vec![ResponseBlock::ToolUse {
                    id: "t".into(),
                    name: "f".into(),
                    input: json!({"a": 1}),
                }],
                StopReason::ToolUse,
            ),
            5,
        );
        assert!(tools["choices"][0]["message"]["content"].is_null());
        assert_eq!(
            tools["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(tools["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish_reason(StopReason::MaxTokens), "length");
    }

    #[test]
    fn streams_reassemble_and_end_with_done() {
        let long = "word ".repeat(40);
        let answer = response(
            vec![
                ResponseBlock::Text { text: long.clone() },
                ResponseBlock::ToolUse {
                    id: "t".into(),
                    name: "f".into(),
                    input: json!({"path": "x".repeat(100)}),
                },
            ],
            StopReason::ToolUse,
        );
        let stream = stream_start("msg_01abc", 5, "m") + &stream_rest(&answer, 5, "m", true);
        let datas: Vec<&str> = stream
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| f.strip_prefix("data: ").unwrap())
            .collect();
        assert_eq!(*datas.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = datas[..datas.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, long);
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap()["path"],
            "x".repeat(100)
        );
        let finish = chunks
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str())
            .unwrap();
        assert_eq!(finish, "tool_calls");
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 10);
    }

    #[test]
    fn errors_have_openai_shape() {
        let body: Value =
            serde_json::from_str(&error_body(&ApiError::unavailable("no client"))).unwrap();
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(body["error"]["message"], "no client");
        assert!(stream_error(&ApiError::timeout("late")).ends_with("data: [DONE]\n\n"));
    }
}
