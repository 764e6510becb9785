"""The ``inversion`` check: what the model gives away about its training data beyond what an attacker knows anyway.

    >>> from modelshield.audit.checks.inversion import INVERSION, ATTRIBUTE_THRESHOLDS, InversionMeasurement
    >>> ATTRIBUTE_THRESHOLDS[0]
    (0.2, <Severity.HIGH: 'high'>)
    >>> [f.id for f in INVERSION.judge(InversionMeasurement(model="SklearnClassifier"))]
    ['inversion.not-assessed']

:meth:`InversionCheck.measure` does one of three things:

- Image models with gradients: MI-Face class reconstruction
  (:func:`~modelshield.attacks.inversion.invert_classes`), scored by an evaluator trained on the test split (data
  the target never saw) against the model-free baseline (the attacker's prior image plus noise), with a
  permutation test. Finding ``inversion.class-reconstruction``; the reconstructions go into
  ``evidence["examples"]`` in the evasion check's image format (``clean``: the class's mean training image,
  ``adversarial``: the reconstruction, grey levels in [0, 1]).
- Tabular models (any adapter): attribute inference
  (:func:`~modelshield.attacks.attribute.infer_attribute`) of each feature the schema marks sensitive (at most
  five), or, when none is, of the feature with the highest mutual information with the label (the finding says
  which). The attacker's data is a sample of the test split; members are a sample of the training split. Finding
  ``inversion.attribute-inference`` per feature.
- Image models without gradients: nothing; the judgement is an ``inversion.not-assessed`` info finding.

What each budget buys is an :class:`InversionSettings`: reconstruction restarts and steps, the attribute attack's
forest size, folds and bootstrap resamples, and the most records sampled (200 quick, 1000 standard, 10000
thorough).

:meth:`InversionCheck.judge` sets severities from documented thresholds:

- Attribute inference, from the leakage on training records (accuracy of the best attack minus that of the best
  baseline, :data:`ATTRIBUTE_THRESHOLDS`): info when its bootstrap interval reaches 0; else high from 0.2, medium
  from 0.1, low below.
- Class reconstruction (:data:`RECONSTRUCTION_THRESHOLDS`): info when the permutation test does not reject
  (p >= alpha, 0.05); else medium when the evaluator recognises at least half of the reconstructions, low below.
  It stays at most medium: a class representative is what a class looks like on average, not one person's
  record; where each class is one person (face recognition), treat it as high.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from modelshield.attacks.attribute import METHODS, AttributeInferenceResult
from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity
from modelshield.models.interface import Classifier, GradientClassifier

if TYPE_CHECKING:
    from modelshield.attacks.inversion import InversionResult

__all__ = [
    "ATTRIBUTE_THRESHOLDS",
    "INVERSION",
    "RECONSTRUCTION_THRESHOLDS",
    "AttributeMeasurement",
    "InversionCheck",
    "InversionMeasurement",
    "InversionSettings",
    "ReconstructedClass",
    "ReconstructionMeasurement",
    "attribute_severity",
    "reconstruction_severity",
]

#: Leakage on training records (accuracy points over the best baseline) from which each severity applies,
#: provided its interval excludes zero; below the last: low.
ATTRIBUTE_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.2, Severity.HIGH), (0.1, Severity.MEDIUM))
#: Evaluator accuracy on reconstructions from which each severity applies, provided the permutation test rejects;
#: below the last: low.
RECONSTRUCTION_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.MEDIUM),)
_ATLAS = ("AML.T0024.001",)
_MAX_FEATURES = 5  # sensitive features assessed at most, in schema order

Image = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class InversionSettings:
    """What a budget buys the inversion check."""

    restarts: int  # class reconstruction: restarts per class
    steps: int  # ... and gradient steps per restart
    trees: int  # attribute inference: trees of the attack's random forest
    folds: int  # ... cross-fitting folds
    bootstrap: int  # ... bootstrap resamples of the leakage interval
    samples: int  # the most test records (the attacker's data) and training records (members) sampled


_BUDGETS: Mapping[Budget, InversionSettings] = MappingProxyType(
    {
        Budget.QUICK: InversionSettings(restarts=1, steps=50, trees=30, folds=3, bootstrap=1000, samples=200),
        Budget.STANDARD: InversionSettings(restarts=2, steps=100, trees=100, folds=5, bootstrap=2000, samples=1000),
        Budget.THOROUGH: InversionSettings(restarts=4, steps=300, trees=300, folds=5, bootstrap=5000, samples=10000),
    }
)


@dataclass(frozen=True)
class ReconstructedClass:
    """One class: its mean training image and its (first) reconstruction, as 2-D grey levels in [0, 1] (first
    channel), with the per-class figures."""

    label: str
    training_mean: Image
    reconstruction: Image
    similarity: float  # centred correlation with the class mean, mean over restarts
    baseline_similarity: float  # the same for the model-free starting points
    raw_similarity: float
    baseline_raw_similarity: float
    evaluator_accuracy: float  # share of this class's reconstructions the evaluator assigns to it


@dataclass(frozen=True)
class ReconstructionMeasurement:
    """What class reconstruction from gradients achieved, against the model-free baseline."""

    attack: str
    classes: tuple[ReconstructedClass, ...]
    evaluator_accuracy: float  # share of reconstructions an independent classifier assigns to their class
    baseline_evaluator_accuracy: float
    evaluator_reference_accuracy: float  # the evaluator's accuracy on real images (its competence)
    chance: float
    p_value: float  # permutation test of the evaluator accuracy per class
    similarity_p_value: float
    alpha: float  # significance level of the permutation test
    identification_accuracy: float
    baseline_identification_accuracy: float
    model_confidence: float  # the model's mean probability of the class on its reconstructions
    reconstructions: int
    queries: int
    reference: str = "training"  # what the reconstructions were scored against: "training" or "test"

    @property
    def significant(self) -> bool:
        """True when the evaluator recognises the reconstructions better than permuted classes would allow."""
        return self.p_value < self.alpha


@dataclass(frozen=True)
class AttributeMeasurement:
    """Attribute inference of one feature, with why that feature was chosen."""

    result: AttributeInferenceResult
    reason: str


@dataclass(frozen=True)
class InversionMeasurement:
    """Class reconstruction (image models with gradients), attribute inference (tabular models), or neither (an
    image model without gradients: not assessed)."""

    model: str  # the classifier's type, for the not-assessed finding
    reconstruction: ReconstructionMeasurement | None = None
    attributes: tuple[AttributeMeasurement, ...] = ()


def _untimed(data: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """``data`` without wall-clock times: a finding must be the same on every run with the same seed."""
    return {k: _untimed(v) if isinstance(v, dict) else v for k, v in data.items() if k != "seconds"}


def _image_range(classifier: Classifier) -> tuple[float, float] | None:
    """``(low, span)`` of an image model's one input range; None for other models (tabular data)."""
    bounds = classifier.clip_values
    if len(classifier.input_shape) < 2 or bounds is None:
        return None
    low, high = np.asarray(bounds.low), np.asarray(bounds.high)
    if np.ptp(low) != 0 or np.ptp(high) != 0:
        return None
    base = float(np.min(low))
    return base, (float(np.max(high)) - base) or 1.0


