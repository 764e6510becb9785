"""Metrics and evidence shaped for people: nested values as tables, series that a chart draws left out.

    >>> from modelshield.reporting._metrics import Records, shape
    >>> shown = shape({"auc": 0.81234, "curve": [{"fraction": 0.01, "records": 13}, {"fraction": 0.05, "records": 67}]})
    >>> shown.rows[0]
    ('auc', '0.8123')
    >>> table = shown.rows[1][1]
    >>> isinstance(table, Records), table.columns, table.rows[1]
    (True, ('fraction', 'records'), ('0.05', '67'))

The HTML and terminal renderers show what :func:`shape` returns; report.json keeps the raw values. The rules:

- a number or a string is one cell (integers with thousands separators, other numbers to four significant digits;
  true and false as yes and no, a missing value as "none");
- a list of records (mappings) is a table with a column per key; a mapping of two or more records that share
  their keys is the same table with a row per key;
- any other mapping is a table of key/value rows;
- a list of numbers that one of the finding's charts draws is left out with a note naming the chart, and so is a
  list of more than :data:`SHORT` values; a shorter list is one cell, its values separated by commas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from modelshield.findings import Chart, JSONValue

__all__ = ["SHORT", "Omitted", "Pairs", "Records", "Shown", "shape", "text"]

#: Lists longer than this are left out of tables (report.json has them).
SHORT = 12


@dataclass(frozen=True)
class Omitted:
    """A value left out of the table, and where to find it instead."""

    note: str


@dataclass(frozen=True)
class Pairs:
    """Key/value rows."""

    rows: tuple[tuple[str, Shown], ...]


@dataclass(frozen=True)
class Records:
    """A table with a column per key and a row per record; ``names`` name the rows when the records came keyed
    (a mapping of records), else it is empty."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Shown, ...], ...]
    names: tuple[str, ...] = ()


Shown: TypeAlias = str | Omitted | Pairs | Records


def text(value: JSONValue) -> str:
    """One value for people: ``12,000``, ``0.9822``, ``yes``, ``none``; lists and mappings as compact text."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {text(v)}" for k, v in value.items())
    return ", ".join(text(v) for v in value)


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4)  # metrics are often the chart's values, rounded


def _drawn_in(values: Sequence[object], charts: Sequence[Chart]) -> str | None:
    """The title of a chart that draws ``values`` as one of its series, if any."""
    if len(values) < 2 or not all(_number(v) for v in values):
        return None
    numbers = [float(v) for v in values]  # type: ignore[arg-type]
    for chart in charts:
        for series in chart.series.values():
            if len(series) == len(numbers) and all(_same(a, b) for a, b in zip(series, numbers, strict=True)):
                return chart.title
    return None


def _list(values: Sequence[JSONValue], charts: Sequence[Chart]) -> Shown | None:
    """A list or the values of a mapping left out (drawn in a chart, or long), else None."""
    title = _drawn_in(values, charts)
    if title is not None:
        return Omitted(f"{len(values)} values, drawn in the chart “{title}”")
    if len(values) > SHORT:
        return Omitted(f"{len(values)} values, in report.json")
    return None


def _records(
    records: Sequence[Mapping[str, JSONValue]], charts: Sequence[Chart], names: tuple[str, ...] = ()
) -> Records:
    columns = tuple(dict.fromkeys(str(k) for r in records for k in r))
    rows = tuple(tuple(_shape(r[c], charts) if c in r else "" for c in columns) for r in records)
    return Records(columns, rows, names)


def _shape(value: JSONValue, charts: Sequence[Chart]) -> Shown:
    if value is None or isinstance(value, str | int | float):
        return text(value)
    if isinstance(value, Mapping):
        items = list(value.values())
        if items and all(_scalar(v) for v in items):
            omitted = _list(items, charts)
            if omitted is not None:
                return omitted
        inner = [v for v in items if isinstance(v, Mapping)]
        if len(inner) == len(items) >= 2 and len({tuple(v) for v in inner}) == 1:  # records sharing their keys
            return _records(inner, charts, names=tuple(str(k) for k in value))
        return Pairs(tuple((str(k), _shape(v, charts)) for k, v in value.items()))
    if all(_scalar(v) for v in value):
        return _list(value, charts) or (text(value) if value else "none")
    records = [v for v in value if isinstance(v, Mapping)]
    if len(records) == len(value) <= SHORT:
        return _records(records, charts)
    if len(records) == len(value):
        return Omitted(f"{len(value)} records, in report.json")
    return Omitted(f"{len(value)} nested values, in report.json")  # lists of lists: images, matrices


def shape(
    values: Mapping[str, JSONValue], charts: Sequence[Chart] = (), *, drawn: Mapping[str, str] | None = None
) -> Pairs:
    """``values`` (a finding's metrics or evidence, a report's configuration) as key/value rows for people.

    ``charts`` are the finding's charts: series they draw are left out with a note. ``drawn`` maps keys shown
    elsewhere on the page to a note said instead (the evidence's ``examples``, drawn as images).
    """
    drawn = drawn or {}
    return Pairs(tuple((str(k), Omitted(drawn[k]) if k in drawn else _shape(v, charts)) for k, v in values.items()))
