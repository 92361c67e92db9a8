"""`/v1/messages` through the official Anthropic SDK, against every target."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import Deployment, deploy
from scripted_client import LONG_TEXT

# A real 2×3 PNG, so token estimation reads real dimensions.
PNG_2X3 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000002000000030806000000b9eade81"
        "0000001449444154789c63f8cfc0f01f8419e0108c0c00a23f0bf5f6ba47e30000000049454e44ae426082"
    )
).decode()


def inspect(target: Deployment, **body: Any) -> dict[str, Any]:
    """Sends a request whose last user text asks the scripted model to echo its params."""
    body.setdefault("model", "claude-bridge-test")
    body.setdefault("max_tokens", 100)
    message = target.anthropic().messages.create(**body)
    return json.loads(message.content[0].text)


def inspect_raw(target: Deployment, **body: Any) -> None:
    """Sends a request; its params are then the client's last record."""
    body.setdefault("model", "claude-bridge-test")
    body.setdefault("max_tokens", 100)
    target.anthropic().messages.create(**body)


def test_create_answers_with_the_clients_text_and_honest_usage(target: Deployment) -> None:
    raw = target.anthropic().messages.with_raw_response.create(
        model="claude-bridge-test", max_tokens=50, messages=[{"role": "user", "content": "hello bridge"}]
    )
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello bridge"
    assert message.model == "scripted-model"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_message_ids_are_unique(target: Deployment) -> None:
    client = target.anthropic()
    ids = {
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": f"n{i}"}]).id
        for i in range(20)
    }
    assert len(ids) == 20


def test_stream_get_final_message(target: Deployment) -> None:
    with target.anthropic().messages.stream(
        model="claude-bridge-test", max_tokens=50, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream me"
    assert final.content[0].text == "echo: stream me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_long_text_streams_in_several_deltas(target: Deployment) -> None:
    deltas = []
    with target.anthropic().messages.stream(
        model="m", max_tokens=2000, messages=[{"role": "user", "content": "[long]"}]
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                deltas.append(event.delta.text)
        final = stream.get_final_message()
    assert len(deltas) > 10
    assert "".join(deltas) == LONG_TEXT == final.content[0].text


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    frames = []
    for chunk in body.split("\n\n"):
        if not chunk.strip():
            continue
        lines = chunk.split("\n")
        assert lines[0].startswith("event: "), f"frame without an event line: {chunk!r}"
        assert lines[1].startswith("data: "), chunk
        event = lines[0][len("event: ") :]
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == event
        frames.append((event, data))
    return frames


def test_sse_framing_order_and_pings_while_waiting(target: Deployment) -> None:
    body = {"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "[slow:1] hi"}]}
    with target.http.stream("POST", "/v1/messages", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        text = response.read().decode()
    frames = parse_sse(text)
    names = [name for name, _ in frames]
    assert names[:2] == ["message_start", "ping"]
    # The model took 1 s and the bridge pings every 250 ms here (10 s by default).
    assert names.count("ping") >= 3
    content = [n for n in names if n != "ping"]
    assert content == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = frames[0][1]["message"]
    assert start["content"] == [] and start["usage"]["input_tokens"] > 0
    delta = next(d for n, d in frames if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0


def test_message_start_goes_out_before_the_client_answers(target: Deployment) -> None:
    prompt = "[slow:1.5] first byte"
    body = {"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    with target.http.stream("POST", "/v1/messages", json=body, timeout=10) as response:
        chunks = response.iter_text()
        first = next(chunks)
        assert first.startswith("event: message_start")
        assert prompt not in target.model().finished, "message_start waited for the model"
        rest = "".join(chunks)
    assert prompt in target.model().finished
    assert "message_stop" in rest


TOOLS = [
    {
        "name": "lookup",
        "description": "Look a thing up",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }
]


def test_tool_use_round_trip(target: Deployment) -> None:
    client = target.anthropic()
    first = client.messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "find cats"}],
    )
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "lookup"
    assert tool_use.input == {"query": "find cats"}
    second = client.messages.create(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "find cats"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "3 cats found"}],
            },
        ],
    )
    assert second.content[0].text == "tool said: 3 cats found"
    assert second.stop_reason == "end_turn"


