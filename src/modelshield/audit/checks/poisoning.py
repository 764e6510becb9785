"""The ``poisoning`` check: how little poisoned training data it takes to plant a backdoor or degrade the model, and
whether sanitising the data would have caught it.

    >>> from modelshield.audit.checks.poisoning import POISONING, FRACTIONS
    >>> POISONING.name, FRACTIONS["quick"][-1]
    ('poisoning', 0.05)

The check retrains the target's recipe (``Target.trainer``) on poisoned copies of its own training data:

- **Backdoor** (BadNets): a 3x3 patch at the range's top value in the bottom-right corner for images, or three
  features set to their 99th percentile for tabular data, on records of other classes relabelled as one target
  class (drawn with the check's seed). Success: triggered test inputs of other classes classified as the target.
- **Random label flipping**: success is the model's test error.

Each gets a susceptibility curve (one model per poison fraction, :data:`FRACTIONS`, repeated per budget), and at
:data:`DETECTION_FRACTION` poison the data are run through :func:`~modelshield.defenses.sanitize.sanitize` (with
a model trained on the poisoned data for activation clustering, when the recipe is PyTorch) and the model is
retrained on what is left: the sanitiser's precision, recall and clean records flagged, and the attack's success
after sanitising, are in the finding.

Severity, :data:`BACKDOOR_RULES` and :data:`FLIP_RULES`:

- backdoor: high when at most 1% poison reaches 90% attack success with clean accuracy within 2 points, medium at
  most 5%, low when a larger measured fraction does, info otherwise;
- label flipping: by the clean-accuracy loss at 10% flipped labels: high >= 10 points, medium >= 5, low >= 2.

Severity describes the model's susceptibility, not the sanitiser; the finding says whether sanitising the data
would have removed the backdoor.

PyTorch image classifiers are also scanned for a backdoor already in them (Neural Cleanse on test inputs):
``poisoning.backdoor-scan`` is high when a class has an anomalously small reversed trigger, info otherwise
(OWASP ML10, ATLAS AML.T0018).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.audit.interface import Check, CheckContext, Requirement
from modelshield.findings import Chart, Finding, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.attacks.poisoning import PoisonAttack, SusceptibilityCurve
    from modelshield.data.interface import Dataset
    from modelshield.models.retrain import Trainer
    from modelshield.target import Target

__all__ = ["BACKDOOR_RULES", "DETECTION_FRACTION", "FLIP_RULES", "FRACTIONS", "POISONING"]

#: Poison fractions of the susceptibility curves, per budget.
FRACTIONS: Mapping[str, tuple[float, ...]] = {
    "quick": (0.005, 0.01, 0.02, 0.05),
    "standard": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
    "thorough": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
}
FLIP_FRACTIONS: Mapping[str, tuple[float, ...]] = {
    "quick": (0.1,),
    "standard": (0.05, 0.1, 0.2),
    "thorough": (0.05, 0.1, 0.2, 0.3),
}
REPEATS: Mapping[str, int] = {"quick": 1, "standard": 2, "thorough": 3}
DETECTION_FRACTION = 0.05  # backdoor poison share the sanitiser is measured on
SCAN_INPUTS = 300  # clean test inputs Neural Cleanse optimises and checks its triggers on
FLIP_DETECTION_FRACTION = 0.1
GOAL = 0.9  # attack success that counts as a working backdoor
MAX_ACCURACY_DROP = 0.02  # ... while clean accuracy stays within this of the clean model's
#: (largest fraction reaching GOAL, severity), in order; any other measured fraction: low.
BACKDOOR_RULES: tuple[tuple[float, Severity], ...] = ((0.01, Severity.HIGH), (0.05, Severity.MEDIUM))
#: (clean-accuracy loss at 10% flipped labels, severity), in order.
FLIP_RULES: tuple[tuple[float, Severity], ...] = (
    (0.10, Severity.HIGH),
    (0.05, Severity.MEDIUM),
    (0.02, Severity.LOW),
)
_ATLAS_BACKDOOR = ("AML.T0020", "AML.T0018")
_ATLAS_FLIP = ("AML.T0020",)


def _backdoor(target: Target, rng: np.random.Generator, seed: int) -> PoisonAttack:
    from modelshield.attacks.poisoning import Backdoor, feature_trigger, patch_trigger

    train = target.train
    assert train is not None  # noqa: S101 - the check requires training data
    shape = train.schema.input_shape
    goal = int(rng.integers(train.n_classes))
    if len(shape) == 3 and min(shape[1:]) >= 4:
        bounds = target.classifier.clip_values
        low = float(np.min(bounds.low)) if bounds is not None else float(train.x.min())
        high = float(np.max(bounds.high)) if bounds is not None else float(train.x.max())
        size = 3 if min(shape[1:]) >= 6 else 2
        trigger = patch_trigger(shape, shape="square", size=size, position="bottom-right", low=low, high=high)
        return Backdoor(trigger, goal)
    n_features = min(3, max(1, int(np.sum(train.x.reshape(len(train), -1).std(axis=0) > 0))))
    names = train.schema.names
    return Backdoor(feature_trigger(train.x, n_features=n_features, quantile=0.99, names=names, seed=seed), goal)


def _curve_chart(curve: SusceptibilityCurve, title: str, success: str) -> Chart:
    return Chart(
        title=title,
        kind="line",
        x=tuple(round(100 * p.fraction, 3) for p in curve.points),
        series={
            success: tuple(round(p.success_rate, 4) for p in curve.points),
            "clean accuracy": tuple(round(p.clean_accuracy, 4) for p in curve.points),
        },
        x_label="poisoned training records (%)",
        y_label="rate",
        y_range=(0.0, 1.0),
    )


def _curve_metrics(curve: SusceptibilityCurve) -> list[dict[str, Any]]:
    return [
        {
            "fraction": p.fraction,
            "records": p.n_poison,
            "success_rate": round(p.success_rate, 4),
            "success_interval": [round(v, 4) for v in p.success_interval],
            "clean_accuracy": round(p.clean_accuracy, 4),
        }
        for p in curve.points
    ]


def _after(trainer: Trainer, clean: Dataset, test: Dataset, attack: PoisonAttack, seed: int) -> tuple[float, float]:
    """Retrain on ``clean``: (attack success, clean accuracy) on the test split."""
    inputs = attack.success_inputs(test)
    x = np.concatenate([clean.x, test.x, inputs.x])
    y = np.concatenate([clean.y, test.y, np.zeros(len(inputs.y), np.int64)])
    mask = np.zeros(len(x), bool)
    mask[: len(clean)] = True
    predicted = trainer.fit_log_proba(x, y, mask[None], n_classes=clean.n_classes, seed=seed)[0].argmax(axis=-1)
    accuracy = float(np.mean(predicted[len(clean) : len(clean) + len(test)] == test.y))
    success = float(np.mean(inputs.successes(predicted[len(clean) + len(test) :])))
    return success, accuracy


def _sanitiser(
    target: Target, attack: PoisonAttack, fraction: float, seed: int, *, model_detectors: bool = True
) -> dict[str, Any]:
    """Poison at ``fraction``, sanitise (with a model trained on the poisoned data when the recipe is PyTorch),
    retrain on what is left; the sanitiser's quality and the attack's success afterwards."""
    from modelshield.attacks.poisoning import poison
    from modelshield.defenses.sanitize import detection_quality, sanitize
    from modelshield.models.retrain import TorchTrainer

    train, trainer = target.train, target.trainer
    assert train is not None  # noqa: S101 - the check requires it
    assert trainer is not None  # noqa: S101 - the check requires it
    poisoned = poison(train, attack, fraction, seed=seed)
    data = poisoned.dataset
    classifier = None
    if model_detectors and isinstance(trainer, TorchTrainer):
        from modelshield.models.torch_classifier import TorchClassifier

        module = trainer.fit_modules(data.x, data.y, np.ones((1, len(data)), bool), n_classes=data.n_classes,
                                     seed=seed)[0]  # fmt: skip
        classifier = TorchClassifier(
            module,
            n_classes=data.n_classes,
            input_shape=data.schema.input_shape,
            clip_values=target.classifier.clip_values,
            device="cpu",
        )
    methods = None if model_detectors else ["label-consistency"]
    result = sanitize(data, classifier=classifier, trainer=trainer, methods=methods, seed=seed)
    quality = detection_quality(result.removed, poisoned.poisoned)
    success, accuracy = _after(trainer, result.clean, target.test, attack, seed)
    return {
        "fraction": fraction,
        "poisoned_records": poisoned.n_poisoned,
        "detectors": [d.method for d in result.detections],
        "precision": round(quality.precision, 4),
        "recall": round(quality.recall, 4),
        "clean_flagged": round(quality.clean_flagged, 4),
        "removed": quality.flagged,
        "success_after": round(success, 4),
        "clean_accuracy_after": round(accuracy, 4),
        "per_detector": {
            d.method: {
                "recall": round(q.recall, 4),
                "clean_flagged": round(q.clean_flagged, 4),
                "auc": round(q.auc, 4),
            }
            for d in result.detections
            for q in [detection_quality(d, poisoned.poisoned)]
        },
    }


def _backdoor_severity(needed: float | None, measured: bool) -> Severity:
    if needed is None:
        return Severity.LOW if measured else Severity.INFO
    for limit, severity in BACKDOOR_RULES:
        if needed <= limit:
            return severity
    return Severity.LOW


def _flip_severity(loss: float) -> Severity:
    for limit, severity in FLIP_RULES:
        if loss >= limit:
            return severity
    return Severity.INFO


def _sanitiser_sentence(s: Mapping[str, Any], what: str) -> str:
    return (
        f"Sanitising a training set with {100 * s['fraction']:g}% {what} ({', '.join(s['detectors'])}) removed "
        f"{100 * s['recall']:.0f}% of the poison and {100 * s['clean_flagged']:.1f}% of the clean records; "
        f"retrained on the rest, the attack succeeds {100 * s['success_after']:.1f}% of the time "
        f"(clean accuracy {100 * s['clean_accuracy_after']:.1f}%)."
    )


def poisoning_findings(ctx: CheckContext) -> Sequence[Finding]:
    from modelshield.attacks.poisoning import LabelFlip, susceptibility

    target = ctx.target
    train, trainer = target.train, target.trainer
    assert train is not None  # noqa: S101 - the check requires it
    assert trainer is not None  # noqa: S101 - the check requires it
    budget = ctx.budget.value
    repeats = REPEATS[budget]
    findings = []

    backdoor = _backdoor(target, ctx.rng, ctx.seed)
    eligible = float(np.mean(backdoor.eligible(train)))
    fractions = tuple(f for f in FRACTIONS[budget] if f < eligible)
    curve = susceptibility(trainer, train, target.test, backdoor, fractions, repeats=repeats, seed=ctx.seed)
    needed = curve.fraction_needed(GOAL, max_accuracy_drop=MAX_ACCURACY_DROP)
    severity = _backdoor_severity(needed, measured=len(curve.points) > 1)
    sanitiser = _sanitiser(target, backdoor, DETECTION_FRACTION, ctx.seed)
    base = curve.baseline
    reach = (
        f"{100 * needed:g}% poisoned training records ({round(needed * len(train))} of {len(train)}) give a working "
        f"backdoor: triggered inputs reach the target class at least {100 * GOAL:.0f}% of the time"
        if needed is not None
        else f"no measured poison fraction (up to {100 * fractions[-1]:g}%) reached {100 * GOAL:.0f}% success "
        f"while keeping clean accuracy within {100 * MAX_ACCURACY_DROP:g} points"
    )
    findings.append(
        Finding(
            id="poisoning.backdoor",
            check="poisoning",
            title="Backdoor from poisoned training data",
            severity=severity,
            description=(
                f"Retraining the model's recipe on poisoned copies of its training data ({backdoor.describe()}): "
                f"{reach}. Without poison the trigger sends {100 * base.success_rate:.1f}% of inputs to the "
                f"target; clean accuracy {100 * base.clean_accuracy:.1f}%. " + _sanitiser_sentence(sanitiser, "poison")
            ),
            remediation=(
                "Treat training data as an attack surface: record its provenance (`modelshield data manifest`), "
                "validate new batches (`modelshield data validate`), and sanitise it before training "
                "(`modelshield data sanitize DATA --model MODEL`); scan trained models for backdoors."
            ),
            owasp=OwaspMl.ML02,
            atlas=_ATLAS_BACKDOOR,
            metrics={
                "attack": backdoor.describe(),
                "fraction_needed": needed,
                "goal": GOAL,
                "max_accuracy_drop": MAX_ACCURACY_DROP,
                "curve": _curve_metrics(curve),  # type: ignore[dict-item]
                "repeats": repeats,
                "sanitiser": sanitiser,
            },
            charts=(_curve_chart(curve, "Backdoor success against poison fraction", "attack success"),),
        )
    )

    flip = LabelFlip()
    flips = susceptibility(trainer, train, target.test, flip, FLIP_FRACTIONS[budget], repeats=repeats, seed=ctx.seed)
    at_ten = next(p for p in flips.points if p.fraction == FLIP_DETECTION_FRACTION)
    loss = flips.baseline.clean_accuracy - at_ten.clean_accuracy
    # flipped labels carry no trigger: the out-of-fold label check is the detector for them
    flip_sanitiser = _sanitiser(target, flip, FLIP_DETECTION_FRACTION, ctx.seed, model_detectors=False)
    findings.append(
        Finding(
            id="poisoning.label-flip",
            check="poisoning",
            title="Accuracy loss from flipped training labels",
            severity=_flip_severity(loss),
            description=(
                f"Flipping {100 * FLIP_DETECTION_FRACTION:g}% of the training labels at random costs "
                f"{100 * loss:.1f} points of clean accuracy ({100 * flips.baseline.clean_accuracy:.1f}% -> "
                f"{100 * at_ten.clean_accuracy:.1f}%). " + _sanitiser_sentence(flip_sanitiser, "flipped labels")
            ),
            remediation=(
                "Check labels at ingestion: `modelshield data sanitize` with the training recipe finds labels that "
                "models trained on the other records do not believe (confident learning)."
            ),
            owasp=OwaspMl.ML02,
            atlas=_ATLAS_FLIP,
            metrics={
                "accuracy_loss_at_10pct": round(loss, 4),
                "curve": _curve_metrics(flips),  # type: ignore[dict-item]
                "repeats": repeats,
                "sanitiser": flip_sanitiser,
            },
            charts=(_curve_chart(flips, "Label flipping against poison fraction", "test error"),),
        )
    )
    scan = _backdoor_scan(ctx)
    if scan is not None:
        findings.append(scan)
    return findings


def _backdoor_scan(ctx: CheckContext) -> Finding | None:
    """Neural Cleanse on the target's own model (PyTorch image classifiers): is a backdoor already in it?"""
    from modelshield.models.torch_classifier import TorchClassifier

    classifier = ctx.target.classifier
    if not isinstance(classifier, TorchClassifier) or len(classifier.input_shape) != 3:
        return None
    from modelshield.defenses.backdoor import neural_cleanse

    x, _ = ctx.sample_test(limit=SCAN_INPUTS)
    result = neural_cleanse(classifier, x, seed=ctx.seed)
    flagged = list(result.flagged)
    metrics: dict[str, Any] = {
        "flagged_classes": flagged,
        "anomaly_index": [round(float(a), 3) for a in result.anomaly_index],
        "mask_l1": [round(float(n), 3) for n in result.mask_norms],
        "reversed_trigger_success": [round(float(a), 4) for a in result.attack_success],
        "threshold": result.threshold,
        "inputs": result.n_optimised + result.n_held_out,
    }
    names = classifier.n_classes
    chart = Chart(
        title="Smallest trigger to each class (Neural Cleanse)",
        kind="bar",
        x=tuple(str(c) for c in range(names)),
        series={"mask L1 (pixels)": tuple(round(float(n), 3) for n in result.mask_norms)},
        x_label="class",
        y_label="mask L1",
    )
    if flagged:
        description = (
            f"Neural Cleanse finds an anomalously small trigger to class(es) {', '.join(map(str, flagged))} "
            f"(anomaly index {max(result.anomaly_index[c] for c in flagged):.1f} > {result.threshold:g}): a "
            "shortcut a backdoor would make. The model may have been trained on poisoned data."
        )
    else:
        description = (
            f"Neural Cleanse finds no class with an anomalously small trigger (largest anomaly index "
            f"{float(result.anomaly_index.max()):.1f}, threshold {result.threshold:g}). It detects patch triggers; "
            "blended or input-specific triggers can pass it."
        )
    return Finding(
        id="poisoning.backdoor-scan",
        check="poisoning",
        title="Backdoor scan of the model (Neural Cleanse)",
        severity=Severity.HIGH if flagged else Severity.INFO,
        description=description,
        remediation=(
            "Do not deploy a flagged model: retrain it on data sanitised with `modelshield data sanitize`, and screen "
            "inputs at inference with STRIP."
            if flagged
            else "Keep scanning models after every training run."
        ),
        owasp=OwaspMl.ML10,
        atlas=("AML.T0018",),
        metrics=metrics,
        charts=(chart,),
    )


POISONING = Check(
    name="poisoning",
    title="Data poisoning",
    description="Backdoor and label-flipping susceptibility curves; the sanitiser's recall and the attack after it.",
    run=poisoning_findings,
    requires=frozenset({Requirement.TRAIN_DATA, Requirement.TRAINER}),
)
