"""The registry of attacks: the built-in plug-ins, then those that installed packages declare.

    >>> from modelshield.attacks.registry import default_attack_registry
    >>> registry = default_attack_registry(entry_points=False)
    >>> "pgd" in registry.names(), registry.get("square").family.value
    (True, 'evasion')
    >>> result = run_attack("pgd", target, seed=0)  # doctest: +SKIP

Each attack family's ``plugins`` module exports ``BUILTIN``, a tuple of configured
:class:`~modelshield.attacks.interface.Attack` objects; :func:`builtin_attacks` collects them. A third-party package
adds an attack by declaring an instance (or a zero-argument factory) in the ``modelshield.attacks`` entry-point
group; a name already taken is refused. :func:`run_attack` runs one by name, after refusing a target that lacks
what the attack needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeGuard

from modelshield._internal.plugins import ATTACKS_GROUP, PluginRegistry
from modelshield.attacks.interface import Attack, AttackFamily, AttackResult
from modelshield.errors import InvalidParameterError
from modelshield.target import Requirement, Target

__all__ = ["BUILTIN_MODULES", "AnyAttack", "AttackRegistry", "builtin_attacks", "default_attack_registry", "run_attack"]

AnyAttack = Attack[Any]

#: The modules whose ``BUILTIN`` tuples make up the built-in attacks, in registry order.
BUILTIN_MODULES = (
    "modelshield.attacks.evasion.plugins",
    "modelshield.attacks.poisoning.plugins",
    "modelshield.attacks.membership.plugins",
    "modelshield.attacks.privacy_plugins",
)


def _is_attack(obj: object) -> TypeGuard[AnyAttack]:
    # A class with the right attributes passes a Protocol's isinstance; plug-ins are instances (or factories).
    return not isinstance(obj, type) and isinstance(obj, Attack)


class AttackRegistry:
    """Attacks by name, in registration order."""

    def __init__(self, attacks: Sequence[AnyAttack] = ()) -> None:
        self._registry: PluginRegistry[AnyAttack] = PluginRegistry("attack", name_of=lambda a: a.name)
        for attack in attacks:
            self.register(attack)

    def register(self, attack: AnyAttack) -> AnyAttack:
        """Add ``attack``; a name already taken is refused with :class:`~modelshield.errors.RegistrationError`."""
        return self._registry.register(attack)

    def load_entry_points(self, group: str = ATTACKS_GROUP) -> list[AnyAttack]:
        """Register the attacks that installed packages declare in ``group``."""
        return self._registry.load_entry_points(group, accept=_is_attack)

    def names(self) -> tuple[str, ...]:
        return self._registry.names()

    def get(self, name: str) -> AnyAttack:
        """The attack named ``name``; an unknown name raises :class:`~modelshield.errors.UnknownTargetError`."""
        return self._registry.get(name)

    def family(self, family: AttackFamily | str) -> list[AnyAttack]:
        """The attacks of one family, in registration order."""
        wanted = AttackFamily(family)
        return [a for a in self._registry if a.family == wanted]

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[AnyAttack]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


def builtin_attacks() -> list[AnyAttack]:
    """The built-in attacks: each module of :data:`BUILTIN_MODULES`'s ``BUILTIN``, in order."""
    attacks: list[AnyAttack] = []
    for module in BUILTIN_MODULES:
        builtin: tuple[AnyAttack, ...] = importlib.import_module(module).BUILTIN
        attacks.extend(builtin)
    return attacks


def default_attack_registry(*, entry_points: bool = True) -> AttackRegistry:
    """The built-in attacks, then (unless ``entry_points`` is False) the plug-ins installed packages declare."""
    registry = AttackRegistry(builtin_attacks())
    if entry_points:
        registry.load_entry_points()
    return registry


def run_attack(name: str, target: Target, *, seed: int = 0, registry: AttackRegistry | None = None) -> AttackResult:
    """Run the attack named ``name`` (from ``registry``, default: :func:`default_attack_registry`) on ``target``.

    An unknown name raises :class:`~modelshield.errors.UnknownTargetError`; a target that lacks what the attack
    ``requires`` raises :class:`~modelshield.errors.InvalidParameterError`, both before any work.
    """
    attack = (registry or default_attack_registry()).get(name)
    unmet = target.unmet(attack.requires)
    if unmet:
        raise InvalidParameterError(
            f"The {attack.name} attack cannot run on target {target.name!r}: it {'; it '.join(unmet)}.",
            remedy=_remedy(attack.requires, target),
        )
    result: AttackResult = attack.run(target, seed=seed)
    return result


def _remedy(requires: frozenset[Requirement], target: Target) -> str:
    missing = set(requires)
    hints = []
    if Requirement.WHITE_BOX in missing and not target.classifier.white_box:
        hints.append("load the model as a PyTorch classifier (white-box) or pick a black-box attack")
    if Requirement.TRAIN_DATA in missing and target.train is None:
        hints.append("give the target its training data")
    if Requirement.TRAINER in missing and target.trainer is None:
        hints.append("give the target its training recipe (Target.trainer)")
    if Requirement.MODEL_FILE in missing and target.model_path is None:
        hints.append("give the target its model file")
    text = "; ".join(hints) or "pick an attack whose needs the target meets"
    return text[0].upper() + text[1:] + " (`modelshield attacks` lists what each attack needs)."