def _grey(image: np.ndarray, low: float, span: float) -> Image:
    plane = (np.asarray(image, np.float64).reshape(-1, *image.shape[-2:])[0] - low) / span
    values = np.round(np.clip(plane, 0.0, 1.0), 3)
    return tuple(tuple(float(v) for v in row) for row in values)


def _reconstruction(result: InversionResult, names: Sequence[str], low: float, span: float,
                    reference: str) -> ReconstructionMeasurement:  # fmt: skip
    rec = result.reconstruction
    classes = []
    for i, c in enumerate(result.classes):
        row = int(np.flatnonzero(rec.classes == c)[0])
        classes.append(
            ReconstructedClass(
                label=names[int(c)],
                training_mean=_grey(result.class_means[i], low, span),
                reconstruction=_grey(rec.x[row], low, span),
                similarity=float(result.similarity[i]),
                baseline_similarity=float(result.baseline_similarity[i]),
                raw_similarity=float(result.raw_similarity[i]),
                baseline_raw_similarity=float(result.baseline_raw_similarity[i]),
                evaluator_accuracy=float(result.evaluator_per_class[i]),
            )
        )
    return ReconstructionMeasurement(
        attack=rec.attack,
        classes=tuple(classes),
        evaluator_accuracy=result.evaluator_accuracy,
        baseline_evaluator_accuracy=result.baseline_evaluator_accuracy,
        evaluator_reference_accuracy=result.evaluator_reference_accuracy,
        chance=result.chance,
        p_value=result.p_value,
        similarity_p_value=result.similarity_p_value,
        alpha=result.alpha,
        identification_accuracy=result.identification_accuracy,
        baseline_identification_accuracy=result.baseline_identification_accuracy,
        model_confidence=float(np.mean(rec.confidence)),
        reconstructions=len(rec.x),
        queries=rec.queries,
        reference=reference,
    )


