//! Anthropic Messages API types: what clients send to `/v1/messages` and what they get back.
//!
//! Parsing is a gateway's: every field real clients send is accepted (unknown top-level fields
//! and `cache_control` anywhere are ignored), and only structurally broken input is refused,
//! with the offending path in the message (`messages.0.content.1.source: ...`).

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::api::request_bounds;
use crate::api_error::ApiError;

/// The body of `POST /v1/messages` (and, with `max_tokens` absent, of `count_tokens`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    /// Required by `/v1/messages`, absent in `count_tokens`; checked by [`parse_messages_request`].
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(deserialize_with = "request_bounds::messages")]
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub system: Option<SystemPrompt>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u64>,
    #[serde(default)]
    pub tools: Option<Vec<ToolDefinition>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Accepted and checked for shape; MCP sampling has no thinking control.
    #[serde(default)]
    pub thinking: Option<ThinkingConfig>,
    /// `format` asks for structured output; `effort` and the rest are hints MCP cannot carry.
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    /// The older spelling of `output_config.format`.
    #[serde(default)]
    pub output_format: Option<OutputFormat>,
}

impl MessagesRequest {
    pub fn wants_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The JSON Schema the answer must match, from `output_config.format` or `output_format`.
    pub fn output_schema(&self) -> Option<&Value> {
        self.output_config
            .as_ref()
            .and_then(|config| config.format.as_ref())
            .or(self.output_format.as_ref())
            .map(|OutputFormat::JsonSchema { schema }| schema)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OutputConfig {
    #[serde(default)]
    pub format: Option<OutputFormat>,
}

/// Structured output: the answer's text is one JSON value matching `schema`. Other types are
/// refused (400) rather than dropped, so a caller never gets prose it cannot parse unawares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    JsonSchema { schema: Value },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingConfig {
    Enabled {
        #[serde(default)]
        budget_tokens: Option<u64>,
    },
    Disabled {},
    Adaptive {},
}

/// `system`: a string, or text blocks whose order is kept.
#[derive(Debug, Clone)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemBlock {
    Text { text: String },
}

impl SystemPrompt {
    /// The texts in order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            SystemPrompt::Text(text) => vec![text.as_str()],
            SystemPrompt::Blocks(blocks) => blocks
                .iter()
                .map(|SystemBlock::Text { text }| text.as_str())
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for SystemPrompt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match StringOrList::<SystemBlock>::deserialize(deserializer)? {
            StringOrList::Text(text) => Ok(SystemPrompt::Text(text)),
            StringOrList::List(blocks) => Ok(SystemPrompt::Blocks(blocks)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// A mid-conversation system note (Claude Code sends these).
    System,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputMessage {
    pub role: Role,
    pub content: MessageContent,
}

/// Message content: a string, or a list of blocks.
#[derive(Debug, Clone)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match StringOrList::<ContentBlock>::deserialize(deserializer)? {
            StringOrList::Text(text) => Ok(MessageContent::Text(text)),
            StringOrList::List(blocks) => Ok(MessageContent::Blocks(blocks)),
        }
    }
}

