"""Output hardening: classifiers that wrap a classifier and release less of what it computes.

    >>> from modelshield.defenses.output import LabelOnly, TopK, compare_output_defenses
    >>> hardened = TopK(target.classifier, k=1)  # doctest: +SKIP
    >>> hardened.predict_proba(x)  # doctest: +SKIP
    >>> compare_output_defenses(target.classifier, target.train, target.test).rows  # doctest: +SKIP

Each wrapper is a black-box :class:`~modelshield.models.interface.Classifier` whose ``predict_proba`` returns the
hardened probabilities (rows summing to 1, up to rounding where stated), so a gateway can put it in front of any
model. What a wrapper *consumes* is explicit, through ``source``:

- ``"logits"``: the inner model's :meth:`~modelshield.models.interface.GradientClassifier.logits` (pre-softmax
  scores; a white-box adapter such as :class:`~modelshield.models.torch_classifier.TorchClassifier`). The wrapper
  turns them into probabilities itself with a softmax, so a model whose raw output is logits is never treated as
  if it were probabilities.
- ``"probabilities"``: the inner model's ``predict_proba`` (any adapter, e.g. scikit-learn).
- ``"auto"`` (default): logits when the inner model is a ``GradientClassifier``, else probabilities.

Query accounting: every input the wrapper answers is forwarded once to the inner model, so the inner model's
counter (``inner.queries``) advances exactly as the wrapper's own (``queries``) does; neither counts twice.

These defenses change what one query reveals, not what the model learned. They blunt attacks that read
confidence scores (membership inference by loss or confidence, model inversion from probabilities, extraction by
distillation on soft labels). They do not stop attacks that need only the predicted label: label-only membership
inference (Choquette-Choo et al. 2021; Li & Zhang 2021) probes how robust the label is under perturbation, and a
model that labels its training data right and its test data wrong still leaks membership through labels alone.
Argmax-preserving wrappers (all but noise without ``preserve_argmax``) cost no accuracy. Training-time defenses
(:mod:`.dp`) are what bound the leakage.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, GradientClassifier

__all__ = [
    "LabelOnly",
    "NoisyOutput",
    "OutputComparison",
    "OutputDefenseRow",
    "OutputHardening",
    "ReverseSigmoid",
    "Rounding",
    "TopK",
    "compare_output_defenses",
    "default_output_defenses",
]

Source = Literal["auto", "logits", "probabilities"]
_TINY = 1e-12


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def _swap_to(values: NDArray[np.float64], keep: NDArray[np.int64]) -> NDArray[np.float64]:
    """Rows of ``values`` with the entry at ``keep`` swapped with the row's largest entry, where it was not the
    largest: each row keeps its multiset of values (so its sum) and ``keep`` becomes its argmax. Rows of
    non-negative values summing to 1 stay so (up to a tie-breaking lift of 1e-4, renormalised)."""
    out = values.copy()
    rows = np.arange(len(out))
    top = np.argmax(out, axis=1)
    moved = top != keep
    r, a, b = rows[moved], keep[moved], top[moved]
    out[r, a], out[r, b] = values[r, b], values[r, a]
    # Ties with the kept entry (several scores clipped to the same value) would let argmax pick another class:
    # lift the kept entry just above its strongest rival and renormalise, which keeps the order of the others.
    rivals = out.copy()
    rivals[rows, keep] = -np.inf
    rival = rivals.max(axis=1) if out.shape[1] > 1 else np.full(len(out), -np.inf)
    tied = rival > out[rows, keep] - 1e-5  # also near-ties that float32 output would merge
    if tied.any():
        out[rows[tied], keep[tied]] = np.maximum(rival[tied], out[rows[tied], keep[tied]]) + 1e-4
        out[tied] /= out[tied].sum(axis=1, keepdims=True)
    return out


class OutputHardening(Classifier):
    """Base of the output wrappers: reads the inner model's logits or probabilities, returns hardened
    probabilities. Subclasses implement :meth:`_harden` on one batch."""

    #: Whether the wrapper never changes a row's argmax (so costs no accuracy).
    preserves_argmax: bool = True

    def __init__(self, inner: Classifier, *, source: Source = "auto") -> None:
        if not isinstance(inner, Classifier):
            raise InvalidParameterError(f"inner must be a Classifier, not {type(inner).__name__}.")
        if source not in ("auto", "logits", "probabilities"):
            raise InvalidParameterError(f"source must be 'auto', 'logits' or 'probabilities', not {source!r}.")
        if source == "logits" and not isinstance(inner, GradientClassifier):
            raise InvalidParameterError(
                f"source='logits' needs a model that exposes logits; {type(inner).__name__} gives probabilities.",
                remedy="Use source='probabilities' (or 'auto').",
            )
        super().__init__(
            n_classes=inner.n_classes,
            input_shape=inner.input_shape,
            clip_values=inner.clip_values,
            batch_size=inner.batch_size,
        )
        self.inner = inner
        self.source: Literal["logits", "probabilities"] = (
            ("logits" if isinstance(inner, GradientClassifier) else "probabilities") if source == "auto" else source
        )

    @property
    def name(self) -> str:
        """A short description with the parameters, e.g. ``"top-k(k=1)"``."""
        return type(self).__name__

    def _inner_outputs(self, x: FloatArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(probabilities, log-probabilities)`` of one batch, from logits or probabilities as configured."""
        if self.source == "logits":
            assert isinstance(self.inner, GradientClassifier)  # noqa: S101 - checked in __init__
            z = np.asarray(self.inner.logits(x), dtype=np.float64)
            z = z - z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return np.exp(log_p), log_p
        p = np.asarray(self.inner.predict_proba(x), dtype=np.float64)
        p = np.clip(p, 0.0, None)
        p = p / np.maximum(p.sum(axis=1, keepdims=True), _TINY)  # adapters round; make rows sum to 1 again
        return p, np.log(np.maximum(p, 1e-300))

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        p, log_p = self._inner_outputs(x)
        return self._harden(p, log_p, x)

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name} over {self.inner!r}"


