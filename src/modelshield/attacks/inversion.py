"""Model inversion of image classifiers: reconstruct what each class looks like from the model's gradients alone,
and measure how much of it the model leaked, against reconstructions made without the model.

    >>> from modelshield.attacks.inversion import invert_classes
    >>> result = invert_classes(target.classifier, reference=target.train, auxiliary=target.test)  # doctest: +SKIP
    >>> result.evaluator_accuracy, result.baseline_evaluator_accuracy, result.p_value  # doctest: +SKIP

The attack (MI-Face, Fredrikson et al. 2015) starts from the attacker's prior image (the mean of its auxiliary,
unlabelled images, plus a little noise for each restart) and descends, with Adam, the cross-entropy of the target
class plus ``l2_weight`` times the mean squared distance to the prior (keeping the image plausible) and
``tv_weight`` times the mean squared difference of neighbouring pixels (keeping it smooth), inside the valid
range. Every class and restart is one row of one batch, so each step is one gradient query per image. It works on
any :class:`~modelshield.models.interface.GradientClassifier` (it uses ``loss_gradient`` only).

The model-free baseline is the starting point itself (the prior plus noise): what the attacker has without the
model. Reconstructions and baseline are scored against the training data (``reference``), which the attacker
never sees:

- *similarity*: the correlation of the reconstruction with its class's training mean, both taken relative to the
  training data's overall mean, so that what all classes share does not count (0 for the prior; 1 for a perfect
  class average). ``raw_similarity`` is the plain correlation, shared structure included.
- *identification*: the share of reconstructions most similar to their own class's mean (chance ``1 / k``).
- *evaluator accuracy*: the share of reconstructions that an independent classifier, trained on the held-out
  ``auxiliary`` data (which the target never saw), assigns to their class.

Significance: under the null hypothesis that the model knows nothing about what its classes look like (an
untrained network, say), reconstructions are exchangeable between classes, so the statistic (mean evaluator
accuracy per class, or mean similarity per class) is compared with its values under permutations of the class
labels (all of them when ``k! <= permutations``). Restarts of one class are averaged before the test, since they
are not independent of each other. With two classes the smallest attainable p-value is 0.5: class reconstruction
cannot be shown significant for binary models this way.

Reference: Fredrikson, Jha & Ristenpart 2015, "Model inversion attacks that exploit confidence information and
basic countermeasures" (CCS).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.data.interface import Dataset
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue
from modelshield.models.interface import Classifier, FloatArray, GradientClassifier, IntArray

__all__ = ["InversionResult", "Reconstruction", "evaluate_inversion", "invert_classes", "reconstruct_classes"]

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


@dataclass(frozen=True)
class Reconstruction:
    """Class representatives made from the model's gradients, with the model-free starting points beside them."""

    attack: str  # name and parameters
    x: FloatArray  # (n, *input_shape): one row per class and restart
    classes: IntArray  # (n,): the class each row reconstructs
    start: FloatArray  # (n, *input_shape): the starting points, the model-free baseline
    prior: FloatArray  # (*input_shape): the attacker's prior image
    confidence: NDArray[np.float64]  # (n,): the model's probability of the class on each reconstruction
    queries: int
    seconds: float


