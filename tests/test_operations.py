"""Running it for real: API keys, per-session limits, /metrics, the access log."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import ClientSpec, Deployment, bridge_binary, deploy, free_port, not_on_worker, only_http, wait_until

OK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
KEY = "sk-bridge-test-key"


def concurrent_answers(client: anthropic.Anthropic, prompts: list[str]) -> list[str]:
    """Sends every prompt at once, each on its own thread; the answers' texts, in order."""

    def one(prompt: str) -> str:
        message = client.messages.create(**{**OK, "messages": [{"role": "user", "content": prompt}]})
        return message.content[0].text

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        return list(pool.map(one, prompts))


def test_api_keys(kind: str, deployments: list[Deployment]) -> None:
    not_on_worker(kind, "on the worker any token opens its own namespace; its allow-list is tested in test_worker.py")
    deployment = deploy(kind, api_key=KEY)
    deployments.append(deployment)
    url = f"{deployment.base_url}/v1/messages"
    missing = httpx.post(url, json=OK)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["request-id"].startswith("req_")
    assert httpx.post(url, json=OK, headers={"x-api-key": "wrong"}).status_code == 401
    assert httpx.post(url, json=OK, headers={"x-api-key": KEY}).status_code == 200
    assert httpx.post(url, json=OK, headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    # Two keys (the Anthropic SDK given an API key and an auth token sends both): either lets in.
    assert httpx.post(url, json=OK, headers={"x-api-key": "wrong", "authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.post(url, json=OK, headers={"x-api-key": KEY, "authorization": "Bearer wrong"}).status_code == 200
    both_wrong = httpx.post(url, json=OK, headers={"x-api-key": "wrong", "authorization": "Bearer wrong2"})
    assert both_wrong.status_code == 401
    assert both_wrong.json()["error"]["type"] == "authentication_error"
    # Both SDKs, each with its own header convention.
    assert deployment.anthropic().messages.create(**OK).content[0].text == "echo: x"
    with pytest.raises(anthropic.AuthenticationError):
        deployment.anthropic(api_key="wrong").messages.create(**OK)
    assert deployment.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    with pytest.raises(openai.AuthenticationError) as raised:
        deployment.openai(api_key="wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 401
    for path in ["/v1/models", "/v1/messages/count_tokens", "/sessions", "/metrics"]:
        assert httpx.request("GET" if path != "/v1/messages/count_tokens" else "POST", f"{deployment.base_url}{path}").status_code == 401, path
    # Liveness stays open.
    assert deployment.http.get("/health").status_code == 200


def test_mcp_clients_need_the_key_too(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "in stdio mode the MCP client is the bridge's parent process, not a network caller")
    deployment = deploy(kind, [], api_key=KEY)
    deployments.append(deployment)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}
    refused = httpx.post(deployment.mcp_url, json=init, headers={"accept": "application/json, text/event-stream"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == -32600
    deployment.connect(ClientSpec("keyed"))  # the SDK client sends the Bearer key
    assert deployment.anthropic().messages.create(**OK).content[0].text == "echo: x"


def test_refuses_to_listen_beyond_loopback_without_a_key() -> None:
    # Never binds: the check runs before the listener is opened.
    result = subprocess.run(
        [bridge_binary(), "http", "--listen", f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode != 0
    assert "without an API key" in result.stderr
    assert "--allow-unauthenticated" in result.stderr


def test_in_flight_limit_queues_then_429s(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, extra_args=["--max-in-flight-per-session", "1", "--max-queued-per-session", "1"])
    deployments.append(deployment)
    results: dict[str, httpx.Response] = {}

    def send(name: str, text: str) -> None:
        with httpx.Client(base_url=deployment.base_url, headers=deployment.auth_headers(), timeout=10) as client:
            results[name] = client.post("/v1/messages", json={**OK, "messages": [{"role": "user", "content": text}]})

    first = threading.Thread(target=send, args=("first", "[slow:1] first"))
    first.start()
    wait_until(lambda: "[slow:1] first" in deployment.model().started, what="first in flight")
    second = threading.Thread(target=send, args=("second", "second"))
    second.start()
    wait_until(lambda: 'sampling2api_queued 1' in deployment.metrics(), what="second queued")
    assert "second" not in deployment.model().started, "the queued request must wait for the permit"
    third = deployment.http.post("/v1/messages", json=OK)
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert third.headers["retry-after"] == "1"
    first.join(10)
    second.join(10)
    assert results["first"].status_code == 200
    assert results["second"].status_code == 200
    assert results["second"].json()["content"][0]["text"] == "echo: second"
    assert deployment.http.post("/v1/messages", json=OK).status_code == 200


def test_a_queued_request_whose_caller_leaves_never_reaches_the_client(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, extra_args=["--max-in-flight-per-session", "1", "--max-queued-per-session", "4"])
    deployments.append(deployment)
    model = deployment.model()
    first = threading.Thread(
        target=lambda: deployment.http.post("/v1/messages", json={**OK, "messages": [{"role": "user", "content": "[slow:2] first"}]})
    )
    first.start()
    wait_until(lambda: "[slow:2] first" in model.started, what="first in flight")
    body = {**OK, "stream": True, "messages": [{"role": "user", "content": "queued then abandoned"}]}
    with httpx.Client(base_url=deployment.base_url, headers=deployment.auth_headers(), timeout=10) as client:
        with client.stream("POST", "/v1/messages", json=body) as response:
            assert response.status_code == 200
            wait_until(lambda: "sampling2api_queued 1" in deployment.metrics(), what="the stream's request queued")
    # The caller left; its request leaves the queue (the worker learns it at the next keep-alive).
    wait_until(lambda: "sampling2api_queued 0" in deployment.metrics(), what="the queue emptied")
    first.join(10)
    assert "queued then abandoned" not in model.started
    assert deployment.http.post("/v1/messages", json=OK).status_code == 200
    wait_until(lambda: "sampling2api_in_flight 0" in deployment.metrics(), what="the slot given back")
    deployment.assert_idle()


def test_health_says_who_starts_the_mcp_client_side(target: Deployment) -> None:
    """A bridge that is not running answers Claude Code with "connection refused": /health says
    who brings the MCP client to it and the one action that does it in VS Code."""
    start = target.health()["mcp_client_start"]
    assert start["by"] == ("mcp_client" if target.kind == "stdio" else "operator"), start
    assert "MCP: List Servers" in start["action"] and "Start Server" in start["action"], start
    # The same on the worker's keyless liveness answer.
    keyless = httpx.get(f"{target.base_url}/health", timeout=5).json()["mcp_client_start"]
    assert keyless == start


def test_metrics(target: Deployment) -> None:
    target.anthropic().messages.create(**OK)
    target.http.post("/v1/messages", content=b"{")
    # The worker adds a request to its namespace's totals just after answering it.
    wait_until(
        lambda: re.search(r'sampling2api_requests_total\{route="/v1/messages",status="400"\} \d+', target.metrics()),
        what="the 400 counted",
    )
    text = target.metrics()
    assert re.search(r'sampling2api_requests_total\{route="/v1/messages",status="200"\} \d+', text), text
    assert re.search(r'sampling2api_sampling_duration_seconds_count\{outcome="ok"\} \d+', text)
    assert re.search(r'sampling2api_tokens_total\{direction="input"\} [1-9]\d*', text)
    assert re.search(r'sampling2api_tokens_total\{direction="output"\} [1-9]\d*', text)
    assert "sampling2api_sessions 1" in text
    assert "sampling2api_sampling_sessions 1" in text
    assert "sampling2api_in_flight 0" in text


def test_one_log_line_per_request_and_prompts_only_when_asked(kind: str, deployments: list[Deployment], tmp_path: Path) -> None:
    quiet = deploy(kind, log_path=tmp_path / "quiet.log")
    deployments.append(quiet)
    response = quiet.http.post(
        "/v1/messages", json={**OK, "model": "claude-log-test", "messages": [{"role": "user", "content": "secret prompt"}]}
    )
    request_id = response.headers["request-id"]
    wait_until(lambda: request_id in quiet.log_text(), what="the access log line")
    lines = [line for line in quiet.log_text().splitlines() if request_id in line]
    assert len(lines) == 1
    line = lines[0]
    session = quiet.sessions()[0]["id"]
    if kind == "worker":
        # The worker logs JSON, which Workers Logs indexes by field.
        fields = json.loads(line[line.index("{") :])
        assert fields["message"] == "api request", fields
        assert fields["status"] == 200 and fields["latency_ms"] >= 0, fields
        assert fields["model"] == "claude-log-test" and fields["session"] == session, fields
    else:
        for part in ["api request", "status=200", "latency_ms=", 'model="claude-log-test"', f'session="{session}"']:
            assert part in line, line
    assert "secret prompt" not in quiet.log_text()

    loud = deploy(kind, extra_args=["--log-prompts"], log_path=tmp_path / "loud.log")
    deployments.append(loud)
    loud.http.post("/v1/messages", json={**OK, "messages": [{"role": "user", "content": "secret prompt"}]})
    wait_until(lambda: "secret prompt" in loud.log_text(), what="the prompt in the log")


def test_http2_callers_multiplex_requests_on_one_connection(kind: str, deployments: list[Deployment]) -> None:
    not_on_worker(kind, "wrangler dev's local proxy speaks HTTP/1.1 only; on Cloudflare the edge terminates HTTP/2")
    deployment = deploy(kind)
    deployments.append(deployment)
    import httpx2  # the HTTP client the anthropic SDK is built on

    # h2c with prior knowledge: HTTP/2 without TLS, as a local caller would use it.
    transport = httpx2.HTTPTransport(http1=False, http2=True)
    with httpx2.Client(transport=transport, timeout=30) as http:
        client = anthropic.Anthropic(base_url=deployment.base_url, api_key="not-needed", http_client=http, max_retries=0)
        raw = client.messages.with_raw_response.create(**{**OK, "messages": [{"role": "user", "content": "over h2"}]})
        assert raw.http_response.http_version == "HTTP/2"
        assert raw.parse().content[0].text == "echo: over h2"

        with client.messages.stream(**{**OK, "messages": [{"role": "user", "content": "streamed over h2"}]}) as stream:
            assert stream.get_final_text() == "echo: streamed over h2"

    # Concurrent requests on one connection come from one event loop: the sync HTTP/2
    # connection of httpcore2 is not thread-safe (threads sharing it send HEADERS out of
    # stream-id order, twice on one stream, or lose frames, and the server rightly answers
    # GOAWAY(PROTOCOL_ERROR)), as a loaded CI machine once showed.
    async def multiplexed(prompts: list[str]) -> list[str]:
        transport = httpx2.AsyncHTTPTransport(http1=False, http2=True)
        async with httpx2.AsyncClient(transport=transport, timeout=30) as http:
            client = anthropic.AsyncAnthropic(base_url=deployment.base_url, api_key="not-needed", http_client=http, max_retries=0)
            messages = await asyncio.gather(
                *(client.messages.create(**{**OK, "messages": [{"role": "user", "content": prompt}]}) for prompt in prompts)
            )
        return [message.content[0].text for message in messages]

    answers = asyncio.run(multiplexed([f"[slow:0.3] h2 {i}" for i in range(24)]))
    assert answers == [f"echo: [slow:0.3] h2 {i}" for i in range(24)]
    deployment.assert_idle()


@pytest.mark.parametrize("threads", [None, 2], ids=["default", "two"])
def test_runtime_threads_serve_concurrent_requests(kind: str, deployments: list[Deployment], threads: int | None) -> None:
    # One thread by default; --threads sets another count.
    not_on_worker(kind, "a Worker has no runtime threads to configure")
    deployment = deploy(kind, extra_args=[] if threads is None else ["--threads", str(threads)])
    deployments.append(deployment)
    client = deployment.anthropic()

    answers = concurrent_answers(client, [f"[slow:0.2] threads {i}" for i in range(16)])
    assert answers == [f"echo: [slow:0.2] threads {i}" for i in range(16)]
    deployment.assert_idle()
    if deployment.process is not None:  # http mode: the bridge is our child, so look inside
        names = [path.read_text().strip() for path in Path(f"/proc/{deployment.process.pid}/task").glob("*/comm")]
        assert names.count("tokio-rt-worker") == (threads or 1), names
