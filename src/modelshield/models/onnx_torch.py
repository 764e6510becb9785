"""White-box access to ONNX models: the graph converted to a torch module, verified against ONNX Runtime.

    >>> from modelshield.models import OnnxClassifier
    >>> from modelshield.models.onnx_torch import to_torch
    >>> onnx_model = OnnxClassifier("model.onnx")  # doctest: +SKIP
    >>> conversion = to_torch(onnx_model, probe=x_test)  # doctest: +SKIP
    >>> white_box = conversion.classifier or onnx_model  # None, with conversion.reason, if refused  # doctest: +SKIP

A black-box attack on a model whose weights are in hand understates what an attacker with the file can do, so an
ONNX network is attacked with gradients whenever its graph converts: onnx2torch builds a torch module from the
graph's operators and weights (nothing but the graph is run), and the conversion is kept only if that module gives
ONNX Runtime's class scores, within tolerance, on the probe inputs the caller passes (its test data) and on random
inputs in the valid range, and if gradients flow from its scores back to its input. Anything else is refused with
the reason, and the model stays a black box: graphs of scikit-learn's converters (``ai.onnx.ml`` operators such as
tree ensembles and ``ZipMap``), graphs of several inputs, operators onnx2torch lacks, or scores that differ.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield._extras import require
from modelshield.errors import InvalidParameterError, MissingExtraError
from modelshield.models.interface import FloatArray

if TYPE_CHECKING:
    import torch

    from modelshield.models.onnx_classifier import OnnxClassifier
    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["Conversion", "to_torch"]

log = logging.getLogger(__name__)

RANDOM_INPUTS = 64
"""Random inputs in the valid range that every conversion is verified on, besides the caller's probe."""


@dataclass(frozen=True)
class Conversion:
    """The result of :func:`to_torch`: a white-box classifier, or None with the reason it was refused.

    ``max_difference`` is the largest absolute difference between the torch module's class scores (probabilities
    when the graph outputs probabilities, else logits) and ONNX Runtime's over the verification inputs; None when
    the graph was refused before it ran.
    """

    classifier: TorchClassifier | None
    max_difference: float | None
    reason: str


class _RefusedError(Exception):
    """Internal: the conversion is refused for the reason given."""


def to_torch(
    classifier: OnnxClassifier,
    probe: NDArray[np.floating] | None = None,
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    device: str | None = "auto",
) -> Conversion:
    """``classifier``'s graph as a :class:`~modelshield.models.TorchClassifier`, once verified; see the module
    docstring.

    ``probe`` holds inputs of the model's input shape (the test data); the torch module must give every score
    within ``atol + rtol * |score|`` of ONNX Runtime's on them and on random inputs in the valid range. The
    classifier has ``classifier``'s classes, input shape and valid range, and runs on ``device`` (CUDA when
    available by default); the verification runs on the CPU, where torch computes in full float32 precision.
    Never raises for a graph that does not convert: the :class:`Conversion` says why.
    """
    if not (rtol >= 0 and atol >= 0):
        raise InvalidParameterError(f"rtol and atol must be non-negative, got rtol={rtol} and atol={atol}.")
    try:
        module, output, inputs = _convert(classifier, probe)
        scores, reference = _compare(classifier, module, inputs)
    except _RefusedError as exc:
        log.info("ONNX model not converted to torch: %s", exc)
        return Conversion(classifier=None, max_difference=None, reason=str(exc))
    difference = np.abs(scores - reference)
    max_difference = float(difference.max()) if difference.size else 0.0
    worst = float((difference - rtol * np.abs(reference)).max()) if difference.size else 0.0
    kind = "probabilities" if output == "probabilities" else "logits"
    if not np.all(np.isfinite(difference)) or worst > atol:
        reason = (
            f"the converted torch module's {kind} differ from ONNX Runtime's by up to {max_difference:.3g} on "
            f"{len(inputs)} inputs, beyond the tolerance (atol {atol:g} + rtol {rtol:g} x |score|)"
        )
        log.warning("ONNX model not converted to torch: %s.", reason)
        return Conversion(classifier=None, max_difference=max_difference, reason=reason)
    try:
        _check_gradient(module, inputs[: min(len(inputs), 8)], output)
    except _RefusedError as exc:
        log.info("ONNX model not converted to torch: %s", exc)
        return Conversion(classifier=None, max_difference=max_difference, reason=str(exc))
    from modelshield.models.torch_classifier import TorchClassifier

    white_box = TorchClassifier(
        module,
        n_classes=classifier.n_classes,
        input_shape=classifier.input_shape,
        clip_values=classifier.clip_values,
        output=output,
        device=device,
        batch_size=min(classifier.batch_size, 512),
    )
    n_probe = 0 if probe is None else len(inputs) - RANDOM_INPUTS
    reason = (
        f"converted with onnx2torch; its {kind} match ONNX Runtime's on {len(inputs)} inputs ({n_probe} probe, "
        f"{RANDOM_INPUTS} random) to within {max_difference:.3g}, and gradients flow to the input"
    )
    log.info("ONNX model converted to torch: %s.", reason)
    return Conversion(classifier=white_box, max_difference=max_difference, reason=reason)


