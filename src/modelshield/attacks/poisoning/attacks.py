"""Training-data poisoning: label flipping, backdoors (BadNets), and a clean-label backdoor; how much poison it takes.

    >>> from modelshield.attacks.poisoning import Backdoor, patch_trigger, poison  # doctest: +SKIP
    >>> trigger = patch_trigger((1, 8, 8), size=3, low=0.0, high=1.0)  # doctest: +SKIP
    >>> poisoned = poison(train, Backdoor(trigger, target=0), fraction=0.03, seed=0)  # doctest: +SKIP
    >>> poisoned.dataset, poisoned.poisoned.sum()  # doctest: +SKIP

An attack names which training records it may alter (:meth:`eligible`), how it alters them (:meth:`craft`) and how
its success is measured at test time (:meth:`success_inputs`):

- :class:`LabelFlip`: random flips (success: the model's error rate) or targeted flips of one class to another
  (success: the share of that class's test records the model puts in the target class).
- :class:`Backdoor` (BadNets, Gu et al. 2017): records of other classes are stamped with a trigger and relabelled
  as the target; success is the share of triggered test inputs of other classes classified as the target.
- :class:`CleanLabelBackdoor` (Turner et al. 2019, "label-consistent"): only records that really belong to the
  target are stamped, after an adversarial perturbation (PGD on a surrogate model) makes their true features hard
  to learn, so the model leans on the trigger; labels are never changed, which defeats label-consistency checks.

Poison fractions are counted over the whole training set, and the records an attack alters at a small fraction
are among those it alters at a larger one (one seeded order), so a curve over fractions is monotone in the poison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset
from modelshield.errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.attacks.poisoning.triggers import Trigger
    from modelshield.models.interface import GradientClassifier

__all__ = [
    "Backdoor",
    "CleanLabelBackdoor",
    "LabelFlip",
    "PoisonAttack",
    "PoisonedData",
    "SuccessInputs",
    "n_poison",
    "plan",
    "poison",
]

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class SuccessInputs:
    """Test inputs an attack is judged on: success is ``prediction == target`` when ``target`` is set, else an error."""

    x: FloatArray
    y: IntArray  # true labels
    target: int | None

    def successes(self, predicted: NDArray[np.integer]) -> NDArray[np.bool_]:
        if self.target is not None:
            return np.asarray(predicted == self.target)
        return np.asarray(predicted != self.y)


class PoisonAttack(Protocol):
    """A poisoning attack: which records it alters, how, and what success means at test time."""

    @property
    def name(self) -> str: ...

    def eligible(self, data: Dataset) -> NDArray[np.bool_]: ...

    def craft(
        self, x: FloatArray, y: IntArray, *, n_classes: int, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray]: ...

    def success_inputs(self, test: Dataset) -> SuccessInputs: ...

    def describe(self) -> str: ...


def _check_class(value: int | None, n_classes: int, what: str) -> None:
    if value is not None and not 0 <= value < n_classes:
        raise InvalidParameterError(f"{what} class {value} is not one of 0..{n_classes - 1}.")


@dataclass(frozen=True)
class LabelFlip:
    """Flip labels: of any record to a random other class (``source`` and ``target`` None), or ``source`` to
    ``target``."""

    source: int | None = None
    target: int | None = None
    name: str = field(default="label-flip", init=False)

    def __post_init__(self) -> None:
        if (self.source is None) != (self.target is None):
            raise InvalidParameterError("Give both source and target (targeted flipping) or neither (random).")
        if self.source is not None and self.source == self.target:
            raise InvalidParameterError("source and target must differ.")

    def eligible(self, data: Dataset) -> NDArray[np.bool_]:
        _check_class(self.source, data.n_classes, "source")
        _check_class(self.target, data.n_classes, "target")
        if self.source is None:
            return np.ones(len(data), bool)
        return np.asarray(data.y == self.source)

    def craft(
        self, x: FloatArray, y: IntArray, *, n_classes: int, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray]:
        if self.target is not None:
            return x, np.full_like(y, self.target)
        shift = rng.integers(1, n_classes, size=len(y))  # any class but the true one, uniformly
        return x, (y + shift) % n_classes

    def success_inputs(self, test: Dataset) -> SuccessInputs:
        if self.source is None:
            return SuccessInputs(test.x, test.y, None)
        rows = test.y == self.source
        return SuccessInputs(test.x[rows], test.y[rows], self.target)

    def describe(self) -> str:
        if self.source is None:
            return "random label flipping"
        return f"label flipping of class {self.source} to {self.target}"


@dataclass(frozen=True, eq=False)
class Backdoor:
    """BadNets: records of other classes (or of ``sources``), stamped with ``trigger`` and labelled ``target``."""

    trigger: Trigger
    target: int
    sources: tuple[int, ...] | None = None
    name: str = field(default="backdoor", init=False)

    def eligible(self, data: Dataset) -> NDArray[np.bool_]:
        _check_class(self.target, data.n_classes, "target")
        mask = data.y != self.target
        if self.sources is not None:
            mask &= np.isin(data.y, self.sources)
        return np.asarray(mask)

    def craft(
        self, x: FloatArray, y: IntArray, *, n_classes: int, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray]:
        return self.trigger.apply(x), np.full_like(y, self.target)

    def success_inputs(self, test: Dataset) -> SuccessInputs:
        rows = test.y != self.target
        if self.sources is not None:
            rows &= np.isin(test.y, self.sources)
        return SuccessInputs(self.trigger.apply(test.x[rows]), test.y[rows], self.target)

    def describe(self) -> str:
        return f"backdoor ({self.trigger.describe()}) to class {self.target}"


@dataclass(frozen=True, eq=False)
class CleanLabelBackdoor:
    """Turner et al.'s label-consistent backdoor: target-class records, perturbed by PGD (L∞ radius ``eps``, in
    input units) on ``surrogate`` away from their class, then stamped; their labels stay correct."""

    trigger: Trigger
    target: int
    surrogate: GradientClassifier
    eps: float
    steps: int = 20
    name: str = field(default="clean-label", init=False)

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise InvalidParameterError(f"eps must be non-negative, not {self.eps}.")

    def eligible(self, data: Dataset) -> NDArray[np.bool_]:
        _check_class(self.target, data.n_classes, "target")
        return np.asarray(data.y == self.target)

    def craft(
        self, x: FloatArray, y: IntArray, *, n_classes: int, rng: np.random.Generator
    ) -> tuple[FloatArray, IntArray]:
        hard = x
        if self.eps > 0 and len(x):
            hard = self._perturb(x, y, rng)
        return self.trigger.apply(hard), y.copy()

    def _perturb(self, x: FloatArray, y: IntArray, rng: np.random.Generator) -> FloatArray:
        """L∞ PGD for the whole budget (Turner et al. push as far as the radius allows, not just past the
        boundary), from a random start, in the surrogate's valid range."""
        bounds = self.surrogate.clip_values
        low = bounds.low if bounds is not None else -np.inf
        high = bounds.high if bounds is not None else np.inf
        step = 2.5 * self.eps / self.steps
        adv = np.clip(x + rng.uniform(-self.eps, self.eps, size=x.shape).astype(np.float32), low, high)
        for _ in range(self.steps):
            grad = self.surrogate.loss_gradient(adv, y)
            adv = np.clip(adv + step * np.sign(grad), x - self.eps, x + self.eps)
            adv = np.clip(adv, low, high).astype(np.float32)
        return adv

    def success_inputs(self, test: Dataset) -> SuccessInputs:
        rows = test.y != self.target
        return SuccessInputs(self.trigger.apply(test.x[rows]), test.y[rows], self.target)

    def describe(self) -> str:
        return f"clean-label backdoor ({self.trigger.describe()}, PGD eps {self.eps:g}) to class {self.target}"


