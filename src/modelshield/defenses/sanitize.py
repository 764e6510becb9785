"""Poisoned training records, found and removed: per-record suspicion scores from several detectors, and a cleaned set.

    >>> from modelshield.defenses.sanitize import sanitize  # doctest: +SKIP
    >>> result = sanitize(poisoned_train, classifier=suspect_model, trainer=recipe, seed=0)  # doctest: +SKIP
    >>> result.clean, result.removed.sum(), result.reasons[:3]  # doctest: +SKIP

Each detector returns a :class:`Detection`: one score per record (higher is more suspicious) and the records it
flags by a stated rule (the paper's where it gives one; where it does not, the rule and its margin are documented).

- ``reversed-trigger``: Neural Cleanse (Wang et al. 2019) reverse-engineers the trigger from the model trained on
  the data; the records of its target class that carry that trigger are flagged (see :func:`reversed_trigger`).
  Images only; run by default for images with a PyTorch model (it costs more than the rest together, but it
  catches the last records of a patch trigger that the others leave, and a backdoor survives a handful).
- ``trigger-transplant``: a record's difference from its nearest records of other labels, added to records of
  other classes, makes the model answer the record's label for most of them (see
  :func:`~modelshield.defenses._transplant.trigger_transplant`): the record carries what the model learnt as a
  trigger. Any trigger the model has learnt, wherever and however drawn (patches, blends, scattered pixels,
  tabular feature values); any classifier that predicts. Flags a record whose part takes more than half of 32
  probes to its label beyond what a typical record's part does. Also tries every square window of an image (a
  trigger inside the digit's strokes is lost in a residual).
- ``activation-clustering`` (Chen et al. 2018): the model's penultimate-layer activations, per class, reduced to
  10 dimensions and split in two by 2-means. A backdoor makes the poisoned records of the target class a separate
  group: they sit there for the trigger, not for the class's features. Whether a split is real is decided by a
  significance test against Gaussian data with the class's own variances (SigClust, Liu et al. 2008) plus an
  effect size, so real sub-styles of a class are not taken for poison (see :func:`activation_clustering`).
- ``spectral-signatures`` (Tran et al. 2018): per class, the squared projection of the centred activations on their
  top singular vector; the paper's rule removes the top ``1.5 x`` the expected poison share of every class.
- ``label-consistency``: confident learning (Northcutt et al. 2021, through cleanlab) on out-of-fold
  probabilities from models retrained with the target's recipe (``trainer``): a record whose label the other
  folds' models do not believe. Catches label flipping; dirty-label backdoors only while the held-out folds have
  not learnt the trigger. :func:`sanitize` runs it in up to two rounds, the second round's models trained without
  the records the first flagged: a weak trigger, held by fewer poisoned records, vouches less for the rest.
- ``neighbours``: the share of a record's k nearest neighbours (standardised inputs) with another label, the
  model-free version, for tabular data and when no trainer is given. Flags records that disagree with at least
  ``2k/3`` of their neighbours.
- ``outliers``: per class, how far a record lies from its nearest neighbours of the same label, as a robust
  z-score; flags above 3.5 (Iglewicz and Hoaglin). Off by default: unusual records are not poison as such.

Measured on random trigger draws at 3-5% poison on zoo:digits-cnn (``benchmarks/poisoning/bench_families.py``, 5
seeds; docs/benchmarks.md for the run), the defaults find nearly all records of corner/edge patches but far fewer
of blended, scattered-pixel and in-digit patch triggers (each draw all or little: the transplant needs a trigger
the model has learnt well and that is not part of the target class's own look), and some of breast-cancer feature
triggers. Where an attack fails to implant its trigger, its records are mislabelled records that label-consistency
finds in part.

:func:`sanitize` runs the detectors the inputs allow, flags the union, and returns the cleaned dataset with, for
every removed record, the detectors that flagged it. :func:`detection_quality` gives precision and recall against
known poison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset
from modelshield.defenses._transplant import trigger_transplant
from modelshield.errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.models.interface import Classifier
    from modelshield.models.retrain import Trainer

__all__ = [
    "DETECTORS",
    "Detection",
    "DetectionQuality",
    "SanitizeResult",
    "activation_clustering",
    "detection_quality",
    "label_consistency",
    "neighbour_disagreement",
    "out_of_fold_proba",
    "outlier_scores",
    "representations",
    "reversed_trigger",
    "sanitize",
    "spectral_signatures",
    "trigger_transplant",
]

DETECTORS = (
    "reversed-trigger",
    "trigger-transplant",
    "activation-clustering",
    "spectral-signatures",
    "label-consistency",
    "neighbours",
    "outliers",
)
_EFFECT_RULE = 0.5  # a poisoned class's split leaves under half the within-cluster variance a Gaussian's does
_NULL_DRAWS = 20
_COMPONENTS = 10
_MIN_CLASS = 20  # fewer records than this in a class: too few to cluster
_LC_ROUNDS = 2  # exclusionary rounds of confident learning in sanitize


@dataclass(frozen=True, eq=False)
class Detection:
    """A detector's per-record ``scores`` (higher: more suspicious), its ``flagged`` records, and per-class notes."""

    method: str
    scores: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectionQuality:
    """Flags measured against the truth: precision, recall, the share of clean records flagged, ROC AUC."""

    precision: float
    recall: float
    clean_flagged: float
    auc: float
    true_positives: int
    flagged: int
    poisoned: int


