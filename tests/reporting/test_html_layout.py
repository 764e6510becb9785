"""The HTML report in a real browser: at 1280 and 390 CSS pixels wide nothing leaves its card and no text is cut
off by a chart's edge; screenshots of both widths go to docs/images/ when that holds.

Headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) shows each report in an iframe of each width
(a browser window is at least 500 pixels wide; an iframe can be narrower). A script added to a copy of the report
opens every ``<details>``, then lists each element whose content is wider than its box (``scrollWidth >
clientWidth``) or whose box leaves its card: a finding's section, else ``<main>``, and for the parts of a chart its
``<svg>``. It posts the list to the outer page, and ``--dump-dom`` prints that page once the frames have loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import CHROMIUM, OVERFLOWS, SKIP_REASON, chromium, probe

from modelshield.findings import (
    Chart,
    CheckRun,
    CheckStatus,
    Finding,
    JSONValue,
    OwaspMl,
    Report,
    Severity,
    TargetInfo,
)
from modelshield.reporting import render_html

pytestmark = pytest.mark.browser

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WIDTHS = (1280, 390)
SCREEN_HEIGHT = {1280: 800, 390: 844}  # the first screenful: a laptop, a phone


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _image(seed: int) -> list[JSONValue]:
    """An 8x8 grey-level image, as an example's ``clean`` or ``adversarial`` side."""
    return [[round(((i * 7 + j * 3 + seed * 5) % 11) / 10, 3) for j in range(8)] for i in range(8)]


def _roc_metrics(auc: float, low: float, high: float) -> dict[str, JSONValue]:
    return {
        "auc": auc,
        "advantage": round(2 * (auc - 0.5), 4),
        "tpr_at_0.1%_fpr": low,
        "tpr_at_0.1%_fpr_interval": [round(low / 2, 4), round(low * 1.5, 4)],
        "tpr_at_0.1%_fpr_supported": False,
        "tpr_at_1.0%_fpr": high,
        "tpr_at_1.0%_fpr_interval": [round(high * 0.8, 4), round(high * 1.25, 4)],
        "tpr_at_1.0%_fpr_supported": True,
        "members": 1347,
        "non_members": 450,
    }


