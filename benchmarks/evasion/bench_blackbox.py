"""Square attack (L∞): modelshield against ART's SquareAttack on the same models, data, ε and query budgets.

Run from the repository root in an environment that has ART (it is not a modelshield dependency)::

    python3 -m venv /tmp/artenv && /tmp/artenv/bin/pip install adversarial-robustness-toolbox scikit-learn packaging
    /tmp/artenv/bin/python benchmarks/evasion/bench_blackbox.py

Without ART installed only modelshield's numbers are printed. Targets, trained here with fixed seeds:

- ``cancer-gbm``: scikit-learn GradientBoosting (150 trees, depth 3, the zoo recipe) on the breast-cancer records,
  attacked in standardised units (ε is a multiple of each feature's standard deviation). ART's SquareAttack takes
  image-shaped inputs only, so both attacks also see the 30 features as a 1×5×6 "image".
- ``digits-logreg``: logistic regression on scikit-learn's 8×8 digits scaled to [0, 1], input 1×8×8.

Queries are counted at the model (one per input row), for ART through its black-box estimator's predict function.
ART's L∞ loop asks the model three times per iteration (current point, its loss, the candidate), so it is run with
``max_iter = budget // 3`` for an equal budget and also with ``max_iter = budget``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelshield.attacks.evasion.blackbox import square_attack
from modelshield.models.interface import Bounds, Classifier, FloatArray

BUDGET = 1000


class _Fn(Classifier):
    """A probability function as a modelshield classifier (the same function ART's estimator wraps)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...], k: int, bounds: Bounds) -> None:
        super().__init__(n_classes=k, input_shape=shape, clip_values=bounds)
        self.fn = fn

    def _predict_proba(self, x: FloatArray) -> np.ndarray:
        return self.fn(x)


def _cancer() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    model = GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=0).fit((x_tr - mu) / sd, y_tr)
    z = ((x_te - mu) / sd).astype(np.float32)
    low = ((x.min(0) - mu) / sd).astype(np.float32)
    high = ((x.max(0) - mu) / sd).astype(np.float32)
    return model, z, y_te, low, high, "cancer-gbm"


def _digits() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=3000).fit(x_tr, y_tr)
    n = 200
    return model, x_te[:n].astype(np.float32), y_te[:n], np.zeros(64, np.float32), np.ones(64, np.float32), "digits"


def _ours(model: Any, x: np.ndarray, y: np.ndarray, low: np.ndarray, high: np.ndarray, shape: tuple[int, ...],
          eps: float, p_init: float) -> tuple[float, int, float]:  # fmt: skip
    clf = _Fn(lambda a: model.predict_proba(a.reshape(len(a), -1)), shape, len(model.classes_),
              Bounds(low.reshape(shape), high.reshape(shape)))  # fmt: skip
    xs = x.reshape(len(x), *shape)
    t0 = time.perf_counter()
    r = square_attack(clf, xs, y, eps=eps, max_queries=BUDGET, p_init=p_init, seed=0)
    seconds = time.perf_counter() - t0
    assert r.queries <= BUDGET * len(x)
    return r.robust_accuracy, r.queries, seconds


def _art(model: Any, x: np.ndarray, y: np.ndarray, low: np.ndarray, high: np.ndarray, shape: tuple[int, ...],
         eps: float, p_init: float, max_iter: int) -> tuple[float, int, float] | None:  # fmt: skip
    try:
        from art.attacks.evasion import SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork
    except ImportError:
        return None
    count = [0]

    def predict(a: np.ndarray) -> np.ndarray:
        count[0] += len(a)
        return np.asarray(model.predict_proba(a.reshape(len(a), -1)), np.float32)

    est = BlackBoxClassifierNeuralNetwork(
        predict, input_shape=shape, nb_classes=len(model.classes_),
        clip_values=(low.reshape(shape), high.reshape(shape)), channels_first=True,
    )  # fmt: skip
    attack = SquareAttack(est, norm=np.inf, eps=eps, max_iter=max_iter, p_init=p_init, nb_restarts=1,
                          batch_size=4096, verbose=False)  # fmt: skip
    np.random.seed(0)
    xs = x.reshape(len(x), *shape)
    t0 = time.perf_counter()
    try:
        x_adv = attack.generate(xs, y=y)
    except ValueError as exc:  # ART draws a window as tall as the image when p_init·H·W ≥ H²
        print(f"  ART SquareAttack failed (eps={eps:g}, p_init={p_init:g}, input {shape}): {exc}")
        return float("nan"), count[0], float("nan")
    seconds = time.perf_counter() - t0
    spent = count[0]
    assert np.abs(x_adv - xs).max() <= eps + 1e-5
    robust = float(np.mean(model.predict_proba(x_adv.reshape(len(x), -1)).argmax(1) == y))
    return robust, spent, seconds


def main() -> None:
    rows: list[tuple[str, ...]] = []
    for build, eps_list, shapes in (
        (_cancer, (0.25, 0.5, 1.0), ((30,), (1, 5, 6))),
        (_digits, (0.05, 0.1), ((1, 8, 8),)),
    ):
        model, x, y, low, high, name = build()
        clean = float(np.mean(model.predict(x.reshape(len(x), -1)) == y))
        print(f"{name}: n={len(x)}, clean accuracy {clean:.3f}")
        for eps in eps_list:
            for shape in shapes:
                for p_init in (0.05, 0.8):
                    acc, q, s = _ours(model, x, y, low, high, shape, eps, p_init)
                    rows.append((name, f"{eps:g}", "x".join(map(str, shape)), f"{p_init:g}", "modelshield",
                                 f"{acc:.3f}", str(q), f"{q / len(x):.0f}", f"{s:.2f}"))  # fmt: skip
                    if len(shape) != 3:
                        continue
                    for max_iter in (BUDGET // 3, BUDGET):
                        art = _art(model, x, y, low, high, shape, eps, p_init, max_iter)
                        if art is not None:
                            acc, q, s = art
                            rows.append((name, f"{eps:g}", "x".join(map(str, shape)), f"{p_init:g}",
                                         f"ART max_iter={max_iter}", f"{acc:.3f}", str(q), f"{q / len(x):.0f}",
                                         f"{s:.2f}"))  # fmt: skip
    header = ("target", "eps", "input", "p_init", "attack", "robust acc", "queries", "per sample", "seconds")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