/// Every input block type the API documents. Server-tool blocks are accepted and carried as
/// raw JSON because MCP has nothing to replay them into.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    Document(DocumentBlock),
    ToolUse {
        id: String,
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
    },
    RedactedThinking {},
    SearchResult(SearchResultBlock),
    #[serde(
        rename = "server_tool_use",
        alias = "web_search_tool_result",
        alias = "web_fetch_tool_result",
        alias = "code_execution_tool_result",
        alias = "bash_code_execution_tool_result",
        alias = "text_editor_code_execution_tool_result",
        alias = "tool_search_tool_result",
        alias = "mcp_tool_use",
        alias = "mcp_tool_result",
        alias = "container_upload"
    )]
    ServerTool(Map<String, Value>),
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
    File { file_id: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct DocumentBlock {
    pub source: DocumentSource,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocumentSource {
    Base64 { media_type: String, data: String },
    Text { data: String },
    Url { url: String },
    Content { content: DocumentContent },
    File { file_id: String },
}

#[derive(Debug, Clone)]
pub enum DocumentContent {
    Text(String),
    Blocks(Vec<Value>),
}

impl<'de> Deserialize<'de> for DocumentContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match StringOrList::<Value>::deserialize(deserializer)? {
            StringOrList::Text(text) => Ok(DocumentContent::Text(text)),
            StringOrList::List(blocks) => Ok(DocumentContent::Blocks(blocks)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchResultBlock {
    pub source: String,
    pub title: String,
    pub content: Vec<SearchResultText>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchResultText {
    pub text: String,
}

/// `tool_result.content`: a string, or blocks (text, image, document, search result).
#[derive(Debug, Clone)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl<'de> Deserialize<'de> for ToolResultContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match StringOrList::<ContentBlock>::deserialize(deserializer)? {
            StringOrList::Text(text) => Ok(ToolResultContent::Text(text)),
            StringOrList::List(blocks) => Ok(ToolResultContent::Blocks(blocks)),
        }
    }
}

/// A tool the caller offers. Only custom tools (with `input_schema`) reach MCP; Anthropic
/// server tools (`web_search_…`, `bash_…`) are dropped because the MCP client cannot run them.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolDefinition {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

impl ToolDefinition {
    pub fn is_custom(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None {},
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
}

impl ToolChoice {
    pub fn disables_parallel_tool_use(&self) -> bool {
        match self {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            }
            | ToolChoice::Any {
                disable_parallel_tool_use,
            }
            | ToolChoice::Tool {
                disable_parallel_tool_use,
                ..
            } => disable_parallel_tool_use.unwrap_or(false),
            ToolChoice::None {} => false,
        }
    }
}

/// A string or a list, decided by the JSON type, so errors inside a list keep their path.
pub(crate) enum StringOrList<T> {
    Text(String),
    List(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StringOrList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = StringOrList<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrList::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StringOrList::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element::<T>()? {
                    request_bounds::take_block().map_err(serde::de::Error::custom)?;
                    list.push(item);
                }
                Ok(StringOrList::List(list))
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Parses and checks a `/v1/messages` body. `require_max_tokens` is false for `count_tokens`.
pub fn parse_messages_request(
    body: &[u8],
    require_max_tokens: bool,
) -> Result<MessagesRequest, ApiError> {
    let request: MessagesRequest = parse_json_object(body)?;
    validate(&request, require_max_tokens)?;
    Ok(request)
}

/// Parses a request body that must be one JSON object, with path-bearing errors.
pub(crate) fn parse_json_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    // serde would read a JSON array positionally into a struct; the APIs take objects only.
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::invalid_request(
                "invalid request body: expected a JSON object",
            ));
        }
        None => return Err(ApiError::invalid_request("request body is empty")),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // Deeply nested hostile input fails as a 400 (serde_json's recursion limit), not a crash;
    // a flood of tiny blocks fails at the block bound, before it takes memory.
    let value: T =
        request_bounds::counting_blocks(|| serde_path_to_error::deserialize(&mut deserializer))
            .map_err(|err| describe_parse_error(&err))?;
    deserializer
        .end()
        .map_err(|err| ApiError::invalid_request(format!("invalid JSON body: {err}")))?;
    Ok(value)
}

pub(crate) fn describe_parse_error(
    err: &serde_path_to_error::Error<serde_json::Error>,
) -> ApiError {
    let inner = err.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::invalid_request(format!("invalid JSON body: {inner}"));
    }
    let path = anthropic_path(&err.path().to_string());
    let message = inner.to_string();
    // serde_json appends " at line L column C", meaningless to a caller who sent one line.
    let message = match message.rfind(" at line ") {
        Some(pos) => &message[..pos],
        None => &message,
    };
    let message = match message.strip_prefix("missing field `") {
        Some(rest) => {
            let field = rest.trim_end_matches('`');
            return ApiError::invalid_request(if path.is_empty() || path == "." {
                format!("{field}: Field required")
            } else {
                format!("{path}.{field}: Field required")
            });
        }
        None => message,
    };
    if path.is_empty() || path == "." {
        ApiError::invalid_request(message.to_string())
    } else {
        ApiError::invalid_request(format!("{path}: {message}"))
    }
}

