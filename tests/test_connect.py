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
import mcp.types as types
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


def with_vscode_inputs(path: Path, value: Any, typed: str) -> Any:
    """`value` with each `${input:ID}` replaced by what a person types when VS Code prompts for
    that input (it must be declared in the file's `inputs`, as a password)."""
    inputs = {item["id"]: item for item in json.loads(path.read_text()).get("inputs", [])}

    def replace(match: re.Match[str]) -> str:
        declared = inputs[match.group(1)]
        assert declared["type"] == "promptString" and declared["password"] is True, declared
        return typed

    if isinstance(value, dict):
        return {k: with_vscode_inputs(path, v, typed) for k, v in value.items()}
    return re.sub(r"\$\{input:([^}]+)\}", replace, value)


def test_written_vscode_http_entry_connects_an_mcp_client(tmp_path: Path, deployments: list[Deployment]) -> None:
    key = f"key-{secrets.token_hex(8)}"
    deployment = deploy("http", clients=[], api_key=key)
    deployments.append(deployment)
    written = run_connect(
        tmp_path, "vscode", "--workspace", ".", "--mode", "http", "--listen", f"127.0.0.1:{port_of(deployment)}", "--api-key", key, "--write"
    )
    assert written.returncode == 0, written.stderr
    mcp_json = tmp_path / ".vscode" / "mcp.json"
    entry = read_entry(mcp_json)
    assert entry["type"] == "http"
    # A workspace file holds no key: VS Code asks for it once (an input variable).
    assert key not in mcp_json.read_text()
    headers = with_vscode_inputs(mcp_json, entry["headers"], typed=key)

    client = ClientThread(entry["url"], ScriptedModel("vscode-entry"), headers=headers).start()
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
    mcp_json = tmp_path / ".vscode" / "mcp.json"
    entry = read_entry(mcp_json)
    assert entry["type"] == "stdio" and Path(entry["command"]).resolve() == Path(bridge_binary()).resolve()
    # The key travels in the entry's environment, not on the command line, and a workspace file
    # holds no key at all: VS Code asks for it once (an input variable).
    assert key not in mcp_json.read_text()
    env = with_vscode_inputs(mcp_json, entry["env"], typed=key)
    assert env == {"SAMPLING2API_API_KEYS": key}

    # Launched as VS Code launches it: command, args and env from the entry.
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
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


# --- VS Code's sampling consent, read back as VS Code reads it ----------------------------------
#
# Written from VS Code's source (src/vs/workbench/contrib/mcp/common/mcpSamplingService.ts,
# browser/mcpWorkbenchService.ts, platform/environment/node/userDataPath.ts), independently of the
# bridge's Rust code: the collection label of the file that defines the server, the settings files
# VS Code consults for it (from the most specific down to the file's own target, no further), and
# the decision for one sampling request.

DENIED = "The user has denied permission to call this method."


def load_jsonc(text: str) -> Any:
    """JSON with comments and trailing commas, as VS Code reads settings and mcp.json."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "".join(out)))


def vscode_collection(mcp_json: Path) -> tuple[str, str]:
    """(collection label, config target) of the MCP configuration file at `mcp_json`."""
    if mcp_json.parent.name == ".vscode":
        return f"{mcp_json.parent.parent.name}/.vscode/mcp.json", "workspaceFolder"
    assert mcp_json.parent.name == "User", mcp_json
    # The user data folder is named after the product's nameShort, which is in the label.
    return f"Global in {mcp_json.parent.parent.name}", "userLocal"


def vscode_settings_consulted(mcp_json: Path, open_folder: Path | None) -> list[Path]:
    """The settings.json files VS Code reads a server's consent from, most specific first."""
    _, target = vscode_collection(mcp_json)
    folder = [open_folder / ".vscode" / "settings.json"] if open_folder else []
    if target == "workspaceFolder":
        return folder  # never the user's: "workspace-specific servers" stop at their folder
    return folder + [mcp_json.parent / "settings.json"]


