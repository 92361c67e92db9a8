//! Validation, conversion and token counting stay linear in the body: a body of the worst
//! shapes we know (everything a check could compare against everything else) is handled
//! quickly. A 16 MB tool history once took 139 s of CPU in a quadratic check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::openai::{parse_chat_request, to_messages_request};
use sampling2api_core::api::request_bounds::MAX_MESSAGES;
use sampling2api_core::convert::to_sampling::into_create_message_params;
use sampling2api_core::convert::tokens::estimate_request;
use sampling2api_core::convert::tool_emulation::ToolMode;
use sampling2api_core::mcp::sampling::ClientSupport;

/// Bodies of about this size: big enough that quadratic work takes minutes even in release,
/// small enough for a debug build to parse in well under the bound.
const BODY_BYTES: usize = 4 << 20;
/// What one body may take, parse to conversion, in a debug build on a loaded machine; the
/// quadratic check took 5.6 s here on this 4 MB body in a debug build, the linear one 0.2 s.
const BOUND: Duration = Duration::from_secs(2);

/// `[{"role":"assistant","content":[n tool_use]}, {"role":"user","content":[n tool_result]}]`,
/// the results answering the uses in reverse order, so a scan per result finds its use last.
fn tool_history(bytes: usize) -> String {
    let count = bytes / 110;
    let uses: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"type":"tool_use","id":"toolu_{i:08}","name":"t","input":{{}}}}"#))
        .collect();
    let results: Vec<String> = (0..count)
        .rev()
        .map(|i| format!(r#"{{"type":"tool_result","tool_use_id":"toolu_{i:08}"}}"#))
        .collect();
    format!(
        r#"{{"model":"m","max_tokens":5,"tools":[{{"name":"t","input_schema":{{"type":"object"}}}}],"messages":[{{"role":"user","content":"go"}},{{"role":"assistant","content":[{}]}},{{"role":"user","content":[{}]}}]}}"#,
        uses.join(","),
        results.join(",")
    )
}

/// Many short turns of alternating roles with a system note between them: merging and
/// path-building per message (as many as the API takes).
fn many_turns(bytes: usize) -> String {
    let count = (bytes / 40).min(MAX_MESSAGES);
    let turns: Vec<&str> = (0..count)
        .map(|i| match i % 3 {
            0 => r#"{"role":"user","content":"a"}"#,
            1 => r#"{"role":"system","content":"b"}"#,
            _ => r#"{"role":"assistant","content":"c"}"#,
        })
        .collect();
    format!(
        r#"{{"model":"m","max_tokens":5,"messages":[{}]}}"#,
        turns.join(",")
    )
}

/// Many tools, the chosen one last.
fn many_tools(bytes: usize) -> String {
    let count = bytes / 50;
    let tools: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"name":"tool_{i}","input_schema":{{}}}}"#))
        .collect();
    format!(
        r#"{{"model":"m","max_tokens":5,"tools":[{}],"tool_choice":{{"type":"tool","name":"tool_{}"}},"messages":[{{"role":"user","content":"x"}}]}}"#,
        tools.join(","),
        count - 1
    )
}

/// The OpenAI shape of the tool history: one assistant message with n calls, then n `tool`
/// messages (merged into one user turn).
fn openai_tool_history(bytes: usize) -> String {
    let count = bytes / 160;
    let calls: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"id":"call_{i:08}","type":"function","function":{{"name":"t","arguments":"{{}}"}}}}"#))
        .collect();
    let results: Vec<String> = (0..count)
        .rev()
        .map(|i| format!(r#"{{"role":"tool","tool_call_id":"call_{i:08}","content":"r"}}"#))
        .collect();
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"go"}},{{"role":"assistant","content":null,"tool_calls":[{}]}},{}]}}"#,
        calls.join(","),
        results.join(",")
    )
}

fn handle_anthropic(body: &str) {
    let request = parse_messages_request(body.as_bytes(), true).expect("a valid request");
    assert!(estimate_request(&request) > 0);
    into_create_message_params(request, ClientSupport::FULL, ToolMode::Native, Vec::new())
        .expect("convertible");
}

/// The same, with the tools and the history rendered into the prompt (tool emulation).
fn handle_anthropic_emulated(body: &str) {
    let request = parse_messages_request(body.as_bytes(), true).expect("a valid request");
    assert!(estimate_request(&request) > 0);
    into_create_message_params(request, ClientSupport::FULL, ToolMode::Emulate, Vec::new())
        .expect("convertible");
}

fn handle_openai(body: &str) {
    let chat = parse_chat_request(body.as_bytes()).expect("a valid chat request");
    let request = to_messages_request(chat).expect("a valid history");
    assert!(estimate_request(&request) > 0);
    into_create_message_params(request, ClientSupport::FULL, ToolMode::Native, Vec::new())
        .expect("convertible");
}

fn assert_quick(name: &str, body: &str, handle: fn(&str)) {
    assert!(body.len() >= BODY_BYTES / 2, "{name}: {} bytes", body.len());
    let started = Instant::now();
    handle(body);
    let took = started.elapsed();
    assert!(took < BOUND, "{name}: {} bytes took {took:?}", body.len());
}

#[test]
fn worst_shaped_bodies_are_handled_in_linear_time() {
    assert_quick("tool history", &tool_history(BODY_BYTES), handle_anthropic);
    assert_quick("many turns", &many_turns(BODY_BYTES), handle_anthropic);
    assert_quick("many tools", &many_tools(BODY_BYTES), handle_anthropic);
    assert_quick(
        "tool history, emulated",
        &tool_history(BODY_BYTES),
        handle_anthropic_emulated,
    );
    assert_quick(
        "many tools, emulated",
        &many_tools(BODY_BYTES),
        handle_anthropic_emulated,
    );
    assert_quick(
        "openai tool history",
        &openai_tool_history(BODY_BYTES),
        handle_openai,
    );
}

#[test]
fn an_unanswered_tool_result_in_a_long_history_is_still_refused() {
    let body = tool_history(64 << 10).replace("toolu_00000000\"}", "toolu_missing\"}");
    let err = parse_messages_request(body.as_bytes(), true).unwrap_err();
    assert!(err.message.contains("toolu_missing"), "{}", err.message);
}
