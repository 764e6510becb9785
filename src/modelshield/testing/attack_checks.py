"""The contract every Attack plug-in must keep, as one function tests call on any attack and target.

    >>> from modelshield.attacks.evasion.plugins import FGSM
    >>> from modelshield.testing.attack_checks import check_attack
    >>> from modelshield.testing.targets import tiny_target
    >>> check_attack(FGSM(eps=0.1), tiny_target("tabular"))  # doctest: +SKIP

:func:`check_attack` runs the attack twice with one seed on a target that meets its needs and checks:

- the protocol: a non-empty lower-case ``name``, an :class:`~modelshield.attacks.interface.AttackFamily`, a
  frozenset of :class:`~modelshield.target.Requirement` as ``requires``, and a result that is an
  :class:`~modelshield.attacks.interface.AttackResult` (a non-empty ``attack``, ``queries`` and ``seconds``);
- query counting: the ``queries`` a result reports equal what the target's classifier counted during the run;
- metrics: a non-empty mapping of names to floats, each finite or NaN (never infinite);
- determinism: the second run returns the same result (every field but ``seconds``, arrays element by element)
  and the same metrics;
- for an :class:`~modelshield.attacks.evasion.interface.EvasionResult`: ``indices`` name the attacked test rows,
  every example lies in the ε-ball (when the attack has an ε) and in the valid range (the classifier's
  ``clip_values`` and the schema's feature ranges, wherever the clean input lies in them), immutable features are
  untouched, ``distances`` are the perturbation norms, and ``predicted`` is the model's answer on ``x_adv``.

Failures raise AssertionError with what was expected and what came back.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, perturbation_norms
from modelshield.attacks.interface import Attack, AttackFamily, AttackResult
from modelshield.target import Requirement, Target

__all__ = ["check_attack"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_WALL_CLOCK = frozenset({"seconds", "duration_s"})  # fields that differ between identical runs


def _expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (an explicit raise: ``python -O`` keeps it)."""
    if not condition:
        raise AssertionError(message)


