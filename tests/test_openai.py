"""`POST /v1/chat/completions` through the official `openai` SDK, against every target."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import Deployment
from test_messages import PNG_2X3

FUNCTIONS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def test_chat_completion(target: Deployment) -> None:
    raw = target.openai().chat.completions.with_raw_response.create(
        model="gpt-bridge", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    )
    completion = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    received = target.model().received[-1]
    assert received["systemPrompt"] == "be brief"


def test_chat_completion_stream_with_usage(target: Deployment) -> None:
    stream = target.openai().chat.completions.create(
        model="gpt-bridge",
        messages=[{"role": "user", "content": "[long]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    from scripted_client import LONG_TEXT

    assert text == LONG_TEXT
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 10
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_stream_wire_format_ends_with_done_and_keeps_alive(target: Deployment) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "[slow:1] x"}]}
    response = target.http.post("/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[0].startswith("data: {") and '"role":"assistant"' in events[0]
    assert ": keepalive" in events, "keep-alive comments while the model works"
    assert events[-1] == "data: [DONE]"


def test_tool_calls_round_trip(target: Deployment) -> None:
    client = target.openai()
    first = client.chat.completions.create(
        model="m", tools=FUNCTIONS, tool_choice="required", messages=[{"role": "user", "content": "find cats"}]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "find cats"}
    second = client.chat.completions.create(
        model="m",
        tools=FUNCTIONS,
        messages=[
            {"role": "user", "content": "find cats"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "3 cats"},
        ],
    )
    assert second.choices[0].message.content == "tool said: 3 cats"


def test_tool_calls_streamed(target: Deployment) -> None:
    stream = target.openai().chat.completions.create(
        model="m", tools=FUNCTIONS, stream=True, messages=[{"role": "user", "content": "[use-tool] " + "y" * 150}]
    )
    arguments = ""
    name = None
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = call.function.name or name
            arguments += call.function.arguments or ""
    assert name == "lookup"
    assert json.loads(arguments) == {"query": "[use-tool] " + "y" * 150}


def test_images_as_data_urls(target: Deployment) -> None:
    completion = target.openai().chat.completions.create(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_2X3}"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "saw 1 image(s): image/png"


def test_errors_have_openai_shape(target: Deployment) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        target.openai().chat.completions.create(model="m", messages=[])
    assert "at least one message" in raised.value.message
    response = target.http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "model: Field required"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["request-id"].startswith("req_")
    with pytest.raises(openai.BadRequestError):
        target.openai().chat.completions.create(model="m", n=2, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError):
        target.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": "[decline]"}])
    not_found = target.http.get("/v1/chat/nothing")
    assert not_found.status_code == 404 and "error" in not_found.json()
