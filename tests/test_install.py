"""What users install, tested as they install it: the artifacts `scripts/package` leaves in
target/dist (scripts/test-all runs it first; see docs/install.md).

- npm: the tarballs alone install into an empty project, offline, with install scripts off and
  a throwaway cache; an official MCP client launches the bridge through the installed
  `sampling2api` entry and through `npx -y … sampling2api stdio`, as VS Code does, and an
  Anthropic SDK caller gets its answer; exit codes and signals pass through the Node wrapper, and
  stdout carries nothing but MCP. Without its platform package the wrapper says so in one line.
- PyPI: the wheel installs into a fresh virtual environment, and runs through `uvx` as VS Code
  runs a PyPI server, each doing the same round trip.
- The arm64 Linux binary runs under qemu-user; every channel ships the same bytes per target;
  server.json holds to the MCP Registry schema's rules; the ownership markers match it.

Without target/dist these tests skip saying so, unless SAMPLING2API_REQUIRE_DIST is set
(scripts/test-all sets it), where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import urllib.parse
import venv
import zipfile
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from mcp.client.stdio import StdioServerParameters

from conftest import FAST_FLAGS, ROOT, Deployment, free_port, wait_for_health, wait_until
from scripted_client import ClientThread, ScriptedModel

DIST = ROOT / "target" / "dist"
SMOKE = Path(__file__).with_name("stdio_smoke.py")
SERVER_NAME = "io.github.sampling2api/sampling2api"
# The six targets scripts/package knows, as npm names them, and the three this machine builds.
NPM_PLATFORMS = {"darwin-arm64", "darwin-x64", "linux-arm64", "linux-x64", "win32-arm64", "win32-x64"}
LOCAL_TRIPLES = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-pc-windows-gnu"]
# A shipped binary over this is a regression to look at (today 7.3-8.7 MiB; 48 MB before the
# `shipped` profile dropped debug info and symbols).
BINARY_BUDGET = 12 * 1024 * 1024
# Where npm is sent for anything not on disk: a closed loopback port, so a fetch fails loudly.
NO_REGISTRY = "http://127.0.0.1:9/"


def version() -> str:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


@pytest.fixture(scope="module")
def dist() -> Path:
    if not (DIST / "SHA256SUMS").exists():
        if os.environ.get("SAMPLING2API_REQUIRE_DIST"):
            pytest.fail(f"{DIST} holds no packages: scripts/package must run first")
        pytest.skip("target/dist is empty: run scripts/package first")
    return DIST


def tarball(dist: Path, name: str) -> Path:
    path = dist / "npm" / f"{name}-{version()}.tgz"
    assert path.exists(), f"{path} missing; target/dist/npm holds {sorted(p.name for p in (dist / 'npm').iterdir())}"
    return path


def npm_env(cache: Path) -> dict[str, str]:
    """npm offline, with an empty cache of its own and no registry it could reach."""
    return {
        **os.environ,
        "npm_config_cache": str(cache),
        "npm_config_registry": NO_REGISTRY,
        "npm_config_offline": "true",
        "npm_config_ignore_scripts": "true",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }


def npm_install(project: Path, tarballs: list[Path]) -> subprocess.CompletedProcess[str]:
    project.mkdir(parents=True)
    (project / "package.json").write_text('{"name": "empty-project", "version": "1.0.0", "private": true}\n')
    cache = project.parent / f"{project.name}-npm-cache"
    return subprocess.run(
        ["npm", "install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", *map(str, tarballs)],
        cwd=project, env=npm_env(cache), capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def npm_project(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty project with the wrapper and this machine's platform package installed from
    their tarballs alone."""
    project = tmp_path_factory.mktemp("npm") / "project"
    installed = npm_install(project, [tarball(dist, "sampling2api"), tarball(dist, "sampling2api-linux-x64")])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return project


@pytest.fixture(scope="module")
def npm_bin(npm_project: Path) -> Path:
    entry = npm_project / "node_modules" / ".bin" / "sampling2api"
    assert entry.exists(), sorted(p.name for p in (npm_project / "node_modules" / ".bin").iterdir())
    return entry