def realistic_report() -> Report:
    """An audit of zoo:digits-cnn as the checks report it: nested metrics, many series, long titles and tokens."""
    fractions = (0.0, 0.005, 0.01, 0.02, 0.05)
    success, accuracy = (0.0442, 0.3833, 0.6462, 0.7912, 0.9902), (0.9822, 0.98, 0.9689, 0.9422, 0.9733)
    backdoor = Finding(
        id="poisoning.backdoor",
        check="poisoning",
        title="Backdoor from poisoned training data",
        severity=Severity.MEDIUM,
        description="Retraining the model's recipe on poisoned copies of its training data (backdoor (square 3x3 "
        "patch at row 5, column 5) to class 8): 5% poisoned training records (67 of 1347) give a working backdoor.",
        remediation="Record its provenance (`modelshield data manifest`) and sanitise it before training "
        "(`modelshield data sanitize DATA --model MODEL`); scan trained models for backdoors.",
        owasp=OwaspMl.ML02,
        atlas=("AML.T0020", "AML.T0018"),
        metrics={
            "attack": "backdoor (square 3x3 patch at row 5, column 5) to class 8",
            "fraction_needed": 0.05,
            "curve": [
                {
                    "fraction": f,
                    "records": round(f * 1347),
                    "success_rate": s,
                    "success_interval": [s * 0.9, s],
                    "clean_accuracy": a,
                }
                for f, s, a in zip(fractions, success, accuracy, strict=True)
            ],
            "sanitiser": {
                "poisoned_records": 67,
                "detectors": ["reversed-trigger", "activation-clustering", "label-consistency"],
                "recall": 1.0,
                "per_detector": {
                    m: {"recall": 1.0, "clean_flagged": 0.0055, "auc": 0.9356}
                    for m in ("reversed-trigger", "activation-clustering", "label-consistency")
                },
            },
        },
        charts=(
            Chart(
                "Backdoor success against poison fraction",
                "line",
                x=tuple(100 * f for f in fractions),
                series={"attack success": success, "clean accuracy": accuracy},
                x_label="poisoned training records (%)",
                y_label="rate",
                y_range=(0.0, 1.0),
            ),
        ),
    )
    eps = ("0.01", "0.03", "0.05", "0.1", "0.2")
    worst = (0.98, 0.94, 0.84, 0.4, 0.0)
    evasion = Finding(
        id="evasion.robust-accuracy",
        check="evasion",
        title="Adversarial inputs cut accuracy from 98% to 84% at ε = 0.05 of the input range",
        severity=Severity.LOW,
        description="Worst case over fgsm, pgd, apgd-ce, apgd-dlr on 200 test inputs.",
        remediation="Harden the model (adversarial training: `modelshield harden --defense adversarial-training`).",
        owasp=OwaspMl.ML01,
        atlas=("AML.T0043", "AML.T0015"),
        metrics={
            "clean_accuracy": 0.985,
            "robust_accuracy_at_reference": 0.84,
            "robust_accuracy": dict(zip(eps, worst, strict=True)),
            "queries": 132705,
            "median_minimal_l2_distance": 0.4856,
        },
        evidence={
            "examples": [
                {"label": f"{k} -> {(k + 3) % 10}", "clean": _image(k), "adversarial": _image(k + 1)} for k in range(8)
            ]
        },
        charts=(
            Chart(
                "Robust accuracy against the attack budget (L∞)",
                "line",
                x=tuple(float(e) for e in eps),
                series={
                    "fgsm": (0.98, 0.95, 0.86, 0.49, 0.05),
                    "pgd": worst,
                    "apgd-ce": worst,
                    "apgd-dlr": (0.98, 0.94, 0.85, 0.47, 0.02),
                    "worst case": worst,
                },
                x_label="ε (of the input range)",
                y_label="accuracy",
                y_range=(0.0, 1.0),
            ),
            Chart(
                "Robust accuracy per class at ε = 0.05 of the input range",
                "bar",
                x=tuple(str(c) for c in range(10)),
                series={"robust accuracy": tuple(0.6 + 0.04 * c for c in range(10))},
                y_range=(0.0, 1.0),
            ),
        ),
    )
    attacks = ("loss", "population", "lira-online", "lira-offline", "rmia", "label-only")
    tpr = (0.0097, 0.0067, 0.0252, 0.0134, 0.0497, 0.0)
    grid = tuple(10 ** (-3 + 3 * i / 24) for i in range(25))
    membership = Finding(
        id="membership.leakage",
        check="membership",
        title="Membership inference singles out 1.9% of training records at 0.1% false positives (rmia)",
        severity=Severity.LOW,
        description="Best attack rmia: AUC 0.546, true-positive rate 1.9% at 0.1% and 5.0% at 1% false positives.",
        remediation="Train with differential privacy (`modelshield harden --defense dp-sgd --epsilon 8`).",
        owasp=OwaspMl.ML04,
        atlas=("AML.T0024.000",),
        metrics={
            "best_attack": "rmia",
            **_roc_metrics(0.5463, 0.0186, 0.0497),
            "attacks": {a: _roc_metrics(0.51 + 0.007 * i, tpr[i] / 3, tpr[i]) for i, a in enumerate(attacks)},
            "recipe": {"attack": "rmia (recipe, 8 models pooled)", **_roc_metrics(0.555, 0.0032, 0.0298)},
        },
        evidence={
            "most_exposed_records": [{"train_index": 17 * i, "label": i, "score": 0.99 - i / 100} for i in range(10)]
        },
        charts=(
            Chart(
                "Membership inference ROC (log-log)",
                "line",
                x=grid,
                series={
                    **{a: tuple(min(1.0, g * (1.5 + i)) for g in grid) for i, a in enumerate(attacks)},
                    "recipe (pooled)": grid,
                    "chance": grid,
                },
                x_label="false-positive rate",
                y_label="true-positive rate",
                y_range=(1e-3, 1.0),
                scale="log",
            ),
            Chart(
                "True-positive rate at 1% false positives", "bar", x=attacks, series={"TPR": tpr}, y_range=(0.0, 1.0)
            ),
        ),
    )
    plan = (84.0, 168.0, 337.0, 674.0)
    extraction = Finding(
        id="extraction.model-theft",
        check="extraction",
        title="A copy agreeing with the model on 85% of inputs was trained from 168 queries",
        severity=Severity.MEDIUM,
        description="Black-box attacks (jacobian(lambda=0.1, tau=3), natural(selection=balanced)) queried the model.",
        owasp=OwaspMl.ML05,
        atlas=("AML.T0024.002", "AML.T0040"),
        metrics={
            "fidelity": 0.85,
            "curves": {
                "jacobian(lambda=0.1, tau=3)": [
                    {"queries": int(q), "fidelity": 0.74, "copy_accuracy": 0.745} for q in plan
                ],
                "natural(selection=balanced)": [{"queries": 84, "fidelity": 0.74, "copy_accuracy": 0.735}],
            },
            "transferability": {"eps": 0.1, "n": 199, "transfer_rate": 0.0402, "noise_rate": 0.0101},
        },
        charts=(
            Chart(
                "Fidelity of a stolen copy against the attacker's queries",
                "line",
                x=plan,
                series={
                    "fidelity, jacobian": (0.74, 0.74, 0.705, 0.8),
                    "fidelity, natural": (0.74, 0.85, 0.85, 0.85),
                    "copy accuracy, natural": (0.735, 0.845, 0.845, 0.845),
                    "model accuracy": (0.995,) * 4,
                    "baseline (constant guess)": (0.12,) * 4,
                },
                x_label="queries",
                y_label="agreement / accuracy",
                y_range=(0.0, 1.0),
            ),
        ),
    )
    sha = _digest("model")
    integrity = Finding(
        id="integrity.model-file",
        check="integrity",
        title="Model file identified as safetensors",
        severity=Severity.INFO,
        description=f"Content of model.safetensors (55,384 bytes): safetensors (JSON header, raw tensor bytes). Its "
        f"SHA-256 is {sha}; compare it with the digest its publisher gives, or verify its signature.",
        remediation="Record the digest and verify it before every load.",
        owasp=OwaspMl.ML06,
        atlas=("AML.T0010.003",),
        metrics={"size_bytes": 55384},
        evidence={"sha256": sha, "format": "safetensors", "detail": "safetensors (JSON header, raw tensor bytes)"},
        location="/home/someone/.cache/modelshield/zoo/digits-cnn-c4d3c8a46bcd43dd/model.safetensors",
    )
    inversion = Finding(
        id="inversion.class-reconstruction",
        check="inversion",
        title="Gradient inversion reconstructs recognisable class images: 100% recognised (baseline 10%)",
        severity=Severity.MEDIUM,
        description="Starting from the mean of held-out images, gradient descent produced one image per class.",
        owasp=OwaspMl.ML03,
        atlas=("AML.T0024.001",),
        metrics={"evaluator_accuracy": 1.0, "attack": "mi-face(steps=50, restarts=1, step_size=0.05, l2=1, tv=0)"},
        charts=(
            Chart(
                "Similarity of each class's reconstruction to its training mean (overall mean removed)",
                "bar",
                x=tuple(str(c) for c in range(10)),
                series={
                    "reconstruction": tuple(0.3 + 0.04 * c for c in range(10)),
                    "baseline (prior + noise)": tuple(0.1 - 0.03 * c for c in range(10)),
                },
                x_label="class",
                y_label="correlation",
                y_range=(-1.0, 1.0),
            ),
        ),
    )
    return Report(
        target=TargetInfo(
            name="zoo:digits-cnn",
            model_format="safetensors",
            model_sha256=sha,
            n_classes=10,
            input_shape=(1, 8, 8),
            classifier="TorchClassifier",
            white_box=True,
            model_path="/home/someone/.cache/modelshield/zoo/digits-cnn-c4d3c8a46bcd43dd/model.safetensors",
            train_sha256=_digest("train"),
            test_sha256=_digest("test"),
            description="Small CNN on scikit-learn's 8x8 digits (white-box image classifier).",
        ),
        findings=(backdoor, evasion, membership, extraction, integrity, inversion),
        checks=(
            *(
                CheckRun(name, CheckStatus.FINDINGS, seconds)
                for name, seconds in (
                    ("poisoning", 89.6),
                    ("evasion", 5.1),
                    ("membership", 20.7),
                    ("extraction", 7.2),
                    ("inversion", 0.1),
                )
            ),
            CheckRun("integrity", CheckStatus.PASSED, 0.0),
        ),
        seed=0,
        budget="quick",
        started_at="2026-12-03T17:37:01+00:00",
        duration_s=123.4,
        versions={"modelshield": "0.1.0", "python": "3.11.7", "numpy": "2.4.6", "torch": "2.13.0+cpu"},
        config={
            "checks": ["poisoning", "evasion", "membership", "extraction", "inversion", "integrity"],
            "budget": "quick",
            "seed": 0,
            "settings": {"evasion": {"samples": 200, "steps": 10}, "membership": {"reference_models": 8}},
        },
    )


