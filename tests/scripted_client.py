"""A real MCP client (the official Python SDK, v2, default ``auto`` mode) whose sampling
callback is a scripted "LLM", so black-box tests can drive the bridge end to end.

The model's behaviour is chosen by markers in the last user text:

- default: answers ``echo: <text>``; with tool results in the turn, ``tool said: <results>``;
  with images, ``saw N image(s): <mime types>``.
- ``[inspect]``: answers with the JSON of the sampling params it received.
- ``[decline]`` / ``[fail]``: a JSON-RPC error (-1 "User rejected..." / -32603).
- ``[slow:S]``: waits S seconds first (cancellation is recorded).
- ``[long]``: a long multi-sentence answer.
- ``[image-reply]``: answers with an image block, which the Anthropic API cannot carry.
- ``[use-tool]``, or tool choice ``required``: calls the first tool with ``{"query": text}``.
- ``[whoami]``: answers with this client's name; ``[signed]``: ``<name>: <text>``.
- ``[hostile:SHAPE]``: one of the worst answers a client can send (``HOSTILE_SHAPES``), built
  before anything else is looked at.

When the system prompt carries the bridge's tool protocol (tool emulation: ``<tools>`` and
``<tool_call>``), it answers like a model following that prompt: with ``<tool_response>`` blocks
in the turn, ``tool said: <results>``; with ``[use-tool]`` or a required call, ``<tool_call>``
text for the first tool (or the named one), after a sentence; ``[parallel]``: two calls;
``[unknown-tool]``: a call to a tool that was not offered; ``[fenced-call]`` / ``[string-args]``:
the call's JSON in a code fence / its arguments as a JSON string. When the system prompt asks
for a response format (``<schema>``), the final answer is a value of that schema inside a
```json fence after a sentence.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import mcp.types as types
from mcp.client import Client, ClientRequestContext

LONG_TEXT = " ".join(f"Sentence number {i} of a long answer that streams in pieces." for i in range(40))


def _blocks(content: Any) -> list[Any]:
    return content if isinstance(content, list) else [content]


class ScriptedModel:
    """The sampling callback. Thread-safe records of what it saw, for assertions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.started: list[str] = []
        self.finished: list[str] = []
        self._lock = threading.Lock()

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        dumped = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        last_user = next((m for m in reversed(params.messages) if m.role == "user"), None)
        user_blocks = _blocks(last_user.content) if last_user else []
        text = " ".join(b.text for b in user_blocks if getattr(b, "type", None) == "text")
        tool_results = [b for b in user_blocks if getattr(b, "type", None) == "tool_result"]
        images = [b for b in user_blocks if getattr(b, "type", None) == "image"]
        for result in tool_results:
            images += [c for c in result.content if getattr(c, "type", None) == "image"]
        with self._lock:
            self.received.append(dumped)
            self.started.append(text)
        try:
            return await self._answer(params, text, tool_results, images, dumped)
        finally:
            with self._lock:
                self.finished.append(text)

    async def _answer(
        self,
        params: types.CreateMessageRequestParams,
        text: str,
        tool_results: list[Any],
        images: list[Any],
        dumped: dict[str, Any],
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:

        slow = re.search(r"\[slow:([\d.]+)\]", text)
        if slow:
            try:
                await asyncio.sleep(float(slow.group(1)))
            except asyncio.CancelledError:
                with self._lock:
                    self.cancelled.append(text)
                raise

        hostile = re.search(r"\[hostile:([\w-]+)\]", text)
        if hostile:
            return hostile_answer(hostile.group(1), params.system_prompt or "")
        if "[decline]" in text:
            return types.ErrorData(code=-1, message="User rejected sampling request")
        if "[fail]" in text:
            return types.ErrorData(code=-32603, message="the model backend crashed")
        if "[image-reply]" in text:
            return types.CreateMessageResult(
                role="assistant",
                content=types.ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
                model="scripted-model",
                stop_reason="endTurn",
            )
        if "[inspect]" in text:
            return self._text(json.dumps(dumped))
        if "[whoami]" in text:
            return self._text(self.name)
        if "[signed]" in text:
            return self._text(f"{self.name}: {text}")
        if "[long]" in text:
            return self._text(LONG_TEXT)

        system = params.system_prompt or ""
        if "<tools>" in system and "<tool_call>" in system or "<tool_response" in text:
            return self._text(self._emulated_answer(system, text, images))
        if "<schema>" in system:
            return self._text(self._structured("echo: " + text, system))

        tools = params.tools or []
        mode = params.tool_choice.mode if params.tool_choice else None
        if tools and not tool_results and mode != "none" and ("[use-tool]" in text or mode == "required"):
            tool = tools[0]
            return types.CreateMessageResultWithTools(
                role="assistant",
                content=[
                    types.TextContent(type="text", text=f"calling {tool.name}"),
                    types.ToolUseContent(
                        type="tool_use", id=f"call_{len(self.received)}", name=tool.name, input={"query": text}
                    ),
                ],
                model="scripted-model",
                stop_reason="toolUse",
            )
        if tool_results:
            said = "; ".join(
                " ".join(c.text for c in r.content if getattr(c, "type", None) == "text") for r in tool_results
            )
            return self._text(f"tool said: {said}")
        if images:
            return self._text(f"saw {len(images)} image(s): {', '.join(i.mime_type for i in images)}")
        return self._text(f"echo: {text}")

    def _emulated_answer(self, system: str, text: str, images: list[Any]) -> str:
        """What a model that follows the bridge's tool prompt writes."""
        listed = re.search(r"<tools>\n(.*?)\n</tools>", system, re.S)
        offered = [json.loads(line) for line in listed.group(1).splitlines()] if listed else []
        responses = re.findall(r"<tool_response[^>]*>\n(.*?)</tool_response>", text, re.S)
        if responses:
            said = "; ".join(
                "\n".join(line for line in body.splitlines() if not line.startswith("(")).strip() for body in responses
            )
            answer = f"tool said: {said}"
            if images:
                answer += f" (saw {len(images)} image(s): {', '.join(i.mime_type for i in images)})"
            return self._structured(answer, system) if "<schema>" in system else answer
        named = re.search(r"You must call the tool `([^`]+)`", system)
        required = named is not None or "You must call at least one tool" in system
        markers = ("[use-tool]", "[parallel]", "[unknown-tool]", "[fenced-call]", "[string-args]")
        if offered and (required or any(marker in text for marker in markers)):
            name = named.group(1) if named else offered[0]["name"]
            if "[unknown-tool]" in text:
                name = "not_offered"
            arguments: Any = {"query": text}
            if "[string-args]" in text:
                arguments = json.dumps(arguments)
            body = json.dumps({"name": name, "arguments": arguments})
            if "[fenced-call]" in text:
                body = f"\n```json\n{body}\n```\n"
            calls = [f"<tool_call>{body}</tool_call>"]
            if "[parallel]" in text:
                second = offered[1]["name"] if len(offered) > 1 else name
                calls.append(f"<tool_call>{json.dumps({'name': second, 'arguments': {'query': 'second'}})}</tool_call>")
            return f"I will use {name}.\n" + "\n".join(calls)
        answer = f"echo: {text}"
        return self._structured(answer, system) if "<schema>" in system else answer

    @staticmethod
    def _structured(answer: str, system: str) -> str:
        """A value of the schema the system prompt asks for, in a fence after a sentence."""
        found = re.search(r"<schema>\n(.*)\n</schema>", system, re.S)
        schema = json.loads(found.group(1)) if found else {}
        value = sample_value(schema, answer)
        return f"Here is the JSON you asked for:\n```json\n{json.dumps(value, indent=2)}\n```"

    @staticmethod
    def _text(text: str) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=text),
            model="scripted-model",
            stop_reason="endTurn",
        )


