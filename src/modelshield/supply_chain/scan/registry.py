"""The registry of format scanners: the built-in ones, then those that installed packages declare.

    >>> from modelshield.supply_chain.formats import ModelFormat
    >>> from modelshield.supply_chain.scan.registry import default_registry
    >>> [s.name for s in default_registry(entry_points=False).for_format(ModelFormat.KERAS)]
    ['keras']

A third-party package adds a scanner by declaring it (an instance of a class that keeps the
:class:`~modelshield.supply_chain.scan.interface.FormatScanner` protocol, or a factory of one) in the
``modelshield.scanners`` entry-point group::

    [project.entry-points."modelshield.scanners"]
    my-scanner = "my_package.scanning:MY_SCANNER"

Every scanner that serves a format runs on it, in registration order (built-ins first); a name already taken is
refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import TypeGuard

from modelshield._internal.plugins import SCANNERS_GROUP, PluginRegistry
from modelshield.errors import RegistrationError
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats import builtin_scanners
from modelshield.supply_chain.scan.interface import FormatScanner

__all__ = ["ScannerRegistry", "default_registry", "is_format_scanner"]


def is_format_scanner(obj: object) -> TypeGuard[FormatScanner]:
    """Whether ``obj`` keeps the FormatScanner protocol: a name, a non-empty frozenset of formats, and ``scan``.

    A class is not a scanner (its instances may be): an entry point naming a class is called to make one.
    """
    name, formats = getattr(obj, "name", None), getattr(obj, "formats", None)
    return (
        not isinstance(obj, type)
        and isinstance(name, str)
        and bool(name)
        and isinstance(formats, frozenset)
        and bool(formats)
        and all(isinstance(f, ModelFormat) for f in formats)
        and callable(getattr(obj, "scan", None))
    )


class ScannerRegistry:
    """Format scanners by name, in registration order, and by the formats they serve.

    A registry can be sent to worker processes (it pickles as its scanners) when its scanners can. A frozen
    registry (:meth:`freeze`) refuses new scanners: the process-wide default that scans use is one.
    """

    def __init__(self, scanners: Iterable[FormatScanner] = ()) -> None:
        self._registry: PluginRegistry[FormatScanner] = PluginRegistry("scanner", name_of=attrgetter("name"))
        self._by_format: dict[ModelFormat, tuple[FormatScanner, ...]] = {}
        self._frozen = False
        for scanner in scanners:
            self.register(scanner)

    @property
    def frozen(self) -> bool:
        """Whether the registry refuses new scanners."""
        return self._frozen

    def freeze(self) -> ScannerRegistry:
        """Refuse new scanners from now on (so that the registry can be shared); returns the registry."""
        self._frozen = True
        return self

    def _refuse_if_frozen(self) -> None:
        if self._frozen:
            raise RegistrationError(
                "This scanner registry is frozen: it is shared by every scan that uses it.",
                remedy="Build a registry of your own (default_registry() returns a new one) and pass it to the scan.",
            )

    def register(self, scanner: FormatScanner) -> FormatScanner:
        """Add ``scanner``; a malformed scanner, a name already taken, or a frozen registry: RegistrationError."""
        self._refuse_if_frozen()
        if not is_format_scanner(scanner):
            raise RegistrationError(
                f"{scanner!r} is not a format scanner: it needs a non-empty 'name', a non-empty frozenset of "
                "ModelFormat as 'formats', and a 'scan' method.",
                remedy="Implement modelshield.supply_chain.scan.interface.FormatScanner.",
            )
        self._registry.register(scanner)
        self._index(scanner)
        return scanner

    def _index(self, scanner: FormatScanner) -> None:
        for fmt in scanner.formats:
            self._by_format[fmt] = (*self._by_format.get(fmt, ()), scanner)

    def load_entry_points(self, group: str = SCANNERS_GROUP) -> list[FormatScanner]:
        """Register the scanners that installed packages declare in ``group``, in the order of their names."""
        self._refuse_if_frozen()
        before = len(self._registry)
        try:
            return self._registry.load_entry_points(group, accept=is_format_scanner)
        finally:  # those registered before a broken plug-in stopped the loading are served too
            for scanner in list(self._registry)[before:]:
                self._index(scanner)

    def for_format(self, fmt: ModelFormat) -> tuple[FormatScanner, ...]:
        """The scanners serving ``fmt``, in registration order (empty when none does)."""
        return self._by_format.get(fmt, ())

    def names(self) -> tuple[str, ...]:
        return self._registry.names()

    def get(self, name: str) -> FormatScanner:
        """The scanner named ``name``; an unknown name raises UnknownTargetError listing the known ones."""
        return self._registry.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Iterator[FormatScanner]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)

    def __reduce__(self) -> tuple[type[ScannerRegistry], tuple[tuple[FormatScanner, ...]]]:
        return (ScannerRegistry, (tuple(self),))

    def __repr__(self) -> str:
        return f"ScannerRegistry({list(self.names())!r})"


def default_registry(*, entry_points: bool = True) -> ScannerRegistry:
    """A new registry of the built-in scanners, then (unless ``entry_points`` is False) the installed plug-ins."""
    registry = ScannerRegistry(builtin_scanners())
    if entry_points:
        registry.load_entry_points()
    return registry
