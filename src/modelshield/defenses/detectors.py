"""Inference-time detection of adversarial inputs by feature squeezing (Xu et al. 2018).

    >>> from modelshield.defenses.detectors import FeatureSqueezingDetector, measure_detector
    >>> detector = FeatureSqueezingDetector(fpr=0.05).fit(classifier, clean_x)  # doctest: +SKIP
    >>> detector.is_adversarial(x)  # doctest: +SKIP
    >>> detector.inspect(GuardRequest("client-7", x)).actions  # doctest: +SKIP
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

The detector is an input-stage :class:`~modelshield.defenses.interface.InferenceGuard`: :meth:`inspect` flags (or
blocks, with ``on_alarm``) the rows of a request whose score exceeds the threshold, at ``1 + len(squeezers_)``
model queries per input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.defenses.interface import Action, InputDetector, upper_quantile
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray

__all__ = ["DetectorMeasurement", "FeatureSqueezingDetector", "measure_detector"]


@dataclass(frozen=True)
class _Squeezer:
    name: str
    bits: int | None = None  # bit-depth reduction to 2**bits levels of the valid range
    median: int | None = None  # median filter of this window over the spatial axes


class FeatureSqueezingDetector(InputDetector):
    """Feature squeezing (Xu et al. 2018) with the squeezers suited to the model's inputs.

    Images (inputs of two or more dimensions, channels first): bit-depth reduction to ``bit_depth`` bits and,
    when ``median_size`` is set, a ``median_size`` x ``median_size`` median filter (set either to None to leave it
    out). Xu et al. use 1 bit and a 2x2 median for 28x28 MNIST; on 8x8 images (zoo:digits-cnn) a median filter
    changes clean predictions as much as adversarial ones and 1 bit erases the digit, so the default is 3 bits
    alone: against PGD at ε=0.1 it detects 96% of the successful examples at a 5% false-positive rate (AUC 0.99).
    Tabular inputs (one dimension): every feature rounded onto a grid of ``tabular_bins`` levels across its range;
    ``bit_depth`` and ``median_size`` do not apply. Value ranges come from the classifier's ``clip_values``, else
    from the clean data passed to :meth:`fit`.

    The threshold is the ``1 - fpr`` quantile of the scores of the clean reference inputs; a row above it gets
    ``on_alarm`` (flag, or block) from :meth:`inspect`.

    Learned attributes: ``classifier_``, ``threshold_``, ``low_``, ``high_``, ``squeezers_``, ``clean_scores_``.
    """

    def __init__(
        self,
        *,
        bit_depth: int | None = 3,
        median_size: int | None = None,
        tabular_bins: int = 8,
        fpr: float = 0.05,
        on_alarm: Action | str = Action.FLAG,
    ) -> None:
        if bit_depth is not None and not 1 <= bit_depth <= 16:
            raise InvalidParameterError(f"bit_depth must lie in 1..16 or be None, not {bit_depth}.")
        if median_size is not None and median_size < 2:
            raise InvalidParameterError(f"median_size must be at least 2 or None, not {median_size}.")
        if tabular_bins < 2:
            raise InvalidParameterError(f"tabular_bins must be at least 2, not {tabular_bins}.")
        super().__init__(fpr=fpr, on_alarm=on_alarm)
        self.bit_depth = bit_depth
        self.median_size = median_size
        self.tabular_bins = tabular_bins

    @property
    def name(self) -> str:
        return (
            f"feature-squeezing(bit_depth={self.bit_depth}, median_size={self.median_size}, "
            f"tabular_bins={self.tabular_bins})"
        )

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Choose the threshold so that a share ``fpr`` of the clean ``reference_x`` is flagged; returns ``self``.

        The detector is deterministic: ``reference_y`` and ``seed`` are accepted for the guard protocol and unused.
        """
        x = classifier.validate_input(reference_x)
        if len(x) == 0:
            raise InvalidInputError("fit needs at least one clean input.")
        if classifier.clip_values is not None:
            low = np.broadcast_to(np.asarray(classifier.clip_values.low, np.float32), classifier.input_shape)
            high = np.broadcast_to(np.asarray(classifier.clip_values.high, np.float32), classifier.input_shape)
        else:
            low, high = x.min(axis=0), x.max(axis=0)
        squeezers = self._squeezers(image=len(classifier.input_shape) >= 2)
        if not squeezers:
            raise InvalidParameterError("Every squeezer is switched off.", remedy="Set bit_depth or median_size.")
        self.classifier_ = classifier
        self.low_ = np.array(low, np.float32)
        self.high_ = np.array(high, np.float32)
        self.squeezers_ = squeezers
        scores = self._score(classifier, x)
        self.clean_scores_ = scores
        self.threshold_ = upper_quantile(scores, self.fpr)
        return self

    def _squeezers(self, *, image: bool) -> tuple[_Squeezer, ...]:
        """The squeezers for image inputs (two or more dimensions) or for tabular inputs."""
        squeezers = [_Squeezer(f"bit-depth-{self.bit_depth}", bits=self.bit_depth)] if image and self.bit_depth else []
        if image and self.median_size:
            squeezers.append(_Squeezer(f"median-{self.median_size}x{self.median_size}", median=self.median_size))
        if not image:
            squeezers.append(_Squeezer(f"grid-{self.tabular_bins}", bits=None))
        return tuple(squeezers)

    def queries_per_input(self) -> int:
        """One query for the input and one per squeezer."""
        self._fitted()
        return 1 + len(self.squeezers_)

    # -- squeezers -------------------------------------------------------------------------------------------------
    def squeeze(self, x: FloatArray, squeezer: str) -> FloatArray:
        """``x`` squeezed by the fitted squeezer named ``squeezer`` (see ``squeezers_``)."""
        self._fitted()
        by_name = {s.name: s for s in self.squeezers_}
        if squeezer not in by_name:
            raise InvalidParameterError(f"Unknown squeezer {squeezer!r}.", remedy=f"Use one of: {', '.join(by_name)}.")
        return self._squeeze(x, by_name[squeezer])

    def _squeeze(self, x: FloatArray, s: _Squeezer) -> FloatArray:
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
        return self._score(self._fitted(), x)

    def _score(self, classifier: Classifier, x: ArrayLike) -> NDArray[np.float64]:
        arr = classifier.validate_input(x)
        proba = classifier.predict_proba(arr).astype(np.float64)
        scores = np.zeros(len(arr))
        for s in self.squeezers_:
            squeezed = classifier.predict_proba(self._squeeze(arr, s)).astype(np.float64)
            scores = np.maximum(scores, np.abs(proba - squeezed).sum(axis=1))
        return scores

    def is_adversarial(self, x: ArrayLike) -> NDArray[np.bool_]:
        """Per input, whether its score exceeds the threshold chosen by :meth:`fit`."""
        scores = self.score(x)
        return np.asarray(scores > self.threshold_)

    def __repr__(self) -> str:
        fitted = f", threshold_={self.threshold_:.4g}" if hasattr(self, "threshold_") else ""
        return (
            f"FeatureSqueezingDetector(bit_depth={self.bit_depth}, median_size={self.median_size}, "
            f"tabular_bins={self.tabular_bins}, fpr={self.fpr}, on_alarm={self.on_alarm.value}{fitted})"
        )


class DetectorMeasurement(NamedTuple):
    """How well a fitted detector separates adversarial from clean inputs."""

    detection_rate: float  # share of the adversarial inputs flagged
    false_positive_rate: float  # share of the clean inputs flagged
    auc: float  # ROC AUC of the score (threshold-free); 0.5 is chance


def measure_detector(detector: InputDetector, clean_x: ArrayLike, adversarial_x: ArrayLike) -> DetectorMeasurement:
    """Detection rate on ``adversarial_x``, false-positive rate on ``clean_x`` and the ROC AUC over both, for any
    fitted input detector (feature squeezing, STRIP).

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