@dataclass(frozen=True)
class InversionResult:
    """How much of each class's appearance the model gave away, against the model-free baseline."""

    reconstruction: Reconstruction
    classes: IntArray  # (m,): the classes reconstructed, in the order of the per-class arrays
    class_means: FloatArray  # (m, *input_shape): each class's mean training image
    similarity: NDArray[np.float64]  # (m,): centred correlation with the class mean, mean over restarts
    baseline_similarity: NDArray[np.float64]  # (m,): the same for the baseline
    raw_similarity: NDArray[np.float64]  # (m,): plain correlation with the class mean
    baseline_raw_similarity: NDArray[np.float64]  # (m,)
    identification_accuracy: float  # share of reconstructions most similar to their own class's mean
    baseline_identification_accuracy: float
    evaluator_accuracy: float  # share of reconstructions an independent classifier assigns to their class
    evaluator_per_class: NDArray[np.float64]  # (m,)
    baseline_evaluator_accuracy: float  # the same for the baseline
    evaluator_reference_accuracy: float  # the evaluator's accuracy on real training images (its competence)
    p_value: float  # permutation test of the evaluator accuracy per class
    similarity_p_value: float  # permutation test of the similarity per class
    alpha: float  # significance level for :attr:`significant`
    seconds: float = 0.0  # reconstruction and evaluation

    @property
    def attack(self) -> str:
        """The reconstruction attack with its parameters."""
        return self.reconstruction.attack

    @property
    def queries(self) -> int:
        """The target's queries: gradient steps and the final predictions (the evaluator's are not counted)."""
        return self.reconstruction.queries

    @property
    def chance(self) -> float:
        """Accuracy of guessing a class uniformly."""
        return 1.0 / len(self.classes)

    @property
    def significant(self) -> bool:
        """True when the evaluator recognises the reconstructions better than permuted classes would allow."""
        return self.p_value < self.alpha

    def metrics(self) -> dict[str, float]:
        """The field's figures: how often an independent evaluator recognises the reconstructions (and the
        model-free baseline), chance, the permutation test's p-value, similarity to the class means."""
        return {
            "evaluator_accuracy": self.evaluator_accuracy,
            "baseline_evaluator_accuracy": self.baseline_evaluator_accuracy,
            "chance": self.chance,
            "p_value": self.p_value,
            "similarity_p_value": self.similarity_p_value,
            "mean_similarity": float(np.mean(self.similarity)),
            "baseline_mean_similarity": float(np.mean(self.baseline_similarity)),
            "identification_accuracy": self.identification_accuracy,
        }

    def to_dict(self) -> dict[str, JSONValue]:
        """The figures (not the images) as plain JSON data."""
        return {
            "attack": self.reconstruction.attack,
            "classes": self.classes.tolist(),
            "similarity": self.similarity.tolist(),
            "baseline_similarity": self.baseline_similarity.tolist(),
            "raw_similarity": self.raw_similarity.tolist(),
            "baseline_raw_similarity": self.baseline_raw_similarity.tolist(),
            "identification_accuracy": self.identification_accuracy,
            "baseline_identification_accuracy": self.baseline_identification_accuracy,
            "evaluator_accuracy": self.evaluator_accuracy,
            "evaluator_per_class": self.evaluator_per_class.tolist(),
            "baseline_evaluator_accuracy": self.baseline_evaluator_accuracy,
            "evaluator_reference_accuracy": self.evaluator_reference_accuracy,
            "chance": self.chance,
            "p_value": self.p_value,
            "similarity_p_value": self.similarity_p_value,
            "significant": self.significant,
            "model_confidence": float(np.mean(self.reconstruction.confidence)),
            "queries": self.reconstruction.queries,
            "seconds": self.seconds,
        }


# -- reconstruction --------------------------------------------------------------------------------------------------


