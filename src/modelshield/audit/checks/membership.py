"""The ``membership`` check: can an attacker tell which records trained the model?

    >>> from modelshield.audit.checks.membership import MEMBERSHIP, ODDS_THRESHOLDS, severity_of
    >>> ODDS_THRESHOLDS[0]
    (10.0, <Severity.HIGH: 'high'>)
    >>> severity_of(3.0), MEMBERSHIP.budgets["quick"].reference_models, MEMBERSHIP.budgets["standard"].reference_models
    (<Severity.MEDIUM: 'medium'>, 0, 16)

:meth:`MembershipCheck.measure` runs :func:`~modelshield.attacks.membership.assess_membership` with the target's
training records as members and its test records as non-members: the loss and population attacks always, LiRA
(online and offline) and RMIA when the target knows how it was trained (reference targets do; the reference
models are cached) and the budget trains reference models, and the label-only attack. What each budget buys
(:class:`MembershipSettings`): no reference models and 8 label-only copies (quick, a first look), 16 and 16
(standard), 64 and 32 (thorough).

Figures are the true-positive rate at 0.1% and 1% false-positive rate (Carlini et al. 2022), with Clopper–Pearson
intervals. A few hundred non-members cannot vouch for a 0.1% false-positive rate, so when reference models exist
the check also attacks each of them in turn with the others and pools the scores: the leakage of models trained
like the target, measured on many more non-members.

:meth:`MembershipCheck.judge` sets the severity (:data:`ODDS_THRESHOLDS`) from the odds the data can vouch for at
either false-positive rate: the lower confidence bound of the true-positive rate over the larger of the
false-positive rate and its upper bound. Odds of 10 or more: high (members are singled out with ten-to-one
confidence); 3 or more: medium; above 1: low; else no measurable leakage (info). The best of the target's own
figures and the pooled figures decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from modelshield.attacks.metrics import LOW_FPRS, RocSummary, TprAtFpr
from modelshield.audit.interface import Budget, Check, CheckContext, Requirement
from modelshield.errors import InvalidParameterError
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.attacks.membership import MembershipResult

__all__ = [
    "MEMBERSHIP",
    "ODDS_THRESHOLDS",
    "ROC_GRID",
    "AttackFigures",
    "ExposedRecord",
    "MembershipCheck",
    "MembershipMeasurement",
    "MembershipSettings",
    "odds",
    "severity_of",
]

#: Vouched-for odds (TPR lower bound / FPR upper bound) from which each severity applies; above 1: low.
ODDS_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((10.0, Severity.HIGH), (3.0, Severity.MEDIUM))
#: The false-positive rates the ROC chart shows the true-positive rate at (log-spaced, 0.1% to 100%).
ROC_GRID: tuple[float, ...] = tuple(float(v) for v in np.logspace(-3, 0, 25))
_ATLAS = ("AML.T0024.000",)
_EXPOSED = 10  # most exposed training records listed in the evidence


_ATTACKS = ("loss", "population", "lira-online", "lira-offline", "rmia", "label-only")
_WITHOUT_REFERENCES = ("loss", "population", "label-only")
_NO_REFERENCES = "lira-online, lira-offline, rmia: reference models are trained from the standard budget on"


@dataclass(frozen=True)
class MembershipSettings:
    """What a budget buys the membership check."""

    reference_models: int  # trained with the target's recipe for LiRA and RMIA (cached); 0: those attacks skipped
    label_only_copies: int  # noisy copies of each record at each noise scale (label-only attack)


_BUDGETS: Mapping[Budget, MembershipSettings] = MappingProxyType(
    {
        # a first look: no reference models to train (LiRA and RMIA run from the standard budget on)
        Budget.QUICK: MembershipSettings(reference_models=0, label_only_copies=8),
        Budget.STANDARD: MembershipSettings(reference_models=16, label_only_copies=16),
        Budget.THOROUGH: MembershipSettings(reference_models=64, label_only_copies=32),
    }
)


@dataclass(frozen=True)
class AttackFigures:
    """One attack's figures: its ROC summary, and its true-positive rate at each false-positive rate of
    :data:`ROC_GRID` (the best among thresholds whose false-positive rate does not exceed it)."""

    attack: str
    summary: RocSummary
    roc: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.roc) != len(ROC_GRID):
            raise InvalidParameterError(
                f"The ROC of {self.attack!r} has {len(self.roc)} points; the grid has {len(ROC_GRID)}."
            )


@dataclass(frozen=True)
class ExposedRecord:
    """A training record the best attack scores as most likely a member."""

    train_index: int
    label: int
    score: float


@dataclass(frozen=True)
class MembershipMeasurement:
    """What the membership attacks measured on the target, and on models trained like it (``pooled``)."""

    attacks: tuple[AttackFigures, ...]  # every attack that ran, in order
    pooled: AttackFigures | None = None  # RMIA pooled over the reference models, when there are any
    reference_models: int = 0
    exposed: tuple[ExposedRecord, ...] = ()  # the best attack's most exposed training records
    queries: int = 0  # the most queries any one attack sent to the target
    skipped: tuple[str, ...] = ()  # attacks that could not run, with the reason

    def __post_init__(self) -> None:
        if not self.attacks:
            raise InvalidParameterError("A membership measurement needs at least one attack's figures.")

    @property
    def best(self) -> AttackFigures:
        """The attack with the highest true-positive rate at the lowest false-positive rate (then AUC)."""
        return max(self.attacks, key=lambda a: (*(p.tpr for p in a.summary.at_fpr), a.summary.auc))

    @property
    def decisive(self) -> RocSummary:
        """The summary with the best vouched-for odds: the best attack's, or the pooled one."""
        candidates = [self.best.summary, *([self.pooled.summary] if self.pooled is not None else [])]
        return max(candidates, key=odds)


