"""Optional dependencies, imported where used through one helper that names the extra to install.

>>> from modelshield._extras import require
>>> np = require("numpy", extra="core", feature="arrays")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from modelshield.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'modelshield[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        if exc.name is not None and exc.name.split(".", 1)[0] != top:
            raise  # the module is there but one of *its* imports is broken: show that, not a hint
        raise MissingExtraError(
            f"{feature} needs the Python package {top!r}, which is not installed.",
            remedy=f"pip install 'modelshield[{extra}]'",
        ) from exc
