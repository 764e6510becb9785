"""Train/test splits: stratified, deterministic, a partition of the rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.data import Dataset, Schema, load_breast_cancer, load_digits, train_test_split
from modelshield.errors import InvalidInputError, InvalidParameterError


def _indexed(labels: list[int] | np.ndarray, n_classes: int | None = None) -> Dataset:
    """A dataset whose single feature is the row number, so the rows of each part can be traced back."""
    y = np.asarray(labels, dtype=np.int64)
    k = n_classes if n_classes is not None else int(y.max()) + 1
    return Dataset(
        x=np.arange(len(y), dtype=np.float32)[:, None],
        y=y,
        schema=Schema.continuous(["row"]),
        label_names=tuple(f"c{i}" for i in range(k)),
        name="toy",
    )


def _rows(ds: Dataset) -> list[int]:
    return [int(v) for v in ds.x[:, 0]]


@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.5])
def test_stratified_split_keeps_class_shares(test_size: float) -> None:
    ds = load_digits()
    split = train_test_split(ds, test_size=test_size, seed=0)
    n_test = math.ceil(test_size * len(ds))
    assert len(split.test) == n_test and len(split.train) == len(ds) - n_test
    expected = ds.class_counts() * n_test / len(ds)
    assert np.all(np.abs(split.test.class_counts() - expected) < 1)
    np.testing.assert_array_equal(split.train.class_counts() + split.test.class_counts(), ds.class_counts())


def test_parts_are_named_and_keep_the_schema() -> None:
    ds = load_breast_cancer()
    split = train_test_split(ds, test_size=0.3, seed=7)
    assert (split.train.name, split.test.name, split.seed) == ("breast_cancer-train", "breast_cancer-test", 7)
    for part in (split.train, split.test):
        assert part.schema == ds.schema
        assert part.label_names == ds.label_names
        assert part.source == ds.source


def test_same_seed_same_split_other_seed_other_split() -> None:
    ds = load_digits()
    a = train_test_split(ds, seed=3)
    b = train_test_split(ds, seed=3)
    c = train_test_split(ds, seed=4)
    assert (a.train.digest, a.test.digest) == (b.train.digest, b.test.digest)
    assert a.test.digest != c.test.digest


def test_split_is_a_partition_in_original_order() -> None:
    ds = _indexed(np.arange(100) % 3)
    for stratify in (True, False):
        split = train_test_split(ds, test_size=0.3, seed=1, stratify=stratify)
        train, test = _rows(split.train), _rows(split.test)
        assert not set(train) & set(test)
        assert sorted(train + test) == list(range(100))
        assert train == sorted(train) and test == sorted(test)


def test_unstratified_split_may_unbalance_but_covers() -> None:
    ds = _indexed([0] * 50 + [1] * 2)
    split = train_test_split(ds, test_size=0.5, seed=0, stratify=False)
    assert len(split.train) + len(split.test) == 52


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5, True])
def test_test_size_must_be_a_proper_share(test_size: float) -> None:
    with pytest.raises(InvalidParameterError, match="strictly between 0 and 1"):
        train_test_split(_indexed([0, 1] * 5), test_size=test_size)


def test_singleton_classes_cannot_be_stratified() -> None:
    ds = _indexed([0, 0, 0, 1])
    with pytest.raises(InvalidInputError, match=r"class\(es\) 'c1' \(1\) have fewer than 2 examples") as info:
        train_test_split(ds)
    assert "stratify=False" in info.value.diagnostics()
    assert len(train_test_split(ds, stratify=False, test_size=0.5).test) == 2


def test_too_small_a_test_part_is_explained() -> None:
    ds = _indexed(np.arange(40) % 10)  # 10 classes, 4 rows each
    with pytest.raises(InvalidInputError, match=r"Cannot split 'toy' \(40 rows, 10 classes\) with test_size=0.1"):
        train_test_split(ds, test_size=0.1)


def test_absent_classes_do_not_block_stratification() -> None:
    ds = _indexed([0, 2] * 10, n_classes=3)  # class 1 has no rows at all
    split = train_test_split(ds, test_size=0.5)
    assert split.test.class_counts().tolist() == [5, 0, 5]


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(2, 30), min_size=2, max_size=6),
    test_size=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
    order_seed=st.integers(0, 2**16),
)
def test_any_label_vector_splits_into_a_stratified_partition(
    counts: list[int], test_size: float, seed: int, order_seed: int
) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(order_seed).shuffle(labels)
    ds = _indexed(labels)
    n, k = len(labels), len(counts)
    n_test = math.ceil(test_size * n)
    if n_test < k or n - n_test < k:  # a part too small to hold every class
        with pytest.raises(InvalidInputError, match="Cannot split"):
            train_test_split(ds, test_size=test_size, seed=seed)
        return
    split = train_test_split(ds, test_size=test_size, seed=seed)
    train, test = _rows(split.train), _rows(split.test)
    assert sorted(train + test) == list(range(n))
    assert len(test) == n_test
    expected = np.asarray(counts) * n_test / n
    assert np.all(np.abs(split.test.class_counts() - expected) < 1)
    again = train_test_split(ds, test_size=test_size, seed=seed)
    assert _rows(again.test) == test