class TopK(OutputHardening):
    """Releases only the ``k`` largest probabilities of each row. ``renormalize=True`` (default) rescales them to
    sum to 1 (the others are 0); ``False`` leaves them as they were and sets the others to 0, so the row sums to the
    top-k mass. Ties at the k-th place are broken by class index. Argmax-preserving."""

    def __init__(self, inner: Classifier, *, k: int = 1, renormalize: bool = True, source: Source = "auto") -> None:
        if k < 1:
            raise InvalidParameterError(f"k must be at least 1, not {k}.", remedy="Keep k >= 1 (k=1 is label-only).")
        super().__init__(inner, source=source)
        if k > inner.n_classes:
            raise InvalidParameterError(f"k={k} exceeds the model's {inner.n_classes} classes.")
        self.k = k
        self.renormalize = renormalize

    @property
    def name(self) -> str:
        return f"top-k(k={self.k}{'' if self.renormalize else ', raw'})"

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        order = np.argsort(-p, axis=1, kind="stable")
        out = np.zeros_like(p)
        rows = np.arange(len(p))[:, None]
        keep = order[:, : self.k]
        out[rows, keep] = p[rows, keep]
        if self.renormalize:
            out /= np.maximum(out.sum(axis=1, keepdims=True), _TINY)
        return out