/// `messages[0].content[1]` → `messages.0.content.1`, the API's own spelling.
fn anthropic_path(path: &str) -> String {
    path.replace('[', ".").replace(']', "")
}

pub(crate) fn validate(
    request: &MessagesRequest,
    require_max_tokens: bool,
) -> Result<(), ApiError> {
    match request.max_tokens {
        None if require_max_tokens => {
            return Err(ApiError::invalid_request("max_tokens: Field required"));
        }
        Some(0) => {
            return Err(ApiError::invalid_request(
                "max_tokens: must be greater than or equal to 1",
            ));
        }
        _ => {}
    }
    crate::api::models::check_model_id(&request.model)?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid_request(
            "messages: at least one message is required",
        ));
    }
    if let Some(temperature) = request.temperature
        && !(0.0..=2.0).contains(&temperature)
    {
        return Err(ApiError::invalid_request(
            "temperature: must be between 0 and 2",
        ));
    }
    if let Some(tools) = &request.tools {
        for (index, tool) in tools.iter().enumerate() {
            if tool.is_custom() && tool.input_schema.is_none() {
                return Err(ApiError::invalid_request(format!(
                    "tools.{index}.input_schema: Field required"
                )));
            }
            if tool.name.is_empty() {
                return Err(ApiError::invalid_request(format!(
                    "tools.{index}.name: must not be empty"
                )));
            }
        }
    }
    if let Some(ToolChoice::Tool { name, .. }) = &request.tool_choice {
        let offered = request
            .tools
            .iter()
            .flatten()
            .any(|tool| &tool.name == name);
        if !offered {
            return Err(ApiError::invalid_request(format!(
                "tool_choice.name: tool `{name}` is not among the tools offered"
            )));
        }
    }
    validate_tool_history(request)
}

