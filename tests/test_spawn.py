"""`sampling2api stdio --spawn CMD`: the bridge starts the MCP client as its child."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anthropic

from conftest import FAST_FLAGS, bridge_binary, free_port, wait_for_health


def test_spawned_client_serves_the_api_and_the_bridge_exits_with_it() -> None:
    port = free_port()
    client_script = Path(__file__).with_name("spawned_client.py")
    bridge = subprocess.Popen(
        [bridge_binary(), "stdio", "--listen", f"127.0.0.1:{port}", *FAST_FLAGS, "--spawn", sys.executable, str(client_script)]
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_health(base_url)
        api = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)
        # The child connects a moment after the bridge listens; until then the API says 503.
        for _ in range(100):
            try:
                message = api.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
                break
            except anthropic.APIStatusError as error:
                assert error.status_code == 503
                time.sleep(0.1)
        assert message.content[0].text == "echo: hi"
        bye = api.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "[exit-client]"}])
        assert bye.content[0].text == "echo: [exit-client]"
        assert bridge.wait(timeout=10) == 0
    finally:
        if bridge.poll() is None:
            bridge.kill()
