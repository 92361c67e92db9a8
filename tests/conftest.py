"""Deployments of the bridge for the black-box suite, one per target.

A target is a way to run the bridge:
- ``stdio``: the MCP client (the official Python SDK) launches ``sampling2api stdio`` as its
  subprocess, exactly as VS Code does; one client per bridge.
- ``http``: ``sampling2api http`` runs on its own; clients connect over Streamable HTTP.
- ``worker``: the Cloudflare Worker under ``wrangler dev`` (workerd, on loopback). One
  ``wrangler dev`` serves every test that needs the same settings; each deployment gets its own
  random token, which is its own namespace of sessions, so it starts as empty as a new bridge.

Tests talk to the API with the official ``anthropic`` SDK (or raw ``httpx`` where the wire
itself is under test). A case that cannot apply to a target skips with the reason in code.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

sys.path.insert(0, str(Path(__file__).parent))
from scripted_client import ClientThread, ScriptedModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["stdio", "http", "worker"]
# Short deadlines and ping intervals keep slow-path tests quick; the defaults are 600 s and 10 s.
FAST_FLAGS = ["--request-timeout-secs", "3", "--ping-interval-ms", "250"]


def bridge_binary() -> str:
    path = os.environ.get("SAMPLING2API_BIN") or str(ROOT / "target" / "debug" / "sampling2api")
    if not Path(path).exists():
        raise RuntimeError(f"{path} not found: build it first (cargo build), or set SAMPLING2API_BIN")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(base_url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"bridge at {base_url} did not become healthy")


# Native flags and the worker vars that mean the same.
WORKER_VARS = {
    "--request-timeout-secs": "REQUEST_TIMEOUT_SECS",
    "--ping-interval-ms": "PING_INTERVAL_MS",
    "--stream-wait-ms": "STREAM_WAIT_MS",
    "--max-body-bytes": "MAX_BODY_BYTES",
    "--default-model-hint": "DEFAULT_MODEL_HINT",
    "--max-in-flight-per-session": "MAX_IN_FLIGHT_PER_SESSION",
    "--max-queued-per-session": "MAX_QUEUED_PER_SESSION",
    "--max-resend-bytes": "MAX_RESEND_BYTES",
    "--max-reported-models": "MAX_REPORTED_MODELS",
    "--tools": "TOOLS",
    "--session-idle-secs": "SESSION_IDLE_SECS",
}
# Native switches (no value) and the worker vars that mean the same.
WORKER_SWITCHES = {"--log-prompts": "LOG_PROMPTS"}
# Native flags with no worker equivalent, and why.
NOT_ON_WORKER = {
    "--threads": "a Worker has no runtime threads to configure",
    "--allow-private-image-urls": "the worker does not download image URLs (it cannot vet the addresses a name resolves to)",
    "--max-url-images": "the worker does not download image URLs",
    "--max-url-image-bytes": "the worker does not download image URLs",
    "--max-url-image-bytes-total": "the worker does not download image URLs",
    "--url-image-concurrency": "the worker does not download image URLs",
    "--max-client-queue-bytes": "the worker's messages to a client leave through the runtime's WebSocket, whose buffer it cannot see",
    "--max-client-line-bytes": "stdio only",
}


class WranglerDev:
    """One `wrangler dev` (workerd) on loopback with fixed vars."""

    def __init__(
        self, variables: dict[str, str], *, port: int | None = None, state: Path | None = None, console: bool = False
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Durable Object storage; a second instance given the same folder sees the same objects.
        self.state = state = state or ROOT / ".cache" / "wrangler-state" / f"{self.port}-{secrets.token_hex(4)}"
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = state / f"wrangler-{secrets.token_hex(4)}.log"
        command = [str(ROOT / "node_modules" / ".bin" / "wrangler"), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
                   "--persist-to", str(state)]
        # "log" shows the worker's console lines, and a line per request, which slows wrangler's
        # proxy under load: only the instances whose log a test reads get it.
        command += ["--log-level", "log" if console else "warn"]
        for name, value in variables.items():
            command += ["--var", f"{name}:{value}"]
        # No telemetry, and no download of the `Request.cf` sample (the suite runs offline).
        env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false", "CI": "true", "NO_COLOR": "1"}
        self.log = open(self.log_path, "w")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_health(self.base_url, timeout=120)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"wrangler dev did not start; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


_wranglers: dict[tuple[bool, tuple[tuple[str, str], ...]], WranglerDev] = {}


def wrangler_with(variables: dict[str, str], *, console: bool = False) -> WranglerDev:
    key = (console, tuple(sorted(variables.items())))
    if key not in _wranglers:
        _wranglers[key] = WranglerDev(variables, console=console)
    return _wranglers[key]


@atexit.register
def _stop_wranglers() -> None:
    for instance in _wranglers.values():
        instance.stop()


def worker_settings(args: list[str]) -> tuple[dict[str, str], str | None]:
    """The worker vars for native `args`, and the token an `--api-key` asks for."""
    variables: dict[str, str] = {}
    aliases: list[str] = []
    token = None
    index = 0
    while index < len(args):
        flag = args[index]
        if flag in WORKER_SWITCHES:
            variables[WORKER_SWITCHES[flag]] = "true"
            index += 1
            continue
        value = args[index + 1] if index + 1 < len(args) else ""
        if flag in NOT_ON_WORKER:
            pytest.skip(f"not applicable to the worker target: {NOT_ON_WORKER[flag]}")
        if flag in WORKER_VARS:
            variables[WORKER_VARS[flag]] = value
        elif flag == "--model-alias":
            aliases.append(value)
        elif flag == "--api-key":
            token = value
        else:
            raise ValueError(f"no worker equivalent known for {flag}")
        index += 2
    if aliases:
        variables["MODEL_ALIASES"] = ",".join(aliases)
    return variables, token


@dataclass
class ClientSpec:
    name: str = "main"
    sampling: bool = True
    tools: bool = True


@dataclass
class Deployment:
    kind: str
    base_url: str
    clients: dict[str, ClientThread] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    api_key: str | None = None
    log_path: Path | None = None
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """An HTTP client for the API that presents this deployment's key, if it has one."""
        if self._http is None:
            # JSON routes refuse bodies not declared JSON (a cross-site form POST needs no
            # preflight); raw `content=` bodies in tests are JSON unless a test says otherwise.
            headers = {"content-type": "application/json", **self.auth_headers()}
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=30)
        return self._http

    def bridge_pid(self) -> int:
        """The native bridge's process id (http: our child; stdio: the MCP client's child)."""
        if self.process is not None:
            return self.process.pid
        if self.kind != "stdio":
            raise ValueError(f"no native bridge process for the {self.kind} target")
        port = self.base_url.rsplit(":", 1)[1]
        found = subprocess.run(["pgrep", "-f", "--", f"--listen 127.0.0.1:{port}"], capture_output=True, text=True)
        return int(found.stdout.split()[0])

    def bridge_status(self, field: str) -> int:
        """A `/proc/PID/status` figure of the bridge in kB (VmHWM, VmRSS, ...)."""
        for line in Path(f"/proc/{self.bridge_pid()}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise KeyError(field)

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def model(self, name: str = "main") -> ScriptedModel:
        return self.clients[name].model

    def connect(self, spec: ClientSpec) -> ClientThread:
        if self.kind == "stdio":
            raise RuntimeError("a stdio bridge serves exactly one MCP client")
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else None
        client = ClientThread(
            self.mcp_url, ScriptedModel(spec.name), sampling=spec.sampling, tools=spec.tools, headers=headers
        ).start()
        self.clients[spec.name] = client
        # Listed with its event stream open: routing without a header prefers sessions whose
        # stream is open, so a test must not race the client's GET.
        wait_until(
            # Ready too: a client's GET stream may open before its `notifications/initialized`
            # has been handled (two connections, no order between them), and a request meanwhile
            # gets 503 "not finished initializing".
            lambda: any(
                s["client_name"] == spec.name and s["event_stream_open"] and (s["ready"] or not spec.sampling)
                for s in self.sessions()
            ),
            what=f"{spec.name} listed with its stream open",
        )
        return client

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    def sessions(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base_url}/sessions", headers=self.auth_headers(), timeout=5).json()["data"]

    def session_id(self, client_name: str) -> str:
        return next(s["id"] for s in self.sessions() if s["client_name"] == client_name)

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/health", headers=self.auth_headers(), timeout=5).json()

    def assert_idle(self) -> None:
        """No request in flight, queued or pending at the bridge. The worker's session objects
        report their counts to `/metrics`."""
        if self.kind == "worker":
            text = self.metrics()
            assert "sampling2api_in_flight 0" in text and "sampling2api_queued 0" in text, text
            return
        health = self.health()
        assert health["in_flight"] == 0, health
        assert health["pending"] == 0, health

    def metrics(self) -> str:
        return httpx.get(f"{self.base_url}/metrics", headers=self.auth_headers(), timeout=5).text

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("api_key", self.api_key or "not-needed")
        return anthropic.Anthropic(base_url=self.base_url, **kwargs)

    def async_anthropic(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("api_key", self.api_key or "not-needed")
        return anthropic.AsyncAnthropic(base_url=self.base_url, **kwargs)

    def openai(self, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("api_key", self.api_key or "not-needed")
        return openai.OpenAI(base_url=f"{self.base_url}/v1", **kwargs)

    def close(self) -> None:
        for client in self.clients.values():
            client.stop()
        if self._http is not None:
            self._http.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_until(predicate: Any, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def with_defaults(extra_args: list[str]) -> list[str]:
    """FAST_FLAGS, except those `extra_args` sets itself (flags may be given once), then `extra_args`."""
    given = set(extra_args[::2])
    defaults = [part for flag, value in zip(FAST_FLAGS[::2], FAST_FLAGS[1::2]) if flag not in given for part in (flag, value)]
    return defaults + extra_args


def deploy(
    kind: str,
    clients: list[ClientSpec] | None = None,
    extra_args: list[str] | None = None,
    *,
    api_key: str | None = None,
    log_path: Path | None = None,
) -> Deployment:
    """Starts a bridge of `kind` with `clients` connected (default: one full client).

    `api_key` is configured on the bridge and used by every client; `log_path` receives the
    bridge's stderr."""
    clients = [ClientSpec()] if clients is None else clients
    args = with_defaults(extra_args or []) + (["--api-key", api_key] if api_key else [])
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 - lives as long as the bridge
    if kind == "stdio":
        if len(clients) != 1:
            raise ValueError("a stdio bridge serves exactly one MCP client")
        spec = clients[0]
        params = StdioServerParameters(command=bridge_binary(), args=["stdio", "--listen", f"127.0.0.1:{port}", *args])
        server: Any = stdio_client(params, errlog=log_file) if log_file else params
        client = ClientThread(server, ScriptedModel(spec.name), sampling=spec.sampling, tools=spec.tools).start()
        deployment = Deployment(kind, base_url, {spec.name: client}, api_key=api_key, log_path=log_path)
        wait_for_health(base_url)
        return deployment
    if kind == "worker":
        variables, token = worker_settings(args)
        instance = wrangler_with(variables, console=log_path is not None)
        # The worker's console goes to its `wrangler dev` log, shared by deployments with the same
        # vars; tests find their own lines by request id.
        deployment = Deployment(
            kind, instance.base_url, api_key=token or f"tok-{secrets.token_hex(12)}", log_path=instance.log_path if log_path else None
        )
        try:
            for spec in clients:
                deployment.connect(spec)
        except BaseException:
            deployment.close()
            raise
        return deployment
    if kind == "http":
        process = subprocess.Popen([bridge_binary(), "http", "--listen", f"127.0.0.1:{port}", *args], stderr=log_file)
        deployment = Deployment(kind, base_url, process=process, api_key=api_key, log_path=log_path)
        try:
            wait_for_health(base_url)
            for spec in clients:
                deployment.connect(spec)
        except BaseException:
            deployment.close()
            raise
        return deployment
    raise ValueError(f"unknown target {kind}")


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A bridge of each kind with one full client (sampling + sampling.tools) named `main`."""
    deployment = deploy(request.param)
    yield deployment
    deployment.close()


@pytest.fixture(params=TARGETS)
def kind(request: pytest.FixtureRequest) -> str:
    """For tests that build their own deployment."""
    return request.param


@pytest.fixture
def deployments() -> Iterator[list[Deployment]]:
    """Deployments a test makes are closed after it."""
    made: list[Deployment] = []
    yield made
    for deployment in made:
        deployment.close()


def only_http(kind: str, why: str) -> None:
    """For what needs MCP over Streamable HTTP (native http mode and the worker)."""
    if kind == "stdio":
        pytest.skip(f"not applicable to the {kind} target: {why}")


def not_on_worker(kind: str, why: str) -> None:
    if kind == "worker":
        pytest.skip(f"not applicable to the worker target: {why}")


def sees_buffered_callers_leave(kind: str) -> bool:
    """Whether a bridge of `kind` learns that the caller of a non-streamed request left while it
    waits. The worker does not under `wrangler dev`: workerd takes a connection closed with a FIN
    for alive until something is written to it, and wrangler's proxy does not pass a waiting
    request's cancellation on at all. Such a request ends at its deadline (docs/worker.md)."""
    return kind != "worker"
