"""The registry of audit checks: explicit registration, duplicates refused.

>>> from modelshield.audit.registry import default_registry
>>> "integrity" in default_registry().names()
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from modelshield.audit.interface import Check
from modelshield.errors import RegistrationError, UnknownTargetError

__all__ = ["CheckRegistry", "default_registry"]


class CheckRegistry:
    """Checks by name, in registration order."""

    def __init__(self, checks: Sequence[Check] = ()) -> None:
        self._checks: dict[str, Check] = {}
        for check in checks:
            self.register(check)

    def register(self, check: Check) -> Check:
        if check.name in self._checks:
            raise RegistrationError(
                f"A check named {check.name!r} is already registered.",
                remedy="Give the new check another name.",
            )
        self._checks[check.name] = check
        return check

    def names(self) -> tuple[str, ...]:
        return tuple(self._checks)

    def get(self, name: str) -> Check:
        try:
            return self._checks[name]
        except KeyError:
            raise UnknownTargetError(
                f"Unknown check {name!r}.", remedy=f"Use one or more of: {', '.join(self._checks)}."
            ) from None

    def select(self, names: Sequence[str] | None) -> list[Check]:
        """The named checks (all default checks when ``names`` is None), unknown names refused up front."""
        if names is None:
            return [c for c in self._checks.values() if c.default]
        return [self.get(n) for n in dict.fromkeys(names)]

    def __iter__(self) -> Iterator[Check]:
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)


def default_registry() -> CheckRegistry:
    """A registry holding every built-in check."""
    from modelshield.audit.checks.baseline import BASELINE
    from modelshield.audit.checks.evasion import EVASION
    from modelshield.audit.checks.extraction import EXTRACTION
    from modelshield.audit.checks.integrity import INTEGRITY
    from modelshield.audit.checks.inversion import INVERSION
    from modelshield.audit.checks.membership import MEMBERSHIP
    from modelshield.audit.checks.poisoning import POISONING
    from modelshield.audit.checks.signature import SIGNATURE
    from modelshield.audit.checks.supply import SUPPLY

    checks = [INTEGRITY, SUPPLY, SIGNATURE, BASELINE, EVASION, POISONING, MEMBERSHIP, INVERSION, EXTRACTION]
    return CheckRegistry(checks)
