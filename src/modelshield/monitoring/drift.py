"""Drift monitoring: does the traffic still look like the reference data, and is the model still right?

    >>> import numpy as np
    >>> from modelshield.monitoring.drift import DriftReference
    >>> rng = np.random.default_rng(0)
    >>> reference = DriftReference().fit(rng.normal(size=(5000, 3)), columns=("a", "b", "c"))
    >>> window = rng.normal(size=(1000, 3))
    >>> window[:, 1] += 0.5  # column b shifts by half a standard deviation
    >>> result = reference.compare(window)
    >>> result.drifted_columns
    ('b',)
    >>> [c.test for c in result.columns]
    ['ks', 'ks', 'ks']

:class:`DriftReference` is fitted once on the reference data (the training set, or traffic the owner trusts): each
numeric column is sorted once, each categorical column reduced to its categories and their counts, and the
model's predictions on the reference (optional) to the frequency of each label. :meth:`DriftReference.compare`
then tests a window of current rows against it, column by column:

* numeric columns: the two-sample Kolmogorov-Smirnov test. The statistic D (the effect size, the largest gap
  between the two empirical CDFs) is computed from the presorted reference with ``searchsorted`` on the window's
  points alone, and is the D of ``scipy.stats.ks_2samp`` to the last bit; the p-value is ks_2samp's ``'auto'``
  mode: exact when both samples have at most 10,000 rows (then ks_2samp itself is called, which is cheap at that
  size), Smirnov's asymptotic distribution ``kstwo.sf(D, round(n*m/(n+m)))`` otherwise, for all columns in one
  vectorised call;
* categorical columns: Pearson's chi-squared goodness-of-fit test of the window's category counts against the
  reference frequencies scaled to the window's size (``scipy.stats.chisquare`` on the union of the categories of
  both; a category the reference never saw has an expected count of 0 and makes the statistic infinite, p = 0).
  The effect size is the total variation distance between the two category distributions (half the sum of
  absolute differences of frequencies, in [0, 1], finite even for unseen categories);
* every column also gets its population stability index (PSI), binned as Evidently (0.7) bins it: numeric
  columns whose reference holds more than 20 distinct values get equal-width bins over the range of reference and
  window together, as many as Sturges' rule gives for the combined size; other columns one bin per value; an
  empty bin's share is replaced by a millionth of the smallest non-zero share when that share is at most 1e-4,
  else by 1e-4. PSI has no p-value: :attr:`ColumnDrift.psi_level` gives its conventional reading (below 0.1 no
  shift, below 0.25 a moderate shift, else a major one), and the drift decision uses the KS or chi-squared p-value.

The p-values are adjusted for the number of columns with Benjamini-Hochberg (q-values); a column has drifted when
its q-value is below ``alpha`` *and* its effect size reaches ``min_effect`` (with large windows tiny, harmless
shifts are significant). The model's predictions on the window, when given, are tested like a categorical column
(prediction drift; judged on its own p-value, outside the columns' family).

:class:`DriftMonitor` does this on live traffic: :meth:`DriftMonitor.update` appends rows (and the model's
predicted labels) to a ring buffer of the last ``window`` rows and returns a fresh :class:`DriftResult` every
``step`` rows; :meth:`DriftMonitor.record_feedback` takes ground truth as it arrives and keeps the accuracy over
the last ``feedback_window`` labelled answers. Results export as Prometheus gauges
(:meth:`DriftResult.prometheus`). Memory is bounded by the reference (one sorted copy of each numeric column,
8 bytes a value) and the two ring buffers; the monitor is thread-safe and computes outside its lock.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.findings import JSONValue

__all__ = [
    "ColumnDrift",
    "ColumnKind",
    "DriftMonitor",
    "DriftReference",
    "DriftResult",
    "GaugeSample",
    "Histogram",
    "benjamini_hochberg",
]

logger = logging.getLogger(__name__)

#: ``scipy.stats.ks_2samp``'s 'auto' mode is exact up to this many rows in the larger sample.
_KS_EXACT_MAX_N = 10_000
#: Numeric reference columns with more distinct values than this get equal-width PSI bins (else one per value).
_PSI_MAX_DISCRETE = 20
_PSI_FLOOR = 1e-4
_PSI_LEVELS = ((0.1, "none"), (0.25, "moderate"), (math.inf, "major"))

Columns: TypeAlias = "Mapping[str, ArrayLike] | ArrayLike"


class ColumnKind(enum.StrEnum):
    """How a column is tested: numeric (KS, binned PSI) or categorical (chi-squared, per-category PSI)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


