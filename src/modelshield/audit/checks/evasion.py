"""The ``evasion`` check: how much accuracy survives small adversarial changes to the input, measured reliably.

    >>> from modelshield.audit.checks.evasion import EVASION, SEVERITY_THRESHOLDS, EvasionMeasurement
    >>> from modelshield.audit.interface import Budget
    >>> SEVERITY_THRESHOLDS[0]
    (0.5, <Severity.HIGH: 'high'>)
    >>> EVASION.settings(Budget.QUICK)
    EvasionSettings(samples=200, steps=10, queries=250, restarts=1)
    >>> m = EvasionMeasurement(unit="of the input range", eps=(0.05,), eps_labels=("0.05",), reference_eps=0.05,
    ...                        clean_accuracy=0.9, n=100, n_classes=2, robust={"pgd": (0.3,)}, worst=(0.3,),
    ...                        worst_per_class=((0.2, 0.4),))
    >>> [(f.id, f.severity.value) for f in EVASION.judge(m)]
    [('evasion.robust-accuracy', 'high')]

:meth:`EvasionCheck.measure` runs :func:`~modelshield.attacks.evasion.evaluation.evaluate_robustness` at a grid of
L∞ budgets ε, on at most :attr:`EvasionSettings.samples` test inputs. PyTorch models, and ONNX models whose graph
converts to PyTorch with the same outputs (:func:`~modelshield.models.onnx_torch.to_torch`), are attacked
white-box: FGSM, then PGD, APGD-CE and APGD-DLR with :attr:`EvasionSettings.restarts` random starts each, adaptive
versions of them where the model masks its gradients, then the Square attack on the inputs they left; the worst
case is per input over every attack. Other models get the Square attack (when they return scores), HopSkipJump and
a transfer attack from a surrogate trained on their answers; their robust accuracy is an upper bound, and the
finding says so.

- Images (one value range for every input): ε = 1%, 3%, 5%, 10% and 20% of the range; the reference ε is 5%.
- Tabular data: the model is attacked in units of each feature's standard deviation (measured on the evaluation
  sample), ε = 0.05, 0.1, 0.25, 0.5 and 1 standard deviation; the reference ε is 0.25. Immutable features are left
  alone; integer and categorical features are held fixed (moving them by whole steps is outside this check).

:meth:`EvasionCheck.judge` rates the worst-case robust accuracy at the reference ε, relative to clean accuracy
(:data:`SEVERITY_THRESHOLDS`): below half of clean accuracy high, below 80% medium, else low. A failed
reliability check that still fails after the adaptive attacks adds an ``evasion.unreliable-evaluation`` finding
(high): an evaluation that cannot be trusted is no evidence of robustness, so it never passes quietly beside a
low headline.

What a budget buys (:attr:`EvasionCheck.budgets`): with scale 0.25 (quick), 1 (standard) and 4 (thorough),
``max(10, round(40 * scale))`` attack steps, ``max(200, round(1000 * scale))`` Square queries per input, 1, 5 or
10 random starts of PGD and APGD, and 200, 1000 or 10,000 test inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

import numpy as np

from modelshield.attacks.evasion.evaluation import Reliability
from modelshield.audit.interface import Budget, Check, CheckContext, Requirement
from modelshield.findings import Chart, Finding, JSONValue, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.attacks.evasion.evaluation import RobustnessEvaluation
    from modelshield.attacks.evasion.interface import EvasionResult
    from modelshield.audit.checks.fairness import RobustnessByGroup
    from modelshield.models.interface import Classifier
    from modelshield.models.torch_classifier import TorchClassifier

__all__ = [
    "EVASION",
    "IMAGE_EPS",
    "SEVERITY_THRESHOLDS",
    "TABULAR_EPS",
    "EvasionCheck",
    "EvasionMeasurement",
    "EvasionSettings",
    "ImageExample",
    "PerturbationFocus",
    "RecordExample",
    "severity_of",
]

#: Worst-case robust accuracy at the reference ε, as a share of clean accuracy, below which each severity applies.
SEVERITY_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.HIGH), (0.8, Severity.MEDIUM))
IMAGE_EPS = (0.01, 0.03, 0.05, 0.1, 0.2)  # share of the input range
TABULAR_EPS = (0.05, 0.1, 0.25, 0.5, 1.0)  # standard deviations
IMAGE_REFERENCE = 0.05  # share of the input range
TABULAR_REFERENCE = 0.25  # standard deviations
_ATLAS = ("AML.T0043", "AML.T0015")
_EXAMPLES = 8


@dataclass(frozen=True)
class EvasionSettings:
    """What a budget buys the evasion check."""

    samples: int  # test inputs attacked
    steps: int  # iterations of the gradient attacks (APGD runs at least 50)
    queries: int  # Square and HopSkipJump queries per input
    restarts: int  # random starts of PGD and APGD


def _settings(scale: float, samples: int, restarts: int) -> EvasionSettings:
    return EvasionSettings(samples=samples, steps=max(10, round(40 * scale)), queries=max(200, round(1000 * scale)),
                           restarts=restarts)  # fmt: skip


@dataclass(frozen=True)
class ImageExample:
    """A clean image beside the adversarial one that fooled the model (first channel, grey levels in [0, 1])."""

    label: str  # "true -> predicted"
    clean: tuple[tuple[float, ...], ...]
    adversarial: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class RecordExample:
    """A fooled record: the features the attack moved most, ``(feature, before, after)`` in the data's units."""

    label: str  # "#row: true -> predicted"
    changes: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class PerturbationFocus:
    """Where the attack's changes fell against what the model relies on, on the images it fooled at the reference ε:
    ``share_on_top`` of the mean |perturbation| lies on the ``top`` of ``inputs`` pixels with the largest mean
    saliency of the clean images (for their true class); ``spearman`` ranks the two maps against each other."""

    records: int
    inputs: int
    top: int
    share_on_top: float
    spearman: float

    @property
    def lift(self) -> float:
        """How many times its area share the top pixels get of the perturbation."""
        return self.share_on_top / (self.top / self.inputs)


