"""`sampling2api connect`: what it writes makes the real clients' libraries reach a running bridge.

Each test runs `connect --write` with HOME pointed at a temporary directory, reads back the file
a client would read, and uses only what is in it: Claude Code's `env` block drives the official
`anthropic` SDK (in a fresh process, from its environment, as Claude Code passes it on), and
VS Code's `mcp.json` entry connects the official MCP SDK over http, or launches the bridge over
stdio exactly as the entry says.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import pytest
from mcp.client.stdio import StdioServerParameters

from conftest import Deployment, bridge_binary, deploy, free_port, wait_for_health, wait_until
from scripted_client import ClientThread, ScriptedModel

# What Claude Code would do with the env block: one message, then the model list it discovers.
SDK_SCRIPT = """
import anthropic
client = anthropic.Anthropic(max_retries=0)
message = client.messages.create(model="claude-bridge-test", max_tokens=64,
                                 messages=[{"role": "user", "content": "hello from settings"}])
print(message.content[0].text)
print(" ".join(model.id for model in client.models.list()))
"""


def run_connect(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`sampling2api connect ARGS` as a person with this HOME and no bridge settings exported."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SAMPLING2API_")}
    for name in ("XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "COPILOT_HOME"):
        env.pop(name, None)
    env["HOME"] = str(home)
    return subprocess.run([bridge_binary(), "connect", *args], env=env, cwd=home, capture_output=True, text=True, timeout=30)


def sdk_with_env(variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The official SDK in a fresh process whose only Anthropic settings are `variables`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    env.update(variables)
    return subprocess.run([sys.executable, "-c", SDK_SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def port_of(deployment: Deployment) -> int:
    return int(deployment.base_url.rsplit(":", 1)[1])


def bridge_flags(deployment: Deployment) -> list[str]:
    """How `connect` names this deployment: the native bridge by its flags, the worker by URL."""
    assert deployment.api_key
    if deployment.kind == "worker":
        return ["--url", deployment.base_url, "--token", deployment.api_key]
    return ["--listen", f"127.0.0.1:{port_of(deployment)}", "--api-key", deployment.api_key]


@pytest.mark.parametrize("kind", ["http", "worker"])
def test_written_claude_code_settings_make_the_sdk_reach_the_bridge(
    kind: str, tmp_path: Path, deployments: list[Deployment]
) -> None:
    deployment = deploy(kind, api_key=f"key-{secrets.token_hex(8)}")
    deployments.append(deployment)
    key = deployment.api_key
    settings_path = tmp_path / ".claude" / "settings.json"
    settings_path.parent.mkdir()
    # Someone's existing settings, with a real Anthropic key that must not go to the bridge.
    settings_path.write_text('{\n  // mine\n  "model": "sonnet",\n  "env": {"ANTHROPIC_API_KEY": "sk-ant-real", "KEEP": "1"},\n}\n')

    written = run_connect(tmp_path, "claude-code", "--write", *bridge_flags(deployment))
    assert written.returncode == 0, written.stderr
    text = settings_path.read_text()
    assert "// mine" in text and '"model": "sonnet"' in text
    assert (tmp_path / ".claude" / "settings.json.bak").read_text().startswith('{\n  // mine')
    # Still JSONC as the person wrote it; read it as Claude Code does (own-line comments, trailing commas).
    env_block = json.loads(re.sub(r",(\s*[}\]])", r"\1", re.sub(r"(?m)^\s*//.*\n", "", text)))["env"]
    assert env_block == {
        "KEEP": "1",
        "ANTHROPIC_BASE_URL": deployment.base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
    }

    answer = sdk_with_env({k: v for k, v in env_block.items() if k.startswith("ANTHROPIC_")})
    assert answer.returncode == 0, answer.stderr
    text_line, models_line = answer.stdout.splitlines()
    assert text_line == "echo: hello from settings"
    assert deployment.model().started == ["hello from settings"]
    # Claude Code's picker lists only ids that start with `claude`: discovery finds some.
    assert any(model.startswith("claude") for model in models_line.split()), models_line

    # The token is what reaches this client: with another one the native bridge refuses (401),
    # and on the worker it names another, empty namespace (503); this client sees nothing.
    refused = sdk_with_env({"ANTHROPIC_BASE_URL": env_block["ANTHROPIC_BASE_URL"], "ANTHROPIC_AUTH_TOKEN": "other"})
    expected_error = "AuthenticationError" if kind == "http" else "ServiceUnavailableError"
    assert refused.returncode != 0 and expected_error in refused.stderr, refused.stderr
    assert deployment.model().started == ["hello from settings"]

    # Running it again changes nothing and keeps the one backup.
    again = run_connect(tmp_path, "claude-code", "--write", *bridge_flags(deployment))
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert settings_path.read_text() == text
    assert sorted(p.name for p in settings_path.parent.iterdir()) == ["settings.json", "settings.json.bak"]


def read_entry(path: Path, name: str = "sampling2api") -> dict[str, Any]:
    return json.loads(path.read_text())["servers"][name]


def test_written_vscode_http_entry_connects_an_mcp_client(tmp_path: Path, deployments: list[Deployment]) -> None:
    key = f"key-{secrets.token_hex(8)}"
    deployment = deploy("http", clients=[], api_key=key)
    deployments.append(deployment)
    written = run_connect(
        tmp_path, "vscode", "--workspace", ".", "--mode", "http", "--listen", f"127.0.0.1:{port_of(deployment)}", "--api-key", key, "--write"
    )
    assert written.returncode == 0, written.stderr
    entry = read_entry(tmp_path / ".vscode" / "mcp.json")
    assert entry["type"] == "http"

    client = ClientThread(entry["url"], ScriptedModel("vscode-entry"), headers=entry["headers"]).start()
    deployment.clients["vscode-entry"] = client
    wait_until(lambda: any(s["client_name"] == "vscode-entry" for s in deployment.sessions()), what="client listed")
    message = deployment.anthropic().messages.create(
        model="claude-bridge-test", max_tokens=32, messages=[{"role": "user", "content": "via mcp.json"}]
    )
    assert message.content[0].text == "echo: via mcp.json"


def test_written_vscode_stdio_entry_launches_the_bridge(tmp_path: Path) -> None:
    key = f"key-{secrets.token_hex(8)}"
    port = free_port()
    written = run_connect(tmp_path, "vscode", "--workspace", ".", "--listen", f"127.0.0.1:{port}", "--api-key", key, "--write")
    assert written.returncode == 0, written.stderr
    entry = read_entry(tmp_path / ".vscode" / "mcp.json")
    assert entry["type"] == "stdio" and Path(entry["command"]).resolve() == Path(bridge_binary()).resolve()
    # The key travels in the entry's environment, not on the command line.
    assert key not in entry["args"] and entry["env"] == {"SAMPLING2API_API_KEYS": key}

    # Launched as VS Code launches it: command, args and env from the entry.
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"])
    client = ClientThread(params, ScriptedModel("stdio-entry")).start()
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        api = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=key, max_retries=0)
        message = api.messages.create(model="m", max_tokens=32, messages=[{"role": "user", "content": "launched"}])
        assert message.content[0].text == "echo: launched"
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="wrong", max_retries=0).messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
    finally:
        client.stop()


def test_env_exports_drive_both_sdks(tmp_path: Path, deployments: list[Deployment]) -> None:
    key = f"key-{secrets.token_hex(8)}"
    deployment = deploy("http", api_key=key)
    deployments.append(deployment)
    printed = run_connect(tmp_path, "env", "--shell", "sh", "--listen", f"127.0.0.1:{port_of(deployment)}", "--api-key", key)
    assert printed.returncode == 0, printed.stderr
    script = (
        printed.stdout
        + "\n"
        + sys.executable
        + " -c 'import anthropic, openai\n"
        + "print(anthropic.Anthropic(max_retries=0).messages.create(model=\"m\", max_tokens=16, messages=[{\"role\": \"user\", \"content\": \"a\"}]).content[0].text)\n"
        + "print(openai.OpenAI(max_retries=0).chat.completions.create(model=\"m\", messages=[{\"role\": \"user\", \"content\": \"o\"}]).choices[0].message.content)'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["echo: a", "echo: o"]
