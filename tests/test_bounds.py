"""Everything a caller or a misbehaving MCP client can make grow has a bound: messages waiting
for a client that does not read them, one stdio line without a newline, `clientInfo`, the model
catalog; and work stays linear in the body (no quadratic check turns a large body into minutes
of CPU). Hostile clients here speak raw JSON-RPC, since the SDK client behaves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from conftest import Deployment, bridge_binary, deploy, free_port, not_on_worker, only_http, wait_for_health, wait_until

MIB = 1024 * 1024
PROTOCOL = "2025-11-25"


def vm_hwm_bytes(pid: int) -> int:
    """The process's peak resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def initialize(name: str = "raw-client", version: str = "1", sampling: bool = True) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {"sampling": {}} if sampling else {},
            "clientInfo": {"name": name, "version": version},
        },
    }


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def request_body(text: str, model: str = "m") -> dict[str, Any]:
    return {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": text}]}


class RawStdioBridge:
    """The bridge in stdio mode with us as its MCP client, speaking raw JSON-RPC lines."""

    def __init__(self, tmp_path: Path, extra_args: list[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"bridge-{self.port}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [bridge_binary(), "stdio", "--listen", f"127.0.0.1:{self.port}", "--request-timeout-secs", "5", *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin = self.process.stdin
        self.stdout = self.process.stdout

    def send(self, message: dict[str, Any] | bytes) -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.stdin.write(line)
        self.stdin.flush()

    def handshake(self, name: str = "raw-client", version: str = "1") -> dict[str, Any]:
        self.send(initialize(name, version))
        reply = json.loads(self.stdout.readline())
        self.send(INITIALIZED)
        wait_for_health(self.base_url)
        return reply

    def log_text(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def raw_stdio(tmp_path: Path) -> Any:
    made: list[RawStdioBridge] = []

    def start(*extra_args: str) -> RawStdioBridge:
        bridge = RawStdioBridge(tmp_path, list(extra_args))
        made.append(bridge)
        return bridge

    yield start
    for bridge in made:
        bridge.close()


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == error_type, body
    assert text in body["error"]["message"], body


# ---------------------------------------------------------------------------------------------
# Messages waiting for a client that does not read them


FLOOD_SPACING = 0.15


def flood_unread_client(
    base_url: str, headers: dict[str, str], requests: int, size: int, spacing: float = FLOOD_SPACING
) -> list[httpx.Response | None]:
    """Sends `requests` API requests of about `size` bytes one after another, each from its own
    caller that keeps waiting until all were sent (its sampling request stays queued for the
    client, which never reads it), then gives up. The callers must wait: a request whose caller
    leaves takes its unwritten message out of the queue (tests/test_memory_bounds.py), so
    callers that leave one by one never fill it. All are sent within the bridge's deadline."""
    outcomes: list[httpx.Response | None] = [None] * requests

    def send(index: int) -> None:
        # Every caller gives up about when the last one was sent, plus a margin.
        waits = (requests - index) * spacing + 2
        with httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(10, read=waits)) as http:
            try:
                response = http.post("/v1/messages", json=request_body(f"{index} " + "x" * size))
            except httpx.ReadTimeout:
                return  # accepted, and waiting for an answer that cannot come
            # Accepted and ended by the bridge's deadline (504) counts as accepted too.
            outcomes[index] = None if response.status_code == 504 else response

    callers = []
    for index in range(requests):
        caller = threading.Thread(target=send, args=(index,))
        caller.start()
        callers.append(caller)
        time.sleep(spacing)
    for caller in callers:
        caller.join()
    return outcomes


def test_messages_for_a_stdio_client_that_does_not_read_are_bounded(raw_stdio: Any) -> None:
    bridge = raw_stdio("--max-client-queue-bytes", str(16 * MIB))
    bridge.handshake()
    baseline = vm_hwm_bytes(bridge.process.pid)
    # 40 x 4 MiB: 160 MiB would wait for the client without the bound. All are sent within the
    # bridge's 5 s deadline, so none leaves the queue by it before the last is sent.
    outcomes = flood_unread_client(bridge.base_url, {}, 40, 4 * MIB, spacing=0.1)
    refused = [outcome for outcome in outcomes if outcome is not None]
    assert outcomes[0] is None, "the first request fits an empty queue"
    assert len(refused) >= 30, [o.status_code if o else None for o in outcomes]
    for response in refused:
        assert_anthropic_error(response, 503, "api_error", "not reading")
        assert response.headers["retry-after"] == "1"
    grown = vm_hwm_bytes(bridge.process.pid) - baseline
    # The queue's 16 MiB, one message being written, and the callers' bodies received, parsed
    # and encoded meanwhile (on a loaded machine several overlap: measured up to 92 MiB in a
    # clean-clone run), which leave the allocator's arenas larger.
    assert grown < 110 * MIB, f"peak memory grew by {grown / MIB:.0f} MiB ({len(refused)} of {len(outcomes)} refused)"
    # Others are still served meanwhile.
    started = time.monotonic()
    assert httpx.post(f"{bridge.base_url}/v1/messages/count_tokens", json=request_body("hi"), timeout=5).status_code == 200
    assert time.monotonic() - started < 1


def test_messages_for_an_http_client_that_does_not_read_its_stream_are_bounded(tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "bridge.log", "w") as log:
        process = subprocess.Popen(
            [bridge_binary(), "http", "--listen", f"127.0.0.1:{port}", "--max-client-queue-bytes", str(16 * MIB)],
            stderr=log,
        )
        try:
            wait_for_health(base_url)
            mcp_headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
            with httpx.Client(base_url=base_url, timeout=10) as mcp:
                reply = mcp.post("/mcp", json=initialize(), headers=mcp_headers)
                session = reply.headers["mcp-session-id"]
                headers = {**mcp_headers, "mcp-session-id": session}
                assert mcp.post("/mcp", json=INITIALIZED, headers=headers).status_code == 202
                # The event stream is open, and never read.
                with mcp.stream("GET", "/mcp", headers={"accept": "text/event-stream", "mcp-session-id": session}):
                    baseline = vm_hwm_bytes(process.pid)
                    # 40 x 4 MiB: 160 MiB would wait for the client without the bound. Up to a
                    # few MiB also sit in the sockets' buffers, outside the bridge's queue, and
                    # the callers' bodies, received, parsed and encoded while the others wait,
                    # leave the allocator's arenas (one per runtime and blocking thread) larger.
                    outcomes = flood_unread_client(base_url, {"x-mcp-session-id": session}, 40, 4 * MIB)
                    refused = [outcome for outcome in outcomes if outcome is not None]
                    assert len(refused) >= 30, [o.status_code if o else None for o in outcomes]
                    for response in refused:
                        assert_anthropic_error(response, 503, "api_error", "not reading")
                    grown = vm_hwm_bytes(process.pid) - baseline
                    assert grown < 110 * MIB, f"peak memory grew by {grown / MIB:.0f} MiB ({len(refused)} of {len(outcomes)} refused)"
        finally:
            process.terminate()
            process.wait(10)


# ---------------------------------------------------------------------------------------------
# One stdio line without a newline


def test_a_stdio_line_longer_than_the_limit_ends_the_session(raw_stdio: Any) -> None:
    bridge = raw_stdio("--max-client-line-bytes", str(1 * MIB))
    bridge.handshake()
    # A request waits for the client...
    waiting: dict[str, httpx.Response] = {}
    caller = threading.Thread(
        target=lambda: waiting.setdefault("response", httpx.post(f"{bridge.base_url}/v1/messages", json=request_body("hi"), timeout=10))
    )
    caller.start()
    sampling = json.loads(bridge.stdout.readline())
    assert sampling["method"] == "sampling/createMessage"
    # ...which then sends 8 MiB without a newline.
    try:
        for _ in range(8):
            bridge.send(b"x" * MIB)
    except BrokenPipeError:
        pass  # the bridge stopped reading and exited: what we want
    caller.join(10)
    assert_anthropic_error(waiting["response"], 503, "api_error", "max-client-line-bytes")
    bridge.process.wait(10)
    assert "longer than --max-client-line-bytes" in bridge.log_text()


def test_stdio_lines_up_to_the_limit_are_read(raw_stdio: Any) -> None:
    bridge = raw_stdio("--max-client-line-bytes", str(1 * MIB))
    bridge.handshake()
    result: dict[str, httpx.Response] = {}
    caller = threading.Thread(
        target=lambda: result.setdefault("response", httpx.post(f"{bridge.base_url}/v1/messages", json=request_body("hi"), timeout=10))
    )
    caller.start()
    sampling = json.loads(bridge.stdout.readline())
    answer = {
        "jsonrpc": "2.0",
        "id": sampling["id"],
        "result": {"role": "assistant", "content": {"type": "text", "text": ""}, "model": "m", "stopReason": "endTurn"},
    }
    # Pad the answer's text to just under the limit.
    padding = MIB - len(json.dumps(answer)) - 1
    answer["result"]["content"]["text"] = "y" * padding
    line = json.dumps(answer).encode()
    assert len(line) < MIB
    bridge.send(line + b"\n")
    caller.join(10)
    assert result["response"].status_code == 200
    assert result["response"].json()["content"][0]["text"] == "y" * padding


# ---------------------------------------------------------------------------------------------
# clientInfo


def test_client_info_kept_per_session_is_bounded(target: Deployment, raw_stdio: Any) -> None:
    name = "n" * 255 + "é" * 500_000  # the 256-byte cut falls inside a character
    version = "v" * 100_000
    if target.kind == "stdio":
        bridge = raw_stdio()
        bridge.handshake(name, version)
        listed = httpx.get(f"{bridge.base_url}/sessions", timeout=5).json()["data"]
    else:
        headers = {"accept": "application/json, text/event-stream", **target.auth_headers()}
        if target.kind == "worker":
            headers["authorization"] = f"Bearer {target.api_key}"
        reply = httpx.post(target.mcp_url, json=initialize(name, version), headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        session = reply.headers["mcp-session-id"]
        listed = target.sessions()
        httpx.delete(target.mcp_url, headers={**headers, "mcp-session-id": session}, timeout=10)
    ours = [entry for entry in listed if (entry.get("client_name") or "").startswith("nnn")]
    assert [entry["client_name"] for entry in ours] == ["n" * 255], [len(entry["client_name"]) for entry in ours]
    if "client_version" in ours[0]:
        assert len(ours[0]["client_version"]) == 256


# ---------------------------------------------------------------------------------------------
# The model catalog


def answer_with_models(bridge: RawStdioBridge, models: list[str]) -> None:
    """Answers each sampling request, in turn, as the next model in `models`."""
    for model in models:
        sampling = json.loads(bridge.stdout.readline())
        bridge.send(
            {
                "jsonrpc": "2.0",
                "id": sampling["id"],
                "result": {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": model, "stopReason": "endTurn"},
            }
        )


def answer_over_http(mcp_url: str, headers: dict[str, str], models: list[str], ready: threading.Event) -> None:
    """A raw Streamable HTTP client answering each sampling request as the next model."""
    post_headers = {**headers, "accept": "application/json, text/event-stream", "content-type": "application/json"}
    with httpx.Client(timeout=30) as mcp:
        reply = mcp.post(mcp_url, json=initialize(), headers=post_headers)
        post_headers["mcp-session-id"] = reply.headers["mcp-session-id"]
        mcp.post(mcp_url, json=INITIALIZED, headers=post_headers)
        stream_headers = {**headers, "accept": "text/event-stream", "mcp-session-id": post_headers["mcp-session-id"]}
        with mcp.stream("GET", mcp_url, headers=stream_headers) as stream:
            ready.set()
            pending = iter(models)
            for line in stream.iter_lines():
                # Empty data: the priming event, an id to resume from and no message.
                if not line.startswith("data:") or not line[5:].strip():
                    continue
                message = json.loads(line[5:])
                if message.get("method") != "sampling/createMessage":
                    continue
                model = next(pending)
                result = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": model, "stopReason": "endTurn"}
                mcp.post(mcp_url, json={"jsonrpc": "2.0", "id": message["id"], "result": result}, headers=post_headers)
                if model == models[-1]:
                    return


# The last names are not kept: over 256 bytes, and a control character.
REPORTED = [f"model-{index}" for index in range(40)] + ["z" * 300, "tab\tmodel"]
KEPT = [name for index in range(36, 40) for name in (f"claude-mcp-model-{index}", f"model-{index}")]


def test_models_clients_report_are_bounded_oldest_first(kind: str, deployments: list[Deployment], raw_stdio: Any) -> None:
    if kind == "stdio":
        bridge = raw_stdio("--max-reported-models", "4")
        bridge.handshake()
        answering = threading.Thread(target=answer_with_models, args=(bridge, REPORTED))
        base_url, headers = bridge.base_url, {}
    else:
        deployment = deploy(kind, clients=[], extra_args=["--max-reported-models", "4"])
        deployments.append(deployment)
        base_url, headers = deployment.base_url, deployment.auth_headers()
        mcp_headers = {"authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
        ready = threading.Event()
        answering = threading.Thread(target=answer_over_http, args=(deployment.mcp_url, mcp_headers, REPORTED, ready), daemon=True)
    answering.start()
    if kind != "stdio":
        assert ready.wait(30)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        for _ in REPORTED:
            response = http.post("/v1/messages", json=request_body("hi"))
            assert response.status_code == 200, response.text
        answering.join(10)
        listed = http.get("/v1/models", params={"limit": 1000}).json()
        ids = [entry["id"] for entry in listed["data"]]
        # The last four kept, each with its claude-picker twin.
        assert ids == KEPT, ids
        started = time.monotonic()
        assert http.get("/v1/models").status_code == 200
        assert time.monotonic() - started < 1


# ---------------------------------------------------------------------------------------------
# Slicing user input


def raw_get(target: Deployment, path: bytes) -> bytes:
    """A request whose target holds raw non-ASCII bytes, which HTTP clients would escape."""
    url = urlparse(target.base_url)
    headers = b"".join(f"{name}: {value}\r\n".encode() for name, value in target.auth_headers().items())
    # `anthropic-version` selects the Anthropic list, whose paging parameters are parsed.
    request = (
        b"GET " + path + b" HTTP/1.1\r\nHost: " + url.netloc.encode() + b"\r\n" + headers
        + b"anthropic-version: 2023-06-01\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=20) as connection:
        connection.sendall(request)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def test_an_escape_cut_by_a_multibyte_character_is_answered(target: Deployment) -> None:
    for path in ["/v1/models?after_id=%a\u00e9".encode(), "/v1/models?before_id=%\u00e9&limit=2".encode()]:
        raw = raw_get(target, path)
        assert raw, "the connection closed without a response"
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert status in (200, 400), head
        parsed = json.loads(body) if b"chunked" not in head.lower() else None
        if parsed is not None:
            assert ("data" in parsed) if status == 200 else parsed["type"] == "error", parsed
    # And as the SDK sends it (escaped).
    page = target.anthropic().models.list(after_id="%a\u00e9")
    assert page.data == [] or all(model.type == "model" for model in page.data)


# ---------------------------------------------------------------------------------------------
# CPU: linear validation


def tool_history(count: int, id_padding: int = 0) -> bytes:
    """An assistant turn with `count` tool uses, then a user turn answering them in reverse,
    the shape that made a check per result scan every earlier use. `id_padding` lengthens the
    ids, so a body of the most blocks a request may hold can still come near the body cap."""
    pad = "p" * id_padding
    uses = [{"type": "tool_use", "id": f"toolu_{i:08}{pad}", "name": "t", "input": {}} for i in range(count)]
    results = [{"type": "tool_result", "tool_use_id": f"toolu_{i:08}{pad}"} for i in reversed(range(count))]
    return json.dumps(
        {
            "model": "m",
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ],
        },
        separators=(",", ":"),
    ).encode()


def test_a_body_near_the_cap_of_the_worst_shape_costs_little_cpu(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "the bridge is our child only in http mode, so its CPU can be read")
    not_on_worker(kind, "the worker's CPU is wrangler's; the same core code is measured natively")
    deployment = deploy(kind, clients=[])
    deployments.append(deployment)
    assert deployment.process is not None
    # 199,998 blocks, just under the 200,000 a request may hold (core api/request_bounds.rs).
    body = tool_history(99_999, id_padding=95)
    assert 28 * MIB < len(body) < 32 * MIB, len(body)
    before = cpu_seconds(deployment.process.pid)
    response = httpx.post(
        f"{deployment.base_url}/v1/messages/count_tokens", content=body, headers={"content-type": "application/json"}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 0
    used = cpu_seconds(deployment.process.pid) - before
    # The quadratic check took 139 s for 16 MB in release. Linear work on 30 MB is well under a
    # second in release; the bound leaves room for the debug build the tests run.
    assert used < 8, f"{used:.1f} s of CPU"


# ---------------------------------------------------------------------------------------------
# MCP sessions


def test_mcp_sessions_are_bounded(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "a stdio bridge has exactly one session")
    not_on_worker(kind, "the worker's sessions are Durable Objects per namespace (see docs/worker.md)")
    deployment = deploy(kind, clients=[], extra_args=["--max-sessions", "2"])
    deployments.append(deployment)
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    opened = []
    for _ in range(2):
        reply = httpx.post(deployment.mcp_url, json=initialize(), headers=headers, timeout=10)
        assert reply.status_code == 200, reply.text
        opened.append(reply.headers["mcp-session-id"])
    refused = httpx.post(deployment.mcp_url, json=initialize(), headers=headers, timeout=10)
    assert refused.status_code == 503, refused.text
    assert "--max-sessions" in refused.json()["error"]["message"]
    assert "mcp-session-id" not in refused.headers
    # One ends: there is room again.
    assert httpx.delete(deployment.mcp_url, headers={**headers, "mcp-session-id": opened[0]}, timeout=10).status_code == 200
    assert httpx.post(deployment.mcp_url, json=initialize(), headers=headers, timeout=10).status_code == 200


def test_a_request_over_the_python_sdks_sse_event_cap_fails_fast_and_keeps_the_clients_stream(
    kind: str, deployments: list[Deployment]
) -> None:
    """The Python MCP SDK's client drops its GET stream on an SSE event over 1 MiB
    (``max_sse_event_size``) and gives the stream up for good after two such drops in a row. A
    request carrying a 2 MB image fails at once with a 503 that names the setting and is not
    retried (the SDK's two retries would cost the client its stream); a second such request is
    refused (413) without being sent; smaller requests keep working."""
    only_http(kind, "over stdio a request is one line on a pipe, with no per-event cap")
    import anthropic

    deployment = deploy(kind, extra_args=["--request-timeout-secs", "20", "--stream-wait-ms", "3000"])
    deployments.append(deployment)
    data = "iVBORw0KGgo" + "A" * 2_000_001  # a PNG signature, then 1.5 MB of zeros, as base64
    large = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
             {"type": "text", "text": "describe"}]
    caller = deployment.anthropic(max_retries=2, timeout=30)  # the SDK's default retries
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as first:
        caller.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": large}])
    assert time.monotonic() - started < 5, "failed at once, not at the 20 s deadline"
    assert first.value.status_code == 503
    assert first.value.response.headers["x-should-retry"] == "false"
    message = first.value.body["error"]["message"]
    assert "max_sse_event_size" in message and "MiB as one SSE event" in message, message
    # The client reconnects its stream; a small request is served.
    wait_until(lambda: any(s["event_stream_open"] for s in deployment.sessions()), what="the stream back")
    assert caller.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "small"}]).content[0].text == "echo: small"
    # As large again: refused before it is sent, so the stream survives.
    with pytest.raises(anthropic.APIStatusError) as second:
        caller.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": large}])
    assert second.value.status_code == 413
    assert second.value.body["error"]["type"] == "request_too_large"
    assert "closed under a request of" in second.value.body["error"]["message"]
    assert caller.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "still"}]).content[0].text == "echo: still"
    assert all(s["event_stream_open"] for s in deployment.sessions())