@dataclass(frozen=True)
class EvasionMeasurement:
    """The robustness curve: robust accuracy per attack and ε (in the attacked units), the worst case, per class."""

    unit: str  # what ε is measured in: "of the input range" or "standard deviations"
    eps: tuple[float, ...]  # the grid, ascending, in the units the model was attacked in
    eps_labels: tuple[str, ...]  # the grid as reported, one label per ε
    reference_eps: float  # the ε severity is judged at (the grid's nearest point counts)
    clean_accuracy: float
    n: int  # test inputs attacked
    n_classes: int
    robust: Mapping[str, tuple[float, ...]]  # attack -> robust accuracy at each ε
    worst: tuple[float, ...]  # worst case over the attacks at each ε
    worst_per_class: tuple[tuple[float, ...], ...]  # [ε][class]
    minimal_distances: tuple[float, ...] = ()  # DeepFool L2 distances of inputs it fooled (white-box)
    reliability: tuple[Reliability, ...] = ()  # failed reliability checks
    queries: int = 0
    examples: tuple[ImageExample | RecordExample, ...] = ()
    white_box: bool = True  # False: black-box attacks only, every figure an upper bound
    adaptations: tuple[str, ...] = ()  # adaptive attacks used against gradient masking
    restarts: int = 1  # random starts of PGD and APGD
    access: str = ""  # how the gradients were obtained, or why there were none
    focus: PerturbationFocus | None = None  # image models with gradients: perturbation against saliency
    by_group: tuple[RobustnessByGroup, ...] = ()  # tabular targets naming sensitive features: one per feature

    def __post_init__(self) -> None:
        object.__setattr__(self, "robust", MappingProxyType(dict(self.robust)))

    @property
    def reference_index(self) -> int:
        """The grid point nearest the reference ε."""
        return int(np.argmin([abs(e - self.reference_eps) for e in self.eps]))


