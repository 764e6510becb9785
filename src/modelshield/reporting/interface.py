"""What the reporting layer offers: output formats, and renderers as functions from a Report to text.

>>> from modelshield.reporting.interface import OutputFormat
>>> OutputFormat("sarif").suffix
'.sarif'
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from modelshield.findings import Report, Severity

__all__ = ["SECURITY_SEVERITY", "OutputFormat", "Renderer"]

Renderer = Callable[[Report], str]


class OutputFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    HTML = "html"

    @property
    def suffix(self) -> str:
        return {"text": ".txt", "json": ".json", "sarif": ".sarif", "html": ".html"}[self.value]


#: CVSS-like scores that code-scanning dashboards use to rank results (SARIF ``security-severity``).
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
