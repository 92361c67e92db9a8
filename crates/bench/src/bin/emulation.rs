//! `emulation`: what tool emulation costs, in-process (no bridge, no client).
//!
//! - The tool prompt's size in (estimated) tokens for 20 tools shaped like Claude Code's (own
//!   names and schemas of the same kinds, descriptions of similar lengths), and how much of it
//!   is the convention's fixed text.
//! - The conversion time (parse + convert) of a ~200 KB Claude Code-shaped body, with native
//!   tools and with emulated ones, and the time to parse an answer with two calls back.
//! - The answer side at size: a ~1 MB Markdown answer (prose, code fences, inline code) with two
//!   calls at its end, and the worst shapes of issue #19 (one `<tool_call>` followed by many
//!   small text blocks; a 16 MB structured answer whose braces all start values that fail at
//!   its end; 100,000 calls in one answer), each converted once.
//!
//! Run: `cargo run --release -p sampling2api-bench --bin emulation`

use std::time::{Duration, Instant};

use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::convert::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::convert::to_sampling::{
    AnswerPlan, into_create_message_params, offered_tools,
};
use sampling2api_core::convert::tokens::estimate_text;
use sampling2api_core::convert::tool_emulation::{ToolMode, tool_prompt};
use sampling2api_core::mcp::sampling::ClientSupport;
use sampling2api_core::mcp::sampling::CreateMessageResult;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A guidance sentence repeated to give a description the length of its real counterpart.
const GUIDANCE: &str = "Prefer this tool over shell commands for the same job, explain briefly what you are about to do, and check the result before you continue. ";

fn tool(
    name: &str,
    summary: &str,
    guidance_sentences: usize,
    properties: Value,
    required: &[&str],
) -> Value {
    json!({
        "name": name,
        "description": format!("{summary}\n\n{}", GUIDANCE.repeat(guidance_sentences)),
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        },
        "strict": true,
        "defer_loading": false
    })
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// Twenty tools of the kinds a coding agent offers, with descriptions from ~0.3 to ~6 KB.
fn coding_agent_tools() -> Vec<Value> {
    vec![
        tool(
            "Task",
            "Start a sub-agent for a multi-step task.",
            20,
            json!({"description": string("Short task title"), "prompt": string("The task"), "subagent_type": string("Agent kind")}),
            &["description", "prompt", "subagent_type"],
        ),
        tool(
            "Bash",
            "Run a shell command with an optional timeout.",
            40,
            json!({"command": string("The command"), "timeout": {"type": "number", "description": "Milliseconds"}, "description": string("What it does"), "run_in_background": {"type": "boolean"}}),
            &["command"],
        ),
        tool(
            "Glob",
            "Find files by glob pattern.",
            4,
            json!({"pattern": string("Glob"), "path": string("Directory")}),
            &["pattern"],
        ),
        tool(
            "Grep",
            "Search file contents with a regular expression.",
            12,
            json!({"pattern": string("Regex"), "path": string("File or directory"), "glob": string("Filter"), "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]}, "-i": {"type": "boolean"}, "-n": {"type": "boolean"}, "head_limit": {"type": "number"}, "multiline": {"type": "boolean"}}),
            &["pattern"],
        ),
        tool(
            "ExitPlanMode",
            "Leave planning mode with a plan for approval.",
            6,
            json!({"plan": string("The plan")}),
            &["plan"],
        ),
        tool(
            "Read",
            "Read a file, optionally a line range.",
            10,
            json!({"file_path": string("Absolute path"), "offset": {"type": "number"}, "limit": {"type": "number"}}),
            &["file_path"],
        ),
        tool(
            "Edit",
            "Replace exact text in a file.",
            9,
            json!({"file_path": string("Absolute path"), "old_string": string("Text to replace"), "new_string": string("Replacement"), "replace_all": {"type": "boolean", "default": false}}),
            &["file_path", "old_string", "new_string"],
        ),
        tool(
            "Write",
            "Write a whole file.",
            6,
            json!({"file_path": string("Absolute path"), "content": string("File content")}),
            &["file_path", "content"],
        ),
        tool(
            "NotebookEdit",
            "Edit a cell of a Jupyter notebook.",
            5,
            json!({"notebook_path": string("Path"), "cell_id": string("Cell"), "new_source": string("Source"), "cell_type": {"type": "string", "enum": ["code", "markdown"]}, "edit_mode": {"type": "string", "enum": ["replace", "insert", "delete"]}}),
            &["notebook_path", "new_source"],
        ),
        tool(
            "WebFetch",
            "Fetch a URL and answer a question about its content.",
            8,
            json!({"url": {"type": "string", "format": "uri"}, "prompt": string("What to extract")}),
            &["url", "prompt"],
        ),
        tool(
            "TodoWrite",
            "Maintain the session's task list.",
            30,
            json!({"todos": {"type": "array", "items": {"type": "object", "properties": {"content": {"type": "string", "minLength": 1}, "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}, "activeForm": {"type": "string"}}, "required": ["content", "status", "activeForm"]}}}),
            &["todos"],
        ),
        tool(
            "WebSearch",
            "Search the web.",
            6,
            json!({"query": {"type": "string", "minLength": 2}, "allowed_domains": {"type": "array", "items": {"type": "string"}}, "blocked_domains": {"type": "array", "items": {"type": "string"}}}),
            &["query"],
        ),
        tool(
            "BashOutput",
            "Read new output of a background shell.",
            3,
            json!({"bash_id": string("Shell id"), "filter": string("Regex")}),
            &["bash_id"],
        ),
        tool(
            "KillShell",
            "Stop a background shell.",
            2,
            json!({"shell_id": string("Shell id")}),
            &["shell_id"],
        ),
        tool(
            "SlashCommand",
            "Run a custom slash command.",
            5,
            json!({"command": string("The command with arguments")}),
            &["command"],
        ),
        tool(
            "Skill",
            "Load a skill's instructions.",
            6,
            json!({"skill": string("Skill name")}),
            &["skill"],
        ),
        tool(
            "AskUserQuestion",
            "Ask the user a multiple-choice question.",
            8,
            json!({"questions": {"type": "array", "items": {"type": "object", "properties": {"question": {"type": "string"}, "header": {"type": "string"}, "options": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}, "description": {"type": "string"}}}}, "multiSelect": {"type": "boolean"}}}}}),
            &["questions"],
        ),
        tool(
            "EnterPlanMode",
            "Switch to planning mode.",
            4,
            json!({}),
            &[],
        ),
        tool(
            "ListMcpResources",
            "List resources of connected MCP servers.",
            2,
            json!({"server": string("Server name")}),
            &[],
        ),
        tool(
            "ReadMcpResource",
            "Read a resource of an MCP server.",
            2,
            json!({"server": string("Server"), "uri": string("Resource URI")}),
            &["server", "uri"],
        ),
    ]
}

/// A Claude Code-shaped body of about `target_bytes`: three system blocks, the tools, and a
/// history of Read calls whose results hold file text.
fn claude_code_body(tools: &[Value], target_bytes: usize) -> Result<Vec<u8>, BoxError> {
    let file_text = "fn example(value: u32) -> u32 {\n    // keeps the value in range\n    value.saturating_mul(2).min(1_000)\n}\n".repeat(40);
    let mut messages = vec![
        json!({"role": "user", "content": [{"type": "text", "text": "Look at the code and fix the bug."}]}),
    ];
    let mut turn = 0;
    loop {
        let id = format!("toolu_{turn:04}");
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "Reading the next file."},
            {"type": "tool_use", "id": id, "name": "Read", "input": {"file_path": format!("/src/file_{turn}.rs")}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": file_text}
        ]}));
        turn += 1;
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
            "system": [
                {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": GUIDANCE.repeat(60)},
                {"type": "text", "text": "Environment: linux, git repository."}
            ],
            "tools": tools,
            "messages": messages,
            "thinking": {"type": "adaptive"},
            "metadata": {"user_id": "{\"session\":\"bench\"}"}
        });
        let bytes = serde_json::to_vec(&body)?;
        if bytes.len() >= target_bytes {
            return Ok(bytes);
        }
    }
}

