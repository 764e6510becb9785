"""ONNX graphs converted to torch for white-box attacks: kept only when the torch module gives ONNX Runtime's scores
and its gradients are the original network's; anything else refused, with the reason."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from modelshield.data import Dataset
from modelshield.models import Bounds, OnnxClassifier, TorchClassifier, onnx_torch
from modelshield.models.onnx_torch import Conversion, to_torch

UNIT = Bounds(0.0, 1.0)


def _cnn() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 2 * 2, 10),
    ).eval()


class _PooledCnn(torch.nn.Module):
    """Convolutions, a residual sum and a global mean: exported at opset 18 and later as ``ReduceMean`` with its
    axes as an input, which onnx2torch converts only once the graph is converted down to opset 17."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = h + torch.relu(self.conv2(h))
        out: torch.Tensor = self.head(h.mean(dim=(2, 3)))
        return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.asarray((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30))


def _converted(path: Path, probe: np.ndarray, **kwargs: object) -> tuple[OnnxClassifier, Conversion]:
    onnx_model = OnnxClassifier(path, clip_values=UNIT, **kwargs)  # type: ignore[arg-type]
    conversion = to_torch(onnx_model, probe, device="cpu")
    assert conversion.classifier is not None, conversion.reason
    return onnx_model, conversion


def _assert_same_network(
    net: torch.nn.Module, onnx_model: OnnxClassifier, conversion: Conversion, digits: Dataset
) -> None:
    white_box = conversion.classifier
    assert white_box is not None
    assert (white_box.n_classes, white_box.input_shape, white_box.clip_values) == (10, (1, 8, 8), UNIT)
    x, y = digits.x[:48], digits.y[:48]
    np.testing.assert_allclose(white_box.predict_proba(x), onnx_model.predict_proba(x), atol=1e-5)
    original = TorchClassifier(net, n_classes=10, input_shape=(1, 8, 8), clip_values=UNIT, device="cpu")
    assert _cosines(white_box.loss_gradient(x, y), original.loss_gradient(x, y)).min() > 0.99


@pytest.mark.parametrize("name", ["cnn", "mlp", "pooled"])
def test_a_network_converts_with_the_scores_and_gradients_of_the_original(
    name: str,
    digits: Dataset,
    digits_net: torch.nn.Module,
    export_onnx: Callable[..., Path],
    tmp_path: Path,
) -> None:
    net = {"cnn": _cnn, "pooled": lambda: _PooledCnn().eval(), "mlp": lambda: digits_net}[name]()
    path = export_onnx(net, tmp_path / f"{name}.onnx", (1, 8, 8))
    onnx_model, conversion = _converted(path, digits.x[:200])
    assert conversion.max_difference is not None and conversion.max_difference < 1e-4
    assert "264 inputs (200 probe, 64 random)" in conversion.reason
    assert conversion.classifier is not None and conversion.classifier.output == "logits"
    logits = conversion.classifier.logits(digits.x[:64])
    np.testing.assert_allclose(logits, onnx_model.raw_scores(digits.x[:64]), atol=1e-4, rtol=1e-3)
    _assert_same_network(net, onnx_model, conversion, digits)
    assert onnx_model.queries == 48  # the verification is no query; only the comparison above is


def test_a_softmax_output_converts_as_probabilities(
    digits: Dataset, export_onnx: Callable[..., Path], tmp_path: Path
) -> None:
    net = _cnn()
    path = export_onnx(net, tmp_path / "softmax.onnx", (1, 8, 8), softmax=True)
    onnx_model, conversion = _converted(path, digits.x[:100])
    assert conversion.classifier is not None and conversion.classifier.output == "probabilities"
    assert conversion.max_difference is not None and conversion.max_difference < 1e-5
    _assert_same_network(net, onnx_model, conversion, digits)


def test_a_flat_graph_takes_image_shaped_inputs(
    digits: Dataset, export_onnx: Callable[..., Path], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)).eval()
    path = export_onnx(net, tmp_path / "flat.onnx", (64,))
    onnx_model, conversion = _converted(path, digits.x[:50], input_shape=(1, 8, 8))
    assert onnx_model.flattens_input
    assert conversion.classifier is not None
    np.testing.assert_allclose(
        conversion.classifier.predict_proba(digits.x[:50]), onnx_model.predict_proba(digits.x[:50]), atol=1e-5
    )


def test_the_conversion_is_remembered_for_the_same_probe(
    digits: Dataset, digits_net: torch.nn.Module, export_onnx: Callable[..., Path], tmp_path: Path
) -> None:
    onnx_model = OnnxClassifier(export_onnx(digits_net, tmp_path / "mlp.onnx", (1, 8, 8)), clip_values=UNIT)
    first = onnx_model.torch_conversion(digits.x[:20])
    assert onnx_model.torch_conversion(digits.x[:20].copy()) is first
    assert onnx_model.torch_conversion(digits.x[:21]) is not first


