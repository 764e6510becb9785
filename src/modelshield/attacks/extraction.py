"""Model extraction: train a copy of a black-box model from its answers, or solve for a linear model's parameters.

    >>> from modelshield.attacks.extraction import extract_model
    >>> result = extract_model(victim, x_test, y_test, strategy="natural", natural_x=pool,
    ...                        budgets=(250, 500, 1000))  # doctest: +SKIP
    >>> [round(p.fidelity, 2) for p in result.points]  # doctest: +SKIP

:func:`extract_model` queries any :class:`~modelshield.models.interface.Classifier` (a remote one included) and
trains a PyTorch *surrogate* on its answers: the returned probabilities (``labels="soft"``) or only the predicted
class (``labels="hard"``). Three query strategies:

- ``random``: inputs drawn uniformly inside the valid range (``clip_values``, else the per-feature range of the
  attacker's data ``natural_x``).
- ``natural``: inputs the attacker holds (``natural_x``: another data set of the same kind, or held-out data),
  KnockoffNets-style (Orekondy et al. 2019). ``selection="balanced"`` picks each new batch so that the victim's
  answers cover the classes evenly, guided by the surrogate trained so far (a simple adaptive policy).
- ``jacobian``: Papernot et al. (2017) Jacobian-based dataset augmentation. From a small seed set (taken from
  ``natural_x``, else random), each round adds ``x + λ·sign(∇ₓ s_c(x))`` where ``s`` is the *surrogate*'s logit
  of the victim's answer ``c``; the victim stays black-box. λ flips sign every ``tau`` rounds.

The surrogate is a small CNN for square images (side divisible by 4) and a standardising MLP otherwise
(:func:`modelshield.models.nets.build_network`). At each query budget a fresh surrogate is trained on the first
``budget`` answers and measured on held-out data: *fidelity* (agreement with the victim's predictions), its
accuracy, and the victim's. Fidelity must be read against the baseline in the result: the agreement a constant
guess of the victim's most frequent answer would reach. Queries come from the victim's own query counter.

:func:`fit_surrogate` trains one surrogate on a model's answers about given inputs and noisy copies of them: the
evasion evaluation's transfer attack against black-box models.

:func:`transferability` measures whether PGD examples crafted on the surrogate fool the victim, next to the
victim's error rate on random sign noise of the same L∞ size (the baseline such transfer must beat).

:func:`solve_linear_model` is the equation-solving attack of Tramèr et al. (2016) on logistic and multinomial
(softmax) models that return confidence scores: ``log(p_j / p_0) = (w_j - w_0)·x + (b_j - b_0)`` is linear in
the unknowns, so ``d + 1`` queries (each answers all ``k`` classes) determine every identifiable parameter.
A few extra queries check that the model really is log-linear.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue
from modelshield.models.interface import Bounds, Classifier, FloatArray, IntArray

if TYPE_CHECKING:
    import torch

    from modelshield.models.torch_classifier import TorchClassifier

__all__ = [
    "DEFAULT_BUDGETS",
    "MAX_QUERIES",
    "EquationSolvingResult",
    "ExtractionPoint",
    "ExtractionResult",
    "TransferResult",
    "extract_model",
    "fit_surrogate",
    "majority_agreement",
    "resample_images",
    "solve_linear_model",
    "transferability",
]

log = logging.getLogger(__name__)

Strategy = Literal["random", "natural", "jacobian"]
Labels = Literal["soft", "hard"]
Selection = Literal["random", "balanced"]

#: Query budgets used when none are given.
DEFAULT_BUDGETS: tuple[int, ...] = (100, 250, 500, 1000, 2000)
#: The most queries one extraction may spend (a guard against runaway memory, not a limit of the method).
MAX_QUERIES = 1_000_000
_STRATEGIES = ("random", "natural", "jacobian")


# -- results -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractionPoint:
    """The surrogate trained on the first ``queries`` answers, measured on held-out data."""

    queries: int  # victim queries spent by the attack so far (the victim's counter)
    fidelity: float  # share of held-out inputs on which surrogate and victim predict the same class
    surrogate_accuracy: float
    seconds: float  # wall time since the attack started

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "queries": self.queries,
            "fidelity": self.fidelity,
            "surrogate_accuracy": self.surrogate_accuracy,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class TransferResult:
    """How often adversarial examples crafted on the surrogate fool the victim, against random noise as baseline."""

    eps: float  # L∞ budget, in input units (images) or in units of ``scale`` (tabular)
    n: int  # inputs the victim classified correctly, on which transfer is measured
    surrogate_success_rate: float  # PGD fooled the surrogate
    transfer_rate: float  # the same examples fooled the victim
    noise_rate: float  # random ±eps sign noise fooled the victim (baseline)
    queries: int  # victim queries spent measuring this (not part of the attack's budget)

    @property
    def lift(self) -> float:
        """``transfer_rate - noise_rate``: what the stolen model adds to a blind attacker."""
        return self.transfer_rate - self.noise_rate

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "eps": self.eps,
            "n": self.n,
            "surrogate_success_rate": self.surrogate_success_rate,
            "transfer_rate": self.transfer_rate,
            "noise_rate": self.noise_rate,
            "lift": self.lift,
            "queries": self.queries,
        }


@dataclass(frozen=True)
class ExtractionResult:
    """A fidelity-against-queries curve of one extraction, with its baseline and the final surrogate."""

    strategy: str  # e.g. "natural(selection=balanced)"
    labels: str  # "soft" (probabilities) or "hard" (labels only)
    points: tuple[ExtractionPoint, ...]
    victim_accuracy: float  # on the held-out data
    baseline_fidelity: float  # agreement of a constant "most frequent victim answer" with the victim
    n_test: int
    queries: int  # every victim query of the run: the attack's (the last point's) and the n_test held-out ones
    seconds: float
    transfer: TransferResult | None = None
    surrogate: TorchClassifier | None = field(default=None, compare=False, repr=False)
    query_x: FloatArray | None = field(default=None, compare=False, repr=False)  # the attack's queries, in order

    @property
    def attack(self) -> str:
        """The strategy with its parameters and the labels the victim returned, e.g. ``"natural(...), soft"``."""
        return f"{self.strategy}, {self.labels} labels"

    @property
    def fidelity(self) -> float:
        """Fidelity at the largest budget."""
        return self.points[-1].fidelity if self.points else float("nan")

    @property
    def attack_queries(self) -> int:
        """The queries the attack itself spent (the last point's): those that built the copy."""
        return self.points[-1].queries if self.points else 0

    def metrics(self) -> dict[str, float]:
        """The field's figures at the largest budget: fidelity (agreement with the victim on held-out inputs),
        the copy's accuracy, the victim's, the constant-guess baseline, and the attack's queries."""
        last = self.points[-1] if self.points else None
        return {
            "fidelity": self.fidelity,
            "surrogate_accuracy": last.surrogate_accuracy if last is not None else float("nan"),
            "victim_accuracy": self.victim_accuracy,
            "baseline_fidelity": self.baseline_fidelity,
            "attack_queries": float(self.attack_queries),
        }

    def with_transfer(self, transfer: TransferResult) -> ExtractionResult:
        """A copy with ``transfer`` filled in."""
        from dataclasses import replace

        return replace(self, transfer=transfer)

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "strategy": self.strategy,
            "labels": self.labels,
            "points": [p.to_dict() for p in self.points],
            "victim_accuracy": self.victim_accuracy,
            "baseline_fidelity": self.baseline_fidelity,
            "fidelity": self.fidelity,
            "n_test": self.n_test,
            "queries": self.queries,
            "seconds": self.seconds,
            "transfer": self.transfer.to_dict() if self.transfer else None,
        }


