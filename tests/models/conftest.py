"""Fitted models of every adapter kind, on bundled data, shared by the model tests."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelshield.data import Dataset, load_breast_cancer, load_digits


@pytest.fixture(scope="session")
def cancer() -> Dataset:
    return load_breast_cancer()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_digits()


@pytest.fixture(scope="session")
def cancer_pipeline(cancer: Dataset) -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(cancer.x, cancer.y)


@pytest.fixture(scope="session")
def digits_net(digits: Dataset) -> torch.nn.Module:
    """A small MLP trained for a few steps, so its outputs are not uniform."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.from_numpy(digits.x.copy()), torch.from_numpy(digits.y.copy())
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return net.eval()


def _export_onnx(net: torch.nn.Module, path: Path, input_shape: tuple[int, ...], *, softmax: bool = False) -> Path:
    module = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)) if softmax else net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.zeros(1, *input_shape),),
            str(path),
            dynamo=False,
            input_names=["pixels"],
            output_names=["probabilities" if softmax else "logits"],
            dynamic_axes={"pixels": {0: "batch"}, "probabilities" if softmax else "logits": {0: "batch"}},
        )
    return path


@pytest.fixture
def export_onnx() -> Callable[..., Path]:
    """Export a torch module to ONNX with the TorchScript-based exporter, which needs no extra packages."""
    return _export_onnx


@pytest.fixture
def digits_sample(digits: Dataset) -> np.ndarray:
    return digits.x[:24]
