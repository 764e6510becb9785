"""``modelshield data``: record a dataset's provenance in a manifest, diff datasets or manifests, and validate new
batches of a table against a schema inferred from trusted data.

$ modelshield data manifest bundled:breast_cancer --source "scikit-learn 1.5 bundled copy"
$ modelshield data manifest clean.csv --source "clean.csv" --parent raw.manifest.json --transform "dropped NaN rows"
$ modelshield data diff breast_cancer.manifest.json edited.csv --format json
$ modelshield data schema trusted.csv --label diagnosis --output trusted.schema.json
$ modelshield data validate batch.csv --schema trusted.schema.json --valid-out valid.csv --rejected-out rejected.csv

``diff`` takes manifests or datasets (``bundled:NAME``, CSV, Parquet, NPZ), told apart by content, and exits 0
when both hold the same records in the same order with the same schema, 1 when they differ, 2 on bad input.
Sign a manifest like any other file (``modelshield sign``). ``validate`` exits 0 when the batch passes, 1 when an
issue rejects rows or fails the batch, 2 on bad input (a missing file, a malformed schema, an unreadable table).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._console import BUNDLED, load_dataset
from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, OutputFormat, text_or_json
from modelshield.errors import FileFormatError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from modelshield.data.validation import TableSchema, ValidationReport
    from modelshield.supply_chain.provenance import DataManifest, ManifestDiff

__all__ = ["register"]

_BUNDLED = BUNDLED
_LABEL_HELP = "Label column of a CSV or Parquet file (label array of an NPZ: default 'y')."


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
    return build_manifest(load_dataset(spec, label), source=spec)


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

    data = load_dataset(dataset, label)
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
    output_format: Annotated[OutputFormat, text_or_json(help="Output format.")] = OutputFormat.TEXT,
    label: Annotated[str, typer.Option(help=_LABEL_HELP)] = "label",
    limit: Annotated[int, typer.Option(min=0, help="Row indices to list per kind of difference.")] = 10,
    ignore_order: Annotated[bool, typer.Option(help="Exit 0 when only the order of the records differs.")] = False,
) -> None:
    """Diff two datasets or manifests record by record: added, removed, changed rows. Exit 1 when they differ."""
    from modelshield.supply_chain.provenance import diff_manifests

    left, right = _manifest_or_dataset(a, label), _manifest_or_dataset(b, label)
    diff = diff_manifests(left, right, limit=limit)
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps({"a": a, "b": b, **diff.to_dict()}, indent=2))
    else:
        typer.echo(_text(left, right, diff))
    same = diff.identical or (
        ignore_order and diff.same_records and not (diff.schema_changed or diff.label_names_changed)
    )
    raise typer.Exit(EXIT_CLEAN if same else EXIT_FINDINGS)


def schema_command(
    trusted: Annotated[Path, typer.Argument(help="The trusted table: a CSV or Parquet file.")],
    label: Annotated[
        str | None, typer.Option(help="The label column: its classes become categories (at most --max-categories).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Schema file to write (default: TRUSTED_NAME.schema.json here).")
    ] = None,
    max_categories: Annotated[
        int, typer.Option(min=1, help="String columns with more distinct values than this are free text.")
    ] = 50,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output file if it exists.")] = False,
) -> None:
    """Infer a table schema (kinds, ranges, categories, missing values) from trusted data and write it as JSON."""
    from modelshield.data.validation import infer_schema, read_frame, write_schema

    out = output if output is not None else Path(f"{trusted.stem}.schema.json")
    if out.exists() and not overwrite:  # before reading a possibly large table
        raise InputError(
            f"{out} already exists; modelshield does not overwrite it unless asked to.",
            remedy="Choose another path with --output, or pass --overwrite.",
        )
    frame = read_frame(trusted)
    schema = infer_schema(frame, label=label, max_categories=max_categories, source=str(trusted))
    write_schema(schema, out, overwrite=overwrite)
    kinds = Counter(c.kind.value for c in schema.columns)
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    typer.echo(f"Wrote {out}: {len(schema.columns)} columns ({detail}) from {schema.n_rows} trusted rows")


def _table_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    """``frame`` as Parquet when ``path`` ends in ``.parquet``, else as CSV (tab-separated for ``.tsv``).

    CSV goes through pyarrow's writer when the ``data`` extra is installed (ten times faster than pandas' on a
    million rows; text quoted, booleans as ``true``/``false``), else through pandas.
    """
    import importlib.util

    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    if path.suffix.lower() == ".parquet":
        from modelshield._extras import require

        require("pyarrow", extra="data", feature="Writing Parquet files")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", index=False)
        return buffer.getvalue()
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        buffer = io.BytesIO()
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(delimiter=sep, quoting_style="needed"))
        except (pa.ArrowException, TypeError, ValueError):  # a column of mixed Python objects: pandas copes
            pass
        else:
            return buffer.getvalue()
    return frame.to_csv(index=False, sep=sep).encode("utf-8")


def _write_outputs(outputs: list[tuple[Path, pd.DataFrame]]) -> None:
    """Write every output atomically, or none: all are rendered first, and new ones are removed if a later fails."""
    from modelshield._internal.atomic import write_bytes_atomic

    rendered = [(path, _table_bytes(frame, path)) for path, frame in outputs]
    created: list[Path] = []
    try:
        for path, data in rendered:
            existed = path.exists()
            write_bytes_atomic(path, data)
            if not existed:
                created.append(path)
    except BaseException:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _check_output_paths(batch: Path, schema: Path, outputs: list[Path]) -> None:
    seen = {batch.resolve(): "the batch", schema.resolve(): "the schema"}
    for path in outputs:
        key = path.resolve()
        if key in seen:
            raise InputError(
                f"{path} is {seen[key]}; modelshield will not write an output over an input or another output.",
                remedy="Give --valid-out and --rejected-out paths of their own.",
            )
        if path.is_dir():
            raise InputError(f"{path} is a directory.", remedy="Give --valid-out and --rejected-out file paths.")
        seen[key] = "another output"


def _print_report(report: ValidationReport, batch: Path, schema_path: Path, schema: TableSchema) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout)
    if report.issues:
        table = Table(show_header=True, header_style="bold")
        table.add_column("column", overflow="fold")
        table.add_column("problem", overflow="fold")
        table.add_column("rows", justify="right")
        table.add_column("detail", overflow="fold")
        for issue in report.issues:
            examples = ", ".join(f"row {e.row}: {e.value}" for e in issue.examples)
            detail = issue.message + (f"\ne.g. {examples}" if examples else "")
            table.add_row(Text(issue.column), Text(issue.kind.value), Text(str(issue.count)), Text(detail))
        console.print(table)
    for w in report.warnings:
        console.print(
            Text(
                f"warning: {w.column}: the distribution differs from the trusted rows (KS distance >= "
                f"{w.statistic:.3g}, p <= {w.p_value:.2g}); a warning, not a rejection"
            ),
            soft_wrap=True,
        )
    verdict = "passed" if report.passed else "FAILED"
    console.print(
        Text(
            f"{batch}: {report.n_rows} rows checked against {schema_path} ({schema.n_rows} trusted rows): "
            f"{report.n_rejected} rejected, {report.n_rows - report.n_rejected} valid; "
            f"{len(report.issues)} issue(s), {len(report.warnings)} warning(s): {verdict}"
        ),
        soft_wrap=True,
    )


def validate_command(
    batch: Annotated[Path, typer.Argument(help="The batch to check: a CSV or Parquet file.")],
    schema: Annotated[Path, typer.Option(help="The schema file written by `modelshield data schema`.")],
    output_format: Annotated[OutputFormat, text_or_json(help="Output format.")] = OutputFormat.TEXT,
    valid_out: Annotated[
        Path | None, typer.Option(help="Write the rows no issue rejects here (CSV, or Parquet by suffix).")
    ] = None,
    rejected_out: Annotated[Path | None, typer.Option(help="Write the rejected rows here (CSV, or Parquet).")] = None,
    range_tolerance: Annotated[
        float,
        typer.Option(min=0.0, help="Widen each trusted range by this fraction of it on both sides (0: the extremes)."),
    ] = 0.0,
    missing_alpha: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Level of the test for a missing-value rate above the trusted one."),
    ] = 0.001,
    unlabelled: Annotated[
        bool, typer.Option("--unlabelled", help="The batch has no label column (data to predict on).")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Example rows to show per issue.")] = 5,
) -> None:
    """Check a batch against a schema: reject rows and columns that do not fit. Exit 1 when anything fails."""
    from modelshield.data.validation import read_frame, read_schema, validate

    outputs = [p for p in (valid_out, rejected_out) if p is not None]
    _check_output_paths(batch, schema, outputs)
    table_schema = read_schema(schema)
    frame = read_frame(batch, schema=table_schema)
    report = validate(
        frame,
        table_schema,
        range_tolerance=range_tolerance,
        missing_alpha=missing_alpha,
        require_label=not unlabelled,
        max_examples=limit,
    )
    pending: list[tuple[Path, pd.DataFrame]] = []
    if valid_out is not None:
        pending.append((valid_out, report.valid_rows()))
    if rejected_out is not None:
        pending.append((rejected_out, report.rejected_rows()))
    _write_outputs(pending)
    if output_format is OutputFormat.JSON:
        document = {
            "batch": str(batch),
            "schema": str(schema),
            **report.to_dict(),
            "valid_out": None if valid_out is None else str(valid_out),
            "rejected_out": None if rejected_out is None else str(rejected_out),
        }
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_report(report, batch, schema, table_schema)
        for path, rows in pending:
            typer.echo(f"Wrote {len(rows)} {'valid' if path == valid_out else 'rejected'} rows to {path}")
    raise typer.Exit(EXIT_CLEAN if report.passed else EXIT_FINDINGS)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    data_app = typer.Typer(
        name="data",
        help="Dataset provenance (manifests, lineage, diffs) and validation of new batches against a schema.",
        no_args_is_help=True,
    )
    data_app.command("manifest")(manifest_command)
    data_app.command("diff")(diff_command)
    data_app.command("schema")(schema_command)
    data_app.command("validate")(validate_command)
    from modelshield.cli.sanitize import sanitize_command

    data_app.command("sanitize")(sanitize_command)
    app.add_typer(data_app, name="data")
