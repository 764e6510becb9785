"""What every explainer shares: the :class:`Explainer` protocol and the global-importance helper.

    >>> import numpy as np
    >>> from modelshield.explain.interface import mean_abs_importance
    >>> mean_abs_importance(np.array([[1.0, -2.0], [3.0, 0.0]])).tolist()
    [2.0, 1.0]

An explainer maps inputs ``x`` of shape ``(n, *input_shape)`` and one target class per row to attributions of
the same shape as ``x``: how much each input value moved that class's output away from a reference. Each
implementation module (:mod:`~modelshield.explain.tree`, :mod:`~modelshield.explain.agnostic`,
:mod:`~modelshield.explain.gradients`) returns its own frozen result with the arrays its method defines;
:func:`~modelshield.explain.stability.attribution_stability` works with any :class:`Explainer`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError

__all__ = ["Explainer", "check_targets", "mean_abs_importance"]


@runtime_checkable
class Explainer(Protocol):
    """Anything that attributes one class's output per row to the input values."""

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        """Attributions for class ``target[i]`` of row ``x[i]``; shape of ``x`` (with its batch axis), float64."""
        ...


def mean_abs_importance(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Global importance: the mean absolute attribution over rows (axis 0); the shape of one row."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim < 1 or len(arr) == 0:
        raise InvalidInputError("Global importance needs at least one row of attributions.")
    return np.asarray(np.mean(np.abs(arr), axis=0), dtype=np.float64)


def check_targets(target: ArrayLike, n: int, n_classes: int) -> NDArray[np.int64]:
    """``target`` as ``n`` class indices in ``0..n_classes-1`` (a scalar applies to every row)."""
    arr = np.asarray(target)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"Expected {n} integer target classes, got an array of shape {arr.shape}.")
    if n and (arr.min() < 0 or arr.max() >= n_classes):
        raise InvalidInputError(f"Target classes must lie in 0..{n_classes - 1}.")
    return arr.astype(np.int64)
