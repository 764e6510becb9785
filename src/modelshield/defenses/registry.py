"""The registry of inference guards: named factories that hand out fresh guards, built-ins then plug-ins.

    >>> from modelshield.defenses.registry import default_registry
    >>> registry = default_registry(entry_points=False)
    >>> registry.names()[:3]
    ('feature-squeezing', 'strip', 'extraction-monitor')
    >>> guard = registry.create("top-k")
    >>> guard.name, guard.stage.value
    ('top-k(k=1)', 'output')

Guards keep state (what ``fit`` learned, and per-client history), so the registry holds :class:`GuardFactory`
records, not guards: :meth:`GuardRegistry.create` builds a new, unfitted guard on every call, and two gateways, or
two models behind one gateway, never share a guard by accident.

A third-party package adds a guard by declaring a :class:`GuardFactory` (or a zero-argument callable returning
one) in the ``modelshield.guards`` entry-point group::

    [project.entry-points."modelshield.guards"]
    my-guard = "my_package.guards:MY_GUARD"   # MY_GUARD = GuardFactory("my-guard", GuardStage.INPUT, MyGuard, "...")

A name already taken is refused, and every guard the factory builds is checked to be an
:class:`~modelshield.defenses.interface.InferenceGuard` of the declared stage. Each plug-in should pass
:func:`modelshield.testing.guard_checks.check_guard`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from modelshield._internal.plugins import GUARDS_GROUP, PluginRegistry
from modelshield.defenses.backdoor import STRIPDetector
from modelshield.defenses.detectors import FeatureSqueezingDetector
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.defenses.interface import GuardStage, InferenceGuard
from modelshield.defenses.output import LabelOnly, NoisyOutput, ReverseSigmoid, Rounding, TopK
from modelshield.errors import RegistrationError

__all__ = ["GuardFactory", "GuardRegistry", "builtin_guards", "default_registry"]


@dataclass(frozen=True)
class GuardFactory:
    """A named recipe for guards: calling it builds a new, unfitted guard of ``stage`` (``build()``, checked).

    ``name`` is the registry key (e.g. ``"top-k"``; the guard's own ``name`` adds its parameters); ``summary``
    says in one line what the guard does.
    """

    name: str
    stage: GuardStage
    build: Callable[[], InferenceGuard]
    summary: str

    def __call__(self) -> InferenceGuard:
        """A fresh guard; :class:`~modelshield.errors.RegistrationError` when ``build`` breaks the contract."""
        guard: object = self.build()
        if not isinstance(guard, InferenceGuard):
            raise RegistrationError(
                f"The guard factory {self.name!r} built a {type(guard).__name__}, not an InferenceGuard.",
                remedy="Build an object with name, stage, fit, inspect, forget and memory.",
            )
        if guard.stage is not self.stage:
            raise RegistrationError(
                f"The guard factory {self.name!r} is declared for the {self.stage.value} stage but built a guard of "
                f"the {guard.stage} stage.",
                remedy="Declare the stage the guard runs at.",
            )
        return guard


def _is_factory(obj: object) -> TypeGuard[GuardFactory]:
    return isinstance(obj, GuardFactory)


class GuardRegistry:
    """Guard factories by name, in registration order."""

    def __init__(self, factories: Sequence[GuardFactory] = ()) -> None:
        self._registry: PluginRegistry[GuardFactory] = PluginRegistry("guard", name_of=lambda f: f.name)
        for factory in factories:
            self.register(factory)

    def register(self, factory: GuardFactory) -> GuardFactory:
        """Add ``factory``; a name already taken is refused with :class:`~modelshield.errors.RegistrationError`."""
        if not _is_factory(factory):
            raise RegistrationError(
                f"Only GuardFactory records can be registered, not a {type(factory).__name__}.",
                remedy="Wrap the guard class: GuardFactory(name, stage, GuardClass, summary).",
            )
        return self._registry.register(factory)

    def load_entry_points(self, group: str = GUARDS_GROUP) -> list[GuardFactory]:
        """Register the guard factories that installed packages declare in ``group``."""
        return self._registry.load_entry_points(group, accept=_is_factory)

    def names(self) -> tuple[str, ...]:
        return self._registry.names()

    def get(self, name: str) -> GuardFactory:
        """The factory registered as ``name``; :class:`~modelshield.errors.UnknownTargetError` when none is."""
        return self._registry.get(name)

    def create(self, name: str) -> InferenceGuard:
        """A fresh, unfitted guard from the factory registered as ``name``."""
        return self.get(name)()

    def stage(self, stage: GuardStage) -> list[GuardFactory]:
        """The factories of one stage, in registration order."""
        return [f for f in self._registry if f.stage is stage]

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[GuardFactory]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


def builtin_guards() -> list[GuardFactory]:
    """The built-in guards with their default parameters: input detectors, then monitors, then output hardening."""
    return [
        GuardFactory(
            "feature-squeezing",
            GuardStage.INPUT,
            FeatureSqueezingDetector,
            "Flags inputs whose prediction moves when the input is squeezed (adversarial examples).",
        ),
        GuardFactory(
            "strip",
            GuardStage.INPUT,
            STRIPDetector,
            "Flags inputs that keep their prediction when blended with clean inputs (backdoor triggers).",
        ),
        GuardFactory(
            "extraction-monitor",
            GuardStage.OUTPUT,
            ExtractionMonitor,
            "Flags clients whose query stream looks like model extraction (PRADA, an off-distribution test and a "
            "proximity test).",
        ),
        GuardFactory("top-k", GuardStage.OUTPUT, TopK, "Releases only the top class's probability (k=1)."),
        GuardFactory("rounding", GuardStage.OUTPUT, Rounding, "Rounds the probabilities to 2 decimals."),
        GuardFactory("label-only", GuardStage.OUTPUT, LabelOnly, "Releases the predicted label alone (one-hot)."),
        GuardFactory(
            "noise",
            GuardStage.OUTPUT,
            functools.partial(NoisyOutput, scale=0.1),
            "Adds repeatable Laplace noise (scale 0.1) to the probabilities, keeping the predicted label.",
        ),
        GuardFactory(
            "reverse-sigmoid",
            GuardStage.OUTPUT,
            ReverseSigmoid,
            "Perturbs confident probabilities deceptively (reverse sigmoid, beta=1, gamma=0.1).",
        ),
    ]


def default_registry(*, entry_points: bool = True) -> GuardRegistry:
    """The built-in guards, then (unless ``entry_points`` is False) the plug-ins installed packages declare."""
    registry = GuardRegistry(builtin_guards())
    if entry_points:
        registry.load_entry_points()
    return registry
