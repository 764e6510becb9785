"""The ``baseline`` check: clean accuracy, calibration and the train/test gap that every attack result is read against.

    >>> from modelshield.audit.checks.baseline import expected_calibration_error
    >>> import numpy as np
    >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])), 3)
    0.15

Findings: ``baseline.performance`` (info: accuracy, balanced accuracy, per-class recall, expected calibration
error) and ``baseline.generalization-gap`` when the model does clearly better on its training data than on unseen
data — the signal membership inference feeds on. Severity: low from an accuracy gap of 0.05, medium from 0.15
(:data:`GAP_THRESHOLDS`); low also when the mean loss on unseen data exceeds the training loss by 0.1 nats and
at least twofold (:data:`LOSS_GAP_LOW`). The membership-inference check measures the actual leak.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from modelshield.audit.interface import Check, CheckContext
from modelshield.findings import Chart, Finding, OwaspMl, Severity

__all__ = ["BASELINE", "GAP_THRESHOLDS", "LOSS_GAP_LOW", "expected_calibration_error"]

#: Accuracy gap (train minus test) at which the generalisation-gap finding reaches each severity.
GAP_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.15, Severity.MEDIUM), (0.05, Severity.LOW))

#: Mean cross-entropy gap (test minus train, in nats) from which a confident fit of the training data alone is
#: reported as low severity, when test loss is also at least twice the train loss.
LOSS_GAP_LOW = 0.1


def expected_calibration_error(proba: NDArray[np.floating], y: NDArray[np.integer], n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al., 2017)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return total / len(y) if len(y) else float("nan")


def _mean_loss(proba: NDArray[np.floating], y: NDArray[np.integer]) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def _sample(
    x: NDArray[np.float32], y: NDArray[np.int64], limit: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    if len(x) <= limit:
        return x, y
    idx = np.sort(rng.choice(len(x), size=limit, replace=False))
    return x[idx], y[idx]


def baseline_findings(context: CheckContext) -> Sequence[Finding]:
    target, clf = context.target, context.target.classifier
    limit = context.budget.samples * 5
    x, y = _sample(target.test.x, target.test.y, limit, context.rng)
    proba = clf.predict_proba(x)
    pred = proba.argmax(axis=1)
    labels = target.test.label_names
    recall = [float(np.mean(pred[y == k] == k)) if np.any(y == k) else float("nan") for k in range(clf.n_classes)]
    accuracy = float(np.mean(pred == y))
    balanced = float(np.nanmean(recall))
    ece = expected_calibration_error(proba, y)
    test_loss = _mean_loss(proba, y)
    metrics: dict[str, float | int] = {
        "test_accuracy": accuracy,
        "balanced_accuracy": balanced,
        "expected_calibration_error": ece,
        "test_loss": test_loss,
        "test_samples": len(y),
    }
    findings = []
    gap: float | None = None
    if target.train is not None:
        xt, yt = _sample(target.train.x, target.train.y, limit, context.rng)
        proba_t = clf.predict_proba(xt)
        train_accuracy = float(np.mean(proba_t.argmax(axis=1) == yt))
        train_loss = _mean_loss(proba_t, yt)
        gap = train_accuracy - accuracy
        metrics.update(train_accuracy=train_accuracy, train_loss=train_loss, accuracy_gap=gap, train_samples=len(yt))
    findings.append(
        Finding(
            id="baseline.performance",
            check="baseline",
            title=f"Clean test accuracy {accuracy:.1%}",
            severity=Severity.INFO,
            description=(
                f"On {len(y)} test inputs the model is right {accuracy:.1%} of the time (balanced accuracy "
                f"{balanced:.1%}); expected calibration error {ece:.3f}. Robust accuracies are read against this."
            ),
            metrics=metrics,
            charts=(
                Chart(
                    title="Recall per class (clean test data)",
                    kind="bar",
                    x=tuple(labels),
                    series={"recall": tuple(recall)},
                    x_label="class",
                    y_label="recall",
                    y_range=(0.0, 1.0),
                ),
            ),
        )
    )
    if gap is not None:
        severity = next((s for threshold, s in GAP_THRESHOLDS if gap >= threshold), None)
        loss_gap = test_loss - float(metrics["train_loss"])
        if severity is None and loss_gap >= LOSS_GAP_LOW and test_loss >= 2 * float(metrics["train_loss"]):
            severity = Severity.LOW
        if severity is not None:
            findings.append(
                Finding(
                    id="baseline.generalization-gap",
                    check="baseline",
                    title=(
                        f"Model fits its training data much better than unseen data (accuracy gap {gap:.1%}, "
                        f"loss gap {loss_gap:.3f})"
                    ),
                    severity=severity,
                    description=(
                        f"Train accuracy {metrics['train_accuracy']:.1%} against test accuracy {accuracy:.1%}; "
                        f"mean loss {metrics['train_loss']:.3f} on training data against {test_loss:.3f} on test "
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
                        "train_loss": metrics["train_loss"],
                        "test_loss": test_loss,
                    },
                )
            )
    return findings


BASELINE = Check(
    name="baseline",
    title="Clean performance and generalisation",
    description="Clean accuracy, per-class recall, calibration, and the train/test gap.",
    run=baseline_findings,
)
