"""How the evasion check gets its gradients, and how it labels figures without them.

An ONNX network is attacked white-box through its verified PyTorch conversion, so its robust accuracy matches the
PyTorch original's; a model with no gradients is attacked black-box and every figure is labelled an upper bound in
the finding, the JSON and the HTML.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.audit import AuditOptions, Auditor
from modelshield.findings import Finding
from modelshield.models import TorchClassifier
from modelshield.models.interface import Classifier
from modelshield.models.onnx_classifier import OnnxClassifier
from modelshield.target import Target
from modelshield.testing.targets import tiny_target


def _evasion(target: Target) -> tuple[Finding, str, str]:
    from modelshield.reporting import render_html, render_json

    report = Auditor(AuditOptions(checks=("evasion",))).run(target)
    finding = next(f for f in report.findings if f.id == "evasion.robust-accuracy")
    return finding, render_json(report), render_html(report)


def _onnx(clf: TorchClassifier) -> OnnxClassifier:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter: no extra packages needed
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(clf.module.cpu().eval(), (torch.zeros(1, *clf.input_shape),), buffer, input_names=["x"],
                      output_names=["scores"], dynamic_axes={"x": {0: "n"}, "scores": {0: "n"}},
                      dynamo=False)  # fmt: skip
    return OnnxClassifier(buffer.getvalue(), input_shape=clf.input_shape, clip_values=clf.clip_values)


@pytest.fixture(scope="module")
def image() -> Target:
    return tiny_target("image")


def test_an_onnx_network_is_audited_white_box_and_matches_its_pytorch_original(image: Target) -> None:
    clf = image.classifier
    assert isinstance(clf, TorchClassifier)
    original, _, _ = _evasion(image)
    converted, as_json, _ = _evasion(dataclasses.replace(image, classifier=_onnx(clf)))
    assert converted.metrics["evaluation"] == "white-box" and converted.metrics["upper_bound"] is False
    assert "converted to PyTorch" in str(converted.metrics["gradients"])
    ours, theirs = original.metrics["robust_accuracy"], converted.metrics["robust_accuracy"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    assert all(abs(float(theirs[e]) - float(ours[e])) <= 0.02 for e in ours), (theirs, ours)  # type: ignore[arg-type]
    assert '"evaluation": "white-box"' in as_json


def test_a_model_without_gradients_is_labelled_an_upper_bound_everywhere(tmp_path: Path) -> None:
    target = tiny_target("image", white_box=False)  # scikit-learn: no gradients
    finding, as_json, page = _evasion(target)
    assert finding.metrics["evaluation"] == "black-box" and finding.metrics["upper_bound"] is True
    assert "upper bound" in finding.title and "Upper bound" in finding.description
    assert set(finding.metrics["robust_accuracy"]) == {"0.01", "0.03", "0.05", "0.1", "0.2"}  # type: ignore[arg-type]
    record = next(f for f in json.loads(as_json)["findings"] if f["id"] == "evasion.robust-accuracy")
    assert record["metrics"]["upper_bound"] is True
    assert "black-box upper bound" in page


class _LabelsOnly(Classifier):
    """A served model that answers labels only (as a label-only endpoint does): no scores for Square."""

    def __init__(self, inner: Classifier) -> None:
        super().__init__(n_classes=inner.n_classes, input_shape=inner.input_shape, clip_values=inner.clip_values)
        self.inner = inner

    @property
    def label_only(self) -> bool:
        return True

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.eye(self.n_classes, dtype=np.float32)[self.inner.predict(x)]


def test_a_label_only_model_gets_decision_based_and_transfer_attacks() -> None:
    target = tiny_target("image", white_box=False)
    finding, _, _ = _evasion(dataclasses.replace(target, classifier=_LabelsOnly(target.classifier)))
    assert finding.metrics["upper_bound"] is True
    assert "hop-skip-jump, transfer" in finding.description and "square" not in finding.description
    robust = finding.metrics["robust_accuracy"]
    assert isinstance(robust, dict) and float(robust["0.2"]) < float(finding.metrics["clean_accuracy"])  # type: ignore[arg-type]


@pytest.mark.slow  # trains the zoo's digits CNN and audits it twice
def test_an_onnx_cnn_is_within_two_points_of_white_box_pgd(tmp_path: Path) -> None:
    from modelshield.zoo import load_target

    digits = load_target("zoo:digits-cnn", cache_dir=tmp_path)
    clf = digits.classifier
    assert isinstance(clf, TorchClassifier)
    original, _, _ = _evasion(digits)
    converted, _, _ = _evasion(dataclasses.replace(digits, classifier=_onnx(clf)))
    assert converted.metrics["evaluation"] == "white-box"
    ours, theirs = original.metrics["robust_accuracy"], converted.metrics["robust_accuracy"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    assert all(abs(float(theirs[e]) - float(ours[e])) <= 0.02 for e in ours), (theirs, ours)  # type: ignore[arg-type]
