//! How many messages and content blocks one request may hold.
//!
//! A body's bytes are bounded (`--max-body-bytes`) and counted while they arrive, but parsed
//! they take more: each block is a struct and an allocation, so a 31 MB body of 1.2 million
//! tiny blocks peaked at 291 MB (9× its size), and a handful at once took gigabytes. Counting
//! while parsing stops such a body at the bound, before its blocks take memory; past the
//! bound the request is refused (400) with the path where it was reached.
//!
//! Messages: the Messages API's own bound (100,000 per request). Content blocks, all lists
//! together (messages, `tool_result` contents, `system`, OpenAI content parts): 200,000, far
//! more than a context window holds, and with it the parsed form of the largest body stays
//! within a few times its size.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// Messages one request may hold (the Messages API's bound).
pub const MAX_MESSAGES: usize = 100_000;
/// Content blocks one request may hold, in all its lists together.
pub const MAX_CONTENT_BLOCKS: usize = 200_000;

thread_local! {
    /// Blocks the request being parsed on this thread may still hold; unbounded outside a
    /// parse (a request's blocks are only ever parsed inside [`counting_blocks`]).
    static BLOCKS_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Runs one request's parse with the block bound armed.
pub(crate) fn counting_blocks<R>(parse: impl FnOnce() -> R) -> R {
    struct Disarm(usize);
    impl Drop for Disarm {
        fn drop(&mut self) {
            BLOCKS_LEFT.set(self.0);
        }
    }
    // Kept and put back, so a parse nested in another (none today) cannot lift the outer bound.
    let _disarm = Disarm(BLOCKS_LEFT.replace(MAX_CONTENT_BLOCKS));
    parse()
}

/// Counts one parsed block; an error once the request holds more than the bound.
pub(crate) fn take_block() -> Result<(), String> {
    let left = BLOCKS_LEFT.get();
    if left == 0 {
        return Err(format!(
            "too many content blocks: the bridge takes at most {MAX_CONTENT_BLOCKS} in one request"
        ));
    }
    BLOCKS_LEFT.set(left - 1);
    Ok(())
}

/// `messages`, refused past [`MAX_MESSAGES`] as soon as the next one starts.
pub(crate) fn messages<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of messages")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut messages = Vec::new();
            while let Some(message) = seq.next_element::<T>()? {
                if messages.len() == MAX_MESSAGES {
                    return Err(serde::de::Error::custom(format!(
                        "too many messages: at most {MAX_MESSAGES} in one request"
                    )));
                }
                messages.push(message);
            }
            Ok(messages)
        }
    }
    deserializer.deserialize_seq(Bounded(PhantomData))
}

#[cfg(test)]
mod tests {
    use crate::api::anthropic::parse_messages_request;
    use crate::api::openai::parse_chat_request;

    use super::*;

    fn blocks_body(blocks: usize, messages: usize) -> String {
        let block = r#"{"type":"text","text":"a"}"#;
        let content = vec![block; blocks].join(",");
        let message = format!(r#"{{"role":"user","content":[{content}]}}"#);
        let messages = vec![message.as_str(); messages].join(",");
        format!(r#"{{"model":"m","max_tokens":1,"messages":[{messages}]}}"#)
    }

    #[test]
    fn blocks_are_counted_over_all_lists_of_a_request() {
        // At the bound, in one list or spread over many: accepted.
        assert!(
            parse_messages_request(blocks_body(MAX_CONTENT_BLOCKS, 1).as_bytes(), true).is_ok()
        );
        assert!(
            parse_messages_request(blocks_body(2, MAX_CONTENT_BLOCKS / 2).as_bytes(), true).is_ok()
        );
        // One more: a 400 naming the bound and where it was reached.
        for body in [
            blocks_body(MAX_CONTENT_BLOCKS + 1, 1),
            blocks_body(2, MAX_CONTENT_BLOCKS / 2 + 1),
        ] {
            let err = parse_messages_request(body.as_bytes(), true).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(
                err.message.contains("too many content blocks"),
                "{}",
                err.message
            );
            assert!(err.message.starts_with("messages."), "{}", err.message);
        }
        // The bound is per request: the next parse on this thread starts afresh.
        assert!(
            parse_messages_request(blocks_body(MAX_CONTENT_BLOCKS, 1).as_bytes(), true).is_ok()
        );
    }

    #[test]
    fn messages_past_the_apis_bound_are_refused() {
        let one = r#"{"role":"user","content":"a"}"#;
        let body = |count: usize| {
            format!(
                r#"{{"model":"m","max_tokens":1,"messages":[{}]}}"#,
                vec![one; count].join(",")
            )
        };
        assert!(parse_messages_request(body(MAX_MESSAGES).as_bytes(), true).is_ok());
        let err = parse_messages_request(body(MAX_MESSAGES + 1).as_bytes(), true).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.contains("too many messages"), "{}", err.message);
    }

    #[test]
    fn openai_parts_count_too() {
        let part = r#"{"type":"text","text":"a"}"#;
        let body = |count: usize| {
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{}]}}]}}"#,
                vec![part; count].join(",")
            )
        };
        assert!(parse_chat_request(body(MAX_CONTENT_BLOCKS).as_bytes()).is_ok());
        let err = parse_chat_request(body(MAX_CONTENT_BLOCKS + 1).as_bytes()).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.message.contains("too many content blocks"),
            "{}",
            err.message
        );
        // A plain string is still content.
        let text = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert!(parse_chat_request(text.as_bytes()).is_ok());
    }
}
