"""Black-box adapter for ONNX models, run with ONNX Runtime (CUDA when available, else CPU).

    >>> from modelshield.models import OnnxClassifier
    >>> clf = OnnxClassifier("model.onnx")  # doctest: +SKIP
    >>> clf.predict(x)  # doctest: +SKIP

The input shape and number of classes are read from the graph when it records them (pass them otherwise). The
probability output is found automatically: a float output of shape ``(batch, classes)``; a scikit-learn-style
``ZipMap`` output (a list of dicts) is read too. ``output="auto"`` applies a softmax unless the rows already are
probabilities.

Graphs exported from scikit-learn name their classes (the ``classlabels_*`` attribute of the ``ai.onnx.ml``
classifier and ``ZipMap`` nodes): :attr:`OnnxClassifier.class_labels` holds them in the order of the outputs, so
that data labelled with those names can be put in the same order (:meth:`modelshield.data.Dataset.relabel`).

A network's graph can usually be attacked with gradients too: :meth:`OnnxClassifier.torch_conversion` converts it
to a verified :class:`~modelshield.models.TorchClassifier` (:mod:`modelshield.models.onnx_torch`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield._extras import require
from modelshield.errors import FileFormatError, InvalidInputError, InvalidParameterError, ModelError
from modelshield.models.interface import Bounds, Classifier, FloatArray

if TYPE_CHECKING:
    from modelshield.models.onnx_torch import Conversion

__all__ = ["OnnxClassifier", "is_probability"]

log = logging.getLogger(__name__)


def _softmax(z: NDArray[np.floating]) -> NDArray[np.float32]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def is_probability(rows: NDArray[np.floating]) -> bool:
    """True when every row is a probability vector: no negative values, and a sum of 1 (to within 1e-4)."""
    return bool(np.all(rows >= -1e-6) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4))


_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


def _declared_labels(model: str | bytes) -> list[str | int] | None:
    """The class labels of the graph's ``ai.onnx.ml`` classifier, in output order: those of its ``ZipMap`` when it
    has one, else those its classifier nodes agree on; None when it declares none, or nodes disagree."""
    onnx = require("onnx", extra="onnx", feature="ONNX models")
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model, load_external_data=False)
    found: dict[str, list[tuple[str | int, ...]]] = {"zipmap": [], "classifier": []}
    for node in proto.graph.node:
        if node.domain != "ai.onnx.ml":
            continue
        for attribute in node.attribute:
            if attribute.name not in _LABEL_ATTRIBUTES:
                continue
            labels: tuple[str | int, ...] = (
                tuple(v.decode("utf-8", "replace") for v in attribute.strings)
                if attribute.name == "classlabels_strings"
                else tuple(int(v) for v in attribute.ints)
            )
            if labels:
                found["zipmap" if node.op_type == "ZipMap" else "classifier"].append(labels)
    for kind in ("zipmap", "classifier"):
        distinct = set(found[kind])
        if len(distinct) == 1:
            return list(distinct.pop())
        if distinct:
            log.info("The ONNX graph's %s nodes name different classes; their order is not used.", kind)
            return None
    return None


class OnnxClassifier(Classifier):
    """An ONNX classifier; ``model`` is a path or the serialised model bytes.

    ``input_shape`` is the shape of one input of the data: needed when the graph leaves dimensions open, and
    otherwise checked against the graph (image-shaped inputs into a flat graph of the same size are flattened).
    ``n_classes`` is used only when the graph records no class count (no class labels, no fixed output width).
    """

    class_labels: tuple[str, ...] | None
    """The class names the graph declares, in the order of its outputs (numbers as text); None when it has none."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        input_shape: tuple[int, ...] | None = None,
        n_classes: int | None = None,
        output_name: str | None = None,
        output: Literal["auto", "probabilities", "logits"] = "auto",
        clip_values: Bounds | None = None,
        batch_size: int = 1024,
        providers: list[str] | None = None,
    ) -> None:
        ort = require("onnxruntime", extra="onnx", feature="ONNX models")
        if output not in ("auto", "probabilities", "logits"):
            raise InvalidParameterError(f"output must be 'auto', 'probabilities' or 'logits', not {output!r}.")
        where = "the given bytes" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes):
            path = Path(model)
            if not path.is_file():
                raise FileFormatError(f"ONNX model {path} does not exist.", remedy="Check the path.")
            model = str(path)
        self.model_source: str | bytes = model
        """The graph the session runs: its path, or the serialised model."""
        available = ort.get_available_providers()
        chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
            raise FileFormatError(f"{where} is not a loadable ONNX model: {' '.join(str(exc).split())[:300]}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InvalidParameterError(
                f"The ONNX model takes {len(inputs)} inputs ({[i.name for i in inputs]}); a classifier takes one."
            )
        self.input_name = inputs[0].name
        graph_shape = inputs[0].shape[1:]
        fixed = all(isinstance(d, int) and d > 0 for d in graph_shape)
        if input_shape is None:
            if not fixed:
                raise InvalidParameterError(
                    f"The ONNX input {self.input_name!r} has shape {inputs[0].shape} with unknown dimensions.",
                    remedy="Pass input_shape.",
                )
            input_shape = tuple(int(d) for d in graph_shape)
        elif fixed:
            _check_input_shape(tuple(int(d) for d in graph_shape), tuple(input_shape), self.input_name)
        self._flatten = len(graph_shape) == 1 and len(input_shape) > 1  # image-shaped data into a flat model
        self.output_name, n_out = self._pick_output(output_name)
        declared = self._read_labels(model)
        if declared is not None:
            if n_out is not None and n_out != len(declared):
                raise FileFormatError(
                    f"{where} names {len(declared)} classes, but its output {self.output_name!r} has {n_out} columns."
                )
            n_out = len(declared)
        self._zipmap_keys: list[str | int] | None = declared
        self.class_labels = None if declared is None else tuple(str(label) for label in declared)
        if n_out is None:
            if n_classes is None:
                raise InvalidParameterError(
                    f"Cannot read the number of classes from the ONNX output {self.output_name!r}.",
                    remedy="Pass n_classes.",
                )
            n_out = n_classes
        super().__init__(n_classes=n_out, input_shape=input_shape, clip_values=clip_values, batch_size=batch_size)
        self.output = output
        self.providers = self.session.get_providers()
        self._conversions: dict[tuple[str, float, float], Conversion] = {}

    @property
    def flattens_input(self) -> bool:
        """True when the graph takes flat rows and inputs of a multi-dimensional ``input_shape`` are flattened."""
        return self._flatten

    def torch_conversion(
        self, probe: NDArray[np.floating] | None = None, *, rtol: float = 1e-3, atol: float = 1e-4
    ) -> Conversion:
        """This graph as a verified white-box :class:`~modelshield.models.TorchClassifier`, or the reason it cannot
        be one: :func:`modelshield.models.onnx_torch.to_torch`, remembered for the same probe and tolerances."""
        import hashlib

        from modelshield.models.onnx_torch import to_torch

        checked = None if probe is None else self.validate_input(probe)
        digest = "" if checked is None else hashlib.sha256(checked.tobytes() + repr(checked.shape).encode()).hexdigest()
        key = (digest, float(rtol), float(atol))
        if key not in self._conversions:
            if len(self._conversions) >= 4:  # each holds a copy of the network: keep the latest few
                del self._conversions[next(iter(self._conversions))]
            self._conversions[key] = to_torch(self, checked, rtol=rtol, atol=atol)
        return self._conversions[key]

    def raw_scores(self, x: FloatArray) -> NDArray[np.float32]:
        """The graph's class-score output for one validated batch, as it gives it (no softmax), not counted as
        queries: for checks of the model itself, such as :func:`~modelshield.models.onnx_torch.to_torch`."""
        feed = x.reshape(len(x), -1) if self._flatten else x
        try:
            (raw,) = self.session.run([self.output_name], {self.input_name: feed})
        except Exception as exc:
            raise ModelError(f"ONNX Runtime failed: {' '.join(str(exc).split())[:300]}") from exc
        return self._as_array(raw)

    def _pick_output(self, name: str | None) -> tuple[str, int | None]:
        outputs = self.session.get_outputs()
        if name is not None:
            match = [o for o in outputs if o.name == name]
            if not match:
                raise InvalidParameterError(
                    f"The ONNX model has no output {name!r}; it has {[o.name for o in outputs]}."
                )
            candidates = match
        else:
            candidates = [o for o in outputs if o.type == "tensor(float)" and len(o.shape) == 2]
            candidates += [o for o in outputs if o.type.startswith("seq(map(")]
        if not candidates:
            raise InvalidParameterError(
                f"No output of the ONNX model looks like class scores: {[(o.name, o.type) for o in outputs]}.",
                remedy="Name the probability output with output_name.",
            )
        chosen = ([o for o in candidates if "prob" in o.name.lower()] or candidates)[0]
        width = chosen.shape[1] if len(chosen.shape) == 2 and isinstance(chosen.shape[1], int) else None
        return chosen.name, width

    def _read_labels(self, model: str | bytes) -> list[str | int] | None:
        """The graph's declared class labels, read only when an output is not plain scores (a label or a ZipMap)."""
        if all(o.type == "tensor(float)" for o in self.session.get_outputs()):
            return None  # a network's scores; parsing a large graph again would tell nothing more
        return _declared_labels(model)

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        scores = self.raw_scores(x)
        if self.output == "logits" or (self.output == "auto" and not is_probability(scores)):
            return _softmax(scores.astype(np.float64))
        return scores

    def _as_array(self, raw: Any) -> NDArray[np.float32]:
        if isinstance(raw, list):  # ZipMap: one {class: probability} dict per row, in the declared class order
            keys = self._zipmap_keys if self._zipmap_keys is not None else sorted(raw[0]) if raw else []
            return np.array([[row[k] for k in keys] for row in raw], dtype=np.float32)
        return np.asarray(raw, dtype=np.float32)


def _check_input_shape(graph: tuple[int, ...], given: Sequence[int], name: str) -> None:
    """Refuse inputs of ``given`` shape for a graph input of fixed shape ``graph``, unless they are the same, or the
    graph is flat and takes the same number of values (image-shaped data into a flat model)."""
    size, wanted = int(np.prod(given)), int(np.prod(graph))
    if tuple(given) == graph or (len(graph) == 1 and size == wanted):
        return
    shape = tuple(given)
    message = (
        f"The model takes {wanted} features (ONNX input {name!r}); the data has {size} (inputs of shape {shape})."
        if len(graph) == 1
        else f"The model takes inputs of shape {graph} (ONNX input {name!r}); the data's have shape {shape}."
    )
    raise InvalidInputError(
        message,
        remedy="Pass data with the features the model was trained on, in the same order; in a table, every "
        "column but the label column is a feature.",
    )