@dataclass(frozen=True)
class EquationSolvingResult:
    """Parameters of a log-linear model recovered from its confidence scores (Tramèr et al. 2016).

    ``coef`` is ``(1, d)`` and ``intercept`` ``(1,)`` for two classes (the log-odds of class 1, as scikit-learn
    stores them); ``(k, d)`` and ``(k,)`` for ``k > 2``, centred so that each column sums to zero over the classes
    (softmax parameters are identifiable only up to a shift shared by all classes).
    """

    coef: NDArray[np.float64]
    intercept: NDArray[np.float64]
    queries: int  # all victim queries: choosing the centre, the system, the checks and the held-out predictions
    system_queries: int  # the queries of the linear system itself (d + 1)
    check_residual: float  # max |predicted - observed| log-ratio on extra check queries
    consistent: bool  # the check queries agree: the victim behaves as a log-linear model
    fidelity: float | None  # agreement of the recovered model with the victim on held-out data
    seconds: float
    evaluation_queries: int = 0  # of ``queries``: the victim's predictions on the held-out data (fidelity)

    @property
    def attack(self) -> str:
        """The attack's name."""
        return "equation-solving"

    @property
    def attack_queries(self) -> int:
        """The queries that recovered the parameters: the centre, the system and the checks."""
        return self.queries - self.evaluation_queries

    def metrics(self) -> dict[str, float]:
        """Whether the victim proved log-linear (1 or 0), the check queries' largest residual (NaN when none was
        usable), the recovered model's fidelity (NaN without held-out data) and the system's queries."""
        return {
            "consistent": 1.0 if self.consistent else 0.0,
            "check_residual": self.check_residual if math.isfinite(self.check_residual) else float("nan"),
            "fidelity": self.fidelity if self.fidelity is not None else float("nan"),
            "system_queries": float(self.system_queries),
        }

    def decision_function(self, x: ArrayLike) -> NDArray[np.float64]:
        """Log-odds ``(n,)`` for two classes, centred logits ``(n, k)`` otherwise."""
        flat = np.asarray(x, np.float64).reshape(len(np.asarray(x)), -1)
        z = flat @ self.coef.T + self.intercept
        return np.asarray(z[:, 0] if len(self.coef) == 1 else z, np.float64)

    def predict(self, x: ArrayLike) -> IntArray:
        z = self.decision_function(x)
        return np.asarray((z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(axis=1), np.int64)

    def parameter_error(self, coef: ArrayLike, intercept: ArrayLike) -> float:
        """Max absolute error against true parameters (given as scikit-learn's ``coef_`` and ``intercept_``)."""
        true_w = np.atleast_2d(np.asarray(coef, np.float64))
        true_b = np.atleast_1d(np.asarray(intercept, np.float64))
        if true_w.shape != self.coef.shape or true_b.shape != self.intercept.shape:
            raise InvalidInputError(
                f"True parameters of shape {true_w.shape} and {true_b.shape} do not match the recovered "
                f"{self.coef.shape} and {self.intercept.shape}."
            )
        if len(true_w) > 1:  # only differences between classes are identifiable
            true_w = true_w - true_w.mean(axis=0)
            true_b = true_b - true_b.mean()
        return float(max(np.abs(true_w - self.coef).max(), np.abs(true_b - self.intercept).max()))

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "queries": self.queries,
            "system_queries": self.system_queries,
            "check_residual": self.check_residual,
            "consistent": self.consistent,
            "fidelity": self.fidelity,
            "evaluation_queries": self.evaluation_queries,
            "seconds": self.seconds,
        }


