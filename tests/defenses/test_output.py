"""Output hardening (modelshield.defenses.output) in front of a logit-output torch model and a probability-output
scikit-learn model, as classifiers (wrap) and as output guards (inspect)."""

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
from modelshield.defenses.interface import Action, GuardRequest, GuardStage
from modelshield.defenses.output import (
    HardenedClassifier,
    LabelOnly,
    NoisyOutput,
    OutputHardening,
    ReverseSigmoid,
    Rounding,
    TopK,
    compare_output_defenses,
    default_output_defenses,
)
from modelshield.defenses.training import standard_training
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.interface import Classifier, FloatArray
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.zoo import architecture, load_target

HARDENINGS: dict[str, Callable[[], OutputHardening]] = {
    "top-k": lambda: TopK(k=3),
    "top-k-raw": lambda: TopK(k=2, renormalize=False),
    "rounding": lambda: Rounding(decimals=2),
    "label-only": LabelOnly,
    "laplace-probabilities": lambda: NoisyOutput(scale=0.05),
    "gaussian-logits": lambda: NoisyOutput(scale=1.0, distribution="gaussian", space="logits"),
    "fresh-noise": lambda: NoisyOutput(scale=0.05, repeatable=False),
    "reverse-sigmoid": lambda: ReverseSigmoid(beta=1.0, gamma=0.1),
    "reverse-sigmoid-strong": lambda: ReverseSigmoid(beta=3.0, gamma=1.0),
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


@pytest.mark.parametrize("name", sorted(HARDENINGS))
def test_wrapper_outputs_are_probabilities_that_keep_the_label(
    model: Classifier, digits: DatasetSplit, name: str
) -> None:
    x = digits.test.x[:120]
    clean = model.predict_proba(x)
    wrapped = HARDENINGS[name]().wrap(model)
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


@pytest.mark.parametrize("name", sorted(HARDENINGS))
def test_the_guard_releases_what_the_wrapper_does(
    sklearn_model: SklearnClassifier, digits: DatasetSplit, name: str
) -> None:
    """inspect() on the model's probabilities gives the wrapper's output (a probability-output model, so both read
    the same probabilities), allows every row, and spends no queries."""
    x = digits.test.x[:40]
    proba = sklearn_model.predict_proba(x)
    guard = HARDENINGS[name]().fit(sklearn_model, seed=3)
    assert guard.stage is GuardStage.OUTPUT
    decision = guard.inspect(GuardRequest("", x, probabilities=proba))
    assert decision.probabilities is not None
    np.testing.assert_allclose(decision.probabilities, HARDENINGS[name]().wrap(sklearn_model, seed=3).predict_proba(x),
                               atol=1e-6)  # fmt: skip
    assert decision.actions == (Action.ALLOW,) * 40 and decision.threshold is None and decision.queries == 0
    np.testing.assert_allclose(decision.scores, np.abs(decision.probabilities - proba).sum(axis=1), atol=1e-6)


def test_hardening_is_fitted_before_use(sklearn_model: SklearnClassifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:3]
    with pytest.raises(NotFittedError):
        TopK().inspect(GuardRequest("c", x, probabilities=sklearn_model.predict_proba(x)))
    with pytest.raises(NotFittedError):
        HardenedClassifier(sklearn_model, TopK())
    fitted_elsewhere = TopK().fit(_Fixed([0.5, 0.5]))
    with pytest.raises(InvalidParameterError, match="fitted to a model with 2 classes"):
        HardenedClassifier(sklearn_model, fitted_elsewhere)
    with pytest.raises(InvalidInputError, match="needs the model's probabilities"):
        TopK().fit(sklearn_model).inspect(GuardRequest("c", x))


def test_queries_are_forwarded_once(model: Classifier, digits: DatasetSplit) -> None:
    wrapped = TopK(k=1).wrap(model)
    before = model.queries
    wrapped.predict_proba(digits.test.x[:37])
    wrapped.predict(digits.test.x[:5])
    assert wrapped.queries == 42
    assert model.queries - before == 42


def test_label_only_is_per_row(model: Classifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:60]
    labels = model.predict(x)
    assert len(set(labels.tolist())) > 1  # the batch mixes classes
    out = LabelOnly().wrap(model).predict_proba(x)
    expected = np.eye(model.n_classes, dtype=np.float32)[labels]
    np.testing.assert_array_equal(out, expected)


def test_top_k_keeps_exactly_k(model: Classifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:50]
    clean = model.predict_proba(x)
    raw = TopK(k=2, renormalize=False).wrap(model).predict_proba(x)
    assert np.all((raw > 0).sum(axis=1) <= 2)
    kept = raw > 0
    np.testing.assert_allclose(raw[kept], clean[kept], rtol=1e-4)


def test_logits_and_probabilities_agree_on_a_logit_model(torch_model: TorchClassifier, digits: DatasetSplit) -> None:
    """The wrapper consumes the torch model's logits and softmaxes them itself: the same as reading its
    probabilities (never the raw logits taken for probabilities)."""
    x = digits.test.x[:80]
    for hardening in (TopK(k=3), ReverseSigmoid()):
        from_logits = hardening.wrap(torch_model, source="logits").predict_proba(x)
        from_proba = hardening.wrap(torch_model, source="probabilities").predict_proba(x)
        np.testing.assert_allclose(from_logits, from_proba, atol=1e-4)
    logits = torch_model.logits(x)
    assert np.any(logits < 0) or np.any(logits > 1)  # raw logits are not probabilities


def test_logits_source_needs_a_white_box_model(sklearn_model: SklearnClassifier) -> None:
    with pytest.raises(InvalidParameterError, match="logits"):
        TopK().wrap(sklearn_model, source="logits")


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
    out = Rounding(decimals=decimals).wrap(model).predict_proba(np.zeros((3, 1)))
    grid = out * 10**decimals
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    top = int(np.argmax(proba))
    assert np.all(np.argmax(out, axis=1) == top)
    assert np.all(out[:, top] > np.delete(out, top, axis=1).max(axis=1))  # strictly: no tie for the label


def test_noise_is_seeded_repeatable_and_argmax_optional(sklearn_model: SklearnClassifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:100]
    a = NoisyOutput(scale=0.2).wrap(sklearn_model, seed=1)
    b = NoisyOutput(scale=0.2).wrap(sklearn_model, seed=1)
    np.testing.assert_array_equal(a.predict_proba(x), a.predict_proba(x))  # repeatable: no averaging gain
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    # per row, not per batch: the same noise for a row wherever it sits (the model's own probabilities may differ
    # in the last bits with the batch's memory layout, as BLAS sums in another order; noise would differ by ~0.1)
    np.testing.assert_allclose(a.predict_proba(x[::-1]), a.predict_proba(x)[::-1], rtol=1e-5, atol=1e-7)
    assert not np.allclose(a.predict_proba(x), NoisyOutput(scale=0.2).wrap(sklearn_model, seed=2).predict_proba(x))
    fresh = NoisyOutput(scale=0.2, repeatable=False).wrap(sklearn_model, seed=1)
    assert not np.allclose(fresh.predict_proba(x), fresh.predict_proba(x))
    loud = NoisyOutput(scale=5.0, preserve_argmax=False).wrap(sklearn_model)
    assert not loud.preserves_argmax
    assert np.any(loud.predict(x) != sklearn_model.predict(x))  # without the option, noise this loud flips labels


def test_fresh_noise_is_per_client_and_repeats_under_the_seed(
    sklearn_model: SklearnClassifier, digits: DatasetSplit
) -> None:
    """Fresh noise depends on (seed, client, the client's request count, row): not on other clients' requests."""
    x = digits.test.x[:20]
    request = {c: GuardRequest(c, x, probabilities=sklearn_model.predict_proba(x)) for c in ("a", "b")}
    one = NoisyOutput(scale=0.2, repeatable=False, max_clients=2).fit(sklearn_model, seed=1)
    two = NoisyOutput(scale=0.2, repeatable=False, max_clients=2).fit(sklearn_model, seed=1)
    a1, a2 = one.inspect(request["a"]), one.inspect(request["a"])
    assert a1.probabilities is not None and a2.probabilities is not None
    assert not np.allclose(a1.probabilities, a2.probabilities)  # the second request gets new noise
    two.inspect(request["b"])  # another client in between changes nothing for "a"
    np.testing.assert_array_equal(two.inspect(request["a"]).probabilities, a1.probabilities)
    np.testing.assert_array_equal(two.inspect(request["a"]).probabilities, a2.probabilities)
    assert two.memory().clients == 2
    two.forget("a")
    np.testing.assert_array_equal(two.inspect(request["a"]).probabilities, a1.probabilities)  # count restarts


def test_reverse_sigmoid_perturbs(torch_model: TorchClassifier, digits: DatasetSplit) -> None:
    x = digits.test.x[:50]
    out = ReverseSigmoid(beta=1.0, gamma=0.1).wrap(torch_model).predict_proba(x)
    assert np.abs(out - torch_model.predict_proba(x)).max() > 0.01


@pytest.mark.parametrize(
    "make",
    [
        lambda c: TopK(k=0),
        lambda c: TopK(k=11).wrap(c),
        lambda c: Rounding(decimals=-1),
        lambda c: NoisyOutput(scale=0.0),
        lambda c: NoisyOutput(scale=1.0, distribution="cauchy"),  # type: ignore[arg-type]
        lambda c: NoisyOutput(scale=1.0, max_clients=0),
        lambda c: ReverseSigmoid(beta=-1.0),
        lambda c: ReverseSigmoid(gamma=0.0),
        lambda c: TopK().wrap(c, source="raw"),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters_raise(sklearn_model: SklearnClassifier, make: Callable[[Classifier], object]) -> None:
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
    assert [r.defense for r in table.rows[1:]] == list(default_output_defenses())


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
