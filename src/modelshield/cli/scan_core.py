"""The body of ``modelshield scan``, and a quick way in that needs neither Typer nor Rich.

    >>> from modelshield.cli.scan_core import parse_scan_args
    >>> parse_scan_args(["model.pt", "--fail-on", "medium"]).fail_on
    'medium'
    >>> parse_scan_args(["--help"]) is None  # anything else is Typer's to parse (and to explain)
    True

A CI gate runs ``modelshield scan FILE`` once per file, so its start-up is most of its cost: Typer with Click,
and Rich for a table, take about half of it. :func:`modelshield.cli.main` therefore hands ``scan`` arguments to
:func:`parse_scan_args` first. That parser knows exactly the options of the Typer command
(:mod:`modelshield.cli.scan`; tests/cli/test_scan_core.py checks that the two agree), accepts only well-formed
uses of them, and returns None for everything else: help, global options, unknown options, a missing or
invalid value. Those go to Typer, which parses them the usual way and explains the mistake, so the quick way in
never changes what a command means or which message a mistake gets. Both ways run :func:`run_scan`.

Rich is imported only when there are findings to tabulate; a clean scan prints its summary line directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from modelshield.cli.options import FAIL_ON_CHOICES, exit_code, parse_fail_on
from modelshield.errors import FileFormatError, InvalidInputError
from modelshield.reporting.interface import OutputFormat

if TYPE_CHECKING:
    from modelshield.reporting.scan import ScanResults
    from modelshield.supply_chain.scan.policy import Policy

__all__ = ["FORMATS", "OPTIONS", "ScanArgs", "parse_scan_args", "run_scan"]

#: The ``--format`` values ``scan`` writes.
FORMATS = (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.SARIF)

#: Each option of ``scan`` that takes a value, and whether it may be repeated.
OPTIONS: dict[str, bool] = {
    "--format": False,
    "--output": False,
    "--fail-on": False,
    "--policy": False,
    "--exclude": True,
    "--source-root": False,
}


class ScanArgs(NamedTuple):
    """The parsed arguments of ``modelshield scan``, with the command's defaults."""

    paths: tuple[Path, ...]
    output_format: OutputFormat = OutputFormat.TEXT
    output: Path | None = None
    fail_on: str = "high"
    policy: Path | None = None
    exclude: tuple[str, ...] = ()
    source_root: Path | None = None


def parse_scan_args(argv: list[str]) -> ScanArgs | None:
    """The arguments after ``scan`` when they are a plain, valid use of its options; otherwise None."""
    paths: list[Path] = []
    values: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-"):
            if not token:
                return None
            paths.append(Path(token))
            i += 1
            continue
        name, equals, value = token.partition("=")
        if name not in OPTIONS:
            return None  # --help, --, a short option, an unknown one, or a path that starts with '-'
        if not equals:
            if i + 1 == len(argv):
                return None
            value = argv[i + 1]
            i += 1
        if not value or value.startswith("-"):
            return None
        values.setdefault(name, []).append(value)
        i += 1
    if not paths:
        return None
    last = {name: given[-1] for name, given in values.items()}  # a single-valued option given twice: the last
    if last.get("--format", "text") not in {f.value for f in FORMATS}:
        return None
    if last.get("--fail-on", "high") not in FAIL_ON_CHOICES:
        return None
    return ScanArgs(
        paths=tuple(paths),
        output_format=OutputFormat(last.get("--format", "text")),
        output=Path(last["--output"]) if "--output" in last else None,
        fail_on=last.get("--fail-on", "high"),
        policy=Path(last["--policy"]) if "--policy" in last else None,
        exclude=tuple(values.get("--exclude", ())),
        source_root=Path(last["--source-root"]) if "--source-root" in last else None,
    )


def load_policy(path: Path | None) -> Policy:
    """The default policy, extended by the ``allow`` and ``deny`` lists of a JSON or TOML file."""
    from modelshield.supply_chain.scan.policy import DEFAULT_POLICY

    if path is None:
        return DEFAULT_POLICY
    import json
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except FileNotFoundError as exc:
        raise FileFormatError(f"Policy file {path} does not exist.", remedy="Check the path.") from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise FileFormatError(f"Policy file {path} is not valid JSON or TOML: {exc}") from exc
    allow, deny = data.get("allow", []), data.get("deny", [])
    if not all(isinstance(v, str) for v in [*allow, *deny]):
        raise InvalidInputError(
            f"Policy file {path}: 'allow' and 'deny' must be lists of 'module.name' or 'module.*' strings."
        )
    return DEFAULT_POLICY.with_rules(safe=allow, dangerous=deny)


def run_scan(args: ScanArgs) -> int:
    """Scan, write the output, and return the exit code (0 clean, 1 a finding reaches ``--fail-on``)."""
    from modelshield.reporting.scan import render_scan_json, render_scan_sarif, scan_summary
    from modelshield.supply_chain.scan import ScanOptions, scan_paths

    report = scan_paths(args.paths, exclude=args.exclude, options=ScanOptions(policy=load_policy(args.policy)))
    if args.output_format is OutputFormat.JSON:
        text = render_scan_json(report)
    elif args.output_format is OutputFormat.SARIF:
        root = args.source_root if args.source_root is not None else Path.cwd()
        text = render_scan_sarif(report, default_location=str(args.paths[0]), source_root=root)
    elif report.findings:
        text = _table(report, styled=args.output is None)
    else:
        text = scan_summary(report)
    if args.output is not None:
        from modelshield._internal.atomic import write_text_atomic

        write_text_atomic(args.output, text + "\n")
    elif text:
        sys.stdout.write(text + "\n")
    return exit_code(report.findings, parse_fail_on(args.fail_on))


def _table(report: ScanResults, *, styled: bool) -> str:
    """The findings table: printed with terminal styles when ``styled`` (and "" returned), else as plain text."""
    import io

    from rich.console import Console

    from modelshield.reporting.scan import render_scan_text

    if styled:
        render_scan_text(report, Console(file=sys.stdout))
        return ""
    buffer = io.StringIO()
    render_scan_text(report, Console(file=buffer, width=120, no_color=True))
    return buffer.getvalue().rstrip("\n")