/// Median of `runs` timings of `work`.
fn median(
    runs: usize,
    mut work: impl FnMut() -> Result<(), BoxError>,
) -> Result<Duration, BoxError> {
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        work()?;
        timings.push(started.elapsed());
    }
    timings.sort();
    Ok(timings[runs / 2])
}

fn main() -> Result<(), BoxError> {
    let tools = coding_agent_tools();
    let request_with_tools = parse_messages_request(
        &serde_json::to_vec(
            &json!({"model": "m", "max_tokens": 1, "tools": tools, "messages": [{"role": "user", "content": "x"}]}),
        )?,
        true,
    )?;
    let offered = offered_tools(&request_with_tools);
    let prompt = tool_prompt(&offered, None).ok_or("no prompt")?;
    let definitions: u64 = offered
        .iter()
        .map(|tool| {
            estimate_text(&tool.name)
                + tool.description.as_deref().map_or(0, estimate_text)
                + estimate_text(&tool.input_schema.to_string())
        })
        .sum();
    let prompt_tokens = estimate_text(&prompt);
    println!(
        "tool prompt for {} tools: {} bytes, ~{} tokens (tool names, descriptions and schemas alone: ~{} tokens; convention and framing: ~{} tokens)",
        offered.len(),
        prompt.len(),
        prompt_tokens,
        definitions,
        prompt_tokens.saturating_sub(definitions)
    );

    let body = claude_code_body(&tools, 200 * 1024)?;
    let plain = ClientSupport {
        tools: false,
        multi_block_messages: true,
    };
    let runs = 201;
    let native = median(runs, || {
        let request = parse_messages_request(&body, true)?;
        into_create_message_params(request, ClientSupport::FULL, ToolMode::Auto, Vec::new())?;
        Ok(())
    })?;
    let emulated = median(runs, || {
        let request = parse_messages_request(&body, true)?;
        into_create_message_params(request, plain, ToolMode::Auto, Vec::new())?;
        Ok(())
    })?;
    println!(
        "{} KB Claude Code-shaped body, parse + convert (median of {runs}): native tools {:.3} ms, emulated {:.3} ms (+{:.3} ms)",
        body.len() / 1024,
        native.as_secs_f64() * 1000.0,
        emulated.as_secs_f64() * 1000.0,
        (emulated.as_secs_f64() - native.as_secs_f64()) * 1000.0
    );

    let (_, plan) = into_create_message_params(
        parse_messages_request(&body, true)?,
        plain,
        ToolMode::Auto,
        Vec::new(),
    )?;
    let answer = json!({"role": "assistant", "model": "m", "content": {"type": "text", "text":
        "I will read both files.\n<tool_call>{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/src/a.rs\"}}</tool_call>\n<tool_call>{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"saturating\"}}</tool_call>"}});
    let parse_answer = median(runs, || {
        let result =
            CreateMessageResult::from_value(answer.clone()).map_err(|err| err.to_string())?;
        to_messages_response(
            result,
            ResponseContext {
                message_id: "msg_bench".into(),
                requested_model: "m",
                estimated_input_tokens: 1,
                plan: plan.clone(),
            },
            || "toolu_bench".into(),
        )?;
        Ok(())
    })?;
    println!(
        "answer with two calls parsed back (median of {runs}): {:.1} µs",
        parse_answer.as_secs_f64() * 1e6
    );

    let structured = AnswerPlan {
        structured_output: true,
        ..plan.clone()
    };
    let convert = |content: Value, plan: &AnswerPlan| -> Result<Duration, BoxError> {
        let result = CreateMessageResult::from_value(
            json!({"role": "assistant", "model": "m", "content": content}),
        )
        .map_err(|err| err.to_string())?;
        let started = Instant::now();
        to_messages_response(
            result,
            ResponseContext {
                message_id: "msg_bench".into(),
                requested_model: "m",
                estimated_input_tokens: 1,
                plan: plan.clone(),
            },
            || "toolu_bench".into(),
        )?;
        Ok(started.elapsed())
    };
    let markdown = markdown_answer(1 << 20);
    let large_runs = 21;
    let mut timings = (0..large_runs)
        .map(|_| convert(json!({"type": "text", "text": markdown}), &plan))
        .collect::<Result<Vec<_>, _>>()?;
    timings.sort();
    println!(
        "{} KB Markdown answer with two calls at its end (median of {large_runs}): {:.3} ms",
        markdown.len() / 1024,
        timings[large_runs / 2].as_secs_f64() * 1000.0
    );
    for blocks in [5_000, 20_000] {
        let took = convert(open_call_then_blocks(blocks), &plan)?;
        println!(
            "worst shape: `<tool_call>` then {blocks} text blocks: {:.3} ms",
            took.as_secs_f64() * 1000.0
        );
    }
    let took = convert(
        json!({"type": "text", "text": failing_starts(16 << 20)}),
        &structured,
    )?;
    println!(
        "worst shape: 16 MB structured answer, 64 brackets each a value failing at the end: {:.3} ms",
        took.as_secs_f64() * 1000.0
    );
    let calls = "<tool_call>{\"name\": \"Read\", \"arguments\": {}}</tool_call>\n".repeat(100_000);
    let took = convert(json!({"type": "text", "text": calls}), &plan)?;
    println!(
        "worst shape: 100,000 calls in one answer: {:.3} ms",
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// About `bytes` of what a model answers in Markdown: paragraphs with inline code, a fenced
/// block of code, a quote; then two calls.
fn markdown_answer(bytes: usize) -> String {
    let section = "The function `example` keeps its value in range; `saturating_mul` never wraps.\n\n\
                   ```rust\nfn example(value: u32) -> u32 {\n    value.saturating_mul(2).min(1_000)\n}\n```\n\n\
                   > Note: the bound is inclusive.\n\n";
    let mut text = section.repeat(bytes / section.len());
    text.push_str("<tool_call>{\"name\": \"Read\", \"arguments\": {\"file_path\": \"/src/a.rs\"}}</tool_call>\n");
    text.push_str(
        "<tool_call>{\"name\": \"Grep\", \"arguments\": {\"pattern\": \"saturating\"}}</tool_call>",
    );
    text
}

/// One text block opening a call, then `blocks` small text blocks (issue #19: 20,000 of them
/// took 20 s).
fn open_call_then_blocks(blocks: usize) -> Value {
    let mut content = vec![json!({"type": "text", "text": "<tool_call>"})];
    // Near misses of both tags make every search for them slow.
    content.extend(
        (0..blocks)
            .map(|_| json!({"type": "text", "text": "</tool_cal <tool_cal </tool_cal <tool_cal"})),
    );
    Value::Array(content)
}

/// Text of about `bytes` whose first 64 brackets each start a value that fails only at the
/// end (an array of numbers left open), as issue #19 built it.
fn failing_starts(bytes: usize) -> String {
    let mut text = "Here: ".to_string();
    text.push_str(&"[".repeat(64));
    text.push_str(&"1,".repeat(bytes / 2));
    text
}
