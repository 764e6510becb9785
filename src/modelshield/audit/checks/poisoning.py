"""The ``poisoning`` check: how little poisoned training data it takes to plant a backdoor or degrade the model, and
whether sanitising the data would have caught it.

    >>> from modelshield.audit.checks.poisoning import POISONING, FRACTIONS, backdoor_severity, flip_severity
    >>> from modelshield.audit.interface import Budget
    >>> POISONING.name, FRACTIONS["quick"][-1], POISONING.settings(Budget.QUICK).repeats
    ('poisoning', 0.05, 1)
    >>> backdoor_severity(0.01, measured=True), flip_severity(0.06)
    (<Severity.HIGH: 'high'>, <Severity.MEDIUM: 'medium'>)

The check retrains the target's recipe (``Target.trainer``) on poisoned copies of its own training data:

- **Backdoor** (BadNets): a 3x3 patch at the range's top value in the bottom-right corner for images, or three
  features set to their 99th percentile for tabular data, on records of other classes relabelled as one target
  class (drawn with the check's seed). Success: triggered test inputs of other classes classified as the target.
- **Random label flipping**: success is the model's test error.

Each gets a susceptibility curve (one model per poison fraction, :data:`FRACTIONS`, repeated per budget), and at
:data:`DETECTION_FRACTION` poison the data are run through :func:`~modelshield.defenses.sanitize.sanitize` (with
a model trained on the poisoned data for the trigger transplant and activation clustering, when the recipe is
PyTorch) and the model is retrained on what is left: the sanitiser's precision, recall and clean records flagged,
and the attack's success after sanitising, are in the finding.

Severity, :data:`BACKDOOR_RULES` and :data:`FLIP_RULES`:

- backdoor: high when at most 1% poison reaches 90% attack success with clean accuracy within 2 points, medium at
  most 5%, low when a larger measured fraction does, info otherwise;
- label flipping: by the clean-accuracy loss at 10% flipped labels: high >= 10 points, medium >= 5, low >= 2.

Severity describes the model's susceptibility, not the sanitiser; the finding says whether sanitising the data
would have removed the backdoor.

The finding also says whether an explanation would have shown the backdoor (:func:`_trigger_attribution`, at the
budgets that sanitise; PyTorch and scikit-learn recipes): triggered test inputs that the model trained with
:data:`DETECTION_FRACTION` poison sends to the target are explained for that class, by the explain check's
explainer for the model (TreeSHAP, integrated gradients, or sampled SHAP), on that model and on the audited one. It
reports the share of the mean |attribution| on the trigger's input values against their share of the input, whether
the top input is a trigger value, and for images a heat map beside a triggered input.

:meth:`PoisoningCheck.measure` does the work (retraining, sanitising, scanning) under the budget's
:class:`PoisoningSettings` (the fractions and repeats above) and returns a :class:`PoisoningMeasurement`;
:meth:`PoisoningCheck.judge` applies the rules (:func:`backdoor_severity`, :func:`flip_severity`).

PyTorch image classifiers are also scanned for a backdoor already in them (Neural Cleanse on test inputs):
``poisoning.backdoor-scan`` is high when a class has an anomalously small reversed trigger, info otherwise
(OWASP ML10, ATLAS AML.T0018).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from modelshield.attacks.poisoning import SusceptibilityCurve
from modelshield.audit.interface import Budget, Check, CheckContext, Requirement
from modelshield.errors import InvalidParameterError
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from modelshield.attacks.poisoning import Backdoor, PoisonAttack
    from modelshield.data.interface import Dataset
    from modelshield.models.interface import Classifier
    from modelshield.models.retrain import Trainer
    from modelshield.target import Target

__all__ = [
    "BACKDOOR_RULES",
    "DETECTION_FRACTION",
    "FLIP_FRACTIONS",
    "FLIP_RULES",
    "FRACTIONS",
    "POISONING",
    "REPEATS",
    "BackdoorScan",
    "DetectorQuality",
    "PoisoningCheck",
    "PoisoningMeasurement",
    "PoisoningSettings",
    "SanitiserMeasurement",
    "TriggerAttribution",
    "backdoor_severity",
    "flip_severity",
]

#: Poison fractions of the susceptibility curves, per budget.
FRACTIONS: Mapping[str, tuple[float, ...]] = {
    "quick": (0.01, 0.05),  # a first look: the two fractions the severity rules turn on
    "standard": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
    "thorough": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
}
FLIP_FRACTIONS: Mapping[str, tuple[float, ...]] = {
    "quick": (0.1,),
    "standard": (0.05, 0.1, 0.2),
    "thorough": (0.05, 0.1, 0.2, 0.3),
}
REPEATS: Mapping[str, int] = {"quick": 1, "standard": 2, "thorough": 3}
#: Whether a budget measures the sanitiser too (it retrains on sanitised data: the heaviest part of the check).
SANITISE: Mapping[str, bool] = {"quick": False, "standard": True, "thorough": True}
DETECTION_FRACTION = 0.05  # backdoor poison share the sanitiser is measured on
SCAN_INPUTS = 300  # clean test inputs Neural Cleanse optimises and checks its triggers on
TRIGGER_RECORDS = 100  # triggered test inputs explained on the backdoored and the audited model
TRIGGER_IG_STEPS = 32  # points on the integrated-gradients path
TRIGGER_SAMPLED_RECORDS = 20  # ... when only sampled SHAP can explain a model
TRIGGER_BACKGROUND = 10  # background rows of sampled SHAP
TRIGGER_MAX_QUERIES = 200_000  # queries sampled SHAP may spend per model
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


@dataclass(frozen=True)
class PoisoningSettings:
    """What a budget buys the poisoning check: the curves' poison fractions and models per fraction."""

    fractions: tuple[float, ...]  # backdoor poison fractions (those above the eligible share are skipped)
    flip_fractions: tuple[float, ...]  # label-flipping fractions; must include FLIP_DETECTION_FRACTION
    repeats: int  # models per fraction, each with its own poison draw
    sanitise: bool = True  # measure the sanitiser on the poisoned data, and the attack after it

    def __post_init__(self) -> None:
        if FLIP_DETECTION_FRACTION not in self.flip_fractions:
            raise InvalidParameterError(
                f"flip_fractions must include {FLIP_DETECTION_FRACTION:g}, the fraction label flipping is judged at."
            )
        if self.repeats < 1:
            raise InvalidParameterError(f"repeats must be at least 1, not {self.repeats}.")


