"""The ``supply`` check: scan the target's model file for code that would run when it is loaded.

    >>> from modelshield.audit.checks.supply import SUPPLY
    >>> SUPPLY.requires
    frozenset({<Requirement.MODEL_FILE: 'model-file'>})

:meth:`SupplyCheck.measure` is the scanner's scan of the file (:func:`modelshield.supply_chain.scan.scan_file`, the
same work under every budget); :meth:`SupplyCheck.judge` reports the scanner's findings, with their severities,
under this check's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modelshield.audit.interface import NO_SETTINGS, Check, CheckContext, NoSettings, Requirement
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding
from modelshield.supply_chain.scan import FileScan, scan_file

__all__ = ["SUPPLY", "SupplyCheck"]


class SupplyCheck(Check[NoSettings, FileScan]):
    """Static scan of the model file for code that runs on load (pickles, archives, object arrays)."""

    name = "supply"
    title = "Model file scan"
    description = "Static scan of the model file for code that runs on load (pickles, archives, object arrays)."
    requires = frozenset({Requirement.MODEL_FILE})
    budgets = NO_SETTINGS

    def measure(self, context: CheckContext, settings: NoSettings) -> FileScan:
        """Scan the model file."""
        path = context.target.model_path
        if path is None:  # the runner skips such targets (Requirement.MODEL_FILE)
            raise InvalidParameterError("The supply check needs the target's model file.")
        return scan_file(path)

    def judge(self, measurement: FileScan) -> Sequence[Finding]:
        """The scanner's findings, as they are, under this check's name."""
        return [replace(f, check=self.name) for f in measurement.findings]


SUPPLY = SupplyCheck()