class InversionCheck(Check[InversionSettings, InversionMeasurement]):
    """Class reconstruction from gradients (image models) or inference of sensitive features (tabular models)."""

    name = "inversion"
    title = "Model inversion and attribute inference"
    description = (
        "Class reconstruction from gradients (image models) or inference of sensitive features from the model's "
        "answers (tabular models), each against a baseline that does not use the model."
    )
    budgets: Mapping[Budget, InversionSettings] = _BUDGETS

    def measure(self, context: CheckContext, settings: InversionSettings) -> InversionMeasurement:
        """Reconstruct the classes of an image model with gradients, or infer a tabular model's sensitive
        features; an image model without gradients is left unassessed."""
        classifier = context.target.classifier
        model = type(classifier).__name__
        image = _image_range(classifier)
        if image is None:
            return InversionMeasurement(model=model, attributes=self._attributes(context, settings))
        if not isinstance(classifier, GradientClassifier):
            return InversionMeasurement(model=model)
        return InversionMeasurement(model=model, reconstruction=self._reconstruct(context, classifier, image, settings))

    def _reconstruct(
        self,
        context: CheckContext,
        classifier: GradientClassifier,
        image: tuple[float, float],
        settings: InversionSettings,
    ) -> ReconstructionMeasurement:
        from modelshield.attacks.inversion import invert_classes

        target = context.target
        reference = target.train if target.train is not None else target.test
        result = invert_classes(classifier, reference=reference, auxiliary=target.test, restarts=settings.restarts,
                                steps=settings.steps, seed=context.seed)  # fmt: skip
        low, span = image
        return _reconstruction(result, target.test.label_names, low, span,
                               "training" if target.train is not None else "test")  # fmt: skip

    def _attributes(self, context: CheckContext, settings: InversionSettings) -> tuple[AttributeMeasurement, ...]:
        from sklearn.ensemble import RandomForestClassifier

        from modelshield.attacks.attribute import infer_attribute, most_informative_feature, sensitive_features

        target = context.target
        chosen = sensitive_features(target.test.schema)[:_MAX_FEATURES]
        reason = "marked sensitive in the schema"
        if not chosen:
            chosen = (most_informative_feature(target.test, seed=context.seed),)
            reason = (
                "no feature is marked sensitive, so the one with the highest mutual information with the label "
                "was chosen"
            )
        auxiliary = target.test
        if len(auxiliary) > settings.samples:
            picked = np.sort(context.rng.choice(len(auxiliary), settings.samples, replace=False))
            auxiliary = auxiliary.subset(picked)
        members = None
        if target.train is not None:
            k = min(len(target.train), settings.samples)
            members = target.train.subset(np.sort(context.rng.choice(len(target.train), k, replace=False)))
        learner = RandomForestClassifier(n_estimators=settings.trees, min_samples_leaf=2, random_state=context.seed,
                                         n_jobs=1)  # fmt: skip
        return tuple(
            AttributeMeasurement(
                infer_attribute(
                    target.classifier,
                    feature=int(index),
                    auxiliary=auxiliary,
                    members=members,
                    learner=learner,
                    folds=settings.folds,
                    bootstrap=settings.bootstrap,
                    seed=context.seed,
                ),
                reason,
            )
            for index in chosen
        )

    def judge(self, measurement: InversionMeasurement) -> Sequence[Finding]:
        """A reconstruction finding, one attribute-inference finding per feature, or a not-assessed one."""
        if measurement.reconstruction is not None:
            return [_reconstruction_finding(measurement.reconstruction)]
        if measurement.attributes:
            return [_attribute_finding(a) for a in measurement.attributes]
        return [_not_assessed(measurement.model)]