def vscode_sampling_decision(
    mcp_json: Path,
    server: str,
    *,
    during_tool_call: bool,
    hints: list[str],
    known_models: list[str],
    default_models: list[str],
    open_folder: Path | None = None,
) -> str:
    """The model VS Code samples with, or `prompt`/`denied`/`no-model` (_getMatchingModelInner)."""
    label, _ = vscode_collection(mcp_json)
    key = f"{label}: {server}"
    config: dict[str, Any] = {}
    for path in vscode_settings_consulted(mcp_json, open_folder):
        if path.exists():
            found = load_jsonc(path.read_text()).get("chat.mcp.serverSampling", {}).get(key)
            if found:
                config = found
                break
    flag = "allowedDuringChat" if during_tool_call else "allowedOutsideChat"
    if not config.get(flag):
        return "prompt" if config.get(flag) is None else "denied"
    allowed = config.get("allowedModels")
    models = [m for m in allowed if m in known_models] if allowed is not None else default_models
    if not models:
        return "no-model"
    for hint in hints:
        match = next((m for m in models if hint.lower() in m.lower()), None)
        if match:
            return match
    return models[0]


COPILOT_MODELS = ["copilot/gpt-4.1", "copilot/claude-sonnet-4.5", "copilot/gpt-5", "copilot/claude-opus-4.5"]


