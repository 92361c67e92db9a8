//! Tool use for MCP clients that cannot take `tools` in a sampling request (VS Code with
//! Copilot, Copilot CLI): the offered tools and a calling convention go into the system prompt,
//! tool history becomes text in the same convention, and the answer's text is parsed back into
//! `tool_use` blocks.
//!
//! The convention is the one open and hosted models are trained on (Hermes/Qwen):
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>` per call, results in
//! `<tool_response>` blocks. Pure functions; `to_sampling` and `from_sampling` call them.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::api::anthropic::{ResponseBlock, ToolChoice};
use crate::convert::fence::strip_fence;
use crate::convert::framing;
use crate::convert::quoting::Quoting;
use crate::mcp::sampling::ClientSupport;
use crate::mcp::sampling::{SamplingContent, SamplingTool};

pub const CALL_OPEN: &str = "<tool_call>";
pub const CALL_CLOSE: &str = "</tool_call>";

/// How a bridge carries tools to its clients (`--tools`, worker var `TOOLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolMode {
    /// Native for clients that declared `sampling.tools`, emulated for the others.
    #[default]
    Auto,
    /// Always native: a client without `sampling.tools` gets no tool requests (400).
    Native,
    /// Always in the prompt, whatever the client declared.
    Emulate,
}

impl ToolMode {
    pub fn parse(text: &str) -> Result<ToolMode, String> {
        match text.trim() {
            "auto" => Ok(ToolMode::Auto),
            "native" => Ok(ToolMode::Native),
            "emulate" => Ok(ToolMode::Emulate),
            other => Err(format!(
                "`{other}`: expected auto, native or emulate as the tool mode"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ToolMode::Auto => "auto",
            ToolMode::Native => "native",
            ToolMode::Emulate => "emulate",
        }
    }

    /// What a client with `support` gets under this mode.
    pub fn delivery(self, support: ClientSupport) -> ToolDelivery {
        match self {
            ToolMode::Native => ToolDelivery::Native,
            ToolMode::Emulate => ToolDelivery::Emulated,
            ToolMode::Auto if support.tools => ToolDelivery::Native,
            ToolMode::Auto => ToolDelivery::Emulated,
        }
    }
}

/// How one client's requests carry tools; `GET /sessions` shows it as `tools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolDelivery {
    Native,
    Emulated,
}

impl ToolDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolDelivery::Native => "native",
            ToolDelivery::Emulated => "emulated",
        }
    }
}

/// The system-prompt section that offers `tools`, or `None` when there is nothing to offer
/// (no tools, or `tool_choice: none`).
pub fn tool_prompt(tools: &[SamplingTool], choice: Option<&ToolChoice>) -> Option<String> {
    if tools.is_empty() || matches!(choice, Some(ToolChoice::None {})) {
        return None;
    }
    let mut prompt = String::from("# Tools\n\nYou can call these tools:\n<tools>\n");
    for tool in tools {
        // Written by hand so the keys keep this order (serde_json's map sorts them).
        let mut line = String::from("{\"name\":");
        line.push_str(&json_string(&tool.name));
        if let Some(description) = tool.description.as_deref().filter(|d| !d.is_empty()) {
            line.push_str(",\"description\":");
            line.push_str(&json_string(description));
        }
        line.push_str(",\"input_schema\":");
        line.push_str(&tool.input_schema.to_string());
        line.push('}');
        // A description holding `</tools>` must not end the list.
        prompt.push_str(&framing::escape_json(line));
        prompt.push('\n');
    }
    prompt.push_str(
        "</tools>\n\n\
         To call a tool, write a tool call block whose arguments are a JSON object matching the tool's input_schema:\n\
         <tool_call>{\"name\": \"tool_name\", \"arguments\": {\"argument\": \"value\"}}</tool_call>\n\n\
         - You may write text before your tool calls. Write one block per call; several blocks make several calls.\n\
         - End your response after the last block: the results arrive in the next turn as <tool_response> blocks. Never write a <tool_response> yourself.",
    );
    match choice {
        Some(ToolChoice::Any { .. }) => {
            prompt.push_str("\n- You must call at least one tool in this response.");
        }
        Some(ToolChoice::Tool { name, .. }) => {
            prompt.push_str(&format!(
                "\n- You must call the tool `{}` in this response, and no other tool.",
                framing::escape_str(name)
            ));
        }
        _ => {
            prompt.push_str("\n- If no tool is needed, answer normally, without a tool call block.")
        }
    }
    if choice.is_some_and(ToolChoice::disables_parallel_tool_use) {
        prompt.push_str("\n- Call at most one tool in this response.");
    }
    Some(prompt)
}