@dataclass(frozen=True, eq=False)
class PoisonedData:
    """A poisoned training set: same records and order as the clean one, ``poisoned`` marking the altered rows."""

    dataset: Dataset
    poisoned: NDArray[np.bool_]
    clean_labels: IntArray
    attack: str

    @property
    def n_poisoned(self) -> int:
        return int(self.poisoned.sum())


@dataclass(frozen=True, eq=False)
class _Plan:
    order: IntArray  # eligible rows in the seeded order the attack takes them
    x: FloatArray  # crafted versions of order[:len(x)]
    y: IntArray


def plan(data: Dataset, attack: PoisonAttack, n_poison: int, *, seed: int) -> _Plan:
    """Choose (seeded) and craft the first ``n_poison`` records the attack alters; smaller counts take a prefix."""
    eligible = np.flatnonzero(attack.eligible(data))
    if n_poison > len(eligible):
        raise InvalidParameterError(
            f"{attack.describe()} can alter at most {len(eligible)} of {len(data)} records "
            f"({len(eligible) / max(len(data), 1):.1%}); {n_poison} asked.",
            remedy="Lower the poison fraction.",
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(eligible).astype(np.int64)
    chosen = order[:n_poison]
    x, y = attack.craft(data.x[chosen], data.y[chosen], n_classes=data.n_classes, rng=rng)
    if x.shape != data.x[chosen].shape or y.shape != (n_poison,):
        raise InvalidInputError(f"{attack.describe()} crafted arrays of the wrong shape.")
    return _Plan(order=order, x=np.asarray(x, np.float32), y=np.asarray(y, np.int64))


def n_poison(fraction: float, n_records: int) -> int:
    """Records to alter for a poison ``fraction`` of a training set of ``n_records``."""
    if not 0 <= fraction < 1:
        raise InvalidParameterError(f"Poison fractions must lie in [0, 1), not {fraction}.")
    return round(fraction * n_records)


def poison(data: Dataset, attack: PoisonAttack, fraction: float, *, seed: int = 0) -> PoisonedData:
    """``data`` with ``fraction`` of its records altered by ``attack`` (in place: same size, same order)."""
    k = n_poison(fraction, len(data))
    crafted = plan(data, attack, k, seed=seed)
    rows = crafted.order[:k]
    x = np.array(data.x, copy=True)
    y = np.array(data.y, copy=True)
    x[rows], y[rows] = crafted.x, crafted.y
    mask = np.zeros(len(data), bool)
    mask[rows] = True
    poisoned = Dataset(
        x=x,
        y=y,
        schema=data.schema,
        label_names=data.label_names,
        name=f"{data.name}+{attack.name}",
        description=f"{data.description} Poisoned: {attack.describe()}, {k} records.".strip(),
        source=data.source,
    )
    return PoisonedData(dataset=poisoned, poisoned=mask, clean_labels=np.array(data.y), attack=attack.describe())
