"""Black-box evasion attacks for any classifier: the Square attack (scores) and HopSkipJump (decisions only).

    >>> from modelshield.attacks.evasion.blackbox import hop_skip_jump, square_attack
    >>> result = square_attack(classifier, x, y, eps=0.1, max_queries=1000)  # doctest: +SKIP
    >>> result.robust_accuracy, result.queries  # doctest: +SKIP
    >>> minimal = hop_skip_jump(classifier, x, y, max_queries=1000)  # doctest: +SKIP
    >>> float(np.median(minimal.distances[minimal.success]))  # doctest: +SKIP

Both attacks talk to the model only through :meth:`~modelshield.models.interface.Classifier.predict_proba`
(Square) or :meth:`~modelshield.models.interface.Classifier.predict` (HopSkipJump), so they run against
scikit-learn, ONNX and remote models alike. They work on all samples at once, one model call per step for the
samples still in play, and stop on a sample as soon as it is fooled (Square) or its budget is spent.

Queries: ``max_queries`` is a budget *per sample* and covers every input the attack sends to the model, the clean
input included; it is never exceeded. ``EvasionResult.queries`` is the total the attack spent. Building the result
asks the model once more per sample, about the returned examples, to re-check success; that check is the
framework's and is not part of the attack's budget.

Every candidate passes through :meth:`~modelshield.attacks.evasion.interface.Constraints.project` before it is
sent to the model, so what is queried and returned lies in the valid range (``clip_values`` or the given
``constraints``), leaves immutable features as they were and keeps integer features on whole values; Square
examples also lie in the L∞ ε-ball.

References: Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box adversarial
attack via random search" (ECCV); Chen, Jordan & Wainwright 2020, "HopSkipJumpAttack: a query-efficient
decision-based attack" (IEEE S&P).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm, perturbation_norms
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, IntArray

__all__ = ["hop_skip_jump", "square_attack"]

logger = logging.getLogger(__name__)

SquareLoss = Literal["margin", "ce"]

# The Square attack's schedule for the share of the input changed per step: p_init is halved at these points of a
# 10,000-iteration run (Andriushchenko et al. 2020, Appendix); shorter runs rescale the points to their length.
_P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_SQUARE_RESAMPLES = 10  # redraws of a candidate that the constraints project back onto the current point
_PROBE_ELEMENTS = 1 << 24  # largest probe array (values) HopSkipJump builds at once; larger batches go in chunks


# -- shared plumbing -----------------------------------------------------------------------------------------------


class _Budget:
    """Sends batches to the model and counts the queries of each sample against its budget."""

    def __init__(self, classifier: Classifier, n: int, max_queries: int) -> None:
        self.classifier = classifier
        self.max_queries = max_queries
        self.spent = np.zeros(n, np.int64)

    def left(self, rows: NDArray[np.intp] | slice | None = None) -> NDArray[np.int64]:
        spent = self.spent if rows is None else self.spent[rows]
        return np.asarray(self.max_queries - spent, np.int64)

    def _charge(self, owners: NDArray[np.intp]) -> None:
        np.add.at(self.spent, owners, 1)
        if np.any(self.spent[owners] > self.max_queries):  # a bug in the caller, never the user's fault
            raise AssertionError("query budget exceeded")

    def proba(self, owners: NDArray[np.intp], x: FloatArray) -> FloatArray:
        """Probabilities for ``x``, whose row ``k`` belongs to sample ``owners[k]``."""
        self._charge(owners)
        return self.classifier.predict_proba(x)

    def predict(self, owners: NDArray[np.intp], x: FloatArray) -> IntArray:
        self._charge(owners)
        return self.classifier.predict(x)

    @property
    def total(self) -> int:
        return int(self.spent.sum())


def _prepare(
    classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints | None, max_queries: int
) -> tuple[FloatArray, IntArray, Constraints]:
    if isinstance(max_queries, bool) or not isinstance(max_queries, int | np.integer) or max_queries < 1:
        raise InvalidParameterError(
            f"max_queries must be a positive whole number of queries per sample, got {max_queries!r}.",
            remedy="Pass e.g. max_queries=1000.",
        )
    shape = classifier.input_shape
    arr = np.asarray(x)
    if arr.shape == shape:
        arr = arr[np.newaxis]
    if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
        raise InvalidParameterError(
            f"x has shape {arr.shape}, but the classifier takes inputs of shape (n, {', '.join(map(str, shape))}).",
            remedy="Reshape x to the classifier's input shape, or check that data and model belong together.",
        )
    xv = classifier.validate_input(arr)
    labels = np.asarray(y)
    if labels.shape != (len(xv),) or not (len(labels) == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise InvalidParameterError(
            f"Expected {len(xv)} integer labels (one per input), got an array of shape {labels.shape} and dtype "
            f"{labels.dtype}.",
            remedy="Pass y as class indices of shape (n,), aligned with x.",
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= classifier.n_classes):
        raise InvalidParameterError(
            f"Labels must lie in 0..{classifier.n_classes - 1}; got values from {labels.min()} to {labels.max()}.",
            remedy="Encode labels as the classifier's class indices.",
        )
    cons = constraints or Constraints.from_bounds(classifier.clip_values, shape)
    for name in ("low", "high", "mutable", "integer"):
        if np.shape(getattr(cons, name)) != shape:
            raise InvalidParameterError(
                f"constraints.{name} has shape {np.shape(getattr(cons, name))}; the classifier's input shape is "
                f"{shape}.",
                remedy="Build the constraints for this model, e.g. Constraints.from_schema(schema, clip_values).",
            )
    return xv, labels.astype(np.int64), cons


def _movable(cons: Constraints, eps: float | None) -> NDArray[np.bool_]:
    """Features a perturbation can change: mutable ones, and integer ones only when a whole step fits."""
    movable = cons.mutable & (cons.high > cons.low)
    if eps is not None and eps < 1:
        movable = movable & ~cons.integer
    return np.asarray(movable, bool)


# -- Square attack -------------------------------------------------------------------------------------------------


def _p_at(p_init: float, iteration: int, iterations: int) -> float:
    """The share of the input a Square step changes at ``iteration`` of ``iterations`` (the paper's schedule)."""
    scaled = int(iteration / max(iterations, 1) * 10_000)
    halvings = sum(scaled > point for point in _P_SCHEDULE)
    return float(p_init / 2**halvings)


def _margin_loss(proba: FloatArray, y: IntArray, loss: SquareLoss) -> NDArray[np.float64]:
    p = proba.astype(np.float64)
    rows = np.arange(len(y))
    true = p[rows, y]
    if loss == "ce":
        return np.asarray(np.log(np.maximum(true, 1e-30)), np.float64)
    p[rows, y] = -np.inf
    return np.asarray(true - p.max(axis=1), np.float64)


def _image_dims(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) for image inputs ((C, H, W), channels first, or (H, W)); None for flat inputs."""
    if len(shape) == 3 and min(shape[1:]) >= 2:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2 and min(shape) >= 2:
        return 1, shape[0], shape[1]
    return None


def _square_init(rng: np.random.Generator, n: int, shape: tuple[int, ...], eps: float) -> FloatArray:
    """The paper's start: vertical stripes of ±ε (one sign per column and channel); flat inputs: ±ε per feature."""
    dims = _image_dims(shape)
    if dims is None:
        signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, *shape))
    else:
        c, _, w = dims
        signs = np.broadcast_to(rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, c, 1, w)), (n, *dims))
    return np.asarray(signs.reshape(n, *shape) * np.float32(eps), np.float32)


