"""``modelshield targets`` lists the reference targets with their clean accuracy; ``modelshield checks`` the checks.

$ modelshield targets
$ modelshield targets --format json --no-build
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli._console import cache_dir, stderr
from modelshield.cli.options import OutputFormat, text_or_json

__all__ = ["register"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def targets_command(
    build: Annotated[bool, typer.Option(help="Train targets that are not cached yet, to show their accuracy.")] = True,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split and the training.")] = 0,
    output_format: Annotated[OutputFormat, text_or_json(help="Output format.")] = OutputFormat.TEXT,
) -> None:
    """List the reference targets (zoo:NAME) with their clean train and test accuracy."""
    from modelshield.zoo import ZOO, status

    cache = cache_dir()
    rows = []
    for name in ZOO:
        if build and output_format is OutputFormat.TEXT and stderr.is_terminal:
            with stderr.status(f"Building zoo:{name}..."):
                rows.append(status(name, seed=seed, cache_dir=cache, build=build))
        else:
            rows.append(status(name, seed=seed, cache_dir=cache, build=build))
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    console = Console()
    wide = console.width >= 120  # descriptions only where they fit
    table = Table(title="Reference targets")
    for column in ("target", "data", "model", "train acc.", "test acc."):
        table.add_column(column, no_wrap=True)
    if wide:
        table.add_column("description", overflow="fold")
    for row in rows:
        cells = [row.name, row.dataset, row.family, _pct(row.train_accuracy), _pct(row.test_accuracy)]
        table.add_row(*cells, *([row.description] if wide else []))
    console.print(table)


def checks_command() -> None:
    """List the audit checks and what each needs."""
    from modelshield.audit import default_registry

    table = Table(title="Audit checks")
    for column in ("check", "needs", "what it does"):
        table.add_column(column, overflow="fold")
    for check in default_registry():
        table.add_row(check.name, ", ".join(sorted(r.value for r in check.requires)) or "-", check.description)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets_command)
    app.command("checks")(checks_command)
