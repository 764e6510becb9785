"""``modelshield bom``: an ML bill of materials (CycloneDX 1.6 JSON) for a model, its data and the environment.

$ modelshield bom model.safetensors --data train.manifest.json --name digits-cnn --version 1.2 --output bom.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelshield._internal.atomic import write_text_atomic

__all__ = ["register"]


def bom_command(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="The model file, or the directory holding the model's files.")
    ],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            metavar="MANIFEST",
            help="Data manifest (from `modelshield data manifest`) of a data set (repeatable).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the BOM to this file instead of stdout.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Name of the model (default: its file or directory name).")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", metavar="TEXT", help="Version of the model.")] = None,
    task: Annotated[
        str | None, typer.Option(metavar="TEXT", help="What the model does (e.g. classification), for the model card.")
    ] = None,
) -> None:
    """Write a CycloneDX 1.6 ML-BOM: the model (identified by content, never loaded), data sets and libraries."""
    from modelshield.supply_chain.bom import build_bom, render_bom

    bom = build_bom(model, data_manifests=data or [], name=name, version=version, task=task)
    text = render_bom(bom) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)


def register(app: typer.Typer) -> None:
    """Add the ``bom`` command to ``app``."""
    app.command("bom")(bom_command)
