"""TorchClassifier: conformance, gradients, devices, and safe weight loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.errors import FileFormatError, InvalidInputError, InvalidParameterError, ModelError, UnsafeModelError
from modelshield.loading import load_model
from modelshield.models import Bounds, TorchClassifier
from modelshield.models.serialization import load_torch_weights
from modelshield.testing import check_classifier


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    )


@pytest.fixture
def clf() -> TorchClassifier:
    return TorchClassifier(small_cnn(), n_classes=5, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0), device="cpu")


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)


def test_conformance(clf: TorchClassifier, x: np.ndarray) -> None:
    check_classifier(clf, x)


def test_gradient_is_per_input_and_matches_autograd_in_float64(clf: TorchClassifier, x: np.ndarray) -> None:
    y = np.arange(len(x)) % 5
    grad = clf.loss_gradient(x, y)
    # Each input's gradient must not depend on the rest of the batch.
    alone = np.concatenate([clf.loss_gradient(x[i : i + 1], y[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(grad, alone, rtol=1e-5, atol=1e-6)
    net64 = small_cnn().double().eval()
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    torch.nn.functional.cross_entropy(net64(xt), torch.from_numpy(y), reduction="sum").backward()  # type: ignore[no-untyped-call]
    assert xt.grad is not None
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert clf.gradient_queries == 2 * len(x)


def test_probability_output_models(x: np.ndarray) -> None:
    net = torch.nn.Sequential(small_cnn(), torch.nn.Softmax(dim=1))
    clf = TorchClassifier(net, n_classes=5, input_shape=(1, 8, 8), output="probabilities", device="cpu")
    expected = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(clf.predict_proba(x), expected, rtol=1e-5, atol=1e-6)
    check_classifier(clf, x)


def test_wrong_output_width_is_a_model_error(x: np.ndarray) -> None:
    clf = TorchClassifier(small_cnn(), n_classes=7, input_shape=(1, 8, 8), device="cpu")
    with pytest.raises(ModelError, match=r"expected a tensor of shape \(batch, 7\)"):
        clf.predict_proba(x)


def test_bad_arguments_and_labels(clf: TorchClassifier, x: np.ndarray) -> None:
    with pytest.raises(InvalidParameterError):
        TorchClassifier(small_cnn(), n_classes=5, input_shape=(1, 8, 8), output="scores")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"Labels must lie in 0\.\.4"):
        clf.loss_gradient(x, np.full(len(x), 9))
    with pytest.raises(InvalidInputError, match="integer labels"):
        clf.loss_gradient(x, np.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(x: np.ndarray) -> None:
    cpu = TorchClassifier(small_cnn(), n_classes=5, input_shape=(1, 8, 8), device="cpu")
    gpu = TorchClassifier(small_cnn(), n_classes=5, input_shape=(1, 8, 8), device="cuda")
    np.testing.assert_allclose(cpu.predict_proba(x), gpu.predict_proba(x), rtol=1e-4, atol=1e-5)
    y = np.zeros(len(x), dtype=np.int64)
    np.testing.assert_allclose(cpu.loss_gradient(x, y), gpu.loss_gradient(x, y), rtol=1e-3, atol=1e-5)


def test_weights_load_from_safetensors_and_state_dicts(tmp_path: Path, x: np.ndarray) -> None:
    from safetensors.torch import save_file

    reference = small_cnn().eval()
    save_file(reference.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    expected = torch.softmax(reference(torch.from_numpy(x)), 1).detach().numpy()
    for name in ("w.safetensors", "w.pt"):
        loaded = load_model(
            tmp_path / name,
            architecture=lambda: torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(256, 5)
            ),
            input_shape=(1, 8, 8),
            n_classes=5,
            device="cpu",
        )
        np.testing.assert_allclose(loaded.classifier.predict_proba(x), expected, rtol=1e-5, atol=1e-6)


def test_weights_that_do_not_fit_the_architecture(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(small_cnn().state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(FileFormatError, match="do not fit the architecture"):
        load_torch_weights(torch.nn.Linear(3, 2), tmp_path / "w.safetensors")


def test_full_checkpoints_and_pickles_are_refused_unless_opted_in(tmp_path: Path, x: np.ndarray) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(small_cnn(), whole)  # a pickled module: loading it runs the pickle
    with pytest.raises(UnsafeModelError):
        load_model(whole, input_shape=(1, 8, 8), n_classes=5)
    with pytest.raises(UnsafeModelError):
        load_torch_weights(small_cnn(), whole)
    raw = tmp_path / "model.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModelError, match="can run code"):
        load_model(raw)
    loaded = load_model(whole, input_shape=(1, 8, 8), n_classes=5, unsafe_pickle=True, device="cpu")
    assert loaded.classifier.predict(x).shape == (len(x),)


def test_loader_refuses_a_file_whose_scan_reaches_high(tmp_path: Path) -> None:
    import json
    import struct

    header = json.dumps({"0.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4096]}}).encode()
    path = tmp_path / "tampered.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(UnsafeModelError, match="fails its security scan"):
        load_model(path, architecture=small_cnn, input_shape=(1, 8, 8), n_classes=5)
