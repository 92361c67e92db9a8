//! Converting a client's answer stays linear in its size: answers of the worst shapes we know
//! cost about k times as much when they are k times as large, and the structured-output search
//! costs no more with many false starts than with one. (Issue #19: one `<tool_call>` followed
//! by 20,000 small text blocks cost 20 s of CPU; a 16 MB structured answer was re-parsed from
//! 64 starting points.)
//!
//! Not a timed test: no bound on how long anything takes. Each shape is converted at two sizes
//! and the costs compared; the cost is this thread's CPU time (so time spent waiting for a busy
//! CPU does not count; wall time where there is no such clock), the least of several runs. Linear work
//! grows 8× from one size to the other, quadratic 64×; the test fails above 24×.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sampling2api_core::api::anthropic::ResponseBlock;
use sampling2api_core::convert::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::convert::to_sampling::AnswerPlan;
use sampling2api_core::convert::tool_emulation::EmulatedTools;
use sampling2api_core::mcp::sampling::{CreateMessageResult, SamplingContent, SamplingRole};

const GROWTH: usize = 8;
/// Linear: about 8 (a little more when the larger input leaves the caches); quadratic: 64.
const MAX_RATIO: f64 = 24.0;
const RUNS: usize = 5;

/// This thread's CPU time so far (wall time where there is no such clock).
fn cpu_time() -> Duration {
    #[cfg(unix)]
    if let Ok(time) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
        return Duration::from(time);
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// The CPU time `work` took.
fn cost(work: &dyn Fn()) -> Duration {
    let before = cpu_time();
    work();
    cpu_time() - before
}

/// Whether `large` costs less than `max_ratio` times `small`: the least of a few runs of
/// `small` against runs of `large` until one is under the bound (a busy machine slows single
/// runs; it does not make every run slow). Prints the costs.
fn grows_less_than(name: &str, max_ratio: f64, small: &dyn Fn(), large: &dyn Fn()) -> bool {
    let small_cost = (0..RUNS).map(|_| cost(small)).min().unwrap();
    let mut large_costs = Vec::new();
    for _ in 0..RUNS {
        let large_cost = cost(large);
        large_costs.push(large_cost);
        let ratio = large_cost.as_secs_f64() / small_cost.as_secs_f64().max(1e-6);
        if ratio < max_ratio {
            println!("{name}: {small_cost:?} → {large_cost:?} ({ratio:.1}×)");
            return true;
        }
    }
    println!("{name}: {small_cost:?} → {large_costs:?}, over {max_ratio}× each time");
    false
}

fn text(text: String) -> SamplingContent {
    SamplingContent::Text { text }
}

fn result(content: Vec<SamplingContent>) -> CreateMessageResult {
    CreateMessageResult {
        role: SamplingRole::Assistant,
        content,
        model: Some("m".into()),
        stop_reason: None,
        usage: None,
    }
}

fn emulated() -> AnswerPlan {
    AnswerPlan {
        emulated_tools: Some(EmulatedTools::new(["get"])),
        structured_output: false,
        ..AnswerPlan::default()
    }
}

/// Emulated, with no bound on calls: the work per call shows.
fn emulated_unbounded() -> AnswerPlan {
    let mut plan = emulated();
    plan.set_max_tool_calls(usize::MAX);
    plan
}

fn structured() -> AnswerPlan {
    AnswerPlan {
        emulated_tools: None,
        structured_output: true,
        ..AnswerPlan::default()
    }
}

fn convert(plan: &AnswerPlan, content: &[SamplingContent]) -> Vec<ResponseBlock> {
    to_messages_response(
        result(content.to_vec()),
        ResponseContext {
            message_id: "msg_x".into(),
            requested_model: "m",
            estimated_input_tokens: 1,
            plan: plan.clone(),
        },
        || "toolu_x".into(),
    )
    .unwrap()
    .content
}

/// Converts the shape `build` makes at `n` and at 8 `n` units; fails if the cost grew by more
/// than [`MAX_RATIO`].
fn assert_linear(name: &str, plan: AnswerPlan, n: usize, build: fn(usize) -> Vec<SamplingContent>) {
    let small = build(n);
    let large = build(n * GROWTH);
    let convert_small = || {
        convert(&plan, &small);
    };
    let convert_large = || {
        convert(&plan, &large);
    };
    assert!(
        grows_less_than(name, MAX_RATIO, &convert_small, &convert_large),
        "{name}: {GROWTH}× the input cost more than {MAX_RATIO}× the CPU"
    );
}

/// Issue #19's shape: a text block opening a call, then `n` small blocks, each holding near
/// misses of both tags.
fn open_call_then_blocks(n: usize) -> Vec<SamplingContent> {
    let mut content = vec![text("<tool_call>".into())];
    content.extend((0..n).map(|_| text("</tool_cal <tool_cal </tool_cal <tool_cal".into())));
    content
}

/// Blocks whose JSON reads run on past the next tag: the second tag sits in the first block's
/// key, and the text after it is valid JSON read either way (two reads of it at most, see
/// `read_block`).
fn overlapping_json(n: usize) -> Vec<SamplingContent> {
    vec![text(
        ("<tool_call>{\"a<tool_call>{\"".to_string() + &":\":\",\",\"".repeat(16)).repeat(n),
    )]
}

/// Tags with no JSON after them and one `</tool_call>` at the very end: every block would look
/// for it.
fn tags_before_one_close(n: usize) -> Vec<SamplingContent> {
    vec![text("<tool_call>```x".repeat(n) + "```</tool_call>")]
}

/// One line of calls between code spans: the spans after each call must not be found again.
fn calls_between_code_spans(n: usize) -> Vec<SamplingContent> {
    vec![text(
        "`x` <tool_call>{\"name\":\"get\",\"arguments\":{\"q\":\"`\"}}</tool_call> `` ` <tool_call> `` ".repeat(n),
    )]
}

/// Many fences and block quotes, each line with a tag, between calls.
fn fences_and_quotes(n: usize) -> Vec<SamplingContent> {
    vec![text(
        "```\n<tool_call>\n```\n> <tool_call>\n<tool_call>{\"name\":\"get\"}</tool_call>\n"
            .repeat(n),
    )]
}

/// Calls beyond the limit.
fn many_calls(n: usize) -> Vec<SamplingContent> {
    vec![text(
        "<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>\n".repeat(n),
    )]
}

/// A structured answer of about `bytes` whose first `starts` brackets each start a value that
/// fails at the end (an open array of numbers).
fn failing_starts(bytes: usize, starts: usize) -> Vec<SamplingContent> {
    vec![text(format!(
        "Here: {}{}",
        "[".repeat(starts),
        "1,".repeat(bytes / 2)
    ))]
}

#[test]
fn emulated_answers_of_the_worst_shapes_convert_in_linear_time() {
    let (emulated, unbounded) = (emulated(), emulated_unbounded());
    assert_linear(
        "open call, then blocks",
        emulated.clone(),
        500,
        open_call_then_blocks,
    );
    assert_linear("overlapping JSON", emulated.clone(), 200, overlapping_json);
    assert_linear(
        "tags before one close",
        emulated.clone(),
        1_000,
        tags_before_one_close,
    );
    assert_linear(
        "calls between code spans",
        unbounded.clone(),
        500,
        calls_between_code_spans,
    );
    assert_linear(
        "fences and quotes",
        unbounded.clone(),
        500,
        fences_and_quotes,
    );
    assert_linear("many calls", unbounded, 500, many_calls);
    assert_linear("many calls, capped", emulated, 2_000, many_calls);
}

#[test]
fn structured_answers_convert_in_linear_time() {
    assert_linear("structured, one failing start", structured(), 50_000, |n| {
        failing_starts(n, 1)
    });
    assert_linear("structured, brackets", structured(), 2_000, |n| {
        vec![text(format!("Here: {}", "[1,".repeat(n)))]
    });
    // Many false starts cost about what one does.
    let bytes = 256 << 10;
    let (one, many, plan) = (
        failing_starts(bytes, 1),
        failing_starts(bytes, 64),
        structured(),
    );
    let convert_one = || {
        convert(&plan, &one);
    };
    let convert_many = || {
        convert(&plan, &many);
    };
    assert!(
        grows_less_than("64 failing starts vs one", 4.0, &convert_one, &convert_many),
        "64 false starts cost more than 4× one"
    );
}

#[test]
fn calls_past_the_limit_stay_one_text() {
    let blocks = convert(&emulated(), &many_calls(100_000));
    let calls = blocks
        .iter()
        .filter(|block| matches!(block, ResponseBlock::ToolUse { .. }))
        .count();
    assert_eq!(calls, 128);
    assert_eq!(blocks.len(), 129, "the rest is one text block");
}