def _odds(point: TprAtFpr) -> float:
    return point.tpr_interval[0] / max(point.fpr_target, point.fpr_upper)


def odds(summary: RocSummary) -> float:
    """The best vouched-for odds over the low false-positive rates."""
    return max(_odds(p) for p in summary.at_fpr)


def severity_of(vouched_odds: float) -> Severity:
    """The severity of vouched-for odds of membership (:data:`ODDS_THRESHOLDS`; above 1: low; else info)."""
    for threshold, severity in ODDS_THRESHOLDS:
        if vouched_odds >= threshold:
            return severity
    return Severity.LOW if vouched_odds > 1.0 else Severity.INFO


def _figures(result: MembershipResult) -> AttackFigures:
    fpr, tpr = result.roc()
    # the best TPR among thresholds whose FPR does not exceed each grid point (a step function)
    idx = np.searchsorted(fpr, np.asarray(ROC_GRID), side="right") - 1
    return AttackFigures(result.attack, result.summary, tuple(float(tpr[i]) for i in idx))


def _point_metrics(summary: RocSummary) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {"auc": round(summary.auc, 4), "advantage": round(summary.advantage, 4)}
    for p in summary.at_fpr:
        key = f"tpr_at_{p.fpr_target:.1%}_fpr"
        interval: list[JSONValue] = [round(v, 4) for v in p.tpr_interval]
        out[key] = round(p.tpr, 4)
        out[key + "_interval"] = interval
        out[key + "_supported"] = p.supported
    out["members"] = summary.n_members
    out["non_members"] = summary.n_non_members
    return out


