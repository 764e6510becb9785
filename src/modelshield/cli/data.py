"""``modelshield data``: record a dataset's provenance in a manifest, and diff datasets or manifests.

$ modelshield data manifest bundled:breast_cancer --source "scikit-learn 1.5 bundled copy"
$ modelshield data manifest clean.csv --source "clean.csv" --parent raw.manifest.json --transform "dropped NaN rows"
$ modelshield data diff breast_cancer.manifest.json edited.csv --format json

``diff`` takes manifests or datasets (``bundled:NAME``, CSV, Parquet, NPZ), told apart by content, and exits 0
when both hold the same records in the same order with the same schema, 1 when they differ, 2 on bad input.
Sign a manifest like any other file (``modelshield sign``).
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS
from modelshield.errors import FileFormatError

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.supply_chain.provenance import DataManifest, ManifestDiff

__all__ = ["register"]

_BUNDLED = "bundled:"
_LABEL_HELP = "Label column of a CSV or Parquet file (label array of an NPZ: default 'y')."


class DiffFormat(enum.StrEnum):
    text = "text"
    json = "json"


def _dataset(spec: str, label: str) -> Dataset:
    from modelshield.data import load_bundled, load_table

    if spec.startswith(_BUNDLED):
        return load_bundled(spec.removeprefix(_BUNDLED))
    return load_table(Path(spec), label=label)


def _manifest_or_dataset(spec: str, label: str) -> DataManifest:
    """A manifest file as it is, or a dataset (``bundled:NAME`` or a data file) recorded on the fly."""
    from modelshield.supply_chain.provenance import build_manifest, read_manifest

    if not spec.startswith(_BUNDLED):
        path = Path(spec)
        try:
            with path.open("rb") as fh:
                head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        except FileNotFoundError as exc:
            raise FileFormatError(f"{path} does not exist.", remedy="Check the path.") from exc
        except OSError as exc:
            raise FileFormatError(f"{path} cannot be read: {exc}.", remedy="Check the path.") from exc
        if head.startswith(b"{"):  # a JSON object: no CSV, Parquet or NPZ file starts so
            return read_manifest(path)
    return build_manifest(_dataset(spec, label), source=spec)


def manifest_command(
    dataset: Annotated[str, typer.Argument(help="bundled:NAME, or a CSV, Parquet or NPZ file.")],
    source: Annotated[str, typer.Option(help="Where the data came from: a URL or a description.")],
    parent: Annotated[Path | None, typer.Option(help="Manifest of the dataset this one was derived from.")] = None,
    transform: Annotated[str | None, typer.Option(help="How this dataset was derived from --parent.")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Manifest file to write (default: DATASET_NAME.manifest.json here).")
    ] = None,
    label: Annotated[str, typer.Option(help=_LABEL_HELP)] = "label",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output file if it exists.")] = False,
) -> None:
    """Record a dataset's schema, per-record digests, Merkle root and lineage in a manifest file."""
    from modelshield.supply_chain.provenance import build_manifest, write_manifest

    data = _dataset(dataset, label)
    manifest = build_manifest(data, source=source, parent=parent, transform=transform)
    out = output if output is not None else Path(f"{Path(data.name).name}.manifest.json")
    write_manifest(manifest, out, overwrite=overwrite)
    typer.echo(f"Wrote {out}: {manifest.n_rows} rows, Merkle root {manifest.merkle_root}")


def _text(a: DataManifest, b: DataManifest, diff: ManifestDiff) -> str:
    def rows(count: int, shown: tuple[int, ...], where: str) -> str:
        if not count:
            return "0"
        more = ", ..." if count > len(shown) else ""
        return f"{count} ({'row' if count == 1 else 'rows'} {', '.join(map(str, shown))}{more} of {where})"

    lines = [
        f"A: {a.name}, {a.n_rows} rows, Merkle root {a.merkle_root}",
        f"B: {b.name}, {b.n_rows} rows, Merkle root {b.merkle_root}",
        f"unchanged: {diff.unchanged}",
        f"added:     {rows(diff.added, diff.added_rows, 'B')}",
        f"removed:   {rows(diff.removed, diff.removed_rows, 'A')}",
        f"changed:   {rows(diff.changed, diff.changed_rows, 'both')}",
        f"order:     {'reordered' if diff.reordered else 'same'}",
        f"schema:    {'changed' if diff.schema_changed else 'same'}",
        f"labels:    {'changed' if diff.label_names_changed else 'same'}",
        f"result:    {diff.summary()}",
    ]
    return "\n".join(lines)


def diff_command(
    a: Annotated[str, typer.Argument(help="The old side: a manifest, bundled:NAME, or a CSV/Parquet/NPZ file.")],
    b: Annotated[str, typer.Argument(help="The new side, likewise.")],
    output_format: Annotated[DiffFormat, typer.Option("--format", help="Output format.")] = DiffFormat.text,
    label: Annotated[str, typer.Option(help=_LABEL_HELP)] = "label",
    limit: Annotated[int, typer.Option(min=0, help="Row indices to list per kind of difference.")] = 10,
    ignore_order: Annotated[bool, typer.Option(help="Exit 0 when only the order of the records differs.")] = False,
) -> None:
    """Diff two datasets or manifests record by record: added, removed, changed rows. Exit 1 when they differ."""
    from modelshield.supply_chain.provenance import diff_manifests

    left, right = _manifest_or_dataset(a, label), _manifest_or_dataset(b, label)
    diff = diff_manifests(left, right, limit=limit)
    if output_format is DiffFormat.json:
        typer.echo(json.dumps({"a": a, "b": b, **diff.to_dict()}, indent=2))
    else:
        typer.echo(_text(left, right, diff))
    same = diff.identical or (
        ignore_order and diff.same_records and not (diff.schema_changed or diff.label_names_changed)
    )
    raise typer.Exit(EXIT_CLEAN if same else EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    data_app = typer.Typer(name="data", help="Dataset provenance: manifests, lineage and diffs.", no_args_is_help=True)
    data_app.command("manifest")(manifest_command)
    data_app.command("diff")(diff_command)
    app.add_typer(data_app, name="data")
