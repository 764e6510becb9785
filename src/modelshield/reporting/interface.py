"""What the reporting layer offers: output formats, and renderers as functions from a Report to text.

>>> from modelshield.reporting.interface import OutputFormat, printable
>>> OutputFormat("sarif").suffix
'.sarif'
>>> printable("model\\x1b[2J.pkl") == "model\\ufffd[2J.pkl"
True
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from modelshield.findings import Report, Severity

__all__ = ["SECURITY_SEVERITY", "SEVERITY_COLOURS", "OutputFormat", "Renderer", "printable"]

#: A renderer turns a report into the text of one output format.
Renderer = Callable[[Report], str]


class OutputFormat(enum.StrEnum):
    """The formats a report can be rendered in (``--format``): a terminal summary, JSON, SARIF 2.1.0, HTML."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    HTML = "html"

    @property
    def suffix(self) -> str:
        """The file name suffix of this format, e.g. ``".sarif"``."""
        return {"text": ".txt", "json": ".json", "sarif": ".sarif", "html": ".html"}[self.value]


#: CVSS-like scores that code-scanning dashboards use to rank results (SARIF ``security-severity``).
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}

#: Badge and chart colours per severity; white text on each keeps a WCAG AA contrast of at least 4.5:1.
SEVERITY_COLOURS: dict[Severity, str] = {
    Severity.CRITICAL: "#8b0000",
    Severity.HIGH: "#c0392b",
    Severity.MEDIUM: "#b35900",
    Severity.LOW: "#2b6cb0",
    Severity.INFO: "#4a5568",
}

# C0 controls but tab, newline and carriage return; DEL and C1 controls; lone surrogates; XML non-characters.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes among them) replaced by U+FFFD.

    Report texts come from model files and checks, so they are untrusted: this keeps them from driving a
    terminal and keeps HTML, SVG and UTF-8 output well-formed. Escaping for a markup language is separate.
    """
    return _UNPRINTABLE.sub("\ufffd", text)