/// An assistant `tool_use` as the text the model would have written for it. The id rides
/// along so `<tool_response>` blocks can name the call they answer.
pub fn render_call(id: &str, name: &str, input: &Value) -> String {
    let json = format!(
        "{{\"name\": {}, \"arguments\": {input}, \"id\": {}}}",
        json_string(name),
        json_string(id)
    );
    format!("{CALL_OPEN}{}{CALL_CLOSE}", framing::escape_json(json))
}

/// A `tool_result` as a `<tool_response>` block naming its call; `images` are sent as image
/// blocks right after it. `texts` come escaped (`framing::escape`, done when the request's
/// blocks were converted), so none can end the block or open another.
pub fn render_response(
    id: &str,
    name: Option<&str>,
    is_error: bool,
    texts: &[&str],
    images: usize,
) -> String {
    let mut text = format!("<tool_response id=\"{}\"", framing::attribute(id));
    if let Some(name) = name {
        text.push_str(&format!(" name=\"{}\"", framing::attribute(name)));
    }
    if is_error {
        text.push_str(" is_error=\"true\"");
    }
    text.push_str(">\n");
    for part in texts {
        text.push_str(part);
        text.push('\n');
    }
    match images {
        0 => {}
        1 => text.push_str("(1 image follows this block)\n"),
        n => text.push_str(&format!("({n} images follow this block)\n")),
    }
    text.push_str("</tool_response>");
    text
}

/// Rewrites one converted history block for a prompt without native tools: `tool_use` →
/// its `<tool_call>` text, `tool_result` → a `<tool_response>` text block followed by its
/// images. `names` maps the calls seen so far to their tools.
pub fn history_blocks(
    block: SamplingContent,
    names: &mut HashMap<String, String>,
) -> Vec<SamplingContent> {
    match block {
        SamplingContent::ToolUse { id, name, input } => {
            let text = render_call(&id, &name, &input);
            names.insert(id, name);
            vec![SamplingContent::Text { text }]
        }
        SamplingContent::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut texts: Vec<String> = Vec::new();
            let mut attached = Vec::new();
            for part in content {
                match part {
                    SamplingContent::Text { text } => texts.push(text),
                    other => attached.push(other),
                }
            }
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let text = render_response(
                &tool_use_id,
                names.get(&tool_use_id).map(String::as_str),
                is_error.unwrap_or(false),
                &texts,
                attached.len(),
            );
            let mut blocks = Vec::with_capacity(1 + attached.len());
            blocks.push(SamplingContent::Text { text });
            blocks.extend(attached);
            blocks
        }
        other => vec![other],
    }
}

/// Calls one answer may make by default (`--max-emulated-tool-calls`): more than agents make
/// in parallel, few enough that an answer of 100,000 calls is not 100,000 `tool_use` blocks.
pub const DEFAULT_MAX_CALLS: usize = 128;

/// The tools a prompt offered, which decides what the answer's calls may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedTools {
    /// The tools a call may name: those offered, or only the one `tool_choice` names (calls to
    /// the others stay text).
    pub names: BTreeSet<String>,
    /// `disable_parallel_tool_use`: calls after the first stay text.
    pub single_call: bool,
    /// Calls one answer may make; those beyond stay text.
    pub max_calls: usize,
}

impl EmulatedTools {
    /// Calls to any of `names`, as many as the default allows.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        EmulatedTools {
            names: names.into_iter().map(Into::into).collect(),
            single_call: false,
            max_calls: DEFAULT_MAX_CALLS,
        }
    }

    fn call_limit(&self) -> usize {
        if self.single_call {
            self.max_calls.min(1)
        } else {
            self.max_calls
        }
    }

    /// A parser for one answer: the call limit counts over all of its text blocks.
    pub fn parser(&self) -> AnswerParser<'_> {
        AnswerParser {
            tools: self,
            calls: 0,
        }
    }

    /// Splits one text into text and `tool_use` blocks (see [`AnswerParser::parse`]).
    pub fn parse(&self, text: String, fresh_id: &mut impl FnMut() -> String) -> Vec<ResponseBlock> {
        self.parser().parse(text, fresh_id)
    }
}

/// Parses the text blocks of one answer, in order.
pub struct AnswerParser<'a> {
    tools: &'a EmulatedTools,
    calls: usize,
}

