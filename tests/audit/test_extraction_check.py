"""The extraction audit check: severity rules on hand-made measurements at each boundary, the budget settings, the
report's figures; then measured end to end on a tiny target (fast) and on real data (slow)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.extraction import EquationSolvingResult, ExtractionPoint, ExtractionResult, TransferResult
from modelshield.audit.checks.extraction import (
    EXTRACTION,
    LOW_MARGIN,
    SEVERITY_RULES,
    ExtractionMeasurement,
    ExtractionSettings,
    theft_severity,
)
from modelshield.audit.interface import Budget, CheckContext
from modelshield.data import DatasetSplit, load_breast_cancer, train_test_split
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.models import Bounds, SklearnClassifier
from modelshield.target import Target
from modelshield.testing.targets import tiny_target

N_TRAIN = 100


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The caller's choice, made once: tiny surrogates train fastest on one thread (the library leaves it alone)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _curve(
    points: list[tuple[int, float]], *, baseline: float = 0.5, strategy: str = "natural(selection=random)"
) -> ExtractionResult:
    return ExtractionResult(
        strategy=strategy,
        labels="soft",
        points=tuple(
            ExtractionPoint(queries=q, fidelity=f, surrogate_accuracy=f - 0.01, seconds=0.0) for q, f in points
        ),
        victim_accuracy=0.95,
        baseline_fidelity=baseline,
        n_test=200,
        queries=points[-1][0] + 200,
        seconds=1.0,
    )


def _measurement(
    *curves: ExtractionResult,
    equation_solving: EquationSolvingResult | None = None,
    parameter_error: float | None = None,
) -> ExtractionMeasurement:
    plan = tuple(sorted({p.queries for c in curves for p in c.points}))
    return ExtractionMeasurement(curves=curves, plan=plan, training_records=N_TRAIN,
                                 equation_solving=equation_solving, parameter_error=parameter_error)  # fmt: skip


def _theft(m: ExtractionMeasurement) -> Finding:
    (finding, *_) = EXTRACTION.judge(m)
    assert finding.id == "extraction.model-theft"
    return finding


@pytest.mark.parametrize(
    ("point", "baseline", "severity"),
    [
        ((N_TRAIN, 0.90), 0.5, Severity.HIGH),  # high: 0.90 within the training-set size
        ((N_TRAIN + 1, 0.90), 0.5, Severity.MEDIUM),  # ... one query more: 0.90 at any budget is medium
        ((N_TRAIN, 0.8999), 0.5, Severity.MEDIUM),  # just below 0.90 within the size: >= 0.75 is medium
        ((N_TRAIN, 0.75), 0.5, Severity.MEDIUM),
        ((N_TRAIN, 0.7499), 0.5, Severity.LOW),  # below every rule, but well above the baseline
        ((N_TRAIN + 1, 0.75), 0.5, Severity.LOW),  # 0.75 needs to be within the size to be medium
        ((N_TRAIN, 0.6), 0.5, Severity.LOW),  # exactly LOW_MARGIN above the baseline
        ((N_TRAIN, 0.5999), 0.5, Severity.INFO),  # just under it
    ],
)
def test_theft_severity_at_each_boundary(point: tuple[int, float], baseline: float, severity: Severity) -> None:
    assert LOW_MARGIN == 0.10
    m = _measurement(_curve([(10, 0.3), point], baseline=baseline))
    finding = _theft(m)
    assert finding.severity is severity
    assert theft_severity(m.curves, N_TRAIN)[0] is severity


def test_the_cheapest_point_meeting_the_first_rule_decides() -> None:
    m = _measurement(
        _curve([(20, 0.80), (50, 0.92), (100, 0.97)]),
        _curve([(30, 0.91), (200, 0.99)], strategy="jacobian(lambda=0.1, tau=3)"),
    )
    assert theft_severity(m.curves, N_TRAIN) == (Severity.HIGH, 0.91, 30)
    finding = _theft(m)
    assert finding.metrics["fidelity"] == 0.91 and finding.metrics["queries"] == 30
    assert finding.metrics["queries_per_training_record"] == 0.3
    # below every rule, the best point is reported
    low = _measurement(_curve([(20, 0.55), (40, 0.7), (80, 0.65)]))
    assert theft_severity(low.curves, N_TRAIN) == (Severity.LOW, 0.7, 40)


def test_severity_rules_are_ordered_from_worst() -> None:
    assert SEVERITY_RULES[0][2] is Severity.HIGH
    assert all(a[2] >= b[2] for a, b in itertools.pairwise(SEVERITY_RULES))


def test_the_report_shows_each_strategy_on_the_whole_plan() -> None:
    transfer = TransferResult(
        eps=0.25, n=50, surrogate_success_rate=0.9, transfer_rate=0.4, noise_rate=0.1, queries=100
    )
    m = ExtractionMeasurement(
        curves=(_curve([(20, 0.7), (40, 0.8)]), _curve([(20, 0.6), (40, 0.7), (80, 0.85)], strategy="random")),
        plan=(20, 40, 80),
        training_records=N_TRAIN,
        transfer=transfer,
    )
    finding = _theft(m)
    assert finding.owasp is OwaspMl.ML05 and finding.atlas == ("AML.T0024.002", "AML.T0040")
    (chart,) = finding.charts
    assert chart.x == (20.0, 40.0, 80.0)
    natural = chart.series["fidelity, natural"]
    assert natural[:2] == (0.7, 0.8) and math.isnan(natural[2])  # the natural curve stopped at 40 queries
    assert chart.series["fidelity, random"] == (0.6, 0.7, 0.85)
    assert chart.series["copy accuracy, random"] == pytest.approx((0.59, 0.69, 0.84))  # the best curve's
    assert finding.metrics["transferability"]["lift"] == 0.3  # type: ignore[index,call-overload]
    assert "fool the model 40% of the time, against 10% for random noise" in finding.description
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def _solved(consistent: bool) -> EquationSolvingResult:
    return EquationSolvingResult(coef=np.zeros((1, 3)), intercept=np.zeros(1), queries=60, system_queries=4,
                                 check_residual=1e-6 if consistent else 2.0, consistent=consistent, fidelity=1.0,
                                 seconds=0.1, evaluation_queries=40)  # fmt: skip


def test_equation_solving_is_high_only_when_the_model_proved_log_linear() -> None:
    curve = _curve([(20, 0.5)])
    consistent = EXTRACTION.judge(_measurement(curve, equation_solving=_solved(True), parameter_error=1e-5))
    assert [f.id for f in consistent] == ["extraction.model-theft", "extraction.equation-solving"]
    solved = consistent[1]
    assert solved.severity is Severity.HIGH
    assert solved.metrics["queries"] == 20  # the attack's queries, not the held-out predictions
    assert solved.metrics["max_abs_parameter_error"] == 1e-5 and "from 20 confidence-score" in solved.title
    assert [f.id for f in EXTRACTION.judge(_measurement(curve, equation_solving=_solved(False)))] == [
        "extraction.model-theft"
    ]
    assert [f.id for f in EXTRACTION.judge(_measurement(curve))] == ["extraction.model-theft"]


def test_a_measurement_without_points_is_refused() -> None:
    with pytest.raises(InvalidParameterError):
        ExtractionMeasurement(curves=(), plan=(), training_records=1)


def test_budgets_select_todays_settings() -> None:
    assert EXTRACTION.budgets[Budget.QUICK] == ExtractionSettings(0.5, 10, 60, 200, 10, 200, random_queries=False)
    assert EXTRACTION.budgets[Budget.STANDARD] == ExtractionSettings(1.0, 30, 300, 1500, 20, 1000, random_queries=True)
    assert EXTRACTION.budgets[Budget.THOROUGH] == ExtractionSettings(2.0, 30, 500, 3000, 40, 10000, random_queries=True)


# -- measured --------------------------------------------------------------------------------------------------------


def _context(target: Target, seed: int = 0, budget: Budget = Budget.QUICK) -> CheckContext:
    return CheckContext(target=target, budget=budget, seed=seed, rng=np.random.default_rng(seed))


def test_a_tiny_logistic_regression_is_stolen_and_solved() -> None:
    target = tiny_target("tabular", seed=0, white_box=False)
    context = _context(target)
    m = EXTRACTION.measure(context, EXTRACTION.settings(Budget.QUICK))
    assert m.plan == (20, 40, 80) and m.training_records == 120  # 1/8..1 of half the training set, at least 20
    assert [c.strategy.split("(")[0] for c in m.curves] == ["jacobian", "natural"]  # no random queries when quick
    assert all(c.surrogate is None for c in m.curves)  # the measurement keeps figures, not models
    assert m.transfer is not None and m.transfer.n > 0
    assert m.equation_solving is not None and m.equation_solving.consistent
    assert m.parameter_error is not None and m.parameter_error < 1e-2
    findings = EXTRACTION.judge(m)
    assert [f.id for f in findings] == ["extraction.model-theft", "extraction.equation-solving"]
    assert findings[0].severity >= Severity.MEDIUM  # three classes, copied within the training-set size
    again = EXTRACTION.run(_context(target))
    assert [f.to_dict() for f in again] == [f.to_dict() for f in findings]


# -- slow: real data -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split() -> DatasetSplit:
    return train_test_split(load_breast_cancer(), test_size=0.4, seed=0)


def _target(split: DatasetSplit, model: object, name: str) -> Target:
    low, high = split.train.schema.bounds() or (None, None)
    assert low is not None and high is not None
    clf = SklearnClassifier(model, clip_values=Bounds(low, high))
    return Target(name, clf, test=split.test, train=split.train)


@pytest.mark.slow
def test_logistic_regression_is_stolen_and_solved_exactly(split: DatasetSplit) -> None:
    model = LogisticRegression(max_iter=10_000).fit(split.train.flat(), split.train.y)
    findings = EXTRACTION.run(_context(_target(split, model, "logreg")))
    theft = next(f for f in findings if f.id == "extraction.model-theft")
    fid, baseline = theft.metrics["fidelity"], theft.metrics["baseline_fidelity"]
    assert isinstance(fid, float) and isinstance(baseline, float)
    assert fid > baseline + 0.1  # null: better than a constant guess
    assert theft.severity >= Severity.MEDIUM
    queries = theft.metrics["queries"]
    assert isinstance(queries, int) and 0 < queries <= len(split.train)
    assert "transferability" in theft.metrics
    solved = next(f for f in findings if f.id == "extraction.equation-solving")
    assert solved.severity is Severity.HIGH and solved.metrics["system_queries"] == split.train.n_features + 1
    error = solved.metrics["max_abs_parameter_error"]
    assert isinstance(error, float) and error < 1e-2 * float(np.abs(model.coef_).max())


@pytest.mark.slow
def test_non_linear_model_has_no_equation_solving_finding_and_runs_are_deterministic(split: DatasetSplit) -> None:
    gbm = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(split.train.flat(), split.train.y)
    target = _target(split, gbm, "gbm")
    first, second = EXTRACTION.run(_context(target, seed=4)), EXTRACTION.run(_context(target, seed=4))
    assert [f.id for f in first] == ["extraction.model-theft"]
    assert first[0].to_dict() == second[0].to_dict()


@pytest.mark.slow
def test_quick_budget_on_digits_cnn(zoo_cache: object) -> None:
    from pathlib import Path

    from modelshield.zoo import load_target

    assert isinstance(zoo_cache, Path)
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache)
    findings = EXTRACTION.run(_context(target))
    assert findings[0].metrics["fidelity"] > findings[0].metrics["baseline_fidelity"]  # type: ignore[operator]
