"""The ``poisoning`` check's judge on hand-made measurements: the backdoor and label-flipping severity boundaries,
the "working backdoor" rule (success and clean accuracy), the Neural Cleanse finding, and the settings each
budget buys. Nothing is trained here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from modelshield.attacks.poisoning import CurvePoint, SusceptibilityCurve
from modelshield.audit.checks.poisoning import (
    BACKDOOR_RULES,
    FLIP_FRACTIONS,
    FLIP_RULES,
    FRACTIONS,
    POISONING,
    REPEATS,
    BackdoorScan,
    DetectorQuality,
    PoisoningMeasurement,
    PoisoningSettings,
    SanitiserMeasurement,
    TriggerAttribution,
    backdoor_severity,
    flip_severity,
)
from modelshield.audit.interface import Budget
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, Severity


def curve(
    points: Sequence[tuple[float, float, float]], attack: str = "backdoor (patch) to class 1"
) -> SusceptibilityCurve:
    """A curve from (fraction, success rate, clean accuracy) triples, the clean model (fraction 0) first."""
    return SusceptibilityCurve(
        attack=attack,
        points=tuple(
            CurvePoint(fraction=f, n_poison=round(f * 1000), success_rate=s, success_interval=(s, s), clean_accuracy=a)
            for f, s, a in points
        ),
        n_train=1000,
        n_success_inputs=300,
        repeats=1,
        trainer="mlp",
    )


SANITISER = SanitiserMeasurement(
    fraction=0.05,
    poisoned_records=50,
    precision=0.5,
    recall=0.8,
    clean_flagged=0.04,
    removed=80,
    success_after=0.1,
    clean_accuracy_after=0.93,
    detectors=(DetectorQuality("spectral", recall=0.8, clean_flagged=0.04, auc=0.9),),
)
FLIPS = curve([(0.0, 0.05, 0.95), (0.1, 0.1, 0.94)], attack="random label flipping")


def judged(
    backdoor: SusceptibilityCurve, flips: SusceptibilityCurve = FLIPS, scan: BackdoorScan | None = None
) -> dict[str, Finding]:
    m = PoisoningMeasurement(
        backdoor=backdoor, backdoor_sanitiser=SANITISER, label_flip=flips, flip_sanitiser=SANITISER, scan=scan
    )
    return {f.id: f for f in POISONING.judge(m)}


@pytest.mark.parametrize(
    ("needed", "measured", "expected"),
    [
        (0.001, True, Severity.HIGH),
        (0.01, True, Severity.HIGH),  # at the high limit
        (0.0100001, True, Severity.MEDIUM),  # just above it
        (0.05, True, Severity.MEDIUM),  # at the medium limit
        (0.0500001, True, Severity.LOW),  # just above it
        (0.1, True, Severity.LOW),
        (None, True, Severity.LOW),  # no measured fraction worked
        (None, False, Severity.INFO),  # nothing was measured (no fraction below the eligible share)
    ],
)
def test_backdoor_severity_boundaries(needed: float | None, measured: bool, expected: Severity) -> None:
    assert backdoor_severity(needed, measured=measured) is expected


@pytest.mark.parametrize(
    ("points", "expected", "needed"),
    [
        # 1% of poison reaches 90% success with clean accuracy 2 points below the clean model's: high
        ([(0.0, 0.02, 0.9), (0.005, 0.5, 0.9), (0.01, 0.9, 0.88), (0.05, 1.0, 0.9)], Severity.HIGH, 0.01),
        # the same at 1% but 2.5 points of accuracy lost: the backdoor is not free, 5% is the first that works
        ([(0.0, 0.02, 0.9), (0.01, 0.95, 0.875), (0.05, 1.0, 0.9)], Severity.MEDIUM, 0.05),
        # 89.99% success is not a working backdoor
        ([(0.0, 0.02, 0.9), (0.01, 0.8999, 0.9), (0.05, 0.8999, 0.9)], Severity.LOW, None),
        ([(0.0, 0.02, 0.9), (0.02, 0.5, 0.9), (0.1, 0.97, 0.9)], Severity.LOW, 0.1),
        ([(0.0, 0.02, 0.9)], Severity.INFO, None),
    ],
)
def test_backdoor_finding_follows_the_curve(
    points: list[tuple[float, float, float]], expected: Severity, needed: float | None
) -> None:
    finding = judged(curve(points))["poisoning.backdoor"]
    assert finding.severity is expected
    assert finding.metrics["fraction_needed"] == needed
    assert finding.metrics["goal"] == 0.9 and finding.metrics["max_accuracy_drop"] == 0.02
    assert finding.metrics["attack"] == "backdoor (patch) to class 1"
    assert len(finding.metrics["curve"]) == len(points)  # type: ignore[arg-type]
    if needed is not None:
        assert f"{100 * needed:g}% poisoned training records ({round(needed * 1000)} of 1000)" in finding.description
    else:
        assert f"up to {100 * points[-1][0]:g}%" in finding.description


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (0.2, Severity.HIGH),
        (0.10, Severity.HIGH),
        (0.0999, Severity.MEDIUM),
        (0.05, Severity.MEDIUM),
        (0.0499, Severity.LOW),
        (0.02, Severity.LOW),
        (0.0199, Severity.INFO),
        (-0.01, Severity.INFO),  # poisoned model better than the clean one (noise)
    ],
)
def test_flip_severity_boundaries(loss: float, expected: Severity) -> None:
    assert flip_severity(loss) is expected
    # through the judge, with exact arithmetic: one of the two clean accuracies is 0
    clean, flipped = max(loss, 0.0), max(-loss, 0.0)
    flips = curve([(0.0, 1.0, clean), (0.05, 1.0, 0.0), (0.1, 1.0, flipped), (0.2, 1.0, 0.0)])
    finding = judged(curve([(0.0, 0.0, 0.9)]), flips=flips)["poisoning.label-flip"]
    assert finding.severity is expected
    assert finding.metrics["accuracy_loss_at_10pct"] == round(loss, 4)


def test_rules_are_the_documented_ones() -> None:
    assert BACKDOOR_RULES == ((0.01, Severity.HIGH), (0.05, Severity.MEDIUM))
    assert FLIP_RULES == ((0.10, Severity.HIGH), (0.05, Severity.MEDIUM), (0.02, Severity.LOW))


def test_the_sanitiser_is_reported_not_judged() -> None:
    findings = judged(curve([(0.0, 0.02, 0.9), (0.01, 0.95, 0.9)]))
    backdoor = findings["poisoning.backdoor"]
    assert backdoor.severity is Severity.HIGH
    assert backdoor.metrics["sanitiser"] == {
        "fraction": 0.05,
        "poisoned_records": 50,
        "detectors": ["spectral"],
        "precision": 0.5,
        "recall": 0.8,
        "clean_flagged": 0.04,
        "removed": 80,
        "success_after": 0.1,
        "clean_accuracy_after": 0.93,
        "per_detector": {"spectral": {"recall": 0.8, "clean_flagged": 0.04, "auc": 0.9}},
    }
    assert "removed 80% of the poison and 4.0% of the clean records" in backdoor.description
    assert "the attack succeeds 10.0% of the time (clean accuracy 93.0%)" in backdoor.description


TRIGGER = TriggerAttribution(
    explainer="integrated_gradients",
    records=100,
    trigger_values=9,
    input_values=64,
    share_backdoored=0.45,
    share_audited=0.12,
    trigger_inputs=(),
    top_inputs=("input[63]", "input[62]"),
    top_on_trigger=True,
    heat=((0.0, 1.0), (0.5, 0.25)),
    example=((1.0, 0.0), (0.0, 1.0)),
)


def with_trigger(trigger: TriggerAttribution | None, note: str = "") -> Finding:
    m = PoisoningMeasurement(
        backdoor=curve([(0.0, 0.02, 0.9), (0.01, 0.95, 0.9)]),
        backdoor_sanitiser=SANITISER,
        label_flip=FLIPS,
        flip_sanitiser=SANITISER,
        trigger=trigger,
        trigger_note=note,
    )
    return next(f for f in POISONING.judge(m) if f.id == "poisoning.backdoor")


def test_the_backdoor_finding_says_whether_an_explanation_points_at_the_trigger() -> None:
    finding = with_trigger(TRIGGER)
    assert finding.severity is Severity.HIGH  # the curve judges; the explanation informs
    assert "put 45% of their attribution on the trigger's 9 of 64 input values, 3.2 times" in finding.description
    assert (
        "(the audited model: 12%); the input an explanation of such a decision ranks first is part of the trigger."
        in finding.description
    )
    metrics = finding.metrics["trigger_attribution"]
    assert isinstance(metrics, dict) and metrics["lift"] == 3.2 and metrics["trigger_share_of_input"] == 0.140625
    [example] = finding.evidence["examples"]  # type: ignore[misc]
    assert example["clean"] == [[1.0, 0.0], [0.0, 1.0]] and example["adversarial"] == [[0.0, 1.0], [0.5, 0.25]]
    chart = finding.charts[-1]
    assert chart.x == ("the trigger's inputs", "all other inputs")
    assert chart.series["share of the input"] == (0.140625, 0.859375)

    weak = dataclasses.replace(TRIGGER, share_backdoored=0.2, trigger_inputs=("a", "b"), top_on_trigger=False)
    blind = with_trigger(weak)
    assert "input values (a, b), 1.4 times" in blind.description
    assert (
        "the input an explanation of such a decision ranks first (input[63]) is not part of the trigger."
        in blind.description
    )


def test_without_the_audited_models_share_the_finding_says_so() -> None:
    finding = with_trigger(dataclasses.replace(TRIGGER, share_audited=None))
    assert "(the audited model, a black box with this many inputs, was not explained)" in finding.description
    assert finding.metrics["trigger_attribution"]["share_audited"] is None  # type: ignore[index, call-overload]
    assert list(finding.charts[-1].series) == ["model trained with poison", "share of the input"]


def test_an_unmeasured_trigger_attribution_says_why() -> None:
    finding = with_trigger(None, "it is measured at the standard and thorough budgets, not at quick")
    assert finding.metrics["trigger_attribution"] is None and "examples" not in finding.evidence
    assert finding.description.endswith(
        "Where explanations put the trigger was not measured: it is measured at the standard and thorough budgets, "
        "not at quick."
    )


def test_backdoor_scan_is_high_when_a_class_is_flagged() -> None:
    clean = BackdoorScan(
        flagged=(), anomaly_index=(0.5, 0.0, 1.2), mask_norms=(9.0, 10.0, 8.0), attack_success=(0.9, 0.9, 0.9),
        threshold=2.0, inputs=300,
    )  # fmt: skip
    backdoored = dataclasses.replace(clean, flagged=(2,), anomaly_index=(0.5, 0.0, 3.5), mask_norms=(9.0, 10.0, 1.0))
    base = curve([(0.0, 0.0, 0.9)])
    assert "poisoning.backdoor-scan" not in judged(base)
    info = judged(base, scan=clean)["poisoning.backdoor-scan"]
    assert info.severity is Severity.INFO and "largest anomaly index 1.2" in info.description
    high = judged(base, scan=backdoored)["poisoning.backdoor-scan"]
    assert high.severity is Severity.HIGH
    assert high.metrics["flagged_classes"] == [2]
    assert "class 2 (anomaly index 3.5 > 2)" in high.description
    assert high.charts[0].series["mask L1 (pixels)"] == (9.0, 10.0, 1.0)


def test_findings_carry_the_check_and_the_frameworks() -> None:
    findings = judged(curve([(0.0, 0.0, 0.9), (0.01, 1.0, 0.9)]))
    assert {f.check for f in findings.values()} == {"poisoning"}
    assert findings["poisoning.backdoor"].atlas == ("AML.T0020", "AML.T0018")
    assert {f.owasp.value for f in findings.values() if f.owasp} == {"ML02"}


def test_budgets_buy_todays_figures() -> None:
    for budget in Budget:
        settings = POISONING.settings(budget)
        assert settings == PoisoningSettings(
            fractions=FRACTIONS[budget.value],
            flip_fractions=FLIP_FRACTIONS[budget.value],
            repeats=REPEATS[budget.value],
            sanitise=budget is not Budget.QUICK,
        )
    assert POISONING.settings(Budget.QUICK) == PoisoningSettings((0.01, 0.05), (0.1,), 1, sanitise=False)
    assert POISONING.settings(Budget.THOROUGH).repeats == 3


def test_settings_must_measure_label_flipping_where_it_is_judged() -> None:
    with pytest.raises(InvalidParameterError, match=r"must include 0\.1"):
        PoisoningSettings(fractions=(0.01,), flip_fractions=(0.05, 0.2), repeats=1)
    with pytest.raises(InvalidParameterError, match="repeats"):
        PoisoningSettings(fractions=(0.01,), flip_fractions=(0.1,), repeats=0)
