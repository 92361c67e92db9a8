"""Tools and structured outputs for an MCP client that did not declare `sampling.tools` (VS Code
with Copilot, Copilot CLI): the bridge carries the tools in the prompt and parses the answer's
`<tool_call>` text back (docs/api.md, "Tool emulation"). The scripted client answers like a model that
follows that prompt. Also: structured outputs through both APIs, and the gateway endpoints
Claude clients call (`/api/hello`, model entry fields)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Iterator

import httpx
import pytest

from conftest import TARGETS, ClientSpec, Deployment, deploy, wait_until

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
assert base64.b64decode(PNG_1X1)

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
TIME = {
    "name": "get_time",
    "description": "Current time in a city.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}
TOOLS = [WEATHER, TIME]
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "integer"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", params=TARGETS)
def plain(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A bridge in the default tool mode (auto) with one client that samples without tools."""
    deployment = deploy(request.param, [ClientSpec(name="plain", tools=False)])
    yield deployment
    deployment.close()


def last_params(target: Deployment) -> dict[str, Any]:
    return target.model("plain").received[-1]


def texts_of(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    blocks = content if isinstance(content, list) else [content]
    return [block["text"] for block in blocks if block["type"] == "text"]


def test_sessions_say_the_client_gets_emulated_tools(plain: Deployment) -> None:
    session = next(s for s in plain.sessions() if s["client_name"] == "plain")
    assert session["sampling_tools"] is False
    assert session["tools"] == "emulated"


def test_tool_round_trip_through_the_anthropic_sdk(plain: Deployment) -> None:
    client = plain.anthropic()
    first = client.messages.create(
        model="claude-bridge-test",
        max_tokens=200,
        system="You are a weather bot.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "[use-tool] weather in Paris"}],
    )
    assert first.stop_reason == "tool_use"
    assert [block.type for block in first.content] == ["text", "tool_use"]
    assert first.content[0].text == "I will use get_weather."
    call = first.content[1]
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert call.input == {"query": "[use-tool] weather in Paris"}
    sent = last_params(plain)
    # No native tools reach the client: they are in the prompt, after the caller's own text.
    assert "tools" not in sent and "toolChoice" not in sent
    assert sent["systemPrompt"].startswith("You are a weather bot.\n\n# Tools\n\nYou can call these tools:\n<tools>\n")
    assert '{"name":"get_weather","description":"Current weather for a city.","input_schema":' in sent["systemPrompt"]

    second = client.messages.create(
        model="claude-bridge-test",
        max_tokens=200,
        system="You are a weather bot.",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "[use-tool] weather in Paris"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}]},
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool said: 18 degrees"
    history = last_params(plain)["messages"]
    assert texts_of(history[1]) == [
        "I will use get_weather.",
        f'<tool_call>{{"name": "get_weather", "arguments": {json.dumps(call.input, separators=(",", ":"))}, "id": "{call.id}"}}</tool_call>',
    ]
    assert texts_of(history[2]) == [f'<tool_response id="{call.id}" name="get_weather">\n18 degrees\n</tool_response>']


def test_tool_calls_stream_with_the_usual_framing(plain: Deployment) -> None:
    events: list[Any] = []
    with plain.anthropic().messages.stream(
        model="claude-bridge-test",
        max_tokens=200,
        tools=TOOLS,
        messages=[{"role": "user", "content": "[use-tool] stream it"}],
    ) as stream:
        for event in stream:
            events.append(event)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"query": "[use-tool] stream it"}
    partial = "".join(
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == {"query": "[use-tool] stream it"}
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["text", "tool_use"]


def test_tool_choice_any_named_and_none(plain: Deployment) -> None:
    client = plain.anthropic()
    # any: the instruction requires a call, and the model makes one without being asked.
    message = client.messages.create(
        model="m", max_tokens=100, tools=TOOLS, tool_choice={"type": "any"}, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.stop_reason == "tool_use"
    assert "You must call at least one tool" in last_params(plain)["systemPrompt"]
    # A named tool: that one.
    message = client.messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert [b.name for b in message.content if b.type == "tool_use"] == ["get_time"]
    system = last_params(plain)["systemPrompt"]
    assert "You must call the tool `get_time` in this response, and no other tool." in system
    assert "Call at most one tool in this response." in system
    # none: the tools stay out of the prompt, so the model answers in text.
    message = client.messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "none"},
        messages=[{"role": "user", "content": "[use-tool] no tools please"}],
    )
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == "echo: [use-tool] no tools please"
    assert "systemPrompt" not in last_params(plain)


