"""Built-in attacks of this family as :class:`~modelshield.attacks.interface.Attack` plug-ins (being written)."""

from __future__ import annotations

from typing import Any

from modelshield.attacks.interface import Attack

__all__ = ["BUILTIN"]

#: The built-in attacks this module contributes to :func:`modelshield.attacks.registry.builtin_attacks`.
BUILTIN: tuple[Attack[Any], ...] = ()