def _square_step(
    rng: np.random.Generator, delta: FloatArray, p: float, eps: float, movable: NDArray[np.bool_]
) -> FloatArray:
    """New perturbations: one random window (a square for images, a random feature subset otherwise) set to ±ε."""
    m, shape = len(delta), delta.shape[1:]
    dims = _image_dims(shape)
    if dims is None:
        flat = delta.reshape(m, -1)
        candidates = np.flatnonzero(movable.reshape(-1))
        if len(candidates) == 0:
            return delta
        k = min(max(1, round(p * len(candidates))), len(candidates))
        picks = np.argpartition(rng.random((m, len(candidates))), k - 1, axis=1)[:, :k]
        window = np.zeros(flat.shape, bool)
        np.put_along_axis(window, candidates[picks], True, axis=1)
        signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=flat.shape)
        return np.where(window, signs * np.float32(eps), flat).reshape(delta.shape).astype(np.float32, copy=False)
    c, h, w = dims
    side = min(max(round(math.sqrt(p * h * w)), 1), min(h, w) - 1)
    top = rng.integers(0, h - side + 1, size=m)
    left = rng.integers(0, w - side + 1, size=m)
    rows, cols = np.arange(h), np.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + side)[:, None])
    window = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(m, c, 1, 1))
    image = delta.reshape(m, c, h, w)
    return np.where(window, signs * np.float32(eps), image).reshape(delta.shape).astype(np.float32, copy=False)


