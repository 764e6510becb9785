"""Model inversion (MI-Face): a trained model gives its classes away, an untrained one does not; reconstructions
stay valid; bad parameters are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.attacks.inversion import evaluate_inversion, invert_classes, reconstruct_classes
from modelshield.data import DatasetSplit, load_digits, train_test_split
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models import Bounds, SklearnClassifier, TorchClassifier
from modelshield.zoo import load_target


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small models and data run fastest on one thread; several threads on a busy machine spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _wrap(net: torch.nn.Module) -> TorchClassifier:
    return TorchClassifier(net, n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0), device="cpu")


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return train_test_split(load_digits(), test_size=0.25, seed=0)


@pytest.fixture(scope="module")
def trained(digits: DatasetSplit) -> TorchClassifier:
    """A small MLP trained on the digits for a second: enough to be ~95% accurate."""
    net = _mlp(0)
    x, y = torch.from_numpy(digits.train.x.copy()), torch.from_numpy(digits.train.y.copy())
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    clf = _wrap(net)
    assert clf.accuracy(digits.test.x, digits.test.y) > 0.9
    return clf


def test_a_trained_model_gives_its_classes_away(trained: TorchClassifier, digits: DatasetSplit) -> None:
    result = invert_classes(trained, reference=digits.train, auxiliary=digits.test, seed=0)
    assert result.significant and result.p_value < 0.01 and result.similarity_p_value < 0.01
    assert result.evaluator_accuracy > result.baseline_evaluator_accuracy
    assert result.evaluator_accuracy > result.chance
    assert result.similarity.mean() > result.baseline_similarity.mean()
    assert result.identification_accuracy > result.baseline_identification_accuracy
    assert result.reconstruction.confidence.mean() > 0.9  # the optimisation did its job
    json.dumps(result.to_dict())
    # an AttackResult: the reconstruction's name and queries, the whole time, the field's figures
    assert result.attack == result.reconstruction.attack and result.attack.startswith("mi-face(steps=100")
    assert result.queries == result.reconstruction.queries and result.seconds >= result.reconstruction.seconds
    metrics = result.metrics()
    assert metrics["evaluator_accuracy"] == result.evaluator_accuracy and metrics["p_value"] == result.p_value
    assert metrics["mean_similarity"] == pytest.approx(float(result.similarity.mean()))


def test_untrained_networks_give_nothing_away(digits: DatasetSplit) -> None:
    """Under the null (weights independent of the data) the permutation test rejects at its nominal 5% rate."""
    results = [invert_classes(_wrap(_mlp(seed)), reference=digits.train, auxiliary=digits.test, seed=seed)
               for seed in (1, 2, 3)]  # fmt: skip
    assert sum(r.significant for r in results) <= 1
    assert abs(np.mean([r.similarity.mean() for r in results])) < 0.2


def test_reconstructions_stay_in_range_and_are_deterministic(trained: TorchClassifier, digits: DatasetSplit) -> None:
    prior = digits.test.x.mean(axis=0)
    before = trained.queries
    one = reconstruct_classes(trained, prior, classes=[3, 7], restarts=3, steps=20, tv_weight=1.0, seed=5)
    two = reconstruct_classes(trained, prior, classes=[3, 7], restarts=3, steps=20, tv_weight=1.0, seed=5)
    assert one.x.shape == (6, 1, 8, 8) and one.x.dtype == np.float32
    assert one.classes.tolist() == [3, 3, 3, 7, 7, 7]
    assert one.x.min() >= 0.0 and one.x.max() <= 1.0 and one.start.min() >= 0.0 and one.start.max() <= 1.0
    assert np.array_equal(one.x, two.x)
    assert one.queries == 6 * 20 + 6 and trained.queries - before == 2 * one.queries
    result = evaluate_inversion(one, reference=digits.train, auxiliary=digits.test, seed=0)
    assert result.classes.tolist() == [3, 7] and result.class_means.shape == (2, 1, 8, 8)
    assert result.p_value >= 0.5  # two classes: two permutations, the smallest attainable p-value is 1/2


def test_a_given_evaluator_is_used(trained: TorchClassifier, digits: DatasetSplit) -> None:
    rec = reconstruct_classes(trained, digits.test.x.mean(axis=0), steps=10, seed=0)
    model = LogisticRegression(max_iter=300).fit(digits.test.flat(), digits.test.y)
    evaluator = SklearnClassifier(model, input_shape=(1, 8, 8))
    result = evaluate_inversion(rec, reference=digits.train, evaluator=evaluator, permutations=99)
    assert evaluator.queries > 0 and 0.0 <= result.evaluator_accuracy <= 1.0


def test_bad_parameters_are_refused(trained: TorchClassifier, digits: DatasetSplit) -> None:
    prior = digits.test.x.mean(axis=0)
    blackbox = SklearnClassifier(LogisticRegression(max_iter=300).fit(digits.test.flat(), digits.test.y),
                                 input_shape=(1, 8, 8))  # fmt: skip
    with pytest.raises(InvalidParameterError, match="gradients"):
        reconstruct_classes(blackbox, prior)  # type: ignore[arg-type]
    for kwargs in ({"steps": 0}, {"restarts": 0}, {"step_size": 0.0}, {"l2_weight": -1.0}, {"noise": float("nan")},
                   {"classes": [10]}, {"classes": [1, 1]}, {"classes": []}):  # fmt: skip
        with pytest.raises(InvalidParameterError):
            reconstruct_classes(trained, prior, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="prior"):
        reconstruct_classes(trained, prior[0])
    rec = reconstruct_classes(trained, prior, steps=1)
    with pytest.raises(InvalidParameterError, match="auxiliary"):
        evaluate_inversion(rec, reference=digits.train)
    with pytest.raises(InvalidParameterError):
        evaluate_inversion(rec, reference=digits.train, auxiliary=digits.test, alpha=0.0)


@pytest.mark.slow
def test_zoo_digits_cnn_beats_its_baseline(zoo_cache: Path) -> None:
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    assert target.train is not None
    result = invert_classes(target.classifier, reference=target.train, auxiliary=target.test, seed=0)  # type: ignore[arg-type]
    assert result.significant
    assert result.evaluator_accuracy > result.baseline_evaluator_accuracy
    assert result.similarity.mean() > result.baseline_similarity.mean()
