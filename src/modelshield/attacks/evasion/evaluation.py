"""Robustness evaluation that is hard to fool: several attacks per ε, the worst case over them, and checks that
flag an evaluation whose numbers look like gradient masking rather than robustness.

    >>> from modelshield.attacks.evasion.evaluation import evaluate_robustness
    >>> evaluation = evaluate_robustness(classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)  # doctest: +SKIP
    >>> evaluation.worst  # robust accuracy at each ε, worst case over the attacks  # doctest: +SKIP

For a white-box model each ε gets FGSM, PGD, APGD-CE and (with three classes or more) APGD-DLR; a sample counts as
robust at ε only if every attack fails on it (AutoAttack's rule). Black-box models get the Square attack. The
reliability checks follow Athalye et al. 2018 and Carlini et al. 2019 ("On evaluating adversarial robustness"):

- ``unbounded``: an attack with ε as wide as the whole input range must reach ~0% accuracy; if it does not, the
  gradients do not lead anywhere (masking, or a broken attack).
- ``fgsm-beats-pgd``: one step cannot beat forty; if it does, the loss surface is not being followed.
- ``more-effort-helps``: PGD with four times the steps and five restarts must not go clearly below the reported
  worst case.
- ``blackbox-beats-whitebox``: the gradient-free Square attack must not do better than the gradient attacks at
  the largest ε.
- ``not-monotone``: robust accuracy must not rise with ε.

Each check compares robust accuracies with a tolerance of ``max(0.02, 2 standard errors)``, so sampling noise on
a few hundred inputs does not raise it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, IntArray
from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["Reliability", "RobustnessEvaluation", "evaluate_robustness"]


@dataclass(frozen=True)
class Reliability:
    """One reliability check that failed: a sign that the robustness numbers overstate the model."""

    id: str
    message: str


@dataclass(frozen=True)
class RobustnessEvaluation:
    """Robust accuracy per attack and ε, the worst case over attacks, per class, and the reliability verdicts."""

    norm: Norm
    eps: tuple[float, ...]
    clean_accuracy: float
    n: int
    robust: dict[str, tuple[float, ...]]  # attack family -> robust accuracy at each eps
    worst: tuple[float, ...]  # robust accuracy at each eps, worst case over the attacks
    worst_per_class: tuple[tuple[float, ...], ...]  # [eps][class]
    minimal_distances: tuple[float, ...] = ()  # DeepFool L2 distances of correctly classified inputs (white-box)
    unbounded_accuracy: float | None = None
    reliability: tuple[Reliability, ...] = ()
    queries: int = 0
    seconds: float = 0.0
    examples: dict[float, EvasionResult] = field(default_factory=dict, repr=False)  # the worst-case result per eps

    @property
    def reliable(self) -> bool:
        return not self.reliability


def _tolerance(p: float, n: int) -> float:
    return max(0.02, 2 * math.sqrt(max(p * (1 - p), 1e-4) / max(n, 1)))


def _worst(results: Sequence[EvasionResult], x: FloatArray) -> EvasionResult:
    """Per sample, the first attack that fools it (its example), else the input itself; robust only if all fail."""
    base = results[0]
    fooled = np.zeros(len(base.y), bool)
    x_adv = np.array(x, copy=True)
    predicted = np.array(base.predicted, copy=True)
    distances = np.zeros(len(base.y))
    for r in results:
        new = r.success & ~fooled
        x_adv[new], predicted[new], distances[new] = r.x_adv[new], r.predicted[new], r.distances[new]
        fooled |= r.success
    return EvasionResult(
        attack="worst case of " + ", ".join(r.attack.split("(")[0] for r in results),
        norm=base.norm,
        eps=base.eps,
        x_adv=x_adv,
        y=base.y,
        predicted=predicted,
        clean_correct=base.clean_correct,
        distances=distances,
        queries=sum(r.queries for r in results),
        seconds=sum(r.seconds for r in results),
    )


def evaluate_robustness(
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: Sequence[float],
    norm: Norm | str = Norm.LINF,
    steps: int = 40,
    seed: int = 0,
    constraints: Constraints | None = None,
    blackbox_queries: int = 1000,
    check_reliability: bool = True,
) -> RobustnessEvaluation:
    """Evaluate ``classifier`` on ``(x, y)`` at each ε with a battery of attacks; see the module documentation."""
    norm = Norm.parse(norm)
    eps = tuple(sorted(float(e) for e in eps))
    if not eps or min(eps) <= 0:
        raise InvalidParameterError("eps must be one or more positive numbers.", remedy="E.g. eps=(0.05, 0.1).")
    t0 = time.perf_counter()
    queries_before = classifier.queries
    robust: dict[str, list[float]] = {}
    worst: list[float] = []
    per_class: list[tuple[float, ...]] = []
    examples: dict[float, EvasionResult] = {}
    clean_pred = classifier.predict(x)
    clean_accuracy = float(np.mean(clean_pred == y))
    classes = np.arange(classifier.n_classes)
    for e in eps:
        results = _attacks(classifier, x, y, e, norm, steps, seed, constraints, blackbox_queries)
        for r in results:
            robust.setdefault(r.attack.split("(")[0], []).append(r.robust_accuracy)
        w = _worst(results, x)
        worst.append(w.robust_accuracy)
        per_class.append(tuple(float(np.mean(~w.success[y == c])) if (y == c).any() else math.nan for c in classes))
        examples[e] = w
    distances: tuple[float, ...] = ()
    unbounded = None
    reliability: list[Reliability] = []
    if isinstance(classifier, TorchClassifier) and check_reliability:
        from modelshield.attacks.evasion.whitebox import deepfool, pgd

        if norm is Norm.L2 or constraints is None or constraints.trivial:
            df = deepfool(classifier, x, y, constraints=constraints)
            distances = tuple(float(d) for d in df.distances[df.clean_correct & df.success])
        wide = _range_width(classifier, constraints, norm)
        if wide is not None:
            unbounded = pgd(classifier, x, y, eps=wide, norm=norm, steps=steps, seed=seed,
                            constraints=constraints).robust_accuracy  # fmt: skip
        hard = pgd(classifier, x, y, eps=eps[-1], norm=norm, steps=4 * steps, restarts=5, seed=seed + 1,
                   constraints=constraints)  # fmt: skip
        reliability = _reliability(robust, worst, eps, len(y), unbounded, hard.robust_accuracy)
        if norm is Norm.LINF:
            from modelshield.attacks.evasion.blackbox import square_attack

            square = square_attack(classifier, x, y, eps=eps[-1], max_queries=blackbox_queries, seed=seed,
                                   constraints=constraints).robust_accuracy  # fmt: skip
            if square < worst[-1] - _tolerance(worst[-1], len(y)):
                reliability.append(Reliability(
                    "blackbox-beats-whitebox",
                    f"At ε={eps[-1]:g} the gradient-free Square attack leaves {square:.1%} accuracy, below the "
                    f"{worst[-1]:.1%} of the gradient attacks: the gradients mislead them.",
                ))  # fmt: skip
    return RobustnessEvaluation(
        norm=norm,
        eps=eps,
        clean_accuracy=clean_accuracy,
        n=len(y),
        robust={k: tuple(v) for k, v in robust.items()},
        worst=tuple(worst),
        worst_per_class=tuple(per_class),
        minimal_distances=distances,
        unbounded_accuracy=unbounded,
        reliability=tuple(reliability),
        queries=classifier.queries - queries_before,
        seconds=time.perf_counter() - t0,
        examples=examples,
    )


def _attacks(
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    eps: float,
    norm: Norm,
    steps: int,
    seed: int,
    constraints: Constraints | None,
    blackbox_queries: int,
) -> list[EvasionResult]:
    if isinstance(classifier, TorchClassifier):
        from modelshield.attacks.evasion.whitebox import apgd, fgsm, pgd

        clf = classifier
        results = [
            fgsm(clf, x, y, eps=eps, norm=norm, constraints=constraints),
            pgd(clf, x, y, eps=eps, norm=norm, steps=steps, seed=seed, constraints=constraints),
            apgd(clf, x, y, eps=eps, norm=norm, steps=max(steps, 50), seed=seed, constraints=constraints),
        ]
        if classifier.n_classes >= 3:
            results.append(apgd(clf, x, y, eps=eps, norm=norm, loss="dlr", steps=max(steps, 50), seed=seed,
                                constraints=constraints))  # fmt: skip
        return results
    from modelshield.attacks.evasion import blackbox

    if norm is not Norm.LINF:
        raise InvalidParameterError("Black-box evaluation supports the L-infinity norm.", remedy="Use norm='linf'.")
    return [blackbox.square_attack(classifier, x, y, eps=eps, max_queries=blackbox_queries, seed=seed,
                                   constraints=constraints)]  # fmt: skip


def _range_width(classifier: Classifier, constraints: Constraints | None, norm: Norm) -> float | None:
    """An ε that covers the whole valid range (None when the range is unbounded)."""
    c = constraints or Constraints.from_bounds(classifier.clip_values, classifier.input_shape)
    width = np.asarray(c.high, np.float64) - np.asarray(c.low, np.float64)
    if not np.all(np.isfinite(width)):
        return None
    return float(width.max()) if norm is Norm.LINF else float(np.sqrt((width**2).sum()))


def _reliability(
    robust: dict[str, list[float]],
    worst: list[float],
    eps: tuple[float, ...],
    n: int,
    unbounded: float | None,
    hard_pgd: float,
) -> list[Reliability]:
    found: list[Reliability] = []
    if unbounded is not None and unbounded > _tolerance(0.0, n):
        found.append(Reliability(
            "unbounded",
            f"PGD with ε covering the whole input range leaves {unbounded:.1%} accuracy; it should reach ~0%: "
            "gradients are masked, or the model is not differentiable as evaluated.",
        ))  # fmt: skip
    fgsm, pgd = robust.get("fgsm"), robust.get("pgd")
    if fgsm and pgd:
        for e, f, p in zip(eps, fgsm, pgd, strict=True):
            if f < p - _tolerance(p, n):
                found.append(Reliability(
                    "fgsm-beats-pgd",
                    f"At ε={e:g} FGSM leaves {f:.1%} accuracy but PGD {p:.1%}: one step beating many means the "
                    "iterative attack is not following the loss.",
                ))  # fmt: skip
                break
    if hard_pgd < worst[-1] - _tolerance(worst[-1], n):
        found.append(Reliability(
            "more-effort-helps",
            f"At ε={eps[-1]:g} PGD with 4x the steps and 5 restarts lowers accuracy from the reported worst case "
            f"{worst[-1]:.1%} to {hard_pgd:.1%}: the attacks have not converged, so the curve overstates "
            "robustness.",
        ))  # fmt: skip
    for a, b, e in zip(worst, worst[1:], eps[1:], strict=False):
        if b > a + _tolerance(a, n):
            found.append(Reliability(
                "not-monotone",
                f"Robust accuracy rises from {a:.1%} to {b:.1%} at ε={e:g}: a larger budget cannot make an "
                "attack weaker.",
            ))  # fmt: skip
            break
    return found
