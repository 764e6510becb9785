"""Datasets, schemas, bundled offline data sets, loaders for user files, and deterministic splits.

>>> from modelshield.data import load_bundled, train_test_split
>>> split = train_test_split(load_bundled("breast_cancer"), test_size=0.3, seed=0)
>>> split.train.n_features
30
"""

from __future__ import annotations

from modelshield.data.bundled import (
    BUNDLED,
    load_breast_cancer,
    load_bundled,
    load_digits,
    load_mnist,
    load_phishing,
)
from modelshield.data.files import load_csv, load_npz, load_parquet, load_table
from modelshield.data.interface import Dataset, DatasetSplit, Feature, FeatureKind, Schema
from modelshield.data.split import train_test_split

__all__ = [
    "BUNDLED",
    "Dataset",
    "DatasetSplit",
    "Feature",
    "FeatureKind",
    "Schema",
    "load_breast_cancer",
    "load_bundled",
    "load_csv",
    "load_digits",
    "load_mnist",
    "load_npz",
    "load_parquet",
    "load_phishing",
    "load_table",
    "train_test_split",
]