def _check_square(eps: float, p_init: float, loss: str) -> None:
    if not (isinstance(eps, int | float | np.floating) and math.isfinite(eps) and eps > 0):
        raise InvalidParameterError(
            f"eps must be a positive finite number, got {eps!r}.", remedy="Pass e.g. eps=0.03 (images in [0, 1])."
        )
    if not (isinstance(p_init, int | float | np.floating) and 0 < p_init <= 1):
        raise InvalidParameterError(f"p_init must lie in (0, 1], got {p_init!r}.", remedy="Use the default 0.05.")
    if loss not in ("margin", "ce"):
        raise InvalidParameterError(f"Unknown loss {loss!r}.", remedy="Use loss='margin' or loss='ce'.")


def square_attack(
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: float,
    max_queries: int = 1000,
    p_init: float = 0.05,
    seed: int = 0,
    constraints: Constraints | None = None,
    loss: SquareLoss = "margin",
) -> EvasionResult:
    """The L∞ Square attack: random search over vertices of the ε-ball, using the model's scores only.

    Each iteration changes one random window of the current perturbation to ±ε (a ``s×s`` square with one sign
    per channel for image inputs ``(C, H, W)`` or ``(H, W)``; a random subset of ``round(p·d)`` features with a
    sign each for flat inputs) and keeps it when the loss drops. The window covers a share ``p`` of the input,
    ``p_init`` halved on the paper's schedule, rescaled to ``max_queries``. The start is the paper's vertical
    stripes of ±ε (images) or a random vertex of the ball (flat inputs).

    Args:
        classifier: any :class:`~modelshield.models.interface.Classifier`; only ``predict_proba`` is used.
        x: inputs of shape ``(n, *input_shape)``.
        y: true class indices, shape ``(n,)``.
        eps: radius of the L∞ ball, in input units (tabular data: the same radius for every feature, so
            standardise features or pick ε for the smallest feature scale that matters).
        max_queries: model queries per sample, the clean prediction and the start included (at least 1).
        p_init: initial share of the input changed per step. 0.05 is the paper's value for L∞ against standard
            (not adversarially trained) models; ART defaults to 0.8, the paper's choice for robust MNIST models.
        seed: seeds the random search; the result is deterministic for a given seed and model.
        constraints: valid range, immutable and integer features; default: the classifier's ``clip_values``.
        loss: ``"margin"`` (``p_y − max_{j≠y} p_j``, the paper's untargeted loss) or ``"ce"`` (``log p_y``).

    Returns:
        An :class:`EvasionResult` with ``eps`` set, measured again on the returned examples; inputs the model
        already got wrong are returned unchanged.
    """
    t0 = time.perf_counter()
    _check_square(eps, p_init, loss)
    xv, yv, cons = _prepare(classifier, x, y, constraints, max_queries)
    eps = float(eps)
    n, shape = len(xv), classifier.input_shape
    rng = np.random.default_rng(seed)
    budget = _Budget(classifier, n, max_queries)
    name = f"square(linf, eps={eps:g}, max_queries={max_queries}, p_init={p_init:g}, loss={loss})"

    all_rows = np.arange(n)
    proba = budget.proba(all_rows, xv) if n else np.empty((0, classifier.n_classes), np.float32)
    clean_pred = np.asarray(proba.argmax(axis=1), np.int64)
    x_best = xv.copy()
    loss_best = _margin_loss(proba, yv, loss)
    active = clean_pred == yv  # wrong already: nothing to do

    # The start: a vertex of the ball (vertical stripes for images), accepted as the paper does.
    start = np.flatnonzero(active & (budget.left() >= 1))
    if len(start):
        x_init = cons.project(xv[start] + _square_init(rng, len(start), shape, eps), xv[start], Norm.LINF, eps)
        p_start = budget.proba(start, x_init)
        x_best[start] = x_init
        loss_best[start] = _margin_loss(p_start, yv[start], loss)
        active[start] = p_start.argmax(axis=1) == yv[start]

    movable = _movable(cons, eps)
    iterations = max(max_queries - 2, 0)
    for it in range(iterations):
        rows = np.flatnonzero(active & (budget.left() >= 1))
        if len(rows) == 0:
            break
        p = _p_at(p_init, it, iterations)
        x0, best = xv[rows], x_best[rows]
        cand = cons.project(x0 + _square_step(rng, best - x0, p, eps, movable), x0, Norm.LINF, eps)
        same = np.all((cand == best).reshape(len(rows), -1), axis=1)
        for _ in range(_SQUARE_RESAMPLES):  # a window the projection undid: draw another
            if not same.any():
                break
            redo = np.flatnonzero(same)
            cand[redo] = cons.project(
                x0[redo] + _square_step(rng, best[redo] - x0[redo], p, eps, movable), x0[redo], Norm.LINF, eps
            )
            same[redo] = np.all((cand[redo] == best[redo]).reshape(len(redo), -1), axis=1)
        ask = ~same
        if not ask.any():
            continue
        rows, cand = rows[ask], cand[ask]
        p_new = budget.proba(rows, cand)
        loss_new = _margin_loss(p_new, yv[rows], loss)
        better = loss_new < loss_best[rows]
        x_best[rows[better]] = cand[better]
        loss_best[rows[better]] = loss_new[better]
        fooled = better & (p_new.argmax(axis=1) != yv[rows])
        active[rows[fooled]] = False

    logger.debug("%s: %d queries for %d samples", name, budget.total, n)
    return EvasionResult.measure(
        attack=name,
        classifier=classifier,
        x=xv,
        x_adv=x_best,
        y=yv,
        norm=Norm.LINF,
        eps=eps,
        queries=budget.total,
        seconds=time.perf_counter() - t0,
        clean_predicted=clean_pred,
    )