def test_tool_use_streamed_as_input_json_deltas(target: Deployment) -> None:
    partials = []
    with target.anthropic().messages.stream(
        model="m",
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": "[use-tool] " + "x" * 200}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partials.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len(partials) > 1
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert tool_use.input == {"query": "[use-tool] " + "x" * 200}
    assert json.loads("".join(partials)) == tool_use.input
    assert final.stop_reason == "tool_use"


def test_tool_choice_specific_tool_becomes_required_plus_instruction(target: Deployment) -> None:
    params = inspect(
        target,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "lookup", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "[inspect]"}],
    )
    assert params["toolChoice"] == {"mode": "required"}
    assert "`lookup`" in params["systemPrompt"]
    assert "at most one tool" in params["systemPrompt"]
    assert params["tools"][0]["name"] == "lookup"
    assert params["tools"][0]["inputSchema"]["required"] == ["query"]


def test_fields_reach_the_client_as_mcp_sampling_params(target: Deployment) -> None:
    # What the client received, from its own record: the echoed text would be cut at the stop
    # sequence it contains (the bridge applies stop sequences to every answer).
    inspect_raw(
        target,
        model="claude-opus-4-1",
        max_tokens=321,
        stop_sequences=["STOP"],
        # Older SDKs and most clients still send it; the current SDK only via extra_body.
        extra_body={"temperature": 0.25, "top_p": 0.9, "top_k": 40},
        metadata={"user_id": '{"device":"abc"}'},
        system=[{"type": "text", "text": "first"}, {"type": "text", "text": "second", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "[inspect]"}],
    )
    params = target.model().received[-1]
    assert params["maxTokens"] == 321
    assert params["temperature"] == 0.25
    assert params["stopSequences"] == ["STOP"]
    # The id first, then the forms a loosely matching client (VS Code) can find (docs/api.md#model-hints).
    assert [hint["name"] for hint in params["modelPreferences"]["hints"]] == [
        "claude-opus-4-1", "claude-opus-4.1", "claude-opus-4", "claude-opus", "opus"
    ]
    assert params["metadata"] == {"user_id": '{"device":"abc"}'}
    assert params["systemPrompt"] == "first\n\nsecond"


def test_images_pass_through_as_base64(target: Deployment) -> None:
    message = target.anthropic().messages.create(
        model="m",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_2X3}},
                ],
            }
        ],
    )
    assert message.content[0].text == "saw 1 image(s): image/png"
    received = target.model().received[-1]["messages"][-1]["content"]
    assert received[1] == {"type": "image", "data": PNG_2X3, "mimeType": "image/png"}


def test_images_inside_tool_results(target: Deployment) -> None:
    message = target.anthropic().messages.create(
        model="m",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "shoot"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "is_error": False,
                        "content": [
                            {"type": "text", "text": "screenshot"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_2X3}},
                        ],
                    }
                ],
            },
        ],
    )
    assert message.content[0].text == "tool said: screenshot"
    tool_result = target.model().received[-1]["messages"][-1]["content"]
    assert tool_result["type"] == "tool_result"
    assert tool_result["toolUseId"] == "toolu_1"
    assert tool_result["content"][1]["mimeType"] == "image/png"


def test_text_beside_tool_results_follows_them_in_its_own_message(target: Deployment) -> None:
    # MCP wants a message with tool results to hold only tool results; agents put reminders there.
    message = target.anthropic().messages.create(
        model="m",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "find"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"},
                    {"type": "text", "text": "<reminder>be brief</reminder>"},
                ],
            },
        ],
    )
    assert message.content[0].text
    sent = target.model().received[-1]["messages"]
    assert sent[-2] == {
        "role": "user",
        "content": {"type": "tool_result", "toolUseId": "toolu_1", "content": [{"type": "text", "text": "found it"}]},
    }
    assert sent[-1] == {"role": "user", "content": {"type": "text", "text": "<reminder>be brief</reminder>"}}


