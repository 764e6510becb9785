"""The ``evasion`` check: how much accuracy survives small adversarial changes to the input, measured reliably.

    >>> from modelshield.audit.checks.evasion import EVASION, SEVERITY_THRESHOLDS
    >>> SEVERITY_THRESHOLDS[0]
    (0.5, <Severity.HIGH: 'high'>)

The check runs :func:`~modelshield.attacks.evasion.evaluation.evaluate_robustness` (FGSM, PGD, APGD-CE, APGD-DLR
and their worst case for PyTorch models; the Square attack for black-box models) at a grid of L∞ budgets ε.

- Images (one value range for every input): ε = 1%, 3%, 5%, 10% and 20% of the range; the reference ε is 5%.
- Tabular data: the model is attacked in units of each feature's standard deviation (measured on the evaluation
  sample), ε = 0.05, 0.1, 0.25, 0.5 and 1 standard deviation; the reference ε is 0.25. Immutable features are left
  alone; integer and categorical features are held fixed (moving them by whole steps is outside this check).

Severity from the worst-case robust accuracy at the reference ε, relative to clean accuracy
(:data:`SEVERITY_THRESHOLDS`): below half of clean accuracy high, below 80% medium, else low. A failed
reliability check (gradient masking signs) adds an ``evasion.unreliable-evaluation`` finding (medium): the
numbers then overstate robustness and a stronger, adaptive evaluation is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from modelshield.audit.interface import Check, CheckContext
from modelshield.findings import Chart, Finding, OwaspMl, Severity

if TYPE_CHECKING:
    from modelshield.models.interface import Classifier

__all__ = ["EVASION", "SEVERITY_THRESHOLDS"]

#: Worst-case robust accuracy at the reference ε, as a share of clean accuracy, below which each severity applies.
SEVERITY_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.HIGH), (0.8, Severity.MEDIUM))
IMAGE_EPS = (0.01, 0.03, 0.05, 0.1, 0.2)  # share of the input range
TABULAR_EPS = (0.05, 0.1, 0.25, 0.5, 1.0)  # standard deviations
_ATLAS = ("AML.T0043", "AML.T0015")


def _scaled(classifier: Classifier, scale: np.ndarray, offset: np.ndarray) -> Classifier:
    """The same model, taking inputs in units of ``scale`` around ``offset`` (x = u * scale + offset)."""
    from modelshield.models.interface import Bounds, GradientClassifier

    bounds = classifier.clip_values
    new_bounds = None
    if bounds is not None:
        low = (np.broadcast_to(np.asarray(bounds.low, np.float32), scale.shape) - offset) / scale
        high = (np.broadcast_to(np.asarray(bounds.high, np.float32), scale.shape) - offset) / scale
        new_bounds = Bounds(low.astype(np.float32), high.astype(np.float32))
    if isinstance(classifier, GradientClassifier) and type(classifier).__name__ == "TorchClassifier":
        import torch

        from modelshield.models.torch_classifier import TorchClassifier

        inner = classifier
        assert isinstance(inner, TorchClassifier)  # noqa: S101 - checked just above

        class _Affine(torch.nn.Module):
            scale_t: torch.Tensor
            offset_t: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("scale_t", torch.as_tensor(scale, dtype=torch.float32))
                self.register_buffer("offset_t", torch.as_tensor(offset, dtype=torch.float32))

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                return u * self.scale_t + self.offset_t

        module = torch.nn.Sequential(_Affine(), inner.module)
        return TorchClassifier(module, n_classes=inner.n_classes, input_shape=inner.input_shape,
                               clip_values=new_bounds, output=inner.output, device=inner.device)  # fmt: skip
    from modelshield.models.interface import Classifier as Base

    class _ScaledBlackBox(Base):
        def _predict_proba(self, x: np.ndarray) -> np.ndarray:
            return classifier.predict_proba((x * scale + offset).astype(np.float32))

    return _ScaledBlackBox(n_classes=classifier.n_classes, input_shape=classifier.input_shape, clip_values=new_bounds)


def evasion_findings(context: CheckContext) -> Sequence[Finding]:
    from modelshield.attacks.evasion.evaluation import evaluate_robustness
    from modelshield.attacks.evasion.interface import Constraints

    target = context.target
    classifier = target.classifier
    x, y = context.sample_test()
    bounds = classifier.clip_values
    # Images: several input dimensions and one value range shared by every input (scalar or uniform bounds).
    image = (
        len(classifier.input_shape) > 1
        and bounds is not None
        and np.ptp(np.asarray(bounds.low)) == 0
        and np.ptp(np.asarray(bounds.high)) == 0
    )
    steps = max(10, round(40 * context.budget.scale))
    queries = max(200, round(1000 * context.budget.scale))
    if image:
        assert bounds is not None  # noqa: S101 - part of the image test above
        width = float(np.max(bounds.high)) - float(np.min(bounds.low))
        grid, reference, unit = tuple(e * width for e in IMAGE_EPS), 0.05 * width, "of the input range"
        evaluation = evaluate_robustness(classifier, x, y, eps=grid, steps=steps, seed=context.seed,
                                         blackbox_queries=queries)  # fmt: skip
        labels = tuple(f"{e:g}" for e in IMAGE_EPS)
        examples = _image_examples(evaluation, reference, x, target.test.label_names)
    else:
        flat = x.reshape(len(x), -1)
        scale = flat.std(axis=0).reshape(classifier.input_shape).astype(np.float32)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        offset = np.zeros_like(scale)
        scaled = _scaled(classifier, scale, offset)
        # Ranges in the data's units (schema and model), then divided into standard-deviation units; integer
        # and categorical features are held fixed.
        raw = Constraints.from_schema(target.test.schema, classifier.clip_values)
        constraints = Constraints(
            low=(raw.low / scale).astype(np.float32),
            high=(raw.high / scale).astype(np.float32),
            mutable=raw.mutable & ~raw.integer,
            integer=np.zeros_like(raw.integer),
        )
        grid, reference, unit = TABULAR_EPS, 0.25, "standard deviations"
        u = (x / scale).astype(np.float32)
        evaluation = evaluate_robustness(scaled, u, y, eps=grid, steps=steps, seed=context.seed,
                                         constraints=constraints, blackbox_queries=queries)  # fmt: skip
        labels = tuple(f"{e:g}" for e in TABULAR_EPS)
        examples = _record_examples(evaluation, reference, x, scale, target.test.schema.names, target.test.label_names)
    return _findings(evaluation, grid, reference, unit, labels, classifier.n_classes, examples)


_EXAMPLES = 8


def _fooled(evaluation: object, reference: float) -> tuple[object, np.ndarray]:
    from modelshield.attacks.evasion.evaluation import RobustnessEvaluation

    assert isinstance(evaluation, RobustnessEvaluation)  # noqa: S101 - the caller passes one
    eps = min(evaluation.examples, key=lambda e: abs(e - reference))
    result = evaluation.examples[eps]
    chosen = np.flatnonzero(result.success & result.clean_correct)[:_EXAMPLES]
    return result, chosen


def _image_examples(evaluation: object, reference: float, x: np.ndarray, names: Sequence[str]) -> list[object]:
    """A few clean images beside the adversarial ones that fooled the model (first channel, grey levels)."""
    result, chosen = _fooled(evaluation, reference)
    low, high = float(x.min()), float(x.max())
    span = (high - low) or 1.0
    out: list[object] = []
    for i in chosen:
        clean = (x[i].reshape(-1, *x.shape[-2:])[0] - low) / span
        adv = (result.x_adv[i].reshape(-1, *x.shape[-2:])[0] - low) / span  # type: ignore[attr-defined]
        out.append({
            "label": f"{names[int(result.y[i])]} -> {names[int(result.predicted[i])]}",  # type: ignore[attr-defined]
            "clean": np.round(clean, 3).tolist(),
            "adversarial": np.round(adv, 3).tolist(),
        })  # fmt: skip
    return out


def _record_examples(
    evaluation: object,
    reference: float,
    x: np.ndarray,
    scale: np.ndarray,
    features: Sequence[str],
    names: Sequence[str],
) -> list[object]:
    """For a few fooled records, the features the attack moved most, in the data's own units."""
    result, chosen = _fooled(evaluation, reference)
    out: list[object] = []
    for i in chosen:
        before = x[i].reshape(-1)
        after = (result.x_adv[i] * scale).reshape(-1)  # type: ignore[attr-defined]
        moved = np.argsort(-np.abs(after - before))[:5]
        changes = [[features[k], f"{before[k]:.4g}", f"{after[k]:.4g}"] for k in moved if after[k] != before[k]]
        label = f"#{i}: {names[int(result.y[i])]} -> {names[int(result.predicted[i])]}"  # type: ignore[attr-defined]
        out.append({"label": label, "changes": changes})
    return out


