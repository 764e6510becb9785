"""The ``inversion`` check: what the model gives away about its training data beyond what an attacker knows anyway.

    >>> from modelshield.audit.checks.inversion import INVERSION, ATTRIBUTE_THRESHOLDS
    >>> ATTRIBUTE_THRESHOLDS[0]
    (0.2, <Severity.HIGH: 'high'>)

- Image models with gradients: MI-Face class reconstruction
  (:func:`~modelshield.attacks.inversion.invert_classes`), scored by an evaluator trained on the test split (data
  the target never saw) against the model-free baseline (the attacker's prior image plus noise), with a
  permutation test. Finding ``inversion.class-reconstruction``; the reconstructions go into
  ``evidence["examples"]`` in the evasion check's image format (``clean``: the class's mean training image,
  ``adversarial``: the reconstruction, grey levels in [0, 1]).
- Tabular models (any adapter): attribute inference
  (:func:`~modelshield.attacks.attribute.infer_attribute`) of each feature the schema marks sensitive, or, when
  none is, of the feature with the highest mutual information with the label (the finding says which). The
  attacker's data is the test split; members are a sample of the training split. Finding
  ``inversion.attribute-inference`` per feature.
- Image models without gradients get an ``inversion.not-assessed`` info finding.

Severity (documented thresholds):

- Attribute inference, from the leakage on training records (accuracy of the best attack minus that of the best
  baseline, :data:`ATTRIBUTE_THRESHOLDS`): info when its bootstrap interval reaches 0; else high from 0.2, medium
  from 0.1, low below.
- Class reconstruction (:data:`RECONSTRUCTION_THRESHOLDS`): info when the permutation test does not reject
  (p >= 0.05); else medium when the evaluator recognises at least half of the reconstructions, low below. It stays
  at most medium: a class representative is what a class looks like on average, not one person's record; where
  each class is one person (face recognition), treat it as high.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.findings import Chart, Finding, OwaspMl, Severity


def _untimed(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without wall-clock times: a finding must be the same on every run with the same seed."""
    return {k: _untimed(v) if isinstance(v, dict) else v for k, v in data.items() if k != "seconds"}


__all__ = ["ATTRIBUTE_THRESHOLDS", "INVERSION", "RECONSTRUCTION_THRESHOLDS"]

#: Leakage on training records (accuracy points over the best baseline) from which each severity applies,
#: provided its interval excludes zero.
ATTRIBUTE_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.2, Severity.HIGH), (0.1, Severity.MEDIUM))
#: Evaluator accuracy on reconstructions from which each severity applies, provided the permutation test rejects.
RECONSTRUCTION_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.MEDIUM),)
_ATLAS = ("AML.T0024.001",)
_MAX_FEATURES = 5  # sensitive features assessed at most, in schema order
_SETTINGS = {  # per budget: reconstruction (restarts, steps), attribute inference (forest trees, folds, resamples)
    Budget.QUICK: {"restarts": 1, "steps": 50, "trees": 30, "folds": 3, "bootstrap": 1000},
    Budget.STANDARD: {"restarts": 2, "steps": 100, "trees": 100, "folds": 5, "bootstrap": 2000},
    Budget.THOROUGH: {"restarts": 4, "steps": 300, "trees": 300, "folds": 5, "bootstrap": 5000},
}


def _is_image(context: CheckContext) -> bool:
    classifier = context.target.classifier
    bounds = classifier.clip_values
    return (
        len(classifier.input_shape) > 1
        and bounds is not None
        and np.ptp(np.asarray(bounds.low)) == 0
        and np.ptp(np.asarray(bounds.high)) == 0
    )


def inversion_findings(context: CheckContext) -> Sequence[Finding]:
    if _is_image(context):
        if not context.target.classifier.white_box:
            return [_not_assessed(context)]
        return [_reconstruction_finding(context)]
    return _attribute_findings(context)


# -- images ----------------------------------------------------------------------------------------------------------


def _not_assessed(context: CheckContext) -> Finding:
    return Finding(
        id="inversion.not-assessed",
        check="inversion",
        title="Model inversion was not assessed: the image model exposes no gradients",
        severity=Severity.INFO,
        description=f"{type(context.target.classifier).__name__} is black-box; class reconstruction needs gradients.",
        remediation="Audit the white-box model (e.g. the PyTorch module) to measure what it reveals of its classes.",
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
    )


def _grey(image: np.ndarray, low: float, span: float) -> list[object]:
    plane = (np.asarray(image, np.float64).reshape(-1, *image.shape[-2:])[0] - low) / span
    return np.round(np.clip(plane, 0.0, 1.0), 3).tolist()  # type: ignore[no-any-return]


