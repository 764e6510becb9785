"""The command line, run in-process through main(argv): exit codes, outputs, and one-line errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from cli_output import one_error_line

from modelshield import __version__
from modelshield.cli import main
from modelshield.reporting import load_report_schema


@pytest.fixture(autouse=True)
def _cache(zoo_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(zoo_cache))


@pytest.fixture(scope="module")
def cancer_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A skops logistic regression with its train and test CSVs."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skops.io import dump

    root = tmp_path_factory.mktemp("cancer")
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    train, test = frame.iloc[::2], frame.iloc[1::2]
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train.drop(columns="diagnosis").to_numpy(), train["diagnosis"].to_numpy())
    dump(model, root / "model.skops")
    return root / "model.skops", root / "train.csv", root / "test.csv"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"modelshield {__version__}"


def test_targets_lists_every_reference_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets", "--no-build", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"zoo:digits-cnn", "zoo:cancer-mlp-overfit", "zoo:phishing-gbm"}


@pytest.mark.slow  # the whole default audit, end to end (about 2 minutes on 2 cores)
def test_audit_json_validates_against_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--target", "zoo:digits-cnn", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(load_report_schema()).validate(report)
    assert report["target"]["name"] == "zoo:digits-cnn"
    assert {c["name"] for c in report["checks"]} == {
        "integrity",
        "supply",
        "signature",
        "baseline",
        "fairness",
        "explain",
        "evasion",
        "poisoning",
        "membership",
        "inversion",
        "extraction",
    }


def test_audit_writes_the_three_reports(tmp_path: Path) -> None:
    out = tmp_path / "report"
    checks = "integrity,baseline,evasion"
    assert main(["audit", "--target", "zoo:digits-cnn", "--checks", checks, "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.sarif"]
    jsonschema.Draft202012Validator(load_report_schema()).validate(json.loads((out / "report.json").read_text()))
    sarif = json.loads((out / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert "<svg" in (out / "report.html").read_text()


def test_audit_of_a_model_file_with_its_data(
    cancer_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, train, test = cancer_files
    code = main(
        [
            "audit",
            "--model",
            str(model),
            "--data",
            str(test),
            "--train-data",
            str(train),
            "--label",
            "diagnosis",
            "--format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    # A logistic regression is log-linear: its confidence scores give every weight away (equation solving).
    high = {f["id"] for f in report["findings"] if f["severity"] in ("high", "critical")}
    assert "extraction.equation-solving" in high
    assert code == 1
    assert report["target"]["model_format"] == "skops"
    perf = next(f for f in report["findings"] if f["id"] == "baseline.performance")
    assert perf["metrics"]["test_accuracy"] > 0.9
    assert "train_accuracy" in perf["metrics"]


def test_fail_on_sets_the_exit_code(cancer_files: tuple[Path, Path, Path]) -> None:
    model, _, test = cancer_files
    base = ["audit", "--model", str(model), "--data", str(test), "--label", "diagnosis", "--quiet"]
    assert main([*base, "--fail-on", "info"]) == 1
    assert main([*base, "--fail-on", "critical"]) == 0


def test_weights_with_a_reference_architecture(
    tmp_path: Path, zoo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelshield.zoo import load_target

    target = load_target("zoo:digits-mlp", cache_dir=zoo_cache, device="cpu")
    data = tmp_path / "digits.npz"
    np.savez(data, x=target.test.flat(), y=target.test.y)
    assert target.model_path is not None
    code = main(
        [
            "audit",
            "--model",
            str(target.model_path),
            "--arch",
            "zoo:digits-mlp",
            "--data",
            str(data),
            "--format",
            "json",
            "--checks",
            "baseline",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["target"]["white_box"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--target", "zoo:nope"], "Unknown reference target 'zoo:nope'"),
        (["audit", "--model", "missing.onnx", "--data", "missing.csv"], "missing.csv"),
        (["audit"], "Give one of --target"),
        (["audit", "--target", "zoo:digits-cnn", "--checks", "nope"], "Unknown check 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert message in one_error_line(capsys)


def test_corrupt_model_exits_2(
    tmp_path: Path, cancer_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "model.skops"
    corrupt.write_bytes(cancer_files[0].read_bytes()[:200])
    assert main(["audit", "--model", str(corrupt), "--data", str(cancer_files[2]), "--label", "diagnosis"]) == 2
    assert str(corrupt) in one_error_line(capsys)


def test_pickle_model_is_refused_without_the_unsafe_flag(
    tmp_path: Path, cancer_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"not": "loaded"}))
    assert main(["audit", "--model", str(model), "--data", str(cancer_files[2]), "--label", "diagnosis"]) == 2
    assert "can run code" in one_error_line(capsys)


def test_wrong_data_shape_exits_2(
    tmp_path: Path, cancer_files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    narrow = tmp_path / "narrow.csv"
    pd.read_csv(cancer_files[2]).iloc[:, 5:].to_csv(narrow, index=False)
    assert main(["audit", "--model", str(cancer_files[0]), "--data", str(narrow), "--label", "diagnosis"]) == 2
    assert "shape" in one_error_line(capsys)


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "audit", "--target", "zoo:nope"]) == 2
    assert "Traceback" in capsys.readouterr().err
