"""`count_tokens` and `/v1/models` through the official SDKs, against every target."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from conftest import Deployment, deploy
from test_messages import PNG_2X3, TOOLS

BODY: dict[str, Any] = {
    "model": "claude-bridge-test",
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}],
}


def test_count_tokens_matches_usage_of_the_same_request(target: Deployment) -> None:
    """One estimator serves both, so the numbers agree exactly."""
    client = target.anthropic()
    counted = client.messages.count_tokens(**BODY)
    created = client.messages.create(max_tokens=20, **BODY)
    assert counted.input_tokens > 0
    assert counted.input_tokens == created.usage.input_tokens


def test_count_tokens_counts_system_tools_tool_results_and_images(target: Deployment) -> None:
    client = target.anthropic()
    base = client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hello"}]).input_tokens
    with_system = client.messages.count_tokens(
        model="m", system="A long system prompt " * 20, messages=[{"role": "user", "content": "hello"}]
    ).input_tokens
    with_tools = client.messages.count_tokens(model="m", tools=TOOLS, messages=[{"role": "user", "content": "hello"}]).input_tokens
    with_image = client.messages.count_tokens(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_2X3}},
                ],
            }
        ],
    ).input_tokens
    with_tool_result = client.messages.count_tokens(
        model="m",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a result " * 30}]},
        ],
    ).input_tokens
    assert with_system > base + 30
    assert with_tools > base + 150  # tools count as the rendered tool prompt, whose fixed text is ~170 tokens
    assert with_image > base  # a 2×3 image is one token
    assert with_tool_result > base + 50


def test_count_tokens_errors(target: Deployment) -> None:
    response = target.http.post("/v1/messages/count_tokens", json={"model": "m"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "messages: Field required"
    assert response.headers["request-id"].startswith("req_")
    # No max_tokens needed here, unlike /v1/messages.
    ok = target.http.post("/v1/messages/count_tokens", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert ok.status_code == 200 and ok.json()["input_tokens"] >= 1


def test_models_list_what_clients_answered_with_and_claude_twins(target: Deployment) -> None:
    client = target.anthropic()
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "warm up"}])
    ids = [model.id for model in client.models.list()]
    assert "scripted-model" in ids
    assert "claude-mcp-scripted-model" in ids, "Claude Code's picker needs a claude-prefixed id"
    first_page = client.models.list(limit=1)
    assert len(first_page.data) == 1 and first_page.has_more
    assert first_page.data[0].type == "model" and first_page.data[0].created_at is not None
    # Asking for the twin sends the client its real model name as the hint.
    params = json.loads(
        client.messages.create(
            model="claude-mcp-scripted-model", max_tokens=50, messages=[{"role": "user", "content": "[inspect]"}]
        ).content[0].text
    )
    assert params["modelPreferences"]["hints"] == [{"name": "scripted-model"}]


def test_any_model_id_is_accepted_and_retrievable(target: Deployment) -> None:
    client = target.anthropic()
    model = client.models.retrieve("claude-opus-4-1-20250805[1m]")
    assert model.id == "claude-opus-4-1-20250805[1m]"
    message = client.messages.create(
        model="claude-opus-4-1-20250805[1m]", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert message.content[0].text == "echo: x"


def test_models_bad_query_is_400(target: Deployment) -> None:
    with pytest.raises(anthropic.BadRequestError):
        target.anthropic().models.list(limit=0)


def test_models_in_openai_shape_for_openai_callers(target: Deployment) -> None:
    target.anthropic().messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "warm up"}])
    models = target.openai().models.list()
    ids = [model.id for model in models.data]
    assert "scripted-model" in ids and "claude-mcp-scripted-model" in ids
    assert all(model.object == "model" for model in models.data)
    assert target.openai().models.retrieve("gpt-anything").id == "gpt-anything"


def test_aliases_and_default_hint(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, extra_args=["--model-alias", "claude-fast=gpt-mini", "--default-model-hint", "gpt-big"])
    deployments.append(deployment)
    client = deployment.anthropic()
    assert "claude-fast" in [model.id for model in client.models.list()]
    params = json.loads(
        client.messages.create(model="claude-fast", max_tokens=50, messages=[{"role": "user", "content": "[inspect]"}])
        .content[0]
        .text
    )
    assert params["modelPreferences"]["hints"] == [{"name": "gpt-mini"}, {"name": "gpt-big"}]
