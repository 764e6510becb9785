"""How much poison an attack needs: success rate and clean accuracy of models retrained at several poison fractions.

    >>> from modelshield.attacks.poisoning import Backdoor, patch_trigger, susceptibility  # doctest: +SKIP
    >>> curve = susceptibility(trainer, split.train, split.test, Backdoor(trigger, 0), [0.01, 0.03])  # doctest: +SKIP
    >>> curve.fraction_needed(0.9)  # doctest: +SKIP

One model is trained per fraction (and per repeat) with the target's own recipe (a
:class:`~modelshield.models.retrain.Trainer`), fraction 0 included as the clean baseline. The models train
together: the pool holds the clean training records, the crafted versions of the records the attack alters, and the
test inputs; a model's mask swaps its share of clean records for their poisoned versions, so every model trains on
exactly as many records, and its outputs on the (never trained) test rows come back with the rest.

The attack success rate carries an exact (Clopper–Pearson) 95% interval; the clean accuracy is measured on the
untouched test split. A curve is an :class:`~modelshield.attacks.interface.AttackResult`: its
:meth:`SusceptibilityCurve.metrics` are the success rate and clean accuracy at the largest fraction, beside the clean
baseline's. :meth:`SusceptibilityCurve.fraction_needed` is the smallest measured fraction whose success
rate reaches a goal while clean accuracy stays within ``max_accuracy_drop`` of the clean model's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelshield.attacks.metrics import clopper_pearson
from modelshield.attacks.poisoning.attacks import PoisonAttack, n_poison, plan
from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError
from modelshield.models.retrain import Trainer

__all__ = ["CurvePoint", "SusceptibilityCurve", "susceptibility"]


@dataclass(frozen=True)
class CurvePoint:
    """One poison fraction: records altered, attack success (with its interval) and clean accuracy."""

    fraction: float
    n_poison: int
    success_rate: float
    success_interval: tuple[float, float]
    clean_accuracy: float


@dataclass(frozen=True)
class SusceptibilityCurve:
    """Attack success and clean accuracy per poison fraction, the clean model (fraction 0) first."""

    attack: str
    points: tuple[CurvePoint, ...]  # fraction 0 first
    n_train: int
    n_success_inputs: int
    repeats: int
    trainer: str
    queries: int = 0  # queries to the target's model (a clean-label attack's surrogate gradients); retraining none
    seconds: float = 0.0

    def metrics(self) -> Mapping[str, float]:
        """At the largest poison fraction: ``attack_success_rate``, ``clean_accuracy`` and ``clean_accuracy_drop``
        (from the clean model's); and the clean model's ``baseline_success_rate`` and ``baseline_clean_accuracy``."""
        top, base = self.points[-1], self.baseline
        return {
            "fraction": top.fraction,
            "attack_success_rate": top.success_rate,
            "clean_accuracy": top.clean_accuracy,
            "clean_accuracy_drop": base.clean_accuracy - top.clean_accuracy,
            "baseline_success_rate": base.success_rate,
            "baseline_clean_accuracy": base.clean_accuracy,
        }

    @property
    def baseline(self) -> CurvePoint:
        """The clean model (fraction 0): its accuracy, and how often it 'succeeds' without poison."""
        return self.points[0]

    def fraction_needed(self, goal: float = 0.9, *, max_accuracy_drop: float = 0.02) -> float | None:
        """Smallest measured fraction with success rate >= ``goal`` and clean accuracy within the drop, or None."""
        floor = self.baseline.clean_accuracy - max_accuracy_drop
        for point in self.points[1:]:
            if point.success_rate >= goal and point.clean_accuracy >= floor:
                return point.fraction
        return None


def susceptibility(
    trainer: Trainer,
    train: Dataset,
    test: Dataset,
    attack: PoisonAttack,
    fractions: Sequence[float],
    *,
    repeats: int = 1,
    seed: int = 0,
) -> SusceptibilityCurve:
    """Train a model per poison fraction (``repeats`` each, with their own poison draws) and measure the attack."""
    if repeats < 1:
        raise InvalidParameterError(f"repeats must be at least 1, not {repeats}.")
    t0 = time.perf_counter()
    levels = sorted({0.0, *(float(f) for f in fractions)})
    counts = [n_poison(f, len(train)) for f in levels]
    inputs = attack.success_inputs(test)
    if len(inputs.y) == 0:
        raise InvalidParameterError(f"The test split has no inputs to measure {attack.describe()} on.")
    n, k_max, n_test = len(train), counts[-1], len(test)
    masks, plans = [], []
    for r in range(repeats):
        crafted = plan(train, attack, k_max, seed=seed + r)
        plans.append(crafted)
        for k in counts:
            mask = np.zeros(n + repeats * k_max + n_test + len(inputs.y), bool)
            mask[:n] = True
            mask[crafted.order[:k]] = False
            mask[n + r * k_max : n + r * k_max + k] = True
            masks.append(mask)
    pool_x = np.concatenate([train.x, *(p.x for p in plans), test.x, inputs.x])
    placeholder = np.zeros(len(inputs.y), np.int64)  # never trained on
    pool_y = np.concatenate([train.y, *(p.y for p in plans), test.y, placeholder])
    log_proba = trainer.fit_log_proba(pool_x, pool_y, np.stack(masks), n_classes=train.n_classes, seed=seed)
    predicted = log_proba.argmax(axis=-1)  # (models, pool)
    start = n + repeats * k_max
    clean_pred = predicted[:, start : start + n_test]
    attack_pred = predicted[:, start + n_test :]
    points = []
    for i, (fraction, k) in enumerate(zip(levels, counts, strict=True)):
        models = [r * len(levels) + i for r in range(repeats)]
        hits = int(sum(inputs.successes(attack_pred[m]).sum() for m in models))
        trials = len(inputs.y) * repeats
        accuracy = float(np.mean([np.mean(clean_pred[m] == test.y) for m in models]))
        points.append(
            CurvePoint(
                fraction=fraction,
                n_poison=k,
                success_rate=hits / trials,
                success_interval=clopper_pearson(hits, trials),
                clean_accuracy=accuracy,
            )
        )
    spec = trainer.spec()
    return SusceptibilityCurve(
        attack=attack.describe(),
        points=tuple(points),
        n_train=n,
        n_success_inputs=len(inputs.y),
        repeats=repeats,
        trainer=str(spec.get("name", spec.get("estimator", spec.get("kind", "")))),
        seconds=time.perf_counter() - t0,
    )
