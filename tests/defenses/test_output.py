"""Output-hardening wrappers (modelshield.defenses.output) over a logit-output torch model and a probability-output
scikit-learn model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from modelshield.data import load_bundled, train_test_split
from modelshield.data.interface import DatasetSplit
from modelshield.defenses.output import (
    LabelOnly,
    NoisyOutput,
    OutputHardening,
    ReverseSigmoid,
    Rounding,
    TopK,
    compare_output_defenses,
)
from modelshield.defenses.training import standard_training
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.zoo import architecture, load_target

WRAPPERS: dict[str, Callable[[Classifier], OutputHardening]] = {
    "top-k": lambda c: TopK(c, k=3),
    "top-k-raw": lambda c: TopK(c, k=2, renormalize=False),
    "rounding": lambda c: Rounding(c, decimals=2),
    "label-only": LabelOnly,
    "laplace-probabilities": lambda c: NoisyOutput(c, scale=0.05, seed=0),
    "gaussian-logits": lambda c: NoisyOutput(c, scale=1.0, distribution="gaussian", space="logits", seed=0),
    "reverse-sigmoid": lambda c: ReverseSigmoid(c, beta=1.0, gamma=0.1),
    "reverse-sigmoid-strong": lambda c: ReverseSigmoid(c, beta=3.0, gamma=1.0),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return train_test_split(load_bundled("digits"), test_size=0.25, seed=0)


@pytest.fixture(scope="module")
def torch_model(digits: DatasetSplit) -> TorchClassifier:
    factory = architecture("digits-mlp", digits.train.schema.input_shape, digits.train.n_classes)
    return standard_training(factory, digits.train, epochs=5, seed=0).classifier


@pytest.fixture(scope="module")
def sklearn_model(digits: DatasetSplit) -> SklearnClassifier:
    model = LogisticRegression(max_iter=300).fit(digits.train.flat(), digits.train.y)
    return SklearnClassifier(model, input_shape=digits.train.schema.input_shape)


@pytest.fixture(params=["torch", "sklearn"])
def model(request: pytest.FixtureRequest, torch_model: TorchClassifier, sklearn_model: SklearnClassifier) -> Classifier:
    return torch_model if request.param == "torch" else sklearn_model


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_outputs_are_probabilities_that_keep_the_label(
    model: Classifier, digits: DatasetSplit, name: str
) -> None:
    x = digits.test.x[:120]
    clean = model.predict_proba(x)
    wrapped = WRAPPERS[name](model)
    out = wrapped.predict_proba(x)
    assert out.shape == clean.shape
    assert np.all(out >= 0)
    if name == "top-k-raw":
        top2 = np.sort(clean, axis=1)[:, -2:].sum(axis=1)
        np.testing.assert_allclose(out.sum(axis=1), top2, atol=1e-5)
    else:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert wrapped.preserves_argmax
    np.testing.assert_array_equal(np.argmax(out, axis=1), np.argmax(clean, axis=1))
    assert not wrapped.white_box
    assert wrapped.source == ("logits" if isinstance(model, TorchClassifier) else "probabilities")


def test_queries_are_forwarded_once(model: Classifier, digits: DatasetSplit) -> None:
    wrapped = TopK(model, k=1)
    before = model.queries
    wrapped.predict_proba(digits.test.x[:37])
    wrapped.predict(digits.test.x[:5])
    assert wrapped.queries == 42
    assert model.queries - before == 42


def test_label_only_is_per_row(model: Classifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:60]
    labels = model.predict(x)
    assert len(set(labels.tolist())) > 1  # the batch mixes classes
    out = LabelOnly(model).predict_proba(x)
    expected = np.eye(model.n_classes, dtype=np.float32)[labels]
    np.testing.assert_array_equal(out, expected)


def test_top_k_keeps_exactly_k(model: Classifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:50]
    clean = model.predict_proba(x)
    raw = TopK(model, k=2, renormalize=False).predict_proba(x)
    assert np.all((raw > 0).sum(axis=1) <= 2)
    kept = raw > 0
    np.testing.assert_allclose(raw[kept], clean[kept], rtol=1e-4)


def test_logits_and_probabilities_agree_on_a_logit_model(torch_model: TorchClassifier, digits: DatasetSplit) -> None:
    """The wrapper consumes the torch model's logits and softmaxes them itself: the same as reading its
    probabilities (never the raw logits taken for probabilities)."""
    x = digits.test.x[:80]
    for make in (lambda c, s: TopK(c, k=3, source=s), lambda c, s: ReverseSigmoid(c, source=s)):
        from_logits = make(torch_model, "logits").predict_proba(x)
        from_proba = make(torch_model, "probabilities").predict_proba(x)
        np.testing.assert_allclose(from_logits, from_proba, atol=1e-4)
    logits = torch_model.logits(x)
    assert np.any(logits < 0) or np.any(logits > 1)  # raw logits are not probabilities


def test_logits_source_needs_a_white_box_model(sklearn_model: SklearnClassifier) -> None:
    with pytest.raises(InvalidParameterError, match="logits"):
        TopK(sklearn_model, source="logits")


class _Fixed(Classifier):
    """Returns the same probabilities for every input."""

    def __init__(self, proba: list[float]) -> None:
        super().__init__(n_classes=len(proba), input_shape=(1,))
        self.proba = np.asarray(proba, dtype=np.float32)

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        return np.tile(self.proba, (len(x), 1))


@pytest.mark.parametrize(
    ("proba", "decimals"),
    [([0.504, 0.496], 2), ([0.34, 0.33, 0.33], 0), ([0.26, 0.25, 0.25, 0.24], 1), ([0.9, 0.05, 0.05], 1)],
)
def test_rounding_sums_to_one_on_the_grid_and_keeps_the_argmax(proba: list[float], decimals: int) -> None:
    model = _Fixed(proba)
    out = Rounding(model, decimals=decimals).predict_proba(np.zeros((3, 1)))
    grid = out * 10**decimals
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    top = int(np.argmax(proba))
    assert np.all(np.argmax(out, axis=1) == top)
    assert np.all(out[:, top] > np.delete(out, top, axis=1).max(axis=1))  # strictly: no tie for the label


def test_noise_is_seeded_repeatable_and_argmax_optional(sklearn_model: SklearnClassifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:100]
    a = NoisyOutput(sklearn_model, scale=0.2, seed=1)
    b = NoisyOutput(sklearn_model, scale=0.2, seed=1)
    np.testing.assert_array_equal(a.predict_proba(x), a.predict_proba(x))  # repeatable: no averaging gain
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.allclose(a.predict_proba(x), NoisyOutput(sklearn_model, scale=0.2, seed=2).predict_proba(x))
    fresh = NoisyOutput(sklearn_model, scale=0.2, repeatable=False, seed=1)
    assert not np.allclose(fresh.predict_proba(x), fresh.predict_proba(x))
    loud = NoisyOutput(sklearn_model, scale=5.0, preserve_argmax=False, seed=0)
    assert not loud.preserves_argmax
    assert np.any(loud.predict(x) != sklearn_model.predict(x))  # without the option, noise this loud flips labels


def test_reverse_sigmoid_perturbs(torch_model: TorchClassifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:50]
    out = ReverseSigmoid(torch_model, beta=1.0, gamma=0.1).predict_proba(x)
    assert np.abs(out - torch_model.predict_proba(x)).max() > 0.01


@pytest.mark.parametrize(
    "make",
    [
        lambda c: TopK(c, k=0),
        lambda c: TopK(c, k=11),
        lambda c: Rounding(c, decimals=-1),
        lambda c: NoisyOutput(c, scale=0.0),
        lambda c: NoisyOutput(c, scale=1.0, distribution="cauchy"),  # type: ignore[arg-type]
        lambda c: ReverseSigmoid(c, beta=-1.0),
        lambda c: ReverseSigmoid(c, gamma=0.0),
    ],
)
def test_bad_parameters_raise(sklearn_model: SklearnClassifier, make: Callable[[Classifier], Classifier]) -> None:
    with pytest.raises(InvalidParameterError):
        make(sklearn_model)


def test_comparison_costs_no_accuracy_for_argmax_preserving_wrappers(
    torch_model: TorchClassifier, digits: DatasetSplit
) -> None:
    table = compare_output_defenses(torch_model, digits.train, digits.test)
    assert table.rows[0].defense == "none"
    assert table.rows[0].accuracy_cost == 0.0
    for row in table.rows:
        assert row.preserves_argmax
        assert row.accuracy_cost == 0.0
        assert 0.0 <= row.loss_auc <= 1.0
    assert table.row("label-only").confidence_auc == pytest.approx(0.5)  # a one-hot has confidence 1 everywhere
    assert table.to_dict()["n_members"] == len(digits.train)


@pytest.mark.slow
def test_effect_on_membership_inference_against_the_overfit_target(zoo_cache: Path) -> None:
    target = load_target("zoo:cancer-mlp-overfit", cache_dir=zoo_cache, device="cpu")
    table = compare_output_defenses(target.classifier, target.train, target.test)
    for row in table.rows:
        print(
            f"{row.defense:55s} loss AUC {row.loss_auc:.3f} TPR@1% {row.loss_tpr_at_1pct_fpr:.3f}  "
            f"conf AUC {row.confidence_auc:.3f}  acc {row.accuracy:.3f} cost {row.accuracy_cost:.3f}"
        )
        assert row.accuracy_cost == 0.0
    # With labels only, the loss attack can tell right from wrong answers and nothing more: its AUC is exactly
    # (1 + train accuracy - test accuracy) / 2, the generalisation gap (which no output defense can hide).
    clf = target.classifier
    gap = clf.accuracy(target.train.x, target.train.y) - clf.accuracy(target.test.x, target.test.y)
    assert table.row("label-only").loss_auc == pytest.approx((1 + gap) / 2, abs=1e-9)