def severity_of(robust: float, clean: float) -> Severity:
    """Severity of a robust accuracy ``robust`` against clean accuracy ``clean`` (:data:`SEVERITY_THRESHOLDS`)."""
    ratio = robust / clean if clean > 0 else 0.0
    return next((s for limit, s in SEVERITY_THRESHOLDS if ratio < limit), Severity.LOW)


class EvasionCheck(Check[EvasionSettings, EvasionMeasurement]):
    """Robust accuracy under white-box or black-box attacks at several ε, with gradient-masking checks."""

    name = "evasion"
    title = "Adversarial robustness"
    description = (
        "Robust accuracy under white-box (FGSM, PGD, APGD, adaptive attacks) and black-box (Square, HopSkipJump) "
        "attacks at several ε, worst case per input, with gradient-masking checks."
    )
    requires: frozenset[Requirement] = frozenset()  # label-only models get the decision-based and transfer attacks
    budgets: Mapping[Budget, EvasionSettings] = MappingProxyType(
        {
            Budget.QUICK: _settings(0.25, 200, 1),
            Budget.STANDARD: _settings(1.0, 1000, 5),
            Budget.THOROUGH: _settings(4.0, 10_000, 10),
        }
    )

    def measure(self, context: CheckContext, settings: EvasionSettings) -> EvasionMeasurement:
        """Attack a sample of the test set at each ε of the grid (images: shares of the range; tabular data:
        standard deviations)."""
        from modelshield.attacks.evasion.evaluation import evaluate_robustness
        from modelshield.attacks.evasion.interface import Constraints

        target = context.target
        classifier = target.classifier
        x, y = context.sample_test(settings.samples)
        twin, access = _gradients(classifier, x)
        width = _image_width(classifier)
        examples: tuple[ImageExample | RecordExample, ...]
        if width is not None:
            grid, reference, unit = tuple(e * width for e in IMAGE_EPS), IMAGE_REFERENCE * width, "of the input range"
            evaluation = evaluate_robustness(classifier, x, y, eps=grid, steps=settings.steps, seed=context.seed,
                                             blackbox_queries=settings.queries, restarts=settings.restarts,
                                             twin=twin, progress=context.progress)  # fmt: skip
            labels = tuple(f"{e:g}" for e in IMAGE_EPS)
            examples = _image_examples(evaluation, reference, x, target.test.label_names)
            focus = _focus(evaluation, reference, x, twin or classifier)
        else:
            flat = x.reshape(len(x), -1)
            scale = flat.std(axis=0).reshape(classifier.input_shape).astype(np.float32)
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            offset = np.zeros_like(scale)
            scaled = _scaled(classifier, scale, offset)
            scaled_twin = _scaled_torch(twin, scale, offset) if twin is not None else None
            # Ranges in the data's units (schema and model), then divided into standard-deviation units; integer
            # and categorical features are held fixed.
            raw = Constraints.from_schema(target.test.schema, classifier.clip_values)
            constraints = Constraints(
                low=(raw.low / scale).astype(np.float32),
                high=(raw.high / scale).astype(np.float32),
                mutable=raw.mutable & ~raw.integer,
                integer=np.zeros_like(raw.integer),
            )
            grid, reference, unit = TABULAR_EPS, TABULAR_REFERENCE, "standard deviations"
            u = (x / scale).astype(np.float32)
            evaluation = evaluate_robustness(scaled, u, y, eps=grid, steps=settings.steps, seed=context.seed,
                                             constraints=constraints, blackbox_queries=settings.queries,
                                             restarts=settings.restarts, twin=scaled_twin,
                                             progress=context.progress)  # fmt: skip
            labels = tuple(f"{e:g}" for e in TABULAR_EPS)
            examples = _record_examples(
                evaluation, reference, x, scale, target.test.schema.names, target.test.label_names
            )
            focus = None
        by_group = _by_group(context, evaluation, reference, x, labels[_nearest(evaluation.eps, reference)])
        return EvasionMeasurement(
            unit=unit,
            eps=evaluation.eps,
            eps_labels=labels,
            reference_eps=reference,
            clean_accuracy=evaluation.clean_accuracy,
            n=evaluation.n,
            n_classes=classifier.n_classes,
            robust=evaluation.robust,
            worst=evaluation.worst,
            worst_per_class=evaluation.worst_per_class,
            minimal_distances=evaluation.minimal_distances,
            reliability=evaluation.reliability,
            queries=evaluation.queries,
            examples=examples,
            white_box=evaluation.white_box,
            adaptations=evaluation.adaptations,
            restarts=evaluation.restarts,
            access=access,
            focus=focus,
            by_group=by_group,
        )

    def judge(self, measurement: EvasionMeasurement) -> Sequence[Finding]:
        """``evasion.robust-accuracy`` rated by :func:`severity_of` at the reference ε, and one high
        ``evasion.unreliable-evaluation`` per failed reliability check."""
        m = measurement
        ref = m.reference_index
        label = m.eps_labels[ref]
        robust, clean = m.worst[ref], m.clean_accuracy
        curve = Chart(
            title="Robust accuracy against the attack budget (L∞)",
            kind="line",
            x=tuple(float(v) for v in m.eps_labels),
            series={**m.robust, "worst case": m.worst},
            x_label=f"ε ({m.unit})",
            y_label="accuracy",
            y_range=(0.0, 1.0),
        )
        per_class = Chart(
            title=f"Robust accuracy per class at ε = {label} {m.unit}",
            kind="bar",
            x=tuple(str(c) for c in range(m.n_classes)),
            series={"robust accuracy": tuple(float(np.nan_to_num(v)) for v in m.worst_per_class[ref])},
            y_range=(0.0, 1.0),
        )
        robust_by_eps: dict[str, JSONValue] = {lab: round(v, 4) for lab, v in zip(m.eps_labels, m.worst, strict=True)}
        metrics: dict[str, JSONValue] = {
            "clean_accuracy": round(clean, 4),
            "reference_eps": label,
            "robust_accuracy_at_reference": round(robust, 4),
            "robust_accuracy": robust_by_eps,
            "evaluation": "white-box" if m.white_box else "black-box",
            "upper_bound": not m.white_box,
            "restarts": m.restarts,
            "samples": m.n,
            "queries": m.queries,
        }
        if m.adaptations:
            metrics["adaptive_attacks"] = list(m.adaptations)
        if m.access:
            metrics["gradients"] = m.access
        if m.minimal_distances:
            metrics["median_minimal_l2_distance"] = round(float(np.median(m.minimal_distances)), 4)
        focus = ""
        if m.focus is not None:
            f = m.focus
            metrics["perturbation_on_salient_pixels"] = round(f.share_on_top, 4)
            metrics["salient_pixels_share"] = round(f.top / f.inputs, 4)
            metrics["perturbation_saliency_spearman"] = round(f.spearman, 4)
            focus = (
                f" Where the attack changed the {f.records} images it fooled, against what the model relies on: the "
                f"mean change per pixel ranks with the clean images' saliency at ρ = {f.spearman:.2f}, and the "
                f"{f.top} most salient of {f.inputs} pixels took {f.share_on_top:.0%} of the change ({f.lift:.1f} "
                "times their share; an L∞ attack moves every pixel by up to ε, so the ranking says more than the "
                "share)."
            )
        attacks = ", ".join(m.robust)
        if m.white_box:
            how = (
                f"Worst case per input over {attacks} (PGD and APGD with {m.restarts} random start"
                f"{'s' if m.restarts != 1 else ''}) and the Square attack on the inputs those left, on {m.n} test "
                "inputs."
            )
            if m.adaptations:
                how += f" Adaptive attacks against gradient masking: {'; '.join(m.adaptations)}."
            title = f"Adversarial inputs cut accuracy from {clean:.0%} to {robust:.0%} at ε = {label} {m.unit}"
        else:
            how = (
                f"Upper bound: black-box attacks only ({attacks}), worst case per input on {m.n} test inputs. "
                f"{m.access or 'The model gives no gradients'}. Stronger attacks with gradients usually go lower: "
                "the true robust accuracy may be well below this figure."
            )
            title = (
                f"Adversarial inputs cut accuracy from {clean:.0%} to at most {robust:.0%} at ε = {label} {m.unit} "
                "(black-box upper bound)"
            )
        findings = [
            Finding(
                id="evasion.robust-accuracy",
                check=self.name,
                title=title,
                severity=severity_of(robust, clean),
                description=(
                    f"{how} Changes of {label} {m.unit} per feature, invisible or plausible to a person, turn right "
                    f"answers into wrong ones on {'at least ' if not m.white_box else ''}"
                    f"{max(clean - robust, 0):.0%} of the inputs.{focus}"
                ),
                remediation=(
                    "Harden the model (adversarial training: `modelshield harden --defense adversarial-training`), "
                    "detect adversarial inputs at serving time, and re-run this check."
                    + (
                        ""
                        if m.white_box
                        else " Audit the model white-box (PyTorch or a convertible ONNX graph) "
                        "for a figure that is not only an upper bound."
                    )
                ),
                owasp=OwaspMl.ML01,
                atlas=_ATLAS,
                metrics=metrics,
                evidence={"examples": [_example_json(e) for e in m.examples]},
                charts=(curve, per_class),
            )
        ]
        for problem in m.reliability:
            findings.append(
                Finding(
                    id="evasion.unreliable-evaluation",
                    check=self.name,
                    title="The robustness evaluation may overstate the model: signs of gradient masking remain",
                    severity=Severity.HIGH,
                    description=problem.message
                    + (f" (after the adaptive attacks: {'; '.join(m.adaptations)})" if m.adaptations else ""),
                    remediation="Do not rely on these robust accuracies: evaluate with attacks adapted to the "
                    "defence (BPDA for non-differentiable steps, EOT for randomness, margin losses on the logits, "
                    "decision-based attacks) before claiming robustness.",
                    owasp=OwaspMl.ML01,
                    atlas=_ATLAS,
                    evidence={"check": problem.id},
                )
            )
        from modelshield.audit.checks.fairness import feature_finding_id

        taken: set[str] = set()
        for i, by_group in enumerate(m.by_group):
            finding_id = feature_finding_id(by_group.feature, i, taken, prefix="evasion.by-group")
            findings.append(_group_finding(m, by_group, finding_id))
        return findings


