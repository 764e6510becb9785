"""Option types shared by the commands: output formats and the ``--fail-on`` threshold.

>>> from modelshield.cli.options import FailOn, exit_code
>>> exit_code([], FailOn.high)
0
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from modelshield.findings import Finding, Severity

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_USAGE", "FailOn", "OutputFormat", "exit_code"]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(enum.StrEnum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"
    never = "never"


def exit_code(findings: Iterable[Finding], fail_on: FailOn) -> int:
    """1 when a finding reaches ``fail_on`` (never, for ``FailOn.never``), else 0."""
    if fail_on is FailOn.never:
        return EXIT_CLEAN
    threshold = Severity.parse(fail_on.value)
    return EXIT_FINDINGS if any(f.severity >= threshold for f in findings) else EXIT_CLEAN