def _layout(pages: dict[str, str], tmp_path: Path) -> dict[str, tuple[int, list[str]]]:
    """For each page and width, ``"NAME@WIDTH"``: the frame's width as the page saw it and what overflows."""
    return probe(pages, WIDTHS, tmp_path, "overflows()", helpers=OVERFLOWS)


def _screenshot(html: Path, width: int, out: Path, profile: Path) -> None:
    """The first screenful of ``html`` at ``width`` CSS pixels, as PNG (through an iframe, as for the layout)."""
    height = SCREEN_HEIGHT[width]
    frame = html.with_name(f"shot-{width}.html")
    frame.write_text(
        f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{html.name}" '
        f'style="border:0;display:block;width:{width}px;height:{height}px"></iframe></body></html>',
        "utf-8",
    )
    chromium(profile, f"--window-size={width},{height}", f"--screenshot={out}", frame.as_uri())


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_nothing_overflows_its_card_at_desktop_and_phone_widths(
    tmp_path: Path, report_factory: Callable[..., Report]
) -> None:
    realistic = realistic_report()
    pages = {
        "realistic": render_html(realistic),
        # the hostile fixture (markup, control characters, long names) with the realistic findings added
        "hostile": render_html(report_factory(extra=realistic.findings)),
    }
    found = _layout(pages, tmp_path)
    expected = {f"{name}@{w}" for name in pages for w in WIDTHS}
    assert set(found) == expected, "a frame did not report"
    for frame, (width, overflows) in sorted(found.items()):
        assert str(width) == frame.split("@")[1], f"{frame} was laid out {width} px wide"
        assert overflows == [], f"{frame}: " + "\n".join(overflows)
    # the layout holds: regenerate the screenshots in docs/images/
    page = tmp_path / "report.html"
    page.write_text(pages["realistic"], "utf-8")
    shots = {w: tmp_path / f"report-{w}.png" for w in WIDTHS}
    for width, shot in shots.items():
        _screenshot(page, width, shot, tmp_path / "profile")
        assert shot.read_bytes().startswith(b"\x89PNG")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for width, shot in shots.items():
        staged = IMAGES / f".report-{width}.png.tmp"
        shutil.copyfile(shot, staged)
        os.replace(staged, IMAGES / f"report-{width}.png")
