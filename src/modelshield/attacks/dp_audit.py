"""Check a claimed differential-privacy guarantee empirically, with one training run and canaries.

    >>> from modelshield.attacks.dp_audit import epsilon_lower_bound_one_run
    >>> round(epsilon_lower_bound_one_run(m=1000, guesses=100, correct=100, delta=0.0), 2)
    3.49

This is "privacy auditing with one (1) training run" (Steinke, Nasr & Jagielski, NeurIPS 2023). ``m`` canary
records are each put into the training set independently with probability 1/2 (``S_i = +1`` in, ``-1`` out). The
model is trained *once*; the auditor scores every canary (its loss, or its logit-scaled confidence) and guesses
"in" for the ``k_in`` highest scores, "out" for the ``k_out`` lowest, and abstains on the rest. If training is
(ε, δ)-DP with respect to the canaries, the number ``W`` of correct guesses among the ``r = k_in + k_out`` made
obeys, for every ``v`` (the paper's Theorem 3.1 with its Appendix D computation)::

    P[W >= v] <= F(v) + 2 m δ · max_{1 <= i <= v} (F(v - i) - F(v)) / i,   F(u) = P[Binomial(r, e^ε / (1 + e^ε)) >= u]

The right-hand side is the p-value of "training is (ε, δ)-DP" given ``v`` correct guesses; it grows with ε. The
lower bound reported at confidence ``1 - β`` is the largest ε whose p-value is below ``β``: every smaller ε is
rejected. With probability at least ``1 - β`` over the canaries' coin flips (and the training's randomness) it does
not exceed the true ε, so a lower bound above a *claimed* ε refutes the claim. The bound holds for any training
procedure and any scoring, provided the guesses are a function of the trained model and of the canaries alone (not
of the coin flips), and ``k_in``, ``k_out`` and the scoring are fixed before looking at the outcome: trying several
and keeping the best needs a union bound (divide ``β`` by their number).

Why not a Clopper–Pearson interval on the fraction of correct guesses: the ``r`` guesses are not independent
trials (they are chosen by ranking the scores of one model), so the binomial model of a confidence interval has no
justification; the theorem above is what makes a binomial tail valid here, and its ``2 m δ`` term is what
approximate DP costs. :func:`~modelshield.attacks.metrics.epsilon_lower_bound` is the classic bound for *many*
training runs, each with one canary in or out, whose outcomes are independent.

One-run audits of a model seen only through its outputs are far from tight: a DP-SGD model at ε = 8 typically
yields a bound well below 1. A small lower bound is no evidence of privacy; a large one is evidence against it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, GradientClassifier, IntArray

__all__ = [
    "Canaries",
    "OneRunAuditResult",
    "TrainFunction",
    "canary_scores",
    "epsilon_lower_bound_one_run",
    "make_canaries",
    "one_run_audit",
    "one_run_p_value",
]

log = logging.getLogger(__name__)

#: ``train(x, y, seed) -> Classifier``: trains a model on exactly these records.
TrainFunction = Callable[[FloatArray, IntArray, int], Classifier]
CanaryKind = Literal["mislabeled", "random"]
Score = Literal["loss", "logit"]


# -- the bound -------------------------------------------------------------------------------------------------


def _check_counts(m: int, guesses: int, correct: int, delta: float) -> None:
    if m < 1:
        raise InvalidParameterError(f"m (the number of canaries) must be at least 1, not {m}.")
    if not 0 <= correct <= guesses <= m:
        raise InvalidParameterError(
            f"Need 0 <= correct <= guesses <= m, got correct={correct}, guesses={guesses}, m={m}.",
            remedy="guesses counts the canaries not abstained on; correct those guessed right.",
        )
    if not 0 <= delta < 1:
        raise InvalidParameterError(f"delta must lie in [0, 1), not {delta}.")


def one_run_p_value(m: int, guesses: int, correct: int, *, epsilon: float, delta: float) -> float:
    """The p-value of "training is (``epsilon``, ``delta``)-DP" after ``correct`` right guesses out of ``guesses``
    on ``m`` canaries each included with probability 1/2 (Steinke et al. 2023, Theorem 3.1)."""
    from scipy.stats import binom

    _check_counts(m, guesses, correct, delta)
    if not (epsilon >= 0 and math.isfinite(epsilon)):
        raise InvalidParameterError(f"epsilon must be a non-negative finite number, not {epsilon}.")
    v, r = correct, guesses
    q = 1.0 / (1.0 + math.exp(-epsilon))  # accuracy of ε-DP randomised response on one bit
    tail = float(binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if v == 0 or delta == 0:
        return min(tail, 1.0)
    # (F(v - i) - F(v)) / i = P[v - i <= Binomial(r, q) < v] / i for i = 1..v; its maximum over i.
    below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ..., P[B = 0]
    slope = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(tail + 2.0 * m * delta * slope, 1.0)


def epsilon_lower_bound_one_run(
    m: int, guesses: int, correct: int, *, delta: float, confidence: float = 0.95, tolerance: float = 1e-6
) -> float:
    """The largest ε that ``correct`` right guesses out of ``guesses`` on ``m`` canaries reject at ``confidence``:
    a lower bound on the ε of the training, valid with that confidence (0 when nothing is rejected).

    Computed by bisection on the p-value of :func:`one_run_p_value`, which increases with ε, to within
    ``tolerance``; the result is rounded *down*, so it stays a lower bound.
    """
    _check_counts(m, guesses, correct, delta)
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must lie in (0, 1), not {confidence}.")
    beta = 1.0 - confidence

    def rejected(eps: float) -> bool:
        return one_run_p_value(m, guesses, correct, epsilon=eps, delta=delta) < beta

    if not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):  # terminates: as ε grows the tail tends to 1 when correct <= guesses
        low, high = high, 2.0 * high
        if high > 1e3:
            return low
    while high - low > tolerance:
        mid = (low + high) / 2
        if rejected(mid):
            low = mid
        else:
            high = mid
    return low


# -- canaries --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Canaries:
    """``m`` canary records (inputs ``x`` and labels ``y``) and how they were made."""

    x: FloatArray
    y: IntArray
    kind: str
    n_classes: int

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or len(self.x) < 1:
            raise InvalidInputError(
                f"Canaries need as many labels as inputs, at least one: {len(self.x)}, {len(self.y)}."
            )

    def __len__(self) -> int:
        return len(self.x)


def make_canaries(pool: Dataset, m: int, *, kind: CanaryKind = "mislabeled", seed: int = 0) -> Canaries:
    """``m`` canaries that a model can only fit by memorising them.

    ``"mislabeled"``: ``m`` records drawn without replacement from ``pool``, each with a label drawn uniformly
    from the *other* classes; ``pool`` must hold records that are not otherwise in the training set (a test split).
    ``"random"``: out-of-distribution inputs drawn uniformly from ``pool``'s schema bounds (else its value range)
    with uniformly random labels. The canaries are fixed before any inclusion coin is flipped.
    """
    if m < 1:
        raise InvalidParameterError(f"m must be at least 1, not {m}.")
    if kind not in ("mislabeled", "random"):
        raise InvalidParameterError(f"kind must be 'mislabeled' or 'random', not {kind!r}.")
    rng = np.random.default_rng(seed)
    k = pool.n_classes
    if kind == "mislabeled":
        if m > len(pool):
            raise InvalidParameterError(
                f"m={m} mislabeled canaries need at least as many pool records; the pool has {len(pool)}.",
                remedy="Use fewer canaries, a larger pool, or kind='random'.",
            )
        idx = rng.choice(len(pool), size=m, replace=False)
        y = (pool.y[idx] + rng.integers(1, k, size=m)) % k  # any class but the true one, uniformly
        return Canaries(np.array(pool.x[idx]), y.astype(np.int64), "mislabeled", k)
    bounds = pool.schema.bounds()
    if bounds is not None:
        low = np.broadcast_to(bounds[0], pool.schema.input_shape)
        high = np.broadcast_to(bounds[1], pool.schema.input_shape)
    else:
        low, high = pool.x.min(axis=0), pool.x.max(axis=0)
    x = rng.uniform(low, high, size=(m, *pool.schema.input_shape)).astype(np.float32)
    return Canaries(x, rng.integers(0, k, size=m).astype(np.int64), "random", k)


# -- the audit -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneRunAuditResult:
    """The outcome of a one-run audit: the empirical lower bound on ε and the counts it rests on."""

    epsilon_lower_bound: float
    claimed_epsilon: float | None
    delta: float
    confidence: float
    m: int  # canaries
    included: int  # canaries the coin flips put into training
    k_in: int  # guessed "in" (highest scores)
    k_out: int  # guessed "out" (lowest scores)
    correct: int
    score: str
    canary_kind: str
    seconds: float

    @property
    def guesses(self) -> int:
        return self.k_in + self.k_out

    @property
    def precision(self) -> float:
        """Fraction of the guesses that were right (1/2 is chance)."""
        return self.correct / self.guesses

    @property
    def refutes_claim(self) -> bool | None:
        """True when the lower bound exceeds the claimed ε (None when no ε was claimed)."""
        return None if self.claimed_epsilon is None else self.epsilon_lower_bound > self.claimed_epsilon

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "one-run audit (Steinke, Nasr & Jagielski 2023)",
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "claimed_epsilon": self.claimed_epsilon,
            "refutes_claim": self.refutes_claim,
            "delta": self.delta,
            "confidence": self.confidence,
            "m": self.m,
            "included": self.included,
            "k_in": self.k_in,
            "k_out": self.k_out,
            "guesses": self.guesses,
            "correct": self.correct,
            "precision": self.precision,
            "score": self.score,
            "canary_kind": self.canary_kind,
            "seconds": self.seconds,
        }


def canary_scores(classifier: Classifier, canaries: Canaries, *, score: Score = "loss") -> NDArray[np.float64]:
    """Membership scores of the canaries, higher meaning "more likely trained on".

    ``"loss"``: minus the cross-entropy of the canary's label; ``"logit"``: the logit-scaled confidence
    ``log p_y - log(1 - p_y)`` (Carlini et al. 2022). Both are computed from logits when the classifier has them
    (:class:`~modelshield.models.interface.GradientClassifier`), which keeps confident predictions apart, else
    from the probabilities.
    """
    if score not in ("loss", "logit"):
        raise InvalidParameterError(f"score must be 'loss' or 'logit', not {score!r}.")
    if classifier.n_classes != canaries.n_classes:
        raise InvalidInputError(
            f"The classifier has {classifier.n_classes} classes, the canaries {canaries.n_classes}."
        )
    rows = np.arange(len(canaries))
    if isinstance(classifier, GradientClassifier):
        z = np.asarray(classifier.logits(canaries.x), dtype=np.float64)
    else:
        z = np.log(np.maximum(np.asarray(classifier.predict_proba(canaries.x), dtype=np.float64), 1e-300))
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    log_p = z[rows, canaries.y] - log_norm
    if score == "loss":
        return np.asarray(log_p, dtype=np.float64)
    others = z.copy()
    others[rows, canaries.y] = -np.inf
    log_rest = np.log(np.maximum(np.exp(others).sum(axis=1), 1e-300)) - log_norm
    return np.asarray(log_p - log_rest, dtype=np.float64)


def one_run_audit(
    train: TrainFunction,
    base: Dataset,
    canaries: Canaries,
    *,
    delta: float,
    k_in: int,
    k_out: int | None = None,
    confidence: float = 0.95,
    score: Score = "loss",
    claimed_epsilon: float | None = None,
    seed: int = 0,
) -> OneRunAuditResult:
    """Audit the training function ``train`` in one run: an empirical lower bound on its ε.

    Each canary joins ``base`` (the rest of the training data, always included) with probability 1/2, drawn from
    ``seed``; ``train(x, y, seed)`` trains once on the union (shuffled); the ``k_in`` best-scoring canaries are
    guessed "in" and the ``k_out`` (default ``k_in``) worst-scoring "out". ``delta`` is the δ of the guarantee
    checked, with respect to one canary. Ties in score are broken by canary order, which does not depend on the
    coin flips. Pass ``claimed_epsilon`` to have the result say whether it is refuted.
    """
    m = len(canaries)
    k_out = k_in if k_out is None else k_out
    if k_in < 0 or k_out < 0 or k_in + k_out < 1:
        raise InvalidParameterError(
            f"k_in and k_out must be non-negative with at least one guess, got {k_in} and {k_out}.",
            remedy="Guess on a tenth of the canaries or so at each end, e.g. k_in = k_out = m // 10.",
        )
    if k_in + k_out > m:
        raise InvalidParameterError(f"k_in + k_out = {k_in + k_out} guesses exceed the {m} canaries.")
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must lie in (0, 1), not {confidence}.")
    if not 0 <= delta < 1:
        raise InvalidParameterError(f"delta must lie in [0, 1), not {delta}.")
    if claimed_epsilon is not None and not claimed_epsilon > 0:
        raise InvalidParameterError(f"claimed_epsilon must be positive, not {claimed_epsilon}.")
    if canaries.x.shape[1:] != base.schema.input_shape or canaries.n_classes != base.n_classes:
        raise InvalidInputError(
            f"The canaries (inputs {canaries.x.shape[1:]}, {canaries.n_classes} classes) do not match the base "
            f"data (inputs {base.schema.input_shape}, {base.n_classes} classes)."
        )
    if 2 * m * delta >= 1 - confidence:
        log.warning(
            "2·m·δ = %.3g is not small against 1 - confidence: the bound will be weak; use a smaller δ.", 2 * m * delta
        )

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    x = np.concatenate([base.x, canaries.x[included]])
    y = np.concatenate([base.y, canaries.y[included]])
    order = rng.permutation(len(x))
    classifier = train(x[order], y[order], seed)
    scores = canary_scores(classifier, canaries, score=score)
    if not np.all(np.isfinite(scores)):
        raise InvalidInputError("Some canary scores are not finite; the model's outputs are unusable for an audit.")
    ranking = np.argsort(-scores, kind="stable")
    guessed_in, guessed_out = ranking[:k_in], ranking[m - k_out :] if k_out else ranking[:0]
    correct = int(included[guessed_in].sum() + (~included[guessed_out]).sum())
    bound = epsilon_lower_bound_one_run(m, k_in + k_out, correct, delta=delta, confidence=confidence)
    result = OneRunAuditResult(
        epsilon_lower_bound=bound,
        claimed_epsilon=claimed_epsilon,
        delta=float(delta),
        confidence=float(confidence),
        m=m,
        included=int(included.sum()),
        k_in=k_in,
        k_out=k_out,
        correct=correct,
        score=score,
        canary_kind=canaries.kind,
        seconds=time.perf_counter() - t0,
    )
    log.info(
        "One-run audit: %d/%d correct guesses, epsilon >= %.3f at %.0f%% confidence",
        correct,
        k_in + k_out,
        bound,
        100 * confidence,
    )
    return result