# -- helpers -------------------------------------------------------------------------------------------------------


def majority_agreement(predicted: ArrayLike) -> float:
    """The share of the most frequent class among ``predicted``: the fidelity of a constant guess."""
    labels = np.asarray(predicted).reshape(-1)
    if labels.size == 0:
        return float("nan")
    return float(np.bincount(labels.astype(np.int64)).max() / labels.size)


def resample_images(x: ArrayLike, side: int) -> FloatArray:
    """Images ``(n, c, h, w)`` resized to ``side x side`` by area averaging (each output pixel is the mean of the
    input area it covers), e.g. 28x28 MNIST as natural attacker data for an 8x8 digits model."""
    arr = np.asarray(x, np.float64)
    if arr.ndim != 4:
        raise InvalidInputError(f"resample_images takes (n, channels, height, width) images, got shape {arr.shape}.")
    if side < 1:
        raise InvalidParameterError(f"side must be positive, not {side}.")

    def weights(size: int) -> NDArray[np.float64]:
        # w[i, j]: share of input row j inside output row i, rows normalised to sum to one
        edges = np.linspace(0.0, size, side + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        cells = np.arange(size)[None, :]
        overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
        return np.asarray(overlap / overlap.sum(axis=1, keepdims=True), np.float64)

    rows, cols = weights(arr.shape[2]), weights(arr.shape[3])
    out = np.einsum("ih,nchw,jw->ncij", rows, arr, cols, optimize=True)
    return np.asarray(out, np.float32)


def _check_xy(victim: Classifier, x: ArrayLike, y: ArrayLike, what: str) -> tuple[FloatArray, IntArray]:
    arr = victim.validate_input(x)
    labels = np.asarray(y)
    if labels.shape != (len(arr),) or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{what}: expected {len(arr)} integer labels, got an array of shape {labels.shape}.")
    if len(arr) == 0:
        raise InvalidInputError(f"{what} is empty.", remedy="Pass held-out inputs to measure the surrogate on.")
    if labels.min() < 0 or labels.max() >= victim.n_classes:
        raise InvalidInputError(f"{what}: labels must lie in 0..{victim.n_classes - 1}.")
    return arr, labels.astype(np.int64)


def _check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(b) for b in budgets)
    if not values or any(b < 1 for b in values) or any(b2 <= b1 for b1, b2 in itertools.pairwise(values)):
        raise InvalidParameterError(
            f"budgets must be positive and strictly increasing, got {tuple(budgets)}.",
            remedy="Pass query budgets such as (100, 250, 500, 1000).",
        )
    if values[-1] > MAX_QUERIES:
        raise InvalidParameterError(
            f"The largest budget {values[-1]} exceeds the limit of {MAX_QUERIES} queries.",
            remedy="Use smaller budgets.",
        )
    return values


