"""Check every inference request against the model's input schema before the model sees it.

    >>> import numpy as np
    >>> from modelshield.data import load_digits
    >>> from modelshield.gateway.validation import InputSchema, InvalidRequestInputError
    >>> schema = InputSchema.from_dataset(load_digits())
    >>> schema.check(np.zeros((2, 1, 8, 8)))  # passes: returns None
    >>> bad = np.zeros((2, 1, 8, 8))
    >>> bad[1, 0, 3, 4] = 7.5
    >>> try:
    ...     schema.check(bad)
    ... except InvalidRequestInputError as err:
    ...     print(err.field, err.rule.value, err.row)
    ...     print(err)
    pixel_3_4 high 1
    Row 1, feature 'pixel_3_4': 7.5 is above the maximum 1 (rule 'high').

An :class:`InputSchema` holds one rule set per flattened feature of one input: a range ``[low, high]``, whether
only whole numbers are valid (``integer``) and, for features that take a few codes (one-hot or categorical
encodings), the ``allowed`` values. :meth:`InputSchema.check` refuses a batch of the wrong shape, a non-numeric
dtype, NaN or infinite values, and any value that breaks a rule, with an :class:`InvalidRequestInputError` whose
``field``, ``rule`` and ``row`` say what failed; the gateway answers 422 with its message. The message names the
first offending row and its first offending feature (``repr`` of the owner's feature name), the rule and the
allowed range or values, shows the offending value as at most 40 characters of ``repr``, and counts the other
rows that break a rule. It never echoes anything else from the request.

The check runs on every request, so it is a few whole-array numpy operations: one range comparison over the batch
(NaN fails every comparison, and infinite values fail because unbounded ends are stored as the largest finite
number), one whole-number test over the integer features and one membership test against a padded table of the
allowed values. Only a failing batch pays for the diagnosis. Float32 batches are compared with the rules rounded to
float32, so a bound such as 0.1 does not reject its own float32 representation; other numeric dtypes (integers,
booleans, float16) are compared as float64.

Where the rules come from:

- :meth:`InputSchema.from_dataset` learns them from trusted training data (a :class:`~modelshield.data.Dataset`).
  A bound the data's schema declares (images in ``[0, 1]``) is used as declared; otherwise the range is the
  observed minimum and maximum, widened by ``tolerance`` times the range on each side. A feature is integer-only
  when every training value is whole, or when the schema declares it integer, binary or categorical. A binary or
  categorical feature allows its declared codes. Any other whole-valued feature with at most ``max_categories``
  distinct values gets an allowed-values list only when the Good–Turing estimate says a clean new row would
  almost never bring an unseen value (below).
- :meth:`InputSchema.from_table_schema` reads the output of ``modelshield data schema``
  (:class:`~modelshield.data.TableSchema`): numeric columns keep their trusted range, boolean and number-coded
  categorical columns their values; text and datetime columns are refused, since the gateway serves numeric
  tensors.

The price of strictness, and why these rules: a clean row (drawn like the ``n`` training rows) falls outside their
observed extremes with probability at most ``2/(n+1)`` per feature, and is fractional in a feature whose ``n``
training values were all whole with probability at most ``1/(n+1)`` (exchangeability: each of the ``n+1`` rows is
equally likely to be the extreme one, or the only fractional one). For an allowed-values list, the chance that the
new row's value is one the training rows never showed is the expected share of values seen exactly once among
``n+1`` rows; its Good–Turing estimate, counting the new row as possibly new, is ``(N1+1)/(n+1)`` with ``N1`` the
number of training values seen once. A list is kept only when that is at most 1% (the share
:mod:`modelshield.data.validation` allows for string categories): it takes at least 99 rows, and a continuous
feature that happens to take 15 values in a small sample (many of them once) never qualifies. Summed over the
features, these bound the expected false-rejection rate of clean rows; ``tolerance`` lowers it (a declared bound
has none). Measured on 25% held-out splits (``tests/gateway/test_validation.py``, two seeds): digits, with its
declared ``[0, 1]``, refuses 0–0.4% of clean rows (pixels that were 0 in every training image get the list
``[0]``); breast cancer on learned ranges alone refuses 7–9% at ``tolerance=0`` (30 ranges from 426 rows: the
bound is 14%) and 4% at ``tolerance=0.1``. (Breast cancer's declared bounds are the whole data set's extremes, so
its 0% with them is no evidence.)

Schemas persist as JSON next to the model (:meth:`InputSchema.to_dict`, :meth:`InputSchema.from_dict`).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelshield._internal.fields import json_field
from modelshield.errors import FileFormatError, InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.data.validation import TableSchema

__all__ = [
    "INPUT_SCHEMA_FORMAT",
    "INPUT_SCHEMA_FORMAT_VERSION",
    "FeatureRule",
    "InputRule",
    "InputSchema",
    "InvalidRequestInputError",
]

logger = logging.getLogger(__name__)

INPUT_SCHEMA_FORMAT = "modelshield.input-schema"
INPUT_SCHEMA_FORMAT_VERSION = 1
_UNSEEN_MAX = 0.01  # largest Good–Turing chance of an unseen value for which a feature gets an allowed-values list
_VALUE_CHARS = 40  # the most characters of an offending value a message shows
_NAME_CHARS = 80  # the most characters of a feature name (its repr) a message shows
_SHOWN_VALUES = 10  # allowed values listed in a message
_NUMERIC_KINDS = "biuf"  # booleans, signed and unsigned integers, floats
_DTYPE_KINDS = {
    "U": "text",
    "S": "bytes",
    "O": "Python objects",
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "V": "records",
}
_F32_MAX = float(np.finfo(np.float32).max)
_F64_MAX = float(np.finfo(np.float64).max)
_REQUEST_REMEDY = "Send inputs of the model's input shape as numbers that satisfy the model's input schema."
_FILE_REMEDY = "Regenerate it with InputSchema.from_dataset or from_table_schema and to_dict; do not edit it by hand."


class InputRule(enum.StrEnum):
    """The rule a request broke: the batch as a whole (shape, dtype) or one value of one feature."""

    SHAPE = "shape"
    DTYPE = "dtype"
    FINITE = "finite"
    LOW = "low"
    HIGH = "high"
    INTEGER = "integer"
    ALLOWED = "allowed"


class InvalidRequestInputError(InvalidInputError):
    """A request's input breaks the model's input schema; the gateway answers 422 with the message.

    ``rule`` is the :class:`InputRule` broken; ``field`` the feature's name (``None`` for the batch-level rules
    ``shape`` and ``dtype``); ``row`` the first offending row of the batch, from 0 (``None`` for batch-level
    rules); ``n_rows`` how many rows break some rule (every row, for a batch-level rule).
    """

    def __init__(self, message: str, *, rule: InputRule, field: str | None, row: int | None, n_rows: int) -> None:
        super().__init__(message, remedy=_REQUEST_REMEDY)
        self.rule = rule
        self.field = field
        self.row = row
        self.n_rows = n_rows


# ---------------------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class FeatureRule:
    """The rules of one flattened feature: its range, whether it must be whole, and its allowed values if listed.

    ``low`` and ``high`` may be infinite (unbounded). ``allowed`` is empty when any value in range is valid;
    otherwise it lists the valid values, sorted, all inside ``[low, high]`` (and whole when ``integer``).
    """

    name: str
    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    allowed: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        object.__setattr__(self, "allowed", tuple(sorted({float(v) for v in self.allowed})))
        where = f"Feature {_show_name(self.name)}"
        if math.isnan(self.low) or math.isnan(self.high) or self.low > self.high:
            raise InvalidParameterError(f"{where}: low {self.low} and high {self.high} do not form a range.")
        if self.low == math.inf or self.high == -math.inf:
            raise InvalidParameterError(f"{where}: no finite value lies in [{self.low}, {self.high}].")
        for v in self.allowed:
            if not (math.isfinite(v) and self.low <= v <= self.high):
                raise InvalidParameterError(f"{where}: allowed value {v!r} is not a finite number in range.")
            if self.integer and v != round(v):
                raise InvalidParameterError(f"{where}: allowed value {v!r} is not whole, but the feature is integer.")


def _show_name(name: str) -> str:
    text = repr(name)
    return text if len(text) <= _NAME_CHARS else text[: _NAME_CHARS - 1] + "…"


def _short(text: str) -> str:
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _show_value(value: float | int | bool) -> str:
    return _short(repr(value.item() if isinstance(value, np.generic) else value))


def _show_number(value: float) -> str:
    return f"{value:.10g}"


def _show_shape(shape: tuple[int, ...]) -> str:
    return _short("(n, " + ", ".join(str(d) for d in shape) + ")")


@dataclass(frozen=True)
class _Limits:
    """The rules as arrays in one precision: finite bounds (unbounded ends clamped) and the padded allowed table."""

    low: NDArray[np.floating[Any]]
    high: NDArray[np.floating[Any]]
    table: NDArray[np.floating[Any]]  # (len(categorical), widest list), padded with NaN, which equals nothing


def _limits(
    low: NDArray[np.float64],
    high: NDArray[np.float64],
    allowed: Mapping[int, tuple[float, ...]],
    dtype: type[np.floating[Any]],
    big: float,
) -> _Limits:
    width = max((len(v) for v in allowed.values()), default=0)
    table = np.full((len(allowed), width), np.nan, dtype=np.float64)
    for i, values in enumerate(allowed.values()):
        table[i, : len(values)] = values
    arrays = [np.clip(low, -big, big).astype(dtype), np.clip(high, -big, big).astype(dtype), table.astype(dtype)]
    for a in arrays:
        a.setflags(write=False)
    return _Limits(arrays[0], arrays[1], arrays[2])


# --------------------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True, eq=False)
class InputSchema:
    """The valid inputs of a served model: per flattened feature of one input, a range, wholeness and codes.

    ``low``, ``high`` (float64) and ``integer`` (bool) have one entry per feature of ``input_shape`` flattened in C
    order; ``allowed`` maps a feature's index to its sorted allowed values. Build one with :meth:`from_dataset`,
    :meth:`from_table_schema`, :meth:`from_rules` or :meth:`from_dict`; :meth:`check` a batch against it.
    Immutable, and safe to share between threads.
    """

    input_shape: tuple[int, ...]
    feature_names: tuple[str, ...]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    integer: NDArray[np.bool_]
    allowed: Mapping[int, tuple[float, ...]] = field(default_factory=dict)
    source: str = ""
    _f64: _Limits = field(init=False, repr=False)
    _f32: _Limits = field(init=False, repr=False)
    _integer_index: NDArray[np.intp] = field(init=False, repr=False)
    _allowed_index: NDArray[np.intp] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.input_shape)
        names = tuple(str(n) for n in self.feature_names)
        d = math.prod(shape)
        if not shape or d < 1 or any(s < 1 for s in shape):
            raise InvalidParameterError(f"An input schema needs a non-empty input shape, got {shape}.")
        if len(names) != d:
            raise InvalidParameterError(f"Input shape {shape} holds {d} features but {len(names)} names were given.")
        if len(set(names)) != d:
            raise InvalidParameterError("Input schema feature names must be unique.")
        low, high = (np.array(a, dtype=np.float64, copy=True).reshape(-1) for a in (self.low, self.high))
        integer = np.array(self.integer, dtype=bool, copy=True).reshape(-1)
        if low.shape != (d,) or high.shape != (d,) or integer.shape != (d,):
            raise InvalidParameterError(f"low, high and integer must each have one entry per feature ({d}).")
        allowed = {int(j): tuple(v) for j, v in sorted(self.allowed.items())}
        if any(not 0 <= j < d for j in allowed):
            raise InvalidParameterError(f"allowed names feature indices outside 0..{d - 1}.")
        for j in range(d):  # the rules of one feature are checked in one place
            FeatureRule(names[j], float(low[j]), float(high[j]), bool(integer[j]), allowed.get(j, ()))
        allowed = {j: tuple(sorted({float(x) for x in v})) for j, v in allowed.items() if v}
        for a in (low, high, integer):
            a.setflags(write=False)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "integer", integer)
        object.__setattr__(self, "allowed", MappingProxyType(allowed))
        object.__setattr__(self, "_f64", _limits(low, high, allowed, np.float64, _F64_MAX))
        object.__setattr__(self, "_f32", _limits(low, high, allowed, np.float32, _F32_MAX))
        integer_index = np.flatnonzero(integer)
        allowed_index = np.array(list(allowed), dtype=np.intp)
        integer_index.setflags(write=False)
        allowed_index.setflags(write=False)
        object.__setattr__(self, "_integer_index", integer_index)
        object.__setattr__(self, "_allowed_index", allowed_index)

    # ------------------------------------------------------------------------------------------------- views

    @property
    def n_features(self) -> int:
        """How many values one input holds."""
        return len(self.feature_names)

    @property
    def rules(self) -> tuple[FeatureRule, ...]:
        """The rules of each feature, in flattened order."""
        return tuple(
            FeatureRule(name, float(self.low[j]), float(self.high[j]), bool(self.integer[j]), self.allowed.get(j, ()))
            for j, name in enumerate(self.feature_names)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputSchema):
            return NotImplemented
        return (
            self.input_shape == other.input_shape
            and self.feature_names == other.feature_names
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
            and np.array_equal(self.integer, other.integer)
            and dict(self.allowed) == dict(other.allowed)
            and self.source == other.source
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and holds arrays

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle (to worker processes) through the JSON form, which is re-validated on the way in.
        return (InputSchema.from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        return (
            f"InputSchema(input_shape={self.input_shape}, features={self.n_features}, "
            f"integer={int(self.integer.sum())}, allowed={len(self.allowed)}, source={self.source!r})"
        )

    # ----------------------------------------------------------------------------------------------- building

    @classmethod
    def from_rules(
        cls, rules: Sequence[FeatureRule], *, input_shape: Sequence[int] | None = None, source: str = ""
    ) -> InputSchema:
        """A schema from one :class:`FeatureRule` per feature; ``input_shape`` defaults to ``(len(rules),)``."""
        return cls(
            input_shape=tuple(input_shape) if input_shape is not None else (len(rules),),
            feature_names=tuple(r.name for r in rules),
            low=np.array([r.low for r in rules], dtype=np.float64),
            high=np.array([r.high for r in rules], dtype=np.float64),
            integer=np.array([r.integer for r in rules], dtype=bool),
            allowed={j: r.allowed for j, r in enumerate(rules) if r.allowed},
            source=source,
        )

    @classmethod
    def from_dataset(cls, data: Dataset, *, tolerance: float = 0.0, max_categories: int = 20) -> InputSchema:
        """Rules learned from trusted training data; see the module documentation for how and at what price.

        ``tolerance`` widens each observed range by that fraction of it on both sides (declared bounds are kept
        as declared). Whole-valued features with at most ``max_categories`` distinct values may get an
        allowed-values list (0: never). Raises :class:`InvalidInputError` when the data has no rows or breaks its
        own schema's declared bounds or codes.
        """
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InvalidParameterError(f"tolerance must be a finite number >= 0, got {tolerance}.")
        if max_categories < 0:
            raise InvalidParameterError(f"max_categories must be at least 0, got {max_categories}.")
        x = data.flat()
        if len(x) == 0:
            raise InvalidInputError(
                f"Dataset {data.name!r} has no rows to learn input rules from.",
                remedy="Pass the model's training data.",
            )
        rules = tuple(
            _learn_feature(feature, x[:, j], tolerance=tolerance, max_categories=max_categories)
            for j, feature in enumerate(data.schema.features)
        )
        source = f"dataset {data.name!r} ({len(x)} rows, sha256 {data.digest[:12]})"
        schema = cls.from_rules(rules, input_shape=data.schema.input_shape, source=source)
        logger.info(
            "input schema from %s: %d features, %d integer-only, %d with allowed values",
            source,
            schema.n_features,
            int(schema.integer.sum()),
            len(schema.allowed),
        )
        return schema

    @classmethod
    def from_table_schema(
        cls, schema: TableSchema, *, feature_names: Sequence[str] | None = None, tolerance: float = 0.0
    ) -> InputSchema:
        """Rules from a table schema (``modelshield data schema``): its columns, in order, as a flat input.

        ``feature_names`` picks and orders the model's columns (by default every column but the label).
        ``tolerance`` widens each numeric range by that fraction of it on both sides. A nullable column still
        refuses NaN: a tensor has no missing values, so impute before the request. Raises
        :class:`InvalidInputError` for a text, datetime or text-coded categorical column, or an unknown name.
        """
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InvalidParameterError(f"tolerance must be a finite number >= 0, got {tolerance}.")
        if feature_names is None:
            columns = [c for c in schema.columns if c.name != schema.label]
        else:
            known = {c.name: c for c in schema.columns}
            missing = [n for n in feature_names if n not in known]
            if missing:
                raise InvalidInputError(
                    f"The table schema has no column {_show_name(missing[0])} ({len(missing)} name(s) missing).",
                    remedy="Name the model's input columns as the table schema does.",
                )
            columns = [known[n] for n in feature_names]
        if not columns:
            raise InvalidInputError(
                "The table schema has no feature columns.", remedy="Infer the schema from the training table."
            )
        rules = tuple(_column_rule(c, tolerance) for c in columns)
        where = schema.source or "a table schema"
        return cls.from_rules(rules, source=f"{where} ({schema.n_rows} trusted rows)")

    # -------------------------------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (unbounded ends as ``null``); :meth:`from_dict` reads it back."""
        return {
            "format": INPUT_SCHEMA_FORMAT,
            "format_version": INPUT_SCHEMA_FORMAT_VERSION,
            "input_shape": list(self.input_shape),
            "source": self.source,
            "features": [
                {
                    "name": r.name,
                    "low": r.low if math.isfinite(r.low) else None,
                    "high": r.high if math.isfinite(r.high) else None,
                    "integer": r.integer,
                    "allowed": list(r.allowed),
                }
                for r in self.rules
            ],
        }

    @classmethod
    def from_dict(cls, data: object, *, where: str = "The input schema") -> InputSchema:
        """Check and read :meth:`to_dict`'s output; :class:`FileFormatError` if it is not a valid input schema."""
        if not isinstance(data, dict):
            raise _bad(where, f"it holds a {type(data).__name__}, not an object")
        if data.get("format") != INPUT_SCHEMA_FORMAT:
            raise _bad(where, f"its 'format' is not {INPUT_SCHEMA_FORMAT!r}")
        version = data.get("format_version")
        if type(version) is not int or version != INPUT_SCHEMA_FORMAT_VERSION:
            raise FileFormatError(
                f"{where} has input schema format version {_short(repr(version))}; this modelshield reads "
                f"version {INPUT_SCHEMA_FORMAT_VERSION}.",
                remedy=_FILE_REMEDY,
            )
        unknown = sorted(set(data) - {"format", "format_version", "input_shape", "source", "features"})
        if unknown:
            raise _bad(where, f"unknown field(s) {[_show_name(str(k)) for k in unknown[:5]]}")
        shape = _get(data, "input_shape", list, where)
        if not all(type(s) is int for s in shape):
            raise _bad(where, "'input_shape' must be a list of integers")
        raw_features = _get(data, "features", list, where)
        try:
            rules = tuple(_parse_rule(f, where) for f in raw_features)
            return cls.from_rules(rules, input_shape=shape, source=_get(data, "source", str, where))
        except InvalidParameterError as exc:
            raise _bad(where, exc.message.rstrip(".")) from exc

    # ------------------------------------------------------------------------------------------------- check

    def check(self, x: np.ndarray[Any, Any]) -> None:
        """Return if every value of the batch ``x`` (shape ``(n, *input_shape)``) obeys the rules; raise otherwise.

        Raises :class:`InvalidRequestInputError` for a batch that is not a numeric array of that shape with at
        least one row, and for the first row holding a NaN or infinite value, or a value below ``low``, above
        ``high``, fractional in an integer feature or not among a feature's allowed values.
        """
        if not isinstance(x, np.ndarray) or x.dtype.kind not in _NUMERIC_KINDS:
            # Say what kind of thing it is, never its dtype text: a structured dtype's field names are the client's.
            got = _DTYPE_KINDS.get(x.dtype.kind, "other data") if isinstance(x, np.ndarray) else "no array"
            raise InvalidRequestInputError(
                f"The input must be an array of numbers (booleans, integers or floats), got {got}.",
                rule=InputRule.DTYPE,
                field=None,
                row=None,
                n_rows=len(x) if isinstance(x, np.ndarray) and x.ndim else 0,
            )
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1 or x.shape[0] == 0:
            got = "(" + ", ".join(str(d) for d in x.shape[:10]) + (", ..." if x.ndim > 10 else "") + ")"
            raise InvalidRequestInputError(
                f"The input must be a batch of shape {_show_shape(self.input_shape)} with n >= 1, got {_short(got)}.",
                rule=InputRule.SHAPE,
                field=None,
                row=None,
                n_rows=x.shape[0] if x.ndim else 0,
            )
        flat = x.reshape(x.shape[0], self.n_features)
        if flat.dtype == np.float32:
            limits = self._f32
        else:
            limits = self._f64
            if flat.dtype != np.float64:
                flat = flat.astype(np.float64)
        ok = self._valid(flat, limits)
        if ok is not None:
            self._refuse(flat, limits, ok)

    def _valid(self, flat: NDArray[np.floating[Any]], limits: _Limits) -> NDArray[np.bool_] | None:
        """None when every value obeys the rules; else the (n, d) mask of the values that do."""
        ok = (flat >= limits.low) & (flat <= limits.high)  # NaN compares false; clamped bounds stop infinities
        if len(self._integer_index) == self.n_features:
            ok &= flat == np.rint(flat)
        elif len(self._integer_index):
            whole = flat[:, self._integer_index]
            ok[:, self._integer_index] &= whole == np.rint(whole)
        if len(self._allowed_index):
            codes = flat[:, self._allowed_index]
            ok[:, self._allowed_index] &= (codes[:, :, np.newaxis] == limits.table).any(axis=2)
        return None if ok.all() else ok

    def _refuse(self, flat: NDArray[np.floating[Any]], limits: _Limits, ok: NDArray[np.bool_]) -> None:
        bad_rows = ~ok.all(axis=1)
        row = int(np.argmax(bad_rows))
        j = int(np.argmax(~ok[row]))
        value = flat[row, j]
        name = self.feature_names[j]
        low, high = float(self.low[j]), float(self.high[j])
        if not np.isfinite(value):
            rule, what = InputRule.FINITE, "is not a finite number"
        elif value < limits.low[j]:
            rule, what = InputRule.LOW, f"is below the minimum {_show_number(low)}"
        elif value > limits.high[j]:
            rule, what = InputRule.HIGH, f"is above the maximum {_show_number(high)}"
        elif self.integer[j] and value != np.rint(value):
            rule, what = InputRule.INTEGER, "is not a whole number, which this feature requires"
        else:  # the only rule left: the value is not one of the listed ones
            values = self.allowed.get(j, ())
            shown = ", ".join(_show_number(v) for v in values[:_SHOWN_VALUES])
            more = f", ... ({len(values)} in all)" if len(values) > _SHOWN_VALUES else ""
            rule, what = InputRule.ALLOWED, f"is not one of the allowed values [{shown}{more}]"
        n_rows = int(bad_rows.sum())
        others = ""
        if n_rows == 2:
            others = ", and 1 more row breaks input rules"
        elif n_rows > 2:
            others = f", and {n_rows - 1} more rows break input rules"
        raise InvalidRequestInputError(
            f"Row {row}, feature {_show_name(name)}: {_show_value(value)} {what} (rule {rule.value!r}){others}.",
            rule=rule,
            field=name,
            row=row,
            n_rows=n_rows,
        )


