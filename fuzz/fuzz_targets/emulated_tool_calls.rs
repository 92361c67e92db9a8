//! Any text as an answer to a request with emulated tools: the parser that turns
//! `<tool_call>` blocks into `tool_use` blocks must return, never panic, and keep its promises:
//! no more calls than the cap, only to tools the call may name, text that is never longer than
//! the answer, and an answer without a made call returned unchanged. The first byte picks the
//! cap, `tool_choice` (one tool or all) and whether the answer arrives in several text blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::api::anthropic::ResponseBlock;
use sampling2api_core::convert::tool_emulation::EmulatedTools;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let names: &[&str] = if knobs & 1 == 0 { &["get", "put"] } else { &["get"] };
    let mut tools = EmulatedTools::new(names.iter().copied());
    tools.max_calls = usize::from(knobs >> 4);
    tools.single_call = knobs & 2 != 0;
    let pieces: Vec<String> = if knobs & 4 != 0 {
        // Split at every newline, as a client that sends one block per line.
        text.split_inclusive('\n').map(str::to_string).collect()
    } else {
        vec![text.clone()]
    };
    let mut parser = tools.parser();
    let mut next_id = 0u32;
    let mut fresh_id = || {
        next_id += 1;
        format!("toolu_{next_id}")
    };
    let mut calls = 0;
    let mut text_bytes = 0;
    for piece in &pieces {
        let blocks = parser.parse(piece.clone(), &mut fresh_id);
        let mut made_here = 0;
        for block in &blocks {
            match block {
                ResponseBlock::ToolUse { name, .. } => {
                    assert!(names.contains(&name.as_str()), "a call to {name}");
                    made_here += 1;
                }
                ResponseBlock::Text { text } => text_bytes += text.len(),
            }
        }
        if made_here == 0 {
            assert_eq!(blocks.len(), 1);
            assert!(matches!(&blocks[0], ResponseBlock::Text { text } if text == piece));
        }
        calls += made_here;
    }
    let limit = if tools.single_call { tools.max_calls.min(1) } else { tools.max_calls };
    assert!(calls <= limit, "{calls} calls over a limit of {limit}");
    assert!(text_bytes <= text.len());
});
