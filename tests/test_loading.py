"""Loading a model file: even with the pickle opt-in, a file the scanner rates critical is refused, and never run.
A loaded model and its data are checked against each other: class order, label values, features, a run."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.data import Dataset, Schema
from modelshield.errors import FileFormatError, InvalidInputError, InvalidParameterError, UnsafeModelError
from modelshield.loading import align_data, load_model, model_classes
from modelshield.models import SklearnClassifier
from modelshield.testing.scan_corpus import call_v2


def _payload(tmp_path: Path) -> tuple[Path, Path]:
    """A pickle that, if ever unpickled, creates a marker file through os.system (harmless, and detectable)."""
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(call_v2("os", "system", f"touch {marker}"))
    return path, marker


def test_unsafe_pickle_still_refuses_a_critical_file(tmp_path: Path) -> None:
    path, marker = _payload(tmp_path)
    with pytest.raises(UnsafeModelError, match="would run code when it is unpickled") as err:
        load_model(path, unsafe_pickle=True)
    assert "--unsafe-ignore-scan" in err.value.remedy
    assert not marker.exists()


def test_without_the_opt_in_nothing_is_scanned_or_loaded(tmp_path: Path) -> None:
    path, marker = _payload(tmp_path)
    with pytest.raises(UnsafeModelError, match="can run code that the file contains"):
        load_model(path)
    assert not marker.exists()


def test_a_benign_pickle_loads_with_the_opt_in_and_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = LogisticRegression(max_iter=200).fit([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]], [0, 1, 0, 1])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with caplog.at_level(logging.WARNING, logger="modelshield.loading"):
        loaded = load_model(path, unsafe_pickle=True)
    assert loaded.classifier.n_classes == 2
    assert "Unpickling" in caplog.text


def test_the_second_override_loads_a_critical_file_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The explicit second override does what it says: the file is unpickled (here `eval("0")`, which is rated
    critical and harmless) and that is logged; what it held is then refused as no model."""
    path = tmp_path / "model.pkl"
    path.write_bytes(call_v2("builtins", "eval", "0"))
    with pytest.raises(UnsafeModelError, match="would run code"):
        load_model(path, unsafe_pickle=True)
    with (
        caplog.at_level(logging.WARNING, logger="modelshield.loading"),
        pytest.raises(FileFormatError, match="holds a int"),
    ):
        load_model(path, unsafe_pickle=True, unsafe_ignore_scan=True)
    assert "although its scan is critical" in caplog.text


# -- a model and its data, checked against each other --------------------------------------------------------------
def _data(y: list[str], *, features: int = 2, label: str = "diagnosis") -> Dataset:
    """Records whose first feature tells the class: the index of its label in sorted order."""
    names = tuple(sorted(set(y)))
    codes = np.array([names.index(v) for v in y])
    x = np.column_stack([codes, np.zeros((len(y), features - 1))]).astype(np.float32)
    schema = Schema.continuous([f"f{i}" for i in range(features)], label=label)
    return Dataset(x=x, y=codes, schema=schema, label_names=names, name="tumours", source="tumours.csv")


def _fitted(labels: list[object]) -> SklearnClassifier:
    x = np.column_stack([np.arange(len(labels)), np.zeros(len(labels))]).astype(np.float32)
    return SklearnClassifier(LogisticRegression(C=100.0, max_iter=1000).fit(x, labels))


def test_model_classes_are_the_names_a_model_declares() -> None:
    assert model_classes(_fitted(["b", "a", "c"])) == ("a", "b", "c")
    assert model_classes(_fitted([0.0, 1.0, 1.0])) == ("0", "1")
    torch = pytest.importorskip("torch")
    from modelshield.models.torch_classifier import TorchClassifier

    net = TorchClassifier(torch.nn.Linear(2, 2), n_classes=2, input_shape=(2,), device="cpu")
    assert model_classes(net) is None


def test_align_puts_labels_in_the_order_of_the_model() -> None:
    model = _fitted(["0", "1", "2", "0", "1", "2"])  # classes_ 0, 1, 2 as text
    data = _data(["1", "2", "2"])  # sorted alone, "1" would be class 0
    aligned = align_data(model, data)
    assert aligned.label_names == ("0", "1", "2")
    assert aligned.y.tolist() == [1, 2, 2]


def test_align_names_a_label_the_model_does_not_know() -> None:
    with pytest.raises(InvalidInputError, match=r"Label 'benign' in column 'diagnosis' of tumours\.csv") as err:
        align_data(_fitted([0, 1, 0, 1]), _data(["benign", "malignant"]))
    assert "(0, 1)" in err.value.message
    assert "--classes" in err.value.cli_remedy


def test_align_with_classes_for_a_model_of_numbered_outputs() -> None:
    aligned = align_data(_fitted([0, 1, 0, 1]), _data(["benign", "malignant"]), classes=["malignant", "benign"])
    assert aligned.label_names == ("malignant", "benign")
    assert aligned.y.tolist() == [1, 0]
    with pytest.raises(InvalidInputError, match="3 classes were named"):
        align_data(_fitted([0, 1, 0, 1]), _data(["benign", "malignant"]), classes=["a", "b", "c"])
    with pytest.raises(InvalidInputError, match="The model names its classes b, m"):
        align_data(_fitted(["b", "m", "b", "m"]), _data(["b", "m"]), classes=["m", "b"])


def test_a_model_without_names_takes_numbers_as_outputs_and_names_only_with_classes() -> None:
    torch = pytest.importorskip("torch")
    from modelshield.models.torch_classifier import TorchClassifier

    net = TorchClassifier(torch.nn.Linear(2, 3), n_classes=3, input_shape=(2,), device="cpu")
    assert align_data(net, _data(["1", "2"])).y.tolist() == [1, 2]
    with pytest.raises(InvalidInputError, match=r"Label '3' in column 'diagnosis'"):
        align_data(net, _data(["1", "3"]))
    with pytest.raises(InvalidInputError, match="does not record which of its 3 outputs is which class"):
        align_data(net, _data(["benign", "malignant"]))
    assert align_data(net, _data(["b", "m"]), classes=["m", "x", "b"]).y.tolist() == [2, 0]


def test_align_runs_the_model_on_two_rows_and_leaves_no_queries() -> None:
    torch = pytest.importorskip("torch")
    from modelshield.models.torch_classifier import TorchClassifier

    good = _fitted(["a", "b", "a", "b"])
    align_data(good, _data(["a", "b"]))
    assert good.queries == 0
    wrong_width = TorchClassifier(torch.nn.Linear(3, 2), n_classes=2, input_shape=(2,), device="cpu")
    with pytest.raises(InvalidInputError, match=r"The model fails on the first rows of tumours\.csv"):
        align_data(wrong_width, _data(["0", "1"]))
    with pytest.raises(InvalidInputError, match=r"inputs of shape \(2,\); tumours\.csv has inputs of shape \(3,\)"):
        align_data(wrong_width, _data(["0", "1"], features=3))


def test_an_architecture_is_refused_for_a_file_that_holds_its_network(tmp_path: Path) -> None:
    from skops.io import dump

    dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), tmp_path / "model.skops")
    with pytest.raises(InvalidParameterError, match="holds its own network") as err:
        load_model(tmp_path / "model.skops", architecture="zoo:digits-mlp")
    assert err.value.cli_remedy == "Drop --arch."
