"""What the commands share: exit codes, the ``--format`` choices and the ``--fail-on`` threshold.

One vocabulary: formats are :class:`~modelshield.reporting.OutputFormat`, thresholds are
:class:`~modelshield.findings.Severity` (or ``never``), budgets are :class:`~modelshield.audit.interface.Budget`;
a command offers the subset of formats it can write. Typer is imported by the option factories only, so the quick
way into ``scan`` (:mod:`modelshield.cli.scan_core`) can use the rest without it.

>>> from modelshield.cli.options import exit_code, parse_fail_on
>>> exit_code([], parse_fail_on("high"))
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from modelshield.findings import Finding, Severity
from modelshield.reporting.interface import OutputFormat

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
    "FAIL_ON_CHOICES",
    "KEY_ALGORITHMS",
    "SEVERITIES",
    "OutputFormat",
    "choice_option",
    "exit_code",
    "fail_on_option",
    "format_option",
    "parse_fail_on",
    "text_or_json",
]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

#: Severity names, worst first.
SEVERITIES = tuple(s.value for s in Severity)

#: ``--fail-on`` values: a severity, or ``never`` (exit 0 whatever is found).
FAIL_ON_CHOICES = (*SEVERITIES, "never")

#: ``keygen --algorithm`` values: :class:`modelshield.supply_chain.keys.KeyAlgorithm` (a test keeps them equal;
#: importing the keys module here would cost every command its start-up).
KEY_ALGORITHMS = ("ed25519", "ecdsa-p256", "hybrid", "x25519", "x25519-mlkem768")


def _choice(values: Sequence[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in values:
            import typer

            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}.")
        return value

    return parse


def format_option(*formats: OutputFormat, help: str = "Output format.") -> Any:
    """A ``--format`` option offering ``formats`` (values of the one :class:`OutputFormat`)."""
    import typer

    values = [f.value for f in formats]
    parse = _choice(values)
    return typer.Option("--format", parser=lambda v: OutputFormat(parse(v)), metavar="|".join(values), help=help)


def text_or_json(help: str = "Output format.") -> Any:
    """A ``--format`` option offering ``text`` and ``json``."""
    return format_option(OutputFormat.TEXT, OutputFormat.JSON, help=help)


def choice_option(name: str, values: Sequence[str], *, help: str) -> Any:
    """An option ``name`` that takes one of ``values`` (shown as its metavar; anything else is a usage error)."""
    import typer

    return typer.Option(name, parser=_choice(values), metavar="|".join(values), help=help)


def fail_on_option(help: str = "Exit 1 when a finding reaches this severity (never: always 0).") -> Any:
    """A ``--fail-on`` option: a severity name or ``never``."""
    import typer

    return typer.Option("--fail-on", parser=_choice(FAIL_ON_CHOICES), metavar="|".join(FAIL_ON_CHOICES), help=help)


def parse_fail_on(value: str) -> Severity | None:
    """The threshold named by ``value``: a :class:`Severity`, or None for ``never``."""
    return None if value == "never" else Severity.parse(value)


def exit_code(findings: Iterable[Finding], fail_on: Severity | None) -> int:
    """1 when a finding reaches ``fail_on`` (never, when it is None), else 0."""
    if fail_on is None:
        return EXIT_CLEAN
    return EXIT_FINDINGS if any(f.severity >= fail_on for f in findings) else EXIT_CLEAN
