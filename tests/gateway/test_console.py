"""The security console without a browser: sessions, cookies, CSRF, roles, escaping, and pages that never leak."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from modelshield.findings import Severity
from modelshield.gateway.console import CONSOLE_CSP, ConsoleSessions
from modelshield.gateway.identity import Principal, Role
from modelshield.monitoring.interface import Alert

from .conftest import Running, Site, make_key

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_VALUE = '"><img src=x onerror=alert(2)>'
PAGES = ["/console/", "/console/live", "/console/incidents", "/console/review", "/console/clients", "/console/drift"]
PAGES += ["/console/models", "/console/incidents?severity=high&client=%3Cscript%3E"]


def _config(site: Site, **extra: dict[str, Any]) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "monitoring": {"enabled": True, "detectors": [], "drift_window": 200, "drift_step": 100},
        "response": {"policy": "response.toml"},
    }
    (site.root / "response.toml").write_text(
        '[[rule]]\nname = "suspend after review"\naction = "suspend"\napproval = true\n'
    )
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    sections["monitoring"].setdefault("watermark", {"rate": 0.0})
    return site.config(sections)


_OPEN: list[httpx.Client] = []


def _client(running: Running) -> httpx.Client:
    """An HTTP client with a cookie jar, closed after the test (by the ``console`` fixture)."""
    client = httpx.Client(base_url=running.url, timeout=10, follow_redirects=False)
    _OPEN.append(client)
    return client


def _login(running: Running, key: str) -> httpx.Client:
    """A client logged in to the console with ``key`` (its cookies hold the session)."""
    client = _client(running)
    form = client.get("/console/login")
    assert form.status_code == 200
    response = client.post("/console/login", data={"key": key, "csrf": _csrf(form.text)})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/"
    return client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


@pytest.fixture
def console(site: Site, serve: Callable[..., Running]) -> Iterator[tuple[Running, dict[str, str]]]:
    running = serve(_config(site))
    keys = {
        "admin": make_key(site, "root", "admin"),
        "analyst": make_key(site, "ana", "analyst"),
        "client": make_key(site, "mallory"),
    }
    yield running, keys
    while _OPEN:
        _OPEN.pop().close()


def _infer(running: Running, key: str, x: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return httpx.post(
        f"{running.url}/v2/models/phishing-lr/infer", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _reference(site: Site) -> np.ndarray:
    return pd.read_csv(site.reference).drop(columns=["label"]).to_numpy(dtype=np.float64)


def test_logged_out_pages_redirect_to_login(console: tuple[Running, dict[str, str]]) -> None:
    running, _ = console
    with httpx.Client(base_url=running.url, timeout=10) as client:
        for path in [*PAGES, "/console/incidents/1", "/console/models/report?name=x&version=1"]:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/console/login"
        login = client.get("/console/login")
        assert login.status_code == 200 and 'type="password"' in login.text
        assert login.headers["content-security-policy"] == CONSOLE_CSP
        assert client.get("/console/static/console.css").status_code == 200


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(console: tuple[Running, dict[str, str]]) -> None:
    running, keys = console
    client = _client(running)
    form = client.get("/console/login")
    login_cookie = form.headers["set-cookie"].lower()
    assert "httponly" in login_cookie and "samesite=strict" in login_cookie
    response = client.post("/console/login", data={"key": keys["analyst"], "csrf": _csrf(form.text)})
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("modelshield_console="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
    assert "secure" not in flags  # plain HTTP here; over TLS the cookie is Secure
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40 and keys["analyst"] not in cookie
    page = client.get("/console/")
    assert page.status_code == 200 and "Overview" in page.text and "ana" in page.text
    assert page.headers["content-security-policy"] == CONSOLE_CSP
    assert "default-src 'none'; frame-ancestors 'none'" not in page.headers.get_list("content-security-policy")
    # The session lives in the database as a digest only.
    from sqlalchemy import create_engine, text

    engine = create_engine(running.gateway.config.database_url)
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(text("SELECT * FROM console_sessions"))]
    engine.dispose()
    assert stored and not any(token in str(row) or keys["analyst"] in str(row) for row in stored)
    logout = client.post("/console/logout", data={"csrf": _csrf(page.text)})
    assert logout.status_code == 303 and logout.headers["location"] == "/console/login"
    client.cookies.set("modelshield_console", token, path="/console")  # the old cookie, replayed
    assert client.get("/console/").status_code == 303


def test_wrong_and_client_keys_cannot_log_in(console: tuple[Running, dict[str, str]]) -> None:
    running, keys = console
    client = _client(running)
    form = client.get("/console/login")
    wrong = client.post("/console/login", data={"key": "msk_" + "0" * 16 + "_" + "A" * 43, "csrf": _csrf(form.text)})
    assert wrong.status_code == 401 and "not accepted" in wrong.text
    form = client.get("/console/login")
    refused = client.post("/console/login", data={"key": keys["client"], "csrf": _csrf(form.text)})
    assert refused.status_code == 403 and "client keys cannot open the console" in refused.text
    assert "modelshield_console=" not in refused.headers.get("set-cookie", "")
    assert client.get("/console/").status_code == 303


def test_posts_without_the_csrf_token_are_refused(console: tuple[Running, dict[str, str]]) -> None:
    running, keys = console
    anonymous = _client(running)
    anonymous.get("/console/login")
    assert anonymous.post("/console/login", data={"key": keys["admin"]}).status_code == 403
    admin = _login(running, keys["admin"])
    for path, data in [
        ("/console/logout", {}),
        ("/console/review/1", {"decision": "approve", "reason": "x"}),
        ("/console/clients/suspend", {"client": "mallory", "reason": "x"}),
        ("/console/models/rollback", {"name": "x", "confirm": "yes"}),
    ]:
        for token in (None, "forged"):
            sent = data if token is None else {**data, "csrf": token}
            response = admin.post(path, data=sent)
            assert response.status_code == 403, (path, token)
            assert "security token" in response.text
    assert _infer(running, keys["client"], _reference_row(running)).status_code == 200  # nothing was suspended
    assert admin.get("/console/").status_code == 200  # and the session survived


def _reference_row(running: Running) -> np.ndarray:
    reference = running.gateway.deployment.model.reference
    return np.asarray(reference.x[:1], dtype=np.float64)


def test_sessions_expire_when_idle_and_absolutely() -> None:
    now = [1000.0]
    sessions = ConsoleSessions("sqlite:///:memory:", idle_s=60.0, absolute_s=300.0, clock=lambda: now[0])
    principal = Principal("ana", Role.ANALYST, "0123456789abcdef", "api-key")
    token, session = sessions.create(principal)
    assert sessions.get(token) is not None and sessions.get("x" + token) is None
    now[0] += 59.0
    assert sessions.get(token) is not None  # a view keeps it alive
    now[0] += 59.0
    assert sessions.get(token, touch=False) is not None
    now[0] += 59.0  # polling (touch=False) did not keep it alive: idle for 118 s now
    assert sessions.get(token) is None
    token, _ = sessions.create(principal)
    for _ in range(11):
        now[0] += 30.0
        alive = sessions.get(token)
    assert alive is None  # used every 30 s, but 300 s after its login it ends
    assert session.csrf and session.csrf != token
    sessions.close()


def test_a_revoked_key_ends_its_sessions(site: Site, console: tuple[Running, dict[str, str]]) -> None:
    running, keys = console
    analyst = _login(running, keys["analyst"])
    assert analyst.get("/console/").status_code == 200
    key_id = keys["analyst"].split("_")[1]
    running.gateway.keys.revoke(key_id)
    assert analyst.get("/console/").status_code == 303


def _hostile(running: Running) -> None:
    """Alerts, an incident, a pending action and a drift result that carry hostile client names and values."""
    from modelshield.gateway.response import ActionKind, Rule
    from modelshield.monitoring.drift import ColumnDrift, ColumnKind, DriftResult

    monitor = running.gateway.monitor
    outcome = monitor.alerts.add(
        Alert(
            time=time.time(),
            client=HOSTILE_NAME,
            detector="extraction",
            technique="AML.T0024.002",
            severity=Severity.HIGH,
            score=3.0,
            threshold=1.0,
            summary=f"A summary with {HOSTILE_VALUE}",
            evidence={"feature": HOSTILE_VALUE, HOSTILE_NAME: [HOSTILE_VALUE, 1.5]},
        )
    )
    assert outcome.incident is not None
    rule = Rule(name=f"rule {HOSTILE_VALUE}", action=ActionKind.SUSPEND, approval=True)
    assert monitor.actions.propose(outcome.incident, rule, now=time.time()) is not None
    column = ColumnDrift(
        name=HOSTILE_NAME,
        kind=ColumnKind.NUMERIC,
        test="ks",
        statistic=0.5,
        p_value=1e-9,
        q_value=1e-8,
        effect=0.5,
        psi=1.2,
        drifted=True,
    )
    other = ColumnDrift(
        name=HOSTILE_VALUE,
        kind=ColumnKind.NUMERIC,
        test="ks",
        statistic=0.1,
        p_value=0.2,
        q_value=0.3,
        effect=0.1,
        psi=0.1,
        drifted=False,
    )
    monitor.last_drift = DriftResult(
        columns=(column, other), prediction=None, n_reference=1000, n_current=200, alpha=0.01, min_effect=0.05
    )


def test_every_page_escapes_hostile_input_and_shows_no_secret_or_traceback(
    site: Site, console: tuple[Running, dict[str, str]]
) -> None:
    running, keys = console
    _hostile(running)
    for row in _reference(site)[:5]:
        assert _infer(running, keys["client"], row[None]).status_code == 200
    incident = running.gateway.monitor.alerts.incidents(limit=1)[0]
    for who in ("analyst", "admin"):
        browser = _login(running, keys[who])
        for path in [*PAGES, f"/console/incidents/{incident.id}", "/console/incidents/999999", "/console/nope"]:
            page = browser.get(path)
            assert page.status_code in {200, 404}, path
            text = page.text
            assert HOSTILE_NAME not in text and "<img src=x" not in text, path
            assert "Traceback" not in text and 'File "' not in text, path
            for secret in keys.values():
                assert secret not in text and secret[21:] not in text, path
        review = browser.get("/console/review").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in review
        drift = browser.get("/console/drift").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in drift and "&#34;&gt;&lt;img src=x" in drift
        shown = browser.get(f"/console/incidents/{incident.id}").text
        assert "<svg" in shown and "&lt;script&gt;" in shown
    missing = browser.get("/console/incidents/999999")
    assert missing.status_code == 404 and "There is no incident 999999" in missing.text


def test_analysts_read_and_admins_act_on_the_review_queue(site: Site, console: tuple[Running, dict[str, str]]) -> None:
    from modelshield.gateway.response import ActionKind, Rule

    running, keys = console
    row = _reference(site)[:1]
    monitor = running.gateway.monitor
    outcome = monitor.alerts.add(
        Alert(
            time=time.time(),
            client="mallory",
            detector="extraction",
            technique="AML.T0024.002",
            severity=Severity.HIGH,
            score=2.0,
            threshold=1.0,
            summary="Synthetic queries.",
        )
    )
    assert outcome.incident is not None
    rule = Rule(name="suspend after review", action=ActionKind.SUSPEND, approval=True)
    action = monitor.actions.propose(outcome.incident, rule, now=time.time())
    assert action is not None and action.status == "pending"
    analyst = _login(running, keys["analyst"])
    page = analyst.get("/console/review")
    assert "Only an admin can decide" in page.text and 'value="approve"' not in page.text
    refused = analyst.post(
        f"/console/review/{action.id}", data={"csrf": _csrf(page.text), "decision": "approve", "reason": "x"}
    )
    assert refused.status_code == 403 and "Only an admin" in refused.text
    assert monitor.actions.get(action.id).status == "pending"
    admin = _login(running, keys["admin"])
    page = admin.get("/console/review")
    no_reason = admin.post(f"/console/review/{action.id}", data={"csrf": _csrf(page.text), "decision": "approve"})
    assert no_reason.status_code == 400 and monitor.actions.get(action.id).status == "pending"
    approved = admin.post(
        f"/console/review/{action.id}",
        data={"csrf": _csrf(page.text), "decision": "approve", "reason": "confirmed extraction"},
    )
    assert approved.status_code == 303
    assert monitor.actions.get(action.id).status == "active"
    assert _infer(running, keys["client"], row).status_code == 403
    again = admin.post(
        f"/console/review/{action.id}", data={"csrf": _csrf(page.text), "decision": "deny", "reason": "late"}
    )
    assert again.status_code == 409 and "not pending" in again.text
    # Restore from the clients page lifts it; suspend there suspends again.
    clients = admin.get("/console/clients")
    assert "suspended" in clients.text
    restored = admin.post(
        "/console/clients/restore", data={"csrf": _csrf(clients.text), "client": "mallory", "reason": "cleared"}
    )
    assert restored.status_code == 200 and "is restored" in restored.text
    assert _infer(running, keys["client"], row).status_code == 200
    suspended = admin.post(
        "/console/clients/suspend", data={"csrf": _csrf(clients.text), "client": "mallory", "reason": "abuse"}
    )
    assert suspended.status_code == 200 and "is suspended" in suspended.text
    assert _infer(running, keys["client"], row).status_code == 403
    analyst_suspend = analyst.post(
        "/console/clients/restore", data={"csrf": _csrf(analyst.get("/console/clients").text), "client": "mallory"}
    )
    assert analyst_suspend.status_code == 403
    from modelshield.gateway.auditlog import read_records

    records = read_records(running.gateway.config.database_url, limit=10_000)
    decisions = [" ".join(r["reasons"]) for r in records if r["kind"] == "response"]
    # the decision and the reviewer's reason are one record, as the admin API writes it
    assert any("by root" in d and "reviewer's reason: confirmed extraction" in d for d in decisions), decisions
    assert any("lifted" in d and "reviewer's reason: cleared" in d for d in decisions), decisions


def test_models_page_without_a_registry_says_how_to_configure_one(console: tuple[Running, dict[str, str]]) -> None:
    running, keys = console
    admin = _login(running, keys["admin"])
    page = admin.get("/console/models")
    assert page.status_code == 200 and "No registry is configured" in page.text
    refused = admin.post("/console/models/rollback", data={"csrf": _csrf(page.text), "name": "x", "confirm": "yes"})
    assert refused.status_code == 400


def test_the_console_can_be_turned_off(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(_config(site, console={"enabled": False}))
    response = httpx.get(f"{running.url}/console/login", timeout=10)
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")


def test_models_are_promoted_and_rolled_back_with_a_confirmation_step(
    site: Site, serve: Callable[..., Running]
) -> None:
    from modelshield.registry import Registry

    from .test_swap import _version

    root = site.root / "registry"
    with Registry(root) as registry:
        v1 = _version(site, registry, 1.0)
        v2 = _version(site, registry, 0.001)
        registry.promote("phishing", v1, public_key=site.publisher_pub, actor="test")
        unsigned = registry.add("phishing", site.model, actor="test").version
    running = serve(
        _config(site, model={"file": None, "registry": "phishing@production", "registry_dir": str(root), "poll_s": 60})
    )
    keys = {"admin": make_key(site, "root", "admin"), "analyst": make_key(site, "ana", "analyst")}
    try:
        analyst = _login(running, keys["analyst"])
        page = analyst.get("/console/models")
        assert page.status_code == 200 and "phishing@production" in page.text and "Promote v" not in page.text
        assert page.text.count("/console/models/report?") == 2 and "unsigned" in page.text
        report = analyst.get(f"/console/models/report?name=phishing&version={v1}")
        assert report.status_code == 200 and "<html" in report.text.lower()
        assert "style-src 'unsafe-inline'" in report.headers["content-security-policy"]
        assert analyst.get(f"/console/models/report?name=phishing&version={unsigned}").status_code == 404
        analyst_csrf = _csrf(page.text)
        refused = analyst.post("/console/models/rollback", data={"csrf": analyst_csrf, "name": "phishing"})
        assert refused.status_code == 403
        admin = _login(running, keys["admin"])
        csrf = _csrf(admin.get("/console/models").text)
        confirm = admin.post("/console/models/promote", data={"csrf": csrf, "name": "phishing", "version": str(v2)})
        assert confirm.status_code == 200 and "Yes, promote" in confirm.text
        with Registry(root) as registry:
            assert registry.show("phishing", "production").version == v1  # nothing happens before the confirmation
        done = admin.post(
            "/console/models/promote",
            data={"csrf": csrf, "name": "phishing", "version": str(v2), "confirm": "yes"},
        )
        assert done.status_code == 200 and f"phishing v{v2} is now in production and served" in done.text
        assert running.gateway.deployment.model.version == str(v2)
        bad = admin.post(
            "/console/models/promote",
            data={"csrf": csrf, "name": "phishing", "version": str(unsigned), "confirm": "yes"},
        )
        assert bad.status_code == 409 and "Refused" in bad.text and "sign" in bad.text.lower()
        back = admin.post("/console/models/rollback", data={"csrf": csrf, "name": "phishing", "confirm": "yes"})
        assert back.status_code == 200 and f"phishing v{v1} is now in production" in back.text
        assert running.gateway.deployment.model.version == str(v1)
    finally:
        while _OPEN:
            _OPEN.pop().close()


def test_the_session_cookie_is_secure_over_tls(console: tuple[Running, dict[str, str]]) -> None:
    """Behind a TLS proxy on the same host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1), cookies are Secure."""
    running, keys = console
    client = _client(running)
    client.headers["X-Forwarded-Proto"] = "https"
    form = client.get("/console/login")
    assert "secure" in form.headers["set-cookie"].lower()
    # httpx keeps Secure cookies for https only: hand the login cookie back by hand over this plain connection.
    client.cookies.set("modelshield_console_login", form.cookies["modelshield_console_login"], path="/console/login")
    response = client.post("/console/login", data={"key": keys["admin"], "csrf": _csrf(form.text)})
    assert response.status_code == 303, response.text
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("modelshield_console="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert {"secure", "httponly", "samesite=strict"} <= set(flags)


def test_an_internal_error_is_a_plain_page_without_a_stack_trace(
    console: tuple[Running, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, keys = console
    analyst = _login(running, keys["analyst"])

    def broken() -> Any:
        raise RuntimeError("secret internals at /srv/modelshield/db.py line 12")

    monkeypatch.setattr(running.gateway.keys, "list", broken)
    page = analyst.get("/console/clients")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "could not show this page" in page.text and page.headers["x-request-id"] in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text and "RuntimeError" not in page.text