def _same(a: object, b: object, path: str = "result") -> None:
    """Raise AssertionError naming the first place where ``a`` and ``b`` differ (NaN equals NaN; wall-clock
    fields of dataclasses are skipped)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        left, right = np.asarray(a), np.asarray(b)
        nan = left.dtype.kind in "fc" and right.dtype.kind in "fc"
        _expect(
            left.shape == right.shape and np.array_equal(left, right, equal_nan=nan),
            f"{path}: the arrays differ",
        )
        return
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        _expect(type(a) is type(b), f"{path}: {type(a).__name__} then {type(b).__name__}")
        for f in dataclasses.fields(a):
            if f.name not in _WALL_CLOCK:
                _same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
        return
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping) or list(a) != list(b):
            raise AssertionError(f"{path}: keys {list(a)} then {b!r}")
        for key in a:
            _same(a[key], b[key], f"{path}[{key!r}]")
        return
    if isinstance(a, tuple | list):
        if not isinstance(b, tuple | list) or len(a) != len(b):
            raise AssertionError(f"{path}: {a!r} then {b!r}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
        return
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    _expect(a == b, f"{path}: {a!r} then {b!r}")


def _check_metrics(metrics: object, attack: str) -> Mapping[str, float]:
    if not isinstance(metrics, Mapping) or not metrics:
        raise AssertionError(f"{attack}: metrics() must be a non-empty mapping, got {metrics!r}")
    for key, value in metrics.items():
        _expect(isinstance(key, str) and key, f"{attack}: metric names must be non-empty strings, got {key!r}")
        _expect(
            isinstance(value, float | int) and not isinstance(value, bool),
            f"{attack}: metric {key!r} is a {type(value).__name__}, not a float",
        )
        _expect(not math.isinf(value), f"{attack}: metric {key!r} is {value} (metrics are finite or NaN)")
    return metrics


def check_attack(attack: Attack[Any], target: Target, *, seed: int = 0) -> None:
    """Check ``attack`` against its contract on ``target`` (which must meet its needs); raise AssertionError."""
    _expect(isinstance(attack, Attack), f"{attack!r} lacks the Attack protocol (name, family, requires, run)")
    name = attack.name
    _expect(isinstance(name, str) and _NAME.match(name), f"attack name {name!r} is not a lower-case dotted name")
    _expect(isinstance(attack.family, AttackFamily), f"{name}: family {attack.family!r} is not an AttackFamily")
    _expect(
        isinstance(attack.requires, frozenset) and all(isinstance(r, Requirement) for r in attack.requires),
        f"{name}: requires must be a frozenset of Requirement, got {attack.requires!r}",
    )
    unmet = target.unmet(attack.requires)
    _expect(not unmet, f"check_attack needs a target that meets the attack's needs; {name} {'; '.join(unmet)}")

    classifier = target.classifier
    before = classifier.queries
    first = attack.run(target, seed=seed)
    spent = classifier.queries - before
    _expect(isinstance(first, AttackResult), f"{name}: {type(first).__name__} lacks the AttackResult protocol")
    _expect(isinstance(first.attack, str) and first.attack, f"{name}: the result's attack must name the attack")
    _expect(
        isinstance(first.queries, int | np.integer) and first.queries == spent,
        f"{name}: reports {first.queries} queries, the classifier counted {spent}",
    )
    _expect(
        isinstance(first.seconds, float | int) and math.isfinite(first.seconds) and first.seconds >= 0,
        f"{name}: seconds must be a non-negative number, got {first.seconds!r}",
    )
    metrics = _check_metrics(first.metrics(), name)

    second = attack.run(target, seed=seed)
    _expect(second.queries == first.queries, f"{name}: {first.queries} then {second.queries} queries with one seed")
    _same(dict(metrics), dict(second.metrics()), f"{name}, two runs with seed {seed}: metrics")
    if dataclasses.is_dataclass(first):
        _same(first, second, f"{name}, two runs with seed {seed}: result")
    else:
        _expect(first.attack == second.attack, f"{name}: {first.attack!r} then {second.attack!r}")
    if isinstance(first, EvasionResult):
        _check_evasion(first, target, name)


def _check_evasion(result: EvasionResult, target: Target, name: str) -> None:
    """The examples are valid inputs near the attacked ones, and the outcome was measured on them."""
    if result.indices is None:
        raise AssertionError(f"{name}: an evasion plug-in must name the attacked test rows (indices)")
    rows = np.asarray(result.indices)
    n = len(target.test)
    _expect(rows.ndim == 1 and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < n)), f"{name}: bad indices")
    x = np.asarray(target.test.x[rows], np.float32)
    x_adv = np.asarray(result.x_adv)
    _expect(x_adv.shape == x.shape, f"{name}: x_adv has shape {x_adv.shape}, the attacked inputs {x.shape}")
    _expect(np.array_equal(result.y, target.test.y[rows]), f"{name}: y is not the attacked rows' labels")
    _expect(np.all(np.isfinite(x_adv)), f"{name}: x_adv has non-finite values")
    # float32 rounding of x + delta: a few units in the last place of the values involved
    slack = 4 * float(np.spacing(np.float32(max(1.0, float(np.abs(x).max(initial=0.0))))))

    distances = perturbation_norms(x_adv, x, result.norm)
    _expect(
        np.allclose(result.distances, distances, rtol=1e-5, atol=slack),
        f"{name}: distances are not the {result.norm.value} norms of x_adv - x",
    )
    valid = Constraints.from_schema(target.test.schema, target.classifier.clip_values)
    low, high = np.broadcast_to(valid.low, x.shape), np.broadcast_to(valid.high, x.shape)
    inside = (x >= low) & (x <= high)  # an attack is answerable only where the clean input was valid
    out_of_range = inside & ((x_adv < low - slack) | (x_adv > high + slack))
    _expect(not out_of_range.any(), f"{name}: {int(out_of_range.sum())} values of x_adv leave the valid range")

    if result.eps is not None:
        worst = float(distances.max(initial=0.0))
        _expect(
            worst <= result.eps + slack,
            f"{name}: an example lies {worst:.6g} from its input, outside the {result.norm.value} ball of "
            f"radius {result.eps:g}",
        )

    immutable = np.broadcast_to(~valid.mutable, x.shape)
    moved = immutable & (x_adv != x)
    _expect(not moved.any(), f"{name}: {int(moved.sum())} values of immutable features changed")

    predicted = target.classifier.predict(x_adv)
    _expect(np.array_equal(result.predicted, predicted), f"{name}: predicted is not the model's answer on x_adv")