@pytest.mark.parametrize("estimator", [LogisticRegression(max_iter=500), DecisionTreeClassifier(max_depth=3)])
def test_a_scikit_learn_graph_is_refused_quickly(
    estimator: object, cancer: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skl2onnx import to_onnx

    from modelshield.models import onnx_torch

    model = estimator.fit(cancer.x, cancer.y)  # type: ignore[attr-defined]
    path = tmp_path / "sklearn.onnx"
    path.write_bytes(to_onnx(model, cancer.x[:1], target_opset=17).SerializeToString())
    onnx_model = OnnxClassifier(path)

    def never(*_args: object) -> None:  # refused from the node list, before any conversion is tried
        raise AssertionError("the converter ran")

    monkeypatch.setattr(onnx_torch, "_onnx2torch_convert", never)
    conversion = to_torch(onnx_model, cancer.x[:50])
    assert conversion.classifier is None and conversion.max_difference is None
    assert "no torch equivalent" in conversion.reason
    assert "ZipMap" in conversion.reason


def test_scores_that_differ_are_refused(
    digits: Dataset,
    digits_net: torch.nn.Module,
    export_onnx: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrapper = onnx_torch._wrapper_class()

    class Tampered(wrapper):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = super().forward(x) + 0.1
            return out

    monkeypatch.setattr(onnx_torch, "_wrapper_class", lambda: Tampered)
    onnx_model = OnnxClassifier(export_onnx(digits_net, tmp_path / "mlp.onnx", (1, 8, 8)), clip_values=UNIT)
    conversion = to_torch(onnx_model, digits.x[:20])
    assert conversion.classifier is None
    assert conversion.max_difference == pytest.approx(0.1, abs=1e-4)
    assert "differ from ONNX Runtime's by up to 0.1 on 84 inputs" in conversion.reason


def test_a_difference_within_tolerance_passes_and_beyond_it_fails(
    digits: Dataset, digits_net: torch.nn.Module, export_onnx: Callable[..., Path], tmp_path: Path
) -> None:
    onnx_model = OnnxClassifier(export_onnx(digits_net, tmp_path / "mlp.onnx", (1, 8, 8)), clip_values=UNIT)
    exact = to_torch(onnx_model, digits.x[:20], rtol=0.0, atol=0.0)
    assert exact.max_difference is not None
    assert (exact.classifier is None) == (exact.max_difference > 0.0)


def test_outputs_cut_from_the_input_are_refused(
    digits: Dataset,
    digits_net: torch.nn.Module,
    export_onnx: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrapper = onnx_torch._wrapper_class()

    class Detached(wrapper):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = super().forward(x).detach()
            return out

    monkeypatch.setattr(onnx_torch, "_wrapper_class", lambda: Detached)
    onnx_model = OnnxClassifier(export_onnx(digits_net, tmp_path / "mlp.onnx", (1, 8, 8)), clip_values=UNIT)
    conversion = to_torch(onnx_model, digits.x[:20])
    assert conversion.classifier is None and conversion.max_difference is not None
    assert "not differentiable" in conversion.reason


def _hand_built(path: Path, op: str) -> Path:
    """A graph ``op(x @ w)`` of two classes over four features, written with onnx's helpers."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], np.linspace(-1, 1, 8).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["scores"])],
        "hand_built",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def test_an_operator_onnx2torch_lacks_is_refused(tmp_path: Path) -> None:
    onnx_model = OnnxClassifier(_hand_built(tmp_path / "shrink.onnx", "Shrink"), clip_values=UNIT)
    conversion = to_torch(onnx_model)
    assert conversion.classifier is None and conversion.max_difference is None
    assert conversion.reason.startswith("onnx2torch cannot convert the graph")
    assert "Shrink" in conversion.reason


def test_a_hand_built_graph_converts_without_a_probe(tmp_path: Path) -> None:
    onnx_model = OnnxClassifier(_hand_built(tmp_path / "softsign.onnx", "Softsign"), clip_values=UNIT)
    conversion = to_torch(onnx_model, device="cpu")
    assert conversion.classifier is not None, conversion.reason
    assert "64 inputs (0 probe, 64 random)" in conversion.reason


def test_a_graph_in_bytes_converts(
    digits: Dataset, digits_net: torch.nn.Module, export_onnx: Callable[..., Path], tmp_path: Path
) -> None:
    data = export_onnx(digits_net, tmp_path / "mlp.onnx", (1, 8, 8)).read_bytes()
    conversion = to_torch(OnnxClassifier(data, clip_values=UNIT), digits.x[:10], device="cpu")
    assert conversion.classifier is not None, conversion.reason


def test_no_placeholder_for_torchvision_is_left_behind(tmp_path: Path) -> None:
    """onnx2torch imports torchvision, which fails beside a CPU torch when it was built for CUDA: a placeholder
    stands in during that import only."""
    to_torch(OnnxClassifier(_hand_built(tmp_path / "softsign.onnx", "Softsign")), device="cpu")
    left = sys.modules.get("torchvision")
    assert left is None or getattr(left, "__file__", None)
