"""Validate new batches of a table against a schema inferred from trusted data; reject and report what does not fit.

    >>> import pandas as pd
    >>> from modelshield.data import infer_schema, validate
    >>> trusted = pd.DataFrame({"age": [34, 51, 29, 62], "plan": ["basic", "pro", "basic", "pro"]})
    >>> schema = infer_schema(trusted)
    >>> [(c.name, c.kind.value, c.low, c.high, c.categories) for c in schema.columns]
    [('age', 'integer', 29, 62, ()), ('plan', 'categorical', None, None, ('basic', 'pro'))]
    >>> report = validate(pd.DataFrame({"age": [40, -3], "plan": ["pro", "gold"]}), schema)
    >>> report.passed, [(i.column, i.kind.value, i.count) for i in report.issues]
    (False, [('age', 'out_of_range', 1), ('plan', 'unknown_category', 1)])
    >>> report.valid_rows()
       age plan
    0   40  pro

This works on raw tables (pandas DataFrames, or CSV and Parquet files read by :func:`read_frame`), not on
:class:`~modelshield.data.Dataset`, which refuses missing values: validation has to see them.

What the schema records, per column of the trusted table (:func:`infer_schema`):

- its kind: ``boolean``; ``integer`` (an integer dtype, or floats that are all whole numbers where pandas turned an
  integer column with gaps into floats); ``float``; ``datetime`` (a datetime dtype, or strings that all parse as
  ISO 8601 dates); ``categorical`` (strings with at most ``max_categories`` distinct values, of which the trusted
  rows have seen all but a negligible share, see below; and the ``label`` column when it has at most that many
  classes); ``text`` (any other strings: only checked for missing values). Integer columns stay numeric however few
  values they take: only the label is treated as categories.
- the observed minimum and maximum (numbers; datetimes as ISO 8601 in UTC), the allowed categories, the number of
  missing values, 101 quantiles of numeric columns (for the shift warning), and the number of trusted rows.

A string column is categorical only when the Good–Turing estimate of the chance that a new row holds a value the
trusted rows never showed (the share of trusted rows whose value occurs once) is at most 1%: above that, enforcing
the observed categories would reject clean rows, so the column is ``text``.

What :func:`validate` reports, as :class:`Issue` objects of an :class:`IssueKind`:

- column-level: a ``missing_column`` and a ``wrong_type`` column (no value of it can be read as the trusted kind)
  reject every row, since no row can be used without that column; an ``extra_column`` and a ``missing_rate``
  (more missing values than in the trusted data, beyond chance) fail the batch but reject no row.
- row-level, each rejecting its rows: ``unexpected_missing`` (a missing value in a column that had none),
  ``invalid_value`` (text in a numeric column, a fraction in an integer column, an unparseable date or boolean),
  ``non_finite`` (infinite numbers), ``out_of_range``, ``unknown_category``.

Ranges are the trusted extremes. ``range_tolerance`` widens them by that fraction of the trusted range on each
side. The default, 0, is strict on purpose: the trusted rows are the only evidence of what is valid. The price is
known: a fresh row from the same continuous distribution falls outside the extremes of ``n`` trusted rows with
probability ``2/(n+1)`` per column, so expect that share of clean rows to be rejected per numeric column, or pass a
tolerance: it lets values through up to that many range-widths beyond the extremes, so keep it below the distance
at which the errors you fear (a sentinel such as ``-999``, a unit error) would land.

The missing-value rate of a column that had missing values is compared with the trusted rate by a one-sided
Fisher exact test (is the batch's rate higher than the trusted one beyond chance, given both row counts?), at
level ``missing_alpha`` (default 0.001) per column; a fixed margin would be too strict for small trusted samples
and too lax for large ones.

The distribution shift warning (a warning, never a rejection) compares each numeric column with the trusted
quantiles: the two-sample Kolmogorov–Smirnov distance between the batch and the trusted rows cannot be computed
without the trusted rows, but a lower bound on it can be, from the 101 stored quantiles (inverse empirical CDF), and
it is tested against the asymptotic KS bound at level ``shift_alpha``; a lower bound keeps the test conservative.

Row numbers in reports are positions, counting from 0 (in a CSV file, row 0 is the first line after the header).
Example values are shown as ``repr`` text, truncated to 40 characters, so reports stay small and printable.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelshield._extras import require
from modelshield._internal.atomic import write_text_atomic
from modelshield._internal.fields import json_field
from modelshield.data.files import _PARQUET_MAGIC, _ZIP_MAGICS, _check_file, _head, _one_line
from modelshield.errors import FileFormatError, InputError, InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCHEMA_FORMAT",
    "SCHEMA_FORMAT_VERSION",
    "ColumnKind",
    "ColumnSchema",
    "Issue",
    "IssueExample",
    "IssueKind",
    "IssueLevel",
    "ShiftWarning",
    "TableSchema",
    "ValidationReport",
    "infer_schema",
    "read_frame",
    "read_schema",
    "validate",
    "write_schema",
]

logger = logging.getLogger(__name__)

SCHEMA_FORMAT = "modelshield.table-schema"
SCHEMA_FORMAT_VERSION = 1
N_QUANTILES = 101  # 0%, 1%, ..., 100%
_UNSEEN_MAX = 0.01  # Good–Turing share of unseen values above which a string column is text, not categories
_VALUE_CHARS = 40
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_OTHER_FORMATS = {
    ".npz": "an NPZ archive of arrays",
    ".npy": "a NumPy array",
    ".pkl": "a pickle",
    ".pickle": "a pickle",
    ".joblib": "a joblib pickle",
    ".json": "JSON",
    ".jsonl": "JSON lines",
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".feather": "a Feather file",
    ".arrow": "an Arrow IPC file",
    ".orc": "an ORC file",
    ".avro": "an Avro file",
    ".h5": "an HDF5 file",
    ".hdf5": "an HDF5 file",
}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")
_SCHEMA_REMEDY = "Regenerate it with `modelshield data schema TRUSTED.csv`; do not edit schemas by hand."


class ColumnKind(enum.StrEnum):
    """What a column holds, as inferred from the trusted rows."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOAT = "float"
    DATETIME = "datetime"
    CATEGORICAL = "categorical"
    TEXT = "text"

    @property
    def numeric(self) -> bool:
        """Integers and floats: columns with a numeric range and quantiles."""
        return self in (ColumnKind.INTEGER, ColumnKind.FLOAT)


