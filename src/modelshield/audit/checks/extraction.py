"""The ``extraction`` check: how closely an attacker can copy the model from its answers, and for how many queries.

    >>> from modelshield.audit.checks.extraction import EXTRACTION, SEVERITY_RULES
    >>> EXTRACTION.name, EXTRACTION.budgets["quick"].budget_factor
    ('extraction', 0.5)
    >>> SEVERITY_RULES[0]
    (0.9, 1.0, <Severity.HIGH: 'high'>)

:meth:`ExtractionCheck.measure` plays a black-box attacker with
:func:`~modelshield.attacks.extraction.extract_model`. The test split is cut in two at random (seeded): one half is
the attacker's own data, the other measures the copies. Query budgets are fractions 1/8, 1/4, 1/2 and 1 of
``budget_factor`` times the training-set size (:class:`ExtractionSettings`: quick 0.5, standard 1, thorough 2).
Strategies: ``jacobian`` (Papernot et al. 2017, seeded with the attacker's half) and ``natural`` (the attacker's
half, as far as it reaches), and ``random`` beyond the quick budget. Adversarial examples crafted on the best copy
(PGD, L∞; ε = 10% of the range for images, 0.25 standard deviation for tabular data) are replayed against the
model: their transfer rate, next to that of random noise of the same size, is in the metrics. Tabular models are
also tested with equation solving (Tramèr et al. 2016): ``d + 1`` confidence queries and a few checks show whether
the model is log-linear (logistic or softmax regression), whose exact parameters are then recoverable.

:meth:`ExtractionCheck.judge` sets the severity of ``extraction.model-theft`` from the best fidelity (agreement with
the model on the held-out half), :data:`SEVERITY_RULES`:

- high: fidelity >= 0.90 with no more queries than the training set has records;
- medium: fidelity >= 0.75 within that many queries, or >= 0.90 at any budget measured;
- low: fidelity at least 0.10 above the baseline (a constant guess of the model's most frequent answer);
- info otherwise.

The quick budget spends at most half the training-set size, so it can only understate the risk. A log-linear model
(equation solving consistent) gets an ``extraction.equation-solving`` finding (high) that reports the recovery, with
the parameter error when the model is a scikit-learn linear model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from modelshield.attacks.extraction import EquationSolvingResult, ExtractionResult, TransferResult
from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.errors import InvalidParameterError
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity
from modelshield.models.interface import Classifier

__all__ = [
    "EXTRACTION",
    "LOW_MARGIN",
    "SEVERITY_RULES",
    "ExtractionCheck",
    "ExtractionMeasurement",
    "ExtractionSettings",
    "theft_severity",
]

#: (minimum fidelity, largest queries as a multiple of the training-set size or None for any, severity), in order.
SEVERITY_RULES: tuple[tuple[float, float | None, Severity], ...] = (
    (0.90, 1.0, Severity.HIGH),
    (0.75, 1.0, Severity.MEDIUM),
    (0.90, None, Severity.MEDIUM),
)
#: Below every rule: low when the best fidelity is at least this far above the constant-guess baseline, else info.
LOW_MARGIN = 0.10
_ATLAS = ("AML.T0024.002", "AML.T0040")


@dataclass(frozen=True)
class ExtractionSettings:
    """What a budget buys the extraction check."""

    budget_factor: float  # the largest query budget, as a multiple of the training-set size
    epochs: int  # surrogate training: epochs, counted in optimiser steps ...
    min_steps: int  # ... and kept within [min_steps, max_steps]
    max_steps: int
    pgd_steps: int  # PGD steps of the transfer attack on the best copy
    samples: int  # the most held-out inputs the copies (and the transfer) are measured on
    random_queries: bool  # also run the random-query strategy


_QUICK = ExtractionSettings(
    budget_factor=0.5, epochs=10, min_steps=60, max_steps=200, pgd_steps=10, samples=200, random_queries=False
)
_STANDARD = ExtractionSettings(
    budget_factor=1.0, epochs=30, min_steps=300, max_steps=1500, pgd_steps=20, samples=1000, random_queries=True
)
_THOROUGH = ExtractionSettings(
    budget_factor=2.0, epochs=30, min_steps=500, max_steps=3000, pgd_steps=40, samples=10000, random_queries=True
)
_BUDGETS: Mapping[Budget, ExtractionSettings] = MappingProxyType(
    {Budget.QUICK: _QUICK, Budget.STANDARD: _STANDARD, Budget.THOROUGH: _THOROUGH}
)


@dataclass(frozen=True)
class ExtractionMeasurement:
    """Fidelity-against-queries curves of each strategy (without their surrogates), the transfer of adversarial
    examples from the best copy, and the equation-solving attempt (tabular models)."""

    curves: tuple[ExtractionResult, ...]
    plan: tuple[int, ...]  # the query budgets, ascending
    training_records: int  # what the budgets and the severity rules are measured against
    transfer: TransferResult | None = None
    equation_solving: EquationSolvingResult | None = None  # None: not tabular, or the scores stay saturated
    parameter_error: float | None = None  # of the recovered parameters, when the true ones are known

    def __post_init__(self) -> None:
        if not self.curves or not all(c.points for c in self.curves):
            raise InvalidParameterError("An extraction measurement needs at least one curve, each with points.")


def theft_severity(curves: Sequence[ExtractionResult], n_train: int) -> tuple[Severity, float, int]:
    """The severity of the curves under :data:`SEVERITY_RULES`, with the fidelity and queries of the point that
    decided it: the cheapest point meeting the first rule any point meets; else the best point, low when it is
    :data:`LOW_MARGIN` above the first curve's baseline, info otherwise."""
    points = [(p.fidelity, p.queries) for r in curves for p in r.points]
    for min_fid, max_ratio, severity in SEVERITY_RULES:
        ok = [(f, q) for f, q in points if f >= min_fid and (max_ratio is None or q <= max_ratio * n_train)]
        if ok:
            fid, queries = min(ok, key=lambda fq: fq[1])
            return severity, fid, queries
    fid, queries = max(points)
    baseline = curves[0].baseline_fidelity
    return (Severity.LOW if fid >= baseline + LOW_MARGIN else Severity.INFO), fid, queries


