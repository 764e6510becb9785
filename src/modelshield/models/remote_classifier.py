"""Black-box adapter for a model served over HTTP with the Open Inference Protocol v2 (KServe, Triton, MLServer).

    >>> from modelshield.models import RemoteClassifier
    >>> clf = RemoteClassifier("http://127.0.0.1:8080", "fraud")  # doctest: +SKIP
    >>> clf.predict_proba(x)  # doctest: +SKIP

Metadata (``GET /v2/models/{name}``) supplies the input and output names, shapes and the number of classes
when they are not given; inference is ``POST /v2/models/{name}/infer`` with the batch as one FP32 tensor. Every
response is checked against the protocol: status, JSON, output name, shape, length, finite numbers. Header values
(tokens) never appear in errors or logs.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any, Literal, Self

import httpx
import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidParameterError, RemoteModelError
from modelshield.models.interface import Bounds, Classifier, FloatArray

__all__ = ["RemoteClassifier"]

_MAX_EXCERPT = 200


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:_MAX_EXCERPT] + ("..." if len(text) > _MAX_EXCERPT else "")


class RemoteClassifier(Classifier):
    """A classifier behind an Open Inference Protocol v2 REST endpoint."""

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        model_version: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        n_classes: int | None = None,
        output: Literal["auto", "probabilities", "logits"] = "auto",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
        clip_values: Bounds | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if output not in ("auto", "probabilities", "logits"):
            raise InvalidParameterError(f"output must be 'auto', 'probabilities' or 'logits', not {output!r}.")
        if not url.startswith(("http://", "https://")):
            raise InvalidParameterError(f"The model URL must start with http:// or https://, got {url!r}.")
        self.url = url.rstrip("/")
        self.model_name = model_name
        path = f"/v2/models/{model_name}" + (f"/versions/{model_version}" if model_version else "")
        self._model_path = path
        self._client = httpx.Client(
            base_url=self.url, headers=dict(headers or {}), timeout=timeout, transport=transport
        )
        self.output = output
        try:
            if input_name is None or output_name is None or input_shape is None or n_classes is None:
                meta = self._metadata()
                inputs, outputs = meta.get("inputs") or [], meta.get("outputs") or []
                if input_name is None:
                    input_name = self._only(inputs, "input")["name"]
                if input_shape is None:
                    spec = next((i for i in inputs if i.get("name") == input_name), None)
                    input_shape = self._shape(spec, "input", input_name)
                if output_name is None:
                    output_name = self._only(outputs, "output")["name"]
                if n_classes is None:
                    spec = next((o for o in outputs if o.get("name") == output_name), None)
                    dims = self._shape(spec, "output", output_name)
                    if len(dims) != 1:
                        raise RemoteModelError(f"Output {output_name!r} has shape {dims}; expected (classes,).")
                    n_classes = dims[0]
        except BaseException:
            self._client.close()
            raise
        self.input_name = str(input_name)
        self.output_name = str(output_name)
        super().__init__(n_classes=n_classes, input_shape=input_shape, clip_values=clip_values, batch_size=batch_size)

    # -- protocol ------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RemoteModelError(f"{method} {self.url}{path} timed out.") from exc
        except httpx.HTTPError as exc:
            raise RemoteModelError(f"{method} {self.url}{path} failed: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) and body.get("error") else _excerpt(response)
            raise RemoteModelError(f"{method} {self.url}{path} answered {response.status_code}: {detail}")
        if not isinstance(body, dict):
            raise RemoteModelError(f"{method} {self.url}{path} did not answer a JSON object: {_excerpt(response)}")
        return body

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = self._request("GET", self._model_path)
        return meta

    @staticmethod
    def _only(specs: list[Any], kind: str) -> dict[str, Any]:
        if len(specs) != 1 or not isinstance(specs[0], dict) or "name" not in specs[0]:
            names = [s.get("name") for s in specs if isinstance(s, dict)]
            raise RemoteModelError(
                f"The model declares {len(specs)} {kind}s {names}; name the one to use.",
                remedy=f"Pass {kind}_name=.",
            )
        return specs[0]

    @staticmethod
    def _shape(spec: Any, kind: str, name: str | None) -> tuple[int, ...]:
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list):
            raise RemoteModelError(
                f"The model metadata gives no shape for {kind} {name!r}.", remedy=f"Pass the {kind} shape."
            )
        dims = spec["shape"][1:]  # the first dimension is the batch
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            raise RemoteModelError(
                f"The {kind} {name!r} has shape {spec['shape']} with unknown dimensions.",
                remedy="Pass input_shape and n_classes.",
            )
        return tuple(dims)

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        payload = {
            "id": uuid.uuid4().hex,
            "inputs": [
                {"name": self.input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
            ],
            "outputs": [{"name": self.output_name}],
        }
        body = self._request("POST", f"{self._model_path}/infer", json=payload)
        outputs = body.get("outputs")
        if not isinstance(outputs, list):
            raise RemoteModelError("The inference response has no outputs list.")
        out = next((o for o in outputs if isinstance(o, dict) and o.get("name") == self.output_name), None)
        if out is None:
            raise RemoteModelError(f"The inference response has no output {self.output_name!r}.")
        expected = [len(x), self.n_classes]
        if out.get("shape") != expected:
            raise RemoteModelError(f"Output {self.output_name!r} has shape {out.get('shape')}; expected {expected}.")
        data = out.get("data")
        if not isinstance(data, list) or len(data) != len(x) * self.n_classes:
            raise RemoteModelError(f"Output {self.output_name!r} does not hold {len(x) * self.n_classes} numbers.")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in data):
            raise RemoteModelError(f"Output {self.output_name!r} holds values that are not finite numbers.")
        scores = np.asarray(data, dtype=np.float64).reshape(len(x), self.n_classes)
        is_proba = bool(np.all(scores >= -1e-6) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
        if self.output == "logits" or (self.output == "auto" and not is_proba):
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores.astype(np.float32)

    # -- lifetime ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteClassifier(url={self.url!r}, model_name={self.model_name!r}, n_classes={self.n_classes})"
