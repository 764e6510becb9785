"""Hot swap from a registry stage: promote and roll back with no failed request; a tampered version is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelshield.findings import CheckRun, CheckStatus, Report, TargetInfo
from modelshield.registry import Registry
from modelshield.supply_chain.keys import load_private_key
from modelshield.supply_chain.signing import sign_model

from .conftest import Running, Site, make_key


def _audit(tmp: Path, model: Path) -> Path:
    from modelshield._internal.hashing import sha256_file

    report = Report(
        target=TargetInfo("m", "skops", sha256_file(model), 2, (9,), "LogisticRegression", white_box=False),
        findings=(),
        checks=(CheckRun("evasion", CheckStatus.PASSED, 0.1),),
        seed=0,
        budget="quick",
        started_at="2026-12-01T00:00:00+00:00",
        duration_s=0.1,
        versions={"modelshield": "0"},
    )
    path = tmp / f"{model.stem}-audit.json"
    path.write_text(report.to_json())
    return path


def _version(site: Site, registry: Registry, c: float) -> int:
    """Train a model with regularisation ``c``, sign it and add it to the registry; its version number."""
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(site.reference)
    x, y = frame.drop(columns=["label"]).to_numpy(), frame["label"].to_numpy()
    work = site.root / f"v-{c}"
    work.mkdir()
    path = work / "phishing-lr.skops"
    skops.io.dump(LogisticRegression(C=c, max_iter=500).fit(x, y), path)
    sign_model(path, load_private_key(site.publisher_key), work / "phishing-lr.skops.sig")
    added = registry.add(
        "phishing", path, signature=work / "phishing-lr.skops.sig", audit_report=_audit(work, path), actor="test"
    )
    return added.version


@pytest.mark.slow
def test_promote_and_rollback_swap_with_no_failed_request(site: Site, serve: Callable[..., Running]) -> None:
    root = site.root / "registry"
    with Registry(root) as registry:
        v1 = _version(site, registry, 1.0)
        v2 = _version(site, registry, 0.001)
        registry.promote("phishing", v1, public_key=site.publisher_pub, actor="test")
    config = site.config(
        {
            "model": {"file": None, "registry": "phishing@production", "registry_dir": str(root), "poll_s": 0.2},
        }
    )
    running = serve(config)
    key = make_key(site, "ivan")
    x = np.zeros((1, 9))
    body = {"inputs": [{"name": "input", "shape": [1, 9], "datatype": "FP32", "data": x.ravel().tolist()}]}
    statuses: list[int] = []
    digests: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{running.url}/v2/models/phishing-lr/infer", json=body)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    digests.add(response.headers["x-model-digest"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        first = running.gateway.deployment.model.digest
        with Registry(root) as registry:
            registry.promote("phishing", v2, public_key=site.publisher_pub, actor="test")
        _wait(lambda: running.gateway.deployment.model.digest != first)
        second = running.gateway.deployment.model.digest
        with Registry(root) as registry:
            registry.rollback("phishing", actor="test")
        _wait(lambda: running.gateway.deployment.model.digest == first)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert digests == {first, second}


@pytest.mark.slow
def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(site: Site, serve: Callable[..., Running]) -> None:
    root = site.root / "registry"
    with Registry(root) as registry:
        v1 = _version(site, registry, 1.0)
        v2 = _version(site, registry, 0.001)
        registry.promote("phishing", v1, public_key=site.publisher_pub, actor="test")
        tampered = registry.show("phishing", v2)
        blob = registry.store.path_of(tampered.artifact_digest)
    config = site.config(
        {"model": {"file": None, "registry": "phishing@production", "registry_dir": str(root), "poll_s": 60.0}}
    )
    running = serve(config)
    before = running.gateway.deployment.model.digest
    with Registry(root) as registry:
        registry.promote("phishing", v2, public_key=site.publisher_pub, actor="test")
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))  # altered on disk after promotion, before the swap
    assert running.gateway.watcher.check_now() is False
    assert running.gateway.deployment.model.digest == before
    metrics = running.gateway.metrics.render().decode()
    assert "modelshield_model_swaps_refused_total 1.0" in metrics


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_replaced_file_is_served_only_once_it_verifies(site: Site, serve: Callable[..., Running]) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    running = serve(site.config({"model": {"poll_s": 60.0}}))
    before = running.gateway.deployment.model.digest
    x = np.random.default_rng(0).random((40, 9))
    replacement = site.root / "new.skops"
    skops.io.dump(LogisticRegression().fit(x, np.where(x[:, 0] > 0.5, "phishing", "legitimate")), replacement)
    replacement.replace(site.model)  # a new file, but the old signature
    assert running.gateway.watcher.check_now() is False
    assert running.gateway.deployment.model.digest == before
    sign_model(site.model, load_private_key(site.publisher_key), site.model.with_name(site.model.name + ".sig"))
    assert running.gateway.watcher.check_now() is True
    assert running.gateway.deployment.model.digest != before
