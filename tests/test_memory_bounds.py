"""Memory that callers and clients control (issue #19): nothing a request or a client sends may
stay in the bridge beyond what it needs, and what it keeps is bounded. Each attack is measured
from `/proc` (`VmHWM`, the peak; `VmRSS`, what is held afterwards) on native targets, and during
each an ordinary request must be served in under a second."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import Deployment, deploy, not_on_worker, wait_until
from test_bounds import INITIALIZED, initialize, raw_stdio  # noqa: F401 - raw_stdio is a fixture

MIB = 1024 * 1024
ORDINARY = {"model": "claude-ordinary", "max_tokens": 5, "messages": [{"role": "user", "content": "ordinary"}]}


def served_quickly(deployment: Deployment) -> None:
    """An ordinary request, answered by the client, in under a second."""
    started = time.monotonic()
    response = httpx.post(f"{deployment.base_url}/v1/messages", json=ORDINARY, headers=deployment.auth_headers(), timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "echo: ordinary"
    assert elapsed < 1, f"an ordinary request took {elapsed:.2f} s during the attack"


def during(attack: Callable[[], Any], deployment: Deployment) -> Any:
    """Runs `attack` on a thread and checks, while it runs, that ordinary requests are served."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = attack()
        except BaseException as err:  # noqa: BLE001 - re-raised below
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.2)
    checks = 0
    while thread.is_alive() or checks == 0:
        served_quickly(deployment)
        checks += 1
        time.sleep(0.2)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def status(deployment: Deployment) -> httpx.Response:
    response = httpx.get(f"{deployment.base_url}/status", headers=deployment.auth_headers(), timeout=10)
    assert response.status_code == 200, response.text
    return response


# ---------------------------------------------------------------------------------------------
# Model ids


REAL_IDS = [
    "claude-opus-4-5[1m]",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
    "m" * 256,
]


def test_model_ids_past_the_apis_bound_are_refused_and_the_board_keeps_nothing_of_them(target: Deployment) -> None:
    """40 requests with 2 MiB model ids left 185 MB on the status board, and a `GET /status` of
    149 MB. The real API bounds `model` to 256 characters; so does the bridge (400)."""
    native = target.kind != "worker"
    rss_before = target.bridge_status("VmRSS") if native else 0
    huge = "x" * (2 * MIB)

    def attack() -> None:
        with httpx.Client(base_url=target.base_url, headers=target.auth_headers(), timeout=30) as http:
            for index in range(40):
                response = http.post("/v1/messages", json={**ORDINARY, "model": f"{index}{huge}"})
                assert response.status_code == 400, response.text[:300]
                error = response.json()["error"]
                assert error["type"] == "invalid_request_error"
                assert error["message"] == "model: String should have at most 256 characters"

    during(attack, target)
    # Real ids, the longest allowed included, are served and listed whole.
    for model in REAL_IDS:
        response = target.http.post("/v1/messages", json={**ORDINARY, "model": model})
        assert response.status_code == 200, response.text
    snapshot = status(target)
    assert len(snapshot.content) < 200_000, len(snapshot.content)
    listed = {entry["model"] for entry in snapshot.json()["recent"]}
    assert set(REAL_IDS) <= listed, listed
    if native:
        held = (target.bridge_status("VmRSS") - rss_before) * 1024
        assert held < 32 * MIB, f"{held / MIB:.0f} MiB held after the attack"


# ---------------------------------------------------------------------------------------------
# Requests refused before authentication


def test_requests_refused_before_the_key_check_do_not_reach_the_board(kind: str, deployments: list[Deployment]) -> None:
    """Anyone who can reach the port could push the owner's requests out of the recent list
    with requests that had no key. Only what passed the front is listed; the rest is counted."""
    deployment = deploy(kind, api_key="sk-owner")
    deployments.append(deployment)
    owner = deployment.http.post("/v1/messages", json={**ORDINARY, "model": "claude-owner"})
    assert owner.status_code == 200, owner.text
    # On the worker another token is another namespace (no allow-list is set here): its
    # requests reach no client there (503) and nothing of the owner's.
    other_key = 503 if kind == "worker" else 401
    refusals: list[tuple[dict[str, str], int]] = [
        ({"content-type": "application/json"}, 401),
        ({"content-type": "application/json", "x-api-key": "wrong"}, other_key),
        ({"content-type": "application/json", "authorization": "Bearer wrong"}, other_key),
    ]
    if kind != "worker":
        # The worker has no Origin check (see README): its token is what no page knows.
        refusals.append(({"content-type": "application/json", "x-api-key": "sk-owner", "origin": "http://evil.example"}, 403))
    refusals.append(({"content-type": "text/plain", "x-api-key": deployment.api_key or ""}, 400))

    def attack() -> int:
        sent = 0
        with httpx.Client(base_url=deployment.base_url, timeout=10) as http:
            for _ in range(20):
                for headers, expected in refusals:
                    response = http.post("/v1/messages", content=json.dumps({**ORDINARY, "model": "claude-stranger"}), headers=headers)
                    assert response.status_code == expected, (headers, response.text)
                    sent += 1
        return sent

    sent = during(attack, deployment)
    assert sent > 60
    snapshot = status(deployment).json()
    models = [entry["model"] for entry in snapshot["recent"]]
    assert "claude-owner" in models, models
    assert "claude-stranger" not in models
    assert all(entry["status"] == 200 for entry in snapshot["recent"]), snapshot["recent"]
    if kind == "worker":
        # Requests without the namespace's token belong to no namespace: they count nowhere.
        assert "refused_at_front" not in snapshot
    else:
        assert snapshot["refused_at_front"] == sent


