"""``modelshield monitor``: monitoring commands; ``monitor drift`` compares a batch of data with the reference.

$ modelshield monitor drift --reference train.csv --current batch.csv --out drift.html
$ modelshield monitor drift --reference train.csv --current batch.csv --format json --label-column diagnosis

Each column of the reference (CSV or Parquet) is tested against the same column of the current batch: numeric
columns with the Kolmogorov-Smirnov test, text columns (and ``--categorical`` ones) with chi-squared, every column
with its PSI; p-values are adjusted across columns with Benjamini-Hochberg (see
:mod:`modelshield.monitoring.drift`). ``--label-column`` is left out of the columns and tested on its own (label
drift). The terminal shows a table of the columns, most significant first; ``--out`` writes a self-contained
HTML page with that table and, per column, the reference and current distributions overlaid.

Exit codes: 0 no drift, 1 drift in a column or the labels, 2 bad input (a missing or unreadable file, columns
that do not match, missing values), reported in one line before any test runs.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, OutputFormat, text_or_json
from modelshield.errors import InputError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd
    from markupsafe import Markup

    from modelshield.monitoring.drift import ColumnDrift, DriftReference, DriftResult

__all__ = ["drift_command", "register", "render_drift_html"]

_MAX_CHARTS = 40  # columns drawn, most significant first; the table lists them all
_MAX_CATEGORIES = 20  # categories drawn per chart (the commonest in the reference)
_HIST_BINS = 20


def _check_out(out: Path | None, overwrite: bool) -> None:
    if out is None:
        return
    if out.exists() and not overwrite:
        raise InputError(
            f"{out} already exists; modelshield does not overwrite it unless asked to.",
            remedy="Choose another path with --out, or pass --overwrite.",
        )
    if out.is_dir():
        raise InputError(f"{out} is a directory.", remedy="Pass a file path to --out, e.g. drift.html.")
    if not out.parent.is_dir():
        raise InputError(f"The folder of {out} does not exist.", remedy="Create it first, or choose another path.")


def _columns(
    reference: pd.DataFrame, current: pd.DataFrame, label: str | None, categorical: list[str], paths: tuple[Path, Path]
) -> tuple[list[str], dict[str, str]]:
    """The columns to test and their kinds; every mismatch between the files is refused here, before any test."""
    ref_path, cur_path = paths
    names = [str(c) for c in reference.columns]
    for frame, path in ((reference, ref_path), (current, cur_path)):
        if len(frame) < 2:
            raise InvalidInputError(f"{path} has {len(frame)} row(s).", remedy="Pass a table with at least two rows.")
        if label is not None and label not in frame.columns:
            raise InvalidInputError(
                f"{path} has no label column {label!r}.", remedy="Check --label-column, or leave it out."
            )
    missing = [c for c in names if c not in current.columns]
    if missing:
        raise InvalidInputError(
            f"{cur_path} lacks column(s) of the reference: {missing[:10]}.",
            remedy="Pass a batch with the reference's columns (extra columns are ignored).",
        )
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise InvalidInputError(f"--categorical names unknown column(s) {unknown[:10]}.", remedy="Check the names.")
    features = [c for c in names if c != label]
    if not features:
        raise InvalidInputError(f"{ref_path} has no column besides the label.", remedy="Pass the feature columns.")
    kinds: dict[str, str] = {}
    for c in features:
        ref_numeric = reference[c].dtype.kind in "iuf"
        cur_numeric = current[c].dtype.kind in "iuf"
        if c in categorical or not ref_numeric:
            kinds[c] = "categorical"
            continue
        if not cur_numeric:
            raise InvalidInputError(
                f"Column {c!r} is numeric in {ref_path} but not in {cur_path} (dtype {current[c].dtype}).",
                remedy="Fix the batch, or test the column as categorical with --categorical.",
            )
        kinds[c] = "numeric"
    for frame, path in ((reference, ref_path), (current, cur_path)):
        gaps = [c for c in features if kinds[c] == "numeric" and frame[c].isna().any()]
        if gaps:
            raise InvalidInputError(
                f"{path} has missing values in numeric column(s) {gaps[:10]}.",
                remedy="Impute or drop the missing values before testing for drift.",
            )
    return features, kinds


def _table(frame: pd.DataFrame, features: list[str], kinds: dict[str, str]) -> dict[str, Any]:
    return {
        c: frame[c].to_numpy() if kinds[c] == "numeric" else frame[c].astype(str).to_numpy(dtype=str) for c in features
    }


def _fmt(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    if value != 0 and abs(value) < 10**-(digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _rows(result: DriftResult) -> list[list[str]]:
    from modelshield.reporting.interface import printable

    return [
        [
            printable(c.name),
            c.kind.value,
            c.test,
            _fmt(c.statistic),
            _fmt(c.p_value),
            _fmt(c.q_value),
            _fmt(c.effect),
            f"{_fmt(c.psi)} ({c.psi_level})",
            "DRIFT" if c.drifted else "-",
        ]
        for c in result.by_q_value()
    ]


_HEADER = ["column", "kind", "test", "statistic", "p", "q (BH)", "effect", "PSI", "drift"]


def _text(result: DriftResult, paths: tuple[Path, Path], label: str | None) -> str:
    rows = [_HEADER, *_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = [
        f"Reference: {paths[0]} ({result.n_reference} rows)   Current: {paths[1]} ({result.n_current} rows)",
        f"alpha {result.alpha} (false discovery rate across columns), minimum effect {result.min_effect}",
        "",
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    drifted = result.drifted_columns
    listed = f": {', '.join(drifted)}" if drifted else ""
    lines.append(f"Drifted columns: {len(drifted)} of {len(result.columns)}{listed}")
    if result.prediction is not None:
        p = result.prediction
        lines.append(
            f"Label {label!r}: chi-squared {_fmt(p.statistic)}, p {_fmt(p.p_value)}, TVD {_fmt(p.effect)}"
            + (" -> DRIFT" if p.drifted else "")
        )
    from modelshield.reporting.interface import printable

    return printable("\n".join(lines))


def _chart(column: ColumnDrift, ref: Any, cur: Any) -> Markup:
    """Reference and current distributions of one column, as grouped bars (shares of rows)."""
    import numpy as np

    from modelshield.findings import Chart
    from modelshield.reporting.svg import render_chart

    if column.kind.value == "numeric":
        ref_f, cur_f = np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
        low, high = float(min(ref_f.min(), cur_f.min())), float(max(ref_f.max(), cur_f.max()))
        edges = np.linspace(low, high if high > low else low + 1.0, _HIST_BINS + 1)
        labels: tuple[str, ...] = tuple(f"{(a + b) / 2:.3g}" for a, b in itertools.pairwise(edges))
        ref_share = np.histogram(ref_f, edges)[0] / ref_f.size
        cur_share = np.histogram(cur_f, edges)[0] / cur_f.size
    else:
        values, counts = np.unique(np.asarray(ref, dtype=str), return_counts=True)
        shown = [str(v) for v in values[np.argsort(-counts, kind="stable")][:_MAX_CATEGORIES]]
        ref_s, cur_s = np.asarray(ref, dtype=str), np.asarray(cur, dtype=str)
        labels = tuple(shown)
        ref_share = np.array([(ref_s == v).mean() for v in shown])
        cur_share = np.array([(cur_s == v).mean() for v in shown])
    chart = Chart(
        title=f"{column.name}: {column.test} q = {_fmt(column.q_value)}, effect {_fmt(column.effect)}",
        kind="bar",
        x=labels,
        series={"reference": tuple(float(v) for v in ref_share), "current": tuple(float(v) for v in cur_share)},
        x_label=column.name,
        y_label="share of rows",
    )
    return render_chart(chart)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift report: {{ current }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #1a202c; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #cbd5e0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drift td { background: #fff5eb; font-weight: 600; }
.verdict { padding: 0.5rem 1rem; border-radius: 0.3rem; color: #fff; display: inline-block; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr)); gap: .5rem 1.5rem; }
figure.chart { margin: 1rem 0; }
figure.chart figcaption { font-weight: 600; font-size: .95rem; overflow-wrap: anywhere; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .1rem 1rem; margin: .25rem 0; padding: 0;
  font-size: .85rem; }
.swatch { display: inline-block; width: .75em; height: .75em; margin-right: .35em; border-radius: 2px; }
svg.chart { display: block; width: 100%; max-width: 480px; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: currentColor; }
svg .grid { stroke: #cbd5e0; stroke-width: 1; } svg .axis { stroke: #718096; stroke-width: 1; }
@media (prefers-color-scheme: dark) {
  body { background: #1a202c; color: #e2e8f0; } tr.drift td { background: #3c2a1a; }
}
</style></head><body>
<h1>Drift report</h1>
<p>Reference <code>{{ reference }}</code> ({{ result.n_reference }} rows), current <code>{{ current }}</code>
({{ result.n_current }} rows). Numeric columns: Kolmogorov-Smirnov; categorical columns: chi-squared; PSI for all.
p-values adjusted across columns with Benjamini-Hochberg; a column drifts when q &lt; {{ result.alpha }} and its
effect size (KS D, or total variation distance) is at least {{ result.min_effect }}.</p>
<p class="verdict" style="background: {{ '#b35900' if result.drifted else '#2f855a' }}">
{{ drifted|length }} of {{ result.columns|length }} columns drifted
{%- if prediction %}; label {{ 'drifted' if prediction.drifted else 'stable' }}{% endif %}</p>
<h2>Columns, most significant first</h2>
<table><thead><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row, c in rows %}<tr{% if c.drifted %} class="drift"{% endif %}>
{%- for cell in row %}<td{% if 3 <= loop.index0 <= 7 %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% if prediction %}<h2>Label {{ label }}</h2>
<p>chi-squared {{ fmt(prediction.statistic) }}, p {{ fmt(prediction.p_value) }}, total variation distance
{{ fmt(prediction.effect) }}, PSI {{ fmt(prediction.psi) }}:
{{ 'drift' if prediction.drifted else 'no drift' }}.</p>{% endif %}
<h2>Distributions</h2>
{% if omitted %}<p>The {{ omitted }} least significant columns are not drawn.</p>{% endif %}
<div class="charts">
{% for chart in charts %}{{ chart }}
{% endfor %}</div>
</body></html>
"""