# -- images ----------------------------------------------------------------------------------------------------------


def _not_assessed(model: str) -> Finding:
    return Finding(
        id="inversion.not-assessed",
        check="inversion",
        title="Model inversion was not assessed: the image model exposes no gradients",
        severity=Severity.INFO,
        description=f"{model} is black-box; class reconstruction needs gradients.",
        remediation="Audit the white-box model (e.g. the PyTorch module) to measure what it reveals of its classes.",
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
    )


def reconstruction_severity(m: ReconstructionMeasurement) -> Severity:
    """Info unless the permutation test rejects; then the first of :data:`RECONSTRUCTION_THRESHOLDS` that the
    evaluator accuracy reaches, else low."""
    if not m.significant:
        return Severity.INFO
    return next((s for limit, s in RECONSTRUCTION_THRESHOLDS if m.evaluator_accuracy >= limit), Severity.LOW)


def _image_json(image: Image) -> list[JSONValue]:
    rows: list[JSONValue] = []
    for row in image:
        values: list[JSONValue] = list(row)
        rows.append(values)
    return rows


def _reconstruction_finding(m: ReconstructionMeasurement) -> Finding:
    examples: list[JSONValue] = [
        {
            "label": f"{c.label}: training mean | reconstruction",
            "clean": _image_json(c.training_mean),
            "adversarial": _image_json(c.reconstruction),
            "caption": "Training class means (left) and reconstructions from the model (right)",
        }
        for c in m.classes
    ]
    labels = tuple(c.label for c in m.classes)
    similarity = Chart(
        title="Similarity of each class's reconstruction to its training mean (overall mean removed)",
        kind="bar",
        x=labels,
        series={
            "reconstruction": tuple(c.similarity for c in m.classes),
            "baseline (prior + noise)": tuple(c.baseline_similarity for c in m.classes),
        },
        x_label="class",
        y_label="correlation",
        y_range=(-1.0, 1.0),
    )
    recognised = Chart(
        title="Share recognised as their class by a model that never saw the target",
        kind="bar",
        x=("reconstructions", "baseline", "chance"),
        series={"evaluator accuracy": (m.evaluator_accuracy, m.baseline_evaluator_accuracy, m.chance)},
        y_range=(0.0, 1.0),
    )
    mean_similarity = float(np.mean([c.similarity for c in m.classes])) if m.classes else float("nan")
    baseline_similarity = float(np.mean([c.baseline_similarity for c in m.classes])) if m.classes else float("nan")
    metrics: dict[str, JSONValue] = {
        "evaluator_accuracy": round(m.evaluator_accuracy, 4),
        "baseline_evaluator_accuracy": round(m.baseline_evaluator_accuracy, 4),
        "chance": round(m.chance, 4),
        "evaluator_reference_accuracy": round(m.evaluator_reference_accuracy, 4),
        "p_value": round(m.p_value, 5),
        "similarity_p_value": round(m.similarity_p_value, 5),
        "mean_similarity": round(mean_similarity, 4),
        "baseline_mean_similarity": round(baseline_similarity, 4),
        "identification_accuracy": round(m.identification_accuracy, 4),
        "model_confidence": round(m.model_confidence, 4),
        "reconstructions": m.reconstructions,
        "queries": m.queries,
        "attack": m.attack,
    }
    result: dict[str, JSONValue] = {
        "attack": m.attack,
        "classes": [*labels],
        "similarity": [c.similarity for c in m.classes],
        "baseline_similarity": [c.baseline_similarity for c in m.classes],
        "raw_similarity": [c.raw_similarity for c in m.classes],
        "baseline_raw_similarity": [c.baseline_raw_similarity for c in m.classes],
        "identification_accuracy": m.identification_accuracy,
        "baseline_identification_accuracy": m.baseline_identification_accuracy,
        "evaluator_accuracy": m.evaluator_accuracy,
        "evaluator_per_class": [c.evaluator_accuracy for c in m.classes],
        "baseline_evaluator_accuracy": m.baseline_evaluator_accuracy,
        "evaluator_reference_accuracy": m.evaluator_reference_accuracy,
        "chance": m.chance,
        "p_value": m.p_value,
        "similarity_p_value": m.similarity_p_value,
        "significant": m.significant,
        "model_confidence": m.model_confidence,
        "queries": m.queries,
    }
    source = "training" if m.reference == "training" else "test (no training data was given)"
    return Finding(
        id="inversion.class-reconstruction",
        check="inversion",
        title=f"Gradient inversion reconstructs recognisable class images: {m.evaluator_accuracy:.0%} "
        f"recognised (baseline {m.baseline_evaluator_accuracy:.0%})",
        severity=reconstruction_severity(m),
        description=(
            f"Starting from the mean of held-out images, gradient descent on the model's class scores produced one "
            f"image per class and restart. A classifier that never saw the target (trained on the test split; "
            f"{m.evaluator_reference_accuracy:.0%} accurate on real images) recognises "
            f"{m.evaluator_accuracy:.0%} of them as their class, against "
            f"{m.baseline_evaluator_accuracy:.0%} for the same starting points without the model and "
            f"{m.chance:.0%} by chance (permutation test p = {m.p_value:.3g}). Their similarity to each "
            f"class's mean {source} image is {mean_similarity:.2f} on average, against "
            f"{baseline_similarity:.2f} for the baseline."
        ),
        remediation=(
            "Expose only what clients need (labels or rounded scores, not gradients or full probabilities), keep "
            "the weights private, and train with differential privacy (DP-SGD) where classes are individuals."
        ),
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
        metrics=metrics,
        evidence={"examples": examples, "result": result},
        charts=(similarity, recognised),
    )


