//! Anthropic-defined tools: a tool whose `type` is not `custom` (`web_search_20250305`,
//! `bash_20250124`, `text_editor_20250728`, …). The real API knows what each one is; an MCP
//! client does not, so the bridge decides, per kind:
//! - run by the caller with a schema Anthropic publishes (`bash`, the text editor, `memory`):
//!   offered to the model like a custom tool, with that schema, so the caller gets the
//!   `tool_use` it would get from the real API and runs it as it always does;
//! - tool search (`tool_search_tool_regex_…`, `…_bm25_…`): left out, since the bridge offers
//!   every tool directly, deferred ones (`defer_loading`) included;
//! - everything else runs on Anthropic's side (`web_search`, `web_fetch`, `code_execution`,
//!   `mcp_toolset`, advisors, types not known yet) or needs a model trained for it (`computer`,
//!   whose screenshot-and-coordinates loop and display parameters a model behind an MCP client
//!   does not know): unavailable. The model is told so in the system prompt (it can say what it
//!   would need instead of acting as if the tool were absent), and a `tool_choice` that forces
//!   one is a 400, since the answer cannot comply.

use serde_json::{Value, json};

use crate::api::anthropic::{MessagesRequest, ToolChoice, ToolDefinition};
use crate::api_error::ApiError;
use crate::mcp::sampling::SamplingTool;

/// What an Anthropic-defined tool becomes here.
#[derive(Debug, Clone, PartialEq)]
pub enum DefinedTool {
    /// Run by the caller: offered with its published schema.
    CallerRuns(SamplingTool),
    /// Unneeded: every tool is offered directly.
    ToolSearch,
    /// Nobody here can run it.
    Unavailable,
}

/// `None` for a custom tool.
pub fn classify(tool: &ToolDefinition) -> Option<DefinedTool> {
    if tool.is_custom() {
        return None;
    }
    let kind = tool.kind.as_deref().unwrap_or_default();
    let offered = |description: &str, input_schema: Value| {
        DefinedTool::CallerRuns(SamplingTool {
            name: tool.name.clone(),
            description: Some(description.to_string()),
            input_schema,
        })
    };
    Some(if kind.starts_with("bash_") {
        offered(BASH_DESCRIPTION, bash_schema())
    } else if kind.starts_with("text_editor_") {
        // Versions before 2025-04-29 still have `undo_edit`.
        let undo = matches!(kind, "text_editor_20241022" | "text_editor_20250124");
        offered(TEXT_EDITOR_DESCRIPTION, text_editor_schema(undo))
    } else if kind.starts_with("memory_") {
        offered(MEMORY_DESCRIPTION, memory_schema())
    } else if kind.starts_with("tool_search_tool_") || kind.starts_with("tool_search_") {
        DefinedTool::ToolSearch
    } else {
        DefinedTool::Unavailable
    })
}

/// The request's tools the model can be offered: its custom tools and the caller-run
/// Anthropic-defined ones, in the request's order.
pub fn offered_tools(request: &MessagesRequest) -> Vec<SamplingTool> {
    request
        .tools
        .iter()
        .flatten()
        .filter_map(|tool| match classify(tool) {
            None => Some(SamplingTool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                input_schema: tool
                    .input_schema
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"})),
            }),
            Some(DefinedTool::CallerRuns(offered)) => Some(offered),
            Some(DefinedTool::ToolSearch | DefinedTool::Unavailable) => None,
        })
        .collect()
}

/// The request's tools that nobody here can run.
pub fn unavailable_tools(request: &MessagesRequest) -> Vec<&ToolDefinition> {
    request
        .tools
        .iter()
        .flatten()
        .filter(|tool| classify(tool) == Some(DefinedTool::Unavailable))
        .collect()
}

