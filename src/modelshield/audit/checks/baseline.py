"""The ``baseline`` check: clean accuracy, calibration and the train/test gap that every attack result is read against.

    >>> from modelshield.audit.checks.baseline import expected_calibration_error
    >>> import numpy as np
    >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])), 3)
    0.15
    >>> from modelshield.audit.checks.baseline import BASELINE, BaselineMeasurement, TrainFit
    >>> m = BaselineMeasurement(test_accuracy=0.8, balanced_accuracy=0.8, expected_calibration_error=0.05,
    ...                         test_loss=0.5, test_samples=100, recall=(0.8, 0.8), label_names=("a", "b"),
    ...                         train=TrainFit(accuracy=0.99, loss=0.05, samples=100))
    >>> [(f.id, f.severity.value) for f in BASELINE.judge(m)]
    [('baseline.performance', 'info'), ('baseline.generalization-gap', 'medium')]

Findings: ``baseline.performance`` (info: accuracy, balanced accuracy, per-class recall, expected calibration
error) and ``baseline.generalization-gap`` when the model does clearly better on its training data than on unseen
data — the signal membership inference feeds on. Severity: low from an accuracy gap of 0.05, medium from 0.15
(:data:`GAP_THRESHOLDS`); low also when the mean loss on unseen data exceeds the training loss by 0.1 nats and
at least twofold (:data:`LOSS_GAP_LOW`). The membership-inference check measures the actual leak.

``baseline.below-chance`` (high) when the balanced accuracy lies below chance, ``1 / n_classes``, by more than
sampling noise explains: predictions unrelated to the labels fall that low with probability at most
:data:`CHANCE_FALSE_ALARM` (Hoeffding's bound for the balanced accuracy, a weighted sum of independent per-record
hits; :func:`chance_margin`). A model that does worse than guessing almost always has its labels in another order
than the data's, and every other check then reads inverted labels.

:meth:`BaselineCheck.measure` predicts on at most :attr:`BaselineSettings.samples` test (and training) records:
1,000 (quick), 5,000 (standard) or 50,000 (thorough); :meth:`BaselineCheck.judge` applies the rules above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity

__all__ = [
    "BASELINE",
    "CHANCE_FALSE_ALARM",
    "GAP_THRESHOLDS",
    "LOSS_GAP_LOW",
    "BaselineCheck",
    "BaselineMeasurement",
    "BaselineSettings",
    "TrainFit",
    "chance_margin",
    "expected_calibration_error",
    "gap_severity",
]

#: Accuracy gap (train minus test) at which the generalisation-gap finding reaches each severity.
GAP_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.15, Severity.MEDIUM), (0.05, Severity.LOW))

#: Mean cross-entropy gap (test minus train, in nats) from which a confident fit of the training data alone is
#: reported as low severity, when test loss is also at least twice the train loss.
LOSS_GAP_LOW = 0.1

#: The most often that a model whose predictions are unrelated to the labels is reported as below chance.
CHANCE_FALSE_ALARM = 0.001


def expected_calibration_error(proba: NDArray[np.floating], y: NDArray[np.integer], n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al., 2017)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return float(total / len(y)) if len(y) else float("nan")


def chance_margin(support: Sequence[int], false_alarm: float = CHANCE_FALSE_ALARM) -> float:
    """How far below its mean the balanced accuracy of predictions unrelated to the labels falls with probability at
    most ``false_alarm``, for ``support[k]`` test records of class ``k`` (classes without records left out).

    The balanced accuracy is a sum of independent hits, record ``i`` weighing ``1 / (K * n_k)`` for the ``K``
    classes present; Hoeffding's inequality bounds its lower tail by ``exp(-2 t^2 / sum of squared weights)``.
    """
    counts = np.asarray([n for n in support if n > 0], dtype=np.float64)
    if len(counts) == 0:
        return float("inf")
    squared_weights = float(np.sum(1.0 / counts)) / len(counts) ** 2
    return float(np.sqrt(np.log(1.0 / false_alarm) * squared_weights / 2.0))


def _mean_loss(proba: NDArray[np.floating], y: NDArray[np.integer]) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def _sample(
    x: NDArray[np.float32], y: NDArray[np.int64], limit: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    if len(x) <= limit:
        return x, y
    idx = np.sort(rng.choice(len(x), size=limit, replace=False))
    return x[idx], y[idx]


@dataclass(frozen=True)
class BaselineSettings:
    """What a budget buys the baseline check."""

    samples: int  # most test records, and most training records, the model is asked about


@dataclass(frozen=True)
class TrainFit:
    """How the model fits (a sample of) its training data."""

    accuracy: float
    loss: float  # mean cross-entropy, nats
    samples: int


@dataclass(frozen=True)
class BaselineMeasurement:
    """Clean test performance, and the fit of the training data when the target has it."""

    test_accuracy: float
    balanced_accuracy: float
    expected_calibration_error: float
    test_loss: float  # mean cross-entropy, nats
    test_samples: int
    recall: tuple[float, ...]  # per class (NaN for a class absent from the sample)
    label_names: tuple[str, ...]
    train: TrainFit | None = None
    support: tuple[int, ...] = ()  # test records per class in the sample; the below-chance rule needs them


def gap_severity(accuracy_gap: float, train_loss: float, test_loss: float) -> Severity | None:
    """The generalisation-gap finding's severity (:data:`GAP_THRESHOLDS`, :data:`LOSS_GAP_LOW`); None: no finding."""
    severity = next((s for threshold, s in GAP_THRESHOLDS if accuracy_gap >= threshold), None)
    if severity is None and test_loss - train_loss >= LOSS_GAP_LOW and test_loss >= 2 * train_loss:
        severity = Severity.LOW
    return severity