def render_drift_html(
    result: DriftResult,
    reference: dict[str, Any],
    current: dict[str, Any],
    *,
    names: tuple[str, str],
    label: str | None = None,
) -> str:
    """The drift report as one self-contained HTML page (no scripts, no network); every text is escaped."""
    import jinja2

    from modelshield.reporting.interface import printable

    def finalize(value: object) -> object:
        from markupsafe import Markup

        return printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, finalize=finalize)
    ordered = result.by_q_value()
    charts = [_chart(c, reference[c.name], current[c.name]) for c in ordered[:_MAX_CHARTS]]
    return env.from_string(_PAGE).render(
        result=result,
        reference=names[0],
        current=names[1],
        header=_HEADER,
        rows=list(zip(_rows(result), ordered, strict=True)),
        drifted=result.drifted_columns,
        prediction=result.prediction,
        label=label or "",
        charts=charts,
        omitted=max(len(ordered) - _MAX_CHARTS, 0),
        fmt=_fmt,
    )


def _compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: list[str],
    kinds: dict[str, str],
    label: str | None,
    alpha: float,
    min_effect: float,
) -> tuple[DriftResult, DriftReference, dict[str, Any], dict[str, Any]]:
    from modelshield.monitoring.drift import DriftReference

    ref_cols, cur_cols = _table(reference, features, kinds), _table(current, features, kinds)
    ref_labels = None if label is None else reference[label].astype(str).to_numpy(dtype=str)
    cur_labels = None if label is None else current[label].astype(str).to_numpy(dtype=str)
    drift = DriftReference(alpha=alpha, min_effect=min_effect).fit(ref_cols, kinds=kinds, predictions=ref_labels)
    return drift.compare(cur_cols, predictions=cur_labels), drift, ref_cols, cur_cols


