"""The inversion check: severities at each documented threshold on hand-made measurements; then class
reconstruction for white-box image models and attribute inference for tabular ones, measured, with report-ready
evidence and determinism."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from modelshield.attacks.attribute import METHODS, AttributeInferenceResult, GroupInference
from modelshield.audit.checks.inversion import (
    ATTRIBUTE_THRESHOLDS,
    INVERSION,
    RECONSTRUCTION_THRESHOLDS,
    AttributeMeasurement,
    InversionMeasurement,
    InversionSettings,
    ReconstructedClass,
    ReconstructionMeasurement,
)
from modelshield.audit.interface import Budget, CheckContext
from modelshield.data import Dataset, DatasetSplit, load_breast_cancer, load_digits, train_test_split
from modelshield.data.interface import Feature, Schema
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.models import Bounds, SklearnClassifier, TorchClassifier
from modelshield.reporting.svg import render_examples
from modelshield.target import Target


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small models and data run fastest on one thread; several threads on a busy machine spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


# -- judged: hand-made measurements ----------------------------------------------------------------------------------


def _reconstruction(p_value: float, accuracy: float) -> ReconstructionMeasurement:
    image = ((0.0, 0.5), (1.0, 0.25))
    classes = tuple(
        ReconstructedClass(
            label=f"class-{c}",
            training_mean=image,
            reconstruction=image,
            similarity=0.5,
            baseline_similarity=0.0,
            raw_similarity=0.9,
            baseline_raw_similarity=0.8,
            evaluator_accuracy=accuracy,
        )
        for c in range(4)
    )
    return ReconstructionMeasurement(attack="mi-face(steps=50)", classes=classes, evaluator_accuracy=accuracy,
                                     baseline_evaluator_accuracy=0.25, evaluator_reference_accuracy=0.9, chance=0.25,
                                     p_value=p_value, similarity_p_value=0.01, alpha=0.05, identification_accuracy=0.75,
                                     baseline_identification_accuracy=0.25, model_confidence=0.99, reconstructions=4,
                                     queries=204)  # fmt: skip


@pytest.mark.parametrize(
    ("p_value", "accuracy", "severity"),
    [
        (0.05, 1.0, Severity.INFO),  # p = alpha: the permutation test does not reject
        (math.nextafter(0.05, 0.0), 0.5, Severity.MEDIUM),
        (0.01, 1.0, Severity.MEDIUM),  # at most medium
        (0.01, math.nextafter(0.5, 0.0), Severity.LOW),
    ],
)
def test_reconstruction_severity_at_each_threshold(p_value: float, accuracy: float, severity: Severity) -> None:
    assert RECONSTRUCTION_THRESHOLDS == ((0.5, Severity.MEDIUM),)
    (finding,) = INVERSION.judge(InversionMeasurement(model="TorchClassifier",
                                                      reconstruction=_reconstruction(p_value, accuracy)))  # fmt: skip
    _common(finding)
    assert finding.id == "inversion.class-reconstruction" and finding.severity is severity
    examples = finding.evidence["examples"]
    assert isinstance(examples, list) and len(examples) == 4
    assert examples[0] == {
        "label": "class-0: training mean | reconstruction",
        "clean": [[0.0, 0.5], [1.0, 0.25]],
        "adversarial": [[0.0, 0.5], [1.0, 0.25]],
        "caption": "Training class means (left) and reconstructions from the model (right)",
    }
    assert finding.metrics["queries"] == 204 and finding.metrics["mean_similarity"] == 0.5
    assert "<svg" in str(render_examples(examples))  # type: ignore[arg-type]


def _group(leakage: float, low: float) -> GroupInference:
    accuracy = dict.fromkeys(METHODS, 0.4) | {"learned": 0.4 + leakage}
    return GroupInference(n=100, accuracy=accuracy, mae={}, attack="learned", baseline="prior", leakage=leakage,
                          leakage_interval=(low, leakage + 0.05))  # fmt: skip


def _attribute(members: GroupInference | None, non_members: GroupInference) -> AttributeMeasurement:
    result = AttributeInferenceResult(feature="age", feature_index=2, continuous=True, values=(20.0, 40.0, 60.0),
                                      bin_edges=(30.0, 50.0), output="proba", label_known=False,
                                      non_members=non_members, members=members, confidence=0.95, queries=800,
                                      seconds=1.5)  # fmt: skip
    return AttributeMeasurement(result, "marked sensitive in the schema")


@pytest.mark.parametrize(
    ("leakage", "low", "severity"),
    [
        (0.3, 0.0, Severity.INFO),  # the interval reaches zero: nothing shown, however large the estimate
        (0.2, 0.01, Severity.HIGH),
        (math.nextafter(0.2, 0.0), 0.01, Severity.MEDIUM),
        (0.1, 0.01, Severity.MEDIUM),
        (math.nextafter(0.1, 0.0), 0.01, Severity.LOW),
        (0.02, 0.001, Severity.LOW),
    ],
)
def test_attribute_severity_at_each_threshold(leakage: float, low: float, severity: Severity) -> None:
    assert ATTRIBUTE_THRESHOLDS == ((0.2, Severity.HIGH), (0.1, Severity.MEDIUM))
    measured = _attribute(_group(leakage, low), _group(0.0, 0.0))
    (finding,) = INVERSION.judge(InversionMeasurement(model="X", attributes=(measured,)))
    _common(finding)
    assert finding.id == "inversion.attribute-inference" and finding.severity is severity
    assert finding.metrics["feature"] == "age" and finding.metrics["records"] == 100
    assert "seconds" not in json.dumps(finding.evidence["result"])  # a finding does not depend on timing


def test_members_decide_when_given_and_non_members_otherwise() -> None:
    leaky, quiet = _group(0.25, 0.1), _group(0.0, 0.0)
    findings = INVERSION.judge(InversionMeasurement(model="X", attributes=(_attribute(quiet, leaky),
                                                                           _attribute(None, leaky))))  # fmt: skip
    assert [f.severity for f in findings] == [Severity.INFO, Severity.HIGH]
    assert "held-out records (no training data was given)" in findings[1].description


def test_an_image_model_without_gradients_is_not_assessed() -> None:
    (finding,) = INVERSION.judge(InversionMeasurement(model="SklearnClassifier"))
    assert finding.id == "inversion.not-assessed" and finding.severity is Severity.INFO
    assert "SklearnClassifier is black-box" in finding.description


def test_budgets_select_todays_settings() -> None:
    assert INVERSION.budgets[Budget.QUICK] == InversionSettings(1, 50, 30, 3, 1000, samples=200)
    assert INVERSION.budgets[Budget.STANDARD] == InversionSettings(2, 100, 100, 5, 2000, samples=1000)
    assert INVERSION.budgets[Budget.THOROUGH] == InversionSettings(4, 300, 300, 5, 5000, samples=10000)


# -- measured ---------------------------------------------------------------------------------------------------------


def _context(target: Target, seed: int = 0, budget: Budget = Budget.QUICK) -> CheckContext:
    return CheckContext(target=target, budget=budget, seed=seed, rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def image_target() -> Target:
    split = train_test_split(load_digits(), test_size=0.25, seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    x, y = torch.from_numpy(split.train.x.copy()), torch.from_numpy(split.train.y.copy())
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    clf = TorchClassifier(net, n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0), device="cpu")
    return Target("digits-mlp", clf, test=split.test, train=split.train)


def _cancer(sensitive: str | None) -> DatasetSplit:
    data = load_breast_cancer()
    features = tuple(
        Feature(f.name, f.kind, f.low, f.high, sensitive=f.name == sensitive) for f in data.schema.features
    )
    schema = Schema(features, data.schema.input_shape, label=data.schema.label)
    return train_test_split(Dataset(x=data.x, y=data.y, schema=schema, label_names=data.label_names), seed=0)


def _logistic(split: DatasetSplit, blind_to: int | None = None) -> SklearnClassifier:
    steps = []
    if blind_to is not None:

        def zero(x: np.ndarray) -> np.ndarray:
            out = np.array(x, copy=True)
            out[:, blind_to] = 0.0
            return out

        steps.append(FunctionTransformer(zero))
    model = make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=2000))
    return SklearnClassifier(model.fit(split.train.flat(), split.train.y))


def _common(finding: Finding) -> None:
    assert finding.check == "inversion"
    assert finding.owasp is OwaspMl.ML03 and finding.atlas == ("AML.T0024.001",)
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_image_models_get_class_reconstructions_drawn_like_evasion_examples(image_target: Target) -> None:
    measurement = INVERSION.measure(_context(image_target), INVERSION.settings(Budget.QUICK))
    reconstruction = measurement.reconstruction
    assert reconstruction is not None and not measurement.attributes
    assert len(reconstruction.classes) == 10 and reconstruction.reference == "training"
    assert reconstruction.queries == 10 * 50 + 10  # one restart of 50 steps per class, then one prediction each
    (finding,) = INVERSION.judge(measurement)
    _common(finding)
    assert finding.id == "inversion.class-reconstruction"
    assert finding.severity >= Severity.LOW  # a trained model gives its classes away
    metrics = finding.metrics
    assert metrics["evaluator_accuracy"] > metrics["baseline_evaluator_accuracy"]  # type: ignore[operator]
    examples = finding.evidence["examples"]
    assert isinstance(examples, list) and len(examples) == 10
    first = examples[0]
    assert isinstance(first, dict)
    assert np.asarray(first["clean"]).shape == (8, 8) and np.asarray(first["adversarial"]).shape == (8, 8)
    assert "<svg" in str(render_examples(examples))  # type: ignore[arg-type]
    assert {c.kind for c in finding.charts} == {"bar"}


def test_black_box_image_models_are_reported_as_not_assessed(image_target: Target) -> None:
    split = train_test_split(load_digits(), test_size=0.25, seed=0)
    model = LogisticRegression(max_iter=300).fit(split.train.flat(), split.train.y)
    clf = SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    (finding,) = INVERSION.run(_context(Target("digits-lr", clf, test=split.test, train=split.train)))
    assert finding.id == "inversion.not-assessed" and finding.severity is Severity.INFO


def test_sensitive_features_are_attacked_and_a_blind_model_is_only_info() -> None:
    split = _cancer("mean symmetry")
    index = split.train.schema.names.index("mean symmetry")
    (finding,) = INVERSION.run(_context(Target("blind", _logistic(split, blind_to=index), split.test, split.train)))
    _common(finding)
    assert finding.id == "inversion.attribute-inference"
    assert finding.metrics["feature"] == "mean symmetry"
    assert "marked sensitive" in str(finding.metrics["feature_choice"])
    assert finding.severity is Severity.INFO and finding.metrics["leakage"] == 0.0


def test_without_sensitive_features_the_most_informative_one_is_chosen_and_said() -> None:
    split = _cancer(None)
    target = Target("cancer-lr", _logistic(split), split.test, split.train)
    (finding,) = INVERSION.run(_context(target, seed=4))
    assert "mutual information" in str(finding.metrics["feature_choice"])
    assert finding.metrics["feature"] in split.train.schema.names
    again = INVERSION.run(_context(target, seed=4))[0]
    strip = {"seconds"}
    assert {k: v for k, v in finding.metrics.items() if k not in strip} == {
        k: v for k, v in again.metrics.items() if k not in strip
    }


def test_a_model_driven_by_the_sensitive_feature_is_flagged() -> None:
    data = load_breast_cancer()
    j = data.schema.names.index("mean symmetry")
    features = tuple(
        Feature(f.name, f.kind, f.low, f.high, sensitive=i == j) for i, f in enumerate(data.schema.features)
    )
    y = (data.x[:, j] > np.median(data.x[:, j])).astype(np.int64)
    relabelled = Dataset(x=data.x, y=y, schema=Schema(features, data.schema.input_shape), label_names=("lo", "hi"))
    split = train_test_split(relabelled, test_size=0.3, seed=0)
    (finding,) = INVERSION.run(_context(Target("driven", _logistic(split), split.test, split.train)))
    assert finding.severity >= Severity.MEDIUM
    low, _ = finding.metrics["leakage_interval"]  # type: ignore[misc]
    assert low > 0