/// The system-prompt section that tells the model which offered tools it cannot use.
pub fn unavailable_notice(unavailable: &[&ToolDefinition]) -> Option<String> {
    if unavailable.is_empty() {
        return None;
    }
    let names: Vec<String> = unavailable
        .iter()
        .map(|tool| format!("`{}`", tool.name))
        .collect();
    Some(format!(
        "# Unavailable tools\n\nThese tools were offered but cannot run here: {}. Do not try to call them; if the task needs one, say so in your answer.",
        names.join(", ")
    ))
}

/// Refuses (400) a `tool_choice` that forces a tool nobody here can run, or that forces a call
/// when every tool offered is such a tool.
pub fn check_tool_choice(
    request: &MessagesRequest,
    offered: &[SamplingTool],
) -> Result<(), ApiError> {
    let tools = || request.tools.iter().flatten();
    match &request.tool_choice {
        Some(ToolChoice::Tool { name, .. }) => {
            let forced = tools().find(|tool| &tool.name == name);
            match forced.map(|tool| (tool, classify(tool))) {
                Some((tool, Some(DefinedTool::Unavailable | DefinedTool::ToolSearch))) => {
                    Err(ApiError::invalid_request(format!(
                        "tool_choice: `{name}` is an Anthropic-defined tool (`{}`) that runs on \
                         Anthropic's side; the MCP client behind this bridge cannot run it, so a \
                         request cannot force it",
                        tool.kind.as_deref().unwrap_or_default()
                    )))
                }
                _ => Ok(()),
            }
        }
        Some(ToolChoice::Any { .. }) if offered.is_empty() && tools().next().is_some() => {
            Err(ApiError::invalid_request(
                "tool_choice: `any` needs a tool the model can call, and every tool offered is \
                 an Anthropic-defined tool that runs on Anthropic's side, which the MCP client \
                 behind this bridge cannot run",
            ))
        }
        _ => Ok(()),
    }
}

const BASH_DESCRIPTION: &str = "Run a command in a persistent bash shell. State (the working directory, environment variables, files) persists between calls. Set `restart` to true to restart the shell instead of running a command.";

fn bash_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The bash command to run. Required unless the tool is being restarted."},
            "restart": {"type": "boolean", "description": "Set to true to restart the shell."}
        }
    })
}

const TEXT_EDITOR_DESCRIPTION: &str = "View, create and edit files. `view` shows a file (with line numbers; `view_range` limits the lines) or lists a directory; `create` writes `file_text` to a new file; `str_replace` replaces the one occurrence of `old_str` with `new_str`; `insert` inserts text after line `insert_line`.";

fn text_editor_schema(undo: bool) -> Value {
    let mut commands = vec!["view", "create", "str_replace", "insert"];
    if undo {
        commands.push("undo_edit");
    }
    json!({
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": commands},
            "path": {"type": "string", "description": "Absolute path to a file or directory."},
            "file_text": {"type": "string", "description": "The content of the file to create (`create`)."},
            "old_str": {"type": "string", "description": "The exact text to replace (`str_replace`)."},
            "new_str": {"type": "string", "description": "The replacement text (`str_replace`), or the text to insert (`insert`)."},
            "insert_line": {"type": "integer", "description": "The line after which to insert (`insert`); 0 inserts at the start."},
            "insert_text": {"type": "string", "description": "The text to insert (`insert`), where the caller reads it instead of `new_str`."},
            "view_range": {"type": "array", "items": {"type": "integer"}, "description": "First and last line to show (`view`); -1 as the last means to the end."}
        },
        "required": ["command", "path"]
    })
}

const MEMORY_DESCRIPTION: &str = "Keep notes across conversations in a memory directory (`/memories`): `view` a file or the directory, `create` a file, `str_replace` text in one, `insert` text at a line, `delete` a file, or `rename` one.";

