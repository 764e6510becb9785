"""Trainers of reference models: the vectorised PyTorch trainer and the parallel scikit-learn one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.retrain import SklearnTrainer, Trainer

torch = pytest.importorskip("torch")

from modelshield.models.nets import build_network, init_parameters, seeded_network  # noqa: E402
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


def test_training_neither_uses_nor_sets_torch_global_state(global_setters: list[str]) -> None:
    """Each model's initialisation and shuffling come from generators of its own: the result is the same whatever
    state torch's global generator is in (another thread may be drawing from it), and nothing global is set."""
    x, y = _data()
    masks = _masks(2, len(x), 60)
    runs = []
    for global_seed in (1, 2):
        torch.default_generator.manual_seed(global_seed)  # what some other thread might do
        runs.append(_trainer(chunk=2).fit_log_proba(x, y, masks, n_classes=2, seed=3))
        (net, _) = _trainer(chunk=2).fit_modules(x, y, masks, n_classes=2, seed=3)
        runs.append(net(torch.from_numpy(x)).detach().numpy())
    np.testing.assert_array_equal(runs[0], runs[2])
    np.testing.assert_array_equal(runs[1], runs[3])
    assert global_setters == []


def _layers() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv1d(3, 4, 3),
        torch.nn.ConvTranspose2d(4, 2, 3),
        torch.nn.Embedding(10, 4, padding_idx=0),
        torch.nn.LSTM(4, 5, num_layers=2),
        torch.nn.BatchNorm1d(4),
        torch.nn.LayerNorm(4),
        torch.nn.GroupNorm(2, 4),
        torch.nn.PReLU(),
        torch.nn.Linear(3, 2, bias=False),
    )


def test_seeded_initialisation_is_pytorchs_default_from_a_local_generator(global_setters: list[str]) -> None:
    """The same numbers as seeding the global generator and building the network (PyTorch's default scheme for
    each layer, drawn in order), so the zoo's networks keep their weights; other seeds give other weights."""
    torch.default_generator.manual_seed(5)
    expected = _layers().state_dict()
    torch.default_generator.manual_seed(6)  # the global state must not matter
    got = seeded_network(_layers, 5).state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    other = seeded_network(_layers, 7).state_dict()
    assert not torch.equal(other["0.weight"], got["0.weight"])
    assert global_setters == []


def test_layers_with_an_unknown_initialisation_are_refused() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.MultiheadAttention(4, 2))
    with pytest.raises(InvalidParameterError, match="MultiheadAttention") as info:
        init_parameters(net, torch.Generator().manual_seed(0))
    assert info.value.remedy
    not_a_network: Any = "a string"
    with pytest.raises(InvalidParameterError, match=r"not a torch\.nn\.Module"):
        seeded_network(lambda: not_a_network, 0)


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
