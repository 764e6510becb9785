"""The gateway end to end: a real uvicorn server on 127.0.0.1, real clients (RemoteClassifier, httpx)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io

from modelshield.cli import main
from modelshield.gateway.identity import Role

from .conftest import Running, Site, make_key


def _key(site: Site, client: str, role: Role = Role.CLIENT, **kwargs: Any) -> str:
    return make_key(site, client, role.value, **kwargs)


def _rows(site: Site, n: int = 3) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(site.reference)
    return frame.drop(columns=["label"]).to_numpy(dtype=np.float64)[:n]


def _body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        **extra,
    }


def _infer(
    running: Running, key: str | None, body: Any, headers_extra: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(headers_extra or {})
    return httpx.post(f"{running.url}/v2/models/phishing-lr/infer", json=body, headers=headers, timeout=10, **kwargs)


def _no_leak(response: httpx.Response) -> None:
    text = response.text
    assert "Traceback" not in text
    assert "/tmp" not in text and "site-packages" not in text
    assert response.headers["content-type"].startswith("application/json")


def test_remote_classifier_gets_the_models_predictions(site: Site, serve: Callable[..., Running]) -> None:
    from modelshield.models.remote_classifier import connect

    running = serve(site.config())
    key = _key(site, "alice")
    x = _rows(site, 20)
    local = skops.io.load(site.model, trusted=skops.io.get_untrusted_types(file=site.model))
    with connect(
        running.url, "phishing-lr", input_shape=(9,), n_classes=2, headers={"Authorization": f"Bearer {key}"}
    ) as remote:
        assert not remote.label_only
        np.testing.assert_allclose(remote.predict_proba(x), local.predict_proba(x), atol=1e-6)
    response = _infer(running, key, _body(x[:2]))
    assert response.status_code == 200
    digest = hashlib.sha256(site.model.read_bytes()).hexdigest()
    assert response.headers["x-model-digest"] == f"sha256:{digest}"
    assert response.json()["parameters"]["model_digest"] == f"sha256:{digest}"
    for header in ("x-content-type-options", "x-frame-options", "content-security-policy", "x-request-id"):
        assert header in response.headers
    assert "server" not in response.headers


def test_each_refusal_has_its_status(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(
        site.config(
            {
                "limits": {"requests_per_second": 3.0, "max_batch_rows": 8},
                "server": {"max_body_bytes": 4096},
            }
        )
    )
    client = _key(site, "bob")
    analyst = _key(site, "carol", Role.ANALYST)
    x = _rows(site, 2)
    # 401: no key, a wrong key, a malformed key; never a hint of which keys exist
    for key in (None, "msk_" + "A" * 40, "garbage"):
        response = _infer(running, key, _body(x))
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        _no_leak(response)
    # 403: an analyst may read the log but not infer
    response = _infer(running, analyst, _body(x))
    assert response.status_code == 403
    _no_leak(response)
    # 404 after authentication
    response = httpx.post(
        f"{running.url}/v2/models/other/infer", json=_body(x), headers={"Authorization": f"Bearer {client}"}
    )
    assert response.status_code == 404
    # 413: a body over the limit (refused on Content-Length before it is read), a batch over max_batch_rows
    big = _body(np.zeros((300, 9)))
    response = _infer(running, client, big)
    assert response.status_code == 413
    _no_leak(response)
    response = _infer(running, client, _body(_rows(site, 9)))
    assert response.status_code == 413
    # 422: the protocol (strings for numbers), and validation against the schema (out of range)
    bad = _body(x)
    bad["inputs"][0]["data"] = ["1"] * 18
    response = _infer(running, client, bad)
    assert response.status_code == 422
    assert "inputs.0.data" in response.json()["error"]
    _no_leak(response)
    wild = x.copy()
    wild[1, 3] = 1e6
    response = _infer(running, client, _body(wild))
    assert response.status_code == 422
    error = response.json()["error"]
    assert "Row 1" in error, error
    assert "above the maximum" in error, error
    # 429 with Retry-After once the request rate is spent
    statuses = [_infer(running, client, _body(x)).status_code for _ in range(8)]
    assert 429 in statuses
    limited = next(r for r in (_infer(running, client, _body(x)) for _ in range(5)) if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    _no_leak(limited)


def test_invalid_input_never_reaches_the_model(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(site.config())
    key = _key(site, "dave")
    calls: list[int] = []
    clf = running.gateway.deployment.model.classifier
    original = clf.predict_proba

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return original(x)

    clf.predict_proba = counting
    x = _rows(site, 2)
    rules = running.gateway.deployment.schema.rules
    discrete = next(i for i, rule in enumerate(rules) if rule.allowed or rule.integer)
    between = sorted(rules[discrete].allowed or (0.0, 1.0))[:2]
    cases = [(0, float("nan")), (0, 1e9), (0, -1e9), (discrete, (between[0] + between[1]) / 2 + 1e-3)]
    for column, value in cases:
        wild = x.copy()
        wild[0, column] = value
        body = json.dumps(_body(wild)).replace("NaN", "NaN")
        response = httpx.post(
            f"{running.url}/v2/models/phishing-lr/infer",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (value, response.text)
    assert calls == []
    assert _infer(running, key, _body(x)).status_code == 200
    assert calls == [2]


def test_output_policy_label_only(site: Site, serve: Callable[..., Running]) -> None:
    from modelshield.models.remote_classifier import connect

    running = serve(site.config({"output": {"clients": {"eve": "label"}}}))
    key = _key(site, "eve")
    x = _rows(site, 5)
    response = _infer(running, key, _body(x))
    assert response.status_code == 200
    (output,) = response.json()["outputs"]
    assert output["name"] == "label" and output["datatype"] == "INT64" and output["shape"] == [5]
    asked = _infer(running, key, _body(x, outputs=[{"name": "probabilities"}]))
    assert asked.status_code == 422
    with connect(running.url, "phishing-lr", input_shape=(9,), n_classes=2, headers={"X-API-Key": key}) as remote:
        assert remote.label_only


def test_every_answer_is_in_the_verified_log(site: Site, serve: Callable[..., Running]) -> None:
    config = site.config()
    running = serve(config)
    key = _key(site, "frank")
    ids = []
    for _ in range(5):
        response = _infer(running, key, _body(_rows(site, 2)))
        assert response.status_code == 200
        ids.append(response.headers["x-request-id"])
    assert _infer(running, None, _body(_rows(site, 2))).status_code == 401
    analyst = _key(site, "judy", Role.ANALYST)
    assert httpx.get(f"{running.url}/admin/keys", headers={"Authorization": f"Bearer {analyst}"}).status_code == 403
    page = httpx.get(f"{running.url}/admin/log?limit=3", headers={"Authorization": f"Bearer {analyst}"}).json()
    assert [r["seq"] for r in page["records"]] == [1, 2, 3] and page["next_after"] == 3
    big = httpx.post(
        f"{running.url}/v2/models/phishing-lr/infer",
        content=b"x" * (5 << 20),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert big.status_code == 413
    running.stop()
    out = site.root / "log.jsonl"
    assert main(["gateway", "log", "export", "--config", str(config), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    answered = {r["request_id"] for r in records if r["status"] == 200}
    assert set(ids) <= answered
    assert any(r["status"] == 401 for r in records)
    assert any(r["client"] == "judy" and r["status"] == 403 and r["kind"] == "http" for r in records)
    assert any(r["status"] == 413 and r["client"] == "unauthenticated" for r in records)
    assert main(["gateway", "log", "verify", "--config", str(config)]) == 0


def test_admin_api_creates_and_revokes_keys(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(site.config({"auth": {"key_refresh_s": 0.2}}))
    admin = _key(site, "root", Role.ADMIN)
    client = _key(site, "grace")
    headers = {"Authorization": f"Bearer {admin}"}
    made = httpx.post(f"{running.url}/admin/keys", json={"client": "heidi", "role": "client"}, headers=headers)
    assert made.status_code == 201
    secret, key_id = made.json()["key"], made.json()["key_id"]
    assert _infer(running, secret, _body(_rows(site))).status_code == 200
    listed = httpx.get(f"{running.url}/admin/keys", headers=headers).json()["keys"]
    assert all(secret not in json.dumps(k) for k in listed)
    assert httpx.get(f"{running.url}/admin/keys", headers={"Authorization": f"Bearer {client}"}).status_code == 403
    assert httpx.delete(f"{running.url}/admin/keys/{key_id}", headers=headers).status_code == 200
    import time

    time.sleep(0.5)
    assert _infer(running, secret, _body(_rows(site))).status_code == 401
    metrics = httpx.get(f"{running.url}/metrics", headers=headers)
    assert metrics.status_code == 200 and "modelshield_requests_total" in metrics.text
    assert httpx.get(f"{running.url}/metrics").status_code == 401


def test_anonymous_access_only_when_configured(site: Site, serve: Callable[..., Running]) -> None:
    closed = serve(site.config())
    assert _infer(closed, None, _body(_rows(site))).status_code == 401
    opened = serve(site.config({"auth": {"allow_anonymous": True}}, name="open.toml"))
    assert _infer(opened, None, _body(_rows(site))).status_code == 200
    assert _infer(opened, "msk_wrong", _body(_rows(site))).status_code == 401  # a wrong key is not anonymous


def test_health_and_readiness(site: Site, serve: Callable[..., Running]) -> None:
    running = serve(site.config())
    assert httpx.get(f"{running.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{running.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{running.url}/v2/models/phishing-lr").status_code == 401


def test_unsigned_or_tampered_model_is_never_served(site: Site, tmp_path: Path) -> None:
    from modelshield.errors import VerificationError
    from modelshield.gateway.app import Gateway
    from modelshield.gateway.config import load_config

    site.model.write_bytes(site.model.read_bytes() + b"\0")  # the signature no longer holds
    with pytest.raises(VerificationError):
        Gateway(load_config(site.config()))
    assert main(["serve", "--config", str(site.config())]) == 2
    site.model.with_name(site.model.name + ".sig").unlink()
    with pytest.raises(VerificationError, match="no signature"):
        Gateway(load_config(site.config()))


def test_config_errors_name_the_key(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    config = site.config({"limits": {"rows_per_day": -3, "rows_per_dya": 5}})
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "[limits] rows_per_day" in err and "[limits] rows_per_dya" in err
    assert main(["serve", "--config", str(site.root / "missing.toml")]) == 2
    assert "gateway init" in capsys.readouterr().err


def test_gateway_init_writes_a_config_that_validates(tmp_path: Path) -> None:
    from modelshield.gateway.config import load_config

    config = tmp_path / "gw" / "gateway.toml"
    assert main(["gateway", "init", "--config", str(config), "--target", "zoo:digits-cnn"]) == 0
    settings = load_config(config)
    assert settings.model.target == "zoo:digits-cnn"
    assert settings.model.require_signature and not settings.auth.allow_anonymous
    assert (tmp_path / "gw" / "keys" / "gateway.key").is_file()
    assert main(["gateway", "init", "--config", str(config)]) == 2  # never overwritten


def test_upstream_proxy(site: Site, serve: Callable[..., Running], tmp_path: Path) -> None:
    """A gateway in front of another Open Inference Protocol server (here a second gateway, which wants a key)."""
    upstream = serve(site.config({"limits": {"requests_per_second": 1000.0}}, name="upstream.toml"))
    token = tmp_path / "upstream.token"
    token.write_text(_key(site, "front-gateway") + "\n")
    direct_key = _key(site, "direct")
    front_root = tmp_path / "front"
    front_root.mkdir()
    front = Site(front_root, site.model, site.reference, site.publisher_key, site.publisher_pub, 9, 2)
    (front_root / "keys").mkdir()
    import shutil

    shutil.copy(site.root / "keys" / "gateway.key", front_root / "keys" / "gateway.key")
    running = serve(
        front.config(
            {
                "model": {
                    "file": None,
                    "upstream": upstream.url,
                    "upstream_token_file": str(token),
                    "name": "phishing-lr",
                }
            }
        )
    )
    key = _key(front, "zoe")
    x = _rows(site, 4)
    proxied = _infer(running, key, _body(x))
    direct = _infer(upstream, direct_key, _body(x))
    assert proxied.status_code == 200 and direct.status_code == 200
    np.testing.assert_allclose(proxied.json()["outputs"][0]["data"], direct.json()["outputs"][0]["data"], atol=1e-6)
    wild = x.copy()
    wild[0, 0] = 1e6
    assert _infer(running, key, _body(wild)).status_code == 422  # validated before it is sent on
    assert token.read_text().strip() not in running.gateway.metrics.render().decode()


def test_a_slow_model_gets_504_and_a_lost_log_503(site: Site, serve: Callable[..., Running]) -> None:
    import shutil
    import time

    running = serve(site.config({"server": {"request_timeout_s": 0.5}}))
    key = _key(site, "olga")
    clf = running.gateway.deployment.model.classifier
    original = clf.predict_proba

    def slow(x: np.ndarray) -> np.ndarray:
        time.sleep(1.5)
        return original(x)

    clf.predict_proba = slow
    response = _infer(running, key, _body(_rows(site)))
    assert response.status_code == 504
    _no_leak(response)
    time.sleep(1.5)  # the model answers late: its record says what the client got
    from modelshield.gateway.auditlog import read_records

    late = [r for r in read_records(f"sqlite:///{site.root / 'gateway.db'}") if r["client"] == "olga"]
    assert [r["status"] for r in late] == [504], late
    clf.predict_proba = original
    ok = _infer(running, key, _body(_rows(site)), headers_extra={"Origin": "https://evil.example"})
    assert ok.status_code == 200
    assert not any(h.startswith("access-control-") for h in ok.headers)  # no CORS: browsers refuse other origins
    # the audit log's database vanishes: nothing more is answered, and the gateway says it is not ready
    shutil.move(site.root / "gateway.db", site.root / "moved.db")
    response = _infer(running, key, _body(_rows(site)))
    assert response.status_code == 503
    _no_leak(response)
    assert httpx.get(f"{running.url}/v2/health/ready").status_code == 503
