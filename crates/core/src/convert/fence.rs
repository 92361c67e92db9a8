//! Markdown code fences around a model's answer: models often wrap JSON (a tool call's
//! arguments, a structured output) in ```json … ```, and both parsers read what is inside.

/// The inside of a Markdown code fence (```json … ```), or `text` if it is not one.
pub fn strip_fence(text: &str) -> &str {
    let Some(opened) = text.strip_prefix("```") else {
        return text;
    };
    let Some(closed) = opened.trim_end().strip_suffix("```") else {
        return text;
    };
    // The language tag runs to the end of the first line.
    let inner = match closed.split_once('\n') {
        Some((tag, inner)) if !tag.trim_start().starts_with(['{', '[']) => inner,
        _ => closed,
    };
    inner.trim()
}

#[cfg(test)]
mod tests {
    use super::strip_fence;

    #[test]
    fn strips_a_fence_with_or_without_a_language_tag() {
        assert_eq!(strip_fence("```json\n{}\n```"), "{}");
        assert_eq!(strip_fence("```{\"a\":1}```"), "{\"a\":1}");
        assert_eq!(strip_fence("{}"), "{}");
        assert_eq!(strip_fence("```json\n{}"), "```json\n{}");
    }
}
