"""The audit layer: checks (attacks and scans) run against a target under a budget, collected into a Report.

>>> from modelshield.audit import default_registry
>>> [c.name for c in default_registry(entry_points=False)][:4]
['integrity', 'supply', 'signature', 'baseline']
"""

from __future__ import annotations

from modelshield.audit.interface import AuditOptions, Budget, Check, CheckContext, NoSettings, Requirement
from modelshield.audit.registry import CheckRegistry, default_registry
from modelshield.audit.runner import Auditor, AuditProgress, ProgressCallback

__all__ = [
    "AuditOptions",
    "AuditProgress",
    "Auditor",
    "Budget",
    "Check",
    "CheckContext",
    "CheckRegistry",
    "NoSettings",
    "ProgressCallback",
    "Requirement",
    "default_registry",
]
