"""The inference guards inside the running gateway: the extraction monitor in log and block mode."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd

from modelshield.cli import main

from .conftest import Running, Site, make_key


def _key(site: Site, client: str) -> str:
    return make_key(site, client)


def _synthetic(site: Site, n: int, seed: int) -> np.ndarray:
    """A thief's synthetic queries: every feature drawn independently from the values the real data takes (each row
    passes input validation, but the rows do not look like real records)."""
    frame = pd.read_csv(site.reference).drop(columns=["label"])
    rng = np.random.default_rng(seed)
    columns = [rng.choice(np.unique(frame[c].to_numpy()), size=n) for c in frame.columns]
    return np.stack(columns, axis=1).astype(np.float64)


def _send(running: Running, key: str, x: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return httpx.post(
        f"{running.url}/v2/models/phishing-lr/infer", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_extraction_monitor_blocks_a_synthetic_thief(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(site.config({"guards": {"extraction_monitor": "block"}}))
    thief, honest = _key(site, "thief"), _key(site, "honest")
    queries = _synthetic(site, 600, seed=1)
    blocked_at = None
    for start in range(0, len(queries), 10):
        response = _send(running, thief, queries[start : start + 10])
        if response.status_code == 403:
            blocked_at = start + 10
            break
        assert response.status_code == 200, response.text
    assert blocked_at is not None, "600 synthetic queries were never blocked"
    assert "Traceback" not in response.text and "usage checks" in response.json()["error"]
    # a client sending real records is not blocked meanwhile
    frame = pd.read_csv(site.reference).drop(columns=["label"]).to_numpy(dtype=np.float64)
    for start in range(0, 100, 10):
        assert _send(running, honest, frame[start : start + 10]).status_code == 200


def test_log_mode_answers_and_records_the_alarm(site: Site, serve: Callable[..., Running]) -> None:
    config = site.config({"guards": {"extraction_monitor": "log"}})
    running = serve(config)
    thief = _key(site, "quiet-thief")
    queries = _synthetic(site, 600, seed=2)
    statuses = [_send(running, thief, queries[s : s + 10]).status_code for s in range(0, 600, 10)]
    assert set(statuses) == {200}
    running.stop()
    out = site.root / "log.jsonl"
    assert main(["gateway", "log", "export", "--config", str(config), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    flagged = [r for r in records if r["client"] == "quiet-thief" and r["decision"] == "flag"]
    assert flagged, "no request of the synthetic thief was flagged"
    assert all(r["reasons"] for r in flagged)


def test_adversarial_detector_runs_on_every_request(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(site.config({"guards": {"adversarial_detector": "log", "extraction_monitor": "off"}}))
    key = _key(site, "checked")
    frame = pd.read_csv(site.reference).drop(columns=["label"]).to_numpy(dtype=np.float64)
    for start in range(0, 50, 10):
        assert _send(running, key, frame[start : start + 10]).status_code == 200
    metrics = running.gateway.metrics.render().decode()
    decisions = [line for line in metrics.splitlines() if line.startswith("modelshield_guard_decisions_total{")]
    assert decisions and all("feature-squeezing" in line for line in decisions)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in decisions) == 5  # one decision per request