def _range(victim: Classifier, natural_x: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """Per-feature (low, high) shaped like one input: the valid range, else the attacker data's range."""
    shape = victim.input_shape
    if victim.clip_values is not None:
        low = np.broadcast_to(np.asarray(victim.clip_values.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(victim.clip_values.high, np.float32), shape)
        return low.astype(np.float32), high.astype(np.float32)
    if natural_x is not None and len(natural_x):
        return natural_x.min(axis=0), natural_x.max(axis=0)
    raise InvalidParameterError(
        "Random queries need a value range, and the victim has no clip_values and no natural_x was given.",
        remedy="Give the victim clip_values, or pass natural_x (the attacker's data) to take ranges from.",
    )


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0


def _build_surrogate(input_shape: tuple[int, ...], n_classes: int, x_fit: FloatArray, seed: int) -> torch.nn.Module:
    """A fresh surrogate whose weights come from a generator seeded with ``seed`` alone.

    The network is built on the ``meta`` device (no storage, no draw from torch's global generator), then given
    storage and initialised as PyTorch would, from a local generator: the same seed gives the same weights whatever
    else the process (another thread, say) does with torch's global random state, which stays untouched.
    """
    import torch

    from modelshield.models.nets import build_network

    params: dict[str, Any]
    if _is_image(input_shape):
        arch = "cnn"
        params = {"in_channels": input_shape[0], "image_size": input_shape[1], "n_classes": n_classes,
                  "channels": [16, 32], "hidden": 64}  # fmt: skip
    else:
        arch = "mlp"
        params = {"n_features": int(np.prod(input_shape)), "n_classes": n_classes, "hidden": [64, 64],
                  "standardize": True}  # fmt: skip
    with torch.device("meta"):  # thread-local: other threads keep allocating on their own devices
        net = build_network(arch, params)
    net = net.to_empty(device="cpu")
    _initialise(net, torch.Generator().manual_seed(seed), x_fit)
    return net


def _initialise(net: torch.nn.Module, generator: torch.Generator, x_fit: FloatArray) -> None:
    """PyTorch's default initialisation of linear and convolutional layers, drawn from ``generator``; standardising
    layers fitted to ``x_fit``."""
    import torch

    from modelshield.models.nets import Standardize

    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                torch.nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    torch.nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, Standardize):
                module.fit(torch.from_numpy(np.array(x_fit.reshape(len(x_fit), -1), np.float32)))
            elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(False)):
                raise InvalidParameterError(f"The surrogate has a {type(module).__name__} layer, which it cannot "
                                            "initialise from a seeded generator.")  # fmt: skip


def _train(
    net: torch.nn.Module, x: FloatArray, targets: FloatArray, *, epochs: int, batch: int, lr: float, seed: int,
    min_steps: int, max_steps: int,
) -> None:  # fmt: skip
    """Soft-label cross-entropy training (hard labels are one-hot targets): ``epochs`` epochs, counted in
    optimiser steps and kept within ``[min_steps, max_steps]`` (few queries still get enough steps to fit)."""
    import torch

    xt = torch.from_numpy(np.array(x, np.float32))
    tt = torch.from_numpy(np.array(targets, np.float32))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, math.ceil(len(x) / batch))
    total = min(max(epochs * steps_per_epoch, min_steps), max_steps)
    net.train()
    done = 0
    while done < total:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            if done >= total:
                break
            idx = order[start : start + batch]
            optimiser.zero_grad(set_to_none=True)
            logp = torch.log_softmax(net(xt[idx]), dim=1)
            loss = -(tt[idx] * logp).sum(dim=1).mean()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            done += 1
    net.eval()