# ---------------------------------------------------------------------------------------------
# clientInfo


def test_large_client_info_costs_nothing_once_handled(kind: str, deployments: list[Deployment]) -> None:
    """Eight `initialize`s with 30 MB `clientInfo` names left RSS ~300 MB higher: each session
    kept its name cut to 256 bytes but with the whole name's capacity."""
    not_on_worker(kind, "the worker's memory is workerd's; the same core code is measured natively")
    if kind == "stdio":
        pytest.skip("a stdio bridge has one session, opened by its client at start (see test_bounds.py)")
    deployment = deploy(kind)
    deployments.append(deployment)
    hwm_before = deployment.bridge_status("VmHWM")
    rss_before = deployment.bridge_status("VmRSS")
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    name = "n" * (30 * MIB)

    def attack() -> list[str]:
        opened = []
        for _ in range(8):
            body = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
            }
            reply = httpx.post(deployment.mcp_url, content=json.dumps(body), headers=headers, timeout=60)
            assert reply.status_code == 200, reply.text[:300]
            opened.append(reply.headers["mcp-session-id"])
        return opened

    opened = during(attack, deployment)
    listed = [s for s in deployment.sessions() if (s.get("client_name") or "").startswith("nnn")]
    assert len(listed) == 8 and all(len(s["client_name"]) == 256 for s in listed)
    # The sessions are still open: each holds its 256 bytes, not 30 MB.
    held = (deployment.bridge_status("VmRSS") - rss_before) * 1024
    peak = (deployment.bridge_status("VmHWM") - hwm_before) * 1024
    assert held < 120 * MIB, f"{held / MIB:.0f} MiB held with the eight sessions open"
    assert peak < 160 * MIB, f"peak grew by {peak / MIB:.0f} MiB"
    for session in opened:
        assert httpx.delete(deployment.mcp_url, headers={**headers, "mcp-session-id": session}, timeout=10).status_code == 200


# ---------------------------------------------------------------------------------------------
# A client that stops reading


def settled_rss(pid: int, activity: Callable[[], None]) -> int:
    """`VmRSS` in bytes once what was freed had time to go back: the allocator returns freed
    pages after its purge delay (1 s), at its next allocation, so ordinary traffic runs
    meanwhile."""
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        activity()
        time.sleep(0.1)
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024


