"""Deterministic, stratified train/test splits.

>>> from modelshield.data import load_digits, train_test_split
>>> split = train_test_split(load_digits(), test_size=0.25, seed=0)
>>> split.train.name, split.test.name, len(split.test)
('digits-train', 'digits-test', 450)
"""

from __future__ import annotations

import numpy as np

from modelshield.data.interface import Dataset, DatasetSplit
from modelshield.errors import InvalidInputError, InvalidParameterError

__all__ = ["train_test_split"]


def train_test_split(
    dataset: Dataset, *, test_size: float = 0.25, seed: int = 0, stratify: bool = True
) -> DatasetSplit:
    """Split ``dataset`` into ``<name>-train`` and ``<name>-test``; the same seed always gives the same split.

    ``test_size`` is the share of rows in the test part (rounded up). With ``stratify`` (the default) every
    class keeps its share in both parts, which needs at least two rows per class present. Rows keep their
    original order within each part.
    """
    from sklearn.model_selection import train_test_split as sk_split

    if isinstance(test_size, bool) or not 0.0 < test_size < 1.0:
        raise InvalidParameterError(f"test_size must lie strictly between 0 and 1, got {test_size!r}.")
    counts = dataset.class_counts()
    rare = [f"{dataset.label_names[k]!r} ({counts[k]})" for k in np.flatnonzero(counts == 1)]
    if stratify and rare:
        raise InvalidInputError(
            f"Cannot stratify {dataset.name!r}: class(es) {', '.join(rare)} have fewer than 2 examples.",
            remedy="Add examples of those classes, or split with stratify=False.",
        )
    try:
        train_idx, test_idx = sk_split(
            np.arange(len(dataset)),
            test_size=test_size,
            random_state=seed,
            stratify=dataset.y if stratify else None,
        )
    except ValueError as exc:  # too few rows for this test_size, or fewer test rows than classes
        raise InvalidInputError(
            f"Cannot split {dataset.name!r} ({len(dataset)} rows, {int(np.count_nonzero(counts))} classes) "
            f"with test_size={test_size}: {' '.join(str(exc).split())}",
            remedy="Use a test_size that leaves each part at least one row per class, or stratify=False.",
        ) from exc
    return DatasetSplit(
        train=dataset.subset(np.sort(train_idx), name=f"{dataset.name}-train"),
        test=dataset.subset(np.sort(test_idx), name=f"{dataset.name}-test"),
        seed=seed,
    )