def _predict(net: torch.nn.Module, x: FloatArray, batch: int = 1024) -> NDArray[np.float32]:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(net(torch.from_numpy(np.array(x[i : i + batch], np.float32))), dim=1).numpy())
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def _jacobian_step(
    net: torch.nn.Module, x: FloatArray, labels: IntArray, step: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``x + step * sign(d logit_label / dx)`` of the surrogate, batched."""
    import torch

    out = np.empty_like(x)
    for i in range(0, len(x), 1024):
        xt = torch.from_numpy(np.array(x[i : i + 1024], np.float32)).requires_grad_(True)
        yt = torch.from_numpy(labels[i : i + 1024])
        with torch.enable_grad():
            score = net(xt).gather(1, yt[:, None]).sum()
            (grad,) = torch.autograd.grad(score, xt)
        out[i : i + 1024] = x[i : i + 1024] + step * np.sign(grad.numpy())
    return out


# -- the attack ----------------------------------------------------------------------------------------------------


class _Run:
    """State of one extraction: the queries so far, the victim's answers, the surrogate."""

    def __init__(self, victim: Classifier, labels: Labels, seed: int) -> None:
        self.victim = victim
        self.labels = labels
        self.seed = seed
        self.x = np.empty((0, *victim.input_shape), np.float32)
        self.answers = np.empty((0, victim.n_classes), np.float32)
        self.start_queries = victim.queries
        self.net: torch.nn.Module | None = None

    def ask(self, x: FloatArray) -> None:
        proba = self.victim.predict_proba(x)
        if self.labels == "hard":
            proba = np.eye(self.victim.n_classes, dtype=np.float32)[proba.argmax(axis=1)]
        self.x = np.concatenate([self.x, x.astype(np.float32)])
        self.answers = np.concatenate([self.answers, proba])

    @property
    def spent(self) -> int:
        return self.victim.queries - self.start_queries

    def fit(self, *, epochs: int, batch: int, lr: float, min_steps: int, max_steps: int) -> torch.nn.Module:
        net = _build_surrogate(self.victim.input_shape, self.victim.n_classes, self.x, self.seed)
        _train(net, self.x, self.answers, epochs=epochs, batch=batch, lr=lr, seed=self.seed + len(self.x),
               min_steps=min_steps, max_steps=max_steps)  # fmt: skip
        self.net = net
        return net


def extract_model(
    victim: Classifier,
    x_test: ArrayLike,
    y_test: ArrayLike,
    *,
    strategy: Strategy = "natural",
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    natural_x: ArrayLike | None = None,
    labels: Labels = "soft",
    selection: Selection = "random",
    jacobian_seed: int | None = None,
    jacobian_lambda: float = 0.1,
    tau: int = 3,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    min_steps: int = 300,
    max_steps: int = 1500,
    seed: int = 0,
    keep_queries: bool = True,
) -> ExtractionResult:
    """Steal ``victim`` by querying it; measure a fresh surrogate at each budget on ``x_test, y_test``.

    ``natural_x`` is the attacker's own data: the query pool of ``natural``, the seed set of ``jacobian`` (its
    first ``jacobian_seed`` inputs, default ``min(budgets[0], 10 * n_classes)``) and the value range of ``random``
    when the victim has no ``clip_values``. Each surrogate trains for ``epochs`` epochs, counted in optimiser
    steps and kept within ``[min_steps, max_steps]``. The victim's predictions on ``x_test`` are taken before the
    attack: the points count the attack's queries alone, the result's ``queries`` both. ``keep_queries`` keeps the
    queries in order in ``query_x`` (to replay them to a monitor).

    Everything random comes from generators seeded with ``seed``; torch's global state (its random generator, its
    thread count) is neither read nor changed. The surrogates are tiny and train fastest on one CPU thread: a
    program that runs many extractions may call ``torch.set_num_threads(1)`` once, at its start.
    """
    return _extract(victim, x_test, y_test, strategy=strategy, budgets=budgets, natural_x=natural_x, labels=labels,
                    selection=selection, jacobian_seed=jacobian_seed, jacobian_lambda=jacobian_lambda, tau=tau,
                    epochs=epochs, batch_size=batch_size, lr=lr, min_steps=min_steps, max_steps=max_steps, seed=seed,
                    keep_queries=keep_queries)  # fmt: skip


def _extract(
    victim: Classifier,
    x_test: ArrayLike,
    y_test: ArrayLike,
    *,
    strategy: Strategy,
    budgets: Sequence[int],
    natural_x: ArrayLike | None,
    labels: Labels,
    selection: Selection,
    jacobian_seed: int | None,
    jacobian_lambda: float,
    tau: int,
    epochs: int,
    batch_size: int,
    lr: float,
    min_steps: int,
    max_steps: int,
    seed: int,
    keep_queries: bool,
) -> ExtractionResult:
    if strategy not in _STRATEGIES:
        raise InvalidParameterError(f"Unknown strategy {strategy!r}.", remedy="Use random, natural or jacobian.")
    if labels not in ("soft", "hard"):
        raise InvalidParameterError(f"labels must be 'soft' or 'hard', not {labels!r}.")
    if selection not in ("random", "balanced"):
        raise InvalidParameterError(f"selection must be 'random' or 'balanced', not {selection!r}.")
    for name, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("max_steps", max_steps),
        ("tau", tau),
        ("min_steps", min_steps),
    ):
        if value < 1:
            raise InvalidParameterError(f"{name} must be at least 1, not {value}.")
    if not (lr > 0 and math.isfinite(lr)) or not (jacobian_lambda > 0 and math.isfinite(jacobian_lambda)):
        raise InvalidParameterError(f"lr and jacobian_lambda must be positive numbers, got {lr} and {jacobian_lambda}.")
    plan = _check_budgets(budgets)
    x_eval, y_eval = _check_xy(victim, x_test, y_test, "x_test")
    pool = victim.validate_input(natural_x) if natural_x is not None else None
    if strategy == "natural" and (pool is None or len(pool) < plan[-1]):
        raise InvalidParameterError(
            f"The natural strategy needs at least {plan[-1]} inputs in natural_x, got "
            f"{0 if pool is None else len(pool)}.",
            remedy="Pass more attacker data, or smaller budgets.",
        )
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    q0 = victim.queries
    victim_pred = victim.predict(x_eval)  # measured before the attack: not attack queries
    run = _Run(victim, labels, seed)
    fit: dict[str, Any] = {
        "epochs": epochs,
        "batch": batch_size,
        "lr": lr,
        "min_steps": min_steps,
        "max_steps": max(max_steps, min_steps),
    }
    points: list[ExtractionPoint] = []

    def measure(net: torch.nn.Module) -> None:
        pred = _predict(net, x_eval).argmax(axis=1)
        points.append(
            ExtractionPoint(
                queries=run.spent,
                fidelity=float(np.mean(pred == victim_pred)),
                surrogate_accuracy=float(np.mean(pred == y_eval)),
                seconds=time.perf_counter() - t0,
            )
        )

    if strategy == "random":
        low, high = _range(victim, pool)
        for budget in plan:
            n = budget - len(run.x)
            run.ask((low + (high - low) * rng.random((n, *victim.input_shape))).astype(np.float32))
            measure(run.fit(**fit))
        name = "random"
    elif strategy == "natural" and pool is not None:  # natural without a pool was refused above
        _natural(run, pool, plan, selection, rng, fit, measure)
        name = f"natural(selection={selection})"
    else:
        _jacobian(run, pool, plan, jacobian_seed, jacobian_lambda, tau, rng, fit, measure)
        name = f"jacobian(lambda={jacobian_lambda:g}, tau={tau})"
    surrogate = _wrap(run.net, victim) if run.net is not None else None
    return ExtractionResult(
        strategy=name,
        labels=labels,
        points=tuple(points),
        victim_accuracy=float(np.mean(victim_pred == y_eval)),
        baseline_fidelity=majority_agreement(victim_pred),
        n_test=len(x_eval),
        queries=victim.queries - q0,
        seconds=time.perf_counter() - t0,
        surrogate=surrogate,
        query_x=run.x if keep_queries else None,
    )


