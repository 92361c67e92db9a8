"""An MCP client that behaves on the wire the way VS Code's source says, as raw JSON-RPC.

Written from VS Code's `main` (`src/vs/workbench/contrib/mcp/common/mcpServerRequestHandler.ts`,
`mcpSamplingService.ts`, `mcpTypes.ts`, `src/vs/workbench/api/common/extHostMcp.ts`,
`src/vs/base/common/jsonRpcProtocol.ts`), not with an SDK: an SDK would normalise away what
matters (its own `initialize`, content types it refuses, a `stopReason` it fills in).

What it does as VS Code does:
- `initialize` with protocol 2025-11-25, capabilities `roots`, `sampling: {}`, `elicitation`,
  `tasks` and the `io.modelcontextprotocol/ui` extension, `clientInfo.name` "Visual Studio
  Code"; then `notifications/initialized`. It answers `ping` with `{}` and `roots/list`, and
  ignores `notifications/cancelled` for a request it is working on (it answers late).
- stdio: the bridge is its child, one JSON message per line. Streamable HTTP: POSTs carry no
  `MCP-Protocol-Version`; the GET stream opens right after the `initialize` response (racing
  `notifications/initialized`) and reconnects after a break with `Last-Event-ID` (a status of
  400 or above disables it for good); a POST answered with 300 or above puts the server in an
  error state; `DELETE` when it stops.
- Sampling: content read as one block or a list; `text` stays text, `image` and `audio` become
  an image part, every other block (`tool_use`, `tool_result`) is dropped, and a message left
  empty disappears; `systemPrompt` becomes a leading system message; the model is called with
  empty options (no `maxTokens`, `stopSequences`, `temperature`, tools); the result is
  `{model, role: "assistant", content: {type: "text", text}}`, without `stopReason` or usage.
- Model choice and consent (`mcpSamplingService.ts`): one sequencer for every request; a
  server not allowed "outside chat" (every bridge request) gets a notification whose answer
  is scripted here (`VsCodeConfig.prompt`) and may be held open until a test answers it;
  `allowedModels` filtered by the models VS Code has, else the default pool (non-premium models,
  the default first); the first hint that is a case-insensitive substring of an allowed id wins,
  else the first allowed id. Refusals are `-32000` "The user has denied permission to call this
  method."; a failing model call is `-32603` "Unknown error: <stack>".

The model behind it is scripted from the last user text (the system message for tool emulation
and response formats), like `scripted_client.ScriptedModel`:
- default ``echo: <text>``; ``[inspect]``: the JSON of what the model was given (its id, the
  messages, the options); ``[verbatim]rest``: answers ``rest`` as it is; ``[long]``;
  ``[slow:S]``; ``[fail]`` / ``[rate-limit]`` / ``[quota]``: the model call throws (a stack
  follows the message, as JavaScript errors carry one).
- with the bridge's tool prompt: ``<tool_call>`` text for ``[use-tool]`` (first tool),
  ``[use-tool:NAME]`` or a required call, arguments built from the tool's schema; after
  ``<tool_response>`` blocks, ``tool said: <results>``.
- with a response schema: a value of it in a ```json fence after a sentence.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

PROTOCOL_VERSION = "2025-11-25"
CLIENT_NAME = "Visual Studio Code"
CLIENT_VERSION = "1.108.0"
DENIAL = "The user has denied permission to call this method."
DENIAL_CODE = -32000
INTERNAL_ERROR = -32603
METHOD_NOT_FOUND = -32601
# `McpError.unknown(e)`: "Unknown error: ${e.stack}"; V8 stacks start with "Name: message".
STACK_FRAMES = (
    "    at LanguageModelsService.sendChatRequest (vscode-file://vscode-app/opt/vscode/resources/app/out/vs/workbench/workbench.desktop.main.js:2710:4312)\n"
    "    at async McpSamplingService.sample (vscode-file://vscode-app/opt/vscode/resources/app/out/vs/workbench/workbench.desktop.main.js:3377:1050)"
)
LONG_TEXT = " ".join(f"Sentence number {i} of a long answer." for i in range(60))
# The notification's buttons (`allowButtons`), and closing it.
ALLOW_SESSION = "Allow in this Session"
ALWAYS = "Always"
NOT_NOW = "Not Now"
NEVER = "Never"
CLOSE = "close"


def initialize_params(name: str = CLIENT_NAME, version: str = CLIENT_VERSION) -> dict[str, Any]:
    """VS Code's `initialize` params (`McpServerRequestHandler.create`)."""
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {
            "roots": {"listChanged": True},
            "sampling": {},
            "elicitation": {"form": {}, "url": {}},
            "tasks": {
                "list": {},
                "cancel": {},
                "requests": {"sampling": {"createMessage": {}}, "elicitation": {"create": {}}},
            },
            "extensions": {"io.modelcontextprotocol/ui": {"mimeTypes": ["text/html;profile=mcp-app"]}},
        },
        "clientInfo": {"name": name, "version": version},
    }


