"""Auditing a served model: connect() and RemoteClassifier against a real MLServer started by the test.

MLServer serves scikit-learn models saved with joblib, trained here on the breast-cancer data: one declaring
nothing in its metadata (as MLServer does by default), one declaring its input and output, one trained on string
labels, and a regressor. A small reverse proxy in front of it accepts only one bearer token.

MLServer's pins clash with this project's, so it lives in a virtual environment of its own; the tests find its
``mlserver`` executable through ``MODELSHIELD_TEST_MLSERVER`` or on PATH, and skip, saying so, without it:

    python -m venv /tmp/mlserver && /tmp/mlserver/bin/pip install mlserver==1.7.1 mlserver-sklearn==1.7.1
    MODELSHIELD_TEST_MLSERVER=/tmp/mlserver/bin/mlserver pytest -m slow tests/models/test_mlserver.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.audit import AuditOptions, Auditor
from modelshield.data import Dataset, DatasetSplit, load_breast_cancer, train_test_split
from modelshield.errors import InvalidInputError, ModelShieldError, RemoteModelError
from modelshield.findings import CheckStatus
from modelshield.models.remote_classifier import RemoteClassifier, connect
from modelshield.target import Requirement, Target
from modelshield.testing import check_classifier

pytestmark = pytest.mark.slow

TOKEN = "t0k3n-for-the-test"  # noqa: S105  (a test credential the proxy accepts)

# Run by MLServer's own interpreter, so the models are saved by the scikit-learn that loads them.
_TRAIN = """
import json, sys
from pathlib import Path
import joblib, numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

root = Path(sys.argv[1])
data = np.load(root / "train.npz")
x, y, names = data["x"], data["y"], data["names"]
models = {
    "cancer": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y),
    "cancer-named": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, names[y]),
    "regressor": LinearRegression().fit(x, y + 0.25),
}
models["cancer-declared"] = models["cancer"]
declared = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, x.shape[1]]}],
    "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
}
for name, model in models.items():
    (root / name).mkdir()
    joblib.dump(model, root / name / "model.joblib")
    settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel"}
    settings.update(parameters={"uri": "./model.joblib"}, **(declared if name == "cancer-declared" else {}))
    (root / name / "model-settings.json").write_text(json.dumps(settings))
