"""What every evasion attack takes and returns: norms, results re-checked on the returned examples, constraints.

    >>> from modelshield.attacks.evasion.interface import Norm
    >>> Norm.parse("Linf")
    <Norm.LINF: 'linf'>

An attack returns an :class:`EvasionResult`: the adversarial inputs, whether each one fools the model (measured
again on the returned array, never taken from the attack's own bookkeeping), the perturbation norms, and the
queries it spent; it is an :class:`~modelshield.attacks.interface.AttackResult`, whose
:meth:`EvasionResult.metrics` are the field's figures (robust accuracy, success rate, clean accuracy, mean distance).
:class:`Constraints` keeps adversarial records valid: inside the ε-ball, inside the valid range, immutable features
untouched, integer and categorical features on whole values.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import FeatureKind, Schema
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Bounds, Classifier, FloatArray, IntArray

__all__ = ["Constraints", "EvasionResult", "Norm", "perturbation_norms"]


class Norm(enum.StrEnum):
    LINF = "linf"
    L2 = "l2"

    @classmethod
    def parse(cls, value: str | Norm) -> Norm:
        if isinstance(value, Norm):
            return value
        key = value.strip().lower().replace("∞", "inf")
        try:
            return cls(key)
        except ValueError:
            raise InvalidParameterError(f"Unknown norm {value!r}.", remedy="Use linf or l2.") from None


def perturbation_norms(x_adv: NDArray[np.floating], x: NDArray[np.floating], norm: Norm) -> NDArray[np.float64]:
    """Per-sample norm of ``x_adv - x`` (computed in float64)."""
    delta = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    if norm is Norm.LINF:
        return np.asarray(np.abs(delta).max(axis=1, initial=0.0), np.float64)
    return np.asarray(np.sqrt((delta * delta).sum(axis=1)), np.float64)


@dataclass(frozen=True)
class EvasionResult:
    """Adversarial examples with their outcome, re-checked on the returned array."""

    attack: str  # name and parameters, e.g. "pgd(linf, eps=0.1, steps=40, restarts=1)"
    norm: Norm
    eps: float | None  # None for minimal-perturbation attacks
    x_adv: FloatArray
    y: IntArray  # true labels
    predicted: IntArray  # the model's prediction on x_adv
    clean_correct: NDArray[np.bool_]  # the model was right on the clean input
    distances: NDArray[np.float64]  # per-sample norm of x_adv - x
    queries: int  # forward passes (one per sample) and gradient computations spent
    seconds: float
    #: The rows of the target's test set that were attacked, when a plug-in drew the sample (``x_adv[i]`` attacks
    #: ``target.test.x[indices[i]]``); None when the caller passed the inputs.
    indices: IntArray | None = None

    @property
    def success(self) -> NDArray[np.bool_]:
        """Untargeted success: the model's answer on ``x_adv`` is wrong."""
        return np.asarray(self.predicted != self.y)

    @property
    def robust_accuracy(self) -> float:
        """Accuracy on the adversarial inputs (an attack that does not fool the model leaves it right)."""
        return float(np.mean(~self.success)) if len(self.y) else float("nan")

    @property
    def clean_accuracy(self) -> float:
        return float(np.mean(self.clean_correct)) if len(self.y) else float("nan")

    @property
    def success_rate(self) -> float:
        """Share of the inputs the model got right that the attack turned wrong."""
        right = self.clean_correct
        return float(np.mean(self.success[right])) if right.any() else float("nan")

    @property
    def mean_distance(self) -> float:
        """Mean perturbation norm of the successful examples of inputs the model got right (NaN when none)."""
        fooled = self.clean_correct & self.success
        return float(np.mean(self.distances[fooled])) if fooled.any() else math.nan

    def metrics(self) -> Mapping[str, float]:
        """Robust accuracy, success rate, clean accuracy and mean distance (NaN where undefined)."""
        return {
            "robust_accuracy": self.robust_accuracy,
            "success_rate": self.success_rate,
            "clean_accuracy": self.clean_accuracy,
            "mean_distance": self.mean_distance,
        }

    @classmethod
    def measure(
        cls,
        *,
        attack: str,
        classifier: Classifier,
        x: FloatArray,
        x_adv: FloatArray,
        y: IntArray,
        norm: Norm,
        eps: float | None,
        queries: int,
        seconds: float,
        clean_predicted: IntArray | None = None,
        adv_predicted: IntArray | None = None,
    ) -> EvasionResult:
        """Build a result from the model's answers on ``x_adv`` and ``x``: asked here unless the caller already
        asked the model about exactly these arrays (white-box attacks do, in the same pass that returns them)."""
        clean = classifier.predict(x) if clean_predicted is None else clean_predicted
        return cls(
            attack=attack,
            norm=norm,
            eps=eps,
            x_adv=x_adv,
            y=y,
            predicted=classifier.predict(x_adv) if adv_predicted is None else adv_predicted,
            clean_correct=np.asarray(clean == y),
            distances=perturbation_norms(x_adv, x, norm),
            queries=queries,
            seconds=seconds,
        )


