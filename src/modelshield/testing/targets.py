"""Tiny in-memory targets for fast tests and conformance checks: real models, trained in well under a second.

    >>> from modelshield.testing.targets import tiny_target
    >>> target = tiny_target("tabular", seed=0)  # doctest: +SKIP
    >>> target.classifier.white_box  # doctest: +SKIP
    True

``tabular``: 8 continuous features in [0, 1], 3 classes, a small PyTorch MLP (white-box) or a logistic regression
(black-box, ``white_box=False``). ``image``: 1x6x6 images in [0, 1] with a bright class-dependent corner, 2
classes, a small MLP. Each target carries its training data and its training recipe (:class:`TorchTrainer`), so
every check and attack can run on it. Same seed, same data and same model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset, Feature, Schema
from modelshield.models.interface import Bounds
from modelshield.target import Target

__all__ = ["tiny_datasets", "tiny_target"]

Kind = Literal["tabular", "image"]


def tiny_datasets(kind: Kind = "tabular", *, seed: int = 0, n: int = 240) -> tuple[Dataset, Dataset]:
    """A train and a test set (half and half) of ``n`` records, separable but not trivially so."""
    rng = np.random.default_rng(seed)
    shape: tuple[int, ...]
    if kind == "tabular":
        n_classes, shape = 3, (8,)
        y = np.arange(n) % n_classes
        centres = rng.uniform(0.25, 0.75, size=(n_classes, 8))
        x = np.clip(centres[y] + rng.normal(0.0, 0.12, size=(n, 8)), 0.0, 1.0)
    else:
        n_classes, shape = 2, (1, 6, 6)
        y = np.arange(n) % n_classes
        x = rng.uniform(0.0, 0.4, size=(n, *shape))
        x[y == 1, 0, :2, :2] += 0.5  # class 1: a bright top-left corner
    order = rng.permutation(n)
    xs: NDArray[np.float32] = x[order].astype(np.float32)
    ys: NDArray[np.int64] = y[order].astype(np.int64)
    features = tuple(Feature(f"f{i}", low=0.0, high=1.0) for i in range(int(np.prod(shape))))
    schema = Schema(features, shape)
    names = tuple(f"class-{c}" for c in range(n_classes))
    half = n // 2
    train = Dataset(xs[:half], ys[:half], schema, names, name=f"tiny-{kind}-train")
    test = Dataset(xs[half:], ys[half:], schema, names, name=f"tiny-{kind}-test")
    return train, test


def tiny_target(kind: Kind = "tabular", *, seed: int = 0, white_box: bool = True) -> Target:
    """A tiny real target: a PyTorch MLP (``white_box``) or a scikit-learn logistic regression, with its data."""
    train, test = tiny_datasets(kind, seed=seed)
    bounds = Bounds(0.0, 1.0)
    if white_box:
        from modelshield.models.nets import build_network
        from modelshield.models.retrain import TorchTrainer
        from modelshield.models.torch_classifier import TorchClassifier

        n_features = int(np.prod(train.schema.input_shape))
        params = {"n_features": n_features, "n_classes": train.n_classes, "hidden": [16]}
        trainer = TorchTrainer(
            lambda: build_network("mlp", params), epochs=30, batch_size=32, lr=1e-2, name=f"tiny-{kind}-mlp"
        )
        masks = np.ones((1, len(train)), dtype=bool)
        (net,) = trainer.fit_modules(train.x, train.y, masks, n_classes=train.n_classes, seed=seed)
        classifier = TorchClassifier(
            net, n_classes=train.n_classes, input_shape=train.schema.input_shape, clip_values=bounds, device="cpu"
        )
        return Target(f"tiny-{kind}-mlp", classifier, test, train=train, trainer=trainer, model_format="in-memory")
    from sklearn.linear_model import LogisticRegression

    from modelshield.models.retrain import SklearnTrainer
    from modelshield.models.sklearn_classifier import SklearnClassifier

    estimator = LogisticRegression(max_iter=500)
    estimator.fit(train.flat(), train.y)
    classifier_bb = SklearnClassifier(estimator, input_shape=train.schema.input_shape, clip_values=bounds)
    return Target(
        f"tiny-{kind}-logreg",
        classifier_bb,
        test,
        train=train,
        trainer=SklearnTrainer(LogisticRegression(max_iter=500)),
        model_format="in-memory",
    )