def round_trip(command: str, args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, text: str) -> None:
    """The official MCP client launches the bridge with `command args stdio …` as VS Code does,
    an Anthropic SDK caller gets its answer through it, and closing the client ends the bridge
    (its port closes)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    params = StdioServerParameters(
        command=command, args=[*args, "stdio", "--listen", f"127.0.0.1:{port}", *FAST_FLAGS], env=env, cwd=cwd
    )
    client = ClientThread(params, ScriptedModel("vscode")).start(timeout=60)
    try:
        deployment = Deployment("stdio", base_url, {"vscode": client})
        wait_for_health(base_url, timeout=30)
        message = deployment.anthropic().messages.create(
            model="claude-bridge-test", max_tokens=64, messages=[{"role": "user", "content": text}]
        )
        assert message.content[0].text == f"echo: {text}", message
        assert client.model.started == [text]
    finally:
        client.stop()

    def closed() -> bool:
        try:
            httpx.get(f"{base_url}/health", timeout=0.5)
            return False
        except httpx.HTTPError:
            return True

    wait_until(closed, timeout=15, what="the bridge to exit after its MCP client closed")


# --- npm -----------------------------------------------------------------------------------


def test_the_npm_tarballs_alone_install_offline_without_scripts(npm_project: Path) -> None:
    modules = npm_project / "node_modules"
    assert (modules / "sampling2api" / "package.json").exists()
    platform_package = json.loads((modules / "@sampling2api" / "linux-x64" / "package.json").read_text())
    assert platform_package["version"] == version()
    assert platform_package["os"] == ["linux"] and platform_package["cpu"] == ["x64"]
    # Static: no libc field, so npm installs it on glibc and musl systems alike.
    assert "libc" not in platform_package
    # Only the matching platform package: the others were skipped (optional, and offline).
    assert sorted(p.name for p in (modules / "@sampling2api").iterdir()) == ["linux-x64"]
    wrapper = json.loads((modules / "sampling2api" / "package.json").read_text())
    assert "scripts" not in wrapper, "the wrapper must not need install scripts"


def test_a_global_install_from_the_tarballs_runs_too(dist: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "global"
    installed = subprocess.run(
        ["npm", "install", "--global", "--prefix", str(prefix), "--offline", "--ignore-scripts",
         str(tarball(dist, "sampling2api")), str(tarball(dist, "sampling2api-linux-x64"))],
        env=npm_env(tmp_path / "npm-cache"), capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    shown = subprocess.run([str(prefix / "bin" / "sampling2api"), "--version"], capture_output=True, text=True, timeout=30)
    assert (shown.returncode, shown.stdout) == (0, f"sampling2api {version()}\n"), shown


def test_vscode_launches_the_installed_npm_bin_and_an_anthropic_caller_gets_its_answer(npm_bin: Path) -> None:
    round_trip(str(npm_bin), [], text="hello through npm")


def test_npx_runs_the_package_from_its_tarballs_like_vscode_does(dist: Path, tmp_path: Path) -> None:
    # VS Code runs `npx -y sampling2api stdio`; npx installs the package into its cache and runs
    # its bin. Here npx takes the packages from their tarballs, offline.
    env = npm_env(tmp_path / "npx-cache")
    packages = [f"--package={tarball(dist, 'sampling2api')}", f"--package={tarball(dist, 'sampling2api-linux-x64')}"]
    round_trip("npx", ["-y", *packages, "sampling2api"], env=env, cwd=tmp_path, text="hello through npx")
    # The SDK skips lines that are not JSON-RPC; a raw client does not: npx adds nothing to stdout.
    finished = subprocess.run(
        [sys.executable, str(SMOKE), "npx", "-y", *packages, "sampling2api"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_a_client_stopping_npx_as_vscode_does_leaves_nothing_running(dist: Path, tmp_path: Path) -> None:
    # VS Code stops a stdio server by closing its pipes, then SIGTERM. npm runs the bin through
    # `sh -c`, which does not pass SIGTERM on: what ends the wrapper and the bridge is the
    # closed stdin (the bridge exits at its end), even when the SIGTERM came first.
    port = free_port()
    packages = [f"--package={tarball(dist, 'sampling2api')}", f"--package={tarball(dist, 'sampling2api-linux-x64')}"]
    npx = subprocess.Popen(
        ["npx", "-y", *packages, "sampling2api", "stdio", "--listen", f"127.0.0.1:{port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=npm_env(tmp_path / "npx-cache"), cwd=tmp_path,
    )
    assert npx.stdin is not None and npx.stdout is not None

    def ours() -> list[int]:
        found = subprocess.run(["pgrep", "-f", f"stdio --listen 127.0.0.1:{port}"], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    try:
        wait_for_health(f"http://127.0.0.1:{port}", timeout=60)
        npx.send_signal(signal.SIGTERM)
        npx.wait(timeout=30)
        npx.stdin.close()
        npx.stdout.close()
        wait_until(lambda: not ours(), timeout=15, what="npx, the wrapper and the bridge to exit")
    finally:
        for pid in ours():
            os.kill(pid, signal.SIGKILL)


def test_stdout_carries_only_mcp_and_eof_ends_the_bridge_with_0(npm_bin: Path) -> None:
    # A raw client: every line the bridge writes, to the last, must be JSON-RPC, and closing
    # stdin must end the wrapper with the bridge's 0.
    finished = subprocess.run([sys.executable, str(SMOKE), str(npm_bin)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "stdio smoke test passed" in finished.stdout


def test_the_wrapper_passes_output_and_exit_codes_through(npm_bin: Path, npm_project: Path) -> None:
    # Compared with the binary it runs (same file name, so clap's usage lines match too).
    binary = npm_project / "node_modules" / "@sampling2api" / "linux-x64" / "bin" / "sampling2api"
    wrapped = subprocess.run([str(npm_bin), "--version"], capture_output=True, timeout=30)
    direct = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30)
    assert wrapped.returncode == direct.returncode == 0
    assert wrapped.stdout == direct.stdout == f"sampling2api {version()}\n".encode()

    wrapped = subprocess.run([str(npm_bin), "--no-such-flag"], capture_output=True, timeout=30)
    direct = subprocess.run([str(binary), "--no-such-flag"], capture_output=True, timeout=30)
    assert direct.returncode == 2, direct
    assert wrapped.returncode == direct.returncode
    assert wrapped.stdout == direct.stdout == b""
    assert wrapped.stderr == direct.stderr


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


@pytest.fixture
def http_bridge(npm_bin: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`sampling2api http` through the wrapper: the wrapper's process and the bridge's pid."""
    port = free_port()
    wrapper = subprocess.Popen([str(npm_bin), "http", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", timeout=30)
        bridges = children(wrapper.pid)
        assert len(bridges) == 1, bridges
        yield wrapper, bridges[0]
    finally:
        # The bridge first: killed outright, the wrapper could not pass anything on, and the
        # bridge would keep the pipes open.
        for pid in children(wrapper.pid):
            os.kill(pid, signal.SIGKILL)
        if wrapper.poll() is None:
            wrapper.kill()
        wrapper.communicate(timeout=30)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie waiting for its reaper counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return not status.exists() or status.read_text().split(") ", 1)[1].startswith("Z")


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_wrapper_reaches_the_bridge_and_comes_back_as_its_death(http_bridge: Any, sent: signal.Signals) -> None:
    wrapper, bridge = http_bridge
    wrapper.send_signal(sent)
    assert wrapper.wait(timeout=30) == -sent, "the wrapper must die by the signal that ended the bridge"
    wait_until(lambda: gone(bridge), timeout=10, what="the bridge to exit")
    assert wrapper.stdout is not None and wrapper.stdout.read() == b""


def test_sigint_to_the_wrapper_stops_the_http_bridge_gracefully_with_0(http_bridge: Any) -> None:
    wrapper, bridge = http_bridge
    wrapper.send_signal(signal.SIGINT)
    # 0, not death by SIGINT: the bridge got it and shut down gracefully, and the wrapper waited.
    assert wrapper.wait(timeout=30) == 0
    wait_until(lambda: gone(bridge), timeout=10, what="the bridge to exit")


def test_the_bridge_learns_it_was_started_by_the_npm_package(http_bridge: Any) -> None:
    # The contract `connect` reads: SAMPLING2API_LAUNCHER=npm and the package's name@version.
    _, bridge = http_bridge
    variables = dict(entry.split(b"=", 1) for entry in Path(f"/proc/{bridge}/environ").read_bytes().split(b"\0") if b"=" in entry)
    assert variables.get(b"SAMPLING2API_LAUNCHER") == b"npm"
    assert variables.get(b"SAMPLING2API_LAUNCHER_PACKAGE") == f"sampling2api@{version()}".encode()


def test_connect_run_through_the_npm_bin_writes_the_npx_form(npm_bin: Path, tmp_path: Path) -> None:
    """`npx -y sampling2api connect vscode`: the entry it writes launches the package through
    npx (updates follow the package), not the binary's path inside npm's cache."""
    config = tmp_path / "mcp.json"
    ran = subprocess.run(
        [str(npm_bin), "connect", "vscode", "--file", str(config), "--write"],
        capture_output=True, text=True, timeout=30,
    )
    assert ran.returncode == 0, ran.stderr
    server = json.loads(config.read_text())["servers"]["sampling2api"]
    assert server["command"] == "npx", server
    assert server["args"][:3] == ["-y", "sampling2api", "stdio"], server
    assert str(npm_bin.parent) not in config.read_text()


def test_a_bridge_killed_outright_takes_the_wrapper_with_the_same_signal(http_bridge: Any) -> None:
    wrapper, bridge = http_bridge
    os.kill(bridge, signal.SIGKILL)
    assert wrapper.wait(timeout=30) == -signal.SIGKILL


def test_without_its_platform_package_the_wrapper_says_so_in_one_line(dist: Path, tmp_path: Path) -> None:
    project = tmp_path / "wrapper-only"
    installed = npm_install(project, [tarball(dist, "sampling2api")])
    # The platform packages are optional: offline, npm skips them and installs the wrapper.
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert not (project / "node_modules" / "@sampling2api").exists()
    ran = subprocess.run([str(project / "node_modules" / ".bin" / "sampling2api"), "stdio"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 1
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert re.match(r"^sampling2api: the binary for linux x64 \((glibc|musl)\) is missing: npm did not install @sampling2api/linux-x64@", lines[0]), lines[0]
    assert "--omit=optional" in lines[0]


def test_on_a_platform_without_a_binary_the_wrapper_names_it_and_the_supported_ones(npm_bin: Path, tmp_path: Path) -> None:
    pretend = tmp_path / "pretend-riscv64.js"
    pretend.write_text("Object.defineProperty(process, 'arch', { value: 'riscv64' });\n")
    ran = subprocess.run(
        [str(npm_bin), "--version"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "NODE_OPTIONS": f"--require {pretend}"},
    )
    assert ran.returncode == 1 and ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("sampling2api: no prebuilt binary for linux riscv64 ("), lines[0]
    for platform_name in NPM_PLATFORMS:
        assert platform_name in lines[0]
    assert "cargo install --locked sampling2api" in lines[0]


# --- PyPI ----------------------------------------------------------------------------------


def linux_x64_wheel(dist: Path) -> Path:
    wheels = sorted((dist / "wheels").glob(f"sampling2api-{version()}-py3-none-*x86_64*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in (dist / "wheels").iterdir())
    return wheels[0]


def test_the_linux_wheels_install_on_glibc_and_musl_pythons(dist: Path) -> None:
    for arch in ["x86_64", "aarch64"]:
        names = [p.name for p in (dist / "wheels").glob(f"*{arch}*.whl")]
        assert len(names) == 1, names
        assert f"manylinux_2_17_{arch}" in names[0] and f"musllinux_1_2_{arch}" in names[0], names[0]
    assert len(list((dist / "wheels").glob("*-win_amd64.whl"))) == 1


def test_the_wheel_installs_into_a_fresh_venv_and_does_the_round_trip(dist: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    installed = subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "--quiet", str(linux_x64_wheel(dist))],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_FIND_LINKS": ""},
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    command = environment / "bin" / "sampling2api"
    shown = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=30)
    assert shown.stdout == f"sampling2api {version()}\n"
    round_trip(str(command), [], text="hello through the wheel")


def test_uvx_runs_the_wheel_as_vscode_runs_a_pypi_server(dist: Path, tmp_path: Path) -> None:
    # VS Code runs `uvx sampling2api==VERSION stdio`; here uvx finds the wheel in target/dist
    # instead of an index, offline, with a cache of its own.
    uvx = Path(sys.executable).with_name("uvx")
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    args = ["--no-index", "--find-links", str(dist / "wheels"), f"sampling2api=={version()}"]
    round_trip(str(uvx), args, env=env, text="hello through uvx")
    finished = subprocess.run([sys.executable, str(SMOKE), str(uvx), *args], env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr


# --- what every channel ships --------------------------------------------------------------


def npm_binary(dist: Path, npm_platform: str) -> bytes:
    with tarfile.open(tarball(dist, f"sampling2api-{npm_platform}")) as archive:
        exe = "sampling2api.exe" if npm_platform.startswith("win32") else "sampling2api"
        member = archive.getmember(f"package/bin/{exe}")
        assert member.mode & 0o111, f"{exe} in the npm package is not executable"
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read()


def wheel_binary(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if re.search(r"\.data/scripts/sampling2api(\.exe)?$", n)]
        return archive.read(name)


@pytest.mark.parametrize("triple", LOCAL_TRIPLES)
def test_every_channel_ships_the_same_stripped_binary_within_budget(dist: Path, triple: str) -> None:
    npm_platform = {"x86_64-unknown-linux-musl": "linux-x64", "aarch64-unknown-linux-musl": "linux-arm64", "x86_64-pc-windows-gnu": "win32-x64"}[triple]
    wheel_platform = {"x86_64-unknown-linux-musl": "*_x86_64", "aarch64-unknown-linux-musl": "*_aarch64", "x86_64-pc-windows-gnu": "win_amd64"}[triple]
    asset = dist / f"sampling2api-{version()}-{triple}{'.exe' if 'windows' in triple else ''}"
    shipped = asset.read_bytes()
    (wheel,) = (dist / "wheels").glob(f"sampling2api-{version()}-py3-none-{wheel_platform}.whl")
    assert npm_binary(dist, npm_platform) == shipped
    assert wheel_binary(wheel) == shipped
    assert len(shipped) <= BINARY_BUDGET, f"{asset.name} is {len(shipped):,} bytes (budget {BINARY_BUDGET:,})"
    if "linux" in triple:
        described = subprocess.run(["file", "-b", str(asset)], capture_output=True, text=True).stdout
        assert "statically linked" in described and "stripped" in described and "not stripped" not in described, described
    print(f"{asset.name}: {len(shipped):,} bytes")


def test_sha256sums_covers_every_artifact(dist: Path) -> None:
    # By file name, as the release's flat list of assets holds them.
    listed = {}
    for line in (dist / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    present = {p.name: p for p in dist.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(listed) == set(present)
    for name, digest in listed.items():
        assert hashlib.sha256(present[name].read_bytes()).hexdigest() == digest, name


def test_the_arm64_linux_binary_runs_under_qemu(dist: Path) -> None:
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        if os.environ.get("SAMPLING2API_REQUIRE_DIST"):
            pytest.fail("qemu-aarch64 is missing (Debian: apt-get install qemu-user)")
        pytest.skip("qemu-aarch64 is not installed (Debian: apt-get install qemu-user)")
    binary = dist / f"sampling2api-{version()}-aarch64-unknown-linux-musl"
    shown = subprocess.run([qemu, str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout == f"sampling2api {version()}\n", shown
    finished = subprocess.run([sys.executable, str(SMOKE), qemu, str(binary)], capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stdout + finished.stderr


# --- registries ----------------------------------------------------------------------------


def server_json(dist: Path) -> dict[str, Any]:
    return json.loads((dist / "server.json").read_text())


def test_server_json_holds_to_the_registry_schema(dist: Path) -> None:
    # The rules of the 2025-12-11 schema (and of the registry's publish checks) that apply here.
    server = server_json(dist)
    assert server["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    for required in ["name", "description", "version"]:
        assert isinstance(server.get(required), str) and server[required], required
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"]) and 3 <= len(server["name"]) <= 200
    assert server["name"] == SERVER_NAME
    assert 1 <= len(server["description"]) <= 100, len(server["description"])
    assert 1 <= len(server["title"]) <= 100
    assert server["version"] == version()
    # io.github.OWNER/REPO is proven by the repository it names (GitHub login of OWNER).
    repository = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["repository"]
    owner, repo = repository.removeprefix("https://github.com/").split("/")
    assert server["name"] == f"io.github.{owner}/{repo}"
    assert server["repository"] == {"url": repository, "source": "github"}

    packages = {p["registryType"]: p for p in server["packages"]}
    assert sorted(packages) == ["cargo", "npm", "pypi"]
    for package in server["packages"]:
        assert set(package) <= {"registryType", "registryBaseUrl", "identifier", "version", "fileSha256", "runtimeHint",
                                "transport", "runtimeArguments", "packageArguments", "environmentVariables"}
        assert package["identifier"] == "sampling2api"
        assert package["version"] == version(), "a package version is one exact version, never a range or latest"
        assert package["transport"] == {"type": "stdio"}
        # What VS Code appends to `npx -y sampling2api@VERSION` / `uvx sampling2api==VERSION`.
        assert package["packageArguments"] == [{"type": "positional", "value": "stdio"}]
    assert packages["npm"]["runtimeHint"] == "npx" and packages["pypi"]["runtimeHint"] == "uvx"
    assert "runtimeHint" not in packages["cargo"], "cargo has no per-run runner; the binary is run by name"

    (remote,) = server["remotes"]
    assert remote["type"] == "streamable-http"
    assert re.fullmatch(r"(https?://[^\s]+|\{[a-zA-Z_][a-zA-Z0-9_]*\}[^\s]*)", remote["url"]), remote["url"]
    assert remote["url"].endswith("/mcp")
    template_variables = set(re.findall(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}", remote["url"]))
    assert template_variables == set(remote["variables"])
    (header,) = remote["headers"]
    assert header["name"] == "Authorization" and header["isSecret"] is True
    assert set(re.findall(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}", header["value"])) == set(header["variables"])


def mcp_name_marker(text: str) -> bool:
    # As the registry reads it: the token followed by a boundary (whitespace, a tag, a comment end).
    return re.search(r"mcp-name:\s*" + re.escape(SERVER_NAME) + r"(?=\s|-->|<)", text) is not None


def test_each_package_carries_the_registry_ownership_marker(dist: Path) -> None:
    with tarfile.open(tarball(dist, "sampling2api")) as archive:
        member = archive.extractfile("package/package.json")
        assert member is not None
        wrapper = json.load(member)
    assert wrapper["mcpName"] == server_json(dist)["name"]
    assert wrapper["version"] == version()
    assert wrapper["optionalDependencies"] == {f"@sampling2api/{p}": version() for p in NPM_PLATFORMS}
    assert "scripts" not in wrapper

    with zipfile.ZipFile(linux_x64_wheel(dist)) as archive:
        metadata = archive.read(f"sampling2api-{version()}.dist-info/METADATA").decode()
    assert mcp_name_marker(metadata)
    assert re.search(r"^Name: sampling2api$", metadata, re.M) and re.search(rf"^Version: {re.escape(version())}$", metadata, re.M)

    with tarfile.open(dist / "crates" / f"sampling2api-{version()}.crate") as archive:
        readme = archive.extractfile(f"sampling2api-{version()}/README.md")
        assert readme is not None
        text = readme.read().decode()
    # The crate registry drops HTML comments when it renders a README: the marker must be visible text.
    assert mcp_name_marker(re.sub(r"<!--.*?-->", "", text, flags=re.S))


def test_the_published_crates_are_packaged_with_their_licences(dist: Path) -> None:
    for crate in ["sampling2api-core", "sampling2api"]:
        with tarfile.open(dist / "crates" / f"{crate}-{version()}.crate") as archive:
            names = {Path(n).name for n in archive.getnames()}
            manifest_file = archive.extractfile(f"{crate}-{version()}/Cargo.toml")
            assert manifest_file is not None
            manifest = tomllib.loads(manifest_file.read().decode())
        assert {"LICENSE-MIT", "LICENSE-APACHE", "README.md", "Cargo.toml", "Cargo.lock"} <= names, names
        package = manifest["package"]
        assert package["license"] == "MIT OR Apache-2.0"
        assert package["repository"] and package["description"] and package["readme"] == "README.md"
    with tarfile.open(dist / "crates" / f"sampling2api-{version()}.crate") as archive:
        manifest_file = archive.extractfile(f"sampling2api-{version()}/Cargo.toml")
        assert manifest_file is not None
        dependency = tomllib.loads(manifest_file.read().decode())["dependencies"]["sampling2api-core"]
    assert dependency["version"] == f"={version()}", "the binary takes exactly the core it was built with"
    assert "path" not in dependency


def test_the_install_in_vscode_link_installs_what_server_json_says(dist: Path) -> None:
    # docs/install.md's link: VS Code's redirect page, then `vscode:mcp/install?<JSON>`.
    text = (ROOT / "docs" / "install.md").read_text()
    (link,) = set(re.findall(r"\(https://insiders\.vscode\.dev/redirect\?url=([^)\s]+)\)", text))
    target = urllib.parse.unquote(link)
    assert target.startswith("vscode:mcp/install?"), target
    config = json.loads(urllib.parse.unquote(target.removeprefix("vscode:mcp/install?")))
    npm = next(p for p in server_json(dist)["packages"] if p["registryType"] == "npm")
    arguments = [a["value"] for a in npm["packageArguments"]]
    assert config == {"name": "sampling2api", "type": "stdio", "command": "npx", "args": ["-y", npm["identifier"], *arguments]}