@dataclass(frozen=True)
class DetectorQuality:
    """One detector of the sanitiser against the truth."""

    method: str
    recall: float
    clean_flagged: float
    auc: float


@dataclass(frozen=True)
class SanitiserMeasurement:
    """Sanitising a poisoned training set, and the attack after retraining on what is left."""

    fraction: float  # poison fraction of the training set that was sanitised
    poisoned_records: int
    precision: float
    recall: float
    clean_flagged: float  # share of clean records removed
    removed: int
    success_after: float  # attack success of the model retrained on the sanitised data
    clean_accuracy_after: float
    detectors: tuple[DetectorQuality, ...]


@dataclass(frozen=True)
class BackdoorScan:
    """Neural Cleanse on the target's own model: per class (indexed by class), and the classes it flags."""

    flagged: tuple[int, ...]
    anomaly_index: tuple[float, ...]
    mask_norms: tuple[float, ...]  # L1 norm of each class's reversed trigger mask, pixels
    attack_success: tuple[float, ...]  # the reversed trigger's success on held-out inputs
    threshold: float
    inputs: int


@dataclass(frozen=True)
class TriggerAttribution:
    """Explanations of triggered test inputs, against where the trigger is (:func:`_trigger_attribution`).

    ``share_backdoored``: the share of the mean |attribution| that falls on the trigger's input values, on the
    model trained with :data:`DETECTION_FRACTION` poison; ``share_audited``: the same inputs explained on the
    audited model (None when its explainer cannot afford them: a black box with many input values); ``area``: the
    trigger's share of the input values, what an explanation blind to the trigger would put on it. For images,
    ``heat`` is the backdoored model's mean |attribution| per pixel (channels summed, scaled to [0, 1]) and
    ``example`` one triggered input (grey levels in [0, 1]).
    """

    explainer: str
    records: int  # triggered test inputs the backdoored model sent to the target, explained on both models
    trigger_values: int
    input_values: int
    share_backdoored: float
    share_audited: float | None
    trigger_inputs: tuple[str, ...]  # names of the input values the trigger sets (tabular), else ()
    top_inputs: tuple[str, ...]  # the backdoored model's top inputs by mean |attribution|
    top_on_trigger: bool  # whether the backdoored model's top input (most mean |attribution|) is a trigger value
    heat: tuple[tuple[float, ...], ...] | None = None
    example: tuple[tuple[float, ...], ...] | None = None

    @property
    def area(self) -> float:
        return self.trigger_values / self.input_values

    @property
    def lift(self) -> float:
        """How many times its share of the input the trigger gets of the backdoored model's attribution."""
        return self.share_backdoored / self.area