def test_parallel_calls_and_their_results(plain: Deployment) -> None:
    client = plain.anthropic()
    first = client.messages.create(
        model="m", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "[parallel] both"}]
    )
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    assert calls[1].input == {"query": "second"}
    second = client.messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "[parallel] both"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": calls[1].id, "content": "noon", "is_error": True},
                ],
            },
        ],
    )
    assert second.content[0].text == "tool said: sunny; noon"
    sent = texts_of(last_params(plain)["messages"][2])
    assert sent[1] == f'<tool_response id="{calls[1].id}" name="get_time" is_error="true">\nnoon\n</tool_response>'


def test_tool_result_images_follow_the_response_block(plain: Deployment) -> None:
    message = plain.anthropic().messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "take a screenshot"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_shot", "name": "get_time", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_shot",
                        "content": [
                            {"type": "text", "text": "screenshot"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
                        ],
                    }
                ],
            },
        ],
    )
    assert message.content[0].text == "tool said: screenshot (saw 1 image(s): image/png)"
    content = last_params(plain)["messages"][2]["content"]
    assert content[0]["text"].startswith('<tool_response id="toolu_shot" name="get_time">\nscreenshot\n')
    assert content[1] == {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}


def test_a_call_to_a_tool_not_offered_stays_text(plain: Deployment) -> None:
    message = plain.anthropic().messages.create(
        model="m", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "[unknown-tool] try"}]
    )
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert '<tool_call>{"name": "not_offered"' in message.content[0].text


@pytest.mark.parametrize("variant", ["[fenced-call]", "[string-args]"])
def test_call_variants_models_write_are_understood(plain: Deployment, variant: str) -> None:
    message = plain.anthropic().messages.create(
        model="m", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": f"{variant} go"}]
    )
    assert message.stop_reason == "tool_use"
    assert message.content[1].input == {"query": f"{variant} go"}


