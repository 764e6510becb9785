"""Planted backdoors on digits-cnn, for the tests that need a model whose trigger is known (detectors, explainers).

A backdoor stamps a fixed pattern at a fixed place; :func:`plant` poisons 5% of the training records (drawn from the
other classes: trigger stamped, label set to the target) and trains the zoo:digits-cnn network with its recipe
(30 epochs, Adam 2e-3, batches of 64) by a plain loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.models.interface import Bounds
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.target import Target
from modelshield.zoo import load_target
from modelshield.zoo.catalog import ZOO, architecture

SHAPE, CLASSES = (1, 8, 8), 10
POISON_RATE = 0.05


@dataclass(frozen=True)
class Backdoor:
    name: str
    rows: slice
    cols: slice
    pattern: np.ndarray
    target: int

    def stamp(self, x: np.ndarray) -> np.ndarray:
        out = np.array(x, np.float32)
        out[..., self.rows, self.cols] = self.pattern
        return out

    def mask(self) -> np.ndarray:
        """Where the trigger is: a boolean array of one input's shape."""
        out = np.zeros(SHAPE, bool)
        out[..., self.rows, self.cols] = True
        return out


CHECKERBOARD = Backdoor("checkerboard", slice(0, 2), slice(0, 2), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), 7)
RANDOM_PATCH = Backdoor(
    "random-patch", slice(3, 6), slice(2, 5), np.random.default_rng(3).random((3, 3)).astype(np.float32), 3
)


def train(x: np.ndarray, y: np.ndarray, *, seed: int, clip: Bounds | None) -> TorchClassifier:
    """The zoo:digits-cnn network trained on (x, y) with the zoo recipe, by a plain loop."""
    recipe = ZOO["digits-cnn"].recipe
    torch.manual_seed(seed)
    net = architecture("digits-cnn", SHAPE, CLASSES)()
    xt, yt = torch.from_numpy(np.array(x, np.float32)), torch.from_numpy(np.array(y, np.int64))
    optimiser = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), recipe["batch"]):
            idx = order[start : start + recipe["batch"]]
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    return TorchClassifier(net.eval(), n_classes=CLASSES, input_shape=SHAPE, clip_values=clip, device="cpu")


def plant(digits: Target, backdoor: Backdoor, *, seed: int = 0) -> TorchClassifier:
    """digits-cnn trained on digits' training records with ``backdoor`` planted in 5% of them."""
    assert digits.train is not None
    x, y = np.array(digits.train.x), np.array(digits.train.y)
    rng = np.random.default_rng(seed)
    poisoned = rng.choice(np.flatnonzero(y != backdoor.target), round(POISON_RATE * len(y)), replace=False)
    x[poisoned] = backdoor.stamp(x[poisoned])
    y[poisoned] = backdoor.target
    return train(x, y, seed=seed, clip=digits.classifier.clip_values)


def one_thread() -> Iterator[None]:
    """Tiny networks: one intra-op thread is faster and does not thrash a shared 2-core runner. The modules that
    train them make it their fixture: ``pytest.fixture(autouse=True, scope="module")(backdoors.one_thread)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(zoo_cache: Path) -> Target:
    """zoo:digits-cnn on the CPU (import it into a test module to use it there)."""
    return load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