def _wrap(net: torch.nn.Module, victim: Classifier) -> TorchClassifier:
    from modelshield.models.torch_classifier import TorchClassifier

    return TorchClassifier(net, n_classes=victim.n_classes, input_shape=victim.input_shape,
                           clip_values=victim.clip_values, device="cpu")  # fmt: skip


def fit_surrogate(
    victim: Classifier,
    x: ArrayLike,
    *,
    spread: float = 0.0,
    copies: int = 1,
    seed: int = 0,
    epochs: int = 30,
    min_steps: int = 300,
    max_steps: int = 1500,
) -> TorchClassifier:
    """A surrogate of ``victim`` trained on its answers about ``x`` and ``copies`` noisy copies of it (uniform noise of
    L∞ size ``spread``, kept in the valid range), for transfer attacks: ``len(x) * (1 + copies)`` queries when
    ``spread > 0``, else ``len(x)``. Soft labels when the victim returns scores, its labels otherwise."""
    if copies < 0 or not (spread >= 0 and math.isfinite(spread)):
        raise InvalidParameterError("copies must be >= 0 and spread a non-negative number.")
    arr = victim.validate_input(x)
    rng = np.random.default_rng(seed)
    parts = [arr]
    if spread > 0:
        low, high = (None, None) if victim.clip_values is None else _range(victim, None)
        for _ in range(copies):
            noisy = arr + rng.uniform(-spread, spread, size=arr.shape).astype(np.float32)
            parts.append(noisy if low is None else np.clip(noisy, low, high).astype(np.float32))
    fit_x = np.concatenate(parts).astype(np.float32)
    if victim.label_only:
        targets = np.eye(victim.n_classes, dtype=np.float32)[victim.predict(fit_x)]
    else:
        targets = np.asarray(victim.predict_proba(fit_x), np.float32)
    net = _build_surrogate(victim.input_shape, victim.n_classes, fit_x, seed)
    _train(net, fit_x, targets, epochs=epochs, batch=64, lr=2e-3, seed=seed, min_steps=min_steps,
           max_steps=max_steps)  # fmt: skip
    return _wrap(net, victim)


def _natural(run: _Run, pool: FloatArray, plan: tuple[int, ...], selection: Selection, rng: np.random.Generator,
             fit: dict[str, Any], measure: Any) -> None:  # fmt: skip
    k = run.victim.n_classes
    remaining = rng.permutation(len(pool))
    for budget in plan:
        n = budget - len(run.x)
        if selection == "balanced" and run.net is not None:
            # Give each class the share of the new batch that would even out the victim's answers so far,
            # taking candidates by the surrogate's predicted class; fill what is left at random.
            guessed = _predict(run.net, pool[remaining]).argmax(axis=1)
            counts = np.bincount(run.answers.argmax(axis=1), minlength=k).astype(np.float64)
            want = np.clip((counts.sum() + n) / k - counts, 0, None)
            quota = np.floor(want / max(want.sum(), 1e-12) * n).astype(np.int64)
            chosen_pos: list[int] = []
            for c in range(k):
                chosen_pos.extend(np.flatnonzero(guessed == c)[: quota[c]].tolist())
            taken = np.zeros(len(remaining), bool)
            taken[chosen_pos] = True
            rest = np.flatnonzero(~taken)[: n - int(taken.sum())]
            taken[rest] = True
            pick, remaining = remaining[taken], remaining[~taken]
        else:
            pick, remaining = remaining[:n], remaining[n:]
        run.ask(pool[pick])
        measure(run.fit(**fit))


