"""Output hardening: release less of what a model computes (top-k, rounding, labels only, noise, reverse sigmoid).

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models import SklearnClassifier
    >>> from modelshield.defenses.interface import GuardRequest
    >>> from modelshield.defenses.output import TopK
    >>> x = np.random.default_rng(0).normal(size=(60, 3)); y = np.arange(60) % 3
    >>> model = SklearnClassifier(LogisticRegression().fit(x, y), input_shape=(3,))
    >>> top1 = TopK(k=1).fit(model, x)
    >>> decision = top1.inspect(GuardRequest("client-7", x[:2], probabilities=model.predict_proba(x[:2])))
    >>> decision.probabilities.sum(axis=1), decision.action.value
    (array([1., 1.]), 'allow')
    >>> TopK(k=1).wrap(model).predict_proba(x[:2]).max(axis=1)
    array([1., 1.], dtype=float32)

Each hardening is an output-stage :class:`~modelshield.defenses.interface.InferenceGuard`: a gateway fits it once
and calls :meth:`~OutputHardening.inspect` with the model's probabilities; the decision carries the probabilities
to release (rows summing to 1, up to rounding where stated) and allows every row. :meth:`OutputHardening.wrap` puts
the same hardening in front of a classifier instead, as a black-box
:class:`~modelshield.models.interface.Classifier` (:class:`HardenedClassifier`), for audits and comparisons. What
the wrapper *consumes* is explicit, through ``source``:

- ``"logits"``: the inner model's :meth:`~modelshield.models.interface.GradientClassifier.logits` (pre-softmax
  scores; a white-box adapter such as :class:`~modelshield.models.torch_classifier.TorchClassifier`). The wrapper
  turns them into probabilities itself with a softmax, so a model whose raw output is logits is never treated as
  if it were probabilities.
- ``"probabilities"``: the inner model's ``predict_proba`` (any adapter, e.g. scikit-learn).
- ``"auto"`` (default): logits when the inner model is a ``GradientClassifier``, else probabilities.

A guard sees the probabilities the gateway passes it, so it works from those (log-probabilities are computed from
them; near 1 they are less precise than from logits, which matters only to reverse sigmoid at extreme confidence).

Query accounting: a guard spends no queries (it reads the request's probabilities). Every input the wrapper
answers is forwarded once to the inner model, so the inner model's counter (``inner.queries``) advances exactly as
the wrapper's own (``queries``) does; neither counts twice.

These defenses change what one query reveals, not what the model learned. They blunt attacks that read
confidence scores (membership inference by loss or confidence, model inversion from probabilities, extraction by
distillation on soft labels). They do not stop attacks that need only the predicted label: label-only membership
inference (Choquette-Choo et al. 2021; Li & Zhang 2021) probes how robust the label is under perturbation, and a
model that labels its training data right and its test data wrong still leaks membership through labels alone.
Argmax-preserving hardenings (all but noise without ``preserve_argmax``) cost no accuracy. Training-time defenses
(:mod:`.dp`) are what bound the leakage.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.data.interface import Dataset
from modelshield.defenses.interface import (
    Action,
    ClientStates,
    GuardDecision,
    GuardMemory,
    GuardRequest,
    GuardStage,
)
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.interface import Classifier, FloatArray, GradientClassifier

__all__ = [
    "HardenedClassifier",
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
WRAPPER_CLIENT = ""  # the client id under which a HardenedClassifier's own queries are hardened


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def _log(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.log(np.maximum(p, 1e-300))


def _normalised(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows clipped at 0 and rescaled to sum to 1 (adapters round; a gateway may pass float32 rows)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    return np.asarray(p / np.maximum(p.sum(axis=1, keepdims=True), _TINY), dtype=np.float64)


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


class OutputHardening(ABC):
    """Base of the output hardenings: an output-stage guard that maps the model's probabilities (and
    log-probabilities) of a batch to the probabilities to release. Subclasses implement :meth:`_harden`.

    ``fit(classifier, ...)`` records the model's classes and input shape and the seed; reference data are not needed
    (``reference_x`` may be omitted). Learned attributes: ``n_classes_``, ``input_shape_``, ``seed_``.
    """

    #: Whether the hardening never changes a row's argmax (so costs no accuracy).
    preserves_argmax: bool = True
    #: Whether released rows sum to 1 (all but top-k without renormalisation).
    sums_to_one: bool = True

    n_classes_: int
    input_shape_: tuple[int, ...]
    seed_: int

    @property
    def name(self) -> str:
        """A short description with the parameters, e.g. ``"top-k(k=1)"``."""
        return type(self).__name__

    @property
    def stage(self) -> GuardStage:
        return GuardStage.OUTPUT

    def fit(
        self,
        classifier: Classifier,
        reference_x: ArrayLike | None = None,
        reference_y: ArrayLike | None = None,
        *,
        seed: int = 0,
    ) -> Self:
        """Fit to ``classifier``'s classes and input shape; ``seed`` drives randomised hardenings. Returns ``self``."""
        self._check_classes(classifier.n_classes)
        self.n_classes_ = classifier.n_classes
        self.input_shape_ = classifier.input_shape
        self.seed_ = int(seed)
        self._reset()
        return self

    def _check_classes(self, n_classes: int) -> None:
        """Refuse a model whose number of classes the parameters do not fit."""
        return None

    def _reset(self) -> None:
        """Drop per-client state (on a new fit)."""
        return None

    def _fitted(self) -> None:
        if not hasattr(self, "seed_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet.", remedy="Call fit(classifier) or wrap(classifier)."
            )

    def harden(
        self,
        probabilities: ArrayLike,
        x: ArrayLike,
        *,
        client_id: str = WRAPPER_CLIENT,
        log_probabilities: ArrayLike | None = None,
    ) -> NDArray[np.float64]:
        """The probabilities to release for a batch: the model's ``probabilities`` (rows renormalised) on inputs
        ``x``, for ``client_id``; pass ``log_probabilities`` when they are known more precisely (from logits)."""
        self._fitted()
        p = _normalised(np.asarray(probabilities, dtype=np.float64))
        if p.ndim != 2 or p.shape[1] != self.n_classes_:
            raise InvalidInputError(f"Probabilities of shape {p.shape}; the model has {self.n_classes_} classes.")
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if arr.shape != (len(p), *self.input_shape_):
            raise InvalidInputError(
                f"Inputs of shape {arr.shape} for {len(p)} rows of probabilities; expected "
                f"({len(p)}, {', '.join(map(str, self.input_shape_))})."
            )
        log_p = _log(p) if log_probabilities is None else np.asarray(log_probabilities, dtype=np.float64)
        return self._harden(p, log_p, arr, client_id)

    @abstractmethod
    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
        """The released probabilities of one batch, from its probabilities and log-probabilities."""

    def inspect(self, request: GuardRequest) -> GuardDecision:
        """Release the hardened probabilities; every row is allowed, scored by how far its release moved (L1)."""
        self._fitted()
        raw = request.require_probabilities(self.name)
        out = self.harden(raw, request.x, client_id=request.client_id)
        p = _normalised(raw)
        return GuardDecision(
            guard=self.name,
            stage=GuardStage.OUTPUT,
            client_id=request.client_id,
            actions=(Action.ALLOW,) * request.n,
            scores=np.abs(out - p).sum(axis=1),
            threshold=None,
            probabilities=out,
        )

    def forget(self, client_id: str) -> None:
        """Nothing to forget: only :class:`NoisyOutput` with fresh noise keeps per-client state."""
        return None

    def memory(self) -> GuardMemory:
        return GuardMemory()

    def wrap(self, inner: Classifier, *, source: Source = "auto", seed: int = 0) -> HardenedClassifier:
        """Fit to ``inner`` (with ``seed``) and return ``inner`` behind this hardening, as a classifier."""
        return HardenedClassifier(inner, self.fit(inner, seed=seed), source=source)

    def __repr__(self) -> str:
        return self.name


