"""The ``evasion`` check's judge on hand-made measurements: every severity boundary, the reference ε, the
reliability findings, the metrics and evidence; and the settings each budget buys. No attack runs here."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from modelshield.attacks.evasion.evaluation import Reliability
from modelshield.audit.checks.evasion import (
    EVASION,
    SEVERITY_THRESHOLDS,
    EvasionMeasurement,
    EvasionSettings,
    ImageExample,
    PerturbationFocus,
    RecordExample,
    severity_of,
)
from modelshield.audit.interface import Budget
from modelshield.findings import Finding, Severity

LABELS = ("0.05", "0.1", "0.25", "0.5", "1")
GRID = (0.05, 0.1, 0.25, 0.5, 1.0)


def measurement(*, robust_at_reference: float = 0.45, clean: float = 0.9, **changes: Any) -> EvasionMeasurement:
    """A tabular measurement: worst case 0.8, 0.6, ``robust_at_reference`` (at ε = 0.25), 0.2, 0.0."""
    worst = (0.8, 0.6, robust_at_reference, 0.2, 0.0)
    base = EvasionMeasurement(
        unit="standard deviations",
        eps=GRID,
        eps_labels=LABELS,
        reference_eps=0.25,
        clean_accuracy=clean,
        n=200,
        n_classes=3,
        robust={"fgsm": (0.85, 0.7, 0.6, 0.4, 0.2), "pgd": worst},
        worst=worst,
        worst_per_class=tuple((w, w, math.nan) for w in worst),
        queries=12_345,
    )
    return dataclasses.replace(base, **changes)


def robust_finding(findings: list[Finding] | tuple[Finding, ...]) -> Finding:
    (finding,) = [f for f in findings if f.id == "evasion.robust-accuracy"]
    return finding


@pytest.mark.parametrize(
    ("robust", "clean", "expected"),
    [
        (0.0, 0.9, Severity.HIGH),
        (0.4, 0.8, Severity.MEDIUM),  # exactly half of clean accuracy: no longer high
        (0.3999, 0.8, Severity.HIGH),  # just below half
        (0.8, 1.0, Severity.LOW),  # exactly 80%: no longer medium
        (0.7999, 1.0, Severity.MEDIUM),  # just below 80%
        (0.9, 0.9, Severity.LOW),
        (0.0, 0.0, Severity.HIGH),  # a model that is never right has nothing to lose, and no robustness either
    ],
)
def test_severity_boundaries(robust: float, clean: float, expected: Severity) -> None:
    assert severity_of(robust, clean) is expected
    finding = robust_finding(EVASION.judge(measurement(robust_at_reference=robust, clean=clean)))
    assert finding.severity is expected
    assert finding.metrics["robust_accuracy_at_reference"] == round(robust, 4)


def test_thresholds_are_the_documented_ones() -> None:
    assert SEVERITY_THRESHOLDS == ((0.5, Severity.HIGH), (0.8, Severity.MEDIUM))


def test_the_grid_point_nearest_the_reference_decides() -> None:
    # the reference ε 0.05 of the range, on a grid in input units scaled by 2 (range width 2): 0.1 is nearest
    m = dataclasses.replace(
        measurement(),
        eps=(0.02, 0.06, 0.1, 0.2, 0.4),
        eps_labels=("0.01", "0.03", "0.05", "0.1", "0.2"),
        reference_eps=0.1,
        unit="of the input range",
        worst=(0.9, 0.9, 0.1, 0.0, 0.0),
    )
    finding = robust_finding(EVASION.judge(m))
    assert finding.metrics["reference_eps"] == "0.05"
    assert finding.metrics["robust_accuracy_at_reference"] == 0.1
    assert finding.severity is Severity.HIGH
    assert "ε = 0.05 of the input range" in finding.title


def test_metrics_charts_and_description() -> None:
    finding = robust_finding(EVASION.judge(measurement(robust_at_reference=0.456789, clean=0.912345)))
    assert dict(finding.metrics) == {
        "clean_accuracy": 0.9123,
        "reference_eps": "0.25",
        "robust_accuracy_at_reference": 0.4568,
        "robust_accuracy": {"0.05": 0.8, "0.1": 0.6, "0.25": 0.4568, "0.5": 0.2, "1": 0.0},
        "evaluation": "white-box",
        "upper_bound": False,
        "restarts": 1,
        "samples": 200,
        "queries": 12_345,
    }
    assert finding.title == "Adversarial inputs cut accuracy from 91% to 46% at ε = 0.25 standard deviations"
    assert finding.description.startswith(
        "Worst case per input over fgsm, pgd (PGD and APGD with 1 random start) and the Square attack on the "
        "inputs those left, on 200 test inputs."
    )
    curve, per_class = finding.charts
    assert curve.x == (0.05, 0.1, 0.25, 0.5, 1.0)
    assert list(curve.series) == ["fgsm", "pgd", "worst case"]
    assert per_class.series["robust accuracy"] == (0.456789, 0.456789, 0.0)  # NaN (class absent) drawn as 0
    assert finding.owasp is not None and finding.owasp.value == "ML01"
    assert finding.check == "evasion"


def test_where_the_perturbation_fell_against_saliency_is_reported() -> None:
    focus = PerturbationFocus(records=29, inputs=64, top=6, share_on_top=0.25, spearman=0.7125)
    finding = robust_finding(EVASION.judge(measurement(focus=focus)))
    assert finding.metrics["perturbation_on_salient_pixels"] == 0.25
    assert finding.metrics["salient_pixels_share"] == round(6 / 64, 4)
    assert finding.metrics["perturbation_saliency_spearman"] == 0.7125
    assert "ranks with the clean images' saliency at ρ = 0.71" in finding.description
    assert "took 25% of the change (2.7 times their share" in finding.description
    assert "perturbation_on_salient_pixels" not in robust_finding(EVASION.judge(measurement())).metrics


def test_the_perturbation_of_a_model_that_looks_at_half_the_image_follows_its_saliency() -> None:
    """Ground truth: a network that sees only the left half of the digit. Its gradients are zero on the right half,
    so PGD moves those pixels only by its random start, and the perturbation map ranks with the saliency map."""
    import numpy as np
    import torch

    from modelshield.attacks.evasion.evaluation import evaluate_robustness
    from modelshield.audit.checks.evasion import _focus
    from modelshield.data import load_digits
    from modelshield.models.interface import Bounds
    from modelshield.models.torch_classifier import TorchClassifier

    data = load_digits()
    x, y = np.array(data.x[:600], np.float32), np.array(data.y[:600], np.int64)
    torch.manual_seed(0)
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1.0

    class LeftHalf(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return self.linear((a * left).flatten(1))

    net = LeftHalf()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimiser.step()
    model = TorchClassifier(net.eval(), n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0), device="cpu")
    evaluation = evaluate_robustness(model, x[:100], y[:100], eps=(0.1,), steps=20, seed=0, blackbox_queries=50)
    focus = _focus(evaluation, 0.1, x[:100], model)
    assert focus is not None and focus.records >= 2
    assert focus.spearman > 0.5 and focus.lift > 1.2, focus

    # The same network behind a rounding of its input (gradient masking): zero gradients, a flat saliency map, no
    # ranking to compare with, so no figure rather than a warning or a made-up correlation.
    class Rounded(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return net(torch.round(a * 4) / 4)

    masked = TorchClassifier(Rounded().eval(), n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0),
                             device="cpu")  # fmt: skip
    assert _focus(evaluation, 0.1, x[:100], masked) is None


def test_median_minimal_distance_only_when_deepfool_ran() -> None:
    assert "median_minimal_l2_distance" not in robust_finding(EVASION.judge(measurement())).metrics
    with_distances = measurement(minimal_distances=(0.5, 0.1, 0.3))
    assert robust_finding(EVASION.judge(with_distances)).metrics["median_minimal_l2_distance"] == 0.3


def test_a_black_box_measurement_is_an_upper_bound_in_title_metrics_and_description() -> None:
    finding = robust_finding(EVASION.judge(measurement(white_box=False, access="SklearnClassifier: no gradients")))
    assert finding.title.endswith("(black-box upper bound)") and "to at most 45%" in finding.title
    assert finding.metrics["evaluation"] == "black-box" and finding.metrics["upper_bound"] is True
    assert finding.description.startswith("Upper bound: black-box attacks only (fgsm, pgd)")


def test_each_failed_reliability_check_adds_a_high_finding() -> None:
    problems = (Reliability("unbounded", "PGD leaves 40% accuracy."), Reliability("not-monotone", "It rises."))
    findings = EVASION.judge(measurement(reliability=problems))
    unreliable = [f for f in findings if f.id == "evasion.unreliable-evaluation"]
    assert [(f.severity, f.evidence["check"], f.description) for f in unreliable] == [
        (Severity.HIGH, "unbounded", "PGD leaves 40% accuracy."),
        (Severity.HIGH, "not-monotone", "It rises."),
    ]
    assert [f.id for f in EVASION.judge(measurement())] == ["evasion.robust-accuracy"]


def test_examples_become_json_evidence() -> None:
    examples = (
        ImageExample("cat -> dog", clean=((0.0, 0.5), (1.0, 0.25)), adversarial=((0.1, 0.5), (0.9, 0.25))),
        RecordExample("#3: no -> yes", changes=(("age", "41", "43.5"),)),
    )
    finding = robust_finding(EVASION.judge(measurement(examples=examples)))
    assert finding.to_dict()["evidence"] == {
        "examples": [
            {"label": "cat -> dog", "clean": [[0.0, 0.5], [1.0, 0.25]], "adversarial": [[0.1, 0.5], [0.9, 0.25]]},
            {"label": "#3: no -> yes", "changes": [["age", "41", "43.5"]]},
        ]
    }


def test_judge_is_pure_and_the_measurement_frozen() -> None:
    m = measurement()
    assert [f.to_dict() for f in EVASION.judge(m)] == [f.to_dict() for f in EVASION.judge(m)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.clean_accuracy = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.robust["pgd"] = (1.0,) * 5  # type: ignore[index]


def test_budgets_buy_todays_figures() -> None:
    assert dict(EVASION.budgets) == {
        Budget.QUICK: EvasionSettings(samples=200, steps=10, queries=250, restarts=1),
        Budget.STANDARD: EvasionSettings(samples=1000, steps=40, queries=1000, restarts=5),
        Budget.THOROUGH: EvasionSettings(samples=10_000, steps=160, queries=4000, restarts=10),
    }
