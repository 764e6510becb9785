"""Load user data from CSV, Parquet or NPZ files, with a named label column.

    >>> from modelshield.data import load_table
    >>> test = load_table("test.csv", label="diagnosis")  # doctest: +SKIP
    >>> test.label_names  # doctest: +SKIP
    ('0', '1')

Labels are encoded as ``0..k-1`` in the sorted order of their values (numbers numerically), and the names kept.
Features must be numeric and complete: a text column or a missing value is refused with the column named, never
guessed at. NPZ files are read with ``allow_pickle=False``: an object array is refused, not unpickled.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from modelshield._extras import require
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.errors import FileFormatError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_csv", "load_npz", "load_parquet", "load_table"]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileFormatError(f"Data file {path} does not exist.", remedy="Check the path.")
    if not path.is_file():
        raise FileFormatError(f"{path} is not a regular file.", remedy="Pass the data file itself.")


def _encode_labels(values: NDArray[np.generic], where: str) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    if values.dtype.kind in "iufb":
        classes, codes = np.unique(values, return_inverse=True)
        names = tuple(str(c.item()) if hasattr(c, "item") else str(c) for c in classes)
        if values.dtype.kind == "f" and np.all(classes == np.round(classes)):
            names = tuple(str(int(c)) for c in classes)
    else:
        text = values.astype(str)
        classes, codes = np.unique(text, return_inverse=True)
        names = tuple(str(c) for c in classes)
    if len(names) < 2:
        raise InvalidInputError(
            f"The labels in {where} take only {len(names)} value(s): {list(names)}.",
            remedy="A classifier's data needs at least two classes; check the label column.",
        )
    return codes.astype(np.int64), names


def _feature(name: str, column: NDArray[np.float32]) -> Feature:
    low, high = float(column.min()), float(column.max())
    if np.all(np.isin(column, (0.0, 1.0))):
        kind = FeatureKind.BINARY
    elif np.all(column == np.round(column)):
        kind = FeatureKind.INTEGER
    else:
        kind = FeatureKind.CONTINUOUS
    return Feature(name, kind, low=low, high=high)


def _from_frame(frame: pd.DataFrame, *, path: Path, label: str, name: str | None) -> Dataset:
    if label not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20])) + (" ..." if len(frame.columns) > 20 else "")
        raise InvalidInputError(
            f"{path} has no label column {label!r}; its columns are: {shown}.",
            remedy="Name the label column with --label (label= in Python).",
        )
    if len(frame) == 0:
        raise InvalidInputError(f"{path} has no rows.")
    features = frame.drop(columns=[label])
    text = [str(c) for c in features.columns if features[c].dtype.kind not in "iufb"]
    if text:
        raise InvalidInputError(
            f"{path}: column(s) {text[:10]} are not numeric.",
            remedy="Encode categorical or text columns as numbers (for example one-hot) before loading.",
        )
    missing = features.isna().sum()
    missing = missing[missing > 0]
    if len(missing) or frame[label].isna().any():
        detail = ", ".join(f"{c} ({n})" for c, n in missing.items())
        if frame[label].isna().any():
            detail = ", ".join(filter(None, [detail, f"{label} ({int(frame[label].isna().sum())})"]))
        raise InvalidInputError(
            f"{path} has missing values in: {detail}.", remedy="Impute or drop missing values before loading."
        )
    x = features.to_numpy(dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{path} contains infinite or out-of-range feature values.")
    y, label_names = _encode_labels(frame[label].to_numpy(), str(path))
    schema = Schema(
        features=tuple(_feature(str(c), x[:, j]) for j, c in enumerate(features.columns)),
        input_shape=(x.shape[1],),
        label=label,
    )
    return Dataset(x=x, y=y, schema=schema, label_names=label_names, name=name or path.stem, source=str(path))


def load_csv(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """A dataset from a CSV file with a header row; ``label`` names the label column."""
    import pandas as pd

    path = Path(path)
    _check_file(path)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise FileFormatError(f"{path} is not a readable CSV file: {' '.join(str(exc).split())}") from exc
    return _from_frame(frame, path=path, label=label, name=name)


def load_parquet(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """A dataset from a Parquet file (needs the ``data`` extra for pyarrow)."""
    import pandas as pd

    require("pyarrow", extra="data", feature="Reading Parquet files")
    path = Path(path)
    _check_file(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise FileFormatError(f"{path} is not a readable Parquet file: {' '.join(str(exc).split())}") from exc
    return _from_frame(frame, path=path, label=label, name=name)


def load_npz(
    path: str | Path,
    *,
    x_key: str = "x",
    y_key: str = "y",
    label_names: tuple[str, ...] | None = None,
    name: str | None = None,
) -> Dataset:
    """A dataset from an ``.npz`` with inputs ``x`` (any shape ``(n, ...)``) and labels ``y``; never unpickles."""
    path = Path(path)
    _check_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in (x_key, y_key) if k not in npz.files]
            if missing:
                raise InvalidInputError(
                    f"{path} has no array(s) {missing}; it holds {npz.files}.",
                    remedy="Store the inputs as 'x' and the labels as 'y', or name the keys.",
                )
            x = npz[x_key]
            y_raw = npz[y_key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise FileFormatError(
                f"{path} holds arrays of Python objects, which load only by unpickling; modelshield refuses to.",
                remedy="Save plain numeric arrays (np.savez with numeric dtypes).",
            ) from exc
        raise FileFormatError(f"{path} is not a readable NPZ file: {exc}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FileFormatError(f"{path} is not a readable NPZ file: {exc}") from exc
    if x.ndim < 2 or len(x) != len(y_raw) or y_raw.ndim != 1:
        raise InvalidInputError(
            f"{path}: x has shape {x.shape} and y {y_raw.shape}; expected x of shape (n, ...) and y of shape (n,)."
        )
    if x.dtype.kind not in "iufb":
        raise InvalidInputError(f"{path}: x has dtype {x.dtype}, which is not numeric.")
    y, names = _encode_labels(y_raw, str(path))
    if label_names is not None:
        if len(label_names) < len(names):
            raise InvalidInputError(f"{path} has {len(names)} classes but {len(label_names)} label names were given.")
        names = tuple(label_names)
    x = x.astype(np.float32)
    flat = x.reshape(len(x), -1)
    shape = tuple(int(d) for d in x.shape[1:])
    if len(shape) == 1:
        features = tuple(_feature(f"x{j}", flat[:, j]) for j in range(flat.shape[1]))
        schema = Schema(features=features, input_shape=shape, label=y_key)
    else:
        names_ = tuple(f"x{j}" for j in range(flat.shape[1]))
        schema = Schema.continuous(names_, shape, low=float(flat.min()), high=float(flat.max()), label=y_key)
    return Dataset(x=x, y=y, schema=schema, label_names=names, name=name or path.stem, source=str(path))


def load_table(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """CSV, Parquet or NPZ, recognised by content (Parquet's ``PAR1``, the zip header of NPZ), else by suffix."""
    path = Path(path)
    _check_file(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == b"PAR1" or (not head and path.suffix.lower() == ".parquet"):
        return load_parquet(path, label=label, name=name)
    if head.startswith(b"PK\x03\x04"):
        return load_npz(path, y_key=label if label != "label" else "y", name=name)
    if path.suffix.lower() in (".parquet", ".npz"):
        raise FileFormatError(f"{path} is named like a {path.suffix} file but its content is not one.")
    return load_csv(path, label=label, name=name)