class IssueLevel(enum.StrEnum):
    """Whether an issue concerns a column as a whole or individual rows."""

    COLUMN = "column"
    ROW = "row"


class IssueKind(enum.StrEnum):
    """The problems :func:`validate` reports. See the module documentation for which ones reject rows."""

    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    WRONG_TYPE = "wrong_type"
    MISSING_RATE = "missing_rate"
    UNEXPECTED_MISSING = "unexpected_missing"
    INVALID_VALUE = "invalid_value"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CATEGORY = "unknown_category"

    @property
    def level(self) -> IssueLevel:
        """Column-level or row-level."""
        column_level = (IssueKind.MISSING_COLUMN, IssueKind.EXTRA_COLUMN, IssueKind.WRONG_TYPE, IssueKind.MISSING_RATE)
        return IssueLevel.COLUMN if self in column_level else IssueLevel.ROW

    @property
    def rejects_rows(self) -> bool:
        """Whether the issue rejects rows: all but an extra column and a high missing-value rate do."""
        return self not in (IssueKind.EXTRA_COLUMN, IssueKind.MISSING_RATE)


# --------------------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ColumnSchema:
    """One column of a :class:`TableSchema`: its kind and what the trusted rows held.

    ``low`` and ``high`` are the observed extremes: numbers for numeric columns, ISO 8601 text (UTC) for datetime
    columns, ``None`` otherwise (or when the trusted rows had no value). ``categories`` are the allowed values of a
    categorical or boolean column, as text. ``quantiles`` are the 0%, 1%, ..., 100% quantiles (inverse empirical
    CDF) of a numeric column's finite values. ``required`` columns must be present in a batch; ``nullable`` ones
    may have missing values, as the trusted rows did (``n_missing`` of them).
    """

    name: str
    kind: ColumnKind
    n_missing: int = 0
    nullable: bool = False
    required: bool = True
    low: float | str | None = None
    high: float | str | None = None
    categories: tuple[str, ...] = ()
    quantiles: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ColumnKind(self.kind))
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        where = f"Column {self.name!r}"
        if self.n_missing < 0:
            raise InvalidParameterError(f"{where}: n_missing is {self.n_missing}, below 0.")
        if self.n_missing > 0 and not self.nullable:
            raise InvalidParameterError(f"{where} had {self.n_missing} missing values but is not nullable.")
        if (self.low is None) != (self.high is None):
            raise InvalidParameterError(f"{where}: give both low and high, or neither.")
        if self.low is not None and self.high is not None:
            if self.kind.numeric:
                if not all(isinstance(v, int | float) and math.isfinite(v) for v in (self.low, self.high)):
                    raise InvalidParameterError(f"{where}: low and high must be finite numbers.")
            elif self.kind is ColumnKind.DATETIME:
                if not (isinstance(self.low, str) and isinstance(self.high, str)):
                    raise InvalidParameterError(f"{where}: low and high must be ISO 8601 timestamps.")
                _timestamp(self.low, where)
                _timestamp(self.high, where)
            else:
                raise InvalidParameterError(f"{where}: a {self.kind.value} column has no range.")
            if _order_key(self.low) > _order_key(self.high):
                raise InvalidParameterError(f"{where}: low {self.low!r} is above high {self.high!r}.")
        if self.categories and self.kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            raise InvalidParameterError(f"{where}: a {self.kind.value} column has no categories.")
        if not all(isinstance(c, str) for c in self.categories) or len(set(self.categories)) != len(self.categories):
            raise InvalidParameterError(f"{where}: categories must be distinct strings.")
        if self.quantiles:
            q = np.asarray(self.quantiles)
            if not self.kind.numeric or len(q) != N_QUANTILES or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
                raise InvalidParameterError(
                    f"{where}: quantiles must be {N_QUANTILES} finite, non-decreasing numbers of a numeric column."
                )

    def to_dict(self, n_rows: int) -> dict[str, Any]:
        """A JSON-ready dict; ``n_rows`` (the schema's) gives the derived ``missing_fraction``."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "required": self.required,
            "nullable": self.nullable,
            "n_missing": self.n_missing,
            "missing_fraction": self.n_missing / n_rows if n_rows else 0.0,
            "low": self.low,
            "high": self.high,
            "categories": list(self.categories),
            "quantiles": list(self.quantiles),
        }


@dataclass(frozen=True)
class TableSchema:
    """What a trusted table held, column by column, and how many rows it had. Build with :func:`infer_schema`."""

    columns: tuple[ColumnSchema, ...]
    n_rows: int
    label: str | None = None
    source: str = ""
    format_version: int = SCHEMA_FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise InvalidParameterError("Schema column names must be unique.")
        if self.n_rows < 1:
            raise InvalidParameterError(f"A schema needs at least one trusted row, got n_rows={self.n_rows}.")
        too_many = [c.name for c in self.columns if c.n_missing > self.n_rows]
        if too_many:
            raise InvalidParameterError(f"Column(s) {too_many} have more missing values than the {self.n_rows} rows.")
        if self.label is not None and self.label not in names:
            raise InvalidParameterError(f"The label column {self.label!r} is not one of the schema's columns.")

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSchema:
        """The column called ``name``; :class:`InvalidParameterError` if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise InvalidParameterError(f"The schema has no column {name!r}; it has {list(self.names)}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": SCHEMA_FORMAT,
            "format_version": self.format_version,
            "n_rows": self.n_rows,
            "label": self.label,
            "source": self.source,
            "columns": [c.to_dict(self.n_rows) for c in self.columns],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: object, *, where: str = "The schema") -> TableSchema:
        """Check and read a dict from :meth:`to_dict`; :class:`FileFormatError` if it is not a valid schema."""
        return _parse_schema(data, where)

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "The schema") -> TableSchema:
        """Read :meth:`to_json`'s output, with the checks of :meth:`from_dict`."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FileFormatError(f"{where} is not valid JSON: {_one_line(exc)}.", remedy=_SCHEMA_REMEDY) from exc
        return _parse_schema(data, where)


def _bad(where: str, problem: str) -> FileFormatError:
    return FileFormatError(f"{where} is not a valid table schema: {problem}.", remedy=_SCHEMA_REMEDY)


_SCHEMA_KEYS = {"format", "format_version", "n_rows", "label", "source", "columns"}
_COLUMN_KEYS = {
    "name",
    "kind",
    "required",
    "nullable",
    "n_missing",
    "missing_fraction",
    "low",
    "high",
    "categories",
    "quantiles",
}


def _get(data: Mapping[str, object], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    return json_field(data, key, kind, lambda problem: _bad(where, problem))


def _parse_column(raw: object, where: str) -> ColumnSchema:
    if not isinstance(raw, dict):
        raise _bad(where, f"a column is a JSON {type(raw).__name__}, not an object")
    name = _get(raw, "name", str, where)
    at = f"{where}, column {name!r},"
    unknown = sorted(set(raw) - _COLUMN_KEYS)
    if unknown:
        raise _bad(at, f"unknown field(s) {unknown}")
    kind_text = _get(raw, "kind", str, at)
    try:
        kind = ColumnKind(kind_text)
    except ValueError:
        raise _bad(at, f"kind {kind_text!r} is not one of {[k.value for k in ColumnKind]}") from None
    numbers = (int, float, str, type(None))
    categories = _get(raw, "categories", list, at)
    quantiles = _get(raw, "quantiles", list, at)
    if not all(isinstance(q, int | float) and not isinstance(q, bool) for q in quantiles):
        raise _bad(at, "'quantiles' must be a list of numbers")
    try:
        return ColumnSchema(
            name=name,
            kind=kind,
            n_missing=_get(raw, "n_missing", int, at),
            nullable=_get(raw, "nullable", bool, at),
            required=_get(raw, "required", bool, at),
            low=_get(raw, "low", numbers, at),
            high=_get(raw, "high", numbers, at),
            categories=tuple(categories),
            quantiles=tuple(quantiles),
        )
    except InvalidParameterError as exc:
        raise _bad(where, exc.message.rstrip(".")) from exc


def _parse_schema(data: object, where: str) -> TableSchema:
    if not isinstance(data, dict):
        raise _bad(where, f"it holds a JSON {type(data).__name__}, not an object")
    if data.get("format") != SCHEMA_FORMAT:
        raise _bad(where, f"its 'format' is {data.get('format')!r}, not {SCHEMA_FORMAT!r}")
    version = data.get("format_version")
    if type(version) is not int or version != SCHEMA_FORMAT_VERSION:
        raise FileFormatError(
            f"{where} has table schema format version {version!r}; this modelshield reads version "
            f"{SCHEMA_FORMAT_VERSION}.",
            remedy="Use the modelshield release that wrote it, or regenerate it with `modelshield data schema`.",
        )
    unknown = sorted(set(data) - _SCHEMA_KEYS)
    if unknown:
        raise _bad(where, f"unknown field(s) {unknown}")
    columns = tuple(_parse_column(c, where) for c in _get(data, "columns", list, where))
    try:
        return TableSchema(
            columns=columns,
            n_rows=_get(data, "n_rows", int, where),
            label=_get(data, "label", (str, type(None)), where),
            source=_get(data, "source", str, where),
            format_version=version,
        )
    except InvalidParameterError as exc:
        raise _bad(where, exc.message.rstrip(".")) from exc


def write_schema(schema: TableSchema, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``schema`` as indented JSON, atomically; an existing file is replaced only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(
            f"{path} already exists; modelshield does not overwrite it unless asked to.",
            remedy="Choose another path, or pass overwrite=True.",
            cli_remedy="Choose another path, or pass --overwrite.",
        )
    write_text_atomic(path, schema.to_json(indent=1) + "\n")
    logger.info("wrote table schema %s (%d columns, %d rows)", path, len(schema.columns), schema.n_rows)


def read_schema(path: str | Path) -> TableSchema:
    """Read and check a schema file written by :func:`write_schema`; :class:`FileFormatError` if it is not one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileFormatError(f"Schema {path} does not exist.", remedy="Check the path.") from exc
    except OSError as exc:
        raise FileFormatError(f"Schema {path} cannot be read: {_one_line(exc)}.", remedy="Check the path.") from exc
    return TableSchema.from_json(raw, where=f"Schema {path}")


