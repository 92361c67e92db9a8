"""The live status page: `GET /` for browsers (strict CSP), `GET /status` (its JSON), keys."""

from __future__ import annotations

import threading

import anthropic
import httpx
import pytest

from conftest import Deployment, deploy, not_on_worker, wait_until

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
OK = {"model": "claude-status-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hello status"}]}
KEY = "sk-status-key"


def status(deployment: Deployment) -> dict:
    response = httpx.get(f"{deployment.base_url}/status", headers=deployment.auth_headers(), timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_browsers_get_the_page_with_a_strict_policy(target: Deployment) -> None:
    response = httpx.get(f"{target.base_url}/", headers={"accept": BROWSER_ACCEPT}, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; script-src 'sha256-")
    for directive in ["connect-src 'self'", "frame-ancestors 'none'", "img-src 'self' data:", "style-src 'sha256-"]:
        assert directive in policy, policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<title>sampling2api status</title>" in response.text
    # No external assets: it works offline.
    assert "https://" not in response.text and "http://" not in response.text


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
def test_api_clients_still_get_json_at_root(target: Deployment, accept: str | None) -> None:
    headers = {"accept": accept} if accept else {}
    response = httpx.get(f"{target.base_url}/", headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["name"] == "sampling2api"
    assert "content-security-policy" not in response.headers
    head = httpx.head(f"{target.base_url}/", headers={"accept": BROWSER_ACCEPT}, timeout=5)
    assert head.status_code == 200


def test_status_lists_clients_requests_in_flight_recent_and_totals(target: Deployment) -> None:
    before = status(target)
    assert before["name"] == "sampling2api"
    assert before["mode"] == target.kind
    client = next(c for c in before["clients"] if c["client_name"] == "main")
    assert client["session"].startswith("mcps_")
    assert client["sampling"] is True
    assert client["tools"] in ("native", "emulated")
    if target.kind != "worker":
        assert client["protocol_version"]
        assert client["event_stream_open"] is True

    answered: list[str] = []
    request = {**OK, "messages": [{"role": "user", "content": "[slow:2] status probe"}]}
    worker = threading.Thread(target=lambda: answered.append(target.anthropic().messages.create(**request).content[0].text))
    worker.start()
    seen: dict = {}

    def in_flight() -> bool:
        snapshot = status(target)
        mine = [r for r in snapshot["in_flight"] if r["model"] == OK["model"]]
        if mine:
            seen.update(mine[0])
        return bool(mine)

    wait_until(in_flight, timeout=10, what="the request in flight")
    assert seen["route"] == "/v1/messages"
    assert seen["session"] == client["session"]
    assert seen["stage"] in ("queued", "waiting_for_client")
    assert seen["waited_ms"] >= 0
    assert seen["request_id"].startswith("req_")
    worker.join(15)
    assert answered and answered[0].startswith("echo:")

    def recent() -> dict | None:
        snapshot = status(target)
        return next((r for r in snapshot["recent"] if r["request_id"] == seen["request_id"]), None)

    wait_until(lambda: recent() is not None, timeout=10, what="the request in the recent list")
    done = recent()
    assert done is not None
    assert done["status"] == 200 and done["route"] == "/v1/messages" and done["model"] == OK["model"]
    assert done["latency_ms"] >= 1500
    assert done["input_tokens"] > 0 and done["output_tokens"] > 0
    assert "prompt" not in done  # prompts only with --log-prompts
    after = status(target)
    assert not [r for r in after["in_flight"] if r["request_id"] == seen["request_id"]]
    totals = next(m for m in after["models"] if m["model"] == OK["model"])
    assert totals["requests"] >= 1 and totals["output_tokens"] >= done["output_tokens"]


def test_refused_requests_are_listed_with_their_status(target: Deployment) -> None:
    bad = target.http.post("/v1/messages", json={"model": "claude-status-bad", "messages": []})
    assert bad.status_code == 400
    request_id = bad.headers["request-id"]
    wait_until(lambda: any(r["request_id"] == request_id for r in status(target)["recent"]), what="the refusal listed")
    listed = next(r for r in status(target)["recent"] if r["request_id"] == request_id)
    assert listed["status"] == 400


def test_prompts_are_listed_only_with_log_prompts(kind: str, deployments: list[Deployment]) -> None:
    deployment = deploy(kind, extra_args=["--log-prompts"])
    deployments.append(deployment)
    message = deployment.anthropic().messages.create(**{**OK, "messages": [{"role": "user", "content": "é" * 300}]})
    assert message.content[0].text.startswith("echo:")

    def listed() -> dict | None:
        return next((r for r in status(deployment)["recent"] if r["model"] == OK["model"]), None)

    wait_until(lambda: listed() is not None, what="the request listed")
    snapshot = status(deployment)
    assert snapshot["log_prompts"] is True
    assert listed()["prompt"] == "é" * 200 + "…"


def test_status_needs_the_key_but_the_page_does_not(kind: str, deployments: list[Deployment]) -> None:
    not_on_worker(kind, "on the worker any token opens its own namespace; /status without one is tested below")
    deployment = deploy(kind, api_key=KEY)
    deployments.append(deployment)
    missing = httpx.get(f"{deployment.base_url}/status", timeout=5)
    assert missing.status_code == 401
    assert "API key" in missing.json()["error"]["message"]
    assert httpx.get(f"{deployment.base_url}/status", headers={"x-api-key": "wrong"}, timeout=5).status_code == 401
    assert status(deployment)["clients"]
    # The page holds no data: it is served without a key, and asks for one.
    page = httpx.get(f"{deployment.base_url}/", headers={"accept": BROWSER_ACCEPT}, timeout=5)
    assert page.status_code == 200 and 'id="key-form"' in page.text


def test_worker_status_needs_a_token_and_shows_only_its_namespace(kind: str, deployments: list[Deployment]) -> None:
    if kind != "worker":
        pytest.skip("the worker's token namespaces")
    first = deploy(kind)
    second = deploy(kind)
    deployments.extend([first, second])
    assert httpx.get(f"{first.base_url}/status", timeout=5).status_code == 401
    first.anthropic().messages.create(**OK)
    wait_until(lambda: bool(status(first)["recent"]), what="the request listed")
    assert status(second)["recent"] == []
    assert [c["session"] for c in status(second)["clients"]] != [c["session"] for c in status(first)["clients"]]


def test_status_is_not_a_route_for_other_methods(target: Deployment) -> None:
    response = target.http.post("/status", json={})
    assert response.status_code == 405
    assert "message" in response.json()["error"]


def test_a_caller_that_goes_away_is_listed_as_499(target: Deployment) -> None:
    not_on_worker(target.kind, "under wrangler dev the Worker's handler runs to its end when the caller leaves (observed), so it lists the answer's status, not 499")
    model = "claude-status-gone"
    request = {**OK, "model": model, "messages": [{"role": "user", "content": "[slow:1.5] leaving early"}]}
    with pytest.raises(anthropic.APITimeoutError):
        target.anthropic(timeout=0.4).messages.create(**request)

    def listed() -> dict | None:
        return next((r for r in status(target)["recent"] if r["model"] == model), None)

    wait_until(lambda: listed() is not None, what="the abandoned request listed")
    assert listed()["status"] == 499
    assert not [r for r in status(target)["in_flight"] if r["model"] == model]
