"""Gradient attributions for white-box classifiers: saliency and integrated gradients, batched.

    >>> import numpy as np, torch
    >>> from modelshield.models import TorchClassifier
    >>> from modelshield.explain.gradients import IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> clf = TorchClassifier(net, n_classes=2, input_shape=(4,), device="cpu")
    >>> result = IntegratedGradients(clf, steps=32).explain(np.ones((3, 4), np.float32), target=[0, 1, 1])
    >>> result.values.shape, bool(np.all(np.abs(result.delta) < 1e-4))
    ((3, 4), True)

What is differentiated (``output``):

- ``"logit"`` (default): the pre-softmax score of the target class; needs a
  :class:`~modelshield.models.TorchClassifier`, whose module is run under a local ``torch.enable_grad()`` (no
  global torch setting changes; the module stays in evaluation mode).
- ``"log_probability"``: the log-softmax of the target class, for any
  :class:`~modelshield.models.GradientClassifier`: it is minus the gradient of the cross-entropy loss that
  :meth:`~modelshield.models.GradientClassifier.loss_gradient` gives.

:class:`IntegratedGradients` (Sundararajan et al. 2017) integrates the gradient along the straight path from a
baseline ``x'`` to ``x`` with the trapezoid rule over ``steps`` points ``α = 0, 1/(steps−1), …, 1`` (Captum's
``method="riemann_trapezoid"`` with ``n_steps=steps``) and multiplies by ``x − x'``; completeness says the
attributions sum to ``f(x) − f(x')``, and :attr:`GradientAttribution.delta` reports how far they miss.
:class:`Saliency` gives ``|∂f/∂x|`` at ``x`` (Simonyan et al. 2014; Captum's ``Saliency`` with ``abs=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.explain.interface import check_targets, mean_abs_importance
from modelshield.models.interface import GradientClassifier

__all__ = ["GradientAttribution", "GradientOutput", "IntegratedGradients", "Saliency"]

GradientOutput = Literal["logit", "log_probability"]


@dataclass(frozen=True)
class GradientAttribution:
    """Attributions of one class per row: ``values`` has the shape of the inputs, ``(n, *input_shape)``.

    ``target``: ``(n,)`` the class explained per row. For integrated gradients, ``output_at_input`` and
    ``output_at_baseline`` are ``f(x)`` and ``f(x')`` per row, ``(n,)``, and ``delta`` is ``values`` summed over a
    row minus their difference (completeness error); for saliency they are ``f(x)``, NaN and NaN.
    ``gradient_evaluations`` counts the inputs whose gradient was taken (``n · steps`` for integrated gradients).
    """

    method: Literal["integrated_gradients", "saliency"]
    output: GradientOutput
    values: NDArray[np.float64]
    target: NDArray[np.int64]
    output_at_input: NDArray[np.float64]
    output_at_baseline: NDArray[np.float64]
    delta: NDArray[np.float64]
    steps: int
    gradient_evaluations: int

    @property
    def importance(self) -> NDArray[np.float64]:
        """``input_shape``: global importance, the mean |attribution| over the rows."""
        return mean_abs_importance(self.values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (importances flattened to a list in row-major order)."""
        finite = self.delta[np.isfinite(self.delta)]
        return {
            "method": self.method,
            "output": self.output,
            "rows": int(self.values.shape[0]),
            "input_shape": list(self.values.shape[1:]),
            "steps": self.steps,
            "gradient_evaluations": self.gradient_evaluations,
            "max_abs_delta": float(np.max(np.abs(finite))) if finite.size else None,
            "importance": [float(v) for v in self.importance.reshape(-1)],
        }


class _GradientExplainer:
    def __init__(self, classifier: GradientClassifier, *, output: GradientOutput, batch_size: int | None) -> None:
        if not isinstance(classifier, GradientClassifier):
            raise InvalidParameterError(
                f"Gradient attributions need a white-box GradientClassifier, got {type(classifier).__name__}.",
                remedy="Use modelshield.explain.agnostic.SamplingShap for black-box models.",
            )
        if output not in ("logit", "log_probability"):
            raise InvalidParameterError(f"output must be 'logit' or 'log_probability', not {output!r}.")
        if output == "logit" and not hasattr(classifier, "module"):
            raise InvalidParameterError(
                f"output='logit' needs a TorchClassifier; {type(classifier).__name__} gives only loss gradients.",
                remedy="Pass output='log_probability'.",
            )
        if batch_size is not None and batch_size < 1:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        self.classifier = classifier
        self.output: GradientOutput = output
        self.batch_size = batch_size or classifier.batch_size

    def _values(self, x: NDArray[np.float32], target: NDArray[np.int64]) -> NDArray[np.float64]:
        """``f_target(x)`` per row."""
        scores = np.asarray(self.classifier.logits(x), dtype=np.float64)
        if self.output == "log_probability":
            top = scores.max(axis=1, keepdims=True)
            scores = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
        return scores[np.arange(len(x)), target]

    def _gradients(self, x: NDArray[np.float32], target: NDArray[np.int64]) -> NDArray[np.float64]:
        """``∂f_target/∂x`` per row, shape of ``x``, in batches of ``batch_size``."""
        out = np.empty(x.shape, dtype=np.float64)
        for start in range(0, len(x), self.batch_size):
            chunk, labels = x[start : start + self.batch_size], target[start : start + self.batch_size]
            if self.output == "log_probability":
                out[start : start + len(chunk)] = -self.classifier.loss_gradient(chunk, labels)
            else:
                out[start : start + len(chunk)] = _logit_gradient(self.classifier, chunk, labels)
        return out

    def _inputs(self, x: ArrayLike, target: ArrayLike | None) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        arr = self.classifier.validate_input(x)
        if target is None:
            return arr, self.classifier.predict(arr)
        return arr, check_targets(target, len(arr), self.classifier.n_classes)

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        """Attributions for class ``target[i]`` of row ``i``; shape of ``x``."""
        return self.explain(x, target=target).values

    def explain(self, x: ArrayLike, *, target: ArrayLike | None = None) -> GradientAttribution:  # pragma: no cover
        raise NotImplementedError


class Saliency(_GradientExplainer):
    """``|∂f_target/∂x|`` at each input; ``target`` defaults to the predicted class."""

    def __init__(
        self, classifier: GradientClassifier, *, output: GradientOutput = "logit", batch_size: int | None = None
    ) -> None:
        super().__init__(classifier, output=output, batch_size=batch_size)

    def explain(self, x: ArrayLike, *, target: ArrayLike | None = None) -> GradientAttribution:
        """Saliency maps for the rows of ``x`` (shape ``(n, *input_shape)``)."""
        arr, classes = self._inputs(x, target)
        grads = self._gradients(arr, classes)
        nan = np.full(len(arr), np.nan)
        return GradientAttribution(
            method="saliency",
            output=self.output,
            values=np.abs(grads),
            target=classes,
            output_at_input=self._values(arr, classes),
            output_at_baseline=nan,
            delta=nan.copy(),
            steps=1,
            gradient_evaluations=len(arr),
        )


class IntegratedGradients(_GradientExplainer):
    """Integrated gradients from ``baseline`` (zeros when None; else one input, or one per row) to each input.

    ``steps`` (at least 2) is the number of points on the path, ends included.
    """

    def __init__(
        self,
        classifier: GradientClassifier,
        *,
        steps: int = 50,
        baseline: ArrayLike | None = None,
        output: GradientOutput = "logit",
        batch_size: int | None = None,
    ) -> None:
        super().__init__(classifier, output=output, batch_size=batch_size)
        if steps < 2:
            raise InvalidParameterError(f"steps must be at least 2 (both ends of the path), got {steps}.")
        self.steps = int(steps)
        self.baseline = None if baseline is None else np.asarray(baseline, dtype=np.float32)

    def _baselines(self, arr: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.baseline is None:
            return np.zeros_like(arr)
        shape = self.classifier.input_shape
        if self.baseline.shape == shape:
            return np.broadcast_to(self.baseline, arr.shape).astype(np.float32)
        if self.baseline.shape == arr.shape:
            return self.baseline
        raise InvalidInputError(
            f"The baseline has shape {self.baseline.shape}; expected one input {shape} or one per row {arr.shape}."
        )

    def explain(self, x: ArrayLike, *, target: ArrayLike | None = None) -> GradientAttribution:
        """Integrated gradients for the rows of ``x``; ``target`` defaults to the predicted class."""
        arr, classes = self._inputs(x, target)
        base = self._baselines(arr)
        alphas = np.linspace(0.0, 1.0, self.steps)
        weights = np.full(self.steps, 1.0 / (self.steps - 1))
        weights[[0, -1]] /= 2.0
        diff = arr.astype(np.float64) - base.astype(np.float64)
        shape = (-1,) + (1,) * len(self.classifier.input_shape)
        total = np.zeros(arr.shape, dtype=np.float64)
        # rows in groups whose whole path fits in one batch: (rows · steps) inputs per gradient call
        rows = max(1, self.batch_size // self.steps)
        for start in range(0, len(arr), rows):
            xs, bs, d = arr[start : start + rows], base[start : start + rows], diff[start : start + rows]
            path = (bs[:, None] + alphas.reshape(1, *shape) * d[:, None]).astype(np.float32)  # (r, steps, *shape)
            flat = path.reshape(-1, *self.classifier.input_shape)
            grads = self._gradients(flat, np.repeat(classes[start : start + rows], self.steps))
            grads = grads.reshape(len(xs), self.steps, *self.classifier.input_shape)
            total[start : start + rows] = np.tensordot(weights, grads, axes=([0], [1])) * d
        f_x, f_base = self._values(arr, classes), self._values(base, classes)
        delta = total.reshape(len(arr), -1).sum(axis=1) - (f_x - f_base)
        return GradientAttribution(
            method="integrated_gradients",
            output=self.output,
            values=total,
            target=classes,
            output_at_input=f_x,
            output_at_baseline=f_base,
            delta=delta,
            steps=self.steps,
            gradient_evaluations=len(arr) * self.steps,
        )


def _logit_gradient(classifier: Any, x: NDArray[np.float32], target: NDArray[np.int64]) -> NDArray[np.float64]:
    """Gradient of each row's target logit, read through the TorchClassifier's own module and scoring."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        xt = classifier._tensor(x).clone().requires_grad_(True)
        scores = classifier._scores(xt)  # the adapter's logits, as it reads its module
        picked = scores.gather(1, torch.from_numpy(target).to(scores.device)[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, xt)
    classifier._count(len(x))
    classifier.gradient_queries += len(x)
    return np.asarray(grad.detach().cpu().numpy(), dtype=np.float64)