impl AnswerParser<'_> {
    /// Splits an answer's text into text and `tool_use` blocks. Only calls the model made
    /// count: a `<tool_call>` inside a code fence, inline code or a block quote is quoted, not
    /// made (see [`crate::convert::quoting`]). Text before, between and after the calls stays
    /// text; a call that names a tool it may not call, whose JSON does not parse, or beyond the
    /// call limit stays in the text as written. Without a call the text is returned unchanged.
    ///
    /// Linear in the text: each `<tool_call>` is looked at once, a block's JSON is read from
    /// its tag (no position is read by more than two blocks' JSON: see `read_block`), and a
    /// block without JSON right after its tag ends at the next tag.
    pub fn parse(
        &mut self,
        text: String,
        fresh_id: &mut impl FnMut() -> String,
    ) -> Vec<ResponseBlock> {
        let limit = self.tools.call_limit();
        if self.calls >= limit || !text.contains(CALL_OPEN) {
            return vec![ResponseBlock::Text { text }];
        }
        let mut blocks = Vec::new();
        let mut quoting = Quoting::new(&text);
        let mut closes = NextMatch::new(CALL_CLOSE);
        let mut tags = memchr::memmem::find_iter(text.as_bytes(), CALL_OPEN.as_bytes()).peekable();
        // Text not yet put in a block starts here; blocks already read end at `resume`.
        let mut text_from = 0;
        let mut resume = 0;
        let mut made = 0;
        while let Some(tag) = tags.next() {
            if self.calls >= limit {
                break;
            }
            if tag < resume || quoting.is_quoted(tag) {
                continue;
            }
            let after = tag + CALL_OPEN.len();
            while tags.next_if(|&next| next < after).is_some() {}
            let next_tag = tags.peek().copied().unwrap_or(text.len());
            let (body, end) = read_block(&text, after, next_tag, &mut closes);
            // The block, made or not, is opaque to the Markdown around it: a fence inside a
            // rejected block opens nothing.
            quoting.skip_to(end);
            resume = end;
            let Some((name, input)) = parse_call(body, |name| self.tools.names.contains(name))
            else {
                continue;
            };
            push_text(&mut blocks, text.get(text_from..tag).unwrap_or_default());
            blocks.push(ResponseBlock::ToolUse {
                id: fresh_id(),
                name,
                input,
            });
            text_from = end;
            self.calls += 1;
            made += 1;
        }
        if made == 0 {
            return vec![ResponseBlock::Text { text }];
        }
        push_text(&mut blocks, text.get(text_from..).unwrap_or_default());
        blocks
    }
}

/// Whether `text` ends inside an open `<tool_call>` block, or in the middle of its tag (its
/// rest is in the next text), given that `text[..from]` did (`was_open`) and that only
/// `text[from..]` is new. Looks at the new part only (and a tag's length before it), so
/// joining many blocks stays linear.
pub fn ends_inside_call(text: &str, from: usize, was_open: bool) -> bool {
    let from = from.saturating_sub(CALL_CLOSE.len() - 1);
    let Some(new) = text.as_bytes().get(from..) else {
        return was_open;
    };
    let open = memchr::memmem::rfind(new, CALL_OPEN.as_bytes());
    let close = memchr::memmem::rfind(new, CALL_CLOSE.as_bytes());
    let inside = match (open, close) {
        (None, None) => was_open,
        (Some(open), close) => close.is_none_or(|close| close < open),
        (None, Some(_)) => false,
    };
    inside || (1..CALL_OPEN.len()).any(|length| new.ends_with(&CALL_OPEN.as_bytes()[..length]))
}

/// The next occurrence of a needle at or after a position, remembered while positions grow, so
/// that many blocks looking for the same far `</tool_call>` find it once.
struct NextMatch {
    needle: &'static str,
    /// The last answer: from this position on, the next occurrence is here (`None`: none).
    known: Option<(usize, Option<usize>)>,
}

impl NextMatch {
    fn new(needle: &'static str) -> Self {
        NextMatch {
            needle,
            known: None,
        }
    }

    fn at_or_after(&mut self, text: &str, from: usize) -> Option<usize> {
        if let Some((searched_from, found)) = self.known
            && searched_from <= from
            && found.is_none_or(|found| found >= from)
        {
            return found;
        }
        let found = text
            .as_bytes()
            .get(from..)
            .and_then(|rest| memchr::memmem::find(rest, self.needle.as_bytes()))
            .map(|offset| from + offset);
        self.known = Some((from, found));
        found
    }
}