def _group_finding(m: EvasionMeasurement, g: RobustnessByGroup, finding_id: str) -> Finding:
    """One sensitive feature: does the attack take more accuracy from one of its groups?"""
    from modelshield.audit.checks.fairness import MIN_GROUP_SIZE, ROBUSTNESS_GAP_THRESHOLDS, robustness_severity

    severity = robustness_severity(g)
    gap = g.loss_difference
    judged = g.judged
    bound = "" if m.white_box else "at least "
    per_group = "; ".join(
        f"{x.label}: {x.clean_accuracy:.0%} -> {x.robust_accuracy:.0%} ({x.n} records"
        + (")" if x.judged else ", too few to judge)")
        for x in g.groups
    )
    if len(judged) < 2:
        title = f"Robustness per group of {g.feature!r} not compared: too few attacked records per group"
        verdict = f"Fewer than two groups have {MIN_GROUP_SIZE} or more attacked records."
    else:
        most = max(judged, key=lambda x: x.loss)
        least = min(judged, key=lambda x: x.loss)
        verdict = (
            f"The largest difference between groups in accuracy lost is {gap.value:.2f} (95% bootstrap interval "
            f"{gap.interval[0]:.2f}-{gap.interval[1]:.2f}, {GROUP_RESAMPLES} resamples)."
        )
        if severity is Severity.INFO:
            title = (
                f"No group of {g.feature!r} clearly loses more accuracy to adversarial inputs ({bound}"
                f"{least.loss:.0%} to {most.loss:.0%} lost)"
            )
            verdict += (
                f" No group loses clearly more: a difference counts when its whole interval is above "
                f"{ROBUSTNESS_GAP_THRESHOLDS[-1][0]:g}."
            )
        else:
            title = (
                f"Adversarial inputs take more accuracy from group {most.label!r} of {g.feature!r} ({bound}"
                f"{most.loss:.0%} lost, against {least.loss:.0%} for {least.label!r})"
            )
            verdict += (
                f" Even at the interval's lower end it is above "
                f"{next(t for t, s in ROBUSTNESS_GAP_THRESHOLDS if s is severity):g}: the model is easier to "
                f"fool on group {most.label!r}."
            )
    metrics: dict[str, JSONValue] = {
        "feature": g.feature,
        "grouping": g.method,
        "eps": g.eps,
        "unit": m.unit,
        "evaluation": "white-box" if m.white_box else "black-box",
        "accuracy_lost_difference": round(gap.value, 4) if gap.measured else None,
        "accuracy_lost_difference_interval": [round(v, 4) if np.isfinite(v) else None for v in gap.interval],
        "groups": [
            {
                "group": x.label,
                "records": x.n,
                "judged": x.judged,
                "clean_accuracy": round(x.clean_accuracy, 4),
                "robust_accuracy": round(x.robust_accuracy, 4),
            }
            for x in g.groups
        ],
        "resamples": GROUP_RESAMPLES,
    }
    return Finding(
        id=finding_id,
        check="evasion",
        title=title,
        severity=severity,
        description=(
            f"The worst-case attack at ε = {g.eps} {m.unit} on the {m.n} attacked test records, grouped by "
            f"{g.feature!r} ({g.method}), accuracy before -> under attack: {per_group}. {verdict}"
            + ("" if m.white_box else " Black-box attacks only: each group's robust accuracy is an upper bound.")
        ),
        remediation=(
            "Look at how much training data the group has and whether its records lie near the decision boundary; "
            "adversarial training (`modelshield harden --defense adversarial-training`) with the group represented, "
            "then re-run the audit with the same --sensitive features."
        ),
        owasp=OwaspMl.ML01,
        atlas=_ATLAS,
        metrics=metrics,
        charts=(
            Chart(
                title=f"Accuracy per group of {g.feature!r}, clean and under attack at ε = {g.eps}",
                kind="bar",
                x=tuple(x.label for x in g.groups),
                series={
                    "clean": tuple(x.clean_accuracy for x in g.groups),
                    "under attack": tuple(x.robust_accuracy for x in g.groups),
                },
                y_label="accuracy",
                y_range=(0.0, 1.0),
            ),
        ),
    )


