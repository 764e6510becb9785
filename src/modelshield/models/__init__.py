"""Model adapters behind one :class:`Classifier` interface (see :mod:`modelshield.models.interface`).

    >>> from modelshield.models import Classifier, SklearnClassifier, load_model  # doctest: +SKIP

Adapters load lazily, so ``import modelshield.models`` imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelshield.models.interface import Bounds, Classifier, FloatArray, GradientClassifier, IntArray

__all__ = [
    "Bounds",
    "Classifier",
    "FloatArray",
    "GradientClassifier",
    "IntArray",
    "LoadedModel",
    "OnnxClassifier",
    "RemoteClassifier",
    "SklearnClassifier",
    "TorchClassifier",
    "load_model",
]

_LAZY = {
    "TorchClassifier": "modelshield.models.torch_classifier",
    "SklearnClassifier": "modelshield.models.sklearn_classifier",
    "OnnxClassifier": "modelshield.models.onnx_classifier",
    "RemoteClassifier": "modelshield.models.remote_classifier",
    "LoadedModel": "modelshield.models.loading",
    "load_model": "modelshield.models.loading",
}

if TYPE_CHECKING:
    from modelshield.models.loading import LoadedModel, load_model
    from modelshield.models.onnx_classifier import OnnxClassifier
    from modelshield.models.remote_classifier import RemoteClassifier
    from modelshield.models.sklearn_classifier import SklearnClassifier
    from modelshield.models.torch_classifier import TorchClassifier


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
