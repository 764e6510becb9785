"""The Dataset contract: validation, content digest, immutability; Schema and Feature checks."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.data import Dataset, DatasetSplit, Feature, FeatureKind, Schema
from modelshield.errors import InvalidInputError, InvalidParameterError


def _toy(
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    label_names: tuple[str, ...] = ("no", "yes"),
    name: str = "toy",
) -> Dataset:
    return Dataset(
        x=np.arange(8, dtype=np.float32).reshape(4, 2) if x is None else x,
        y=np.array([0, 1, 0, 1]) if y is None else y,
        schema=Schema.continuous(["a", "b"]),
        label_names=label_names,
        name=name,
    )


# -- validation ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": np.zeros((4, 3), np.float32)}, r"inputs of shape \(3,\) do not match the schema's \(2,\)"),
        ({"x": np.zeros((4, 2, 1), np.float32)}, "do not match the schema"),
        ({"y": np.array([0, 1, 0])}, r"4 inputs but labels of shape \(3,\)"),
        ({"y": np.array([[0], [1], [0], [1]])}, "labels of shape"),
        ({"y": np.array([0, 1, 2, 0])}, r"labels must lie in 0\.\.1, got 0\.\.2"),
        ({"y": np.array([0, -1, 0, 1])}, r"labels must lie in 0\.\.1, got -1\.\.1"),
        ({"label_names": ("only",)}, "needs at least two classes"),
    ],
)
def test_dataset_refuses_inconsistent_parts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _toy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dataset_refuses_non_finite_inputs(bad: float) -> None:
    x = np.zeros((4, 2), np.float32)
    x[2, 1] = bad
    with pytest.raises(InvalidInputError, match="NaN or infinite") as info:
        _toy(x)
    assert "Impute" in info.value.diagnostics()


def test_dataset_coerces_dtypes_and_allows_no_rows() -> None:
    ds = _toy(np.arange(8).reshape(4, 2), np.array([0, 1, 0, 1], dtype=np.int8))
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    empty = _toy(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    assert len(empty) == 0 and empty.class_counts().tolist() == [0, 0]


def test_schema_and_feature_validation() -> None:
    with pytest.raises(InvalidParameterError, match=r"2 features but input shape \(1, 3\) holds 3 values"):
        Schema.continuous(["a", "b"], (1, 3))
    with pytest.raises(InvalidParameterError, match="must be unique"):
        Schema.continuous(["a", "a"])
    with pytest.raises(InvalidParameterError, match=r"low 2\.0 is above high 1\.0"):
        Feature("f", low=2.0, high=1.0)


def test_schema_bounds() -> None:
    schema = Schema.continuous(["a", "b", "c", "d"], (1, 2, 2), low=np.array([0, 1, 2, 3]), high=9.0)
    bounds = schema.bounds()
    assert bounds is not None
    assert bounds[0].shape == (1, 2, 2) and bounds[0].ravel().tolist() == [0, 1, 2, 3]
    assert bounds[1].dtype == np.float32 and float(bounds[1].max()) == 9.0
    assert Schema.continuous(["a"], low=0.0).bounds() is None
    assert Schema((Feature("k", FeatureKind.BINARY, 0, 1),), (1,)).features[0].kind == "binary"


# -- digest ----------------------------------------------------------------------------------------------------------
def test_digest_depends_on_content_only() -> None:
    a = _toy()
    assert len(a.digest) == 64 and int(a.digest, 16) >= 0
    assert _toy(name="other").digest == a.digest
    assert _toy(a.x.copy(), a.y.copy()).digest == a.digest
    assert repr(a).endswith(f"digest={a.digest[:12]})")


def test_digest_changes_when_one_value_changes() -> None:
    a = _toy()
    x = a.x.copy()
    x[3, 1] = np.nextafter(x[3, 1], np.float32(np.inf))  # the smallest possible change
    assert _toy(x).digest != a.digest
    assert _toy(y=np.array([0, 1, 1, 1])).digest != a.digest
    assert _toy(label_names=("no", "Yes")).digest != a.digest
    assert _toy(a.x.reshape(4, 2)[:, ::-1].copy()).digest != a.digest


# -- immutability ----------------------------------------------------------------------------------------------------
def test_arrays_are_read_only() -> None:
    ds = _toy()
    with pytest.raises(ValueError, match="read-only"):
        ds.x[0, 0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        ds.y[0] = 1
    part = ds.subset(np.array([1, 3]))
    assert not part.x.flags.writeable and not part.y.flags.writeable
    with pytest.raises(AttributeError):
        ds.name = "renamed"  # type: ignore[misc]


def test_subset_flat_and_counts() -> None:
    ds = _toy(np.arange(12, dtype=np.float32).reshape(6, 2), np.array([0, 1, 1, 1, 0, 1]))
    assert ds.class_counts().tolist() == [2, 4]
    part = ds.subset(np.array([4, 0]), name="part")
    assert (part.name, part.y.tolist(), part.x[:, 0].tolist()) == ("part", [0, 0], [8.0, 0.0])
    assert ds.subset(slice(0, 2)).name == "toy"
    assert ds.flat().shape == (6, 2) and ds.n_features == 2 and ds.n_classes == 2
    split = DatasetSplit(train=ds.subset(slice(0, 4)), test=ds.subset(slice(4, 6)), seed=5)
    assert (len(split.train), len(split.test), split.seed) == (4, 2, 5)


def test_caller_cannot_mutate_a_dataset_through_its_own_array() -> None:
    x = np.zeros((4, 2), np.float32)
    ds = _toy(x)
    digest = ds.digest
    x.setflags(write=True)  # allowed: the caller owns the memory
    x[0, 0] = 1.0
    assert ds.x[0, 0] == 0.0 and ds.digest == digest


def test_fractional_labels_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        _toy(y=np.array([0.5, 1.0, 0.0, 1.7]))


def test_duplicate_label_names_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        _toy(label_names=("same", "same"))
