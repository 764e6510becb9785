"""Attribute inference: exactly at the baseline for a model blind to the feature, clear leakage when it drives
the label, honest bookkeeping, clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from modelshield.attacks.attribute import (
    METHODS,
    AttributeInferenceResult,
    infer_attribute,
    most_informative_feature,
    sensitive_features,
)
from modelshield.data import Dataset, DatasetSplit, load_breast_cancer, train_test_split
from modelshield.data.interface import Feature, FeatureKind, Schema
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models import SklearnClassifier

FEATURE = "mean symmetry"  # hard to impute from the other measurements (a forest gets ~50% of its quartile)
FAST = {"learner": "logistic", "folds": 3, "bootstrap": 500}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small fits run fastest on one thread; several threads on a busy machine spin against each other."""
    with threadpool_limits(limits=1):
        yield


def _drop(column: int) -> FunctionTransformer:
    def zero(x: np.ndarray) -> np.ndarray:
        out = np.array(x, copy=True)
        out[:, column] = 0.0
        return out

    return FunctionTransformer(zero)


@pytest.fixture(scope="module")
def driven() -> DatasetSplit:
    """Real breast-cancer records whose label is whether the sensitive measurement is above its median."""
    data = load_breast_cancer()
    j = data.schema.names.index(FEATURE)
    y = (data.x[:, j] > np.median(data.x[:, j])).astype(np.int64)
    relabelled = Dataset(x=data.x, y=y, schema=data.schema, label_names=("low", "high"), name="cancer-symmetry")
    return train_test_split(relabelled, test_size=0.3, seed=0)


def _model(split: DatasetSplit, *, blind: bool) -> SklearnClassifier:
    j = split.train.schema.names.index(FEATURE)
    steps = [_drop(j)] if blind else []
    model = make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=2000))
    return SklearnClassifier(model.fit(split.train.flat(), split.train.y))


@pytest.mark.parametrize("output", ["proba", "label"])
def test_a_model_blind_to_the_feature_stays_exactly_at_the_baseline(driven: DatasetSplit, output: str) -> None:
    clf = _model(driven, blind=True)
    result = infer_attribute(clf, feature=FEATURE, auxiliary=driven.test, members=driven.train, output=output,
                             seed=0, **FAST)  # type: ignore[arg-type]  # fmt: skip
    assert result.members is not None
    for group in (result.members, result.non_members):
        assert group.leakage == 0.0
        assert group.leakage_interval[0] <= 0.0 <= group.leakage_interval[1]
        assert not group.significant
        # Without dependence on the feature the model-based attack ties everywhere and falls back to the prior,
        # and the learned attack sees exactly what the marginal-output baseline sees.
        assert group.accuracy["model-based"] == group.accuracy["prior"]
        assert group.accuracy["learned"] == group.accuracy["marginal-output"]


def test_a_model_driven_by_the_feature_leaks_it(driven: DatasetSplit) -> None:
    clf = _model(driven, blind=False)
    result = infer_attribute(clf, feature=FEATURE, auxiliary=driven.test, members=driven.train, seed=0, **FAST)
    assert result.continuous and len(result.values) == 4 and len(result.bin_edges) == 3
    assert result.members is not None
    for group in (result.members, result.non_members):
        assert group.significant
        assert group.accuracy[group.attack] > group.accuracy[group.baseline]
        assert group.mae[group.attack] < group.mae[group.baseline]
    assert result.queries == (len(driven.train) + len(driven.test)) * (1 + len(result.values))
    assert result.attack == "attribute-inference(feature='mean symmetry', output=proba, label_known=False)"
    metrics = result.metrics()  # judged on the members, the records the model trained on
    assert metrics["leakage"] == result.members.leakage and metrics["leakage_low"] == result.members.leakage_interval[0]
    assert metrics["non_member_leakage"] == result.non_members.leakage and metrics["chance"] == 0.25


def test_categorical_features_are_inferred_value_by_value_and_the_result_is_json(driven: DatasetSplit) -> None:
    data = load_breast_cancer()
    j = data.schema.names.index("mean radius")
    x = data.x.copy()
    x[:, j] = (x[:, j] > np.median(x[:, j])).astype(np.float32)
    features = list(data.schema.features)
    features[j] = Feature("mean radius", FeatureKind.BINARY, low=0.0, high=1.0, sensitive=True)
    schema = Schema(tuple(features), data.schema.input_shape)
    split = train_test_split(Dataset(x=x, y=data.y, schema=schema, label_names=data.label_names), test_size=0.3)
    assert sensitive_features(schema) == (j,)
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(split.train.flat(), split.train.y)
    result = infer_attribute(SklearnClassifier(forest), feature=j, auxiliary=split.test, members=split.train,
                             output="label", label_known=True, seed=1, **FAST)  # fmt: skip
    assert isinstance(result, AttributeInferenceResult)
    assert not result.continuous and result.values == (0.0, 1.0) and result.chance == 0.5
    assert result.members is not None and result.members.mae == {}
    assert set(result.members.accuracy) == set(METHODS)
    assert all(0.0 <= v <= 1.0 for v in result.members.accuracy.values())
    data_dict = json.loads(json.dumps(result.to_dict()))
    assert data_dict["feature"] == "mean radius" and data_dict["members"]["n"] == len(split.train)


def test_the_same_seed_gives_the_same_result(driven: DatasetSplit) -> None:
    clf = _model(driven, blind=False)
    runs = [infer_attribute(clf, feature=FEATURE, auxiliary=driven.test, seed=3, **FAST).to_dict() for _ in range(2)]
    for run in runs:
        run.pop("seconds")
    assert runs[0] == runs[1]
    assert runs[0]["members"] is None


def test_most_informative_feature_finds_the_feature_that_defines_the_label(driven: DatasetSplit) -> None:
    assert driven.train.schema.names[most_informative_feature(driven.train, seed=0)] == FEATURE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"feature": "no such feature"},
        {"feature": 30},
        {"feature": -1},
        {"feature": 0, "output": "logits"},
        {"feature": 0, "n_bins": 1},
        {"feature": 0, "folds": 1},
        {"feature": 0, "bootstrap": 10},
        {"feature": 0, "confidence": 1.5},
        {"feature": 0, "learner": "svm"},
        {"feature": 0, "learner": object()},
    ],
)
def test_bad_parameters_are_refused_with_a_remedy(driven: DatasetSplit, kwargs: dict[str, object]) -> None:
    clf = _model(driven, blind=True)
    with pytest.raises(InvalidParameterError) as info:
        infer_attribute(clf, auxiliary=driven.test, **kwargs)  # type: ignore[arg-type]
    assert info.value.remedy


def test_unusable_data_is_refused(driven: DatasetSplit) -> None:
    clf = _model(driven, blind=True)
    with pytest.raises(InvalidInputError, match="auxiliary records"):
        infer_attribute(clf, feature=0, auxiliary=driven.test.subset(np.arange(5)))
    x = driven.test.x.copy()
    x[:, 0] = 1.0
    constant = Dataset(x=x, y=driven.test.y, schema=driven.test.schema, label_names=driven.test.label_names)
    with pytest.raises(InvalidInputError, match="single value"):
        infer_attribute(clf, feature=0, auxiliary=constant)