class Rounding(OutputHardening):
    """Probabilities on a grid of ``10 ** -decimals``, each row summing to exactly 1 on that grid (largest-remainder
    rounding), with the argmax kept strictly on top (one grid step is moved to it from a competitor when rounding
    would make a tie). Argmax-preserving."""

    def __init__(self, inner: Classifier, *, decimals: int = 2, source: Source = "auto") -> None:
        if not 0 <= decimals <= 6:
            raise InvalidParameterError(f"decimals must lie in 0..6, not {decimals}.")
        super().__init__(inner, source=source)
        self.decimals = decimals

    @property
    def name(self) -> str:
        return f"rounding(decimals={self.decimals})"

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        scale = 10**self.decimals
        scaled = p * scale
        units = np.floor(scaled).astype(np.int64)
        left = scale - units.sum(axis=1)  # grid steps still to hand out, 0..n_classes
        order = np.argsort(-(scaled - units), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(p.shape[1])[None, :].repeat(len(p), 0), axis=1)
        units += rank < left[:, None]
        top = np.argmax(p, axis=1)
        rows = np.arange(len(p))
        for _ in range(scale + 1):  # each pass moves one step to the argmax from its strongest rival
            rivals = units.copy()
            rivals[rows, top] = -1
            rival = np.argmax(rivals, axis=1)
            tied = rivals[rows, rival] >= units[rows, top]
            if not tied.any():
                break
            units[rows[tied], rival[tied]] -= 1
            units[rows[tied], top[tied]] += 1
        return np.asarray(units / scale, dtype=np.float64)


class LabelOnly(OutputHardening):
    """The one-hot vector of each row's own argmax (computed row by row, never across the batch). Argmax-preserving.

    Label-only outputs still leak membership to label-only attacks (see the module docstring)."""

    @property
    def name(self) -> str:
        return "label-only"

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        out = np.zeros_like(p)
        out[np.arange(len(p)), np.argmax(p, axis=1)] = 1.0
        return out


class NoisyOutput(OutputHardening):
    """Independent Laplace (scale ``b = scale``) or Gaussian (standard deviation ``scale``) noise added to every
    class score, in ``space="probabilities"`` (then clipped at 0 and renormalised) or ``space="logits"`` (added to
    the log-probabilities, then softmax). With ``preserve_argmax`` (default) the true top class's score is swapped
    with the noisy winner's where the noise made another class win, so accuracy is unchanged.

    The noise comes from ``seed``. With ``repeatable=True`` (default) it is a function of ``(seed, input bytes)``, so
    asking the same question twice gets the same answer and averaging repeated queries gains nothing; with ``False``
    each query draws fresh noise, which ``n`` repeats average down by ``sqrt(n)``. ``scale`` is the stated noise
    scale, per class score; it is not a differential-privacy guarantee for the training data.
    """

    def __init__(
        self,
        inner: Classifier,
        *,
        scale: float,
        distribution: Literal["laplace", "gaussian"] = "laplace",
        space: Literal["probabilities", "logits"] = "probabilities",
        preserve_argmax: bool = True,
        repeatable: bool = True,
        seed: int = 0,
        source: Source = "auto",
    ) -> None:
        if not (scale > 0 and math.isfinite(scale)):
            raise InvalidParameterError(f"scale must be a positive finite number, not {scale}.")
        if distribution not in ("laplace", "gaussian"):
            raise InvalidParameterError(f"distribution must be 'laplace' or 'gaussian', not {distribution!r}.")
        if space not in ("probabilities", "logits"):
            raise InvalidParameterError(f"space must be 'probabilities' or 'logits', not {space!r}.")
        super().__init__(inner, source=source)
        self.scale = float(scale)
        self.distribution = distribution
        self.space = space
        self.preserves_argmax = preserve_argmax
        self.repeatable = repeatable
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        keep = ", argmax kept" if self.preserves_argmax else ""
        return f"noise({self.distribution}, scale={self.scale:g}, {self.space}{keep})"

    def _noise(self, x: FloatArray, k: int) -> NDArray[np.float64]:
        draw: Callable[[np.random.Generator, int], NDArray[np.float64]]
        if self.distribution == "laplace":
            draw = lambda g, n: g.laplace(0.0, self.scale, size=n)  # noqa: E731
        else:
            draw = lambda g, n: g.normal(0.0, self.scale, size=n)  # noqa: E731
        if not self.repeatable:
            return np.stack([draw(self._rng, k) for _ in range(len(x))]) if len(x) else np.empty((0, k))
        rows = []
        for row in np.ascontiguousarray(x):
            digest = hashlib.blake2b(row.tobytes(), digest_size=16, key=str(self.seed).encode()).digest()
            rows.append(draw(np.random.default_rng(int.from_bytes(digest, "little")), k))
        return np.stack(rows) if rows else np.empty((0, k))

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        noise = self._noise(x, p.shape[1])
        if self.space == "logits":
            noisy = log_p + noise
            out = _softmax(noisy)
        else:
            out = np.clip(p + noise, 0.0, None)
            empty = out.sum(axis=1) <= _TINY
            out[empty] = 1.0  # every score clipped away: uniform, before the argmax is restored
            out /= out.sum(axis=1, keepdims=True)
        if self.preserves_argmax:
            out = _swap_to(out, np.argmax(p, axis=1))
        return out


