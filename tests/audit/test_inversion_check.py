"""The inversion check: class reconstruction for white-box image models, attribute inference for tabular ones,
severities from the documented thresholds, report-ready evidence, determinism, quick under the quick budget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from modelshield.audit.checks.inversion import INVERSION
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
    start = time.perf_counter()
    (finding,) = INVERSION.run(_context(image_target))
    assert time.perf_counter() - start < 30  # a few seconds on two idle cores; generous for busy CI machines
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
