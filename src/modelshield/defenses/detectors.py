"""Inference-time detection of adversarial inputs by feature squeezing (Xu et al. 2018).

    >>> from modelshield.defenses.detectors import FeatureSqueezingDetector, measure_detector
    >>> detector = FeatureSqueezingDetector().fit(classifier, clean_x, fpr=0.05)  # doctest: +SKIP
    >>> detector.is_adversarial(x)  # doctest: +SKIP
    >>> measure_detector(detector, held_out_clean_x, adversarial_x).auc  # doctest: +SKIP

An adversarial perturbation is fragile: squeezing the input (fewer bits per value, a median filter over
neighbouring pixels, tabular features rounded onto a coarse grid) tends to undo it and moves the model's
prediction a lot, while it barely moves the prediction on a natural input. The score of an input is the largest
L1 distance between the model's probabilities on the input and on each squeezed version; the threshold is the
``1 - fpr`` quantile of the scores of clean inputs. The detector needs only predictions, so it works with any
:class:`~modelshield.models.interface.Classifier`, black-box ones included.

It is a detector of *unaware* attacks: an attacker who knows the squeezers can attack the squeezed model as well
(He et al. 2017). Report its detection rate against the attacks that matter, and its false-positive rate on
held-out clean data (:func:`measure_detector`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, ModelShieldError
from modelshield.models.interface import Classifier, FloatArray

__all__ = ["DetectorMeasurement", "FeatureSqueezingDetector", "NotFittedError", "measure_detector"]


class NotFittedError(ModelShieldError, AttributeError):
    """A detector was used before :meth:`fit`."""

    default_remedy = "Call fit(classifier, clean_x) first."


@dataclass(frozen=True)
class _Squeezer:
    name: str
    bits: int | None = None  # bit-depth reduction to 2**bits levels of the valid range
    median: int | None = None  # median filter of this window over the spatial axes


class FeatureSqueezingDetector:
    """Feature squeezing (Xu et al. 2018) with the squeezers suited to the model's inputs.

    Images (inputs of two or more dimensions, channels first): bit-depth reduction to ``bit_depth`` bits and,
    when ``median_size`` is set, a ``median_size`` x ``median_size`` median filter (set either to None to leave it
    out). Xu et al. use 1 bit and a 2x2 median for 28x28 MNIST; on 8x8 images (zoo:digits-cnn) a median filter
    changes clean predictions as much as adversarial ones and 1 bit erases the digit, so the default is 3 bits
    alone: against PGD at ε=0.1 it detects 96% of the successful examples at a 5% false-positive rate (AUC 0.99).
    Tabular inputs (one dimension): every feature rounded onto a grid of ``tabular_bins`` levels across its range;
    ``bit_depth`` and ``median_size`` do not apply. Value ranges come from the classifier's ``clip_values``, else
    from the clean data passed to :meth:`fit`.

    Learned attributes: ``classifier_``, ``threshold_``, ``low_``, ``high_``, ``clean_scores_``.
    """

    def __init__(self, *, bit_depth: int | None = 3, median_size: int | None = None, tabular_bins: int = 8) -> None:
        if bit_depth is not None and not 1 <= bit_depth <= 16:
            raise InvalidParameterError(f"bit_depth must lie in 1..16 or be None, not {bit_depth}.")
        if median_size is not None and median_size < 2:
            raise InvalidParameterError(f"median_size must be at least 2 or None, not {median_size}.")
        if tabular_bins < 2:
            raise InvalidParameterError(f"tabular_bins must be at least 2, not {tabular_bins}.")
        self.bit_depth = bit_depth
        self.median_size = median_size
        self.tabular_bins = tabular_bins

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(self, classifier: Classifier, clean_x: ArrayLike, *, fpr: float = 0.05) -> FeatureSqueezingDetector:
        """Choose the threshold so that a share ``fpr`` of ``clean_x`` is flagged; returns ``self``."""
        if not 0.0 < fpr < 1.0:
            raise InvalidParameterError(f"fpr must lie strictly between 0 and 1, not {fpr}.")
        x = classifier.validate_input(clean_x)
        if len(x) == 0:
            raise InvalidInputError("fit needs at least one clean input.")
        if classifier.clip_values is not None:
            low = np.broadcast_to(np.asarray(classifier.clip_values.low, np.float32), classifier.input_shape)
            high = np.broadcast_to(np.asarray(classifier.clip_values.high, np.float32), classifier.input_shape)
        else:
            low, high = x.min(axis=0), x.max(axis=0)
        image = len(classifier.input_shape) >= 2
        squeezers = [_Squeezer(f"bit-depth-{self.bit_depth}", bits=self.bit_depth)] if image and self.bit_depth else []
        if image and self.median_size:
            squeezers.append(_Squeezer(f"median-{self.median_size}x{self.median_size}", median=self.median_size))
        if not image:
            squeezers.append(_Squeezer(f"grid-{self.tabular_bins}", bits=None))
        if not squeezers:
            raise InvalidParameterError("Every squeezer is switched off.", remedy="Set bit_depth or median_size.")
        self.classifier_ = classifier
        self.low_ = np.array(low, np.float32)
        self.high_ = np.array(high, np.float32)
        self.squeezers_ = tuple(squeezers)
        scores = self.score(x)
        self.clean_scores_ = scores
        # The (1 - fpr) quantile, taken upward so that at most a share fpr of these scores lies strictly above it.
        self.threshold_ = float(np.quantile(scores, 1.0 - fpr, method="higher"))
        self.fpr_ = fpr
        return self

    def _fitted(self) -> Classifier:
        if not hasattr(self, "classifier_"):
            raise NotFittedError("This FeatureSqueezingDetector is not fitted yet.")
        classifier: Classifier = self.classifier_
        return classifier

    # -- squeezers -------------------------------------------------------------------------------------------------
    def squeeze(self, x: FloatArray, squeezer: str) -> FloatArray:
        """``x`` squeezed by the fitted squeezer named ``squeezer`` (see ``squeezers_``)."""
        self._fitted()
        by_name = {s.name: s for s in self.squeezers_}
        if squeezer not in by_name:
            raise InvalidParameterError(f"Unknown squeezer {squeezer!r}.", remedy=f"Use one of: {', '.join(by_name)}.")
        s = by_name[squeezer]
        low, high = self.low_, self.high_
        width = np.where(high > low, high - low, 1.0).astype(np.float32)
        if s.median is not None:
            from scipy.ndimage import median_filter

            size = (1,) * (x.ndim - 2) + (s.median, s.median)
            return np.asarray(median_filter(x, size=size, mode="reflect"), np.float32)
        levels = (2**s.bits - 1) if s.bits is not None else self.tabular_bins - 1
        unit = np.clip((x - low) / width, 0.0, 1.0)
        return np.asarray(low + np.round(unit * levels) / levels * width, np.float32)

    # -- scoring ---------------------------------------------------------------------------------------------------
    def score(self, x: ArrayLike) -> NDArray[np.float64]:
        """Per input, the largest L1 distance between the probabilities on ``x`` and on a squeezed ``x`` (0..2)."""
        classifier = self._fitted()
        arr = classifier.validate_input(x)
        proba = classifier.predict_proba(arr).astype(np.float64)
        scores = np.zeros(len(arr))
        for s in self.squeezers_:
            squeezed = classifier.predict_proba(self.squeeze(arr, s.name)).astype(np.float64)
            scores = np.maximum(scores, np.abs(proba - squeezed).sum(axis=1))
        return scores

    def is_adversarial(self, x: ArrayLike) -> NDArray[np.bool_]:
        """Per input, whether its score exceeds the threshold chosen by :meth:`fit`."""
        return np.asarray(self.score(x) > self.threshold_)

    def __repr__(self) -> str:
        fitted = f", threshold_={self.threshold_:.4g}" if hasattr(self, "threshold_") else ""
        return (
            f"FeatureSqueezingDetector(bit_depth={self.bit_depth}, median_size={self.median_size}, "
            f"tabular_bins={self.tabular_bins}{fitted})"
        )


class DetectorMeasurement(NamedTuple):
    """How well a fitted detector separates adversarial from clean inputs."""

    detection_rate: float  # share of the adversarial inputs flagged
    false_positive_rate: float  # share of the clean inputs flagged
    auc: float  # ROC AUC of the score (threshold-free); 0.5 is chance


def measure_detector(
    detector: FeatureSqueezingDetector, clean_x: ArrayLike, adversarial_x: ArrayLike
) -> DetectorMeasurement:
    """Detection rate on ``adversarial_x``, false-positive rate on ``clean_x`` and the ROC AUC over both.

    Pass clean inputs the detector was *not* fitted on, and only adversarial inputs that fool the model (an
    attack that failed left nothing to detect).
    """
    from sklearn.metrics import roc_auc_score

    clean = detector.score(clean_x)
    adv = detector.score(adversarial_x)
    if len(clean) == 0 or len(adv) == 0:
        raise InvalidInputError("measure_detector needs at least one clean and one adversarial input.")
    labels = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    auc = float(roc_auc_score(labels, np.r_[clean, adv]))
    threshold = detector.threshold_
    return DetectorMeasurement(
        detection_rate=float(np.mean(adv > threshold)),
        false_positive_rate=float(np.mean(clean > threshold)),
        auc=auc if math.isfinite(auc) else math.nan,
    )