class ReverseSigmoid(OutputHardening):
    """The reverse-sigmoid deceptive perturbation (Lee et al. 2019, "Defending against NN model stealing attacks
    using deceptive perturbations").

    Each probability ``y`` becomes ``y - beta * (sigmoid(gamma * logit(y)) - 1/2)``, clipped at 0, and the row is
    renormalised. The perturbation is largest for confident scores and pushes them towards 1/2 in a way whose
    gradient misleads a model trained to imitate them; ``beta`` scales it, ``gamma`` sets how fast it saturates.
    The map is increasing (so keeps the ranking of classes) when ``beta * gamma < 1``; otherwise, and after
    clipping, the argmax is restored by a swap as in :class:`NoisyOutput`, so accuracy is unchanged.
    """

    def __init__(self, inner: Classifier, *, beta: float = 1.0, gamma: float = 0.1, source: Source = "auto") -> None:
        if not (beta >= 0 and math.isfinite(beta)):
            raise InvalidParameterError(f"beta must be a non-negative number, not {beta}.")
        if not (gamma > 0 and math.isfinite(gamma)):
            raise InvalidParameterError(f"gamma must be a positive number, not {gamma}.")
        super().__init__(inner, source=source)
        self.beta = float(beta)
        self.gamma = float(gamma)

    @property
    def name(self) -> str:
        return f"reverse-sigmoid(beta={self.beta:g}, gamma={self.gamma:g})"

    def _harden(self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray) -> NDArray[np.float64]:
        # logit(y) = log y - log(1 - y), from log-probabilities so that y near 1 stays finite.
        log_rest = np.log(np.maximum(-np.expm1(np.minimum(log_p, -1e-16)), 1e-300))
        logit = np.clip(log_p - log_rest, -700.0, 700.0)
        perturbation = self.beta * (1.0 / (1.0 + np.exp(-self.gamma * logit)) - 0.5)
        out = np.clip(p - perturbation, 0.0, None)
        empty = out.sum(axis=1) <= _TINY
        out[empty] = 1.0
        out /= out.sum(axis=1, keepdims=True)
        return _swap_to(out, np.argmax(p, axis=1))


# -- measuring the effect ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputDefenseRow:
    """One wrapper's effect on a loss-threshold and a confidence-threshold membership attack, and its cost."""

    defense: str
    loss_auc: float
    loss_tpr_at_1pct_fpr: float
    confidence_auc: float
    confidence_tpr_at_1pct_fpr: float
    tpr_supported: bool  # whether the non-members can vouch for a 1% false-positive rate at all
    accuracy: float  # on the non-members (held-out data)
    accuracy_cost: float  # undefended accuracy minus this one
    preserves_argmax: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class OutputComparison:
    """The membership-attack effect and accuracy cost of each output wrapper, the undefended model first."""

    rows: tuple[OutputDefenseRow, ...]
    n_members: int
    n_non_members: int
    attack: str = field(
        default="loss threshold (score log p_y) and confidence threshold (score max_j p_j), members = training "
        "records, non-members = held-out records; AUC and TPR at 1% FPR"
    )

    def row(self, defense: str) -> OutputDefenseRow:
        for r in self.rows:
            if r.defense == defense:
                return r
        raise KeyError(f"No row for {defense!r}; rows: {[r.defense for r in self.rows]}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
            "rows": [r.to_dict() for r in self.rows],
        }


