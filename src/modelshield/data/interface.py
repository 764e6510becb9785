"""Datasets: arrays with a schema, label names and a content digest.

    >>> from modelshield.data import load_digits, train_test_split
    >>> ds = load_digits()
    >>> ds.x.shape, ds.n_classes, ds.schema.input_shape
    ((1797, 1, 8, 8), 10, (1, 8, 8))
    >>> split = train_test_split(ds, test_size=0.25, seed=0)
    >>> len(split.train) + len(split.test) == len(ds)
    True

Features are described by a :class:`Schema` (name, kind, range, immutable, sensitive), which attacks use to keep
adversarial records valid and privacy checks use to know what is sensitive. ``Dataset.digest`` is a SHA-256 over
the exact contents (shapes, dtypes, bytes, label names), so a report names the data it saw.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError

__all__ = ["Dataset", "DatasetSplit", "Feature", "FeatureKind", "Schema"]


class FeatureKind(enum.StrEnum):
    CONTINUOUS = "continuous"
    INTEGER = "integer"
    BINARY = "binary"
    CATEGORICAL = "categorical"  # integer codes 0..len(categories)-1


@dataclass(frozen=True)
class Feature:
    """One input feature: its kind, its valid range, and whether it may change or is sensitive."""

    name: str
    kind: FeatureKind = FeatureKind.CONTINUOUS
    low: float | None = None
    high: float | None = None
    immutable: bool = False  # an attacker cannot change it (age, a record id); attacks must leave it alone
    sensitive: bool = False  # private (diagnosis, income); attribute-inference checks target it
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise InvalidParameterError(f"Feature {self.name!r}: low {self.low} is above high {self.high}.")


@dataclass(frozen=True)
class Schema:
    """The features of a dataset, in order, the shape one input takes, and the label column."""

    features: tuple[Feature, ...]
    input_shape: tuple[int, ...]
    label: str = "label"

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if int(np.prod(self.input_shape)) != len(self.features):
            raise InvalidParameterError(
                f"Schema has {len(self.features)} features but input shape {self.input_shape} "
                f"holds {int(np.prod(self.input_shape))} values."
            )
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise InvalidParameterError("Schema feature names must be unique.")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]] | None:
        """Per-feature (low, high) shaped like one input, or None unless every feature has both ends."""
        if any(f.low is None or f.high is None for f in self.features):
            return None
        low = np.array([f.low for f in self.features], dtype=np.float32).reshape(self.input_shape)
        high = np.array([f.high for f in self.features], dtype=np.float32).reshape(self.input_shape)
        return low, high

    @classmethod
    def continuous(
        cls,
        names: tuple[str, ...] | list[str],
        input_shape: tuple[int, ...] | None = None,
        *,
        low: float | NDArray[np.floating] | None = None,
        high: float | NDArray[np.floating] | None = None,
        label: str = "label",
    ) -> Schema:
        """A schema of continuous features with one range for all (scalars) or per feature (arrays)."""
        n = len(names)
        lows = np.broadcast_to(np.asarray(low if low is not None else np.nan, dtype=np.float64), (n,))
        highs = np.broadcast_to(np.asarray(high if high is not None else np.nan, dtype=np.float64), (n,))
        features = tuple(
            Feature(
                name,
                low=None if np.isnan(lo) else float(lo),
                high=None if np.isnan(hi) else float(hi),
            )
            for name, lo, hi in zip(names, lows, highs, strict=True)
        )
        return cls(features=features, input_shape=input_shape or (n,), label=label)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs ``x`` of shape ``(n, *schema.input_shape)`` (float32) and integer labels ``y`` in ``0..n_classes-1``."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    schema: Schema
    label_names: tuple[str, ...]
    name: str = "dataset"
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        # Copies, always: a dataset is immutable, so the caller's arrays must not alias it.
        x = np.array(self.x, dtype=np.float32, order="C", copy=True)
        y_raw = np.asarray(self.y)
        if y_raw.dtype.kind == "f" and y_raw.size and not np.all(np.isfinite(y_raw) & (y_raw == np.round(y_raw))):
            raise InvalidInputError(
                f"Dataset {self.name!r}: labels must be whole class indices, got fractional values.",
                remedy="Encode the label column as integer class codes 0..n_classes-1.",
            )
        if y_raw.dtype.kind not in "iubf":
            raise InvalidInputError(
                f"Dataset {self.name!r}: labels must be integer class indices, got dtype {y_raw.dtype}.",
                remedy="Encode the label column as integer class codes 0..n_classes-1.",
            )
        y = np.array(y_raw, dtype=np.int64, order="C", copy=True)
        if x.shape[1:] != self.schema.input_shape:
            raise InvalidInputError(
                f"Dataset {self.name!r}: inputs of shape {x.shape[1:]} do not match the schema's "
                f"{self.schema.input_shape}."
            )
        if y.shape != (len(x),):
            raise InvalidInputError(f"Dataset {self.name!r}: {len(x)} inputs but labels of shape {y.shape}.")
        if len(self.label_names) < 2:
            raise InvalidInputError(f"Dataset {self.name!r} needs at least two classes, got {self.label_names}.")
        if len(set(self.label_names)) != len(self.label_names):
            raise InvalidInputError(f"Dataset {self.name!r}: label names must be unique, got {self.label_names}.")
        if len(y) and (y.min() < 0 or y.max() >= len(self.label_names)):
            raise InvalidInputError(
                f"Dataset {self.name!r}: labels must lie in 0..{len(self.label_names) - 1}, got {y.min()}..{y.max()}."
            )
        if not np.all(np.isfinite(x)):
            raise InvalidInputError(
                f"Dataset {self.name!r} contains NaN or infinite values.",
                remedy="Impute or drop missing values before loading it.",
            )
        x.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "label_names", tuple(str(name) for name in self.label_names))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def n_features(self) -> int:
        return len(self.schema.features)

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the contents: shapes, dtypes, input and label bytes, label names."""
        h = hashlib.sha256()
        for arr in (self.x, self.y):
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        h.update("\x00".join(self.label_names).encode())
        return h.hexdigest()

    def class_counts(self) -> NDArray[np.int64]:
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)

    def subset(self, index: NDArray[np.integer] | slice, *, name: str | None = None) -> Dataset:
        """The rows at ``index``, with the same schema and label names."""
        return Dataset(
            x=self.x[index],
            y=self.y[index],
            schema=self.schema,
            label_names=self.label_names,
            name=name or self.name,
            description=self.description,
            source=self.source,
        )

    def relabel(self, classes: Sequence[str]) -> Dataset:
        """The same records with ``classes`` as the label names, in that order: each record keeps its label's name,
        which now has the index of that name in ``classes`` (a model's output order, say).

        A label of the data that ``classes`` does not contain is refused, naming the value and the label column.
        """
        names = tuple(str(c) for c in classes)
        if len(set(names)) != len(names):
            raise InvalidInputError(f"Class names must be unique, got {list(names)}.")
        index = {name: i for i, name in enumerate(names)}
        present = np.flatnonzero(self.class_counts())
        unknown = [self.label_names[k] for k in present if self.label_names[k] not in index]
        if unknown:
            raise InvalidInputError(
                f"Label {unknown[0]!r} in column {self.schema.label!r} of {self.name!r} is not one of the classes "
                f"{', '.join(names)}.",
                remedy="Name every class that the label column holds, in the model's output order.",
            )
        codes = np.array([index.get(name, -1) for name in self.label_names], dtype=np.int64)
        return Dataset(
            x=self.x,
            y=codes[self.y],
            schema=self.schema,
            label_names=names,
            name=self.name,
            description=self.description,
            source=self.source,
        )

    def flat(self) -> NDArray[np.float32]:
        """Inputs as a 2-D ``(n, n_features)`` view."""
        return self.x.reshape(len(self.x), self.n_features)  # not -1: that cannot be inferred for zero rows

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, input_shape={self.schema.input_shape}, "
            f"classes={self.n_classes}, digest={self.digest[:12]})"
        )


@dataclass(frozen=True)
class DatasetSplit:
    """A train/test split of one dataset, with the seed that made it."""

    train: Dataset
    test: Dataset
    seed: int = field(default=0)