def _example_json(example: ImageExample | RecordExample) -> JSONValue:
    if isinstance(example, ImageExample):
        return {
            "label": example.label,
            "clean": [list(row) for row in example.clean],
            "adversarial": [list(row) for row in example.adversarial],
        }
    return {"label": example.label, "changes": [list(change) for change in example.changes]}


def _image_width(classifier: Classifier) -> float | None:
    """The width of the one value range every input shares, for image inputs (several dimensions); else None."""
    bounds = classifier.clip_values
    if len(classifier.input_shape) <= 1 or bounds is None:
        return None
    if np.ptp(np.asarray(bounds.low)) != 0 or np.ptp(np.asarray(bounds.high)) != 0:
        return None
    return float(np.max(bounds.high)) - float(np.min(bounds.low))


def _gradients(classifier: Classifier, x: np.ndarray) -> tuple[TorchClassifier | None, str]:
    """A differentiable twin of a model without gradients of its own (an ONNX graph converted to PyTorch and checked
    against onnxruntime on ``x``), and one line on how the gradients were obtained or why there are none."""
    from modelshield.models.onnx_classifier import OnnxClassifier
    from modelshield.models.torch_classifier import TorchClassifier

    if isinstance(classifier, TorchClassifier):
        return None, "PyTorch model: white-box"
    if isinstance(classifier, OnnxClassifier):
        from modelshield.models.onnx_torch import to_torch

        conversion = to_torch(classifier, x)
        if conversion.classifier is not None:
            return conversion.classifier, f"ONNX graph converted to PyTorch: {conversion.reason}"
        return None, f"ONNX graph not convertible to PyTorch ({conversion.reason}): black-box attacks only"
    return None, f"{type(classifier).__name__}: no gradients, black-box attacks only"


