//! MCP `sampling/createMessage` wire types (protocol 2025-11-25, readable by older clients).
//!
//! Hand-written rather than taken from `rmcp` because rmcp always depends on tokio, and this
//! crate must stay sans-I/O for the wasm worker. Only the sampling subset is modelled.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::mcp::jsonrpc::{Lenient, lenient_object};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMessageParams {
    pub messages: Vec<SamplingMessage>,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_preferences: Option<ModelPreferences>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<SamplingTool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<SamplingToolChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingRole {
    User,
    Assistant,
}

/// One message. A single block is sent as an object (what every protocol version reads);
/// several as a list, which only 2025-11-25 clients accept (older ones get one message per
/// block, see `to_sampling`).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingMessage {
    pub role: SamplingRole,
    pub content: Vec<SamplingContent>,
}

impl Serialize for SamplingMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<C: Serialize> {
            role: SamplingRole,
            content: C,
        }
        match self.content.as_slice() {
            [single] => Wire {
                role: self.role,
                content: single,
            }
            .serialize(serializer),
            many => Wire {
                role: self.role,
                content: many,
            }
            .serialize(serializer),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SamplingContent {
    Text {
        text: String,
    },
    Image {
        data: String,
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    Audio {
        data: String,
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        #[serde(rename = "toolUseId")]
        tool_use_id: String,
        content: Vec<SamplingContent>,
        #[serde(rename = "isError", skip_serializing_if = "Option::is_none", default)]
        is_error: Option<bool>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPreferences {
    pub hints: Vec<ModelHint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHint {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplingTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SamplingToolChoice {
    pub mode: ToolChoiceMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    Auto,
    Required,
    None,
}

/// What a client answers, read by [`CreateMessageResult::from_json`] or `from_value`. Tolerant:
/// content may be one block or a list, and `model` may be missing (some clients omit it).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMessageResult {
    pub role: SamplingRole,
    pub content: Vec<SamplingContent>,
    pub model: Option<String>,
    pub stop_reason: Option<String>,
    /// Token counts, where a client reports them (`_meta.usage` or a top-level `usage`).
    pub usage: Option<ReportedUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

fn assistant_role() -> SamplingRole {
    SamplingRole::Assistant
}

/// One block or a list of them, read without buffering the content first.
fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SamplingContent>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<SamplingContent>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a content block or a list of content blocks")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(SeqAccessDeserializer::new(seq))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            SamplingContent::deserialize(MapAccessDeserializer::new(map)).map(|block| vec![block])
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

/// A `CreateMessageResult` as it arrives, with the places clients report usage in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResult {
    #[serde(default = "assistant_role")]
    role: SamplingRole,
    #[serde(deserialize_with = "one_or_many")]
    content: Vec<SamplingContent>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(rename = "_meta", default)]
    meta: Lenient<WireMeta>,
    #[serde(default, deserialize_with = "present")]
    usage: Option<Lenient<WireUsage>>,
}

#[derive(Deserialize)]
struct WireMeta {
    #[serde(default, deserialize_with = "present")]
    usage: Option<Lenient<WireUsage>>,
}

/// Usage is not part of MCP; clients that know it use either naming convention.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: Lenient<u64>,
    #[serde(default, rename = "input_tokens")]
    input_tokens_snake: Lenient<u64>,
    #[serde(default)]
    prompt_tokens: Lenient<u64>,
    #[serde(default, rename = "prompt_tokens")]
    prompt_tokens_snake: Lenient<u64>,
    #[serde(default)]
    output_tokens: Lenient<u64>,
    #[serde(default, rename = "output_tokens")]
    output_tokens_snake: Lenient<u64>,
    #[serde(default)]
    completion_tokens: Lenient<u64>,
    #[serde(default, rename = "completion_tokens")]
    completion_tokens_snake: Lenient<u64>,
}

lenient_object!(WireMeta, WireUsage);

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl WireUsage {
    fn reported(self) -> Option<ReportedUsage> {
        let reported = ReportedUsage {
            input_tokens: self
                .input_tokens
                .0
                .or(self.input_tokens_snake.0)
                .or(self.prompt_tokens.0)
                .or(self.prompt_tokens_snake.0),
            output_tokens: self
                .output_tokens
                .0
                .or(self.output_tokens_snake.0)
                .or(self.completion_tokens.0)
                .or(self.completion_tokens_snake.0),
        };
        (reported.input_tokens.is_some() || reported.output_tokens.is_some()).then_some(reported)
    }
}

impl From<WireResult> for CreateMessageResult {
    fn from(wire: WireResult) -> Self {
        // `_meta.usage` wins when it is there at all, even if unreadable.
        let usage = match wire.meta.0.and_then(|meta| meta.usage) {
            Some(usage) => usage,
            None => wire.usage.unwrap_or_default(),
        };
        CreateMessageResult {
            role: wire.role,
            content: wire.content,
            model: wire.model,
            stop_reason: wire.stop_reason,
            usage: usage.0.and_then(WireUsage::reported),
        }
    }
}

impl CreateMessageResult {
    /// The result as a client would send it (usage in `_meta.usage`); `from_value` reads it back.
    pub fn to_value(&self) -> Value {
        let mut value = serde_json::json!({
            "role": self.role,
            "content": self.content,
            "model": self.model,
            "stopReason": self.stop_reason,
        });
        if let Some(usage) = self.usage {
            value["_meta"] = serde_json::json!({"usage": {
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
            }});
        }
        value
    }

    /// Reads a JSON-RPC `result` value, picking up usage a client may have reported.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        WireResult::deserialize(value).map(Self::from)
    }

    /// Reads a JSON-RPC `result` from its text, as [`CreateMessageResult::from_value`] does.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<WireResult>(text.as_bytes()).map(Self::from)
    }
}

impl SamplingContent {
    /// The bytes of its strings: most of its JSON length when it is large.
    pub fn text_len(&self) -> usize {
        match self {
            SamplingContent::Text { text } => text.len(),
            SamplingContent::Image { data, mime_type }
            | SamplingContent::Audio { data, mime_type } => data.len() + mime_type.len(),
            SamplingContent::ToolUse { id, name, .. } => id.len() + name.len() + 64,
            SamplingContent::ToolResult {
                tool_use_id,
                content,
                ..
            } => tool_use_id.len() + content.iter().map(SamplingContent::text_len).sum::<usize>(),
        }
    }
}

impl CreateMessageResult {
    /// Roughly the bytes converting this answer into a response reads and writes: its texts
    /// and data, and its tool inputs as JSON. Linear in its blocks and their inputs' nodes.
    pub fn size_hint(&self) -> usize {
        self.content
            .iter()
            .map(|block| {
                let input = match block {
                    SamplingContent::ToolUse { input, .. } => json_size_hint(input),
                    _ => 0,
                };
                block.text_len() + input + 32
            })
            .sum()
    }
}

/// About the length of `value` as JSON: its strings and numbers, and a few bytes per node.
fn json_size_hint(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(json_size_hint).sum::<usize>() + 2,
        Value::Object(members) => {
            members
                .iter()
                .map(|(key, value)| key.len() + 4 + json_size_hint(value))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

impl CreateMessageParams {
    /// One user message of `text`, `max_tokens`, and nothing else set: the plainest request,
    /// for params built by hand (tests, benches), which set what they need on top of it.
    pub fn user_text(text: impl Into<String>, max_tokens: u64) -> Self {
        CreateMessageParams {
            messages: vec![SamplingMessage {
                role: SamplingRole::User,
                content: vec![SamplingContent::Text { text: text.into() }],
            }],
            max_tokens,
            system_prompt: None,
            temperature: None,
            stop_sequences: None,
            model_preferences: None,
            metadata: None,
            tools: None,
            tool_choice: None,
        }
    }

    /// Roughly the length of these params as JSON (at least the strings they carry), to size
    /// the buffer they are serialized into.
    pub fn size_hint(&self) -> usize {
        let content: usize = self
            .messages
            .iter()
            .flat_map(|message| &message.content)
            .map(|block| block.text_len() + 32)
            .sum();
        content + self.system_prompt.as_ref().map_or(0, String::len) + 512
    }
}

/// What the connected client can take, from its `initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientSupport {
    /// Declared `sampling.tools`: tools, tool choice and tool blocks may be sent.
    pub tools: bool,
    /// Negotiated 2025-11-25 or later: a message may hold a list of blocks.
    pub multi_block_messages: bool,
}

impl ClientSupport {
    pub const FULL: ClientSupport = ClientSupport {
        tools: true,
        multi_block_messages: true,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_hint_covers_large_content_without_overshooting() {
        let params = CreateMessageParams {
            messages: vec![SamplingMessage {
                role: SamplingRole::User,
                content: vec![
                    SamplingContent::Image {
                        data: "A".repeat(300_000),
                        mime_type: "image/png".into(),
                    },
                    SamplingContent::Text {
                        text: "word ".repeat(20_000),
                    },
                ],
            }],
            system_prompt: Some("be brief".into()),
            ..CreateMessageParams::user_text("", 5)
        };
        let json_len = serde_json::to_vec(&params).unwrap().len();
        let hint = params.size_hint();
        assert!(hint >= json_len, "hint {hint} < {json_len}");
        assert!(hint < json_len + 4096, "hint {hint} far above {json_len}");
    }

    #[test]
    fn a_result_s_size_hint_counts_texts_and_tool_inputs() {
        let result = CreateMessageResult::from_value(json!({"role":"assistant","content":[
            {"type":"text","text":"x".repeat(300_000)},
            {"type":"tool_use","id":"t","name":"f","input":{"k":["y".repeat(200_000)]}}
        ]}))
        .unwrap();
        let hint = result.size_hint();
        let json = result.to_value().to_string().len();
        assert!(hint >= 500_000 && hint <= json + 1024, "{hint} vs {json}");
    }

    #[test]
    fn single_block_messages_serialise_as_an_object() {
        let one = SamplingMessage {
            role: SamplingRole::User,
            content: vec![SamplingContent::Text { text: "hi".into() }],
        };
        assert_eq!(
            serde_json::to_value(&one).unwrap(),
            json!({"role":"user","content":{"type":"text","text":"hi"}})
        );
        let two = SamplingMessage {
            role: SamplingRole::User,
            content: vec![
                SamplingContent::Text { text: "a".into() },
                SamplingContent::Image {
                    data: "AA==".into(),
                    mime_type: "image/png".into(),
                },
            ],
        };
        assert_eq!(
            serde_json::to_value(&two).unwrap()["content"][1],
            json!({"type":"image","data":"AA==","mimeType":"image/png"})
        );
    }

    #[test]
    fn tool_blocks_use_mcp_field_names() {
        let block = SamplingContent::ToolResult {
            tool_use_id: "t1".into(),
            content: vec![SamplingContent::Text { text: "ok".into() }],
            is_error: Some(true),
        };
        assert_eq!(
            serde_json::to_value(&block).unwrap(),
            json!({"type":"tool_result","toolUseId":"t1","content":[{"type":"text","text":"ok"}],"isError":true})
        );
    }

    #[test]
    fn usage_is_read_from_either_place_and_naming() {
        let usage = |result: Value| {
            let mut base = json!({"content": {"type": "text", "text": "x"}});
            base.as_object_mut()
                .unwrap()
                .extend(result.as_object().unwrap().clone());
            let from_text = CreateMessageResult::from_json(&base.to_string())
                .unwrap()
                .usage;
            assert_eq!(
                CreateMessageResult::from_value(base).unwrap().usage,
                from_text
            );
            from_text.map(|usage| (usage.input_tokens, usage.output_tokens))
        };
        assert_eq!(
            usage(json!({"usage": {"prompt_tokens": 5, "completion_tokens": 2}})),
            Some((Some(5), Some(2)))
        );
        assert_eq!(
            usage(json!({"_meta": {"usage": {"input_tokens": 1}}, "usage": {"outputTokens": 9}})),
            Some((Some(1), None))
        );
        // `_meta` without usage falls back to the top level; an unreadable `_meta.usage` does not.
        assert_eq!(
            usage(json!({"_meta": {"progressToken": 1}, "usage": {"outputTokens": 9}})),
            Some((None, Some(9)))
        );
        assert_eq!(
            usage(json!({"_meta": {"usage": "n/a"}, "usage": {"outputTokens": 9}})),
            None
        );
        assert_eq!(
            usage(json!({"_meta": "x", "usage": {"inputTokens": -1, "outputTokens": 1.5}})),
            None
        );
        assert_eq!(
            usage(json!({"usage": {"inputTokens": 3, "input_tokens": 4}})),
            Some((Some(3), None))
        );
    }

    #[test]
    fn results_accept_one_block_or_many_and_read_usage() {
        let one = CreateMessageResult::from_value(json!({
            "role":"assistant","content":{"type":"text","text":"hi"},"model":"gpt","stopReason":"endTurn"
        }))
        .unwrap();
        assert_eq!(one.content.len(), 1);
        assert_eq!(one.model.as_deref(), Some("gpt"));
        assert_eq!(one.usage, None);
        let many = CreateMessageResult::from_value(json!({
            "role":"assistant","model":"m","stopReason":"toolUse",
            "content":[{"type":"text","text":"x"},{"type":"tool_use","id":"c1","name":"f","input":{"a":1}}],
            "_meta":{"usage":{"inputTokens":12,"outputTokens":7}}
        }))
        .unwrap();
        assert_eq!(many.content.len(), 2);
        assert_eq!(
            many.usage,
            Some(ReportedUsage {
                input_tokens: Some(12),
                output_tokens: Some(7)
            })
        );
        assert_eq!(
            CreateMessageResult::from_value(many.to_value()).unwrap(),
            many
        );
        // The text and the value read alike.
        let text = many.to_value().to_string();
        assert_eq!(CreateMessageResult::from_json(&text).unwrap(), many);
        assert!(CreateMessageResult::from_json(r#"{"role":"assistant","content":[]"#).is_err());
        assert!(CreateMessageResult::from_value(json!({"role":"assistant"})).is_err());
        assert!(CreateMessageResult::from_value(json!({"content":{"type":"video"}})).is_err());
    }
}
