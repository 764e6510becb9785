"""A realistic report to render: findings of every severity, charts of both kinds, a skipped and a failed check,
and hostile text (HTML, markup, control characters) where untrusted text goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from modelshield.findings import Chart, CheckRun, CheckStatus, Finding, OwaspMl, Report, Severity, TargetInfo
from modelshield.reporting import load_report_schema

SARIF_SCHEMA_FILE = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"

HOSTILE = "<script>alert('x')</script>"

EPSILON_CURVE = Chart(
    "Robust accuracy against epsilon",
    "line",
    x=(0.0, 2 / 255, 4 / 255, 8 / 255),
    series={"PGD": (0.98, 0.7, 0.3, 0.03), "FGSM": (0.98, 0.8, 0.5, 0.2)},
    x_label="epsilon",
    y_label="accuracy",
    y_range=(0.0, 1.0),
)
RECALL_BARS = Chart(
    "Recall per class, clean and attacked",
    "bar",
    x=("0", "1", "2", "3"),
    series={"clean": (0.9, 1.0, 0.95, 0.97), "attacked": (0.1, 0.4, 0.05, 0.3)},
    x_label="class",
    y_label="recall",
    y_range=(0.0, 1.0),
)
MEMBERSHIP_ROC = Chart(
    "Membership TPR per threshold",
    "line",
    x=("low", "mid", "high"),
    series={"TPR": (0.4, 0.2, 0.05)},
)


def make_findings() -> tuple[Finding, ...]:
    """Two findings of each severity, as the audit's checks would report them."""
    return (
        Finding(
            id="evasion.low-robustness",
            check="evasion",
            title="Robust accuracy falls to 3% at eps=8/255",
            severity=Severity.CRITICAL,
            description="PGD-20 drives accuracy from 98% to 3%.",
            remediation="Adversarially train the model (modelshield harden --defense adversarial-training).",
            owasp=OwaspMl.ML01,
            atlas=("AML.T0015", "AML.T0043"),
            metrics={"clean_accuracy": 0.98, "robust_accuracy": 0.03, "queries": 12_000},
            charts=(EPSILON_CURVE, RECALL_BARS),
        ),
        Finding(
            id="integrity.code-on-load",
            check="integrity",
            title="Model file can run code when it is loaded",
            severity=Severity.CRITICAL,
            description="model.pkl calls os.system at load time.",
            remediation="Do not load this file; convert the model to safetensors.",
            owasp=OwaspMl.ML06,
            atlas=("AML.T0010.003", "AML.T0011.000"),
            evidence={"calls": ["os.system"], "offset": 112},
            location="models/model.pkl",
        ),
        Finding(
            id="membership.high-advantage",
            check="membership",
            title="Membership inference at 40% TPR for 1% FPR",
            severity=Severity.HIGH,
            description="A loss-threshold attack separates members from non-members.",
            remediation="Train with DP-SGD or regularise.",
            owasp=OwaspMl.ML04,
            atlas=("AML.T0024.000",),
            metrics={"tpr_at_1pct_fpr": 0.4, "auc": 0.81},
            charts=(MEMBERSHIP_ROC,),
        ),
        Finding(
            id="extraction.high-fidelity",
            check="extraction",
            title="A surrogate reaches 95% fidelity with 5,000 queries",
            severity=Severity.HIGH,
            description="Label-only extraction copies the model cheaply.",
            owasp=OwaspMl.ML05,
            atlas=("AML.T0024.002",),
            metrics={"fidelity": 0.95, "queries": 5000},
        ),
        Finding(
            id="baseline.generalization-gap",
            check="baseline",
            title=f"{HOSTILE} gap",
            severity=Severity.MEDIUM,
            description='A "quoted" & <b>bold</b> description\nover two lines.',
            remediation="[bold red]Regularise[/] the model.",
            owasp=OwaspMl.ML04,
            evidence={"note": f"</pre>{HOSTILE}", "nested": {"a": [1, 2]}},
            metrics={"nan_metric": float("nan"), "gap": 0.18},
        ),
        Finding(
            id="poisoning.label-flip",
            check="poisoning",
            title="5% flipped labels cost 12 points of accuracy",
            severity=Severity.MEDIUM,
            description="",
            owasp=OwaspMl.ML02,
            atlas=("AML.T0020",),
        ),
        Finding(
            id="inversion.class-leak",
            check="inversion",
            title="Class averages can be reconstructed",
            severity=Severity.LOW,
            description="Reconstructions reach SSIM 0.41.",
            owasp=OwaspMl.ML03,
            atlas=("AML.T0024.001",),
            location="C:\\models\\digits cnn.pt",
        ),
        Finding(id="x.low", check="x", title="Low", severity=Severity.LOW, description="d"),
        Finding(
            id="baseline.performance",
            check="baseline",
            title="Clean test accuracy 98.0%",
            severity=Severity.INFO,
            description="",
            metrics={"accuracy": 0.98, "n_test": 360},
        ),
        Finding(
            id="integrity.format",
            check="integrity",
            title="Model format: safetensors",
            severity=Severity.INFO,
            description="The file cannot run code on load.",
        ),
    )


def make_report(*, extra: tuple[Finding, ...] = (), **changes: Any) -> Report:
    """The realistic report, with ``extra`` findings added and any Report field replaced."""
    fields: dict[str, Any] = {
        "target": TargetInfo(
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
            description="Small CNN on the scikit-learn digits.",
        ),
        "findings": make_findings() + extra,
        "checks": (
            CheckRun("evasion", CheckStatus.FINDINGS, 1.5),
            CheckRun("membership", CheckStatus.SKIPPED, 0.0, "needs the training data"),
            CheckRun("boom", CheckStatus.ERROR, 0.1, "RuntimeError: <kaput>"),
            CheckRun("baseline", CheckStatus.PASSED, 0.25),
        ),
        "seed": 7,
        "budget": "quick",
        "started_at": "2026-11-22T11:00:00+01:00",
        "duration_s": 2.25,
        "versions": {"modelshield": "0.1.0", "python": "3.11.7", "numpy": "2.1.0"},
        "config": {"checks": ["evasion", "membership", "boom", "baseline"], "budget": "quick", "seed": 7},
    }
    fields.update(changes)
    return Report(**fields)


@pytest.fixture
def report() -> Report:
    """The realistic report."""
    return make_report()


@pytest.fixture(scope="session")
def report_factory() -> Callable[..., Report]:
    """``report_factory(extra=(...), seed=3, ...)``: the realistic report with changes."""
    return make_report


def _without_compliance(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k != "compliance"}
    out["findings"] = [{k: v for k, v in f.items() if k != "compliance"} for f in data["findings"]]
    return out


@pytest.fixture(scope="session")
def without_compliance() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """report.json's data less what the JSON renderer adds from the compliance table: ``Report.to_dict``'s data."""
    return _without_compliance


@pytest.fixture(scope="session")
def report_validator() -> jsonschema.Draft202012Validator:
    """Validates report.json against the shipped schema, formats (date-time) included where checkable."""
    return jsonschema.Draft202012Validator(load_report_schema(), format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="session")
def sarif_validator() -> jsonschema.Draft4Validator:
    """Validates SARIF against the official SARIF 2.1.0 schema (a draft-04 JSON Schema)."""
    schema = json.loads(SARIF_SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
