"""The ``extraction`` check: how closely an attacker can copy the model from its answers, and for how many queries.

    >>> from modelshield.audit.checks.extraction import EXTRACTION, BUDGET_FACTOR
    >>> EXTRACTION.name, BUDGET_FACTOR["quick"]
    ('extraction', 0.5)

The check plays a black-box attacker with :func:`~modelshield.attacks.extraction.extract_model`. The test split is
cut in two at random (seeded): one half is the attacker's own data, the other measures the copies. Query budgets
are fractions 1/8, 1/4, 1/2 and 1 of ``BUDGET_FACTOR[budget]`` times the training-set size (quick 0.5, standard 1,
thorough 2). Strategies: ``jacobian`` (Papernot et al. 2017, seeded with the attacker's half) and ``natural``
(the attacker's half, as far as it reaches), and ``random`` beyond the quick budget. Adversarial examples crafted on
the best copy (PGD, L∞; ε = 10% of the range for images, 0.25 standard deviation for tabular data) are replayed
against the model: their transfer rate, next to that of random noise of the same size, is in the metrics.

Severity from the best fidelity (agreement with the model on the held-out half), :data:`SEVERITY_RULES`:

- high: fidelity >= 0.90 with no more queries than the training set has records;
- medium: fidelity >= 0.75 within that many queries, or >= 0.90 at any budget measured;
- low: fidelity at least 0.10 above the baseline (a constant guess of the model's most frequent answer);
- info otherwise.

The quick budget spends at most half the training-set size, so it can only understate the risk.

Tabular models are also tested with equation solving (Tramèr et al. 2016): if ``d + 1`` confidence queries and a
few checks show the model is log-linear (logistic or softmax regression), its exact parameters are recoverable and
an ``extraction.equation-solving`` finding (high) reports the recovery, with the parameter error when the model is
a scikit-learn linear model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.audit.interface import Check, CheckContext
from modelshield.findings import Chart, Finding, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.attacks.extraction import EquationSolvingResult, ExtractionResult

__all__ = ["BUDGET_FACTOR", "EXTRACTION", "SEVERITY_RULES"]

#: Largest query budget, as a multiple of the training-set size, per audit budget.
BUDGET_FACTOR: Mapping[str, float] = {"quick": 0.5, "standard": 1.0, "thorough": 2.0}
#: (minimum fidelity, largest queries as a multiple of the training-set size or None for any, severity), in order.
SEVERITY_RULES: tuple[tuple[float, float | None, Severity], ...] = (
    (0.90, 1.0, Severity.HIGH),
    (0.75, 1.0, Severity.MEDIUM),
    (0.90, None, Severity.MEDIUM),
)
_LOW_MARGIN = 0.10  # above the baseline
_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
_ATLAS = ("AML.T0024.002", "AML.T0040")
_TRAINING = {  # (epochs, min_steps, max_steps, pgd steps) per audit budget
    "quick": (10, 60, 200, 10),
    "standard": (30, 300, 1500, 20),
    "thorough": (30, 500, 3000, 40),
}
_MIN_BUDGET = 20


def extraction_findings(context: CheckContext) -> Sequence[Finding]:
    from modelshield.attacks.extraction import extract_model, transferability

    target = context.target
    victim = target.classifier
    n_train = len(target.train) if target.train is not None else len(target.test)
    order = context.rng.permutation(len(target.test))
    half = len(order) // 2
    attacker_x = target.test.x[order[:half]]
    eval_idx = order[half:][: context.budget.samples]
    x_eval, y_eval = target.test.x[eval_idx], target.test.y[eval_idx]
    budget = context.budget.value
    top = max(_MIN_BUDGET * 4, math.ceil(n_train * BUDGET_FACTOR[budget]))
    plan = tuple(sorted({max(_MIN_BUDGET, round(top * f)) for f in _FRACTIONS}))
    epochs, min_steps, max_steps, pgd_steps = _TRAINING[budget]
    train_kw: dict[str, Any] = {"epochs": epochs, "min_steps": min_steps, "max_steps": max_steps,
                                "seed": context.seed, "keep_queries": False}  # fmt: skip
    results: list[ExtractionResult] = []
    results.append(extract_model(victim, x_eval, y_eval, strategy="jacobian", budgets=plan, natural_x=attacker_x,
                                 jacobian_seed=min(plan[0], len(attacker_x)) or None, **train_kw))  # fmt: skip
    natural_plan = tuple(b for b in plan if b <= len(attacker_x))
    if natural_plan:
        results.append(extract_model(victim, x_eval, y_eval, strategy="natural", budgets=natural_plan,
                                     natural_x=attacker_x, selection="balanced", **train_kw))  # fmt: skip
    if budget != "quick":
        results.append(extract_model(victim, x_eval, y_eval, strategy="random", budgets=plan,
                                     natural_x=attacker_x, **train_kw))  # fmt: skip
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
                                   steps=pgd_steps, limit=context.budget.samples, seed=context.seed)  # fmt: skip
    findings = [_theft_finding(results, transfer, plan, n_train)]
    if len(victim.input_shape) == 1:
        solved = _equation_solving(victim, attacker_x, x_eval, context.seed)
        if solved is not None:
            findings.append(solved)
    return findings


def _image(victim: Any) -> bool:
    return len(victim.input_shape) > 1 and victim.clip_values is not None


def _bounds(victim: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bounds = victim.clip_values
    if bounds is None:
        return x.min(axis=0), x.max(axis=0)
    return np.asarray(bounds.low, np.float32), np.asarray(bounds.high, np.float32)


def _severity(results: Sequence[ExtractionResult], n_train: int) -> tuple[Severity, float, int]:
    """Severity, with the fidelity and queries of the point that decided it."""
    points = [(p.fidelity, p.queries) for r in results for p in r.points]
    for min_fid, max_ratio, severity in SEVERITY_RULES:
        ok = [(f, q) for f, q in points if f >= min_fid and (max_ratio is None or q <= max_ratio * n_train)]
        if ok:
            fid, queries = min(ok, key=lambda fq: fq[1])
            return severity, fid, queries
    fid, queries = max(points)
    baseline = results[0].baseline_fidelity
    return (Severity.LOW if fid >= baseline + _LOW_MARGIN else Severity.INFO), fid, queries


def _theft_finding(results: Sequence[ExtractionResult], transfer: Any, plan: tuple[int, ...], n_train: int) -> Finding:
    severity, fid, queries = _severity(results, n_train)
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
    metrics: dict[str, Any] = {
        "fidelity": round(fid, 4),
        "queries": queries,
        "training_records": n_train,
        "queries_per_training_record": round(queries / max(n_train, 1), 3),
        "baseline_fidelity": round(baseline, 4),
        "model_accuracy": round(best.victim_accuracy, 4),
        "evaluation_inputs": best.n_test,
        "curves": {
            r.strategy: [
                {
                    "queries": p.queries,
                    "fidelity": round(p.fidelity, 4),
                    "copy_accuracy": round(p.surrogate_accuracy, 4),
                }
                for p in r.points
            ]
            for r in results
        },
    }
    if transfer is not None:
        metrics["transferability"] = {k: (round(v, 4) if isinstance(v, float) else v)
                                      for k, v in transfer.to_dict().items()}  # fmt: skip
    return Finding(
        id="extraction.model-theft",
        check="extraction",
        title=f"A copy agreeing with the model on {fid:.0%} of inputs was trained from {queries} queries",
        severity=severity,
        description=(
            f"Black-box attacks ({', '.join(r.strategy for r in results)}) queried the model and trained copies on "
            f"its answers. The best copy agrees with it on {fid:.0%} of held-out inputs after {queries} queries "
            f"({queries / max(n_train, 1):.2f} per training record); a constant guess agrees on {baseline:.0%}."
            + (
                f" Adversarial examples made on the copy fool the model {transfer.transfer_rate:.0%} of the time, "
                f"against {transfer.noise_rate:.0%} for random noise of the same size."
                if transfer is not None and transfer.n
                else ""
            )
        ),
        remediation=(
            "Return labels or rounded scores instead of full probabilities, rate-limit and authenticate clients, "
            "and monitor query streams for extraction (modelshield.defenses.extraction_monitor)."
        ),
        owasp=OwaspMl.ML05,
        atlas=_ATLAS,
        metrics=metrics,
        charts=(chart,),
    )


def _equation_solving(victim: Any, x_ref: np.ndarray, x_eval: np.ndarray, seed: int) -> Finding | None:
    from modelshield.attacks.extraction import solve_linear_model
    from modelshield.errors import InvalidInputError

    try:
        result = solve_linear_model(victim, x_ref=x_ref if len(x_ref) else None, x_test=x_eval, seed=seed)
    except InvalidInputError:
        return None  # saturated everywhere: the attack does not apply
    if not result.consistent:
        return None
    metrics: dict[str, Any] = {
        "queries": result.queries,
        "system_queries": result.system_queries,
        "check_residual": result.check_residual,
        "fidelity": result.fidelity,
    }
    error = _parameter_error(victim, result)
    if error is not None:
        metrics["max_abs_parameter_error"] = error
    return Finding(
        id="extraction.equation-solving",
        check="extraction",
        title=f"The model's exact parameters were recovered from {result.queries} confidence-score queries",
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


def _parameter_error(victim: Any, result: EquationSolvingResult) -> float | None:
    estimator = getattr(victim, "estimator", None)
    coef, intercept = getattr(estimator, "coef_", None), getattr(estimator, "intercept_", None)
    if coef is None or intercept is None:
        return None
    try:
        return result.parameter_error(coef, intercept)
    except ValueError:
        return None


EXTRACTION = Check(
    name="extraction",
    title="Model extraction",
    description="Black-box model theft (Jacobian augmentation, natural data, random queries): fidelity against "
    "queries, transfer of adversarial examples, and equation solving of log-linear models.",
    run=extraction_findings,
)
