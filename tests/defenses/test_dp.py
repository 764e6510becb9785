"""DP-SGD through Opacus (modelshield.defenses.dp) on the zoo's tabular MLP and image CNN architectures."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.data import load_bundled, train_test_split
from modelshield.data.interface import Dataset
from modelshield.defenses.dp import DPTrainedModel, dp_sgd_training
from modelshield.defenses.training import standard_training
from modelshield.errors import InvalidParameterError, MissingExtraError
from modelshield.models.nets import Standardize
from modelshield.zoo import architecture, load_target


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cancer() -> tuple[Dataset, Dataset]:
    split = train_test_split(load_bundled("breast_cancer"), test_size=0.5, seed=0)
    return split.train, split.test


def _mlp(train: Dataset) -> torch.nn.Module:
    return architecture("cancer-mlp-overfit", train.schema.input_shape, train.n_classes)()


@pytest.fixture(scope="module")
def private(cancer: tuple[Dataset, Dataset]) -> DPTrainedModel:
    train, _ = cancer
    return dp_sgd_training(
        lambda: _mlp(train), train, epsilon=2.0, delta=1e-4, epochs=3, batch_size=64, accountant="rdp", seed=0
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": 0.01}, "1/n"),  # n = 284: 0.01 >= 1/284
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"accountant": "moments"}, "accountant"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_parameters_raise_with_a_remedy(cancer: tuple[Dataset, Dataset], kwargs: dict, match: str) -> None:
    train, _ = cancer
    args = {"epsilon": 1.0, "delta": 1e-4, **kwargs}
    with pytest.raises(InvalidParameterError, match=match) as info:
        dp_sgd_training(lambda: _mlp(train), train, **args)
    assert info.value.remedy


def test_missing_opacus_names_the_dp_extra(cancer: tuple[Dataset, Dataset], monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = cancer
    monkeypatch.setitem(sys.modules, "opacus", None)  # makes `import opacus` fail as if it were not installed
    with pytest.raises(MissingExtraError) as info:
        dp_sgd_training(lambda: _mlp(train), train, epsilon=1.0, delta=1e-4)
    assert "modelshield[dp]" in info.value.remedy


def test_budget_is_met_and_reported(cancer: tuple[Dataset, Dataset], private: DPTrainedModel) -> None:
    train, test = cancer
    assert private.epsilon <= private.target_epsilon == 2.0
    assert private.epsilon > 0.95 * 2.0  # the noise is calibrated to the budget, not far above it
    assert private.accountant == "rdp"
    assert private.noise_multiplier > 0
    assert private.sample_rate == pytest.approx(1 / math.ceil(len(train) / 64))
    assert private.steps > 0
    assert len(private.epoch_losses) == 3
    assert all(math.isfinite(v) for v in private.epoch_losses)
    proba = private.classifier.predict_proba(test.x)
    assert proba.shape == (len(test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    d = private.to_dict()
    assert d["epsilon"] == private.epsilon
    assert d["delta"] == 1e-4
    assert d["secure_rng"] is False


def test_standardisation_never_sees_the_private_records(
    cancer: tuple[Dataset, Dataset], private: DPTrainedModel
) -> None:
    train, _ = cancer
    (layer,) = [m for m in private.module.modules() if isinstance(m, Standardize)]
    low, high = train.schema.bounds()  # type: ignore[misc]
    np.testing.assert_allclose(layer.mean.numpy(), (low + high) / 2, rtol=1e-5)
    np.testing.assert_allclose(layer.std.numpy(), (high - low) / 2, rtol=1e-5)
    assert not np.allclose(layer.mean.numpy(), train.x.mean(axis=0), rtol=1e-2)
    assert private.standardization == "bounds"


def test_trained_network_is_plain_again(private: DPTrainedModel) -> None:
    """Opacus' hooks and per-example gradient attributes are gone from the returned network."""
    for module in private.module.modules():
        assert not module._forward_hooks
        assert not module._backward_hooks
    for p in private.module.parameters():
        assert not hasattr(p, "grad_sample")


