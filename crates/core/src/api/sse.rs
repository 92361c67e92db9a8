//! Anthropic SSE framing: `event: <type>\ndata: <json>\n\n`, in the order the SDKs require.
//!
//! MCP sampling answers all at once, so after the result arrives the response is replayed as
//! the stream a real model would have produced: long text in several `text_delta`s, tool input
//! as `input_json_delta` fragments whose concatenation parses.

use serde::Serialize;
use serde_json::json;

use crate::api::anthropic::{MessagesResponse, ResponseBlock, Usage};
use crate::api_error::ApiError;

/// Characters per `text_delta`, about what a model emits per network flush.
const TEXT_CHUNK_CHARS: usize = 48;
/// Bytes per `input_json_delta`.
const JSON_CHUNK_BYTES: usize = 64;

pub const PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

/// One frame. `data` must be a JSON object whose `type` is `event`.
pub fn frame(event: &str, data: &str) -> String {
    let mut out = String::with_capacity(event.len() + data.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
    out
}

fn frame_json(event: &str, data: &impl Serialize) -> String {
    frame(
        event,
        &serde_json::to_string(data).unwrap_or_else(|_| "{}".into()),
    )
}

/// The first frame, sent as soon as the request is accepted.
pub fn message_start(message_id: &str, model: &str, input_tokens: u64) -> String {
    frame_json(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": message_id, "type": "message", "role": "assistant", "content": [],
                "model": model, "stop_reason": null, "stop_sequence": null,
                "usage": Usage::new(input_tokens, 1),
            }
        }),
    )
}

pub fn error(err: &ApiError) -> String {
    frame("error", &err.to_stream_data())
}

/// Everything after `message_start`: the blocks, `message_delta` (with usage), `message_stop`.
pub fn response_frames(response: &MessagesResponse) -> String {
    let mut out = String::new();
    for (index, block) in response.content.iter().enumerate() {
        match block {
            ResponseBlock::Text { text } => {
                out += &frame_json(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
                );
                for piece in split_text(text, TEXT_CHUNK_CHARS) {
                    out += &frame_json(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":piece}}),
                    );
                }
            }
            ResponseBlock::ToolUse { id, name, input } => {
                out += &frame_json(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":index,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
                );
                let input_json = input.to_string();
                for piece in split_bytes_at_char_boundaries(&input_json, JSON_CHUNK_BYTES) {
                    out += &frame_json(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":piece}}),
                    );
                }
            }
        }
        out += &frame_json(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":index}),
        );
    }
    out += &frame_json(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": response.stop_reason, "stop_sequence": response.stop_sequence},
            "usage": response.usage,
        }),
    );
    out += &frame("message_stop", r#"{"type":"message_stop"}"#);
    out
}

/// Splits after whitespace near `max_chars`, so deltas end on word boundaries where possible.
pub(crate) fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let hard_end = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(index, _)| index);
        if hard_end == rest.len() {
            pieces.push(rest);
            break;
        }
        let end = rest[..hard_end]
            .rfind(char::is_whitespace)
            .map(|space| space + rest[space..].chars().next().map_or(1, char::len_utf8))
            .filter(|&end| end > hard_end / 2)
            .unwrap_or(hard_end);
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces
}

pub(crate) fn split_bytes_at_char_boundaries(text: &str, max_bytes: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = max_bytes.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::StopReason;
    use serde_json::Value;

    fn parse_frames(stream: &str) -> Vec<(String, Value)> {
        stream
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (event_line, data_line) = f.split_once('\n').unwrap();
                let event = event_line.strip_prefix("event: ").unwrap().to_string();
                let data: Value =
                    serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(
                    data["type"],
                    event.as_str(),
                    "data.type must equal the event name"
                );
                (event, data)
            })
            .collect()
    }

    #[test]
    fn stream_has_the_sdk_order_and_reassembles() {
        let long_text = "word ".repeat(50) + "ünïcødé end";
        let response = MessagesResponse {
            id: "msg_1".into(),
            kind: "message".into(),
            role: "assistant".into(),
            content: vec![
                ResponseBlock::Text {
                    text: long_text.clone(),
                },
                ResponseBlock::ToolUse {
                    id: "t1".into(),
                    name: "f".into(),
                    input: json!({"path": "ö/".repeat(40), "n": 1}),
                },
            ],
            model: "m".into(),
            stop_reason: StopReason::ToolUse,
            stop_sequence: None,
            usage: Usage::new(10, 20),
        };
        let stream = message_start("msg_1", "m", 10) + PING + &response_frames(&response);
        let frames = parse_frames(&stream);
        let names: Vec<&str> = frames.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names[0], "message_start");
        assert_eq!(names[1], "ping");
        assert_eq!(names[2], "content_block_start");
        assert_eq!(names[names.len() - 2], "message_delta");
        assert_eq!(names[names.len() - 1], "message_stop");
        assert_eq!(frames[0].1["message"]["content"], json!([]));

        let text: String = frames
            .iter()
            .filter(|(_, d)| d["index"] == 0 && d["delta"]["type"] == "text_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, long_text);
        let deltas = frames
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "text_delta")
            .count();
        assert!(deltas > 3, "long text is split into several deltas");

        let json_text: String = frames
            .iter()
            .filter(|(_, d)| d["index"] == 1 && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        let input: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(input["n"], 1);

        // Indices open and close in order, never interleaved.
        let mut open: Option<u64> = None;
        let mut next = 0;
        for (event, data) in &frames {
            match event.as_str() {
                "content_block_start" => {
                    assert!(open.is_none());
                    assert_eq!(data["index"], next);
                    open = Some(next);
                }
                "content_block_delta" => assert_eq!(data["index"].as_u64(), open),
                "content_block_stop" => {
                    assert_eq!(data["index"].as_u64(), open);
                    open = None;
                    next += 1;
                }
                _ => {}
            }
        }
        let delta = &frames[frames.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], 20);
    }

    #[test]
    fn text_splitting_keeps_every_character() {
        for text in [
            "",
            "a",
            "no-spaces-".repeat(30).as_str(),
            "x y ".repeat(100).as_str(),
        ] {
            let pieces = split_text(text, 48);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| p.chars().count() <= 48));
        }
    }

    #[test]
    fn error_frames_are_typed() {
        let frames = parse_frames(&error(&ApiError::timeout("late")));
        assert_eq!(frames[0].0, "error");
        assert_eq!(frames[0].1["error"]["type"], "timeout_error");
    }
}
