"""Label order: a data file knows only its own (sorted) order of label values; ``Dataset.relabel`` puts the labels
in another order, a model's, keeping every record's label name, and refuses a name that order lacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelshield.data import Dataset, Schema, load_table
from modelshield.errors import InvalidInputError


def dataset(y: list[int], names: tuple[str, ...]) -> Dataset:
    x = np.arange(len(y), dtype=np.float32).reshape(-1, 1)
    return Dataset(x=x, y=np.array(y), schema=Schema.continuous(["f"], label="diagnosis"), label_names=names)


def test_a_table_numbers_its_labels_in_sorted_order(tmp_path: Path) -> None:
    path = tmp_path / "tumours.csv"
    path.write_text("size,diagnosis\n1.0,malignant\n2.0,benign\n3.0,malignant\n")
    data = load_table(path, label="diagnosis")
    assert data.label_names == ("benign", "malignant")
    assert data.y.tolist() == [1, 0, 1]


def test_relabel_keeps_each_records_label_and_takes_the_new_order(tmp_path: Path) -> None:
    path = tmp_path / "tumours.csv"
    path.write_text("size,diagnosis\n1.0,malignant\n2.0,benign\n3.0,malignant\n")
    data = load_table(path, label="diagnosis")
    model_order = data.relabel(["malignant", "benign"])
    assert model_order.label_names == ("malignant", "benign")
    assert model_order.y.tolist() == [0, 1, 0]
    names = [model_order.label_names[k] for k in model_order.y]
    assert names == [data.label_names[k] for k in data.y]  # every record keeps its label
    np.testing.assert_array_equal(model_order.x, data.x)
    assert model_order.schema == data.schema
    assert model_order.digest != data.digest  # the digest covers the label names and their order


def test_relabel_may_name_classes_that_the_data_lacks() -> None:
    data = dataset([0, 1, 1], ("1", "2"))
    three = data.relabel(["0", "1", "2"])
    assert three.n_classes == 3
    assert three.y.tolist() == [1, 2, 2]
    assert three.class_counts().tolist() == [0, 1, 2]


def test_relabel_refuses_a_label_it_does_not_name() -> None:
    data = dataset([0, 1, 2], ("benign", "malignant", "unsure"))
    with pytest.raises(InvalidInputError, match=r"Label 'unsure' in column 'diagnosis' .* not one of the classes"):
        data.relabel(["benign", "malignant"])


def test_a_name_absent_from_the_records_need_not_be_named() -> None:
    subset = dataset([0, 1, 2], ("benign", "malignant", "unsure")).subset(np.array([0, 1]))
    assert subset.relabel(["malignant", "benign"]).y.tolist() == [1, 0]


def test_relabel_refuses_a_class_named_twice() -> None:
    with pytest.raises(InvalidInputError, match="unique"):
        dataset([0, 1], ("a", "b")).relabel(["a", "b", "a"])