@pytest.mark.slow
def test_smaller_epsilon_means_more_noise(cancer: tuple[Dataset, Dataset], private: DPTrainedModel) -> None:
    train, _ = cancer
    eps05 = dp_sgd_training(
        lambda: _mlp(train), train, epsilon=0.5, delta=1e-4, epochs=3, batch_size=64, accountant="rdp", seed=0
    )
    assert eps05.epsilon <= 0.5
    assert eps05.noise_multiplier > 1.5 * private.noise_multiplier


def test_batchnorm_is_replaced_and_public_standardisation(cancer: tuple[Dataset, Dataset]) -> None:
    """Opacus' validator swaps BatchNorm (which mixes the examples of a batch) for GroupNorm and says so; a public
    data set, when given, is what standardising layers are fitted on."""
    train, public = cancer
    n = train.n_features

    def factory() -> torch.nn.Module:
        return torch.nn.Sequential(
            Standardize(n), torch.nn.Linear(n, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )

    trained = dp_sgd_training(factory, train, epsilon=2.0, delta=1e-4, epochs=1, accountant="rdp", standardize=public)
    kinds = {type(m).__name__ for m in trained.module.modules()}
    assert "BatchNorm1d" not in kinds
    assert "GroupNorm" in kinds
    assert any("GroupNorm" in fix for fix in trained.fixes)
    (layer,) = [m for m in trained.module.modules() if isinstance(m, Standardize)]
    np.testing.assert_allclose(layer.mean.numpy(), public.x.mean(axis=0), rtol=1e-4)
    assert trained.standardization.startswith("public-data")


def test_cnn_architecture_and_determinism(global_setters: list[str]) -> None:
    """Same seed, same model, whatever state torch's global generator is in (another thread may be drawing from
    it): initialisation, Poisson batches and noise come from generators of their own, and nothing global is set."""
    calls = global_setters
    split = train_test_split(load_bundled("digits"), test_size=0.25, seed=0)
    train = split.train.subset(np.arange(256))
    factory = architecture("digits-cnn", train.schema.input_shape, train.n_classes)
    runs = []
    for global_seed in (1, 2):
        torch.default_generator.manual_seed(global_seed)
        runs.append(dp_sgd_training(factory, train, epsilon=2.0, delta=1e-4, epochs=1, accountant="rdp", seed=3))
    x = split.test.x[:50]
    np.testing.assert_array_equal(runs[0].classifier.logits(x), runs[1].classifier.logits(x))
    assert calls == []
    assert runs[0].standardization.startswith("none")
    assert runs[0].fixes == ()


@pytest.mark.slow
def test_epsilon_8_on_digits_cnn_recovers_most_accuracy(zoo_cache: Path) -> None:
    """The real figure: zoo:digits-cnn's recipe (30 epochs, batch 64) under DP-SGD at ε = 8 against the same
    recipe without privacy."""
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    train, test = target.train, target.test
    factory = architecture("digits-cnn", train.schema.input_shape, train.n_classes)
    plain = standard_training(factory, train, epochs=30, batch_size=64, lr=5e-3, seed=0)
    private = dp_sgd_training(
        factory, train, epsilon=8.0, delta=1 / (10 * len(train)), epochs=30, batch_size=64, lr=5e-3, seed=0
    )
    acc_plain = plain.classifier.accuracy(test.x, test.y)
    acc_private = private.classifier.accuracy(test.x, test.y)
    chance = 1 / train.n_classes
    print(
        f"non-private {acc_plain:.3f}, DP eps=8 {acc_private:.3f} (spent {private.epsilon:.3f}, {private.seconds:.1f}s)"
    )
    assert private.epsilon <= 8.0
    assert acc_private > chance + 0.5 * (acc_plain - chance)  # keeps at least half the margin over chance
    assert acc_private <= acc_plain + 0.02  # privacy does not come for free