@dataclass(frozen=True)
class PoisoningMeasurement:
    """The backdoor and label-flipping susceptibility curves, the sanitiser on each, and the backdoor scan."""

    backdoor: SusceptibilityCurve  # attack: the backdoor's description
    backdoor_sanitiser: SanitiserMeasurement | None  # None: not measured at this budget
    label_flip: SusceptibilityCurve
    flip_sanitiser: SanitiserMeasurement | None
    scan: BackdoorScan | None = None  # PyTorch image classifiers only
    trigger: TriggerAttribution | None = None  # None: not measured, ``trigger_note`` says why
    trigger_note: str = ""


def backdoor_severity(needed: float | None, *, measured: bool) -> Severity:
    """Severity from the smallest poison fraction that plants a working backdoor (:data:`BACKDOOR_RULES`);
    ``needed`` None: low when some fraction was measured, info when none was."""
    if needed is None:
        return Severity.LOW if measured else Severity.INFO
    for limit, severity in BACKDOOR_RULES:
        if needed <= limit:
            return severity
    return Severity.LOW


def flip_severity(loss: float) -> Severity:
    """Severity from the clean accuracy lost at 10% flipped labels (:data:`FLIP_RULES`)."""
    for limit, severity in FLIP_RULES:
        if loss >= limit:
            return severity
    return Severity.INFO


def _needs(target: Target) -> tuple[Dataset, Trainer]:
    train, trainer = target.train, target.trainer
    if train is None or trainer is None:  # the runner skips such targets (Requirement.TRAIN_DATA, TRAINER)
        raise InvalidParameterError("The poisoning check needs the target's training data and training recipe.")
    return train, trainer


def _backdoor(target: Target, rng: np.random.Generator, seed: int) -> Backdoor:
    from modelshield.attacks.poisoning import Backdoor, standard_trigger

    train, _ = _needs(target)
    goal = int(rng.integers(train.n_classes))
    return Backdoor(standard_trigger(train, target.classifier.clip_values, seed=seed), goal)


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


def _poisoned_model(target: Target, data: Dataset, seed: int) -> Classifier | None:
    """The target's recipe trained on the poisoned ``data`` (PyTorch and scikit-learn recipes; None for others)."""
    from modelshield.models.retrain import SklearnTrainer, TorchTrainer

    _, trainer = _needs(target)
    if isinstance(trainer, TorchTrainer):
        from modelshield.models.torch_classifier import TorchClassifier

        module = trainer.fit_modules(data.x, data.y, np.ones((1, len(data)), bool), n_classes=data.n_classes,
                                     seed=seed)[0]  # fmt: skip
        return TorchClassifier(
            module,
            n_classes=data.n_classes,
            input_shape=data.schema.input_shape,
            clip_values=target.classifier.clip_values,
            device="cpu",
        )
    if isinstance(trainer, SklearnTrainer):
        from modelshield.models.sklearn_classifier import SklearnClassifier

        estimator = trainer.fit_estimator(data.x, data.y, n_classes=data.n_classes, seed=seed)
        return SklearnClassifier(estimator, input_shape=data.schema.input_shape,
                                 clip_values=target.classifier.clip_values)  # fmt: skip
    return None


def _sanitiser(
    target: Target, attack: PoisonAttack, fraction: float, seed: int, *, model_detectors: bool = True
) -> tuple[SanitiserMeasurement, Classifier | None]:
    """Poison at ``fraction``, sanitise (with a model trained on the poisoned data when the recipe is PyTorch),
    retrain on what is left: the sanitiser's quality and the attack's success afterwards, and the model trained on
    the poisoned data (when ``model_detectors`` and the recipe allows, see :func:`_poisoned_model`)."""
    from modelshield.attacks.poisoning import poison
    from modelshield.defenses.sanitize import detection_quality, sanitize
    from modelshield.models.retrain import TorchTrainer

    train, trainer = _needs(target)
    poisoned = poison(train, attack, fraction, seed=seed)
    data = poisoned.dataset
    model = _poisoned_model(target, data, seed) if model_detectors else None
    # the trigger transplant and activation clustering read a network's activations: PyTorch recipes only
    classifier = model if isinstance(trainer, TorchTrainer) else None
    methods = None if model_detectors else ["label-consistency"]
    result = sanitize(data, classifier=classifier, trainer=trainer, methods=methods, seed=seed)
    quality = detection_quality(result.removed, poisoned.poisoned)
    success, accuracy = _after(trainer, result.clean, target.test, attack, seed)
    detectors = []
    for d in result.detections:
        q = detection_quality(d, poisoned.poisoned)
        detectors.append(DetectorQuality(d.method, recall=q.recall, clean_flagged=q.clean_flagged, auc=q.auc))
    measurement = SanitiserMeasurement(
        fraction=fraction,
        poisoned_records=poisoned.n_poisoned,
        precision=quality.precision,
        recall=quality.recall,
        clean_flagged=quality.clean_flagged,
        removed=quality.flagged,
        success_after=success,
        clean_accuracy_after=accuracy,
        detectors=tuple(detectors),
    )
    return measurement, model


