"""Resumability of the client's `GET /mcp` stream (Streamable HTTP 2025-11-25): every event
carries an `id:`, a new stream opens with a priming event, and a client that reconnects with
`Last-Event-ID` gets again the sampling requests it never saw, so none of them waits for its
deadline. Only http and worker: a stdio pipe has no event stream."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx
import pytest

from conftest import Deployment, deploy, only_http, wait_until
from scripted_client import ClientThread, ScriptedModel
from test_sessions import RawMcpClient

# Long enough that a request waiting for its deadline is told apart from one answered.
DEADLINE_SECS = 40


@dataclass
class Event:
    id: str | None
    event: str | None
    data: str | None


class EventReader:
    """Reads SSE events off a raw `GET /mcp` response, skipping comments (keep-alives). A thread
    reads the lines, so that waiting for an event can time out (the worker's stream sends a
    comment every second, the native one none for 25 s)."""

    def __init__(self, stream: httpx.Response) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            try:
                for line in stream.iter_lines():
                    self.lines.put(line)
            except Exception:  # noqa: BLE001 - the stream closed under the reader
                pass
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def next(self, within: float = 10) -> Event | None:
        """The next event, or None if none came within `within` seconds."""
        deadline = time.monotonic() + within
        fields: dict[str, str] = {}
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(":"):
                continue
            if line == "":
                if fields:
                    return Event(fields.get("id"), fields.get("event"), fields.get("data"))
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        return None


def open_stream(raw: RawMcpClient, last_event_id: str | None = None) -> Any:
    headers = {**raw.headers, "accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    return raw.http.stream("GET", raw.url, headers=headers, timeout=httpx.Timeout(10, read=120))


@pytest.fixture
def bridge(kind: str, deployments: list[Deployment]) -> Deployment:
    only_http(kind, "stdio has no GET stream")
    deployment = deploy(kind, [], extra_args=["--request-timeout-secs", str(DEADLINE_SECS)])
    deployments.append(deployment)
    return deployment


def api_caller(bridge: Deployment, content: str, result: dict[str, httpx.Response]) -> threading.Thread:
    """A thread (not started) that makes one `/v1/messages` request and leaves its response in
    `result["r"]`."""
    return threading.Thread(
        target=lambda: result.update(
            r=bridge.http.post(
                "/v1/messages",
                json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]},
                timeout=DEADLINE_SECS + 10,
            )
        )
    )


def test_events_carry_ids_and_last_event_id_resends_only_what_the_client_missed(bridge: Deployment) -> None:
    raw = RawMcpClient(bridge.mcp_url, bridge.auth_headers())
    result: dict[str, httpx.Response] = {}
    caller = api_caller(bridge, "again", result)
    with open_stream(raw) as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        events = EventReader(first)
        priming = events.next()
        # The priming event: an id and empty data, of the default `message` type.
        assert priming is not None and priming.id is not None and priming.id.isdigit(), priming
        assert (priming.event, priming.data) == ("message", ""), priming
        caller.start()
        sent = events.next()
        assert sent is not None and sent.id is not None and sent.id.isdigit(), sent
        assert int(sent.id) > int(priming.id)
        request = json.loads(sent.data or "")
        assert request["method"] == "sampling/createMessage"
        # The client "lost" that stream without the server noticing, and opens another. Without
        # Last-Event-ID nothing is sent again (the client may hold the request already). Each
        # stream is replaced before it closes: closing the current one would fail the request.
        with open_stream(raw) as second:
            events = EventReader(second)
            primed = events.next()
            assert primed is not None and primed.data == "" and int(primed.id or 0) > int(sent.id)
            assert events.next(within=1.5) is None
            # Having seen the request: nothing again either.
            with open_stream(raw, sent.id) as third:
                events = EventReader(third)
                primed = events.next()
                assert primed is not None and primed.data == ""
                assert events.next(within=1.5) is None
                # Having seen only the first priming event: the request again, same JSON-RPC
                # id, under a new event id.
                with open_stream(raw, priming.id) as fourth:
                    events = EventReader(fourth)
                    primed = events.next()
                    assert primed is not None and primed.data == ""
                    again = events.next()
                    assert again is not None and again.event == "message", again
                    assert int(again.id or 0) > int(primed.id or 0)
                    assert json.loads(again.data or "") == request
                    answer = {"role": "assistant", "content": {"type": "text", "text": "resumed"}, "model": "raw-model"}
                    reply = raw.http.post(
                        raw.url, headers=raw.headers, json={"jsonrpc": "2.0", "id": request["id"], "result": answer}
                    )
                    assert reply.status_code == 202
                    caller.join(10)
    assert result["r"].status_code == 200, result["r"].text
    assert result["r"].json()["content"][0]["text"] == "resumed"
    bridge.assert_idle()


def test_a_request_not_kept_for_resending_fails_at_once_when_the_client_missed_it(
    kind: str, deployments: list[Deployment]
) -> None:
    """`--max-resend-bytes` bounds what a session keeps to send again; with 0 nothing is kept,
    so a request the client shows it never saw fails now (503) instead of at its deadline."""
    only_http(kind, "stdio has no GET stream")
    bridge = deploy(kind, [], extra_args=["--request-timeout-secs", str(DEADLINE_SECS), "--max-resend-bytes", "0"])
    deployments.append(bridge)
    raw = RawMcpClient(bridge.mcp_url, bridge.auth_headers())
    result: dict[str, httpx.Response] = {}
    caller = api_caller(bridge, "lost", result)
    with open_stream(raw) as first:
        events = EventReader(first)
        priming = events.next()
        assert priming is not None and priming.id is not None, priming
        caller.start()
        sent = events.next()
        assert sent is not None and json.loads(sent.data or "")["method"] == "sampling/createMessage"
        started = time.monotonic()
        with open_stream(raw, priming.id) as second:
            events = EventReader(second)
            primed = events.next()
            assert primed is not None and primed.data == ""
            caller.join(10)
            assert not caller.is_alive(), "the request waited instead of failing"
            # Nothing is sent again.
            assert events.next(within=1) is None
    assert time.monotonic() - started < 10
    response = result["r"]
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "error"
    assert "event stream closed" in response.json()["error"]["message"]
    bridge.assert_idle()


def test_a_bad_last_event_id_is_ignored(bridge: Deployment) -> None:
    raw = RawMcpClient(bridge.mcp_url, bridge.auth_headers())
    for value in ["abc", "-1", "99999999999999999999999", "1.5", ""]:
        with open_stream(raw, value) as stream:
            assert stream.status_code == 200, value
            primed = EventReader(stream).next()
            assert primed is not None and primed.data == "" and (primed.id or "").isdigit(), value


@dataclass
class CuttingProxy:
    """A loopback TCP proxy in front of the bridge. The first `GET` connection is cut on the
    client's side as soon as a sampling request comes down it (that event is not passed on),
    while its server side stays open, so the bridge does not learn of it: a client whose stream
    died unnoticed. Everything else passes through (the Host header rewritten)."""

    upstream_port: int
    port: int = 0
    cut: bool = False
    gets: list[bytes] = field(default_factory=list)
    _held: list[Any] = field(default_factory=list)

    def start(self) -> "CuttingProxy":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="cutting-proxy")
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in self._held:
                writer.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        ours = f"127.0.0.1:{self.port}".encode()
        theirs = f"127.0.0.1:{self.upstream_port}".encode()
        # Whether this connection carries the first GET (a stream holds its connection, so what
        # comes down after the GET went up is its response).
        carries_first_get = False

        async def upward() -> None:
            nonlocal carries_first_get
            while chunk := await client_reader.read(65536):
                if chunk.startswith(b"GET "):
                    self.gets.append(chunk)
                    carries_first_get = len(self.gets) == 1
                server_writer.write(chunk.replace(ours, theirs))
                await server_writer.drain()

        async def downward() -> None:
            seen = b""
            while chunk := await server_reader.read(65536):
                if carries_first_get:
                    if self.cut:
                        continue  # read and dropped: the server sees a healthy client
                    seen = seen[-64:] + chunk
                    if b"sampling/createMessage" in seen:
                        self.cut = True
                        client_writer.transport.abort()
                        self._held.append(server_writer)
                        continue
                client_writer.write(chunk)
                await client_writer.drain()

        try:
            await asyncio.gather(upward(), downward())
        except (ConnectionError, OSError):
            pass
        finally:
            if not (carries_first_get and self.cut):
                server_writer.close()
            client_writer.close()


@pytest.fixture
def proxy(bridge: Deployment) -> Iterator[CuttingProxy]:
    port = int(bridge.base_url.rsplit(":", 1)[1])
    cutting = CuttingProxy(port).start()
    yield cutting
    cutting.stop()


def test_a_request_sent_on_a_stream_that_died_unnoticed_is_answered_after_the_sdk_reconnects(
    bridge: Deployment, proxy: CuttingProxy
) -> None:
    headers = {"authorization": f"Bearer {bridge.api_key}"} if bridge.api_key else None
    model = ScriptedModel("resumer")
    client = ClientThread(f"http://127.0.0.1:{proxy.port}/mcp", model, headers=headers).start()
    bridge.clients["resumer"] = client
    wait_until(
        lambda: any(s["client_name"] == "resumer" and s["event_stream_open"] for s in bridge.sessions()),
        what="the client listed with its stream open",
    )
    started = time.monotonic()
    reply = bridge.anthropic(timeout=DEADLINE_SECS + 10).messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "through the cut"}]
    )
    elapsed = time.monotonic() - started
    assert proxy.cut, "the first GET stream was not cut: the test did not test anything"
    assert reply.content[0].text == "echo: through the cut"
    # The SDK reconnects 1 s after the error; the answer comes then, not at the deadline.
    assert elapsed < 10, elapsed
    # The client saw the request once: on the second stream.
    assert model.started == ["through the cut"]
    assert len(proxy.gets) >= 2
    assert b"\r\nlast-event-id: " in proxy.gets[1].lower(), proxy.gets[1]
    bridge.assert_idle()
