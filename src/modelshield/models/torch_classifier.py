"""White-box adapter for PyTorch models: probabilities, logits and per-input loss gradients, on CPU or CUDA.

    >>> import torch
    >>> from modelshield.models import TorchClassifier, Bounds
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    >>> clf = TorchClassifier(net, n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    >>> clf.loss_gradient(torch.rand(2, 1, 8, 8).numpy(), [3, 7]).shape
    (2, 1, 8, 8)

The module is put in evaluation mode and used as given: it must map a float32 batch ``(n, *input_shape)`` to
logits ``(n, n_classes)`` (or to probabilities, with ``output="probabilities"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from modelshield._extras import require
from modelshield.errors import InvalidInputError, InvalidParameterError, ModelError
from modelshield.models.interface import Bounds, FloatArray, GradientClassifier

if TYPE_CHECKING:
    import torch

__all__ = ["TorchClassifier", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else as torch understands it."""
    require("torch", extra="torch", feature="PyTorch models")
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchClassifier(GradientClassifier):
    """A ``torch.nn.Module`` classifier with gradients.

    ``output`` says what the module returns: ``"logits"`` (default; probabilities are their softmax) or
    ``"probabilities"`` (logits are then taken as log-probabilities, which preserves the argmax and the loss).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        n_classes: int,
        input_shape: tuple[int, ...],
        clip_values: Bounds | None = None,
        output: Literal["logits", "probabilities"] = "logits",
        device: str | torch.device | None = "auto",
        batch_size: int = 512,
    ) -> None:
        torch = require("torch", extra="torch", feature="PyTorch models")
        super().__init__(n_classes=n_classes, input_shape=input_shape, clip_values=clip_values, batch_size=batch_size)
        if output not in ("logits", "probabilities"):
            raise InvalidParameterError(f"output must be 'logits' or 'probabilities', not {output!r}.")
        if not isinstance(module, torch.nn.Module):
            raise InvalidParameterError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.output = output
        self.gradient_queries = 0

    # -- internals ---------------------------------------------------------------------------------------------
    def _tensor(self, x: FloatArray) -> torch.Tensor:
        import torch

        arr = np.ascontiguousarray(x)
        if not arr.flags.writeable:  # torch refuses to wrap read-only memory without a warning
            arr = arr.copy()
        return torch.from_numpy(arr).to(self.device)

    def _scores(self, xt: torch.Tensor) -> torch.Tensor:
        """Logits for a batch tensor, with autograd as the caller's context allows."""
        import torch

        out = self.module(xt)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != self.n_classes:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelError(
                f"The torch module returned {shape}; expected a tensor of shape (batch, {self.n_classes}).",
                remedy="Check n_classes and input_shape, and that the module returns one tensor of class scores.",
            )
        out = out.float()
        if self.output == "probabilities":
            out = torch.log(out.clamp_min(1e-12))
        return out

    def _predict_proba(self, x: FloatArray) -> FloatArray:
        import torch

        with torch.inference_mode():
            proba = torch.softmax(self._scores(self._tensor(x)), dim=1)
        return np.asarray(proba.cpu().numpy(), dtype=np.float32)

    def _labels(self, y: ArrayLike, n: int) -> torch.Tensor:
        import torch

        labels = np.asarray(y)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise InvalidInputError(f"Expected {n} integer labels, got an array of shape {labels.shape}.")
        if n and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise InvalidInputError(f"Labels must lie in 0..{self.n_classes - 1}.")
        return torch.from_numpy(labels.astype(np.int64)).to(self.device)

    # -- white-box API -----------------------------------------------------------------------------------------
    def logits(self, x: ArrayLike) -> FloatArray:
        import torch

        arr = self.validate_input(x)
        out = np.empty((len(arr), self.n_classes), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(arr), self.batch_size):
                out[i : i + self.batch_size] = self._scores(self._tensor(arr[i : i + self.batch_size])).cpu().numpy()
        self._count(len(arr))
        return out

    def loss_gradient(self, x: ArrayLike, y: ArrayLike) -> FloatArray:
        """Gradient of each input's own cross-entropy loss (summed, not averaged, over the batch)."""
        import torch

        arr = self.validate_input(x)
        labels = self._labels(y, len(arr))
        grads = np.empty_like(arr)
        for i in range(0, len(arr), self.batch_size):
            xt = self._tensor(arr[i : i + self.batch_size]).requires_grad_(True)
            with torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(
                    self._scores(xt), labels[i : i + self.batch_size], reduction="sum"
                )
                (grad,) = torch.autograd.grad(loss, xt)
            grads[i : i + self.batch_size] = grad.detach().cpu().numpy()
        self._count(len(arr))
        self.gradient_queries += len(arr)
        return grads