def _jacobian(run: _Run, pool: FloatArray | None, plan: tuple[int, ...], seed_size: int | None, lam: float, tau: int,
              rng: np.random.Generator, fit: dict[str, Any], measure: Any) -> None:  # fmt: skip
    victim = run.victim
    n_seed = min(plan[0], seed_size if seed_size is not None else 10 * victim.n_classes)
    if n_seed < 1:
        raise InvalidParameterError(f"jacobian_seed must be at least 1, not {seed_size}.")
    low, high = _range(victim, pool)
    if pool is not None and len(pool) >= n_seed:
        seed_x = pool[rng.choice(len(pool), n_seed, replace=False)]
        spread = pool.std(axis=0) if not _is_image(victim.input_shape) else (high - low)
    else:
        seed_x = (low + (high - low) * rng.random((n_seed, *victim.input_shape))).astype(np.float32)
        spread = (high - low) / 4.0 if not _is_image(victim.input_shape) else (high - low)
    step = (lam * np.asarray(spread, np.float32)).astype(np.float32)
    run.ask(seed_x)
    targets = list(plan)
    rounds = 0
    while targets:
        net = run.fit(**fit)
        if len(run.x) == targets[0]:
            measure(net)
            targets.pop(0)
            if not targets:
                break
        # Papernot et al.: augment (a random subset of) the current set along the surrogate's Jacobian
        n_new = min(len(run.x), targets[0] - len(run.x))
        parents = rng.choice(len(run.x), n_new, replace=False)
        sign = -1.0 if (rounds // tau) % 2 else 1.0
        labels = run.answers[parents].argmax(axis=1).astype(np.int64)
        new = _jacobian_step(net, run.x[parents], labels, (sign * step).astype(np.float32))
        run.ask(np.clip(new, low, high).astype(np.float32))
        rounds += 1


# -- transferability -----------------------------------------------------------------------------------------------


def transferability(
    surrogate: TorchClassifier,
    victim: Classifier,
    x: ArrayLike,
    y: ArrayLike,
    *,
    eps: float,
    scale: ArrayLike | None = None,
    steps: int = 20,
    limit: int = 500,
    seed: int = 0,
) -> TransferResult:
    """PGD (L∞, ``eps``) on the surrogate, replayed against the victim, on inputs the victim gets right.

    ``scale`` (shaped like one input) measures ``eps`` per feature in those units, e.g. the standard deviations
    of tabular features; images leave it out. The baseline replays random ``±eps`` sign noise of the same size.
    Seeded with ``seed`` alone, as :func:`extract_model` is.
    """
    import torch

    from modelshield.attacks.evasion.whitebox import pgd
    from modelshield.models.torch_classifier import TorchClassifier

    if not (eps > 0 and math.isfinite(eps)):
        raise InvalidParameterError(f"eps must be a positive number, not {eps}.")
    if limit < 1:
        raise InvalidParameterError(f"limit must be at least 1, not {limit}.")
    arr, labels = _check_xy(victim, x, y, "x")
    q0 = victim.queries
    right = np.flatnonzero(victim.predict(arr) == labels)[:limit]
    arr, labels = arr[right], labels[right]
    if len(arr) == 0:
        return TransferResult(eps, 0, float("nan"), float("nan"), float("nan"), victim.queries - q0)
    unit = np.ones(victim.input_shape, np.float32) if scale is None else np.asarray(scale, np.float32)
    if unit.shape != victim.input_shape or not np.all(unit > 0):
        raise InvalidParameterError(f"scale must be positive and shaped like one input {victim.input_shape}.")
    low, high = (None, None) if victim.clip_values is None else _range(victim, None)

    class _Scaled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.unit = torch.nn.Parameter(torch.from_numpy(unit.copy()), requires_grad=False)

        def forward(self, u: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(u * self.unit)
            return out

    bounds = None if low is None or high is None else Bounds((low / unit).astype(np.float32),
                                                             (high / unit).astype(np.float32))  # fmt: skip
    scaled = TorchClassifier(_Scaled(surrogate.module), n_classes=victim.n_classes, input_shape=victim.input_shape,
                             clip_values=bounds, device="cpu")  # fmt: skip
    u = (arr / unit).astype(np.float32)
    result = pgd(scaled, u, labels, eps=eps, steps=steps, seed=seed)
    x_adv = (result.x_adv * unit).astype(np.float32)
    noise = np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=arr.shape)
    x_noise = arr + eps * unit * noise
    if low is not None and high is not None:
        x_adv, x_noise = np.clip(x_adv, low, high), np.clip(x_noise, low, high)
    fooled = victim.predict(np.concatenate([x_adv, x_noise.astype(np.float32)])) != np.concatenate([labels, labels])
    n = len(arr)
    return TransferResult(
        eps=eps,
        n=n,
        surrogate_success_rate=float(np.mean(result.success)),
        transfer_rate=float(np.mean(fooled[:n])),
        noise_rate=float(np.mean(fooled[n:])),
        queries=victim.queries - q0,
    )


# -- equation solving ----------------------------------------------------------------------------------------------

_MAX_LOG_RATIO = 30.0  # keep the system's log-ratios where float32 probabilities are exact enough
_CHECK_QUERIES = 8


def _log_ratios(proba: NDArray[np.floating]) -> NDArray[np.float64]:
    """``log(p_j / p_0)`` for j = 1..k-1; inf where a probability underflowed."""
    p = np.asarray(proba, np.float64)
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    return np.asarray(logp[:, 1:] - logp[:, :1], np.float64)


def _usable(ratios: NDArray[np.float64]) -> NDArray[np.bool_]:
    return np.asarray(np.all(np.isfinite(ratios) & (np.abs(ratios) < _MAX_LOG_RATIO), axis=1))


def solve_linear_model(  # noqa: PLR0915 - one linear pipeline: centre, system, check, map back
    victim: Classifier,
    *,
    x_ref: ArrayLike | None = None,
    x_test: ArrayLike | None = None,
    step: float = 1.0,
    seed: int = 0,
) -> EquationSolvingResult:
    """Recover a logistic or softmax model's weights and biases from ``d + 1`` confidence-score queries.

    The queries sit around a centre chosen where the scores are far from 0 and 1 (a point of ``x_ref``, the
    attacker's data, whose answer is least certain; else the middle of ``clip_values``), one step of ``step``
    times each feature's spread (standard deviation of ``x_ref``, else a quarter of the range) along each axis.
    A step that saturates a probability is shrunk ten-fold and tried again. ``_CHECK_QUERIES`` random extra queries
    then test that the victim is log-linear: ``consistent`` is False for any other kind of model. ``x_test`` (no
    labels needed) measures the fidelity of the recovered model.
    """
    if not (step > 0 and math.isfinite(step)):
        raise InvalidParameterError(f"step must be a positive number, not {step}.")
    t0 = time.perf_counter()
    q0 = victim.queries
    d = int(np.prod(victim.input_shape))
    if d > 10_000:
        raise InvalidParameterError(
            f"Equation solving needs d + 1 = {d + 1} queries and a dense {d + 1}-square system; the limit is 10,000 "
            "features.",
            remedy="Use extract_model for high-dimensional inputs.",
        )
    ref = victim.validate_input(x_ref).reshape(-1, d).astype(np.float64) if x_ref is not None else None
    if ref is not None and len(ref) == 0:
        ref = None
    if ref is not None:
        candidates = ref[np.random.default_rng(seed).permutation(len(ref))[:64]]
        ratios = _log_ratios(victim.predict_proba(candidates.reshape(-1, *victim.input_shape)))
        spread_max = np.where(np.isfinite(ratios), np.abs(ratios), np.inf).max(axis=1)
        centre = candidates[int(np.argmin(spread_max))]
        spread = ref.std(axis=0)
    elif victim.clip_values is not None:
        low, high = (v.reshape(-1).astype(np.float64) for v in _range(victim, None))
        centre, spread = (low + high) / 2.0, (high - low) / 4.0
    else:
        raise InvalidParameterError(
            "Equation solving needs somewhere to query: the victim has no clip_values and no x_ref was given.",
            remedy="Pass x_ref, a few inputs of the kind the model takes.",
        )
    spread = np.where(spread > 0, spread, 1.0)
    h = step * spread
    for _ in range(6):
        x_sys = np.vstack([centre, centre + np.diag(h)]).astype(np.float32)  # float32: what the victim sees
        ratios = _log_ratios(victim.predict_proba(x_sys.reshape(-1, *victim.input_shape)))
        if _usable(ratios).all():
            break
        h = h / 10.0
    else:
        raise InvalidInputError(
            "The victim's scores stay saturated (probabilities of 0 or 1) around every query point.",
            remedy="Pass x_ref with inputs on which the model is less certain.",
        )
    # Solve in centred, per-feature scaled coordinates (well conditioned whatever the features' scales), using the
    # float32 values the victim actually saw; then map back to the raw inputs.
    origin = x_sys[0].astype(np.float64)
    unit = np.where(h > 0, h, 1.0)
    a = np.hstack([(x_sys.astype(np.float64) - origin) / unit, np.ones((d + 1, 1))])
    scaled, *_ = np.linalg.lstsq(a, ratios, rcond=None)  # (d + 1, k - 1): rows w' then b'
    w_scaled = scaled[:-1] / unit[:, None]
    params = np.vstack([w_scaled, scaled[-1:] - origin @ w_scaled])  # rows w then b, in raw units
    w_rel, b_rel = params[:-1].T, params[-1]
    k = victim.n_classes
    if k == 2:
        coef, intercept = w_rel, b_rel.reshape(1)
    else:
        full_w = np.vstack([np.zeros((1, d)), w_rel])
        full_b = np.r_[0.0, b_rel]
        coef, intercept = full_w - full_w.mean(axis=0), full_b - full_b.mean()
    # Check queries: random points within a few steps of the centre.
    rng = np.random.default_rng(seed + 1)
    x_chk = (centre + h * rng.uniform(-3, 3, size=(_CHECK_QUERIES, d))).astype(np.float32)
    observed = _log_ratios(victim.predict_proba(x_chk.reshape(-1, *victim.input_shape)))
    predicted = np.hstack([x_chk.astype(np.float64), np.ones((_CHECK_QUERIES, 1))]) @ params
    ok = _usable(observed)
    residual = float(np.abs(observed[ok] - predicted[ok]).max()) if ok.any() else float("inf")
    scale_z = max(1.0, float(np.abs(observed[ok]).max()) if ok.any() else 1.0)
    queries = victim.queries - q0
    result = EquationSolvingResult(
        coef=np.asarray(coef, np.float64),
        intercept=np.asarray(intercept, np.float64),
        queries=queries,
        system_queries=d + 1,
        check_residual=residual,
        consistent=bool(residual <= 1e-3 * scale_z),
        fidelity=None,
        seconds=0.0,
    )
    fidelity = None
    if x_test is not None:
        xt = victim.validate_input(x_test)
        if len(xt):
            fidelity = float(np.mean(result.predict(xt.reshape(len(xt), -1)) == victim.predict(xt)))
    from dataclasses import replace

    total = victim.queries - q0
    return replace(result, fidelity=fidelity, queries=total, evaluation_queries=total - queries,
                   seconds=time.perf_counter() - t0)  # fmt: skip