class _PngHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = base64.b64decode(PNG_2X3)
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_url_images_to_private_addresses_are_refused(target: Deployment) -> None:
    for url in ["http://127.0.0.1:9/cat.png", "http://localhost/cat.png", "http://169.254.169.254/latest", "file:///etc/passwd"]:
        response = target.http.post(
            "/v1/messages",
            json={
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": url}}]}],
            },
        )
        assert response.status_code == 400, url
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "refused" in response.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_url_images_are_downloaded_when_allowed(kind: str, deployments: list[Deployment]) -> None:
    """The download path, on loopback: only possible with the opt-in flag, which is the point."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PngHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deployment = deploy(kind, extra_args=["--allow-private-image-urls"])
        deployments.append(deployment)
        url = f"http://127.0.0.1:{server.server_address[1]}/cat"
        message = deployment.anthropic().messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": url}}]}],
        )
        assert message.content[0].text == "saw 1 image(s): image/png"
        received = deployment.model().received[-1]["messages"][-1]["content"]
        assert received == {"type": "image", "data": PNG_2X3, "mimeType": "image/png"}
    finally:
        server.shutdown()


def test_claude_code_shaped_request(target: Deployment) -> None:
    """What Claude Code sends on every turn: streaming, ?beta=true, beta header, 3-block system,
    thinking, cache hints, role:system notes, server tools beside custom ones."""
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment."},
            {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "earlier"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "eA=="},
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "system", "content": "<system-reminder>be careful</system-reminder>"},
            {"role": "user", "content": [{"type": "text", "text": "[inspect]", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        ],
        "tools": [
            {**TOOLS[0], "strict": True, "defer_loading": False, "cache_control": {"type": "ephemeral"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive", "display": "summarized"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
        "service_tier": "auto",
        "temperature": 1,
        "speed": "fast",
        "diagnostics": {"enabled": True},
        "inference_geo": "us",
        "container": None,
        "mcp_servers": [],
    }
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
        # Claude Code sends its key; on the worker the key names the namespace, so use the deployment's.
        "x-api-key": target.api_key or "sk-ant-anything",
    }
    response = target.http.post("/v1/messages?beta=true", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    text = "".join(d["delta"]["text"] for n, d in frames if n == "content_block_delta")
    params = json.loads(text)
    # The server tool is not offered; the model is told it cannot run here (docs/api.md#anthropic-defined-tools).
    assert params["systemPrompt"].startswith("You are Claude Code.\n\nEnvironment.\n\nRules.\n\n# Unavailable tools\n")
    assert "cannot run here: `web_search`" in params["systemPrompt"]
    assert [t["name"] for t in params["tools"]] == ["lookup"]
    assert params["messages"][1] == {"role": "assistant", "content": {"type": "text", "text": "answer"}}
    last_user = params["messages"][2]["content"]
    assert last_user[0]["text"] == "<system-note>\n<system-reminder>be careful</system-reminder>\n</system-note>"
    assert last_user[1]["text"] == "[inspect]"


def test_max_tokens_one_probe(target: Deployment) -> None:
    message = target.anthropic().messages.create(model="claude-haiku-4-5", max_tokens=1, messages=[{"role": "user", "content": "quota"}])
    assert message.usage.output_tokens >= 1


def test_three_hundred_concurrent_requests_each_get_their_own_answer(kind: str, deployments: list[Deployment]) -> None:
    # The point is routing, not speed: a generous deadline, since under `wrangler dev` on two
    # cores 300 round trips through Durable Objects and the Python client take seconds.
    target = deploy(kind, extra_args=["--request-timeout-secs", "30"])
    deployments.append(target)

    async def run() -> list[tuple[int, str]]:
        client = target.async_anthropic(timeout=60)

        async def one(i: int) -> tuple[int, str]:
            message = await client.messages.create(
                model="m", max_tokens=20, messages=[{"role": "user", "content": f"prompt number {i}"}]
            )
            return i, message.content[0].text

        try:
            return await asyncio.gather(*(one(i) for i in range(300)))
        finally:
            await client.close()

    results = asyncio.run(run())
    assert len(results) == 300
    for i, text in results:
        assert text == f"echo: prompt number {i}"
    target.assert_idle()


def test_health_and_head_root(target: Deployment) -> None:
    health = target.health()
    assert health["status"] == "ok" and health["mode"] == target.kind
    assert health["sampling_sessions"] == 1
    head = target.http.head("/")
    assert head.status_code == 200 and head.headers["request-id"].startswith("req_")