# ---------------------------------------------------------------------------------------------------- reading


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_frame(path: str | Path, *, schema: TableSchema | None = None) -> pd.DataFrame:
    """A CSV or Parquet file as a raw DataFrame, missing values kept; never unpickles.

    Parquet is recognised by its content (``PAR1``); anything else not named like another format is read as CSV
    (``.tsv`` tab-separated; ``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.zip`` decompressed). With ``schema``, its
    text, datetime and categorical columns are read as text, so that ``"007"`` stays ``"007"``; categories that
    are all numbers are left to pandas, so that ``1.0`` and ``1`` are the same class.
    """
    import pandas as pd

    path = Path(path)
    _check_file(path)
    head = _head(path)
    suffix = path.suffix.lower()
    if head == _PARQUET_MAGIC:
        pyarrow = require("pyarrow", extra="data", feature="Reading Parquet files")
        try:
            return pd.read_parquet(path, engine="pyarrow")
        except (pyarrow.ArrowException, ValueError, OSError) as exc:
            raise FileFormatError(f"{path} is not a readable Parquet file: {_one_line(exc)}") from exc
    if suffix == ".parquet":
        raise FileFormatError(
            f"{path} is named like a Parquet file but its content is not one.",
            remedy="Check the file; it may be truncated, or of another format.",
        )
    remedy = "Export the table as CSV or Parquet."
    if suffix in _OTHER_FORMATS:
        raise FileFormatError(
            f"{path} looks like {_OTHER_FORMATS[suffix]}; validation reads CSV or Parquet.", remedy=remedy
        )
    if head[:1] == b"\x80":  # pickle protocols 2 to 5; no text file starts with this byte
        raise FileFormatError(
            f"{path} looks like a pickle, which loads only by running code from it; modelshield never unpickles.",
            remedy=remedy,
        )
    if head.startswith(_ZIP_MAGICS) and suffix != ".zip":
        raise FileFormatError(
            f"{path} is a zip archive (NPZ, Excel, ...); validation reads CSV or Parquet.", remedy=remedy
        )
    dtype: dict[str, type[str]] = {}
    if schema is not None:
        for c in schema.columns:
            text_kinds = (ColumnKind.TEXT, ColumnKind.DATETIME)
            if c.kind in text_kinds or (
                c.kind is ColumnKind.CATEGORICAL and not all(_is_number_text(v) for v in c.categories)
            ):
                dtype[c.name] = str
    sep = "\t" if suffix == ".tsv" or path.name.lower().endswith(tuple(f".tsv{s}" for s in _COMPRESSED)) else ","
    try:
        # low_memory=False: type each column from all its rows, not chunk by chunk (no mixed-type columns).
        return pd.read_csv(path, sep=sep, engine="c", low_memory=False, dtype=dtype or None)
    except (ValueError, OSError) as exc:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError
        raise FileFormatError(f"{path} is not a readable CSV file: {_one_line(exc)}") from exc