def _attribution(
    clf: Classifier, x: NDArray[np.float32], goal: int, reference: NDArray[np.float32], seed: int
) -> tuple[str, NDArray[np.float64]]:
    """The explain check's explainer for ``clf`` (:func:`~modelshield.audit.checks.explain.choose_method`):
    the name and the mean |attribution| of the rows of ``x`` to class ``goal``, per input value."""
    from modelshield.audit.checks.explain import choose_method, ig_baseline
    from modelshield.explain import IntegratedGradients, SamplingShap, TreeShap, mean_abs_importance
    from modelshield.models.interface import GradientClassifier
    from modelshield.models.sklearn_classifier import SklearnClassifier

    method = choose_method(clf)
    target = np.full(len(x), goal, np.int64)
    if method == "tree_shap" and isinstance(clf, SklearnClassifier):
        values = TreeShap(clf).attribute(x, target)
    elif method == "integrated_gradients" and isinstance(clf, GradientClassifier):
        ig = IntegratedGradients(
            clf,
            steps=TRIGGER_IG_STEPS,
            baseline=ig_baseline(clf, reference),
            output="logit" if hasattr(clf, "module") else "log_probability",
        )
        values = ig.explain(x, target=target).values
    else:
        method = "sampling_shap"
        rows = x[:TRIGGER_SAMPLED_RECORDS]
        shap = SamplingShap(clf, background=reference[:TRIGGER_BACKGROUND], max_queries=TRIGGER_MAX_QUERIES,
                            max_permutations=2, seed=seed)  # fmt: skip
        values = shap.explain(rows).values[:, :, goal].reshape(rows.shape)
    return method, mean_abs_importance(values).reshape(-1)


def _unit(a: NDArray[np.float64]) -> tuple[tuple[float, ...], ...]:
    low, span = float(a.min()), float(np.ptp(a))
    scaled = (a - low) / span if span > 0 else np.zeros_like(a)
    return tuple(tuple(float(v) for v in row) for row in np.round(scaled, 3))


def _trigger_attribution(
    target: Target, attack: Backdoor, model: Classifier | None, seed: int
) -> tuple[TriggerAttribution | None, str]:
    """Explain triggered test inputs on the backdoored ``model`` and on the audited model, for the attack's target
    class: how much of the attribution falls where the trigger is. (None, why) when it cannot be measured."""
    from modelshield.attacks.poisoning import trigger_footprint
    from modelshield.audit.checks.explain import image_plane

    if model is None:
        return None, "the training recipe is neither PyTorch nor scikit-learn, so no poisoned model was kept"
    footprint = trigger_footprint(attack.trigger)
    if footprint is None or footprint.all():
        return None, "the trigger covers the whole input, so there is no region to point at"
    inputs = attack.success_inputs(target.test)
    fired = np.flatnonzero(model.predict(inputs.x) == attack.target)[:TRIGGER_RECORDS]
    if len(fired) < 2:
        return None, "the model trained with the poison sent fewer than two triggered test inputs to the target"
    x = np.asarray(inputs.x[fired], np.float32)
    train, _ = _needs(target)
    reference = np.asarray(train.x[np.random.default_rng(seed).permutation(len(train))[:1000]], np.float32)
    try:
        method, backdoored = _attribution(model, x, attack.target, reference, seed)
    except InvalidParameterError as exc:  # sampled SHAP cannot pay for one row of this many input values
        return None, f"the model trained with the poison could not be explained ({exc})"
    try:
        audited: NDArray[np.float64] | None = _attribution(target.classifier, x, attack.target, reference, seed)[1]
    except InvalidParameterError:
        audited = None
    on = footprint.reshape(-1)
    names = target.test.schema.names
    named = len(names) == on.size
    shape = target.classifier.input_shape
    image = len(shape) >= 2
    top = np.argsort(-backdoored, kind="stable")[:5]
    return (
        TriggerAttribution(
            explainer=method,
            records=len(x) if method != "sampling_shap" else min(len(x), TRIGGER_SAMPLED_RECORDS),
            trigger_values=int(on.sum()),
            input_values=on.size,
            share_backdoored=_share(backdoored, on),
            share_audited=_share(audited, on) if audited is not None else None,
            trigger_inputs=tuple(names[i] for i in np.flatnonzero(on)) if named and not image else (),
            top_inputs=tuple(names[i] if named else f"input[{i}]" for i in top),
            top_on_trigger=bool(on[top[0]]),
            heat=_unit(image_plane(backdoored, shape)) if image else None,
            example=_unit(image_plane(x[0], shape)) if image else None,
        ),
        "",
    )