def detection_quality(detection: Detection | NDArray[np.bool_], truth: NDArray[np.bool_]) -> DetectionQuality:
    """Precision, recall, clean records flagged and (for a Detection) the AUC of its scores, against ``truth``."""
    flagged = detection.flagged if isinstance(detection, Detection) else np.asarray(detection, bool)
    truth = np.asarray(truth, bool)
    if flagged.shape != truth.shape:
        raise InvalidInputError(f"{flagged.shape[0]} flags but {truth.shape[0]} truth values.")
    tp = int((flagged & truth).sum())
    auc = float("nan")
    if isinstance(detection, Detection) and 0 < truth.sum() < len(truth):
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(truth, detection.scores))
    return DetectionQuality(
        precision=tp / flagged.sum() if flagged.any() else float("nan"),
        recall=tp / truth.sum() if truth.any() else float("nan"),
        clean_flagged=float((flagged & ~truth).sum() / max((~truth).sum(), 1)),
        auc=auc,
        true_positives=tp,
        flagged=int(flagged.sum()),
        poisoned=int(truth.sum()),
    )


def representations(classifier: Classifier, x: NDArray[np.floating], *, batch_size: int = 1024) -> NDArray[np.float32]:
    """The input of the network's last linear layer (its penultimate activations) for every record.

    Needs a :class:`~modelshield.models.torch_classifier.TorchClassifier` whose module has an ``nn.Linear`` as its
    final scoring layer.
    """
    from modelshield.models.torch_classifier import TorchClassifier

    if not isinstance(classifier, TorchClassifier):
        raise InvalidInputError(
            f"Activation-based detectors need a PyTorch model, got {type(classifier).__name__}.",
            remedy="Pass a PyTorch model, or use the model-free detectors (label-consistency, neighbours).",
        )
    import torch

    linears = [m for m in classifier.module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise InvalidInputError(
            "The model has no nn.Linear layer, so its penultimate activations cannot be read.",
            remedy="Use the model-free detectors (label-consistency, neighbours).",
        )
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach().flatten(1).float().cpu())

    handle = linears[-1].register_forward_pre_hook(hook)
    try:
        arr = np.asarray(x, dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(arr), batch_size):
                classifier.module(classifier._tensor(arr[start : start + batch_size]))
    finally:
        handle.remove()
    if not captured:
        return np.zeros((0, linears[-1].in_features), np.float32)
    return torch.cat(captured).numpy()


def _classes(labels: NDArray[np.integer]) -> list[tuple[int, NDArray[np.int64]]]:
    return [(int(c), np.flatnonzero(labels == c)) for c in np.unique(labels)]


