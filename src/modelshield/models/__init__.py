"""Model adapters behind one :class:`Classifier` interface (see :mod:`modelshield.models.interface`).

    >>> from modelshield.models import Classifier, SklearnClassifier  # doctest: +SKIP

Adapters load lazily, so ``import modelshield.models`` imports neither torch nor onnxruntime. Loading a model
*file* (scan, then read) is :func:`modelshield.loading.load_model`, one floor up: it composes the scanner too.
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
    "OnnxClassifier",
    "RemoteClassifier",
    "SklearnClassifier",
    "TorchClassifier",
]

_LAZY = {
    "TorchClassifier": "modelshield.models.torch_classifier",
    "SklearnClassifier": "modelshield.models.sklearn_classifier",
    "OnnxClassifier": "modelshield.models.onnx_classifier",
    "RemoteClassifier": "modelshield.models.remote_classifier",
}

if TYPE_CHECKING:
    from modelshield.models.onnx_classifier import OnnxClassifier
    from modelshield.models.remote_classifier import RemoteClassifier
    from modelshield.models.sklearn_classifier import SklearnClassifier
    from modelshield.models.torch_classifier import TorchClassifier


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
