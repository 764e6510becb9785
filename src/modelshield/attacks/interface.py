"""The attack layer's plug-in point: an :class:`Attack` runs against a Target and returns a typed result.

    >>> from modelshield.attacks.interface import AttackFamily
    >>> [f.value for f in AttackFamily]
    ['evasion', 'poisoning', 'membership', 'inversion', 'extraction']

An attack is configured when it is built (scikit-learn style: ``__init__`` stores parameters, including how much
work it may do) and run with :meth:`Attack.run`; it spends queries through the target's classifier, which counts
them, and reports what it spent. Every result satisfies :class:`AttackResult`: the attack's name with its
parameters, the queries, the time, and :meth:`AttackResult.metrics`, the figures of its field (robust accuracy and
success rate for evasion, TPR at low FPR for membership, fidelity for extraction, ...). Checks turn results into
findings; the conformance suite :func:`modelshield.testing.check_attack` runs the contract against any attack.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol, TypeVar, runtime_checkable

from modelshield.target import Requirement, Target

__all__ = ["Attack", "AttackFamily", "AttackResult"]


class AttackFamily(enum.StrEnum):
    """The families of attacks on a model, as the field and OWASP ML Top 10 group them."""

    EVASION = "evasion"  # ML01: inputs crafted to be misclassified
    POISONING = "poisoning"  # ML02/ML10: training data altered to change or backdoor the model
    MEMBERSHIP = "membership"  # ML04: was this record in the training data?
    INVERSION = "inversion"  # ML03: reconstruct training data or hidden attributes
    EXTRACTION = "extraction"  # ML05: copy the model through its answers


@runtime_checkable
class AttackResult(Protocol):
    """What every attack returns. Implementations are frozen dataclasses with these fields and more."""

    @property
    def attack(self) -> str:
        """The attack's name with its parameters, e.g. ``"pgd(linf, eps=0.1, steps=40, restarts=1)"``."""
        ...

    @property
    def queries(self) -> int:
        """Queries spent against the target's model (forward passes and gradient computations)."""
        ...

    @property
    def seconds(self) -> float:
        """Wall-clock time the attack took."""
        ...

    def metrics(self) -> Mapping[str, float]:
        """The figures of the attack's field, by name (finite floats or NaN where undefined)."""
        ...


ResultT_co = TypeVar("ResultT_co", bound=AttackResult, covariant=True)


@runtime_checkable
class Attack(Protocol[ResultT_co]):
    """An attack on a model: ``run(target, seed=...)`` returns its :class:`AttackResult`.

    ``name`` is unique in the attack registry; ``requires`` says what the target must offer (gradients, training
    data, a training recipe), and a target that lacks it is refused before any work.
    """

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> AttackFamily: ...

    @property
    def requires(self) -> frozenset[Requirement]: ...

    def run(self, target: Target, *, seed: int = 0) -> ResultT_co:
        """Attack ``target``; the same seed gives the same result."""
        ...
