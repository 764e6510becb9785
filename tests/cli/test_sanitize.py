"""``modelshield data sanitize``: cleaned set, removal record and manifest written together, or nothing on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelshield.attacks.poisoning import Backdoor, LabelFlip, patch_trigger, poison
from modelshield.cli import main
from modelshield.data import Dataset, Schema, load_breast_cancer, load_table, write_dataset
from modelshield.supply_chain.provenance import build_manifest, read_manifest, write_manifest


@pytest.fixture(scope="module")
def flipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Breast-cancer records with 10% of labels flipped, as CSV (label column "label"); and which were flipped."""
    cancer = load_breast_cancer()
    relabelled = Dataset(
        x=cancer.x,
        y=cancer.y,
        schema=Schema(features=cancer.schema.features, input_shape=cancer.schema.input_shape, label="label"),
        label_names=cancer.label_names,
        name=cancer.name,
    )
    poisoned = poison(relabelled, LabelFlip(), 0.1, seed=0)
    path = tmp_path_factory.mktemp("sanitize") / "flipped.csv"
    write_dataset(poisoned.dataset, path)
    return path, poisoned.poisoned


def test_sanitize_removes_flipped_labels_and_records_why(
    flipped: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, truth = flipped
    parent = tmp_path / "flipped.manifest.json"
    write_manifest(build_manifest(load_table(data), source=str(data)), parent)
    out = tmp_path / "clean.csv"
    code = main(
        ["data", "sanitize", str(data), "--recipe", "zoo:cancer-mlp", "--parent", str(parent), "--out", str(out),
         "--format", "json"]
    )  # fmt: skip
    assert code == 1  # records were removed
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    progress = [line.split(") ", 1)[1] for line in captured.err.splitlines() if line.startswith("sanitize (")]
    assert progress == [
        "training a model on the data with the recipe",
        "[1/3] trigger-transplant",
        "[2/3] activation-clustering",
        "[3/3] label-consistency",
        "done",
    ]
    removed = np.zeros(len(truth), bool)
    removed[summary["removed_indices"]] = True
    assert (removed & truth).sum() >= 0.8 * truth.sum()  # most flipped labels found
    assert (removed & ~truth).sum() <= 0.05 * (~truth).sum()
    clean = load_table(out)
    assert len(clean) == len(truth) - removed.sum()
    record = json.loads((tmp_path / "clean.csv.removed.json").read_text())
    assert record["format"] == "modelshield.sanitize-removed"
    assert all(r["flagged_by"] for r in record["removed"])
    manifest = read_manifest(tmp_path / "clean.csv.manifest.json")
    assert manifest.parent is not None
    assert manifest.parent.digest == read_manifest(parent).digest
    assert manifest.dataset_digest == clean.digest


def test_sanitize_npz_images_round_trip_with_label_names(tmp_path: Path) -> None:
    from modelshield.data import load_digits

    digits = load_digits()
    trigger = patch_trigger((1, 8, 8), size=2, position="top-left", low=0.0, high=1.0)
    poisoned = poison(digits, Backdoor(trigger, 3), 0.02, seed=0)
    path = tmp_path / "digits.npz"
    write_dataset(poisoned.dataset, path)
    back = load_table(path)
    assert back.label_names == digits.label_names
    np.testing.assert_array_equal(back.y, poisoned.dataset.y)
    assert back.schema.input_shape == (1, 8, 8)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--recipe", "zoo:nope"], "Unknown recipe"),
        (["--recipe", "zoo:cancer-mlp", "--detectors", "magic"], "Unknown detector"),
        (["--arch", "zoo:digits-cnn"], "--arch"),
        (["--detectors", "activation-clustering"], "PyTorch model"),
        (["--detectors", "label-consistency"], "recipe"),
    ],
)
def test_sanitize_bad_options_exit_2_and_write_nothing(
    flipped: tuple[Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    data, _ = flipped
    out = tmp_path / "clean.csv"
    assert main(["data", "sanitize", str(data), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sanitize_refuses_to_overwrite_and_to_flatten_images(
    flipped: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = flipped
    out = tmp_path / "clean.csv"
    out.write_text("keep me")
    assert main(["data", "sanitize", str(data), "--out", str(out)]) == 2
    assert out.read_text() == "keep me"
    assert main(["data", "sanitize", "bundled:digits", "--out", str(tmp_path / "digits.csv")]) == 2
    assert "npz" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv"]


def test_sanitize_a_parent_that_does_not_describe_the_data_is_refused(
    flipped: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    data, _ = flipped
    other = tmp_path / "other.manifest.json"
    write_manifest(build_manifest(load_breast_cancer(), source="bundled"), other)
    out = tmp_path / "clean.csv"
    assert main(["data", "sanitize", str(data), "--parent", str(other), "--out", str(out)]) == 2
    assert not out.exists()