@dataclass
class CopilotModel:
    """A language model VS Code has (`ILanguageModelsService`): its identifier is
    ``<vendor>/<id>``; premium models have a multiplier and are not in the default pool."""

    id: str
    premium: bool = False
    default: bool = False


# What Copilot offers, in the order VS Code lists them.
COPILOT_MODELS = [
    CopilotModel("copilot/gpt-4.1", default=True),
    CopilotModel("copilot/gpt-5-mini"),
    CopilotModel("copilot/claude-haiku-4.5", premium=True),
    CopilotModel("copilot/claude-sonnet-4.5", premium=True),
    CopilotModel("copilot/claude-sonnet-4", premium=True),
    CopilotModel("copilot/claude-opus-4.6", premium=True),
    CopilotModel("copilot/claude-opus-4.6-1m", premium=True),
    CopilotModel("copilot/gemini-2.5-pro", premium=True),
]


@dataclass
class VsCodeConfig:
    """The server's entry of `chat.mcp.serverSampling` (`None`: absent) and what the person
    does when VS Code asks."""

    allowed_outside_chat: bool | None = True
    allowed_models: list[str] | None = None
    # The button pressed on the consent notification, `CLOSE`, or "wait" (held open until
    # `VsCodeClient.answer_prompt`).
    prompt: str = ALLOW_SESSION
    # On the "no allowlisted models" notification: "Configure" would open a picker; tests cancel.
    models: list[CopilotModel] = field(default_factory=lambda: list(COPILOT_MODELS))


class ModelFailure(Exception):
    """A failing model call, as a JavaScript error with a name and a stack."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.stack = f"{name}: {message}\n{STACK_FRAMES}"


class McpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class VsCodeModel:
    """The scripted language model behind the client. Records what it was given."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
        seen = {"model": model, "messages": [_printable(m) for m in messages], "options": options}
        with self._lock:
            self.received.append(seen)
        system = next((_text_of(m) for m in messages if m["role"] == "system"), "")
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), {"content": []})
        text = _text_of(last_user)
        images = [p for p in last_user["content"] if p["type"] == "image_url"]
        slow = re.search(r"\[slow:([\d.]+)\]", text)
        if slow:
            time.sleep(float(slow.group(1)))
        if "[fail]" in text:
            raise ModelFailure("Error", "Response contained no choices.")
        if "[rate-limit]" in text:
            raise ModelFailure(
                "ChatRateLimited",
                "Sorry, you have been rate-limited. Please wait 42 seconds before trying again. "
                "[Learn More](https://aka.ms/github-copilot-rate-limit-error)",
            )
        if "[quota]" in text:
            raise ModelFailure(
                "ChatQuotaExceeded",
                "You've exhausted your premium model quota. Please enable additional paid premium "
                "requests or wait for your allowance to renew.",
            )
        if "[inspect]" in text:
            return json.dumps(seen)
        verbatim = text.split("[verbatim]", 1)
        if len(verbatim) == 2:
            return verbatim[1]
        if "[long]" in text:
            return LONG_TEXT
        if "<tools>" in system and "<tool_call>" in system or "<tool_response" in text:
            return _emulated_answer(system, text)
        if "<schema>" in system:
            return _structured(f"echo: {text}", system)
        if images:
            return f"saw {len(images)} image(s): {', '.join(i['value']['mimeType'] for i in images)}"
        return f"echo: {text}"