# -- conversion ----------------------------------------------------------------------------------------------------
def _convert(
    classifier: OnnxClassifier, probe: NDArray[np.floating] | None
) -> tuple[torch.nn.Module, Literal["logits", "probabilities"], FloatArray]:
    """The graph as a CPU torch module that maps a batch to the class scores, the kind of those scores, and the
    verification inputs; raises :class:`_RefusedError` for what cannot be converted."""
    try:
        require("torch", extra="torch", feature="White-box attacks on ONNX models")
        onnx = require("onnx", extra="onnx", feature="White-box attacks on ONNX models")
    except MissingExtraError as exc:
        raise _RefusedError(f"{exc} ({exc.remedy})") from exc
    source = classifier.model_source
    try:
        proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    except Exception as exc:  # onnx raises DecodeError and OSError of its own
        raise _RefusedError(f"the ONNX graph could not be read again: {_one_line(exc)}") from exc
    graph = proto.graph
    foreign = sorted({node.op_type for node in graph.node if node.domain not in ("", "ai.onnx")})
    if foreign:
        raise _RefusedError(
            f"the graph uses operators that have no torch equivalent ({', '.join(foreign[:6])}: a scikit-learn or "
            "other non-neural model, or custom operators)"
        )
    initializers = {tensor.name for tensor in graph.initializer}
    real_inputs = [value.name for value in graph.input if value.name not in initializers]
    if len(real_inputs) != 1:
        raise _RefusedError(
            f"the graph takes {len(real_inputs)} inputs ({', '.join(real_inputs)}); only one is supported"
        )
    outputs = [value.name for value in graph.output]
    if classifier.output_name not in outputs:
        raise _RefusedError(f"the class scores {classifier.output_name!r} are not an output of the graph")
    index = outputs.index(classifier.output_name)
    inputs = _verification_inputs(classifier, probe)
    output = _output_kind(classifier, inputs)
    converted = _onnx2torch_convert(onnx, proto)
    wrapper = _wrapper_class()(converted, flatten=classifier.flattens_input, index=index if len(outputs) > 1 else -1)
    for parameter in wrapper.parameters():
        parameter.requires_grad_(False)
    return wrapper.eval(), output, inputs


ONNX2TORCH_OPSET = 17
"""The newest opset whose operators onnx2torch converts throughout (opset 18 moved the axes of the Reduce
operators into inputs); newer graphs are converted down to it with onnx's version converter first."""


def _onnx2torch_convert(onnx: ModuleType, proto: Any) -> torch.nn.Module:
    """``proto`` converted by onnx2torch, as it is or, failing that, converted down to :data:`ONNX2TORCH_OPSET`
    first (the graph ONNX Runtime runs stays the reference: the result is verified against it)."""
    onnx2torch = _import_onnx2torch()
    try:
        module: torch.nn.Module = onnx2torch.convert(proto)
        return module
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError... for operators it lacks
        error = exc
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > ONNX2TORCH_OPSET:
        try:
            older = onnx.version_converter.convert_version(proto, ONNX2TORCH_OPSET)
            module = onnx2torch.convert(older)
            log.info("ONNX graph of opset %d converted to torch through opset %d.", opset, ONNX2TORCH_OPSET)
            return module
        except Exception as exc:  # the version converter lacks adapters for some operators
            log.debug("Opset %d could not be converted down: %s", opset, _one_line(exc))
    raise _RefusedError(f"onnx2torch cannot convert the graph: {_one_line(error)}") from error


@functools.cache
def _wrapper_class() -> type[torch.nn.Module]:
    """The module that feeds a batch to the converted graph and returns its class scores as float32."""
    import torch

    class OnnxGraphModule(torch.nn.Module):
        """A graph converted by onnx2torch, as one input and one output of class scores."""

        def __init__(self, converted: torch.nn.Module, *, flatten: bool, index: int) -> None:
            super().__init__()
            self.converted = converted
            self.flatten = flatten
            self.index = index

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.flatten:
                x = x.reshape(len(x), -1)
            out = self.converted(x)
            if self.index >= 0:
                out = out[self.index]
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the converted graph returned a {type(out).__name__}, not a tensor of class scores")
            return out.float()

    return OnnxGraphModule


