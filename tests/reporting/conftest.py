"""A realistic report: every severity, charts of both kinds, a skipped and a failed check, hostile text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from modelshield.findings import Chart, CheckRun, CheckStatus, Finding, OwaspMl, Report, Severity, TargetInfo


def make_report(*, extra: tuple[Finding, ...] = ()) -> Report:
    findings = (
        Finding(
            id="evasion.low-robustness",
            check="evasion",
            title="Robust accuracy falls to 3% at eps=8/255",
            severity=Severity.CRITICAL,
            description="PGD-20 drives accuracy from 98% to 3%.",
            remediation="Adversarially train the model.",
            owasp=OwaspMl.ML01,
            atlas=("AML.T0015", "AML.T0043"),
            metrics={"clean_accuracy": 0.98, "robust_accuracy": 0.03, "queries": 12_000},
            charts=(
                Chart(
                    "Robust accuracy against epsilon",
                    "line",
                    x=(0.0, 2 / 255, 4 / 255, 8 / 255),
                    series={"PGD": (0.98, 0.7, 0.3, 0.03), "FGSM": (0.98, 0.8, 0.5, 0.2)},
                    x_label="epsilon",
                    y_label="accuracy",
                    y_range=(0.0, 1.0),
                ),
            ),
        ),
        Finding(
            id="integrity.code-on-load",
            check="integrity",
            title="Model stored in a format that can run code when loaded",
            severity=Severity.HIGH,
            description="model.pkl is a pickle stream.",
            owasp=OwaspMl.ML06,
            atlas=("AML.T0011.000",),
            location="models/model.pkl",
        ),
        Finding(
            id="baseline.generalization-gap",
            check="baseline",
            title="<script>alert('x')</script> gap",
            severity=Severity.MEDIUM,
            description='A "quoted" & <b>bold</b> description',
            evidence={"note": "</pre><script>alert(1)</script>", "nested": {"a": [1, 2]}},
            metrics={"nan_metric": float("nan")},
        ),
        Finding(
            id="baseline.performance",
            check="baseline",
            title="Clean test accuracy 98.0%",
            severity=Severity.INFO,
            description="",
            charts=(Chart("Recall per class", "bar", x=("0", "1", "2"), series={"recall": (0.9, 1.0, 0.95)}),),
        ),
        Finding(id="x.low", check="x", title="Low", severity=Severity.LOW, description="d"),
        *extra,
    )
    return Report(
        target=TargetInfo(
            name="zoo:<digits>",
            model_format="safetensors",
            model_sha256="a" * 64,
            n_classes=10,
            input_shape=(1, 8, 8),
            classifier="TorchClassifier",
            white_box=True,
            model_path="/tmp/cache/model.safetensors",
            train_sha256="b" * 64,
            test_sha256="c" * 64,
        ),
        findings=findings,
        checks=(
            CheckRun("evasion", CheckStatus.FINDINGS, 1.5),
            CheckRun("membership", CheckStatus.SKIPPED, 0.0, "needs the training data"),
            CheckRun("boom", CheckStatus.ERROR, 0.1, "RuntimeError: kaput"),
        ),
        seed=7,
        budget="quick",
        started_at="2026-11-22T10:00:00+00:00",
        duration_s=2.25,
        versions={"modelshield": "0.1.0", "python": "3.11.7"},
        config={"checks": ["evasion", "membership", "boom"]},
    )


@pytest.fixture
def report() -> Report:
    return make_report()


@pytest.fixture
def report_factory() -> Callable[..., Report]:
    return make_report