# -------------------------------------------------------------------------------------------------- inference


def _order_key(value: float | str) -> float:
    if isinstance(value, str):
        return float(_timestamp(value, "A bound").value)
    return float(value)


def _timestamp(text: str, where: str) -> pd.Timestamp:
    import pandas as pd

    try:
        ts: Any = pd.Timestamp(text)
    except ValueError as exc:
        raise InvalidParameterError(f"{where}: {text!r} is not an ISO 8601 timestamp.") from exc
    if ts is pd.NaT:
        raise InvalidParameterError(f"{where}: a bound cannot be NaT.")
    utc: pd.Timestamp = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return utc


def _columns(frame: pd.DataFrame) -> dict[str, int]:
    """Column name (as text) -> position; refuses duplicate names, which would make the checks ambiguous."""
    names = [str(c) for c in frame.columns]
    positions = {name: j for j, name in enumerate(names)}
    if len(positions) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(
            f"The table has duplicate column names: {duplicates[:10]}.", remedy="Give every column a distinct name."
        )
    return positions


def _category_text(series: pd.Series) -> pd.Series:
    """Each value as category text: numbers as in labels (``2.0`` -> ``"2"``), ``True``/``False``, strings as is."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.map({True: "True", False: "False"})
    if pd.api.types.is_integer_dtype(dtype):
        if isinstance(dtype, np.dtype):  # no missing values possible: one vectorised conversion
            return series.astype(str)
        return series.astype(object).map(str, na_action="ignore")
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.full(len(values), np.nan, dtype=object)
        whole = np.isfinite(values) & (np.round(values) == values) & (np.abs(values) < 2.0**53)
        out[whole] = values[whole].astype(np.int64).astype(str)
        other = ~whole & ~np.isnan(values)
        out[other] = [repr(float(v)) for v in values[other]]
        return pd.Series(out, index=series.index)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return series
    return series.map(_scalar_text, na_action="ignore")


def _scalar_text(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating):
        number = float(value)
        whole = math.isfinite(number) and number == round(number) and abs(number) < 2**53
        return str(int(number)) if whole else repr(number)
    return str(value)


def _sorted_categories(present: pd.Series) -> tuple[str, ...]:
    """Distinct values as category text; numbers in numeric order, text in code-point order."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
        return tuple(_category_text(present.drop_duplicates().sort_values()).tolist())
    return tuple(sorted(set(_category_text(present).tolist())))


def _string_kind(present: pd.Series, max_categories: int) -> ColumnKind:
    import pandas as pd

    if len(present) == 0:
        return ColumnKind.TEXT
    text = _category_text(present)
    counts = text.value_counts(sort=False)
    distinct = counts.index.to_series()
    if bool(distinct.str.match(_ISO_DATE.pattern).all()):
        parsed = pd.to_datetime(distinct, format="ISO8601", utc=True, errors="coerce")
        if not bool(parsed.isna().any()):
            return ColumnKind.DATETIME
    unseen = int((counts == 1).sum()) / len(present)  # Good–Turing: chance that the next value is a new one
    if len(counts) <= max_categories and unseen <= _UNSEEN_MAX:
        return ColumnKind.CATEGORICAL
    return ColumnKind.TEXT