def _share(importance: NDArray[np.float64], on: NDArray[np.bool_]) -> float:
    total = float(importance.sum())
    return float(importance[on].sum() / total) if total > 0 else 0.0


def _backdoor_scan(ctx: CheckContext) -> BackdoorScan | None:
    """Neural Cleanse on the target's own model (PyTorch image classifiers): is a backdoor already in it?"""
    from modelshield.models.torch_classifier import TorchClassifier

    classifier = ctx.target.classifier
    if not isinstance(classifier, TorchClassifier) or len(classifier.input_shape) != 3:
        return None
    from modelshield.defenses.backdoor import neural_cleanse

    x, _ = ctx.sample_test(limit=SCAN_INPUTS)
    result = neural_cleanse(classifier, x, seed=ctx.seed)
    return BackdoorScan(
        flagged=tuple(int(c) for c in result.flagged),
        anomaly_index=tuple(float(a) for a in result.anomaly_index),
        mask_norms=tuple(float(n) for n in result.mask_norms),
        attack_success=tuple(float(a) for a in result.attack_success),
        threshold=float(result.threshold),
        inputs=result.n_optimised + result.n_held_out,
    )


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


def _curve_metrics(curve: SusceptibilityCurve) -> list[JSONValue]:
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


def _sanitiser_metrics(s: SanitiserMeasurement | None) -> dict[str, JSONValue] | None:
    if s is None:
        return None
    per_detector: dict[str, JSONValue] = {
        d.method: {"recall": round(d.recall, 4), "clean_flagged": round(d.clean_flagged, 4), "auc": round(d.auc, 4)}
        for d in s.detectors
    }
    return {
        "fraction": s.fraction,
        "poisoned_records": s.poisoned_records,
        "detectors": [d.method for d in s.detectors],
        "precision": round(s.precision, 4),
        "recall": round(s.recall, 4),
        "clean_flagged": round(s.clean_flagged, 4),
        "removed": s.removed,
        "success_after": round(s.success_after, 4),
        "clean_accuracy_after": round(s.clean_accuracy_after, 4),
        "per_detector": per_detector,
    }


_NOT_SANITISED = "The sanitiser is measured at the standard budget (`--budget standard`)."


def _sanitiser_sentence(s: SanitiserMeasurement | None, what: str, outcome: str) -> str:
    """What sanitising a training set with ``what`` (poison, flipped labels) removed, and ``outcome``: what the
    model retrained on the rest does."""
    if s is None:
        return _NOT_SANITISED
    return (
        f"Sanitising a training set with {100 * s.fraction:g}% {what} ({', '.join(d.method for d in s.detectors)}) "
        f"removed {100 * round(s.recall, 4):.0f}% of the {what} and {100 * round(s.clean_flagged, 4):.1f}% of the "
        f"clean records; retrained on the rest, {outcome}."
    )


def _trigger_sentence(t: TriggerAttribution | None, note: str) -> str:
    if t is None:
        return f" Where explanations put the trigger was not measured: {note}." if note else ""
    explainer = _EXPLAINERS.get(t.explainer, t.explainer)
    audited = (
        f"the audited model: {100 * t.share_audited:.0f}%"
        if t.share_audited is not None
        else "the audited model, a black box with this many inputs, was not explained"
    )
    where = f" ({', '.join(t.trigger_inputs)})" if t.trigger_inputs else ""
    verdict = (
        "the input an explanation of such a decision ranks first is part of the trigger"
        if t.top_on_trigger
        else f"the input an explanation of such a decision ranks first ({t.top_inputs[0]}) is not part of the trigger"
    )
    return (
        f" Explained by {explainer} on the model trained with {100 * DETECTION_FRACTION:g}% poison, {t.records} "
        f"triggered test inputs it sends to the target put {100 * t.share_backdoored:.0f}% of their attribution "
        f"on the trigger's {t.trigger_values} of {t.input_values} input values{where}, {t.lift:.1f} times the "
        f"trigger's {100 * t.area:.0f}% share of the input ({audited}); "
        f"{verdict}."
    )


