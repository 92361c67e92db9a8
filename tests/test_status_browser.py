"""The status page in a real browser: Debian's headless chromium, driven by its chromedriver
through selenium, against native http and the worker. The page must load without console
errors, show the connected client, a request in flight and then in the recent list; the
screenshot is kept as a CI artifact (.cache/artifacts/status-page.png)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ROOT, ClientSpec, Deployment, deploy

# Debian's packages by default (scripts/test-all installs them); CI runners that ship their
# own Chrome name it and its driver here.
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
ARTIFACTS = ROOT / ".cache" / "artifacts"


@pytest.fixture
def browser() -> Iterator[object]:
    if not (CHROMEDRIVER.exists() and CHROMIUM.exists()):
        # scripts/test-all installs both and requires the test; elsewhere it says why it skips.
        if os.environ.get("SAMPLING2API_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,680"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager must not download anything.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: object, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text  # type: ignore[attr-defined]


def wait_for(driver: object, predicate, what: str, timeout: float = 15) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(), message=f"waiting for {what}")


@pytest.mark.parametrize("kind", ["http", "worker"])
def test_the_page_shows_clients_requests_in_flight_and_recent(kind: str, browser: object, deployments: list[Deployment]) -> None:
    # Named as VS Code names itself, so the page shows the hint VS Code users need.
    deployment = deploy(kind, [ClientSpec(name="Visual Studio Code")])
    deployments.append(deployment)
    driver = browser
    driver.get(f"{deployment.base_url}/")  # type: ignore[attr-defined]
    if deployment.kind == "worker":
        # The worker's page asks for the token (kept in the tab's sessionStorage, never in a URL).
        from selenium.webdriver.common.by import By

        wait_for(driver, lambda: driver.find_element(By.ID, "login").is_displayed(), "the key form")  # type: ignore[attr-defined]
        driver.find_element(By.ID, "key").send_keys(deployment.api_key)  # type: ignore[attr-defined]
        driver.find_element(By.CSS_SELECTOR, "#key-form button").click()  # type: ignore[attr-defined]
        assert deployment.api_key not in driver.current_url  # type: ignore[attr-defined]
    wait_for(driver, lambda: "Visual Studio Code" in text_of(driver, "clients"), "the connected client")
    assert "sampling2api" in text_of(driver, "meta")

    answered: list[str] = []
    request = {"model": "claude-browser", "max_tokens": 5, "messages": [{"role": "user", "content": "[slow:2] from the browser test"}]}
    caller = threading.Thread(target=lambda: answered.append(deployment.anthropic().messages.create(**request).content[0].text))
    caller.start()
    wait_for(driver, lambda: "claude-browser" in text_of(driver, "in-flight"), "the request in flight")
    in_flight = text_of(driver, "in-flight")
    assert "/v1/messages" in in_flight
    # VS Code has answered nothing of this session yet: its consent notification may be what
    # the request waits for, and the page says so.
    wait_for(driver, lambda: "allow this MCP server to use a model" in text_of(driver, "in-flight"), "the consent hint for VS Code users")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The in-flight view is the interesting one; the native page is docs/status-page.png (docs/operations.md).
    driver.save_screenshot(str(ARTIFACTS / f"status-page-{kind}-in-flight.png"))  # type: ignore[attr-defined]
    caller.join(20)
    assert answered and answered[0].startswith("echo:")
    wait_for(driver, lambda: "claude-browser" in text_of(driver, "recent"), "the request in the recent list")
    wait_for(driver, lambda: "claude-browser" not in text_of(driver, "in-flight"), "the in-flight list emptied")
    assert "200" in text_of(driver, "recent")
    assert "claude-browser" in text_of(driver, "models")
    driver.save_screenshot(str(ARTIFACTS / f"status-page-{kind}.png"))  # type: ignore[attr-defined]
    if kind == "http":
        shutil.copyfile(ARTIFACTS / "status-page-http-in-flight.png", ARTIFACTS / "status-page.png")
        # Dark mode follows the system, and a phone's width needs no sideways page scroll.
        background = "return getComputedStyle(document.body).backgroundColor"
        assert driver.execute_script(background) == "rgb(250, 250, 250)"  # type: ignore[attr-defined]
        driver.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        )
        assert driver.execute_script(background) == "rgb(21, 22, 26)"  # type: ignore[attr-defined]
        driver.set_window_size(390, 844)  # type: ignore[attr-defined]
        wait_for(driver, lambda: driver.execute_script("return window.innerWidth") <= 400, "the phone width")  # type: ignore[attr-defined]
        overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        assert driver.execute_script(overflow) <= 0  # type: ignore[attr-defined]
        driver.save_screenshot(str(ARTIFACTS / "status-page-phone-dark.png"))  # type: ignore[attr-defined]

    logs = driver.get_log("browser")  # type: ignore[attr-defined]
    errors = [entry for entry in logs if entry["level"] == "SEVERE"]
    if deployment.kind == "worker":
        # The first poll without a token is answered 401 by design, and the browser logs that.
        errors = [entry for entry in errors if not ("/status - Failed to load resource" in entry["message"] and "status of 401" in entry["message"])]
    assert errors == [], errors
