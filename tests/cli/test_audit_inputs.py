"""``modelshield audit --model --data``: the model and the data are checked against each other, and the outputs
are checked, before any check runs; labels take the model's class order; whatever does not fit is one line, exit 2.

The models are real: scikit-learn logistic regressions exported to ONNX as skl2onnx writes them (an ``ai.onnx.ml``
``LinearClassifier`` that names its classes, then a ``ZipMap``), skops files, and PyTorch weights trained here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from cli_output import one_error_line
from sklearn.linear_model import LogisticRegression

from modelshield.audit.checks import baseline
from modelshield.cli import main
from modelshield.findings import Severity

if TYPE_CHECKING:
    from onnx import GraphProto
    from torch import nn

FEATURES = ["radius", "texture", "smoothness", "symmetry"]


def tumours(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Four features and a diagnosis, benign or malignant, that a linear model learns almost perfectly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["diagnosis"] = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "malignant", "benign")
    return frame


def export_onnx(
    path: Path,
    model: LogisticRegression,
    *,
    labels: list[str] | list[int] | None = None,
    zipmap: bool = True,
) -> Path:
    """A fitted binary logistic regression as skl2onnx exports it: a ``LinearClassifier`` whose class labels come
    from ``model.classes_`` (or ``labels``, a reordering of them), and a ``ZipMap`` of probabilities (or, without
    ``zipmap``, the probability tensor itself)."""
    from onnx import TensorProto, helper

    classes = list(model.classes_)
    names = list(labels) if labels is not None else [c.item() if hasattr(c, "item") else c for c in classes]
    w, b = model.coef_[0], float(model.intercept_[0])
    # one row of scores per class, softmaxed: [0, z] gives (1 - sigmoid(z), sigmoid(z)) for (classes_[0], [1])
    rows = {classes[0]: (np.zeros_like(w), 0.0), classes[1]: (w, b)}
    order = [classes[[str(c) for c in classes].index(str(name))] for name in names]
    coefficients = np.concatenate([rows[c][0] for c in order]).astype(float).tolist()
    intercepts = [rows[c][1] for c in order]
    strings = isinstance(names[0], str)
    attribute = {"classlabels_strings": [str(n) for n in names]} if strings else {"classlabels_ints": names}
    nodes = [
        helper.make_node(
            "LinearClassifier",
            ["X"],
            ["label", "probabilities"],
            domain="ai.onnx.ml",
            coefficients=coefficients,
            intercepts=intercepts,
            post_transform="SOFTMAX",
            **attribute,
        ),
        helper.make_node("Identity", ["label"], ["output_label"]),
    ]
    key = TensorProto.STRING if strings else TensorProto.INT64
    outputs = [helper.make_tensor_value_info("output_label", key, [None])]
    if zipmap:
        zip_attribute = attribute if strings else {"classlabels_int64s": names}
        nodes.append(
            helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml", **zip_attribute)
        )
        value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
        sequence = helper.make_sequence_type_proto(helper.make_map_type_proto(key, value))
        outputs.append(helper.make_value_info("output_probability", sequence))
    else:
        nodes.append(helper.make_node("Identity", ["probabilities"], ["output_probability"]))
        outputs.append(helper.make_tensor_value_info("output_probability", TensorProto.FLOAT, [None, 2]))
    graph = helper.make_graph(
        nodes, "logistic", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, len(w)])], outputs
    )
    return _save(path, graph)


def export_scores_onnx(path: Path, model: LogisticRegression) -> Path:
    """The same regression as plain tensor algebra (as a network exporter writes it), with an input of unknown
    width: the graph records neither its feature count nor class names."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.stack([np.zeros_like(model.coef_[0]), model.coef_[0]], axis=1).astype(np.float32)
    bias = np.array([0.0, model.intercept_[0]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["z"]),
            helper.make_node("Add", ["z", "B"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
        ],
        "scores",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _save(path, graph)


def _save(path: Path, graph: GraphProto) -> Path:
    import onnx
    from onnx import helper

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return path


def train_mlp(x: np.ndarray, y: np.ndarray, n_classes: int) -> nn.Module:
    """The zoo:digits-mlp architecture trained on ``x`` and ``y`` with its recipe, for weights-only files."""
    from modelshield.models.retrain import TorchTrainer
    from modelshield.zoo import trainer

    recipe = trainer("zoo:digits-mlp", input_shape=(x.shape[1],), n_classes=n_classes)
    assert isinstance(recipe, TorchTrainer)
    return recipe.fit_modules(x, y, np.ones((1, len(x)), bool), n_classes=n_classes, seed=0)[0]


def save_weights(net: nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test CSV, and ONNX models trained on the same records: one on the names, one on codes 0 = malignant and
    1 = benign (the coding of scikit-learn's breast-cancer set)."""
    root = tmp_path_factory.mktemp("audit-inputs")
    train, test = tumours(seed=1), tumours(seed=2)
    test.to_csv(root / "test.csv", index=False)
    x = train[FEATURES].to_numpy()
    names = LogisticRegression().fit(x, train["diagnosis"].to_numpy())
    codes = LogisticRegression().fit(x, (train["diagnosis"] == "benign").to_numpy().astype(np.int64))
    return {
        "root": root,
        "test": root / "test.csv",
        "names": export_onnx(root / "names.onnx", names),
        "codes": export_onnx(root / "codes.onnx", codes),
        "malignant-first": export_onnx(root / "malignant-first.onnx", names, labels=["malignant", "benign"]),
        "malignant-first-tensor": export_onnx(
            root / "malignant-first-tensor.onnx", names, labels=["malignant", "benign"], zipmap=False
        ),
        "open-width": export_scores_onnx(root / "open-width.onnx", names),
    }


def audit(model: Path, data: Path, *extra: str) -> list[str]:
    return ["audit", "--model", str(model), "--data", str(data), "--label", "diagnosis", "--checks", "baseline",
            "--format", "json", *extra]  # fmt: skip


def findings(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    report = json.loads(capsys.readouterr().out)
    return {f["id"]: f for f in report["findings"]}


# -- label order ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["names", "malignant-first", "malignant-first-tensor"])
def test_named_labels_take_the_class_order_the_model_declares(
    files: dict[str, Path], model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(files[model], files["test"])) == 0
    performance = findings(capsys)["baseline.performance"]
    assert performance["metrics"]["test_accuracy"] > 0.9  # type: ignore[index]


def test_names_against_a_model_of_numbered_classes_need_classes(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(files["codes"], files["test"])) == 2
    line = one_error_line(capsys)
    assert "Label 'benign' in column 'diagnosis'" in line
    assert "(0, 1)" in line
    assert "--classes" in line


def test_classes_name_the_outputs_in_order(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(audit(files["codes"], files["test"], "--classes", "malignant,benign")) == 0
    assert findings(capsys)["baseline.performance"]["metrics"]["test_accuracy"] > 0.9  # type: ignore[index]


def test_classes_in_the_wrong_order_are_a_high_finding(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(files["codes"], files["test"], "--classes", "benign,malignant")) == 1
    below = findings(capsys)["baseline.below-chance"]
    assert below["severity"] == "high"
    assert "misaligned" in str(below["title"])


def test_classes_that_contradict_the_model_or_its_outputs_are_refused(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(files["names"], files["test"], "--classes", "malignant,benign")) == 2
    assert "The model names its classes benign, malignant" in one_error_line(capsys)
    assert main(audit(files["codes"], files["test"], "--classes", "malignant,benign,unsure")) == 2
    assert "3 classes were named" in one_error_line(capsys)
    assert main(audit(files["codes"], files["test"], "--classes", "malignant,")) == 2
    assert "--classes" in one_error_line(capsys)


def test_numbered_labels_are_the_outputs_of_a_model_without_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyTorch weights record no class names: label k is output k, also when the data lacks class 0."""
    frame = tumours(300)
    x = frame[FEATURES].to_numpy()
    y = np.digitize(x[:, 0], [-0.5, 0.5]).astype(np.int64)  # three classes, 0, 1 and 2, by the first feature
    weights = save_weights(train_mlp(x, y, 3), tmp_path / "three.safetensors")
    data = frame[FEATURES].assign(diagnosis=y)
    data[y > 0].to_csv(tmp_path / "without-0.csv", index=False)  # sorted codes would make 1 and 2 into 0 and 1
    code = main(audit(weights, tmp_path / "without-0.csv", "--arch", "zoo:digits-mlp", "--classes", "low,mid,high"))
    assert code == 2  # names given, but the labels are numbers
    assert "Label '1' in column 'diagnosis'" in one_error_line(capsys)
    assert main(audit(weights, tmp_path / "without-0.csv", "--arch", "zoo:digits-mlp")) == 0
    assert findings(capsys)["baseline.performance"]["metrics"]["test_accuracy"] > 0.8  # type: ignore[index]


def test_a_scikit_learn_model_gives_its_classes_to_data_that_lacks_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skops.io import dump

    frame = tumours(300)
    y = np.digitize(frame["radius"].to_numpy(), [-0.5, 0.5]).astype(np.int64) + 1  # classes 1, 2 and 3
    dump(LogisticRegression(max_iter=500).fit(frame[FEATURES].to_numpy(), y), tmp_path / "three.skops")
    frame.assign(diagnosis=y)[y > 1].to_csv(tmp_path / "two.csv", index=False)
    assert main(audit(tmp_path / "three.skops", tmp_path / "two.csv")) == 0
    assert findings(capsys)["baseline.performance"]["metrics"]["test_accuracy"] > 0.8  # type: ignore[index]


# -- the model against the data ---------------------------------------------------------------------------------
def test_a_label_the_model_does_not_know_is_named(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(files["test"])
    frame.loc[7, "diagnosis"] = "Benign"
    frame.to_csv(tmp_path / "typo.csv", index=False)
    assert main(audit(files["names"], tmp_path / "typo.csv")) == 2
    line = one_error_line(capsys)
    assert "Label 'Benign' in column 'diagnosis'" in line
    assert "benign, malignant" in line


@pytest.mark.parametrize(("change", "count"), [("drop", "3"), ("add", "5")])
def test_a_column_too_few_or_too_many_is_one_line(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, count: str
) -> None:
    frame = pd.read_csv(files["test"])
    frame = frame.drop(columns="symmetry") if change == "drop" else frame.assign(patient_id=np.arange(len(frame)))
    frame.to_csv(tmp_path / "changed.csv", index=False)
    assert main(audit(files["names"], tmp_path / "changed.csv")) == 2
    line = one_error_line(capsys)
    assert f"The model takes 4 features (ONNX input 'X'); the data has {count}" in line
    assert "label column" in line


def test_a_model_that_declares_no_width_is_tried_on_two_rows(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd.read_csv(files["test"]).drop(columns="symmetry").to_csv(tmp_path / "narrow.csv", index=False)
    classes = ("--classes", "benign,malignant")
    assert main(audit(files["open-width"], tmp_path / "narrow.csv", *classes)) == 2
    assert "The model fails on the first rows of" in one_error_line(capsys)
    assert main(audit(files["open-width"], files["test"])) == 2  # names, and a model that has none
    assert "does not record which of its 2 outputs is which class" in one_error_line(capsys)
    assert main(audit(files["open-width"], files["test"], *classes)) == 0


def test_a_text_feature_is_named(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.read_csv(files["test"]).assign(site="left").to_csv(tmp_path / "text.csv", index=False)
    assert main(audit(files["names"], tmp_path / "text.csv")) == 2
    assert "['site'] are not numeric" in one_error_line(capsys)


# -- outputs, before any work -----------------------------------------------------------------------------------
def test_unusable_outputs_are_refused_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model and data do not exist: an output error shows that the outputs were checked first."""
    file = tmp_path / "taken"
    file.write_text("")
    base = ["audit", "--model", str(tmp_path / "absent.onnx"), "--data", str(tmp_path / "absent.csv")]
    for extra, message in [
        (["--out", str(file)], f"--out {file} is a file"),
        (["--format", "json", "--output", str(tmp_path)], f"--output {tmp_path} is a directory"),
        (["--format", "json", "--output", str(file / "report.json")], f"{file} is a file, not a directory"),
        (["--out", str(file / "reports")], f"{file} is a file, not a directory"),
    ]:
        assert main([*base, *extra]) == 2
        assert message in one_error_line(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user whom permissions stop")
def test_an_unwritable_output_directory_is_refused_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    base = ["audit", "--model", str(tmp_path / "absent.onnx"), "--data", str(tmp_path / "absent.csv")]
    assert main([*base, "--format", "json", "--output", str(locked / "report.json")]) == 2
    assert "is not writable" in one_error_line(capsys)


def test_a_missing_output_directory_is_created(files: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "new" / "report.json"
    assert main([*audit(files["names"], files["test"]), "--output", str(output), "--out", str(tmp_path / "r")]) == 0
    assert json.loads(output.read_text())["target"]["name"] == "names.onnx"
    assert (tmp_path / "r" / "report.html").is_file()


# -- architectures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zoo:digits-mlp weights for four features and two classes (0 benign, 1 malignant), trained on the records."""
    frame = tumours(seed=1)
    x, y = frame[FEATURES].to_numpy(), (frame["diagnosis"] == "malignant").to_numpy().astype(np.int64)
    return save_weights(train_mlp(x, y, 2), tmp_path_factory.mktemp("weights") / "mlp.safetensors")


def test_a_whole_checkpoint_named_safetensors_is_one_line(
    files: dict[str, Path], mlp_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from modelshield.zoo import architecture

    net = architecture("zoo:digits-mlp", (4,), 2)()
    checkpoint = tmp_path / "model.safetensors"
    torch.save(net, checkpoint)  # a pickled module, named as if it were safetensors
    assert main(audit(checkpoint, files["test"], "--arch", "zoo:digits-mlp", "--classes", "benign,malignant")) == 2
    assert str(checkpoint) in one_error_line(capsys)


def test_a_convolutional_architecture_for_a_table_is_one_line(
    files: dict[str, Path], mlp_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(mlp_weights, files["test"], "--arch", "zoo:digits-cnn", "--classes", "benign,malignant")) == 2
    line = one_error_line(capsys)
    assert "zoo:digits-cnn is a convolutional network" in line
    assert "(4,)" in line


def test_weights_for_other_features_or_classes_are_one_line(
    files: dict[str, Path], mlp_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd.read_csv(files["test"]).drop(columns="symmetry").to_csv(tmp_path / "narrow.csv", index=False)
    assert main(audit(mlp_weights, tmp_path / "narrow.csv", "--arch", "zoo:digits-mlp", "--classes", "b,m")) == 2
    assert "do not fit the architecture" in one_error_line(capsys)
    assert main(audit(mlp_weights, files["test"], "--arch", "zoo:digits-mlp", "--classes", "a,b,c")) == 2
    assert "do not fit the architecture" in one_error_line(capsys)
    assert main(audit(mlp_weights, files["test"], "--arch", "zoo:digits-mlp", "--classes", "benign,malignant")) == 0


def test_an_architecture_for_a_model_that_holds_its_own_is_refused(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(audit(files["names"], files["test"], "--arch", "zoo:digits-mlp")) == 2
    assert "Drop --arch" in one_error_line(capsys)


# -- sanitize --model -------------------------------------------------------------------------------------------
def test_sanitize_refuses_a_model_it_cannot_use(
    files: dict[str, Path], mlp_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["data", "sanitize", str(files["test"]), "--label", "diagnosis", "--out", str(tmp_path / "clean.csv")]
    assert main([*base, "--model", str(files["names"])]) == 2
    assert "is not a PyTorch model" in one_error_line(capsys)
    assert main([*base, "--model", str(mlp_weights), "--arch", "zoo:digits-mlp", "--detectors", "neighbours"]) == 2
    assert "--detectors chose none of them" in one_error_line(capsys)
    assert main([*base, "--model", str(mlp_weights), "--arch", "zoo:digits-cnn"]) == 2
    assert "convolutional network" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_sanitize_uses_a_model_it_can(
    files: dict[str, Path], mlp_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clean.csv"
    args = ["data", "sanitize", str(files["test"]), "--label", "diagnosis", "--out", str(out), "--model",
            str(mlp_weights), "--arch", "zoo:digits-mlp", "--format", "json"]  # fmt: skip
    assert main(args) in (0, 1)
    assert "activation-clustering" in json.loads(capsys.readouterr().out)["detectors"]


# -- the baseline's below-chance rule ---------------------------------------------------------------------------
def measured(balanced_accuracy: float, support: tuple[int, ...]) -> baseline.BaselineMeasurement:
    k = len(support)
    return baseline.BaselineMeasurement(
        test_accuracy=balanced_accuracy,
        balanced_accuracy=balanced_accuracy,
        expected_calibration_error=0.0,
        test_loss=1.0,
        test_samples=sum(support),
        recall=(balanced_accuracy,) * k,
        label_names=tuple(str(i) for i in range(k)),
        support=support,
    )


def test_below_chance_needs_more_than_sampling_noise() -> None:
    def below(accuracy: float, support: tuple[int, ...]) -> bool:
        return any(f.id == "baseline.below-chance" for f in baseline.BASELINE.judge(measured(accuracy, support)))

    assert below(0.0, (20, 20))  # an inverted binary model on 40 records
    assert not below(0.0, (5, 5))  # ten records cannot tell
    margin = baseline.chance_margin((100, 100))
    assert below(0.5 - margin - 1e-9, (100, 100))
    assert not below(0.5 - margin + 1e-9, (100, 100))
    assert not below(0.47, (1000, 1000))  # a poor model, near chance
    finding = next(f for f in baseline.BASELINE.judge(measured(0.0, (20, 20))) if f.id == "baseline.below-chance")
    assert finding.severity is Severity.HIGH


def test_predictions_unrelated_to_the_labels_are_rarely_called_below_chance() -> None:
    """The false-alarm rate the margin promises, on 4,000 models that guess, with unbalanced classes."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [10, 30, 60])
    support = tuple(int(n) for n in np.bincount(y))
    margin = baseline.chance_margin(support)
    alarms = 0
    for _ in range(4000):
        pred = rng.choice(3, size=len(y), p=rng.dirichlet(np.ones(3)))
        balanced = np.mean([np.mean(pred[y == k] == k) for k in range(3)])
        alarms += balanced < 1 / 3 - margin
    assert alarms <= 4000 * baseline.CHANCE_FALSE_ALARM * 3  # Hoeffding's bound, with room for chance itself
