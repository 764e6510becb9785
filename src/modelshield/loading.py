"""Load a model file into a :class:`~modelshield.models.Classifier`, safely by default: scan, then load.

    >>> from modelshield.loading import load_model
    >>> loaded = load_model("model.onnx")  # doctest: +SKIP
    >>> loaded.classifier.predict(x)  # doctest: +SKIP

The format is identified from the file's content, not its name. Formats that cannot run code are loaded
directly: ONNX, skops (scikit-learn; types outside skops' default trust list must be named in ``trusted_types``),
safetensors and PyTorch state dicts (read with ``weights_only=True``; these hold weights only, so an
``architecture`` module must be given). Pickle, joblib, full PyTorch checkpoints and ``torch.export`` archives
(whose loader unpickles) are refused with :class:`UnsafeModelError` unless ``unsafe_pickle=True`` is passed, which
logs a warning: unpickling a file runs whatever code its author put in it.

This module composes two layers, and so lives above both: the scanner (:mod:`modelshield.supply_chain.scan`)
vets every file whose format cannot run code before it is parsed (a tampered header, a Keras Lambda layer), and the
safe readers of :mod:`modelshield.models.serialization` load it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield._extras import require
from modelshield.errors import FileFormatError, InvalidParameterError, UnsafeModelError
from modelshield.models.interface import Bounds, Classifier
from modelshield.models.serialization import load_skops, load_torch_weights
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_format

if TYPE_CHECKING:
    import torch

__all__ = ["LoadedModel", "load_model"]

log = logging.getLogger(__name__)

Architecture = Callable[[], "torch.nn.Module"]


@dataclass(frozen=True)
class LoadedModel:
    """A classifier loaded from a file, with the file's identified format."""

    classifier: Classifier
    path: Path
    format: FormatInfo


def load_model(
    path: str | Path,
    *,
    architecture: Architecture | None = None,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
    clip_values: Bounds | None = None,
    trusted_types: Sequence[str] = (),
    unsafe_pickle: bool = False,
    unsafe_ignore_scan: bool = False,
    device: str | None = "auto",
) -> LoadedModel:
    """Load the model at ``path`` as a classifier; see the module docstring for the formats and the rules.

    Even with ``unsafe_pickle``, a file that the scanner rates critical (it would run a shell, ``eval``, import a
    module to call into it...) is refused; ``unsafe_ignore_scan`` overrides that second refusal too, with a warning.
    """
    path = Path(path)
    info = identify_format(path)
    fmt = info.format
    if not info.can_execute_code:
        _refuse_if_scan_fails(path)
    if fmt is ModelFormat.ONNX:
        from modelshield.models.onnx_classifier import OnnxClassifier

        clf: Classifier = OnnxClassifier(path, input_shape=input_shape, n_classes=n_classes, clip_values=clip_values)
    elif fmt is ModelFormat.SKOPS:
        clf = _sklearn(load_skops(path, trusted_types=trusted_types), input_shape, clip_values)
    elif fmt is ModelFormat.SAFETENSORS or (fmt is ModelFormat.PYTORCH_ZIP and architecture is not None):
        clf = _torch_from_weights(path, architecture, input_shape, n_classes, clip_values, device)
    elif info.can_execute_code:
        if not unsafe_pickle:
            raise UnsafeModelError(f"{path} is a {info.detail}: loading it can run code that the file contains.")
        _refuse_if_critical(path, override=unsafe_ignore_scan)
        log.warning("Unpickling %s (%s) because unsafe_pickle=True was given.", path, info.detail)
        clf = _from_unsafe(path, info, input_shape, n_classes, clip_values, device)
    else:
        raise FileFormatError(
            f"{path} is a {info.detail}, which modelshield cannot load as a model.",
            remedy="Use ONNX, skops, or safetensors weights with an architecture.",
        )
    return LoadedModel(classifier=clf, path=path, format=info)


