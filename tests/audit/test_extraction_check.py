"""The extraction audit check: findings, thresholds, chart, equation solving, determinism, speed."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelshield.audit.checks.extraction import EXTRACTION, SEVERITY_RULES
from modelshield.audit.interface import Budget, CheckContext
from modelshield.data import DatasetSplit, load_breast_cancer, train_test_split
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.models import Bounds, SklearnClassifier
from modelshield.target import Target


@pytest.fixture(scope="module")
def split() -> DatasetSplit:
    return train_test_split(load_breast_cancer(), test_size=0.4, seed=0)


def _target(split: DatasetSplit, model: object, name: str) -> Target:
    low, high = split.train.schema.bounds() or (None, None)
    assert low is not None and high is not None
    clf = SklearnClassifier(model, clip_values=Bounds(low, high))
    return Target(name, clf, test=split.test, train=split.train)


def _run(target: Target, seed: int = 0) -> list[Finding]:
    ctx = CheckContext(target=target, budget=Budget.QUICK, seed=seed, rng=np.random.default_rng(seed))
    return list(EXTRACTION.run(ctx))


def test_logistic_regression_is_stolen_and_solved_exactly(split: DatasetSplit) -> None:
    model = LogisticRegression(max_iter=10_000).fit(split.train.flat(), split.train.y)
    target = _target(split, model, "logreg")
    t0 = time.perf_counter()
    findings = _run(target)
    assert time.perf_counter() - t0 < 15
    theft = next(f for f in findings if f.id == "extraction.model-theft")
    assert theft.owasp is OwaspMl.ML05 and "AML.T0024.002" in theft.atlas
    fid, baseline = theft.metrics["fidelity"], theft.metrics["baseline_fidelity"]
    assert isinstance(fid, float) and isinstance(baseline, float)
    assert fid > baseline + 0.1  # null: better than a constant guess
    assert theft.severity >= Severity.MEDIUM
    queries = theft.metrics["queries"]
    assert isinstance(queries, int) and 0 < queries <= len(split.train)
    assert "transferability" in theft.metrics
    (chart,) = theft.charts
    assert chart.kind == "line" and any(k.startswith("fidelity") for k in chart.series)
    solved = next(f for f in findings if f.id == "extraction.equation-solving")
    assert solved.severity is Severity.HIGH and solved.metrics["system_queries"] == split.train.n_features + 1
    error = solved.metrics["max_abs_parameter_error"]
    assert isinstance(error, float) and error < 1e-2 * float(np.abs(model.coef_).max())
    assert Finding.from_dict(theft.to_dict()) == theft


def test_non_linear_model_has_no_equation_solving_finding_and_runs_are_deterministic(split: DatasetSplit) -> None:
    gbm = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(split.train.flat(), split.train.y)
    target = _target(split, gbm, "gbm")
    first, second = _run(target, seed=4), _run(target, seed=4)
    assert [f.id for f in first] == ["extraction.model-theft"]
    assert first[0].to_dict() == second[0].to_dict()


def test_severity_rules_are_ordered_from_worst() -> None:
    assert SEVERITY_RULES[0][2] is Severity.HIGH
    assert all(a[2] >= b[2] for a, b in itertools.pairwise(SEVERITY_RULES))


@pytest.mark.slow
def test_quick_budget_on_digits_cnn_is_fast(zoo_cache: object) -> None:
    from pathlib import Path

    from modelshield.zoo import load_target

    assert isinstance(zoo_cache, Path)
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache)
    t0 = time.perf_counter()
    findings = _run(target)
    assert time.perf_counter() - t0 < 20
    assert findings[0].metrics["fidelity"] > findings[0].metrics["baseline_fidelity"]  # type: ignore[operator]
