"""The ``supply`` check: scan the target's model file for code that would run when it is loaded.

    >>> from modelshield.audit.checks.supply import SUPPLY
    >>> SUPPLY.requires
    frozenset({<Requirement.MODEL_FILE: 'model-file'>})

The findings are the scanner's (:mod:`modelshield.supply_chain.scan`), reported under this check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modelshield.audit.interface import Check, CheckContext, Requirement
from modelshield.findings import Finding
from modelshield.supply_chain.scan import scan_file

__all__ = ["SUPPLY"]


def supply_findings(context: CheckContext) -> Sequence[Finding]:
    path = context.target.model_path
    if path is None:  # the runner skips such targets (Requirement.MODEL_FILE)
        return []
    return [replace(f, check="supply") for f in scan_file(path).findings]


SUPPLY = Check(
    name="supply",
    title="Model file scan",
    description="Static scan of the model file for code that runs on load (pickles, archives, object arrays).",
    run=supply_findings,
    requires=frozenset({Requirement.MODEL_FILE}),
)
