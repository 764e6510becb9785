"""Loading a model file: even with the pickle opt-in, a file the scanner rates critical is refused, and never run."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.errors import FileFormatError, UnsafeModelError
from modelshield.loading import load_model
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