def _refuse_if_critical(path: Path, *, override: bool) -> None:
    """Refuse to unpickle a file whose scan finds code that runs on load (critical), unless ``override``."""
    from modelshield.findings import Severity
    from modelshield.supply_chain.scan import scan_file

    critical = [f for f in scan_file(path).findings if f.severity >= Severity.CRITICAL]
    if not critical:
        return
    shown = "; ".join(f"{f.title} ({f.id})" for f in critical[:3])
    if override:
        log.warning(
            "Loading %s although its scan is critical (%s), because unsafe_ignore_scan=True was given.", path, shown
        )
        return
    raise UnsafeModelError(
        f"{path} would run code when it is unpickled: {shown}.",
        remedy="Do not load it. If you wrote it and know why the scanner objects, run `modelshield scan` on it and "
        "pass --unsafe-ignore-scan as well as --unsafe-allow-pickle.",
    )


def _refuse_if_scan_fails(path: Path) -> None:
    """Refuse a file whose scan reaches high severity (a tampered header, a Lambda layer, escaping paths...)."""
    from modelshield.findings import Severity
    from modelshield.supply_chain.scan import scan_file

    bad = [f for f in scan_file(path).findings if f.severity >= Severity.HIGH]
    if bad:
        shown = "; ".join(f"{f.title} ({f.id})" for f in bad[:3])
        raise UnsafeModelError(
            f"{path} fails its security scan: {shown}.",
            remedy="Run `modelshield scan` on it for the details; do not load it unless you trust its origin.",
        )


def _sklearn(estimator: Any, input_shape: tuple[int, ...] | None, clip_values: Bounds | None) -> Classifier:
    from modelshield.models.sklearn_classifier import SklearnClassifier

    return SklearnClassifier(estimator, input_shape=input_shape, clip_values=clip_values)


def _need_shape(path: Path, input_shape: tuple[int, ...] | None, n_classes: int | None) -> tuple[tuple[int, ...], int]:
    if input_shape is None or n_classes is None:
        raise InvalidParameterError(
            f"{path} holds a PyTorch model, which does not record its input shape and classes.",
            remedy="Pass input_shape and n_classes (the CLI takes them from --data).",
        )
    return input_shape, n_classes


def _torch_from_weights(
    path: Path,
    architecture: Architecture | None,
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
    clip_values: Bounds | None,
    device: str | None,
) -> Classifier:
    from modelshield.models.torch_classifier import TorchClassifier

    if architecture is None:
        raise InvalidParameterError(
            f"{path} holds weights only; the network that uses them must be given.",
            remedy="Pass architecture= (CLI: --arch zoo:NAME for a reference architecture).",
        )
    shape, classes = _need_shape(path, input_shape, n_classes)
    net = architecture()
    load_torch_weights(net, path)
    return TorchClassifier(net, n_classes=classes, input_shape=shape, clip_values=clip_values, device=device)


def _from_unsafe(
    path: Path,
    info: FormatInfo,
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
    clip_values: Bounds | None,
    device: str | None,
) -> Classifier:
    if info.format in (ModelFormat.PYTORCH_ZIP, ModelFormat.PYTORCH_LEGACY_TAR, ModelFormat.PYTORCH_EXPORT):
        torch = require("torch", extra="torch", feature="PyTorch models")
        from modelshield.models.torch_classifier import TorchClassifier

        if info.format is ModelFormat.PYTORCH_EXPORT:
            module = torch.export.load(path).module()
        else:
            module = torch.load(path, map_location="cpu", weights_only=False)  # nosec: explicit opt-in, warned above
        if not isinstance(module, torch.nn.Module):
            raise FileFormatError(f"{path} holds a {type(module).__name__}, not a torch.nn.Module.")
        shape, classes = _need_shape(path, input_shape, n_classes)
        return TorchClassifier(module, n_classes=classes, input_shape=shape, clip_values=clip_values, device=device)
    if info.format in (ModelFormat.PICKLE, ModelFormat.COMPRESSED):
        import joblib

        try:
            obj = joblib.load(path)  # explicit opt-in, warned above
        except Exception as exc:
            raise FileFormatError(f"{path} could not be unpickled: {exc}.") from exc
        if hasattr(obj, "predict_proba"):
            return _sklearn(obj, input_shape, clip_values)
        raise FileFormatError(f"{path} holds a {type(obj).__name__}, which has no predict_proba.")
    raise FileFormatError(f"{path} is a {info.detail}, which modelshield cannot load as a model.")