class HardenedClassifier(Classifier):
    """A black-box classifier whose ``predict_proba`` releases ``hardening``'s output on ``inner``'s answers.

    ``hardening`` must be fitted to ``inner`` (:meth:`OutputHardening.wrap` does both). ``source`` says what the
    hardening reads from ``inner``: logits (softmaxed here) or probabilities; see the module docstring.
    """

    def __init__(self, inner: Classifier, hardening: OutputHardening, *, source: Source = "auto") -> None:
        if not isinstance(inner, Classifier):
            raise InvalidParameterError(f"inner must be a Classifier, not {type(inner).__name__}.")
        if source not in ("auto", "logits", "probabilities"):
            raise InvalidParameterError(f"source must be 'auto', 'logits' or 'probabilities', not {source!r}.")
        if source == "logits" and not isinstance(inner, GradientClassifier):
            raise InvalidParameterError(
                f"source='logits' needs a model that exposes logits; {type(inner).__name__} gives probabilities.",
                remedy="Use source='probabilities' (or 'auto').",
            )
        hardening._fitted()
        if hardening.n_classes_ != inner.n_classes or hardening.input_shape_ != inner.input_shape:
            raise InvalidParameterError(
                f"{hardening.name} was fitted to a model with {hardening.n_classes_} classes and inputs "
                f"{hardening.input_shape_}, not to this one ({inner.n_classes}, {inner.input_shape}).",
                remedy="Fit it to this model: hardening.wrap(inner).",
            )
        super().__init__(
            n_classes=inner.n_classes,
            input_shape=inner.input_shape,
            clip_values=inner.clip_values,
            batch_size=inner.batch_size,
        )
        self.inner = inner
        self.hardening = hardening
        # source "logits" or "auto" over a white-box model: read logits (checked above that the model has them)
        self.logits_source = inner if source != "probabilities" and isinstance(inner, GradientClassifier) else None

    @property
    def source(self) -> Literal["logits", "probabilities"]:
        """What the hardening reads from the inner model."""
        return "logits" if self.logits_source is not None else "probabilities"

    @property
    def name(self) -> str:
        """The hardening's name, e.g. ``"top-k(k=1)"``."""
        return self.hardening.name

    @property
    def preserves_argmax(self) -> bool:
        return self.hardening.preserves_argmax

    def _inner_outputs(self, x: FloatArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(probabilities, log-probabilities)`` of one batch, from logits or probabilities as configured."""
        if self.logits_source is not None:
            z = np.asarray(self.logits_source.logits(x), dtype=np.float64)
            z = z - z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return np.exp(log_p), log_p
        p = _normalised(np.asarray(self.inner.predict_proba(x), dtype=np.float64))
        return p, _log(p)

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        p, log_p = self._inner_outputs(x)
        return self.hardening._harden(p, log_p, x, WRAPPER_CLIENT)

    def __repr__(self) -> str:
        return f"{self.name} over {self.inner!r}"


class TopK(OutputHardening):
    """Releases only the ``k`` largest probabilities of each row. ``renormalize=True`` (default) rescales them to
    sum to 1 (the others are 0); ``False`` leaves them as they were and sets the others to 0, so the row sums to the
    top-k mass. Ties at the k-th place are broken by class index. Argmax-preserving."""

    def __init__(self, *, k: int = 1, renormalize: bool = True) -> None:
        if k < 1:
            raise InvalidParameterError(f"k must be at least 1, not {k}.", remedy="Keep k >= 1 (k=1 is label-only).")
        self.k = k
        self.renormalize = renormalize
        self.sums_to_one = renormalize

    @property
    def name(self) -> str:
        return f"top-k(k={self.k}{'' if self.renormalize else ', raw'})"

    def _check_classes(self, n_classes: int) -> None:
        if self.k > n_classes:
            raise InvalidParameterError(f"k={self.k} exceeds the model's {n_classes} classes.")

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
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

    def __init__(self, *, decimals: int = 2) -> None:
        if not 0 <= decimals <= 6:
            raise InvalidParameterError(f"decimals must lie in 0..6, not {decimals}.")
        self.decimals = decimals

    @property
    def name(self) -> str:
        return f"rounding(decimals={self.decimals})"

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
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

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
        out = np.zeros_like(p)
        out[np.arange(len(p)), np.argmax(p, axis=1)] = 1.0
        return out


@dataclass
class _Requests:
    count: int = 0  # requests answered for the client so far


class NoisyOutput(OutputHardening):
    """Independent Laplace (scale ``b = scale``) or Gaussian (standard deviation ``scale``) noise added to every
    class score, in ``space="probabilities"`` (then clipped at 0 and renormalised) or ``space="logits"`` (added to
    the log-probabilities, then softmax). With ``preserve_argmax`` (default) the true top class's score is swapped
    with the noisy winner's where the noise made another class win, so accuracy is unchanged.

    The noise is a function of the ``seed`` given to :meth:`fit`, never of a shared generator. With
    ``repeatable=True`` (default) it is a function of ``(seed, the row's bytes)``: asking the same question twice
    gets the same answer, so averaging repeated queries gains nothing, and the answer does not depend on who asks
    or when. With ``False`` each query gets fresh noise, a function of ``(seed, client, the client's request count,
    the row's place in the batch)``, which ``n`` repeats average down by ``sqrt(n)``; the request counts are kept for
    at most ``max_clients`` clients (least recently seen forgotten first, and its count restarts). ``scale`` is the
    stated noise scale, per class score; it is not a differential-privacy guarantee for the training data.
    """

    def __init__(
        self,
        *,
        scale: float,
        distribution: Literal["laplace", "gaussian"] = "laplace",
        space: Literal["probabilities", "logits"] = "probabilities",
        preserve_argmax: bool = True,
        repeatable: bool = True,
        max_clients: int = 10_000,
    ) -> None:
        if not (scale > 0 and math.isfinite(scale)):
            raise InvalidParameterError(f"scale must be a positive finite number, not {scale}.")
        if distribution not in ("laplace", "gaussian"):
            raise InvalidParameterError(f"distribution must be 'laplace' or 'gaussian', not {distribution!r}.")
        if space not in ("probabilities", "logits"):
            raise InvalidParameterError(f"space must be 'probabilities' or 'logits', not {space!r}.")
        self.scale = float(scale)
        self.distribution = distribution
        self.space = space
        self.preserves_argmax = preserve_argmax
        self.repeatable = repeatable
        self.max_clients = max_clients
        self._requests: ClientStates[_Requests] = ClientStates(_Requests, max_clients=max_clients)

    @property
    def name(self) -> str:
        keep = ", argmax kept" if self.preserves_argmax else ""
        fresh = "" if self.repeatable else ", fresh"
        return f"noise({self.distribution}, scale={self.scale:g}, {self.space}{keep}{fresh})"

    def _reset(self) -> None:
        self._requests.clear()

    def _draw(self, digest: bytes, k: int) -> NDArray[np.float64]:
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        if self.distribution == "laplace":
            return rng.laplace(0.0, self.scale, size=k)
        return rng.normal(0.0, self.scale, size=k)

    def _noise(self, x: FloatArray, k: int, client_id: str) -> NDArray[np.float64]:
        if len(x) == 0:
            return np.empty((0, k))
        key = str(self.seed_).encode()
        if self.repeatable:
            rows = np.ascontiguousarray(x)
            digests = [hashlib.blake2b(row.tobytes(), digest_size=16, key=key).digest() for row in rows]
        else:
            with self._requests.hold(client_id) as requests:
                request = requests.count
                requests.count += 1
            client = client_id.encode()
            prefix = len(client).to_bytes(8, "little") + client + request.to_bytes(8, "little")
            digests = [
                hashlib.blake2b(prefix + i.to_bytes(8, "little"), digest_size=16, key=key, person=b"fresh").digest()
                for i in range(len(x))
            ]
        return np.stack([self._draw(d, k) for d in digests])

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
        noise = self._noise(x, p.shape[1], client_id)
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

    def forget(self, client_id: str) -> None:
        """Drop the client's request count (fresh noise only)."""
        self._requests.forget(client_id)

    def memory(self) -> GuardMemory:
        """Clients whose request count is kept (fresh noise only); a count is no history, so no entries."""
        return GuardMemory(clients=len(self._requests), max_clients=0 if self.repeatable else self.max_clients)


class ReverseSigmoid(OutputHardening):
    """The reverse-sigmoid deceptive perturbation (Lee et al. 2019, "Defending against NN model stealing attacks
    using deceptive perturbations").

    Each probability ``y`` becomes ``y - beta * (sigmoid(gamma * logit(y)) - 1/2)``, clipped at 0, and the row is
    renormalised. The perturbation is largest for confident scores and pushes them towards 1/2 in a way whose
    gradient misleads a model trained to imitate them; ``beta`` scales it, ``gamma`` sets how fast it saturates.
    The map is increasing (so keeps the ranking of classes) when ``beta * gamma < 1``; otherwise, and after
    clipping, the argmax is restored by a swap as in :class:`NoisyOutput`, so accuracy is unchanged.
    """

    def __init__(self, *, beta: float = 1.0, gamma: float = 0.1) -> None:
        if not (beta >= 0 and math.isfinite(beta)):
            raise InvalidParameterError(f"beta must be a non-negative number, not {beta}.")
        if not (gamma > 0 and math.isfinite(gamma)):
            raise InvalidParameterError(f"gamma must be a positive number, not {gamma}.")
        self.beta = float(beta)
        self.gamma = float(gamma)

    @property
    def name(self) -> str:
        return f"reverse-sigmoid(beta={self.beta:g}, gamma={self.gamma:g})"

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
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
    """One hardening's effect on a loss-threshold and a confidence-threshold membership attack, and its cost."""

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
    """The membership-attack effect and accuracy cost of each output hardening, the undefended model first."""

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


def default_output_defenses() -> dict[str, OutputHardening]:
    """The hardenings :func:`compare_output_defenses` measures by default, by name (unfitted)."""
    hardenings: tuple[OutputHardening, ...] = (
        TopK(k=2),
        Rounding(decimals=1),
        LabelOnly(),
        NoisyOutput(scale=0.1),
        NoisyOutput(scale=1.0, space="logits"),
        ReverseSigmoid(beta=1.0, gamma=0.1),
    )
    return {h.name: h for h in hardenings}


def _attack_scores(proba: NDArray[np.float64], y: NDArray[np.int64]) -> tuple[NDArray[np.float64], ...]:
    p = np.asarray(proba, dtype=np.float64)
    loss_score = np.log(np.maximum(p[np.arange(len(p)), y], _TINY))
    return loss_score, p.max(axis=1)


def compare_output_defenses(
    classifier: Classifier,
    members: Dataset,
    non_members: Dataset,
    defenses: Mapping[str, OutputHardening] | None = None,
    *,
    seed: int = 0,
) -> OutputComparison:
    """Measure each output hardening against simple membership attacks on ``classifier``.

    ``members`` are records it was trained on (``target.train``), ``non_members`` held-out ones (``target.test``).
    Each attack thresholds one score read from the wrapper's released probabilities: the loss attack
    ``log p_y`` (Yeom et al. 2018) and the confidence attack ``max_j p_j``; reported as AUC and TPR at 1% FPR
    (:func:`~modelshield.attacks.metrics.roc_summary`). The accuracy cost is measured on ``non_members``.
    ``defenses`` maps a name to a hardening (default :func:`default_output_defenses`); each is fitted to
    ``classifier`` with ``seed`` and put in front of it (:meth:`OutputHardening.wrap`).
    """
    from modelshield.attacks.metrics import roc_summary

    x = np.concatenate([members.x, non_members.x])
    y = np.concatenate([members.y, non_members.y])
    labels = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
    models: dict[str, Classifier] = {"none": classifier}
    for name, hardening in (defenses if defenses is not None else default_output_defenses()).items():
        models[name] = hardening.wrap(classifier, seed=seed)
    rows: list[OutputDefenseRow] = []
    base_accuracy = float("nan")
    for name, model in models.items():
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
                preserves_argmax=model.preserves_argmax if isinstance(model, HardenedClassifier) else True,
            )
        )
    return OutputComparison(rows=tuple(rows), n_members=len(members), n_non_members=len(non_members))
