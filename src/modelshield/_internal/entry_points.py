"""The entry points of installed distributions, found the way :func:`importlib.metadata.entry_points` finds them,
without importing :mod:`importlib.metadata`.

    >>> from modelshield._internal.entry_points import entry_points
    >>> [(e.name, e.value) for e in entry_points("modelshield.scanners")]  # doctest: +SKIP
    [('example', 'modelshield_example_plugin.plugins:ExampleScanner')]

Every scan reads the scanner plug-ins' entry points, and :mod:`importlib.metadata` imports the :mod:`email`
package (to parse distribution metadata) on the way: a fifth of the start-up of ``modelshield scan FILE``.
Entry points need only each distribution's ``entry_points.txt``. This reader follows the standard discovery:
the directories of ``sys.path`` in order, the ``*.dist-info`` and ``*.egg-info`` directories in each (in directory
order), the first distribution of each normalised name only, and the ``entry_points.txt`` grammar of
:mod:`importlib.metadata`. Where the environment holds anything it does not read the same way (a zip archive or
egg on ``sys.path``, another finder that provides distributions, a metadata directory name it cannot take the
name from, a malformed line), it returns what :mod:`importlib.metadata` returns instead.
tests/internal/test_entry_points.py compares the two on the installed environment and on built ones.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from functools import reduce
from typing import NamedTuple

__all__ = ["EntryPoint", "entry_points"]

_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_SEPARATORS = re.compile(r"[-_.]+")
_INFO_SUFFIXES = (".dist-info", ".egg-info")


class EntryPoint(NamedTuple):
    """One entry point: ``name = value`` in ``group``, where ``value`` is ``module[:attr.attr]``."""

    name: str
    value: str
    group: str

    def load(self) -> object:
        """Import the module and return the named object (the module itself when no attribute is named)."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"Entry point {self.name!r} has a malformed value {self.value!r}.")
        module = importlib.import_module(match.group("module"))
        attrs = [a for a in (match.group("attr") or "").split(".") if a]
        return reduce(getattr, attrs, module)


class _UnsupportedLayoutError(Exception):
    """The environment holds something this reader does not read exactly as importlib.metadata does."""


def entry_points(group: str) -> tuple[EntryPoint, ...]:
    """Every entry point in ``group`` of the distributions on ``sys.path``, as importlib.metadata lists them."""
    try:
        return tuple(e for e in _read_all() if e.group == group)
    except _UnsupportedLayoutError:
        from importlib import metadata

        return tuple(EntryPoint(e.name, e.value, e.group) for e in metadata.entry_points(group=group))


def _read_all() -> Iterator[EntryPoint]:
    from importlib.machinery import PathFinder

    if any(getattr(f, "find_distributions", None) is not None and f is not PathFinder for f in sys.meta_path):
        raise _UnsupportedLayoutError
    seen: set[str] = set()
    for info in _metadata_directories():
        name = _normalized_name(info)
        if name in seen:
            continue
        seen.add(name)
        try:
            with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as file:
                text = file.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        yield from _parse(text)


def _metadata_directories() -> Iterator[str]:
    for root in sys.path:
        try:
            children = os.listdir(root or ".")
        except NotADirectoryError:
            raise _UnsupportedLayoutError from None  # a zip archive or an egg file: importlib.metadata reads inside it
        except OSError:
            continue  # a directory that does not exist: importlib.metadata finds nothing there either
        if os.path.basename(root).lower().endswith(".egg"):
            raise _UnsupportedLayoutError  # an egg directory: legacy layout
        for child in children:
            if child.lower().endswith(_INFO_SUFFIXES):
                yield os.path.join(root, child)


def _normalized_name(info: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(info))
    if ext not in _INFO_SUFFIXES:
        raise _UnsupportedLayoutError  # e.g. FOO.DIST-INFO: importlib.metadata takes this name from the METADATA file
    name = stem.partition("-")[0]
    return _SEPARATORS.sub("-", name).lower().replace("-", "_")


def _parse(text: str) -> Iterator[EntryPoint]:
    group: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
            continue
        if group is None:
            continue  # importlib.metadata ignores lines before the first section
        name, equals, value = line.partition("=")
        if not equals:
            raise _UnsupportedLayoutError  # importlib.metadata raises on such a line: let it
        yield EntryPoint(name.strip(), value.strip(), group)
