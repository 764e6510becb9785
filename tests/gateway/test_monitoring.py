"""Monitoring inside the gateway, end to end: a real server, real keys, real attacks' traffic, the response policy,
the review queue, the audit log, the CLI, drift and feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from modelshield.cli import main
from modelshield.monitoring.watermark import WatermarkKey

from .conftest import Running, Site, make_key


def _reference(site: Site) -> np.ndarray:
    return pd.read_csv(site.reference).drop(columns=["label"]).to_numpy(dtype=np.float64)


def _infer(running: Running, key: str, x: np.ndarray, **extra: Any) -> httpx.Response:
    body = {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        **extra,
    }
    return httpx.post(
        f"{running.url}/v2/models/phishing-lr/infer", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _get(running: Running, key: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{running.url}{path}", headers={"Authorization": f"Bearer {key}"}, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json() if "json" in response.headers["content-type"] else response.text


def _config(site: Site, *, detectors: list[str], extra: dict[str, dict[str, Any]] | None = None) -> Path:
    WatermarkKey.generate(site.root / "keys" / "watermark.key", overwrite=True)
    sections: dict[str, dict[str, Any]] = {
        "monitoring": {
            "enabled": True,
            "detectors": detectors,
            "drift_window": 200,
            "drift_step": 100,
            "watermark": {"rate": 0.05, "key": "keys/watermark.key"},
        },
        "alerts": {"jsonl": "alerts.jsonl"},
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    return site.config(sections)


def _thief_until_refused(running: Running, key: str, reference: np.ndarray, budget: int) -> tuple[int, str]:
    """Synthetic queries, one per request: each feature drawn independently from the values it takes in the
    reference (so they pass the input schema), the way a random-query thief who knows the schema builds them:
    (queries answered with probabilities, then what happened: "label-only", the status of a refusal, or "")."""
    rng = np.random.default_rng(7)
    values = [np.unique(column) for column in reference.T]
    for i in range(budget):
        row = np.array([[rng.choice(v) for v in values]])
        response = _infer(running, key, row)
        if response.status_code != 200:
            return i, str(response.status_code)
        if [o["name"] for o in response.json()["outputs"]] == ["label"]:
            return i, "label-only"
    return budget, ""


@pytest.mark.slow  # a whole extraction attack through the real gateway (about 40 s)
def test_a_synthetic_query_thief_is_suspended_and_every_step_is_recorded(
    site: Site, serve: Callable[..., Running], capsys: pytest.CaptureFixture[str]
) -> None:
    running = serve(_config(site, detectors=["extraction", "evasion", "probing"]))
    reference = _reference(site)
    thief, alice, analyst = make_key(site, "mallory"), make_key(site, "alice"), make_key(site, "ana", "analyst")
    answered, effect = _thief_until_refused(running, thief, reference, budget=300)
    assert effect == "label-only", f"no response after {answered} queries"  # one detector alone: labels only
    # A second detector agrees (here an analyst's tool reports PRADA too): the incident grows and the thief is
    # suspended, on this worker and every other one.
    from modelshield.findings import Severity
    from modelshield.monitoring.interface import Alert

    running.gateway.monitor.submit(
        [
            Alert(
                time=time.time(),
                client="mallory",
                detector="extraction.prada",
                technique="AML.T0024.002",
                severity=Severity.HIGH,
                score=1.0,
                threshold=0.5,
                summary="PRADA alarm.",
            )
        ],
        reference[:1],
    )
    running.gateway.monitor.flush()
    refused = _infer(running, thief, reference[:1])
    assert refused.status_code == 403 and "suspended" in refused.json()["error"]
    for row in reference[:40]:  # a benign client of the owner's own kind is served throughout
        assert _infer(running, alice, row[None]).status_code == 200
    alerts = _get(running, analyst, "/admin/alerts")["alerts"]
    assert any(a["client"] == "mallory" and a["technique"] == "AML.T0024.002" for a in alerts)
    assert not any(a["client"] == "alice" for a in alerts)
    incidents = _get(running, analyst, "/admin/incidents")["incidents"]
    assert incidents[0]["actor"] == "mallory" and incidents[0]["risk"] >= 50
    active = _get(running, analyst, "/admin/review", status="active")["actions"]
    assert sorted((a["actor"], a["action"]) for a in active) == [("mallory", "label-only"), ("mallory", "suspend")]
    records = _get(running, analyst, "/admin/log", limit=10_000)["records"]
    kinds = {r["kind"] for r in records if r["client"] == "mallory"}
    assert {"infer", "alert", "response"} <= kinds
    assert "modelshield_alerts_total" in _get(running, analyst, "/metrics")
    lines = (site.root / "alerts.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["alert"]["client"] == "mallory"
    # The analyst's view from the command line, then a reviewer lifts the suspension: served again within 1 s.
    config = str(site.root / "gateway.toml")
    capsys.readouterr()
    assert main(["gateway", "alerts", "--config", config, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["incidents"]
    assert listed[0]["actor"] == "mallory" and listed[0]["alert_list"]
    assert main(["gateway", "alerts", "--config", config]) == 0
    assert "mallory" in capsys.readouterr().out
    for action in active:
        assert main(["gateway", "review", "lift", "--config", config, str(action["id"])]) == 0
    deadline = time.monotonic() + 1.0
    while (answer := _infer(running, thief, reference[:1])).status_code != 200 or len(
        answer.json()["outputs"][0]["data"]
    ) != 2:
        assert time.monotonic() < deadline, "the lifted actions still held after 1 s"
        time.sleep(0.05)


@pytest.mark.slow
def test_actions_that_need_approval_wait_for_a_reviewer(site: Site, serve: Callable[..., Running]) -> None:
    policy = site.root / "response.toml"
    policy.write_text('[[rule]]\nname = "suspend after review"\naction = "suspend"\napproval = true\n')
    running = serve(_config(site, detectors=["extraction"], extra={"response": {"policy": "response.toml"}}))
    reference = _reference(site)
    thief, admin = make_key(site, "mallory"), make_key(site, "root", "admin")
    _, effect = _thief_until_refused(running, thief, reference, budget=120)
    assert effect == "", "suspended without approval"
    pending = _get(running, admin, "/admin/review")["actions"]
    assert len(pending) == 1 and pending[0]["action"] == "suspend" and pending[0]["status"] == "pending"
    denied_for_client = httpx.post(
        f"{running.url}/admin/review/{pending[0]['id']}/approve", headers={"Authorization": f"Bearer {thief}"}
    )
    assert denied_for_client.status_code == 403  # clients cannot approve
    approved = httpx.post(
        f"{running.url}/admin/review/{pending[0]['id']}/approve", headers={"Authorization": f"Bearer {admin}"}
    )
    assert approved.status_code == 200 and approved.json()["decided_by"] == "root"
    assert _infer(running, thief, reference[:1]).status_code == 403
    again = httpx.post(
        f"{running.url}/admin/review/{pending[0]['id']}/deny", headers={"Authorization": f"Bearer {admin}"}
    )
    assert again.status_code == 409  # only pending actions can be decided
    records = _get(running, admin, "/admin/log", limit=10_000)["records"]
    decisions = [r for r in records if r["kind"] == "response"]
    assert any("by root" in " ".join(r["reasons"]) for r in decisions)


def test_drift_feedback_and_the_watermark(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(_config(site, detectors=[]))
    reference = _reference(site)
    client, analyst = make_key(site, "alice"), make_key(site, "ana", "analyst")
    rng = np.random.default_rng(3)
    rows = reference[rng.choice(len(reference), size=300)]
    response = _infer(running, client, rows[:200], id="batch-1")
    assert response.status_code == 200
    running.gateway.monitor.flush()  # the drift test runs on the monitor's thread
    assert _get(running, analyst, "/admin/drift")["drift"] is not None  # a full window of 200 rows was tested
    labels = [int(v) for v in np.asarray(response.json()["outputs"][0]["data"]).reshape(200, 2).argmax(axis=1)]
    feedback = httpx.post(
        f"{running.url}/v2/models/phishing-lr/feedback",
        json={"id": "batch-1", "labels": labels},
        headers={"Authorization": f"Bearer {client}"},
    )
    assert feedback.status_code == 200, feedback.text
    replay = httpx.post(
        f"{running.url}/v2/models/phishing-lr/feedback",
        json={"id": "batch-1", "labels": labels},
        headers={"Authorization": f"Bearer {client}"},
    )
    assert replay.status_code == 404  # one answer per request
    col = max(range(reference.shape[1]), key=lambda j: len(np.unique(reference[:, j])))
    high = reference[reference[:, col] >= np.quantile(reference[:, col], 0.8)]  # a covariate shift inside the schema
    shifted = high[rng.choice(len(high), size=100)]
    assert _infer(running, client, shifted).status_code == 200
    running.gateway.monitor.flush()
    drift = _get(running, analyst, "/admin/drift")["drift"]
    assert drift is not None
    assert any(c["drifted"] for c in drift["columns"])
    assert "modelshield_drift" in _get(running, analyst, "/metrics")
    records = _get(running, analyst, "/admin/log", limit=10_000)["records"]
    marked = sum(r["output"].get("watermarked", 0) for r in records if r["kind"] == "infer")
    assert 0 < marked < 40  # about 5% of 300 rows carry the watermark
    alerts = _get(running, analyst, "/admin/alerts")["alerts"]
    assert any(a["detector"] == "drift" for a in alerts)


@pytest.mark.slow
def test_a_monitor_that_fails_never_fails_a_request(
    site: Site, serve: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = serve(_config(site, detectors=["extraction"]))
    key = make_key(site, "alice")

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    detector = running.gateway.monitor.detectors[0]
    monkeypatch.setattr(detector, "observe", broken)
    assert _infer(running, key, _reference(site)[:2]).status_code == 200
    assert running.gateway.monitor.failures >= 1


@pytest.mark.slow
def test_learned_baselines_survive_a_restart(site: Site, serve: Callable[..., Running]) -> None:
    from .conftest import start_gateway

    config = _config(site, detectors=["behaviour"])
    first = start_gateway(config)
    key = make_key(site, "alice")
    reference = _reference(site)
    for i in range(30):
        assert _infer(first, key, reference[i : i + 2]).status_code == 200
    before = first.gateway.monitor.detectors[0].state()
    assert "alice" in json.dumps(before)
    first.stop()  # saves the state at shutdown
    second = start_gateway(config)
    try:
        after = second.gateway.monitor.detectors[0].state()
        assert after == before
    finally:
        second.stop()


def test_ownership_proves_a_copy_trained_on_our_answers(
    site: Site, serve: Callable[..., Running], capsys: pytest.CaptureFixture[str]
) -> None:
    import skops.io
    from sklearn.tree import DecisionTreeClassifier

    config = _config(
        site, detectors=[], extra={"monitoring": {"watermark": {"rate": 0.1, "key": "keys/watermark.key"}}}
    )
    running = serve(config)
    frame = pd.read_csv(site.reference)
    x, y = frame.drop(columns=["label"]).to_numpy(dtype=np.float64), frame["label"].to_numpy()
    thief = make_key(site, "mallory")
    answers = []
    for start in range(0, 800, 100):
        response = _infer(running, thief, x[start : start + 100])
        assert response.status_code == 200
        answers.append(np.asarray(response.json()["outputs"][0]["data"]).reshape(-1, 2).argmax(axis=1))
    running.gateway.monitor.flush()  # the ledger is written off the request path
    stolen = DecisionTreeClassifier(random_state=0).fit(x[:800], np.concatenate(answers))  # memorises the answers
    honest = DecisionTreeClassifier(random_state=1).fit(x[:800], (y[:800] == y.max()).astype(int))
    verdicts = {}
    for name, model in (("stolen", stolen), ("honest", honest)):
        path = site.root / f"{name}.skops"
        skops.io.dump(model, path)
        capsys.readouterr()
        args = ["gateway", "ownership", "--config", str(config), "--suspect", str(path), "--format", "json"]
        code = main([*args, "--trust-type", "sklearn.tree._tree.Tree"])
        captured = capsys.readouterr()
        assert code in (0, 1), captured.err
        verdicts[name] = (code, json.loads(captured.out))
    assert verdicts["stolen"][0] == 1 and verdicts["stolen"][1]["p_value"] < 0.001
    assert verdicts["honest"][0] == 0 and verdicts["honest"][1]["p_value"] >= 0.001
