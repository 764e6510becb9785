"""``modelshield scan``: scan model files and directories for code that would run when they are loaded.

$ modelshield scan model.pt models/ --format sarif --output scan.sarif --fail-on high

The scan is :func:`modelshield.supply_chain.scan.scan_paths`; its output is rendered by
:mod:`modelshield.reporting.scan`. Exit codes: 0 clean, 1 a finding reaches ``--fail-on``, 2 an error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli.options import OutputFormat, exit_code, fail_on_option, format_option, parse_fail_on
from modelshield.errors import FileFormatError, InvalidInputError

if TYPE_CHECKING:
    from modelshield.supply_chain.scan.policy import Policy

__all__ = ["register"]


def _policy(path: Path | None) -> Policy:
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
    from modelshield.reporting.scan import render_scan_json, render_scan_sarif, render_scan_text
    from modelshield.supply_chain.scan import ScanOptions, scan_paths

    report = scan_paths(paths, exclude=exclude or [], options=ScanOptions(policy=_policy(policy)))
    if output_format is OutputFormat.TEXT and output is None:
        from rich.console import Console

        render_scan_text(report, Console(file=sys.stdout))
    else:
        if output_format is OutputFormat.JSON:
            text = render_scan_json(report)
        elif output_format is OutputFormat.SARIF:
            text = render_scan_sarif(report, default_location=str(paths[0]))
        else:  # the table, as plain text without terminal styles
            import io

            from rich.console import Console

            buffer = io.StringIO()
            render_scan_text(report, Console(file=buffer, width=120, no_color=True))
            text = buffer.getvalue().rstrip("\n")
        if output is None:
            sys.stdout.write(text + "\n")
        else:
            from modelshield._internal.atomic import write_text_atomic

            write_text_atomic(output, text + "\n")
    raise typer.Exit(exit_code(report.findings, parse_fail_on(fail_on)))


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
