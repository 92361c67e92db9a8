"""The stdio smoke test that scripts/windows-cross-check runs against the Windows build under
Wine, run here against the Linux build: it proves the script can pass and fail on its own, and
that a client ending its lines with `\\r\\n` (as Windows clients may) is understood."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import bridge_binary

SMOKE = Path(__file__).with_name("stdio_smoke.py")


def test_a_crlf_client_completes_a_stdio_session() -> None:
    finished = subprocess.run([sys.executable, str(SMOKE), bridge_binary()], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "stdio smoke test passed" in finished.stdout


def test_the_smoke_test_fails_for_a_command_that_is_not_the_bridge() -> None:
    # `cat` echoes our initialize back: a "reply" without a result, which must not pass.
    finished = subprocess.run([sys.executable, str(SMOKE), "sh", "-c", "cat", "echo"], capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    assert "stdio smoke test passed" not in finished.stdout
    assert "KeyError: 'result'" in finished.stderr, finished.stderr
