"""modelshield: a multi-layered security framework for machine-learning systems.

    >>> import modelshield
    >>> report = modelshield.run_audit("zoo:digits-mlp", checks=["integrity"])  # doctest: +SKIP
    >>> report.max_severity  # doctest: +SKIP
    <Severity.INFO: 'info'>

``import modelshield`` stays light: torch, onnxruntime and the other heavy dependencies load only when a feature
that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshield._version import __version__
from modelshield.errors import ModelShieldError
from modelshield.findings import Finding, Report, Severity

__all__ = [
    "Finding",
    "ModelShieldError",
    "Report",
    "Severity",
    "__version__",
    "load_target",
    "run_audit",
]

if TYPE_CHECKING:
    from collections.abc import Sequence

    from modelshield.target import Target


def load_target(name: str, **kwargs: Any) -> Target:
    """A reference target by name (``"zoo:digits-cnn"`` or ``"digits-cnn"``); see :mod:`modelshield.zoo`."""
    from modelshield.zoo import load_target as _load

    return _load(name, **kwargs)


def run_audit(
    target: str | Target,
    *,
    checks: Sequence[str] | None = None,
    budget: str = "quick",
    seed: int = 0,
) -> Report:
    """Run the audit checks against a target (a :class:`~modelshield.target.Target` or a zoo name).

    (Not ``modelshield.audit``: that name is the audit layer's package.)
    """
    from modelshield.audit import AuditOptions, Auditor

    resolved = load_target(target) if isinstance(target, str) else target
    options = AuditOptions(checks=tuple(checks) if checks is not None else None, budget=budget, seed=seed)
    return Auditor(options).run(resolved)