@dataclass(frozen=True)
class Constraints:
    """What an adversarial input may change: a valid range, immutable features, features on whole values.

    Arrays have the shape of one input. ``integer`` marks integer, binary and categorical features: they move by
    whole steps only. Built from a :class:`~modelshield.data.interface.Schema` with :meth:`from_schema`, or from a
    classifier's ``clip_values`` alone (images) with :meth:`from_bounds`.
    """

    low: NDArray[np.float32]
    high: NDArray[np.float32]
    mutable: NDArray[np.bool_]
    integer: NDArray[np.bool_]

    @classmethod
    def from_bounds(cls, bounds: Bounds | None, input_shape: tuple[int, ...]) -> Constraints:
        low = np.broadcast_to(np.asarray(bounds.low if bounds else -np.inf, np.float32), input_shape)
        high = np.broadcast_to(np.asarray(bounds.high if bounds else np.inf, np.float32), input_shape)
        return cls(low.copy(), high.copy(), np.ones(input_shape, bool), np.zeros(input_shape, bool))

    @classmethod
    def from_schema(cls, schema: Schema, bounds: Bounds | None = None) -> Constraints:
        """Ranges from the schema's features (narrowed by ``bounds``), immutability and kinds from the features."""
        base = cls.from_bounds(bounds, schema.input_shape)
        feats = schema.features
        low = np.array([-np.inf if f.low is None else f.low for f in feats], np.float32).reshape(schema.input_shape)
        high = np.array([np.inf if f.high is None else f.high for f in feats], np.float32).reshape(schema.input_shape)
        for f_index, f in enumerate(feats):
            if f.kind is FeatureKind.CATEGORICAL and f.categories:
                idx = np.unravel_index(f_index, schema.input_shape)
                low[idx], high[idx] = max(low[idx], 0), min(high[idx], len(f.categories) - 1)
            if f.kind is FeatureKind.BINARY:
                idx = np.unravel_index(f_index, schema.input_shape)
                low[idx], high[idx] = max(low[idx], 0), min(high[idx], 1)
        mutable = np.array([not f.immutable for f in feats], bool).reshape(schema.input_shape)
        integer = np.array([f.kind is not FeatureKind.CONTINUOUS for f in feats], bool).reshape(schema.input_shape)
        return cls(np.maximum(base.low, low), np.minimum(base.high, high), mutable, integer)

    @property
    def trivial(self) -> bool:
        """Only a range: nothing immutable, nothing integer (images)."""
        return bool(self.mutable.all() and not self.integer.any())

    def project(
        self, x_adv: NDArray[np.floating], x: NDArray[np.floating], norm: Norm, eps: float | None
    ) -> FloatArray:
        """The nearest valid input to ``x_adv``: in the ε-ball around ``x`` (when ``eps`` is given), in range,
        immutable features as in ``x``, integer features on whole values that stay inside the ball."""
        x = np.asarray(x, np.float32)
        out = np.asarray(x_adv, np.float32).copy()
        out = np.where(self.mutable, out, x)
        if eps is not None and norm is Norm.LINF:
            out = np.clip(out, x - eps, x + eps)
        if self.integer.any():
            rounded = np.round(out)
            if eps is not None and norm is Norm.LINF:  # whole values inside the ball: x is one, being integral
                rounded = np.clip(rounded, np.ceil(x - eps - 1e-6), np.floor(x + eps + 1e-6))
            out = np.where(self.integer, rounded, out)
        out = np.clip(out, self.low, self.high)
        if self.integer.any():  # ranges of integer features are whole too
            out = np.where(self.integer, np.clip(out, np.ceil(self.low), np.floor(self.high)), out)
        if eps is not None and norm is Norm.L2:
            out = _l2_ball(out, x, eps, self.integer)
        return out.astype(np.float32, copy=False)


def _l2_ball(out: FloatArray, x: FloatArray, eps: float, integer: NDArray[np.bool_]) -> FloatArray:
    """Scale continuous perturbations into the L2 ball; integer steps that alone exceed it are undone."""
    delta = (out - x).reshape(len(x), -1).astype(np.float64)
    flat_int = np.broadcast_to(integer.reshape(-1), delta.shape[1:])
    int_norm = np.sqrt((delta[:, flat_int] ** 2).sum(axis=1))
    too_big = int_norm > eps
    delta[np.ix_(too_big, flat_int)] = 0.0
    int_sq = (delta[:, flat_int] ** 2).sum(axis=1)
    cont_norm = np.sqrt((delta[:, ~flat_int] ** 2).sum(axis=1))
    budget = np.sqrt(np.maximum(eps * eps - int_sq, 0.0))
    scale = np.where(cont_norm > budget, budget / np.maximum(cont_norm, 1e-12), 1.0)
    delta[:, ~flat_int] *= scale[:, None]
    # float32 rounding can leave the norm a hair above eps: shrink by one ulp-sized margin.
    result = (x.reshape(len(x), -1).astype(np.float64) + delta).astype(np.float32)
    over = np.sqrt(((result.astype(np.float64) - x.reshape(len(x), -1)) ** 2).sum(axis=1)) > eps
    if over.any():  # only continuous parts can carry rounding error: integer steps are exact in float32
        delta[np.ix_(over, ~flat_int)] *= 1 - 1e-6
        result = (x.reshape(len(x), -1).astype(np.float64) + delta).astype(np.float32)
    return result.reshape(x.shape)
