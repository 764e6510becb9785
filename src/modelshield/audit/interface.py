"""The audit layer's vocabulary: budgets, checks (measure, then judge), their context, and audit options.

    >>> from modelshield.audit.interface import Budget
    >>> Budget.parse("Standard")
    <Budget.STANDARD: 'standard'>

A check is two steps. :meth:`Check.measure` does the work (runs attacks, scans, trains reference models) under the
settings its budget selects and returns a typed, frozen measurement; :meth:`Check.judge` is a pure function from
that measurement to findings, with severities from the check's documented thresholds, so its rules are tested on
hand-made measurements without running anything. Checks say what they need from the target (gradients, the model
file, training data, the training recipe); the runner skips, and records as skipped, a check whose needs the
target does not meet.

A budget is one name (``quick``, ``standard``, ``thorough``); what it buys is each check's own frozen settings
object, looked up in the check's :attr:`Check.budgets` table and recorded in the report.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Generic, TypeVar

import numpy as np

from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding
from modelshield.target import Requirement, Target

__all__ = [
    "NO_SETTINGS",
    "AuditOptions",
    "Budget",
    "Check",
    "CheckContext",
    "NoSettings",
    "Requirement",
    "StepCallback",
]

#: How a check reports progress inside a long step: (what it is doing, steps done, steps in all; 0 if unknown).
StepCallback = Callable[[str, int, int], None]


def _no_progress(step: str, done: int, total: int) -> None:
    """The progress callback of a check run without a listener."""


class Budget(enum.StrEnum):
    """How much work each check may do: ``quick`` for CI, ``standard`` by default, ``thorough`` for release."""

    QUICK = "quick"
    STANDARD = "standard"
    THOROUGH = "thorough"

    @classmethod
    def parse(cls, value: str | Budget) -> Budget:
        if isinstance(value, Budget):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise InvalidParameterError(
                f"Unknown budget {value!r}.", remedy="Use quick, standard or thorough."
            ) from None


@dataclass(frozen=True)
class NoSettings:
    """The settings of a check whose work does not depend on the budget."""


#: The ``budgets`` table of a check whose work does not depend on the budget.
NO_SETTINGS: Mapping[Budget, NoSettings] = MappingProxyType({budget: NoSettings() for budget in Budget})


@dataclass(frozen=True)
class CheckContext:
    """What a check's measurement gets: the target, the budget, the seed and a seeded generator of its own, and
    ``progress``, which a long measurement calls as it goes (``context.progress("reference models", 3, 8)``)."""

    target: Target
    budget: Budget
    seed: int
    rng: np.random.Generator
    cache_dir: Path | None = None  # where checks may keep reusable work (reference models); None: no cache
    progress: StepCallback = _no_progress

    def sample_test(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """A random subset (not stratified) of the test set of at most ``limit`` inputs, in their original order."""
        n = len(self.target.test)
        k = min(n, limit)
        idx = np.sort(self.rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        return self.target.test.x[idx], self.target.test.y[idx]


SettingsT = TypeVar("SettingsT")
MeasurementT = TypeVar("MeasurementT")


class Check(abc.ABC, Generic[SettingsT, MeasurementT]):
    """A named audit check: :meth:`measure` under the budget's settings, then :meth:`judge` into findings.

    Subclasses set the class attributes and implement the two steps; instances are stateless, so one instance
    serves concurrent audits.
    """

    #: Unique name in the check registry (``--checks NAME``).
    name: str
    #: A short title and a one-sentence description, for ``modelshield checks``.
    title: str
    description: str
    #: What the target must offer; the runner skips the check otherwise.
    requires: frozenset[Requirement] = frozenset()
    #: Part of an audit that names no checks.
    default: bool = True
    #: The settings each budget selects.
    budgets: Mapping[Budget, SettingsT]

    def settings(self, budget: Budget) -> SettingsT:
        """The settings ``budget`` selects."""
        return self.budgets[budget]

    @abc.abstractmethod
    def measure(self, context: CheckContext, settings: SettingsT) -> MeasurementT:
        """Do the work and return a typed, frozen measurement."""

    @abc.abstractmethod
    def judge(self, measurement: MeasurementT) -> Sequence[Finding]:
        """Findings from a measurement: pure, deterministic, no I/O."""

    def run(self, context: CheckContext) -> list[Finding]:
        """Measure under the context's budget, then judge."""
        return list(self.judge(self.measure(context, self.settings(context.budget))))

    def unmet(self, target: Target) -> list[str]:
        """Reasons the target cannot run this check (empty when it can)."""
        return target.unmet(self.requires)


@dataclass(frozen=True)
class AuditOptions:
    """Which checks to run (None: every default check), with which budget and seed."""

    checks: tuple[str, ...] | None = None
    budget: Budget | str = Budget.QUICK
    seed: int = 0
    cache_dir: Path | None = None  # passed to checks, for work worth keeping between audits

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", Budget.parse(self.budget))
        if self.seed < 0:
            raise InvalidParameterError(f"seed must be a non-negative integer, got {self.seed}.")
