"""One stdio session end to end with nothing but the standard library, for a bridge started by
any command: `python3 tests/stdio_smoke.py wine64 sampling2api.exe` checks the Windows build
under Wine (scripts/test-all), tests/test_platforms.py runs it against the Linux build.

As a Windows client would, it ends every line with `\\r\\n`: initialize and initialized, then
`GET /health` on the bridge's --listen port, then one `POST /v1/messages` whose
`sampling/createMessage` it answers, then it closes stdin and expects the bridge to exit 0 and
every line it wrote to stdout to have been JSON-RPC."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

PROTOCOL = "2025-11-25"
TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, json.loads(response.read())


def run(command: list[str]) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    bridge = subprocess.Popen(
        [*command, "stdio", "--listen", f"127.0.0.1:{port}", "--request-timeout-secs", "20"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert bridge.stdin is not None and bridge.stdout is not None
    stdin, stdout = bridge.stdin, bridge.stdout
    lines: queue.Queue[bytes] = queue.Queue()

    def read_lines() -> None:
        for line in iter(stdout.readline, b""):
            lines.put(line)
        lines.put(b"")  # end of stream

    threading.Thread(target=read_lines, daemon=True).start()

    def send(message: dict[str, Any]) -> None:
        stdin.write(json.dumps(message).encode() + b"\r\n")
        stdin.flush()

    def receive() -> dict[str, Any]:
        line = lines.get(timeout=TIMEOUT)
        assert line, f"the bridge closed its stdout (exit code {bridge.poll()})"
        assert line.endswith(b"\n"), line
        return json.loads(line)

    try:
        send({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {"sampling": {}}, "clientInfo": {"name": "smoke", "version": "1"}},
        })
        reply = receive()
        assert reply["id"] == 0 and reply["result"]["serverInfo"]["name"], reply
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                status, health = http("GET", f"{base_url}/health")
                if status == 200 and health["sampling_sessions"] == 1:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the bridge never reported its sampling session on /health"
            time.sleep(0.1)

        answer: dict[str, Any] = {}
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        caller = threading.Thread(target=lambda: answer.update(zip(("status", "body"), http("POST", f"{base_url}/v1/messages", body))))
        caller.start()
        sampling = receive()
        assert sampling["method"] == "sampling/createMessage", sampling
        send({
            "jsonrpc": "2.0",
            "id": sampling["id"],
            "result": {"role": "assistant", "content": {"type": "text", "text": "hello"}, "model": "smoke-model", "stopReason": "endTurn"},
        })
        caller.join(TIMEOUT)
        assert answer.get("status") == 200, answer
        assert answer["body"]["content"][0]["text"] == "hello", answer

        stdin.close()
        assert bridge.wait(TIMEOUT) == 0
        # stdout is the MCP channel to its end: whatever else the bridge wrote there (and, run
        # through a launcher such as the npm package's, whatever the launcher wrote) is JSON-RPC.
        while line := lines.get(timeout=TIMEOUT):
            assert json.loads(line).get("jsonrpc") == "2.0", line
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: stdio_smoke.py COMMAND [ARGS…]  (the command that starts sampling2api)")
    started = time.monotonic()
    run(sys.argv[1:])
    print(f"stdio smoke test passed in {time.monotonic() - started:.1f}s: {' '.join(sys.argv[1:])}")