def _smoothness_gradient(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gradient of the sum of squared differences between neighbouring values along the last two axes."""
    grad = np.zeros_like(x)
    if x.ndim >= 2 and x.shape[-1] > 1:
        dh = x[..., :, 1:] - x[..., :, :-1]
        grad[..., :, 1:] += 2 * dh
        grad[..., :, :-1] -= 2 * dh
    if x.ndim >= 3 and x.shape[-2] > 1:
        dv = x[..., 1:, :] - x[..., :-1, :]
        grad[..., 1:, :] += 2 * dv
        grad[..., :-1, :] -= 2 * dv
    return grad


def reconstruct_classes(
    classifier: GradientClassifier,
    prior: ArrayLike,
    *,
    classes: Sequence[int] | None = None,
    restarts: int = 2,
    steps: int = 100,
    step_size: float = 0.05,
    l2_weight: float = 1.0,
    tv_weight: float = 0.0,
    noise: float = 0.1,
    seed: int = 0,
) -> Reconstruction:
    """MI-Face: for each class and restart, descend the class's cross-entropy plus the priors, from ``prior``.

    ``step_size`` and ``noise`` are shares of the input range (``clip_values``; without bounds, of the prior's
    range); ``l2_weight`` and ``tv_weight`` weigh the mean squared distance to the prior and the mean squared
    neighbour difference, both in units of the range, against the cross-entropy.
    """
    t0 = time.perf_counter()
    if not isinstance(classifier, GradientClassifier):
        raise InvalidParameterError(
            f"Model inversion needs gradients; {type(classifier).__name__} is black-box.",
            remedy="Use a white-box adapter (TorchClassifier), or assess a black-box model with attribute inference.",
        )
    if restarts < 1 or steps < 1:
        raise InvalidParameterError(f"restarts and steps must be at least 1, got {restarts} and {steps}.")
    for name, value in (("step_size", step_size), ("l2_weight", l2_weight), ("tv_weight", tv_weight),
                        ("noise", noise)):  # fmt: skip
        if not (math.isfinite(value) and value >= 0) or (name == "step_size" and value == 0):
            raise InvalidParameterError(
                f"{name} must be a finite non-negative number (step_size positive), not {value}.",
                remedy="Use the defaults: step_size=0.05, l2_weight=1, tv_weight=0, noise=0.1.",
            )
    shape = classifier.input_shape
    prior_arr = np.asarray(prior, np.float64)
    if prior_arr.shape != shape or not np.all(np.isfinite(prior_arr)):
        raise InvalidInputError(
            f"The prior image has shape {prior_arr.shape}; the model takes {shape} (finite values).",
            remedy="Pass one image of the model's input shape, e.g. the mean of held-out inputs.",
        )
    wanted = np.arange(classifier.n_classes) if classes is None else np.asarray(classes)
    if wanted.ndim != 1 or not len(wanted) or not np.issubdtype(wanted.dtype, np.integer):
        raise InvalidParameterError("classes must be a non-empty sequence of class indices.")
    if wanted.min() < 0 or wanted.max() >= classifier.n_classes or len(np.unique(wanted)) != len(wanted):
        raise InvalidParameterError(
            f"classes must be distinct indices in 0..{classifier.n_classes - 1}, got {wanted.tolist()}."
        )
    bounds = classifier.clip_values
    if bounds is not None:
        low = np.broadcast_to(np.asarray(bounds.low, np.float64), shape)
        high = np.broadcast_to(np.asarray(bounds.high, np.float64), shape)
    else:
        low, high = np.full(shape, -np.inf), np.full(shape, np.inf)
    width = float(np.max(high - low)) if bounds is not None else float(np.ptp(prior_arr)) or 1.0

    rng = np.random.default_rng(seed)
    labels = np.repeat(wanted.astype(np.int64), restarts)
    start = np.clip(prior_arr + rng.normal(0.0, noise * width, (len(labels), *shape)), low, high)
    x = start.copy()
    m, v = np.zeros_like(x), np.zeros_like(x)
    n_pixels = float(np.prod(shape))
    queries_before = classifier.queries
    for t in range(1, steps + 1):
        grad = classifier.loss_gradient(x.astype(np.float32), labels).astype(np.float64)
        if l2_weight:
            grad += l2_weight * 2.0 * (x - prior_arr) / (n_pixels * width * width)
        if tv_weight:
            grad += tv_weight * _smoothness_gradient(x) / (n_pixels * width * width)
        m = _BETA1 * m + (1 - _BETA1) * grad
        v = _BETA2 * v + (1 - _BETA2) * grad * grad
        update = (m / (1 - _BETA1**t)) / (np.sqrt(v / (1 - _BETA2**t)) + _ADAM_EPS)
        x = np.clip(x - step_size * width * update, low, high)
    x32 = x.astype(np.float32)
    proba = classifier.predict_proba(x32)
    name = (f"mi-face(steps={steps}, restarts={restarts}, step_size={step_size:g}, l2={l2_weight:g}, "
            f"tv={tv_weight:g}, noise={noise:g})")  # fmt: skip
    return Reconstruction(
        attack=name,
        x=x32,
        classes=labels,
        start=start.astype(np.float32),
        prior=prior_arr.astype(np.float32),
        confidence=np.asarray(proba[np.arange(len(labels)), labels], np.float64),
        queries=classifier.queries - queries_before,
        seconds=time.perf_counter() - t0,
    )


# -- evaluation ------------------------------------------------------------------------------------------------------


def _correlation(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson correlation of every row of ``a`` with every row of ``b`` (0 where a row is constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 1e-12)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 1e-12)
    return np.asarray(a @ b.T, np.float64)


def _per_class(values: NDArray[np.float64], rows: NDArray[np.int64], m: int) -> NDArray[np.float64]:
    """Mean of ``values`` (n, ...) over the rows of each of ``m`` classes (``rows`` gives each row's position)."""
    counts = np.bincount(rows, minlength=m).astype(np.float64)
    sums = np.zeros((m, *values.shape[1:]))
    np.add.at(sums, rows, values)
    return np.asarray(sums / counts.reshape(-1, *([1] * (values.ndim - 1))), np.float64)


def _permutation_p_value(matrix: NDArray[np.float64], permutations: int, rng: np.random.Generator) -> float:
    """One-sided p-value of the mean diagonal of ``matrix`` (classes x classes) against permuted columns."""
    m = len(matrix)
    observed = float(np.trace(matrix)) / m
    if math.factorial(m) <= permutations:
        perms = np.array(list(itertools.permutations(range(m))))
        stats = matrix[np.arange(m), perms].mean(axis=1)
        return float(np.mean(stats >= observed - 1e-12))
    perms = np.argsort(rng.random((permutations, m)), axis=1)
    stats = matrix[np.arange(m), perms].mean(axis=1)
    return float((1 + np.sum(stats >= observed - 1e-12)) / (1 + permutations))


def _default_evaluator(auxiliary: Dataset, seed: int) -> Classifier:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from modelshield.models.sklearn_classifier import SklearnClassifier

    model = LogisticRegression(max_iter=500, random_state=seed)
    with warnings.catch_warnings():  # an unconverged evaluator is still an evaluator; its accuracy is reported
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(auxiliary.flat(), auxiliary.y)
    if len(model.classes_) != auxiliary.n_classes:
        raise InvalidInputError(
            f"The auxiliary data holds {len(model.classes_)} of the {auxiliary.n_classes} classes; the evaluator "
            "must know every class.",
            remedy="Pass held-out data with examples of every class, or an evaluator of your own.",
        )
    return SklearnClassifier(model, input_shape=auxiliary.schema.input_shape)


def evaluate_inversion(
    reconstruction: Reconstruction,
    *,
    reference: Dataset,
    auxiliary: Dataset | None = None,
    evaluator: Classifier | None = None,
    permutations: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> InversionResult:
    """Score reconstructions against the training images (``reference``) and an independent evaluator.

    The evaluator is ``evaluator`` when given, else a logistic regression trained on ``auxiliary`` (held-out data
    the target never saw). ``permutations`` bounds the permutation tests.
    """
    t0 = time.perf_counter()
    if evaluator is None and auxiliary is None:
        raise InvalidParameterError(
            "Pass auxiliary (held-out) data to train an evaluator on, or an evaluator.",
            remedy="Pass auxiliary=target.test.",
        )
    if permutations < 99:
        raise InvalidParameterError(f"permutations must be at least 99, not {permutations}.", remedy="Use 2000.")
    if not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha must lie in (0, 1), not {alpha}.", remedy="Use 0.05.")
    rec = reconstruction
    shape = rec.x.shape[1:]
    if reference.schema.input_shape != shape:
        raise InvalidInputError(
            f"Reference images have shape {reference.schema.input_shape}; the reconstructions {shape}.",
            remedy="Pass the target's training data as the reference.",
        )
    classes = np.unique(rec.classes)
    missing = [int(c) for c in classes if not np.any(reference.y == c)]
    if missing:
        raise InvalidInputError(
            f"The reference data has no image of class(es) {missing}; their reconstructions cannot be scored.",
            remedy="Reconstruct only the classes present in the training data.",
        )
    rng = np.random.default_rng(seed)
    m = len(classes)
    position = np.searchsorted(classes, rec.classes)
    ref = reference.flat().astype(np.float64)
    overall = ref.mean(axis=0)
    means = np.stack([ref[reference.y == c].mean(axis=0) for c in classes])
    recon = rec.x.reshape(len(rec.x), -1).astype(np.float64)
    start = rec.start.reshape(len(rec.start), -1).astype(np.float64)

    def scores(images: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        centred = _correlation(images - overall, means - overall)  # (n, m)
        raw = _correlation(images, means)
        own = np.arange(len(images)), position
        identified = float(np.mean(centred.argmax(axis=1) == position))
        return _per_class(centred, position, m), _per_class(raw[own], position, m), identified

    centred, raw, identified = scores(recon)
    base_centred, base_raw, base_identified = scores(start)

    if evaluator is not None:
        judge = evaluator
    elif auxiliary is not None:
        judge = _default_evaluator(auxiliary, seed)
    else:  # refused above
        raise InvalidParameterError("Pass auxiliary (held-out) data to train an evaluator on, or an evaluator.")
    if judge.input_shape != tuple(shape) or judge.n_classes <= int(classes.max()):
        raise InvalidParameterError(
            f"The evaluator takes inputs of shape {judge.input_shape} with {judge.n_classes} classes; the "
            f"reconstructions have shape {shape} and classes up to {int(classes.max())}.",
            remedy="Use an evaluator trained on the same kind of images and classes.",
        )
    said = judge.predict(rec.x)
    said_start = judge.predict(rec.start)
    votes = _per_class(np.eye(judge.n_classes)[said][:, classes], position, m)  # (m, m): share assigned to class j
    correct = said == rec.classes
    sample = rng.choice(len(reference), size=min(len(reference), 2000), replace=False)
    reference_accuracy = judge.accuracy(reference.x[sample], reference.y[sample])
    return InversionResult(
        reconstruction=rec,
        classes=classes.astype(np.int64),
        class_means=means.reshape(m, *shape).astype(np.float32),
        similarity=np.diag(centred).copy(),
        baseline_similarity=np.diag(base_centred).copy(),
        raw_similarity=raw,
        baseline_raw_similarity=base_raw,
        identification_accuracy=identified,
        baseline_identification_accuracy=base_identified,
        evaluator_accuracy=float(correct.mean()),
        evaluator_per_class=_per_class(correct.astype(np.float64), position, m),
        baseline_evaluator_accuracy=float(np.mean(said_start == rec.classes)),
        evaluator_reference_accuracy=reference_accuracy,
        p_value=_permutation_p_value(votes, permutations, rng),
        similarity_p_value=_permutation_p_value(centred, permutations, rng),
        alpha=alpha,
        seconds=rec.seconds + time.perf_counter() - t0,
    )


def invert_classes(
    classifier: GradientClassifier,
    *,
    reference: Dataset,
    auxiliary: Dataset,
    classes: Sequence[int] | None = None,
    restarts: int = 2,
    steps: int = 100,
    step_size: float = 0.05,
    l2_weight: float = 1.0,
    tv_weight: float = 0.0,
    noise: float = 0.1,
    evaluator: Classifier | None = None,
    permutations: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> InversionResult:
    """Reconstruct every class from the prior of the ``auxiliary`` images' mean and score the reconstructions
    against the training data (``reference``): :func:`reconstruct_classes` then :func:`evaluate_inversion`."""
    if auxiliary.schema.input_shape != classifier.input_shape:
        raise InvalidInputError(
            f"Auxiliary images have shape {auxiliary.schema.input_shape}; the model takes {classifier.input_shape}.",
            remedy="Pass held-out data of the model's input shape (e.g. the target's test split).",
        )
    if classes is None:
        classes = [int(c) for c in np.unique(reference.y)]
    rec = reconstruct_classes(classifier, auxiliary.x.mean(axis=0), classes=classes, restarts=restarts, steps=steps,
                              step_size=step_size, l2_weight=l2_weight, tv_weight=tv_weight, noise=noise,
                              seed=seed)  # fmt: skip
    return evaluate_inversion(rec, reference=reference, auxiliary=auxiliary, evaluator=evaluator,
                              permutations=permutations, alpha=alpha, seed=seed)  # fmt: skip