def _offered_tool(system: str) -> str:
    listed = re.search(r"<tools>\n(.*?)\n</tools>", system, re.S)
    return json.loads(listed.group(1).splitlines()[0])["name"] if listed else "none_offered"


def _call(name: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {{"query": "x"}}}}</tool_call>'


# The worst answers we know how to build for each answer-side parser, near the bounds a client
# can reach (an MCP message of tens of MB). Each maps the bridge's system prompt to the result.
HOSTILE_SHAPES: dict[str, Any] = {
    # Issue #19: one text block opening a call, then 20,000 small blocks (20 s of CPU once).
    "open-call-then-blocks": lambda system: ["<tool_call>"] + ["</tool_cal <tool_cal </tool_cal <tool_cal"] * 20_000,
    # 100,000 calls to an offered tool in one answer (~6 MB).
    "many-calls": lambda system: [(_call(_offered_tool(system)) + "\n") * 100_000],
    # A 16 MB structured answer whose 64 brackets each start a value failing at its end (issue
    # #19: re-parsed from each, 3.3 s).
    "failing-starts": lambda system: ["Here: " + "[" * 64 + '"' + "a" * (16 << 20)],
    # Calls quoted in fences, block quotes and code spans (~8 MB), and one real call at the end.
    "quoted-calls": lambda system: [
        ("```\n{c}\n```\n> {c}\n`{c}` and ``{c}`` `\n".format(c=_call(_offered_tool(system))) * 40_000)
        + _call(_offered_tool(system))
    ],
    # Blocks whose JSON reads run on past the next tag, and tags before one far close (~8 MB).
    "overlapping-blocks": lambda system: [
        ('<tool_call>{"a<tool_call>{"' + '":":",","' * 16) * 30_000 + "<tool_call>```x" * 100_000 + "```</tool_call>"
    ],
}