def _text_of(message: dict[str, Any]) -> str:
    return "\n".join(p["value"] for p in message["content"] if p["type"] == "text")


def _printable(message: dict[str, Any]) -> dict[str, Any]:
    parts = []
    for part in message["content"]:
        if part["type"] == "image_url":
            parts.append({"type": "image_url", "mimeType": part["value"]["mimeType"], "bytes": len(part["value"]["data"])})
        else:
            parts.append(part)
    return {"role": message["role"], "content": parts}


def _emulated_answer(system: str, text: str) -> str:
    """What a model that follows the bridge's tool prompt writes."""
    listed = re.search(r"<tools>\n(.*?)\n</tools>", system, re.S)
    offered = [json.loads(line) for line in listed.group(1).splitlines()] if listed else []
    responses = re.findall(r"<tool_response[^>]*>\n(.*?)</tool_response>", text, re.S)
    if responses:
        said = "; ".join(body.strip() for body in responses)
        answer = f"tool said: {said}"
        return _structured(answer, system) if "<schema>" in system else answer
    named = re.search(r"You must call the tool `([^`]+)`", system) or re.search(r"\[use-tool:([^\]]+)\]", text)
    required = named is not None or "You must call at least one tool" in system
    if offered and (required or "[use-tool]" in text):
        name = named.group(1) if named else offered[0]["name"]
        tool = next((t for t in offered if t["name"] == name), offered[0])
        arguments = sample_arguments(tool.get("input_schema") or {}, text)
        return f"I will use {name}.\n<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"
    answer = f"echo: {text}"
    return _structured(answer, system) if "<schema>" in system else answer


def _structured(answer: str, system: str) -> str:
    found = re.search(r"<schema>\n(.*)\n</schema>", system, re.S)
    schema = json.loads(found.group(1)) if found else {}
    return f"Here is the JSON you asked for:\n```json\n{json.dumps(sample_value(schema, answer), indent=2)}\n```"