# ------------------------------------------------------------------------------------------------------- learning


def _learn_feature(feature: Any, values: NDArray[np.float32], *, tolerance: float, max_categories: int) -> FeatureRule:
    """One feature's rule from its training values and its declared :class:`~modelshield.data.Feature` schema."""
    from modelshield.data.interface import FeatureKind

    name: str = feature.name
    where = f"Feature {_show_name(name)} of the training data"
    observed_low, observed_high = float(values.min()), float(values.max())
    margin = tolerance * (observed_high - observed_low)
    low = float(feature.low) if feature.low is not None else observed_low - margin
    high = float(feature.high) if feature.high is not None else observed_high + margin
    # The data are float32: compare them with the declared bounds at that precision.
    if observed_low < np.float32(low) or observed_high > np.float32(high):
        raise InvalidInputError(
            f"{where} spans [{_show_number(observed_low)}, {_show_number(observed_high)}], outside its declared "
            f"range [{_show_number(low)}, {_show_number(high)}].",
            remedy="Fix the data or the bounds its schema declares.",
        )
    declared: tuple[float, ...] = ()
    if feature.kind is FeatureKind.BINARY:
        declared = (0.0, 1.0)
    elif feature.kind is FeatureKind.CATEGORICAL and feature.categories:
        declared = tuple(float(c) for c in range(len(feature.categories)))
    whole = bool(np.all(values == np.rint(values)))
    if declared:
        if not bool(np.all(np.isin(values, declared))):
            raise InvalidInputError(
                f"{where} holds values other than its declared {feature.kind.value} codes "
                f"{[_show_number(v) for v in declared[:_SHOWN_VALUES]]}.",
                remedy="Fix the data or the kind its schema declares.",
            )
        return FeatureRule(name, min(declared), max(declared), integer=True, allowed=declared)
    if feature.kind is FeatureKind.INTEGER and not whole:
        raise InvalidInputError(
            f"{where} is declared integer but holds fractions.", remedy="Fix the data or the kind its schema declares."
        )
    if whole and max_categories > 0:
        distinct, counts = np.unique(values, return_counts=True)
        seen_once = int((counts == 1).sum())
        unseen = (seen_once + 1) / (len(values) + 1)  # Good–Turing, counting the new row as possibly new
        if len(distinct) <= max_categories and unseen <= _UNSEEN_MAX:
            allowed = tuple(float(v) for v in distinct)
            return FeatureRule(name, allowed[0], allowed[-1], integer=True, allowed=allowed)
    return FeatureRule(name, low, high, integer=whole)