def _findings(evaluation: object, grid: tuple[float, ...], reference: float, unit: str, labels: tuple[str, ...],
              n_classes: int, examples: list[object]) -> list[Finding]:  # fmt: skip
    from modelshield.attacks.evasion.evaluation import RobustnessEvaluation

    assert isinstance(evaluation, RobustnessEvaluation)  # noqa: S101 - the caller passes one
    ref_index = int(np.argmin([abs(e - reference) for e in evaluation.eps]))
    robust = evaluation.worst[ref_index]
    clean = evaluation.clean_accuracy
    ratio = robust / clean if clean > 0 else 0.0
    severity = next((s for limit, s in SEVERITY_THRESHOLDS if ratio < limit), Severity.LOW)
    curve = Chart(
        title="Robust accuracy against the attack budget (L∞)",
        kind="line",
        x=tuple(float(v) for v in labels),
        series={**evaluation.robust, "worst case": evaluation.worst},
        x_label=f"ε ({unit})",
        y_label="accuracy",
        y_range=(0.0, 1.0),
    )
    per_class = Chart(
        title=f"Robust accuracy per class at ε = {labels[ref_index]} {unit}",
        kind="bar",
        x=tuple(str(c) for c in range(n_classes)),
        series={"robust accuracy": tuple(float(np.nan_to_num(v)) for v in evaluation.worst_per_class[ref_index])},
        y_range=(0.0, 1.0),
    )
    metrics: dict[str, object] = {
        "clean_accuracy": round(clean, 4),
        "reference_eps": labels[ref_index],
        "robust_accuracy_at_reference": round(robust, 4),
        "robust_accuracy": {lab: round(v, 4) for lab, v in zip(labels, evaluation.worst, strict=True)},
        "samples": evaluation.n,
        "queries": evaluation.queries,
    }
    if evaluation.minimal_distances:
        metrics["median_minimal_l2_distance"] = round(float(np.median(evaluation.minimal_distances)), 4)
    findings = [
        Finding(
            id="evasion.robust-accuracy",
            check="evasion",
            title=f"Adversarial inputs cut accuracy from {clean:.0%} to {robust:.0%} at ε = {labels[ref_index]} {unit}",
            severity=severity,
            description=(
                f"Worst case over {', '.join(evaluation.robust)} on {evaluation.n} test inputs. Changes of "
                f"{labels[ref_index]} {unit} per feature, invisible or plausible to a person, turn "
                f"{max(clean - robust, 0):.0%} of the inputs the model got right into errors."
            ),
            remediation=(
                "Harden the model (adversarial training: `modelshield harden --defense adversarial-training`), "
                "detect adversarial inputs at serving time, and re-run this check."
            ),
            owasp=OwaspMl.ML01,
            atlas=_ATLAS,
            metrics=metrics,  # type: ignore[arg-type]
            evidence={"examples": examples},  # type: ignore[dict-item]
            charts=(curve, per_class),
        )
    ]
    for problem in evaluation.reliability:
        findings.append(
            Finding(
                id="evasion.unreliable-evaluation",
                check="evasion",
                title="The robustness evaluation shows signs of gradient masking",
                severity=Severity.MEDIUM,
                description=problem.message,
                remediation="Do not trust these robust accuracies: evaluate with adaptive attacks (BPDA, EOT, "
                "gradient-free attacks) before relying on the model's robustness.",
                owasp=OwaspMl.ML01,
                atlas=_ATLAS,
                evidence={"check": problem.id},
            )
        )
    return findings


EVASION = Check(
    name="evasion",
    title="Adversarial robustness",
    description="Robust accuracy under white-box (FGSM, PGD, APGD) or black-box (Square) attacks at several ε, "
    "with gradient-masking checks.",
    run=evasion_findings,
)
