"""Datasets: bundled sets, user files, splits, and the Dataset contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.data import (
    BUNDLED,
    Dataset,
    Schema,
    load_bundled,
    load_csv,
    load_npz,
    load_parquet,
    load_table,
    train_test_split,
)
from modelshield.errors import FileFormatError, InvalidInputError, UnknownTargetError


# -- bundled ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "n", "shape", "classes"),
    [
        ("digits", 1797, (1, 8, 8), 10),
        ("breast_cancer", 569, (30,), 2),
        ("mnist", 5000, (1, 28, 28), 10),
        ("phishing", 1250, (9,), 2),
    ],
)
def test_bundled_sets(name: str, n: int, shape: tuple[int, ...], classes: int) -> None:
    ds = load_bundled(name)
    assert (len(ds), ds.schema.input_shape, ds.n_classes) == (n, shape, classes)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert np.all(ds.class_counts() > 0)
    bounds = ds.schema.bounds()
    assert bounds is not None
    assert np.all(ds.x >= bounds[0]) and np.all(ds.x <= bounds[1])
    assert ds.source and ds.description


def test_image_sets_are_scaled_and_mnist_is_shuffled() -> None:
    for name in ("digits", "mnist"):
        ds = load_bundled(name)
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    mnist = load_bundled("mnist")
    assert len(set(mnist.y[:50].tolist())) > 5  # not sorted by class any more
    assert np.array_equal(np.bincount(mnist.y), np.full(10, 500))


def test_phishing_labels_and_kinds() -> None:
    ds = load_bundled("phishing")
    assert ds.label_names == ("legitimate", "phishing")
    kinds = {f.name: f.kind.value for f in ds.schema.features}
    assert kinds["ip_in_url"] == "binary"
    assert kinds["is_popular"] == "continuous"


def test_unknown_bundled_set() -> None:
    with pytest.raises(UnknownTargetError, match="Unknown bundled data set 'iris'"):
        load_bundled("iris")
    assert set(BUNDLED) == {"digits", "breast_cancer", "mnist", "phishing"}


def test_importing_data_imports_no_heavy_package() -> None:
    heavy = "('sklearn', 'pandas', 'mlxtend', 'river')"
    code = f"import sys, modelshield.data; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- Dataset contract ---------------------------------------------------------------------------------------------
def _toy(x: np.ndarray, y: np.ndarray) -> Dataset:
    return Dataset(x=x, y=y, schema=Schema.continuous(["a", "b"]), label_names=("no", "yes"))


def test_dataset_validation() -> None:
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(InvalidInputError, match="do not match the schema"):
        _toy(np.zeros((4, 3), np.float32), y)
    with pytest.raises(InvalidInputError, match="labels of shape"):
        _toy(x, y[:3])
    with pytest.raises(InvalidInputError, match=r"labels must lie in 0\.\.1"):
        _toy(x, np.array([0, 1, 2, 0]))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        _toy(bad, y)


def test_digest_tracks_content_and_arrays_are_read_only() -> None:
    x, y = np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 1, 0, 1])
    a = _toy(x, y)
    assert a.digest == _toy(x.copy(), y.copy()).digest
    x2 = x.copy()
    x2[3, 1] += 1e-3
    assert _toy(x2, y).digest != a.digest
    with pytest.raises(ValueError, match="read-only"):
        a.x[0, 0] = 5.0


# -- user files -----------------------------------------------------------------------------------------------------
@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 80, 60),
            "smoker": rng.integers(0, 2, 60),
            "score": rng.normal(size=60),
            "outcome": np.where(rng.random(60) > 0.5, "sick", "well"),
        }
    )


def test_csv_and_parquet_round_trip(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for ds in (load_csv(tmp_path / "d.csv", label="outcome"), load_parquet(tmp_path / "d.parquet", label="outcome")):
        assert ds.schema.names == ("age", "smoker", "score")
        assert [f.kind.value for f in ds.schema.features] == ["integer", "binary", "continuous"]
        assert ds.label_names == ("sick", "well")
        np.testing.assert_allclose(ds.x[:, 2], frame["score"].to_numpy(), rtol=1e-6)
        assert np.array_equal(ds.y, (frame["outcome"] == "well").to_numpy().astype(int))


def test_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    pd.DataFrame({"f": [1.0, 2.0, 3.0, 4.0], "label": [10, 2, 10, 2]}).to_csv(tmp_path / "n.csv", index=False)
    ds = load_csv(tmp_path / "n.csv")
    assert ds.label_names == ("2", "10")
    assert ds.y.tolist() == [1, 0, 1, 0]


def test_table_detects_format_by_content(tmp_path: Path, frame: pd.DataFrame) -> None:
    disguised = tmp_path / "data.csv"
    frame.to_parquet(disguised)
    assert load_table(disguised, label="outcome").n_features == 3
    npz = tmp_path / "arrays.bin"
    with npz.open("wb") as fh:
        np.savez(fh, x=np.ones((6, 1, 2, 2)), y=np.array([0, 1] * 3))
    ds = load_table(npz)
    assert ds.schema.input_shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,label\n1,0\nz,1\n", r"column\(s\) \[.a.\] are not numeric"),
        ("a,label\n1,0\n,1\n3,1\n", r"missing values in: a \(1\)"),
        ("a,b\n1,0\n2,1\n", "no label column 'label'; its columns are: a, b"),
        ("a,label\n1,0\n2,0\n", "take only 1 value"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        load_csv(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        load_table(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileFormatError, match="not a readable CSV"):
        load_csv(tmp_path / "empty.csv")
    (tmp_path / "fake.parquet").write_text("a,b\n")
    with pytest.raises(FileFormatError, match=r"is named like a \.parquet file"):
        load_table(tmp_path / "fake.parquet")


def test_npz_object_arrays_are_refused_not_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (marker.write_text, ("pwned",))

    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([[Payload()]], dtype=object), y=np.array([0]))
    with pytest.raises(FileFormatError, match="refuses to"):
        load_npz(path)
    assert not marker.exists()


# -- splits ---------------------------------------------------------------------------------------------------------
def test_split_is_stratified_deterministic_and_disjoint() -> None:
    ds = load_bundled("digits")
    a = train_test_split(ds, test_size=0.25, seed=3)
    b = train_test_split(ds, test_size=0.25, seed=3)
    c = train_test_split(ds, test_size=0.25, seed=4)
    assert a.test.digest == b.test.digest != c.test.digest
    assert len(a.train) + len(a.test) == len(ds)
    rows = {r.tobytes() for r in a.train.flat()} & {r.tobytes() for r in a.test.flat()}
    assert len(rows) <= 2  # digits has a few duplicate images; nothing else is shared
    share = a.test.class_counts() / ds.class_counts()
    assert np.all(np.abs(share - 0.25) < 0.03)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=12, max_size=80), st.integers(0, 2**16))
def test_split_partitions_any_labels(labels: list[int], seed: int) -> None:
    y = np.array(labels)
    _, y = np.unique(y, return_inverse=True)
    k = int(y.max()) + 1
    if k < 2 or np.bincount(y).min() < 2:
        return
    x = np.arange(len(y), dtype=np.float32)[:, None]
    ds = Dataset(x=x, y=y, schema=Schema.continuous(["i"]), label_names=tuple(str(i) for i in range(k)))
    split = train_test_split(ds, test_size=0.3, seed=seed)
    ids = np.concatenate([split.train.x[:, 0], split.test.x[:, 0]])
    assert sorted(ids.tolist()) == list(range(len(y)))


def test_split_refuses_singleton_classes() -> None:
    ds = _toy(np.zeros((3, 2), np.float32), np.array([0, 0, 1]))
    with pytest.raises(InvalidInputError, match="fewer than 2 examples"):
        train_test_split(ds)
    assert len(train_test_split(ds, stratify=False, test_size=0.34).test) == 2