def _column_rule(column: Any, tolerance: float) -> FeatureRule:
    """One table-schema column as a feature rule; refuses columns that hold no numbers."""
    from modelshield.data.validation import ColumnKind

    name: str = column.name
    kind: ColumnKind = column.kind
    if kind.numeric:
        low, high = column.low, column.high
        if low is None or high is None:  # the trusted rows held no value: no range to enforce
            return FeatureRule(name, integer=kind is ColumnKind.INTEGER)
        margin = tolerance * (float(high) - float(low))
        return FeatureRule(name, float(low) - margin, float(high) + margin, integer=kind is ColumnKind.INTEGER)
    if kind is ColumnKind.BOOLEAN:
        allowed = tuple(1.0 if c == "True" else 0.0 for c in column.categories) or (0.0, 1.0)
        return FeatureRule(name, min(allowed), max(allowed), integer=True, allowed=allowed)
    if kind is ColumnKind.CATEGORICAL:
        numbers = [_number(c) for c in column.categories]
        if numbers and all(v is not None for v in numbers):
            allowed = tuple(sorted(v for v in numbers if v is not None))
            whole = all(v == round(v) for v in allowed)
            return FeatureRule(name, allowed[0], allowed[-1], integer=whole, allowed=allowed)
        what = "categorical column whose categories are not all numbers"
    else:
        what = f"{kind.value} column"
    raise InvalidInputError(
        f"Column {_show_name(name)} is a {what}; the gateway serves numeric tensors, so every model input must be a "
        "number.",
        remedy="Encode the column as numbers (codes, one-hot, timestamps) before training and serving, or leave it "
        "out with feature_names.",
    )


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------------------- JSON


def _bad(where: str, problem: str) -> FileFormatError:
    return FileFormatError(f"{where} is not a valid input schema: {problem}.", remedy=_FILE_REMEDY)


def _get(data: Mapping[str, object], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    return json_field(data, key, kind, lambda problem: _bad(where, problem))


def _parse_rule(raw: object, where: str) -> FeatureRule:
    if not isinstance(raw, dict):
        raise _bad(where, f"a feature is a {type(raw).__name__}, not an object")
    unknown = sorted(set(raw) - {"name", "low", "high", "integer", "allowed"})
    if unknown:
        raise _bad(where, f"a feature has unknown field(s) {[_show_name(str(k)) for k in unknown[:5]]}")
    name = _get(raw, "name", str, where)
    at = f"{where}, feature {_show_name(name)},"
    number = (int, float, type(None))
    low, high = _get(raw, "low", number, at), _get(raw, "high", number, at)
    allowed = _get(raw, "allowed", list, at)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in allowed):
        raise _bad(at, "'allowed' must be a list of numbers")
    return FeatureRule(
        name,
        -math.inf if low is None else float(low),
        math.inf if high is None else float(high),
        integer=_get(raw, "integer", bool, at),
        allowed=tuple(float(v) for v in allowed),
    )
