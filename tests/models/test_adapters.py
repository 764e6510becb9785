"""Every adapter passes the same conformance checks; then each adapter's own behaviour and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from modelshield.data import Dataset
from modelshield.errors import FileFormatError, InvalidParameterError, RemoteModelError
from modelshield.models import Bounds, OnnxClassifier, RemoteClassifier, SklearnClassifier, TorchClassifier
from modelshield.testing import OipServer, check_classifier, serve_classifier


# -- scikit-learn ------------------------------------------------------------------------------------------------
def test_sklearn_pipeline_conformance(cancer_pipeline: object, cancer: Dataset) -> None:
    clf = SklearnClassifier(cancer_pipeline)
    assert (clf.n_classes, clf.input_shape) == (2, (30,))
    check_classifier(clf, cancer.x[:20])


def test_sklearn_on_image_shaped_inputs(digits: Dataset) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=300).fit(digits.flat(), digits.y)
    clf = SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    check_classifier(clf, digits.x[:20])
    np.testing.assert_allclose(clf.predict_proba(digits.x[:5]), model.predict_proba(digits.flat()[:5]), rtol=1e-5)


def test_sklearn_refuses_what_it_cannot_use() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    with pytest.raises(InvalidParameterError, match="not fitted"):
        SklearnClassifier(LogisticRegression())
    with pytest.raises(InvalidParameterError, match="no predict_proba"):
        SklearnClassifier(SVC().fit([[0.0], [1.0]], [0, 1]))


# -- ONNX --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("softmax", [False, True], ids=["logits-output", "probability-output"])
def test_onnx_matches_torch(
    tmp_path: Path,
    digits_net: torch.nn.Module,
    digits_sample: np.ndarray,
    softmax: bool,
    export_onnx: Callable[..., Path],
) -> None:
    path = export_onnx(digits_net, tmp_path / "digits.onnx", (1, 8, 8), softmax=softmax)
    clf = OnnxClassifier(path, clip_values=Bounds(0.0, 1.0))
    assert (clf.n_classes, clf.input_shape) == (10, (1, 8, 8))
    reference = TorchClassifier(digits_net, n_classes=10, input_shape=(1, 8, 8), device="cpu")
    np.testing.assert_allclose(clf.predict_proba(digits_sample), reference.predict_proba(digits_sample), atol=1e-5)
    check_classifier(clf, digits_sample)
    from_bytes = OnnxClassifier(path.read_bytes())
    np.testing.assert_array_equal(from_bytes.predict(digits_sample), clf.predict(digits_sample))


def test_onnx_corrupt_or_missing_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "model-truncated.onnx"
    corrupt.write_bytes(b"\x08\x07\x12\x04test" + bytes(40))
    with pytest.raises(FileFormatError, match="not a loadable ONNX model"):
        OnnxClassifier(corrupt)
    with pytest.raises(FileFormatError, match="does not exist"):
        OnnxClassifier(tmp_path / "absent.onnx")


# -- remote (Open Inference Protocol v2) ---------------------------------------------------------------------------
@pytest.fixture
def server(digits_net: torch.nn.Module) -> Iterator[OipServer]:
    served = TorchClassifier(digits_net, n_classes=10, input_shape=(1, 8, 8), device="cpu")
    with serve_classifier(served, model_name="digits") as running:
        yield running


def test_remote_conformance_over_a_real_socket(server: OipServer, digits_sample: np.ndarray) -> None:
    with RemoteClassifier(server.url, "digits", batch_size=7) as clf:
        assert (clf.n_classes, clf.input_shape, clf.input_name) == (10, (1, 8, 8), "input-0")
        np.testing.assert_allclose(
            clf.predict_proba(digits_sample), server.classifier.predict_proba(digits_sample), atol=1e-6
        )
        check_classifier(clf, digits_sample)


def test_remote_reads_logits(digits_net: torch.nn.Module, digits_sample: np.ndarray) -> None:
    served = TorchClassifier(digits_net, n_classes=10, input_shape=(1, 8, 8), device="cpu")
    with (
        serve_classifier(served, model_name="m", output="logits") as running,
        RemoteClassifier(running.url, "m") as clf,
    ):
        np.testing.assert_allclose(clf.predict_proba(digits_sample), served.predict_proba(digits_sample), atol=1e-5)


def test_remote_errors_are_clear(server: OipServer, digits_sample: np.ndarray) -> None:
    with pytest.raises(RemoteModelError, match="answered 404"):
        RemoteClassifier(server.url, "nope")
    with (
        RemoteClassifier(
            server.url, "digits", input_shape=(64,), n_classes=10, input_name="input-0", output_name="probabilities"
        ) as clf,
        pytest.raises(RemoteModelError, match="answered 400"),
    ):
        clf.predict_proba(digits_sample.reshape(len(digits_sample), -1))


def test_remote_server_down() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteModelError, match="failed: ConnectError"):
        RemoteClassifier(f"http://127.0.0.1:{port}", "m", timeout=2.0)


def _declared(transport: httpx.BaseTransport, **kwargs: object) -> RemoteClassifier:
    """A remote classifier whose shapes and names are given, so it sends no metadata request."""
    return RemoteClassifier(
        "http://model.test",
        "m",
        input_name="x",
        output_name="p",
        input_shape=(3,),
        n_classes=2,
        transport=transport,
        **kwargs,  # type: ignore[arg-type]
    )


def _answering(body: object, status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"outputs": [{"name": "p", "shape": [2, 3], "datatype": "FP32", "data": [0.5] * 6}]}, "has shape"),
        ({"outputs": [{"name": "q", "shape": [2, 2], "datatype": "FP32", "data": [0.5] * 4}]}, "no output 'p'"),
        ({"outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32", "data": [0.5] * 3}]}, "does not hold 4"),
        ({"outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32", "data": ["a", 1, 1, 1]}]}, "not finite"),
        ({"unexpected": True}, "no outputs list"),
        ([1, 2], "did not answer a JSON object"),
    ],
)
def test_remote_refuses_malformed_answers(body: object, message: str) -> None:
    clf = _declared(_answering(body))
    with pytest.raises(RemoteModelError, match=message):
        clf.predict_proba(np.zeros((2, 3), dtype=np.float32))


def test_remote_timeout_and_secret_headers() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    clf = _declared(httpx.MockTransport(slow), headers={"Authorization": "Bearer s3cr3t-token"})
    with pytest.raises(RemoteModelError, match="timed out") as err:
        clf.predict_proba(np.zeros((1, 3), dtype=np.float32))
    assert "s3cr3t" not in err.value.diagnostics()