def sample_arguments(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """A tool's arguments: its required properties (all of them when none are required)."""
    properties = schema.get("properties") or {}
    required = schema.get("required") or list(properties)
    return {name: sample_value(properties.get(name) or {}, text) for name in required if name in properties} or {
        "query": text
    }


def sample_value(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
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


class VsCodeClient:
    """One MCP server connection of VS Code: the transport, the JSON-RPC protocol, and the
    sampling service (consent, model choice, content conversion) with its scripted model."""

    def __init__(self, transport: "Transport", config: VsCodeConfig | None = None, *, name: str = CLIENT_NAME) -> None:
        self.transport = transport
        self.config = config or VsCodeConfig()
        self.name = name
        self.model = VsCodeModel()
        self.server_label = "sampling2api"
        # `_sessionSets.allowedOutsideChat`: server → bool, read with `.has()`.
        self.session_allowed: dict[str, bool] = {}
        # One sequencer for model choice (and so for every prompt) across all requests.
        self._sequencer = threading.Lock()
        self._prompt_answer: threading.Event = threading.Event()
        self._prompt_button: str | None = None
        self.prompts: list[str] = []
        self.sampling_params: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.cancellations: list[Any] = []
        self.errors: list[str] = []
        self.initialize_result: dict[str, Any] | None = None
        self._pending: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    # ---- lifecycle ----

    def start(self, timeout: float = 30) -> "VsCodeClient":
        self.transport.start(self._on_message)
        result = self.request("initialize", initialize_params(self.name), timeout=timeout)
        self.initialize_result = result
        self.transport.after_initialize()
        self.notify("notifications/initialized")
        return self

    def stop(self) -> None:
        self.answer_prompt(CLOSE)
        self.transport.stop()

    # ---- JSON-RPC ----

    def request(self, method: str, params: dict[str, Any], timeout: float = 30) -> Any:
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            done: tuple[threading.Event, list[Any]] = (threading.Event(), [])
            self._pending[request_id] = done
        self.transport.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        if not done[0].wait(timeout):
            raise TimeoutError(f"no answer to {method}")
        answer = done[1][0]
        if "error" in answer:
            raise McpError(answer["error"].get("code"), answer["error"].get("message"))
        return answer.get("result")

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.transport.send(message)

    def _on_message(self, message: Any) -> None:
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "method" in item and "id" in item:
                threading.Thread(target=self._handle_request, args=(item,), daemon=True).start()
            elif "method" in item:
                if item["method"] == "notifications/cancelled":
                    # Only the client's own requests are cancelled this way
                    # (`cancelPendingRequest`); a sampling request runs on and is answered.
                    self.cancellations.append(item.get("params", {}).get("requestId"))
            elif "id" in item:
                waiting = self._pending.pop(item["id"], None)
                if waiting:
                    waiting[1].append(item)
                    waiting[0].set()

    def _handle_request(self, request: dict[str, Any]) -> None:
        method = request["method"]
        try:
            if method == "ping":
                result: Any = {}
            elif method == "roots/list":
                result = {"roots": []}
            elif method == "sampling/createMessage":
                result = self.sample(request.get("params") or {})
            else:
                raise McpError(METHOD_NOT_FOUND, f"Method not found: {method}")
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"], "result": result}
        except McpError as err:
            reply = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": err.code, "message": err.message}}
        except Exception as err:  # noqa: BLE001 - any other error is McpError.unknown
            reply = {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": INTERNAL_ERROR, "message": f"Unknown error: {type(err).__name__}: {err}\n{STACK_FRAMES}"},
            }
        with self._lock:
            self.answers.append(reply)
        self.transport.send(reply)

    # ---- the sampling service ----

    def sample(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.sampling_params.append(params)
        messages = []
        for message in params.get("messages") or []:
            content = message.get("content")
            parts = []
            for part in content if isinstance(content, list) else [content]:
                kind = (part or {}).get("type")
                if kind == "text":
                    parts.append({"type": "text", "value": part["text"]})
                elif kind in ("image", "audio"):
                    parts.append(
                        {"type": "image_url", "value": {"mimeType": part["mimeType"], "data": base64.b64decode(part["data"])}}
                    )
            if parts:
                role = "assistant" if message.get("role") == "assistant" else "user"
                messages.append({"role": role, "content": parts})
        if params.get("systemPrompt"):
            messages.insert(0, {"role": "system", "content": [{"type": "text", "value": params["systemPrompt"]}]})
        with self._sequencer:
            model = self._matching_model(params.get("modelPreferences"))
        try:
            text = self.model(model, messages, {})
        except ModelFailure as failure:
            raise McpError(INTERNAL_ERROR, f"Unknown error: {failure.stack}") from failure
        return {"model": model, "content": {"type": "text", "text": text}, "role": "assistant"}

    def _matching_model(self, preferences: dict[str, Any] | None) -> str:
        found = self._matching_model_inner(preferences)
        if found == "unsure-outside-chat":
            message = (
                f'The MCP server "{self.server_label}" has issued a request to make a language model call. '
                "Do you want to allow it to make requests, outside of tool calls during chat?"
            )
            if self._notify(message):
                return self._matching_model(preferences)
            raise McpError(DENIAL_CODE, DENIAL)
        if found == "not-allowed":
            raise McpError(DENIAL_CODE, DENIAL)
        if found == "no-matching-model":
            self.prompts.append(
                f'MCP server "{self.server_label}" triggered a language model request, but it has no allowlisted models.'
            )
            raise McpError(DENIAL_CODE, DENIAL)
        return found

    def _matching_model_inner(self, preferences: dict[str, Any] | None) -> str:
        config = self.config
        if not config.allowed_outside_chat and self.server_label not in self.session_allowed:
            return "unsure-outside-chat" if config.allowed_outside_chat is None else "not-allowed"
        known = {model.id for model in config.models}
        if config.allowed_models is not None:
            # `allowedModels?.filter(lookup) || defaults`: an empty list stays empty.
            allowed = [model for model in config.allowed_models if model in known]
        else:
            allowed = self._default_models()
        if not allowed:
            return "no-matching-model"
        hints = (preferences or {}).get("hints")
        if hints:
            for hint in hints:
                # `hint.name!.toLowerCase()`: a hint without a name throws a TypeError.
                name = hint.get("name") if isinstance(hint, dict) else None
                if not isinstance(name, str):
                    raise TypeError("Cannot read properties of undefined (reading 'toLowerCase')")
                match = next((model for model in allowed if name.lower() in model.lower()), None)
                if match:
                    return match
        return allowed[0]

    def _default_models(self) -> list[str]:
        candidates = [model for model in self.config.models if not model.premium]
        default = next((i for i, model in enumerate(candidates) if model.default), -1)
        if default != -1:
            candidates[0], candidates[default] = candidates[default], candidates[0]
        return [model.id for model in candidates]

    def _notify(self, message: str) -> bool:
        """The corner notification; True when the request may go on."""
        self.prompts.append(message)
        button = self.config.prompt
        if button == "wait":
            self._prompt_answer.wait()
            self._prompt_answer.clear()
            button = self._prompt_button or CLOSE
        if button == ALLOW_SESSION:
            self.session_allowed[self.server_label] = True
            return True
        if button == ALWAYS:
            self.config.allowed_outside_chat = True
            return True
        if button == NOT_NOW:
            # Stored as false, but read with `.has()`: later requests pass (as VS Code does).
            self.session_allowed[self.server_label] = False
            return False
        if button == NEVER:
            self.config.allowed_outside_chat = False
            return False
        return False

    def answer_prompt(self, button: str) -> None:
        """Answers a notification held open (`prompt="wait"`)."""
        self._prompt_button = button
        self._prompt_answer.set()


class Transport:
    def start(self, on_message: Callable[[Any], None]) -> None:
        raise NotImplementedError

    def after_initialize(self) -> None:
        pass

    def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class StdioTransport(Transport):
    """The bridge as VS Code's child process: one JSON message per line each way."""

    def __init__(self, command: list[str], stderr: Any = None) -> None:
        self.command = command
        self.stderr = stderr
        self.process: subprocess.Popen[bytes] | None = None
        self._write = threading.Lock()

    def start(self, on_message: Callable[[Any], None]) -> None:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr or subprocess.DEVNULL
        )

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if line.strip():
                    try:
                        on_message(json.loads(line))
                    except json.JSONDecodeError:
                        pass

        threading.Thread(target=read, daemon=True, name="vscode-stdio-reader").start()

    def send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        with self._write:
            try:
                self.process.stdin.write(json.dumps(message).encode() + b"\n")
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class HttpTransport(Transport):
    """Streamable HTTP as `extHostMcp.ts` speaks it."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.session_id: str | None = None
        self.http = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self.on_message: Callable[[Any], None] = lambda _: None
        self.state_errors: list[str] = []
        self.stream_statuses: list[int] = []
        self.last_event_ids: list[str | None] = []
        self._stopped = threading.Event()
        self._stream: httpx.Response | None = None
        self._stream_thread: threading.Thread | None = None

    def start(self, on_message: Callable[[Any], None]) -> None:
        self.on_message = on_message

    def _post_headers(self) -> dict[str, str]:
        headers = {**self.headers, "Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    def send(self, message: dict[str, Any]) -> None:
        self._post(message)

    def _post(self, message: dict[str, Any]) -> None:
        try:
            with self.http.stream("POST", self.url, headers=self._post_headers(), content=json.dumps(message)) as res:
                session_id = res.headers.get("mcp-session-id")
                if session_id:
                    self.session_id = session_id
                if res.status_code >= 300:
                    self.state_errors.append(f"{res.status_code} status sending message to {self.url}: {res.read()!r}")
                    return
                if res.status_code == 202:
                    return
                content_type = res.headers.get("content-type", "").lower()
                if content_type.startswith("text/event-stream"):
                    for event in _sse_events(res):
                        if event["type"] == "message" and event["data"]:
                            self.on_message(json.loads(event["data"]))
                else:
                    body = res.read()
                    if body.strip():
                        self.on_message(json.loads(body))
        except (httpx.HTTPError, json.JSONDecodeError) as err:
            self.state_errors.append(f"error sending message: {err}")

    def after_initialize(self) -> None:
        # `_attachStreamableBackchannel` starts as soon as the first POST came back, before
        # `notifications/initialized` goes out.
        self._stream_thread = threading.Thread(target=self._backchannel, daemon=True, name="vscode-get-stream")
        self._stream_thread.start()

    def _backchannel(self) -> None:
        last_event_id: str | None = None
        can_reconnect_at: float | None = None
        # `for (let retry = 0; ; retry++)`: wait `retry` seconds (at most 30), or until the
        # server's `retry:`; a response that is an event stream resets the count.
        retry = -1
        while not self._stopped.is_set():
            retry += 1
            if can_reconnect_at is not None:
                delay = max(0.0, can_reconnect_at - time.monotonic())
                can_reconnect_at = None
            else:
                delay = min(retry * 1.0, 30.0)
            if self._stopped.wait(delay):
                return
            headers = {**self.headers, "Accept": "text/event-stream"}
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            self.last_event_ids.append(last_event_id)
            try:
                with self.http.stream("GET", self.url, headers=headers) as res:
                    self._stream = res
                    self.stream_statuses.append(res.status_code)
                    if res.status_code >= 400:
                        return
                    if "text/event-stream" in res.headers.get("content-type", "").lower():
                        retry = 0
                    for event in _sse_events(res):
                        if event["retry"] is not None:
                            can_reconnect_at = time.monotonic() + event["retry"] / 1000
                        if event["type"] == "message" and event["data"]:
                            self.on_message(json.loads(event["data"]))
                        if event["id"]:
                            last_event_id = event["id"]
            except (httpx.HTTPError, json.JSONDecodeError, RuntimeError):
                pass
            finally:
                self._stream = None

    def break_stream(self) -> None:
        """Drops the GET stream's connection, as a network change would; it reconnects. The
        socket is shut down, which wakes the thread blocked reading it (closing the response
        from here would wait for that read)."""
        stream = self._stream
        if stream is None:
            return
        network = stream.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped.set()
        self.break_stream()
        if self.session_id:
            try:
                headers = {**self.headers, "Mcp-Session-Id": self.session_id}
                self.http.request("DELETE", self.url, headers=headers, timeout=5)
            except httpx.HTTPError:
                pass
        if self._stream_thread:
            self._stream_thread.join(5)
        self.http.close()


def _sse_events(res: httpx.Response) -> Any:
    """Server-sent events as `SSEParser` reads them: `type` (default "message"), `data`, `id`,
    `retry`."""
    event: dict[str, Any] = {"type": "message", "data": "", "id": None, "retry": None}
    data_lines: list[str] = []
    for line in res.iter_lines():
        if line == "":
            if data_lines or event["id"] is not None or event["retry"] is not None:
                event["data"] = "\n".join(data_lines)
                yield event
            event = {"type": "message", "data": "", "id": None, "retry": None}
            data_lines = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event["type"] = value
        elif name == "id":
            event["id"] = value
        elif name == "retry" and value.isdigit():
            event["retry"] = int(value)