def _reconstruction_finding(context: CheckContext) -> Finding:
    from modelshield.attacks.inversion import invert_classes
    from modelshield.models.interface import GradientClassifier

    target = context.target
    classifier = target.classifier
    assert isinstance(classifier, GradientClassifier)  # noqa: S101 - white_box was checked by the caller
    settings = _SETTINGS[context.budget]
    reference = target.train if target.train is not None else target.test
    result = invert_classes(classifier, reference=reference, auxiliary=target.test,
                            restarts=int(settings["restarts"]), steps=int(settings["steps"]),
                            seed=context.seed)  # fmt: skip
    names = target.test.label_names
    if not result.significant:
        severity = Severity.INFO
    else:
        severity = next((s for limit, s in RECONSTRUCTION_THRESHOLDS if result.evaluator_accuracy >= limit),
                        Severity.LOW)  # fmt: skip
    bounds = classifier.clip_values
    assert bounds is not None  # noqa: S101 - part of the image test
    low = float(np.min(bounds.low))
    span = (float(np.max(bounds.high)) - low) or 1.0
    rec = result.reconstruction
    examples: list[object] = []
    for i, c in enumerate(result.classes):
        row = int(np.flatnonzero(rec.classes == c)[0])
        examples.append({
            "label": f"{names[int(c)]}: training mean | reconstruction",
            "clean": _grey(result.class_means[i], low, span),
            "adversarial": _grey(rec.x[row], low, span),
            "caption": "Training class means (left) and reconstructions from the model (right)",
        })  # fmt: skip
    class_labels = tuple(names[int(c)] for c in result.classes)
    similarity = Chart(
        title="Similarity of each class's reconstruction to its training mean (overall mean removed)",
        kind="bar",
        x=class_labels,
        series={
            "reconstruction": tuple(float(v) for v in result.similarity),
            "baseline (prior + noise)": tuple(float(v) for v in result.baseline_similarity),
        },
        x_label="class",
        y_label="correlation",
        y_range=(-1.0, 1.0),
    )
    recognised = Chart(
        title="Share recognised as their class by a model that never saw the target",
        kind="bar",
        x=("reconstructions", "baseline", "chance"),
        series={"evaluator accuracy": (result.evaluator_accuracy, result.baseline_evaluator_accuracy, result.chance)},
        y_range=(0.0, 1.0),
    )
    source = "training" if target.train is not None else "test (no training data was given)"
    metrics: dict[str, object] = {
        "evaluator_accuracy": round(result.evaluator_accuracy, 4),
        "baseline_evaluator_accuracy": round(result.baseline_evaluator_accuracy, 4),
        "chance": round(result.chance, 4),
        "evaluator_reference_accuracy": round(result.evaluator_reference_accuracy, 4),
        "p_value": round(result.p_value, 5),
        "similarity_p_value": round(result.similarity_p_value, 5),
        "mean_similarity": round(float(result.similarity.mean()), 4),
        "baseline_mean_similarity": round(float(result.baseline_similarity.mean()), 4),
        "identification_accuracy": round(result.identification_accuracy, 4),
        "model_confidence": round(float(rec.confidence.mean()), 4),
        "reconstructions": len(rec.x),
        "queries": rec.queries,
        "attack": rec.attack,
    }
    return Finding(
        id="inversion.class-reconstruction",
        check="inversion",
        title=f"Gradient inversion reconstructs recognisable class images: {result.evaluator_accuracy:.0%} "
        f"recognised (baseline {result.baseline_evaluator_accuracy:.0%})",
        severity=severity,
        description=(
            f"Starting from the mean of held-out images, gradient descent on the model's class scores produced one "
            f"image per class and restart. A classifier that never saw the target (trained on the test split; "
            f"{result.evaluator_reference_accuracy:.0%} accurate on real images) recognises "
            f"{result.evaluator_accuracy:.0%} of them as their class, against "
            f"{result.baseline_evaluator_accuracy:.0%} for the same starting points without the model and "
            f"{result.chance:.0%} by chance (permutation test p = {result.p_value:.3g}). Their similarity to each "
            f"class's mean {source} image is {float(result.similarity.mean()):.2f} on average, against "
            f"{float(result.baseline_similarity.mean()):.2f} for the baseline."
        ),
        remediation=(
            "Expose only what clients need (labels or rounded scores, not gradients or full probabilities), keep "
            "the weights private, and train with differential privacy (DP-SGD) where classes are individuals."
        ),
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
        metrics=metrics,  # type: ignore[arg-type]
        evidence={"examples": examples, "result": _untimed(result.to_dict())},  # type: ignore[dict-item]
        charts=(similarity, recognised),
    )


# -- tabular ---------------------------------------------------------------------------------------------------------


