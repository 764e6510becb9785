"""``modelshield scan``: scan model files and directories for code that would run when they are loaded.

$ modelshield scan model.pt models/ --format sarif --output scan.sarif --fail-on high

The scan is :func:`modelshield.supply_chain.scan.scan_paths`; its output is rendered by
:mod:`modelshield.reporting.scan`. Exit codes: 0 clean, 1 a finding reaches ``--fail-on``, 2 an error.

This module is the command as Typer sees it (help, parsing, error messages); its body is
:func:`modelshield.cli.scan_core.run_scan`, which plain uses of the command reach without Typer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelshield.cli.options import OutputFormat, fail_on_option, format_option
from modelshield.cli.scan_core import FORMATS, ScanArgs, run_scan

__all__ = ["register"]


def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="Model files or directories (scanned recursively).")],
    output_format: Annotated[OutputFormat, format_option(*FORMATS)] = OutputFormat.TEXT,
    output: Annotated[Path | None, typer.Option(help="Write the output to this file.")] = None,
    fail_on: Annotated[str, fail_on_option()] = "high",
    policy: Annotated[
        Path | None, typer.Option(help="JSON or TOML file with 'allow' and 'deny' lists of module.name patterns.")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of files to skip (repeatable).")] = None,
    source_root: Annotated[
        Path | None,
        typer.Option(help="SARIF names files relative to this directory (default: the current directory)."),
    ] = None,
) -> None:
    """Scan model files for code that runs on load (pickle, PyTorch, joblib, NumPy, archives, ...)."""
    args = ScanArgs(tuple(paths), output_format, output, fail_on, policy, tuple(exclude or ()), source_root)
    raise typer.Exit(run_scan(args))


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
