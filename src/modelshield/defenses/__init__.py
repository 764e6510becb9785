"""Defenses: training-time hardening (adversarial training, TRADES, distillation, ensembles) and inference-time
detection of adversarial inputs.

    >>> from modelshield.defenses import FeatureSqueezingDetector, harden  # doctest: +SKIP

Submodules load lazily, so ``import modelshield.defenses`` does not import torch:
:mod:`.training` (the training functions), :mod:`.detectors` (feature squeezing), :mod:`.harden` (retrain a
reference target and compare before and after).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Defense",
    "DetectorMeasurement",
    "EnsembleModule",
    "FeatureSqueezingDetector",
    "HardeningResult",
    "ModelScores",
    "NotFittedError",
    "TrainedModel",
    "adversarial_training",
    "defensive_distillation",
    "ensemble",
    "harden",
    "load_hardened",
    "measure_detector",
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
        ("Defense", "HardeningResult", "ModelScores", "harden", "load_hardened"), "modelshield.defenses.harden"
    ),
}

if TYPE_CHECKING:
    from modelshield.defenses.detectors import (
        DetectorMeasurement,
        FeatureSqueezingDetector,
        NotFittedError,
        measure_detector,
    )
    from modelshield.defenses.harden import Defense, HardeningResult, ModelScores, harden, load_hardened
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