def _scaled_torch(classifier: TorchClassifier, scale: np.ndarray, offset: np.ndarray) -> TorchClassifier:
    return cast("TorchClassifier", _scaled(classifier, scale, offset))  # _scaled keeps a PyTorch model one


def _scaled(classifier: Classifier, scale: np.ndarray, offset: np.ndarray) -> Classifier:
    """The same model, taking inputs in units of ``scale`` around ``offset`` (x = u * scale + offset)."""
    from modelshield.models.interface import Bounds
    from modelshield.models.interface import Classifier as Base
    from modelshield.models.torch_classifier import TorchClassifier

    bounds = classifier.clip_values
    new_bounds = None
    if bounds is not None:
        low = (np.broadcast_to(np.asarray(bounds.low, np.float32), scale.shape) - offset) / scale
        high = (np.broadcast_to(np.asarray(bounds.high, np.float32), scale.shape) - offset) / scale
        new_bounds = Bounds(low.astype(np.float32), high.astype(np.float32))
    if isinstance(classifier, TorchClassifier):
        import torch

        class _Affine(torch.nn.Module):
            scale_t: torch.Tensor
            offset_t: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("scale_t", torch.as_tensor(scale, dtype=torch.float32))
                self.register_buffer("offset_t", torch.as_tensor(offset, dtype=torch.float32))

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                return u * self.scale_t + self.offset_t

        module = torch.nn.Sequential(_Affine(), classifier.module)
        return TorchClassifier(module, n_classes=classifier.n_classes, input_shape=classifier.input_shape,
                               clip_values=new_bounds, output=classifier.output, device=classifier.device)  # fmt: skip

    class _ScaledBlackBox(Base):
        def _predict_proba(self, x: np.ndarray) -> np.ndarray:
            return classifier.predict_proba((x * scale + offset).astype(np.float32))

    return _ScaledBlackBox(n_classes=classifier.n_classes, input_shape=classifier.input_shape, clip_values=new_bounds)


