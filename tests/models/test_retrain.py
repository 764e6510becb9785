"""Trainers of reference models: the vectorised PyTorch trainer and the parallel scikit-learn one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.retrain import SklearnTrainer, Trainer

torch = pytest.importorskip("torch")

from modelshield.models.nets import build_network  # noqa: E402
from modelshield.models.retrain import TorchTrainer  # noqa: E402


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32) * np.float32(3.0) + np.float32(10.0)
    y = (x[:, 0] + x[:, 1] > 20).astype(np.int64)
    return x, y


def _masks(n_models: int, n: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    masks = np.zeros((n_models, n), bool)
    for m in range(n_models):
        masks[m, rng.permutation(n)[:size]] = True
    return masks


def _trainer(chunk: int) -> TorchTrainer:
    def factory() -> torch.nn.Module:
        return build_network("mlp", {"n_features": 5, "n_classes": 2, "hidden": [16], "standardize": True})

    return TorchTrainer(factory, epochs=5, batch_size=16, lr=1e-2, chunk=chunk)


def test_models_trained_together_equal_models_trained_alone() -> None:
    x, y = _data()
    masks = _masks(4, len(x), 60)
    together = _trainer(chunk=4).fit_log_proba(x, y, masks, n_classes=2, seed=3)
    alone = _trainer(chunk=1).fit_log_proba(x, y, masks, n_classes=2, seed=3)
    assert together.shape == (4, len(x), 2)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert not np.allclose(together[0], together[1], atol=1e-3)  # different data, different models
    np.testing.assert_allclose(np.exp(together).sum(axis=-1), 1.0, atol=1e-5)  # log-probabilities


def test_each_model_learns_from_its_own_records() -> None:
    x, y = _data(200)
    masks = _masks(3, len(x), 100)
    logp = _trainer(chunk=3).fit_log_proba(x, y, masks, n_classes=2, seed=0)
    accuracy = (logp.argmax(-1) == y).mean(axis=1)
    assert (accuracy > 0.8).all()  # standardising per model makes raw features (mean 10, sd 3) trainable
    assert isinstance(_trainer(1), Trainer)


def test_unequal_subsets_and_bad_masks_are_refused() -> None:
    x, y = _data()
    masks = _masks(2, len(x), 60)
    masks[0, np.flatnonzero(~masks[0])[0]] = True
    with pytest.raises(InvalidInputError, match="equal training-set sizes"):
        _trainer(2).fit_log_proba(x, y, masks, n_classes=2, seed=0)
    with pytest.raises(InvalidInputError):
        _trainer(2).fit_log_proba(x, y, np.zeros((2, len(x)), bool), n_classes=2, seed=0)
    with pytest.raises(InvalidParameterError):
        TorchTrainer(lambda: torch.nn.Linear(1, 1), epochs=0, batch_size=1, lr=1e-3)


def test_sklearn_trainer_handles_a_subset_missing_a_class() -> None:
    x, y = _data()
    y = y.copy()
    y[:10] = 2  # a third class, kept out of model 0's subset
    masks = np.ones((2, len(x)), bool)
    masks[0, :10] = False
    logp = SklearnTrainer(LogisticRegression(max_iter=500), n_jobs=1).fit_log_proba(x, y, masks, n_classes=3, seed=0)
    assert logp.shape == (2, len(x), 3)
    assert (logp[0, :, 2] < -100).all()  # model 0 never saw class 2: probability zero, in logs
    assert (logp[1, :, 2] > -100).all()  # model 1 did
