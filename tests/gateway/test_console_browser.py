"""The security console in a real browser (Debian's chromium driven by Playwright; nothing is downloaded).

A scripted extraction attack goes through a real gateway; an admin logs in, sees the incident, approves the
suspension waiting in the review queue, and the thief's next request is refused. Every page is photographed at
1280 and 390 px, and must fit the width (no sideways scrolling at 390 px). The pictures go to a temporary folder;
with ``MODELSHIELD_SCREENSHOTS=1`` they replace docs/images/console/ (what docs/console.md shows), so that an
ordinary test run leaves the checkout clean:

    MODELSHIELD_SCREENSHOTS=1 .venv/bin/python -m pytest tests/gateway/test_console_browser.py
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from .conftest import Running, Site, make_key

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images" / "console"
WIDTHS = (1280, 390)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: docs/images/console/ with MODELSHIELD_SCREENSHOTS=1, else a temporary folder."""
    if os.environ.get("MODELSHIELD_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


def _infer(running: Running, key: str, x: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return httpx.post(
        f"{running.url}/v2/models/phishing-lr/infer", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _thief(running: Running, key: str, reference: np.ndarray, budget: int) -> int:
    """Synthetic queries, one row per request, each feature drawn from the values it takes in the reference (the
    random-query thief of tests/gateway/test_monitoring.py); stops at the first refusal. Queries answered."""
    rng = np.random.default_rng(7)
    values = [np.unique(column) for column in reference.T]
    for i in range(budget):
        response = _infer(running, key, np.array([[rng.choice(v) for v in values]]))
        if response.status_code != 200:
            return i
    return budget


def _shoot(page: Any, shots: Path, name: str, url: str) -> None:
    """Screenshots of ``url`` at each width, full page, into SHOTS/NAME-WIDTH.png; the page must fit each width."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        page.wait_for_load_state("load")
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at a {width} px window: it scrolls sideways"
        assert (shots / f"{name}-{width}.png").stat().st_size > 5000
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.slow  # the attack, then the console in Chromium, end to end (about 35 s)
def test_an_admin_sees_the_incident_approves_the_suspension_and_the_thief_is_refused(
    site: Site, serve: Callable[..., Running], browser: Any, shots: Path
) -> None:
    from modelshield.registry import Registry

    from .test_swap import _version

    root = site.root / "registry"
    with Registry(root) as registry:  # served from a registry stage, so that the models page has versions to show
        v1 = _version(site, registry, 1.0)
        _version(site, registry, 0.001)
        registry.promote("phishing", v1, public_key=site.publisher_pub, actor="publisher")
    policy = site.root / "response.toml"
    policy.write_text('[[rule]]\nname = "suspend after review"\naction = "suspend"\napproval = true\n')
    config = site.config(
        {
            "monitoring": {
                "enabled": True,
                "detectors": ["extraction"],
                "drift_window": 200,
                "drift_step": 100,
                "watermark": {"rate": 0.0},
            },
            "response": {"policy": "response.toml"},
            "model": {"file": None, "registry": "phishing@production", "registry_dir": str(root), "poll_s": 60},
        }
    )
    running = serve(config)
    reference = pd.read_csv(site.reference).drop(columns=["label"]).to_numpy(dtype=np.float64)
    thief, alice = make_key(site, "mallory"), make_key(site, "alice")
    admin, _ = make_key(site, "root", "admin"), make_key(site, "ana", "analyst")
    for start in range(0, 300, 60):  # ordinary traffic first: a baseline, and drift windows
        assert _infer(running, alice, reference[start : start + 60]).status_code == 200
    answered = _thief(running, thief, reference, budget=150)  # the extraction detector alarms within 100 queries
    assert answered == 150, "the thief was refused before anyone approved anything"
    monitor = running.gateway.monitor
    deadline = time.monotonic() + 10
    # (the drift monitor may have asked for a review of the model too: the thief's action is the one wanted)
    while not (pending := [a for a in monitor.actions.actions(status="pending") if a.actor == "mallory"]):
        monitor.flush()
        assert time.monotonic() < deadline, "no action waits for review after the attack"
        time.sleep(0.1)
    assert pending[0].kind.value == "suspend"
    incident_id = pending[0].incident_id

    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    url = running.url
    # Logged out, every page leads to the login.
    page.goto(f"{url}/console/incidents")
    assert page.url == f"{url}/console/login"
    _shoot(page, shots, "login", f"{url}/console/login")
    # A CSRF-less POST (the browser's own cookies, no token) is refused.
    page.get_by_label("API key").fill(admin)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/console/")
    assert page.get_by_role("heading", name="Overview").is_visible()
    forged = context.request.post(f"{url}/console/review/{pending[0].id}", form={"decision": "approve", "reason": "x"})
    assert forged.status == 403
    assert monitor.actions.get(pending[0].id).status == "pending"
    # The incident, from the list.
    page.goto(f"{url}/console/incidents?technique=AML.T0024.002")
    page.get_by_role("link", name=f"#{incident_id}").first.click()
    page.wait_for_url(f"{url}/console/incidents/{incident_id}")
    assert page.get_by_role("heading", name=f"Incident #{incident_id}: mallory").is_visible()
    assert page.locator("svg.chart").count() >= 2
    for name, path in [
        ("overview", "/console/"),
        ("incidents", "/console/incidents"),
        ("incident", f"/console/incidents/{incident_id}"),
        ("review", "/console/review"),
        ("clients", "/console/clients"),
        ("drift", "/console/drift"),
        ("models", "/console/models"),
    ]:
        _shoot(page, shots, name, f"{url}{path}")
    dark = browser.new_context(viewport={"width": 390, "height": 900}, color_scheme="dark")
    dark.add_cookies(context.cookies())
    dark_page = dark.new_page()
    dark_page.goto(f"{url}/console/incidents/{incident_id}")
    dark_page.screenshot(path=str(shots / "incident-dark-390.png"), full_page=True)
    dark.close()
    # Approve the suspension with a reason, from the keyboard: the reason, then Tab to the approve button.
    page.goto(f"{url}/console/review")
    page.get_by_label(f"Reason for the decision on action {pending[0].id}").fill("Synthetic queries: extraction.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Approve suspend"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{url}/console/review"
    assert monitor.actions.get(pending[0].id).status == "active"
    assert page.locator(f"#action-{pending[0].id}").count() == 0  # the approved suspension waits no more
    refused = _infer(running, thief, reference[:1])
    assert refused.status_code == 403 and "suspended" in refused.json()["error"]
    assert _infer(running, alice, reference[:1]).status_code == 200
    # The live part of the overview polls without breaking the content security policy.
    page.goto(f"{url}/console/")
    page.wait_for_timeout(5300)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert not errors, errors  # a blocked style or script, or a missing file, would show here
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{url}/console/login")
    page.goto(f"{url}/console/review")
    assert page.url == f"{url}/console/login"
    context.close()
