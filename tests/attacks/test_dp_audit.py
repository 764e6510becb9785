"""The one-run DP audit (Steinke, Nasr & Jagielski 2023): the bound itself, and audits of real training runs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.dp_audit import (
    Canaries,
    epsilon_lower_bound_one_run,
    make_canaries,
    one_run_audit,
    one_run_p_value,
)
from modelshield.data import load_bundled, train_test_split
from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier
from modelshield.models.sklearn_classifier import SklearnClassifier

M, K, DELTA = 400, 40, 1e-5


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Canaries]:
    split = train_test_split(load_bundled("digits"), test_size=0.25, seed=0)
    return split.train, make_canaries(split.test, M, kind="mislabeled", seed=0)


def _as_dataset(base: Dataset, x: np.ndarray, y: np.ndarray) -> Dataset:
    return Dataset(x=x, y=y, schema=base.schema, label_names=base.label_names, name="audit")


# -- the bound -----------------------------------------------------------------------------------------------------


def test_all_correct_without_delta_matches_the_closed_form() -> None:
    """With δ = 0 and every guess right, the bound solves q^r = β for q = e^ε / (1 + e^ε)."""
    for r in (10, 50, 200):
        q = 0.05 ** (1 / r)
        expected = math.log(q / (1 - q))
        assert epsilon_lower_bound_one_run(1000, r, r, delta=0.0) == pytest.approx(expected, abs=1e-4)


def test_bound_grows_with_correct_guesses_and_shrinks_with_delta() -> None:
    bounds = [epsilon_lower_bound_one_run(1000, 100, v, delta=1e-6) for v in range(40, 101, 10)]
    assert bounds[0] == 0.0  # fewer right than chance proves nothing
    assert all(a <= b for a, b in itertools.pairwise(bounds))
    assert bounds[-1] > bounds[-2] > 0
    assert epsilon_lower_bound_one_run(1000, 100, 100, delta=1e-4) < epsilon_lower_bound_one_run(
        1000, 100, 100, delta=0.0
    )
    assert one_run_p_value(1000, 100, 80, epsilon=1.0, delta=1e-5) < one_run_p_value(
        1000, 100, 80, epsilon=2.0, delta=1e-5
    )


def test_bound_is_valid_for_randomised_response() -> None:
    """Guesses right with probability e^ε/(1+e^ε) — the best an ε-DP mechanism allows — exceed ε at most 5% of
    the time (plus sampling slack over the trials)."""
    eps, r, trials = 1.0, 200, 300
    rng = np.random.default_rng(0)
    q = 1 / (1 + math.exp(-eps))
    correct = rng.binomial(r, q, size=trials)
    bounds = np.array([epsilon_lower_bound_one_run(r, r, int(v), delta=0.0, tolerance=1e-3) for v in correct])
    exceed = float(np.mean(bounds > eps))
    assert exceed <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)
    assert np.median(bounds) > 0  # and the bound is not vacuous at the truth


@pytest.mark.parametrize(
    ("m", "r", "v", "delta", "confidence"),
    [(0, 0, 0, 0.0, 0.95), (10, 11, 5, 0.0, 0.95), (10, 5, 6, 0.0, 0.95), (10, 5, 5, 1.0, 0.95), (10, 5, 5, 0.0, 1.0)],
)
def test_bad_counts_raise(m: int, r: int, v: int, delta: float, confidence: float) -> None:
    with pytest.raises(InvalidParameterError):
        epsilon_lower_bound_one_run(m, r, v, delta=delta, confidence=confidence)


def test_bad_audit_parameters_raise(digits: tuple[Dataset, Canaries]) -> None:
    base, canaries = digits

    def never(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
        raise AssertionError("must not train")

    for kwargs in ({"k_in": 0, "k_out": 0}, {"k_in": -1}, {"k_in": M}, {"k_in": 5, "confidence": 0.0}):
        with pytest.raises(InvalidParameterError):
            one_run_audit(never, base, canaries, delta=DELTA, **{"k_in": K, **kwargs})
    with pytest.raises(InvalidParameterError):
        make_canaries(base, 0)
    with pytest.raises(InvalidParameterError):
        make_canaries(base.subset(np.arange(10)), 11)


def test_canaries_are_mislabeled_or_random(digits: tuple[Dataset, Canaries]) -> None:
    base, canaries = digits
    assert len(canaries) == M
    random = make_canaries(base, 50, kind="random", seed=1)
    assert random.x.shape == (50, *base.schema.input_shape)
    low, high = base.schema.bounds()  # type: ignore[misc]
    assert np.all(random.x >= low) and np.all(random.x <= high)


# -- audits of training runs -------------------------------------------------------------------------------------


def _logistic(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
    model = LogisticRegression(max_iter=300, random_state=seed).fit(x.reshape(len(x), -1), y)
    return SklearnClassifier(model, input_shape=x.shape[1:])


def test_null_model_that_never_sees_the_canaries_gives_about_zero(digits: tuple[Dataset, Canaries]) -> None:
    base, canaries = digits
    n_base = len(base)

    def ignore_canaries(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
        return _logistic(base.x, base.y, seed)  # the canaries in x are dropped: scores cannot depend on the coins

    for seed in range(3):
        result = one_run_audit(ignore_canaries, base, canaries, delta=DELTA, k_in=K, seed=seed)
        assert result.epsilon_lower_bound < 0.5
        assert result.included > 0
    assert n_base == len(base)


def test_non_private_model_is_caught(digits: tuple[Dataset, Canaries]) -> None:
    from modelshield.defenses.training import standard_training
    from modelshield.zoo import architecture

    base, canaries = digits
    factory = architecture("digits-mlp", base.schema.input_shape, base.n_classes)

    def train(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
        return standard_training(factory, _as_dataset(base, x, y), epochs=40, seed=seed).classifier

    result = one_run_audit(train, base, canaries, delta=DELTA, k_in=K, seed=0, claimed_epsilon=1.0)
    assert result.epsilon_lower_bound > 1.0  # clearly above 0, and refutes any claim of ε = 1
    assert result.refutes_claim is True
    d = result.to_dict()
    assert d["correct"] == result.correct <= d["guesses"] == 2 * K
    assert d["m"] == M


def test_dp_sgd_at_epsilon_1_is_not_refuted(digits: tuple[Dataset, Canaries]) -> None:
    from modelshield.defenses.dp import dp_sgd_training
    from modelshield.zoo import architecture

    base, canaries = digits
    factory = architecture("digits-mlp", base.schema.input_shape, base.n_classes)

    def train(x: np.ndarray, y: np.ndarray, seed: int) -> Classifier:
        data = _as_dataset(base, x, y)
        return dp_sgd_training(
            factory, data, epsilon=1.0, delta=DELTA, epochs=2, accountant="rdp", seed=seed
        ).classifier

    result = one_run_audit(train, base, canaries, delta=DELTA, k_in=K, seed=0, claimed_epsilon=1.0)
    assert result.epsilon_lower_bound <= 1.0
    assert result.refutes_claim is False


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dp_sgd_at_epsilon_1_never_refuted_across_seeds(digits: tuple[Dataset, Canaries], seed: int) -> None:
    from modelshield.defenses.dp import dp_sgd_training
    from modelshield.zoo import architecture

    base, canaries = digits
    factory = architecture("digits-mlp", base.schema.input_shape, base.n_classes)

    def train(x: np.ndarray, y: np.ndarray, s: int) -> Classifier:
        data = _as_dataset(base, x, y)
        return dp_sgd_training(factory, data, epsilon=1.0, delta=DELTA, epochs=40, seed=s).classifier

    result = one_run_audit(train, base, canaries, delta=DELTA, k_in=K, seed=seed, claimed_epsilon=1.0)
    assert result.epsilon_lower_bound <= 1.0
