"""``modelshield attacks`` lists the registered attacks: the built-in ones and those installed packages declare.

$ modelshield attacks
$ modelshield attacks --format json
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli.options import OutputFormat, text_or_json

__all__ = ["register"]


def attacks_command(
    output_format: Annotated[OutputFormat, text_or_json(help="Output format.")] = OutputFormat.TEXT,
) -> None:
    """List the registered attacks: name, family, and what each needs from a target."""
    from modelshield.attacks.registry import default_attack_registry

    rows = [(a.name, a.family.value, sorted(r.value for r in a.requires)) for a in default_attack_registry()]
    if output_format is OutputFormat.JSON:
        records = [{"name": name, "family": family, "requires": needs} for name, family, needs in rows]
        typer.echo(json.dumps(records, indent=2))
        return
    table = Table(title="Attacks")
    for column in ("attack", "family", "needs"):
        table.add_column(column, overflow="fold")
    for name, family, needs in rows:
        table.add_row(name, family, ", ".join(needs) or "-")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("attacks")(attacks_command)
