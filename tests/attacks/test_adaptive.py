"""Gradient masking is corrected, not only flagged: masked copies of a breakable model are graded as breakable.

Each masked model wraps the same network (a small MLP on 6x6 images): quantised inputs (zero gradients: BPDA), a
softmax of logits times 100 (saturated probabilities: the logits and margin losses), and Gaussian input noise
(randomness: EOT). Their robust
accuracy must come out no better than the plain network's, up to sampling noise, and the audit grades them high.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from modelshield.attacks.evasion.adaptive import adapt
from modelshield.attacks.evasion.evaluation import evaluate_robustness
from modelshield.audit.checks.evasion import severity_of
from modelshield.findings import Finding, Severity
from modelshield.models import TorchClassifier
from modelshield.target import Target
from modelshield.testing.targets import tiny_target

EPS = (0.1, 0.2)  # where the plain network is breakable: under half its clean accuracy survives


class Quantised(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(v * 8) / 8)  # type: ignore[no-any-return]


class Distilled(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softmax(100 * self.inner(v), dim=1)


class Noisy(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.inner(v + 0.02 * torch.randn_like(v))  # type: ignore[no-any-return]


MASKS = {"quantised": Quantised, "distilled": Distilled, "noisy": Noisy}


@pytest.fixture(scope="module")
def breakable() -> Target:
    return tiny_target("image")


def _masked(target: Target, kind: str) -> TorchClassifier:
    clf = target.classifier
    assert isinstance(clf, TorchClassifier)
    return TorchClassifier(MASKS[kind](clf.module), n_classes=clf.n_classes, input_shape=clf.input_shape,
                           clip_values=clf.clip_values, device="cpu")  # fmt: skip


def test_adapt_names_each_masking_and_leaves_plain_models_alone(breakable: Target) -> None:
    x = breakable.test.x[:32]
    assert isinstance(breakable.classifier, TorchClassifier)
    plain = adapt(breakable.classifier, x)
    assert plain.classifier is breakable.classifier and not plain.notes
    notes = {kind: " ".join(adapt(_masked(breakable, kind), x).notes) for kind in MASKS}
    assert "BPDA" in notes["quantised"] and "round" in notes["quantised"]
    assert "softmax" in notes["distilled"] and "margin" in notes["distilled"]
    assert "EOT" in notes["noisy"]


def test_straight_through_view_keeps_the_forward_pass_and_passes_gradients(breakable: Target) -> None:
    masked = _masked(breakable, "quantised")
    view = adapt(masked, breakable.test.x[:32]).classifier
    x = breakable.test.x[:16]
    np.testing.assert_array_equal(view.predict(x), masked.predict(x))
    y = masked.predict(x)
    assert not np.any(masked.loss_gradient(x, y))  # the masked model: zero gradients everywhere
    assert np.all(np.any(view.loss_gradient(x, y).reshape(len(x), -1) != 0, axis=1))


@pytest.mark.parametrize("kind", sorted(MASKS))
def test_masked_models_are_no_more_robust_than_the_model_they_mask(breakable: Target, kind: str) -> None:
    x, y = breakable.test.x[:80], breakable.test.y[:80]
    honest = evaluate_robustness(breakable.classifier, x, y, eps=EPS, steps=10, blackbox_queries=100)
    masked = evaluate_robustness(_masked(breakable, kind), x, y, eps=EPS, steps=10, blackbox_queries=100)
    assert severity_of(honest.worst[0], honest.clean_accuracy) is Severity.HIGH  # the premise: breakable
    slack = 0.1 if kind == "noisy" else 0.05  # a noisy model answers each query afresh
    assert all(m <= h + slack for m, h in zip(masked.worst, honest.worst, strict=True)), (masked, honest)
    assert severity_of(masked.worst[0], masked.clean_accuracy) is Severity.HIGH
    assert masked.adaptations and masked.white_box


@pytest.mark.slow  # three quick-budget audits
@pytest.mark.parametrize("kind", sorted(MASKS))
def test_the_audit_reports_the_adaptive_attacks_and_no_better_curve(breakable: Target, kind: str) -> None:
    from modelshield.audit import AuditOptions, Auditor

    def curve(target: Target) -> tuple[dict[str, float], Finding]:
        report = Auditor(AuditOptions(checks=("evasion",))).run(target)
        finding = next(f for f in report.findings if f.id == "evasion.robust-accuracy")
        return finding.metrics["robust_accuracy"], finding  # type: ignore[return-value]

    honest, _ = curve(breakable)
    masked, finding = curve(dataclasses.replace(breakable, classifier=_masked(breakable, kind)))
    assert finding.metrics["evaluation"] == "white-box" and finding.metrics["adaptive_attacks"]
    assert finding.metrics["upper_bound"] is False and "Adaptive attacks" in finding.description
    assert all(masked[e] <= honest[e] + 0.1 for e in ("0.1", "0.2")), (masked, honest)
