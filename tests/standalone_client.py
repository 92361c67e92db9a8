"""The scripted MCP client as its own process, so a test can kill it the hard way.

    python standalone_client.py NAME URL [TOKEN]     # Streamable HTTP
    python standalone_client.py NAME -- CMD ARGS...  # stdio: launches the bridge as its child

Prints `ready` once connected, then serves until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mcp.client.stdio import StdioServerParameters  # noqa: E402
from scripted_client import ClientThread, ScriptedModel  # noqa: E402


def main() -> None:
    name, target, *rest = sys.argv[1:]
    if target == "--":
        server = StdioServerParameters(command=rest[0], args=rest[1:])
        headers = None
    else:
        server = target
        headers = {"authorization": f"Bearer {rest[0]}"} if rest else None
    ClientThread(server, ScriptedModel(name), headers=headers).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
