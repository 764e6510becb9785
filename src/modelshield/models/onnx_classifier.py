"""Black-box adapter for ONNX models, run with ONNX Runtime (CUDA when available, else CPU).

    >>> from modelshield.models import OnnxClassifier
    >>> clf = OnnxClassifier("model.onnx")  # doctest: +SKIP
    >>> clf.predict(x)  # doctest: +SKIP

The input shape and number of classes are read from the graph when its dimensions are fixed (pass them
otherwise). The probability output is found automatically: a float output of shape ``(batch, classes)``; a
scikit-learn-style ``ZipMap`` output (a list of dicts) is read too. ``output="auto"`` applies a softmax unless
the rows already are probabilities.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield._extras import require
from modelshield.errors import FileFormatError, InvalidParameterError, ModelError
from modelshield.models.interface import Bounds, Classifier, FloatArray

__all__ = ["OnnxClassifier"]

log = logging.getLogger(__name__)


def _softmax(z: NDArray[np.floating]) -> NDArray[np.float32]:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def _is_probability(rows: NDArray[np.floating]) -> bool:
    return bool(np.all(rows >= -1e-6) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4))


class OnnxClassifier(Classifier):
    """An ONNX classifier; ``model`` is a path or the serialised model bytes."""

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
        if input_shape is None:
            if not all(isinstance(d, int) and d > 0 for d in graph_shape):
                raise InvalidParameterError(
                    f"The ONNX input {self.input_name!r} has shape {inputs[0].shape} with unknown dimensions.",
                    remedy="Pass input_shape.",
                )
            input_shape = tuple(int(d) for d in graph_shape)
        self._flatten = len(graph_shape) == 1 and len(input_shape) > 1  # image-shaped data into a flat model
        self.output_name, n_out = self._pick_output(output_name)
        if n_classes is None:
            if n_out is None:
                raise InvalidParameterError(
                    f"Cannot read the number of classes from the ONNX output {self.output_name!r}.",
                    remedy="Pass n_classes.",
                )
            n_classes = n_out
        super().__init__(n_classes=n_classes, input_shape=input_shape, clip_values=clip_values, batch_size=batch_size)
        self.output = output
        self.providers = self.session.get_providers()

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

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        feed = x.reshape(len(x), -1) if self._flatten else x
        try:
            (raw,) = self.session.run([self.output_name], {self.input_name: feed})
        except Exception as exc:
            raise ModelError(f"ONNX Runtime failed: {' '.join(str(exc).split())[:300]}") from exc
        scores = self._as_array(raw)
        if self.output == "logits" or (self.output == "auto" and not _is_probability(scores)):
            return _softmax(scores.astype(np.float64))
        return scores

    def _as_array(self, raw: Any) -> NDArray[np.float32]:
        if isinstance(raw, list):  # ZipMap: one {class: probability} dict per row
            keys = sorted(raw[0]) if raw else []
            return np.array([[row[k] for k in keys] for row in raw], dtype=np.float32)
        return np.asarray(raw, dtype=np.float32)