class BaselineCheck(Check[BaselineSettings, BaselineMeasurement]):
    """Clean accuracy, per-class recall, calibration, and the train/test gap."""

    name = "baseline"
    title = "Clean performance and generalisation"
    description = "Clean accuracy, per-class recall, calibration, and the train/test gap."
    budgets: Mapping[Budget, BaselineSettings] = MappingProxyType(
        {
            Budget.QUICK: BaselineSettings(samples=1_000),
            Budget.STANDARD: BaselineSettings(samples=5_000),
            Budget.THOROUGH: BaselineSettings(samples=50_000),
        }
    )

    def measure(self, context: CheckContext, settings: BaselineSettings) -> BaselineMeasurement:
        """Predict on a sample of the test set (and of the training set, when known)."""
        target, clf = context.target, context.target.classifier
        x, y = _sample(target.test.x, target.test.y, settings.samples, context.rng)
        proba = clf.predict_proba(x)
        pred = proba.argmax(axis=1)
        recall = tuple(
            float(np.mean(pred[y == k] == k)) if np.any(y == k) else float("nan") for k in range(clf.n_classes)
        )
        train = None
        if target.train is not None:
            xt, yt = _sample(target.train.x, target.train.y, settings.samples, context.rng)
            proba_t = clf.predict_proba(xt)
            train = TrainFit(
                accuracy=float(np.mean(proba_t.argmax(axis=1) == yt)), loss=_mean_loss(proba_t, yt), samples=len(yt)
            )
        return BaselineMeasurement(
            test_accuracy=float(np.mean(pred == y)),
            balanced_accuracy=float(np.nanmean(recall)),
            expected_calibration_error=expected_calibration_error(proba, y),
            test_loss=_mean_loss(proba, y),
            test_samples=len(y),
            recall=recall,
            label_names=tuple(target.test.label_names),
            train=train,
            support=tuple(int(n) for n in np.bincount(y, minlength=clf.n_classes)),
        )

    def judge(self, measurement: BaselineMeasurement) -> Sequence[Finding]:
        """``baseline.performance`` (info), and ``baseline.generalization-gap`` rated by :func:`gap_severity`."""
        m = measurement
        accuracy, balanced, ece, test_loss = (
            m.test_accuracy,
            m.balanced_accuracy,
            m.expected_calibration_error,
            m.test_loss,
        )
        metrics: dict[str, JSONValue] = {
            "test_accuracy": accuracy,
            "balanced_accuracy": balanced,
            "expected_calibration_error": ece,
            "test_loss": test_loss,
            "test_samples": m.test_samples,
        }
        if m.train is not None:
            metrics.update(
                train_accuracy=m.train.accuracy,
                train_loss=m.train.loss,
                accuracy_gap=m.train.accuracy - accuracy,
                train_samples=m.train.samples,
            )
        findings = [
            Finding(
                id="baseline.performance",
                check=self.name,
                title=f"Clean test accuracy {accuracy:.1%}",
                severity=Severity.INFO,
                description=(
                    f"On {m.test_samples} test inputs the model is right {accuracy:.1%} of the time (balanced "
                    f"accuracy {balanced:.1%}); expected calibration error {ece:.3f}. Robust accuracies are read "
                    "against this."
                ),
                metrics=metrics,
                charts=(
                    Chart(
                        title="Recall per class (clean test data)",
                        kind="bar",
                        x=m.label_names,
                        series={"recall": m.recall},
                        x_label="class",
                        y_label="recall",
                        y_range=(0.0, 1.0),
                    ),
                ),
            )
        ]
        below = self._below_chance(m)
        if below is not None:
            findings.append(below)
        if m.train is None:
            return findings
        gap = m.train.accuracy - accuracy
        train_loss = m.train.loss
        severity = gap_severity(gap, train_loss, test_loss)
        if severity is not None:
            loss_gap = test_loss - train_loss
            findings.append(
                Finding(
                    id="baseline.generalization-gap",
                    check=self.name,
                    title=(
                        f"Model fits its training data much better than unseen data (accuracy gap {gap:.1%}, "
                        f"loss gap {loss_gap:.3f})"
                    ),
                    severity=severity,
                    description=(
                        f"Train accuracy {m.train.accuracy:.1%} against test accuracy {accuracy:.1%}; "
                        f"mean loss {train_loss:.3f} on training data against {test_loss:.3f} on test "
                        "data. Over-fitting is what membership-inference attacks exploit to tell members apart."
                    ),
                    remediation=(
                        "Regularise (weight decay, early stopping, data augmentation), or train with differential "
                        "privacy (DP-SGD); then run the membership check to measure the leak."
                    ),
                    owasp=OwaspMl.ML04,
                    atlas=("AML.T0024.000",),
                    metrics={
                        "accuracy_gap": gap,
                        "loss_gap": loss_gap,
                        "train_loss": train_loss,
                        "test_loss": test_loss,
                    },
                )
            )
        return findings

    def _below_chance(self, m: BaselineMeasurement) -> Finding | None:
        """``baseline.below-chance`` when the balanced accuracy is below chance by more than :func:`chance_margin`."""
        if not m.support:
            return None
        chance = 1.0 / len(m.support)
        margin = chance_margin(m.support)
        if not m.balanced_accuracy < chance - margin:
            return None
        return Finding(
            id="baseline.below-chance",
            check=self.name,
            title=f"Worse than guessing ({m.balanced_accuracy:.1%} balanced accuracy): labels probably misaligned",
            severity=Severity.HIGH,
            description=(
                f"On {m.test_samples} test inputs the model's balanced accuracy is {m.balanced_accuracy:.1%}, below "
                f"the {chance:.1%} that guessing reaches by more than sampling noise explains (margin {margin:.1%}; "
                f"a model unrelated to the labels falls this low with probability under {CHANCE_FALSE_ALARM:.1%}). "
                "A model that does worse than guessing almost always reads its classes in another order than the "
                "data names them, and every other check then measures against wrong labels."
            ),
            remediation=(
                "Check that the label column is the right one and that the data's classes match the model's "
                "outputs in order: with the CLI, name the class of each output with --classes, output 0 first."
            ),
            metrics={
                "balanced_accuracy": m.balanced_accuracy,
                "chance": chance,
                "margin": margin,
                "test_samples": m.test_samples,
            },
        )


BASELINE = BaselineCheck()
