"""Callers that leave the way real clients leave, on every target: a JavaScript `fetch` aborted
by its AbortController (Node's own fetch, on a connection its pool kept alive), and a Python
`httpx.AsyncClient` stream given up mid-SSE (its read timeout, or a timeout around the task).
Each reaches the MCP client as `notifications/cancelled`, and `/health` stops counting it.

These callers close their connection the ordinary way: a FIN, after reading everything they
were sent. (A blocking client that closes with unread bytes sends a reset instead, which every
server notices at once: the shape of the older disconnect tests.) Natively, and for streamed
answers on the worker, the cancel follows within `WITHIN`. The worker cannot see a non-streamed
request's caller leave under `wrangler dev` (conftest.sees_buffered_callers_leave): there the
request's deadline is the bound, and these tests hold it to that."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Deployment, deploy, sees_buffered_callers_leave, wait_until

HERE = Path(__file__).parent
OK = {"model": "m", "max_tokens": 5}
# From the caller's leaving to `notifications/cancelled` at the client.
WITHIN = 2.0
# The deadline where the caller's leaving is seen: far beyond the test, so only the leaving can
# end the request in time. Where it is not seen, the suite's short deadline bounds the request.
LONG_DEADLINE_SECS = 30
SHORT_DEADLINE_SECS = 3


def _deployment(kind: str, deployments: list[Deployment], streamed: bool) -> tuple[Deployment, float]:
    """A bridge with the default ping interval (a caller's leaving must not wait for a
    keep-alive), and the bound from leaving to the cancel at the client."""
    seen = streamed or sees_buffered_callers_leave(kind)
    deadline = LONG_DEADLINE_SECS if seen else SHORT_DEADLINE_SECS
    deployment = deploy(kind, extra_args=["--ping-interval-ms", "10000", "--request-timeout-secs", str(deadline)])
    deployments.append(deployment)
    return deployment, WITHIN if seen else deadline + 1.0


def _in_flight(deployment: Deployment) -> int:
    return int(deployment.health()["in_flight"])


def _cancelled_within(deployment: Deployment, prompt: str, left_at: float, bound: float) -> None:
    wait_until(lambda: prompt in deployment.model().cancelled, timeout=bound + 3, what="notifications/cancelled at the client")
    assert time.monotonic() - left_at < bound
    wait_until(lambda: _in_flight(deployment) == 0, timeout=5, what="/health's in-flight count back to 0")
    deployment.assert_idle()


class Lines:
    """A child process's stdout lines, each awaited with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [self._lines.put(line.strip()) for line in stdout], daemon=True).start()

    def next(self, timeout: float = 15) -> str:
        return self._lines.get(timeout=timeout)


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "non-streamed"])
def test_a_fetch_aborted_by_its_controller_is_cancelled_at_the_client(
    kind: str, deployments: list[Deployment], streamed: bool
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node, for its built-in fetch")
    deployment, bound = _deployment(kind, deployments, streamed)
    mode = "streamed" if streamed else "buffered"
    prompt = f"[slow:60] fetch aborted ({mode})"
    body = json.dumps({**OK, "stream": streamed, "messages": [{"role": "user", "content": prompt}]})
    token = deployment.api_key or "no-key-configured"
    caller = subprocess.Popen(
        [node, str(HERE / "fetch_abort_caller.mjs"), deployment.base_url, token, mode, body],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(caller)
        assert lines.next() == "sent"
        if streamed:
            assert lines.next() == "first-event"
        wait_until(lambda: prompt in deployment.model().started, what="the request reached the client")
        assert _in_flight(deployment) == 1
        assert caller.stdin is not None
        caller.stdin.write("abort\n")
        caller.stdin.flush()
        left_at = time.monotonic()
        assert lines.next() == "aborted AbortError"
        _cancelled_within(deployment, prompt, left_at, bound)
        # The caller is still running, its pool open: nothing waited for its process to end.
        assert caller.poll() is None
    finally:
        if caller.stdin is not None:
            caller.stdin.close()
        try:
            caller.wait(10)
        except subprocess.TimeoutExpired:
            caller.kill()
            caller.wait(10)


# Shorter than the gap between the worker's liveness writes (250 ms), which a longer read timeout
# never sees; natively the stream is quiet for the 10 s ping interval.
READ_TIMEOUT_SECS = 0.15


@pytest.mark.parametrize("how", ["read-timeout", "task-timeout"])
def test_an_async_stream_given_up_mid_sse_is_cancelled_at_the_client(kind: str, deployments: list[Deployment], how: str) -> None:
    deployment, bound = _deployment(kind, deployments, streamed=True)
    prompt = f"[slow:60] async reader gives up ({how})"
    body: dict[str, Any] = {**OK, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    headers = {"authorization": f"Bearer {deployment.api_key or 'no-key-configured'}", "anthropic-version": "2023-06-01"}

    async def leave() -> None:
        async with httpx.AsyncClient(base_url=deployment.base_url, headers=headers, timeout=30) as client:
            # A pooled keep-alive connection carries the stream, as in a long-lived service.
            assert (await client.get("/health")).status_code == 200
            expected = httpx.ReadTimeout if how == "read-timeout" else TimeoutError
            with pytest.raises(expected):
                async with asyncio.timeout(None) as task_timeout, client.stream("POST", "/v1/messages", json=body) as response:
                    assert response.status_code == 200
                    if how == "read-timeout":
                        # The stream's reads get the short timeout once the headers are in
                        # (httpcore takes it from the request's extension as the body's reads
                        # start), so only a quiet stream can trip it, never a slow admission.
                        response.request.extensions["timeout"]["read"] = READ_TIMEOUT_SECS
                    lines = response.aiter_lines()
                    assert (await anext(lines)).startswith("event: message_start")
                    # Not reading meanwhile, so no read can time out before the client has it.
                    await asyncio.to_thread(
                        wait_until, lambda: prompt in deployment.model().started, what="the request reached the client"
                    )
                    assert await asyncio.to_thread(_in_flight, deployment) == 1
                    if how == "task-timeout":
                        task_timeout.reschedule(asyncio.get_running_loop().time() + 0.5)
                    async for _ in lines:
                        pass
            left_at = time.monotonic()
            # The client and its pool stay open while the bridge notices.
            await asyncio.to_thread(_cancelled_within, deployment, prompt, left_at, bound)

    asyncio.run(leave())