# -- HopSkipJump ---------------------------------------------------------------------------------------------------


class _HSJ:
    """State of one HopSkipJump run: the samples under attack, their best adversarial points and the budget."""

    def __init__(
        self,
        budget: _Budget,
        x: FloatArray,
        y: IntArray,
        cons: Constraints,
        norm: Norm,
        rng: np.random.Generator,
    ) -> None:
        self.budget, self.x, self.y, self.cons, self.norm, self.rng = budget, x, y, cons, norm, rng
        self.d = max(int(_movable(cons, None).sum()), 1)
        # The paper's binary-search tolerance, relative to the current distance (gamma = 1).
        self.theta = self.d**-1.5 if norm is Norm.L2 else float(self.d) ** -2
        self.direction_mask = (cons.mutable & ~cons.integer & (cons.high > cons.low)).astype(np.float32)

    def project(self, cand: NDArray[np.floating], rows: NDArray[np.intp]) -> FloatArray:
        return self.cons.project(cand, self.x[rows], self.norm, None)

    def is_adversarial(self, rows: NDArray[np.intp], cand: FloatArray) -> NDArray[np.bool_]:
        return np.asarray(self.budget.predict(rows, cand) != self.y[rows])

    def distance(self, rows: NDArray[np.intp], points: FloatArray) -> NDArray[np.float64]:
        if len(rows) == 0:
            return np.zeros(0)
        return perturbation_norms(points, self.x[rows], self.norm)

    def blend(self, rows: NDArray[np.intp], adv: FloatArray, alpha: NDArray[np.float64]) -> FloatArray:
        """Points between ``x`` (alpha 0) and ``adv`` (alpha 1): a line for L2, a shrinking box for L∞."""
        x0 = self.x[rows].astype(np.float64)
        a = alpha.reshape(-1, *([1] * (x0.ndim - 1)))
        if self.norm is Norm.L2:
            out = (1 - a) * x0 + a * adv
        else:
            radius = a * self.distance(rows, adv).reshape(a.shape)
            out = np.clip(adv, x0 - radius, x0 + radius)
        return self.project(out, rows)

    def binary_search(self, rows: NDArray[np.intp], adv: FloatArray) -> FloatArray:
        """Move each adversarial point towards the boundary; every point returned was queried and is adversarial."""
        best = adv.copy()
        lo, hi = np.zeros(len(rows)), np.ones(len(rows))
        while True:
            go = np.flatnonzero((hi - lo > self.theta) & (self.budget.left(rows) >= 1))
            if len(go) == 0:
                return best
            mid = (lo[go] + hi[go]) / 2
            cand = self.blend(rows[go], adv[go], mid)
            hit = self.is_adversarial(rows[go], cand)
            best[go[hit]] = cand[hit]
            hi[go[hit]] = mid[hit]
            lo[go[~hit]] = mid[~hit]

    def initial(self, rows: NDArray[np.intp], clean_pred: IntArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        """A first adversarial point per sample: the nearest inputs of the batch the model puts in another class,
        then uniform noise over the valid range (Gaussian noise at the data's scale where it is unbounded)."""
        x, shape = self.x, self.x.shape[1:]
        found = np.zeros(len(rows), bool)
        adv = x[rows].copy()
        flat = x.reshape(len(x), -1).astype(np.float64)
        dist = np.sqrt(((flat[rows, None, :] - flat[None, :, :]) ** 2).sum(axis=2)) if len(x) <= 4096 else None
        neighbours = 5 if dist is not None else 0
        for k in range(neighbours):
            cand_idx = np.full(len(rows), -1)
            for i, r in enumerate(rows):  # the k-th nearest input predicted as another class
                other = np.flatnonzero(clean_pred != self.y[r])
                if len(other) > k and dist is not None:
                    cand_idx[i] = other[np.argsort(dist[i, other], kind="stable")[k]]
            go = np.flatnonzero(~found & (cand_idx >= 0) & (self.budget.left(rows) >= 1))
            if len(go) == 0:
                break
            cand = self.project(x[cand_idx[go]], rows[go])
            hit = self.is_adversarial(rows[go], cand)
            adv[go[hit]], found[go[hit]] = cand[hit], True
        low = np.where(np.isfinite(self.cons.low), self.cons.low, np.nan)
        high = np.where(np.isfinite(self.cons.high), self.cons.high, np.nan)
        scale = np.maximum(x.std(axis=0), 1e-3) * 3 if len(x) > 1 else np.ones(shape, np.float32)
        for _ in range(20):
            go = np.flatnonzero(~found & (self.budget.left(rows) >= 1))
            if len(go) == 0:
                break
            uniform = self.rng.uniform(0.0, 1.0, size=(len(go), *shape))
            gauss = x[rows[go]] + scale * self.rng.standard_normal((len(go), *shape))
            noise = np.where(np.isfinite(low) & np.isfinite(high), low + uniform * (high - low), gauss)
            cand = self.project(np.nan_to_num(noise), rows[go])
            hit = self.is_adversarial(rows[go], cand)
            adv[go[hit]], found[go[hit]] = cand[hit], True
        return adv, found

    def gradient_direction(
        self, rows: NDArray[np.intp], boundary: FloatArray, delta: NDArray[np.float64], evals: NDArray[np.int64]
    ) -> FloatArray:
        """Monte-Carlo estimate of the direction that leaves the true class, from the signs of ``evals[i]`` probes
        at radius ``delta[i]`` around each boundary point (one model call per chunk of samples)."""
        width = int(np.prod(boundary.shape[1:]))
        out = np.zeros(boundary.shape, np.float32)
        mask = self.direction_mask.reshape(-1)
        start = 0
        while start < len(rows):
            stop, size = start, 0
            while stop < len(rows) and (stop == start or (size + evals[stop]) * width <= _PROBE_ELEMENTS):
                size += int(evals[stop])
                stop += 1
            part = np.arange(start, stop)
            counts = evals[part]
            owner = np.repeat(part, counts)
            if self.norm is Norm.L2:
                u = self.rng.standard_normal((len(owner), width))
            else:
                u = self.rng.uniform(-1.0, 1.0, size=(len(owner), width))
            u *= mask
            u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
            moved = boundary[owner].reshape(len(owner), -1) + delta[owner, None] * u
            probes = self.project(moved.reshape(len(owner), *boundary.shape[1:]), rows[owner])
            actual = probes.reshape(len(owner), -1).astype(np.float64) - boundary[owner].reshape(len(owner), -1)
            actual /= np.maximum(delta[owner, None], 1e-30)  # the probe as taken, after clipping to the range
            phi = np.where(self.is_adversarial(rows[owner], probes), 1.0, -1.0)
            local = np.repeat(np.arange(len(part)), counts)
            mean = np.bincount(local, weights=phi, minlength=len(part)) / np.maximum(counts, 1)
            centred = np.where(np.abs(mean[local]) == 1.0, phi, phi - mean[local])  # the paper's baseline
            grad = np.zeros((len(part), width))
            np.add.at(grad, local, centred[:, None] * actual)
            if self.norm is Norm.L2:
                grad /= np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
            else:
                grad = np.sign(grad)
            out[part] = grad.reshape(len(part), *boundary.shape[1:])
            start = stop
        return out

    def step(
        self, rows: NDArray[np.intp], boundary: FloatArray, direction: FloatArray, size: NDArray[np.float64]
    ) -> tuple[FloatArray, NDArray[np.bool_]]:
        """The paper's geometric step search: halve the step until the point is adversarial (20 tries at most)."""
        size = size.copy()
        out, ok = boundary.copy(), np.zeros(len(rows), bool)
        expand = (-1, *([1] * (boundary.ndim - 1)))
        for _ in range(20):
            go = np.flatnonzero(~ok & (self.budget.left(rows) >= 1))
            if len(go) == 0:
                break
            cand = self.project(boundary[go] + size[go].reshape(expand) * direction[go], rows[go])
            hit = self.is_adversarial(rows[go], cand)
            out[go[hit]], ok[go[hit]] = cand[hit], True
            size[go[~hit]] /= 2
        return out, ok


def hop_skip_jump(
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    *,
    norm: Norm | str = Norm.L2,
    max_queries: int = 1000,
    seed: int = 0,
    constraints: Constraints | None = None,
    init_evals: int = 100,
    max_evals: int = 1000,
) -> EvasionResult:
    """HopSkipJumpAttack (untargeted): the smallest perturbation found that changes the model's decision.

    Uses the predicted labels only. Per sample: find a first adversarial point (the nearest inputs of the batch that
    the model puts in another class, else random noise in the valid range), binary-search it to the decision
    boundary, then repeat: estimate the boundary's normal from the signs of ``init_evals·√t`` random probes (at most
    ``max_evals``), take a geometric step along it (halved until adversarial), and binary-search back to the
    boundary. All samples advance together; each sample's probes go to the model in one call.

    Args:
        classifier: any :class:`~modelshield.models.interface.Classifier`; only ``predict`` is used.
        x: inputs of shape ``(n, *input_shape)``.
        y: true class indices, shape ``(n,)``.
        norm: ``"l2"`` or ``"linf"``; the distance minimised and reported.
        max_queries: model queries per sample, the clean prediction included (at least 1).
        seed: seeds the probes and noise; the result is deterministic for a given seed and model.
        constraints: valid range, immutable and integer features; default: the classifier's ``clip_values``.
            The probes and steps move continuous mutable features only; integer features change only through
            the first adversarial point and the binary search (projected onto whole values).
        init_evals: probes for the first gradient estimate (the paper's 100).
        max_evals: most probes for one gradient estimate.

    Returns:
        An :class:`EvasionResult` with ``eps=None``; ``distances`` are the perturbation norms. Samples for which
        no adversarial point was found are returned unchanged (not successful); inputs the model already got wrong
        are returned unchanged (successful at distance 0).
    """
    t0 = time.perf_counter()
    norm = Norm.parse(norm)
    for label, value in (("init_evals", init_evals), ("max_evals", max_evals)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InvalidParameterError(f"{label} must be a positive whole number, got {value!r}.")
    xv, yv, cons = _prepare(classifier, x, y, constraints, max_queries)
    n = len(xv)
    rng = np.random.default_rng(seed)
    budget = _Budget(classifier, n, max_queries)
    name = f"hop_skip_jump({norm.value}, max_queries={max_queries})"

    clean_pred = budget.predict(np.arange(n), xv) if n else np.empty(0, np.int64)
    state = _HSJ(budget, xv, yv, cons, norm, rng)
    x_best = xv.copy()
    rows = np.flatnonzero(clean_pred == yv)
    if len(rows):
        adv, found = state.initial(rows, clean_pred)
        rows = rows[found]
        boundary = state.binary_search(rows, adv[found])
        x_best[rows] = boundary
        dist = state.distance(rows, boundary)
        t = 0
        while len(rows):
            t += 1
            left = budget.left(rows)
            keep = left >= 2
            rows, boundary, dist, left = rows[keep], boundary[keep], dist[keep], left[keep]
            if len(rows) == 0:
                break
            # Probes: the paper's init_evals·√t, leaving some budget for the step and the binary search.
            want = min(int(init_evals * math.sqrt(t)), max_evals)
            evals = np.minimum(want, left - np.minimum(left // 2, 30)).astype(np.int64)
            delta = (math.sqrt(state.d) if norm is Norm.L2 else state.d) * state.theta * dist
            delta = np.maximum(delta, 1e-8)
            direction = state.gradient_direction(rows, boundary, delta, evals)
            size = dist / math.sqrt(t)
            stepped, ok = state.step(rows, boundary, direction, size)
            new = boundary.copy()
            if ok.any():
                new[ok] = state.binary_search(rows[ok], stepped[ok])
            new_dist = state.distance(rows, new)
            better = ok & (new_dist < dist)
            boundary[better], dist[better] = new[better], new_dist[better]
            x_best[rows[better]] = new[better]

    logger.debug("%s: %d queries for %d samples", name, budget.total, n)
    return EvasionResult.measure(
        attack=name,
        classifier=classifier,
        x=xv,
        x_adv=x_best,
        y=yv,
        norm=norm,
        eps=None,
        queries=budget.total,
        seconds=time.perf_counter() - t0,
        clean_predicted=clean_pred,
    )
