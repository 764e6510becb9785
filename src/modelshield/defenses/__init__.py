"""Defenses: training-time hardening (adversarial training, TRADES, distillation, ensembles, DP-SGD), and at
inference time, detection of adversarial inputs and output hardening (top-k, rounding, labels only, noise,
reverse sigmoid).

    >>> from modelshield.defenses import FeatureSqueezingDetector  # doctest: +SKIP

Submodules load lazily, so ``import modelshield.defenses`` does not import torch:
:mod:`.training` (the training functions), :mod:`.detectors` (feature squeezing), :mod:`.backdoor` (Neural
Cleanse and STRIP backdoor detection), :mod:`.sanitize` (poisoned training records, found and removed). Retraining
a target with a defense and comparing before and after is composition, in :mod:`modelshield.harden`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AttackDetection",
    "DPTrainedModel",
    "DPTrainer",
    "Detection",
    "DetectionQuality",
    "DetectorMeasurement",
    "EnsembleModule",
    "ExtractionMonitor",
    "FeatureSqueezingDetector",
    "LabelOnly",
    "MonitorDecision",
    "MonitorMeasurement",
    "MonitorNotFittedError",
    "NeuralCleanse",
    "NeuralCleanseResult",
    "NoisyOutput",
    "NotFittedError",
    "OutputComparison",
    "OutputDefenseRow",
    "OutputHardening",
    "ReverseSigmoid",
    "Rounding",
    "STRIPDetector",
    "SanitizeResult",
    "TopK",
    "TrainedModel",
    "adversarial_training",
    "anomaly_index",
    "compare_output_defenses",
    "default_output_defenses",
    "defensive_distillation",
    "detection_quality",
    "dp_sgd_training",
    "ensemble",
    "measure_detector",
    "measure_monitor",
    "neural_cleanse",
    "sanitize",
    "standard_training",
    "trades",
]

_LAZY = {
    **dict.fromkeys(
        (
            "EnsembleModule",
            "TrainedModel",
            "adversarial_training",
            "defensive_distillation",
            "ensemble",
            "standard_training",
            "trades",
        ),
        "modelshield.defenses.training",
    ),
    **dict.fromkeys(
        ("DetectorMeasurement", "FeatureSqueezingDetector", "NotFittedError", "measure_detector"),
        "modelshield.defenses.detectors",
    ),
    **dict.fromkeys(
        (
            "AttackDetection",
            "ExtractionMonitor",
            "MonitorDecision",
            "MonitorMeasurement",
            "MonitorNotFittedError",
            "measure_monitor",
        ),
        "modelshield.defenses.extraction_monitor",
    ),
    **dict.fromkeys(("DPTrainedModel", "DPTrainer", "dp_sgd_training"), "modelshield.defenses.dp"),
    **dict.fromkeys(
        ("NeuralCleanse", "NeuralCleanseResult", "STRIPDetector", "anomaly_index", "neural_cleanse"),
        "modelshield.defenses.backdoor",
    ),
    **dict.fromkeys(
        ("Detection", "DetectionQuality", "SanitizeResult", "detection_quality", "sanitize"),
        "modelshield.defenses.sanitize",
    ),
    **dict.fromkeys(
        (
            "LabelOnly",
            "NoisyOutput",
            "OutputComparison",
            "OutputDefenseRow",
            "OutputHardening",
            "ReverseSigmoid",
            "Rounding",
            "TopK",
            "compare_output_defenses",
            "default_output_defenses",
        ),
        "modelshield.defenses.output",
    ),
}

if TYPE_CHECKING:
    from modelshield.defenses.backdoor import (
        NeuralCleanse,
        NeuralCleanseResult,
        STRIPDetector,
        anomaly_index,
        neural_cleanse,
    )
    from modelshield.defenses.detectors import (
        DetectorMeasurement,
        FeatureSqueezingDetector,
        NotFittedError,
        measure_detector,
    )
    from modelshield.defenses.dp import DPTrainedModel, DPTrainer, dp_sgd_training
    from modelshield.defenses.extraction_monitor import (
        AttackDetection,
        ExtractionMonitor,
        MonitorDecision,
        MonitorMeasurement,
        MonitorNotFittedError,
        measure_monitor,
    )
    from modelshield.defenses.output import (
        LabelOnly,
        NoisyOutput,
        OutputComparison,
        OutputDefenseRow,
        OutputHardening,
        ReverseSigmoid,
        Rounding,
        TopK,
        compare_output_defenses,
        default_output_defenses,
    )
    from modelshield.defenses.sanitize import (
        Detection,
        DetectionQuality,
        SanitizeResult,
        detection_quality,
        sanitize,
    )
    from modelshield.defenses.training import (
        EnsembleModule,
        TrainedModel,
        adversarial_training,
        defensive_distillation,
        ensemble,
        standard_training,
        trades,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