/// One block after its tag (`after`): its body and where the block ends.
///
/// A JSON object right after the tag is read whole first, so a `</tool_call>` inside one of its
/// strings does not end the block; then a `</tool_call>` or the end of the text must follow (a
/// model that stops right after the JSON, or at a stop sequence, leaves the block open).
/// Otherwise the body runs to the next `</tool_call>`, but never past the next `<tool_call>`
/// (`next_tag`), so bodies do not overlap.
///
/// Why the JSON reads stay linear: a later block's tag inside this block's JSON must sit in one
/// of its strings (a `<` is invalid anywhere else), and from that block's first quote on, the
/// two reads disagree about which bytes are inside strings; a third tag both read past would
/// have to be inside a string for both. So at most two reads cover any byte.
fn read_block<'t>(
    text: &'t str,
    after: usize,
    next_tag: usize,
    closes: &mut NextMatch,
) -> (&'t str, usize) {
    let rest = text.get(after..).unwrap_or_default();
    let trimmed = rest.trim_start();
    if trimmed.starts_with('{') {
        let json_from = text.len() - trimmed.len();
        let mut values =
            serde_json::Deserializer::from_str(trimmed).into_iter::<serde::de::IgnoredAny>();
        if let Some(Ok(_)) = values.next() {
            let json_end = json_from + values.byte_offset();
            let remainder = text.get(json_end..).unwrap_or_default();
            let after_json = remainder.trim_start();
            let json = text.get(json_from..json_end).unwrap_or_default();
            if after_json.starts_with(CALL_CLOSE) {
                return (json, text.len() - after_json.len() + CALL_CLOSE.len());
            }
            if after_json.is_empty() {
                return (json, text.len());
            }
        }
    }
    let body_end = match closes.at_or_after(text, after) {
        Some(close) if close < next_tag => close,
        _ => next_tag,
    };
    let body = text.get(after..body_end).unwrap_or_default();
    let end = if text
        .get(body_end..)
        .is_some_and(|rest| rest.starts_with(CALL_CLOSE))
    {
        body_end + CALL_CLOSE.len()
    } else {
        body_end
    };
    (body, end)
}

fn push_text(blocks: &mut Vec<ResponseBlock>, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        blocks.push(ResponseBlock::Text {
            text: text.to_string(),
        });
    }
}

/// One call's name and input object, if `body` is a well-formed call to a tool `may_call`
/// allows. Accepts the variants models produce: a ```json fence inside the tag, `parameters` or
/// `input` instead of `arguments`, arguments as a JSON string, an OpenAI-style `function`
/// wrapper.
pub fn parse_call(body: &str, may_call: impl Fn(&str) -> bool) -> Option<(String, Value)> {
    let body = strip_fence(body.trim());
    let value: Value = serde_json::from_str(body).ok()?;
    let mut object = match value {
        Value::Object(object) => object,
        _ => return None,
    };
    if !object.contains_key("name")
        && let Some(Value::Object(function)) = object.remove("function")
    {
        object = function;
    }
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        _ => return None,
    };
    if !may_call(&name) {
        return None;
    }
    let arguments = ["arguments", "parameters", "input"]
        .iter()
        .find_map(|key| object.remove(*key));
    let input = match arguments {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(input)) => Value::Object(input),
        Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str(strip_fence(text.trim())) {
            Ok(Value::Object(input)) => Value::Object(input),
            _ => return None,
        },
        Some(_) => return None,
    };
    Some((name, input))
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(names: &[&str]) -> EmulatedTools {
        EmulatedTools::new(names.iter().copied())
    }

    fn parse(offered: &EmulatedTools, text: &str) -> Vec<ResponseBlock> {
        let mut counter = 0;
        offered.parse(text.to_string(), &mut || {
            counter += 1;
            format!("toolu_{counter}")
        })
    }

    fn text(text: &str) -> ResponseBlock {
        ResponseBlock::Text { text: text.into() }
    }

    fn call(id: &str, name: &str, input: Value) -> ResponseBlock {
        ResponseBlock::ToolUse {
            id: id.into(),
            name: name.into(),
            input,
        }
    }

    fn sampling_tool(name: &str) -> SamplingTool {
        SamplingTool {
            name: name.into(),
            description: Some(format!("Does {name}.")),
            input_schema: json!({"type":"object","properties":{"q":{"type":"string"}}}),
        }
    }

    #[test]
    fn modes_parse_and_decide_per_client() {
        let plain = ClientSupport {
            tools: false,
            multi_block_messages: true,
        };
        assert_eq!(ToolMode::parse("auto"), Ok(ToolMode::Auto));
        assert_eq!(ToolMode::parse(" emulate "), Ok(ToolMode::Emulate));
        assert!(ToolMode::parse("magic").is_err());
        assert_eq!(
            ToolMode::Auto.delivery(ClientSupport::FULL),
            ToolDelivery::Native
        );
        assert_eq!(ToolMode::Auto.delivery(plain), ToolDelivery::Emulated);
        assert_eq!(ToolMode::Native.delivery(plain), ToolDelivery::Native);
        assert_eq!(
            ToolMode::Emulate.delivery(ClientSupport::FULL),
            ToolDelivery::Emulated
        );
        assert_eq!(ToolDelivery::Emulated.as_str(), "emulated");
    }

    #[test]
    fn prompt_lists_tools_and_the_convention() {
        let prompt = tool_prompt(&[sampling_tool("get"), sampling_tool("put")], None).unwrap();
        assert!(prompt.starts_with("# Tools\n"), "{prompt}");
        assert!(prompt.contains(
            "{\"name\":\"get\",\"description\":\"Does get.\",\"input_schema\":{\"properties\":{\"q\":{\"type\":\"string\"}},\"type\":\"object\"}}\n"
        ), "{prompt}");
        assert!(prompt.contains("{\"name\":\"put\""));
        assert!(prompt.contains(
            "<tool_call>{\"name\": \"tool_name\", \"arguments\": {\"argument\": \"value\"}}</tool_call>"
        ));
        assert!(prompt.contains("If no tool is needed"));
        assert!(!prompt.contains("must call"));
    }

    /// docs/api.md quotes this prompt verbatim ("Tool emulation"); keep them equal.
    #[test]
    fn prompt_is_the_documented_text() {
        let tool = SamplingTool {
            name: "get_weather".into(),
            description: Some("Current weather for a city.".into()),
            input_schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        };
        let expected = r#"# Tools

You can call these tools:
<tools>
{"name":"get_weather","description":"Current weather for a city.","input_schema":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}}
</tools>