def _nearest(grid: Sequence[float], reference: float) -> int:
    return int(np.argmin([abs(e - reference) for e in grid]))


#: Bootstrap resamples of the difference between groups in accuracy lost to the attack.
GROUP_RESAMPLES = 1000


def _by_group(
    context: CheckContext, evaluation: RobustnessEvaluation, reference: float, x: np.ndarray, eps_label: str
) -> tuple[RobustnessByGroup, ...]:
    """For each sensitive feature the target names: accuracy before and under the worst-case attack at the grid
    point nearest ``reference``, per group of the feature (grouped as the fairness check groups the test data)."""
    from modelshield.audit.checks.fairness import grouping_of, robustness_by_group

    target = context.target
    if not target.sensitive or not evaluation.examples:
        return ()
    result = evaluation.examples[evaluation.eps[_nearest(evaluation.eps, reference)]]
    correct = np.asarray(result.clean_correct, dtype=bool)
    robust = correct & ~result.success
    names = target.test.schema.names
    test = target.test.flat()
    flat = x.reshape(len(x), -1)
    out = []
    for name in target.sensitive:
        index = names.index(name)
        grouping = grouping_of(test[:, index], target.test.schema.features[index])
        out.append(
            robustness_by_group(
                correct,
                robust,
                grouping,
                grouping.assign(flat[:, index]),
                feature=name,
                eps=eps_label,
                resamples=GROUP_RESAMPLES,
                rng=context.rng,
            )
        )
    return tuple(out)