class MembershipCheck(Check[MembershipSettings, MembershipMeasurement]):
    """Loss, population, LiRA, RMIA and label-only membership attacks; TPR at 0.1% and 1% FPR."""

    name = "membership"
    title = "Membership inference"
    description = "Loss, population, LiRA, RMIA and label-only membership attacks; TPR at 0.1% and 1% FPR."
    requires = frozenset({Requirement.TRAIN_DATA, Requirement.SCORES})  # the loss and LiRA attacks read scores
    budgets: Mapping[Budget, MembershipSettings] = _BUDGETS

    def measure(self, context: CheckContext, settings: MembershipSettings) -> MembershipMeasurement:
        """Run the attacks (reference models from the target's recipe, when it has one) and pool RMIA over them."""
        from modelshield.attacks.membership import assess_membership, recipe_leakage

        target = context.target
        train = target.train
        if train is None:  # the runner skips such targets (Requirement.TRAIN_DATA)
            raise InvalidParameterError(
                "The membership check needs the target's training data (the members).",
                remedy="Give the target its training split.",
            )
        context.progress("attacks and reference models", 0, 2)
        with_references = settings.reference_models > 0
        assessment = assess_membership(
            target.classifier,
            train,
            target.test,
            trainer=target.trainer,
            attacks=_ATTACKS if with_references else _WITHOUT_REFERENCES,
            n_reference=max(settings.reference_models, 2),
            label_only_copies=settings.label_only_copies,
            seed=context.seed,
            cache_dir=context.cache_dir,
        )
        context.progress("pooling the reference models", 1, 2)
        pooled = None
        if assessment.reference is not None:
            y = np.concatenate([train.y, target.test.y])
            pooled = _figures(recipe_leakage(assessment.reference, y, attack="rmia", seed=context.seed))
        best = assessment.best
        exposed = tuple(
            ExposedRecord(int(i), int(train.y[i]), round(float(best.scores[i]), 4)) for i in best.most_exposed(_EXPOSED)
        )
        return MembershipMeasurement(
            attacks=tuple(_figures(r) for r in assessment.results),
            pooled=pooled,
            reference_models=assessment.reference.n_models if assessment.reference is not None else 0,
            exposed=exposed,
            queries=max(r.queries for r in assessment.results),
            skipped=assessment.skipped if with_references else (*assessment.skipped, _NO_REFERENCES),
        )

    def judge(self, measurement: MembershipMeasurement) -> Sequence[Finding]:
        """One finding, ``membership.leakage``, its severity from the decisive vouched-for odds."""
        m = measurement
        best, pooled = m.best, m.pooled
        vouched = odds(m.decisive)
        severity = severity_of(vouched)
        summary = best.summary
        low = summary.at_fpr[0]
        metrics: dict[str, JSONValue] = {
            "best_attack": best.attack,
            **_point_metrics(summary),
            "vouched_odds": round(vouched, 3),
            "attacks": {a.attack: _point_metrics(a.summary) for a in m.attacks},
            "reference_models": m.reference_models,
            "queries": m.queries,
        }
        if pooled is not None:
            metrics["recipe"] = {"attack": pooled.attack, **_point_metrics(pooled.summary)}
        roc = Chart(
            title="Membership inference ROC (log-log)",
            kind="line",
            x=ROC_GRID,
            series={
                **{a.attack: a.roc for a in m.attacks},
                **({"recipe (pooled)": pooled.roc} if pooled is not None else {}),
                "chance": ROC_GRID,
            },
            x_label="false-positive rate",
            y_label="true-positive rate",
            y_range=(1e-3, 1.0),
            scale="log",
        )
        at_one = next((i for i, p in enumerate(summary.at_fpr) if p.fpr_target == LOW_FPRS[1]), -1)
        bars = Chart(
            title=f"True-positive rate at {LOW_FPRS[1]:.0%} false positives",
            kind="bar",
            x=tuple(a.attack for a in m.attacks),
            series={"TPR": tuple(a.summary.at_fpr[at_one].tpr for a in m.attacks)},
            y_range=(0.0, 1.0),
        )
        exposed: list[JSONValue] = [
            {"train_index": r.train_index, "label": r.label, "score": r.score} for r in m.exposed
        ]
        support = (
            f"{summary.n_non_members} non-members cannot measure a false-positive rate below "
            f"{summary.min_supported_fpr:.2%}, so the target's own figure at 0.1% is measured at zero false "
            "positives and its interval is wide"
            if not low.supported
            else f"{summary.n_non_members} non-members support the 0.1% figure"
        )
        pooled_text = ""
        if pooled is not None:
            pl = pooled.summary.at_fpr[0]
            pooled_text = (
                f" Models trained the same way ({pooled.summary.n_non_members} non-members pooled over "
                f"{m.reference_models} models): {pl.tpr:.1%} at 0.1% false positives (95% interval "
                f"{pl.tpr_interval[0]:.1%}–{pl.tpr_interval[1]:.1%})."
            )
        skipped = f" Not run: {'; '.join(m.skipped)}." if m.skipped else ""
        if severity is Severity.INFO:
            title = f"No measurable membership leakage (best attack {best.attack}, AUC {summary.auc:.2f})"
        else:
            title = (
                f"Membership inference singles out {low.tpr:.1%} of training records at 0.1% false positives "
                f"({best.attack})"
            )
        return [
            Finding(
                id="membership.leakage",
                check=self.name,
                title=title,
                severity=severity,
                description=(
                    f"Best attack {best.attack}: AUC {summary.auc:.3f}, true-positive rate {low.tpr:.1%} at "
                    f"0.1% and {summary.at_fpr[at_one].tpr:.1%} at 1% false positives, on {summary.n_members} "
                    f"members and {summary.n_non_members} non-members; {support}.{pooled_text}{skipped} "
                    f"When the attack claims a record was in the training data, at a low false-positive rate, it "
                    f"is right at odds of at least {vouched:.1f} to 1 (taking the cautious end of both confidence "
                    "intervals)."
                ),
                remediation=(
                    "Train with differential privacy (`modelshield harden --defense dp-sgd --epsilon 8`), "
                    "regularise and stop early; release labels or rounded top-k scores instead of full "
                    "probabilities (this weakens score-based attacks, not label-only ones); then re-run this check."
                ),
                owasp=OwaspMl.ML04,
                atlas=_ATLAS,
                metrics=metrics,
                evidence={"most_exposed_records": exposed},
                charts=(roc, bars),
            )
        ]


MEMBERSHIP = MembershipCheck()
