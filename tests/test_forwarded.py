"""The bridge behind another port: SSH tunnels, `docker run -p`, editors' port forwarding and
reverse proxies hand it the `Host` the caller used, not the bridge's own address.

`localhost` and IP literals cannot be rebound by a web page (no DNS answer is involved), so they
pass on any port or none; names still need `--allow-host`. A loopback relay on another port
stands in for the tunnel: it copies bytes both ways and changes nothing, exactly as `ssh -L` or
Docker's port mapping does.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import httpx
import pytest
from conftest import Deployment, deploy, wait_until
from scripted_client import ClientThread, ScriptedModel

NATIVE = ["stdio", "http"]
HELLO = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "through the tunnel"}]}


class Relay:
    """A TCP relay on a free loopback port to `target_port`: what `ssh -L PORT:127.0.0.1:TARGET`
    or `docker run -p PORT:TARGET` looks like to the bridge."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        for end in self._open:
            end.close()


def port_of(deployment: Deployment) -> int:
    return int(deployment.base_url.rsplit(":", 1)[1])


@pytest.fixture(scope="module", params=NATIVE)
def forwarded(request: pytest.FixtureRequest) -> Iterator[tuple[Deployment, Relay]]:
    deployment = deploy(request.param, extra_args=["--allow-host", "bridge-38080.app.github.dev"])
    relay = Relay(port_of(deployment))
    yield deployment, relay
    relay.close()
    deployment.close()


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_sdk_callers_through_a_tunnel_on_another_port(forwarded: tuple[Deployment, Relay], name: str) -> None:
    deployment, relay = forwarded
    base_url = f"http://{name}:{relay.port}"
    assert relay.port != port_of(deployment)
    anthropic_caller = deployment.anthropic(timeout=10)
    message = anthropic_caller.with_options(base_url=base_url).messages.create(**HELLO)
    assert message.content[0].text == "echo: through the tunnel"
    openai_caller = deployment.openai(timeout=10).with_options(base_url=f"{base_url}/v1")
    completion = openai_caller.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "through the tunnel"}]
    )
    assert completion.choices[0].message.content == "echo: through the tunnel"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a reverse proxy that sends `Host: localhost`
        "127.0.0.1",
        "[::1]:9000",
        "localhost:443",
        "bridge-38080.app.github.dev",  # Codespaces-style forwarding, allowed by name
        "bridge-38080.app.github.dev:443",
    ],
)
def test_forwarded_host_headers_pass(forwarded: tuple[Deployment, Relay], host: str) -> None:
    deployment, relay = forwarded
    response = httpx.post(
        f"http://127.0.0.1:{relay.port}/v1/messages",
        headers={"host": host, "content-type": "application/json", **deployment.auth_headers()},
        json=HELLO,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "echo: through the tunnel"


@pytest.mark.parametrize(
    "host", ["attacker.example:{port}", "localhost.attacker.example:{port}", "127.0.0.1.nip.io:{port}",
             "other-38080.app.github.dev", "localhost.:{port}"]
)
def test_names_are_still_refused_behind_the_tunnel(forwarded: tuple[Deployment, Relay], host: str) -> None:
    """DNS rebinding through the forwarded port: a name the page controls is refused whatever
    the port, before any route runs."""
    _, relay = forwarded
    response = httpx.get(f"http://127.0.0.1:{relay.port}/sessions", headers={"host": host.format(port=relay.port)})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "permission_error"
    assert "--allow-host" in response.json()["error"]["message"]


def test_an_mcp_client_through_a_tunnel_serves_callers() -> None:
    """The MCP side forwarded too: an official `mcp` client whose Streamable HTTP URL is the
    tunnel's (VS Code reaching a bridge in a container or on a remote machine)."""
    deployment = deploy("http", clients=[])
    relay = Relay(port_of(deployment))
    client = ClientThread(f"http://localhost:{relay.port}/mcp", ScriptedModel("tunnelled")).start()
    try:
        wait_until(
            # Initialized too: through the relay its stream and its `notifications/initialized`
            # travel on two connections, in either order.
            lambda: any(s["client_name"] == "tunnelled" and s["event_stream_open"] and s["ready"] for s in deployment.sessions()),
            what="the tunnelled client listed, initialized, with its stream open",
        )
        message = deployment.anthropic(timeout=10).with_options(base_url=f"http://localhost:{relay.port}").messages.create(**HELLO)
        assert message.content[0].text == "echo: through the tunnel"
    finally:
        client.stop()
        relay.close()
        deployment.close()