def test_messages_of_requests_that_ended_leave_the_queue_of_a_client_that_does_not_read(
    kind: str, deployments: list[Deployment], raw_stdio: Any
) -> None:
    """A client that stops reading its stdout (stdio) or its event stream (http): the queue's
    bound held (503s), but the messages of requests that had timed out stayed queued, 100-200
    MB held, and the full queue refused every later request. Now a request that ends unwritten
    takes its message with it."""
    not_on_worker(kind, "the worker's messages leave through the runtime's WebSocket (see README)")
    # The raw stdio bridge runs with a 5 s deadline; http gets the same.
    timeout = 5
    if kind == "stdio":
        bridge = raw_stdio()
        bridge.handshake()
        pid, base_url, route = bridge.process.pid, bridge.base_url, {}

        def ordinary() -> None:
            started = time.monotonic()
            counted = httpx.post(f"{base_url}/v1/messages/count_tokens", json=ORDINARY, timeout=5)
            assert counted.status_code == 200, counted.text
            assert time.monotonic() - started < 1
    else:
        deployment = deploy(kind, clients=[], extra_args=["--request-timeout-secs", str(timeout)])
        deployments.append(deployment)
        pid, base_url = deployment.bridge_pid(), deployment.base_url
        # The client that answers ordinary requests runs as its own process: this one is busy.
        answering = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "standalone_client.py"), "main", deployment.mcp_url],
            stdout=subprocess.PIPE, text=True,
        )
        assert answering.stdout is not None and answering.stdout.readline().strip() == "ready"
        wait_until(lambda: any(s["client_name"] == "main" and s["event_stream_open"] for s in deployment.sessions()))
        main = {"x-mcp-session-id": deployment.session_id("main")}
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        reply = httpx.post(deployment.mcp_url, json=initialize(), headers=headers, timeout=10)
        session = reply.headers["mcp-session-id"]
        assert httpx.post(deployment.mcp_url, json=INITIALIZED, headers={**headers, "mcp-session-id": session}, timeout=10).status_code == 202
        route = {"x-mcp-session-id": session}
        stream_client = httpx.Client(timeout=60)
        # The event stream is opened and never read.
        unread = stream_client.stream("GET", deployment.mcp_url, headers={"accept": "text/event-stream", "mcp-session-id": session})
        unread.__enter__()

        def ordinary() -> None:
            started = time.monotonic()
            response = httpx.post(f"{base_url}/v1/messages", json=ORDINARY, headers=main, timeout=5)
            assert response.status_code == 200, response.text
            elapsed = time.monotonic() - started
            assert elapsed < 1, f"an ordinary request took {elapsed:.2f} s"

    try:
        rss_before = settled_rss(pid, ordinary)

        def flood() -> list[int]:
            # 24 requests of 4 MiB within 2.4 s, all waiting at once: 96 MiB for a 64 MiB
            # bound. Staggered, so that parsing them does not take every core at once; sent by
            # a process of their own, since the answering client runs in this one.
            requests = [
                {"body": {**ORDINARY, "messages": [{"role": "user", "content": f"{index} " + "x" * (4 * MIB)}]},
                 "headers": route, "after": index * 0.1}
                for index in range(24)
            ]
            with tempfile.NamedTemporaryFile("w", suffix=".json") as listed:
                json.dump(requests, listed)
                listed.flush()
                sent = subprocess.run(
                    [sys.executable, str(Path(__file__).parent / "load.py"), base_url, listed.name],
                    capture_output=True, text=True, timeout=120, check=True,
                )
            return [json.loads(line)[1] for line in sent.stdout.splitlines()]

        statuses = []
        done = threading.Event()

        def attack() -> None:
            statuses.extend(flood())
            done.set()

        thread = threading.Thread(target=attack)
        thread.start()
        while not done.wait(0.3):
            ordinary()
        thread.join()
        # Each was taken (and timed out unanswered, 504) or refused by the full queue (503).
        assert set(statuses) <= {503, 504} and statuses.count(504) >= 10, statuses
        assert 503 in statuses, "the queue's bound held"
        # The queue emptied as the requests ended: a new one is taken, not refused.
        started = time.monotonic()
        body = {**ORDINARY, "messages": [{"role": "user", "content": "after " + "y" * (4 * MIB)}]}
        after = httpx.post(f"{base_url}/v1/messages", json=body, headers=route, timeout=30)
        assert after.status_code == 504, after.text
        assert time.monotonic() - started > timeout - 0.5
        # mimalloc gives freed pages back per thread, as that thread allocates again or exits,
        # so what a thread that handled a large body freed can stay counted for a while:
        # measured, 17-26 MiB held at once in most runs, once 46-51 MiB for about 5 s before
        # it fell to 20 MiB. The bound is on what is still held within 15 s.
        deadline = time.monotonic() + 15
        held = settled_rss(pid, ordinary) - rss_before
        while held >= 40 * MIB and time.monotonic() < deadline:
            held = settled_rss(pid, ordinary) - rss_before
        assert held < 40 * MIB, f"{held / MIB:.0f} MiB held 15 s after the requests ended"
    finally:
        if kind != "stdio":
            unread.__exit__(None, None, None)
            stream_client.close()
            answering.kill()
            answering.wait(10)


# ---------------------------------------------------------------------------------------------
# A request of many tiny blocks


def tiny_blocks_body(blocks: int) -> bytes:
    block = b'{"type":"text","text":"a"}'
    head = b'{"model":"claude-blocks","max_tokens":5,"messages":[{"role":"user","content":['
    return head + b",".join([block] * blocks) + b"]}]}"


def test_a_flood_of_tiny_blocks_is_refused_before_it_takes_memory(target: Deployment) -> None:
    """A 31 MB request of 1.2 million tiny blocks peaked at 291 MB (9x its size): the receiving
    budget counts bytes, not what they become parsed. The bridge counts blocks while it parses
    and stops at 200,000 (400, naming the bound), so such a body costs little more than its
    bytes, on every target (the worker shares the parser)."""
    body = tiny_blocks_body(1_200_000)
    assert len(body) > 30 * MIB
    headers = {**target.auth_headers(), "content-type": "application/json"}
    native = target.kind != "worker"
    hwm_before = target.bridge_status("VmHWM") if native else 0

    def attack() -> None:
        reply = httpx.post(f"{target.base_url}/v1/messages", content=body, headers=headers, timeout=120)
        assert reply.status_code == 400, reply.text[:300]
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "too many content blocks" in error["message"] and "200000" in error["message"], error

    during(attack, target)
    if native:
        peak = (target.bridge_status("VmHWM") - hwm_before) * 1024
        assert peak < 120 * MIB, f"peak grew by {peak / MIB:.0f} MiB for a {len(body) / MIB:.0f} MiB body"
