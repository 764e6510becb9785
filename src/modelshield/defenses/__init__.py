"""Defenses: training-time hardening (adversarial training, TRADES, distillation, ensembles, DP-SGD), data-time
sanitising, and the inference guards a gateway calls per request: input detectors (feature squeezing, STRIP), a
per-client extraction monitor, and output hardening (top-k, rounding, labels only, noise, reverse sigmoid).

    >>> from modelshield.defenses import GuardStage, default_registry
    >>> [f.name for f in default_registry(entry_points=False).stage(GuardStage.INPUT)]
    ['feature-squeezing', 'strip']

Submodules load lazily, so ``import modelshield.defenses`` does not import torch: :mod:`.interface` (the
:class:`InferenceGuard` protocol, its request and decision types), :mod:`.registry` (guard factories, built-in and
plug-in), :mod:`.detectors` (feature squeezing), :mod:`.backdoor` (Neural Cleanse and STRIP),
:mod:`.extraction_monitor` (PRADA, an off-distribution test and a proximity test, per client), :mod:`.output` (output
hardening), :mod:`.training` and :mod:`.dp` (the training functions), :mod:`.sanitize` (poisoned training records,
found and removed). Retraining a target with a defense and comparing before and after is composition, in
:mod:`modelshield.harden`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Action",
    "AttackDetection",
    "ClientStates",
    "DPTrainedModel",
    "DPTrainer",
    "Detection",
    "DetectionQuality",
    "DetectorMeasurement",
    "EnsembleModule",
    "ExtractionMonitor",
    "FeatureSqueezingDetector",
    "GuardDecision",
    "GuardFactory",
    "GuardMemory",
    "GuardRegistry",
    "GuardRequest",
    "GuardStage",
    "HardenedClassifier",
    "InferenceGuard",
    "InputDetector",
    "LabelOnly",
    "MonitorDecision",
    "MonitorMeasurement",
    "NeuralCleanse",
    "NeuralCleanseResult",
    "NoisyOutput",
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
    "builtin_guards",
    "compare_output_defenses",
    "default_output_defenses",
    "default_registry",
    "defensive_distillation",
    "detection_quality",
    "dp_sgd_training",
    "ensemble",
    "measure_detector",
    "measure_monitor",
    "neural_cleanse",
    "standard_training",
    "trades",
]

# Each public name, listed once, under the module that defines it (a test checks that no name is listed twice). The
# function sanitize() is not among them: its name is the submodule's, which importing the submodule binds here.
_EXPORTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "modelshield.defenses.interface",
        (
            "Action",
            "ClientStates",
            "GuardDecision",
            "GuardMemory",
            "GuardRequest",
            "GuardStage",
            "InferenceGuard",
            "InputDetector",
        ),
    ),
    (
        "modelshield.defenses.registry",
        (
            "GuardFactory",
            "GuardRegistry",
            "builtin_guards",
            "default_registry",
        ),
    ),
    (
        "modelshield.defenses.detectors",
        (
            "DetectorMeasurement",
            "FeatureSqueezingDetector",
            "measure_detector",
        ),
    ),
    (
        "modelshield.defenses.backdoor",
        (
            "NeuralCleanse",
            "NeuralCleanseResult",
            "STRIPDetector",
            "anomaly_index",
            "neural_cleanse",
        ),
    ),
    (
        "modelshield.defenses.extraction_monitor",
        (
            "AttackDetection",
            "ExtractionMonitor",
            "MonitorDecision",
            "MonitorMeasurement",
            "measure_monitor",
        ),
    ),
    (
        "modelshield.defenses.output",
        (
            "HardenedClassifier",
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
    ),
    (
        "modelshield.defenses.training",
        (
            "EnsembleModule",
            "TrainedModel",
            "adversarial_training",
            "defensive_distillation",
            "ensemble",
            "standard_training",
            "trades",
        ),
    ),
    (
        "modelshield.defenses.dp",
        (
            "DPTrainedModel",
            "DPTrainer",
            "dp_sgd_training",
        ),
    ),
    (
        "modelshield.defenses.sanitize",
        (
            "Detection",
            "DetectionQuality",
            "SanitizeResult",
            "detection_quality",
        ),
    ),
)
_LAZY = {name: module for module, names in _EXPORTS for name in names}

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
        measure_detector,
    )
    from modelshield.defenses.dp import (
        DPTrainedModel,
        DPTrainer,
        dp_sgd_training,
    )
    from modelshield.defenses.extraction_monitor import (
        AttackDetection,
        ExtractionMonitor,
        MonitorDecision,
        MonitorMeasurement,
        measure_monitor,
    )
    from modelshield.defenses.interface import (
        Action,
        ClientStates,
        GuardDecision,
        GuardMemory,
        GuardRequest,
        GuardStage,
        InferenceGuard,
        InputDetector,
    )
    from modelshield.defenses.output import (
        HardenedClassifier,
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
    from modelshield.defenses.registry import (
        GuardFactory,
        GuardRegistry,
        builtin_guards,
        default_registry,
    )
    from modelshield.defenses.sanitize import (
        Detection,
        DetectionQuality,
        SanitizeResult,
        detection_quality,
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
