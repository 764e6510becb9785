"""The audit runner: selection, skipping, failure isolation, determinism."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield._internal.hashing import sha256_file
from modelshield.audit import (
    AuditOptions,
    Auditor,
    Check,
    CheckContext,
    CheckRegistry,
    Requirement,
    default_registry,
)
from modelshield.audit.interface import NO_SETTINGS, Budget, NoSettings
from modelshield.data import Dataset, load_breast_cancer, train_test_split
from modelshield.errors import RegistrationError, UnknownTargetError
from modelshield.findings import CheckStatus, Finding, Severity
from modelshield.models import SklearnClassifier
from modelshield.target import Target
from modelshield.zoo import load_target


class _Boom(Check[NoSettings, NoSettings]):
    """A check whose measurement always fails."""

    name = "boom"
    title = "Boom"
    description = "Always fails."
    budgets = NO_SETTINGS

    def measure(self, context: CheckContext, settings: NoSettings) -> NoSettings:
        raise RuntimeError("kaput")

    def judge(self, measurement: NoSettings) -> Sequence[Finding]:
        return []


@dataclasses.dataclass(frozen=True)
class _Inputs:
    inputs: int


@dataclasses.dataclass(frozen=True)
class _Drawn:
    total: float  # sum of the drawn inputs: a fingerprint of the check's random draw


class _Draw(Check[_Inputs, _Drawn]):
    """Draws a few test inputs with the check's own generator."""

    name = "draw"
    title = "Draw"
    description = "Draws a few test inputs."
    budgets: Mapping[Budget, _Inputs] = MappingProxyType({b: _Inputs(5) for b in Budget})

    def measure(self, context: CheckContext, settings: _Inputs) -> _Drawn:
        x, _ = context.sample_test(settings.inputs)
        return _Drawn(float(x.sum()))

    def judge(self, measurement: _Drawn) -> Sequence[Finding]:
        return [
            Finding(id="draw.total", check=self.name, title="Drawn", severity=Severity.INFO, description="",
                    metrics={"total": measurement.total})
        ]  # fmt: skip


class _NeedsGradients(_Boom):
    name = "grad"
    title = "Needs gradients"
    requires = frozenset({Requirement.WHITE_BOX})


@pytest.fixture(scope="module")
def cancer_target() -> Target:
    split = train_test_split(load_breast_cancer(), test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=5000).fit(split.train.flat(), split.train.y)
    return Target("logreg", SklearnClassifier(model), test=split.test, train=split.train)


@pytest.mark.slow
def test_default_audit_of_a_zoo_target(zoo_cache: Path) -> None:
    target = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    report = Auditor(AuditOptions(seed=3)).run(target)
    assert [c.name for c in report.checks] == [
        "integrity",
        "supply",
        "signature",
        "baseline",
        "fairness",
        "explain",
        "evasion",
        "poisoning",
        "membership",
        "inversion",
        "extraction",
    ]
    statuses = {c.name: c.status for c in report.checks}
    assert statuses.pop("fairness") is CheckStatus.SKIPPED  # the zoo target names no sensitive feature
    assert all(status in (CheckStatus.PASSED, CheckStatus.FINDINGS) for status in statuses.values()), statuses
    model_file = next(f for f in report.findings if f.id == "integrity.model-file")
    assert target.model_path is not None
    assert model_file.evidence["sha256"] == sha256_file(target.model_path) == report.target.model_sha256
    assert model_file.evidence["format"] == "skops"
    perf = next(f for f in report.findings if f.id == "baseline.performance")
    assert perf.metrics["test_accuracy"] == pytest.approx(target.classifier.accuracy(target.test.x, target.test.y))
    assert report.target.test_sha256 == target.test.digest
    assert report.seed == 3 and report.versions["modelshield"]


def test_check_without_what_it_needs_is_skipped_with_a_reason(cancer_target: Target) -> None:
    report = Auditor(AuditOptions(checks=("integrity",))).run(cancer_target)
    (run,) = report.checks
    assert run.status is CheckStatus.SKIPPED
    assert "model file" in run.reason
    assert report.findings == ()


def test_a_failing_check_is_recorded_and_the_others_still_run(cancer_target: Target) -> None:
    registry = CheckRegistry([_Boom(), *default_registry()])
    report = Auditor(AuditOptions(checks=("boom", "baseline")), registry=registry).run(cancer_target)
    assert [(c.name, c.status) for c in report.checks] == [
        ("boom", CheckStatus.ERROR),
        ("baseline", CheckStatus.PASSED),
    ]
    assert "RuntimeError: kaput" in report.checks[0].reason
    assert not report.complete
    assert any(f.check == "baseline" for f in report.findings)