# -- tabular ---------------------------------------------------------------------------------------------------------


def attribute_severity(result: AttributeInferenceResult) -> Severity:
    """Info unless the leakage interval of the decisive group (members, when given) excludes zero; then the first
    of :data:`ATTRIBUTE_THRESHOLDS` the leakage reaches, else low."""
    group = result.decisive
    if not group.significant:
        return Severity.INFO
    return next((s for limit, s in ATTRIBUTE_THRESHOLDS if group.leakage >= limit), Severity.LOW)


def _attribute_finding(measurement: AttributeMeasurement) -> Finding:
    result, reason = measurement.result, measurement.reason
    group = result.decisive
    who = "training records" if result.members is not None else "held-out records (no training data was given)"
    severity = attribute_severity(result)
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
    metrics: dict[str, JSONValue] = {
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
            f"model's probabilities, the best attack ({group.attack}), tried on {group.n} {who}, infers it for "
            f"{group.accuracy[group.attack]:.0%} of them, which {verdict}; {result.confidence:.0%} interval of the "
            f"leakage [{low:.2f}, {high:.2f}]. The baselines use the same auxiliary data (the test split) without "
            "what the model's answer says about this feature."
        ),
        remediation=(
            "Return labels or coarse scores instead of full probabilities, drop or coarsen the sensitive feature "
            "if the task allows, and regularise or train with differential privacy to limit memorisation."
        ),
        owasp=OwaspMl.ML03,
        atlas=_ATLAS,
        metrics=metrics,
        evidence={"result": _untimed(result.to_dict())},
        charts=(chart,),
    )


INVERSION = InversionCheck()