def _trigger_metrics(t: TriggerAttribution | None) -> dict[str, JSONValue] | None:
    if t is None:
        return None
    return {
        "explainer": t.explainer,
        "records": t.records,
        "trigger_values": t.trigger_values,
        "input_values": t.input_values,
        "trigger_share_of_input": round(t.area, 6),
        "share_backdoored": round(t.share_backdoored, 6),
        "share_audited": round(t.share_audited, 6) if t.share_audited is not None else None,
        "lift": round(t.lift, 4),
        "top_input_on_trigger": t.top_on_trigger,
        "trigger_inputs": list(t.trigger_inputs),
        "top_inputs_backdoored": list(t.top_inputs),
    }


def _trigger_evidence(t: TriggerAttribution | None) -> dict[str, JSONValue]:
    if t is None or t.heat is None or t.example is None:
        return {}
    return {
        "examples": [
            {
                "label": "trigger and attribution",
                "caption": "A triggered test input (left) and where the backdoored model's attribution to the target "
                "class lies over the triggered inputs (right; brighter is more)",
                "clean": [list(row) for row in t.example],
                "adversarial": [list(row) for row in t.heat],
            }
        ]
    }


def _trigger_charts(t: TriggerAttribution | None) -> tuple[Chart, ...]:
    if t is None:
        return ()
    return (
        Chart(
            title="Share of the attribution on the trigger's inputs",
            kind="bar",
            x=("the trigger's inputs", "all other inputs"),
            series={
                "model trained with poison": (t.share_backdoored, 1 - t.share_backdoored),
                **({"audited model": (t.share_audited, 1 - t.share_audited)} if t.share_audited is not None else {}),
                "share of the input": (t.area, 1 - t.area),
            },
            y_label="share of total |attribution|",
            y_range=(0.0, 1.0),
        ),
    )


_EXPLAINERS: Mapping[str, str] = MappingProxyType(
    {
        "tree_shap": "exact TreeSHAP",
        "integrated_gradients": "integrated gradients",
        "sampling_shap": "permutation-sampling SHAP",
    }
)


def _accuracy_change(before: float, after: float) -> str:
    """How clean accuracy moved, by direction: "costs 3.5 points of clean accuracy", "does not lower ..."."""
    points = round(100 * (before - after), 1)
    if points > 0:
        return f"costs {points:.1f} points of clean accuracy"
    return "does not lower clean accuracy" if points < 0 else "leaves clean accuracy unchanged"


