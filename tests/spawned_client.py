"""An MCP client that speaks over its own stdin/stdout, for `sampling2api stdio --spawn`.

The official SDK's ``Client`` in its default auto mode, on the SDK's stdio stream pair; its
sampling callback is the scripted model. It exits after answering a prompt with
``[exit-client]`` in it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import mcp.types as types  # noqa: E402
from mcp.client import Client  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402
from scripted_client import ScriptedModel  # noqa: E402


async def main() -> None:
    model = ScriptedModel("spawned")

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> Any:
        result = await model(context, params)
        if model.started and "[exit-client]" in model.started[-1]:
            # Leave once this answer is written. The SDK's stdin reader thread cannot be
            # cancelled, so a graceful exit would wait for a stdin EOF that the bridge (rightly)
            # never sends while its client lives: exit the process, which closes our stdout,
            # which is how the bridge learns its client is gone.
            asyncio.get_running_loop().call_later(0.3, os._exit, 0)
        return result

    async with Client(
        stdio_server(),
        sampling_callback=sampling,
        sampling_capabilities=types.SamplingCapability(tools=types.SamplingToolsCapability()),
        client_info=types.Implementation(name="spawned", version="1.0"),
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
