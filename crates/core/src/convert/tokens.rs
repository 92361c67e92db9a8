//! Token estimation, used for `usage` when the MCP client reports none (and, later, for
//! `count_tokens`). One estimator serves both so the numbers agree.
//!
//! The model behind an MCP client is unknown, so no real tokenizer applies. The estimate
//! follows how BPE tokenizers split text: a run of ASCII letters or digits is one token per
//! started 6 characters, `_` included (common words are single tokens); a run of ASCII punctuation or of
//! newlines is one token per started 2 characters (`{"`, `->`, `\n\n` merge); each non-ASCII
//! character is one token; a space joins the next token and indentation costs one per 4.
//! Images follow Anthropic's published rule, width × height / 750 after scaling to fit
//! 1568 px and 1.15 megapixels. docs/api.md ("Usage") shows the measured error against a real tokenizer.
//! Tools and a response schema count as the text the bridge renders for them when it emulates
//! tools (`tool_emulation`), whichever way a client gets them: `count_tokens` has no client,
//! and the native preamble a provider adds is of the same size.

use crate::api::anthropic::{
    ContentBlock, DocumentSource, ImageSource, MessageContent, MessagesRequest, ResponseBlock,
    ToolResultContent,
};
use crate::convert::base64_check::decode_prefix;

/// Tokens a request adds around each message (role markers).
const PER_MESSAGE_OVERHEAD: u64 = 4;
/// Fixed tokens of every request.
const PER_REQUEST_OVERHEAD: u64 = 3;
/// An image whose size cannot be read is counted as the largest image the API accepts.
const UNKNOWN_IMAGE_TOKENS: u64 = 1_600;

pub fn estimate_text(text: &str) -> u64 {
    let mut tokens = 0u64;
    let mut run = Run::None;
    let mut run_len = 0u64;
    for c in text.chars() {
        // `_` joins identifiers (`run_in_background`), as it does in BPE vocabularies.
        let kind = if c.is_ascii_alphanumeric() || c == '_' {
            Run::Word
        } else if c == ' ' || c == '\t' {
            Run::Space
        } else if c == '\n' || c == '\r' {
            Run::Newline
        } else if c.is_ascii() {
            Run::Symbol
        } else {
            Run::Other
        };
        if kind == run {
            run_len += 1;
        } else {
            run = kind;
            run_len = 1;
        }
        tokens += match kind {
            // A word: one token per started 6 characters.
            Run::Word => u64::from(run_len % 6 == 1),
            // A space joins the next word; indentation costs one token per 4 spaces.
            Run::Space => u64::from(run_len > 1 && run_len % 4 == 1),
            // Common punctuation pairs (`{"`, `");`, `->`) are single tokens.
            Run::Symbol | Run::Newline => u64::from(run_len % 2 == 1),
            // Non-ASCII characters (accents, CJK) are about one token each.
            Run::Other => 1,
            Run::None => 0,
        };
    }
    tokens
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    None,
    Word,
    Space,
    Newline,
    Symbol,
    Other,
}

/// Tokens of an image given as base64, from its header's dimensions.
pub fn estimate_image(base64_data: &str) -> u64 {
    let Some(header) = decode_prefix(base64_data, 64 * 1024) else {
        return UNKNOWN_IMAGE_TOKENS;
    };
    match imagesize::blob_size(&header) {
        Ok(size) => image_tokens(size.width as u64, size.height as u64),
        Err(_) => UNKNOWN_IMAGE_TOKENS,
    }
}

fn image_tokens(width: u64, height: u64) -> u64 {
    if width == 0 || height == 0 {
        return UNKNOWN_IMAGE_TOKENS;
    }
    let (mut w, mut h) = (width as f64, height as f64);
    let long_edge = w.max(h);
    if long_edge > 1568.0 {
        let scale = 1568.0 / long_edge;
        w *= scale;
        h *= scale;
    }
    let pixels = w * h;
    if pixels > 1_150_000.0 {
        let scale = (1_150_000.0 / pixels).sqrt();
        w *= scale;
        h *= scale;
    }
    ((w * h / 750.0).ceil() as u64).max(1)
}

/// Input tokens of a whole request: system, messages, tools.
pub fn estimate_request(request: &MessagesRequest) -> u64 {
    let mut tokens = PER_REQUEST_OVERHEAD;
    if let Some(system) = &request.system {
        tokens += system.texts().into_iter().map(estimate_text).sum::<u64>();
    }
    for message in &request.messages {
        tokens += PER_MESSAGE_OVERHEAD;
        tokens += match &message.content {
            MessageContent::Text(text) => estimate_text(text),
            MessageContent::Blocks(blocks) => blocks.iter().map(estimate_block).sum(),
        };
    }
    let tools = crate::convert::to_sampling::offered_tools(request);
    tokens += crate::convert::to_sampling::added_instructions(request, &tools)
        .iter()
        .map(|text| estimate_text(text))
        .sum::<u64>();
    tokens
}