"""


def _mlserver() -> tuple[Path, Path]:
    """The ``mlserver`` executable and the Python interpreter it runs on; skip when either is missing."""
    exe = os.environ.get("MODELSHIELD_TEST_MLSERVER") or shutil.which("mlserver")
    if not exe or not Path(exe).is_file():
        pytest.skip(
            "MLServer is not installed: set MODELSHIELD_TEST_MLSERVER to its mlserver executable, or put it on PATH "
            "(pip install mlserver==1.7.1 mlserver-sklearn==1.7.1, in a virtual environment of its own)"
        )
    shebang = Path(exe).read_bytes()[:512].split(b"\n", 1)[0]
    python = Path(shebang[2:].decode().strip()) if shebang.startswith(b"#!") else Path(exe).with_name("python")
    check = subprocess.run(
        [str(python), "-c", "import mlserver_sklearn, joblib, sklearn"], capture_output=True, check=False
    )
    if check.returncode != 0:
        pytest.skip(
            f"{exe} runs on {python}, which cannot import mlserver_sklearn: pip install mlserver-sklearn==1.7.1"
        )
    return Path(exe), python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    url: str  # MLServer itself
    proxy_url: str  # the proxy that wants the bearer token
    seen: list[str | None]  # the Authorization header of each request that reached the proxy
    data: DatasetSplit


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    exe, python = _mlserver()
    root = tmp_path_factory.mktemp("mlserver")
    models = root / "models"
    models.mkdir()
    data = train_test_split(load_breast_cancer(), test_size=0.3, seed=0)
    np.savez(models / "train.npz", x=data.train.x, y=data.train.y, names=np.array(data.train.label_names))
    trained = subprocess.run([str(python), "-c", _TRAIN, str(models)], capture_output=True, text=True, check=False)
    if trained.returncode != 0:
        pytest.fail(f"Training the served models with {python} failed:\n{trained.stderr[-3000:]}")
    (models / "train.npz").unlink()
    port = _free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(), "metrics_endpoint": None}
    (models / "settings.json").write_text(json.dumps({**settings, "parallel_workers": 0}))  # in-process: starts faster
    log = (root / "mlserver.log").open("wb")
    server = subprocess.Popen([str(exe), "start", str(models)], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server, root / "mlserver.log")
        with _proxy(url) as (proxy_url, seen):
            yield Served(url, proxy_url, seen, data)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"MLServer exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            ready = [httpx.get(f"{url}/v2/models/{m}/ready", timeout=2) for m in ("cancer", "regressor")]
            if all(r.status_code == 200 for r in ready):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"MLServer was not ready within 120 s:\n{log.read_text()[-3000:]}")


class _Proxy(BaseHTTPRequestHandler):
    """Forwards to MLServer what carries the bearer token, answers 401 to the rest, records what it saw."""

    upstream: str
    seen: list[str | None]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append(auth)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if auth != f"Bearer {TOKEN}":
            status, content, kind = 401, b'{"error": "unauthorised"}', "application/json"
        else:
            answer = httpx.request(self.command, self.upstream + self.path, content=body,
                                   headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
            status, content, kind = answer.status_code, answer.content, answer.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()


@contextlib.contextmanager
def _proxy(upstream: str) -> Iterator[tuple[str, list[str | None]]]:
    """A running :class:`_Proxy` to ``upstream``: its URL and the list of Authorization headers it saw."""
    seen: list[str | None] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Proxy,), {"upstream": upstream, "seen": seen}))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _connect(served: Served, model: str = "cancer", **kwargs: Any) -> RemoteClassifier:
    test = served.data.test
    options: dict[str, Any] = {
        "input_shape": test.schema.input_shape,
        "n_classes": test.n_classes,
        "probe": test.x[:1],
        "input_name": "x",
        "output_name": "predict_proba",
    }
    options.update(kwargs)
    return connect(options.pop("url", served.url), model, **options)


def _audit(clf: RemoteClassifier, test: Dataset, checks: tuple[str, ...]) -> dict[str, Any]:
    """The runs and findings of a quick audit on 60 test records (evasion sends each record hundreds of times)."""
    target = Target("mlserver:cancer", clf, test.subset(np.arange(60)), model_format="remote")
    report = Auditor(AuditOptions(checks=checks, budget="quick", seed=0)).run(target)
    return {"runs": {run.name: run for run in report.checks}, "findings": report.findings}


# -- what works ----------------------------------------------------------------------------------------------------
def test_probabilities_requested_by_name(served: Served) -> None:
    test = served.data.test
    with _connect(served) as clf:
        assert not clf.label_only
        proba = clf.predict_proba(test.x)
        check_classifier(clf, test.x[:8])
        audit = _audit(clf, test, ("baseline", "evasion"))
    assert float(np.mean(proba.argmax(axis=1) == test.y)) > 0.9
    assert {run.status for run in audit["runs"].values()} <= {CheckStatus.PASSED, CheckStatus.FINDINGS}
    performance = next(f for f in audit["findings"] if f.id == "baseline.performance")
    assert performance.metrics["test_accuracy"] == pytest.approx(np.mean(proba[:60].argmax(axis=1) == test.y[:60]))


def test_names_declared_in_the_metadata_are_used(served: Served) -> None:
    with _connect(served, "cancer-declared", input_name=None, output_name=None) as clf:
        assert (clf.input_name, clf.output_name, clf.label_only) == ("features", "predict_proba", False)


def test_label_only_endpoint_gets_decision_based_evasion(served: Served) -> None:
    test = served.data.test
    with _connect(served, output_name="predict") as clf, _connect(served) as scored:
        assert clf.label_only
        np.testing.assert_array_equal(clf.predict(test.x), scored.predict(test.x))
        check_classifier(clf, test.x[:8])
        audit = _audit(clf, test, ("baseline", "evasion"))
    runs = audit["runs"]
    assert Requirement.SCORES not in Auditor(AuditOptions(checks=("evasion",))).checks[0].requires
    assert runs["evasion"].status in (CheckStatus.PASSED, CheckStatus.FINDINGS)  # HopSkipJump and transfer only
    assert runs["baseline"].status in (CheckStatus.PASSED, CheckStatus.FINDINGS)


def test_string_labels_are_mapped_through_the_classes(served: Served) -> None:
    test = served.data.test
    with _connect(served, "cancer-named", output_name="predict", classes=test.label_names) as clf:
        assert clf.label_only
        assert float(np.mean(clf.predict(test.x) == test.y)) > 0.9


def test_the_bearer_header_reaches_the_server(served: Served) -> None:
    served.seen.clear()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with _connect(served, url=served.proxy_url, headers=headers) as clf:
        clf.predict(served.data.test.x[:5])
    assert served.seen
    assert set(served.seen) == {f"Bearer {TOKEN}"}


# -- one line for each way it fails --------------------------------------------------------------------------------
def _failure(name: str, served: Served) -> tuple[dict[str, Any], type[ModelShieldError], str]:
    """The connect() arguments that cause the failure ``name``, the error, and a pattern its message matches."""
    failures: dict[str, tuple[dict[str, Any], type[ModelShieldError], str]] = {
        "unreachable": ({"url": f"http://127.0.0.1:{_free_port()}"}, RemoteModelError,
                        "Cannot reach the model server: GET .* failed: ConnectError"),
        "no-header": ({"url": served.proxy_url}, RemoteModelError, "refused the request as unauthorised"),
        "wrong-token": ({"url": served.proxy_url, "headers": {"Authorization": "Bearer wr0ng"}}, RemoteModelError,
                        "refused the request as unauthorised"),
        "unknown-model": ({"model": "nope"}, RemoteModelError, "has no model 'nope'.*Model nope not found"),
        "names-missing": ({"input_name": None, "output_name": None}, RemoteModelError,
                          "declares no input or output names"),
        "wrong-input-name": ({"model": "cancer-declared", "output_name": None}, RemoteModelError,
                             "has no input 'x'; its metadata declares 'features'"),
        "unknown-output": ({"output_name": "scores"}, RemoteModelError,
                           "failed on a probe input.* HTTP 400: SKLearnModel only supports 'predict', 'predict_proba'"),
        "neither": ({"model": "regressor", "output_name": "predict"}, RemoteModelError,
                    "does not hold class scores or labels"),
        "feature-count": ({"input_shape": (29,), "probe": served.data.test.x[:1, :29]}, RemoteModelError,
                          r"failed on a probe input of shape \(1, 29\).* HTTP 500: ValueError: X has 29 features, but"),
        "declared-shape": ({"model": "cancer-declared", "input_name": "features", "input_shape": (29,), "probe": None},
                           InvalidInputError, r"declares inputs of shape \(30,\)"),
        "class-count": ({"n_classes": 3}, InvalidInputError, "gives 2 class scores per input; the data has 3"),
    }  # fmt: skip
    return failures[name]


@pytest.mark.parametrize(
    "name",
    ["unreachable", "no-header", "wrong-token", "unknown-model", "names-missing", "wrong-input-name", "unknown-output",
     "neither", "feature-count", "declared-shape", "class-count"],
)  # fmt: skip
def test_each_failure_is_one_clear_line(served: Served, name: str) -> None:
    kwargs, error, message = _failure(name, served)
    options = dict(kwargs)
    model = options.pop("model", "cancer")
    with pytest.raises(error, match=message) as err:
        _connect(served, model, **options)
    assert isinstance(err.value, ModelShieldError)
    assert "\n" not in err.value.message
    assert "wr0ng" not in err.value.diagnostics() + err.value.cli_remedy
