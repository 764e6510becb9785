"""The poisoning attacks as :class:`~modelshield.attacks.interface.Attack` plug-ins: poison, retrain, measure.

    >>> from modelshield.attacks.poisoning.plugins import BUILTIN, BadNets
    >>> attack = BadNets(fraction=0.05)
    >>> attack.name, sorted(r.value for r in attack.requires)
    ('badnets', ['train-data', 'trainer'])
    >>> [a.name for a in BUILTIN]
    ['label-flip', 'badnets', 'clean-label']
    >>> curve = attack.run(target, seed=0)  # doctest: +SKIP
    >>> curve.metrics()["attack_success_rate"]  # doctest: +SKIP

:meth:`run` alters ``fraction`` of the target's training records (``target.train``), retrains the target's recipe
(``target.trainer``) on them and, beside it, on the clean records, and measures on the test split: the result is a
:class:`~modelshield.attacks.poisoning.SusceptibilityCurve` of two points (clean, poisoned), whose
:meth:`~modelshield.attacks.poisoning.SusceptibilityCurve.metrics` give the attack success rate and clean accuracy
of the poisoned model next to the clean one's. ``repeats`` trains that many models per point, each with its own
poison draw. The seed draws the poisoned records, the backdoor's target class (unless given) and the feature
trigger, and seeds the training.

- :class:`LabelFlipping`: random labels flipped to another class; success is the poisoned model's test error.
- :class:`BadNets`: the :func:`~modelshield.attacks.poisoning.standard_trigger` stamped on records of other
  classes, relabelled as the target class; success is triggered test inputs of other classes put in that class.
- :class:`CleanLabel`: Turner et al.'s label-consistent backdoor, with the target's own model as the surrogate
  for the PGD perturbation (so it needs gradients); labels are never changed.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import replace

import numpy as np

from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.attacks.poisoning.attacks import Backdoor, CleanLabelBackdoor, LabelFlip, PoisonAttack
from modelshield.attacks.poisoning.susceptibility import SusceptibilityCurve, susceptibility
from modelshield.attacks.poisoning.triggers import standard_trigger
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import GradientClassifier
from modelshield.target import Requirement, Target

__all__ = ["BUILTIN", "BadNets", "CleanLabel", "LabelFlipping", "PoisoningAttack"]

_RETRAIN = frozenset({Requirement.TRAIN_DATA, Requirement.TRAINER})


def _fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise InvalidParameterError(f"fraction must lie strictly between 0 and 1, not {value!r}.")
    return float(value)


def _whole(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterError(f"{name} must be a whole number of at least {minimum}, not {value!r}.")
    return value


class PoisoningAttack(abc.ABC):
    """The shared part of the poisoning plug-ins: poison ``fraction`` of the training data, retrain, measure.

    Subclasses set ``name`` and ``requires`` and implement :meth:`_poison`, the crafting attack for a target.
    """

    name: str
    family = AttackFamily.POISONING
    requires: frozenset[Requirement] = _RETRAIN

    def __init__(self, *, fraction: float, repeats: int = 1) -> None:
        self.fraction = _fraction(fraction)
        self.repeats = _whole("repeats", repeats)

    def run(self, target: Target, *, seed: int = 0) -> SusceptibilityCurve:
        """Retrain on clean and on poisoned training data; the clean and the poisoned model's figures."""
        train, trainer = target.train, target.trainer
        if train is None or trainer is None:
            raise InvalidParameterError(
                f"The {self.name} attack retrains the model, and target {target.name!r} has no "
                f"{'training data' if train is None else 'training recipe'}.",
                remedy="Give the target its training data and recipe (Target(train=..., trainer=...)).",
            )
        t0 = time.perf_counter()
        before = target.classifier.queries
        attack = self._poison(target, seed)
        curve = susceptibility(trainer, train, target.test, attack, (self.fraction,), repeats=self.repeats, seed=seed)
        return replace(curve, queries=target.classifier.queries - before, seconds=time.perf_counter() - t0)

    @abc.abstractmethod
    def _poison(self, target: Target, seed: int) -> PoisonAttack:
        """The crafting attack for ``target``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _goal(target: Target, chosen: int | None, seed: int) -> int:
    """The backdoor's target class: ``chosen``, else one drawn with ``seed``."""
    n_classes = target.classifier.n_classes
    if chosen is None:
        return int(np.random.default_rng(seed).integers(n_classes))
    if not 0 <= chosen < n_classes:
        raise InvalidParameterError(f"target_class {chosen} is not one of the target's classes 0..{n_classes - 1}.")
    return chosen


class LabelFlipping(PoisoningAttack):
    """Random label flipping: ``fraction`` of the training labels changed to another class at random."""

    name = "label-flip"

    def __init__(self, *, fraction: float = 0.1, repeats: int = 1) -> None:
        super().__init__(fraction=fraction, repeats=repeats)

    def _poison(self, target: Target, seed: int) -> PoisonAttack:
        return LabelFlip()


class BadNets(PoisoningAttack):
    """BadNets (Gu et al. 2017): a trigger stamped on ``fraction`` of the training records, relabelled as
    ``target_class`` (None: drawn with the seed)."""

    name = "badnets"

    def __init__(self, *, fraction: float = 0.05, target_class: int | None = None, repeats: int = 1) -> None:
        super().__init__(fraction=fraction, repeats=repeats)
        self.target_class = None if target_class is None else _whole("target_class", target_class, 0)

    def _poison(self, target: Target, seed: int) -> PoisonAttack:
        train = target.train
        if train is None:  # run() has checked; kept for the type
            raise InvalidParameterError("BadNets needs the target's training data.")
        trigger = standard_trigger(train, target.classifier.clip_values, seed=seed)
        return Backdoor(trigger, _goal(target, self.target_class, seed))


class CleanLabel(PoisoningAttack):
    """The clean-label backdoor (Turner et al. 2019): target-class records pushed by PGD on the target's own model
    (L∞ radius ``eps`` in input units, ``steps`` steps) away from their class, then stamped; labels kept."""

    name = "clean-label"
    requires = _RETRAIN | {Requirement.WHITE_BOX}

    def __init__(
        self,
        *,
        fraction: float = 0.05,
        eps: float = 0.1,
        steps: int = 20,
        target_class: int | None = None,
        repeats: int = 1,
    ) -> None:
        super().__init__(fraction=fraction, repeats=repeats)
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not (math.isfinite(eps) and eps >= 0):
            raise InvalidParameterError(f"eps must be a non-negative number, not {eps!r}.")
        self.eps = float(eps)
        self.steps = _whole("steps", steps)
        self.target_class = None if target_class is None else _whole("target_class", target_class, 0)

    def _poison(self, target: Target, seed: int) -> PoisonAttack:
        train, surrogate = target.train, target.classifier
        if train is None:  # run() has checked; kept for the type
            raise InvalidParameterError("The clean-label attack needs the target's training data.")
        if not isinstance(surrogate, GradientClassifier):
            raise InvalidParameterError(
                f"The clean-label attack needs gradients, and {type(surrogate).__name__} is black-box.",
                remedy="Use badnets or label-flip against black-box models.",
            )
        trigger = standard_trigger(train, surrogate.clip_values, seed=seed)
        goal = _goal(target, self.target_class, seed)
        return CleanLabelBackdoor(trigger, goal, surrogate, eps=self.eps, steps=self.steps)


#: The built-in poisoning attacks, with their default parameters, for
#: :func:`modelshield.attacks.registry.builtin_attacks`.
BUILTIN: tuple[Attack[SusceptibilityCurve], ...] = (LabelFlipping(), BadNets(), CleanLabel())
