"""A small, real Open Inference Protocol v2 server over any Classifier, for tests and demos.

    >>> from modelshield.testing import serve_classifier
    >>> with serve_classifier(classifier, model_name="digits") as server:  # doctest: +SKIP
    ...     remote = RemoteClassifier(server.url, "digits")

It speaks the REST subset that KServe, Triton and MLServer share: health, model metadata and readiness, and
``POST /v2/models/{name}/infer`` with FP32 tensors in JSON. It binds to 127.0.0.1 on a free port by default,
serves each request in a thread, and refuses bodies over 64 MiB.
"""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

import numpy as np

from modelshield.errors import ModelShieldError
from modelshield.models.interface import Classifier, GradientClassifier

__all__ = ["MAX_BODY", "OipServer", "serve_classifier"]

MAX_BODY = 64 * 1024 * 1024
_MODEL = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$")


class OipServer:
    """A running server; ``url`` is its base URL. Stop it with :meth:`close` (or use it as a context manager)."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        model_name: str,
        host: str,
        port: int,
        output: Literal["probabilities", "logits"],
    ) -> None:
        if output == "logits" and not isinstance(classifier, GradientClassifier):
            raise ModelShieldError("Serving logits needs a white-box classifier.")
        self.classifier = classifier
        self.model_name = model_name
        self.output = output
        handler = type("_Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oip-server", daemon=True)
        self._thread.start()

    def metadata(self) -> dict[str, Any]:
        shape = [-1, *self.classifier.input_shape]
        return {
            "name": self.model_name,
            "versions": ["1"],
            "platform": f"modelshield-{type(self.classifier).__name__}",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": shape}],
            "outputs": [{"name": self.output, "datatype": "FP32", "shape": [-1, self.classifier.n_classes]}],
        }

    def infer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
            raise ValueError("the request must hold exactly one input tensor")
        tensor = request["inputs"][0]
        if not isinstance(tensor, dict) or tensor.get("datatype") not in ("FP32", "FP64"):
            raise ValueError("the input tensor must have datatype FP32 or FP64")
        shape, data = tensor.get("shape"), tensor.get("data")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError("the input shape must be a list of non-negative integers")
        x = np.asarray(data, dtype=np.float32)
        if x.size != int(np.prod(shape)):
            raise ValueError(f"the input holds {x.size} values, its shape {shape} needs {int(np.prod(shape))}")
        x = x.reshape(shape)
        if isinstance(self.classifier, GradientClassifier) and self.output == "logits":
            scores = self.classifier.logits(x)
        else:
            scores = self.classifier.predict_proba(x)
        return {
            "model_name": self.model_name,
            "model_version": "1",
            "id": str(request.get("id", "")),
            "outputs": [
                {
                    "name": self.output,
                    "datatype": "FP32",
                    "shape": list(scores.shape),
                    "data": scores.reshape(-1).tolist(),
                }
            ],
        }

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server_state: OipServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and demos do not want access logs on stderr

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server_state
        if self.path in ("/v2/health/live", "/v2/health/ready"):
            self._send(HTTPStatus.OK, {"live": True} if self.path.endswith("live") else {"ready": True})
            return
        match = _MODEL.match(self.path)
        if match is None or match["name"] != state.model_name or match["rest"] == "/infer":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such model or route: {self.path}"})
        elif match["rest"] == "/ready":
            self._send(HTTPStatus.OK, {"name": state.model_name, "ready": True})
        else:
            self._send(HTTPStatus.OK, state.metadata())

    def do_POST(self) -> None:
        state = self.server_state
        match = _MODEL.match(self.path)
        if match is None or match["name"] != state.model_name or match["rest"] != "/infer":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such model or route: {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"request bodies are limited to {MAX_BODY} bytes"}
            )
            return
        try:
            request = json.loads(self.rfile.read(length))
            response = state.infer(request)
        except (ValueError, ModelShieldError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except Exception as exc:  # a server answers 500 rather than dropping the connection
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(HTTPStatus.OK, response)


def serve_classifier(
    classifier: Classifier,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    output: Literal["probabilities", "logits"] = "probabilities",
) -> OipServer:
    """Serve ``classifier`` over the Open Inference Protocol v2 on ``host:port`` (port 0: any free port)."""
    return OipServer(classifier, model_name=model_name, host=host, port=port, output=output)