def _image(victim: Classifier) -> bool:
    return len(victim.input_shape) > 1 and victim.clip_values is not None


def _bounds(victim: Classifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bounds = victim.clip_values
    if bounds is None:
        return x.min(axis=0), x.max(axis=0)
    return np.asarray(bounds.low, np.float32), np.asarray(bounds.high, np.float32)


def _parameter_error(victim: Classifier, result: EquationSolvingResult) -> float | None:
    estimator = getattr(victim, "estimator", None)
    coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
    if coef is None or intercept is None:
        return None
    try:
        return result.parameter_error(coef, intercept)
    except ValueError:
        return None


class ExtractionCheck(Check[ExtractionSettings, ExtractionMeasurement]):
    """Black-box model theft: fidelity against queries, transfer of adversarial examples, equation solving."""

    name = "extraction"
    title = "Model extraction"
    description = (
        "Black-box model theft (Jacobian augmentation, natural data, random queries): fidelity against queries, "
        "transfer of adversarial examples, and equation solving of log-linear models."
    )
    budgets: Mapping[Budget, ExtractionSettings] = _BUDGETS

    def measure(self, context: CheckContext, settings: ExtractionSettings) -> ExtractionMeasurement:
        """Steal the model with each strategy, replay PGD examples from the best copy, try equation solving."""
        from modelshield.attacks.extraction import extract_model, transferability
        from modelshield.attacks.privacy_plugins import default_budgets

        target = context.target
        victim = target.classifier
        n_train = len(target.train) if target.train is not None else len(target.test)
        order = context.rng.permutation(len(target.test))
        half = len(order) // 2
        attacker_x = target.test.x[order[:half]]
        eval_idx = order[half:][: settings.samples]
        x_eval, y_eval = target.test.x[eval_idx], target.test.y[eval_idx]
        plan = default_budgets(n_train, settings.budget_factor)
        common: dict[str, Any] = {"epochs": settings.epochs, "min_steps": settings.min_steps,
                                  "max_steps": settings.max_steps, "seed": context.seed,
                                  "keep_queries": False}  # fmt: skip
        results = [extract_model(victim, x_eval, y_eval, strategy="jacobian", budgets=plan, natural_x=attacker_x,
                                 jacobian_seed=min(plan[0], len(attacker_x)) or None, **common)]  # fmt: skip
        natural_plan = tuple(b for b in plan if b <= len(attacker_x))
        if natural_plan:
            results.append(extract_model(victim, x_eval, y_eval, strategy="natural", budgets=natural_plan,
                                         natural_x=attacker_x, selection="balanced", **common))  # fmt: skip
        if settings.random_queries:
            results.append(extract_model(victim, x_eval, y_eval, strategy="random", budgets=plan,
                                         natural_x=attacker_x, **common))  # fmt: skip
        best = max(results, key=lambda r: r.fidelity)
        transfer = None
        if best.surrogate is not None:
            if _image(victim):
                low, high = _bounds(victim, x_eval)
                eps, scale = 0.1 * float(np.max(high - low)), None
            else:
                std = x_eval.std(axis=0)
                eps, scale = 0.25, np.where(std > 0, std, 1.0).astype(np.float32)
            transfer = transferability(best.surrogate, victim, x_eval, y_eval, eps=eps, scale=scale,
                                       steps=settings.pgd_steps, limit=settings.samples, seed=context.seed)  # fmt: skip
        solved, error = None, None
        if len(victim.input_shape) == 1:
            solved = self._solve(victim, attacker_x, x_eval, context.seed)
            error = _parameter_error(victim, solved) if solved is not None and solved.consistent else None
        return ExtractionMeasurement(
            curves=tuple(replace(r, surrogate=None, query_x=None) for r in results),
            plan=plan,
            training_records=n_train,
            transfer=transfer,
            equation_solving=solved,
            parameter_error=error,
        )

    @staticmethod
    def _solve(victim: Classifier, x_ref: np.ndarray, x_eval: np.ndarray, seed: int) -> EquationSolvingResult | None:
        from modelshield.attacks.extraction import solve_linear_model
        from modelshield.errors import InvalidInputError

        try:
            return solve_linear_model(victim, x_ref=x_ref if len(x_ref) else None, x_test=x_eval, seed=seed)
        except InvalidInputError:
            return None  # saturated everywhere: the attack does not apply

    def judge(self, measurement: ExtractionMeasurement) -> Sequence[Finding]:
        """``extraction.model-theft``, and ``extraction.equation-solving`` (high) when the model proved log-linear."""
        findings = [_theft_finding(measurement)]
        solved = measurement.equation_solving
        if solved is not None and solved.consistent:
            findings.append(_equation_solving_finding(solved, measurement.parameter_error))
        return findings


def _theft_finding(m: ExtractionMeasurement) -> Finding:
    results, plan, n_train = m.curves, m.plan, m.training_records
    severity, fid, queries = theft_severity(results, n_train)
    baseline = results[0].baseline_fidelity
    series: dict[str, tuple[float, ...]] = {}
    for r in results:
        by_budget = {p.queries: p for p in r.points}
        name = r.strategy.split("(")[0]
        series[f"fidelity, {name}"] = tuple(by_budget[b].fidelity if b in by_budget else math.nan for b in plan)
    best = max(results, key=lambda r: r.fidelity)
    by_budget = {p.queries: p for p in best.points}
    series[f"copy accuracy, {best.strategy.split('(')[0]}"] = tuple(
        by_budget[b].surrogate_accuracy if b in by_budget else math.nan for b in plan
    )
    series["model accuracy"] = tuple(best.victim_accuracy for _ in plan)
    series["baseline (constant guess)"] = tuple(baseline for _ in plan)
    chart = Chart(
        title="Fidelity of a stolen copy against the attacker's queries",
        kind="line",
        x=tuple(float(b) for b in plan),
        series=series,
        x_label="queries",
        y_label="agreement / accuracy",
        y_range=(0.0, 1.0),
    )
    curves: dict[str, JSONValue] = {}
    for r in results:
        points: list[JSONValue] = [
            {"queries": p.queries, "fidelity": round(p.fidelity, 4), "copy_accuracy": round(p.surrogate_accuracy, 4)}
            for p in r.points
        ]
        curves[r.strategy] = points
    metrics: dict[str, JSONValue] = {
        "fidelity": round(fid, 4),
        "queries": queries,
        "training_records": n_train,
        "queries_per_training_record": round(queries / max(n_train, 1), 3),
        "baseline_fidelity": round(baseline, 4),
        "model_accuracy": round(best.victim_accuracy, 4),
        "evaluation_inputs": best.n_test,
        "curves": curves,
    }
    transfer = m.transfer
    if transfer is not None:
        transferred: dict[str, JSONValue] = {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in transfer.to_dict().items()
        }
        metrics["transferability"] = transferred
    transfer_text = (
        f" Adversarial examples made on the copy fool the model {transfer.transfer_rate:.0%} of the time, "
        f"against {transfer.noise_rate:.0%} for random noise of the same size."
        if transfer is not None and transfer.n
        else ""
    )
    return Finding(
        id="extraction.model-theft",
        check="extraction",
        title=f"A copy agreeing with the model on {fid:.0%} of inputs was trained from {queries} queries",
        severity=severity,
        description=(
            f"Black-box attacks ({', '.join(r.strategy for r in results)}) queried the model and trained copies on "
            f"its answers. The best copy agrees with it on {fid:.0%} of held-out inputs after {queries} queries "
            f"({queries / max(n_train, 1):.3g} per training record); a constant guess agrees on {baseline:.0%}."
            + transfer_text
        ),
        remediation=(
            "Return labels or rounded scores instead of full probabilities, rate-limit and authenticate clients, "
            "and monitor query streams for extraction (`modelshield.defenses.extraction_monitor` in Python)."
        ),
        owasp=OwaspMl.ML05,
        atlas=_ATLAS,
        metrics=metrics,
        charts=(chart,),
    )


def _equation_solving_finding(result: EquationSolvingResult, parameter_error: float | None) -> Finding:
    metrics: dict[str, JSONValue] = {
        "queries": result.attack_queries,
        "system_queries": result.system_queries,
        "check_residual": result.check_residual,
        "fidelity": result.fidelity,
    }
    if parameter_error is not None:
        metrics["max_abs_parameter_error"] = parameter_error
    return Finding(
        id="extraction.equation-solving",
        check="extraction",
        title=f"The model's exact parameters were recovered from {result.attack_queries} confidence-score queries",
        severity=Severity.HIGH,
        description=(
            "The model's scores are log-linear in its inputs (logistic or softmax regression): "
            f"{result.system_queries} queries determine every weight and bias (Tramèr et al. 2016). The recovered "
            f"model agrees with it on {(result.fidelity or 0):.0%} of held-out inputs."
        ),
        remediation="Return labels or coarsely rounded scores, not full-precision probabilities; rate-limit clients.",
        owasp=OwaspMl.ML05,
        atlas=_ATLAS,
        metrics=metrics,
    )


EXTRACTION = ExtractionCheck()
