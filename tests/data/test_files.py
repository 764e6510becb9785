"""User files: CSV, Parquet and NPZ round trips, format detection by content, and every refusal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelshield.data import Dataset, FeatureKind, load_csv, load_npz, load_parquet, load_table
from modelshield.errors import FileFormatError, InvalidInputError, MissingExtraError


@pytest.fixture
def make_frame() -> Callable[..., pd.DataFrame]:
    """A factory of small mixed-kind frames with a text label column ``outcome``."""

    def make(n: int = 60, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "age": rng.integers(20, 80, n),
                "smoker": rng.integers(0, 2, n),
                "score": rng.normal(size=n),
                "outcome": np.where(rng.random(n) > 0.5, "sick", "well"),
            }
        )

    return make


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


# -- round trips ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(tmp_path: Path, make_frame: Callable[..., pd.DataFrame], suffix: str) -> None:
    frame = make_frame()
    path = _write(frame, tmp_path / f"patients{suffix}")
    loader = load_csv if suffix == ".csv" else load_parquet
    for ds in (loader(path, label="outcome"), load_table(path, label="outcome")):
        assert (ds.name, ds.source) == ("patients", str(path))
        assert ds.schema.names == ("age", "smoker", "score")
        assert ds.schema.label == "outcome"
        assert [f.kind for f in ds.schema.features] == [FeatureKind.INTEGER, FeatureKind.BINARY, FeatureKind.CONTINUOUS]
        for j, column in enumerate(("age", "smoker", "score")):
            feature = ds.schema.features[j]
            assert feature.low == pytest.approx(frame[column].min(), rel=1e-6)
            assert feature.high == pytest.approx(frame[column].max(), rel=1e-6)
        np.testing.assert_allclose(ds.x, frame[["age", "smoker", "score"]].to_numpy(), rtol=1e-6)
        assert ds.label_names == ("sick", "well")
        np.testing.assert_array_equal(ds.y, (frame["outcome"] == "well").to_numpy().astype(np.int64))
    assert loader(path, label="outcome", name="mine").name == "mine"


@pytest.mark.parametrize(
    ("labels", "names", "codes"),
    [
        ([10, 2, 10, 2, 33], ("2", "10", "33"), [1, 0, 1, 0, 2]),  # numbers sort numerically
        ([1.0, 0.0, 1.0, 0.0, 1.0], ("0", "1"), [1, 0, 1, 0, 1]),
        ([0.5, 1.5, 0.5, 1.5, 1.5], ("0.5", "1.5"), [0, 1, 0, 1, 1]),
        ([True, False, True, True, False], ("False", "True"), [1, 0, 1, 1, 0]),
        (["b", "a", "c", "a", "b"], ("a", "b", "c"), [1, 0, 2, 0, 1]),
    ],
)
def test_labels_encode_in_sorted_order(
    tmp_path: Path, labels: list[object], names: tuple[str, ...], codes: list[int]
) -> None:
    frame = pd.DataFrame({"f": np.arange(len(labels), dtype=float), "label": labels})
    for path in (_write(frame, tmp_path / "l.csv"), _write(frame, tmp_path / "l.parquet")):
        ds = load_table(path)
        assert ds.label_names == names
        assert ds.y.tolist() == codes


def test_numeric_label_with_a_gap_reads_as_integers(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    path.write_text("f,label\n1,2\n2,10\n3,2\n")
    assert load_csv(path).label_names == ("2", "10")


def test_npz_round_trip_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((12, 1, 4, 4)).astype(np.float32)
    y = np.array([3, 7] * 6)
    path = tmp_path / "images.npz"
    np.savez(path, x=x, y=y)
    ds = load_npz(path)
    np.testing.assert_array_equal(ds.x, x)
    assert ds.schema.input_shape == (1, 4, 4)
    assert ds.label_names == ("3", "7") and ds.y.tolist() == [0, 1] * 6
    bounds = ds.schema.bounds()
    assert bounds is not None
    assert bounds[0].min() == x.min() and bounds[1].max() == x.max()
    assert (ds.name, ds.source) == ("images", str(path))


def test_npz_round_trip_tabular_with_custom_keys(tmp_path: Path) -> None:
    x = np.array([[0, 3, 0.5], [1, 4, 1.5], [0, 9, 2.5], [1, 5, 0.25]])
    path = tmp_path / "t.npz"
    np.savez_compressed(path, inputs=x, target=np.array(["no", "yes", "no", "yes"]))
    ds = load_npz(path, x_key="inputs", y_key="target")
    assert [f.kind for f in ds.schema.features] == [FeatureKind.BINARY, FeatureKind.INTEGER, FeatureKind.CONTINUOUS]
    assert ds.schema.label == "target"
    assert ds.label_names == ("no", "yes")


def test_npz_label_names_keep_the_class_indices(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.array([0, 2, 0, 2]))  # class 1 is absent from this file
    ds = load_npz(path, label_names=("cat", "dog", "fox"))
    assert ds.label_names == ("cat", "dog", "fox")
    assert ds.y.tolist() == [0, 2, 0, 2]
    with pytest.raises(InvalidInputError, match=r"class indices 0\.\.2 but 2 label names"):
        load_npz(path, label_names=("cat", "dog"))
    np.savez(path, x=np.zeros((4, 2)), y=np.array(["a", "b", "a", "b"]))
    with pytest.raises(InvalidInputError, match="must hold class indices"):
        load_npz(path, label_names=("a", "b"))


# -- detection by content ---------------------------------------------------------------------------------------------
def test_table_detects_format_by_content_not_suffix(tmp_path: Path, make_frame: Callable[..., pd.DataFrame]) -> None:
    frame = make_frame()
    parquet_named_csv = tmp_path / "data.csv"
    frame.to_parquet(parquet_named_csv)
    assert load_table(parquet_named_csv, label="outcome").schema.names == ("age", "smoker", "score")

    npz_named_csv = tmp_path / "arrays.csv"
    with npz_named_csv.open("wb") as fh:
        np.savez(fh, x=np.ones((6, 1, 2, 2)), y=np.array([0, 1] * 3))
    assert load_table(npz_named_csv).schema.input_shape == (1, 2, 2)

    csv_named_txt = _write(frame, tmp_path / "data.txt")
    assert load_table(csv_named_txt, label="outcome").n_features == 3


def test_table_names_the_npz_label_array(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((4, 2)), target=np.array([0, 1, 0, 1]))
    assert load_table(path, label="target").schema.label == "target"


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
def test_table_refuses_a_suffix_its_content_denies(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"fake{suffix}"
    path.write_text("a,label\n1,0\n2,1\n")
    with pytest.raises(FileFormatError, match=rf"is named like a \{suffix} file but its content is not one"):
        load_table(path)


def test_specific_loaders_refuse_other_formats(tmp_path: Path) -> None:
    csv = tmp_path / "plain.csv"
    csv.write_text("a,label\n1,0\n2,1\n")
    with pytest.raises(FileFormatError, match="not an NPZ archive"):
        load_npz(csv)
    with pytest.raises(FileFormatError, match="not a readable Parquet file"):
        load_parquet(csv)
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((2, 2)))
    with pytest.raises(FileFormatError, match="not an NPZ archive"):
        load_npz(npy)


# -- refusals --------------------------------------------------------------------------------------------------------
def _csv(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    return path


def test_non_numeric_column_is_named_with_the_fix(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,city,label\n1,Paris,0\n2,Rome,1\n")
    with pytest.raises(InvalidInputError, match=r"column\(s\) \['city'\] are not numeric") as info:
        load_csv(path)
    assert "encode them as numbers" in str(info.value)
    assert "one-hot" in info.value.diagnostics()


def test_non_numeric_parquet_columns_are_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"when": pd.date_range("2024-01-01", periods=4), "kind": pd.Categorical(list("xyxy")), "label": [0, 1, 0, 1]}
    )
    with pytest.raises(InvalidInputError, match=r"\['when', 'kind'\] are not numeric"):
        load_parquet(_write(frame, tmp_path / "d.parquet"))


def test_missing_values_are_counted_per_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,c,label\n1,,3,0\n,,6,1\n7,8,9,\n")
    with pytest.raises(InvalidInputError, match=r"missing values in: a \(1\), b \(2\), label \(1\)\."):
        load_csv(path)
    frame = pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"), "label": [0, 1, 0, 1]})
    with pytest.raises(InvalidInputError, match=r"missing values in: a \(1\)"):
        load_parquet(_write(frame, tmp_path / "n.parquet"))


def test_infinite_values_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,label\n1,inf,0\n2,1e300,1\n3,4,1\n")
    with pytest.raises(InvalidInputError, match=r"infinite values.*in: b"):
        load_csv(path)


def test_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no label column 'label'; its columns are: a, b") as info:
        load_csv(_csv(tmp_path, "a,b\n1,0\n2,1\n"))
    assert "--label" in info.value.diagnostics()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,label\n1,0\n2,0\n", r"take only 1 value\(s\): \['0'\]"),
        ("a,label\n", "has no rows"),
        ("label\n0\n1\n", "no feature columns"),
    ],
)
def test_unusable_tables(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_csv(_csv(tmp_path, content))


def test_npz_with_one_class_or_bad_shapes(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(InvalidInputError, match="take only 1 value"):
        load_npz(path)
    np.savez(path, x=np.zeros(3), y=np.array([0, 1, 0]))
    with pytest.raises(InvalidInputError, match="expected inputs of shape"):
        load_npz(path)
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="expected inputs of shape"):
        load_npz(path)
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0.0, np.nan, 1.0]))
    with pytest.raises(InvalidInputError, match="1 NaN or infinite labels"):
        load_npz(path)
    np.savez(path, x=np.array([[np.nan, 0], [1, 2], [3, 4]]), y=np.array([0, 1, 0]))
    with pytest.raises(InvalidInputError, match="1 NaN"):
        load_npz(path)
    np.savez(path, inputs=np.zeros((3, 2)), y=np.array([0, 1, 0]))
    with pytest.raises(InvalidInputError, match=r"has no array\(s\) \['x'\]; it holds \['inputs', 'y'\]"):
        load_npz(path)


def _one_line_naming(err: BaseException, path: Path) -> bool:
    return "\n" not in str(err) and str(path) in str(err)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    for loader in (load_csv, load_parquet, load_npz, load_table):
        with pytest.raises(FileFormatError, match="does not exist") as info:
            loader(tmp_path / "absent.csv")
        assert _one_line_naming(info.value, tmp_path / "absent.csv")
        with pytest.raises(FileFormatError, match="is not a regular file"):
            loader(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(FileFormatError, match="not a readable CSV") as info:
        load_table(empty)
    assert _one_line_naming(info.value, empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(FileFormatError, match="not a readable CSV"):
        load_csv(binary)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,label\n1,0\n2,1\n")
    path.chmod(0)
    try:
        with pytest.raises(FileFormatError) as info:
            load_table(path)
        assert _one_line_naming(info.value, path)
    finally:
        path.chmod(0o600)


def test_read_errors_become_file_format_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _csv(tmp_path, "a,label\n1,0\n2,1\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)  # runs as root too, where chmod 0 does not stop reads
    for loader in (load_table, load_npz):
        with pytest.raises(FileFormatError, match=r"cannot be read: .*Permission denied") as info:
            loader(path)
        assert _one_line_naming(info.value, path)


def test_corrupt_files(tmp_path: Path, make_frame: Callable[..., pd.DataFrame]) -> None:
    good = _write(make_frame(), tmp_path / "good.parquet").read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(FileFormatError, match="not a readable Parquet file") as info:
        load_table(truncated, label="outcome")
    assert _one_line_naming(info.value, truncated)

    npz = tmp_path / "good.npz"
    np.savez(npz, x=np.zeros((8, 2)), y=np.array([0, 1] * 4))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(FileFormatError, match="not a readable NPZ file") as info:
        load_table(broken)
    assert _one_line_naming(info.value, broken)


# -- never unpickle --------------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling it writes a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.marker, "unpickled"))


@pytest.mark.parametrize("where", ["x", "y"])
def test_npz_object_arrays_are_refused_not_unpickled(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "unpickled"
    evil = np.array([_Payload(marker)] * 2, dtype=object)
    arrays = {"x": np.zeros((2, 1)), "y": np.array([0, 1])}
    arrays[where] = evil if where == "y" else evil.reshape(2, 1)
    path = tmp_path / "evil.csv"  # a lying suffix too: load_table must still find and refuse it
    with path.open("wb") as fh:
        np.savez(fh, x=arrays["x"], y=arrays["y"])
    for load in (load_npz, load_table):
        with pytest.raises(FileFormatError, match="refuses to") as info:
            load(path)
        assert _one_line_naming(info.value, path)
    assert not marker.exists()


# -- the data extra --------------------------------------------------------------------------------------------------
def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError) as info:
        load_parquet(path)
    assert "pip install 'modelshield[data]'" in info.value.diagnostics()
    assert "pyarrow" in str(info.value)


def test_loaded_datasets_are_immutable(tmp_path: Path) -> None:
    ds: Dataset = load_csv(_csv(tmp_path, "a,label\n1,x\n2,y\n"))
    with pytest.raises(ValueError, match="read-only"):
        ds.x[0, 0] = 5.0
