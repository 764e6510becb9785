"""Backdoor triggers: what an attacker stamps on an input so that a poisoned model answers the class they chose.

    >>> import numpy as np
    >>> from modelshield.attacks.poisoning.triggers import patch_trigger
    >>> trigger = patch_trigger((1, 8, 8), shape="square", size=2, position="bottom-right", low=0.0, high=1.0)
    >>> trigger.apply(np.zeros((1, 1, 8, 8), np.float32))[0, 0, 6:, 6:]
    array([[1., 1.],
           [1., 1.]], dtype=float32)

- :class:`PatchTrigger`: a small pattern pasted over a block of pixels (BadNets, Gu et al. 2017).
- :class:`BlendTrigger`: a full-size pattern mixed into the input, ``(1 - alpha) x + alpha p`` (Chen et al. 2017).
- :class:`FeatureTrigger`: chosen tabular features set to chosen values, a rare combination of valid values.
- :class:`MaskTrigger`: a pattern mixed in at ``alpha`` where a mask is set, ``x + alpha * mask * (p - x)``: a blend
  over part of the input, or scattered pixels.

:func:`random_trigger` draws a fresh trigger of a named family (:data:`TRIGGER_FAMILIES`: ``blended``, ``central``,
``distributed``, ``corner``, and ``feature`` for tabular data) from a generator: random shape, position, values and
strength, never the same twice. Detectors are measured on such draws, so that they cannot depend on where or how
one trigger is drawn.

A trigger's values are absolute (in the model's input units), so the same trigger stamps training records and
test inputs alike. Triggers are frozen and describe themselves for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.models.interface import Bounds

__all__ = [
    "TRIGGER_FAMILIES",
    "BlendTrigger",
    "FeatureTrigger",
    "MaskTrigger",
    "PatchTrigger",
    "Trigger",
    "TriggerFamily",
    "blend_trigger",
    "feature_trigger",
    "patch_trigger",
    "random_trigger",
    "standard_trigger",
    "trigger_footprint",
]

FloatArray = NDArray[np.float32]
PatchShape = Literal["square", "checkerboard", "cross", "random"]
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]
TriggerFamily = Literal["blended", "central", "distributed", "corner", "feature"]
TRIGGER_FAMILIES: tuple[TriggerFamily, ...] = ("blended", "central", "distributed", "corner", "feature")


class Trigger(Protocol):
    """Stamps a batch of inputs ``(n, *input_shape)``; returns a new array."""

    def apply(self, x: NDArray[np.floating]) -> FloatArray: ...

    def describe(self) -> str: ...


def _batch(x: NDArray[np.floating], shape: tuple[int, ...]) -> FloatArray:
    arr = np.array(x, dtype=np.float32, copy=True)
    if arr.shape[1:] != shape:
        raise InvalidInputError(f"The trigger is for inputs of shape {shape}, got a batch of shape {arr.shape}.")
    return arr


@dataclass(frozen=True, eq=False)
class PatchTrigger:
    """``pattern`` (``(channels, h, w)``, absolute values) pasted with its top-left corner at ``(row, col)``."""

    pattern: FloatArray
    row: int
    col: int
    input_shape: tuple[int, ...]
    label: str = "patch"

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3 or self.pattern.ndim != 3:
            raise InvalidParameterError(
                f"A patch trigger needs image inputs (channels, height, width), not {self.input_shape}.",
                remedy="Use feature_trigger for tabular data.",
            )
        c, h, w = self.pattern.shape
        channels, height, width = self.input_shape
        if c not in (1, channels) or not (0 <= self.row <= height - h and 0 <= self.col <= width - w):
            raise InvalidParameterError(
                f"A {h}x{w} patch at ({self.row}, {self.col}) does not fit images of shape {self.input_shape}."
            )

    def apply(self, x: NDArray[np.floating]) -> FloatArray:
        out = _batch(x, self.input_shape)
        h, w = self.pattern.shape[1:]
        out[:, :, self.row : self.row + h, self.col : self.col + w] = self.pattern
        return out

    def describe(self) -> str:
        h, w = self.pattern.shape[1:]
        return f"{self.label} {h}x{w} patch at row {self.row}, column {self.col}"


@dataclass(frozen=True, eq=False)
class BlendTrigger:
    """``(1 - alpha) * x + alpha * pattern`` over the whole input (``pattern`` shaped like one input)."""

    pattern: FloatArray
    alpha: float
    label: str = "blend"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise InvalidParameterError(f"alpha must lie in (0, 1], not {self.alpha}.")

    def apply(self, x: NDArray[np.floating]) -> FloatArray:
        out = _batch(x, tuple(self.pattern.shape))
        out *= 1 - self.alpha
        out += self.alpha * self.pattern
        return out

    def describe(self) -> str:
        return f"{self.label} pattern blended at alpha {self.alpha:g}"


@dataclass(frozen=True, eq=False)
class FeatureTrigger:
    """Features ``features`` (flat indices) set to ``values``."""

    features: tuple[int, ...]
    values: tuple[float, ...]
    input_shape: tuple[int, ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = int(np.prod(self.input_shape))
        if not self.features or len(self.features) != len(self.values):
            raise InvalidParameterError("A feature trigger needs one value per feature, and at least one feature.")
        if len(set(self.features)) != len(self.features) or not all(0 <= f < n for f in self.features):
            raise InvalidParameterError(f"Trigger features must be distinct indices below {n}, not {self.features}.")

    def apply(self, x: NDArray[np.floating]) -> FloatArray:
        out = _batch(x, self.input_shape)
        flat = out.reshape(len(out), -1)
        flat[:, list(self.features)] = np.asarray(self.values, dtype=np.float32)
        return out

    def describe(self) -> str:
        names = self.names or tuple(f"feature {i}" for i in self.features)
        return ", ".join(f"{n} = {v:g}" for n, v in zip(names, self.values, strict=True))


@dataclass(frozen=True, eq=False)
class MaskTrigger:
    """``x + alpha * mask * (pattern - x)``: ``pattern`` (shaped like one input, absolute values) mixed in at
    ``alpha`` where ``mask`` (same shape, 0 or 1) is set. Blends over a region, or scattered pixels at ``alpha = 1``."""

    pattern: FloatArray
    mask: FloatArray
    alpha: float
    label: str = "mask"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise InvalidParameterError(f"alpha must lie in (0, 1], not {self.alpha}.")
        if self.pattern.shape != self.mask.shape:
            raise InvalidParameterError(
                f"The pattern {self.pattern.shape} and the mask {self.mask.shape} must have the input's shape."
            )
        if not np.any(self.mask):
            raise InvalidParameterError("The mask selects no value: the trigger would change nothing.")

    def apply(self, x: NDArray[np.floating]) -> FloatArray:
        out = _batch(x, tuple(self.pattern.shape))
        weight = (self.alpha * self.mask).astype(np.float32)
        out += weight * (self.pattern - out)
        return out

    def describe(self) -> str:
        return f"{self.label} pattern over {int(np.count_nonzero(self.mask))} values at alpha {self.alpha:g}"


def _corner(position: Corner | tuple[int, int], size: int, height: int, width: int) -> tuple[int, int]:
    if isinstance(position, tuple):
        return int(position[0]), int(position[1])
    corners = {
        "top-left": (0, 0),
        "top-right": (0, width - size),
        "bottom-left": (height - size, 0),
        "bottom-right": (height - size, width - size),
        "center": ((height - size) // 2, (width - size) // 2),
    }
    if position not in corners:
        raise InvalidParameterError(f"Unknown position {position!r}.", remedy=f"Use one of {', '.join(corners)}.")
    return corners[position]


def patch_trigger(
    input_shape: Sequence[int],
    *,
    shape: PatchShape = "square",
    size: int = 3,
    position: Corner | tuple[int, int] = "bottom-right",
    low: float = 0.0,
    high: float = 1.0,
    seed: int = 0,
) -> PatchTrigger:
    """A ``size`` x ``size`` patch for images of ``input_shape``, drawn with the range's ends ``low`` and ``high``.

    ``square`` is solid ``high``; ``checkerboard`` alternates ``high`` and ``low``; ``cross`` is a ``high`` plus
    on ``low``; ``random`` draws each pixel (and channel) from ``{low, high}`` with ``seed``.
    """
    dims = tuple(int(d) for d in input_shape)
    if len(dims) != 3:
        raise InvalidParameterError(f"patch_trigger needs (channels, height, width), not {dims}.")
    channels, height, width = dims
    if not 1 <= size <= min(height, width):
        raise InvalidParameterError(f"size must lie in 1..{min(height, width)}, not {size}.")
    if not high > low:
        raise InvalidParameterError(f"high ({high}) must be above low ({low}).")
    grid = np.add.outer(np.arange(size), np.arange(size))
    if shape == "square":
        on = np.ones((1, size, size), bool)
    elif shape == "checkerboard":
        on = (grid % 2 == 0)[None]
    elif shape == "cross":
        middle = size // 2
        on = np.zeros((1, size, size), bool)
        on[0, middle, :] = True
        on[0, :, middle] = True
    elif shape == "random":
        on = np.random.default_rng(seed).random((channels, size, size)) < 0.5
    else:
        raise InvalidParameterError(
            f"Unknown patch shape {shape!r}.", remedy="Use square, checkerboard, cross or random."
        )
    pattern = np.where(on, np.float32(high), np.float32(low)).astype(np.float32)
    row, col = _corner(position, size, height, width)
    return PatchTrigger(pattern=pattern, row=row, col=col, input_shape=dims, label=shape)


def blend_trigger(
    input_shape: Sequence[int], *, alpha: float = 0.2, low: float = 0.0, high: float = 1.0, seed: int = 0
) -> BlendTrigger:
    """A uniform-noise pattern over the whole input (Chen et al. 2017's "random pattern" key), mixed at ``alpha``."""
    dims = tuple(int(d) for d in input_shape)
    pattern = np.random.default_rng(seed).uniform(low, high, size=dims).astype(np.float32)
    return BlendTrigger(pattern=pattern, alpha=alpha, label="random")


def feature_trigger(
    x: NDArray[np.floating],
    *,
    n_features: int = 3,
    features: Sequence[int] | None = None,
    quantile: float = 0.99,
    names: Sequence[str] = (),
    seed: int = 0,
) -> FeatureTrigger:
    """Set ``n_features`` features (chosen at random among those that vary, or ``features``) to their ``quantile``.

    Each value is one that clean records take (so a range check does not catch it) while the combination is rare:
    with independent features about ``(1 - quantile) ** n_features`` of clean records would carry it by chance.
    Binary features go to their rarer value.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(flat) < 2:
        raise InvalidInputError("feature_trigger needs at least two records to choose values from.")
    if not 0.5 <= quantile <= 1:
        raise InvalidParameterError(f"quantile must lie in [0.5, 1], not {quantile}.")
    varying = np.flatnonzero(flat.std(axis=0) > 0)
    if features is None:
        if not 1 <= n_features <= len(varying):
            raise InvalidParameterError(f"n_features must lie in 1..{len(varying)} (features that vary).")
        chosen = np.sort(np.random.default_rng(seed).choice(varying, size=n_features, replace=False))
    else:
        chosen = np.asarray(features, dtype=np.int64)
    values = []
    for f in chosen:
        column = flat[:, f]
        distinct = np.unique(column)
        if len(distinct) == 2:  # binary: the rarer value
            counts = [(column == v).sum() for v in distinct]
            values.append(float(distinct[int(np.argmin(counts))]))
        else:
            values.append(float(np.quantile(column, quantile, method="inverted_cdf")))
    labels = tuple(names[int(f)] for f in chosen) if names else ()
    return FeatureTrigger(
        features=tuple(int(f) for f in chosen),
        values=tuple(values),
        input_shape=tuple(np.asarray(x).shape[1:]),
        names=labels,
    )


def standard_trigger(data: Dataset, bounds: Bounds | None = None, *, seed: int = 0) -> Trigger:
    """The trigger the audit and the BadNets plug-in stamp: for images of at least 4x4 pixels a solid square at
    the range's top value in the bottom-right corner (3x3, or 2x2 below 6x6 pixels); for other data three features
    (fewer when fewer vary), drawn with ``seed``, set to their 99th percentile in ``data``."""
    shape = data.schema.input_shape
    if len(shape) == 3 and min(shape[1:]) >= 4:
        low = float(np.min(bounds.low)) if bounds is not None else float(data.x.min())
        high = float(np.max(bounds.high)) if bounds is not None else float(data.x.max())
        size = 3 if min(shape[1:]) >= 6 else 2
        return patch_trigger(shape, shape="square", size=size, position="bottom-right", low=low, high=high)
    n_features = min(3, max(1, int(np.sum(data.x.reshape(len(data), -1).std(axis=0) > 0))))
    return feature_trigger(data.x, n_features=n_features, quantile=0.99, names=data.schema.names, seed=seed)


def _image_trigger(
    family: TriggerFamily, dims: tuple[int, int, int], rng: np.random.Generator, low: float, high: float
) -> Trigger:
    channels, height, width = dims
    side = min(height, width)
    small = max(2, round(side * 3 / 8))  # the largest patch: 3 pixels on 8x8 images, 10 on 28x28
    if family == "blended":
        pattern = rng.uniform(low, high, size=dims).astype(np.float32)
        if rng.random() < 0.5:
            return BlendTrigger(pattern=pattern, alpha=float(rng.uniform(0.1, 0.25)), label="random blended")
        size = int(rng.integers(max(2, small - 1), small + 2))
        row, col = (int(v) for v in rng.integers(0, np.array([height, width]) - size + 1))
        mask = np.zeros(dims, np.float32)
        mask[:, row : row + size, col : col + size] = 1.0
        alpha = float(rng.uniform(0.3, 0.6))
        return MaskTrigger(pattern=pattern, mask=mask, alpha=alpha, label=f"random {size}x{size} blended patch")
    if family == "distributed":
        n_pixels = int(rng.integers(max(3, height * width // 16), max(4, height * width // 8) + 1))
        cells = rng.choice(height * width, size=n_pixels, replace=False)
        mask = np.zeros(dims, np.float32)
        mask[:, cells // width, cells % width] = 1.0
        pattern = np.where(rng.random(dims) < 0.5, np.float32(high), np.float32(low)).astype(np.float32)
        return MaskTrigger(pattern=pattern, mask=mask, alpha=1.0, label=f"{n_pixels} scattered pixels")
    size = int(rng.integers(max(1, small - 1), small + 1))
    pattern = np.where(rng.random((channels, size, size)) < 0.5, np.float32(high), np.float32(low))
    pattern.reshape(channels, -1)[:, int(rng.integers(size * size))] = high  # never all low
    if family == "central":
        margin = max(1, side // 4)  # away from the corners and edges: inside the digit on centred images
        row = int(rng.integers(margin, max(margin, height - margin - size) + 1))
        col = int(rng.integers(margin, max(margin, width - margin - size) + 1))
        label = "random central"
    else:  # corner or edge: the patch touches the border
        edge = int(rng.integers(4))
        along = int(rng.integers(0, (width if edge < 2 else height) - size + 1))
        row, col = [(0, along), (height - size, along), (along, 0), (along, width - size)][edge]
        label = "random border"
    return PatchTrigger(pattern=pattern.astype(np.float32), row=row, col=col, input_shape=dims, label=label)


def random_trigger(
    family: TriggerFamily,
    x: NDArray[np.floating],
    rng: np.random.Generator,
    *,
    low: float | None = None,
    high: float | None = None,
) -> Trigger:
    """A fresh trigger of ``family`` for records like ``x`` (a sample), drawn from ``rng``: shape, position, values
    and strength are random, so that no two draws are alike.

    Images (``x`` of shape ``(n, channels, height, width)``, values in ``[low, high]``, by default ``x``'s range):

    - ``blended``: a uniform-noise pattern blended over the whole image (alpha 0.1-0.25) or over a random square
      of about 3/8 of the side (alpha 0.3-0.6);
    - ``central``: a random ``low``/``high`` patch (2-3 pixels on 8x8 images, about 3/8 of the side) at a random
      position at least a quarter of the side away from every edge (inside a centred digit);
    - ``distributed``: 1/16-1/8 of the pixels, at random positions, set to ``low`` or ``high`` at random;
    - ``corner``: a random ``low``/``high`` patch touching a random edge (corners included) at a random place.

    Tabular data (``feature``): 1-3 random features that vary, set to values drawn uniformly within the feature's
    observed range.
    """
    arr = np.asarray(x, np.float32)
    if family not in TRIGGER_FAMILIES:
        raise InvalidParameterError(f"Unknown trigger family {family!r}.", remedy=f"Use one of {TRIGGER_FAMILIES}.")
    if len(arr) < 2:
        raise InvalidInputError("random_trigger needs at least two records to take value ranges from.")
    if family == "feature":
        flat = arr.reshape(len(arr), -1).astype(np.float64)
        varying = np.flatnonzero(flat.std(axis=0) > 0)
        if len(varying) == 0:
            raise InvalidInputError("No feature varies: a feature trigger has nothing to set.")
        n_features = int(rng.integers(1, min(3, len(varying)) + 1))
        chosen = np.sort(rng.choice(varying, size=n_features, replace=False))
        values = rng.uniform(flat[:, chosen].min(axis=0), flat[:, chosen].max(axis=0))
        return FeatureTrigger(
            features=tuple(int(f) for f in chosen),
            values=tuple(float(v) for v in values),
            input_shape=tuple(arr.shape[1:]),
        )
    if arr.ndim != 4:
        raise InvalidInputError(
            f"The {family} family needs images (n, channels, height, width), got records of shape {arr.shape[1:]}.",
            remedy="Use the feature family for tabular data.",
        )
    lo = float(arr.min()) if low is None else float(low)
    hi = float(arr.max()) if high is None else float(high)
    if not hi > lo:
        raise InvalidParameterError(f"high ({hi}) must be above low ({lo}).")
    c, h, w = (int(d) for d in arr.shape[1:])
    if min(h, w) < 4:
        raise InvalidInputError(f"Images of {h}x{w} pixels are too small for the {family} family (4x4 at least).")
    return _image_trigger(family, (c, h, w), rng, lo, hi)


def trigger_footprint(trigger: Trigger) -> NDArray[np.bool_] | None:
    """Where ``trigger`` writes: a boolean array of one input's shape, True on the values it sets or mixes into.

    None for a :class:`BlendTrigger` (it touches the whole input, so there is no region to point at) and for a
    trigger type this module does not define.

        >>> trigger_footprint(patch_trigger((1, 4, 4), shape="square", size=2, position="top-left", low=0.0,
        ...                                 high=1.0)).astype(int)[0]
        array([[1, 1, 0, 0],
               [1, 1, 0, 0],
               [0, 0, 0, 0],
               [0, 0, 0, 0]])
    """
    if isinstance(trigger, PatchTrigger):
        h, w = trigger.pattern.shape[1:]
        out = np.zeros(trigger.input_shape, bool)
        out[:, trigger.row : trigger.row + h, trigger.col : trigger.col + w] = True
        return out
    if isinstance(trigger, FeatureTrigger):
        flat = np.zeros(int(np.prod(trigger.input_shape)), bool)
        flat[list(trigger.features)] = True
        return flat.reshape(trigger.input_shape)
    if isinstance(trigger, MaskTrigger):
        return np.asarray(trigger.mask != 0)
    return None
