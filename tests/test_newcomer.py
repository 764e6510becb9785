"""A newcomer's first hour, scripted: their own scikit-learn model exported to ONNX, their own CSVs, every README
command through the real command line, and the mistakes a newcomer makes.

What must hold: the accuracy the audit reports is the model's real accuracy (whatever the order of the label
names), nothing ends in a traceback, and every bad input is one line on standard error with exit code 2, before
any long work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

pytestmark = pytest.mark.slow

NAMES = np.array(["malignant", "benign"])  # scikit-learn's breast-cancer targets: 0 malignant, 1 benign


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _csv(path: Path, x: np.ndarray, labels: np.ndarray, columns: list[str]) -> None:
    rows = [",".join([*columns, "diagnosis"])]
    rows += [",".join([*(f"{v:.9g}" for v in row), str(label)]) for row, label in zip(x, labels, strict=True)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _onnx(path: Path, model: LogisticRegression, n_features: int) -> None:
    from skl2onnx import to_onnx

    path.write_bytes(to_onnx(model, np.zeros((1, n_features), np.float32), target_opset=17).SerializeToString())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, float]]:
    """The newcomer's folder: two ONNX models (string and integer class labels), CSVs with label names."""
    root = tmp_path_factory.mktemp("newcomer")
    data = load_breast_cancer()
    columns = [c.replace(" ", "_") for c in data.feature_names]
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=0.3, random_state=0)
    named = LogisticRegression(max_iter=10_000).fit(x_train, NAMES[y_train])  # classes_: benign, malignant
    numbered = LogisticRegression(max_iter=10_000).fit(x_train, y_train)  # classes_: 0 (malignant), 1 (benign)
    _onnx(root / "model.onnx", named, x.shape[1])
    _onnx(root / "numbered.onnx", numbered, x.shape[1])
    _csv(root / "train.csv", x_train, NAMES[y_train], columns)
    _csv(root / "test.csv", x_test, NAMES[y_test], columns)
    _csv(root / "short.csv", x_test[:, :-1], NAMES[y_test], columns[:-1])  # one feature column too few
    odd = NAMES[y_test].astype(object)
    odd[3] = "unsure"
    _csv(root / "odd.csv", x_test, odd, columns)
    (root / "taken").write_text("a file where a report directory should go")
    env = {**os.environ, "MODELSHIELD_CACHE_DIR": str(root / "cache"), "COLUMNS": "120"}
    accuracy = {
        "named": float(np.mean(named.predict(x_test) == NAMES[y_test])),
        "numbered": float(np.mean(numbered.predict(x_test) == y_test)),
    }
    return root, env, accuracy


def _baseline_accuracy(report: dict[str, object]) -> float:
    findings = report["findings"]
    assert isinstance(findings, list)
    (baseline,) = [f for f in findings if f["id"] == "baseline.performance"]
    return float(baseline["metrics"]["test_accuracy"])


def test_every_readme_command_runs_on_the_newcomers_files(home: tuple[Path, dict[str, str], dict[str, float]]) -> None:
    root, env, accuracy = home
    for args in (["targets"], ["checks"], ["scan", "model.onnx", ".", "--format", "sarif", "--output", "scan.sarif"]):
        done = _cli(*args, cwd=root, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    audit = _cli(
        "audit", "--model", "model.onnx", "--data", "test.csv", "--train-data", "train.csv", "--label", "diagnosis",
        "--out", "report", "--checks", "baseline,evasion,membership,extraction", cwd=root, env=env,
    )  # fmt: skip
    assert audit.returncode in (0, 1), audit.stderr
    assert "Traceback" not in audit.stderr
    report = json.loads((root / "report" / "report.json").read_text())
    assert _baseline_accuracy(report) == pytest.approx(accuracy["named"], abs=1e-9)
    assert {p.name for p in (root / "report").iterdir()} >= {"report.json", "report.html", "report.sarif"}
    sarif = json.loads((root / "report" / "report.sarif").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert "model.onnx" in uris  # relative to the folder the newcomer works in
    for args in (
        ["audit", "--target", "zoo:cancer-mlp-overfit", "--checks", "membership,inversion,extraction",
         "--budget", "standard"],
        ["harden", "--target", "zoo:cancer-mlp-overfit", "--defense", "dp-sgd", "--epsilon", "8",
         "--out", "cancer-dp.safetensors"],
    ):  # fmt: skip
        done = _cli(*args, cwd=root, env=env)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr


def test_label_names_against_a_model_of_class_numbers_need_their_order(
    home: tuple[Path, dict[str, str], dict[str, float]],
) -> None:
    root, env, accuracy = home
    base = ["audit", "--model", "numbered.onnx", "--data", "test.csv", "--label", "diagnosis", "--checks", "baseline"]
    refused = _cli(*base, cwd=root, env=env)
    assert refused.returncode == 2 and "--classes" in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    done = _cli(*base, "--classes", "malignant,benign", "--format", "json", "--quiet", cwd=root, env=env)
    assert done.returncode in (0, 1), done.stderr
    assert _baseline_accuracy(json.loads(done.stdout)) == pytest.approx(accuracy["numbered"], abs=1e-9)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["audit", "--model", "missing.onnx", "--data", "test.csv", "--label", "diagnosis"], "missing.onnx"),
        (["audit", "--model", "model.onnx", "--data", "test.csv", "--label", "outcome"], "outcome"),
        (["audit", "--model", "model.onnx", "--data", "short.csv", "--label", "diagnosis"], "features"),
        (["audit", "--model", "model.onnx", "--data", "odd.csv", "--label", "diagnosis"], "unsure"),
        (["audit", "--model", "model.onnx", "--label", "diagnosis"], "--data"),
        (["audit", "--model", "model.onnx", "--data", "test.csv", "--label", "diagnosis", "--out", "taken"], "taken"),
        (["audit", "--target", "zoo:no-such-model"], "no-such-model"),
        (["scan", "no-such-dir/"], "does not exist"),
        (["harden", "--target", "zoo:cancer-mlp-overfit", "--defense", "magic", "--out", "x.safetensors"], "magic"),
    ],
)
def test_every_bad_input_is_one_line_and_exit_2(
    home: tuple[Path, dict[str, str], dict[str, float]], args: list[str], says: str
) -> None:
    root, env, _ = home
    done = _cli(*args, cwd=root, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    usage = lines and lines[0].startswith("Usage:")  # Typer's own usage errors: usage, hint, then the one line
    assert len(lines) == 1 or (usage and lines[-1].startswith("Error:")), done.stderr
    assert says in done.stderr