def _cluster_index(z: NDArray[np.float64], seed: int) -> tuple[float, NDArray[np.int64]]:
    """2-means on ``z``: within-cluster sum of squares over the total (SigClust's cluster index) and the labels."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(z)
    total = float(((z - z.mean(axis=0)) ** 2).sum())
    return (float(km.inertia_) / total if total > 0 else 1.0), km.labels_.astype(np.int64)


def _split_test(reps: NDArray[np.float64], rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """Is a class's best 2-means split more than a Gaussian with the class's own spectrum would give? (SigClust)"""
    from sklearn.decomposition import PCA

    centred = reps - reps.mean(axis=0)
    n_comp = min(_COMPONENTS, centred.shape[0] - 1, centred.shape[1])
    pca = PCA(n_components=n_comp, random_state=seed).fit(centred)
    z = pca.transform(centred)
    observed, labels = _cluster_index(z, seed)
    scale = np.sqrt(np.maximum(pca.explained_variance_, 0.0))
    null = np.array([_cluster_index(rng.normal(size=z.shape) * scale, seed)[0] for _ in range(_NULL_DRAWS)])
    spread = float(null.std(ddof=1))
    zscore = (observed - float(null.mean())) / spread if spread > 0 else 0.0
    sizes = np.bincount(labels, minlength=2)
    small = int(np.argmin(sizes))
    return {
        "labels": labels,
        "small": small,
        "relative_size": float(sizes[small] / len(labels)),
        "cluster_index": observed,
        "null_mean": float(null.mean()),
        "ratio": observed / float(null.mean()) if null.mean() > 0 else 1.0,
        "z": float(zscore),
    }


def activation_clustering(
    reps: NDArray[np.floating], labels: NDArray[np.integer], *, alpha: float = 0.01, seed: int = 0
) -> Detection:
    """Chen et al.'s activation clustering, with a significance test of the split (SigClust, Liu et al. 2008).

    Per class, the activations are reduced to 10 principal components and split by 2-means. The split's cluster
    index (within-cluster over total sum of squares) is compared with :data:`_NULL_DRAWS` splits of Gaussian data
    with the class's own variances: the class is poisoned when the split is significant (one-sided, normal
    approximation, ``alpha`` Bonferroni-corrected over the classes) *and* large: its cluster index is under
    :data:`_EFFECT_RULE` of the null's. Real sub-styles of a class pass the first test but not the second (on
    zoo:digits-cnn, clean classes measured 0.87-1.03 of the null). It flags a backdoor whose poison the network
    maps far from the class (a trigger far outside the data's range: 0.01-0.22), but not, on that small CNN, one
    with an in-range patch (0.91: the poison is not a separate cluster by this test, though 2-means isolates it);
    :func:`reversed_trigger` finds those. The smaller cluster of a poisoned class is flagged: the poison is
    assumed to be a minority of its class.
    """
    from scipy.stats import norm

    acts: NDArray[np.float64] = np.asarray(reps, np.float64)
    labels = np.asarray(labels, np.int64)
    if acts.ndim != 2 or len(acts) != len(labels):
        raise InvalidInputError(f"Activations {acts.shape} do not match {len(labels)} labels.")
    if not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha must lie in (0, 1), not {alpha}.")
    classes = _classes(labels)
    critical = float(norm.ppf(alpha / max(len(classes), 1)))
    rng = np.random.default_rng(seed)
    scores = np.zeros(len(labels))
    flagged = np.zeros(len(labels), bool)
    per_class: dict[str, Any] = {}
    for c, rows in classes:
        if len(rows) < _MIN_CLASS:
            per_class[str(c)] = {"records": len(rows), "skipped": "too few records"}
            continue
        test = _split_test(acts[rows], rng, seed)
        members = rows[test["labels"] == test["small"]]
        poisoned = test["z"] < critical and test["ratio"] < _EFFECT_RULE
        scores[members] = max(0.0, -test["z"]) * (1.0 - min(test["ratio"], 1.0))
        if poisoned:
            flagged[members] = True
        per_class[str(c)] = {
            "records": len(rows),
            "relative_size": round(test["relative_size"], 4),
            "cluster_index": round(test["cluster_index"], 4),
            "null_ratio": round(test["ratio"], 4),
            "z": round(test["z"], 2),
            "poisoned": bool(poisoned),
        }
    return Detection("activation-clustering", scores, flagged, {"classes": per_class, "critical_z": critical})


def spectral_signatures(
    reps: NDArray[np.floating], labels: NDArray[np.integer], *, expected_fraction: float = 0.05
) -> Detection:
    """Tran et al.'s spectral signatures: per class, the squared projection of the centred activations on their top
    singular vector; the paper's rule flags the top ``1.5 * expected_fraction`` of every class."""
    reps = np.asarray(reps, np.float64)
    labels = np.asarray(labels, np.int64)
    if reps.ndim != 2 or len(reps) != len(labels):
        raise InvalidInputError(f"Activations {reps.shape} do not match {len(labels)} labels.")
    if not 0 < expected_fraction < 1:
        raise InvalidParameterError(f"expected_fraction must lie in (0, 1), not {expected_fraction}.")
    scores = np.zeros(len(labels))
    flagged = np.zeros(len(labels), bool)
    for _, rows in _classes(labels):
        if len(rows) < 2:
            continue
        centred = reps[rows] - reps[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projection = (centred @ vt[0]) ** 2
        median = float(np.median(projection))
        scores[rows] = projection / median if median > 0 else projection
        top = min(len(rows), int(np.ceil(1.5 * expected_fraction * len(rows))))
        flagged[rows[np.argsort(-projection, kind="stable")[:top]]] = True
    return Detection("spectral-signatures", scores, flagged, {"expected_fraction": expected_fraction})


def _low_cluster(dist: NDArray[np.float64], seed: int) -> NDArray[np.bool_]:
    """The lower of two 2-means clusters of one-dimensional distances."""
    from sklearn.cluster import KMeans

    if len(np.unique(dist)) < 2:
        return np.zeros(len(dist), bool)
    km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(dist[:, None])
    low = int(np.argmin(km.cluster_centers_[:, 0]))
    return np.asarray(km.labels_ == low)


def reversed_trigger(
    classifier: Classifier,
    x: NDArray[np.floating],
    labels: NDArray[np.integer],
    *,
    n_optimise: int = 300,
    seed: int = 0,
) -> Detection:
    """Records that carry the trigger Neural Cleanse reverse-engineers from the model (images only).

    1. :func:`~modelshield.defenses.backdoor.neural_cleanse` on a random sample of the records finds the classes
       with an anomalously small trigger (a backdoor's target) and that trigger's mask.
    2. Seeds: records of such a class that the model no longer assigns to it once the mask's region is replaced
       by the per-pixel median of the data (the trigger removed, what is left is another class).
    3. The trigger's full extent: the mask's strong part (at least half its peak) grown by one pixel; its pattern:
       the seeds' median there. Every record of the class is measured by its mean distance to that pattern in
       that region; a 2-means split of the distances (refined once with the close cluster's own pattern) flags
       the close cluster, provided it is the smaller one (poison is a minority of its class).

    It finds patch triggers at any position, shape or target class. A trigger spread over the whole input
    (blending) has no small region to match: it is found only when the distance split happens to isolate it
    (on the digits, 0.18 to 0.91 of a blended trigger's records, depending on the seed).
    """
    from scipy.ndimage import binary_dilation

    from modelshield.defenses.backdoor import neural_cleanse
    from modelshield.models.torch_classifier import TorchClassifier

    if not isinstance(classifier, TorchClassifier):
        raise InvalidInputError(
            f"The reversed-trigger detector needs a PyTorch model, got {type(classifier).__name__}.",
            remedy="Pass a PyTorch model, or use the model-free detectors (label-consistency, neighbours).",
        )
    arr = np.asarray(x, np.float32)
    labels = np.asarray(labels, np.int64)
    if arr.ndim != 4 or len(arr) != len(labels):
        raise InvalidInputError(
            f"The reversed-trigger detector needs images (n, channels, height, width) with one label each, got "
            f"{arr.shape} and {len(labels)} labels.",
            remedy="Use the activation-clustering, label-consistency or neighbours detectors for tabular data.",
        )
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(arr), size=min(n_optimise, len(arr)), replace=False)
    nc = neural_cleanse(classifier, arr[sample], seed=seed)
    fill = np.median(arr, axis=0)
    scores = np.zeros(len(arr))
    flagged = np.zeros(len(arr), bool)
    per_class: dict[str, Any] = {}
    for target in nc.flagged:
        rows = np.flatnonzero(labels == target)
        mask = nc.masks[target].reshape(arr.shape[2:])
        cleaned = (1.0 - mask) * arr[rows] + mask * fill
        seeds = rows[classifier.predict(cleaned) != target]
        info: dict[str, Any] = {"records": len(rows), "seeds": len(seeds), "mask_l1": round(float(mask.sum()), 3)}
        per_class[str(target)] = info
        if len(seeds) == 0 or len(rows) < 2:
            continue
        region = binary_dilation(mask >= 0.5 * mask.max())
        values = arr[rows][:, :, region]  # (records, channels, pixels)
        pattern = np.median(arr[seeds][:, :, region], axis=0)
        close = np.zeros(len(rows), bool)
        dist = np.zeros(len(rows))
        for _ in range(2):
            dist = np.abs(values - pattern).mean(axis=(1, 2))
            close = _low_cluster(dist, seed)
            if not close.any():
                break
            pattern = np.median(values[close], axis=0)
        top = float(dist.max()) if len(dist) else 0.0
        scores[rows] = 1.0 - dist / top if top > 0 else 1.0
        info["region_pixels"] = int(region.sum())
        info["close"] = int(close.sum())
        if 0 < close.sum() < len(rows) / 2:
            flagged[rows[close]] = True
            info["poisoned"] = True
    details = {
        "flagged_classes": list(nc.flagged),
        "anomaly_index": [round(float(a), 3) for a in nc.anomaly_index],
        "classes": per_class,
    }
    return Detection("reversed-trigger", scores, flagged, details)


def neighbour_disagreement(x: NDArray[np.floating], labels: NDArray[np.integer], *, k: int = 10) -> Detection:
    """Share of each record's ``k`` nearest neighbours (standardised features) with another label; flags >= 2/3."""
    from sklearn.neighbors import NearestNeighbors

    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    labels = np.asarray(labels, np.int64)
    if len(flat) <= k:
        raise InvalidInputError(f"The neighbours detector needs more than k={k} records, got {len(flat)}.")
    std = flat.std(axis=0)
    scaled = (flat - flat.mean(axis=0)) / np.where(std > 0, std, 1.0)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(scaled).kneighbors(scaled)
    others = labels[index[:, 1:]] != labels[:, None]
    scores = others.mean(axis=1)
    return Detection("neighbours", scores, scores >= 2 / 3, {"k": k})


def outlier_scores(x: NDArray[np.floating], labels: NDArray[np.integer], *, k: int = 10) -> Detection:
    """Per-class outliers: each record's mean distance to its ``k`` nearest neighbours of the same label
    (standardised features), as a robust z-score of its logarithm within the class; flags modified z-scores above
    3.5 (Iglewicz and Hoaglin's rule). Pass activations instead of inputs to score in a model's representation."""
    from sklearn.neighbors import NearestNeighbors

    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    labels = np.asarray(labels, np.int64)
    std = flat.std(axis=0)
    scaled = (flat - flat.mean(axis=0)) / np.where(std > 0, std, 1.0)
    scores = np.zeros(len(flat))
    for _, rows in _classes(labels):
        if len(rows) <= k:
            continue
        distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(scaled[rows]).kneighbors(scaled[rows])
        spread = np.log(distances[:, 1:].mean(axis=1) + 1e-12)
        median = float(np.median(spread))
        mad = float(np.median(np.abs(spread - median)))
        scores[rows] = 0.6745 * (spread - median) / mad if mad > 0 else 0.0
    return Detection("outliers", scores, scores > 3.5, {"k": k})


def _folds(n: int, n_folds: int, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Training masks of ``n_folds`` folds with equal training-set sizes (lock-step trainers need them)."""
    order = rng.permutation(n)
    held = np.array_split(order, n_folds)
    size = n - max(len(h) for h in held)
    masks = np.zeros((n_folds, n), bool)
    for f, out in enumerate(held):
        rest = np.setdiff1d(order, out, assume_unique=True)
        masks[f, rng.permutation(rest)[:size]] = True
    return masks


def out_of_fold_proba(
    trainer: Trainer,
    x: NDArray[np.floating],
    labels: NDArray[np.integer],
    *,
    n_classes: int,
    n_folds: int = 5,
    seed: int = 0,
    exclude: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Every record's class probabilities from a model (the ``trainer``'s recipe) that did not train on it.

    Records in ``exclude`` train no model; their probabilities are the mean of all the folds' models.
    """
    keep = np.arange(len(x)) if exclude is None else np.flatnonzero(~np.asarray(exclude, bool))
    if len(keep) <= n_folds:
        raise InvalidInputError(f"Out-of-fold probabilities need more than {n_folds} records to train on.")
    masks = np.zeros((n_folds, len(x)), bool)
    masks[:, keep] = _folds(len(keep), n_folds, np.random.default_rng(seed))
    log_proba = trainer.fit_log_proba(x, labels, masks, n_classes=n_classes, seed=seed)
    proba = np.zeros((len(x), n_classes))
    seen = np.zeros(len(x), int)
    for f in range(n_folds):
        out = ~masks[f]
        proba[out] += np.exp(log_proba[f, out])
        seen[out] += 1
    proba /= seen[:, None]
    proba /= proba.sum(axis=1, keepdims=True)
    return proba


def label_consistency(proba: NDArray[np.floating], labels: NDArray[np.integer]) -> Detection:
    """Confident learning on out-of-fold probabilities (cleanlab): flags the label issues it finds; scores are one
    minus cleanlab's self-confidence label-quality score."""
    from modelshield._extras import require

    require("cleanlab", extra="data", feature="label-consistency detection")
    from cleanlab.filter import find_label_issues  # type: ignore[import-untyped]
    from cleanlab.rank import get_label_quality_scores  # type: ignore[import-untyped]

    labels = np.asarray(labels, np.int64)
    proba = np.asarray(proba, np.float64)
    flagged = np.asarray(find_label_issues(labels, proba), bool)
    scores = 1.0 - np.asarray(get_label_quality_scores(labels, proba), np.float64)
    return Detection("label-consistency", scores, flagged, {})


def _exclusionary_label_consistency(
    trainer: Trainer, x: NDArray[np.floating], labels: NDArray[np.integer], *, n_classes: int, seed: int
) -> Detection:
    """Confident learning in :data:`_LC_ROUNDS` rounds: each round's out-of-fold models train without the records
    flagged so far, so that a weakly learnt trigger, carried by fewer poisoned records, stops vouching for the
    poison still left. The flags accumulate; the scores are the last round's."""
    flagged = np.zeros(len(labels), bool)
    detection = Detection("label-consistency", np.zeros(len(labels)), flagged, {})
    found = []
    for r in range(_LC_ROUNDS):
        proba = out_of_fold_proba(trainer, x, labels, n_classes=n_classes, seed=seed + r, exclude=flagged)
        detection = label_consistency(proba, labels)
        new = detection.flagged & ~flagged
        found.append(int(new.sum()))
        flagged = flagged | detection.flagged
        if not new.any():
            break
    return Detection("label-consistency", detection.scores, flagged, {"rounds": len(found), "new_flags": found})


@dataclass(frozen=True, eq=False)
class SanitizeResult:
    """The cleaned dataset, what was removed and why, and each detector's result."""

    clean: Dataset
    removed: NDArray[np.bool_]
    reasons: tuple[tuple[int, tuple[str, ...]], ...]  # (record index, detectors that flagged it), removed only
    detections: tuple[Detection, ...]

    def detection(self, method: str) -> Detection:
        for d in self.detections:
            if d.method == method:
                return d
        raise KeyError(method)


def _choose(
    data: Dataset, methods: Sequence[str] | None, *, torch_model: bool, has_trainer: bool, has_model: bool = False
) -> list[str]:
    """The detectors to run: ``methods``, or those the inputs allow; refused when an input they need is missing."""
    if methods is None:
        chosen = ["trigger-transplant"] if has_model or torch_model else []
        if torch_model and len(data.schema.input_shape) == 3:  # images: Neural Cleanse finds what patches leave
            chosen.insert(0, "reversed-trigger")
        if torch_model:
            chosen.append("activation-clustering")
        chosen.append("label-consistency" if has_trainer else "neighbours")
    else:
        chosen = list(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in DETECTORS]
    if unknown:
        raise InvalidParameterError(f"Unknown detector(s) {unknown}.", remedy=f"Use some of: {', '.join(DETECTORS)}.")
    if "trigger-transplant" in chosen and not (has_model or torch_model):
        raise InvalidParameterError(
            "trigger-transplant needs the model trained on the data.",
            remedy="Pass the model trained on the data (classifier=), or choose label-consistency or neighbours.",
            cli_remedy="Pass the model trained on the data (--model), or choose label-consistency or neighbours.",
        )
    needs_model = {"reversed-trigger", "activation-clustering", "spectral-signatures"} & set(chosen)
    if needs_model and not torch_model:
        raise InvalidParameterError(
            f"{', '.join(sorted(needs_model))} need the PyTorch model trained on the data.",
            remedy="Pass the model trained on the data (classifier=), or choose label-consistency or neighbours.",
            cli_remedy="Pass the model trained on the data (--model), or choose label-consistency or neighbours.",
        )
    if "label-consistency" in chosen and not has_trainer:
        raise InvalidParameterError(
            "label-consistency needs the training recipe to compute out-of-fold probabilities.",
            remedy="Pass a trainer (a zoo target's recipe), or choose the neighbours detector.",
            cli_remedy="Pass --recipe zoo:NAME, or choose the neighbours detector (--detectors neighbours).",
        )
    return chosen


def sanitize(
    data: Dataset,
    *,
    classifier: Classifier | None = None,
    trainer: Trainer | None = None,
    methods: Sequence[str] | None = None,
    expected_fraction: float = 0.05,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> SanitizeResult:
    """Run the detectors that the inputs allow (or ``methods``), remove the union of their flags.

    ``classifier`` is the model trained on ``data`` (the suspect): the trigger-transplant detector runs with any
    classifier, the activation-based detectors with a PyTorch one. ``trainer`` (the recipe that trained it)
    enables out-of-fold confident learning. ``progress`` is called as each detector starts, with (detector,
    detectors done, detectors in all), and once more at the end.
    """
    from modelshield.models.torch_classifier import TorchClassifier

    torch_model = classifier is not None and isinstance(classifier, TorchClassifier)
    chosen = _choose(
        data, methods, torch_model=torch_model, has_trainer=trainer is not None, has_model=classifier is not None
    )
    needs_model = {"reversed-trigger", "activation-clustering", "spectral-signatures"} & set(chosen)
    detections: list[Detection] = []
    x, y = data.x, data.y
    order = [m for m in DETECTORS if m in chosen]

    def starting(method: str) -> None:
        if progress is not None:
            progress(method, order.index(method), len(order))

    if "reversed-trigger" in chosen:
        starting("reversed-trigger")
        assert classifier is not None  # noqa: S101 - checked above
        detections.append(reversed_trigger(classifier, x, y, seed=seed))
    if "trigger-transplant" in chosen:
        starting("trigger-transplant")
        assert classifier is not None  # noqa: S101 - checked above
        detections.append(trigger_transplant(classifier, x, y, seed=seed))
    if needs_model - {"reversed-trigger"}:
        assert classifier is not None  # noqa: S101 - checked above
        reps = representations(classifier, x)
        if "activation-clustering" in chosen:
            starting("activation-clustering")
            detections.append(activation_clustering(reps, y, seed=seed))
        if "spectral-signatures" in chosen:
            starting("spectral-signatures")
            detections.append(spectral_signatures(reps, y, expected_fraction=expected_fraction))
    if "label-consistency" in chosen:
        assert trainer is not None  # noqa: S101 - checked above
        starting("label-consistency")
        detections.append(_exclusionary_label_consistency(trainer, x, y, n_classes=data.n_classes, seed=seed))
    if "neighbours" in chosen:
        starting("neighbours")
        detections.append(neighbour_disagreement(x, y))
    if "outliers" in chosen:
        starting("outliers")
        detections.append(outlier_scores(x, y))
    if progress is not None:
        progress("done", len(order), len(order))
    removed = np.zeros(len(data), bool)
    for d in detections:
        removed |= d.flagged
    reasons = tuple((int(i), tuple(d.method for d in detections if d.flagged[i])) for i in np.flatnonzero(removed))
    clean = data.subset(np.flatnonzero(~removed), name=f"{data.name}-sanitized")
    return SanitizeResult(clean=clean, removed=removed, reasons=reasons, detections=tuple(detections))