fn memory_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
            "path": {"type": "string"},
            "view_range": {"type": "array", "items": {"type": "integer"}},
            "file_text": {"type": "string"},
            "old_str": {"type": "string"},
            "new_str": {"type": "string"},
            "insert_line": {"type": "integer"},
            "insert_text": {"type": "string"},
            "old_path": {"type": "string"},
            "new_path": {"type": "string"}
        },
        "required": ["command"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tools: Value, choice: Option<Value>) -> MessagesRequest {
        let mut body = json!({"model":"m","max_tokens":1,"tools":tools,
            "messages":[{"role":"user","content":"x"}]});
        if let Some(choice) = choice {
            body["tool_choice"] = choice;
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn each_kind_is_offered_left_out_or_unavailable() {
        let request = request(
            json!([
                {"name":"get","input_schema":{"type":"object"}},
                {"type":"custom","name":"put","input_schema":{"type":"object"}},
                {"type":"bash_20250124","name":"bash"},
                {"type":"text_editor_20250728","name":"str_replace_based_edit_tool","max_characters":1000},
                {"type":"text_editor_20250124","name":"str_replace_editor"},
                {"type":"memory_20250818","name":"memory"},
                {"type":"web_search_20250305","name":"web_search","max_uses":5},
                {"type":"web_fetch_20250910","name":"web_fetch"},
                {"type":"code_execution_20250825","name":"code_execution"},
                {"type":"computer_20250124","name":"computer","display_width_px":1024,"display_height_px":768},
                {"type":"tool_search_tool_regex_20251119","name":"tool_search_tool_regex"},
                {"type":"something_new_20300101","name":"novel"}
            ]),
            None,
        );
        let offered: Vec<String> = offered_tools(&request)
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            offered,
            vec![
                "get",
                "put",
                "bash",
                "str_replace_based_edit_tool",
                "str_replace_editor",
                "memory"
            ]
        );
        let unavailable: Vec<&str> = unavailable_tools(&request)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            unavailable,
            vec![
                "web_search",
                "web_fetch",
                "code_execution",
                "computer",
                "novel"
            ]
        );
        let notice = unavailable_notice(&unavailable_tools(&request)).unwrap();
        assert!(notice.starts_with("# Unavailable tools"), "{notice}");
        assert!(
            notice.contains("`web_search`, `web_fetch`, `code_execution`, `computer`, `novel`")
        );
        assert!(
            !notice.contains("tool_search"),
            "tool search is left out, not unavailable"
        );
        // The editor's versions differ in `undo_edit`.
        let tools = offered_tools(&request);
        let commands =
            |index: usize| tools[index].input_schema["properties"]["command"]["enum"].clone();
        assert_eq!(
            commands(3),
            json!(["view", "create", "str_replace", "insert"])
        );
        assert_eq!(
            commands(4),
            json!(["view", "create", "str_replace", "insert", "undo_edit"])
        );
        assert!(tools[2].input_schema["properties"]["restart"].is_object());
        assert!(unavailable_notice(&[]).is_none());
    }

    #[test]
    fn forcing_a_tool_nobody_runs_is_refused() {
        let tools = json!([{"name":"get","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]);
        let check = |tools: &Value, choice: Value| {
            let request = request(tools.clone(), Some(choice));
            check_tool_choice(&request, &offered_tools(&request))
        };
        let err = check(&tools, json!({"type":"tool","name":"web_search"})).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(!err.retryable);
        assert!(
            err.message.contains("`web_search`") && err.message.contains("web_search_20250305")
        );
        check(&tools, json!({"type":"tool","name":"get"})).unwrap();
        check(&tools, json!({"type":"any"})).unwrap();
        let only_server = json!([{"type":"web_search_20250305","name":"web_search"}]);
        let err = check(&only_server, json!({"type":"any"})).unwrap_err();
        assert!(err.message.contains("`any`"), "{}", err.message);
        check(&only_server, json!({"type":"auto"})).unwrap();
        check(
            &json!([{"type":"bash_20250124","name":"bash"}]),
            json!({"type":"tool","name":"bash"}),
        )
        .unwrap();
    }
}