def _import_onnx2torch() -> Any:
    """onnx2torch, imported even where torchvision cannot be: onnx2torch imports torchvision for two detection
    operators (NonMaxSuppression, RoiAlign) that classifiers do not use, and a torchvision built for CUDA fails to
    import beside a CPU build of torch. A placeholder stands in for it during the import (graphs with those
    operators then fail to run, and are refused)."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    try:
        importlib.import_module("torchvision")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".", 1)[0] == "torchvision":
            raise _RefusedError("onnx2torch is not installed (pip install 'modelshield[onnx]')") from exc
        return _import_with_placeholder(exc)
    except Exception as exc:  # a torchvision built against another torch: "operator torchvision::nms does not exist"
        return _import_with_placeholder(exc)
    return _import_module("onnx2torch")


def _import_with_placeholder(error: BaseException) -> Any:
    log.debug("torchvision cannot be imported (%s); onnx2torch is imported without it.", _one_line(error))
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".", 1)[0] == "torchvision"}
    placeholder, ops = ModuleType("torchvision"), ModuleType("torchvision.ops")

    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"torchvision cannot be imported here: {_one_line(error)}")

    for name in ("nms", "batched_nms", "box_convert", "roi_align"):
        setattr(ops, name, unavailable)
    placeholder.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": placeholder, "torchvision.ops": ops})
    try:
        return _import_module("onnx2torch")
    finally:
        for name in ("torchvision", "torchvision.ops"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def _import_module(name: str) -> ModuleType:
    try:
        return require(name, extra="onnx", feature="White-box attacks on ONNX models")
    except MissingExtraError as exc:
        raise _RefusedError(f"{exc} ({exc.remedy})") from exc


# -- verification --------------------------------------------------------------------------------------------------
def _verification_inputs(classifier: OnnxClassifier, probe: NDArray[np.floating] | None) -> FloatArray:
    """The probe, validated, then random inputs in the valid range (in the probe's range per value where the model
    has no bounds, else standard normal), float32."""
    rng = np.random.default_rng(0)
    shape = (RANDOM_INPUTS, *classifier.input_shape)
    checked = classifier.validate_input(probe) if probe is not None else None
    bounds = classifier.clip_values
    if bounds is not None:
        low = np.broadcast_to(np.asarray(bounds.low, dtype=np.float64), classifier.input_shape)
        high = np.broadcast_to(np.asarray(bounds.high, dtype=np.float64), classifier.input_shape)
        noise = rng.uniform(low, high, size=shape)
    elif checked is not None and len(checked):
        noise = rng.uniform(checked.min(axis=0), checked.max(axis=0), size=shape)
    else:
        noise = rng.standard_normal(shape)
    parts = [noise.astype(np.float32)] if checked is None else [checked, noise.astype(np.float32)]
    return np.ascontiguousarray(np.concatenate(parts))


def _reference(classifier: OnnxClassifier, inputs: FloatArray) -> NDArray[np.float32]:
    """ONNX Runtime's class scores for ``inputs``, as the graph outputs them (no softmax), uncounted."""
    rows = []
    for i in range(0, len(inputs), classifier.batch_size):
        try:
            rows.append(classifier.raw_scores(inputs[i : i + classifier.batch_size]))
        except Exception as exc:  # the ONNX Runtime errors are wrapped in ModelError
            raise _RefusedError(f"ONNX Runtime failed on the verification inputs: {_one_line(exc)}") from exc
    return np.concatenate(rows).astype(np.float32, copy=False)


def _output_kind(classifier: OnnxClassifier, inputs: FloatArray) -> Literal["logits", "probabilities"]:
    """What the graph outputs, as :class:`OnnxClassifier` decides: probabilities when told, or (``auto``) when every
    row it gives on the verification inputs is a probability vector."""
    if classifier.output != "auto":
        return "probabilities" if classifier.output == "probabilities" else "logits"
    from modelshield.models.onnx_classifier import is_probability

    return "probabilities" if is_probability(_reference(classifier, inputs)) else "logits"


def _compare(
    classifier: OnnxClassifier, module: torch.nn.Module, inputs: FloatArray
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The torch module's class scores on ``inputs`` (CPU, batches) and ONNX Runtime's."""
    import torch

    reference = _reference(classifier, inputs)
    rows = []
    with torch.inference_mode():
        for i in range(0, len(inputs), classifier.batch_size):
            batch = torch.from_numpy(inputs[i : i + classifier.batch_size])
            try:
                rows.append(module(batch).numpy())
            except Exception as exc:  # torch's own errors: shapes, dtypes, operators onnx2torch could not map
                raise _RefusedError(f"the converted torch module fails to run: {_one_line(exc)}") from exc
    scores = np.concatenate(rows).astype(np.float32, copy=False)
    if scores.shape != reference.shape:
        raise _RefusedError(f"the converted torch module gives scores of shape {scores.shape}, not {reference.shape}")
    return scores, reference


def _check_gradient(module: torch.nn.Module, inputs: FloatArray, output: str) -> None:
    """One backward pass of the cross-entropy loss at the predicted class: the gradient must reach the input and be
    finite."""
    import torch

    xt = torch.from_numpy(inputs.copy()).requires_grad_(True)
    try:
        with torch.enable_grad():
            scores = module(xt)
            if output == "probabilities":
                scores = torch.log(scores.clamp_min(1e-12))
            loss = torch.nn.functional.cross_entropy(scores, scores.argmax(dim=1).detach(), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xt, allow_unused=True)
    except Exception as exc:  # an operator without a backward, or an output cut from the autograd graph
        raise _RefusedError(f"the converted torch module is not differentiable: {_one_line(exc)}") from exc
    if grad is None:
        raise _RefusedError("the converted torch module's scores do not depend on its input through autograd")
    if not bool(torch.isfinite(grad).all()):
        raise _RefusedError("the converted torch module's input gradient has NaN or infinite values")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
