"""``modelshield scan``: scan model files and directories for code that would run when they are loaded.

$ modelshield scan model.pt models/ --format sarif --output scan.sarif --fail-on high
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from modelshield._internal.atomic import write_text_atomic
from modelshield.cli.options import OutputFormat, exit_code, fail_on_option, format_option, parse_fail_on
from modelshield.errors import FileFormatError, InvalidInputError
from modelshield.reporting.terminal import SEVERITY_STYLE

if TYPE_CHECKING:
    from modelshield.supply_chain.scan.policy import Policy

__all__ = ["register"]


def _policy(path: Path | None) -> Policy:
    from modelshield.supply_chain.scan.policy import DEFAULT_POLICY

    if path is None:
        return DEFAULT_POLICY
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


def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="Model files or directories (scanned recursively).")],
    output_format: Annotated[
        OutputFormat, format_option(OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.SARIF)
    ] = OutputFormat.TEXT,
    output: Annotated[Path | None, typer.Option(help="Write the output to this file.")] = None,
    fail_on: Annotated[str, fail_on_option()] = "high",
    policy: Annotated[
        Path | None, typer.Option(help="JSON or TOML file with 'allow' and 'deny' lists of module.name patterns.")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of files to skip (repeatable).")] = None,
) -> None:
    """Scan model files for code that runs on load (pickle, PyTorch, joblib, NumPy, archives, ...)."""
    from modelshield.reporting.sarif import sarif_log
    from modelshield.supply_chain.scan import ScanOptions, scan_paths

    report = scan_paths(paths, exclude=exclude or [], options=ScanOptions(policy=_policy(policy)))
    if output_format is OutputFormat.JSON:
        text = json.dumps(report.to_dict(), indent=2)
    elif output_format is OutputFormat.SARIF:
        text = json.dumps(
            sarif_log(
                report.findings,
                default_location=str(paths[0]),
                complete=True,
                automation_id="modelshield/scan/",
            ),
            indent=2,
        )
    else:
        console = Console(file=sys.stdout)
        table = Table(show_header=True, header_style="bold")
        for column in ("severity", "location", "finding"):
            table.add_column(column, overflow="fold")
        for finding in sorted(report.findings, key=lambda f: -f.severity.rank):
            table.add_row(
                Text(finding.severity.value, style=SEVERITY_STYLE[finding.severity]),
                Text(finding.location or ""),
                Text(finding.title),
            )
        if report.findings:
            console.print(table)
        worst = report.max_severity
        console.print(
            f"{len(report.files)} file(s) scanned in {report.duration_s:.2f}s; "
            f"{len(report.findings)} finding(s); worst: {worst.value if worst else 'none'}",
            highlight=False,
        )
        text = ""
    if text:
        if output is None:
            sys.stdout.write(text + "\n")
        else:
            write_text_atomic(output, text + "\n")
    raise typer.Exit(exit_code(report.findings, parse_fail_on(fail_on)))


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