To call a tool, write a tool call block whose arguments are a JSON object matching the tool's input_schema:
<tool_call>{"name": "tool_name", "arguments": {"argument": "value"}}</tool_call>

- You may write text before your tool calls. Write one block per call; several blocks make several calls.
- End your response after the last block: the results arrive in the next turn as <tool_response> blocks. Never write a <tool_response> yourself.
- If no tool is needed, answer normally, without a tool call block."#;
        assert_eq!(tool_prompt(&[tool], None).unwrap(), expected);
        let docs = include_str!("../../../../docs/api.md");
        assert!(docs.contains(expected), "docs/api.md quotes another prompt");
    }

    #[test]
    fn tool_choice_shapes_the_prompt() {
        let offered = [sampling_tool("get"), sampling_tool("put")];
        let any = tool_prompt(
            &offered,
            Some(&ToolChoice::Any {
                disable_parallel_tool_use: None,
            }),
        )
        .unwrap();
        assert!(any.contains("You must call at least one tool"));
        assert!(!any.contains("If no tool is needed"));
        let named = tool_prompt(
            &offered,
            Some(&ToolChoice::Tool {
                name: "put".into(),
                disable_parallel_tool_use: Some(true),
            }),
        )
        .unwrap();
        assert!(
            named.contains("You must call the tool `put` in this response, and no other tool.")
        );
        assert!(named.contains("Call at most one tool"));
        let auto = tool_prompt(
            &offered,
            Some(&ToolChoice::Auto {
                disable_parallel_tool_use: Some(false),
            }),
        )
        .unwrap();
        assert!(!auto.contains("at most one"));
        assert_eq!(tool_prompt(&offered, Some(&ToolChoice::None {})), None);
        assert_eq!(tool_prompt(&[], None), None);
    }

    #[test]
    fn history_renders_calls_and_responses_with_images_after() {
        let mut names = HashMap::new();
        let call_text = history_blocks(
            SamplingContent::ToolUse {
                id: "toolu_1".into(),
                name: "shot".into(),
                input: json!({"url":"x"}),
            },
            &mut names,
        );
        assert_eq!(
            call_text,
            vec![SamplingContent::Text {
                text: "<tool_call>{\"name\": \"shot\", \"arguments\": {\"url\":\"x\"}, \"id\": \"toolu_1\"}</tool_call>".into()
            }]
        );
        let image = SamplingContent::Image {
            data: "R0lG".into(),
            mime_type: "image/gif".into(),
        };
        let response = history_blocks(
            SamplingContent::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: vec![
                    SamplingContent::Text {
                        text: "taken".into(),
                    },
                    image.clone(),
                ],
                is_error: Some(true),
            },
            &mut names,
        );
        assert_eq!(
            response,
            vec![
                SamplingContent::Text {
                    text: "<tool_response id=\"toolu_1\" name=\"shot\" is_error=\"true\">\ntaken\n(1 image follows this block)\n</tool_response>".into()
                },
                image
            ]
        );
        // An unknown call id still renders; plain blocks pass through.
        let orphan = history_blocks(
            SamplingContent::ToolResult {
                tool_use_id: "x\"y".into(),
                content: vec![],
                is_error: None,
            },
            &mut names,
        );
        assert_eq!(
            orphan,
            vec![SamplingContent::Text {
                text: "<tool_response id=\"x&quot;y\">\n</tool_response>".into()
            }]
        );
        let plain = SamplingContent::Text { text: "hi".into() };
        assert_eq!(history_blocks(plain.clone(), &mut names), vec![plain]);
    }

    #[test]
    fn prose_before_a_call_stays_text() {
        let blocks = parse(
            &tools(&["get"]),
            "Let me look.\n<tool_call>{\"name\": \"get\", \"arguments\": {\"q\": \"rust\"}}</tool_call>",
        );
        assert_eq!(
            blocks,
            vec![
                text("Let me look."),
                call("toolu_1", "get", json!({"q":"rust"}))
            ]
        );
    }

    #[test]
    fn several_calls_become_several_tool_uses() {
        let blocks = parse(
            &tools(&["get", "put"]),
            "<tool_call>{\"name\":\"get\",\"arguments\":{\"q\":1}}</tool_call>\n<tool_call>\n{\"name\":\"put\",\"arguments\":{}}\n</tool_call>",
        );
        assert_eq!(
            blocks,
            vec![
                call("toolu_1", "get", json!({"q":1})),
                call("toolu_2", "put", json!({}))
            ]
        );
    }

    #[test]
    fn variants_models_produce_are_accepted() {
        let offered = tools(&["get"]);
        for body in [
            "```json\n{\"name\": \"get\", \"arguments\": {\"q\": 2}}\n```",
            "{\"name\": \"get\", \"arguments\": \"{\\\"q\\\": 2}\"}",
            "{\"name\": \"get\", \"parameters\": {\"q\": 2}}",
            "{\"name\": \"get\", \"input\": {\"q\": 2}}",
            "{\"type\": \"function\", \"function\": {\"name\": \"get\", \"arguments\": {\"q\": 2}}}",
            "```\n{\"name\": \"get\", \"arguments\": {\"q\": 2}}```",
        ] {
            let blocks = parse(&offered, &format!("<tool_call>{body}</tool_call>"));
            assert_eq!(
                blocks,
                vec![call("toolu_1", "get", json!({"q":2}))],
                "{body}"
            );
        }
        // No arguments at all: an empty input.
        assert_eq!(
            parse(&offered, "<tool_call>{\"name\":\"get\"}</tool_call>"),
            vec![call("toolu_1", "get", json!({}))]
        );
        // A closing tag inside an argument string does not end the block.
        assert_eq!(
            parse(
                &offered,
                "<tool_call>{\"name\":\"get\",\"arguments\":{\"q\":\"a</tool_call>b\"}}</tool_call> done"
            ),
            vec![
                call("toolu_1", "get", json!({"q":"a</tool_call>b"})),
                text("done")
            ]
        );
        // An unclosed block at the end of the answer.
        assert_eq!(
            parse(
                &offered,
                "ok <tool_call>{\"name\":\"get\",\"arguments\":{}}"
            ),
            vec![text("ok"), call("toolu_1", "get", json!({}))]
        );
    }

    #[test]
    fn unknown_tools_and_broken_json_stay_text() {
        let offered = tools(&["get"]);
        for answer in [
            "Try <tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call> maybe",
            "<tool_call>{\"name\": \"get\", \"arguments\": {\"q\": }</tool_call>",
            "<tool_call>{\"name\": \"get\", \"arguments\": [1]}</tool_call>",
            "<tool_call>{\"name\": \"get\", \"arguments\": \"not json\"}</tool_call>",
            "<tool_call>[\"get\"]</tool_call>",
            "plain answer",
        ] {
            assert_eq!(parse(&offered, answer), vec![text(answer)], "{answer}");
        }
        // Next to a good call, the bad one is kept in the text around it.
        let blocks = parse(
            &offered,
            "A <tool_call>{\"name\":\"rm\"}</tool_call> B <tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call> C",
        );
        assert_eq!(
            blocks,
            vec![
                text("A <tool_call>{\"name\":\"rm\"}</tool_call> B"),
                call("toolu_1", "get", json!({})),
                text("C")
            ]
        );
        // Nothing offered (tool_choice none): nothing is a call.
        let none = tools(&[]);
        let answer = "<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>";
        assert_eq!(parse(&none, answer), vec![text(answer)]);
    }

    #[test]
    fn parallel_calls_can_be_limited() {
        let offered = EmulatedTools {
            single_call: true,
            ..tools(&["get"])
        };
        let second = "<tool_call>{\"name\":\"get\",\"arguments\":{\"n\":2}}</tool_call>";
        let blocks = parse(
            &offered,
            &format!(
                "<tool_call>{{\"name\":\"get\",\"arguments\":{{\"n\":1}}}}</tool_call>{second}"
            ),
        );
        assert_eq!(
            blocks,
            vec![call("toolu_1", "get", json!({"n":1})), text(second)]
        );
    }

    const GET: &str = "<tool_call>{\"name\":\"get\",\"arguments\":{}}</tool_call>";

    fn tool_uses(blocks: &[ResponseBlock]) -> usize {
        blocks
            .iter()
            .filter(|block| matches!(block, ResponseBlock::ToolUse { .. }))
            .count()
    }

    #[test]
    fn quoted_calls_stay_text_and_real_ones_after_them_are_made() {
        let offered = tools(&["get"]);
        for quoted in [
            format!("Write it like this:\n```\n{GET}\n```\nthat is all."),
            format!("Write it like this:\n~~~xml\n{GET}\n~~~"),
            format!("The format is `{GET}`, nothing else."),
            format!("The format is ``x ` {GET} ``."),
            format!("You said:\n> {GET}\n> and waited."),
        ] {
            assert_eq!(parse(&offered, &quoted), vec![text(&quoted)], "{quoted}");
            let then_real = format!("{quoted}\n\nNow for real:\n{GET}");
            let blocks = parse(&offered, &then_real);
            assert_eq!(
                blocks,
                vec![
                    text(format!("{quoted}\n\nNow for real:").trim()),
                    call("toolu_1", "get", json!({}))
                ],
                "{then_real}"
            );
        }
        // A fence left open quotes the rest of the answer.
        let open_fence = format!("```\n{GET}\n\nNow for real:\n{GET}");
        assert_eq!(parse(&offered, &open_fence), vec![text(&open_fence)]);
        // A lone backtick quotes nothing, and code spans end with their line.
        assert_eq!(tool_uses(&parse(&offered, &format!("a ` b {GET}"))), 1);
        assert_eq!(tool_uses(&parse(&offered, &format!("`a\n{GET} `"))), 1);
        // Backticks inside a made call's arguments pair with nothing outside it.
        let tick = "<tool_call>{\"name\":\"get\",\"arguments\":{\"q\":\"`\"}}</tool_call>";
        assert_eq!(tool_uses(&parse(&offered, &format!("{tick} {tick}"))), 2);
        // Calls may sit in list items and be indented.
        assert_eq!(
            tool_uses(&parse(&offered, &format!("- {GET}\n    {GET}"))),
            2
        );
    }

    #[test]
    fn a_rejected_block_is_opaque_and_does_not_hide_later_calls() {
        let offered = tools(&["get"]);
        // A fence inside a rejected block opens nothing after it.
        let answer = format!(
            "<tool_call>\n```json\n{{\"name\":\"rm\",\"arguments\":{{}}}}\n```\n</tool_call>\n{GET}"
        );
        assert_eq!(tool_uses(&parse(&offered, &answer)), 1, "{answer}");
        // A tag in prose that is no call does not swallow the call after it.
        let answer = format!("Use <tool_call> blocks. {GET}");
        assert_eq!(
            parse(&offered, &answer),
            vec![
                text("Use <tool_call> blocks."),
                call("toolu_1", "get", json!({}))
            ]
        );
        // An unclosed block without JSON ends at the next tag.
        let answer = format!("<tool_call>```json\n{GET}");
        assert_eq!(tool_uses(&parse(&offered, &answer)), 1, "{answer}");
    }

    #[test]
    fn calls_to_tools_not_allowed_stay_text() {
        // tool_choice naming `get`: the plan allows only `get`, though `put` was offered.
        let only_get = tools(&["get"]);
        let put = "<tool_call>{\"name\":\"put\",\"arguments\":{}}</tool_call>";
        let blocks = parse(&only_get, &format!("{put}\n{GET}"));
        assert_eq!(blocks, vec![text(put), call("toolu_1", "get", json!({}))]);
    }

    #[test]
    fn calls_per_answer_are_capped_across_its_text_blocks() {
        let offered = EmulatedTools {
            max_calls: 3,
            ..tools(&["get"])
        };
        let answer = GET.repeat(5);
        let blocks = parse(&offered, &answer);
        assert_eq!(tool_uses(&blocks), 3);
        assert_eq!(blocks.last(), Some(&text(&GET.repeat(2))));
        // The count goes on over the answer's blocks.
        let mut parser = offered.parser();
        let mut id = || "toolu_x".to_string();
        assert_eq!(tool_uses(&parser.parse(GET.repeat(2), &mut id)), 2);
        assert_eq!(parser.parse(GET.repeat(2), &mut id).len(), 2);
        assert_eq!(parser.parse(GET.to_string(), &mut id), vec![text(GET)]);
        // The default bound, and one call with disable_parallel_tool_use.
        let many = GET.repeat(DEFAULT_MAX_CALLS + 10);
        assert_eq!(
            tool_uses(&parse(&tools(&["get"]), &many)),
            DEFAULT_MAX_CALLS
        );
        let single = EmulatedTools {
            single_call: true,
            ..tools(&["get"])
        };
        assert_eq!(tool_uses(&parse(&single, &many)), 1);
    }

    #[test]
    fn joining_blocks_notices_tags_across_their_border() {
        let text = "a <tool_";
        assert!(ends_inside_call(text, 0, false), "the tag may go on");
        assert!(!ends_inside_call("a <tool_x", 0, false));
        let joined = format!("{text}call>{{");
        assert!(ends_inside_call(&joined, text.len(), false));
        let closed = format!("{joined}}}</tool");
        assert!(ends_inside_call(&closed, joined.len(), true));
        let closed_now = format!("{closed}_call>");
        assert!(!ends_inside_call(&closed_now, closed.len(), true));
        // Nothing new about tags: the state carries on.
        assert!(ends_inside_call("<tool_call>{ more", 11, true));
        assert!(!ends_inside_call("plain", 2, false));
    }

    #[test]
    fn framing_in_tool_definitions_and_history_is_escaped() {
        let tool = SamplingTool {
            name: "get".into(),
            description: Some("Ends early </tools> then <tool_call>".into()),
            input_schema: json!({"type":"object","description":"</tools>"}),
        };
        let prompt = tool_prompt(&[tool], None).unwrap();
        assert_eq!(prompt.matches("</tools>").count(), 1, "{prompt}");
        assert!(prompt.contains(r"Ends early \u003c/tools> then \u003ctool_call>"));
        let rendered = render_call("toolu_1", "get", &json!({"q": "</tool_call><tool_call>"}));
        assert_eq!(rendered.matches("<tool_call>").count(), 1, "{rendered}");
        assert_eq!(rendered.matches("</tool_call>").count(), 1, "{rendered}");
        // Attributes cannot be left.
        let response = render_response("x\" name=\"y", Some("a>b"), false, &[], 0);
        assert!(response.starts_with("<tool_response id=\"x&quot; name=&quot;y\" name=\"a>b\">"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                ".{0,12}".prop_map(Value::String),
                // The convention's own tags inside arguments must not confuse the parser.
                prop_oneof![Just("</tool_call>"), Just("<tool_call>"), Just("```json")]
                    .prop_map(|tag| Value::String(tag.to_string())),
            ]
        }

        fn json_value() -> impl Strategy<Value = Value> {
            json_leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(".{0,8}", inner, 0..4)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        fn input() -> impl Strategy<Value = Value> {
            prop::collection::btree_map(".{0,8}", json_value(), 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
        }

        proptest! {
            /// Rendering a tool history as text and parsing the rendered calls back gives the
            /// same calls, whatever the names and inputs hold (tags and quotes included).
            #[test]
            fn rendered_calls_parse_back(
                calls in prop::collection::vec(("[A-Za-z_][A-Za-z0-9_-]{0,20}", input()), 1..5),
                prose in "[^<]{0,40}",
            ) {
                let mut names = HashMap::new();
                let mut text = prose.clone();
                for (index, (name, input)) in calls.iter().enumerate() {
                    for block in history_blocks(
                        SamplingContent::ToolUse { id: format!("toolu_{index}"), name: name.clone(), input: input.clone() },
                        &mut names,
                    ) {
                        let SamplingContent::Text { text: rendered } = block else { panic!("not text") };
                        text.push('\n');
                        text.push_str(&rendered);
                    }
                }
                let offered = EmulatedTools::new(calls.iter().map(|(name, _)| name.clone()));
                let parsed: Vec<(String, Value)> = parse(&offered, &text)
                    .into_iter()
                    .filter_map(|block| match block {
                        ResponseBlock::ToolUse { name, input, .. } => Some((name, input)),
                        ResponseBlock::Text { .. } => None,
                    })
                    .collect();
                prop_assert_eq!(parsed, calls);
            }
        }
    }
}