def test_registry_refuses_duplicates_and_unknown_names() -> None:
    registry = default_registry()
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(registry.get("integrity"))
    with pytest.raises(UnknownTargetError, match="Unknown check 'evasoin'"):
        Auditor(AuditOptions(checks=("evasoin",)))


def test_each_check_draws_from_a_generator_seeded_by_the_audit_seed(cancer_target: Target) -> None:
    registry = CheckRegistry([_Draw(), *default_registry()])

    def audit(seed: int) -> tuple[object, dict[str, object]]:
        report = Auditor(AuditOptions(checks=("draw", "baseline"), seed=seed), registry=registry).run(cancer_target)
        return next(f.metrics["total"] for f in report.findings if f.id == "draw.total"), report.config

    first, config = audit(5)
    assert audit(5)[0] == first
    assert audit(6)[0] != first
    assert config["settings"] == {"draw": {"inputs": 5}, "baseline": {"samples": 1000}}


@pytest.mark.slow
def test_same_seed_same_findings(cancer_target: Target) -> None:
    def findings(seed: int) -> list[dict[str, object]]:
        return [f.to_dict() for f in Auditor(AuditOptions(seed=seed, budget="quick")).run(cancer_target).findings]

    assert findings(5) == findings(5)


def test_generalization_gap_is_flagged_on_an_overfit_model() -> None:
    rng = np.random.default_rng(0)
    split = train_test_split(load_breast_cancer(), test_size=0.5, seed=0)
    noisy = split.train.y.copy()
    flip = rng.random(len(noisy)) < 0.3  # memorise label noise: perfect on train, worse on test
    noisy[flip] = 1 - noisy[flip]
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(random_state=0).fit(split.train.flat(), noisy)
    train = Dataset(x=split.train.x, y=noisy, schema=split.train.schema, label_names=split.train.label_names)
    target = Target("tree", SklearnClassifier(tree), test=split.test, train=train)
    report = Auditor(AuditOptions(checks=("baseline",))).run(target)
    gap = next(f for f in report.findings if f.id == "baseline.generalization-gap")
    assert gap.severity >= Severity.MEDIUM
    assert gap.owasp is not None and gap.owasp.value == "ML04"


def test_integrity_flags_pickle_behind_a_misleading_name(tmp_path: Path, cancer_target: Target) -> None:
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    target = Target(
        "disguised",
        cancer_target.classifier,
        test=cancer_target.test,
        model_path=disguised,
        model_format="pickle",
    )
    report = Auditor(AuditOptions(checks=("integrity",))).run(target)
    ids = {f.id: f for f in report.findings}
    assert ids["integrity.code-on-load"].severity is Severity.MEDIUM
    assert ids["integrity.misleading-suffix"].severity is Severity.MEDIUM
    assert ids["integrity.code-on-load"].location == str(disguised)


def test_requirements_are_reported(cancer_target: Target) -> None:
    check = _NeedsGradients()
    assert check.unmet(cancer_target) == ["needs gradients, and SklearnClassifier is black-box"]


@pytest.mark.slow
def test_confident_fit_of_members_is_flagged_by_the_loss_gap(zoo_cache: Path) -> None:
    def gap_finding(name: str) -> Finding | None:
        report = Auditor(AuditOptions(checks=("baseline",))).run(load_target(name, cache_dir=zoo_cache, device="cpu"))
        return next((f for f in report.findings if f.id == "baseline.generalization-gap"), None)

    overfit = gap_finding("zoo:cancer-mlp-overfit")
    assert overfit is not None
    assert overfit.severity is Severity.LOW
    assert float(overfit.metrics["loss_gap"]) >= 0.1  # type: ignore[arg-type]
    assert gap_finding("zoo:cancer-mlp") is None


def test_supply_check_reports_a_payload_in_the_model_file(tmp_path: Path, cancer_target: Target) -> None:
    import os

    import torch

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, ("id",))

    model = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2), "x": Payload()}, model)
    target = Target("pt", cancer_target.classifier, test=cancer_target.test, model_path=model, model_format="pt")
    report = Auditor(AuditOptions(checks=("supply",))).run(target)
    (finding,) = report.findings
    assert (finding.check, finding.id, finding.severity) == ("supply", "pickle.dangerous-call", Severity.CRITICAL)