def drift_command(
    reference: Annotated[Path, typer.Option(help="The reference table (training data): CSV or Parquet.")],
    current: Annotated[Path, typer.Option(help="The current batch, with the reference's columns: CSV or Parquet.")],
    out: Annotated[Path | None, typer.Option(help="Write an HTML report with the table and plots here.")] = None,
    output_format: Annotated[OutputFormat, text_or_json(help="Terminal output format.")] = OutputFormat.TEXT,
    alpha: Annotated[
        float, typer.Option(min=1e-12, max=0.999999, help="False discovery rate across columns (Benjamini-Hochberg).")
    ] = 0.05,
    min_effect: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Smallest effect size (KS D or total variation distance).")
    ] = 0.05,
    label_column: Annotated[
        str | None, typer.Option(help="The label column: left out of the columns, tested for label drift.")
    ] = None,
    categorical: Annotated[
        list[str] | None, typer.Option(help="Test this numeric column as categorical (repeat for several).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the --out file if it exists.")] = False,
) -> None:
    """Test every column of a batch for drift against the reference (KS, chi-squared, PSI; BH across columns).

    Exit 1 when a column or the label drifted."""
    from modelshield._internal.atomic import write_text_atomic
    from modelshield.data.validation import read_frame

    _check_out(out, overwrite)
    ref_frame, cur_frame = read_frame(reference), read_frame(current)
    features, kinds = _columns(ref_frame, cur_frame, label_column, list(categorical or []), (reference, current))
    result, _, ref_cols, cur_cols = _compare(
        ref_frame, cur_frame, features=features, kinds=kinds, label=label_column, alpha=alpha, min_effect=min_effect
    )
    if out is not None:
        page = render_drift_html(result, ref_cols, cur_cols, names=(str(reference), str(current)), label=label_column)
        write_text_atomic(out, page)
    if output_format is OutputFormat.JSON:
        document: dict[str, Any] = {"reference": str(reference), "current": str(current), "label": label_column}
        document |= result.to_dict()
        document["out"] = None if out is None else str(out)
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        typer.echo(_text(result, (reference, current), label_column))
        if out is not None:
            typer.echo(f"Wrote {out}")
    raise typer.Exit(EXIT_FINDINGS if result.drifted else EXIT_CLEAN)


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` command group to ``app``."""
    monitor_app = typer.Typer(
        name="monitor", help="Monitoring of production data: drift against the reference.", no_args_is_help=True
    )
    monitor_app.command("drift")(drift_command)
    app.add_typer(monitor_app, name="monitor")
