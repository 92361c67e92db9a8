"""VS Code with Copilot, walked end to end through a client that behaves on the wire the way
VS Code's source says (`vscode_client.py`), on stdio, http and the worker, with the official
SDKs as callers: the model the caller asked for (Copilot-style allowed models), stop sequences
kept, errors a person can act on, Anthropic-defined tools, what VS Code drops, and Claude Code's
current request shapes completing a tool round trip."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest

# Claude Code's older ids are the point of these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

from conftest import (  # noqa: E402
    TARGETS,
    Deployment,
    bridge_binary,
    free_port,
    only_http,
    wait_for_health,
    wait_until,
    with_defaults,
    worker_settings,
    wrangler_with,
)
from vscode_client import (  # noqa: E402
    ALLOW_SESSION,
    COPILOT_MODELS,
    DENIAL,
    HttpTransport,
    StdioTransport,
    VsCodeClient,
    VsCodeConfig,
)

COPILOT_IDS = [model.id for model in COPILOT_MODELS]
# Flags of the module's bridges: an alias and a default hint, to show they keep working first.
CATALOG_FLAGS = ["--model-alias", "main-model=claude-opus-4-6", "--default-model-hint", "claude-sonnet-4.5"]
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@dataclass
class VsCodeBridge:
    deployment: Deployment
    client: VsCodeClient

    @property
    def kind(self) -> str:
        return self.deployment.kind

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        return self.deployment.anthropic(**kwargs)

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        return self.deployment.openai(**kwargs)

    def seen(self) -> dict[str, Any]:
        """What the model behind VS Code was given last."""
        return self.client.model.received[-1]

    def close(self) -> None:
        self.client.stop()
        self.deployment.close()


def deploy_vscode(kind: str, config: VsCodeConfig, extra_args: list[str] | None = None) -> VsCodeBridge:
    """A bridge of `kind` with VS Code connected to it as its MCP client."""
    args = with_defaults(extra_args or [])
    if kind == "stdio":
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        transport = StdioTransport([bridge_binary(), "stdio", "--listen", f"127.0.0.1:{port}", *args])
        client = VsCodeClient(transport, config).start()
        wait_for_health(base_url)
        return VsCodeBridge(Deployment("stdio", base_url), client)
    if kind == "http":
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen([bridge_binary(), "http", "--listen", f"127.0.0.1:{port}", *args])
        deployment = Deployment("http", base_url, process=process)
        wait_for_health(base_url)
        transport = HttpTransport(f"{base_url}/mcp")
    elif kind == "worker":
        variables, token = worker_settings(args)
        instance = wrangler_with(variables)
        deployment = Deployment("worker", instance.base_url, api_key=token or f"tok-{secrets.token_hex(12)}")
        # VS Code's `mcp.json` `headers` go with every request.
        transport = HttpTransport(f"{instance.base_url}/mcp", {"authorization": f"Bearer {deployment.api_key}"})
    else:
        raise ValueError(kind)
    try:
        client = VsCodeClient(transport, config).start()
        wait_until(
            lambda: any(
                s["client_name"] == "Visual Studio Code" and s["event_stream_open"] for s in deployment.sessions()
            ),
            what="VS Code listed with its stream open",
        )
    except BaseException:
        deployment.close()
        raise
    return VsCodeBridge(deployment, client)


def allowed_config(**overrides: Any) -> VsCodeConfig:
    """`chat.mcp.serverSampling` as `connect vscode --write --allow-model …` writes it."""
    config = VsCodeConfig(allowed_outside_chat=True, allowed_models=list(COPILOT_IDS))
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="module", params=TARGETS)
def vscode(request: pytest.FixtureRequest) -> Iterator[VsCodeBridge]:
    bridge = deploy_vscode(request.param, allowed_config(), CATALOG_FLAGS)
    yield bridge
    bridge.close()


@pytest.fixture
def fresh() -> Iterator[list[VsCodeBridge]]:
    made: list[VsCodeBridge] = []
    yield made
    for bridge in made:
        bridge.close()


def ask(bridge: VsCodeBridge, text: str, model: str = "claude-sonnet-4-5", **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 200)
    return bridge.anthropic().messages.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


# ---- the handshake ----


def test_vs_code_connects_as_vs_code(vscode: VsCodeBridge) -> None:
    assert vscode.client.initialize_result is not None
    assert vscode.client.initialize_result["protocolVersion"] == "2025-11-25"
    session = next(s for s in vscode.deployment.sessions() if s["client_name"] == "Visual Studio Code")
    assert session["sampling_tools"] is False
    assert session["tools"] == "emulated"
    if isinstance(vscode.client.transport, HttpTransport):
        assert vscode.client.transport.stream_statuses[0] == 200
        assert vscode.client.transport.state_errors == []


# ---- 1. the model the caller asked for ----

CLAUDE_CODE_IDS = [
    ("claude-opus-4-6", "copilot/claude-opus-4.6"),
    ("claude-opus-4-6[1m]", "copilot/claude-opus-4.6-1m"),
    ("claude-opus-4-5-20251101", "copilot/claude-opus-4.6"),
    ("claude-sonnet-4-5-20250929", "copilot/claude-sonnet-4.5"),
    ("claude-sonnet-4-5", "copilot/claude-sonnet-4.5"),
    ("claude-sonnet-4-6[1m]", "copilot/claude-sonnet-4.5"),
    ("claude-sonnet-4-20250514", "copilot/claude-sonnet-4.5"),
    ("claude-haiku-4-5-20251001", "copilot/claude-haiku-4.5"),
    ("claude-haiku-4-5", "copilot/claude-haiku-4.5"),
    ("claude-3-5-haiku-20241022", "copilot/claude-haiku-4.5"),
]


def test_claude_codes_model_ids_land_on_their_copilot_family(vscode: VsCodeBridge) -> None:
    # Sent as they came, none of these ids is a substring of a Copilot id: every request would
    # go to the first allowed model (copilot/gpt-4.1).
    for requested, expected in CLAUDE_CODE_IDS:
        response = ask(vscode, f"which model? {requested}", model=requested, max_tokens=20)
        assert response.model == expected, requested
        assert vscode.seen()["model"] == expected
        hints = [hint["name"] for hint in vscode.client.sampling_params[-1]["modelPreferences"]["hints"]]
        assert hints[0] == requested, hints
        assert "claude-sonnet-4.5" in hints, "the default hint is among them (last, unless derived)"
        assert "claude" not in hints, "no family-only hint"


def test_openai_and_gemini_ids_aliases_and_twins(vscode: VsCodeBridge) -> None:
    chat = vscode.openai()
    for requested, expected in [
        ("gpt-4.1-2025-04-14", "copilot/gpt-4.1"),
        ("openai/gpt-4.1", "copilot/gpt-4.1"),
        ("google/gemini-2.5-pro-preview-06-05", "copilot/gemini-2.5-pro"),
        # The catalog's own names come first: an alias, a twin, and the default hint for an
        # id that matches nothing allowed.
        ("main-model", "copilot/claude-opus-4.6"),
        ("claude-mcp-copilot/claude-haiku-4.5", "copilot/claude-haiku-4.5"),
        ("claude-fable-5", "copilot/claude-sonnet-4.5"),
    ]:
        completion = chat.chat.completions.create(model=requested, messages=[{"role": "user", "content": "hi"}])
        assert completion.model == expected, requested
        assert completion.choices[0].message.content == "echo: hi"


# ---- 2. stop sequences and max_tokens ----


def test_stop_sequences_cut_the_answer_anthropic(vscode: VsCodeBridge) -> None:
    text = "[verbatim]one two\n\nHuman: three END four"
    response = ask(vscode, text, stop_sequences=["END", "\n\nHuman:"])
    assert [block.text for block in response.content] == ["one two"]
    assert response.stop_reason == "stop_sequence"
    assert response.stop_sequence == "\n\nHuman:"
    # VS Code got them and called its model without them.
    assert vscode.client.sampling_params[-1]["stopSequences"] == ["END", "\n\nHuman:"]
    assert vscode.seen()["options"] == {}
    # Streamed: no byte past the cut, the stop in message_delta.
    with vscode.anthropic().messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "[verbatim]alpha beta END gamma"}],
    ) as stream:
        deltas = [event.delta.text for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "".join(deltas) == "alpha beta "
    assert not any("gamma" in delta or "END" in delta for delta in deltas)
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == "END"
    # No stop in the text: unchanged.
    response = ask(vscode, "[verbatim]nothing to cut", stop_sequences=["END"])
    assert response.content[0].text == "nothing to cut"
    assert response.stop_reason == "end_turn" and response.stop_sequence is None


def test_stop_sequences_cut_the_answer_openai(vscode: VsCodeBridge) -> None:
    chat = vscode.openai()
    messages = [{"role": "user", "content": "[verbatim]first line\nSTOP second line"}]
    completion = chat.chat.completions.create(model="gpt-4.1", messages=messages, stop=["STOP"])
    assert completion.choices[0].message.content == "first line\n"
    assert completion.choices[0].finish_reason == "stop"
    stream = chat.chat.completions.create(model="gpt-4.1", messages=messages, stop="STOP", stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == "first line\n"


def test_an_answer_longer_than_max_tokens_comes_whole(vscode: VsCodeBridge) -> None:
    # VS Code ignores maxTokens; the bridge passes the answer on whole (README: the tokens are
    # spent already, and a cut at an estimate would break complete answers).
    response = ask(vscode, "[long]", max_tokens=5)
    assert response.content[0].text.startswith("Sentence number 0")
    assert response.content[0].text.endswith("Sentence number 59 of a long answer.")
    assert response.stop_reason == "end_turn"
    assert response.usage.output_tokens > 5
    assert vscode.client.sampling_params[-1]["maxTokens"] == 5


# ---- 4. errors a person can act on ----


def test_a_denial_is_403_naming_the_setting_and_the_fix(vscode: VsCodeBridge) -> None:
    config = vscode.client.config
    for change in [{"allowed_outside_chat": False}, {"allowed_models": []}]:
        saved = {key: getattr(config, key) for key in change}
        try:
            for key, value in change.items():
                setattr(config, key, value)
            with pytest.raises(anthropic.PermissionDeniedError) as denied:
                ask(vscode, "hello")
        finally:
            for key, value in saved.items():
                setattr(config, key, value)
        error = denied.value
        assert error.status_code == 403
        assert error.response.headers["x-should-retry"] == "false"
        message = error.body["error"]["message"]
        assert error.body["error"]["type"] == "permission_error"
        assert DENIAL in message
        assert "chat.mcp.serverSampling" in message
        assert "sampling2api connect vscode --write" in message
    assert vscode.client.answers[-1]["error"] == {"code": -32000, "message": DENIAL}


def test_a_model_failure_shows_its_first_line_not_its_stack(vscode: VsCodeBridge) -> None:
    with pytest.raises(anthropic.InternalServerError) as failed:
        ask(vscode, "[fail]")
    assert failed.value.status_code == 500
    message = failed.value.body["error"]["message"]
    assert message.endswith("Unknown error: Error: Response contained no choices."), message
    assert " at " not in message and "workbench.desktop.main.js" not in message
    # The client did send the stack.
    assert "workbench.desktop.main.js" in vscode.client.answers[-1]["error"]["message"]


def test_rate_limits_and_quotas_are_429(vscode: VsCodeBridge) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        ask(vscode, "[rate-limit]")
    headers = limited.value.response.headers
    assert (headers["retry-after"], headers["x-should-retry"]) == ("42", "true")
    assert "Please wait 42 seconds" in limited.value.body["error"]["message"]
    with pytest.raises(anthropic.RateLimitError) as quota:
        ask(vscode, "[quota]")
    assert quota.value.response.headers["x-should-retry"] == "false"
    assert "premium model quota" in quota.value.body["error"]["message"]
    with pytest.raises(openai.RateLimitError) as chat_limited:
        vscode.openai().chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "[rate-limit]"}])
    assert chat_limited.value.response.headers["retry-after"] == "42"


def test_a_request_held_by_vs_codes_consent_prompt_says_so(kind: str, fresh: list[VsCodeBridge]) -> None:
    # Unconfigured: VS Code shows its notification, and nobody answers it in time.
    bridge = deploy_vscode(kind, VsCodeConfig(allowed_outside_chat=None, prompt="wait"), CATALOG_FLAGS)
    fresh.append(bridge)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            ask(bridge, "hello")
        except anthropic.APIStatusError as error:
            outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: bridge.client.prompts, what="the consent notification")
    # The status page points at it while the request waits.
    def hinted() -> bool:
        status = bridge.deployment.http.get("/status").json()
        return any("a notification in VS Code" in (r.get("hint") or "") for r in status["in_flight"])

    wait_until(hinted, what="the status page's consent hint")
    status = bridge.deployment.http.get("/status").json()
    assert [c["consent_may_be_pending"] for c in status["clients"]] == [True]
    caller.join(30)
    error = outcome["error"]
    assert error.status_code == 504
    assert "a notification in VS Code" in error.body["error"]["message"]
    assert "sampling2api connect vscode --write" in error.body["error"]["message"]
    # Someone allows it: the late answer is dropped, and the next request goes through.
    bridge.client.answer_prompt(ALLOW_SESSION)
    wait_until(lambda: bridge.client.answers, what="VS Code's late answer")
    assert ask(bridge, "again").content[0].text == "echo: again"
    status = bridge.deployment.http.get("/status").json()
    assert [c["consent_may_be_pending"] for c in status["clients"]] == [False]


# ---- 6. Anthropic-defined tools ----


def test_server_tools_are_named_unavailable_and_cannot_be_forced(vscode: VsCodeBridge) -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    # Claude Code's WebSearch sub-request: the only tool is the server's.
    response = ask(vscode, "[inspect] find today's news", tools=[web_search])
    assert response.stop_reason == "end_turn"
    system = vscode.seen()["messages"][0]
    assert system["role"] == "system"
    assert "cannot run here: `web_search`" in system["content"][0]["value"]
    with pytest.raises(anthropic.BadRequestError) as forced:
        ask(vscode, "search", tools=[web_search], tool_choice={"type": "tool", "name": "web_search"})
    assert "`web_search`" in forced.value.body["error"]["message"]
    # Tools the caller runs are offered with Anthropic's schema.
    bash = {"type": "bash_20250124", "name": "bash"}
    response = ask(vscode, "[use-tool] list the files", tools=[bash, web_search])
    assert response.stop_reason == "tool_use"
    call = next(block for block in response.content if block.type == "tool_use")
    assert call.name == "bash" and "command" in call.input


# ---- what VS Code does with a sampling request ----


def test_what_vs_code_converts_and_drops(vscode: VsCodeBridge) -> None:
    response = vscode.anthropic().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=300,
        # The SDK's API version dropped `temperature`; older callers still send it.
        extra_body={"temperature": 0.2},
        stop_sequences=["NEVER"],
        system="Be brief.",
        tools=[{"name": "get", "description": "Fetch", "input_schema": {"type": "object"}}],
        messages=[
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": 1}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
                    {"type": "text", "text": "[inspect]"},
                ],
            },
        ],
    )
    seen = json.loads(response.content[0].text)
    roles = [message["role"] for message in seen["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert seen["messages"][0]["content"][0]["value"].startswith("Be brief.")
    # Tool history reached VS Code as text (its own tool blocks would be dropped), the image as
    # an image part.
    assistant = seen["messages"][2]["content"]
    assert assistant[0]["value"].startswith("<tool_call>")
    last = seen["messages"][3]["content"]
    assert last[0]["value"].startswith('<tool_response id="toolu_1" name="get">')
    assert {"type": "image_url", "mimeType": "image/png", "bytes": len(base64.b64decode(PNG_1X1))} in last
    sent = vscode.client.sampling_params[-1]
    assert not any(
        block.get("type") in ("tool_use", "tool_result")
        for message in sent["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [message["content"]])
    )
    # Empty options: what the request set never reached the model.
    assert (sent["maxTokens"], sent["temperature"]) == (300, 0.2)
    assert seen["options"] == {}
    # A result without stopReason or usage: end_turn, estimated usage.
    assert response.stop_reason == "end_turn"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_vs_codes_own_drops_of_tool_blocks_and_empty_messages(vscode: VsCodeBridge) -> None:
    # What VS Code does with blocks it cannot show its model, sent to it directly: a
    # `tool_result` is dropped and the message left empty disappears.
    params = {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "first"}},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "toolUseId": "t", "content": []}, {"type": "text", "text": "[inspect]"}]},
        ],
        "maxTokens": 5,
    }
    result = vscode.client.sample(params)
    seen = json.loads(result["content"]["text"])
    assert [m["role"] for m in seen["messages"]] == ["user", "user"]
    assert "stopReason" not in result and "usage" not in result


# ---- Claude Code's current request shapes ----


def claude_code_tools() -> list[dict[str, Any]]:
    def tool(name: str, description: str, properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
        schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        return {"name": name, "description": description, "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", **schema}, **extra}

    string = {"type": "string"}
    tools = [
        tool("Task", "Launch a new agent.", {"description": string, "prompt": string, "subagent_type": string}, ["description", "prompt", "subagent_type"]),
        tool("Bash", "Executes a bash command.", {"command": string, "timeout": {"type": "number"}, "description": string, "run_in_background": {"type": "boolean"}}, ["command"], strict=True),
        tool("Glob", "Fast file pattern matching.", {"pattern": string, "path": string}, ["pattern"]),
        tool("Grep", "Search file contents.", {"pattern": string, "path": string, "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]}}, ["pattern"]),
        tool("ExitPlanMode", "Leave plan mode.", {"plan": string}, ["plan"]),
        tool("Read", "Reads a file.", {"file_path": string, "offset": {"type": "number"}, "limit": {"type": "number"}}, ["file_path"], strict=True),
        tool("Edit", "Replaces text in a file.", {"file_path": string, "old_string": string, "new_string": string, "replace_all": {"type": "boolean"}}, ["file_path", "old_string", "new_string"]),
        tool("Write", "Writes a file.", {"file_path": string, "content": string}, ["file_path", "content"]),
        tool("NotebookEdit", "Edits a notebook cell.", {"notebook_path": string, "new_source": string}, ["notebook_path", "new_source"], defer_loading=True),
        tool("WebFetch", "Fetches a URL.", {"url": {"type": "string", "format": "uri"}, "prompt": string}, ["url", "prompt"]),
        tool("TodoWrite", "Updates the todo list.", {"todos": {"type": "array", "items": {"type": "object", "properties": {"content": string, "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}}, "required": ["content", "status"]}}}, ["todos"]),
        tool("WebSearch", "Searches the web.", {"query": string}, ["query"]),
        tool("BashOutput", "Reads a background shell's output.", {"bash_id": string}, ["bash_id"], defer_loading=True),
        tool("KillShell", "Kills a background shell.", {"shell_id": string}, ["shell_id"], defer_loading=True),
        tool("SlashCommand", "Runs a slash command.", {"command": string}, ["command"], defer_loading=True),
        tool("Skill", "Runs a skill.", {"command": string}, ["command"]),
        tool("AskUserQuestion", "Asks the user.", {"questions": {"type": "array", "items": {"type": "object"}}}, ["questions"]),
        tool("EnterPlanMode", "Enter plan mode.", {}, []),
        tool("mcp__ide__getDiagnostics", "Language diagnostics from the IDE.", {"uri": string}, [], defer_loading=True),
        tool("mcp__ide__executeCode", "Runs code in the Jupyter kernel.", {"code": string}, ["code"], defer_loading=True, cache_control={"type": "ephemeral"}),
    ]
    return tools


def claude_code_body(messages: list[dict[str, Any]], model: str = "claude-opus-4-6") -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.90; cc_entrypoint=cli; cch=00000;"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": messages,
        "tools": claude_code_tools(),
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "5f0c8a4e-0000-4000-8000-000000000000"})},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "stream": True,
    }


def sdk_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """`messages.stream` keyword arguments for `body`: fields this SDK version does not type go
    in `extra_body`, so the request on the wire is the same."""
    typed = {"model", "max_tokens", "system", "messages", "tools", "metadata"}
    arguments = {key: value for key, value in body.items() if key in typed}
    arguments["extra_body"] = {key: value for key, value in body.items() if key not in typed and key != "stream"}
    return arguments


def test_claude_codes_request_shapes_complete_a_tool_round_trip(vscode: VsCodeBridge) -> None:
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14",
        "x-app": "cli",
        "user-agent": "claude-cli/2.1.90 (external, cli)",
    }
    client = vscode.anthropic(default_headers=headers)
    # The max_tokens:1 probe, not streamed, on the background model.
    probe = client.messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=1, messages=[{"role": "user", "content": "quota"}],
        metadata={"user_id": json.dumps({"session_id": "s"})},
    )
    assert probe.model == "copilot/claude-haiku-4.5"
    assert probe.content[0].text == "echo: quota"
    first_turn = [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nAs you answer, use the tools.\n</system-reminder>"},
            {"type": "text", "text": "[use-tool:Bash] list the files here", "cache_control": {"type": "ephemeral"}},
        ]},
        {"role": "system", "content": "The user's working directory is /repo."},
    ]
    body = claude_code_body(first_turn)
    # On the wire as Claude Code sends it: a streamed POST /v1/messages?beta=true.
    with vscode.deployment.http.stream("POST", "/v1/messages?beta=true", json=body, headers=headers) as raw:
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = [line for line in raw.iter_lines() if line.startswith("event: ")]
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
    assert "event: content_block_start" in events
    # The same through the SDK's stream accumulator.
    with client.messages.stream(**sdk_arguments(body), extra_query={"beta": "true"}) as stream:
        first = stream.get_final_message()
    # A stream names the requested model (message_start goes out before the client answers);
    # the main model's turn ran on Opus.
    assert first.model == "claude-opus-4-6"
    assert vscode.seen()["model"] == "copilot/claude-opus-4.6"
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "Bash"
    assert list(call.input) == ["command"] and "list the files here" in call.input["command"]
    # What VS Code's model saw: every tool in the prompt, deferred ones too, and the note.
    system = vscode.seen()["messages"][0]["content"][0]["value"]
    assert system.startswith("x-anthropic-billing-header")
    assert '{"name":"mcp__ide__executeCode"' in system
    second_turn = first_turn + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "README.md\nsrc", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "<system-reminder>\nThe todo list is empty.\n</system-reminder>"},
        ]},
    ]
    with client.messages.stream(**sdk_arguments(claude_code_body(second_turn))) as stream:
        texts = [event.delta.text for event in stream if event.type == "content_block_delta" and event.delta.type == "text_delta"]
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert "".join(texts) == second.content[0].text == "tool said: README.md\nsrc"
    assert second.usage.input_tokens > 1_000, "the tools and the system prompt count"


# ---- Streamable HTTP as VS Code speaks it ----


def test_the_event_stream_resumes_with_last_event_id(vscode: VsCodeBridge) -> None:
    only_http(vscode.kind, "VS Code's event stream is Streamable HTTP's GET")
    transport = vscode.client.transport
    assert isinstance(transport, HttpTransport)
    opened = len(transport.stream_statuses)
    transport.break_stream()
    wait_until(
        lambda: len(transport.stream_statuses) > opened
        or not any(s["event_stream_open"] for s in vscode.deployment.sessions()),
        what="the bridge to see the stream drop",
    )
    # A request made while the stream is down waits for the reconnect (about a second later).
    assert ask(vscode, "during the gap").content[0].text == "echo: during the gap"
    assert len(transport.stream_statuses) > opened
    assert transport.last_event_ids[0] is None
    assert transport.last_event_ids[-1] is not None, "it resumed from the last event it saw"
    assert transport.state_errors == []
