"""RemoteClassifier and connect() against scripted Open Inference Protocol servers: outputs requested by name,
label-only endpoints, and one clear line for each way a served model can fail to fit (tests/models/test_mlserver.py
does the same against a real MLServer)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.interface import NO_SETTINGS, Check, CheckContext, NoSettings
from modelshield.audit.registry import CheckRegistry
from modelshield.data import Dataset, Schema
from modelshield.errors import InvalidInputError, InvalidParameterError, ModelShieldError, RemoteModelError
from modelshield.findings import CheckStatus, Finding
from modelshield.models import Bounds, SklearnClassifier
from modelshield.models.remote_classifier import RemoteClassifier, connect
from modelshield.target import Requirement, Target
from modelshield.testing import check_classifier, serve_classifier

URL = "http://model.test"
X = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
TRUE_LABELS = (X[:, 0] > 0).astype(np.int64)

Answer = Callable[[np.ndarray, str], httpx.Response]


def _tensor(name: str, values: np.ndarray | Sequence[Any], shape: list[int], datatype: str) -> httpx.Response:
    data = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
    return httpx.Response(200, json={"outputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})


def labels(x: np.ndarray, name: str) -> httpx.Response:
    """What MLServer's scikit-learn runtime answers for ``predict``: an (n, 1) INT64 tensor."""
    return _tensor(name, (x[:, 0] > 0).astype(int), [len(x), 1], "INT64")


def scores(x: np.ndarray, name: str) -> httpx.Response:
    """What it answers for ``predict_proba``: an (n, classes) FP64 tensor."""
    p = 1 / (1 + np.exp(-4 * x[:, 0]))
    return _tensor(name, np.stack([1 - p, p], axis=1), [len(x), 2], "FP64")


