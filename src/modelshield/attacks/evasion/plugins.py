"""The evasion attacks as :class:`~modelshield.attacks.interface.Attack` plug-ins, run against a whole Target.

    >>> from modelshield.attacks.evasion.plugins import BUILTIN, PGD
    >>> attack = PGD(eps=0.05, steps=20)
    >>> attack.name, sorted(r.value for r in attack.requires)
    ('pgd', ['white-box'])
    >>> [a.name for a in BUILTIN]
    ['fgsm', 'pgd', 'apgd-ce', 'apgd-dlr', 'deepfool', 'square', 'hop-skip-jump']
    >>> result = attack.run(target, seed=0)  # doctest: +SKIP
    >>> result.metrics()["robust_accuracy"]  # doctest: +SKIP

Each plug-in stores its parameters when it is built (ε, norm, steps, restarts, queries, and ``samples``, the most
test inputs to attack) and validates them there. :meth:`run` attacks a seeded random sample of ``target.test``
(at most ``samples`` inputs, kept in their original order) under the constraints of the test set's schema: the
valid range (narrowed by the classifier's ``clip_values``), immutable features left alone, integer and categorical
features on whole values. ε is in the model's input units (for inputs in [0, 1], a share of the range).

The result is the attack's :class:`~modelshield.attacks.evasion.interface.EvasionResult`, with ``indices`` naming
the attacked test rows and ``queries`` counting every input the run sent to the target's classifier (its query
counter before and after the run, so the count is exact while nothing else queries that classifier), the re-check
of the returned examples included. Two runs with one seed return the same examples.

White-box attacks (FGSM, PGD, APGD-CE, APGD-DLR, DeepFool) need a PyTorch classifier; the black-box ones (Square,
HopSkipJump) work on any classifier.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm
from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, IntArray
from modelshield.target import Requirement, Target

if TYPE_CHECKING:
    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["APGD", "BUILTIN", "FGSM", "PGD", "DeepFool", "EvasionAttack", "HopSkipJump", "Square"]

_WHITE_BOX = frozenset({Requirement.WHITE_BOX})


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be a positive number, not {value!r}.")
    return float(value)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{name} must be a positive whole number, not {value!r}.")
    return value


class EvasionAttack(abc.ABC):
    """The shared part of the evasion plug-ins: the seeded sample, the constraints and the query accounting.

    Subclasses set ``name`` and ``requires`` and implement :meth:`_attack` on the sampled inputs.
    """

    name: str
    family = AttackFamily.EVASION
    requires: frozenset[Requirement] = frozenset()

    def __init__(self, *, samples: int) -> None:
        self.samples = _count("samples", samples)

    def run(self, target: Target, *, seed: int = 0) -> EvasionResult:
        """Attack a seeded sample of at most ``samples`` test inputs; the same seed gives the same result."""
        classifier = target.classifier
        t0 = time.perf_counter()
        before = classifier.queries
        n = len(target.test)
        rng = np.random.default_rng(seed)
        k = min(n, self.samples)
        indices = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
        indices = indices.astype(np.int64)
        x, y = target.test.x[indices], target.test.y[indices]
        constraints = Constraints.from_schema(target.test.schema, classifier.clip_values)
        result = self._attack(classifier, x, y, constraints, seed)
        return replace(result, queries=classifier.queries - before, seconds=time.perf_counter() - t0, indices=indices)

    @abc.abstractmethod
    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        """Attack ``(x, y)`` on ``classifier``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "name")
        return f"{type(self).__name__}({params})"


def _torch(classifier: Classifier, attack: str) -> TorchClassifier:
    """The classifier as the PyTorch adapter white-box attacks run on, or a clear refusal."""
    from modelshield.models.torch_classifier import TorchClassifier

    if not isinstance(classifier, TorchClassifier):
        raise InvalidParameterError(
            f"The {attack} attack needs a PyTorch classifier, not {type(classifier).__name__}.",
            remedy="Use a black-box attack (square, hop-skip-jump) for other models.",
        )
    return classifier


class FGSM(EvasionAttack):
    """Fast gradient (sign) method: one step of size ``eps`` up the loss gradient (white-box)."""

    name = "fgsm"
    requires = _WHITE_BOX

    def __init__(self, *, eps: float = 0.05, norm: Norm | str = Norm.LINF, samples: int = 200) -> None:
        super().__init__(samples=samples)
        self.eps = _positive("eps", eps)
        self.norm = Norm.parse(norm)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.whitebox import fgsm

        return fgsm(_torch(classifier, self.name), x, y, eps=self.eps, norm=self.norm, constraints=constraints)


