#!/usr/bin/env python3
"""Measures the bridge's token estimator against a known tokenizer on benches/tokenizer-corpus.

The reference is the tokenizer Anthropic published for its legacy models (`tokenizer.json`
inside the `anthropic` SDK 0.37.1 wheel, read with the `tokenizers` package). Claude 3 and
later models tokenize differently and have no public tokenizer, and the model behind an MCP
client may not be Claude at all, so this measures how far the estimator is from one real
tokenizer, not from "the" answer.

The estimate comes from a running bridge's `POST /v1/messages/count_tokens` with the sample as
one user message, minus the estimator's fixed overhead (3 per request + 4 per message).

Usage: python3 scripts/tokenizer-error.py [BRIDGE_BASE_URL]   (default: starts one on loopback)
Needs: pip install tokenizers httpx   (network only for the registry)
"""

from __future__ import annotations

import glob
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD = 3 + 4


def reference_tokenizer() -> Tokenizer:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "anthropic==0.37.1", "-d", folder],
            check=True,
        )
        wheel = glob.glob(os.path.join(folder, "anthropic-0.37.1-*.whl"))[0]
        with zipfile.ZipFile(wheel) as archive:
            return Tokenizer.from_str(archive.read("anthropic/tokenizer.json").decode())


def start_bridge() -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = os.environ.get("SAMPLING2API_BIN", str(ROOT / "target" / "release" / "sampling2api"))
    process = subprocess.Popen([binary, "http", "--listen", f"127.0.0.1:{port}", "--log", "warn"])
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/health")
            return base, process
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("bridge did not start")


def main() -> None:
    process = None
    if len(sys.argv) > 1:
        base = sys.argv[1]
    else:
        base, process = start_bridge()
    try:
        tokenizer = reference_tokenizer()
        rows = []
        for path in sorted((ROOT / "benches" / "tokenizer-corpus").iterdir()):
            text = path.read_text()
            reference = len(tokenizer.encode(text).ids)
            body = {"model": "m", "messages": [{"role": "user", "content": text}]}
            counted = httpx.post(f"{base}/v1/messages/count_tokens", json=body).json()["input_tokens"]
            estimate = counted - OVERHEAD
            rows.append((path.name, len(text), reference, estimate, (estimate - reference) / reference))
        print(f"| sample | chars | reference tokens | estimate | error |")
        print(f"|---|---|---|---|---|")
        for name, chars, reference, estimate, error in rows:
            print(f"| {name} | {chars} | {reference} | {estimate} | {error:+.1%} |")
        mean_abs = sum(abs(r[4]) for r in rows) / len(rows)
        total_ref = sum(r[2] for r in rows)
        total_est = sum(r[3] for r in rows)
        print(f"\nmean absolute error {mean_abs:.1%}; whole corpus {total_est} vs {total_ref} ({(total_est - total_ref) / total_ref:+.1%})")
    finally:
        if process is not None:
            process.terminate()


if __name__ == "__main__":
    main()
