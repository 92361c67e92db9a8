//! Structured outputs on every client: MCP sampling has no field for a response schema, so the
//! schema goes into the system prompt, and the answer's text is reduced to the one JSON value
//! it holds (models often wrap it in a code fence or put a sentence before it).

use serde::de::IgnoredAny;
use serde_json::Value;

use crate::convert::fence::strip_fence;
use crate::convert::framing;

/// The system-prompt section that asks for `schema`. With tools offered, it binds the final
/// answer only, so a tool loop can run first.
pub fn instruction(schema: &Value, with_tools: bool) -> String {
    let which = if with_tools {
        "When you answer without calling a tool, your answer"
    } else {
        "Your answer"
    };
    // A description in the schema holding `</schema>` must not end it.
    let schema = framing::escape_json(schema.to_string());
    format!(
        "# Response format\n\n{which} must be exactly one JSON value that matches this JSON Schema, with no other text and no code fence:\n<schema>\n{schema}\n</schema>"
    )
}

/// The one JSON value `text` holds: all of it, the inside of a code fence, or the first value
/// that starts after some prose. `None` when nothing parses.
///
/// Linear in the text: the whole and the fenced pieces are read once each; then the prose is
/// read left to right, and a `{` or `[` that starts no value is skipped together with all it
/// read before failing (a value nested in a broken one is a fragment, not the answer's value).
pub fn extract_json(text: &str) -> Option<&str> {
    let whole = text.trim();
    if parses(whole) {
        return Some(whole);
    }
    // Between fences: the odd pieces of a split on ``` are the fenced texts.
    for (index, piece) in text.split("```").enumerate() {
        if index % 2 == 1 {
            let inner = strip_fence_body(piece);
            if parses(inner) {
                return Some(inner);
            }
        }
    }
    let mut from = 0;
    while let Some(offset) = memchr::memchr2(b'{', b'[', text.as_bytes().get(from..)?) {
        let start = from + offset;
        // `start` is at an ASCII byte, a character boundary.
        let candidate = text.get(start..)?;
        let mut values = serde_json::Deserializer::from_str(candidate).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => return candidate.get(..values.byte_offset()),
            Some(Err(err)) => from = start + failure_offset(candidate, &err).max(1),
            None => return None,
        }
    }
    None
}

/// The byte of `text` where parsing it failed with `err` (serde_json reports a line and a
/// byte column just past it).
fn failure_offset(text: &str, err: &serde_json::Error) -> usize {
    let line_start = if err.line() <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', text.as_bytes())
            .nth(err.line() - 2)
            .map_or(text.len(), |newline| newline + 1)
    };
    (line_start + err.column())
        .saturating_sub(1)
        .min(text.len())
}

/// A fenced piece without its language tag line (`json\n{…}`).
fn strip_fence_body(piece: &str) -> &str {
    let fenced = strip_fence(piece.trim());
    match fenced.split_once('\n') {
        Some((tag, rest)) if !tag.trim_start().starts_with(['{', '[', '"']) => rest.trim(),
        _ => fenced.trim(),
    }
}

fn parses(text: &str) -> bool {
    !text.is_empty() && serde_json::from_str::<IgnoredAny>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instruction_carries_the_schema() {
        let schema = json!({"type":"object","properties":{"city":{"type":"string"}}});
        let text = instruction(&schema, false);
        assert!(
            text.starts_with("# Response format\n\nYour answer must be exactly one JSON value")
        );
        assert!(text.contains(&schema.to_string()));
        assert!(instruction(&schema, true).contains("When you answer without calling a tool"));
    }

    /// docs/api.md quotes this instruction verbatim ("Structured outputs").
    #[test]
    fn instruction_is_the_documented_text() {
        let text = instruction(
            &json!({"type":"object","properties":{"city":{"type":"string"}}}),
            false,
        );
        let docs = include_str!("../../../../docs/api.md");
        assert!(docs.contains(&text), "{text}");
    }

    #[test]
    fn values_are_found_where_models_put_them() {
        assert_eq!(extract_json(" {\"a\": 1} \n"), Some("{\"a\": 1}"));
        assert_eq!(
            extract_json("Here is the result:\n```json\n{\"a\": [1, 2]}\n```\nDone."),
            Some("{\"a\": [1, 2]}")
        );
        assert_eq!(extract_json("```\n[1]\n```"), Some("[1]"));
        assert_eq!(
            extract_json("Sure! The answer is {\"city\": \"Paris\"} as asked."),
            Some("{\"city\": \"Paris\"}")
        );
        assert_eq!(extract_json("\"just a string\""), Some("\"just a string\""));
        assert_eq!(extract_json("42"), Some("42"));
        // Braces that are not JSON come before the value.
        assert_eq!(
            extract_json("Set {x} first, then: {\"x\": true}"),
            Some("{\"x\": true}")
        );
        assert_eq!(
            extract_json("日本 {\"k\": \"語\"}"),
            Some("{\"k\": \"語\"}")
        );
    }

    #[test]
    fn a_start_that_fails_is_skipped_up_to_where_it_failed() {
        assert_eq!(extract_json("[1, 2 {\"a\": 1}"), Some("{\"a\": 1}"));
        // On a later line, after characters of several bytes.
        assert_eq!(
            extract_json("Intro\n{\n  \"é\": x\n}\nthen {\"b\": 2}"),
            Some("{\"b\": 2}")
        );
        assert_eq!(extract_json("日本 {語} {\"k\": 1}"), Some("{\"k\": 1}"));
        // A value nested in a broken one is a fragment, not the answer.
        assert_eq!(extract_json("{\"a\": {\"b\": 1} oops"), None);
        assert_eq!(extract_json(&format!("{}\"x", "[".repeat(200))), None);
    }

    #[test]
    fn failure_offsets_point_at_the_failing_byte() {
        for (text, failing) in [
            ("[1, 2 x", "x"),
            ("{\n\"a\":\n  ?}", "?"),
            ("{\"日本\": !}", "!"),
        ] {
            let err = serde_json::from_str::<IgnoredAny>(text).unwrap_err();
            let at = failure_offset(text, &err);
            assert_eq!(text.get(at..at + 1), Some(failing), "{text}: {err}");
        }
    }

    #[test]
    fn prose_without_json_is_left_alone() {
        assert_eq!(extract_json("I cannot answer that."), None);
        assert_eq!(extract_json("{broken"), None);
        assert_eq!(extract_json(""), None);
        assert_eq!(extract_json("```\nnot json\n```"), None);
    }
}