def hostile_answer(shape: str, system: str) -> types.CreateMessageResult | types.CreateMessageResultWithTools:
    texts = HOSTILE_SHAPES[shape](system)
    if len(texts) == 1:
        return ScriptedModel._text(texts[0])
    return types.CreateMessageResultWithTools(
        role="assistant",
        content=[types.TextContent(type="text", text=text) for text in texts],
        model="scripted-model",
        stop_reason="endTurn",
    )


def sample_value(schema: dict[str, Any], text: str) -> Any:
    """A value matching `schema` (the subset tests use), with `text` in its strings."""
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if not properties:
            return {"answer": text}
        return {name: sample_value(sub, text) for name, sub in properties.items()}
    if kind == "array":
        return [sample_value(schema.get("items") or {}, text)]
    if kind == "integer":
        return 42
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return text


class ClientThread:
    """Runs ``Client(server, sampling_callback=model)`` on its own event loop in a thread.

    ``server`` is what ``mcp.client.Client`` takes: a URL for Streamable HTTP, or
    ``StdioServerParameters`` (the SDK then launches the bridge as its subprocess).
    """

    def __init__(
        self,
        server: Any,
        model: ScriptedModel,
        *,
        sampling: bool = True,
        tools: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.headers = headers
        self.model = model
        self.sampling = sampling
        self.tools = tools
        self.protocol_version: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"mcp-client-{model.name}", daemon=True)

    def start(self, timeout: float = 30) -> "ClientThread":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"MCP client {self.model.name} did not connect in {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"MCP client {self.model.name} failed to connect") from self._error
        return self

    def stop(self, timeout: float = 15) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        kwargs: dict[str, Any] = {
            "client_info": types.Implementation(name=self.model.name, version="1.0"),
        }
        if self.sampling:
            kwargs["sampling_callback"] = self.model
            if self.tools:
                kwargs["sampling_capabilities"] = types.SamplingCapability(tools=types.SamplingToolsCapability())
        server = self.server
        if self.headers and isinstance(server, str):
            # The SDK's own transport, with our headers (an API key) on every request.
            import httpx2

            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers=self.headers, timeout=httpx2.Timeout(30, read=300))
            server = streamable_http_client(server, http_client=http)
        try:
            async with Client(server, **kwargs) as client:  # mode="auto" is the default
                self.protocol_version = client.protocol_version
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:  # noqa: BLE001 - reported to the starting thread
            self._error = error
            self._ready.set()
