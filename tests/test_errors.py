"""Errors: always the Anthropic JSON envelope with the matching status and type, a
`request-id` header, and the retry hint the SDKs read."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest

from conftest import ClientSpec, Deployment, deploy, not_on_worker, sees_buffered_callers_leave, wait_until


def post(
    target: Deployment, body: Any = None, *, content: bytes | None = None, timeout: float = 30, **kwargs: Any
) -> httpx.Response:
    if content is None:
        return target.http.post("/v1/messages", json=body, timeout=timeout, **kwargs)
    return target.http.post("/v1/messages", content=content, timeout=timeout, **kwargs)


def assert_error(response: httpx.Response, status: int, error_type: str, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    request_id = response.headers["request-id"]
    assert request_id.startswith("req_")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == request_id
    assert contains in body["error"]["message"], body
    return body


OK = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("content", "contains"),
    [
        (b"{not json", "invalid JSON body"),
        (b"", "request body is empty"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}]}', "max_tokens: Field required"),
        (b'{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}', "model: Field required"),
        (b'{"model":"m","max_tokens":5}', "messages: Field required"),
        (b'{"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]}', "max_tokens: invalid type"),
        (b'{"model":"m","max_tokens":5,"messages":[]}', "at least one message"),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}', "messages.0.content.0"),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t"}]}', "tools.0.input_schema: Field required"),
        (
            b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"nope","content":"r"}]}]}',
            "tool_use_id",
        ),
        (
            b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"***"}}]}]}',
            "not valid base64",
        ),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"\xff\xfe"}]}', "invalid JSON body"),
    ],
)
def test_malformed_requests_are_400(target: Deployment, content: bytes, contains: str) -> None:
    assert_error(post(target, content=content, headers={"content-type": "application/json"}), 400, "invalid_request_error", contains)


def test_sdk_raises_bad_request(target: Deployment) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        target.anthropic().messages.create(model="m", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 400
    assert raised.value.request_id.startswith("req_")


def test_oversized_body_is_413(target: Deployment) -> None:
    body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"' + b"a" * (32 * 1024 * 1024) + b'"}]}'
    assert_error(post(target, content=body, headers={"content-type": "application/json"}), 413, "request_too_large")


def test_unknown_routes_and_methods(target: Deployment) -> None:
    assert_error(target.http.get("/v1/nothing"), 404, "not_found_error", "/v1/nothing")
    response = target.http.get("/v1/messages")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_declined_by_the_client_is_403_and_not_retried(target: Deployment) -> None:
    response = post(target, {**OK, "messages": [{"role": "user", "content": "[decline]"}]})
    assert_error(response, 403, "permission_error", "declined")
    assert response.headers["x-should-retry"] == "false"
    before = len(target.model().received)
    with pytest.raises(anthropic.PermissionDeniedError):
        # With retries on, the SDK must still stop at the first answer.
        target.anthropic(max_retries=2).messages.create(**{**OK, "messages": [{"role": "user", "content": "[decline]"}]})
    assert len(target.model().received) == before + 1


def test_client_failure_is_500(target: Deployment) -> None:
    response = post(target, {**OK, "messages": [{"role": "user", "content": "[fail]"}]})
    assert_error(response, 500, "api_error", "the model backend crashed")
    with pytest.raises(anthropic.InternalServerError):
        target.anthropic().messages.create(**{**OK, "messages": [{"role": "user", "content": "[fail]"}]})


def test_result_the_api_cannot_carry_is_a_clear_500_for_that_request_only(target: Deployment) -> None:
    response = post(target, {**OK, "messages": [{"role": "user", "content": "[image-reply]"}]})
    assert_error(response, 500, "api_error", "cannot carry")
    assert response.headers["x-should-retry"] == "false"
    assert post(target, OK).status_code == 200


def test_errors_after_the_200_are_error_frames(target: Deployment) -> None:
    body = {**OK, "stream": True, "messages": [{"role": "user", "content": "[decline]"}]}
    response = post(target, body)
    assert response.status_code == 200
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: message_start")
    assert frames[-1].startswith("event: error\ndata: ")
    assert '"type":"permission_error"' in frames[-1]
    with pytest.raises(anthropic.APIStatusError) as raised:
        with target.anthropic().messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as stream:
            stream.get_final_message()
    assert "declined" in str(raised.value)


def test_deadline_gives_504_and_cancels_at_the_client(target: Deployment) -> None:
    prompt = "[slow:20] never in time"
    started = time.monotonic()
    response = post(target, {**OK, "messages": [{"role": "user", "content": prompt}]})
    elapsed = time.monotonic() - started
    assert_error(response, 504, "timeout_error", "did not answer within 3 s")
    assert elapsed < 10
    deadline = time.monotonic() + 5
    while prompt not in target.model().cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert prompt in target.model().cancelled, "the client was not sent notifications/cancelled"
    target.assert_idle()


def test_streamed_deadline_is_a_timeout_error_frame(target: Deployment) -> None:
    body = {**OK, "stream": True, "messages": [{"role": "user", "content": "[slow:20] stream too slow"}]}
    response = post(target, body)
    assert response.status_code == 200
    assert response.text.rstrip().split("\n\n")[-1].startswith("event: error")
    assert '"type":"timeout_error"' in response.text


def test_caller_disconnect_cancels_at_the_client(target: Deployment) -> None:
    prompt = "[slow:20] caller leaves"
    body = {**OK, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    with target.http.stream("POST", "/v1/messages", json=body, timeout=10) as response:
        assert next(response.iter_text()).startswith("event: message_start")
        wait_until(lambda: prompt in target.model().started, what="the request reached the client")
    # Closing the stream is the caller going away; the 3 s deadline must not be what ends it.
    left_at = time.monotonic()
    wait_until(lambda: prompt in target.model().cancelled, timeout=5, what="notifications/cancelled at the client")
    assert time.monotonic() - left_at < 2.0
    target.assert_idle()


def test_non_streaming_caller_disconnect_cancels_at_the_client(target: Deployment) -> None:
    prompt = "[slow:20] impatient caller"
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post(target, {**OK, "messages": [{"role": "user", "content": prompt}]}, timeout=0.5)
    left_at = time.monotonic()
    wait_until(lambda: prompt in target.model().cancelled, timeout=5, what="notifications/cancelled at the client")
    if sees_buffered_callers_leave(target.kind):
        # Well before the 3 s deadline.
        assert time.monotonic() - left_at < 2.0
    else:
        # Unseen: the request's deadline (3 s here) ends it, and the cancel with it.
        assert time.monotonic() - started > 2.5
    target.assert_idle()


def test_foreign_browser_origins_are_refused(target: Deployment) -> None:
    not_on_worker(target.kind, "a foreign page cannot know the worker's secret token, which every request needs")
    response = post(target, OK, headers={"origin": "https://evil.example"})
    assert_error(response, 403, "permission_error", "origin")
    assert post(target, OK, headers={"origin": "http://localhost:5173"}).status_code == 200


def test_client_without_sampling_tools_gets_400_for_tools_under_native_mode(
    kind: str, deployments: list[Deployment]
) -> None:
    # `--tools native` keeps tools out of the prompt (the default, auto, emulates them: see
    # test_tool_emulation.py).
    deployment = deploy(kind, [ClientSpec(name="plain", tools=False)], ["--tools", "native"])
    deployments.append(deployment)
    tools = [{"name": "t", "input_schema": {"type": "object"}}]
    response = post(deployment, {**OK, "tools": tools})
    assert_error(response, 400, "invalid_request_error", "cannot sample with tools")
    # Without tools the same client works.
    assert post(deployment, OK).json()["content"][0]["text"] == "echo: x"


def test_client_without_sampling_gets_503(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, [ClientSpec(name="no-sampling", sampling=False)])
    deployments.append(deployment)
    response = post(deployment, OK)
    assert_error(response, 503, "api_error", "(no-sampling) did not declare the `sampling` capability")
    assert response.headers["x-should-retry"] == "false"