def default_output_defenses(seed: int = 0) -> dict[str, Callable[[Classifier], Classifier]]:
    """The wrappers :func:`compare_output_defenses` measures by default, by name."""
    return {
        "top-k(k=2)": lambda c: TopK(c, k=2),
        "rounding(decimals=1)": lambda c: Rounding(c, decimals=1),
        "label-only": LabelOnly,
        "noise(laplace, scale=0.1, probabilities, argmax kept)": lambda c: NoisyOutput(c, scale=0.1, seed=seed),
        "noise(laplace, scale=1, logits, argmax kept)": lambda c: NoisyOutput(c, scale=1.0, space="logits", seed=seed),
        "reverse-sigmoid(beta=1, gamma=0.1)": lambda c: ReverseSigmoid(c, beta=1.0, gamma=0.1),
    }


def _attack_scores(proba: NDArray[np.float64], y: NDArray[np.int64]) -> tuple[NDArray[np.float64], ...]:
    p = np.asarray(proba, dtype=np.float64)
    loss_score = np.log(np.maximum(p[np.arange(len(p)), y], _TINY))
    return loss_score, p.max(axis=1)


def compare_output_defenses(
    classifier: Classifier,
    members: Dataset,
    non_members: Dataset,
    defenses: Mapping[str, Callable[[Classifier], Classifier]] | None = None,
) -> OutputComparison:
    """Measure each output wrapper against simple membership attacks on ``classifier``.

    ``members`` are records it was trained on (``target.train``), ``non_members`` held-out ones (``target.test``).
    Each attack thresholds one score read from the wrapper's released probabilities: the loss attack
    ``log p_y`` (Yeom et al. 2018) and the confidence attack ``max_j p_j``; reported as AUC and TPR at 1% FPR
    (:func:`~modelshield.attacks.metrics.roc_summary`). The accuracy cost is measured on ``non_members``.
    ``defenses`` maps a name to a function wrapping a classifier (default :func:`default_output_defenses`).
    """
    from modelshield.attacks.metrics import roc_summary

    x = np.concatenate([members.x, non_members.x])
    y = np.concatenate([members.y, non_members.y])
    labels = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
    wrappers: dict[str, Callable[[Classifier], Classifier]] = {"none": lambda c: c}
    wrappers.update(defenses if defenses is not None else default_output_defenses())
    rows: list[OutputDefenseRow] = []
    base_accuracy = float("nan")
    for name, wrap in wrappers.items():
        model = wrap(classifier)
        proba = np.asarray(model.predict_proba(x), dtype=np.float64)
        accuracy = float(np.mean(np.argmax(proba[~labels], axis=1) == y[~labels]))
        if name == "none":
            base_accuracy = accuracy
        summaries = [roc_summary(s, labels, fprs=(0.01,)) for s in _attack_scores(proba, y)]
        rows.append(
            OutputDefenseRow(
                defense=name,
                loss_auc=summaries[0].auc,
                loss_tpr_at_1pct_fpr=summaries[0].at_fpr[0].tpr,
                confidence_auc=summaries[1].auc,
                confidence_tpr_at_1pct_fpr=summaries[1].at_fpr[0].tpr,
                tpr_supported=summaries[0].at_fpr[0].supported,
                accuracy=accuracy,
                accuracy_cost=base_accuracy - accuracy,
                preserves_argmax=bool(getattr(model, "preserves_argmax", True)),
            )
        )
    return OutputComparison(rows=tuple(rows), n_members=len(members), n_non_members=len(non_members))