def _infer_kind(series: pd.Series, present: pd.Series, max_categories: int) -> ColumnKind:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnKind.BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        return ColumnKind.INTEGER
    if pd.api.types.is_float_dtype(dtype):
        values = present.to_numpy(dtype=np.float64)
        gaps = len(present) < len(series)  # pandas reads an integer column with gaps as floats
        whole = len(values) > 0 and bool(np.all(np.isfinite(values) & (np.round(values) == values)))
        return ColumnKind.INTEGER if gaps and whole else ColumnKind.FLOAT
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ColumnKind.DATETIME
    inferred = pd.api.types.infer_dtype(present, skipna=True)
    if inferred == "boolean":
        return ColumnKind.BOOLEAN
    if inferred == "integer":
        return ColumnKind.INTEGER
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        values = pd.to_numeric(present).to_numpy(dtype=np.float64)
        whole = len(values) > 0 and bool(np.all(np.isfinite(values) & (np.round(values) == values)))
        return ColumnKind.INTEGER if whole else ColumnKind.FLOAT
    if inferred in ("datetime64", "datetime"):
        return ColumnKind.DATETIME
    return _string_kind(present, max_categories)


def _infer_column(name: str, series: pd.Series, *, is_label: bool, max_categories: int) -> ColumnSchema:
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    missing = series.isna()
    n_missing = int(missing.sum())
    present = series[~missing.to_numpy()]
    kind = _infer_kind(series, present, max_categories)
    if is_label and kind is not ColumnKind.DATETIME and 0 < present.nunique() <= max_categories:
        kind = ColumnKind.CATEGORICAL  # a classifier's label: its classes are categories, however encoded
    low: float | str | None = None
    high: float | str | None = None
    categories: tuple[str, ...] = ()
    quantiles: tuple[float, ...] = ()
    if kind.numeric:
        values = _numbers(present)[0]
        finite = values[np.isfinite(values)]
        if len(finite):
            if kind is ColumnKind.INTEGER:
                low, high = int(finite.min()), int(finite.max())
            else:
                low, high = float(finite.min()), float(finite.max())
            grid = np.linspace(0.0, 1.0, N_QUANTILES)
            quantiles = tuple(float(q) for q in np.quantile(finite, grid, method="inverted_cdf"))
    elif kind is ColumnKind.DATETIME:
        stamps = _datetimes(present)[0].dropna()
        if len(stamps):
            low, high = stamps.min().isoformat(), stamps.max().isoformat()
    elif kind is ColumnKind.BOOLEAN:
        flags, _ = _booleans(present)
        categories = tuple(sorted({"True" if f else "False" for f in flags.dropna().tolist()}))
    elif kind is ColumnKind.CATEGORICAL:
        categories = _sorted_categories(present)
    return ColumnSchema(
        name=name,
        kind=kind,
        n_missing=n_missing,
        nullable=n_missing > 0,
        required=True,
        low=low,
        high=high,
        categories=categories,
        quantiles=quantiles,
    )


def infer_schema(
    frame: pd.DataFrame, *, label: str | None = None, max_categories: int = 50, source: str = ""
) -> TableSchema:
    """The schema of a trusted table: each column's kind, range, categories and missing values.

    ``label`` names the label column, which is categorical when it has at most ``max_categories`` classes.
    String columns with more distinct values than ``max_categories`` are free text. ``source`` is recorded as
    where the trusted data came from.
    """
    if max_categories < 1:
        raise InvalidParameterError(f"max_categories must be at least 1, got {max_categories}.")
    positions = _columns(frame)
    if len(frame) == 0:
        raise InvalidInputError(
            "The trusted table has no rows.", remedy="Infer the schema from a table with trusted rows."
        )
    if frame.shape[1] == 0:
        raise InvalidInputError("The trusted table has no columns.", remedy="Pass the table with its header row.")
    if label is not None and label not in positions:
        shown = ", ".join(list(positions)[:20]) + (f", ... ({len(positions) - 20} more)" if len(positions) > 20 else "")
        raise InvalidInputError(
            f"The trusted table has no label column {label!r}; its columns are: {shown}.",
            remedy="Name the label column with --label (label= in Python), or leave it out.",
        )
    columns = tuple(
        _infer_column(name, frame.iloc[:, j], is_label=name == label, max_categories=max_categories)
        for name, j in positions.items()
    )
    return TableSchema(columns=columns, n_rows=len(frame), label=label, source=source)


# ------------------------------------------------------------------------------------------------- coercions