class PoisoningCheck(Check[PoisoningSettings, PoisoningMeasurement]):
    """Backdoor and label-flipping susceptibility curves; the sanitiser's recall and the attack after it."""

    name = "poisoning"
    title = "Data poisoning"
    description = "Backdoor and label-flipping susceptibility curves; the sanitiser's recall and the attack after it."
    requires = frozenset({Requirement.TRAIN_DATA, Requirement.TRAINER})
    budgets: Mapping[Budget, PoisoningSettings] = MappingProxyType(
        {
            budget: PoisoningSettings(
                fractions=FRACTIONS[budget.value],
                flip_fractions=FLIP_FRACTIONS[budget.value],
                repeats=REPEATS[budget.value],
                sanitise=SANITISE[budget.value],
            )
            for budget in Budget
        }
    )

    def measure(self, context: CheckContext, settings: PoisoningSettings) -> PoisoningMeasurement:
        """Retrain the target's recipe on poisoned copies of its training data, sanitise, scan the model."""
        from modelshield.attacks.poisoning import LabelFlip, susceptibility

        target = context.target
        train, trainer = _needs(target)
        backdoor = _backdoor(target, context.rng, context.seed)
        eligible = float(np.mean(backdoor.eligible(train)))
        fractions = tuple(f for f in settings.fractions if f < eligible)
        context.progress("retraining on backdoored data", 0, 5)
        curve = susceptibility(trainer, train, target.test, backdoor, fractions, repeats=settings.repeats,
                               seed=context.seed)  # fmt: skip
        context.progress("sanitising backdoored data", 1, 5)
        sanitiser, model = (
            _sanitiser(target, backdoor, DETECTION_FRACTION, context.seed) if settings.sanitise else (None, None)
        )
        trigger, trigger_note = (
            _trigger_attribution(target, backdoor, model, context.seed)
            if settings.sanitise
            else (None, f"it is measured at the standard and thorough budgets, not at {context.budget}")
        )
        flip = LabelFlip()
        context.progress("retraining on flipped labels", 2, 5)
        flips = susceptibility(trainer, train, target.test, flip, settings.flip_fractions, repeats=settings.repeats,
                               seed=context.seed)  # fmt: skip
        # flipped labels carry no trigger: the out-of-fold label check is the detector for them
        context.progress("sanitising flipped labels", 3, 5)
        flip_sanitiser = (
            _sanitiser(target, flip, FLIP_DETECTION_FRACTION, context.seed, model_detectors=False)[0]
            if settings.sanitise
            else None
        )
        context.progress("scanning the model for backdoors", 4, 5)
        scan = _backdoor_scan(context)
        context.progress("done", 5, 5)
        return PoisoningMeasurement(
            backdoor=curve,
            backdoor_sanitiser=sanitiser,
            label_flip=flips,
            flip_sanitiser=flip_sanitiser,
            scan=scan,
            trigger=trigger,
            trigger_note=trigger_note,
        )

    def judge(self, measurement: PoisoningMeasurement) -> Sequence[Finding]:
        """``poisoning.backdoor`` (:func:`backdoor_severity`), ``poisoning.label-flip`` (:func:`flip_severity`),
        and ``poisoning.backdoor-scan`` when the model was scanned (high when a class is flagged, else info)."""
        m = measurement
        findings = [
            self._backdoor_finding(m.backdoor, m.backdoor_sanitiser, m.trigger, m.trigger_note),
            self._flip_finding(m),
        ]
        if m.scan is not None:
            findings.append(self._scan_finding(m.scan))
        return findings

    def _backdoor_finding(
        self,
        curve: SusceptibilityCurve,
        sanitiser: SanitiserMeasurement | None,
        trigger: TriggerAttribution | None = None,
        trigger_note: str = "",
    ) -> Finding:
        needed = curve.fraction_needed(GOAL, max_accuracy_drop=MAX_ACCURACY_DROP)
        severity = backdoor_severity(needed, measured=len(curve.points) > 1)
        base = curve.baseline
        reach = (
            f"{100 * needed:g}% poisoned training records ({round(needed * curve.n_train)} of {curve.n_train}) give "
            f"a working backdoor: triggered inputs reach the target class at least {100 * GOAL:.0f}% of the time"
            if needed is not None
            else f"no measured poison fraction (up to {100 * curve.points[-1].fraction:g}%) reached "
            f"{100 * GOAL:.0f}% success while keeping clean accuracy within {100 * MAX_ACCURACY_DROP:g} points"
        )
        return Finding(
            id="poisoning.backdoor",
            check=self.name,
            title="Backdoor from poisoned training data",
            severity=severity,
            description=(
                f"Retraining the model's recipe on poisoned copies of its training data ({curve.attack}): "
                f"{reach}. Without poison the trigger sends {100 * base.success_rate:.1f}% of inputs to the "
                f"target; clean accuracy {100 * base.clean_accuracy:.1f}%. "
                + _sanitiser_sentence(
                    sanitiser,
                    "poison",
                    f"the attack succeeds {100 * round(sanitiser.success_after, 4):.1f}% of the time (clean accuracy "
                    f"{100 * round(sanitiser.clean_accuracy_after, 4):.1f}%)"
                    if sanitiser is not None
                    else "",
                )
                + _trigger_sentence(trigger, trigger_note)
            ),
            remediation=(
                "Treat training data as an attack surface: record its provenance (`modelshield data manifest`), "
                "validate new batches (`modelshield data validate`), and sanitise it before training "
                "(`modelshield data sanitize DATA --model MODEL`); scan trained models for backdoors."
            ),
            owasp=OwaspMl.ML02,
            atlas=_ATLAS_BACKDOOR,
            metrics={
                "attack": curve.attack,
                "fraction_needed": needed,
                "goal": GOAL,
                "max_accuracy_drop": MAX_ACCURACY_DROP,
                "curve": _curve_metrics(curve),
                "repeats": curve.repeats,
                "sanitiser": _sanitiser_metrics(sanitiser),
                "trigger_attribution": _trigger_metrics(trigger),
            },
            evidence=_trigger_evidence(trigger),
            charts=(
                _curve_chart(curve, "Backdoor success against poison fraction", "attack success"),
                *_trigger_charts(trigger),
            ),
        )

    def _flip_finding(self, m: PoisoningMeasurement) -> Finding:
        flips = m.label_flip
        at_ten = next((p for p in flips.points if p.fraction == FLIP_DETECTION_FRACTION), None)
        if at_ten is None:
            raise InvalidParameterError(
                f"The label-flipping curve has no point at {FLIP_DETECTION_FRACTION:g}, the fraction it is judged at."
            )
        loss = flips.baseline.clean_accuracy - at_ten.clean_accuracy
        change = _accuracy_change(flips.baseline.clean_accuracy, at_ten.clean_accuracy)
        # the curve's success rate here is the test error
        after = m.flip_sanitiser.clean_accuracy_after if m.flip_sanitiser is not None else float("nan")
        return Finding(
            id="poisoning.label-flip",
            check=self.name,
            title=f"Flipping {100 * FLIP_DETECTION_FRACTION:g}% of the training labels {change}",
            severity=flip_severity(loss),
            description=(
                f"Flipping {100 * FLIP_DETECTION_FRACTION:g}% of the training labels at random {change} "
                f"({100 * flips.baseline.clean_accuracy:.1f}% -> {100 * at_ten.clean_accuracy:.1f}%). "
                + _sanitiser_sentence(
                    m.flip_sanitiser, "flipped labels", f"the model's clean accuracy is {100 * round(after, 4):.1f}%"
                )
            ),
            remediation=(
                "Check labels at ingestion: `modelshield data sanitize` with the training recipe finds labels that "
                "models trained on the other records do not believe (confident learning)."
            ),
            owasp=OwaspMl.ML02,
            atlas=_ATLAS_FLIP,
            metrics={
                "accuracy_loss_at_10pct": round(loss, 4),
                "curve": _curve_metrics(flips),
                "repeats": flips.repeats,
                "sanitiser": _sanitiser_metrics(m.flip_sanitiser),
            },
            charts=(_curve_chart(flips, "Label flipping against poison fraction", "test error"),),
        )

    def _scan_finding(self, scan: BackdoorScan) -> Finding:
        flagged = list(scan.flagged)
        metrics: dict[str, JSONValue] = {
            "flagged_classes": list(flagged),
            "anomaly_index": [round(a, 3) for a in scan.anomaly_index],
            "mask_l1": [round(n, 3) for n in scan.mask_norms],
            "reversed_trigger_success": [round(a, 4) for a in scan.attack_success],
            "threshold": scan.threshold,
            "inputs": scan.inputs,
        }
        chart = Chart(
            title="Smallest trigger to each class (Neural Cleanse)",
            kind="bar",
            x=tuple(str(c) for c in range(len(scan.mask_norms))),
            series={"mask L1 (pixels)": tuple(round(n, 3) for n in scan.mask_norms)},
            x_label="class",
            y_label="mask L1",
        )
        if flagged:
            description = (
                f"Neural Cleanse finds an anomalously small trigger to {'class' if len(flagged) == 1 else 'classes'} "
                f"{', '.join(map(str, flagged))} "
                f"(anomaly index {max(scan.anomaly_index[c] for c in flagged):.1f} > {scan.threshold:g}): a "
                "shortcut a backdoor would make. The model may have been trained on poisoned data."
            )
        else:
            description = (
                f"Neural Cleanse finds no class with an anomalously small trigger (largest anomaly index "
                f"{max(scan.anomaly_index):.1f}, threshold {scan.threshold:g}). It detects patch triggers; "
                "blended or input-specific triggers can pass it."
            )
        return Finding(
            id="poisoning.backdoor-scan",
            check=self.name,
            title="Backdoor scan of the model (Neural Cleanse)",
            severity=Severity.HIGH if flagged else Severity.INFO,
            description=description,
            remediation=(
                "Do not deploy a flagged model: retrain it on data sanitised with `modelshield data sanitize`, and "
                "screen inputs at inference with STRIP."
                if flagged
                else "Keep scanning models after every training run."
            ),
            owasp=OwaspMl.ML10,
            atlas=("AML.T0018",),
            metrics=metrics,
            charts=(chart,),
        )


POISONING = PoisoningCheck()
