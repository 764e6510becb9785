"""One registry for every plug-in kind: explicit registration, duplicates refused, entry points for third parties.

    >>> registry: PluginRegistry[str] = PluginRegistry("example", name_of=str)
    >>> registry.register("a")
    'a'
    >>> registry.register("a")
    Traceback (most recent call last):
    ...
    modelshield.errors.RegistrationError: An example plug-in named 'a' is already registered.

A third-party package adds a plug-in by declaring an entry point in one of the groups below, whose object is the
plug-in itself (an instance) or a zero-argument callable returning one::

    [project.entry-points."modelshield.checks"]
    my-check = "my_package.checks:MY_CHECK"

:meth:`PluginRegistry.load_entry_points` loads them; a broken plug-in (import error, wrong type, duplicate name)
raises :class:`~modelshield.errors.RegistrationError` naming the entry point, rather than vanishing silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeGuard, TypeVar

from modelshield._internal.entry_points import entry_points
from modelshield.errors import RegistrationError, UnknownTargetError

__all__ = ["ATTACKS_GROUP", "CHECKS_GROUP", "GUARDS_GROUP", "SCANNERS_GROUP", "PluginRegistry"]

CHECKS_GROUP = "modelshield.checks"
ATTACKS_GROUP = "modelshield.attacks"
SCANNERS_GROUP = "modelshield.scanners"
GUARDS_GROUP = "modelshield.guards"

T = TypeVar("T")


class PluginRegistry(Generic[T]):
    """Plug-ins of one kind by name, in registration order; ``kind`` names the kind in messages."""

    def __init__(self, kind: str, *, name_of: Callable[[T], str]) -> None:
        self.kind = kind
        self._name_of = name_of
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add ``item``; a name already taken is refused."""
        name = self._name_of(item)
        if name in self._items:
            raise RegistrationError(
                f"An {self.kind} plug-in named {name!r} is already registered."
                if self.kind[:1] in "aeiou"
                else f"A {self.kind} plug-in named {name!r} is already registered.",
                remedy="Give the new plug-in another name.",
            )
        self._items[name] = item
        return item

    def load_entry_points(self, group: str, *, accept: Callable[[object], TypeGuard[T]]) -> list[T]:
        """Register every plug-in declared in the entry-point ``group``; ``accept`` checks each one's type."""
        loaded: list[T] = []
        for entry in sorted(entry_points(group), key=lambda e: e.name):
            try:
                obj = entry.load()
                if isinstance(obj, type) or (not accept(obj) and callable(obj)):
                    obj = obj()  # a class or a factory: the plug-in is what it returns
            except Exception as exc:  # a third party's import error must name the plug-in, not crash the tool
                raise RegistrationError(
                    f"The {self.kind} plug-in {entry.name!r} ({entry.value}) failed to load: {exc}.",
                    remedy=f"Fix or uninstall the package that declares it in the {group!r} entry points.",
                ) from exc
            if not accept(obj):
                raise RegistrationError(
                    f"The {self.kind} plug-in {entry.name!r} ({entry.value}) is a {type(obj).__name__}, not a "
                    f"{self.kind}.",
                    remedy=f"Point the {group!r} entry point at a {self.kind} object or a factory of one.",
                )
            loaded.append(self.register(obj))
        return loaded

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownTargetError(
                f"Unknown {self.kind} {name!r}.", remedy=f"Use one of: {', '.join(self._items) or '(none)'}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)
