"""The Open Inference Protocol server, spoken to with a plain HTTP client."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.models import SklearnClassifier
from modelshield.testing import OipServer, serve_classifier
from modelshield.testing.oip_server import MAX_BODY


@pytest.fixture
def server() -> Iterator[OipServer]:
    x = np.random.default_rng(0).normal(size=(50, 3))
    clf = SklearnClassifier(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)))
    with serve_classifier(clf, model_name="toy") as running:
        yield running


def test_health_metadata_and_inference(server: OipServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/models/toy/ready").json()["ready"] is True
        meta = client.get("/v2/models/toy").json()
        assert meta["inputs"][0]["shape"] == [-1, 3]
        assert meta["outputs"][0]["shape"] == [-1, 2]
        body = {"id": "r1", "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 6}]}
        answer = client.post("/v2/models/toy/infer", json=body).json()
        assert answer["id"] == "r1"
        assert answer["outputs"][0]["shape"] == [2, 2]
        assert sum(answer["outputs"][0]["data"][:2]) == pytest.approx(1.0)


def test_errors(server: OipServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v2/models/other").status_code == 404
        bad = {"inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 5}]}
        response = client.post("/v2/models/toy/infer", json=bad)
        assert response.status_code == 400
        assert "needs 6" in response.json()["error"]
    # An over-large body is refused from its declared length, before it is read.
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.putrequest("POST", "/v2/models/toy/infer")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
