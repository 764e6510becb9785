"""Attribution stability: do explanations survive small input noise?

    >>> import numpy as np
    >>> from modelshield.explain.stability import attribution_stability
    >>> class Linear:  # any object with attribute(x, target) is an Explainer
    ...     def attribute(self, x, target):
    ...         return np.asarray(x, float) * np.array([3.0, 2.0, 1.0, 0.5])
    >>> x = np.random.default_rng(0).normal(size=(20, 4))
    >>> result = attribution_stability(Linear(), x, target=np.zeros(20, int), noise_scale=0.01, top_k=2)
    >>> result.mean_spearman > 0.9
    True

For each row ``x`` and each repeat, Gaussian noise of standard deviation ``noise_scale`` is added (then clipped to
``bounds`` when given), the explainer attributes the *same* target class on the noisy input, and the two
attributions are compared by the magnitude of each value: Spearman's rank correlation of ``|a(x)|`` and
``|a(x + δ)|``, and the overlap of their top-``k`` sets (``|top_k(x) ∩ top_k(x + δ)| / k``). Both are averaged
over the repeats per row, then over rows. Explanations that flip under noise a human cannot see are not evidence
of anything (Ghorbani et al. 2019; Alvarez-Melis and Jaakkola 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.explain.interface import Explainer
from modelshield.models.interface import Bounds

__all__ = ["StabilityResult", "attribution_stability"]


@dataclass(frozen=True)
class StabilityResult:
    """Per-row stability, ``(n,)`` arrays, averaged over ``repeats`` noisy copies.

    ``spearman``: rank correlation of the attribution magnitudes (NaN for a row whose attributions are constant
    in every repeat, where ranks say nothing); ``top_k``: mean overlap of the top-``k`` sets, in ``[0, 1]``.
    """

    spearman: NDArray[np.float64]
    top_k: NDArray[np.float64]
    k: int
    noise_scale: float
    repeats: int

    @property
    def mean_spearman(self) -> float:
        """Mean rank correlation over the rows where it is defined (NaN if none)."""
        finite = self.spearman[np.isfinite(self.spearman)]
        return float(finite.mean()) if finite.size else float("nan")

    @property
    def mean_top_k(self) -> float:
        """Mean top-``k`` overlap over the rows."""
        return float(self.top_k.mean())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (NaN written as None)."""
        spearman = self.mean_spearman
        return {
            "rows": len(self.top_k),
            "noise_scale": self.noise_scale,
            "repeats": self.repeats,
            "k": self.k,
            "mean_spearman": None if np.isnan(spearman) else spearman,
            "mean_top_k_intersection": self.mean_top_k,
            "min_top_k_intersection": float(self.top_k.min()),
        }


def attribution_stability(
    explainer: Explainer,
    x: ArrayLike,
    *,
    target: ArrayLike,
    noise_scale: float,
    repeats: int = 5,
    top_k: int = 5,
    bounds: Bounds | None = None,
    seed: int = 0,
) -> StabilityResult:
    """Stability of ``explainer``'s attributions of class ``target[i]`` for each row of ``x`` (see the module)."""
    if not callable(getattr(explainer, "attribute", None)):
        raise InvalidParameterError(f"{type(explainer).__name__} has no attribute(x, target) method.")
    if not (np.isfinite(noise_scale) and noise_scale > 0):
        raise InvalidParameterError(f"noise_scale must be a positive number, got {noise_scale}.")
    if repeats < 1:
        raise InvalidParameterError(f"repeats must be positive, got {repeats}.")
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim < 2 or len(arr) == 0:
        raise InvalidInputError(f"Expected a batch of inputs (n, ...), got shape {arr.shape}.")
    n_values = int(np.prod(arr.shape[1:]))
    if not 1 <= top_k <= n_values:
        raise InvalidParameterError(f"top_k must lie in 1..{n_values} (values per input), got {top_k}.")
    targets = np.asarray(target)
    rng = np.random.default_rng(seed)
    clean = np.abs(np.asarray(explainer.attribute(arr, targets), dtype=np.float64)).reshape(len(arr), -1)
    spearman = np.zeros((repeats, len(arr)))
    overlap = np.zeros((repeats, len(arr)))
    top_clean = _top(clean, top_k)
    for r in range(repeats):
        noisy = arr + rng.normal(0.0, noise_scale, size=arr.shape).astype(np.float32)
        if bounds is not None:
            noisy = bounds.clip(noisy)
        attr = np.abs(np.asarray(explainer.attribute(noisy, targets), dtype=np.float64)).reshape(len(arr), -1)
        spearman[r] = _spearman_rows(clean, attr)
        top_noisy = _top(attr, top_k)
        overlap[r] = [len(np.intersect1d(a, b)) / top_k for a, b in zip(top_clean, top_noisy, strict=True)]
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(spearman)
        per_row = np.where(finite.any(axis=0), np.nansum(spearman, axis=0) / np.maximum(finite.sum(axis=0), 1), np.nan)
    return StabilityResult(
        spearman=per_row, top_k=overlap.mean(axis=0), k=top_k, noise_scale=float(noise_scale), repeats=repeats
    )


def _top(values: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """Indices of the ``k`` largest values per row (ties broken by index, deterministically)."""
    order = np.argsort(-values, axis=1, kind="stable")
    return np.asarray(order[:, :k], dtype=np.int64)


def _spearman_rows(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Spearman's rho per row (average ranks for ties); NaN where either row is constant."""
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)
