"""Typed field access for the JSON files modelshield reads (manifests, table schemas), with one error style.

>>> from modelshield._internal.fields import json_field
>>> json_field({"n": 3}, "n", int, lambda problem: ValueError(problem))
3
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["json_field"]


def json_field(
    data: Mapping[str, object], key: str, kind: type | tuple[type, ...], bad: Callable[[str], Exception]
) -> Any:
    """``data[key]`` if present and of ``kind`` (a bool counts only where ``bool`` is named); else ``bad(problem)``."""
    if key not in data:
        raise bad(f"field {key!r} is missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in kinds)
        raise bad(f"field {key!r} must be {names}, got {type(value).__name__}")
    return value
