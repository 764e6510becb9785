"""Load user data from CSV, Parquet or NPZ files, with a named label column.

    >>> import pathlib, tempfile
    >>> from modelshield.data import load_table
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "toy.csv")
    ...     _ = path.write_text("age,smoker,label\\n61,1,sick\\n35,0,well\\n47,0,well\\n")
    ...     ds = load_table(path)
    >>> ds.label_names, ds.y.tolist(), [f.kind.value for f in ds.schema.features]
    (('sick', 'well'), [0, 1, 1], ['integer', 'binary'])

Labels are encoded as ``0..k-1`` in the sorted order of their values (numbers numerically), and the names kept.
That order is the file's own, not a model's: :meth:`Dataset.relabel` puts the labels in a model's class order
(:func:`modelshield.loading.align_data` does so for a model that names its classes).
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

__all__ = ["load_csv", "load_npz", "load_parquet", "load_table", "write_dataset"]

_PARQUET_MAGIC = b"PAR1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip's end record
_NUMERIC_KINDS = "iufb"  # signed, unsigned, float, bool


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileFormatError(f"Data file {path} does not exist.", remedy="Check the path.")
    if not path.is_file():
        raise FileFormatError(f"{path} is not a regular file.", remedy="Pass the data file itself.")


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(4)
    except OSError as exc:
        raise FileFormatError(f"{path} cannot be read: {_one_line(exc)}") from exc


def _encode_labels(values: NDArray[np.generic], where: str) -> tuple[NDArray[np.int64], tuple[str, ...]]:
    """Codes ``0..k-1`` in the sorted order of the distinct values, and those values as strings."""
    if values.dtype.kind in _NUMERIC_KINDS:
        classes, codes = np.unique(values, return_inverse=True)
        if values.dtype.kind == "f" and np.all(classes == np.round(classes)):
            names = tuple(str(int(c)) for c in classes)  # 2.0 -> "2": a CSV column of ints with a gap reads as float
        else:
            names = tuple(str(c.item()) for c in classes)
    else:
        classes, codes = np.unique(values.astype(str), return_inverse=True)
        names = tuple(str(c) for c in classes)
    if len(names) < 2:
        raise InvalidInputError(
            f"The labels in {where} take only {len(names)} value(s): {list(names)}.",
            remedy="A classifier's data needs at least two classes; check the label column.",
        )
    return codes.reshape(-1).astype(np.int64), names


def _feature(name: str, column: NDArray[np.float32]) -> Feature:
    low, high = float(column.min()), float(column.max())
    if np.all(np.isin(column, (0.0, 1.0))):
        kind = FeatureKind.BINARY
    elif np.all(column == np.round(column)):
        kind = FeatureKind.INTEGER
    else:
        kind = FeatureKind.CONTINUOUS
    return Feature(name, kind, low=low, high=high)


def _from_frame(frame: pd.DataFrame, *, path: Path, label: str, name: str | None, kind: str) -> Dataset:
    columns = [str(c) for c in frame.columns]
    if label not in frame.columns:
        shown = ", ".join(columns[:20]) + (f", ... ({len(columns) - 20} more)" if len(columns) > 20 else "")
        raise InvalidInputError(
            f"{path} has no label column {label!r}; its columns are: {shown}.",
            remedy="Name the label column with --label (label= in Python).",
        )
    if len(frame) == 0:
        raise InvalidInputError(f"{path} has no rows.", remedy="Pass a file with at least one row per class.")
    features = frame.drop(columns=[label])
    if features.shape[1] == 0:
        raise InvalidInputError(
            f"{path} has only the label column {label!r} and no feature columns.",
            remedy="Pass a file with the feature columns next to the label column.",
        )
    text = {str(c): str(dtype) for c, dtype in features.dtypes.items() if dtype.kind not in _NUMERIC_KINDS}
    if text:
        shown_text = list(text)[:10]
        raise InvalidInputError(
            f"{path}: column(s) {shown_text} are not numeric (dtypes: {', '.join(sorted(set(text.values())))}); "
            "encode them as numbers before loading.",
            remedy="Encode categorical or text columns as numbers (for example one-hot) before loading.",
        )
    counts = frame.isna().sum()
    missing = {str(c): int(n) for c, n in counts.items() if n > 0}
    if missing:
        detail = ", ".join(f"{c} ({n})" for c, n in missing.items())
        raise InvalidInputError(
            f"{path} has missing values in: {detail}.", remedy="Impute or drop the missing values before loading."
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
        x = features.to_numpy(dtype=np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        bad = [str(c) for c, ok in zip(features.columns, finite.all(axis=0), strict=True) if not ok]
        raise InvalidInputError(
            f"{path} has infinite values, or values too large for 32-bit floats, in: {', '.join(bad[:10])}.",
            remedy="Clip or rescale those columns before loading.",
        )
    y, label_names = _encode_labels(frame[label].to_numpy(), str(path))
    schema = Schema(
        features=tuple(_feature(str(c), x[:, j]) for j, c in enumerate(features.columns)),
        input_shape=(x.shape[1],),
        label=label,
    )
    return Dataset(
        x=x,
        y=y,
        schema=schema,
        label_names=label_names,
        name=name or path.stem,
        description=f"{len(x)} rows x {x.shape[1]} features from the {kind} file {path.name}, label {label!r}.",
        source=str(path),
    )


def load_csv(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """A dataset from a CSV file with a header row; ``label`` names the label column.

    Read once with pandas' C parser; compressed files (``.csv.gz``, ``.csv.zst``, ...) work by their suffix.
    """
    import pandas as pd

    path = Path(path)
    _check_file(path)
    try:
        # low_memory=False: type each column from all its rows, not chunk by chunk (no mixed-type columns).
        frame = pd.read_csv(path, engine="c", low_memory=False)
    except (ValueError, OSError) as exc:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError
        raise FileFormatError(f"{path} is not a readable CSV file: {_one_line(exc)}") from exc
    return _from_frame(frame, path=path, label=label, name=name, kind="CSV")


def load_parquet(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """A dataset from a Parquet file; ``label`` names the label column. Needs the ``data`` extra (pyarrow)."""
    pyarrow = require("pyarrow", extra="data", feature="Reading Parquet files")
    import pandas as pd

    path = Path(path)
    _check_file(path)
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except (pyarrow.ArrowException, ValueError, OSError) as exc:
        raise FileFormatError(f"{path} is not a readable Parquet file: {_one_line(exc)}") from exc
    return _from_frame(frame, path=path, label=label, name=name, kind="Parquet")


def _read_npz(
    path: Path, x_key: str, y_key: str
) -> tuple[NDArray[np.generic], NDArray[np.generic], tuple[str, ...] | None]:
    if not _head(path).startswith(_ZIP_MAGICS):
        raise FileFormatError(
            f"{path} is not an NPZ archive (it has no zip header).",
            remedy="Save the arrays with numpy.savez(path, x=..., y=...).",
        )
    try:
        # np.load(path) leaks its file handle when the zip is corrupt: open and close the file here.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            keys = list(npz.files)
            if x_key in keys and y_key in keys:
                names = npz["label_names"] if "label_names" in keys else None
                if names is not None and (names.ndim != 1 or names.dtype.kind != "U"):
                    names = None  # not ours: labels are encoded from their values
                return npz[x_key], npz[y_key], None if names is None else tuple(str(n) for n in names)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
            raise FileFormatError(
                f"{path} holds arrays of Python objects, which load only by unpickling (which can run code); "
                "modelshield refuses to.",
                remedy="Save plain numeric arrays (numpy.savez with numeric dtypes; labels may be strings).",
            ) from exc
        raise FileFormatError(f"{path} is not a readable NPZ file: {_one_line(exc)}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"{path} is not a readable NPZ file: {_one_line(exc)}") from exc
    absent = [k for k in (x_key, y_key) if k not in keys]
    raise InvalidInputError(
        f"{path} has no array(s) {absent}; it holds {keys}.",
        remedy="Store the inputs as 'x' and the labels as 'y', or name the keys (x_key=, y_key=).",
    )


def load_npz(
    path: str | Path,
    *,
    x_key: str = "x",
    y_key: str = "y",
    label_names: tuple[str, ...] | None = None,
    name: str | None = None,
) -> Dataset:
    """A dataset from an ``.npz`` with inputs ``x_key`` (shape ``(n, ...)``) and labels ``y_key``; never unpickles.

    Without ``label_names`` (given, or stored in the archive as a string array ``label_names`` beside integer
    labels, as :func:`write_dataset` does) the labels are encoded like a table's (sorted distinct values). With
    them, ``y`` must already hold the class indices ``0..len(label_names)-1`` and is kept as it is.
    """
    path = Path(path)
    _check_file(path)
    x_raw, y_raw, stored_names = _read_npz(path, x_key, y_key)
    if label_names is None and stored_names is not None and y_raw.dtype.kind in "iu":
        label_names = stored_names  # written by write_dataset: y holds class indices into these names
    if x_raw.ndim < 2 or y_raw.ndim != 1 or len(x_raw) != len(y_raw):
        raise InvalidInputError(
            f"{path}: {x_key!r} has shape {x_raw.shape} and {y_key!r} {y_raw.shape}; "
            "expected inputs of shape (n, ...) and labels of shape (n,)."
        )
    if x_raw.dtype.kind not in _NUMERIC_KINDS:
        raise InvalidInputError(f"{path}: {x_key!r} has dtype {x_raw.dtype}, which is not numeric.")
    if len(x_raw) == 0:
        raise InvalidInputError(f"{path} has no rows.")
    if y_raw.dtype.kind not in _NUMERIC_KINDS + "US":
        raise InvalidInputError(f"{path}: {y_key!r} has dtype {y_raw.dtype}; labels must be numbers or strings.")
    if y_raw.dtype.kind == "f" and not np.all(np.isfinite(y_raw)):
        raise InvalidInputError(f"{path}: {y_key!r} has {int(np.sum(~np.isfinite(y_raw)))} NaN or infinite labels.")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
        x: NDArray[np.float32] = x_raw.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(
            f"{path}: {x_key!r} has {int(np.sum(~np.isfinite(x)))} NaN, infinite or too large values.",
            remedy="Impute, clip or rescale them before loading.",
        )
    if label_names is None:
        y, names = _encode_labels(y_raw, str(path))
    else:
        names = tuple(str(n) for n in label_names)
        k = len(names)
        as_float = y_raw.astype(np.float64) if y_raw.dtype.kind in _NUMERIC_KINDS else None
        if as_float is None or not np.all(as_float % 1 == 0):
            raise InvalidInputError(f"{path}: with label_names, {y_key!r} must hold class indices 0..{k - 1}.")
        y = y_raw.astype(np.int64)
        if y.min() < 0 or y.max() >= k:
            raise InvalidInputError(
                f"{path}: {y_key!r} holds class indices {y.min()}..{y.max()} but {k} label names were given."
            )
    flat = x.reshape(len(x), -1)
    feature_names = tuple(f"{x_key}_{j}" for j in range(flat.shape[1]))
    if x.ndim == 2:
        schema = Schema(
            features=tuple(_feature(n, flat[:, j]) for j, n in enumerate(feature_names)),
            input_shape=(flat.shape[1],),
            label=y_key,
        )
    else:  # images and other tensors: one range for every value
        shape = tuple(int(d) for d in x.shape[1:])
        schema = Schema.continuous(feature_names, shape, low=float(flat.min()), high=float(flat.max()), label=y_key)
    return Dataset(
        x=x,
        y=y,
        schema=schema,
        label_names=names,
        name=name or path.stem,
        description=f"{len(x)} inputs of shape {schema.input_shape} from the NPZ file {path.name}.",
        source=str(path),
    )


def load_table(path: str | Path, *, label: str = "label", name: str | None = None) -> Dataset:
    """CSV, Parquet or NPZ, recognised by content (Parquet's ``PAR1``, NPZ's zip header), else read as CSV.

    A file named ``.parquet`` or ``.npz`` whose content is not one is refused rather than guessed at. For NPZ,
    ``label`` names the label array; the default ``"label"`` means the array ``y``.
    """
    path = Path(path)
    _check_file(path)
    head = _head(path)
    suffix = path.suffix.lower()
    if head == _PARQUET_MAGIC:
        return load_parquet(path, label=label, name=name)
    if head.startswith(_ZIP_MAGICS):
        return load_npz(path, y_key="y" if label == "label" else label, name=name)
    if suffix in (".parquet", ".npz"):
        raise FileFormatError(
            f"{path} is named like a {suffix} file but its content is not one.",
            remedy="Check the file; it may be truncated, or of another format.",
        )
    return load_csv(path, label=label, name=name)


def write_dataset(data: Dataset, path: str | Path) -> None:
    """Write ``data`` so that :func:`load_table` reads it back with the same records, labels and order, atomically.

    The format follows the extension: ``.npz`` (inputs ``x`` in their shape, labels ``y`` as class indices, and
    ``label_names``), ``.csv`` or ``.parquet`` (one column per feature and the label column; only for flat
    inputs). Labels are written as their names when the names sort in class order (so reading them back gives the
    same indices), else as the indices.
    """
    import io

    from modelshield._internal.atomic import write_bytes_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=data.x, y=data.y, label_names=np.asarray(data.label_names, dtype=str))
        write_bytes_atomic(path, buffer.getvalue())
        return
    if suffix not in (".csv", ".parquet"):
        raise InvalidInputError(
            f"Cannot tell which format to write {path} in.", remedy="Name the file .npz, .csv or .parquet."
        )
    if len(data.schema.input_shape) != 1:
        raise InvalidInputError(
            f"{data.name!r} holds inputs of shape {data.schema.input_shape}; a table would flatten them.",
            remedy="Write images and other tensors as .npz.",
        )
    import pandas as pd

    frame = pd.DataFrame(data.x, columns=list(data.schema.names))
    names = list(data.label_names)
    frame[data.schema.label] = np.asarray(names)[data.y] if names == sorted(names) else data.y
    if suffix == ".csv":
        write_bytes_atomic(path, frame.to_csv(index=False).encode("utf-8"))
    else:
        require("pyarrow", extra="data", feature="Parquet files")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_bytes_atomic(path, buffer.getvalue())
