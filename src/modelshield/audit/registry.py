"""The registry of audit checks: the built-in checks, then those that installed packages declare.

>>> from modelshield.audit.registry import default_registry
>>> "integrity" in default_registry().names()
True

A third-party package adds a check by subclassing :class:`~modelshield.audit.interface.Check` and declaring an
instance (or a factory) in the ``modelshield.checks`` entry-point group; ``modelshield checks`` then lists it and
``modelshield audit`` runs it. A name already taken is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeGuard

from modelshield._internal.plugins import CHECKS_GROUP, PluginRegistry
from modelshield.audit.interface import Check

__all__ = ["AnyCheck", "CheckRegistry", "builtin_checks", "default_registry"]

AnyCheck = Check[Any, Any]


def _is_check(obj: object) -> TypeGuard[AnyCheck]:
    return isinstance(obj, Check)


class CheckRegistry:
    """Checks by name, in registration order."""

    def __init__(self, checks: Sequence[AnyCheck] = ()) -> None:
        self._registry: PluginRegistry[AnyCheck] = PluginRegistry("check", name_of=lambda c: c.name)
        for check in checks:
            self.register(check)

    def register(self, check: AnyCheck) -> AnyCheck:
        """Add ``check``; a name already taken is refused with :class:`~modelshield.errors.RegistrationError`."""
        return self._registry.register(check)

    def load_entry_points(self, group: str = CHECKS_GROUP) -> list[AnyCheck]:
        """Register the checks that installed packages declare in ``group``."""
        return self._registry.load_entry_points(group, accept=_is_check)

    def names(self) -> tuple[str, ...]:
        return self._registry.names()

    def get(self, name: str) -> AnyCheck:
        return self._registry.get(name)

    def select(self, names: Sequence[str] | None) -> list[AnyCheck]:
        """The named checks (all default checks when ``names`` is None), unknown names refused up front."""
        if names is None:
            return [c for c in self._registry if c.default]
        return [self.get(n) for n in dict.fromkeys(names)]

    def __iter__(self) -> Iterator[AnyCheck]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


def builtin_checks() -> list[AnyCheck]:
    """The built-in checks, in the order an audit runs them."""
    from modelshield.audit.checks.baseline import BASELINE
    from modelshield.audit.checks.evasion import EVASION
    from modelshield.audit.checks.explain import EXPLAIN
    from modelshield.audit.checks.extraction import EXTRACTION
    from modelshield.audit.checks.fairness import FAIRNESS
    from modelshield.audit.checks.integrity import INTEGRITY
    from modelshield.audit.checks.inversion import INVERSION
    from modelshield.audit.checks.membership import MEMBERSHIP
    from modelshield.audit.checks.poisoning import POISONING
    from modelshield.audit.checks.signature import SIGNATURE
    from modelshield.audit.checks.supply import SUPPLY

    return [
        INTEGRITY,
        SUPPLY,
        SIGNATURE,
        BASELINE,
        FAIRNESS,
        EXPLAIN,
        EVASION,
        POISONING,
        MEMBERSHIP,
        INVERSION,
        EXTRACTION,
    ]


def default_registry(*, entry_points: bool = True) -> CheckRegistry:
    """The built-in checks, then (unless ``entry_points`` is False) the plug-ins installed packages declare."""
    registry = CheckRegistry(builtin_checks())
    if entry_points:
        registry.load_entry_points()
    return registry
