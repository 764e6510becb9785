"""Datasets, schemas, bundled offline data sets, loaders for user files, deterministic splits, and validation of
raw tables against a schema inferred from trusted data.

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
from modelshield.data.files import load_csv, load_npz, load_parquet, load_table, write_dataset
from modelshield.data.interface import Dataset, DatasetSplit, Feature, FeatureKind, Schema
from modelshield.data.split import train_test_split
from modelshield.data.validation import (
    ColumnKind,
    ColumnSchema,
    Issue,
    IssueExample,
    IssueKind,
    IssueLevel,
    ShiftWarning,
    TableSchema,
    ValidationReport,
    infer_schema,
    read_frame,
    read_schema,
    validate,
    write_schema,
)

__all__ = [
    "BUNDLED",
    "ColumnKind",
    "ColumnSchema",
    "Dataset",
    "DatasetSplit",
    "Feature",
    "FeatureKind",
    "Issue",
    "IssueExample",
    "IssueKind",
    "IssueLevel",
    "Schema",
    "ShiftWarning",
    "TableSchema",
    "ValidationReport",
    "infer_schema",
    "load_breast_cancer",
    "load_bundled",
    "load_csv",
    "load_digits",
    "load_mnist",
    "load_npz",
    "load_parquet",
    "load_phishing",
    "load_table",
    "read_frame",
    "read_schema",
    "train_test_split",
    "validate",
    "write_dataset",
    "write_schema",
]