class PGD(EvasionAttack):
    """Projected gradient descent (Madry et al.) with random starts and ``restarts`` (white-box)."""

    name = "pgd"
    requires = _WHITE_BOX

    def __init__(
        self,
        *,
        eps: float = 0.05,
        norm: Norm | str = Norm.LINF,
        steps: int = 40,
        restarts: int = 1,
        samples: int = 200,
    ) -> None:
        super().__init__(samples=samples)
        self.eps = _positive("eps", eps)
        self.norm = Norm.parse(norm)
        self.steps = _count("steps", steps)
        self.restarts = _count("restarts", restarts)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.whitebox import pgd

        return pgd(_torch(classifier, self.name), x, y, eps=self.eps, norm=self.norm, steps=self.steps,
                   restarts=self.restarts, seed=seed, constraints=constraints)  # fmt: skip


class APGD(EvasionAttack):
    """Auto-PGD (Croce & Hein 2020) on the cross-entropy (``loss="ce"``) or the DLR loss (``"dlr"``, three
    classes or more) (white-box)."""

    requires = _WHITE_BOX

    def __init__(
        self,
        *,
        loss: Literal["ce", "dlr"] = "ce",
        eps: float = 0.05,
        norm: Norm | str = Norm.LINF,
        steps: int = 100,
        restarts: int = 1,
        samples: int = 200,
    ) -> None:
        super().__init__(samples=samples)
        if loss not in ("ce", "dlr"):
            raise InvalidParameterError(f"loss must be 'ce' or 'dlr', not {loss!r}.")
        self.loss: Literal["ce", "dlr"] = loss
        self.name = f"apgd-{loss}"  # one class, two registered names
        self.eps = _positive("eps", eps)
        self.norm = Norm.parse(norm)
        self.steps = _count("steps", steps)
        self.restarts = _count("restarts", restarts)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.whitebox import apgd

        return apgd(_torch(classifier, self.name), x, y, eps=self.eps, norm=self.norm, loss=self.loss,
                    steps=self.steps, restarts=self.restarts, seed=seed, constraints=constraints)  # fmt: skip


class DeepFool(EvasionAttack):
    """DeepFool (L2, minimal perturbation): the result's distances are the smallest changes found (white-box)."""

    name = "deepfool"
    requires = _WHITE_BOX

    def __init__(self, *, steps: int = 50, overshoot: float = 0.02, samples: int = 200) -> None:
        super().__init__(samples=samples)
        self.steps = _count("steps", steps)
        if isinstance(overshoot, bool) or not (isinstance(overshoot, int | float) and overshoot >= 0):
            raise InvalidParameterError(f"overshoot must be a non-negative number, not {overshoot!r}.")
        self.overshoot = float(overshoot)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.whitebox import deepfool

        return deepfool(_torch(classifier, self.name), x, y, steps=self.steps, overshoot=self.overshoot,
                        constraints=constraints)  # fmt: skip


class Square(EvasionAttack):
    """The L∞ Square attack: random search with the model's scores only, ``queries`` per input (black-box)."""

    name = "square"

    def __init__(self, *, eps: float = 0.05, queries: int = 1000, p_init: float = 0.05, samples: int = 200) -> None:
        super().__init__(samples=samples)
        self.eps = _positive("eps", eps)
        self.queries = _count("queries", queries)
        self.p_init = _positive("p_init", p_init)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.blackbox import square_attack

        return square_attack(classifier, x, y, eps=self.eps, max_queries=self.queries, p_init=self.p_init,
                             seed=seed, constraints=constraints)  # fmt: skip


class HopSkipJump(EvasionAttack):
    """HopSkipJumpAttack: the smallest change found that flips the model's decision, from its labels only, with
    ``queries`` per input (black-box)."""

    name = "hop-skip-jump"

    def __init__(self, *, norm: Norm | str = Norm.L2, queries: int = 1000, samples: int = 200) -> None:
        super().__init__(samples=samples)
        self.norm = Norm.parse(norm)
        self.queries = _count("queries", queries)

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        from modelshield.attacks.evasion.blackbox import hop_skip_jump

        return hop_skip_jump(classifier, x, y, norm=self.norm, max_queries=self.queries, seed=seed,
                             constraints=constraints)  # fmt: skip


#: The built-in evasion attacks, with their default parameters, for
#: :func:`modelshield.attacks.registry.builtin_attacks`.
BUILTIN: tuple[Attack[EvasionResult], ...] = (
    FGSM(),
    PGD(),
    APGD(loss="ce"),
    APGD(loss="dlr"),
    DeepFool(),
    Square(),
    HopSkipJump(),
)