def _numbers(series: pd.Series) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Values as float64 (NaN where missing or unreadable), and where a present value is not a number."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype):  # includes booleans: 0 and 1
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, np.zeros(len(values), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        values = np.full(len(series), np.nan)
        return values, series.notna().to_numpy()
    coerced = pd.to_numeric(series, errors="coerce")
    values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    return values, np.isnan(values) & series.notna().to_numpy()


def _datetimes(series: pd.Series) -> tuple[pd.Series, NDArray[np.bool_]]:
    """Values as UTC timestamps (NaT where missing or unreadable), and where a present value is not a date."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        return stamps, np.zeros(len(series), dtype=bool)
    present = series.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(dtype):
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]"), present
    text = series.astype(object).map(str, na_action="ignore")
    stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    return stamps, stamps.isna().to_numpy() & present


def _booleans(series: pd.Series) -> tuple[pd.Series, NDArray[np.bool_]]:
    """Values as booleans (None where missing or unreadable), and where a present value is not a boolean.

    Accepted: booleans, the numbers 0 and 1, and the text ``true``/``false`` in any case.
    """
    import pandas as pd

    present = series.notna().to_numpy()
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(object), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        parsed = np.full(len(values), None, dtype=object)
        parsed[values == 1] = True
        parsed[values == 0] = False
        flags = pd.Series(parsed, index=series.index)
    else:
        table = {"true": True, "false": False, "1": True, "0": False}
        flags = series.map(
            lambda v: v if isinstance(v, bool | np.bool_) else table.get(str(v).strip().lower()),
            na_action="ignore",
        )
    return flags.astype(object), flags.isna().to_numpy() & present


# ----------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class IssueExample:
    """One affected row: its position in the batch (from 0) and its value as short, printable text."""

    row: int
    value: str


@dataclass(frozen=True)
class Issue:
    """A problem with one column of the batch: its kind, how many rows it affects, and a few examples."""

    column: str
    kind: IssueKind
    count: int
    message: str
    examples: tuple[IssueExample, ...] = ()

    @property
    def level(self) -> IssueLevel:
        """Column-level or row-level."""
        return self.kind.level

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "column": self.column,
            "kind": self.kind.value,
            "level": self.level.value,
            "rejects_rows": self.kind.rejects_rows,
            "count": self.count,
            "message": self.message,
            "examples": [{"row": e.row, "value": e.value} for e in self.examples],
        }


@dataclass(frozen=True)
class ShiftWarning:
    """A numeric column whose distribution differs from the trusted one beyond chance; a warning, not a rejection.

    ``statistic`` is a lower bound on the two-sample Kolmogorov–Smirnov distance between the batch and the trusted
    rows (from the stored quantiles), ``p_value`` the asymptotic KS tail bound at that distance.
    """

    column: str
    statistic: float
    p_value: float
    n_trusted: int
    n_batch: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "column": self.column,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "n_trusted": self.n_trusted,
            "n_batch": self.n_batch,
        }


@dataclass(frozen=True, eq=False)
class ValidationReport:
    """What :func:`validate` found in a batch: the issues, the rows rejected, and shift warnings.

    ``rejected`` is a read-only boolean mask over the batch's rows (by position). :meth:`valid_rows` and
    :meth:`rejected_rows` give the batch's rows on either side of it.
    """

    n_rows: int
    issues: tuple[Issue, ...]
    rejected: NDArray[np.bool_]
    warnings: tuple[ShiftWarning, ...] = ()
    range_tolerance: float = 0.0
    missing_alpha: float = 0.001
    shift_alpha: float = 0.001
    schema_rows: int = 0
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        """True when there is no issue at all (shift warnings do not count)."""
        return not self.issues

    @property
    def n_rejected(self) -> int:
        """How many rows are rejected."""
        return int(self.rejected.sum())

    def _rows(self, mask: NDArray[np.bool_]) -> pd.DataFrame:
        if self.frame is None:
            raise InvalidParameterError("This report holds no table to select rows from.")
        return self.frame.iloc[np.flatnonzero(mask)]

    def valid_rows(self) -> pd.DataFrame:
        """The batch's rows that no issue rejects, with their original index and every column."""
        return self._rows(~self.rejected)

    def rejected_rows(self) -> pd.DataFrame:
        """The batch's rows that an issue rejects."""
        return self._rows(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the outcome (the rows themselves are not included)."""
        return {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_rejected": self.n_rejected,
            "n_valid": self.n_rows - self.n_rejected,
            "schema_rows": self.schema_rows,
            "range_tolerance": self.range_tolerance,
            "missing_alpha": self.missing_alpha,
            "shift_alpha": self.shift_alpha,
            "issues": [i.to_dict() for i in self.issues],
            "warnings": [w.to_dict() for w in self.warnings],
        }


def _show(value: Any) -> str:
    """A value as short printable text: ``repr`` for text (escapes control characters), truncated."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.api.types.is_scalar(value)) and pd.isna(value)):
        return "<missing>"
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value) if isinstance(value, str | float) else str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


class _Collector:
    """Gathers issues and the rejected-row mask while the columns are checked."""

    def __init__(self, n_rows: int, max_examples: int) -> None:
        self.rejected = np.zeros(n_rows, dtype=bool)
        self.issues: list[Issue] = []
        self.max_examples = max_examples

    def column(self, column: str, kind: IssueKind, count: int, message: str) -> None:
        if kind.rejects_rows:
            self.rejected[:] = True
        self.issues.append(Issue(column, kind, count, message))

    def rows(
        self, column: str, kind: IssueKind, mask: NDArray[np.bool_], series: pd.Series | None, message: str
    ) -> None:
        count = int(mask.sum())
        if not count:
            return
        where = np.flatnonzero(mask)[: self.max_examples]
        shown = series.iloc[where].tolist() if series is not None else [None] * len(where)
        examples = tuple(IssueExample(int(r), _show(v)) for r, v in zip(where, shown, strict=True))
        self.rejected |= mask
        self.issues.append(Issue(column, kind, count, message, examples))

    def wrong_type(self, column: str, kind: ColumnKind, series: pd.Series, present: NDArray[np.bool_]) -> None:
        where = np.flatnonzero(present)[: self.max_examples]
        examples = tuple(
            IssueExample(int(r), _show(v)) for r, v in zip(where, series.iloc[where].tolist(), strict=True)
        )
        self.rejected[:] = True
        message = f"none of its {int(present.sum())} values can be read as {kind.value}; every row is rejected"
        self.issues.append(Issue(column, IssueKind.WRONG_TYPE, len(self.rejected), message, examples))


def _missing_rate_p(trusted_missing: int, trusted_rows: int, batch_missing: int, batch_rows: int) -> float:
    """One-sided Fisher exact test: P(at least ``batch_missing`` of the missing values fall in the batch)."""
    from scipy.stats import hypergeom

    total_missing = trusted_missing + batch_missing
    p = hypergeom.sf(batch_missing - 1, trusted_rows + batch_rows, total_missing, batch_rows)
    return float(min(1.0, max(0.0, p)))


def _ks_lower_bound(quantiles: NDArray[np.float64], values: NDArray[np.float64]) -> float:
    """A lower bound on the KS distance between ``values`` and the sample whose quantiles these are.

    The quantiles are the inverse empirical CDF at 0, 1/100, ..., 1. At each distinct quantile value ``g``, first
    reached at ``p_first`` and last at ``p_last``, the trusted CDF satisfies ``p_last <= F(g) <= p_last + 0.01``
    and ``p_first - 0.01 <= F(g-) <= p_first``; the batch's CDF is exact. The distance from the batch's CDF to
    those intervals bounds the KS distance from below.
    """
    grid = np.linspace(0.0, 1.0, len(quantiles))
    step = grid[1] - grid[0]
    distinct, first = np.unique(quantiles, return_index=True)
    last = np.searchsorted(quantiles, distinct, side="right") - 1
    ordered = np.sort(values)  # one sort, then 2 x 101 binary searches: faster than binning a million values
    at_or_below = np.searchsorted(ordered, distinct, side="right") / len(values)
    below = np.searchsorted(ordered, distinct, side="left") / len(values)
    p_last, p_first = grid[last], grid[first]
    gaps = np.concatenate(
        [at_or_below - (p_last + step), p_last - at_or_below, below - p_first, (p_first - step) - below, [0.0]]
    )
    return float(gaps.max())


def _shift(col: ColumnSchema, values: NDArray[np.float64], trusted: int, alpha: float) -> ShiftWarning | None:
    m = len(values)
    if not col.quantiles or m == 0 or trusted == 0:
        return None
    d = _ks_lower_bound(np.asarray(col.quantiles), values)
    p = min(1.0, 2.0 * math.exp(-2.0 * d * d * trusted * m / (trusted + m)))
    if p >= alpha:
        return None
    return ShiftWarning(col.name, round(d, 6), p, trusted, m)


def _outside(low: object, high: object, checked: int, trusted: int) -> str:
    """The message of an out-of-range issue, with how many rows chance alone would put outside the extremes.

    A row exchangeable with ``trusted`` rows (drawn from the same continuous distribution) falls outside their
    extremes with probability ``2 / (trusted + 1)``; ties and a tolerance make that an upper bound.
    """
    expected = 2 * checked / (trusted + 1)
    low, high = (f"{v:.10g}" if isinstance(v, float) else v for v in (low, high))
    return (
        f"outside [{low}, {high}]; by chance alone, up to about {expected:.3g} of {checked} rows drawn like the "
        f"{trusted} trusted ones would be"
    )


def _check_missing(
    col: ColumnSchema, missing: NDArray[np.bool_], trusted_rows: int, out: _Collector, missing_alpha: float
) -> None:
    n, n_missing = len(missing), int(missing.sum())
    if not col.nullable:
        out.rows(col.name, IssueKind.UNEXPECTED_MISSING, missing, None, "missing, but the trusted rows had no gap here")
    elif n_missing:
        p = _missing_rate_p(col.n_missing, trusted_rows, n_missing, n)
        if p < missing_alpha:
            message = (
                f"{n_missing} of {n} values missing ({n_missing / n:.2%}); the trusted rows had "
                f"{col.n_missing / trusted_rows:.2%} (one-sided Fisher exact test p = {p:.2g} < {missing_alpha:g})"
            )
            out.column(col.name, IssueKind.MISSING_RATE, n_missing, message)


def _check_numbers(
    col: ColumnSchema,
    series: pd.Series,
    values: NDArray[np.float64],
    invalid: NDArray[np.bool_],
    ok: NDArray[np.bool_],
    out: _Collector,
    range_tolerance: float,
    trusted: int,
) -> NDArray[np.bool_]:
    """Row checks of a numeric column; returns where the values are usable numbers (in range or not)."""
    finite = np.isfinite(values)
    if col.kind is ColumnKind.INTEGER:
        fraction = ok & finite & (np.round(values) != values)
        invalid = invalid | fraction
        ok = ok & ~fraction
    what = "not a whole number" if col.kind is ColumnKind.INTEGER else "not a number"
    out.rows(col.name, IssueKind.INVALID_VALUE, invalid, series, what)
    out.rows(col.name, IssueKind.NON_FINITE, ok & ~finite, series, "infinite number")
    ok = ok & finite
    if isinstance(col.low, int | float) and isinstance(col.high, int | float):
        margin = range_tolerance * (col.high - col.low)
        allowed_low, allowed_high = col.low - margin, col.high + margin
        outside = ok & ((values < allowed_low) | (values > allowed_high))
        message = _outside(allowed_low, allowed_high, int(ok.sum()), trusted)
        out.rows(col.name, IssueKind.OUT_OF_RANGE, outside, series, message)
    return ok


def _check_datetimes(
    col: ColumnSchema,
    series: pd.Series,
    stamps: pd.Series,
    invalid: NDArray[np.bool_],
    ok: NDArray[np.bool_],
    out: _Collector,
    range_tolerance: float,
    trusted: int,
) -> None:
    out.rows(col.name, IssueKind.INVALID_VALUE, invalid, series, "not an ISO 8601 date")
    if isinstance(col.low, str) and isinstance(col.high, str):
        low, high = _timestamp(col.low, col.name), _timestamp(col.high, col.name)
        margin = (high - low) * range_tolerance
        outside = ok & ((stamps < low - margin) | (stamps > high + margin)).to_numpy(dtype=bool, na_value=False)
        message = _outside((low - margin).isoformat(), (high + margin).isoformat(), int(ok.sum()), trusted)
        out.rows(col.name, IssueKind.OUT_OF_RANGE, outside, series, message)


def _check_column(
    col: ColumnSchema,
    series: pd.Series,
    trusted_rows: int,
    out: _Collector,
    *,
    range_tolerance: float,
    missing_alpha: float,
    shift_alpha: float,
) -> ShiftWarning | None:
    missing = series.isna().to_numpy()
    present = ~missing
    invalid: NDArray[np.bool_]
    if col.kind.numeric:
        values, invalid = _numbers(series)
    elif col.kind is ColumnKind.DATETIME:
        stamps, invalid = _datetimes(series)
    elif col.kind is ColumnKind.BOOLEAN:
        flags, invalid = _booleans(series)
    else:
        invalid = np.zeros(len(series), dtype=bool)
    if present.any() and bool(invalid[present].all()):
        out.wrong_type(col.name, col.kind, series, present)
        return None
    _check_missing(col, missing, trusted_rows, out, missing_alpha)
    ok = present & ~invalid
    trusted = trusted_rows - col.n_missing
    if col.kind.numeric:
        usable = _check_numbers(col, series, values, invalid, ok, out, range_tolerance, trusted)
        return _shift(col, values[usable], trusted, shift_alpha)
    if col.kind is ColumnKind.DATETIME:
        _check_datetimes(col, series, stamps, invalid, ok, out, range_tolerance, trusted)
    elif col.kind is ColumnKind.BOOLEAN:
        out.rows(col.name, IssueKind.INVALID_VALUE, invalid, series, "not a boolean")
        unknown = ok & ~flags.isin({c == "True" for c in col.categories}).to_numpy(dtype=bool)
        out.rows(col.name, IssueKind.UNKNOWN_CATEGORY, unknown, series, f"not one of {list(col.categories)}")
    elif col.kind is ColumnKind.CATEGORICAL:
        unknown = ok & ~_category_text(series).isin(col.categories).to_numpy(dtype=bool)
        shown = list(col.categories[:10]) + (["..."] if len(col.categories) > 10 else [])
        out.rows(col.name, IssueKind.UNKNOWN_CATEGORY, unknown, series, f"not one of the trusted categories {shown}")
    return None


def validate(
    frame: pd.DataFrame,
    schema: TableSchema,
    *,
    range_tolerance: float = 0.0,
    missing_alpha: float = 0.001,
    shift_alpha: float = 0.001,
    require_label: bool = True,
    max_examples: int = 5,
) -> ValidationReport:
    """Check a batch against ``schema``; return the issues, the rejected rows and shift warnings.

    ``range_tolerance`` widens each trusted range by that fraction of it on both sides (0: the trusted extremes).
    ``missing_alpha`` is the level of the per-column test for a missing-value rate above the trusted one;
    ``shift_alpha`` that of the distribution shift warning. ``require_label=False`` accepts a batch without the
    label column (data to predict on). ``max_examples`` rows are shown per issue.
    """
    if not (range_tolerance >= 0 and math.isfinite(range_tolerance)):
        raise InvalidParameterError(f"range_tolerance must be a finite number >= 0, got {range_tolerance}.")
    for name, alpha in (("missing_alpha", missing_alpha), ("shift_alpha", shift_alpha)):
        if not 0 < alpha < 1:
            raise InvalidParameterError(f"{name} must lie strictly between 0 and 1, got {alpha}.")
    if max_examples < 0:
        raise InvalidParameterError(f"max_examples must be at least 0, got {max_examples}.")
    if len(frame) == 0:  # a header-only batch would "pass" every check without checking anything
        raise InvalidInputError(
            "The batch has no rows, so there is nothing to validate.",
            remedy="Pass a file with at least one data row below its header.",
        )
    positions = _columns(frame)
    out = _Collector(len(frame), max_examples)
    warnings: list[ShiftWarning] = []
    for col in schema.columns:
        if col.name not in positions:
            if col.required and (require_label or col.name != schema.label):
                out.column(col.name, IssueKind.MISSING_COLUMN, len(frame), "missing; every row is rejected")
            continue
        warning = _check_column(
            col,
            frame.iloc[:, positions[col.name]],
            schema.n_rows,
            out,
            range_tolerance=range_tolerance,
            missing_alpha=missing_alpha,
            shift_alpha=shift_alpha,
        )
        if warning is not None:
            warnings.append(warning)
    known = set(schema.names)
    for name in positions:
        if name not in known:
            out.column(name, IssueKind.EXTRA_COLUMN, len(frame), "not in the schema")
    rejected = out.rejected
    rejected.setflags(write=False)
    report = ValidationReport(
        n_rows=len(frame),
        issues=tuple(out.issues),
        rejected=rejected,
        warnings=tuple(warnings),
        range_tolerance=range_tolerance,
        missing_alpha=missing_alpha,
        shift_alpha=shift_alpha,
        schema_rows=schema.n_rows,
        frame=frame,
    )
    logger.info(
        "validated %d rows: %d issues, %d rows rejected, %d shift warnings",
        report.n_rows,
        len(report.issues),
        report.n_rejected,
        len(report.warnings),
    )
    return report
