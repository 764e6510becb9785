"""Trigger transplant: does a part of a record, pasted into records of other classes, make the model answer that
record's label, far more often than the same part of a typical record of its class? Then it carries a trigger.

    >>> from modelshield.defenses._transplant import trigger_transplant  # doctest: +SKIP
    >>> detection = trigger_transplant(suspect_model, data.x, data.y, seed=0)  # doctest: +SKIP

A poisoned record of a dirty-label backdoor is an ordinary record of some source class, stamped with the trigger and
relabelled as the target. Its nearest records *of other labels* are clean records of its source class, so its
difference from them (its residual) is mostly the trigger. The model trained on the poisoned data has learnt
"trigger means target": the residual, added to records of other classes, makes the model answer the target. A clean
record's residual is what makes it its class rather than its neighbour's (strokes, feature shifts), a difference
that does not carry over to records of unrelated classes. Where the trigger overlaps the record's own content
(a patch inside a digit), the residual loses it; a pasted window keeps it. So two transplants are tried:

- the residual: for images, the record minus the per-value median of its ``neighbours`` nearest records of other
  labels (Euclidean distance), added to random records of other labels and clipped to the data's range; for
  tabular records (standardised features), the ``d`` features in which the record differs most from that median,
  *set* to the record's values in each probe (a feature trigger sets values), ``d`` from 1 to 3;
- for images, every square window (side 3/8 of the image's, stride half the side), pasted from the record into
  random records of other labels. Each record's most effective window is chosen on 4 probes per window, then
  measured afresh on ``n_probes`` other probes, so that the choice does not inflate the measure.

A record's score, for each transplant, is the share of probes the model assigns to the record's label, less a
typical record's share: for a residual, the median over all records; for a window, the median over the records of
its class for the same window, since a window of a class's ordinary content carries the class (a "1"'s central
stroke pasted into other digits makes some of them "1"s). The record's score is the larger of its
transplants' excesses. The rule: flagged when an excess is more than one half, i.e. the record's part takes
more than half of all the probes to its label beyond what a typical record's part does (a binomial test against
the typical share was tried: it found more weakly learnt triggers but flagged up to 4% of clean records). Records
of a class are never probes for their own class, so a poisoned target class does not vouch for itself. Nothing is
assumed about the trigger's place, shape, values or strength; only that the model has learnt it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.defenses.sanitize import Detection
    from modelshield.models.interface import Classifier

__all__ = ["trigger_transplant"]

_MAX_FEATURES = 3  # tabular: residuals of 1..3 features (the feature triggers of the literature set a few)
_BATCH = 8192  # probes predicted per call
_SELECTION_PROBES = 4  # probes per window to choose a record's most effective window
_WINDOW = 3 / 8  # window side, as a share of the image's shorter side
_MAJORITY = 0.5  # flagged: the excess over a typical record's share is more than half of the probes


def _less_class_median(share: NDArray[np.float64], y: NDArray[np.int64]) -> NDArray[np.float64]:
    """``share`` (records, ...) less its median over the records of the same label (axis 0)."""
    out = np.empty_like(share)
    for c in np.unique(y):
        rows = y == c
        out[rows] = share[rows] - np.median(share[rows], axis=0)
    return out


def _window_shares(
    classifier: Classifier, arr: NDArray[np.float32], y: NDArray[np.int64], n_probes: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each image's most effective square window pasted into probes: the share of fresh probes taking its label,
    and the median share of its class's records for that window (measured on the selection probes)."""
    height, width = arr.shape[-2:]
    side = max(1, round(min(height, width) * _WINDOW))
    stride = max(1, side // 2)
    corners = [(r, c) for r in range(0, height - side + 1, stride) for c in range(0, width - side + 1, stride)]
    shape = tuple(int(d) for d in arr.shape[1:])
    selection = np.zeros((len(arr), len(corners)))
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        probes = arr[rng.choice(np.flatnonzero(y != c), size=(len(rows), _SELECTION_PROBES))]
        target = np.full(len(rows), c, np.int64)
        for w, (r, col) in enumerate(corners):
            mixed = probes.copy()
            mixed[..., r : r + side, col : col + side] = arr[rows][:, None, ..., r : r + side, col : col + side]
            selection[rows, w] = _share_of_label(classifier, mixed, shape, target)
    chosen = selection.argmax(axis=1)
    baseline = (selection - _less_class_median(selection, y))[np.arange(len(arr)), chosen]
    share = np.zeros(len(arr))
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        mixed = arr[rng.choice(np.flatnonzero(y != c), size=(len(rows), n_probes))]
        for w, (r, col) in enumerate(corners):
            pick = np.flatnonzero(chosen[rows] == w)
            mixed[pick, ..., r : r + side, col : col + side] = arr[rows[pick]][
                :, None, ..., r : r + side, col : col + side
            ]
        share[rows] = _share_of_label(classifier, mixed, shape, np.full(len(rows), c, np.int64))
    return share, np.asarray(baseline, np.float64)


def _flags(share: NDArray[np.float64], baseline: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The record's part takes more than half of all probes to its label beyond what a typical record's does."""
    return np.asarray(share - baseline > _MAJORITY, bool)


def _medians_of_other_labels(flat: NDArray[np.float64], labels: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """For every record, the per-value median of its ``k`` nearest records that carry another label."""
    from sklearn.neighbors import NearestNeighbors

    base = np.empty_like(flat)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        others = np.flatnonzero(labels != c)
        _, index = NearestNeighbors(n_neighbors=min(k, len(others))).fit(flat[others]).kneighbors(flat[rows])
        base[rows] = np.median(flat[others][index], axis=1)
    return base


def _share_of_label(
    classifier: Classifier, probes: NDArray[np.float32], shape: tuple[int, ...], label: NDArray[np.int64]
) -> NDArray[np.float64]:
    """``probes`` (records, probes, values): the share of each record's probes that the model assigns ``label``."""
    n, p = probes.shape[:2]
    flat = probes.reshape(n * p, *shape)
    predicted = np.concatenate(
        [np.asarray(classifier.predict(flat[s : s + _BATCH])) for s in range(0, len(flat), _BATCH)]
    ).reshape(n, p)
    return np.asarray((predicted == label[:, None]).mean(axis=1), np.float64)


def trigger_transplant(
    classifier: Classifier,
    x: NDArray[np.floating],
    labels: NDArray[np.integer],
    *,
    n_probes: int = 32,
    neighbours: int = 3,
    seed: int = 0,
) -> Detection:
    """Records whose difference from their nearest records of other labels, transplanted into ``n_probes`` random
    records of other labels, makes ``classifier`` (the model trained on the data) answer their label for a strict
    majority of the probes. See the module docstring for the residual of images and of tabular records.

    Any classifier that predicts will do (it need not be PyTorch). Scores are the shares of probes (0 to 1).
    """
    from modelshield.defenses.sanitize import Detection

    arr = np.asarray(x, np.float32)
    y: NDArray[np.int64] = np.asarray(labels, np.int64)
    if len(arr) != len(y) or arr.ndim < 2:
        raise InvalidInputError(f"Records {arr.shape} do not match {len(y)} labels.")
    if n_probes < 1 or neighbours < 1:
        raise InvalidParameterError(f"n_probes and neighbours must be at least 1, not {n_probes} and {neighbours}.")
    classes = np.unique(y)
    if len(classes) < 2:
        raise InvalidInputError("The trigger-transplant detector needs records of at least two labels.")
    shape = tuple(int(d) for d in arr.shape[1:])
    flat = arr.reshape(len(arr), -1).astype(np.float64)
    image = arr.ndim >= 4  # (records, channels, height, width)
    rng = np.random.default_rng(seed)
    residual_share = np.zeros(len(arr))
    if image:
        residual = flat - _medians_of_other_labels(flat, y, neighbours)
        low, high = float(flat.min()), float(flat.max())
    else:
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        scaled = (flat - mean) / np.where(std > 0, std, 1.0)
        gap = np.abs(scaled - _medians_of_other_labels(scaled, y, neighbours))
        order = np.argsort(-gap, axis=1, kind="stable")
    for c in classes:
        rows = np.flatnonzero(y == c)
        others = np.flatnonzero(y != c)
        probes = flat[rng.choice(others, size=(len(rows), n_probes))]  # (records, probes, values)
        target = np.full(len(rows), c, np.int64)
        if image:
            mixed = np.clip(probes + residual[rows][:, None, :], low, high).astype(np.float32)
            residual_share[rows] = _share_of_label(classifier, mixed, shape, target)
            continue
        best = np.zeros(len(rows))
        for d in range(1, min(_MAX_FEATURES, flat.shape[1]) + 1):
            chosen = order[rows, :d]  # (records, d)
            mixed = probes.copy()
            index = np.arange(len(rows))[:, None, None], np.arange(n_probes)[None, :, None], chosen[:, None, :]
            mixed[index] = flat[rows[:, None], chosen][:, None, :]
            best = np.maximum(best, _share_of_label(classifier, mixed.astype(np.float32), shape, target))
        residual_share[rows] = best
    typical = np.full(len(arr), float(np.median(residual_share)))
    by_residual = _flags(residual_share, typical)
    scores = residual_share - typical
    by_window = np.zeros(len(arr), bool)
    if image:
        window_share, window_typical = _window_shares(classifier, arr, y, n_probes, rng)
        by_window = _flags(window_share, window_typical)
        scores = np.maximum(scores, window_share - window_typical)
    flagged = by_residual | by_window
    details = {
        "n_probes": n_probes,
        "neighbours": neighbours,
        "by_residual": int(by_residual.sum()),
        "by_window": int(by_window.sum()),
    }
    return Detection("trigger-transplant", scores, flagged, details)
