//! MCP `sampling/createMessage` wire types (protocol 2025-11-25, readable by older clients).
//!
//! Hand-written rather than taken from `rmcp` because rmcp always depends on tokio, and this
//! crate must stay sans-I/O for the wasm worker. Only the sampling subset is modelled.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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

/// What a client answers. Tolerant: content may be one block or a list, and `model` may be
/// missing (some clients omit it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMessageResult {
    #[serde(default = "assistant_role")]
    pub role: SamplingRole,
    #[serde(deserialize_with = "one_or_many")]
    pub content: Vec<SamplingContent>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Token counts, where a client reports them (`_meta.usage` or a top-level `usage`).
    #[serde(skip)]
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

fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SamplingContent>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<SamplingContent>),
        One(SamplingContent),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(blocks) => blocks,
        OneOrMany::One(block) => vec![block],
    })
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
        let usage = reported_usage(&value);
        let mut result: CreateMessageResult = serde_json::from_value(value)?;
        result.usage = usage;
        Ok(result)
    }
}

/// Usage is not part of MCP; clients that know it put it in `_meta.usage` or `usage`, in
/// either naming convention.
fn reported_usage(result: &Value) -> Option<ReportedUsage> {
    let usage = result
        .get("_meta")
        .and_then(|meta| meta.get("usage"))
        .or_else(|| result.get("usage"))?;
    let read = |names: &[&str]| names.iter().find_map(|name| usage.get(*name)?.as_u64());
    let reported = ReportedUsage {
        input_tokens: read(&[
            "inputTokens",
            "input_tokens",
            "promptTokens",
            "prompt_tokens",
        ]),
        output_tokens: read(&[
            "outputTokens",
            "output_tokens",
            "completionTokens",
            "completion_tokens",
        ]),
    };
    (reported.input_tokens.is_some() || reported.output_tokens.is_some()).then_some(reported)
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

impl CreateMessageParams {
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
            max_tokens: 5,
            system_prompt: Some("be brief".into()),
            temperature: None,
            stop_sequences: None,
            model_preferences: None,
            metadata: None,
            tools: None,
            tool_choice: None,
        };
        let json_len = serde_json::to_vec(&params).unwrap().len();
        let hint = params.size_hint();
        assert!(hint >= json_len, "hint {hint} < {json_len}");
        assert!(hint < json_len + 4096, "hint {hint} far above {json_len}");
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
        assert!(CreateMessageResult::from_value(json!({"role":"assistant"})).is_err());
        assert!(CreateMessageResult::from_value(json!({"content":{"type":"video"}})).is_err());
    }
}
