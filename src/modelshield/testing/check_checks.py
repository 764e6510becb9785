"""The contract every audit Check plug-in must keep, as one function tests call on any check and target.

    >>> from modelshield.audit.checks.baseline import BASELINE
    >>> from modelshield.testing.check_checks import check_check
    >>> from modelshield.testing.targets import tiny_target
    >>> check_check(BASELINE, tiny_target("tabular", white_box=False))

:func:`check_check` checks:

- the class attributes: a lower-case ``name``, a ``title`` and a ``description``, ``requires`` a frozenset of
  :class:`~modelshield.target.Requirement`, ``default`` a bool;
- the budgets: settings for every :class:`~modelshield.audit.interface.Budget`, each a frozen dataclass instance
  (what the report records), returned by :meth:`~modelshield.audit.interface.Check.settings`;
- measure, then judge: on a target that meets the check's needs, :meth:`measure` under the budget's settings,
  then :meth:`judge`, gives the findings :meth:`run` gives with a fresh context of the same seed; the measurement
  is a frozen dataclass;
- the judge is deterministic and pure: the same measurement judged twice gives equal findings and is unchanged;
- the findings are :class:`~modelshield.findings.Finding` objects carrying the check's name, and serialise to JSON.

Failures raise AssertionError with what was expected and what came back.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.findings import Finding
from modelshield.target import Requirement, Target
from modelshield.testing.attack_checks import _same

__all__ = ["check_check"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (an explicit raise: ``python -O`` keeps it)."""
    if not condition:
        raise AssertionError(message)


def _frozen_dataclass(obj: object) -> bool:
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return False
    params = getattr(type(obj), "__dataclass_params__", None)
    return bool(getattr(params, "frozen", False))


def _snapshot(obj: object) -> object:
    """A deep copy of ``obj`` as plain data (arrays copied), to tell whether judging changed a measurement."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _snapshot(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__name__, **fields}
    if isinstance(obj, Mapping):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_snapshot(v) for v in obj]
    return obj


def _context(check: Check[Any, Any], target: Target, budget: Budget, seed: int) -> CheckContext:
    """A fresh context, seeded as the audit runner seeds one."""
    rng = np.random.default_rng([seed, zlib.crc32(check.name.encode())])
    return CheckContext(target=target, budget=budget, seed=seed, rng=rng)


def _dicts(findings: object, name: str) -> list[dict[str, Any]]:
    if not isinstance(findings, list | tuple):
        raise AssertionError(f"{name}: findings must be a sequence, got {type(findings).__name__}")
    out = []
    for f in findings:
        if not isinstance(f, Finding):
            raise AssertionError(f"{name}: a finding is a {type(f).__name__}, not a Finding")
        _expect(f.check == name, f"{name}: finding {f.id!r} carries check name {f.check!r}")
        record = f.to_dict()
        json.dumps(record, allow_nan=False)  # raises on anything JSON cannot hold
        out.append(record)
    return out


def check_check(check: Check[Any, Any], target: Target, *, budget: Budget = Budget.QUICK, seed: int = 0) -> None:
    """Check ``check`` against its contract on ``target`` (which must meet its needs) under ``budget``; raise
    AssertionError on a breach."""
    _expect(isinstance(check, Check), f"{check!r} is not a Check")
    name = check.name
    _expect(isinstance(name, str) and _NAME.match(name), f"check name {name!r} is not a lower-case dotted name")
    for attribute in ("title", "description"):
        value = getattr(check, attribute, None)
        _expect(isinstance(value, str) and value.strip(), f"{name}: {attribute} must be a non-empty string")
    _expect(
        isinstance(check.requires, frozenset) and all(isinstance(r, Requirement) for r in check.requires),
        f"{name}: requires must be a frozenset of Requirement, got {check.requires!r}",
    )
    _expect(isinstance(check.default, bool), f"{name}: default must be a bool, got {check.default!r}")
    for b in Budget:
        _expect(b in check.budgets, f"{name}: no settings for the {b.value} budget")
        settings = check.settings(b)
        _expect(settings is check.budgets[b], f"{name}: settings({b.value}) is not budgets[{b.value}]")
        _expect(_frozen_dataclass(settings), f"{name}: the {b.value} settings {settings!r} are not a frozen dataclass")
        json.dumps(dataclasses.asdict(settings), default=str)  # the report records them
    unmet = check.unmet(target)
    _expect(not unmet, f"check_check needs a target that meets the check's needs; {name} {'; '.join(unmet)}")

    measurement = check.measure(_context(check, target, budget, seed), check.settings(budget))
    _expect(
        _frozen_dataclass(measurement),
        f"{name}: the measurement is a {type(measurement).__name__}, not a frozen dataclass",
    )
    kept = _snapshot(measurement)
    judged = _dicts(check.judge(measurement), name)
    _same(_snapshot(measurement), kept, f"{name}: the measurement, judged,")
    _expect(judged == _dicts(check.judge(measurement), name), f"{name}: judging one measurement twice differs")
    ran = _dicts(check.run(_context(check, target, budget, seed)), name)
    _expect(
        judged == ran,
        f"{name}: measure then judge gave {[f['id'] for f in judged]}, run gave {[f['id'] for f in ran]} "
        "(or the same ids with other contents): run must be judge(measure(...)), and measure deterministic "
        "under the seed",
    )