fn estimate_block(block: &ContentBlock) -> u64 {
    match block {
        ContentBlock::Text { text } => estimate_text(text),
        ContentBlock::Image { source } => match source {
            ImageSource::Base64 { data, .. } => estimate_image(data),
            ImageSource::Url { .. } | ImageSource::File { .. } => UNKNOWN_IMAGE_TOKENS,
        },
        ContentBlock::Document(document) => match &document.source {
            DocumentSource::Text { data } => estimate_text(data),
            // A PDF page costs roughly 1,500–3,000 tokens; without pages, bytes are the guide.
            DocumentSource::Base64 { data, .. } => (data.len() as u64 / 4 * 3) / 100 + 1,
            _ => 10,
        },
        ContentBlock::ToolUse { name, input, .. } => {
            estimate_text(name) + estimate_text(&input.to_string())
        }
        ContentBlock::ToolResult { content, .. } => match content {
            None => 1,
            Some(ToolResultContent::Text(text)) => estimate_text(text),
            Some(ToolResultContent::Blocks(blocks)) => blocks.iter().map(estimate_block).sum(),
        },
        ContentBlock::Thinking { thinking } => estimate_text(thinking),
        ContentBlock::SearchResult(result) => {
            estimate_text(&result.title)
                + estimate_text(&result.source)
                + result
                    .content
                    .iter()
                    .map(|part| estimate_text(&part.text))
                    .sum::<u64>()
        }
        ContentBlock::RedactedThinking {} | ContentBlock::ServerTool(_) => 0,
    }
}

/// Output tokens of a response's content; never zero, because clients treat 0 as "unknown".
pub fn estimate_output(blocks: &[ResponseBlock]) -> u64 {
    let tokens: u64 = blocks
        .iter()
        .map(|block| match block {
            ResponseBlock::Text { text } => estimate_text(text),
            ResponseBlock::ToolUse { name, input, .. } => {
                estimate_text(name) + estimate_text(&input.to_string()) + 10
            }
        })
        .sum();
    tokens.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::parse_messages_request;

    #[test]
    fn text_estimates_follow_word_and_symbol_counts() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("hello"), 1);
        assert_eq!(estimate_text("hello world"), 2);
        assert_eq!(estimate_text("internationalization"), 4);
        assert_eq!(estimate_text("a, b."), 4);
        assert_eq!(estimate_text("日本語"), 3);
        // English prose lands near the usual ~4 characters per token.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let ratio = prose.len() as f64 / estimate_text(&prose) as f64;
        assert!((3.0..=5.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn images_use_their_dimensions() {
        assert_eq!(image_tokens(1000, 1000), 1334);
        assert_eq!(image_tokens(200, 200), 54);
        // Large images are scaled down first, so they cost the cap (~1,533 at 1.15 MP).
        assert!((1500..=1600).contains(&image_tokens(4000, 3000)));
        // A 1×1 PNG.
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
        assert_eq!(estimate_image(png), 1);
        assert_eq!(estimate_image("AAAA"), UNKNOWN_IMAGE_TOKENS);
    }

    #[test]
    fn requests_count_system_messages_and_tools() {
        let plain = parse_messages_request(
            br#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hello world"}]}"#,
            true,
        )
        .unwrap();
        let base = estimate_request(&plain);
        assert_eq!(base, PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + 2);
        let with_extras = parse_messages_request(
            br#"{"model":"m","max_tokens":1,"system":"be kind",
                "tools":[{"name":"lookup","description":"find things","input_schema":{"type":"object"}}],
                "messages":[{"role":"user","content":"hello world"}]}"#,
            true,
        )
        .unwrap();
        let tools = crate::convert::to_sampling::offered_tools(&with_extras);
        let prompt = crate::convert::tool_emulation::tool_prompt(&tools, None).unwrap();
        assert_eq!(
            estimate_request(&with_extras),
            base + estimate_text("be kind") + estimate_text(&prompt)
        );
        assert!(estimate_text(&prompt) > 100, "the prompt is counted whole");
    }

    #[test]
    fn output_is_never_zero() {
        assert_eq!(estimate_output(&[]), 1);
        assert_eq!(
            estimate_output(&[ResponseBlock::Text {
                text: "two words".into()
            }]),
            2
        );
    }
}
