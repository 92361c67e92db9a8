"""The HTTP front against hostile pages, neighbours and peers.

- A web page in the user's browser: DNS rebinding (a foreign ``Host``), look-alike origins,
  cross-site "simple" POSTs (form or text bodies that need no preflight).
- Other local processes: the session list must not hand out what controls a session.
- Peers that hold resources: promised but unsent bodies, stalled headers, silent connections,
  trickled bodies, a connection flood past the cap, HTTP/2 reset floods.

Each attack gets its refusal, takes memory within a stated bound (the bridge's ``VmHWM``), and a
normal request made during it is answered in under a second.
"""

from __future__ import annotations

import socket
import time
from typing import Iterator
from urllib.parse import urlparse

import anthropic
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest
from conftest import Deployment, deploy, only_http

NATIVE = ["stdio", "http"]
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
RECEIVING = 8_000_000
FRONT_FLAGS = [
    "--header-read-timeout-secs", str(HEADER_TIMEOUT),
    "--body-read-timeout-secs", str(BODY_TIMEOUT),
    "--max-receiving-bytes", str(RECEIVING),
]
HELLO = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "still there?"}]}


@pytest.fixture(scope="module", params=NATIVE)
def native(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    deployment = deploy(request.param, extra_args=FRONT_FLAGS)
    yield deployment
    deployment.close()


def address(deployment: Deployment) -> tuple[str, int]:
    url = urlparse(deployment.base_url)
    assert url.hostname and url.port
    return url.hostname, url.port


def served_quickly(deployment: Deployment) -> None:
    """A normal request, through the official SDK, answered within a second."""
    started = time.monotonic()
    message = deployment.anthropic(timeout=5).messages.create(**HELLO)
    elapsed = time.monotonic() - started
    assert message.content[0].text == "echo: still there?"
    assert elapsed < 1.0, f"a normal request took {elapsed:.2f} s during the attack"


def raw(deployment: Deployment, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(address(deployment), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def closed_by_peer(connection: socket.socket, within: float) -> bool:
    """Whether the bridge closes `connection` within `within` seconds (EOF or reset)."""
    connection.settimeout(within)
    try:
        while connection.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --- browsers: DNS rebinding, look-alike origins, simple cross-site POSTs --------------------


@pytest.mark.parametrize("path", ["/health", "/sessions", "/v1/models", "/metrics", "/"])
def test_a_rebound_name_reads_nothing(native: Deployment, path: str) -> None:
    _, port = address(native)
    refused = httpx.get(f"{native.base_url}{path}", headers={"host": f"attacker.example:{port}"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.json()["error"]["type"] == "permission_error"
    assert "Host" in refused.json()["error"]["message"]
    assert httpx.get(f"{native.base_url}{path}", headers={"host": f"localhost:{port}"}).status_code == 200


def test_a_rebound_name_cannot_open_the_event_stream(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no /mcp endpoint")
    if kind == "worker":
        pytest.skip("not applicable to the worker target: a Worker answers on public names; every request needs its token")
    deployment = deploy(kind)
    deployments.append(deployment)
    _, port = address(deployment)
    response = httpx.get(
        deployment.mcp_url,
        headers={"host": f"rebind.attacker.example:{port}", "accept": "text/event-stream", "mcp-session-id": "0" * 32},
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "host",
    [
        "localhost.:{port}", "localhost.attacker.example:{port}", "attacker.example", "attacker.example:{wrong}",
        "127.0.0.1.nip.io:{port}", "127.1:{port}", "2130706433:{port}", "0x7f.0.0.1:{port}", "user@localhost:{port}",
    ],
)
def test_host_spellings_are_compared_exactly(native: Deployment, host: str) -> None:
    _, port = address(native)
    value = host.format(port=port, wrong=port + 1)
    assert httpx.get(f"{native.base_url}/health", headers={"host": value}).status_code == 403


def test_missing_or_duplicate_host_is_400(native: Deployment) -> None:
    host, port = address(native)
    missing = raw(native, b"GET /sessions HTTP/1.1\r\nconnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 400"), missing[:200]
    duplicate = raw(
        native, f"GET /sessions HTTP/1.1\r\nHost: {host}:{port}\r\nHost: evil.example:{port}\r\nconnection: close\r\n\r\n".encode()
    )
    assert duplicate.startswith(b"HTTP/1.1 400"), duplicate[:200]
    # HTTP/1.0 has no Host requirement; no browser speaks it.
    old = raw(native, b"GET /health HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.0 200") or old.startswith(b"HTTP/1.1 200"), old[:200]


@pytest.mark.parametrize(
    "origin",
    ["http://127.attacker.example", "http://127.0.0.1.attacker.example", "http://[::1].attacker.example",
     "http://localhost.attacker.example:5173", "http://127.1", "null"],
)
def test_look_alike_origins_are_refused(native: Deployment, origin: str) -> None:
    response = native.http.post("/v1/messages", json=HELLO, headers={"origin": origin})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "permission_error"
    assert native.http.post("/v1/messages", json=HELLO, headers={"origin": "http://127.0.0.1:5173"}).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_cross_site_simple_posts_are_refused(target: Deployment, content_type: str | None) -> None:
    before = len(target.model().received)
    headers = {"content-type": content_type} if content_type else {}
    # No content-type at all: httpx must not add one, so build the request by hand.
    body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}'
    request = target.http.build_request("POST", "/v1/messages", content=body, headers=headers)
    if content_type is None:
        del request.headers["content-type"]
    response = target.http.send(request)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "application/json" in response.json()["error"]["message"]
    assert len(target.model().received) == before, "the client was never asked"


def test_mcp_refuses_a_form_posted_initialize(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no /mcp endpoint")
    deployment = deploy(kind, [])
    deployments.append(deployment)
    response = httpx.post(
        deployment.mcp_url,
        headers={"content-type": "text/plain", **deployment.auth_headers()},
        content=b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}',
    )
    assert response.status_code == 400
    assert response.json()["jsonrpc"] == "2.0"
    assert deployment.sessions() == []


# --- other local processes: listing sessions hands out no control ----------------------------


def test_listed_session_ids_give_no_hold_on_the_session(kind: str, deployments: list[Deployment]) -> None:
    only_http(kind, "stdio has no /mcp endpoint")
    deployment = deploy(kind)
    deployments.append(deployment)
    listed = deployment.session_id("main")
    assert listed.startswith("mcps_")
    mcp = {"mcp-session-id": listed, "accept": "application/json, text/event-stream", **deployment.auth_headers()}
    assert httpx.get(deployment.mcp_url, headers={**mcp, "accept": "text/event-stream"}).status_code == 404
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert httpx.post(deployment.mcp_url, headers=mcp, json=ping).status_code == 404
    assert httpx.delete(deployment.mcp_url, headers=mcp).status_code == 404
    # The listed handle still routes API requests, and the client was not disturbed.
    client = deployment.anthropic(default_headers={"x-mcp-session-id": listed})
    assert client.messages.create(**HELLO).content[0].text == "echo: still there?"


# --- peers that hold resources ---------------------------------------------------------------


def test_promised_bodies_take_no_memory(native: Deployment) -> None:
    host, port = address(native)
    before = native.bridge_status("VmHWM")
    attackers = []
    try:
        for _ in range(250):
            connection = socket.create_connection((host, port), timeout=5)
            connection.sendall(
                f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"content-length: {32 * 1024 * 1024}\r\n\r\n{{".encode()
            )
            attackers.append(connection)
        time.sleep(0.3)
        served_quickly(native)
        grown_mb = (native.bridge_status("VmHWM") - before) / 1024
        # Before: each promise reserved its 32 MB (539 MB for 250). Now: a few KB each.
        assert grown_mb < 40, f"250 promised 32 MB bodies grew the bridge by {grown_mb:.0f} MB"
    finally:
        for connection in attackers:
            connection.close()


def test_stalled_and_silent_connections_are_closed(native: Deployment) -> None:
    host, port = address(native)
    stalled = []
    try:
        for index in range(200):
            connection = socket.create_connection((host, port), timeout=5)
            if index % 2:
                connection.sendall(b"GET /health HTTP/1.1\r\nHo")  # headers that never finish
            # else: never sends a byte (not even the HTTP/2 preface the server waits to detect)
            stalled.append(connection)
        served_quickly(native)
        started = time.monotonic()
        assert all(closed_by_peer(c, max(0.1, HEADER_TIMEOUT + 4 - (time.monotonic() - started))) for c in stalled)
        served_quickly(native)
    finally:
        for connection in stalled:
            connection.close()


def test_a_trickled_body_gets_408(native: Deployment) -> None:
    host, port = address(native)
    with socket.create_connection((host, port), timeout=BODY_TIMEOUT + 5) as connection:
        connection.sendall(
            f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: 1000\r\n\r\n{{\"model\"".encode()
        )
        served_quickly(native)
        reply = connection.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"timeout_error"' in reply


def test_bodies_being_received_share_one_budget(native: Deployment) -> None:
    host, port = address(native)
    with socket.create_connection((host, port), timeout=10) as hog:
        # 6 MB of an 7 MB body arrive, then the sender stalls: they hold the budget.
        hog.sendall(
            f"POST /v1/messages/count_tokens HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {7_000_000}\r\n\r\n".encode()
            + b" " * 6_000_000
        )
        time.sleep(0.3)
        text = "word " * 600_000  # a 3 MB body: over what the budget has left
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        refused = native.http.post("/v1/messages/count_tokens", json=body)
        assert refused.status_code == 529, refused.text[:300]
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert refused.headers["x-should-retry"] == "true"
        served_quickly(native)
    # The stalled body is gone (closed): the budget is whole again.
    time.sleep(0.3)
    assert native.http.post("/v1/messages/count_tokens", json=body).status_code == 200


@pytest.mark.parametrize("kind", NATIVE)
def test_connections_past_the_cap_are_closed_and_service_returns(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, extra_args=["--max-connections", "20", "--header-read-timeout-secs", str(HEADER_TIMEOUT)])
    deployments.append(deployment)
    host, port = address(deployment)
    holders = [socket.create_connection((host, port), timeout=5) for _ in range(30)]
    try:
        time.sleep(0.5)
        # Past the cap (20), connections are closed as soon as they are accepted.
        closed = [c for c in holders if closed_by_peer(c, 0.05)]
        assert 10 <= len(closed) <= 12, f"{len(closed)} of 30 closed at once (a connection still closing may hold a slot)"
        # The silent ones that got a slot are dropped after the idle timeout; then callers are
        # served again.
        assert all(closed_by_peer(c, HEADER_TIMEOUT + 4) for c in holders)
        served_quickly(deployment)
    finally:
        for connection in holders:
            connection.close()


def test_http2_streams_are_bounded_and_a_reset_flood_is_survived(native: Deployment) -> None:
    host, port = address(native)
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    before = native.bridge_status("VmHWM")
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(connection.data_to_send())
        settings: dict[int, int] = {}
        deadline = time.monotonic() + 5
        while not settings and time.monotonic() < deadline:
            for event in connection.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = {key: value.new_value for key, value in event.changed_settings.items()}
        sock.sendall(connection.data_to_send())
        assert settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 1000, settings
        # A rapid-reset flood: open and cancel streams as fast as possible.
        headers = [(":method", "POST"), (":path", "/v1/messages"), (":scheme", "http"), (":authority", f"{host}:{port}"),
                   ("content-type", "application/json")]
        goaway = False
        try:
            for _ in range(2000):
                stream_id = connection.get_next_available_stream_id()
                connection.send_headers(stream_id, headers)
                connection.reset_stream(stream_id)
                sock.sendall(connection.data_to_send())
        except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
            goaway = True
        sock.settimeout(2)
        try:
            while data := sock.recv(65536):
                events = connection.receive_data(data)
                goaway = goaway or any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
                if goaway:
                    break
        except (TimeoutError, ConnectionResetError, h2.exceptions.ProtocolError):
            pass
    served_quickly(native)
    grown_mb = (native.bridge_status("VmHWM") - before) / 1024
    assert grown_mb < 40, f"a reset flood grew the bridge by {grown_mb:.0f} MB"


# --- oversized request headers ------------------------------------------------------------------

BRIDGE_HEADER_BYTES = 96 * 1024  # core request_headers::MAX_HEADER_BYTES
BRIDGE_HEADER_FIELDS = 100  # core request_headers::MAX_HEADER_FIELDS


def fillers(total: int, each: int = 4000) -> dict[str, str]:
    """Header fields of `each` bytes of value, `total` bytes of values together."""
    return {f"x-filler-{index}": "a" * min(each, total - index * each) for index in range((total + each - 1) // each)}


def many_fields(count: int) -> dict[str, str]:
    return {f"x-field-{index}": "v" for index in range(count)}


def assert_json_431(reply: httpx.Response, what: str) -> None:
    assert reply.status_code == 431, (what, reply.status_code, reply.text[:200])
    assert reply.headers["content-type"].startswith("application/json"), what
    body = reply.json()
    assert body["type"] == "error", what
    assert body["error"]["type"] == "request_too_large", what
    assert what in body["error"]["message"], body
    assert reply.headers["request-id"].startswith("req_")


def test_oversized_headers_get_a_json_431_and_the_bridge_keeps_serving(target: Deployment) -> None:
    """Headers within the bridge's bound are served; past it, a JSON 431 `request_too_large` on a
    connection that stays usable (HTTP/1.1 keep-alive); through the SDK, an APIStatusError."""
    with httpx.Client(base_url=target.base_url, headers={"content-type": "application/json", **target.auth_headers()}, timeout=10) as http:
        # 64 KB of headers: served (callers send up to ~8 KB).
        assert http.post("/v1/messages", json=HELLO, headers=fillers(64 * 1024)).status_code == 200
        # Just over the bridge's bound (names and values together), and one field too many.
        assert_json_431(http.post("/v1/messages", json=HELLO, headers=fillers(BRIDGE_HEADER_BYTES + 1024)), "bytes")
        assert_json_431(http.post("/v1/messages", json=HELLO, headers=many_fields(BRIDGE_HEADER_FIELDS + 1)), "header fields")
        # Keyless routes are bounded too.
        assert_json_431(http.get("/health", headers=fillers(BRIDGE_HEADER_BYTES + 1024)), "bytes")
        if target.kind == "worker":
            # Past workerd's own cut (about 128 KiB for the whole head) the runtime answers before
            # the Worker runs: 431 with a plain-text body (Cloudflare's edge has its own limit).
            assert http.get("/health", headers=fillers(140 * 1024)).status_code == 431
        # Still serving, on the same client.
        assert http.post("/v1/messages", json=HELLO).status_code == 200
    with pytest.raises(anthropic.APIStatusError) as raised:
        target.anthropic(max_retries=0).messages.create(**HELLO, extra_headers=fillers(BRIDGE_HEADER_BYTES + 1024))
    assert raised.value.status_code == 431
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["type"] == "request_too_large"
    served_quickly(target)


def test_headers_past_the_hard_limit_are_refused_by_hyper(native: Deployment) -> None:
    """Past hyper's hard limits (twice the bridge's bound) hyper answers 431 itself, without a
    body, and closes the connection; the bridge keeps serving."""
    headers = {"content-type": "application/json", **native.auth_headers()}
    for extra in (fillers(300 * 1024), many_fields(2 * BRIDGE_HEADER_FIELDS + 10)):
        with httpx.Client(base_url=native.base_url, headers=headers, timeout=10) as http:
            try:
                reply = http.post("/v1/messages", json=HELLO, headers=extra)
                assert reply.status_code == 431, reply.text[:200]
                assert reply.content == b""
            except httpx.RemoteProtocolError:
                pass  # closed before the client read the 431
    served_quickly(native)


def test_oversized_headers_over_http2(native: Deployment) -> None:
    """HTTP/2 (h2c) gets the same bound and JSON 431; past the hard header-list size h2 refuses
    the stream (431 without a body), and the connection still serves."""
    import httpx2

    transport = httpx2.HTTPTransport(http1=False, http2=True)
    headers = {"content-type": "application/json", **native.auth_headers()}
    with httpx2.Client(transport=transport, base_url=native.base_url, headers=headers, timeout=10) as http:
        ok = http.post("/v1/messages", json=HELLO, headers=fillers(64 * 1024))
        assert (ok.http_version, ok.status_code) == ("HTTP/2", 200)
        over = http.post("/v1/messages", json=HELLO, headers=fillers(BRIDGE_HEADER_BYTES + 1024))
        assert over.status_code == 431
        assert over.json()["error"]["type"] == "request_too_large"
        assert over.headers["request-id"].startswith("req_")
        try:
            hard = http.post("/v1/messages", json=HELLO, headers=fillers(300 * 1024))
            assert hard.status_code == 431 and hard.content == b""
        except (httpx2.RemoteProtocolError, httpx2.LocalProtocolError):
            pass
        assert http.post("/v1/messages", json=HELLO).status_code == 200
    served_quickly(native)