def test_claude_code_shaped_turn(plain: Deployment) -> None:
    """The shape Claude Code sends on every turn: streamed, `?beta=true`, three system blocks,
    tools with strict/defer_loading/cache_control, system notes in messages, adaptive thinking,
    output_config.effort, context_management, a JSON string as metadata.user_id."""
    tools = [
        {**tool, "strict": True, "defer_loading": False, "cache_control": {"type": "ephemeral"}} for tool in TOOLS
    ] + [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    with plain.anthropic().messages.stream(
        model="claude-bridge-test",
        max_tokens=32000,
        system=[
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment: linux"},
            {"type": "text", "text": "Rules: be careful"},
        ],
        tools=tools,
        tool_choice={"type": "auto"},
        metadata={"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "hi"}]},
            {"role": "system", "content": "<system-reminder>todo list is empty</system-reminder>"},
            {"role": "user", "content": "[use-tool] check the weather"},
        ],
        extra_query={"beta": "true"},
        extra_headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
        extra_body={
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        },
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[1].name == "get_weather"
    system = last_params(plain)["systemPrompt"]
    assert system.startswith("You are Claude Code.\n\nEnvironment: linux\n\nRules: be careful\n\n# Tools\n")
    # The server tool is not among the tools offered, but the model hears that it cannot run here.
    assert '{"name":"web_search"' not in system
    assert "cannot run here: `web_search`" in system
    # The context meter counts what the client is sent, tool prompt included.
    counted = plain.anthropic().messages.count_tokens(
        model="claude-bridge-test", tools=TOOLS, messages=[{"role": "user", "content": "hi"}]
    )
    bare = plain.anthropic().messages.count_tokens(model="claude-bridge-test", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens - bare.input_tokens > 100
    assert final.usage.input_tokens > counted.input_tokens


def test_openai_chat_with_tools(plain: Deployment) -> None:
    client = plain.openai()
    functions = [
        {"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}}
        for t in TOOLS
    ]
    first = client.chat.completions.create(
        model="gpt-4.1", tools=functions, messages=[{"role": "user", "content": "[use-tool] weather in Oslo"}]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"query": "[use-tool] weather in Oslo"}
    assert choice.message.content == "I will use get_weather."
    second = client.chat.completions.create(
        model="gpt-4.1",
        tools=functions,
        messages=[
            {"role": "user", "content": "[use-tool] weather in Oslo"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "rain"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "tool said: rain"
    # Streamed, the call arrives as tool_call deltas.
    stream = client.chat.completions.create(
        model="gpt-4.1",
        tools=functions,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        messages=[{"role": "user", "content": "what time"}],
        stream=True,
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tool_call in delta.tool_calls or []:
            if tool_call.function.name:
                names.append(tool_call.function.name)
            arguments += tool_call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_time"] and finish == "tool_calls"
    assert json.loads(arguments) == {"query": "what time"}


def test_structured_output_through_the_anthropic_api(plain: Deployment) -> None:
    client = plain.anthropic()
    for field in ({"output_config": {"format": {"type": "json_schema", "schema": CITY_SCHEMA}}},
                  {"output_format": {"type": "json_schema", "schema": CITY_SCHEMA}}):
        message = client.messages.create(
            model="claude-bridge-test",
            max_tokens=100,
            messages=[{"role": "user", "content": "Paris weather"}],
            extra_body=field,
        )
        # The client answered with a sentence and a fenced block; the caller gets the value only.
        assert json.loads(message.content[0].text) == {"city": "echo: Paris weather", "temperature": 42}
        assert message.content[0].text.startswith("{")
        system = last_params(plain)["systemPrompt"]
        assert system.startswith("# Response format\n\nYour answer must be exactly one JSON value")
        assert json.dumps(CITY_SCHEMA, separators=(",", ":"), sort_keys=True) in system


def test_structured_output_after_a_tool_loop(plain: Deployment) -> None:
    message = plain.anthropic().messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"query": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_w", "content": "25"}]},
        ],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": CITY_SCHEMA}}},
    )
    assert message.stop_reason == "end_turn"
    assert json.loads(message.content[0].text) == {"city": "tool said: 25", "temperature": 42}
    system = last_params(plain)["systemPrompt"]
    assert system.index("# Tools") < system.index("# Response format")
    assert "When you answer without calling a tool" in system


def test_structured_output_through_openai_chat(plain: Deployment) -> None:
    client = plain.openai()
    completion = client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "Paris weather"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": CITY_SCHEMA}},
    )
    assert json.loads(completion.choices[0].message.content) == {"city": "echo: Paris weather", "temperature": 42}
    completion = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "anything"}], response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content) == {"answer": "echo: anything"}


def test_unknown_output_format_is_refused_not_dropped(plain: Deployment) -> None:
    response = plain.http.post(
        "/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
              "output_config": {"format": {"type": "yaml"}}},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("output_config.format")


def test_models_carry_limits_and_a_family_tier(plain: Deployment) -> None:
    plain.anthropic().messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    listed = plain.http.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).json()["data"]
    twin = next(entry for entry in listed if entry["id"] == "claude-mcp-scripted-model")
    assert twin["max_input_tokens"] == 128000
    assert twin["max_tokens"] == 32000
    assert twin["anthropic_family_tier"] == "sonnet"


def test_api_hello_answers_without_a_key(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, [ClientSpec(name="plain", tools=False)], api_key="secret-key")
    deployments.append(deployment)
    for method in ("HEAD", "GET"):
        response = httpx.request(method, f"{deployment.base_url}/api/hello", timeout=5)
        assert response.status_code == 200, (method, response.text)
    assert httpx.get(f"{deployment.base_url}/v1/models", timeout=5).status_code == 401


def test_native_mode_still_refuses_and_emulate_applies_to_every_client(kind: str, deployments: list[Deployment]) -> None:
    native = deploy(kind, [ClientSpec(name="plain", tools=False)], ["--tools", "native"])
    deployments.append(native)
    assert native.sessions()[0]["tools"] == "native"
    emulating = deploy(kind, [ClientSpec(name="full")], ["--tools", "emulate"])
    deployments.append(emulating)
    assert emulating.sessions()[0]["tools"] == "emulated"
    message = emulating.anthropic().messages.create(
        model="m", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "[use-tool] x"}]
    )
    assert message.stop_reason == "tool_use"
    assert "tools" not in emulating.model("full").received[-1]


def test_connect_log_line_says_how_tools_travel(kind: str, deployments: list[Deployment], tmp_path: Any) -> None:
    deployment = deploy(kind, [ClientSpec(name="plain-logged", tools=False)], log_path=tmp_path / "bridge.log")
    deployments.append(deployment)
    line = re.compile(r"MCP client connected.*plain-logged.*sampling_tools=false.*tools=\"?emulated")
    wait_until(lambda: line.search(deployment.log_text()) is not None, what="the connect log line")
