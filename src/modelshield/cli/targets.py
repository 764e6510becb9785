"""``modelshield targets`` lists the reference targets with their clean accuracy; ``modelshield checks`` the checks.

$ modelshield targets
$ modelshield targets --format json --no-build
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli.app import stderr

__all__ = ["register"]


class ListFormat(enum.StrEnum):
    text = "text"
    json = "json"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def targets_command(
    build: Annotated[bool, typer.Option(help="Train targets that are not cached yet, to show their accuracy.")] = True,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split and the training.")] = 0,
    output_format: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.text,
) -> None:
    """List the reference targets (zoo:NAME) with their clean train and test accuracy."""
    from modelshield.zoo import ZOO, status

    cache = os.environ.get("MODELSHIELD_CACHE_DIR")
    cache_dir = Path(cache) if cache else None
    rows = []
    for name in ZOO:
        if build and output_format is ListFormat.text and stderr.is_terminal:
            with stderr.status(f"Building zoo:{name}..."):
                rows.append(status(name, seed=seed, cache_dir=cache_dir, build=build))
        else:
            rows.append(status(name, seed=seed, cache_dir=cache_dir, build=build))
    if output_format is ListFormat.json:
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