def _fooled(evaluation: RobustnessEvaluation, reference: float) -> tuple[EvasionResult, np.ndarray]:
    """The worst-case result at the grid point nearest ``reference``, and a few inputs it fooled."""
    eps = min(evaluation.examples, key=lambda e: abs(e - reference))
    result = evaluation.examples[eps]
    chosen = np.flatnonzero(result.success & result.clean_correct)[:_EXAMPLES]
    return result, chosen


_TOP_SHARE = 0.1  # the most salient tenth of the pixels


def _focus(
    evaluation: RobustnessEvaluation, reference: float, x: np.ndarray, model: Classifier
) -> PerturbationFocus | None:
    """Perturbation against saliency on the images fooled at the grid point nearest ``reference`` (None without
    gradients, with fewer than two fooled images, or where either map is flat)."""
    from scipy.stats import spearmanr

    from modelshield.explain.gradients import Saliency
    from modelshield.models.interface import GradientClassifier

    if not evaluation.examples or not isinstance(model, GradientClassifier):
        return None
    eps = min(evaluation.examples, key=lambda e: abs(e - reference))
    result = evaluation.examples[eps]
    fooled = np.flatnonzero(result.success & result.clean_correct)
    if len(fooled) < 2:
        return None
    clean = np.asarray(x[fooled], np.float32)
    change = np.abs(np.asarray(result.x_adv[fooled], np.float64) - clean).reshape(len(fooled), -1).mean(axis=0)
    saliency = np.abs(Saliency(model).explain(clean, target=np.asarray(result.y)[fooled]).values)
    salient = saliency.reshape(len(fooled), -1).mean(axis=0)
    inputs = salient.size
    top = max(1, round(_TOP_SHARE * inputs))
    on_top = np.argsort(-salient)[:top]
    total = float(change.sum())
    if total <= 0 or np.ptp(salient) <= 0 or np.ptp(change) <= 0:
        return None  # nothing moved, or a flat saliency map (a masked model's zero gradients): no ranking to compare
    rho = float(spearmanr(change, salient).statistic)
    return PerturbationFocus(
        records=len(fooled),
        inputs=inputs,
        top=top,
        share_on_top=float(change[on_top].sum() / total),
        spearman=rho if np.isfinite(rho) else 0.0,
    )


def _grey(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.round(a, 3))


def _image_examples(
    evaluation: RobustnessEvaluation, reference: float, x: np.ndarray, names: Sequence[str]
) -> tuple[ImageExample, ...]:
    """A few clean images beside the adversarial ones that fooled the model (first channel, grey levels)."""
    result, chosen = _fooled(evaluation, reference)
    low, high = float(x.min()), float(x.max())
    span = (high - low) or 1.0
    out = []
    for i in chosen:
        clean = (x[i].reshape(-1, *x.shape[-2:])[0] - low) / span
        adv = (result.x_adv[i].reshape(-1, *x.shape[-2:])[0] - low) / span
        label = f"{names[int(result.y[i])]} -> {names[int(result.predicted[i])]}"
        out.append(ImageExample(label=label, clean=_grey(clean), adversarial=_grey(adv)))
    return tuple(out)


def _record_examples(
    evaluation: RobustnessEvaluation,
    reference: float,
    x: np.ndarray,
    scale: np.ndarray,
    features: Sequence[str],
    names: Sequence[str],
) -> tuple[RecordExample, ...]:
    """For a few fooled records, the features the attack moved most, in the data's own units."""
    result, chosen = _fooled(evaluation, reference)
    out = []
    for i in chosen:
        before = x[i].reshape(-1)
        after = (result.x_adv[i] * scale).reshape(-1)
        moved = np.argsort(-np.abs(after - before))[:5]
        changes = tuple((features[k], f"{before[k]:.4g}", f"{after[k]:.4g}") for k in moved if after[k] != before[k])
        label = f"#{i}: {names[int(result.y[i])]} -> {names[int(result.predicted[i])]}"
        out.append(RecordExample(label=label, changes=changes))
    return tuple(out)


EVASION = EvasionCheck()
