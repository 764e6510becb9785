"""The contract every Classifier adapter must keep, as one function tests call on any adapter.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models import SklearnClassifier
    >>> from modelshield.testing import check_classifier
    >>> x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    >>> check_classifier(SklearnClassifier(LogisticRegression().fit(x, x[:, 0] > 0)), x)

Failures raise AssertionError with what was expected and what came back.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError
from modelshield.models.interface import Classifier, GradientClassifier

__all__ = ["check_classifier"]


def _expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (an explicit raise: ``python -O`` keeps it)."""
    if not condition:
        raise AssertionError(message)


def check_classifier(
    classifier: Classifier,
    x: NDArray[np.floating],
    *,
    check_gradients: bool = True,
    fd_step: float = 1e-3,
    fd_rtol: float = 0.05,
    fd_atol: float = 2e-3,
) -> None:
    """Check ``classifier`` on the sample ``x`` (at least two inputs); raise AssertionError on a breach."""
    x = np.asarray(x, dtype=np.float32)
    n, k = len(x), classifier.n_classes
    _expect(n >= 2, "check_classifier needs at least two inputs")
    _expect(
        x.shape[1:] == classifier.input_shape, f"sample shape {x.shape[1:]} != input_shape {classifier.input_shape}"
    )

    classifier.reset_queries()
    proba = classifier.predict_proba(x)
    _expect(proba.shape == (n, k), f"predict_proba shape {proba.shape}, expected {(n, k)}")
    _expect(proba.dtype == np.float32, f"predict_proba dtype {proba.dtype}, expected float32")
    _expect(np.all(proba >= 0) and np.all(proba <= 1 + 1e-6), "probabilities outside [0, 1]")
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-4, err_msg="probabilities do not sum to 1")
    _expect(classifier.queries == n, f"{n} inputs counted as {classifier.queries} queries")

    pred = classifier.predict(x)
    _expect(pred.shape == (n,) and pred.dtype == np.int64, f"predict gave {pred.shape} {pred.dtype}")
    _expect(np.array_equal(pred, proba.argmax(axis=1)), "predict disagrees with argmax(predict_proba)")
    _expect(classifier.reset_queries() == 2 * n, "reset_queries did not return the queries spent")
    _expect(classifier.queries == 0, "reset_queries did not reset")

    single = classifier.predict_proba(x[0])
    _expect(single.shape == (1, k), "a single input without batch axis must give one row")
    original = classifier.batch_size
    try:
        classifier.batch_size = 1
        np.testing.assert_allclose(
            classifier.predict_proba(x), proba, rtol=1e-4, atol=1e-5, err_msg="results depend on the batch size"
        )
    finally:
        classifier.batch_size = original
    _expect(classifier.queries == 1 + n, "batched prediction must count one query per input")

    for bad in (x.reshape(n, -1)[:, :-1], x[..., np.newaxis]):
        try:
            classifier.predict_proba(bad)
        except InvalidInputError:
            pass
        else:
            raise AssertionError(f"an input of shape {bad.shape} was accepted")
    poisoned = x.copy()
    poisoned.reshape(n, -1)[0, 0] = np.nan
    try:
        classifier.predict_proba(poisoned)
    except InvalidInputError:
        pass
    else:
        raise AssertionError("an input with NaN was accepted")

    bounds = classifier.clip_values
    if bounds is not None:
        low = np.broadcast_to(np.asarray(bounds.low, dtype=np.float32), classifier.input_shape)
        high = np.broadcast_to(np.asarray(bounds.high, dtype=np.float32), classifier.input_shape)
        _expect(np.all(low <= high), "clip_values low above high")
        _expect(bounds.contains(bounds.clip(x * 10 - 5)), "clip() leaves values outside the bounds")

    if check_gradients and isinstance(classifier, GradientClassifier):
        # A small random shift moves the points off ties (max-pool, ReLU kinks at exact zeros) where the loss is
        # not differentiable and finite differences disagree with any gradient.
        shifted = x[: min(n, 4)] + np.random.default_rng(1).uniform(0.005, 0.02, size=x[: min(n, 4)].shape)
        _check_gradients(classifier, shifted.astype(np.float32), fd_step, fd_rtol, fd_atol)


def _loss(classifier: GradientClassifier, x: NDArray[np.float32], y: NDArray[np.int64]) -> NDArray[np.float64]:
    logits = classifier.logits(x).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return np.asarray(-log_proba[np.arange(len(y)), y], dtype=np.float64)


def _check_gradients(
    classifier: GradientClassifier, x: NDArray[np.float32], step: float, rtol: float, atol: float
) -> None:
    logits = classifier.logits(x)
    _expect(logits.shape == (len(x), classifier.n_classes), f"logits shape {logits.shape}")
    np.testing.assert_allclose(
        np.exp(logits - logits.max(1, keepdims=True))
        / np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True),
        classifier.predict_proba(x),
        rtol=1e-4,
        atol=1e-5,
        err_msg="predict_proba is not softmax(logits)",
    )
    y = np.asarray((classifier.predict(x) + 1) % classifier.n_classes, dtype=np.int64)  # a label with real loss
    grad = classifier.loss_gradient(x, y)
    _expect(grad.shape == x.shape, f"gradient shape {grad.shape} != input shape {x.shape}")
    _expect(np.all(np.isfinite(grad)), "gradient has NaN or infinite values")
    flat_grad = grad.reshape(len(x), -1)
    # Steps are measured in each feature's own spread, so that raw tabular features (areas in the thousands next
    # to ratios near 0.01) are probed at a comparable, small scale and no ReLU kink falls inside a step.
    spread = x.reshape(len(x), -1).std(axis=0)
    spread = np.where(spread > 0, spread, spread.max() if spread.max() > 0 else 1.0)
    rng = np.random.default_rng(0)
    # Central differences along the (scaled) gradient direction and a random one must match the gradient.
    for i in range(len(x)):
        for raw in (flat_grad[i] * spread, rng.normal(size=flat_grad.shape[1])):
            unit = raw / (np.linalg.norm(raw) + 1e-30)
            d = (unit * spread).astype(np.float32).reshape(x.shape[1:])
            plus = _loss(classifier, (x[i] + step * d)[np.newaxis], y[i : i + 1])[0]
            minus = _loss(classifier, (x[i] - step * d)[np.newaxis], y[i : i + 1])[0]
            numeric = (plus - minus) / (2 * step)
            analytic = float(np.dot(flat_grad[i], d.reshape(-1)))
            _expect(
                abs(numeric - analytic) <= atol + rtol * abs(numeric),
                (
                    f"input {i}: directional derivative {analytic:.6g} from loss_gradient, {numeric:.6g} by finite "
                    "differences"
                ),
            )
