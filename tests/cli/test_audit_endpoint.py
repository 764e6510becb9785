"""``modelshield audit --endpoint``: a served model audited from the command line, its inputs checked first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.cli import main
from modelshield.data import load_breast_cancer, train_test_split
from modelshield.models import SklearnClassifier
from modelshield.testing import serve_classifier


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[SklearnClassifier, Path]:
    split = train_test_split(load_breast_cancer(), test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=5000).fit(split.train.flat(), split.train.y)
    root = tmp_path_factory.mktemp("endpoint")
    names = [f"f{i}" for i in range(split.test.x.shape[1])]
    rows = [",".join([*names, "label"])]
    rows += [",".join([*(f"{v:.6g}" for v in x), str(int(y))]) for x, y in zip(split.test.x, split.test.y, strict=True)]
    (root / "test.csv").write_text("\n".join(rows) + "\n")
    return SklearnClassifier(model), root / "test.csv"


def test_a_served_model_is_audited_like_a_file(
    served: tuple[SklearnClassifier, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    classifier, data = served
    with serve_classifier(classifier, model_name="cancer") as server:
        argv = ["audit", "--endpoint", server.url, "--model-name", "cancer", "--data", str(data)]
        code = main([*argv, "--checks", "baseline", "--format", "json", "--header", "Authorization: Bearer s3cret"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code in (0, 1)
    assert [c["name"] for c in report["checks"]] == ["baseline"]
    assert all(c["status"] in ("passed", "findings") for c in report["checks"])
    accuracy = next(f for f in report["findings"] if f["id"].startswith("baseline"))["metrics"]
    expected = float(np.mean(classifier.predict(classifier_input(data)) == classifier_labels(data)))
    assert any(abs(v - expected) < 1e-9 for v in accuracy.values() if isinstance(v, float))
    assert "s3cret" not in captured.out + captured.err  # the header's value is a secret
    assert "[1/1] baseline" in captured.err  # progress, also when standard error is not a terminal


def classifier_input(data: Path) -> np.ndarray:
    return np.loadtxt(data, delimiter=",", skiprows=1)[:, :-1].astype(np.float32)


def classifier_labels(data: Path) -> np.ndarray:
    return np.loadtxt(data, delimiter=",", skiprows=1)[:, -1].astype(int)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-name", "nobody"], "nobody"),
        (["--model-name", "cancer", "--header", "no colon here"], "is not 'Name: value'"),
        ([], "needs --model-name"),
    ],
)
def test_bad_endpoint_input_is_one_line_and_exit_2(
    served: tuple[SklearnClassifier, Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    classifier, data = served
    with serve_classifier(classifier, model_name="cancer") as server:
        code = main(["audit", "--endpoint", server.url, "--data", str(data), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_endpoint_options_without_an_endpoint_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--target", "zoo:digits-cnn", "--model-name", "x", "--quiet"]) == 2
    assert "apply to --endpoint only" in capsys.readouterr().err