class VsCodeGate(ScriptedModel):
    """A client that answers only what VS Code's consent rules let through (no one is there to
    answer a prompt, which VS Code treats as a refusal), with the model they pick."""

    def __init__(self, name: str, mcp_json: Path, server: str) -> None:
        super().__init__(name)
        self.mcp_json = mcp_json
        self.server = server
        self.decisions: list[str] = []

    async def __call__(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        hints = [h.name for h in (params.model_preferences.hints or [])] if params.model_preferences else []
        decision = vscode_sampling_decision(
            self.mcp_json,
            self.server,
            during_tool_call=False,  # the bridge offers no tools: its requests never come during one
            hints=[h for h in hints if h],
            known_models=COPILOT_MODELS,
            default_models=["copilot/gpt-4.1"],
        )
        self.decisions.append(decision)
        if decision in ("prompt", "denied", "no-model"):
            return types.ErrorData(code=-32000, message=DENIED)
        result = await super().__call__(context, params)
        if isinstance(result, types.CreateMessageResult):
            result.model = decision
        return result


def vscode_user_dir(home: Path, product: str = "Code") -> Path:
    return home / ".config" / product / "User"


def test_written_consent_is_what_vscode_reads(tmp_path: Path) -> None:
    models = ["--allow-model", "copilot/gpt-4.1", "--allow-model", "copilot/claude-sonnet-4.5"]
    for product, extra in [("Code", []), ("Code - Insiders", ["--insiders"])]:
        written = run_connect(tmp_path, "vscode", "--write", *extra, *models)
        assert written.returncode == 0, written.stderr
        mcp_json = vscode_user_dir(tmp_path, product) / "mcp.json"
        assert "sampling2api" in load_jsonc(mcp_json.read_text())["servers"]

        def decide(**overrides: Any) -> str:
            options: dict[str, Any] = dict(
                during_tool_call=False, hints=[], known_models=COPILOT_MODELS, default_models=["copilot/gpt-5"]
            )
            options.update(overrides)
            return vscode_sampling_decision(mcp_json, "sampling2api", **options)

        # Outside chat, without a prompt; the first allowed model unless a hint matches another.
        assert decide() == "copilot/gpt-4.1"
        assert decide(hints=["claude-sonnet-4.5"]) == "copilot/claude-sonnet-4.5"
        assert decide(hints=["claude-opus-4.5"]) == "copilot/gpt-4.1", "only the allowed models"
        # Nothing more is granted: during a tool call VS Code would still ask.
        assert decide(during_tool_call=True) == "prompt"
        # Models VS Code does not know are dropped, and with none left it asks again.
        assert decide(known_models=["copilot/o3"]) == "no-model"
        # Another server of the same file has no consent.
        assert vscode_sampling_decision(
            mcp_json, "other", during_tool_call=False, hints=[], known_models=COPILOT_MODELS, default_models=[]
        ) == "prompt"

    # A workspace folder's server: its consent is in the folder's settings, which is the only
    # place VS Code reads it from.
    project = tmp_path / "my-project"
    project.mkdir()
    written = run_connect(tmp_path, "vscode", "--workspace", "my-project", "--write", "--allow-model", "copilot/gpt-5")
    assert written.returncode == 0, written.stderr
    mcp_json = project / ".vscode" / "mcp.json"
    assert vscode_collection(mcp_json) == ("my-project/.vscode/mcp.json", "workspaceFolder")
    assert vscode_settings_consulted(mcp_json, project) == [project / ".vscode" / "settings.json"]
    assert vscode_sampling_decision(
        mcp_json, "sampling2api", during_tool_call=False, hints=[], known_models=COPILOT_MODELS, default_models=[],
        open_folder=project,
    ) == "copilot/gpt-5"

    # Written again: nothing changes.
    again = run_connect(tmp_path, "vscode", "--write", *models)
    assert again.returncode == 0 and again.stdout.count("nothing to change") == 2, again.stdout


def test_one_command_sets_up_vscode_and_claude_code_together(tmp_path: Path) -> None:
    """`connect vscode claude-code --write`, then VS Code launches the bridge from its entry and
    answers under its consent rules, and Claude Code's settings reach it."""
    port = free_port()
    key_file = tmp_path / "bridge-keys"
    key_file.write_text(f"# sampling2api\nkey-{secrets.token_hex(8)}\n")
    key_file.chmod(0o600)
    key = key_file.read_text().split()[-1]
    written = run_connect(
        tmp_path, "vscode", "claude-code", "--write", "--listen", f"127.0.0.1:{port}", "--api-key-file", str(key_file),
        "--allow-model", "copilot/gpt-4.1", "--allow-model", "copilot/claude-sonnet-4.5",
    )
    assert written.returncode == 0, written.stderr
    assert "Next:" in written.stderr and "MCP: List Servers" in written.stderr, written.stderr
    mcp_json = vscode_user_dir(tmp_path) / "mcp.json"
    entry = load_jsonc(mcp_json.read_text())["servers"]["sampling2api"]
    # The key stays in its file: the entry names the file.
    assert key not in mcp_json.read_text()
    assert entry["env"] == {"SAMPLING2API_API_KEY_FILE": str(key_file)}
    env_block = load_jsonc((tmp_path / ".claude" / "settings.json").read_text())["env"]

    # VS Code launches the entry (command, args, env) and samples under its consent rules.
    gate = VsCodeGate("vscode", mcp_json, "sampling2api")
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"])
    client = ClientThread(params, gate).start()
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        answer = sdk_with_env({k: v for k, v in env_block.items() if k.startswith("ANTHROPIC_")})
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.splitlines()[0] == "echo: hello from settings"
        assert gate.decisions == ["copilot/gpt-4.1"]
        # Claude Code's Sonnet lands on the allowed Sonnet by its hint.
        api = anthropic.Anthropic(base_url=env_block["ANTHROPIC_BASE_URL"], api_key=key, max_retries=0)
        sonnet = api.messages.create(
            model="claude-sonnet-4.5", max_tokens=16, messages=[{"role": "user", "content": "which"}]
        )
        assert sonnet.content[0].text == "echo: which" and gate.decisions[-1] == "copilot/claude-sonnet-4.5"
    finally:
        client.stop()


def test_the_bridge_takes_keys_from_a_file_and_warns_about_the_command_line(tmp_path: Path) -> None:
    key = f"key-{secrets.token_hex(8)}"
    key_file = tmp_path / "keys"
    key_file.write_text(f"# one key per line\n\n{key}\n")
    key_file.chmod(0o600)
    for flags, warned in [(["--api-key-file", str(key_file)], False), (["--api-key", key], True)]:
        port = free_port()
        log = tmp_path / "bridge.log"
        with open(log, "w") as errors:
            process = subprocess.Popen([bridge_binary(), "http", "--listen", f"127.0.0.1:{port}", *flags], stderr=errors)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_health(base_url)
            with pytest.raises(anthropic.AuthenticationError):
                anthropic.Anthropic(base_url=base_url, api_key="wrong", max_retries=0).messages.create(
                    model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}]
                )
            # The right key passes the key check; with no MCP client connected the bridge says so.
            with pytest.raises(anthropic.APIStatusError) as no_client:
                anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0).messages.create(
                    model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}]
                )
            assert no_client.value.status_code != 401
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert ("process list" in log.read_text()) == warned, log.read_text()
    # A file that cannot be a key file stops the bridge with the reason.
    bad = tmp_path / "bad"
    bad.write_text("two words\n")
    failed = subprocess.run([bridge_binary(), "http", "--listen", f"127.0.0.1:{free_port()}", "--api-key-file", str(bad)],
                            capture_output=True, text=True, timeout=30)
    assert failed.returncode != 0 and "line 1" in failed.stderr, failed.stderr
