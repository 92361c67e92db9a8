"""What only the worker has: token namespaces, the token allow-list, and sessions that outlive
their Durable Object's eviction."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import httpx
import pytest

from conftest import ROOT, ClientSpec, Deployment, WranglerDev, deploy, free_port, wait_for_health
from test_sessions import RawMcpClient

OK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
WHOAMI = {**OK, "messages": [{"role": "user", "content": "[whoami]"}]}


def test_tokens_are_namespaces(deployments: list[Deployment]) -> None:
    alpha = deploy("worker", [ClientSpec("alpha")], api_key="tok-alpha-namespace")
    beta = deploy("worker", [ClientSpec("beta")], api_key="tok-beta-namespace")
    deployments += [alpha, beta]
    # Without a session header each token reaches its own, only, client.
    assert alpha.anthropic().messages.create(**WHOAMI).content[0].text == "alpha"
    assert beta.anthropic().messages.create(**WHOAMI).content[0].text == "beta"
    assert [s["client_name"] for s in alpha.sessions()] == ["alpha"]
    assert [s["client_name"] for s in beta.sessions()] == ["beta"]
    # B's session id, presented with A's token, names nothing.
    beta_id = beta.session_id("beta")
    stolen = alpha.http.post("/v1/messages", json=WHOAMI, headers={"x-mcp-session-id": beta_id})
    assert stolen.status_code == 404
    assert stolen.json()["error"]["type"] == "not_found_error"
    mcp = alpha.http.post(
        "/mcp",
        headers={"mcp-session-id": beta_id, "accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    assert mcp.status_code == 404
    assert alpha.http.get("/mcp", headers={"mcp-session-id": beta_id}).status_code == 404
    assert alpha.http.delete("/mcp", headers={"mcp-session-id": beta_id}).status_code == 404
    # B's session survived A's attempts.
    assert beta.anthropic().messages.create(**WHOAMI).content[0].text == "beta"
    # No token at all: refused everywhere but /health.
    assert httpx.post(f"{alpha.base_url}/v1/messages", json=OK).status_code == 401
    assert httpx.get(f"{alpha.base_url}/health").status_code == 200


def test_allow_list_restricts_tokens(deployments: list[Deployment]) -> None:
    instance = WranglerDev({"ALLOWED_TOKENS": "tok-allowed-one, tok-allowed-two", "REQUEST_TIMEOUT_SECS": "3"})
    try:
        refused = httpx.post(f"{instance.base_url}/v1/messages", json=OK, headers={"x-api-key": "tok-stranger"})
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "this token is not allowed on this deployment"
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}}}
        assert httpx.post(f"{instance.base_url}/mcp", json=init, headers={"authorization": "Bearer tok-stranger"}).status_code == 401
        allowed = Deployment("worker", instance.base_url, api_key="tok-allowed-two")
        deployments.append(allowed)
        allowed.connect(ClientSpec("allowed"))
        assert allowed.anthropic().messages.create(**OK).content[0].text == "echo: x"
    finally:
        instance.stop()


def test_two_tokens_reach_the_namespace_of_the_allowed_one(deployments: list[Deployment]) -> None:
    """A caller that presents two tokens (x-api-key and Authorization: Bearer) of which only the
    second is on the allow-list is served in that token's namespace, as natively either key lets
    a caller in; neither allowed is a 401."""
    instance = WranglerDev({"ALLOWED_TOKENS": "tok-allowed-two", "REQUEST_TIMEOUT_SECS": "3", "STREAM_WAIT_MS": "500"})
    try:
        allowed = Deployment("worker", instance.base_url, api_key="tok-allowed-two")
        deployments.append(allowed)
        allowed.connect(ClientSpec("two"))
        both = {"x-api-key": "tok-stranger", "authorization": "Bearer tok-allowed-two"}
        reply = httpx.post(f"{instance.base_url}/v1/messages", json=WHOAMI, headers=both, timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"][0]["text"] == "two"
        listed = httpx.get(f"{instance.base_url}/sessions", headers=both, timeout=5).json()["data"]
        assert [s["client_name"] for s in listed] == ["two"]
        # The same through the SDK: its key as x-api-key, a Bearer token added by the caller.
        sdk = anthropic.Anthropic(
            base_url=instance.base_url, api_key="tok-stranger", default_headers={"authorization": "Bearer tok-allowed-two"}
        )
        assert sdk.messages.create(**WHOAMI).content[0].text == "two"
        neither = httpx.post(
            f"{instance.base_url}/v1/messages", json=OK, headers={"x-api-key": "tok-stranger", "authorization": "Bearer tok-other"}
        )
        assert neither.status_code == 401
        assert neither.json()["error"]["type"] == "authentication_error"
    finally:
        instance.stop()


def test_sessions_survive_a_restart_of_their_objects(deployments: list[Deployment]) -> None:
    """A deploy or an eviction drops every object's memory and cuts the streams; storage stays.
    A client that reconnects its stream with the same session id keeps working."""
    port = free_port()
    variables = {"REQUEST_TIMEOUT_SECS": "10", "STREAM_WAIT_MS": "5000"}
    first = WranglerDev(variables, port=port)
    token = "tok-restart"
    try:
        client = RawMcpClient(f"{first.base_url}/mcp", {"x-api-key": token})
        answer_once(first.base_url, token, client, "before")
    finally:
        first.stop()
    second = WranglerDev(variables, port=port, state=first.state)
    try:
        answer_once(second.base_url, token, client, "after the restart")
    finally:
        second.stop()


def answer_once(base_url: str, token: str, client: RawMcpClient, text: str) -> None:
    result: dict[str, Any] = {}

    def ask() -> None:
        result["response"] = httpx.post(f"{base_url}/v1/messages", json=OK, headers={"x-api-key": token}, timeout=20)

    request = threading.Thread(target=ask)
    request.start()
    client.answer_from_stream(text)
    request.join(20)
    response = result["response"]
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == text
