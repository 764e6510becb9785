"""The ``membership`` check: can an attacker tell which records trained the model?

    >>> from modelshield.audit.checks.membership import MEMBERSHIP, ODDS_THRESHOLDS
    >>> ODDS_THRESHOLDS[0]
    (10.0, <Severity.HIGH: 'high'>)

The check runs :func:`~modelshield.attacks.membership.assess_membership` with the target's training records as
members and its test records as non-members: the loss and population attacks always, LiRA (online and offline) and
RMIA when the target knows how it was trained (reference targets do; the reference models are cached), and the
label-only attack. Reference models: 8 (quick), 16 (standard), 64 (thorough).

Figures are the true-positive rate at 0.1% and 1% false-positive rate (Carlini et al. 2022), with Clopper–Pearson
intervals. A few hundred non-members cannot vouch for a 0.1% false-positive rate, so when reference models exist
the check also attacks each of them in turn with the others and pools the scores: the leakage of models trained
like the target, measured on many more non-members.

Severity (:data:`ODDS_THRESHOLDS`) from the odds the data can vouch for at either false-positive rate: the lower
confidence bound of the true-positive rate over the larger of the false-positive rate and its upper bound. Odds
of 10 or more: high (members are singled out with ten-to-one confidence); 3 or more: medium; above 1: low; else no
measurable leakage (info). The best of the target's own figures and the pooled figures decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from modelshield.attacks.metrics import LOW_FPRS, RocSummary, TprAtFpr
from modelshield.audit.interface import Budget, Check, CheckContext, Requirement
from modelshield.findings import Chart, Finding, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.attacks.membership import MembershipResult

__all__ = ["MEMBERSHIP", "ODDS_THRESHOLDS", "REFERENCE_MODELS"]

#: Vouched-for odds (TPR lower bound / FPR upper bound) at which each severity applies.
ODDS_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((10.0, Severity.HIGH), (3.0, Severity.MEDIUM))
REFERENCE_MODELS = {Budget.QUICK: 8, Budget.STANDARD: 16, Budget.THOROUGH: 64}
LABEL_ONLY_COPIES = {Budget.QUICK: 8, Budget.STANDARD: 16, Budget.THOROUGH: 32}
_ATLAS = ("AML.T0024.000",)
_ROC_GRID = tuple(float(v) for v in np.logspace(-3, 0, 25))


def _odds(point: TprAtFpr) -> float:
    return point.tpr_interval[0] / max(point.fpr_target, point.fpr_upper)


def odds(summary: RocSummary) -> float:
    """The best vouched-for odds over the low false-positive rates."""
    return max(_odds(p) for p in summary.at_fpr)


def severity_of(vouched_odds: float) -> Severity:
    for threshold, severity in ODDS_THRESHOLDS:
        if vouched_odds >= threshold:
            return severity
    return Severity.LOW if vouched_odds > 1.0 else Severity.INFO


def _roc_on_grid(result: MembershipResult) -> tuple[float, ...]:
    fpr, tpr = result.roc()
    # the best TPR among thresholds whose FPR does not exceed each grid point (a step function)
    idx = np.searchsorted(fpr, np.asarray(_ROC_GRID), side="right") - 1
    return tuple(float(tpr[i]) for i in idx)


def _point_metrics(summary: RocSummary) -> dict[str, object]:
    out: dict[str, object] = {"auc": round(summary.auc, 4), "advantage": round(summary.advantage, 4)}
    for p in summary.at_fpr:
        key = f"tpr_at_{p.fpr_target:.1%}_fpr"
        out[key] = round(p.tpr, 4)
        out[key + "_interval"] = [round(v, 4) for v in p.tpr_interval]
        out[key + "_supported"] = p.supported
    out["members"] = summary.n_members
    out["non_members"] = summary.n_non_members
    return out


def membership_findings(ctx: CheckContext) -> Sequence[Finding]:
    from modelshield.attacks.membership import assess_membership, recipe_leakage

    target = ctx.target
    assert target.train is not None  # noqa: S101 - the check requires training data
    n_reference = REFERENCE_MODELS[ctx.budget]
    assessment = assess_membership(
        target.classifier,
        target.train,
        target.test,
        trainer=target.trainer,
        n_reference=n_reference,
        label_only_copies=LABEL_ONLY_COPIES[ctx.budget],
        seed=ctx.seed,
        cache_dir=ctx.cache_dir,
    )
    best = assessment.best
    pooled: MembershipResult | None = None
    if assessment.reference is not None:
        y = np.concatenate([target.train.y, target.test.y])
        pooled = recipe_leakage(assessment.reference, y, attack="rmia", seed=ctx.seed)
    decisive = max([best.summary, *([pooled.summary] if pooled is not None else [])], key=odds)
    severity = severity_of(odds(decisive))
    low = best.summary.at_fpr[0]
    metrics: dict[str, object] = {
        "best_attack": best.attack,
        **_point_metrics(best.summary),
        "vouched_odds": round(odds(decisive), 3),
        "attacks": {r.attack: _point_metrics(r.summary) for r in assessment.results},
        "reference_models": assessment.reference.n_models if assessment.reference is not None else 0,
        "queries": max(r.queries for r in assessment.results),
    }
    if pooled is not None:
        metrics["recipe"] = {"attack": pooled.attack, **_point_metrics(pooled.summary)}
    roc = Chart(
        title="Membership inference ROC (log-log)",
        kind="line",
        x=_ROC_GRID,
        series={
            **{r.attack: _roc_on_grid(r) for r in assessment.results},
            **({"recipe (pooled)": _roc_on_grid(pooled)} if pooled is not None else {}),
            "chance": _ROC_GRID,
        },
        x_label="false-positive rate",
        y_label="true-positive rate",
        y_range=(1e-3, 1.0),
        scale="log",
    )
    bars = Chart(
        title=f"True-positive rate at {LOW_FPRS[1]:.0%} false positives",
        kind="bar",
        x=tuple(r.attack for r in assessment.results),
        series={"TPR": tuple(r.summary.at_fpr[1].tpr for r in assessment.results)},
        y_range=(0.0, 1.0),
    )
    train = target.train
    exposed = [
        {"train_index": int(i), "label": int(train.y[i]), "score": round(float(best.scores[i]), 4)}
        for i in best.most_exposed(10)
    ]
    support = (
        f"{best.summary.n_non_members} non-members bound a false-positive rate no lower than "
        f"{best.summary.min_supported_fpr:.2%}, so the target's own figure at 0.1% is measured at zero false "
        "positives and its interval is wide"
        if not low.supported
        else f"{best.summary.n_non_members} non-members support the 0.1% figure"
    )
    pooled_text = ""
    if pooled is not None:
        pl = pooled.summary.at_fpr[0]
        pooled_text = (
            f" Models trained the same way ({pooled.summary.n_non_members} non-members pooled over "
            f"{assessment.reference.n_models if assessment.reference else 0} models): {pl.tpr:.1%} at 0.1% "
            f"false positives (95% interval {pl.tpr_interval[0]:.1%}–{pl.tpr_interval[1]:.1%})."
        )
    skipped = f" Not run: {'; '.join(assessment.skipped)}." if assessment.skipped else ""
    if severity is Severity.INFO:
        title = f"No measurable membership leakage (best attack {best.attack}, AUC {best.summary.auc:.2f})"
    else:
        title = (
            f"Membership inference singles out {low.tpr:.1%} of training records at 0.1% false positives "
            f"({best.attack})"
        )
    return [
        Finding(
            id="membership.leakage",
            check="membership",
            title=title,
            severity=severity,
            description=(
                f"Best attack {best.attack}: AUC {best.summary.auc:.3f}, true-positive rate {low.tpr:.1%} at "
                f"0.1% and {best.summary.at_fpr[1].tpr:.1%} at 1% false positives, on {best.summary.n_members} "
                f"members and {best.summary.n_non_members} non-members; {support}.{pooled_text}{skipped} "
                f"Vouched-for odds of membership: {odds(decisive):.1f} to 1."
            ),
            remediation=(
                "Train with differential privacy (`modelshield harden --defense dp-sgd --epsilon 8`), regularise "
                "and stop early; release labels or rounded top-k scores instead of full probabilities (this "
                "weakens score-based attacks, not label-only ones); then re-run this check."
            ),
            owasp=OwaspMl.ML04,
            atlas=_ATLAS,
            metrics=metrics,  # type: ignore[arg-type]
            evidence={"most_exposed_records": exposed},  # type: ignore[dict-item]
            charts=(roc, bars),
        )
    ]


MEMBERSHIP = Check(
    name="membership",
    title="Membership inference",
    description="Loss, population, LiRA, RMIA and label-only membership attacks; TPR at 0.1% and 1% FPR.",
    run=membership_findings,
    requires=frozenset({Requirement.TRAIN_DATA}),
)