@dataclass
class Server:
    """A scripted OIP server for httpx.MockTransport: serves model ``m``, records every request."""

    answer: Answer
    inputs: tuple[dict[str, Any], ...] = ()
    outputs: tuple[dict[str, Any], ...] = ()
    bearer: str | None = None
    ready: int = 200

    def __post_init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.bearer is not None and request.headers.get("Authorization") != f"Bearer {self.bearer}":
            return httpx.Response(401, json={"error": "unauthorised"})
        path = request.url.path
        if path == "/v2/health/ready":
            return httpx.Response(self.ready)
        if path == "/v2/models/m":
            return httpx.Response(200, json={"name": "m", "inputs": list(self.inputs), "outputs": list(self.outputs)})
        if path == "/v2/models/m/infer":
            tensor = json.loads(request.content)["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
            return self.answer(x, json.loads(request.content)["outputs"][0]["name"])
        return httpx.Response(404, json={"error": f"Model {path.split('/')[3]} not found"})

    @property
    def requested_outputs(self) -> list[list[dict[str, Any]]]:
        return [json.loads(r.content)["outputs"] for r in self.requests if r.url.path.endswith("/infer")]


def _connect(server: Server, model: str = "m", **kwargs: Any) -> RemoteClassifier:
    options: dict[str, Any] = {"input_shape": (3,), "n_classes": 2, "input_name": "x", "output_name": "predict"}
    options.update(kwargs)
    return connect(URL, model, transport=httpx.MockTransport(server), **options)


# -- what works ----------------------------------------------------------------------------------------------------
def test_scores_are_requested_by_name_in_every_request() -> None:
    server = Server(scores)
    with _connect(server, output_name="predict_proba") as clf:
        assert not clf.label_only
        check_classifier(clf, X)
        assert clf.predict(X).tolist() == TRUE_LABELS.tolist()
    assert server.requested_outputs
    assert all(outputs == [{"name": "predict_proba"}] for outputs in server.requested_outputs)


def test_a_label_endpoint_gives_a_label_only_classifier() -> None:
    server = Server(labels)
    with _connect(server, probe=X[:2]) as clf:
        assert clf.label_only
        assert "labels" in repr(clf)
        proba = clf.predict_proba(X)
        np.testing.assert_array_equal(proba, np.eye(2, dtype=np.float32)[TRUE_LABELS])
        check_classifier(clf, X)


def test_string_labels_are_read_through_the_classes() -> None:
    names = np.array(["benign", "malignant"])

    def strings(x: np.ndarray, name: str) -> httpx.Response:
        return _tensor(name, names[(x[:, 0] > 0).astype(int)].tolist(), [len(x), 1], "BYTES")

    with _connect(Server(strings), n_classes=None, classes=("benign", "malignant")) as clf:
        assert (clf.label_only, clf.n_classes) == (True, 2)
        assert clf.predict(X).tolist() == TRUE_LABELS.tolist()
    with pytest.raises(RemoteModelError, match="holds the label 'benign'") as err:
        _connect(Server(strings))
    assert "--classes" in err.value.cli_remedy


def test_names_and_shapes_come_from_the_metadata_when_declared() -> None:
    server = Server(
        scores,
        inputs=({"name": "features", "datatype": "FP32", "shape": [-1, 3]},),
        outputs=({"name": "proba", "datatype": "FP32", "shape": [-1, 2]},),
    )
    with connect(URL, "m", transport=httpx.MockTransport(server)) as clf:
        assert (clf.input_name, clf.output_name, clf.input_shape, clf.n_classes) == ("features", "proba", (3,), 2)
    assert json.loads(server.requests[-1].content)["inputs"][0]["name"] == "features"


def test_the_default_probe_is_a_row_of_zeros_inside_the_bounds() -> None:
    server = Server(scores)
    _connect(server, output_name="p", clip_values=Bounds(1.0, 2.0)).close()
    assert json.loads(server.requests[-1].content)["inputs"][0]["data"] == [1.0, 1.0, 1.0]


def test_connect_to_the_projects_own_oip_server(cancer_pipeline: object, cancer: Dataset) -> None:
    served = SklearnClassifier(cancer_pipeline)
    with (
        serve_classifier(served, model_name="cancer") as server,
        connect(server.url, "cancer", probe=cancer.x[:3]) as clf,
    ):
        assert (clf.input_shape, clf.n_classes, clf.label_only) == ((30,), 2, False)
        np.testing.assert_allclose(clf.predict_proba(cancer.x[:20]), served.predict_proba(cancer.x[:20]), atol=1e-6)


def test_the_constructor_in_score_mode_names_the_output_to_ask_for() -> None:
    """The failure this module was rewritten for: labels where scores were expected, read as a shape error."""
    clf = RemoteClassifier(
        URL, "m", input_name="x", output_name="predict", input_shape=(3,), n_classes=2,
        transport=httpx.MockTransport(Server(labels)),
    )  # fmt: skip
    with pytest.raises(RemoteModelError, match="holds labels, not class scores") as err:
        clf.predict_proba(X)
    assert "predict_proba" in err.value.remedy


def test_labels_outside_the_classes_are_refused() -> None:
    def three(x: np.ndarray, name: str) -> httpx.Response:
        return _tensor(name, [2] * len(x), [len(x)], "INT64")

    with pytest.raises(RemoteModelError, match="holds the label 2, outside the 2 classes"):
        _connect(Server(three))


# -- one line for each way it fails --------------------------------------------------------------------------------
def _traceback(x: np.ndarray, name: str) -> httpx.Response:
    text = (
        'Traceback (most recent call last):\n  File "sklearn.py", line 9\nValueError: X has 3 features, but 4 expected.'
    )
    return httpx.Response(500, text=text)


def _regression(x: np.ndarray, name: str) -> httpx.Response:
    return _tensor(name, x[:, 0] * 0.37 + 0.5, [len(x), 1], "FP64")


def _three_scores(x: np.ndarray, name: str) -> httpx.Response:
    return _tensor(name, np.full((len(x), 3), 1 / 3), [len(x), 3], "FP64")


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


FEATURES = ({"name": "features", "datatype": "FP32", "shape": [-1, 3]},)

FAILURES: list[tuple[str, Server | Callable[[httpx.Request], httpx.Response], dict[str, Any], type, str]] = [
    ("unreachable", _unreachable, {}, RemoteModelError, "Cannot reach the model server: GET .* failed: ConnectError"),
    ("not-oip", Server(labels, ready=404), {}, RemoteModelError, "does not answer as an Open Inference Protocol v2"),
    ("not-ready", Server(labels, ready=503), {}, RemoteModelError, "is not ready"),
    ("no-credentials", Server(labels, bearer="t"), {}, RemoteModelError, "refused the request as unauthorised"),
    ("unknown-model", Server(labels), {"model": "nope"}, RemoteModelError, "has no model 'nope'.*answered 404"),
    ("names-missing", Server(labels), {"input_name": None, "output_name": None}, RemoteModelError,
     "declares no input or output names"),
    ("wrong-input-name", Server(labels, inputs=FEATURES), {}, RemoteModelError,
     "has no input 'x'; its metadata declares 'features'"),
    ("declared-shape", Server(labels, inputs=FEATURES), {"input_name": "features", "input_shape": (4,)},
     InvalidInputError, r"declares inputs of shape \(3,\); the data has rows of shape \(4,\)"),
    ("probe-fails", Server(_traceback), {}, RemoteModelError,
     r"failed on a probe input of shape \(1, 3\).* HTTP 500: ValueError: X has 3 features, but 4 expected\.$"),
    ("neither", Server(_regression), {}, RemoteModelError, "does not hold class scores or labels: shape"),
    ("class-count", Server(_three_scores), {}, InvalidInputError,
     "gives 3 class scores per input; the data has 2 classes"),
    ("labels-not-scores", Server(labels), {"output": "probabilities"}, RemoteModelError,
     "holds labels, not class scores"),
    ("scores-not-labels", Server(scores), {"output": "labels"}, RemoteModelError, "does not hold labels"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("server", "kwargs", "error", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_each_failure_is_one_clear_line(
    server: Callable[[httpx.Request], httpx.Response], kwargs: dict[str, Any], error: type, message: str
) -> None:
    kwargs = dict(kwargs)
    model = kwargs.pop("model", "m")
    with pytest.raises(error, match=message) as err:
        _connect(server, model, **kwargs)  # type: ignore[arg-type]
    assert isinstance(err.value, ModelShieldError)
    assert "\n" not in err.value.message
    assert err.value.remedy != ModelShieldError.default_remedy


def test_missing_names_are_named_as_options() -> None:
    with pytest.raises(RemoteModelError) as err:
        _connect(Server(labels), input_name=None, output_name=None)
    assert "--input-name and --output-name" in err.value.cli_remedy
    assert "input_name= and output_name=" in err.value.remedy
    with pytest.raises(RemoteModelError, match="declares no output names") as err:
        _connect(Server(labels), output_name=None)
    assert "--output-name" in err.value.cli_remedy
    assert "--input-name" not in err.value.cli_remedy


# -- secrets and arguments -----------------------------------------------------------------------------------------
def test_headers_are_sent_and_their_values_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    server = Server(labels, bearer="s3cr3t")
    with caplog.at_level(logging.DEBUG, logger="modelshield"):
        clf = _connect(server, headers={"Authorization": "Bearer s3cr3t"})
        clf.predict(X)
    assert {r.headers["Authorization"] for r in server.requests} == {"Bearer s3cr3t"}
    assert "s3cr3t" not in repr(clf) + caplog.text
    with pytest.raises(RemoteModelError, match="answered 401") as err:
        _connect(server, headers={"Authorization": "Bearer wr0ng"})
    shown = err.value.diagnostics() + err.value.cli_remedy
    assert "wr0ng" not in shown
    assert "(Authorization) were not accepted" in shown
    with pytest.raises(RemoteModelError, match="answered 401") as err:
        _connect(server)
    assert "--header 'Authorization: Bearer TOKEN'" in err.value.cli_remedy


def test_headers_over_plain_http_to_another_host_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelshield"):
        _connect(Server(labels), headers={"Authorization": "Bearer s3cr3t"}).close()
    assert "Authorization in clear text" in caplog.text
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://model.test", "must start with http:// or https://"),
        ("model.test:8080", "must start with http:// or https://"),
        ("http://user:hunter2@model.test", "contains a user name or password"),
        ("http://model.test:80x", "malformed port"),
        ("http://model.test/?token=1", "query or fragment"),
        ("http://", "names no host"),
    ],
)
def test_urls_are_checked_before_any_request(url: str, message: str) -> None:
    server = Server(labels)
    with pytest.raises(InvalidParameterError, match=message) as err:
        connect(url, "m", transport=httpx.MockTransport(server))
    assert "hunter2" not in err.value.diagnostics()
    assert server.requests == []


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer s3cr3t\r\nX-Evil: 1"}, {"Bad Name": "s3cr3t"}])
def test_bad_headers_are_refused_without_showing_the_value(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidParameterError) as err:
        _connect(Server(labels), headers=headers)
    assert "s3cr3t" not in err.value.diagnostics()


# -- a label-only target in an audit -------------------------------------------------------------------------------
class _Probe(Check[NoSettings, int]):
    title = description = "test check"
    budgets = NO_SETTINGS

    def __init__(self, name: str, requires: frozenset[Requirement]) -> None:
        self.name, self.requires = name, requires

    def measure(self, context: CheckContext, settings: NoSettings) -> int:
        return int(context.target.classifier.predict(context.target.test.x).sum())

    def judge(self, measurement: int) -> Sequence[Finding]:
        return []


def test_checks_that_need_scores_are_skipped_on_a_label_only_target() -> None:
    data = Dataset(X, TRUE_LABELS, Schema.continuous(("a", "b", "c")), ("no", "yes"))
    registry = CheckRegistry(
        [_Probe("labels-do", frozenset()), _Probe("scores-needed", frozenset({Requirement.SCORES}))]
    )
    with _connect(Server(labels)) as clf:
        report = Auditor(AuditOptions(checks=("labels-do", "scores-needed")), registry=registry).run(
            Target("remote", clf, data)
        )
    runs = {run.name: run for run in report.checks}
    assert runs["labels-do"].status is CheckStatus.PASSED
    assert runs["scores-needed"].status is CheckStatus.SKIPPED
    assert runs["scores-needed"].reason == "needs class scores, and RemoteClassifier returns labels only"
