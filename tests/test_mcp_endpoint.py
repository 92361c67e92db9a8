"""The `/mcp` endpoint's rules and the route table's refusals, the same on every target: one core
module decides them (`streamable_http`, `routes`), so the answers here must match byte for byte
in status, JSON-RPC code and message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Deployment, deploy, only_http
from test_sessions import MCP_HEADERS, RawMcpClient


@pytest.fixture
def endpoint(kind: str, deployments: list[Deployment]) -> Deployment:
    only_http(kind, "stdio has no /mcp endpoint")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    return deployment


def rpc_error(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None, body
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_get_and_delete_need_the_session_header(endpoint: Deployment) -> None:
    message = rpc_error(endpoint.http.get("/mcp", headers={"accept": "text/event-stream"}), 400, -32600)
    assert message == "GET needs the Mcp-Session-Id header"
    message = rpc_error(endpoint.http.delete("/mcp"), 400, -32600)
    assert message == "DELETE needs the Mcp-Session-Id header"


def test_a_malformed_session_id_is_an_unknown_session(endpoint: Deployment) -> None:
    for session_id in ["abc", "G" * 32, "0" * 31, "A" * 32]:
        headers = {**MCP_HEADERS, "mcp-session-id": session_id}
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        message = rpc_error(endpoint.http.post("/mcp", headers=headers, json=ping), 404, -32001)
        assert message == "session not found; send initialize to start a new one"
        rpc_error(endpoint.http.get("/mcp", headers=headers), 404, -32001)


def test_a_post_without_a_session_that_is_no_initialize_is_refused(endpoint: Deployment) -> None:
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    response = endpoint.http.post("/mcp", headers=MCP_HEADERS, json=notification)
    assert rpc_error(response, 400, -32600) == "no Mcp-Session-Id header: send initialize first"
    assert "mcp-session-id" not in response.headers


def test_in_a_session_get_must_accept_the_stream_and_versions_must_be_known(endpoint: Deployment) -> None:
    client = RawMcpClient(endpoint.mcp_url, endpoint.auth_headers())
    # The id has the one format both runtimes make: 32 lowercase hex digits.
    assert len(client.session_id) == 32 and all(c in "0123456789abcdef" for c in client.session_id)
    refused = client.http.get(client.url, headers={**client.headers, "accept": "application/json"})
    assert rpc_error(refused, 406, -32600) == "GET must accept text/event-stream"
    ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
    stale = client.http.post(client.url, headers={**client.headers, "mcp-protocol-version": "2099-01-01"}, json=ping)
    message = rpc_error(stale, 400, -32600)
    assert message.startswith("unsupported MCP-Protocol-Version `2099-01-01`") and "2025-11-25" in message
    # Every handshake-era version is fine, and the session is still there.
    for version in ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]:
        answer = client.http.post(client.url, headers={**client.headers, "mcp-protocol-version": version}, json=ping)
        assert answer.status_code == 200 and answer.json()["id"] == 7, answer.text
    assert client.http.delete(client.url, headers=client.headers).status_code == 200
    rpc_error(client.http.delete(client.url, headers=client.headers), 404, -32001)


def test_other_methods_on_mcp_are_405_in_json_rpc(endpoint: Deployment) -> None:
    message = rpc_error(endpoint.http.put("/mcp", json={}), 405, -32600)
    assert message == "method PUT is not allowed on /mcp"
    assert "x-should-retry" not in endpoint.http.put("/mcp", json={}).headers


def test_wrong_methods_and_unknown_paths_answer_in_the_routes_shape(target: Deployment) -> None:
    # The bridge's own routes speak Anthropic's errors, like the API.
    response = target.http.post("/status", json={})
    assert response.status_code == 405
    assert response.json()["type"] == "error"
    assert response.json()["error"]["message"] == "method POST is not allowed on /status"
    response = target.http.get("/favicon.ico")
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "not_found_error", "message": "no route for GET /favicon.ico"}
    # OpenAI's routes, OpenAI's shape.
    response = target.http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error" and "param" in response.json()["error"]
    # One segment per model id.
    assert target.http.get("/v1/models/a/b").status_code == 404