/// Every `tool_result` must answer a `tool_use` that an earlier assistant turn made, as the
/// real API requires; a broken history is the caller's 400, not the client's failure.
fn validate_tool_history(request: &MessagesRequest) -> Result<(), ApiError> {
    // A set, not a list: a history of n tool uses and n results is checked in O(n log n),
    // where a scan per result made a 16 MB body cost minutes of CPU. Ordered rather than
    // hashed, so that no crafted ids can collide (the worker's hasher has fixed keys).
    let mut seen_tool_uses: BTreeSet<&str> = BTreeSet::new();
    for (message_index, message) in request.messages.iter().enumerate() {
        let MessageContent::Blocks(blocks) = &message.content else {
            continue;
        };
        for (block_index, block) in blocks.iter().enumerate() {
            match block {
                ContentBlock::ToolUse { id, .. } => {
                    if message.role != Role::Assistant {
                        return Err(ApiError::invalid_request(format!(
                            "messages.{message_index}.content.{block_index}: tool_use blocks may only appear in assistant messages"
                        )));
                    }
                    seen_tool_uses.insert(id);
                }
                ContentBlock::ToolResult { tool_use_id, .. } => {
                    if message.role == Role::Assistant {
                        return Err(ApiError::invalid_request(format!(
                            "messages.{message_index}.content.{block_index}: tool_result blocks may only appear in user messages"
                        )));
                    }
                    if !seen_tool_uses.contains(tool_use_id.as_str()) {
                        return Err(ApiError::invalid_request(format!(
                            "messages.{message_index}.content.{block_index}: unexpected `tool_use_id` found in `tool_result` blocks: {tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` block in a previous message."
                        )));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Responses

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub role: String,
    pub content: Vec<ResponseBlock>,
    pub model: String,
    pub stop_reason: StopReason,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The bridge caches nothing; present because clients read them.
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<MessagesRequest, ApiError> {
        parse_messages_request(json.as_bytes(), true)
    }

    fn message_of(json: &str) -> String {
        parse(json).unwrap_err().message
    }

    #[test]
    fn minimal_request_parses() {
        let req =
            parse(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        assert_eq!(req.max_tokens, Some(5));
        assert!(matches!(&req.messages[0].content, MessageContent::Text(t) if t == "hi"));
        assert!(!req.wants_stream());
    }

    #[test]
    fn missing_fields_name_their_path() {
        assert_eq!(
            message_of(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
            "max_tokens: Field required"
        );
        assert_eq!(
            message_of(r#"{"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}"#),
            "model: Field required"
        );
        assert_eq!(
            message_of(r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#),
            "messages.0.content: Field required"
        );
    }

    #[test]
    fn wrong_types_are_invalid_requests_with_paths() {
        let err = parse(r#"{"model":"m","max_tokens":"ten","messages":[]}"#).unwrap_err();
        assert_eq!(err.kind, crate::api_error::ErrorKind::InvalidRequest);
        assert!(
            err.message.starts_with("max_tokens: invalid type"),
            "{err:?}"
        );
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64"}}]}]}"#,
        );
        assert!(msg.starts_with("messages.0.content.1"), "{msg}");
        let msg = message_of(r#"{"model":"m","max_tokens":-1,"messages":[]}"#);
        assert!(msg.starts_with("max_tokens:"), "{msg}");
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"robot","content":"x"}]}"#,
        );
        assert!(msg.contains("unknown variant `robot`"), "{msg}");
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_400() {
        assert!(message_of("{").starts_with("invalid JSON body"));
        assert_eq!(
            message_of("[]"),
            "invalid request body: expected a JSON object"
        );
        assert_eq!(
            message_of(r#"["m", 1, [{"role":"user","content":"x"}]]"#),
            "invalid request body: expected a JSON object"
        );
        assert_eq!(message_of("  "), "request body is empty");
        assert!(
            message_of(
                r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]} x"#
            )
            .starts_with("invalid JSON body")
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            r#"{{"model":"m","max_tokens":1,"messages":[{{"role":"user","content":[{{"type":"tool_use","id":"a","name":"n","input":{}1{}}}]}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = parse(&deep).unwrap_err();
        assert_eq!(err.kind, crate::api_error::ErrorKind::InvalidRequest);
    }

    #[test]
    fn semantic_checks() {
        assert!(
            message_of(r#"{"model":"m","max_tokens":1,"messages":[]}"#).contains("at least one")
        );
        assert!(
            message_of(
                r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#
            )
            .contains("greater than or equal to 1")
        );
        assert!(
            message_of(
                r#"{"model":"m","max_tokens":1,"temperature":3,"messages":[{"role":"user","content":"x"}]}"#
            )
            .starts_with("temperature")
        );
        assert_eq!(
            message_of(
                r#"{"model":"m","max_tokens":1,"tools":[{"name":"t"}],"messages":[{"role":"user","content":"x"}]}"#
            ),
            "tools.0.input_schema: Field required"
        );
        assert!(
            message_of(
                r#"{"model":"m","max_tokens":1,"tool_choice":{"type":"tool","name":"nope"},"tools":[{"name":"t","input_schema":{}}],"messages":[{"role":"user","content":"x"}]}"#
            )
            .starts_with("tool_choice.name")
        );
    }

    #[test]
    fn model_ids_are_bounded_as_the_api_bounds_them() {
        let with_model = |model: &str| {
            parse(
                &serde_json::json!({"model": model, "max_tokens": 1,
                    "messages": [{"role": "user", "content": "x"}]})
                .to_string(),
            )
        };
        for real in [
            "claude-opus-4-5[1m]",
            "claude-sonnet-4-5-20250929",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
            "ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9ABCdefG",
        ] {
            assert!(with_model(real).is_ok(), "{real}");
        }
        // 256 characters pass, in any script; the 257th is refused.
        assert!(with_model(&"m".repeat(256)).is_ok());
        assert!(with_model(&"\u{e9}".repeat(256)).is_ok());
        let err = with_model(&"\u{e9}".repeat(257)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message,
            "model: String should have at most 256 characters"
        );
        assert_eq!(with_model(&"m".repeat(2 << 20)).unwrap_err().status(), 400);
    }

    #[test]
    fn unknown_block_types_are_refused() {
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}"#,
        );
        assert!(msg.starts_with("messages.0.content.0"), "{msg}");
        assert!(msg.contains("hologram"), "{msg}");
    }

    #[test]
    fn tool_results_must_answer_earlier_tool_uses() {
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"r"}]}]}"#,
        );
        assert!(msg.contains("unexpected `tool_use_id`"), "{msg}");
        parse(
            r#"{"model":"m","max_tokens":1,"messages":[
                {"role":"user","content":"go"},
                {"role":"assistant","content":[{"type":"tool_use","id":"x","name":"t","input":{}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":[{"type":"text","text":"r"}]}]}]}"#,
        )
        .unwrap();
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"x","name":"t","input":{}}]}]}"#,
        );
        assert!(msg.contains("only appear in assistant"), "{msg}");
    }

    /// The shape Claude Code sends on every turn must parse as a whole.
    #[test]
    fn claude_code_shaped_request_is_accepted() {
        let body = r#"{
          "model":"claude-sonnet-4-5-20250929","max_tokens":32000,"stream":true,
          "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},
                    {"type":"text","text":"Env"},{"type":"text","text":"Rules"}],
          "messages":[
            {"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},
                                           {"type":"redacted_thinking","data":"xx"},
                                           {"type":"text","text":"hello"}]},
            {"role":"system","content":"<system-reminder>note</system-reminder>"},
            {"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"},"title":"t"},
                                      {"type":"search_result","source":"s","title":"t","content":[{"type":"text","text":"r"}]},
                                      {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}],
          "tools":[{"name":"Bash","description":"run","input_schema":{"type":"object"},"strict":true,"defer_loading":false,"cache_control":{"type":"ephemeral"}},
                   {"type":"web_search_20250305","name":"web_search","max_uses":3}],
          "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
          "thinking":{"type":"adaptive","display":"summarized"},
          "metadata":{"user_id":"{\"device\":\"x\"}"},
          "temperature":1,"top_p":0.9,"top_k":5,"stop_sequences":["END"],
          "service_tier":"auto","container":null,"output_config":{"effort":"high"},
          "context_management":{"edits":[]},"mcp_servers":[],"inference_geo":"us","cache_control":{"type":"ephemeral"}
        }"#;
        let req = parse(body).unwrap();
        assert!(req.wants_stream());
        assert_eq!(
            req.system.as_ref().map(SystemPrompt::texts),
            Some(vec!["You are Claude Code.", "Env", "Rules"])
        );
        assert_eq!(req.messages[2].role, Role::System);
        assert!(matches!(req.thinking, Some(ThinkingConfig::Adaptive {})));
        let tools = req.tools.as_ref().unwrap();
        assert!(tools[0].is_custom() && !tools[1].is_custom());
    }

    #[test]
    fn output_formats_parse_in_both_spellings() {
        let schema = serde_json::json!({"type":"object"});
        let req = parse(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],
                "output_config":{"effort":"low","format":{"type":"json_schema","schema":{"type":"object"}}}}"#,
        )
        .unwrap();
        assert_eq!(req.output_schema(), Some(&schema));
        let req = parse(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],
                "output_format":{"type":"json_schema","schema":{"type":"object"}}}"#,
        )
        .unwrap();
        assert_eq!(req.output_schema(), Some(&schema));
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],
                "output_config":{"format":{"type":"xml"}}}"#,
        );
        assert!(msg.starts_with("output_config.format"), "{msg}");
        let msg = message_of(
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],
                "output_format":{"type":"json_schema"}}"#,
        );
        assert_eq!(msg, "output_format.schema: Field required");
    }

    #[test]
    fn response_serialises_like_the_api() {
        let response = MessagesResponse {
            id: "msg_1".into(),
            kind: "message".into(),
            role: "assistant".into(),
            content: vec![ResponseBlock::Text { text: "hi".into() }],
            model: "m".into(),
            stop_reason: StopReason::EndTurn,
            stop_sequence: None,
            usage: Usage::new(3, 1),
        };
        let value = serde_json::to_value(&response).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["content"][0]["type"], "text");
        assert_eq!(value["stop_reason"], "end_turn");
        assert!(value["stop_sequence"].is_null());
        assert_eq!(value["usage"]["input_tokens"], 3);
    }
}