def benjamini_hochberg(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values) in the input's order, as scipy's ``false_discovery_control``.

    >>> benjamini_hochberg([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return p.copy()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise InvalidInputError(
            "Benjamini-Hochberg needs p-values in [0, 1].", remedy="Pass p-values, without NaN, between 0 and 1."
        )
    order = np.argsort(p, kind="stable")
    ranked = p[order] * (p.size / np.arange(1, p.size + 1))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty_like(p)
    q[order] = np.clip(ranked, 0.0, 1.0)
    return q


def _psi_level(psi: float) -> str:
    return next(name for bound, name in _PSI_LEVELS if psi < bound)


def _finite(value: float) -> JSONValue:
    return value if math.isfinite(value) else str(value)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test: ``statistic`` is KS D or the chi-squared statistic, ``effect`` KS D or the total
    variation distance, ``psi`` the population stability index, ``q_value`` the BH-adjusted p-value."""

    name: str
    kind: ColumnKind
    test: str  # "ks" or "chisquare"
    statistic: float
    p_value: float
    q_value: float
    effect: float
    psi: float
    drifted: bool

    @property
    def psi_level(self) -> str:
        """The PSI's conventional reading: ``none`` (< 0.1), ``moderate`` (< 0.25) or ``major``."""
        return _psi_level(self.psi)

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain JSON data (an infinite statistic as the string ``"inf"``)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "p_value": self.p_value,
            "q_value": self.q_value,
            "effect": self.effect,
            "psi": _finite(self.psi),
            "psi_level": self.psi_level,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class GaugeSample:
    """One Prometheus gauge value: metric ``name``, its ``help`` text, its labels."""

    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass(frozen=True)
class DriftResult:
    """A window's comparison with the reference: one :class:`ColumnDrift` per column, the prediction drift (when
    predictions were given on both sides), and, from a :class:`DriftMonitor`, the accuracy over recent feedback."""

    columns: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None
    n_reference: int
    n_current: int
    alpha: float
    min_effect: float
    accuracy: float | None = None
    n_feedback: int = 0

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """The names of the columns that drifted, in the reference's column order."""
        return tuple(c.name for c in self.columns if c.drifted)

    @property
    def share_drifted(self) -> float:
        """The share of columns that drifted (0 with no columns)."""
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        """Whether any column, or the predictions, drifted."""
        return bool(self.drifted_columns) or (self.prediction is not None and self.prediction.drifted)

    def column(self, name: str) -> ColumnDrift:
        """The result for column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise InvalidParameterError(f"No column {name!r} in this result.", remedy="Use one of the fitted columns.")

    def by_q_value(self) -> tuple[ColumnDrift, ...]:
        """The columns, most significant first (q-value, then larger effect)."""
        return tuple(sorted(self.columns, key=lambda c: (c.q_value, -c.effect, c.name)))

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain JSON data."""
        return {
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "drifted": self.drifted,
            "drifted_columns": list(self.drifted_columns),
            "share_drifted": self.share_drifted,
            "columns": [c.to_dict() for c in self.columns],
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "accuracy": self.accuracy,
            "n_feedback": self.n_feedback,
        }

    def gauges(self, prefix: str = "modelshield_drift") -> tuple[GaugeSample, ...]:
        """The result as Prometheus gauge samples (per-column statistics labelled ``column``)."""
        out: list[GaugeSample] = []
        per_column = (
            ("statistic", "Test statistic (KS D or chi-squared) of the latest window, by column."),
            ("p_value", "p-value of the latest window's drift test, by column."),
            ("q_value", "Benjamini-Hochberg adjusted p-value of the latest window, by column."),
            ("effect", "Effect size (KS D or total variation distance) of the latest window, by column."),
            ("psi", "Population stability index of the latest window, by column."),
            ("drifted", "1 when the column drifted in the latest window, else 0."),
        )
        for metric, help_text in per_column:
            for c in self.columns:
                value = float(c.drifted) if metric == "drifted" else float(getattr(c, metric))
                out.append(GaugeSample(f"{prefix}_column_{metric}", help_text, value, {"column": c.name}))
        if self.prediction is not None:
            p = self.prediction
            out.append(GaugeSample(f"{prefix}_prediction_p_value", "p-value of prediction drift.", p.p_value))
            out.append(GaugeSample(f"{prefix}_prediction_effect", "TVD of predicted labels.", p.effect))
            out.append(GaugeSample(f"{prefix}_prediction_psi", "PSI of predicted labels.", p.psi))
        out.append(GaugeSample(f"{prefix}_share_drifted", "Share of columns that drifted.", self.share_drifted))
        out.append(GaugeSample(f"{prefix}_window_rows", "Rows in the latest window.", float(self.n_current)))
        if self.accuracy is not None:
            out.append(GaugeSample(f"{prefix}_accuracy", "Accuracy over recent labelled answers.", self.accuracy))
        return tuple(out)

    def prometheus(self, prefix: str = "modelshield_drift") -> str:
        """The gauges in Prometheus' text exposition format."""
        lines: list[str] = []
        seen: set[str] = set()
        for g in self.gauges(prefix):
            if g.name not in seen:
                seen.add(g.name)
                lines += [f"# HELP {g.name} {g.help}", f"# TYPE {g.name} gauge"]
            labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in g.labels.items())
            lines.append(
                f"{g.name}{{{labels}}} {_sample_value(g.value)}" if labels else f"{g.name} {_sample_value(g.value)}"
            )
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Input handling


def _as_columns(data: Columns, names: Sequence[str] | None, where: str) -> dict[str, NDArray[Any]]:
    """``data`` (a mapping of 1-D columns, or a 2-D array) as named 1-D arrays of equal length."""
    if not isinstance(data, Mapping) and hasattr(data, "columns") and hasattr(data, "__getitem__"):
        data = {str(c): np.asarray(data[c]) for c in data.columns}  # a pandas DataFrame, read column by column
    if isinstance(data, Mapping):
        cols = {str(k): np.asarray(v) for k, v in data.items()}
        if names is not None:
            missing = [n for n in names if n not in cols]
            if missing:
                raise InvalidInputError(
                    f"The {where} lacks column(s) {missing[:10]}.", remedy="Pass every column the reference has."
                )
            cols = {n: cols[n] for n in names}
    else:
        array = np.asarray(data)
        if array.ndim == 1 and names is not None and len(names) == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise InvalidInputError(
                f"The {where} must be a 2-D array (rows x columns) or a mapping of columns; got shape {array.shape}.",
                remedy="Pass rows as a 2-D array, or a dict of column name to values.",
            )
        if names is None:
            names = tuple(f"x{j}" for j in range(array.shape[1]))
        if len(names) != array.shape[1]:
            raise InvalidInputError(
                f"The {where} has {array.shape[1]} columns; {len(names)} column names are known.",
                remedy="Pass the columns the reference was fitted on, in the same order.",
            )
        cols = {n: array[:, j] for j, n in enumerate(names)}
    lengths = {v.shape for v in cols.values()}
    if not cols or any(len(s) != 1 for s in lengths) or len({s[0] for s in lengths}) != 1:
        raise InvalidInputError(
            f"The {where} must hold at least one column, each 1-D and all of the same length.",
            remedy="Pass equal-length columns.",
        )
    return cols


def _numeric(values: NDArray[Any], name: str, where: str) -> NDArray[np.float64]:
    if values.dtype.kind not in "iufb":
        raise InvalidInputError(
            f"Column {name!r} of the {where} is numeric in the reference but holds {values.dtype} values.",
            remedy="Pass numbers for numeric columns, or fit the column as categorical.",
        )
    out = values.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(
            f"Column {name!r} of the {where} has missing or infinite values.",
            remedy="Impute or drop missing values before testing for drift.",
        )
    return out


def _categories(values: NDArray[Any]) -> NDArray[Any]:
    """Categorical values in a sortable dtype: numbers as they are, anything else as text."""
    return values if values.dtype.kind in "iufbU" else values.astype(str)


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def _floored(shares: NDArray[np.float64]) -> NDArray[np.float64]:
    """Empty bins get a small share, so that PSI stays finite (Evidently's rule)."""
    nonzero = shares[shares != 0]
    if nonzero.size in {shares.size, 0}:
        return shares
    smallest = nonzero.min()
    out = shares.copy()
    out[shares == 0] = smallest / 10**6 if smallest <= _PSI_FLOOR else _PSI_FLOOR
    return out


def _psi(reference_shares: NDArray[np.float64], current_shares: NDArray[np.float64]) -> float:
    r, c = _floored(reference_shares), _floored(current_shares)
    return float(np.sum((r - c) * np.log(r / c)))


def _inclusive_counts(sorted_values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """np.histogram's counts of presorted values in bins ``edges`` (half-open bins, the last one closed)."""
    cum = np.concatenate(
        (sorted_values.searchsorted(edges[:-1], "left"), sorted_values.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cum).astype(np.int64)


def _sturges_edges(low: float, high: float, size: int) -> NDArray[np.float64]:
    """np.histogram_bin_edges(data, bins="sturges") for data of ``size`` values spanning [low, high]."""
    width = (high - low) / (np.log2(size) + 1.0)
    bins = int(np.ceil((high - low) / width)) if width else 1
    return np.linspace(low, high, bins + 1, endpoint=True, dtype=np.float64)  # what histogram_bin_edges returns


@dataclass(frozen=True)
class _CategoryTest:
    statistic: float
    p_value: float
    tvd: float
    psi: float


def _category_test(
    ref_values: NDArray[Any], ref_counts: NDArray[np.int64], values: NDArray[Any], *, psi: bool = True
) -> _CategoryTest:
    """Chi-squared goodness of fit of ``values`` against the reference counts, TVD and PSI over the union."""
    from scipy.stats import chi2

    cur_values, cur_counts = np.unique(values, return_counts=True)
    keys = np.union1d(ref_values, cur_values)
    ref = np.zeros(keys.size, dtype=np.int64)
    cur = np.zeros(keys.size, dtype=np.int64)
    ref[keys.searchsorted(ref_values)] = ref_counts
    cur[keys.searchsorted(cur_values)] = cur_counts
    n, m = int(ref_counts.sum()), int(values.size)
    expected = ref * (m / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (cur.astype(np.float64) - expected) ** 2 / expected
    if keys.size < 2:
        statistic, p_value = 0.0, 1.0
    else:
        statistic = float(terms.sum())
        p_value = float(chi2.sf(statistic, keys.size - 1))
    ref_shares, cur_shares = ref / n, cur / m
    tvd = float(0.5 * np.abs(ref_shares - cur_shares).sum())
    return _CategoryTest(statistic, p_value, tvd, _psi(ref_shares, cur_shares) if psi else math.nan)


def _ks_asymptotic_p(d: NDArray[np.float64], n: int, m: int) -> NDArray[np.float64]:
    from scipy.stats import kstwo

    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    return np.clip(np.asarray(kstwo.sf(d, np.round(en)), dtype=np.float64), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# The reference


class DriftReference:
    """The reference distribution of each column, and of the model's predictions; compares windows with it.

    ``alpha`` is the false discovery rate across columns, ``min_effect`` the smallest effect size (KS D, or total
    variation distance for categories) that counts as drift. ``ks_method`` is ``scipy.stats.ks_2samp``'s
    ``method``: ``"auto"`` (its default: exact p-values when neither sample exceeds 10,000 rows), ``"exact"`` or
    ``"asymp"``. Exact p-values cost about 30 ms a column for 10,000 x 1,000 rows; a live monitor with a small
    reference may prefer ``"asymp"`` (the asymptotic p-value, vectorised over columns).
    """

    def __init__(self, *, alpha: float = 0.05, min_effect: float = 0.05, ks_method: str = "auto") -> None:
        if ks_method not in {"auto", "exact", "asymp"}:
            raise InvalidParameterError(
                f"ks_method must be 'auto', 'exact' or 'asymp'; got {ks_method!r}.", remedy="Use 'auto'."
            )
        if not 0.0 < alpha < 1.0:
            raise InvalidParameterError(f"alpha must lie in (0, 1); got {alpha!r}.", remedy="Use e.g. 0.05.")
        if not 0.0 <= min_effect <= 1.0:
            raise InvalidParameterError(
                f"min_effect must lie in [0, 1]; got {min_effect!r}.", remedy="Use e.g. 0.05 (0 disables it)."
            )
        self.alpha = alpha
        self.min_effect = min_effect
        self.ks_method = ks_method

    def fit(
        self,
        x: Columns,
        *,
        columns: Sequence[str] | None = None,
        kinds: Mapping[str, ColumnKind | str] | Sequence[ColumnKind | str] | None = None,
        predictions: ArrayLike | None = None,
    ) -> Self:
        """Learn the reference from ``x`` (a 2-D array, or a mapping of column name to values).

        ``columns`` names the columns of a 2-D array (default ``x0, x1, ...``); ``kinds`` says which are numeric
        and which categorical (default: numeric for numbers, categorical for text and booleans); ``predictions``
        are the model's labels on the reference rows, for prediction drift.
        """
        cols = _as_columns(x, columns, "reference")
        names = tuple(cols)
        kind_of = self._kinds(cols, kinds)
        n = next(iter(cols.values())).shape[0]
        if n < 2:
            raise InvalidInputError(f"The reference has {n} row(s).", remedy="Fit on at least two rows.")
        numeric = [name for name in names if kind_of[name] is ColumnKind.NUMERIC]
        # One row per numeric column (contiguous: searchsorted on a strided column would copy it every time).
        matrix = (
            np.stack([_numeric(cols[name], name, "reference") for name in numeric]) if numeric else np.empty((0, n))
        )
        self.sorted_ = np.sort(matrix, axis=1)
        self.sorted_.setflags(write=False)
        distinct = (np.diff(self.sorted_, axis=1) != 0).sum(axis=1) + 1
        self.n_distinct_ = tuple(int(v) for v in distinct)
        # Columns with few distinct values get one PSI bin per value: keep the values and their counts.
        self.discrete_: dict[int, tuple[NDArray[np.float64], NDArray[np.int64]]] = {}
        for j, count in enumerate(self.n_distinct_):
            if count <= _PSI_MAX_DISCRETE:
                values, counts = np.unique(self.sorted_[j], return_counts=True)
                self.discrete_[j] = (values, counts.astype(np.int64))
        self.categories_: dict[str, tuple[NDArray[Any], NDArray[np.int64]]] = {}
        for name in names:
            if kind_of[name] is ColumnKind.CATEGORICAL:
                values, counts = np.unique(_categories(cols[name]), return_counts=True)
                self.categories_[name] = (values, counts.astype(np.int64))
        self.columns_ = names
        self.kinds_ = MappingProxyType(kind_of)
        self.numeric_ = tuple(numeric)
        self.n_reference_ = int(n)
        self.predictions_: tuple[NDArray[Any], NDArray[np.int64]] | None = None
        if predictions is not None:
            labels = np.asarray(predictions).reshape(-1)
            if labels.size != n:
                raise InvalidInputError(
                    f"{labels.size} predictions for {n} reference rows.", remedy="Pass one prediction per row."
                )
            values, counts = np.unique(_categories(labels), return_counts=True)
            self.predictions_ = (values, counts.astype(np.int64))
        return self

    @staticmethod
    def _kinds(
        cols: Mapping[str, NDArray[Any]],
        kinds: Mapping[str, ColumnKind | str] | Sequence[ColumnKind | str] | None,
    ) -> dict[str, ColumnKind]:
        def parse(value: ColumnKind | str) -> ColumnKind:
            try:
                return ColumnKind(value)
            except ValueError as exc:
                raise InvalidParameterError(
                    f"Unknown column kind {value!r}.", remedy="Use 'numeric' or 'categorical'."
                ) from exc

        if kinds is None:
            given: dict[str, ColumnKind] = {}
        elif isinstance(kinds, Mapping):
            unknown = [k for k in kinds if k not in cols]
            if unknown:
                raise InvalidParameterError(
                    f"kinds names unknown column(s) {unknown[:10]}.", remedy="Name columns of the reference."
                )
            given = {str(k): parse(v) for k, v in kinds.items()}
        else:
            if isinstance(kinds, str) or len(kinds) != len(cols):
                raise InvalidParameterError(
                    f"kinds must give one kind per column ({len(cols)}).", remedy="Pass a list, or a dict by name."
                )
            given = {name: parse(k) for name, k in zip(cols, kinds, strict=True)}
        return {
            name: given.get(name, ColumnKind.NUMERIC if values.dtype.kind in "iuf" else ColumnKind.CATEGORICAL)
            for name, values in cols.items()
        }

    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("This DriftReference is not fitted.", remedy="Call fit(reference) first.")

    def compare(self, window: Columns, *, predictions: ArrayLike | None = None) -> DriftResult:
        """Test ``window`` (same columns as the reference) against the reference; see the module docstring."""
        self._check_fitted()
        cols = _as_columns(window, self.columns_, "window")
        m = next(iter(cols.values())).shape[0]
        if m < 1:
            raise InvalidInputError("The window has no rows.", remedy="Pass at least one row.")
        results: dict[str, tuple[str, float, float, float, float]] = {}
        if self.numeric_:
            current = np.sort(np.stack([_numeric(cols[c], c, "window") for c in self.numeric_]), axis=1)
            for name, stats in zip(self.numeric_, self._numeric_tests(current), strict=True):
                results[name] = stats
        for name, (values, counts) in self.categories_.items():
            t = _category_test(values, counts, _categories(cols[name]))
            results[name] = ("chisquare", t.statistic, t.p_value, t.tvd, t.psi)
        p_values = np.array([results[c][2] for c in self.columns_])
        q_values = benjamini_hochberg(p_values)
        drift_columns = tuple(
            ColumnDrift(
                name=c,
                kind=self.kinds_[c],
                test=results[c][0],
                statistic=results[c][1],
                p_value=results[c][2],
                q_value=float(q),
                effect=results[c][3],
                psi=results[c][4],
                drifted=bool(q < self.alpha and results[c][3] >= self.min_effect),
            )
            for c, q in zip(self.columns_, q_values, strict=True)
        )
        return DriftResult(
            columns=drift_columns,
            prediction=self._prediction_test(predictions, m),
            n_reference=self.n_reference_,
            n_current=int(m),
            alpha=self.alpha,
            min_effect=self.min_effect,
        )

    def _numeric_tests(self, current: NDArray[np.float64]) -> list[tuple[str, float, float, float, float]]:
        """KS D, p-value and PSI of each numeric column; ``current`` holds one sorted row per column."""
        n, m = self.n_reference_, current.shape[1]
        d = np.empty(current.shape[0])
        psi = np.empty(current.shape[0])
        for j in range(current.shape[0]):
            ref, cur = self.sorted_[j], current[j]
            right = ref.searchsorted(cur, "right")
            left = right.copy()  # differs from right only where the window's value occurs in the reference
            tied = np.flatnonzero(ref[np.maximum(right - 1, 0)] == cur)
            if tied.size:
                left[tied] = ref.searchsorted(cur[tied], "left")
            ref_right, ref_left = right / n, left / n
            cur_right = cur.searchsorted(cur, "right") / m
            cur_left = cur.searchsorted(cur, "left") / m
            # The CDF gap changes only at data points; between two window points it is largest at either end.
            d[j] = max(np.abs(ref_right - cur_right).max(), np.abs(ref_left - cur_left).max())
            psi[j] = self._numeric_psi(j, cur)
        exact = self.ks_method == "exact" or (self.ks_method == "auto" and max(n, m) <= _KS_EXACT_MAX_N)
        if exact:
            from scipy.stats import ks_2samp

            p = np.array([float(ks_2samp(self.sorted_[j], current[j], method="exact").pvalue) for j in range(d.size)])
        else:
            p = _ks_asymptotic_p(d, n, m)
        return [("ks", float(d[j]), float(p[j]), float(d[j]), float(psi[j])) for j in range(d.size)]

    def _numeric_psi(self, j: int, cur: NDArray[np.float64]) -> float:
        ref = self.sorted_[j]
        n, m = ref.size, cur.size
        if self.n_distinct_[j] > _PSI_MAX_DISCRETE:
            edges = _sturges_edges(min(ref[0], cur[0]), max(ref[-1], cur[-1]), n + m)
            return _psi(_inclusive_counts(ref, edges) / n, _inclusive_counts(cur, edges) / m)
        values, counts = self.discrete_[j]
        keys = np.union1d(values, cur)
        ref_counts = np.zeros(keys.size, dtype=np.int64)
        ref_counts[keys.searchsorted(values)] = counts
        cur_counts = np.diff(cur.searchsorted(keys, "left"), append=m)
        return _psi(ref_counts / n, cur_counts / m)

    def _prediction_test(self, predictions: ArrayLike | None, m: int) -> ColumnDrift | None:
        if predictions is None or self.predictions_ is None:
            return None
        labels = _categories(np.asarray(predictions).reshape(-1))
        if labels.size != m:
            raise InvalidInputError(f"{labels.size} predictions for {m} window rows.", remedy="One per row.")
        t = _category_test(*self.predictions_, labels)
        return ColumnDrift(
            name="prediction",
            kind=ColumnKind.CATEGORICAL,
            test="chisquare",
            statistic=t.statistic,
            p_value=t.p_value,
            q_value=t.p_value,
            effect=t.tvd,
            psi=t.psi,
            drifted=bool(t.p_value < self.alpha and t.tvd >= self.min_effect),
        )


# ---------------------------------------------------------------------------------------------------------------
# Streaming


@dataclass(frozen=True)
class Histogram:
    """One column's distribution in the reference and in the current window, as shares per bin (for plots)."""

    column: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    n_current: int


class DriftMonitor:
    """Drift on live traffic: a ring buffer of the last ``window`` rows, tested every ``step`` rows.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> monitor = DriftMonitor(DriftReference().fit(rng.normal(size=(2000, 2))), window=500, step=250)
    >>> [monitor.update(rng.normal(size=(250, 2))) is None for _ in range(3)]
    [True, False, False]
    """

    def __init__(
        self, reference: DriftReference, *, window: int = 1000, step: int | None = None, feedback_window: int = 1000
    ) -> None:
        reference._check_fitted()
        step = window if step is None else step
        for name, value in (("window", window), ("step", step), ("feedback_window", feedback_window)):
            if not isinstance(value, int) or value < 1:
                raise InvalidParameterError(
                    f"{name} must be a positive integer; got {value!r}.", remedy="Use e.g. 1000."
                )
        self.reference = reference
        self.window = window
        self.step = step
        self.feedback_window = feedback_window
        self._lock = threading.Lock()
        self._buffers: dict[str, NDArray[Any]] = {}
        self._predictions: NDArray[Any] | None = None
        self._label_run = 0  # rows in a row that came with predicted labels
        self._seen = 0  # rows appended in all
        self._since = 0  # rows since the last result
        self._correct = np.zeros(feedback_window, dtype=bool)
        self._feedback_seen = 0
        self._latest: DriftResult | None = None
        self._issued = 0  # windows handed out for testing
        self._latest_ticket = 0

    @property
    def latest(self) -> DriftResult | None:
        """The most recent result (None before the first full window)."""
        return self._latest

    @property
    def accuracy(self) -> float | None:
        """Accuracy over the last ``feedback_window`` labelled answers (None before any)."""
        with self._lock:
            return self._accuracy_locked()[0]

    def _accuracy_locked(self) -> tuple[float | None, int]:
        filled = min(self._feedback_seen, self.feedback_window)
        return (float(self._correct[:filled].mean()) if filled else None), filled

    def record_feedback(self, predicted: ArrayLike, true: ArrayLike) -> None:
        """Ground truth for earlier answers: the predicted and the true labels, pairwise."""
        p, t = np.asarray(predicted).reshape(-1), np.asarray(true).reshape(-1)
        if p.shape != t.shape:
            raise InvalidInputError(f"{p.size} predicted labels for {t.size} true ones.", remedy="Pass pairs.")
        correct = (p == t)[-self.feedback_window :]
        with self._lock:
            start = self._feedback_seen % self.feedback_window
            idx = (start + np.arange(correct.size)) % self.feedback_window
            self._correct[idx] = correct
            self._feedback_seen += int(p.size)

    def update(self, rows: Columns, predicted_labels: ArrayLike | None = None) -> DriftResult | None:
        """Append ``rows`` (and the model's labels for them); a fresh result every ``step`` rows, else None."""
        ref = self.reference
        cols = _as_columns(rows, ref.columns_, "rows")
        k = next(iter(cols.values())).shape[0]
        labels = None
        if predicted_labels is not None and ref.predictions_ is not None:
            labels = _categories(np.asarray(predicted_labels).reshape(-1))
            if labels.size != k:
                raise InvalidInputError(f"{labels.size} labels for {k} rows.", remedy="Pass one label per row.")
        prepared = {
            c: _numeric(v, c, "rows") if ref.kinds_[c] is ColumnKind.NUMERIC else _categories(v)
            for c, v in cols.items()
        }
        with self._lock:
            for c, v in prepared.items():
                self._buffers[c] = self._append(self._buffers.get(c), v)
            if labels is not None:
                self._predictions = self._append(self._predictions, labels)
                self._label_run += k
            else:
                self._label_run = 0
            self._seen += k
            self._since += k
            if self._seen < self.window or self._since < self.step:
                return None
            self._since = 0
            self._issued += 1
            ticket = self._issued
            snapshot = {c: self._ordered(b) for c, b in self._buffers.items()}
            labelled = self._predictions is not None and self._label_run >= self.window
            preds = self._ordered(self._predictions) if labelled and self._predictions is not None else None
            accuracy, n_feedback = self._accuracy_locked()
        result = ref.compare(snapshot, predictions=preds)
        result = DriftResult(
            columns=result.columns,
            prediction=result.prediction,
            n_reference=result.n_reference,
            n_current=result.n_current,
            alpha=result.alpha,
            min_effect=result.min_effect,
            accuracy=accuracy,
            n_feedback=n_feedback,
        )
        with self._lock:  # a slower thread's older window never replaces a newer result
            if ticket > self._latest_ticket:
                self._latest, self._latest_ticket = result, ticket
        return result

    def histogram(self, column: str, *, bins: int = 12) -> Histogram | None:
        """The reference's and the current window's distributions of ``column`` as shares per bin (None before any
        row or for an unknown column): numeric columns on ``bins`` equal-width bins over the reference's 1st to
        99th percentile (the outer bins hold the tails), categorical ones per category (the reference's most
        frequent ``bins - 1``, then "other"); numeric columns of few distinct values (those PSI bins per value)
        one bin per value."""
        ref = self.reference
        if column not in ref.columns_ or not 2 <= bins <= 100:
            return None
        with self._lock:
            buffer = self._buffers.get(column)
            current = None if buffer is None else self._ordered(buffer)
        if current is None or current.size == 0:
            return None
        j = ref.numeric_.index(column) if ref.kinds_[column] is ColumnKind.NUMERIC else -1
        if j in ref.discrete_:  # a numeric column of few distinct values: one bar per value (current values between
            # or beyond them fall to the nearest value at or below, the lowest otherwise)
            points, counts = ref.discrete_[j]
            ref_counts = counts
            at = np.clip(np.searchsorted(points, current.astype(np.float64), side="right") - 1, 0, len(points) - 1)
            cur_counts = np.bincount(at, minlength=len(points))
            labels = tuple(f"{v:.3g}" for v in points)
        elif j >= 0:
            values = ref.sorted_[j]
            low, high = float(np.quantile(values, 0.01)), float(np.quantile(values, 0.99))
            if not high > low:  # a column that is nearly constant: its full range, or one unit around it
                low, high = float(values[0]), max(float(values[-1]), float(values[0]) + 1.0)
            edges = np.linspace(low, high, bins + 1)
            inner = edges[1:-1]
            ref_counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=bins)
            cur_counts = np.bincount(np.searchsorted(inner, current.astype(np.float64), side="right"), minlength=bins)
            labels = tuple(f"{m:.3g}" for m in (edges[:-1] + edges[1:]) / 2)
        else:
            cats, counts = ref.categories_[column]
            order = np.argsort(-counts, kind="stable")[: bins - 1]
            kept = [str(c) for c in cats[order]]
            ref_counts = np.append(counts[order], counts.sum() - counts[order].sum())
            shown = current.astype(str)
            cur_counts = np.array([int((shown == c).sum()) for c in kept] + [0])
            cur_counts[-1] = shown.size - cur_counts[:-1].sum()
            labels = (*kept, "other")
        return Histogram(
            column=column,
            labels=labels,
            reference=tuple(float(v) for v in ref_counts / max(ref_counts.sum(), 1)),
            current=tuple(float(v) for v in cur_counts / max(cur_counts.sum(), 1)),
            n_current=int(current.size),
        )

    def _append(self, buffer: NDArray[Any] | None, values: NDArray[Any]) -> NDArray[Any]:
        """Write ``values`` into a ring buffer (made on first use) at the current position."""
        if buffer is None:
            buffer = np.zeros(self.window, dtype=values.dtype)
        elif buffer.dtype != values.dtype:
            try:
                dtype = np.result_type(buffer.dtype, values.dtype)
            except TypeError:  # numbers and text in one categorical column: compare them as text
                dtype = np.result_type(buffer.astype(str).dtype, values.astype(str).dtype)
            if dtype != buffer.dtype:
                buffer = buffer.astype(dtype) if dtype.kind != "U" else buffer.astype(str).astype(dtype)
            values = values.astype(dtype) if dtype.kind != "U" else values.astype(str)
        tail = values[-self.window :]
        start = (self._seen + values.size - tail.size) % self.window
        idx = (start + np.arange(tail.size)) % self.window
        buffer[idx] = tail
        return buffer

    def _ordered(self, buffer: NDArray[Any]) -> NDArray[Any]:
        """The last ``window`` values (order does not matter to the tests); a copy."""
        return buffer[: min(self._seen, self.window)].copy()

    def prometheus(self, prefix: str = "modelshield_drift") -> str:
        """The latest result as Prometheus text ('' before the first full window)."""
        latest = self._latest
        return "" if latest is None else latest.prometheus(prefix)
