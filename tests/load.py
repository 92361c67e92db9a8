"""A minimal HTTP/1.1 load generator for the fault tests: one connection per request, no pool.

httpx's pool slows quadratically with thousands of connections, and the suite's MCP clients
need the same interpreter's CPU, so the load runs as its own process:

    python load.py BASE_URL REQUESTS_JSON  -> prints one JSON line per response: [index, status, body]

A request may say when to start, in seconds from the start (`"after"`), to spread out the work.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlparse


async def one(host: str, port: int, index: int, request: dict, out: list) -> None:
    await asyncio.sleep(request.get("after", 0))
    body = json.dumps(request["body"]).encode()
    headers = "".join(f"{k}: {v}\r\n" for k, v in request.get("headers", {}).items())
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{headers}\r\n").encode()
    for attempt in range(50):
        try:
            reader, writer = await asyncio.open_connection(host, port)
            break
        except OSError:
            await asyncio.sleep(0.05 * (attempt + 1))
    writer.write(head + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head_part, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_part.lower():
        payload = dechunk(payload)
    out.append([index, status, payload.decode(errors="replace")])


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


async def main() -> None:
    url = urlparse(sys.argv[1])
    requests = json.load(open(sys.argv[2]))
    out: list = []
    await asyncio.gather(*(one(url.hostname, url.port, i, r, out) for i, r in enumerate(requests)))
    for line in out:
        print(json.dumps(line))


if __name__ == "__main__":
    asyncio.run(main())