def _attribute_findings(context: CheckContext) -> list[Finding]:
    from sklearn.ensemble import RandomForestClassifier

    from modelshield.attacks.attribute import infer_attribute, most_informative_feature, sensitive_features

    target = context.target
    settings = _SETTINGS[context.budget]
    schema = target.test.schema
    chosen = sensitive_features(schema)[:_MAX_FEATURES]
    reason = "marked sensitive in the schema"
    if not chosen:
        chosen = (most_informative_feature(target.test, seed=context.seed),)
        reason = (
            "no feature is marked sensitive, so the one with the highest mutual information with the label was chosen"
        )
    auxiliary = target.test
    if len(auxiliary) > context.budget.samples:
        auxiliary = auxiliary.subset(np.sort(context.rng.choice(len(auxiliary), context.budget.samples, replace=False)))
    members = None
    if target.train is not None:
        k = min(len(target.train), context.budget.samples)
        members = target.train.subset(np.sort(context.rng.choice(len(target.train), k, replace=False)))
    learner = RandomForestClassifier(n_estimators=int(settings["trees"]), min_samples_leaf=2,
                                     random_state=context.seed, n_jobs=1)  # fmt: skip
    findings = []
    for index in chosen:
        result = infer_attribute(target.classifier, feature=int(index), auxiliary=auxiliary, members=members,
                                 learner=learner, folds=int(settings["folds"]), bootstrap=int(settings["bootstrap"]),
                                 seed=context.seed)  # fmt: skip
        findings.append(_attribute_finding(result, reason))
    return findings


def _attribute_finding(result: object, reason: str) -> Finding:
    from modelshield.attacks.attribute import METHODS, AttributeInferenceResult

    assert isinstance(result, AttributeInferenceResult)  # noqa: S101 - the caller passes one
    group = result.members if result.members is not None else result.non_members
    who = "training records" if result.members is not None else "held-out records (no training data was given)"
    if not group.significant:
        severity = Severity.INFO
    else:
        severity = next((s for limit, s in ATTRIBUTE_THRESHOLDS if group.leakage >= limit), Severity.LOW)
    unit = f"{len(result.values)} quantile bins" if result.continuous else f"{len(result.values)} values"
    series = {"non-members": tuple(result.non_members.accuracy[m] for m in METHODS)}
    if result.members is not None:
        series = {"members": tuple(result.members.accuracy[m] for m in METHODS), **series}
    chart = Chart(
        title=f"Inferring {result.feature!r}: attacks against baselines",
        kind="bar",
        x=METHODS,
        series=series,
        x_label="method (attacks first)",
        y_label="accuracy",
        y_range=(0.0, 1.0),
    )
    low, high = group.leakage_interval
    metrics: dict[str, object] = {
        "feature": result.feature,
        "feature_choice": reason,
        "attack": group.attack,
        "baseline": group.baseline,
        "attack_accuracy": round(group.accuracy[group.attack], 4),
        "baseline_accuracy": round(group.accuracy[group.baseline], 4),
        "leakage": round(group.leakage, 4),
        "leakage_interval": [round(low, 4), round(high, 4)],
        "non_member_leakage": round(result.non_members.leakage, 4),
        "non_member_leakage_interval": [round(v, 4) for v in result.non_members.leakage_interval],
        "chance": round(result.chance, 4),
        "records": group.n,
        "queries": result.queries,
    }
    verdict = (
        f"beats the best baseline ({group.baseline}, {group.accuracy[group.baseline]:.0%}) by {group.leakage:.0%}"
        if group.significant
        else f"does no better than the best baseline ({group.baseline}, {group.accuracy[group.baseline]:.0%})"
    )
    return Finding(
        id="inversion.attribute-inference",
        check="inversion",
        title=(
            f"The model's answers reveal {result.feature!r} (+{group.leakage:.0%} over baseline)"
            if group.significant
            else f"No measurable attribute leakage of {result.feature!r}"
        ),
        severity=severity,
        description=(
            f"{result.feature!r} ({reason}; inferred over {unit}). Knowing a record's other features and the "
            f"model's probabilities, the best attack ({group.attack}) infers it for {group.accuracy[group.attack]:.0%} "
            f"of {group.n} {who}, which {verdict}; {result.confidence:.0%} interval of the leakage "
            f"[{low:.2f}, {high:.2f}]. The baselines use the same auxiliary data (the test split) without what the "
            "model's answer says about this feature."
        ),
        remediation=(
            "Return labels or coarse scores instead of full probabilities, drop or coarsen the sensitive feature "
            "if the task allows, and regularise or train with differential privacy to limit memorisation."
        ),
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
        metrics=metrics,  # type: ignore[arg-type]
        evidence={"result": _untimed(result.to_dict())},
        charts=(chart,),
    )


INVERSION = Check(
    name="inversion",
    title="Model inversion and attribute inference",
    description="Class reconstruction from gradients (image models) or inference of sensitive features from the "
    "model's answers (tabular models), each against a baseline that does not use the model.",
    run=inversion_findings,
)
