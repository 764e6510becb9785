"""The audit layer's vocabulary: budgets, what a check needs, checks, their context, and audit options.

    >>> from modelshield.audit.interface import Budget
    >>> Budget.parse("standard").samples
    1000

A check is a name plus a function from a :class:`CheckContext` to findings. Checks say what they need
(gradients, the model file, training data); the runner skips, and records as skipped, a check whose needs the
target does not meet.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding
from modelshield.target import Target

__all__ = ["AuditOptions", "Budget", "Check", "CheckContext", "Requirement"]


class Budget(enum.StrEnum):
    """How much work each check may do: ``quick`` for CI, ``standard`` by default, ``thorough`` for release."""

    QUICK = "quick"
    STANDARD = "standard"
    THOROUGH = "thorough"

    @property
    def samples(self) -> int:
        """The most evaluation inputs a check should use."""
        return {"quick": 200, "standard": 1000, "thorough": 10_000}[self.value]

    @property
    def scale(self) -> float:
        """Multiplier for iterations, restarts and query budgets, relative to ``standard``."""
        return {"quick": 0.25, "standard": 1.0, "thorough": 4.0}[self.value]

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


class Requirement(enum.StrEnum):
    """What a check needs from a target."""

    WHITE_BOX = "white-box"  # gradients (a GradientClassifier)
    MODEL_FILE = "model-file"  # the model's file on disk
    TRAIN_DATA = "train-data"  # the training set (members), e.g. for privacy checks
    TRAINER = "trainer"  # the model's training recipe (Target.trainer), to train more models like it


@dataclass(frozen=True)
class CheckContext:
    """What a check gets: the target, the budget and a seeded random generator of its own."""

    target: Target
    budget: Budget
    seed: int
    rng: np.random.Generator
    cache_dir: Path | None = None  # where checks may keep reusable work (reference models); None: no cache

    def sample_test(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A stratification-free random subset of the test set of at most ``limit`` (default: budget) inputs."""
        n = len(self.target.test)
        k = min(n, limit if limit is not None else self.budget.samples)
        idx = np.sort(self.rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        return self.target.test.x[idx], self.target.test.y[idx]


@dataclass(frozen=True)
class Check:
    """A named audit check: ``run(context)`` returns findings; ``requires`` lists what it needs."""

    name: str
    title: str
    description: str
    run: Callable[[CheckContext], Sequence[Finding]]
    requires: frozenset[Requirement] = frozenset()
    default: bool = True  # part of an audit that names no checks

    def unmet(self, target: Target) -> list[str]:
        """Reasons the target cannot run this check (empty when it can)."""
        reasons = []
        if Requirement.WHITE_BOX in self.requires and not target.classifier.white_box:
            reasons.append(f"needs gradients, and {type(target.classifier).__name__} is black-box")
        if Requirement.MODEL_FILE in self.requires and target.model_path is None:
            reasons.append("needs the model file, and the target has none on disk")
        if Requirement.TRAIN_DATA in self.requires and target.train is None:
            reasons.append("needs the training data (members), and none was given")
        if Requirement.TRAINER in self.requires and target.trainer is None:
            reasons.append("needs the model's training recipe to retrain it, and the target has none")
        return reasons


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
