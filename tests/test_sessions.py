"""MCP session behaviour: the dual-era handshake, routing between clients, and what happens to
API requests when a session ends or has no stream."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from conftest import ClientSpec, Deployment, deploy, not_on_worker, only_http, wait_until

OK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def test_sdk_in_auto_mode_negotiates_the_handshake_era(target: Deployment) -> None:
    # The client probed server/discover first (auto mode), got an error, fell back to initialize.
    assert target.clients["main"].protocol_version == "2025-11-25"


def test_discover_probe_over_http_gets_a_json_rpc_error(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "the probe over stdio is exercised by every stdio deployment's auto-mode client")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    probe = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
    }
    response = deployment.http.post("/mcp", json=probe, headers=MCP_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32601
    assert "mcp-session-id" not in response.headers
    # The server stays up for the initialize that follows.
    deployment.connect(ClientSpec("after-probe"))
    assert deployment.anthropic().messages.create(**OK).content[0].text == "echo: x"


def test_routing_between_two_clients(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "a stdio bridge serves exactly one MCP client, its own parent")
    deployment = deploy(kind, [ClientSpec("alpha"), ClientSpec("beta")])
    deployments.append(deployment)
    whoami = {**OK, "messages": [{"role": "user", "content": "[whoami]"}]}
    ambiguous = deployment.http.post("/v1/messages", json=whoami)
    assert ambiguous.status_code == 400
    assert "x-mcp-session-id" in ambiguous.json()["error"]["message"]
    for name in ["alpha", "beta"]:
        client = deployment.anthropic(default_headers={"x-mcp-session-id": deployment.session_id(name)})
        assert client.messages.create(**whoami).content[0].text == name
    unknown = deployment.http.post("/v1/messages", json=whoami, headers={"x-mcp-session-id": "f" * 32})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"


def test_session_ids_are_unguessable(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has one fixed session")
    deployment = deploy(kind, [ClientSpec("a"), ClientSpec("b")])
    deployments.append(deployment)
    # Listed ids are public handles: `mcps_` and 96 bits, no hold on the session.
    ids = [s["id"] for s in deployment.sessions()]
    assert len(set(ids)) == 2
    assert all(i.startswith("mcps_") and len(i) == 29 and int(i[5:], 16) >= 0 for i in ids)
    # The credential itself, the Mcp-Session-Id that initialize hands only to its client: 128
    # random bits in hex, never among the listed ids.
    secrets = [RawMcpClient(deployment.mcp_url, deployment.auth_headers()).session_id for _ in range(2)]
    assert len(set(secrets)) == 2
    assert all(len(s) == 32 and int(s, 16) >= 0 for s in secrets)
    listed = {s["id"] for s in deployment.sessions()}
    assert not listed & set(secrets) and len(listed) == 4


def test_ending_a_session_fails_its_pending_requests_at_once(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio: the process exits with its client; tested in the Rust integration suite")
    deployment = deploy(kind, [ClientSpec("stays"), ClientSpec("leaves")])
    deployments.append(deployment)
    leaving_id = deployment.session_id("leaves")
    outcome: dict[str, Any] = {}

    def slow_request() -> None:
        started = time.monotonic()
        response = deployment.http.post(
            "/v1/messages",
            json={**OK, "messages": [{"role": "user", "content": "[slow:30] pending"}]},
            headers={"x-mcp-session-id": leaving_id},
            timeout=30,
        )
        outcome["elapsed"] = time.monotonic() - started
        outcome["response"] = response

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_until(lambda: "[slow:30] pending" in deployment.model("leaves").started, what="request reached the client")
    ended_at = time.monotonic()
    deployment.clients.pop("leaves").stop()  # the SDK sends DELETE on exit
    thread.join(10)
    response = outcome["response"]
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert time.monotonic() - ended_at < 5
    assert [s["client_name"] for s in deployment.sessions()] == ["stays"]
    # The remaining client is now the only one, so routing without a header works again.
    assert deployment.anthropic().messages.create(**OK).content[0].text == "echo: x"


class RawMcpClient:
    """A minimal Streamable HTTP client, for what the SDK never does (no GET stream)."""

    def __init__(self, url: str, auth: dict[str, str]) -> None:
        self.url = url
        self.http = httpx.Client(timeout=10, headers=auth)
        init = self.http.post(
            url,
            headers=MCP_HEADERS,
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"sampling": {}},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            },
        )
        assert init.status_code == 200, init.text
        self.session_id = init.headers["mcp-session-id"]
        self.headers = {**MCP_HEADERS, "mcp-session-id": self.session_id, "mcp-protocol-version": "2025-11-25"}
        note = self.http.post(url, headers=self.headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert note.status_code == 202

    def answer_from_stream(self, text: str) -> None:
        """Opens the GET stream, answers the first sampling request with `text`."""
        with self.http.stream("GET", self.url, headers={**self.headers, "accept": "text/event-stream"}) as stream:
            for line in stream.iter_lines():
                # Empty data: the priming event, an id to resume from and no message.
                if line.startswith("data: ") and line != "data: ":
                    request = json.loads(line[len("data: ") :])
                    assert request["method"] == "sampling/createMessage"
                    result = {"role": "assistant", "content": {"type": "text", "text": text}, "model": "raw-model"}
                    reply = self.http.post(
                        self.url, headers=self.headers, json={"jsonrpc": "2.0", "id": request["id"], "result": result}
                    )
                    assert reply.status_code == 202
                    return


def test_no_event_stream_fails_fast_with_a_clear_error(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no GET stream")
    deployment = deploy(kind, [], extra_args=["--stream-wait-ms", "500"])
    deployments.append(deployment)
    RawMcpClient(deployment.mcp_url, deployment.auth_headers())
    started = time.monotonic()
    response = deployment.http.post("/v1/messages", json=OK, timeout=10)
    assert response.status_code == 503
    assert "no open event stream" in response.json()["error"]["message"]
    assert time.monotonic() - started < 3
    deployment.assert_idle()


def test_a_stream_opened_late_still_gets_the_request(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no GET stream")
    deployment = deploy(kind, [], extra_args=["--stream-wait-ms", "3000"])
    deployments.append(deployment)
    raw = RawMcpClient(deployment.mcp_url, deployment.auth_headers())
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(
        target=lambda: result.update(r=deployment.http.post("/v1/messages", json=OK, timeout=10))
    )
    request.start()
    time.sleep(0.5)
    raw.answer_from_stream("late but here")
    request.join(10)
    assert result["r"].status_code == 200
    assert result["r"].json()["content"][0]["text"] == "late but here"
    assert result["r"].json()["model"] == "raw-model"


def test_unknown_session_on_mcp_endpoint_is_404(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no /mcp endpoint")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    headers = {**MCP_HEADERS, "mcp-session-id": "0" * 32}
    assert deployment.http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 404
    assert deployment.http.get("/mcp", headers=headers).status_code == 404
    assert deployment.http.delete("/mcp", headers=headers).status_code == 404


def test_no_client_at_all_is_503(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "a stdio bridge exists only with its client")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    response = deployment.http.post("/v1/messages", json=OK)
    assert response.status_code == 503
    assert "no MCP client is connected" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "true"


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_mcp_endpoint_refuses_foreign_origins(kind: str, deployments: list[Deployment], origin: str) -> None:
    only_http(kind, "stdio has no /mcp endpoint")
    not_on_worker(kind, "a foreign page cannot know the worker's secret token, which every request needs")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    response = httpx.post(
        deployment.mcp_url,
        headers={**MCP_HEADERS, "origin": origin},
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}},
    )
    assert response.status_code == 403
    assert deployment.sessions() == []
